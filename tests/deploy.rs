//! What `deploy/` ships fits the binary it deploys. Expectations come from the binary and the
//! repository (`infraaudit check-config` and `infraaudit policy`, Cargo.toml, alerts/), never
//! from lists written here, so a new collector, key or alert is checked without editing this file:
//!
//! - the CloudFormation audit role passes `cfn-lint` (pinned in .venv) and its policy is exactly
//!   what `infraaudit policy` prints, for every combination of its `Enable*` parameters; its trust
//!   policy is the one `infraaudit policy` prints;
//! - the Kubernetes layouts render with `kubectl kustomize`, pass `kubernetes-validate` (the
//!   Kubernetes API's schemas, pinned in .venv-deploy), and fit together: selectors, ports,
//!   ServiceMonitor, volumes, the configuration (`check-config` accepts it with the pod's
//!   environment, and every `INFRAAUDIT_*` variable lands on the key it names), the probes (the
//!   real binary answers them), the security context, and the StatefulSet's shards;
//! - the PrometheusRule embeds alerts/infraaudit.rules.yml (and its generator agrees);
//! - the systemd unit passes `systemd-analyze verify` and `security`;
//! - the Dockerfile builds and runs the binary Cargo.toml names, as the user and on the port the
//!   manifests use.
//!
//! No Docker engine, Kubernetes cluster or systemd instance runs here: these are the checks
//! that can be made without one.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde::Deserialize;
use serde_json::{Value, json};

const PRINCIPAL: &str = "111111111111";
const LAYOUTS: [&str; 2] = ["single", "sharded"];
/// A bearer token for configurations that turn the API on (16 characters or more).
const TOKEN: &str = "deploy-test-token-0123456789";

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs the binary with the tests' AWS environment plus `env`.
fn infraaudit(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraaudit"));
    aws_test_env(&mut cmd)
        .env("INFRAAUDIT_LOG", "error")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd.output().unwrap()
}

fn stdout_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `infraaudit check-config` of `config` (none: the defaults) with `env`, as JSON.
fn check_config(config: Option<&Path>, env: &[(String, String)]) -> Value {
    let mut args = vec!["check-config"];
    let path;
    if let Some(p) = config {
        path = p.display().to_string();
        args.extend(["--config", path.as_str()]);
    }
    let text = stdout_ok(&infraaudit(&args, env), "infraaudit check-config");
    serde_json::from_str(&text).unwrap()
}

/// Every document of a YAML stream, as JSON values.
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_file(path: &str) -> Value {
    let mut docs = yaml_docs(&read(&repo().join(path)));
    assert_eq!(docs.len(), 1, "{path}: expected one YAML document");
    docs.remove(0)
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v:#}"))
}

/// A tool the tests need, or a failure that says how to get it.
fn tool(path: PathBuf, hint: &str) -> PathBuf {
    assert!(path.exists(), "{} is missing: {hint}", path.display());
    path
}

fn run_tool(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{report}");
    report
}

