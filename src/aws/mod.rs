//! AWS sessions: one base configuration, and per account a credentials provider, a concurrency
//! limit and a call counter, all built once at start-up.

pub mod counters;
pub mod ec2;
pub mod error_code;
pub mod iam;
pub mod s3;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_sts::config::retry::RetryPartition;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextMut,
    FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ErrorKind;
use tokio::sync::Semaphore;

use crate::config::{Account, AwsConfig, Secret};
use crate::error::Error;
use counters::ApiMetrics;

/// The session name that shows in the audited accounts' CloudTrail.
pub const SESSION_NAME: &str = "infraaudit";

/// The base SDK configuration: the default credential chain, our region, retries and timeouts.
///
/// Retries are adaptive: exponential backoff with jitter as in standard mode, plus a client-side
/// rate limit that slows down once AWS throttles, since one cycle over many accounts makes bursts
/// of calls against per-account (and per-region) API rate limits.
pub async fn base_config(cfg: &AwsConfig) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .retry_config(RetryConfig::adaptive().with_max_attempts(cfg.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(cfg.attempt_timeout)
                .build(),
        );
    if let Some(url) = &cfg.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.http_client(shared_https_client()).load().await
}

/// The SDK's default HTTPS client (rustls with aws-lc, the system's root certificates, proxies
/// from the environment), built once for every SDK client of every account. Without it each
/// SDK client builds its own, with its own connection pool and its own parse of the root
/// certificates: about 2.4 MiB per account (BENCHMARKS.md, "Fleet refresh").
fn shared_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::{Builder, Connector, proxy::ProxyConfig, tls};
    // One connector per distinct timeout settings, as the SDK's default client keeps them.
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = Connector::builder().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Everything needed to call AWS in one account.
pub struct AccountSession {
    pub account: Account,
    sdk: SdkConfig,
    limiter: Limiter,
    max_concurrency: usize,
    counter: CountCalls,
    /// STS with the account's base credentials: AssumeRole's client, and for accounts without
    /// a role, the GetCallerIdentity that confirms the account.
    sts: aws_sdk_sts::Client,
    endpoint_url: Option<String>,
    /// Held while GetCallerIdentity is asked, so that the collectors starting together make
    /// one call, not one each.
    verifying: tokio::sync::Mutex<()>,
}

impl AccountSession {
    pub fn new(
        base: &SdkConfig,
        cfg: &AwsConfig,
        account: Account,
        metrics: Arc<ApiMetrics>,
    ) -> Self {
        Self::with_limit(base, cfg, account, metrics, None)
    }

    /// [`AccountSession::new`], sharing `total` (`aws.max_concurrency_total`) with every
    /// other account of the process.
    pub fn with_limit(
        base: &SdkConfig,
        cfg: &AwsConfig,
        account: Account,
        metrics: Arc<ApiMetrics>,
        total: Option<Arc<Semaphore>>,
    ) -> Self {
        let identity = Arc::new(AccountIdentity {
            account_id: account.id.clone(),
            metrics,
            counted: AtomicBool::new(true),
            state: Mutex::default(),
        });
        let counter = CountCalls {
            identity: identity.clone(),
        };
        let sts = sts_client(base, &counter);
        let sdk = match &account.role_arn {
            Some(role_arn) => {
                let provider = AssumeRole {
                    sts: sts.clone(),
                    base: base.clone(),
                    counter: counter.clone(),
                    role_arn: role_arn.clone(),
                    external_id: account.external_id.clone(),
                    duration: cfg.session_duration,
                    renewing: tokio::sync::Mutex::new(()),
                };
                // The provider keeps the credentials itself (see AccountIdentity), so that it
                // can drop them when AWS rejects them; the SDK's cache would hold on to them
                // until they expire.
                base.to_builder()
                    .credentials_provider(SharedCredentialsProvider::new(provider))
                    .identity_cache(IdentityCache::no_cache())
                    .build()
            }
            None => base.clone(),
        };
        Self {
            account,
            sdk,
            limiter: Limiter {
                account: Arc::new(Semaphore::new(cfg.max_concurrency)),
                total,
                identity,
            },
            max_concurrency: cfg.max_concurrency,
            counter,
            sts,
            endpoint_url: cfg.endpoint_url.clone(),
            verifying: tokio::sync::Mutex::new(()),
        }
    }

    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// The account left the audited set: its calls still in flight are no longer counted, so
    /// that its counter series, once forgotten, stay gone.
    pub fn retire(&self) {
        self.counter
            .identity
            .counted
            .store(false, Ordering::Release);
    }

    /// What the account's calls are signed with, for checks that data came from this account.
    pub fn identity(&self) -> Arc<AccountIdentity> {
        self.counter.identity.clone()
    }

