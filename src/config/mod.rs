//! Configuration: built-in defaults, then a TOML file, then `INFRAAUDIT_*` environment variables.
//!
//! Everything is validated here, before the runtime starts, so that a typo is an exit code 64 with
//! one line naming the key, never a daemon that runs with half a configuration.

use std::any::Any;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::error::Kind;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{Deserialize, Serialize};

/// Environment variables with this prefix override the file; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "INFRAAUDIT_";

/// Keys whose values are secrets wherever they appear, here and in the web configuration
/// ([`crate::web`]): errors, logs and `check-config` never show their values, whatever their
/// type. `external_id_env` and `bearer_tokens_env` name variables, and are not secrets. A new
/// secret-bearing key is one more name here.
pub const SECRET_KEYS: [&str; 3] = ["external_id", "bearer_tokens", "basic_auth_users"];

/// Whether `key` (`accounts[0].external_id`, `api.bearer_tokens[1]`) is a secret-bearing key
/// or lies under one.
pub fn is_secret_key(key: &str) -> bool {
    key.split(['.', '[', ']'])
        .any(|segment| SECRET_KEYS.contains(&segment))
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP server that serves /metrics.
    pub server: ServerConfig,
    /// How AWS is reached.
    pub aws: AwsConfig,
    /// Per-collector settings.
    pub collectors: CollectorsConfig,
    /// Thresholds of the checks behind `infraaudit_check_failed_resources`.
    pub checks: ChecksConfig,
    /// The JSON API, off by default.
    pub api: ApiConfig,
    /// The audited accounts. Empty: audit the one account of the ambient credentials (unless
    /// `organizations` finds the accounts).
    pub accounts: Vec<AccountConfig>,
    /// Accounts found in AWS Organizations, audited besides `accounts`.
    pub organizations: OrganizationsConfig,
    /// Which accounts this process audits when several processes share them.
    pub sharding: ShardingConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrganizationsConfig {
    /// Discover the organization's ACTIVE accounts and audit them too.
    pub enabled: bool,
    /// The role assumed in each discovered account: `arn:aws:iam::<id>:role/<role_name>`.
    pub role_name: String,
    /// ExternalId for AssumeRole into `role_name` (and into `role_arn`). Prefer
    /// `external_id_env` or `external_id_file`.
    pub external_id: Option<Secret>,
    /// Name of an environment variable that holds the ExternalId.
    pub external_id_env: Option<String>,
    /// A file that holds the ExternalId (surrounding whitespace is ignored).
    pub external_id_file: Option<PathBuf>,
    /// Role to assume, in the management or a delegated-administrator account, to call
    /// Organizations. Unset: the base credentials call it.
    pub role_arn: Option<String>,
    /// Only accounts under these OUs (`ou-...`) or roots (`r-...`), directly or in nested OUs.
    /// Empty: every account.
    pub include_ous: Vec<String>,
    /// Account ids never audited, even when found.
    pub exclude_accounts: Vec<String>,
    /// Time from the start of one discovery to the start of the next.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
}

impl Default for OrganizationsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            role_name: "InfraAuditRole".to_owned(),
            external_id: None,
            external_id_env: None,
            external_id_file: None,
            role_arn: None,
            include_ous: Vec::new(),
            exclude_accounts: Vec::new(),
            refresh_interval: Duration::from_secs(3600),
        }
    }
}

/// Sharding, as kube-state-metrics does it: this process audits the accounts whose
/// `fnv1a_64(account id) % total_shards` is `shard`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardingConfig {
    /// This process's shard, from 0.
    pub shard: u32,
    /// How many processes share the accounts.
    pub total_shards: u32,
}

impl Default for ShardingConfig {
    fn default() -> Self {
        Self {
            shard: 0,
            total_shards: 1,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the JSON API (`/v1/...`, `/api/...`, `/openapi.json`) on the metrics port.
    pub enabled: bool,
    /// Accepted `Authorization: Bearer` tokens. Prefer `bearer_tokens_env`.
    pub bearer_tokens: Vec<Secret>,
    /// Name of an environment variable with comma-separated tokens (added to `bearer_tokens`).
    pub bearer_tokens_env: Option<String>,
    /// A file with one token per line (added to `bearer_tokens`; `#` starts a comment line).
    pub bearer_tokens_file: Option<PathBuf>,
    /// Let `POST /api/audit/start` audit accounts that are not configured, given `role_name`
    /// and `external_id` (the onboarding flow of a SaaS auditor).
    pub allow_adhoc_accounts: bool,
    /// Audits running at once; more are refused with 429.
    pub max_concurrent_audits: usize,
    /// Finished audits kept for `GET /api/audit/status/{id}`; the oldest go first.
    pub audit_history: usize,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bearer_tokens: Vec::new(),
            bearer_tokens_env: None,
            bearer_tokens_file: None,
            allow_adhoc_accounts: false,
            max_concurrent_audits: 2,
            audit_history: 100,
            max_body_bytes: 16 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen_address: SocketAddr,
    /// TLS and basic auth, in the exporter-toolkit's web configuration format (the file
    /// node_exporter takes with `--web.config.file`, which overrides this).
    pub web_config_file: Option<PathBuf>,
    /// Connections open at once (1 to 65536). At the cap, a new connection closes the one that
    /// has waited longest (at least 1 s) for a request; when every connection has a request in
    /// flight, it waits in the listen queue. Kept below the file descriptor limit, whose soft
    /// value is raised to the hard one at start. About 17 KiB per idle connection.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen_address: SocketAddr::from(([0, 0, 0, 0], 10025)),
            web_config_file: None,
            max_connections: 8192,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Home region for STS and IAM (and the signing region of the global services).
    pub region: String,
    /// Send every AWS request to exactly this URL (emulators, proxies). Unset: AWS itself.
    pub endpoint_url: Option<String>,
    /// Concurrent AWS calls per account.
    pub max_concurrency: usize,
    /// Concurrent AWS calls over every account of the process (0: no limit beyond the
    /// accounts' own). Bounds sockets and memory with many accounts: 1,000 accounts at
    /// `max_concurrency` 5 would otherwise make 5,000 calls at once.
    pub max_concurrency_total: usize,
    /// Attempts per AWS call, the first included; adaptive retries (backoff with jitter, and a
    /// client-side rate limit after throttling).
    pub max_attempts: u32,
    /// Time limit for one attempt of one AWS call.
    #[serde(with = "humantime_serde")]
    pub attempt_timeout: Duration,
    /// Lifetime of assumed-role sessions (15 minutes to the role's maximum). They are renewed
    /// before they expire.
    #[serde(with = "humantime_serde")]
    pub session_duration: Duration,
    /// EC2 regions to audit. Empty: each account's enabled regions (DescribeRegions).
    pub regions: Vec<String>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            endpoint_url: None,
            max_concurrency: 5,
            max_concurrency_total: 100,
            max_attempts: 5,
            attempt_timeout: Duration::from_secs(30),
            session_duration: Duration::from_secs(3600),
            regions: Vec::new(),
        }
    }
}