/// The collectors, by name, with whether each runs by default: from the defaults as
/// `check-config` prints them.
fn collectors() -> BTreeMap<String, bool> {
    let defaults = check_config(None, &[]);
    let map = defaults["collectors"].as_object().unwrap();
    assert!(!map.is_empty(), "check-config lists no collector");
    map.iter()
        .map(|(name, c)| (name.clone(), c["enabled"].as_bool().unwrap()))
        .collect()
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CloudFormation

const TEMPLATE: &str = "deploy/cloudformation/audit-role.yaml";
const DISCOVERY_TEMPLATE: &str = "deploy/cloudformation/discovery-role.yaml";

#[test]
fn cloudformation_template_passes_cfn_lint() {
    let cfn_lint = tool(
        repo().join(".venv/bin/cfn-lint"),
        "run `make test-deps` (cfn-lint is pinned in tests/emulator/requirements.txt)",
    );
    let report = run_tool(
        Command::new(&cfn_lint)
            .args(["--format", "parseable", TEMPLATE, DISCOVERY_TEMPLATE])
            .current_dir(repo()),
        "cfn-lint",
    );
    // Warnings and informational findings fail too (cfn-lint exits non-zero on them).
    assert!(report.trim().is_empty(), "cfn-lint:\n{report}");
}

/// Evaluates the intrinsic functions of a CloudFormation template for given parameters.
struct Cfn {
    params: BTreeMap<String, String>,
    conditions: BTreeMap<String, Value>,
}

impl Cfn {
    fn new(template: &Value, overrides: &[(&str, &str)]) -> Self {
        let mut params: BTreeMap<String, String> = template["Parameters"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(name, p)| {
                let d = p.get("Default")?;
                Some((
                    name.clone(),
                    d.as_str().map_or(d.to_string(), str::to_owned),
                ))
            })
            .collect();
        for (k, v) in overrides {
            assert!(
                template["Parameters"].get(*k).is_some(),
                "{TEMPLATE} has no parameter {k}"
            );
            params.insert((*k).to_owned(), (*v).to_owned());
        }
        let conditions = template["Conditions"]
            .as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default();
        Self { params, conditions }
    }

    fn reference(&self, name: &str) -> Option<Value> {
        match name {
            "AWS::NoValue" => None,
            "AWS::Partition" => Some(json!("aws")),
            _ => Some(json!(
                self.params
                    .get(name)
                    .unwrap_or_else(|| panic!("no value for parameter {name}"))
            )),
        }
    }

    fn condition(&self, v: &Value) -> bool {
        let (f, args) = single(v).unwrap_or_else(|| panic!("not a condition: {v}"));
        match f {
            "Condition" => self.condition(&self.conditions[args.as_str().unwrap()]),
            "Fn::Equals" => self.eval(&args[0]) == self.eval(&args[1]),
            "Fn::Not" => !self.condition(&args[0]),
            "Fn::And" => args.as_array().unwrap().iter().all(|c| self.condition(c)),
            "Fn::Or" => args.as_array().unwrap().iter().any(|c| self.condition(c)),
            _ => panic!("unsupported condition function {f}"),
        }
    }

    /// The value, or None for AWS::NoValue.
    fn eval(&self, v: &Value) -> Option<Value> {
        if let Some((f, args)) = single(v) {
            match f {
                "Ref" => return self.reference(args.as_str().unwrap()),
                "Fn::Sub" => {
                    let mut s = args.as_str().unwrap().to_owned();
                    while let Some(start) = s.find("${") {
                        let end = start + s[start..].find('}').unwrap();
                        let value = self.reference(&s[start + 2..end]).unwrap();
                        s.replace_range(start..=end, value.as_str().unwrap());
                    }
                    return Some(json!(s));
                }
                "Fn::If" => {
                    let cond = args[0].as_str().unwrap();
                    let branch = if self.condition(&self.conditions[cond]) {
                        &args[1]
                    } else {
                        &args[2]
                    };
                    return self.eval(branch);
                }
                f if f.starts_with("Fn::") => panic!("unsupported function {f}"),
                _ => {}
            }
        }
        Some(match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), self.eval(v)?)))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().filter_map(|v| self.eval(v)).collect())
            }
            other => other.clone(),
        })
    }
}

/// `{"Ref": x}`, `{"Fn::If": [...]}`, ...: the function and its arguments.
fn single(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    let (k, args) = m.iter().next()?;
    (m.len() == 1 && (k == "Ref" || k == "Condition" || k.starts_with("Fn::")))
        .then_some((k.as_str(), args))
}

/// The properties of the template's one IAM role.
fn role_of(template: &Value) -> &Value {
    let roles: Vec<&Value> = template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::IAM::Role")
        .collect();
    assert_eq!(roles.len(), 1, "expected one IAM role in {template}");
    &roles[0]["Properties"]
}

/// The actions of a role's inline policies once evaluated; every statement allows, on "*".
fn granted(cfn: &Cfn, role: &Value) -> BTreeSet<String> {
    assert!(
        role.get("ManagedPolicyArns").is_none(),
        "managed policies would grant more than the code declares"
    );
    let policies = cfn.eval(&role["Policies"]).unwrap();
    let mut actions = BTreeSet::new();
    for policy in policies.as_array().unwrap() {
        let doc = &policy["PolicyDocument"];
        assert_eq!(doc["Version"], "2012-10-17");
        for st in doc["Statement"].as_array().unwrap() {
            assert_eq!(st["Effect"], "Allow", "{st}");
            assert_eq!(st["Resource"], "*", "{st}");
            actions.extend(
                st["Action"]
                    .as_array()
                    .unwrap_or_else(|| panic!("Action should be a list: {st}"))
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned()),
            );
        }
    }
    actions
}

