//! Account discovery in AWS Organizations: the organization's ACTIVE accounts under the
//! included OUs, with the OU (or root) directly above each, found at start and then every
//! `refresh_interval`. [`run`] hands each result to an [`Apply`] (the account registry, which
//! merges it with the configured accounts): this module only lists accounts and knows nothing
//! of what is done with them.
//!
//! It walks down the tree from the roots (or from `include_ous`): per parent,
//! ListAccountsForParent gives the accounts directly under it with their name and state, and
//! ListOrganizationalUnitsForParent its child OUs. That costs ListRoots plus 2 calls per OU
//! (one more per further page of 20), whatever the number of accounts. ListAccounts with a
//! ListParents per account, the other way to know each account's OU, costs a call per account,
//! and organizations have far fewer OUs than accounts (e.g. 33 calls instead of 210 for 200
//! accounts in 15 OUs). The calls are made one at a time: Organizations' request rate limits
//! are low, and one discovery an hour needs no speed.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_organizations::types::{Account as OrgAccount, AccountState, AccountStatus};
use tokio_util::sync::CancellationToken;

use crate::aws::counters::ApiMetrics;
use crate::aws::{AccountSession, aws_error, caller_account};
use crate::config::{Account, Config, Organizations, parse_role_arn};
use crate::error::Error;

/// The calls discovery makes, in the management or delegated-administrator account (not in
/// the audit role of each account: see docs/aws-setup.md).
/// ListTagsForResource only with `[owners] tag_keys`: each account's owner tag.
pub const PERMISSIONS: &[&str] = &[
    "organizations:ListAccountsForParent",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListRoots",
    "organizations:ListTagsForResource",
];

/// A discovery still going after this long is abandoned and counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(600);

/// The first wait before a failed discovery is tried again, until one succeeds.
const FIRST_RETRY: Duration = Duration::from_secs(10);

/// The largest page ListAccountsForParent returns.
const PAGE: i32 = 20;

/// One ACTIVE account of the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub id: String,
    /// Its name in Organizations (the id when it has none).
    pub name: String,
    /// The OU or root directly above it.
    pub ou: String,
    /// The partition of its ARN (`aws`, `aws-cn`, `aws-us-gov`), for its role's ARN.
    pub partition: String,
    /// Its owner tag (`[owners] tag_keys`); empty when none, or when no owner tag is read.
    pub owner: String,
}