    /// Makes sure the credentials belong to this account before a run: for an account without
    /// a role, STS GetCallerIdentity once (again after a mismatch); assumed-role credentials
    /// are checked each time they are obtained, by the provider.
    pub async fn verify_identity(&self) -> Result<(), Error> {
        if self.account.role_arn.is_some() || self.counter.identity.lock().verified {
            return Ok(());
        }
        let _one_at_a_time = self.verifying.lock().await;
        // Another collector may have verified while this one waited.
        if self.counter.identity.lock().verified {
            return Ok(());
        }
        let found = self.limiter.run(|| caller_account_with(&self.sts)).await?;
        let identity = &self.counter.identity;
        if found != identity.account_id {
            return Err(identity.mismatch(&found, "STS GetCallerIdentity"));
        }
        identity.lock().verified = true;
        Ok(())
    }

    /// Organizations, a global service: the SDK's endpoint rules send every region of a
    /// partition to its global endpoint (us-east-1 for `aws`).
    pub fn organizations(&self) -> aws_sdk_organizations::Client {
        let conf = aws_sdk_organizations::config::Builder::from(&self.sdk)
            .retry_partition(retry_partition(
                "organizations",
                home_region(&self.sdk),
                &self.account.id,
            ))
            .interceptor(self.counter.clone())
            .retry_classifier(self.counter.retry_classifier())
            .build();
        aws_sdk_organizations::Client::from_conf(conf)
    }

    pub fn iam(&self) -> iam::IamClient {
        let conf = aws_sdk_iam::config::Builder::from(&self.sdk)
            .retry_partition(retry_partition(
                "iam",
                home_region(&self.sdk),
                &self.account.id,
            ))
            .interceptor(self.counter.clone())
            .retry_classifier(self.counter.retry_classifier())
            .build();
        iam::IamClient::new(aws_sdk_iam::Client::from_conf(conf), self.limiter.clone())
    }

    pub fn s3(&self) -> s3::S3Client {
        s3::S3Client::new(
            self.sdk.clone(),
            self.counter.clone(),
            self.limiter.clone(),
            self.account.id.clone(),
            self.endpoint_url.clone(),
        )
    }

    pub fn ec2(&self) -> ec2::Ec2Client {
        ec2::Ec2Client::new(self.sdk.clone(), self.counter.clone(), self.limiter.clone())
    }
}

/// The concurrency limits a call waits for: the account's (`aws.max_concurrency`) and the
/// process's (`aws.max_concurrency_total`). The wait is counted per account.
#[derive(Clone)]
pub struct Limiter {
    account: Arc<Semaphore>,
    total: Option<Arc<Semaphore>>,
    identity: Arc<AccountIdentity>,
}

/// Slots held while one call runs.
pub struct Permit {
    _account: Option<tokio::sync::OwnedSemaphorePermit>,
    _total: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Limiter {
    /// A limiter of `n` calls at once, for tests without AWS.
    pub fn unbounded_for_tests(account_id: &str) -> Self {
        Self {
            account: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            total: None,
            identity: AccountIdentity::detached(account_id),
        }
    }

    /// Runs the call that `call` makes (an SDK `send()`) within a slot. The call's future is
    /// boxed and made once the slot is had: an SDK call's future is kilobytes, and the many
    /// calls that wait for a slot should not each hold one (BENCHMARKS.md, "Fleet refresh").
    pub async fn run<F: Future>(&self, call: impl FnOnce() -> F) -> F::Output {
        let _permit = self.acquire().await;
        Box::pin(call()).await
    }

    /// Waits for a slot of the account, then one of the process: a call never holds a
    /// process-wide slot while it waits for its account's.
    pub async fn acquire(&self) -> Permit {
        let started = std::time::Instant::now();
        // The semaphores are never closed; an error would only mean "run without a slot".
        let account = self.account.clone().acquire_owned().await.ok();
        let total = match &self.total {
            Some(t) => t.clone().acquire_owned().await.ok(),
            None => None,
        };
        let waited = started.elapsed();
        if waited >= Duration::from_millis(1) {
            let id = &self.identity;
            id.metrics
                .record_slot_wait(&id.counted, &id.account_id, waited.as_secs_f64());
        }
        Permit {
            _account: account,
            _total: total,
        }
    }
}

/// Clients of one service by region, built on first use: regional services must be asked in
/// the resource's own region.
struct PerRegion<C> {
    clients: Mutex<HashMap<String, C>>,
}

impl<C: Clone> PerRegion<C> {
    fn new() -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, region: &str, build: impl FnOnce() -> C) -> C {
        // A panic elsewhere cannot leave a half-built map behind: entries are inserted whole.
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients
            .entry(region.to_owned())
            .or_insert_with(build)
            .clone()
    }
}

/// Retry quota and adaptive rate limit per account, service and region, as AWS's own limits
/// are. The SDK's default partition (service and region) is shared by the whole process: one
/// throttled account would slow down every other and use up their retry quota.
fn retry_partition(service: &str, region: &str, account_id: &str) -> RetryPartition {
    RetryPartition::new(format!("{service}-{region}-{account_id}"))
}

/// The region an `SdkConfig` was built for.
fn home_region(sdk: &SdkConfig) -> &str {
    sdk.region().map_or("us-east-1", Region::as_ref)
}

