//! The whole `/metrics` output for a fixed scenario, compared with tests/golden/.
//! Regenerate with `make golden` (INFRAAUDIT_UPDATE_GOLDEN=1) and review the diff.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use infraaudit::collector::CollectorData;
use infraaudit::collector::credential_report;
use infraaudit::collector::iam::{AccessKeyRecord, IamData};
use infraaudit::metrics::{ApiMetrics, Exporter, Format};
use infraaudit::snapshot::{AccountInfo, Outcome, SnapshotStore};

/// 2026-11-23T12:00:00Z: ages in the golden file are relative to this.
const NOW: f64 = 1_795_435_200.0;

fn fixed_clock() -> f64 {
    NOW
}

fn scenario() -> Exporter {
    let report = credential_report::parse(
        &std::fs::read(common::repo().join("tests/fixtures/credential_report/aws_with_root.csv"))
            .unwrap(),
    )
    .unwrap();
    // Key ids as ListAccessKeys would have resolved them.
    let mut keys = Vec::new();
    for row in report.users() {
        for (slot, ks) in row.present_keys() {
            keys.push(AccessKeyRecord {
                user: row.user.clone(),
                access_key_id: format!("AKIAEXAMPLE{:04}{slot}", keys.len()),
                slot,
                created: ks.last_rotated.unwrap(),
                active: ks.active,
                last_used: ks.last_used_date,
            });
        }
    }
    let generated: DateTime<Utc> = "2026-11-23T11:15:00Z".parse().unwrap();

    let store = Arc::new(SnapshotStore::new(
        vec![
            AccountInfo {
                id: "123456789012".into(),
                name: "prod".into(),
            },
            AccountInfo {
                id: "210987654321".into(),
                name: "staging".into(),
            },
        ],
        2,
    ));
    store.record(
        "123456789012",
        "iam",
        Outcome::Success(CollectorData::Iam(IamData {
            report_generated_at: Some(generated),
            keys,
        })),
        1.25,
        NOW - 600.0,
    );
    // The second account has never succeeded.
    store.record("210987654321", "iam", Outcome::Failure, 30.0, NOW - 60.0);

    let api = Arc::new(ApiMetrics::default());
    for op in ["GenerateCredentialReport", "GetCredentialReport"] {
        api.record("123456789012", "iam", op, None);
    }
    for _ in 0..4 {
        api.record("123456789012", "iam", "ListAccessKeys", None);
    }
    api.record("210987654321", "sts", "AssumeRole", Some("AccessDenied"));
    Exporter::new(
        store,
        api,
        Duration::from_secs(3600),
        "0.0.0-test",
        "abcdef123456",
        fixed_clock,
    )
}

fn check(format: Format, file: &str) -> String {
    let got = scenario().render(format).unwrap();
    let path = common::repo().join("tests/golden").join(file);
    if std::env::var_os("INFRAAUDIT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = common::read(&path);
    assert!(
        got == want,
        "{} differs from the output; run `make golden` if the change is intended.\n--- got ---\n{got}",
        path.display()
    );
    got
}

#[test]
fn text_format_matches_golden_and_passes_promtool() {
    let text = check(Format::Text, "metrics.txt");
    let (ok, report) = common::promtool_check_metrics(&text);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

#[test]
fn openmetrics_matches_golden() {
    let om = check(Format::OpenMetrics, "metrics.openmetrics.txt");
    assert!(om.ends_with("# EOF\n"));
}
