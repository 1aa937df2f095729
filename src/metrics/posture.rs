//! The posture families: what the collectors found, per account, and the per-check summary.

use super::expo::{Encoder, Family, Value};
use super::{SECONDS, flag, gauges, infos};
use crate::checks::{self, unix};
use crate::collector::CollectorData;
use crate::collector::iam::{AccessKeyRecord, UserRecord};
use crate::config::ChecksConfig;
use crate::snapshot::Snapshot;

/// Each collector's interval, as help texts say it.
#[derive(Debug)]
pub struct Every {
    pub iam: String,
    pub s3: String,
    pub ec2: String,
    pub access_advisor: String,
}

/// (account id, data) for every account whose collector of one kind has data.
fn each<'a, T: 'a>(
    snap: &'a Snapshot,
    pick: fn(&CollectorData) -> Option<&T>,
) -> impl Iterator<Item = (&'a str, &'a T)> {
    snap.entries
        .iter()
        .filter_map(move |((account, _), entry)| {
            Some((account.as_str(), pick(entry.data.as_deref()?)?))
        })
}

/// The posture families. Each is encoded on every call, in the same order whatever the data:
/// the fragments recorded per (account, collector) are matched to families by position.
pub fn encode(
    encoder: &mut Encoder<'_>,
    snap: &Snapshot,
    now: f64,
    every: &Every,
    checks: &ChecksConfig,
) {
    iam(encoder, snap, &every.iam);
    s3(encoder, snap, &every.s3);
    ec2(encoder, snap, &every.ec2);
    access_advisor(encoder, snap, now, &every.access_advisor);
    encoder.live(
        Family::gauge(
            "check_threshold",
            "Thresholds of the time-based checks, from [checks], for alert rules to compare against.",
            SECONDS,
        ),
        [
            ("iam_access_key_age", checks.access_key_max_age),
            ("iam_access_key_unused", checks.access_key_max_unused),
        ]
        .into_iter()
        .map(|(check, d)| ([("check", check)], d.as_secs_f64())),
    );
    encoder.live(
        Family::gauge(
            "check_failed_resources",
            "Resources failing each check, per account; absent while the data to decide is missing. Rules and thresholds: README, section Checks.",
            None,
        ),
        checks::summary(snap, now, checks).map(|(account, check, n)| {
            ([("account_id", account), ("check", check.name())], n as f64)
        }),
    )
}

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

