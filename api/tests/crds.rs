//! `fleet crds` output: valid YAML, one CRD per kind, status subresource and Fleet's printer
//! columns, and identical to the committed `api/crds/fleet-crds.yaml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds/fleet-crds.yaml")
}

#[test]
fn committed_crds_match_the_types() {
    let generated = fleet_api::crds::to_yaml().unwrap();
    if std::env::var_os("FLEET_UPDATE_CRDS").is_some() {
        std::fs::write(committed_path(), &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "api/crds/fleet-crds.yaml is out of date with the types in fleet-api.\n\
         Regenerate it with `cargo run -- crds > api/crds/fleet-crds.yaml` \
         (or `FLEET_UPDATE_CRDS=1 cargo test -p fleet-api --test crds`) and commit the result."
    );
}

fn parsed_crds() -> Vec<CustomResourceDefinition> {
    let yaml = fleet_api::crds::to_yaml().unwrap();
    serde_norway::Deserializer::from_str(&yaml)
        .map(|doc| CustomResourceDefinition::deserialize(doc).unwrap())
        .collect()
}

#[test]
fn output_is_one_valid_crd_per_kind() {
    let crds = parsed_crds();
    let kinds: Vec<&str> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "BundleDeployment",
            "BundleNamespaceMapping",
            "Bundle",
            "ClusterGroup",
            "ClusterRegistration",
            "ClusterRegistrationToken",
            "Cluster",
            "Content",
            "GitRepoRestriction",
            "GitRepo",
            "HelmApp",
            "HelmOp",
            "ImageScan",
        ]
    );
    for crd in &crds {
        let name = crd.metadata.name.as_deref().unwrap();
        assert_eq!(
            name,
            format!("{}.fleet.cattle.io", crd.spec.names.plural),
            "CRD name"
        );
        assert_eq!(crd.spec.group, "fleet.cattle.io");
        let expected_scope = if crd.spec.names.kind == "Content" {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(crd.spec.scope, expected_scope, "{name} scope");
        assert_eq!(crd.spec.versions.len(), 1, "{name}");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage, "{name}");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name} has no status subresource"
        );
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap_or_else(|| panic!("{name} has no schema"));
        assert_eq!(schema.type_.as_deref(), Some("object"), "{name}");
        assert_eq!(
            crd.spec.names.list_kind.as_deref(),
            Some(format!("{}List", crd.spec.names.kind).as_str()),
            "{name} listKind"
        );
        let root = schema.properties.as_ref().unwrap();
        for field in ["apiVersion", "kind", "metadata"] {
            assert!(root.contains_key(field), "{name} schema lacks {field}");
        }
    }
}

#[test]
fn printer_columns_are_fleets() {
    let ready_message = r#".status.conditions[?(@.type=="Ready")].message"#;
    let expected: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::from([
        (
            "GitRepo",
            vec![
                ("Repo", ".spec.repo"),
                ("Commit", ".status.commit"),
                (
                    "BundleDeployments-Ready",
                    ".status.display.readyBundleDeployments",
                ),
                ("Status", ready_message),
            ],
        ),
        (
            "Bundle",
            vec![
                ("BundleDeployments-Ready", ".status.display.readyClusters"),
                ("Status", ready_message),
            ],
        ),
        (
            "BundleDeployment",
            vec![
                ("Deployed", ".status.display.deployed"),
                ("Monitored", ".status.display.monitored"),
                ("Status", ready_message),
            ],
        ),
        (
            "Cluster",
            vec![
                ("Bundles-Ready", ".status.display.readyBundles"),
                ("Last-Seen", ".status.agent.lastSeen"),
                ("Status", ready_message),
            ],
        ),
        (
            "ClusterGroup",
            vec![
                ("Clusters-Ready", ".status.display.readyClusters"),
                ("Bundles-Ready", ".status.display.readyBundles"),
                ("Status", ready_message),
            ],
        ),
        (
            "ClusterRegistration",
            vec![
                ("Cluster-Name", ".status.clusterName"),
                ("Labels", ".spec.clusterLabels"),
            ],
        ),
        (
            "ClusterRegistrationToken",
            vec![("Secret-Name", ".status.secretName")],
        ),
        (
            "GitRepoRestriction",
            vec![
                ("Default-ServiceAccount", ".defaultServiceAccount"),
                ("Allowed-ServiceAccounts", ".allowedServiceAccounts"),
            ],
        ),
        (
            "ImageScan",
            vec![
                ("Repository", ".spec.image"),
                ("Latest", ".status.latestTag"),
            ],
        ),
        ("BundleNamespaceMapping", vec![]),
        ("Content", vec![]),
    ]);
    let helm = vec![
        ("Repo", ".spec.helm.repo"),
        ("Chart", ".spec.helm.chart"),
        ("Version", ".status.version"),
        (
            "BundleDeployments-Ready",
            ".status.display.readyBundleDeployments",
        ),
        ("Status", ready_message),
    ];
    for crd in parsed_crds() {
        let kind = crd.spec.names.kind.as_str();
        let want = match kind {
            "HelmApp" | "HelmOp" => helm.clone(),
            other => expected
                .get(other)
                .unwrap_or_else(|| panic!("unexpected kind {other}"))
                .clone(),
        };
        let got: Vec<(String, String)> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| {
                assert_eq!(c.type_, "string", "{kind} column {}", c.name);
                (c.name.clone(), c.json_path.clone())
            })
            .collect();
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(n, p)| (n.to_string(), p.to_string()))
            .collect();
        assert_eq!(got, want, "{kind} printer columns");
    }
}

/// The types read `null` as the zero value, so the schema accepts it below spec and status.
#[test]
fn fields_accept_null_like_fleets_nullable_markers() {
    let gitrepo = parsed_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "GitRepo")
        .unwrap();
    let schema = serde_json::to_value(&gitrepo.spec.versions[0].schema).unwrap();
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["branch"]["nullable"], true);
    assert_eq!(spec["properties"]["paths"]["nullable"], true);
    assert_eq!(
        spec["properties"]["targets"]["items"]["properties"]["clusterSelector"]["nullable"],
        true
    );
    assert!(spec.get("nullable").is_none(), "spec itself is required");
}

#[test]
fn helm_values_preserve_unknown_fields() {
    let bundle = parsed_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "Bundle")
        .unwrap();
    let schema = serde_json::to_value(&bundle.spec.versions[0].schema).unwrap();
    let values = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["helm"]["properties"]
        ["values"];
    assert_eq!(values["type"], "object", "{values}");
    assert_eq!(
        values["x-kubernetes-preserve-unknown-fields"], true,
        "{values}"
    );
    let target_values = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["targets"]["items"]
        ["properties"]["helm"]["properties"]["values"];
    assert_eq!(target_values["x-kubernetes-preserve-unknown-fields"], true);
}
