//! One background task per (account, collector): a run at start, then one per interval (from
//! start to start) with a little jitter. A run never overlaps the previous one of its pair (the loop awaits it), every
//! run has a timeout, and pairs never wait for each other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::aws::AccountSession;
use crate::collector::{self, Collector, Data, Recorded, Schedule};
use crate::error::Error;
use crate::snapshot::{Outcome, SnapshotStore};
use crate::time::unix_now;

#[derive(Clone)]
pub struct Job {
    pub account_id: String,
    /// The account's session, whose identity is checked before each run.
    pub session: Arc<AccountSession>,
    pub collector: Arc<dyn Collector>,
    pub schedule: Schedule,
    /// Held during a run: scheduled runs and audits through the API never overlap, so they
    /// share the collector's caches and the newest finished run is the newest started.
    pub running: Arc<tokio::sync::Mutex<()>>,
}

impl Job {
    pub fn new(
        session: Arc<AccountSession>,
        collector: Arc<dyn Collector>,
        schedule: Schedule,
    ) -> Self {
        Self {
            account_id: session.account.id.clone(),
            session,
            collector,
            schedule,
            running: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// One run of the job now, after any run in flight, recorded in `store`. Err: why it failed.
pub async fn run_once(job: &Job, store: &SnapshotStore) -> Result<(), Error> {
    let _turn = job.running.lock().await;
    let started = Instant::now();
    let timeout = job.schedule.timeout;
    let result = tokio::time::timeout(timeout, collect_verified(&job.session, &*job.collector))
        .await
        .unwrap_or(Err(Error::Timeout(timeout)));
    let duration = started.elapsed().as_secs_f64();
    let result = match result {
        Ok(data) => record(&job.account_id, job.collector.name(), data).await,
        Err(e) => Err(e),
    };
    let (outcome, failure) = match result {
        Ok(data) => {
            tracing::info!(duration_seconds = duration, "run succeeded");
            (Outcome::Success(data), None)
        }
        Err(e) => {
            tracing::warn!(duration_seconds = duration, error.kind = e.kind(), error = %e, "run failed; keeping the last good data");
            (Outcome::Failure, Some(e))
        }
    };
    store.record(
        &job.account_id,
        job.collector.name(),
        outcome,
        duration,
        unix_now(),
    );
    failure.map_or(Ok(()), Err)
}

/// One run of `collector`, once the session's credentials are known to be the account's: data
/// is only ever filed under the account it provably came from.
pub async fn collect_verified(
    session: &AccountSession,
    collector: &dyn Collector,
) -> Result<Arc<Data>, Error> {
    session.verify_identity().await?;
    collector.collect().await
}

/// A run's data with its series encoded, off the async threads: a large account's series take
/// milliseconds. Encoding that panicked (a bug) fails the run instead of taking the pair down.
pub async fn record(
    account_id: &str,
    collector: &'static str,
    data: Arc<Data>,
) -> Result<Recorded, Error> {
    let spec = collector::find(collector).ok_or(Error::Encode)?;
    let account_id = account_id.to_owned();
    tokio::task::spawn_blocking(move || spec.record(&account_id, data))
        .await
        .map_err(|_| Error::Encode)
}

pub fn spawn(
    jobs: Vec<Job>,
    store: Arc<SnapshotStore>,
    shutdown: CancellationToken,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for job in jobs {
        let store = store.clone();
        let shutdown = shutdown.clone();
        let span = tracing::info_span!("collect", account_id = %job.account_id, collector = job.collector.name());
        set.spawn(run_forever(job, store, shutdown).instrument(span));
    }
    set
}

async fn run_forever(job: Job, store: Arc<SnapshotStore>, shutdown: CancellationToken) {
    loop {
        let started = Instant::now();
        // Configuration bounds the interval; checked all the same, since overflow would panic.
        let next_start = tokio::time::Instant::from_std(started)
            .checked_add(with_jitter(job.schedule.interval))
            .unwrap_or_else(|| {
                tokio::time::Instant::from_std(started) + Duration::from_secs(86_400)
            });
        tokio::select! {
            _ = run_once(&job, &store) => {}
            () = shutdown.cancelled() => return,
        };

        // Runs start an interval apart; one that took longer than that is followed at once.
        tokio::select! {
            () = tokio::time::sleep_until(next_start) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// The interval plus up to 5% (at most a minute), so that accounts drift apart instead of
/// hitting AWS in lockstep.
fn with_jitter(interval: Duration) -> Duration {
    let max = (interval / 20).min(Duration::from_secs(60));
    interval + max.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_small_and_positive() {
        for _ in 0..1000 {
            let d = with_jitter(Duration::from_secs(3600));
            assert!(
                d >= Duration::from_secs(3600) && d <= Duration::from_secs(3660),
                "{d:?}"
            );
            let d = with_jitter(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(10) && d <= Duration::from_millis(10_500),
                "{d:?}"
            );
        }
    }
}
