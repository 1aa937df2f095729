//! The README stays in step with the code: the documented IAM policy is exactly the collectors'
//! permissions, and the metrics reference lists exactly the families the exporter writes.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

fn readme() -> String {
    common::read(&common::repo().join("README.md"))
}

#[test]
fn readme_policy_matches_collector_permissions() {
    let readme = readme();
    let start = readme
        .find("\"Sid\": \"InfraAuditReadOnly\"")
        .expect("the permission policy in the README");
    let block = &readme[start..];
    let actions = &block[block.find('[').unwrap() + 1..block.find(']').unwrap()];
    let documented: BTreeSet<&str> = actions
        .split(',')
        .map(|a| a.trim().trim_matches('"'))
        .filter(|a| !a.is_empty())
        .collect();
    let needed: BTreeSet<&str> = infraaudit::collector::permissions().into_iter().collect();
    assert_eq!(documented, needed);
}

#[test]
fn readme_metrics_reference_matches_the_exposition() {
    let readme = readme();
    let documented: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `infraaudit_"))
        .map(|rest| format!("infraaudit_{}", &rest[..rest.find('`').unwrap()]))
        .collect();
    let golden = common::read(&common::repo().join("tests/golden/metrics.txt"));
    let exported: BTreeSet<String> = golden
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|rest| rest.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(documented, exported);
}
