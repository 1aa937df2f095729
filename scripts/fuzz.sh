#!/usr/bin/env bash
# Fuzzes the credential report parser and the configuration loader with cargo-fuzz (libFuzzer),
# SECONDS seconds per target (default 300), starting from the committed corpus
# fuzz/corpus/<target>/ (which tests/fuzz_corpus.rs replays in `cargo test`) and from what earlier
# runs found (fuzz/work/<target>/, minimised after each run, not committed).
#
#   scripts/fuzz.sh [SECONDS]
#
# For people, not CI: cargo-fuzz needs a nightly toolchain. A crash stops the run and leaves its
# input in fuzz/artifacts/<target>/: fix the bug, add a unit test, and copy the input into
# fuzz/corpus/<target>/ under a name that says what it is, so that `cargo test` replays it.
#
# FUZZ_SANITIZER (default none): the library forbids unsafe code, so AddressSanitizer could only
# find bugs in dependencies, and slows every run; set it to `address` to look there too.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [seconds-per-target]" >&2
  exit 2
fi
targets=(credential_report config)
cargo_fuzz_version=0.13.2
sanitizer=${FUZZ_SANITIZER:-none}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: no nightly Rust toolchain, which cargo-fuzz needs: rustup toolchain install nightly" >&2
  exit 1
fi
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  echo "fuzz.sh: installing cargo-fuzz $cargo_fuzz_version" >&2
  cargo install --locked "cargo-fuzz@$cargo_fuzz_version"
fi

# The fuzz crate builds with the dependency versions the daemon ships with.
cp Cargo.lock fuzz/Cargo.lock

# -a: debug assertions, so that an integer overflow is a crash rather than a wrong answer.
fuzz=(cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" --debug-assertions)
# Inputs stay small, as the corpus is committed; 8 KiB holds config.example.toml.
limits=(-max_len=8192 -timeout=10 -rss_limit_mb=4096)

for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
    echo "fuzz.sh: $corpus is missing or empty; it is committed with the code" >&2
    exit 1
  fi
  # What the fuzzer finds goes to fuzz/work/ (not committed, kept between runs, so that each run
  # starts where the last one stopped): a coverage corpus of hundreds of inputs is too much to
  # review and commit.
  work=fuzz/work/$target
  log=fuzz/work/$target.log
  mkdir -p "$work"
  echo "fuzz.sh: $target for ${seconds}s (log: $log)" >&2
  # New inputs go to the first directory; the committed corpus is only read.
  if ! "${fuzz[@]}" "$target" "$work" "$corpus" -- "${limits[@]}" \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    grep -A 12 -m 1 'panicked at' "$log" >&2 || tail -n 40 "$log" >&2
    echo "fuzz.sh: $target failed (log: $log); the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  # Minimise: the smallest set of inputs that reaches every branch the work corpus reaches.
  minimal=$(mktemp -d)
  "${fuzz[@]}" "$target" "$minimal" "$work" -- "${limits[@]}" -set_cover_merge=1 \
    -use_counters=0 >>"$log" 2>&1
  rm -rf "$work" && mv "$minimal" "$work"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | head -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | head -1)
  echo "fuzz.sh: $target: $execs runs in ${seconds}s ($rate/s), no crash;" \
    "$(ls "$work" | wc -l) inputs in $work, $(ls "$corpus" | wc -l) in $corpus" >&2
done
