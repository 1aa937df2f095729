//! The snapshot behind tests/golden/: two accounts, the IAM, S3, EC2, EBS and VPC collectors, AWS
//! call counters, and a discovery that failed after one that worked.
//!
//! tests/golden.rs compares its exposition with the golden files; tests/differential.rs adds to it
//! and encodes it with prometheus-client too. Only those two include this file (by path, not
//! through common/mod.rs), so a change to the collectors' data types touches these tests only.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use infraaudit::aws::counters::ApiMetrics;
use infraaudit::aws::ec2::{AclEntry, Instance, NetworkAcl, Permission, SecurityGroup};
use infraaudit::aws::iam::{
    AuthorizationDetails, Entity, EntityKind, ManagedPolicy, PasswordPolicy, ServerCertificate,
};
use infraaudit::aws::s3::{Encryption, PublicAccessBlock};
use infraaudit::collector::ebs::{self, EbsData};
use infraaudit::collector::ec2::{self, Ec2Data, RegionRecord};
use infraaudit::collector::iam::credential_report;
use infraaudit::collector::iam::{self, AccessKeyRecord, IamData};
use infraaudit::collector::iam_authz::{self, AuthzData};
use infraaudit::collector::regions::Regional;
use infraaudit::collector::s3::{self, BucketRecord, S3Data};
use infraaudit::collector::vpc::{self, VpcData, VpcRegion};
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
                owner: String::new(),
            },
            AccountInfo {
                id: STAGING.into(),
                name: "staging".into(),
                ou: String::new(),
                owner: String::new(),
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
    store.record(
        PROD,
        "ebs",
        Outcome::Success(ebs::SPEC.record(PROD, Arc::new(ebs_data()))),
        0.5,
        NOW - 1800.0,
    );
    store.record(
        PROD,
        "vpc",
        Outcome::Success(vpc::SPEC.record(PROD, Arc::new(vpc_data()))),
        1.5,
        NOW - 240.0,
    );
    // The second account's IAM run has never succeeded; it has no EC2, EBS or VPC collector.
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
                tagging: Default::default(),
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
        tags: Vec::new(),
    };
    let policy = |name: &str, document: &str| ManagedPolicy {
        name: name.into(),
        arn: format!("arn:aws:iam::{PROD}:policy/{name}"),
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
            policies: vec![policy("break-glass", admin), policy("s3-read", read)],
        },
        Some(vec![
            certificate("old-site", "2025-01-01T00:00:00Z"),
            certificate("www", "2027-06-01T00:00:00Z"),
        ]),
        Default::default(),
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
        tagged: Default::default(),
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
        tagging: Default::default(),
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
        tags: Vec::new(),
        tagged: Default::default(),
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
        tagging: Default::default(),
    }
}

/// Encryption by default off in us-east-1; eu-west-1 failed this run and keeps its last answer;
/// ap-south-1 has never answered.
pub fn ebs_data() -> EbsData {
    let region = |name: &str, success: bool, on: Option<bool>| Regional {
        region: name.into(),
        success,
        data: on.map(Arc::new),
    };
    EbsData {
        regions: vec![
            region("ap-south-1", false, None),
            region("eu-west-1", false, Some(true)),
            region("us-east-1", true, Some(false)),
        ],
    }
}

/// A NACL entry: inbound unless `egress`, on an IPv6 source when `cidr` has a `:`.
pub fn acl_entry(
    rule_number: i32,
    egress: bool,
    allow: bool,
    protocol: &str,
    ports: Option<(i32, i32)>,
    cidr: &str,
) -> AclEntry {
    let v6 = cidr.contains(':');
    AclEntry {
        rule_number,
        egress,
        allow,
        protocol: protocol.into(),
        ports,
        cidr_block: (!v6).then(|| cidr.into()),
        ipv6_cidr_block: v6.then(|| cidr.into()),
    }
}

/// Traffic of `protocol` (`-1`: all) between the ports, from or to the CIDRs.
pub fn permission(protocol: &str, ports: Option<(i32, i32)>, cidrs: &[&str]) -> Permission {
    let (v6, v4): (Vec<&str>, Vec<&str>) = cidrs.iter().partition(|c| c.contains(':'));
    Permission {
        protocol: protocol.into(),
        from_port: ports.map(|p| p.0),
        to_port: ports.map(|p| p.1),
        ipv4_ranges: v4.into_iter().map(String::from).collect(),
        ipv6_ranges: v6.into_iter().map(String::from).collect(),
        prefix_lists: 0,
        group_pairs: 0,
    }
}

/// us-east-1: the default ACL as AWS creates it (all traffic allowed: open), an ACL whose deny
/// with a lower number hides a later allow of SSH (closed), the default security group as AWS
/// creates it (fails) and a group opening RDP to ::/0 with all ports; eu-west-1 has never
/// answered.
pub fn vpc_data() -> VpcData {
    let star = |egress| {
        [
            acl_entry(32767, egress, false, "-1", None, "0.0.0.0/0"),
            acl_entry(32768, egress, false, "-1", None, "::/0"),
        ]
    };
    let mut default_acl = vec![
        acl_entry(100, false, true, "-1", None, "0.0.0.0/0"),
        acl_entry(100, true, true, "-1", None, "0.0.0.0/0"),
    ];
    default_acl.extend(star(false));
    default_acl.extend(star(true));
    let mut private_acl = vec![
        acl_entry(90, false, false, "6", Some((22, 22)), "0.0.0.0/0"),
        acl_entry(100, false, true, "6", Some((22, 22)), "0.0.0.0/0"),
        acl_entry(110, false, true, "6", Some((443, 443)), "0.0.0.0/0"),
    ];
    private_acl.extend(star(false));
    private_acl.extend(star(true));
    let mut self_reference = permission("-1", None, &[]);
    self_reference.group_pairs = 1;
    let us_east_1 = VpcRegion {
        network_acls: vec![
            NetworkAcl {
                network_acl_id: "acl-0us00000000000001".into(),
                vpc_id: "vpc-0us00000000000001".into(),
                is_default: true,
                entries: default_acl,
            },
            NetworkAcl {
                network_acl_id: "acl-0us00000000000002".into(),
                vpc_id: "vpc-0us00000000000001".into(),
                is_default: false,
                entries: private_acl,
            },
        ],
        security_groups: vec![
            SecurityGroup {
                group_id: "sg-0us00000000000001".into(),
                group_name: "default".into(),
                vpc_id: "vpc-0us00000000000001".into(),
                ingress: vec![self_reference],
                egress: vec![permission("-1", None, &["0.0.0.0/0", "::/0"])],
            },
            SecurityGroup {
                group_id: "sg-0us00000000000002".into(),
                group_name: "bastion".into(),
                vpc_id: "vpc-0us00000000000001".into(),
                ingress: vec![
                    permission("tcp", Some((0, 65535)), &["::/0"]),
                    permission("tcp", Some((443, 443)), &["0.0.0.0/0"]),
                ],
                egress: vec![permission("-1", None, &["0.0.0.0/0"])],
            },
        ],
    };
    VpcData {
        regions: vec![
            Regional {
                region: "eu-west-1".into(),
                success: false,
                data: None,
            },
            Regional {
                region: "us-east-1".into(),
                success: true,
                data: Some(Arc::new(us_east_1)),
            },
        ],
    }
}
