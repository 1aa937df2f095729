//! The IAM calls the collectors make, each within the account's concurrency limit.

use aws_sdk_iam::types::{
    AccessAdvisorUsageGranularityType, JobStatusType, ReportStateType, SummaryKeyType,
};
use chrono::{DateTime, Utc};

use super::{Limiter, aws_error};
use crate::error::Error;

/// One key as ListAccessKeys returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub id: String,
    pub created: DateTime<Utc>,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    Complete,
    /// STARTED or INPROGRESS: ask again later.
    Pending,
}

/// The account's password policy, as GetAccountPasswordPolicy tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub minimum_length: Option<u32>,
    /// Days until a password expires; None when passwords do not expire.
    pub max_age_days: Option<u32>,
    /// How many previous passwords cannot be reused; None when reuse is allowed.
    pub reuse_prevention: Option<u32>,
    pub require_symbols: bool,
    pub require_numbers: bool,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
}

#[derive(Debug)]
pub struct FetchedReport {
    pub content: Vec<u8>,
    pub generated_at: Option<DateTime<Utc>>,
}

/// The two credential-report calls, apart so that the polling around them can be tested
/// without AWS.
pub trait ReportApi: Sync {
    fn generate(&self) -> impl Future<Output = Result<ReportState, Error>> + Send;
    fn get(&self) -> impl Future<Output = Result<FetchedReport, Error>> + Send;
}

impl ReportApi for IamClient {
    fn generate(&self) -> impl Future<Output = Result<ReportState, Error>> + Send {
        self.generate_credential_report()
    }

    fn get(&self) -> impl Future<Output = Result<FetchedReport, Error>> + Send {
        self.get_credential_report()
    }
}

/// ListAccessKeys, apart so that key resolution and its cache can be tested without AWS.
pub trait ListKeys: Clone + Send + Sync + 'static {
    fn list_keys(&self, user: &str) -> impl Future<Output = Result<Vec<ListedKey>, Error>> + Send;
}

impl ListKeys for IamClient {
    fn list_keys(&self, user: &str) -> impl Future<Output = Result<Vec<ListedKey>, Error>> + Send {
        self.list_access_keys(user)
    }
}

/// The account-level calls besides the report, apart so that denials can be tested.
pub trait AccountApi: Sync {
    /// The password policy; None when the account has none (NoSuchEntity).
    fn password_policy(&self)
    -> impl Future<Output = Result<Option<PasswordPolicy>, Error>> + Send;
    /// Whether the root user has a password, from GetAccountSummary.
    fn account_password_present(&self) -> impl Future<Output = Result<Option<bool>, Error>> + Send;
    /// Whether a virtual MFA device is assigned to the root user (ListVirtualMFADevices).
    fn root_virtual_mfa(&self) -> impl Future<Output = Result<bool, Error>> + Send;
}

#[derive(Clone)]
pub struct IamClient {
    client: aws_sdk_iam::Client,
    limiter: Limiter,
}

impl IamClient {
    pub fn new(client: aws_sdk_iam::Client, limiter: Limiter) -> Self {
        Self { client, limiter }
    }

    /// The account the answers must come from.
    pub fn identity(&self) -> &super::AccountIdentity {
        &self.limiter.identity
    }

    pub async fn generate_credential_report(&self) -> Result<ReportState, Error> {
        let out = self
            .limiter
            .run(|| self.client.generate_credential_report().send())
            .await
            .map_err(|e| aws_error("iam", "GenerateCredentialReport", e))?;
        Ok(match out.state() {
            Some(ReportStateType::Complete) => ReportState::Complete,
            _ => ReportState::Pending,
        })
    }

    pub async fn get_credential_report(&self) -> Result<FetchedReport, Error> {
        let out = self
            .limiter
            .run(|| self.client.get_credential_report().send())
            .await
            .map_err(|e| aws_error("iam", "GetCredentialReport", e))?;
        let generated_at = out
            .generated_time()
            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
        Ok(FetchedReport {
            content: out.content.map(|b| b.into_inner()).unwrap_or_default(),
            generated_at,
        })
    }

