//! What our exposition writer writes, prometheus-client (the reference) writes too: the same
//! families, types, units, samples (name, label set, and value bit for bit, NaN equal to NaN)
//! and HELP texts, in OpenMetrics, for a snapshot with samples in every family: the golden
//! scenario plus an account whose label values need every escape (`"`, `\`, newline) or are not
//! ASCII, and whose values are NaN, +Inf, -Inf, huge, subnormal and -0. The crate encodes it from
//! the snapshot's data (a `Family` of `Gauge<f64>`, `Counter` or `Info` per family, units through
//! `register_with_unit`); one strict OpenMetrics parser (below) reads both outputs.
//!
//! Normalisation: the crate is given our help texts without their final full stop, since it
//! appends one (`Descriptor::new`), and the HELP lines are then compared exactly. The parser takes
//! values as the grammar spells them (`+Inf`, `-Inf`, `NaN`) and as dtoa spells infinities
//! (`inf`, `-inf`: both writers write those, and Prometheus reads them); both outputs must use
//! the same spellings.
//!
//! Not compared: the order of families and samples (the golden files pin ours); the wording of
//! help texts, which come from our output (the golden files pin it); HELP escaping, since the
//! crate writes help unescaped (ours have no `\`, `"` or newline, which the parser checks).
//! Families without samples would differ (ours writes their header, the crate leaves them out):
//! there are none here, or the comparison says so.
//!
//! The same snapshot in text 0.0.4 passes `promtool check metrics`.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "common/scenario.rs"]
mod scenario;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::DateTime;
use infraaudit::aws::ec2::{Instance, NetworkAcl, SecurityGroup};
use infraaudit::aws::iam::{EntityKind, PrincipalKind, ServiceAccess};
use infraaudit::aws::s3::{Encryption, PublicAccessBlock};
use infraaudit::checks;
use infraaudit::collector::access_advisor::{AccessAdvisorData, PrincipalRecord};
use infraaudit::collector::ebs::EbsData;
use infraaudit::collector::ec2::{Ec2Data, RegionRecord};
use infraaudit::collector::iam::{AccessKeyRecord, IamData, RootRecord, UserRecord};
use infraaudit::collector::iam_authz::AuthzData;
use infraaudit::collector::regions::Regional;
use infraaudit::collector::s3::{BucketRecord, S3Data};
use infraaudit::collector::vpc::{VpcData, VpcRegion, rules};
use infraaudit::config::Config;
use infraaudit::metrics::{Exporter, Format};
use infraaudit::owners::{Kind, Tagged};
use infraaudit::snapshot::{
    AccountInfo, DiscoveryStatus, Outcome, RunStatus, Snapshot, SnapshotStore,
};
use infraaudit::time::unix;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry, Unit};
use scenario::{AwsCalls, NOW, REVISION, VERSION};

use openmetrics::{Exposition, Value};

const THIRD: &str = "345678901234";

/// Label values that need an escape in both formats, or are not ASCII.
const AWKWARD: [&str; 5] = [
    r#"say "hi", {a=b}"#,
    r"C:\temp\",
    "two\nlines",
    "Zürich ✓ 東京",
    "all \"of\" \\ them\n ü",
];

/// Values at the edges of f64, as (service label, value).
const EDGES: [(&str, f64); 9] = [
    ("nan", f64::NAN),
    ("inf", f64::INFINITY),
    ("-inf", f64::NEG_INFINITY),
    ("1e300", 1e300),
    ("max", f64::MAX),
    ("-max", f64::MIN),
    ("subnormal", 5e-324),
    ("min_positive", f64::MIN_POSITIVE),
    ("-0", -0.0),
];

/// The third account's AWS calls.
const THIRD_AWS: AwsCalls = AwsCalls {
    calls: &[
        (THIRD, "iam", "ListUsers", None, 3),
        (
            THIRD,
            "iam",
            "GenerateServiceLastAccessedDetails",
            Some("Throttling"),
            2,
        ),
    ],
    dropped: &[(THIRD, "account_mismatch"), (THIRD, "account_mismatch")],
    slot_waits: &[(THIRD, 1e300), (THIRD, 5e-324)],
};

/// Every collector on (Access Advisor is off by default), a shard other than the default, and
/// owners and tag labels (two keys that sanitise to one label among them).
fn config() -> Config {
    let text = "[collectors.access_advisor]\nenabled = true\n[sharding]\nshard = 3\ntotal_shards = 7\n\
        [owners]\ntag_keys = [\"owner\"]\n\
        [labels]\niam_user_tags = [\"team\"]\ns3_bucket_tags = [\"cost-center\", \"cost_center\"]\n\
        ec2_instance_tags = [\"env\"]\n";
    infraaudit::config::load_str(text, &|_| None, &infraaudit::collector::sections())
        .unwrap()
        .config
}

// ---- The two functions that know how collector data is held (issue 14 is changing it). ----

