#!/usr/bin/env bash
# `make bench-prowler`: infraaudit and Prowler side by side (issue 7 point 4, extended by issue 15
# to the CIS checks both have). One account on the counting moto emulator, seeded with N users
# (most with keys), 20 buckets and 20 instances in us-east-1 and eu-west-1, plus the CIS population
# of bench/prowler_emulator.py (console passwords, direct and admin policies, support and CloudShell
# attachments, server certificates, TLS-only bucket policies, MFA Delete, EBS default encryption,
# network ACLs and security groups); for each N, `infraaudit audit` (release build) and `prowler
# aws`, each limited to the same checks (24 of ours, the 27 of Prowler's that test the same rules)
# and two regions, under /usr/bin/time -v: wall time, peak RSS, and the AWS requests counted at the
# emulator (reset before each run). Then the FAIL findings of both are mapped to (check, resource)
# and diffed by bench/prowler_compare.py, which explains each difference by a documented rule and
# fails on any it cannot. Writes the "Side by side with Prowler" section of BENCHMARKS.md.
#
# Prowler is installed here (never by `make test`) into .venv-prowler, pinned in
# bench/prowler_requirements.txt. The measured part runs in a network namespace with loopback only
# (unshare -n, when permitted) and with HTTP(S)_PROXY pointing at a sinkhole that logs any
# non-loopback request; the emulator is reached through AWS_ENDPOINT_URL.
#
# Knobs (environment): PROWLER_BENCH_USERS ("100 1000"), PROWLER_BENCH_IA_RUNS (3: infraaudit runs
# per N, the median is quoted), PROWLER_BENCH_RUNS (1: Prowler runs per N, it takes minutes),
# PROWLER_BENCH_BUCKETS (20), PROWLER_BENCH_INSTANCES (20), PROWLER_BENCH_NO_WRITE (1: print the
# section, leave BENCHMARKS.md alone).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Ours, and Prowler's that test the same rules (bench/prowler_compare.py maps one to the other).
checks_ours=iam_access_key_age,iam_access_key_unused,iam_root_mfa,iam_root_access_key,s3_public_access,s3_encryption,ec2_imdsv2,ec2_public_ip
checks_ours+=,iam_root_hardware_mfa,iam_root_recent_use,iam_user_password_unused,iam_user_initial_access_key
checks_ours+=,iam_user_multiple_active_keys,iam_user_direct_policies,iam_policy_full_admin,iam_support_role
checks_ours+=,iam_server_certificate_expired,iam_cloudshell_full_access,s3_secure_transport,s3_mfa_delete
checks_ours+=,ec2_ebs_default_encryption,vpc_nacl_admin_ports_open,ec2_security_group_admin_ports_open
checks_ours+=,vpc_default_security_group_open
checks_prowler=(iam_rotate_access_key_90_days iam_user_accesskey_unused iam_root_mfa_enabled
  iam_no_root_access_key s3_bucket_public_access s3_bucket_default_encryption
  ec2_instance_imdsv2_enabled ec2_instance_public_ip
  iam_root_hardware_mfa_enabled iam_avoid_root_usage iam_user_console_access_unused
  iam_user_no_setup_initial_access_key iam_user_two_active_access_key
  iam_policy_attached_only_to_group_or_roles iam_customer_attached_policy_no_administrative_privileges
  iam_support_role_created iam_no_expired_server_certificates_stored
  iam_policy_cloudshell_admin_not_attached s3_bucket_secure_transport_policy s3_bucket_no_mfa_delete
  ec2_ebs_default_encryption ec2_networkacl_allow_ingress_tcp_port_22
  ec2_networkacl_allow_ingress_tcp_port_3389 ec2_securitygroup_allow_ingress_from_internet_to_all_ports
  ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_22
  ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_3389
  ec2_securitygroup_default_restrict_traffic)
regions=(us-east-1 eu-west-1)

fail() { echo "bench-prowler: FAILED: $*" >&2; exit 1; }

