# Shared by the scripts in scripts/: source it, then call apt_install PACKAGE...
# Installs Debian packages, with sudo when not root; the caller decides what is missing.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "$(basename "$0" .sh): installing Debian packages: $*" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
