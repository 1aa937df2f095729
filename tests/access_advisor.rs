//! The Access Advisor collector end to end: the real binary, through the fault proxy
//! (`tests/common/proxy.rs`), in front of the emulator.
//!
//! The emulator (moto) does not implement GenerateServiceLastAccessedDetails nor
//! GetServiceLastAccessedDetails (it answers 500 NotImplementedError). The proxy answers those
//! two actions with canned answers in AWS's format (`tests/fixtures/access_advisor/`, written
//! from the IAM API reference), chosen by the call's `Arn`, `JobId` and `Marker`,
//! and forwards everything else (ListUsers and ListRoles included) to moto, which holds the
//! seeded users and, with `--access-advisor-roles`, two roles and a service-linked role.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::proxy::{Fault, Proxy, Rule};
use common::*;
use serde_json::{Value, json};

const LAST_ACCESSED: &str = "infraaudit_iam_service_last_accessed_timestamp_seconds";
const UNUSED: &str = "infraaudit_iam_principal_unused_services";
const FAILED: &str = "infraaudit_iam_access_advisor_failed_principals";
const GENERATE: &str = "GenerateServiceLastAccessedDetails";
const GET: &str = "GetServiceLastAccessedDetails";
const TOKEN: &str = "access-advisor-test-token-0123";
/// The JobId recorded in generate.xml, replaced with each principal's own.
const RECORDED_JOB_ID: &str = "examplef-1305-c245-eba4-71fe298bcda7";
/// The unused window ends between the fixtures' older and newer uses: a service last used
/// before this counts as unused.
const CUTOFF: &str = "2026-04-01T00:00:00Z";

fn fixture(name: &str) -> String {
    read(&repo().join("tests/fixtures/access_advisor").join(name))
}

fn unix(iso: &str) -> f64 {
    iso.parse::<DateTime<Utc>>().unwrap().timestamp() as f64
}

/// A recorded answer, counted at the proxy as `outcome`.
fn reply(outcome: &'static str, body: String) -> Fault {
    Fault::Reply { outcome, body }
}

/// (principal_type, principal, ARN in the emulator) of every user and role but the
/// service-linked one.
fn principals() -> Vec<(&'static str, &'static str, String)> {
    let arn =
        |kind: &str, path_name: &str| format!("arn:aws:iam::{BASE_ACCOUNT}:{kind}/{path_name}");
    let mut all: Vec<_> = ["alice", "bob", "carol", "dave", "nokeys"]
        .into_iter()
        .map(|u| ("user", u, arn("user", u)))
        .collect();
    all.push(("role", "deploy", arn("role", "deploy")));
    all.push(("role", "build", arn("role", "ci/build")));
    all
}

/// What GetServiceLastAccessedDetails answers for one principal's job, in the order of calls:
/// `(Marker, fixture, outcome, times)`; times None: every call.
type Answers = Vec<(Option<String>, &'static str, &'static str, Option<u32>)>;

/// One job per principal: GenerateServiceLastAccessedDetails answers `job-<name>` for its
/// ARN, and the job's reads answer `answers(name)`.
fn serve(proxy: &Proxy, answers: impl Fn(&str) -> Answers) {
    for (_, name, arn) in principals() {
        let job = format!("job-{name}");
        let generate = fixture("generate.xml").replace(RECORDED_JOB_ID, &job);
        assert!(generate.contains(&job));
        proxy.inject(Rule::action(GENERATE, reply("recorded", generate)).param("Arn", &arn));
        // Later pages first: the first page's rules match any marker.
        let mut answers = answers(name);
        answers.sort_by_key(|(marker, ..)| marker.is_none());
        for (marker, file, outcome, times) in answers {
            let mut rule = Rule::action(GET, reply(outcome, fixture(file))).param("JobId", &job);
            if let Some(m) = &marker {
                rule = rule.param("Marker", m);
            }
            if let Some(n) = times {
                rule = rule.times(n);
            }
            proxy.inject(rule);
        }
    }
}

fn alice_marker() -> String {
    let page = fixture("alice_page1.xml");
    let start = page.find("<Marker>").unwrap() + "<Marker>".len();
    let len = page[start..].find("</Marker>").unwrap();
    page[start..start + len].to_owned()
}

/// The first run's answers: alice's job is IN_PROGRESS twice and then in two pages, carol's
/// job fails.
fn first_run(name: &str) -> Answers {
    let one = |file| vec![(None, file, "COMPLETED", None)];
    match name {
        "alice" => vec![
            (None, "in_progress.xml", "IN_PROGRESS", Some(2)),
            (None, "alice_page1.xml", "COMPLETED", None),
            (Some(alice_marker()), "alice_page2.xml", "COMPLETED", None),
        ],
        "carol" => vec![(None, "failed.xml", "FAILED", None)],
        "dave" | "nokeys" => one("no_services.xml"),
        other => one(match other {
            "bob" => "bob.xml",
            "deploy" => "deploy.xml",
            "build" => "build.xml",
            _ => unreachable!(),
        }),
    }
}

