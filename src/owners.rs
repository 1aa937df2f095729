//! Owners and tag labels: who a resource belongs to, read from its tags (`[owners]`), and which
//! further tags its info series carries (`[labels]`).
//!
//! A resource's owner is the value of the first of `owners.tag_keys` it carries with a non-empty
//! value. Its info series carries that owner in `owner` (only when owners are configured at all,
//! so that a configuration without them exports exactly what it did before) and each allowlisted
//! tag in `tag_<key>`. The fallback to the account's owner is left to whoever reads the
//! findings: the shipped alert rules join it, the API and the CLI apply it.

use serde::{Deserialize, Serialize};

/// Tag values and owners are cut to this many characters: label values from a bounded set.
pub const MAX_VALUE_CHARS: usize = 128;

/// `[owners]`: off until `tag_keys` (or an account's `owner`) is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnersConfig {
    /// Tag keys that name a resource's owner, in order: the first one present with a non-empty
    /// value wins. Read on IAM users and roles, S3 buckets (one GetBucketTagging each), EC2
    /// instances and, with discovery, accounts. Empty: no tag is read for owners.
    pub tag_keys: Vec<String>,
    /// Match `tag_keys` to tag keys whatever their case (`Owner` matches `owner`).
    pub case_insensitive: bool,
}

impl Default for OwnersConfig {
    fn default() -> Self {
        Self {
            tag_keys: Vec::new(),
            case_insensitive: true,
        }
    }
}

/// `[labels]`: tags exported as `tag_<key>` labels, like kube-state-metrics'
/// `--metric-labels-allowlist`. Empty lists: no tag is read for labels.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelsConfig {
    /// Tags of IAM users on `infraaudit_iam_user_info`.
    pub iam_user_tags: Vec<String>,
    /// Tags of S3 buckets on `infraaudit_s3_bucket_info` (one GetBucketTagging per bucket).
    pub s3_bucket_tags: Vec<String>,
    /// Tags of EC2 instances on `infraaudit_ec2_instance_info`.
    pub ec2_instance_tags: Vec<String>,
    /// Match the keys above to tag keys whatever their case.
    pub case_insensitive: bool,
}

impl Default for LabelsConfig {
    fn default() -> Self {
        Self {
            iam_user_tags: Vec::new(),
            s3_bucket_tags: Vec::new(),
            ec2_instance_tags: Vec::new(),
            case_insensitive: true,
        }
    }
}

/// The kinds of resource whose tags are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    IamUser,
    S3Bucket,
    Ec2Instance,
}

/// Allowlisted tags of one kind: each key with the label that exports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// (tag key as configured, label name), in the order configured.
    entries: Vec<(String, String)>,
}

