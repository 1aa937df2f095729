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
    let response = client
        .post(format!(
            "{}/v1/iam/old-access-keys/credential-report",
            d.url
        ))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .body(r#"{"hours": 0}"#)
        .send()
        .unwrap();
    let status = response.status().as_u16();
    let answer = response.text().unwrap();
    // An error answer would leak nothing for want of data: the keys must be in it.
    assert_eq!(status, 200, "{answer}");
    let keys: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(
        !keys["old_access_keys"].as_array().unwrap().is_empty(),
        "{answer}"
    );
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

/// `infraaudit check-config` refuses each configuration with exit 64 and one line on stderr that
/// names the file or variable and the key, but never the secret's value.
#[test]
fn a_refused_configuration_shows_no_secret() {
    let dir = scratch_dir("refused-secrets");
    let org = "[organizations]\nenabled = true\n";
    // (file, web configuration file, variables, what the line must name)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 6] = [
        (
            "",
            "",
            &[("INFRAAUDIT_API__BEARER_TOKENS", "SECRET-env-token")],
            &[
                "INFRAAUDIT_API__BEARER_TOKENS: api.bearer_tokens: ",
                "sequence",
            ],
        ),
        (
            "[api]\nbearer_tokens = \"SECRET-toml-token\"\n",
            "",
            &[],
            &["config.toml: api.bearer_tokens: ", "sequence"],
        ),
        (
            &format!("{org}external_id = 5318008123\n"),
            "",
            &[],
            &["config.toml: organizations.external_id: ", "string"],
        ),
        (
            &format!("{org}external_id = \"SECRET-unterminated\n"),
            "",
            &[],
            &["config.toml: line 3, column "],
        ),
        (
            "",
            "",
            &[
                ("INFRAAUDIT_ORGANIZATIONS__ENABLED", "true"),
                (
                    "INFRAAUDIT_ORGANIZATIONS__EXTERNAL_ID",
                    "SECRET with spaces",
                ),
            ],
            &["INFRAAUDIT_ORGANIZATIONS__EXTERNAL_ID: organizations.external_id: "],
        ),
        (
            "",
            "basic_auth_users: \"$2y$10$SECRETHASHSECRETHASHSECRETHASHSECRETHASHSECRETHASHSEC\"\n",
            &[],
            &["web.yml: basic_auth_users: ", "map"],
        ),
    ];
    for (config, web, vars, names) in cases {
        let path = dir.join("config.toml");
        std::fs::write(&path, config).unwrap();
        let web_path = dir.join("web.yml");
        std::fs::write(&web_path, web).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_infraaudit"));
        aws_test_env(&mut cmd).envs(vars.iter().copied());
        cmd.arg("check-config").arg("--config").arg(&path);
        if !web.is_empty() {
            cmd.arg("--web.config.file").arg(&web_path);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            out.status.code(),
            Some(64),
            "{config}{web}{vars:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        for name in names {
            assert!(stderr.contains(name), "{name:?} is not in {stderr}");
        }
        assert!(
            !stderr.contains("SECRET") && !stderr.contains("5318008123"),
            "the error shows the secret: {stderr}"
        );
    }
}
