//! Workload controllers: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job.

use super::kubelet::KubeletState;
use super::{Ctx, ObjectChange};

#[derive(Debug, Default)]
pub(crate) struct ControllerState {}

pub(crate) fn dispatch(
    _ctx: &mut Ctx<'_>,
    _state: &mut ControllerState,
    _kubelet: &mut KubeletState,
    _change: &ObjectChange,
) {
}
