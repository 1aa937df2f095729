#!/usr/bin/env bash
# Points every runbook link at one base URL: the `runbook_url` of the alerts in
# alerts/infraaudit.rules.yml and of the expected alerts in alerts/tests/*.yaml, and the links
# titled "Runbook..." of dashboards/*.json; then regenerates the PrometheusRule
# (scripts/gen-prometheusrule.sh). Only the part before `#` changes: each link keeps its section.
# The default base is docs/runbook.md on GitHub, from Cargo.toml's `repository`; operators who host
# the runbook elsewhere give theirs (`make runbook-links RUNBOOK_BASE=URL`). The shipped files use
# the default: tests/docs.rs fails while they do not.
#   scripts/gen-runbook-links.sh              rewrite the files with the default base
#   scripts/gen-runbook-links.sh --base URL   rewrite them with URL (the runbook's address, no `#`)
#   scripts/gen-runbook-links.sh --check      exit 1 (with the diff) unless all use the default
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: $0 [--base URL | --check]" >&2
  exit 2
}

# `repository` of the [package] table (other tables may have keys of the same name).
repository=$(awk '/^\[/ { pkg = ($0 == "[package]") }
  pkg && /^repository = "/ { split($0, q, "\""); print q[2] }' Cargo.toml)
if [[ -z $repository ]]; then
  echo "gen-runbook-links: Cargo.toml's [package] has no repository" >&2
  exit 1
fi
base="$repository/blob/main/docs/runbook.md"

check=false
case "${1:-}" in
  --check)
    [[ $# -eq 1 ]] || usage
    check=true
    ;;
  --base)
    [[ $# -eq 2 ]] || usage
    base=$2
    ;;
  "")
    ;;
  *)
    usage
    ;;
esac

# The base goes as it is into quoted YAML and JSON strings and into Grafana links, which
# interpolate `$variables`: an http(s) URL without a fragment, quotes, backslashes, `$` or braces.
url_re='^https?://[A-Za-z0-9._~:/?=&%+@!,;*()-]+$'
if [[ ! $base =~ $url_re ]]; then
  echo "gen-runbook-links: not an http(s) URL without #, quotes, \$ or braces: $base" >&2
  exit 2
fi

# The text of file $2 ($1: yaml or json) with the part before `#` of each runbook link replaced
# by the base.
rebase() {
  BASE=$base awk -v mode="$1" '
    BEGIN {
      # YAML: the value of a runbook_url key; JSON: the url of an object titled "Runbook..."
      # (Grafana writes title before url).
      key = (mode == "json") ? "\"url\": \"" : "^[[:space:]]*runbook_url:[[:space:]]*\"?"
    }
    function rebase(line,    at, rest, value, hash) {
      if (!match(line, key)) return line
      at = RSTART + RLENGTH
      rest = substr(line, at)
      value = rest
      sub(/["[:space:]].*/, "", value)
      hash = index(value, "#")
      if (hash == 0) return line
      return substr(line, 1, at - 1) ENVIRON["BASE"] substr(rest, hash)
    }
    mode == "yaml" { print rebase($0); next }
    /^[[:space:]]*[{}]/ { runbook = 0 }
    /^[[:space:]]*"title": "Runbook/ { runbook = 1 }
    runbook && /^[[:space:]]*"url": "/ { $0 = rebase($0) }
    { print }
  ' "$2"
}

files=(alerts/infraaudit.rules.yml alerts/tests/*.yaml dashboards/*.json)
stale=()
for f in "${files[@]}"; do
  mode=yaml
  [[ $f == *.json ]] && mode=json
  if $check; then
    if ! diff -u "$f" <(rebase "$mode" "$f") >&2; then
      stale+=("$f")
    fi
  else
    rebase "$mode" "$f" >"$f.tmp"
    if cmp -s "$f" "$f.tmp"; then
      rm "$f.tmp"
    else
      mv "$f.tmp" "$f"
    fi
  fi
done

if $check; then
  if ((${#stale[@]})); then
    echo "gen-runbook-links: links not at $base in ${stale[*]}: run scripts/gen-runbook-links.sh" >&2
    exit 1
  fi
  scripts/gen-prometheusrule.sh --check
else
  scripts/gen-prometheusrule.sh
  echo "runbook links now point at $base#<section>" >&2
fi
