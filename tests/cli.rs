//! The one-shot subcommands end to end, the real binary against the emulator: `audit` finds
//! exactly the scenario's failures (and the daemon's summary), in every format and with every
//! filter, with Prowler's exit codes; `policy` prints the collectors' permission policy and a
//! trust policy without the ExternalId; `check-config` prints the configuration without secrets.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

const DAY: f64 = 86_400.0;

/// Runs `infraaudit ARGS --config FILE` (FILE holding `config`, when given) with the test
/// environment.
fn infraaudit(args: &[&str], config: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraaudit"));
    aws_test_env(&mut cmd).args(args);
    if let Some(config) = config {
        let path = scratch_dir("cli").join("config.toml");
        // The one-shot commands serve nothing; the address only has to be valid.
        std::fs::write(&path, config.replace("{listen}", "127.0.0.1:0")).unwrap();
        cmd.arg("--config").arg(path);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// `(account, check, resource)` of every failure the scenario has, by the rules of docs/metrics.md with
/// the default thresholds, worked out from what the emulator seeded, not by our code. The root
/// checks have no verdict: moto's credential report has no root row.
fn scenario_failures(emu: &Emulator) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut fail = |account: &str, check: &str, resource: String| {
        out.insert((account.to_owned(), check.to_owned(), resource));
    };
    for (account, users) in emu.seeded.as_object().unwrap() {
        for (user, keys) in users.as_object().unwrap() {
            for k in keys.as_array().unwrap() {
                if k["active"] != true {
                    continue;
                }
                let resource = format!("{user}/{}", k["id"].as_str().unwrap());
                let created = k["created"].as_f64().unwrap();
                let last = k["last_used"].as_f64().unwrap_or(created);
                if emu.now - created > 90.0 * DAY {
                    fail(account, "iam_access_key_age", resource.clone());
                }
                if emu.now - last > 45.0 * DAY {
                    fail(account, "iam_access_key_unused", resource);
                }
            }
        }
    }
    for (account, r) in emu.resources.as_object().unwrap() {
        for (user, c) in r["console"].as_object().unwrap() {
            if c["password"] == true && c["mfa"] == false {
                fail(account, "iam_user_console_mfa", user.clone());
            }
        }
        // The base account's policy meets the defaults (14, 24); the other has none.
        if r["password_policy"].is_null() {
            fail(account, "iam_password_policy", "account".into());
        }
        for b in r["buckets"].as_array().unwrap() {
            let name = b["name"].as_str().unwrap().to_owned();
            if b["public"] == true {
                fail(account, "s3_public_access", name.clone());
            }
            if b["encryption"].is_null() {
                fail(account, "s3_encryption", name);
            }
        }
        // The CIS checks of issue 15: the emulator lists their failing resources itself.
        for (check, v) in r["cis"].as_object().into_iter().flatten() {
            for resource in v["failing"].as_array().unwrap() {
                fail(account, check, resource.as_str().unwrap().to_owned());
            }
        }
        for (id, i) in r["instances"].as_object().unwrap() {
            if i["state"] == "terminated" {
                continue;
            }
            let resource = format!("{}/{id}", i["region"].as_str().unwrap());
            if i["imdsv2_required"] == false {
                fail(account, "ec2_imdsv2", resource.clone());
            }
            if i["public_ip"] == true {
                fail(account, "ec2_public_ip", resource);
            }
        }
    }
    out
}

#[test]
fn audit_json_finds_the_scenarios_failures_and_the_daemons_summary() {
    let emu = Emulator::start();
    let config = two_accounts(&emu.endpoint, "1h");
    let out = infraaudit(&["audit", "--format", "json"], Some(&config));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"], Value::Array(vec![]), "{stderr}");

    let findings = doc["findings"].as_array().unwrap();
    let key = |f: &Value| {
        (
            f["account_id"].as_str().unwrap().to_owned(),
            f["check"].as_str().unwrap().to_owned(),
            f["resource"].as_str().unwrap().to_owned(),
        )
    };
    for f in findings {
        assert!(f["status"] == "PASS" || f["status"] == "FAIL", "{f}");
        assert!(f["details"].is_string(), "{f}");
    }
    let failed: BTreeSet<_> = findings
        .iter()
        .filter(|f| f["status"] == "FAIL")
        .map(key)
        .collect();
    assert_eq!(failed, scenario_failures(&emu));
    // Each resource once per check; no root verdicts (moto has no root row); the terminated
    // instance nowhere.
    let all: BTreeSet<_> = findings.iter().map(key).collect();
    assert_eq!(all.len(), findings.len());
    assert!(
        !findings
            .iter()
            .any(|f| f["check"].as_str().unwrap().starts_with("iam_root_"))
    );
    for r in emu.resources.as_object().unwrap().values() {
        for (id, i) in r["instances"].as_object().unwrap() {
            if i["state"] == "terminated" {
                assert!(
                    !findings
                        .iter()
                        .any(|f| f["resource"].as_str().unwrap().ends_with(id.as_str()))
                );
            }
        }
    }
    // The summary counts the failures, and is what the daemon exports for the same accounts.
    let summary: BTreeMap<(String, String), f64> = doc["summary"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(account, checks)| {
            checks
                .as_object()
                .unwrap()
                .iter()
                .map(|(check, n)| ((account.clone(), check.clone()), n.as_f64().unwrap()))
        })
        .collect();
    for ((account, check), n) in &summary {
        let counted = failed
            .iter()
            .filter(|(a, c, _)| a == account && c == check)
            .count();
        assert_eq!(*n, counted as f64, "{account}/{check}");
    }
    let d = Daemon::start("cli-daemon", &config);
    d.wait_ready(Duration::from_secs(60));
    let exported: BTreeMap<(String, String), f64> = d
        .scrape()
        .find("infraaudit_check_failed_resources", &[])
        .iter()
        .map(|s| {
            (
                (s.labels["account_id"].clone(), s.labels["check"].clone()),
                s.value,
            )
        })
        .collect();
    assert_eq!(summary, exported);
}

#[test]
fn audit_filters_and_formats() {
    let emu = Emulator::start();
    let config = two_accounts(&emu.endpoint, "1h");

    // CSV, one check: only S3 verdicts, one row per bucket of both accounts.
    let out = infraaudit(
        &["audit", "--format", "csv", "--checks", "s3_public_access"],
        Some(&config),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
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
            // Appended by owners (issue 16): empty without owners.
            "owner"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let mut want = BTreeSet::new();
    for (account, r) in emu.resources.as_object().unwrap() {
        for b in r["buckets"].as_array().unwrap() {
            let status = if b["public"] == true { "FAIL" } else { "PASS" };
            want.insert((
                account.clone(),
                b["name"].as_str().unwrap().to_owned(),
                status.to_owned(),
            ));
        }
    }
    assert!(rows.iter().all(|r| &r[1] == "s3_public_access"), "{rows:?}");
    let got: BTreeSet<_> = rows
        .iter()
        .map(|r| (r[0].to_owned(), r[2].to_owned(), r[3].to_owned()))
        .collect();
    assert_eq!(got.len(), rows.len());
    assert_eq!(got, want);

    // One account, a check that passes there: exit 0.
    let out = infraaudit(
        &[
            "audit",
            "--account",
            ROLE_ACCOUNT,
            "--checks",
            "ec2_imdsv2",
            "--format",
            "json",
        ],
        Some(&config),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["summary"],
        serde_json::json!({ ROLE_ACCOUNT: { "ec2_imdsv2": 0 } })
    );
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["status"], "PASS");

    // The table: a header, FAIL rows before PASS rows, a summary line.
    let out = infraaudit(&["audit", "--checks", "ec2_imdsv2"], Some(&config));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("STATUS  ACCOUNT"), "{stdout}");
    let statuses: Vec<&str> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["FAIL", "FAIL", "FAIL", "PASS", "PASS"],
        "{stdout}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &"2 account(s), 1 check(s): 3 FAIL, 2 PASS"
    );
}