fn sts_client(base: &SdkConfig, counter: &CountCalls) -> aws_sdk_sts::Client {
    let conf = aws_sdk_sts::config::Builder::from(base)
        .retry_partition(retry_partition(
            "sts",
            home_region(base),
            &counter.identity.account_id,
        ))
        .interceptor(counter.clone())
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

/// The account id of the ambient credentials, for the zero-configuration mode.
/// Not counted in the API metrics: there is no account id to count it under yet.
pub async fn caller_account(base: &SdkConfig) -> Result<String, Error> {
    caller_account_with(&aws_sdk_sts::Client::new(base)).await
}

/// The account of the credentials `sts` signs with (STS GetCallerIdentity).
async fn caller_account_with(sts: &aws_sdk_sts::Client) -> Result<String, Error> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| aws_error("sts", "GetCallerIdentity", e))?;
    out.account().map(str::to_owned).ok_or_else(|| Error::Aws {
        service: "sts",
        operation: "GetCallerIdentity",
        code: "empty_response".into(),
        message: "no account in the response".into(),
    })
}

/// The marker of the next page, or None after the last. A truncated answer without a marker, or
/// a marker that comes back again, is a bad answer: stopping there would pass off part of the
/// data as all of it, and following it could loop for ever.
pub fn next_page(
    service: &'static str,
    operation: &'static str,
    truncated: bool,
    marker: Option<&str>,
    previous: Option<&str>,
) -> Result<Option<String>, Error> {
    let bad = |message: &str| Error::Aws {
        service,
        operation,
        code: "bad_pagination".into(),
        message: message.into(),
    };
    match marker.filter(|m| !m.is_empty()) {
        _ if !truncated => Ok(None),
        None => Err(bad("a truncated answer without a marker")),
        Some(m) if Some(m) == previous => Err(bad("the same marker twice")),
        Some(m) => Ok(Some(m.to_owned())),
    }
}

/// Longest AWS message kept in an error: it is for logs, and an endpoint that answers with a
/// page of HTML must not fill them.
const MAX_MESSAGE_CHARS: usize = 300;

/// An SDK error as ours: AWS's code where there is one, else the kind of failure (for an answer
/// without a code, its HTTP status and reason). The message is AWS's, or the chain of causes;
/// never the SDK's debug dump of the raw response.
pub fn aws_error<E>(
    service: &'static str,
    operation: &'static str,
    err: aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    // A call without credentials never reached AWS: say why AssumeRole failed, not "dispatch
    // failure". The prefix keeps AssumeRole's code from passing for an answer to the call
    // itself (an AccessDenied on one bucket is partial data, not a failed run).
    if let Some(failed) = find_source::<AssumeRoleFailed>(&err) {
        if let Error::AccountMismatch {
            expected,
            found,
            evidence,
        } = &failed.cause
        {
            return Error::AccountMismatch {
                expected: expected.clone(),
                found: found.clone(),
                evidence,
            };
        }
        return Error::Aws {
            service,
            operation,
            code: format!(
                "AssumeRole:{}",
                failed.cause.aws_code().unwrap_or(failed.cause.kind())
            ),
            message: failed.to_string(),
        };
    }
    // No credentials from the default chain: none anywhere, or the one source it found (an
    // instance role, a profile) failed. The call never left this machine.
    if let Some(e) = find_source::<CredentialsError>(&err) {
        let message = match e {
            CredentialsError::CredentialsNotLoaded(_) => {
                error_code::NO_CREDENTIALS_FOUND.to_owned()
            }
            // The chain's own words say nothing ("an error occurred while loading
            // credentials"); its cause does.
            other => std::error::Error::source(other).map_or_else(|| other.to_string(), causes),
        };
        return Error::Aws {
            service,
            operation,
            code: error_code::NO_CREDENTIALS.to_owned(),
            message: bounded_message(&message),
        };
    }
    let (code, message) = match &err {
        SdkError::ServiceError(e) => {
            let message = e.err().message().unwrap_or_default();
            match e.err().code() {
                Some(code) => (code.to_owned(), message.to_owned()),
                // No code: an answer that is not AWS's (a proxy's error page, a gateway).
                None => {
                    let status = e.raw().status();
                    let reason = hyper::StatusCode::from_u16(status.as_u16())
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("unknown status");
                    let message = if message.is_empty() {
                        reason.to_owned()
                    } else {
                        format!("{reason}: {message}")
                    };
                    (format!("http_{}", status.as_u16()), message)
                }
            }
        }
        SdkError::TimeoutError(_) => (error_code::TIMEOUT.to_owned(), causes(&err)),
        SdkError::DispatchFailure(_) => ("dispatch_failure".to_owned(), causes(&err)),
        SdkError::ResponseError(_) => ("response_error".to_owned(), causes(&err)),
        SdkError::ConstructionFailure(_) => ("construction_failure".to_owned(), causes(&err)),
        _ => ("unknown".to_owned(), causes(&err)),
    };
    Error::Aws {
        service,
        operation,
        code,
        message: bounded_message(&message),
    }
}

