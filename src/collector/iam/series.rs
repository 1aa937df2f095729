//! The IAM collector's metric families, encoded when a run's data is recorded.

use super::{AccessKeyRecord, IamData, UserRecord};
use crate::collector::Data;
use crate::expo::{Family, Recorder, SECONDS, Value, flag};
use crate::time::unix;

macro_rules! from_report {
    () => {
        "from the IAM credential report, refreshed in the background every {every}"
    };
}

macro_rules! root_help {
    ($what:literal) => {
        concat!(
            $what,
            ", ",
            from_report!(),
            "; absent when the report has no <root_account> row."
        )
    };
}

macro_rules! policy_help {
    ($what:literal) => {
        concat!(
            $what,
            ", from GetAccountPasswordPolicy every {every}; absent when the account has no policy."
        )
    };
}

const KEY_AGE: Family<'static> = Family::gauge(
    "iam_access_key_age",
    concat!(
        "Age of the access key, computed at scrape time; keys come ",
        from_report!(),
        "."
    ),
    SECONDS,
);
const KEY_CREATED: Family<'static> = Family::gauge(
    "iam_access_key_created_timestamp",
    concat!(
        "Unix time the access key was created, ",
        from_report!(),
        "."
    ),
    SECONDS,
);
const KEY_ACTIVE: Family<'static> = Family::gauge(
    "iam_access_key_active",
    concat!(
        "1 if the access key is active, 0 if inactive, ",
        from_report!(),
        "."
    ),
    None,
);
const KEY_LAST_USED: Family<'static> = Family::gauge(
    "iam_access_key_last_used_timestamp",
    concat!(
        "Unix time the access key was last used; absent for keys never used. Values come ",
        from_report!(),
        "."
    ),
    SECONDS,
);
const REPORT_GENERATED: Family<'static> = Family::gauge(
    "iam_credential_report_generated_timestamp",
    "Unix time AWS generated the credential report in use, refreshed in the background every {every}.",
    SECONDS,
);
const ROOT_MFA: Family<'static> = Family::gauge(
    "iam_root_mfa_enabled",
    root_help!("1 if the root user has MFA, 0 if not"),
    None,
);
const ROOT_HARDWARE_MFA: Family<'static> = Family::gauge(
    "iam_root_hardware_mfa_enabled",
    "1 if the root user's MFA is a hardware device (MFA on in the IAM credential report, and no virtual device assigned to root in ListVirtualMFADevices), 0 if it is virtual or absent. Refreshed in the background every {every}; absent when the report has no <root_account> row or ListVirtualMFADevices is denied.",
    None,
);
const ROOT_PASSWORD: Family<'static> = Family::gauge(
    "iam_root_password_enabled",
    root_help!(
        "1 if the root user has a password, 0 if not (where the report says not_supported, from GetAccountSummary)"
    ),
    None,
);
const ROOT_KEYS: Family<'static> = Family::gauge(
    "iam_root_access_keys_active",
    root_help!("Active access keys of the root user (0, 1 or 2)"),
    None,
);
const ROOT_LAST_USED: Family<'static> = Family::gauge(
    "iam_root_last_used_timestamp",
    root_help!(
        "Unix time the root user last used its password or an access key; also absent when never used"
    ),
    SECONDS,
);
const USER_PASSWORD: Family<'static> = Family::gauge(
    "iam_user_password_enabled",
    concat!(
        "1 if the user has a console password, 0 if not, ",
        from_report!(),
        "."
    ),
    None,
);
const USER_MFA: Family<'static> = Family::gauge(
    "iam_user_mfa_active",
    concat!(
        "1 if the user has an MFA device, 0 if not, ",
        from_report!(),
        "."
    ),
    None,
);
const USER_PASSWORD_LAST_USED: Family<'static> = Family::gauge(
    "iam_user_password_last_used_timestamp",
    concat!(
        "Unix time the user last signed in with a password; absent when unknown or never. Values come ",
        from_report!(),
        "."
    ),
    SECONDS,
);
const USER_CREATED: Family<'static> = Family::gauge(
    "iam_user_created_timestamp",
    concat!("Unix time the user was created, ", from_report!(), "."),
    SECONDS,
);
const POLICY_PRESENT: Family<'static> = Family::gauge(
    "iam_password_policy_present",
    "1 if the account has a password policy, 0 if not, from GetAccountPasswordPolicy every {every}; absent when that call is denied.",
    None,
);
const POLICY_MIN_LENGTH: Family<'static> = Family::gauge(
    "iam_password_policy_minimum_length",
    policy_help!("Minimum password length the policy requires"),
    None,
);
const POLICY_MAX_AGE: Family<'static> = Family::gauge(
    "iam_password_policy_max_age",
    policy_help!("Time after which passwords expire; also absent when they never do"),
    SECONDS,
);
const POLICY_REUSE: Family<'static> = Family::gauge(
    "iam_password_policy_reuse_prevention",
    policy_help!("Previous passwords that cannot be reused (0: reuse allowed)"),
    None,
);
const POLICY_REQUIREMENT: Family<'static> = Family::gauge(
    "iam_password_policy_requirement",
    policy_help!("1 if the policy requires a character of this class, 0 if not"),
    None,
);

