//! Snapshot -> exposition, and the exporter's own metrics.
//!
//! Everything is encoded by prometheus-client, which writes OpenMetrics. The Prometheus text
//! format 0.0.4 (what curl and promtool read) differs only in metadata lines, so it is derived
//! from the same output by [`openmetrics_to_text`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{ChecksConfig, Config};
use crate::snapshot::SnapshotStore;

mod posture;

pub const PREFIX: &str = "infraaudit";

/// (account_id, service, operation)
type ApiKey = (String, &'static str, String);

/// AWS calls, counted per attempt by the SDK interceptor in `aws`. Sorted maps, so that the
/// exposition is in a stable order.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    requests: Mutex<BTreeMap<ApiKey, u64>>,
    errors: Mutex<BTreeMap<(ApiKey, &'static str), u64>>,
}

impl ApiMetrics {
    /// One attempt handed to the network, counted before its answer: an attempt whose caller
    /// went away (an AssumeRole whose waiters all timed out) was still sent.
    pub fn record_request(&self, account_id: &str, service: &'static str, operation: &str) {
        let key = (account_id.to_owned(), service, operation.to_owned());
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry(key).or_default() += 1;
        }
    }

    /// One attempt whose answer was read: `error` is its code when it failed.
    pub fn record(
        &self,
        account_id: &str,
        service: &'static str,
        operation: &str,
        error: Option<&'static str>,
    ) {
        self.record_request(account_id, service, operation);
        if let Some(code) = error {
            self.record_error(account_id, service, operation, code);
        }
    }

    /// The error code of an attempt whose failure was read.
    pub fn record_error(
        &self,
        account_id: &str,
        service: &'static str,
        operation: &str,
        code: &'static str,
    ) {
        let key = (account_id.to_owned(), service, operation.to_owned());
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry((key, code)).or_default() += 1;
        }
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let requests = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        let errors = self.errors.lock().map(|m| m.clone()).unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "aws_api_requests",
            "AWS API requests sent, retries included, since the exporter started.",
            None,
            MetricType::Counter,
        )?;
        for ((account, service, operation), n) in &requests {
            let labels: &Labels = &[
                ("account_id", account),
                ("service", service),
                ("operation", operation),
            ];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "aws_api_errors",
            "AWS API requests that failed, retries included, by error code (a bounded set: other_4xx and other_5xx stand for the rest).",
            None,
            MetricType::Counter,
        )?;
        for (((account, service, operation), code), n) in &errors {
            let labels: &Labels = &[
                ("account_id", account),
                ("service", service),
                ("operation", operation),
                ("code", code),
            ];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the Accept header names it with a non-zero weight, else text 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let wants_om = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let q = parts
                    .filter_map(|p| p.strip_prefix("q="))
                    .find_map(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                media.eq_ignore_ascii_case("application/openmetrics-text") && q > 0.0
            })
        });
        if wants_om {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The registry behind `/metrics`.
pub struct Exporter {
    registry: Registry,
    /// Turns to render, one per CPU, handed out in arrival order. Renders are CPU-bound: more
    /// at once finish no sooner, and each holds its own copies of the exposition (about 27 MB
    /// at 100,000 series): 64 concurrent scrapes peaked at 1.6-2.0 GB of RSS without this
    /// limit, 0.5-0.7 GB with it (BENCHMARKS.md).
    renders: Arc<Semaphore>,
}

impl Exporter {
    pub fn new(
        store: Arc<SnapshotStore>,
        api: Arc<ApiMetrics>,
        config: &Config,
        version: &'static str,
        revision: &'static str,
        clock: fn() -> f64,
    ) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        // The registry ends help texts with a period itself.
        registry.register(
            "build",
            "Version and git revision of this infraaudit binary",
            Info::new(vec![("version", version), ("revision", revision)]),
        );
        let every = |d: Duration| humantime::format_duration(d).to_string();
        let c = &config.collectors;
        registry.register_collector(Box::new(SnapshotCollector {
            store,
            api,
            every: posture::Every {
                iam: every(c.iam.interval),
                s3: every(c.s3.interval),
                ec2: every(c.ec2.interval),
            },
            checks: config.checks.clone(),
            intervals: crate::collector::NAMES
                .into_iter()
                .filter_map(|name| Some((name, c.get(name)?.interval.as_secs_f64())))
                .collect(),
            clock,
        }));
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            registry,
            renders: Arc::new(Semaphore::new(cpus)),
        }
    }

    /// A turn to render (and compress) a scrape: hold it until the body is encoded. Waits
    /// while one render per CPU is running.
    pub async fn render_turn(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed; None would only mean "render without a turn".
        self.renders.clone().acquire_owned().await.ok()
    }

    /// The exposition of the current snapshot. Blocking: call it off the async threads, within
    /// a [`Exporter::render_turn`].
    pub fn render(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(64 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(match format {
            Format::OpenMetrics => out,
            Format::Text => openmetrics_to_text(&out),
        })
    }
}

