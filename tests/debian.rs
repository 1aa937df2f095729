//! The Debian package's sources fit the rest of the repository (scripts/test-deb.sh checks the
//! built package itself, after `make deb`):
//!
//! - the packaged unit deploy/debian/infraaudit.service has every directive of
//!   deploy/systemd/infraaudit.service, sandbox included, but the few that differ on purpose (the
//!   binary's path, the system user instead of DynamicUser=, no LoadCredential= lines), so that
//!   the two cannot drift apart;
//! - the conffile deploy/debian/config.toml passes `check-config` with no environment at all,
//!   audits the ambient account (no accounts, no discovery), and comments every key it sets.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use serde_json::Value;

const UNIT: &str = "deploy/systemd/infraaudit.service";
const PACKAGED_UNIT: &str = "deploy/debian/infraaudit.service";
const CONFFILE: &str = "deploy/debian/config.toml";

/// A unit's directives, `(section, key)` to every value in order; comments and blank lines aside.
fn directives(path: &str) -> BTreeMap<(String, String), Vec<String>> {
    let text = read(&repo().join(path));
    let mut section = String::new();
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "{path}: continuation lines are not expected: {line}"
        );
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{path}: not Key=value: {line}"));
        out.entry((section.clone(), k.trim().to_owned()))
            .or_default()
            .push(v.trim().to_owned());
    }
    out
}

fn take(
    map: &mut BTreeMap<(String, String), Vec<String>>,
    section: &str,
    key: &str,
) -> Vec<String> {
    map.remove(&(section.to_owned(), key.to_owned()))
        .unwrap_or_default()
}

#[test]
fn packaged_unit_keeps_the_sandbox_of_the_systemd_unit() {
    let mut upstream = directives(UNIT);
    let mut packaged = directives(PACKAGED_UNIT);

    // The binary: /usr/local/bin by hand, /usr/bin from the package; the same arguments.
    let exec = take(&mut upstream, "Service", "ExecStart");
    let packaged_exec = take(&mut packaged, "Service", "ExecStart");
    assert_eq!(exec.len(), 1, "{UNIT}: one ExecStart");
    assert_eq!(
        packaged_exec,
        vec![exec[0].replacen("/usr/local/bin/", "/usr/bin/", 1)],
        "{PACKAGED_UNIT}: ExecStart should be {UNIT}'s with the binary in /usr/bin"
    );
    assert_eq!(
        packaged_exec[0],
        "/usr/bin/infraaudit --config /etc/infraaudit/config.toml"
    );

    // The user: made up at start by hand, the package's system user (postinst) when packaged.
    assert_eq!(take(&mut upstream, "Service", "DynamicUser"), ["yes"]);
    assert_eq!(
        take(&mut packaged, "Service", "DynamicUser"),
        Vec::<String>::new()
    );
    assert_eq!(take(&mut packaged, "Service", "User"), ["infraaudit"]);
    assert_eq!(take(&mut packaged, "Service", "Group"), ["infraaudit"]);
    assert!(
        !upstream.contains_key(&("Service".into(), "User".into())),
        "{UNIT}: User= next to DynamicUser="
    );

    // Secrets: a fresh install has none, and a missing credential file fails the start, so the
    // packaged unit only says, in comments, how to add each of the upstream unit's credentials.
    let creds = take(&mut upstream, "Service", "LoadCredential");
    assert!(!creds.is_empty(), "{UNIT}: no LoadCredential= line");
    assert_eq!(
        take(&mut packaged, "Service", "LoadCredential"),
        Vec::<String>::new(),
        "{PACKAGED_UNIT}: a LoadCredential= line fails the start of a fresh install"
    );
    let text = read(&repo().join(PACKAGED_UNIT));
    for cred in &creds {
        let name = cred.split(':').next().unwrap();
        assert!(
            text.contains(&format!("#   LoadCredential={cred}")),
            "{PACKAGED_UNIT}: no comment showing LoadCredential={cred}"
        );
        assert!(
            text.contains(&format!("/run/credentials/infraaudit.service/{name}")),
            "{PACKAGED_UNIT}: should say where {name} appears"
        );
    }

    // Documentation: the upstream pointers, and the man page the package installs.
    let docs = take(&mut upstream, "Unit", "Documentation").join(" ");
    let packaged_docs = take(&mut packaged, "Unit", "Documentation").join(" ");
    for doc in docs.split_whitespace().chain(["man:infraaudit(1)"]) {
        assert!(
            packaged_docs.split_whitespace().any(|d| d == doc),
            "{PACKAGED_UNIT}: Documentation= lacks {doc}"
        );
    }

    // Everything else, the sandbox above all, is the same.
    let only = |a: &BTreeMap<_, Vec<String>>, b: &BTreeMap<_, Vec<String>>| -> Vec<String> {
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|((s, k), v)| format!("[{s}] {k}={}", v.join(" | ")))
            .collect()
    };
    assert!(
        upstream == packaged,
        "the units differ beyond ExecStart, the user, LoadCredential and Documentation:\n\
         only in {UNIT}: {:#?}\nonly in {PACKAGED_UNIT}: {:#?}",
        only(&upstream, &packaged),
        only(&packaged, &upstream)
    );
    assert!(
        upstream.contains_key(&("Service".into(), "ProtectSystem".into())),
        "{UNIT}: the comparison saw no sandbox"
    );
}

#[test]
fn conffile_passes_check_config_without_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_infraaudit"))
        .env_clear()
        .args(["check-config", "--config"])
        .arg(repo().join(CONFFILE))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check-config {CONFFILE}: exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The ambient account: no accounts listed, no discovery.
    let accounts = &config["accounts"];
    assert!(
        accounts.is_null() || accounts.as_array().is_some_and(Vec::is_empty),
        "{CONFFILE}: should audit the ambient account, lists {accounts}"
    );
    assert_ne!(
        config.pointer("/organizations/enabled"),
        Some(&Value::Bool(true)),
        "{CONFFILE}: discovery on"
    );
    // Started on install: the pages name users, keys and public buckets, so loopback only
    // until the operator opens it (docs/security.md).
    let listen = config
        .pointer("/server/listen_address")
        .and_then(Value::as_str);
    assert!(
        listen.is_some_and(|l| l.starts_with("127.0.0.1:")),
        "{CONFFILE}: listens on {listen:?}, not loopback"
    );
}

#[test]
fn conffile_comments_every_key_it_sets() {
    let text = read(&repo().join(CONFFILE));
    let mut previous = "";
    let mut keys = 0;
    for line in text.lines().map(str::trim) {
        let is_key = !line.is_empty() && !line.starts_with('#') && !line.starts_with('[');
        if is_key {
            keys += 1;
            assert!(
                previous.starts_with('#'),
                "{CONFFILE}: `{line}` has no comment line above it"
            );
        }
        previous = line;
    }
    assert!(keys > 0, "{CONFFILE}: sets no key");
    for pointer in ["/usr/share/doc/infraaudit/", "docs/configuration.md"] {
        assert!(
            text.contains(pointer),
            "{CONFFILE}: should point to {pointer}"
        );
    }
}
