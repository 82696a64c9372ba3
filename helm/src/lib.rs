//! Helm 3 chart engine.
