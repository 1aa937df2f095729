//! The checks behind `infraaudit_check_failed_resources`: one rule per check, on snapshot data.
//!
//! Rules are pure functions of one resource, so the summary, the resource metrics and any
//! other consumer agree by construction. Each rule's CIS control is in docs/metrics.md (Checks).

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

/// Unix time in seconds, with milliseconds.
pub fn unix(t: chrono::DateTime<chrono::Utc>) -> f64 {
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
            .filter(|d| !d.password_policy_denied)
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
        let (iam, s3, ec2) = account_data(snapshot, &a.id);
        Check::ALL.into_iter().filter_map(move |check| {
            failed_resources(check, iam, s3, ec2, now, c).map(|n| (a.id.as_str(), check, n))
        })
    })
}

/// One resource's verdict on one check, for people and scripts (API, CLI, HTML overview).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    pub account_id: String,
    #[serde(serialize_with = "check_name")]
    pub check: Check,
    /// `user/AKIA...`, `root`, a user, `account`, a bucket, or `region/instance-id`.
    pub resource: String,
    pub failed: bool,
    pub details: String,
}

fn check_name<S: serde::Serializer>(c: &Check, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.name())
}

impl Check {
    /// The collector whose data the check reads.
    pub fn collector(self) -> &'static str {
        use crate::collector::{ec2, iam, s3};
        match self {
            Check::S3PublicAccess | Check::S3Encryption => s3::NAME,
            Check::Ec2Imdsv2 | Check::Ec2PublicIp => ec2::NAME,
            _ => iam::NAME,
        }
    }

    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Whole days in `seconds`, as people count an age.
pub fn whole_days(seconds: f64) -> i64 {
    (seconds / 86_400.0).floor() as i64
}

/// Every resource of one account on every check whose data is known, by the same rules as
/// [`failed_resources`], so the failed findings of a check always number its summary.
pub fn findings(
    account_id: &str,
    iam: Option<&IamData>,
    s3: Option<&S3Data>,
    ec2: Option<&Ec2Data>,
    now: f64,
    c: &ChecksConfig,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |check, resource: String, failed, details: String| {
        out.push(Finding {
            account_id: account_id.to_owned(),
            check,
            resource,
            failed,
            details,
        });
    };
    if let Some(d) = iam {
        for k in &d.keys {
            let resource = format!("{}/{}", k.user, k.access_key_id);
            let state = if k.active { "active" } else { "inactive" };
            let age = whole_days(now - unix(k.created));
            add(
                Check::IamAccessKeyAge,
                resource.clone(),
                key_too_old(k, now, c),
                format!("{state}, created {age} days ago"),
            );
            let used = match k.last_used {
                Some(t) => format!("last used {} days ago", whole_days(now - unix(t))),
                None => "never used".to_owned(),
            };
            add(
                Check::IamAccessKeyUnused,
                resource,
                key_unused(k, now, c),
                format!("{state}, {used}, created {age} days ago"),
            );
        }
        if let Some(r) = &d.root {
            add(
                Check::IamRootAccessKey,
                "root".into(),
                root_has_active_key(r),
                format!("{} active access key(s)", r.active_keys),
            );
            let password = match r.password_enabled {
                Some(true) => "a password",
                Some(false) => "no password",
                None => "possibly a password",
            };
            add(
                Check::IamRootMfa,
                "root".into(),
                root_without_mfa(r),
                format!(
                    "MFA {}, {password}, {} active key(s)",
                    if r.mfa_active { "on" } else { "off" },
                    r.active_keys
                ),
            );
        }
        for u in &d.users {
            add(
                Check::IamUserConsoleMfa,
                u.user.clone(),
                console_user_without_mfa(u),
                format!(
                    "console password {}, MFA {}",
                    if u.password_enabled { "yes" } else { "no" },
                    if u.mfa_active { "on" } else { "off" }
                ),
            );
        }
        if !d.password_policy_denied {
            let gaps = password_policy_gaps(d.password_policy.as_ref(), c);
            let details = if gaps.is_empty() {
                "meets the configured minimums".to_owned()
            } else {
                gaps.join(", ")
            };
            add(
                Check::IamPasswordPolicy,
                "account".into(),
                !gaps.is_empty(),
                details,
            );
        }
    }
    if let Some(d) = s3 {
        for b in &d.buckets {
            if let Some(public) = b.public(&d.account_public_access_block) {
                let how = match (b.policy_public, b.acl_public) {
                    _ if !public => "not public".to_owned(),
                    (Some(true), Some(true)) => "public by policy and ACL".to_owned(),
                    (Some(true), _) => "public by policy".to_owned(),
                    _ => "public by ACL".to_owned(),
                };
                add(
                    Check::S3PublicAccess,
                    b.name.clone(),
                    public,
                    format!("{how} ({})", b.region),
                );
            }
            if let Some(encrypted) = b.encrypted() {
                let details = match &b.encryption {
                    Some(crate::aws::s3::Encryption::Algorithm(a)) => {
                        format!("default encryption {a}")
                    }
                    _ => "no default encryption".to_owned(),
                };
                add(Check::S3Encryption, b.name.clone(), !encrypted, details);
            }
        }
    }
    if let Some(d) = ec2 {
        for r in &d.regions {
            for i in r.instances.iter() {
                let resource = format!("{}/{}", r.region, i.instance_id);
                let name = if i.name.is_empty() {
                    String::new()
                } else {
                    format!(" {:?},", i.name)
                };
                add(
                    Check::Ec2Imdsv2,
                    resource.clone(),
                    instance_allows_imdsv1(i),
                    format!(
                        "{name} {}, IMDSv2 {}",
                        i.state,
                        if i.imdsv2_required {
                            "required"
                        } else {
                            "optional"
                        }
                    )
                    .trim_start()
                    .to_owned(),
                );
                add(
                    Check::Ec2PublicIp,
                    resource,
                    instance_has_public_ip(i),
                    format!(
                        "{name} {}, {}",
                        i.state,
                        if i.public_ip {
                            "public IPv4"
                        } else {
                            "no public IPv4"
                        }
                    )
                    .trim_start()
                    .to_owned(),
                );
            }
        }
    }
    out
}

