Feature: GitOps deploys each environment from one repository
  Fleet's examples (rancher/fleet-examples) customise one chart and one set of manifests per
  environment with targetCustomizations; every cluster gets its own flavour.

  Background:
    Given a fleet of 3 clusters labelled env=dev, env=test, env=prod

  Scenario: the multi-cluster Helm example is customised per environment
    Given a git repository with the folder "multi-cluster/helm"
    When I create the GitRepo "helm" with the paths "multi-cluster/helm"
    Then the GitRepo "helm" is Ready within 60s
    And cluster "sim-1" has Deployment "fleet-mc-helm-example/frontend" with 1 replicas
    And cluster "sim-1" has no Deployment "fleet-mc-helm-example/redis-slave"
    And cluster "sim-2" has Deployment "fleet-mc-helm-example/frontend" with 3 replicas
    And cluster "sim-3" has Deployment "fleet-mc-helm-example/frontend" with 3 replicas
    And cluster "sim-3" has Service "fleet-mc-helm-example/frontend" matching:
      """
      spec:
        type: LoadBalancer
      """
    And the GitRepo "helm" shows "3/3" bundle deployments ready
    And the GitRepo "helm" status matches the snapshot
    And the Bundle "helm-multi-cluster-helm" status matches the snapshot
    And the BundleDeployment of "helm-multi-cluster-helm" on cluster "sim-3" status matches the snapshot
    And the Cluster "sim-3" status matches the snapshot

  Scenario: the multi-cluster manifests example applies overlays per environment
    Given a git repository with the folder "multi-cluster/manifests"
    When I create the GitRepo "manifests" with the paths "multi-cluster/manifests"
    Then the GitRepo "manifests" is Ready within 60s
    And cluster "sim-1" has Deployment "fleet-mc-manifest-example/frontend" with 1 replicas
    And cluster "sim-2" has Deployment "fleet-mc-manifest-example/frontend" with 3 replicas
    And cluster "sim-3" has Deployment "fleet-mc-manifest-example/frontend" with 3 replicas
    And cluster "sim-3" has Service "fleet-mc-manifest-example/frontend" matching:
      """
      spec:
        type: LoadBalancer
      """
    And the GitRepo "manifests" status matches the snapshot

  Scenario: retargeting a GitRepo to production moves the workloads there only
    Given a git repository with the folder "single-cluster/manifests"
    When the GitRepo "single" targets clusters with env=prod
    Then the GitRepo "single" is Ready within 60s
    And the Bundle "single-single-cluster-manifests" is deployed to the clusters "sim-3"
    And cluster "sim-3" has Deployment "fleet-manifest-example/frontend"
    When the GitRepo "single" targets clusters with env=dev
    Then the Bundle "single-single-cluster-manifests" is deployed to the clusters "sim-1"
    And cluster "sim-1" has Deployment "fleet-manifest-example/frontend"
    And cluster "sim-3" has no Deployment "fleet-manifest-example/frontend"
