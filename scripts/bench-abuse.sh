#!/usr/bin/env bash
# `make bench-abuse`: /metrics while strangers misbehave (issue 13). Serves ~100,000 series through
# the real store, exporter and HTTP server (examples/metrics_load.rs), and on loopback opens 2,000
# connections that send nothing and 1,000 that send a request head one byte every 3 s (both
# reconnect as soon as the server closes them), while one scraper GETs /metrics on a new
# connection every second for 30 s (scripts/bench_abuse.py). Fails (exit 1) on any failed scrape
# (an error, a non-200 or no whole answer within 10 s, Prometheus' default scrape_timeout), on a
# p99 of 1 s or more, or on a peak RSS above BENCH_ABUSE_MAX_RSS_MB. Prints a Markdown summary.
#
# Knobs (environment): BENCH_ABUSE_DURATION (30), BENCH_ABUSE_IDLE (2000), BENCH_ABUSE_SLOW (1000),
# BENCH_ABUSE_MAX_CONNECTIONS (unset: the default server.max_connections), BENCH_ABUSE_MAX_RSS_MB
# (256), BENCH_ABUSE_BIN (a metrics_load binary to use instead of building one, e.g. an older
# commit's, for a before/after).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${BENCH_ABUSE_DURATION:-30}
idle=${BENCH_ABUSE_IDLE:-2000}
slow=${BENCH_ABUSE_SLOW:-1000}
max_rss_mb=${BENCH_ABUSE_MAX_RSS_MB:-256}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
command -v python3 >/dev/null || apt_install python3

if [ -n "${BENCH_ABUSE_BIN:-}" ]; then
  bin=$BENCH_ABUSE_BIN
else
  cargo build --release --locked --example metrics_load
  bin=target/release/examples/metrics_load
fi

bench_workdir bench-abuse

# The server's own file descriptor limit is what it raises at start (soft to hard); the client
# raises its own. No in-process encoder timings (--measure 0): they are bench-load's.
"$bin" --measure 0 --max-runtime 10m \
  ${BENCH_ABUSE_MAX_CONNECTIONS:+--max-connections "$BENCH_ABUSE_MAX_CONNECTIONS"} \
  >"$work/server.out" 2>"$work/server.err" &
pid=$!
addr=""
for _ in $(seq 1 600); do
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.err" >&2; fail "metrics_load exited"; }
  addr=$(sed -n 's/^listening //p' "$work/server.out")
  [ -n "$addr" ] && break
  sleep 0.2
done
[ -n "$addr" ] || fail "metrics_load did not listen within 2 minutes"
series=$(sed -n 's/^series //p' "$work/server.out")

echo "bench-abuse: $idle idle + $slow slow strangers and one scraper for ${duration} s on $addr" >&2
python3 scripts/bench_abuse.py --port "${addr##*:}" --idle "$idle" --slow "$slow" \
  --duration "$duration" --pid "$pid" | tee "$work/client.out" >&2
kill -0 "$pid" 2>/dev/null || fail "metrics_load died during the run"

get() { awk -v k="$1" '$1 == k { print $2 }' "$work/client.out"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.0f", s * 1000 }'; }
scrapes=$(get scrapes) failed_n=$(get failed) p50=$(get p50_s) p99=$(get p99_s) max=$(get max_s)
peak_mb=$(mb "$(get peak_rss_kb)") before_mb=$(mb "$(get rss_before_kb)")
failures=$(awk '$1 == "failure" { $1 = ""; printf "%s;", $0 }' "$work/client.out")
cap=$(grep -o 'using=[0-9]*' "$work/server.err" | head -1 || true)

cat <<EOM

## /metrics while strangers misbehave ($(date -u +%Y-%m-%d), ${duration} s, $(nproc) shared CPUs)
Snapshot: $series series. Strangers: $idle idle and $slow slow (a header byte every 3 s), reconnecting
when closed; $(get strangers_connected) were connected before the first scrape, at most $(get peak_open_strangers) at once.
Server: max_connections ${BENCH_ABUSE_MAX_CONNECTIONS:-default}${cap:+ ($cap after the file descriptor limit)}.

| scrapes | failed | p50 | p99 | max | RSS before (MiB) | peak RSS (MiB) | idle reconnects | slow reconnects | connect errors |
|---|---|---|---|---|---|---|---|---|---|
| $scrapes | $failed_n${failures:+ ($failures)} | $(ms "$p50") ms | $(ms "$p99") ms | $(ms "$max") ms | $before_mb | $peak_mb | $(get closed_by_server_idle) | $(get closed_by_server_slow) | $(get connect_errors) |

The machine's CPUs are shared with other builds and tests: latencies are noisy.
EOM

problems=()
[ "${scrapes:-0}" -gt 0 ] || problems+=("no scrape ran")
[ "${failed_n:-1}" -eq 0 ] || problems+=("$failed_n of $scrapes scrapes failed: $failures")
awk -v p="$p99" 'BEGIN { exit !(p < 1.0) }' || problems+=("p99 ${p99} s is not under 1 s")
[ "$peak_mb" -le "$max_rss_mb" ] || problems+=("peak RSS ${peak_mb} MiB is above ${max_rss_mb} MiB")
[ ${#problems[@]} -eq 0 ] || fail "$(printf '%s; ' "${problems[@]}")"
echo "bench-abuse: ok" >&2
