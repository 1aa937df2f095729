//! The whole stack, as `make demo` runs it: the emulator's demo scenario, the exporter, a real
//! Prometheus (Debian package `prometheus`) with the shipped rules, and a real Alertmanager
//! (`prometheus-alertmanager`), all on loopback. It checks the shipped dashboards' queries,
//! that an alert goes all the way to Alertmanager for exactly the right keys, and that
//! deploy/alertmanager/alertmanager.example.yml sends each owner's alerts to its receiver.
//!
//! The demo scenario adds to moto what AWS has and moto lacks: a `<root_account>` row in the
//! credential report and a fresh generation time (see tests/emulator/moto_emulator.py --demo).

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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
        .replace("${owner}", ".*")
        .replace("$owner", ".*")
}

/// Alertmanager with `am_config`, then Prometheus with the shipped rules (their `for` cut short)
/// scraping `exporter` every second and alerting to that Alertmanager; both on loopback, and
/// Alertmanager ready. They stop when the value is dropped.
struct Stack {
    am_url: String,
    prom_url: String,
    _procs: [Proc; 2],
}

impl Stack {
    fn start(dir: &Path, am_config: &str, exporter: &str) -> Self {
        let am_port = free_port().to_string();
        let am_url = format!("http://127.0.0.1:{am_port}");
        std::fs::write(dir.join("alertmanager.yml"), am_config).unwrap();
        let am = spawn(
            "prometheus-alertmanager",
            &[
                format!("--config.file={}", dir.join("alertmanager.yml").display()),
                format!("--storage.path={}", dir.join("am-data").display()),
                format!("--web.listen-address=127.0.0.1:{am_port}"),
                // No gossip: a test has one Alertmanager, and must not listen beyond loopback.
                "--cluster.listen-address=".to_owned(),
            ],
            dir,
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
                    ("@EXPORTER@", exporter),
                ],
            ),
        )
        .unwrap();
        let prom = spawn(
            "prometheus",
            &[
                format!("--config.file={}", dir.join("prometheus.yml").display()),
                format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
                format!("--web.listen-address=127.0.0.1:{prom_port}"),
            ],
            dir,
            "prometheus",
        );
        poll(Duration::from_secs(30), "Alertmanager to be ready", || {
            reqwest::blocking::get(format!("{am_url}/-/ready"))
                .ok()
                .filter(|r| r.status().is_success())
        });
        Self {
            am_url,
            prom_url,
            _procs: [am, prom],
        }
    }
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

    let stack = Stack::start(&dir, &demo_file("alertmanager.yml", &[]), &exporter);
    let (am_url, prom_url) = (&stack.am_url, &stack.prom_url);
    // Scraped, and the recording rules evaluated.
    poll(
        Duration::from_secs(60),
        "Prometheus to scrape and record",
        || {
            try_query(prom_url, "infraaudit:iam_access_key_age_seconds:active")
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
                || (!query(prom_url, &expr).is_empty()).then_some(()),
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
            am_alerts(am_url, "InfraAuditAccessKeyTooOld").filter(|all| {
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
        let mut got: Vec<String> = am_alerts(am_url, "InfraAuditAccessKeyTooOld")?
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

/// Every notification one receiver's webhook got, in order: the JSON body, or what was wrong
/// with the request (a webhook thread cannot fail the test itself).
type Notifications = Arc<Mutex<Vec<(String, Result<Value, String>)>>>;

/// A webhook on loopback for the receiver `name`: records each notification in `got`, answers
/// 200. Returns its URL.
fn webhook(name: &str, got: &Notifications) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/{name}", listener.local_addr().unwrap());
    let (name, got) = (name.to_owned(), got.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (name, got) = (name.clone(), got.clone());
            std::thread::spawn(move || {
                if let Err(e) = serve_webhook(conn, &name, &got) {
                    got.lock().unwrap().push((name, Err(e)));
                }
            });
        }
    });
    url
}

/// Reads requests off one connection (Alertmanager keeps it open) until it closes.
fn serve_webhook(conn: TcpStream, name: &str, got: &Notifications) -> Result<(), String> {
    let mut out = conn.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(conn);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).map_err(|e| e.to_string())? == 0 {
            return Ok(());
        }
        let mut length = None;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).map_err(|e| e.to_string())?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let length = length.ok_or(format!("no Content-Length: {request:?}"))?;
        let mut body = vec![0; length];
        std::io::Read::read_exact(&mut reader, &mut body).map_err(|e| e.to_string())?;
        let parsed = if request.starts_with("POST ") {
            serde_json::from_slice(&body).map_err(|e| format!("{e}: {request:?}"))
        } else {
            Err(format!("not a POST: {request:?}"))
        };
        got.lock().unwrap().push((name.to_owned(), parsed));
        out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .map_err(|e| e.to_string())?;
    }
}

