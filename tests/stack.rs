//! The whole stack, as `make demo` runs it: the emulator's demo scenario, the exporter, a real
//! Prometheus (Debian package `prometheus`) with the shipped rules, and a real Alertmanager
//! (`prometheus-alertmanager`), all on loopback. It checks the shipped dashboards' queries and
//! that an alert goes all the way to Alertmanager for exactly the right keys.
//!
//! The demo scenario adds to moto what AWS has and moto lacks: a `<root_account>` row in the
//! credential report and a fresh generation time (see tests/emulator/moto_emulator.py --demo).

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A child process killed on drop, its output in a log file.
struct Proc {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- {} (last lines) ---", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn spawn(program: &str, args: &[String], dir: &Path, name: &str) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {program}: {e}; run `make test-deps` to install it")
        });
    Proc { child, log }
}

/// The demo file `name` with its placeholders replaced.
fn demo_file(name: &str, vars: &[(&str, &str)]) -> String {
    let mut text = read(&repo().join("demo").join(name));
    for (k, v) in vars {
        text = text.replace(k, v);
    }
    assert!(
        !text.contains("@"),
        "{name}: a placeholder is left:\n{text}"
    );
    text
}

/// The shipped rules with every `for` cut to 5s, so that alerts fire within the test; the
/// expressions stay exactly as shipped. scripts/demo.sh does the same with sed.
fn rules_with_short_for() -> String {
    let shipped = read(&repo().join("alerts/infraaudit.rules.yml"));
    let mut cut = 0;
    let out: Vec<String> = shipped
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => {
                cut += 1;
                format!("{}for: 5s", &l[..l.len() - l.trim_start().len()])
            }
            None => l.to_owned(),
        })
        .collect();
    assert!(cut >= 14, "expected a `for` per alert, cut {cut}");
    out.join("\n") + "\n"
}