/// `message` on one line and at most [`MAX_MESSAGE_CHARS`] characters.
fn bounded_message(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// `err` and its sources, by their Display, joined by ": ".
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut all: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        all.push(e.to_string());
        next = e.source();
    }
    all.join(": ")
}

/// The first error of type `T` in the chain of `err`.
fn find_source<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// Why an account's credentials could not be had. It travels inside the SDK's
/// `CredentialsError` to the [`aws_error`] of every call that needed them.
#[derive(Debug, thiserror::Error)]
#[error("cannot assume {role_arn}: {cause}")]
struct AssumeRoleFailed {
    role_arn: String,
    cause: Error,
}

/// Error codes with which AWS refuses the credentials themselves (expired, revoked, unknown to
/// the endpoint): new credentials may succeed where these failed.
const REJECTED: &[&str] = &[
    "AuthFailure",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
    "UnrecognizedClientException",
];

/// Denials. A session revoked in AWS ("revoke active sessions") gets these, but so does every
/// call the role's policy does not allow, so only credentials at least [`DENIED_MIN_AGE`] old
/// are dropped for one.
const DENIED: &[&str] = &["AccessDenied", "AccessDeniedException"];
const DENIED_MIN_AGE: Duration = Duration::from_secs(300);

/// At most one drop for a rejection per account in this time: credentials that AWS rejects as
/// soon as they are new are not stale, and assuming the role for every call would not help.
const REJECTED_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Assumed-role credentials are renewed this long before they expire (a third of their
/// lifetime for shorter sessions), as the AWS CLI does: room for clock skew and slow calls.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Whose data the account's calls return, as far as we know, and the assumed-role credentials
/// in use. One per account, shared by its clients, its credentials provider and its collectors.
pub struct AccountIdentity {
    account_id: String,
    metrics: Arc<ApiMetrics>,
    /// False once the session retired (its account left the set): nothing more is counted.
    counted: AtomicBool,
    state: Mutex<IdentityState>,
}

#[derive(Default)]
struct IdentityState {
    /// The assumed-role credentials in use; None before the first AssumeRole, after a drop,
    /// and for base credentials.
    assumed: Option<Assumed>,
    /// Base credentials only: STS GetCallerIdentity confirmed the account.
    verified: bool,
    /// The last drop for a rejection, for [`REJECTED_MIN_INTERVAL`].
    last_drop: Option<Instant>,
}

#[derive(Clone)]
struct Assumed {
    credentials: Credentials,
    obtained: Instant,
    expiry: SystemTime,
}

impl Assumed {
    /// Still good for a call, and not yet due for renewal.
    fn fresh(&self, now: SystemTime) -> bool {
        let lifetime =
            self.obtained.elapsed() + self.expiry.duration_since(now).unwrap_or(Duration::ZERO);
        let renew_before = RENEW_BEFORE.min(lifetime / 3);
        now + renew_before < self.expiry
    }

    /// Still accepted by AWS for a few seconds: usable while a renewal fails.
    fn valid(&self, now: SystemTime) -> bool {
        now + Duration::from_secs(5) < self.expiry
    }
}

impl AccountIdentity {
    /// An identity that counts nothing, for tests and benchmarks without an exporter.
    pub fn detached(account_id: &str) -> Arc<Self> {
        Arc::new(Self {
            account_id: account_id.to_owned(),
            metrics: Arc::default(),
            counted: AtomicBool::new(true),
            state: Mutex::default(),
        })
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IdentityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the credentials in use (counted under `code` when there were assumed-role
    /// ones) and that the base credentials' account was confirmed.
    fn drop_credentials(&self, state: &mut IdentityState, code: &'static str) {
        state.verified = false;
        if state.assumed.take().is_some() {
            state.last_drop = Some(Instant::now());
            self.metrics
                .record_credentials_dropped(&self.counted, &self.account_id, code);
        }
    }

    /// AWS answered `code` to a call signed with `key_id`. Drops those credentials when the
    /// answer says they are no good (and they are still the ones in use), so that the next
    /// attempt assumes the role again. Returns whether they were dropped.
    fn rejected(&self, key_id: &str, code: &'static str) -> bool {
        let mut state = self.lock();
        let Some(assumed) = &state.assumed else {
            return false;
        };
        if assumed.credentials.access_key_id() != key_id {
            return false;
        }
        let drop = if REJECTED.contains(&code) {
            state
                .last_drop
                .is_none_or(|t| t.elapsed() >= REJECTED_MIN_INTERVAL)
        } else {
            DENIED.contains(&code) && assumed.obtained.elapsed() >= DENIED_MIN_AGE
        };
        if drop {
            self.drop_credentials(&mut state, code);
            tracing::warn!(
                account_id = %self.account_id,
                code,
                "AWS rejected the assumed-role credentials; assuming the role again"
            );
        }
        drop
    }

    /// Whether the credentials that signed with `key_id` have been replaced or dropped since.
    fn replaced(&self, key_id: &str) -> bool {
        self.lock()
            .assumed
            .as_ref()
            .is_none_or(|a| a.credentials.access_key_id() != key_id)
    }

    /// Data of account `found` came back for this account: the error that fails the run, after
    /// dropping the credentials (a new session, or GetCallerIdentity again, must prove the
    /// account before anything is recorded).
    pub fn mismatch(&self, found: &str, evidence: &'static str) -> Error {
        let mut state = self.lock();
        self.drop_credentials(&mut state, ACCOUNT_MISMATCH);
        Error::AccountMismatch {
            expected: self.account_id.clone(),
            found: found.to_owned(),
            evidence,
        }
    }

    /// Every ARN must name this account (`arn:PARTITION:SERVICE:REGION:ACCOUNT:...`); the first
    /// that does not (or names none) is a [`AccountIdentity::mismatch`].
    pub fn check_arns<'a>(
        &self,
        arns: impl IntoIterator<Item = &'a str>,
        evidence: &'static str,
    ) -> Result<(), Error> {
        for arn in arns {
            let account = arn_account(arn).unwrap_or("(none)");
            if account != self.account_id {
                return Err(self.mismatch(account, evidence));
            }
        }
        Ok(())
    }
}

/// Why credentials were dropped when data of another account came back.
pub const ACCOUNT_MISMATCH: &str = "account_mismatch";

/// The account field of an ARN, when it has one of 12 digits.
pub fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, _service, _region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    parts.next()?;
    (prefix == "arn" && crate::config::is_account_id(account)).then_some(account)
}

/// AssumeRole with an ExternalId, its credentials cached in the account's [`AccountIdentity`]
/// until shortly before they expire or until AWS rejects them. Each new session's account is
/// checked (AssumeRole's answer, then STS GetCallerIdentity with the new credentials).
struct AssumeRole {
    sts: aws_sdk_sts::Client,
    /// For the GetCallerIdentity client of each new session.
    base: SdkConfig,
    counter: CountCalls,
    role_arn: String,
    external_id: Option<Secret>,
    duration: Duration,
    /// One AssumeRole at a time: the calls waiting for credentials share its answer.
    renewing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AssumeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the ExternalId.
        f.debug_struct("AssumeRole")
            .field("role_arn", &self.role_arn)
            .finish()
    }
}

