//! End to end: the real binary against the moto emulator on loopback
//! (`tests/emulator/moto_emulator.py`, seeded with two accounts, the second reached only through
//! AssumeRole, and keys backdated to 400, 200, 120, 91, 89, 30, 10 and 1 days). It asserts every
//! key's id, slot, age, status and last use per account, that the ExternalId reached STS, that an
//! unchanged report costs no ListAccessKeys call, that `/metrics` answers while a refresh hangs,
//! and that bad configurations exit 64.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const AGE: &str = "infraaudit_iam_access_key_age_seconds";
const CREATED: &str = "infraaudit_iam_access_key_created_timestamp_seconds";
const ACTIVE: &str = "infraaudit_iam_access_key_active";
const LAST_USED: &str = "infraaudit_iam_access_key_last_used_timestamp_seconds";
const REQUESTS: &str = "infraaudit_aws_api_requests_total";

fn requests(scrape: &Scrape, account: &str, operation: &str) -> f64 {
    scrape.sum(
        REQUESTS,
        &[("account_id", account), ("operation", operation)],
    )
}

#[test]
fn seeded_keys_are_exported_once_under_their_account() {
    let emu = Emulator::start();
    let d = Daemon::start("keys", &two_accounts(&emu.endpoint, "1h"));
    d.wait_ready(Duration::from_secs(60));
    let before = unix_now();
    let scrape = d.scrape();
    let after = unix_now();

    let mut expected_series = 0;
    for (account, users) in emu.seeded.as_object().unwrap() {
        for (user, keys) in users.as_object().unwrap() {
            let keys = keys.as_array().unwrap();
            if keys.is_empty() {
                assert!(
                    scrape
                        .find(AGE, &[("account_id", account), ("user", user)])
                        .is_empty(),
                    "{account}/{user} has no keys but has key series"
                );
            }
            for (i, key) in keys.iter().enumerate() {
                expected_series += 1;
                let id = key["id"].as_str().unwrap();
                let created = key["created"].as_f64().unwrap();
                let slot = (i + 1).to_string();
                let labels = [
                    ("account_id", account.as_str()),
                    ("user", user.as_str()),
                    ("access_key_id", id),
                ];
                let found = scrape.find(AGE, &labels);
                assert_eq!(found.len(), 1, "{account}/{user}/{id}: {found:?}");
                assert_eq!(found[0].labels["slot"], slot, "{account}/{user}/{id}");
                // The report has whole seconds: the age may be up to 1 s short of the real one.
                let (lo, hi) = (before - created - 5.0, after - created + 5.0);
                assert!(
                    (lo..=hi).contains(&found[0].value),
                    "{id}: age {} not in {lo}..{hi}",
                    found[0].value
                );
                let c = scrape.value(CREATED, &labels).unwrap();
                assert!(
                    (c - created.floor()).abs() < 1.0,
                    "{id}: created {c} vs seeded {created}"
                );
                let active = key["active"].as_bool().unwrap();
                assert_eq!(
                    scrape.value(ACTIVE, &labels),
                    Some(if active { 1.0 } else { 0.0 }),
                    "{id}"
                );
                assert_eq!(
                    scrape.value(LAST_USED, &labels),
                    key["last_used"].as_f64(),
                    "{id}"
                );
            }
        }
    }
    assert_eq!(expected_series, 8, "the seed changed; update this test");
    assert_eq!(
        scrape.find(AGE, &[]).len(),
        expected_series,
        "no extra key series"
    );

    for account in [BASE_ACCOUNT, ROLE_ACCOUNT] {
        let labels = [("account_id", account), ("collector", "iam")];
        assert_eq!(
            scrape.value("infraaudit_collector_success", &labels),
            Some(1.0)
        );
        let last = scrape
            .value(
                "infraaudit_collector_last_success_timestamp_seconds",
                &labels,
            )
            .unwrap();
        assert!(last > before - 120.0 && last <= after, "{last}");
        assert!(
            scrape
                .value(
                    "infraaudit_iam_credential_report_generated_timestamp_seconds",
                    &[("account_id", account)]
                )
                .is_some()
        );
    }
    assert_eq!(
        scrape.value(
            "infraaudit_account_info",
            &[("account_id", ROLE_ACCOUNT), ("account_name", "audited")]
        ),
        Some(1.0)
    );
    assert_eq!(scrape.find("infraaudit_build_info", &[]).len(), 1);

    // The audited account was reached through AssumeRole, with our session name and ExternalId.
    let data = emu.data();
    let assumed: Vec<_> = data["sts"]["AssumedRole"]
        .as_array()
        .expect("moto lists assumed roles")
        .iter()
        .filter(|r| r["role_arn"] == format!("arn:aws:iam::{ROLE_ACCOUNT}:role/InfraAuditRole"))
        // The emulator's own session, which seeded the account's buckets and instances.
        .filter(|r| r["session_name"] != "emulator-seed")
        .collect();
    assert!(!assumed.is_empty(), "no AssumeRole reached the emulator");
    for r in &assumed {
        assert_eq!(r["external_id"], EXTERNAL_ID);
        assert_eq!(r["session_name"], "infraaudit");
    }
    assert!(requests(&scrape, ROLE_ACCOUNT, "AssumeRole") >= 1.0);
    assert_eq!(requests(&scrape, BASE_ACCOUNT, "AssumeRole"), 0.0);

    // The secret never shows.
    assert!(!scrape.text.contains(EXTERNAL_ID));
    assert!(!d.log_text().contains(EXTERNAL_ID));

    let (ok, report) = promtool_check_metrics(&scrape.text);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

#[test]
fn openmetrics_and_gzip_are_negotiated() {
    let emu = Emulator::start();
    let d = Daemon::start("negotiate", &two_accounts(&emu.endpoint, "1h"));
    d.wait_ready(Duration::from_secs(60));

    let (status, headers, body) = d
        .get_with(
            "/metrics",
            &[(
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            )],
        )
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let om = String::from_utf8(body).unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE infraaudit_aws_api_requests counter\n"));

    let (status, headers, body) = d
        .get_with("/metrics", &[("Accept-Encoding", "gzip")])
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-encoding"], "gzip");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("# TYPE infraaudit_aws_api_requests_total counter\n"));
    assert!(!text.contains("# EOF"));

    assert_eq!(d.get("/nope").unwrap().0, 404);
    let (status, _, body) = d.get("/").unwrap();
    assert_eq!(status, 200);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("href=\"metrics\"")
    );
    let client = reqwest::blocking::Client::new();
    let resp = client.post(format!("{}/metrics", d.url)).send().unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

#[test]
fn unchanged_report_costs_no_list_access_keys_and_changes_cost_one_per_user() {
    let emu = Emulator::start();
    let d = Daemon::start("cache", &two_accounts(&emu.endpoint, "2s"));
    d.wait_ready(Duration::from_secs(60));
    let users_with_keys = |account: &str| {
        emu.seeded[account]
            .as_object()
            .unwrap()
            .values()
            .filter(|k| !k.as_array().unwrap().is_empty())
            .count() as f64
    };

    let first = d.scrape();
    let runs = |s: &Scrape, a: &str| requests(s, a, "GetCredentialReport");
    for a in [BASE_ACCOUNT, ROLE_ACCOUNT] {
        assert_eq!(
            requests(&first, a, "ListAccessKeys"),
            users_with_keys(a),
            "{a}: one call per user with keys"
        );
    }
    // Two more complete refreshes of both accounts.
    let later = poll(Duration::from_secs(60), "two more refreshes", || {
        let s = d.scrape();
        [BASE_ACCOUNT, ROLE_ACCOUNT]
            .iter()
            .all(|a| runs(&s, a) >= runs(&first, a) + 2.0)
            .then_some(s)
    });
    // moto's report has no root row: one warning per account, not one per run.
    let log = d.log_text();
    for a in [BASE_ACCOUNT, ROLE_ACCOUNT] {
        let warnings = log
            .lines()
            .filter(|l| l.contains("no <root_account> row") && l.contains(a))
            .count();
        assert_eq!(warnings, 1, "{a}:\n{log}");
    }
    for a in [BASE_ACCOUNT, ROLE_ACCOUNT] {
        assert_eq!(
            requests(&later, a, "ListAccessKeys"),
            requests(&first, a, "ListAccessKeys"),
            "{a}: an unchanged report must not cost ListAccessKeys"
        );
        assert_eq!(
            later.value(
                "infraaudit_collector_success",
                &[("account_id", a), ("collector", "iam")]
            ),
            Some(1.0)
        );
    }

    // Change two users in the base account: carol gets a second key, alice loses hers.
    let before_change = d.scrape();
    let alice_key = emu.seeded[BASE_ACCOUNT]["alice"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_key = block_on(async {
        let iam = iam_client(&emu.endpoint).await;
        iam.delete_access_key()
            .user_name("alice")
            .access_key_id(&alice_key)
            .send()
            .await
            .unwrap();
        let out = iam
            .create_access_key()
            .user_name("carol")
            .send()
            .await
            .unwrap();
        out.access_key().unwrap().access_key_id().to_owned()
    });
    let changed = poll(Duration::from_secs(60), "the new key to appear", || {
        let s = d.scrape();
        (!s.find(AGE, &[("access_key_id", new_key.as_str())])
            .is_empty())
        .then_some(s)
    });
    let new = changed.find(AGE, &[("access_key_id", new_key.as_str())]);
    assert_eq!(new[0].labels["user"], "carol");
    assert_eq!(new[0].labels["slot"], "2");
    assert!(new[0].value < 30.0, "a new key is young: {}", new[0].value);
    assert!(
        changed
            .find(AGE, &[("access_key_id", alice_key.as_str())])
            .is_empty(),
        "a deleted key disappears"
    );
    assert!(
        changed
            .find(AGE, &[("account_id", BASE_ACCOUNT), ("user", "alice")])
            .is_empty()
    );
    // Only carol was listed again: alice's row now has no key, so there is nothing to resolve.
    // Nobody in the other account was listed again.
    assert_eq!(
        requests(&changed, BASE_ACCOUNT, "ListAccessKeys")
            - requests(&before_change, BASE_ACCOUNT, "ListAccessKeys"),
        1.0
    );
    assert_eq!(
        requests(&changed, ROLE_ACCOUNT, "ListAccessKeys"),
        requests(&first, ROLE_ACCOUNT, "ListAccessKeys")
    );
}

#[test]
fn metrics_answer_while_the_first_refresh_hangs() {
    // An endpoint that accepts connections and never answers: the first run cannot finish.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", black_hole.local_addr().unwrap());
    let config = format!(
        "[server]\nlisten_address = \"{{listen}}\"\n[aws]\nendpoint_url = \"{endpoint}\"\n\
         [[accounts]]\nid = \"{BASE_ACCOUNT}\"\n"
    );
    let d = Daemon::start("hang", &config);
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let (status, _, body) = d.get("/metrics").unwrap();
        slowest = slowest.max(t.elapsed());
        assert_eq!(status, 200);
        let scrape = Scrape::parse(&String::from_utf8(body).unwrap());
        assert!(
            scrape.find("infraaudit_collector_success", &[]).is_empty(),
            "no run has finished"
        );
        assert_eq!(scrape.find("infraaudit_account_info", &[]).len(), 1);
    }
    assert!(
        slowest < Duration::from_secs(2),
        "a scrape took {slowest:?} during the hang"
    );
    assert_eq!(d.get("/-/ready").unwrap().0, 503);
    assert_eq!(d.get("/-/healthy").unwrap().0, 200);
    drop(black_hole);
}

#[test]
fn zero_config_audits_the_ambient_account() {
    let emu = Emulator::start();
    let config = format!(
        "[server]\nlisten_address = \"{{listen}}\"\n[aws]\nendpoint_url = \"{}\"\nregions = [\"us-east-1\"]\n",
        emu.endpoint
    );
    let d = Daemon::start("zeroconf", &config);
    d.wait_ready(Duration::from_secs(60));
    let scrape = d.scrape();
    // moto answers GetCallerIdentity for unknown credentials with its default account.
    assert_eq!(scrape.find("infraaudit_account_info", &[]).len(), 1);
    assert_eq!(
        scrape.value(
            "infraaudit_account_info",
            &[("account_id", BASE_ACCOUNT), ("account_name", BASE_ACCOUNT)]
        ),
        Some(1.0)
    );
    let alice = emu.seeded[BASE_ACCOUNT]["alice"][0]["id"].as_str().unwrap();
    assert_eq!(
        scrape
            .find(
                AGE,
                &[("account_id", BASE_ACCOUNT), ("access_key_id", alice)]
            )
            .len(),
        1
    );
    assert!(scrape.find(AGE, &[("account_id", ROLE_ACCOUNT)]).is_empty());
}

/// Through the deprecated `--print-policy` alias, kept for scripts (`infraaudit policy` is tested
/// in tests/cli.rs): the permission policy alone, as before.
#[test]
fn print_policy_follows_the_enabled_collectors() {
    let dir = scratch_dir("policy");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[collectors.s3]\nenabled = false\n[[accounts]]\nid = \"111111111111\"\n\
         [[accounts]]\nid = \"222222222222\"\ncollectors = [\"ec2\"]\n",
    )
    .unwrap();
    let out = aws_test_env(&mut Command::new(env!("CARGO_BIN_EXE_infraaudit")))
        .arg("--print-policy")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = policy["Statement"][0]["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    // IAM and EC2 run for some account; S3 for none.
    assert!(
        actions.contains(&"iam:GetCredentialReport") && actions.contains(&"ec2:DescribeInstances")
    );
    assert!(!actions.iter().any(|a| a.starts_with("s3:")), "{actions:?}");
}

#[test]
fn bad_configs_exit_64_with_one_line() {
    let cases = [
        ("bad_unknown_key.toml", "listen_adress"),
        ("bad_role_arn.toml", "accounts[0].role_arn"),
        ("bad_interval.toml", "collectors.iam.interval"),
        ("bad_collector_name.toml", "accounts[0].collectors"),
        ("does_not_exist.toml", "does_not_exist.toml"),
    ];
    for (file, needle) in cases {
        let path = repo().join("tests/fixtures/config").join(file);
        let out = aws_test_env(&mut Command::new(env!("CARGO_BIN_EXE_infraaudit")))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{file}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{file}: {stderr}");
        assert!(stderr.contains(needle), "{file}: {stderr}");
    }
}

/// The README: on SIGTERM or SIGINT the daemon stops "after finishing open requests", exit 0.
/// A request is held in flight by its body: the API reads it (hyper's `100 Continue` says it
/// started to), the signal comes and is logged, and only then does the body follow; the answer
/// must arrive whole.
#[test]
fn sigterm_and_sigint_finish_the_request_in_flight_then_exit_0() {
    const TOKEN: &str = "signal-test-token";
    let emu = Emulator::start();
    let config = format!(
        "{}\n[api]\nenabled = true\nbearer_tokens = [\"{TOKEN}\"]\n",
        two_accounts(&emu.endpoint, "1h")
    );
    let seeded_keys: usize = emu
        .seeded
        .as_object()
        .unwrap()
        .values()
        .flat_map(|users| users.as_object().unwrap().values())
        .map(|keys| keys.as_array().unwrap().len())
        .sum();
    for signal in ["TERM", "INT"] {
        let mut d = Daemon::start(&format!("sig{signal}"), &config);
        d.wait_ready(Duration::from_secs(60));
        let body = r#"{"hours": 0}"#;
        let mut conn = std::net::TcpStream::connect(d.url.trim_start_matches("http://")).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            conn,
            "POST /v1/iam/old-access-keys/credential-report HTTP/1.1\r\nHost: infraaudit\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(
                conn.read(&mut byte).unwrap(),
                1,
                "closed before 100 Continue"
            );
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 100 Continue"),
            "{}",
            String::from_utf8_lossy(&head)
        );

        let pid = d.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{signal}"), &pid])
                .status()
                .unwrap()
                .success()
        );
        poll(Duration::from_secs(10), "the signal to be taken", || {
            d.log_text().contains("shutting down").then_some(())
        });
        assert!(d.child.try_wait().unwrap().is_none(), "exited mid-request");

        conn.write_all(body.as_bytes()).unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, json) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 "), "SIG{signal}: {answer}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("no Content-Length: {head}"))
            .parse()
            .unwrap();
        assert_eq!(json.len(), length, "SIG{signal}: a cut answer");
        let doc: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            doc["old_access_keys"].as_array().unwrap().len(),
            seeded_keys,
            "{json}"
        );

        let status = poll(Duration::from_secs(15), "the daemon to exit", || {
            d.child.try_wait().unwrap()
        });
        assert_eq!(status.code(), Some(0), "SIG{signal}: {}", d.log_text());
    }
}

#[test]
fn version_and_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_infraaudit"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("infraaudit {}", env!("CARGO_PKG_VERSION")))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_infraaudit"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn iam_client(endpoint: &str) -> aws_sdk_iam::Client {
    let creds = aws_credential_types::Credentials::new("testing", "testing", None, None, "test");
    let conf = aws_sdk_iam::Config::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .build();
    aws_sdk_iam::Client::from_conf(conf)
}