/// The `[collectors.*]` sections. Configuration names no collector: each collector module gives
/// a [`SectionSpec`] (its name, defaults and how to read its section), and loading takes the list.
#[derive(Debug, Clone, Default)]
pub struct CollectorsConfig {
    /// Every section as merged from defaults, file and environment, for `show-config`.
    raw: Dict,
    /// Each known section, read and checked by its collector's [`SectionSpec::load`].
    sections: Vec<(&'static str, Section)>,
}

impl Serialize for CollectorsConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CollectorsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self {
            raw: Dict::deserialize(d)?,
            sections: Vec::new(),
        })
    }
}

impl CollectorsConfig {
    /// The section of collector `name`, once loaded; None for a name no collector has.
    pub fn get(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, section)| section)
    }

    /// The collectors with a section, in the order of the list loading was given.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sections.iter().map(|(name, _)| *name)
    }
}

/// What configuration knows of one collector, given by the collector module.
#[derive(Clone, Copy)]
pub struct SectionSpec {
    /// The collector's name: its section is `[collectors.<name>]`.
    pub name: &'static str,
    /// The section with every key at its default.
    pub defaults: fn() -> Value,
    /// Reads the section (the figment focused on it) strictly and checks it.
    pub load: fn(&Figment) -> Result<Section, SectionError>,
}

/// One collector's section, read: the settings every collector has, and the whole section as
/// the collector's own type.
#[derive(Clone)]
pub struct Section {
    pub common: CollectorConfig,
    typed: Arc<dyn Any + Send + Sync>,
}

impl Section {
    pub fn new<T: Any + Send + Sync>(common: CollectorConfig, typed: T) -> Self {
        Self {
            common,
            typed: Arc::new(typed),
        }
    }

    /// The section as the collector's type; None for another type.
    pub fn typed<T: Any>(&self) -> Option<&T> {
        self.typed.downcast_ref()
    }
}

impl std::fmt::Debug for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section")
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

/// Why a section was refused: figment's error (it knows the key and its source), or a check of
/// the collector's, as (key within the section, message).
#[derive(Debug)]
pub enum SectionError {
    Figment(Box<figment::Error>),
    Invalid(String, String),
}

impl From<figment::Error> for SectionError {
    fn from(e: figment::Error) -> Self {
        SectionError::Figment(Box::new(e))
    }
}

/// The [`SectionSpec::defaults`] of a section typed `T`.
pub fn defaults_of<T: Serialize>(section: &T) -> Value {
    Value::serialize(section).unwrap_or_else(|_| Value::from(Dict::new()))
}

/// [`SectionSpec::load`] for a collector with no settings of its own.
pub fn load_common_section(figment: &Figment) -> Result<Section, SectionError> {
    let common: CollectorConfig = figment.extract()?;
    check_common(&common)?;
    Ok(Section::new(common.clone(), common))
}

/// The checks every section gets: interval and timeout from 1s to 30d (an interval of centuries
/// would overflow the scheduler's clock).
pub fn check_common(c: &CollectorConfig) -> Result<(), SectionError> {
    let range = Duration::from_secs(1)..=Duration::from_secs(30 * 86_400);
    for (field, d) in [("interval", c.interval), ("timeout", c.timeout)] {
        if !range.contains(&d) {
            return Err(SectionError::Invalid(
                field.to_owned(),
                "must be between 1s and 30d".into(),
            ));
        }
    }
    Ok(())
}

/// Settings every collector has, and all of a section for collectors without settings of their own.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Run this collector for accounts without their own `collectors` list.
    pub enabled: bool,
    /// Time from the start of one run for an account to the start of the next (plus a little
    /// jitter); a run that takes longer is followed at once.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A run that takes longer is abandoned and counts as failed.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// Thresholds of the checks. Defaults follow the CIS AWS Foundations Benchmark v3.0.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksConfig {
    /// An active access key older than this fails `iam_access_key_age` (CIS 1.14).
    #[serde(with = "humantime_serde")]
    pub access_key_max_age: Duration,
    /// An active access key not used for this long (or never used and older than this) fails
    /// `iam_access_key_unused` (CIS 1.12).
    #[serde(with = "humantime_serde")]
    pub access_key_max_unused: Duration,
    /// The password policy's minimum length must be at least this (CIS 1.8).
    pub password_min_length: u32,
    /// The password policy must prevent reuse of at least this many passwords (CIS 1.9).
    pub password_reuse_prevention: u32,
    /// When set, passwords must expire within this (CIS v1.2 1.11). Unset: not checked.
    #[serde(with = "humantime_serde")]
    pub password_max_age: Option<Duration>,
    /// Character classes the policy must require (CIS v1.2 1.5 to 1.8). Off by default.
    pub password_require_symbols: bool,
    pub password_require_numbers: bool,
    pub password_require_uppercase: bool,
    pub password_require_lowercase: bool,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        let days = |d: u64| Duration::from_secs(d * 86_400);
        Self {
            access_key_max_age: days(90),
            access_key_max_unused: days(45),
            password_min_length: 14,
            password_reuse_prevention: 24,
            password_max_age: None,
            password_require_symbols: false,
            password_require_numbers: false,
            password_require_uppercase: false,
            password_require_lowercase: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The 12-digit AWS account id.
    pub id: String,
    /// Display name, exported in `infraaudit_account_info`.
    #[serde(default)]
    pub name: Option<String>,
    /// Role to assume in the account. Unset: the base credentials are used as they are.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// ExternalId for AssumeRole. Prefer `external_id_env` to keep it out of files.
    #[serde(default)]
    pub external_id: Option<Secret>,
    /// Name of an environment variable that holds the ExternalId.
    #[serde(default)]
    pub external_id_env: Option<String>,
    /// A file that holds the ExternalId (surrounding whitespace is ignored).
    #[serde(default)]
    pub external_id_file: Option<PathBuf>,
    /// The collectors for this account, instead of those enabled in `[collectors.*]`.
    #[serde(default)]
    pub collectors: Option<Vec<String>>,
    /// EC2 regions for this account, instead of `[aws] regions`.
    #[serde(default)]
    pub regions: Option<Vec<String>>,
}

