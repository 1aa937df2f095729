//! Account discovery in AWS Organizations, against moto's organization: the real binary finds
//! the ACTIVE accounts (with the OU above each, nested OUs included), leaves out excluded ones
//! and those outside `include_ous`, lets configured accounts win, follows an account being
//! created and one being closed (moto's CloseAccount leaves it SUSPENDED) with no stale series,
//! and keeps the previous account set while discovery fails (faults injected by the proxy).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::org::{Org, discovery_config};
use common::proxy::{Fault, Proxy, Rule};
use common::*;

/// The ExternalId of the discovered accounts' roles: it must never show in logs or metrics.
const ORG_EXTERNAL_ID: &str = "org-external-id-5ecret";

/// IAM only, discovery every second.
fn config(endpoint: &str, organizations: &str, statics: &str) -> String {
    let org =
        format!("external_id = \"{ORG_EXTERNAL_ID}\"\nrefresh_interval = \"1s\"\n{organizations}");
    discovery_config(endpoint, "max_attempts = 1", &org, statics)
}

/// account id -> (account_name, ou) of `infraaudit_account_info`.
fn account_info(s: &Scrape) -> BTreeMap<String, (String, String)> {
    s.find("infraaudit_account_info", &[])
        .iter()
        .map(|x| {
            (
                x.labels["account_id"].clone(),
                (x.labels["account_name"].clone(), x.labels["ou"].clone()),
            )
        })
        .collect()
}

fn expect(pairs: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String)> {
    pairs
        .iter()
        .map(|(id, name, ou)| ((*id).to_owned(), ((*name).to_owned(), (*ou).to_owned())))
        .collect()
}

/// The account ids that any series of the scrape carries.
fn ids_in_series(s: &Scrape) -> std::collections::BTreeSet<String> {
    s.samples
        .iter()
        .filter_map(|x| x.labels.get("account_id").cloned())
        .collect()
}

