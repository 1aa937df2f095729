//! IAM authorization collector: who holds which policies, from one paginated
//! GetAccountAuthorizationDetails per run (users, groups, roles and customer-managed policies,
//! up to 1,000 items a page), and the server certificates (ListServerCertificates).
//!
//! A run costs O(pages), not O(users): about 2 calls at 1,000 users (BENCHMARKS.md). AWS-managed
//! policies are not fetched; only their attachments matter, and they are on each entity.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::Value as Json;

use super::{Check, CheckSpec, Collector, Data, Finding, Owner, Severity, Spec};
use crate::aws::AccountSession;
use crate::aws::iam::{AuthorizationDetails, AuthzApi, Entity, IamClient, ServerCertificate};
use crate::config::{ChecksConfig, CollectorConfig};
use crate::error::Error;
use crate::expo::{Family, Recorder, SECONDS, flag};
use crate::owners::{Kind, Tagged, Tagging};
use crate::time::{unix, whole_days};

pub const NAME: &str = "iam_authz";

pub static SPEC: Spec = Spec {
    name: NAME,
    defaults: || {
        crate::config::defaults_of(&CollectorConfig {
            enabled: true,
            interval: std::time::Duration::from_secs(3600),
            timeout: std::time::Duration::from_secs(10 * 60),
        })
    },
    load: crate::config::load_common_section,
    permissions: &[
        "iam:GetAccountAuthorizationDetails",
        "iam:ListServerCertificates",
    ],
    build: |session, _| Arc::new(AuthzCollector::new(session)),
    families: FAMILIES,
    encode,
    live_families: &[],
    encode_live: |_, _, _, _| {},
    checks: CHECKS,
    findings,
    user_owners: Some(user_owners),
};

/// The AWS-managed policies whose attachment is a CIS control, by name.
pub const SUPPORT_POLICY: &str = "AWSSupportAccess";
pub const CLOUDSHELL_POLICY: &str = "AWSCloudShellFullAccess";
const WATCHED: [&str; 2] = [SUPPORT_POLICY, CLOUDSHELL_POLICY];

/// A customer-managed policy, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub name: String,
    /// Users, groups and roles it is attached to, counted from their attachments in the same
    /// answer.
    pub attachments: u32,
    /// Its default version allows every action on every resource; None when the answer has no
    /// default version document, or one that does not parse.
    pub full_admin: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct AuthzData {
    /// Users, groups and roles, sorted by kind and name; their tags are dropped once resolved
    /// into `tagged`.
    pub entities: Vec<Entity>,
    /// Each entity's owner and allowlisted tags, at its index in `entities`.
    pub tagged: Vec<Tagged>,
    /// Which labels the users' info series carry.
    pub tagging: Arc<Tagging>,
    /// Sorted by name.
    pub policies: Vec<PolicyRecord>,
    /// None when ListServerCertificates was denied: unknown, not none.
    pub certificates: Option<Vec<ServerCertificate>>,
}

impl AuthzData {
    pub fn new(
        details: AuthorizationDetails,
        certificates: Option<Vec<ServerCertificate>>,
        tagging: Arc<Tagging>,
    ) -> Self {
        let mut entities = details.entities;
        entities.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        let tagged = entities
            .iter_mut()
            .map(|e| {
                let tags = std::mem::take(&mut e.tags);
                tagging.resolve(
                    Kind::IamUser,
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )
            })
            .collect();
        let attached_to = |arn: &str| {
            entities
                .iter()
                .filter(|e| e.attached.iter().any(|a| a == arn))
                .count() as u32
        };
        let mut policies: Vec<PolicyRecord> = details
            .policies
            .into_iter()
            .map(|p| PolicyRecord {
                full_admin: p.document.as_deref().and_then(allows_full_admin),
                attachments: attached_to(&p.arn),
                name: p.name,
            })
            .collect();
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            entities,
            tagged,
            tagging,
            policies,
            certificates,
        }
    }

    fn users(&self) -> impl Iterator<Item = &Entity> {
        self.users_tagged().map(|(u, _)| u)
    }

    /// The users with their owner and allowlisted tags.
    fn users_tagged(&self) -> impl Iterator<Item = (&Entity, &Tagged)> {
        self.entities
            .iter()
            .zip(&self.tagged)
            .filter(|(e, _)| e.kind == crate::aws::iam::EntityKind::User)
    }

    /// The owner of a user, group or role; empty when none (or the entity is unknown).
    fn owner_of(&self, kind: crate::aws::iam::EntityKind, name: &str) -> &str {
        self.entities
            .binary_search_by(|e| (e.kind, e.name.as_str()).cmp(&(kind, name)))
            .ok()
            .and_then(|i| self.tagged.get(i))
            .map_or("", |t| t.owner.as_str())
    }

    /// The entities with the AWS-managed policy `name` attached.
    fn holding(&self, name: &'static str) -> impl Iterator<Item = &Entity> {
        self.entities
            .iter()
            .filter(move |e| e.attached.iter().any(|arn| is_aws_managed(arn, name)))
    }
}

