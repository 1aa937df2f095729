"""Renders the "Side by side with Prowler" section of BENCHMARKS.md from scripts/bench-prowler.sh's runs.

Usage: python prowler_report.py RUNS_DIR ISOLATION [--no-write]

Reads, per N (RUNS_DIR/nN): /usr/bin/time -v outputs, the emulator's request counts and the
agreement report; quotes medians over the runs of each tool and ratios between them. Replaces
the section (from its heading to the next `## ` heading) in BENCHMARKS.md, or appends it.
"""

import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

HEADING = "## Side by side with Prowler"
ROOT = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True  # no bench/__pycache__ in the tree
from prowler_compare import NOTES, PROWLER  # noqa: E402


def mapping():
    """The table of our checks and Prowler's, from bench/prowler_compare.py's mapping."""
    theirs = {}
    for prowler, ours in PROWLER.items():
        theirs.setdefault(ours, []).append(f"`{prowler}`")
    rows = [
        "| our check | CIS v3.0 | Prowler's check(s) | resource (ours; Prowler's when it differs) |",
        "|---|---|---|---|",
    ]
    for ours, prowlers in theirs.items():
        cis, resource = NOTES[ours]
        rows.append(f"| `{ours}` | {cis} | {', '.join(prowlers)} | {resource} |")
    return rows


def time_v(path):
    text = Path(path).read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    user = float(re.search(r"User time \(seconds\): (\S+)", text).group(1))
    sys_ = float(re.search(r"System time \(seconds\): (\S+)", text).group(1))
    return {"wall": secs, "rss_mib": rss / 1024, "cpu": user + sys_}


def tool(d, name):
    runs = sorted(d.glob(f"{name}.*.time"), key=lambda p: int(p.name.split(".")[1]))
    times = [time_v(p) for p in runs]
    counts = [json.loads((d / f"{name}.{p.name.split('.')[1]}.counts.json").read_text()) for p in runs]
    return {
        "runs": len(runs),
        "wall": statistics.median(t["wall"] for t in times),
        "cpu": statistics.median(t["cpu"] for t in times),
        "rss_mib": statistics.median(t["rss_mib"] for t in times),
        "requests": statistics.median(c["total"] for c in counts),
        "errors": statistics.median(sum(x["errors"] for x in c["calls"]) for c in counts),
        "by_service": counts[0]["by_service"],
        "by_action": counts[0]["by_action"],
        "errors_by_action": sorted(
            ((f"{c['service']}:{c['action']}", c["errors"]) for c in counts[0]["calls"] if c["errors"]),
            key=lambda kv: -kv[1],
        ),
    }


