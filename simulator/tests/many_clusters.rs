//! A thousand idle clusters fit in one process and each answers on its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use fleet_simulator::{SimConfig, Simulator};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_clusters_run_in_one_process() {
    let sim = Simulator::new(SimConfig::default());
    for i in 1..=1000 {
        sim.add_cluster(&format!("sim-{i}")).unwrap();
    }
    assert_eq!(sim.clusters().len(), 1000);
    // Every cluster has its own store: the default namespaces plus the profile's node(s).
    let stats = sim.stats();
    assert!(stats.objects >= 5000, "{stats:?}");
    // Clients on a sample of clusters see only their own objects.
    for i in [1, 500, 1000] {
        let client = sim.cluster(&format!("sim-{i}")).unwrap().client();
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("only-in-{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let names: Vec<String> = cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        assert_eq!(names, vec![format!("only-in-{i}")]);
        let ns: Api<Namespace> = Api::all(client);
        assert_eq!(
            ns.list(&ListParams::default()).await.unwrap().items.len(),
            4
        );
    }
    assert_eq!(
        sim.cluster("sim-2").unwrap().stats().objects,
        sim.cluster("sim-3").unwrap().stats().objects
    );
}