fn iam(encoder: &mut Encoder<'_>, snap: &Snapshot, every: &str) {
    let data = || each(snap, CollectorData::as_iam);
    let keys = || data().flat_map(|(a, d)| d.keys.iter().map(move |k| (a, k)));
    let users = || data().flat_map(|(a, d)| d.users.iter().map(move |u| (a, u)));
    let roots = || data().filter_map(|(a, d)| Some(([("account_id", a)], d.root.as_ref()?)));
    let policies = || data().filter_map(|(a, d)| Some((a, d.password_policy.as_ref()?)));
    let from_report =
        format!("from the IAM credential report, refreshed in the background every {every}");

    encoder.cached(
        Family::gauge(
            "iam_access_key_age",
            &format!("Age of the access key, computed at scrape time; keys come {from_report}."),
            SECONDS,
        ),
        keys().map(|(a, k)| (key_labels(a, k), Value::Since(unix(k.created)))),
    );
    gauges(
        encoder,
        "iam_access_key_created_timestamp",
        &format!("Unix time the access key was created, {from_report}."),
        SECONDS,
        keys().map(|(a, k)| (key_labels(a, k), unix(k.created))),
    );
    gauges(
        encoder,
        "iam_access_key_active",
        &format!("1 if the access key is active, 0 if inactive, {from_report}."),
        None,
        keys().map(|(a, k)| (key_labels(a, k), flag(k.active))),
    );
    gauges(
        encoder,
        "iam_access_key_last_used_timestamp",
        &format!(
            "Unix time the access key was last used; absent for keys never used. Values come {from_report}."
        ),
        SECONDS,
        keys().filter_map(|(a, k)| Some((key_labels(a, k), unix(k.last_used?)))),
    );
    gauges(
        encoder,
        "iam_credential_report_generated_timestamp",
        &format!(
            "Unix time AWS generated the credential report in use, refreshed in the background every {every}."
        ),
        SECONDS,
        data().filter_map(|(a, d)| Some(([("account_id", a)], unix(d.report_generated_at?)))),
    );

    let root_help = |what: &str| {
        format!("{what}, {from_report}; absent when the report has no <root_account> row.")
    };
    gauges(
        encoder,
        "iam_root_mfa_enabled",
        &root_help("1 if the root user has MFA, 0 if not"),
        None,
        roots().map(|(l, r)| (l, flag(r.mfa_active))),
    );
    gauges(
        encoder,
        "iam_root_password_enabled",
        &root_help(
            "1 if the root user has a password, 0 if not (where the report says not_supported, from GetAccountSummary)",
        ),
        None,
        roots().filter_map(|(l, r)| Some((l, flag(r.password_enabled?)))),
    );
    gauges(
        encoder,
        "iam_root_access_keys_active",
        &root_help("Active access keys of the root user (0, 1 or 2)"),
        None,
        roots().map(|(l, r)| (l, f64::from(r.active_keys))),
    );
    gauges(
        encoder,
        "iam_root_last_used_timestamp",
        &root_help(
            "Unix time the root user last used its password or an access key; also absent when never used",
        ),
        SECONDS,
        roots().filter_map(|(l, r)| Some((l, unix(r.last_used?)))),
    );

    gauges(
        encoder,
        "iam_user_password_enabled",
        &format!("1 if the user has a console password, 0 if not, {from_report}."),
        None,
        users().map(|(a, u)| (user_labels(a, u), flag(u.password_enabled))),
    );
    gauges(
        encoder,
        "iam_user_mfa_active",
        &format!("1 if the user has an MFA device, 0 if not, {from_report}."),
        None,
        users().map(|(a, u)| (user_labels(a, u), flag(u.mfa_active))),
    );
    gauges(
        encoder,
        "iam_user_password_last_used_timestamp",
        &format!(
            "Unix time the user last signed in with a password; absent when unknown or never. Values come {from_report}."
        ),
        SECONDS,
        users().filter_map(|(a, u)| Some((user_labels(a, u), unix(u.password_last_used?)))),
    );
    gauges(
        encoder,
        "iam_user_created_timestamp",
        &format!("Unix time the user was created, {from_report}."),
        SECONDS,
        users().filter_map(|(a, u)| Some((user_labels(a, u), unix(u.created?)))),
    );

    let policy_help = |what: &str| {
        format!(
            "{what}, from GetAccountPasswordPolicy every {every}; absent when the account has no policy."
        )
    };
    gauges(
        encoder,
        "iam_password_policy_present",
        &format!(
            "1 if the account has a password policy, 0 if not, from GetAccountPasswordPolicy every {every}; absent when that call is denied."
        ),
        None,
        data()
            .filter(|(_, d)| !d.password_policy_denied)
            .map(|(a, d)| ([("account_id", a)], flag(d.password_policy.is_some()))),
    );
    gauges(
        encoder,
        "iam_password_policy_minimum_length",
        &policy_help("Minimum password length the policy requires"),
        None,
        policies().filter_map(|(a, p)| Some(([("account_id", a)], f64::from(p.minimum_length?)))),
    );
    gauges(
        encoder,
        "iam_password_policy_max_age",
        &policy_help("Time after which passwords expire; also absent when they never do"),
        SECONDS,
        policies().filter_map(|(a, p)| {
            Some(([("account_id", a)], f64::from(p.max_age_days?) * 86_400.0))
        }),
    );
    gauges(
        encoder,
        "iam_password_policy_reuse_prevention",
        &policy_help("Previous passwords that cannot be reused (0: reuse allowed)"),
        None,
        policies().map(|(a, p)| {
            (
                [("account_id", a)],
                f64::from(p.reuse_prevention.unwrap_or(0)),
            )
        }),
    );
    gauges(
        encoder,
        "iam_password_policy_requirement",
        &policy_help("1 if the policy requires a character of this class, 0 if not"),
        None,
        policies().flat_map(|(a, p)| {
            [
                ("symbols", p.require_symbols),
                ("numbers", p.require_numbers),
                ("uppercase", p.require_uppercase),
                ("lowercase", p.require_lowercase),
            ]
            .map(|(class, on)| ([("account_id", a), ("class", class)], flag(on)))
        }),
    )
}

