//! What the fuzz targets check, beyond "no panic".
//!
//! Included with `#[path]` both by the fuzz targets and by `tests/fuzz_corpus.rs`, which replays
//! the committed corpus on stable Rust: one definition of each property, checked the same way by
//! the fuzzer and by `cargo test`, and no fuzz-only code in the library. It uses only the
//! library's public API, as the daemon's other modules do. A broken property panics, which
//! libFuzzer reports as a crash.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use infraaudit::collector::iam::credential_report::{
    self, CredentialReport, MAX_REPORT_BYTES, ParseError, ROOT_USER,
};
use infraaudit::config::{self, Settings};

/// The credential report parser: every input is refused with a one-line error, or read into a
/// report that is consistent and that reads back the same when written out again.
pub fn credential_report(data: &[u8]) {
    let report = match credential_report::parse(data) {
        Ok(report) => report,
        Err(e) => {
            let message = e.to_string();
            assert!(
                !message.contains(['\n', '\r']),
                "a report error is one line: {message:?}"
            );
            // The cheap checks come first and are exact.
            let whitespace = data.iter().all(u8::is_ascii_whitespace);
            let utf8 = std::str::from_utf8(data).is_ok();
            match e {
                ParseError::TooLarge(n) => assert!(n == data.len() && n > MAX_REPORT_BYTES),
                ParseError::Empty => assert!(data.len() <= MAX_REPORT_BYTES && whitespace),
                ParseError::NotUtf8 => assert!(!whitespace && !utf8),
                _ => assert!(data.len() <= MAX_REPORT_BYTES && !whitespace && utf8),
            }
            return;
        }
    };
    assert!(data.len() <= MAX_REPORT_BYTES && std::str::from_utf8(data).is_ok());

    let mut users = HashSet::new();
    for row in &report.rows {
        assert!(!row.user.trim().is_empty(), "a row without a user: {row:?}");
        assert!(users.insert(row.user.as_str()), "{:?} twice", row.user);
        for (slot, key) in (1..).zip(&row.keys) {
            assert!(
                !key.active || key.last_rotated.is_some(),
                "{:?} slot {slot}: active without a key",
                row.user
            );
            for text in [&key.last_used_region, &key.last_used_service]
                .into_iter()
                .flatten()
            {
                assert!(
                    !text.is_empty()
                        && text.trim() == text
                        && !matches!(text.as_str(), "N/A" | "no_information" | "not_supported"),
                    "{:?} slot {slot}: {text:?} is a placeholder, not a value",
                    row.user
                );
            }
        }
        let slots: Vec<u8> = row.present_keys().map(|(s, _)| s).collect();
        assert!(matches!(slots[..], [] | [1] | [2] | [1, 2]), "{slots:?}");
    }
    assert!(report.rows.iter().filter(|r| r.is_root()).count() <= 1);
    assert_eq!(report.root().is_some(), users.contains(ROOT_USER));
    assert_eq!(
        report.users().count() + usize::from(report.root().is_some()),
        report.rows.len()
    );

    // What was read is all there is: written out in AWS's format, in another column order, it
    // reads back the same.
    let again = credential_report::parse(write_report(&report).as_bytes())
        .unwrap_or_else(|e| panic!("a report read once does not read again: {e}"));
    assert_eq!(again, report);
}

/// `report` as AWS would write it, every field quoted, the columns in reverse order.
fn write_report(report: &CredentialReport) -> String {
    let mut header: Vec<String> = [
        "user",
        "arn",
        "user_creation_time",
        "password_enabled",
        "password_last_used",
        "password_last_changed",
        "mfa_active",
    ]
    .map(str::to_owned)
    .into();
    for slot in 1..=2 {
        for field in [
            "active",
            "last_rotated",
            "last_used_date",
            "last_used_region",
            "last_used_service",
        ] {
            header.push(format!("access_key_{slot}_{field}"));
        }
    }
    let absent = || "N/A".to_owned();
    let time = |t: &Option<DateTime<Utc>>| t.map_or_else(absent, |t| t.to_rfc3339());
    let mut lines = vec![header];
    for row in &report.rows {
        let mut fields = vec![
            row.user.clone(),
            row.arn.clone(),
            time(&row.user_creation_time),
            row.password_enabled.map_or_else(absent, |b| b.to_string()),
            time(&row.password_last_used),
            time(&row.password_last_changed),
            row.mfa_active.to_string(),
        ];
        for key in &row.keys {
            fields.extend([
                key.active.to_string(),
                time(&key.last_rotated),
                time(&key.last_used_date),
                key.last_used_region.clone().unwrap_or_else(absent),
                key.last_used_service.clone().unwrap_or_else(absent),
            ]);
        }
        lines.push(fields);
    }
    let quote = |s: &String| format!("\"{}\"", s.replace('"', "\"\""));
    lines
        .iter()
        .map(|fields| fields.iter().rev().map(quote).collect::<Vec<_>>().join(",") + "\n")
        .collect()
}

