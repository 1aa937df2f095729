//! The S3 and S3 Control calls of the S3 collector, each within the account's concurrency limit.
//! Answers that mean "not configured" (no public access block, no policy, no encryption) are
//! values here, not errors.

use aws_config::{Region, SdkConfig};
use aws_sdk_s3control::config::endpoint::{Endpoint, EndpointFuture, Params, ResolveEndpoint};

use super::{CountCalls, Limiter, PerRegion, aws_error, home_region, retry_partition};
use crate::error::Error;

/// The four settings of a public access block, at bucket or account level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

/// S3 and S3 Control each have their own configuration type, with the same four getters.
macro_rules! block_of {
    () => {
        |c| {
            PublicAccessBlock::from_flags([
                c.block_public_acls(),
                c.ignore_public_acls(),
                c.block_public_policy(),
                c.restrict_public_buckets(),
            ])
        }
    };
}

/// S3's and S3 Control's error code for "no public access block here": all settings off.
const NO_BLOCK: &str = "NoSuchPublicAccessBlockConfiguration";

impl PublicAccessBlock {
    /// From the API's optional flags, in the order of [`Self::settings`]; unset is off.
    fn from_flags(f: [Option<bool>; 4]) -> Self {
        let [a, b, c, d] = f.map(|v| v.unwrap_or(false));
        Self {
            block_public_acls: a,
            ignore_public_acls: b,
            block_public_policy: c,
            restrict_public_buckets: d,
        }
    }

