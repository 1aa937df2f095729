//! The EC2 calls of the EC2 collector, each within the account's concurrency limit.

use aws_config::{Region, SdkConfig};
use aws_sdk_ec2::types::{Filter, HttpTokensState, InstanceMetadataEndpointState};

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
}

/// The EC2 calls, apart so that the collector's handling of failing regions can be tested.
pub trait Ec2Api: Sync {
    /// The regions enabled for the account (opted in, or not needing it).
    fn enabled_regions(&self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
    /// Every instance in `region` but terminated ones.
    fn instances(&self, region: &str) -> impl Future<Output = Result<Vec<Instance>, Error>> + Send;
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

impl Ec2Api for Ec2Client {
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
