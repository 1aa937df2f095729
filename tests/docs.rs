//! The documentation stays in step with the code and with itself: the IAM policies in
//! docs/aws-setup.md are exactly what the collectors and discovery declare, the metrics reference
//! in docs/metrics.md lists exactly the families the exporter writes, the README's example series
//! are lines of the golden file, CONTRIBUTING.md names every test file, every relative link and
//! `#anchor` of the repository's Markdown files resolves (GitHub's heading slugs), every runbook
//! link of the alerts and dashboards leads to a section of docs/runbook.md (and
//! scripts/gen-runbook-links.sh moves them all to another base and back), and the README stays a
//! front door of at most 15 KB.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn doc(rel: &str) -> String {
    common::read(&common::repo().join(rel))
}

#[test]
fn aws_setup_policy_is_what_the_collectors_declare() {
    use infraaudit::collector::{ALL, permissions, policy_json};
    // docs/aws-setup.md shows the policy for all of them (access_advisor included, though it is
    // off by default), exactly as `infraaudit --print-policy` prints it with every collector on.
    let want = policy_json(&permissions(ALL.iter().map(|spec| spec.name)));
    assert!(
        doc("docs/aws-setup.md").contains(&format!("```json\n{want}```")),
        "docs/aws-setup.md's permission policy differs from the collectors' declarations; it should be:\n{want}"
    );
}

#[test]
fn aws_setup_discovery_policy_is_what_discovery_calls() {
    use infraaudit::collector::policy_json;
    let want = policy_json(infraaudit::discovery::PERMISSIONS);
    assert!(
        doc("docs/aws-setup.md").contains(&format!("```json\n{want}```")),
        "docs/aws-setup.md's discovery policy differs from discovery::PERMISSIONS; it should be:\n{want}"
    );
}

#[test]
fn metrics_reference_matches_the_exposition() {
    let documented: BTreeSet<String> = doc("docs/metrics.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `infraaudit_"))
        .map(|rest| format!("infraaudit_{}", &rest[..rest.find('`').unwrap()]))
        .collect();
    let exported: BTreeSet<String> = doc("tests/golden/metrics.txt")
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|rest| rest.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        documented, exported,
        "docs/metrics.md's metrics table (left) differs from the families in tests/golden/metrics.txt (right)"
    );
}

/// The README's example of `/metrics` is real output: each of its lines is a line of the golden
/// file, so a change to the exposition that the README shows fails here.
#[test]
fn readme_example_series_are_in_the_golden_file() {
    let readme = doc("README.md");
    let golden = doc("tests/golden/metrics.txt");
    let golden: BTreeSet<&str> = golden.lines().collect();
    let (_, rest) = readme
        .split_once("```text\n")
        .expect("README.md has no ```text block of example series");
    let block = &rest[..rest.find("```").unwrap()];
    let lines: Vec<&str> = block.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        lines.len() >= 3,
        "README.md's example block has {} lines",
        lines.len()
    );
    for line in lines {
        assert!(
            golden.contains(line),
            "README.md's example line is not in tests/golden/metrics.txt: {line}"
        );
    }
}

#[test]
fn readme_is_at_most_15_kb() {
    let size = doc("README.md").len();
    assert!(
        size <= 15_000,
        "README.md is {size} bytes, more than 15,000: move the detail into docs/"
    );
}

