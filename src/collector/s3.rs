//! S3 collector: every bucket's public access (AWS's own policy evaluation, the ACL, and the
//! public access blocks of bucket and account) and default encryption.
//!
//! A call the role may not make for one bucket (AccessDenied) leaves that bucket's answer
//! unknown and is exported as such; it does not fail the run.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};

use super::{Check, CheckSpec, Collector, Data, Finding, Owner, Severity, Spec};
use crate::aws::AccountSession;
use crate::aws::s3::{Encryption, PublicAccessBlock, S3Api, S3Client};
use crate::config::{ChecksConfig, CollectorConfig};
use crate::error::Error;
use crate::expo::{Family, Recorder, flag};
use crate::owners::{Kind, Tagged, Tagging};

pub const NAME: &str = "s3";

pub static SPEC: Spec = Spec {
    name: NAME,
    defaults: || {
        crate::config::defaults_of(&CollectorConfig {
            enabled: true,
            interval: std::time::Duration::from_secs(3600),
            timeout: std::time::Duration::from_secs(600),
        })
    },
    load: crate::config::load_common_section,
    permissions: &[
        "s3:GetAccountPublicAccessBlock",
        "s3:GetBucketAcl",
        "s3:GetBucketLocation",
        "s3:GetBucketPolicy",
        "s3:GetBucketPolicyStatus",
        "s3:GetBucketPublicAccessBlock",
        "s3:GetBucketTagging",
        "s3:GetBucketVersioning",
        "s3:GetEncryptionConfiguration",
        "s3:ListAllMyBuckets",
    ],
    build: |session, _| Arc::new(S3Collector::new(session)),
    families: FAMILIES,
    encode,
    live_families: &[],
    encode_live: |_, _, _, _| {},
    checks: CHECKS,
    findings,
    user_owners: None,
};

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
    /// Its policy denies every S3 action to everyone without TLS (see
    /// [`requires_secure_transport`]).
    pub secure_transport: Option<bool>,
    /// Versioning with MFA Delete enabled.
    pub mfa_delete: Option<bool>,
    /// Its owner and allowlisted tags; empty when not asked (no `[owners]` or `[labels]` for
    /// buckets) or denied.
    pub tagged: Tagged,
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

