#!/usr/bin/env bash
# `make bench-scrape`: the cost of one /metrics scrape and the memory per series (issue 7, points
# 1 and 2). For snapshots of ~10k, ~100k and ~1M series (examples/metrics_load.rs with 10, 97 and
# 970 accounts) it saves one /metrics body, then measures sequential scrapes (wrk, 1 connection)
# side by side on the same machine in the same run:
#   - infraaudit /metrics, plain and gzip;
#   - the floor: the same bytes as a static file from nginx (sendfile; gzip_static for gzip);
#   - Python's prometheus_client (pinned, in .venv-bench) serving the same series from a custom
#     Collector that builds its families on every scrape (bench/scrape_prom_client_server.py).
# CPU per scrape is the server process's utime+stime over the run divided by the scrapes.
# Memory: RSS and live heap bytes with the accounts but no data, then with each snapshot; and
# 1,000 full refresh cycles with churn at ~100k series, reported every 100 cycles.
# Prints Markdown tables (also left in target/bench-results/scrape.md).
#
# Knobs (environment): BENCH_SCRAPE_SIZES ("10 97 970" accounts), BENCH_SCRAPE_DURATION (10s),
# BENCH_CHURN_CYCLES (1000), BENCH_CHURN_ACCOUNTS (97), BENCH_SCRAPE_BIN (a prebuilt
# metrics_load instead of building it).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=${BENCH_SCRAPE_SIZES:-10 97 970}
duration=${BENCH_SCRAPE_DURATION:-10s}
churn_cycles=${BENCH_CHURN_CYCLES:-1000}
churn_accounts=${BENCH_CHURN_ACCOUNTS:-97}
prom_client_version=0.26.0

# shellcheck source=scripts/lib.sh
. scripts/lib.sh  # the script runs from the repository root
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

venv=.venv-bench
if ! "$venv/bin/python" -c "import prometheus_client, sys; sys.exit(prometheus_client.__version__ != '$prom_client_version')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "prometheus-client==$prom_client_version"
fi

bin=${BENCH_SCRAPE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked --example metrics_load
  bin=target/release/examples/metrics_load
fi

work=$(mktemp -d -t infraaudit-scrape.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'cleanup; rm -rf "$work"' EXIT
trap 'cleanup; exit 130' INT TERM
fail() { echo "bench-scrape: FAILED: $*" >&2; exit 1; }

hz=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; } # utime + stime
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits until $1 prints `listening ADDR` and answers on /metrics (ADDR on stdout).
wait_listening() {
  local pid=$1 out=$2 addr=""
  for _ in $(seq 1 1200); do
    kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; fail "server $pid exited"; }
    addr=$(sed -n 's/^listening //p' "$out")
    [ -n "$addr" ] && curl -fsS -o /dev/null "http://$addr/metrics" 2>/dev/null && { echo "$addr"; return; }
    sleep 0.25
  done
  fail "server $pid did not answer within 5 minutes"
}
# wrk, one connection in sequence; prints "requests p50_ms p99_ms cpu_ms_per_scrape".
measure() {
  local pid=$1 url=$2 header=${3:-} d=${4:-$duration} before after
  before=$(cpu_ticks "$pid")
  wrk -t1 -c1 -d"$d" --timeout 60s --latency ${header:+-H "$header"} "$url" >"$work/wrk.out"
  after=$(cpu_ticks "$pid")
  grep -qE 'Non-2xx|Socket errors' "$work/wrk.out" && { cat "$work/wrk.out" >&2; fail "wrk errors on $url"; }
  awk -v cpu=$((after - before)) -v hz="$hz" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; return v * 1000 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } / requests in / { n = $1 }
    END { printf "%d %.2f %.2f %.2f\n", n, p50, p99, n ? cpu * 1000 / hz / n : 0 }' "$work/wrk.out"
}