/// `infraaudit policy --format json` for a configuration: (actions, trust policy).
fn declared_policy(config: &str) -> (BTreeSet<String>, Value) {
    let path = scratch_dir("deploy-policy").join("config.toml");
    std::fs::write(&path, config).unwrap();
    let text = stdout_ok(
        &infraaudit(
            &[
                "policy",
                "--format",
                "json",
                "--principal-account",
                PRINCIPAL,
                "--config",
                path.to_str().unwrap(),
            ],
            &[],
        ),
        "infraaudit policy",
    );
    let doc: Value = serde_json::from_str(&text).unwrap();
    let actions = doc["permission_policy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    (actions, doc["trust_policy"].clone())
}

#[test]
fn cloudformation_policy_is_exactly_what_the_collectors_declare() {
    let template = yaml_file(TEMPLATE);
    let role = role_of(&template);
    // One switch per collector that is off by default, and one for the API's live listing.
    let optional: Vec<String> = collectors()
        .into_iter()
        .filter(|(_, on)| !on)
        .map(|(name, _)| name)
        .collect();
    let mut switches: Vec<String> = optional
        .iter()
        .map(|n| format!("Enable{}", camel(n)))
        .collect();
    switches.push("EnableLiveApi".to_owned());
    for s in &switches {
        let p = &template["Parameters"][s];
        assert_eq!(
            p["AllowedValues"],
            json!(["true", "false"]),
            "{TEMPLATE}: parameter {s} (for a collector off by default, or the API) is missing or not a true/false switch"
        );
        assert_eq!(
            p["Default"], "false",
            "{TEMPLATE}: {s} should be off by default, like its collector"
        );
    }

    for combo in 0..1u32 << switches.len() {
        let on = |i: usize| combo & (1 << i) != 0;
        let mut config = String::new();
        for (i, name) in optional.iter().enumerate() {
            if on(i) {
                config.push_str(&format!("[collectors.{name}]\nenabled = true\n"));
            }
        }
        if on(optional.len()) {
            config.push_str(&format!(
                "[api]\nenabled = true\nbearer_tokens = [\"{TOKEN}\"]\n"
            ));
        }
        let overrides: Vec<(&str, &str)> = switches
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), if on(i) { "true" } else { "false" }))
            .collect();
        let actions = granted(&Cfn::new(&template, &overrides), role);
        let (declared, _) = declared_policy(&config);
        assert_eq!(
            actions,
            declared,
            "{TEMPLATE} with {overrides:?} grants other actions than `infraaudit policy` with\n{config}\n\
             only in the template: {:?}\nonly declared: {:?}",
            actions.difference(&declared).collect::<Vec<_>>(),
            declared.difference(&actions).collect::<Vec<_>>()
        );
    }
}

#[test]
fn cloudformation_trust_policies_are_what_infraaudit_prints() {
    for (path, role_name) in [
        (TEMPLATE, "InfraAuditRole"),
        (DISCOVERY_TEMPLATE, "InfraAuditDiscovery"),
    ] {
        trust_policy_is_what_infraaudit_prints(path, role_name);
    }
}

fn trust_policy_is_what_infraaudit_prints(path: &str, role_name: &str) {
    let template = yaml_file(path);
    let role = role_of(&template);
    let (_, trust) = declared_policy("");
    // The binary names the ExternalId without its value; the template's parameter takes its place.
    let placeholder = str_of(&trust, "/Statement/0/Condition/StringEquals/sts:ExternalId");
    let cfn = Cfn::new(
        &template,
        &[
            ("MonitoringAccountId", PRINCIPAL),
            ("ExternalId", placeholder),
        ],
    );
    assert_eq!(
        cfn.eval(&role["AssumeRolePolicyDocument"]).unwrap(),
        trust,
        "{path}: the trust policy differs from `infraaudit policy`'s"
    );

    // Narrowed to one role of the monitoring account, only the principal changes.
    let arn = format!("arn:aws:iam::{PRINCIPAL}:role/InfraAuditMonitoring");
    let cfn = Cfn::new(
        &template,
        &[
            ("MonitoringAccountId", PRINCIPAL),
            ("ExternalId", placeholder),
            ("MonitoringPrincipalArn", &arn),
        ],
    );
    let mut want = trust.clone();
    want["Statement"][0]["Principal"]["AWS"] = json!(arn);
    assert_eq!(
        cfn.eval(&role["AssumeRolePolicyDocument"]).unwrap(),
        want,
        "{path}"
    );

    let external_id = &template["Parameters"]["ExternalId"];
    assert_eq!(
        external_id["NoEcho"], true,
        "{path}: the ExternalId is a secret"
    );
    assert!(
        external_id.get("Default").is_none(),
        "{path}: an ExternalId must not have a default"
    );
    assert_eq!(
        cfn.eval(&role["RoleName"]).unwrap(),
        role_name,
        "{path}: the default role name is the one docs/aws-setup.md and the configurations use"
    );
}

