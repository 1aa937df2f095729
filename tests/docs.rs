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
fn readme_policy_is_what_the_collectors_declare() {
    use infraaudit::collector::{ALL, permissions, policy_json};
    // The README shows the policy for all of them (access_advisor included, though it is off
    // by default), exactly as `infraaudit --print-policy` prints it with every collector on.
    let want = policy_json(&permissions(ALL.iter().map(|spec| spec.name)));
    assert!(
        readme().contains(&format!("```json\n{want}```")),
        "the README's permission policy differs from the collectors' declarations; it should be:\n{want}"
    );
}

#[test]
fn readme_discovery_policy_is_what_discovery_calls() {
    use infraaudit::collector::policy_json;
    let want = policy_json(infraaudit::discovery::PERMISSIONS);
    assert!(
        readme().contains(&format!("```json\n{want}```")),
        "the README's discovery policy differs from discovery::PERMISSIONS; it should be:\n{want}"
    );
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