#[test]
fn discovery_follows_the_organization() {
    let emu = Emulator::start_with(&["--no-default-seed"]);
    let org = Org::create(&emu.endpoint);
    let root = org.root.clone();
    let workloads = org.ou(&root, "workloads");
    let prod = org.ou(&workloads, "prod");
    let sandbox = org.ou(&root, "sandbox");
    let at_root = org.account("root-app", None);
    let wl = org.account("workloads-app", Some(&workloads));
    let excluded = org.account("excluded-app", Some(&workloads));
    let in_prod = org.account("prod-app", Some(&prod));
    let in_sandbox = org.account("sandbox-app", Some(&sandbox));

    // The whole organization, with one account configured (its settings win) and one
    // configured account that is not in the organization.
    let statics = format!(
        r#"
[[accounts]]
id = "{at_root}"
name = "configured-name"
role_arn = "arn:aws:iam::{at_root}:role/ConfiguredRole"
collectors = ["iam"]

[[accounts]]
id = "{ROLE_ACCOUNT}"
name = "outside"
role_arn = "arn:aws:iam::{ROLE_ACCOUNT}:role/InfraAuditRole"
external_id = "{EXTERNAL_ID}"
"#
    );
    let everything = Daemon::start(
        "discovery-all",
        &config(
            &emu.endpoint,
            &format!("exclude_accounts = [\"{excluded}\"]"),
            &statics,
        ),
    );
    // One OU and what is nested in it, without configured accounts.
    let one_ou = Daemon::start(
        "discovery-ou",
        &config(
            &emu.endpoint,
            &format!("include_ous = [\"{workloads}\"]\nexclude_accounts = [\"{excluded}\"]"),
            "",
        ),
    );
    everything.wait_ready(Duration::from_secs(90));
    one_ou.wait_ready(Duration::from_secs(90));

    let s = everything.scrape();
    assert_eq!(
        account_info(&s),
        expect(&[
            (BASE_ACCOUNT, "master", &root),
            (&at_root, "configured-name", &root),
            (&wl, "workloads-app", &workloads),
            (&in_prod, "prod-app", &prod),
            (&in_sandbox, "sandbox-app", &sandbox),
            (ROLE_ACCOUNT, "outside", ""),
        ])
    );
    // Found: the five ACTIVE accounts of the organization less the excluded one, before
    // merging with the configured ones.
    assert_eq!(s.value("infraaudit_discovered_accounts", &[]), Some(5.0));
    assert_eq!(s.value("infraaudit_discovery_success", &[]), Some(1.0));
    assert!(
        s.value("infraaudit_discovery_last_success_timestamp_seconds", &[])
            .unwrap()
            > emu.now - 60.0
    );
    assert_eq!(
        s.value(
            "infraaudit_shard_info",
            &[("shard", "0"), ("total_shards", "1")]
        ),
        Some(1.0)
    );
    for id in [
        BASE_ACCOUNT,
        &at_root,
        &wl,
        &in_prod,
        &in_sandbox,
        ROLE_ACCOUNT,
    ] {
        assert_eq!(
            s.value(
                "infraaudit_collector_success",
                &[("account_id", id), ("collector", "iam")]
            ),
            Some(1.0),
            "{id}"
        );
        // Each assumed its own role (the configured account its configured one).
        assert!(
            s.sum(
                "infraaudit_aws_api_requests_total",
                &[("account_id", id), ("operation", "AssumeRole")]
            ) >= 1.0
                || id == BASE_ACCOUNT,
            "{id}"
        );
    }
    assert!(!s.text.contains(&excluded), "the excluded account shows");
    // The walk, counted under the account the base credentials are in.
    for op in [
        "ListRoots",
        "ListAccountsForParent",
        "ListOrganizationalUnitsForParent",
    ] {
        assert!(
            s.sum(
                "infraaudit_aws_api_requests_total",
                &[
                    ("account_id", BASE_ACCOUNT),
                    ("service", "organizations"),
                    ("operation", op)
                ]
            ) >= 1.0,
            "{op}"
        );
    }
    let o = one_ou.scrape();
    assert_eq!(
        account_info(&o),
        expect(&[
            (&wl, "workloads-app", &workloads),
            (&in_prod, "prod-app", &prod),
        ])
    );
    assert_eq!(o.value("infraaudit_discovered_accounts", &[]), Some(2.0));
    // No ListRoots: the walk starts at the included OU.
    assert_eq!(
        o.sum(
            "infraaudit_aws_api_requests_total",
            &[("operation", "ListRoots")]
        ),
        0.0
    );
    assert!(o.sum("infraaudit_aws_api_requests_total", &[("account_id", &wl)]) > 0.0);

    // `infraaudit audit` discovers the same accounts (the whole set: no shard there).
    let dir = scratch_dir("discovery-audit");
    let path = dir.join("config.toml");
    let audit_config = config(
        &emu.endpoint,
        &format!("include_ous = [\"{workloads}\"]\nexclude_accounts = [\"{excluded}\"]"),
        "[sharding]\nshard = 1\ntotal_shards = 2\n",
    );
    std::fs::write(&path, audit_config.replace("{listen}", "127.0.0.1:0")).unwrap();
    let out = aws_test_env(&mut std::process::Command::new(env!(
        "CARGO_BIN_EXE_infraaudit"
    )))
    .args([
        "audit",
        "--format",
        "json",
        "--checks",
        "iam_password_policy",
        "--config",
    ])
    .arg(&path)
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 3: the accounts have no password policy.
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let audited: std::collections::BTreeSet<&str> = doc["summary"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        audited,
        [wl.as_str(), in_prod.as_str()].into_iter().collect(),
        "{doc}"
    );

    // An account joins, another closes: the new one is collected after the next discovery,
    // and every series of the closed one goes (posture, statuses, AWS call counters, info).
    let late = org.account("late-app", None);
    org.close(&wl);
    let s = poll(
        Duration::from_secs(60),
        "the new account in and the closed one out",
        || {
            let s = everything.scrape();
            let info = account_info(&s);
            // The count is recorded just after the set is applied: wait for both.
            let counted = s.value("infraaudit_discovered_accounts", &[]) == Some(5.0);
            (info.contains_key(&late) && !s.text.contains(&wl) && counted).then_some(s)
        },
    );
    assert_eq!(
        account_info(&s),
        expect(&[
            (BASE_ACCOUNT, "master", &root),
            (&at_root, "configured-name", &root),
            (&in_prod, "prod-app", &prod),
            (&in_sandbox, "sandbox-app", &sandbox),
            (ROLE_ACCOUNT, "outside", ""),
            (&late, "late-app", &root),
        ])
    );
    let want: std::collections::BTreeSet<String> = account_info(&s).into_keys().collect();
    assert_eq!(s.value("infraaudit_discovered_accounts", &[]), Some(5.0));
    // Readiness follows the new set: ready again once the new account has run.
    everything.wait_ready(Duration::from_secs(60));
    let s = everything.scrape();
    assert_eq!(
        s.value(
            "infraaudit_collector_success",
            &[("account_id", &late), ("collector", "iam")]
        ),
        Some(1.0)
    );
    assert!(
        s.value(
            "infraaudit_iam_credential_report_generated_timestamp_seconds",
            &[("account_id", &late)]
        )
        .is_some()
    );
    assert_eq!(
        ids_in_series(&s),
        want,
        "series of accounts outside the set"
    );

    let o = poll(Duration::from_secs(60), "the closed account out", || {
        let o = one_ou.scrape();
        let counted = o.value("infraaudit_discovered_accounts", &[]) == Some(1.0);
        (!o.text.contains(&wl) && counted).then_some(o)
    });
    assert_eq!(account_info(&o), expect(&[(&in_prod, "prod-app", &prod)]));
    assert_eq!(o.value("infraaudit_discovered_accounts", &[]), Some(1.0));
    for d in [&everything, &one_ou] {
        let log = d.log_text();
        assert!(
            !log.contains(ORG_EXTERNAL_ID),
            "the ExternalId is in the log"
        );
        assert!(!d.scrape().text.contains(ORG_EXTERNAL_ID));
    }
}

