//! Posture end to end: every seeded user, password policy, bucket and instance of both emulator
//! accounts has its metrics with the right value, and the per-check summary agrees with them.
//!
//! The emulator's credential report has no `<root_account>` row, so the root metrics (and the two
//! root checks) must be absent here; their values are tested on recorded AWS reports in
//! src/collector/iam.rs and in the golden file.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::Value;

const DAY: f64 = 86_400.0;

fn flag(v: bool) -> Option<f64> {
    Some(if v { 1.0 } else { 0.0 })
}

#[test]
fn every_seeded_resource_has_its_metrics_and_the_summary_agrees() {
    let emu = Emulator::start();
    // The second account finds its regions with DescribeRegions.
    let d = Daemon::start("posture", &two_accounts_with(&emu.endpoint, "1h", ""));
    d.wait_ready(Duration::from_secs(90));
    let (status, _, body) = d.get("/metrics").unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let s = Scrape::parse(&text);

    for (account, r) in emu.resources.as_object().unwrap() {
        for collector in ["iam", "s3", "ec2"] {
            assert_eq!(
                s.value(
                    "infraaudit_collector_success",
                    &[("account_id", account), ("collector", collector)]
                ),
                Some(1.0),
                "{account}/{collector}"
            );
        }
        users(&s, account, &emu.seeded[account], &r["console"]);
        password_policy(&s, account, &r["password_policy"]);
        root_absent(&s, account);
        buckets(&s, account, r);
        instances(&s, account, &r["instances"]);
        summary_agrees_with_resources(&s, account);
        summary_matches_the_scenario(&s, account, r);
    }
    // The base account lists its two configured regions; the other found its own.
    let regions = |a: &str| {
        s.find("infraaudit_ec2_region_success", &[("account_id", a)])
            .iter()
            .map(|x| (x.labels["region"].clone(), x.value))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        regions(BASE_ACCOUNT),
        BTreeMap::from([("eu-west-1".into(), 1.0), ("us-east-1".into(), 1.0)])
    );
    let discovered = regions(ROLE_ACCOUNT);
    assert!(discovered.len() > 10, "DescribeRegions: {discovered:?}");
    assert!(discovered.values().all(|v| *v == 1.0));
    assert_eq!(discovered.get("ap-southeast-2"), Some(&1.0));

    let (ok, report) = promtool_check_metrics(&text);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

fn users(s: &Scrape, account: &str, seeded_keys: &Value, console: &Value) {
    let listed = s.find("infraaudit_iam_user_mfa_active", &[("account_id", account)]);
    let mut names: Vec<&str> = listed.iter().map(|x| x.labels["user"].as_str()).collect();
    names.sort_unstable();
    let mut want: Vec<&str> = seeded_keys
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    want.sort_unstable();
    assert_eq!(names, want, "{account}: one series per user");
    for user in want {
        let c = &console[user];
        let labels = [("account_id", account), ("user", user)];
        let password = c["password"].as_bool().unwrap_or(false);
        let mfa = c["mfa"].as_bool().unwrap_or(false);
        assert_eq!(
            s.value("infraaudit_iam_user_password_enabled", &labels),
            flag(password),
            "{account}/{user} password"
        );
        assert_eq!(
            s.value("infraaudit_iam_user_mfa_active", &labels),
            flag(mfa),
            "{account}/{user} mfa"
        );
        assert_eq!(
            s.value(
                "infraaudit_iam_user_password_last_used_timestamp_seconds",
                &labels
            ),
            c["password_last_used"].as_f64(),
            "{account}/{user} password last used (absent when unknown)"
        );
        let created = s
            .value("infraaudit_iam_user_created_timestamp_seconds", &labels)
            .unwrap();
        // The emulator creates every user 500 days before its start.
        assert!(
            (unix_now() - created - 500.0 * DAY).abs() < 600.0,
            "{account}/{user} created {created}"
        );
    }
}

fn password_policy(s: &Scrape, account: &str, policy: &Value) {
    let a = [("account_id", account)];
    if policy.is_null() {
        assert_eq!(
            s.value("infraaudit_iam_password_policy_present", &a),
            Some(0.0)
        );
        for name in [
            "infraaudit_iam_password_policy_minimum_length",
            "infraaudit_iam_password_policy_max_age_seconds",
            "infraaudit_iam_password_policy_reuse_prevention",
            "infraaudit_iam_password_policy_requirement",
        ] {
            assert!(
                s.find(name, &a).is_empty(),
                "{account}: {name} without a policy"
            );
        }
        return;
    }
    assert_eq!(
        s.value("infraaudit_iam_password_policy_present", &a),
        Some(1.0)
    );
    assert_eq!(
        s.value("infraaudit_iam_password_policy_minimum_length", &a),
        policy["MinimumPasswordLength"].as_f64()
    );
    assert_eq!(
        s.value("infraaudit_iam_password_policy_max_age_seconds", &a),
        policy["MaxPasswordAge"].as_f64().map(|d| d * DAY)
    );
    assert_eq!(
        s.value("infraaudit_iam_password_policy_reuse_prevention", &a),
        policy["PasswordReusePrevention"].as_f64()
    );
    for (class, field) in [
        ("symbols", "RequireSymbols"),
        ("numbers", "RequireNumbers"),
        ("uppercase", "RequireUppercaseCharacters"),
        ("lowercase", "RequireLowercaseCharacters"),
    ] {
        assert_eq!(
            s.value(
                "infraaudit_iam_password_policy_requirement",
                &[("account_id", account), ("class", class)]
            ),
            flag(policy[field].as_bool().unwrap()),
            "{account} {class}"
        );
    }
}

fn root_absent(s: &Scrape, account: &str) {
    let a = [("account_id", account)];
    for name in [
        "infraaudit_iam_root_mfa_enabled",
        "infraaudit_iam_root_password_enabled",
        "infraaudit_iam_root_access_keys_active",
        "infraaudit_iam_root_last_used_timestamp_seconds",
    ] {
        assert!(
            s.find(name, &a).is_empty(),
            "{account}: {name} without a root row"
        );
    }
}

const SETTINGS: [(&str, &str); 4] = [
    ("block_public_acls", "BlockPublicAcls"),
    ("ignore_public_acls", "IgnorePublicAcls"),
    ("block_public_policy", "BlockPublicPolicy"),
    ("restrict_public_buckets", "RestrictPublicBuckets"),
];

fn buckets(s: &Scrape, account: &str, r: &Value) {
    for (setting, field) in SETTINGS {
        assert_eq!(
            s.value(
                "infraaudit_s3_account_public_access_block",
                &[("account_id", account), ("setting", setting)]
            ),
            flag(r["account_block"][field].as_bool().unwrap_or(false)),
            "{account} account {setting}"
        );
    }
    let seeded = r["buckets"].as_array().unwrap();
    assert_eq!(
        s.find("infraaudit_s3_bucket_public", &[("account_id", account)])
            .len(),
        seeded.len(),
        "{account}: one series per bucket"
    );
    for b in seeded {
        let name = b["name"].as_str().unwrap();
        let l = [
            ("account_id", account),
            ("bucket", name),
            ("region", b["region"].as_str().unwrap()),
        ];
        assert_eq!(
            s.value("infraaudit_s3_bucket_public", &l),
            flag(b["public"].as_bool().unwrap()),
            "{name} public"
        );
        for (setting, field) in SETTINGS {
            let mut with = l.to_vec();
            with.push(("setting", setting));
            assert_eq!(
                s.value("infraaudit_s3_bucket_public_access_block", &with),
                flag(b["block"][field].as_bool().unwrap_or(false)),
                "{name} {setting}"
            );
        }
        let algorithm = b["encryption"].as_str();
        assert_eq!(
            s.value("infraaudit_s3_bucket_encryption_enabled", &l),
            flag(algorithm.is_some()),
            "{name} encryption"
        );
        let info = s.find("infraaudit_s3_bucket_encryption_info", &l);
        match algorithm {
            Some(alg) => {
                assert_eq!(info.len(), 1, "{name}");
                assert_eq!(info[0].labels["algorithm"], alg);
            }
            None => assert!(info.is_empty(), "{name}: no algorithm when unencrypted"),
        }
        assert!(
            s.find("infraaudit_s3_bucket_access_denied", &l).is_empty(),
            "{name}: nothing is denied in the emulator"
        );
    }
}

fn instances(s: &Scrape, account: &str, seeded: &Value) {
    let live = seeded
        .as_object()
        .unwrap()
        .values()
        .filter(|i| i["state"] != "terminated")
        .count();
    assert_eq!(
        s.find("infraaudit_ec2_instance_info", &[("account_id", account)])
            .len(),
        live,
        "{account}: one series per instance but terminated ones"
    );
    for (id, i) in seeded.as_object().unwrap() {
        if i["state"] == "terminated" {
            assert!(
                !s.text.contains(id.as_str()),
                "{id} is terminated and must not appear in any series"
            );
            continue;
        }
        let l = [
            ("account_id", account),
            ("region", i["region"].as_str().unwrap()),
            ("instance_id", id.as_str()),
        ];
        assert_eq!(
            s.value("infraaudit_ec2_instance_imdsv2_required", &l),
            flag(i["imdsv2_required"].as_bool().unwrap()),
            "{id} imdsv2"
        );
        assert_eq!(
            s.value("infraaudit_ec2_instance_public_ip", &l),
            flag(i["public_ip"].as_bool().unwrap()),
            "{id} public ip"
        );
        let mut info = l.to_vec();
        for key in ["name", "state", "instance_type"] {
            info.push((key, i[key].as_str().unwrap()));
        }
        assert_eq!(
            s.value("infraaudit_ec2_instance_info", &info),
            Some(1.0),
            "{id}"
        );
    }
}

fn count(s: &Scrape, name: &str, account: &str, pred: impl Fn(f64) -> bool) -> f64 {
    s.find(name, &[("account_id", account)])
        .iter()
        .filter(|x| pred(x.value))
        .count() as f64
}

fn summary(s: &Scrape, account: &str) -> BTreeMap<String, f64> {
    s.find(
        "infraaudit_check_failed_resources",
        &[("account_id", account)],
    )
    .iter()
    .map(|x| (x.labels["check"].clone(), x.value))
    .collect()
}

/// The summary recomputed from the resource series in the same scrape, with the rules of docs/metrics.md
/// and the default thresholds (90 and 45 days, minimum length 14, reuse 24).
fn summary_agrees_with_resources(s: &Scrape, account: &str) {
    let a = [("account_id", account)];
    let mut keys_old = 0.0;
    let mut keys_unused = 0.0;
    for age in s.find("infraaudit_iam_access_key_age_seconds", &a) {
        let id = [("access_key_id", age.labels["access_key_id"].as_str())];
        if s.value("infraaudit_iam_access_key_active", &id) != Some(1.0) {
            continue;
        }
        // The scrape's "now", from the key's own age.
        let created = s
            .value("infraaudit_iam_access_key_created_timestamp_seconds", &id)
            .unwrap();
        let now = created + age.value;
        let last = s
            .value("infraaudit_iam_access_key_last_used_timestamp_seconds", &id)
            .unwrap_or(created);
        keys_old += f64::from(age.value > 90.0 * DAY);
        keys_unused += f64::from(now - last > 45.0 * DAY);
    }
    let console_without_mfa = s
        .find("infraaudit_iam_user_password_enabled", &a)
        .iter()
        .filter(|p| {
            p.value == 1.0
                && s.value(
                    "infraaudit_iam_user_mfa_active",
                    &[("account_id", account), ("user", p.labels["user"].as_str())],
                ) == Some(0.0)
        })
        .count() as f64;
    let policy_weak = s.value("infraaudit_iam_password_policy_present", &a) == Some(0.0)
        || s.value("infraaudit_iam_password_policy_minimum_length", &a)
            .unwrap_or(0.0)
            < 14.0
        || s.value("infraaudit_iam_password_policy_reuse_prevention", &a)
            .unwrap_or(0.0)
            < 24.0;
    let want = BTreeMap::from([
        ("iam_access_key_age".to_owned(), keys_old),
        ("iam_access_key_unused".to_owned(), keys_unused),
        ("iam_user_console_mfa".to_owned(), console_without_mfa),
        ("iam_password_policy".to_owned(), f64::from(policy_weak)),
        (
            "s3_public_access".to_owned(),
            count(s, "infraaudit_s3_bucket_public", account, |v| v == 1.0),
        ),
        (
            "s3_encryption".to_owned(),
            count(s, "infraaudit_s3_bucket_encryption_enabled", account, |v| {
                v == 0.0
            }),
        ),
        (
            "ec2_imdsv2".to_owned(),
            count(s, "infraaudit_ec2_instance_imdsv2_required", account, |v| {
                v == 0.0
            }),
        ),
        (
            "ec2_public_ip".to_owned(),
            count(s, "infraaudit_ec2_instance_public_ip", account, |v| {
                v == 1.0
            }),
        ),
    ]);
    let mut want = want;
    want.extend(cis_summary(s, account));
    // The root checks are absent: unknown (no root row) is not zero.
    assert_eq!(summary(s, account), want, "{account}");
}

/// The CIS checks of issue 15, recomputed from their resource series with the rules of
/// docs/metrics.md.
fn cis_summary(s: &Scrape, account: &str) -> BTreeMap<String, f64> {
    let a = [("account_id", account)];
    let now = unix_now();
    let with = |name: &str, extra: (&str, &str)| s.find(name, &[("account_id", account), extra]);
    // Users: password, its last use and creation; keys: active, last use.
    let mut password_unused = 0.0;
    for p in s.find("infraaudit_iam_user_password_enabled", &a) {
        if p.value != 1.0 {
            continue;
        }
        let u = [("account_id", account), ("user", p.labels["user"].as_str())];
        let since = s
            .value(
                "infraaudit_iam_user_password_last_used_timestamp_seconds",
                &u,
            )
            .or(s.value("infraaudit_iam_user_created_timestamp_seconds", &u))
            .unwrap();
        password_unused += f64::from(now - since > 45.0 * DAY);
    }
    let mut active_by_user: BTreeMap<String, f64> = BTreeMap::new();
    let mut initial = 0.0;
    for k in s.find("infraaudit_iam_access_key_active", &a) {
        if k.value != 1.0 {
            continue;
        }
        let user = k.labels["user"].as_str();
        *active_by_user.entry(user.to_owned()).or_default() += 1.0;
        let id = [("access_key_id", k.labels["access_key_id"].as_str())];
        let used = s
            .value("infraaudit_iam_access_key_last_used_timestamp_seconds", &id)
            .is_some();
        let console = s.value(
            "infraaudit_iam_user_password_enabled",
            &[("account_id", account), ("user", user)],
        ) == Some(1.0);
        initial += f64::from(console && !used);
    }
    let mut direct: BTreeMap<String, f64> = BTreeMap::new();
    for p in s.find("infraaudit_iam_user_policies", &a) {
        *direct.entry(p.labels["user"].clone()).or_default() += p.value;
    }
    let full_admin = s
        .find("infraaudit_iam_policy_full_admin", &a)
        .iter()
        .filter(|p| {
            p.value == 1.0
                && s.value(
                    "infraaudit_iam_policy_attachments",
                    &[
                        ("account_id", account),
                        ("policy", p.labels["policy"].as_str()),
                    ],
                )
                .unwrap()
                    > 0.0
        })
        .count() as f64;
    let holders = |policy: &str| {
        with(
            "infraaudit_iam_aws_managed_policy_attached",
            ("policy", policy),
        )
        .len() as f64
    };
    let mut default_sg: BTreeMap<String, f64> = BTreeMap::new();
    for r in s.find("infraaudit_vpc_default_security_group_rules", &a) {
        *default_sg
            .entry(r.labels["security_group_id"].clone())
            .or_default() += r.value;
    }
    BTreeMap::from([
        ("iam_user_password_unused".to_owned(), password_unused),
        ("iam_user_initial_access_key".to_owned(), initial),
        (
            "iam_user_multiple_active_keys".to_owned(),
            active_by_user.values().filter(|n| **n > 1.0).count() as f64,
        ),
        (
            "iam_user_direct_policies".to_owned(),
            direct.values().filter(|n| **n > 0.0).count() as f64,
        ),
        ("iam_policy_full_admin".to_owned(), full_admin),
        (
            "iam_support_role".to_owned(),
            f64::from(holders("AWSSupportAccess") == 0.0),
        ),
        (
            "iam_cloudshell_full_access".to_owned(),
            holders("AWSCloudShellFullAccess"),
        ),
        (
            "iam_server_certificate_expired".to_owned(),
            count(
                s,
                "infraaudit_iam_server_certificate_expiry_timestamp_seconds",
                account,
                |t| t < now,
            ),
        ),
        (
            "s3_secure_transport".to_owned(),
            count(
                s,
                "infraaudit_s3_bucket_secure_transport_required",
                account,
                |v| v == 0.0,
            ),
        ),
        (
            "s3_mfa_delete".to_owned(),
            count(s, "infraaudit_s3_bucket_mfa_delete_enabled", account, |v| {
                v == 0.0
            }),
        ),
        (
            "ec2_ebs_default_encryption".to_owned(),
            count(s, "infraaudit_ebs_encryption_by_default", account, |v| {
                v == 0.0
            }),
        ),
        (
            "vpc_nacl_admin_ports_open".to_owned(),
            count(
                s,
                "infraaudit_vpc_network_acl_admin_ports_open",
                account,
                |v| v == 1.0,
            ),
        ),
        (
            "ec2_security_group_admin_ports_open".to_owned(),
            count(
                s,
                "infraaudit_vpc_security_group_admin_ports_open",
                account,
                |v| v == 1.0,
            ),
        ),
        (
            "vpc_default_security_group_open".to_owned(),
            default_sg.values().filter(|n| **n > 0.0).count() as f64,
        ),
    ])
}

/// The same summary from the scenario itself, so that a wrong resource metric cannot agree
/// with a wrong summary.
fn summary_matches_the_scenario(s: &Scrape, account: &str, r: &Value) {
    let buckets = r["buckets"].as_array().unwrap();
    let live: Vec<&Value> = r["instances"]
        .as_object()
        .unwrap()
        .values()
        .filter(|i| i["state"] != "terminated")
        .collect();
    let got = summary(s, account);
    let n = |v: usize| v as f64;
    assert_eq!(
        got["s3_public_access"],
        n(buckets.iter().filter(|b| b["public"] == true).count())
    );
    assert_eq!(
        got["s3_encryption"],
        n(buckets.iter().filter(|b| b["encryption"].is_null()).count())
    );
    assert_eq!(
        got["ec2_imdsv2"],
        n(live
            .iter()
            .filter(|i| i["imdsv2_required"] == false)
            .count())
    );
    assert_eq!(
        got["ec2_public_ip"],
        n(live.iter().filter(|i| i["public_ip"] == true).count())
    );
    let console = r["console"].as_object().unwrap();
    assert_eq!(
        got["iam_user_console_mfa"],
        n(console
            .values()
            .filter(|c| c["password"] == true && c["mfa"] == false)
            .count())
    );
    // The base account's policy is CIS-compliant (14, 24); the other has none.
    assert_eq!(
        got["iam_password_policy"],
        if r["password_policy"].is_null() {
            1.0
        } else {
            0.0
        }
    );
}