if [ "${1:-}" != --inner ]; then
  # Prerequisites, outside the network namespace (they download).
  # shellcheck source=scripts/lib.sh
  . scripts/lib.sh  # the script runs from the repository root
  bench_name=bench-prowler  # lib.sh's fail(), which replaces ours here, names the script by it
  missing=()
  [ -x /usr/bin/time ] || missing+=(time)
  command -v curl >/dev/null || missing+=(curl)
  python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

  # The emulator's venv, as `make test-deps` makes it (same pinned requirements).
  emu_req=tests/emulator/requirements.txt
  if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$(sha256sum "$emu_req" | cut -d' ' -f1)" ]; then
    echo "bench-prowler: creating .venv with $emu_req" >&2
    rm -rf .venv && python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check --no-input -r "$emu_req"
    sha256sum "$emu_req" | cut -d' ' -f1 >.venv/.requirements.sha256
  fi

  # Prowler: large (hundreds of packages), so its own venv, rebuilt only when the pin changes.
  req=bench/prowler_requirements.txt
  want=$(sha256sum "$req" | cut -d' ' -f1)
  mkdir -p target/bench-prowler
  if [ ! -x .venv-prowler/bin/prowler ] || [ "$(cat .venv-prowler/.requirements.sha256 2>/dev/null)" != "$want" ]; then
    echo "bench-prowler: installing Prowler ($req) into .venv-prowler (several minutes)" >&2
    rm -rf .venv-prowler
    start=$(date +%s)
    python3 -m venv .venv-prowler
    .venv-prowler/bin/pip install --quiet --disable-pip-version-check --no-input -r "$req"
    echo "$want" >.venv-prowler/.requirements.sha256
    echo $(($(date +%s) - start)) >.venv-prowler/.install-seconds
  fi
  # Not `prowler -v`: that asks api.github.com for the latest release.
  .venv-prowler/bin/python -c 'from prowler.config.config import prowler_version' \
    || fail "the Prowler install in .venv-prowler is broken"

  # Both lists are the mapping's, so a check added on one side only is noticed before the runs.
  PYTHONPATH=bench PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -c 'import sys, prowler_compare as c
sys.exit(sorted(c.PROWLER) != sorted(sys.argv[2:]) or set(c.PROWLER.values()) != set(sys.argv[1].split(",")))' \
    "$checks_ours" "${checks_prowler[@]}" || fail "the checks lists differ from bench/prowler_compare.py's PROWLER"

  cargo build --release --locked --bin infraaudit

  # Loopback only, enforced by the kernel when we may create a network namespace.
  if unshare -n true 2>/dev/null; then
    exec unshare -n "$0" --inner netns
  fi
  echo "bench-prowler: cannot create a network namespace (needs root or user namespaces);" \
    "running with the sinkhole proxy only" >&2
  exec "$0" --inner proxy-only
fi

isolation=$2
[ "$isolation" = netns ] && ip link set lo up 2>/dev/null || true
if [ "$isolation" = netns ] && ! ip link show lo >/dev/null 2>&1; then
  # Without iproute2, Python can bring loopback up through the same ioctl ip uses.
  .venv/bin/python - <<'EOF'
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
EOF
fi

out=target/bench-prowler
rm -rf "$out/runs" && mkdir -p "$out/runs"
users_list=${PROWLER_BENCH_USERS:-100 1000}
ia_runs=${PROWLER_BENCH_IA_RUNS:-3}
pr_runs=${PROWLER_BENCH_RUNS:-1}
buckets=${PROWLER_BENCH_BUCKETS:-20}
instances=${PROWLER_BENCH_INSTANCES:-20}

