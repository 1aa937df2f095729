//! EC2 collector: every instance but terminated ones, per region, with its metadata options and
//! public IPv4.
//!
//! Regions are collected concurrently ([`regions::collect`]). A region that fails (not enabled,
//! denied by an SCP) keeps its last good instances, shows in `infraaudit_ec2_region_success`, and
//! does not fail the others; the run fails only when no region answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{Check, CheckSpec, Collector, Data, Finding, Owner, Severity, Spec, regions};
use crate::aws::AccountSession;
use crate::aws::ec2::{Ec2Api, Ec2Client, Instance};
use crate::config::{ChecksConfig, CollectorConfig};
use crate::error::Error;
use crate::expo::{Family, Recorder, flag};
use crate::owners::{Kind, Tagging};

pub const NAME: &str = "ec2";

pub static SPEC: Spec = Spec {
    name: NAME,
    defaults: || {
        crate::config::defaults_of(&CollectorConfig {
            enabled: true,
            interval: std::time::Duration::from_secs(15 * 60),
            timeout: std::time::Duration::from_secs(5 * 60),
        })
    },
    load: crate::config::load_common_section,
    permissions: &["ec2:DescribeInstances", "ec2:DescribeRegions"],
    build: |session, _| Arc::new(Ec2Collector::new(session)),
    families: FAMILIES,
    encode,
    live_families: &[],
    encode_live: |_, _, _, _| {},
    checks: CHECKS,
    findings,
    user_owners: None,
};

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
    /// Which labels the instances' info series carry.
    pub tagging: Arc<Tagging>,
}

/// Each region's last good instances.
pub type RegionCache = regions::Cache<Vec<Instance>>;

pub struct Ec2Collector {
    client: Ec2Client,
    /// Empty: the account's enabled regions, asked at every run.
    regions: Vec<String>,
    max_concurrency: usize,
    last: Mutex<RegionCache>,
    tagging: Arc<Tagging>,
}

impl Ec2Collector {
    pub fn new(session: &Arc<AccountSession>) -> Self {
        Self {
            client: session.ec2(),
            regions: session.account.regions.clone(),
            max_concurrency: session.max_concurrency(),
            last: Mutex::new(HashMap::new()),
            tagging: session.account.tagging.clone(),
        }
    }
}

/// The instances of `regions` (or of the enabled regions), `max_concurrency` regions at a time
/// (see [`regions::collect`]).
pub async fn collect(
    api: &impl Ec2Api,
    regions: &[String],
    last: &Mutex<RegionCache>,
    max_concurrency: usize,
    tagging: &Arc<Tagging>,
) -> Result<Ec2Data, Error> {
    let out = regions::collect(api, regions, last, max_concurrency, |region| async move {
        let mut instances = api.instances(&region).await?;
        // Only the owner and the allowlisted tags are kept.
        for i in &mut instances {
            let tags = std::mem::take(&mut i.tags);
            i.tagged = tagging.resolve(
                Kind::Ec2Instance,
                tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
        }
        Ok(instances)
    })
    .await?;
    let regions = out
        .into_iter()
        .map(|r| RegionRecord {
            region: r.region,
            success: r.success,
            instances: r.data.unwrap_or_default(),
        })
        .collect();
    Ok(Ec2Data {
        regions,
        tagging: tagging.clone(),
    })
}

impl Collector for Ec2Collector {
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
                &self.tagging,
            );
            let data: Arc<Data> = Arc::new(data.await?);
            Ok(data)
        })
    }
}

macro_rules! refreshed {
    () => {
        "Instances in every state but terminated, refreshed in the background every {every}"
    };
}

const IMDSV2_REQUIRED: Family<'static> = Family::gauge(
    "ec2_instance_imdsv2_required",
    concat!(
        "1 if the instance requires IMDSv2 (HttpTokens required, or metadata endpoint off), 0 if it allows IMDSv1. ",
        refreshed!(),
        "."
    ),
    None,
);
const PUBLIC_IP: Family<'static> = Family::gauge(
    "ec2_instance_public_ip",
    concat!(
        "1 if the instance has a public IPv4 address, 0 if not. ",
        refreshed!(),
        "."
    ),
    None,
);
const INSTANCE: Family<'static> = Family::info(
    "ec2_instance",
    concat!(
        "Name tag, state and type of the instance. ",
        refreshed!(),
        "."
    ),
);
const REGION_SUCCESS: Family<'static> = Family::gauge(
    "ec2_region_success",
    "1 if the run behind the data in use listed the region's instances, 0 if it failed there (its instances are then from the last run that did). Refreshed every {every}; a run that fails in every region keeps all the previous data.",
    None,
);

