//! What the `iam_authz` collector costs per run, counted at the emulator (not by the exporter):
//! one GetAccountAuthorizationDetails per page, every page read, cold and warm alike, so a run
//! costs O(pages), not O(users). The emulator pages these calls as AWS does (MaxItems, Marker,
//! IsTruncated) and `--iam-page-size K` makes every page at most K items, as AWS may whatever
//! MaxItems asks; with a few users that gives many pages, and a loop that stopped after the
//! first one (or asked again per user) would show.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::Value;

const DETAILS: &str = "GetAccountAuthorizationDetails";
const CERTIFICATES: &str = "ListServerCertificates";

/// Calls of `action` by the base account, and how many of them failed.
fn calls(counts: &Value, action: &str) -> (u64, u64) {
    counts["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["account"] == BASE_ACCOUNT && c["service"] == "iam" && c["action"] == action)
        .fold((0, 0), |(n, e), c| {
            (
                n + c["count"].as_u64().unwrap(),
                e + c["errors"].as_u64().unwrap(),
            )
        })
}

/// The base account alone, with only the `iam_authz` collector, every `interval`.
fn config(endpoint: &str, interval: &str) -> String {
    format!(
        r#"
[server]
listen_address = "{{listen}}"

[aws]
endpoint_url = "{endpoint}"

[collectors.iam]
enabled = false

[collectors.s3]
enabled = false

[collectors.ec2]
enabled = false

[collectors.iam_authz]
interval = "{interval}"

[[accounts]]
id = "{BASE_ACCOUNT}"
name = "base"
regions = ["us-east-1"]
"#
    )
}

/// What moto holds for the base account: (users, items), items being what
/// GetAccountAuthorizationDetails lists with the collector's filter (users, groups, roles and
/// customer-managed policies), from moto's own state rather than from any answer.
fn moto_items(emu: &Emulator) -> (BTreeSet<String>, usize) {
    let data = emu.data();
    let of = |class: &str| -> Vec<Value> {
        data["iam"][class]
            .as_array()
            .unwrap_or_else(|| panic!("no iam.{class} in moto's data.json"))
            .iter()
            .filter(|x| x["account_id"] == BASE_ACCOUNT)
            .cloned()
            .collect()
    };
    let users: BTreeSet<String> = of("User")
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    let items = users.len() + of("Group").len() + of("Role").len() + of("ManagedPolicy").len();
    (users, items)
}

/// Waits for a successful run of the base account's `iam_authz` newer than `after`; returns
/// its timestamp and the scrape that showed it.
fn next_run(daemon: &Daemon, after: Option<f64>) -> (f64, Scrape) {
    let labels = [("account_id", BASE_ACCOUNT), ("collector", "iam_authz")];
    poll(
        Duration::from_secs(60),
        "a new successful iam_authz run of the base account",
        || {
            let scrape = daemon.scrape();
            if scrape.value("infraaudit_collector_success", &labels) == Some(0.0) {
                panic!("the iam_authz run failed:\n{}", daemon.log_text());
            }
            let last = scrape.value(
                "infraaudit_collector_last_success_timestamp_seconds",
                &labels,
            );
            last.filter(|t| Some(*t) != after).map(|t| (t, scrape))
        },
    )
}

/// The users of `infraaudit_iam_user_policies` for the base account.
fn exported_users(scrape: &Scrape) -> BTreeSet<String> {
    scrape
        .find(
            "infraaudit_iam_user_policies",
            &[("account_id", BASE_ACCOUNT), ("kind", "attached")],
        )
        .iter()
        .map(|s| s.labels["user"].clone())
        .collect()
}

fn certificates(scrape: &Scrape) -> BTreeSet<String> {
    scrape
        .find(
            "infraaudit_iam_server_certificate_expiry_timestamp_seconds",
            &[("account_id", BASE_ACCOUNT)],
        )
        .iter()
        .map(|s| s.labels["certificate"].clone())
        .collect()
}

fn pages(items: usize, page: usize) -> u64 {
    items.div_ceil(page) as u64
}

/// 40 users on top of the CIS scenario's 5 (with its groups and customer-managed policies) and
/// 3 roles, in pages of 7: the pages cross from users to groups to roles to policies.
#[test]
fn a_run_costs_one_call_per_page_and_reads_every_page() {
    const PAGE: usize = 7;
    let emu = Emulator::start_with(&[
        "--count-requests",
        "--iam-page-size",
        "7",
        "--users",
        "40",
        "--access-advisor-roles",
    ]);
    let (users, items) = moto_items(&emu);
    let seeded: BTreeSet<String> = emu.seeded[BASE_ACCOUNT]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(users, seeded, "moto's users are the seeded ones");
    assert!(
        users.len() >= 45 && items > users.len() && items % PAGE != 0,
        "{} users, {items} items: a last page that is not full, and more than users",
        users.len()
    );
    let want = pages(items, PAGE);
    assert!(
        want >= 7 && want < users.len() as u64,
        "{want} pages of {items} items"
    );

    // Runs start 4 s apart and take a fraction of that here: each take falls between two runs.
    let daemon = Daemon::start("iam-authz-pages", &config(&emu.endpoint, "4s"));
    let (cold_at, scrape) = next_run(&daemon, None);
    let cold = emu.take_counts();
    assert_eq!(
        exported_users(&scrape),
        seeded,
        "every user, from every page, in infraaudit_iam_user_policies"
    );
    assert_eq!(
        certificates(&scrape),
        BTreeSet::from(["ia-cert-expired".to_owned(), "ia-cert-valid".to_owned()]),
    );
    assert_eq!(
        calls(&cold, DETAILS),
        (want, 0),
        "cold run: one {DETAILS} per page of {PAGE} ({items} items, {} users), none failed",
        users.len()
    );
    assert_eq!(
        calls(&cold, CERTIFICATES),
        (1, 0),
        "cold run: {CERTIFICATES}"
    );

    let (_, scrape) = next_run(&daemon, Some(cold_at));
    let warm = emu.take_counts();
    assert_eq!(
        calls(&warm, DETAILS),
        (want, 0),
        "warm run: the same pages, no call per user"
    );
    assert_eq!(
        calls(&warm, CERTIFICATES),
        (1, 0),
        "warm run: {CERTIFICATES}"
    );
    assert_eq!(exported_users(&scrape), seeded, "warm run: every user");
}

/// Pages of one item: one GetAccountAuthorizationDetails per user, group, role and policy, and
/// the server certificates' own marker loop followed (one certificate a page).
#[test]
fn pages_of_one_item_are_all_followed() {
    let emu = Emulator::start_with(&["--count-requests", "--iam-page-size", "1"]);
    let (users, items) = moto_items(&emu);
    let daemon = Daemon::start("iam-authz-pages-of-one", &config(&emu.endpoint, "1h"));
    let (_, scrape) = next_run(&daemon, None);
    let counts = emu.take_counts();
    assert_eq!(exported_users(&scrape), users);
    let expected = BTreeSet::from(["ia-cert-expired".to_owned(), "ia-cert-valid".to_owned()]);
    assert_eq!(certificates(&scrape), expected);
    assert_eq!(calls(&counts, DETAILS), (items as u64, 0));
    assert_eq!(calls(&counts, CERTIFICATES), (2, 0));
}
