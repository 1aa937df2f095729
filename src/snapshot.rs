//! The immutable snapshot that `/metrics` reads, and the one place that replaces it.
//!
//! Each (account, collector) pair has the status of its last run and the data of its last
//! successful run. A failed run changes the status only, so posture series stay in place while
//! AWS is unreachable, and `infraaudit_collector_success` says why they are not moving.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use crate::collector::Recorded;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccountInfo {
    pub id: String,
    pub name: String,
    /// The OU (or root) directly above the account in AWS Organizations; empty when unknown
    /// (a configured account that discovery did not find, or discovery off).
    pub ou: String,
    /// Owner of its findings that have none of their own: `[[accounts]] owner`, else its
    /// Organizations owner tag; empty when none.
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunStatus {
    pub success: bool,
    pub duration_seconds: f64,
    /// Unix time of the end of the last successful run.
    pub last_success: Option<f64>,
    /// Failed runs since the last success (0 after a success), so alerts can tell a blip from
    /// a collector that stays broken.
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub status: RunStatus,
    /// The data of the last successful run, with its series encoded.
    pub data: Option<Arc<Recorded>>,
}

impl Entry {
    /// The data of the last successful run, as the collector's own type.
    pub fn data<T: std::any::Any>(&self) -> Option<&T> {
        self.data.as_ref()?.data.downcast_ref()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub accounts: Vec<AccountInfo>,
    /// Keyed by (account id, collector name).
    pub entries: BTreeMap<(String, &'static str), Entry>,
}

impl Snapshot {
    /// The data of one (account, collector), as the collector's own type.
    pub fn data<T: std::any::Any>(&self, account_id: &str, collector: &'static str) -> Option<&T> {
        self.entries
            .get(&(account_id.to_owned(), collector))?
            .data()
    }
}

/// The outcome of one run, as the scheduler hands it over.
pub enum Outcome {
    Success(Recorded),
    Failure,
}

/// The outcome of the last account discovery in AWS Organizations.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryStatus {
    pub success: bool,
    /// Accounts the last successful discovery found (ACTIVE, after `include_ous` and
    /// `exclude_accounts`, before sharding); None before the first success.
    pub discovered: Option<usize>,
    /// Unix time of the end of the last successful discovery.
    pub last_success: Option<f64>,
}

#[derive(Debug)]
pub struct SnapshotStore {
    current: ArcSwap<Snapshot>,
    /// How many (account, collector) pairs there are: ready once each has run.
    expected_pairs: AtomicUsize,
    /// Not ready whatever has run, while the account set is still to be discovered.
    waiting: AtomicBool,
    /// None while discovery is off.
    discovery: ArcSwap<Option<DiscoveryStatus>>,
}

impl SnapshotStore {
    pub fn new(accounts: Vec<AccountInfo>, expected_pairs: usize) -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot {
                accounts,
                entries: BTreeMap::new(),
            }),
            expected_pairs: AtomicUsize::new(expected_pairs),
            waiting: AtomicBool::new(false),
            discovery: ArcSwap::from_pointee(None),
        }
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// True once every (account, collector) pair has finished a first run, well or not, and
    /// the account set is known.
    pub fn ready(&self) -> bool {
        !self.waiting.load(Ordering::Acquire)
            && self.current.load().entries.len() >= self.expected_pairs.load(Ordering::Acquire)
    }

    /// Holds readiness back (true) until the first discovery has said which accounts there are.
    pub fn set_waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::Release);
    }

    /// Replaces the account set: entries of accounts no longer in it go (so do their series),
    /// and readiness counts `expected_pairs` from now on.
    pub fn set_accounts(&self, accounts: Vec<AccountInfo>, expected_pairs: usize) {
        let ids: BTreeSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
        self.current.rcu(|old| Snapshot {
            accounts: accounts.clone(),
            entries: old
                .entries
                .iter()
                .filter(|((account, _), _)| ids.contains(account.as_str()))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
        });
        self.expected_pairs.store(expected_pairs, Ordering::Release);
    }

    /// The last discovery's outcome; None while discovery is off.
    pub fn discovery(&self) -> Option<DiscoveryStatus> {
        self.discovery.load().as_ref().clone()
    }

    /// Records a discovery: `Some(n)` found n accounts, None failed (the last good count and
    /// time stay).
    pub fn record_discovery(&self, found: Option<usize>, now: f64) {
        let previous = self.discovery();
        let status = match found {
            Some(n) => DiscoveryStatus {
                success: true,
                discovered: Some(n),
                last_success: Some(now),
            },
            None => DiscoveryStatus {
                success: false,
                discovered: previous.as_ref().and_then(|p| p.discovered),
                last_success: previous.as_ref().and_then(|p| p.last_success),
            },
        };
        self.discovery.store(Arc::new(Some(status)));
    }

    /// Records a run. Entries are shared between snapshots, so a swap copies pointers only.
    /// A run of an account no longer in the set (removed while it ran) is dropped.
    pub fn record(
        &self,
        account_id: &str,
        collector: &'static str,
        outcome: Outcome,
        duration_seconds: f64,
        now: f64,
    ) {
        let data = match outcome {
            Outcome::Success(d) => Some(Arc::new(d)),
            Outcome::Failure => None,
        };
        self.current.rcu(|old| {
            let mut next = Snapshot::clone(old);
            if !next.accounts.iter().any(|a| a.id == account_id) {
                return next;
            }
            let key = (account_id.to_owned(), collector);
            let previous = next.entries.get(&key);
            let entry = match &data {
                Some(d) => Entry {
                    status: RunStatus {
                        success: true,
                        duration_seconds,
                        last_success: Some(now),
                        consecutive_failures: 0,
                    },
                    data: Some(d.clone()),
                },
                None => Entry {
                    status: RunStatus {
                        success: false,
                        duration_seconds,
                        last_success: previous.and_then(|p| p.status.last_success),
                        consecutive_failures: previous
                            .map_or(0, |p| p.status.consecutive_failures)
                            .saturating_add(1),
                    },
                    data: previous.and_then(|p| p.data.clone()),
                },
            };
            next.entries.insert(key, entry);
            next
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::iam::{self, IamData};

    fn iam(keys_generated: i64) -> Recorded {
        let data = IamData {
            report_generated_at: chrono::DateTime::from_timestamp(keys_generated, 0),
            ..IamData::default()
        };
        iam::SPEC.record("1", Arc::new(data))
    }

    fn accounts(ids: &[&str]) -> Vec<AccountInfo> {
        ids.iter()
            .map(|id| AccountInfo {
                id: (*id).to_owned(),
                name: format!("n{id}"),
                ou: String::new(),
                owner: String::new(),
            })
            .collect()
    }

    #[test]
    fn failure_keeps_last_good_data_and_last_success() {
        let store = SnapshotStore::new(accounts(&["1", "2"]), 2);
        assert!(!store.ready());
        store.record("1", "iam", Outcome::Success(iam(100)), 1.5, 1000.0);
        store.record("1", "iam", Outcome::Failure, 0.5, 2000.0);
        let snap = store.load();
        let e = &snap.entries[&("1".to_owned(), "iam")];
        assert!(!e.status.success);
        assert_eq!(e.status.last_success, Some(1000.0));
        assert_eq!(e.status.consecutive_failures, 1);
        assert_eq!(e.status.duration_seconds, 0.5);
        let d = e.data::<IamData>().expect("the last good data");
        assert_eq!(d.report_generated_at.map(|t| t.timestamp()), Some(100));
        assert!(!store.ready());
        store.record("2", "iam", Outcome::Failure, 0.1, 2001.0);
        assert!(store.ready());
        let e2 = &store.load().entries[&("2".to_owned(), "iam")];
        assert!(e2.data.is_none() && e2.status.last_success.is_none());
    }

    #[test]
    fn old_snapshots_are_not_changed() {
        let store = SnapshotStore::new(accounts(&["1"]), 1);
        let before = store.load();
        store.record("1", "iam", Outcome::Success(iam(1)), 1.0, 1.0);
        assert!(before.entries.is_empty());
        assert_eq!(store.load().entries.len(), 1);
    }

    #[test]
    fn removed_accounts_lose_their_entries_and_late_runs() {
        let store = SnapshotStore::new(accounts(&["1", "2"]), 2);
        store.record("1", "iam", Outcome::Success(iam(1)), 1.0, 1.0);
        store.record("2", "iam", Outcome::Failure, 1.0, 1.0);
        assert!(store.ready());
        store.set_accounts(accounts(&["2", "3"]), 2);
        let snap = store.load();
        assert_eq!(
            snap.entries.keys().cloned().collect::<Vec<_>>(),
            [("2".to_owned(), "iam")]
        );
        assert!(!store.ready(), "account 3 has not run yet");
        // A run of the removed account that ends now is dropped.
        store.record("1", "iam", Outcome::Success(iam(2)), 1.0, 2.0);
        assert!(!store.load().entries.contains_key(&("1".to_owned(), "iam")));
        store.record("3", "iam", Outcome::Failure, 1.0, 2.0);
        assert!(store.ready());
        store.set_waiting(true);
        assert!(!store.ready(), "waiting for discovery");
        store.set_waiting(false);
        assert!(store.ready());
    }

    #[test]
    fn a_failed_discovery_keeps_the_last_count_and_time() {
        let store = SnapshotStore::new(Vec::new(), 0);
        assert_eq!(store.discovery(), None);
        store.record_discovery(None, 10.0);
        assert_eq!(
            store.discovery(),
            Some(DiscoveryStatus {
                success: false,
                discovered: None,
                last_success: None
            })
        );
        store.record_discovery(Some(7), 20.0);
        store.record_discovery(None, 30.0);
        assert_eq!(
            store.discovery(),
            Some(DiscoveryStatus {
                success: false,
                discovered: Some(7),
                last_success: Some(20.0)
            })
        );
    }
}
