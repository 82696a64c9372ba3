//! End-to-end behaviour tests: changes go in, the returned actions are applied to a small
//! in-memory store (the way the simulator's core applies them), and the resulting changes are fed
//! back, until the simulated clock reaches the time asked for.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::DateTime;
use serde_json::{Value, json};

use super::*;

type Key = (String, String, Option<String>, String);

fn key_of(object: &Value) -> Key {
    (
        object["apiVersion"].as_str().unwrap_or_default().to_owned(),
        object["kind"].as_str().unwrap_or_default().to_owned(),
        object["metadata"]["namespace"].as_str().map(str::to_owned),
        object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

struct Store(BTreeMap<Key, Value>);

impl ObjectView for Store {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.0
            .get(&(
                api_version.to_owned(),
                kind.to_owned(),
                namespace.map(str::to_owned),
                name.to_owned(),
            ))
            .cloned()
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        self.0
            .iter()
            .filter(|((a, k, ns, _), _)| {
                a == api_version && k == kind && (namespace.is_none() || ns.as_deref() == namespace)
            })
            .map(|(_, object)| object.clone())
            .collect()
    }
}

/// A tiny object store plus the behaviour, applying actions in time order.
struct TestCluster {
    store: Store,
    behaviour: ClusterBehaviour,
    queue: Vec<(Duration, u64, Action)>,
    sequence: u64,
    now: Duration,
    next_uid: u64,
    /// Every write applied, with its time: the cluster's timeline.
    timeline: Vec<String>,
}

fn at_secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

impl TestCluster {
    fn new(profile: Profile, seed: u64) -> Self {
        let clock = WallClock::starting_at(
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .to_utc(),
        );
        let behaviour = ClusterBehaviour::with_clock(profile, seed, clock);
        let mut cluster = Self {
            store: Store(BTreeMap::new()),
            queue: Vec::new(),
            sequence: 0,
            now: Duration::ZERO,
            next_uid: 0,
            timeline: Vec::new(),
            behaviour,
        };
        for object in cluster.behaviour.initial_objects() {
            cluster.create(object);
        }
        cluster
    }

    fn fast() -> Self {
        Self::new(Profile::fast(), 1)
    }

    fn emit(&mut self, kind: ChangeKind, object: Value) {
        let (api_version, kind_name, namespace, name) = key_of(&object);
        let change = ObjectChange {
            kind,
            api_version,
            kind_name,
            namespace,
            name,
            object,
        };
        let actions = self.behaviour.on_change(self.now, &change, &self.store);
        for action in actions {
            assert!(
                action.at >= self.now,
                "action scheduled in the past: {action:?}"
            );
            self.sequence += 1;
            self.queue.push((action.at, self.sequence, action.action));
        }
    }

    fn create(&mut self, mut object: Value) -> Value {
        self.next_uid += 1;
        let metadata = &mut object["metadata"];
        metadata["uid"] = json!(format!("uid-{}", self.next_uid));
        metadata["generation"] = json!(1);
        metadata["creationTimestamp"] = json!(self.behaviour.clock().timestamp(self.now));
        let key = key_of(&object);
        assert!(!self.store.0.contains_key(&key), "{key:?} exists");
        self.store.0.insert(key, object.clone());
        self.emit(ChangeKind::Added, object.clone());
        object
    }

    fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Value {
        self.store
            .get(api_version, kind, namespace, name)
            .unwrap_or_else(|| panic!("{kind} {name} does not exist"))
    }

    fn deployment(&self, name: &str) -> Value {
        self.get("apps/v1", "Deployment", Some("default"), name)
    }

    fn pods(&self) -> Vec<Value> {
        self.store.list("v1", "Pod", Some("default"))
    }

    /// Changes an object the way a user's update does (generation bumps on spec changes).
    fn update(
        &mut self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let mut object = self.get(api_version, kind, namespace, name);
        let before = object["spec"].clone();
        change(&mut object);
        if object["spec"] != before {
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            object["metadata"]["generation"] = json!(generation);
        }
        self.store.0.insert(key_of(&object), object.clone());
        self.emit(ChangeKind::Modified, object);
    }

    /// A user's delete: pods get a deletionTimestamp (graceful), everything else goes at once.
    fn delete_gracefully(
        &mut self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) {
        let timestamp = self.behaviour.clock().timestamp(self.now);
        self.update(api_version, kind, namespace, name, |object| {
            object["metadata"]["deletionTimestamp"] = json!(timestamp);
        });
    }

    fn remove(&mut self, key: &Key) {
        let Some(object) = self.store.0.remove(key) else {
            return;
        };
        let uid = object["metadata"]["uid"].clone();
        self.emit(ChangeKind::Deleted, object);
        // Background garbage collection of dependents.
        let dependents: Vec<Key> = self
            .store
            .0
            .iter()
            .filter(|(_, candidate)| {
                candidate["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|owners| owners.iter().any(|owner| owner["uid"] == uid))
            })
            .map(|(key, _)| key.clone())
            .collect();
        for dependent in dependents {
            self.remove(&dependent);
        }
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::UpdateStatus {
                api_version,
                kind,
                namespace,
                name,
                status,
                expected_generation,
            } => {
                let key = (api_version, kind, namespace, name);
                let Some(object) = self.store.0.get(&key) else {
                    return;
                };
                if expected_generation.is_some()
                    && object["metadata"]["generation"].as_i64() != expected_generation
                {
                    self.timeline.push(format!(
                        "{:?} skip stale status {}/{}",
                        self.now, key.1, key.3
                    ));
                    return;
                }
                if object["status"] == status {
                    return;
                }
                let mut object = object.clone();
                object["status"] = status;
                self.timeline.push(format!(
                    "{:?} status {}/{} {}",
                    self.now, key.1, key.3, object["status"]
                ));
                self.store.0.insert(key, object.clone());
                self.emit(ChangeKind::Modified, object);
            }
            Action::Create { object } => {
                if let Some((namespace, pod, node)) = binding_target(&object) {
                    let key = ("v1".to_owned(), "Pod".to_owned(), namespace, pod);
                    let Some(mut pod) = self.store.0.get(&key).cloned() else {
                        return;
                    };
                    if pod["spec"]["nodeName"]
                        .as_str()
                        .is_some_and(|bound| !bound.is_empty())
                    {
                        return;
                    }
                    pod["spec"]["nodeName"] = json!(node);
                    self.timeline
                        .push(format!("{:?} bind {} to {node}", self.now, key.3));
                    self.store.0.insert(key, pod.clone());
                    self.emit(ChangeKind::Modified, pod);
                    return;
                }
                if self.store.0.contains_key(&key_of(&object)) {
                    return;
                }
                self.timeline.push(format!(
                    "{:?} create {}/{}",
                    self.now, object["kind"], object["metadata"]["name"]
                ));
                self.create(object);
            }
            Action::Patch {
                api_version,
                kind,
                namespace,
                name,
                patch,
                expected_uid,
            } => {
                let key = (api_version, kind, namespace, name);
                let Some(object) = self.store.0.get(&key) else {
                    return;
                };
                if expected_uid.is_some()
                    && object["metadata"]["uid"].as_str() != expected_uid.as_deref()
                {
                    return;
                }
                let mut patched = object.clone();
                merge_patch(&mut patched, &patch);
                if patched == *object {
                    return;
                }
                if patched["spec"] != object["spec"] {
                    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                    patched["metadata"]["generation"] = json!(generation);
                }
                self.timeline
                    .push(format!("{:?} patch {}/{} {patch}", self.now, key.1, key.3));
                self.store.0.insert(key, patched.clone());
                self.emit(ChangeKind::Modified, patched);
            }
            Action::Delete {
                api_version,
                kind,
                namespace,
                name,
            } => {
                let key = (api_version, kind, namespace, name);
                if self.store.0.contains_key(&key) {
                    self.timeline
                        .push(format!("{:?} delete {}/{}", self.now, key.1, key.3));
                    self.remove(&key);
                }
            }
        }
    }

    /// Applies every action due up to `until`, in time order, then sets the clock to `until`.
    fn run_until(&mut self, until: Duration) {
        let mut steps = 0;
        while let Some(index) = (0..self.queue.len())
            .filter(|index| self.queue[*index].0 <= until)
            .min_by_key(|index| (self.queue[*index].0, self.queue[*index].1))
        {
            steps += 1;
            assert!(steps < 100_000, "the behaviour does not converge");
            let (at, _, action) = self.queue.remove(index);
            self.now = self.now.max(at);
            self.apply(action);
        }
        self.now = self.now.max(until);
    }

    fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }
}

fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    })
}

fn condition<'a>(object: &'a Value, kind: &str) -> &'a Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|condition| condition["type"] == kind)
        })
        .unwrap_or(&Value::Null)
}

fn status_of<'a>(object: &'a Value, kind: &str) -> (&'a str, &'a str) {
    let condition = condition(object, kind);
    (
        condition["status"].as_str().unwrap_or("-"),
        condition["reason"].as_str().unwrap_or("-"),
    )
}

fn is_available(deployment: &Value) -> bool {
    condition(deployment, "Available")["status"] == "True"
}

#[test]
fn the_fast_profile_makes_a_three_replica_deployment_available_at_once_with_real_status() {
    let mut cluster = TestCluster::fast();
    cluster.create(deployment("web", 3, "nginx:1.27"));
    cluster.run_until(Duration::ZERO);

    let deployment = cluster.deployment("web");
    let status = &deployment["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["replicas"], 3);
    assert_eq!(status["updatedReplicas"], 3);
    assert_eq!(status["readyReplicas"], 3);
    assert_eq!(status["availableReplicas"], 3);
    assert!(status.get("unavailableReplicas").is_none(), "{status}");
    assert_eq!(
        condition(&deployment, "Available")["reason"],
        "MinimumReplicasAvailable"
    );
    assert_eq!(
        condition(&deployment, "Available")["message"],
        "Deployment has minimum availability."
    );
    assert_eq!(condition(&deployment, "Available")["status"], "True");
    let progressing = condition(&deployment, "Progressing");
    assert_eq!(
        (
            progressing["status"].as_str(),
            progressing["reason"].as_str()
        ),
        (Some("True"), Some("NewReplicaSetAvailable"))
    );
    let message = progressing["message"].as_str().unwrap();
    assert!(
        message.starts_with("ReplicaSet \"web-")
            && message.ends_with("\" has successfully progressed."),
        "{message}"
    );
    assert!(
        progressing["lastUpdateTime"].is_string() && progressing["lastTransitionTime"].is_string()
    );

    let pods = cluster.pods();
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        let hash = pod["metadata"]["labels"]["pod-template-hash"]
            .as_str()
            .unwrap();
        assert!(
            pod["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
        assert!(message.contains(&format!("web-{hash}")));
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        // Pods belong to the ReplicaSet `web-<hash>`, which belongs to the Deployment.
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        let rs_name = format!("web-{hash}");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], rs_name);
        let rs = cluster.get("apps/v1", "ReplicaSet", Some("default"), &rs_name);
        assert_eq!(
            pod["metadata"]["ownerReferences"][0]["uid"],
            rs["metadata"]["uid"]
        );
        assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(
            rs["metadata"]["ownerReferences"][0]["uid"],
            deployment["metadata"]["uid"]
        );
        assert_eq!(rs["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(
            rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
            hash
        );
        assert_eq!(
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
        assert_eq!(rs["spec"]["replicas"], 3);
        assert_eq!(rs["status"]["availableReplicas"], 3);
        assert_eq!(pod["spec"]["nodeName"], "sim-node");
        assert_eq!(pod["status"]["phase"], "Running");
        for kind in [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ] {
            assert_eq!(condition(pod, kind)["status"], "True", "{kind} in {pod}");
        }
        let container = &pod["status"]["containerStatuses"][0];
        assert_eq!(container["ready"], true);
        assert_eq!(container["started"], true);
        assert_eq!(container["restartCount"], 0);
        assert!(container["state"]["running"]["startedAt"].is_string());
        assert_eq!(pod["status"]["hostIP"], "172.18.0.2");
        assert!(
            pod["status"]["podIP"]
                .as_str()
                .unwrap()
                .starts_with("10.42.0.")
        );
        assert_eq!(pod["status"]["qosClass"], "BestEffort");
    }
    let ips: std::collections::BTreeSet<String> = pods
        .iter()
        .map(|pod| pod["status"]["podIP"].to_string())
        .collect();
    assert_eq!(ips.len(), 3, "pod IPs are unique");
}

#[test]
fn the_behaviour_converges_and_stops_writing_once_everything_is_ready() {
    let mut cluster = TestCluster::fast();
    cluster.create(deployment("web", 3, "nginx"));
    cluster.run_for(Duration::from_secs(3600));
    assert!(
        cluster.queue.is_empty(),
        "nothing left to do: {:?}",
        cluster.queue
    );
    let writes = cluster.timeline.len();
    // Poking the deployment again (e.g. a label change) writes nothing new.
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["metadata"]["labels"]["team"] = json!("a");
    });
    cluster.run_for(Duration::from_secs(60));
    assert_eq!(
        cluster.timeline.len(),
        writes,
        "{:#?}",
        &cluster.timeline[writes..]
    );
}

