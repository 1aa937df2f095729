//! Snapshot -> exposition, and the exporter's own metrics.
//!
//! The series of each (account, collector) are encoded when its data changes and reused by
//! every scrape until it changes again (see [`expo`]); a scrape writes the headers, splices
//! those bytes, computes the ages and encodes the few small families that move on their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::aws::counters::ApiMetrics;
use crate::collector::{self, Check, Spec};
use crate::config::{ChecksConfig, Config};
use crate::expo::{Body, Family, Header, Recorder, SECONDS, Value, Writer, flag};
use crate::snapshot::{Snapshot, SnapshotStore};

pub use crate::expo::{Format, PREFIX};

/// The AWS call counters of [`ApiMetrics`].
fn encode_api(api: &ApiMetrics, encoder: &mut Writer) {
    let requests = api.requests();
    let errors = api.errors();
    encoder.live(
        Family::counter(
            "aws_api_requests",
            "AWS API requests sent, retries included, since the exporter started.",
        ),
        requests.iter().map(|((account, service, operation), n)| {
            (
                [
                    ("account_id", account.as_str()),
                    ("service", *service),
                    ("operation", operation.as_str()),
                ],
                Value::U64(*n),
            )
        }),
    );
    encoder.live(
            Family::counter(
                "aws_api_errors",
                "AWS API requests that failed, retries included, by error code (a bounded set: other_4xx and other_5xx stand for the rest).",
            ),
            errors.iter().map(|(((account, service, operation), code), n)| {
                (
                    [
                        ("account_id", account.as_str()),
                        ("service", *service),
                        ("operation", operation.as_str()),
                        ("code", *code),
                    ],
                    Value::U64(*n),
                )
            }),
        );
    let dropped = api.dropped();
    encoder.live(
            Family::counter(
                "aws_credentials_dropped",
                "Assumed-role credentials dropped so that the next attempt assumes the role again: AWS rejected them (code: its error code), or data of another account came back (code: account_mismatch).",
            ),
            dropped.iter().map(|((account, code), n)| {
                (
                    [("account_id", account.as_str()), ("code", *code)],
                    Value::U64(*n),
                )
            }),
        );
    let waited = api.waited();
    encoder.live(
            Family::counter_with_unit(
                "aws_concurrency_wait",
                "Time the account's AWS calls waited for a concurrency slot (aws.max_concurrency per account, then aws.max_concurrency_total), summed over calls.",
                SECONDS,
            ),
            waited
                .iter()
                .map(|(account, s)| ([("account_id", account.as_str())], Value::F64(*s))),
        );
}