impl Labels {
    /// Labels `tag_<key>`: the key lower-cased, every character outside `[a-z0-9_]` replaced by
    /// `_`. Keys that sanitise to one name all get `_conflict<N>`, numbered in byte order of the
    /// keys as written, so that no tag hides another and the names never depend on the data.
    fn new(keys: &[String]) -> Self {
        let names: Vec<String> = keys.iter().map(|k| sanitise(k)).collect();
        let entries = keys
            .iter()
            .zip(&names)
            .map(|(key, name)| {
                let mut rivals: Vec<&String> = keys
                    .iter()
                    .zip(&names)
                    .filter(|(_, n)| *n == name)
                    .map(|(k, _)| k)
                    .collect();
                if rivals.len() == 1 {
                    return (key.clone(), name.clone());
                }
                rivals.sort();
                let n = rivals.iter().position(|k| *k == key).unwrap_or(0) + 1;
                (key.clone(), format!("{name}_conflict{n}"))
            })
            .collect();
        Self { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The label names, in the order of [`Tagging::resolve`]'s values.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(_, name)| name.as_str())
    }
}

/// Keys whose labels would still collide after the `_conflict<N>` suffixes (a key written as
/// another's suffixed name): two equal label names make Prometheus refuse the whole scrape.
pub fn label_collision(keys: &[String]) -> Option<String> {
    let labels = Labels::new(keys);
    let names: Vec<&str> = labels.names().collect();
    names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
        .map(|(_, n)| (*n).to_owned())
}

fn sanitise(key: &str) -> String {
    let mut name = String::with_capacity(4 + key.len());
    name.push_str("tag_");
    name.extend(key.chars().map(|c| {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    name
}

/// What a resource's tags say: its owner (empty when none) and its allowlisted tags' values (in
/// the order of [`Labels::names`], empty when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tagged {
    pub owner: String,
    pub labels: Vec<String>,
}

/// How owners and tag labels are read; built once from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tagging {
    owner_keys: Vec<String>,
    owners_case_insensitive: bool,
    /// Owners are configured: by tag keys or by an account's `owner`.
    pub enabled: bool,
    labels_case_insensitive: bool,
    iam_user: Labels,
    s3_bucket: Labels,
    ec2_instance: Labels,
}

impl Tagging {
    /// `account_owners`: some account has a configured owner.
    pub fn new(owners: &OwnersConfig, labels: &LabelsConfig, account_owners: bool) -> Self {
        let LabelsConfig {
            iam_user_tags,
            s3_bucket_tags,
            ec2_instance_tags,
            case_insensitive,
        } = labels;
        Self {
            owner_keys: owners.tag_keys.clone(),
            owners_case_insensitive: owners.case_insensitive,
            enabled: !owners.tag_keys.is_empty() || account_owners,
            labels_case_insensitive: *case_insensitive,
            iam_user: Labels::new(iam_user_tags),
            s3_bucket: Labels::new(s3_bucket_tags),
            ec2_instance: Labels::new(ec2_instance_tags),
        }
    }

    pub fn labels(&self, kind: Kind) -> &Labels {
        match kind {
            Kind::IamUser => &self.iam_user,
            Kind::S3Bucket => &self.s3_bucket,
            Kind::Ec2Instance => &self.ec2_instance,
        }
    }

    /// Whether the tags of `kind` are needed; false: make no tag call for it.
    pub fn wants_tags(&self, kind: Kind) -> bool {
        !self.owner_keys.is_empty() || !self.labels(kind).is_empty()
    }

    /// Whether owner tags are read at all (accounts' Organizations tags among them).
    pub fn has_owner_keys(&self) -> bool {
        !self.owner_keys.is_empty()
    }

    /// The owner named by `tags`; empty when none of the keys is there with a value.
    pub fn owner<'t>(&self, tags: impl IntoIterator<Item = (&'t str, &'t str)> + Clone) -> String {
        // Blank values are not owners: an `owner` tag left empty does not hide an `Owner` one.
        let named = || {
            tags.clone()
                .into_iter()
                .map(|(k, v)| (k, v.trim()))
                .filter(|(_, v)| !v.is_empty())
        };
        self.owner_keys
            .iter()
            .find_map(|key| lookup(named(), key, self.owners_case_insensitive))
            .map(bounded)
            .unwrap_or_default()
    }

    /// The owner and the allowlisted tags of a resource of `kind`.
    pub fn resolve<'t>(
        &self,
        kind: Kind,
        tags: impl IntoIterator<Item = (&'t str, &'t str)> + Clone,
    ) -> Tagged {
        Tagged {
            owner: self.owner(tags.clone()),
            labels: self
                .labels(kind)
                .entries
                .iter()
                .map(|(key, _)| {
                    lookup(tags.clone(), key, self.labels_case_insensitive)
                        .map(bounded)
                        .unwrap_or_default()
                })
                .collect(),
        }
    }

    /// The info series' labels after the resource's own: `owner` when owners are configured,
    /// then the allowlisted tags.
    pub fn extra_labels<'a>(
        &'a self,
        kind: Kind,
        tagged: &'a Tagged,
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.enabled
            .then_some(("owner", tagged.owner.as_str()))
            .into_iter()
            .chain(self.labels(kind).names().enumerate().map(|(i, name)| {
                // A resource whose tags were not read (denied) still has every label, empty.
                (name, tagged.labels.get(i).map_or("", String::as_str))
            }))
    }
}

/// The value of `key` among `tags`: the exact key first, then (ASCII case-insensitive) the
/// smallest matching key in byte order, so that the choice never depends on the order AWS lists
/// them.
fn lookup<'t>(
    tags: impl IntoIterator<Item = (&'t str, &'t str)>,
    key: &str,
    case_insensitive: bool,
) -> Option<&'t str> {
    let mut best: Option<(&str, &str)> = None;
    for (k, v) in tags {
        if k == key {
            return Some(v);
        }
        if case_insensitive && k.eq_ignore_ascii_case(key) && best.is_none_or(|(b, _)| k < b) {
            best = Some((k, v));
        }
    }
    best.map(|(_, v)| v)
}

