//! Fault plans set at run time act on the transports: a partition fails every request, healing
//! restores service, and injected errors carry kube-apiserver's codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use fleet_simulator::faults::FaultPlan;
use fleet_simulator::{SimConfig, Simulator};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn a_partitioned_cluster_fails_every_request_until_healed() {
    let sim = Simulator::new(SimConfig {
        profile: None,
        ..SimConfig::default()
    });
    let cluster = sim.add_cluster("a").unwrap();
    let other = sim.add_cluster("b").unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    api.list(&ListParams::default()).await.unwrap();
    cluster.set_fault_plan(FaultPlan::builder().partitioned(true).build().unwrap());
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == fleet_simulator::faults::PARTITION_STATUS_CODE),
        "{err:?}"
    );
    // Other clusters are unaffected.
    let other_api: Api<ConfigMap> = Api::default_namespaced(other.client());
    other_api.list(&ListParams::default()).await.unwrap();
    cluster.set_fault_plan(FaultPlan::none());
    api.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn an_error_rate_of_one_fails_requests_with_the_planned_code() {
    let sim = Simulator::new(SimConfig {
        profile: None,
        ..SimConfig::default()
    });
    let cluster = sim.add_cluster("a").unwrap();
    cluster.set_fault_plan(
        FaultPlan::builder()
            .error_rate(1.0)
            .error_codes([503])
            .build()
            .unwrap(),
    );
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 503),
        "{err:?}"
    );
}