/// deploy/alertmanager/alertmanager.example.yml as shipped, with each receiver's webhook sent to
/// `urls[receiver]` and the waits before a notification cut to a second; routes and grouping
/// stay as shipped.
fn routing_config(urls: &BTreeMap<String, String>) -> String {
    let path = repo().join("deploy/alertmanager/alertmanager.example.yml");
    let mut doc: Value =
        serde_norway::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let receivers = doc["receivers"].as_array_mut().expect("receivers");
    let mut names = BTreeSet::new();
    for r in receivers.iter_mut() {
        let r = r.as_object_mut().unwrap();
        let name = r["name"].as_str().unwrap().to_owned();
        // Anything else would be sent beyond loopback.
        let keys: BTreeSet<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["name", "webhook_configs"]),
            "receiver {name}"
        );
        let hooks = r["webhook_configs"].as_array_mut().unwrap();
        assert_eq!(hooks.len(), 1, "receiver {name}: one webhook");
        let url = hooks[0]["url"].as_str().unwrap();
        assert!(url.starts_with("https://"), "receiver {name}: {url}");
        let local = urls
            .get(&name)
            .unwrap_or_else(|| panic!("receiver {name} has no webhook in the test"));
        hooks[0]["url"] = Value::String(local.clone());
        names.insert(name);
    }
    assert_eq!(
        names,
        urls.keys().cloned().collect(),
        "the example's receivers"
    );
    fn shorten(route: &mut Value, top: bool) {
        let r = route.as_object_mut().unwrap();
        for key in ["group_wait", "group_interval"] {
            if top || r.contains_key(key) {
                r.insert(key.to_owned(), Value::String("1s".to_owned()));
            }
        }
        if let Some(Value::Array(routes)) = r.get_mut("routes") {
            for child in routes {
                shorten(child, false);
            }
        }
    }
    shorten(&mut doc["route"], true);
    // JSON is YAML.
    serde_json::to_string_pretty(&doc).unwrap()
}

/// An alert the owners scenario must raise: its name, the labels that tell it from the others
/// of that name, and the owner it must carry (None: no owner label).
struct Expected {
    alertname: &'static str,
    labels: Vec<(&'static str, String)>,
    owner: Option<String>,
}

impl Expected {
    fn matches(&self, alert: &Value) -> bool {
        alert["labels"]["alertname"] == self.alertname
            && self
                .labels
                .iter()
                .all(|(k, v)| alert["labels"][*k] == v.as_str())
    }
}

impl std::fmt::Debug for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} owner {:?}",
            self.alertname, self.labels, self.owner
        )
    }
}

