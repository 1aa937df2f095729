"""Findings agreement between `infraaudit audit --format json` and Prowler's OCSF JSON.

Usage: python prowler_compare.py EMULATOR_READY_LINE INFRAAUDIT_JSON PROWLER_OCSF_JSON

Maps each tool's FAIL findings to (check, resource) pairs in one vocabulary, diffs them, and
explains every difference by one of the documented rules below, using the emulator's seed (its
ready line) as the truth about each resource. Prints a JSON report on stdout; exits 1 when any
difference is left unexplained, so a changed rule on either side is noticed.

Resources, in infraaudit's names unless said: IAM keys are `user/slotN` (Prowler names keys by
credential-report slot, infraaudit by key id; the emulator lists each user's keys in slot order,
as moto's report does), the root user `root`, users, policies and certificates by name, the
account `account`, principals `user/NAME`, `group/NAME`, `role/NAME`, buckets by name, instances
by id, regions by name, network ACLs and security groups `region/id`.

The truth about the CIS resources of issue 15 is what bench/prowler_emulator.py read back from
the emulator after seeding (resources[base account]["bench_cis"]); a rule explains a difference
only when that truth shows the situation the rule describes.
"""

import json
import re
import sys
from collections import defaultdict
from datetime import datetime

DAY = 86400

# Prowler check -> our check. Several of Prowler's may map to one of ours: the resource fails
# ours when it fails any of them.
PROWLER = {
    "iam_rotate_access_key_90_days": "iam_access_key_age",
    "iam_user_accesskey_unused": "iam_access_key_unused",
    "iam_root_mfa_enabled": "iam_root_mfa",
    "iam_no_root_access_key": "iam_root_access_key",
    "s3_bucket_public_access": "s3_public_access",
    "s3_bucket_default_encryption": "s3_encryption",
    "ec2_instance_imdsv2_enabled": "ec2_imdsv2",
    "ec2_instance_public_ip": "ec2_public_ip",
    # Issue 15: the CIS v3.0 controls both tools automate.
    "iam_root_hardware_mfa_enabled": "iam_root_hardware_mfa",
    "iam_avoid_root_usage": "iam_root_recent_use",
    "iam_user_console_access_unused": "iam_user_password_unused",
    "iam_user_no_setup_initial_access_key": "iam_user_initial_access_key",
    "iam_user_two_active_access_key": "iam_user_multiple_active_keys",
    "iam_policy_attached_only_to_group_or_roles": "iam_user_direct_policies",
    "iam_customer_attached_policy_no_administrative_privileges": "iam_policy_full_admin",
    "iam_support_role_created": "iam_support_role",
    "iam_no_expired_server_certificates_stored": "iam_server_certificate_expired",
    "iam_policy_cloudshell_admin_not_attached": "iam_cloudshell_full_access",
    "s3_bucket_secure_transport_policy": "s3_secure_transport",
    "s3_bucket_no_mfa_delete": "s3_mfa_delete",
    "ec2_ebs_default_encryption": "ec2_ebs_default_encryption",
    "ec2_networkacl_allow_ingress_tcp_port_22": "vpc_nacl_admin_ports_open",
    "ec2_networkacl_allow_ingress_tcp_port_3389": "vpc_nacl_admin_ports_open",
    # Prowler's port-22 and port-3389 checks report PASS for a group its all-ports check failed
    # ("not checked against the specific port"), so the three together are CIS 5.2 and 5.3.
    "ec2_securitygroup_allow_ingress_from_internet_to_all_ports": "ec2_security_group_admin_ports_open",
    "ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_22": "ec2_security_group_admin_ports_open",
    "ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_3389": "ec2_security_group_admin_ports_open",
    "ec2_securitygroup_default_restrict_traffic": "vpc_default_security_group_open",
}

