//! Access Advisor collector: for every IAM user and role, the services its policies let it use
//! and when it last used each (IAM's "service last accessed" data), for least privilege.
//!
//! AWS answers asynchronously: GenerateServiceLastAccessedDetails starts one job per principal,
//! GetServiceLastAccessedDetails is polled until the job is done and then paged through. Off by
//! default for that cost; principals run `max_concurrency` at a time.
//!
//! Service-linked roles (path `/aws-service-role/`) are skipped: AWS owns their policies, so an
//! unused grant there is not the account's to remove, and they would cost a job each.
//!
//! A principal whose job fails (FAILED, or not done within `job_wait`) keeps its last good
//! services, is counted in `infraaudit_iam_access_advisor_failed_principals` and does not fail
//! the others; the run fails only when every principal failed, and then keeps all the previous
//! data. A principal deleted between the listing and its job is left out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Collector, Data, Spec};
use crate::aws::AccountSession;
use crate::aws::iam::{
    AccessAdvisorApi, IamClient, JobPage, Principal, PrincipalKind, ServiceAccess,
};
use crate::config::{CollectorConfig, Section, SectionError};
use crate::error::Error;
use crate::expo::{Family, Recorder, SECONDS};
use crate::time::unix;

pub const NAME: &str = "access_advisor";

pub static SPEC: Spec = Spec {
    name: NAME,
    defaults: || crate::config::defaults_of(&AccessAdvisorConfig::default()),
    load: load_section,
    permissions: &[
        "iam:GenerateServiceLastAccessedDetails",
        "iam:GetServiceLastAccessedDetails",
        "iam:ListRoles",
        "iam:ListUsers",
    ],
    build: |session, section| {
        let config = section
            .typed::<AccessAdvisorConfig>()
            .cloned()
            .unwrap_or_default();
        Arc::new(AccessAdvisorCollector::new(session, &config))
    },
    families: FAMILIES,
    encode,
    live_families: LIVE_FAMILIES,
    encode_live,
    checks: &[],
    findings: |_, _, _, _, _| {},
    user_owners: None,
};

/// `[collectors.access_advisor]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessAdvisorConfig {
    /// Run this collector for accounts without their own `collectors` list. Off by default:
    /// each run costs one GenerateServiceLastAccessedDetails job per user and role.
    pub enabled: bool,
    /// Time from the start of one run for an account to the start of the next (plus a little
    /// jitter). Long by default: AWS's own data lags by up to about 4 hours.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A run that takes longer is abandoned and counts as failed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long one principal's job may stay IN_PROGRESS before that principal counts as failed.
    #[serde(with = "humantime_serde")]
    pub job_wait: Duration,
    /// A granted service not used within this long counts in
    /// `infraaudit_iam_principal_unused_services`.
    #[serde(with = "humantime_serde")]
    pub unused_window: Duration,
}

impl Default for AccessAdvisorConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: Duration::from_secs(86_400),
            timeout: Duration::from_secs(3600),
            job_wait: Duration::from_secs(300),
            unused_window: Duration::from_secs(90 * 86_400),
        }
    }
}

fn load_section(figment: &figment::Figment) -> Result<Section, SectionError> {
    let c: AccessAdvisorConfig = figment.extract()?;
    let common = CollectorConfig {
        enabled: c.enabled,
        interval: c.interval,
        timeout: c.timeout,
    };
    crate::config::check_common(&common)?;
    if !(Duration::from_secs(1)..c.timeout).contains(&c.job_wait) {
        return Err(SectionError::Invalid(
            "job_wait".into(),
            "must be at least 1s and shorter than collectors.access_advisor.timeout".into(),
        ));
    }
    // Up to ten years: past AWS's tracking period (400 days) only never-used services count.
    if !(Duration::from_secs(86_400)..=Duration::from_secs(3650 * 86_400))
        .contains(&c.unused_window)
    {
        return Err(SectionError::Invalid(
            "unused_window".into(),
            "must be between 1d and 3650d".into(),
        ));
    }
    Ok(Section::new(common, c))
}

macro_rules! refreshed {
    () => {
        "from IAM Access Advisor (GetServiceLastAccessedDetails), refreshed in the background every {every}; AWS's own data lags by up to about 4 hours"
    };
}

