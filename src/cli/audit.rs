//! `infraaudit audit`: one collection cycle of the chosen accounts and collectors, then every
//! check's verdict per resource, by the same rules as `infraaudit_check_failed_resources`.
//!
//! Exit codes, as Prowler's: 0 everything passes, 3 something fails; and 1 when a collector
//! failed (some verdicts are missing, so a pass would be a guess), 64 for a bad configuration,
//! account or check.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::future::join_all;
use indicatif::ProgressBar;
use serde::Serialize;

use infraaudit::aws::counters::ApiMetrics;
use infraaudit::checks;
use infraaudit::collector::{Check, Finding};
use infraaudit::config::{Account, Settings};
use infraaudit::error::Error;
use infraaudit::snapshot::{AccountInfo, SnapshotStore};
use infraaudit::time::unix_now;
use infraaudit::{accounts, audit, aws, discovery};

use super::{EXIT_FINDINGS, config_error, runtime, write_stdout};

/// Accounts audited at once; each also has `aws.max_concurrency` calls in flight at most.
const ACCOUNTS_AT_ONCE: usize = 4;

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Audit only this account (repeatable). Default: every configured account, or the ambient
    /// credentials' account without `[[accounts]]`.
    #[arg(long = "account", value_name = "ID")]
    pub accounts: Vec<String>,
    /// Only these checks, comma-separated (e.g. `s3_public_access,ec2_imdsv2`); only their
    /// collectors run. Default: every check.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub checks: Vec<String>,
    /// How stdout shows the findings.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only the findings of this owner (the resource's owner tag, else its account's owner);
    /// the summary and the exit code count only them.
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns, FAIL rows first, then a one-line summary.
    Table,
    /// `{"findings": [...], "summary": {account: {check: failed}}, "errors": [...]}`.
    Json,
    /// `account_id,check,resource,status,details,cis,severity,owner`, with a header.
    Csv,
}

/// A collector run that failed, so its checks have no verdict for the account.
struct Failure {
    account_id: String,
    collector: &'static str,
    error: Error,
}

/// One row of the output, in every format.
#[derive(Serialize)]
struct Row<'a> {
    account_id: &'a str,
    check: &'static str,
    resource: &'a str,
    status: &'static str,
    details: &'a str,
    /// Appended, so that scripts reading the earlier CSV columns by position keep working.
    cis: &'static str,
    severity: &'static str,
    /// The resource's owner, else its account's; empty (null in JSON) when neither is known.
    owner: &'a infraaudit::collector::Owner,
}

impl<'a> From<&'a Finding> for Row<'a> {
    fn from(f: &'a Finding) -> Self {
        Self {
            account_id: &f.account_id,
            check: f.check.name(),
            resource: &f.resource,
            status: if f.failed { "FAIL" } else { "PASS" },
            details: &f.details,
            cis: f.check.cis(),
            severity: f.check.severity().as_str(),
            owner: &f.owner,
        }
    }
}

struct Report {
    accounts: Vec<Account>,
    checks: Vec<Check>,
    findings: Vec<Finding>,
    /// account -> check -> failed resources, for every check with a verdict.
    summary: BTreeMap<String, BTreeMap<&'static str, usize>>,
    failures: Vec<Failure>,
}