fn get_json(url: &str) -> Value {
    let body = reqwest::blocking::get(url).unwrap().text().unwrap();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// None while the server is not answering (yet).
fn try_json(url: &str) -> Option<Value> {
    let body = reqwest::blocking::get(url).ok()?.text().ok()?;
    serde_json::from_str(&body).ok()
}

fn try_query(prometheus: &str, expr: &str) -> Option<Vec<Value>> {
    let v = try_json(&format!(
        "{prometheus}/api/v1/query?query={}",
        url_encode(expr)
    ))?;
    v["data"]["result"].as_array().cloned()
}

/// The alerts Alertmanager holds under one name; None while it does not answer.
fn am_alerts(am_url: &str, alertname: &str) -> Option<Vec<Value>> {
    let filter = url_encode(&format!("alertname=\"{alertname}\""));
    try_json(&format!("{am_url}/api/v2/alerts?filter={filter}"))?
        .as_array()
        .cloned()
}

/// An instant query; panics on a PromQL error, so a broken dashboard query fails loudly.
fn query(prometheus: &str, expr: &str) -> Vec<Value> {
    let url = format!("{prometheus}/api/v1/query?query={}", url_encode(expr));
    let v = get_json(&url);
    assert_eq!(v["status"], "success", "{expr}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `targets[].expr` of a dashboard, rows' nested panels included, with its panel title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((title.clone(), expr.to_owned()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Grafana's variables as a test can fill them: every account, a 1m rate window.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("${account}", ".*")
        .replace("$account", ".*")
        .replace("${job}", ".*")
        .replace("$job", ".*")
}

#[test]
fn dashboards_have_data_and_alerts_reach_alertmanager() {
    let emu = Emulator::start_with(&["--demo"]);
    let dir = scratch_dir("stack");

    // The exporter, with the demo's configuration.
    let config = demo_file(
        "infraaudit.toml",
        &[("@ENDPOINT@", &emu.endpoint), ("@LISTEN@", "{listen}")],
    );
    let d = Daemon::start("stack", &config);
    d.wait_ready(Duration::from_secs(90));
    let exporter = d.url.trim_start_matches("http://").to_owned();

    let am_port = free_port().to_string();
    let am_url = format!("http://127.0.0.1:{am_port}");
    std::fs::write(
        dir.join("alertmanager.yml"),
        demo_file("alertmanager.yml", &[]),
    )
    .unwrap();
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", dir.join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            // No gossip: a test has one Alertmanager, and must not listen beyond loopback.
            "--cluster.listen-address=".to_owned(),
        ],
        &dir,
        "alertmanager",
    );

    let rules = dir.join("infraaudit.rules.yml");
    std::fs::write(&rules, rules_with_short_for()).unwrap();
    let prom_port = free_port().to_string();
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    let rules_path = rules.display().to_string();
    std::fs::write(
        dir.join("prometheus.yml"),
        demo_file(
            "prometheus.yml",
            &[
                ("@INTERVAL@", "1s"),
                ("@RULES@", &rules_path),
                ("@ALERTMANAGER@", &format!("127.0.0.1:{am_port}")),
                ("@EXPORTER@", &exporter),
            ],
        ),
    )
    .unwrap();
    let _prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir,
        "prometheus",
    );

    poll(Duration::from_secs(30), "Alertmanager to be ready", || {
        reqwest::blocking::get(format!("{am_url}/-/ready"))
            .ok()
            .filter(|r| r.status().is_success())
    });
    // Scraped, and the recording rules evaluated.
    poll(
        Duration::from_secs(60),
        "Prometheus to scrape and record",
        || {
            try_query(&prom_url, "infraaudit:iam_access_key_age_seconds:active")
                .filter(|r| !r.is_empty())
        },
    );
    // Every shipped rule evaluates without error on real data (an error would only show here).
    let groups = get_json(&format!("{prom_url}/api/v1/rules"));
    let rules: Vec<&Value> = groups["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(rules.len() >= 18, "{} rules loaded", rules.len());
    for r in rules {
        assert_eq!(r["health"], "ok", "rule {}: {}", r["name"], r["lastError"]);
    }

    // Every query of every dashboard panel returns at least one series.
    let mut checked = 0;
    for file in [
        "infraaudit-posture.json",
        "infraaudit-health.json",
        "infraaudit-cis.json",
    ] {
        let dashboard: Value =
            serde_json::from_str(&read(&repo().join("dashboards").join(file))).unwrap();
        let queries = dashboard_queries(&dashboard);
        assert!(queries.len() >= 5, "{file}: {} queries", queries.len());
        for (title, expr) in queries {
            let expr = substitute(&expr);
            assert!(
                !expr.contains('$'),
                "{file} / {title}: unknown variable in {expr}"
            );
            // rate() needs two samples a window apart: poll rather than assume.
            poll(
                Duration::from_secs(90),
                &format!("{file} / {title}: {expr}"),
                || (!query(&prom_url, &expr).is_empty()).then_some(()),
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} dashboard queries");

    // InfraAuditAccessKeyTooOld reaches Alertmanager for each active key older than 90 days,
    // and for no other key.
    let base = &emu.seeded[BASE_ACCOUNT];
    let key = |user: &str, i: usize| base[user][i]["id"].as_str().unwrap().to_owned();
    let alice_200d = key("alice", 0);
    let alerts = poll(
        Duration::from_secs(90),
        "the 200-day key's alert in Alertmanager",
        || {
            am_alerts(&am_url, "InfraAuditAccessKeyTooOld").filter(|all| {
                all.iter()
                    .any(|a| a["labels"]["access_key_id"] == alice_200d.as_str())
            })
        },
    );
    let alice = alerts
        .iter()
        .find(|a| a["labels"]["access_key_id"] == alice_200d.as_str())
        .unwrap();
    let labels = alice["labels"].as_object().unwrap();
    let want = [
        ("alertname", "InfraAuditAccessKeyTooOld"),
        ("severity", "warning"),
        ("job", "infraaudit"),
        ("instance", exporter.as_str()),
        ("account_id", BASE_ACCOUNT),
        ("account_name", "prod"),
        ("user", "alice"),
        ("access_key_id", alice_200d.as_str()),
        ("slot", "1"),
    ];
    assert_eq!(labels.len(), want.len(), "{labels:?}");
    for (k, v) in want {
        assert_eq!(labels[k], v, "label {k}");
    }
    let summary = alice["annotations"]["summary"].as_str().unwrap();
    assert_eq!(
        summary,
        format!("Access key {alice_200d} of alice in prod is 200 days old")
    );
    assert!(
        alice["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .ends_with("docs/runbook.md#infraauditaccesskeytooold")
    );
    // The other seeded keys: every active one older than 90 days alerts, no other one does.
    let mut want_ids = Vec::new();
    for (account, users) in emu.seeded.as_object().unwrap() {
        for keys in users.as_object().unwrap().values() {
            for k in keys.as_array().unwrap() {
                let age_days = (emu.now - k["created"].as_f64().unwrap()) / 86_400.0;
                if k["active"] == true && age_days > 90.0 {
                    want_ids.push(format!("{account}/{}", k["id"].as_str().unwrap()));
                }
            }
        }
    }
    // Alerts of one evaluation reach Alertmanager together; poll until the set is complete.
    let got = poll(Duration::from_secs(30), "every old key's alert", || {
        let mut got: Vec<String> = am_alerts(&am_url, "InfraAuditAccessKeyTooOld")?
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a["labels"]["account_id"].as_str().unwrap(),
                    a["labels"]["access_key_id"].as_str().unwrap()
                )
            })
            .collect();
        got.sort();
        (got.len() >= want_ids.len()).then_some(got)
    });
    want_ids.sort();
    assert_eq!(got, want_ids, "exactly the active keys older than 90 days");
    let fresh = format!("{BASE_ACCOUNT}/{}", key("bob", 1));
    let inactive_old = format!("{BASE_ACCOUNT}/{}", key("dave", 0));
    assert!(!got.contains(&fresh) && !got.contains(&inactive_old));
}

/// The Accept header of the installed Prometheus (Debian's 2.42: before 2.49, one fixed header),
/// read off the wire of a scrape, and the format it gets from us.
#[test]
fn the_installed_prometheus_gets_openmetrics() {
    use std::io::Read;
    let dir = scratch_dir("stack-accept");
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let prom_port = free_port().to_string();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: capture\n    static_configs:\n      - targets: ['{}']\n",
            target.local_addr().unwrap()
        ),
    )
    .unwrap();
    let _prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir,
        "prometheus",
    );
    let (mut scrape, _) = poll(Duration::from_secs(30), "Prometheus to scrape", || {
        target.accept().ok()
    });
    scrape.set_nonblocking(false).unwrap();
    scrape
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = scrape.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a whole request head");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let accept = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("accept").then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no Accept header in {head:?}"));
    assert_eq!(
        accept,
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    );
    assert_eq!(
        infraaudit::metrics::Format::negotiate(Some(accept)),
        infraaudit::metrics::Format::OpenMetrics
    );
}
