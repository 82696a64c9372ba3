//! Seeded fault injection per cluster: latency, error responses, dropped watches, partitions.
//!
//! A [`FaultPlan`] is data (part of a behaviour profile, or built with [`FaultPlan::builder`]); a
//! [`FaultInjector`] draws from a seeded RNG, so the same plan, seed and request sequence give the
//! same decisions. The HTTP layer asks [`FaultInjector::decide`] before serving each request and
//! carries the [`Decision`] out; [`status_body`] builds the `metav1.Status` to send for a failure.
//!
//! API-server restarts that lose watch history are the store's job: [`FaultPlan::restart_every`]
//! says how often (see [`FaultInjector::restart_due`] for a seeded, jittered schedule).

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::behaviour::parse_duration;

/// The status code every request to a partitioned cluster gets.
///
/// 502 Bad Gateway is what the front door (the one loopback listener serving every cluster, or a
/// load balancer in front of a real API server) answers when the API server behind it cannot be
/// reached: clients see the cluster as unreachable rather than as an overloaded server (503) or
/// a server bug (500), which is also what lets tests tell a partition from injected errors.
/// kube-rs reports it as an API error with this code; client-go and kubectl treat it as a
/// transient server-side failure and retry reads. An in-process transport that prefers a
/// connection-level error can check [`FaultInjector::is_partitioned`] and fail the call itself.
pub const PARTITION_STATUS_CODE: u16 = 502;

/// How many seconds a client is told to wait after a 429 (kube-apiserver's max-in-flight and
/// priority-and-fairness filters both send `Retry-After: 1`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// An invalid fault plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultPlanError {
    #[error("fault plan: error rate {0} is not between 0 and 1")]
    ErrorRate(f64),
    #[error("fault plan: latency minimum {min:?} is larger than its maximum {max:?}")]
    Latency { min: Duration, max: Duration },
    #[error(
        "fault plan: error code {0} is not one the simulator injects (use 429, 500, 502, 503 or 504)"
    )]
    ErrorCode(u16),
    #[error("fault plan: error rate {0} is set but no error codes are listed")]
    NoErrorCodes(f64),
}

/// Which faults one simulated cluster suffers. The default injects nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultPlan {
    /// Extra latency per request, uniform between min and max (watches are not delayed).
    #[serde(
        default,
        with = "latency_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<(Duration, Duration)>,
    /// Fraction of requests (0.0–1.0) that fail with one of `error_codes`.
    #[serde(default)]
    pub error_rate: f64,
    /// Codes injected failures use, chosen uniformly: 429, 500, 503 (also 502, 504).
    #[serde(default = "default_error_codes")]
    pub error_codes: Vec<u16>,
    /// Verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, …) errors apply to;
    /// empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_verbs: Vec<String>,
    /// Resources (plural, e.g. `deployments`) errors apply to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_resources: Vec<String>,
    /// Watch streams are cut after this long (the client must re-watch).
    #[serde(
        default,
        with = "crate::behaviour::option_duration_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub drop_watch_after: Option<Duration>,
    /// Up to this much is added to `drop_watch_after`, uniformly, so clients do not re-watch in
    /// lockstep.
    #[serde(
        default,
        with = "crate::behaviour::option_duration_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub drop_watch_jitter: Option<Duration>,
    /// Every request fails with [`PARTITION_STATUS_CODE`].
    #[serde(default)]
    pub partitioned: bool,
    /// The API server "restarts" this often: the store drops its watch history, so watchers get
    /// `410 Gone` and must re-list. Applied by the store, not by [`FaultInjector::decide`].
    #[serde(
        default,
        with = "crate::behaviour::option_duration_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub restart_every: Option<Duration>,
}

fn default_error_codes() -> Vec<u16> {
    vec![500, 503, 429]
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            latency: None,
            error_rate: 0.0,
            error_codes: default_error_codes(),
            error_verbs: Vec::new(),
            error_resources: Vec::new(),
            drop_watch_after: None,
            drop_watch_jitter: None,
            partitioned: false,
            restart_every: None,
        }
    }
}