#[test]
fn discovery_role_policy_is_what_discovery_calls() {
    let template = yaml_file(DISCOVERY_TEMPLATE);
    let cfn = Cfn::new(
        &template,
        &[("MonitoringAccountId", PRINCIPAL), ("ExternalId", "x-id")],
    );
    let want: BTreeSet<String> = infraaudit::discovery::PERMISSIONS
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    assert_eq!(granted(&cfn, role_of(&template)), want);
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// `kubectl kustomize deploy/kubernetes/LAYOUT`, one value per object.
fn kustomize(layout: &str) -> Vec<Value> {
    let text = run_tool(
        Command::new("kubectl")
            .args(["kustomize", &format!("deploy/kubernetes/{layout}")])
            .current_dir(repo()),
        "kubectl kustomize (make test-deps installs Debian's kubernetes-client where kubectl is missing)",
    );
    yaml_docs(&text)
}

fn objects<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = objects(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

/// The workload of a layout: the Deployment or the StatefulSet.
fn workload(docs: &[Value]) -> &Value {
    let w: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
        .collect();
    assert_eq!(w.len(), 1, "expected one Deployment or StatefulSet");
    w[0]
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn container(w: &Value) -> &Value {
    let cs = w["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1, "one container per pod");
    &cs[0]
}

/// The pod's configuration file (from the ConfigMap), written to `dir` with every path under one
/// of the pod's mounts moved under `dir`, and a file with a placeholder secret at each of them.
fn pod_config(docs: &[Value], w: &Value, dir: &Path) -> PathBuf {
    let c = container(w);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--config")
        .expect("--config in args");
    let config_path = args[at + 1];
    let mounts = c["volumeMounts"].as_array().unwrap();
    let volumes = w["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volumeMount {name} has no volume"))
    };
    // The file --config names is a key of the ConfigMap mounted above it.
    let mount = mounts
        .iter()
        .find(|m| config_path.starts_with(&format!("{}/", str_of(m, "/mountPath"))))
        .unwrap_or_else(|| panic!("{config_path} is on no volumeMount"));
    let key = &config_path[str_of(mount, "/mountPath").len() + 1..];
    let cm_name = str_of(volume(str_of(mount, "/name")), "/configMap/name");
    let cm = objects(docs, "ConfigMap")
        .into_iter()
        .find(|m| m["metadata"]["name"] == cm_name)
        .unwrap_or_else(|| panic!("the pod mounts ConfigMap {cm_name}, which is not rendered"));
    let mut text = str_of(&cm["data"], &format!("/{key}")).to_owned();

    // Every absolute path in the configuration must be on a mount, read-only.
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    let mut paths = Vec::new();
    collect_paths(&parsed, &mut paths);
    for p in &paths {
        let m = mounts
            .iter()
            .find(|m| p.starts_with(&format!("{}/", str_of(m, "/mountPath"))))
            .unwrap_or_else(|| panic!("the configuration names {p}, which is on no volumeMount"));
        assert_eq!(m["readOnly"], true, "{m}");
        let local = dir.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, "placeholder-external-id\n").unwrap();
    }
    for m in mounts {
        let mp = str_of(m, "/mountPath");
        text = text.replace(
            &format!("\"{mp}/"),
            &format!("\"{}/", dir.join(mp.trim_start_matches('/')).display()),
        );
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn collect_paths(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) if s.starts_with('/') => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|i| collect_paths(i, out)),
        toml::Value::Table(t) => t.values().for_each(|i| collect_paths(i, out)),
        _ => {}
    }
}

/// The pod's INFRAAUDIT_* environment for the pod with this ordinal.
fn pod_env(w: &Value, ordinal: u32) -> Vec<(String, String)> {
    let Some(env) = container(w)["env"].as_array() else {
        return Vec::new();
    };
    env.iter()
        .map(|e| {
            let name = str_of(e, "/name").to_owned();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_owned()
            } else {
                let field = str_of(e, "/valueFrom/fieldRef/fieldPath");
                assert_eq!(
                    field, "metadata.labels['apps.kubernetes.io/pod-index']",
                    "{name}: only the StatefulSet's pod index is expected from the downward API"
                );
                assert_eq!(
                    w["kind"], "StatefulSet",
                    "only a StatefulSet's pods have an index"
                );
                ordinal.to_string()
            };
            (name, value)
        })
        .collect()
}

