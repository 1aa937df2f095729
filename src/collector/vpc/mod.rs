//! VPC collector: every network ACL and security group, per region, and whether they open the
//! remote administration ports (TCP 22, 3389) to anywhere; the rules of each VPC's default
//! security group.
//!
//! Each region costs a paginated DescribeNetworkAcls and a paginated DescribeSecurityGroups (1,000
//! a page), made together. Regions are collected as in the EC2 collector
//! ([`regions::collect`]): a region where either call fails keeps its last good data and shows
//! in `infraaudit_vpc_region_success`; the run fails only when no region answered, or when an
//! ACL or group of another account came back (`account_mismatch`). The rules are in [`rules`].

pub mod rules;

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::regions::{self, Regional};
use super::{Check, CheckSpec, Collector, Data, Finding, Owner, Severity, Spec};
use crate::aws::AccountSession;
use crate::aws::ec2::{Ec2Client, NetworkAcl, SecurityGroup, VpcApi};
use crate::config::{ChecksConfig, CollectorConfig};
use crate::error::Error;
use crate::expo::{Family, Recorder, flag};

pub const NAME: &str = "vpc";

pub static SPEC: Spec = Spec {
    name: NAME,
    defaults: || {
        // Security groups change with deployments: as often as the EC2 collector.
        crate::config::defaults_of(&CollectorConfig {
            enabled: true,
            interval: std::time::Duration::from_secs(15 * 60),
            timeout: std::time::Duration::from_secs(5 * 60),
        })
    },
    load: crate::config::load_common_section,
    permissions: &[
        "ec2:DescribeNetworkAcls",
        "ec2:DescribeRegions",
        "ec2:DescribeSecurityGroups",
    ],
    build: |session, _| Arc::new(VpcCollector::new(session)),
    families: FAMILIES,
    encode,
    live_families: &[],
    encode_live: |_, _, _, _| {},
    checks: CHECKS,
    findings,
    user_owners: None,
};

/// One region's network ACLs and security groups, each sorted by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpcRegion {
    pub network_acls: Vec<NetworkAcl>,
    pub security_groups: Vec<SecurityGroup>,
}

#[derive(Debug, Clone, Default)]
pub struct VpcData {
    /// Sorted by region; `data` is None for a region that has never answered.
    pub regions: Vec<Regional<VpcRegion>>,
}

impl VpcData {
    /// Each region's ACLs, with the region.
    fn network_acls(&self) -> impl Iterator<Item = (&str, &NetworkAcl)> {
        self.regions.iter().flat_map(|r| {
            let acls = r.data.as_deref().map_or(&[][..], |d| &d.network_acls);
            acls.iter().map(move |a| (r.region.as_str(), a))
        })
    }

    /// Each region's security groups, with the region.
    fn security_groups(&self) -> impl Iterator<Item = (&str, &SecurityGroup)> {
        self.regions.iter().flat_map(|r| {
            let groups = r.data.as_deref().map_or(&[][..], |d| &d.security_groups);
            groups.iter().map(move |g| (r.region.as_str(), g))
        })
    }
}

pub struct VpcCollector {
    client: Ec2Client,
    /// Empty: the account's enabled regions, asked at every run.
    regions: Vec<String>,
    max_concurrency: usize,
    last: Mutex<regions::Cache<VpcRegion>>,
}

impl VpcCollector {
    pub fn new(session: &Arc<AccountSession>) -> Self {
        Self {
            client: session.ec2(),
            regions: session.account.regions.clone(),
            max_concurrency: session.max_concurrency(),
            last: Mutex::default(),
        }
    }
}

