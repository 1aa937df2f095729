"""The AWS emulator for infraaudit's tests: moto in server mode on 127.0.0.1, seeded.

Usage: python moto_emulator.py [--port N] [--demo] [--aws-like-report] [--count-requests]
       [--access-advisor-roles] [--iam-page-size K] [--owners]
       [--no-default-seed] [--users N] [--buckets B] [--instances I] [--regions r1,r2]

Starts moto's threaded server (port 0: a free one), seeds two accounts, and prints one JSON line
to stdout with the port and everything it seeded (key ids, creation and last-used times), which the
tests take as the truth. It runs until its standard input closes, so it dies with the test.

Account 123456789012 is moto's default: requests signed with unknown credentials land there.
Account 222222222222 is reached only through AssumeRole of its InfraAuditRole: moto routes requests
signed with the returned credentials to the role's account.

--demo (for `make demo` and the Prometheus/Alertmanager test) adds a third account, 333333333333,
like the second, and makes the credential report look like AWS's where moto's does not: a
`<root_account>` row in AWS's format (moto writes none) and a generation time of now (moto's is
fixed in 2015). The plain mode is moto as it is, for every other test. --aws-like-report does the
report part of --demo alone.

--access-advisor-roles adds roles to the base account for the Access Advisor test: two of the
account's own (one under a path) and a service-linked one, which the collector must skip. moto
has no Access Advisor API; the test serves canned AWS-format answers for it from its proxy.

The CIS scenario (issue 15; not with --no-default-seed): groups, customer-managed and two
AWS-managed policies, inline policies, server certificates, bucket policies denying plain HTTP,
MFA Delete, EBS encryption by default, network ACLs and security groups in the base and the
second account, and a virtual MFA device on the second account's root user. Each of those
accounts' entry in "resources" gains "cis": check -> {"failing": [...], "passing": [...]}, every
resource each new check judges (named as in its findings) in the regions of "cis_regions", and
"cis_names": resource id -> what was seeded. moto answers a few of these calls unlike AWS;
patch_moto_gaps makes them as AWS's, in every mode.

For benchmarks: --count-requests counts every AWS request by (account, service, action) at the
emulator (GET /_bench/counts, POST /_bench/reset); --users/--buckets/--instances seed a synthetic
population into the base account (--no-default-seed drops the hand-written scenario).

--owners (issue 16) tags users, buckets and instances of the base and the second account with
owners (`team-payments`, `team-platform`) under mixed-case keys, tags that sanitise to one label
name (`cost-center`, `cost_center`) and values longer than 128 characters, and adds a few users and
an instance (OWNERS_EXTRA_*) so that old keys and IMDSv1 instances belong to each owner and to
nobody. The top-level "owners_config" is the configuration the expectations assume
([owners], [labels] and each account's `owner`), and each account's entry in "resources" gains
"owners": {"account_owner", "users", "buckets", "instances"}, each resource (instances by id)
with its own `owner` ("" when none: the account's applies) and its `tags` labels as the info
series must carry them, worked out by hand from the tables below.

GetAccountAuthorizationDetails and ListServerCertificates page as AWS's do (MaxItems, Marker,
IsTruncated; moto answers everything at once); --iam-page-size K caps every page of theirs at K
items whatever MaxItems asks, as AWS may, so that a test sees many pages with few users.
"""

import argparse
import io
import json
import logging
import random
import re
import sys
import threading
import time
from collections import Counter
from urllib.parse import parse_qs
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config
from moto.iam.models import AccessKeyLastUsed, iam_backends
from moto.s3control.models import s3control_backends
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

BASE_ACCOUNT = "123456789012"
ROLE_ACCOUNT = "222222222222"
DEMO_ACCOUNT = "333333333333"

TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{BASE_ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "test-external-id"}},
            }
        ],
    }
)

# user -> list of keys: (age in days, active, last used this many hours ago or None)
SEED = {
    BASE_ACCOUNT: {
        "nokeys": [],
        "alice": [(200, True, 72)],
        "bob": [(91, True, None), (1, True, 1)],
        "carol": [(89, True, None)],
        "dave": [(400, False, 300 * 24)],
    },
    DEMO_ACCOUNT: {
        "grace": [(150, True, 2)],
        "heidi": [(60, True, None)],
    },
    ROLE_ACCOUNT: {
        "alice": [(30, True, 5)],
        "erin": [(120, False, None), (10, True, 24)],
        "frank": [],
    },
}


# user -> (console password, MFA device, password last used this many hours ago or None)
CONSOLE = {
    BASE_ACCOUNT: {"alice": (True, True, 5), "bob": (True, False, None)},
    ROLE_ACCOUNT: {"frank": (True, False, None)},
    DEMO_ACCOUNT: {"heidi": (True, True, 30)},
}

# The password policy of the base account; the role account has none.
PASSWORD_POLICY = {
    "MinimumPasswordLength": 14,
    "PasswordReusePrevention": 24,
    "MaxPasswordAge": 90,
    "RequireSymbols": True,
    "RequireNumbers": True,
    "RequireUppercaseCharacters": True,
    "RequireLowercaseCharacters": False,
}

PUBLIC_POLICY = lambda bucket: json.dumps(  # noqa: E731
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
)


def tls_statement(bucket, scope):
    """Deny without TLS: on every action ("full") or only on reads and writes ("partial")."""
    arns = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    action = "s3:*" if scope == "full" else ["s3:GetObject", "s3:PutObject"]
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*" if scope == "full" else {"AWS": "*"},
        "Action": action,
        "Resource": arns,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


# Account-level public access block (S3 Control); absent means none.
ACCOUNT_BLOCK = {ROLE_ACCOUNT: {"RestrictPublicBuckets": True}}

# Buckets, with what the tests must find: `public` is the effective answer by the rules in
# docs/metrics.md, worked out by hand for each scenario, not by running our code.
# `tls`: a statement denying requests with aws:SecureTransport false, on every action ("full":
# s3:*, passes s3_secure_transport) or on some ("partial": fails); absent: none (fails).
# `mfa_delete`: versioning Enabled with MFADelete Enabled (True, passes s3_mfa_delete) or
# Disabled (False, fails); absent: versioning never configured (fails).
BUCKETS = {
    BASE_ACCOUNT: [
        {
            "name": "ia-public-policy",
            "region": "us-east-1",
            "policy": True,
            "tls": "full",
            "public": True,
        },
        {"name": "ia-public-acl", "region": "eu-west-1", "acl": "public-read", "public": True},
        {
            "name": "ia-acl-ignored",
            "region": "us-east-1",
            "acl": "public-read",
            "block": {"IgnorePublicAcls": True},
            "public": False,
        },
        {
            "name": "ia-aes",
            "region": "us-east-1",
            "encryption": "AES256",
            "tls": "partial",
            "mfa_delete": True,
            "public": False,
        },
        {
            "name": "ia-kms",
            "region": "eu-west-1",
            "encryption": "aws:kms",
            "tls": "full",
            "mfa_delete": False,
            "public": False,
        },
        {"name": "ia-plain", "region": "us-east-1", "public": False},
    ],
    DEMO_ACCOUNT: [
        {"name": "ia-demo-site", "region": "eu-central-1", "policy": True, "public": True},
    ],
    ROLE_ACCOUNT: [
        # Public by policy, neutralised by RestrictPublicBuckets on the account.
        {
            "name": "ia-role-policy",
            "region": "us-east-1",
            "policy": True,
            "tls": "partial",
            "mfa_delete": True,
            "public": False,
        },
        # RestrictPublicBuckets does nothing to ACLs.
        {
            "name": "ia-role-acl",
            "region": "us-east-1",
            "acl": "public-read",
            "encryption": "AES256",
            "tls": "full",
            "public": True,
        },
    ],
}

# Instances: (key, region, IMDSv2 required, public IP, final state). Terminated ones must not
# appear. The role account has no `regions` in the tests' configuration, so its instances are
# found through DescribeRegions.
INSTANCES = {
    BASE_ACCOUNT: [
        ("web-v1", "us-east-1", False, True, "running"),
        ("app-v2", "us-east-1", True, False, "running"),
        ("old-stopped", "us-east-1", False, False, "stopped"),
        ("gone", "us-east-1", False, True, "terminated"),
        ("eu-v1", "eu-west-1", False, False, "running"),
    ],
    ROLE_ACCOUNT: [
        ("syd-v2", "ap-southeast-2", True, True, "running"),
    ],
    DEMO_ACCOUNT: [
        ("legacy-v1", "eu-central-1", False, True, "running"),
    ],
}


