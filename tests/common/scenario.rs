//! The snapshot behind tests/golden/: two accounts, the IAM, S3 and EC2 collectors, AWS call
//! counters, and a discovery that failed after one that worked.
//!
//! tests/golden.rs compares its exposition with the golden files; tests/differential.rs adds to it
//! and encodes it with prometheus-client too. Only those two include this file (by path, not
//! through common/mod.rs), so a change to the collectors' data types touches these tests only.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use infraaudit::aws::counters::ApiMetrics;
use infraaudit::aws::ec2::Instance;
use infraaudit::aws::iam::{
    AuthorizationDetails, Entity, EntityKind, ManagedPolicy, PasswordPolicy, ServerCertificate,
};
use infraaudit::aws::s3::{Encryption, PublicAccessBlock};
use infraaudit::collector::ec2::{self, Ec2Data, RegionRecord};
use infraaudit::collector::iam::credential_report;
use infraaudit::collector::iam::{self, AccessKeyRecord, IamData};
use infraaudit::collector::iam_authz::{self, AuthzData};
use infraaudit::collector::s3::{self, BucketRecord, S3Data};
use infraaudit::config::Config;
use infraaudit::metrics::Exporter;
use infraaudit::snapshot::{AccountInfo, Outcome, SnapshotStore};

/// 2026-11-23T12:00:00Z: ages in the golden file are relative to this.
pub const NOW: f64 = 1_795_435_200.0;

pub const PROD: &str = "123456789012";
pub const STAGING: &str = "210987654321";

pub fn fixed_clock() -> f64 {
    NOW
}

/// The golden scenario, served under `config`; also returns the store and the AWS call counters.
pub fn scenario(config: &Config) -> (Exporter, Arc<SnapshotStore>, Arc<ApiMetrics>) {
    let report = credential_report::parse(
        &std::fs::read(
            super::common::repo().join("tests/fixtures/credential_report/aws_with_root.csv"),
        )
        .unwrap(),
    )
    .unwrap();
    // Key ids as ListAccessKeys would have resolved them.
    let mut keys = Vec::new();
    for row in report.users() {
        for (slot, ks) in row.present_keys() {
            keys.push(AccessKeyRecord {
                user: row.user.clone(),
                access_key_id: format!("AKIAEXAMPLE{:04}{slot}", keys.len()),
                slot,
                created: ks.last_rotated.unwrap(),
                active: ks.active,
                last_used: ks.last_used_date,
            });
        }
    }
    let generated: DateTime<Utc> = "2026-11-23T11:15:00Z".parse().unwrap();
    // Weaker than the CIS defaults: too short, reuse allowed.
    let policy = PasswordPolicy {
        minimum_length: Some(8),
        max_age_days: Some(90),
        reuse_prevention: None,
        require_symbols: false,
        require_numbers: true,
        require_uppercase: true,
        require_lowercase: true,
    };

    let store = Arc::new(SnapshotStore::new(
        vec![
            AccountInfo {
                id: PROD.into(),
                name: "prod".into(),
                // Found by discovery under an OU; staging is configured and not in the organization.
                ou: "ou-ab12-cdef3456".into(),
            },
            AccountInfo {
                id: STAGING.into(),
                name: "staging".into(),
                ou: String::new(),
            },
        ],
        5,
    ));
    // The last discovery failed; the one before found 7 accounts.
    store.record_discovery(Some(7), NOW - 7200.0);
    store.record_discovery(None, NOW - 3600.0);
    let mut iam = IamData::new(&report, Some(generated), keys, Some(policy));
    // The report says not_supported; GetAccountSummary's AccountPasswordPresent said yes, and
    // ListVirtualMFADevices found root's device: a virtual one.
    iam.root.as_mut().unwrap().password_enabled = Some(true);
    iam.root.as_mut().unwrap().virtual_mfa = Some(true);
    store.record(
        PROD,
        "iam",
        Outcome::Success(iam::SPEC.record(PROD, Arc::new(iam))),
        1.25,
        NOW - 600.0,
    );
    store.record(
        PROD,
        "iam_authz",
        Outcome::Success(iam_authz::SPEC.record(PROD, Arc::new(authz_data()))),
        0.5,
        NOW - 600.0,
    );
    store.record(
        PROD,
        "s3",
        Outcome::Success(s3::SPEC.record(PROD, Arc::new(s3_data()))),
        2.5,
        NOW - 900.0,
    );
    store.record(
        PROD,
        "ec2",
        Outcome::Success(ec2::SPEC.record(PROD, Arc::new(ec2_data()))),
        0.75,
        NOW - 120.0,
    );
    // The second account's IAM run has never succeeded; it has no EC2 collector.
    store.record(STAGING, "iam", Outcome::Failure, 30.0, NOW - 60.0);
    let all_blocked = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
    store.record(
        STAGING,
        "s3",
        Outcome::Success(s3::SPEC.record(
            STAGING,
            Arc::new(S3Data {
                account_public_access_block: all_blocked,
                buckets: Vec::new(),
            }),
        )),
        0.5,
        NOW - 300.0,
    );

    let api = Arc::new(ApiMetrics::default());
    count(&api, &AWS);
    let exporter = Exporter::new(
        store.clone(),
        api.clone(),
        config,
        VERSION,
        REVISION,
        fixed_clock,
    );
    (exporter, store, api)
}

/// AWS calls as the SDK interceptor would count them, apart so that a test can read them back.
pub struct AwsCalls {
    /// (account, service, operation, error code if it failed, how many)
    pub calls: &'static [(
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        u64,
    )],
    /// Assumed-role credentials dropped: (account, code)
    pub dropped: &'static [(&'static str, &'static str)],
    /// Waits for a concurrency slot: (account, seconds)
    pub slot_waits: &'static [(&'static str, f64)],
}

