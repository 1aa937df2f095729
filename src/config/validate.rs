//! Validation of a configuration as loaded: every value checked, secrets read, accounts
//! resolved into [`Settings`].

use super::accounts::{accounts, check_sharding, organizations, validate_regions};
use super::range::{DAY, HOUR, MINUTE, SECOND, ZeroIsNoLimit, in_range};
use super::secrets::api_tokens;
use super::{Config, Invalid, Settings};

/// [`in_range`] of a field of `config`, under the key that is the field's path:
/// `in_range!(config.aws.max_attempts, 1..=20)` checks the key `aws.max_attempts`.
macro_rules! in_range {
    ($config:ident . $section:ident . $field:ident, $limits:expr) => {
        in_range(
            concat!(stringify!($section), ".", stringify!($field)),
            $config.$section.$field,
            $limits,
        )
    };
}

/// `config` checked, its secrets read and its accounts resolved; Err: the first value at fault.
pub(super) fn validate(
    config: Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, Invalid> {
    in_range!(config.server.max_connections, 1..=65_536)?;

    if config.aws.region.trim().is_empty() {
        return Err(Invalid::new("aws.region", "must not be empty"));
    }
    if let Some(url) = &config.aws.endpoint_url {
        validate_endpoint_url(url).map_err(|m| Invalid::new("aws.endpoint_url", m))?;
    }
    in_range!(config.aws.max_concurrency, 1..=100)?;
    in_range!(config.aws.max_concurrency_total, ZeroIsNoLimit(..=10_000))?;
    in_range!(config.aws.max_attempts, 1..=20)?;
    in_range!(config.aws.attempt_timeout, SECOND..=HOUR)?;
    in_range!(config.aws.session_duration, MINUTE * 15..=HOUR * 12)?;
    validate_regions(&config.aws.regions).map_err(|m| Invalid::new("aws.regions", m))?;

    in_range!(config.checks.access_key_max_age, SECOND..)?;
    in_range!(config.checks.access_key_max_unused, SECOND..)?;
    in_range!(config.checks.root_max_recent_use, SECOND..)?;
    // AWS's own limits: a password policy cannot ask for more.
    in_range!(config.checks.password_min_length, 6..=128)?;
    in_range!(config.checks.password_reuse_prevention, ..=24)?;
    if let Some(age) = config.checks.password_max_age {
        in_range("checks.password_max_age", age, DAY..=DAY * 1095)?;
    }

    tag_keys("owners.tag_keys", &config.owners.tag_keys)?;
    tag_keys("labels.iam_user_tags", &config.labels.iam_user_tags)?;
    tag_keys("labels.s3_bucket_tags", &config.labels.s3_bucket_tags)?;
    tag_keys("labels.ec2_instance_tags", &config.labels.ec2_instance_tags)?;

    let accounts = accounts(&config, env)?;
    let api_tokens = api_tokens(&config.api, env)?;
    if config.api.enabled {
        in_range!(config.api.max_concurrent_audits, 1..=100)?;
        in_range!(config.api.audit_history, 1..=100_000)?;
        in_range!(config.api.max_body_bytes, 256..=1024 * 1024)?;
    }
    let organizations = organizations(&config.organizations, env)?;
    check_sharding(&config.sharding)?;
    Ok(Settings {
        config,
        accounts,
        api_tokens,
        organizations,
    })
}

/// Tag keys as AWS allows them (1 to 128 characters), each listed once.
fn tag_keys(key: &str, keys: &[String]) -> Result<(), Invalid> {
    for (i, k) in keys.iter().enumerate() {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(Invalid::new(
                format!("{key}[{i}]"),
                "a tag key has 1 to 128 characters",
            ));
        }
        if keys[..i].contains(k) {
            return Err(Invalid::new(
                format!("{key}[{i}]"),
                format!("{k:?} is listed twice"),
            ));
        }
    }
    if let Some(name) = crate::owners::label_collision(keys) {
        return Err(Invalid::new(
            key,
            format!("two keys give the label {name:?}; rename one"),
        ));
    }
    Ok(())
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
            ("checks.root_max_recent_use", "1s|3650d", "0s|999ms", "must be at least 1s"),
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

    /// Tag keys and owners: refused with exactly these lines.
    #[test]
    fn bad_tag_keys_and_owners_are_named() {
        let long = "k".repeat(129);
        let cases = [
            (
                "[owners]\ntag_keys = [\"owner\", \"\"]\n".to_owned(),
                "config: owners.tag_keys[1]: a tag key has 1 to 128 characters",
            ),
            (
                format!("[labels]\ns3_bucket_tags = [\"{long}\"]\n"),
                "config: labels.s3_bucket_tags[0]: a tag key has 1 to 128 characters",
            ),
            (
                "[labels]\nec2_instance_tags = [\"env\", \"env\"]\n".to_owned(),
                "config: labels.ec2_instance_tags[1]: \"env\" is listed twice",
            ),
            (
                "[labels]\niam_user_tags = [\"team\", \"Team\", \"team_conflict1\"]\n".to_owned(),
                "config: labels.iam_user_tags: two keys give the label \"tag_team_conflict1\"; rename one",
            ),
            (
                "[[accounts]]\nid = \"123456789012\"\nowner = \"  \"\n".to_owned(),
                "config: accounts[0].owner: an owner has 1 to 128 characters, not all blank, and no control character",
            ),
            (
                "[[accounts]]\nid = \"123456789012\"\nowner = \"a\\nb\"\n".to_owned(),
                "config: accounts[0].owner: an owner has 1 to 128 characters, not all blank, and no control character",
            ),
        ];
        for (text, message) in cases {
            let e = load_str(&text, &no_env, &sections())
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert_eq!(e.to_string(), message);
        }
        let ok = "[owners]\ntag_keys = [\"owner\"]\n[labels]\niam_user_tags = [\"Team\", \"team\"]\n\
            [[accounts]]\nid = \"123456789012\"\nowner = \"team-a\"\n";
        let s = load_str(ok, &no_env, &sections()).unwrap();
        assert_eq!(s.accounts[0].owner, "team-a");
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
