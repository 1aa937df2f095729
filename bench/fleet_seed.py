"""Fleet benchmark emulator (`make bench-fleet`): moto in server mode on 127.0.0.1, seeded with
ACCOUNTS accounts of USERS IAM users, BUCKETS buckets and INSTANCES instances each.

Usage: python fleet_seed.py [--accounts 100] [--users 200] [--buckets 20] [--instances 20]

Prints one JSON line {"endpoint", "accounts", "seed_seconds", ...} once seeded, then serves
until its standard input closes (so it dies with the bench script).

How it seeds, and why this way: IAM users, access keys, the audit role and buckets are written
straight into moto's in-process backends (the same objects the server answers from; this is
what tests/emulator/moto_emulator.py does for IAM), since 20,000 users and 20,000 keys through
HTTP would take minutes of moto's single Python process. Instances go through the API
(RunInstances, 10 instances a call, from threads, with AssumeRole credentials of the account)
because moto's backend call for them takes the parsed request; that costs 4 calls an account.
The state is what the same calls through the API would leave.

Every account but moto's default one (123456789012, where unknown credentials land) is reached
through AssumeRole of arn:aws:iam::<id>:role/InfraAuditRole: moto answers requests signed with
the returned credentials from the role's account. The audited accounts are 100000000001...
"""

import argparse
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import boto3
from moto.ec2.models import ec2_backends
from moto.iam.models import AccessKeyLastUsed, iam_backends
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

BASE_ACCOUNT = "123456789012"
EXTERNAL_ID = "fleet-external-id"
REGIONS = ["us-east-1", "eu-west-1"]
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{BASE_ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
            }
        ],
    }
)


def account_id(i):
    return f"1{i + 1:011d}"


def naive_utc(dt):
    # moto keeps naive UTC datetimes.
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


def seed_backends(account, users, buckets, now):
    """Role, users (9 in 10 with one key, of varied age and use) and buckets, in-process."""
    iam = iam_backends[account]["aws"]
    iam.create_role(
        role_name="InfraAuditRole",
        assume_role_policy_document=TRUST_POLICY,
        path="/",
        permissions_boundary=None,
        description="audit role",
        tags=[],
        max_session_duration="3600",
    )
    for u in range(users):
        name = f"user{u:04d}"
        user = iam.create_user(region_name="us-east-1", user_name=name)
        user.create_date = naive_utc(now - timedelta(days=400))
        if u % 10 == 9:
            continue
        key = iam.create_access_key(user_name=name)
        key.create_date = naive_utc(now - timedelta(days=(u * 7) % 365))
        if u % 3:
            used = now - timedelta(hours=(u * 13) % 2000)
            key.last_used = AccessKeyLastUsed(naive_utc(used), "s3", "us-east-1")
    s3 = s3_backends[account]["aws"]
    for b in range(buckets):
        s3.create_bucket(f"fleet-{account}-{b:02d}", REGIONS[b % len(REGIONS)])


def client_for(endpoint, account, service, region):
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1", **creds)
    c = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/InfraAuditRole",
        RoleSessionName="fleet-seed",
        ExternalId=EXTERNAL_ID,
    )["Credentials"]
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
    )


def seed_instances(endpoint, account, instances, images):
    """Instances spread over REGIONS; half require IMDSv2. RunInstances of up to 10 at a time."""
    per_region = instances // len(REGIONS)
    for region in REGIONS:
        ec2 = client_for(endpoint, account, "ec2", region)
        left = per_region
        while left > 0:
            n = min(10, left)
            required = left % 20 < 10
            ec2.run_instances(
                ImageId=images[region],
                InstanceType="t3.micro",
                MinCount=n,
                MaxCount=n,
                MetadataOptions={"HttpTokens": "required" if required else "optional"},
            )
            left -= n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--buckets", type=int, default=20)
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    started = time.monotonic()
    now = datetime.now(timezone.utc)
    accounts = [account_id(i) for i in range(args.accounts)]
    for account in accounts:
        seed_backends(account, args.users, args.buckets, now)
    backends_s = time.monotonic() - started
    # Any AMI moto knows (it does not validate ImageId by default, but be a real client).
    images = {r: next(iter(ec2_backends[BASE_ACCOUNT][r].amis)) for r in REGIONS}
    with ThreadPoolExecutor(args.threads) as pool:
        list(
            pool.map(
                lambda a: seed_instances(endpoint, a, args.instances, images), accounts
            )
        )
    seconds = time.monotonic() - started
    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "accounts": accounts,
                "external_id": EXTERNAL_ID,
                "regions": REGIONS,
                "users": args.users,
                "buckets": args.buckets,
                "instances": args.instances,
                "seed_seconds": round(seconds, 1),
                "seed_backends_seconds": round(backends_s, 1),
            }
        ),
        flush=True,
    )
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
