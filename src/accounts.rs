//! The set of audited accounts while the daemon runs: the configured `[[accounts]]` and, with
//! discovery, the organization's, cut down to this process's shard.
//!
//! The [`Registry`] owns each account's session, its scheduler tasks and a cancellation token.
//! [`Registry::apply`] moves it to a new set: accounts that left stop being collected and their
//! series leave `/metrics` (snapshot entries, `infraaudit_account_info`, check summaries, AWS
//! call counters); new ones get a session and their collectors start. With discovery,
//! [`Following`] takes each of [`discovery::run`]'s passes to the registry.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_config::SdkConfig;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aws::AccountSession;
use crate::aws::counters::ApiMetrics;
use crate::collector;
use crate::config::{Account, Config, Organizations};
use crate::discovery::{self, Discovered, Pass};
use crate::scheduler::{self, Job};
use crate::snapshot::{AccountInfo, SnapshotStore};
use crate::time::unix_now;

/// The shard an account belongs to: FNV-1a (64 bits) of the account id's ASCII digits, modulo
/// the number of shards. Stable across versions, processes and platforms, so any tool can tell
/// which process audits an account.
pub fn shard_of(account_id: &str, total_shards: u32) -> u32 {
    let mut hasher = fnv::FnvHasher::default();
    // `write`, not `Hash::hash`: a `str`'s Hash adds a 0xff terminator byte.
    hasher.write(account_id.as_bytes());
    let shard = hasher.finish() % u64::from(total_shards.max(1));
    u32::try_from(shard).unwrap_or(0)
}

/// One account of the set, with the OU above it (empty when discovery did not find it).
#[derive(Debug, Clone)]
pub struct Member {
    pub account: Account,
    pub ou: String,
}

