//! Load benchmark target: the real `/metrics` serving path (SnapshotStore -> Exporter ->
//! `http::serve`) over a synthetic snapshot of about 100,000 series, with a background task that
//! records a new run every second as the scheduler does. `scripts/bench-load.sh` drives it with
//! wrk; see BENCHMARKS.md.
//!
//! Stdout, one fact per line, for the script: `encode ...` timings measured in-process before
//! serving (and `owners ...`, the per-owner split that scrapes compute when owners are on), `series N`, `listening ADDR`, then `refreshes N retained M checked K` after each
//! recorded run: of K collector data replaced more than 30 s ago, M are still alive. Only scrapes
//! in flight may hold an old snapshot, so an M above 0 is a leak.
//!
//! `scripts/bench-abuse.sh` serves it to idle and slow strangers beside one scraper
//! (`--max-connections` sets the cap). `scripts/bench-scrape.sh` also uses it: `--accounts` sizes the snapshot (10, 97, 970 make about
//! 10k, 100k, 1M series), `--memory` prints `memory ...` (RSS and live heap bytes with the
//! accounts but no data, then with the whole snapshot), and `--churn-cycles N` refreshes every
//! (account, collector) N times as fast as it can, with a render after each cycle, prints
//! `churn cycle=K ...` every 100 cycles and exits instead of serving.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use infraaudit::aws::counters::ApiMetrics;
use infraaudit::aws::ec2::Instance;
use infraaudit::aws::iam::PasswordPolicy;
use infraaudit::aws::s3::{Encryption, PublicAccessBlock};
use infraaudit::collector::ec2::{Ec2Data, RegionRecord};
use infraaudit::collector::iam::{AccessKeyRecord, IamData, RootRecord, UserRecord};
use infraaudit::collector::s3::{BucketRecord, S3Data};
use infraaudit::collector::{self as collectors, Recorded};
use infraaudit::config::Config;
use infraaudit::http::{self, AppState};
use infraaudit::metrics::{Exporter, Format};
use infraaudit::snapshot::{AccountInfo, Outcome, SnapshotStore};
use infraaudit::time::unix_now;

/// Counts live heap bytes, so memory figures need not rely on RSS alone (glibc keeps freed
/// memory in its arenas).
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

#[derive(Parser)]
struct Args {
    /// Where to serve; port 0 picks a free one (printed as `listening ADDR`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Accounts in the snapshot; about 1,030 series each, so 97 make 100,000 (+-0.3%).
    #[arg(long, default_value_t = 97)]
    accounts: usize,
    /// Time between two recorded runs of the refresher.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    refresh_every: Duration,
    /// Renders per format for the in-process encoder timings (0: skip them).
    #[arg(long, default_value_t = 5)]
    measure: usize,
    /// Stops by itself after this long, should whoever started it not stop it.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    max_runtime: Duration,
    /// Print RSS and live heap bytes before and after the snapshot is filled.
    #[arg(long)]
    memory: bool,
    /// Run this many full refresh cycles back to back, report memory every 100, and exit.
    #[arg(long, default_value_t = 0)]
    churn_cycles: u64,
    /// `server.max_connections` (default: the daemon's default).
    #[arg(long)]
    max_connections: Option<usize>,
}

/// Resident set size of this process, in KiB (0 where /proc is missing).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Every (account, collector) refreshed `cycles` times with moving data (keys rotated, users
/// added and removed, buckets and instances flipped), one render per cycle as a scrape would do.
fn churn(
    store: &SnapshotStore,
    exporter: &Exporter,
    accounts: &[AccountInfo],
    cycles: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let report = |cycle: u64| {
        println!(
            "churn cycle={cycle} rss_kb={} live_bytes={}",
            rss_kb(),
            ALLOCATOR.allocated()
        );
    };
    report(0);
    for generation in 1..=cycles {
        record_all(store, accounts, generation, unix_now() as i64);
        exporter.render(Format::Text);
        if generation % 100 == 0 {
            report(generation);
        }
    }
    Ok(())
}

/// One successful run of every (account, collector), with the data of `generation`.
fn record_all(store: &SnapshotStore, accounts: &[AccountInfo], generation: u64, now: i64) {
    for (a, account) in accounts.iter().enumerate() {
        for collector in COLLECTORS {
            let data = data(collector, &account.id, a, generation, now);
            store.record(
                &account.id,
                collector,
                Outcome::Success(data),
                1.5,
                now as f64,
            );
        }
    }
}

const USERS: usize = 60;
const BUCKETS: usize = 30;
const INSTANCES: usize = 80;
const REGIONS: [&str; 4] = ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2"];
const DAY: i64 = 86_400;

