//! EBS collector: whether EBS encryption by default is on, per region (GetEbsEncryptionByDefault).
//!
//! The setting is per account and region: a new volume (and snapshot copy) in a region where it
//! is off is unencrypted unless its creator asks. Regions are collected as in the EC2 collector
//! ([`regions::collect`]): a failed region keeps its last good answer and shows in
//! `infraaudit_ebs_region_success`; the run fails only when no region answered.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::regions::{self, Regional};
use super::{Check, CheckSpec, Collector, Data, Finding, Owner, Severity, Spec};
use crate::aws::AccountSession;
use crate::aws::ec2::{EbsApi, Ec2Client};
use crate::config::{ChecksConfig, CollectorConfig};
use crate::error::Error;
use crate::expo::{Family, Recorder, flag};

pub const NAME: &str = "ebs";

pub static SPEC: Spec = Spec {
    name: NAME,
    defaults: || {
        // The setting is changed rarely, by hand or by an account baseline.
        crate::config::defaults_of(&CollectorConfig {
            enabled: true,
            interval: std::time::Duration::from_secs(60 * 60),
            timeout: std::time::Duration::from_secs(5 * 60),
        })
    },
    load: crate::config::load_common_section,
    permissions: &["ec2:DescribeRegions", "ec2:GetEbsEncryptionByDefault"],
    build: |session, _| Arc::new(EbsCollector::new(session)),
    families: FAMILIES,
    encode,
    live_families: &[],
    encode_live: |_, _, _, _| {},
    checks: CHECKS,
    findings,
    user_owners: None,
};

#[derive(Debug, Clone, Default)]
pub struct EbsData {
    /// Sorted by region; `data` is whether encryption by default is on (None: the region never
    /// answered).
    pub regions: Vec<Regional<bool>>,
}

pub struct EbsCollector {
    client: Ec2Client,
    /// Empty: the account's enabled regions, asked at every run.
    regions: Vec<String>,
    max_concurrency: usize,
    last: Mutex<regions::Cache<bool>>,
}

impl EbsCollector {
    pub fn new(session: &Arc<AccountSession>) -> Self {
        Self {
            client: session.ec2(),
            regions: session.account.regions.clone(),
            max_concurrency: session.max_concurrency(),
            last: Mutex::default(),
        }
    }
}

/// The setting in `regions` (or in the enabled regions), `max_concurrency` regions at a time.
pub async fn collect(
    api: &impl EbsApi,
    regions: &[String],
    last: &Mutex<regions::Cache<bool>>,
    max_concurrency: usize,
) -> Result<EbsData, Error> {
    let regions = regions::collect(api, regions, last, max_concurrency, |region| async move {
        api.ebs_encryption_by_default(&region).await
    })
    .await?;
    Ok(EbsData { regions })
}

impl Collector for EbsCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn collect(&self) -> BoxFuture<'_, Result<Arc<Data>, Error>> {
        Box::pin(async move {
            let data = collect(
                &self.client,
                &self.regions,
                &self.last,
                self.max_concurrency,
            );
            let data: Arc<Data> = Arc::new(data.await?);
            Ok(data)
        })
    }
}

const ENCRYPTION_BY_DEFAULT: Family<'static> = Family::gauge(
    "ebs_encryption_by_default",
    "1 if EBS encryption by default is on in the region, 0 if it is off; absent for a region that has never answered. Refreshed in the background every {every}.",
    None,
);
const REGION_SUCCESS: Family<'static> = Family::gauge(
    "ebs_region_success",
    "1 if the run behind the data in use read the region's EBS encryption setting, 0 if it failed there (its value is then from the last run that did). Refreshed every {every}; a run that fails in every region keeps all the previous data.",
    None,
);