const LAST_ACCESSED: Family<'static> = Family::gauge(
    "iam_service_last_accessed_timestamp",
    concat!(
        "Unix time the user or role last authenticated to the service; only services used within AWS's tracking period (400 days). Values come ",
        refreshed!(),
        "."
    ),
    SECONDS,
);
const FAILED_PRINCIPALS: Family<'static> = Family::gauge(
    "iam_access_advisor_failed_principals",
    "Users and roles whose Access Advisor job failed in the run behind the data in use; their series are from the last run that had them. Refreshed every {every}.",
    None,
);
// Live: "not used within the window" moves with the clock, not with the data.
const UNUSED_SERVICES: Family<'static> = Family::gauge(
    "iam_principal_unused_services",
    concat!(
        "Services the user's or role's policies allow that it has not used within collectors.access_advisor.unused_window (never used included), computed at scrape time; services come ",
        refreshed!(),
        "."
    ),
    None,
);

const FAMILIES: &[Family<'static>] = &[LAST_ACCESSED, FAILED_PRINCIPALS];
const LIVE_FAMILIES: &[Family<'static>] = &[UNUSED_SERVICES];

fn principal_labels<'a>(account: &'a str, p: &'a PrincipalRecord) -> [(&'static str, &'a str); 3] {
    [
        ("account_id", account),
        ("principal_type", p.kind.as_str()),
        ("principal", p.name.as_str()),
    ]
}

fn encode(account: &str, data: &Data, r: &mut Recorder<'_>) {
    let Some(d) = data.downcast_ref::<AccessAdvisorData>() else {
        return;
    };
    r.series(
        &LAST_ACCESSED,
        d.principals.iter().flat_map(|p| {
            let [acc, kind, name] = principal_labels(account, p);
            p.used
                .iter()
                .map(move |(service, t)| ([acc, kind, name, ("service", service.as_str())], *t))
        }),
    );
    r.series(
        &FAILED_PRINCIPALS,
        std::iter::once(([("account_id", account)], d.failed as f64)),
    );
}

fn encode_live(account: &str, data: &Data, now: f64, r: &mut Recorder<'_>) {
    let Some(d) = data.downcast_ref::<AccessAdvisorData>() else {
        return;
    };
    let cutoff = now - d.unused_window.as_secs_f64();
    r.series(
        &UNUSED_SERVICES,
        d.principals
            .iter()
            .map(|p| (principal_labels(account, p), p.unused_since(cutoff) as f64)),
    );
}

/// The path under which AWS creates service-linked roles.
const SERVICE_LINKED_PATH: &str = "/aws-service-role/";

/// One principal's services, from the last job of it that completed.
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipalRecord {
    pub kind: PrincipalKind,
    pub name: String,
    /// Services used within AWS's tracking period: (namespace, Unix time of the last
    /// authentication), sorted by namespace.
    pub used: Vec<(String, f64)>,
    /// Granted services not used within AWS's tracking period.
    pub never_used: usize,
    /// The times of `used`, ascending: counting those before a cutoff at scrape time is a
    /// binary search, not a pass over every service.
    used_times: Vec<f64>,
}

impl PrincipalRecord {
    pub fn new(kind: PrincipalKind, name: String, services: Vec<ServiceAccess>) -> Self {
        // One entry per namespace (the latest use), should AWS ever list one twice.
        let mut by_namespace: HashMap<String, Option<f64>> = HashMap::new();
        for s in services {
            let t = s.last_authenticated.map(unix);
            let entry = by_namespace.entry(s.namespace).or_insert(t);
            *entry = match (*entry, t) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        let never_used = by_namespace.values().filter(|t| t.is_none()).count();
        let mut used: Vec<(String, f64)> = by_namespace
            .into_iter()
            .filter_map(|(ns, t)| Some((ns, t?)))
            .collect();
        used.sort_by(|a, b| a.0.cmp(&b.0));
        let mut used_times: Vec<f64> = used.iter().map(|(_, t)| *t).collect();
        used_times.sort_by(f64::total_cmp);
        Self {
            kind,
            name,
            used,
            never_used,
            used_times,
        }
    }

    /// Granted services not used since `cutoff` (Unix time), never-used ones included.
    pub fn unused_since(&self, cutoff: f64) -> usize {
        self.never_used + self.used_times.partition_point(|t| *t < cutoff)
    }
}

#[derive(Debug, Clone, Default)]
pub struct AccessAdvisorData {
    /// Principals with data, sorted by type and name. A principal whose job failed in this run
    /// has its last good record here, or is absent if it never had one.
    pub principals: Vec<Arc<PrincipalRecord>>,
    /// Principals whose job failed in this run.
    pub failed: usize,
    /// `collectors.access_advisor.unused_window`, which the unused-services count is judged by.
    pub unused_window: Duration,
}

/// Each principal's last good record, by (type, name).
pub type PrincipalCache = HashMap<(PrincipalKind, String), Arc<PrincipalRecord>>;

/// The settings one run needs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_concurrency: usize,
    pub job_wait: Duration,
    pub unused_window: Duration,
}

pub struct AccessAdvisorCollector {
    client: IamClient,
    settings: Settings,
    last: Mutex<PrincipalCache>,
}

impl AccessAdvisorCollector {
    pub fn new(session: &Arc<AccountSession>, cfg: &AccessAdvisorConfig) -> Self {
        Self {
            client: session.iam(),
            settings: Settings {
                max_concurrency: session.max_concurrency(),
                job_wait: cfg.job_wait,
                unused_window: cfg.unused_window,
            },
            last: Mutex::new(HashMap::new()),
        }
    }
}

/// One principal's services, with the principal.
async fn principal_services<A: AccessAdvisorApi>(
    api: A,
    p: Principal,
    job_wait: Duration,
) -> (Principal, Result<Option<Vec<ServiceAccess>>, Error>) {
    let r = services_of(&api, &p.arn, job_wait).await;
    (p, r)
}

/// Every user's and role's services, `max_concurrency` principals at a time.
pub async fn collect(
    api: &impl AccessAdvisorApi,
    last: &Mutex<PrincipalCache>,
    settings: Settings,
) -> Result<AccessAdvisorData, Error> {
    let principals: Vec<Principal> = api
        .principals()
        .await?
        .into_iter()
        .filter(|p| !(p.kind == PrincipalKind::Role && p.path.starts_with(SERVICE_LINKED_PATH)))
        .collect();
    // Futures made as needed, `max_concurrency` at a time, not one per principal up front.
    let mut results = stream::iter(principals)
        .map(|p| principal_services(api.clone(), p, settings.job_wait))
        .buffer_unordered(settings.max_concurrency);
    let previous = last.lock().map(|l| l.clone()).unwrap_or_default();
    let mut fresh = PrincipalCache::new();
    let mut succeeded = 0usize;
    let mut errors: Vec<(Principal, Error)> = Vec::new();
    while let Some((p, result)) = results.next().await {
        let key = (p.kind, p.name.clone());
        match result {
            Ok(Some(services)) => {
                succeeded += 1;
                let record = PrincipalRecord::new(p.kind, p.name, services);
                fresh.insert(key, Arc::new(record));
            }
            // Deleted since the listing: nothing to report, nothing failed.
            Ok(None) => succeeded += 1,
            Err(e) => {
                if let Some(record) = previous.get(&key) {
                    fresh.insert(key, record.clone());
                }
                errors.push((p, e));
            }
        }
    }
    // When no principal answered, the run fails and its failure line says why (once).
    if succeeded == 0 && !errors.is_empty() {
        let (_, e) = errors.swap_remove(0);
        return Err(e);
    }
    for (p, e) in &errors {
        tracing::warn!(principal_type = p.kind.as_str(), principal = %p.name, error.kind = e.kind(), error = %e, "Access Advisor job failed; keeping the principal's last good data");
    }
    let failed = errors.len();
    let mut principals: Vec<Arc<PrincipalRecord>> = fresh.values().cloned().collect();
    principals.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    if let Ok(mut l) = last.lock() {
        *l = fresh;
    }
    Ok(AccessAdvisorData {
        principals,
        failed,
        unused_window: settings.unused_window,
    })
}

/// One principal's job: generated, polled with backoff (0.5 s doubling, at most 10 s) for at
/// most `wait`, then read page by page. None when the principal no longer exists.
pub async fn services_of(
    api: &impl AccessAdvisorApi,
    arn: &str,
    wait: Duration,
) -> Result<Option<Vec<ServiceAccess>>, Error> {
    let job = match api.generate_job(arn).await {
        Ok(job) => job,
        Err(e) if e.aws_code() == Some("NoSuchEntity") => return Ok(None),
        Err(e) => return Err(e),
    };
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(500);
    let mut marker: Option<String> = None;
    let mut services = Vec::new();
    loop {
        match api.job_page(&job, marker.as_deref()).await? {
            JobPage::Completed {
                services: page,
                next,
            } => {
                services.extend(page);
                match next {
                    // A marker handed back again would page forever.
                    Some(next) if marker.as_deref() == Some(next.as_str()) => {
                        return Err(repeated_marker("GetServiceLastAccessedDetails"));
                    }
                    Some(next) => marker = Some(next),
                    None => return Ok(Some(services)),
                }
            }
            JobPage::Failed { code, message } => {
                return Err(Error::AccessAdvisorJobFailed {
                    principal: arn.to_owned(),
                    code,
                    message,
                });
            }
            // Only the first page can be in progress: a report once done stays done.
            JobPage::InProgress if marker.is_none() => {
                if Instant::now() + delay > deadline {
                    return Err(Error::AccessAdvisorJobTimeout(arn.to_owned(), wait));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            JobPage::InProgress => {
                return Err(Error::Aws {
                    service: "iam",
                    operation: "GetServiceLastAccessedDetails",
                    code: "response_error".into(),
                    message: "IN_PROGRESS after a completed page".into(),
                });
            }
        }
    }
}

impl Collector for AccessAdvisorCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn collect(&self) -> BoxFuture<'_, Result<Arc<Data>, Error>> {
        Box::pin(async move {
            let data: Arc<Data> = Arc::new(collect(&self.client, &self.last, self.settings).await?);
            Ok(data)
        })
    }
}

/// An answer whose next-page marker is the one just asked with.
fn repeated_marker(operation: &'static str) -> Error {
    Error::Aws {
        service: "iam",
        operation,
        code: "repeated_marker".into(),
        message: "the next page's marker is the one just asked for".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use std::collections::VecDeque;

    fn at(iso: &str) -> Option<DateTime<Utc>> {
        Some(iso.parse().unwrap())
    }

    fn service(ns: &str, last: Option<DateTime<Utc>>) -> ServiceAccess {
        ServiceAccess {
            namespace: ns.into(),
            last_authenticated: last,
        }
    }

    fn principal(kind: PrincipalKind, name: &str, path: &str) -> Principal {
        let t = kind.as_str();
        Principal {
            kind,
            name: name.into(),
            arn: format!("arn:aws:iam::123456789012:{t}{path}{name}"),
            path: path.into(),
        }
    }

    fn aws(operation: &'static str, code: &str) -> Error {
        Error::Aws {
            service: "iam",
            operation,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn unused_counts_never_used_and_used_before_the_cutoff() {
        let r = PrincipalRecord::new(
            PrincipalKind::User,
            "alice".into(),
            vec![
                service("s3", at("2026-06-01T00:00:00Z")),
                service("iam", at("2026-11-01T00:00:00Z")),
                service("sqs", None),
                service("ec2", at("2025-12-01T00:00:00Z")),
                service("kms", None),
            ],
        );
        let used: Vec<&str> = r.used.iter().map(|(ns, _)| ns.as_str()).collect();
        assert_eq!(used, ["ec2", "iam", "s3"], "sorted by namespace");
        assert_eq!(r.never_used, 2);
        let t = |iso: &str| unix(iso.parse().unwrap());
        assert_eq!(r.unused_since(t("2025-01-01T00:00:00Z")), 2);
        assert_eq!(r.unused_since(t("2026-01-01T00:00:00Z")), 3);
        // A use exactly at the cutoff is within the window.
        assert_eq!(r.unused_since(t("2026-06-01T00:00:00Z")), 3);
        assert_eq!(r.unused_since(t("2026-06-01T00:00:01Z")), 4);
        assert_eq!(r.unused_since(t("2027-01-01T00:00:00Z")), 5);
    }

    #[test]
    fn a_namespace_listed_twice_counts_once_with_its_latest_use() {
        let r = PrincipalRecord::new(
            PrincipalKind::Role,
            "r".into(),
            vec![
                service("s3", None),
                service("s3", at("2026-01-01T00:00:00Z")),
                service("s3", at("2025-01-01T00:00:00Z")),
            ],
        );
        assert_eq!(r.used.len(), 1);
        assert_eq!(r.used[0].1, unix("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(r.never_used, 0);
    }

    #[test]
    fn families_are_encoded_and_unused_moves_with_the_clock() {
        use crate::config::Config;
        use crate::metrics::{Exporter, Format};
        use crate::snapshot::{Outcome, SnapshotStore};

        let data = AccessAdvisorData {
            principals: vec![
                Arc::new(PrincipalRecord::new(
                    PrincipalKind::User,
                    "alice".into(),
                    vec![
                        service("s3", at("2026-11-01T00:00:00Z")),
                        service("sqs", None),
                    ],
                )),
                Arc::new(PrincipalRecord::new(
                    PrincipalKind::Role,
                    "deploy".into(),
                    vec![service("ecr", at("2026-06-01T12:00:00Z"))],
                )),
            ],
            failed: 1,
            unused_window: Duration::from_secs(90 * 86_400),
        };
        let account = crate::snapshot::AccountInfo {
            id: "123456789012".into(),
            name: "prod".into(),
            ou: String::new(),
            owner: String::new(),
        };
        let store = Arc::new(SnapshotStore::new(vec![account], 1));
        let outcome = Outcome::Success(SPEC.record("123456789012", Arc::new(data)));
        store.record("123456789012", NAME, outcome, 1.0, 0.0);
        // 2026-11-24: the window starts 2026-08-26. 2027-02-15: it starts 2026-11-17.
        fn early() -> f64 {
            1_795_478_400.0
        }
        fn late() -> f64 {
            1_802_649_600.0
        }
        let render = |clock: fn() -> f64| {
            let e = Exporter::new(
                store.clone(),
                Arc::default(),
                &Config::default(),
                "v",
                "r",
                clock,
            );
            let text = e.render(Format::Text);
            let ours = [
                "infraaudit_iam_service",
                "infraaudit_iam_access_advisor",
                "infraaudit_iam_principal",
            ];
            text.lines()
                .filter(|l| ours.iter().any(|p| l.starts_with(p)))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let a = "account_id=\"123456789012\"";
        let alice = format!("{a},principal_type=\"user\",principal=\"alice\"");
        let deploy = format!("{a},principal_type=\"role\",principal=\"deploy\"");
        let last = "infraaudit_iam_service_last_accessed_timestamp_seconds";
        let unused = "infraaudit_iam_principal_unused_services";
        assert_eq!(
            render(early),
            [
                format!("{last}{{{alice},service=\"s3\"}} 1793491200.0"),
                format!("{last}{{{deploy},service=\"ecr\"}} 1780315200.0"),
                format!("infraaudit_iam_access_advisor_failed_principals{{{a}}} 1.0"),
                format!("{unused}{{{alice}}} 1.0"),
                format!("{unused}{{{deploy}}} 1.0"),
            ]
        );
        let later = render(late);
        assert_eq!(later[3], format!("{unused}{{{alice}}} 2.0"));
        assert_eq!(later[4], format!("{unused}{{{deploy}}} 1.0"));
    }

    /// Per principal ARN: a job id, or an error code for Generate. Per job id: the answers to
    /// play back in order (the last one repeats). Calls are recorded.
    #[derive(Clone, Default)]
    struct Fake {
        inner: Arc<FakeInner>,
    }

    /// (job id, marker) -> the answers still to give.
    type Pages = HashMap<(String, Option<String>), VecDeque<JobPage>>;

    #[derive(Default)]
    struct FakeInner {
        principals: Mutex<Vec<Principal>>,
        jobs: Mutex<HashMap<String, Result<String, &'static str>>>,
        pages: Mutex<Pages>,
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn add(&self, p: Principal, job: Result<&str, &'static str>) {
            self.inner
                .jobs
                .lock()
                .unwrap()
                .insert(p.arn.clone(), job.map(str::to_owned));
            self.inner.principals.lock().unwrap().push(p);
        }

        fn answer(&self, job: &str, marker: Option<&str>, pages: Vec<JobPage>) {
            self.inner
                .pages
                .lock()
                .unwrap()
                .insert((job.to_owned(), marker.map(str::to_owned)), pages.into());
        }

        fn calls(&self) -> Vec<String> {
            let mut c = std::mem::take(&mut *self.inner.calls.lock().unwrap());
            c.sort();
            c
        }
    }

    impl AccessAdvisorApi for Fake {
        async fn principals(&self) -> Result<Vec<Principal>, Error> {
            Ok(self.inner.principals.lock().unwrap().clone())
        }

        async fn generate_job(&self, arn: &str) -> Result<String, Error> {
            self.inner
                .calls
                .lock()
                .unwrap()
                .push(format!("generate {arn}"));
            match self.inner.jobs.lock().unwrap().get(arn) {
                Some(Ok(job)) => Ok(job.clone()),
                Some(Err(code)) => Err(aws("GenerateServiceLastAccessedDetails", code)),
                None => Err(aws("GenerateServiceLastAccessedDetails", "NoSuchEntity")),
            }
        }

        async fn job_page(&self, job_id: &str, marker: Option<&str>) -> Result<JobPage, Error> {
            let m = marker.unwrap_or("-");
            self.inner
                .calls
                .lock()
                .unwrap()
                .push(format!("get {job_id} {m}"));
            let mut pages = self.inner.pages.lock().unwrap();
            let queue = pages
                .get_mut(&(job_id.to_owned(), marker.map(str::to_owned)))
                .unwrap();
            Ok(if queue.len() > 1 {
                queue.pop_front().unwrap()
            } else {
                queue.front().unwrap().clone()
            })
        }
    }

    fn completed(services: Vec<ServiceAccess>, next: Option<&str>) -> JobPage {
        JobPage::Completed {
            services,
            next: next.map(str::to_owned),
        }
    }

    fn failed() -> JobPage {
        JobPage::Failed {
            code: "InternalError".into(),
            message: "job failed".into(),
        }
    }

    const SETTINGS: Settings = Settings {
        max_concurrency: 3,
        job_wait: Duration::from_secs(300),
        unused_window: Duration::from_secs(90 * 86_400),
    };

    /// (type, name, used namespaces) of each record.
    fn seen(data: &AccessAdvisorData) -> Vec<(&str, &str, Vec<&str>)> {
        data.principals
            .iter()
            .map(|p| {
                let used = p.used.iter().map(|(ns, _)| ns.as_str()).collect();
                (p.kind.as_str(), p.name.as_str(), used)
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_are_polled_paged_and_service_linked_roles_skipped() {
        let api = Fake::default();
        api.add(principal(PrincipalKind::User, "alice", "/"), Ok("j-alice"));
        api.add(
            principal(PrincipalKind::Role, "deploy", "/ci/"),
            Ok("j-deploy"),
        );
        api.add(
            principal(
                PrincipalKind::Role,
                "AWSServiceRoleForSupport",
                "/aws-service-role/support.amazonaws.com/",
            ),
            Ok("j-slr"),
        );
        api.answer(
            "j-alice",
            None,
            vec![
                JobPage::InProgress,
                JobPage::InProgress,
                completed(vec![service("iam", at("2026-11-01T00:00:00Z"))], Some("p2")),
            ],
        );
        api.answer(
            "j-alice",
            Some("p2"),
            vec![completed(vec![service("sqs", None)], None)],
        );
        api.answer(
            "j-deploy",
            None,
            vec![completed(
                vec![service("s3", at("2026-10-01T00:00:00Z"))],
                None,
            )],
        );
        let started = Instant::now();
        let data = collect(&api, &Mutex::default(), SETTINGS).await.unwrap();
        assert_eq!(
            seen(&data),
            [
                ("user", "alice", vec!["iam"]),
                ("role", "deploy", vec!["s3"])
            ]
        );
        assert_eq!(data.principals[0].never_used, 1);
        assert_eq!(data.failed, 0);
        assert_eq!(
            api.calls(),
            [
                "generate arn:aws:iam::123456789012:role/ci/deploy",
                "generate arn:aws:iam::123456789012:user/alice",
                "get j-alice -",
                "get j-alice -",
                "get j-alice -",
                "get j-alice p2",
                "get j-deploy -",
            ]
        );
        // Two waits: 0.5 s and 1 s.
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_job_keeps_that_principals_last_data_and_is_counted() {
        let api = Fake::default();
        api.add(principal(PrincipalKind::User, "alice", "/"), Ok("j-alice"));
        api.add(principal(PrincipalKind::User, "bob", "/"), Ok("j-bob"));
        api.add(principal(PrincipalKind::User, "carol", "/"), Ok("j-carol"));
        let used = |ns: &str| vec![service(ns, at("2026-11-01T00:00:00Z"))];
        api.answer("j-alice", None, vec![completed(used("s3"), None)]);
        api.answer("j-bob", None, vec![completed(used("ec2"), None)]);
        api.answer("j-carol", None, vec![failed()]);
        let last = Mutex::default();
        let data = collect(&api, &last, SETTINGS).await.unwrap();
        // carol never had data: absent, and counted.
        assert_eq!(
            seen(&data),
            [("user", "alice", vec!["s3"]), ("user", "bob", vec!["ec2"])]
        );
        assert_eq!(data.failed, 1);

        api.answer("j-alice", None, vec![completed(used("iam"), None)]);
        api.answer("j-bob", None, vec![failed()]);
        api.answer("j-carol", None, vec![completed(used("sts"), None)]);
        let data = collect(&api, &last, SETTINGS).await.unwrap();
        assert_eq!(
            seen(&data),
            [
                ("user", "alice", vec!["iam"]),
                ("user", "bob", vec!["ec2"]),
                ("user", "carol", vec!["sts"]),
            ]
        );
        assert_eq!(data.failed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_still_in_progress_after_job_wait_fails_that_principal() {
        let api = Fake::default();
        api.add(principal(PrincipalKind::User, "slow", "/"), Ok("j-slow"));
        api.add(principal(PrincipalKind::User, "quick", "/"), Ok("j-quick"));
        api.answer("j-slow", None, vec![JobPage::InProgress]);
        api.answer("j-quick", None, vec![completed(vec![], None)]);
        let settings = Settings {
            job_wait: Duration::from_secs(20),
            ..SETTINGS
        };
        let data = collect(&api, &Mutex::default(), settings).await.unwrap();
        assert_eq!(data.failed, 1);
        assert_eq!(seen(&data), [("user", "quick", vec![])]);
        // 0.5 + 1 + 2 + 4 + 8 s waited; 10 s more would pass the 20 s.
        let polls = api
            .calls()
            .iter()
            .filter(|c| c.starts_with("get j-slow"))
            .count();
        assert_eq!(polls, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn every_principal_failing_fails_the_run_and_keeps_the_cache() {
        let api = Fake::default();
        api.add(principal(PrincipalKind::User, "alice", "/"), Ok("j-alice"));
        api.add(principal(PrincipalKind::Role, "r", "/"), Ok("j-r"));
        api.answer(
            "j-alice",
            None,
            vec![completed(vec![service("s3", None)], None)],
        );
        api.answer("j-r", None, vec![completed(vec![], None)]);
        let last = Mutex::default();
        collect(&api, &last, SETTINGS).await.unwrap();
        let before = last.lock().unwrap().clone();

        api.answer("j-alice", None, vec![failed()]);
        api.answer("j-r", None, vec![failed()]);
        let err = collect(&api, &last, SETTINGS).await.unwrap_err();
        assert_eq!(err.kind(), "access_advisor_job_failed");
        assert_eq!(*last.lock().unwrap(), before);

        // Denied outright: the run fails with AWS's code.
        let denied = Fake::default();
        denied.add(
            principal(PrincipalKind::User, "alice", "/"),
            Err("AccessDenied"),
        );
        let err = collect(&denied, &Mutex::default(), SETTINGS)
            .await
            .unwrap_err();
        assert_eq!(err.aws_code(), Some("AccessDenied"));
    }

    #[tokio::test(start_paused = true)]
    async fn deleted_principals_are_left_out_and_no_principals_is_no_failure() {
        let api = Fake::default();
        // Listed, but gone by the time its job is asked for.
        api.add(
            principal(PrincipalKind::User, "gone", "/"),
            Err("NoSuchEntity"),
        );
        let data = collect(&api, &Mutex::default(), SETTINGS).await.unwrap();
        assert!(data.principals.is_empty());
        assert_eq!(data.failed, 0);

        let empty = Fake::default();
        let data = collect(&empty, &Mutex::default(), SETTINGS).await.unwrap();
        assert!(data.principals.is_empty());
    }
}
