//! The JSON API (off unless `[api] enabled = true`): old access keys from the snapshot or live
//! from IAM, audits on demand, and its OpenAPI document. Every route but `/openapi.json` needs
//! `Authorization: Bearer <token>`, compared in constant time. Requests are parsed into typed
//! structs by serde (src/api/request.rs).

mod request;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use aws_config::SdkConfig;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{StreamExt, stream};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::accounts::Active;
use crate::audit;
use crate::aws::AccountSession;
use crate::aws::counters::ApiMetrics;
use crate::checks::{self, Owners};
use crate::collector::iam::{self, IamData};
use crate::config::{Account, Config, Secret};
use crate::snapshot::{AccountInfo, SnapshotStore};
use crate::time::unix_now;
use request::{OldKeys, Refusal, StartAudit};

const OPENAPI: &str = include_str!("openapi.json");

/// The IAM actions of the live endpoint, beyond the collectors': `infraaudit policy` adds them
/// when the API is enabled.
pub const PERMISSIONS: &[&str] = &["iam:GetAccessKeyLastUsed", "iam:ListUsers"];

/// Live listings at once: each fans out to every user of an account, sharing the account's
/// concurrency limit with the collectors.
const LIVE_AT_ONCE: usize = 2;
/// A live listing still going after this long is abandoned (504).
const LIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What the API answers; the server (src/http.rs) sends it.
type Reply = Response<Full<Bytes>>;

/// The paths the API answers.
pub fn owns(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/api/") || path == "/openapi.json"
}

pub struct Api {
    /// SHA-256 of each token: comparing digests takes the same time whatever the lengths.
    token_digests: Vec<[u8; 32]>,
    config: Arc<Config>,
    /// The audited accounts' sessions (shared with the collectors) and scheduler jobs (which
    /// audits run), as the account set is now.
    active: Arc<ArcSwap<Active>>,
    live: Arc<Semaphore>,
    /// For ad hoc accounts.
    base: SdkConfig,
    audits: Mutex<VecDeque<(String, Arc<Mutex<AuditStatus>>)>>,
    running: Arc<Semaphore>,
}

#[derive(Debug, Clone, Serialize)]
struct AuditStatus {
    status: &'static str,
    account_id: String,
    started_at: String,
    finished_at: Option<String>,
    results: Vec<AuditResult>,
    /// Why the audit failed, or which collectors did (their results are missing).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct AuditResult {
    check: &'static str,
    /// The CIS control(s), empty when the check is not one.
    cis: &'static str,
    severity: crate::collector::Severity,
    resource: String,
    status: &'static str,
    details: String,
    /// The resource's owner, else the account's; null when neither is known.
    owner: crate::collector::Owner,
}

/// An error answer: the status and the message for `{"error": ...}`.
struct Fail(StatusCode, String);

fn fail(status: StatusCode, message: impl Into<String>) -> Fail {
    Fail(status, message.into())
}