/// A bad configuration: where it came from, which key, and what is wrong, for one line on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {key}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(source_name: &str, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source_name: one_line(source_name),
            key: one_line(&key.into()),
            message: one_line(&message.into()),
        }
    }
}

/// `s` with control characters escaped: parts of an error can come from the file (a quoted key
/// with a newline, the `\r` of a CRLF line quoted by a TOML parse error, a variable's name), and
/// the error must stay one line on stderr.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The validated configuration, with secrets resolved from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub accounts: Vec<Account>,
    /// The API's bearer tokens, from the file and `bearer_tokens_env`.
    pub api_tokens: Vec<Secret>,
    /// `[organizations]` when discovery is on, its ExternalId resolved.
    pub organizations: Option<Organizations>,
}

/// `--shard` and `--total-shards`: they win over `[sharding]` and its variables, and the
/// values are checked once, after all of them are applied.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShardFlags {
    pub shard: Option<u32>,
    pub total_shards: Option<u32>,
}

impl ShardFlags {
    fn apply(self, sharding: &mut ShardingConfig) {
        sharding.shard = self.shard.unwrap_or(sharding.shard);
        sharding.total_shards = self.total_shards.unwrap_or(sharding.total_shards);
    }

    /// An error about a value that came from a flag names the flag.
    fn blame(self, e: ConfigError) -> ConfigError {
        let flag = match e.key.as_str() {
            "sharding.shard" if self.shard.is_some() => "--shard",
            "sharding.total_shards" if self.total_shards.is_some() => "--total-shards",
            _ => return e,
        };
        ConfigError::new("command line", flag, e.message)
    }
}

/// Account discovery in AWS Organizations, ready to use.
#[derive(Debug, Clone)]
pub struct Organizations {
    pub role_name: String,
    pub external_id: Option<Secret>,
    pub role_arn: Option<String>,
    pub include_ous: Vec<String>,
    pub exclude_accounts: Vec<String>,
    pub refresh_interval: Duration,
}

/// A value that must never reach a log: its `Debug` is `<redacted>`, and reading it takes an
/// explicit [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One audited account, ready to use.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub role_arn: Option<String>,
    pub external_id: Option<Secret>,
    /// The collectors that run for this account, by name, in the order of the collector list.
    pub collectors: Vec<&'static str>,
    /// EC2 regions; empty: the account's enabled regions.
    pub regions: Vec<String>,
}

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
    let blame = |e: ConfigError| match origin(&figment, &e.key) {
        Some(var_or_file) => ConfigError::new(&var_or_file, e.key, e.message),
        None => e,
    };
    let mut config: Config = figment
        .extract()
        .map_err(|e| from_figment(&figment, source_name, e))?;
    config.collectors.sections = read_sections(&figment, &config.collectors.raw, sections)
        .map_err(|e| match e {
            SectionError::Figment(e) => from_figment(&figment, source_name, *e),
            SectionError::Invalid(key, message) => {
                blame(ConfigError::new(source_name, key, message))
            }
        })?;
    flags.apply(&mut config.sharding);
    validate(config, source_name, env)
        .map_err(blame)
        .map_err(|e| flags.blame(e))
}

