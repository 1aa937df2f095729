//! `/metrics` with gzip: the body is one gzip member spliced from series compressed when their run
//! was recorded and text compressed at the scrape (headers, ages, live families). Every reader a
//! user has must read all of it: a single-member gzip decoder (flate2's, which stops at the end of
//! the first member, so a body of several members would lose data here), curl `--compressed`
//! (zlib), and Python's urllib3 (what `requests` and many scrapers use). Real Prometheus, which
//! always asks for gzip, reads it in tests/stack.rs.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The metadata lines, and each sample's name and labels (values move: ages are computed at
/// every scrape).
fn shape(body: &str) -> (Vec<String>, BTreeSet<String>) {
    let mut meta = Vec::new();
    let mut series = BTreeSet::new();
    for line in body.lines() {
        if line.starts_with('#') {
            meta.push(line.to_owned());
        } else if let Some((key, _value)) = line.rsplit_once(' ') {
            series.insert(key.to_owned());
        }
    }
    (meta, series)
}

#[test]
fn every_reader_reads_the_whole_spliced_gzip_body() {
    let emu = Emulator::start();
    let d = Daemon::start("gzip", &two_accounts(&emu.endpoint, "1h"));
    d.wait_ready(Duration::from_secs(60));
    let url = format!("{}/metrics", d.url);

    let (status, _, plain) = d.get("/metrics").unwrap();
    assert_eq!(status, 200);
    let plain = String::from_utf8(plain).unwrap();
    let (plain_meta, plain_series) = shape(&plain);
    assert!(
        plain_series.len() > 100,
        "too few series to mean anything: {}",
        plain_series.len()
    );

    // The raw body: reqwest here has no gzip support, so it hands over the bytes as sent.
    let (status, headers, raw) = d
        .get_with("/metrics", &[("Accept-Encoding", "gzip")])
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-encoding"], "gzip");
    let mut decoder = flate2::bufread::GzDecoder::new(&raw[..]);
    let mut one_member = String::new();
    decoder.read_to_string(&mut one_member).unwrap();
    let rest = decoder.into_inner();
    assert!(
        rest.is_empty(),
        "{} bytes after the first gzip member",
        rest.len()
    );

    let curl = Command::new("curl")
        .args(["-fsS", "--compressed", &url])
        .output()
        .expect("curl (Debian package curl, installed by make test-deps)");
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );

    let python = repo().join(".venv/bin/python");
    let script = "import sys, urllib3\n\
        r = urllib3.request('GET', sys.argv[1], headers={'Accept-Encoding': 'gzip'})\n\
        assert r.status == 200, r.status\n\
        assert r.headers['Content-Encoding'] == 'gzip', r.headers\n\
        sys.stdout.write(r.data.decode())\n";
    let urllib3 = Command::new(&python)
        .args(["-c", script, &url])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run `make test-deps`", python.display()));
    assert!(
        urllib3.status.success(),
        "{}",
        String::from_utf8_lossy(&urllib3.stderr)
    );

    for (reader, body) in [
        ("flate2 (first member only)", one_member),
        ("curl --compressed", String::from_utf8(curl.stdout).unwrap()),
        ("urllib3", String::from_utf8(urllib3.stdout).unwrap()),
    ] {
        let (meta, series) = shape(&body);
        assert_eq!(
            meta, plain_meta,
            "{reader}: the families differ from the plain scrape"
        );
        assert_eq!(
            series, plain_series,
            "{reader}: the series differ from the plain scrape"
        );
        let (ok, report) = promtool_check_metrics(&body);
        assert!(ok, "{reader}: promtool check metrics:\n{report}");
    }
}
