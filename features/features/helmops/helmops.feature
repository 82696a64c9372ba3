Feature: HelmOps
  A HelmOp installs a Helm chart from a chart repository, without git, on the clusters its
  targets select, and rolls out a newer chart version matching its version constraint.

  Scenario: a HelmOp installs a chart on matching clusters and rolls out a new version
    Given a fleet of 3 clusters labelled env=dev, env=dev, env=prod
    And a chart repository with the chart "web" version "1.0.0"
    When I create the HelmOp "web":
      """
      helm:
        chart: web
        version: "~1.0"
        releaseName: web
        values:
          greeting: hello from fleet
      namespace: web-ns
      pollingInterval: 1s
      targets:
        - name: dev
          clusterSelector:
            matchLabels:
              env: dev
      """
    Then the HelmOp "web" is Ready with version "1.0.0" on 2 clusters within 120s
    And cluster "sim-1" has ConfigMap "web-ns/web-config" with "chartVersion" = "1.0.0"
    And cluster "sim-2" has ConfigMap "web-ns/web-config" with "greeting" = "hello from fleet"
    And cluster "sim-3" has no ConfigMap "web-ns/web-config"
    When the chart repository publishes the chart "web" version "1.0.1"
    Then the HelmOp "web" is Ready with version "1.0.1" on 2 clusters within 120s
    And cluster "sim-1" has ConfigMap "web-ns/web-config" with "chartVersion" = "1.0.1"
    And cluster "sim-2" has ConfigMap "web-ns/web-config" with "chartVersion" = "1.0.1"
    And cluster "sim-3" has no ConfigMap "web-ns/web-config"