fn account_id(a: usize) -> String {
    format!("{:012}", 100_000_000_000 + a * 7_919)
}

fn ts(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

/// `AKIA` and 16 characters from AWS's alphabet, the same for the same (account, user, slot, generation).
fn access_key_id(rng: &mut fastrand::Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.usize(..ALPHABET.len())]))
        .collect();
    format!("AKIA{tail}")
}

/// One account's IAM data. `generation` moves it the way successive runs do: one user rotates a
/// key, and a temporary user comes (odd generations) and goes (even ones), so that series appear
/// and disappear while the total stays put.
fn iam(a: usize, generation: u64, now: i64) -> IamData {
    let mut rng = fastrand::Rng::with_seed(a as u64);
    let mut users = Vec::with_capacity(USERS + 1);
    let mut keys = Vec::new();
    let extra = generation % 2 == 1;
    let rotated = (generation as usize / 2) % USERS;
    for u in 0..USERS + usize::from(extra) {
        let kind = ["svc", "ci", "dev", "ops", "data"][u % 5];
        let name = format!("{kind}-user-{u:04}");
        let created = now - DAY * rng.i64(30..2_000);
        let console = rng.u8(..10) < 4;
        users.push(UserRecord {
            user: name.clone(),
            created: Some(ts(created)),
            password_enabled: console,
            mfa_active: console && rng.bool(),
            password_last_used: console.then(|| ts(now - rng.i64(3_600..90 * DAY))),
        });
        let slots = if rng.u8(..10) < 4 { 2 } else { 1 };
        for slot in 1..=slots {
            let mut key_rng = rng.fork();
            let mut key_created = created + DAY * i64::from(slot);
            if u == rotated && slot == 1 {
                // A rotation: a new key id, created now.
                key_rng = fastrand::Rng::with_seed(generation ^ (a as u64) << 32);
                key_created = now - 60;
            }
            keys.push(AccessKeyRecord {
                user: name.clone(),
                access_key_id: access_key_id(&mut key_rng),
                slot,
                created: ts(key_created.min(now)),
                active: rng.u8(..10) < 9,
                last_used: (rng.u8(..10) < 8).then(|| ts(now - rng.i64(60..60 * DAY))),
            });
        }
    }
    IamData {
        report_generated_at: Some(ts(now - 30)),
        keys,
        root: Some(RootRecord {
            mfa_active: true,
            password_enabled: Some(a.is_multiple_of(3)),
            active_keys: 0,
            last_used: Some(ts(now - 40 * DAY)),
            virtual_mfa: Some(a.is_multiple_of(4)),
        }),
        users,
        password_policy: Some(PasswordPolicy {
            minimum_length: Some(14),
            max_age_days: Some(90),
            reuse_prevention: Some(24),
            require_symbols: true,
            require_numbers: true,
            require_uppercase: true,
            require_lowercase: a.is_multiple_of(2),
        }),
        password_policy_denied: false,
    }
}

/// One account's buckets; `generation` flips one bucket's public access block and policy.
fn s3(a: usize, generation: u64) -> S3Data {
    let mut rng = fastrand::Rng::with_seed(a as u64 + 1_000_000);
    let flipped = generation as usize % BUCKETS;
    let buckets = (0..BUCKETS)
        .map(|b| {
            let purpose = ["logs", "artifacts", "backups", "data", "static"][b % 5];
            let region = REGIONS[b % REGIONS.len()];
            let open = (b == flipped) ^ (rng.u8(..20) == 0);
            let block = !open && rng.u8(..10) < 8;
            BucketRecord {
                name: format!("acme-{}-{purpose}-{b:03}-{region}", account_id(a)),
                region: region.to_owned(),
                public_access_block: Some(PublicAccessBlock {
                    block_public_acls: block,
                    ignore_public_acls: block,
                    block_public_policy: block,
                    restrict_public_buckets: block,
                }),
                policy_public: Some(open),
                acl_public: Some(false),
                encryption: Some(match rng.u8(..10) {
                    0 => Encryption::None,
                    1..=3 => Encryption::Algorithm("aws:kms"),
                    _ => Encryption::Algorithm("AES256"),
                }),
                secure_transport: Some(rng.u8(..4) == 0),
                mfa_delete: Some(rng.u8(..20) == 0),
                denied: Vec::new(),
                tagged: Default::default(),
            }
        })
        .collect();
    S3Data {
        account_public_access_block: PublicAccessBlock::default(),
        buckets,
        tagging: Default::default(),
    }
}