/// The golden scenario plus a third account with awkward label values and edge values. The
/// only place this test builds collector data and records it.
fn rich_snapshot(config: &Config) -> (Exporter, Arc<SnapshotStore>) {
    let (exporter, store, api) = scenario::scenario(config);
    let mut accounts = store.load().accounts.clone();
    accounts.push(AccountInfo {
        id: THIRD.into(),
        name: AWKWARD[4].into(),
        ou: AWKWARD[0].into(),
        owner: AWKWARD[1].into(),
    });
    store.set_accounts(accounts, 9);
    scenario::count(&api, &THIRD_AWS);
    let t = |secs: f64| DateTime::from_timestamp(secs as i64, 0).unwrap();

    let key =
        |i: usize, slot: u8, created: f64, active: bool, last_used: Option<f64>| AccessKeyRecord {
            user: AWKWARD[i].into(),
            access_key_id: format!("AKIATHIRD000000{i}"),
            slot,
            created: t(created),
            active,
            last_used: last_used.map(t),
        };
    let iam = IamData {
        report_generated_at: Some(t(NOW - 3600.0)),
        keys: vec![
            key(0, 1, 1.6e9, true, Some(1.7e9)),
            key(1, 2, 1.7e9, false, None),
            // Created after the scrape (a skewed clock): its age is 0. No slot 3 exists.
            key(2, 3, NOW + 86_400.0, true, None),
        ],
        root: Some(RootRecord {
            mfa_active: false,
            password_enabled: None,
            active_keys: 2,
            last_used: None,
            virtual_mfa: Some(false),
        }),
        users: AWKWARD
            .iter()
            .enumerate()
            .map(|(i, name)| UserRecord {
                user: (*name).into(),
                created: i.is_multiple_of(2).then(|| t(1.5e9 + i as f64)),
                password_enabled: i % 2 == 1,
                mfa_active: i == 3,
                password_last_used: (i == 1).then(|| t(1.79e9)),
            })
            .collect(),
        password_policy: None,
        password_policy_denied: false,
    };

    let tagging = Arc::new(config.tagging());
    let s3 = S3Data {
        account_public_access_block: PublicAccessBlock {
            block_public_acls: true,
            block_public_policy: true,
            ..PublicAccessBlock::default()
        },
        buckets: vec![
            BucketRecord {
                name: AWKWARD[0].into(),
                region: AWKWARD[3].into(),
                public_access_block: None,
                policy_public: None,
                acl_public: Some(true),
                encryption: Some(Encryption::Algorithm("aws:kms:dsse")),
                secure_transport: None,
                mfa_delete: Some(true),
                denied: vec![
                    "GetBucketPublicAccessBlock",
                    "GetBucketPolicyStatus",
                    "GetBucketPolicy",
                ],
                tagged: Tagged {
                    owner: AWKWARD[2].into(),
                    labels: vec![AWKWARD[3].into(), String::new()],
                },
            },
            BucketRecord {
                name: AWKWARD[1].into(),
                region: AWKWARD[2].into(),
                public_access_block: Some(PublicAccessBlock {
                    ignore_public_acls: true,
                    ..PublicAccessBlock::default()
                }),
                policy_public: Some(false),
                acl_public: Some(true),
                encryption: None,
                secure_transport: Some(false),
                mfa_delete: None,
                denied: vec!["GetBucketEncryption", "GetBucketVersioning"],
                tagged: Tagged {
                    owner: String::new(),
                    labels: vec![String::new(), AWKWARD[4].into()],
                },
            },
        ],
        tagging: tagging.clone(),
    };

    let states = ["running", "stopped", "pending", "stopping", "shutting-down"];
    let instance = |i: usize, name: &str| Instance {
        instance_id: format!("i-0third{i:012}"),
        name: name.into(),
        state: states[i % states.len()].into(),
        instance_type: "m7g.large".into(),
        imdsv2_required: i.is_multiple_of(2),
        public_ip: i % 2 == 1,
        tags: Vec::new(),
        tagged: Tagged {
            owner: name.into(),
            labels: vec![AWKWARD[i % AWKWARD.len()].into()],
        },
    };
    let mut instances: Vec<Instance> = AWKWARD
        .iter()
        .enumerate()
        .map(|(i, name)| instance(i, name))
        .collect();
    // No Name tag: an empty label value.
    instances.push(instance(AWKWARD.len(), ""));
    let ec2 = Ec2Data {
        regions: vec![
            RegionRecord {
                region: AWKWARD[3].into(),
                success: true,
                instances: Arc::new(instances),
            },
            RegionRecord {
                region: "eu-north-1".into(),
                success: false,
                instances: Arc::new(Vec::new()),
            },
        ],
        tagging,
    };

    // Awkward regions, one never answered; awkward VPC ids on an open ACL and groups.
    let ebs = EbsData {
        regions: vec![
            Regional {
                region: AWKWARD[3].into(),
                success: true,
                data: Some(Arc::new(true)),
            },
            Regional {
                region: AWKWARD[0].into(),
                success: false,
                data: None,
            },
        ],
    };
    let mut default_group = SecurityGroup {
        group_id: "sg-0third00000000001".into(),
        group_name: "default".into(),
        vpc_id: AWKWARD[1].into(),
        ingress: Vec::new(),
        egress: vec![scenario::permission("-1", None, &["0.0.0.0/0"])],
    };
    default_group
        .ingress
        .push(scenario::permission("-1", None, &["::/0"]));
    let vpc = VpcData {
        regions: vec![
            Regional {
                region: AWKWARD[2].into(),
                success: false,
                data: Some(Arc::new(VpcRegion {
                    network_acls: vec![NetworkAcl {
                        network_acl_id: "acl-0third0000000001".into(),
                        vpc_id: AWKWARD[4].into(),
                        is_default: false,
                        entries: vec![scenario::acl_entry(
                            1,
                            false,
                            true,
                            "6",
                            Some((0, 65535)),
                            "::/0",
                        )],
                    }],
                    security_groups: vec![
                        default_group,
                        SecurityGroup {
                            group_id: "sg-0third00000000002".into(),
                            group_name: AWKWARD[0].into(),
                            vpc_id: AWKWARD[1].into(),
                            ingress: vec![scenario::permission(
                                "17",
                                Some((22, 22)),
                                &["0.0.0.0/0"],
                            )],
                            egress: Vec::new(),
                        },
                    ],
                })),
            },
            Regional {
                region: AWKWARD[3].into(),
                success: true,
                data: Some(Arc::new(VpcRegion::default())),
            },
        ],
    };

    let service = |namespace: &str, days_ago: Option<f64>| ServiceAccess {
        namespace: namespace.into(),
        last_authenticated: days_ago.map(|d| t(NOW - d * 86_400.0)),
    };
    let mut edges = PrincipalRecord::new(
        PrincipalKind::Role,
        AWKWARD[0].into(),
        vec![
            service("s3", Some(10.0)),
            service("ec2", Some(200.0)),
            service("kms", None),
        ],
    );
    // The collector computes these from AWS's dates; the field is public, which is the one way
    // edge values reach a timestamp family.
    edges.used = EDGES.iter().map(|(s, v)| ((*s).into(), *v)).collect();
    let access_advisor = AccessAdvisorData {
        principals: vec![
            Arc::new(edges),
            Arc::new(PrincipalRecord::new(
                PrincipalKind::User,
                AWKWARD[2].into(),
                vec![service("iam", Some(1.0)), service("sts", Some(399.0))],
            )),
        ],
        failed: 2,
        unused_window: Duration::from_secs(90 * 86_400),
    };

    // Durations and run times are the scheduler's to measure; any f64 can be recorded.
    store.record(
        THIRD,
        "iam",
        Outcome::Success(infraaudit::collector::iam::SPEC.record(THIRD, Arc::new(iam))),
        f64::NAN,
        -0.0,
    );
    store.record(
        THIRD,
        "s3",
        Outcome::Success(infraaudit::collector::s3::SPEC.record(THIRD, Arc::new(s3))),
        f64::INFINITY,
        1e300,
    );
    store.record(
        THIRD,
        "ec2",
        Outcome::Success(infraaudit::collector::ec2::SPEC.record(THIRD, Arc::new(ec2))),
        1.0,
        f64::NEG_INFINITY,
    );
    // A failure keeps the data and the last success's time.
    store.record(THIRD, "ec2", Outcome::Failure, -0.0, NOW);
    store.record(
        THIRD,
        "ebs",
        Outcome::Success(infraaudit::collector::ebs::SPEC.record(THIRD, Arc::new(ebs))),
        2.0,
        NOW - 60.0,
    );
    store.record(
        THIRD,
        "vpc",
        Outcome::Success(infraaudit::collector::vpc::SPEC.record(THIRD, Arc::new(vpc))),
        3.0,
        NOW - 30.0,
    );
    store.record(
        THIRD,
        "access_advisor",
        Outcome::Success(
            infraaudit::collector::access_advisor::SPEC.record(THIRD, Arc::new(access_advisor)),
        ),
        5e-324,
        f64::INFINITY,
    );
    (exporter, store)
}