impl From<Refusal> for Fail {
    fn from(r: Refusal) -> Self {
        Fail(r.status, r.message)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now_rfc3339() -> String {
    rfc3339(Utc::now())
}

impl Api {
    pub fn new(
        tokens: Vec<Secret>,
        config: Arc<Config>,
        active: Arc<ArcSwap<Active>>,
        base: SdkConfig,
    ) -> Self {
        Self {
            token_digests: tokens.iter().map(|t| digest(t.expose())).collect(),
            active,
            live: Arc::new(Semaphore::new(LIVE_AT_ONCE)),
            running: Arc::new(Semaphore::new(config.api.max_concurrent_audits)),
            config,
            base,
            audits: Mutex::new(VecDeque::new()),
        }
    }

    /// Answers `req` from `store` (the snapshot that `/metrics` serves, which audits of
    /// configured accounts refresh); a body it leaves unread is the caller's to drain.
    pub async fn handle(
        self: &Arc<Self>,
        store: &Arc<SnapshotStore>,
        req: &mut Request<Incoming>,
    ) -> Reply {
        match self.route(store, req).await {
            Ok((status, body)) => json_response(status, &body),
            Err(Fail(status, message)) => {
                let mut r = error(status, &message);
                if status == StatusCode::UNAUTHORIZED {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                if status == StatusCode::METHOD_NOT_ALLOWED {
                    let allow = if message.contains("POST") {
                        "POST"
                    } else {
                        "GET, HEAD"
                    };
                    r.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static(allow));
                }
                r
            }
        }
    }

    async fn route(
        self: &Arc<Self>,
        store: &Arc<SnapshotStore>,
        req: &mut Request<Incoming>,
    ) -> Result<(StatusCode, Value), Fail> {
        let path = req.uri().path().to_owned();
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        let post = req.method() == Method::POST;
        let only = |ok: bool, method: &str| {
            if ok {
                Ok(())
            } else {
                Err(fail(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("this endpoint takes {method}"),
                ))
            }
        };
        if path == "/openapi.json" {
            only(get, "GET")?;
            let doc: Value = serde_json::from_str(OPENAPI)
                .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            return Ok((StatusCode::OK, doc));
        }
        let status_id = path.strip_prefix("/api/audit/status/").map(str::to_owned);
        match (path.as_str(), &status_id) {
            ("/v1/iam/old-access-keys/credential-report", _) | ("/api/audit/start", _) => {
                only(post, "POST")?
            }
            // Not HEAD: a live listing is too costly to run for headers only.
            ("/v1/iam/old-access-keys/list-users", _) => only(req.method() == Method::GET, "GET")?,
            (_, Some(_)) => only(get, "GET")?,
            _ => return Err(fail(StatusCode::NOT_FOUND, "no such endpoint")),
        }
        self.authorize(req)?;
        match (path.as_str(), status_id) {
            ("/v1/iam/old-access-keys/credential-report", _) => {
                let body = self.body(req).await?;
                self.report_keys(store, body)
            }
            ("/v1/iam/old-access-keys/list-users", _) => {
                let query = request::from_query(req.uri().query().unwrap_or_default())?;
                self.live(store, query).await
            }
            ("/api/audit/start", _) => {
                let body = self.body(req).await?;
                self.start(store, body)
            }
            (_, Some(id)) => self.status(&id),
            _ => Err(fail(StatusCode::NOT_FOUND, "no such endpoint")),
        }
    }

    fn authorize(&self, req: &Request<Incoming>) -> Result<(), Fail> {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .unwrap_or_default();
        // Digests of equal length, every token compared: timing tells nothing of any token.
        let presented_digest = digest(presented);
        let ok = self.token_digests.iter().fold(0u8, |acc, d| {
            acc | u8::from(bool::from(d.ct_eq(&presented_digest)))
        });
        if presented.is_empty() || ok == 0 {
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer <token>` header is required",
            ));
        }
        Ok(())
    }

    /// The body, within the size limit, parsed into `T`.
    async fn body<T: DeserializeOwned>(&self, req: &mut Request<Incoming>) -> Result<T, Fail> {
        let limit = self.config.api.max_body_bytes;
        let too_large = || {
            fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {limit} bytes"),
            )
        };
        // Checked before the body is first read, which is when hyper sends `100 Continue`: a
        // client that announced too much gets 413 without sending it.
        if req.body().size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(too_large());
        }
        let bytes = Limited::new(req.body_mut(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    fail(StatusCode::BAD_REQUEST, "the body could not be read")
                }
            })?
            .to_bytes();
        Ok(request::from_body(&bytes)?)
    }

    /// POST /v1/iam/old-access-keys/credential-report: keys older than `hours`, from the
    /// credential-report data in the snapshot.
    fn report_keys(
        &self,
        store: &SnapshotStore,
        OldKeys { hours, account_id }: OldKeys,
    ) -> Result<(StatusCode, Value), Fail> {
        let accounts = self.accounts(account_id.as_deref())?;
        let snap = store.load();
        let now = Utc::now();
        let mut generated = Map::new();
        let mut keys = Vec::new();
        for id in &accounts {
            // An empty list would read as "no old keys": say that the data is missing.
            let Some(iam) = snap.data::<IamData>(id, iam::NAME) else {
                return Err(fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "account {id}: no credential report collected yet; see infraaudit_collector_success"
                    ),
                ));
            };
            if let Some(t) = iam.report_generated_at {
                generated.insert(id.clone(), Value::String(rfc3339(t)));
            }
            let owners = Owners::of(&snap, id);
            for k in &iam.keys {
                let age = now - k.created;
                if age.num_seconds() > hours * 3600 {
                    keys.push(old_key(
                        OldKey {
                            account: id,
                            user: &k.user,
                            key_id: &k.access_key_id,
                            created: k.created,
                            active: k.active,
                            last_used: k.last_used,
                            owner: owners.user(&k.user),
                        },
                        now,
                    ));
                }
            }
        }
        Ok((
            StatusCode::OK,
            json!({ "report_generated_at": generated, "old_access_keys": keys }),
        ))
    }

    /// GET /v1/iam/old-access-keys/list-users: the same answer, live from IAM.
    async fn live(
        &self,
        store: &SnapshotStore,
        OldKeys { hours, account_id }: OldKeys,
    ) -> Result<(StatusCode, Value), Fail> {
        let accounts = self.accounts(account_id.as_deref())?;
        let _turn = self.live.clone().try_acquire_owned().map_err(|_| {
            fail(
                StatusCode::TOO_MANY_REQUESTS,
                "too many live listings are running; retry later",
            )
        })?;
        let now = Utc::now();
        let mut generated = Map::new();
        let mut keys = Vec::new();
        let active = self.active.load();
        for id in accounts {
            let Some(session) = active.sessions.get(&id) else {
                continue;
            };
            // Owners from the snapshot: the users' tags are read by the background runs.
            let owners = Owners::of(&store.load(), &id);
            let found = tokio::time::timeout(LIVE_TIMEOUT, live_keys(session, hours, now, &owners))
                .await
                .map_err(|_| {
                    fail(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!("IAM of account {id} did not answer within {LIVE_TIMEOUT:?}"),
                    )
                })?
                // Only the code: AWS's full message can carry endpoints and request details.
                .map_err(|e| {
                    fail(
                        StatusCode::BAD_GATEWAY,
                        format!(
                            "IAM of account {id} failed: {}",
                            e.aws_code().unwrap_or(e.kind())
                        ),
                    )
                })?;
            generated.insert(id.clone(), Value::String(rfc3339(now)));
            keys.extend(found);
        }
        Ok((
            StatusCode::OK,
            json!({ "report_generated_at": generated, "old_access_keys": keys }),
        ))
    }

    /// The configured accounts, or the one asked for (404 when it is not configured).
    fn accounts(&self, account: Option<&str>) -> Result<Vec<String>, Fail> {
        let active = self.active.load();
        match account {
            Some(id) if active.sessions.contains_key(id) => Ok(vec![id.to_owned()]),
            Some(id) => Err(fail(
                StatusCode::NOT_FOUND,
                format!("account_id: {id} is not configured"),
            )),
            None => {
                let mut ids: Vec<String> = active.sessions.keys().cloned().collect();
                ids.sort();
                Ok(ids)
            }
        }
    }

    /// POST /api/audit/start: runs the collectors the checks need, for one account, now.
    fn start(
        self: &Arc<Self>,
        store: &Arc<SnapshotStore>,
        body: StartAudit,
    ) -> Result<(StatusCode, Value), Fail> {
        let StartAudit {
            account_id,
            checks,
            role_name,
            external_id,
        } = body;
        let active = self.active.load_full();
        let configured = active.sessions.get(&account_id).cloned();
        let configured_account = configured.is_some();
        let session = match configured {
            // The configuration wins: a configured account's role and ExternalId are used.
            Some(s) => s,
            None if !self.config.api.allow_adhoc_accounts => {
                return Err(fail(
                    StatusCode::FORBIDDEN,
                    format!(
                        "account_id: {account_id} is not configured, and ad hoc accounts are not allowed"
                    ),
                ));
            }
            None => Arc::new(self.adhoc_session(&account_id, role_name, external_id)?),
        };
        let permit = self.running.clone().try_acquire_owned().map_err(|_| {
            fail(
                StatusCode::TOO_MANY_REQUESTS,
                "too many audits are running; retry later",
            )
        })?;
        let audit_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let status = Arc::new(Mutex::new(AuditStatus {
            status: "running",
            account_id: account_id.clone(),
            started_at: now_rfc3339(),
            finished_at: None,
            results: Vec::new(),
            errors: Vec::new(),
        }));
        self.remember(&audit_id, status.clone());
        // Configured accounts refresh the shared snapshot; ad hoc ones have their own.
        let store = if configured_account {
            store.clone()
        } else {
            Arc::new(SnapshotStore::new(
                vec![AccountInfo {
                    id: account_id.clone(),
                    name: account_id.clone(),
                    ou: String::new(),
                    owner: String::new(),
                }],
                0,
            ))
        };
        let config = self.config.clone();
        let jobs = active.jobs.get(&account_id).cloned();
        tokio::spawn(async move {
            let _permit = permit;
            let owners = session.account.tagging.has_owner_keys();
            let collectors = audit::collectors_for(&checks, owners);
            let runs = session.account.collectors.clone();
            let mut failures = match &jobs {
                Some(jobs) => audit::run_jobs(jobs, &collectors, &store).await,
                None => audit::run_once(&config, &session, &collectors, &store).await,
            };
            // A run made only to learn the IAM users' owners does not fail the audit: those
            // findings then go to the account's owner.
            let feeding = audit::collectors_for(&checks, false);
            failures.retain(|(c, e)| {
                let feeds = feeding.contains(c);
                if !feeds {
                    tracing::warn!(account_id = %account_id, collector = c, error = %e, "run for the IAM users' owners failed; their findings go to the account's owner");
                }
                feeds
            });
            // A check whose collector does not run for the account has no verdict.
            if !checks.is_empty() {
                for missing in feeding.iter().filter(|c| !runs.contains(c)) {
                    failures.push((missing, crate::error::Error::Disabled));
                }
            }
            let snap = store.load();
            let results: Vec<AuditResult> =
                checks::findings(&snap, &account_id, unix_now(), &config.checks)
                    .into_iter()
                    .filter(|f| checks.is_empty() || checks.contains(&f.check))
                    .map(|f| AuditResult {
                        check: f.check.name(),
                        cis: f.check.cis(),
                        severity: f.check.severity(),
                        resource: f.resource,
                        status: if f.failed { "FAIL" } else { "PASS" },
                        details: f.details,
                        owner: f.owner,
                    })
                    .collect();
            if let Ok(mut s) = status.lock() {
                s.status = if failures.is_empty() {
                    "succeeded"
                } else {
                    "failed"
                };
                s.finished_at = Some(now_rfc3339());
                // The kind and AWS code only: full messages can carry request details.
                s.errors = failures
                    .iter()
                    .map(|(c, e)| format!("{c}: {}", e.aws_code().unwrap_or(e.kind())))
                    .collect();
                s.results = results;
            }
        });
        Ok((StatusCode::ACCEPTED, json!({ "audit_id": audit_id })))
    }

    /// A session for an account that is not configured, with the request's role (both fields
    /// were checked when the body was parsed).
    fn adhoc_session(
        &self,
        account_id: &str,
        role_name: Option<String>,
        external_id: Option<Secret>,
    ) -> Result<AccountSession, Fail> {
        let required = |field: &str| {
            fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{field}: required for an account that is not configured"),
            )
        };
        let role_name = role_name.ok_or_else(|| required("role_name"))?;
        let external_id = external_id.ok_or_else(|| required("external_id"))?;
        let account = Account {
            id: account_id.to_owned(),
            name: account_id.to_owned(),
            role_arn: Some(format!("arn:aws:iam::{account_id}:role/{role_name}")),
            external_id: Some(external_id),
            collectors: self.config.enabled_collectors(),
            regions: self.config.aws.regions.clone(),
            owner: String::new(),
            tagging: Arc::new(self.config.tagging()),
        };
        // Not counted in /metrics: account ids from requests would be unbounded label values.
        Ok(AccountSession::new(
            &self.base,
            &self.config.aws,
            account,
            Arc::new(ApiMetrics::default()),
        ))
    }

    /// Keeps the audit, dropping the oldest finished ones beyond the history size.
    fn remember(&self, id: &str, status: Arc<Mutex<AuditStatus>>) {
        if let Ok(mut audits) = self.audits.lock() {
            audits.push_back((id.to_owned(), status));
            while audits.len() > self.config.api.audit_history {
                let finished = audits
                    .iter()
                    .position(|(_, s)| s.lock().map(|s| s.status != "running").unwrap_or(true));
                match finished {
                    Some(i) => {
                        audits.remove(i);
                    }
                    None => break,
                }
            }
        }
    }

    /// GET /api/audit/status/{id}.
    fn status(&self, id: &str) -> Result<(StatusCode, Value), Fail> {
        let audits = self.audits.lock().map_err(|_| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit registry unavailable",
            )
        })?;
        let status = audits
            .iter()
            .find(|(a, _)| a == id)
            .and_then(|(_, s)| s.lock().ok().map(|s| s.clone()))
            .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("no audit {id}")))?;
        let body = serde_json::to_value(status)
            .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok((StatusCode::OK, body))
    }
}

/// One key of the old-keys answers.
struct OldKey<'a> {
    account: &'a str,
    user: &'a str,
    key_id: &'a str,
    created: DateTime<Utc>,
    active: bool,
    last_used: Option<DateTime<Utc>>,
    /// The user's owner, else the account's; empty when none.
    owner: &'a str,
}

fn old_key(k: OldKey<'_>, now: DateTime<Utc>) -> Value {
    json!({
        "account_id": k.account,
        "user_name": k.user,
        "access_key_id": k.key_id,
        "created_date": rfc3339(k.created),
        "age_hours": (now - k.created).num_hours(),
        "active": k.active,
        "last_used_date": k.last_used.map(rfc3339),
        "owner": (!k.owner.is_empty()).then_some(k.owner),
    })
}

/// ListUsers, then each user's keys and their last use, within the account's concurrency.
async fn live_keys(
    session: &AccountSession,
    hours: i64,
    now: DateTime<Utc>,
    owners: &Owners,
) -> Result<Vec<Value>, crate::error::Error> {
    session.verify_identity().await?;
    let iam = session.iam();
    let users = iam.list_users().await?;
    let listed: Vec<_> = stream::iter(users)
        .map(|user| {
            let iam = iam.clone();
            async move {
                match iam.list_access_keys(&user).await {
                    Ok(keys) => Ok((user, keys)),
                    // Deleted since ListUsers: no keys.
                    Err(e) if e.aws_code() == Some("NoSuchEntity") => Ok((user, Vec::new())),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(session.max_concurrency())
        .collect()
        .await;
    let mut candidates = Vec::new();
    for result in listed {
        let (user, keys) = result?;
        candidates.extend(
            keys.into_iter()
                .filter(|k| (now - k.created).num_seconds() > hours * 3600)
                .map(|k| (user.clone(), k)),
        );
    }
    let with_use: Vec<_> = stream::iter(candidates)
        .map(|(user, k)| {
            let iam = iam.clone();
            async move {
                let last_used = iam.access_key_last_used(&k.id).await?;
                Ok::<_, crate::error::Error>((user, k, last_used))
            }
        })
        .buffer_unordered(session.max_concurrency())
        .collect()
        .await;
    let mut old = Vec::new();
    for result in with_use {
        let (user, k, last_used) = result?;
        old.push(old_key(
            OldKey {
                account: &session.account.id,
                user: &user,
                key_id: &k.id,
                created: k.created,
                active: k.active,
                last_used,
                owner: owners.user(&user),
            },
            now,
        ));
    }
    old.sort_by(|a, b| {
        (
            a["account_id"].as_str(),
            a["user_name"].as_str(),
            a["access_key_id"].as_str(),
        )
            .cmp(&(
                b["account_id"].as_str(),
                b["user_name"].as_str(),
                b["access_key_id"].as_str(),
            ))
    });
    Ok(old)
}

/// An error answer, `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Reply {
    json_response(status, &json!({ "error": message }))
}

fn json_response(status: StatusCode, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
