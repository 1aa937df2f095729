//! Least privilege, checked against the calls actually made. The emulator (moto) allows every
//! call, so an action a collector calls but does not declare would pass every other test and
//! fail on AWS with AccessDenied; a declared action it never calls is a grant for nothing.
//!
//! For each collector, and for account discovery, the real binary runs with only that part
//! enabled and `[owners] tag_keys` set (so that the owner-tag calls run too), through the fault
//! proxy (`tests/common/proxy.rs`, which sees every request) in front of the emulator, on data that makes every call-making path run: buckets with a
//! policy, a public ACL, default encryption and a bucket and account public access block; an
//! account audited through AssumeRole next to the base one; instances in two regions and an
//! account whose regions come from DescribeRegions; users with keys, passwords and MFA, and the
//! root row AWS's reports carry; Access Advisor over users and roles; an organization with
//! nested OUs. Each request the proxy saw is mapped to its IAM action ([`ACTIONS`]) and must be
//! in the permission policy that `infraaudit policy` prints for that same configuration
//! (`infraaudit policy --discovery` for discovery); every action of that policy must have been
//! seen at least once. The declared lists come from the binary's CLI only, never from src.
//!
//! STS calls are not the audited identity's: AssumeRole is made with the base identity, which
//! the README (AWS setup) gives `sts:AssumeRole` on the roles, and GetCallerIdentity needs no
//! permission ("No permissions are required to perform this operation", STS API reference).
//! They are set apart; any other STS call fails the test.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::org::{Org, discovery_config};
use common::proxy::{Fault, Proxy, Rule};
use common::*;
use serde_json::Value;

/// (service, operation as the proxy names it) -> the IAM action that authorizes it, from
/// AWS's Service Authorization Reference ("Actions defined by" the service: AWS Identity and
/// Access Management, Amazon S3, Amazon EC2, AWS Organizations;
/// https://docs.aws.amazon.com/service-authorization/latest/reference/). IAM, EC2 and
/// Organizations name their actions after the operations; S3 does not always: GetBucketEncryption
/// is `s3:GetEncryptionConfiguration`, ListBuckets `s3:ListAllMyBuckets`, the bucket's
/// GetPublicAccessBlock `s3:GetBucketPublicAccessBlock` and S3 Control's (the account's)
/// `s3:GetAccountPublicAccessBlock`. An operation missing here fails the test: look it up there
/// and add it.
const ACTIONS: &[(&str, &str, &str)] = &[
    ("ec2", "DescribeInstances", "ec2:DescribeInstances"),
    ("ec2", "DescribeNetworkAcls", "ec2:DescribeNetworkAcls"),
    ("ec2", "DescribeRegions", "ec2:DescribeRegions"),
    (
        "ec2",
        "DescribeSecurityGroups",
        "ec2:DescribeSecurityGroups",
    ),
    (
        "ec2",
        "GetEbsEncryptionByDefault",
        "ec2:GetEbsEncryptionByDefault",
    ),
    (
        "iam",
        "GenerateCredentialReport",
        "iam:GenerateCredentialReport",
    ),
    (
        "iam",
        "GenerateServiceLastAccessedDetails",
        "iam:GenerateServiceLastAccessedDetails",
    ),
    (
        "iam",
        "GetAccountPasswordPolicy",
        "iam:GetAccountPasswordPolicy",
    ),
    (
        "iam",
        "GetAccountAuthorizationDetails",
        "iam:GetAccountAuthorizationDetails",
    ),
    ("iam", "GetAccountSummary", "iam:GetAccountSummary"),
    ("iam", "GetCredentialReport", "iam:GetCredentialReport"),
    (
        "iam",
        "GetServiceLastAccessedDetails",
        "iam:GetServiceLastAccessedDetails",
    ),
    ("iam", "ListAccessKeys", "iam:ListAccessKeys"),
    ("iam", "ListRoles", "iam:ListRoles"),
    (
        "iam",
        "ListServerCertificates",
        "iam:ListServerCertificates",
    ),
    ("iam", "ListUsers", "iam:ListUsers"),
    ("iam", "ListVirtualMFADevices", "iam:ListVirtualMFADevices"),
    (
        "organizations",
        "ListAccountsForParent",
        "organizations:ListAccountsForParent",
    ),
    (
        "organizations",
        "ListOrganizationalUnitsForParent",
        "organizations:ListOrganizationalUnitsForParent",
    ),
    ("organizations", "ListRoots", "organizations:ListRoots"),
    (
        "organizations",
        "ListTagsForResource",
        "organizations:ListTagsForResource",
    ),
    ("s3", "GetBucketAcl", "s3:GetBucketAcl"),
    ("s3", "GetBucketEncryption", "s3:GetEncryptionConfiguration"),
    ("s3", "GetBucketLocation", "s3:GetBucketLocation"),
    ("s3", "GetBucketPolicy", "s3:GetBucketPolicy"),
    ("s3", "GetBucketPolicyStatus", "s3:GetBucketPolicyStatus"),
    ("s3", "GetBucketTagging", "s3:GetBucketTagging"),
    ("s3", "GetBucketVersioning", "s3:GetBucketVersioning"),
    (
        "s3",
        "GetPublicAccessBlock",
        "s3:GetBucketPublicAccessBlock",
    ),
    ("s3", "ListBuckets", "s3:ListAllMyBuckets"),
    (
        "s3control",
        "GetPublicAccessBlock",
        "s3:GetAccountPublicAccessBlock",
    ),
];