/// What the reference reads: each entry's data by collector, and the configured intervals of
/// the collectors that run. The only place this test reads collector data out of a snapshot.
#[derive(Default)]
struct Data<'a> {
    iam: Vec<(&'a str, &'a IamData)>,
    iam_authz: Vec<(&'a str, &'a AuthzData)>,
    s3: Vec<(&'a str, &'a S3Data)>,
    ec2: Vec<(&'a str, &'a Ec2Data)>,
    ebs: Vec<(&'a str, &'a EbsData)>,
    vpc: Vec<(&'a str, &'a VpcData)>,
    access_advisor: Vec<(&'a str, &'a AccessAdvisorData)>,
    intervals: Vec<(&'static str, f64)>,
}

fn data<'a>(snap: &'a Snapshot, config: &Config) -> Data<'a> {
    let mut d = Data::default();
    // A collector the reference does not know fails here, naming it.
    let known = [
        "iam",
        "iam_authz",
        "s3",
        "ec2",
        "ebs",
        "vpc",
        "access_advisor",
    ];
    for spec in infraaudit::collector::ALL {
        assert!(
            known.contains(&spec.name),
            "the reference does not cover {}",
            spec.name
        );
    }
    for ((account, collector), entry) in &snap.entries {
        if entry.data.is_none() {
            continue;
        }
        match *collector {
            "iam" => d.iam.push((account, entry.data::<IamData>().unwrap())),
            "iam_authz" => d
                .iam_authz
                .push((account, entry.data::<AuthzData>().unwrap())),
            "s3" => d.s3.push((account, entry.data::<S3Data>().unwrap())),
            "ec2" => d.ec2.push((account, entry.data::<Ec2Data>().unwrap())),
            "ebs" => d.ebs.push((account, entry.data::<EbsData>().unwrap())),
            "vpc" => d.vpc.push((account, entry.data::<VpcData>().unwrap())),
            "access_advisor" => d
                .access_advisor
                .push((account, entry.data::<AccessAdvisorData>().unwrap())),
            other => panic!("the reference does not cover {other}"),
        }
    }
    let setting = |name: &str| {
        infraaudit::collector::find(name)
            .unwrap()
            .settings(config)
            .common
    };
    let listed = |name: &str| {
        config.accounts.iter().any(|a| {
            a.collectors
                .as_ref()
                .is_some_and(|l| l.iter().any(|n| n == name))
        })
    };
    d.intervals = known
        .into_iter()
        .map(|name| (name, setting(name)))
        .filter(|(name, c)| c.enabled || listed(name))
        .map(|(name, c)| (name, c.interval.as_secs_f64()))
        .collect();
    d
}

// ---- The reference encoding. ----

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn plus(mut base: Labels, name: &str, value: &str) -> Labels {
    base.push((name.to_owned(), value.to_owned()));
    base
}

/// An info series' labels after the resource's own: its owner when owners are configured, then
/// its allowlisted tags.
fn tagged(mut l: Labels, tagging: &infraaudit::owners::Tagging, kind: Kind, t: &Tagged) -> Labels {
    if tagging.enabled {
        l = plus(l, "owner", &t.owner);
    }
    for (name, value) in tagging.labels(kind).names().zip(&t.labels) {
        l = plus(l, name, value);
    }
    l
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

const SECONDS: Option<Unit> = Some(Unit::Seconds);

/// A prometheus-client registry under our prefix, each family's help taken from ours.
struct Reference<'a> {
    registry: Registry,
    help: &'a BTreeMap<String, String>,
}

impl Reference<'_> {
    fn register(&mut self, name: &str, unit: Option<Unit>, metric: impl Metric) {
        let full = match &unit {
            Some(u) => format!("infraaudit_{name}_{}", u.as_str()),
            None => format!("infraaudit_{name}"),
        };
        // The crate appends a full stop: give it ours without one.
        let help = match self.help.get(&full) {
            Some(h) => h.strip_suffix('.').unwrap_or(h).to_owned(),
            None => format!("(our output has no family {full})"),
        };
        match unit {
            Some(unit) => self.registry.register_with_unit(name, help, unit, metric),
            None => self.registry.register(name, help, metric),
        }
    }

    fn gauges(
        &mut self,
        name: &str,
        unit: Option<Unit>,
        series: impl IntoIterator<Item = (Labels, f64)>,
    ) {
        let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (labels, v) in series {
            family.get_or_create(&labels).set(v);
        }
        self.register(name, unit, family);
    }

    /// Counters summed by the crate from one increment per item.
    fn counters(&mut self, name: &str, series: impl IntoIterator<Item = (Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, n) in series {
            family.get_or_create(&labels).inc_by(n);
        }
        self.register(name, None, family);
    }

    fn counters_f64(
        &mut self,
        name: &str,
        unit: Option<Unit>,
        series: impl IntoIterator<Item = (Labels, f64)>,
    ) {
        let family = Family::<Labels, Counter<f64, AtomicU64>>::default();
        for (labels, v) in series {
            family.get_or_create(&labels).inc_by(v);
        }
        self.register(name, unit, family);
    }

    fn infos(&mut self, name: &str, series: impl IntoIterator<Item = Labels>) {
        type Infos = Family<Labels, Info<Labels>, fn() -> Info<Labels>>;
        let family = Infos::new_with_constructor(|| Info::new(Vec::new()));
        for labels in series {
            drop(family.get_or_create(&labels));
        }
        self.register(name, None, family);
    }
}

