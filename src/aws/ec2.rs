//! The EC2 calls of the regional collectors (ec2, ebs, vpc), each within the account's
//! concurrency limit.

use aws_config::{Region, SdkConfig};
use aws_sdk_ec2::types::{
    Filter, HttpTokensState, InstanceMetadataEndpointState, IpPermission, RuleAction,
};

use super::{CountCalls, Limiter, PerRegion, aws_error, home_region, retry_partition};
use crate::error::Error;

/// One instance, as the EC2 collector exports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub instance_id: String,
    /// The `Name` tag, or empty.
    pub name: String,
    pub state: String,
    pub instance_type: String,
    /// HttpTokens is `required`, or the metadata endpoint is disabled: IMDSv1 cannot be used.
    pub imdsv2_required: bool,
    pub public_ip: bool,
    /// Every tag as DescribeInstances lists it; the collector turns them into `tagged` and
    /// drops them.
    pub tags: Vec<(String, String)>,
    /// Its owner and allowlisted tags.
    pub tagged: crate::owners::Tagged,
}

/// One network ACL, as the vpc collector reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAcl {
    pub network_acl_id: String,
    pub vpc_id: String,
    /// The VPC's default network ACL.
    pub is_default: bool,
    /// In AWS's order (the rules sort them by number).
    pub entries: Vec<AclEntry>,
}

/// One entry (rule) of a network ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    /// 1 to 32766; 32767 is the `*` rule that denies whatever no other rule matched.
    pub rule_number: i32,
    /// True for an outbound rule.
    pub egress: bool,
    /// True for `allow`, false for `deny`.
    pub allow: bool,
    /// The IP protocol number as AWS gives it: `6` TCP, `17` UDP, `-1` all.
    pub protocol: String,
    /// The port range (inclusive) for TCP and UDP; None for other protocols.
    pub ports: Option<(i32, i32)>,
    /// The IPv4 source (ingress) or destination (egress), or None for an IPv6 rule.
    pub cidr_block: Option<String>,
    pub ipv6_cidr_block: Option<String>,
}

/// One security group, as the vpc collector reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    pub group_id: String,
    pub group_name: String,
    pub vpc_id: String,
    /// Inbound permissions (IpPermissions).
    pub ingress: Vec<Permission>,
    /// Outbound permissions (IpPermissionsEgress).
    pub egress: Vec<Permission>,
}

/// One IpPermission: a protocol and port range, and the sources (or destinations) it allows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permission {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, a protocol number, or `-1` for all traffic.
    pub protocol: String,
    /// Inclusive; None when AWS gives none (all traffic, or every port).
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub ipv4_ranges: Vec<String>,
    pub ipv6_ranges: Vec<String>,
    /// Prefix lists and security groups (group pairs) referenced: counted, not named.
    pub prefix_lists: usize,
    pub group_pairs: usize,
}

