//! Which resources a cluster serves: the built-in kinds plus one entry per established CRD.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

/// A column of `kubectl get` output, as CRDs declare them in `additionalPrinterColumns`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// One served resource (all its served versions).
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    /// Served versions; the first is the preferred (storage) version.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub scale_subresource: bool,
    /// Built-in kinds accept strategic merge patches and use Go struct semantics.
    pub builtin: bool,
    /// Whether `metadata.generation` is maintained (kinds with a spec).
    pub has_generation: bool,
    /// Built-ins delete by returning a `Status`; custom resources return the object.
    pub delete_returns_object: bool,
    /// CRD printer columns per version (empty for built-ins, whose columns are fixed in `table`).
    pub printer_columns: HashMap<String, Vec<PrinterColumn>>,
    /// CRD `openAPIV3Schema` per version.
    pub schemas: HashMap<String, Arc<Value>>,
    /// Only `create` is served (access reviews): nothing is stored.
    pub create_only: bool,
}

impl ResourceInfo {
    /// The store key: `plural.group` (or `plural` for the core group).
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn preferred_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }

    pub fn serves_version(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn schema(&self, version: &str) -> Option<&Arc<Value>> {
        self.schemas.get(version)
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short_names: &[&str],
    status: bool,
    generation: bool,
) -> ResourceInfo {
    let all = matches!(
        plural,
        "pods"
            | "services"
            | "deployments"
            | "replicasets"
            | "statefulsets"
            | "daemonsets"
            | "jobs"
            | "cronjobs"
            | "horizontalpodautoscalers"
    );
    ResourceInfo {
        group: group.to_string(),
        versions: vec![version.to_string()],
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        kind: kind.to_string(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: if all {
            vec!["all".to_string()]
        } else {
            Vec::new()
        },
        status_subresource: status,
        scale_subresource: matches!(plural, "deployments" | "replicasets" | "statefulsets"),
        builtin: true,
        has_generation: generation,
        delete_returns_object: false,
        printer_columns: HashMap::new(),
        schemas: HashMap::new(),
        create_only: false,
    }
}

fn review(group: &str, plural: &str, kind: &str, namespaced: bool) -> ResourceInfo {
    ResourceInfo {
        create_only: true,
        ..builtin(group, "v1", plural, kind, namespaced, &[], false, false)
    }
}

/// The built-in resources every simulated cluster serves.
pub fn builtin_resources() -> &'static [Arc<ResourceInfo>] {
    static BUILTINS: OnceLock<Vec<Arc<ResourceInfo>>> = OnceLock::new();
    BUILTINS.get_or_init(|| {
        let ns = true;
        let cluster = false;
        let list = vec![
            builtin(
                "",
                "v1",
                "namespaces",
                "Namespace",
                cluster,
                &["ns"],
                true,
                false,
            ),
            builtin(
                "",
                "v1",
                "configmaps",
                "ConfigMap",
                ns,
                &["cm"],
                false,
                false,
            ),
            builtin("", "v1", "secrets", "Secret", ns, &[], false, false),
            builtin(
                "",
                "v1",
                "serviceaccounts",
                "ServiceAccount",
                ns,
                &["sa"],
                false,
                false,
            ),
            builtin("", "v1", "services", "Service", ns, &["svc"], true, false),
            builtin("", "v1", "pods", "Pod", ns, &["po"], true, true),
            builtin("", "v1", "nodes", "Node", cluster, &["no"], true, false),
            builtin("", "v1", "events", "Event", ns, &["ev"], false, false),
            builtin(
                "",
                "v1",
                "endpoints",
                "Endpoints",
                ns,
                &["ep"],
                false,
                false,
            ),
            builtin(
                "",
                "v1",
                "persistentvolumeclaims",
                "PersistentVolumeClaim",
                ns,
                &["pvc"],
                true,
                false,
            ),
            builtin(
                "",
                "v1",
                "persistentvolumes",
                "PersistentVolume",
                cluster,
                &["pv"],
                true,
                false,
            ),
            builtin(
                "",
                "v1",
                "resourcequotas",
                "ResourceQuota",
                ns,
                &["quota"],
                true,
                false,
            ),
            builtin(
                "",
                "v1",
                "limitranges",
                "LimitRange",
                ns,
                &["limits"],
                false,
                false,
            ),
            builtin(
                "apps",
                "v1",
                "deployments",
                "Deployment",
                ns,
                &["deploy"],
                true,
                true,
            ),
            builtin(
                "apps",
                "v1",
                "replicasets",
                "ReplicaSet",
                ns,
                &["rs"],
                true,
                true,
            ),
            builtin(
                "apps",
                "v1",
                "statefulsets",
                "StatefulSet",
                ns,
                &["sts"],
                true,
                true,
            ),
            builtin(
                "apps",
                "v1",
                "daemonsets",
                "DaemonSet",
                ns,
                &["ds"],
                true,
                true,
            ),
            builtin(
                "apps",
                "v1",
                "controllerrevisions",
                "ControllerRevision",
                ns,
                &[],
                false,
                false,
            ),
            builtin("batch", "v1", "jobs", "Job", ns, &[], true, true),
            builtin(
                "batch",
                "v1",
                "cronjobs",
                "CronJob",
                ns,
                &["cj"],
                true,
                true,
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "roles",
                "Role",
                ns,
                &[],
                false,
                false,
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                ns,
                &[],
                false,
                false,
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                cluster,
                &[],
                false,
                false,
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                cluster,
                &[],
                false,
                false,
            ),
            builtin(
                "coordination.k8s.io",
                "v1",
                "leases",
                "Lease",
                ns,
                &[],
                false,
                false,
            ),
            builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                cluster,
                &["crd", "crds"],
                true,
                true,
            ),
            builtin(
                "networking.k8s.io",
                "v1",
                "ingresses",
                "Ingress",
                ns,
                &["ing"],
                true,
                true,
            ),
            builtin(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                ns,
                &["netpol"],
                false,
                true,
            ),
            builtin(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                ns,
                &["pdb"],
                true,
                true,
            ),
            builtin(
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                ns,
                &["hpa"],
                true,
                true,
            ),
            builtin(
                "storage.k8s.io",
                "v1",
                "storageclasses",
                "StorageClass",
                cluster,
                &["sc"],
                false,
                false,
            ),
            review(
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
                cluster,
            ),
            review(
                "authorization.k8s.io",
                "selfsubjectrulesreviews",
                "SelfSubjectRulesReview",
                cluster,
            ),
            review(
                "authorization.k8s.io",
                "subjectaccessreviews",
                "SubjectAccessReview",
                cluster,
            ),
            review(
                "authorization.k8s.io",
                "localsubjectaccessreviews",
                "LocalSubjectAccessReview",
                ns,
            ),
            review(
                "authentication.k8s.io",
                "selfsubjectreviews",
                "SelfSubjectReview",
                cluster,
            ),
        ];
        list.into_iter()
            .map(|mut r| {
                if r.plural == "endpoints" {
                    r.singular = "endpoints".to_string();
                }
                Arc::new(r)
            })
            .collect()
    })
}