# --demo only: each account's root user (MFA, active key age in days or None, password). The
# sandbox's root has no credentials at all, as with centrally managed root access: a pass.
DEMO_ROOTS = {
    BASE_ACCOUNT: (False, 400, True),
    ROLE_ACCOUNT: (True, None, True),
    DEMO_ACCOUNT: (False, None, False),
}

# --demo only: days since the root user last signed in or used its key (None: never), for
# iam_root_recent_use (30 days by default): the base account's root fails, the others pass.
ROOT_LAST_USED_DAYS = {BASE_ACCOUNT: 3, ROLE_ACCOUNT: 120, DEMO_ACCOUNT: None}

ISO = "%Y-%m-%dT%H:%M:%S+00:00"


def root_row(account, now):
    """A `<root_account>` row as AWS writes it (password columns not_supported)."""
    mfa, key_age, _ = DEMO_ROOTS[account]
    created = (now - timedelta(days=900)).strftime(ISO)
    used_days = ROOT_LAST_USED_DAYS[account]
    used = "no_information" if used_days is None else (now - timedelta(days=used_days)).strftime(ISO)
    if key_age is None:
        key = ["false", "N/A", "N/A", "N/A", "N/A"]
    else:
        rotated = (now - timedelta(days=key_age)).strftime(ISO)
        key = ["true", rotated, used, "us-east-1", "iam"]
    fields = [ROOT, f"arn:aws:iam::{account}:root", created, "not_supported", used]
    fields += ["not_supported", "not_supported", "true" if mfa else "false"] + key
    fields += ["false", "N/A", "N/A", "N/A", "N/A", "false", "N/A", "false", "N/A"]
    return ",".join(fields)


ROOT = "<root_account>"


def patch_report_like_aws(now):
    """--demo: moto's report has no root row and a generation time fixed in 2015, and its
    account summary has no AccountPasswordPresent."""
    from moto.iam import responses
    from moto.iam.models import AccountSummary

    moto_summary = AccountSummary.summary_map.fget

    def summary_map(self):
        mfa, _, password = DEMO_ROOTS[self._iam_backend.account_id]
        return {
            **moto_summary(self),
            "AccountMFAEnabled": int(mfa),
            "AccountPasswordPresent": int(password),
        }

    AccountSummary.summary_map = property(summary_map)

    def get_credential_report(self):
        header, _, users = self.backend.get_credential_report().partition("\n")
        content = "\n".join([header, root_row(self.current_account, now), users])
        # As AWS: regenerated when asked, so never much older than the collector's interval.
        generated = datetime.now(timezone.utc) - timedelta(minutes=5)
        generated = generated.strftime("%Y-%m-%dT%H:%M:%SZ")
        return responses.ActionResult(
            {"Content": content, "ReportFormat": "text/csv", "GeneratedTime": generated}
        )

    responses.IamResponse.get_credential_report = get_credential_report


def naive_utc(dt):
    # moto keeps naive UTC datetimes.
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


def seed(now):
    seeded = {}
    for account, users in SEED.items():
        backend = iam_backends[account]["aws"]
        if account != BASE_ACCOUNT:
            backend.create_role(
                role_name="InfraAuditRole",
                assume_role_policy_document=TRUST_POLICY,
                path="/",
                permissions_boundary=None,
                description="audit role",
                tags=[],
                max_session_duration="3600",
            )
        seeded[account] = {}
        for user_name, keys in users.items():
            user = backend.create_user(region_name="us-east-1", user_name=user_name)
            user.create_date = naive_utc(now - timedelta(days=500))
            out = []
            for age_days, active, used_hours_ago in keys:
                key = backend.create_access_key(user_name=user_name)
                # Sub-second part on purpose: the report has seconds, ListAccessKeys more.
                created = now - timedelta(days=age_days, microseconds=123456)
                key.create_date = naive_utc(created)
                if not active:
                    backend.update_access_key(user_name, key.access_key_id, "Inactive")
                last_used = None
                if used_hours_ago is not None:
                    last_used = (now - timedelta(hours=used_hours_ago)).replace(microsecond=0)
                    key.last_used = AccessKeyLastUsed(naive_utc(last_used), "s3", "us-east-1")
                out.append(
                    {
                        "id": key.access_key_id,
                        "created": created.timestamp(),
                        "active": active,
                        "last_used": last_used.timestamp() if last_used else None,
                    }
                )
            seeded[account][user_name] = out
    return seeded


# --access-advisor-roles: (name, path) of roles in the base account.
ACCESS_ADVISOR_ROLES = [
    ("deploy", "/"),
    ("build", "/ci/"),
    ("AWSServiceRoleForSupport", "/aws-service-role/support.amazonaws.com/"),
]


def seed_access_advisor_roles():
    backend = iam_backends[BASE_ACCOUNT]["aws"]
    for name, path in ACCESS_ADVISOR_ROLES:
        backend.create_role(
            role_name=name,
            assume_role_policy_document=TRUST_POLICY,
            path=path,
            permissions_boundary=None,
            description="access advisor test role",
            tags=[],
            max_session_duration="3600",
        )


def seed_console(now):
    """Login profiles and MFA devices; returns account -> user -> what the report must say."""
    out = {}
    for account, users in CONSOLE.items():
        backend = iam_backends[account]["aws"]
        out[account] = {}
        for user_name, (password, mfa, used_hours_ago) in users.items():
            if password:
                backend.create_login_profile(user_name, "Correct-Horse-1")
            if mfa:
                device = backend.create_virtual_mfa_device(f"{user_name}-mfa", "/")
                backend.enable_mfa_device(user_name, device.serial_number, "123456", "654321")
            used = None
            if used_hours_ago is not None:
                used = (now - timedelta(hours=used_hours_ago)).replace(microsecond=0)
                backend.get_user(user_name).password_last_used = naive_utc(used)
            out[account][user_name] = {
                "password": password,
                "mfa": mfa,
                "password_last_used": used.timestamp() if used else None,
            }
    return out


def clients(endpoint, account):
    """boto3 clients factory for one account: the base one directly, the other via AssumeRole."""
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if account != BASE_ACCOUNT:
        sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1", **creds)
        c = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/InfraAuditRole",
            RoleSessionName="emulator-seed",
            ExternalId="test-external-id",
        )["Credentials"]
        creds = {
            "aws_access_key_id": c["AccessKeyId"],
            "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"],
        }
    config = Config(s3={"addressing_style": "path"})
    return lambda service, region="us-east-1": boto3.client(
        service, endpoint_url=endpoint, region_name=region, config=config, **creds
    )