/// The second run's: carol's job completes, bob's fails; no job waits.
fn second_run(name: &str) -> Answers {
    match name {
        "bob" => vec![(None, "failed.xml", "FAILED", None)],
        "carol" => vec![(None, "carol.xml", "COMPLETED", None)],
        other => first_run(other)
            .into_iter()
            .filter(|(_, _, outcome, _)| *outcome != "IN_PROGRESS")
            .collect(),
    }
}

/// (principal_type, principal, service, last authenticated) as the fixtures of the first run
/// say; carol has none yet (her job failed), dave and nokeys use no service.
const USED: [(&str, &str, &str, &str); 10] = [
    ("user", "alice", "iam", "2026-11-20T08:15:00Z"),
    ("user", "alice", "s3", "2026-06-03T17:42:10Z"),
    ("user", "alice", "ec2", "2025-12-30T09:00:00Z"),
    ("user", "bob", "sts", "2026-11-23T22:05:41Z"),
    ("user", "bob", "kms", "2026-08-15T10:00:00Z"),
    ("role", "deploy", "s3", "2026-10-02T11:00:00Z"),
    ("role", "deploy", "ecr", "2026-02-14T12:30:00Z"),
    ("role", "deploy", "dynamodb", "2025-12-01T00:00:00Z"),
    ("role", "build", "codebuild", "2026-11-22T18:00:00Z"),
    ("role", "build", "logs", "2026-11-22T18:01:00Z"),
];

/// Granted services unused since [`CUTOFF`], worked out by hand from the fixtures: alice ec2
/// and sqs (never), bob cloudwatch (never), deploy dynamodb, ecr and lambda (never).
const UNUSED_COUNTS: [(&str, &str, f64); 6] = [
    ("user", "alice", 2.0),
    ("user", "bob", 1.0),
    ("user", "dave", 0.0),
    ("user", "nokeys", 0.0),
    ("role", "deploy", 3.0),
    ("role", "build", 0.0),
];

/// (principal_type, principal, service) -> value of every last-accessed series.
fn last_accessed(s: &Scrape) -> BTreeMap<(String, String, String), f64> {
    s.find(LAST_ACCESSED, &[])
        .into_iter()
        .map(|x| {
            assert_eq!(x.labels["account_id"], BASE_ACCOUNT);
            let l = |k: &str| x.labels[k].clone();
            ((l("principal_type"), l("principal"), l("service")), x.value)
        })
        .collect()
}

/// (principal_type, principal) -> value of every unused-services series.
fn unused(s: &Scrape) -> BTreeMap<(String, String), f64> {
    s.find(UNUSED, &[])
        .into_iter()
        .map(|x| {
            assert_eq!(x.labels["account_id"], BASE_ACCOUNT);
            let l = |k: &str| x.labels[k].clone();
            ((l("principal_type"), l("principal")), x.value)
        })
        .collect()
}

fn expected_used(extra: &[(&str, &str, &str, &str)]) -> BTreeMap<(String, String, String), f64> {
    USED.iter()
        .chain(extra)
        .map(|(k, p, s, t)| ((k.to_string(), p.to_string(), s.to_string()), unix(t)))
        .collect()
}

fn expected_unused(extra: &[(&str, &str, f64)]) -> BTreeMap<(String, String), f64> {
    UNUSED_COUNTS
        .iter()
        .chain(extra)
        .map(|(k, p, n)| ((k.to_string(), p.to_string()), *n))
        .collect()
}

fn config(proxy: &Proxy) -> String {
    // The window reaches back to CUTOFF from now; the fixtures' uses are months from it on
    // either side, so the test's own duration does not matter.
    let window = (unix_now() - unix(CUTOFF)).round();
    format!(
        r#"
[server]
listen_address = "{{listen}}"

[aws]
endpoint_url = "{url}"
max_concurrency = 3

[collectors.iam]
enabled = false
[collectors.s3]
enabled = false
[collectors.ec2]
enabled = false
[collectors.access_advisor]
enabled = true
job_wait = "1m"
unused_window = "{window}s"

[api]
enabled = true
bearer_tokens = ["{TOKEN}"]

[[accounts]]
id = "{BASE_ACCOUNT}"
name = "base"
"#,
        url = proxy.url
    )
}

/// An audit through the API: the scheduler's own run of the account's collectors, now.
fn run_now(d: &Daemon) {
    let http = reqwest::blocking::Client::new();
    let body = serde_json::to_vec(&json!({ "account_id": BASE_ACCOUNT })).unwrap();
    let text = http
        .post(format!("{}/api/audit/start", d.url))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let resp: Value = serde_json::from_str(&text).unwrap();
    let id = resp["audit_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no audit_id: {text}"))
        .to_owned();
    let status = poll(Duration::from_secs(60), "the audit to finish", || {
        let text = http
            .get(format!("{}/api/audit/status/{id}", d.url))
            .bearer_auth(TOKEN)
            .send()
            .ok()?
            .text()
            .ok()?;
        let s: Value = serde_json::from_str(&text).ok()?;
        (s["status"] != "running").then_some(s)
    });
    assert_eq!(status["status"], "succeeded", "{status}");
}