# How each of our checks lines up with Prowler's: CIS v3.0 control, and how each tool names the
# resource when they differ (ours first). For the mapping table of the report.
NOTES = {
    "iam_access_key_age": ("1.14", "`user/AKIA...`; Prowler: user and report slot"),
    "iam_access_key_unused": ("1.12", "`user/AKIA...`; Prowler: user and report slot"),
    "iam_root_mfa": ("1.5", "`root`; Prowler: `<root_account>`"),
    "iam_root_access_key": ("1.4", "`root`; Prowler: `<root_account>`"),
    "s3_public_access": ("2.1.4", "bucket"),
    "s3_encryption": ("", "bucket"),
    "ec2_imdsv2": ("5.6", "`region/i-...`; Prowler: instance id"),
    "ec2_public_ip": ("", "`region/i-...`; Prowler: instance id"),
    "iam_root_hardware_mfa": ("1.6", "`root`; Prowler: `<root_account>`"),
    "iam_root_recent_use": ("1.7", "`root`; Prowler: `<root_account>`"),
    "iam_user_password_unused": ("1.12", "user"),
    "iam_user_initial_access_key": ("1.11", "`user/AKIA...`; Prowler: user, slot in the text"),
    "iam_user_multiple_active_keys": ("1.13", "user (Prowler: also `<root_account>`)"),
    "iam_user_direct_policies": ("1.15", "user; Prowler: one per `user/policy`"),
    "iam_policy_full_admin": ("1.16", "policy"),
    "iam_support_role": ("1.17", "`account`; Prowler: account id"),
    "iam_server_certificate_expired": ("1.19", "certificate name; Prowler: certificate id"),
    "iam_cloudshell_full_access": (
        "1.22",
        "`user/`, `group/`, `role/NAME`; Prowler: one finding per account listing them",
    ),
    "s3_secure_transport": ("2.1.1", "bucket"),
    "s3_mfa_delete": ("2.1.2", "bucket"),
    "ec2_ebs_default_encryption": ("2.2.1", "region; Prowler: account id, in the region"),
    "vpc_nacl_admin_ports_open": ("5.1", "`region/acl-...`; Prowler: ACL id, once per port"),
    "ec2_security_group_admin_ports_open": ("5.2, 5.3", "`region/sg-...`; Prowler: group id"),
    "vpc_default_security_group_open": ("5.4", "`region/sg-...`; Prowler: group id"),
}

# The rules that explain a difference; the keys appear in the report and in BENCHMARKS.md.
RULES = {
    "never_used": "iam_access_key_unused: infraaudit counts a never-used active key from its "
    "creation (docs/metrics.md, Checks); Prowler skips keys with no last-used date",
    "day_boundary": "Prowler compares whole days (`.days > 90`, `> 45`); infraaudit compares "
    "durations, so a key 90 days and some hours old, or a key or console password unused for 45 "
    "days and some hours, fails only in infraaudit",
    "root_key_in_user_checks": "Prowler's key-age, unused-key and two-active-keys checks also walk "
    "the `<root_account>` row; infraaudit's cover IAM users' keys and reports root keys under "
    "iam_root_access_key",
    "bucket_block_partial": "Prowler honours a bucket-level public access block only when both "
    "IgnorePublicAcls and RestrictPublicBuckets are set, and then reports the bucket not public "
    "whatever its ACL and policy; infraaudit applies each flag to what it neutralises "
    "(IgnorePublicAcls the ACL, RestrictPublicBuckets the policy), as S3 does",
    # Issue 15.
    "root_recent_window": "iam_root_recent_use: Prowler's iam_avoid_root_usage has a fixed window "
    "of one day counted in whole days (`1 >= .days`: it fails a root last used less than two days "
    "ago); infraaudit's is `[checks] root_max_recent_use`, 30 days by default",
    "root_recent_password_first": "iam_root_recent_use: Prowler dates the root user's last use by "
    "its password if the report has one, and by an access key only if not; infraaudit takes the "
    "latest of the password's and both keys' last use",
    "root_password_not_in_report": "Prowler's root MFA checks judge the root user only when its "
    "report row shows a password (`password_enabled` true, which AWS never writes for root: it "
    "writes not_supported) or an active key; infraaudit also judges a root whose only credential "
    "is its password (GetAccountSummary AccountPasswordPresent)",
    "root_virtual_mfa_by_substring": "iam_root_hardware_mfa: Prowler takes any virtual MFA device "
    "whose user ARN contains `root` for the root user's (an IAM user named `rootops` with one "
    "fails the root); infraaudit only a device assigned to `arn:aws:iam::ACCOUNT:root`",
    "password_never_used": "iam_user_password_unused: Prowler's iam_user_console_access_unused "
    "passes a console password that was never used; infraaudit fails it once the user is older "
    "than `access_key_max_unused` (45 days), as CIS 1.12 asks",
    "admin_broader_match": "iam_policy_full_admin: Prowler's check_admin_access also counts as "
    "full admin an Allow with NotAction and no Action (it allows everything else) and a statement "
    "on `*/*`, `*:*` or a NotResource; infraaudit only `\"Action\": \"*\"` on `\"Resource\": "
    "\"*\"` (CIS 1.16)",
    "admin_resource_list": "iam_policy_full_admin: Prowler reads a statement only when its "
    "Resource is exactly `*` or `[\"*\"]`; infraaudit also when `*` is one of several resources",
    "support_role_roles_only": "iam_support_role: Prowler's iam_support_role_created looks for "
    "AWSSupportAccess on roles only (ListEntitiesForPolicy EntityFilter=Role, CIS's audit "
    "command); infraaudit accepts a user, group or role with it",
    "tls_deny_action_subset": "s3_secure_transport: Prowler passes a bucket whose policy denies "
    "`aws:SecureTransport` false on any statement whose Action names `s3:PutObject`, `s3:*` or `*` "
    "(for a string Action, as a substring: `s3:Get*` counts), whatever its principal and "
    "resources; infraaudit requires the deny on every action (`s3:*` or `*`)",
    "sg_not_in_use": "Prowler's security-group checks (admin ports and default group) skip a group "
    "attached to no network interface, or in a VPC with none, unless run with "
    "--scan-unused-services; infraaudit judges every security group",
    "sg_all_ports_any_protocol": "ec2_security_group_admin_ports_open: Prowler's "
    "..._to_all_ports check, one of its three for CIS 5.2/5.3, fails a rule opening all 65,536 "
    "ports of any protocol (UDP included) to 0.0.0.0/0 or ::/0; infraaudit's rule is TCP 22 or "
    "3389 (protocol -1 included)",
    "nacl_region_without_sgs": "vpc_nacl_admin_ports_open: Prowler's network-ACL checks skip a "
    "region with no security group other than the default ones, unless run with "
    "--scan-unused-services; infraaudit judges every network ACL of every audited region",
    "ebs_region_without_volumes": "ec2_ebs_default_encryption: Prowler reports a region only if "
    "it has EBS volumes, unless run with --scan-unused-services; infraaudit reports every audited "
    "region",
}