#[test]
fn audit_refuses_unknown_checks_and_accounts_and_fails_without_verdicts() {
    let config = "[[accounts]]\nid = \"123456789012\"\n";
    let out = infraaudit(
        &["audit", "--checks", "s3_public_access,nope"],
        Some(config),
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("unknown check \"nope\""));
    let out = infraaudit(&["audit", "--account", "999999999999"], Some(config));
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("999999999999"));
    let bad = repo().join("tests/fixtures/config/bad_role_arn.toml");
    let out = infraaudit(&["audit", "--config", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("accounts[0].role_arn"));

    // Nothing answers: every verdict is missing, so exit 1, naming account and collector.
    let port = free_port();
    let config = format!(
        "[aws]\nendpoint_url = \"http://127.0.0.1:{port}\"\nmax_attempts = 1\n\
         [[accounts]]\nid = \"{BASE_ACCOUNT}\"\ncollectors = [\"s3\"]\n"
    );
    let out = infraaudit(&["audit", "--format", "json"], Some(&config));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("account {BASE_ACCOUNT}: collector s3 failed")),
        "{stderr}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"][0]["collector"], "s3");
    assert_eq!(doc["findings"], Value::Array(vec![]));
}

#[test]
fn policy_prints_the_permission_policy_and_a_trust_policy_without_the_external_id() {
    use infraaudit::collector::{permissions, policy_json};
    let emu = Emulator::start();
    let config = format!(
        "{}\n[collectors.s3]\nenabled = false\n",
        two_accounts(&emu.endpoint, "1h")
    );
    let want = policy_json(&permissions(["iam", "iam_authz", "ec2", "ebs", "vpc"]));

    // Text: two labelled blocks; the principal is the ambient credentials' account.
    let out = infraaudit(&["policy"], Some(&config));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains(EXTERNAL_ID), "{stdout}");
    let rest = stdout
        .strip_prefix("# Permission policy")
        .and_then(|s| s.split_once('\n'))
        .unwrap()
        .1;
    let (permission, trust) = rest.split_once("\n# Trust policy").unwrap();
    assert_eq!(permission, want);
    let trust: Value = serde_json::from_str(trust.split_once('\n').unwrap().1).unwrap();
    let statement = &trust["Statement"][0];
    assert_eq!(
        statement["Principal"]["AWS"],
        format!("arn:aws:iam::{BASE_ACCOUNT}:root")
    );
    assert_eq!(statement["Action"], "sts:AssumeRole");
    assert_eq!(
        statement["Condition"]["StringEquals"]["sts:ExternalId"],
        format!("<the ExternalId configured for account {ROLE_ACCOUNT}>")
    );

    // JSON, with the principal given: no AWS call needed.
    let out = infraaudit(
        &[
            "policy",
            "--format",
            "json",
            "--principal-account",
            "999999999999",
        ],
        Some(&config),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(EXTERNAL_ID));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["permission_policy"],
        serde_json::from_str::<Value>(&want).unwrap()
    );
    assert_eq!(
        doc["trust_policy"]["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::999999999999:root"
    );
}