    /// Every IAM user name (ListUsers, paginated).
    pub async fn list_users(&self) -> Result<Vec<String>, Error> {
        let mut users = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = {
                self.limiter
                    .run(|| self.client.list_users().set_marker(marker.take()).send())
                    .await
                    .map_err(|e| aws_error("iam", "ListUsers", e))?
            };
            users.extend(out.users().iter().map(|u| u.user_name().to_owned()));
            match (out.is_truncated(), out.marker()) {
                (true, Some(m)) => marker = Some(m.to_owned()),
                _ => return Ok(users),
            }
        }
    }

    /// When the key was last used; None when never.
    pub async fn access_key_last_used(&self, key_id: &str) -> Result<Option<DateTime<Utc>>, Error> {
        let out = self
            .limiter
            .run(|| {
                self.client
                    .get_access_key_last_used()
                    .access_key_id(key_id)
                    .send()
            })
            .await
            .map_err(|e| aws_error("iam", "GetAccessKeyLastUsed", e))?;
        Ok(out
            .access_key_last_used()
            .and_then(|u| u.last_used_date())
            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())))
    }

    /// All access keys of one user (at most two, but paginated all the same).
    pub async fn list_access_keys(&self, user: &str) -> Result<Vec<ListedKey>, Error> {
        let mut keys = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = {
                self.limiter
                    .run(|| {
                        self.client
                            .list_access_keys()
                            .user_name(user)
                            .set_marker(marker.take())
                            .send()
                    })
                    .await
                    .map_err(|e| aws_error("iam", "ListAccessKeys", e))?
            };
            for k in out.access_key_metadata() {
                let (Some(id), Some(created)) = (k.access_key_id(), k.create_date()) else {
                    continue;
                };
                let Some(created) =
                    DateTime::from_timestamp(created.secs(), created.subsec_nanos())
                else {
                    continue;
                };
                keys.push(ListedKey {
                    id: id.to_owned(),
                    created,
                    active: k.status().is_some_and(|s| s.as_str() == "Active"),
                });
            }
            match (out.is_truncated(), out.marker()) {
                (true, Some(m)) => marker = Some(m.to_owned()),
                _ => return Ok(keys),
            }
        }
    }
}

impl AccountApi for IamClient {
    /// The password policy; None when the account has none (NoSuchEntity).
    async fn password_policy(&self) -> Result<Option<PasswordPolicy>, Error> {
        let out = match self
            .limiter
            .run(|| self.client.get_account_password_policy().send())
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let e = aws_error("iam", "GetAccountPasswordPolicy", e);
                return match e.aws_code() {
                    Some("NoSuchEntity") => Ok(None),
                    _ => Err(e),
                };
            }
        };
        let Some(p) = out.password_policy() else {
            return Ok(None);
        };
        let count = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
        Ok(Some(PasswordPolicy {
            minimum_length: count(p.minimum_password_length()),
            max_age_days: count(p.max_password_age()),
            reuse_prevention: count(p.password_reuse_prevention()),
            require_symbols: p.require_symbols(),
            require_numbers: p.require_numbers(),
            require_uppercase: p.require_uppercase_characters(),
            require_lowercase: p.require_lowercase_characters(),
        }))
    }

    /// GetAccountSummary's AccountPasswordPresent: whether the root user has a password. None
    /// when the summary does not say (older partitions, emulators).
    async fn account_password_present(&self) -> Result<Option<bool>, Error> {
        let out = self
            .limiter
            .run(|| self.client.get_account_summary().send())
            .await
            .map_err(|e| aws_error("iam", "GetAccountSummary", e))?;
        Ok(out
            .summary_map()
            .and_then(|m| m.get(&SummaryKeyType::AccountPasswordPresent))
            .map(|v| *v > 0))
    }

    /// ListVirtualMFADevices of assigned devices, page by page (1,000 a page), until one is the
    /// root user's: its user ARN is the account's `:root`, and AWS names it
    /// `root-account-mfa-device`. A hardware device is not listed there.
    async fn root_virtual_mfa(&self) -> Result<bool, Error> {
        let mut marker: Option<String> = None;
        loop {
            let sent = marker.take();
            let out = self
                .limiter
                .run(|| {
                    self.client
                        .list_virtual_mfa_devices()
                        .assignment_status(aws_sdk_iam::types::AssignmentStatusType::Assigned)
                        .max_items(1000)
                        .set_marker(sent.clone())
                        .send()
                })
                .await
                .map_err(|e| aws_error("iam", "ListVirtualMFADevices", e))?;
            let root = out.virtual_mfa_devices().iter().any(|d| {
                d.user().is_some_and(|u| u.arn().ends_with(":root"))
                    || d.serial_number().ends_with(":mfa/root-account-mfa-device")
            });
            if root {
                return Ok(true);
            }
            marker = super::next_page(
                "iam",
                "ListVirtualMFADevices",
                out.is_truncated(),
                out.marker(),
                sent.as_deref(),
            )?;
            if marker.is_none() {
                return Ok(false);
            }
        }
    }
}

