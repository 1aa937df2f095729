//! Collectors: each turns one account's AWS state into data for the snapshot.
//!
//! Adding one: a file here, a variant of [`CollectorData`], its name in [`NAMES`], and a line
//! in [`for_account`] and in [`permissions_of`].

pub mod access_advisor;
pub mod credential_report;
pub mod ec2;
pub mod iam;
pub mod key_match;
pub mod s3;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::aws::AccountSession;
use crate::config::Config;
use crate::error::Error;

/// Every collector, by the name used in configuration and in the `collector` label.
pub const NAMES: [&str; 4] = [iam::NAME, s3::NAME, ec2::NAME, access_advisor::NAME];

/// What one successful run produced.
#[derive(Debug)]
pub enum CollectorData {
    Iam(iam::IamData),
    S3(s3::S3Data),
    Ec2(ec2::Ec2Data),
    AccessAdvisor(access_advisor::AccessAdvisorData),
}

impl CollectorData {
    pub fn as_iam(&self) -> Option<&iam::IamData> {
        match self {
            CollectorData::Iam(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_s3(&self) -> Option<&s3::S3Data> {
        match self {
            CollectorData::S3(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_ec2(&self) -> Option<&ec2::Ec2Data> {
        match self {
            CollectorData::Ec2(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_access_advisor(&self) -> Option<&access_advisor::AccessAdvisorData> {
        match self {
            CollectorData::AccessAdvisor(d) => Some(d),
            _ => None,
        }
    }
}

pub trait Collector: Send + Sync {
    /// The `collector` label value.
    fn name(&self) -> &'static str;
    fn collect(&self) -> BoxFuture<'_, Result<CollectorData, Error>>;
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
    let c = &config.collectors;
    session
        .account
        .collectors
        .iter()
        .filter_map(|name| {
            let collector: Arc<dyn Collector> = match *name {
                iam::NAME => Arc::new(iam::IamCollector::new(session, &c.iam)),
                s3::NAME => Arc::new(s3::S3Collector::new(session)),
                ec2::NAME => Arc::new(ec2::Ec2Collector::new(session)),
                access_advisor::NAME => Arc::new(access_advisor::AccessAdvisorCollector::new(
                    session,
                    &c.access_advisor,
                )),
                _ => return None,
            };
            let settings = c.get(name)?;
            let schedule = Schedule {
                interval: settings.interval,
                timeout: settings.timeout,
            };
            Some((collector, schedule))
        })
        .collect()
}

/// The IAM actions one collector calls.
pub fn permissions_of(name: &str) -> &'static [&'static str] {
    match name {
        iam::NAME => iam::PERMISSIONS,
        s3::NAME => s3::PERMISSIONS,
        ec2::NAME => ec2::PERMISSIONS,
        access_advisor::NAME => access_advisor::PERMISSIONS,
        _ => &[],
    }
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
