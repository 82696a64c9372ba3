//! Prometheus metrics of the agent (`fleet_agent_*`): reconciles per controller
//! (`bundledeployment`, `drift`) and result, their durations, and the configured workers.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Controller name of the BundleDeployment reconciler in metrics.
pub const BUNDLEDEPLOYMENT: &str = "bundledeployment";
/// Controller name of the drift reconciler in metrics.
pub const DRIFT: &str = "drift";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `bundledeployment` or `drift`.
    pub controller: String,
    /// `success` or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

/// Handles to the agent's metrics; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    reconciles: Family<ReconcileLabels, Counter>,
    durations: Family<ControllerLabel, Histogram>,
    workers: Family<ControllerLabel, Gauge>,
}

impl Metrics {
    /// Registers the metrics under the `fleet_agent` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let durations = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let workers = Family::<ControllerLabel, Gauge>::default();
        let sub = registry.sub_registry_with_prefix("fleet_agent");
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
        sub.register(
            "workers",
            "Configured concurrent reconciles, by controller",
            workers.clone(),
        );
        Metrics {
            reconciles,
            durations,
            workers,
        }
    }

    /// Records the configured worker count of `controller`.
    pub fn set_workers(&self, controller: &str, workers: usize) {
        self.workers
            .get_or_create(&ControllerLabel {
                controller: controller.to_string(),
            })
            .set(i64::try_from(workers).unwrap_or(i64::MAX));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_controller_labels() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        m.set_workers(BUNDLEDEPLOYMENT, 50);
        m.reconciled(DRIFT, true, 0.01);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains("fleet_agent_workers{controller=\"bundledeployment\"} 50"),
            "{out}"
        );
        assert!(
            out.contains("fleet_agent_reconciles_total{controller=\"drift\",result=\"success\"} 1"),
            "{out}"
        );
    }
}
