//! Which CA bundle a GitRepo trusts (Fleet's `pkg/cert/cabundle.go` and the CA part of the git
//! job, PRs #3233/#3464): git access uses the GitRepo's `spec.caBundle`, and without one the
//! Rancher CA, i.e. Secret `cattle-system/tls-ca` key `cacerts.pem` followed by
//! `cattle-system/tls-ca-additional` key `ca-additional.pem` when that Secret exists. Helm chart
//! repositories get the Rancher CA, as Fleet passes it to `fleet apply --cacerts-file` (a
//! GitRepo's `caBundle` is about its git server; giving it to Helm would also replace the
//! public roots for every chart repository).
//!
//! Both bundles are copied next to the GitRepo, owned by it, because a git job pod can only
//! mount Secrets of its own namespace: `<gitrepo>-cabundle` (key `additional-ca.crt`, the git
//! CA) and `<gitrepo>-rancher-cabundle` (key `cacerts`, the Helm CA).
//!
//! Unlike Fleet, the PEM is checked before use, so that garbage in one of these Secrets shows
//! up on the GitRepo naming the Secret and key instead of as a TLS failure later on.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use fleet_api::GitRepo;

/// Namespace of Rancher's CA secrets.
pub const RANCHER_NAMESPACE: &str = "cattle-system";
/// Rancher's CA (`cacerts.pem`).
pub const TLS_CA_SECRET: &str = "tls-ca";
pub const TLS_CA_KEY: &str = "cacerts.pem";
/// Additional CAs Rancher trusts (`ca-additional.pem`), appended to `tls-ca`.
pub const TLS_CA_ADDITIONAL_SECRET: &str = "tls-ca-additional";
pub const TLS_CA_ADDITIONAL_KEY: &str = "ca-additional.pem";
/// Key of the git CA in `<gitrepo>-cabundle` (the git cloner's `--ca-bundle-file`).
pub const CA_BUNDLE_KEY: &str = "additional-ca.crt";
/// Key of the Helm CA in `<gitrepo>-rancher-cabundle` (`fleet apply --cacerts-file`).
pub const RANCHER_CA_BUNDLE_KEY: &str = "cacerts";
/// Field manager of the copied secrets.
pub const FIELD_MANAGER: &str = "fleet-gitjob";

/// Name of the secret holding the CA bundle for git access.
pub fn ca_bundle_secret_name(gitrepo: &str) -> String {
    format!("{gitrepo}-cabundle")
}

/// Name of the secret holding the Rancher CA bundle for Helm access.
pub fn rancher_ca_bundle_secret_name(gitrepo: &str) -> String {
    format!("{gitrepo}-rancher-cabundle")
}

/// Why no CA bundle can be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaBundleError {
    #[error("secret {namespace}/{name} has no key {key}")]
    MissingKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("secret {namespace}/{name} key {key} is not a PEM certificate bundle: {message}")]
    InvalidPem {
        namespace: String,
        name: String,
        key: String,
        message: String,
    },
    #[error("spec.caBundle is not a PEM certificate bundle: {message}")]
    InvalidGitRepoCa { message: String },
    #[error("reading secret {namespace}/{name}: {message}")]
    Read {
        namespace: String,
        name: String,
        message: String,
    },
}

/// Checks that `pem` holds at least one certificate and that every PEM section is a
/// well-formed X.509 certificate; returns how many there are.
pub fn validate_pem_bundle(pem: &[u8]) -> Result<usize, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut store = rustls::RootCertStore::empty();
    let mut count = 0;
    for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {}: {e}", index + 1))?;
        store
            .add(cert)
            .map_err(|e| format!("certificate {}: {e}", index + 1))?;
        count += 1;
    }
    if count == 0 {
        return Err("no PEM certificate found".to_string());
    }
    Ok(count)
}

fn secret_key(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| v.clone().into_bytes())
        })
}

fn checked_part(secret: &Secret, name: &str, key: &str) -> Result<Vec<u8>, CaBundleError> {
    let data = secret_key(secret, key).ok_or_else(|| CaBundleError::MissingKey {
        namespace: RANCHER_NAMESPACE.to_string(),
        name: name.to_string(),
        key: key.to_string(),
    })?;
    validate_pem_bundle(&data).map_err(|message| CaBundleError::InvalidPem {
        namespace: RANCHER_NAMESPACE.to_string(),
        name: name.to_string(),
        key: key.to_string(),
        message,
    })?;
    Ok(data)
}