/// `arn:<partition>:iam::aws:policy/<name>`, in any partition and at any path.
fn is_aws_managed(arn: &str, name: &str) -> bool {
    arn.split_once(":iam::aws:policy/")
        .is_some_and(|(_, rest)| rest.rsplit('/').next() == Some(name))
}

/// Whether a policy document allows `"Action": "*"` on `"Resource": "*"` in one statement
/// (CIS 1.16). Conditions are ignored: full access under a condition is still full access to
/// whoever meets it. None for a document that does not parse: unknown, not passing.
pub fn allows_full_admin(document: &str) -> Option<bool> {
    let doc = serde_json::from_str::<Json>(document).ok()?;
    let statements: Vec<&Json> = match doc.get("Statement") {
        Some(Json::Array(list)) => list.iter().collect(),
        Some(one @ Json::Object(_)) => vec![one],
        _ => return None,
    };
    let has_star = |v: Option<&Json>, stars: &[&str]| match v {
        Some(Json::String(s)) => stars.contains(&s.as_str()),
        Some(Json::Array(list)) => list
            .iter()
            .any(|x| x.as_str().is_some_and(|s| stars.contains(&s))),
        _ => false,
    };
    Some(statements.into_iter().any(|s| {
        s.get("Effect").and_then(Json::as_str) == Some("Allow")
            && has_star(s.get("Action"), &["*", "*:*"])
            && has_star(s.get("Resource"), &["*"])
    }))
}

pub struct AuthzCollector {
    client: IamClient,
    warned: std::sync::atomic::AtomicBool,
    tagging: Arc<Tagging>,
}

impl AuthzCollector {
    pub fn new(session: &Arc<AccountSession>) -> Self {
        Self {
            client: session.iam(),
            warned: std::sync::atomic::AtomicBool::new(false),
            tagging: session.account.tagging.clone(),
        }
    }
}

/// One run: the authorization details (a failure fails the run), then the server certificates
/// (a denial leaves only them unknown, so a role set up before the permission keeps the rest).
pub async fn collect(
    api: &impl AuthzApi,
    warned: &std::sync::atomic::AtomicBool,
    tagging: Arc<Tagging>,
) -> Result<AuthzData, Error> {
    let details = api.authorization_details().await?;
    let certificates = match api.server_certificates().await {
        Ok(c) => Some(c),
        Err(e) if matches!(e.aws_code(), Some("AccessDenied" | "AccessDeniedException")) => {
            if !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(error = %e, "ListServerCertificates is denied; expired server certificates are unknown");
            }
            None
        }
        Err(e) => return Err(e),
    };
    Ok(AuthzData::new(details, certificates, tagging))
}

impl Collector for AuthzCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn collect(&self) -> BoxFuture<'_, Result<Arc<Data>, Error>> {
        Box::pin(async move {
            let data = collect(&self.client, &self.warned, self.tagging.clone()).await?;
            let data: Arc<Data> = Arc::new(data);
            Ok(data)
        })
    }
}

