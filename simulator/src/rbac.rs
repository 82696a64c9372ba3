//! Authorization: kube-apiserver's RBAC authorizer over the Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings in the cluster's store, for every identity outside `system:masters`.
//!
//! The [`RbacIndex`] is a change observer: it keeps the parsed roles and the bindings by subject
//! (user name, ServiceAccount user name, group), so a request looks at the bindings of its own
//! identity only, however many agents the cluster serves. Like kube-apiserver's bootstrap
//! policy, every authenticated identity may discover the API (`system:discovery`), ask what it
//! may do (`system:basic-user`) and read health/version (`system:public-info-viewer`); the
//! bootstrap ClusterRoles `cluster-admin`, `admin`, `edit` and `view` answer bindings that name
//! them while no ClusterRole of that name is stored. ClusterRoles with an `aggregationRule`
//! get the rules of the ClusterRoles their selectors match.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use crate::auth::{AUTHENTICATED_GROUP, UserInfo};
use crate::cluster::{ChangeObserver, ClusterState};
use crate::error::{ApiError, qualified};
use crate::store::{EventType, StoreState, StoredEvent};

const ROLES: &str = "roles.rbac.authorization.k8s.io";
const CLUSTER_ROLES: &str = "clusterroles.rbac.authorization.k8s.io";
const ROLE_BINDINGS: &str = "rolebindings.rbac.authorization.k8s.io";
const CLUSTER_ROLE_BINDINGS: &str = "clusterrolebindings.rbac.authorization.k8s.io";

/// What a request wants to do (kube's `authorizer.Attributes`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    /// `None` for a non-resource request (discovery, `/version`, `/healthz`, ...).
    pub resource: Option<ResourceAttributes>,
    /// The URL path of a non-resource request.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAttributes {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    pub fn resource(verb: &str, r: ResourceAttributes) -> Self {
        Attributes {
            verb: verb.to_string(),
            resource: Some(r),
            path: String::new(),
        }
    }

    pub fn non_resource(verb: &str, path: &str) -> Self {
        Attributes {
            verb: verb.to_string(),
            resource: None,
            path: path.to_string(),
        }
    }

    /// The `spec.resourceAttributes` / `spec.nonResourceAttributes` of an access review.
    pub fn from_review_spec(spec: &Value) -> Self {
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
            return Attributes::resource(
                &s(r, "verb"),
                ResourceAttributes {
                    group: s(r, "group"),
                    version: s(r, "version"),
                    resource: s(r, "resource"),
                    subresource: s(r, "subresource"),
                    namespace: s(r, "namespace"),
                    name: s(r, "name"),
                },
            );
        }
        let n = spec
            .get("nonResourceAttributes")
            .cloned()
            .unwrap_or(json!({}));
        Attributes::non_resource(&s(&n, "verb"), &s(&n, "path"))
    }
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why (allowed: which binding; denied: roles the bindings named that do not exist).
    pub reason: String,
}

/// One parsed `PolicyRule`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyRule {
    fn parse(v: &Value) -> Self {
        PolicyRule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PolicyRule {
            verbs: own(verbs),
            api_groups: own(groups),
            resources: own(resources),
            ..Default::default()
        }
    }

    fn urls(verbs: &[&str], urls: &[&str]) -> Self {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PolicyRule {
            verbs: own(verbs),
            non_resource_urls: own(urls),
            ..Default::default()
        }
    }

    /// kube's `RuleAllows`.
    pub fn allows(&self, a: &Attributes) -> bool {
        let verb_ok = self.verbs.iter().any(|v| v == "*" || *v == a.verb);
        if !verb_ok {
            return false;
        }
        match &a.resource {
            Some(r) => {
                let group_ok = self.api_groups.iter().any(|g| g == "*" || *g == r.group);
                let combined = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                let resource_ok = self.resources.iter().any(|res| {
                    res == "*"
                        || *res == combined
                        || (!r.subresource.is_empty()
                            && res.strip_prefix("*/") == Some(r.subresource.as_str()))
                });
                let name_ok = self.resource_names.is_empty()
                    || (!r.name.is_empty() && self.resource_names.contains(&r.name));
                group_ok && resource_ok && name_ok
            }
            None => self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == a.path
                    || u.strip_suffix('*')
                        .is_some_and(|prefix| a.path.starts_with(prefix))
            }),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({"verbs": self.verbs});
        if !self.api_groups.is_empty() || !self.resources.is_empty() {
            v["apiGroups"] = json!(self.api_groups);
            v["resources"] = json!(self.resources);
        }
        if !self.resource_names.is_empty() {
            v["resourceNames"] = json!(self.resource_names);
        }
        if !self.non_resource_urls.is_empty() {
            v["nonResourceURLs"] = json!(self.non_resource_urls);
        }
        v
    }
}

