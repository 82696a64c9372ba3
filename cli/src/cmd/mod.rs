//! One module per subcommand; each is owned by the crate whose work it wires.

pub mod apply;
pub mod crds;
pub mod helm;
pub mod sim;
pub mod test;
pub mod version;