impl FaultPlan {
    /// A plan that injects nothing.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn builder() -> FaultPlanBuilder {
        FaultPlanBuilder {
            plan: Self::default(),
        }
    }

    /// Whether any fault is configured.
    pub fn is_active(&self) -> bool {
        self.latency.is_some()
            || self.error_rate > 0.0
            || self.drop_watch_after.is_some()
            || self.partitioned
            || self.restart_every.is_some()
    }

    pub fn validate(&self) -> Result<(), FaultPlanError> {
        if !(0.0..=1.0).contains(&self.error_rate) || self.error_rate.is_nan() {
            return Err(FaultPlanError::ErrorRate(self.error_rate));
        }
        if let Some((min, max)) = self.latency
            && min > max
        {
            return Err(FaultPlanError::Latency { min, max });
        }
        if let Some(code) = self
            .error_codes
            .iter()
            .copied()
            .find(|code| failure_text(*code).is_none())
        {
            return Err(FaultPlanError::ErrorCode(code));
        }
        if self.error_rate > 0.0 && self.error_codes.is_empty() {
            return Err(FaultPlanError::NoErrorCodes(self.error_rate));
        }
        Ok(())
    }
}

/// Builds a [`FaultPlan`]; `build` validates it.
#[derive(Debug, Clone)]
pub struct FaultPlanBuilder {
    plan: FaultPlan,
}

impl FaultPlanBuilder {
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.plan.latency = Some((min, max));
        self
    }

    pub fn error_rate(mut self, rate: f64) -> Self {
        self.plan.error_rate = rate;
        self
    }

    pub fn error_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.plan.error_codes = codes.into_iter().collect();
        self
    }

    pub fn error_verbs(mut self, verbs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.plan.error_verbs = verbs.into_iter().map(Into::into).collect();
        self
    }

    pub fn error_resources(
        mut self,
        resources: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.plan.error_resources = resources.into_iter().map(Into::into).collect();
        self
    }

    pub fn drop_watch_after(mut self, after: Duration) -> Self {
        self.plan.drop_watch_after = Some(after);
        self
    }

    pub fn drop_watch_jitter(mut self, jitter: Duration) -> Self {
        self.plan.drop_watch_jitter = Some(jitter);
        self
    }

    pub fn partitioned(mut self, partitioned: bool) -> Self {
        self.plan.partitioned = partitioned;
        self
    }

    pub fn restart_every(mut self, every: Duration) -> Self {
        self.plan.restart_every = Some(every);
        self
    }

    pub fn build(self) -> Result<FaultPlan, FaultPlanError> {
        self.plan.validate()?;
        Ok(self.plan)
    }
}

/// The request being decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo<'a> {
    /// Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection` (discovery requests may use `get`).
    pub verb: &'a str,
    /// Plural resource (`deployments`), or the path for non-resource requests (`/version`).
    pub resource: &'a str,
    pub is_watch: bool,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Serve it normally.
    Pass,
    /// Serve it after this long.
    Delay(Duration),
    /// Answer with this `metav1.Status` failure instead (see [`status_body`]).
    Fail {
        code: u16,
        reason: String,
        message: String,
    },
    /// Serve the watch, then end the stream after this long.
    DropWatchAfter(Duration),
}

impl Decision {
    /// For a failure that asks the client to come back later, the seconds to send as the
    /// `Retry-After` header and `details.retryAfterSeconds`.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Decision::Fail { code: 429, .. } => Some(RETRY_AFTER_SECONDS),
            _ => None,
        }
    }
}

/// Reason and message kube-apiserver writes for each status code the injector uses.
fn failure_text(code: u16) -> Option<(&'static str, String)> {
    Some(match code {
        429 => (
            "TooManyRequests",
            format!(
                "Too many requests, please try again later. (Retry-After: {RETRY_AFTER_SECONDS}s)"
            ),
        ),
        500 => (
            "InternalError",
            "Internal error occurred: simulated fault: etcdserver: request timed out".into(),
        ),
        502 => (
            "ServiceUnavailable",
            "the cluster is unreachable (simulated network partition)".into(),
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request (simulated fault)".into(),
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted (simulated fault)"
                .into(),
        ),
        _ => return None,
    })
}

/// The `metav1.Status` body for a [`Decision::Fail`] (with `details.retryAfterSeconds` for 429).
pub fn status_body(code: u16, reason: &str, message: &str) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if code == 429 {
        status["details"] = json!({ "retryAfterSeconds": RETRY_AFTER_SECONDS });
    }
    status
}

/// Decides the fate of each request to one cluster, from a [`FaultPlan`] and a seed.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    plan: FaultPlan,
    rng: ChaCha8Rng,
    next_restart: Option<Duration>,
}