emu_pid="" sink_pid="" keep=""
cleanup() {
  trap - EXIT INT TERM
  for p in $emu_pid $sink_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# Anything that is not loopback goes to the sinkhole, which logs the target and refuses.
sink_log=$out/runs/sinkhole.jsonl
: >"$sink_log"
.venv/bin/python bench/prowler_sinkhole.py "$sink_log" >"$out/runs/sinkhole.port" &
sink_pid=$!
for _ in $(seq 100); do [ -s "$out/runs/sinkhole.port" ] && break; sleep 0.1; done
sink_port=$(cat "$out/runs/sinkhole.port")
[ -n "$sink_port" ] || fail "the sinkhole proxy did not start"

counts() { curl -sf --noproxy "*" "$1/_bench/counts"; }
reset() { curl -sf --noproxy "*" -X POST "$1/_bench/reset" >/dev/null; }

for n in $users_list; do
  d=$out/runs/n$n
  mkdir -p "$d"
  echo "bench-prowler: N=$n: seeding the emulator" >&2
  # One AMI instead of moto's ~1,300 defaults: moto reports their snapshots as the account's own,
  # which would cost Prowler one DescribeSnapshotAttribute each that a real fresh account does not.
  # bench/prowler_emulator.py is tests/emulator/moto_emulator.py plus the CIS population.
  coproc EMU {
    MOTO_AMIS_PATH=$root/bench/prowler_amis.json exec .venv/bin/python bench/prowler_emulator.py \
      --count-requests --no-default-seed --aws-like-report --users "$n" --buckets "$buckets" \
      --instances "$instances" --regions "$(IFS=,; echo "${regions[*]}")" 2>"$d/emulator.err"
  }
  emu_pid=$EMU_PID
  read -r ready <&"${EMU[0]}" || fail "emulator did not start: $(tail -5 "$d/emulator.err")"
  echo "$ready" >"$d/ready.json"
  ep=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$d/ready.json")

  cat >"$d/infraaudit.toml" <<EOF
[aws]
endpoint_url = "$ep"
regions = ["${regions[0]}", "${regions[1]}"]
EOF
  env_common=(env -i PATH=/usr/bin:/bin HOME="$root/$d/home" AWS_ACCESS_KEY_ID=testing
    AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
    HTTP_PROXY="http://127.0.0.1:$sink_port" HTTPS_PROXY="http://127.0.0.1:$sink_port"
    http_proxy="http://127.0.0.1:$sink_port" https_proxy="http://127.0.0.1:$sink_port"
    NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost)
  mkdir -p "$d/home"

  for i in $(seq "$ia_runs"); do
    echo "bench-prowler: N=$n: infraaudit audit, run $i" >&2
    reset "$ep"
    rc=0
    "${env_common[@]}" /usr/bin/time -v -o "$d/infraaudit.$i.time" target/release/infraaudit audit \
      --config "$d/infraaudit.toml" --checks "$checks_ours" --format json \
      >"$d/infraaudit.$i.json" 2>"$d/infraaudit.$i.err" || rc=$?
    counts "$ep" >"$d/infraaudit.$i.counts.json"
    # 3: some check fails, which the seed makes sure of; anything else is an error.
    [ "$rc" -eq 3 ] || fail "infraaudit audit exited $rc: $(tail -5 "$d/infraaudit.$i.err")"
  done

  for i in $(seq "$pr_runs"); do
    echo "bench-prowler: N=$n: prowler aws, run $i" >&2
    reset "$ep"
    rc=0
    "${env_common[@]}" AWS_ENDPOINT_URL="$ep" /usr/bin/time -v -o "$d/prowler.$i.time" \
      .venv-prowler/bin/prowler aws --no-banner --no-color -f "${regions[@]}" \
      --checks "${checks_prowler[@]}" -M json-ocsf -o "$d" -F "prowler.$i" \
      >"$d/prowler.$i.out" 2>"$d/prowler.$i.err" || rc=$?
    counts "$ep" >"$d/prowler.$i.counts.json"
    [ "$rc" -eq 3 ] || fail "prowler exited $rc: $(tail -5 "$d/prowler.$i.err")"
  done

  .venv/bin/python bench/prowler_compare.py "$d/ready.json" "$d/infraaudit.1.json" \
    "$d/prowler.1.ocsf.json" >"$d/agreement.json" || keep=1

  kill "$emu_pid" 2>/dev/null || true
  wait "$emu_pid" 2>/dev/null || true
  emu_pid=""
done

.venv/bin/python bench/prowler_report.py "$out/runs" "$isolation" ${PROWLER_BENCH_NO_WRITE:+--no-write}
[ -z "$keep" ] || fail "findings differ without a documented rule: see $out/runs/*/agreement.json"