#[test]
fn a_failed_discovery_keeps_the_previous_account_set() {
    let emu = Emulator::start_with(&["--no-default-seed"]);
    let proxy = Proxy::start(&emu.endpoint, 8);
    let org = Org::create(&emu.endpoint);
    let first = org.account("first-app", None);

    // Discovery fails from the start: the configured account alone, ready all the same.
    proxy.inject(Rule::action(
        "ListRoots",
        Fault::Error(500, "ServiceException"),
    ));
    let statics = format!(
        "[[accounts]]\nid = \"{ROLE_ACCOUNT}\"\nrole_arn = \"arn:aws:iam::{ROLE_ACCOUNT}:role/InfraAuditRole\"\n"
    );
    let d = Daemon::start("discovery-fails", &config(&proxy.url, "", &statics));
    d.wait_ready(Duration::from_secs(60));
    let s = d.scrape();
    assert_eq!(
        account_info(&s).into_keys().collect::<Vec<_>>(),
        [ROLE_ACCOUNT]
    );
    assert_eq!(s.value("infraaudit_discovery_success", &[]), Some(0.0));
    assert_eq!(s.value("infraaudit_discovered_accounts", &[]), None);
    assert_eq!(
        s.value("infraaudit_discovery_last_success_timestamp_seconds", &[]),
        None
    );

    // It recovers: the organization's accounts join.
    proxy.clear();
    let s = poll(Duration::from_secs(60), "the first discovery", || {
        let s = d.scrape();
        let applied = account_info(&s).len() == 3;
        (s.value("infraaudit_discovered_accounts", &[]) == Some(2.0) && applied).then_some(s)
    });
    let before = account_info(&s);
    assert_eq!(before.keys().cloned().collect::<Vec<_>>(), {
        let mut ids = vec![
            BASE_ACCOUNT.to_owned(),
            first.clone(),
            ROLE_ACCOUNT.to_owned(),
        ];
        ids.sort();
        ids
    });
    let last_success = s
        .value("infraaudit_discovery_last_success_timestamp_seconds", &[])
        .unwrap();

    // It fails again while an account joins: the set stays as it was, the count and the time
    // of the last success too, for as many discoveries as it fails.
    proxy.inject(Rule::action(
        "ListRoots",
        Fault::Error(500, "ServiceException"),
    ));
    let late = org.account("late-app", None);
    let failed_before = proxy.count(&[("action", "ListRoots"), ("outcome", "ServiceException")]);
    poll(Duration::from_secs(30), "three failed discoveries", || {
        (proxy.count(&[("action", "ListRoots"), ("outcome", "ServiceException")])
            >= failed_before + 3)
            .then_some(())
    });
    let s = d.scrape();
    assert_eq!(s.value("infraaudit_discovery_success", &[]), Some(0.0));
    assert_eq!(account_info(&s), before);
    assert_eq!(s.value("infraaudit_discovered_accounts", &[]), Some(2.0));
    assert_eq!(
        s.value("infraaudit_discovery_last_success_timestamp_seconds", &[]),
        Some(last_success)
    );
    for id in before.keys() {
        assert!(
            s.value(
                "infraaudit_collector_success",
                &[("account_id", id), ("collector", "iam")]
            )
            .is_some(),
            "{id} is no longer collected"
        );
    }

    proxy.clear();
    poll(
        Duration::from_secs(60),
        "the joined account after recovery",
        || {
            let s = d.scrape();
            (account_info(&s).contains_key(&late)
                && s.value("infraaudit_discovery_success", &[]) == Some(1.0))
            .then_some(())
        },
    );
    // One line per failed discovery, with AWS's code and no secret. Counted after a success
    // that came after the last failure (one attempt per discovery: max_attempts = 1), so each
    // failure the proxy answered has been logged, at start and later.
    let failed = proxy.count(&[("action", "ListRoots"), ("outcome", "ServiceException")]);
    let log = d.log_text();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("account discovery failed"))
        .collect();
    assert!(failed >= failed_before + 3, "{failed} failed calls");
    assert_eq!(failures.len() as u64, failed, "{log}");
    assert!(
        failures.iter().all(|l| l.contains("ServiceException")),
        "{failures:?}"
    );
    assert!(!log.contains(ORG_EXTERNAL_ID));
}