/// Per resource, from what the emulator seeded: each active key over 90 days old, each public
/// bucket, each instance that allows IMDSv1 (with the owner of its user, bucket or instance,
/// else its account's), and two account-wide alerts (the base account's root key, owned by the
/// account; the second account's missing password policy, owned by nobody).
fn expected_alerts(emu: &Emulator) -> Vec<Expected> {
    use common::owners::{Kind, account_owner, effective};
    let mut out = Vec::new();
    for (account, users) in emu.seeded.as_object().unwrap() {
        for (user, keys) in users.as_object().unwrap() {
            for k in keys.as_array().unwrap() {
                let age_days = (emu.now - k["created"].as_f64().unwrap()) / 86_400.0;
                if k["active"] == true && age_days > 90.0 {
                    out.push(Expected {
                        alertname: "InfraAuditAccessKeyTooOld",
                        labels: vec![
                            ("account_id", account.clone()),
                            ("access_key_id", k["id"].as_str().unwrap().to_owned()),
                        ],
                        owner: effective(emu, account, Kind::User, user),
                    });
                }
            }
        }
    }
    for (account, r) in emu.resources.as_object().unwrap() {
        for b in r["buckets"].as_array().unwrap() {
            let name = b["name"].as_str().unwrap();
            if b["public"] == true {
                out.push(Expected {
                    alertname: "InfraAuditS3BucketPublic",
                    labels: vec![("account_id", account.clone()), ("bucket", name.to_owned())],
                    owner: effective(emu, account, Kind::Bucket, name),
                });
            }
        }
        for (id, i) in r["instances"].as_object().unwrap() {
            if i["imdsv2_required"] == false && i["state"] != "terminated" {
                out.push(Expected {
                    alertname: "InfraAuditEC2IMDSv1Allowed",
                    labels: vec![("account_id", account.clone()), ("instance_id", id.clone())],
                    owner: effective(emu, account, Kind::Instance, id),
                });
            }
        }
    }
    out.push(Expected {
        alertname: "InfraAuditRootAccessKeyPresent",
        labels: vec![("account_id", BASE_ACCOUNT.to_owned())],
        owner: account_owner(emu, BASE_ACCOUNT),
    });
    out.push(Expected {
        alertname: "InfraAuditPasswordPolicyWeak",
        labels: vec![("account_id", ROLE_ACCOUNT.to_owned())],
        owner: account_owner(emu, ROLE_ACCOUNT),
    });
    out
}

/// The owner label of an alert, None when it has none.
fn owner_label(alert: &Value) -> Option<&str> {
    alert["labels"]["owner"].as_str().filter(|o| !o.is_empty())
}