impl AssumeRole {
    fn identity(&self) -> &AccountIdentity {
        &self.counter.identity
    }

    fn failed(&self, cause: Error) -> CredentialsError {
        CredentialsError::provider_error(AssumeRoleFailed {
            role_arn: self.role_arn.clone(),
            cause,
        })
    }

    /// The cached credentials when fresh, else new ones; while a renewal fails, the old ones
    /// as long as AWS still takes them.
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let cached = || self.identity().lock().assumed.clone();
        if let Some(a) = cached().filter(|a| a.fresh(SystemTime::now())) {
            return Ok(a.credentials);
        }
        let _turn = self.renewing.lock().await;
        if let Some(a) = cached().filter(|a| a.fresh(SystemTime::now())) {
            return Ok(a.credentials);
        }
        match self.assume().await {
            Ok(new) => {
                let credentials = new.credentials.clone();
                self.identity().lock().assumed = Some(new);
                Ok(credentials)
            }
            Err(e) => match cached().filter(|a| a.valid(SystemTime::now())) {
                Some(a) => {
                    tracing::warn!(error = %e, "renewing the assumed-role session failed; using the current one until it expires");
                    Ok(a.credentials)
                }
                None => Err(e),
            },
        }
    }

    async fn assume(&self) -> Result<Assumed, CredentialsError> {
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(3600);
        let obtained = Instant::now();
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(SESSION_NAME)
            .set_external_id(self.external_id.as_ref().map(|s| s.expose().to_owned()))
            .duration_seconds(seconds)
            .send()
            .await
            .map_err(|e| self.failed(aws_error("sts", "AssumeRole", e)))?;
        let empty = |message: String| Error::Aws {
            service: "sts",
            operation: "AssumeRole",
            code: "empty_response".into(),
            message,
        };
        let c = out
            .credentials()
            .ok_or_else(|| self.failed(empty("no credentials in the answer".into())))?;
        let expiry = SystemTime::try_from(*c.expiration())
            .map_err(|e| self.failed(empty(format!("bad expiration: {e}"))))?;
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(expiry),
            "infraaudit-assume-role",
        );
        let expected = &self.identity().account_id;
        let session_account = out
            .assumed_role_user()
            .and_then(|u| arn_account(u.arn()))
            .unwrap_or("(none)");
        if session_account != expected {
            return Err(self.failed(mismatch(expected, session_account, "STS AssumeRole")));
        }
        let who = caller_account_with(&self.sts_with(credentials.clone()))
            .await
            .map_err(|e| self.failed(e))?;
        if &who != expected {
            return Err(self.failed(mismatch(expected, &who, "STS GetCallerIdentity")));
        }
        Ok(Assumed {
            credentials,
            obtained,
            expiry,
        })
    }

    /// STS signing with `credentials`, counted under the account.
    fn sts_with(&self, credentials: Credentials) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::config::Builder::from(&self.base)
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .identity_cache(IdentityCache::no_cache())
            .retry_partition(retry_partition(
                "sts",
                home_region(&self.base),
                &self.identity().account_id,
            ))
            .interceptor(self.counter.clone())
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }
}

