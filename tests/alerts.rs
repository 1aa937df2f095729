//! The shipped Prometheus rules: valid (`promtool check rules`), unit-tested (`promtool test rules`
//! on alerts/tests/), and complete (every alert has `for`, a severity, a summary, a description
//! and a runbook_url whose anchor is a section of docs/runbook.md).

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool is missing: run `make test-deps` (Debian package prometheus)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{report}");
    report
}

fn files(dir: &str, ext: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.{ext} in {dir}");
    files
}

#[test]
fn rules_pass_promtool_check() {
    let rules = files("alerts", "yml");
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    let report = promtool(&args);
    assert!(report.contains("SUCCESS"), "{report}");
}

#[test]
fn rules_pass_their_unit_tests() {
    let tests = files("alerts/tests", "yaml");
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    let report = promtool(&args);
    assert!(report.contains("SUCCESS"), "{report}");
}

/// The alert names of the rules file, each with the text of its rule (until the next one).
fn alerts() -> Vec<(String, String)> {
    let text = read(&repo().join("alerts/infraaudit.rules.yml"));
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert: ") {
            out.push((name.trim().to_owned(), String::new()));
        } else if trimmed.starts_with("- record: ") || trimmed.starts_with("- name: ") {
            out.push((String::new(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.retain(|(name, _)| !name.is_empty());
    out
}

/// (firing, quiet) `alert_rule_test` cases of one alert: each case is an `alertname:` line
/// followed by `exp_alerts: []` (quiet) or by a list of expected alerts (firing).
fn cases(tests: &str, name: &str) -> (usize, usize) {
    let mut lines = tests.lines().map(str::trim).peekable();
    let (mut firing, mut quiet) = (0, 0);
    while let Some(line) = lines.next() {
        if line != format!("alertname: {name}") {
            continue;
        }
        match lines.peek() {
            Some(&"exp_alerts: []") => quiet += 1,
            Some(&"exp_alerts:") => firing += 1,
            _ => {}
        }
    }
    (firing, quiet)
}

#[test]
fn every_alert_is_complete_and_has_a_runbook_section() {
    let runbook = read(&repo().join("docs/runbook.md"));
    let sections: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let alerts = alerts();
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    // The alerts the issue asks for.
    for required in [
        "InfraAuditAccessKeyTooOld",
        "InfraAuditAccessKeyUnused",
        "InfraAuditRootAccessKeyPresent",
        "InfraAuditRootMFADisabled",
        "InfraAuditConsoleUserWithoutMFA",
        "InfraAuditS3BucketPublic",
        "InfraAuditS3BucketUnencrypted",
        "InfraAuditEC2IMDSv1Allowed",
        "InfraAuditEC2PublicIP",
        "InfraAuditPasswordPolicyWeak",
        "InfraAuditCollectorFailing",
        "InfraAuditDataStale",
        "InfraAuditCredentialReportStale",
        "InfraAuditExporterDown",
        "InfraAuditDiscoveryFailing",
        // Issue 15: one per CIS check.
        "InfraAuditRootHardwareMFAMissing",
        "InfraAuditRootRecentlyUsed",
        "InfraAuditConsolePasswordUnused",
        "InfraAuditInitialAccessKeyUnused",
        "InfraAuditUserMultipleActiveKeys",
        "InfraAuditUserDirectPolicies",
        "InfraAuditFullAdminPolicyAttached",
        "InfraAuditSupportRoleMissing",
        "InfraAuditServerCertificateExpired",
        "InfraAuditCloudShellFullAccess",
        "InfraAuditS3SecureTransportNotRequired",
        "InfraAuditS3MFADeleteDisabled",
        "InfraAuditEBSDefaultEncryptionOff",
        "InfraAuditNACLAdminPortsOpen",
        "InfraAuditSecurityGroupAdminPortsOpen",
        "InfraAuditDefaultSecurityGroupOpen",
    ] {
        assert!(names.contains(required), "{required} is missing");
    }
    let tests: String = files("alerts/tests", "yaml")
        .iter()
        .map(|f| read(&repo().join(f)))
        .collect();
    for (name, body) in &alerts {
        for field in [
            "for: ",
            "severity: ",
            "summary: ",
            "description: ",
            "runbook_url: ",
        ] {
            assert!(body.contains(field), "{name} has no `{field}`:\n{body}");
        }
        let anchor = format!("docs/runbook.md#{}", name.to_lowercase());
        assert!(
            body.contains(&anchor),
            "{name}: runbook_url should end in {anchor}"
        );
        assert!(
            sections.contains(&name.to_lowercase()),
            "docs/runbook.md has no section `## {name}`"
        );
        let (firing, quiet) = cases(&tests, name);
        assert!(
            firing > 0 && quiet > 0,
            "alerts/tests/ must have a firing and a quiet case of {name}: {firing} firing, {quiet} quiet"
        );
    }
}