/// The STS calls the binary may make, none of them the audited identity's (see the module doc).
const CALLERS_STS: [&str; 2] = ["AssumeRole", "GetCallerIdentity"];

/// The emulator the collectors' tests share, each through its own proxy: none of them changes
/// what another reads (GenerateCredentialReport only refreshes the report).
/// `--aws-like-report` gives the credential report the root row AWS's have (whose password
/// column sends the IAM collector to GetAccountSummary); `--access-advisor-roles` gives the base
/// account roles next to its users. Its child exits when the test process does (stdin closes).
fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(|| Emulator::start_with(&["--aws-like-report", "--access-advisor-roles"]))
}

/// Only `only` enabled, for the base account (instances in two regions) and the audited one
/// through AssumeRole (no `regions`: they come from DescribeRegions).
fn collector_config(url: &str, only: &str) -> String {
    let on = |name: &str| name == only;
    let iam = "[collectors.iam]\ninterval = \"1h\"\n";
    let config =
        two_accounts_with(url, "1h", "").replace(iam, &format!("{iam}enabled = {}\n", on("iam")));
    assert!(
        config.contains("enabled"),
        "two_accounts_with changed: {config}"
    );
    format!(
        "{config}\n[collectors.iam_authz]\nenabled = {}\n[collectors.s3]\nenabled = {}\n\
         [collectors.ec2]\nenabled = {}\n\
         [collectors.ebs]\nenabled = {}\n[collectors.vpc]\nenabled = {}\n\
         [collectors.access_advisor]\nenabled = {}\njob_wait = \"1m\"\n\
         [owners]\ntag_keys = [\"owner\"]\n",
        on("iam_authz"),
        on("s3"),
        on("ec2"),
        on("ebs"),
        on("vpc"),
        on("access_advisor")
    )
}

/// The actions of the permission policy `infraaudit policy <args>` prints (as JSON) for this
/// configuration.
fn declared(tag: &str, config: &str, args: &[&str]) -> BTreeSet<String> {
    let path = scratch_dir(tag).join("config.toml");
    std::fs::write(&path, config.replace("{listen}", "127.0.0.1:0")).unwrap();
    let out = aws_test_env(&mut Command::new(env!("CARGO_BIN_EXE_infraaudit")))
        .args(["policy", "--format", "json", "--config"])
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "infraaudit policy: {stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("infraaudit policy printed no JSON ({e}): {stderr}"));
    let mut actions = BTreeSet::new();
    for statement in doc["permission_policy"]["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        match &statement["Action"] {
            Value::String(a) => {
                actions.insert(a.clone());
            }
            Value::Array(all) => actions.extend(all.iter().map(|a| a.as_str().unwrap().to_owned())),
            other => panic!("Action is {other}"),
        }
    }
    assert!(!actions.is_empty(), "an empty policy: {doc}");
    actions
}

/// Every call the proxy saw (answered by the emulator or by the proxy, whatever the outcome:
/// AWS authorizes a call before answering it) as IAM action -> the operations behind it, the
/// STS operations apart.
struct Seen {
    actions: BTreeMap<String, BTreeSet<String>>,
    sts: BTreeSet<String>,
}

