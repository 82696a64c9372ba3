//! A Helm chart repository served from 127.0.0.1 for the HelmOps tests (used by
//! controller/tests/helmops.rs and cli/tests/helmops.rs): `fleet_simulator::services::ChartRepo`
//! (shared with the Gherkin features) behind the tests' panicking, infallible style.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use fleet_simulator::services;

/// A chart repository at `http://127.0.0.1:<port>/charts` (everything of
/// [`services::ChartRepo`] through `Deref`).
pub struct ChartRepo(pub services::ChartRepo);

impl std::ops::Deref for ChartRepo {
    type Target = services::ChartRepo;

    fn deref(&self) -> &services::ChartRepo {
        &self.0
    }
}

impl ChartRepo {
    pub fn start() -> Self {
        ChartRepo(services::ChartRepo::start().expect("starting the chart repository"))
    }

    /// Publishes [`configmap_chart`] `name` `version`.
    pub fn publish(&self, name: &str, version: &str) {
        self.0.publish(name, version).expect("publishing a chart");
    }
}

/// The chart archive `<name>-<version>.tgz` of a chart whose templates are `templates` (file
/// name → text) and whose default values are `values`.
pub fn chart_archive(
    name: &str,
    version: &str,
    values: &str,
    templates: &[(&str, &str)],
) -> Vec<u8> {
    services::chart_archive(name, version, values, templates).expect("packaging a chart")
}

/// A one-ConfigMap chart: ConfigMap `<name>-config` with the chart version and the value
/// `greeting`.
pub fn configmap_chart(name: &str, version: &str) -> Vec<u8> {
    services::configmap_chart(name, version).expect("packaging a chart")
}

/// A URL on 127.0.0.1 where nothing listens (connection refused).
pub fn dead_url() -> String {
    services::dead_url().expect("finding a free port")
}