ROOT_ROW = "<root_account>"


class Seed:
    """The emulator's ready line, indexed."""

    def __init__(self, path):
        with open(path) as f:
            ready = json.loads(f.readline())
        self.now = ready["now"]
        self.keys = {}  # (user, slot) -> key
        self.by_id = {}  # key id -> (user, slot)
        for users in ready["accounts"].values():
            for user, ks in users.items():
                for i, k in enumerate(ks):
                    self.keys[(user, i + 1)] = k
                    self.by_id[k["id"]] = (user, i + 1)
        self.buckets = {}
        self.cis = {}
        for r in ready["resources"].values():
            for b in r.get("buckets", []):
                self.buckets[b["name"]] = b
            self.cis.update(r.get("bench_cis", {}))
        self.report = {row["user"]: row for row in self.cis.get("credential_report", [])}


def report_time(value):
    """A credential-report date, or None for N/A, no_information, not_supported."""
    try:
        return datetime.fromisoformat(value).timestamp()
    except (TypeError, ValueError):
        return None


def infraaudit_fails(path, seed):
    with open(path) as f:
        doc = json.load(f)
    out = set()
    for f in doc["findings"]:
        if f["status"] != "FAIL":
            continue
        check, res = f["check"], f["resource"]
        if check not in PROWLER.values():
            continue
        if check.startswith("iam_access_key") or check == "iam_user_initial_access_key":
            user, key_id = res.split("/", 1)
            if key_id in seed.by_id:
                user, slot = seed.by_id[key_id]
                res = f"{user}/slot{slot}"
        elif check in ("ec2_imdsv2", "ec2_public_ip"):
            res = res.split("/", 1)[1]
        out.add((check, res))
    return out


def prowler_resources(event, check, f):
    """The resources (our names) of one Prowler FAIL finding."""
    r = f["resources"][0]
    meta = r.get("data", {}).get("metadata") or {}
    name, region = r.get("name", ""), r.get("region", "")
    if check.startswith("iam_access_key") or check == "iam_user_initial_access_key":
        slot = re.search(r"access key (\d)", f["status_detail"]).group(1)
        user = "root" if meta["user"] == ROOT_ROW else meta["user"]
        return [f"{user}/slot{slot}"]
    if check.startswith("iam_root"):
        return ["root"]
    if check == "iam_user_multiple_active_keys":
        return ["root" if name == ROOT_ROW else name]
    if check == "iam_user_direct_policies":
        return [name.split("/", 1)[0]]  # one finding per `user/policy`
    if check in ("iam_user_password_unused", "iam_policy_full_admin", "iam_server_certificate_expired"):
        return [meta.get("name") or name]  # a certificate's id is not unique on moto
    if check == "iam_support_role":
        return ["account"]
    if check == "iam_cloudshell_full_access":
        # One finding per account; its resource data lists the principals.
        return [
            f"{kind}/{p}"
            for kind, key in (("user", "Users"), ("group", "Groups"), ("role", "Roles"))
            for p in meta.get(key, [])
        ]
    if check.startswith("s3_"):
        return [meta["name"]]
    if check == "ec2_ebs_default_encryption":
        return [region]  # Prowler's resource id is the account
    if check in (
        "vpc_nacl_admin_ports_open",
        "ec2_security_group_admin_ports_open",
        "vpc_default_security_group_open",
    ):
        return [f"{region}/{meta.get('id') or name}"]
    return [meta["id"]]