fn seen(part: &str, proxy: &Proxy) -> Seen {
    let mut seen = Seen {
        actions: BTreeMap::new(),
        sts: BTreeSet::new(),
    };
    let mut unmapped = BTreeSet::new();
    for ([service, operation, _account, _outcome], _) in proxy.counts() {
        if service == "sts" {
            seen.sts.insert(operation);
            continue;
        }
        match ACTIONS
            .iter()
            .find(|(s, o, _)| *s == service && *o == operation)
        {
            Some((_, _, action)) => {
                seen.actions
                    .entry((*action).to_owned())
                    .or_default()
                    .insert(format!("{service} {operation}"));
            }
            None => {
                unmapped.insert(format!("{service} {operation}"));
            }
        }
    }
    assert!(
        unmapped.is_empty(),
        "{part}: calls with no IAM action in ACTIONS: {unmapped:?}; find each in AWS's Service \
         Authorization Reference and add it to the table"
    );
    let other_sts: Vec<_> = seen
        .sts
        .iter()
        .filter(|o| !CALLERS_STS.contains(&o.as_str()))
        .collect();
    assert!(
        other_sts.is_empty(),
        "{part}: STS calls other than {CALLERS_STS:?}: {other_sts:?}"
    );
    seen
}

/// Every action seen is declared, and every declared action was seen.
fn assert_least_privilege(part: &str, declared: &BTreeSet<String>, seen: &Seen) {
    let undeclared: BTreeMap<_, _> = seen
        .actions
        .iter()
        .filter(|(action, _)| !declared.contains(*action))
        .collect();
    assert!(
        undeclared.is_empty(),
        "{part} calls actions its policy does not grant (AccessDenied on AWS): {undeclared:?}\n\
         its policy: {declared:?}"
    );
    let unseen: Vec<_> = declared
        .iter()
        .filter(|a| !seen.actions.contains_key(*a))
        .collect();
    assert!(
        unseen.is_empty(),
        "{part} declares actions it never called here: {unseen:?}\nseen: {:?}",
        seen.actions
    );
}

/// Runs the daemon with only `name` enabled until its first run in both accounts succeeded,
/// then holds the calls it made against its policy.
fn check_collector(name: &str, proxy: &Proxy) -> Seen {
    let config = collector_config(&proxy.url, name);
    let declared = declared(
        &format!("permissions-{name}-policy"),
        &config,
        &["--principal-account", BASE_ACCOUNT],
    );
    let daemon = Daemon::start(&format!("permissions-{name}"), &config);
    daemon.wait_ready(Duration::from_secs(120));
    let s = daemon.scrape();
    for account in [BASE_ACCOUNT, ROLE_ACCOUNT] {
        assert_eq!(
            s.value(
                "infraaudit_collector_success",
                &[("account_id", account), ("collector", name)]
            ),
            Some(1.0),
            "{name} in {account}: {}",
            daemon.log_text()
        );
    }
    let others: BTreeSet<_> = s
        .find("infraaudit_collector_success", &[])
        .iter()
        .map(|x| x.labels["collector"].clone())
        .collect();
    assert_eq!(others, BTreeSet::from([name.to_owned()]));
    // No call after this point can go unexamined.
    drop(daemon);
    let seen = seen(name, proxy);
    // The audited account was reached through its role: the session's calls were examined.
    assert!(
        proxy.count(&[("action", "AssumeRole"), ("account", ROLE_ACCOUNT)]) >= 1,
        "{:#?}",
        proxy.counts()
    );
    assert!(
        proxy.count(&[("account", ROLE_ACCOUNT), ("service", service_of(name))]) >= 1,
        "{name} made no call in the audited account: {:#?}",
        proxy.counts()
    );
    eprintln!("{name}: {:?}, STS {:?}", seen.actions, seen.sts);
    assert_least_privilege(name, &declared, &seen);
    seen
}

fn service_of(collector: &str) -> &'static str {
    match collector {
        "iam" | "iam_authz" | "access_advisor" => "iam",
        "s3" => "s3",
        "ec2" | "ebs" | "vpc" => "ec2",
        other => panic!("no service for {other}"),
    }
}

#[test]
fn iam_calls_only_what_it_declares_and_all_of_it() {
    let proxy = Proxy::start(&emulator().endpoint, 31);
    let seen = check_collector("iam", &proxy);
    // The paths behind the rarer calls ran in both accounts: a root row whose password column
    // says not_supported, and keys the report does not identify.
    for account in [BASE_ACCOUNT, ROLE_ACCOUNT] {
        for action in ["GetAccountSummary", "ListAccessKeys"] {
            assert!(
                proxy.count(&[("action", action), ("account", account)]) >= 1,
                "{action} in {account}: {:?}",
                seen.actions
            );
        }
    }
}

