//! The JSON API end to end: the real binary with `[api] enabled`, against the emulator. The
//! credential-report and live endpoints return exactly the seeded keys older than 90 days (2160
//! hours), active and inactive; an audit reaches `succeeded` and its FAIL results number
//! `infraaudit_check_failed_resources` per check; every error case answers its status with a JSON
//! error naming the field, including repeated and percent-encoded parameters and repeated JSON
//! keys; 404, 429, 502, 503 and 504 are provoked for real, through the fault proxy
//! (tests/common/proxy.rs) where AWS must fail or hang; and schemathesis (pinned, in its own venv
//! `.venv-schemathesis`) runs every check against `/openapi.json` with a fixed seed and must find
//! nothing.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::proxy::{Fault, Proxy, Rule};
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789abcdef";

const REPORT: &str = "/v1/iam/old-access-keys/credential-report";
const LIVE: &str = "/v1/iam/old-access-keys/list-users";

fn config(endpoint: &str) -> String {
    config_with(endpoint, "", "")
}

/// [`config`] with `aws` lines added to `[aws]` and `api` lines to `[api]`.
fn config_with(endpoint: &str, aws: &str, api: &str) -> String {
    format!(
        "{}\n[api]\nenabled = true\nbearer_tokens = [\"{TOKEN}\"]\n{api}\n",
        two_accounts(endpoint, "1h").replace("[aws]\n", &format!("[aws]\n{aws}\n"))
    )
}

#[derive(Clone)]
struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client of `d` whose requests give up after reqwest's default 30 s.
    fn of(d: &Daemon) -> Self {
        Self {
            base: d.url.clone(),
            http: reqwest::blocking::Client::new(),
        }
    }

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

    /// POSTs `body` as it is, for JSON that serde_json would not write (a key twice).
    fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        self.send("POST", path, Some(TOKEN), Some(body.as_bytes().to_vec()))
    }
}

/// A ready daemon that reaches the emulator through the fault proxy, which has `rules` from the
/// start; `aws` and `api` lines as in [`config_with`].
struct Proxied {
    d: Daemon,
    c: Client,
    proxy: Proxy,
    _emu: Emulator,
}

fn proxied(tag: &str, rules: Vec<Rule>, aws: &str, api: &str) -> Proxied {
    let emu = Emulator::start();
    let proxy = Proxy::start(&emu.endpoint, 1);
    for rule in rules {
        proxy.inject(rule);
    }
    let d = Daemon::start(tag, &config_with(&proxy.url, aws, api));
    d.wait_ready(Duration::from_secs(90));
    Proxied {
        c: Client::of(&d),
        d,
        proxy,
        _emu: emu,
    }
}

/// The status and the error message of an error answer.
fn error_of((status, body): (u16, Value)) -> (u16, String) {
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}: no error message in {body}"));
    (status, message.to_owned())
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
    let c = Client::of(&d);

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

    let (status, report) = c.post(REPORT, &json!({"hours": 2160}));
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

    let (status, live) = c.get(&format!("{LIVE}?hours=2160"));
    assert_eq!(status, 200, "{live}");
    assert_eq!(keys(&live), want, "live and report modes agree");
    // Older than N hours means strictly: carol's key is 89 days and some seconds old.
    let carol = emu.seeded[BASE_ACCOUNT]["carol"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let has_carol = |hours: i64| {
        let (_, a) = c.post(REPORT, &json!({"hours": hours}));
        keys(&a).iter().any(|k| k.1 == carol)
    };
    assert!(has_carol(89 * 24) && !has_carol(89 * 24 + 1));
    // One account only.
    let (_, one) = c.get(&format!("{LIVE}?hours=2160&account_id={ROLE_ACCOUNT}"));
    assert!(keys(&one).iter().all(|k| k.0 == ROLE_ACCOUNT) && !keys(&one).is_empty());
}