#[test]
fn the_realistic_profile_makes_pods_ready_after_seconds_of_jitter_on_worker_nodes() {
    let mut cluster = TestCluster::new(Profile::realistic(), 8);
    cluster.create(deployment("web", 4, "nginx"));
    cluster.run_until(at_secs(1.0));
    let early = cluster.deployment("web");
    assert!(!is_available(&early), "{early}");
    assert_eq!(early["status"]["replicas"], 4);
    for pod in cluster.pods() {
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_ne!(
            pod["spec"]["nodeName"], "control-plane",
            "the control plane is tainted"
        );
    }
    cluster.run_until(at_secs(7.0));
    let deployment = cluster.deployment("web");
    assert!(is_available(&deployment), "{deployment}");
    assert_eq!(deployment["status"]["availableReplicas"], 4);
    let nodes: std::collections::BTreeSet<String> = cluster
        .pods()
        .iter()
        .map(|pod| pod["spec"]["nodeName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        nodes,
        ["worker-a".to_owned(), "worker-b".to_owned()].into(),
        "pods are spread over the workers"
    );
    let ready_times: std::collections::BTreeSet<String> = cluster
        .pods()
        .iter()
        .map(|pod| {
            condition(pod, "Ready")["lastTransitionTime"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        ready_times.len() > 1,
        "jitter spreads readiness: {ready_times:?}"
    );
}

fn scenario(profile: Profile, seed: u64) -> Vec<String> {
    let mut cluster = TestCluster::new(profile, seed);
    cluster.create(deployment("web", 5, "nginx"));
    cluster.create(deployment("api", 2, "api:crashloop"));
    cluster.run_for(Duration::from_secs(3));
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    });
    cluster.run_for(Duration::from_secs(120));
    cluster.timeline
}

#[test]
fn the_same_seed_gives_the_same_timeline_and_another_seed_a_different_one() {
    for profile in [Profile::realistic(), Profile::chaos()] {
        let first = scenario(profile.clone(), 42);
        assert_eq!(first, scenario(profile.clone(), 42), "{}", profile.name);
        assert_ne!(first, scenario(profile.clone(), 43), "{}", profile.name);
    }
}

fn tainted_profile() -> Profile {
    let mut profile = Profile::fast();
    profile.nodes = (1..=3)
        .map(|index| {
            let mut node = NodeTemplate::named(format!("node-{index}"));
            node.taints.push(Taint {
                key: "dedicated".into(),
                value: "infra".into(),
                effect: TaintEffect::NoSchedule,
            });
            node
        })
        .collect();
    profile
}

#[test]
fn pods_that_tolerate_no_node_stay_pending_unschedulable_and_the_deployment_never_becomes_available()
 {
    let mut cluster = TestCluster::new(tainted_profile(), 1);
    cluster.create(deployment("web", 2, "nginx"));
    cluster.run_for(Duration::from_secs(30));
    for pod in cluster.pods() {
        assert_eq!(pod["status"]["phase"], "Pending");
        assert!(pod["spec"]["nodeName"].is_null());
        let scheduled = condition(&pod, "PodScheduled");
        assert_eq!(scheduled["status"], "False");
        assert_eq!(scheduled["reason"], "Unschedulable");
        assert_eq!(
            scheduled["message"],
            "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: infra}. preemption: \
             0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }
    let deployment = cluster.deployment("web");
    assert_eq!(
        status_of(&deployment, "Available"),
        ("False", "MinimumReplicasUnavailable")
    );
    assert_eq!(
        status_of(&deployment, "Progressing"),
        ("True", "ReplicaSetUpdated")
    );
    assert_eq!(deployment["status"]["unavailableReplicas"], 2);
    assert!(deployment["status"].get("readyReplicas").is_none());

    cluster.run_until(Duration::from_secs(601));
    let deployment = cluster.deployment("web");
    assert_eq!(
        status_of(&deployment, "Progressing"),
        ("False", "ProgressDeadlineExceeded")
    );
    assert!(
        condition(&deployment, "Progressing")["message"]
            .as_str()
            .unwrap()
            .ends_with("has timed out progressing.")
    );
    assert!(!is_available(&deployment));
}

#[test]
fn removing_a_nodes_taint_schedules_the_pending_pods_and_the_deployment_recovers() {
    let mut cluster = TestCluster::new(tainted_profile(), 1);
    cluster.create(deployment("web", 2, "nginx"));
    cluster.run_for(Duration::from_secs(5));
    assert!(!is_available(&cluster.deployment("web")));
    cluster.update("v1", "Node", None, "node-2", |node| {
        node["spec"]["taints"] = json!([]);
    });
    cluster.run_for(Duration::from_secs(1));
    for pod in cluster.pods() {
        assert_eq!(pod["spec"]["nodeName"], "node-2", "{pod}");
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(condition(&pod, "PodScheduled")["status"], "True");
    }
    let deployment = cluster.deployment("web");
    assert!(is_available(&deployment), "{deployment}");
    assert_eq!(
        status_of(&deployment, "Progressing"),
        ("True", "NewReplicaSetAvailable")
    );
}

#[test]
fn adding_a_toleration_to_a_pending_pod_gets_it_scheduled() {
    let mut cluster = TestCluster::new(tainted_profile(), 1);
    cluster.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "solo", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }));
    cluster.run_for(Duration::from_secs(1));
    let pod = cluster.get("v1", "Pod", Some("default"), "solo");
    assert_eq!(status_of(&pod, "PodScheduled"), ("False", "Unschedulable"));
    cluster.update("v1", "Pod", Some("default"), "solo", |pod| {
        pod["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]);
    });
    cluster.run_for(Duration::from_secs(1));
    let pod = cluster.get("v1", "Pod", Some("default"), "solo");
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(condition(&pod, "Ready")["status"], "True");
}

#[test]
fn a_node_selector_that_matches_no_node_leaves_the_pod_pending() {
    let mut cluster = TestCluster::fast();
    let mut web = deployment("web", 1, "nginx");
    web["spec"]["template"]["spec"]["nodeSelector"] = json!({"disktype": "ssd"});
    cluster.create(web);
    cluster.run_for(Duration::from_secs(1));
    let pod = &cluster.pods()[0];
    assert_eq!(
        condition(pod, "PodScheduled")["message"],
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: \
         0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    cluster.update("v1", "Node", None, "sim-node", |node| {
        node["metadata"]["labels"]["disktype"] = json!("ssd");
    });
    cluster.run_for(Duration::from_secs(1));
    assert!(is_available(&cluster.deployment("web")));
}

#[test]
fn a_no_execute_taint_evicts_pods_that_do_not_tolerate_it_and_they_cannot_come_back() {
    let mut cluster = TestCluster::fast();
    cluster.create(deployment("web", 2, "nginx"));
    cluster.run_for(Duration::from_secs(1));
    assert!(is_available(&cluster.deployment("web")));
    cluster.update("v1", "Node", None, "sim-node", |node| {
        node["spec"]["taints"] = json!([{"key": "maintenance", "effect": "NoExecute"}]);
    });
    cluster.run_for(Duration::from_secs(1));
    let pods = cluster.pods();
    assert_eq!(pods.len(), 2, "replacements were created");
    for pod in &pods {
        assert_eq!(status_of(pod, "PodScheduled"), ("False", "Unschedulable"));
    }
    assert!(!is_available(&cluster.deployment("web")));
}

#[test]
fn images_matching_the_never_ready_pattern_run_but_never_turn_ready() {
    let mut cluster = TestCluster::fast();
    cluster.create(deployment("web", 2, "registry.example/web:never-ready"));
    cluster.run_for(Duration::from_secs(120));
    for pod in cluster.pods() {
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(status_of(&pod, "Ready"), ("False", "ContainersNotReady"));
        assert_eq!(
            condition(&pod, "Ready")["message"],
            "containers with unready status: [app]"
        );
        assert_eq!(pod["status"]["containerStatuses"][0]["ready"], false);
        assert!(pod["status"]["containerStatuses"][0]["state"]["running"].is_object());
    }
    let deployment = cluster.deployment("web");
    assert!(!is_available(&deployment));
    assert_eq!(deployment["status"]["replicas"], 2);
    assert!(deployment["status"].get("readyReplicas").is_none());
}

#[test]
fn crash_looping_containers_restart_with_growing_back_off() {
    let mut cluster = TestCluster::fast();
    cluster.create(deployment("web", 1, "web:crashloop"));
    cluster.run_until(Duration::from_secs(1));
    let restarts = |cluster: &TestCluster| {
        cluster.pods()[0]["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(restarts(&cluster), 1);
    let pod = &cluster.pods()[0];
    let container = &pod["status"]["containerStatuses"][0];
    assert_eq!(container["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert!(
        container["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=app pod=web-")
    );
    assert_eq!(container["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(container["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(pod["status"]["phase"], "Running");
    cluster.run_until(Duration::from_secs(11));
    assert_eq!(restarts(&cluster), 2);
    cluster.run_until(Duration::from_secs(29));
    assert_eq!(restarts(&cluster), 2, "the second back-off is 20s");
    cluster.run_until(Duration::from_secs(30));
    assert_eq!(restarts(&cluster), 3);
    cluster.run_until(Duration::from_secs(69));
    assert_eq!(restarts(&cluster), 3, "the third back-off is 40s");
    cluster.run_until(Duration::from_secs(70));
    assert_eq!(restarts(&cluster), 4);
    assert!(!is_available(&cluster.deployment("web")));
}

#[test]
fn images_that_cannot_be_pulled_leave_the_pod_pending_in_image_pull_back_off() {
    let mut cluster = TestCluster::fast();
    cluster.create(deployment("web", 1, "ghcr.io/none/web:pull-error"));
    cluster.run_for(Duration::from_secs(10));
    let pod = &cluster.pods()[0];
    assert_eq!(pod["status"]["phase"], "Pending");
    let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
    assert_eq!(waiting["reason"], "ImagePullBackOff");
    assert_eq!(
        waiting["message"],
        "Back-off pulling image \"ghcr.io/none/web:pull-error\""
    );
    assert!(!is_available(&cluster.deployment("web")));
}

#[test]
fn a_rule_for_a_named_deployment_fails_only_that_deployments_pods() {
    let mut profile = Profile::fast();
    let selector = PodSelector {
        kind: Some("Deployment".into()),
        name: Some(Pattern::new("payments").unwrap()),
        ..Default::default()
    };
    profile.pods.insert(
        0,
        PodRule::matching(selector).outcome(PodOutcome::CrashLoopBackOff),
    );
    let mut cluster = TestCluster::new(profile, 1);
    cluster.create(deployment("payments", 1, "nginx"));
    cluster.create(deployment("web", 1, "nginx"));
    cluster.run_for(Duration::from_secs(5));
    assert!(!is_available(&cluster.deployment("payments")));
    assert!(is_available(&cluster.deployment("web")));
}

#[test]
fn a_rule_with_a_probability_fails_a_seeded_share_of_pods() {
    let mut profile = Profile::fast();
    profile.pods.insert(
        0,
        PodRule::matching(PodSelector::default())
            .probability(0.5)
            .outcome(PodOutcome::NeverReady),
    );
    let ready_count = |seed| {
        let mut cluster = TestCluster::new(profile.clone(), seed);
        cluster.create(deployment("web", 24, "nginx"));
        cluster.run_for(Duration::from_secs(1));
        cluster.deployment("web")["status"]["readyReplicas"]
            .as_i64()
            .unwrap_or(0)
    };
    let ready = ready_count(5);
    assert!((5..=19).contains(&ready), "{ready} of 24 ready");
    assert_eq!(ready, ready_count(5));
}

#[test]
fn a_rolling_update_replaces_every_pod_and_ends_with_the_new_template_available() {
    let mut cluster = TestCluster::new(Profile::realistic(), 3);
    cluster.create(deployment("web", 4, "nginx:1.27"));
    cluster.run_for(Duration::from_secs(10));
    assert!(is_available(&cluster.deployment("web")));
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    });
    cluster.run_for(Duration::from_millis(100));
    let mid = cluster.deployment("web");
    assert_eq!(mid["status"]["observedGeneration"], 2);
    assert!(
        is_available(&mid),
        "availability is kept during the rollout: {mid}"
    );
    let progressing = condition(&mid, "Progressing");
    assert_eq!(progressing["status"], "True");
    assert!(
        ["NewReplicaSetCreated", "ReplicaSetUpdated"]
            .contains(&progressing["reason"].as_str().unwrap()),
        "{progressing}"
    );
    let new_hash = cluster
        .pods()
        .iter()
        .map(|pod| {
            pod["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .find(|hash| {
            progressing["message"]
                .as_str()
                .unwrap()
                .contains(hash.as_str())
        });
    assert!(
        new_hash.is_some(),
        "the condition names the new pod template: {progressing}"
    );
    let total = cluster.pods().len();
    assert!(
        total <= 5,
        "maxSurge 25% of 4 allows one extra pod, got {total}"
    );
    cluster.run_for(Duration::from_secs(60));
    let done = cluster.deployment("web");
    let pods = cluster.pods();
    assert_eq!(pods.len(), 4);
    assert!(
        pods.iter()
            .all(|pod| pod["spec"]["containers"][0]["image"] == "nginx:1.28")
    );
    assert_eq!(done["status"]["updatedReplicas"], 4);
    assert_eq!(done["status"]["availableReplicas"], 4);
    assert_eq!(
        status_of(&done, "Progressing"),
        ("True", "NewReplicaSetAvailable")
    );
}

#[test]
fn scaling_a_deployment_down_and_up_converges_on_the_new_count() {
    let mut cluster = TestCluster::fast();
    cluster.create(deployment("web", 3, "nginx"));
    cluster.run_for(Duration::from_secs(1));
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["spec"]["replicas"] = json!(1)
    });
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.pods().len(), 1);
    assert_eq!(cluster.deployment("web")["status"]["replicas"], 1);
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["spec"]["replicas"] = json!(5)
    });
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.pods().len(), 5);
    assert_eq!(cluster.deployment("web")["status"]["availableReplicas"], 5);
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["spec"]["replicas"] = json!(0)
    });
    cluster.run_for(Duration::from_secs(1));
    let deployment = cluster.deployment("web");
    assert!(cluster.pods().is_empty());
    assert!(
        deployment["status"].get("replicas").is_none(),
        "{deployment}"
    );
    assert!(is_available(&deployment));
}

