//! Simulated Kubernetes clusters.
