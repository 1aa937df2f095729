//! The audited accounts' settings: account ids, role ARNs and names, ExternalIds, collector and
//! region lists, AWS Organizations discovery and sharding.

use super::range::{INTERVALS, in_range};
use super::secrets::external_id_of;
use super::{
    Account, CollectorsConfig, Config, Invalid, Organizations, OrganizationsConfig, Secret,
    ShardingConfig,
};

/// What an ExternalId may be, as AWS says it.
const EXTERNAL_ID_RULE: &str = "an ExternalId has 2 to 1224 characters from [A-Za-z0-9_+=,.@:/-]";

fn not_a_role_arn(arn: &str) -> String {
    format!("{arn:?} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)")
}

/// The configured accounts, checked, with their ExternalIds read.
pub(super) fn accounts(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Account>, Invalid> {
    let mut accounts = Vec::with_capacity(config.accounts.len());
    let tagging = std::sync::Arc::new(config.tagging());
    for (i, a) in config.accounts.iter().enumerate() {
        let key = |field: &str| format!("accounts[{i}].{field}");
        if !is_account_id(&a.id) {
            return Err(Invalid::new(
                key("id"),
                format!("{:?} is not a 12-digit AWS account id", a.id),
            ));
        }
        if accounts.iter().any(|seen: &Account| seen.id == a.id) {
            return Err(Invalid::new(
                key("id"),
                format!("account {} is listed twice", a.id),
            ));
        }
        if let Some(arn) = &a.role_arn {
            let role_account = parse_role_arn(arn)
                .ok_or_else(|| Invalid::new(key("role_arn"), not_a_role_arn(arn)))?;
            if role_account != a.id {
                return Err(Invalid::new(
                    key("role_arn"),
                    format!(
                        "the role is in account {role_account}, not in account {}",
                        a.id
                    ),
                ));
            }
        }
        let (source_key, external_id) =
            external_id_of(&a.external_id, &a.external_id_env, &a.external_id_file, env)
                .map_err(|(field, m)| Invalid::new(key(field), m))?;
        if let Some(id) = external_id.as_ref().map(Secret::expose) {
            if a.role_arn.is_none() {
                return Err(Invalid::new(
                    key(source_key),
                    "an ExternalId needs a role_arn",
                ));
            }
            if !is_external_id(id) {
                return Err(Invalid::new(key(source_key), EXTERNAL_ID_RULE));
            }
        }
        let collectors = match &a.collectors {
            Some(names) => resolve_collectors(names, &config.collectors)
                .map_err(|m| Invalid::new(key("collectors"), m))?,
            None => config.enabled_collectors(),
        };
        let regions = match &a.regions {
            Some(r) => {
                validate_regions(r).map_err(|m| Invalid::new(key("regions"), m))?;
                r.clone()
            }
            None => config.aws.regions.clone(),
        };
        // Trimmed as tag values are, so that " team-a" routes like "team-a".
        let owner = a.owner.as_deref().unwrap_or_default().trim().to_owned();
        if a.owner.is_some()
            && (owner.is_empty()
                || owner.chars().count() > crate::owners::MAX_VALUE_CHARS
                || owner.chars().any(char::is_control))
        {
            return Err(Invalid::new(
                key("owner"),
                "an owner has 1 to 128 characters, not all blank, and no control character",
            ));
        }
        accounts.push(Account {
            id: a.id.clone(),
            name: a.name.clone().unwrap_or_else(|| a.id.clone()),
            role_arn: a.role_arn.clone(),
            external_id,
            collectors,
            regions,
            owner,
            tagging: tagging.clone(),
        });
    }
    Ok(accounts)
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The account id of a role ARN, or None when `arn` is not one.
pub fn parse_role_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let partition_ok = matches!(partition, "aws" | "aws-cn" | "aws-us-gov");
    let path_and_name = resource.strip_prefix("role/")?;
    (prefix == "arn"
        && partition_ok
        && service == "iam"
        && region.is_empty()
        && is_account_id(account)
        && is_role_name(path_and_name))
    .then_some(account)
}

/// A role's `path/segments/name` as it follows `:role/` in an ARN (or `organizations.role_name`,
/// or an ad hoc audit's `role_name`): IAM's characters, no empty segment (so no leading, trailing
/// or double `/`), a name of at most 64 characters and a path of at most 512. `.` and `..`
/// segments are refused too: the name is put into ARNs and URLs, where they would walk paths.
pub fn is_role_name(path_and_name: &str) -> bool {
    let (path, name) = path_and_name
        .rsplit_once('/')
        .unwrap_or(("", path_and_name));
    path_and_name
        .split('/')
        .all(|segment| !matches!(segment, "" | "." | ".."))
        && name.len() <= 64
        && path.len() + 2 <= 512
        && path_and_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
}

/// AWS's rule for an ExternalId: 2 to 1224 characters of [\w+=,.@:/-].
pub fn is_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c))
}