fn mismatch(expected: &str, found: &str, evidence: &'static str) -> Error {
    Error::AccountMismatch {
        expected: expected.to_owned(),
        found: found.to_owned(),
        evidence,
    }
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.credentials())
    }
}

/// Counts every attempt that reached the network, and the failed ones by error code; drops the
/// account's credentials when AWS rejects them. It sees each retry, so throttling shows even
/// when the call finally succeeds.
#[derive(Clone)]
struct CountCalls {
    identity: Arc<AccountIdentity>,
}

impl std::fmt::Debug for CountCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountCalls")
            .field("account_id", &self.identity.account_id)
            .finish()
    }
}

impl CountCalls {
    fn retry_classifier(&self) -> RetryWithNewCredentials {
        RetryWithNewCredentials
    }
}

/// The key id that signed a request (SigV4's `Credential=AKID/...`), kept per attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SignedWith(String);

impl Storable for SignedWith {
    type Storer = StoreReplace<Self>;
}

fn signing_key(
    request: &aws_smithy_runtime_api::client::orchestrator::HttpRequest,
) -> Option<String> {
    let auth = request.headers().get("authorization")?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_owned())
}

/// Marks an answer whose credentials were dropped after it, for [`RetryWithNewCredentials`]
/// (a retry classifier sees the answer, not the interceptors' state). Never leaves the process.
const RETRY_MARK: &str = "x-infraaudit-new-credentials";

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "infraaudit::CountCalls"
    }

    /// The request is counted here, not when its answer is read: an AssumeRole is dropped
    /// mid-flight when every call waiting on its credentials times out, yet it was sent.
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = current_attempt(cfg);
        cfg.interceptor_state().store_put(Transmitted(attempt));
        if let Some(key) = signing_key(ctx.request()) {
            cfg.interceptor_state().store_put(SignedWith(key));
        }
        if let Some(meta) = cfg.load::<Metadata>() {
            let id = &self.identity;
            id.metrics.record_request(
                &id.counted,
                &id.account_id,
                service_label(meta.service()),
                meta.name(),
            );
        }
        Ok(())
    }

    /// Runs before the retry decision: credentials that AWS rejected are dropped here, and the
    /// answer is marked so that the call is tried again with new ones.
    fn modify_before_attempt_completion(
        &self,
        ctx: &mut FinalizerInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(SignedWith(key)) = cfg.load::<SignedWith>().cloned() else {
            return Ok(());
        };
        if cfg.load::<Transmitted>().copied() != Some(Transmitted(current_attempt(cfg))) {
            return Ok(());
        }
        let Some(resp) = ctx.response_mut() else {
            return Ok(());
        };
        if resp.status().is_success() {
            return Ok(());
        }
        let code = {
            let headers = resp.headers();
            error_code::from_response(
                resp.status().as_u16(),
                |name| headers.get(name),
                resp.body().bytes(),
            )
        };
        let rejection = REJECTED.contains(&code) || DENIED.contains(&code);
        if rejection && (self.identity.rejected(&key, code) || self.identity.replaced(&key)) {
            resp.headers_mut().insert(RETRY_MARK, "1");
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(meta) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        // The attempt timeout also runs while the credentials are resolved: an attempt that ran
        // out of time waiting for AssumeRole sent nothing and is not a call.
        if cfg.load::<Transmitted>().copied() != Some(Transmitted(current_attempt(cfg))) {
            return Ok(());
        }
        let code = match (ctx.response(), ctx.output_or_error()) {
            (Some(resp), _) if resp.status().is_success() => return Ok(()),
            (Some(resp), _) => {
                let headers = resp.headers();
                error_code::from_response(
                    resp.status().as_u16(),
                    |name| headers.get(name),
                    resp.body().bytes(),
                )
            }
            (None, Some(Err(e))) if e.is_timeout_error() => error_code::TIMEOUT,
            (None, Some(Err(e))) if e.is_connector_error() => error_code::CONNECTION_ERROR,
            // Sent, but failed in a way that is neither an answer nor the network's fault.
            (None, _) => return Ok(()),
        };
        let id = &self.identity;
        id.metrics.record_error(
            &id.counted,
            &id.account_id,
            service_label(meta.service()),
            meta.name(),
            code,
        );
        Ok(())
    }
}

/// Retries, once more within the call's attempts, an answer whose credentials were dropped
/// after it: the next attempt is signed with new ones.
#[derive(Debug, Clone, Copy)]
struct RetryWithNewCredentials;

