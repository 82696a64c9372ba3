//! One module per subcommand; each is owned by the crate whose work it wires.

pub mod agent;
pub mod apply;
pub mod controller;
pub mod crds;
pub mod gitcloner;
pub mod helm;
pub mod kubeconfig;
pub mod signal;
pub mod sim;
pub mod test;
pub mod version;