/// An Organizations parent id: a root (`r-` and 4 to 32 characters) or an OU (`ou-`, the root's
/// 4 to 32 characters, `-`, 8 to 32 more), lowercase letters and digits, as AWS's patterns say.
pub fn is_parent_id(s: &str) -> bool {
    let part = |p: &str, min: usize| {
        (min..=32).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if let Some(root) = s.strip_prefix("r-") {
        return part(root, 4);
    }
    s.strip_prefix("ou-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(root, ou)| part(root, 4) && part(ou, 8))
}

/// Collector names as known `&'static str`s in canonical order; unknown names and repeats refused.
pub(super) fn resolve_collectors(
    names: &[String],
    collectors: &CollectorsConfig,
) -> Result<Vec<&'static str>, String> {
    for (i, n) in names.iter().enumerate() {
        if collectors.get(n).is_none() {
            let known: Vec<&str> = collectors.names().collect();
            return Err(format!(
                "unknown collector {n:?} (known: {})",
                known.join(", ")
            ));
        }
        if names[..i].contains(n) {
            return Err(format!("collector {n:?} is listed twice"));
        }
    }
    Ok(collectors
        .names()
        .filter(|known| names.iter().any(|n| n == known))
        .collect())
}

/// Region names as AWS spells them (`eu-west-1`, `us-gov-west-1`), each once.
pub(super) fn validate_regions(regions: &[String]) -> Result<(), String> {
    for (i, r) in regions.iter().enumerate() {
        let ok = !r.is_empty()
            && r.split('-').count() >= 3
            && r.split('-').all(|p| !p.is_empty())
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(format!("{r:?} is not an AWS region name"));
        }
        if regions[..i].contains(r) {
            return Err(format!("region {r} is listed twice"));
        }
    }
    Ok(())
}