def prowler_fails(path):
    with open(path) as f:
        doc = json.load(f)
    out = set()
    for f in doc:
        if f["status_code"] != "FAIL":
            continue
        event = f["metadata"]["event_code"]
        check = PROWLER.get(event)
        if check is None:
            continue
        for res in prowler_resources(event, check, f):
            out.add((check, res))
    return out


# --- Each side's reading of a policy, to tell which rule a difference comes from ---


def as_list(value):
    return value if isinstance(value, list) else [value]


def prowler_admin(document):
    """Prowler's check_admin_access (prowler/providers/aws/services/iam/lib/policy.py), without
    its check of NotAction service names."""
    allowed, allowed_not = set(), set()
    for s in as_list(document.get("Statement", [])):
        on_all = s.get("Resource") in ("*", ["*"], ["*/*"], "*/*", ["*:*"], "*:*") or (
            s.get("NotResource") and s.get("NotResource") not in ("*", ["*"])
        )
        if on_all and s.get("Effect") == "Allow":
            allowed.update(as_list(s.get("Action") or []))
            allowed_not.update(as_list(s.get("NotAction") or []))
    return "*" in allowed or (not allowed and bool(allowed_not))


def cis_admin(document):
    """CIS 1.16 as the issue states it: an Allow of "Action": "*" on "Resource": "*"."""
    return any(
        s.get("Effect") == "Allow"
        and "*" in as_list(s.get("Action", []))
        and "*" in as_list(s.get("Resource", []))
        for s in as_list(document.get("Statement", []))
    )


def prowler_tls(policy):
    """Prowler's s3_bucket_secure_transport_policy: some Deny statement with Bool
    aws:SecureTransport "false" whose Action contains s3:PutObject, * or s3:* (`in` on a string
    Action is a substring test)."""
    for s in as_list((policy or {}).get("Statement", [])):
        action = s.get("Action")
        if (
            s.get("Effect") == "Deny"
            and "Condition" in s
            and action
            and ("s3:PutObject" in action or "*" in action or "s3:*" in action)
            and s["Condition"].get("Bool", {}).get("aws:SecureTransport") == "false"
        ):
            return True
    return False


def cis_tls(policy):
    """CIS 2.1.1 as the issue states it: a deny of every action when aws:SecureTransport is
    false."""
    for s in as_list((policy or {}).get("Statement", [])):
        value = s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
        if (
            s.get("Effect") == "Deny"
            and str(value).lower() == "false"
            and ({"*", "s3:*"} & set(as_list(s.get("Action", []))))
        ):
            return True
    return False


def any_address(rule):
    return [r["CidrIp"] for r in rule.get("IpRanges", []) if r.get("CidrIp") == "0.0.0.0/0"] + [
        r["CidrIpv6"] for r in rule.get("Ipv6Ranges", []) if r.get("CidrIpv6") == "::/0"
    ]


def sg_in_use(seed, res):
    group = seed.cis.get("security_groups", {}).get(res)
    if group is None:
        return None
    region = res.split("/", 1)[0]
    return group["enis"] > 0 and f"{region}/{group['vpc']}" in seed.cis.get("vpcs_in_use", [])