/// One account's instances over four regions; `generation` stops or starts one of them.
fn ec2(a: usize, generation: u64) -> Ec2Data {
    let mut rng = fastrand::Rng::with_seed(a as u64 + 2_000_000);
    let toggled = generation as usize % INSTANCES;
    let mut per_region = vec![Vec::new(); REGIONS.len()];
    for i in 0..INSTANCES {
        let id: String = (0..17)
            .map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)]))
            .collect();
        let running = (i == toggled) ^ (rng.u8(..10) < 9);
        per_region[i % REGIONS.len()].push(Instance {
            instance_id: format!("i-{id}"),
            name: format!("{}-{i:03}", ["web", "worker", "db", "bastion"][i % 4]),
            state: if running { "running" } else { "stopped" }.to_owned(),
            instance_type: ["t3.medium", "m6i.large", "c6i.xlarge", "r6g.2xlarge"][rng.usize(..4)]
                .to_owned(),
            imdsv2_required: rng.u8(..10) < 7,
            public_ip: rng.u8(..10) < 2,
            tags: Vec::new(),
            tagged: Default::default(),
        });
    }
    Ec2Data {
        regions: REGIONS
            .iter()
            .zip(per_region)
            .map(|(region, instances)| RegionRecord {
                region: (*region).to_owned(),
                success: true,
                instances: Arc::new(instances),
            })
            .collect(),
        tagging: Default::default(),
    }
}

/// One run's data, recorded (its series encoded) as the scheduler does.
fn data(collector: &str, account: &str, a: usize, generation: u64, now: i64) -> Recorded {
    match collector {
        "iam" => collectors::iam::SPEC.record(account, Arc::new(iam(a, generation, now))),
        "s3" => collectors::s3::SPEC.record(account, Arc::new(s3(a, generation))),
        _ => collectors::ec2::SPEC.record(account, Arc::new(ec2(a, generation))),
    }
}

const COLLECTORS: [&str; 3] = ["iam", "s3", "ec2"];
/// Longer than any scrape, which is what may still hold a replaced snapshot.
const RETAIN_GRACE: Duration = Duration::from_secs(30);
/// The calls a run makes, per collector, as the SDK interceptor counts them.
const OPERATIONS: [(&str, &[&str]); 4] = [
    ("sts", &["AssumeRole"]),
    (
        "iam",
        &[
            "GenerateCredentialReport",
            "GetCredentialReport",
            "GetAccountPasswordPolicy",
            "GetAccountSummary",
            "ListAccessKeys",
        ],
    ),
    (
        "s3",
        &[
            "ListBuckets",
            "GetBucketPolicyStatus",
            "GetBucketAcl",
            "GetPublicAccessBlock",
            "GetBucketEncryption",
        ],
    ),
    ("ec2", &["DescribeRegions", "DescribeInstances"]),
];

fn count_api_calls(api: &ApiMetrics, account: &str, service: &str) {
    for (s, operations) in OPERATIONS {
        if s == service || s == "sts" {
            for op in operations {
                api.record(account, s, op, None);
            }
        }
    }
}

fn series(exposition: &str) -> usize {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// What `http.rs` does for `Accept-Encoding: gzip`.
fn gzip(body: &str) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(body.as_bytes())?;
    enc.finish()
}

/// Median and minimum wall time of `runs` calls of `f`, in milliseconds.
fn time_ms(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[0])
}

