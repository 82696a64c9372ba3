@sim
Feature: Trusting a git server's private CA
  A git server whose certificate a private CA signed is trusted through the GitRepo's own
  spec.caBundle or, when the GitRepo has none, through Rancher's CA: the Secret
  cattle-system/tls-ca (key cacerts.pem) followed by cattle-system/tls-ca-additional (key
  ca-additional.pem). Creating or changing those Secrets makes a GitRepo that failed fetch again
  at once. Without a trusted CA the GitRepo names the repository that failed the certificate
  check, and what it deployed stays.

  Simulator only (@sim): the HTTPS git server and its CA are made per scenario in-process on
  127.0.0.1, which the controller of a k3d cluster cannot reach; the git server container of
  scripts/k3d-up.sh speaks git:// without TLS.

  Background:
    Given a fleet of 1 cluster labelled env=dev
    And the git repository has the file "ca-demo/fleet.yaml":
      """
      defaultNamespace: ca-demo
      """
    And the git repository has the file "ca-demo/settings.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: settings
      data:
        served: over-https
      """
    And the git repository is served over HTTPS with a certificate signed by the CA "git-server-ca"
    And the git server's credentials are in the Secret "git-auth"

  Scenario: a GitRepo trusts the CA in its own caBundle
    When I create the GitRepo "own-ca" trusting the CA "git-server-ca":
      """
      clientSecretName: git-auth
      paths: [ca-demo]
      targets:
      - clusterSelector: {}
      """
    Then the GitRepo "own-ca" is Ready within 60s
    And cluster "sim-1" has ConfigMap "ca-demo/settings" with "served" = "over-https"
    And the GitRepo "own-ca" status matches the snapshot

  Scenario: without a caBundle, creating Rancher's tls-ca makes a failed GitRepo fetch at once
    When I create the GitRepo "rancher-ca":
      """
      clientSecretName: git-auth
      pollingInterval: 1h
      paths: [ca-demo]
      targets:
      - clusterSelector: {}
      """
    Then the GitRepo "rancher-ca" reports a certificate error for its repository within 60s
    And the GitRepo "rancher-ca" status matches the snapshot
    And cluster "sim-1" has no ConfigMap "ca-demo/settings"
    When the Secret "cattle-system/tls-ca" holds the CA "git-server-ca" in "cacerts.pem"
    Then the GitRepo "rancher-ca" is Ready within 60s
    And cluster "sim-1" has ConfigMap "ca-demo/settings" with "served" = "over-https"

  Scenario: the CA in Rancher's tls-ca-additional is trusted next to tls-ca
    Given the Secret "cattle-system/tls-ca" holds the CA "another-ca" in "cacerts.pem"
    When I create the GitRepo "rancher-ca":
      """
      clientSecretName: git-auth
      pollingInterval: 1h
      paths: [ca-demo]
      targets:
      - clusterSelector: {}
      """
    Then the GitRepo "rancher-ca" reports a certificate error for its repository within 60s
    When the Secret "cattle-system/tls-ca-additional" holds the CA "git-server-ca" in "ca-additional.pem"
    Then the GitRepo "rancher-ca" is Ready within 60s
    And cluster "sim-1" has ConfigMap "ca-demo/settings" with "served" = "over-https"
    And the GitRepo "rancher-ca" status matches the snapshot

  Scenario: a GitRepo trusting no CA names its repository and keeps what it deployed
    When I create the GitRepo "own-ca" trusting the CA "git-server-ca":
      """
      clientSecretName: git-auth
      paths: [ca-demo]
      targets:
      - clusterSelector: {}
      """
    Then the GitRepo "own-ca" is Ready within 60s
    When I note the uid of ConfigMap "ca-demo/settings" on cluster "sim-1"
    And the caBundle of the GitRepo "own-ca" is removed
    And I commit the file "ca-demo/settings.yaml":
      """
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: settings
      data:
        served: not-yet
      """
    Then the GitRepo "own-ca" reports a certificate error for its repository within 60s
    And the GitRepo "own-ca" status matches the snapshot
    And cluster "sim-1" has ConfigMap "ca-demo/settings" with "served" = "over-https"
    And ConfigMap "ca-demo/settings" on cluster "sim-1" was not redeployed