/// Whether a bucket policy requires TLS as CIS 2.1.1 asks: one statement that denies every S3
/// action (`s3:*` or `*`) to every principal on the bucket and its objects when
/// `aws:SecureTransport` is false. A deny on some actions only leaves the others open over HTTP,
/// so it does not count.
pub fn requires_secure_transport(policy: &str, bucket: &str) -> bool {
    use serde_json::Value as Json;
    let Ok(doc) = serde_json::from_str::<Json>(policy) else {
        return false;
    };
    let statements: Vec<&Json> = match doc.get("Statement") {
        Some(Json::Array(list)) => list.iter().collect(),
        Some(one @ Json::Object(_)) => vec![one],
        _ => return false,
    };
    let strings = |v: Option<&Json>| -> Vec<String> {
        match v {
            Some(Json::String(s)) => vec![s.clone()],
            Some(Json::Array(list)) => list
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let everyone = |p: Option<&Json>| match p {
        Some(Json::String(s)) => s == "*",
        Some(Json::Object(m)) => m
            .get("AWS")
            .is_some_and(|a| strings(Some(a)).iter().any(|s| s == "*")),
        _ => false,
    };
    // The condition must be exactly "aws:SecureTransport is false": any other key or operator
    // narrows the deny to some requests, leaving the rest allowed over HTTP.
    let insecure = |c: Option<&Json>| {
        let Some(Json::Object(ops)) = c else {
            return false;
        };
        let is_false = |value: &Json| match value {
            Json::Bool(b) => !b,
            Json::String(s) => s.eq_ignore_ascii_case("false"),
            Json::Array(list) => {
                !list.is_empty()
                    && list.iter().all(|x| {
                        x.as_bool() == Some(false)
                            || x.as_str().is_some_and(|s| s.eq_ignore_ascii_case("false"))
                    })
            }
            _ => false,
        };
        !ops.is_empty()
            && ops.iter().all(|(op, keys)| {
                (op == "Bool" || op == "BoolIfExists")
                    && keys.as_object().is_some_and(|keys| {
                        !keys.is_empty()
                            && keys.iter().all(|(key, value)| {
                                key.eq_ignore_ascii_case("aws:SecureTransport") && is_false(value)
                            })
                    })
            })
    };
    statements.into_iter().any(|s| {
        let actions = strings(s.get("Action"));
        let resources = strings(s.get("Resource"));
        // Partitions other than `aws` name the bucket the same way.
        let covers = |target: &str| {
            resources.iter().any(|r| {
                let r = r.replacen("arn:aws-cn:", "arn:aws:", 1).replacen(
                    "arn:aws-us-gov:",
                    "arn:aws:",
                    1,
                );
                glob(&r, target)
            })
        };
        s.get("Effect").and_then(Json::as_str) == Some("Deny")
            && everyone(s.get("Principal"))
            && actions
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case("s3:*"))
            && covers(&format!("arn:aws:s3:::{bucket}"))
            && covers(&format!("arn:aws:s3:::{bucket}/*"))
            && insecure(s.get("Condition"))
    })
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic two-pointer match with one backtrack point.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        match p.get(i) {
            Some('*') => {
                star = Some(i);
                mark = j;
                i += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(j) => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some(s) => {
                    i = s + 1;
                    mark += 1;
                    j = mark;
                }
                None => return false,
            },
        }
    }
    p.get(i..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
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
    /// Which labels the buckets' info series carry.
    pub tagging: Arc<Tagging>,
}

pub struct S3Collector {
    client: S3Client,
    max_concurrency: usize,
    tagging: Arc<Tagging>,
}

impl S3Collector {
    pub fn new(session: &Arc<AccountSession>) -> Self {
        Self {
            client: session.s3(),
            max_concurrency: session.max_concurrency(),
            tagging: session.account.tagging.clone(),
        }
    }
}

/// The account's public access block, then every bucket, `max_concurrency` buckets at a time.
pub async fn collect(
    api: &impl S3Api,
    max_concurrency: usize,
    tagging: &Arc<Tagging>,
) -> Result<S3Data, Error> {
    let account_public_access_block = api.account_public_access_block().await?;
    let listed = api.list_buckets().await?;
    let mut results = stream::iter(listed)
        .map(|(name, region)| bucket(api, name, region, tagging))
        .buffer_unordered(max_concurrency);
    let mut buckets = Vec::new();
    while let Some(b) = results.next().await {
        buckets.extend(b?);
    }
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(S3Data {
        account_public_access_block,
        buckets,
        tagging: tagging.clone(),
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
    tagging: &Tagging,
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
                    secure_transport: None,
                    mfa_delete: None,
                    tagged: Tagged::default(),
                    denied: vec!["GetBucketLocation"],
                }));
            }
        },
    };
    // Without a policy there is no policy status to ask for: not public by policy.
    let policy_and_status = async {
        let document = api.bucket_policy(&name, &region).await;
        let status = match &document {
            Ok(None) => Ok(false),
            _ => api.bucket_policy_public(&name, &region).await,
        };
        (document, status)
    };
    // Tags only when owners or bucket labels want them: one call per bucket.
    let tags = async {
        if tagging.wants_tags(Kind::S3Bucket) {
            Some(api.bucket_tags(&name, &region).await)
        } else {
            None
        }
    };
    let (block, (document, policy), acl, encryption, mfa_delete, tags) = tokio::join!(
        api.bucket_public_access_block(&name, &region),
        policy_and_status,
        api.bucket_acl_public(&name, &region),
        api.bucket_encryption(&name, &region),
        api.bucket_mfa_delete(&name, &region),
        tags,
    );
    let mut gone = false;
    let mut s = (&mut denied, &mut gone);
    let public_access_block = known(answer(block)?, "GetPublicAccessBlock", &mut s);
    let policy_public = known(answer(policy)?, "GetBucketPolicyStatus", &mut s);
    let acl_public = known(answer(acl)?, "GetBucketAcl", &mut s);
    let encryption = known(answer(encryption)?, "GetBucketEncryption", &mut s);
    let secure_transport = known(answer(document)?, "GetBucketPolicy", &mut s)
        .map(|d| d.is_some_and(|d| requires_secure_transport(&d, &name)));
    let mfa_delete = known(answer(mfa_delete)?, "GetBucketVersioning", &mut s);
    let tagged = match tags {
        Some(tags) => known(answer(tags)?, "GetBucketTagging", &mut s)
            .map(|tags| {
                tagging.resolve(
                    Kind::S3Bucket,
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )
            })
            .unwrap_or_default(),
        None => Tagged::default(),
    };
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
        secure_transport,
        mfa_delete,
        tagged,
        denied,
    }))
}

