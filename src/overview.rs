//! The HTML overview at `/`: per account, the failing checks and the worst findings, the data's
//! age and collector health. Server-rendered from the snapshot; no JavaScript.
//!
//! Every string that comes from AWS (user, bucket and tag names) goes through [`escape`].

use std::fmt::Write as _;

use crate::checks;
use crate::collector::iam::{self, IamData};
use crate::collector::{Check, Finding, ec2, s3};
use crate::config::ChecksConfig;
use crate::snapshot::{AccountInfo, RunStatus, Snapshot};
use crate::time::{unix, whole_days};

/// Rows per list of worst findings; the rest is counted, and is in `/metrics` and the API.
const WORST: usize = 10;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:72em;\
padding:0 1em;color:#222}\
h2{margin:1.6em 0 .2em;padding-top:.6em;border-top:2px solid #ddd}\
h3{margin:1em 0 .3em;font-size:1em}\
table{border-collapse:collapse;margin:.2em 0 .6em}\
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.n{text-align:right}\
.bad{color:#b00020;font-weight:600}.ok{color:#17692b}.muted{color:#666}\
.unknown{color:#555;background:#eee;padding:.1em .4em}";

/// The page for `snapshot` now; `api`: whether the JSON API is on, to link its document.
pub fn render(snapshot: &Snapshot, checks: &ChecksConfig, api: bool) -> String {
    page(snapshot, checks, api, crate::time::unix_now())
}

/// The page for one snapshot at `now` (unix seconds).
fn page(snapshot: &Snapshot, c: &ChecksConfig, api: bool, now: f64) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>infraaudit</title><style>{STYLE}</style></head>\n<body>\n"
    );
    header(&mut out, snapshot, api, now);
    for account in &snapshot.accounts {
        account_section(&mut out, snapshot, account, c, now);
    }
    out.push_str("</body></html>\n");
    out
}

fn header(out: &mut String, snapshot: &Snapshot, api: bool, now: f64) {
    let _ = writeln!(
        out,
        "<h1>infraaudit</h1>\n<p>Security posture of {} AWS account(s), from the snapshot \
         that /metrics serves; rendered {} UTC. Version {}.</p>",
        snapshot.accounts.len(),
        utc(now),
        crate::VERSION,
    );
    let api_link = if api {
        "<a href=\"openapi.json\">JSON API (/openapi.json)</a>"
    } else {
        "<span class=\"muted\">JSON API: off</span>"
    };
    let _ = writeln!(
        out,
        "<p><a href=\"metrics\">metrics</a> · {api_link} · \
         <a href=\"-/healthy\">health</a> · <a href=\"-/ready\">readiness</a></p>"
    );
}

fn account_section(
    out: &mut String,
    snapshot: &Snapshot,
    account: &AccountInfo,
    c: &ChecksConfig,
    now: f64,
) {
    let _ = writeln!(
        out,
        "<h2 id=\"{id}\">{name} <span class=\"muted\">{id}</span></h2>",
        id = escape(&account.id),
        name = escape(&account.name),
    );
    let iam = snapshot.data::<IamData>(&account.id, iam::NAME);
    collectors(out, snapshot, &account.id, iam, now);
    failing_checks(out, snapshot, &account.id, c, now);
    let found = checks::findings(snapshot, &account.id, now, c);
    by_owner(out, &found);
    if let Some(iam) = iam {
        oldest_keys(out, iam, c, now);
        failed_findings(
            out,
            &found,
            iam::checks::USER_CONSOLE_MFA,
            "Console users without MFA",
            "user",
        );
    }
    if snapshot.data::<s3::S3Data>(&account.id, s3::NAME).is_some() {
        failed_findings(out, &found, s3::PUBLIC_ACCESS, "Public buckets", "bucket");
        failed_findings(
            out,
            &found,
            s3::ENCRYPTION_CHECK,
            "Buckets without default encryption",
            "bucket",
        );
    }
    if snapshot
        .data::<ec2::Ec2Data>(&account.id, ec2::NAME)
        .is_some()
    {
        failed_findings(
            out,
            &found,
            ec2::IMDSV2,
            "Instances allowing IMDSv1",
            "region/instance",
        );
    }
}

/// Each collector's last run and last success, and the credential report's age.
fn collectors(
    out: &mut String,
    snapshot: &Snapshot,
    account_id: &str,
    iam: Option<&IamData>,
    now: f64,
) {
    out.push_str("<h3>Collectors</h3>\n");
    let rows: Vec<Vec<String>> = snapshot
        .entries
        .iter()
        .filter(|((id, _), _)| id == account_id)
        .map(|((_, collector), e)| {
            vec![
                td(&escape(collector)),
                td(&health(&e.status)),
                td(&e.status.last_success.map_or_else(
                    || "<span class=\"bad\">never</span>".to_owned(),
                    |t| ago(now, t),
                )),
                td_n(&format!("{:.1} s", e.status.duration_seconds)),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No collector has finished a run yet.</p>\n");
        return;
    }
    table(
        out,
        &["collector", "last run", "last success", "duration"],
        &rows,
    );
    if let Some(t) = iam.and_then(|d| d.report_generated_at) {
        let _ = writeln!(
            out,
            "<p>IAM credential report generated {}.</p>",
            ago(now, unix(t))
        );
    }
}

fn health(s: &RunStatus) -> String {
    if s.success {
        "<span class=\"ok\">ok</span>".to_owned()
    } else {
        let n = s.consecutive_failures;
        format!("<span class=\"bad\">failed ({n} in a row)</span>")
    }
}

/// Failing checks with their counts, then the passing and the unknown ones by name. Only a page
/// where every check has a verdict and none fails says so in green: unknown is never passing.
fn failing_checks(
    out: &mut String,
    snapshot: &Snapshot,
    account_id: &str,
    c: &ChecksConfig,
    now: f64,
) {
    out.push_str("<h3>Failing checks</h3>\n");
    let (mut failing, mut passing, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for check in Check::all() {
        match checks::failed_resources(check, snapshot, account_id, now, c) {
            Some(0) => passing.push(check.name()),
            Some(n) => failing.push(vec![
                td(&format!("<span class=\"bad\">{}</span>", check.name())),
                td_n(&n.to_string()),
                td(&check.describe(c)),
            ]),
            None => unknown.push(check.name()),
        }
    }
    if !failing.is_empty() {
        table(
            out,
            &["check", "failing", "a resource fails when"],
            &failing,
        );
    } else if unknown.is_empty() {
        out.push_str("<p class=\"ok\">No check fails.</p>\n");
    } else if passing.is_empty() {
        out.push_str("<p class=\"unknown\">No data: no check has a verdict yet.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<p class=\"unknown\">No check with data fails; {} of {} have no data.</p>",
            unknown.len(),
            unknown.len() + passing.len()
        );
    }
    if !passing.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"muted\">Passing: {}.</p>",
            passing.join(", ")
        );
    }
    // Unknown checks by collector, with why: the collector has not succeeded, or is not run.
    let mut by_collector: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for check in Check::all().filter(|c| unknown.contains(&c.name())) {
        match by_collector
            .iter_mut()
            .find(|(c, _)| *c == check.collector())
        {
            Some((_, names)) => names.push(check.name()),
            None => by_collector.push((check.collector(), vec![check.name()])),
        }
    }
    for (collector, names) in by_collector {
        let entry = snapshot.entries.get(&(account_id.to_owned(), collector));
        let why = match entry {
            None => format!("the {collector} collector has not finished a run"),
            Some(e) if e.data.is_none() => format!("the {collector} collector has not succeeded"),
            // Data, but not enough for these checks (no root row, a denied call).
            Some(_) => format!("the {collector} collector's data cannot decide them"),
        };
        let _ = writeln!(
            out,
            "<p class=\"unknown\">No data ({why}): {}.</p>",
            names.join(", ")
        );
    }
}

/// The oldest active access keys, those over the age limit in red.
fn oldest_keys(out: &mut String, iam: &IamData, c: &ChecksConfig, now: f64) {
    out.push_str("<h3>Oldest active access keys</h3>\n");
    let mut active: Vec<_> = iam.keys.iter().filter(|k| k.active).collect();
    if active.is_empty() {
        out.push_str("<p class=\"muted\">No active access key.</p>\n");
        return;
    }
    active.sort_by_key(|k| k.created);
    let rows: Vec<Vec<String>> = active
        .iter()
        .take(WORST)
        .map(|k| {
            let n = whole_days(now - unix(k.created));
            let age = format!("{n} day{}", if n == 1 { "" } else { "s" });
            let age = if iam::checks::key_too_old(k, now, c) {
                format!("<span class=\"bad\">{age}</span>")
            } else {
                age
            };
            vec![
                td(&escape(&k.user)),
                td(&format!("<code>{}</code>", escape(&k.access_key_id))),
                td_n(&age),
                td(&k
                    .last_used
                    .map_or_else(|| "never".to_owned(), |t| ago(now, unix(t)))),
            ]
        })
        .collect();
    table(out, &["user", "access key", "age", "last used"], &rows);
    more(out, active.len());
}

/// Failed findings grouped by owner (the resource's, else the account's), worst first: who has
/// what to fix. Only when some finding has an owner, i.e. owners are configured.
fn by_owner(out: &mut String, found: &[Finding]) {
    let mut failed: Vec<&Finding> = found.iter().filter(|f| f.failed).collect();
    if !failed.iter().any(|f| !f.owner.as_str().is_empty()) {
        return;
    }
    out.push_str("<h3>Failed findings by owner</h3>\n");
    // Owners by name, the unowned last; within an owner, the worst severity first.
    failed.sort_by(|a, b| {
        let key = |f: &Finding| (f.owner.as_str().is_empty(), f.owner.as_str().to_owned());
        key(a)
            .cmp(&key(b))
            .then(a.check.severity().cmp(&b.check.severity()))
    });
    let mut rows = Vec::new();
    for group in failed.chunk_by(|a, b| a.owner == b.owner) {
        let owner = match group[0].owner.as_str() {
            "" => "<span class=\"muted\">no owner</span>".to_owned(),
            owner => escape(owner),
        };
        let worst: Vec<String> = group
            .iter()
            .take(3)
            .map(|f| {
                format!(
                    "{} <code>{}</code> ({})",
                    f.check.name(),
                    escape(&f.resource),
                    f.check.severity().as_str()
                )
            })
            .collect();
        let rest = group.len().saturating_sub(3);
        let more = if rest > 0 {
            format!("<br><span class=\"muted\">and {rest} more</span>")
        } else {
            String::new()
        };
        rows.push(vec![
            td(&owner),
            td_n(&format!("<span class=\"bad\">{}</span>", group.len())),
            td(&format!("{}{more}", worst.join("<br>"))),
        ]);
    }
    table(out, &["owner", "failed", "worst"], &rows);
}

/// The failed findings of one check, as resource and details.
fn failed_findings(out: &mut String, found: &[Finding], check: Check, title: &str, what: &str) {
    let _ = writeln!(out, "<h3>{title}</h3>");
    let failed: Vec<&Finding> = found
        .iter()
        .filter(|f| f.check == check && f.failed)
        .collect();
    if failed.is_empty() {
        out.push_str("<p class=\"ok\">None.</p>\n");
        return;
    }
    let rows: Vec<Vec<String>> = failed
        .iter()
        .take(WORST)
        .map(|f| {
            vec![
                td(&format!("<code>{}</code>", escape(&f.resource))),
                td(&escape(&f.details)),
            ]
        })
        .collect();
    table(out, &[what, "details"], &rows);
    more(out, failed.len());
}

fn more(out: &mut String, total: usize) {
    if total > WORST {
        let _ = writeln!(
            out,
            "<p class=\"muted\">and {} more, in /metrics.</p>",
            total - WORST
        );
    }
}

/// A table of rows of [`td`] cells.
fn table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table>\n<tr>");
    for h in headers {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr>\n");
    for row in rows {
        let _ = writeln!(out, "<tr>{}</tr>", row.concat());
    }
    out.push_str("</table>\n");
}

/// A cell of HTML whose text is already escaped.
fn td(html: &str) -> String {
    format!("<td>{html}</td>")
}

/// A right-aligned (numeric) cell.
fn td_n(html: &str) -> String {
    format!("<td class=\"n\">{html}</td>")
}

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// "N minutes ago" and the like, with the UTC time as a tooltip.
fn ago(now: f64, t: f64) -> String {
    let s = (now - t).max(0.0);
    let (n, unit) = if s < 60.0 {
        return format!("<span title=\"{} UTC\">just now</span>", utc(t));
    } else if s < 2.0 * 3600.0 {
        ((s / 60.0).floor() as i64, "minute")
    } else if s < 2.0 * 86_400.0 {
        ((s / 3600.0).floor() as i64, "hour")
    } else {
        (whole_days(s), "day")
    };
    let plural = if n == 1 { "" } else { "s" };
    format!(
        "<span title=\"{} UTC\">{n} {unit}{plural} ago</span>",
        utc(t)
    )
}

fn utc(t: f64) -> String {
    chrono::DateTime::from_timestamp(t.floor() as i64, 0)
        .map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M").to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::aws::ec2::Instance;
    use crate::aws::s3::{Encryption, PublicAccessBlock};
    use crate::collector::ec2::{Ec2Data, RegionRecord};
    use crate::collector::iam::AccessKeyRecord;
    use crate::collector::iam::credential_report;
    use crate::collector::s3::{BucketRecord, S3Data};
    use crate::snapshot::{Outcome, SnapshotStore};

    /// 2026-11-23T12:00:00Z, as in tests/golden.rs.
    const NOW: f64 = 1_795_435_200.0;
    const PROD: &str = "123456789012";
    const STAGING: &str = "210987654321";
    const HOSTILE: &str = "<script>alert('x')</script>";

    fn iam() -> IamData {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/credential_report/aws_with_root.csv"
        );
        let report = credential_report::parse(&std::fs::read(path).unwrap()).unwrap();
        let mut keys = Vec::new();
        for row in report.users() {
            for (slot, ks) in row.present_keys() {
                keys.push(AccessKeyRecord {
                    user: row.user.clone(),
                    access_key_id: format!("AKIAEXAMPLE{:04}{slot}", keys.len()),
                    slot,
                    created: ks.last_rotated.unwrap(),
                    active: ks.active,
                    last_used: ks.last_used_date,
                });
            }
        }
        // A fresh key of a user with a hostile name.
        keys.push(AccessKeyRecord {
            user: HOSTILE.into(),
            access_key_id: "AKIAHOSTILE000000001".into(),
            slot: 1,
            created: "2026-11-20T00:00:00Z".parse().unwrap(),
            active: true,
            last_used: None,
        });
        let generated = "2026-11-23T11:15:00Z".parse().unwrap();
        IamData::new(&report, Some(generated), keys, None)
    }

    fn s3() -> S3Data {
        let bucket = |name: &str, policy_public| BucketRecord {
            name: name.into(),
            region: "eu-west-1".into(),
            public_access_block: Some(PublicAccessBlock::default()),
            policy_public: Some(policy_public),
            acl_public: Some(false),
            encryption: Some(Encryption::Algorithm("AES256")),
            secure_transport: Some(true),
            mfa_delete: None,
            denied: Vec::new(),
            tagged: Default::default(),
        };
        S3Data {
            account_public_access_block: PublicAccessBlock::default(),
            buckets: vec![bucket("prod-logs", false), bucket("prod-public-site", true)],
            tagging: Default::default(),
        }
    }

    fn ec2() -> Ec2Data {
        let instance = |id: &str, name: &str, v2: bool| Instance {
            instance_id: id.into(),
            name: name.into(),
            state: "running".into(),
            instance_type: "t3.micro".into(),
            imdsv2_required: v2,
            public_ip: false,
            tags: Vec::new(),
            tagged: Default::default(),
        };
        Ec2Data {
            regions: vec![RegionRecord {
                region: "us-east-1".into(),
                success: true,
                instances: Arc::new(vec![
                    instance("i-0us000000000000001", HOSTILE, false),
                    instance("i-0us000000000000002", "app", true),
                ]),
            }],
            tagging: Default::default(),
        }
    }

    fn rendered() -> String {
        let store = SnapshotStore::new(
            vec![
                AccountInfo {
                    id: PROD.into(),
                    name: "prod & <co>".into(),
                    ou: String::new(),
                    owner: String::new(),
                },
                AccountInfo {
                    id: STAGING.into(),
                    name: "staging".into(),
                    ou: String::new(),
                    owner: String::new(),
                },
            ],
            6,
        );
        store.record(
            PROD,
            "iam",
            Outcome::Success(iam::SPEC.record(PROD, Arc::new(iam()))),
            1.25,
            NOW - 600.0,
        );
        store.record(
            PROD,
            "s3",
            Outcome::Success(s3::SPEC.record(PROD, Arc::new(s3()))),
            2.5,
            NOW - 3.0 * 3600.0,
        );
        store.record(
            PROD,
            "ec2",
            Outcome::Success(ec2::SPEC.record(PROD, Arc::new(ec2()))),
            0.75,
            NOW - 120.0,
        );
        // The second account's IAM failed twice and never succeeded.
        store.record(STAGING, "iam", Outcome::Failure, 30.0, NOW - 900.0);
        store.record(STAGING, "iam", Outcome::Failure, 30.0, NOW - 60.0);
        page(&store.load(), &ChecksConfig::default(), true, NOW)
    }

    #[test]
    fn escape_replaces_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(
            escape("svc-ci+deploy@example.com"),
            "svc-ci+deploy@example.com"
        );
    }

    #[test]
    fn failing_checks_have_their_counts() {
        let page = rendered();
        // alice's 200-day key and svc-ci's 2023 key; bob's never-used 89-day key; alice has a
        // password and no MFA; no password policy; one public bucket; one IMDSv1 instance.
        for (check, n) in [
            ("iam_access_key_age", 2),
            ("iam_access_key_unused", 1),
            ("iam_user_console_mfa", 1),
            ("iam_password_policy", 1),
            ("s3_public_access", 1),
            ("ec2_imdsv2", 1),
        ] {
            let row = format!("<span class=\"bad\">{check}</span></td><td class=\"n\">{n}</td>");
            assert!(page.contains(&row), "{row} in\n{page}");
        }
        assert!(
            page.contains(
                "Passing: iam_root_access_key, iam_root_mfa, iam_user_multiple_active_keys, s3_encryption, s3_secure_transport, ec2_public_ip."
            ),
            "{page}"
        );
        // The account whose IAM never succeeded: every check unknown, not passing, and nothing
        // in green for it.
        let staging = &page[page.find("staging").unwrap()..];
        assert!(
            staging.contains("No data: no check has a verdict yet."),
            "{staging}"
        );
        assert!(
            staging.contains("No data (the iam collector has not succeeded): iam_access_key_age,"),
            "{staging}"
        );
        assert!(!staging.contains("class=\"ok\""), "{staging}");
        assert!(!staging.contains("No check fails"), "{staging}");
    }

    #[test]
    fn worst_findings_are_listed() {
        let page = rendered();
        // Oldest first: svc-ci's key from 2023, then alice's 200-day key.
        let svc = page.find("<code>AKIAEXAMPLE00032</code>").unwrap();
        let alice = page.find("<code>AKIAEXAMPLE00001</code>").unwrap();
        assert!(svc < alice);
        assert!(page.contains("<td class=\"n\"><span class=\"bad\">200 days</span></td>"));
        // bob's inactive key is not among the active ones.
        assert!(!page.contains("AKIAEXAMPLE00011"));
        assert!(page.contains(
            "<td><code>prod-public-site</code></td><td>public by policy (eu-west-1)</td>"
        ));
        assert!(!page.contains("<code>prod-logs</code>"));
        assert!(page.contains("<code>us-east-1/i-0us000000000000001</code>"));
        // Named, not only counted: the users without MFA and the unencrypted buckets.
        let mfa = &page[page.find("<h3>Console users without MFA</h3>").unwrap()..];
        assert!(
            mfa.starts_with("<h3>Console users without MFA</h3>\n<table>"),
            "{mfa}"
        );
        assert!(mfa.contains("<td><code>alice</code></td>"), "{mfa}");
        assert!(
            page.contains("<h3>Buckets without default encryption</h3>\n<p class=\"ok\">None.</p>")
        );
        assert!(!page.contains("i-0us000000000000002"));
    }

    #[test]
    fn failed_findings_are_grouped_by_owner_the_account_owning_the_rest() {
        // Without owners: no such section.
        assert!(!rendered().contains("Failed findings by owner"));
        let account = AccountInfo {
            id: PROD.into(),
            name: "prod".into(),
            ou: String::new(),
            owner: "team <platform>".into(),
        };
        let store = SnapshotStore::new(vec![account], 2);
        let mut data = s3();
        data.buckets[1].tagged.owner = "payments".into();
        data.buckets[0].encryption = Some(Encryption::None);
        store.record(
            PROD,
            "s3",
            Outcome::Success(s3::SPEC.record(PROD, Arc::new(data))),
            1.0,
            NOW,
        );
        let page = page(&store.load(), &ChecksConfig::default(), false, NOW);
        let section = &page[page.find("Failed findings by owner").unwrap()..];
        // Owners by name: the bucket's own owner, then the account's for the untagged bucket.
        let payments = section.find("<td>payments</td>").unwrap();
        let platform = section.find("<td>team &lt;platform&gt;</td>").unwrap();
        assert!(payments < platform, "{section}");
        assert!(section.contains("s3_public_access <code>prod-public-site</code> (critical)"));
        assert!(section.contains("s3_encryption <code>prod-logs</code>"));
    }

    #[test]
    fn data_age_and_collector_health() {
        let page = rendered();
        assert!(page.contains("IAM credential report generated <span title=\"2026-11-23 11:15 UTC\">45 minutes ago</span>"));
        assert!(page.contains("<td>iam</td><td><span class=\"ok\">ok</span></td><td><span title=\"2026-11-23 11:50 UTC\">10 minutes ago</span>"));
        assert!(page.contains("<td>s3</td><td><span class=\"ok\">ok</span></td><td><span title=\"2026-11-23 09:00 UTC\">3 hours ago</span>"));
        assert!(page.contains("<td>iam</td><td><span class=\"bad\">failed (2 in a row)</span></td><td><span class=\"bad\">never</span>"));
        assert!(
            page.contains("<a href=\"metrics\">") && page.contains("<a href=\"openapi.json\">")
        );
    }

    #[test]
    fn names_from_aws_and_config_are_escaped() {
        let page = rendered();
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<co>"));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.contains("prod &amp; &lt;co&gt;"));
    }

    #[test]
    fn ages_read_like_prose() {
        assert!(ago(1000.0, 990.0).contains(">just now<"));
        assert!(ago(1000.0, 1000.0 - 61.0).contains(">1 minute ago<"));
        assert!(ago(10_000.0, 10_000.0 - 7200.0).contains(">2 hours ago<"));
        assert!(ago(1e6, 1e6 - 3.0 * 86_400.0).contains(">3 days ago<"));
    }
}
