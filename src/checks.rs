//! The checks behind `infraaudit_check_failed_resources`: one rule per check, on snapshot data.
//!
//! Rules are pure functions of one resource, so the summary, the resource metrics and any
//! other consumer agree by construction. Each rule's CIS control is in the README.

use crate::aws::ec2::Instance;
use crate::aws::iam::PasswordPolicy;
use crate::collector::ec2::Ec2Data;
use crate::collector::iam::{AccessKeyRecord, IamData, RootRecord, UserRecord};
use crate::collector::s3::S3Data;
use crate::config::ChecksConfig;
use crate::snapshot::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    IamAccessKeyAge,
    IamAccessKeyUnused,
    IamRootAccessKey,
    IamRootMfa,
    IamUserConsoleMfa,
    IamPasswordPolicy,
    S3PublicAccess,
    S3Encryption,
    Ec2Imdsv2,
    Ec2PublicIp,
}

impl Check {
    pub const ALL: [Check; 10] = [
        Check::IamAccessKeyAge,
        Check::IamAccessKeyUnused,
        Check::IamRootAccessKey,
        Check::IamRootMfa,
        Check::IamUserConsoleMfa,
        Check::IamPasswordPolicy,
        Check::S3PublicAccess,
        Check::S3Encryption,
        Check::Ec2Imdsv2,
        Check::Ec2PublicIp,
    ];

    /// The `check` label value.
    pub fn name(self) -> &'static str {
        match self {
            Check::IamAccessKeyAge => "iam_access_key_age",
            Check::IamAccessKeyUnused => "iam_access_key_unused",
            Check::IamRootAccessKey => "iam_root_access_key",
            Check::IamRootMfa => "iam_root_mfa",
            Check::IamUserConsoleMfa => "iam_user_console_mfa",
            Check::IamPasswordPolicy => "iam_password_policy",
            Check::S3PublicAccess => "s3_public_access",
            Check::S3Encryption => "s3_encryption",
            Check::Ec2Imdsv2 => "ec2_imdsv2",
            Check::Ec2PublicIp => "ec2_public_ip",
        }
    }
}

fn unix(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// An active key older than `access_key_max_age`.
pub fn key_too_old(k: &AccessKeyRecord, now: f64, c: &ChecksConfig) -> bool {
    k.active && now - unix(k.created) > c.access_key_max_age.as_secs_f64()
}

/// An active key not used for `access_key_max_unused`; a key never used counts from its
/// creation (Prowler skips those; a key nobody uses is exactly what should go).
pub fn key_unused(k: &AccessKeyRecord, now: f64, c: &ChecksConfig) -> bool {
    let since = k.last_used.unwrap_or(k.created);
    k.active && now - unix(since) > c.access_key_max_unused.as_secs_f64()
}

pub fn root_has_active_key(r: &RootRecord) -> bool {
    r.active_keys > 0
}

/// No MFA on a root that can sign in. A root with no password and no active key (centrally
/// managed root credentials) passes; `not_supported` counts as possibly having a password.
pub fn root_without_mfa(r: &RootRecord) -> bool {
    !r.mfa_active && (r.password_enabled != Some(false) || r.active_keys > 0)
}

/// A console password without MFA.
pub fn console_user_without_mfa(u: &UserRecord) -> bool {
    u.password_enabled && !u.mfa_active
}

/// What makes the password policy weaker than configured; empty when it passes.
pub fn password_policy_gaps(p: Option<&PasswordPolicy>, c: &ChecksConfig) -> Vec<&'static str> {
    let Some(p) = p else {
        return vec!["no password policy"];
    };
    let mut gaps = Vec::new();
    if p.minimum_length.unwrap_or(0) < c.password_min_length {
        gaps.push("minimum length too short");
    }
    if p.reuse_prevention.unwrap_or(0) < c.password_reuse_prevention {
        gaps.push("reuse prevention too low");
    }
    if let Some(max) = c.password_max_age {
        let max_days = max.as_secs() / 86_400;
        if p.max_age_days.is_none_or(|d| u64::from(d) > max_days) {
            gaps.push("passwords expire too late");
        }
    }
    for (required, present, gap) in [
        (
            c.password_require_symbols,
            p.require_symbols,
            "symbols not required",
        ),
        (
            c.password_require_numbers,
            p.require_numbers,
            "numbers not required",
        ),
        (
            c.password_require_uppercase,
            p.require_uppercase,
            "uppercase not required",
        ),
        (
            c.password_require_lowercase,
            p.require_lowercase,
            "lowercase not required",
        ),
    ] {
        if required && !present {
            gaps.push(gap);
        }
    }
    gaps
}

