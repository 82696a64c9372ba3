//! Simulated Kubernetes clusters.

pub mod behaviour;
pub mod faults;