pub const AWS: AwsCalls = AwsCalls {
    calls: &[
        (PROD, "iam", "GenerateCredentialReport", None, 1),
        (PROD, "iam", "GetCredentialReport", None, 1),
        (PROD, "iam", "ListAccessKeys", None, 4),
        (PROD, "s3", "GetBucketPolicyStatus", Some("AccessDenied"), 1),
        (
            PROD,
            "ec2",
            "DescribeInstances",
            Some("UnauthorizedOperation"),
            1,
        ),
        (STAGING, "sts", "AssumeRole", Some("AccessDenied"), 1),
    ],
    dropped: &[(STAGING, "ExpiredToken")],
    slot_waits: &[(PROD, 0.25), (PROD, 1.5)],
};

pub const VERSION: &str = "0.0.0-test";
pub const REVISION: &str = "abcdef123456";

/// Counts `aws` into `api`, in the order listed.
pub fn count(api: &ApiMetrics, aws: &AwsCalls) {
    for &(account, service, operation, error, times) in aws.calls {
        for _ in 0..times {
            api.record(account, service, operation, error);
        }
    }
    let counted = std::sync::atomic::AtomicBool::new(true);
    for &(account, code) in aws.dropped {
        api.record_credentials_dropped(&counted, account, code);
    }
    for &(account, seconds) in aws.slot_waits {
        api.record_slot_wait(&counted, account, seconds);
    }
}

pub fn authz_data() -> AuthzData {
    let entity = |kind: EntityKind, name: &str, attached: &[&str], inline: usize| Entity {
        kind,
        name: name.into(),
        arn: format!("arn:aws:iam::{PROD}:{}/{name}", kind.as_str()),
        attached: attached.iter().map(|a| (*a).to_owned()).collect(),
        inline,
    };
    let policy = |name: &str, attachments: u32, document: &str| ManagedPolicy {
        name: name.into(),
        arn: format!("arn:aws:iam::{PROD}:policy/{name}"),
        attachments,
        document: Some(document.into()),
    };
    let admin =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let read = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}"#;
    let certificate = |name: &str, expires: &str| ServerCertificate {
        name: name.into(),
        arn: format!("arn:aws:iam::{PROD}:server-certificate/{name}"),
        expiration: expires.parse().unwrap(),
    };
    AuthzData::new(
        AuthorizationDetails {
            entities: vec![
                entity(
                    EntityKind::User,
                    "alice",
                    &["arn:aws:iam::aws:policy/AWSCloudShellFullAccess"],
                    1,
                ),
                entity(EntityKind::User, "bob", &[], 0),
                entity(
                    EntityKind::Group,
                    "admins",
                    &[&format!("arn:aws:iam::{PROD}:policy/break-glass")],
                    0,
                ),
                entity(
                    EntityKind::Role,
                    "support",
                    &["arn:aws:iam::aws:policy/AWSSupportAccess"],
                    0,
                ),
            ],
            policies: vec![policy("break-glass", 1, admin), policy("s3-read", 0, read)],
        },
        Some(vec![
            certificate("old-site", "2025-01-01T00:00:00Z"),
            certificate("www", "2027-06-01T00:00:00Z"),
        ]),
    )
}

pub fn s3_data() -> S3Data {
    let bucket = |name: &str, region: &str| BucketRecord {
        name: name.into(),
        region: region.into(),
        public_access_block: Some(PublicAccessBlock::default()),
        policy_public: Some(false),
        acl_public: Some(false),
        encryption: Some(Encryption::None),
        secure_transport: Some(false),
        mfa_delete: Some(false),
        denied: Vec::new(),
    };
    S3Data {
        account_public_access_block: PublicAccessBlock::default(),
        buckets: vec![
            BucketRecord {
                public_access_block: Some(PublicAccessBlock {
                    block_public_acls: true,
                    ignore_public_acls: true,
                    block_public_policy: true,
                    restrict_public_buckets: true,
                }),
                encryption: Some(Encryption::Algorithm("AES256")),
                secure_transport: Some(true),
                mfa_delete: Some(true),
                ..bucket("prod-logs", "us-east-1")
            },
            BucketRecord {
                policy_public: Some(true),
                ..bucket("prod-public-site", "eu-west-1")
            },
            // The role may not read this bucket's policy status: public is unknown.
            BucketRecord {
                policy_public: None,
                encryption: Some(Encryption::Algorithm("aws:kms")),
                mfa_delete: None,
                denied: vec!["GetBucketPolicyStatus", "GetBucketVersioning"],
                ..bucket("prod-restricted", "us-east-1")
            },
        ],
    }
}

pub fn ec2_data() -> Ec2Data {
    let instance = |id: &str, name: &str, v2: bool, public_ip: bool, state: &str| Instance {
        instance_id: id.into(),
        name: name.into(),
        state: state.into(),
        instance_type: "t3.micro".into(),
        imdsv2_required: v2,
        public_ip,
    };
    Ec2Data {
        regions: vec![
            // Failed this time: its last good instances are kept.
            RegionRecord {
                region: "eu-west-1".into(),
                success: false,
                instances: Arc::new(vec![instance(
                    "i-0eu000000000000001",
                    "batch",
                    false,
                    false,
                    "stopped",
                )]),
            },
            RegionRecord {
                region: "us-east-1".into(),
                success: true,
                instances: Arc::new(vec![
                    instance("i-0us000000000000001", "web", false, true, "running"),
                    instance("i-0us000000000000002", "app", true, false, "running"),
                ]),
            },
        ],
    }
}
