#!/usr/bin/env bash
# `make demo`: the whole stack on loopback, without an AWS account. The moto emulator with the demo
# scenario (three accounts, old keys, a root key, public buckets, IMDSv1 instances), the exporter,
# Prometheus with the shipped rules and Alertmanager; it prints the URLs and runs until Ctrl-C,
# then stops everything and removes its temporary directory.
#
# The shipped alerts wait an hour or so (`for`) before firing; the demo cuts every `for` to 10s so
# that alerts show within a minute. The expressions are the shipped ones.
# Ports (loopback only) can be changed: DEMO_EXPORTER_PORT, DEMO_PROMETHEUS_PORT, DEMO_ALERTMANAGER_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

exporter_port=${DEMO_EXPORTER_PORT:-19025}
prometheus_port=${DEMO_PROMETHEUS_PORT:-19090}
alertmanager_port=${DEMO_ALERTMANAGER_PORT:-19093}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh  # the script runs from the repository root

# Only what the demo runs: the emulator's venv, Prometheus, Alertmanager and curl (not the test
# suite's browser, validators and cargo-deny, which `make test` installs).
echo "demo: [1/3] prerequisites (emulator venv, Prometheus, Alertmanager)" >&2
make_venv .venv tests/emulator/requirements.txt
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v curl >/dev/null || missing+=(curl)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
echo "demo: [2/3] building infraaudit (the first build takes about 6 minutes on 2 CPUs)" >&2
cargo build --locked
echo "demo: [3/3] starting the emulator, the exporter, Prometheus and Alertmanager" >&2

work=$(mktemp -d -t infraaudit-demo.XXXXXX)
pids=()
failed=""
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "demo: stopping" >&2
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Logs stay when something went wrong.
  if [ -n "$failed" ]; then echo "demo: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

fail() { # fail MESSAGE LOG: says what failed, with the end of its log
  failed=1
  echo "demo: $1" >&2
  [ -f "$2" ] && tail -n 20 "$2" >&2
  exit 1
}

fill() { # fill FILE -> stdout, with the placeholders replaced
  sed -e "s|@ENDPOINT@|${endpoint:-}|g" -e "s|@LISTEN@|127.0.0.1:$exporter_port|g" \
      -e "s|@INTERVAL@|5s|g" -e "s|@RULES@|$work/infraaudit.rules.yml|g" \
      -e "s|@ALERTMANAGER@|127.0.0.1:$alertmanager_port|g" \
      -e "s|@EXPORTER@|127.0.0.1:$exporter_port|g" "$1"
}

wait_for() { # wait_for URL WHAT PID LOG: until URL answers, or the process has died
  for _ in $(seq 1 300); do
    kill -0 "$3" 2>/dev/null || fail "$2 exited (is a port taken? see DEMO_*_PORT)" "$4"
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  fail "$2 did not come up within a minute" "$4"
}

# The emulator runs while its stdin is open: a pipe from a process we kill at the end.
tail -f /dev/null | .venv/bin/python tests/emulator/moto_emulator.py --demo >"$work/emulator.json" 2>"$work/emulator.log" &
pids+=($!)
for _ in $(seq 1 300); do [ -s "$work/emulator.json" ] && break; sleep 0.2; done
[ -s "$work/emulator.json" ] || fail "the emulator did not start" "$work/emulator.log"
endpoint=$(.venv/bin/python -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["endpoint"])' "$work/emulator.json")

fill demo/infraaudit.toml >"$work/infraaudit.toml"
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true \
  target/debug/infraaudit --config "$work/infraaudit.toml" 2>"$work/infraaudit.log" &
pids+=($!)
wait_for "http://127.0.0.1:$exporter_port/-/ready" "the exporter" $! "$work/infraaudit.log"

sed -E 's/^([[:space:]]*)for: .*/\1for: 10s/' alerts/infraaudit.rules.yml >"$work/infraaudit.rules.yml"
fill demo/alertmanager.yml >"$work/alertmanager.yml"
prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/am" \
  --web.listen-address="127.0.0.1:$alertmanager_port" --cluster.listen-address= 2>"$work/alertmanager.log" &
pids+=($!)
am_pid=$!
fill demo/prometheus.yml >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
  --web.listen-address="127.0.0.1:$prometheus_port" 2>"$work/prometheus.log" &
pids+=($!)
wait_for "http://127.0.0.1:$alertmanager_port/-/ready" "Alertmanager" $am_pid "$work/alertmanager.log"
wait_for "http://127.0.0.1:$prometheus_port/-/ready" "Prometheus" $! "$work/prometheus.log"

cat <<MSG

infraaudit demo is running (logs in $work):
  overview      http://127.0.0.1:$exporter_port/   (every account's findings, as a page)
  exporter      http://127.0.0.1:$exporter_port/metrics
  Prometheus    http://127.0.0.1:$prometheus_port/alerts
  Alertmanager  http://127.0.0.1:$alertmanager_port/#/alerts   (alerts arrive within a minute)
Dashboards: import dashboards/*.json into a Grafana with http://127.0.0.1:$prometheus_port as its
Prometheus datasource (see dashboards/README.md). Ctrl-C stops everything.
MSG
# Until Ctrl-C, or until one of them dies.
wait -n "${pids[@]}" || true
fail "a component stopped; see the logs" "$work/infraaudit.log"
