#!/usr/bin/env bash
# Checks the Debian package that `make deb` built (`make test-deb` builds it first; `make test`
# runs both): what dpkg-deb lists and its control data (binary, unit, conffile, man pages, rules,
# dashboards, maintainer scripts; the postinst run with stubs for adduser and systemd's helpers,
# which must make the user before enabling the unit), then, extracted into a temporary directory,
# that the binary prints the Cargo version, that the shipped /etc/infraaudit/config.toml passes
# check-config with no environment, that systemd-analyze verifies the packaged unit (and rates
# it as sandboxed as deploy/systemd/), and that lintian reports no error and no warning
# (justified ones are in deploy/debian/infraaudit.lintian-overrides). Needs dpkg-deb, lintian and
# systemd-analyze (`make test-deps`). The whole lintian report is printed: info and pedantic
# tags, and the overridden ones.
set -euo pipefail
cd "$(dirname "$0")/.."

failures=0
fail() {
  echo "test-deb: FAIL: $*" >&2
  failures=$((failures + 1))
}
die() {
  echo "test-deb: $*" >&2
  exit 1
}

for tool in dpkg-deb dpkg lintian systemd-analyze python3 gzip; do
  command -v "$tool" >/dev/null || die "$tool is missing: run \`make test-deps\`"
done

