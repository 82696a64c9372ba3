@sim
Feature: Rollout with partitions and maxUnavailable
  A new version goes out partition by partition, never leaving more clusters unavailable than
  maxUnavailable allows. A cluster that fails holds the rest back until it recovers.

  Scenario: a failing canary holds the other partitions back, then the rollout completes
    Given a fleet with the clusters:
      | cluster | labels                |
      | sim-1   | env=prod,stage=canary |
      | sim-2   | env=prod,stage=main   |
      | sim-3   | env=prod,stage=main   |
      | sim-4   | env=prod,stage=main   |
    And the git repository has the file "web/fleet.yaml":
      """
      defaultNamespace: rollout
      rolloutStrategy:
        maxUnavailable: 1
        partitions:
        - name: canary
          clusterSelector:
            matchLabels:
              stage: canary
        - name: main
          clusterSelector:
            matchLabels:
              stage: main
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
    When I create the GitRepo "roll" targeting all clusters
    Then the GitRepo "roll" is Ready within 60s
    When cluster "sim-1" cannot run workloads in namespace "rollout"
    And I commit the file "web/deployment.yaml":
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
              image: nginx:1.28
      """
    Then cluster "sim-1" has Deployment "rollout/web" with image "nginx:1.28"
    And the Bundle "roll-web" is not Ready within 60s, saying "sim-1"
    And the rollout of the Bundle "roll-web" holds back cluster "sim-2"
    And the rollout of the Bundle "roll-web" holds back cluster "sim-3"
    And the rollout of the Bundle "roll-web" holds back cluster "sim-4"
    And cluster "sim-2" has Deployment "rollout/web" with image "nginx:1.27"
    And the Bundle "roll-web" has the partitions:
      | partition | count | maxUnavailable | unavailable |
      | canary    | 1     | 1              | 1           |
      | main      | 3     | 1              | 3           |
    And the Bundle "roll-web" status matches the snapshot
    When cluster "sim-1" can run workloads in namespace "rollout" again
    Then the GitRepo "roll" is Ready within 120s
    And the cluster "sim-2" runs the newest version of the Bundle "roll-web"
    And the cluster "sim-4" runs the newest version of the Bundle "roll-web"
    And cluster "sim-4" has Deployment "rollout/web" with image "nginx:1.28"