/// Whether a principal is an IAM user or a role: the `principal_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalKind {
    User,
    Role,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Role => "role",
        }
    }
}

/// An IAM user or role, as ListUsers and ListRoles give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub name: String,
    pub arn: String,
    pub path: String,
}

/// One service in a service-last-accessed report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccess {
    /// The service's namespace (`s3`, `ec2`): bounded by AWS's list of services.
    pub namespace: String,
    /// The last authentication within AWS's tracking period; None when not used in it.
    pub last_authenticated: Option<DateTime<Utc>>,
}

/// One answer of GetServiceLastAccessedDetails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPage {
    InProgress,
    /// The job's ErrorDetails.
    Failed {
        code: String,
        message: String,
    },
    /// A page of services, and the marker of the next page when the answer is truncated.
    Completed {
        services: Vec<ServiceAccess>,
        next: Option<String>,
    },
}

/// The Access Advisor calls, apart so that polling, paging and partial failures can be tested
/// without AWS (the emulator does not implement them).
pub trait AccessAdvisorApi: Clone + Send + Sync + 'static {
    /// Every user and role (ListUsers, ListRoles, paginated).
    fn principals(&self) -> impl Future<Output = Result<Vec<Principal>, Error>> + Send;
    /// GenerateServiceLastAccessedDetails at service level: the job's id.
    fn generate_job(&self, arn: &str) -> impl Future<Output = Result<String, Error>> + Send;
    /// GetServiceLastAccessedDetails: the job's state, or one page of its report.
    fn job_page(
        &self,
        job_id: &str,
        marker: Option<&str>,
    ) -> impl Future<Output = Result<JobPage, Error>> + Send;
}

impl AccessAdvisorApi for IamClient {
    async fn principals(&self) -> Result<Vec<Principal>, Error> {
        // The SDK's paginators follow the markers, and stop should one come back again.
        let mut all = Vec::new();
        let mut users = self.client.list_users().into_paginator().send();
        while let Some(page) = {
            let _permit = self.limiter.acquire().await;
            users.next().await
        } {
            let out = page.map_err(|e| aws_error("iam", "ListUsers", e))?;
            all.extend(out.users().iter().map(|u| Principal {
                kind: PrincipalKind::User,
                name: u.user_name().to_owned(),
                arn: u.arn().to_owned(),
                path: u.path().to_owned(),
            }));
        }
        let mut roles = self.client.list_roles().into_paginator().send();
        while let Some(page) = {
            let _permit = self.limiter.acquire().await;
            roles.next().await
        } {
            let out = page.map_err(|e| aws_error("iam", "ListRoles", e))?;
            all.extend(out.roles().iter().map(|r| Principal {
                kind: PrincipalKind::Role,
                name: r.role_name().to_owned(),
                arn: r.arn().to_owned(),
                path: r.path().to_owned(),
            }));
        }
        self.identity().check_arns(
            all.iter().map(|p| p.arn.as_str()),
            "IAM ListUsers/ListRoles",
        )?;
        Ok(all)
    }