/// The Rancher CA bundle from the two secrets (`None` when absent): `tls-ca`'s `cacerts.pem`,
/// then `tls-ca-additional`'s `ca-additional.pem`. A secret that exists must have its key
/// (as in Fleet) and hold valid PEM.
pub fn rancher_ca_bundle(
    tls_ca: Option<&Secret>,
    additional: Option<&Secret>,
) -> Result<Option<Vec<u8>>, CaBundleError> {
    let mut bundle = Vec::new();
    if let Some(secret) = tls_ca {
        bundle = checked_part(secret, TLS_CA_SECRET, TLS_CA_KEY)?;
    }
    if let Some(secret) = additional {
        let part = checked_part(secret, TLS_CA_ADDITIONAL_SECRET, TLS_CA_ADDITIONAL_KEY)?;
        if !bundle.is_empty() && !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(&part);
    }
    Ok((!bundle.is_empty()).then_some(bundle))
}

/// Where the git CA of a GitRepo comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaSource {
    /// `spec.caBundle`.
    GitRepo,
    /// `cattle-system/tls-ca` (+ `tls-ca-additional`).
    Rancher,
    /// Nothing: the system roots only.
    None,
}

/// The CA bundles a GitRepo uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundles {
    /// For git access (fetching, cloning).
    pub git: Option<Vec<u8>>,
    pub git_source: CaSource,
    /// For Helm chart repositories of the bundles.
    pub helm: Option<Vec<u8>>,
    /// Why the Rancher CA is not used for Helm although the git CA did not need it.
    pub helm_warning: Option<String>,
}

impl CaBundles {
    /// Changes whenever the git CA changes (a new fetch is due).
    pub fn git_fingerprint(&self) -> String {
        fingerprint(self.git.as_deref())
    }

    /// Changes whenever the Helm CA changes (a new bundle build is due).
    pub fn helm_fingerprint(&self) -> String {
        fingerprint(self.helm.as_deref())
    }
}

fn fingerprint(data: Option<&[u8]>) -> String {
    use sha2::Digest as _;
    match data {
        None => String::new(),
        Some(d) => hex::encode(sha2::Sha256::digest(d)),
    }
}

/// Decides the CA bundles of a GitRepo from its `spec.caBundle` and the Rancher CA (as read
/// by [`rancher_ca_bundle`]). A broken Rancher CA only fails GitRepos that need it for git.
pub fn select(
    gitrepo_ca: Option<&[u8]>,
    rancher: Result<Option<Vec<u8>>, CaBundleError>,
) -> Result<CaBundles, CaBundleError> {
    let own = gitrepo_ca.filter(|ca| !ca.is_empty());
    match own {
        Some(ca) => {
            validate_pem_bundle(ca)
                .map_err(|message| CaBundleError::InvalidGitRepoCa { message })?;
            let (helm, helm_warning) = match rancher {
                Ok(helm) => (helm, None),
                Err(e) => (None, Some(e.to_string())),
            };
            Ok(CaBundles {
                git: Some(ca.to_vec()),
                git_source: CaSource::GitRepo,
                helm,
                helm_warning,
            })
        }
        None => {
            let rancher = rancher?;
            let git_source = if rancher.is_some() {
                CaSource::Rancher
            } else {
                CaSource::None
            };
            Ok(CaBundles {
                git: rancher.clone(),
                git_source,
                helm: rancher,
                helm_warning: None,
            })
        }
    }
}

/// Reads the Rancher CA secrets and checks them.
pub async fn read_rancher_ca_bundle(
    client: &kube::Client,
) -> Result<Option<Vec<u8>>, CaBundleError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), RANCHER_NAMESPACE);
    let read = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(name)
                .await
                .map_err(|e| CaBundleError::Read {
                    namespace: RANCHER_NAMESPACE.to_string(),
                    name: name.to_string(),
                    message: e.to_string(),
                })
        }
    };
    let tls_ca = read(TLS_CA_SECRET).await?;
    let additional = read(TLS_CA_ADDITIONAL_SECRET).await?;
    rancher_ca_bundle(tls_ca.as_ref(), additional.as_ref())
}