/// The configuration loader. The input is TOML, optionally followed by a NUL byte and the
/// environment as `NAME=value` lines (TOML text has no NUL). A refusal is one line naming a key;
/// a configuration that loads is consistent, and written back as TOML it loads again to the same.
pub fn config(data: &[u8]) {
    let (text, env) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // A file that is not UTF-8 is refused when it is read, before this function.
    let (Ok(text), Ok(env)) = (std::str::from_utf8(text), std::str::from_utf8(env)) else {
        return;
    };
    let vars: BTreeMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let env = |name: &str| vars.get(name).map(|v| (*v).to_owned());

    let settings = match config::load_str(text, &env, &infraaudit::collector::sections()) {
        Ok(settings) => settings,
        Err(e) => {
            let line = e.to_string();
            assert!(
                !line.contains(['\n', '\r']),
                "a configuration error is one line: {line:?}"
            );
            // A key of ours, the unknown one that is refused, or where TOML's syntax breaks.
            let section = e.key.split(['.', '[']).next().unwrap_or_default();
            assert!(
                e.key == "(top level)"
                    || e.key.starts_with("line ")
                    || [
                        "server",
                        "aws",
                        "collectors",
                        "checks",
                        "api",
                        "accounts",
                        "organizations",
                        "sharding",
                    ]
                    .contains(&section)
                    || e.message.starts_with("unknown field"),
                "the error names no key of the configuration: {line:?}"
            );
            return;
        }
    };
    check_settings(&settings);

    let written = toml::to_string(&settings.config)
        .unwrap_or_else(|e| panic!("a loaded configuration cannot be written as TOML: {e}"));
    let again = config::load_str(&written, &env, &infraaudit::collector::sections())
        .unwrap_or_else(|e| panic!("a loaded configuration does not load again: {e}\n{written}"));
    assert_eq!(summary(&again), summary(&settings), "{written}");
    let rewritten = toml::to_string(&again.config).unwrap_or_default();
    assert_eq!(rewritten, written, "writing is not stable");
}

/// What the rest of the daemon relies on without checking again.
fn check_settings(s: &Settings) {
    let mut ids = HashSet::new();
    for a in &s.accounts {
        assert!(a.id.len() == 12 && a.id.bytes().all(|b| b.is_ascii_digit()));
        assert!(ids.insert(a.id.as_str()), "account {} twice", a.id);
        assert!(a.external_id.is_none() || a.role_arn.is_some());
        let canonical: Vec<&str> = infraaudit::collector::ALL
            .into_iter()
            .map(|spec| spec.name)
            .filter(|n| a.collectors.contains(n))
            .collect();
        assert_eq!(a.collectors, canonical, "unknown, repeated or unordered");
    }
    assert_eq!(s.accounts.len(), s.config.accounts.len());
    if s.config.api.enabled {
        assert!(!s.api_tokens.is_empty());
        for t in &s.api_tokens {
            assert!(t.expose().len() >= 16 && t.expose().trim() == t.expose());
        }
    }
}

/// Everything in `Settings`, secrets included (their `Debug` hides them).
fn summary(s: &Settings) -> String {
    let secrets: Vec<Option<&str>> = s
        .accounts
        .iter()
        .map(|a| a.external_id.as_ref().map(|x| x.expose()))
        .collect();
    let tokens: Vec<&str> = s.api_tokens.iter().map(|t| t.expose()).collect();
    let org = s
        .organizations
        .as_ref()
        .map(|o| (o, o.external_id.as_ref().map(|x| x.expose())));
    format!(
        "{:?}\n{:?}\n{secrets:?}\n{tokens:?}\n{org:?}",
        s.config, s.accounts
    )
}