/// The families of the snapshot, encoded by prometheus-client: every value is computed here from
/// the snapshot, the AWS calls counted into it, the discovery status and the config.
fn reference(
    snap: &Snapshot,
    discovery: Option<&DiscoveryStatus>,
    config: &Config,
    aws: &[&AwsCalls],
    help: &BTreeMap<String, String>,
) -> String {
    let d = data(snap, config);
    let mut r = Reference {
        registry: Registry::with_prefix("infraaudit"),
        help,
    };
    let account = |a: &str| labels(&[("account_id", a)]);

    r.infos(
        "build",
        [labels(&[("version", VERSION), ("revision", REVISION)])],
    );
    let calls = || aws.iter().flat_map(|a| a.calls.iter());
    r.counters(
        "aws_api_requests",
        calls().map(|&(a, service, op, _, n)| {
            (
                labels(&[("account_id", a), ("service", service), ("operation", op)]),
                n,
            )
        }),
    );
    r.counters(
        "aws_api_errors",
        calls().filter_map(|&(a, service, op, code, n)| {
            let l = [
                ("account_id", a),
                ("service", service),
                ("operation", op),
                ("code", code?),
            ];
            Some((labels(&l), n))
        }),
    );
    r.counters(
        "aws_credentials_dropped",
        aws.iter()
            .flat_map(|a| a.dropped.iter())
            .map(|&(a, code)| (labels(&[("account_id", a), ("code", code)]), 1)),
    );
    r.counters_f64(
        "aws_concurrency_wait",
        SECONDS,
        aws.iter()
            .flat_map(|a| a.slot_waits.iter())
            .map(|&(a, s)| (account(a), s)),
    );
    r.infos(
        "account",
        snap.accounts.iter().map(|a| {
            let l = labels(&[
                ("account_id", &a.id),
                ("account_name", &a.name),
                ("ou", &a.ou),
            ]);
            if config.tagging().enabled {
                plus(l, "owner", &a.owner)
            } else {
                l
            }
        }),
    );
    let sharding = &config.sharding;
    r.infos(
        "shard",
        [labels(&[
            ("shard", &sharding.shard.to_string()),
            ("total_shards", &sharding.total_shards.to_string()),
        ])],
    );
    r.gauges(
        "discovered_accounts",
        None,
        discovery
            .and_then(|d| d.discovered)
            .map(|n| (Labels::new(), n as f64)),
    );
    r.gauges(
        "discovery_success",
        None,
        discovery.map(|d| (Labels::new(), flag(d.success))),
    );
    r.gauges(
        "discovery_last_success_timestamp",
        SECONDS,
        discovery
            .and_then(|d| d.last_success)
            .map(|t| (Labels::new(), t)),
    );

    // IAM
    let keys = || {
        d.iam.iter().flat_map(|(a, x)| {
            x.keys.iter().map(move |k| {
                let slot = match k.slot {
                    1 => "1",
                    2 => "2",
                    _ => "unknown",
                };
                let l = [
                    ("account_id", *a),
                    ("user", k.user.as_str()),
                    ("access_key_id", k.access_key_id.as_str()),
                    ("slot", slot),
                ];
                (labels(&l), k)
            })
        })
    };
    r.gauges(
        "iam_access_key_age",
        SECONDS,
        keys().map(|(l, k)| (l, (NOW - unix(k.created)).max(0.0))),
    );
    r.gauges(
        "iam_access_key_created_timestamp",
        SECONDS,
        keys().map(|(l, k)| (l, unix(k.created))),
    );
    r.gauges(
        "iam_access_key_active",
        None,
        keys().map(|(l, k)| (l, flag(k.active))),
    );
    r.gauges(
        "iam_access_key_last_used_timestamp",
        SECONDS,
        keys().filter_map(|(l, k)| Some((l, unix(k.last_used?)))),
    );
    r.gauges(
        "iam_credential_report_generated_timestamp",
        SECONDS,
        d.iam
            .iter()
            .filter_map(|(a, x)| Some((account(a), unix(x.report_generated_at?)))),
    );
    let roots = || {
        d.iam
            .iter()
            .filter_map(|(a, x)| Some((account(a), x.root.as_ref()?)))
    };
    r.gauges(
        "iam_root_mfa_enabled",
        None,
        roots().map(|(l, root)| (l, flag(root.mfa_active))),
    );
    r.gauges(
        "iam_root_hardware_mfa_enabled",
        None,
        roots().filter_map(|(l, root)| Some((l, flag(root.mfa_active && !root.virtual_mfa?)))),
    );
    r.gauges(
        "iam_root_password_enabled",
        None,
        roots().filter_map(|(l, root)| Some((l, flag(root.password_enabled?)))),
    );
    r.gauges(
        "iam_root_access_keys_active",
        None,
        roots().map(|(l, root)| (l, f64::from(root.active_keys))),
    );
    r.gauges(
        "iam_root_last_used_timestamp",
        SECONDS,
        roots().filter_map(|(l, root)| Some((l, unix(root.last_used?)))),
    );
    let users = || {
        d.iam.iter().flat_map(|(a, x)| {
            x.users
                .iter()
                .map(move |u| (labels(&[("account_id", a), ("user", &u.user)]), u))
        })
    };
    r.gauges(
        "iam_user_password_enabled",
        None,
        users().map(|(l, u)| (l, flag(u.password_enabled))),
    );
    r.gauges(
        "iam_user_mfa_active",
        None,
        users().map(|(l, u)| (l, flag(u.mfa_active))),
    );
    r.gauges(
        "iam_user_password_last_used_timestamp",
        SECONDS,
        users().filter_map(|(l, u)| Some((l, unix(u.password_last_used?)))),
    );
    r.gauges(
        "iam_user_created_timestamp",
        SECONDS,
        users().filter_map(|(l, u)| Some((l, unix(u.created?)))),
    );
    r.gauges(
        "iam_password_policy_present",
        None,
        d.iam
            .iter()
            .filter(|(_, x)| !x.password_policy_denied)
            .map(|(a, x)| (account(a), flag(x.password_policy.is_some()))),
    );
    let policies = || {
        d.iam
            .iter()
            .filter_map(|(a, x)| Some((*a, x.password_policy.as_ref()?)))
    };
    r.gauges(
        "iam_password_policy_minimum_length",
        None,
        policies().filter_map(|(a, p)| Some((account(a), f64::from(p.minimum_length?)))),
    );
    r.gauges(
        "iam_password_policy_max_age",
        SECONDS,
        policies().filter_map(|(a, p)| Some((account(a), f64::from(p.max_age_days?) * 86_400.0))),
    );
    r.gauges(
        "iam_password_policy_reuse_prevention",
        None,
        policies().map(|(a, p)| (account(a), f64::from(p.reuse_prevention.unwrap_or(0)))),
    );
    r.gauges(
        "iam_password_policy_requirement",
        None,
        policies().flat_map(|(a, p)| {
            [
                ("symbols", p.require_symbols),
                ("numbers", p.require_numbers),
                ("uppercase", p.require_uppercase),
                ("lowercase", p.require_lowercase),
            ]
            .map(|(class, on)| (labels(&[("account_id", a), ("class", class)]), flag(on)))
        }),
    );

    // IAM authorization details
    let users = || {
        d.iam_authz.iter().flat_map(|(a, x)| {
            x.entities
                .iter()
                .filter(|e| e.kind == EntityKind::User)
                .map(move |u| (*a, u))
        })
    };
    r.infos(
        "iam_user",
        d.iam_authz.iter().flat_map(|(a, x)| {
            x.entities
                .iter()
                .zip(&x.tagged)
                .filter(|(e, _)| e.kind == EntityKind::User)
                .map(move |(u, t)| {
                    tagged(
                        labels(&[("account_id", a), ("user", &u.name)]),
                        &x.tagging,
                        Kind::IamUser,
                        t,
                    )
                })
        }),
    );
    r.gauges(
        "iam_user_policies",
        None,
        users().flat_map(|(a, u)| {
            [("attached", u.attached.len()), ("inline", u.inline)].map(|(kind, n)| {
                let l = [("account_id", a), ("user", u.name.as_str()), ("kind", kind)];
                (labels(&l), n as f64)
            })
        }),
    );
    let managed = || {
        d.iam_authz.iter().flat_map(|(a, x)| {
            x.policies
                .iter()
                .map(move |p| (labels(&[("account_id", a), ("policy", p.name.as_str())]), p))
        })
    };
    r.gauges(
        "iam_policy_full_admin",
        None,
        managed().filter_map(|(l, p)| Some((l, flag(p.full_admin?)))),
    );
    r.gauges(
        "iam_policy_attachments",
        None,
        managed().map(|(l, p)| (l, f64::from(p.attachments))),
    );
    r.gauges(
        "iam_aws_managed_policy_attached",
        None,
        ["AWSSupportAccess", "AWSCloudShellFullAccess"]
            .into_iter()
            .flat_map(|policy| {
                d.iam_authz.iter().flat_map(move |(a, x)| {
                    x.entities
                        .iter()
                        .filter(move |e| {
                            e.attached
                                .iter()
                                .any(|arn| arn.ends_with(&format!(":iam::aws:policy/{policy}")))
                        })
                        .map(move |e| {
                            let l = [
                                ("account_id", *a),
                                ("policy", policy),
                                ("principal_type", e.kind.as_str()),
                                ("principal", e.name.as_str()),
                            ];
                            (labels(&l), 1.0)
                        })
                })
            }),
    );
    r.gauges(
        "iam_server_certificate_expiry_timestamp",
        SECONDS,
        d.iam_authz.iter().flat_map(|(a, x)| {
            x.certificates.iter().flatten().map(|c| {
                let l = [("account_id", *a), ("certificate", c.name.as_str())];
                (labels(&l), unix(c.expiration))
            })
        }),
    );

    // S3
    let buckets = || {
        d.s3.iter().flat_map(|(a, x)| {
            x.buckets.iter().map(move |b| {
                let l = [
                    ("account_id", *a),
                    ("bucket", b.name.as_str()),
                    ("region", b.region.as_str()),
                ];
                (labels(&l), b, x)
            })
        })
    };
    r.gauges(
        "s3_bucket_public",
        None,
        buckets()
            .filter_map(|(l, b, x)| Some((l, flag(b.public(&x.account_public_access_block)?)))),
    );
    r.gauges(
        "s3_bucket_public_access_block",
        None,
        buckets().flat_map(|(l, b, _)| {
            b.public_access_block
                .iter()
                .flat_map(PublicAccessBlock::settings)
                .map(move |(setting, on)| (plus(l.clone(), "setting", setting), flag(on)))
        }),
    );
    r.gauges(
        "s3_account_public_access_block",
        None,
        d.s3.iter().flat_map(|(a, x)| {
            x.account_public_access_block
                .settings()
                .map(|(setting, on)| (labels(&[("account_id", a), ("setting", setting)]), flag(on)))
        }),
    );
    r.gauges(
        "s3_bucket_encryption_enabled",
        None,
        buckets().filter_map(|(l, b, _)| Some((l, flag(b.encrypted()?)))),
    );
    r.infos(
        "s3_bucket_encryption",
        buckets().filter_map(|(l, b, _)| match b.encryption {
            Some(Encryption::Algorithm(algorithm)) => Some(plus(l, "algorithm", algorithm)),
            _ => None,
        }),
    );
    r.gauges(
        "s3_bucket_secure_transport_required",
        None,
        buckets().filter_map(|(l, b, _)| Some((l, flag(b.secure_transport?)))),
    );
    r.gauges(
        "s3_bucket_mfa_delete_enabled",
        None,
        buckets().filter_map(|(l, b, _)| Some((l, flag(b.mfa_delete?)))),
    );
    r.infos(
        "s3_bucket",
        buckets().map(|(l, b, x)| tagged(l, &x.tagging, Kind::S3Bucket, &b.tagged)),
    );
    r.gauges(
        "s3_bucket_access_denied",
        None,
        buckets().flat_map(|(l, b, _)| {
            b.denied
                .iter()
                .map(move |op| (plus(l.clone(), "operation", op), 1.0))
        }),
    );

    // EC2
    let instances = || {
        d.ec2.iter().flat_map(|(a, x)| {
            x.regions.iter().flat_map(move |region| {
                region.instances.iter().map(move |i| {
                    let l = [
                        ("account_id", *a),
                        ("region", region.region.as_str()),
                        ("instance_id", i.instance_id.as_str()),
                    ];
                    (labels(&l), i, x)
                })
            })
        })
    };
    r.gauges(
        "ec2_instance_imdsv2_required",
        None,
        instances().map(|(l, i, _)| (l, flag(i.imdsv2_required))),
    );
    r.gauges(
        "ec2_instance_public_ip",
        None,
        instances().map(|(l, i, _)| (l, flag(i.public_ip))),
    );
    r.infos(
        "ec2_instance",
        instances().map(|(l, i, x)| {
            let l = plus(l, "name", &i.name);
            let l = plus(l, "state", &i.state);
            let l = plus(l, "instance_type", &i.instance_type);
            tagged(l, &x.tagging, Kind::Ec2Instance, &i.tagged)
        }),
    );
    r.gauges(
        "ec2_region_success",
        None,
        d.ec2.iter().flat_map(|(a, x)| {
            x.regions.iter().map(|region| {
                let l = [("account_id", *a), ("region", region.region.as_str())];
                (labels(&l), flag(region.success))
            })
        }),
    );

    // EBS
    r.gauges(
        "ebs_encryption_by_default",
        None,
        d.ebs.iter().flat_map(|(a, x)| {
            x.regions.iter().filter_map(|region| {
                let l = [("account_id", *a), ("region", region.region.as_str())];
                Some((labels(&l), flag(*region.data.as_deref()?)))
            })
        }),
    );
    r.gauges(
        "ebs_region_success",
        None,
        d.ebs.iter().flat_map(|(a, x)| {
            x.regions.iter().map(|region| {
                let l = [("account_id", *a), ("region", region.region.as_str())];
                (labels(&l), flag(region.success))
            })
        }),
    );

    // VPC
    let vpc_regions = || {
        d.vpc.iter().flat_map(|(a, x)| {
            x.regions.iter().filter_map(move |region| {
                Some((*a, region.region.as_str(), region.data.as_deref()?))
            })
        })
    };
    r.gauges(
        "vpc_network_acl_admin_ports_open",
        None,
        vpc_regions().flat_map(|(a, region, x)| {
            x.network_acls.iter().map(move |acl| {
                let l = [
                    ("account_id", a),
                    ("region", region),
                    ("vpc_id", acl.vpc_id.as_str()),
                    ("network_acl_id", acl.network_acl_id.as_str()),
                ];
                (
                    labels(&l),
                    flag(!rules::nacl_admin_openings(acl).is_empty()),
                )
            })
        }),
    );
    let groups = || {
        vpc_regions().flat_map(|(a, region, x)| {
            x.security_groups.iter().map(move |g| {
                let l = [
                    ("account_id", a),
                    ("region", region),
                    ("vpc_id", g.vpc_id.as_str()),
                    ("security_group_id", g.group_id.as_str()),
                ];
                (labels(&l), g)
            })
        })
    };
    r.gauges(
        "vpc_security_group_admin_ports_open",
        None,
        groups().map(|(l, g)| (l, flag(!rules::security_group_admin_openings(g).is_empty()))),
    );
    r.gauges(
        "vpc_default_security_group_rules",
        None,
        groups()
            .filter(|(_, g)| g.group_name == "default")
            .flat_map(|(l, g)| {
                [
                    (
                        plus(l.clone(), "direction", "ingress"),
                        rules::rule_count(&g.ingress),
                    ),
                    (plus(l, "direction", "egress"), rules::rule_count(&g.egress)),
                ]
                .map(|(l, n)| (l, n as f64))
            }),
    );
    r.gauges(
        "vpc_region_success",
        None,
        d.vpc.iter().flat_map(|(a, x)| {
            x.regions.iter().map(|region| {
                let l = [("account_id", *a), ("region", region.region.as_str())];
                (labels(&l), flag(region.success))
            })
        }),
    );

    // Access Advisor
    let principals = || {
        d.access_advisor.iter().flat_map(|(a, x)| {
            x.principals.iter().map(move |p| {
                let l = [
                    ("account_id", *a),
                    ("principal_type", p.kind.as_str()),
                    ("principal", p.name.as_str()),
                ];
                (labels(&l), p, x)
            })
        })
    };
    r.gauges(
        "iam_service_last_accessed_timestamp",
        SECONDS,
        principals().flat_map(|(l, p, _)| {
            p.used
                .iter()
                .map(move |(service, t)| (plus(l.clone(), "service", service), *t))
        }),
    );
    r.gauges(
        "iam_access_advisor_failed_principals",
        None,
        d.access_advisor
            .iter()
            .map(|(a, x)| (account(a), x.failed as f64)),
    );
    r.gauges(
        "iam_principal_unused_services",
        None,
        principals().map(|(l, p, x)| {
            let cutoff = NOW - x.unused_window.as_secs_f64();
            (l, p.unused_since(cutoff) as f64)
        }),
    );

    // Checks
    r.gauges(
        "check_threshold",
        SECONDS,
        [
            ("iam_access_key_age", config.checks.access_key_max_age),
            ("iam_access_key_unused", config.checks.access_key_max_unused),
            ("iam_root_recent_use", config.checks.root_max_recent_use),
            (
                "iam_user_password_unused",
                config.checks.access_key_max_unused,
            ),
        ]
        .map(|(check, limit)| (labels(&[("check", check)]), limit.as_secs_f64())),
    );
    r.infos(
        "check",
        infraaudit::collector::Check::all().map(|c| {
            labels(&[
                ("check", c.name()),
                ("title", c.title()),
                ("severity", c.severity().as_str()),
                ("cis", c.cis()),
            ])
        }),
    );
    r.gauges(
        "check_failed_resources",
        None,
        checks::summary(snap, NOW, &config.checks).map(|(a, check, n)| {
            let l = [("account_id", a), ("check", check.name())];
            (labels(&l), n as f64)
        }),
    );
    if config.tagging().enabled {
        r.gauges(
            "owner_failed_resources",
            None,
            checks::failed_by_owner(snap, NOW, &config.checks)
                .into_iter()
                .map(|c| {
                    let l = [
                        ("account_id", c.account_id.as_str()),
                        ("check", c.check.name()),
                        ("owner", c.owner.as_str()),
                    ];
                    (labels(&l), c.failed as f64)
                }),
        );
    }

    // The collectors' own runs
    let runs = || {
        snap.entries.iter().map(|((a, collector), e)| {
            let l = [("account_id", a.as_str()), ("collector", *collector)];
            (labels(&l), &e.status)
        })
    };
    let each = |f: fn(&RunStatus) -> f64| runs().map(move |(l, s)| (l, f(s)));
    r.gauges("collector_success", None, each(|s| flag(s.success)));
    r.gauges("collector_duration", SECONDS, each(|s| s.duration_seconds));
    r.gauges(
        "collector_consecutive_failures",
        None,
        each(|s| f64::from(s.consecutive_failures)),
    );
    r.gauges(
        "collector_interval",
        SECONDS,
        d.intervals
            .iter()
            .map(|(collector, secs)| (labels(&[("collector", collector)]), *secs)),
    );
    r.gauges(
        "collector_last_success_timestamp",
        SECONDS,
        runs().filter_map(|(l, s)| Some((l, s.last_success?))),
    );

    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &r.registry).unwrap();
    out
}