/// `[organizations]` checked and its ExternalId read; None when discovery is off.
pub(super) fn organizations(
    o: &OrganizationsConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Organizations>, Invalid> {
    let key = |field: &str| format!("organizations.{field}");
    if !o.enabled {
        return Ok(None);
    }
    if !is_role_name(&o.role_name) {
        return Err(Invalid::new(
            key("role_name"),
            format!(
                "{:?} is not an IAM role name (path/name allowed)",
                o.role_name
            ),
        ));
    }
    let (source_key, external_id) =
        external_id_of(&o.external_id, &o.external_id_env, &o.external_id_file, env)
            .map_err(|(field, m)| Invalid::new(key(field), m))?;
    if external_id
        .as_ref()
        .is_some_and(|id| !is_external_id(id.expose()))
    {
        return Err(Invalid::new(key(source_key), EXTERNAL_ID_RULE));
    }
    if let Some(arn) = &o.role_arn
        && parse_role_arn(arn).is_none()
    {
        return Err(Invalid::new(key("role_arn"), not_a_role_arn(arn)));
    }
    for (i, ou) in o.include_ous.iter().enumerate() {
        if !is_parent_id(ou) {
            return Err(Invalid::new(
                key("include_ous"),
                format!("{ou:?} is neither an OU id (ou-xxxx-xxxxxxxx) nor a root id (r-xxxx)"),
            ));
        }
        if o.include_ous[..i].contains(ou) {
            return Err(Invalid::new(
                key("include_ous"),
                format!("{ou} is listed twice"),
            ));
        }
    }
    for (i, id) in o.exclude_accounts.iter().enumerate() {
        if !is_account_id(id) {
            return Err(Invalid::new(
                key("exclude_accounts"),
                format!("{id:?} is not a 12-digit AWS account id"),
            ));
        }
        if o.exclude_accounts[..i].contains(id) {
            return Err(Invalid::new(
                key("exclude_accounts"),
                format!("{id} is listed twice"),
            ));
        }
    }
    in_range(&key("refresh_interval"), o.refresh_interval, INTERVALS)?;
    Ok(Some(Organizations {
        role_name: o.role_name.clone(),
        external_id,
        role_arn: o.role_arn.clone(),
        include_ous: o.include_ous.clone(),
        exclude_accounts: o.exclude_accounts.clone(),
        refresh_interval: o.refresh_interval,
    }))
}

/// At least one shard, and this process's among them.
pub(super) fn check_sharding(s: &ShardingConfig) -> Result<(), Invalid> {
    in_range("sharding.total_shards", s.total_shards, 1..=1000)?;
    if s.shard >= s.total_shards {
        return Err(Invalid::new(
            "sharding.shard",
            format!(
                "must be less than sharding.total_shards ({}): shards count from 0",
                s.total_shards
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::testing::*;
    use crate::config::{Secret, load, load_str};

    #[test]
    fn role_arns() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::111111111111:role/InfraAuditRole"),
            Some("111111111111")
        );
        assert_eq!(
            parse_role_arn("arn:aws:iam::111111111111:role/path/to/R"),
            Some("111111111111")
        );
        assert_eq!(parse_role_arn("arn:aws:iam::11111111111:role/R"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::111111111111:user/R"), None);
        assert_eq!(parse_role_arn("arn:aws:sts::111111111111:role/R"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::111111111111:role/"), None);
        assert_eq!(parse_role_arn("InfraAuditRole"), None);
        // Empty path segments and over-long names make no role IAM would accept.
        for bad in [
            "audit/",
            "a//b",
            "/a",
            "../../evil",
            "audit/../evil",
            "./R",
            "audit/.",
            &"r".repeat(65),
            &format!("{}/r", "p".repeat(511)),
        ] {
            let arn = format!("arn:aws:iam::111111111111:role/{bad}");
            assert_eq!(parse_role_arn(&arn), None, "{bad}");
        }
        let longest = format!("{}/{}", "p".repeat(510), "r".repeat(64));
        assert!(parse_role_arn(&format!("arn:aws:iam::111111111111:role/{longest}")).is_some());
        // Dots inside a segment are allowed characters; only `.` and `..` segments are paths.
        assert!(parse_role_arn("arn:aws:iam::111111111111:role/svc.x/..Role.v2..").is_some());
    }

    #[test]
    fn role_names() {
        for ok in [
            "InfraAuditRole",
            "audit/InfraAuditRole",
            "a/b/c/R",
            "R.v2",
            "..R",
            "R..",
            "+=,.@_-",
            &"r".repeat(64),
        ] {
            assert!(is_role_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../../evil",
            "audit/../R",
            "./R",
            "audit/.",
            "audit/..",
            "/R",
            "R/",
            "a//R",
            "bad name",
            "R?x",
            "R%2F..",
            &"r".repeat(65),
            &format!("{}/R", "p".repeat(511)),
        ] {
            assert!(!is_role_name(bad), "{bad}");
        }
    }

    #[test]
    fn parent_ids() {
        for ok in [
            "r-ab12",
            "ou-ab12-cdef3456",
            "ou-ab12-cdef3456gh",
            "r-0123456789abcdef",
        ] {
            assert!(is_parent_id(ok), "{ok}");
        }
        for bad in [
            "",
            "r-",
            "r-ab1",
            "ou-ab12",
            "ou-ab12-cdef345",
            "OU-ab12-cdef3456",
            "ab12",
        ] {
            assert!(!is_parent_id(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_collector_is_named() {
        let e = load_err("bad_collector_name.toml");
        assert!(
            e.contains("accounts[0].collectors") && e.contains("\"rds\""),
            "{e}"
        );
    }

    #[test]
    fn malformed_role_arn_is_named() {
        let e = load_err("bad_role_arn.toml");
        assert!(
            e.contains("accounts[0].role_arn") && e.contains("not an IAM role ARN"),
            "{e}"
        );
    }

    #[test]
    fn role_in_other_account_is_refused() {
        let e = load_err("bad_role_account.toml");
        assert!(
            e.contains("accounts[0].role_arn") && e.contains("not in account"),
            "{e}"
        );
    }

    #[test]
    fn bad_account_id_is_named() {
        let e = load_err("bad_account_id.toml");
        assert!(e.contains("accounts[0].id"), "{e}");
    }

    #[test]
    fn missing_external_id_env_is_named() {
        let e = load_err("bad_external_id_env.toml");
        assert!(
            e.contains("accounts[0].external_id_env") && e.contains("INFRAAUDIT_TEST_UNSET"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn organizations_are_off_by_default_and_read_when_on() {
        let s = load(None, &no_env, &sections()).unwrap();
        assert!(s.organizations.is_none());
        assert_eq!(
            (s.config.sharding.shard, s.config.sharding.total_shards),
            (0, 1)
        );

        let text = r#"
[organizations]
enabled = true
role_name = "audit/InfraAuditRole"
external_id_env = "ORG_EXTERNAL_ID"
role_arn = "arn:aws:iam::999999999999:role/OrgReader"
include_ous = ["ou-ab12-cdef3456", "r-ab12"]
exclude_accounts = ["111111111111"]
refresh_interval = "15m"

[sharding]
shard = 2
total_shards = 3
"#;
        let env = |k: &str| (k == "ORG_EXTERNAL_ID").then(|| "org-external-id".to_owned());
        let s = load_str(text, &env, &sections()).unwrap();
        let o = s.organizations.unwrap();
        assert_eq!(o.role_name, "audit/InfraAuditRole");
        assert_eq!(
            o.external_id.as_ref().map(Secret::expose),
            Some("org-external-id")
        );
        assert_eq!(o.include_ous, ["ou-ab12-cdef3456", "r-ab12"]);
        assert_eq!(o.exclude_accounts, ["111111111111"]);
        assert_eq!(o.refresh_interval, Duration::from_secs(900));
        assert_eq!(
            (s.config.sharding.shard, s.config.sharding.total_shards),
            (2, 3)
        );
    }

    #[test]
    fn every_organizations_and_sharding_key_is_named() {
        let org = |body: &str| format!("[organizations]\nenabled = true\n{body}");
        let cases = [
            (org("role_name = \"bad name\"\n"), "organizations.role_name"),
            (org("role_name = \"\"\n"), "organizations.role_name"),
            (
                org("role_name = \"../../evil\"\n"),
                "organizations.role_name",
            ),
            (
                org("external_id = \"has spaces in it\"\n"),
                "organizations.external_id",
            ),
            (
                org("external_id_env = \"INFRAAUDIT_TEST_UNSET_VARIABLE\"\n"),
                "organizations.external_id_env",
            ),
            (
                org("external_id_file = \"/nonexistent/infraaudit-org-id\"\n"),
                "organizations.external_id_file",
            ),
            (
                org("external_id = \"abc-123\"\nexternal_id_env = \"X\"\n"),
                "organizations.external_id",
            ),
            (
                org("role_arn = \"arn:aws:iam::123:role/x\"\n"),
                "organizations.role_arn",
            ),
            (
                org("include_ous = [\"ou-AB12-cdef3456\"]\n"),
                "organizations.include_ous",
            ),
            (
                org("include_ous = [\"r-ab12\", \"r-ab12\"]\n"),
                "organizations.include_ous",
            ),
            (
                org("exclude_accounts = [\"12345\"]\n"),
                "organizations.exclude_accounts",
            ),
            (
                org("refresh_interval = \"0s\"\n"),
                "organizations.refresh_interval",
            ),
            (
                org("refresh_interval = \"often\"\n"),
                "organizations.refresh_interval",
            ),
            (org("unknown = 1\n"), "organizations"),
            (
                "[sharding]\ntotal_shards = 0\n".to_owned(),
                "sharding.total_shards",
            ),
            (
                "[sharding]\nshard = 3\ntotal_shards = 3\n".to_owned(),
                "sharding.shard",
            ),
            ("[sharding]\nshard = -1\n".to_owned(), "sharding.shard"),
        ];
        for (text, key) in cases {
            let e = load_str(&text, &no_env, &sections())
                .err()
                .unwrap_or_else(|| panic!("{text} should have been refused"))
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
            assert!(!e.contains("has spaces"), "the error shows the secret: {e}");
        }
        // Keys of a disabled [organizations] are not checked: it is off.
        assert!(
            load_str(
                "[organizations]\nrole_name = \"bad name\"\n",
                &no_env,
                &sections()
            )
            .is_ok()
        );
    }
}
