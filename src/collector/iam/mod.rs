//! IAM collector, credential-report mode: one report for all users, then ListAccessKeys only for
//! users whose keys are not known yet, to learn the AccessKeyIds the report does not carry.
//!
//! The same report gives the root user's and every user's console and MFA state; one more call
//! gives the password policy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Collector, Data, Spec};
use crate::aws::AccountSession;
use crate::aws::iam::{
    AccountApi, FetchedReport, IamClient, ListKeys, ListedKey, PasswordPolicy, ReportApi,
    ReportState,
};
use crate::config::{CollectorConfig, Section, SectionError};
use crate::error::Error;
use credential_report::{CredentialReport, ReportRow};

pub mod checks;
pub mod credential_report;
pub mod key_match;
mod series;

pub const NAME: &str = "iam";

pub static SPEC: Spec = Spec {
    name: NAME,
    defaults: || crate::config::defaults_of(&IamConfig::default()),
    load: load_section,
    permissions: &[
        "iam:GenerateCredentialReport",
        "iam:GetAccountPasswordPolicy",
        "iam:GetAccountSummary",
        "iam:GetCredentialReport",
        "iam:ListAccessKeys",
        "iam:ListVirtualMFADevices",
    ],
    build: |session, section| {
        let config = section.typed::<IamConfig>().cloned().unwrap_or_default();
        Arc::new(IamCollector::new(session, &config))
    },
    families: series::FAMILIES,
    encode: series::encode,
    live_families: &[],
    encode_live: |_, _, _, _| {},
    checks: checks::CHECKS,
    findings: checks::findings,
    user_owners: None,
};

/// `[collectors.iam]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IamConfig {
    /// Run this collector for accounts without their own `collectors` list.
    pub enabled: bool,
    /// Time from the start of one run for an account to the start of the next (plus a little
    /// jitter); a run that takes longer is followed at once.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A run that takes longer is abandoned and counts as failed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long one run waits in total for AWS to generate the credential report.
    #[serde(with = "humantime_serde")]
    pub report_wait: Duration,
    /// While the last report fetched is younger than this (by its GeneratedTime), a run only
    /// fetches it again, without GenerateCredentialReport: AWS regenerates a report only once it
    /// is 4 hours old. 0 asks AWS to generate on every run.
    #[serde(with = "humantime_serde")]
    pub report_max_age: Duration,
}

impl Default for IamConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(600),
            report_wait: Duration::from_secs(300),
            report_max_age: Duration::from_secs(4 * 3600),
        }
    }
}

fn load_section(figment: &figment::Figment) -> Result<Section, SectionError> {
    let c: IamConfig = figment.extract()?;
    let common = CollectorConfig {
        enabled: c.enabled,
        interval: c.interval,
        timeout: c.timeout,
    };
    crate::config::check_common(&common)?;
    if c.report_wait >= c.timeout {
        return Err(SectionError::Invalid(
            "report_wait".into(),
            "must be shorter than collectors.iam.timeout".into(),
        ));
    }
    Ok(Section::new(common, c))
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessKeyRecord {
    pub user: String,
    pub access_key_id: String,
    /// 1 or 2: the report's column.
    pub slot: u8,
    pub created: DateTime<Utc>,
    pub active: bool,
    pub last_used: Option<DateTime<Utc>>,
}

/// The account's root user, from the report's `<root_account>` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootRecord {
    pub mfa_active: bool,
    /// From the report, or, where it says `not_supported` (as AWS's reports do for the root
    /// user), from GetAccountSummary's AccountPasswordPresent. None when neither tells.
    pub password_enabled: Option<bool>,
    /// Active access keys: 0, 1 or 2.
    pub active_keys: u8,
    /// The latest use of the password or of either key.
    pub last_used: Option<DateTime<Utc>>,
    /// Whether its MFA device is a virtual one (ListVirtualMFADevices): false without MFA, None
    /// when that call was denied.
    pub virtual_mfa: Option<bool>,
}

impl RootRecord {
    fn from_row(row: &ReportRow) -> Self {
        let last_used = row
            .keys
            .iter()
            .filter_map(|k| k.last_used_date)
            .chain(row.password_last_used)
            .max();
        Self {
            mfa_active: row.mfa_active,
            password_enabled: row.password_enabled,
            active_keys: row.present_keys().filter(|(_, k)| k.active).count() as u8,
            last_used,
            // Known only after ListVirtualMFADevices, unless there is no MFA at all.
            virtual_mfa: (!row.mfa_active).then_some(false),
        }
    }
}