#[derive(Debug, Clone, Default)]
struct RoleDef {
    rules: Vec<PolicyRule>,
    labels: BTreeMap<String, String>,
    /// `aggregationRule.clusterRoleSelectors` (ClusterRoles only).
    aggregation: Option<Vec<Value>>,
}

impl RoleDef {
    fn parse(obj: &Value) -> Self {
        RoleDef {
            rules: obj
                .get("rules")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(PolicyRule::parse).collect())
                .unwrap_or_default(),
            labels: obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            aggregation: obj
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
                .cloned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

/// A RoleBinding (namespace set) or ClusterRoleBinding (namespace empty).
#[derive(Debug, Clone)]
struct Binding {
    namespace: String,
    name: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

impl Binding {
    fn parse(namespace: &str, obj: &Value) -> Self {
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let role = obj.get("roleRef").cloned().unwrap_or(json!({}));
        Binding {
            namespace: namespace.to_string(),
            name: s(obj.get("metadata").unwrap_or(&json!({})), "name"),
            role_kind: s(&role, "kind"),
            role_name: s(&role, "name"),
            subjects: obj
                .get("subjects")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| Subject {
                            kind: s(x, "kind"),
                            name: s(x, "name"),
                            namespace: s(x, "namespace"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The user names (`User`, ServiceAccount user names) and groups this binding applies to.
    fn index_keys(&self) -> Vec<SubjectKey> {
        self.subjects
            .iter()
            .filter_map(|s| self.subject_key(s))
            .collect()
    }

    fn subject_key(&self, s: &Subject) -> Option<SubjectKey> {
        match s.kind.as_str() {
            "User" => Some(SubjectKey::User(s.name.clone())),
            "Group" => Some(SubjectKey::Group(s.name.clone())),
            "ServiceAccount" => {
                let ns = if s.namespace.is_empty() {
                    &self.namespace
                } else {
                    &s.namespace
                };
                (!ns.is_empty())
                    .then(|| SubjectKey::User(format!("system:serviceaccount:{ns}:{}", s.name)))
            }
            _ => None,
        }
    }

    /// The subject through which the binding applies to `user`, if any.
    fn subject_for(&self, user: &UserInfo) -> Option<&Subject> {
        self.subjects.iter().find(|s| match self.subject_key(s) {
            Some(SubjectKey::User(n)) => n == user.name,
            Some(SubjectKey::Group(g)) => user.groups.contains(&g),
            None => false,
        })
    }

    /// kube-apiserver's wording of an allowing binding.
    fn describe(&self, subject: &Subject) -> String {
        let who = if subject.kind == "ServiceAccount" {
            let ns = if subject.namespace.is_empty() {
                &self.namespace
            } else {
                &subject.namespace
            };
            format!("{} {:?}", subject.kind, format!("{}/{ns}", subject.name))
        } else {
            format!("{} {:?}", subject.kind, subject.name)
        };
        if self.namespace.is_empty() {
            format!(
                "ClusterRoleBinding {:?} of {} {:?} to {who}",
                self.name, self.role_kind, self.role_name
            )
        } else {
            format!(
                "RoleBinding {:?} of {} {:?} to {who}",
                format!("{}/{}", self.name, self.namespace),
                self.role_kind,
                self.role_name
            )
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum SubjectKey {
    User(String),
    Group(String),
}

/// (namespace, name); the namespace is empty for cluster-scoped objects.
type Key = (String, String);

#[derive(Debug, Default)]
struct IndexState {
    roles: HashMap<Key, Arc<RoleDef>>,
    cluster_roles: HashMap<String, Arc<RoleDef>>,
    bindings: HashMap<Key, Arc<Binding>>,
    by_subject: HashMap<SubjectKey, BTreeSet<Key>>,
}

impl IndexState {
    fn remove_binding(&mut self, key: &Key) {
        if let Some(old) = self.bindings.remove(key) {
            for s in old.index_keys() {
                if let Some(set) = self.by_subject.get_mut(&s) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_subject.remove(&s);
                    }
                }
            }
        }
    }

    fn put_binding(&mut self, key: Key, b: Binding) {
        self.remove_binding(&key);
        for s in b.index_keys() {
            self.by_subject.entry(s).or_default().insert(key.clone());
        }
        self.bindings.insert(key, Arc::new(b));
    }

    fn apply(&mut self, e: &StoredEvent) {
        let gr = &*e.key.group_resource;
        if !matches!(
            gr,
            ROLES | CLUSTER_ROLES | ROLE_BINDINGS | CLUSTER_ROLE_BINDINGS
        ) {
            return;
        }
        let key = (e.key.namespace.to_string(), e.key.name.to_string());
        let deleted = e.event_type == EventType::Deleted;
        match gr {
            ROLES if deleted => {
                self.roles.remove(&key);
            }
            ROLES => {
                self.roles
                    .insert(key, Arc::new(RoleDef::parse(&e.object())));
            }
            CLUSTER_ROLES if deleted => {
                self.cluster_roles.remove(&key.1);
            }
            CLUSTER_ROLES => {
                self.cluster_roles
                    .insert(key.1, Arc::new(RoleDef::parse(&e.object())));
            }
            _ if deleted => self.remove_binding(&key),
            _ => {
                let b = Binding::parse(&key.0, &e.object());
                self.put_binding(key, b);
            }
        }
    }

    /// The rules of a binding's role, or the error kube-apiserver reports for a missing role.
    fn role_rules(&self, b: &Binding) -> Result<Vec<PolicyRule>, String> {
        match b.role_kind.as_str() {
            "Role" => self
                .roles
                .get(&(b.namespace.clone(), b.role_name.clone()))
                .map(|r| r.rules.clone())
                .ok_or_else(|| {
                    format!("role.rbac.authorization.k8s.io {:?} not found", b.role_name)
                }),
            "ClusterRole" => self.cluster_role_rules(&b.role_name).ok_or_else(|| {
                format!(
                    "clusterrole.rbac.authorization.k8s.io {:?} not found",
                    b.role_name
                )
            }),
            other => Err(format!("unknown roleRef kind {other:?}")),
        }
    }

    fn cluster_role_rules(&self, name: &str) -> Option<Vec<PolicyRule>> {
        let Some(role) = self.cluster_roles.get(name) else {
            return bootstrap_cluster_role(name);
        };
        let mut rules = role.rules.clone();
        if let Some(selectors) = &role.aggregation {
            let mut names: Vec<&String> = self
                .cluster_roles
                .iter()
                .filter(|(n, r)| {
                    n.as_str() != name && selectors.iter().any(|s| selector_matches(s, &r.labels))
                })
                .map(|(n, _)| n)
                .collect();
            names.sort();
            for n in names {
                if let Some(r) = self.cluster_roles.get(n) {
                    for rule in &r.rules {
                        if !rules.contains(rule) {
                            rules.push(rule.clone());
                        }
                    }
                }
            }
        }
        Some(rules)
    }

    /// The bindings that apply to `user` for a request in `namespace` ("" = cluster scope).
    fn bindings_for(&self, user: &UserInfo, namespace: &str) -> Vec<Arc<Binding>> {
        let mut keys: BTreeSet<&Key> = BTreeSet::new();
        let mut add = |k: SubjectKey| {
            if let Some(set) = self.by_subject.get(&k) {
                for key in set {
                    if key.0.is_empty() || (!namespace.is_empty() && key.0 == namespace) {
                        keys.insert(key);
                    }
                }
            }
        };
        add(SubjectKey::User(user.name.clone()));
        for g in &user.groups {
            add(SubjectKey::Group(g.clone()));
        }
        // Cluster bindings first, as kube-apiserver visits them.
        let mut out: Vec<Arc<Binding>> = keys
            .into_iter()
            .filter_map(|k| self.bindings.get(k).cloned())
            .collect();
        out.sort_by_key(|b| !b.namespace.is_empty());
        out
    }
}

/// matchLabels / matchExpressions of a `metav1.LabelSelector`; an empty selector matches all.
fn selector_matches(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            if labels.get(k).map(String::as_str) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values = strings(e, "values");
            let have = labels.get(key);
            let ok = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => have.is_some_and(|h| values.contains(h)),
                "NotIn" => have.is_none_or(|h| !values.contains(h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// The rules every authenticated identity has through kube-apiserver's bootstrap bindings
/// (`system:discovery`, `system:basic-user`, `system:public-info-viewer`).
fn authenticated_rules() -> &'static [PolicyRule] {
    static RULES: std::sync::OnceLock<Vec<PolicyRule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let mut rules = bootstrap_cluster_role("system:discovery").unwrap_or_default();
        rules.extend(bootstrap_cluster_role("system:basic-user").unwrap_or_default());
        rules.extend(bootstrap_cluster_role("system:public-info-viewer").unwrap_or_default());
        rules
    })
}

/// The bootstrap ClusterRoles this simulator knows, by name.
const BOOTSTRAP_CLUSTER_ROLES: &[&str] = &[
    "cluster-admin",
    "system:discovery",
    "system:basic-user",
    "system:public-info-viewer",
    "view",
    "edit",
    "admin",
];

/// kube-apiserver's bootstrap ClusterRoles that bindings commonly name, built once (the
/// authorizer consults them on every request).
fn bootstrap_cluster_role_rules(name: &str) -> Option<&'static [PolicyRule]> {
    static ROLES: std::sync::OnceLock<BTreeMap<&'static str, Vec<PolicyRule>>> =
        std::sync::OnceLock::new();
    ROLES
        .get_or_init(|| {
            BOOTSTRAP_CLUSTER_ROLES
                .iter()
                .filter_map(|name| build_bootstrap_cluster_role(name).map(|rules| (*name, rules)))
                .collect()
        })
        .get(name)
        .map(Vec::as_slice)
}

/// kube-apiserver's bootstrap ClusterRoles that bindings commonly name.
fn bootstrap_cluster_role(name: &str) -> Option<Vec<PolicyRule>> {
    bootstrap_cluster_role_rules(name).map(<[PolicyRule]>::to_vec)
}

fn build_bootstrap_cluster_role(name: &str) -> Option<Vec<PolicyRule>> {
    let read = ["get", "list", "watch"];
    let write = ["create", "delete", "deletecollection", "patch", "update"];
    let all_write: Vec<&str> = read.iter().chain(write.iter()).copied().collect();
    let workloads: &[&str] = &[
        "pods",
        "pods/log",
        "pods/status",
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "serviceaccounts",
        "services",
        "services/status",
        "events",
        "limitranges",
        "resourcequotas",
        "resourcequotas/status",
        "namespaces/status",
    ];
    let apps: &[&str] = &[
        "controllerrevisions",
        "daemonsets",
        "daemonsets/status",
        "deployments",
        "deployments/scale",
        "deployments/status",
        "replicasets",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets",
        "statefulsets/scale",
        "statefulsets/status",
    ];
    Some(match name {
        "cluster-admin" => vec![
            PolicyRule::rule(&["*"], &["*"], &["*"]),
            PolicyRule::urls(&["*"], &["*"]),
        ],
        "system:discovery" => vec![PolicyRule::urls(
            &["get"],
            &[
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ],
        )],
        "system:basic-user" => vec![
            PolicyRule::rule(
                &["create"],
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            ),
            PolicyRule::rule(
                &["create"],
                &["authentication.k8s.io"],
                &["selfsubjectreviews"],
            ),
        ],
        "system:public-info-viewer" => vec![PolicyRule::urls(
            &["get"],
            &["/healthz", "/livez", "/readyz", "/version", "/version/"],
        )],
        "view" => vec![
            PolicyRule::rule(&read, &[""], workloads),
            PolicyRule::rule(&read, &[""], &["namespaces"]),
            PolicyRule::rule(&read, &["apps"], apps),
            PolicyRule::rule(
                &read,
                &["batch"],
                &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
            ),
            PolicyRule::rule(
                &read,
                &["networking.k8s.io"],
                &["ingresses", "ingresses/status", "networkpolicies"],
            ),
            PolicyRule::rule(
                &read,
                &["policy"],
                &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            ),
            PolicyRule::rule(
                &read,
                &["autoscaling"],
                &[
                    "horizontalpodautoscalers",
                    "horizontalpodautoscalers/status",
                ],
            ),
            PolicyRule::rule(&read, &["coordination.k8s.io"], &["leases"]),
        ],
        "edit" | "admin" => {
            let mut rules = vec![
                PolicyRule::rule(&all_write, &[""], workloads),
                PolicyRule::rule(&all_write, &[""], &["secrets"]),
                PolicyRule::rule(&read, &[""], &["namespaces"]),
                PolicyRule::rule(&all_write, &["apps"], apps),
                PolicyRule::rule(&all_write, &["batch"], &["cronjobs", "jobs"]),
                PolicyRule::rule(
                    &all_write,
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                ),
                PolicyRule::rule(&all_write, &["policy"], &["poddisruptionbudgets"]),
                PolicyRule::rule(&all_write, &["autoscaling"], &["horizontalpodautoscalers"]),
                PolicyRule::rule(&all_write, &["coordination.k8s.io"], &["leases"]),
                PolicyRule::rule(&["create"], &[""], &["serviceaccounts/token"]),
            ];
            if name == "admin" {
                rules.push(PolicyRule::rule(
                    &all_write,
                    &["rbac.authorization.k8s.io"],
                    &["roles", "rolebindings"],
                ));
                rules.push(PolicyRule::rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ));
            }
            rules
        }
        _ => return None,
    })
}

/// The RBAC state of one cluster, kept current from its store's committed changes.
#[derive(Debug, Default)]
pub struct RbacIndex {
    state: RwLock<IndexState>,
}

impl ChangeObserver for RbacIndex {
    fn on_events(&self, _cluster: &ClusterState, _state: &StoreState, events: &[Arc<StoredEvent>]) {
        let relevant = events.iter().any(|e| {
            matches!(
                &*e.key.group_resource,
                ROLES | CLUSTER_ROLES | ROLE_BINDINGS | CLUSTER_ROLE_BINDINGS
            )
        });
        if !relevant {
            return;
        }
        let mut st = match self.state.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        for e in events {
            st.apply(e);
        }
    }
}

impl RbacIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, IndexState> {
        match self.state.read() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// kube-apiserver's decision for `user` doing `attrs`: `system:masters` always; otherwise
    /// the bootstrap rules of authenticated users, then the user's and its groups' bindings.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.is_admin() {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        if user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            for role in [
                "system:discovery",
                "system:basic-user",
                "system:public-info-viewer",
            ] {
                if bootstrap_cluster_role_rules(role)
                    .unwrap_or_default()
                    .iter()
                    .any(|r| r.allows(attrs))
                {
                    return Decision {
                        allowed: true,
                        reason: format!(
                            "RBAC: allowed by ClusterRoleBinding {role:?} of ClusterRole {role:?} to Group {AUTHENTICATED_GROUP:?}"
                        ),
                    };
                }
            }
        }
        let namespace = attrs
            .resource
            .as_ref()
            .map(|r| r.namespace.as_str())
            .unwrap_or("");
        let index = self.read();
        let mut errors = Vec::new();
        for b in index.bindings_for(user, namespace) {
            match index.role_rules(&b) {
                Ok(rules) => {
                    if rules.iter().any(|r| r.allows(attrs))
                        && let Some(subject) = b.subject_for(user)
                    {
                        return Decision {
                            allowed: true,
                            reason: format!("RBAC: allowed by {}", b.describe(subject)),
                        };
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let reason = match errors.len() {
            0 => String::new(),
            1 => format!("RBAC: {}", errors[0]),
            _ => format!("RBAC: [{}]", errors.join(", ")),
        };
        Decision {
            allowed: false,
            reason,
        }
    }

    /// The rules `user` has in `namespace` (`SelfSubjectRulesReview`): resource rules and
    /// non-resource rules, plus whether some role could not be evaluated.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        if user.is_admin() {
            return (
                bootstrap_cluster_role("cluster-admin").unwrap_or_default(),
                Vec::new(),
            );
        }
        let mut rules: Vec<PolicyRule> = Vec::new();
        if user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            rules.extend(authenticated_rules().iter().cloned());
        }
        let index = self.read();
        let mut errors = Vec::new();
        for b in index.bindings_for(user, namespace) {
            match index.role_rules(&b) {
                Ok(rs) => {
                    for r in rs {
                        if !rules.contains(&r) {
                            rules.push(r);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        (rules, errors)
    }
}

/// kube-apiserver's 403 for a denied request (`responsewriters.Forbidden`).
pub fn forbidden(user: &UserInfo, attrs: &Attributes, reason: &str) -> ApiError {
    let msg = match &attrs.resource {
        None => format!(
            "User {:?} cannot {} path {:?}",
            user.name, attrs.verb, attrs.path
        ),
        Some(r) => {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            if r.namespace.is_empty() {
                format!(
                    "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
                    user.name, attrs.verb, resource, r.group
                )
            } else {
                format!(
                    "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
                    user.name, attrs.verb, resource, r.group, r.namespace
                )
            }
        }
    };
    // kube-apiserver escapes what could read as HTML (paths are client-chosen).
    let msg = msg
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let err = if reason.is_empty() {
        msg
    } else {
        format!("{msg}: {reason}")
    };
    match &attrs.resource {
        None => ApiError::forbidden(format!("forbidden: {err}")).with_details(json!({})),
        Some(r) => {
            let gr = qualified(&r.group, &r.resource);
            let message = if r.name.is_empty() {
                format!("{gr} is forbidden: {err}")
            } else {
                format!("{gr} {:?} is forbidden: {err}", r.name)
            };
            let mut details = json!({"kind": r.resource});
            if !r.name.is_empty() {
                details["name"] = json!(r.name);
            }
            if !r.group.is_empty() {
                details["group"] = json!(r.group);
            }
            ApiError::forbidden(message).with_details(details)
        }
    }
}

/// kube-apiserver's impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`
/// headers; what `kubectl --as`/`--as-group` send): the requester needs the `impersonate` verb
/// on `users` (or `serviceaccounts` for a ServiceAccount user name), on `groups` for each group
/// and on `uids`; the request then goes on as the impersonated identity (plus
/// `system:authenticated`, and the ServiceAccount groups when impersonating one without groups).
/// `Ok(None)` when the request impersonates no one.
pub fn impersonate(
    rbac: &RbacIndex,
    requester: &UserInfo,
    headers: &http::HeaderMap,
) -> Result<Option<UserInfo>, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let user = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid").into_iter().next();
    let Some(user) = user else {
        if groups.is_empty() && uid.is_none() {
            return Ok(None);
        }
        return Err(ApiError::internal(
            "requested impersonation of groups or a uid without impersonating a user",
        ));
    };
    let check = |resource: &str, group: &str, namespace: &str, name: &str| {
        let attrs = Attributes::resource(
            "impersonate",
            ResourceAttributes {
                group: group.to_string(),
                resource: resource.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                ..Default::default()
            },
        );
        let d = rbac.authorize(requester, &attrs);
        if d.allowed {
            Ok(())
        } else {
            Err(forbidden(requester, &attrs, &d.reason))
        }
    };
    let service_account = crate::auth::split_service_account(&user);
    match service_account {
        Some((ns, sa)) => check("serviceaccounts", "", ns, sa)?,
        None => check("users", "", "", &user)?,
    }
    for g in &groups {
        check("groups", "", "", g)?;
    }
    if let Some(u) = &uid {
        check("uids", "authentication.k8s.io", "", u)?;
    }
    let mut identity = match service_account {
        Some((ns, sa)) if groups.is_empty() => UserInfo::service_account(ns, sa, ""),
        _ => UserInfo {
            name: user.clone(),
            uid: String::new(),
            groups,
        },
    };
    if let Some(u) = uid {
        identity.uid = u;
    }
    if user != "system:anonymous" && !identity.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        identity.groups.push(AUTHENTICATED_GROUP.to_string());
    }
    Ok(Some(identity))
}