/// Calls Organizations: with `role_arn`'s session, or with the base credentials.
pub struct Discoverer {
    base: SdkConfig,
    config: Arc<Config>,
    api: Arc<ApiMetrics>,
    org: Organizations,
    /// Built on first use: without `role_arn`, the account to count the calls under is the
    /// base credentials' (STS GetCallerIdentity), which may fail and be retried next time.
    session: tokio::sync::OnceCell<Arc<AccountSession>>,
    /// Each account's owner as last read, kept when reading its tags fails.
    owners: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Discoverer {
    pub fn new(
        base: SdkConfig,
        config: Arc<Config>,
        api: Arc<ApiMetrics>,
        org: Organizations,
    ) -> Self {
        Self {
            base,
            config,
            api,
            org,
            session: tokio::sync::OnceCell::new(),
            owners: Default::default(),
        }
    }

    async fn session(&self) -> Result<&Arc<AccountSession>, Error> {
        self.session
            .get_or_try_init(|| async {
                let id = match self.org.role_arn.as_deref().and_then(parse_role_arn) {
                    Some(id) => id.to_owned(),
                    None => caller_account(&self.base).await?,
                };
                // The ExternalId goes with role_arn too: a trust policy without the condition
                // ignores it.
                let account = Account {
                    name: id.clone(),
                    id,
                    role_arn: self.org.role_arn.clone(),
                    external_id: self.org.role_arn.as_ref().and(self.org.external_id.clone()),
                    collectors: Vec::new(),
                    regions: Vec::new(),
                    owner: String::new(),
                    tagging: Default::default(),
                };
                Ok(Arc::new(AccountSession::new(
                    &self.base,
                    &self.config.aws,
                    account,
                    self.api.clone(),
                )))
            })
            .await
    }

    /// The organization's ACTIVE accounts under the included parents, minus the excluded
    /// ones, sorted by id.
    pub async fn discover(&self) -> Result<Vec<Discovered>, Error> {
        let client = self.session().await?.organizations();
        let mut queue: VecDeque<String> = if self.org.include_ous.is_empty() {
            let mut pages = client.list_roots().into_paginator().send();
            let mut ids = VecDeque::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| aws_error("organizations", "ListRoots", e))?;
                ids.extend(
                    page.roots()
                        .iter()
                        .filter_map(|r| r.id().map(str::to_owned)),
                );
            }
            ids
        } else {
            self.org.include_ous.iter().cloned().collect()
        };
        // An included OU inside another included one is walked once.
        let mut seen: HashSet<String> = queue.iter().cloned().collect();
        let mut found: BTreeMap<String, Discovered> = BTreeMap::new();
        while let Some(parent) = queue.pop_front() {
            let mut pages = client
                .list_accounts_for_parent()
                .parent_id(&parent)
                .max_results(PAGE)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| aws_error("organizations", "ListAccountsForParent", e))?;
                for d in page.accounts().iter().filter_map(|a| self.keep(a, &parent)) {
                    found.entry(d.id.clone()).or_insert(d);
                }
            }
            let mut pages = client
                .list_organizational_units_for_parent()
                .parent_id(&parent)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    aws_error("organizations", "ListOrganizationalUnitsForParent", e)
                })?;
                for id in page.organizational_units().iter().filter_map(|ou| ou.id()) {
                    if seen.insert(id.to_owned()) {
                        queue.push_back(id.to_owned());
                    }
                }
            }
        }
        let tagging = self.config.tagging();
        if tagging.has_owner_keys() {
            // One call per account, only when owners are wanted. A failure keeps the account's
            // last owner (none if never read) rather than stopping discovery for a label.
            let mut failed = 0;
            for d in found.values_mut() {
                match self.account_tags(&client, &d.id).await {
                    Ok(tags) => {
                        d.owner = tagging.owner(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                        self.remember_owner(&d.id, Some(&d.owner));
                    }
                    Err(e) => {
                        if failed == 0 {
                            tracing::warn!(account_id = %d.id, error = %e, "cannot read the account's tags; its owner stays as last read");
                        }
                        failed += 1;
                        d.owner = self.remember_owner(&d.id, None);
                    }
                }
            }
            if failed > 1 {
                tracing::warn!(
                    accounts = failed,
                    "cannot read the tags of several accounts"
                );
            }
        }
        Ok(found.into_values().collect())
    }

    /// The account's tags in Organizations, every page.
    async fn account_tags(
        &self,
        client: &aws_sdk_organizations::Client,
        id: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        let mut tags = Vec::new();
        let mut pages = client
            .list_tags_for_resource()
            .resource_id(id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("organizations", "ListTagsForResource", e))?;
            tags.extend(
                page.tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned())),
            );
        }
        Ok(tags)
    }

    /// Records the account's owner when `read`, and returns the one last read.
    fn remember_owner(&self, id: &str, read: Option<&str>) -> String {
        let Ok(mut owners) = self.owners.lock() else {
            return read.unwrap_or_default().to_owned();
        };
        if let Some(owner) = read {
            owners.insert(id.to_owned(), owner.to_owned());
        }
        owners.get(id).cloned().unwrap_or_default()
    }

    /// The account as discovered, unless it is not ACTIVE or is excluded.
    fn keep(&self, account: &OrgAccount, parent: &str) -> Option<Discovered> {
        let id = account.id()?;
        if !crate::config::is_account_id(id)
            || !is_active(account)
            || self.org.exclude_accounts.iter().any(|x| x == id)
        {
            return None;
        }
        let partition = account
            .arn()
            .and_then(|arn| arn.split(':').nth(1))
            .filter(|p| !p.is_empty())
            .unwrap_or("aws");
        Some(Discovered {
            id: id.to_owned(),
            name: account.name().unwrap_or(id).to_owned(),
            ou: parent.to_owned(),
            partition: partition.to_owned(),
            owner: String::new(),
        })
    }
}

/// ACTIVE by `State`, which AWS added in 2025 (`Status` is being retired), else by `Status`.
/// Accounts pending closure, suspended or closed are not audited.
fn is_active(account: &OrgAccount) -> bool {
    match (account.state(), account.status()) {
        (Some(state), _) => *state == AccountState::Active,
        (None, Some(status)) => *status == AccountStatus::Active,
        (None, None) => false,
    }
}

/// Lists the organization's accounts: [`Discoverer`], or a scripted lister in tests.
pub trait Lister {
    fn list(&self) -> impl Future<Output = Result<Vec<Discovered>, Error>> + Send;
}

impl Lister for Discoverer {
    fn list(&self) -> impl Future<Output = Result<Vec<Discovered>, Error>> + Send {
        self.discover()
    }
}

/// What one discovery of [`run`] leaves: the account set to use and how it came about.
#[derive(Debug, Clone, Copy)]
pub struct Pass<'a> {
    /// The accounts of the last successful discovery (none before the first).
    pub accounts: &'a [Discovered],
    /// How many accounts this discovery found; None when it failed.
    pub found: Option<usize>,
    /// Whether any discovery has succeeded yet.
    pub succeeded: bool,
}