/// An IAM user's console access and MFA, from the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: String,
    pub created: Option<DateTime<Utc>>,
    pub password_enabled: bool,
    pub mfa_active: bool,
    pub password_last_used: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct IamData {
    pub report_generated_at: Option<DateTime<Utc>>,
    pub keys: Vec<AccessKeyRecord>,
    /// None when the report has no `<root_account>` row.
    pub root: Option<RootRecord>,
    /// Every user in the report, sorted by name.
    pub users: Vec<UserRecord>,
    /// None when the account has no password policy (or it is unknown: see below).
    pub password_policy: Option<PasswordPolicy>,
    /// GetAccountPasswordPolicy was denied: whether there is a policy is unknown.
    pub password_policy_denied: bool,
}

impl IamData {
    /// Root and users from the report, with the keys resolved from it and the password policy.
    pub fn new(
        report: &CredentialReport,
        report_generated_at: Option<DateTime<Utc>>,
        keys: Vec<AccessKeyRecord>,
        password_policy: Option<PasswordPolicy>,
    ) -> Self {
        let mut users: Vec<UserRecord> = report
            .users()
            .map(|row| UserRecord {
                user: row.user.clone(),
                created: row.user_creation_time,
                password_enabled: row.password_enabled.unwrap_or(false),
                mfa_active: row.mfa_active,
                password_last_used: row.password_last_used,
            })
            .collect();
        users.sort_by(|a, b| a.user.cmp(&b.user));
        Self {
            report_generated_at,
            keys,
            root: report.root().map(RootRecord::from_row),
            users,
            password_policy,
            password_policy_denied: false,
        }
    }
}

/// (user, slot, creation time) -> the AccessKeyId, or None for a key deleted since the report.
pub type KeyCache = HashMap<(String, u8, DateTime<Utc>), Option<String>>;

pub struct IamCollector {
    client: IamClient,
    max_concurrency: usize,
    report_wait: Duration,
    report_max_age: Duration,
    /// GeneratedTime of the last report fetched, to skip GenerateCredentialReport while fresh.
    last_generated: Mutex<Option<DateTime<Utc>>>,
    // Runs of one collector never overlap; the lock is only ever taken between awaits.
    cache: Mutex<KeyCache>,
    warned: Warned,
}

/// Conditions worth one warning per account, not one per run.
#[derive(Debug, Default)]
pub struct Warned {
    no_root: AtomicBool,
    policy_denied: AtomicBool,
    summary_denied: AtomicBool,
    summary_silent: AtomicBool,
    virtual_mfa_denied: AtomicBool,
}

/// True the first time only.
fn first(flag: &AtomicBool) -> bool {
    !flag.swap(true, Ordering::Relaxed)
}

