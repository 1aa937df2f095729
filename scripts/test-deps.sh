#!/usr/bin/env bash
# Installs what the test suite needs, idempotently: the emulator's Python venv (moto[server],
# pinned in tests/emulator/requirements.txt), schemathesis (its own venv, pinned in
# tests/schemathesis/requirements.txt), Prometheus with promtool, Alertmanager, curl and a
# headless browser for the HTML overview's test (Debian packages prometheus,
# prometheus-alertmanager, curl, chromium), cargo-deny, and the validators of deploy/ (cfn-lint,
# kubernetes-validate in .venv-deploy; kubectl and systemd-analyze must be there), and for the
# Debian package cargo-deb and lintian.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh  # the script runs from the repository root

venv=.venv
make_venv "$venv" tests/emulator/requirements.txt
# schemathesis checks the API against its OpenAPI document; its own venv keeps its
# dependencies away from moto's.
make_venv .venv-schemathesis tests/schemathesis/requirements.txt
.venv-schemathesis/bin/schemathesis --version >/dev/null
"$venv/bin/python" -c 'import moto.server' || { echo "test-deps: moto is not importable from $venv" >&2; exit 1; }
# cfn-lint checks deploy/cloudformation/ (tests/deploy.rs); it is pinned in the emulator's
# requirements, as moto depends on it.
"$venv/bin/cfn-lint" --version >/dev/null || { echo "test-deps: cfn-lint is missing from $venv (tests/emulator/requirements.txt)" >&2; exit 1; }
# kubernetes-validate checks deploy/kubernetes/ against the Kubernetes API's schemas it ships.
make_venv .venv-deploy tests/deploy/requirements.txt
.venv-deploy/bin/kubernetes-validate --version >/dev/null
# kubectl renders deploy/kubernetes/'s kustomize layouts (`kubectl kustomize`, offline). Any
# kubectl will do; without one, Debian's package kubernetes-client (1.20) provides it.
command -v kubectl >/dev/null || apt_install kubernetes-client
kubectl version --client >/dev/null 2>&1 || { echo "test-deps: kubectl does not run (tests/deploy.rs runs kubectl kustomize)" >&2; exit 1; }
# systemd-analyze verifies deploy/systemd/ (Debian package systemd).
command -v systemd-analyze >/dev/null || apt_install systemd

# promtool and prometheus come with the Debian package prometheus; Alertmanager is its own package.
missing=()
{ command -v promtool && command -v prometheus; } >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v curl >/dev/null || missing+=(curl)
command -v chromium >/dev/null || missing+=(chromium)
# The Debian package: dpkg-shlibdeps, which cargo-deb runs for the binary's Depends (dpkg-dev),
# and for its test (scripts/test-deb.sh) lintian and dpkg-deb (dpkg, always there).
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v lintian >/dev/null || missing+=(lintian)
command -v dpkg-deb >/dev/null || missing+=(dpkg)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
promtool --version >/dev/null
prometheus-alertmanager --version >/dev/null 2>&1
# cargo-deny for `make lint` (licenses, bans, sources), pinned; built from crates.io (some
# 4 minutes cold on 2 cores), and rebuilt only when missing or of another version.
cargo_deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $cargo_deny_version" ]; then
  echo "test-deps: installing cargo-deny $cargo_deny_version" >&2
  cargo install --locked --quiet "cargo-deny@$cargo_deny_version"
fi
lintian --version >/dev/null
# cargo-deb for `make deb` (the Debian package), pinned the same way (some 3 minutes cold).
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
  echo "test-deps: installing cargo-deb $cargo_deb_version" >&2
  cargo install --locked --quiet "cargo-deb@$cargo_deb_version"
fi
echo "test-deps: ok ($("$venv/bin/python" -c 'import moto; print("moto", moto.__version__)'), $(promtool --version 2>&1 | head -1))" >&2