#[test]
fn kubernetes_layouts_fit_together() {
    let listen_port = |config: &Value| -> u64 {
        let addr = str_of(config, "/server/listen_address");
        addr.rsplit(':').next().unwrap().parse().unwrap()
    };
    let rules = read(&repo().join("alerts/infraaudit.rules.yml"));
    for layout in LAYOUTS {
        let docs = kustomize(layout);
        let w = workload(&docs);
        let kind = w["kind"].as_str().unwrap();
        let pod = &w["spec"]["template"];
        let pod_labels = labels(&pod["metadata"]["labels"]);
        assert!(
            matches(&labels(&w["spec"]["selector"]["matchLabels"]), &pod_labels),
            "{layout}: the {kind}'s selector does not match its pods"
        );
        let ns = w["metadata"]["namespace"].as_str();
        for d in &docs {
            assert_eq!(
                d["metadata"]["namespace"].as_str(),
                ns,
                "{layout}: {} {} is in another namespace",
                d["kind"],
                d["metadata"]["name"]
            );
        }

        // The ServiceAccount and the Secret and ConfigMap volumes.
        let sa = one(&docs, "ServiceAccount");
        assert_eq!(pod["spec"]["serviceAccountName"], sa["metadata"]["name"]);
        assert!(
            sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
                .as_str()
                .is_some_and(|a| a.starts_with("arn:aws:iam::")),
            "{layout}: the ServiceAccount should carry the IRSA annotation"
        );

        // The configuration as the pod sees it: check-config accepts it with the pod's
        // environment, and every INFRAAUDIT_A__B variable sets the key a.b.
        let replicas = w["spec"]["replicas"].as_u64().unwrap();
        let dir = scratch_dir(&format!("deploy-{layout}"));
        let config_file = pod_config(&docs, w, &dir);
        let mut port = None;
        for ordinal in 0..replicas as u32 {
            let env = pod_env(w, ordinal);
            let config = check_config(Some(&config_file), &env);
            for (name, value) in &env {
                let Some(key) = name.strip_prefix(ENV_PREFIX).filter(|k| k.contains("__")) else {
                    continue;
                };
                let pointer = format!("/{}", key.to_lowercase().replace("__", "/"));
                let got = config.pointer(&pointer).unwrap_or_else(|| {
                    panic!("{layout}: {name} sets no key: check-config has no {pointer}")
                });
                let got = got.as_str().map_or(got.to_string(), str::to_owned);
                assert_eq!(
                    &got, value,
                    "{layout}: {name}={value} but check-config says {got}"
                );
            }
            port = Some(listen_port(&config));
        }
        let port = port.unwrap();

        // Ports: the container's named port is the listen address', and every Service reaches
        // it by name.
        let c = container(w);
        let ports = c["ports"].as_array().unwrap();
        let metrics = ports
            .iter()
            .find(|p| p["containerPort"] == port)
            .unwrap_or_else(|| panic!("{layout}: no containerPort {port} (server.listen_address)"));
        let port_name = str_of(metrics, "/name");
        let services = objects(&docs, "Service");
        for s in &services {
            assert!(
                matches(&labels(&s["spec"]["selector"]), &pod_labels),
                "{layout}: Service {} selects no pod",
                s["metadata"]["name"]
            );
            for p in s["spec"]["ports"].as_array().unwrap() {
                assert!(
                    p["targetPort"] == port_name || p["targetPort"] == port,
                    "{layout}: Service {} targets {} instead of {port_name}",
                    s["metadata"]["name"],
                    p["targetPort"]
                );
            }
        }
        if kind == "StatefulSet" {
            let governing = str_of(w, "/spec/serviceName");
            let headless = services
                .iter()
                .find(|s| s["metadata"]["name"] == governing)
                .unwrap_or_else(|| panic!("{layout}: no Service {governing}"));
            assert_eq!(
                headless["spec"]["clusterIP"], "None",
                "{governing} must be headless"
            );
        }

        // The ServiceMonitor scrapes each pod once, through one Service whose name is the job
        // the shipped alerts expect.
        let sm = one(&docs, "ServiceMonitor");
        let sel = labels(&sm["spec"]["selector"]["matchLabels"]);
        let scraped: Vec<&&Value> = services
            .iter()
            .filter(|s| matches(&sel, &labels(&s["metadata"]["labels"])))
            .collect();
        assert_eq!(
            scraped.len(),
            1,
            "{layout}: the ServiceMonitor must select exactly one Service"
        );
        let job = str_of(scraped[0], "/metadata/name");
        assert!(
            rules.contains(&format!("job=\"{job}\"")),
            "{layout}: the alerts expect another job than {job}"
        );
        let sm_port = &sm["spec"]["endpoints"][0]["port"];
        assert!(
            scraped[0]["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| &p["name"] == sm_port),
            "{layout}: the ServiceMonitor's port {sm_port} is not the Service's"
        );
        assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
        one(&docs, "PrometheusRule");

        // Security context.
        let psc = &pod["spec"]["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true, "{layout}");
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{layout}");
        assert_eq!(
            psc["runAsUser"].as_u64(),
            Some(dockerfile_uid()),
            "{layout}: runAsUser should be the image's user"
        );
        let csc = &c["securityContext"];
        assert_eq!(csc["readOnlyRootFilesystem"], true, "{layout}");
        assert_eq!(csc["allowPrivilegeEscalation"], false, "{layout}");
        assert_eq!(csc["capabilities"]["drop"], json!(["ALL"]), "{layout}");
        assert_eq!(
            pod["spec"]["automountServiceAccountToken"], false,
            "{layout}"
        );
        for r in ["/requests/cpu", "/requests/memory", "/limits/memory"] {
            assert!(
                c["resources"].pointer(r).is_some(),
                "{layout}: no resources{r}"
            );
        }
        // The image is this version, and its arguments are the Dockerfile's.
        let image = str_of(c, "/image");
        assert!(
            image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
            "{layout}: image {image} is not version {}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(c["args"], json!(dockerfile_exec("CMD")), "{layout}");

        // Probes: on the container's port, on paths the binary serves (checked live below).
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(
                c[probe]["httpGet"]["port"], port_name,
                "{layout}: {probe} on another port"
            );
        }
        if kind == "StatefulSet" {
            assert_eq!(w["spec"]["podManagementPolicy"], "Parallel");
        }
    }
}

const ENV_PREFIX: &str = "INFRAAUDIT_";

#[test]
fn statefulset_shards_are_its_replicas() {
    let docs = kustomize("sharded");
    let sts = one(&docs, "StatefulSet");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    assert!(replicas > 1, "a sharded layout with {replicas} replica");
    let dir = scratch_dir("deploy-shards");
    let config_file = pod_config(&docs, sts, &dir);
    // Each pod gets its own shard, and all agree on the total.
    let mut shards = BTreeSet::new();
    for ordinal in 0..replicas as u32 {
        let config = check_config(Some(&config_file), &pod_env(sts, ordinal));
        let sharding = &config["sharding"];
        assert_eq!(
            sharding["total_shards"].as_u64(),
            Some(replicas),
            "pod {ordinal}: total_shards is not the StatefulSet's replicas: {sharding}"
        );
        shards.insert(sharding["shard"].as_u64().unwrap());
    }
    assert_eq!(shards, (0..replicas).collect::<BTreeSet<_>>());

    // Before Kubernetes 1.28 the pod-index label is missing and the variable empty: infraaudit
    // must refuse to start, naming the key, rather than run as shard 0.
    let mut env = pod_env(sts, 0);
    env.iter_mut()
        .filter(|(k, _)| k == "INFRAAUDIT_SHARDING__SHARD")
        .for_each(|(_, v)| v.clear());
    let path = config_file.display().to_string();
    let out = infraaudit(&["check-config", "--config", &path], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("sharding.shard"), "{stderr}");
}

#[test]
fn single_and_sharded_pods_agree() {
    // The two layouts' pods differ only by the sharding variables.
    let pod = |layout: &str| {
        let docs = kustomize(layout);
        let mut spec = workload(&docs)["spec"]["template"].clone();
        let c = &mut spec["spec"]["containers"][0];
        if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
            env.retain(|e| !str_of(e, "/name").starts_with("INFRAAUDIT_SHARDING__"));
            if env.is_empty() {
                c.as_object_mut().unwrap().remove("env");
            }
        }
        spec
    };
    assert_eq!(pod("single"), pod("sharded"));
}

#[test]
fn probes_are_endpoints_the_binary_serves() {
    let docs = kustomize("single");
    let w = workload(&docs);
    let c = container(w);
    let dir = scratch_dir("deploy-probes");
    let config_file = pod_config(&docs, w, &dir);
    // The pod's configuration, on a free loopback port, with AWS at a closed one: collection
    // fails, which is all the readiness endpoint needs to exist.
    let port = free_port();
    let closed = free_port();
    // The args name the file inside the pod; the local copy stands in for it.
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .map(|a| {
            if a.ends_with(".toml") {
                config_file.display().to_string()
            } else {
                a.to_owned()
            }
        })
        .collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infraaudit"));
    aws_test_env(&mut cmd)
        .envs(pod_env(w, 0))
        .env(
            "INFRAAUDIT_SERVER__LISTEN_ADDRESS",
            format!("127.0.0.1:{port}"),
        )
        .env(
            "INFRAAUDIT_AWS__ENDPOINT_URL",
            format!("http://127.0.0.1:{closed}"),
        )
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let status = |path: &str| -> Option<u16> {
        client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .ok()
            .map(|r| r.status().as_u16())
    };
    let live = str_of(c, "/livenessProbe/httpGet/path");
    let ready = str_of(c, "/readinessProbe/httpGet/path");
    poll(
        Duration::from_secs(30),
        "the liveness probe to answer 200",
        || {
            assert!(child.0.try_wait().unwrap().is_none(), "infraaudit exited");
            (status(live) == Some(200)).then_some(())
        },
    );
    // Ready or not yet, but an endpoint: the binary answers 404 to a path it does not serve.
    assert_eq!(status("/-/no-such-probe"), Some(404));
    let r = status(ready);
    assert!(
        matches!(r, Some(200 | 503)),
        "readiness probe {ready}: {r:?}"
    );
    child.0.kill().unwrap();
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kubernetes_objects_pass_schema_validation() {
    let validate = tool(
        repo().join(".venv-deploy/bin/kubernetes-validate"),
        "run `make test-deps` (kubernetes-validate is pinned in tests/deploy/requirements.txt)",
    );
    for layout in LAYOUTS {
        let dir = scratch_dir(&format!("deploy-validate-{layout}"));
        let mut files = Vec::new();
        for (i, doc) in kustomize(layout).iter().enumerate() {
            // prometheus-operator's kinds are not in the Kubernetes API's schemas; their fields
            // are checked in kubernetes_layouts_fit_together.
            if doc["apiVersion"]
                .as_str()
                .unwrap()
                .starts_with("monitoring.coreos.com/")
            {
                continue;
            }
            let path = dir.join(format!("{i}-{}.json", doc["kind"].as_str().unwrap()));
            std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
            files.push(path);
        }
        assert!(files.len() >= 4, "{layout}: too few objects to validate");
        for version in KUBERNETES_VERSIONS {
            let report = run_tool(
                Command::new(&validate)
                    .args(["--strict", "--quiet", "--kubernetes-version", version])
                    .args(&files),
                &format!("kubernetes-validate ({layout}, Kubernetes {version})"),
            );
            // An unknown kind or apiVersion is only a warning to it.
            assert!(
                report.trim().is_empty(),
                "kubernetes-validate ({layout}, Kubernetes {version}):\n{report}"
            );
        }
    }
}

/// The oldest release the StatefulSet supports (the pod-index label), and the newest whose
/// schemas the pinned kubernetes-validate ships.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.28", "1.37"];

// ---------------------------------------------------------------------------------------------
// PrometheusRule

#[test]
fn prometheusrule_embeds_the_shipped_rules() {
    run_tool(
        Command::new(repo().join("scripts/gen-prometheusrule.sh")).arg("--check"),
        "scripts/gen-prometheusrule.sh --check",
    );
    // And, independently of the generator, the same rules once parsed.
    let rule = yaml_file("deploy/kubernetes/base/prometheusrule.yaml");
    let shipped = yaml_file("alerts/infraaudit.rules.yml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["spec"], shipped);
    assert!(!shipped["groups"].as_array().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// systemd

const UNIT: &str = "deploy/systemd/infraaudit.service";

/// The unit's `Key=value` lines of one section (comments and continuations aside).
fn unit_keys(text: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.to_owned();
        } else if current == section {
            let (k, v) = line.split_once('=').unwrap();
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

#[test]
fn systemd_unit_verifies_and_is_sandboxed() {
    let text = read(&repo().join(UNIT));
    let service = unit_keys(&text, "Service");
    let get = |k: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("RestartPreventExitStatus", "64"),
    ] {
        assert!(
            get(k).contains(&v),
            "{UNIT}: expected {k}={v}, found {:?}",
            get(k)
        );
    }
    // The binary, with --config, and the credentials the configuration can name.
    let exec = get("ExecStart");
    let exec: Vec<&str> = exec[0].split_whitespace().collect();
    assert_eq!(exec[0], format!("/usr/local/bin/{}", cargo_bin_name()));
    assert_eq!(exec.get(1), Some(&"--config"));
    let creds = get("LoadCredential");
    for name in ["external-id", "api-tokens"] {
        assert!(
            creds.iter().any(|c| c.starts_with(&format!("{name}:/"))),
            "{UNIT}: no LoadCredential={name}:PATH"
        );
        let in_unit = format!("/run/credentials/infraaudit.service/{name}");
        assert!(
            text.contains(&in_unit),
            "{UNIT} should say where {name} appears: {in_unit}"
        );
    }

    // systemd itself: the unit with ExecStart pointing at the binary under test.
    let dir = scratch_dir("deploy-systemd");
    let unit = dir.join("infraaudit.service");
    std::fs::write(
        &unit,
        text.replace(exec[0], env!("CARGO_BIN_EXE_infraaudit")),
    )
    .unwrap();
    let analyze = tool(
        PathBuf::from("/usr/bin/systemd-analyze"),
        "install the Debian package systemd",
    );
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 on unknown keys and bad values, which it only prints.
    assert!(
        out.status.success() && report.trim().is_empty(),
        "systemd-analyze verify:\n{report}"
    );
    // Exposure 2.0 or less ("OK" in systemd's scale, 0 to 10).
    let report = run_tool(
        Command::new(&analyze)
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(&unit),
        "systemd-analyze security",
    );
    assert!(report.contains("Overall exposure level"), "{report}");
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

const DOCKERFILE: &str = "deploy/Dockerfile";

fn cargo_toml() -> toml::Value {
    toml::from_str(&read(&repo().join("Cargo.toml"))).unwrap()
}

fn cargo_bin_name() -> String {
    let cargo = cargo_toml();
    let bins = cargo["bin"].as_array().unwrap();
    assert_eq!(bins.len(), 1);
    bins[0]["name"].as_str().unwrap().to_owned()
}

/// The Dockerfile's instructions (continuations joined), upper-cased keyword first.
fn dockerfile() -> Vec<(String, String)> {
    let text = read(&repo().join(DOCKERFILE));
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let (k, v) = pending.split_once(' ').unwrap();
        out.push((k.to_uppercase(), v.trim().to_owned()));
        pending.clear();
    }
    out
}

/// ENTRYPOINT or CMD of the last stage, in exec form.
fn dockerfile_exec(keyword: &str) -> Vec<String> {
    let (_, v) = dockerfile()
        .into_iter()
        .rev()
        .find(|(k, _)| k == keyword)
        .unwrap_or_else(|| panic!("{DOCKERFILE}: no {keyword}"));
    serde_json::from_str(&v).unwrap_or_else(|e| panic!("{keyword} not in exec form ({e}): {v}"))
}

fn dockerfile_uid() -> u64 {
    let (_, user) = dockerfile()
        .into_iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .expect("a USER in the runtime stage");
    let uid: u64 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric (runAsNonRoot needs a number)"));
    assert_ne!(uid, 0, "the image must not run as root");
    uid
}

/// The Dockerfile read as text (no image is built here: no Docker engine runs in the tests).
#[test]
fn dockerfile_declares_a_release_build_whose_binary_the_runtime_stage_runs() {
    let ins = dockerfile();
    let bin = cargo_bin_name();
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    // The builder's Rust is at least the crate's rust-version.
    let builder = froms[0].split_whitespace().next().unwrap();
    let tag = builder
        .strip_prefix("rust:")
        .expect("the builder is the official rust image");
    let version = |s: &str| -> (u32, u32) {
        let mut it = s.split(['.', '-']).map(|p| p.parse().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    let want = cargo_toml()["package"]["rust-version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        version(tag) >= version(&want),
        "builder {tag} older than rust-version {want}"
    );
    let stage = froms[0].split_whitespace().last().unwrap();

    let runs: Vec<&String> = ins
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, v)| v)
        .collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "{DOCKERFILE}: no `cargo build --release --locked`"
    );
    // The runtime stage gets the binary alone, and runs it.
    let copied: Vec<&String> = ins
        .iter()
        .filter(|(k, v)| k == "COPY" && v.starts_with("--from="))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        copied.len(),
        1,
        "{DOCKERFILE}: the runtime stage copies one thing"
    );
    let parts: Vec<&str> = copied[0].split_whitespace().collect();
    assert_eq!(parts[0], format!("--from={stage}"));
    assert!(
        parts[1].ends_with(&format!("/target/release/{bin}")),
        "{DOCKERFILE} copies {} instead of the release binary {bin}",
        parts[1]
    );
    assert_eq!(dockerfile_exec("ENTRYPOINT"), vec![parts[2].to_owned()]);
    dockerfile_uid();
    // EXPOSE is the default listen port.
    let defaults = check_config(None, &[]);
    let port = str_of(&defaults, "/server/listen_address")
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let exposed: Vec<&String> = ins
        .iter()
        .filter(|(k, _)| k == "EXPOSE")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(exposed, vec![&port]);
    // CMD names a configuration file.
    let cmd = dockerfile_exec("CMD");
    assert_eq!(cmd[0], "--config");

    // The dependency layer: what the first COPY brings, with placeholder sources, resolves
    // with the lockfile as it is (`--locked` in the image fails otherwise).
    let (_, first_copy) = ins.iter().find(|(k, _)| k == "COPY").unwrap();
    let sources: Vec<&str> = first_copy.split_whitespace().collect();
    let dir = scratch_dir("deploy-docker-deps");
    for s in &sources[..sources.len() - 1] {
        std::fs::copy(repo().join(s), dir.join(s)).unwrap();
    }
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    run_tool(
        Command::new(env!("CARGO"))
            .args(["metadata", "--locked", "--offline", "--format-version", "1"])
            .current_dir(&dir)
            .stdout(Stdio::null()),
        "cargo metadata --locked in the Dockerfile's dependency layer",
    );

    // .dockerignore lets in what the build stage copies, and little else.
    let ignore = read(&repo().join(".dockerignore"));
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules[0], "*", ".dockerignore should be an allow-list");
    let allowed: BTreeSet<&str> = rules[1..]
        .iter()
        .map(|r| r.trim_start_matches('!').trim_end_matches('/'))
        .collect();
    for (_, v) in ins
        .iter()
        .filter(|(k, v)| k == "COPY" && !v.starts_with("--from="))
    {
        let sources: Vec<&str> = v.split_whitespace().collect();
        for s in &sources[..sources.len() - 1] {
            assert!(
                allowed.contains(s.trim_end_matches('/')),
                "{DOCKERFILE} copies {s}, which .dockerignore leaves out"
            );
            assert!(
                repo().join(s).exists(),
                "{DOCKERFILE} copies {s}, which does not exist"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The documentation: docs/deployment.md, and docs/aws-setup.md for the CloudFormation roles

#[test]
fn docs_show_every_deployment_file() {
    let docs = ["docs/deployment.md", "docs/aws-setup.md"];
    let text = docs.map(|d| read(&repo().join(d))).join("\n");
    let deploy = repo().join("deploy");
    let mut files = Vec::new();
    let mut stack = vec![deploy.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    // Each directory's kustomization is named through its directory.
    for f in files {
        let rel = f.strip_prefix(repo()).unwrap().display().to_string();
        let named = if rel.starts_with("deploy/kubernetes/") {
            let dir = f
                .parent()
                .unwrap()
                .strip_prefix(repo())
                .unwrap()
                .display()
                .to_string();
            text.contains(&dir)
        } else {
            text.contains(&rel)
        };
        assert!(named, "{docs:?}: none mentions {rel}");
    }
    for command in [
        "docker build",
        "kubectl apply -k",
        "systemctl enable",
        "create-stack-set",
        "create-stack-instances",
        "scripts/gen-prometheusrule.sh",
    ] {
        assert!(text.contains(command), "{docs:?}: no `{command}`");
    }
}
