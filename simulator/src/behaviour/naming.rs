//! Generated names and hashes, as the Kubernetes controllers make them.