#[test]
fn an_audit_reaches_succeeded_and_its_failures_match_the_summary() {
    let emu = Emulator::start();
    let d = Daemon::start("api-audit", &config(&emu.endpoint));
    d.wait_ready(Duration::from_secs(90));
    let c = Client::of(&d);

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
    let c = Client::of(&d);
    let body = |v: Value| Some(serde_json::to_vec(&v).unwrap());

    let (s, e) = c.send("POST", REPORT, None, body(json!({"hours": 1})));
    assert_eq!(s, 401, "{e}");
    let (s, _) = c.send(
        "POST",
        REPORT,
        Some("wrong-token-0123456789abcdef"),
        body(json!({"hours": 1})),
    );
    assert_eq!(s, 401);
    let (s, e) = c.send("POST", REPORT, Some(TOKEN), Some(b"{not json".to_vec()));
    assert_eq!(s, 400, "{e}");
    let (s, e) = c.post(REPORT, &json!({"hours": "many"}));
    assert_eq!(
        (s, e["error"].as_str().unwrap().starts_with("hours")),
        (422, true),
        "{e}"
    );
    let (s, e) = c.post(REPORT, &json!({"hours": 1, "acount_id": BASE_ACCOUNT}));
    assert_eq!(
        (s, e["error"].as_str().unwrap().starts_with("acount_id")),
        (422, true),
        "{e}"
    );
    let (s, _) = c.send("GET", REPORT, Some(TOKEN), None);
    assert_eq!(s, 405);
    let (s, _) = c.get("/api/audit/status/nope");
    assert_eq!(s, 404);
    let (s, e) = c.post("/api/audit/start", &json!({"account_id": "999999999999"}));
    assert_eq!(s, 403, "{e}");
    let big = format!(
        "{{\"hours\": 1, \"account_id\": \"{}\"}}",
        "1".repeat(64 * 1024)
    );
    let (s, _) = c.send("POST", REPORT, Some(TOKEN), Some(big.into_bytes()));
    assert_eq!(s, 413);
    let (s, e) = c.get(LIVE);
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
    let c = Client::of(&d);

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

#[test]
fn query_strings_are_percent_decoded_and_repeated_or_unknown_fields_are_refused() {
    let emu = Emulator::start();
    let d = Daemon::start("api-parsing", &config(&emu.endpoint));
    let c = Client::of(&d);

    // `%31` is `1`; `%32%31%36%30` is 2160 and `%31%32%33456789012` the base account.
    let (s, one) = c.get(&format!("{LIVE}?hours=%31"));
    assert_eq!(s, 200, "{one}");
    let (s, encoded) = c.get(&format!(
        "{LIVE}?hours=%32%31%36%30&account_id=%31%32%33456789012"
    ));
    assert_eq!(s, 200, "{encoded}");
    let (_, plain) = c.get(&format!("{LIVE}?hours=2160&account_id={BASE_ACCOUNT}"));
    assert!(!keys(&plain).is_empty(), "{plain}");
    assert_eq!(keys(&encoded), keys(&plain));

    // A parameter twice, even with the same value, is refused rather than one of them used.
    for (query, field) in [
        ("hours=1&hours=2", "hours"),
        ("hours=1&h%6Furs=1", "hours"),
        (
            "hours=1&account_id=123456789012&account_id=222222222222",
            "account_id",
        ),
    ] {
        assert_eq!(
            error_of(c.get(&format!("{LIVE}?{query}"))),
            (400, format!("{field}: given more than once")),
            "{query}"
        );
    }
    assert_eq!(
        error_of(c.get(&format!("{LIVE}?hours=1&acount_id={BASE_ACCOUNT}"))),
        (400, "acount_id: unknown parameter".to_owned())
    );

    // A key twice in a body, on both endpoints that take one.
    assert_eq!(
        error_of(c.post_raw(REPORT, r#"{"hours": 1, "hours": 876000}"#)),
        (422, "hours: given more than once".to_owned())
    );
    assert_eq!(
        error_of(c.post_raw(
            "/api/audit/start",
            &format!(r#"{{"account_id": "{BASE_ACCOUNT}", "account_id": "{ROLE_ACCOUNT}"}}"#),
        )),
        (422, "account_id: given more than once".to_owned())
    );
    // Unknown fields, named.
    assert_eq!(
        error_of(c.post(REPORT, &json!({"hours": 1, "acount_id": BASE_ACCOUNT}))),
        (422, "acount_id: unknown field".to_owned())
    );
    assert_eq!(
        error_of(c.post(
            "/api/audit/start",
            &json!({"account_id": BASE_ACCOUNT, "check": ["ec2_imdsv2"]}),
        )),
        (422, "check: unknown field".to_owned())
    );
}

#[test]
fn an_account_that_is_not_configured_gets_404_from_both_key_endpoints() {
    let emu = Emulator::start();
    let d = Daemon::start("api-unknown-account", &config(&emu.endpoint));
    let c = Client::of(&d);
    let want = (404, "account_id: 999999999999 is not configured".to_owned());
    assert_eq!(
        error_of(c.post(REPORT, &json!({"hours": 1, "account_id": "999999999999"}))),
        want
    );
    assert_eq!(
        error_of(c.get(&format!("{LIVE}?hours=1&account_id=999999999999"))),
        want
    );
    // The same request for a configured account is answered.
    let (s, answer) = c.get(&format!("{LIVE}?hours=1&account_id={BASE_ACCOUNT}"));
    assert_eq!(s, 200, "{answer}");
}

#[test]
fn an_account_without_a_credential_report_gets_503_naming_it() {
    let denied = Fault::Error(403, "AccessDenied");
    let p = proxied(
        "api-no-report",
        vec![Rule::action("GenerateCredentialReport", denied).account(ROLE_ACCOUNT)],
        "",
        "",
    );
    let (d, c, proxy) = (&p.d, &p.c, &p.proxy);
    let iam_success = |account| {
        d.scrape().value(
            "infraaudit_collector_success",
            &[("account_id", account), ("collector", "iam")],
        )
    };
    assert_eq!(iam_success(ROLE_ACCOUNT), Some(0.0), "{:?}", proxy.counts());
    assert_eq!(iam_success(BASE_ACCOUNT), Some(1.0));

    let want = (
        503,
        format!(
            "account {ROLE_ACCOUNT}: no credential report collected yet; see infraaudit_collector_success"
        ),
    );
    assert_eq!(
        error_of(c.post(REPORT, &json!({"hours": 0, "account_id": ROLE_ACCOUNT}))),
        want
    );
    // Asked for every account: not a list that silently lacks one.
    assert_eq!(error_of(c.post(REPORT, &json!({"hours": 0}))), want);
    let (s, answer) = c.post(REPORT, &json!({"hours": 0, "account_id": BASE_ACCOUNT}));
    assert_eq!(s, 200, "{answer}");
}

#[test]
fn a_live_listing_that_iam_fails_gets_502_with_the_aws_code_only() {
    let p = proxied("api-iam-fails", Vec::new(), "", "");
    let (c, proxy) = (&p.c, &p.proxy);
    proxy
        .inject(Rule::action("ListUsers", Fault::Error(403, "AccessDenied")).account(BASE_ACCOUNT));
    // The code, not AWS's message ("injected by the fault proxy").
    assert_eq!(
        error_of(c.get(&format!("{LIVE}?hours=1&account_id={BASE_ACCOUNT}"))),
        (
            502,
            format!("IAM of account {BASE_ACCOUNT} failed: AccessDenied")
        )
    );
    assert!(proxy.count(&[("action", "ListUsers"), ("outcome", "AccessDenied")]) > 0);
    let (s, answer) = c.get(&format!("{LIVE}?hours=1&account_id={ROLE_ACCOUNT}"));
    assert_eq!(s, 200, "{answer}");
}

#[test]
fn audits_beyond_max_concurrent_audits_get_429() {
    let p = proxied(
        "api-audits-429",
        Vec::new(),
        "",
        "max_concurrent_audits = 1",
    );
    let (c, proxy) = (&p.c, &p.proxy);
    // The audit's S3 run waits for an answer that does not come, for the collector's timeout.
    proxy.inject(Rule::action("ListBuckets", Fault::Hang).account(BASE_ACCOUNT));
    let (s, started) = c.post(
        "/api/audit/start",
        &json!({"account_id": BASE_ACCOUNT, "checks": ["s3_public_access"]}),
    );
    assert_eq!(s, 202, "{started}");
    poll(Duration::from_secs(30), "the audit's ListBuckets", || {
        (proxy.count(&[("action", "ListBuckets"), ("outcome", "hang")]) == 1).then_some(())
    });
    assert_eq!(
        error_of(c.post("/api/audit/start", &json!({"account_id": ROLE_ACCOUNT}))),
        (429, "too many audits are running; retry later".to_owned())
    );
    let id = started["audit_id"].as_str().unwrap();
    let (_, first) = c.get(&format!("/api/audit/status/{id}"));
    assert_eq!(first["status"], "running", "{first}");
}

/// Takes over two minutes: the 504 comes after the API's fixed 120 s limit.
#[test]
fn live_listings_beyond_two_get_429_and_one_that_iam_does_not_answer_gets_504() {
    // The SDK's own attempt timeout (30 s by default, retried) would end the call first.
    let p = proxied(
        "api-live-limits",
        Vec::new(),
        "attempt_timeout = \"1h\"",
        "",
    );
    let (c, proxy) = (&p.c, &p.proxy);
    proxy.inject(Rule::action("ListUsers", Fault::Hang).account(BASE_ACCOUNT));
    let patient = Client {
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(200))
            .build()
            .unwrap(),
        ..c.clone()
    };
    let hanging: Vec<_> = (0..2)
        .map(|_| {
            let patient = patient.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let answer = patient.get(&format!("{LIVE}?hours=1&account_id={BASE_ACCOUNT}"));
                (error_of(answer), started.elapsed())
            })
        })
        .collect();
    poll(Duration::from_secs(30), "both listings' ListUsers", || {
        (proxy.count(&[("action", "ListUsers"), ("outcome", "hang")]) == 2).then_some(())
    });
    // A third, for an account whose IAM answers, waits for no one.
    assert_eq!(
        error_of(c.get(&format!("{LIVE}?hours=1&account_id={ROLE_ACCOUNT}"))),
        (
            429,
            "too many live listings are running; retry later".to_owned()
        )
    );
    for listing in hanging {
        let (answer, took) = listing.join().unwrap();
        assert_eq!(
            answer,
            (
                504,
                format!("IAM of account {BASE_ACCOUNT} did not answer within 120s")
            )
        );
        assert!(took >= Duration::from_secs(120), "{took:?}");
    }
    // Once they are given up, listings run again.
    let (s, answer) = c.get(&format!("{LIVE}?hours=1&account_id={ROLE_ACCOUNT}"));
    assert_eq!(s, 200, "{answer}");
}