/// Takes each [`Pass`] of [`run`]: the account registry in the daemon.
pub trait Apply {
    fn apply(&self, pass: Pass<'_>) -> impl Future<Output = ()> + Send;
}

/// Discovers at once and then every `interval` (`refresh_interval`), and hands each pass to
/// `apply`. A failed discovery keeps the previous account set (on the first, none) and says so
/// in one log line. Until one has succeeded, a failed discovery is tried again sooner (10 s,
/// doubling up to `interval`): an IRSA token not there yet or a throttle at start must not leave
/// a ready pod with nothing to audit for an hour. Waits count from each discovery's start.
pub async fn run(
    lister: impl Lister,
    apply: impl Apply,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut last: Vec<Discovered> = Vec::new();
    let mut succeeded = false;
    let mut retry = FIRST_RETRY;
    loop {
        let started = tokio::time::Instant::now();
        let outcome = tokio::select! {
            r = tokio::time::timeout(TIMEOUT, lister.list()) => {
                r.unwrap_or(Err(Error::Timeout(TIMEOUT)))
            }
            () = shutdown.cancelled() => return,
        };
        let duration = started.elapsed().as_secs_f64();
        let found = match outcome {
            Ok(found) => {
                tracing::info!(
                    accounts = found.len(),
                    duration_seconds = duration,
                    "account discovery succeeded"
                );
                last = found;
                succeeded = true;
                Some(last.len())
            }
            Err(e) => {
                tracing::warn!(
                    duration_seconds = duration,
                    error.kind = e.kind(),
                    error = %e,
                    "account discovery failed; keeping the previous account set"
                );
                None
            }
        };
        apply
            .apply(Pass {
                accounts: &last,
                found,
                succeeded,
            })
            .await;
        let wait = if succeeded {
            interval
        } else {
            let wait = retry.min(interval);
            retry = retry.saturating_mul(2);
            wait
        };
        let next_start = started
            .checked_add(wait)
            .unwrap_or_else(|| started + TIMEOUT);
        tokio::select! {
            () = tokio::time::sleep_until(next_start) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Shared<T> = Arc<Mutex<Vec<T>>>;

    /// Answers each call with the next outcome of its script (true: one account found), after a
    /// second of (paused) time; records when each call came.
    struct Scripted {
        script: Mutex<VecDeque<bool>>,
        calls: Shared<Duration>,
        start: tokio::time::Instant,
    }

    impl Lister for Scripted {
        async fn list(&self) -> Result<Vec<Discovered>, Error> {
            self.calls.lock().unwrap().push(self.start.elapsed());
            let ok = self.script.lock().unwrap().pop_front().unwrap_or(true);
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !ok {
                return Err(Error::Timeout(Duration::from_secs(1)));
            }
            Ok(vec![Discovered {
                id: "111111111111".into(),
                name: "app".into(),
                ou: "r-ab12".into(),
                partition: "aws".into(),
                owner: String::new(),
            }])
        }
    }

    /// Keeps each pass (found, succeeded, accounts) and stops the loop after `stop_after`.
    struct Recorder {
        passes: Shared<(Option<usize>, bool, usize)>,
        stop_after: usize,
        shutdown: CancellationToken,
    }

    impl Apply for Recorder {
        async fn apply(&self, pass: Pass<'_>) {
            let mut passes = self.passes.lock().unwrap();
            passes.push((pass.found, pass.succeeded, pass.accounts.len()));
            if passes.len() == self.stop_after {
                self.shutdown.cancel();
            }
        }
    }

    /// Until a first success, retries after 10 s doubling up to the interval (100 s here);
    /// after it, every interval, failed or not. Waits count from each call's start, so a
    /// discovery that takes a second does not shift the next.
    #[tokio::test(start_paused = true)]
    async fn failures_back_off_from_10_s_doubling_up_to_the_interval() {
        let (f, t) = (false, true);
        let (calls, passes) = (Shared::default(), Shared::default());
        let lister = Scripted {
            script: Mutex::new(VecDeque::from([f, f, f, f, f, f, t, f, f])),
            calls: calls.clone(),
            start: tokio::time::Instant::now(),
        };
        let shutdown = CancellationToken::new();
        let recorder = Recorder {
            passes: passes.clone(),
            stop_after: 9,
            shutdown: shutdown.clone(),
        };
        run(lister, recorder, Duration::from_secs(100), shutdown).await;
        let at: Vec<u64> = calls
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_secs)
            .collect();
        // Waits 10, 20, 40, 80, then the interval (160 is capped), then the interval.
        assert_eq!(at, [0, 10, 30, 70, 150, 250, 350, 450, 550]);
        let none = (None, false, 0);
        assert_eq!(
            *passes.lock().unwrap(),
            [
                none,
                none,
                none,
                none,
                none,
                none,
                (Some(1), true, 1),
                // A failure after a success keeps the accounts found.
                (None, true, 1),
                (None, true, 1),
            ]
        );
    }

    #[test]
    fn state_wins_over_status() {
        let account = |state: Option<AccountState>, status: Option<AccountStatus>| {
            OrgAccount::builder()
                .id("111111111111")
                .set_state(state)
                .set_status(status)
                .build()
        };
        assert!(is_active(&account(Some(AccountState::Active), None)));
        assert!(is_active(&account(None, Some(AccountStatus::Active))));
        assert!(!is_active(&account(
            Some(AccountState::PendingClosure),
            Some(AccountStatus::Active)
        )));
        assert!(!is_active(&account(None, Some(AccountStatus::Suspended))));
        assert!(!is_active(&account(None, None)));
    }
}