#[test]
fn iam_authz_calls_only_what_it_declares_and_all_of_it() {
    let proxy = Proxy::start(&emulator().endpoint, 35);
    check_collector("iam_authz", &proxy);
}

#[test]
fn ebs_calls_only_what_it_declares_and_all_of_it() {
    let proxy = Proxy::start(&emulator().endpoint, 36);
    check_collector("ebs", &proxy);
}

#[test]
fn vpc_calls_only_what_it_declares_and_all_of_it() {
    let proxy = Proxy::start(&emulator().endpoint, 37);
    check_collector("vpc", &proxy);
}

#[test]
fn s3_calls_only_what_it_declares_and_all_of_it() {
    let proxy = Proxy::start(&emulator().endpoint, 32);
    check_collector("s3", &proxy);
}

#[test]
fn ec2_calls_only_what_it_declares_and_all_of_it() {
    let proxy = Proxy::start(&emulator().endpoint, 33);
    check_collector("ec2", &proxy);
    // Regions from the configuration in one account, from DescribeRegions in the other.
    assert_eq!(
        proxy.count(&[("action", "DescribeRegions"), ("account", BASE_ACCOUNT)]),
        0
    );
    assert!(proxy.count(&[("action", "DescribeRegions"), ("account", ROLE_ACCOUNT)]) >= 1);
}

#[test]
fn access_advisor_calls_only_what_it_declares_and_all_of_it() {
    let proxy = Proxy::start(&emulator().endpoint, 34);
    // moto has no Access Advisor API: the proxy answers its two calls with AWS-format answers
    // (tests/fixtures/access_advisor/), one completed job for every principal of both accounts.
    let reply = |file: &str| Fault::Reply {
        outcome: "recorded",
        body: read(&repo().join("tests/fixtures/access_advisor").join(file)),
    };
    proxy.inject(Rule::action(
        "GenerateServiceLastAccessedDetails",
        reply("generate.xml"),
    ));
    proxy.inject(Rule::action(
        "GetServiceLastAccessedDetails",
        reply("bob.xml"),
    ));
    check_collector("access_advisor", &proxy);
    for kind in ["ListUsers", "ListRoles"] {
        assert!(
            proxy.count(&[("action", kind), ("account", ROLE_ACCOUNT)]) >= 1,
            "{kind}"
        );
    }
}

#[test]
fn discovery_calls_only_what_it_declares_and_all_of_it() {
    let emu = Emulator::start_with(&["--no-default-seed"]);
    let org = Org::create(&emu.endpoint);
    let root = org.root.clone();
    let workloads = org.ou(&root, "workloads");
    let prod = org.ou(&workloads, "prod");
    org.account("root-app", None);
    org.account("workloads-app", Some(&workloads));
    org.account("prod-app", Some(&prod));
    let proxy = Proxy::start(&emu.endpoint, 35);
    // Discovery alone: every collector off, so every call but STS is discovery's. Through a
    // role in the management account, as a delegated setup would be.
    let config = discovery_config(
        &proxy.url,
        "",
        &format!("role_arn = \"arn:aws:iam::{BASE_ACCOUNT}:role/InfraAuditDiscovery\""),
        "[collectors.iam]\nenabled = false\n",
    );
    // Owner tags: the accounts' ListTagsForResource is part of discovery's policy.
    let config = format!("{config}\n[owners]\ntag_keys = [\"owner\"]\n");
    let declared = declared("permissions-discovery-policy", &config, &["--discovery"]);
    let daemon = Daemon::start("permissions-discovery", &config);
    daemon.wait_ready(Duration::from_secs(60));
    let s = daemon.scrape();
    assert_eq!(
        s.value("infraaudit_discovery_success", &[]),
        Some(1.0),
        "{}",
        daemon.log_text()
    );
    // The management account and the three created ones.
    assert_eq!(s.value("infraaudit_discovered_accounts", &[]), Some(4.0));
    drop(daemon);
    let seen = seen("discovery", &proxy);
    assert!(
        proxy.count(&[("action", "AssumeRole"), ("account", BASE_ACCOUNT)]) >= 1,
        "discovery did not assume its role: {:#?}",
        proxy.counts()
    );
    eprintln!("discovery: {:?}, STS {:?}", seen.actions, seen.sts);
    assert_least_privilege("discovery", &declared, &seen);
}