/// Configured accounts first (their settings win over a discovered account with the same id,
/// which only lends its OU, and its owner tag when the account has no `owner`), then the
/// discovered ones by id.
pub fn merge(
    statics: &[Account],
    discovered: &[Discovered],
    org: Option<&Organizations>,
    config: &Config,
) -> Vec<Member> {
    let found: HashMap<&str, &Discovered> = discovered.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut members: Vec<Member> = statics
        .iter()
        .map(|a| {
            let found = found.get(a.id.as_str());
            let mut account = a.clone();
            if account.owner.is_empty() {
                account.owner = found.map(|d| d.owner.clone()).unwrap_or_default();
            }
            Member {
                account,
                ou: found.map(|d| d.ou.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let tagging = Arc::new(config.tagging());
    let Some(org) = org else {
        return members;
    };
    let mut new: Vec<&Discovered> = discovered
        .iter()
        .filter(|d| !statics.iter().any(|a| a.id == d.id))
        .collect();
    new.sort_by(|a, b| a.id.cmp(&b.id));
    members.extend(new.into_iter().map(|d| Member {
        account: Account {
            id: d.id.clone(),
            name: d.name.clone(),
            role_arn: Some(format!(
                "arn:{}:iam::{}:role/{}",
                d.partition, d.id, org.role_name
            )),
            external_id: org.external_id.clone(),
            collectors: config.enabled_collectors(),
            regions: config.aws.regions.clone(),
            owner: d.owner.clone(),
            tagging: tagging.clone(),
        },
        ou: d.ou.clone(),
    }));
    members
}

/// The accounts of `members` that fall on this process's shard.
pub fn of_shard(members: Vec<Member>, shard: u32, total_shards: u32) -> Vec<Member> {
    members
        .into_iter()
        .filter(|m| shard_of(&m.account.id, total_shards) == shard)
        .collect()
}

/// What the JSON API needs of the current set: each account's session and scheduler jobs.
#[derive(Default)]
pub struct Active {
    pub sessions: HashMap<String, Arc<AccountSession>>,
    pub jobs: HashMap<String, Vec<Job>>,
}

/// One collected account.
struct Running {
    account: Account,
    session: Arc<AccountSession>,
    jobs: Vec<Job>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops the account's runs and waits for them; its session counts no more calls.
    async fn stop(mut self) {
        self.stop.cancel();
        self.session.retire();
        self.tasks.shutdown().await;
    }
}

/// Settings that need a new session when they change (a new name or OU does not).
fn same_session(a: &Account, b: &Account) -> bool {
    a.role_arn == b.role_arn
        && a.external_id == b.external_id
        && a.collectors == b.collectors
        && a.regions == b.regions
}

pub struct Registry {
    base: SdkConfig,
    config: Arc<Config>,
    api: Arc<ApiMetrics>,
    store: Arc<SnapshotStore>,
    shutdown: CancellationToken,
    /// By account id. The lock also keeps two changes of the set from interleaving.
    running: tokio::sync::Mutex<BTreeMap<String, Running>>,
    active: Arc<ArcSwap<Active>>,
    /// `aws.max_concurrency_total`: AWS calls at once over every account.
    total: Option<Arc<tokio::sync::Semaphore>>,
}

impl Registry {
    pub fn new(
        base: SdkConfig,
        config: Arc<Config>,
        api: Arc<ApiMetrics>,
        store: Arc<SnapshotStore>,
        shutdown: CancellationToken,
    ) -> Self {
        let total = (config.aws.max_concurrency_total > 0).then(|| {
            Arc::new(tokio::sync::Semaphore::new(
                config.aws.max_concurrency_total,
            ))
        });
        Self {
            base,
            config,
            api,
            store,
            shutdown,
            running: tokio::sync::Mutex::default(),
            active: Arc::default(),
            total,
        }
    }

    /// The current sessions and jobs, for the JSON API; follows every change of the set.
    pub fn active(&self) -> Arc<ArcSwap<Active>> {
        self.active.clone()
    }

    /// Makes `members`, cut to this process's shard, the audited set. Returns its size.
    pub async fn apply(&self, members: Vec<Member>) -> usize {
        let sharding = &self.config.sharding;
        let mine = of_shard(members, sharding.shard, sharding.total_shards);
        let mut running = self.running.lock().await;

        // Accounts that left, or whose role or collectors changed, stop first: their runs end
        // before the store forgets them, and two sessions of one account never overlap.
        let wanted: HashMap<&str, &Account> = mine
            .iter()
            .map(|m| (m.account.id.as_str(), &m.account))
            .collect();
        let leaving: Vec<String> = running
            .iter()
            .filter(|(id, r)| {
                wanted
                    .get(id.as_str())
                    .is_none_or(|a| !same_session(a, &r.account))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut gone = Vec::new();
        for id in &leaving {
            if let Some(r) = running.remove(id) {
                r.stop().await;
            }
            if !wanted.contains_key(id.as_str()) {
                gone.push(id.clone());
            }
        }

        // New sessions and jobs, started only once the store knows the account, so that
        // their first runs are recorded.
        let mut starting = Vec::new();
        for m in &mine {
            if running.contains_key(&m.account.id) {
                continue;
            }
            let session = Arc::new(AccountSession::with_limit(
                &self.base,
                &self.config.aws,
                m.account.clone(),
                self.api.clone(),
                self.total.clone(),
            ));
            let jobs: Vec<Job> = collector::for_account(&self.config, &session)
                .into_iter()
                .map(|(c, schedule)| Job::new(session.clone(), c, schedule))
                .collect();
            starting.push((m.account.clone(), session, jobs));
        }
        let pairs = running.values().map(|r| r.jobs.len()).sum::<usize>()
            + starting
                .iter()
                .map(|(_, _, jobs)| jobs.len())
                .sum::<usize>();
        let infos = mine
            .iter()
            .map(|m| AccountInfo {
                id: m.account.id.clone(),
                name: m.account.name.clone(),
                ou: m.ou.clone(),
                owner: m.account.owner.clone(),
            })
            .collect();
        self.store.set_accounts(infos, pairs);
        // After the sessions retired: no late call of theirs brings a counter back.
        for id in &gone {
            self.api.forget(id);
        }
        let added = starting.len();
        for (account, session, jobs) in starting {
            let stop = self.shutdown.child_token();
            let tasks = scheduler::spawn(jobs.clone(), self.store.clone(), stop.clone());
            tracing::debug!(account_id = %account.id, "collecting the account");
            running.insert(
                account.id.clone(),
                Running {
                    account,
                    session,
                    jobs,
                    stop,
                    tasks,
                },
            );
        }
        for id in &gone {
            tracing::debug!(account_id = %id, "no longer collecting the account");
        }
        if added > 0 || !leaving.is_empty() {
            tracing::info!(
                accounts = running.len(),
                added,
                removed = gone.len(),
                restarted = leaving.len() - gone.len(),
                "account set changed"
            );
        }
        self.active.store(Arc::new(Active {
            sessions: running
                .iter()
                .map(|(id, r)| (id.clone(), r.session.clone()))
                .collect(),
            jobs: running
                .iter()
                .map(|(id, r)| (id.clone(), r.jobs.clone()))
                .collect(),
        }));
        running.len()
    }

    /// Stops every account's runs and waits for them (at shutdown).
    pub async fn stop_all(&self) {
        let mut running = self.running.lock().await;
        for (_, r) in std::mem::take(&mut *running) {
            r.stop().await;
        }
    }
}

/// The registry following discovery: each pass's accounts, merged with the configured ones,
/// become the set, and the store records the outcome.
pub struct Following {
    pub registry: Arc<Registry>,
    /// The configured `[[accounts]]`.
    pub statics: Vec<Account>,
    pub org: Organizations,
}

impl discovery::Apply for Following {
    /// Readiness follows the set's first runs once the set is known: after the first successful
    /// discovery, or at once when configured accounts give something to audit meanwhile.
    async fn apply(&self, pass: Pass<'_>) {
        let registry = &self.registry;
        let members = merge(
            &self.statics,
            pass.accounts,
            Some(&self.org),
            &registry.config,
        );
        registry.apply(members).await;
        // Recorded once the set is applied: a scrape that sees the new count sees its accounts.
        registry.store.record_discovery(pass.found, unix_now());
        if pass.succeeded || !self.statics.is_empty() {
            registry.store.set_waiting(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn the_hash_is_fnv1a_64_and_pinned() {
        // FNV-1a 64 of the empty input is its offset basis; of "a", the published test vector.
        let fnv = |s: &str| {
            let mut h = fnv::FnvHasher::default();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(fnv(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv("a"), 0xaf63_dc4c_8601_ec8c);
        // A change of hash moves accounts between shards: these must never change.
        for (id, total, want) in PINNED {
            assert_eq!(shard_of(id, *total), *want, "{id} of {total}");
        }
        assert_eq!(shard_of("123456789012", 1), 0);
    }

    /// (account id, total shards, shard), from an independent FNV-1a implementation.
    const PINNED: &[(&str, u32, u32)] = &[
        ("123456789012", 3, 2),
        ("222222222222", 3, 0),
        ("333333333333", 3, 1),
        ("000000000001", 2, 0),
        ("999999999999", 5, 4),
        ("123456789012", 16, 7),
        ("210987654321", 7, 4),
    ];

    #[test]
    fn shards_split_accounts_evenly_and_exactly_once() {
        let ids: Vec<String> = (0..3000u64)
            .map(|i| format!("{:012}", 100_000_000_000 + i * 7919))
            .collect();
        for total in [2u32, 3, 5, 16] {
            let mut per_shard = vec![0usize; total as usize];
            for id in &ids {
                let s = shard_of(id, total);
                assert!(s < total);
                per_shard[s as usize] += 1;
            }
            assert_eq!(per_shard.iter().sum::<usize>(), ids.len());
            let even = ids.len() / total as usize;
            for n in &per_shard {
                // Within 20% of an even split.
                assert!(
                    n * 5 > even * 4 && n * 5 < even * 6,
                    "{total}: {per_shard:?}"
                );
            }
        }
    }

    fn account(id: &str, name: &str, collectors: Vec<&'static str>) -> Account {
        Account {
            id: id.into(),
            name: name.into(),
            role_arn: Some(format!("arn:aws:iam::{id}:role/Static")),
            external_id: Some(Secret::new("static-id".into())),
            collectors,
            regions: vec!["eu-west-1".into()],
            owner: String::new(),
            tagging: Default::default(),
        }
    }

    fn found(id: &str, name: &str, ou: &str) -> Discovered {
        Discovered {
            id: id.into(),
            name: name.into(),
            ou: ou.into(),
            partition: "aws".into(),
            owner: String::new(),
        }
    }

    #[test]
    fn configured_accounts_win_over_discovered_ones() {
        let mut config = Config::default();
        config.aws.regions = vec!["us-east-1".into()];
        let org = Organizations {
            role_name: "Org/Audit".into(),
            external_id: Some(Secret::new("org-id".into())),
            role_arn: None,
            include_ous: Vec::new(),
            exclude_accounts: Vec::new(),
            refresh_interval: std::time::Duration::from_secs(60),
        };
        let statics = [
            account("222222222222", "static", vec!["iam"]),
            account("111111111111", "not-in-org", vec!["ec2"]),
        ];
        let discovered = [
            found("333333333333", "new", "ou-ab12-cdef3456"),
            found("222222222222", "org-name", "r-ab12"),
            found("000000000001", "first", "r-ab12"),
        ];
        let members = merge(&statics, &discovered, Some(&org), &config);
        let ids: Vec<&str> = members.iter().map(|m| m.account.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "222222222222",
                "111111111111",
                "000000000001",
                "333333333333"
            ]
        );
        // The configured account keeps its own name, role, ExternalId, collectors and regions,
        // and gets the OU discovery found it under.
        let s = &members[0];
        assert_eq!(s.account.name, "static");
        assert_eq!(
            s.account.role_arn.as_deref(),
            Some("arn:aws:iam::222222222222:role/Static")
        );
        assert_eq!(
            s.account.external_id.as_ref().map(Secret::expose),
            Some("static-id")
        );
        assert_eq!(s.account.collectors, ["iam"]);
        assert_eq!(s.account.regions, ["eu-west-1"]);
        assert_eq!(s.ou, "r-ab12");
        assert_eq!(members[1].ou, "", "not found in the organization");
        // A discovered one: the organization's name, role_name, [organizations]'s ExternalId,
        // the enabled collectors and [aws] regions.
        let d = &members[3];
        assert_eq!(d.account.name, "new");
        assert_eq!(
            d.account.role_arn.as_deref(),
            Some("arn:aws:iam::333333333333:role/Org/Audit")
        );
        assert_eq!(
            d.account.external_id.as_ref().map(Secret::expose),
            Some("org-id")
        );
        assert_eq!(d.account.collectors, config.enabled_collectors());
        assert_eq!(d.account.regions, ["us-east-1"]);
        assert_eq!(d.ou, "ou-ab12-cdef3456");

        // Without discovery, only the configured accounts.
        assert_eq!(merge(&statics, &[], None, &config).len(), 2);
        // Sharding cuts the merged set, static and discovered alike.
        let mut union: Vec<String> = (0..3)
            .flat_map(|s| of_shard(members.clone(), s, 3))
            .map(|m| m.account.id)
            .collect();
        union.sort();
        let mut all: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        all.sort();
        assert_eq!(union, all);
    }
}
