#!/usr/bin/env bash
# `make bench-fleet`: fleet refresh (issue 7, point 5). Seeds moto (bench/fleet_seed.py) with
# 100 accounts x 200 IAM users x 20 buckets x 20 instances in 2 regions, then for each
# aws.max_concurrency in BENCH_FLEET_CONCURRENCY starts the release binary with all 100 accounts
# (AssumeRole with an external ID into each) and measures the time until every (account,
# collector) has succeeded once: the first complete snapshot. Also per-collector run durations,
# AWS requests by operation (the exporter's own counters), the exporter's CPU time and peak RSS,
# and the emulator's CPU time over the same interval. Prints a Markdown table.
#
# Knobs (environment): BENCH_FLEET_ACCOUNTS (100), BENCH_FLEET_USERS (200), BENCH_FLEET_BUCKETS
# (20), BENCH_FLEET_INSTANCES (20), BENCH_FLEET_CONCURRENCY ("2 5 10 20"), BENCH_FLEET_TOTAL
# (aws.max_concurrency_total values to run each setting with, e.g. "0 100"; unset: the default),
# BENCH_FLEET_TIMEOUT (seconds per run, 300), BENCH_FLEET_BIN (an infraaudit binary to use
# instead of building one).
set -euo pipefail
cd "$(dirname "$0")/.."

accounts=${BENCH_FLEET_ACCOUNTS:-100}
users=${BENCH_FLEET_USERS:-200}
buckets=${BENCH_FLEET_BUCKETS:-20}
instances=${BENCH_FLEET_INSTANCES:-20}
settings=${BENCH_FLEET_CONCURRENCY:-2 5 10 20}
totals=${BENCH_FLEET_TOTAL:-default}
run_timeout=${BENCH_FLEET_TIMEOUT:-300}
python=.venv/bin/python

command -v curl >/dev/null || { echo "bench-fleet: curl is missing (apt-get install curl)" >&2; exit 1; }
# The emulator's venv, as the tests use it (idempotent).
[ -x "$python" ] && "$python" -c "import moto, boto3" 2>/dev/null || scripts/test-deps.sh

if [ -n "${BENCH_FLEET_BIN:-}" ]; then
  bin=$BENCH_FLEET_BIN
else
  cargo build --release --locked
  bin=target/release/infraaudit
fi

work=$(mktemp -d -t infraaudit-fleet.XXXXXX)
epid=""
pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for p in $pid $epid; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  exec 3>&- 2>/dev/null || true
  # A failed run keeps the exporters' logs and scrapes for a look.
  if [ "$status" -ne 0 ]; then echo "bench-fleet: output kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
fail() {
  echo "bench-fleet: FAILED: $*" >&2
  exit 1
}

ticks=$(getconf CLK_TCK)
cpu_s() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$ticks" '{ printf "%.1f", ($12 + $13) / hz }'; }
machine_s() { awk -v hz="$ticks" '$1 == "cpu" { printf "%.1f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }
now_s() { date +%s.%N; }

# The emulator serves until its stdin (a FIFO held open by fd 3) closes.
mkfifo "$work/stdin"
"$python" bench/fleet_seed.py --accounts "$accounts" --users "$users" \
  --buckets "$buckets" --instances "$instances" \
  <"$work/stdin" >"$work/emulator.out" 2>"$work/emulator.err" &
epid=$!
exec 3>"$work/stdin"
echo "bench-fleet: seeding $accounts accounts x $users users ..." >&2
for _ in $(seq 1 1200); do
  [ -s "$work/emulator.out" ] && break
  kill -0 "$epid" 2>/dev/null || { cat "$work/emulator.err" >&2; fail "the emulator exited"; }
  sleep 0.5
done
[ -s "$work/emulator.out" ] || fail "the emulator did not finish seeding within 10 minutes"
ready_line=$(head -n1 "$work/emulator.out")
endpoint=$("$python" -c 'import json,sys; print(json.loads(sys.argv[1])["endpoint"])' "$ready_line")
seed_s=$("$python" -c 'import json,sys; print(json.loads(sys.argv[1])["seed_seconds"])' "$ready_line")
echo "bench-fleet: seeded in ${seed_s}s at $endpoint" >&2

config() { # $1: max_concurrency, $2: listen address, $3: max_concurrency_total or "default"
  local total=""
  [ "$3" = default ] || total="max_concurrency_total = $3"
  cat <<EOF
[server]
listen_address = "$2"

[aws]
endpoint_url = "$endpoint"
max_concurrency = $1
$total
regions = ["us-east-1", "eu-west-1"]

# One run each: the benchmark measures the first complete snapshot.
[collectors.iam]
interval = "1h"
[collectors.s3]
interval = "1h"
[collectors.ec2]
interval = "1h"
EOF
  "$python" - "$ready_line" <<'EOF'
import json, sys
seeded = json.loads(sys.argv[1])
for a in seeded["accounts"]:
    print(f'\n[[accounts]]\nid = "{a}"\nrole_arn = "arn:aws:iam::{a}:role/InfraAuditRole"')
    print(f'external_id = "{seeded["external_id"]}"')
EOF
}

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# One run of the exporter; appends a JSON line of figures to $work/results.
run() { # $1: label, $2: max_concurrency, $3: max_concurrency_total or "default"
  local port listen url start ecpu0 mcpu0 done_at ecpu1 mcpu1 cpu hwm
  port=$(free_port)
  listen="127.0.0.1:$port"
  url="http://$listen"
  config "$2" "$listen" "$3" >"$work/config-$1.toml"
  ecpu0=$(cpu_s "$epid")
  mcpu0=$(machine_s)
  start=$(now_s)
  env -i PATH="$PATH" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_EC2_METADATA_DISABLED=true INFRAAUDIT_LOG=warn \
    "$bin" --config "$work/config-$1.toml" >"$work/exporter-$1.log" 2>&1 &
  pid=$!
  done_at=""
  local deadline=$((SECONDS + run_timeout))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$work/exporter-$1.log" >&2; fail "infraaudit exited"; }
    if curl -fsS -o /dev/null "$url/-/ready" 2>/dev/null; then
      done_at=$(now_s)
      break
    fi
    sleep 0.2
  done
  [ -n "$done_at" ] || fail "$1: not ready within ${run_timeout}s"
  ecpu1=$(cpu_s "$epid")
  mcpu1=$(machine_s)
  cpu=$(cpu_s "$pid")
  hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status")
  curl -fsS "$url/metrics" >"$work/metrics-$1.txt"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  "$python" - "$1" "$2" "$start" "$done_at" "$ecpu0" "$ecpu1" "$mcpu0" "$mcpu1" "$cpu" "$hwm" \
    "$work/metrics-$1.txt" "$accounts" "$3" >>"$work/results" <<'EOF'
import json, re, statistics, sys
label, conc, start, done, e0, e1, m0, m1, cpu, hwm, path, accounts, total = sys.argv[1:]
wall = float(done) - float(start)
line = re.compile(r'^infraaudit_(\w+)\{([^}]*)\} (\S+)$')
success, durations, requests, errors, waited = {}, {}, {}, 0, 0.0
for text in open(path):
    m = line.match(text.strip())
    if not m:
        continue
    name, labels, value = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))), float(m.group(3))
    if name == "collector_success":
        success[(labels["account_id"], labels["collector"])] = value
    elif name == "collector_duration_seconds":
        durations.setdefault(labels["collector"], []).append(value)
    elif name == "aws_api_requests_total":
        key = f'{labels["service"]}:{labels["operation"]}'
        requests[key] = requests.get(key, 0) + value
    elif name == "aws_api_errors_total":
        errors += value
    elif name == "aws_concurrency_wait_seconds_total":
        waited += value
