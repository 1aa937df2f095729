//! Measures `gzip` against gzip of the whole body, on one `/metrics` body cut into
//! recorded fragments with live text between them:
//!
//! - record: each fragment's `Deflated` at level 1 and at level 6, or `--levels` (time, bytes
//!   held);
//! - scrape: a `GzipBody` of the recorded pieces and the live text (compressed per scrape), the
//!   live text interleaved with the fragments or in one run, and with no live text at all;
//! - the alternative: `flate2::write::GzEncoder` of the whole body at level 1 and level 6.
//!
//! `cargo run --release --example gzip_splice -- [BODY] [--fragments N] [--live PERCENT]`.
//! BODY is a saved `/metrics` body (`examples/metrics_load.rs --accounts 97` serves one of
//! 13.5 MB); without it, a synthetic body of the same shape and size is made. Prints a Markdown
//! table of the median and the fastest of the repetitions.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use clap::Parser;
use flate2::Compression;

use infraaudit::gzip::{Deflated, GzipBody};

#[derive(Parser)]
struct Args {
    /// A saved /metrics body; synthetic when absent.
    body: Option<std::path::PathBuf>,
    /// Recorded fragments the body is cut into.
    #[arg(long, default_value_t = 200)]
    fragments: usize,
    /// Share of each fragment, from its end, that is live text instead (percent).
    #[arg(long, default_value_t = 14)]
    live: usize,
    /// Compression levels of the recorded fragments to compare.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 6])]
    levels: Vec<u32>,
    /// Repetitions of each measurement.
    #[arg(long, default_value_t = 15)]
    repeat: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let text = match &args.body {
        Some(path) => std::fs::read(path)?,
        None => synthetic(13_500_000),
    };
    // (recorded, live) parts, cut at line ends.
    let parts = cut(&text, args.fragments, args.live);
    let live_bytes: usize = parts.iter().map(|(_, live)| live.len()).sum();
    println!(
        "body: {} bytes, {} lines; {} fragments; live text {} bytes ({:.1}%)\n",
        text.len(),
        text.iter().filter(|&&b| b == b'\n').count(),
        parts.len(),
        live_bytes,
        100.0 * live_bytes as f64 / text.len() as f64,
    );
    println!("| what | median ms | fastest ms | output bytes |");
    println!("|---|---:|---:|---:|");

    let mut recorded = Vec::new();
    for &level in &args.levels {
        let mut pieces = Vec::new();
        let (median, fastest) = time(args.repeat, || {
            pieces = parts
                .iter()
                .map(|(fragment, _)| Deflated::with_level(fragment, Compression::new(level)))
                .collect();
        });
        let held: usize = pieces.iter().map(Deflated::heap_bytes).sum();
        let what = format!("record: {} fragments at level {level}", parts.len());
        row(&what, median, fastest, held);
        recorded.push((level, pieces));
    }

    for (level, pieces) in &recorded {
        for (name, layout) in [
            ("live text between fragments", Layout::Interleaved),
            ("live text in one run", Layout::OneRun),
            ("no live text", Layout::NoLive),
        ] {
            let mut body = Vec::new();
            let (median, fastest) = time(args.repeat, || {
                body = splice(&parts, pieces, layout, text.len() / 8);
            });
            if layout != Layout::NoLive {
                check(&body, &text, layout)?;
            }
            let what = format!("scrape: splice of level-{level} pieces, {name}");
            row(&what, median, fastest, body.len());
        }
    }

