//! What the controller reads from its own Deployment `fleet-controller`.
//!
//! Fleet lets pods it starts on the management cluster — the git job pods and the agent of
//! the local cluster — run wherever the controller itself may run: they inherit the pod
//! tolerations of the `fleet-controller` Deployment in the system namespace. When the
//! controller does not run as that Deployment (tests, `fleet sim up`, a developer's shell)
//! there is nothing to inherit.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Toleration;
use kube::api::Api;

/// Name of the controller's Deployment, as Fleet's chart installs it.
pub const CONTROLLER_DEPLOYMENT_NAME: &str = "fleet-controller";

/// The pod tolerations of the Deployment `fleet-controller` in `system_namespace`; empty when
/// that Deployment does not exist or has none.
pub async fn controller_tolerations(
    client: &kube::Client,
    system_namespace: &str,
) -> Result<Vec<Toleration>, kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), system_namespace);
    let deployment = deployments.get_opt(CONTROLLER_DEPLOYMENT_NAME).await?;
    Ok(deployment.map(pod_tolerations).unwrap_or_default())
}

/// The pod tolerations and node selector of the Deployment `fleet-controller` in
/// `system_namespace` (what Fleet copies onto git job pods); empty when it does not exist.
pub async fn controller_pod_placement(
    client: &kube::Client,
    system_namespace: &str,
) -> Result<(Vec<Toleration>, BTreeMap<String, String>), kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), system_namespace);
    let Some(deployment) = deployments.get_opt(CONTROLLER_DEPLOYMENT_NAME).await? else {
        return Ok(Default::default());
    };
    let node_selector = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.node_selector.clone())
        .unwrap_or_default();
    Ok((pod_tolerations(deployment), node_selector))
}

/// The tolerations of a Deployment's pod template.
pub fn pod_tolerations(deployment: Deployment) -> Vec<Toleration> {
    deployment
        .spec
        .and_then(|spec| spec.template.spec)
        .and_then(|pod| pod.tolerations)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};

    #[test]
    fn tolerations_come_from_the_pod_template() {
        let toleration = Toleration {
            key: Some("node-role.kubernetes.io/control-plane".to_string()),
            operator: Some("Exists".to_string()),
            effect: Some("NoSchedule".to_string()),
            ..Toleration::default()
        };
        let deployment = Deployment {
            spec: Some(DeploymentSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        tolerations: Some(vec![toleration.clone()]),
                        ..PodSpec::default()
                    }),
                    ..PodTemplateSpec::default()
                },
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        };
        assert_eq!(pod_tolerations(deployment), vec![toleration]);
        assert!(pod_tolerations(Deployment::default()).is_empty());
    }
}
