//! Collectors: each turns one account's AWS state into data for the snapshot.
//!
//! A collector is one module that owns all of it: its name, its `[collectors.<name>]` section,
//! the IAM actions it calls, its data, its run, its metric families and their encoding, and the
//! checks that read its data. [`ALL`] lists them; nothing else names a collector (the recipe is
//! in CONTRIBUTING.md).

pub mod access_advisor;
pub mod ebs;
pub mod ec2;
pub mod iam;
pub mod iam_authz;
pub mod regions;
pub mod s3;
pub mod vpc;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::aws::AccountSession;
use crate::config::{ChecksConfig, CollectorConfig, Config, Section, SectionSpec};
use crate::error::Error;
use crate::expo::{Family, Fragments, Recorder};

/// Every collector, in the order of their families in `/metrics` and of their checks.
pub static ALL: [&Spec; 7] = [
    &iam::SPEC,
    &iam_authz::SPEC,
    &s3::SPEC,
    &ec2::SPEC,
    &ebs::SPEC,
    &vpc::SPEC,
    &access_advisor::SPEC,
];

/// Adds the IAM users' owners a run's data knows to the map (user -> owner).
pub type UserOwners = fn(&Data, &mut std::collections::HashMap<String, String>);

/// What one successful run produced; each collector downcasts its own.
pub type Data = dyn Any + Send + Sync;

/// One collector, described.
pub struct Spec {
    /// The `collector` label value and the name of its `[collectors.<name>]` section.
    pub name: &'static str,
    /// Its section with every key at its default.
    pub defaults: fn() -> figment::value::Value,
    /// Reads its section strictly and checks it (see [`SectionSpec::load`]).
    pub load: fn(&figment::Figment) -> Result<Section, crate::config::SectionError>,
    /// The IAM actions it calls, for the documented policy.
    pub permissions: &'static [&'static str],
    /// Its collector for one account.
    pub build: fn(&Arc<AccountSession>, &Section) -> Arc<dyn Collector>,
    /// The families encoded when a run's data is recorded; help texts may hold `{every}`.
    pub families: &'static [Family<'static>],
    pub encode: fn(account: &str, &Data, &mut Recorder<'_>),
    /// Families that move with the clock rather than the data, encoded at every scrape.
    pub live_families: &'static [Family<'static>],
    pub encode_live: fn(account: &str, &Data, now: f64, &mut Recorder<'_>),
    /// The checks that read its data, in the order they are exported.
    pub checks: &'static [CheckSpec],
    /// Every resource's verdict on each of its checks.
    pub findings: fn(account: &str, &Data, now: f64, &ChecksConfig, &mut Vec<Finding>),
    /// The owners of IAM users its data knows (user -> owner), for other collectors' findings
    /// on users; a one-shot audit that resolves owners runs it too.
    pub user_owners: Option<UserOwners>,
}

impl Spec {
    pub fn section(&self) -> SectionSpec {
        SectionSpec {
            name: self.name,
            defaults: self.defaults,
            load: self.load,
        }
    }

    /// Its settings: from the loaded configuration, else its defaults.
    pub fn settings(&self, config: &Config) -> Section {
        if let Some(section) = config.collectors.get(self.name) {
            return section.clone();
        }
        let figment =
            figment::Figment::from(figment::providers::Serialized::defaults((self.defaults)()));
        (self.load)(&figment).unwrap_or_else(|_| {
            // Defaults that fail their own checks are a bug the tests catch; never at run time.
            Section::new(
                CollectorConfig {
                    enabled: false,
                    interval: Duration::from_secs(3600),
                    timeout: Duration::from_secs(600),
                },
                (),
            )
        })
    }

    /// A run's data with its series encoded, as the snapshot keeps it.
    pub fn record(&self, account: &str, data: Arc<Data>) -> Recorded {
        let mut recorder = Recorder::new(self.families);
        (self.encode)(account, data.as_ref(), &mut recorder);
        Recorded {
            data,
            fragments: recorder.finish(),
        }
    }
}

/// A collector by name.
pub fn find(name: &str) -> Option<&'static Spec> {
    ALL.into_iter().find(|spec| spec.name == name)
}

/// Every collector's section, for loading the configuration.
pub fn sections() -> Vec<SectionSpec> {
    ALL.iter().map(|spec| spec.section()).collect()
}

/// A run's data and its series, encoded once when recorded.
pub struct Recorded {
    pub data: Arc<Data>,
    pub fragments: Fragments,
}

impl std::fmt::Debug for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorded")
            .field("fragment_bytes", &self.fragments.heap_bytes())
            .finish_non_exhaustive()
    }
}

pub trait Collector: Send + Sync {
    /// The `collector` label value.
    fn name(&self) -> &'static str;
    fn collect(&self) -> BoxFuture<'_, Result<Arc<Data>, Error>>;
}

/// When a collector runs: its configuration, not its business.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// From the start of one run to the start of the next (the scheduler adds a little jitter).
    pub interval: Duration,
    /// A run still going after this long is abandoned and counts as failed.
    pub timeout: Duration,
}

/// The collectors the account's configuration asks for, each with its schedule.
pub fn for_account(
    config: &Config,
    session: &Arc<AccountSession>,
) -> Vec<(Arc<dyn Collector>, Schedule)> {
    session
        .account
        .collectors
        .iter()
        .filter_map(|name| {
            let spec = find(name)?;
            let section = spec.settings(config);
            let schedule = Schedule {
                interval: section.common.interval,
                timeout: section.common.timeout,
            };
            Some(((spec.build)(session, &section), schedule))
        })
        .collect()
}

