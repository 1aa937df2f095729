//! The whole `/metrics` output for the scenario of tests/common/scenario.rs, compared with
//! tests/golden/. Regenerate with `make golden` (INFRAAUDIT_UPDATE_GOLDEN=1) and review the diff.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "common/scenario.rs"]
mod scenario;

use infraaudit::config::Config;
use infraaudit::metrics::Format;
use scenario::{NOW, STAGING};

fn check(format: Format, file: &str) -> String {
    let got = scenario::scenario(&Config::default()).0.render(format);
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

#[test]
fn failed_findings_number_the_summary() {
    use infraaudit::checks::{findings, summary};
    let (_, store, _) = scenario::scenario(&Config::default());
    let snapshot = store.load();
    let config = Config::default();
    let mut compared = 0;
    for (account, check, failed) in summary(&snapshot, NOW, &config.checks) {
        let all = findings(&snapshot, account, NOW, &config.checks);
        let of_check: Vec<_> = all.iter().filter(|f| f.check == check).collect();
        assert!(!of_check.is_empty() || failed == 0, "{account} {check:?}");
        let n = of_check.iter().filter(|f| f.failed).count();
        assert_eq!(n, failed, "{account} {}: {of_check:#?}", check.name());
        compared += 1;
    }
    assert!(compared >= 12, "{compared}");
    // Checks without a summary (unknown data) have no findings either.
    let staging = findings(&snapshot, STAGING, NOW, &config.checks);
    assert!(staging.iter().all(|f| f.check.name().starts_with("s3_")));
}
