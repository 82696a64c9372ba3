//! Bundles from folders.