def seed_resources(endpoint, console):
    """Password policy, buckets and instances, through the API like any client."""
    out = {}
    for account in INSTANCES:
        client = clients(endpoint, account)
        if account == BASE_ACCOUNT:
            client("iam").update_account_password_policy(**PASSWORD_POLICY)
        if account in ACCOUNT_BLOCK:
            # Directly: S3 Control's endpoint rules put the account id in front of the host,
            # which 127.0.0.1 cannot take (botocore has no way around it; infraaudit has one).
            s3control_backends[account]["aws"].put_public_access_block(
                account, ACCOUNT_BLOCK[account]
            )
        for b in BUCKETS[account]:
            s3 = client("s3", b["region"])
            kwargs = {"Bucket": b["name"]}
            if b["region"] != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": b["region"]}
            s3.create_bucket(**kwargs)
            if "block" in b:
                s3.put_public_access_block(
                    Bucket=b["name"], PublicAccessBlockConfiguration=b["block"]
                )
            statements = []
            if b.get("policy"):
                statements += json.loads(PUBLIC_POLICY(b["name"]))["Statement"]
            if "tls" in b:
                statements.append(tls_statement(b["name"], b["tls"]))
            if statements:
                policy = {"Version": "2012-10-17", "Statement": statements}
                s3.put_bucket_policy(Bucket=b["name"], Policy=json.dumps(policy))
            if "mfa_delete" in b:
                # AWS wants the root user's MFA in x-amz-mfa for this; moto checks nothing.
                s3.put_bucket_versioning(
                    Bucket=b["name"],
                    VersioningConfiguration={
                        "Status": "Enabled",
                        "MFADelete": "Enabled" if b["mfa_delete"] else "Disabled",
                    },
                )
            if "acl" in b:
                s3.put_bucket_acl(Bucket=b["name"], ACL=b["acl"])
            if "encryption" in b:
                default = {"SSEAlgorithm": b["encryption"]}
                if b["encryption"] == "aws:kms":
                    default["KMSMasterKeyID"] = "alias/aws/s3"
                s3.put_bucket_encryption(
                    Bucket=b["name"],
                    ServerSideEncryptionConfiguration={
                        "Rules": [{"ApplyServerSideEncryptionByDefault": default}]
                    },
                )
        instances = {}
        per_region = {}
        for key, region, v2, public_ip, state in INSTANCES[account]:
            if region not in per_region:
                ec2 = client("ec2", region)
                image = ec2.describe_images()["Images"][0]["ImageId"]
                subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
                per_region[region] = (ec2, image, subnet)
            ec2, image, subnet = per_region[region]
            run = ec2.run_instances(
                ImageId=image,
                InstanceType="t3.micro",
                MinCount=1,
                MaxCount=1,
                MetadataOptions={"HttpTokens": "required" if v2 else "optional"},
                NetworkInterfaces=[
                    {"DeviceIndex": 0, "SubnetId": subnet, "AssociatePublicIpAddress": public_ip}
                ],
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": key}]}
                ],
            )
            instance_id = run["Instances"][0]["InstanceId"]
            if state == "stopped":
                ec2.stop_instances(InstanceIds=[instance_id])
            elif state == "terminated":
                ec2.terminate_instances(InstanceIds=[instance_id])
            instances[instance_id] = {
                "name": key,
                "region": region,
                "imdsv2_required": v2,
                "public_ip": public_ip,
                "state": state,
                "instance_type": "t3.micro",
            }
        out[account] = {
            "password_policy": PASSWORD_POLICY if account == BASE_ACCOUNT else None,
            "console": console.get(account, {}),
            "account_block": ACCOUNT_BLOCK.get(account, {}),
            "buckets": BUCKETS[account],
            "instances": instances,
        }
    return out


# --- CIS AWS Foundations scenario (issue 15) ---


def patch_moto_gaps():
    """What moto 5.2.5 answers unlike AWS where the CIS checks read it, made as AWS answers, in
    every mode (none of it changes an answer another test reads):
    - GetAccountAuthorizationDetails leaves PolicyName and PolicyId out of Policies[] (its
      serializer finds no attribute of that name on the policy); AWS always sends them.
    - ListServerCertificates and GetServerCertificate give every certificate the Expiration
      2012-05-08T01:02:03Z (and UploadDate 2010-05-08) whatever its body; AWS gives the
      certificate's notAfter.
    - PutBucketVersioning drops MFADelete and GetBucketVersioning never returns it; AWS returns
      MfaDelete once it was set (setting it needs the root user's MFA in x-amz-mfa: moto
      checks nothing, as here).
    - GetAccountAuthorizationDetails and ListServerCertificates ignore MaxItems and Marker and
      answer everything in one page; AWS pages (MaxItems 1-1000, 100 when absent; IsTruncated
      and an opaque Marker), and may return fewer items than MaxItems before the end, which
      --iam-page-size K emulates (see iam_page).
    """
    from cryptography import x509
    from moto.core.responses import ActionResult
    from moto.iam import responses as iam_responses
    from moto.iam.models import Policy
    from moto.s3.responses import S3Response

    Policy.policy_name = property(lambda self: self.name)
    Policy.policy_id = property(lambda self: self.id)

    def expiration(cert):
        try:
            parsed = x509.load_pem_x509_certificate(cert.cert_body.encode())
        except ValueError:
            return "2012-05-08T01:02:03.004Z"  # moto's, for a body that is no certificate
        return parsed.not_valid_after_utc

    def metadata(cert):
        return {
            "ServerCertificateName": cert.cert_name,
            "Path": cert.path,
            "Arn": cert.arn,
            "UploadDate": getattr(cert, "upload_date", "2010-05-08T01:02:03.004Z"),
            "ServerCertificateId": getattr(cert, "certificate_id", "ASCACKCEVSQ6C2EXAMPLE"),
            "Expiration": expiration(cert),
        }

    def list_server_certificates(self):
        certs = list(self.backend.list_server_certificates())
        page, more = iam_page(self, "ListServerCertificates", len(certs))
        return ActionResult(
            {"ServerCertificateMetadataList": [metadata(c) for c in certs[page]], **more}
        )

    def get_account_authorization_details(self):
        details = self.backend.get_account_authorization_details(self._get_param("Filter", []))
        # moto builds the local policies as a set: in the order they were created instead, so
        # that every page of one listing sees the same order.
        order = {id(p): i for i, p in enumerate(self.backend.managed_policies.values())}
        policies = sorted(details["managed_policies"], key=lambda p: order.get(id(p), len(order)))
        # Items count across the lists in AWS's order: users, groups, roles, policies.
        lists = [
            ("UserDetailList", list(details["users"])),
            ("GroupDetailList", list(details["groups"])),
            ("RoleDetailList", list(details["roles"])),
            ("Policies", policies),
        ]
        page, more = iam_page(self, "GetAccountAuthorizationDetails", sum(len(x) for _, x in lists))
        result, start = {}, 0
        for key, items in lists:
            lo = max(page.start - start, 0)
            hi = max(min(page.stop - start, len(items)), 0)
            result[key] = items[lo:hi]
            start += len(items)
        return ActionResult({**result, **more})

    def get_server_certificate(self):
        cert = self.backend.get_server_certificate(self._get_param("ServerCertificateName"))
        server_cert = {"ServerCertificateMetadata": metadata(cert), "CertificateBody": cert.cert_body}
        if cert.cert_chain:
            server_cert["CertificateChain"] = cert.cert_chain
        return ActionResult({"ServerCertificate": server_cert})

    iam_responses.IamResponse.list_server_certificates = list_server_certificates
    iam_responses.IamResponse.get_account_authorization_details = get_account_authorization_details
    iam_responses.IamResponse.get_server_certificate = get_server_certificate

    bucket_put = S3Response._bucket_response_put

    def _bucket_response_put(self, request, bucket_name, querystring):
        result = bucket_put(self, request, bucket_name, querystring)
        if "versioning" in querystring:
            found = re.search(r"<MfaDelete>(Enabled|Disabled)</MfaDelete>", self.body.decode())
            if found:
                self.backend.get_bucket(bucket_name).mfa_delete = found.group(1)
        return result

    # AWS's answer has the root element VersioningConfiguration (moto writes
    # GetBucketVersioningResponse, which the Rust SDK refuses) and MfaDelete once it was set.
    def get_bucket_versioning(self):
        bucket = self.backend.get_bucket(self.bucket_name)
        self.data["Action"] = "GetBucketVersioning"
        parts = ""
        if bucket.versioning_status:
            parts += f"<Status>{bucket.versioning_status}</Status>"
        if getattr(bucket, "mfa_delete", None):
            parts += f"<MfaDelete>{bucket.mfa_delete}</MfaDelete>"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"{parts}</VersioningConfiguration>"
        )
        return 200, {"Content-Type": "application/xml"}, body

    S3Response._bucket_response_put = _bucket_response_put
    S3Response.get_bucket_versioning = get_bucket_versioning


# --iam-page-size K: the most items a page of GetAccountAuthorizationDetails or
# ListServerCertificates holds, whatever MaxItems asks (None: MaxItems). AWS documents that it
# may return fewer than MaxItems with IsTruncated true; a client must follow the Marker.
IAM_PAGE_SIZE = None
MARKER_PREFIX = "infraaudit-emulator-marker"


def iam_page(response, action, total):
    """The slice of the `total` items one request of `action` gets, and the IsTruncated (and
    Marker) of its answer, as AWS pages: MaxItems 1-1000 (100 when absent), capped by
    IAM_PAGE_SIZE; the Marker is opaque to the client (it encodes the next offset)."""
    import base64

    from moto.iam.exceptions import ValidationError

    raw = response._get_param("MaxItems")
    try:
        max_items = 100 if raw in (None, "") else int(raw)
    except ValueError:
        max_items = 0
    if not 1 <= max_items <= 1000:
        raise ValidationError(
            f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy"
            " constraint: Member must have value between 1 and 1000"
        )
    start = 0
    marker = response._get_param("Marker")
    if marker:
        try:
            prefix, what, offset = base64.urlsafe_b64decode(marker).decode().split(":")
            start = int(offset)
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            prefix = None
        if prefix != MARKER_PREFIX or what != action or not 0 < start <= total:
            raise ValidationError("Invalid Marker.")
    size = min(max_items, IAM_PAGE_SIZE or max_items)
    stop = min(start + size, total)
    if stop >= total:
        return slice(start, stop), {"IsTruncated": False}
    token = base64.urlsafe_b64encode(f"{MARKER_PREFIX}:{action}:{stop}".encode()).decode()
    return slice(start, stop), {"IsTruncated": True, "Marker": token}