    /// (setting label, value), in a fixed order.
    pub fn settings(&self) -> [(&'static str, bool); 4] {
        [
            ("block_public_acls", self.block_public_acls),
            ("ignore_public_acls", self.ignore_public_acls),
            ("block_public_policy", self.block_public_policy),
            ("restrict_public_buckets", self.restrict_public_buckets),
        ]
    }
}

/// What S3 says about a bucket's default encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    None,
    /// `AES256`, `aws:kms`, `aws:kms:dsse`, or `other` for anything newer.
    Algorithm(&'static str),
}

/// The S3 calls, apart so that the collector's handling of each answer can be tested without AWS.
pub trait S3Api: Sync {
    /// Every bucket: name, and region when ListBuckets tells it.
    fn list_buckets(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, Option<String>)>, Error>> + Send;
    fn bucket_region(&self, bucket: &str) -> impl Future<Output = Result<String, Error>> + Send;
    fn bucket_public_access_block(
        &self,
        bucket: &str,
        region: &str,
    ) -> impl Future<Output = Result<PublicAccessBlock, Error>> + Send;
    /// AWS's own evaluation of the bucket policy (GetBucketPolicyStatus); false without a policy.
    fn bucket_policy_public(
        &self,
        bucket: &str,
        region: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    /// True when the ACL grants anything to AllUsers or AuthenticatedUsers.
    fn bucket_acl_public(
        &self,
        bucket: &str,
        region: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    fn bucket_encryption(
        &self,
        bucket: &str,
        region: &str,
    ) -> impl Future<Output = Result<Encryption, Error>> + Send;
    fn account_public_access_block(
        &self,
    ) -> impl Future<Output = Result<PublicAccessBlock, Error>> + Send;
    /// The bucket policy's JSON (GetBucketPolicy); None without a policy.
    fn bucket_policy(
        &self,
        bucket: &str,
        region: &str,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;
    /// Whether versioning is enabled with MFA Delete (GetBucketVersioning).
    fn bucket_mfa_delete(
        &self,
        bucket: &str,
        region: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    /// The bucket's tags (GetBucketTagging); empty without a tag set.
    fn bucket_tags(
        &self,
        bucket: &str,
        region: &str,
    ) -> impl Future<Output = Result<Vec<(String, String)>, Error>> + Send;
}

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

pub struct S3Client {
    sdk: SdkConfig,
    counter: CountCalls,
    limiter: Limiter,
    account_id: String,
    endpoint_url: Option<String>,
    /// One client per region: a bucket must be asked in its own region (else a 301).
    regional: PerRegion<aws_sdk_s3::Client>,
    control: aws_sdk_s3control::Client,
}

impl S3Client {
    pub(super) fn new(
        sdk: SdkConfig,
        counter: CountCalls,
        limiter: Limiter,
        account_id: String,
        endpoint_url: Option<String>,
    ) -> Self {
        let mut control = aws_sdk_s3control::config::Builder::from(&sdk)
            .retry_partition(retry_partition(
                "s3control",
                home_region(&sdk),
                &counter.identity.account_id,
            ))
            .interceptor(counter.clone())
            .retry_classifier(counter.retry_classifier());
        if let Some(url) = &endpoint_url {
            // S3 Control's endpoint rules put the account id in front of the host, which an
            // emulator or proxy on an IP address cannot answer: use the URL as it is.
            control = control.endpoint_resolver(FixedEndpoint(url.clone()));
        }
        let control = aws_sdk_s3control::Client::from_conf(control.build());
        Self {
            sdk,
            counter,
            limiter,
            account_id,
            endpoint_url,
            regional: PerRegion::new(),
            control,
        }
    }

    fn client(&self, region: &str) -> aws_sdk_s3::Client {
        self.regional.get(region, || {
            let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
                .region(Region::new(region.to_owned()))
                // Virtual-hosted names (bucket.host) do not resolve for a custom endpoint.
                .force_path_style(self.endpoint_url.is_some())
                .retry_partition(retry_partition(
                    "s3",
                    region,
                    &self.counter.identity.account_id,
                ))
                .interceptor(self.counter.clone())
                .retry_classifier(self.counter.retry_classifier())
                .build();
            aws_sdk_s3::Client::from_conf(conf)
        })
    }

    fn home(&self) -> aws_sdk_s3::Client {
        self.client(home_region(&self.sdk))
    }
}

/// S3 reports "not configured" as an error with a code of its own: that answer is `absent`.
fn or_absent<T>(result: Result<T, Error>, code: &str, absent: T) -> Result<T, Error> {
    match result {
        Err(e) if e.aws_code() == Some(code) => Ok(absent),
        other => other,
    }
}

impl S3Api for S3Client {
    async fn list_buckets(&self) -> Result<Vec<(String, Option<String>)>, Error> {
        let client = self.home();
        let mut buckets = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = {
                // A page size makes AWS paginate (required above 10,000 buckets) and include
                // each bucket's region, which saves a GetBucketLocation per bucket.
                self.limiter
                    .run(|| {
                        client
                            .list_buckets()
                            .max_buckets(10_000)
                            .set_continuation_token(token.take())
                            .send()
                    })
                    .await
                    .map_err(|e| aws_error("s3", "ListBuckets", e))?
            };
            for b in out.buckets() {
                if let Some(name) = b.name() {
                    buckets.push((name.to_owned(), b.bucket_region().map(str::to_owned)));
                }
            }
            match out.continuation_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(buckets),
            }
        }
    }

    async fn bucket_region(&self, bucket: &str) -> Result<String, Error> {
        let out = self
            .limiter
            .run(|| self.home().get_bucket_location().bucket(bucket).send())
            .await
            .map_err(|e| aws_error("s3", "GetBucketLocation", e))?;
        // Legacy answers: none for us-east-1, "EU" for eu-west-1.
        Ok(match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_owned(),
            Some("EU") => "eu-west-1".to_owned(),
            Some(r) => r.to_owned(),
        })
    }

    async fn bucket_public_access_block(
        &self,
        bucket: &str,
        region: &str,
    ) -> Result<PublicAccessBlock, Error> {
        let block = self
            .limiter
            .run(|| {
                self.client(region)
                    .get_public_access_block()
                    .bucket(bucket)
                    .send()
            })
            .await
            .map(|out| out.public_access_block_configuration().map(block_of!()))
            .map_err(|e| aws_error("s3", "GetPublicAccessBlock", e));
        or_absent(block, NO_BLOCK, None).map(Option::unwrap_or_default)
    }

    async fn bucket_policy_public(&self, bucket: &str, region: &str) -> Result<bool, Error> {
        let public = self
            .limiter
            .run(|| {
                self.client(region)
                    .get_bucket_policy_status()
                    .bucket(bucket)
                    .send()
            })
            .await
            .map(|out| {
                out.policy_status()
                    .and_then(|s| s.is_public())
                    .unwrap_or(false)
            })
            .map_err(|e| aws_error("s3", "GetBucketPolicyStatus", e));
        or_absent(public, "NoSuchBucketPolicy", false)
    }

    async fn bucket_acl_public(&self, bucket: &str, region: &str) -> Result<bool, Error> {
        let out = self
            .limiter
            .run(|| self.client(region).get_bucket_acl().bucket(bucket).send())
            .await
            .map_err(|e| aws_error("s3", "GetBucketAcl", e))?;
        Ok(out.grants().iter().any(|g| {
            g.grantee()
                .and_then(|g| g.uri())
                .is_some_and(|uri| uri == ALL_USERS || uri == AUTHENTICATED_USERS)
        }))
    }

    async fn bucket_encryption(&self, bucket: &str, region: &str) -> Result<Encryption, Error> {
        let out = self
            .limiter
            .run(|| {
                self.client(region)
                    .get_bucket_encryption()
                    .bucket(bucket)
                    .send()
            })
            .await
            .map(Some)
            .map_err(|e| aws_error("s3", "GetBucketEncryption", e));
        let Some(out) = or_absent(out, "ServerSideEncryptionConfigurationNotFoundError", None)?
        else {
            return Ok(Encryption::None);
        };
        let algorithm = out
            .server_side_encryption_configuration()
            .and_then(|c| {
                c.rules()
                    .iter()
                    .find_map(|r| r.apply_server_side_encryption_by_default())
            })
            .map(|d| d.sse_algorithm().as_str());
        Ok(match algorithm {
            None => Encryption::None,
            Some("AES256") => Encryption::Algorithm("AES256"),
            Some("aws:kms") => Encryption::Algorithm("aws:kms"),
            Some("aws:kms:dsse") => Encryption::Algorithm("aws:kms:dsse"),
            Some(_) => Encryption::Algorithm("other"),
        })
    }

    async fn bucket_policy(&self, bucket: &str, region: &str) -> Result<Option<String>, Error> {
        let policy = self
            .limiter
            .run(|| {
                self.client(region)
                    .get_bucket_policy()
                    .bucket(bucket)
                    .send()
            })
            .await
            .map(|out| out.policy().map(str::to_owned))
            .map_err(|e| aws_error("s3", "GetBucketPolicy", e));
        or_absent(policy, "NoSuchBucketPolicy", None)
    }

    async fn bucket_mfa_delete(&self, bucket: &str, region: &str) -> Result<bool, Error> {
        let out = self
            .limiter
            .run(|| {
                self.client(region)
                    .get_bucket_versioning()
                    .bucket(bucket)
                    .send()
            })
            .await
            .map_err(|e| aws_error("s3", "GetBucketVersioning", e))?;
        // CIS 2.1.2 wants both: MFA Delete can stay Enabled on a bucket whose versioning was
        // suspended, where it protects nothing new.
        Ok(
            out.status() == Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                && out.mfa_delete() == Some(&aws_sdk_s3::types::MfaDeleteStatus::Enabled),
        )
    }

    async fn bucket_tags(
        &self,
        bucket: &str,
        region: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        let tags = self
            .limiter
            .run(|| {
                self.client(region)
                    .get_bucket_tagging()
                    .bucket(bucket)
                    .send()
            })
            .await
            .map(|out| {
                out.tag_set()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect()
            })
            .map_err(|e| aws_error("s3", "GetBucketTagging", e));
        or_absent(tags, "NoSuchTagSet", Vec::new())
    }

    async fn account_public_access_block(&self) -> Result<PublicAccessBlock, Error> {
        let block = self
            .limiter
            .run(|| {
                self.control
                    .get_public_access_block()
                    .account_id(&self.account_id)
                    .send()
            })
            .await
            .map(|out| out.public_access_block_configuration().map(block_of!()))
            .map_err(|e| aws_error("s3control", "GetPublicAccessBlock", e));
        or_absent(block, NO_BLOCK, None).map(Option::unwrap_or_default)
    }
}

/// An S3 Control endpoint that is exactly the configured URL.
#[derive(Debug)]
struct FixedEndpoint(String);

impl ResolveEndpoint for FixedEndpoint {
    fn resolve_endpoint<'a>(&'a self, _params: &'a Params) -> EndpointFuture<'a> {
        EndpointFuture::ready(Ok(Endpoint::builder().url(self.0.clone()).build()))
    }
}