/// Listing the account's enabled regions, which every regional collector may need.
pub trait Regions: Sync {
    /// The regions enabled for the account (opted in, or not needing it).
    fn enabled_regions(&self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
}

/// The EC2 collector's call, apart so that its handling of failing regions can be tested.
pub trait Ec2Api: Regions {
    /// Every instance in `region` but terminated ones.
    fn instances(&self, region: &str) -> impl Future<Output = Result<Vec<Instance>, Error>> + Send;
}

/// The EBS collector's call.
pub trait EbsApi: Regions {
    /// Whether EBS encryption by default is on in `region` (GetEbsEncryptionByDefault).
    fn ebs_encryption_by_default(
        &self,
        region: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// The VPC collector's calls.
pub trait VpcApi: Regions {
    /// Every network ACL in `region`, sorted by id.
    fn network_acls(
        &self,
        region: &str,
    ) -> impl Future<Output = Result<Vec<NetworkAcl>, Error>> + Send;
    /// Every security group in `region`, sorted by id.
    fn security_groups(
        &self,
        region: &str,
    ) -> impl Future<Output = Result<Vec<SecurityGroup>, Error>> + Send;
}

/// Every state but `terminated`: a terminated instance is gone and must not be exported.
const LIVE_STATES: [&str; 5] = ["pending", "running", "shutting-down", "stopping", "stopped"];

pub struct Ec2Client {
    sdk: SdkConfig,
    counter: CountCalls,
    limiter: Limiter,
    regional: PerRegion<aws_sdk_ec2::Client>,
}

impl Ec2Client {
    pub(super) fn new(sdk: SdkConfig, counter: CountCalls, limiter: Limiter) -> Self {
        Self {
            sdk,
            counter,
            limiter,
            regional: PerRegion::new(),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_ec2::Client {
        self.regional.get(region, || {
            let conf = aws_sdk_ec2::config::Builder::from(&self.sdk)
                .region(Region::new(region.to_owned()))
                .retry_partition(retry_partition(
                    "ec2",
                    region,
                    &self.counter.identity.account_id,
                ))
                .interceptor(self.counter.clone())
                .retry_classifier(self.counter.retry_classifier())
                .build();
            aws_sdk_ec2::Client::from_conf(conf)
        })
    }
}

impl Regions for Ec2Client {
    async fn enabled_regions(&self) -> Result<Vec<String>, Error> {
        let out = self
            .limiter
            .run(|| {
                self.client(home_region(&self.sdk))
                    .describe_regions()
                    .send()
            })
            .await
            .map_err(|e| aws_error("ec2", "DescribeRegions", e))?;
        let mut regions: Vec<String> = out
            .regions()
            .iter()
            .filter_map(|r| r.region_name().map(str::to_owned))
            .collect();
        regions.sort();
        Ok(regions)
    }
}

impl Ec2Api for Ec2Client {
    async fn instances(&self, region: &str) -> Result<Vec<Instance>, Error> {
        let client = self.client(region);
        let state_filter = Filter::builder()
            .name("instance-state-name")
            .set_values(Some(LIVE_STATES.iter().map(|s| (*s).to_owned()).collect()))
            .build();
        let mut instances = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = {
                self.limiter
                    .run(|| {
                        client
                            .describe_instances()
                            .filters(state_filter.clone())
                            .max_results(1000)
                            .set_next_token(token.take())
                            .send()
                    })
                    .await
                    .map_err(|e| aws_error("ec2", "DescribeInstances", e))?
            };
            // Instances are filed under the account whose credentials listed them only when
            // each reservation says it is that account's.
            let identity = &self.counter.identity;
            for r in out.reservations() {
                let owner = r.owner_id().unwrap_or("(none)");
                if owner != identity.account_id() {
                    return Err(identity.mismatch(owner, "EC2 DescribeInstances (OwnerId)"));
                }
            }
            for i in out.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = i.instance_id() else { continue };
                let state = i
                    .state()
                    .and_then(|s| s.name())
                    .map_or("unknown", |s| s.as_str());
                // The filter already does this; a second guard costs nothing.
                if state == "terminated" {
                    continue;
                }
                let meta = i.metadata_options();
                let imdsv2_required = meta.is_some_and(|m| {
                    m.http_tokens() == Some(&HttpTokensState::Required)
                        || m.http_endpoint() == Some(&InstanceMetadataEndpointState::Disabled)
                });
                let name = i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("Name"))
                    .and_then(|t| t.value())
                    .unwrap_or_default();
                instances.push(Instance {
                    instance_id: id.to_owned(),
                    name: name.to_owned(),
                    state: state.to_owned(),
                    instance_type: i
                        .instance_type()
                        .map_or("unknown", |t| t.as_str())
                        .to_owned(),
                    imdsv2_required,
                    public_ip: i.public_ip_address().is_some_and(|ip| !ip.is_empty()),
                    tags: i
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                        .collect(),
                    tagged: Default::default(),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(instances)
    }
}

impl EbsApi for Ec2Client {
    async fn ebs_encryption_by_default(&self, region: &str) -> Result<bool, Error> {
        let client = self.client(region);
        let out = self
            .limiter
            .run(|| client.get_ebs_encryption_by_default().send())
            .await
            .map_err(|e| aws_error("ec2", "GetEbsEncryptionByDefault", e))?;
        // AWS always sends it; were it absent, off is the setting's own default.
        Ok(out.ebs_encryption_by_default().unwrap_or(false))
    }
}

const ACL_OWNER: &str = "EC2 DescribeNetworkAcls (OwnerId)";
const SG_OWNER: &str = "EC2 DescribeSecurityGroups (OwnerId)";

/// Whether an ACL or a group is this account's, to be filed under it. One another account owns
/// (a shared VPC shows its owner's ACLs to participants; groups can be shared) is that account's
/// to audit: skipped, and remembered in `foreign` (an answer of nothing but those is not this
/// account's answer at all). No owner is a mismatch.
fn owned(
    owner: Option<&str>,
    foreign: &mut Option<String>,
    identity: &super::AccountIdentity,
    evidence: &'static str,
) -> Result<bool, Error> {
    match owner {
        Some(o) if o == identity.account_id() => Ok(true),
        Some(o) if !o.is_empty() => {
            foreign.get_or_insert_with(|| o.to_owned());
            Ok(false)
        }
        _ => Err(identity.mismatch("(none)", evidence)),
    }
}

impl VpcApi for Ec2Client {
    async fn network_acls(&self, region: &str) -> Result<Vec<NetworkAcl>, Error> {
        let client = self.client(region);
        let identity = &self.counter.identity;
        let mut acls = Vec::new();
        let mut foreign: Option<String> = None;
        let mut token: Option<String> = None;
        loop {
            let sent = token.take();
            let out = self
                .limiter
                .run(|| {
                    client
                        .describe_network_acls()
                        .max_results(1000)
                        .set_next_token(sent.clone())
                        .send()
                })
                .await
                .map_err(|e| aws_error("ec2", "DescribeNetworkAcls", e))?;
            for acl in out.network_acls() {
                if !owned(acl.owner_id(), &mut foreign, identity, ACL_OWNER)? {
                    continue;
                }
                let Some(id) = acl.network_acl_id() else {
                    continue;
                };
                // AWS always sends these fields; an entry without them is left out rather than
                // guessed, as a guessed deny could hide an allow.
                let entries = acl
                    .entries()
                    .iter()
                    .filter(|e| {
                        e.rule_number().is_some()
                            && e.egress().is_some()
                            && e.rule_action().is_some()
                    })
                    .map(|e| AclEntry {
                        rule_number: e.rule_number().unwrap_or(i32::MAX),
                        egress: e.egress().unwrap_or(false),
                        allow: e.rule_action() == Some(&RuleAction::Allow),
                        protocol: e.protocol().unwrap_or_default().to_owned(),
                        ports: e.port_range().and_then(|p| Some((p.from()?, p.to()?))),
                        cidr_block: e.cidr_block().map(str::to_owned),
                        ipv6_cidr_block: e.ipv6_cidr_block().map(str::to_owned),
                    })
                    .collect();
                acls.push(NetworkAcl {
                    network_acl_id: id.to_owned(),
                    vpc_id: acl.vpc_id().unwrap_or_default().to_owned(),
                    is_default: acl.is_default().unwrap_or(false),
                    entries,
                });
            }
            let next = out.next_token().filter(|t| !t.is_empty());
            token = super::next_page(
                "ec2",
                "DescribeNetworkAcls",
                next.is_some(),
                next,
                sent.as_deref(),
            )?;
            if token.is_none() {
                break;
            }
        }
        // Only another account's ACLs: these are not this account's answers at all.
        if let (true, Some(owner)) = (acls.is_empty(), foreign) {
            return Err(identity.mismatch(&owner, ACL_OWNER));
        }
        acls.sort_by(|a, b| a.network_acl_id.cmp(&b.network_acl_id));
        Ok(acls)
    }

    async fn security_groups(&self, region: &str) -> Result<Vec<SecurityGroup>, Error> {
        let client = self.client(region);
        let identity = &self.counter.identity;
        let mut groups = Vec::new();
        let mut foreign: Option<String> = None;
        let mut token: Option<String> = None;
        loop {
            let sent = token.take();
            let out = self
                .limiter
                .run(|| {
                    client
                        .describe_security_groups()
                        .max_results(1000)
                        .set_next_token(sent.clone())
                        .send()
                })
                .await
                .map_err(|e| aws_error("ec2", "DescribeSecurityGroups", e))?;
            for g in out.security_groups() {
                if !owned(g.owner_id(), &mut foreign, identity, SG_OWNER)? {
                    continue;
                }
                let Some(id) = g.group_id() else { continue };
                groups.push(SecurityGroup {
                    group_id: id.to_owned(),
                    group_name: g.group_name().unwrap_or_default().to_owned(),
                    vpc_id: g.vpc_id().unwrap_or_default().to_owned(),
                    ingress: g.ip_permissions().iter().map(permission).collect(),
                    egress: g.ip_permissions_egress().iter().map(permission).collect(),
                });
            }
            let next = out.next_token().filter(|t| !t.is_empty());
            token = super::next_page(
                "ec2",
                "DescribeSecurityGroups",
                next.is_some(),
                next,
                sent.as_deref(),
            )?;
            if token.is_none() {
                break;
            }
        }
        if let (true, Some(owner)) = (groups.is_empty(), foreign) {
            return Err(identity.mismatch(&owner, SG_OWNER));
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }
}

fn permission(p: &IpPermission) -> Permission {
    Permission {
        protocol: p.ip_protocol().unwrap_or_default().to_owned(),
        from_port: p.from_port(),
        to_port: p.to_port(),
        ipv4_ranges: p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(str::to_owned))
            .collect(),
        ipv6_ranges: p
            .ipv6_ranges()
            .iter()
            .filter_map(|r| r.cidr_ipv6().map(str::to_owned))
            .collect(),
        prefix_lists: p.prefix_list_ids().len(),
        group_pairs: p.user_id_group_pairs().len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_accounts_acls_and_groups_are_skipped_and_no_owner_is_a_mismatch() {
        let id = super::super::AccountIdentity::detached("111111111111");
        let mut foreign = None;
        assert!(owned(Some("111111111111"), &mut foreign, &id, ACL_OWNER).unwrap());
        assert_eq!(foreign, None);
        // A shared VPC's owner: skipped, remembered.
        assert!(!owned(Some("222222222222"), &mut foreign, &id, ACL_OWNER).unwrap());
        assert_eq!(foreign.as_deref(), Some("222222222222"));
        for missing in [None, Some("")] {
            let e = owned(missing, &mut foreign, &id, SG_OWNER).unwrap_err();
            assert!(matches!(e, Error::AccountMismatch { .. }), "{e}");
        }
    }
}