fn s3(encoder: &mut Encoder<'_>, snap: &Snapshot, every: &str) {
    let data = || each(snap, CollectorData::as_s3);
    let buckets = || {
        data().flat_map(|(a, d)| {
            d.buckets.iter().map(move |b| {
                let labels = [
                    ("account_id", a),
                    ("bucket", b.name.as_str()),
                    ("region", b.region.as_str()),
                ];
                (labels, b, d)
            })
        })
    };
    let refreshed = format!("refreshed in the background every {every}");
    gauges(
        encoder,
        "s3_bucket_public",
        &format!(
            "1 if the bucket is public by policy or ACL and no public access block (bucket or account) neutralises it, 0 if not; absent when a denied call leaves it open. {refreshed}."
        ),
        None,
        buckets()
            .filter_map(|(l, b, d)| Some((l, flag(b.public(&d.account_public_access_block)?)))),
    );
    gauges(
        encoder,
        "s3_bucket_public_access_block",
        &format!(
            "1 if the setting of the bucket's public access block is on, 0 if off or no block; absent when denied. {refreshed}."
        ),
        None,
        buckets().flat_map(|(l, b, _)| {
            let [acc, bucket, region] = l;
            b.public_access_block
                .into_iter()
                .flat_map(|block| block.settings())
                .map(move |(setting, on)| ([acc, bucket, region, ("setting", setting)], flag(on)))
        }),
    );
    gauges(
        encoder,
        "s3_account_public_access_block",
        &format!(
            "1 if the setting of the account-level public access block is on, 0 if off or no block. {refreshed}."
        ),
        None,
        data().flat_map(|(a, d)| {
            d.account_public_access_block
                .settings()
                .map(|(setting, on)| ([("account_id", a), ("setting", setting)], flag(on)))
        }),
    );
    gauges(
        encoder,
        "s3_bucket_encryption_enabled",
        &format!(
            "1 if default encryption is configured on the bucket, 0 if not; absent when denied. {refreshed}."
        ),
        None,
        buckets().filter_map(|(l, b, _)| Some((l, flag(b.encrypted()?)))),
    );
    infos(
        encoder,
        "s3_bucket_encryption",
        &format!("The default encryption algorithm of encrypted buckets. {refreshed}."),
        buckets().filter_map(|(l, b, _)| match b.encryption {
            Some(crate::aws::s3::Encryption::Algorithm(alg)) => {
                let [acc, bucket, region] = l;
                Some([acc, bucket, region, ("algorithm", alg)])
            }
            _ => None,
        }),
    );
    gauges(
        encoder,
        "s3_bucket_access_denied",
        &format!(
            "1 for each call about the bucket that AWS denied to the audit role; that call's answers are absent. {refreshed}."
        ),
        None,
        buckets().flat_map(|(l, b, _)| {
            let [acc, bucket, region] = l;
            b.denied
                .iter()
                .map(move |op| ([acc, bucket, region, ("operation", *op)], 1.0))
        }),
    )
}