const FAMILIES: &[Family<'static>] = &[ENCRYPTION_BY_DEFAULT, REGION_SUCCESS];

fn encode(account: &str, data: &Data, r: &mut Recorder<'_>) {
    let Some(d) = data.downcast_ref::<EbsData>() else {
        return;
    };
    r.series(
        &ENCRYPTION_BY_DEFAULT,
        d.regions.iter().filter_map(|r| {
            let on = **r.data.as_ref()?;
            Some((
                [("account_id", account), ("region", r.region.as_str())],
                flag(on),
            ))
        }),
    );
    r.series(
        &REGION_SUCCESS,
        d.regions.iter().map(|r| {
            (
                [("account_id", account), ("region", r.region.as_str())],
                flag(r.success),
            )
        }),
    );
}

/// The rule of `ec2_ebs_default_encryption`: a region fails when the setting is off; a region
/// that never answered is unknown (None).
pub fn default_encryption_off(region: &Regional<bool>) -> Option<bool> {
    region.data.as_deref().map(|on| !on)
}

const CHECKS: &[CheckSpec] = &[CheckSpec {
    name: "ec2_ebs_default_encryption",
    collector: NAME,
    title: "EBS encryption by default is enabled in every region",
    severity: Severity::Medium,
    cis: "2.2.1",
    describe: |_| "EBS encryption by default is off in an audited region".into(),
    failed: |d, _, _| {
        let d = d.downcast_ref::<EbsData>()?;
        Some(
            d.regions
                .iter()
                .filter(|r| default_encryption_off(r) == Some(true))
                .count(),
        )
    },
}];

pub const DEFAULT_ENCRYPTION: Check = Check(&CHECKS[0]);

/// Every region that has answered once.
fn findings(account_id: &str, data: &Data, _now: f64, _c: &ChecksConfig, out: &mut Vec<Finding>) {
    let Some(d) = data.downcast_ref::<EbsData>() else {
        return;
    };
    for r in &d.regions {
        let Some(failed) = default_encryption_off(r) else {
            continue;
        };
        let state = if failed { "off" } else { "on" };
        let stale = if r.success {
            ""
        } else {
            " (from the last run that read the region)"
        };
        out.push(Finding {
            account_id: account_id.to_owned(),
            check: DEFAULT_ENCRYPTION,
            resource: r.region.clone(),
            failed,
            details: format!("EBS encryption by default {state}{stale}"),
            owner: Owner::Account,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::aws::ec2::Regions;

    /// Per region: the setting, or an AWS error code (a region not in the table is denied).
    #[derive(Default)]
    struct Fake {
        answers: Mutex<HashMap<String, Result<bool, &'static str>>>,
    }

    impl Regions for Fake {
        async fn enabled_regions(&self) -> Result<Vec<String>, Error> {
            let mut r: Vec<String> = self.answers.lock().unwrap().keys().cloned().collect();
            r.sort();
            Ok(r)
        }
    }

    impl EbsApi for Fake {
        async fn ebs_encryption_by_default(&self, region: &str) -> Result<bool, Error> {
            match self.answers.lock().unwrap().get(region) {
                Some(Ok(on)) => Ok(*on),
                other => Err(Error::Aws {
                    service: "ec2",
                    operation: "GetEbsEncryptionByDefault",
                    code: other
                        .and_then(|a| a.err())
                        .unwrap_or("UnauthorizedOperation")
                        .into(),
                    message: String::new(),
                }),
            }
        }
    }

    fn verdicts(d: &EbsData) -> Vec<(String, bool, bool)> {
        let mut out = Vec::new();
        findings("1", d, 0.0, &ChecksConfig::default(), &mut out);
        out.into_iter()
            .map(|f| (f.resource, f.failed, f.details.contains("last run")))
            .collect()
    }

    #[tokio::test]
    async fn a_region_with_encryption_off_fails_and_a_denied_one_keeps_its_last_answer() {
        let api = Fake::default();
        let set = |r: &str, a| api.answers.lock().unwrap().insert(r.into(), a);
        set("eu-west-1", Ok(true));
        set("us-east-1", Ok(false));
        let last = Mutex::default();
        let d = collect(&api, &[], &last, 2).await.unwrap();
        assert_eq!(
            verdicts(&d),
            [
                ("eu-west-1".into(), false, false),
                ("us-east-1".into(), true, false)
            ]
        );
        assert_eq!(
            (DEFAULT_ENCRYPTION.0.failed)(&d, 0.0, &ChecksConfig::default()),
            Some(1)
        );

        // Denied in us-east-1 now, and a region that never answered: unknown, in neither count.
        set("us-east-1", Err("UnauthorizedOperation"));
        let regions = ["eu-west-1", "us-east-1", "ap-south-1"].map(String::from);
        let d = collect(&api, &regions, &last, 2).await.unwrap();
        assert_eq!(
            verdicts(&d),
            [
                ("eu-west-1".into(), false, false),
                ("us-east-1".into(), true, true)
            ]
        );
        let success: Vec<_> = d
            .regions
            .iter()
            .map(|r| (r.region.as_str(), r.success))
            .collect();
        assert_eq!(
            success,
            [
                ("ap-south-1", false),
                ("eu-west-1", true),
                ("us-east-1", false)
            ]
        );
        assert_eq!(
            (DEFAULT_ENCRYPTION.0.failed)(&d, 0.0, &ChecksConfig::default()),
            Some(1)
        );
    }
}