fn bounded(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_CHARS) {
        Some((end, _)) => value[..end].to_owned(),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    fn owners(tag_keys: &[&str]) -> Tagging {
        let owners = OwnersConfig {
            tag_keys: keys(tag_keys),
            ..OwnersConfig::default()
        };
        Tagging::new(&owners, &LabelsConfig::default(), false)
    }

    fn labels(labels: LabelsConfig) -> Tagging {
        Tagging::new(&OwnersConfig::default(), &labels, false)
    }

    fn pairs<'a>(
        tags: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + Clone {
        tags.iter().copied()
    }

    #[test]
    fn the_first_key_present_with_a_value_names_the_owner() {
        let t = owners(&["owner", "team"]);
        assert!(t.enabled);
        assert_eq!(t.owner(pairs(&[("team", "b"), ("owner", "a")])), "a");
        assert_eq!(t.owner(pairs(&[("team", "b"), ("owner", " ")])), "b");
        assert_eq!(t.owner(pairs(&[("Team", "b")])), "b");
        assert_eq!(t.owner(pairs(&[("cost", "x")])), "");
        // Exact case first, then the smallest key in byte order, whatever the tags' order.
        assert_eq!(t.owner(pairs(&[("OWNER", "x"), ("owner", "y")])), "y");
        assert_eq!(t.owner(pairs(&[("Owner", "x"), ("OWNER", "z")])), "z");
        assert_eq!(t.owner(pairs(&[("OWNER", "z"), ("Owner", "x")])), "z");
        // A blank exact-case tag does not hide a differently-cased one with a value.
        assert_eq!(t.owner(pairs(&[("owner", ""), ("Owner", "x")])), "x");
    }

    #[test]
    fn suffixed_names_that_collide_again_are_found() {
        assert_eq!(label_collision(&keys(&["team", "Team"])), None);
        assert_eq!(
            label_collision(&keys(&["team", "Team", "team_conflict1"])).as_deref(),
            Some("tag_team_conflict1")
        );
    }

    #[test]
    fn unread_tags_still_give_every_label() {
        let t = labels(LabelsConfig {
            s3_bucket_tags: keys(&["env", "team"]),
            ..LabelsConfig::default()
        });
        let unread = Tagged::default();
        let labels: Vec<_> = t.extra_labels(Kind::S3Bucket, &unread).collect();
        assert_eq!(labels, [("tag_env", ""), ("tag_team", "")]);
    }

    #[test]
    fn case_sensitive_matching_is_a_switch() {
        let config = OwnersConfig {
            tag_keys: keys(&["owner"]),
            case_insensitive: false,
        };
        let t = Tagging::new(&config, &LabelsConfig::default(), false);
        assert_eq!(t.owner(pairs(&[("Owner", "x")])), "");
        assert_eq!(t.owner(pairs(&[("owner", "y")])), "y");
    }

    #[test]
    fn nothing_configured_exports_no_owner_and_reads_no_tag() {
        let t = owners(&[]);
        assert!(!t.enabled);
        for kind in [Kind::IamUser, Kind::S3Bucket, Kind::Ec2Instance] {
            assert!(!t.wants_tags(kind));
            let tagged = t.resolve(kind, pairs(&[("owner", "x")]));
            assert_eq!(t.extra_labels(kind, &tagged).count(), 0);
        }
        // An account's owner alone turns the owner label on, without reading tags.
        let t = Tagging::new(&OwnersConfig::default(), &LabelsConfig::default(), true);
        assert!(t.enabled);
        assert!(!t.wants_tags(Kind::S3Bucket));
    }

    #[test]
    fn labels_are_sanitised_and_conflicts_numbered_in_key_order() {
        let t = labels(LabelsConfig {
            s3_bucket_tags: keys(&["cost_center", "Env", "cost-center", "a.b/c"]),
            ..LabelsConfig::default()
        });
        let names: Vec<&str> = t.labels(Kind::S3Bucket).names().collect();
        assert_eq!(
            names,
            [
                "tag_cost_center_conflict2",
                "tag_env",
                "tag_cost_center_conflict1",
                "tag_a_b_c"
            ]
        );
        assert!(t.wants_tags(Kind::S3Bucket));
        assert!(!t.wants_tags(Kind::IamUser));
        let tagged = t.resolve(
            Kind::S3Bucket,
            pairs(&[("cost-center", "1"), ("cost_center", "2"), ("env", "prod")]),
        );
        assert_eq!(tagged.labels, ["2", "prod", "1", ""]);
        let labels: Vec<_> = t.extra_labels(Kind::S3Bucket, &tagged).collect();
        assert_eq!(labels[0], ("tag_cost_center_conflict2", "2"));
        assert_eq!(labels.len(), 4, "no owner label without owners");
    }

    #[test]
    fn values_are_cut_to_128_characters() {
        let labels = LabelsConfig {
            ec2_instance_tags: keys(&["x"]),
            ..LabelsConfig::default()
        };
        let t = Tagging::new(
            &OwnersConfig {
                tag_keys: keys(&["owner"]),
                ..OwnersConfig::default()
            },
            &labels,
            false,
        );
        let long = "é".repeat(300);
        let tagged = t.resolve(Kind::Ec2Instance, pairs(&[("owner", &long), ("x", &long)]));
        assert_eq!(tagged.owner.chars().count(), MAX_VALUE_CHARS);
        assert_eq!(tagged.labels[0].chars().count(), MAX_VALUE_CHARS);
    }
}