impl Collector for S3Collector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn collect(&self) -> BoxFuture<'_, Result<Arc<Data>, Error>> {
        Box::pin(async move {
            let data = collect(&self.client, self.max_concurrency, &self.tagging).await?;
            let data: Arc<Data> = Arc::new(data);
            Ok(data)
        })
    }
}

macro_rules! refreshed {
    () => {
        "refreshed in the background every {every}"
    };
}

const PUBLIC: Family<'static> = Family::gauge(
    "s3_bucket_public",
    concat!(
        "1 if the bucket is public by policy or ACL and no public access block (bucket or account) neutralises it, 0 if not; absent when a denied call leaves it open. ",
        refreshed!(),
        "."
    ),
    None,
);
const BUCKET_BLOCK: Family<'static> = Family::gauge(
    "s3_bucket_public_access_block",
    concat!(
        "1 if the setting of the bucket's public access block is on, 0 if off or no block; absent when denied. ",
        refreshed!(),
        "."
    ),
    None,
);
const ACCOUNT_BLOCK: Family<'static> = Family::gauge(
    "s3_account_public_access_block",
    concat!(
        "1 if the setting of the account-level public access block is on, 0 if off or no block. ",
        refreshed!(),
        "."
    ),
    None,
);
const ENCRYPTION_ENABLED: Family<'static> = Family::gauge(
    "s3_bucket_encryption_enabled",
    concat!(
        "1 if default encryption is configured on the bucket, 0 if not; absent when denied. ",
        refreshed!(),
        "."
    ),
    None,
);
const ENCRYPTION: Family<'static> = Family::info(
    "s3_bucket_encryption",
    concat!(
        "The default encryption algorithm of encrypted buckets. ",
        refreshed!(),
        "."
    ),
);
const ACCESS_DENIED: Family<'static> = Family::gauge(
    "s3_bucket_access_denied",
    concat!(
        "1 for each call about the bucket that AWS denied to the audit role; that call's answers are absent. ",
        refreshed!(),
        "."
    ),
    None,
);

const SECURE_TRANSPORT: Family<'static> = Family::gauge(
    "s3_bucket_secure_transport_required",
    concat!(
        "1 if the bucket policy denies every S3 action to everyone when aws:SecureTransport is false (CIS 2.1.1), 0 if not or without a policy; absent when GetBucketPolicy is denied. ",
        refreshed!(),
        "."
    ),
    None,
);
const MFA_DELETE: Family<'static> = Family::gauge(
    "s3_bucket_mfa_delete_enabled",
    concat!(
        "1 if the bucket's versioning is Enabled with MFA Delete Enabled, 0 if not; absent when GetBucketVersioning is denied. ",
        refreshed!(),
        "."
    ),
    None,
);

const BUCKET_INFO: Family<'static> = Family::info(
    "s3_bucket",
    concat!(
        "1 per bucket, with its region, its owner (the first [owners] tag_keys tag; only when owners are configured) and the [labels] s3_bucket_tags as tag_<key> labels; ",
        refreshed!(),
        "."
    ),
);

const FAMILIES: &[Family<'static>] = &[
    PUBLIC,
    BUCKET_BLOCK,
    ACCOUNT_BLOCK,
    ENCRYPTION_ENABLED,
    ENCRYPTION,
    SECURE_TRANSPORT,
    MFA_DELETE,
    ACCESS_DENIED,
    BUCKET_INFO,
];

