//! The CIS checks of issue 15 end to end: the emulator seeds, in both accounts, a failing and a
//! passing resource for each (tests/emulator/moto_emulator.py, key `cis` of its JSON, with the
//! resource names the findings use), and the daemon's check summary, the API's audit results and
//! `infraaudit audit --format json` and `csv` must all give each resource its verdict, with the
//! check's CIS id and severity.
//!
//! `--aws-like-report` gives the credential reports a `<root_account>` row. moto cannot assign a
//! hardware MFA device to root, so a passing `iam_root_hardware_mfa` is tested on recorded
//! AWS-format answers in src/collector/iam/ (unit tests).

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "cis-test-token-0123456789";

/// The new checks; each must fail and pass somewhere in the emulator.
const CHECKS: [&str; 16] = [
    "iam_root_hardware_mfa",
    "iam_root_recent_use",
    "iam_user_password_unused",
    "iam_user_initial_access_key",
    "iam_user_multiple_active_keys",
    "iam_user_direct_policies",
    "iam_policy_full_admin",
    "iam_support_role",
    "iam_server_certificate_expired",
    "iam_cloudshell_full_access",
    "s3_secure_transport",
    "s3_mfa_delete",
    "ec2_ebs_default_encryption",
    "vpc_nacl_admin_ports_open",
    "ec2_security_group_admin_ports_open",
    "vpc_default_security_group_open",
];

/// Checks whose findings name only failing resources (the holders of a policy), so a passing
/// resource has no row at all rather than a PASS row.
const HOLDERS_ONLY: [&str; 1] = ["iam_cloudshell_full_access"];

/// account -> check -> (failing, passing) resources, as seeded.
type Expected = BTreeMap<String, BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>>;

fn expected(emu: &Emulator) -> Expected {
    let names = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect()
    };
    emu.resources
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r.get("cis").is_some())
        .map(|(account, r)| {
            let checks = r["cis"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(check, v)| (check.clone(), (names(&v["failing"]), names(&v["passing"]))))
                .collect();
            (account.clone(), checks)
        })
        .collect()
}

/// (check, resource) -> status of one account's findings, each resource once per check.
fn verdicts(findings: &[Value]) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for f in findings {
        let key = (
            f["check"].as_str().unwrap().to_owned(),
            f["resource"].as_str().unwrap().to_owned(),
        );
        let status = f["status"].as_str().unwrap().to_owned();
        assert!(out.insert(key.clone(), status).is_none(), "{key:?} twice");
    }
    out
}

/// Every seeded resource has its verdict in `findings` (one account's).
fn assert_verdicts(
    account: &str,
    want: &BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    findings: &[Value],
    source: &str,
) {
    let got = verdicts(findings);
    for (check, (failing, passing)) in want {
        for r in failing {
            assert_eq!(
                got.get(&(check.clone(), r.clone())).map(String::as_str),
                Some("FAIL"),
                "{source}: {account} {check} {r} should fail"
            );
        }
        for r in passing {
            let status = got.get(&(check.clone(), r.clone())).map(String::as_str);
            if HOLDERS_ONLY.contains(&check.as_str()) {
                assert_ne!(status, Some("FAIL"), "{source}: {account} {check} {r}");
            } else {
                assert_eq!(
                    status,
                    Some("PASS"),
                    "{source}: {account} {check} {r} should pass"
                );
            }
        }
        // Nothing fails that was not seeded to fail.
        let failed: BTreeSet<&String> = got
            .iter()
            .filter(|((c, _), s)| c == check && *s == "FAIL")
            .map(|((_, r), _)| r)
            .collect();
        assert_eq!(
            failed,
            failing.iter().collect(),
            "{source}: {account} {check}"
        );
    }
}