fn ec2(encoder: &mut Encoder<'_>, snap: &Snapshot, every: &str) {
    let data = || each(snap, CollectorData::as_ec2);
    let instances = || {
        data().flat_map(|(a, d)| {
            d.regions.iter().flat_map(move |r| {
                r.instances.iter().map(move |i| {
                    let labels = [
                        ("account_id", a),
                        ("region", r.region.as_str()),
                        ("instance_id", i.instance_id.as_str()),
                    ];
                    (labels, i)
                })
            })
        })
    };
    let refreshed = format!(
        "Instances in every state but terminated, refreshed in the background every {every}"
    );
    gauges(
        encoder,
        "ec2_instance_imdsv2_required",
        &format!(
            "1 if the instance requires IMDSv2 (HttpTokens required, or metadata endpoint off), 0 if it allows IMDSv1. {refreshed}."
        ),
        None,
        instances().map(|(l, i)| (l, flag(i.imdsv2_required))),
    );
    gauges(
        encoder,
        "ec2_instance_public_ip",
        &format!("1 if the instance has a public IPv4 address, 0 if not. {refreshed}."),
        None,
        instances().map(|(l, i)| (l, flag(i.public_ip))),
    );
    infos(
        encoder,
        "ec2_instance",
        &format!("Name tag, state and type of the instance. {refreshed}."),
        instances().map(|(l, i)| {
            let [acc, region, id] = l;
            [
                acc,
                region,
                id,
                ("name", i.name.as_str()),
                ("state", i.state.as_str()),
                ("instance_type", i.instance_type.as_str()),
            ]
        }),
    );
    gauges(
        encoder,
        "ec2_region_success",
        &format!(
            "1 if the run behind the data in use listed the region's instances, 0 if it failed there (its instances are then from the last run that did). Refreshed every {every}; a run that fails in every region keeps all the previous data."
        ),
        None,
        data().flat_map(|(a, d)| {
            d.regions.iter().map(move |r| {
                (
                    [("account_id", a), ("region", r.region.as_str())],
                    flag(r.success),
                )
            })
        }),
    )
}

fn access_advisor(encoder: &mut Encoder<'_>, snap: &Snapshot, now: f64, every: &str) {
    let data = || each(snap, CollectorData::as_access_advisor);
    let principals = || {
        data().flat_map(|(a, d)| {
            d.principals.iter().map(move |p| {
                let labels = [
                    ("account_id", a),
                    ("principal_type", p.kind.as_str()),
                    ("principal", p.name.as_str()),
                ];
                (labels, p, d)
            })
        })
    };
    let refreshed = format!(
        "from IAM Access Advisor (GetServiceLastAccessedDetails), refreshed in the background every {every}; AWS's own data lags by up to about 4 hours"
    );
    gauges(
        encoder,
        "iam_service_last_accessed_timestamp",
        &format!(
            "Unix time the user or role last authenticated to the service; only services used within AWS's tracking period (400 days). Values come {refreshed}."
        ),
        SECONDS,
        principals().flat_map(|(l, p, _)| {
            let [acc, kind, name] = l;
            p.used
                .iter()
                .map(move |(service, t)| ([acc, kind, name, ("service", service.as_str())], *t))
        }),
    );
    gauges(
        encoder,
        "iam_access_advisor_failed_principals",
        &format!(
            "Users and roles whose Access Advisor job failed in the run behind the data in use; their series are from the last run that had them. Refreshed every {every}."
        ),
        None,
        data().map(|(a, d)| ([("account_id", a)], d.failed as f64)),
    );
    // Live: "not used within the window" moves with the clock, not with the data.
    encoder.live(
        Family::gauge(
            "iam_principal_unused_services",
            &format!(
                "Services the user's or role's policies allow that it has not used within collectors.access_advisor.unused_window (never used included), computed at scrape time; services come {refreshed}."
            ),
            None,
        ),
        principals().map(|(l, p, d)| {
            let cutoff = now - d.unused_window.as_secs_f64();
            (l, p.unused_since(cutoff) as f64)
        }),
    );
}
