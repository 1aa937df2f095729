# `make run` runs the exporter; `make test` installs the test prerequisites and runs every check.
CONFIG ?=

.PHONY: run build deb test test-deps test-deb lint golden runbook-links demo bench bench-load bench-abuse bench-api bench-prowler bench-fleet bench-scrape

run:
	@echo "make run: building the release binary (the first build takes about 8 minutes on 2 CPUs)" >&2
	cargo build --release --locked
	target/release/infraaudit $(if $(CONFIG),--config $(CONFIG))

build:
	cargo build --release --locked

test-deps:
	scripts/test-deps.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
	cargo deny --locked check --hide-inclusion-graph --show-stats licenses bans sources

test: test-deps lint
	cargo test --locked
	$(MAKE) --no-print-directory test-deb

# The Debian package target/debian/infraaudit_<version>-1_<arch>.deb (docs/deployment.md): the
# man pages from the clap definitions into target/man/, then cargo-deb (pinned in test-deps.sh).
deb:
	cargo run --locked --quiet --example manpages -- target/man
	cargo deb --locked

# Builds the Debian package and checks it: contents, the extracted binary and config, the unit, lintian.
test-deb: deb
	scripts/test-deb.sh

# Rewrites tests/golden/ from the current code; review the diff before committing it.
golden:
	INFRAAUDIT_UPDATE_GOLDEN=1 cargo test --locked --test golden

# Runbook links of alerts and dashboards to RUNBOOK_BASE#<section> (default: docs/runbook.md on GitHub).
runbook-links:
	scripts/gen-runbook-links.sh $(if $(RUNBOOK_BASE),--base '$(RUNBOOK_BASE)')

# The whole stack on loopback without AWS: emulator, exporter, Prometheus, Alertmanager. Ctrl-C stops it.
demo:
	scripts/demo.sh

# Every benchmark below, one after the other; about 30 minutes. Writes this run's tables to
# bench/results/last-run.md, which BENCHMARKS.md links (BENCH_ONLY="load api" runs a subset).
bench:
	scripts/bench.sh

# /metrics with ~100k series under wrk (64 connections, 3 x 30 s) while data refreshes; about
# 95 s after the build. Fails on errors, leaks or RSS growth; results in BENCHMARKS.md.
bench-load:
	scripts/bench-load.sh

# /metrics at ~100k series scraped every second for 30 s while 2,000 idle and 1,000 slowloris
# connections reconnect as fast as they are closed; about 50 s after the build. Fails on a failed
# scrape, a p99 of 1 s or more, or a peak RSS above 256 MiB; results in BENCHMARKS.md.
bench-abuse:
	scripts/bench-abuse.sh

# AWS API cost per refresh, counted at the emulator: IAM cold/warm cycles for 100, 1,000 and 5,000
# users, then a whole account (IAM + S3 + EC2); about 4 minutes after the build. Results in BENCHMARKS.md.
bench-api:
	scripts/bench-api.sh

# infraaudit audit vs Prowler (installed here into .venv-prowler, not by `make test`) on the same
# emulator data and checks, 100 and 1,000 users: wall time, AWS requests, memory, findings diff.
bench-prowler:
	scripts/bench-prowler.sh

# Fleet refresh: 100 accounts x 200 users x 20 buckets x 20 instances on moto, time to the first
# complete snapshot per aws.max_concurrency (2, 5, 10, 20); about 6 minutes. Results in BENCHMARKS.md.
bench-fleet:
	scripts/bench-fleet.sh

# Cost of one /metrics scrape at ~10k/100k/1M series beside nginx (static floor) and Python's
# prometheus_client, memory per series and 1,000 churn cycles; about 6 min. See BENCHMARKS.md.
bench-scrape:
	scripts/bench-scrape.sh
