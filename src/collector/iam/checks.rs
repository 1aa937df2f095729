//! The checks that read the IAM collector's data: one rule per check, pure functions of one
//! resource, so the summary, the findings and the overview agree by construction.

use super::{AccessKeyRecord, IamData, RootRecord, UserRecord};
use crate::aws::iam::PasswordPolicy;
use crate::collector::{Check, CheckSpec, Data, Finding, Owner, Severity};
use crate::config::ChecksConfig;
use crate::time::{unix, whole_days};

pub const CHECKS: &[CheckSpec] = &[
    CheckSpec {
        name: "iam_access_key_age",
        collector: super::NAME,
        title: "Access keys are rotated within the maximum age",
        severity: Severity::Medium,
        cis: "1.14",
        describe: |c| {
            format!(
                "an active access key is older than {} days",
                c.access_key_max_age.as_secs() / 86_400
            )
        },
        failed: |d, now, c| Some(keys(d)?.filter(|k| key_too_old(k, now, c)).count()),
    },
    CheckSpec {
        name: "iam_access_key_unused",
        collector: super::NAME,
        title: "Access keys unused for the maximum unused time are disabled",
        severity: Severity::Medium,
        cis: "1.12",
        describe: |c| {
            format!(
                "an active access key was not used for {} days",
                c.access_key_max_unused.as_secs() / 86_400
            )
        },
        failed: |d, now, c| Some(keys(d)?.filter(|k| key_unused(k, now, c)).count()),
    },
    CheckSpec {
        name: "iam_root_access_key",
        collector: super::NAME,
        title: "No root user access key exists",
        severity: Severity::Critical,
        cis: "1.4",
        describe: |_| "the root user has an active access key".into(),
        failed: |d, _, _| root(d).map(|r| usize::from(root_has_active_key(r))),
    },
    CheckSpec {
        name: "iam_root_mfa",
        collector: super::NAME,
        title: "MFA is enabled for the root user",
        severity: Severity::Critical,
        cis: "1.5",
        describe: |_| "the root user can sign in without MFA".into(),
        failed: |d, _, _| root(d).map(|r| usize::from(root_without_mfa(r))),
    },
    CheckSpec {
        name: "iam_user_console_mfa",
        collector: super::NAME,
        title: "MFA is enabled for every IAM user with a console password",
        severity: Severity::High,
        cis: "1.10",
        describe: |_| "a console user has no MFA".into(),
        failed: |d, _, _| {
            let d = d.downcast_ref::<IamData>()?;
            Some(
                d.users
                    .iter()
                    .filter(|u| console_user_without_mfa(u))
                    .count(),
            )
        },
    },
    CheckSpec {
        name: "iam_password_policy",
        collector: super::NAME,
        title: "The password policy requires long passwords and prevents reuse",
        severity: Severity::Medium,
        cis: "1.8,1.9",
        describe: |_| "the password policy is missing or weak".into(),
        failed: |d, _, c| {
            let d = d.downcast_ref::<IamData>()?;
            (!d.password_policy_denied).then(|| {
                usize::from(!password_policy_gaps(d.password_policy.as_ref(), c).is_empty())
            })
        },
    },
    CheckSpec {
        name: "iam_root_hardware_mfa",
        collector: super::NAME,
        title: "Hardware MFA is enabled for the root user",
        severity: Severity::High,
        cis: "1.6",
        describe: |_| "the root user can sign in with a virtual MFA device or none".into(),
        failed: |d, _, _| root(d).and_then(root_without_hardware_mfa).map(usize::from),
    },
    CheckSpec {
        name: "iam_root_recent_use",
        collector: super::NAME,
        title: "The root user is not used for everyday tasks",
        severity: Severity::High,
        cis: "1.7",
        describe: |c| {
            format!(
                "the root user signed in or used an access key within {} days",
                c.root_max_recent_use.as_secs() / 86_400
            )
        },
        failed: |d, now, c| root(d).map(|r| usize::from(root_used_recently(r, now, c))),
    },
    CheckSpec {
        name: "iam_user_password_unused",
        collector: super::NAME,
        title: "Console passwords unused for the maximum unused time are disabled",
        severity: Severity::Medium,
        cis: "1.12",
        describe: |c| {
            format!(
                "a console password was not used for {} days",
                c.access_key_max_unused.as_secs() / 86_400
            )
        },
        failed: |d, now, c| {
            let d = d.downcast_ref::<IamData>()?;
            Some(
                d.users
                    .iter()
                    .filter(|u| password_unused(u, now, c))
                    .count(),
            )
        },
    },
    CheckSpec {
        name: "iam_user_initial_access_key",
        collector: super::NAME,
        title: "No unused access key was set up with a console user",
        severity: Severity::Low,
        cis: "1.11",
        describe: |_| "a console user has an active access key that was never used".into(),
        failed: |d, _, _| {
            let d = d.downcast_ref::<IamData>()?;
            Some(d.keys.iter().filter(|k| initial_key_unused(d, k)).count())
        },
    },
    CheckSpec {
        name: "iam_user_multiple_active_keys",
        collector: super::NAME,
        title: "Each IAM user has at most one active access key",
        severity: Severity::Medium,
        cis: "1.13",
        describe: |_| "a user has two active access keys".into(),
        failed: |d, _, _| {
            let d = d.downcast_ref::<IamData>()?;
            Some(active_keys_by_user(d).filter(|(_, n)| *n > 1).count())
        },
    },
];