#[test]
fn min_ready_seconds_delays_availability_after_readiness() {
    let mut cluster = TestCluster::fast();
    let mut web = deployment("web", 2, "nginx");
    web["spec"]["minReadySeconds"] = json!(10);
    cluster.create(web);
    cluster.run_until(Duration::from_secs(1));
    let early = cluster.deployment("web");
    assert_eq!(early["status"]["readyReplicas"], 2);
    assert!(
        early["status"].get("availableReplicas").is_none(),
        "{early}"
    );
    assert!(!is_available(&early));
    cluster.run_until(Duration::from_secs(10));
    let later = cluster.deployment("web");
    assert_eq!(later["status"]["availableReplicas"], 2, "{later}");
    assert!(is_available(&later));
}

#[test]
fn a_spec_change_while_pods_are_starting_still_converges_on_the_new_spec() {
    let mut cluster = TestCluster::new(Profile::realistic(), 11);
    cluster.create(deployment("web", 3, "nginx:1"));
    cluster.run_for(Duration::from_millis(500));
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        d["spec"]["replicas"] = json!(2);
    });
    cluster.run_for(Duration::from_secs(120));
    let deployment = cluster.deployment("web");
    assert_eq!(deployment["status"]["observedGeneration"], 2);
    assert_eq!(deployment["status"]["availableReplicas"], 2);
    assert_eq!(deployment["status"]["updatedReplicas"], 2);
    assert!(
        cluster
            .pods()
            .iter()
            .all(|pod| pod["spec"]["containers"][0]["image"] == "nginx:2")
    );
}