    for level in [1, 6] {
        let mut body = Vec::new();
        let (median, fastest) = time(args.repeat, || {
            let out = Vec::with_capacity(text.len() / 8);
            let mut encoder = flate2::write::GzEncoder::new(out, Compression::new(level));
            let written = encoder.write_all(&text);
            body = written.and_then(|()| encoder.finish()).unwrap_or_default();
        });
        check(&body, &text, Layout::Interleaved)?;
        let what = format!("scrape: GzEncoder of the whole body at level {level}");
        row(&what, median, fastest, body.len());
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Interleaved,
    OneRun,
    NoLive,
}

fn splice(
    parts: &[(&[u8], &[u8])],
    pieces: &[Deflated],
    layout: Layout,
    capacity: usize,
) -> Vec<u8> {
    let mut body = GzipBody::with_capacity(capacity);
    for ((_, live), piece) in parts.iter().zip(pieces) {
        body.push_deflated(piece);
        if layout == Layout::Interleaved {
            body.push_text(live);
        }
    }
    if layout == Layout::OneRun {
        for (_, live) in parts {
            body.push_text(live);
        }
    }
    body.finish()
}

/// The body decodes, as one member, to the text in the order `splice` put it.
fn check(gz: &[u8], text: &[u8], layout: Layout) -> Result<(), String> {
    let mut decoder = flate2::bufread::GzDecoder::new(gz);
    let mut decoded = Vec::new();
    decoder
        .read_to_end(&mut decoded)
        .map_err(|e| e.to_string())?;
    if !decoder.into_inner().is_empty() {
        return Err("bytes after the first gzip member".into());
    }
    let same = match layout {
        Layout::OneRun => decoded.len() == text.len(),
        _ => decoded == text,
    };
    if same {
        Ok(())
    } else {
        Err("the body decodes to other text".into())
    }
}

/// Cuts `text` into `n` fragments at line ends, each with its last `live_percent` as live text.
fn cut(text: &[u8], n: usize, live_percent: usize) -> Vec<(&[u8], &[u8])> {
    let line_end = |at: usize| {
        text[at.min(text.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |p| at + p + 1)
    };
    let mut parts = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..=n {
        let end = if i == n {
            text.len()
        } else {
            line_end(text.len() * i / n).max(start)
        };
        let fragment = &text[start..end];
        let split = line_end(start + fragment.len() * (100 - live_percent) / 100).min(end);
        parts.push((&text[start..split], &text[split..end]));
        start = end;
    }
    parts
}

fn time(repeat: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..repeat.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    (times[times.len() / 2], times[0])
}

fn row(what: &str, median: Duration, fastest: Duration, bytes: usize) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {what} | {:.2} | {:.2} | {bytes} |",
        ms(median),
        ms(fastest)
    );
}

/// About `len` bytes shaped like examples/metrics_load.rs's body: IAM keys and users, S3
/// buckets and EC2 instances of many accounts, one family after the other.
fn synthetic(len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(7);
    let accounts: Vec<u64> = (0..97)
        .map(|_| rng.u64(100_000_000_000..100_000_999_999))
        .collect();
    let regions = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"];
    let teams = ["ops", "dev", "svc", "data"];
    let key = |rng: &mut fastrand::Rng| -> String {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        (0..16)
            .map(|_| char::from(alphabet[rng.usize(..32)]))
            .collect()
    };
    let mut text = String::with_capacity(len + 4096);
    let families = [
        "iam_access_key_age_seconds",
        "iam_access_key_created_timestamp_seconds",
        "iam_access_key_active",
        "iam_user_mfa_active",
        "s3_bucket_public_access_block",
        "s3_bucket_encryption_enabled",
        "ec2_instance_imdsv2_required",
        "ec2_instance_info",
    ];
    'fill: loop {
        for family in families {
            let _ = writeln!(
                text,
                "# HELP infraaudit_{family} What the series measure, in a sentence or two."
            );
            let _ = writeln!(text, "# TYPE infraaudit_{family} gauge");
            for account in &accounts {
                for i in 0..60 {
                    let team = teams[rng.usize(..teams.len())];
                    let region = regions[rng.usize(..regions.len())];
                    let _ = match family.split('_').next() {
                        Some("iam") => writeln!(
                            text,
                            "infraaudit_{family}{{account_id=\"{account}\",user=\"{team}-user-{i:04}\",access_key_id=\"AKIA{}\",slot=\"1\"}} {}",
                            key(&mut rng),
                            rng.u32(1_600_000_000..1_800_000_000),
                        ),
                        Some("s3") => writeln!(
                            text,
                            "infraaudit_{family}{{account_id=\"{account}\",bucket=\"acme-{account}-logs-{i:03}-{region}\",region=\"{region}\",setting=\"ignore_public_acls\"}} {}.0",
                            rng.u8(0..2),
                        ),
                        _ => writeln!(
                            text,
                            "infraaudit_{family}{{account_id=\"{account}\",region=\"{region}\",instance_id=\"i-{:017x}\",name=\"web-{i:03}\",state=\"running\"}} {}",
                            rng.u64(..1 << 60),
                            rng.u8(0..2),
                        ),
                    };
                    if text.len() >= len {
                        break 'fill;
                    }
                }
            }
        }
    }
    text.into_bytes()
}