macro_rules! refreshed {
    () => {
        "From GetAccountAuthorizationDetails, refreshed in the background every {every}"
    };
}

const USER_POLICIES: Family<'static> = Family::gauge(
    "iam_user_policies",
    concat!(
        "Policies directly on the user, by kind: attached managed policies or inline policies (CIS 1.15 wants permissions through groups only). ",
        refreshed!(),
        "."
    ),
    None,
);
const POLICY_FULL_ADMIN: Family<'static> = Family::gauge(
    "iam_policy_full_admin",
    concat!(
        "1 if the customer-managed policy's default version allows every action (*) on every resource (*), 0 if not; absent when its document cannot be read. ",
        refreshed!(),
        "."
    ),
    None,
);
const POLICY_ATTACHMENTS: Family<'static> = Family::gauge(
    "iam_policy_attachments",
    concat!(
        "Users, groups and roles the customer-managed policy is attached to. ",
        refreshed!(),
        "."
    ),
    None,
);
const AWS_MANAGED_ATTACHED: Family<'static> = Family::gauge(
    "iam_aws_managed_policy_attached",
    concat!(
        "1 per user, group or role with AWSSupportAccess or AWSCloudShellFullAccess attached. ",
        refreshed!(),
        "."
    ),
    None,
);
const CERTIFICATE_EXPIRY: Family<'static> = Family::gauge(
    "iam_server_certificate_expiry_timestamp",
    "Unix time the IAM server certificate expires, from ListServerCertificates, refreshed in the background every {every}; absent when that call is denied.",
    SECONDS,
);

const USER_INFO: Family<'static> = Family::info(
    "iam_user",
    concat!(
        "1 per IAM user, with its owner (the first [owners] tag_keys tag; only when owners are configured) and the [labels] iam_user_tags as tag_<key> labels. ",
        refreshed!(),
        "."
    ),
);

const FAMILIES: &[Family<'static>] = &[
    USER_INFO,
    USER_POLICIES,
    POLICY_FULL_ADMIN,
    POLICY_ATTACHMENTS,
    AWS_MANAGED_ATTACHED,
    CERTIFICATE_EXPIRY,
];

fn encode(account: &str, data: &Data, r: &mut Recorder<'_>) {
    let Some(d) = data.downcast_ref::<AuthzData>() else {
        return;
    };
    r.series(
        &USER_INFO,
        d.users_tagged().map(|(u, tagged)| {
            let mut labels = vec![("account_id", account), ("user", u.name.as_str())];
            labels.extend(d.tagging.extra_labels(Kind::IamUser, tagged));
            (labels, 1u64)
        }),
    );
    r.series(
        &USER_POLICIES,
        d.users().flat_map(|u| {
            [("attached", u.attached.len()), ("inline", u.inline)]
                .into_iter()
                .map(move |(kind, n)| {
                    (
                        [
                            ("account_id", account),
                            ("user", u.name.as_str()),
                            ("kind", kind),
                        ],
                        n as f64,
                    )
                })
        }),
    );
    fn policy<'a>(account: &'a str, p: &'a PolicyRecord) -> [(&'static str, &'a str); 2] {
        [("account_id", account), ("policy", p.name.as_str())]
    }
    r.series(
        &POLICY_FULL_ADMIN,
        d.policies
            .iter()
            .filter_map(|p| Some((policy(account, p), flag(p.full_admin?)))),
    );
    r.series(
        &POLICY_ATTACHMENTS,
        d.policies
            .iter()
            .map(|p| (policy(account, p), f64::from(p.attachments))),
    );
    r.series(
        &AWS_MANAGED_ATTACHED,
        WATCHED.into_iter().flat_map(|name| {
            d.holding(name).map(move |e| {
                (
                    [
                        ("account_id", account),
                        ("policy", name),
                        ("principal_type", e.kind.as_str()),
                        ("principal", e.name.as_str()),
                    ],
                    1.0,
                )
            })
        }),
    );
    r.series(
        &CERTIFICATE_EXPIRY,
        d.certificates.iter().flatten().map(|c| {
            (
                [("account_id", account), ("certificate", c.name.as_str())],
                unix(c.expiration),
            )
        }),
    );
}

