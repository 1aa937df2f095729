//! IAM collector, credential-report mode: one report for all users, then ListAccessKeys only for
//! users whose keys are not known yet, to learn the AccessKeyIds the report does not carry.
//!
//! IAM permissions: iam:GenerateCredentialReport, iam:GetCredentialReport, iam:ListAccessKeys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use tokio::time::Instant;

use super::credential_report::{self, CredentialReport, ReportRow};
use super::key_match::{self, ListedKey};
use super::{Collector, CollectorData};
use crate::aws::AccountSession;
use crate::aws::iam::{FetchedReport, IamClient, ReportState};
use crate::config::IamCollectorConfig;
use crate::error::Error;

pub const NAME: &str = "iam";

/// The IAM actions this collector calls, for the documented policy.
pub const PERMISSIONS: &[&str] = &[
    "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
    "iam:ListAccessKeys",
];

#[derive(Debug, Clone, PartialEq)]
pub struct AccessKeyRecord {
    pub user: String,
    pub access_key_id: String,
    /// 1 or 2: the report's column.
    pub slot: u8,
    pub created: DateTime<Utc>,
    pub active: bool,
    pub last_used: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct IamData {
    pub report_generated_at: Option<DateTime<Utc>>,
    pub keys: Vec<AccessKeyRecord>,
}

/// (user, slot, creation time) -> the AccessKeyId, or None for a key deleted since the report.
type KeyCache = HashMap<(String, u8, DateTime<Utc>), Option<String>>;

pub struct IamCollector {
    client: IamClient,
    max_concurrency: usize,
    interval: Duration,
    timeout: Duration,
    report_wait: Duration,
    // Runs of one collector never overlap; the lock is only ever taken between awaits.
    cache: Mutex<KeyCache>,
}

impl IamCollector {
    pub fn new(session: &Arc<AccountSession>, cfg: &IamCollectorConfig) -> Self {
        Self {
            client: session.iam(),
            max_concurrency: session.max_concurrency(),
            interval: cfg.interval,
            timeout: cfg.timeout,
            report_wait: cfg.report_wait,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// GenerateCredentialReport until COMPLETE, then GetCredentialReport, within `report_wait`.
    async fn fetch_report(&self) -> Result<FetchedReport, Error> {
        let deadline = Instant::now() + self.report_wait;
        let mut delay = Duration::from_millis(500);
        let mut generate = true;
        loop {
            let mut ready = true;
            if generate {
                match self.client.generate_credential_report().await {
                    Ok(ReportState::Complete) => generate = false,
                    // Asking for the report at once would only earn ReportInProgress.
                    Ok(ReportState::Pending) => (generate, ready) = (false, false),
                    Err(e) if e.aws_code() == Some("LimitExceeded") => ready = false,
                    Err(e) => return Err(e),
                }
            }
            if ready {
                match self.client.get_credential_report().await {
                    Ok(report) => return Ok(report),
                    Err(e) if e.aws_code() == Some("ReportInProgress") => {}
                    Err(e)
                        if matches!(e.aws_code(), Some("ReportNotPresent" | "ReportExpired")) =>
                    {
                        generate = true
                    }
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() + delay > deadline {
                return Err(Error::ReportTimeout(self.report_wait));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    async fn run(&self) -> Result<CollectorData, Error> {
        let fetched = self.fetch_report().await?;
        let report = credential_report::parse(&fetched.content)?;
        let keys = self.resolve_keys(&report).await?;
        Ok(CollectorData::Iam(IamData {
            report_generated_at: fetched.generated_at,
            keys,
        }))
    }

    /// Each report slot with a key, with its AccessKeyId from the cache or from ListAccessKeys.
    async fn resolve_keys(&self, report: &CredentialReport) -> Result<Vec<AccessKeyRecord>, Error> {
        let old_cache = self
            .cache
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        let mut cache = KeyCache::new();
        let mut keys = Vec::new();
        let mut unknown: Vec<&ReportRow> = Vec::new();

        for row in report.users() {
            let cached: Option<Vec<_>> = row
                .present_keys()
                .map(|(slot, ks)| {
                    let k = (row.user.clone(), slot, ks.last_rotated?);
                    old_cache.get(&k).map(|id| (k, id.clone()))
                })
                .collect();
            match cached {
                Some(entries) if !entries.is_empty() => {
                    for (k, id) in entries {
                        if let Some(id) = &id {
                            keys.extend(record(row, k.1, id));
                        }
                        cache.insert(k, id);
                    }
                }
                Some(_) => {} // no keys
                None => unknown.push(row),
            }
        }

        // Owned inputs: a stream of futures that borrow the report does not satisfy `Send`'s
        // higher-ranked lifetime check.
        let calls: Vec<_> = unknown
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let (client, user) = (self.client.clone(), row.user.clone());
                async move { (i, client.list_access_keys(&user).await) }
            })
            .collect();
        let mut listed: Vec<(usize, Result<Vec<ListedKey>, Error>)> = stream::iter(calls)
            .buffer_unordered(self.max_concurrency)
            .collect()
            .await;
        listed.sort_by_key(|(i, _)| *i);
        let listed = listed.into_iter().map(|(i, r)| (unknown[i], r));

        for (row, result) in listed {
            let listed = match result {
                Ok(l) => l,
                // Deleted since the report was generated: no keys to export.
                Err(e) if e.aws_code() == Some("NoSuchEntity") => Vec::new(),
                Err(e) => {
                    self.restore(old_cache, cache);
                    return Err(e);
                }
            };
            for m in key_match::match_slots(row, &listed) {
                if m.ambiguous {
                    tracing::debug!(user = %row.user, slot = m.slot, "two keys created in the same second with the same status");
                }
                if let Some(id) = &m.key_id {
                    keys.extend(record(row, m.slot, id));
                }
                if let Some(rotated) = row.keys[usize::from(m.slot - 1)].last_rotated {
                    cache.insert((row.user.clone(), m.slot, rotated), m.key_id);
                }
            }
        }
        if let Ok(mut c) = self.cache.lock() {
            *c = cache;
        }
        keys.sort_by(|a, b| (&a.user, a.slot).cmp(&(&b.user, b.slot)));
        Ok(keys)
    }

    /// After a failed run, keep what was known: the old entries plus anything learnt.
    fn restore(&self, mut old: KeyCache, learnt: KeyCache) {
        old.extend(learnt);
        if let Ok(mut c) = self.cache.lock() {
            *c = old;
        }
    }
}

fn record(row: &ReportRow, slot: u8, id: &str) -> Option<AccessKeyRecord> {
    let ks = row.keys.get(usize::from(slot).checked_sub(1)?)?;
    Some(AccessKeyRecord {
        user: row.user.clone(),
        access_key_id: id.to_owned(),
        slot,
        created: ks.last_rotated?,
        active: ks.active,
        last_used: ks.last_used_date,
    })
}

impl Collector for IamCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> BoxFuture<'_, Result<CollectorData, Error>> {
        Box::pin(self.run())
    }
}
