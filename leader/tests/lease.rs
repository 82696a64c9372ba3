//! The elector against the simulator's API server: the Lease's namespace is created when
//! missing, a leader whose Lease was taken stops within the renew deadline, and a candidate
//! waiting for a held Lease stops at once on shutdown; renewals on a runtime of their own
//! keep the Lease while the leader's runtime is busy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use std::time::Duration;

use fleet_leader::{LeaderElector, LeaseConfig, RenewalRuntime, TermEnd};
use fleet_simulator::{SimConfig, Simulator};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

const NS: &str = "fresh-namespace";
const NAME: &str = "lock";

/// Waits until `elector` leads, for at most a minute.
async fn leads_within_a_minute(elector: &LeaderElector) {
    let shutdown = CancellationToken::new();
    assert!(
        tokio::time::timeout(Duration::from_secs(60), elector.acquire(&shutdown))
            .await
            .expect("acquired")
    );
}

/// Someone else ("b") writes the Lease as theirs, valid for an hour.
async fn take_over_as_b(leases: &Api<Lease>) {
    let mut lease = leases.get(NAME).await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("b".into());
    spec.lease_duration_seconds = Some(3600);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    leases
        .replace(NAME, &PostParams::default(), &lease)
        .await
        .unwrap();
}

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(10),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(100),
        create_namespace: true,
        ..LeaseConfig::new(NS, NAME, identity)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_stops_and_a_waiting_candidate_stops_on_shutdown() {
    let sim = Simulator::new(SimConfig::default());
    let client = sim.add_cluster("upstream").unwrap().client();
    let a = LeaderElector::new(client.clone(), config("a"));
    // The namespace does not exist yet: it is created, then the Lease.
    leads_within_a_minute(&a).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let lease = leases.get(NAME).await.unwrap();
    assert_eq!(
        lease.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("a")
    );

    // Someone else writes the Lease as theirs, valid for an hour: a's renewals fail, and a
    // stops leading once the renew deadline has passed.
    take_over_as_b(&leases).await;
    let term = CancellationToken::new();
    let (end, ()) = tokio::time::timeout(
        Duration::from_secs(60),
        a.lead(&term, async { term.cancelled().await }),
    )
    .await
    .expect("leadership lost");
    assert_eq!(end, TermEnd::LeadershipLost);
    assert!(term.is_cancelled(), "the work is told to stop");

    // A candidate waiting for b's Lease returns as soon as it is told to stop.
    let c = LeaderElector::new(client, config("c"));
    let stop = CancellationToken::new();
    let waiting = tokio::spawn({
        let stop = stop.clone();
        async move { c.acquire(&stop).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "b's Lease is valid: c waits");
    stop.cancel();
    let acquired = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the candidate stops")
        .unwrap();
    assert!(!acquired);
}

/// With a renewal runtime the Lease is renewed while the leader's own runtime is busy: here
/// its only thread is blocked for twice the renew deadline, which without it loses the Lease.
#[test]
fn renewals_on_their_own_runtime_keep_the_lease_while_the_work_hogs_its_thread() {
    let sim = Simulator::new(SimConfig::default());
    let cluster = sim.add_cluster("upstream").unwrap();
    let leader_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let renewal_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let leader_client = {
        let _inside = leader_runtime.enter();
        cluster.client()
    };
    let renewal_client = {
        let _inside = renewal_runtime.enter();
        cluster.client()
    };
    let renew_deadline = Duration::from_secs(2);
    let elector = LeaderElector::new(
        leader_client.clone(),
        LeaseConfig {
            renew_deadline,
            ..config("a")
        },
    )
    .with_renewal_runtime(RenewalRuntime::new(
        renewal_runtime.handle().clone(),
        renewal_client,
    ));
    let leases: Api<Lease> = Api::namespaced(leader_client, NS);
    let renewed_at = |lease: Lease| lease.spec.unwrap().renew_time.unwrap().0;

    leader_runtime.block_on(async {
        let shutdown = CancellationToken::new();
        assert!(elector.acquire(&shutdown).await);
        let acquired_at = renewed_at(leases.get(NAME).await.unwrap());
        let term = CancellationToken::new();
        let (end, renewed_while_blocked) = elector
            .lead(&term, async {
                std::thread::sleep(renew_deadline * 2);
                renewed_at(leases.get(NAME).await.unwrap())
            })
            .await;
        assert_eq!(end, TermEnd::WorkReturned, "the Lease was kept");
        assert!(!term.is_cancelled());
        assert!(renewed_while_blocked > acquired_at);
        // The work returned, so the Lease was released.
        let released = leases.get(NAME).await.unwrap().spec.unwrap();
        assert_eq!(released.holder_identity, None);
    });
}

/// Lease requests served so far: (reads, writes).
fn lease_requests(cluster: &fleet_simulator::SimCluster) -> (u64, u64) {
    let counts = cluster.request_counts();
    let count = |verb: &str| {
        counts
            .iter()
            .filter(|((v, resource), _)| v == verb && resource.starts_with("leases"))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    (count("get"), count("update"))
}

/// A leader renews with one write over the Lease it last wrote, without reading it first
/// (client-go's optimistic renewal): one request per renewal instead of two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_renews_by_writing_without_reading_the_lease() {
    let sim = Simulator::new(SimConfig::default());
    let cluster = sim.add_cluster("upstream").unwrap();
    let client = cluster.client();
    let a = LeaderElector::new(client.clone(), config("a"));
    leads_within_a_minute(&a).await;
    let (reads_before, writes_before) = lease_requests(&cluster);
    let term = CancellationToken::new();
    let (end, (reads, writes)) = tokio::time::timeout(
        Duration::from_secs(60),
        a.lead(&term, async {
            loop {
                let (reads, writes) = lease_requests(&cluster);
                if writes >= writes_before + 5 {
                    return (reads - reads_before, writes - writes_before);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }),
    )
    .await
    .expect("five renewals");
    assert_eq!(end, TermEnd::WorkReturned, "the Lease was kept");
    assert!(writes >= 5);
    assert_eq!(reads, 0, "renewals wrote without reading the Lease");

    // The work returned, so the Lease was released; a takes it again (and remembers what it
    // wrote). Then someone else takes the Lease: a's write over what it remembers fails on the
    // resourceVersion, and a reads the Lease and follows its holder instead of overwriting it.
    assert!(
        a.try_acquire_or_renew().await,
        "the released Lease is taken"
    );
    let leases: Api<Lease> = Api::namespaced(client, NS);
    take_over_as_b(&leases).await;
    assert!(!a.try_acquire_or_renew().await, "b holds the Lease");
    let held = leases.get(NAME).await.unwrap().spec.unwrap();
    assert_eq!(held.holder_identity.as_deref(), Some("b"));
}