#[test]
fn without_configured_accounts_it_is_ready_only_after_a_discovery_succeeds() {
    let emu = Emulator::start_with(&["--no-default-seed"]);
    let proxy = Proxy::start(&emu.endpoint, 8);
    let org = Org::create(&emu.endpoint);
    org.account("first-app", None);
    proxy.inject(Rule::action(
        "ListRoots",
        Fault::Error(500, "ServiceException"),
    ));
    let d = Daemon::start("discovery-fails-alone", &config(&proxy.url, "", ""));
    // Failed attempts come and go (retried every refresh_interval, 1 s here): never ready,
    // as there is nothing to audit yet.
    let failed = || proxy.count(&[("action", "ListRoots"), ("outcome", "ServiceException")]);
    poll(Duration::from_secs(60), "two failed discoveries", || {
        (failed() >= 2).then_some(())
    });
    let (status, _, _) = d.get("/-/ready").unwrap();
    assert_eq!(status, 503, "ready with nothing discovered");
    assert_eq!(
        d.scrape().value("infraaudit_discovery_success", &[]),
        Some(0.0)
    );

    proxy.clear();
    d.wait_ready(Duration::from_secs(60));
    let s = d.scrape();
    assert_eq!(s.value("infraaudit_discovery_success", &[]), Some(1.0));
    assert_eq!(s.value("infraaudit_discovered_accounts", &[]), Some(2.0));
}

/// With owner tag keys, a discovered account's owner comes from its Organizations tags (same
/// keys, same order, keys matched whatever their case, an empty value skipped), and a
/// configured `[[accounts]] owner` wins over them.
#[test]
fn discovered_accounts_take_their_owner_from_their_tags() {
    let emu = Emulator::start_with(&["--no-default-seed"]);
    let org = Org::create(&emu.endpoint);
    let payments = org.account("payments-app", None);
    org.tag(&payments, &[("Owner", "team-payments"), ("env", "prod")]);
    let platform = org.account("platform-app", None);
    org.tag(&platform, &[("owner", ""), ("TEAM", "team-platform")]);
    let untagged = org.account("untagged-app", None);
    org.tag(&untagged, &[("env", "dev")]);
    let configured = org.account("configured-app", None);
    org.tag(&configured, &[("owner", "team-payments")]);
    // The management account is discovered too.
    org.tag(BASE_ACCOUNT, &[("team", "team-security")]);

    let rest = format!(
        r#"
[owners]
tag_keys = ["owner", "team"]

[[accounts]]
id = "{configured}"
role_arn = "arn:aws:iam::{configured}:role/InfraAuditRole"
owner = "team-platform"
"#
    );
    let d = Daemon::start("discovery-owners", &config(&emu.endpoint, "", &rest));
    d.wait_ready(Duration::from_secs(90));
    let s = d.scrape();
    // account id -> owner ("" when none: absent in Prometheus whichever the exporter writes).
    let owners: BTreeMap<String, String> = s
        .find("infraaudit_account_info", &[])
        .iter()
        .map(|x| {
            let owner = x.labels.get("owner").cloned().unwrap_or_default();
            (x.labels["account_id"].clone(), owner)
        })
        .collect();
    let want: BTreeMap<String, String> = [
        (BASE_ACCOUNT, "team-security"),
        (payments.as_str(), "team-payments"),
        (platform.as_str(), "team-platform"),
        (untagged.as_str(), ""),
        (configured.as_str(), "team-platform"),
    ]
    .into_iter()
    .map(|(a, o)| (a.to_owned(), o.to_owned()))
    .collect();
    assert_eq!(owners, want, "infraaudit_account_info owners");
    assert!(
        s.sum(
            "infraaudit_aws_api_requests_total",
            &[
                ("service", "organizations"),
                ("operation", "ListTagsForResource")
            ]
        ) >= 1.0,
        "the tags were read with ListTagsForResource"
    );
}
