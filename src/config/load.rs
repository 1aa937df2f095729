//! Loading: built-in defaults (the collectors' sections among them), then the TOML text of the
//! file, then the `INFRAAUDIT_*` variables, each a figment provider that an error can name.

use std::path::Path;

use figment::error::Kind;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::secrets::{SECRET_KEYS, is_secret_key, secret_message};
use super::sections::{SectionError, SectionSpec, read_sections};
use super::validate::validate;
use super::{Config, ConfigError, Invalid, Settings, ShardFlags};

/// Environment variables with this prefix override the file; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "INFRAAUDIT_";

/// Loads defaults, then `path` (which must exist), then the environment; validates the result.
/// `sections` are the collectors' sections (`collector::sections()`).
pub fn load(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    sections: &[SectionSpec],
) -> Result<Settings, ConfigError> {
    load_with(path, env, ShardFlags::default(), sections)
}

/// [`load`], with `--shard`/`--total-shards` over everything else.
pub fn load_with(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: ShardFlags,
    sections: &[SectionSpec],
) -> Result<Settings, ConfigError> {
    let Some(path) = path else {
        return load_sources(None, "defaults", process_vars(), env, flags, sections);
    };
    let source_name = path.display().to_string();
    // Read here, not by figment: it ignores a missing file (a daemon started with a typo in its
    // path must not), and its TOML errors quote the line.
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            &source_name,
            "--config",
            format!("cannot read the file: {e}"),
        )
    })?;
    load_sources(
        Some(&text),
        &source_name,
        process_vars(),
        env,
        flags,
        sections,
    )
}

/// [`load`] from a TOML text instead of a file (the fuzz target and tests use it).
pub fn load_str(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    sections: &[SectionSpec],
) -> Result<Settings, ConfigError> {
    load_sources(
        Some(text),
        "config",
        process_vars(),
        env,
        ShardFlags::default(),
        sections,
    )
}

fn process_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Defaults, then `text` (the TOML of `source_name`), then the `INFRAAUDIT_*` variables among
/// `vars`; validated. An error names the variable or file that set the value at fault.
fn load_sources(
    text: Option<&str>,
    source_name: &str,
    vars: Vec<(String, String)>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: ShardFlags,
    sections: &[SectionSpec],
) -> Result<Settings, ConfigError> {
    let defaults: Dict = sections
        .iter()
        .map(|s| (s.name.to_owned(), (s.defaults)()))
        .collect();
    let mut figment = Figment::from(Serialized::defaults(Config::default()))
        .merge(Serialized::default("collectors", defaults));
    if let Some(text) = text {
        check_toml(text).map_err(|(at, message)| ConfigError::new(source_name, at, message))?;
        figment = figment.merge(TomlText { source_name, text });
    }
    for var in vars.into_iter().filter_map(EnvVar::parse) {
        figment = figment.merge(var);
    }
    // A value that a check refused, blamed on the variable or file that set it.
    let blame = |key: String, message: String| {
        let e = ConfigError::new(source_name, key, message);
        match origin(&figment, &e.key) {
            Some(var_or_file) => ConfigError::new(&var_or_file, e.key, e.message),
            None => e,
        }
    };
    let mut config: Config = figment
        .extract()
        .map_err(|e| from_figment(&figment, source_name, e))?;
    config.collectors.sections = read_sections(&figment, &config.collectors.raw, sections)
        .map_err(|e| match e {
            SectionError::Figment(e) => from_figment(&figment, source_name, *e),
            SectionError::Invalid(key, message) => blame(key, message),
        })?;
    flags.apply(&mut config.sharding);
    validate(config, env).map_err(|Invalid { key, message }| flags.blame(blame(key, message)))
}

/// The TOML text, read and checked already, under the name of its file.
struct TomlText<'a> {
    source_name: &'a str,
    text: &'a str,
}

impl Provider for TomlText<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named("TOML file").source(Source::Custom(self.source_name.to_owned()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Toml::string(self.text).data()
    }
}

/// One `INFRAAUDIT_<SECTION>__<KEY>` variable, as its own provider so that an error can name
/// it. figment's `Env` names keys instead (`AWS.MAX_CONCURRENCY`), and parses every value, so
/// an all-digit ExternalId became a number without its leading zeros: here the values of
/// secret-bearing keys stay the strings they are.
struct EnvVar {
    name: String,
    key: String,
    value: String,
}

