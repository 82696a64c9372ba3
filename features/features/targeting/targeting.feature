Feature: Targeting clusters
  Bundles are deployed to the clusters their targets select; a cluster that cannot be targeted
  is named in the error, and the other clusters are not held back.

  Scenario: a missing cluster label is a targeting error naming the cluster
    Given a fleet of 3 clusters labelled region=eu, region=us, env=prod
    And the git repository has the file "templated/fleet.yaml":
      """
      defaultNamespace: tpl
      helm:
        values:
          region: ${ .ClusterLabels.region }
      """
    And the git repository has the file "templated/Chart.yaml":
      """
      apiVersion: v2
      name: tpl
      version: 0.1.0
      """
    And the git repository has the file "templated/templates/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: region
      data:
        region: {{ .Values.region }}
      """
    When I create the GitRepo "tpl" targeting all clusters
    Then the Bundle "tpl-templated" is not Ready within 60s, saying "sim-3"
    And the GitRepo "tpl" is not Ready within 60s, saying "Targeting error"
    And cluster "sim-1" has ConfigMap "tpl/region" with "region" = "eu"
    And cluster "sim-2" has ConfigMap "tpl/region" with "region" = "us"
    And the Bundle "tpl-templated" status matches the snapshot
    When the cluster "sim-3" is relabelled env=prod,region=ap
    Then the GitRepo "tpl" is Ready within 60s
    And cluster "sim-3" has ConfigMap "tpl/region" with "region" = "ap"

  Scenario: the GitRepo targets clusters by label and targetCustomizations flavour them
    Given a fleet of 3 clusters labelled env=dev, env=prod, env=prod
    And the git repository has the file "app/fleet.yaml":
      """
      defaultNamespace: app
      targetCustomizations:
      - name: prod
        clusterSelector:
          matchLabels:
            env: prod
        yaml:
          overlays:
          - prod
      """
    And the git repository has the file "app/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: settings
      data:
        tier: standard
      """
    And the git repository has the file "app/overlays/prod/cm_patch.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: settings
      data:
        tier: premium
      """
    When the GitRepo "app" targets clusters with env=prod
    Then the GitRepo "app" is Ready within 60s
    And the Bundle "app-app" is deployed to the clusters "sim-2, sim-3"
    And cluster "sim-2" has ConfigMap "app/settings" with "tier" = "premium"
    And cluster "sim-3" has ConfigMap "app/settings" with "tier" = "premium"
    And cluster "sim-1" has no ConfigMap "app/settings"
