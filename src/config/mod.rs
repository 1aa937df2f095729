//! Configuration: built-in defaults, then a TOML file, then `INFRAAUDIT_*` environment variables.
//!
//! Everything is validated here, before the runtime starts, so that a typo is an exit code 64 with
//! one line naming the key, never a daemon that runs with half a configuration.
//!
//! This file holds the types. `load.rs` reads the sources (figment), `validate.rs` checks them
//! and resolves [`Settings`], with `accounts.rs` (accounts, Organizations, sharding), `secrets.rs`
//! (what must never be shown, and where secrets are read from), `sections.rs` (the
//! `[collectors.*]` sections, which the collectors define) and `range.rs` (the range check).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod accounts;
mod load;
mod range;
mod secrets;
mod sections;
mod validate;

pub use crate::owners::{LabelsConfig, OwnersConfig};
pub use accounts::{is_account_id, is_external_id, is_parent_id, is_role_name, parse_role_arn};
pub use load::{ENV_PREFIX, load, load_str, load_with};
pub use secrets::{SECRET_KEYS, Secret, is_secret_key};
pub use sections::{
    CollectorConfig, CollectorsConfig, Section, SectionError, SectionSpec, check_common,
    defaults_of, load_common_section,
};

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
    /// The tags that name each resource's owner, for routing its findings.
    pub owners: OwnersConfig,
    /// Further tags exported as labels of the resources' info series.
    pub labels: LabelsConfig,
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
    /// A root user that signed in or used an access key within this fails `iam_root_recent_use`
    /// (CIS 1.7).
    #[serde(with = "humantime_serde")]
    pub root_max_recent_use: Duration,
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
            root_max_recent_use: days(30),
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
    /// Owner of the account's resources that have no owner tag of their own (and the owner of
    /// account-wide findings). Wins over the account's Organizations tags.
    #[serde(default)]
    pub owner: Option<String>,
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

/// A value that a check refused: its key (`aws.max_concurrency`, `accounts[0].id`) and why.
/// Loading makes it a [`ConfigError`] naming the file or variable that set the value.
#[derive(Debug)]
struct Invalid {
    key: String,
    message: String,
}

impl Invalid {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
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
    /// Owner of findings without an owner of their own; empty when none.
    pub owner: String,
    /// How owners and tag labels are read from tags; one for the whole process.
    pub tagging: std::sync::Arc<crate::owners::Tagging>,
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

    /// How owners and tag labels are read, by `[owners]`, `[labels]` and the accounts' owners.
    pub fn tagging(&self) -> crate::owners::Tagging {
        crate::owners::Tagging::new(
            &self.owners,
            &self.labels,
            self.accounts.iter().any(|a| a.owner.is_some()),
        )
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
            owner: String::new(),
            tagging: std::sync::Arc::new(self.tagging()),
        }
    }
}

/// What the tests of every file of the module share.
#[cfg(test)]
mod testing {
    use std::path::{Path, PathBuf};

    use super::*;

    /// The collectors' sections, called by full path in test code only: configuration imports
    /// no collector.
    pub fn sections() -> Vec<SectionSpec> {
        crate::collector::sections()
    }

    pub fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config")
            .join(name)
    }

    pub fn no_env(_: &str) -> Option<String> {
        None
    }

    pub fn load_err(name: &str) -> String {
        match load(Some(&fixture(name)), &no_env, &sections()) {
            Ok(_) => panic!("{name} should have been refused"),
            Err(e) => e.to_string(),
        }
    }

    /// Every secret in the tests' cases contains this, so one search finds any of them.
    pub const SHOWN: &str = "SECRET";
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

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
}