impl ClassifyRetry for RetryWithNewCredentials {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response() {
            Some(resp) if resp.headers().contains_key(RETRY_MARK) => {
                RetryAction::retryable_error(ErrorKind::TransientError)
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "infraaudit::RetryWithNewCredentials"
    }
}

/// The attempt of the operation that got as far as the network, by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transmitted(u32);

impl Storable for Transmitted {
    type Storer = StoreReplace<Self>;
}

/// The number of the operation's current attempt.
fn current_attempt(cfg: &ConfigBag) -> u32 {
    cfg.load::<RequestAttempts>()
        .map_or(0, RequestAttempts::attempts)
}

/// The SDK's service name ("IAM", "STS", "S3") as a lowercase label from a bounded set.
fn service_label(sdk_name: &str) -> &'static str {
    match sdk_name.to_ascii_lowercase().as_str() {
        "iam" => "iam",
        "sts" => "sts",
        "s3" => "s3",
        "s3 control" | "s3control" => "s3control",
        "ec2" => "ec2",
        "organizations" => "organizations",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::operation::generate_credential_report::GenerateCredentialReportError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
    use aws_smithy_types::retry::RetryMode;

    #[test]
    fn a_page_without_a_way_on_is_an_error_not_the_end() {
        let next = |truncated, marker, previous| next_page("iam", "X", truncated, marker, previous);
        assert_eq!(next(false, None, None).unwrap(), None);
        assert_eq!(next(false, Some("m"), None).unwrap(), None);
        assert_eq!(
            next(true, Some("m2"), Some("m1")).unwrap(),
            Some("m2".into())
        );
        for (marker, previous) in [(None, None), (Some(""), None), (Some("m"), Some("m"))] {
            let e = next(true, marker, previous).unwrap_err();
            assert_eq!(e.aws_code(), Some("bad_pagination"), "{marker:?}");
        }
    }

    #[tokio::test]
    async fn retries_are_adaptive_with_the_configured_attempts() {
        let cfg = AwsConfig {
            max_attempts: 7,
            ..AwsConfig::default()
        };
        let sdk = base_config(&cfg).await;
        let retry = sdk.retry_config().unwrap();
        assert_eq!(retry.mode(), RetryMode::Adaptive);
        assert_eq!(retry.max_attempts(), 7);
    }

    #[test]
    fn a_failed_assume_role_is_the_reason_of_the_call_that_needed_it() {
        let denied = AssumeRoleFailed {
            role_arn: "arn:aws:iam::222222222222:role/Audit".into(),
            cause: Error::Aws {
                service: "sts",
                operation: "AssumeRole",
                code: "AccessDenied".into(),
                message: "not authorized".into(),
            },
        };
        // How the SDK hands a credentials provider's error to the call.
        let err: SdkError<GenerateCredentialReportError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::other(CredentialsError::provider_error(denied).into(), None),
        );
        let e = aws_error("iam", "GenerateCredentialReport", err);
        // Not "AccessDenied": that would pass for a denied answer to the call itself.
        assert_eq!(e.aws_code(), Some("AssumeRole:AccessDenied"));
        assert_eq!(
            e.to_string(),
            "iam GenerateCredentialReport: AssumeRole:AccessDenied: cannot assume \
             arn:aws:iam::222222222222:role/Audit: sts AssumeRole: AccessDenied: not authorized"
        );
    }

    fn assumed(key: &str, age: Duration, lifetime: Duration) -> Assumed {
        let obtained = Instant::now().checked_sub(age).unwrap();
        let expiry = SystemTime::now() + lifetime - age;
        Assumed {
            credentials: Credentials::new(
                key,
                "secret",
                Some("token".into()),
                Some(expiry),
                "test",
            ),
            obtained,
            expiry,
        }
    }

    fn dropped(id: &AccountIdentity, code: &'static str) -> Option<u64> {
        id.metrics.dropped_count(&id.account_id, code)
    }

    #[test]
    fn rejected_credentials_are_dropped_when_still_in_use_and_not_too_often() {
        let id = AccountIdentity::detached("222222222222");
        let hour = Duration::from_secs(3600);
        id.lock().assumed = Some(assumed("AK1", Duration::ZERO, hour));
        // Another key (replaced since), or a code that says nothing of the credentials.
        assert!(!id.rejected("AK0", "ExpiredToken"));
        assert!(!id.rejected("AK1", "Throttling"));
        // A denial of young credentials is the role's policy, not a revoked session.
        assert!(!id.rejected("AK1", "AccessDenied"));
        assert!(!id.replaced("AK1"));
        assert!(id.rejected("AK1", "ExpiredToken"));
        assert!(id.lock().assumed.is_none());
        assert!(id.replaced("AK1"));
        assert_eq!(dropped(&id, "ExpiredToken"), Some(1));
        // New credentials rejected at once are not dropped again within the interval.
        id.lock().assumed = Some(assumed("AK2", Duration::ZERO, hour));
        assert!(!id.rejected("AK2", "InvalidClientTokenId"));
        assert!(id.lock().assumed.is_some());
        // Old credentials that AWS denies: possibly a revoked session.
        id.lock().assumed = Some(assumed("AK3", Duration::from_secs(400), hour));
        assert!(id.rejected("AK3", "AccessDenied"));
        assert_eq!(dropped(&id, "AccessDenied"), Some(1));
        // Nothing to drop with base credentials.
        assert!(!id.rejected("AKBASE", "ExpiredToken"));
    }

