Feature: Removing bundles, keepResources
  A folder removed from the repository removes its Bundle and what it deployed, unless the
  bundle says keepResources.

  Scenario: objects of a keepResources bundle stay when its folder goes away
    Given a fleet of 2 clusters labelled env=dev, env=prod
    And the git repository has the file "app/fleet.yaml":
      """
      defaultNamespace: shop
      """
    And the git repository has the file "app/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: app
      data:
        a: b
      """
    And the git repository has the file "pruned/fleet.yaml":
      """
      defaultNamespace: shop
      """
    And the git repository has the file "pruned/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: pruned
      data:
        a: b
      """
    And the git repository has the file "kept/fleet.yaml":
      """
      defaultNamespace: kept
      keepResources: true
      """
    And the git repository has the file "kept/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: kept
      data:
        a: b
      """
    When I create the GitRepo "shop" targeting all clusters
    Then the GitRepo "shop" is Ready within 60s
    And the clusters "sim-1, sim-2" have ConfigMap "kept/kept"
    And the clusters "sim-1, sim-2" have ConfigMap "shop/pruned"
    When I delete "kept" from the git repository
    Then the Bundle "shop-kept" is gone within 60s
    And cluster "sim-1" still has ConfigMap "kept/kept"
    And cluster "sim-2" still has ConfigMap "kept/kept"
    When I delete "pruned" from the git repository
    Then the Bundle "shop-pruned" is gone within 60s
    And cluster "sim-1" has no ConfigMap "shop/pruned"
    And cluster "sim-2" has no ConfigMap "shop/pruned"
    And cluster "sim-1" still has ConfigMap "kept/kept"

  Scenario: a new commit rolls out changes and prunes removed files
    Given a fleet of 2 clusters labelled env=dev, env=prod
    And the git repository has the file "app/fleet.yaml":
      """
      defaultNamespace: shop
      """
    And the git repository has the file "app/web.yaml":
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
    And the git repository has the file "app/settings.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: settings
      data:
        mode: blue
      """
    When I create the GitRepo "shop" targeting all clusters
    Then the GitRepo "shop" is Ready within 60s
    When I commit the file "app/web.yaml":
      """
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: web
      spec:
        replicas: 3
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
              image: nginx:1.28
      """
    And I delete "app/settings.yaml" from the git repository
    Then the GitRepo "shop" is Ready within 60s
    And cluster "sim-1" has Deployment "shop/web" with 3 replicas
    And cluster "sim-2" has Deployment "shop/web" with image "nginx:1.28"
    And cluster "sim-1" has no ConfigMap "shop/settings"
    And cluster "sim-2" has no ConfigMap "shop/settings"
