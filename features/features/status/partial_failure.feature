Feature: Status after a partial failure
  When a workload cannot become ready on some clusters, the GitRepo, its Bundle and the
  Cluster say where, and the resource counts add up per cluster.

  Background:
    Given a fleet of 3 clusters labelled env=dev, env=test, env=prod
    And the git repository has the file "web/fleet.yaml":
      """
      defaultNamespace: shop
      targetCustomizations:
      - name: prod
        clusterSelector:
          matchLabels:
            env: prod
        yaml:
          overlays:
          - broken-image
      """
    And the git repository has the file "web/deployment.yaml":
      """
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: web
      spec:
        replicas: 1
        selector:
          matchLabels:
            app: web
        template:
          metadata:
            labels:
              app: web
          spec:
            containers:
            - name: web
              image: nginx:1.27
      """
    And the git repository has the file "web/settings.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: settings
      data:
        color: blue
      """
    And the git repository has the file "web/overlays/broken-image/deployment_patch.yaml":
      """
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: web
      spec:
        template:
          spec:
            containers:
            - name: web
              image: nginx:never-ready
      """

  Scenario: resourceCounts and perClusterResourceCounts count the object that is not ready
    When I create the GitRepo "shop" targeting all clusters
    Then the Bundle "shop-web" is not Ready within 60s, saying "sim-3"
    And the GitRepo "shop" is not Ready within 60s, saying "sim-3"
    And the GitRepo "shop" shows "2/3" bundle deployments ready
    And the GitRepo "shop" resource counts are:
      | cluster | desiredReady | ready | notReady |
      | all     | 6            | 5     | 1        |
      | sim-1   | 2            | 2     | 0        |
      | sim-2   | 2            | 2     | 0        |
      | sim-3   | 2            | 1     | 1        |
    And the Cluster "sim-3" is not Ready within 60s, saying "shop-web"
    And the Cluster "sim-1" has all its bundles ready within 60s
    And the GitRepo "shop" status matches the snapshot
    And the Bundle "shop-web" status matches the snapshot
    And the BundleDeployment of "shop-web" on cluster "sim-3" status matches the snapshot
    And the Cluster "sim-3" status matches the snapshot

  Scenario: fixing the workload makes every count ready
    When I create the GitRepo "shop" targeting all clusters
    Then the GitRepo "shop" is not Ready within 60s, saying "sim-3"
    When I commit the file "web/fleet.yaml":
      """
      defaultNamespace: shop
      """
    Then the GitRepo "shop" is Ready within 60s
    And the GitRepo "shop" resource counts are:
      | cluster | desiredReady | ready | notReady |
      | all     | 6            | 6     | 0        |
      | sim-3   | 2            | 2     | 0        |
    And the Bundle "shop-web" status matches the snapshot
