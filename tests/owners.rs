//! Owners on every finding (issue 16) end to end, against the emulator's owners scenario
//! (tests/emulator/moto_emulator.py --owners): users, buckets and instances of both accounts
//! tagged with owners under mixed-case keys, tags that sanitise to one label name, values over
//! 128 characters, resources with no tags at all, and the base account owned by its
//! configuration. The emulator publishes, for each resource, its own owner and the tag labels
//! its info series must carry, worked out by hand; the effective owner of a finding (the
//! resource's, else its account's, else none) is derived from them in tests/common/owners.rs.
//!
//! The second test counts calls at the emulator: with `[owners]` and `[labels]` unset the
//! exporter makes no tag call and exports no owner or tag label, and with them set it costs
//! one GetBucketTagging per bucket and S3 run, and nothing per user or instance.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::org::Org;
use common::owners::{self, Kind};
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "owners-test-token-0123456789";

fn api_section() -> String {
    format!("[api]\nenabled = true\nbearer_tokens = [\"{TOKEN}\"]\n")
}

type Labels = BTreeMap<String, String>;

/// The series of `name`, each as its labels without the empty ones (an empty label is an
/// absent one in Prometheus, whichever the exporter writes); each must have the value 1.
fn series(s: &Scrape, name: &str) -> BTreeSet<Labels> {
    s.find(name, &[])
        .iter()
        .map(|x| {
            assert_eq!(x.value, 1.0, "{name} {:?}", x.labels);
            x.labels
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect()
}

/// `got` and `want` are the same series; otherwise fails naming only those that differ.
fn assert_series(got: &BTreeSet<Labels>, want: &BTreeSet<Labels>, what: &str) {
    let missing: Vec<&Labels> = want.difference(got).collect();
    let unexpected: Vec<&Labels> = got.difference(want).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{what}:\nmissing {missing:#?}\nunexpected {unexpected:#?}"
    );
}

/// `pairs` and the resource's expected `tags` labels, empty values left out; `owner` when some.
fn labels(pairs: &[(&str, &str)], owner: Option<&str>, tags: &Value) -> Labels {
    let mut out: Labels = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if let Some(o) = owner {
        out.insert("owner".into(), o.into());
    }
    for (k, v) in tags.as_object().unwrap() {
        assert!(out.insert(k.clone(), v.as_str().unwrap().into()).is_none());
    }
    out
}

const ACCOUNTS: [(&str, &str); 2] = [(BASE_ACCOUNT, "base"), (ROLE_ACCOUNT, "audited")];

fn expected_users(emu: &Emulator) -> BTreeSet<Labels> {
    let mut out = BTreeSet::new();
    for (account, _) in ACCOUNTS {
        for (user, e) in owners::resources(emu, account, Kind::User) {
            let owner = owners::own_owner(emu, account, Kind::User, user);
            out.insert(labels(
                &[("account_id", account), ("user", user)],
                owner.as_deref(),
                &e["tags"],
            ));
        }
    }
    out
}

fn expected_buckets(emu: &Emulator) -> BTreeSet<Labels> {
    let mut out = BTreeSet::new();
    for (account, _) in ACCOUNTS {
        for (bucket, e) in owners::resources(emu, account, Kind::Bucket) {
            let owner = owners::own_owner(emu, account, Kind::Bucket, bucket);
            out.insert(labels(
                &[
                    ("account_id", account),
                    ("bucket", bucket),
                    ("region", e["region"].as_str().unwrap()),
                ],
                owner.as_deref(),
                &e["tags"],
            ));
        }
    }
    out
}

fn expected_instances(emu: &Emulator) -> BTreeSet<Labels> {
    let mut out = BTreeSet::new();
    for (account, _) in ACCOUNTS {
        for (id, e) in owners::resources(emu, account, Kind::Instance) {
            let seeded = &emu.resources[account]["instances"][id];
            let owner = owners::own_owner(emu, account, Kind::Instance, id);
            out.insert(labels(
                &[
                    ("account_id", account),
                    ("region", seeded["region"].as_str().unwrap()),
                    ("instance_id", id),
                    ("name", seeded["name"].as_str().unwrap()),
                    ("state", seeded["state"].as_str().unwrap()),
                    ("instance_type", seeded["instance_type"].as_str().unwrap()),
                ],
                owner.as_deref(),
                &e["tags"],
            ));
        }
    }
    out
}

fn expected_accounts(emu: &Emulator, with_owner: bool) -> BTreeSet<Labels> {
    ACCOUNTS
        .iter()
        .map(|(account, name)| {
            let owner = owners::account_owner(emu, account).filter(|_| with_owner);
            labels(
                &[("account_id", account), ("account_name", name)],
                owner.as_deref(),
                &json!({}),
            )
        })
        .collect()
}

/// The `owner` of a JSON finding or key: present, a non-empty string or null (none).
fn json_owner(v: &Value) -> Option<String> {
    let o = v
        .get("owner")
        .unwrap_or_else(|| panic!("no owner field in {v}"));
    match o {
        Value::Null => None,
        Value::String(s) => {
            assert!(!s.is_empty(), "an empty owner is null: {v}");
            Some(s.clone())
        }
        _ => panic!("owner is neither a string nor null: {v}"),
    }
}

/// The owner a finding of `check` on `resource` must carry: the owner of the user, bucket or
/// instance it names, else the account's (findings on the root user, the account, policies,
/// certificates, groups, roles, regions, ACLs and security groups have no owner of their own).
/// Resource names as in src/collector/mod.rs's `Finding`.
fn finding_owner(emu: &Emulator, account: &str, check: &str, resource: &str) -> Option<String> {
    let own = match check {
        "iam_access_key_age" | "iam_access_key_unused" | "iam_user_initial_access_key" => {
            let (user, _) = resource.split_once('/').unwrap();
            Some((Kind::User, user))
        }
        "iam_user_console_mfa"
        | "iam_user_password_unused"
        | "iam_user_multiple_active_keys"
        | "iam_user_direct_policies" => Some((Kind::User, resource)),
        "iam_cloudshell_full_access" => resource.strip_prefix("user/").map(|u| (Kind::User, u)),
        "s3_public_access" | "s3_encryption" | "s3_secure_transport" | "s3_mfa_delete" => {
            Some((Kind::Bucket, resource))
        }
        "ec2_imdsv2" | "ec2_public_ip" => {
            let (_, id) = resource.split_once('/').unwrap();
            Some((Kind::Instance, id))
        }
        _ => None,
    };
    match own {
        Some((kind, name)) => owners::effective(emu, account, kind, name),
        None => owners::account_owner(emu, account),
    }
}

/// Every finding carries the owner it must; returns how many had an owner of their own (not
/// the account's), so that the caller can tell the per-resource owners were looked at.
fn assert_finding_owners(emu: &Emulator, findings: &[Value], source: &str) -> usize {
    let mut own = 0;
    for f in findings {
        let account = f["account_id"].as_str().unwrap();
        let check = f["check"].as_str().unwrap();
        let resource = f["resource"].as_str().unwrap();
        let want = finding_owner(emu, account, check, resource);
        assert_eq!(json_owner(f), want, "{source}: owner of {f}");
        if want.is_some() && want != owners::account_owner(emu, account) {
            own += 1;
        }
    }
    own
}

/// Starts an audit of `account` through the API and waits for its results.
fn api_audit(d: &Daemon, account: &str, checks: Option<&[&str]>) -> Vec<Value> {
    let mut body = json!({"account_id": account});
    if let Some(c) = checks {
        body["checks"] = json!(c);
    }
    let (status, started) = d.api(TOKEN, "POST", "/api/audit/start", Some(body));
    assert_eq!(status, 202, "{started}");
    let id = started["audit_id"].as_str().unwrap().to_owned();
    let done = poll(Duration::from_secs(90), "the API's audit to finish", || {
        let (_, b) = d.api(TOKEN, "GET", &format!("/api/audit/status/{id}"), None);
        (b["status"] != "running").then_some(b)
    });
    assert_eq!(done["status"], "succeeded", "{done}");
    done["results"].as_array().unwrap().clone()
}

/// `infraaudit audit --format json` with `args`, expecting exit code 3 (something fails).
fn cli_audit(config: &str, args: &[&str]) -> Value {
    let path = scratch_dir("owners-cli").join("config.toml");
    std::fs::write(&path, config.replace("{listen}", "127.0.0.1:0")).unwrap();
    let out = aws_test_env(&mut Command::new(env!("CARGO_BIN_EXE_infraaudit")))
        .args(["audit", "--format", "json"])
        .args(args)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "audit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"], json!([]), "audit {args:?}: {doc}");
    doc
}