# The package's name, version and file name, from Cargo.toml as cargo-deb reads it.
read -r name version revision < <(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json, sys
p = json.load(sys.stdin)["packages"][0]
print(p["name"], p["version"], p["metadata"]["deb"]["revision"])') ||
  die "cannot read the package's name, version and revision from Cargo.toml"
arch=$(dpkg --print-architecture)
deb_version="$version-$revision"
# TEST_DEB checks another file than the one `make deb` writes (a modified copy, say).
deb=${TEST_DEB:-target/debian/${name}_${deb_version}_${arch}.deb}
[ -f "$deb" ] || die "$deb is missing: run \`make deb\` first"
echo "test-deb: checking $deb ($(du -k "$deb" | cut -f1) KiB)" >&2

work=$(mktemp -d -t infraaudit-test-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- control data -----------------------------------------------------------------------------
field() { dpkg-deb --field "$deb" "$1"; }
[ "$(field Package)" = "$name" ] || fail "Package is '$(field Package)', not $name"
[ "$(field Version)" = "$deb_version" ] || fail "Version is '$(field Version)', not $deb_version"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture is '$(field Architecture)', not $arch"
field Depends | grep -qw adduser || fail "Depends lacks adduser (the postinst runs it): $(field Depends)"
# Debian's changelog names the version being packaged.
changelog_version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' deploy/debian/changelog)
[ "$changelog_version" = "$deb_version" ] ||
  fail "deploy/debian/changelog's top entry is $changelog_version, the package $deb_version: add an entry"

dpkg-deb --control "$deb" "$work/control"
for script in postinst prerm postrm; do
  [ -x "$work/control/$script" ] || { fail "no executable $script in the control data"; continue; }
  sh -n "$work/control/$script" || fail "$script is not valid sh"
  grep -q '#DEBHELPER#' "$work/control/$script" && fail "$script still holds #DEBHELPER#"
done
grep -qx '/etc/infraaudit/config.toml' "$work/control/conffiles" ||
  fail "/etc/infraaudit/config.toml is not in conffiles: $(cat "$work/control/conffiles")"
# The user first, then the unit enabled and started (as prometheus-node-exporter's postinst).
# `|| true`: under pipefail a grep that finds nothing would end the script before its reason.
postinst=$work/control/postinst
user_line=$(grep -n 'adduser --system --group --no-create-home --home /nonexistent .*infraaudit' "$postinst" | head -1 | cut -d: -f1 || true)
enable_line=$(grep -n 'deb-systemd-helper enable .*infraaudit.service' "$postinst" | head -1 | cut -d: -f1 || true)
start_line=$(grep -n 'deb-systemd-invoke .*infraaudit.service' "$postinst" | head -1 | cut -d: -f1 || true)
[ -n "$user_line" ] || fail "postinst does not create the system user infraaudit"
[ -n "$enable_line" ] || fail "postinst does not enable infraaudit.service"
[ -n "$start_line" ] || fail "postinst does not start infraaudit.service"
[ -n "$user_line" ] && [ -n "$enable_line" ] && [ "$user_line" -lt "$enable_line" ] ||
  fail "postinst must create the user before it enables the unit"
# Run, with the commands it calls replaced by stubs that log their arguments: `configure` makes
# the user, then enables the unit; the script exits 0 on a first install and on an upgrade.
mkdir "$work/stubs"
for cmd in adduser deb-systemd-helper deb-systemd-invoke systemctl; do
  printf '#!/bin/sh\necho "%s $*" >>"$STUB_LOG"\n' "$cmd" >"$work/stubs/$cmd"
  chmod +x "$work/stubs/$cmd"
done
for args in "configure" "configure 0.0.9-1"; do
  : >"$work/stub.log"
  # shellcheck disable=SC2086 # the arguments are words on purpose
  if ! STUB_LOG=$work/stub.log PATH="$work/stubs:/usr/bin:/bin" sh "$postinst" $args >/dev/null 2>&1; then
    fail "postinst $args exits non-zero"
  fi
  [ "$(head -1 "$work/stub.log")" = "adduser --system --group --no-create-home --home /nonexistent --quiet infraaudit" ] ||
    fail "postinst $args: the first command is not the user's creation:"$'\n'"$(cat "$work/stub.log")"
  grep -qx 'deb-systemd-helper enable infraaudit.service' "$work/stub.log" ||
    fail "postinst $args does not enable infraaudit.service:"$'\n'"$(cat "$work/stub.log")"
done

# --- contents ---------------------------------------------------------------------------------
dpkg-deb --contents "$deb" | awk '{print $NF}' | sed 's|^\./|/|' >"$work/contents"
has() { grep -qxF "$1" "$work/contents" || fail "$1 is not in the package"; }
unit=""
for dir in /usr/lib/systemd/system /lib/systemd/system; do
  grep -qxF "$dir/infraaudit.service" "$work/contents" && unit="$dir/infraaudit.service"
done
[ -n "$unit" ] || fail "no infraaudit.service under /usr/lib/systemd/system or /lib/systemd/system"
has /usr/bin/infraaudit
has /etc/infraaudit/config.toml
has /usr/share/infraaudit/alerts/infraaudit.rules.yml
for f in dashboards/*.json; do has "/usr/share/infraaudit/$f"; done
for f in config.example.toml web-config.example.yml alertmanager.example.yml; do
  has "/usr/share/doc/infraaudit/examples/$f"
done
has /usr/share/doc/infraaudit/copyright
has /usr/share/doc/infraaudit/changelog.Debian.gz
has /usr/share/lintian/overrides/infraaudit

# --- extracted --------------------------------------------------------------------------------
root=$work/root
dpkg-deb --extract "$deb" "$root"
bin=$root/usr/bin/infraaudit
cmp -s "$root$unit" deploy/debian/infraaudit.service || fail "$unit differs from deploy/debian/infraaudit.service"
cmp -s "$root/etc/infraaudit/config.toml" deploy/debian/config.toml ||
  fail "/etc/infraaudit/config.toml differs from deploy/debian/config.toml"

out=$("$bin" --version) || fail "infraaudit --version fails"
case "$out" in
  "$name $version "*) ;;
  *) fail "infraaudit --version prints '$out', not '$name $version (...)'" ;;
esac

# The shipped configuration as a fresh install runs it: no environment at all.
if ! out=$(env -i "$bin" check-config --config "$root/etc/infraaudit/config.toml" 2>"$work/check-config.err"); then
  fail "check-config rejects the shipped /etc/infraaudit/config.toml:"$'\n'"$(cat "$work/check-config.err")"
elif ! python3 -c 'import json, sys
c = json.load(sys.stdin)
assert not c.get("accounts"), c.get("accounts")
assert not (c.get("organizations") or {}).get("enabled"), c.get("organizations")' <<<"$out"; then
  fail "the shipped configuration should audit the ambient account (no [[accounts]], no discovery):"$'\n'"$out"
fi

# One man page per subcommand the binary lists (clap's own `help` aside), and the main one.
pages=(infraaudit)
while read -r sub; do
  pages+=("infraaudit-$sub")
done < <("$bin" --help | awk '/^Commands:/ {on = 1; next} on && /^[^ ]/ {on = 0} on && NF {print $1}' | grep -vx help)
[ ${#pages[@]} -gt 1 ] || fail "infraaudit --help lists no subcommand"
for page in "${pages[@]}"; do
  gz=/usr/share/man/man1/$page.1.gz
  has "$gz"
  if [ -f "$root$gz" ]; then
    gzip -t "$root$gz" || fail "$gz is not valid gzip"
    zcat "$root$gz" | grep -q '^\.TH' || fail "$gz has no .TH header"
  fi
done
extra=$(grep '^/usr/share/man/man1/.' "$work/contents" | sed 's|.*/||; s|\.1\.gz$||' | grep -vxF -f <(printf '%s\n' "${pages[@]}") || true)
[ -z "$extra" ] || fail "man pages of no listed subcommand: $extra"

# systemd: the packaged unit, ExecStart pointing at the extracted binary (as tests/deploy.rs does
# for deploy/systemd/). verify exits 0 on unknown keys and bad values, which it only prints.
sed "s|/usr/bin/infraaudit|$bin|" "$root$unit" >"$work/infraaudit.service"
if ! report=$(systemd-analyze verify --man=no "$work/infraaudit.service" 2>&1) || [ -n "$report" ]; then
  fail "systemd-analyze verify of the packaged unit:"$'\n'"$report"
fi
if ! report=$(systemd-analyze security --offline=true --threshold=20 "$work/infraaudit.service" 2>&1); then
  fail "systemd-analyze security: exposure above 2.0:"$'\n'"$report"
else
  echo "test-deb: systemd-analyze security: $(grep 'Overall exposure level' <<<"$report")" >&2
fi

# --- lintian ----------------------------------------------------------------------------------
echo "test-deb: lintian $deb" >&2
# Overridden tags count for --fail-on when shown, so the overrides are listed by a second run.
if ! lintian --fail-on error,warning --display-info --pedantic "$deb"; then
  fail "lintian reports errors or warnings (above)"
fi
lintian --fail-on none --show-overrides "$deb" | grep '^O: ' || true

if [ "$failures" -gt 0 ]; then
  echo "test-deb: $failures failure(s) in $deb" >&2
  exit 1
fi
echo "test-deb: ok ($deb: $(grep -c . "$work/contents") entries, ${#pages[@]} man pages)" >&2
