#!/usr/bin/env bash
# `make bench-api`: AWS API cost per refresh (issue 7 point 3), counted at the emulator. For
# N = 100, 1,000 and 5,000 users (BENCH_API_USERS), the release daemon with only the IAM collector
# against a fresh counting emulator: calls by action in the cold cycle and in two warm ones; then
# report_max_age = 0s for comparison, then the whole account (IAM + S3 + EC2, two regions, 1,000
# users, 20 buckets, 20 instances). Prints Markdown and keeps it in bench/api_results.md.
# About 4 minutes after the build.
#
# Knobs (environment): BENCH_API_USERS (100,1000,5000), BENCH_API_INTERVAL (20s: long enough that
# a cold run of 5,000 users ends before the next starts), BENCH_API_ACCOUNT_USERS (1000),
# BENCH_API_BUCKETS (20), BENCH_API_INSTANCES (20).
set -euo pipefail
cd "$(dirname "$0")/.."

# The emulator's venv, as the tests have it (idempotent).
[ -x .venv/bin/python ] && .venv/bin/python -c 'import moto' 2>/dev/null || scripts/test-deps.sh
cargo build --release --locked --bin infraaudit

out=bench/api_results.md
{
  echo "<!-- scripts/bench-api.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r) -->"
  .venv/bin/python bench/api_cost.py
} >"$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