impl EnvVar {
    /// None for a variable that is not configuration. The prefix is matched without regard to
    /// case, as figment did; only names with `__` count, so that variables named by
    /// `external_id_env` (say INFRAAUDIT_PROD_EXTERNAL_ID) are never mistaken for keys.
    fn parse((name, value): (String, String)) -> Option<Self> {
        let trimmed = name.trim();
        let rest = trimmed
            .get(..ENV_PREFIX.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
            .and_then(|_| trimmed.get(ENV_PREFIX.len()..))?;
        if !rest.contains("__") {
            return None;
        }
        let key = rest.trim().replace("__", ".").to_ascii_lowercase();
        if key.split('.').any(str::is_empty) {
            return None;
        }
        Some(Self { name, key, value })
    }
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable").source(Source::Custom(self.name.clone()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let value = if is_secret_key(&self.key) {
            Value::from(self.value.clone())
        } else {
            match self.value.parse::<Value>() {
                Ok(value) => value,
                Err(never) => match never {},
            }
        };
        let dict = figment::util::nest(&self.key, value)
            .into_dict()
            .ok_or_else(|| figment::Error::from(format!("{} names no key", self.name)))?;
        Ok(Profile::Default.collect(dict))
    }
}

/// The environment variable or file that set `key` (`accounts[0].id`), by figment's metadata of
/// the merged value; None for defaults and for keys that are not set.
fn origin(figment: &Figment, key: &str) -> Option<String> {
    let mut segments = key.split(['.', '[', ']']).filter(|s| !s.is_empty());
    let mut value = figment.find_value(segments.next()?).ok()?;
    for segment in segments {
        value = match value {
            Value::Dict(_, mut dict) => dict.remove(segment)?,
            Value::Array(_, items) => items.into_iter().nth(segment.parse().ok()?)?,
            _ => return None,
        };
    }
    let source = figment.get_metadata(value.tag())?.source.as_ref()?;
    source.custom().map(str::to_owned)
}