#[test]
fn a_gracefully_deleted_pod_is_removed_by_the_kubelet_and_replaced() {
    let mut cluster = TestCluster::new(Profile::realistic(), 5);
    cluster.create(deployment("web", 1, "nginx"));
    cluster.run_for(Duration::from_secs(10));
    let victim = cluster.pods()[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    cluster.delete_gracefully("v1", "Pod", Some("default"), &victim);
    cluster.run_for(Duration::from_millis(100));
    assert_eq!(
        cluster.pods().len(),
        2,
        "the terminating pod stays while its replacement is made"
    );
    cluster.run_for(Duration::from_secs(10));
    let pods = cluster.pods();
    assert_eq!(pods.len(), 1);
    assert_ne!(pods[0]["metadata"]["name"], victim);
    assert!(is_available(&cluster.deployment("web")));
}

fn statefulset(name: &str, replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "db", "image": image}]}},
        },
    })
}

#[test]
fn a_statefulset_creates_ordinal_pods_one_after_another_and_reports_its_revision() {
    let mut cluster = TestCluster::new(Profile::realistic(), 2);
    cluster.create(statefulset("db", 3, "postgres:16"));
    cluster.run_for(Duration::from_millis(100));
    let names: Vec<String> = cluster
        .pods()
        .iter()
        .map(|pod| pod["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["db-0"], "OrderedReady waits for db-0");
    cluster.run_for(Duration::from_secs(30));
    let names: Vec<String> = cluster
        .pods()
        .iter()
        .map(|pod| pod["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["db-0", "db-1", "db-2"]);
    let sts = cluster.get("apps/v1", "StatefulSet", Some("default"), "db");
    let status = &sts["status"];
    assert_eq!(status["replicas"], 3);
    assert_eq!(status["readyReplicas"], 3);
    assert_eq!(status["availableReplicas"], 3);
    assert_eq!(status["currentReplicas"], 3);
    assert_eq!(status["updatedReplicas"], 3);
    assert_eq!(status["currentRevision"], status["updateRevision"]);
    assert_eq!(status["observedGeneration"], 1);
    let pod = cluster.get("v1", "Pod", Some("default"), "db-1");
    assert_eq!(
        pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "db-1"
    );
    assert_eq!(
        pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
        "1"
    );
    assert_eq!(
        pod["metadata"]["labels"]["controller-revision-hash"],
        status["updateRevision"]
    );
    assert_eq!(pod["spec"]["hostname"], "db-1");
    assert_eq!(pod["spec"]["subdomain"], "db");

    let old_revision = status["updateRevision"].clone();
    cluster.update("apps/v1", "StatefulSet", Some("default"), "db", |s| {
        s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:17");
    });
    cluster.run_for(Duration::from_millis(10));
    let mid = cluster.get("apps/v1", "StatefulSet", Some("default"), "db");
    assert_eq!(
        mid["status"]["currentRevision"], old_revision,
        "the current revision holds during the update"
    );
    cluster.run_for(Duration::from_secs(60));
    let done = cluster.get("apps/v1", "StatefulSet", Some("default"), "db");
    assert_ne!(done["status"]["updateRevision"], old_revision);
    assert_eq!(
        done["status"]["currentRevision"],
        done["status"]["updateRevision"]
    );
    assert_eq!(done["status"]["updatedReplicas"], 3);
    assert_eq!(done["status"]["readyReplicas"], 3);
    assert!(
        cluster
            .pods()
            .iter()
            .all(|pod| pod["spec"]["containers"][0]["image"] == "postgres:17")
    );

    cluster.update("apps/v1", "StatefulSet", Some("default"), "db", |s| {
        s["spec"]["replicas"] = json!(1)
    });
    cluster.run_for(Duration::from_secs(10));
    let names: Vec<String> = cluster
        .pods()
        .iter()
        .map(|pod| pod["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        vec!["db-0"],
        "scale-down removes the highest ordinals"
    );
}

fn daemonset(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "agent", "image": "agent:1"}]}},
        },
    })
}

#[test]
fn a_daemonset_runs_one_pod_per_node_its_pods_tolerate() {
    let mut cluster = TestCluster::new(Profile::realistic(), 4);
    cluster.create(daemonset("logs"));
    cluster.run_for(Duration::from_secs(30));
    let ds = cluster.get("apps/v1", "DaemonSet", Some("default"), "logs");
    let status = &ds["status"];
    assert_eq!(
        status["desiredNumberScheduled"], 2,
        "the control plane's taint is not tolerated: {status}"
    );
    assert_eq!(status["currentNumberScheduled"], 2);
    assert_eq!(status["numberReady"], 2);
    assert_eq!(status["numberAvailable"], 2);
    assert_eq!(status["updatedNumberScheduled"], 2);
    assert_eq!(status["numberMisscheduled"], 0);
    assert!(status.get("numberUnavailable").is_none());

    cluster.update("apps/v1", "DaemonSet", Some("default"), "logs", |ds| {
        ds["spec"]["template"]["spec"]["tolerations"] = json!([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]);
    });
    cluster.run_for(Duration::from_secs(60));
    let ds = cluster.get("apps/v1", "DaemonSet", Some("default"), "logs");
    assert_eq!(ds["status"]["desiredNumberScheduled"], 3);
    assert_eq!(ds["status"]["numberReady"], 3);
    assert_eq!(
        ds["status"]["updatedNumberScheduled"], 3,
        "{}",
        ds["status"]
    );
    assert_eq!(ds["status"]["observedGeneration"], 2);
    let mut nodes: Vec<String> = cluster
        .pods()
        .iter()
        .map(|pod| pod["spec"]["nodeName"].as_str().unwrap().to_owned())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec!["control-plane", "worker-a", "worker-b"]);

    cluster.update("v1", "Node", None, "worker-b", |node| {
        node["spec"]["taints"] = json!([{"key": "drain", "effect": "NoExecute"}]);
    });
    cluster.run_for(Duration::from_secs(30));
    let ds = cluster.get("apps/v1", "DaemonSet", Some("default"), "logs");
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2);
    assert_eq!(ds["status"]["numberReady"], 2);
    assert_eq!(cluster.pods().len(), 2);
}

