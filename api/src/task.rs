//! Tasks charged to a CPU account. When several components share one runtime (the
//! controller and hundreds of agents in `fleet sim bench`), the CPU time of each is the time
//! its tasks spend being polled. A component's top-level future runs under [`Accounted`];
//! the tasks it starts with [`spawn`] and the blocking work it starts with [`spawn_blocking`]
//! are charged to the same account. Outside any account both are plain tokio spawns, so a
//! component running on its own (a real controller or agent process) is not affected.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// Time charged to one component, in nanoseconds of polling (and of blocking work).
#[derive(Debug, Default)]
pub struct CpuAccount {
    nanos: AtomicU64,
}

impl CpuAccount {
    pub fn new() -> Arc<Self> {
        Arc::new(CpuAccount::default())
    }

    /// Everything charged so far.
    pub fn charged(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// Adds `spent` to the account.
    pub fn charge(&self, spent: Duration) {
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

thread_local! {
    /// The account of the future this thread is polling (or the blocking work it runs).
    static CURRENT: RefCell<Option<Arc<CpuAccount>>> = const { RefCell::new(None) };
}

/// The account the caller runs under, if any.
pub fn current_account() -> Option<Arc<CpuAccount>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Runs `f` as work of `account`, timing it.
fn charged<T>(account: &Arc<CpuAccount>, f: impl FnOnce() -> T) -> T {
    /// Puts the previous account back and charges the time, also when `f` panics (the
    /// runtime catches a task's panic and goes on polling other tasks on this thread).
    struct Charging<'a> {
        account: &'a CpuAccount,
        previous: Option<Arc<CpuAccount>>,
        started: Instant,
    }
    impl Drop for Charging<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            CURRENT.with(|current| *current.borrow_mut() = previous);
            // A nested account (a future polled inside another's poll) is charged its own
            // time and its parent the whole: accounts are meant for top-level tasks, which
            // do not nest.
            self.account.charge(self.started.elapsed());
        }
    }
    let previous = CURRENT.with(|current| current.replace(Some(account.clone())));
    let _charging = Charging {
        account,
        previous,
        started: Instant::now(),
    };
    f()
}

/// A future whose polls are charged to an account.
pub struct Accounted<F> {
    inner: Pin<Box<F>>,
    account: Arc<CpuAccount>,
}

impl<F: Future> Accounted<F> {
    pub fn new(inner: F, account: Arc<CpuAccount>) -> Self {
        Accounted {
            inner: Box::pin(inner),
            account,
        }
    }
}

impl<F: Future> Future for Accounted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        charged(&this.account, || inner.as_mut().poll(cx))
    }
}

/// `tokio::spawn`, charging the task to the caller's account.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match current_account() {
        Some(account) => tokio::spawn(Accounted::new(future, account)),
        None => tokio::spawn(future),
    }
}

/// `tokio::task::spawn_blocking`, charging the work to the caller's account.
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match current_account() {
        Some(account) => tokio::task::spawn_blocking(move || charged(&account, f)),
        None => tokio::task::spawn_blocking(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Busy work the optimizer cannot drop.
    fn spin(d: Duration) -> u64 {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < d {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_and_blocking_work_started_under_an_account_are_charged_to_it() {
        let account = CpuAccount::new();
        let other = CpuAccount::new();
        let work = Duration::from_millis(20);
        Accounted::new(
            async move {
                spin(work);
                spawn(async move { spin(work) }).await.unwrap();
                spawn_blocking(move || spin(work)).await.unwrap();
            },
            account.clone(),
        )
        .await;
        // Each of the three pieces is charged at least the time it spun.
        assert!(account.charged() >= 3 * work, "{:?}", account.charged());
        assert_eq!(other.charged(), Duration::ZERO);
        // Outside an account nothing is charged anywhere, and spawning still works.
        assert!(current_account().is_none());
        assert_eq!(spawn(async { 7 }).await.unwrap(), 7);
        assert_eq!(spawn_blocking(|| 8).await.unwrap(), 8);
    }

    #[test]
    fn a_panicking_poll_leaves_no_account_current() {
        let account = CpuAccount::new();
        let panicked = std::panic::catch_unwind(|| charged(&account, || panic!("in a poll")));
        assert!(panicked.is_err());
        assert!(current_account().is_none());
    }

    #[tokio::test]
    async fn the_account_is_only_current_while_its_future_is_polled() {
        let account = CpuAccount::new();
        let inside = Accounted::new(async { current_account() }, account.clone()).await;
        assert!(inside.is_some_and(|a| Arc::ptr_eq(&a, &account)));
        assert!(current_account().is_none());
    }
}
