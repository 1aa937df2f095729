//! `infraaudit check-config`: the configuration as it takes effect (defaults, then the file,
//! then INFRAAUDIT_* variables), with every secret replaced by `<redacted>`.
//!
//! Printed as JSON (keys sorted): the crate has no TOML serializer of its own (figment only
//! reads TOML).

use std::process::ExitCode;

use serde_json::Value;

use infraaudit::config::{SECRET_KEYS, Secret, Settings};

pub const REDACTED: &str = "<redacted>";

pub fn main(settings: &Settings) -> ExitCode {
    match render(settings) {
        Ok(text) if super::write_stdout(&text) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("infraaudit: cannot print the configuration: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn render(settings: &Settings) -> Result<String, serde_json::Error> {
    let mut value = serde_json::to_value(&settings.config)?;
    // Secrets by key, and, in case a new secret field is added without a key here, by value:
    // every resolved secret, wherever it appears.
    let secrets: Vec<&str> = settings
        .accounts
        .iter()
        .filter_map(|a| a.external_id.as_ref())
        .chain(
            settings
                .organizations
                .as_ref()
                .and_then(|o| o.external_id.as_ref()),
        )
        .chain(settings.api_tokens.iter())
        .map(Secret::expose)
        .collect();
    redact(&mut value, &secrets);
    if let Value::Object(sections) = &mut value {
        sections
            .iter_mut()
            .filter(|(name, _)| name.as_str() != "accounts")
            .for_each(|(_, v)| plain_durations(v));
    }
    let mut text = serde_json::to_string_pretty(&value)?;
    text.push('\n');
    Ok(text)
}

fn redact(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if SECRET_KEYS.contains(&key.as_str()) {
                    mask(v);
                } else {
                    redact(v, secrets);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, secrets)),
        Value::String(s) if secrets.contains(&s.as_str()) => *s = REDACTED.to_owned(),
        _ => {}
    }
}

/// Durations in days at most: humantime writes 60 days as "1month 29days 13h 26m 24s" (its
/// month is 30.44 days), which parses back to the same value but reads as a different one.
fn plain_durations(value: &mut Value) {
    match value {
        Value::Object(map) => map.values_mut().for_each(plain_durations),
        Value::String(s) if s.contains("month") || s.contains("year") => {
            if let Ok(d) = humantime::parse_duration(s) {
                *s = days_hours_minutes(d);
            }
        }
        _ => {}
    }
}

fn days_hours_minutes(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_owned()
    } else {
        text.join(" ")
    }
}

/// Replaces every string under a secret key, keeping the shape (unset stays null, a list stays
/// a list of the same length).
fn mask(value: &mut Value) {
    match value {
        Value::Null => {}
        Value::Array(items) => items.iter_mut().for_each(mask),
        Value::Object(map) => map.values_mut().for_each(mask),
        other => *other = Value::String(REDACTED.to_owned()),
    }
}
