#!/usr/bin/env bash
# Installs what the test suite needs, idempotently: the emulator's Python venv (moto[server],
# pinned in tests/emulator/requirements.txt), Prometheus with promtool, Alertmanager and curl
# (Debian packages prometheus, prometheus-alertmanager, curl).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test-deps: installing Debian packages: $*" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

venv=.venv
req=tests/emulator/requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "test-deps: creating $venv with $req" >&2
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req"
  echo "$want" >"$stamp"
fi
"$venv/bin/python" -c 'import moto.server' || { echo "test-deps: moto is not importable from $venv" >&2; exit 1; }

# promtool and prometheus come with the Debian package prometheus; Alertmanager is its own package.
missing=()
{ command -v promtool && command -v prometheus; } >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v curl >/dev/null || missing+=(curl)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
promtool --version >/dev/null
prometheus-alertmanager --version >/dev/null 2>&1
echo "test-deps: ok ($("$venv/bin/python" -c 'import moto; print("moto", moto.__version__)'), $(promtool --version 2>&1 | head -1))" >&2