/// The CA bundles of `gitrepo` (its `spec.caBundle` after GitRepoRestriction defaults is the
/// one in `spec_ca`).
pub async fn resolve(
    client: &kube::Client,
    spec_ca: Option<&ByteString>,
) -> Result<CaBundles, CaBundleError> {
    let rancher = read_rancher_ca_bundle(client).await;
    select(spec_ca.map(|b| b.0.as_slice()), rancher)
}

/// The controller reference that makes `gitrepo` own an object (garbage-collected with it).
pub fn owner_reference(gitrepo: &GitRepo) -> Option<OwnerReference> {
    gitrepo.controller_owner_ref(&())
}

/// The copied CA secrets of a GitRepo: for each name, the secret it should be, or `None` when
/// there is nothing to copy (a secret this GitRepo owns is then removed).
pub fn desired_secrets(gitrepo: &GitRepo, cas: &CaBundles) -> Vec<(String, Option<Secret>)> {
    let name = gitrepo.metadata.name.clone().unwrap_or_default();
    let namespace = gitrepo.metadata.namespace.clone();
    let secret = |secret_name: String, key: &str, data: &Option<Vec<u8>>| {
        let secret = data.as_ref().map(|d| Secret {
            metadata: ObjectMeta {
                name: Some(secret_name.clone()),
                namespace: namespace.clone(),
                owner_references: owner_reference(gitrepo).map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            data: Some([(key.to_string(), ByteString(d.clone()))].into()),
            type_: Some("Opaque".to_string()),
            ..Secret::default()
        });
        (secret_name, secret)
    };
    vec![
        secret(ca_bundle_secret_name(&name), CA_BUNDLE_KEY, &cas.git),
        secret(
            rancher_ca_bundle_secret_name(&name),
            RANCHER_CA_BUNDLE_KEY,
            &cas.helm,
        ),
    ]
}

fn owned_by(secret: &Secret, gitrepo: &GitRepo) -> bool {
    let uid = gitrepo.metadata.uid.as_deref();
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(o.uid.as_str()) == uid)
}