impl FaultInjector {
    pub fn new(plan: FaultPlan, seed: u64) -> Self {
        let mut injector = Self {
            next_restart: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
            plan,
        };
        injector.next_restart = injector
            .plan
            .restart_every
            .map(|every| injector.jittered_restart(Duration::ZERO, every));
        injector
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Replace the plan (e.g. a test partitions a cluster, then heals it); the RNG carries on.
    pub fn set_plan(&mut self, plan: FaultPlan) {
        self.next_restart = match (self.plan.restart_every, plan.restart_every) {
            (Some(old), Some(new)) if old == new => self.next_restart,
            (_, Some(every)) => Some(every),
            (_, None) => None,
        };
        self.plan = plan;
    }

    pub fn is_partitioned(&self) -> bool {
        self.plan.partitioned
    }

    pub fn decide(&mut self, request: &RequestInfo<'_>) -> Decision {
        if self.plan.partitioned {
            return fail(PARTITION_STATUS_CODE);
        }
        if self.plan.error_rate > 0.0
            && !self.plan.error_codes.is_empty()
            && self.errors_apply_to(request)
        {
            // Always draw, so one request's outcome does not shift the draws of the next.
            let roll: f64 = self.rng.random();
            if roll < self.plan.error_rate {
                let index = self.rng.random_range(0..self.plan.error_codes.len());
                return fail(self.plan.error_codes[index]);
            }
        }
        if request.is_watch {
            if let Some(after) = self.plan.drop_watch_after {
                let jitter = self
                    .plan
                    .drop_watch_jitter
                    .map_or(Duration::ZERO, |jitter| {
                        self.uniform(Duration::ZERO, jitter)
                    });
                return Decision::DropWatchAfter(after + jitter);
            }
            return Decision::Pass;
        }
        match self.plan.latency {
            Some((min, max)) => {
                let delay = self.uniform(min, max);
                if delay.is_zero() {
                    Decision::Pass
                } else {
                    Decision::Delay(delay)
                }
            }
            None => Decision::Pass,
        }
    }

    /// Whether the simulated API server restarts (losing watch history) at `now`, time since
    /// cluster start. Returns true once per period; restarts come every `restart_every` with up to
    /// 10% jitter, so thousands of clusters do not restart in the same instant.
    pub fn restart_due(&mut self, now: Duration) -> bool {
        let (Some(next), Some(every)) = (self.next_restart, self.plan.restart_every) else {
            return false;
        };
        if now < next {
            return false;
        }
        self.next_restart = Some(self.jittered_restart(now, every));
        true
    }

    /// When the next restart is due, if restarts are planned.
    pub fn next_restart(&self) -> Option<Duration> {
        self.next_restart
    }

    fn jittered_restart(&mut self, from: Duration, every: Duration) -> Duration {
        from + every + self.uniform(Duration::ZERO, every / 10)
    }

    fn errors_apply_to(&self, request: &RequestInfo<'_>) -> bool {
        (self.plan.error_verbs.is_empty()
            || self
                .plan
                .error_verbs
                .iter()
                .any(|verb| verb == request.verb))
            && (self.plan.error_resources.is_empty()
                || self
                    .plan
                    .error_resources
                    .iter()
                    .any(|resource| resource == request.resource))
    }

    fn uniform(&mut self, min: Duration, max: Duration) -> Duration {
        let (min_ms, max_ms) = (millis(min), millis(max));
        if max_ms <= min_ms {
            return min;
        }
        Duration::from_millis(self.rng.random_range(min_ms..=max_ms))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn fail(code: u16) -> Decision {
    let (reason, message) =
        failure_text(code).unwrap_or(("InternalError", "Internal error occurred".to_owned()));
    Decision::Fail {
        code,
        reason: reason.to_owned(),
        message,
    }
}

/// `latency: {min: 10ms, max: 50ms}` in YAML.
mod latency_serde {
    use super::*;
    use serde::{Deserializer, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Range {
        min: String,
        max: String,
    }

    pub fn serialize<S: Serializer>(
        value: &Option<(Duration, Duration)>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        use crate::behaviour::format_duration;
        match value {
            Some((min, max)) => serializer.serialize_some(&Range {
                min: format_duration(*min),
                max: format_duration(*max),
            }),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<(Duration, Duration)>, D::Error> {
        let Some(range) = Option::<Range>::deserialize(deserializer)? else {
            return Ok(None);
        };
        let min = parse_duration(&range.min).map_err(serde::de::Error::custom)?;
        let max = parse_duration(&range.max).map_err(serde::de::Error::custom)?;
        Ok(Some((min, max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: RequestInfo<'static> = RequestInfo {
        verb: "get",
        resource: "deployments",
        is_watch: false,
    };
    const WATCH: RequestInfo<'static> = RequestInfo {
        verb: "watch",
        resource: "deployments",
        is_watch: true,
    };

    #[test]
    fn an_empty_plan_passes_every_request() {
        let mut injector = FaultInjector::new(FaultPlan::none(), 1);
        assert!(!injector.plan().is_active());
        for _ in 0..100 {
            assert_eq!(injector.decide(&GET), Decision::Pass);
            assert_eq!(injector.decide(&WATCH), Decision::Pass);
        }
    }

    #[test]
    fn a_partitioned_cluster_fails_every_request_with_bad_gateway() {
        let plan = FaultPlan::builder()
            .partitioned(true)
            .latency(Duration::from_millis(5), Duration::from_millis(9));
        let mut injector = FaultInjector::new(plan.build().unwrap(), 1);
        for request in [
            GET,
            WATCH,
            RequestInfo {
                verb: "create",
                resource: "pods",
                is_watch: false,
            },
        ] {
            let Decision::Fail {
                code,
                reason,
                message,
            } = injector.decide(&request)
            else {
                panic!("partitioned cluster served {request:?}");
            };
            assert_eq!(code, PARTITION_STATUS_CODE);
            assert_eq!(reason, "ServiceUnavailable");
            assert!(message.contains("unreachable"), "{message}");
        }
        assert!(injector.is_partitioned());
    }

    #[test]
    fn the_error_rate_fails_about_that_fraction_with_the_listed_codes() {
        let plan = FaultPlan::builder()
            .error_rate(0.25)
            .error_codes([500, 429, 503])
            .build()
            .unwrap();
        let mut injector = FaultInjector::new(plan, 42);
        let mut failures = std::collections::BTreeMap::new();
        for _ in 0..4000 {
            if let Decision::Fail { code, .. } = injector.decide(&GET) {
                *failures.entry(code).or_insert(0) += 1;
            }
        }
        let total: i32 = failures.values().sum();
        assert!((800..1200).contains(&total), "{failures:?}");
        assert_eq!(
            failures.keys().copied().collect::<Vec<_>>(),
            vec![429, 500, 503]
        );
    }

    #[test]
    fn failures_carry_the_reasons_and_messages_kube_apiserver_writes() {
        for (code, reason) in [
            (429, "TooManyRequests"),
            (500, "InternalError"),
            (503, "ServiceUnavailable"),
        ] {
            let plan = FaultPlan::builder()
                .error_rate(1.0)
                .error_codes([code])
                .build()
                .unwrap();
            let decision = FaultInjector::new(plan, 3).decide(&GET);
            let Decision::Fail {
                code: got,
                reason: ref got_reason,
                ref message,
            } = decision
            else {
                panic!("expected a failure, got {decision:?}");
            };
            assert_eq!((got, got_reason.as_str()), (code, reason));
            let body = status_body(got, got_reason, message);
            assert_eq!(body["code"], code);
            assert_eq!(body["status"], "Failure");
            if code == 429 {
                assert!(message.starts_with("Too many requests, please try again later."));
                assert!(message.contains("Retry-After"));
                assert_eq!(decision.retry_after_seconds(), Some(1));
                assert_eq!(body["details"]["retryAfterSeconds"], 1);
            } else {
                assert_eq!(decision.retry_after_seconds(), None);
                assert!(body.get("details").is_none());
            }
        }
    }

    #[test]
    fn errors_can_be_limited_to_some_verbs_and_resources() {
        let plan = FaultPlan::builder()
            .error_rate(1.0)
            .error_codes([503])
            .error_verbs(["create", "update"])
            .error_resources(["secrets"])
            .build()
            .unwrap();
        let mut injector = FaultInjector::new(plan, 9);
        assert_eq!(
            injector.decide(&RequestInfo {
                verb: "get",
                resource: "secrets",
                is_watch: false
            }),
            Decision::Pass
        );
        assert_eq!(
            injector.decide(&RequestInfo {
                verb: "create",
                resource: "pods",
                is_watch: false
            }),
            Decision::Pass
        );
        assert!(matches!(
            injector.decide(&RequestInfo {
                verb: "create",
                resource: "secrets",
                is_watch: false
            }),
            Decision::Fail { code: 503, .. }
        ));
    }

    #[test]
    fn latency_delays_requests_within_the_range_but_not_watches() {
        let plan = FaultPlan::builder()
            .latency(Duration::from_millis(10), Duration::from_millis(50))
            .build()
            .unwrap();
        let mut injector = FaultInjector::new(plan, 5);
        for _ in 0..200 {
            match injector.decide(&GET) {
                Decision::Delay(delay) => {
                    assert!(
                        delay >= Duration::from_millis(10) && delay <= Duration::from_millis(50),
                        "{delay:?}"
                    )
                }
                other => panic!("expected a delay, got {other:?}"),
            }
        }
        assert_eq!(injector.decide(&WATCH), Decision::Pass);
    }

    #[test]
    fn watches_are_dropped_after_the_planned_time_with_jitter() {
        let plan = FaultPlan::builder()
            .drop_watch_after(Duration::from_secs(30))
            .drop_watch_jitter(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut injector = FaultInjector::new(plan, 5);
        for _ in 0..100 {
            let Decision::DropWatchAfter(after) = injector.decide(&WATCH) else {
                panic!("watch not dropped")
            };
            assert!(
                after >= Duration::from_secs(30) && after <= Duration::from_secs(40),
                "{after:?}"
            );
        }
        assert_eq!(injector.decide(&GET), Decision::Pass);
    }

    #[test]
    fn the_same_seed_gives_the_same_decisions_and_another_seed_does_not() {
        let plan = FaultPlan::builder()
            .error_rate(0.3)
            .latency(Duration::from_millis(1), Duration::from_millis(100))
            .build()
            .unwrap();
        let run = |seed| {
            let mut injector = FaultInjector::new(plan.clone(), seed);
            (0..300).map(|_| injector.decide(&GET)).collect::<Vec<_>>()
        };
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
    }

    #[test]
    fn restarts_come_once_per_period_with_bounded_jitter() {
        let plan = FaultPlan::builder()
            .restart_every(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut injector = FaultInjector::new(plan, 8);
        let first = injector.next_restart().unwrap();
        assert!(
            first >= Duration::from_secs(60) && first <= Duration::from_secs(66),
            "{first:?}"
        );
        assert!(!injector.restart_due(first - Duration::from_millis(1)));
        assert!(injector.restart_due(first));
        assert!(!injector.restart_due(first), "a restart fires once");
        let second = injector.next_restart().unwrap();
        assert!(
            second >= first + Duration::from_secs(60) && second <= first + Duration::from_secs(66)
        );
        assert!(!FaultInjector::new(FaultPlan::none(), 8).restart_due(Duration::from_secs(3600)));
    }

    #[test]
    fn invalid_plans_are_rejected_with_the_reason() {
        assert_eq!(
            FaultPlan::builder().error_rate(1.5).build(),
            Err(FaultPlanError::ErrorRate(1.5))
        );
        assert!(matches!(
            FaultPlan::builder()
                .latency(Duration::from_secs(2), Duration::from_secs(1))
                .build(),
            Err(FaultPlanError::Latency { .. })
        ));
        assert_eq!(
            FaultPlan::builder().error_codes([418]).build(),
            Err(FaultPlanError::ErrorCode(418))
        );
        assert_eq!(
            FaultPlan::builder().error_rate(0.1).error_codes([]).build(),
            Err(FaultPlanError::NoErrorCodes(0.1))
        );
    }

    #[test]
    fn a_plan_reads_from_yaml_with_human_durations() {
        let plan: FaultPlan = serde_norway::from_str(
            "latency: {min: 10ms, max: 250ms}\nerrorRate: 0.05\nerrorCodes: [429, 503]\ndropWatchAfter: 45s\nrestartEvery: 10m\n",
        )
        .unwrap();
        assert_eq!(
            plan.latency,
            Some((Duration::from_millis(10), Duration::from_millis(250)))
        );
        assert_eq!(plan.error_codes, vec![429, 503]);
        assert_eq!(plan.drop_watch_after, Some(Duration::from_secs(45)));
        assert_eq!(plan.restart_every, Some(Duration::from_secs(600)));
        plan.validate().unwrap();
        let again: FaultPlan =
            serde_norway::from_str(&serde_norway::to_string(&plan).unwrap()).unwrap();
        assert_eq!(again, plan);
        assert!(
            serde_norway::from_str::<FaultPlan>("errorRates: 1").is_err(),
            "unknown fields are errors"
        );
    }
}
