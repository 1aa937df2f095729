//! The HTML overview at `/`, end to end: the real binary against the emulator, the page rendered
//! by a real browser (Debian's headless Chromium), and what a person would read on it: the
//! account, the oldest keys, public buckets, IMDSv1 instances and the failing checks with their
//! counts; and, with every collector failing, no data shown as such rather than as passing. A
//! screenshot of the page is left in the scratch directory.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// How long one Chromium run may take before it is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn the_overview_shows_each_accounts_failing_checks_and_worst_findings() {
    let dir = scratch_dir("overview-browser");
    let version = chromium(&dir, &["--version"], "version");
    assert!(
        version.starts_with("Chromium"),
        "chromium --version: {version}"
    );
    let emu = Emulator::start();
    let d = Daemon::start("overview", &two_accounts(&emu.endpoint, "1h"));
    d.wait_ready(Duration::from_secs(90));
    let (status, headers, _) = d.get("/").unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");

    let dom = chromium(&dir, &["--dump-dom", &d.url], "dump-dom");
    assert!(
        !dom.contains("<script"),
        "the overview has no JavaScript:\n{dom}"
    );
    let text = visible_text(&dom);

    // The base account's section, up to the next account.
    let start = text
        .find(&format!("base {BASE_ACCOUNT}"))
        .unwrap_or_else(|| panic!("no section for the base account in:\n{text}"));
    let end = text
        .find(&format!("audited {ROLE_ACCOUNT}"))
        .unwrap_or_else(|| panic!("no section for the audited account in:\n{text}"));
    assert!(start < end, "accounts in configuration order:\n{text}");
    let base = &text[start..end];

    let alice_200_days = emu.seeded[BASE_ACCOUNT]["alice"][0]["id"].as_str().unwrap();
    assert!(
        base.contains(&format!("alice {alice_200_days} 200 days")),
        "alice's 200-day key {alice_200_days} among the oldest keys:\n{base}"
    );
    assert!(base.contains("ia-public-policy public by policy"), "{base}");
    let resources = &emu.resources[BASE_ACCOUNT];
    let public = resources["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["public"] == true)
        .count();
    assert!(
        base.contains(&format!("s3_public_access {public} a bucket is public")),
        "s3_public_access with {public} failing:\n{base}"
    );
    let imdsv1: Vec<(&String, &serde_json::Value)> = resources["instances"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, i)| i["imdsv2_required"] == false && i["state"] != "terminated")
        .collect();
    assert!(
        base.contains(&format!(
            "ec2_imdsv2 {} an instance allows IMDSv1",
            imdsv1.len()
        )),
        "ec2_imdsv2 with {} failing:\n{base}",
        imdsv1.len()
    );
    for (id, i) in &imdsv1 {
        let region = i["region"].as_str().unwrap();
        assert!(base.contains(&format!("{region}/{id}")), "{id}:\n{base}");
    }
    for collector in ["iam", "s3", "ec2"] {
        assert!(
            base.contains(&format!("{collector} ok ")),
            "{collector}:\n{base}"
        );
    }
    assert!(base.contains("IAM credential report generated "), "{base}");
    assert!(text.contains("metrics"), "{text}");

    let png = dir.join("overview.png");
    chromium(
        &dir,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2000",
            &d.url,
        ],
        "screenshot",
    );
    let bytes = std::fs::read(&png)
        .unwrap_or_else(|e| panic!("Chromium wrote no screenshot {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
    assert!(
        bytes.len() > 20_000,
        "{} is only {} bytes: a blank page?",
        png.display(),
        bytes.len()
    );
    eprintln!("screenshot: {} ({} bytes)", png.display(), bytes.len());
}

/// Runs headless Chromium with `args` and returns its stdout. It runs in its own process group
/// with a fresh profile in `dir`, and the whole group is killed when it outlives
/// [`BROWSER_TIMEOUT`].
/// Every collector failing (AWS unreachable): each account says in grey that no check has data,
/// and why; nothing on the page reads as passing.
#[test]
fn with_every_collector_failing_nothing_reads_as_passing() {
    let dir = scratch_dir("overview-failing");
    // A loopback port nothing listens on: every AWS call fails.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let d = Daemon::start("overview-failing", &two_accounts(&dead, "1h"));
    d.wait_ready(Duration::from_secs(120));
    let dom = chromium(&dir, &["--dump-dom", &d.url], "dump-dom-failing");
    let text = visible_text(&dom);
    assert!(
        !dom.contains("class=\"ok\""),
        "green on a page without data:\n{dom}"
    );
    assert!(!text.contains("No check fails"), "{text}");
    assert!(!text.contains("Passing:"), "{text}");
    assert!(!text.contains("None."), "{text}");
    assert_eq!(
        text.matches("No data: no check has a verdict yet.").count(),
        2,
        "both accounts unknown:\n{text}"
    );
    assert!(
        text.contains("No data (the iam collector has not succeeded): iam_access_key_age,"),
        "{text}"
    );
}

fn chromium(dir: &Path, args: &[&str], tag: &str) -> String {
    use std::os::unix::process::CommandExt as _;

    let stdout = dir.join(format!("chromium-{tag}.out"));
    let stderr = dir.join(format!("chromium-{tag}.err"));
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-background-networking",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}): run `make test-deps` to install Debian's chromium")
        });
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // The browser and its helper processes share the group led by the child.
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {tag} hung for {BROWSER_TIMEOUT:?}; killed. stderr:\n{}",
                read(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "chromium {tag}: {status}; stderr:\n{}",
        read(&stderr)
    );
    read(&stdout)
}

/// The text a person reads: no head, tags as spaces, entities decoded, whitespace collapsed.
fn visible_text(dom: &str) -> String {
    let body = dom.split_once("<body").map_or(dom, |(_, b)| b);
    let mut text = String::new();
    let mut in_tag = true; // inside `<body ...>`
    for ch in body.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(ch),
            _ => {}
        }
    }
    let decoded = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}
