//! Authentication: who a request is. Static bearer tokens (the admin's, [`crate::SimCluster::add_token`]
//! users) and ServiceAccount tokens, as kube-apiserver and kube-controller-manager issue them:
//!
//! - **Legacy Secret tokens.** A Secret of type `kubernetes.io/service-account-token` annotated
//!   `kubernetes.io/service-account.name: <sa>` gets `data.token`, `data["ca.crt"]` and
//!   `data.namespace` filled in right after it is written (the token controller's write, field
//!   manager `kube-controller-manager`). The token stays valid while the Secret holds it and the
//!   ServiceAccount (same uid) exists; deleting the ServiceAccount deletes its token Secrets.
//! - **Bound tokens** from the TokenRequest subresource
//!   (`POST .../serviceaccounts/<sa>/token`): valid until they expire, while the ServiceAccount
//!   (and the object they are bound to, if any) exists, for the API server's audience only.
//!
//! Tokens are JWTs signed with a per-cluster key (HS256), so validation needs no token table:
//! the signature proves the claims, the store decides whether they still hold.

use std::sync::{Arc, OnceLock, RwLock};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::error::ApiError;
use crate::store::{Obj, ObjKey, StoreState};
use crate::tls::ServingCerts;

/// The group kube-apiserver lets do everything without asking the authorizer.
pub const MASTERS_GROUP: &str = "system:masters";
/// Every authenticated identity is in this group.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Every ServiceAccount is in this group (and in `system:serviceaccounts:<namespace>`).
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The Secret type the token controller fills in.
pub const SERVICE_ACCOUNT_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the ServiceAccount of a token Secret.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The annotation the token controller sets to the ServiceAccount's uid.
pub const SERVICE_ACCOUNT_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";
/// The issuer and default audience of bound tokens, as a default kube-apiserver.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
const SA_PREFIX: &str = "system:serviceaccount:";

/// An authenticated identity (kube's `user.Info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The cluster admin: user [`crate::ADMIN_USER`] in `system:masters`.
    pub fn admin() -> Self {
        UserInfo {
            name: crate::ADMIN_USER.to_string(),
            uid: String::new(),
            groups: vec![MASTERS_GROUP.to_string(), AUTHENTICATED_GROUP.to_string()],
        }
    }

    /// A plain user (group `system:authenticated` only). A name of the form
    /// `system:serviceaccount:<ns>:<sa>` gets the ServiceAccount groups too, as kube-apiserver
    /// gives them to every ServiceAccount identity.
    pub fn user(name: &str) -> Self {
        if let Some((ns, sa)) = split_service_account(name) {
            return Self::service_account(ns, sa, "");
        }
        UserInfo {
            name: name.to_string(),
            uid: String::new(),
            groups: vec![AUTHENTICATED_GROUP.to_string()],
        }
    }

    /// `system:serviceaccount:<ns>:<sa>` with kube-apiserver's ServiceAccount groups.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Self {
        UserInfo {
            name: format!("{SA_PREFIX}{namespace}:{name}"),
            uid: uid.to_string(),
            groups: vec![
                SERVICE_ACCOUNTS_GROUP.to_string(),
                format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
                AUTHENTICATED_GROUP.to_string(),
            ],
        }
    }

    /// In `system:masters`: never asks the authorizer.
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS_GROUP)
    }

    /// The JSON of `authentication.k8s.io/v1` `UserInfo`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        v
    }
}

/// `(namespace, name)` of a `system:serviceaccount:<ns>:<sa>` user name.
pub fn split_service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SA_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// Signs and checks one cluster's ServiceAccount tokens.
pub struct TokenIssuer {
    key: [u8; 32],
    /// The listener's PKI (shared by the simulator), for `ca.crt` of token Secrets.
    ca: RwLock<Option<Arc<OnceLock<Arc<ServingCerts>>>>>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").finish_non_exhaustive()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl TokenIssuer {
    pub fn new(key: [u8; 32]) -> Self {
        TokenIssuer {
            key,
            ca: RwLock::new(None),
        }
    }

