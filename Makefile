# `make run` runs the exporter; `make test` installs the test prerequisites and runs every check.
CONFIG ?=

.PHONY: run build test test-deps lint golden demo bench-load

run:
	cargo run --release --locked -- $(if $(CONFIG),--config $(CONFIG))

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

# Rewrites tests/golden/ from the current code; review the diff before committing it.
golden:
	INFRAAUDIT_UPDATE_GOLDEN=1 cargo test --locked --test golden

# The whole stack on loopback without AWS: emulator, exporter, Prometheus, Alertmanager. Ctrl-C stops it.
demo:
	scripts/demo.sh

# /metrics with ~100k series under wrk (64 connections, 3 x 30 s) while data refreshes; about
# 95 s after the build. Fails on errors, leaks or RSS growth; results in BENCHMARKS.md.
bench-load:
	scripts/bench-load.sh
