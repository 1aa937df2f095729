//! Validation of a configuration as loaded: every value checked, secrets read, accounts
//! resolved into [`Settings`].

use std::time::Duration;

use super::accounts::{
    check_sharding, is_account_id, is_external_id, organizations, parse_role_arn,
    resolve_collectors, validate_regions,
};
use super::secrets::{api_tokens, external_id_of};
use super::{Account, Config, ConfigError, Secret, Settings};

pub(super) fn validate(
    config: Config,
    source_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let bad = |key: &str, message: String| ConfigError::new(source_name, key, message);

    if !(1..=65_536).contains(&config.server.max_connections) {
        return Err(bad(
            "server.max_connections",
            "must be between 1 and 65536".into(),
        ));
    }

    if config.aws.region.trim().is_empty() {
        return Err(bad("aws.region", "must not be empty".into()));
    }
    if let Some(url) = &config.aws.endpoint_url {
        validate_endpoint_url(url).map_err(|m| bad("aws.endpoint_url", m))?;
    }
    if !(1..=100).contains(&config.aws.max_concurrency) {
        return Err(bad(
            "aws.max_concurrency",
            "must be between 1 and 100".into(),
        ));
    }
    if config.aws.max_concurrency_total > 10_000 {
        return Err(bad(
            "aws.max_concurrency_total",
            "must be between 0 (no limit) and 10000".into(),
        ));
    }
    if !(1..=20).contains(&config.aws.max_attempts) {
        return Err(bad("aws.max_attempts", "must be between 1 and 20".into()));
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&config.aws.attempt_timeout) {
        return Err(bad(
            "aws.attempt_timeout",
            "must be between 1s and 1h".into(),
        ));
    }
    if !(Duration::from_secs(900)..=Duration::from_secs(43200))
        .contains(&config.aws.session_duration)
    {
        return Err(bad(
            "aws.session_duration",
            "must be between 15m and 12h".into(),
        ));
    }
    validate_regions(&config.aws.regions).map_err(|m| bad("aws.regions", m))?;
    let checks = &config.checks;
    for (key, d) in [
        ("checks.access_key_max_age", checks.access_key_max_age),
        ("checks.access_key_max_unused", checks.access_key_max_unused),
    ] {
        if d < Duration::from_secs(1) {
            return Err(bad(key, "must be at least 1s".into()));
        }
    }
    // AWS's own limits: a password policy cannot ask for more.
    if !(6..=128).contains(&checks.password_min_length) {
        return Err(bad(
            "checks.password_min_length",
            "must be between 6 and 128".into(),
        ));
    }
    if checks.password_reuse_prevention > 24 {
        return Err(bad(
            "checks.password_reuse_prevention",
            "must be at most 24".into(),
        ));
    }
    if let Some(d) = checks.password_max_age
        && !(Duration::from_secs(86_400)..=Duration::from_secs(1095 * 86_400)).contains(&d)
    {
        return Err(bad(
            "checks.password_max_age",
            "must be between 1d and 1095d".into(),
        ));
    }

    let mut accounts = Vec::with_capacity(config.accounts.len());
    for (i, a) in config.accounts.iter().enumerate() {
        let key = |field: &str| format!("accounts[{i}].{field}");
        if !is_account_id(&a.id) {
            return Err(bad(
                &key("id"),
                format!("{:?} is not a 12-digit AWS account id", a.id),
            ));
        }
        if accounts.iter().any(|seen: &Account| seen.id == a.id) {
            return Err(bad(&key("id"), format!("account {} is listed twice", a.id)));
        }
        if let Some(arn) = &a.role_arn {
            let role_account = parse_role_arn(arn).ok_or_else(|| {
                bad(
                    &key("role_arn"),
                    format!(
                        "{arn:?} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)"
                    ),
                )
            })?;
            if role_account != a.id {
                return Err(bad(
                    &key("role_arn"),
                    format!(
                        "the role is in account {role_account}, not in account {}",
                        a.id
                    ),
                ));
            }
        }
        let (source_key, external_id) =
            external_id_of(&a.external_id, &a.external_id_env, &a.external_id_file, env)
                .map_err(|(field, m)| bad(&key(field), m))?;
        if let Some(id) = external_id.as_ref().map(Secret::expose) {
            if a.role_arn.is_none() {
                return Err(bad(
                    &key(source_key),
                    "an ExternalId needs a role_arn".into(),
                ));
            }
            if !is_external_id(id) {
                return Err(bad(
                    &key(source_key),
                    "an ExternalId has 2 to 1224 characters from [A-Za-z0-9_+=,.@:/-]".into(),
                ));
            }
        }
        let collectors = match &a.collectors {
            Some(names) => resolve_collectors(names, &config.collectors)
                .map_err(|m| bad(&key("collectors"), m))?,
            None => config.enabled_collectors(),
        };
        let regions = match &a.regions {
            Some(r) => {
                validate_regions(r).map_err(|m| bad(&key("regions"), m))?;
                r.clone()
            }
            None => config.aws.regions.clone(),
        };
        accounts.push(Account {
            id: a.id.clone(),
            name: a.name.clone().unwrap_or_else(|| a.id.clone()),
            role_arn: a.role_arn.clone(),
            external_id,
            collectors,
            regions,
        });
    }
    let api_tokens = api_tokens(&config.api, env).map_err(|(key, m)| bad(key, m))?;
    let organizations =
        organizations(&config.organizations, env).map_err(|(key, m)| bad(&key, m))?;
    check_sharding(&config.sharding).map_err(|(key, m)| bad(key, m))?;
    Ok(Settings {
        config,
        accounts,
        api_tokens,
        organizations,
    })
}