scrape_rows=()
memory_rows=()
for accounts in $sizes; do
  echo "bench-scrape: $accounts accounts" >&2
  "$bin" --accounts "$accounts" --measure 0 --memory --max-runtime 10m >"$work/server.out" 2>"$work/server.err" &
  spid=$!; pids+=("$spid")
  addr=$(wait_listening "$spid" "$work/server.out")
  series=$(awk '$1 == "series" { print $2 }' "$work/server.out")
  mem=$(grep '^memory ' "$work/server.out")
  kv() { echo "$mem" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  memory_rows+=("$(awk -v s="$series" -v er="$(kv empty_rss_kb)" -v fr="$(kv full_rss_kb)" -v el="$(kv empty_live_bytes)" -v fl="$(kv full_live_bytes)" -v enc="$(kv encoded_bytes)" \
    'BEGIN { printf "| %d | %.1f | %.1f | %.0f | %.0f | %.0f |", s, er / 1024, fr / 1024, (fr - er) * 1024 / s, (fl - el) / s, enc / s }')")

  www=$work/www; rm -rf "$www"; mkdir -p "$www"
  curl -fsS -o "$www/metrics" "http://$addr/metrics"
  curl -fsS -H 'Accept-Encoding: gzip' -o "$work/server.gz" "http://$addr/metrics"
  gzip -1 -c "$www/metrics" >"$www/metrics.gz" # the server's level (flate2 fast)
  plain_bytes=$(stat -c %s "$www/metrics"); gzip_bytes=$(stat -c %s "$work/server.gz")

  read -r ia_n ia_p50 ia_p99 ia_cpu < <(measure "$spid" "http://$addr/metrics")
  read -r iz_n iz_p50 iz_p99 iz_cpu < <(measure "$spid" "http://$addr/metrics" "Accept-Encoding: gzip")
  cleanup

  # The floor: nginx, one process, the file from the page cache by sendfile.
  nport=$(free_port)
  cat >"$work/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log $work/nginx-error.log;
pid $work/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $work/nginx-tmp;
  proxy_temp_path $work/nginx-tmp;
  fastcgi_temp_path $work/nginx-tmp;
  uwsgi_temp_path $work/nginx-tmp;
  scgi_temp_path $work/nginx-tmp;
  default_type text/plain;
  server {
    listen 127.0.0.1:$nport;
    root $www;
    location / { gzip_static on; }
  }
}
CONF
  "$nginx_bin" -c "$work/nginx.conf" -p "$work" 2>"$work/nginx.err" &
  npid=$!; pids+=("$npid")
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$nport/metrics" 2>/dev/null && break; sleep 0.1; done
  nz_bytes=$(curl -fsS -H 'Accept-Encoding: gzip' "http://127.0.0.1:$nport/metrics" | wc -c)
  [ "$nz_bytes" -eq "$(stat -c %s "$www/metrics.gz")" ] || fail "nginx did not serve the gzip file"
  read -r ng_n ng_p50 ng_p99 ng_cpu < <(measure "$npid" "http://127.0.0.1:$nport/metrics")
  read -r nz_n nz_p50 nz_p99 nz_cpu < <(measure "$npid" "http://127.0.0.1:$nport/metrics" "Accept-Encoding: gzip")
  cleanup

  # Python prometheus_client, the same series.
  pport=$(free_port)
  "$venv/bin/python" bench/scrape_prom_client_server.py "$www/metrics" "$pport" >"$work/py.out" 2>&1 &
  ppid=$!; pids+=("$ppid")
  paddr=$(wait_listening "$ppid" "$work/py.out")
  py_series=$(awk '$1 == "series" { print $2 }' "$work/py.out")
  [ "$py_series" -eq "$series" ] || fail "prometheus_client serves $py_series series, infraaudit $series"
  py_bytes=$(curl -fsS "http://$paddr/metrics" | wc -c)
  # At ~1M series one prometheus_client scrape takes longer than $duration: give it 4 times as long.
  py_duration=$duration; [ "$series" -lt 500000 ] || py_duration=$(( ${duration%s} * 4 ))s
  read -r py_n py_p50 py_p99 py_cpu < <(measure "$ppid" "http://$paddr/metrics" "" "$py_duration")
  [ "$py_n" -gt 0 ] || fail "no prometheus_client scrape finished within $py_duration"
  cleanup

  row() { printf '| %s | %s | %s | %s | %s | %s | %s |' "$series" "$1" "$2" "$3" "$4" "$5" "$6"; }
  scrape_rows+=("$(row "infraaudit plain" "$plain_bytes" "$ia_n" "$ia_p50" "$ia_p99" "$ia_cpu")")
  scrape_rows+=("$(row "nginx static plain (floor)" "$plain_bytes" "$ng_n" "$ng_p50" "$ng_p99" "$ng_cpu")")
  scrape_rows+=("$(row "infraaudit gzip" "$gzip_bytes" "$iz_n" "$iz_p50" "$iz_p99" "$iz_cpu")")
  scrape_rows+=("$(row "nginx gzip_static (floor)" "$nz_bytes" "$nz_n" "$nz_p50" "$nz_p99" "$nz_cpu")")
  scrape_rows+=("$(row "prometheus_client $prom_client_version" "$py_bytes" "$py_n" "$py_p50" "$py_p99" "$py_cpu")")
  ratio_rows+=("$(awk -v s="$series" -v a="$ia_p50" -v n="$ng_p50" -v az="$iz_p50" -v nz="$nz_p50" -v p="$py_p50" -v ac="$ia_cpu" -v pc="$py_cpu" \
    'BEGIN { printf "| %d | %.1fx | %.1fx | %.0fx | %.0fx |", s, a / n, az / nz, p / a, pc / ac }')")
done

echo "bench-scrape: churn, $churn_cycles cycles at $churn_accounts accounts" >&2
"$bin" --accounts "$churn_accounts" --churn-cycles "$churn_cycles" >"$work/churn.out"
churn_series=$(awk '$1 == "series" { print $2 }' "$work/churn.out")

mkdir -p target/bench-results
{
  echo "Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr), $(rustc --version | cut -d' ' -f1-2), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $("$nginx_bin" -v 2>&1 | cut -d' ' -f3), Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'); $(date -u '+%Y-%m-%d %H:%M UTC'); wrk -t1 -c1 -d$duration per row."
  echo
  echo "| series | server | bytes | scrapes | p50 ms | p99 ms | server CPU ms/scrape |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${scrape_rows[@]}"
  echo
  echo "| series | infraaudit / nginx, plain p50 | infraaudit / nginx, gzip p50 | prometheus_client / infraaudit, p50 | prometheus_client / infraaudit, CPU |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${ratio_rows[@]}"
  echo
  echo "| series | RSS empty (MiB) | RSS full (MiB) | RSS bytes/series | live heap bytes/series | of which encoded series |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${memory_rows[@]}"
  echo
  echo "Churn at $churn_series series, every (account, collector) refreshed per cycle, one render per cycle:"
  echo
  echo "| cycle | RSS (MiB) | live heap (MiB) |"
  echo "|---|---|---|"
  awk '$1 == "churn" { split($2, c, "="); split($3, r, "="); split($4, l, "="); printf "| %d | %.1f | %.2f |\n", c[2], r[2] / 1024, l[2] / 1048576 }' "$work/churn.out"
} | tee target/bench-results/scrape.md
