"""AWS API cost per refresh (issue 7 point 3), counted at the emulator, not by the exporter.

Run by scripts/bench-api.sh with the emulator's venv. For each N, a fresh emulator
(tests/emulator/moto_emulator.py --count-requests --no-default-seed --users N --aws-like-report)
and the release daemon with only the IAM collector; the emulator's counts are taken (and zeroed
in the same step) when the daemon's first run ends (cold) and after each of the next runs
(warm). Then the IAM authorization collector (`iam_authz`, one paginated
GetAccountAuthorizationDetails per run, and ListServerCertificates) with the IAM collector's
ListVirtualMFADevices, at the same N. Then the whole account: IAM + S3 + EC2 in two regions.
Prints Markdown on stdout.

Each account lists the collectors it runs (`collectors = [...]`), so collectors on by default
(iam_authz, and any added later) stay out of the rows that do not name them.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("BENCH_API_BIN", REPO / "target/release/infraaudit"))
EMULATOR = REPO / "tests/emulator/moto_emulator.py"
BASE = "123456789012"
IAM_ACTIONS = [
    "GenerateCredentialReport",
    "GetCredentialReport",
    "ListAccessKeys",
    "GetAccountPasswordPolicy",
    "GetAccountSummary",
]
REPORT_ACTIONS = IAM_ACTIONS[:2]
AUTHZ_ACTIONS = ["GetAccountAuthorizationDetails", "ListServerCertificates"]
MFA_ACTION = "ListVirtualMFADevices"
# The items GetAccountAuthorizationDetails returns a page at most (AWS's MaxItems, which we ask).
MAX_ITEMS = 1000

# The emulator for the iam_authz rows: moto_emulator.py with the base account's root user's MFA
# on in the credential report (so that the IAM collector asks ListVirtualMFADevices whether it
# is virtual: no device is root's, the worst case, every page read) and an assigned virtual MFA
# device for every other synthetic user (the devices that call pages through).
MFA_EMULATOR = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import moto_emulator as e
mfa, key_age, password = e.DEMO_ROOTS[e.BASE_ACCOUNT]
e.DEMO_ROOTS[e.BASE_ACCOUNT] = (True, key_age, password)
seed_users = e.seed_users
def with_devices(now, n, mix):
    out = seed_users(now, n, mix)
    backend = e.iam_backends[e.BASE_ACCOUNT]["aws"]
    for i, name in enumerate(sorted(out)):
        if i % 2 == 0:
            device = backend.create_virtual_mfa_device(name + "-mfa", "/")
            backend.enable_mfa_device(name, device.serial_number, "123456", "654321")
    return out
e.seed_users = with_devices
e.main()
"""


def log(*a):
    print("bench-api:", *a, file=sys.stderr, flush=True)