pub const ACCESS_KEY_AGE: Check = Check(&CHECKS[0]);
pub const ACCESS_KEY_UNUSED: Check = Check(&CHECKS[1]);
pub const ROOT_ACCESS_KEY: Check = Check(&CHECKS[2]);
pub const ROOT_MFA: Check = Check(&CHECKS[3]);
pub const USER_CONSOLE_MFA: Check = Check(&CHECKS[4]);
pub const PASSWORD_POLICY: Check = Check(&CHECKS[5]);
pub const ROOT_HARDWARE_MFA: Check = Check(&CHECKS[6]);
pub const ROOT_RECENT_USE: Check = Check(&CHECKS[7]);
pub const USER_PASSWORD_UNUSED: Check = Check(&CHECKS[8]);
pub const USER_INITIAL_ACCESS_KEY: Check = Check(&CHECKS[9]);
pub const USER_MULTIPLE_ACTIVE_KEYS: Check = Check(&CHECKS[10]);

fn keys(d: &Data) -> Option<impl Iterator<Item = &AccessKeyRecord>> {
    Some(d.downcast_ref::<IamData>()?.keys.iter())
}

fn root(d: &Data) -> Option<&RootRecord> {
    d.downcast_ref::<IamData>()?.root.as_ref()
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
    !r.mfa_active && root_can_sign_in(r)
}

/// A password (or possibly one) or an active key.
fn root_can_sign_in(r: &RootRecord) -> bool {
    r.password_enabled != Some(false) || r.active_keys > 0
}

/// Whether a root that can sign in lacks a hardware MFA device: no MFA, or a virtual one. None
/// when its device's kind is unknown (ListVirtualMFADevices denied).
pub fn root_without_hardware_mfa(r: &RootRecord) -> Option<bool> {
    if !root_can_sign_in(r) {
        // No password, no key: nothing to sign in with, as in `iam_root_mfa`.
        return Some(false);
    }
    if !r.mfa_active {
        return Some(true);
    }
    r.virtual_mfa
}

/// The root user signed in or used a key within `root_max_recent_use`.
pub fn root_used_recently(r: &RootRecord, now: f64, c: &ChecksConfig) -> bool {
    r.last_used
        .is_some_and(|t| now - unix(t) < c.root_max_recent_use.as_secs_f64())
}

/// A console password not used for `access_key_max_unused` (or never, by a user older than
/// that, so that a user created yesterday is not flagged for not having signed in yet).
pub fn password_unused(u: &UserRecord, now: f64, c: &ChecksConfig) -> bool {
    let max = c.access_key_max_unused.as_secs_f64();
    // A user of unknown age counts as old enough: unknown must not pass.
    let since = u.password_last_used.or(u.created);
    u.password_enabled && since.is_none_or(|t| now - unix(t) > max)
}

/// An active, never used access key of a user with a console password: CIS's audit for keys set
/// up with the user and forgotten.
pub fn initial_key_unused(d: &IamData, k: &AccessKeyRecord) -> bool {
    k.active && k.last_used.is_none() && has_console_password(d, &k.user)
}

