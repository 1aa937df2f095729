//! The JSON API end to end: the real binary with `[api] enabled`, against the emulator. The
//! credential-report and live endpoints return exactly the seeded keys older than 90 days (2160
//! hours), active and inactive; an audit reaches `succeeded` and its FAIL results number
//! `infraaudit_check_failed_resources` per check; every error case answers its status with a JSON
//! error naming the field; and schemathesis (pinned, in its own venv `.venv-schemathesis`) runs
//! every check against `/openapi.json` with a fixed seed and must find nothing.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789abcdef";

fn config(endpoint: &str) -> String {
    format!(
        "{}\n[api]\nenabled = true\nbearer_tokens = [\"{TOKEN}\"]\n",
        two_accounts(endpoint, "1h")
    )
}

struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, v)
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            "POST",
            path,
            Some(TOKEN),
            Some(serde_json::to_vec(body).unwrap()),
        )
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, Some(TOKEN), None)
    }
}

/// (account, key id, active) of the keys an answer lists.
fn keys(answer: &Value) -> BTreeSet<(String, String, bool)> {
    answer["old_access_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["account_id"].as_str().unwrap().to_owned(),
                k["access_key_id"].as_str().unwrap().to_owned(),
                k["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn old_keys_from_the_report_and_live_agree_with_the_seed() {
    let emu = Emulator::start();
    let d = Daemon::start("api-keys", &config(&emu.endpoint));
    d.wait_ready(Duration::from_secs(90));
    let c = Client {
        base: d.url.clone(),
        http: reqwest::blocking::Client::new(),
    };

    // Keys older than 90 days, active or not, from the seed.
    let mut want = BTreeSet::new();
    for (account, users) in emu.seeded.as_object().unwrap() {
        for keys in users.as_object().unwrap().values() {
            for k in keys.as_array().unwrap() {
                if (emu.now - k["created"].as_f64().unwrap()) / 3600.0 > 2160.0 {
                    want.insert((
                        account.clone(),
                        k["id"].as_str().unwrap().to_owned(),
                        k["active"].as_bool().unwrap(),
                    ));
                }
            }
        }
    }
    assert!(
        want.iter().any(|k| !k.2) && want.iter().any(|k| k.2),
        "{want:?}"
    );

    let (status, report) = c.post(
        "/v1/iam/old-access-keys/credential-report",
        &json!({"hours": 2160}),
    );
    assert_eq!(status, 200, "{report}");
    assert_eq!(keys(&report), want);
    assert!(report["report_generated_at"][BASE_ACCOUNT].is_string());
    let alice = report["old_access_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["user_name"] == "alice" && k["account_id"] == BASE_ACCOUNT)
        .unwrap();
    assert_eq!(alice["age_hours"].as_i64().unwrap() / 24, 200);
    assert!(alice["last_used_date"].is_string());

    let (status, live) = c.get("/v1/iam/old-access-keys/list-users?hours=2160");
    assert_eq!(status, 200, "{live}");
    assert_eq!(keys(&live), want, "live and report modes agree");
    // Older than N hours means strictly: carol's key is 89 days and some seconds old.
    let carol = emu.seeded[BASE_ACCOUNT]["carol"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let has_carol = |hours: i64| {
        let (_, a) = c.post(
            "/v1/iam/old-access-keys/credential-report",
            &json!({"hours": hours}),
        );
        keys(&a).iter().any(|k| k.1 == carol)
    };
    assert!(has_carol(89 * 24) && !has_carol(89 * 24 + 1));
    // One account only.
    let (_, one) = c.get(&format!(
        "/v1/iam/old-access-keys/list-users?hours=2160&account_id={ROLE_ACCOUNT}"
    ));
    assert!(keys(&one).iter().all(|k| k.0 == ROLE_ACCOUNT) && !keys(&one).is_empty());
}

#[test]
fn an_audit_reaches_succeeded_and_its_failures_match_the_summary() {
    let emu = Emulator::start();
    let d = Daemon::start("api-audit", &config(&emu.endpoint));
    d.wait_ready(Duration::from_secs(90));
    let c = Client {
        base: d.url.clone(),
        http: reqwest::blocking::Client::new(),
    };

    let last_success = |s: &Scrape, collector: &str| {
        s.value(
            "infraaudit_collector_last_success_timestamp_seconds",
            &[("account_id", BASE_ACCOUNT), ("collector", collector)],
        )
        .unwrap()
    };
    let before = d.scrape();
    let (status, started) = c.post("/api/audit/start", &json!({"account_id": BASE_ACCOUNT}));
    assert_eq!(status, 202, "{started}");
    let id = started["audit_id"].as_str().unwrap().to_owned();
    let done = poll(Duration::from_secs(60), "the audit to finish", || {
        let (_, s) = c.get(&format!("/api/audit/status/{id}"));
        (s["status"] != "running").then_some(s)
    });
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["finished_at"].is_string());
    let scrape = d.scrape();
    // The audit ran every collector again, into the shared snapshot.
    for collector in ["iam", "s3", "ec2"] {
        assert!(
            last_success(&scrape, collector) > last_success(&before, collector),
            "{collector} did not run"
        );
    }
    let summary = scrape.find(
        "infraaudit_check_failed_resources",
        &[("account_id", BASE_ACCOUNT)],
    );
    assert!(summary.len() >= 8);
    for s in summary {
        let check = &s.labels["check"];
        let failed = done["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["check"] == check.as_str() && r["status"] == "FAIL")
            .count() as f64;
        assert_eq!(failed, s.value, "{check}");
    }

    // Only the checks asked for.
    let (_, started) = c.post(
        "/api/audit/start",
        &json!({"account_id": BASE_ACCOUNT, "checks": ["s3_public_access"]}),
    );
    let id = started["audit_id"].as_str().unwrap().to_owned();
    let done = poll(Duration::from_secs(60), "the S3 audit", || {
        let (_, s) = c.get(&format!("/api/audit/status/{id}"));
        (s["status"] != "running").then_some(s)
    });
    let results = done["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.iter().all(|r| r["check"] == "s3_public_access"));
}

#[test]
fn bad_requests_get_clear_json_errors() {
    let emu = Emulator::start();
    let d = Daemon::start("api-errors", &config(&emu.endpoint));
    let c = Client {
        base: d.url.clone(),
        http: reqwest::blocking::Client::new(),
    };
    let report = "/v1/iam/old-access-keys/credential-report";
    let body = |v: Value| Some(serde_json::to_vec(&v).unwrap());

    let (s, e) = c.send("POST", report, None, body(json!({"hours": 1})));
    assert_eq!(s, 401, "{e}");
    let (s, _) = c.send(
        "POST",
        report,
        Some("wrong-token-0123456789abcdef"),
        body(json!({"hours": 1})),
    );
    assert_eq!(s, 401);
    let (s, e) = c.send("POST", report, Some(TOKEN), Some(b"{not json".to_vec()));
    assert_eq!(s, 400, "{e}");
    let (s, e) = c.post(report, &json!({"hours": "many"}));
    assert_eq!(
        (s, e["error"].as_str().unwrap().starts_with("hours")),
        (422, true),
        "{e}"
    );
    let (s, e) = c.post(report, &json!({"hours": 1, "acount_id": BASE_ACCOUNT}));
    assert_eq!(
        (s, e["error"].as_str().unwrap().starts_with("acount_id")),
        (422, true),
        "{e}"
    );
    let (s, _) = c.send("GET", report, Some(TOKEN), None);
    assert_eq!(s, 405);
    let (s, _) = c.get("/api/audit/status/nope");
    assert_eq!(s, 404);
    let (s, e) = c.post("/api/audit/start", &json!({"account_id": "999999999999"}));
    assert_eq!(s, 403, "{e}");
    let big = format!(
        "{{\"hours\": 1, \"account_id\": \"{}\"}}",
        "1".repeat(64 * 1024)
    );
    let (s, _) = c.send("POST", report, Some(TOKEN), Some(big.into_bytes()));
    assert_eq!(s, 413);
    let (s, e) = c.get("/v1/iam/old-access-keys/list-users");
    assert_eq!(
        (s, e["error"].as_str().unwrap().starts_with("hours")),
        (400, true),
        "{e}"
    );
    // The API's secret never shows in the log.
    assert!(!d.log_text().contains(TOKEN));
}

#[test]
fn schemathesis_finds_no_violation_of_the_openapi_document() {
    let schemathesis = repo().join(".venv-schemathesis/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: run `make test-deps` (or `make test`)",
        schemathesis.display()
    );
    let emu = Emulator::start();
    let d = Daemon::start("api-schemathesis", &config(&emu.endpoint));
    d.wait_ready(Duration::from_secs(90));
    let dir = scratch_dir("schemathesis");
    // Every check, a fixed seed for a reproducible run; hypothesis keeps its files in `dir`.
    let out = std::process::Command::new(&schemathesis)
        .current_dir(&dir)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .args([
            "run",
            &format!("{}/openapi.json", d.url),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--checks",
            "all",
            "--max-examples",
            "50",
            "--seed",
            "7",
            "--no-color",
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("No issues found"),
        "schemathesis:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Tested: 4"), "{report}");
}

#[test]
fn ad_hoc_audits_need_permission_and_stay_out_of_the_metrics() {
    let emu = Emulator::start();
    // Only the base account is configured; the role account is audited ad hoc.
    let config = format!(
        "[server]\nlisten_address = \"{{listen}}\"\n[aws]\nendpoint_url = \"{}\"\nregions = [\"ap-southeast-2\"]\n\
         [[accounts]]\nid = \"{BASE_ACCOUNT}\"\n[api]\nenabled = true\nallow_adhoc_accounts = true\n\
         bearer_tokens = [\"{TOKEN}\"]\n",
        emu.endpoint
    );
    let d = Daemon::start("api-adhoc", &config);
    d.wait_ready(Duration::from_secs(90));
    let c = Client {
        base: d.url.clone(),
        http: reqwest::blocking::Client::new(),
    };

    let (s, e) = c.post("/api/audit/start", &json!({"account_id": ROLE_ACCOUNT}));
    assert_eq!(
        (s, e["error"].as_str().unwrap().starts_with("role_name")),
        (422, true),
        "{e}"
    );
    // A role name is a name, not a path that walks out of the role's path.
    let (s, e) = c.post(
        "/api/audit/start",
        &json!({"account_id": ROLE_ACCOUNT, "role_name": "../../evil", "external_id": EXTERNAL_ID}),
    );
    assert_eq!(
        (
            s,
            e["error"]
                .as_str()
                .is_some_and(|m| m.starts_with("role_name"))
        ),
        (422, true),
        "{e}"
    );
    let (s, started) = c.post(
        "/api/audit/start",
        &json!({"account_id": ROLE_ACCOUNT, "role_name": "InfraAuditRole", "external_id": EXTERNAL_ID}),
    );
    assert_eq!(s, 202, "{started}");
    let id = started["audit_id"].as_str().unwrap().to_owned();
    let done = poll(Duration::from_secs(60), "the ad hoc audit", || {
        let (_, s) = c.get(&format!("/api/audit/status/{id}"));
        (s["status"] != "running").then_some(s)
    });
    assert_eq!(done["status"], "succeeded", "{done}");
    // erin's inactive 120-day key passes the age check; the role account's public bucket fails.
    let results = done["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["check"] == "s3_public_access"
        && r["resource"] == "ia-role-acl"
        && r["status"] == "FAIL"));
    assert!(!done.to_string().contains(EXTERNAL_ID));
    assert!(!d.log_text().contains(EXTERNAL_ID));
    // Nothing of the ad hoc account reaches /metrics.
    let scrape = d.scrape();
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| s.labels.get("account_id").map(String::as_str) != Some(ROLE_ACCOUNT)),
        "the ad hoc account must not appear in /metrics"
    );
}