// ---- The comparison. ----

/// Everything that differs, one line each; empty when the two agree.
fn differences(ours: &Exposition, theirs: &Exposition) -> Vec<String> {
    let mut d = Vec::new();
    for (name, f) in &ours.families {
        if !theirs.families.contains_key(name) {
            let hint = if f.samples.is_empty() {
                " (no samples, and the crate leaves such families out: give the snapshot data for it)"
            } else {
                ""
            };
            d.push(format!("family {name}: only in ours{hint}"));
        }
    }
    for name in theirs.families.keys() {
        if !ours.families.contains_key(name) {
            d.push(format!("family {name}: only in prometheus-client's"));
        }
    }
    for (name, o) in &ours.families {
        let Some(t) = theirs.families.get(name) else {
            continue;
        };
        let fields = [
            ("TYPE", Some(&o.kind), Some(&t.kind)),
            ("UNIT", o.unit.as_ref(), t.unit.as_ref()),
            ("HELP", o.help.as_ref(), t.help.as_ref()),
        ];
        for (what, o, t) in fields {
            if o != t {
                d.push(format!(
                    "{name} {what}: ours {o:?}, prometheus-client {t:?}"
                ));
            }
        }
        for ((sample, labels), v) in &o.samples {
            match t.samples.get(&(sample.clone(), labels.clone())) {
                None => d.push(format!("sample only in ours: {sample}{labels:?} {v:?}")),
                Some(tv) if tv != v => d.push(format!(
                    "{sample}{labels:?}: ours {v:?}, prometheus-client {tv:?}"
                )),
                Some(_) => {}
            }
        }
        for ((sample, labels), v) in &t.samples {
            if !o.samples.contains_key(&(sample.clone(), labels.clone())) {
                d.push(format!(
                    "sample only in prometheus-client's: {sample}{labels:?} {v:?}"
                ));
            }
        }
    }
    if ours.off_spec != theirs.off_spec {
        d.push(format!(
            "values spelled outside the OpenMetrics grammar: ours {:?}, prometheus-client {:?}",
            ours.off_spec, theirs.off_spec
        ));
    }
    d
}