def cmd(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, Python {platform.python_version()}"


def render(runs_dir, isolation):
    rows, agree, detail, verdicts, exercised = [], [], [], [], set()
    ns = sorted((p for p in runs_dir.iterdir() if p.is_dir()), key=lambda p: int(p.name[1:]))
    for d in ns:
        n = int(d.name[1:])
        ia, pr = tool(d, "infraaudit"), tool(d, "prowler")
        rows.append(
            f"| {n:,} | {ia['wall']:.2f} s | {pr['wall']:.1f} s | **{pr['wall'] / ia['wall']:.0f}x** "
            f"| {ia['requests']:,.0f} | {pr['requests']:,.0f} | **{pr['requests'] / ia['requests']:.1f}x** "
            f"| {ia['rss_mib']:.0f} MiB | {pr['rss_mib']:.0f} MiB | {pr['rss_mib'] / ia['rss_mib']:.0f}x "
            f"| {ia['cpu']:.2f} s | {pr['cpu']:.1f} s |"
        )
        errs = lambda t: ", ".join(f"{k} {v:,}" for k, v in t["errors_by_action"])  # noqa: E731
        wr, rr = pr["wall"] / ia["wall"], pr["requests"] / ia["requests"]
        verdicts.append(
            f"N = {n:,}: wall {wr:.0f}x ({'met' if wr >= 10 else 'NOT met'}), "
            f"requests {rr:.1f}x ({'met' if rr >= 5 else 'NOT met'})"
        )
        svc = lambda t: ", ".join(f"{k} {v:,}" for k, v in sorted(t["by_service"].items()))  # noqa: E731
        top = sorted(pr["by_action"].items(), key=lambda kv: -kv[1])[:8]
        detail.append(
            f"- N = {n:,}: infraaudit {svc(ia)}; Prowler {svc(pr)}. Prowler's largest: "
            + ", ".join(f"{k} {v:,}" for k, v in top)
            + f". infraaudit's calls: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(ia["by_action"].items(), key=lambda kv: -kv[1]))
            + f". Error responses (included above): infraaudit {ia['errors']:.0f} ({errs(ia)}), "
            + f"Prowler {pr['errors']:.0f} ({errs(pr)})."
        )
        a = json.loads((d / "agreement.json").read_text())
        for check, c in a["per_check"].items():
            agree.append(
                f"| {n:,} | `{check}` | {c['infraaudit_fail']} | {c['prowler_fail']} | {c['both']} "
                f"| {c['only_infraaudit']} | {c['only_prowler']} |"
            )
        for what, count in a["differences_by_rule"].items():
            cells = f"{count} |  |" if " only in infraaudit: " in what else f" | {count} |"
            agree.append(f"|  | {what} |  |  |  | {cells}")
        if a["unexplained"]:
            agree.append(f"|  | **UNEXPLAINED: {len(a['unexplained'])}** (see agreement.json) |  |  |  |  |  |")
        rules = a["rules"]
        exercised.update(what.rsplit(": ", 1)[1] for what in a["differences_by_rule"])
    sink = runs_dir / "sinkhole.jsonl"
    tried = sorted({json.loads(line)["target"] for line in sink.read_text().splitlines() if line})
    install = ROOT / ".venv-prowler/.install-seconds"
    install_s = f"{int(install.read_text()):,} s" if install.exists() else "not measured (installed before)"
    size = cmd("du", "-sh", str(ROOT / ".venv-prowler")).split("\t")[0]
    pkgs = len(cmd(str(ROOT / ".venv-prowler/bin/pip"), "list", "--format=freeze").splitlines())
    install_s += f", {pkgs} packages, {size}B on disk"
    # Not `prowler -v`, which asks api.github.com for the latest release.
    prowler_v = "Prowler " + cmd(
        str(ROOT / ".venv-prowler/bin/python"), "-c",
        "from prowler.config.config import prowler_version; print(prowler_version)",
    )
    moto_v = cmd(str(ROOT / ".venv/bin/python"), "-c", "import moto; print(moto.__version__)")
    ia_v = cmd(str(ROOT / "target/release/infraaudit"), "--version")
    first = next(iter(ns))
    ia_runs, pr_runs = tool(first, "infraaudit")["runs"], tool(first, "prowler")["runs"]
    iso = {
        "netns": "a network namespace with loopback only (`unshare -n`)",
        "proxy-only": "the host network (no namespace could be created), proxies set to the sinkhole",
    }[isolation]

    return "\n".join(
        [
            HEADING,
            "",
            "Command: `make bench-prowler` (scripts/bench-prowler.sh; `PROWLER_BENCH_USERS=\"100 1000\"` by default).",
            f"Run {cmd('date', '-u', '+%Y-%m-%d %H:%M UTC')} on {machine()}, a machine shared with other",
            "builds and tests at the time: absolute times are noise, the ratios measured side by side in one run",
            "are the figures to quote.",
            "",
            f"One account on the counting moto emulator (moto {moto_v}), bench/prowler_emulator.py: tests/emulator/",
            "moto_emulator.py seeded with `--no-default-seed --aws-like-report --users N --buckets 20 --instances 20",
            "--regions us-east-1,eu-west-1` (90% of users with one or two keys, ages 1 to 400 days, last used never",
            "/ 12 h / 60 d / 120 d ago; seven bucket cases; IMDSv1/v2, public IP or not, some stopped; a",
            "`<root_account>` row with one key, no MFA, last used 3 days ago), plus the CIS population of issue 15:",
            "a console password on every 10th user (last used never / 5 / 60 / 120 days ago), a customer policy",
            "attached to every 25th user and an inline one on every 25th; full-admin customer policies attached",
            "as `\"*\"` and as `[\"*\"]`, unattached, by NotAction, and in an old version only; AWSSupportAccess on",
            "a group only; AWSCloudShellFullAccess on a user, a group and a role; server certificates expired 30",
            "days and 2 hours ago and valid 2 hours and 300 days more; four buckets denying requests without TLS",
            "on `s3:*`, `*`, GetObject+PutObject or GetObject only, one with MFA Delete; EBS encryption by default",
            "on in eu-west-1 only; in us-east-1 nine security groups (22 or 3389 open by port, range, protocol -1",
            "and IPv6, harmless ones, UDP 0-65535, one attached to no network interface), seven network ACLs",
            "(denies before and after allows, IPv4 and IPv6, 1024-3388), a VPC whose default security group is",
            "emptied and in use and one left unused; eu-west-1 keeps its defaults only.",
            f"`{ia_v}`: `infraaudit audit --format json --checks {','.join(['iam_access_key_age', '...'])}` (release",
            f"build, zero-config: the ambient `testing` credentials, regions us-east-1 and eu-west-1), median of",
            f"{ia_runs} runs. {prowler_v} (PyPI, `.venv-prowler`, install {install_s}): `prowler aws -f us-east-1",
            f"eu-west-1 --checks <the {len(PROWLER)} checks of the table below> -M json-ocsf`, {pr_runs} run(s) per N, pointed at the emulator by",
            "`AWS_ENDPOINT_URL`. AWS requests are counted at the emulator, reset before each run. Both ran in",
            f"{iso}, with HTTP(S)_PROXY set to a sinkhole on 127.0.0.1 that logs and refuses",
            "anything not for loopback: "
            + ("Prowler tried " + ", ".join(f"`{t}`" for t in tried) + "." if tried else "neither tool tried to reach any other host."),
            "Nothing had to be disabled: in Prowler's code the one internet call on these paths is the",
            "version check of `prowler -v` (api.github.com), which the bench does not run. moto's error",
            "answers are listed below (organizations:DescribeAccount fails, as AWS does for an account outside",
            "an organization); where moto 5.2.5 answers unlike AWS (server certificates' expiry, MFA Delete,",
            "the two AWS-managed policies) tests/emulator/moto_emulator.py makes it answer as AWS does.",
            "",
            "The checks compared: each of ours with the Prowler check(s) testing the same CIS control the same",
            "way (bench/prowler_compare.py's mapping). A resource fails ours when it fails any of the Prowler",
            "checks on its row: Prowler's security-group port-22 and port-3389 checks report PASS for a group its",
            "all-ports check failed. Left out: `ec2_networkacl_allow_ingress_any_port` (Prowler's CIS 5.1 list has",
            "it; it fails a network ACL allowing every port, which is no admin-port rule: an ACL denying 22 and",
            "3389 before allowing the rest fails it and passes CIS's audit), `ec2_ebs_volume_encryption` (Prowler's",
            "CIS 3.0 file maps 2.2.1 to it; it judges volumes, the control's audit reads the default setting as",
            "`ec2_ebs_default_encryption` does). Prowler's CIS 3.0 file lists no check for 1.22 (Manual); its 4.0",
            "file maps it to `iam_policy_cloudshell_admin_not_attached`.",
            "",
            *mapping(),
            "",
            "| users | wall infraaudit | wall Prowler | wall ratio | requests infraaudit | requests Prowler | requests ratio | peak RSS infraaudit | peak RSS Prowler | RSS ratio | CPU infraaudit | CPU Prowler |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Targets: at least 10x less wall time and at least 5x fewer AWS requests. " + "; ".join(verdicts) + ".",
            "Where the requests go (Prowler builds its whole IAM, S3, EC2 and VPC inventory whatever the checks: per user ListAccessKeys,",
            "GetLoginProfile, ListMFADevices, policies, tags, GenerateServiceLastAccessedDetails; per bucket a",
            "dozen Get* calls):",
            "",
            *detail,
            "",
            "Error responses are AWS's answers for configuration that is absent (no bucket policy, public",
            "access block or encryption; no login profile; not in an organization); they are requests all",
            "the same.",
            "",
            "moto ships ~1,300 default AMIs and reports their snapshots as the account's own, so Prowler",
            "would call DescribeSnapshotAttribute once per snapshot (2,592 calls in a trial at N = 100); a fresh AWS",
            "account has none, so the bench loads one AMI (`MOTO_AMIS_PATH=bench/prowler_amis.json`).",
            "",
            "### Findings agreement",
            "",
            "FAIL findings of each tool mapped to (check, resource) by bench/prowler_compare.py (keys as",
            "user and credential-report slot, the rest as in the table above) and diffed; every difference is",
            "attributed to a rule, checked against what the emulator holds (bench/prowler_emulator.py reads",
            "it back after seeding), and the bench fails on any it cannot attribute.",
            "",
            "| users | check | FAIL infraaudit | FAIL Prowler | both | only infraaudit | only Prowler |",
            "|---|---|---|---|---|---|---|",
            *agree,
            "",
            "The rules behind the differences:",
            "",
            *[f"- `{k}`: {v}." for k, v in rules.items() if k in exercised],
            "",
            "Documented from the two codes, not exercised by this seed (bench/prowler_compare.py applies them",
            "when the emulator holds the situation):",
            "",
            *[f"- `{k}`: {v}." for k, v in rules.items() if k not in exercised],
            "",
            "Also not exercised, by the same reading: Prowler honours an account-level block only with both",
            "IgnorePublicAcls and RestrictPublicBuckets (infraaudit flag by flag, as above); without a",
            "`<root_account>` row in the credential report (moto's own report has none, hence",
            "`--aws-like-report`) Prowler's root checks emit nothing while infraaudit reports no verdict for",
            "them (its stderr says which checks got none and why): neither says PASS; and where a call is",
            "denied, Prowler still judges (a bucket whose versioning or policy it could not read fails",
            "s3_bucket_no_mfa_delete and s3_bucket_secure_transport_policy) while infraaudit leaves that",
            "check's series absent: unknown, not FAIL.",
            "",
        ]
    )


def main():
    runs_dir, isolation = Path(sys.argv[1]), sys.argv[2]
    section = render(runs_dir, isolation)
    print(section)
    if "--no-write" in sys.argv:
        return
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(HEADING + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + ("\n" + text[nxt + 1 :] if nxt >= 0 else "")
    path.write_text(text)


if __name__ == "__main__":
    main()
