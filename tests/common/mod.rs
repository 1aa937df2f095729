//! Test harness: the moto emulator and the real `infraaudit` binary as child processes on
//! loopback, a scrape parser, and polling with deadlines (no sleeps as synchronisation).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub mod org;
pub mod owners;
pub mod proxy;

pub const BASE_ACCOUNT: &str = "123456789012";
pub const ROLE_ACCOUNT: &str = "222222222222";
pub const EXTERNAL_ID: &str = "test-external-id";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A scratch directory under target/, unique to this call.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = repo().join("target/test-scratch").join(format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The seeded moto server. Killed on drop; also exits when its stdin closes.
pub struct Emulator {
    child: Child,
    _stdin: ChildStdin,
    pub endpoint: String,
    /// What the emulator seeded: account -> user -> keys (id, created, active, last_used).
    pub seeded: Value,
    /// Unix time the emulator seeded relative to.
    pub now: f64,
    /// Account -> password_policy, console users, account_block, buckets (with the expected
    /// `public`), instances (by id, with their final state).
    pub resources: Value,
    /// With `--owners`: the configuration the owners expectations assume (see [`owners`]).
    pub owners_config: Value,
}

impl Emulator {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra arguments for moto_emulator.py, such as `--demo`.
    pub fn start_with(args: &[&str]) -> Self {
        let python = std::env::var_os("INFRAAUDIT_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".venv/bin/python"));
        assert!(
            python.exists(),
            "{} is missing: run `make test-deps` (or `make test`) to create the emulator's venv",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(repo().join("tests/emulator/moto_emulator.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("reading the emulator's first line");
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the emulator did not start (first line {line:?}): {e}"));
        Self {
            child,
            _stdin: stdin,
            endpoint: ready["endpoint"].as_str().unwrap().to_owned(),
            seeded: ready["accounts"].clone(),
            now: ready["now"].as_f64().unwrap(),
            resources: ready["resources"].clone(),
            owners_config: ready["owners_config"].clone(),
        }
    }

    /// moto's internal state (`/moto-api/data.json`).
    pub fn data(&self) -> Value {
        let body = reqwest::blocking::get(format!("{}/moto-api/data.json", self.endpoint))
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// The calls counted so far (`--count-requests`), zeroed in the same step.
    pub fn take_counts(&self) -> Value {
        let body = reqwest::blocking::Client::new()
            .post(format!("{}/_bench/reset", self.endpoint))
            .send()
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both seeded accounts, the second through AssumeRole, each with the EC2 regions it has
/// instances in.
pub fn two_accounts(endpoint: &str, iam_interval: &str) -> String {
    two_accounts_with(endpoint, iam_interval, "regions = [\"ap-southeast-2\"]")
}

/// [`two_accounts`], with `role_regions` as the second account's `regions` line (empty: the
/// account's enabled regions, from DescribeRegions; moto answers with all of them, which takes
/// it about a second per region the first time).
pub fn two_accounts_with(endpoint: &str, iam_interval: &str, role_regions: &str) -> String {
    format!(
        r#"
[server]
listen_address = "{{listen}}"

[aws]
endpoint_url = "{endpoint}"

[collectors.iam]
interval = "{iam_interval}"

[[accounts]]
id = "{BASE_ACCOUNT}"
name = "base"
regions = ["us-east-1", "eu-west-1"]

[[accounts]]
id = "{ROLE_ACCOUNT}"
name = "audited"
role_arn = "arn:aws:iam::{ROLE_ACCOUNT}:role/InfraAuditRole"
external_id = "{EXTERNAL_ID}"
{role_regions}
"#
    )
}

/// A free port on 127.0.0.1 (the listener is closed again before the port is used): for a
/// port that must not answer, or for programs that cannot report the port they bound. The
/// daemon binds port 0 instead ([`serving_address`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The address the daemon serves on, from its `serving /metrics` log line, once it logs it. With
/// `listen_address = "127.0.0.1:0"` the kernel picks the port as the daemon binds it, so no
/// other process can take it in between. Fails at once, with the log, when the daemon exits
/// instead.
pub fn serving_address(child: &mut Child, log: &Path) -> String {
    poll(Duration::from_secs(30), "the daemon to serve", || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the daemon exited with {status} before serving; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let line = text.lines().find(|l| l.contains("serving /metrics"))?;
        let address = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Some(address.to_owned())
    })
}

/// Runs the binary with `args` in the test environment, expecting it to exit rather than
/// serve: its output. Kills it and panics, saying `what` went wrong, after `timeout`.
pub fn exit_within<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    timeout: Duration,
    what: &str,
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraaudit"));
    aws_test_env(&mut cmd).args(args);
    command_exits_within(&mut cmd, timeout, what)
}

/// [`exit_within`] for a command set up by the caller (its own environment).
pub fn command_exits_within(
    cmd: &mut Command,
    timeout: Duration,
    what: &str,
) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {timeout:?}: {what}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The real binary, started with a config file. Killed on drop; its log is kept in `log`.
pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

/// The environment of a test run: moto's fake base credentials, no HOME (so no ~/.aws files).
pub fn aws_test_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("INFRAAUDIT_LOG", "info,infraaudit=debug")
}

impl Daemon {
    /// A JSON API request with `token`: the status and the body as JSON (as a string when it is
    /// not JSON).
    pub fn api(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Starts `infraaudit --config <file>` where the file is `config` with `{listen}` replaced
    /// by port 0 of loopback; `url` is then the address it bound.
    pub fn start(tag: &str, config: &str) -> Self {
        Self::start_with_env(tag, config, &[])
    }

    /// [`Daemon::start`] with extra environment variables (they win over the test defaults).
    pub fn start_with_env(tag: &str, config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with_args(tag, config, env, &[])
    }

    /// [`Daemon::start_with_env`] with extra command-line arguments after `--config FILE`.
    pub fn start_with_args(tag: &str, config: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = scratch_dir(tag);
        let path = dir.join("config.toml");
        std::fs::write(&path, config.replace("{listen}", "127.0.0.1:0")).unwrap();
        let log = dir.join("infraaudit.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = aws_test_env(&mut Command::new(env!("CARGO_BIN_EXE_infraaudit")))
            .envs(env.iter().copied())
            .arg("--config")
            .arg(&path)
            .args(args)
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        // Owned by `d` before anything can fail, so that it is killed and its log shown.
        let mut d = Self {
            child,
            url: String::new(),
            log,
        };
        d.url = format!("http://{}", serving_address(&mut d.child, &d.log));
        poll(
            Duration::from_secs(10),
            "the exporter to answer /-/healthy",
            || d.get("/-/healthy").ok().filter(|(s, _, _)| *s == 200),
        );
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(
        &self,
        path: &str,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), reqwest::Error> {
        self.get_with(path, &[])
    }

    pub fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), reqwest::Error> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut req = client.get(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send()?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes()?.to_vec();
        Ok((status, headers, body))
    }

    /// The text-format scrape, parsed.
    pub fn scrape(&self) -> Scrape {
        let (status, _, body) = self.get("/metrics").expect("GET /metrics");
        assert_eq!(status, 200);
        Scrape::parse(&String::from_utf8(body).unwrap())
    }

    pub fn wait_ready(&self, timeout: Duration) {
        poll(timeout, "/-/ready to answer 200", || {
            self.get("/-/ready").ok().filter(|(s, _, _)| *s == 200)
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- infraaudit log ({}) ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// A minimal parser for the text format as we write it (no escapes in our label values).
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap();
                    let mut labels = BTreeMap::new();
                    for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once("=\"").unwrap();
                        labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                    }
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            samples.push(Sample {
                name,
                labels,
                value: value.parse().unwrap(),
            });
        }
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// Samples of `name` whose labels include all of `want`.
    pub fn find(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample of `name` with these labels, or None; panics when there are several.
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(name, want);
        assert!(
            found.len() <= 1,
            "{name} {want:?} matches {} series",
            found.len()
        );
        found.first().map(|s| s.value)
    }

    /// The sum over the series of `name` that match.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.find(name, want).iter().map(|s| s.value).sum()
    }
}

/// Runs `promtool check metrics` on `text`; returns its output (empty when clean).
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: run `make test-deps` (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
