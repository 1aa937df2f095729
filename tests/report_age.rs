//! What the credential report costs per run, counted at the emulator (not by the exporter):
//! while the last report is younger than `collectors.iam.report_max_age`, a run fetches it
//! without GenerateCredentialReport; with `0s` every run asks AWS to generate it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn calls(counts: &Value, account: &str, action: &str) -> u64 {
    counts["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["account"] == account && c["service"] == "iam" && c["action"] == action)
        .map(|c| c["count"].as_u64().unwrap())
        .sum()
}

/// Runs the daemon until the base account's IAM collector has succeeded `runs` times, and
/// returns the emulator's counts of GenerateCredentialReport and GetCredentialReport for it.
fn report_calls(max_age: &str, runs: usize) -> (u64, u64) {
    // --aws-like-report: GeneratedTime is 5 minutes ago on every fetch, as with AWS, where a
    // report lives 4 hours (moto's is fixed in 2015, which is never fresh).
    let emu = Emulator::start_with(&["--count-requests", "--aws-like-report"]);
    let config = two_accounts(&emu.endpoint, "1s").replace(
        "interval = \"1s\"",
        &format!("interval = \"1s\"\nreport_max_age = \"{max_age}\""),
    );
    let config =
        format!("{config}\n[collectors.s3]\nenabled = false\n[collectors.ec2]\nenabled = false\n");
    let daemon = Daemon::start("report-age", &config);
    let mut seen = Vec::new();
    poll(
        Duration::from_secs(60),
        &format!("{runs} successful IAM runs of the base account"),
        || {
            let last = daemon.scrape().value(
                "infraaudit_collector_last_success_timestamp_seconds",
                &[("account_id", BASE_ACCOUNT), ("collector", "iam")],
            );
            if let Some(t) = last.filter(|t| !seen.contains(t)) {
                seen.push(t);
            }
            (seen.len() >= runs).then_some(())
        },
    );
    let counts = emu.take_counts();
    (
        calls(&counts, BASE_ACCOUNT, "GenerateCredentialReport"),
        calls(&counts, BASE_ACCOUNT, "GetCredentialReport"),
    )
}

#[test]
fn a_fresh_report_is_fetched_without_generating_it() {
    let (generate, get) = report_calls("4h", 3);
    assert_eq!(generate, 1, "only the cold run generates ({get} gets)");
    assert!(get >= 3, "one GetCredentialReport per run, got {get}");
}

#[test]
fn max_age_zero_generates_every_run() {
    let (generate, get) = report_calls("0s", 3);
    assert!(
        generate >= 3,
        "one GenerateCredentialReport per run, got {generate}"
    );
    assert!(get >= 3, "one GetCredentialReport per run, got {get}");
}