def poll(timeout, what, f, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = f()
        if v is not None:
            return v
        time.sleep(every)
    raise SystemExit(f"bench-api: FAILED: no {what} within {timeout} s")


class Emulator:
    def __init__(self, *args, root_mfa=False):
        if root_mfa:
            program = ["-c", MFA_EMULATOR, str(EMULATOR.parent)]
        else:
            program = [str(EMULATOR)]
        self.p = subprocess.Popen(
            [sys.executable, *program, "--count-requests", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        line = self.p.stdout.readline()
        if not line:
            raise SystemExit("bench-api: FAILED: the emulator did not start")
        self.ready = json.loads(line)
        self.endpoint = self.ready["endpoint"]

    def items(self):
        """What GetAccountAuthorizationDetails lists with the collector's filter in the base
        account (users, groups, roles, customer-managed policies), from moto's own state."""
        url = self.endpoint + "/moto-api/data.json"
        iam = json.loads(urllib.request.urlopen(url, timeout=60).read())["iam"]
        classes = ("User", "Group", "Role", "ManagedPolicy")
        return sum(1 for c in classes for x in iam.get(c, []) if x.get("account_id") == BASE)

    def take(self):
        """The counts since the last take, zeroed in the same step."""
        req = urllib.request.Request(self.endpoint + "/_bench/reset", method="POST")
        return json.loads(urllib.request.urlopen(req, timeout=30).read())

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


class Daemon:
    def __init__(self, config, work):
        with socket_port() as port:
            self.url = f"http://127.0.0.1:{port}"
            path = Path(work) / "config.toml"
            path.write_text(config.replace("{listen}", f"127.0.0.1:{port}"))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "INFRAAUDIT_LOG": "warn",
        }
        self.log = open(Path(work) / "infraaudit.log", "wb")
        self.started = time.monotonic()
        self.p = subprocess.Popen(
            [str(BIN), "--config", str(path)], env=env, stdout=self.log, stderr=self.log
        )

    def metrics(self):
        try:
            return urllib.request.urlopen(self.url + "/metrics", timeout=10).read().decode()
        except OSError:
            if self.p.poll() is not None:
                raise SystemExit(f"bench-api: FAILED: the daemon exited ({self.log.name})")
            return None

    def collector(self, name, collector):
        """{collector: value} of one per-collector self-metric."""
        text = self.metrics() or ""
        pat = re.compile(r'^infraaudit_' + name + r'\{([^}]*)\} (\S+)$', re.M)
        out = {}
        for labels, value in pat.findall(text):
            m = re.search(r'collector="([^"]+)"', labels)
            if m and (collector is None or m.group(1) == collector):
                out[m.group(1)] = float(value)
        return out

    def close(self):
        self.p.terminate()
        self.p.wait(timeout=30)
        self.log.close()


class socket_port:
    def __enter__(self):
        import socket

        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *a):
        self.s.close()


def config(endpoint, collectors, interval, extra_iam=""):
    lines = [
        "[server]",
        'listen_address = "{listen}"',
        "[aws]",
        f'endpoint_url = "{endpoint}"',
    ]
    for c in collectors:
        lines += [f"[collectors.{c}]", f'interval = "{interval}"']
        if c == "iam" and extra_iam:
            lines += [extra_iam]
    lines += [
        "[[accounts]]",
        f'id = "{BASE}"',
        'name = "bench"',
        'regions = ["us-east-1", "eu-west-1"]',
        # Only these: a collector on by default and not named here does not run.
        "collectors = [" + ", ".join(f'"{c}"' for c in collectors) + "]",
    ]
    return "\n".join(lines) + "\n"


def wait_runs(daemon, collectors, after, timeout):
    """Waits until every collector's last success is newer than in `after`; returns the new
    timestamps, and fails on a failed run."""

    def done():
        ok = daemon.collector("collector_success", None)
        if any(ok.get(c) == 0 for c in collectors):
            raise SystemExit(f"bench-api: FAILED: a run failed: {ok} ({daemon.log.name})")
        last = daemon.collector("collector_last_success_timestamp_seconds", None)
        if all(last.get(c, 0) > after.get(c, 0) for c in collectors):
            return last
        return None

    return poll(timeout, f"new runs of {collectors}", done)


def by_action(counts, service):
    out = {}
    for c in counts["calls"]:
        if c["service"] == service:
            out[c["action"]] = out.get(c["action"], 0) + c["count"]
    return out


def iam_only(n, interval, warm_cycles, max_age=None):
    """(rows, users with keys, seed seconds) for one N: one row per cycle."""
    emu = Emulator("--no-default-seed", "--aws-like-report", "--users", str(n))
    users_with_keys = sum(1 for keys in emu.ready["accounts"][BASE].values() if keys)
    keys = sum(len(k) for k in emu.ready["accounts"][BASE].values())
    extra = f'report_max_age = "{max_age}"' if max_age is not None else ""
    rows = []
    with tempfile.TemporaryDirectory(prefix="infraaudit-bench-api-") as work:
        d = Daemon(config(emu.endpoint, ["iam"], interval, extra), work)
        try:
            last = wait_runs(d, ["iam"], {}, 600)
            wall = time.monotonic() - d.started
            for cycle in range(warm_cycles + 1):
                counts = emu.take()
                duration = d.collector("collector_duration_seconds", "iam").get("iam")
                rows.append(
                    {
                        "cycle": "cold" if cycle == 0 else f"warm {cycle}",
                        "actions": by_action(counts, "iam"),
                        "total": counts["total"],
                        "duration": duration,
                        "wall": wall if cycle == 0 else None,
                    }
                )
                if cycle < warm_cycles:
                    last = wait_runs(d, ["iam"], last, 600)
        finally:
            d.close()
    emu.close()
    return rows, users_with_keys, keys, emu.ready["seed_seconds"]


def authz(n, interval, warm_cycles, page_size=None):
    """The iam_authz collector with the IAM collector (for ListVirtualMFADevices): (rows, seed
    seconds, items, assigned virtual MFA devices), one row per cycle, a cycle being one run of
    each."""
    args = ["--no-default-seed", "--aws-like-report", "--users", str(n)]
    if page_size:
        args += ["--iam-page-size", str(page_size)]
    emu = Emulator(*args, root_mfa=True)
    items = emu.items()
    collectors = ["iam", "iam_authz"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="infraaudit-bench-api-") as work:
        d = Daemon(config(emu.endpoint, collectors, interval), work)
        try:
            last = wait_runs(d, collectors, {}, 600)
            for cycle in range(warm_cycles + 1):
                counts = emu.take()
                rows.append(
                    {
                        "cycle": "cold" if cycle == 0 else f"warm {cycle}",
                        "actions": by_action(counts, "iam"),
                        "duration": d.collector("collector_duration_seconds", "iam_authz").get(
                            "iam_authz"
                        ),
                    }
                )
                if cycle < warm_cycles:
                    last = wait_runs(d, collectors, last, 600)
        finally:
            d.close()
    emu.close()
    return rows, emu.ready["seed_seconds"], items, (n + 1) // 2


def whole_account(n, buckets, instances, interval):
    emu = Emulator(
        "--no-default-seed",
        "--aws-like-report",
        "--users",
        str(n),
        "--buckets",
        str(buckets),
        "--instances",
        str(instances),
        "--regions",
        "us-east-1,eu-west-1",
    )
    collectors = ["iam", "s3", "ec2"]
    out = []
    with tempfile.TemporaryDirectory(prefix="infraaudit-bench-api-") as work:
        d = Daemon(config(emu.endpoint, collectors, interval), work)
        try:
            last = wait_runs(d, collectors, {}, 600)
            out.append(("cold", emu.take(), d.collector("collector_duration_seconds", None)))
            last = wait_runs(d, collectors, last, 600)
            out.append(("warm", emu.take(), d.collector("collector_duration_seconds", None)))
        finally:
            d.close()
    emu.close()
    return out


def print_authz(sizes, interval):
    print("\n### IAM authorization collector (`iam_authz`) and root hardware MFA, one account\n")
    print(
        "The `iam_authz` and `iam` collectors on the same emulator, the N synthetic users and"
        " nothing else (no groups, roles, customer-managed policies or server certificates), the"
        " root user's MFA on in the credential report and no virtual device of root's (so"
        " ListVirtualMFADevices reads every page), an assigned virtual MFA device for every other"
        f" user. Counts at the emulator per cycle (one run of each collector). Target: one"
        f" GetAccountAuthorizationDetails per page of {MAX_ITEMS:,} items (MaxItems) ="
        f" ceil(items / {MAX_ITEMS:,}), the same warm as cold; ListVirtualMFADevices ="
        f" ceil(assigned devices / {MAX_ITEMS:,}).\n"
    )
    head = ["N users", "items", "assigned MFA devices", "cycle", "iam_authz seconds"]
    head += AUTHZ_ACTIONS + [MFA_ACTION, "target (the three)", "met"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    extra = os.environ.get("BENCH_API_PAGE_SIZE", "100")
    runs = [(n, None) for n in sizes]
    if extra:
        runs.append((int(os.environ.get("BENCH_API_ACCOUNT_USERS", "1000")), int(extra)))
    for n, page_size in runs:
        log(f"iam_authz, N={n}" + (f", --iam-page-size {page_size}" if page_size else ""))
        rows, seed, items, devices = authz(n, interval, 2, page_size)
        log(f"  seeded in {seed} s")
        page = min(MAX_ITEMS, page_size or MAX_ITEMS)
        # The emulator, as AWS, answers a last page that is exactly full with IsTruncated false.
        want = [-(-items // page), 1, max(1, -(-devices // MAX_ITEMS))]
        for r in rows:
            a = r["actions"]
            got = [a.get(x, 0) for x in AUTHZ_ACTIONS + [MFA_ACTION]]
            label = f"{n:,}" if page_size is None else f"{n:,}, **pages capped at {page_size}**"
            secs = f"{r['duration']:.2f}" if r["duration"] is not None else ""
            cells = [label, f"{items:,}", f"{devices:,}", r["cycle"], secs]
            cells += [str(x) for x in got]
            cells += [" / ".join(map(str, want)), "yes" if got == want else "**no**"]
            print("| " + " | ".join(cells) + " |", flush=True)
    if extra:
        print(
            f"\nThe last rows are an emulation, not AWS: `--iam-page-size {extra}` makes the"
            f" emulator answer at most {extra} items a page whatever MaxItems asks, as AWS may"
            " (it documents that a page can hold fewer items than MaxItems with IsTruncated"
            " true); the collector follows the Marker either way.\n"
        )


def main():
    sizes = [int(x) for x in os.environ.get("BENCH_API_USERS", "100,1000,5000").split(",")]
    interval = os.environ.get("BENCH_API_INTERVAL", "20s")
    print("### IAM collector alone, one account\n")
    print(
        "Counts at the emulator per cycle. Target: cold = 2 report calls + at most one"
        " ListAccessKeys per user with keys; warm = at most 2 report calls.\n"
    )
    head = ["N users", "users with keys (keys)", "cycle", "seconds"] + IAM_ACTIONS
    head += ["report calls", "all calls", "target", "met"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    summary = {}
    for n in sizes:
        log(f"IAM only, N={n}")
        rows, with_keys, keys, seed = iam_only(n, interval, 2)
        log(f"  seeded in {seed} s")
        for r in rows:
            a = r["actions"]
            report = sum(a.get(x, 0) for x in REPORT_ACTIONS)
            if r["cycle"] == "cold":
                target = f"2 + <= {with_keys}"
                met = report == 2 and a.get("ListAccessKeys", 0) <= with_keys
                secs = f"{r['duration']:.2f} (first success {r['wall']:.1f} s after start)"
            else:
                target = "<= 2"
                met = report <= 2
                secs = f"{r['duration']:.2f}"
            cells = [f"{n:,}", f"{with_keys:,} ({keys:,})", r["cycle"], secs]
            cells += [str(a.get(x, 0)) for x in IAM_ACTIONS]
            cells += [str(report), str(r["total"]), target, "yes" if met else "**no**"]
            print("| " + " | ".join(cells) + " |", flush=True)
            summary[(n, r["cycle"])] = r

    # Before the change, for the same emulator: report_max_age = 0 asks AWS every run.
    n0 = sizes[0]
    log(f"IAM only, N={n0}, report_max_age = 0s")
    rows, with_keys, keys, _ = iam_only(n0, interval, 1, max_age="0s")
    warm = rows[1]["actions"]
    print(
        f"\nWith `report_max_age = \"0s\"` (GenerateCredentialReport every run, the behaviour"
        f" before this setting), N={n0}, warm cycle: "
        + ", ".join(f"{x} {warm.get(x, 0)}" for x in IAM_ACTIONS if warm.get(x, 0))
        + f" = {rows[1]['total']} calls.\n"
    )

    print_authz(sizes, interval)

    n = int(os.environ.get("BENCH_API_ACCOUNT_USERS", "1000"))
    buckets = int(os.environ.get("BENCH_API_BUCKETS", "20"))
    instances = int(os.environ.get("BENCH_API_INSTANCES", "20"))
    log(f"whole account: {n} users, {buckets} buckets, {instances} instances, 2 regions")
    cycles = whole_account(n, buckets, instances, interval)
    print(
        f"### The whole account: IAM + S3 + EC2\n\n{n:,} users, {buckets} buckets and"
        f" {instances} instances over us-east-1 and eu-west-1; all three collectors; counts at the"
        " emulator per cycle (one run of each collector).\n"
    )
    print("| cycle | service | calls | by action | run seconds |")
    print("|---|---|---|---|---|")
    for name, counts, durations in cycles:
        for service in sorted(counts["by_service"]):
            actions = by_action(counts, service)
            detail = ", ".join(f"{k} {v}" for k, v in sorted(actions.items(), key=lambda kv: -kv[1]))
            collector = {"s3control": "s3"}.get(service, service)
            secs = durations.get(collector)
            secs = f"{secs:.2f}" if secs is not None else ""
            print(f"| {name} | {service} | {counts['by_service'][service]} | {detail} | {secs} |")
        print(f"| {name} | **all** | **{counts['total']}** | | |")


if __name__ == "__main__":
    main()