fn has_console_password(d: &IamData, user: &str) -> bool {
    // `users` is sorted by name.
    d.users
        .binary_search_by(|u| u.user.as_str().cmp(user))
        .is_ok_and(|i| d.users.get(i).is_some_and(|u| u.password_enabled))
}

/// (user, active keys) for every user with a key, by user name.
pub fn active_keys_by_user(d: &IamData) -> impl Iterator<Item = (&str, usize)> {
    let mut by_user = std::collections::BTreeMap::<&str, usize>::new();
    for k in &d.keys {
        *by_user.entry(k.user.as_str()).or_default() += usize::from(k.active);
    }
    by_user.into_iter()
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

/// Every key, the root user, every user and the policy on each IAM check.
pub fn findings(account_id: &str, data: &Data, now: f64, c: &ChecksConfig, out: &mut Vec<Finding>) {
    let Some(d) = data.downcast_ref::<IamData>() else {
        return;
    };
    let mut add = |check, resource: String, failed, details: String| {
        // The root user's and the password policy's are the account's; the rest are on a user
        // (`user` or `user/key`: user names have no `/`), whatever the user is called.
        let account_wide = [
            ROOT_ACCESS_KEY,
            ROOT_MFA,
            ROOT_HARDWARE_MFA,
            ROOT_RECENT_USE,
            PASSWORD_POLICY,
        ];
        let owner = if account_wide.contains(&check) {
            Owner::Account
        } else {
            let user = resource.split('/').next().unwrap_or(&resource);
            Owner::User(user.to_owned())
        };
        out.push(Finding {
            account_id: account_id.to_owned(),
            check,
            resource,
            failed,
            details,
            owner,
        });
    };
    for k in &d.keys {
        let resource = format!("{}/{}", k.user, k.access_key_id);
        let state = if k.active { "active" } else { "inactive" };
        let age = whole_days(now - unix(k.created));
        add(
            ACCESS_KEY_AGE,
            resource.clone(),
            key_too_old(k, now, c),
            format!("{state}, created {age} days ago"),
        );
        let used = match k.last_used {
            Some(t) => format!("last used {} days ago", whole_days(now - unix(t))),
            None => "never used".to_owned(),
        };
        add(
            ACCESS_KEY_UNUSED,
            resource,
            key_unused(k, now, c),
            format!("{state}, {used}, created {age} days ago"),
        );
    }
    if let Some(r) = &d.root {
        add(
            ROOT_ACCESS_KEY,
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
            ROOT_MFA,
            "root".into(),
            root_without_mfa(r),
            format!(
                "MFA {}, {password}, {} active key(s)",
                if r.mfa_active { "on" } else { "off" },
                r.active_keys
            ),
        );
    }
    if let Some(r) = &d.root {
        if let Some(failed) = root_without_hardware_mfa(r) {
            let details = if !root_can_sign_in(r) {
                "no password and no active key"
            } else if !r.mfa_active {
                "no MFA"
            } else if failed {
                "a virtual MFA device"
            } else {
                "a hardware MFA device"
            };
            add(ROOT_HARDWARE_MFA, "root".into(), failed, details.into());
        }
        let used = match r.last_used {
            Some(t) => format!("last used {} days ago", whole_days(now - unix(t))),
            None => "never used".to_owned(),
        };
        add(
            ROOT_RECENT_USE,
            "root".into(),
            root_used_recently(r, now, c),
            used,
        );
    }
    for u in d.users.iter().filter(|u| u.password_enabled) {
        let used = match u.password_last_used {
            Some(t) => format!("password last used {} days ago", whole_days(now - unix(t))),
            None => "password never used".to_owned(),
        };
        let age = u.created.map_or_else(
            || "created at an unknown time".to_owned(),
            |t| format!("created {} days ago", whole_days(now - unix(t))),
        );
        add(
            USER_PASSWORD_UNUSED,
            u.user.clone(),
            password_unused(u, now, c),
            format!("{used}, {age}"),
        );
    }
    for k in d.keys.iter().filter(|k| k.active) {
        if !has_console_password(d, &k.user) {
            continue;
        }
        let used = if k.last_used.is_some() {
            "used"
        } else {
            "never used"
        };
        add(
            USER_INITIAL_ACCESS_KEY,
            format!("{}/{}", k.user, k.access_key_id),
            initial_key_unused(d, k),
            format!("active, {used}, user has a console password"),
        );
    }
    for (user, active) in active_keys_by_user(d) {
        add(
            USER_MULTIPLE_ACTIVE_KEYS,
            user.to_owned(),
            active > 1,
            format!("{active} active access key(s)"),
        );
    }
    for u in &d.users {
        add(
            USER_CONSOLE_MFA,
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
        add(PASSWORD_POLICY, "account".into(), !gaps.is_empty(), details);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::{DateTime, TimeDelta, Utc};

    /// The fixed "now" of every test.
    pub(crate) fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn days_ago(d: i64) -> DateTime<Utc> {
        now() - TimeDelta::days(d)
    }

    pub(crate) fn key(
        active: bool,
        created_days_ago: i64,
        used_days_ago: Option<i64>,
    ) -> AccessKeyRecord {
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
            virtual_mfa: Some(false),
        }
    }

    pub(crate) fn user(name: &str, password_enabled: bool, mfa_active: bool) -> UserRecord {
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
    fn root_hardware_mfa_fails_on_virtual_or_none_when_root_can_sign_in() {
        let with = |virtual_mfa| RootRecord {
            virtual_mfa,
            ..root(true, Some(true), 0)
        };
        assert_eq!(root_without_hardware_mfa(&with(Some(true))), Some(true));
        assert_eq!(root_without_hardware_mfa(&with(Some(false))), Some(false));
        // Denied ListVirtualMFADevices: unknown, not passing.
        assert_eq!(root_without_hardware_mfa(&with(None)), None);
        assert_eq!(root_without_hardware_mfa(&root(false, None, 0)), Some(true));
        // Nothing to sign in with passes, as in iam_root_mfa.
        assert_eq!(
            root_without_hardware_mfa(&root(false, Some(false), 0)),
            Some(false)
        );
        let virtual_no_password = RootRecord {
            virtual_mfa: Some(true),
            ..root(true, Some(false), 0)
        };
        assert_eq!(root_without_hardware_mfa(&virtual_no_password), Some(false));
    }

    #[test]
    fn root_recent_use_within_the_window() {
        let c = ChecksConfig::default();
        let used = |d| RootRecord {
            last_used: Some(days_ago(d)),
            ..root(true, None, 0)
        };
        assert!(root_used_recently(&used(29), unix(now()), &c));
        assert!(!root_used_recently(&used(31), unix(now()), &c));
        assert!(!root_used_recently(&root(true, None, 0), unix(now()), &c));
    }

    #[test]
    fn password_unused_counts_never_used_from_creation() {
        let c = ChecksConfig::default();
        let u = |created: Option<i64>, used: Option<i64>, password| UserRecord {
            created: created.map(days_ago),
            password_last_used: used.map(days_ago),
            ..user("u", password, false)
        };
        let unused = |u: &UserRecord| password_unused(u, unix(now()), &c);
        assert!(unused(&u(Some(100), Some(46), true)));
        assert!(!unused(&u(Some(100), Some(44), true)));
        assert!(unused(&u(Some(46), None, true)), "never used, old enough");
        assert!(!unused(&u(Some(10), None, true)), "a new user has time");
        assert!(!unused(&u(Some(100), None, false)), "no password");
        assert!(unused(&u(None, None, true)), "unknown age is not young");
    }

    #[test]
    fn initial_key_and_multiple_keys() {
        let k = |user: &str, slot: u8, active, used: Option<i64>| AccessKeyRecord {
            user: user.into(),
            slot,
            access_key_id: format!("AKIA{user}{slot}"),
            ..key(active, 10, used)
        };
        let d = IamData {
            keys: vec![
                k("alice", 1, true, None),
                k("alice", 2, true, Some(1)),
                k("bob", 1, true, None),
                k("carol", 1, true, Some(1)),
                k("carol", 2, false, None),
            ],
            users: vec![
                user("alice", true, true),
                user("bob", false, false),
                user("carol", true, true),
            ],
            ..IamData::default()
        };
        let initial: Vec<&str> = d
            .keys
            .iter()
            .filter(|k| initial_key_unused(&d, k))
            .map(|k| k.access_key_id.as_str())
            .collect();
        // bob has no console password; carol's unused key is inactive.
        assert_eq!(initial, ["AKIAalice1"]);
        let multiple: Vec<_> = active_keys_by_user(&d).collect();
        assert_eq!(multiple, [("alice", 2), ("bob", 1), ("carol", 1)]);
    }
}
