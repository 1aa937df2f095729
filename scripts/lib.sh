# Shared by the scripts in scripts/: source it, then call apt_install PACKAGE..., make_venv DIR
# REQUIREMENTS or bench_workdir NAME.
# Installs Debian packages, with sudo when not root; the caller decides what is missing.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "$(basename "$0" .sh): installing Debian packages: $*" >&2
  $sudo apt-get update -qq
  # Through env: sudo's env_reset would drop the variable, and apt could wait on a hidden prompt.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# make_venv DIR REQUIREMENTS: a venv with exactly those pinned packages, rebuilt when they change.
make_venv() {
  local venv=$1 req=$2
  local stamp="$venv/.requirements.sha256" want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "$(basename "$0" .sh): creating $venv with $req (a minute or two)" >&2
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req"
    echo "$want" >"$stamp"
  fi
}

# bench_workdir NAME: sets `work` to a new temporary directory and, at exit, kills the process
# `pid` (when set) and removes the directory, unless `fail MESSAGE` (which exits 1) or an
# interrupt kept it for a look.
bench_workdir() {
  bench_name=$1
  work=$(mktemp -d -t "infraaudit-$1.XXXXXX")
  pid=""
  failed=""
  trap bench_cleanup EXIT
  trap 'failed=1; bench_cleanup; exit 130' INT TERM
}
bench_cleanup() {
  trap - EXIT INT TERM
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ -n "$failed" ]; then echo "$bench_name: output kept in $work" >&2; else rm -rf "$work"; fi
}
fail() {
  failed=1
  echo "$bench_name: FAILED: $*" >&2
  exit 1
}
