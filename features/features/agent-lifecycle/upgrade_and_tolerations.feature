@sim
Feature: Agent upgrade and tolerations
  The controller manages the agent of an imported cluster: a cluster still running the pre-0.12
  StatefulSet agent is moved to the Deployment without redeploying what its bundles deployed,
  and a change of the Cluster's agentTolerations redeploys the agent onto tainted nodes.

  Scenario: a pre-0.12 StatefulSet agent is upgraded to the Deployment and nothing is redeployed
    Given a fleet with the cluster "sim-legacy" running the pre-0.12 StatefulSet agent
    And the git repository has the file "app/fleet.yaml":
      """
      defaultNamespace: app
      """
    And the git repository has the file "app/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: app-config
      data:
        color: blue
      """
    When I create the GitRepo "app" targeting all clusters
    Then the GitRepo "app" is Ready within 60s
    And cluster "sim-legacy" runs the agent as a StatefulSet within 60s
    When I note the uid of ConfigMap "app/app-config" on cluster "sim-legacy"
    And I watch the BundleDeployment of "app-app" on cluster "sim-legacy"
    And the Cluster "sim-legacy" is imported with its kubeconfig
    Then the Cluster "sim-legacy" is Imported within 60s
    And cluster "sim-legacy" runs the agent only as a Deployment within 60s
    And the agent of cluster "sim-legacy" checks in within 60s
    And the agent of cluster "sim-legacy" checks in within 60s
    And the BundleDeployment of "app-app" on cluster "sim-legacy" stayed Ready all along
    And ConfigMap "app/app-config" on cluster "sim-legacy" was not redeployed
    And the GitRepo "app" is Ready within 60s

  Scenario: a tolerations change redeploys the agent onto tainted nodes
    Given a fleet of 1 cluster
    And every node of cluster "sim-1" is tainted "dedicated=fleet:NoSchedule"
    When the Cluster "sim-1" gets the agent toleration "dedicated=other:NoSchedule"
    Then a new agent pod of cluster "sim-1" tolerating "dedicated=other:NoSchedule" is Pending within 60s, saying "untolerated taint"
    And the old agent pod of cluster "sim-1" keeps running
    And the agent of cluster "sim-1" checks in within 60s
    When the Cluster "sim-1" gets the agent toleration "dedicated=fleet:NoSchedule"
    Then the agent of cluster "sim-1" runs only as a pod tolerating "dedicated=fleet:NoSchedule" within 60s
    And the agent of cluster "sim-1" checks in within 60s
