//! The `[collectors.*]` sections. Configuration names no collector: each collector module gives
//! a [`SectionSpec`] (its name, defaults and how to read its section), and loading takes the list.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::value::{Dict, Value};
use serde::{Deserialize, Serialize};

use super::Invalid;
use super::range::{INTERVALS, in_range};

/// The `[collectors.*]` sections. Configuration names no collector: each collector module gives
/// a [`SectionSpec`] (its name, defaults and how to read its section), and loading takes the list.
#[derive(Debug, Clone, Default)]
pub struct CollectorsConfig {
    /// Every section as merged from defaults, file and environment, for `show-config`.
    pub(super) raw: Dict,
    /// Each known section, read and checked by its collector's [`SectionSpec::load`].
    pub(super) sections: Vec<(&'static str, Section)>,
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

impl From<Invalid> for SectionError {
    fn from(e: Invalid) -> Self {
        SectionError::Invalid(e.key, e.message)
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

/// The checks every section gets: interval and timeout from 1s to 30d (`range::INTERVALS`).
pub fn check_common(c: &CollectorConfig) -> Result<(), SectionError> {
    in_range("interval", c.interval, INTERVALS)?;
    in_range("timeout", c.timeout, INTERVALS)?;
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

/// Each collector's section, read by its spec; a section no collector has is refused.
pub(super) fn read_sections(
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::testing::*;
    use crate::config::{load, load_str};

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
        assert_eq!(
            c.enabled_collectors(),
            ["iam", "iam_authz", "s3", "ebs", "vpc"]
        );
        // The first account follows [collectors.*]; the second has its own list, in our order,
        // which runs ec2 although it is disabled for the others.
        assert_eq!(
            s.accounts[0].collectors,
            ["iam", "iam_authz", "s3", "ebs", "vpc"]
        );
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
    fn huge_interval_is_refused() {
        let e = load_err("bad_interval_huge.toml");
        assert!(
            e.contains("collectors.s3.interval") && e.contains("30d"),
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
            [
                "iam",
                "iam_authz",
                "s3",
                "ec2",
                "ebs",
                "vpc",
                "access_advisor"
            ]
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
}