fn measure(exporter: &Exporter, runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let text = exporter.render(Format::Text);
    let om = exporter.render(Format::OpenMetrics);
    let gz = gzip(&text)?;
    println!(
        "bytes text={} openmetrics={} text_gzip={}",
        text.len(),
        om.len(),
        gz.len()
    );
    let mut failed = false;
    let (med, min) = time_ms(runs, || drop(exporter.render(Format::Text)));
    println!("encode text median_ms={med:.1} min_ms={min:.1}");
    let (med, min) = time_ms(runs, || drop(exporter.render(Format::OpenMetrics)));
    println!("encode openmetrics median_ms={med:.1} min_ms={min:.1}");
    let (med, min) = time_ms(runs, || {
        failed |= gzip(&exporter.render(Format::Text)).is_err();
    });
    println!("encode text+gzip_whole median_ms={med:.1} min_ms={min:.1}");
    let spliced = exporter.render_body(Format::Text, true).into_bytes();
    println!("bytes text_gzip_spliced={}", spliced.len());
    let (med, min) = time_ms(runs, || drop(exporter.render_body(Format::Text, true)));
    println!("encode text+gzip median_ms={med:.1} min_ms={min:.1}");
    if failed {
        return Err("gzip failed".into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let now = unix_now() as i64;
    let accounts: Vec<AccountInfo> = (0..args.accounts)
        .map(|a| AccountInfo {
            id: account_id(a),
            name: format!("team-{a:03}-{}", ["prod", "staging", "dev"][a % 3]),
            ou: String::new(),
            owner: String::new(),
        })
        .collect();
    let store = Arc::new(SnapshotStore::new(
        accounts.clone(),
        accounts.len() * COLLECTORS.len(),
    ));
    let api = Arc::new(ApiMetrics::default());
    let (empty_rss, empty_live) = (rss_kb(), ALLOCATOR.allocated());
    record_all(&store, &accounts, 0, now);
    for account in &accounts {
        for collector in COLLECTORS {
            count_api_calls(&api, &account.id, collector);
        }
    }
    let mut config = Config::default();
    if let Some(max) = args.max_connections {
        config.server.max_connections = max;
    }
    let exporter = Exporter::new(
        store.clone(),
        api.clone(),
        &config,
        infraaudit::VERSION,
        infraaudit::REVISION,
        unix_now,
    );
    if args.memory {
        // After a first scrape: the snapshot plus the series encoded once for every scrape.
        drop(exporter.render(Format::Text));
        println!(
            "memory empty_rss_kb={empty_rss} empty_live_bytes={empty_live} full_rss_kb={} full_live_bytes={} encoded_bytes={}",
            rss_kb(),
            ALLOCATOR.allocated(),
            exporter.cached_bytes()
        );
    }
    if args.churn_cycles > 0 {
        println!("series {}", series(&exporter.render(Format::Text)));
        return churn(&store, &exporter, &accounts, args.churn_cycles);
    }
    if args.measure > 0 {
        measure(&exporter, args.measure)?;
        // With owners configured, a scrape also splits the failed resources per owner from the
        // findings (at most once a minute per snapshot): its cost when it is computed.
        let snap = store.load();
        let checks = infraaudit::config::ChecksConfig::default();
        let (med, min) = time_ms(args.measure, || {
            drop(infraaudit::checks::failed_by_owner(
                &snap,
                unix_now(),
                &checks,
            ))
        });
        println!("owners failed_by_owner median_ms={med:.1} min_ms={min:.1}");
    }
    println!("series {}", series(&exporter.render(Format::Text)));

    let listener = TcpListener::bind(&args.listen).await?;
    println!("listening {}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let state = Arc::new(AppState {
        exporter,
        store: store.clone(),
        config: Arc::new(config),
        api: None,
    });

    // The refresher: one (account, collector) pair after the other, each run with new data,
    // recorded through the store as `scheduler::run_once` does.
    let refresher = {
        let (store, api, shutdown) = (store.clone(), api.clone(), shutdown.clone());
        let every = args.refresh_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let pairs = accounts.len() * COLLECTORS.len();
            let mut replaced: VecDeque<(Instant, Weak<Recorded>)> = VecDeque::new();
            let (mut retained, mut checked) = (0u64, 0u64);
            for n in 1u64.. {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                let i = (n as usize - 1) % pairs.max(1);
                let (a, collector) = (i / COLLECTORS.len(), COLLECTORS[i % COLLECTORS.len()]);
                let generation = n / pairs.max(1) as u64 + 1;
                let started = Instant::now();
                let id = &accounts[a].id;
                let data = data(collector, id, a, generation, unix_now() as i64);
                count_api_calls(&api, id, collector);
                let took = started.elapsed().as_secs_f64();
                let old = store
                    .load()
                    .entries
                    .get(&(id.clone(), collector))
                    .and_then(|e| e.data.as_ref().map(Arc::downgrade));
                store.record(id, collector, Outcome::Success(data), took, unix_now());
                replaced.extend(old.map(|w| (Instant::now(), w)));
                while replaced
                    .front()
                    .is_some_and(|(at, _)| at.elapsed() > RETAIN_GRACE)
                {
                    if let Some((_, old)) = replaced.pop_front() {
                        checked += 1;
                        retained += u64::from(old.strong_count() > 0);
                    }
                }
                println!("refreshes {n} retained {retained} checked {checked}");
            }
        })
    };

    let stop = shutdown.clone();
    let max_runtime = args.max_runtime;
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            () = tokio::time::sleep(max_runtime) => eprintln!("metrics_load: max runtime reached, stopping"),
        }
        stop.cancel();
    });
    http::serve(listener, state, shutdown).await;
    refresher.await?;
    Ok(())
}