    #[tokio::test]
    async fn calls_of_all_accounts_share_the_total_limit_and_their_waits_are_counted() {
        let metrics = Arc::new(ApiMetrics::default());
        let total = Arc::new(Semaphore::new(3));
        let limiters: Vec<Limiter> = (0..10)
            .map(|i| {
                let id = Arc::new(AccountIdentity {
                    account_id: format!("{i:012}"),
                    metrics: metrics.clone(),
                    counted: AtomicBool::new(true),
                    state: Mutex::default(),
                });
                Limiter {
                    account: Arc::new(Semaphore::new(2)),
                    total: Some(total.clone()),
                    identity: id,
                }
            })
            .collect();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut calls = tokio::task::JoinSet::new();
        for limiter in &limiters {
            for _ in 0..4 {
                let (limiter, running, peak) = (limiter.clone(), running.clone(), peak.clone());
                calls.spawn(async move {
                    let _permit = limiter.acquire().await;
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }
        while calls.join_next().await.is_some() {}
        assert_eq!(peak.load(Ordering::SeqCst), 3, "40 calls, 3 at a time");
        let waited: f64 = (0..10)
            .filter_map(|i| metrics.waited_seconds(&format!("{i:012}")))
            .sum();
        // 40 calls of 5 ms, 3 at a time: most waited.
        assert!(waited > 0.1, "{waited}");
    }

    #[test]
    fn rejection_codes_are_codes_the_counter_can_see() {
        for code in REJECTED.iter().chain(DENIED) {
            assert_eq!(error_code::bounded(Some(code), 403), *code);
        }
    }

    #[test]
    fn sessions_are_renewed_a_third_of_their_life_or_5_minutes_before_expiry() {
        let now = SystemTime::now();
        let hour = assumed("AK", Duration::from_secs(3000), Duration::from_secs(3600));
        assert!(hour.fresh(now), "10 minutes left");
        let hour = assumed("AK", Duration::from_secs(3310), Duration::from_secs(3600));
        assert!(!hour.fresh(now) && hour.valid(now), "under 5 minutes left");
        let short = assumed("AK", Duration::from_secs(11), Duration::from_secs(15));
        assert!(!short.fresh(now), "a third of 15 s left");
        let short = assumed("AK", Duration::from_secs(3), Duration::from_secs(15));
        assert!(short.fresh(now));
        let expired = assumed("AK", Duration::from_secs(20), Duration::from_secs(15));
        assert!(!expired.valid(now));
    }

    #[test]
    fn every_arn_must_name_the_account() {
        assert_eq!(
            arn_account("arn:aws:iam::123456789012:user/alice"),
            Some("123456789012")
        );
        assert_eq!(
            arn_account("arn:aws-cn:sts::123456789012:assumed-role/R/s"),
            Some("123456789012")
        );
        assert_eq!(
            arn_account("arn:aws:iam::123456789012:root"),
            Some("123456789012")
        );
        assert_eq!(arn_account("arn:aws:s3:::bucket"), None);
        assert_eq!(arn_account("arn:aws:iam::12345:user/x"), None);
        assert_eq!(arn_account("arn:aws:iam::123456789012"), None);
        let id = AccountIdentity::detached("123456789012");
        let own = [
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:user/a",
        ];
        assert!(id.check_arns(own, "the credential report").is_ok());
        let e = id
            .check_arns(
                [
                    "arn:aws:iam::123456789012:root",
                    "arn:aws:iam::999999999999:user/a",
                ],
                "the credential report",
            )
            .unwrap_err();
        assert_eq!(e.kind(), "account_mismatch");
        assert_eq!(
            e.to_string(),
            "the credential report shows account 999999999999, not the configured account \
             123456789012; nothing from this run is recorded"
        );
        let e = id.check_arns(["not an arn"], "x").unwrap_err();
        assert!(e.to_string().contains("shows account (none)"), "{e}");
    }

    #[test]
    fn an_answer_without_an_error_code_gives_its_status_and_reason() {
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let raw = HttpResponse::new(StatusCode::try_from(502).unwrap(), SdkBody::empty());
        let err: SdkError<GenerateCredentialReportError, HttpResponse> = SdkError::service_error(
            GenerateCredentialReportError::generic(ErrorMetadata::builder().build()),
            raw,
        );
        let e = aws_error("iam", "GenerateCredentialReport", err);
        assert_eq!(e.aws_code(), Some("http_502"));
        assert_eq!(
            e.to_string(),
            "iam GenerateCredentialReport: http_502: Bad Gateway"
        );
        let long = "x ".repeat(400);
        let raw = HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::empty());
        let err: SdkError<GenerateCredentialReportError, HttpResponse> = SdkError::service_error(
            GenerateCredentialReportError::generic(
                ErrorMetadata::builder()
                    .code("Throttling")
                    .message(long)
                    .build(),
            ),
            raw,
        );
        let e = aws_error("iam", "GenerateCredentialReport", err);
        assert_eq!(e.aws_code(), Some("Throttling"));
        assert!(e.to_string().len() < 400, "{e}");
    }
}