#[test]
fn nodes_are_created_ready_and_a_node_added_later_turns_ready_and_gets_daemon_pods() {
    let mut cluster = TestCluster::fast();
    let node = cluster.get("v1", "Node", None, "sim-node");
    assert_eq!(status_of(&node, "Ready"), ("True", "KubeletReady"));
    cluster.create(daemonset("logs"));
    cluster.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "extra", "labels": {"kubernetes.io/hostname": "extra"}}, "spec": {}}));
    cluster.run_for(Duration::from_secs(1));
    let extra = cluster.get("v1", "Node", None, "extra");
    assert_eq!(status_of(&extra, "Ready"), ("True", "KubeletReady"));
    assert_eq!(extra["status"]["allocatable"]["pods"], "110");
    let ds = cluster.get("apps/v1", "DaemonSet", Some("default"), "logs");
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2);
    assert_eq!(ds["status"]["numberReady"], 2);
}

fn job(name: &str, completions: i64, parallelism: i64, image: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "completions": completions,
            "parallelism": parallelism,
            "backoffLimit": 2,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": image}]}},
        },
    })
}

#[test]
fn a_job_runs_its_pods_to_completion_and_reports_complete() {
    let mut cluster = TestCluster::new(Profile::realistic(), 9);
    cluster.create(job("migrate", 3, 2, "migrate:1"));
    cluster.run_for(Duration::from_millis(100));
    let running = cluster.get("batch/v1", "Job", Some("default"), "migrate");
    assert_eq!(running["status"]["active"], 2, "{}", running["status"]);
    assert!(running["status"]["startTime"].is_string());
    cluster.run_for(Duration::from_secs(60));
    let done = cluster.get("batch/v1", "Job", Some("default"), "migrate");
    let status = &done["status"];
    assert_eq!(status["succeeded"], 3, "{status}");
    assert!(status.get("active").is_none());
    assert!(status["completionTime"].is_string());
    assert_eq!(status_of(&done, "Complete"), ("True", "CompletionsReached"));
    assert_eq!(
        status_of(&done, "SuccessCriteriaMet"),
        ("True", "CompletionsReached")
    );
    let pods = cluster.pods();
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert_eq!(pod["status"]["phase"], "Succeeded");
        assert_eq!(pod["metadata"]["labels"]["job-name"], "migrate");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(status_of(pod, "Ready"), ("False", "PodCompleted"));
    }
}

#[test]
fn a_job_whose_pods_keep_failing_fails_after_its_backoff_limit() {
    let mut cluster = TestCluster::fast();
    cluster.create(job("broken", 1, 1, "tool:crashloop"));
    cluster.run_for(Duration::from_secs(10));
    let failed = cluster.get("batch/v1", "Job", Some("default"), "broken");
    assert_eq!(
        status_of(&failed, "Failed"),
        ("True", "BackoffLimitExceeded")
    );
    assert_eq!(
        condition(&failed, "Failed")["message"],
        "Job has reached the specified backoff limit"
    );
    assert_eq!(
        failed["status"]["failed"], 3,
        "backoffLimit 2 allows three attempts"
    );
    let pods = cluster.pods();
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|pod| pod["status"]["phase"] == "Failed"));
}

#[test]
fn a_job_with_ttl_after_finished_is_deleted_with_its_pods() {
    let mut cluster = TestCluster::fast();
    let mut quick = job("quick", 1, 1, "tool:1");
    quick["spec"]["ttlSecondsAfterFinished"] = json!(30);
    cluster.create(quick);
    cluster.run_for(Duration::from_secs(29));
    assert!(
        cluster
            .store
            .get("batch/v1", "Job", Some("default"), "quick")
            .is_some()
    );
    cluster.run_for(Duration::from_secs(2));
    assert!(
        cluster
            .store
            .get("batch/v1", "Job", Some("default"), "quick")
            .is_none()
    );
    assert!(cluster.pods().is_empty());
}

#[test]
fn a_user_created_replicaset_keeps_its_replica_count() {
    let mut cluster = TestCluster::fast();
    let mut rs = deployment("rs", 2, "nginx");
    rs["kind"] = json!("ReplicaSet");
    cluster.create(rs);
    cluster.run_for(Duration::from_secs(1));
    let rs = cluster.get("apps/v1", "ReplicaSet", Some("default"), "rs");
    assert_eq!(rs["status"]["replicas"], 2);
    assert_eq!(rs["status"]["readyReplicas"], 2);
    assert_eq!(rs["status"]["availableReplicas"], 2);
    assert_eq!(
        cluster.pods()[0]["metadata"]["ownerReferences"][0]["kind"],
        "ReplicaSet"
    );
}

#[test]
fn pods_bigger_than_any_node_are_insufficient_until_capacity_frees_up() {
    let mut cluster = TestCluster::fast();
    let mut big = deployment("big", 2, "nginx");
    big["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "3"}});
    cluster.create(big);
    cluster.run_for(Duration::from_secs(1));
    let pending: Vec<Value> = cluster
        .pods()
        .into_iter()
        .filter(|pod| pod["spec"]["nodeName"].is_null())
        .collect();
    assert_eq!(pending.len(), 1, "one of two 3-cpu pods fits a 4-cpu node");
    assert_eq!(
        condition(&pending[0], "PodScheduled")["message"],
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
         1 No preemption victims found for incoming pod."
    );
    cluster.update("apps/v1", "Deployment", Some("default"), "big", |d| {
        d["spec"]["replicas"] = json!(1)
    });
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.pods().len(), 1);
    assert!(is_available(&cluster.deployment("big")));
}

#[test]
fn deleting_a_deployment_leaves_nothing_scheduled_behind() {
    let mut cluster = TestCluster::new(Profile::realistic(), 1);
    cluster.create(deployment("web", 3, "nginx"));
    cluster.run_for(Duration::from_secs(1));
    let key = key_of(&cluster.deployment("web"));
    cluster.remove(&key);
    cluster.run_for(Duration::from_secs(60));
    assert!(cluster.pods().is_empty());
    assert!(
        cluster
            .store
            .get("apps/v1", "Deployment", Some("default"), "web")
            .is_none()
    );
}

#[test]
fn a_load_balancer_service_gets_an_ingress_ip() {
    let mut cluster = TestCluster::fast();
    cluster.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }));
    cluster.create(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "internal", "namespace": "default"},
        "spec": {"type": "ClusterIP", "ports": [{"port": 80}]},
    }));
    cluster.run_for(Duration::from_secs(1));
    let web = cluster.get("v1", "Service", Some("default"), "web");
    let ip = web["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .unwrap();
    assert!(ip.starts_with("172.19."), "{ip}");
    assert!(cluster.get("v1", "Service", Some("default"), "internal")["status"].is_null());
}

