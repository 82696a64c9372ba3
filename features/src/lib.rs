//! fleet-rs acceptance features: see `features/` (the Gherkin files), `tests/harness/` (the
//! cucumber-rs steps). This library is empty on purpose.