/// Each collector's section, read by its spec; a section no collector has is refused.
fn read_sections(
    figment: &Figment,
    raw: &Dict,
    specs: &[SectionSpec],
) -> Result<Vec<(&'static str, Section)>, SectionError> {
    if let Some(unknown) = raw.keys().find(|k| !specs.iter().any(|s| s.name == *k)) {
        let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
        let message = format!("unknown field; known fields: {}", known.join(", "));
        return Err(SectionError::Invalid(
            format!("collectors.{unknown}"),
            message,
        ));
    }
    specs
        .iter()
        .map(|spec| {
            let path = format!("collectors.{}", spec.name);
            match (spec.load)(&figment.focus(&path)) {
                Ok(section) => Ok((spec.name, section)),
                Err(SectionError::Invalid(key, m)) => {
                    Err(SectionError::Invalid(format!("{path}.{key}"), m))
                }
                Err(SectionError::Figment(mut e)) => {
                    let within = std::mem::take(&mut e.path);
                    e.path = ["collectors".to_owned(), spec.name.to_owned()]
                        .into_iter()
                        .chain(within)
                        .collect();
                    Err(SectionError::Figment(e))
                }
            }
        })
        .collect()
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
    let message = if is_secret_key(&key) {
        secret_message(&err.kind)
    } else {
        message(&err.kind)
    };
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

/// The message for a value under a secret-bearing key: what was expected, never what was found.
fn secret_message(kind: &Kind) -> String {
    match kind {
        Kind::InvalidType(_, expected) => format!("invalid type: expected {expected}"),
        Kind::InvalidValue(_, expected) => format!("invalid value: expected {expected}"),
        Kind::InvalidLength(..)
        | Kind::UnknownField(..)
        | Kind::UnknownVariant(..)
        | Kind::MissingField(_)
        | Kind::DuplicateField(_) => message(kind),
        // Custom messages, out-of-range numbers and anything figment adds may hold the value.
        _ => "invalid value".to_owned(),
    }
}

fn validate(
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

/// The ExternalId from whichever of `external_id`, `external_id_env` and `external_id_file` is
/// set, with the name of that key; Err: (the key at fault, why).
fn external_id_of(
    value: &Option<Secret>,
    var: &Option<String>,
    file: &Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(&'static str, Option<Secret>), (&'static str, String)> {
    match (value, var, file) {
        (Some(v), None, None) => Ok(("external_id", Some(v.clone()))),
        (None, Some(var), None) => match env(var) {
            Some(v) if !v.is_empty() => Ok(("external_id_env", Some(Secret(v)))),
            _ => Err((
                "external_id_env",
                format!("environment variable {var} is not set or empty"),
            )),
        },
        (None, None, Some(path)) => Ok((
            "external_id_file",
            Some(Secret(
                read_secret_file(path).map_err(|m| ("external_id_file", m))?,
            )),
        )),
        (None, None, None) => Ok(("external_id", None)),
        _ => Err((
            "external_id",
            "set only one of external_id, external_id_env and external_id_file".into(),
        )),
    }
}

/// `[organizations]` checked and its ExternalId read; None when discovery is off.
fn organizations(
    o: &OrganizationsConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Organizations>, (String, String)> {
    let key = |field: &str| format!("organizations.{field}");
    if !o.enabled {
        return Ok(None);
    }
    if !is_role_name(&o.role_name) {
        return Err((
            key("role_name"),
            format!(
                "{:?} is not an IAM role name (path/name allowed)",
                o.role_name
            ),
        ));
    }
    let (source_key, external_id) =
        external_id_of(&o.external_id, &o.external_id_env, &o.external_id_file, env)
            .map_err(|(field, m)| (key(field), m))?;
    if external_id
        .as_ref()
        .is_some_and(|id| !is_external_id(id.expose()))
    {
        return Err((
            key(source_key),
            "an ExternalId has 2 to 1224 characters from [A-Za-z0-9_+=,.@:/-]".into(),
        ));
    }
    if let Some(arn) = &o.role_arn
        && parse_role_arn(arn).is_none()
    {
        return Err((
            key("role_arn"),
            format!("{arn:?} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)"),
        ));
    }
    for (i, ou) in o.include_ous.iter().enumerate() {
        if !is_parent_id(ou) {
            return Err((
                key("include_ous"),
                format!("{ou:?} is neither an OU id (ou-xxxx-xxxxxxxx) nor a root id (r-xxxx)"),
            ));
        }
        if o.include_ous[..i].contains(ou) {
            return Err((key("include_ous"), format!("{ou} is listed twice")));
        }
    }
    for (i, id) in o.exclude_accounts.iter().enumerate() {
        if !is_account_id(id) {
            return Err((
                key("exclude_accounts"),
                format!("{id:?} is not a 12-digit AWS account id"),
            ));
        }
        if o.exclude_accounts[..i].contains(id) {
            return Err((key("exclude_accounts"), format!("{id} is listed twice")));
        }
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(30 * 86_400)).contains(&o.refresh_interval) {
        return Err((key("refresh_interval"), "must be between 1s and 30d".into()));
    }
    Ok(Some(Organizations {
        role_name: o.role_name.clone(),
        external_id,
        role_arn: o.role_arn.clone(),
        include_ous: o.include_ous.clone(),
        exclude_accounts: o.exclude_accounts.clone(),
        refresh_interval: o.refresh_interval,
    }))
}

/// At least one shard, and this process's among them.
fn check_sharding(s: &ShardingConfig) -> Result<(), (&'static str, String)> {
    if !(1..=1000).contains(&s.total_shards) {
        return Err(("sharding.total_shards", "must be between 1 and 1000".into()));
    }
    if s.shard >= s.total_shards {
        return Err((
            "sharding.shard",
            format!(
                "must be less than sharding.total_shards ({}): shards count from 0",
                s.total_shards
            ),
        ));
    }
    Ok(())
}

/// An Organizations parent id: a root (`r-` and 4 to 32 characters) or an OU (`ou-`, the root's
/// 4 to 32 characters, `-`, 8 to 32 more), lowercase letters and digits, as AWS's patterns say.
pub fn is_parent_id(s: &str) -> bool {
    let part = |p: &str, min: usize| {
        (min..=32).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if let Some(root) = s.strip_prefix("r-") {
        return part(root, 4);
    }
    s.strip_prefix("ou-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(root, ou)| part(root, 4) && part(ou, 8))
}

/// Largest secret file read: a token list, not a log someone pointed us at by mistake.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret from a file (systemd credentials, Kubernetes secret volumes), trimmed. The error
/// names the file and the reason, never its content.
fn read_secret_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if size > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "{shown} has {size} bytes; a secret file has at most {MAX_SECRET_FILE_BYTES}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(text.to_owned())
}

/// The API's tokens; with the API on, at least one, each long enough to be a secret.
fn api_tokens(
    api: &ApiConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Secret>, (&'static str, String)> {
    // Presented tokens are trimmed; configured ones must match that.
    let mut tokens: Vec<Secret> = api
        .bearer_tokens
        .iter()
        .map(|t| Secret(t.expose().trim().to_owned()))
        .collect();
    if let Some(var) = &api.bearer_tokens_env {
        let value = env(var).filter(|v| !v.trim().is_empty()).ok_or((
            "api.bearer_tokens_env",
            format!("environment variable {var} is not set or empty"),
        ))?;
        tokens.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Secret(t.to_owned())),
        );
    }
    if let Some(path) = &api.bearer_tokens_file {
        let value = read_secret_file(path).map_err(|m| ("api.bearer_tokens_file", m))?;
        tokens.extend(
            value
                .lines()
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.starts_with('#'))
                .map(|t| Secret(t.to_owned())),
        );
    }
    if !api.enabled {
        return Ok(tokens);
    }
    if tokens.is_empty() {
        return Err((
            "api.bearer_tokens",
            "the API is enabled without a token: set bearer_tokens, bearer_tokens_env or bearer_tokens_file".into(),
        ));
    }
    if tokens.iter().any(|t| t.expose().len() < 16) {
        return Err((
            "api.bearer_tokens",
            "tokens must have at least 16 characters".into(),
        ));
    }
    for (key, value, range) in [
        (
            "api.max_concurrent_audits",
            api.max_concurrent_audits,
            1..=100,
        ),
        ("api.audit_history", api.audit_history, 1..=100_000),
        ("api.max_body_bytes", api.max_body_bytes, 256..=1024 * 1024),
    ] {
        if !range.contains(&value) {
            return Err((
                key,
                format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
    }
    Ok(tokens)
}

impl Config {
    /// The collectors switched on in `[collectors.*]`: those of accounts without their own list.
    pub fn enabled_collectors(&self) -> Vec<&'static str> {
        self.collectors
            .sections
            .iter()
            .filter(|(_, section)| section.common.enabled)
            .map(|(name, _)| *name)
            .collect()
    }

    /// The account of the ambient credentials, for the zero-configuration mode.
    pub fn ambient_account(&self, id: String) -> Account {
        Account {
            name: id.clone(),
            id,
            role_arn: None,
            external_id: None,
            collectors: self.enabled_collectors(),
            regions: self.aws.regions.clone(),
        }
    }
}

/// Collector names as known `&'static str`s in canonical order; unknown names and repeats refused.
fn resolve_collectors(
    names: &[String],
    collectors: &CollectorsConfig,
) -> Result<Vec<&'static str>, String> {
    for (i, n) in names.iter().enumerate() {
        if collectors.get(n).is_none() {
            let known: Vec<&str> = collectors.names().collect();
            return Err(format!(
                "unknown collector {n:?} (known: {})",
                known.join(", ")
            ));
        }
        if names[..i].contains(n) {
            return Err(format!("collector {n:?} is listed twice"));
        }
    }
    Ok(collectors
        .names()
        .filter(|known| names.iter().any(|n| n == known))
        .collect())
}

/// Region names as AWS spells them (`eu-west-1`, `us-gov-west-1`), each once.
fn validate_regions(regions: &[String]) -> Result<(), String> {
    for (i, r) in regions.iter().enumerate() {
        let ok = !r.is_empty()
            && r.split('-').count() >= 3
            && r.split('-').all(|p| !p.is_empty())
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(format!("{r:?} is not an AWS region name"));
        }
        if regions[..i].contains(r) {
            return Err(format!("region {r} is listed twice"));
        }
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

/// AWS's rule for an ExternalId: 2 to 1224 characters of [\w+=,.@:/-].
pub fn is_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c))
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The account id of a role ARN, or None when `arn` is not one.
pub fn parse_role_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let partition_ok = matches!(partition, "aws" | "aws-cn" | "aws-us-gov");
    let path_and_name = resource.strip_prefix("role/")?;
    (prefix == "arn"
        && partition_ok
        && service == "iam"
        && region.is_empty()
        && is_account_id(account)
        && is_role_name(path_and_name))
    .then_some(account)
}

/// A role's `path/segments/name` as it follows `:role/` in an ARN (or `organizations.role_name`,
/// or an ad hoc audit's `role_name`): IAM's characters, no empty segment (so no leading, trailing
/// or double `/`), a name of at most 64 characters and a path of at most 512. `.` and `..`
/// segments are refused too: the name is put into ARNs and URLs, where they would walk paths.
pub fn is_role_name(path_and_name: &str) -> bool {
    let (path, name) = path_and_name
        .rsplit_once('/')
        .unwrap_or(("", path_and_name));
    path_and_name
        .split('/')
        .all(|segment| !matches!(segment, "" | "." | ".."))
        && name.len() <= 64
        && path.len() + 2 <= 512
        && path_and_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections() -> Vec<SectionSpec> {
        crate::collector::sections()
    }
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config")
            .join(name)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load_err(name: &str) -> String {
        match load(Some(&fixture(name)), &no_env, &sections()) {
            Ok(_) => panic!("{name} should have been refused"),
            Err(e) => e.to_string(),
        }
    }

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
        let env = |k: &str| {
            (k == "INFRAAUDIT_STAGING_EXTERNAL_ID").then(|| "staging-external-id".to_owned())
        };
        let s = load(Some(&path), &env, &sections()).unwrap();
        assert_eq!(s.accounts.len(), 2);
        assert_eq!(
            s.accounts[1].external_id.as_ref().map(Secret::expose),
            Some("staging-external-id")
        );
    }

    /// A file in a per-process temporary directory.
    fn secret_file(tag: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("infraaudit-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(tag);
        std::fs::write(&path, content).unwrap();
        path
    }

    const ROLE_ACCOUNT: &str = r#"
[[accounts]]
id = "222222222222"
role_arn = "arn:aws:iam::222222222222:role/Audit"
"#;

    #[test]
    fn external_id_from_a_file_is_trimmed() {
        let path = secret_file("external-id", "from-a-file-123\n");
        let text = format!("{ROLE_ACCOUNT}external_id_file = {:?}\n", path);
        let s = load_str(&text, &no_env, &sections()).unwrap();
        assert_eq!(
            s.accounts[0].external_id.as_ref().map(Secret::expose),
            Some("from-a-file-123")
        );
    }

    #[test]
    fn external_id_file_errors_name_the_key_not_the_content() {
        let missing = format!("{ROLE_ACCOUNT}external_id_file = \"/nonexistent/infraaudit-id\"\n");
        let e = load_str(&missing, &no_env, &sections())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("accounts[0].external_id_file") && e.contains("/nonexistent/infraaudit-id"),
            "{e}"
        );

        let path = secret_file("bad-external-id", "not valid because of spaces\n");
        let bad = format!("{ROLE_ACCOUNT}external_id_file = {:?}\n", path);
        let e = load_str(&bad, &no_env, &sections())
            .unwrap_err()
            .to_string();
        assert!(e.contains("accounts[0].external_id_file"), "{e}");
        assert!(!e.contains("spaces"), "the error shows the secret: {e}");

        let empty = secret_file("empty-external-id", " \n");
        let e = load_str(
            &format!("{ROLE_ACCOUNT}external_id_file = {:?}\n", empty),
            &no_env,
            &sections(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is empty"), "{e}");

        let both = format!(
            "{ROLE_ACCOUNT}external_id = \"abc-123\"\nexternal_id_file = {:?}\n",
            path
        );
        let e = load_str(&both, &no_env, &sections())
            .unwrap_err()
            .to_string();
        assert!(e.contains("set only one of"), "{e}");
    }

    #[test]
    fn bearer_tokens_from_a_file_one_per_line() {
        let path = secret_file(
            "tokens",
            "# rotated 2026-11\nfirst-token-0123456789\n\n  second-token-0123456789  \n",
        );
        let text = format!("[api]\nenabled = true\nbearer_tokens_file = {:?}\n", path);
        let s = load_str(&text, &no_env, &sections()).unwrap();
        let tokens: Vec<&str> = s.api_tokens.iter().map(Secret::expose).collect();
        assert_eq!(
            tokens,
            ["first-token-0123456789", "second-token-0123456789"]
        );

        let short = secret_file("short-tokens", "short\n");
        let text = format!("[api]\nenabled = true\nbearer_tokens_file = {:?}\n", short);
        let e = load_str(&text, &no_env, &sections())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("api.bearer_tokens") && !e.contains("short\n"),
            "{e}"
        );
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let id_file = secret_file("debug-external-id", "id-from-file-0123");
        let tokens = secret_file("debug-tokens", "token-from-file-0123456789\n");
        let text = format!(
            "[api]\nenabled = true\nbearer_tokens = [\"token-inline-0123456789\"]\nbearer_tokens_file = {tokens:?}\n\
             {ROLE_ACCOUNT}external_id_file = {id_file:?}\n\
             [[accounts]]\nid = \"333333333333\"\nrole_arn = \"arn:aws:iam::333333333333:role/A\"\nexternal_id = \"id-inline-0123\"\n"
        );
        let s = load_str(&text, &no_env, &sections()).unwrap();
        let shown = format!("{s:?} {:#?}", s.config);
        for secret in [
            "id-from-file-0123",
            "token-from-file-0123456789",
            "token-inline-0123456789",
            "id-inline-0123",
        ] {
            assert!(!shown.contains(secret), "Debug shows {secret}: {shown}");
        }
        assert!(shown.contains("<redacted>"), "{shown}");
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
    fn collectors_regions_and_checks() {
        let s = load(Some(&fixture("ok.toml")), &no_env, &sections()).unwrap();
        let c = &s.config;
        // A partial table keeps the other defaults of that collector.
        assert!(!c.collectors.get("ec2").unwrap().common.enabled);
        assert_eq!(
            c.collectors.get("ec2").unwrap().common.interval,
            Duration::from_secs(300)
        );
        assert_eq!(
            c.collectors.get("ec2").unwrap().common.timeout,
            Duration::from_secs(300)
        );
        assert_eq!(
            c.collectors.get("s3").unwrap().common.interval,
            Duration::from_secs(3600)
        );
        assert_eq!(c.enabled_collectors(), ["iam", "s3"]);
        // The first account follows [collectors.*]; the second has its own list, in our order,
        // which runs ec2 although it is disabled for the others.
        assert_eq!(s.accounts[0].collectors, ["iam", "s3"]);
        assert_eq!(s.accounts[1].collectors, ["iam", "s3", "ec2"]);
        assert!(s.accounts[0].regions.is_empty());
        assert_eq!(s.accounts[1].regions, ["eu-central-1"]);
        assert_eq!(
            c.checks.access_key_max_age,
            Duration::from_secs(60 * 86_400)
        );
        assert_eq!(
            c.checks.access_key_max_unused,
            Duration::from_secs(45 * 86_400)
        );
        assert_eq!(
            c.checks.password_max_age,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(c.checks.password_min_length, 14);
    }

    #[test]
    fn unknown_collector_is_named() {
        let e = load_err("bad_collector_name.toml");
        assert!(
            e.contains("accounts[0].collectors") && e.contains("\"rds\""),
            "{e}"
        );
    }

    #[test]
    fn api_needs_a_token_and_reads_them_from_the_environment() {
        let e = load_err("bad_api_no_token.toml");
        assert!(e.contains("api.bearer_tokens"), "{e}");
        let env = |k: &str| {
            (k == "INFRAAUDIT_TEST_API_TOKENS")
                .then(|| " env-token-a-0123456789 , env-token-b-0123456789,".to_owned())
        };
        let s = load(Some(&fixture("api_env_tokens.toml")), &env, &sections()).unwrap();
        let tokens: Vec<&str> = s.api_tokens.iter().map(Secret::expose).collect();
        assert_eq!(
            tokens,
            [
                "file-token-0123456789",
                "env-token-a-0123456789",
                "env-token-b-0123456789"
            ]
        );
        assert!(
            !format!("{s:?}").contains("env-token-a"),
            "tokens are redacted"
        );
        let e = match load(Some(&fixture("api_env_tokens.toml")), &no_env, &sections()) {
            Ok(_) => panic!("the variable is not set"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("api.bearer_tokens_env"), "{e}");
    }

    #[test]
    fn huge_interval_is_refused() {
        let e = load_err("bad_interval_huge.toml");
        assert!(
            e.contains("collectors.s3.interval") && e.contains("30d"),
            "{e}"
        );
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

    #[test]
    fn unknown_key_is_named() {
        let e = load_err("bad_unknown_key.toml");
        assert!(e.contains("bad_unknown_key.toml"), "{e}");
        assert!(e.contains("server") && e.contains("listen_adress"), "{e}");
    }

    #[test]
    fn malformed_role_arn_is_named() {
        let e = load_err("bad_role_arn.toml");
        assert!(
            e.contains("accounts[0].role_arn") && e.contains("not an IAM role ARN"),
            "{e}"
        );
    }

    #[test]
    fn role_in_other_account_is_refused() {
        let e = load_err("bad_role_account.toml");
        assert!(
            e.contains("accounts[0].role_arn") && e.contains("not in account"),
            "{e}"
        );
    }

    #[test]
    fn bad_duration_is_named() {
        let e = load_err("bad_interval.toml");
        assert!(e.contains("collectors.iam.interval"), "{e}");
    }

    #[test]
    fn access_advisor_is_off_by_default_and_its_keys_are_named() {
        let s = load(None, &no_env, &sections()).unwrap();
        assert!(!s.config.enabled_collectors().contains(&"access_advisor"));
        let aa = s
            .config
            .collectors
            .get("access_advisor")
            .unwrap()
            .typed::<crate::collector::access_advisor::AccessAdvisorConfig>()
            .unwrap();
        assert_eq!(aa.interval, Duration::from_secs(86_400));
        assert_eq!(aa.unused_window, Duration::from_secs(90 * 86_400));

        let on = "[collectors.access_advisor]\nenabled = true\nunused_window = \"30d\"\n";
        let s = load_str(on, &no_env, &sections()).unwrap();
        assert_eq!(
            s.config.enabled_collectors(),
            ["iam", "s3", "ec2", "access_advisor"]
        );
        assert_eq!(
            s.config
                .collectors
                .get("access_advisor")
                .unwrap()
                .typed::<crate::collector::access_advisor::AccessAdvisorConfig>()
                .unwrap()
                .unused_window,
            Duration::from_secs(30 * 86_400)
        );
        let e = load_str(
            "[collectors.access_advisor]\ntimeout = \"5m\"\njob_wait = \"5m\"\n",
            &no_env,
            &sections(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("collectors.access_advisor.job_wait"), "{e}");
        let e = load_str(
            "[collectors.access_advisor]\nunused_window = \"12h\"\n",
            &no_env,
            &sections(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("collectors.access_advisor.unused_window"), "{e}");
        let e = load_str(
            "[collectors.access_advisor]\ninterval = \"31d\"\n",
            &no_env,
            &sections(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("collectors.access_advisor.interval"), "{e}");
    }

    #[test]
    fn bad_account_id_is_named() {
        let e = load_err("bad_account_id.toml");
        assert!(e.contains("accounts[0].id"), "{e}");
    }

    #[test]
    fn missing_external_id_env_is_named() {
        let e = load_err("bad_external_id_env.toml");
        assert!(
            e.contains("accounts[0].external_id_env") && e.contains("INFRAAUDIT_TEST_UNSET"),
            "{e}"
        );
        assert!(!e.contains('\n'));
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
    fn role_arns() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::111111111111:role/InfraAuditRole"),
            Some("111111111111")
        );
        assert_eq!(
            parse_role_arn("arn:aws:iam::111111111111:role/path/to/R"),
            Some("111111111111")
        );
        assert_eq!(parse_role_arn("arn:aws:iam::11111111111:role/R"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::111111111111:user/R"), None);
        assert_eq!(parse_role_arn("arn:aws:sts::111111111111:role/R"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::111111111111:role/"), None);
        assert_eq!(parse_role_arn("InfraAuditRole"), None);
        // Empty path segments and over-long names make no role IAM would accept.
        for bad in [
            "audit/",
            "a//b",
            "/a",
            "../../evil",
            "audit/../evil",
            "./R",
            "audit/.",
            &"r".repeat(65),
            &format!("{}/r", "p".repeat(511)),
        ] {
            let arn = format!("arn:aws:iam::111111111111:role/{bad}");
            assert_eq!(parse_role_arn(&arn), None, "{bad}");
        }
        let longest = format!("{}/{}", "p".repeat(510), "r".repeat(64));
        assert!(parse_role_arn(&format!("arn:aws:iam::111111111111:role/{longest}")).is_some());
        // Dots inside a segment are allowed characters; only `.` and `..` segments are paths.
        assert!(parse_role_arn("arn:aws:iam::111111111111:role/svc.x/..Role.v2..").is_some());
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
    fn organizations_are_off_by_default_and_read_when_on() {
        let s = load(None, &no_env, &sections()).unwrap();
        assert!(s.organizations.is_none());
        assert_eq!(
            (s.config.sharding.shard, s.config.sharding.total_shards),
            (0, 1)
        );

        let text = r#"
[organizations]
enabled = true
role_name = "audit/InfraAuditRole"
external_id_env = "ORG_EXTERNAL_ID"
role_arn = "arn:aws:iam::999999999999:role/OrgReader"
include_ous = ["ou-ab12-cdef3456", "r-ab12"]
exclude_accounts = ["111111111111"]
refresh_interval = "15m"

[sharding]
shard = 2
total_shards = 3
"#;
        let env = |k: &str| (k == "ORG_EXTERNAL_ID").then(|| "org-external-id".to_owned());
        let s = load_str(text, &env, &sections()).unwrap();
        let o = s.organizations.unwrap();
        assert_eq!(o.role_name, "audit/InfraAuditRole");
        assert_eq!(
            o.external_id.as_ref().map(Secret::expose),
            Some("org-external-id")
        );
        assert_eq!(o.include_ous, ["ou-ab12-cdef3456", "r-ab12"]);
        assert_eq!(o.exclude_accounts, ["111111111111"]);
        assert_eq!(o.refresh_interval, Duration::from_secs(900));
        assert_eq!(
            (s.config.sharding.shard, s.config.sharding.total_shards),
            (2, 3)
        );
    }

    #[test]
    fn every_organizations_and_sharding_key_is_named() {
        let org = |body: &str| format!("[organizations]\nenabled = true\n{body}");
        let cases = [
            (org("role_name = \"bad name\"\n"), "organizations.role_name"),
            (org("role_name = \"\"\n"), "organizations.role_name"),
            (
                org("role_name = \"../../evil\"\n"),
                "organizations.role_name",
            ),
            (
                org("external_id = \"has spaces in it\"\n"),
                "organizations.external_id",
            ),
            (
                org("external_id_env = \"INFRAAUDIT_TEST_UNSET_VARIABLE\"\n"),
                "organizations.external_id_env",
            ),
            (
                org("external_id_file = \"/nonexistent/infraaudit-org-id\"\n"),
                "organizations.external_id_file",
            ),
            (
                org("external_id = \"abc-123\"\nexternal_id_env = \"X\"\n"),
                "organizations.external_id",
            ),
            (
                org("role_arn = \"arn:aws:iam::123:role/x\"\n"),
                "organizations.role_arn",
            ),
            (
                org("include_ous = [\"ou-AB12-cdef3456\"]\n"),
                "organizations.include_ous",
            ),
            (
                org("include_ous = [\"r-ab12\", \"r-ab12\"]\n"),
                "organizations.include_ous",
            ),
            (
                org("exclude_accounts = [\"12345\"]\n"),
                "organizations.exclude_accounts",
            ),
            (
                org("refresh_interval = \"0s\"\n"),
                "organizations.refresh_interval",
            ),
            (
                org("refresh_interval = \"often\"\n"),
                "organizations.refresh_interval",
            ),
            (org("unknown = 1\n"), "organizations"),
            (
                "[sharding]\ntotal_shards = 0\n".to_owned(),
                "sharding.total_shards",
            ),
            (
                "[sharding]\nshard = 3\ntotal_shards = 3\n".to_owned(),
                "sharding.shard",
            ),
            ("[sharding]\nshard = -1\n".to_owned(), "sharding.shard"),
        ];
        for (text, key) in cases {
            let e = load_str(&text, &no_env, &sections())
                .err()
                .unwrap_or_else(|| panic!("{text} should have been refused"))
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
            assert!(!e.contains("has spaces"), "the error shows the secret: {e}");
        }
        // Keys of a disabled [organizations] are not checked: it is off.
        assert!(
            load_str(
                "[organizations]\nrole_name = \"bad name\"\n",
                &no_env,
                &sections()
            )
            .is_ok()
        );
    }

    #[test]
    fn command_line_shards_win_and_are_checked() {
        let dir = std::env::temp_dir().join(format!("infraaudit-shards-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.toml");
        // shard 2 of 2 is wrong alone; --total-shards 3 makes it right.
        std::fs::write(&file, "[sharding]\nshard = 2\ntotal_shards = 2\n").unwrap();
        let load = |shard, total_shards| {
            load_with(
                Some(&file),
                &no_env,
                ShardFlags {
                    shard,
                    total_shards,
                },
                &sections(),
            )
        };
        let e = load(None, None).unwrap_err().to_string();
        assert!(e.contains(": sharding.shard: must be less than"), "{e}");
        let s = load(None, Some(3)).unwrap();
        assert_eq!(
            (s.config.sharding.shard, s.config.sharding.total_shards),
            (2, 3)
        );
        let s = load(Some(0), Some(1)).unwrap();
        assert_eq!(
            (s.config.sharding.shard, s.config.sharding.total_shards),
            (0, 1)
        );
        let e = load(Some(3), Some(3)).unwrap_err().to_string();
        assert!(
            e.starts_with("command line: --shard: must be less than"),
            "{e}"
        );
        let e = load(None, Some(0)).unwrap_err().to_string();
        assert!(e.starts_with("command line: --total-shards:"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every secret of the cases below contains this, so one search finds any of them.
    const SHOWN: &str = "SECRET";

    #[test]
    fn type_errors_of_secret_keys_name_the_type_not_the_value() {
        let account = "[[accounts]]\nid = \"222222222222\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n";
        let cases = [
            (
                "[api]\nbearer_tokens = \"SECRET-toml-token\"\n".to_owned(),
                "api.bearer_tokens",
                "expected a sequence",
            ),
            (
                "[api]\nbearer_tokens = [\"SECRET-token-0123456789\", 7]\n".to_owned(),
                "api.bearer_tokens[1]",
                "expected a string",
            ),
            (
                "[organizations]\nenabled = true\nexternal_id = 5318008123\n".to_owned(),
                "organizations.external_id",
                "expected a string",
            ),
            (
                format!("{account}external_id = 5318008123\n"),
                "accounts[0].external_id",
                "expected a string",
            ),
            (
                format!("{account}external_id = [\"SECRET-in-a-list\"]\n"),
                "accounts[0].external_id",
                "expected a string",
            ),
        ];
        for (text, key, expected) in cases {
            let e = load_str(&text, &no_env, &sections()).unwrap_err();
            let line = e.to_string();
            assert_eq!(e.key, key, "{line}");
            assert!(e.message.contains(expected), "{line}");
            assert!(
                !line.contains(SHOWN) && !line.contains("5318008123"),
                "the error shows the secret: {line}"
            );
        }
        // Other keys keep the value: it helps, and it is no secret.
        let e = load_str("[aws]\nmax_concurrency = \"lots\"\n", &no_env, &sections()).unwrap_err();
        assert!(e.message.contains("\"lots\""), "{e}");
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

    #[test]
    fn role_names() {
        for ok in [
            "InfraAuditRole",
            "audit/InfraAuditRole",
            "a/b/c/R",
            "R.v2",
            "..R",
            "R..",
            "+=,.@_-",
            &"r".repeat(64),
        ] {
            assert!(is_role_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../../evil",
            "audit/../R",
            "./R",
            "audit/.",
            "audit/..",
            "/R",
            "R/",
            "a//R",
            "bad name",
            "R?x",
            "R%2F..",
            &"r".repeat(65),
            &format!("{}/R", "p".repeat(511)),
        ] {
            assert!(!is_role_name(bad), "{bad}");
        }
    }

    #[test]
    fn parent_ids() {
        for ok in [
            "r-ab12",
            "ou-ab12-cdef3456",
            "ou-ab12-cdef3456gh",
            "r-0123456789abcdef",
        ] {
            assert!(is_parent_id(ok), "{ok}");
        }
        for bad in [
            "",
            "r-",
            "r-ab1",
            "ou-ab12",
            "ou-ab12-cdef345",
            "OU-ab12-cdef3456",
            "ab12",
        ] {
            assert!(!is_parent_id(bad), "{bad}");
        }
    }
}
