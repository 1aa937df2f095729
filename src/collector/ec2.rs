//! EC2 collector: every instance but terminated ones, per region, with its metadata options and
//! public IPv4.
//!
//! Regions are collected concurrently. A region that fails (not enabled, denied by an SCP) keeps
//! its last good instances, shows in `infraaudit_ec2_region_success`, and does not fail the
//! others; the run fails only when no region answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};

use super::{Collector, CollectorData};
use crate::aws::AccountSession;
use crate::aws::ec2::{Ec2Api, Ec2Client, Instance};
use crate::config::CollectorConfig;
use crate::error::Error;

pub const NAME: &str = "ec2";

/// The IAM actions this collector calls, for the documented policy.
pub const PERMISSIONS: &[&str] = &["ec2:DescribeInstances", "ec2:DescribeRegions"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionRecord {
    pub region: String,
    /// False when this run could not list the region; `instances` are then the last good ones.
    pub success: bool,
    pub instances: Arc<Vec<Instance>>,
}

#[derive(Debug, Clone, Default)]
pub struct Ec2Data {
    /// Sorted by region.
    pub regions: Vec<RegionRecord>,
}

/// Each region's last good instances.
pub type RegionCache = HashMap<String, Arc<Vec<Instance>>>;

pub struct Ec2Collector {
    client: Ec2Client,
    /// Empty: the account's enabled regions, asked at every run.
    regions: Vec<String>,
    max_concurrency: usize,
    interval: Duration,
    timeout: Duration,
    last: Mutex<RegionCache>,
}

impl Ec2Collector {
    pub fn new(session: &Arc<AccountSession>, cfg: &CollectorConfig) -> Self {
        Self {
            client: session.ec2(),
            regions: session.account.regions.clone(),
            max_concurrency: session.max_concurrency(),
            interval: cfg.interval,
            timeout: cfg.timeout,
            last: Mutex::new(HashMap::new()),
        }
    }
}

/// The instances of `regions` (or of the enabled regions), `max_concurrency` regions at a time.
pub async fn collect(
    api: &impl Ec2Api,
    regions: &[String],
    last: &Mutex<RegionCache>,
    max_concurrency: usize,
) -> Result<Ec2Data, Error> {
    let regions = if regions.is_empty() {
        api.enabled_regions().await?
    } else {
        regions.to_vec()
    };
    let mut results = stream::iter(regions)
        .map(|region| async move {
            let r = api.instances(&region).await;
            (region, r)
        })
        .buffer_unordered(max_concurrency);
    let previous = last.lock().map(|l| l.clone()).unwrap_or_default();
    let mut fresh = RegionCache::new();
    let mut out = Vec::new();
    let mut first_error = None;
    while let Some((region, result)) = results.next().await {
        match result {
            Ok(instances) => {
                let instances = Arc::new(instances);
                fresh.insert(region.clone(), instances.clone());
                out.push(RegionRecord {
                    region,
                    success: true,
                    instances,
                });
            }
            Err(e) => {
                tracing::warn!(%region, error.kind = e.kind(), error = %e, "region failed; keeping its last good instances");
                let instances = previous.get(&region).cloned().unwrap_or_default();
                fresh.insert(region.clone(), instances.clone());
                out.push(RegionRecord {
                    region,
                    success: false,
                    instances,
                });
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        if out.iter().all(|r| !r.success) {
            return Err(e);
        }
    }
    if let Ok(mut l) = last.lock() {
        *l = fresh;
    }
    out.sort_by(|a, b| a.region.cmp(&b.region));
    Ok(Ec2Data { regions: out })
}

impl Collector for Ec2Collector {
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
        Box::pin(async move {
            let data = collect(
                &self.client,
                &self.regions,
                &self.last,
                self.max_concurrency,
            );
            Ok(CollectorData::Ec2(data.await?))
        })
    }
}
