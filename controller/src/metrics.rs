//! Prometheus metrics of the controller: reconciles per controller and result, and their
//! durations.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `gitrepo`, `bundle`, `cluster`, `clustergroup`, ...
    pub controller: String,
    /// `success` or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

/// Handles to the controller's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<ControllerLabel, Histogram>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let durations = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let sub = registry.sub_registry_with_prefix("fleet_controller");
        sub.register(
            "reconciles",
            "Reconciles by controller and result",
            reconciles.clone(),
        );
        sub.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile, by controller",
            durations.clone(),
        );
        Metrics {
            reconciles,
            durations,
        }
    }

    /// Records one reconcile of `controller` that took `seconds`.
    pub fn reconciled(&self, controller: &str, ok: bool, seconds: f64) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                controller: controller.to_string(),
                result: if ok { "success" } else { "error" }.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&ControllerLabel {
                controller: controller.to_string(),
            })
            .observe(seconds);
    }
}