#[test]
fn generated_pod_names_record_their_generate_name() {
    let mut cluster = TestCluster::fast();
    cluster.create(deployment("web", 1, "nginx"));
    cluster.run_for(Duration::from_secs(1));
    let pod = &cluster.pods()[0];
    let prefix = pod["metadata"]["generateName"].as_str().unwrap();
    assert!(prefix.starts_with("web-") && prefix.ends_with('-'));
    assert!(
        pod["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with(prefix)
    );
    assert_eq!(
        pod["metadata"]["name"].as_str().unwrap().len(),
        prefix.len() + 5
    );
}

#[test]
fn objects_stored_without_api_version_and_kind_are_handled_from_the_change() {
    let clock = WallClock::starting_at(DateTime::UNIX_EPOCH);
    let mut behaviour = ClusterBehaviour::with_clock(Profile::fast(), 1, clock);
    let store = Store(BTreeMap::new());
    let bare = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u", "generation": 3}, "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let change = ObjectChange {
        kind: ChangeKind::Added,
        api_version: "apps/v1".into(),
        kind_name: "Deployment".into(),
        namespace: Some("default".into()),
        name: "web".into(),
        object: bare,
    };
    let actions = behaviour.on_change(Duration::from_secs(5), &change, &store);
    let status_write = actions.iter().find_map(|action| match &action.action {
        Action::UpdateStatus {
            api_version,
            kind,
            expected_generation,
            ..
        } => Some((api_version.clone(), kind.clone(), *expected_generation)),
        _ => None,
    });
    assert_eq!(
        status_write,
        Some(("apps/v1".to_owned(), "Deployment".to_owned(), Some(3)))
    );
    let created = actions.iter().find_map(|action| match &action.action {
        Action::Create { object } => Some(object.clone()),
        _ => None,
    });
    let pod = created.expect("a pod is created");
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["apiVersion"],
        "apps/v1"
    );
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert!(
        actions
            .iter()
            .all(|action| action.at >= Duration::from_secs(5))
    );
}

#[test]
fn bindings_name_the_pod_and_the_node() {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p", "namespace": "ns"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    assert_eq!(
        binding_target(&binding),
        Some((Some("ns".to_owned()), "p".to_owned(), "n1".to_owned()))
    );
    assert_eq!(
        binding_target(&json!({"apiVersion": "v1", "kind": "Pod"})),
        None
    );
}

#[test]
fn the_behaviour_can_move_between_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<ClusterBehaviour>();
    assert_send::<crate::faults::FaultInjector>();
}

#[test]
fn an_absurd_replica_count_creates_pods_in_bursts_instead_of_stalling() {
    let clock = WallClock::starting_at(DateTime::UNIX_EPOCH);
    let mut behaviour = ClusterBehaviour::with_clock(Profile::fast(), 1, clock);
    let mut store = Store(BTreeMap::new());
    for node in behaviour.initial_objects() {
        store.0.insert(key_of(&node), node);
    }
    let mut huge = deployment("huge", 1_000_000_000_000, "nginx");
    huge["metadata"]["uid"] = json!("u");
    let change = ObjectChange {
        kind: ChangeKind::Added,
        api_version: "apps/v1".into(),
        kind_name: "Deployment".into(),
        namespace: Some("default".into()),
        name: "huge".into(),
        object: huge,
    };
    // The Deployment creates its ReplicaSet with every replica; the ReplicaSet creates pods.
    let actions = behaviour.on_change(Duration::ZERO, &change, &store);
    let mut replica_set = actions
        .iter()
        .find_map(|action| match &action.action {
            Action::Create { object } if object["kind"] == "ReplicaSet" => Some(object.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        replica_set["spec"]["replicas"],
        1_000_000_000_000_i64.min(i64::from(i32::MAX))
    );
    replica_set["metadata"]["uid"] = json!("rs");
    store.0.insert(key_of(&replica_set), replica_set.clone());
    let change = ObjectChange {
        kind: ChangeKind::Added,
        api_version: "apps/v1".into(),
        kind_name: "ReplicaSet".into(),
        namespace: Some("default".into()),
        name: replica_set["metadata"]["name"].as_str().unwrap().into(),
        object: replica_set,
    };
    let actions = behaviour.on_change(Duration::ZERO, &change, &store);
    let creates = actions
        .iter()
        .filter(
            |action| matches!(&action.action, Action::Create { object } if object["kind"] == "Pod"),
        )
        .count();
    assert_eq!(creates, 500);
}

#[test]
fn absurd_durations_in_objects_saturate_instead_of_overflowing() {
    let mut cluster = TestCluster::fast();
    let mut web = deployment("web", 1, "x:never-ready");
    web["spec"]["progressDeadlineSeconds"] = json!(u64::MAX);
    web["spec"]["minReadySeconds"] = json!(u64::MAX);
    cluster.create(web);
    cluster.run_for(Duration::from_secs(5));
    assert!(!is_available(&cluster.deployment("web")));
}

#[test]
fn the_recreate_strategy_removes_every_old_pod_before_creating_new_ones() {
    let mut cluster = TestCluster::new(Profile::realistic(), 8);
    let mut web = deployment("web", 3, "nginx:1");
    web["spec"]["strategy"] = json!({"type": "Recreate"});
    cluster.create(web);
    cluster.run_for(Duration::from_secs(10));
    assert!(is_available(&cluster.deployment("web")));
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    });
    let before = cluster.timeline.len();
    for _ in 0..200 {
        cluster.run_for(Duration::from_millis(50));
        let images: std::collections::BTreeSet<String> = cluster
            .pods()
            .iter()
            .map(|pod| {
                pod["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(
            images.len() <= 1,
            "old and new pods never run together: {images:?}"
        );
    }
    let steps = &cluster.timeline[before..];
    let last_delete = steps
        .iter()
        .rposition(|line| line.contains(" delete Pod/"))
        .unwrap();
    let first_create = steps
        .iter()
        .position(|line| line.contains(" create \"Pod\""))
        .unwrap();
    assert!(
        last_delete < first_create,
        "every old pod is gone before a new one is made: {steps:#?}"
    );
    let done = cluster.deployment("web");
    assert_eq!(done["status"]["availableReplicas"], 3);
    assert!(
        cluster
            .pods()
            .iter()
            .all(|pod| pod["spec"]["containers"][0]["image"] == "nginx:2")
    );
}

#[test]
fn a_paused_deployment_keeps_its_pods_and_reports_deployment_paused() {
    let mut cluster = TestCluster::fast();
    cluster.create(deployment("web", 2, "nginx:1"));
    cluster.run_for(Duration::from_secs(1));
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["spec"]["paused"] = json!(true);
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    });
    cluster.run_for(Duration::from_secs(5));
    let paused = cluster.deployment("web");
    assert_eq!(
        status_of(&paused, "Progressing"),
        ("Unknown", "DeploymentPaused")
    );
    assert!(
        cluster
            .pods()
            .iter()
            .all(|pod| pod["spec"]["containers"][0]["image"] == "nginx:1")
    );
    cluster.update("apps/v1", "Deployment", Some("default"), "web", |d| {
        d["spec"]["paused"] = json!(false)
    });
    cluster.run_for(Duration::from_secs(5));
    assert!(
        cluster
            .pods()
            .iter()
            .all(|pod| pod["spec"]["containers"][0]["image"] == "nginx:2")
    );
    assert_eq!(
        status_of(&cluster.deployment("web"), "Progressing"),
        ("True", "NewReplicaSetAvailable")
    );
}