def explain(check, res, only_in, seed):
    """The rule behind one difference, or None."""
    now, cis = seed.now, seed.cis
    if check.startswith("iam_access_key"):
        user, slot = res.rsplit("/slot", 1)
        if user == "root" and only_in == "prowler":
            return "root_key_in_user_checks"
        k = seed.keys.get((user, int(slot)))
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
        block = seed.buckets.get(res, {}).get("block", {})
        if block and not (block.get("IgnorePublicAcls") and block.get("RestrictPublicBuckets")):
            return "bucket_block_partial"
        return None

    root = seed.report.get(ROOT_ROW)
    if check in ("iam_root_mfa", "iam_root_hardware_mfa") and root:
        has_key = "true" in (root["access_key_1_active"], root["access_key_2_active"])
        if only_in == "infraaudit" and root["password_enabled"] != "true" and not has_key:
            return "root_password_not_in_report"
        if check == "iam_root_hardware_mfa" and only_in == "prowler":
            root_arn = re.compile(r"arn:aws:iam::\d+:root")
            if any(
                d["user_arn"] and "root" in d["user_arn"] and not root_arn.fullmatch(d["user_arn"])
                for d in cis.get("virtual_mfa", [])
            ):
                return "root_virtual_mfa_by_substring"
        return None
    if check == "iam_root_recent_use" and only_in == "infraaudit" and root:
        dates = [
            report_time(root[c])
            for c in ("password_last_used", "access_key_1_last_used_date", "access_key_2_last_used_date")
        ]
        used = [d for d in dates if d is not None]
        if not used or now - max(used) > 30 * DAY:
            return None
        first = next((d for d in dates if d is not None), None)  # Prowler: password, key 1, key 2
        if int((now - max(used)) // DAY) <= 1:
            return "root_recent_password_first" if int((now - first) // DAY) > 1 else None
        return "root_recent_window"
    if check == "iam_user_multiple_active_keys" and res == "root" and only_in == "prowler":
        if root and root["access_key_1_active"] == root["access_key_2_active"] == "true":
            return "root_key_in_user_checks"
        return None
    if check == "iam_user_password_unused" and only_in == "infraaudit":
        row, user = seed.report.get(res), cis.get("users", {}).get(res)
        if not row or not user or row["password_enabled"] != "true":
            return None
        last = report_time(row["password_last_used"])
        if last is None:
            return "password_never_used" if now - user["created"] > 45 * DAY else None
        return "day_boundary" if 45 < (now - last) / DAY < 46 else None
    if check == "iam_policy_full_admin":
        policy = cis.get("policies", {}).get(res)
        if not policy or not policy["attachments"]:
            return None
        ours, theirs = cis_admin(policy["document"]), prowler_admin(policy["document"])
        if only_in == "prowler" and theirs and not ours:
            return "admin_broader_match"
        if only_in == "infraaudit" and ours and not theirs:
            return "admin_resource_list"
        return None
    if check == "iam_support_role" and only_in == "prowler":
        support = cis.get("managed", {}).get("AWSSupportAccess", {})
        if not support.get("roles") and (support.get("users") or support.get("groups")):
            return "support_role_roles_only"
        return None
    if check == "s3_secure_transport" and only_in == "infraaudit":
        policy = cis.get("buckets", {}).get(res, {}).get("policy")
        return "tls_deny_action_subset" if prowler_tls(policy) and not cis_tls(policy) else None
    if check in ("ec2_security_group_admin_ports_open", "vpc_default_security_group_open"):
        if only_in == "infraaudit":
            return "sg_not_in_use" if sg_in_use(seed, res) is False else None
        group = cis.get("security_groups", {}).get(res)
        if check == "ec2_security_group_admin_ports_open" and group:
            for rule in group["ingress"]:
                if (
                    rule["IpProtocol"] not in ("tcp", "6", "-1")
                    and (rule.get("FromPort"), rule.get("ToPort")) == (0, 65535)
                    and any_address(rule)
                ):
                    return "sg_all_ports_any_protocol"
        return None
    if check == "vpc_nacl_admin_ports_open" and only_in == "infraaudit":
        region = res.split("/", 1)[0]
        if res in cis.get("network_acls", {}) and region not in cis.get("regions_with_sgs", []):
            return "nacl_region_without_sgs"
        return None
    if check == "ec2_ebs_default_encryption" and only_in == "infraaudit":
        if cis.get("ebs", {}).get(res, {}).get("volumes") == 0:
            return "ebs_region_without_volumes"
        return None
    return None


def main():
    ready, ours, theirs = sys.argv[1:4]
    seed = Seed(ready)
    a = infraaudit_fails(ours, seed)
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
                     "rule": explain(check, r, only_in, seed)}
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
                "differences": [d for d in diffs if d["rule"] is not None],
                "rules": RULES,
                "unexplained": unexplained,
            },
            indent=1,
        )
    )
    sys.exit(1 if unexplained else 0)


if __name__ == "__main__":
    main()
