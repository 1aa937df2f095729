//! Horizontal scale: three processes, shards 0, 1 and 2 of 3, against moto's organization of 30
//! accounts (and its management account, excluded). Together they audit every account exactly
//! once, each the accounts whose FNV-1a hash falls on its shard. The shard comes from the
//! command line, the environment and the file, one process each. Bad shard settings exit 64.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::org::{Org, discovery_config};
use common::*;
use infraaudit::accounts::shard_of;

const ACCOUNTS: usize = 30;

/// IAM only, hourly, discovery hourly: the test needs one run of each.
fn config(endpoint: &str) -> String {
    let org = format!("exclude_accounts = [\"{BASE_ACCOUNT}\"]\nrefresh_interval = \"1h\"");
    discovery_config(endpoint, "", &org, "")
}

fn ids_of(s: &Scrape, name: &str) -> BTreeSet<String> {
    s.find(name, &[])
        .iter()
        .map(|x| x.labels["account_id"].clone())
        .collect()
}

#[test]
fn three_shards_cover_30_accounts_exactly_once() {
    let emu = Emulator::start_with(&["--no-default-seed"]);
    let org = Org::create(&emu.endpoint);
    let all: BTreeSet<String> = (0..ACCOUNTS)
        .map(|i| org.account(&format!("app-{i:02}"), None))
        .collect();
    assert_eq!(all.len(), ACCOUNTS);

    let config = config(&emu.endpoint);
    let shards = [
        Daemon::start_with_args(
            "shard-0",
            &config,
            &[],
            &["--shard", "0", "--total-shards", "3"],
        ),
        Daemon::start_with_env(
            "shard-1",
            &config,
            &[
                ("INFRAAUDIT_SHARDING__SHARD", "1"),
                ("INFRAAUDIT_SHARDING__TOTAL_SHARDS", "3"),
            ],
        ),
        Daemon::start(
            "shard-2",
            &format!("{config}\n[sharding]\nshard = 2\ntotal_shards = 3\n"),
        ),
    ];
    for d in &shards {
        d.wait_ready(Duration::from_secs(120));
    }

    let mut union = BTreeSet::new();
    for (n, d) in shards.iter().enumerate() {
        let s = d.scrape();
        let shard = n.to_string();
        assert_eq!(
            s.value(
                "infraaudit_shard_info",
                &[("shard", shard.as_str()), ("total_shards", "3")]
            ),
            Some(1.0)
        );
        assert_eq!(s.find("infraaudit_shard_info", &[]).len(), 1);
        // Every shard discovers the whole organization, then keeps its part.
        assert_eq!(
            s.value("infraaudit_discovered_accounts", &[]),
            Some(ACCOUNTS as f64)
        );
        let mine = ids_of(&s, "infraaudit_account_info");
        let want: BTreeSet<String> = all
            .iter()
            .filter(|id| shard_of(id, 3) as usize == n)
            .cloned()
            .collect();
        assert!(!mine.is_empty(), "shard {n} has no account");
        assert_eq!(mine, want, "shard {n}");
        // The posture and the statuses are of the same accounts.
        assert_eq!(
            ids_of(
                &s,
                "infraaudit_iam_credential_report_generated_timestamp_seconds"
            ),
            mine,
            "shard {n}"
        );
        assert_eq!(ids_of(&s, "infraaudit_collector_success"), mine);
        // AWS calls too, but for discovery's, counted under the management account.
        for x in s.find("infraaudit_aws_api_requests_total", &[]) {
            let id = &x.labels["account_id"];
            assert!(
                mine.contains(id) || (id == BASE_ACCOUNT && x.labels["service"] == "organizations"),
                "shard {n} calls AWS for {id}: {x:?}"
            );
        }
        // 31 accounts under the root: two pages of ListAccountsForParent, one discovery.
        let calls = |op: &str| {
            s.sum(
                "infraaudit_aws_api_requests_total",
                &[("service", "organizations"), ("operation", op)],
            )
        };
        assert_eq!(calls("ListRoots"), 1.0);
        assert_eq!(calls("ListAccountsForParent"), 2.0);
        assert_eq!(calls("ListOrganizationalUnitsForParent"), 1.0);
        for id in &mine {
            assert!(union.insert(id.clone()), "{id} is in two shards");
        }
    }
    assert_eq!(union, all);
}

#[test]
fn bad_shards_exit_64_naming_the_key() {
    let dir = scratch_dir("shards-bad");
    let cases = [
        ("", vec!["--shard", "3", "--total-shards", "3"], "--shard"),
        ("", vec!["--total-shards", "0"], "--total-shards"),
        (
            "[sharding]\nshard = 1\ntotal_shards = 1\n",
            vec![],
            "sharding.shard",
        ),
        (
            "[sharding]\ntotal_shards = 0\n",
            vec![],
            "sharding.total_shards",
        ),
        (
            "[organizations]\nenabled = true\ninclude_ous = [\"ou-1\"]\n",
            vec![],
            "organizations.include_ous",
        ),
        (
            "[organizations]\nenabled = true\nexclude_accounts = [\"1\"]\n",
            vec![],
            "organizations.exclude_accounts",
        ),
    ];
    for (i, (text, args, needle)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("config-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = aws_test_env(&mut Command::new(env!("CARGO_BIN_EXE_infraaudit")))
            .arg("--config")
            .arg(&path)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{text} {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}