/// The IAM actions one collector calls.
pub fn permissions_of(name: &str) -> &'static [&'static str] {
    find(name).map_or(&[], |spec| spec.permissions)
}

/// Every IAM action the named collectors call, sorted, each once.
pub fn permissions<'a>(collectors: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = collectors
        .into_iter()
        .flat_map(permissions_of)
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// The identity policy the audit role needs for these actions, as docs/aws-setup.md shows it.
pub fn policy_json(actions: &[&str]) -> String {
    let list = actions
        .iter()
        .map(|a| format!("        \"{a}\""))
        .collect::<Vec<_>>()
        .join(",\n");
    format!(
        "{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {{\n      \"Sid\": \"InfraAuditReadOnly\",\n      \"Effect\": \"Allow\",\n      \"Action\": [\n{list}\n      ],\n      \"Resource\": \"*\"\n    }}\n  ]\n}}\n"
    )
}

/// One check, declared by the collector whose data it reads.
pub struct CheckSpec {
    /// The `check` label value.
    pub name: &'static str,
    pub collector: &'static str,
    /// What passing means, in a few words, for the scorecard (`infraaudit_check_info`).
    pub title: &'static str,
    pub severity: Severity,
    /// The CIS AWS Foundations Benchmark v3.0 control(s), comma-separated; empty for a check
    /// that is not a CIS control.
    pub cis: &'static str,
    /// What a failure means, for people (the HTML overview).
    pub describe: fn(&ChecksConfig) -> String,
    /// How many resources of one account's data fail; None when the data cannot decide (no
    /// root row, a denied call): unknown is not zero.
    pub failed: fn(&Data, now: f64, &ChecksConfig) -> Option<usize>,
}

/// How bad a failure is, as Prowler and Security Hub grade findings.
/// Ordered worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// A check, by its spec; compares and prints by name.
#[derive(Clone, Copy)]
pub struct Check(pub &'static CheckSpec);

impl Check {
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The collector whose data the check reads.
    pub fn collector(self) -> &'static str {
        self.0.collector
    }

    pub fn describe(self, c: &ChecksConfig) -> String {
        (self.0.describe)(c)
    }

    pub fn title(self) -> &'static str {
        self.0.title
    }

    pub fn severity(self) -> Severity {
        self.0.severity
    }

    pub fn cis(self) -> &'static str {
        self.0.cis
    }

    /// Every check, collector by collector.
    pub fn all() -> impl Iterator<Item = Check> {
        ALL.into_iter()
            .flat_map(|spec| spec.checks.iter().map(Check))
    }

    pub fn from_name(name: &str) -> Option<Check> {
        Check::all().find(|c| c.name() == name)
    }
}

impl PartialEq for Check {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Check {}

impl Check {
    /// Position in [`Check::all`]: checks sort in their exported order.
    fn rank(self) -> usize {
        Check::all().position(|c| c == self).unwrap_or(usize::MAX)
    }
}

impl PartialOrd for Check {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Check {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One resource's verdict on one check, for people and scripts (API, CLI, HTML overview).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    pub account_id: String,
    pub check: Check,
    /// `user/AKIA...`, `root`, a user, `account`, a bucket, a region, `region/instance-id`,
    /// `region/acl-...` or `region/sg-...`.
    pub resource: String,
    pub failed: bool,
    pub details: String,
    /// Who fixes it; [`crate::checks::findings`] leaves every one resolved ([`Owner::Own`]).
    pub owner: Owner,
}

/// Whose a finding is, as its collector knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The resource's owner, from its own tags; empty: it has none (the account's applies).
    Own(String),
    /// An IAM user's, whose tags another collector (`iam_authz`) reads.
    User(String),
    /// The account's: account-wide resources (root, password policy, a region's settings).
    Account,
}

/// The resolved owner, `null` when none.
impl serde::Serialize for Owner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            "" => s.serialize_none(),
            owner => s.serialize_str(owner),
        }
    }
}

impl Owner {
    /// The owner once resolved; empty when none, or not resolved yet.
    pub fn as_str(&self) -> &str {
        match self {
            Owner::Own(owner) => owner,
            Owner::User(_) | Owner::Account => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sections_and_checks_are_each_once() {
        let mut names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        let mut checks: Vec<&str> = Check::all().map(Check::name).collect();
        let n = checks.len();
        checks.sort_unstable();
        checks.dedup();
        assert_eq!(checks.len(), n);
        for spec in ALL {
            for check in spec.checks {
                assert_eq!(check.collector, spec.name, "{}", check.name);
            }
            // Every default section passes its own checks.
            let figment =
                figment::Figment::from(figment::providers::Serialized::defaults((spec.defaults)()));
            assert!((spec.load)(&figment).is_ok(), "{}", spec.name);
            // Help texts end as sentences; a placeholder is spelt in full or not at all.
            for family in spec.families.iter().chain(spec.live_families) {
                assert!(family.help.ends_with('.'), "{}", family.name);
                assert_eq!(
                    family.help.contains("{every"),
                    family.help.contains("{every}"),
                    "{}",
                    family.name
                );
            }
        }
    }
}