pub fn user_has_direct_policies(u: &Entity) -> bool {
    !u.attached.is_empty() || u.inline > 0
}

/// Whether the policy is attached and allows full admin; None when attached and unknown.
pub fn attached_full_admin(p: &PolicyRecord) -> Option<bool> {
    if p.attachments == 0 {
        return Some(false);
    }
    p.full_admin
}

pub fn certificate_expired(c: &ServerCertificate, now: f64) -> bool {
    unix(c.expiration) < now
}

fn data(d: &Data) -> Option<&AuthzData> {
    d.downcast_ref::<AuthzData>()
}

const CHECKS: &[CheckSpec] = &[
    CheckSpec {
        name: "iam_user_direct_policies",
        collector: NAME,
        title: "IAM users receive permissions only through groups",
        severity: Severity::Low,
        cis: "1.15",
        describe: |_| "a user has policies attached directly or inline".into(),
        failed: |d, _, _| {
            Some(
                data(d)?
                    .users()
                    .filter(|u| user_has_direct_policies(u))
                    .count(),
            )
        },
    },
    CheckSpec {
        name: "iam_policy_full_admin",
        collector: NAME,
        title: "No attached customer-managed policy allows full administrative privileges",
        severity: Severity::High,
        cis: "1.16",
        describe: |_| "an attached customer-managed policy allows \"*\" on \"*\"".into(),
        failed: |d, _, _| {
            // One attached policy that cannot be read leaves the check unknown.
            data(d)?
                .policies
                .iter()
                .map(attached_full_admin)
                .try_fold(0, |n, v| Some(n + usize::from(v?)))
        },
    },
    CheckSpec {
        name: "iam_support_role",
        collector: NAME,
        title: "A user, group or role can manage incidents with AWS Support",
        severity: Severity::Low,
        cis: "1.17",
        describe: |_| "no user, group or role has AWSSupportAccess attached".into(),
        failed: |d, _, _| {
            Some(usize::from(
                data(d)?.holding(SUPPORT_POLICY).next().is_none(),
            ))
        },
    },
    CheckSpec {
        name: "iam_server_certificate_expired",
        collector: NAME,
        title: "Expired IAM server certificates are removed",
        severity: Severity::Medium,
        cis: "1.19",
        describe: |_| "an IAM server certificate has expired".into(),
        failed: |d, now, _| {
            Some(
                data(d)?
                    .certificates
                    .as_ref()?
                    .iter()
                    .filter(|c| certificate_expired(c, now))
                    .count(),
            )
        },
    },
    CheckSpec {
        name: "iam_cloudshell_full_access",
        collector: NAME,
        title: "AWSCloudShellFullAccess is attached to no user, group or role",
        severity: Severity::Medium,
        cis: "1.22",
        describe: |_| "a user, group or role has AWSCloudShellFullAccess attached".into(),
        failed: |d, _, _| Some(data(d)?.holding(CLOUDSHELL_POLICY).count()),
    },
];

pub const USER_DIRECT_POLICIES: Check = Check(&CHECKS[0]);
pub const POLICY_FULL_ADMIN_CHECK: Check = Check(&CHECKS[1]);
pub const SUPPORT_ROLE: Check = Check(&CHECKS[2]);
pub const SERVER_CERTIFICATE_EXPIRED: Check = Check(&CHECKS[3]);
pub const CLOUDSHELL_FULL_ACCESS: Check = Check(&CHECKS[4]);