# AWS-managed policies the checks look for. moto loads its 1,500 AWS-managed policies only
# with MOTO_IAM_LOAD_MANAGED_POLICIES=true (a second per account, and GetAccountAuthorization-
# Details without a filter then returns them all); these two are added to each account instead.
SUPPORT_ACCESS = "AWSSupportAccess"
CLOUDSHELL_FULL_ACCESS = "AWSCloudShellFullAccess"


def add_aws_managed_policies(account, data):
    from moto.iam.models import AWSManagedPolicy

    backend = iam_backends[account]["aws"]
    for name in (SUPPORT_ACCESS, CLOUDSHELL_FULL_ACCESS):
        policy = AWSManagedPolicy.from_data(name, account, "us-east-1", data[name])
        if policy.arn not in backend.managed_policies:
            backend.aws_managed_policies.append(policy)
            backend.managed_policies[policy.arn] = policy


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ADMIN = {"Effect": "Allow", "Action": "*", "Resource": "*"}

# Customer-managed policies: name -> (default version's document, an older non-default version
# or None, whether the default version allows "*" on "*"). iam_policy_full_admin fails for a
# policy that allows "*" on "*" in its default version and is attached to someone.
CIS_POLICIES = {
    BASE_ACCOUNT: {
        "ia-full-admin": (doc(ADMIN), None, True),  # attached to a group: fails
        "ia-unused-admin": (doc(ADMIN), None, True),  # attached to nobody: passes
        "ia-s3-read": (doc({"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}), None, False),
        # Full admin only in v1, which is not the default: passes.
        "ia-old-admin": (
            doc({"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}),
            doc(ADMIN),
            False,
        ),
    },
    ROLE_ACCOUNT: {
        # One statement as an object, its Action and Resource as lists: fails.
        "ia-admin-list": (
            json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": {"Effect": "Allow", "Action": ["*"], "Resource": ["*"]},
                }
            ),
            None,
            True,
        ),
        # Deny, not Allow: passes.
        "ia-deny-all": (doc({"Effect": "Deny", "Action": "*", "Resource": "*"}), None, False),
        "ia-readonly": (doc({"Effect": "Allow", "Action": "iam:Get*", "Resource": "*"}), None, False),
    },
}

# Groups: name -> (members, attached policies: customer-managed by name, AWS-managed by name).
CIS_GROUPS = {
    BASE_ACCOUNT: {
        "ia-admins": (["carol"], ["ia-full-admin", "ia-old-admin"]),
        "ia-support": ([], [SUPPORT_ACCESS]),
        "ia-shell": (["dave"], [CLOUDSHELL_FULL_ACCESS]),
    },
    ROLE_ACCOUNT: {
        "ia-devs": (["erin"], ["ia-admin-list", "ia-deny-all"]),
    },
}

# Policies directly on users: user -> (attached policies, inline policy names).
CIS_USER_POLICIES = {
    BASE_ACCOUNT: {"alice": (["ia-s3-read"], []), "bob": ([], ["bob-inline"])},
    ROLE_ACCOUNT: {"frank": ([CLOUDSHELL_FULL_ACCESS], [])},
}

# Policies on roles: role -> attached policies.
CIS_ROLE_POLICIES = {ROLE_ACCOUNT: {"InfraAuditRole": ["ia-readonly"]}}

# Server certificates: name -> (path, expires in this many days; negative: expired).
CIS_CERTIFICATES = {
    BASE_ACCOUNT: {"ia-cert-expired": ("/", -30), "ia-cert-valid": ("/", 365)},
    ROLE_ACCOUNT: {"ia-role-cert": ("/cloudfront/", 200)},
}

# Regions the tests audit (tests/common/mod.rs two_accounts): EBS and VPC resources are seeded
# and reported for these only. The second account discovers every region when not given one:
# there, each other region adds a failing default network ACL, a failing default security group
# and a failing EBS region (moto's defaults), none of them in the lists below.
CIS_REGIONS = {
    BASE_ACCOUNT: ["us-east-1", "eu-west-1"],
    ROLE_ACCOUNT: ["ap-southeast-2"],
}

# EBS encryption by default turned on in these regions (moto's default is off).
EBS_ENCRYPTED = {BASE_ACCOUNT: ["eu-west-1"], ROLE_ACCOUNT: ["ap-southeast-2"]}

ANY4, ANY6 = "0.0.0.0/0", "::/0"


def entry(number, action, protocol, cidr, ports=None, egress=False):
    e = {"RuleNumber": number, "RuleAction": action, "Protocol": protocol, "Egress": egress}
    e["Ipv6CidrBlock" if ":" in cidr else "CidrBlock"] = cidr
    if ports:
        e["PortRange"] = {"From": ports[0], "To": ports[1]}
    return e


EGRESS_ALL = entry(100, "allow", "-1", ANY4, egress=True)

# Network ACLs in the default VPC: (Name tag, region, entries in the order created, open).
# moto returns entries in the order created, not by rule number, ingress and egress mixed, and
# adds no `*` deny entries to a new ACL. Each default VPC's default ACL (moto: ingress and egress
# 100 allow all from 0.0.0.0/0, 32767 deny; no IPv6 entries) allows 22 from anywhere: fails.
CIS_NACLS = {
    BASE_ACCOUNT: [
        # Lower-numbered denies hide the later allows, created first: passes.
        (
            "ia-nacl-deny-first",
            "eu-west-1",
            [
                entry(200, "allow", "6", ANY4, (22, 22)),
                entry(210, "allow", "-1", ANY6),
                entry(100, "deny", "6", ANY4, (0, 1024)),
                entry(110, "deny", "6", ANY4, (3389, 3389)),
                entry(120, "deny", "6", ANY6, (22, 22)),
                entry(130, "deny", "6", ANY6, (3389, 3389)),
                EGRESS_ALL,
            ],
            False,
        ),
        # 22 from anywhere: fails.
        ("ia-nacl-ssh-open", "eu-west-1", [entry(100, "allow", "6", ANY4, (22, 22)), EGRESS_ALL], True),
        # Admin ports from private ranges only, HTTPS and 23-3388 from anywhere: passes.
        (
            "ia-nacl-private",
            "us-east-1",
            [
                entry(100, "allow", "6", "10.0.0.0/8", (22, 22)),
                entry(110, "allow", "6", "192.168.0.0/16", (3389, 3389)),
                entry(120, "allow", "6", ANY4, (443, 443)),
                entry(130, "allow", "6", ANY6, (23, 3388)),
                entry(140, "allow", "17", ANY4, (0, 65535)),
                EGRESS_ALL,
            ],
            False,
        ),
    ],
    ROLE_ACCOUNT: [
        # Every protocol from ::/0: fails.
        ("ia-role-nacl-all-v6", "ap-southeast-2", [entry(100, "allow", "-1", ANY6), EGRESS_ALL], True),
        # Every port denied from ::/0 and the admin ports from 0.0.0.0/0 before all is allowed:
        # passes.
        (
            "ia-role-nacl-denied",
            "ap-southeast-2",
            [
                entry(50, "deny", "6", ANY6, (0, 65535)),
                entry(60, "deny", "6", ANY4, (22, 22)),
                entry(70, "deny", "6", ANY4, (3389, 3389)),
                entry(100, "allow", "-1", ANY4),
                entry(101, "allow", "-1", ANY6),
                EGRESS_ALL,
            ],
            False,
        ),
        # A deny after the allow hides nothing: fails (3389 from 0.0.0.0/0).
        (
            "ia-role-nacl-deny-late",
            "ap-southeast-2",
            [
                entry(100, "allow", "6", ANY4, (3000, 4000)),
                entry(200, "deny", "6", ANY4, (3389, 3389)),
                EGRESS_ALL,
            ],
            True,
        ),
    ],
}

# Security groups in the default VPC: (name, region, ingress IpPermissions, open). A
# UserIdGroupPairs of "self" refers to the group itself.
CIS_SECURITY_GROUPS = {
    BASE_ACCOUNT: [
        # Every TCP port to ::/0: fails.
        (
            "ia-sg-wide-v6",
            "eu-west-1",
            [{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "Ipv6Ranges": [{"CidrIpv6": ANY6}]}],
            True,
        ),
        # Admin ports from private ranges and from itself only: passes.
        (
            "ia-sg-private",
            "eu-west-1",
            [
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
                {
                    "IpProtocol": "tcp",
                    "FromPort": 3389,
                    "ToPort": 3389,
                    "IpRanges": [{"CidrIp": "192.168.0.0/16"}],
                },
                {"IpProtocol": "-1", "UserIdGroupPairs": "self"},
            ],
            False,
        ),
        # Every protocol from ::/0: fails.
        ("ia-sg-all-v6", "us-east-1", [{"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": ANY6}]}], True),
        # HTTPS, and ports around the admin ones, from anywhere: passes.
        (
            "ia-sg-web",
            "us-east-1",
            [
                {
                    "IpProtocol": "tcp",
                    "FromPort": 443,
                    "ToPort": 443,
                    "IpRanges": [{"CidrIp": ANY4}],
                    "Ipv6Ranges": [{"CidrIpv6": ANY6}],
                },
                {"IpProtocol": "tcp", "FromPort": 23, "ToPort": 3388, "IpRanges": [{"CidrIp": ANY4}]},
                {"IpProtocol": "udp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": ANY4}]},
            ],
            False,
        ),
    ],
    ROLE_ACCOUNT: [
        # A range holding 3389, from 0.0.0.0/0: fails.
        (
            "ia-role-sg-rdp-range",
            "ap-southeast-2",
            [{"IpProtocol": "tcp", "FromPort": 3000, "ToPort": 4000, "IpRanges": [{"CidrIp": ANY4}]}],
            True,
        ),
        (
            "ia-role-sg-private",
            "ap-southeast-2",
            [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "172.16.0.0/12"}]}],
            False,
        ),
    ],
}