pub fn instance_allows_imdsv1(i: &Instance) -> bool {
    !i.imdsv2_required
}

pub fn instance_has_public_ip(i: &Instance) -> bool {
    i.public_ip
}

/// How many resources of one account fail `check`; None when the data to decide is missing
/// (collector off or never successful, no root row): unknown is not zero.
pub fn failed_resources(
    check: Check,
    iam: Option<&IamData>,
    s3: Option<&S3Data>,
    ec2: Option<&Ec2Data>,
    now: f64,
    c: &ChecksConfig,
) -> Option<usize> {
    let keys = |f: fn(&AccessKeyRecord, f64, &ChecksConfig) -> bool| {
        iam.map(|d| d.keys.iter().filter(|k| f(k, now, c)).count())
    };
    let root = |f: fn(&RootRecord) -> bool| iam?.root.as_ref().map(|r| usize::from(f(r)));
    let instances = |f: fn(&Instance) -> bool| {
        ec2.map(|d| {
            d.regions
                .iter()
                .flat_map(|r| r.instances.iter())
                .filter(|i| f(i))
                .count()
        })
    };
    match check {
        Check::IamAccessKeyAge => keys(key_too_old),
        Check::IamAccessKeyUnused => keys(key_unused),
        Check::IamRootAccessKey => root(root_has_active_key),
        Check::IamRootMfa => root(root_without_mfa),
        Check::IamUserConsoleMfa => iam.map(|d| {
            d.users
                .iter()
                .filter(|u| console_user_without_mfa(u))
                .count()
        }),
        Check::IamPasswordPolicy => iam
            .map(|d| usize::from(!password_policy_gaps(d.password_policy.as_ref(), c).is_empty())),
        Check::S3PublicAccess => s3.map(|d| {
            let account = &d.account_public_access_block;
            d.buckets
                .iter()
                .filter(|b| b.public(account) == Some(true))
                .count()
        }),
        Check::S3Encryption => s3.map(|d| {
            d.buckets
                .iter()
                .filter(|b| b.encrypted() == Some(false))
                .count()
        }),
        Check::Ec2Imdsv2 => instances(instance_allows_imdsv1),
        Check::Ec2PublicIp => instances(instance_has_public_ip),
    }
}

/// (account id, check, failed resources) for every account and check whose data is known.
pub fn summary<'a>(
    snapshot: &'a Snapshot,
    now: f64,
    c: &'a ChecksConfig,
) -> impl Iterator<Item = (&'a str, Check, usize)> + 'a {
    snapshot.accounts.iter().flat_map(move |a| {
        let data = |collector: &'static str| {
            snapshot
                .entries
                .get(&(a.id.clone(), collector))
                .and_then(|e| e.data.as_deref())
        };
        let iam = data(crate::collector::iam::NAME).and_then(|d| d.as_iam());
        let s3 = data(crate::collector::s3::NAME).and_then(|d| d.as_s3());
        let ec2 = data(crate::collector::ec2::NAME).and_then(|d| d.as_ec2());
        Check::ALL.into_iter().filter_map(move |check| {
            failed_resources(check, iam, s3, ec2, now, c).map(|n| (a.id.as_str(), check, n))
        })
    })
}
