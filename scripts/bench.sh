#!/usr/bin/env bash
# `make bench`: every benchmark of BENCHMARKS.md in one command, each installing what it needs.
# Runs them one after the other (they measure the machine, so never in parallel), keeps each
# one's full output in target/bench-results/NAME.out, and rewrites the "Last `make bench` run"
# section at the end of BENCHMARKS.md with the machine, each benchmark's exit status and time,
# and the Markdown tables it printed. The sections above it explain those tables; the Prowler
# benchmark also rewrites its own section. About 30 minutes after the builds (Prowler's first
# install adds about 4).
#
# BENCH_ONLY="load scrape" runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."

all=(load abuse scrape api prowler fleet)
read -r -a which <<<"${BENCH_ONLY:-${all[*]}}"
out=target/bench-results
mkdir -p "$out"
summary=$out/summary.md
failed=0
{
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);"
  echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r), $(rustc --version)."
  echo
} >"$summary"
for name in "${which[@]}"; do
  script=scripts/bench-$name.sh
  [ -x "$script" ] || { echo "bench: no $script" >&2; exit 2; }
  echo "bench: $name" >&2
  start=$(date +%s)
  "$script" 2>&1 | tee "$out/$name.out"
  status=${PIPESTATUS[0]}
  took=$(($(date +%s) - start))
  [ "$status" -eq 0 ] || failed=1
  {
    echo "### $name: \`make bench-$name\`, exit $status, ${took} s"
    echo
    # The Markdown tables the benchmark printed (its checks fail the script, so exit 0 means
    # they held).
    grep -E '^\|' "$out/$name.out" || echo "(no table printed; see $out/$name.out)"
    echo
  } >>"$summary"
done

begin='<!-- make bench: begin -->'
end='<!-- make bench: end -->'
python3 - "$summary" "$begin" "$end" <<'EOF'
import sys
summary, begin, end = sys.argv[1], sys.argv[2], sys.argv[3]
path = "BENCHMARKS.md"
text = open(path).read()
body = open(summary).read()
section = f"{begin}\n## Last `make bench` run\n\n{body}{end}\n"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1].lstrip("\n")
    text = head + section + tail
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
EOF
echo "bench: results in BENCHMARKS.md (section 'Last make bench run') and $out/" >&2
exit "$failed"
