//! AWS sessions: one base configuration, and per account a credentials provider, a concurrency
//! limit and a call counter, all built once at start-up.

pub mod ec2;
pub mod error_code;
pub mod iam;
pub mod s3;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio::sync::Semaphore;

use crate::config::{Account, AwsConfig, Secret};
use crate::error::Error;
use crate::metrics::ApiMetrics;

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
    loader.load().await
}

/// Everything needed to call AWS in one account.
pub struct AccountSession {
    pub account: Account,
    sdk: SdkConfig,
    limiter: Arc<Semaphore>,
    max_concurrency: usize,
    counter: CountCalls,
    endpoint_url: Option<String>,
}

impl AccountSession {
    pub fn new(
        base: &SdkConfig,
        cfg: &AwsConfig,
        account: Account,
        metrics: Arc<ApiMetrics>,
    ) -> Self {
        let counter = CountCalls {
            account_id: account.id.clone(),
            metrics,
            counted: Arc::new(AtomicBool::new(true)),
        };
        let sdk = match &account.role_arn {
            Some(role_arn) => {
                let sts = sts_client(base, &counter);
                let provider = AssumeRole {
                    sts,
                    role_arn: role_arn.clone(),
                    external_id: account.external_id.clone(),
                    duration: cfg.session_duration,
                };
                // The SdkConfig's identity cache keeps the credentials and renews them shortly
                // before they expire, for every client built from it. One cache per account: a
                // shared one holds 64 providers and then evicts, so past 64 accounts nearly every
                // call would AssumeRole again (BENCHMARKS.md, "Fleet refresh").
                base.to_builder()
                    .credentials_provider(SharedCredentialsProvider::new(provider))
                    .identity_cache(IdentityCache::lazy().build())
                    .build()
            }
            None => base.clone(),
        };
        Self {
            account,
            sdk,
            limiter: Arc::new(Semaphore::new(cfg.max_concurrency)),
            max_concurrency: cfg.max_concurrency,
            counter,
            endpoint_url: cfg.endpoint_url.clone(),
        }
    }

    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// The account left the audited set: its calls still in flight are no longer counted, so
    /// that its counter series, once forgotten, stay gone.
    pub fn retire(&self) {
        self.counter.counted.store(false, Ordering::Release);
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
            &counter.account_id,
        ))
        .interceptor(counter.clone())
        .build();
    aws_sdk_sts::Client::from_conf(conf)
}

/// The account id of the ambient credentials, for the zero-configuration mode.
/// Not counted in the API metrics: there is no account id to count it under yet.
pub async fn caller_account(base: &SdkConfig) -> Result<String, Error> {
    let out = aws_sdk_sts::Client::new(base)
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

/// An SDK error as ours: AWS's code where there is one, else the kind of failure. The message
/// is AWS's, or the chain of causes; never the SDK's debug dump of the raw response.
pub fn aws_error<E, R>(
    service: &'static str,
    operation: &'static str,
    err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    // A call without credentials never reached AWS: say why AssumeRole failed, not "dispatch
    // failure". The prefix keeps AssumeRole's code from passing for an answer to the call
    // itself (an AccessDenied on one bucket is partial data, not a failed run).
    if let Some(failed) = find_source::<AssumeRoleFailed>(&err) {
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
    let code = match &err {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("unknown").to_owned(),
        SdkError::TimeoutError(_) => error_code::TIMEOUT.to_owned(),
        SdkError::DispatchFailure(_) => "dispatch_failure".to_owned(),
        SdkError::ResponseError(_) => "response_error".to_owned(),
        SdkError::ConstructionFailure(_) => "construction_failure".to_owned(),
        _ => "unknown".to_owned(),
    };
    let message = match &err {
        SdkError::ServiceError(e) => e.err().message().unwrap_or_default().to_owned(),
        _ => causes(&err),
    };
    Error::Aws {
        service,
        operation,
        code,
        message,
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

/// AssumeRole with an ExternalId. The SDK's identity cache calls this again before expiry.
struct AssumeRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: Option<Secret>,
    duration: Duration,
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
    fn failed(&self, cause: Error) -> CredentialsError {
        CredentialsError::provider_error(AssumeRoleFailed {
            role_arn: self.role_arn.clone(),
            cause,
        })
    }

    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(3600);
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
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(expiry),
            "infraaudit-assume-role",
        ))
    }
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

/// Counts every attempt that reached the network, and the failed ones by error code. It sees
/// each retry, so throttling shows even when the call finally succeeds.
#[derive(Clone, Debug)]
struct CountCalls {
    account_id: String,
    metrics: Arc<ApiMetrics>,
    /// False once the session retired (its account left the set).
    counted: Arc<AtomicBool>,
}

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "infraaudit::CountCalls"
    }

    /// The request is counted here, not when its answer is read: an AssumeRole is dropped
    /// mid-flight when every call waiting on its credentials times out, yet it was sent.
    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = current_attempt(cfg);
        cfg.interceptor_state().store_put(Transmitted(attempt));
        if let Some(meta) = cfg.load::<Metadata>() {
            self.metrics.record_request(
                &self.counted,
                &self.account_id,
                service_label(meta.service()),
                meta.name(),
            );
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
        self.metrics.record_error(
            &self.counted,
            &self.account_id,
            service_label(meta.service()),
            meta.name(),
            code,
        );
        Ok(())
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
}