    async fn generate_job(&self, arn: &str) -> Result<String, Error> {
        let out = self
            .limiter
            .run(|| {
                self.client
                    .generate_service_last_accessed_details()
                    .arn(arn)
                    .granularity(AccessAdvisorUsageGranularityType::ServiceLevel)
                    .send()
            })
            .await
            .map_err(|e| aws_error("iam", "GenerateServiceLastAccessedDetails", e))?;
        out.job_id()
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Error::Aws {
                service: "iam",
                operation: "GenerateServiceLastAccessedDetails",
                code: "empty_response".into(),
                message: "no JobId in the answer".into(),
            })
    }

    async fn job_page(&self, job_id: &str, marker: Option<&str>) -> Result<JobPage, Error> {
        let out = self
            .limiter
            .run(|| {
                self.client
                    .get_service_last_accessed_details()
                    .job_id(job_id)
                    .set_marker(marker.map(str::to_owned))
                    .send()
            })
            .await
            .map_err(|e| aws_error("iam", "GetServiceLastAccessedDetails", e))?;
        Ok(match out.job_status() {
            JobStatusType::InProgress => JobPage::InProgress,
            JobStatusType::Completed => JobPage::Completed {
                services: out
                    .services_last_accessed()
                    .iter()
                    .map(|s| ServiceAccess {
                        namespace: s.service_namespace().to_owned(),
                        last_authenticated: s
                            .last_authenticated()
                            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                    })
                    .collect(),
                next: out
                    .marker()
                    .filter(|_| out.is_truncated())
                    .map(str::to_owned),
            },
            // FAILED, or a status this SDK does not know: no report to read either way.
            other => JobPage::Failed {
                code: out
                    .error()
                    .map_or_else(|| other.as_str().to_owned(), |e| e.code().to_owned()),
                message: out
                    .error()
                    .map(|e| e.message().to_owned())
                    .unwrap_or_default(),
            },
        })
    }
}

/// What an IAM user, group or role is: the `principal_type` of the authorization details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKind {
    User,
    Group,
    Role,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::Group => "group",
            EntityKind::Role => "role",
        }
    }
}

/// A user, group or role with the policies on it, from GetAccountAuthorizationDetails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub kind: EntityKind,
    pub name: String,
    pub arn: String,
    /// ARNs of the managed policies attached to it.
    pub attached: Vec<String>,
    /// Its inline policies.
    pub inline: usize,
    /// Its tags (key, value): users' and roles' (groups have none).
    pub tags: Vec<(String, String)>,
}

/// A customer-managed policy, from GetAccountAuthorizationDetails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub name: String,
    pub arn: String,
    /// The default version's document, decoded; None when the answer has none.
    pub document: Option<String>,
}

/// The account's users, groups, roles and customer-managed policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationDetails {
    pub entities: Vec<Entity>,
    pub policies: Vec<ManagedPolicy>,
}

/// An IAM server certificate (ListServerCertificates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCertificate {
    pub name: String,
    pub arn: String,
    pub expiration: DateTime<Utc>,
}

/// The calls of the `iam_authz` collector, apart so that a denial can be tested without AWS.
pub trait AuthzApi: Sync {
    /// GetAccountAuthorizationDetails for users, groups, roles and customer-managed policies,
    /// every page.
    fn authorization_details(
        &self,
    ) -> impl Future<Output = Result<AuthorizationDetails, Error>> + Send;
    /// ListServerCertificates, every page.
    fn server_certificates(
        &self,
    ) -> impl Future<Output = Result<Vec<ServerCertificate>, Error>> + Send;
}