    pub(crate) fn set_ca_source(&self, certs: Arc<OnceLock<Arc<ServingCerts>>>) {
        if let Ok(mut c) = self.ca.write() {
            *c = Some(certs);
        }
    }

    /// The CA a client of this cluster trusts (made now if no listener made it yet, with the
    /// loopback names every listener's certificate carries).
    pub fn ca_pem(&self) -> String {
        let source = self.ca.read().ok().and_then(|c| c.clone());
        let Some(source) = source else {
            return String::new();
        };
        if let Some(c) = source.get() {
            return c.ca_pem().to_string();
        }
        match ServingCerts::generate(&[]) {
            Ok(made) => source.get_or_init(|| Arc::new(made)).ca_pem().to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "generating the simulator's CA for a token Secret");
                String::new()
            }
        }
    }

    fn signature(&self, signing_input: &str) -> Vec<u8> {
        // HMAC accepts keys of any length; the error branch cannot happen with 32 bytes.
        match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(signing_input.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let header = b64url(
            json!({"alg": "HS256", "kid": "fleet-sim"})
                .to_string()
                .as_bytes(),
        );
        let payload = b64url(claims.to_string().as_bytes());
        let input = format!("{header}.{payload}");
        let sig = b64url(&self.signature(&input));
        format!("{input}.{sig}")
    }

    /// The claims of a token this issuer signed, if the signature holds.
    pub(crate) fn verified_claims(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(format!("{h}.{p}").as_bytes());
        mac.verify_slice(&sig).ok()?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .ok()?;
        serde_json::from_slice(&payload).ok()
    }

    /// A legacy (Secret-based, non-expiring) token, as the token controller mints it. The
    /// Secret's uid is a claim too, so a Secret re-created under the same name never brings
    /// back a token of its predecessor.
    pub fn legacy_token(
        &self,
        namespace: &str,
        sa: &str,
        sa_uid: &str,
        secret: &str,
        secret_uid: &str,
    ) -> String {
        self.sign(&json!({
            "iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/secret.name": secret,
            "kubernetes.io/serviceaccount/secret.uid": secret_uid,
            "kubernetes.io/serviceaccount/service-account.name": sa,
            "kubernetes.io/serviceaccount/service-account.uid": sa_uid,
            "sub": format!("{SA_PREFIX}{namespace}:{sa}"),
        }))
    }

    /// A bound token (TokenRequest).
    #[allow(clippy::too_many_arguments)]
    fn bound_token(
        &self,
        namespace: &str,
        sa: &str,
        sa_uid: &str,
        audiences: &[String],
        expires_at: i64,
        bound: Option<(&str, &str, &str)>,
        jti: &str,
    ) -> String {
        let now = now_secs();
        let mut k8s =
            json!({"namespace": namespace, "serviceaccount": {"name": sa, "uid": sa_uid}});
        if let Some((kind, name, uid)) = bound {
            k8s[kind.to_lowercase()] = json!({"name": name, "uid": uid});
        }
        self.sign(&json!({
            "aud": audiences,
            "exp": expires_at,
            "iat": now,
            "nbf": now,
            "iss": API_AUDIENCE,
            "jti": jti,
            "kubernetes.io": k8s,
            "sub": format!("{SA_PREFIX}{namespace}:{sa}"),
        }))
    }

    /// Who a ServiceAccount token is, checked against the store: the ServiceAccount (same uid)
    /// must exist and not be terminating; a legacy token must still be in its Secret; a bound
    /// token must be unexpired, for the API audience, its bound object alive.
    pub fn authenticate(&self, st: &StoreState, token: &str) -> Option<UserInfo> {
        let claims = self.verified_claims(token)?;
        self.authenticate_verified(st, &claims, token)
    }

    /// [`TokenIssuer::authenticate`] for claims already verified by
    /// [`TokenIssuer::verified_claims`], so the signature check runs without the store lock.
    pub(crate) fn authenticate_verified(
        &self,
        st: &StoreState,
        claims: &Value,
        token: &str,
    ) -> Option<UserInfo> {
        self.validate(st, claims, token).map(|v| v.user)
    }

    /// Checks verified claims against the store, and says which stored objects (at which
    /// resourceVersion) the answer rests on, so that it can be cached until one of them is
    /// written.
    pub(crate) fn validate(
        &self,
        st: &StoreState,
        claims: &Value,
        token: &str,
    ) -> Option<ValidatedToken> {
        let mut depends_on = Vec::new();
        let s = |p: &str| claims.pointer(p).and_then(Value::as_str);
        if claims.get("iss").and_then(Value::as_str) == Some(LEGACY_ISSUER) {
            let ns = claims
                .get("kubernetes.io/serviceaccount/namespace")?
                .as_str()?;
            let secret = claims
                .get("kubernetes.io/serviceaccount/secret.name")?
                .as_str()?;
            let sa = claims
                .get("kubernetes.io/serviceaccount/service-account.name")?
                .as_str()?;
            let uid = claims
                .get("kubernetes.io/serviceaccount/service-account.uid")?
                .as_str()?;
            let secret_obj = live_tracked(st, "secrets", ns, secret, &mut depends_on)?;
            if secret_obj.pointer("/metadata/uid")
                != claims.get("kubernetes.io/serviceaccount/secret.uid")
            {
                return None;
            }
            let stored = secret_obj
                .pointer("/data/token")
                .and_then(Value::as_str)
                .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())?;
            if stored != token.as_bytes() {
                return None;
            }
            let sa_obj = live_tracked(st, "serviceaccounts", ns, sa, &mut depends_on)?;
            if sa_obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
                return None;
            }
            return Some(ValidatedToken {
                user: UserInfo::service_account(ns, sa, uid),
                depends_on,
                window: None,
            });
        }
        let now = now_secs();
        let exp = claims.get("exp").and_then(Value::as_i64)?;
        let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
        if now >= exp || now < nbf {
            return None;
        }
        let for_api = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(API_AUDIENCE)));
        if !for_api {
            return None;
        }
        let ns = s("/kubernetes.io/namespace")?;
        let sa = s("/kubernetes.io/serviceaccount/name")?;
        let uid = s("/kubernetes.io/serviceaccount/uid")?;
        let sa_obj = live_tracked(st, "serviceaccounts", ns, sa, &mut depends_on)?;
        if sa_obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
            return None;
        }
        for (kind, resource) in [("secret", "secrets"), ("pod", "pods")] {
            if let Some(b) = claims.pointer(&format!("/kubernetes.io/{kind}")) {
                let name = b.get("name").and_then(Value::as_str)?;
                let obj = live_tracked(st, resource, ns, name, &mut depends_on)?;
                if obj.pointer("/metadata/uid") != b.get("uid") {
                    return None;
                }
            }
        }
        Some(ValidatedToken {
            user: UserInfo::service_account(ns, sa, uid),
            depends_on,
            window: Some((nbf, exp)),
        })
    }

    /// Serves `POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token`: the `TokenRequest` with
    /// `status.token` and `status.expirationTimestamp`.
    pub fn token_request(
        &self,
        st: &StoreState,
        namespace: &str,
        sa: &str,
        body: &Value,
        jti: &str,
    ) -> Result<Value, ApiError> {
        let Some(sa_obj) = live(st, "serviceaccounts", namespace, sa) else {
            return Err(ApiError::not_found("", "serviceaccounts", sa));
        };
        let sa_uid = sa_obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let spec = body.get("spec").cloned().unwrap_or(json!({}));
        let mut audiences: Vec<String> = spec
            .get("audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if audiences.is_empty() {
            audiences.push(API_AUDIENCE.to_string());
        }
        let seconds = match spec.get("expirationSeconds") {
            None | Some(Value::Null) => 3600,
            Some(v) => v.as_i64().ok_or_else(|| {
                ApiError::bad_request("spec.expirationSeconds must be an integer")
            })?,
        };
        if seconds < 600 {
            return Err(ApiError::invalid(
                "authentication.k8s.io",
                "TokenRequest",
                sa,
                &[(
                    "spec.expirationSeconds".to_string(),
                    format!(
                        "Invalid value: {seconds}: may not specify a duration less than 10 minutes"
                    ),
                )],
            ));
        }
        let mut bound = None;
        if let Some(r) = spec.get("boundObjectRef").filter(|r| r.is_object()) {
            let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
            let name = r.get("name").and_then(Value::as_str).unwrap_or("");
            let resource = match kind {
                "Secret" => "secrets",
                "Pod" => "pods",
                other => {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token to object of type {other}"
                    )));
                }
            };
            let Some(obj) = live(st, resource, namespace, name) else {
                return Err(ApiError::not_found("", resource, name));
            };
            let uid = obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(want) = r.get("uid").and_then(Value::as_str)
                && !want.is_empty()
                && want != uid
            {
                return Err(ApiError::conflict(
                    "",
                    resource,
                    name,
                    &format!(
                        "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                ));
            }
            bound = Some((kind.to_string(), name.to_string(), uid));
        }
        let expires_at = now_secs() + seconds;
        let token = self.bound_token(
            namespace,
            sa,
            &sa_uid,
            &audiences,
            expires_at,
            bound
                .as_ref()
                .map(|(k, n, u)| (k.as_str(), n.as_str(), u.as_str())),
            jti,
        );
        let expiration = chrono::DateTime::from_timestamp(expires_at, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let mut out_spec = json!({"audiences": audiences, "expirationSeconds": seconds});
        if let Some(r) = spec.get("boundObjectRef").filter(|r| r.is_object()) {
            out_spec["boundObjectRef"] = r.clone();
        }
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": sa, "namespace": namespace, "creationTimestamp": null},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": expiration},
        }))
    }
}

