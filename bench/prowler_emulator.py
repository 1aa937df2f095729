"""The emulator of `make bench-prowler`: tests/emulator/moto_emulator.py (same flags, same ready
line), with the CIS population of issue 15 added to the base account, scaled with --users.

Usage: python prowler_emulator.py [moto_emulator.py's flags]

moto_emulator.py seeds the synthetic users, buckets and instances (`--no-default-seed --users N
--buckets B --instances I --regions r1,r2`) and patches what moto answers unlike AWS (server
certificate expiry, MFA Delete: its patch_moto_gaps). Of it, this uses only BASE_ACCOUNT,
seed_resources (wrapped) and main, so that its scenario can change under it. This adds, before
the ready line is printed
and the request counter is reset (so none of it is counted), resources for each check of issue 15
that Prowler also has, in both outcomes where one account allows it:

- IAM: console passwords on every 10th synthetic user (last used never / 5 / 60 / 120 days ago),
  a customer policy attached to every 25th and an inline policy on every 25th (offset), two
  users, three groups and three roles with full-admin (by "*", ["*"], NotAction, an old
  version, unattached) and harmless customer policies, AWSSupportAccess (on a group only) and
  AWSCloudShellFullAccess (user, group, role), four server certificates (expired 30 days and 2
  hours ago, valid 2 hours and 300 days more).
- S3: four buckets whose policies deny requests without TLS on all actions ("s3:*", "*") or on
  some, one with MFA Delete enabled and one versioned without it.
- EBS: encryption by default on in every region but the first.
- VPC, first region only (the others keep their defaults): security groups opening 22 or 3389 by
  port, range, protocol -1 and IPv6, harmless ones, a UDP all-ports one and an unused one; network
  ACLs whose deny rules come before or after their allows, over IPv4 and IPv6; a VPC whose default
  security group is emptied and in use, and one left as created and unused.

Then it reads back, through the API, what both tools judge (credential report, users' direct
policies, customer policies' default versions, the entities of the two AWS-managed policies,
server certificates, bucket policies and versioning, EBS settings and volumes, security groups,
network ACLs, network interfaces) and puts it in the ready line under
resources[base account]["bench_cis"]: bench/prowler_compare.py takes it as the truth when it
explains a difference, so whatever moto_emulator.py seeds besides is judged from the same facts.
"""

import argparse
import csv
import io
import json
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "emulator"))
sys.dont_write_bytecode = True  # no tests/emulator/__pycache__ in the tree
import moto_emulator as emu  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402

BASE = emu.BASE_ACCOUNT
SUPPORT = "AWSSupportAccess"
CLOUDSHELL = "AWSCloudShellFullAccess"
MANAGED = {name: f"arn:aws:iam::aws:policy/{name}" for name in (SUPPORT, CLOUDSHELL)}

# Every 10th synthetic user has a console password, last used this many days ago, cycling.
PASSWORD_USED_DAYS = [None, 5, 60, 120]

ADMIN = {"Effect": "Allow", "Action": "*", "Resource": "*"}
READ_S3 = {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "*"}