const FAMILIES: &[Family<'static>] = &[IMDSV2_REQUIRED, PUBLIC_IP, INSTANCE, REGION_SUCCESS];

fn encode(account: &str, data: &Data, r: &mut Recorder<'_>) {
    let Some(d) = data.downcast_ref::<Ec2Data>() else {
        return;
    };
    let instances = || {
        d.regions.iter().flat_map(|r| {
            r.instances.iter().map(move |i| {
                let labels = [
                    ("account_id", account),
                    ("region", r.region.as_str()),
                    ("instance_id", i.instance_id.as_str()),
                ];
                (labels, i)
            })
        })
    };
    r.series(
        &IMDSV2_REQUIRED,
        instances().map(|(l, i)| (l, flag(i.imdsv2_required))),
    );
    r.series(&PUBLIC_IP, instances().map(|(l, i)| (l, flag(i.public_ip))));
    r.series(
        &INSTANCE,
        instances().map(|(l, i)| {
            let [acc, region, id] = l;
            let mut labels = vec![
                acc,
                region,
                id,
                ("name", i.name.as_str()),
                ("state", i.state.as_str()),
                ("instance_type", i.instance_type.as_str()),
            ];
            labels.extend(d.tagging.extra_labels(Kind::Ec2Instance, &i.tagged));
            (labels, 1u64)
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

pub fn instance_allows_imdsv1(i: &Instance) -> bool {
    !i.imdsv2_required
}

pub fn instance_has_public_ip(i: &Instance) -> bool {
    i.public_ip
}

fn count_instances(d: &Data, rule: fn(&Instance) -> bool) -> Option<usize> {
    let d = d.downcast_ref::<Ec2Data>()?;
    Some(
        d.regions
            .iter()
            .flat_map(|r| r.instances.iter())
            .filter(|i| rule(i))
            .count(),
    )
}

const CHECKS: &[CheckSpec] = &[
    CheckSpec {
        name: "ec2_imdsv2",
        collector: NAME,
        title: "EC2 instances require IMDSv2",
        severity: Severity::High,
        cis: "5.6",
        describe: |_| "an instance allows IMDSv1".into(),
        failed: |d, _, _| count_instances(d, instance_allows_imdsv1),
    },
    CheckSpec {
        name: "ec2_public_ip",
        collector: NAME,
        title: "EC2 instances have no public IPv4 address",
        severity: Severity::Medium,
        cis: "",
        describe: |_| "an instance has a public IPv4 address".into(),
        failed: |d, _, _| count_instances(d, instance_has_public_ip),
    },
];

pub const IMDSV2: Check = Check(&CHECKS[0]);
pub const PUBLIC_IP_CHECK: Check = Check(&CHECKS[1]);

/// Every instance on each EC2 check.
fn findings(account_id: &str, data: &Data, _now: f64, _c: &ChecksConfig, out: &mut Vec<Finding>) {
    let Some(d) = data.downcast_ref::<Ec2Data>() else {
        return;
    };
    for r in &d.regions {
        for i in r.instances.iter() {
            let resource = format!("{}/{}", r.region, i.instance_id);
            let name = if i.name.is_empty() {
                String::new()
            } else {
                format!(" {:?},", i.name)
            };
            let imds = if i.imdsv2_required {
                "required"
            } else {
                "optional"
            };
            let ip = if i.public_ip {
                "public IPv4"
            } else {
                "no public IPv4"
            };
            for (check, failed, details) in [
                (
                    IMDSV2,
                    instance_allows_imdsv1(i),
                    format!("{name} {}, IMDSv2 {imds}", i.state),
                ),
                (
                    PUBLIC_IP_CHECK,
                    instance_has_public_ip(i),
                    format!("{name} {}, {ip}", i.state),
                ),
            ] {
                out.push(Finding {
                    account_id: account_id.to_owned(),
                    check,
                    resource: resource.clone(),
                    failed,
                    details: details.trim_start().to_owned(),
                    owner: Owner::Own(i.tagged.owner.clone()),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str) -> Instance {
        Instance {
            instance_id: id.into(),
            name: String::new(),
            state: "running".into(),
            instance_type: "t3.micro".into(),
            imdsv2_required: true,
            public_ip: false,
            tags: Vec::new(),
            tagged: Default::default(),
        }
    }

    /// Per region: instances, or an AWS error code; a region not in the table is not enabled.
    /// Answers can change between runs; calls are recorded.
    #[derive(Default)]
    struct Fake {
        enabled: Vec<String>,
        answers: Mutex<HashMap<String, Result<Vec<Instance>, &'static str>>>,
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn set(&self, region: &str, answer: Result<&[&str], &'static str>) {
            let answer = answer.map(|ids| ids.iter().map(|id| instance(id)).collect());
            self.answers.lock().unwrap().insert(region.into(), answer);
        }

        fn take_calls(&self) -> Vec<String> {
            let mut calls = std::mem::take(&mut *self.calls.lock().unwrap());
            calls.sort();
            calls
        }
    }

    fn aws(operation: &'static str, code: &str) -> Error {
        Error::Aws {
            service: "ec2",
            operation,
            code: code.into(),
            message: String::new(),
        }
    }

    impl crate::aws::ec2::Regions for Fake {
        async fn enabled_regions(&self) -> Result<Vec<String>, Error> {
            self.calls.lock().unwrap().push("DescribeRegions".into());
            Ok(self.enabled.clone())
        }
    }

    impl Ec2Api for Fake {
        async fn instances(&self, region: &str) -> Result<Vec<Instance>, Error> {
            self.calls.lock().unwrap().push(region.into());
            match self.answers.lock().unwrap().get(region) {
                Some(Ok(instances)) => Ok(instances.clone()),
                Some(Err(code)) => Err(aws("DescribeInstances", code)),
                None => Err(aws("DescribeInstances", "AuthFailure")),
            }
        }
    }

    fn regions(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    /// (region, success, instance ids) of each record.
    fn seen(data: &Ec2Data) -> Vec<(&str, bool, Vec<&str>)> {
        data.regions
            .iter()
            .map(|r| {
                let ids = r.instances.iter().map(|i| i.instance_id.as_str());
                (r.region.as_str(), r.success, ids.collect())
            })
            .collect()
    }

    #[tokio::test]
    async fn enabled_regions_are_asked_only_when_none_are_configured() {
        let api = Fake {
            enabled: regions(&["eu-west-1", "us-east-1"]),
            ..Fake::default()
        };
        api.set("eu-west-1", Ok(&["i-1"]));
        api.set("us-east-1", Ok(&[]));
        let last = Mutex::default();

        let data = collect(&api, &[], &last, 2, &Default::default())
            .await
            .unwrap();
        assert_eq!(
            api.take_calls(),
            ["DescribeRegions", "eu-west-1", "us-east-1"]
        );
        assert_eq!(data.regions.len(), 2);

        collect(
            &api,
            &regions(&["us-east-1"]),
            &last,
            2,
            &Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(api.take_calls(), ["us-east-1"]);
    }

    #[tokio::test]
    async fn a_failed_region_keeps_its_last_instances() {
        let api = Fake::default();
        let all = regions(&["a", "b", "c"]);
        api.set("a", Ok(&["i-a1"]));
        api.set("b", Ok(&["i-b1", "i-b2"]));
        api.set("c", Ok(&["i-c1"]));
        let last = Mutex::default();
        collect(&api, &all, &last, 3, &Default::default())
            .await
            .unwrap();

        api.set("a", Ok(&["i-a2"]));
        api.set("b", Err("UnauthorizedOperation"));
        api.set("c", Ok(&[]));
        let data = collect(&api, &all, &last, 3, &Default::default())
            .await
            .unwrap();
        assert_eq!(
            seen(&data),
            [
                ("a", true, vec!["i-a2"]),
                ("b", false, vec!["i-b1", "i-b2"]),
                ("c", true, vec![]),
            ]
        );

        // Still failing a run later: still the same last good instances. A region that never
        // answered ("d") has none.
        let data = collect(
            &api,
            &regions(&["a", "b", "d"]),
            &last,
            3,
            &Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            seen(&data),
            [
                ("a", true, vec!["i-a2"]),
                ("b", false, vec!["i-b1", "i-b2"]),
                ("d", false, vec![]),
            ]
        );
    }

    #[tokio::test]
    async fn every_region_failing_fails_the_run_and_keeps_the_cache() {
        let api = Fake::default();
        let all = regions(&["a", "b"]);
        api.set("a", Ok(&["i-a1"]));
        api.set("b", Ok(&["i-b1"]));
        let last = Mutex::default();
        collect(&api, &all, &last, 2, &Default::default())
            .await
            .unwrap();
        let before = last.lock().unwrap().clone();

        api.set("a", Err("RequestLimitExceeded"));
        api.set("b", Err("RequestLimitExceeded"));
        let err = collect(&api, &all, &last, 2, &Default::default())
            .await
            .unwrap_err();
        assert_eq!(err.aws_code(), Some("RequestLimitExceeded"));
        assert_eq!(*last.lock().unwrap(), before);

        // The next good run still has them to fall back on.
        api.set("a", Ok(&[]));
        let data = collect(&api, &all, &last, 2, &Default::default())
            .await
            .unwrap();
        assert_eq!(seen(&data)[1], ("b", false, vec!["i-b1"]));
    }

    #[tokio::test]
    async fn regions_come_out_sorted() {
        let api = Fake::default();
        let given = regions(&["us-west-2", "eu-west-1", "ap-south-1"]);
        for r in &given {
            api.set(r, Ok(&[]));
        }
        let data = collect(&api, &given, &Mutex::default(), 3, &Default::default())
            .await
            .unwrap();
        let got: Vec<_> = data.regions.iter().map(|r| r.region.as_str()).collect();
        assert_eq!(got, ["ap-south-1", "eu-west-1", "us-west-2"]);
    }
}
