//! One background task per (account, collector): a run at start, then one per interval (from
//! start to start) with a little jitter. A run never overlaps the previous one of its pair (the loop awaits it), every
//! run has a timeout, and pairs never wait for each other.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::collector::{Collector, Schedule};
use crate::error::Error;
use crate::snapshot::{Outcome, SnapshotStore};

pub struct Job {
    pub account_id: String,
    pub collector: Arc<dyn Collector>,
    pub schedule: Schedule,
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
        let timeout = job.schedule.timeout;
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, job.collector.collect()) => {
                r.unwrap_or(Err(Error::Timeout(timeout)))
            }
            () = shutdown.cancelled() => return,
        };
        let duration = started.elapsed().as_secs_f64();
        let outcome = match result {
            Ok(data) => {
                tracing::info!(duration_seconds = duration, "run succeeded");
                Outcome::Success(data)
            }
            Err(e) => {
                tracing::warn!(duration_seconds = duration, error.kind = e.kind(), error = %e, "run failed; keeping the last good data");
                Outcome::Failure
            }
        };
        store.record(
            &job.account_id,
            job.collector.name(),
            outcome,
            duration,
            unix_now(),
        );

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

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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