#[test]
fn policy_without_a_principal_account_needs_sts() {
    let port = free_port();
    let config = format!("[aws]\nendpoint_url = \"http://127.0.0.1:{port}\"\nmax_attempts = 1\n");
    let out = infraaudit(&["policy"], Some(&config));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--principal-account"), "{stderr}");
    assert!(out.stdout.is_empty());
    let out = infraaudit(&["policy", "--principal-account", "12"], Some(&config));
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn the_shipped_example_configuration_passes_check_config() {
    let example = repo().join("config.example.toml");
    let out = infraaudit(
        &["check-config", "--config", example.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Every collector has its section in the example.
    let effective: Value = serde_json::from_slice(&out.stdout).unwrap();
    let example = std::fs::read_to_string(&example).unwrap();
    for name in effective["collectors"].as_object().unwrap().keys() {
        assert!(
            example.contains(&format!("[collectors.{name}]")),
            "config.example.toml has no [collectors.{name}]"
        );
    }
}

#[test]
fn check_config_prints_the_effective_configuration_without_secrets() {
    let config = two_accounts("http://127.0.0.1:9", "30m");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraaudit"));
    let path = scratch_dir("check-config").join("config.toml");
    std::fs::write(&path, config.replace("{listen}", "127.0.0.1:0")).unwrap();
    let out = aws_test_env(&mut cmd)
        .env("INFRAAUDIT_AWS__MAX_CONCURRENCY", "7")
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains(EXTERNAL_ID), "{stdout}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    // Defaults, the file and the environment, in that order.
    assert_eq!(doc["collectors"]["ec2"]["interval"], "15m");
    assert_eq!(doc["collectors"]["iam"]["interval"], "30m");
    assert_eq!(doc["checks"]["access_key_max_age"], "90d");
    assert_eq!(doc["aws"]["max_concurrency"], 7);
    assert_eq!(doc["accounts"][1]["external_id"], "<redacted>");
    assert_eq!(doc["accounts"][0]["external_id"], Value::Null);

    let bad = repo().join("tests/fixtures/config/bad_interval.toml");
    let out = infraaudit(&["check-config", "--config", bad.to_str().unwrap()], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("collectors.iam.interval"), "{stderr}");
}

/// A value from the environment is blamed on its variable, not on the file; an all-digit
/// ExternalId needs no quoting there.
#[test]
fn check_config_names_the_variable_a_bad_value_came_from() {
    let path = scratch_dir("check-config-env").join("config.toml");
    std::fs::write(&path, "[aws]\nmax_concurrency = 7\n").unwrap();
    let check = |vars: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraaudit"));
        aws_test_env(&mut cmd)
            .envs(vars.iter().copied())
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = check(&[("INFRAAUDIT_AWS__MAX_CONCURRENCY", "0")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("INFRAAUDIT_AWS__MAX_CONCURRENCY: aws.max_concurrency: must be between"),
        "{stderr}"
    );
    assert!(!stderr.contains("config.toml"), "{stderr}");

    let out = check(&[
        ("INFRAAUDIT_ORGANIZATIONS__ENABLED", "true"),
        ("INFRAAUDIT_ORGANIZATIONS__EXTERNAL_ID", "001234567890"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("1234567890"));
}

/// The README's exit codes of the daemon: 1 when it cannot start because the listen address is
/// taken, 2 for a command-line usage error.
#[test]
fn a_taken_listen_address_exits_1_and_a_usage_error_exits_2() {
    let run = |args: &[&str], what: &str| exit_within(args, Duration::from_secs(30), what);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let path = scratch_dir("cli-taken").join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten_address = \"{addr}\"\n[aws]\nendpoint_url = \"http://127.0.0.1:9\"\n\
             [[accounts]]\nid = \"{BASE_ACCOUNT}\"\n"
        ),
    )
    .unwrap();
    let out = run(
        &["--config", path.to_str().unwrap()],
        "the daemon started on a taken address",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    drop(taken);

    for args in [
        &["--no-such-flag"][..],
        &["no-such-command"],
        &["--config"],
        &["audit", "--format", "nope"],
    ] {
        let out = run(args, "a usage error was not refused");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        // clap's message, not a configuration error's.
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{args:?}: {stderr}");
    }
}

/// `--check-config` is a deprecated alias, kept for scripts: same output as before.
#[test]
fn deprecated_check_config_flag_still_works() {
    let out = infraaudit(
        &["--check-config"],
        Some("[[accounts]]\nid = \"123456789012\"\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "configuration OK\n");
    assert!(text(&out.stderr).contains("deprecated"));
    let bad = repo().join("tests/fixtures/config/bad_interval.toml");
    let out = infraaudit(&["--check-config", "--config", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(64));
}

/// The daemon as `make run` starts it on a machine without AWS credentials (no AWS variables,
/// no ~/.aws in its empty HOME, default logging), plus `env`: its exit code and stderr.
fn run_without_credentials(name: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = scratch_dir(name);
    let path = dir.join("config.toml");
    // Nothing leaves loopback even if a credential were found somewhere.
    std::fs::write(
        &path,
        "[server]\nlisten_address = \"127.0.0.1:0\"\n[aws]\nendpoint_url = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraaudit"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &dir)
        .envs(env.iter().copied())
        .arg("--config")
        .arg(&path);
    let out = command_exits_within(
        &mut cmd,
        Duration::from_secs(60),
        &format!("{name}: the daemon went on without credentials"),
    );
    (out.status.code(), text(&out.stderr))
}

/// The message ends stderr, in two lines, and names what to do; none of the SDK's chain.
fn assert_says_what_to_do(code: Option<i32>, stderr: &str) {
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("infraaudit: no AWS credentials "))
        .unwrap_or_else(|| panic!("no 'no AWS credentials' line:\n{stderr}"));
    assert_eq!(
        lines.len() - at,
        2,
        "the message is not the last two lines:\n{stderr}"
    );
    assert!(lines[at + 1].contains("docs/aws-setup.md"), "{stderr}");
    assert!(lines[at + 1].contains("make demo"), "{stderr}");
    for noise in ["dispatch", "ProviderError", "WARN", "provider failed"] {
        assert!(!stderr.contains(noise), "{noise:?} in:\n{stderr}");
    }
}

/// `make run` without credentials exits 1 at once with two lines that say what to do.
#[test]
fn without_credentials_the_daemon_says_what_to_do_in_two_lines() {
    let (code, stderr) = run_without_credentials(
        "cli-no-credentials",
        &[("AWS_EC2_METADATA_DISABLED", "true")],
    );
    assert_says_what_to_do(code, &stderr);
    assert_eq!(stderr.lines().count(), 2, "{stderr}");

    // Off EC2 the chain ends at the instance metadata service, which may refuse (a proxy's 403
    // here, on loopback): the same two lines, with the refusal's cause.
    let imds = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", imds.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in imds.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 403 Forbidden\r\ncontent-length: 6\r\nconnection: close\r\n\r\ndenied",
            );
        }
    });
    let (code, stderr) = run_without_credentials(
        "cli-imds-refuses",
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)],
    );
    assert_says_what_to_do(code, &stderr);
    assert!(
        stderr.contains(
            "no AWS credentials could be loaded (environment, ~/.aws, instance or container role): "
        ),
        "{stderr}"
    );
}
