//! The documentation stays in step with the code and with itself: the IAM policies in
//! docs/aws-setup.md are exactly what the collectors and discovery declare, the metrics reference
//! in docs/metrics.md lists exactly the families the exporter writes, the README's example series
//! are lines of the golden file, CONTRIBUTING.md names every test file, every relative link and
//! `#anchor` of the repository's Markdown files resolves (GitHub's heading slugs), and the README
//! stays a front door of at most 15 KB.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

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