/// The resources one cluster serves right now. Immutable: a CRD change builds a new one.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    resources: Vec<Arc<ResourceInfo>>,
    by_gvr: HashMap<(String, String, String), Arc<ResourceInfo>>,
}

impl Registry {
    pub fn new(resources: Vec<Arc<ResourceInfo>>) -> Self {
        let mut by_gvr = HashMap::new();
        for r in &resources {
            for v in &r.versions {
                by_gvr.insert((r.group.clone(), v.clone(), r.plural.clone()), r.clone());
            }
        }
        Registry { resources, by_gvr }
    }

    pub fn builtin() -> Arc<Registry> {
        static REG: OnceLock<Arc<Registry>> = OnceLock::new();
        REG.get_or_init(|| Arc::new(Registry::new(builtin_resources().to_vec())))
            .clone()
    }

    /// Built-ins plus the resources of the given CRD objects (those that are valid).
    pub fn with_crds<'a>(crds: impl Iterator<Item = &'a Value>) -> Registry {
        let mut list = builtin_resources().to_vec();
        for crd in crds {
            if crd.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            if let Some(info) = resource_from_crd(crd) {
                // A CRD cannot shadow a built-in.
                if !list
                    .iter()
                    .any(|r| r.group == info.group && r.plural == info.plural)
                {
                    list.push(Arc::new(info));
                }
            }
        }
        Registry::new(list)
    }

    pub fn resources(&self) -> &[Arc<ResourceInfo>] {
        &self.resources
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceInfo>> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    pub fn by_group_resource(&self, group_resource: &str) -> Option<&Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group_resource() == group_resource)
    }

    /// Find a resource by `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&Arc<ResourceInfo>> {
        let (group, version) = split_api_version(api_version);
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind && r.serves_version(version))
    }

    /// Every served group with its versions, in a stable order (core first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            let entry = match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some(e) => e,
                None => {
                    out.push((r.group.clone(), Vec::new()));
                    let last = out.len() - 1;
                    &mut out[last]
                }
            };
            for v in &r.versions {
                if !entry.1.contains(v) {
                    entry.1.push(v.clone());
                }
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    pub fn resources_in(&self, group: &str, version: &str) -> Vec<&Arc<ResourceInfo>> {
        self.resources
            .iter()
            .filter(|r| r.group == group && r.serves_version(version))
            .collect()
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by number.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stability, tail) = if let Some(t) = tail.strip_prefix("beta") {
        (1, t)
    } else if let Some(t) = tail.strip_prefix("alpha") {
        (0, t)
    } else if tail.is_empty() {
        (2, "")
    } else {
        return (0, 0, 0);
    };
    (stability, major, tail.parse().unwrap_or(0))
}

pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The served resource a CRD object describes, if it is well-formed.
pub fn resource_from_crd(crd: &Value) -> Option<ResourceInfo> {
    let spec = crd.get("spec")?;
    let group = str_at(spec, "/group")?.to_string();
    let plural = str_at(spec, "/names/plural")?.to_string();
    let kind = str_at(spec, "/names/kind")?.to_string();
    let singular = str_at(spec, "/names/singular")
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = str_at(spec, "/scope") != Some("Cluster");
    let strings = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions = Vec::new();
    let mut storage_first = Vec::new();
    let mut status = false;
    let mut scale = false;
    let mut printer_columns = HashMap::new();
    let mut schemas = HashMap::new();
    for v in spec.get("versions")?.as_array()? {
        let name = v.get("name")?.as_str()?.to_string();
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        if v.pointer("/subresources/status").is_some() {
            status = true;
        }
        if v.pointer("/subresources/scale").is_some() {
            scale = true;
        }
        let cols = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: c.get("name")?.as_str()?.to_string(),
                            type_: c
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("string")
                                .to_string(),
                            format: c
                                .get("format")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            description: c
                                .get("description")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            json_path: c.get("jsonPath")?.as_str()?.to_string(),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        printer_columns.insert(name.clone(), cols);
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            schemas.insert(name.clone(), Arc::new(schema.clone()));
        }
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage_first.push(name);
        } else {
            versions.push(name);
        }
    }
    // Preferred version: highest priority served version, like kube-apiserver's discovery order.
    storage_first.append(&mut versions);
    let mut versions = storage_first;
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    if versions.is_empty() {
        return None;
    }
    Some(ResourceInfo {
        group,
        versions,
        plural,
        singular,
        kind,
        namespaced,
        short_names: strings("/names/shortNames"),
        categories: strings("/names/categories"),
        status_subresource: status,
        scale_subresource: scale,
        builtin: false,
        has_generation: true,
        delete_returns_object: true,
        printer_columns,
        schemas,
        create_only: false,
    })
}