pub const FAMILIES: &[Family<'static>] = &[
    KEY_AGE,
    KEY_CREATED,
    KEY_ACTIVE,
    KEY_LAST_USED,
    REPORT_GENERATED,
    ROOT_MFA,
    ROOT_HARDWARE_MFA,
    ROOT_PASSWORD,
    ROOT_KEYS,
    ROOT_LAST_USED,
    USER_PASSWORD,
    USER_MFA,
    USER_PASSWORD_LAST_USED,
    USER_CREATED,
    POLICY_PRESENT,
    POLICY_MIN_LENGTH,
    POLICY_MAX_AGE,
    POLICY_REUSE,
    POLICY_REQUIREMENT,
];

fn key_labels<'a>(account: &'a str, k: &'a AccessKeyRecord) -> [(&'static str, &'a str); 4] {
    let slot = match k.slot {
        1 => "1",
        2 => "2",
        _ => "unknown",
    };
    [
        ("account_id", account),
        ("user", &k.user),
        ("access_key_id", &k.access_key_id),
        ("slot", slot),
    ]
}

fn user_labels<'a>(account: &'a str, u: &'a UserRecord) -> [(&'static str, &'a str); 2] {
    [("account_id", account), ("user", u.user.as_str())]
}

pub fn encode(account: &str, data: &Data, r: &mut Recorder<'_>) {
    let Some(d) = data.downcast_ref::<IamData>() else {
        return;
    };
    let keys = || d.keys.iter().map(|k| (key_labels(account, k), k));
    let account_labels = [("account_id", account)];
    r.series(
        &KEY_AGE,
        keys().map(|(l, k)| (l, Value::Since(unix(k.created)))),
    );
    r.series(&KEY_CREATED, keys().map(|(l, k)| (l, unix(k.created))));
    r.series(&KEY_ACTIVE, keys().map(|(l, k)| (l, flag(k.active))));
    r.series(
        &KEY_LAST_USED,
        keys().filter_map(|(l, k)| Some((l, unix(k.last_used?)))),
    );
    r.series(
        &REPORT_GENERATED,
        d.report_generated_at
            .map(|t| (account_labels, unix(t)))
            .into_iter(),
    );

    if let Some(root) = &d.root {
        let one = |v: Option<f64>| v.map(|v| (account_labels, v)).into_iter();
        r.series(&ROOT_MFA, one(Some(flag(root.mfa_active))));
        r.series(
            &ROOT_HARDWARE_MFA,
            one(root.virtual_mfa.map(|v| flag(root.mfa_active && !v))),
        );
        r.series(&ROOT_PASSWORD, one(root.password_enabled.map(flag)));
        r.series(&ROOT_KEYS, one(Some(f64::from(root.active_keys))));
        r.series(&ROOT_LAST_USED, one(root.last_used.map(unix)));
    }

    let users = || d.users.iter().map(|u| (user_labels(account, u), u));
    r.series(
        &USER_PASSWORD,
        users().map(|(l, u)| (l, flag(u.password_enabled))),
    );
    r.series(&USER_MFA, users().map(|(l, u)| (l, flag(u.mfa_active))));
    r.series(
        &USER_PASSWORD_LAST_USED,
        users().filter_map(|(l, u)| Some((l, unix(u.password_last_used?)))),
    );
    r.series(
        &USER_CREATED,
        users().filter_map(|(l, u)| Some((l, unix(u.created?)))),
    );

    r.series(
        &POLICY_PRESENT,
        (!d.password_policy_denied)
            .then(|| (account_labels, flag(d.password_policy.is_some())))
            .into_iter(),
    );
    let Some(p) = &d.password_policy else {
        return;
    };
    let one = |v: Option<f64>| v.map(|v| (account_labels, v)).into_iter();
    r.series(&POLICY_MIN_LENGTH, one(p.minimum_length.map(f64::from)));
    r.series(
        &POLICY_MAX_AGE,
        one(p.max_age_days.map(|d| f64::from(d) * 86_400.0)),
    );
    r.series(
        &POLICY_REUSE,
        one(Some(f64::from(p.reuse_prevention.unwrap_or(0)))),
    );
    r.series(
        &POLICY_REQUIREMENT,
        [
            ("symbols", p.require_symbols),
            ("numbers", p.require_numbers),
            ("uppercase", p.require_uppercase),
            ("lowercase", p.require_lowercase),
        ]
        .into_iter()
        .map(|(class, on)| ([("account_id", account), ("class", class)], flag(on))),
    );
}
