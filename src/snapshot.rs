//! The immutable snapshot that `/metrics` reads, and the one place that replaces it.
//!
//! Each (account, collector) pair has the status of its last run and the data of its last
//! successful run. A failed run changes the status only, so posture series stay in place while
//! AWS is unreachable, and `infraaudit_collector_success` says why they are not moving.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::collector::CollectorData;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccountInfo {
    pub id: String,
    pub name: String,
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
    pub data: Option<Arc<CollectorData>>,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub accounts: Vec<AccountInfo>,
    /// Keyed by (account id, collector name).
    pub entries: BTreeMap<(String, &'static str), Entry>,
}

/// The outcome of one run, as the scheduler hands it over.
pub enum Outcome {
    Success(CollectorData),
    Failure,
}

#[derive(Debug)]
pub struct SnapshotStore {
    current: ArcSwap<Snapshot>,
    /// How many (account, collector) pairs there are: ready once each has run.
    expected_pairs: usize,
}

impl SnapshotStore {
    pub fn new(accounts: Vec<AccountInfo>, expected_pairs: usize) -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot {
                accounts,
                entries: BTreeMap::new(),
            }),
            expected_pairs,
        }
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// True once every (account, collector) pair has finished a first run, well or not.
    pub fn ready(&self) -> bool {
        self.current.load().entries.len() >= self.expected_pairs
    }

    /// Records a run. Entries are shared between snapshots, so a swap copies pointers only.
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
    use crate::collector::iam::IamData;

    fn iam(keys_generated: i64) -> CollectorData {
        CollectorData::Iam(IamData {
            report_generated_at: chrono::DateTime::from_timestamp(keys_generated, 0),
            ..IamData::default()
        })
    }

    #[test]
    fn failure_keeps_last_good_data_and_last_success() {
        let store = SnapshotStore::new(vec![], 2);
        assert!(!store.ready());
        store.record("1", "iam", Outcome::Success(iam(100)), 1.5, 1000.0);
        store.record("1", "iam", Outcome::Failure, 0.5, 2000.0);
        let snap = store.load();
        let e = &snap.entries[&("1".to_owned(), "iam")];
        assert!(!e.status.success);
        assert_eq!(e.status.last_success, Some(1000.0));
        assert_eq!(e.status.consecutive_failures, 1);
        assert_eq!(e.status.duration_seconds, 0.5);
        match e.data.as_deref() {
            Some(CollectorData::Iam(d)) => {
                assert_eq!(d.report_generated_at.map(|t| t.timestamp()), Some(100))
            }
            other => panic!("{other:?}"),
        }
        assert!(!store.ready());
        store.record("2", "iam", Outcome::Failure, 0.1, 2001.0);
        assert!(store.ready());
        let e2 = &store.load().entries[&("2".to_owned(), "iam")];
        assert!(e2.data.is_none() && e2.status.last_success.is_none());
    }

    #[test]
    fn old_snapshots_are_not_changed() {
        let store = SnapshotStore::new(vec![], 1);
        let before = store.load();
        store.record("1", "iam", Outcome::Success(iam(1)), 1.0, 1.0);
        assert!(before.entries.is_empty());
        assert_eq!(store.load().entries.len(), 1);
    }
}