# Default security groups emptied (every rule revoked): vpc_default_security_group_open passes.
# moto's default group has no ingress rule (AWS's has one from itself) and one egress rule to
# 0.0.0.0/0 (and ::/0 in a VPC with IPv6): the others fail.
EMPTIED_DEFAULT_SG = {BASE_ACCOUNT: ["eu-west-1"], ROLE_ACCOUNT: []}
# The role account's default group gets AWS's self-referencing ingress rule back.
SELF_REFERENCING_DEFAULT_SG = {BASE_ACCOUNT: [], ROLE_ACCOUNT: ["ap-southeast-2"]}


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
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, private


def seed_root_virtual_mfa(account):
    """A virtual MFA device assigned to the root user, as AWS lists it (moto's EnableMFADevice
    takes IAM users only): iam_root_hardware_mfa fails where the root row says MFA is on."""
    from moto.iam.models import VirtualMfaDevice

    backend = iam_backends[account]["aws"]
    device = VirtualMfaDevice(account, "us-east-1", "/root-account-mfa-device")
    device.enable_date = naive_utc(datetime.now(timezone.utc) - timedelta(days=400))
    # What ListVirtualMFADevices serializes as User (AWS's has no UserName for the root user).
    device.user = device.user_attribute = {
        "Path": "/",
        "UserId": account,
        "Arn": f"arn:aws:iam::{account}:root",
        "CreateDate": naive_utc(datetime.now(timezone.utc) - timedelta(days=900)),
    }
    backend.virtual_mfa_devices[device.serial_number] = device
    return device.serial_number


def verdicts(failing, passing):
    return {"failing": sorted(failing), "passing": sorted(passing)}