fn encode(account: &str, data: &Data, r: &mut Recorder<'_>) {
    let Some(d) = data.downcast_ref::<S3Data>() else {
        return;
    };
    let buckets = || {
        d.buckets.iter().map(|b| {
            let labels = [
                ("account_id", account),
                ("bucket", b.name.as_str()),
                ("region", b.region.as_str()),
            ];
            (labels, b)
        })
    };
    r.series(
        &BUCKET_INFO,
        buckets().map(|(l, b)| {
            let mut labels = l.to_vec();
            labels.extend(d.tagging.extra_labels(Kind::S3Bucket, &b.tagged));
            (labels, 1u64)
        }),
    );
    let account_block = &d.account_public_access_block;
    r.series(
        &PUBLIC,
        buckets().filter_map(|(l, b)| Some((l, flag(b.public(account_block)?)))),
    );
    r.series(
        &BUCKET_BLOCK,
        buckets().flat_map(|(l, b)| {
            let [acc, bucket, region] = l;
            b.public_access_block
                .into_iter()
                .flat_map(|block| block.settings())
                .map(move |(setting, on)| ([acc, bucket, region, ("setting", setting)], flag(on)))
        }),
    );
    r.series(
        &ACCOUNT_BLOCK,
        account_block
            .settings()
            .map(|(setting, on)| ([("account_id", account), ("setting", setting)], flag(on)))
            .into_iter(),
    );
    r.series(
        &ENCRYPTION_ENABLED,
        buckets().filter_map(|(l, b)| Some((l, flag(b.encrypted()?)))),
    );
    r.series(
        &ENCRYPTION,
        buckets().filter_map(|(l, b)| match b.encryption {
            Some(Encryption::Algorithm(alg)) => {
                let [acc, bucket, region] = l;
                Some(([acc, bucket, region, ("algorithm", alg)], 1u64))
            }
            _ => None,
        }),
    );
    r.series(
        &SECURE_TRANSPORT,
        buckets().filter_map(|(l, b)| Some((l, flag(b.secure_transport?)))),
    );
    r.series(
        &MFA_DELETE,
        buckets().filter_map(|(l, b)| Some((l, flag(b.mfa_delete?)))),
    );
    r.series(
        &ACCESS_DENIED,
        buckets().flat_map(|(l, b)| {
            let [acc, bucket, region] = l;
            b.denied
                .iter()
                .map(move |op| ([acc, bucket, region, ("operation", *op)], 1.0))
        }),
    );
}

const CHECKS: &[CheckSpec] = &[
    CheckSpec {
        name: "s3_public_access",
        collector: NAME,
        title: "S3 buckets are not publicly accessible",
        severity: Severity::Critical,
        cis: "2.1.4",
        describe: |_| "a bucket is public".into(),
        failed: |d, _, _| count_buckets(d, |b, account| b.public(account)),
    },
    CheckSpec {
        name: "s3_encryption",
        collector: NAME,
        title: "S3 buckets have default encryption",
        severity: Severity::Low,
        cis: "",
        describe: |_| "a bucket has no default encryption".into(),
        failed: |d, _, _| count_buckets(d, |b, _| b.encrypted().map(|e| !e)),
    },
    CheckSpec {
        name: "s3_secure_transport",
        collector: NAME,
        title: "S3 bucket policies deny requests without TLS",
        severity: Severity::Medium,
        cis: "2.1.1",
        describe: |_| "a bucket policy does not deny every request without TLS".into(),
        failed: |d, _, _| count_buckets(d, |b, _| b.secure_transport.map(|s| !s)),
    },
    CheckSpec {
        name: "s3_mfa_delete",
        collector: NAME,
        title: "MFA Delete is enabled on S3 buckets",
        severity: Severity::Low,
        cis: "2.1.2",
        describe: |_| "a bucket does not have MFA Delete".into(),
        failed: |d, _, _| count_buckets(d, |b, _| b.mfa_delete.map(|m| !m)),
    },
];

pub const PUBLIC_ACCESS: Check = Check(&CHECKS[0]);
pub const ENCRYPTION_CHECK: Check = Check(&CHECKS[1]);
pub const SECURE_TRANSPORT_CHECK: Check = Check(&CHECKS[2]);
pub const MFA_DELETE_CHECK: Check = Check(&CHECKS[3]);

/// Buckets that fail `rule` (Some(true) is a failure). A bucket whose answer is unknown counts
/// in neither direction; when no bucket's answer is known, the check is unknown, not passing
/// (a role without the permission for any bucket).
fn count_buckets(
    d: &Data,
    rule: fn(&BucketRecord, &PublicAccessBlock) -> Option<bool>,
) -> Option<usize> {
    let d = d.downcast_ref::<S3Data>()?;
    let account = &d.account_public_access_block;
    let verdicts: Vec<Option<bool>> = d.buckets.iter().map(|b| rule(b, account)).collect();
    if !verdicts.is_empty() && verdicts.iter().all(Option::is_none) {
        return None;
    }
    Some(verdicts.into_iter().filter(|v| *v == Some(true)).count())
}

