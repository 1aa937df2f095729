//! Many accounts at once: each assumes its role once per session, counted at the emulator. The
//! SDK's shared credentials cache holds 64 providers and then evicts at random, so with more
//! accounts than that nearly every call used to AssumeRole again (10,597 AssumeRole calls for
//! 100 accounts in one fleet benchmark run, BENCHMARKS.md "Fleet refresh").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::*;
use serde_json::Value;

const ACCOUNTS: u64 = 70;

#[test]
fn each_of_70_accounts_assumes_its_role_once() {
    let emu = Emulator::start_with(&["--count-requests", "--no-default-seed"]);
    // IAM (several calls per run) and EC2 in two regions: enough calls per account, all at
    // once, for a shared cache to evict entries that are still needed.
    let mut config = format!(
        "[server]\nlisten_address = \"{{listen}}\"\n\n[aws]\nendpoint_url = \"{}\"\n\
         regions = [\"us-east-1\", \"eu-west-1\"]\n\n[collectors.s3]\nenabled = false\n",
        emu.endpoint
    );
    let ids: Vec<String> = (1..=ACCOUNTS)
        .map(|i| format!("{:012}", 100_000_000_000 + i))
        .collect();
    for id in &ids {
        write!(
            config,
            "\n[[accounts]]\nid = \"{id}\"\nrole_arn = \"arn:aws:iam::{id}:role/InfraAuditRole\"\n"
        )
        .unwrap();
    }
    let daemon = Daemon::start("fleet", &config);
    daemon.wait_ready(Duration::from_secs(120));
    let s = daemon.scrape();
    for id in &ids {
        for collector in ["iam", "ec2"] {
            assert_eq!(
                s.value(
                    "infraaudit_collector_success",
                    &[("account_id", id), ("collector", collector)]
                ),
                Some(1.0),
                "{id} {collector}"
            );
        }
    }
    let body = reqwest::blocking::get(format!("{}/_bench/counts", emu.endpoint))
        .unwrap()
        .text()
        .unwrap();
    let counts: Value = serde_json::from_str(&body).unwrap();
    let of = |action: &str| -> u64 {
        counts["calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["action"] == action)
            .map(|c| c["count"].as_u64().unwrap())
            .sum()
    };
    let calls = counts["total"].as_u64().unwrap();
    assert!(
        calls >= 4 * ACCOUNTS,
        "too few calls ({calls}) to tell a cache that evicts"
    );
    assert_eq!(
        of("AssumeRole"),
        ACCOUNTS,
        "one AssumeRole per account and session ({calls} calls in all)"
    );
}