/// An object that exists and is not being deleted.
fn live(st: &StoreState, resource: &str, namespace: &str, name: &str) -> Option<Obj> {
    let obj = st.get(&ObjKey {
        group_resource: resource.into(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    })?;
    (obj.pointer("/metadata/deletionTimestamp").is_none()).then_some(obj)
}

/// [`live`], noting the object's key and resourceVersion in `depends_on`.
fn live_tracked(
    st: &StoreState,
    resource: &str,
    namespace: &str,
    name: &str,
    depends_on: &mut Vec<(ObjKey, u64)>,
) -> Option<Obj> {
    let key = ObjKey {
        group_resource: resource.into(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    let version = st.version_of(&key)?;
    let obj = st.get(&key)?;
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return None;
    }
    depends_on.push((key, version));
    Some(obj)
}

/// A ServiceAccount token found valid, and what that rests on.
#[derive(Debug, Clone)]
pub(crate) struct ValidatedToken {
    pub(crate) user: UserInfo,
    /// The objects read (ServiceAccount, token Secret, bound object) at their resourceVersions:
    /// a write to any of them (an update, a deletion) sends the token back to validation.
    depends_on: Vec<(ObjKey, u64)>,
    /// `(nbf, exp)` of a bound token.
    window: Option<(i64, i64)>,
}

impl ValidatedToken {
    /// Whether the answer still holds: every object it rests on unchanged, inside the token's
    /// validity window. Needs no decoding and no signature check.
    fn holds(&self, st: &StoreState, now: i64) -> bool {
        self.window.is_none_or(|(nbf, exp)| now >= nbf && now < exp)
            && self
                .depends_on
                .iter()
                .all(|(key, version)| st.version_of(key) == Some(*version))
    }
}

/// Tokens this cluster has validated (kube-apiserver's token authentication cache): a token
/// seen again costs a map lookup and a resourceVersion comparison per object it rests on,
/// instead of a signature check, the claims' JSON and decoding the ServiceAccount and Secret.
/// Unlike kube-apiserver's TTL cache, an entry goes the moment an object it rests on is
/// written, so revocation (deleting the token Secret or the ServiceAccount) takes effect at
/// once, as the simulator's tests expect. Failures are not cached.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: RwLock<std::collections::HashMap<String, Arc<CachedToken>>>,
}

/// A token's cached answer.
#[derive(Debug)]
pub(crate) struct CachedToken {
    validated: ValidatedToken,
    user: Arc<UserInfo>,
}

impl CachedToken {
    /// The identity, when the answer still holds against the store.
    pub(crate) fn user_if_holds(&self, st: &StoreState) -> Option<Arc<UserInfo>> {
        self.validated
            .holds(st, now_secs())
            .then(|| self.user.clone())
    }
}

/// Tokens kept at most; beyond it the cache starts over (tokens are few per cluster: one per
/// agent, controller or user).
const TOKEN_CACHE_ENTRIES: usize = 4096;

impl TokenCache {
    /// The cached answer for a token, if any (checked with [`CachedToken::user_if_holds`]
    /// under the store lock, which is not needed for this lookup).
    pub(crate) fn get(&self, token: &str) -> Option<Arc<CachedToken>> {
        let entries = match self.entries.read() {
            Ok(e) => e,
            Err(p) => p.into_inner(),
        };
        entries.get(token).cloned()
    }

    /// Remembers a token just validated; returns its identity.
    pub(crate) fn put(&self, token: &str, validated: ValidatedToken) -> Arc<UserInfo> {
        let user = Arc::new(validated.user.clone());
        let mut entries = match self.entries.write() {
            Ok(e) => e,
            Err(p) => p.into_inner(),
        };
        if entries.len() >= TOKEN_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(
            token.to_string(),
            Arc::new(CachedToken {
                validated,
                user: user.clone(),
            }),
        );
        user
    }
}

/// What the token controller writes into a token Secret, if anything: the Secret with
/// `data.token`/`ca.crt`/`namespace` and the ServiceAccount uid annotation filled in. `None`
/// when it is not a token Secret, is complete, or names no live ServiceAccount (uid mismatch
/// included).
pub fn filled_token_secret(issuer: &TokenIssuer, st: &StoreState, secret: &Value) -> Option<Value> {
    if secret.get("type").and_then(Value::as_str) != Some(SERVICE_ACCOUNT_TOKEN_TYPE) {
        return None;
    }
    if secret.pointer("/metadata/deletionTimestamp").is_some() {
        return None;
    }
    let annotations = secret.pointer("/metadata/annotations")?;
    let sa = annotations
        .get(SERVICE_ACCOUNT_NAME_ANNOTATION)
        .and_then(Value::as_str)?;
    let ns = secret
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)?;
    let name = secret.pointer("/metadata/name").and_then(Value::as_str)?;
    let sa_obj = live(st, "serviceaccounts", ns, sa)?;
    let sa_uid = sa_obj.pointer("/metadata/uid").and_then(Value::as_str)?;
    if let Some(want) = annotations
        .get(SERVICE_ACCOUNT_UID_ANNOTATION)
        .and_then(Value::as_str)
        && !want.is_empty()
        && want != sa_uid
    {
        return None;
    }
    let has = |k: &str| {
        secret
            .pointer(&format!("/data/{}", k.replace('/', "~1")))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    let has_uid = annotations.get(SERVICE_ACCOUNT_UID_ANNOTATION).is_some();
    if has("token") && has("ca.crt") && has("namespace") && has_uid {
        return None;
    }
    let enc = |s: &str| json!(base64::engine::general_purpose::STANDARD.encode(s));
    let mut out = secret.clone();
    out["metadata"]["annotations"][SERVICE_ACCOUNT_UID_ANNOTATION] = json!(sa_uid);
    if !out.get("data").is_some_and(Value::is_object) {
        out["data"] = json!({});
    }
    if !has("token") {
        let secret_uid = secret
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        out["data"]["token"] = enc(&issuer.legacy_token(ns, sa, sa_uid, name, secret_uid));
    }
    if !has("ca.crt") {
        out["data"]["ca.crt"] = enc(&issuer.ca_pem());
    }
    if !has("namespace") {
        out["data"]["namespace"] = enc(ns);
    }
    Some(out)
}