fn findings(account_id: &str, data: &Data, now: f64, _c: &ChecksConfig, out: &mut Vec<Finding>) {
    let Some(d) = data.downcast_ref::<AuthzData>() else {
        return;
    };
    // Users and roles are owned by their tags; policies, certificates and the account's
    // support role fall to the account's owner.
    let mut add = |check, resource: String, owner: &str, failed, details: String| {
        out.push(Finding {
            account_id: account_id.to_owned(),
            check,
            resource,
            failed,
            details,
            owner: Owner::Own(owner.to_owned()),
        });
    };
    for (u, tagged) in d.users_tagged() {
        add(
            USER_DIRECT_POLICIES,
            u.name.clone(),
            &tagged.owner,
            user_has_direct_policies(u),
            format!(
                "{} attached, {} inline policies",
                u.attached.len(),
                u.inline
            ),
        );
    }
    for p in &d.policies {
        let Some(failed) = attached_full_admin(p) else {
            continue;
        };
        let grants = match p.full_admin {
            Some(true) => "allows \"*\" on \"*\"",
            Some(false) => "does not allow \"*\" on \"*\"",
            None => "its default version cannot be read",
        };
        add(
            POLICY_FULL_ADMIN_CHECK,
            p.name.clone(),
            "",
            failed,
            format!(
                "{grants}, attached to {} user(s), group(s) or role(s)",
                p.attachments
            ),
        );
    }
    let support: Vec<String> = d
        .holding(SUPPORT_POLICY)
        .map(|e| format!("{}/{}", e.kind.as_str(), e.name))
        .collect();
    add(
        SUPPORT_ROLE,
        "account".into(),
        "",
        support.is_empty(),
        if support.is_empty() {
            "AWSSupportAccess is attached to no user, group or role".into()
        } else {
            format!("AWSSupportAccess attached to {}", support.join(", "))
        },
    );
    for c in d.certificates.iter().flatten() {
        let expired = certificate_expired(c, now);
        let days = whole_days((unix(c.expiration) - now).abs());
        add(
            SERVER_CERTIFICATE_EXPIRED,
            c.name.clone(),
            "",
            expired,
            if expired {
                format!("expired {days} days ago ({})", rfc3339(c.expiration))
            } else {
                format!("expires in {days} days ({})", rfc3339(c.expiration))
            },
        );
    }
    // Only holders are resources here: every other entity would be a row that says nothing.
    for e in d.holding(CLOUDSHELL_POLICY) {
        add(
            CLOUDSHELL_FULL_ACCESS,
            format!("{}/{}", e.kind.as_str(), e.name),
            d.owner_of(e.kind, &e.name),
            true,
            "AWSCloudShellFullAccess attached".into(),
        );
    }
}

