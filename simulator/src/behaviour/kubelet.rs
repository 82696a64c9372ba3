//! The simulated kubelet: pod status from bound to running, ready, crash-looping or done.

#[derive(Debug, Default)]
pub(crate) struct KubeletState {}
