//! One collection cycle on demand, outside the schedule: for `infraaudit audit` and for audits
//! started through the API. The results go into a snapshot store like scheduled runs do.

use std::sync::Arc;

use futures_util::future::join_all;

use crate::aws::AccountSession;
use crate::collector::{self, Check};
use crate::config::Config;
use crate::error::Error;
use crate::scheduler::{self, Job};
use crate::snapshot::{Outcome, SnapshotStore};
use crate::time::unix_now;

/// The collectors that feed `checks` (all of the account's when `checks` is empty), and with
/// `owners` (owner tags are read) those that know the IAM users' owners, so that findings on
/// users are not filed under the account's owner for want of the users' tags.
pub fn collectors_for(checks: &[Check], owners: bool) -> Vec<&'static str> {
    collector::ALL
        .into_iter()
        .filter(|spec| {
            checks.is_empty()
                || checks.iter().any(|c| c.collector() == spec.name)
                || (owners && spec.user_owners.is_some())
        })
        .map(|spec| spec.name)
        .collect()
}

/// Runs the account's collectors named in `only` once, concurrently, each within its timeout,
/// and records each outcome in `store`. Returns the failures, by collector.
pub async fn run_once(
    config: &Config,
    session: &Arc<AccountSession>,
    only: &[&str],
    store: &SnapshotStore,
) -> Vec<(&'static str, Error)> {
    let runs = collector::for_account(config, session)
        .into_iter()
        .filter(|(c, _)| only.contains(&c.name()))
        .map(|(c, schedule)| async move {
            let started = std::time::Instant::now();
            let result =
                tokio::time::timeout(schedule.timeout, scheduler::collect_verified(session, &*c))
                    .await
                    .unwrap_or(Err(Error::Timeout(schedule.timeout)));
            (c.name(), result, started.elapsed().as_secs_f64())
        });
    let mut failures = Vec::new();
    for (name, result, duration) in join_all(runs).await {
        let recorded = match result {
            Ok(data) => scheduler::record(&session.account.id, name, data).await,
            Err(e) => Err(e),
        };
        let outcome = match recorded {
            Ok(data) => Outcome::Success(data),
            Err(e) => {
                tracing::warn!(account_id = %session.account.id, collector = name, error = %e, "audit run failed");
                failures.push((name, e));
                Outcome::Failure
            }
        };
        store.record(&session.account.id, name, outcome, duration, unix_now());
    }
    failures
}

/// Runs the scheduler's own jobs named in `only` now, each after any run of it in flight: the
/// same collectors, caches and last good data as scheduled runs. Returns the failures.
pub async fn run_jobs(
    jobs: &[Job],
    only: &[&str],
    store: &SnapshotStore,
) -> Vec<(&'static str, Error)> {
    let runs = jobs
        .iter()
        .filter(|j| only.contains(&j.collector.name()))
        .map(|j| async move { (j.collector.name(), scheduler::run_once(j, store).await) });
    join_all(runs)
        .await
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| (name, e)))
        .collect()
}
