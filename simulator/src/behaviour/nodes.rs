//! Node objects as a kubelet registers them.

use serde_json::{Map, Value, json};

use super::profile::{NodeTemplate, Taint, TaintEffect};

/// The kubelet version simulated nodes report (kubectl 1.32 is the client the project targets).
pub const KUBELET_VERSION: &str = "v1.32.0";

/// Default allocatable resources of a simulated node.
const DEFAULT_ALLOCATABLE: [(&str, &str); 4] = [
    ("cpu", "4"),
    ("memory", "16Gi"),
    ("pods", "110"),
    ("ephemeral-storage", "100Gi"),
];

/// The node's internal IP: 172.18.x.y, unique per node index.
pub(crate) fn node_ip(index: usize) -> String {
    format!("172.18.{}.{}", index / 250, index % 250 + 2)
}

/// The node's pod CIDR prefix: pods on node `index` get 10.<42+…>.<…>.x addresses.
pub(crate) fn pod_ip(node_index: usize, pod_number: u64) -> String {
    let second = 42 + (node_index / 256) % 200;
    let third = node_index % 256;
    format!("10.{second}.{third}.{}", pod_number % 253 + 2)
}

/// A Ready Node object for one node of a template.
pub fn node_object(template: &NodeTemplate, name: &str, index: usize, timestamp: &str) -> Value {
    let mut labels = Map::new();
    labels.insert("kubernetes.io/hostname".into(), name.into());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    labels.insert("beta.kubernetes.io/os".into(), "linux".into());
    labels.insert("beta.kubernetes.io/arch".into(), "amd64".into());
    labels.insert(
        "node.kubernetes.io/instance-type".into(),
        "fleet-sim".into(),
    );
    for (key, value) in &template.labels {
        labels.insert(key.clone(), value.clone().into());
    }
    let mut allocatable = Map::new();
    for (resource, quantity) in DEFAULT_ALLOCATABLE {
        allocatable.insert(resource.into(), quantity.into());
    }
    for (resource, quantity) in &template.allocatable {
        allocatable.insert(resource.clone(), quantity.clone().into());
    }
    let cidr = format!("10.{}.{}.0/24", 42 + (index / 256) % 200, index % 256);
    let mut spec = json!({
        "podCIDR": cidr,
        "podCIDRs": [cidr],
        "providerID": format!("fleet-sim://{name}"),
    });
    let mut template_taints = template.taints.clone();
    if template.not_ready {
        for effect in [TaintEffect::NoSchedule, TaintEffect::NoExecute] {
            template_taints.push(Taint {
                key: "node.kubernetes.io/not-ready".into(),
                value: String::new(),
                effect,
            });
        }
    }
    if !template_taints.is_empty() {
        let taints: Vec<Value> = template_taints
            .iter()
            .map(|taint| {
                let mut object = json!({ "key": taint.key, "effect": taint.effect.as_str() });
                if !taint.value.is_empty() {
                    object["value"] = taint.value.clone().into();
                }
                object
            })
            .collect();
        spec["taints"] = taints.into();
    }
    if template.unschedulable {
        spec["unschedulable"] = true.into();
    }
    let mut status = ready_status(name, index, timestamp);
    if template.not_ready {
        status["conditions"][3] = json!({
            "type": "Ready",
            "status": "False",
            "lastHeartbeatTime": timestamp,
            "lastTransitionTime": timestamp,
            "reason": "KubeletNotReady",
            "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady \
                        message:Network plugin returns error: cni plugin not initialized",
        });
    }
    status["capacity"] = Value::Object(allocatable.clone());
    status["allocatable"] = Value::Object(allocatable);
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": status,
    })
}

/// The status a kubelet posts for a healthy node (without capacity, which the node may have).
pub(crate) fn ready_status(name: &str, index: usize, timestamp: &str) -> Value {
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": status,
            "lastHeartbeatTime": timestamp,
            "lastTransitionTime": timestamp,
            "reason": reason,
            "message": message,
        })
    };
    json!({
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            { "type": "InternalIP", "address": node_ip(index) },
            { "type": "Hostname", "address": name },
        ],
        "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
        "nodeInfo": {
            "machineID": format!("{:032x}", index + 1),
            "systemUUID": format!("00000000-0000-0000-0000-{:012x}", index + 1),
            "bootID": format!("00000000-0000-0000-0001-{:012x}", index + 1),
            "kernelVersion": "6.8.0-fleet-sim",
            "osImage": "fleet-sim",
            "containerRuntimeVersion": "containerd://1.7.23",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}

/// Whether the node reports `Ready=True`.
pub(crate) fn is_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition["type"] == "Ready" && condition["status"] == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::{Profile, Taint, profile::TaintEffect};

    #[test]
    fn nodes_are_ready_with_the_template_labels_taints_and_allocatable() {
        let mut template = NodeTemplate::named("gpu");
        template.count = Some(2);
        template
            .labels
            .insert("accelerator".into(), "nvidia".into());
        template.taints.push(Taint {
            key: "gpu".into(),
            value: "yes".into(),
            effect: TaintEffect::NoSchedule,
        });
        template.allocatable.insert("cpu".into(), "16".into());
        let profile = Profile {
            nodes: vec![template],
            ..Profile::fast()
        };
        let nodes = profile.nodes_at(chrono::DateTime::UNIX_EPOCH);
        assert_eq!(nodes.len(), 2);
        let node = &nodes[1];
        assert_eq!(node["metadata"]["name"], "gpu-2");
        assert_eq!(
            node["metadata"]["labels"]["kubernetes.io/hostname"],
            "gpu-2"
        );
        assert_eq!(node["metadata"]["labels"]["accelerator"], "nvidia");
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
        );
        assert_eq!(node["status"]["allocatable"]["cpu"], "16");
        assert_eq!(node["status"]["allocatable"]["memory"], "16Gi");
        assert_eq!(
            node["status"]["nodeInfo"]["kubeletVersion"],
            KUBELET_VERSION
        );
        assert_eq!(node["status"]["addresses"][0]["address"], "172.18.0.3");
        assert!(is_ready(node));
        assert_ne!(nodes[0]["spec"]["podCIDR"], nodes[1]["spec"]["podCIDR"]);
    }

    #[test]
    fn pod_ips_differ_per_node_and_per_pod() {
        assert_eq!(pod_ip(0, 0), "10.42.0.2");
        assert_ne!(pod_ip(1, 0), pod_ip(0, 0));
        assert_ne!(pod_ip(0, 1), pod_ip(0, 0));
    }
}