fn validate_endpoint_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::config::testing::*;

    /// Every range check: both ends of the range are accepted, the values just outside are
    /// refused with exactly this line (users' scripts read these messages).
    #[test]
    fn range_checks_accept_their_ends_and_refuse_with_these_lines() {
        #[rustfmt::skip]
        let cases = [
            // (key, accepted values, refused values, message); values are separated by `|`.
            ("server.max_connections", "1|65536", "0|65537", "must be between 1 and 65536"),
            ("aws.max_concurrency", "1|100", "0|101", "must be between 1 and 100"),
            ("aws.max_concurrency_total", "0|10000", "10001", "must be between 0 (no limit) and 10000"),
            ("aws.max_attempts", "1|20", "0|21", "must be between 1 and 20"),
            ("aws.attempt_timeout", "1s|1h", "999ms|1h 1ms", "must be between 1s and 1h"),
            ("aws.session_duration", "15m|12h", "14m 59s|12h 1s", "must be between 15m and 12h"),
            ("checks.access_key_max_age", "1s", "0s|999ms", "must be at least 1s"),
            ("checks.access_key_max_unused", "1s", "0s|999ms", "must be at least 1s"),
            ("checks.password_min_length", "6|128", "5|129", "must be between 6 and 128"),
            ("checks.password_reuse_prevention", "0|24", "25", "must be at most 24"),
            ("checks.password_max_age", "1d|1095d", "23h 59m 59s|1095d 1s", "must be between 1d and 1095d"),
            ("api.max_concurrent_audits", "1|100", "0|101", "must be between 1 and 100"),
            ("api.audit_history", "1|100000", "0|100001", "must be between 1 and 100000"),
            ("api.max_body_bytes", "256|1048576", "255|1048577", "must be between 256 and 1048576"),
            ("organizations.refresh_interval", "1s|30d", "999ms|30d 1s", "must be between 1s and 30d"),
            ("sharding.total_shards", "1|1000", "0|1001", "must be between 1 and 1000"),
            ("collectors.s3.interval", "1s|30d", "0s|30d 1s", "must be between 1s and 30d"),
            ("collectors.ec2.timeout", "1s|30d", "999ms|30d 1s", "must be between 1s and 30d"),
        ];
        for (key, accepted, refused, message) in cases {
            let (table, field) = key.rsplit_once('.').unwrap();
            // The API and discovery are checked only when they are on.
            let others = match table {
                "api" => "enabled = true\nbearer_tokens = [\"token-0123456789abcdef\"]\n",
                "organizations" => "enabled = true\n",
                _ => "",
            };
            let text = |value: &str| {
                let value = if value.bytes().all(|b| b.is_ascii_digit()) {
                    value.to_owned()
                } else {
                    format!("{value:?}")
                };
                format!("[{table}]\n{others}{field} = {value}\n")
            };
            for value in accepted.split('|') {
                if let Err(e) = load_str(&text(value), &no_env, &sections()) {
                    panic!("{key} = {value} is refused: {e}");
                }
            }
            for value in refused.split('|') {
                let e = load_str(&text(value), &no_env, &sections())
                    .err()
                    .unwrap_or_else(|| panic!("{key} = {value} is accepted"));
                assert_eq!(e.to_string(), format!("config: {key}: {message}"));
            }
        }
    }

    #[test]
    fn bad_region_is_named() {
        let e = load_err("bad_region.toml");
        assert!(e.contains("aws.regions") && e.contains("Frankfurt"), "{e}");
    }

    #[test]
    fn impossible_threshold_is_named() {
        let e = load_err("bad_check_threshold.toml");
        assert!(e.contains("checks.password_reuse_prevention"), "{e}");
    }
}
