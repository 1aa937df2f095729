"""Findings agreement between `infraaudit audit --format json` and Prowler's OCSF JSON.

Usage: python prowler_compare.py EMULATOR_READY_LINE INFRAAUDIT_JSON PROWLER_OCSF_JSON

Maps each tool's FAIL findings to (check, resource) pairs in one vocabulary, diffs them, and
explains every difference by one of the documented rules below, using the emulator's seed (its
ready line) as the truth about each resource. Prints a JSON report on stdout; exits 1 when any
difference is left unexplained, so a changed rule on either side is noticed.

Resources: IAM keys are `user/slotN` (Prowler names keys by credential-report slot, infraaudit by
key id; the emulator lists each user's keys in slot order, as moto's report does), the root user
`root`, buckets by name, instances by id.
"""

import json
import re
import sys
from collections import defaultdict

DAY = 86400

# Prowler check -> our check
PROWLER = {
    "iam_rotate_access_key_90_days": "iam_access_key_age",
    "iam_user_accesskey_unused": "iam_access_key_unused",
    "iam_root_mfa_enabled": "iam_root_mfa",
    "iam_no_root_access_key": "iam_root_access_key",
    "s3_bucket_public_access": "s3_public_access",
    "s3_bucket_default_encryption": "s3_encryption",
    "ec2_instance_imdsv2_enabled": "ec2_imdsv2",
    "ec2_instance_public_ip": "ec2_public_ip",
}

# The rules that explain a difference; the keys appear in the report and in BENCHMARKS.md.
RULES = {
    "never_used": "iam_access_key_unused: infraaudit counts a never-used active key from its "
    "creation (docs/metrics.md, Checks); Prowler skips keys with no last-used date",
    "day_boundary": "Prowler compares whole days (`.days > 90`, `> 45`); infraaudit compares "
    "durations, so a key 90 days and some hours old fails only in infraaudit",
    "root_key_in_user_checks": "Prowler's key-age and unused-key checks also walk the "
    "`<root_account>` row; infraaudit's cover IAM users' keys and reports root keys under "
    "iam_root_access_key",
    "bucket_block_partial": "Prowler honours a bucket-level public access block only when both "
    "IgnorePublicAcls and RestrictPublicBuckets are set, and then reports the bucket not public whatever its ACL and policy; "
    "infraaudit applies each flag to what it neutralises (IgnorePublicAcls the ACL, "
    "RestrictPublicBuckets the policy), as S3 does",
}


def load_seed(path):
    with open(path) as f:
        ready = json.loads(f.readline())
    now = ready["now"]
    keys = {}  # (user, slot) -> key; id -> (user, slot)
    by_id = {}
    for users in ready["accounts"].values():
        for user, ks in users.items():
            for i, k in enumerate(ks):
                keys[(user, i + 1)] = k
                by_id[k["id"]] = (user, i + 1)
    buckets = {}
    for r in ready["resources"].values():
        for b in r.get("buckets", []):
            buckets[b["name"]] = b
    return now, keys, by_id, buckets


def infraaudit_fails(path, by_id):
    with open(path) as f:
        doc = json.load(f)
    out = set()
    for f in doc["findings"]:
        if f["status"] != "FAIL":
            continue
        check, res = f["check"], f["resource"]
        if check not in PROWLER.values():
            continue
        if check.startswith("iam_access_key"):
            user, slot = by_id[res.split("/", 1)[1]]
            res = f"{user}/slot{slot}"
        elif check.startswith("ec2_"):
            res = res.split("/", 1)[1]
        out.add((check, res))
    return out


def prowler_fails(path):
    with open(path) as f:
        doc = json.load(f)
    out = set()
    for f in doc:
        if f["status_code"] != "FAIL":
            continue
        check = PROWLER.get(f["metadata"]["event_code"])
        if check is None:
            continue
        meta = f["resources"][0]["data"]["metadata"]
        if check.startswith("iam_access_key"):
            slot = re.search(r"access key (\d)", f["status_detail"]).group(1)
            user = "root" if meta["user"] == "<root_account>" else meta["user"]
            res = f"{user}/slot{slot}"
        elif check.startswith("iam_root"):
            res = "root"
        elif check.startswith("s3_"):
            res = meta["name"]
        else:
            res = meta["id"]
        out.add((check, res))
    return out


def explain(check, res, only_in, now, keys, buckets):
    """The rule behind one difference, or None."""
    if check.startswith("iam_access_key"):
        user, slot = res.rsplit("/slot", 1)
        if user == "root" and only_in == "prowler":
            return "root_key_in_user_checks"
        k = keys.get((user, int(slot)))
        if k is None:
            return None
        if check == "iam_access_key_unused" and only_in == "infraaudit" and k["last_used"] is None:
            return "never_used"
        since = k["created"] if check == "iam_access_key_age" else (k["last_used"] or k["created"])
        limit = 90 if check == "iam_access_key_age" else 45
        days = (now - since) / DAY
        if only_in == "infraaudit" and limit < days < limit + 1:
            return "day_boundary"
        return None
    if check == "s3_public_access" and only_in == "prowler":
        block = buckets.get(res, {}).get("block", {})
        if block and not (block.get("IgnorePublicAcls") and block.get("RestrictPublicBuckets")):
            return "bucket_block_partial"
    return None


def main():
    seed, ours, theirs = sys.argv[1:4]
    now, keys, by_id, buckets = load_seed(seed)
    a = infraaudit_fails(ours, by_id)
    b = prowler_fails(theirs)
    per_check = {}
    diffs = []
    for check in sorted(set(PROWLER.values())):
        ia = {r for c, r in a if c == check}
        pr = {r for c, r in b if c == check}
        per_check[check] = {
            "infraaudit_fail": len(ia),
            "prowler_fail": len(pr),
            "both": len(ia & pr),
            "only_infraaudit": len(ia - pr),
            "only_prowler": len(pr - ia),
        }
        for only_in, rs in (("infraaudit", ia - pr), ("prowler", pr - ia)):
            for r in sorted(rs):
                diffs.append(
                    {"check": check, "resource": r, "only_in": only_in,
                     "rule": explain(check, r, only_in, now, keys, buckets)}
                )
    by_rule = defaultdict(int)
    for d in diffs:
        by_rule[f"{d['check']} only in {d['only_in']}: {d['rule']}"] += 1
    unexplained = [d for d in diffs if d["rule"] is None]
    print(
        json.dumps(
            {
                "per_check": per_check,
                "differences_by_rule": dict(sorted(by_rule.items())),
                "rules": RULES,
                "unexplained": unexplained,
            },
            indent=1,
        )
    )
    sys.exit(1 if unexplained else 0)


if __name__ == "__main__":
    main()
