//! The emulator's owners scenario (`--owners`, issue 16): the configuration its expectations
//! assume, and each seeded resource's own and effective owner, as tests/emulator/moto_emulator.py
//! publishes them (`owners_config`, and `owners` in each account's `resources`).

use serde_json::Value;

use super::{BASE_ACCOUNT, EXTERNAL_ID, Emulator, ROLE_ACCOUNT};

/// The owners that have a receiver of their own in deploy/alertmanager/alertmanager.example.yml;
/// any other owner, and none, goes to `default`.
pub const TEAMS: [&str; 2] = ["team-payments", "team-platform"];

/// The receiver that the example Alertmanager configuration sends an owner's alerts to.
pub fn receiver_for(owner: Option<&str>) -> &'static str {
    match owner {
        Some(o) => TEAMS
            .iter()
            .find(|t| **t == o)
            .copied()
            .unwrap_or("default"),
        None => "default",
    }
}

/// What a resource of the scenario is, as the emulator files its expectations.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    User,
    Bucket,
    /// By instance id.
    Instance,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::User => "users",
            Kind::Bucket => "buckets",
            Kind::Instance => "instances",
        }
    }
}

/// The scenario's configuration, as the emulator published it.
pub fn scenario(emu: &Emulator) -> &Value {
    assert!(
        emu.owners_config.is_object(),
        "the emulator has no owners scenario: start it with --owners"
    );
    &emu.owners_config
}

/// One account's expectations: account_owner, users, buckets, instances.
pub fn expected<'a>(emu: &'a Emulator, account: &str) -> &'a Value {
    let o = &emu.resources[account]["owners"];
    assert!(
        o.is_object(),
        "no owners expectations for {account}: start the emulator with --owners"
    );
    o
}

/// The resources of one kind in one account: name -> {"owner", "tags", ...}.
pub fn resources<'a>(
    emu: &'a Emulator,
    account: &str,
    kind: Kind,
) -> &'a serde_json::Map<String, Value> {
    expected(emu, account)[kind.key()].as_object().unwrap()
}

/// The owner the account's configuration gives it (`[[accounts]] owner`), None when none.
pub fn account_owner(emu: &Emulator, account: &str) -> Option<String> {
    non_empty(&expected(emu, account)["account_owner"])
}

/// The resource's own owner (from its tags), None when it has none.
pub fn own_owner(emu: &Emulator, account: &str, kind: Kind, name: &str) -> Option<String> {
    let r = resources(emu, account, kind)
        .get(name)
        .unwrap_or_else(|| panic!("{account}: no {kind:?} {name} in the owners scenario"));
    non_empty(&r["owner"])
}

/// The owner a finding on the resource goes to: its own, else its account's, else none.
pub fn effective(emu: &Emulator, account: &str, kind: Kind, name: &str) -> Option<String> {
    own_owner(emu, account, kind, name).or_else(|| account_owner(emu, account))
}

fn non_empty(v: &Value) -> Option<String> {
    let s = v.as_str().unwrap();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A TOML array of the JSON array's strings (JSON's string escapes are TOML's).
pub fn toml_list(v: &Value) -> String {
    let items: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| serde_json::to_string(s.as_str().unwrap()).unwrap())
        .collect();
    format!("[{}]", items.join(", "))
}

/// `[owners]` and `[labels]` as the scenario's expectations assume them.
pub fn owner_sections(emu: &Emulator) -> String {
    let c = scenario(emu);
    format!(
        "[owners]\ntag_keys = {}\n\n[labels]\niam_user_tags = {}\ns3_bucket_tags = {}\nec2_instance_tags = {}\n",
        toml_list(&c["tag_keys"]),
        toml_list(&c["iam_user_tags"]),
        toml_list(&c["s3_bucket_tags"]),
        toml_list(&c["ec2_instance_tags"]),
    )
}

/// Both seeded accounts, as [`super::two_accounts`] has them (the second through AssumeRole,
/// each with the regions its instances are in); `account_owners` adds the scenario's
/// `[[accounts]] owner`s. `aws` is more of `[aws]`; `sections` (whole TOML sections, such as
/// [`owner_sections`]) go before the accounts.
pub fn accounts_config(emu: &Emulator, account_owners: bool, aws: &str, sections: &str) -> String {
    let owner = |account: &str| -> String {
        if !account_owners {
            return String::new();
        }
        match scenario(emu)["account_owners"][account].as_str() {
            Some(o) => format!("owner = {}\n", serde_json::to_string(o).unwrap()),
            None => String::new(),
        }
    };
    format!(
        r#"
[server]
listen_address = "{{listen}}"

[aws]
endpoint_url = "{endpoint}"
{aws}

{sections}

[[accounts]]
id = "{BASE_ACCOUNT}"
name = "base"
regions = ["us-east-1", "eu-west-1"]
{base_owner}
[[accounts]]
id = "{ROLE_ACCOUNT}"
name = "audited"
role_arn = "arn:aws:iam::{ROLE_ACCOUNT}:role/InfraAuditRole"
external_id = "{EXTERNAL_ID}"
regions = ["ap-southeast-2"]
{role_owner}"#,
        endpoint = emu.endpoint,
        base_owner = owner(BASE_ACCOUNT),
        role_owner = owner(ROLE_ACCOUNT),
    )
}

/// The whole scenario's configuration: owners, labels and account owners, plus `sections`.
pub fn config(emu: &Emulator, sections: &str) -> String {
    accounts_config(
        emu,
        true,
        "",
        &format!("{}\n{sections}", owner_sections(emu)),
    )
}