impl Format {
    /// The format the `Accept` header prefers, by q-value (RFC 9110, section 12.5.1):
    /// OpenMetrics when the header names `application/openmetrics-text` with a q above 0 and at
    /// least the text format's q, else text 0.0.4. Text's q is that of the most specific range
    /// that matches it: `text/plain` (any version: Prometheus 3 offers 1.0.0, a superset of what
    /// we write), then `text/*`, then `*/*`. A tie goes to OpenMetrics, as Prometheus' own
    /// default order asks. Like client_golang, `*/*` alone or no header at all gets text.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let mut openmetrics: Option<f32> = None;
        // The highest q of text/plain, text/* and */* ranges, most specific first.
        let mut text: [Option<f32>; 3] = [None; 3];
        let ranges = mediatype::MediaTypeList::new(accept.unwrap_or_default());
        for range in ranges.filter_map(Result::ok) {
            let Some(q) = qvalue(&range) else { continue };
            // Names compare case-insensitively.
            let (ty, sub) = (range.ty, range.subty);
            let slot = if ty == "application" && sub == "openmetrics-text" {
                &mut openmetrics
            } else if ty == "text" && sub == "plain" {
                &mut text[0]
            } else if ty == "text" && sub == "*" {
                &mut text[1]
            } else if ty == "*" && sub == "*" {
                &mut text[2]
            } else {
                continue;
            };
            *slot = Some(slot.map_or(q, |seen| seen.max(q)));
        }
        let text_q = text.into_iter().flatten().next().unwrap_or(0.0);
        match openmetrics {
            Some(q) if q > 0.0 && q >= text_q => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A range's `q` parameter (1 when absent); None when it is not a number from 0 to 1, which
/// makes the range malformed, so it is ignored.
fn qvalue(range: &mediatype::MediaType<'_>) -> Option<f32> {
    use mediatype::ReadParams as _;
    let Some(q) = range.get_param(mediatype::names::Q) else {
        return Some(1.0);
    };
    q.unquoted_str()
        .parse::<f32>()
        .ok()
        .filter(|q| (0.0..=1.0).contains(q))
}

/// Each collector's family help texts, its interval put in.
struct Helps {
    spec: &'static Spec,
    recorded: Vec<Header>,
    live: Vec<Header>,
}

/// What `/metrics` serves.
pub struct Exporter {
    store: Arc<SnapshotStore>,
    api: Arc<ApiMetrics>,
    version: &'static str,
    revision: &'static str,
    helps: Vec<Helps>,
    /// "iam every 1h, s3 every 1h, ...": the collectors that run, for the status help texts.
    every: String,
    checks: ChecksConfig,
    /// (collector, configured interval in seconds), for staleness alerts.
    intervals: Vec<(&'static str, f64)>,
    /// `[sharding]` shard and total_shards, as label values.
    shard: (String, String),
    /// Owners are configured: `infraaudit_account_info` carries `owner`, and the failed
    /// resources are also counted per owner.
    owners: bool,
    /// The last per-owner counts, reused while neither the snapshot nor the minute changes.
    by_owner: std::sync::Mutex<Option<ByOwner>>,
    clock: fn() -> f64,
    /// Size of the last exposition and of the last gzip body, so the next is allocated once.
    last_len: [AtomicUsize; 2],
    /// Turns to render, one per CPU, handed out in arrival order. Renders are CPU-bound: more
    /// at once finish no sooner, and each holds its own copies of the exposition (BENCHMARKS.md).
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
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        // Each collector's settings once: its interval goes into help texts and a gauge.
        let collectors: Vec<(&'static Spec, Duration, String)> = collector::ALL
            .into_iter()
            .map(|spec| {
                let interval = spec.settings(config).common.interval;
                let every = humantime::format_duration(interval).to_string();
                (spec, interval, every)
            })
            .collect();
        let helps = collectors
            .iter()
            .map(|&(spec, _, ref every)| {
                let fill = |f: &Family<'_>| Header::new(f, &f.help.replace("{every}", every));
                Helps {
                    spec,
                    recorded: spec.families.iter().map(fill).collect(),
                    live: spec.live_families.iter().map(fill).collect(),
                }
            })
            .collect();
        // Of the collectors that run for some account: one that is off has no series at all.
        let running: Vec<_> = collectors
            .iter()
            .filter(|(spec, _, _)| runs_somewhere(config, spec))
            .collect();
        Self {
            store,
            api,
            version,
            revision,
            helps,
            every: running
                .iter()
                .map(|(spec, _, every)| format!("{} every {every}", spec.name))
                .collect::<Vec<_>>()
                .join(", "),
            checks: config.checks.clone(),
            owners: config.tagging().enabled,
            by_owner: std::sync::Mutex::new(None),
            shard: (
                config.sharding.shard.to_string(),
                config.sharding.total_shards.to_string(),
            ),
            intervals: running
                .iter()
                .map(|(spec, interval, _)| (spec.name, interval.as_secs_f64()))
                .collect(),
            clock,
            last_len: [AtomicUsize::new(64 * 1024), AtomicUsize::new(16 * 1024)],
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
    pub fn render(&self, format: Format) -> String {
        match self.render_body(format, false) {
            Body::Text(text) => text,
            // Not asked for; kept total rather than unreachable.
            Body::Gzip(_) => String::new(),
        }
    }

    /// The exposition, or its gzip body: recorded series' compressed bytes spliced, only the
    /// text written at this scrape compressed now. Blocking, as [`Exporter::render`].
    pub fn render_body(&self, format: Format, gzip: bool) -> Body {
        let snap = self.store.load();
        let now = (self.clock)();
        let last = &self.last_len[usize::from(gzip)];
        let mut writer = Writer::new(format, now, last.load(Ordering::Relaxed) + 4096, gzip);
        self.encode(&mut writer, &snap, now);
        if self.owners {
            self.encode_by_owner(&mut writer, &snap, now);
        }
        let body = writer.finish();
        last.store(body.len(), Ordering::Relaxed);
        body
    }

    /// Bytes held by the encoded series, for memory figures.
    pub fn cached_bytes(&self) -> usize {
        let snap = self.store.load();
        snap.entries
            .values()
            .filter_map(|e| e.data.as_ref())
            .map(|d| d.fragments.heap_bytes())
            .sum()
    }

    /// Each collector's families: the recorded parts of every entry spliced in family order,
    /// then the families computed now.
    fn encode_collectors(&self, w: &mut Writer, snap: &Snapshot, now: f64) {
        for helps in &self.helps {
            let spec = helps.spec;
            let entries: Vec<(&str, &collector::Recorded)> = snap
                .entries
                .iter()
                .filter(|((_, c), _)| *c == spec.name)
                .filter_map(|((a, _), e)| Some((a.as_str(), e.data.as_deref()?)))
                .collect();
            for (i, header) in helps.recorded.iter().enumerate() {
                w.header(header);
                for (_, recorded) in &entries {
                    w.splice(&recorded.fragments, i);
                }
            }
            if spec.live_families.is_empty() {
                continue;
            }
            let live: Vec<_> = entries
                .iter()
                .map(|(account, recorded)| {
                    let mut r = Recorder::new(spec.live_families);
                    (spec.encode_live)(account, recorded.data.as_ref(), now, &mut r);
                    r.finish_plain()
                })
                .collect();
            for (i, header) in helps.live.iter().enumerate() {
                w.header(header);
                for fragments in &live {
                    w.splice(fragments, i);
                }
            }
        }
    }

    /// Every family, in order; `now` is the scrape's one reading of the clock (the ages use it too).
    fn encode(&self, encoder: &mut Writer, snap: &Snapshot, now: f64) {
        encoder.live(
            Family::info(
                "build",
                "Version and git revision of this infraaudit binary.",
            ),
            std::iter::once((
                [("version", self.version), ("revision", self.revision)],
                Value::U64(1),
            )),
        );
        encode_api(&self.api, encoder);
        let account = |help| Family::info("account", help);
        if self.owners {
            encoder.live(
                account(
                    "Audited accounts: 1 per account, with its display name, the AWS Organizations OU (or root) directly above it and its owner ([[accounts]] owner, else its Organizations owner tag), each empty when not known.",
                ),
                snap.accounts.iter().map(|a| {
                    (
                        [
                            ("account_id", a.id.as_str()),
                            ("account_name", a.name.as_str()),
                            ("ou", a.ou.as_str()),
                            ("owner", a.owner.as_str()),
                        ],
                        Value::U64(1),
                    )
                }),
            );
        } else {
            encoder.live(
                account(
                    "Audited accounts: 1 per account, with its display name and the AWS Organizations OU (or root) directly above it (empty when not known).",
                ),
                snap.accounts.iter().map(|a| {
                    (
                        [
                            ("account_id", a.id.as_str()),
                            ("account_name", a.name.as_str()),
                            ("ou", a.ou.as_str()),
                        ],
                        Value::U64(1),
                    )
                }),
            );
        }
        self.encode_accounts_source(encoder);
        self.encode_collectors(encoder, snap, now);
        encode_checks(encoder, snap, now, &self.checks);

        let every = &self.every;
        let status_help =
            |what: &str| format!("{what} of the last background run of each collector ({every}).");
        encoder.live(
            Family::gauge(
                "collector_success",
                &status_help("1 if successful, 0 if failed: the outcome"),
                None,
            ),
            snap.entries
                .iter()
                .map(|((a, c), e)| (status_labels(a, c), flag(e.status.success))),
        );
        encoder.live(
            Family::gauge("collector_duration", &status_help("Duration"), SECONDS),
            snap.entries
                .iter()
                .map(|((a, c), e)| (status_labels(a, c), e.status.duration_seconds)),
        );
        encoder.live(
            Family::gauge(
                "collector_consecutive_failures",
                &format!("Failed runs of each collector in a row, 0 after a success ({every})."),
                None,
            ),
            snap.entries.iter().map(|((a, c), e)| {
                (
                    status_labels(a, c),
                    f64::from(e.status.consecutive_failures),
                )
            }),
        );
        encoder.live(
            Family::gauge(
                "collector_interval",
                "Configured interval of each collector: from the start of one run to the start of the next.",
                SECONDS,
            ),
            self.intervals
                .iter()
                .map(|(collector, secs)| ([("collector", *collector)], *secs)),
        );
        encoder.live(
            Family::gauge(
                "collector_last_success_timestamp",
                &status_help("Unix time of the end"),
                SECONDS,
            ),
            snap.entries
                .iter()
                .filter_map(|((a, c), e)| Some((status_labels(a, c), e.status.last_success?))),
        );
    }
}

impl Exporter {
    /// Where the account set comes from: this process's shard, and account discovery (no
    /// samples while discovery is off).
    fn encode_accounts_source(&self, encoder: &mut Writer) {
        encoder.live(
            Family::info(
                "shard",
                "This process's shard: it audits the accounts whose FNV-1a 64-bit hash of the account id, modulo total_shards, is shard.",
            ),
            std::iter::once((
                [
                    ("shard", self.shard.0.as_str()),
                    ("total_shards", self.shard.1.as_str()),
                ],
                Value::U64(1),
            )),
        );
        let discovery = self.store.discovery();
        let d = discovery.as_ref();
        encoder.live(
            Family::gauge(
                "discovered_accounts",
                "ACTIVE accounts the last successful AWS Organizations discovery found, after include_ous and exclude_accounts, before sharding.",
                None,
            ),
            d.and_then(|d| d.discovered)
                .map(|n| ([], n as f64))
                .into_iter(),
        );
        encoder.live(
            Family::gauge(
                "discovery_success",
                "1 if the last AWS Organizations account discovery succeeded, 0 if it failed (the previous account set is kept).",
                None,
            ),
            d.map(|d| ([], flag(d.success))).into_iter(),
        );
        encoder.live(
            Family::gauge(
                "discovery_last_success_timestamp",
                "Unix time of the end of the last successful AWS Organizations account discovery.",
                SECONDS,
            ),
            d.and_then(|d| d.last_success).map(|t| ([], t)).into_iter(),
        );
    }
}

/// Whether the collector is on in `[collectors.*]` or in some account's own list.
fn runs_somewhere(config: &Config, spec: &Spec) -> bool {
    spec.settings(config).common.enabled
        || config.accounts.iter().any(|a| {
            a.collectors
                .as_ref()
                .is_some_and(|list| list.iter().any(|n| n == spec.name))
        })
}

/// The check thresholds and the per-check summary, computed at every scrape: ages move.
/// Per-owner counts, as computed at one time.
struct ByOwner {
    at: f64,
    /// Computed once every (account, collector) had run: counts from before are not reused.
    ready: bool,
    rows: Arc<Vec<crate::checks::OwnerCount>>,
}

/// How long per-owner counts are reused: they walk every resource (25 ms at 100k series,
/// BENCHMARKS.md), and in a fleet the snapshot changes every few seconds, so reuse goes by time
/// alone. The alerts that read them wait 15 minutes or more; the time-based checks move by days.
const BY_OWNER_REUSE: f64 = 60.0;

impl Exporter {
    /// `infraaudit_owner_failed_resources`, only with owners configured.
    fn encode_by_owner(&self, encoder: &mut Writer, snap: &Snapshot, now: f64) {
        let rows = {
            let mut last = self
                .by_owner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match last.as_ref() {
                Some(b) if b.ready && (now - b.at).abs() < BY_OWNER_REUSE => b.rows.clone(),
                _ => {
                    let ready = self.store.ready();
                    let rows = Arc::new(crate::checks::failed_by_owner(snap, now, &self.checks));
                    *last = Some(ByOwner {
                        at: now,
                        ready,
                        rows: rows.clone(),
                    });
                    rows
                }
            }
        };
        encoder.live(
            Family::gauge(
                "owner_failed_resources",
                "Resources failing each check, per account and owner (the resource's owner, else the account's; empty when neither), for owners with at least one; the split of infraaudit_check_failed_resources, computed at most once a minute. Only when owners are configured.",
                None,
            ),
            rows.iter().map(|r| {
                (
                    [
                        ("account_id", r.account_id.as_str()),
                        ("check", r.check.name()),
                        ("owner", r.owner.as_str()),
                    ],
                    r.failed as f64,
                )
            }),
        );
    }
}

fn encode_checks(encoder: &mut Writer, snap: &Snapshot, now: f64, checks: &ChecksConfig) {
    encoder.live(
        Family::gauge(
            "check_threshold",
            "Thresholds of the time-based checks, from [checks], for alert rules to compare against.",
            SECONDS,
        ),
        [
            ("iam_access_key_age", checks.access_key_max_age),
            ("iam_access_key_unused", checks.access_key_max_unused),
            ("iam_root_recent_use", checks.root_max_recent_use),
            ("iam_user_password_unused", checks.access_key_max_unused),
        ]
        .into_iter()
        .map(|(check, d)| ([("check", check)], d.as_secs_f64())),
    );
    encoder.live(
        Family::info(
            "check",
            "Each check: its title, severity and CIS AWS Foundations Benchmark v3.0 control(s) (empty when not a CIS control), for scorecards.",
        ),
        Check::all().map(|c| {
            (
                [
                    ("check", c.name()),
                    ("title", c.title()),
                    ("severity", c.severity().as_str()),
                    ("cis", c.cis()),
                ],
                1.0,
            )
        }),
    );
    encoder.live(
        Family::gauge(
            "check_failed_resources",
            "Resources failing each check, per account; absent while the data to decide is missing. Rules and thresholds: docs/metrics.md, section Checks.",
            None,
        ),
        crate::checks::summary(snap, now, checks).map(|(account, check, n)| {
            ([("account_id", account), ("check", check.name())], n as f64)
        }),
    )
}

fn status_labels<'a>(account: &'a str, collector: &'static str) -> [(&'static str, &'a str); 2] {
    [("account_id", account), ("collector", collector)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::iam::{self, AccessKeyRecord, IamData};
    use crate::snapshot::{AccountInfo, Outcome};

    #[test]
    fn negotiation_follows_q_values() {
        use Format::{OpenMetrics as Om, Text};
        let cases = [
            // No header, and curl's default: text, as client_golang answers them.
            (None, Text),
            (Some("*/*"), Text),
            (Some("text/plain;version=0.0.4"), Text),
            (Some("application/openmetrics-text"), Om),
            (Some("application/openmetrics-text; q=0"), Text),
            (
                Some("text/plain;q=1.0, application/openmetrics-text;q=0.1"),
                Text,
            ),
            (
                Some("text/*;q=0.9, application/openmetrics-text;q=0.8"),
                Text,
            ),
            // A tie goes to OpenMetrics.
            (
                Some("Application/OpenMetrics-Text;q=0.5, text/plain;q=0.5"),
                Om,
            ),
            (Some("application/json"), Text),
            // A malformed q makes its range malformed: ignored.
            (
                Some("application/openmetrics-text;q=2, text/plain;q=0.5"),
                Text,
            ),
            // Prometheus 2.0 to 2.48: one fixed header.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Om,
            ),
            // Prometheus 2.49 to 2.55 (acceptHeader over four ScrapeProtocolsHeaders: q from
            // 0.5 down), default scrape_protocols [OpenMetricsText1.0.0, OpenMetricsText0.0.1,
            // PrometheusText0.0.4].
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                Om,
            ),
            // 2.49 to 2.55, scrape_protocols [PrometheusText0.0.4, OpenMetricsText1.0.0].
            (
                Some(
                    "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.3",
                ),
                Text,
            ),
            // 2.49 to 2.55 with native histograms: [PrometheusProto, OpenMetricsText1.0.0,
            // OpenMetricsText0.0.1, PrometheusText0.0.4]; we do not serve protobuf.
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
                ),
                Om,
            ),
            // Prometheus 3.0 (five ScrapeProtocolsHeaders: q from 0.6 down; with the default
            // utf8 validation every entry gets escaping=allow-utf-8), default scrape_protocols
            // [OpenMetricsText1.0.0, OpenMetricsText0.0.1, PrometheusText1.0.0, PrometheusText0.0.4].
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;escaping=allow-utf-8;q=0.3,*/*;q=0.2",
                ),
                Om,
            ),
            // Later 3.x (escaping=<metric_name_escaping_scheme> on the 1.0.0 formats only),
            // the same default order.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                Om,
            ),
            // Later 3.x, scrape_protocols [PrometheusText0.0.4, OpenMetricsText1.0.0] with
            // metric_name_escaping_scheme underscores.
            (
                Some(
                    "text/plain;version=0.0.4;q=0.6,application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,*/*;q=0.4",
                ),
                Text,
            ),
            // Later 3.x, [PrometheusText1.0.0, OpenMetricsText1.0.0]: text/plain of another
            // version still says "the text format first".
            (
                Some(
                    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.4",
                ),
                Text,
            ),
            // Later 3.x, [OpenMetricsText1.0.0] and [PrometheusText0.0.4] alone.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,*/*;q=0.5",
                ),
                Om,
            ),
            (Some("text/plain;version=0.0.4;q=0.6,*/*;q=0.5"), Text),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(accept), want, "Accept: {accept:?}");
        }
    }

    fn iam(account: &str, user: &str, created: i64) -> Outcome {
        let t = |secs| chrono::DateTime::from_timestamp(secs, 0);
        Outcome::Success(iam::SPEC.record(
            account,
            Arc::new(IamData {
                report_generated_at: t(created),
                keys: vec![AccessKeyRecord {
                    user: user.to_owned(),
                    access_key_id: format!("AKIA{user}"),
                    slot: 1,
                    created: t(created).unwrap_or_default(),
                    active: true,
                    last_used: None,
                }],
                ..IamData::default()
            }),
        ))
    }

    static CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    fn clock() -> f64 {
        f64::from_bits(CLOCK.load(Ordering::Relaxed))
    }

    #[test]
    fn the_split_by_owner_is_computed_once_ready_then_reused_for_a_minute() {
        let set = |t: f64| CLOCK.store(t.to_bits(), Ordering::Relaxed);
        let account = AccountInfo {
            id: "1".into(),
            name: "prod".into(),
            ou: String::new(),
            owner: "team-a".into(),
        };
        let store = Arc::new(SnapshotStore::new(vec![account], 1));
        let mut config = Config::default();
        config.owners.tag_keys = vec!["owner".into()];
        let exporter = Exporter::new(store.clone(), Arc::default(), &config, "v", "r", clock);
        let split = |n: u32| {
            format!(
                "infraaudit_owner_failed_resources{{account_id=\"1\",check=\"iam_access_key_age\",owner=\"team-a\"}} {n}.0\n"
            )
        };
        set(1e9);
        assert!(
            !exporter
                .render(Format::Text)
                .contains("owner_failed_resources{")
        );
        // Ready now: counted at once, though the last count is not a minute old.
        let keys = |users: &[&str]| {
            let keys = users
                .iter()
                .map(|u| AccessKeyRecord {
                    user: (*u).to_owned(),
                    access_key_id: format!("AKIA{u}"),
                    slot: 1,
                    created: chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
                    active: true,
                    last_used: None,
                })
                .collect();
            let data = IamData {
                keys,
                ..IamData::default()
            };
            Outcome::Success(iam::SPEC.record("1", Arc::new(data)))
        };
        store.record("1", "iam", keys(&["alice"]), 1.0, 1e9);
        assert!(exporter.render(Format::Text).contains(&split(1)));
        // A second failing key: the count is reused for a minute, then follows.
        store.record("1", "iam", keys(&["alice", "bob"]), 1.0, 1e9 + 30.0);
        set(1e9 + 30.0);
        assert!(exporter.render(Format::Text).contains(&split(1)));
        set(1e9 + 61.0);
        assert!(exporter.render(Format::Text).contains(&split(2)));
    }

    #[test]
    fn reused_series_match_a_fresh_encoding_after_every_change() {
        let accounts = ["1", "2"].map(|id| AccountInfo {
            id: id.to_owned(),
            name: format!("n{id}"),
            ou: String::new(),
            owner: String::new(),
        });
        let store = Arc::new(SnapshotStore::new(accounts.to_vec(), 2));
        let exporter = |store: &Arc<SnapshotStore>| {
            Exporter::new(
                store.clone(),
                Arc::default(),
                &Config::default(),
                "v",
                "r",
                || 5000.0,
            )
        };
        let long_lived = exporter(&store);
        // (account, Some(user and key creation time) for a successful run, None for a failed one)
        let steps = [
            ("1", Some(("alice", 1000))),
            ("2", Some(("bob", 2000))),
            ("1", None),
            ("1", Some(("carol", 3000))),
            ("2", None),
        ];
        for (i, (account, run)) in steps.into_iter().enumerate() {
            let outcome = run.map_or(Outcome::Failure, |(user, created)| {
                iam(account, user, created)
            });
            store.record(account, "iam", outcome, 1.0, 100.0 * i as f64);
            for format in [Format::Text, Format::OpenMetrics] {
                let reused = long_lived.render(format);
                assert_eq!(reused, exporter(&store).render(format), "step {i}");
                assert_eq!(reused, long_lived.render(format), "step {i}, twice");
            }
        }
        let last = long_lived.render(Format::Text);
        assert!(last.contains("user=\"carol\",access_key_id=\"AKIAcarol\",slot=\"1\"} 2000.0\n"));
        assert!(last.contains("user=\"bob\",access_key_id=\"AKIAbob\",slot=\"1\"} 3000.0\n"));
        assert!(!last.contains("alice"));
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
}