def seed_cis(endpoint, now, seeded, console, with_root):
    """The CIS scenario of both accounts, through the API where moto has one; returns
    account -> {"cis": check -> {"failing": [...], "passing": [...]}, "cis_regions": [...],
    "cis_names": {resource: seeded name}} with every resource each new check of issue 15 judges
    in the regions of CIS_REGIONS, by the rules of the issue, worked out from the tables above."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    managed = json.loads(aws_managed_policies_data)
    out = {}
    for account in (BASE_ACCOUNT, ROLE_ACCOUNT):
        client = clients(endpoint, account)
        iam = client("iam")
        cis, names = {}, {}
        add_aws_managed_policies(account, managed)
        arn = {
            SUPPORT_ACCESS: f"arn:aws:iam::aws:policy/{SUPPORT_ACCESS}",
            CLOUDSHELL_FULL_ACCESS: f"arn:aws:iam::aws:policy/{CLOUDSHELL_FULL_ACCESS}",
        }
        for name, (default, older, _) in CIS_POLICIES[account].items():
            first = older if older else default
            arn[name] = iam.create_policy(PolicyName=name, PolicyDocument=first)["Policy"]["Arn"]
            if older:
                iam.create_policy_version(PolicyArn=arn[name], PolicyDocument=default, SetAsDefault=True)
        attached = {}  # policy -> principals ("user/NAME", ...)
        for group, (members, policies) in CIS_GROUPS[account].items():
            iam.create_group(GroupName=group)
            for user in members:
                iam.add_user_to_group(GroupName=group, UserName=user)
            for p in policies:
                iam.attach_group_policy(GroupName=group, PolicyArn=arn[p])
                attached.setdefault(p, []).append(f"group/{group}")
        for user, (policies, inline) in CIS_USER_POLICIES[account].items():
            for p in policies:
                iam.attach_user_policy(UserName=user, PolicyArn=arn[p])
                attached.setdefault(p, []).append(f"user/{user}")
            for name in inline:
                iam.put_user_policy(
                    UserName=user,
                    PolicyName=name,
                    PolicyDocument=doc({"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}),
                )
        for role, policies in CIS_ROLE_POLICIES.get(account, {}).items():
            for p in policies:
                iam.attach_role_policy(RoleName=role, PolicyArn=arn[p])
                attached.setdefault(p, []).append(f"role/{role}")

        users = sorted(seeded[account])
        roles = sorted(r["RoleName"] for r in iam.list_roles()["Roles"])
        principals = (
            [f"user/{u}" for u in users]
            + [f"group/{g}" for g in CIS_GROUPS[account]]
            + [f"role/{r}" for r in roles]
        )
        direct = set(CIS_USER_POLICIES[account])
        cis["iam_user_direct_policies"] = verdicts(direct, set(users) - direct)
        full = {p for p, (_, _, admin) in CIS_POLICIES[account].items() if admin and p in attached}
        cis["iam_policy_full_admin"] = verdicts(full, set(CIS_POLICIES[account]) - full)
        support = SUPPORT_ACCESS in attached
        cis["iam_support_role"] = verdicts([] if support else ["account"], ["account"] if support else [])
        shell = set(attached.get(CLOUDSHELL_FULL_ACCESS, []))
        cis["iam_cloudshell_full_access"] = verdicts(shell, set(principals) - shell)

        expired, valid = [], []
        for name, (path, days) in CIS_CERTIFICATES[account].items():
            not_after = now + timedelta(days=days)
            body, key = self_signed(name, not_after - timedelta(days=395), not_after)
            iam.upload_server_certificate(
                ServerCertificateName=name, CertificateBody=body, PrivateKey=key, Path=path
            )
            (expired if days < 0 else valid).append(name)
        cis["iam_server_certificate_expired"] = verdicts(expired, valid)

        # The credential report's checks, from SEED and CONSOLE (default thresholds: 45 days).
        console_users = {u for u, c in console.get(account, {}).items() if c["password"]}
        unused, used = [], []
        for u in console_users:
            last = console[account][u]["password_last_used"]
            # Every seeded user was created 500 days ago.
            (unused if last is None or now.timestamp() - last > 45 * 86400 else used).append(u)
        cis["iam_user_password_unused"] = verdicts(unused, used)
        initial, other = [], []
        multiple, single = [], []
        for u, keys in seeded[account].items():
            active = [k for k in keys if k["active"]]
            if keys:
                (multiple if len(active) >= 2 else single).append(u)
            if u in console_users:
                for k in active:
                    (initial if k["last_used"] is None else other).append(f"{u}/{k['id']}")
        cis["iam_user_initial_access_key"] = verdicts(initial, other)
        cis["iam_user_multiple_active_keys"] = verdicts(multiple, single)

        if with_root:
            # --demo / --aws-like-report: the root row of DEMO_ROOTS.
            mfa, key_age, password = DEMO_ROOTS[account]
            no_credentials = not password and key_age is None
            virtual = account == ROLE_ACCOUNT
            hardware_fails = not no_credentials and (not mfa or virtual)
            cis["iam_root_hardware_mfa"] = verdicts(
                ["root"] if hardware_fails else [], [] if hardware_fails else ["root"]
            )
            days = ROOT_LAST_USED_DAYS[account]
            recent = days is not None and days < 30
            cis["iam_root_recent_use"] = verdicts(
                ["root"] if recent else [], [] if recent else ["root"]
            )
        if account == ROLE_ACCOUNT:
            names["root-mfa"] = seed_root_virtual_mfa(account)

        buckets = BUCKETS[account]
        tls = {b["name"] for b in buckets if b.get("tls") == "full"}
        cis["s3_secure_transport"] = verdicts({b["name"] for b in buckets} - tls, tls)
        mfa_delete = {b["name"] for b in buckets if b.get("mfa_delete")}
        cis["s3_mfa_delete"] = verdicts({b["name"] for b in buckets} - mfa_delete, mfa_delete)

        regions = CIS_REGIONS[account]
        on = EBS_ENCRYPTED[account]
        for region in on:
            client("ec2", region).enable_ebs_encryption_by_default()
        cis["ec2_ebs_default_encryption"] = verdicts(set(regions) - set(on), on)

        nacl_fail, nacl_pass = [], []
        sg_fail, sg_pass = [], []
        default_fail, default_pass = [], []
        for region in regions:
            ec2 = client("ec2", region)
            vpc = [v for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"]][0]["VpcId"]
            for acl in ec2.describe_network_acls()["NetworkAcls"]:
                # The default VPC's default ACL allows everything: fails.
                resource = f"{region}/{acl['NetworkAclId']}"
                nacl_fail.append(resource)
                names[resource] = f"default ACL of {acl['VpcId']}"
            for name, r, entries, open_ in CIS_NACLS[account]:
                if r != region:
                    continue
                acl = ec2.create_network_acl(
                    VpcId=vpc,
                    TagSpecifications=[
                        {"ResourceType": "network-acl", "Tags": [{"Key": "Name", "Value": name}]}
                    ],
                )["NetworkAcl"]["NetworkAclId"]
                for e in entries:
                    ec2.create_network_acl_entry(NetworkAclId=acl, **e)
                resource = f"{region}/{acl}"
                (nacl_fail if open_ else nacl_pass).append(resource)
                names[resource] = name
            default_sg = ec2.describe_security_groups(
                Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}]
            )["SecurityGroups"][0]
            resource = f"{region}/{default_sg['GroupId']}"
            names[resource] = f"default security group of {vpc}"
            sg_pass.append(resource)  # moto's has no ingress rule
            if region in EMPTIED_DEFAULT_SG[account]:
                ec2.revoke_security_group_egress(
                    GroupId=default_sg["GroupId"], IpPermissions=default_sg["IpPermissionsEgress"]
                )
                default_pass.append(resource)
            else:
                default_fail.append(resource)
            if region in SELF_REFERENCING_DEFAULT_SG[account]:
                ec2.authorize_security_group_ingress(
                    GroupId=default_sg["GroupId"],
                    IpPermissions=[
                        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": default_sg["GroupId"]}]}
                    ],
                )
            for name, r, permissions, open_ in CIS_SECURITY_GROUPS[account]:
                if r != region:
                    continue
                group = ec2.create_security_group(
                    GroupName=name, Description=f"infraaudit test: {name}", VpcId=vpc
                )["GroupId"]
                for p in permissions:
                    if p.get("UserIdGroupPairs") == "self":
                        p = {**p, "UserIdGroupPairs": [{"GroupId": group}]}
                    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[p])
                resource = f"{region}/{group}"
                (sg_fail if open_ else sg_pass).append(resource)
                names[resource] = name
        cis["vpc_nacl_admin_ports_open"] = verdicts(nacl_fail, nacl_pass)
        cis["ec2_security_group_admin_ports_open"] = verdicts(sg_fail, sg_pass)
        cis["vpc_default_security_group_open"] = verdicts(default_fail, default_pass)
        out[account] = {"cis": cis, "cis_regions": regions, "cis_names": names}
    return out


# --- owners scenario (issue 16, --owners) ---

# The configuration every expectation below assumes; the tests build theirs from it.
OWNERS_CONFIG = {
    "tag_keys": ["owner", "team"],
    "iam_user_tags": ["cost-center", "cost_center", "Env"],
    "s3_bucket_tags": ["cost-center", "cost_center", "Env"],
    "ec2_instance_tags": ["cost-center", "cost_center", "Env"],
    # [[accounts]] owner; the second account has none, so its untagged resources have no owner.
    "account_owners": {BASE_ACCOUNT: "team-platform"},
}

# Over the 128 characters a label value keeps. The second is 2 bytes a character: cut by
# characters, not bytes.
LONG_ASCII = "cc-" + "0123456789" * 19 + "-end"  # 197 characters
LONG_ASCII_CUT = "cc-" + "0123456789" * 12 + "01234"  # its first 128
LONG_UTF8 = "\u00fc" * 150  # 150 x "ü", 300 bytes
LONG_UTF8_CUT = "\u00fc" * 128

# Users, keys and instances added by --owners: old active keys of an owned user in the second
# account and of unowned users in both (the base account's falls back to its owner), and an
# IMDSv1 instance nobody owns in the second account.
OWNERS_EXTRA_USERS = {
    BASE_ACCOUNT: {"ivan": [(300, True, None)]},
    ROLE_ACCOUNT: {"kim": [(100, True, None)], "liam": [(150, True, None)]},
}
OWNERS_EXTRA_INSTANCES = {
    ROLE_ACCOUNT: [("syd-v1", "ap-southeast-2", False, False, "running")],
}

# Tags, and what the info series carry for them with OWNERS_CONFIG: the resource's own owner
# (the first of tag_keys present with a non-empty value, keys matched case-insensitively; among
# several tags matching one key, the exact-case one, else the smallest key in byte order) and
# the allowlisted tags as labels ("cost-center" and "cost_center" both sanitise to
# tag_cost_center: suffixed _conflict1 and _conflict2 in byte order of the key, "-" < "_").
# Tag keys of IAM users are case-insensitive in AWS (no `Owner` and `owner` on one user; moto
# accepts both, so the tables never seed that), those of buckets and instances are not.
# moto 5.2.5 answers the tag reads as AWS does, so nothing is patched for them: users' and roles'
# Tags in GetAccountAuthorizationDetails (through patch_moto_gaps' paging too), GetBucketTagging
# (NoSuchTagSet for a bucket never tagged), instance Tags in DescribeInstances, and
# Organizations' TagResource and ListTagsForResource on accounts (tests/common/org.rs).
C1, C2, ENV = "tag_cost_center_conflict1", "tag_cost_center_conflict2", "tag_env"
OWNERS_USERS = {
    BASE_ACCOUNT: {
        "alice": (
            {"Owner": "team-payments", "cost-center": "cc-100", "cost_center": "cc-200", "ENV": "prod"},
            "team-payments",
            {C1: "cc-100", C2: "cc-200", ENV: "prod"},
        ),
        # The second key only.
        "bob": ({"team": "team-payments", "Env": LONG_ASCII}, "team-payments", {ENV: LONG_ASCII_CUT}),
        # Both keys: the first in tag_keys wins.
        "carol": ({"OWNER": "team-platform", "team": "team-payments"}, "team-platform", {}),
        # No tags: the account's owner applies.
        "dave": ({}, "", {}),
        # An empty value counts as absent: the next key.
        "nokeys": ({"owner": "", "Team": "team-platform"}, "team-platform", {}),
        "ivan": ({"env": "ci"}, "", {ENV: "ci"}),
    },
    ROLE_ACCOUNT: {
        "alice": ({"owner": "team-payments"}, "team-payments", {}),
        "erin": ({}, "", {}),
        "frank": ({"team": "team-platform", "cost_center": "cc-900"}, "team-platform", {C2: "cc-900"}),
        "kim": ({"Owner": "team-payments"}, "team-payments", {}),
        "liam": ({}, "", {}),
    },
}
# None: no tagging at all (GetBucketTagging answers NoSuchTagSet).
OWNERS_BUCKETS = {
    BASE_ACCOUNT: {
        # The exact-case key wins over another case.
        "ia-public-policy": (
            {"owner": "team-payments", "Owner": "team-platform"},
            "team-payments",
            {},
        ),
        "ia-public-acl": (None, "", {}),
        "ia-acl-ignored": ({"Team": "team-platform", "env": "staging"}, "team-platform", {ENV: "staging"}),
        # No exact-case key: the smallest in byte order ("OWNER" < "Owner").
        "ia-aes": ({"OWNER": "team-payments", "Owner": "team-platform"}, "team-payments", {}),
        # Tags, none of them an owner.
        "ia-kms": (
            {"cost-center": "cc-300", "cost_center": "cc-400", "Env": LONG_UTF8},
            "",
            {C1: "cc-300", C2: "cc-400", ENV: LONG_UTF8_CUT},
        ),
        # Two tags matching "Env", neither exactly: "ENV" < "env".
        "ia-plain": ({"env": "dev", "ENV": "DEV"}, "", {ENV: "DEV"}),
    },
    ROLE_ACCOUNT: {
        "ia-role-policy": ({"team": "team-payments"}, "team-payments", {}),
        "ia-role-acl": (None, "", {}),
    },
}
# By the Name tag of INSTANCES (which every instance keeps); terminated ones are not listed.
OWNERS_INSTANCES = {
    BASE_ACCOUNT: {
        "web-v1": ({"owner": "team-payments"}, "team-payments", {}),
        "app-v2": ({"Team": "team-platform", "cost_center": "cc-500"}, "team-platform", {C2: "cc-500"}),
        "old-stopped": ({}, "", {}),
        "gone": ({}, None, None),  # terminated: no series
        "eu-v1": (
            {"OWNER": "team-platform", "cost-center": LONG_ASCII},
            "team-platform",
            {C1: LONG_ASCII_CUT},
        ),
    },
    ROLE_ACCOUNT: {
        "syd-v2": ({"owner": "team-payments"}, "team-payments", {}),
        "syd-v1": ({"env": "test"}, "", {ENV: "test"}),
    },
}


def add_owners_scenario():
    """--owners: the extra users and instances join the scenario before it is seeded."""
    for account, users in OWNERS_EXTRA_USERS.items():
        SEED[account].update(users)
    for account, instances in OWNERS_EXTRA_INSTANCES.items():
        INSTANCES[account] += instances


def aws_tags(tags):
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def seed_owners(endpoint, resources):
    """Tags the seeded users, buckets and instances through the API; returns account ->
    {"owners": expectations} (see the module's doc)."""
    out = {}
    for account in (BASE_ACCOUNT, ROLE_ACCOUNT):
        client = clients(endpoint, account)
        iam = client("iam")
        users = {}
        for user, (tags, owner, labels) in OWNERS_USERS[account].items():
            if tags:
                iam.tag_user(UserName=user, Tags=aws_tags(tags))
            users[user] = {"owner": owner, "tags": labels}
        # Every user of the account has an expectation: a user left out would go unchecked.
        listed = {u["UserName"] for u in iam.list_users()["Users"]}
        assert listed == set(users), f"{account}: users {listed} vs {set(users)}"
        buckets = {}
        regions = {b["name"]: b["region"] for b in BUCKETS[account]}
        assert set(regions) == set(OWNERS_BUCKETS[account]), account
        for name, (tags, owner, labels) in OWNERS_BUCKETS[account].items():
            if tags is not None:
                client("s3", regions[name]).put_bucket_tagging(
                    Bucket=name, Tagging={"TagSet": aws_tags(tags)}
                )
            buckets[name] = {"region": regions[name], "owner": owner, "tags": labels}
        instances = {}
        seeded = resources[account]["instances"]
        assert {i["name"] for i in seeded.values()} == set(OWNERS_INSTANCES[account]), account
        for instance_id, i in seeded.items():
            tags, owner, labels = OWNERS_INSTANCES[account][i["name"]]
            if tags:
                client("ec2", i["region"]).create_tags(Resources=[instance_id], Tags=aws_tags(tags))
            if i["state"] != "terminated":
                instances[instance_id] = {"owner": owner, "tags": labels}
        out[account] = {
            "owners": {
                "account_owner": OWNERS_CONFIG["account_owners"].get(account, ""),
                "users": users,
                "buckets": buckets,
                "instances": instances,
            }
        }
    return out


# --- request counting (--count-requests) ---

# S3 sub-resources (the query keys of a bucket request) -> the API name after Get/Put/Delete.
S3_SUBRESOURCES = {
    "policy": "BucketPolicy",
    "acl": "BucketAcl",
    "encryption": "BucketEncryption",
    "publicAccessBlock": "PublicAccessBlock",
    "location": "BucketLocation",
    "policyStatus": "BucketPolicyStatus",
    "versioning": "BucketVersioning",
    "logging": "BucketLogging",
    "ownershipControls": "BucketOwnershipControls",
    "tagging": "BucketTagging",
    "lifecycle": "BucketLifecycleConfiguration",
    "website": "BucketWebsite",
    "cors": "BucketCors",
    "notification": "BucketNotificationConfiguration",
    "replication": "BucketReplication",
    "object-lock": "ObjectLockConfiguration",
    "accelerate": "BucketAccelerateConfiguration",
    "requestPayment": "BucketRequestPayment",
    "analytics": "BucketAnalyticsConfiguration",
    "intelligent-tiering": "BucketIntelligentTieringConfiguration",
    "inventory": "BucketInventoryConfiguration",
    "metrics": "BucketMetricsConfiguration",
}
VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}