/// The data of one account's collectors in a snapshot.
pub fn account_data<'a>(
    snapshot: &'a Snapshot,
    account_id: &str,
) -> (Option<&'a IamData>, Option<&'a S3Data>, Option<&'a Ec2Data>) {
    let data = |collector: &'static str| {
        snapshot
            .entries
            .get(&(account_id.to_owned(), collector))
            .and_then(|e| e.data.as_deref())
    };
    (
        data(crate::collector::iam::NAME).and_then(|d| d.as_iam()),
        data(crate::collector::s3::NAME).and_then(|d| d.as_s3()),
        data(crate::collector::ec2::NAME).and_then(|d| d.as_ec2()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::CollectorData;
    use crate::snapshot::{AccountInfo, Outcome, SnapshotStore};
    use chrono::{DateTime, TimeDelta, Utc};

    /// The fixed "now" of every test.
    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn days_ago(d: i64) -> DateTime<Utc> {
        now() - TimeDelta::days(d)
    }

    fn key(active: bool, created_days_ago: i64, used_days_ago: Option<i64>) -> AccessKeyRecord {
        AccessKeyRecord {
            user: "u".into(),
            access_key_id: "AKIA".into(),
            slot: 1,
            created: days_ago(created_days_ago),
            active,
            last_used: used_days_ago.map(days_ago),
        }
    }

    fn too_old(k: &AccessKeyRecord) -> bool {
        key_too_old(k, unix(now()), &ChecksConfig::default())
    }

    fn unused(k: &AccessKeyRecord) -> bool {
        key_unused(k, unix(now()), &ChecksConfig::default())
    }

    fn root(mfa_active: bool, password_enabled: Option<bool>, active_keys: u8) -> RootRecord {
        RootRecord {
            mfa_active,
            password_enabled,
            active_keys,
            last_used: None,
        }
    }

    fn user(name: &str, password_enabled: bool, mfa_active: bool) -> UserRecord {
        UserRecord {
            user: name.into(),
            created: None,
            password_enabled,
            mfa_active,
            password_last_used: None,
        }
    }

    #[test]
    fn default_thresholds_are_cis() {
        let c = ChecksConfig::default();
        assert_eq!(c.access_key_max_age.as_secs(), 90 * 86_400);
        assert_eq!(c.access_key_max_unused.as_secs(), 45 * 86_400);
        assert_eq!(
            (c.password_min_length, c.password_reuse_prevention),
            (14, 24)
        );
    }

    #[test]
    fn key_age_fails_past_90_days_for_active_keys_only() {
        assert!(!too_old(&key(true, 89, Some(1))));
        assert!(too_old(&key(true, 91, Some(1))));
        assert!(!too_old(&key(false, 200, None)), "an inactive key passes");
    }

    #[test]
    fn thresholds_are_exclusive() {
        // "Older than 90 days": exactly 90 (or 45 unused) still passes.
        let c = ChecksConfig::default();
        let now = unix(now());
        let exactly = |days: i64| AccessKeyRecord {
            created: chrono::DateTime::from_timestamp_millis(
                ((now - days as f64 * 86_400.0) * 1000.0) as i64,
            )
            .unwrap(),
            ..key(true, 0, None)
        };
        assert!(!key_too_old(&exactly(90), now, &c));
        assert!(key_too_old(&exactly(90), now + 1.0, &c));
        assert!(!key_unused(&exactly(45), now, &c));
        assert!(key_unused(&exactly(45), now + 1.0, &c));
    }

    #[test]
    fn key_unused_counts_from_creation_when_never_used() {
        assert!(unused(&key(true, 46, None)));
        assert!(!unused(&key(true, 10, None)));
        // Recent use is what counts, not the key's age.
        assert!(!unused(&key(true, 300, Some(2))));
        assert!(unused(&key(true, 300, Some(46))));
        assert!(!unused(&key(false, 300, None)), "an inactive key passes");
    }

    #[test]
    fn root_mfa_is_required_only_when_root_can_sign_in() {
        // Centrally managed root: no password, no key.
        assert!(!root_without_mfa(&root(false, Some(false), 0)));
        // not_supported, as AWS's reports say, may hide a password.
        assert!(root_without_mfa(&root(false, None, 0)));
        assert!(!root_without_mfa(&root(true, None, 0)));
        assert!(root_without_mfa(&root(false, Some(false), 1)));
        assert!(!root_without_mfa(&root(true, Some(false), 2)));
    }

    #[test]
    fn root_access_key() {
        assert!(!root_has_active_key(&root(true, None, 0)));
        assert!(root_has_active_key(&root(true, None, 1)));
        assert!(root_has_active_key(&root(true, None, 2)));
    }

    #[test]
    fn console_mfa_applies_to_password_users_only() {
        assert!(console_user_without_mfa(&user("a", true, false)));
        assert!(!console_user_without_mfa(&user("a", true, true)));
        assert!(!console_user_without_mfa(&user("a", false, false)));
    }

    fn policy(minimum_length: u32, reuse_prevention: u32) -> PasswordPolicy {
        PasswordPolicy {
            minimum_length: Some(minimum_length),
            reuse_prevention: Some(reuse_prevention),
            ..PasswordPolicy::default()
        }
    }

    #[test]
    fn password_policy_against_defaults() {
        let c = ChecksConfig::default();
        assert_eq!(password_policy_gaps(None, &c), ["no password policy"]);
        assert!(password_policy_gaps(Some(&policy(14, 24)), &c).is_empty());
        assert_eq!(
            password_policy_gaps(Some(&policy(8, 24)), &c),
            ["minimum length too short"]
        );
        // Unset reuse prevention means reuse is allowed.
        let no_reuse = PasswordPolicy {
            reuse_prevention: None,
            ..policy(14, 0)
        };
        assert_eq!(
            password_policy_gaps(Some(&no_reuse), &c),
            ["reuse prevention too low"]
        );
    }

    #[test]
    fn password_policy_expiry_and_symbols_when_configured() {
        let c = ChecksConfig {
            password_max_age: Some(std::time::Duration::from_secs(90 * 86_400)),
            password_require_symbols: true,
            ..ChecksConfig::default()
        };
        // Passes the defaults, but never expires and requires no symbols.
        assert_eq!(
            password_policy_gaps(Some(&policy(14, 24)), &c),
            ["passwords expire too late", "symbols not required"]
        );
        let strict = |max_age_days| PasswordPolicy {
            max_age_days: Some(max_age_days),
            require_symbols: true,
            ..policy(14, 24)
        };
        assert!(password_policy_gaps(Some(&strict(90)), &c).is_empty());
        assert_eq!(
            password_policy_gaps(Some(&strict(91)), &c),
            ["passwords expire too late"]
        );
    }

    #[test]
    fn unknown_data_gives_no_count_rather_than_zero() {
        let id = "111111111111";
        let store = SnapshotStore::new(
            vec![
                AccountInfo {
                    id: id.into(),
                    name: "prod".into(),
                    ou: String::new(),
                },
                AccountInfo {
                    id: "222222222222".into(),
                    name: "never-ran".into(),
                    ou: String::new(),
                },
            ],
            6,
        );
        let iam = IamData {
            keys: vec![
                key(true, 100, Some(1)), // too old
                key(true, 10, None),     // fine
                key(true, 200, None),    // too old and unused
                key(false, 300, None),   // inactive: fine
            ],
            root: None,
            users: vec![
                user("alice", true, false),
                user("bob", true, true),
                user("carol", false, false),
            ],
            password_policy: None,
            ..IamData::default()
        };
        let t = unix(now());
        store.record(
            id,
            crate::collector::iam::NAME,
            Outcome::Success(CollectorData::Iam(iam)),
            1.0,
            t,
        );
        // S3 ran and failed; EC2 never ran.
        store.record(id, crate::collector::s3::NAME, Outcome::Failure, 1.0, t);
        let snapshot = store.load();
        let c = ChecksConfig::default();

        // Root (no root row), S3 (failed) and EC2 (never ran) are absent, not zero; so is the
        // account that never ran.
        let got: Vec<_> = summary(&snapshot, t, &c).collect();
        assert_eq!(
            got,
            [
                (id, Check::IamAccessKeyAge, 2),
                (id, Check::IamAccessKeyUnused, 1),
                (id, Check::IamUserConsoleMfa, 1),
                (id, Check::IamPasswordPolicy, 1),
            ]
        );

        // With a root row the root checks count, failures or not.
        for (r, n) in [(root(false, None, 1), 1), (root(true, None, 0), 0)] {
            let d = IamData {
                root: Some(r),
                ..IamData::default()
            };
            for check in [Check::IamRootAccessKey, Check::IamRootMfa] {
                assert_eq!(
                    failed_resources(check, Some(&d), None, None, t, &c),
                    Some(n)
                );
            }
        }
    }
}