/// A TOML syntax error as (position, message), checked with the parser figment uses. Never the
/// parser's snippet of the line, which may quote a secret, and not even its message when the
/// lines at fault hold a secret-bearing key.
fn check_toml(text: &str) -> Result<(), (String, String)> {
    let Err(e) = toml::from_str::<toml::Table>(text) else {
        return Ok(());
    };
    let boundary = |i: usize| {
        (0..=i.min(text.len()))
            .rev()
            .find(|&i| text.is_char_boundary(i))
    };
    let span = e.span().unwrap_or(0..0);
    let start = boundary(span.start).unwrap_or(0);
    let end = boundary(span.end.max(start)).unwrap_or(start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let message = if SECRET_KEYS
        .iter()
        .any(|key| text[line_start..line_end].contains(key))
    {
        "not valid TOML (the parser's message is withheld: the line holds a secret)".to_owned()
    } else {
        e.message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    };
    Err((format!("line {line}, column {column}"), message))
}

fn from_figment(figment: &Figment, source_name: &str, err: figment::Error) -> ConfigError {
    let key = key_of(&err.path);
    let source = origin(figment, &key)
        .or_else(|| {
            let source = err.metadata.as_ref()?.source.as_ref()?;
            source.custom().map(str::to_owned)
        })
        .unwrap_or_else(|| source_name.to_owned());
    let withheld = if is_secret_key(&key) {
        secret_message(&err.kind)
    } else {
        None
    };
    let message = withheld.unwrap_or_else(|| message(&err.kind));
    let key = if key.is_empty() {
        "(top level)".to_owned()
    } else {
        key
    };
    ConfigError::new(&source, key, message)
}

/// figment's path as validation writes keys: `accounts[0].id`, not `accounts.0.id`.
fn key_of(path: &[String]) -> String {
    let mut key = String::new();
    for segment in path {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            key.push_str(&format!("[{segment}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(segment);
        }
    }
    key
}

/// figment's message, with lists of known names as plain lists instead of its nested quotes
/// (the key names the unknown one already).
fn message(kind: &Kind) -> String {
    let known = |what: &str, names: &[&str]| match names {
        [] => format!("unknown {what}"),
        names => format!("unknown {what}; known {what}s: {}", names.join(", ")),
    };
    match kind {
        Kind::UnknownField(_, names) => known("field", names),
        Kind::UnknownVariant(_, names) => known("variant", names),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::Secret;
    use crate::config::testing::*;

    #[test]
    fn defaults_without_file() {
        let s = load(None, &no_env, &sections()).unwrap();
        assert_eq!(s.config.server.listen_address.to_string(), "0.0.0.0:10025");
        assert_eq!(s.config.aws.region, "us-east-1");
        assert_eq!(s.config.aws.max_concurrency, 5);
        assert_eq!(
            s.config.collectors.get("iam").unwrap().common.interval,
            Duration::from_secs(3600)
        );
        assert!(s.accounts.is_empty());
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        // As shipped: no environment needed (tests/cli.rs runs check-config on it too).
        let s = load(Some(&path), &no_env, &sections()).unwrap();
        assert_eq!(s.accounts.len(), 2);
        // Owners are off as shipped: starting from the example adds no tag call.
        assert!(!s.accounts[0].tagging.enabled);
        assert_eq!(
            s.accounts[1].external_id.as_ref().map(Secret::expose),
            Some("replace-with-the-staging-external-id")
        );
    }

    #[test]
    fn good_fixture() {
        let s = load(Some(&fixture("ok.toml")), &no_env, &sections()).unwrap();
        assert_eq!(
            s.config.collectors.get("iam").unwrap().common.interval,
            Duration::from_secs(90 * 60)
        );
        assert_eq!(s.accounts[0].name, "prod");
        // A missing name falls back to the id.
        assert_eq!(s.accounts[1].name, "222222222222");
        assert_eq!(
            s.accounts[0].external_id.as_ref().map(Secret::expose),
            Some("prod-external-id")
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = load_err("bad_unknown_key.toml");
        assert!(e.contains("bad_unknown_key.toml"), "{e}");
        assert!(e.contains("server") && e.contains("listen_adress"), "{e}");
    }

    #[test]
    fn missing_file_is_refused() {
        let e = load_err("does_not_exist.toml");
        assert!(
            e.contains("does_not_exist.toml") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn errors_stay_one_line_whatever_the_file_holds() {
        // fuzz/corpus/config/one_line_*.toml: a CRLF file with a syntax error (found by the
        // fuzzer), and of the same kind a quoted key with a newline and variable names with
        // control characters.
        let none = |_: &str| None;
        for text in [
            "[aws]\r\nreg[on = \"eu-west-1\"\r\n",
            "[server]\n\"a\\nb\" = 1\n",
            "[[accounts]]\nid = \"111111111111\"\nrole_arn = \"arn:aws:iam::111111111111:role/x\"\nexternal_id_env = \"A\\nB\"\n",
            "[api]\nbearer_tokens_env = \"X\\rY\"\n",
        ] {
            let e = load_str(text, &none, &sections()).unwrap_err().to_string();
            assert!(!e.contains(['\n', '\r']), "{e:?}");
        }
        let e = load_str("[api]\nbearer_tokens_env = \"X\\rY\"\n", &none, &sections()).unwrap_err();
        assert_eq!(e.message, "environment variable X\\rY is not set or empty");
    }

    #[test]
    fn toml_syntax_errors_give_the_position_and_never_the_line() {
        let e = load_str(
            "[organizations]\nenabled = true\nexternal_id = \"SECRET-unterminated\n",
            &no_env,
            &sections(),
        )
        .unwrap_err();
        let line = e.to_string();
        assert!(line.starts_with("config: line 3, column "), "{line}");
        assert!(!line.contains(SHOWN), "the error shows the secret: {line}");
        // On a line without a secret the parser's short message stays, without the snippet.
        let e = load_str("[aws]\nregion = \"eu-west-1\n", &no_env, &sections()).unwrap_err();
        let line = e.to_string();
        assert!(line.starts_with("config: line 2, column "), "{line}");
        assert!(line.contains("invalid basic string"), "{line}");
        assert!(!line.contains("eu-west-1") && !line.contains('|'), "{line}");
        // A multi-line message of the parser becomes one line, without escapes.
        let e = load_str("[aws\n", &no_env, &sections())
            .unwrap_err()
            .to_string();
        assert!(!e.contains(['\n', '\r']) && !e.contains("\\n"), "{e}");
    }

    #[test]
    fn figment_errors_read_like_validation_errors() {
        // Paths as validation writes them.
        let e = load_str("[[accounts]]\nid = 5\n", &no_env, &sections()).unwrap_err();
        assert_eq!(e.key, "accounts[0].id", "{e}");
        // Unknown fields: the key names the field; the known ones are a plain list.
        let e = load(Some(&fixture("bad_unknown_key.toml")), &no_env, &sections()).unwrap_err();
        assert_eq!(e.key, "server.listen_adress", "{e}");
        assert_eq!(
            e.message,
            "unknown field; known fields: listen_address, web_config_file, max_connections"
        );
    }

    /// [`load_str`] of a file `config.toml`, with these variables instead of the process's.
    fn load_vars(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        load_sources(
            Some(text),
            "config.toml",
            vars,
            &no_env,
            ShardFlags::default(),
            &sections(),
        )
    }

    #[test]
    fn errors_about_values_from_the_environment_name_the_variable() {
        let e = load_vars("", &[("INFRAAUDIT_AWS__MAX_CONCURRENCY", "0")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "INFRAAUDIT_AWS__MAX_CONCURRENCY: aws.max_concurrency: must be between 1 and 100"
        );
        // The variable wins over the file, and so does the blame.
        let e = load_vars(
            "[aws]\nmax_concurrency = 7\n",
            &[("INFRAAUDIT_AWS__MAX_CONCURRENCY", "0")],
        )
        .unwrap_err();
        assert_eq!(e.source_name, "INFRAAUDIT_AWS__MAX_CONCURRENCY", "{e}");
        // Type errors and unknown keys too; the variable as it is spelled (the prefix matches
        // in any case).
        let e = load_vars("", &[("infraaudit_aws__max_concurrency", "many")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("infraaudit_aws__max_concurrency: aws.max_concurrency: invalid type"),
            "{e}"
        );
        let e = load_vars("", &[("INFRAAUDIT_AWS__REGON", "eu-west-1")]).unwrap_err();
        assert_eq!(
            (e.source_name.as_str(), e.key.as_str()),
            ("INFRAAUDIT_AWS__REGON", "aws.regon"),
            "{e}"
        );
        // A value of the file is still the file's when a variable sets another key of its table.
        let vars = [("INFRAAUDIT_AWS__MAX_CONCURRENCY", "7")];
        for text in ["[aws]\nmax_attempts = 0\n", "[aws]\nregon = \"x\"\n"] {
            let e = load_vars(text, &vars).unwrap_err();
            assert_eq!(e.source_name, "config.toml", "{e}");
        }
        // Secrets: the variable and the key, never the value.
        let e =
            load_vars("", &[("INFRAAUDIT_API__BEARER_TOKENS", "SECRET-env-token")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "INFRAAUDIT_API__BEARER_TOKENS: api.bearer_tokens: invalid type: expected a sequence"
        );
        let e = load_vars(
            "[organizations]\nenabled = true\n",
            &[("INFRAAUDIT_ORGANIZATIONS__EXTERNAL_ID", "SECRET has spaces")],
        )
        .unwrap_err();
        let line = e.to_string();
        assert!(
            line.starts_with("INFRAAUDIT_ORGANIZATIONS__EXTERNAL_ID: organizations.external_id: "),
            "{line}"
        );
        assert!(!line.contains(SHOWN), "the error shows the secret: {line}");
        // Names without `__` are no keys: `external_id_env` may name them.
        load_vars(
            "",
            &[("INFRAAUDIT_MAX_CONCURRENCY", "0"), ("INFRAAUDIT_LOG", "x")],
        )
        .unwrap();
    }

    #[test]
    fn an_all_digit_external_id_from_the_environment_keeps_its_zeros() {
        let s = load_vars(
            "[organizations]\nenabled = true\n",
            &[("INFRAAUDIT_ORGANIZATIONS__EXTERNAL_ID", "001234567890")],
        )
        .unwrap();
        let org = s.organizations.unwrap();
        assert_eq!(
            org.external_id.as_ref().map(Secret::expose),
            Some("001234567890")
        );
        // Other values are still parsed as figment does: numbers, booleans, lists.
        let s = load_vars(
            "",
            &[
                ("INFRAAUDIT_AWS__MAX_CONCURRENCY", "7"),
                ("INFRAAUDIT_COLLECTORS__EC2__ENABLED", "false"),
                ("INFRAAUDIT_AWS__REGIONS", "[eu-west-1, us-east-2]"),
            ],
        )
        .unwrap();
        assert_eq!(s.config.aws.max_concurrency, 7);
        assert!(!s.config.collectors.get("ec2").unwrap().common.enabled);
        assert_eq!(s.config.aws.regions, ["eu-west-1", "us-east-2"]);
    }
}