/// What makes this test worth running: the snapshot has label values with every escape and
/// the edge values (read from the crate's encoding of it, so that a fault of our writer shows
/// as a difference). That every family has samples shows in the comparison: the crate leaves
/// out families without.
fn assert_rich(theirs: &Exposition) {
    let samples = || theirs.families.values().flat_map(|f| f.samples.iter());
    let label_values: Vec<&String> = samples().flat_map(|((_, l), _)| l.values()).collect();
    for (what, needs) in [
        ("a double quote", '"'),
        ("a backslash", '\\'),
        ("a newline", '\n'),
        ("a character outside ASCII", 'ü'),
    ] {
        assert!(
            label_values.iter().any(|v| v.contains(needs)),
            "no label value with {what}"
        );
    }
    for (what, edge) in EDGES {
        assert!(
            samples().any(|(_, v)| *v == Value(edge)),
            "no sample of value {what}"
        );
    }
}

fn parse_or_panic(whose: &str, text: &str) -> Exposition {
    openmetrics::parse(text).unwrap_or_else(|e| {
        panic!("{whose} OpenMetrics does not parse: {e}\n--- {whose} ---\n{text}")
    })
}

#[test]
fn prometheus_client_encodes_the_snapshot_to_the_same_families_and_samples() {
    let config = config();
    let (exporter, store) = rich_snapshot(&config);
    let text = exporter.render(Format::OpenMetrics);
    let ours = parse_or_panic("our", &text);

    let help: BTreeMap<String, String> = ours
        .families
        .iter()
        .filter_map(|(name, f)| Some((name.clone(), f.help.clone()?)))
        .collect();
    let reference = reference(
        &store.load(),
        store.discovery().as_ref(),
        &config,
        &[&scenario::AWS, &THIRD_AWS],
        &help,
    );
    let theirs = parse_or_panic("prometheus-client's", &reference);
    assert_rich(&theirs);

    let differences = differences(&ours, &theirs);
    assert!(
        differences.is_empty(),
        "our writer and prometheus-client disagree on {} points:\n{}\n--- ours ---\n{text}\n--- prometheus-client ---\n{reference}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn the_text_format_passes_promtool() {
    let (exporter, _) = rich_snapshot(&config());
    let text = exporter.render(Format::Text);
    let (ok, report) = common::promtool_check_metrics(&text);
    assert!(
        ok && report.trim().is_empty(),
        "promtool check metrics:\n{report}\n--- input ---\n{text}"
    );
}

#[test]
fn the_parser_rejects_what_openmetrics_forbids() {
    let head = "# HELP a_seconds A.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\n";
    let ok = format!("{head}a_seconds{{l=\"q\\\"b\\\\s\\nn\"}} +Inf\na_seconds -0.0\n# EOF\n");
    let parsed = openmetrics::parse(&ok).unwrap();
    let family = &parsed.families["a_seconds"];
    assert_eq!(family.samples.len(), 2);
    let labels = BTreeMap::from([("l".to_owned(), "q\"b\\s\nn".to_owned())]);
    assert_eq!(
        family.samples[&("a_seconds".to_owned(), labels)],
        Value(f64::INFINITY)
    );
    let bad = [
        ("a_seconds 1\n", "EOF"),
        ("a_seconds{l=\"x\"y\"} 1\n# EOF\n", "expected , or }"),
        ("a_seconds{l=\"C:\\temp\"} 1\n# EOF\n", "escape"),
        ("a_seconds{l=\"two\nlines\"} 1\n# EOF\n", "unterminated"),
        ("a_seconds{l=\"x\",} 1\n# EOF\n", "label name"),
        ("a_seconds{l=\"x\",l=\"y\"} 1\n# EOF\n", "twice"),
        ("a_seconds 1\na_seconds 2\n# EOF\n", "twice"),
        ("a_seconds Inf\n# EOF\n", "not a number"),
        ("a_seconds 0x1p3\n# EOF\n", "not a number"),
        ("a_seconds 1 123\n# EOF\n", "timestamp"),
        ("b 1\n# EOF\n", "outside"),
        ("a_seconds_total 1\n# EOF\n", "outside"),
        ("\n# EOF\n", "empty line"),
        ("# TYPE a_seconds gauge\n# EOF\n", "TYPE twice"),
    ];
    for (body, want) in bad {
        let text = format!("{head}{body}");
        match openmetrics::parse(&text) {
            Ok(_) => panic!("parsed:\n{text}"),
            Err(e) => assert!(e.contains(want), "{e:?} does not say {want:?}:\n{text}"),
        }
    }
    let types = [
        ("# TYPE c counter\nc_total -1\n# EOF\n", "counter"),
        ("# TYPE i info\ni_info 2\n# EOF\n", "info"),
        (
            "# TYPE u_bytes gauge\n# UNIT u_bytes seconds\n# EOF\n",
            "UNIT",
        ),
        ("# HELP h say \"x\"\n# EOF\n", "double quote"),
        (
            "# TYPE c counter\nc_total 1\n# HELP c late\n# EOF\n",
            "after its samples",
        ),
        (
            "# TYPE c counter\n# TYPE d gauge\n# HELP c again\n# EOF\n",
            "again",
        ),
    ];
    for (text, want) in types {
        match openmetrics::parse(text) {
            Ok(_) => panic!("parsed:\n{text}"),
            Err(e) => assert!(e.contains(want), "{e:?} does not say {want:?}:\n{text}"),
        }
    }
}

/// A strict reader of the OpenMetrics 1.0 text format, for the subset both writers produce:
/// gauge, counter and info families with HELP, TYPE and UNIT; samples without timestamps or
/// exemplars. Anything else is an error naming the line.
mod openmetrics {
    use std::collections::{BTreeMap, BTreeSet};

    /// A sample's value; equal when the bits are, or when both are NaN (so 0 and -0 differ).
    #[derive(Debug, Clone, Copy)]
    pub struct Value(pub f64);

    impl PartialEq for Value {
        fn eq(&self, other: &Self) -> bool {
            (self.0.is_nan() && other.0.is_nan()) || self.0.to_bits() == other.0.to_bits()
        }
    }

    pub type LabelSet = BTreeMap<String, String>;

    #[derive(Debug, Default)]
    pub struct Family {
        /// `unknown` when the family has no TYPE line.
        pub kind: String,
        pub unit: Option<String>,
        /// Unescaped.
        pub help: Option<String>,
        /// (sample name, labels) -> value
        pub samples: BTreeMap<(String, LabelSet), Value>,
        typed: bool,
    }

    #[derive(Debug, Default)]
    pub struct Exposition {
        pub families: BTreeMap<String, Family>,
        /// Value spellings outside the grammar that Prometheus reads all the same: `inf` and
        /// `-inf` (dtoa's, which both writers use), where the grammar says `+Inf` and `-Inf`.
        /// Go's strconv.ParseFloat, behind Prometheus' parsers and promtool, takes them.
        pub off_spec: BTreeSet<&'static str>,
    }

    pub fn parse(text: &str) -> Result<Exposition, String> {
        let body = text
            .strip_suffix("# EOF\n")
            .or_else(|| text.strip_suffix("# EOF"))
            .ok_or("the exposition does not end with the line `# EOF`")?;
        if !body.is_empty() && !body.ends_with('\n') {
            return Err("the line before `# EOF` has no newline".into());
        }
        let mut exposition = Exposition::default();
        // The family whose lines come now; a family's lines are together, metadata first.
        let mut current: Option<String> = None;
        for (n, line) in body.split_terminator('\n').enumerate() {
            let result = if let Some(meta) = line.strip_prefix('#') {
                metadata(&mut exposition, &mut current, meta)
            } else {
                sample(&mut exposition, current.as_deref(), line)
            };
            result.map_err(|e| format!("line {}: {e}: {line:?}", n + 1))?;
        }
        Ok(exposition)
    }

    fn metadata(
        exposition: &mut Exposition,
        current: &mut Option<String>,
        meta: &str,
    ) -> Result<(), String> {
        let rest = meta
            .strip_prefix(' ')
            .ok_or("a comment: only HELP, TYPE and UNIT lines start with #")?;
        let (keyword, rest) = rest
            .split_once(' ')
            .ok_or("a metadata line without a name")?;
        let (name, value) = rest
            .split_once(' ')
            .ok_or("a metadata line without a value")?;
        metric_name(name)?;
        if current.as_deref() != Some(name) {
            if exposition.families.contains_key(name) {
                return Err(format!("family {name} again, after another family"));
            }
            exposition
                .families
                .insert(name.to_owned(), Family::default());
            *current = Some(name.to_owned());
        }
        let family = exposition
            .families
            .get_mut(name)
            .ok_or("a family that vanished")?;
        if !family.samples.is_empty() {
            return Err(format!("{keyword} after its samples"));
        }
        match keyword {
            "HELP" if family.help.is_none() => {
                let (help, _) = unescape(value, false)?;
                family.help = Some(help);
            }
            "TYPE" if !family.typed => {
                if !["counter", "gauge", "info", "unknown"].contains(&value) {
                    return Err(format!("type {value}, which neither writer uses"));
                }
                family.kind = value.to_owned();
                family.typed = true;
            }
            "UNIT" if family.unit.is_none() => {
                if !name.ends_with(&format!("_{value}")) {
                    return Err(format!("UNIT {value} is not the suffix of {name}"));
                }
                family.unit = Some(value.to_owned());
            }
            "HELP" | "TYPE" | "UNIT" => return Err(format!("{keyword} twice")),
            _ => return Err(format!("{keyword}: not HELP, TYPE or UNIT")),
        }
        Ok(())
    }

    fn sample(
        exposition: &mut Exposition,
        current: Option<&str>,
        line: &str,
    ) -> Result<(), String> {
        if line.is_empty() {
            return Err("an empty line".into());
        }
        let end = line.find(['{', ' ']).ok_or("a sample without a value")?;
        let (name, rest) = line.split_at(end);
        metric_name(name)?;
        let (labels, rest) = match rest.strip_prefix('{') {
            Some(rest) => label_set(rest)?,
            None => (LabelSet::new(), rest),
        };
        let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
        if value.contains(' ') {
            return Err("a timestamp or an exemplar, which neither writer writes".into());
        }
        let (value, off_spec) = number(value)?;
        if let Some(spelling) = off_spec {
            exposition.off_spec.insert(spelling);
        }

        let family_name = current.ok_or("a sample outside any family")?;
        let family = exposition
            .families
            .get_mut(family_name)
            .ok_or("a family that vanished")?;
        if !family.typed {
            family.kind = "unknown".into();
        }
        let suffix = match family.kind.as_str() {
            "counter" => "_total",
            "info" => "_info",
            _ => "",
        };
        if name.strip_prefix(family_name) != Some(suffix) {
            return Err(format!(
                "sample {name} outside its family: {family_name} ({}) has samples {family_name}{suffix}",
                family.kind
            ));
        }
        match family.kind.as_str() {
            "counter" if value.is_nan() || value < 0.0 => {
                return Err("a counter's total must be a number, at least 0".into());
            }
            "info" if value != 1.0 => return Err("an info sample's value must be 1".into()),
            _ => {}
        }
        let key = (name.to_owned(), labels);
        if family.samples.insert(key, Value(value)).is_some() {
            return Err("the same series twice".into());
        }
        Ok(())
    }

    /// `name="value",...}` (after the `{`): the labels and what follows the `}`.
    fn label_set(mut rest: &str) -> Result<(LabelSet, &str), String> {
        let mut labels = LabelSet::new();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        loop {
            let (name, after) = rest.split_once('=').ok_or("a label without =")?;
            label_name(name)?;
            let quoted = after.strip_prefix('"').ok_or("a label value not quoted")?;
            let (value, after) = unescape(quoted, true)?;
            if labels.insert(name.to_owned(), value).is_some() {
                return Err(format!("label {name} twice"));
            }
            if let Some(after) = after.strip_prefix(',') {
                if after.starts_with('}') {
                    return Err("no label name after ,".into());
                }
                rest = after;
            } else if let Some(after) = after.strip_prefix('}') {
                return Ok((labels, after));
            } else {
                return Err("expected , or } after a label value".into());
            }
        }
    }

    /// Undoes `\\`, `\"` and `\n`, the only escapes there are; in a label value, up to the
    /// closing quote (returns what follows it), in HELP to the end, where a `"` must be escaped.
    fn unescape(s: &str, quoted: bool) -> Result<(String, &str), String> {
        let mut out = String::with_capacity(s.len());
        let mut chars = s.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, 'n')) => out.push('\n'),
                    other => {
                        return Err(format!(
                            "escape \\{} is none of \\\\, \\\" and \\n",
                            other.map_or(String::new(), |(_, c)| c.to_string())
                        ));
                    }
                },
                '"' if quoted => return Ok((out, &s[i + 1..])),
                '"' => return Err("a double quote not escaped".into()),
                c => out.push(c),
            }
        }
        if quoted {
            Err("an unterminated label value".into())
        } else {
            Ok((out, ""))
        }
    }

    fn metric_name(name: &str) -> Result<(), String> {
        let mut chars = name.chars();
        let first = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
        if first && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            Ok(())
        } else {
            Err(format!("{name:?} is not a metric name"))
        }
    }

    fn label_name(name: &str) -> Result<(), String> {
        let mut chars = name.chars();
        let first = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if first && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Ok(())
        } else {
            Err(format!("{name:?} is not a label name"))
        }
    }

    /// A value as the grammar has it (`realnumber`, `+Inf`, `-Inf`, `NaN`), or one of the
    /// spellings in [`Exposition::off_spec`], which is returned with it.
    fn number(s: &str) -> Result<(f64, Option<&'static str>), String> {
        match s {
            "+Inf" => return Ok((f64::INFINITY, None)),
            "-Inf" => return Ok((f64::NEG_INFINITY, None)),
            "NaN" => return Ok((f64::NAN, None)),
            "inf" => return Ok((f64::INFINITY, Some("inf"))),
            "-inf" => return Ok((f64::NEG_INFINITY, Some("-inf"))),
            _ => {}
        }
        // [sign] (digits [. digits*] | . digits) [e [sign] digits]
        let b = s.as_bytes();
        let mut i = 0;
        let digits = |i: &mut usize| {
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - start
        };
        if matches!(b.first(), Some(b'+' | b'-')) {
            i += 1;
        }
        let mut mantissa = digits(&mut i);
        if b.get(i) == Some(&b'.') {
            i += 1;
            mantissa += digits(&mut i);
        }
        let mut ok = mantissa > 0;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            ok &= digits(&mut i) > 0;
        }
        if !ok || i != b.len() {
            return Err(format!("{s:?} is not a number"));
        }
        let v = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
        Ok((v, None))
    }
}