#[test]
fn every_cis_check_fails_and_passes_in_metrics_api_and_audit() {
    let emu = Emulator::start_with(&["--aws-like-report"]);
    let want = expected(&emu);
    assert_eq!(want.len(), 2, "both accounts seed CIS resources");
    // Each check has a failing and a passing resource in some account (root hardware MFA
    // passes only in the unit tests: see the file's doc).
    for check in CHECKS {
        let any = |f: fn(&(BTreeSet<String>, BTreeSet<String>)) -> bool| {
            want.values().any(|checks| checks.get(check).is_some_and(f))
        };
        assert!(
            any(|(f, _)| !f.is_empty()),
            "{check}: nothing seeded to fail"
        );
        if check != "iam_root_hardware_mfa" {
            assert!(
                any(|(_, p)| !p.is_empty()),
                "{check}: nothing seeded to pass"
            );
        }
        for checks in want.values() {
            assert!(
                checks.contains_key(check),
                "{check} not in the emulator's cis"
            );
        }
    }

    let config = format!(
        "{}\n[api]\nenabled = true\nbearer_tokens = [\"{TOKEN}\"]\n",
        two_accounts(&emu.endpoint, "1h")
    );
    let d = Daemon::start("cis", &config);
    d.wait_ready(Duration::from_secs(120));
    let s = d.scrape();

    // The check summary counts the seeded failures, per account and check.
    for (account, checks) in &want {
        for (check, (failing, _)) in checks {
            assert_eq!(
                s.value(
                    "infraaudit_check_failed_resources",
                    &[("account_id", account), ("check", check)]
                ),
                Some(failing.len() as f64),
                "{account}/{check}"
            );
        }
    }
    // One info series per check, with its CIS id.
    let info: BTreeMap<String, (String, String)> = s
        .find("infraaudit_check_info", &[])
        .iter()
        .map(|x| {
            (
                x.labels["check"].clone(),
                (x.labels["cis"].clone(), x.labels["severity"].clone()),
            )
        })
        .collect();
    for check in CHECKS {
        assert!(!info[check].0.is_empty(), "{check} has no CIS id");
    }
    assert_eq!(info["ec2_security_group_admin_ports_open"].0, "5.2,5.3");
    assert_eq!(info["iam_root_hardware_mfa"], ("1.6".into(), "high".into()));

    // The API's audit of each account: the same verdicts, with CIS id and severity.
    for (account, checks) in &want {
        let (status, body) = d.api(
            TOKEN,
            "POST",
            "/api/audit/start",
            Some(json!({"account_id": account})),
        );
        assert_eq!(status, 202, "{body}");
        let id = body["audit_id"].as_str().unwrap().to_owned();
        let done = poll(Duration::from_secs(90), "the audit to finish", || {
            let (_, b) = d.api(TOKEN, "GET", &format!("/api/audit/status/{id}"), None);
            (b["status"] != "running").then_some(b)
        });
        assert_eq!(done["status"], "succeeded", "{done}");
        let results = done["results"].as_array().unwrap();
        for r in results {
            let check = r["check"].as_str().unwrap();
            assert_eq!(r["cis"], info[check].0.as_str(), "{r}");
            assert_eq!(r["severity"], info[check].1.as_str(), "{r}");
        }
        assert_verdicts(account, checks, results, "API");
    }

    // `infraaudit audit`, JSON and CSV.
    let path = scratch_dir("cis-cli").join("config.toml");
    std::fs::write(&path, config.replace("{listen}", "127.0.0.1:0")).unwrap();
    let run = |format: &str| {
        let out = aws_test_env(&mut Command::new(env!("CARGO_BIN_EXE_infraaudit")))
            .args(["audit", "--format", format, "--checks", &CHECKS.join(",")])
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        // 3: some check failed.
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let doc: Value = serde_json::from_slice(&run("json")).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    for (account, checks) in &want {
        let mine: Vec<Value> = findings
            .iter()
            .filter(|f| f["account_id"] == account.as_str())
            .cloned()
            .collect();
        for f in &mine {
            let check = f["check"].as_str().unwrap();
            assert!(CHECKS.contains(&check), "{f}");
            assert_eq!(f["cis"], info[check].0.as_str(), "{f}");
            assert_eq!(f["severity"], info[check].1.as_str(), "{f}");
        }
        assert_verdicts(account, checks, &mine, "audit --format json");
    }
    let csv = run("csv");
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "account_id",
            "check",
            "resource",
            "status",
            "details",
            "cis",
            "severity",
            "owner"
        ]
    );
    let rows: Vec<Value> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            json!({"account_id": &r[0], "check": &r[1], "resource": &r[2], "status": &r[3], "cis": &r[5], "severity": &r[6]})
        })
        .collect();
    assert_eq!(rows.len(), findings.len());
    for (account, checks) in &want {
        let mine: Vec<Value> = rows
            .iter()
            .filter(|f| f["account_id"] == account.as_str())
            .cloned()
            .collect();
        assert_verdicts(account, checks, &mine, "audit --format csv");
    }
}