/// A policy document as IAM returns it: URL-encoded JSON (RFC 3986), or plain JSON from an
/// emulator that does not encode.
pub fn decode_policy_document(raw: &str) -> String {
    if raw.trim_start().starts_with('{') {
        return raw.to_owned();
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

fn entity(kind: EntityKind, name: &str, arn: &str, attached: Vec<String>, inline: usize) -> Entity {
    Entity {
        kind,
        name: name.to_owned(),
        arn: arn.to_owned(),
        attached,
        inline,
        tags: Vec::new(),
    }
}

fn tags_of(list: &[aws_sdk_iam::types::Tag]) -> Vec<(String, String)> {
    list.iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

fn attached_arns(list: &[aws_sdk_iam::types::AttachedPolicy]) -> Vec<String> {
    list.iter()
        .filter_map(|p| p.policy_arn().map(str::to_owned))
        .collect()
}

impl AuthzApi for IamClient {
    async fn authorization_details(&self) -> Result<AuthorizationDetails, Error> {
        use aws_sdk_iam::types::EntityType;
        let mut details = AuthorizationDetails::default();
        let mut marker: Option<String> = None;
        loop {
            let sent = marker.take();
            let out = self
                .limiter
                .run(|| {
                    // AWS-managed policies are left out: only their attachments matter, and
                    // they would be most of the pages.
                    self.client
                        .get_account_authorization_details()
                        .filter(EntityType::User)
                        .filter(EntityType::Group)
                        .filter(EntityType::Role)
                        .filter(EntityType::LocalManagedPolicy)
                        .max_items(1000)
                        .set_marker(sent.clone())
                        .send()
                })
                .await
                .map_err(|e| aws_error("iam", "GetAccountAuthorizationDetails", e))?;
            for u in out.user_detail_list() {
                let mut user = entity(
                    EntityKind::User,
                    u.user_name().unwrap_or_default(),
                    u.arn().unwrap_or_default(),
                    attached_arns(u.attached_managed_policies()),
                    u.user_policy_list().len(),
                );
                // Tags come with the page: owners of users cost no call of their own.
                user.tags = tags_of(u.tags());
                details.entities.push(user);
            }
            for g in out.group_detail_list() {
                details.entities.push(entity(
                    EntityKind::Group,
                    g.group_name().unwrap_or_default(),
                    g.arn().unwrap_or_default(),
                    attached_arns(g.attached_managed_policies()),
                    g.group_policy_list().len(),
                ));
            }
            for r in out.role_detail_list() {
                let mut role = entity(
                    EntityKind::Role,
                    r.role_name().unwrap_or_default(),
                    r.arn().unwrap_or_default(),
                    attached_arns(r.attached_managed_policies()),
                    r.role_policy_list().len(),
                );
                role.tags = tags_of(r.tags());
                details.entities.push(role);
            }
            for p in out.policies() {
                let document = p
                    .policy_version_list()
                    .iter()
                    .find(|v| v.is_default_version())
                    .and_then(|v| v.document())
                    .map(decode_policy_document);
                let arn = p.arn().unwrap_or_default();
                // The name is the ARN's last segment; an answer without PolicyName still has it.
                let name = p
                    .policy_name()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or_default());
                details.policies.push(ManagedPolicy {
                    name: name.to_owned(),
                    arn: arn.to_owned(),
                    document,
                });
            }
            marker = super::next_page(
                "iam",
                "GetAccountAuthorizationDetails",
                out.is_truncated(),
                out.marker(),
                sent.as_deref(),
            )?;
            if marker.is_none() {
                break;
            }
        }
        let arns = details
            .entities
            .iter()
            .map(|e| e.arn.as_str())
            .chain(details.policies.iter().map(|p| p.arn.as_str()));
        self.identity()
            .check_arns(arns, "IAM GetAccountAuthorizationDetails")?;
        Ok(details)
    }

    async fn server_certificates(&self) -> Result<Vec<ServerCertificate>, Error> {
        let mut certificates = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let sent = marker.take();
            let out = self
                .limiter
                .run(|| {
                    self.client
                        .list_server_certificates()
                        .max_items(1000)
                        .set_marker(sent.clone())
                        .send()
                })
                .await
                .map_err(|e| aws_error("iam", "ListServerCertificates", e))?;
            for c in out.server_certificate_metadata_list() {
                // Expiration is in every real answer; without it there is nothing to judge.
                let Some(expiration) = c
                    .expiration()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                else {
                    return Err(Error::Aws {
                        service: "iam",
                        operation: "ListServerCertificates",
                        code: "empty_response".into(),
                        message: format!(
                            "no Expiration for server certificate {}",
                            c.server_certificate_name()
                        ),
                    });
                };
                certificates.push(ServerCertificate {
                    name: c.server_certificate_name().to_owned(),
                    arn: c.arn().to_owned(),
                    expiration,
                });
            }
            marker = super::next_page(
                "iam",
                "ListServerCertificates",
                out.is_truncated(),
                out.marker(),
                sent.as_deref(),
            )?;
            if marker.is_none() {
                break;
            }
        }
        self.identity().check_arns(
            certificates.iter().map(|c| c.arn.as_str()),
            "IAM ListServerCertificates",
        )?;
        certificates.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(certificates)
    }
}