#[test]
fn metrics_match_the_recorded_answers_and_a_failed_job_keeps_the_last_data() {
    let emu = Emulator::start_with(&["--access-advisor-roles"]);
    let proxy = Proxy::start(&emu.endpoint, 8);
    serve(&proxy, first_run);
    let d = Daemon::start("access-advisor", &config(&proxy));
    d.wait_ready(Duration::from_secs(60));
    let s = d.scrape();

    let success = [
        ("account_id", BASE_ACCOUNT),
        ("collector", "access_advisor"),
    ];
    assert_eq!(s.value("infraaudit_collector_success", &success), Some(1.0));
    assert_eq!(last_accessed(&s), expected_used(&[]));
    assert_eq!(unused(&s), expected_unused(&[]));
    // carol's job failed: counted, and absent since she never had data.
    assert_eq!(s.value(FAILED, &[("account_id", BASE_ACCOUNT)]), Some(1.0));

    // Every call, as the proxy saw it: one job per principal (the service-linked role has
    // none), alice's job read twice while IN_PROGRESS, then both of its pages.
    let count = |action, outcome| proxy.count(&[("action", action), ("outcome", outcome)]);
    let calls = || format!("{:#?}", proxy.counts());
    assert_eq!(count(GENERATE, "recorded"), 7, "{}", calls());
    assert_eq!(count(GENERATE, "forwarded"), 0, "{}", calls());
    assert_eq!(count(GET, "IN_PROGRESS"), 2, "{}", calls());
    assert_eq!(count(GET, "COMPLETED"), 7, "{}", calls());
    assert_eq!(count(GET, "FAILED"), 1, "{}", calls());
    assert_eq!(count(GET, "forwarded"), 0, "{}", calls());
    assert!(count("ListRoles", "forwarded") >= 1, "{}", calls());
    assert!(count("ListUsers", "forwarded") >= 1, "{}", calls());

    // A second run: bob's job fails and keeps his series from the first; carol's completes.
    // The proxy's counts go on from the first run's.
    let (failed, completed) = (count(GET, "FAILED"), count(GET, "COMPLETED"));
    proxy.clear();
    serve(&proxy, second_run);
    run_now(&d);
    let s = d.scrape();
    assert_eq!(s.value("infraaudit_collector_success", &success), Some(1.0));
    let carol = [("user", "carol", "ses", "2026-07-07T07:07:07Z")];
    assert_eq!(last_accessed(&s), expected_used(&carol));
    assert_eq!(unused(&s), expected_unused(&[("user", "carol", 1.0)]));
    assert_eq!(s.value(FAILED, &[("account_id", BASE_ACCOUNT)]), Some(1.0));
    assert_eq!(count(GENERATE, "recorded"), 14, "{}", calls());
    assert_eq!(count(GET, "FAILED") - failed, 1, "bob's: {}", calls());
    assert_eq!(count(GET, "COMPLETED") - completed, 7, "{}", calls());
    assert_eq!(count(GET, "IN_PROGRESS"), 2, "none this run: {}", calls());
    let log = d.log_text();
    for arn in ["user/carol", "user/bob"] {
        assert!(
            log.lines()
                .any(|l| l.contains("Access Advisor job failed") && l.contains(arn)),
            "{arn}'s failure is not logged"
        );
    }
}

#[test]
fn the_collector_is_off_by_default() {
    let emu = Emulator::start_with(&["--access-advisor-roles"]);
    let proxy = Proxy::start(&emu.endpoint, 9);
    let config = format!(
        "[server]\nlisten_address = \"{{listen}}\"\n[aws]\nendpoint_url = \"{}\"\n\
         [[accounts]]\nid = \"{BASE_ACCOUNT}\"\nregions = [\"us-east-1\"]\n",
        proxy.url
    );
    let d = Daemon::start("access-advisor-off", &config);
    d.wait_ready(Duration::from_secs(60));
    let s = d.scrape();
    // The other collectors ran...
    let iam = [("account_id", BASE_ACCOUNT), ("collector", "iam")];
    assert_eq!(s.value("infraaudit_collector_success", &iam), Some(1.0));
    // ...this one has no series at all, and made no call.
    for sample in &s.samples {
        assert!(
            !sample
                .name
                .starts_with("infraaudit_iam_service_last_accessed")
                && !sample.name.starts_with(UNUSED)
                && !sample.name.starts_with(FAILED)
                && sample.labels.get("collector").map(String::as_str) != Some("access_advisor"),
            "{sample:?}"
        );
    }
    for action in [GENERATE, GET, "ListRoles"] {
        assert_eq!(
            proxy.count(&[("action", action)]),
            0,
            "{action}: {:#?}",
            proxy.counts()
        );
    }
    // Nor is it in the default policy.
    let settings =
        infraaudit::config::load_str("", &|_| None, &infraaudit::collector::sections()).unwrap();
    let policy = infraaudit::collector::permissions(settings.config.enabled_collectors());
    assert!(
        !policy.iter().any(|a| a.contains("LastAccessed")),
        "{policy:?}"
    );
}