/// One region: both listings, or the error of the first that failed (another account's data
/// first, since it fails the whole run).
async fn region(api: &impl VpcApi, region: &str) -> Result<VpcRegion, Error> {
    let (acls, groups) =
        futures_util::future::join(api.network_acls(region), api.security_groups(region)).await;
    match (acls, groups) {
        (Ok(network_acls), Ok(security_groups)) => Ok(VpcRegion {
            network_acls,
            security_groups,
        }),
        (Err(e @ Error::AccountMismatch { .. }), _)
        | (_, Err(e @ Error::AccountMismatch { .. })) => Err(e),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// The ACLs and groups of `regions` (or of the enabled regions), `max_concurrency` regions at a
/// time.
pub async fn collect(
    api: &impl VpcApi,
    regions: &[String],
    last: &Mutex<regions::Cache<VpcRegion>>,
    max_concurrency: usize,
) -> Result<VpcData, Error> {
    let regions = regions::collect(api, regions, last, max_concurrency, |r| async move {
        region(api, &r).await
    })
    .await?;
    Ok(VpcData { regions })
}

impl Collector for VpcCollector {
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

macro_rules! refreshed {
    () => {
        "Refreshed in the background every {every}"
    };
}

const NACL_ADMIN_PORTS_OPEN: Family<'static> = Family::gauge(
    "vpc_network_acl_admin_ports_open",
    concat!(
        "1 if the network ACL allows ingress from anywhere (0.0.0.0/0 or ::/0) to TCP port 22 or 3389, its entries evaluated in rule number order as AWS does, 0 if not. ",
        refreshed!(),
        "."
    ),
    None,
);
const SG_ADMIN_PORTS_OPEN: Family<'static> = Family::gauge(
    "vpc_security_group_admin_ports_open",
    concat!(
        "1 if the security group allows ingress from anywhere (0.0.0.0/0 or ::/0) to TCP port 22 or 3389, through a port range or all traffic included, 0 if not. ",
        refreshed!(),
        "."
    ),
    None,
);
const DEFAULT_GROUP_RULES: Family<'static> = Family::gauge(
    "vpc_default_security_group_rules",
    concat!(
        "Inbound (ingress) or outbound (egress) rules of the VPC's default security group, each CIDR range, prefix list and referenced group counted as one rule as AWS counts them. ",
        refreshed!(),
        "."
    ),
    None,
);
const REGION_SUCCESS: Family<'static> = Family::gauge(
    "vpc_region_success",
    "1 if the run behind the data in use listed the region's network ACLs and security groups, 0 if it failed there (its ACLs and groups are then from the last run that did). Refreshed every {every}; a run that fails in every region keeps all the previous data.",
    None,
);

const FAMILIES: &[Family<'static>] = &[
    NACL_ADMIN_PORTS_OPEN,
    SG_ADMIN_PORTS_OPEN,
    DEFAULT_GROUP_RULES,
    REGION_SUCCESS,
];

