//! Secrets stay secret at the most verbose log level: a whole collection cycle and API calls at
//! `trace`, then the log, /metrics and the API's answers are searched for the ExternalId, the
//! assumed-role session's secret key and token, and the API's bearer token.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

const TOKEN: &str = "secret-api-token-0123456789";

#[test]
fn no_secret_in_a_trace_level_log_of_a_full_cycle() {
    let emu = Emulator::start();
    let config = format!(
        "{}\n[api]\nenabled = true\nbearer_tokens = [\"{TOKEN}\"]\n",
        two_accounts(&emu.endpoint, "1h")
    );
    let d = Daemon::start_with_env("secrets", &config, &[("INFRAAUDIT_LOG", "trace")]);
    d.wait_ready(Duration::from_secs(90));
    let client = reqwest::blocking::Client::new();
    let answer = client
        .post(format!(
            "{}/v1/iam/old-access-keys/credential-report",
            d.url
        ))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .body(r#"{"hours": 0}"#)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let metrics = d.scrape().text;
    let log = d.log_text();
    assert!(log.lines().count() > 100, "trace logging is on:\n{log}");

    // The assumed-role sessions moto handed out to the exporter.
    let data = emu.data();
    let sessions: Vec<&serde_json::Value> = data["sts"]["AssumedRole"]
        .as_array()
        .expect("moto lists assumed roles")
        .iter()
        .filter(|r| r["session_name"] == "infraaudit")
        .collect();
    assert!(!sessions.is_empty(), "no session was assumed");
    let mut secrets = vec![EXTERNAL_ID.to_owned(), TOKEN.to_owned()];
    for s in sessions {
        for field in ["secret_access_key", "session_token"] {
            let v = s[field]
                .as_str()
                .unwrap_or_else(|| panic!("moto's AssumedRole has no {field}: {s}"));
            secrets.push(v.to_owned());
        }
    }
    for secret in &secrets {
        let shown = &secret[..6];
        assert!(
            !log.contains(secret.as_str()),
            "a secret ({shown}...) is in the trace log"
        );
        assert!(
            !metrics.contains(secret.as_str()),
            "a secret ({shown}...) is in /metrics"
        );
        assert!(
            !answer.contains(secret.as_str()),
            "a secret ({shown}...) is in an API answer"
        );
    }
}
