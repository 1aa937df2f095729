#!/usr/bin/env bash
# `make bench-api`: AWS API cost per refresh (issue 7 point 3), counted at the emulator. For
# N = 100, 1,000 and 5,000 users (BENCH_API_USERS), the release daemon with only the IAM collector
# against a fresh counting emulator: calls by action in the cold cycle and in two warm ones; then
# report_max_age = 0s for comparison, then the iam_authz collector (GetAccountAuthorizationDetails,
# ListServerCertificates) with the IAM collector's ListVirtualMFADevices at the same N, cold and
# warm, plus one row at BENCH_API_ACCOUNT_USERS with the emulator's pages capped at
# BENCH_API_PAGE_SIZE items, then the whole account (IAM + S3 + EC2, two regions, 1,000 users, 20
# buckets, 20 instances). Prints Markdown and keeps it in bench/api_results.md.
# About 8 minutes after the build.
#
# Knobs (environment): BENCH_API_USERS (100,1000,5000), BENCH_API_INTERVAL (20s: long enough that
# a cold run of 5,000 users ends before the next starts), BENCH_API_ACCOUNT_USERS (1000),
# BENCH_API_BUCKETS (20), BENCH_API_INSTANCES (20), BENCH_API_PAGE_SIZE (100; empty: no capped
# row), BENCH_API_BIN (a binary to use instead of building the release one: the call counts do
# not depend on the build, the seconds do).
set -euo pipefail
cd "$(dirname "$0")/.."

# The emulator's venv, as the tests have it (idempotent).
[ -x .venv/bin/python ] && .venv/bin/python -c 'import moto' 2>/dev/null || scripts/test-deps.sh
if [ -z "${BENCH_API_BIN:-}" ]; then
  cargo build --release --locked --bin infraaudit
fi

out=bench/api_results.md
{
  echo "<!-- scripts/bench-api.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r), ${BENCH_API_BIN:-target/release/infraaudit} -->"
  .venv/bin/python bench/api_cost.py
} >"$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