/// CONTRIBUTING.md's table of the test suite names every integration test file.
#[test]
fn contributing_names_every_test_file() {
    let contributing = doc("CONTRIBUTING.md");
    let mut files: Vec<String> = std::fs::read_dir(common::repo().join("tests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".rs"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "tests/*.rs: {files:?}");
    let missing: Vec<&String> = files
        .iter()
        .filter(|name| !contributing.contains(&format!("`tests/{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "CONTRIBUTING.md does not name these test files: {missing:?}"
    );
}

/// Every relative link and anchor of every Markdown file of the repository resolves.
#[test]
fn every_link_resolves() {
    let repo = common::repo();
    let docs: BTreeMap<PathBuf, String> = markdown_files(&repo)
        .into_iter()
        .map(|rel| {
            let text = common::read(&repo.join(&rel));
            (rel, text)
        })
        .collect();
    for required in [
        "README.md",
        "CONTRIBUTING.md",
        "BENCHMARKS.md",
        "docs/README.md",
        "docs/configuration.md",
        "docs/metrics.md",
        "docs/aws-setup.md",
        "docs/deployment.md",
        "docs/operations.md",
        "docs/api.md",
        "docs/security.md",
        "docs/runbook.md",
    ] {
        assert!(
            docs.contains_key(Path::new(required)),
            "{required} was not found among the Markdown files: {:?}",
            docs.keys().collect::<Vec<_>>()
        );
    }
    let report = check_links(&repo, &docs);
    assert!(
        report.broken.is_empty(),
        "broken links:\n{}",
        report.broken.join("\n")
    );
    // The parser must have found the links that are there: the README alone links every doc.
    assert!(
        report.files_linked >= 10 && report.anchors_checked >= 20,
        "suspiciously few links checked: {} relative links, {} anchors",
        report.files_linked,
        report.anchors_checked
    );
}

/// The checker itself, on documents made up here: each kind of broken link is reported, and
/// what looks like a link in code is not a link.
#[test]
fn link_checker_reports_each_kind_of_broken_link() {
    let repo = common::repo();
    let mut docs = BTreeMap::new();
    docs.insert(
        PathBuf::from("docs/a.md"),
        "# Title\n\n## Same `code` here, too!\n\n## Same code here too\n\n\
         [ok](#title) [ok](#same-code-here-too) [ok](#same-code-here-too-1) [ok](b.md#part-two)\n\
         [ok](../Cargo.toml) [ok](../deploy/) [ok](https://example.com/#nothing)\n\
         [gone](#nowhere) [gone](missing.md) [gone](b.md#part-three) [gone](../../outside.md)\n\
         [gone](../Cargo.toml#anchor)\n\n\
         `[code](#not-a-link)`\n\n```md\n[code](#not-a-link-either)\n# Not a heading\n```\n\n\
         [ref]: b.md#nope\n"
            .to_owned(),
    );
    docs.insert(
        PathBuf::from("docs/b.md"),
        "# B\n\n## Part two\n\n[back](a.md#not-a-heading)\n".to_owned(),
    );
    let report = check_links(&repo, &docs);
    let broken: Vec<&str> = report
        .broken
        .iter()
        .map(|b| b.rsplit_once(": ").unwrap().1)
        .collect();
    assert_eq!(
        broken,
        [
            "#nowhere",
            "missing.md",
            "b.md#part-three",
            "../../outside.md",
            "../Cargo.toml#anchor",
            "b.md#nope",
            "a.md#not-a-heading",
        ],
        "{:#?}",
        report.broken
    );
}

/// Every runbook link (the alerts' `runbook_url`, in the rules, the PrometheusRule and the
/// expected alerts of the promtool tests; the dashboards' links titled "Runbook...") is the
/// default base, `#`, and the anchor of a heading of docs/runbook.md; every alert has one, to its
/// own section; and scripts/gen-runbook-links.sh finds nothing to change.
#[test]
fn runbook_links_lead_to_sections_of_the_runbook() {
    let repo = common::repo();
    let base = default_runbook_base();
    let slugs = heading_slugs(&doc("docs/runbook.md"));
    assert!(slugs.contains("infraauditaccesskeytooold"), "{slugs:?}");
    let mut checked = 0;
    for file in runbook_link_files(&repo) {
        let links = runbook_links(&repo, &file);
        let optional = file.starts_with("alerts/tests/");
        assert!(optional || !links.is_empty(), "{file}: no runbook links");
        for link in links {
            let anchor = link
                .url
                .strip_prefix(&format!("{base}#"))
                .unwrap_or_else(|| panic!("{file}: {} does not start with {base}#", link.url));
            assert!(
                slugs.contains(anchor),
                "{file}: {}: docs/runbook.md has no heading with the anchor #{anchor}",
                link.url
            );
            // A panel link's title names the section it leads to.
            if let Some(section) = link
                .title
                .as_deref()
                .and_then(|t| t.strip_prefix("Runbook: "))
            {
                assert_eq!(
                    heading_slugs(&format!("## {section}")),
                    BTreeSet::from([anchor.to_owned()]),
                    "{file}: the link titled {:?} leads to #{anchor}",
                    link.title
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 150, "only {checked} runbook links checked");

    for file in [
        "alerts/infraaudit.rules.yml",
        "deploy/kubernetes/base/prometheusrule.yaml",
    ] {
        let rules = alert_rules(&yaml(&repo, file));
        assert!(rules.len() >= 31, "{file}: {} alerts", rules.len());
        for (alert, runbook_url) in rules {
            let runbook_url =
                runbook_url.unwrap_or_else(|| panic!("{file}: {alert} has no runbook_url"));
            let want = format!("{base}#{}", alert.to_lowercase());
            assert_eq!(runbook_url, want, "{file}: {alert}'s runbook_url");
        }
    }

    let out = Command::new(repo.join("scripts/gen-runbook-links.sh"))
        .arg("--check")
        .output()
        .expect("cannot run scripts/gen-runbook-links.sh");
    assert!(
        out.status.success(),
        "scripts/gen-runbook-links.sh --check:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// scripts/gen-runbook-links.sh, on a copy of the files it reads and writes: `--base` moves every
/// runbook link to that base and keeps its section, `--check` then fails, and a run without
/// `--base` gives back the shipped files byte for byte.
#[test]
fn runbook_links_move_to_another_base_and_back() {
    let repo = common::repo();
    let copy = common::scratch_dir("runbook-links");
    let files = runbook_link_files(&repo);
    let scripts = [
        "Cargo.toml",
        "scripts/gen-runbook-links.sh",
        "scripts/gen-prometheusrule.sh",
    ];
    for rel in files.iter().map(String::as_str).chain(scripts) {
        std::fs::create_dir_all(copy.join(rel).parent().unwrap()).unwrap();
        // Keeps the scripts' mode: they run from the copy.
        std::fs::copy(repo.join(rel), copy.join(rel)).unwrap();
    }
    let run = |args: &[&str]| {
        let out = Command::new(copy.join("scripts/gen-runbook-links.sh"))
            .args(args)
            .output()
            .expect("cannot run scripts/gen-runbook-links.sh");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), report)
    };

    let elsewhere = "https://wiki.example.com/infraaudit/runbook";
    let (code, report) = run(&["--base", elsewhere]);
    assert_eq!(code, Some(0), "--base {elsewhere}:\n{report}");
    let default = format!("{}#", default_runbook_base());
    for file in &files {
        let before = runbook_links(&repo, file);
        let after = runbook_links(&copy, file);
        assert_eq!(
            before.len(),
            after.len(),
            "{file}: runbook links before and after"
        );
        for (b, a) in before.iter().zip(&after) {
            let want = b.url.replacen(&default, &format!("{elsewhere}#"), 1);
            assert_eq!(a.url, want, "{file}: {:?}", a.title);
        }
    }
    let (code, report) = run(&["--check"]);
    assert_eq!(code, Some(1), "--check after --base:\n{report}");
    assert!(
        report.contains("alerts/infraaudit.rules.yml") && report.contains("dashboards/"),
        "--check after --base:\n{report}"
    );

    let (code, report) = run(&[]);
    assert_eq!(code, Some(0), "without --base:\n{report}");
    for file in &files {
        assert!(
            common::read(&repo.join(file)) == common::read(&copy.join(file)),
            "{file}: differs from the shipped file after --base and back (see {})",
            copy.display()
        );
    }
    std::fs::remove_dir_all(&copy).unwrap();
}

/// Each dashboard links the runbook and the exporter's HTML overview (its address in the textbox
/// variable `overview_url`), every panel but the rows links its runbook sections, panel ids are
/// unique, and the posture dashboard lists the firing and pending infraaudit alerts.
#[test]
fn dashboards_link_the_runbook_and_the_overview() {
    let repo = common::repo();
    let base = default_runbook_base();
    let mut alert_lists = 0;
    for file in dashboard_files(&repo) {
        let dashboard: Value = serde_json::from_str(&doc(&file)).unwrap();
        let links = dashboard["links"].as_array().unwrap();
        let link = |title: &str| {
            links
                .iter()
                .find(|l| l["title"] == title)
                .unwrap_or_else(|| panic!("{file}: no dashboard link {title:?}: {links:#?}"))
        };
        let runbook = link("Runbook");
        assert!(
            runbook["url"].as_str().unwrap().starts_with(&base),
            "{file}: {runbook}"
        );
        let overview = link("Exporter overview");
        assert_eq!(overview["url"], "${overview_url}", "{file}");
        // Time range and variables appended to the exporter's URL would be nonsense.
        assert_eq!(overview["includeVars"], false, "{file}");
        assert_eq!(overview["keepTime"], false, "{file}");
        let variable = dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "overview_url")
            .unwrap_or_else(|| panic!("{file}: no variable overview_url"));
        assert_eq!(variable["type"], "textbox", "{file}");
        assert_eq!(variable["query"], "http://localhost:10025/", "{file}");
        assert_eq!(variable["current"]["value"], variable["query"], "{file}");

        let mut panels = Vec::new();
        flat_panels(&dashboard["panels"], &mut panels);
        assert!(panels.len() >= 8, "{file}: {} panels", panels.len());
        let mut ids = BTreeSet::new();
        for panel in panels {
            let title = panel["title"].as_str().unwrap();
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{file}: panel id {} twice",
                panel["id"]
            );
            if panel["type"] == "row" {
                continue;
            }
            let runbook_links = panel["links"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| {
                    l["title"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("Runbook: "))
                })
                .count();
            assert!(
                runbook_links > 0,
                "{file}: panel {title:?} has no runbook link"
            );
            if panel["type"] == "alertlist" {
                alert_lists += 1;
                let options = &panel["options"];
                assert_eq!(options["alertName"], "InfraAudit", "{file}: {title}");
                let states = &options["stateFilter"];
                // Rules that cannot be evaluated show too: unknown must not read as quiet.
                assert_eq!(
                    (&states["firing"], &states["pending"], &states["normal"]),
                    (&Value::Bool(true), &Value::Bool(true), &Value::Bool(false)),
                    "{file}: {title}: {states}"
                );
                assert_eq!(
                    (&states["error"], &states["noData"]),
                    (&Value::Bool(true), &Value::Bool(true)),
                    "{file}: {title}: {states}"
                );
            }
        }
    }
    assert_eq!(alert_lists, 1, "one alert list, on the posture dashboard");
}

/// docs/runbook.md on GitHub, from Cargo.toml's `repository`, as scripts/gen-runbook-links.sh
/// derives it.
fn default_runbook_base() -> String {
    let repository = env!("CARGO_PKG_REPOSITORY");
    assert!(
        repository.starts_with("https://"),
        "Cargo.toml's [package] repository is {repository:?}"
    );
    format!("{repository}/blob/main/docs/runbook.md")
}

fn dashboard_files(repo: &Path) -> Vec<String> {
    let files = files_in(repo, "dashboards", "json");
    assert!(files.len() >= 3, "{files:?}");
    files
}

/// The files with runbook links, relative to `repo`.
fn runbook_link_files(repo: &Path) -> Vec<String> {
    let mut files = vec![
        "alerts/infraaudit.rules.yml".to_owned(),
        "deploy/kubernetes/base/prometheusrule.yaml".to_owned(),
    ];
    files.extend(files_in(repo, "alerts/tests", "yaml"));
    files.extend(dashboard_files(repo));
    files
}

/// The `*.ext` files of `dir`, relative to `repo`, sorted.
fn files_in(repo: &Path, dir: &str, ext: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo.join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(&format!(".{ext}")))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.{ext} in {dir}");
    files
}

fn yaml(root: &Path, rel: &str) -> Value {
    let text = common::read(&root.join(rel));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[derive(Debug)]
struct RunbookLink {
    /// The link's title, on a dashboard.
    title: Option<String>,
    url: String,
}

/// The runbook links of `rel` under `root`, in file order: every `runbook_url` of a YAML file, and
/// the url of every object of a dashboard whose title starts with "Runbook". Fails on a
/// `runbook_url:` line that the parse did not find, and on a dashboard url that mentions a runbook
/// in an object with another title: scripts/gen-runbook-links.sh would miss both.
fn runbook_links(root: &Path, rel: &str) -> Vec<RunbookLink> {
    fn walk(v: &Value, json: bool, out: &mut Vec<RunbookLink>, rel: &str) {
        match v {
            Value::Object(map) => {
                if json && let Some(url) = map.get("url").and_then(Value::as_str) {
                    let title = map.get("title").and_then(Value::as_str).unwrap_or_default();
                    if title.starts_with("Runbook") {
                        out.push(RunbookLink {
                            title: Some(title.to_owned()),
                            url: url.to_owned(),
                        });
                    } else {
                        assert!(
                            !url.to_lowercase().contains("runbook"),
                            "{rel}: a runbook link titled {title:?} (not \"Runbook...\"): {url}"
                        );
                    }
                }
                for (key, value) in map {
                    if !json && key == "runbook_url" {
                        let url = value.as_str();
                        let url = url.unwrap_or_else(|| panic!("{rel}: runbook_url {value}"));
                        out.push(RunbookLink {
                            title: None,
                            url: url.to_owned(),
                        });
                    }
                    walk(value, json, out, rel);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, json, out, rel)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if rel.ends_with(".json") {
        let text = common::read(&root.join(rel));
        let dashboard: Value = serde_json::from_str(&text).unwrap();
        walk(&dashboard, true, &mut out, rel);
    } else {
        walk(&yaml(root, rel), false, &mut out, rel);
        let lines = common::read(&root.join(rel))
            .lines()
            .filter(|l| l.trim_start().starts_with("runbook_url:"))
            .count();
        assert_eq!(
            lines,
            out.len(),
            "{rel}: runbook_url lines and parsed values"
        );
    }
    out
}

/// (alert, its runbook_url) of every alerting rule of a rules file or PrometheusRule.
fn alert_rules(file: &Value) -> Vec<(String, Option<String>)> {
    let groups = file
        .get("spec")
        .unwrap_or(file)
        .get("groups")
        .and_then(Value::as_array)
        .expect("no groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|rule| {
            let alert = rule["alert"].as_str()?;
            let url = rule["annotations"]["runbook_url"].as_str();
            Some((alert.to_owned(), url.map(str::to_owned)))
        })
        .collect()
}

/// Every panel of a dashboard, rows' nested panels included.
fn flat_panels<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for p in panels.as_array().into_iter().flatten() {
        out.push(p);
        flat_panels(&p["panels"], out);
    }
}

/// The Markdown files of the repository, relative to it, outside hidden directories (`.git`,
/// the virtualenvs), build output and the fuzzer's uncommitted work.
fn markdown_files(repo: &Path) -> Vec<PathBuf> {
    const SKIP: [&str; 5] = [
        "target",
        "tmp",
        "fuzz/work",
        "fuzz/artifacts",
        "fuzz/target",
    ];
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(repo.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = rel.join(&name);
            if entry.file_type().unwrap().is_dir() {
                if !name.starts_with('.') && !SKIP.iter().any(|s| path == Path::new(s)) {
                    stack.push(path);
                }
            } else if name.ends_with(".md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

struct LinkReport {
    /// `file:line: target` of each link that does not resolve.
    broken: Vec<String>,
    files_linked: usize,
    anchors_checked: usize,
}

/// Checks every link of `docs` (Markdown text by path relative to `repo`). A link to a Markdown
/// file is looked up in `docs`, any other file or directory on disk; external links are skipped.
fn check_links(repo: &Path, docs: &BTreeMap<PathBuf, String>) -> LinkReport {
    let anchors: BTreeMap<&Path, BTreeSet<String>> = docs
        .iter()
        .map(|(path, text)| (path.as_path(), heading_slugs(text)))
        .collect();
    let mut report = LinkReport {
        broken: Vec::new(),
        files_linked: 0,
        anchors_checked: 0,
    };
    for (path, text) in docs {
        for (line, target) in links(text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let resolved = if file.is_empty() {
                Some(path.clone())
            } else {
                report.files_linked += 1;
                let base = match file.strip_prefix('/') {
                    Some(from_root) => PathBuf::from(from_root),
                    None => path.parent().unwrap().join(file),
                };
                normalize(&base)
                    .filter(|p| docs.contains_key(p) || (!is_markdown(p) && repo.join(p).exists()))
            };
            let ok = match (resolved, fragment) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(target_file), Some(fragment)) => {
                    report.anchors_checked += 1;
                    anchors
                        .get(target_file.as_path())
                        .is_some_and(|slugs| slugs.contains(fragment))
                }
            };
            if !ok {
                report
                    .broken
                    .push(format!("{}:{line}: {target}", path.display()));
            }
        }
    }
    report
}

fn is_markdown(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "md")
}

/// `a/b/../c` as `a/c`, or None when the path leaves the repository.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The lines of `text` outside fenced code blocks, numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// The anchors GitHub gives the headings of `text`: the heading's text without Markdown
/// (code backticks, link targets), lowercased, with every character but letters, digits,
/// spaces, `-` and `_` dropped and spaces made `-`; a repeated slug gets `-1`, `-2`, ...
fn heading_slugs(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.len() - line.trim_start_matches('#').len();
        let Some(title) = line[hashes..].strip_prefix(' ') else {
            continue;
        };
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let title = strip_link_targets(title.trim().trim_end_matches('#').trim_end());
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 { slug } else { format!("{slug}-{n}") });
        *n += 1;
    }
    out
}

/// `[text](target)` as `text`.
fn strip_link_targets(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("](") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        rest = after.find(')').map_or("", |j| &after[j + 1..]);
    }
    out.push_str(rest);
    out.replace('[', "")
}

/// `(line, target)` of every inline link (`[text](target)`, images too) and link reference
/// definition (`[label]: target`) outside code blocks and code spans.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    // Code spans may run across lines, not across paragraphs: strip them paragraph by paragraph.
    let mut paragraph: Vec<(usize, &str)> = Vec::new();
    let lines = prose_lines(text);
    for (k, &(n, line)) in lines.iter().enumerate() {
        if !line.trim().is_empty() {
            paragraph.push((n, line));
        }
        let paragraph_ends = lines
            .get(k + 1)
            .is_none_or(|&(m, l)| m != n + 1 || l.trim().is_empty());
        if !paragraph.is_empty() && paragraph_ends {
            links_of_paragraph(&paragraph, &mut out);
            paragraph.clear();
        }
    }
    out
}

fn links_of_paragraph(lines: &[(usize, &str)], out: &mut Vec<(usize, String)>) {
    let first = lines[0].0;
    let joined = lines.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("\n");
    let prose = strip_code_spans(&joined);
    for (i, line) in prose.lines().enumerate() {
        let n = first + i;
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('[')
            && let Some((label, def)) = rest.split_once("]:")
            && !label.contains(']')
            && let Some(target) = def.split_whitespace().next()
        {
            out.push((n, target.trim_matches(['<', '>']).to_owned()));
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = rest[i + 2..].trim_start_matches('<');
            let mut depth = 0;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' if depth == 0 => return true,
                        ')' => depth -= 1,
                        c if c.is_whitespace() || c == '>' => return true,
                        _ => {}
                    }
                    false
                })
                .map_or(after.len(), |(j, _)| j);
            out.push((n, after[..end].to_owned()));
            rest = &after[end..];
        }
    }
}

/// `text` with its code spans (`` `x` ``, ``` ``x`` ```) removed.
fn strip_code_spans(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let run = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let fence = &rest[start..start + run];
        let body = &rest[start + run..];
        // The span ends at the next run of exactly as many backticks.
        let mut close = None;
        let mut from = 0;
        while let Some(j) = body[from..].find(fence) {
            let at = from + j;
            let len = body[at..].len() - body[at..].trim_start_matches('`').len();
            if len == run {
                close = Some(at);
                break;
            }
            from = at + len;
        }
        match close {
            // Keep the line breaks, so that line numbers stay right.
            Some(at) => {
                out.extend(body[..at].chars().filter(|&c| c == '\n'));
                rest = &body[at + run..];
            }
            None => {
                out.push_str(fence);
                rest = body;
            }
        }
    }
    out.push_str(rest);
    out
}