/// Every bucket on each S3 check whose answer is known.
fn findings(account_id: &str, data: &Data, _now: f64, _c: &ChecksConfig, out: &mut Vec<Finding>) {
    let Some(d) = data.downcast_ref::<S3Data>() else {
        return;
    };
    let mut add = |check, resource: &str, owner: &str, failed, details: String| {
        out.push(Finding {
            account_id: account_id.to_owned(),
            check,
            resource: resource.to_owned(),
            failed,
            details,
            owner: Owner::Own(owner.to_owned()),
        });
    };
    for b in &d.buckets {
        let owner = b.tagged.owner.as_str();
        if let Some(public) = b.public(&d.account_public_access_block) {
            let how = match (b.policy_public, b.acl_public) {
                _ if !public => "not public".to_owned(),
                (Some(true), Some(true)) => "public by policy and ACL".to_owned(),
                (Some(true), _) => "public by policy".to_owned(),
                _ => "public by ACL".to_owned(),
            };
            add(
                PUBLIC_ACCESS,
                &b.name,
                owner,
                public,
                format!("{how} ({})", b.region),
            );
        }
        if let Some(encrypted) = b.encrypted() {
            let details = match &b.encryption {
                Some(Encryption::Algorithm(a)) => format!("default encryption {a}"),
                _ => "no default encryption".to_owned(),
            };
            add(ENCRYPTION_CHECK, &b.name, owner, !encrypted, details);
        }
        if let Some(secure) = b.secure_transport {
            let details = if secure {
                "the policy denies every request without TLS"
            } else {
                "no policy statement denies every S3 action without TLS"
            };
            add(
                SECURE_TRANSPORT_CHECK,
                &b.name,
                owner,
                !secure,
                details.into(),
            );
        }
        if let Some(mfa) = b.mfa_delete {
            let details = if mfa {
                "MFA Delete enabled"
            } else {
                "MFA Delete not enabled"
            };
            add(MFA_DELETE_CHECK, &b.name, owner, !mfa, details.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const OFF: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: false,
        ignore_public_acls: false,
        block_public_policy: false,
        restrict_public_buckets: false,
    };
    const RESTRICT: PublicAccessBlock = PublicAccessBlock {
        restrict_public_buckets: true,
        ..OFF
    };
    const IGNORE: PublicAccessBlock = PublicAccessBlock {
        ignore_public_acls: true,
        ..OFF
    };
    const IGNORE_AND_RESTRICT: PublicAccessBlock = PublicAccessBlock {
        ignore_public_acls: true,
        ..RESTRICT
    };

    /// One scripted bucket: its region in ListBuckets, and the operations that answer an error.
    struct Bucket {
        name: &'static str,
        listed_region: Option<&'static str>,
        errors: Vec<(&'static str, &'static str)>,
        /// GetBucketPolicy answers NoSuchBucketPolicy (by default it has a policy).
        no_policy: bool,
    }

    fn bucket(name: &'static str, errors: &[(&'static str, &'static str)]) -> Bucket {
        Bucket {
            name,
            listed_region: Some("us-east-1"),
            errors: errors.to_vec(),
            no_policy: false,
        }
    }

    /// Buckets in ListBuckets order. A call not scripted to fail answers: region eu-west-1,
    /// bucket block IGNORE, policy and ACL private, AES256. Calls are recorded as
    /// (operation, bucket, region).
    struct Fake {
        buckets: Vec<Bucket>,
        calls: Mutex<Vec<(&'static str, String, String)>>,
    }

    fn fake(buckets: impl IntoIterator<Item = Bucket>) -> Fake {
        Fake {
            buckets: buckets.into_iter().collect(),
            calls: Mutex::default(),
        }
    }

    impl Fake {
        fn answer<T>(
            &self,
            op: &'static str,
            bucket: &str,
            region: &str,
            ok: T,
        ) -> Result<T, Error> {
            self.calls
                .lock()
                .unwrap()
                .push((op, bucket.to_owned(), region.to_owned()));
            let b = self.buckets.iter().find(|b| b.name == bucket).unwrap();
            match b.errors.iter().find(|(o, _)| *o == op) {
                Some((_, code)) => Err(Error::Aws {
                    service: "s3",
                    operation: op,
                    code: (*code).into(),
                    message: String::new(),
                }),
                None => Ok(ok),
            }
        }

        fn calls_for(&self, bucket: &str) -> Vec<(&'static str, String)> {
            let calls = self.calls.lock().unwrap();
            let mine = calls.iter().filter(|(_, b, _)| b == bucket);
            mine.map(|(op, _, region)| (*op, region.clone())).collect()
        }
    }

    impl S3Api for Fake {
        async fn list_buckets(&self) -> Result<Vec<(String, Option<String>)>, Error> {
            let listed = self.buckets.iter();
            Ok(listed
                .map(|b| (b.name.to_owned(), b.listed_region.map(str::to_owned)))
                .collect())
        }

        async fn bucket_region(&self, bucket: &str) -> Result<String, Error> {
            self.answer("GetBucketLocation", bucket, "", "eu-west-1".to_owned())
        }

        async fn bucket_public_access_block(
            &self,
            bucket: &str,
            region: &str,
        ) -> Result<PublicAccessBlock, Error> {
            self.answer("GetPublicAccessBlock", bucket, region, IGNORE)
        }

        async fn bucket_policy_public(&self, bucket: &str, region: &str) -> Result<bool, Error> {
            self.answer("GetBucketPolicyStatus", bucket, region, false)
        }

        async fn bucket_acl_public(&self, bucket: &str, region: &str) -> Result<bool, Error> {
            self.answer("GetBucketAcl", bucket, region, false)
        }

        async fn bucket_encryption(&self, bucket: &str, region: &str) -> Result<Encryption, Error> {
            self.answer(
                "GetBucketEncryption",
                bucket,
                region,
                Encryption::Algorithm("AES256"),
            )
        }

        async fn account_public_access_block(&self) -> Result<PublicAccessBlock, Error> {
            Ok(RESTRICT)
        }

        async fn bucket_policy(&self, bucket: &str, region: &str) -> Result<Option<String>, Error> {
            let b = self.buckets.iter().find(|b| b.name == bucket).unwrap();
            let policy = (!b.no_policy).then(|| r#"{"Statement":[]}"#.to_owned());
            self.answer("GetBucketPolicy", bucket, region, policy)
        }

        async fn bucket_mfa_delete(&self, bucket: &str, region: &str) -> Result<bool, Error> {
            self.answer("GetBucketVersioning", bucket, region, false)
        }

        async fn bucket_tags(
            &self,
            bucket: &str,
            region: &str,
        ) -> Result<Vec<(String, String)>, Error> {
            let tags = vec![("Owner".to_owned(), format!("team-{bucket}"))];
            self.answer("GetBucketTagging", bucket, region, tags)
        }
    }

    /// What the fake's default answers make of a bucket.
    fn complete(name: &str, region: &str) -> BucketRecord {
        BucketRecord {
            name: name.into(),
            region: region.into(),
            public_access_block: Some(IGNORE),
            policy_public: Some(false),
            acl_public: Some(false),
            encryption: Some(Encryption::Algorithm("AES256")),
            secure_transport: Some(false),
            mfa_delete: Some(false),
            tagged: Tagged::default(),
            denied: Vec::new(),
        }
    }

    const OPERATIONS: [&str; 6] = [
        "GetPublicAccessBlock",
        "GetBucketPolicyStatus",
        "GetBucketAcl",
        "GetBucketEncryption",
        "GetBucketPolicy",
        "GetBucketVersioning",
    ];

    #[tokio::test]
    async fn access_denied_leaves_that_answer_unknown() {
        let api = fake([
            bucket("a", &[]),
            bucket("b", &[("GetBucketPolicyStatus", "AccessDenied")]),
            bucket("c", &[]),
        ]);
        let data = collect(&api, 2, &Default::default()).await.unwrap();
        assert_eq!(data.account_public_access_block, RESTRICT);
        let b = BucketRecord {
            policy_public: None,
            denied: vec!["GetBucketPolicyStatus"],
            ..complete("b", "us-east-1")
        };
        assert_eq!(
            data.buckets,
            [complete("a", "us-east-1"), b, complete("c", "us-east-1")]
        );
    }

    #[tokio::test]
    async fn a_bucket_deleted_after_listing_is_dropped() {
        for op in OPERATIONS.into_iter().chain(["GetBucketLocation"]) {
            let mut gone = bucket("gone", &[(op, "NoSuchBucket")]);
            gone.listed_region = None;
            let data = collect(&fake([bucket("kept", &[]), gone]), 2, &Default::default())
                .await
                .unwrap();
            assert_eq!(data.buckets, [complete("kept", "us-east-1")], "{op}");
        }
    }

    #[tokio::test]
    async fn any_other_error_fails_the_run() {
        for op in OPERATIONS.into_iter().chain(["GetBucketLocation"]) {
            let mut b = bucket("b", &[(op, "Throttling")]);
            b.listed_region = None;
            let err = collect(&fake([bucket("a", &[]), b]), 2, &Default::default())
                .await
                .unwrap_err();
            assert_eq!(err.aws_code(), Some("Throttling"), "{op}");
        }
    }

    #[tokio::test]
    async fn a_bucket_without_listed_region_is_located() {
        let mut found = bucket("found", &[]);
        found.listed_region = None;
        let mut hidden = bucket("hidden", &[("GetBucketLocation", "AccessDenied")]);
        hidden.listed_region = None;
        let api = fake([found, hidden]);
        let data = collect(&api, 2, &Default::default()).await.unwrap();
        let hidden = BucketRecord {
            name: "hidden".into(),
            region: "unknown".into(),
            public_access_block: None,
            policy_public: None,
            acl_public: None,
            encryption: None,
            secure_transport: None,
            mfa_delete: None,
            denied: vec!["GetBucketLocation"],
            tagged: Default::default(),
        };
        assert_eq!(data.buckets, [complete("found", "eu-west-1"), hidden]);
        // Each bucket is asked in its own region; without one there is nothing to ask.
        let found_calls = api.calls_for("found");
        assert_eq!(found_calls[0].0, "GetBucketLocation");
        assert_eq!(found_calls.len(), 7);
        assert!(found_calls[1..].iter().all(|(_, r)| r == "eu-west-1"));
        assert_eq!(api.calls_for("hidden").len(), 1);
    }

    #[tokio::test]
    async fn buckets_come_out_sorted_by_name() {
        let api = fake([
            bucket("zeta", &[]),
            bucket("alpha", &[]),
            bucket("mid", &[]),
        ]);
        let data = collect(&api, 3, &Default::default()).await.unwrap();
        let names: Vec<_> = data.buckets.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
    }

    #[test]
    fn public_is_policy_or_acl_unless_a_block_neutralises_it() {
        #[rustfmt::skip]
        let table = [
            // (policy public, ACL public, bucket block, account block) -> public
            ("nothing blocks a public policy", Some(true), Some(false), Some(OFF), OFF, Some(true)),
            ("bucket restricts public buckets", Some(true), Some(false), Some(RESTRICT), OFF, Some(false)),
            ("account restricts public buckets", Some(true), Some(false), Some(OFF), RESTRICT, Some(false)),
            ("bucket ignores public ACLs", Some(false), Some(true), Some(IGNORE), OFF, Some(false)),
            ("account ignores public ACLs", Some(false), Some(true), Some(OFF), IGNORE, Some(false)),
            ("restricting does not cover ACLs", Some(false), Some(true), Some(RESTRICT), RESTRICT, Some(true)),
            ("nothing public", Some(false), Some(false), Some(OFF), OFF, Some(false)),
            ("policy unknown, ACL private", None, Some(false), Some(OFF), OFF, None),
            ("policy unknown, ACL public", None, Some(true), Some(OFF), OFF, Some(true)),
            ("bucket block unknown", Some(true), Some(false), None, OFF, None),
            ("bucket block unknown, account blocks", Some(true), Some(true), None, IGNORE_AND_RESTRICT, Some(false)),
        ];
        for (case, policy, acl, block, account, want) in table {
            let b = BucketRecord {
                policy_public: policy,
                acl_public: acl,
                public_access_block: block,
                ..complete("b", "us-east-1")
            };
            assert_eq!(b.public(&account), want, "{case}");
        }
    }

    #[test]
    fn encrypted_is_unknown_when_denied() {
        let with = |encryption| BucketRecord {
            encryption,
            ..complete("b", "us-east-1")
        };
        assert_eq!(with(None).encrypted(), None);
        assert_eq!(with(Some(Encryption::None)).encrypted(), Some(false));
        assert_eq!(
            with(Some(Encryption::Algorithm("aws:kms"))).encrypted(),
            Some(true)
        );
    }

    #[test]
    fn secure_transport_needs_a_full_deny_without_tls() {
        let policy =
            |statement: &str| format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#);
        let full = r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#;
        assert!(requires_secure_transport(&policy(full), "b"));
        let variants = [
            // Principal {"AWS": "*"}, Action "*", a wildcard resource, a boolean false.
            (
                r#"{"Effect":"Deny","Principal":{"AWS":["*"]},"Action":"*","Resource":"arn:aws:s3:::b*","Condition":{"Bool":{"aws:securetransport":false}}}"#,
                true,
            ),
            // Only some actions: the others stay open over HTTP.
            (
                r#"{"Effect":"Deny","Principal":"*","Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
                false,
            ),
            // Objects only, not the bucket.
            (
                r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
                false,
            ),
            // Another bucket.
            (
                r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::other","arn:aws:s3:::other/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
                false,
            ),
            // Allow over TLS is not a deny over HTTP.
            (
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#,
                false,
            ),
            // One principal only.
            (
                r#"{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
                false,
            ),
            // No condition: a deny of everything, which is not this control.
            (
                r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}"#,
                false,
            ),
        ];
        for (statement, want) in variants {
            assert_eq!(
                requires_secure_transport(&policy(statement), "b"),
                want,
                "{statement}"
            );
        }
        assert!(!requires_secure_transport("not json", "b"));
        assert!(glob("arn:aws:s3:::b*", "arn:aws:s3:::b/*"));
        assert!(glob("*", "anything"));
        assert!(!glob("arn:aws:s3:::b", "arn:aws:s3:::bc"));
        assert!(glob("a?c*", "abcdef"));
    }

    #[tokio::test]
    async fn a_bucket_without_a_policy_costs_no_policy_status_call() {
        let api = fake([Bucket {
            no_policy: true,
            ..bucket("plain", &[])
        }]);
        let data = collect(&api, 4, &Default::default()).await.unwrap();
        let ops: Vec<&str> = api.calls_for("plain").iter().map(|(op, _)| *op).collect();
        assert!(!ops.contains(&"GetBucketPolicyStatus"), "{ops:?}");
        assert_eq!(data.buckets[0].policy_public, Some(false));
        assert_eq!(data.buckets[0].secure_transport, Some(false));
    }

    #[tokio::test]
    async fn tags_are_asked_only_when_owners_or_labels_want_them() {
        let api = fake([
            bucket("a", &[]),
            bucket("b", &[("GetBucketTagging", "AccessDenied")]),
        ]);
        collect(&api, 2, &Default::default()).await.unwrap();
        let asked = |api: &Fake| {
            let calls = api.calls.lock().unwrap();
            calls
                .iter()
                .filter(|(op, _, _)| *op == "GetBucketTagging")
                .count()
        };
        assert_eq!(asked(&api), 0);

        let owners = crate::owners::OwnersConfig {
            tag_keys: vec!["owner".into()],
            ..Default::default()
        };
        let tagging = Arc::new(Tagging::new(&owners, &Default::default(), false));
        let data = collect(&api, 2, &tagging).await.unwrap();
        assert_eq!(asked(&api), 2);
        // A denied tagging call leaves the owner empty and says so, like any denied call.
        assert_eq!(data.buckets[0].tagged.owner, "team-a");
        assert_eq!(data.buckets[1].tagged.owner, "");
        assert_eq!(data.buckets[1].denied, ["GetBucketTagging"]);
        let mut out = Vec::new();
        findings(
            "123456789012",
            &data,
            0.0,
            &ChecksConfig::default(),
            &mut out,
        );
        assert!(
            out.iter()
                .filter(|f| f.resource == "a")
                .all(|f| f.owner.as_str() == "team-a")
        );
    }
}
