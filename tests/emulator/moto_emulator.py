"""The AWS emulator for infraaudit's tests: moto in server mode on 127.0.0.1, seeded.

Usage: python moto_emulator.py [--port N]

Starts moto's threaded server (port 0: a free one), seeds two accounts, and prints one JSON line
to stdout with the port and everything it seeded (key ids, creation and last-used times), which the
tests take as the truth. It runs until its standard input closes, so it dies with the test.

Account 123456789012 is moto's default: requests signed with unknown credentials land there.
Account 222222222222 is reached only through AssumeRole of its InfraAuditRole: moto routes requests
signed with the returned credentials to the role's account.
"""

import argparse
import json
import logging
import sys
from datetime import datetime, timedelta, timezone

from moto.iam.models import AccessKeyLastUsed, iam_backends
from moto.server import ThreadedMotoServer

BASE_ACCOUNT = "123456789012"
ROLE_ACCOUNT = "222222222222"

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
    ROLE_ACCOUNT: {
        "alice": [(30, True, 5)],
        "erin": [(120, False, None), (10, True, 24)],
        "frank": [],
    },
}


def naive_utc(dt):
    # moto keeps naive UTC datetimes.
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


def seed(now):
    seeded = {}
    for account, users in SEED.items():
        backend = iam_backends[account]["aws"]
        if account == ROLE_ACCOUNT:
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    now = datetime.now(timezone.utc)
    seeded = seed(now)
    print(json.dumps({"endpoint": f"http://{host}:{port}", "now": now.timestamp(), "accounts": seeded}), flush=True)
    # Run until the test closes our stdin (or dies).
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