#[test]
fn a_suspended_job_runs_no_pods_until_resumed() {
    let mut cluster = TestCluster::fast();
    let mut later = job("later", 1, 1, "tool:1");
    later["spec"]["suspend"] = json!(true);
    cluster.create(later);
    cluster.run_for(Duration::from_secs(5));
    let suspended = cluster.get("batch/v1", "Job", Some("default"), "later");
    assert_eq!(status_of(&suspended, "Suspended"), ("True", "JobSuspended"));
    assert!(cluster.pods().is_empty());
    assert!(suspended["status"]["startTime"].is_null());
    cluster.update("batch/v1", "Job", Some("default"), "later", |j| {
        j["spec"]["suspend"] = json!(false)
    });
    cluster.run_for(Duration::from_secs(5));
    let done = cluster.get("batch/v1", "Job", Some("default"), "later");
    assert_eq!(status_of(&done, "Suspended"), ("False", "JobResumed"));
    assert_eq!(status_of(&done, "Complete"), ("True", "CompletionsReached"));
}

#[test]
fn a_job_restarting_in_place_fails_once_restarts_pass_the_backoff_limit() {
    let mut cluster = TestCluster::fast();
    let mut flaky = job("flaky", 1, 1, "tool:crashloop");
    flaky["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    cluster.create(flaky);
    cluster.run_for(Duration::from_secs(5));
    let running = cluster.get("batch/v1", "Job", Some("default"), "flaky");
    assert!(condition(&running, "Failed").is_null(), "{running}");
    assert_eq!(
        cluster.pods().len(),
        1,
        "the container restarts inside its pod"
    );
    cluster.run_for(Duration::from_secs(120));
    let failed = cluster.get("batch/v1", "Job", Some("default"), "flaky");
    assert_eq!(
        status_of(&failed, "Failed"),
        ("True", "BackoffLimitExceeded")
    );
    assert!(
        cluster.pods().is_empty(),
        "the failed job's running pod is removed"
    );
}

#[test]
fn a_parallel_statefulset_creates_all_its_pods_at_once() {
    let mut cluster = TestCluster::new(Profile::realistic(), 2);
    let mut db = statefulset("db", 3, "postgres:16");
    db["spec"]["podManagementPolicy"] = json!("Parallel");
    cluster.create(db);
    cluster.run_for(Duration::from_millis(100));
    assert_eq!(cluster.pods().len(), 3);
    cluster.run_for(Duration::from_secs(30));
    let sts = cluster.get("apps/v1", "StatefulSet", Some("default"), "db");
    assert_eq!(sts["status"]["readyReplicas"], 3);
}

#[test]
fn a_node_defined_not_ready_stays_not_ready_and_gets_no_pods() {
    let mut profile = Profile::fast();
    let mut broken = NodeTemplate::named("broken");
    broken.not_ready = true;
    profile.nodes.push(broken);
    let mut cluster = TestCluster::new(profile, 1);
    cluster.create(deployment("web", 4, "nginx"));
    cluster.create(daemonset("logs"));
    cluster.run_for(Duration::from_secs(30));
    let node = cluster.get("v1", "Node", None, "broken");
    assert_eq!(status_of(&node, "Ready"), ("False", "KubeletNotReady"));
    let taints: Vec<&str> = node["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["effect"].as_str().unwrap())
        .collect();
    assert_eq!(taints, vec!["NoSchedule", "NoExecute"]);
    for pod in cluster.pods().iter().filter(|pod| {
        pod["metadata"]["generateName"]
            .as_str()
            .unwrap()
            .starts_with("web-")
    }) {
        assert_eq!(pod["spec"]["nodeName"], "sim-node");
    }
    assert!(is_available(&cluster.deployment("web")));
    let ds = cluster.get("apps/v1", "DaemonSet", Some("default"), "logs");
    assert_eq!(
        ds["status"]["desiredNumberScheduled"], 1,
        "daemon pods tolerate not-ready only for NoExecute, so they skip the node"
    );
    assert_eq!(ds["status"]["numberReady"], 1);
}

#[test]
fn persistent_volume_claims_are_bound_with_the_storage_they_ask_for() {
    let mut cluster = TestCluster::fast();
    cluster.create(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }));
    cluster.run_for(Duration::from_secs(1));
    let claim = cluster.get("v1", "PersistentVolumeClaim", Some("default"), "data");
    assert_eq!(
        claim["status"],
        json!({"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "5Gi"}})
    );
}

#[test]
fn with_events_on_the_scheduler_and_kubelet_record_what_kubectl_describe_shows() {
    let mut profile = tainted_profile();
    profile.events = true;
    profile.nodes[0].taints.clear();
    let mut cluster = TestCluster::new(profile, 1);
    cluster.create(deployment("web", 1, "nginx"));
    cluster.create(deployment("broken", 1, "app:crashloop"));
    let mut pinned = deployment("pinned", 1, "nginx");
    pinned["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    cluster.create(pinned);
    cluster.run_for(Duration::from_secs(15));
    let events = cluster.store.list("v1", "Event", Some("default"));
    let reasons = |prefix: &str| -> Vec<String> {
        events
            .iter()
            .filter(|event| {
                event["involvedObject"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(prefix)
            })
            .map(|event| {
                format!(
                    "{} {}",
                    event["type"].as_str().unwrap(),
                    event["reason"].as_str().unwrap()
                )
            })
            .collect()
    };
    let mut web = reasons("web-");
    web.sort();
    assert_eq!(
        web,
        vec![
            "Normal Created",
            "Normal Pulled",
            "Normal Scheduled",
            "Normal Started"
        ]
    );
    assert!(
        reasons("broken-").contains(&"Warning BackOff".to_owned()),
        "{:?}",
        reasons("broken-")
    );
    let failed = events
        .iter()
        .find(|event| event["reason"] == "FailedScheduling")
        .unwrap();
    assert_eq!(failed["involvedObject"]["kind"], "Pod");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .starts_with("0/3 nodes are available: ")
    );
    assert_eq!(failed["source"]["component"], "default-scheduler");
    let started = events
        .iter()
        .find(|event| event["reason"] == "Started")
        .unwrap();
    assert_eq!(started["message"], "Started container app");
    assert_eq!(started["source"]["component"], "kubelet");

    let quiet = {
        let mut cluster = TestCluster::fast();
        cluster.create(deployment("web", 1, "nginx"));
        cluster.run_for(Duration::from_secs(1));
        cluster.store.list("v1", "Event", None)
    };
    assert!(quiet.is_empty(), "the fast profile records no events");
}

/// RFC 7386 JSON merge patch, as the store applies `Action::Patch`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in fields {
        if value.is_null() {
            if let Some(map) = target.as_object_mut() {
                map.remove(key);
            }
        } else {
            merge_patch(&mut target[key.as_str()], value);
        }
    }
}