# Customer-managed policies: name -> (statements, attached to (kind, name) or None).
POLICIES = {
    # "Action": "*" on "Resource": "*", attached: fails both tools.
    "cis-admin-star": ([ADMIN], ("group", "cis-admins")),
    # The same as one-element lists.
    "cis-admin-list": (
        [{"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}],
        ("role", "cis-admin-role"),
    ),
    # Full admin, attached to nobody: passes both.
    "cis-admin-unattached": ([ADMIN], None),
    # Everything but IAM and Organizations: not "Action": "*", but Prowler's NotAction reading.
    "cis-admin-notaction": (
        [{"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}],
        ("role", "cis-notaction-role"),
    ),
    # Reads of S3 only: passes both.
    "cis-bench-readonly": ([READ_S3], ("group", "cis-admins")),
}
# Full admin in v1, S3 reads in v2 (the default): both tools read the default version only.
OLD_VERSION_POLICY = "cis-admin-old-version"

# Buckets: name -> (actions the TLS deny covers or None, MFADelete or None for never versioned).
TLS_BUCKETS = {
    "cis-bench-tls-all": ("s3:*", "Enabled"),
    "cis-bench-tls-star": ("*", None),
    "cis-bench-tls-get-put": (["s3:GetObject", "s3:PutObject"], "Disabled"),
    "cis-bench-tls-get": (["s3:GetObject"], None),
}

ANY4, ANY6 = "0.0.0.0/0", "::/0"


def perm(protocol, cidr, ports=None):
    p = {"IpProtocol": protocol}
    if ports:
        p["FromPort"], p["ToPort"] = ports
    if ":" in cidr:
        p["Ipv6Ranges"] = [{"CidrIpv6": cidr}]
    else:
        p["IpRanges"] = [{"CidrIp": cidr}]
    return p


# Security groups in the first region's default VPC: name -> (ingress, attached to an ENI).
SECURITY_GROUPS = {
    "cis-sg-ssh-world": ([perm("tcp", ANY4, (22, 22))], True),
    "cis-sg-rdp-ipv6": ([perm("tcp", ANY6, (3389, 3389))], True),
    "cis-sg-all-ipv6": ([perm("-1", ANY6)], True),
    "cis-sg-tcp-all-ipv6": ([perm("tcp", ANY6, (0, 65535))], True),
    "cis-sg-range-rdp": ([perm("tcp", ANY4, (3000, 4000))], True),
    "cis-sg-ssh-private": ([perm("tcp", "10.0.0.0/8", (22, 22))], True),
    "cis-sg-https": ([perm("tcp", ANY4, (443, 443)), perm("tcp", ANY6, (443, 443))], True),
    "cis-sg-udp-all": ([perm("udp", ANY4, (0, 65535))], True),
    "cis-sg-ssh-unused": ([perm("tcp", ANY4, (22, 22))], False),
}

# Network ACLs in the first region's default VPC: name -> ingress entries
# (number, action, protocol, cidr, (from, to) or None).
NETWORK_ACLS = {
    "cis-acl-ssh-world": [(100, "allow", "6", ANY4, (22, 22))],
    # The acceptance case: lower-numbered denies hide the later allow of everything.
    "cis-acl-deny-first": [
        (90, "deny", "6", ANY4, (22, 22)),
        (91, "deny", "6", ANY4, (3389, 3389)),
        (92, "deny", "6", ANY6, (22, 22)),
        (93, "deny", "6", ANY6, (3389, 3389)),
        (100, "allow", "-1", ANY4, None),
        (101, "allow", "-1", ANY6, None),
    ],
    "cis-acl-allow-first": [(90, "allow", "6", ANY4, (22, 22)), (100, "deny", "-1", ANY4, None)],
    "cis-acl-rdp-ipv6": [(100, "allow", "6", ANY6, (3389, 3389))],
    "cis-acl-ipv6-deny-first": [(90, "deny", "-1", ANY6, None), (100, "allow", "-1", ANY6, None)],
    "cis-acl-ssh-private": [(100, "allow", "6", "10.0.0.0/8", (22, 22))],
    "cis-acl-below-rdp": [(100, "allow", "6", ANY4, (1024, 3388))],
}


def doc(statements):
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def ts(value):
    """A datetime from boto3 (or None) as epoch seconds."""
    return value.timestamp() if value is not None else None


def client_factory(endpoint):
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    return lambda service, region="us-east-1": boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def naive_utc(dt):
    # moto keeps naive UTC datetimes.
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


def add_managed_policies():
    """AWSSupportAccess and AWSCloudShellFullAccess, which moto loads only with all 1,500
    AWS-managed policies (MOTO_IAM_LOAD_MANAGED_POLICIES); idempotent, so moto_emulator.py may
    have added them too."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy

    data = json.loads(aws_managed_policies_data)
    backend = iam_backends[BASE]["aws"]
    for name in MANAGED:
        policy = AWSManagedPolicy.from_data(name, BASE, "us-east-1", data[name])
        if policy.arn not in backend.managed_policies:
            backend.aws_managed_policies.append(policy)
            backend.managed_policies[policy.arn] = policy


def self_signed(name, not_before, not_after):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.example.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, private


def seed_iam(client, now):
    add_managed_policies()
    backend = iam_backends[BASE]["aws"]
    iam = client("iam")
    arns = {}
    for name, (statements, _) in POLICIES.items():
        created = iam.create_policy(PolicyName=name, PolicyDocument=doc(statements))
        arns[name] = created["Policy"]["Arn"]
    old = iam.create_policy(PolicyName=OLD_VERSION_POLICY, PolicyDocument=doc([ADMIN]))
    old = old["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=old, PolicyDocument=doc([READ_S3]), SetAsDefault=True)

    ec2 = {"Service": "ec2.amazonaws.com"}
    trust = doc([{"Effect": "Allow", "Principal": ec2, "Action": "sts:AssumeRole"}])
    for group in ("cis-admins", "cis-support", "cis-shell"):
        iam.create_group(GroupName=group)
    for role in ("cis-admin-role", "cis-notaction-role", "cis-shell-role"):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    for user in ("cis-shell-user", "cis-new-console"):
        iam.create_user(UserName=user)
    # Created now, with a password never used: younger than the unused limit.
    iam.create_login_profile(UserName="cis-new-console", Password="Correct-Horse-1")

    attach = {
        "user": lambda name, arn: iam.attach_user_policy(UserName=name, PolicyArn=arn),
        "group": lambda name, arn: iam.attach_group_policy(GroupName=name, PolicyArn=arn),
        "role": lambda name, arn: iam.attach_role_policy(RoleName=name, PolicyArn=arn),
    }
    for name, (_, target) in POLICIES.items():
        if target:
            attach[target[0]](target[1], arns[name])
    attach["group"]("cis-admins", old)
    # AWSSupportAccess on a group only: a support role by our rule, not by Prowler's (roles).
    attach["group"]("cis-support", MANAGED[SUPPORT])
    shell = (("user", "cis-shell-user"), ("group", "cis-shell"), ("role", "cis-shell-role"))
    for kind, name in shell:
        attach[kind](name, MANAGED[CLOUDSHELL])

    # The synthetic users: console passwords and direct policies on a fixed share of them.
    for name in sorted(backend.users):
        m = re.fullmatch(r"user-(\d+)", name)
        if not m:
            continue
        i = int(m.group(1))
        if i % 10 == 0:
            iam.create_login_profile(UserName=name, Password="Correct-Horse-1")
            days = PASSWORD_USED_DAYS[(i // 10) % len(PASSWORD_USED_DAYS)]
            if days is not None:
                # Whole seconds, as AWS reports it (and as Prowler parses it).
                used = (now - timedelta(days=days)).replace(microsecond=0)
                backend.users[name].password_last_used = naive_utc(used)
        if i % 25 == 5:
            iam.attach_user_policy(UserName=name, PolicyArn=arns["cis-bench-readonly"])
        elif i % 25 == 15:
            iam.put_user_policy(
                UserName=name, PolicyName="cis-bench-inline", PolicyDocument=doc([READ_S3])
            )

    for name, before, after in (
        ("cis-cert-expired", -400, -30),
        ("cis-cert-expired-hours", -400, -2 / 24),
        ("cis-cert-valid-hours", -400, 2 / 24),
        ("cis-cert-valid", -30, 300),
    ):
        body, key = self_signed(name, now + timedelta(days=before), now + timedelta(days=after))
        iam.upload_server_certificate(
            ServerCertificateName=name, CertificateBody=body, PrivateKey=key
        )


def seed_s3(client, regions):
    out = []
    for i, (name, (actions, mfa_delete)) in enumerate(TLS_BUCKETS.items()):
        region = regions[i % len(regions)]
        s3 = client("s3", region)
        kwargs = {"Bucket": name}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        statement = {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": actions,
            "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
        s3.put_bucket_policy(Bucket=name, Policy=doc([statement]))
        if mfa_delete:
            s3.put_bucket_versioning(
                Bucket=name,
                MFA=f"arn:aws:iam::{BASE}:mfa/root-account-mfa-device 123456",
                VersioningConfiguration={"Status": "Enabled", "MFADelete": mfa_delete},
            )
        out.append({"name": name, "region": region, "public": False})
    return out


def seed_ec2(client, regions):
    for region in regions[1:]:
        client("ec2", region).enable_ebs_encryption_by_default()

    region = regions[0]
    ec2 = client("ec2", region)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    vpc = vpc["VpcId"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]
    subnet = subnet["SubnetId"]

    def tag(resource, name):
        ec2.create_tags(Resources=[resource], Tags=[{"Key": "Name", "Value": name}])

    for name, (ingress, used) in SECURITY_GROUPS.items():
        group = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=ingress)
        if used:
            ec2.create_network_interface(SubnetId=subnet, Groups=[group], Description=name)

    for name, entries in NETWORK_ACLS.items():
        acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
        tag(acl, name)
        for number, action, protocol, cidr, ports in entries:
            entry = {
                "NetworkAclId": acl,
                "RuleNumber": number,
                "Protocol": protocol,
                "RuleAction": action,
                "Egress": False,
                ("Ipv6CidrBlock" if ":" in cidr else "CidrBlock"): cidr,
            }
            if ports:
                entry["PortRange"] = {"From": ports[0], "To": ports[1]}
            ec2.create_network_acl_entry(**entry)

    for name, cidr, locked in (
        ("cis-vpc-locked", "10.20.0.0/16", True),
        ("cis-vpc-idle", "10.30.0.0/16", False),
    ):
        new = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        tag(new, name)
        if not locked:
            continue
        filters = [
            {"Name": "vpc-id", "Values": [new]},
            {"Name": "group-name", "Values": ["default"]},
        ]
        default = ec2.describe_security_groups(Filters=filters)["SecurityGroups"][0]
        group = default["GroupId"]
        if default["IpPermissions"]:
            ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=default["IpPermissions"])
        if default["IpPermissionsEgress"]:
            ec2.revoke_security_group_egress(
                GroupId=group, IpPermissions=default["IpPermissionsEgress"]
            )
        sub = ec2.create_subnet(VpcId=new, CidrBlock=cidr.replace(".0.0/16", ".1.0/24"))
        ec2.create_network_interface(
            SubnetId=sub["Subnet"]["SubnetId"], Groups=[group], Description=name
        )


def pages(client, operation, key, **kwargs):
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page[key]


def read_truth(client, regions):
    """What both tools judge, as the API answers it after seeding."""
    iam = client("iam")
    iam.generate_credential_report()
    for _ in range(50):
        try:
            report = iam.get_credential_report()["Content"].decode()
            break
        except ClientError:
            time.sleep(0.1)
    keep = (
        "user", "user_creation_time", "password_enabled", "password_last_used", "mfa_active",
        "access_key_1_active", "access_key_1_last_used_date",
        "access_key_2_active", "access_key_2_last_used_date",
    )
    rows = [{k: row[k] for k in keep} for row in csv.DictReader(io.StringIO(report))]

    users = {
        u["UserName"]: {
            "created": ts(u["CreateDate"]),
            "password_last_used": ts(u.get("PasswordLastUsed")),
        }
        for u in pages(iam, "list_users", "Users")
    }
    direct = {}
    details = pages(iam, "get_account_authorization_details", "UserDetailList", Filter=["User"])
    for u in details:
        attached = [p["PolicyArn"] for p in u.get("AttachedManagedPolicies", [])]
        inline = [p["PolicyName"] for p in u.get("UserPolicyList", [])]
        if attached or inline:
            direct[u["UserName"]] = {"attached": attached, "inline": inline}

    policies = {}
    for p in pages(iam, "list_policies", "Policies", Scope="Local"):
        version = iam.get_policy_version(PolicyArn=p["Arn"], VersionId=p["DefaultVersionId"])
        document = version["PolicyVersion"]["Document"]
        if isinstance(document, str):
            document = json.loads(document)
        policies[p["PolicyName"]] = {"attachments": p["AttachmentCount"], "document": document}

    managed = {}
    for name, arn in MANAGED.items():
        entities = {"users": [], "groups": [], "roles": []}
        for page in iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn):
            entities["users"] += [x["UserName"] for x in page["PolicyUsers"]]
            entities["groups"] += [x["GroupName"] for x in page["PolicyGroups"]]
            entities["roles"] += [x["RoleName"] for x in page["PolicyRoles"]]
        managed[name] = entities

    certificates = {
        c["ServerCertificateName"]: ts(c["Expiration"])
        for c in iam.list_server_certificates()["ServerCertificateMetadataList"]
    }
    virtual_mfa = [
        {"serial": d["SerialNumber"], "user_arn": d.get("User", {}).get("Arn")}
        for d in pages(iam, "list_virtual_mfa_devices", "VirtualMFADevices")
    ]

    buckets = {}
    s3 = client("s3")
    for b in s3.list_buckets()["Buckets"]:
        name = b["Name"]
        try:
            policy = json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])
        except ClientError:
            policy = None
        versioning = s3.get_bucket_versioning(Bucket=name)
        buckets[name] = {
            "policy": policy,
            "versioning": versioning.get("Status"),
            "mfa_delete": versioning.get("MFADelete"),
        }

    ebs, groups, acls, vpcs_in_use, regions_with_sgs = {}, {}, {}, set(), []
    for region in regions:
        ec2 = client("ec2", region)
        ebs[region] = {
            "default": ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"],
            "volumes": sum(1 for _ in pages(ec2, "describe_volumes", "Volumes")),
        }
        enis = {}
        for eni in pages(ec2, "describe_network_interfaces", "NetworkInterfaces"):
            vpcs_in_use.add(f"{region}/{eni['VpcId']}")
            for g in eni.get("Groups", []):
                enis[g["GroupId"]] = enis.get(g["GroupId"], 0) + 1
        for g in pages(ec2, "describe_security_groups", "SecurityGroups"):
            groups[f"{region}/{g['GroupId']}"] = {
                "name": g["GroupName"],
                "vpc": g.get("VpcId"),
                "ingress": g["IpPermissions"],
                "egress": g["IpPermissionsEgress"],
                "enis": enis.get(g["GroupId"], 0),
            }
            if g["GroupName"] != "default" and region not in regions_with_sgs:
                regions_with_sgs.append(region)
        for a in pages(ec2, "describe_network_acls", "NetworkAcls"):
            acls[f"{region}/{a['NetworkAclId']}"] = {
                "vpc": a["VpcId"],
                "default": a["IsDefault"],
                "entries": a["Entries"],
            }
    return {
        "credential_report": rows,
        "users": users,
        "direct_policies": direct,
        "policies": policies,
        "managed": managed,
        "certificates": certificates,
        "virtual_mfa": virtual_mfa,
        "buckets": buckets,
        "ebs": ebs,
        "security_groups": groups,
        "network_acls": acls,
        "vpcs_in_use": sorted(vpcs_in_use),
        "regions_with_sgs": regions_with_sgs,
    }


def main():
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--regions", default="us-east-1,eu-west-1")
    regions = [r for r in parser.parse_known_args()[0].regions.split(",") if r]
    seed_resources = emu.seed_resources

    def with_cis(endpoint, *args, **kwargs):
        out = seed_resources(endpoint, *args, **kwargs)
        client = client_factory(endpoint)
        now = datetime.now(timezone.utc)
        seed_iam(client, now)
        base = out.setdefault(BASE, {})
        base.setdefault("buckets", []).extend(seed_s3(client, regions))
        seed_ec2(client, regions)
        base["bench_cis"] = read_truth(client, regions)
        return out

    emu.seed_resources = with_cis
    emu.main()


if __name__ == "__main__":
    main()
