//! S3 collector: every bucket's public access (AWS's own policy evaluation, the ACL, and the
//! public access blocks of bucket and account) and default encryption.
//!
//! A call the role may not make for one bucket (AccessDenied) leaves that bucket's answer
//! unknown and is exported as such; it does not fail the run.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};

use super::{Collector, CollectorData};
use crate::aws::AccountSession;
use crate::aws::s3::{Encryption, PublicAccessBlock, S3Api, S3Client};
use crate::config::CollectorConfig;
use crate::error::Error;

pub const NAME: &str = "s3";

/// The IAM actions this collector calls, for the documented policy.
pub const PERMISSIONS: &[&str] = &[
    "s3:GetAccountPublicAccessBlock",
    "s3:GetBucketAcl",
    "s3:GetBucketLocation",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetEncryptionConfiguration",
    "s3:ListAllMyBuckets",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRecord {
    pub name: String,
    /// The bucket's region, or `unknown` when GetBucketLocation was denied.
    pub region: String,
    /// Each of these is None when its call was denied.
    pub public_access_block: Option<PublicAccessBlock>,
    pub policy_public: Option<bool>,
    pub acl_public: Option<bool>,
    pub encryption: Option<Encryption>,
    /// The operations that answered AccessDenied for this bucket.
    pub denied: Vec<&'static str>,
}

impl BucketRecord {
    /// Effectively public: a public policy that `RestrictPublicBuckets` neutralises at neither
    /// level, or a public ACL that `IgnorePublicAcls` neutralises at neither level. None when
    /// a denied call leaves the answer open.
    pub fn public(&self, account: &PublicAccessBlock) -> Option<bool> {
        let block = self.public_access_block;
        let by_policy = all([
            self.policy_public,
            block.map(|b| !b.restrict_public_buckets),
            Some(!account.restrict_public_buckets),
        ]);
        let by_acl = all([
            self.acl_public,
            block.map(|b| !b.ignore_public_acls),
            Some(!account.ignore_public_acls),
        ]);
        match (by_policy, by_acl) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        }
    }

    /// True when default encryption is on, None when GetBucketEncryption was denied.
    pub fn encrypted(&self) -> Option<bool> {
        self.encryption.as_ref().map(|e| *e != Encryption::None)
    }
}

/// Three-valued AND: false wins, then unknown.
fn all<const N: usize>(values: [Option<bool>; N]) -> Option<bool> {
    if values.contains(&Some(false)) {
        Some(false)
    } else if values.iter().all(Option::is_some) {
        Some(true)
    } else {
        None
    }
}

#[derive(Debug, Clone, Default)]
pub struct S3Data {
    pub account_public_access_block: PublicAccessBlock,
    /// Sorted by name.
    pub buckets: Vec<BucketRecord>,
}

pub struct S3Collector {
    client: S3Client,
    max_concurrency: usize,
    interval: Duration,
    timeout: Duration,
}

impl S3Collector {
    pub fn new(session: &Arc<AccountSession>, cfg: &CollectorConfig) -> Self {
        Self {
            client: session.s3(),
            max_concurrency: session.max_concurrency(),
            interval: cfg.interval,
            timeout: cfg.timeout,
        }
    }
}

/// The account's public access block, then every bucket, `max_concurrency` buckets at a time.
pub async fn collect(api: &impl S3Api, max_concurrency: usize) -> Result<S3Data, Error> {
    let account_public_access_block = api.account_public_access_block().await?;
    let listed = api.list_buckets().await?;
    let mut results = stream::iter(listed)
        .map(|(name, region)| bucket(api, name, region))
        .buffer_unordered(max_concurrency);
    let mut buckets = Vec::new();
    while let Some(b) = results.next().await {
        buckets.extend(b?);
    }
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(S3Data {
        account_public_access_block,
        buckets,
    })
}

/// What one call taught: the value, unknown (denied), or that the bucket is gone.
enum Answer<T> {
    Known(T),
    Denied,
    Gone,
}

fn answer<T>(result: Result<T, Error>) -> Result<Answer<T>, Error> {
    match result {
        Ok(v) => Ok(Answer::Known(v)),
        Err(e) if e.aws_code() == Some("AccessDenied") => Ok(Answer::Denied),
        // Deleted between ListBuckets and now.
        Err(e) if e.aws_code() == Some("NoSuchBucket") => Ok(Answer::Gone),
        Err(e) => Err(e),
    }
}

/// The value of a known answer; a denied one is noted in `state.0`, a gone bucket in `state.1`.
fn known<T>(
    a: Answer<T>,
    operation: &'static str,
    state: &mut (&mut Vec<&'static str>, &mut bool),
) -> Option<T> {
    match a {
        Answer::Known(v) => Some(v),
        Answer::Denied => {
            state.0.push(operation);
            None
        }
        Answer::Gone => {
            *state.1 = true;
            None
        }
    }
}

/// One bucket's four answers; None when the bucket no longer exists.
async fn bucket(
    api: &impl S3Api,
    name: String,
    region: Option<String>,
) -> Result<Option<BucketRecord>, Error> {
    let mut denied = Vec::new();
    let region = match region {
        Some(r) => r,
        None => match answer(api.bucket_region(&name).await)? {
            Answer::Known(r) => r,
            Answer::Gone => return Ok(None),
            Answer::Denied => {
                // Every other call must be made in the bucket's region: nothing more to learn.
                return Ok(Some(BucketRecord {
                    name,
                    region: "unknown".to_owned(),
                    public_access_block: None,
                    policy_public: None,
                    acl_public: None,
                    encryption: None,
                    denied: vec!["GetBucketLocation"],
                }));
            }
        },
    };
    let (block, policy, acl, encryption) = tokio::join!(
        api.bucket_public_access_block(&name, &region),
        api.bucket_policy_public(&name, &region),
        api.bucket_acl_public(&name, &region),
        api.bucket_encryption(&name, &region),
    );
    let mut gone = false;
    let mut s = (&mut denied, &mut gone);
    let public_access_block = known(answer(block)?, "GetPublicAccessBlock", &mut s);
    let policy_public = known(answer(policy)?, "GetBucketPolicyStatus", &mut s);
    let acl_public = known(answer(acl)?, "GetBucketAcl", &mut s);
    let encryption = known(answer(encryption)?, "GetBucketEncryption", &mut s);
    if gone {
        return Ok(None);
    }
    if !denied.is_empty() {
        tracing::debug!(bucket = %name, operations = ?denied, "access denied; those answers are unknown");
    }
    Ok(Some(BucketRecord {
        name,
        region,
        public_access_block,
        policy_public,
        acl_public,
        encryption,
        denied,
    }))
}

impl Collector for S3Collector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> BoxFuture<'_, Result<CollectorData, Error>> {
        Box::pin(async move {
            Ok(CollectorData::S3(
                collect(&self.client, self.max_concurrency).await?,
            ))
        })
    }
}
