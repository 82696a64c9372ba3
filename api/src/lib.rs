//! Fleet's `fleet.cattle.io/v1alpha1` resource types.

pub mod crds;
