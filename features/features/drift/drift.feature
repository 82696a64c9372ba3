Feature: Drift
  Someone changes what Fleet deployed, directly in a cluster. Fleet reports it on the
  BundleDeployment, corrects it when correctDrift is on, and ignores what comparePatches says
  to ignore.

  Background:
    Given a fleet of 2 clusters labelled env=dev, env=prod
    And the git repository has the file "watched/fleet.yaml":
      """
      defaultNamespace: drift
      """
    And the git repository has the file "watched/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: watched
      data:
        color: blue
      """
    And the git repository has the file "corrected/fleet.yaml":
      """
      defaultNamespace: drift
      correctDrift:
        enabled: true
      """
    And the git repository has the file "corrected/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: corrected
      data:
        color: blue
      """
    And the git repository has the file "ignored/fleet.yaml":
      """
      defaultNamespace: drift
      diff:
        comparePatches:
        - apiVersion: v1
          kind: ConfigMap
          name: ignored
          namespace: drift
          operations:
          - {op: remove, path: /data/color}
      """
    And the git repository has the file "ignored/cm.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: ignored
      data:
        color: blue
      """
    When I create the GitRepo "drift" targeting all clusters
    Then the GitRepo "drift" is Ready within 60s

  Scenario: a changed object is reported as modified, with the patch back
    When someone sets "color" = "red" in ConfigMap "drift/watched" on cluster "sim-1"
    Then the BundleDeployment of "drift-watched" on cluster "sim-1" reports "watched" modified within 60s, with a patch containing "blue"
    And the Bundle "drift-watched" is not Ready within 60s, saying "sim-1"
    And cluster "sim-1" has ConfigMap "drift/watched" with "color" = "red"
    And the BundleDeployment of "drift-watched" on cluster "sim-2" stays unmodified
    And the BundleDeployment of "drift-watched" on cluster "sim-1" status matches the snapshot
    And the Bundle "drift-watched" status matches the snapshot

  Scenario: correctDrift puts changed and deleted objects back
    When someone sets "color" = "red" in ConfigMap "drift/corrected" on cluster "sim-1"
    Then cluster "sim-1" has ConfigMap "drift/corrected" with "color" = "blue"
    When someone deletes ConfigMap "drift/corrected" on cluster "sim-2"
    Then cluster "sim-2" has ConfigMap "drift/corrected" with "color" = "blue"
    And the Bundle "drift-corrected" is Ready within 60s

  Scenario: comparePatches hide a change Fleet should not care about
    When someone sets "color" = "red" in ConfigMap "drift/ignored" on cluster "sim-1"
    Then the BundleDeployment of "drift-ignored" on cluster "sim-1" stays unmodified
    And cluster "sim-1" has ConfigMap "drift/ignored" with "color" = "red"
    And the Bundle "drift-ignored" is Ready within 60s