failed = [k for k, v in success.items() if v != 1]
if len(success) != 3 * int(accounts) or failed:
    sys.exit(f"{label}: {len(success)} (account, collector) pairs, failed: {failed[:5]}")
# One AssumeRole per account per run: more means the credentials cache does not hold the fleet.
assumed = requests.get("sts:AssumeRole", 0)
if assumed > int(accounts):
    sys.exit(f"{label}: {assumed:.0f} AssumeRole calls for {accounts} accounts")
print(json.dumps({
    "label": label, "max_concurrency": int(conc), "total": total, "seconds": round(wall, 1),
    "waited_s": waited,
    "durations": {c: {"median": statistics.median(d), "max": max(d)} for c, d in durations.items()},
    "requests": requests, "errors": errors,
    "cpu_s": float(cpu), "peak_rss_mib": int(hwm) / 1024,
    "emulator_cpu_s": float(e1) - float(e0), "machine_cpu_s": float(m1) - float(m0),
}))
EOF
  echo "bench-fleet: $1 done in $(awk -v a="$start" -v b="$done_at" 'BEGIN { printf "%.1f", b - a }')s" >&2
}

# A first run pays for moto's credential report generation and lazy state; not in the table.
run warmup 5 default
for t in $totals; do
  for c in $settings; do
    run "c$c-t$t" "$c" "$t"
  done
done

"$python" - "$work/results" "$seed_s" "$accounts" "$users" "$buckets" "$instances" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
seed, accounts, users, buckets, instances = sys.argv[2:]
print(f"\nSeeded {accounts} accounts x {users} users x {buckets} buckets x {instances} instances in {seed} s.\n")
print("| max_concurrency | max_concurrency_total | complete snapshot | iam run median / max | s3 run median / max | ec2 run median / max | AWS requests | slot wait | exporter CPU | peak RSS (per account) | emulator CPU (share of wall) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    d = r["durations"]
    cell = lambda c: f'{d[c]["median"]:.1f} / {d[c]["max"]:.1f} s'
    total = sum(r["requests"].values())
    share = r["emulator_cpu_s"] / r["seconds"]
    name = r["label"] if r["label"] == "warmup" else str(r["max_concurrency"])
    if r["label"] == "warmup":
        name = f'{r["max_concurrency"]} (warm-up)'
    limit = {"default": "100 (default)", "0": "none"}.get(r["total"], r["total"])
    per_account = r["peak_rss_mib"] / int(accounts)
    print(f'| {name} | {limit} | **{r["seconds"]:.1f} s** | {cell("iam")} | {cell("s3")} | {cell("ec2")} | {total:.0f} ({r["errors"]:.0f} errors) | {r["waited_s"]:.0f} s | {r["cpu_s"]:.1f} s | {r["peak_rss_mib"]:.0f} MiB ({per_account:.2f}) | {r["emulator_cpu_s"]:.1f} s ({share:.0%}) |')
last = rows[-1]
print(f'\nAWS requests by operation (run with max_concurrency {last["max_concurrency"]}, all accounts):\n')
print("| operation | requests | per account |")
print("|---|---|---|")
for op, n in sorted(last["requests"].items(), key=lambda kv: -kv[1]):
    print(f"| {op} | {n:.0f} | {n / int(accounts):.1f} |")
EOF