/// (account, check, resource, status, owner) of each finding.
fn finding_keys(findings: &[Value]) -> BTreeSet<(String, String, String, String, Option<String>)> {
    findings
        .iter()
        .map(|f| {
            (
                f["account_id"].as_str().unwrap().to_owned(),
                f["check"].as_str().unwrap().to_owned(),
                f["resource"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
                json_owner(f),
            )
        })
        .collect()
}

#[test]
fn owners_and_tags_reach_the_series_the_api_and_the_audit() {
    let emu = Emulator::start_with(&["--owners", "--aws-like-report"]);
    let config = owners::config(&emu, &api_section());
    let d = Daemon::start("owners", &config);
    d.wait_ready(Duration::from_secs(120));
    let s = d.scrape();
    for (account, _) in ACCOUNTS {
        for c in ["iam", "iam_authz", "s3", "ec2"] {
            assert_eq!(
                s.value(
                    "infraaudit_collector_success",
                    &[("account_id", account), ("collector", c)]
                ),
                Some(1.0),
                "{account} {c}"
            );
        }
    }

    // The info series, exactly: own owners only (no fallback to the account's), the
    // allowlisted tags as tag_* labels (cost-center and cost_center as _conflict1 and
    // _conflict2), values cut to 128 characters.
    assert_series(
        &series(&s, "infraaudit_iam_user_info"),
        &expected_users(&emu),
        "infraaudit_iam_user_info",
    );
    assert_series(
        &series(&s, "infraaudit_s3_bucket_info"),
        &expected_buckets(&emu),
        "infraaudit_s3_bucket_info",
    );
    assert_series(
        &series(&s, "infraaudit_ec2_instance_info"),
        &expected_instances(&emu),
        "infraaudit_ec2_instance_info",
    );
    assert_series(
        &series(&s, "infraaudit_account_info"),
        &expected_accounts(&emu, true),
        "infraaudit_account_info",
    );
    // The scenario covers what it claims (a scenario that lost its cases would pass the above).
    let text = &s.text;
    for needle in [
        "tag_cost_center_conflict1=",
        "tag_cost_center_conflict2=",
        "tag_env=",
        "owner=\"team-payments\"",
        "owner=\"team-platform\"",
    ] {
        assert!(text.contains(needle), "{needle} in no series");
    }
    let longest = s
        .samples
        .iter()
        .flat_map(|x| x.labels.iter())
        .filter(|(k, _)| k.starts_with("tag_") || *k == "owner")
        .map(|(_, v)| v.chars().count())
        .max()
        .unwrap();
    assert_eq!(
        longest, 128,
        "the longest tag value is cut to 128 characters"
    );
    let (ok, report) = promtool_check_metrics(text);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
    // In OpenMetrics the new families are info metrics.
    let (status, _, body) = d
        .get_with(
            "/metrics",
            &[("Accept", "application/openmetrics-text;version=1.0.0")],
        )
        .unwrap();
    assert_eq!(status, 200);
    let om = String::from_utf8(body).unwrap();
    for family in ["infraaudit_iam_user", "infraaudit_s3_bucket"] {
        assert!(
            om.lines().any(|l| l == format!("# TYPE {family} info")),
            "{family} is not an info family in OpenMetrics"
        );
    }

    // The old-keys API: every key, each with its user's owner, else the account's, else null.
    let (status, body) = d.api(
        TOKEN,
        "POST",
        "/v1/iam/old-access-keys/credential-report",
        Some(json!({"hours": 1})),
    );
    assert_eq!(status, 200, "{body}");
    let mut got = BTreeMap::new();
    for k in body["old_access_keys"].as_array().unwrap() {
        let account = k["account_id"].as_str().unwrap().to_owned();
        let id = k["access_key_id"].as_str().unwrap().to_owned();
        let user = k["user_name"].as_str().unwrap().to_owned();
        assert!(got.insert((account, id), (user, json_owner(k))).is_none());
    }
    let mut want = BTreeMap::new();
    for (account, users) in emu.seeded.as_object().unwrap() {
        for (user, keys) in users.as_object().unwrap() {
            for k in keys.as_array().unwrap() {
                let owner = owners::effective(&emu, account, Kind::User, user);
                want.insert(
                    (account.clone(), k["id"].as_str().unwrap().to_owned()),
                    (user.clone(), owner),
                );
            }
        }
    }
    assert_eq!(got, want, "old keys and their owners");
    // Each way of finding an owner is among them: the user's own in both accounts, the base
    // account's by fallback, and none in the second account.
    let owners_of = |account: &str| -> BTreeSet<Option<String>> {
        want.iter()
            .filter(|((a, _), _)| a == account)
            .map(|(_, (_, o))| o.clone())
            .collect()
    };
    assert_eq!(
        owners_of(BASE_ACCOUNT),
        BTreeSet::from([
            Some("team-payments".to_owned()),
            Some("team-platform".to_owned())
        ])
    );
    assert!(owners_of(ROLE_ACCOUNT).contains(&None));
    assert!(owners_of(ROLE_ACCOUNT).contains(&Some("team-payments".to_owned())));
    let dave_fallback = &want[&(
        BASE_ACCOUNT.to_owned(),
        emu.seeded[BASE_ACCOUNT]["dave"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    )];
    assert_eq!(
        dave_fallback.1.as_deref(),
        Some("team-platform"),
        "untagged dave falls back to the base account's owner"
    );

    // The API's audits: every result carries its owner.
    for (account, _) in ACCOUNTS {
        let results: Vec<Value> = api_audit(&d, account, None)
            .into_iter()
            .map(|mut r| {
                r["account_id"] = json!(account);
                r
            })
            .collect();
        let own = assert_finding_owners(&emu, &results, &format!("API audit of {account}"));
        assert!(own > 0, "{account}: no result had an owner of its own");
    }

    // `infraaudit audit`: every finding carries its owner; `--owner` keeps exactly that
    // owner's findings.
    let all = cli_audit(&config, &[]);
    let findings = all["findings"].as_array().unwrap();
    let own = assert_finding_owners(&emu, findings, "audit --format json");
    assert!(own > 0, "no finding had an owner of its own");

    // infraaudit_owner_failed_resources splits infraaudit_check_failed_resources by the same
    // owners: the failed findings per (account, check, owner).
    let s = d.scrape();
    let mut want: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for f in findings.iter().filter(|f| f["status"] == "FAIL") {
        let key = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
        *want
            .entry((key("account_id"), key("check"), key("owner")))
            .or_default() += 1.0;
    }
    let label = |x: &Sample, k: &str| x.labels.get(k).cloned().unwrap_or_default();
    let got: BTreeMap<(String, String, String), f64> = s
        .find("infraaudit_owner_failed_resources", &[])
        .into_iter()
        .map(|x| {
            let key = (label(x, "account_id"), label(x, "check"), label(x, "owner"));
            (key, x.value)
        })
        .collect();
    assert_eq!(got, want, "infraaudit_owner_failed_resources");
    assert!(
        got.keys().any(|(_, _, o)| o.is_empty())
            && got.keys().any(|(_, _, o)| o == "team-payments"),
        "{got:?}"
    );
    for ((account, check, _), n) in &got {
        let total = s.value(
            "infraaudit_check_failed_resources",
            &[("account_id", account), ("check", check)],
        );
        assert!(
            total.is_some_and(|t| t >= *n),
            "{account} {check}: {total:?} < {n}"
        );
    }
    for team in owners::TEAMS {
        let filtered = cli_audit(&config, &["--owner", team]);
        let got = finding_keys(filtered["findings"].as_array().unwrap());
        let want: BTreeSet<_> = finding_keys(findings)
            .into_iter()
            .filter(|k| k.4.as_deref() == Some(team))
            .collect();
        assert!(
            want.iter().any(|k| k.0 == BASE_ACCOUNT) && want.iter().any(|k| k.0 == ROLE_ACCOUNT),
            "{team} owns findings in both accounts"
        );
        assert_eq!(got, want, "audit --owner {team}");
    }
    // An owner that no finding has is most likely misspelt: exit 64 naming the owners found,
    // not an all-clear; and without owners configured the filter is refused.
    let refused = |config: &str, owner: &str| {
        let path = scratch_dir("owners-cli-refused").join("config.toml");
        std::fs::write(&path, config.replace("{listen}", "127.0.0.1:0")).unwrap();
        let out = aws_test_env(&mut Command::new(env!("CARGO_BIN_EXE_infraaudit")))
            .args(["audit", "--owner", owner, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "--owner {owner}");
        assert!(out.stdout.is_empty());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = refused(&config, "team-paymnets");
    assert!(
        e.contains("no finding has owner \"team-paymnets\" (owners found: ")
            && e.contains("team-payments")
            && e.contains("team-platform"),
        "{e}"
    );
    let e = refused(&two_accounts(&emu.endpoint, "1h"), "team-payments");
    assert!(e.contains("--owner: no owners are configured"), "{e}");
}

/// Calls of `action` (any service) by `account` (any when None).
fn calls(counts: &Value, action: &str, account: Option<&str>) -> u64 {
    counts["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == action && account.is_none_or(|a| c["account"] == a))
        .map(|c| c["count"].as_u64().unwrap())
        .sum()
}

fn buckets(emu: &Emulator, account: &str) -> u64 {
    emu.resources[account]["buckets"].as_array().unwrap().len() as u64
}

/// Calls that read tags one resource at a time, which owners must never cost: IAM's (tags come
/// with GetAccountAuthorizationDetails) and EC2's (with DescribeInstances).
const PER_RESOURCE_TAG_CALLS: [&str; 3] = ["ListUserTags", "ListRoleTags", "DescribeTags"];

/// Whether any sample line (not HELP or TYPE, whose text may name the labels) has `needle`.
fn in_samples(s: &Scrape, needle: &str) -> bool {
    s.text
        .lines()
        .any(|l| !l.starts_with('#') && l.contains(needle))
}

/// The label names of each series of `name`.
fn label_names(s: &Scrape, name: &str) -> BTreeSet<Vec<String>> {
    s.find(name, &[])
        .iter()
        .map(|x| x.labels.keys().cloned().collect())
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<Vec<String>> {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    BTreeSet::from([v])
}

/// Starts the daemon with `config`, waits until it is ready, and returns it with its scrape and
/// the calls it made, counted from its start.
fn run(emu: &Emulator, tag: &str, config: &str) -> (Daemon, Scrape, Value) {
    emu.take_counts();
    let d = Daemon::start(tag, config);
    d.wait_ready(Duration::from_secs(120));
    let s = d.scrape();
    for (account, _) in ACCOUNTS {
        assert_eq!(
            s.value(
                "infraaudit_collector_success",
                &[("account_id", account), ("collector", "s3")]
            ),
            Some(1.0),
            "{tag}: {account} s3"
        );
    }
    let counts = emu.take_counts();
    (d, s, counts)
}

#[test]
fn tags_cost_calls_only_when_configured() {
    let emu = Emulator::start_with(&["--owners", "--count-requests"]);
    // An organization whose accounts are tagged with owners: discovery would read them if
    // owners were on.
    let org = Org::create(&emu.endpoint);
    let tagged = org.account("tagged-app", None);
    org.tag(&tagged, &[("owner", "team-payments")]);
    org.tag(BASE_ACCOUNT, &[("owner", "team-platform")]);

    // Nothing configured, discovery on: no tag call of any kind, no owner or tag label.
    let plain = owners::accounts_config(
        &emu,
        false,
        // The discovered accounts': one region, rather than all of moto's.
        "regions = [\"us-east-1\"]",
        "[organizations]\nenabled = true\n",
    );
    let (d, s, counts) = run(&emu, "owners-off", &plain);
    assert!(
        s.value("infraaudit_account_info", &[("account_id", &tagged)])
            .is_some(),
        "the tagged account was not discovered: the test would prove nothing"
    );
    for action in ["GetBucketTagging", "ListTagsForResource"]
        .into_iter()
        .chain(PER_RESOURCE_TAG_CALLS)
    {
        assert_eq!(calls(&counts, action, None), 0, "{action} without owners");
    }
    assert!(calls(&counts, "ListBuckets", None) >= 2, "{counts}");
    for x in &s.samples {
        assert!(
            !x.labels
                .keys()
                .any(|k| k == "owner" || k.starts_with("tag_")),
            "an owner or tag label without owners: {x:?}"
        );
    }
    assert!(!in_samples(&s, "owner=\"") && !in_samples(&s, "tag_"));
    // The families that existed before keep their labels; the new info families have theirs.
    assert_eq!(
        label_names(&s, "infraaudit_ec2_instance_info"),
        names(&[
            "account_id",
            "region",
            "instance_id",
            "name",
            "state",
            "instance_type"
        ])
    );
    assert_eq!(
        label_names(&s, "infraaudit_account_info"),
        names(&["account_id", "account_name", "ou"])
    );
    assert_eq!(
        label_names(&s, "infraaudit_iam_user_info"),
        names(&["account_id", "user"])
    );
    assert_eq!(
        label_names(&s, "infraaudit_s3_bucket_info"),
        names(&["account_id", "bucket", "region"])
    );
    drop(d);

    // Owner tag keys: one GetBucketTagging per bucket of each account in its S3 run (answered
    // NoSuchTagSet for untagged buckets), no tag call per user or instance.
    let config = owners::accounts_config(
        &emu,
        false,
        "",
        &format!("[owners]\ntag_keys = [\"owner\"]\n\n{}", api_section()),
    );
    let (d, s, counts) = run(&emu, "owners-tag-keys", &config);
    for (account, _) in ACCOUNTS {
        assert_eq!(
            calls(&counts, "GetBucketTagging", Some(account)),
            buckets(&emu, account),
            "{account}: GetBucketTagging per bucket"
        );
    }
    for action in ["ListTagsForResource"]
        .into_iter()
        .chain(PER_RESOURCE_TAG_CALLS)
    {
        assert_eq!(calls(&counts, action, None), 0, "{action} with owners");
    }
    assert_eq!(
        s.value(
            "infraaudit_s3_bucket_info",
            &[("bucket", "ia-public-policy"), ("owner", "team-payments")]
        ),
        Some(1.0)
    );
    // Another S3 run of the base account (an audit through the API): as many again.
    api_audit(&d, BASE_ACCOUNT, Some(&["s3_public_access"]));
    let counts = emu.take_counts();
    assert_eq!(
        calls(&counts, "GetBucketTagging", Some(BASE_ACCOUNT)),
        buckets(&emu, BASE_ACCOUNT),
        "GetBucketTagging per bucket of a second S3 run"
    );
    assert_eq!(calls(&counts, "GetBucketTagging", Some(ROLE_ACCOUNT)), 0);
    drop(d);

    // A bucket label allowlist alone costs the same calls, and adds no owner.
    let config = owners::accounts_config(&emu, false, "", "[labels]\ns3_bucket_tags = [\"Env\"]\n");
    let (d, s, counts) = run(&emu, "owners-bucket-labels", &config);
    for (account, _) in ACCOUNTS {
        assert_eq!(
            calls(&counts, "GetBucketTagging", Some(account)),
            buckets(&emu, account),
            "{account}: GetBucketTagging per bucket for labels"
        );
    }
    assert!(!in_samples(&s, "owner=\""), "an owner label without owners");
    let envs: BTreeSet<Labels> = series(&s, "infraaudit_s3_bucket_info");
    let want: BTreeSet<Labels> = expected_buckets(&emu)
        .into_iter()
        .map(|mut l| {
            l.retain(|k, _| k != "owner" && (!k.starts_with("tag_") || k == "tag_env"));
            l
        })
        .collect();
    assert_series(&envs, &want, "infraaudit_s3_bucket_info with tag_env only");
    drop(d);

    // Account owners alone: the accounts carry them, and no tag is read.
    let config = owners::accounts_config(&emu, true, "", "");
    let (_d, s, counts) = run(&emu, "owners-accounts-only", &config);
    for action in ["GetBucketTagging", "ListTagsForResource"]
        .into_iter()
        .chain(PER_RESOURCE_TAG_CALLS)
    {
        assert_eq!(
            calls(&counts, action, None),
            0,
            "{action} with account owners only"
        );
    }
    assert_series(
        &series(&s, "infraaudit_account_info"),
        &expected_accounts(&emu, true),
        "infraaudit_account_info with account owners only",
    );
    assert!(!in_samples(&s, "tag_"), "a tag label without [labels]");
}