pub fn main(settings: Settings, args: &AuditArgs, progress: &ProgressBar) -> ExitCode {
    let mut selected = Vec::new();
    for name in &args.checks {
        match Check::from_name(name) {
            Some(c) if !selected.contains(&c) => selected.push(c),
            Some(_) => {}
            None => {
                let known: Vec<&str> = Check::all().map(Check::name).collect();
                return config_error(format_args!(
                    "--checks: unknown check {name:?} (known: {})",
                    known.join(", ")
                ));
            }
        }
    }
    if selected.is_empty() {
        selected = Check::all().collect();
    }
    // Without owners every finding is unowned: an owner's filter would keep nothing, an
    // all-clear that would not be true.
    if args.owner.is_some() && !settings.config.tagging().enabled {
        return config_error(
            "--owner: no owners are configured (set [owners] tag_keys or [[accounts]] owner)",
        );
    }
    selected.sort();
    // Configured accounts can be refused before any AWS call (discovery may add others).
    if !settings.accounts.is_empty()
        && settings.organizations.is_none()
        && let Some(code) = unknown_account(&args.accounts, &settings.accounts)
    {
        return code;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut report = match rt.block_on(collect(&settings, &args.accounts, selected, progress)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if let Some(owner) = &args.owner {
        let known = report.only_owner(owner);
        // No finding at all, passing or failing: most likely a misspelt owner, not a clean bill.
        if report.findings.is_empty() && report.failures.is_empty() {
            return config_error(format_args!(
                "--owner: no finding has owner {owner:?} (owners found: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    progress.finish_and_clear();
    report_problems(&report);
    let text = match args.format {
        Format::Table => Ok(table(&report)),
        Format::Json => json(&report),
        Format::Csv => csv(&report),
    };
    match text {
        Ok(text) if write_stdout(&text) => {}
        Ok(_) => return ExitCode::FAILURE,
        Err(e) => {
            eprintln!("infraaudit: cannot render the findings: {e}");
            return ExitCode::FAILURE;
        }
    }
    if !report.failures.is_empty() {
        ExitCode::FAILURE
    } else if report.findings.iter().any(|f| f.failed) {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    }
}

/// Exit code 64 when an account asked for is not among `known`.
fn unknown_account(wanted: &[String], known: &[Account]) -> Option<ExitCode> {
    let unknown = wanted.iter().find(|w| !known.iter().any(|a| &a.id == *w))?;
    let ids: Vec<&str> = known.iter().map(|a| a.id.as_str()).collect();
    Some(config_error(format_args!(
        "--account: {unknown} is not an audited account (audited: {})",
        ids.join(", ")
    )))
}

async fn collect(
    settings: &Settings,
    wanted: &[String],
    selected: Vec<Check>,
    progress: &ProgressBar,
) -> Result<Report, ExitCode> {
    let cfg = &settings.config;
    let base = aws::base_config(&cfg.aws).await;
    let mut accounts = if let Some(org) = &settings.organizations {
        // Every account of the organization and of the configuration, whatever the shard:
        // sharding splits the daemon's work, an audit asks about the whole set.
        let discoverer = discovery::Discoverer::new(
            base.clone(),
            Arc::new(cfg.clone()),
            Arc::new(ApiMetrics::default()),
            org.clone(),
        );
        let found = discoverer.discover().await.map_err(|e| {
            eprintln!("infraaudit: account discovery in AWS Organizations failed: {e}");
            ExitCode::FAILURE
        })?;
        let all: Vec<Account> = accounts::merge(&settings.accounts, &found, Some(org), cfg)
            .into_iter()
            .map(|m| m.account)
            .collect();
        if let Some(code) = unknown_account(wanted, &all) {
            return Err(code);
        }
        all
    } else if settings.accounts.is_empty() {
        let id = aws::caller_account(&base).await.map_err(|e| {
            eprintln!("infraaudit: {}", super::ambient_unknown(&e));
            ExitCode::FAILURE
        })?;
        let ambient = vec![cfg.ambient_account(id)];
        if let Some(code) = unknown_account(wanted, &ambient) {
            return Err(code);
        }
        ambient
    } else {
        settings.accounts.clone()
    };
    if !wanted.is_empty() {
        accounts.retain(|a| wanted.contains(&a.id));
    }

    let needed = audit::collectors_for(&selected, !settings.config.owners.tag_keys.is_empty());
    let runs = |a: &Account| -> Vec<&'static str> {
        a.collectors
            .iter()
            .copied()
            .filter(|c| needed.contains(c))
            .collect()
    };
    let pairs: usize = accounts.iter().map(|a| runs(a).len()).sum();
    let infos = accounts
        .iter()
        .map(|a| AccountInfo {
            id: a.id.clone(),
            name: a.name.clone(),
            ou: String::new(),
            owner: a.owner.clone(),
        })
        .collect();
    let store = SnapshotStore::new(infos, pairs);
    let api = Arc::new(ApiMetrics::default());
    progress.set_length(pairs as u64);
    if !progress.is_hidden() {
        progress.enable_steady_tick(std::time::Duration::from_millis(120));
    }

    let store_ref = &store;
    let mut failures: Vec<Failure> = futures_util::stream::iter(accounts.iter().map(|account| {
        let session = Arc::new(aws::AccountSession::new(
            &base,
            &cfg.aws,
            account.clone(),
            api.clone(),
        ));
        let collectors = runs(account);
        async move {
            let per_collector = collectors.into_iter().map(|name| {
                let session = &session;
                async move {
                    let failures = audit::run_once(cfg, session, &[name], store_ref).await;
                    progress.set_message(format!("{} {name}", session.account.id));
                    progress.inc(1);
                    failures
                }
            });
            join_all(per_collector)
                .await
                .into_iter()
                .flatten()
                .map(|(collector, error)| Failure {
                    account_id: session.account.id.clone(),
                    collector,
                    error,
                })
                .collect::<Vec<_>>()
        }
    }))
    .buffer_unordered(ACCOUNTS_AT_ONCE)
    .flat_map(futures_util::stream::iter)
    .collect()
    .await;
    // A run made only to learn the IAM users' owners does not fail the audit: the findings on
    // those users then go to the account's owner, as stderr says.
    let feeding = audit::collectors_for(&selected, false);
    failures.retain(|f| {
        let feeds = feeding.contains(&f.collector);
        if !feeds {
            eprintln!(
                "infraaudit: account {}: collector {} failed ({}): the IAM users' owners are unknown, their findings go to the account's owner",
                f.account_id,
                f.collector,
                f.error.aws_code().unwrap_or(f.error.kind()),
            );
        }
        feeds
    });

    let snapshot = store.load();
    let now = unix_now();
    let mut findings = Vec::new();
    let mut summary = BTreeMap::new();
    for a in &accounts {
        findings.extend(
            checks::findings(&snapshot, &a.id, now, &cfg.checks)
                .into_iter()
                .filter(|f| selected.contains(&f.check)),
        );
        let known: BTreeMap<&'static str, usize> = selected
            .iter()
            .filter_map(|&c| {
                checks::failed_resources(c, &snapshot, &a.id, now, &cfg.checks)
                    .map(|n| (c.name(), n))
            })
            .collect();
        summary.insert(a.id.clone(), known);
    }
    // Accounts in configuration order, then checks in their order, then resources.
    let rank = |id: &str| accounts.iter().position(|a| a.id == id);
    failures.sort_by_key(|f| (rank(&f.account_id), f.collector));
    findings.sort_by(|x, y| {
        (rank(&x.account_id), x.check, &x.resource).cmp(&(
            rank(&y.account_id),
            y.check,
            &y.resource,
        ))
    });
    Ok(Report {
        accounts,
        checks: selected,
        findings,
        summary,
        failures,
    })
}

impl Report {
    /// Keeps the findings of `owner`, and counts only them in the summary (checks without a
    /// verdict stay absent: unknown for that owner too).
    /// Returns the owners found before the filter.
    fn only_owner(&mut self, owner: &str) -> Vec<String> {
        let known: std::collections::BTreeSet<String> = self
            .findings
            .iter()
            .map(|f| f.owner.as_str().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        self.findings.retain(|f| f.owner.as_str() == owner);
        for (account, checks) in &mut self.summary {
            for (check, failed) in checks.iter_mut() {
                *failed = self
                    .findings
                    .iter()
                    .filter(|f| f.failed && &f.account_id == account && f.check.name() == *check)
                    .count();
            }
        }
        known.into_iter().collect()
    }
}

/// On stderr: failed collector runs, and checks left without a verdict for another reason.
fn report_problems(r: &Report) {
    for f in &r.failures {
        let lost: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| c.collector() == f.collector)
            .map(|c| c.name())
            .collect();
        eprintln!(
            "infraaudit: account {}: collector {} failed ({}): no verdict on {}",
            f.account_id,
            f.collector,
            f.error,
            lost.join(", ")
        );
    }
    for a in &r.accounts {
        let known = r.summary.get(&a.id);
        for c in &r.checks {
            if known.is_some_and(|k| k.contains_key(c.name())) {
                continue;
            }
            let collector = c.collector();
            if !a.collectors.contains(&collector) {
                eprintln!(
                    "infraaudit: account {}: {} not audited: collector {collector} is off for this account",
                    a.id,
                    c.name()
                );
            } else if !r
                .failures
                .iter()
                .any(|f| f.account_id == a.id && f.collector == collector)
            {
                eprintln!(
                    "infraaudit: account {}: no verdict on {}: the collected data cannot decide it (a denied call, or no <root_account> row in the credential report)",
                    a.id,
                    c.name()
                );
            }
        }
    }
}

fn table(r: &Report) -> String {
    let mut rows: Vec<Row> = r.findings.iter().map(Row::from).collect();
    // Stable: within FAIL and PASS, the report's order stays.
    rows.sort_by_key(|row| row.status != "FAIL");
    // The owner column only when owners are known: tables without owners stay as they were.
    let owners = rows.iter().any(|x| !x.owner.as_str().is_empty());
    let mut header = vec!["STATUS", "ACCOUNT", "CHECK", "RESOURCE", "DETAILS"];
    if owners {
        header.insert(4, "OWNER");
    }
    let cells: Vec<Vec<&str>> = rows
        .iter()
        .map(|x| {
            let mut cells = vec![x.status, x.account_id, x.check, x.resource, x.details];
            if owners {
                cells.insert(4, x.owner.as_str());
            }
            cells
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for c in &cells {
        for (w, cell) in widths.iter_mut().zip(c) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&cells) {
        let mut text = String::new();
        for (i, (cell, w)) in line.iter().zip(widths.iter().copied()).enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    let failed = rows.iter().filter(|x| x.status == "FAIL").count();
    out.push_str(&format!(
        "{} account(s), {} check(s): {failed} FAIL, {} PASS",
        r.accounts.len(),
        r.checks.len(),
        rows.len() - failed
    ));
    if !r.failures.is_empty() {
        out.push_str(&format!(
            ", {} collector run(s) failed (see stderr)",
            r.failures.len()
        ));
    }
    out.push('\n');
    out
}

fn json(r: &Report) -> Result<String, String> {
    let errors: Vec<serde_json::Value> = r
        .failures
        .iter()
        .map(|f| {
            serde_json::json!({
                "account_id": f.account_id,
                "collector": f.collector,
                "error": f.error.kind(),
                "message": f.error.to_string(),
            })
        })
        .collect();
    let findings: Vec<Row> = r.findings.iter().map(Row::from).collect();
    let doc = serde_json::json!({
        "findings": findings,
        "summary": r.summary,
        "errors": errors,
    });
    let mut text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

fn csv(r: &Report) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if r.findings.is_empty() {
        // The header comes from the first record; without one, write it explicitly.
        w.write_record([
            "account_id",
            "check",
            "resource",
            "status",
            "details",
            "cis",
            "severity",
            "owner",
        ])
        .map_err(|e| e.to_string())?;
    }
    for f in &r.findings {
        w.serialize(Row::from(f)).map_err(|e| e.to_string())?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}