/// The routing of deploy/alertmanager/alertmanager.example.yml with real Alertmanager: the
/// emulator's owners scenario (tests/emulator/moto_emulator.py --owners: old keys, public
/// buckets and IMDSv1 instances owned by team-payments, by team-platform through their tags or
/// their account's owner, and by nobody), the exporter with owners configured, Prometheus with
/// the shipped rules, and one webhook on loopback per receiver. Each team gets exactly its own
/// alerts, `default` the unowned ones, in one notification group per owner and account.
#[test]
fn alerts_route_to_their_owners() {
    use common::owners::{self, receiver_for};
    let emu = Emulator::start_with(&["--owners", "--aws-like-report"]);
    let dir = scratch_dir("stack-owners");
    let want = expected_alerts(&emu);
    // The scenario gives each receiver alerts, and team-payments alerts in both accounts.
    for receiver in ["default", "team-payments", "team-platform"] {
        assert!(
            want.iter()
                .any(|w| receiver_for(w.owner.as_deref()) == receiver),
            "nothing expected for {receiver}"
        );
    }
    let payments_accounts: BTreeSet<&str> = want
        .iter()
        .filter(|w| w.owner.as_deref() == Some("team-payments"))
        .map(|w| w.labels[0].1.as_str())
        .collect();
    assert_eq!(payments_accounts.len(), 2, "team-payments in both accounts");

    let d = Daemon::start("stack-owners", &owners::config(&emu, ""));
    d.wait_ready(Duration::from_secs(120));
    let exporter = d.url.trim_start_matches("http://").to_owned();

    let got: Notifications = Arc::default();
    let urls: BTreeMap<String, String> = ["default", "team-payments", "team-platform"]
        .into_iter()
        .map(|r| (r.to_owned(), webhook(r, &got)))
        .collect();
    let stack = Stack::start(&dir, &routing_config(&urls), &exporter);
    let am_url = &stack.am_url;

    // Every expected alert notified somewhere, and team-payments' two old keys of the base
    // account in one notification (grouped per owner and account, not one per key).
    let base_payment_keys: Vec<&Expected> = want
        .iter()
        .filter(|w| {
            w.alertname == "InfraAuditAccessKeyTooOld"
                && w.labels[0].1 == BASE_ACCOUNT
                && w.owner.as_deref() == Some("team-payments")
        })
        .collect();
    assert!(base_payment_keys.len() >= 2, "{base_payment_keys:?}");
    let notifications = poll(
        Duration::from_secs(120),
        "every expected alert at a webhook",
        || {
            let all = got.lock().unwrap().clone();
            let alerts = || {
                all.iter()
                    .filter_map(|(_, n)| n.as_ref().ok())
                    .flat_map(|n| n["alerts"].as_array().into_iter().flatten())
            };
            let arrived = want.iter().all(|w| alerts().any(|a| w.matches(a)));
            let together = all.iter().filter_map(|(_, n)| n.as_ref().ok()).any(|n| {
                let alerts = n["alerts"].as_array().unwrap();
                base_payment_keys
                    .iter()
                    .all(|w| alerts.iter().any(|a| w.matches(a)))
            });
            (arrived && together).then_some(all)
        },
    );

    // Each notification went to the receiver of its alerts' owner, as one group per
    // (owner, account_id).
    let mut groups: BTreeMap<(String, Option<String>, String), BTreeSet<String>> = BTreeMap::new();
    for (receiver, n) in &notifications {
        let n = n
            .as_ref()
            .unwrap_or_else(|e| panic!("{receiver}'s webhook: {e}"));
        assert_eq!(n["receiver"], receiver.as_str(), "{n}");
        let group = n["groupLabels"].as_object().unwrap();
        let group_owner = group.get("owner").and_then(Value::as_str);
        let Some(group_account) = group.get("account_id").and_then(Value::as_str) else {
            // Only the exporter's own alerts have no account (InfraAuditExporterDown fires on
            // absent(up) when rules run before the first scrape): no owner, the default
            // receiver.
            assert!(
                group.is_empty(),
                "grouped by owner and account_id only: {n}"
            );
            assert_eq!(receiver, "default", "{n}");
            for a in n["alerts"].as_array().unwrap() {
                assert!(a["labels"].get("account_id").is_none(), "{a} in {n}");
                assert_eq!(owner_label(a), None, "{a}");
                assert_eq!(
                    a["labels"]["job"], "infraaudit",
                    "not the exporter's own: {a}"
                );
            }
            continue;
        };
        let group_account = group_account.to_owned();
        assert_eq!(
            group.len(),
            1 + usize::from(group_owner.is_some()),
            "grouped by owner and account_id only: {n}"
        );
        for a in n["alerts"].as_array().unwrap() {
            assert_eq!(
                receiver_for(owner_label(a)),
                receiver.as_str(),
                "an alert of owner {:?} at {receiver}: {a}",
                owner_label(a)
            );
            assert_eq!(owner_label(a), group_owner, "{a} in group {group:?}");
            assert_eq!(a["labels"]["account_id"], group_account.as_str(), "{a}");
        }
        groups
            .entry((
                receiver.clone(),
                group_owner.map(str::to_owned),
                group_account,
            ))
            .or_default()
            .insert(n["groupKey"].as_str().unwrap().to_owned());
    }
    for (group, keys) in &groups {
        assert_eq!(keys.len(), 1, "{group:?} notified as {keys:?}");
    }
    let payment_groups = groups
        .keys()
        .filter(|(r, _, _)| r == "team-payments")
        .count();
    assert_eq!(payment_groups, 2, "team-payments: one group per account");

    // Each expected alert went to its owner's receiver only, with its owner as the label.
    for w in &want {
        let mut receivers = BTreeSet::new();
        for (receiver, n) in &notifications {
            for a in n.as_ref().unwrap()["alerts"].as_array().unwrap() {
                if w.matches(a) {
                    assert_eq!(owner_label(a), w.owner.as_deref(), "{w:?}: {a}");
                    receivers.insert(receiver.as_str());
                }
            }
        }
        assert_eq!(
            receivers,
            BTreeSet::from([receiver_for(w.owner.as_deref())]),
            "{w:?}"
        );
    }

    // Alertmanager's own view agrees: every alert it holds is routed to its owner's receiver.
    let held = get_json(&format!("{am_url}/api/v2/alerts"));
    let held = held.as_array().unwrap();
    assert!(held.len() >= want.len());
    for a in held {
        let receivers: Vec<&str> = a["receivers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(receivers, [receiver_for(owner_label(a))], "{a}");
    }
}