/// Encodes the current snapshot at scrape time; ages are computed from `clock`.
#[derive(Debug)]
struct SnapshotCollector {
    store: Arc<SnapshotStore>,
    api: Arc<ApiMetrics>,
    every: posture::Every,
    checks: ChecksConfig,
    /// (collector, configured interval in seconds), for staleness alerts.
    intervals: Vec<(&'static str, f64)>,
    clock: fn() -> f64,
}

type Labels<'a> = [(&'static str, &'a str)];

/// One gauge family: a descriptor, then a sample per (labels, value). Labels borrow from the
/// snapshot, so a scrape copies no label strings.
fn gauges<'a, const N: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl Iterator<Item = ([(&'static str, &'a str); N], f64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// One info family (`_info` series of value 1), labels borrowed like [`gauges`].
fn infos<'a, const N: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = [(&'static str, &'a str); N]>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Info)?;
    for labels in series {
        metric.encode_info(&labels)?;
    }
    Ok(())
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn status_labels<'a>(account: &'a str, collector: &'static str) -> [(&'static str, &'a str); 2] {
    [("account_id", account), ("collector", collector)]
}

impl PromCollector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.store.load();
        let now = (self.clock)();
        self.api.encode(&mut encoder)?;

        infos(
            &mut encoder,
            "account",
            "Audited accounts: 1 per account, with its display name.",
            snap.accounts.iter().map(|a| {
                [
                    ("account_id", a.id.as_str()),
                    ("account_name", a.name.as_str()),
                ]
            }),
        )?;
        posture::encode(&mut encoder, &snap, now, &self.every, &self.checks)?;

        let e = &self.every;
        let status_help = |what: &str| {
            format!(
                "{what} of the last background run of each collector (iam every {}, s3 every {}, ec2 every {}).",
                e.iam, e.s3, e.ec2
            )
        };
        gauges(
            &mut encoder,
            "collector_success",
            &status_help("1 if successful, 0 if failed: the outcome"),
            None,
            snap.entries.iter().map(|((account, collector), e)| {
                (status_labels(account, collector), flag(e.status.success))
            }),
        )?;
        gauges(
            &mut encoder,
            "collector_duration",
            &status_help("Duration"),
            Some(&Unit::Seconds),
            snap.entries.iter().map(|((account, collector), e)| {
                (status_labels(account, collector), e.status.duration_seconds)
            }),
        )?;
        gauges(
            &mut encoder,
            "collector_consecutive_failures",
            &format!(
                "Failed runs of each collector in a row, 0 after a success (iam every {}, s3 every {}, ec2 every {}).",
                e.iam, e.s3, e.ec2
            ),
            None,
            snap.entries.iter().map(|((account, collector), e)| {
                (
                    status_labels(account, collector),
                    f64::from(e.status.consecutive_failures),
                )
            }),
        )?;
        gauges(
            &mut encoder,
            "collector_interval",
            "Configured interval of each collector: from the start of one run to the start of the next.",
            Some(&Unit::Seconds),
            self.intervals
                .iter()
                .map(|(collector, secs)| ([("collector", *collector)], *secs)),
        )?;
        gauges(
            &mut encoder,
            "collector_last_success_timestamp",
            &status_help("Unix time of the end"),
            Some(&Unit::Seconds),
            snap.entries.iter().filter_map(|((account, collector), e)| {
                Some((status_labels(account, collector), e.status.last_success?))
            }),
        )?;
        Ok(())
    }
}

/// Rewrites OpenMetrics text as Prometheus text 0.0.4: drops `# UNIT` and `# EOF`, names
/// counter families with their `_total` sample name, and turns info families into `_info` gauges.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut pending_help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            if let Some(help) = pending_help.take() {
                let text = help.strip_prefix(name).map_or(help, str::trim_start);
                let _ = writeln!(out, "# HELP {name}{suffix} {text}");
            }
            let _ = writeln!(out, "# TYPE {name}{suffix} {kind}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        // What Prometheus 2.x sends.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0")),
            Format::Text
        );
    }

    #[tokio::test]
    async fn renders_beyond_one_per_cpu_wait_for_a_turn() {
        let store = Arc::new(SnapshotStore::new(Vec::new(), 0));
        let exporter = Arc::new(Exporter::new(
            store,
            Arc::default(),
            &Config::default(),
            "v",
            "r",
            || 0.0,
        ));
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let mut turns = Vec::new();
        for _ in 0..cpus {
            turns.push(exporter.render_turn().await);
        }
        let waiting = exporter.clone();
        let mut next = tokio::spawn(async move { waiting.render_turn().await.is_some() });
        // Not a synchronisation: nothing may arrive while every turn is taken.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut next)
                .await
                .is_err(),
            "a render got a turn while {cpus} others held every one"
        );
        turns.pop();
        let got = tokio::time::timeout(Duration::from_secs(30), next).await;
        assert!(
            matches!(got, Ok(Ok(true))),
            "the waiting render never got a turn"
        );
    }

    #[test]
    fn conversion_to_text_format() {
        let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total{a=\"1\"} 3\n\
# HELP x_build Build.\n# TYPE x_build info\nx_build_info{version=\"1\"} 1\n\
# HELP x_age_seconds Age.\n# TYPE x_age_seconds gauge\n# UNIT x_age_seconds seconds\nx_age_seconds 1.5\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total{a=\"1\"} 3\n\
# HELP x_build_info Build.\n# TYPE x_build_info gauge\nx_build_info{version=\"1\"} 1\n\
# HELP x_age_seconds Age.\n# TYPE x_age_seconds gauge\nx_age_seconds 1.5\n"
        );
    }
}