fn encode(account: &str, data: &Data, r: &mut Recorder<'_>) {
    let Some(d) = data.downcast_ref::<VpcData>() else {
        return;
    };
    r.series(
        &NACL_ADMIN_PORTS_OPEN,
        d.network_acls().map(|(region, a)| {
            let labels = [
                ("account_id", account),
                ("region", region),
                ("vpc_id", a.vpc_id.as_str()),
                ("network_acl_id", a.network_acl_id.as_str()),
            ];
            (labels, flag(!rules::nacl_admin_openings(a).is_empty()))
        }),
    );
    let groups = || {
        d.security_groups().map(|(region, g)| {
            let labels = [
                ("account_id", account),
                ("region", region),
                ("vpc_id", g.vpc_id.as_str()),
                ("security_group_id", g.group_id.as_str()),
            ];
            (labels, g)
        })
    };
    r.series(
        &SG_ADMIN_PORTS_OPEN,
        groups().map(|(l, g)| (l, flag(!rules::security_group_admin_openings(g).is_empty()))),
    );
    r.series(
        &DEFAULT_GROUP_RULES,
        groups()
            .filter(|(_, g)| rules::is_default_group(g))
            .flat_map(|([acc, region, vpc, id], g)| {
                [("ingress", &g.ingress), ("egress", &g.egress)].map(|(direction, p)| {
                    let labels = [acc, region, vpc, id, ("direction", direction)];
                    (labels, rules::rule_count(p) as f64)
                })
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

const CHECKS: &[CheckSpec] = &[
    CheckSpec {
        name: "vpc_nacl_admin_ports_open",
        collector: NAME,
        title: "No network ACL allows ingress from anywhere to remote administration ports",
        severity: Severity::Medium,
        cis: "5.1",
        describe: |_| {
            "a network ACL allows ingress from 0.0.0.0/0 or ::/0 to TCP 22 or 3389".into()
        },
        failed: |d, _, _| {
            let d = d.downcast_ref::<VpcData>()?;
            Some(
                d.network_acls()
                    .filter(|(_, a)| !rules::nacl_admin_openings(a).is_empty())
                    .count(),
            )
        },
    },
    CheckSpec {
        name: "ec2_security_group_admin_ports_open",
        collector: NAME,
        title: "No security group allows ingress from anywhere to remote administration ports",
        severity: Severity::High,
        cis: "5.2,5.3",
        describe: |_| {
            "a security group allows ingress from 0.0.0.0/0 or ::/0 to TCP 22 or 3389".into()
        },
        failed: |d, _, _| {
            let d = d.downcast_ref::<VpcData>()?;
            Some(
                d.security_groups()
                    .filter(|(_, g)| !rules::security_group_admin_openings(g).is_empty())
                    .count(),
            )
        },
    },
    CheckSpec {
        name: "vpc_default_security_group_open",
        collector: NAME,
        title: "The default security group of every VPC restricts all traffic",
        severity: Severity::Medium,
        cis: "5.4",
        describe: |_| "a VPC's default security group has an inbound or outbound rule".into(),
        failed: |d, _, _| {
            let d = d.downcast_ref::<VpcData>()?;
            Some(
                d.security_groups()
                    .filter(|(_, g)| rules::default_group_open(g) == Some(true))
                    .count(),
            )
        },
    },
];

pub const NACL_ADMIN_PORTS: Check = Check(&CHECKS[0]);
pub const SECURITY_GROUP_ADMIN_PORTS: Check = Check(&CHECKS[1]);
pub const DEFAULT_SECURITY_GROUP: Check = Check(&CHECKS[2]);

fn openings(vpc: &str, openings: &[rules::Opening]) -> String {
    if openings.is_empty() {
        return format!("{vpc}: no ingress from anywhere to TCP 22 or 3389");
    }
    let list: Vec<String> = openings.iter().map(ToString::to_string).collect();
    format!("{vpc}: {}", list.join("; "))
}

/// Every ACL and group on the admin-ports checks, and every default group on its own.
fn findings(account_id: &str, data: &Data, _now: f64, _c: &ChecksConfig, out: &mut Vec<Finding>) {
    let Some(d) = data.downcast_ref::<VpcData>() else {
        return;
    };
    let mut push = |check, resource: String, failed, details| {
        out.push(Finding {
            account_id: account_id.to_owned(),
            check,
            resource,
            failed,
            details,
            // Network ACLs and security groups: their tags are not read.
            owner: Owner::Account,
        });
    };
    for (region, a) in d.network_acls() {
        let open = rules::nacl_admin_openings(a);
        let vpc = if a.is_default {
            format!("{} (default ACL)", a.vpc_id)
        } else {
            a.vpc_id.clone()
        };
        push(
            NACL_ADMIN_PORTS,
            format!("{region}/{}", a.network_acl_id),
            !open.is_empty(),
            openings(&vpc, &open),
        );
    }
    for (region, g) in d.security_groups() {
        let resource = format!("{region}/{}", g.group_id);
        let open = rules::security_group_admin_openings(g);
        let named = format!("{:?} in {}", g.group_name, g.vpc_id);
        push(
            SECURITY_GROUP_ADMIN_PORTS,
            resource.clone(),
            !open.is_empty(),
            openings(&named, &open),
        );
        if let Some(failed) = rules::default_group_open(g) {
            push(
                DEFAULT_SECURITY_GROUP,
                resource,
                failed,
                format!(
                    "{}: {} inbound and {} outbound rules",
                    g.vpc_id,
                    rules::rule_count(&g.ingress),
                    rules::rule_count(&g.egress)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::aws::ec2::{AclEntry, Permission, Regions};

    fn aws(operation: &'static str, code: &str) -> Error {
        Error::Aws {
            service: "ec2",
            operation,
            code: code.into(),
            message: String::new(),
        }
    }

    /// Per region and call: an answer, or an error; a missing answer is UnauthorizedOperation.
    #[derive(Default)]
    struct Fake {
        acls: Mutex<HashMap<String, Result<Vec<NetworkAcl>, &'static str>>>,
        groups: Mutex<HashMap<String, Result<Vec<SecurityGroup>, &'static str>>>,
    }

    /// "mismatch" as the error stands for another account's data.
    fn error(operation: &'static str, code: Option<&&'static str>) -> Error {
        match code {
            Some(&"mismatch") => Error::AccountMismatch {
                expected: "111111111111".into(),
                found: "222222222222".into(),
                evidence: "EC2 (OwnerId)",
            },
            Some(code) => aws(operation, code),
            None => aws(operation, "UnauthorizedOperation"),
        }
    }

    impl Regions for Fake {
        async fn enabled_regions(&self) -> Result<Vec<String>, Error> {
            Err(aws("DescribeRegions", "UnauthorizedOperation"))
        }
    }

    impl VpcApi for Fake {
        async fn network_acls(&self, region: &str) -> Result<Vec<NetworkAcl>, Error> {
            match self.acls.lock().unwrap().get(region) {
                Some(Ok(a)) => Ok(a.clone()),
                other => Err(error(
                    "DescribeNetworkAcls",
                    other.and_then(|o| o.as_ref().err()),
                )),
            }
        }

        async fn security_groups(&self, region: &str) -> Result<Vec<SecurityGroup>, Error> {
            match self.groups.lock().unwrap().get(region) {
                Some(Ok(g)) => Ok(g.clone()),
                other => Err(error(
                    "DescribeSecurityGroups",
                    other.and_then(|o| o.as_ref().err()),
                )),
            }
        }
    }

    fn open_acl(id: &str) -> NetworkAcl {
        NetworkAcl {
            network_acl_id: id.into(),
            vpc_id: "vpc-1".into(),
            is_default: true,
            entries: vec![AclEntry {
                rule_number: 100,
                egress: false,
                allow: true,
                protocol: "-1".into(),
                ports: None,
                cidr_block: Some("0.0.0.0/0".into()),
                ipv6_cidr_block: None,
            }],
        }
    }

    fn group(id: &str, name: &str, ingress: Vec<Permission>) -> SecurityGroup {
        SecurityGroup {
            group_id: id.into(),
            group_name: name.into(),
            vpc_id: "vpc-1".into(),
            ingress,
            egress: Vec::new(),
        }
    }

    fn ssh_from_anywhere() -> Permission {
        Permission {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            ipv4_ranges: vec!["0.0.0.0/0".into()],
            ..Permission::default()
        }
    }

    fn regions(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_owned()).collect()
    }

    /// (check, resource, failed) of every finding.
    fn verdicts(d: &VpcData) -> Vec<(&'static str, String, bool)> {
        let mut out = Vec::new();
        findings("1", d, 0.0, &ChecksConfig::default(), &mut out);
        out.into_iter()
            .map(|f| (f.check.name(), f.resource, f.failed))
            .collect()
    }

    #[tokio::test]
    async fn findings_and_counts_agree_and_a_denied_call_fails_only_its_region() {
        let api = Fake::default();
        api.acls
            .lock()
            .unwrap()
            .insert("eu-west-1".into(), Ok(vec![open_acl("acl-1")]));
        api.groups.lock().unwrap().insert(
            "eu-west-1".into(),
            Ok(vec![
                group("sg-1", "default", Vec::new()),
                group("sg-2", "web", vec![ssh_from_anywhere()]),
            ]),
        );
        // us-east-1: the ACLs answer, the groups are denied.
        api.acls
            .lock()
            .unwrap()
            .insert("us-east-1".into(), Ok(Vec::new()));
        let last = Mutex::default();
        let d = collect(&api, &regions(&["eu-west-1", "us-east-1"]), &last, 2)
            .await
            .unwrap();
        assert_eq!(
            d.regions
                .iter()
                .map(|r| (r.region.as_str(), r.success))
                .collect::<Vec<_>>(),
            [("eu-west-1", true), ("us-east-1", false)]
        );
        assert_eq!(
            verdicts(&d),
            [
                ("vpc_nacl_admin_ports_open", "eu-west-1/acl-1".into(), true),
                (
                    "ec2_security_group_admin_ports_open",
                    "eu-west-1/sg-1".into(),
                    false
                ),
                (
                    "vpc_default_security_group_open",
                    "eu-west-1/sg-1".into(),
                    false
                ),
                (
                    "ec2_security_group_admin_ports_open",
                    "eu-west-1/sg-2".into(),
                    true
                ),
            ]
        );
        let c = ChecksConfig::default();
        for (check, want) in [
            (NACL_ADMIN_PORTS, 1),
            (SECURITY_GROUP_ADMIN_PORTS, 1),
            (DEFAULT_SECURITY_GROUP, 0),
        ] {
            assert_eq!((check.0.failed)(&d, 0.0, &c), Some(want), "{check:?}");
        }

        // Denied everywhere now: the run fails, and the next good run still has eu-west-1's
        // last good data where it fails.
        api.acls.lock().unwrap().clear();
        let err = collect(&api, &regions(&["eu-west-1", "us-east-1"]), &last, 2)
            .await
            .unwrap_err();
        assert_eq!(err.aws_code(), Some("UnauthorizedOperation"));
        api.acls
            .lock()
            .unwrap()
            .insert("us-east-1".into(), Ok(Vec::new()));
        api.groups
            .lock()
            .unwrap()
            .insert("us-east-1".into(), Ok(Vec::new()));
        let d = collect(&api, &regions(&["eu-west-1", "us-east-1"]), &last, 2)
            .await
            .unwrap();
        assert!(!d.regions[0].success);
        assert_eq!(verdicts(&d).len(), 4);
    }

    #[tokio::test]
    async fn another_accounts_group_fails_the_run_even_when_the_acls_are_denied() {
        let api = Fake::default();
        api.acls.lock().unwrap().insert("a".into(), Ok(Vec::new()));
        api.groups
            .lock()
            .unwrap()
            .insert("a".into(), Ok(Vec::new()));
        api.acls
            .lock()
            .unwrap()
            .insert("b".into(), Err("UnauthorizedOperation"));
        api.groups
            .lock()
            .unwrap()
            .insert("b".into(), Err("mismatch"));
        let err = collect(&api, &regions(&["a", "b"]), &Mutex::default(), 2)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "account_mismatch");
    }

    #[test]
    fn every_group_is_encoded_and_counted() {
        let mut default = group("sg-d", "default", vec![ssh_from_anywhere()]);
        default.egress.push(Permission {
            protocol: "-1".into(),
            ipv4_ranges: vec!["0.0.0.0/0".into()],
            ipv6_ranges: vec!["::/0".into()],
            ..Permission::default()
        });
        let d = VpcData {
            regions: vec![Regional {
                region: "eu-west-1".into(),
                success: true,
                data: Some(Arc::new(VpcRegion {
                    network_acls: Vec::new(),
                    security_groups: vec![default, group("sg-w", "web", Vec::new())],
                })),
            }],
        };
        let recorded = SPEC.record("1", Arc::new(d));
        let data = recorded.data.downcast_ref::<VpcData>().unwrap();
        let c = ChecksConfig::default();
        assert_eq!((DEFAULT_SECURITY_GROUP.0.failed)(data, 0.0, &c), Some(1));
        assert_eq!(
            (SECURITY_GROUP_ADMIN_PORTS.0.failed)(data, 0.0, &c),
            Some(1)
        );
    }
}