def s3_action(method, path, query):
    """An S3 REST request's API name, from its method, path (path-style) and query keys."""
    if "x-id" in query:
        return query["x-id"][0]
    if path.startswith("/v20180820/"):  # S3 Control
        if path.rstrip("/").endswith("/configuration/publicAccessBlock") and method in VERBS:
            return VERBS[method] + "PublicAccessBlock"
        return f"{method} {path}"
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "ListBuckets" if method == "GET" else f"{method} /"
    subs = sorted(k for k in query if k in S3_SUBRESOURCES)
    if len(parts) == 1:
        if subs and method in VERBS:
            return VERBS[method] + S3_SUBRESOURCES[subs[0]]
        if "uploads" in query:
            return "ListMultipartUploads"
        plain = {
            "GET": "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects",
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
            "HEAD": "HeadBucket",
        }
        return plain.get(method, f"{method} bucket?{'&'.join(sorted(query))}")
    plain = {"GET": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject", "HEAD": "HeadObject"}
    if query:
        return f"{method} object?{'&'.join(sorted(query))}"
    return plain.get(method, f"{method} object")


class RequestCounter:
    """WSGI middleware: counts each AWS request by (account, service, action) and serves the
    counts at GET /_bench/counts (POST /_bench/reset zeroes them). The account is the one moto
    maps the request's access key to, as moto itself does."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.counts = Counter()
        self.errors = Counter()
        self.since = time.time()

    def reset(self):
        """Zeroes the counts and returns what they were, in one step: nothing falls between."""
        with self.lock:
            taken = self.snapshot_locked()
            self.counts.clear()
            self.errors.clear()
            self.since = time.time()
        return self.render(*taken)

    def snapshot(self):
        with self.lock:
            taken = self.snapshot_locked()
        return self.render(*taken)

    def snapshot_locked(self):
        return dict(self.counts), dict(self.errors), self.since, time.time()

    @staticmethod
    def render(counts, errors, since, until):
        calls = [
            {"account": a, "service": s, "action": x, "count": n, "errors": errors.get((a, s, x), 0)}
            for (a, s, x), n in sorted(counts.items())
        ]

        def by(field):
            total = Counter()
            for c in calls:
                total[field(c)] += c["count"]
            return dict(sorted(total.items()))

        return {
            "since": since,
            "until": until,
            "total": sum(counts.values()),
            "by_service": by(lambda c: c["service"]),
            "by_action": by(lambda c: f"{c['service']}:{c['action']}"),
            "by_account": by(lambda c: c["account"]),
            "calls": calls,
        }

    def classify(self, environ):
        from moto.iam.models import get_account_id_from

        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        auth = environ.get("HTTP_AUTHORIZATION", "")
        service, account = "unsigned", "unsigned"
        if "Credential=" in auth:
            # Credential=AKID/date/region/service/aws4_request
            scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
            if len(scope) >= 4:
                account = get_account_id_from(scope[0])
                service = scope[3]
        if path.startswith("/v20180820/"):
            service = "s3control"
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            return account, service, target.rsplit(".", 1)[-1]
        if service in ("s3", "s3control"):
            return account, service, s3_action(method, path, query)
        action = query.get("Action", [None])[0]
        ctype = environ.get("CONTENT_TYPE", "")
        if action is None and "x-www-form-urlencoded" in ctype:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            form = parse_qs(body.decode("utf-8", "replace"))
            action = form.get("Action", [None])[0]
        return account, service, action or f"{method} {path}"

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_bench/"):
            return self.bench(environ, start_response)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        try:
            key = self.classify(environ)
        except Exception as e:  # counting must never break a request
            key = ("unknown", "unknown", type(e).__name__)
        with self.lock:
            self.counts[key] += 1

        def counting_start_response(status, headers, exc_info=None):
            if not status.startswith(("1", "2", "3")):
                with self.lock:
                    self.errors[key] += 1
            return start_response(status, headers, exc_info)

        return self.app(environ, counting_start_response)

    def bench(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO")
        if path == "/_bench/reset" and method == "POST":
            body = json.dumps(self.reset()).encode()
        elif path == "/_bench/counts" and method == "GET":
            body = json.dumps(self.snapshot()).encode()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"GET /_bench/counts or POST /_bench/reset\n"]
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


class Server(ThreadedMotoServer):
    """moto's threaded server, with its app wrapped in the request counter when asked."""

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.counter = None
        self._count = count

    def _server_entry(self):
        app = DomainDispatcherApplication(create_backend_app)
        if self._count:
            app = self.counter = RequestCounter(app)
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


# --- synthetic population (--users, --buckets, --instances) ---


def key_mix(spec):
    """'0:10,1:60,2:30' -> a 100-slot table of key counts, so user i gets table[i % 100]."""
    table = []
    for part in spec.split(","):
        keys, pct = part.split(":")
        table += [int(keys)] * int(pct)
    if len(table) != 100 or any(k not in (0, 1, 2) for k in table):
        raise SystemExit(f"--keys-per-user {spec!r}: key counts 0-2 whose percentages sum to 100")
    return table


def seed_users(now, n, mix):
    """n users in the base account with a deterministic mix of keys: ages 1-400 days, about a
    fifth inactive, last used never / within a day / 45-90 days / over 90 days ago."""
    rng = random.Random(7)
    backend = iam_backends[BASE_ACCOUNT]["aws"]
    out = {}
    for i in range(n):
        name = f"user-{i:05d}"
        user = backend.create_user(region_name="us-east-1", user_name=name)
        user.create_date = naive_utc(now - timedelta(days=500))
        keys = []
        for _ in range(mix[i % 100]):
            key = backend.create_access_key(user_name=name)
            created = now - timedelta(days=rng.randint(1, 400), seconds=rng.randint(0, 86399))
            key.create_date = naive_utc(created)
            active = rng.random() >= 0.2
            if not active:
                key.status = "Inactive"
            last_used = None
            used = rng.choice([None, 0.5, 60, 120])
            if used is not None:
                last_used = max(now - timedelta(days=used), created).replace(microsecond=0)
                key.last_used = AccessKeyLastUsed(naive_utc(last_used), "s3", "us-east-1")
            keys.append(
                {
                    "id": key.access_key_id,
                    "created": created.timestamp(),
                    "active": active,
                    "last_used": last_used.timestamp() if last_used else None,
                }
            )
        out[name] = keys
    return out


def bulk_buckets(b, regions):
    """b buckets round-robin over the regions, cycling through the public/encryption cases."""
    cases = [
        {"policy": True, "public": True},
        {"acl": "public-read", "public": True},
        {"acl": "public-read", "block": {"IgnorePublicAcls": True}, "public": False},
        {"encryption": "AES256", "public": False},
        {"encryption": "aws:kms", "public": False},
        {"public": False},
        {"policy": True, "block": {"RestrictPublicBuckets": True}, "encryption": "AES256",
         "public": False},
    ]
    return [
        {"name": f"bench-bucket-{i:04d}", "region": regions[i % len(regions)], **cases[i % len(cases)]}
        for i in range(b)
    ]


def bulk_instances(count, regions):
    """(name, region, IMDSv2 required, public IP, state): v2 on even ones, a public IP on every
    third, every fifth stopped."""
    return [
        (
            f"bench-{i:04d}",
            regions[i % len(regions)],
            i % 2 == 0,
            i % 3 == 0,
            "stopped" if i % 5 == 4 else "running",
        )
        for i in range(count)
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--demo", action="store_true")
    parser.add_argument(
        "--aws-like-report", action="store_true", help="root row and fresh GeneratedTime"
    )
    parser.add_argument("--count-requests", action="store_true")
    parser.add_argument("--access-advisor-roles", action="store_true")
    parser.add_argument("--owners", action="store_true", help="owner tags (issue 16)")
    parser.add_argument("--no-default-seed", action="store_true")
    parser.add_argument("--users", type=int, default=0, help="synthetic users in the base account")
    parser.add_argument("--keys-per-user", default="0:10,1:60,2:30", help="keys:percent,...")
    parser.add_argument("--buckets", type=int, default=0)
    parser.add_argument("--instances", type=int, default=0)
    parser.add_argument("--regions", default="us-east-1,eu-west-1")
    parser.add_argument(
        "--iam-page-size",
        type=int,
        default=None,
        help="at most K items a page of GetAccountAuthorizationDetails and ListServerCertificates",
    )
    args = parser.parse_args()
    global IAM_PAGE_SIZE
    if args.iam_page_size is not None:
        if args.iam_page_size < 1:
            raise SystemExit("--iam-page-size: at least 1")
        IAM_PAGE_SIZE = args.iam_page_size
    mix = key_mix(args.keys_per_user)
    regions = [r for r in args.regions.split(",") if r]
    if args.demo or args.aws_like_report:
        patch_report_like_aws(datetime.now(timezone.utc))
    patch_moto_gaps()
    if not args.demo:
        for scenario in (SEED, CONSOLE, BUCKETS, INSTANCES, DEMO_ROOTS):
            scenario.pop(DEMO_ACCOUNT, None)
    if args.no_default_seed:
        for scenario in (SEED, CONSOLE, BUCKETS, INSTANCES, ACCOUNT_BLOCK):
            scenario.clear()
        SEED[BASE_ACCOUNT], BUCKETS[BASE_ACCOUNT], INSTANCES[BASE_ACCOUNT] = {}, [], []
    if args.owners:
        if args.no_default_seed or args.demo or args.users or args.buckets or args.instances:
            # Every resource of the two accounts has an expectation; these add or drop some.
            raise SystemExit("--owners: not with --no-default-seed, --demo or a population")
        add_owners_scenario()
    BUCKETS[BASE_ACCOUNT] += bulk_buckets(args.buckets, regions)
    INSTANCES[BASE_ACCOUNT] += bulk_instances(args.instances, regions)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = Server(args.count_requests, ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    now = datetime.now(timezone.utc)
    endpoint = f"http://{host}:{port}"
    started = time.monotonic()
    seeded = seed(now)
    seeded[BASE_ACCOUNT].update(seed_users(now, args.users, mix))
    if args.access_advisor_roles:
        seed_access_advisor_roles()
    console = seed_console(now)
    resources = seed_resources(endpoint, console)
    if not args.no_default_seed:
        with_root = args.demo or args.aws_like_report
        for account, cis in seed_cis(endpoint, now, seeded, console, with_root).items():
            resources[account].update(cis)
    if args.owners:
        for account, owners in seed_owners(endpoint, resources).items():
            resources[account].update(owners)
    seed_seconds = round(time.monotonic() - started, 3)
    if server.counter:
        # The seeding's own requests are not the client's.
        server.counter.reset()
    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "now": now.timestamp(),
                "seed_seconds": seed_seconds,
                "accounts": seeded,
                "resources": resources,
                "owners_config": OWNERS_CONFIG if args.owners else None,
            }
        ),
        flush=True,
    )
    # Run until the test closes our stdin (or dies).
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