/// The password policy, and the root's password where the report does not tell. A denied call
/// leaves its answer unknown instead of failing the run (the role may predate the permission).
pub async fn account_posture(
    api: &impl AccountApi,
    data: &mut IamData,
    warned: &Warned,
) -> Result<(), Error> {
    match api.password_policy().await {
        Ok(p) => data.password_policy = p,
        Err(e) if denied(&e) => {
            data.password_policy_denied = true;
            if first(&warned.policy_denied) {
                tracing::warn!(error = %e, "GetAccountPasswordPolicy is denied; the password policy is unknown");
            }
        }
        Err(e) => return Err(e),
    }
    match data.root.as_mut() {
        None => {
            if first(&warned.no_root) {
                tracing::warn!(
                    "the credential report has no <root_account> row; root metrics are absent for this account"
                );
            }
        }
        // AWS's reports say not_supported for the root password; the account summary knows.
        Some(root) if root.password_enabled.is_none() => {
            match api.account_password_present().await {
                Ok(present) => {
                    if present.is_none() && first(&warned.summary_silent) {
                        tracing::warn!(
                            "GetAccountSummary does not say whether the root user has a password (no AccountPasswordPresent); iam_root_mfa counts one as possible"
                        );
                    }
                    root.password_enabled = present;
                }
                Err(e) if denied(&e) => {
                    if first(&warned.summary_denied) {
                        tracing::warn!(error = %e, "GetAccountSummary is denied; whether the root user has a password is unknown");
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Some(_) => {}
    }
    // Whether root's MFA is hardware: only a root with MFA needs the call.
    if let Some(root) = data.root.as_mut().filter(|r| r.mfa_active) {
        match api.root_virtual_mfa().await {
            Ok(v) => root.virtual_mfa = Some(v),
            Err(e) if denied(&e) => {
                if first(&warned.virtual_mfa_denied) {
                    tracing::warn!(error = %e, "ListVirtualMFADevices is denied; whether the root user's MFA is hardware is unknown");
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The role may not make this call: its answer is unknown, which is not a failed run.
fn denied(e: &Error) -> bool {
    matches!(e.aws_code(), Some("AccessDenied" | "AccessDeniedException"))
}

impl IamCollector {
    pub fn new(session: &Arc<AccountSession>, cfg: &IamConfig) -> Self {
        Self {
            client: session.iam(),
            max_concurrency: session.max_concurrency(),
            report_wait: cfg.report_wait,
            report_max_age: cfg.report_max_age,
            last_generated: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            warned: Warned::default(),
        }
    }

    async fn run(&self) -> Result<Arc<Data>, Error> {
        let last = self.last_generated.lock().ok().and_then(|g| *g);
        let fresh = still_fresh(last, self.report_max_age, Utc::now());
        let fetched = fetch_report(&self.client, self.report_wait, fresh).await?;
        if let Ok(mut g) = self.last_generated.lock() {
            *g = fetched.generated_at;
        }
        let report = credential_report::parse(&fetched.content)?;
        self.client.identity().check_arns(
            report.rows.iter().map(|r| r.arn.as_str()),
            "the credential report",
        )?;
        let keys = resolve_keys(&self.client, &self.cache, &report, self.max_concurrency).await?;
        let mut data = IamData::new(&report, fetched.generated_at, keys, None);
        account_posture(&self.client, &mut data, &self.warned).await?;
        Ok(Arc::new(data))
    }
}

/// Each report slot with a key, with its AccessKeyId from `cache` or from ListAccessKeys.
///
/// What ListAccessKeys teaches goes into the cache as it arrives, so a run that fails or is
/// abandoned at its timeout still saves the next run those calls. Entries the report no longer
/// needs are dropped at the end of a successful run.
pub async fn resolve_keys(
    api: &impl ListKeys,
    cache: &Mutex<KeyCache>,
    report: &CredentialReport,
    max_concurrency: usize,
) -> Result<Vec<AccessKeyRecord>, Error> {
    let known = cache.lock().map(|c| c.clone()).unwrap_or_default();
    let mut used = KeyCache::new();
    let mut keys = Vec::new();
    let mut unknown: Vec<&ReportRow> = Vec::new();

    for row in report.users() {
        let cached: Option<Vec<_>> = row
            .present_keys()
            .map(|(slot, ks)| {
                let k = (row.user.clone(), slot, ks.last_rotated?);
                known.get(&k).map(|id| (k, id.clone()))
            })
            .collect();
        match cached {
            Some(entries) => {
                for (k, id) in entries {
                    if let Some(id) = &id {
                        keys.extend(record(row, k.1, id));
                    }
                    used.insert(k, id);
                }
            }
            None => unknown.push(row),
        }
    }

    // Futures are made as the stream needs them, `max_concurrency` at a time: an SDK call's
    // future is kilobytes, and one per user made up front cost about 1 MiB per account at 200
    // users (BENCHMARKS.md, "Fleet refresh"). Owned inputs: futures that borrow the report do
    // not satisfy `Send`'s higher-ranked lifetime check.
    let users: Vec<(usize, String)> = unknown
        .iter()
        .enumerate()
        .map(|(i, row)| (i, row.user.clone()))
        .collect();
    let mut results = stream::iter(users)
        .map(|(i, user)| list_one(api.clone(), i, user))
        .buffer_unordered(max_concurrency);
    let mut first_error = None;
    while let Some((i, result)) = results.next().await {
        let row = unknown[i];
        let listed = match result {
            Ok(l) => l,
            // Deleted since the report was generated: no keys to export.
            Err(e) if e.aws_code() == Some("NoSuchEntity") => Vec::new(),
            // Keep going: the other users' answers are still worth caching.
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        let mut learnt = Vec::new();
        for m in key_match::match_slots(row, &listed) {
            if let Some(id) = &m.key_id {
                keys.extend(record(row, m.slot, id));
            }
            let rotated = usize::from(m.slot)
                .checked_sub(1)
                .and_then(|i| row.keys.get(i))
                .and_then(|k| k.last_rotated);
            // An arbitrary pick between twin keys is not knowledge: list the user again.
            if m.ambiguous {
                tracing::debug!(user = %row.user, slot = m.slot, "two keys created in the same second with the same status");
            } else if let Some(rotated) = rotated {
                learnt.push(((row.user.clone(), m.slot, rotated), m.key_id));
            }
        }
        if let Ok(mut cache) = cache.lock() {
            cache.extend(learnt.iter().cloned());
        }
        used.extend(learnt);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Ok(mut cache) = cache.lock() {
        *cache = used;
    }
    keys.sort_by(|a, b| (&a.user, a.slot).cmp(&(&b.user, b.slot)));
    Ok(keys)
}

/// One user's keys, tagged with the user's index.
async fn list_one<A: ListKeys>(
    api: A,
    i: usize,
    user: String,
) -> (usize, Result<Vec<ListedKey>, Error>) {
    (i, api.list_keys(&user).await)
}

/// Whether a report generated at `generated` is younger than `max_age` at `now`, so asking AWS
/// to generate another would be a wasted call.
///
/// The age is the report's own GeneratedTime, not when we last asked: AWS decides whether to
/// regenerate by that same time (4 hours), and a report someone else generated counts too. Going
/// by our last GenerateCredentialReport instead would let the data grow up to 4 hours older than
/// `max_age`, since AWS answers COMPLETE with a report up to 4 hours old. An unknown time is not
/// fresh.
pub fn still_fresh(
    generated: Option<DateTime<Utc>>,
    max_age: Duration,
    now: DateTime<Utc>,
) -> bool {
    let Some(generated) = generated else {
        return false;
    };
    // A time ahead of our clock (skew) counts as age 0.
    let age = (now - generated).to_std().unwrap_or(Duration::ZERO);
    age < max_age
}

/// GenerateCredentialReport until COMPLETE, then GetCredentialReport, all within `wait`.
/// AWS answers COMPLETE at once while its last report is under 4 hours old, so a warm run costs
/// two calls, or one when `fresh` (the last report is known to be young: see [`still_fresh`]),
/// which starts at GetCredentialReport and generates only if AWS has no report any more. A cold
/// run waits for generation and then fetches.
pub async fn fetch_report(
    api: &impl ReportApi,
    wait: Duration,
    fresh: bool,
) -> Result<FetchedReport, Error> {
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(500);
    let mut generate = !fresh;
    loop {
        let mut ready = true;
        if generate {
            match api.generate().await {
                Ok(ReportState::Complete) => generate = false,
                // Asking for the report at once would only earn ReportInProgress.
                Ok(ReportState::Pending) => (generate, ready) = (false, false),
                Err(e) if e.aws_code() == Some("LimitExceeded") => ready = false,
                Err(e) => return Err(e),
            }
        }
        if ready {
            match api.get().await {
                Ok(report) => return Ok(report),
                Err(e) if e.aws_code() == Some("ReportInProgress") => {}
                Err(e) if matches!(e.aws_code(), Some("ReportNotPresent" | "ReportExpired")) => {
                    generate = true
                }
                Err(e) => return Err(e),
            }
        }
        if Instant::now() + delay > deadline {
            return Err(Error::ReportTimeout(wait));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

fn record(row: &ReportRow, slot: u8, id: &str) -> Option<AccessKeyRecord> {
    let ks = row.keys.get(usize::from(slot).checked_sub(1)?)?;
    Some(AccessKeyRecord {
        user: row.user.clone(),
        access_key_id: id.to_owned(),
        slot,
        created: ks.last_rotated?,
        active: ks.active,
        last_used: ks.last_used_date,
    })
}

impl Collector for IamCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn collect(&self) -> BoxFuture<'_, Result<Arc<Data>, Error>> {
        Box::pin(self.run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Plays back scripted answers and records the calls made.
    #[derive(Default)]
    struct Script {
        generate: Mutex<VecDeque<Result<ReportState, Error>>>,
        get: Mutex<VecDeque<Result<FetchedReport, Error>>>,
        calls: Mutex<Vec<&'static str>>,
    }

    fn aws(code: &str) -> Error {
        Error::Aws {
            service: "iam",
            operation: "test",
            code: code.into(),
            message: String::new(),
        }
    }

    fn report() -> Result<FetchedReport, Error> {
        Ok(FetchedReport {
            content: b"csv".to_vec(),
            generated_at: None,
        })
    }

    impl Script {
        fn new(
            generate: impl IntoIterator<Item = Result<ReportState, Error>>,
            get: impl IntoIterator<Item = Result<FetchedReport, Error>>,
        ) -> Self {
            Self {
                generate: Mutex::new(generate.into_iter().collect()),
                get: Mutex::new(get.into_iter().collect()),
                calls: Mutex::default(),
            }
        }

        fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl ReportApi for Script {
        fn generate(&self) -> impl Future<Output = Result<ReportState, Error>> + Send {
            self.calls.lock().unwrap().push("generate");
            let next = self
                .generate
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(ReportState::Pending));
            async move { next }
        }

        fn get(&self) -> impl Future<Output = Result<FetchedReport, Error>> + Send {
            self.calls.lock().unwrap().push("get");
            let next = self
                .get
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Err(aws("ReportInProgress")));
            async move { next }
        }
    }

    const WAIT: Duration = Duration::from_secs(300);

    #[tokio::test(start_paused = true)]
    async fn warm_report_costs_two_calls() {
        let s = Script::new([Ok(ReportState::Complete)], [report()]);
        fetch_report(&s, WAIT, false).await.unwrap();
        assert_eq!(s.calls(), ["generate", "get"]);
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_report_costs_one_call() {
        let s = Script::new([], [report()]);
        fetch_report(&s, WAIT, true).await.unwrap();
        assert_eq!(s.calls(), ["get"]);
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_but_gone_report_is_generated() {
        for code in ["ReportExpired", "ReportNotPresent"] {
            let s = Script::new([Ok(ReportState::Complete)], [Err(aws(code)), report()]);
            fetch_report(&s, WAIT, true).await.unwrap();
            assert_eq!(s.calls(), ["get", "generate", "get"], "{code}");
        }
    }

    #[test]
    fn a_report_is_fresh_while_younger_than_max_age() {
        let now: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
        let ago = |mins: i64| Some(now - chrono::Duration::minutes(mins));
        let four_hours = Duration::from_secs(4 * 3600);
        assert!(still_fresh(ago(5), four_hours, now));
        assert!(still_fresh(ago(239), four_hours, now));
        assert!(!still_fresh(ago(240), four_hours, now));
        assert!(
            !still_fresh(ago(60 * 24 * 365 * 11), four_hours, now),
            "moto's 2015"
        );
        assert!(!still_fresh(None, four_hours, now), "unknown age");
        assert!(
            !still_fresh(ago(0), Duration::ZERO, now),
            "0: always generate"
        );
        assert!(still_fresh(ago(-10), four_hours, now), "ahead of our clock");
    }

    #[tokio::test(start_paused = true)]
    async fn started_then_in_progress_polls_get_only() {
        let s = Script::new(
            [Ok(ReportState::Pending)],
            [
                Err(aws("ReportInProgress")),
                Err(aws("ReportInProgress")),
                report(),
            ],
        );
        let t = Instant::now();
        fetch_report(&s, WAIT, false).await.unwrap();
        assert_eq!(s.calls(), ["generate", "get", "get", "get"]);
        // Backoff: 0.5 + 1 + 2 s.
        assert_eq!(t.elapsed(), Duration::from_millis(3500));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_or_missing_report_is_generated_again() {
        let s = Script::new(
            [Ok(ReportState::Complete), Ok(ReportState::Complete)],
            [Err(aws("ReportExpired")), report()],
        );
        fetch_report(&s, WAIT, false).await.unwrap();
        assert_eq!(s.calls(), ["generate", "get", "generate", "get"]);

        let s = Script::new(
            [Ok(ReportState::Complete), Ok(ReportState::Complete)],
            [Err(aws("ReportNotPresent")), report()],
        );
        fetch_report(&s, WAIT, false).await.unwrap();
        assert_eq!(s.calls(), ["generate", "get", "generate", "get"]);
    }

    #[tokio::test(start_paused = true)]
    async fn limit_exceeded_backs_off_and_retries() {
        let s = Script::new(
            [Err(aws("LimitExceeded")), Ok(ReportState::Complete)],
            [report()],
        );
        fetch_report(&s, WAIT, false).await.unwrap();
        assert_eq!(s.calls(), ["generate", "generate", "get"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded() {
        // Never ready: INPROGRESS for ever.
        let s = Script::new([], []);
        let t = Instant::now();
        let err = fetch_report(&s, Duration::from_secs(60), false)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ReportTimeout(_)), "{err}");
        assert!(t.elapsed() <= Duration::from_secs(60), "{:?}", t.elapsed());
        let gets = s.calls().iter().filter(|c| **c == "get").count();
        assert!((5..=12).contains(&gets), "polled {gets} times in a minute");
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_end_the_run_at_once() {
        let s = Script::new([Err(aws("AccessDenied"))], []);
        let err = fetch_report(&s, WAIT, false).await.unwrap_err();
        assert_eq!(err.aws_code(), Some("AccessDenied"));
        assert_eq!(s.calls(), ["generate"]);
    }

    // --- key resolution and its cache ---

    use crate::aws::iam::ListedKey;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,mfa_active,\
access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,\
access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service\n";

    /// Per slot: (active, "HH:MM:SS" of creation on 2026-01-01), or no key.
    type Slot<'a> = Option<(bool, &'a str)>;
    /// What ListAccessKeys answers per user: keys, or an AWS error code.
    type Table = HashMap<String, Result<Vec<ListedKey>, &'static str>>;

    fn csv_report(rows: &[(&str, [Slot; 2])]) -> CredentialReport {
        let mut csv = HEADER.to_owned();
        for (user, slots) in rows {
            csv.push_str(&format!(
                "{user},arn:aws:iam::1:user/{user},N/A,false,N/A,N/A,false"
            ));
            for slot in slots {
                match slot {
                    Some((active, t)) => {
                        csv.push_str(&format!(",{active},2026-01-01T{t}+00:00,N/A,N/A,N/A"))
                    }
                    None => csv.push_str(",false,N/A,N/A,N/A,N/A"),
                }
            }
            csv.push('\n');
        }
        credential_report::parse(csv.as_bytes()).unwrap()
    }

    fn listed(id: &str, t: &str, active: bool) -> ListedKey {
        ListedKey {
            id: id.into(),
            created: format!("2026-01-01T{t}.250Z").parse().unwrap(),
            active,
        }
    }

    /// ListAccessKeys from a table; a user missing from it is AccessDenied.
    #[derive(Clone, Default)]
    struct Keys {
        table: Arc<Mutex<Table>>,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl Keys {
        fn set(&self, user: &str, keys: Result<Vec<ListedKey>, &'static str>) {
            self.table.lock().unwrap().insert(user.into(), keys);
        }

        fn take_calls(&self) -> Vec<String> {
            let mut calls = std::mem::take(&mut *self.calls.lock().unwrap());
            calls.sort();
            calls
        }
    }

    impl ListKeys for Keys {
        fn list_keys(
            &self,
            user: &str,
        ) -> impl Future<Output = Result<Vec<ListedKey>, Error>> + Send {
            self.calls.lock().unwrap().push(user.to_owned());
            let answer = match self.table.lock().unwrap().get(user) {
                Some(Ok(keys)) => Ok(keys.clone()),
                Some(Err(code)) => Err(aws(code)),
                None => Err(aws("AccessDenied")),
            };
            async move { answer }
        }
    }

    fn ids(keys: &[AccessKeyRecord]) -> Vec<(&str, u8, &str, bool)> {
        keys.iter()
            .map(|k| (k.user.as_str(), k.slot, k.access_key_id.as_str(), k.active))
            .collect()
    }

    #[tokio::test]
    async fn unchanged_rows_are_not_listed_again() {
        let api = Keys::default();
        api.set(
            "a",
            Ok(vec![
                listed("AKA2", "00:00:02", true),
                listed("AKA1", "00:00:01", false),
            ]),
        );
        api.set("b", Ok(vec![listed("AKB1", "00:00:03", true)]));
        let r = csv_report(&[
            ("a", [Some((false, "00:00:01")), Some((true, "00:00:02"))]),
            ("b", [Some((true, "00:00:03")), None]),
            ("nokeys", [None, None]),
        ]);
        let cache = Mutex::new(KeyCache::new());
        let first = resolve_keys(&api, &cache, &r, 2).await.unwrap();
        assert_eq!(
            ids(&first),
            [
                ("a", 1, "AKA1", false),
                ("a", 2, "AKA2", true),
                ("b", 1, "AKB1", true)
            ]
        );
        assert_eq!(api.take_calls(), ["a", "b"]);

        let second = resolve_keys(&api, &cache, &r, 2).await.unwrap();
        assert_eq!(first, second);
        assert!(api.take_calls().is_empty());

        // b rotates: only b is listed again, and a's entries survive.
        api.set(
            "b",
            Ok(vec![
                listed("AKB1", "00:00:03", true),
                listed("AKB2", "00:00:09", true),
            ]),
        );
        let r2 = csv_report(&[
            ("a", [Some((false, "00:00:01")), Some((true, "00:00:02"))]),
            ("b", [Some((true, "00:00:03")), Some((true, "00:00:09"))]),
        ]);
        let third = resolve_keys(&api, &cache, &r2, 2).await.unwrap();
        assert_eq!(api.take_calls(), ["b"]);
        assert_eq!(third.len(), 4);
    }

    #[tokio::test]
    async fn a_failed_user_fails_the_run_but_the_others_are_remembered() {
        let api = Keys::default();
        api.set("a", Ok(vec![listed("AKA1", "00:00:01", true)]));
        api.set("c", Ok(vec![listed("AKC1", "00:00:05", true)]));
        let r = csv_report(&[
            ("a", [Some((true, "00:00:01")), None]),
            ("b", [Some((true, "00:00:02")), None]),
            ("c", [Some((true, "00:00:05")), None]),
        ]);
        let cache = Mutex::new(KeyCache::new());
        let err = resolve_keys(&api, &cache, &r, 1).await.unwrap_err();
        assert_eq!(err.aws_code(), Some("AccessDenied"));
        assert_eq!(api.take_calls(), ["a", "b", "c"]);

        api.set("b", Ok(vec![listed("AKB1", "00:00:02", true)]));
        let keys = resolve_keys(&api, &cache, &r, 1).await.unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(
            api.take_calls(),
            ["b"],
            "a and c were learnt by the failed run"
        );
    }

    #[tokio::test]
    async fn deleted_users_and_keys_are_remembered_as_gone() {
        let api = Keys::default();
        api.set("gone", Err("NoSuchEntity"));
        api.set("rotated", Ok(vec![listed("AKNEW", "00:00:30", true)]));
        let r = csv_report(&[
            ("gone", [Some((true, "00:00:01")), None]),
            ("rotated", [Some((true, "00:00:02")), None]),
        ]);
        let cache = Mutex::new(KeyCache::new());
        assert!(resolve_keys(&api, &cache, &r, 2).await.unwrap().is_empty());
        assert_eq!(api.take_calls(), ["gone", "rotated"]);
        assert!(resolve_keys(&api, &cache, &r, 2).await.unwrap().is_empty());
        assert!(api.take_calls().is_empty());
    }

    #[tokio::test]
    async fn twin_keys_are_listed_every_run() {
        let api = Keys::default();
        api.set(
            "t",
            Ok(vec![
                listed("AKT1", "00:00:07", true),
                listed("AKT2", "00:00:07", true),
            ]),
        );
        let r = csv_report(&[("t", [Some((true, "00:00:07")), Some((true, "00:00:07"))])]);
        let cache = Mutex::new(KeyCache::new());
        for _ in 0..2 {
            let keys = resolve_keys(&api, &cache, &r, 2).await.unwrap();
            let mut got: Vec<_> = keys.iter().map(|k| k.access_key_id.as_str()).collect();
            got.sort_unstable();
            assert_eq!(got, ["AKT1", "AKT2"]);
            assert_eq!(api.take_calls(), ["t"]);
        }
    }

    // --- root and users from the report ---

    fn fixture(name: &str) -> CredentialReport {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/credential_report/"
        );
        credential_report::parse(&std::fs::read(format!("{dir}{name}")).unwrap()).unwrap()
    }

    fn at(t: &str) -> Option<DateTime<Utc>> {
        Some(t.parse().unwrap())
    }

    fn iam_data(report: &CredentialReport) -> IamData {
        IamData::new(report, None, Vec::new(), None)
    }

    #[test]
    fn root_and_users_from_an_aws_report() {
        let data = iam_data(&fixture("aws_with_root.csv"));
        assert_eq!(
            data.root,
            Some(RootRecord {
                mfa_active: true,
                password_enabled: None,
                active_keys: 0,
                last_used: at("2026-10-30T08:12:41Z"),
                virtual_mfa: None,
            })
        );
        let users: Vec<_> = data
            .users
            .iter()
            .map(|u| {
                (
                    u.user.as_str(),
                    u.password_enabled,
                    u.mfa_active,
                    u.password_last_used,
                )
            })
            .collect();
        assert_eq!(
            users,
            [
                ("alice", true, false, None),
                ("bob", true, true, at("2026-11-22T17:02:11Z")),
                ("carol", false, false, None),
                ("svc-ci+deploy@example.com", false, false, None),
            ]
        );
    }

    #[test]
    fn root_keys_are_counted_and_last_used_is_the_latest_use() {
        let report = fixture("aws_root_with_keys.csv");
        let data = iam_data(&report);
        assert_eq!(
            data.root,
            Some(RootRecord {
                mfa_active: false,
                password_enabled: None,
                active_keys: 2,
                last_used: at("2026-11-01T00:00:00Z"),
                virtual_mfa: Some(false),
            })
        );
        assert_eq!(data.users.len(), 1, "the root row is not a user");

        // An inactive key is not counted.
        let mut root = report.root().unwrap().clone();
        root.keys[1].active = false;
        assert_eq!(RootRecord::from_row(&root).active_keys, 1);
    }

    #[test]
    fn no_root_row_means_no_root_record() {
        let data = iam_data(&fixture("emulator_no_root.csv"));
        assert_eq!(data.root, None);
        assert_eq!(data.users.len(), 2);
    }

    /// Scripted account-level answers: None is AccessDenied.
    struct Account {
        policy: Option<Result<Option<PasswordPolicy>, &'static str>>,
        password_present: Option<Result<Option<bool>, &'static str>>,
        virtual_mfa: Option<Result<bool, &'static str>>,
        summary_calls: std::sync::atomic::AtomicUsize,
    }

    impl AccountApi for Account {
        async fn password_policy(&self) -> Result<Option<PasswordPolicy>, Error> {
            self.policy
                .clone()
                .unwrap_or(Err("AccessDenied"))
                .map_err(aws)
        }

        async fn account_password_present(&self) -> Result<Option<bool>, Error> {
            self.summary_calls.fetch_add(1, Ordering::SeqCst);
            self.password_present
                .unwrap_or(Err("AccessDenied"))
                .map_err(aws)
        }

        async fn root_virtual_mfa(&self) -> Result<bool, Error> {
            self.virtual_mfa.unwrap_or(Err("AccessDenied")).map_err(aws)
        }
    }

    fn account(
        policy: Option<Result<Option<PasswordPolicy>, &'static str>>,
        password_present: Option<Result<Option<bool>, &'static str>>,
    ) -> Account {
        Account {
            policy,
            password_present,
            virtual_mfa: Some(Ok(false)),
            summary_calls: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_root_with_mfa_is_asked_whether_its_device_is_virtual() {
        // aws_with_root.csv: root has MFA.
        for (answer, want) in [
            (Some(Ok(true)), Some(true)),
            (Some(Ok(false)), Some(false)),
            (None, None),
        ] {
            let mut data = iam_data(&fixture("aws_with_root.csv"));
            let api = Account {
                virtual_mfa: answer,
                ..account(Some(Ok(None)), Some(Ok(Some(true))))
            };
            account_posture(&api, &mut data, &Warned::default())
                .await
                .unwrap();
            assert_eq!(data.root.unwrap().virtual_mfa, want, "{answer:?}");
        }
        // Without MFA the answer is known without asking: no virtual device.
        let mut data = iam_data(&fixture("aws_root_with_keys.csv"));
        let api = Account {
            virtual_mfa: Some(Err("ServiceFailure")),
            ..account(Some(Ok(None)), Some(Ok(Some(true))))
        };
        account_posture(&api, &mut data, &Warned::default())
            .await
            .unwrap();
        assert_eq!(data.root.unwrap().virtual_mfa, Some(false));
    }

    #[tokio::test]
    async fn the_account_summary_says_whether_root_has_a_password() {
        let mut data = iam_data(&fixture("aws_with_root.csv"));
        let api = account(Some(Ok(None)), Some(Ok(Some(false))));
        account_posture(&api, &mut data, &Warned::default())
            .await
            .unwrap();
        let root = data.root.unwrap();
        assert_eq!(root.password_enabled, Some(false));
        assert!(!data.password_policy_denied && data.password_policy.is_none());
    }

    #[tokio::test]
    async fn denied_account_calls_leave_answers_unknown_without_failing() {
        let mut data = iam_data(&fixture("aws_with_root.csv"));
        account_posture(&account(None, None), &mut data, &Warned::default())
            .await
            .unwrap();
        assert!(data.password_policy_denied);
        assert_eq!(data.root.unwrap().password_enabled, None);
    }

    #[tokio::test]
    async fn other_errors_fail_the_run() {
        let mut data = iam_data(&fixture("aws_with_root.csv"));
        let throttled = account(Some(Err("Throttling")), Some(Ok(Some(true))));
        assert!(
            account_posture(&throttled, &mut data, &Warned::default())
                .await
                .is_err()
        );
        let throttled = account(Some(Ok(None)), Some(Err("Throttling")));
        assert!(
            account_posture(&throttled, &mut data, &Warned::default())
                .await
                .is_err()
        );
    }

    /// Log lines written while `f` runs on this thread.
    async fn logged<F: Future<Output = ()>>(f: F) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        f.await;
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[tokio::test]
    async fn a_summary_without_the_root_password_is_warned_about_once() {
        let warned = Warned::default();
        let api = account(Some(Ok(None)), Some(Ok(None)));
        let log = logged(async {
            for _ in 0..3 {
                let mut data = iam_data(&fixture("aws_with_root.csv"));
                account_posture(&api, &mut data, &warned).await.unwrap();
                assert_eq!(data.root.unwrap().password_enabled, None);
            }
        })
        .await;
        assert_eq!(log.matches("no AccountPasswordPresent").count(), 1, "{log}");
        assert_eq!(api.summary_calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn no_summary_call_without_a_root_row() {
        let mut data = iam_data(&fixture("emulator_no_root.csv"));
        let api = account(Some(Ok(None)), Some(Ok(Some(true))));
        account_posture(&api, &mut data, &Warned::default())
            .await
            .unwrap();
        assert_eq!(api.summary_calls.load(Ordering::SeqCst), 0);
    }
}
