Feature: dependsOn
  A bundle that depends on another is deployed to a cluster only once the other is ready there.

  Scenario: a bundle waits for the bundle it depends on
    Given a fleet of 2 clusters labelled env=dev, env=prod
    And the git repository has the file "db/fleet.yaml":
      """
      defaultNamespace: shop
      """
    And the git repository has the file "db/db.yaml":
      """
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: db
      spec:
        replicas: 1
        selector:
          matchLabels:
            app: db
        template:
          metadata:
            labels:
              app: db
          spec:
            containers:
            - name: db
              image: postgres:never-ready
      """
    And the git repository has the file "app/fleet.yaml":
      """
      defaultNamespace: shop
      dependsOn:
      - name: deps-db
      """
    And the git repository has the file "app/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: app
      data:
        db: postgres
      """
    When I create the GitRepo "deps" targeting all clusters
    Then the BundleDeployment of "deps-app" on cluster "sim-1" says "dependent bundle(s) are not ready: [deps-db]" within 60s
    And the BundleDeployment of "deps-app" on cluster "sim-2" says "dependent bundle(s) are not ready: [deps-db]" within 60s
    And cluster "sim-1" has no ConfigMap "shop/app"
    And the Bundle "deps-app" status matches the snapshot
    When I commit the file "db/db.yaml":
      """
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: db
      spec:
        replicas: 1
        selector:
          matchLabels:
            app: db
        template:
          metadata:
            labels:
              app: db
          spec:
            containers:
            - name: db
              image: postgres:17
      """
    Then the GitRepo "deps" is Ready within 90s
    And the clusters "sim-1, sim-2" have ConfigMap "shop/app"
