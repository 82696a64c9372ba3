//! Wiring shared by the `fleet` binary, its integration tests and the acceptance features:
//! [`system`] runs the whole of Fleet (controller + one agent per cluster) on the in-process
//! simulator; [`metrics`] serves a Prometheus registry over HTTP.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bench;
pub mod metrics;
pub mod system;