/// Each user's owner, for the findings of the `iam` collector on the same users.
fn user_owners(data: &Data, out: &mut std::collections::HashMap<String, String>) {
    let Some(d) = data.downcast_ref::<AuthzData>() else {
        return;
    };
    out.extend(
        d.users_tagged()
            .filter(|(_, t)| !t.owner.is_empty())
            .map(|(u, t)| (u.name.clone(), t.owner.clone())),
    );
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::iam::{EntityKind, ManagedPolicy};

    #[test]
    fn full_admin_needs_star_action_and_star_resource_in_one_allow() {
        let yes = [
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","*"],"Resource":["*"]}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"*:*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#,
        ];
        let no = [
            r#"{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/*"}}"#,
            // Star action and star resource in different statements is not one grant of both.
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b"},{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            r#"{"Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}"#,
        ];
        for d in yes {
            assert_eq!(allows_full_admin(d), Some(true), "{d}");
        }
        for d in no {
            assert_eq!(allows_full_admin(d), Some(false), "{d}");
        }
        assert_eq!(allows_full_admin("not json"), None);
        assert_eq!(allows_full_admin(r#"{"Version":"2012-10-17"}"#), None);
        // IAM's answers are URL-encoded.
        let encoded = "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%7D%7D";
        assert_eq!(
            allows_full_admin(&crate::aws::iam::decode_policy_document(encoded)),
            Some(true)
        );
    }

    #[test]
    fn aws_managed_arns_in_every_partition() {
        assert!(is_aws_managed(
            "arn:aws:iam::aws:policy/AWSSupportAccess",
            SUPPORT_POLICY
        ));
        assert!(is_aws_managed(
            "arn:aws-us-gov:iam::aws:policy/AWSSupportAccess",
            SUPPORT_POLICY
        ));
        // A customer policy of the same name is not AWS's.
        assert!(!is_aws_managed(
            "arn:aws:iam::123456789012:policy/AWSSupportAccess",
            SUPPORT_POLICY
        ));
        assert!(!is_aws_managed(
            "arn:aws:iam::aws:policy/AWSSupportAccessX",
            SUPPORT_POLICY
        ));
    }

    fn entity(kind: EntityKind, name: &str, attached: &[&str], inline: usize) -> Entity {
        Entity {
            kind,
            name: name.into(),
            arn: format!("arn:aws:iam::123456789012:{}/{name}", kind.as_str()),
            attached: attached.iter().map(|s| (*s).to_owned()).collect(),
            inline,
            tags: Vec::new(),
        }
    }

    #[test]
    fn checks_count_what_they_say() {
        let support = "arn:aws:iam::aws:policy/AWSSupportAccess";
        let shell = "arn:aws:iam::aws:policy/AWSCloudShellFullAccess";
        let admin = r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;
        let details = AuthorizationDetails {
            entities: vec![
                entity(EntityKind::User, "direct", &[shell], 0),
                entity(EntityKind::User, "inline", &[], 1),
                entity(EntityKind::User, "grouped", &[], 0),
                entity(
                    EntityKind::Group,
                    "ops",
                    &[shell, "arn:aws:iam::123456789012:policy/admin-attached"],
                    2,
                ),
                entity(EntityKind::Role, "support", &[support], 0),
            ],
            policies: vec![
                ManagedPolicy {
                    name: "admin-attached".into(),
                    arn: "arn:aws:iam::123456789012:policy/admin-attached".into(),
                    document: Some(admin.into()),
                },
                ManagedPolicy {
                    name: "admin-unattached".into(),
                    arn: "arn:aws:iam::123456789012:policy/admin-unattached".into(),
                    document: Some(admin.into()),
                },
            ],
        };
        let now = 1_800_000_000.0;
        let cert = |name: &str, t: i64| ServerCertificate {
            name: name.into(),
            arn: String::new(),
            expiration: DateTime::from_timestamp(t, 0).unwrap(),
        };
        let d = AuthzData::new(
            details,
            Some(vec![cert("old", 1_700_000_000), cert("new", 1_900_000_000)]),
            Default::default(),
        );
        let c = ChecksConfig::default();
        let count = |check: Check| (check.0.failed)(&d, now, &c);
        assert_eq!(count(USER_DIRECT_POLICIES), Some(2));
        assert_eq!(count(POLICY_FULL_ADMIN_CHECK), Some(1));
        assert_eq!(count(SUPPORT_ROLE), Some(0));
        assert_eq!(count(SERVER_CERTIFICATE_EXPIRED), Some(1));
        assert_eq!(count(CLOUDSHELL_FULL_ACCESS), Some(2));

        let mut out = Vec::new();
        findings("123456789012", &d, now, &c, &mut out);
        let failed: Vec<(&str, &str)> = out
            .iter()
            .filter(|f| f.failed)
            .map(|f| (f.check.name(), f.resource.as_str()))
            .collect();
        assert_eq!(
            failed,
            [
                ("iam_user_direct_policies", "direct"),
                ("iam_user_direct_policies", "inline"),
                ("iam_policy_full_admin", "admin-attached"),
                ("iam_server_certificate_expired", "old"),
                ("iam_cloudshell_full_access", "user/direct"),
                ("iam_cloudshell_full_access", "group/ops"),
            ]
        );

        // Without AWSSupportAccess anywhere, the account fails; a denied certificate listing
        // is unknown, not zero.
        let d = AuthzData::new(AuthorizationDetails::default(), None, Default::default());
        assert_eq!((SUPPORT_ROLE.0.failed)(&d, now, &c), Some(1));
        assert_eq!((SERVER_CERTIFICATE_EXPIRED.0.failed)(&d, now, &c), None);
    }
}