/// Writes the copied CA secrets of `gitrepo` when they differ from what is there (server-side
/// apply), and removes those it owns that are no longer wanted. Returns the action that failed.
pub async fn sync_secrets(
    client: &kube::Client,
    gitrepo: &GitRepo,
    cas: &CaBundles,
) -> Result<(), (String, kube::Error)> {
    let namespace = gitrepo.metadata.namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    for (name, desired) in desired_secrets(gitrepo, cas) {
        let existing = secrets
            .get_opt(&name)
            .await
            .map_err(|e| (format!("reading secret {namespace}/{name}"), e))?;
        match desired {
            Some(want) => {
                let same = existing.as_ref().is_some_and(|have| {
                    have.data == want.data && owned_by(have, gitrepo) && have.type_ == want.type_
                });
                if same {
                    continue;
                }
                let mut body = serde_json::to_value(&want).map_err(|e| {
                    (
                        format!("encoding secret {name}"),
                        kube::Error::SerdeError(e),
                    )
                })?;
                body["apiVersion"] = serde_json::json!("v1");
                body["kind"] = serde_json::json!("Secret");
                secrets
                    .patch(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&body),
                    )
                    .await
                    .map_err(|e| (format!("writing CA bundle secret {namespace}/{name}"), e))?;
                tracing::info!(secret = %name, "CA bundle secret written");
            }
            None => {
                if let Some(have) = existing
                    && owned_by(&have, gitrepo)
                {
                    match secrets.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => {
                            return Err((
                                format!("deleting CA bundle secret {namespace}/{name}"),
                                e,
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed CA certificate in PEM.
    fn ca_pem(name: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem().into_bytes()
    }

    fn secret(key: &str, value: &[u8]) -> Secret {
        Secret {
            data: Some([(key.to_string(), ByteString(value.to_vec()))].into()),
            ..Secret::default()
        }
    }

    #[test]
    fn pem_bundles_are_checked() {
        let one = ca_pem("one");
        assert_eq!(validate_pem_bundle(&one), Ok(1));
        let two = [one.clone(), ca_pem("two")].concat();
        assert_eq!(validate_pem_bundle(&two), Ok(2));
        assert_eq!(
            validate_pem_bundle(b"garbage"),
            Err("no PEM certificate found".to_string())
        );
        let bad_base64 = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(validate_pem_bundle(bad_base64).is_err());
        let not_x509 =
            b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        assert!(validate_pem_bundle(not_x509).is_err());
    }

    #[test]
    fn rancher_bundle_is_tls_ca_then_additional() {
        let (a, b) = (ca_pem("a"), ca_pem("b"));
        let tls = secret(TLS_CA_KEY, &a);
        let extra = secret(TLS_CA_ADDITIONAL_KEY, &b);
        assert_eq!(rancher_ca_bundle(None, None), Ok(None));
        assert_eq!(rancher_ca_bundle(Some(&tls), None), Ok(Some(a.clone())));
        let both = rancher_ca_bundle(Some(&tls), Some(&extra))
            .unwrap()
            .unwrap();
        assert!(both.starts_with(&a) && both.ends_with(&b));
        assert_eq!(validate_pem_bundle(&both), Ok(2));
        assert_eq!(rancher_ca_bundle(None, Some(&extra)), Ok(Some(b)));
    }

    #[test]
    fn broken_rancher_secrets_name_secret_and_key() {
        let wrong_key = secret("ca.crt", &ca_pem("a"));
        let err = rancher_ca_bundle(Some(&wrong_key), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret cattle-system/tls-ca has no key cacerts.pem"
        );
        let garbage = secret(TLS_CA_ADDITIONAL_KEY, b"not a certificate");
        let err = rancher_ca_bundle(None, Some(&garbage)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret cattle-system/tls-ca-additional key ca-additional.pem is not a PEM certificate bundle: no PEM certificate found"
        );
    }

    #[test]
    fn the_gitrepo_ca_wins_for_git_and_rancher_serves_helm() {
        let (own, rancher) = (ca_pem("own"), ca_pem("rancher"));
        let cas = select(Some(&own), Ok(Some(rancher.clone()))).unwrap();
        assert_eq!(cas.git, Some(own.clone()));
        assert_eq!(cas.git_source, CaSource::GitRepo);
        assert_eq!(cas.helm, Some(rancher.clone()));

        let cas = select(None, Ok(Some(rancher.clone()))).unwrap();
        assert_eq!(cas.git, Some(rancher.clone()));
        assert_eq!(cas.git_source, CaSource::Rancher);

        let cas = select(Some(b""), Ok(None)).unwrap();
        assert_eq!(cas.git, None);
        assert_eq!(cas.git_source, CaSource::None);
    }

    #[test]
    fn a_broken_rancher_ca_fails_only_gitrepos_that_need_it() {
        let broken = Err(CaBundleError::MissingKey {
            namespace: RANCHER_NAMESPACE.into(),
            name: TLS_CA_SECRET.into(),
            key: TLS_CA_KEY.into(),
        });
        assert!(select(None, broken.clone()).is_err());
        let own = ca_pem("own");
        let cas = select(Some(&own), broken).unwrap();
        assert_eq!(cas.git, Some(own));
        assert_eq!(cas.helm, None);
        assert!(cas.helm_warning.unwrap().contains("tls-ca"));
        let err = select(Some(b"junk"), Ok(None)).unwrap_err();
        assert!(err.to_string().starts_with("spec.caBundle"));
    }

    #[test]
    fn copied_secrets_follow_the_bundles() {
        let mut gitrepo = GitRepo::new("apps", Default::default());
        gitrepo.metadata.namespace = Some("fleet-local".into());
        gitrepo.metadata.uid = Some("uid-1".into());
        let cas = CaBundles {
            git: Some(b"git".to_vec()),
            git_source: CaSource::GitRepo,
            helm: None,
            helm_warning: None,
        };
        let secrets = desired_secrets(&gitrepo, &cas);
        assert_eq!(secrets[0].0, "apps-cabundle");
        let git = secrets[0].1.as_ref().unwrap();
        assert_eq!(git.data.as_ref().unwrap()[CA_BUNDLE_KEY].0, b"git");
        let owner = &git.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("GitRepo", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(secrets[1].0, "apps-rancher-cabundle");
        assert!(secrets[1].1.is_none());
    }
}
