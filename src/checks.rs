//! The checks behind `infraaudit_check_failed_resources`, applied to a snapshot. Each collector
//! declares its checks and their rules (pure functions of one resource, so the summary, the
//! findings and the overview agree by construction); each rule's CIS control is in
//! docs/metrics.md.

use std::collections::HashMap;

use crate::collector::{self, Check, Finding, Owner};
use crate::config::ChecksConfig;
use crate::snapshot::Snapshot;

/// How many resources of one account fail `check`; None when the data to decide is missing
/// (collector off or never successful, no root row): unknown is not zero.
pub fn failed_resources(
    check: Check,
    snapshot: &Snapshot,
    account_id: &str,
    now: f64,
    c: &ChecksConfig,
) -> Option<usize> {
    let entry = snapshot
        .entries
        .get(&(account_id.to_owned(), check.collector()))?;
    (check.0.failed)(entry.data.as_ref()?.data.as_ref(), now, c)
}

/// (account id, check, failed resources) for every account and check whose data is known.
pub fn summary<'a>(
    snapshot: &'a Snapshot,
    now: f64,
    c: &'a ChecksConfig,
) -> impl Iterator<Item = (&'a str, Check, usize)> + 'a {
    snapshot.accounts.iter().flat_map(move |a| {
        Check::all().filter_map(move |check| {
            failed_resources(check, snapshot, &a.id, now, c).map(|n| (a.id.as_str(), check, n))
        })
    })
}

/// Failed resources per (account, check, owner), from the findings with their owners resolved:
/// the split of [`summary`] by owner (only the owners with a failed resource), for routing the
/// per-account alerts to each owner.
pub fn failed_by_owner(snapshot: &Snapshot, now: f64, c: &ChecksConfig) -> Vec<OwnerCount> {
    let mut counts: std::collections::BTreeMap<(&str, Check, String), u64> = Default::default();
    for a in &snapshot.accounts {
        for f in findings(snapshot, &a.id, now, c) {
            if f.failed {
                *counts
                    .entry((a.id.as_str(), f.check, f.owner.as_str().to_owned()))
                    .or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .map(|((account_id, check, owner), failed)| OwnerCount {
            account_id: account_id.to_owned(),
            check,
            owner,
            failed,
        })
        .collect()
}

/// One row of [`failed_by_owner`].
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerCount {
    pub account_id: String,
    pub check: Check,
    /// Empty: neither the resources nor their account have an owner.
    pub owner: String,
    pub failed: u64,
}

/// Who owns what in one account: its owner, and its IAM users' own owners.
#[derive(Debug, Default)]
pub struct Owners {
    account: String,
    users: HashMap<String, String>,
}

impl Owners {
    pub fn of(snapshot: &Snapshot, account_id: &str) -> Self {
        let mut users = HashMap::new();
        for spec in collector::ALL {
            if let Some(user_owners) = spec.user_owners
                && let Some(recorded) = snapshot
                    .entries
                    .get(&(account_id.to_owned(), spec.name))
                    .and_then(|e| e.data.as_ref())
            {
                user_owners(recorded.data.as_ref(), &mut users);
            }
        }
        let account = snapshot
            .accounts
            .iter()
            .find(|a| a.id == account_id)
            .map(|a| a.owner.clone())
            .unwrap_or_default();
        Self { account, users }
    }

    /// The user's own owner, else the account's; empty when neither is known.
    pub fn user(&self, user: &str) -> &str {
        self.users
            .get(user)
            .map_or(self.account.as_str(), String::as_str)
    }

    /// A finding's owner: its resource's own, else the account's.
    pub fn resolve(&self, owner: &Owner) -> Owner {
        let own = match owner {
            Owner::Own(own) => own.as_str(),
            Owner::User(user) => self.user(user),
            Owner::Account => "",
        };
        Owner::Own(if own.is_empty() { &self.account } else { own }.to_owned())
    }
}

/// Every resource of one account on every check whose data is known, by the same rules as
/// [`failed_resources`], so the failed findings of a check always number its summary. Each has
/// its owner resolved: its resource's own, else the account's.
pub fn findings(snapshot: &Snapshot, account_id: &str, now: f64, c: &ChecksConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    for spec in collector::ALL {
        let Some(entry) = snapshot.entries.get(&(account_id.to_owned(), spec.name)) else {
            continue;
        };
        if let Some(recorded) = &entry.data {
            (spec.findings)(account_id, recorded.data.as_ref(), now, c, &mut out);
        }
    }
    let owners = Owners::of(snapshot, account_id);
    for f in &mut out {
        f.owner = owners.resolve(&f.owner);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::collector::iam::checks::tests::{key, now, user};
    use crate::collector::iam::checks::{
        ACCESS_KEY_AGE, ACCESS_KEY_UNUSED, PASSWORD_POLICY, ROOT_ACCESS_KEY, ROOT_MFA,
        USER_CONSOLE_MFA, USER_INITIAL_ACCESS_KEY, USER_MULTIPLE_ACTIVE_KEYS, USER_PASSWORD_UNUSED,
    };
    use crate::collector::iam::{self, IamData, RootRecord};
    use crate::collector::s3;
    use crate::snapshot::{AccountInfo, Outcome, SnapshotStore};
    use crate::time::unix;

    #[test]
    fn unknown_data_gives_no_count_rather_than_zero() {
        let id = "111111111111";
        let store = SnapshotStore::new(
            vec![
                AccountInfo {
                    id: id.into(),
                    name: "prod".into(),
                    ou: String::new(),
                    owner: String::new(),
                },
                AccountInfo {
                    id: "222222222222".into(),
                    name: "never-ran".into(),
                    ou: String::new(),
                    owner: String::new(),
                },
            ],
            6,
        );
        let iam = IamData {
            keys: vec![
                key(true, 100, Some(1)), // too old
                key(true, 10, None),     // fine
                key(true, 200, None),    // too old and unused
                key(false, 300, None),   // inactive: fine
            ],
            root: None,
            users: vec![
                user("alice", true, false),
                user("bob", true, true),
                user("carol", false, false),
            ],
            password_policy: None,
            ..IamData::default()
        };
        let t = unix(now());
        store.record(
            id,
            iam::NAME,
            Outcome::Success(iam::SPEC.record(id, Arc::new(iam))),
            1.0,
            t,
        );
        // S3 ran and failed; EC2 never ran.
        store.record(id, s3::NAME, Outcome::Failure, 1.0, t);
        let snapshot = store.load();
        let c = ChecksConfig::default();

        // Root (no root row), S3 (failed) and EC2 (never ran) are absent, not zero; so is the
        // account that never ran.
        let got: Vec<_> = summary(&snapshot, t, &c).collect();
        assert_eq!(
            got,
            [
                (id, ACCESS_KEY_AGE, 2),
                (id, ACCESS_KEY_UNUSED, 1),
                (id, USER_CONSOLE_MFA, 1),
                (id, PASSWORD_POLICY, 1),
                // alice and bob have passwords and no known creation time: unknown age is old.
                (id, USER_PASSWORD_UNUSED, 2),
                // The "u" of every key has no password here.
                (id, USER_INITIAL_ACCESS_KEY, 0),
                // All four keys are one user's ("u"), three of them active.
                (id, USER_MULTIPLE_ACTIVE_KEYS, 1),
            ]
        );

        // With a root row the root checks count, failures or not.
        for (r, n) in [((false, None, 1), 1), ((true, None, 0), 0)] {
            let d = IamData {
                root: Some(RootRecord {
                    mfa_active: r.0,
                    password_enabled: r.1,
                    active_keys: r.2,
                    last_used: None,
                    virtual_mfa: Some(false),
                }),
                ..IamData::default()
            };
            store.record(
                id,
                iam::NAME,
                Outcome::Success(iam::SPEC.record(id, Arc::new(d))),
                1.0,
                t,
            );
            for check in [ROOT_ACCESS_KEY, ROOT_MFA] {
                assert_eq!(failed_resources(check, &store.load(), id, t, &c), Some(n));
            }
        }
    }
}
