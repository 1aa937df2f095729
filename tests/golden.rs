//! The whole `/metrics` output for a fixed scenario, compared with tests/golden/.
//! Regenerate with `make golden` (INFRAAUDIT_UPDATE_GOLDEN=1) and review the diff.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use infraaudit::aws::counters::ApiMetrics;
use infraaudit::aws::ec2::Instance;
use infraaudit::aws::iam::PasswordPolicy;
use infraaudit::aws::s3::{Encryption, PublicAccessBlock};
use infraaudit::collector::ec2::{self, Ec2Data, RegionRecord};
use infraaudit::collector::iam::credential_report;
use infraaudit::collector::iam::{self, AccessKeyRecord, IamData};
use infraaudit::collector::s3::{self, BucketRecord, S3Data};
use infraaudit::config::Config;
use infraaudit::metrics::{Exporter, Format};
use infraaudit::snapshot::{AccountInfo, Outcome, SnapshotStore};

/// 2026-11-23T12:00:00Z: ages in the golden file are relative to this.
const NOW: f64 = 1_795_435_200.0;

const PROD: &str = "123456789012";
const STAGING: &str = "210987654321";

fn fixed_clock() -> f64 {
    NOW
}

fn scenario() -> (Exporter, Arc<SnapshotStore>) {
    let report = credential_report::parse(
        &std::fs::read(common::repo().join("tests/fixtures/credential_report/aws_with_root.csv"))
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
    // The report says not_supported; GetAccountSummary's AccountPasswordPresent said yes.
    iam.root.as_mut().unwrap().password_enabled = Some(true);
    store.record(
        PROD,
        "iam",
        Outcome::Success(iam::SPEC.record(PROD, Arc::new(iam))),
        1.25,
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
    for op in ["GenerateCredentialReport", "GetCredentialReport"] {
        api.record(PROD, "iam", op, None);
    }
    for _ in 0..4 {
        api.record(PROD, "iam", "ListAccessKeys", None);
    }
    api.record(PROD, "s3", "GetBucketPolicyStatus", Some("AccessDenied"));
    api.record(
        PROD,
        "ec2",
        "DescribeInstances",
        Some("UnauthorizedOperation"),
    );
    api.record(STAGING, "sts", "AssumeRole", Some("AccessDenied"));
    let counted = std::sync::atomic::AtomicBool::new(true);
    api.record_credentials_dropped(&counted, STAGING, "ExpiredToken");
    api.record_slot_wait(&counted, PROD, 0.25);
    api.record_slot_wait(&counted, PROD, 1.5);
    let exporter = Exporter::new(
        store.clone(),
        api,
        &Config::default(),
        "0.0.0-test",
        "abcdef123456",
        fixed_clock,
    );
    (exporter, store)
}

fn s3_data() -> S3Data {
    let bucket = |name: &str, region: &str| BucketRecord {
        name: name.into(),
        region: region.into(),
        public_access_block: Some(PublicAccessBlock::default()),
        policy_public: Some(false),
        acl_public: Some(false),
        encryption: Some(Encryption::None),
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
                denied: vec!["GetBucketPolicyStatus"],
                ..bucket("prod-restricted", "us-east-1")
            },
        ],
    }
}

fn ec2_data() -> Ec2Data {
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

fn check(format: Format, file: &str) -> String {
    let got = scenario().0.render(format);
    let path = common::repo().join("tests/golden").join(file);
    if std::env::var_os("INFRAAUDIT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = common::read(&path);
    assert!(
        got == want,
        "{} differs from the output; run `make golden` if the change is intended.\n--- got ---\n{got}",
        path.display()
    );
    got
}

#[test]
fn text_format_matches_golden_and_passes_promtool() {
    let text = check(Format::Text, "metrics.txt");
    let (ok, report) = common::promtool_check_metrics(&text);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

#[test]
fn openmetrics_matches_golden() {
    let om = check(Format::OpenMetrics, "metrics.openmetrics.txt");
    assert!(om.ends_with("# EOF\n"));
}

#[test]
fn failed_findings_number_the_summary() {
    use infraaudit::checks::{findings, summary};
    let (_, store) = scenario();
    let snapshot = store.load();
    let config = Config::default();
    let mut compared = 0;
    for (account, check, failed) in summary(&snapshot, NOW, &config.checks) {
        let all = findings(&snapshot, account, NOW, &config.checks);
        let of_check: Vec<_> = all.iter().filter(|f| f.check == check).collect();
        assert!(!of_check.is_empty() || failed == 0, "{account} {check:?}");
        let n = of_check.iter().filter(|f| f.failed).count();
        assert_eq!(n, failed, "{account} {}: {of_check:#?}", check.name());
        compared += 1;
    }
    assert!(compared >= 12, "{compared}");
    // Checks without a summary (unknown data) have no findings either.
    let staging = findings(&snapshot, STAGING, NOW, &config.checks);
    assert!(staging.iter().all(|f| f.check.name().starts_with("s3_")));
}
