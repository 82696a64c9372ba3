@sim
Feature: Agent connectivity
  An agent that loses its connection to the upstream cluster keeps what it deployed; when it
  reconnects it applies what changed meanwhile and its status catches up.

  Scenario: an agent disconnected for a while catches up when it reconnects
    Given a fleet of 3 clusters labelled env=dev, env=test, env=prod
    And the git repository has the file "app/fleet.yaml":
      """
      defaultNamespace: shop
      """
    And the git repository has the file "app/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: settings
      data:
        color: blue
      """
    When I create the GitRepo "shop" targeting all clusters
    Then the GitRepo "shop" is Ready within 60s
    When the agent of cluster "sim-2" is disconnected
    And I commit the file "app/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: settings
      data:
        color: green
      """
    Then cluster "sim-1" has ConfigMap "shop/settings" with "color" = "green"
    And cluster "sim-3" has ConfigMap "shop/settings" with "color" = "green"
    And the GitRepo "shop" is not Ready within 60s, saying "sim-2"
    And cluster "sim-2" has ConfigMap "shop/settings" with "color" = "blue"
    When the agent of cluster "sim-2" reconnects
    Then cluster "sim-2" has ConfigMap "shop/settings" with "color" = "green"
    And the GitRepo "shop" is Ready within 60s
    And the agent of cluster "sim-2" checks in within 60s
    And the Cluster "sim-2" has all its bundles ready within 60s
    And the GitRepo "shop" status matches the snapshot
