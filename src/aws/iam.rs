//! The IAM calls the collectors make, each within the account's concurrency limit.

use std::sync::Arc;

use aws_sdk_iam::types::ReportStateType;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::aws_error;
use crate::collector::key_match::ListedKey;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    Complete,
    /// STARTED or INPROGRESS: ask again later.
    Pending,
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

#[derive(Clone)]
pub struct IamClient {
    client: aws_sdk_iam::Client,
    limiter: Arc<Semaphore>,
}

impl IamClient {
    pub fn new(client: aws_sdk_iam::Client, limiter: Arc<Semaphore>) -> Self {
        Self { client, limiter }
    }

    pub async fn generate_credential_report(&self) -> Result<ReportState, Error> {
        let _permit = self.limiter.acquire().await;
        let out = self
            .client
            .generate_credential_report()
            .send()
            .await
            .map_err(|e| aws_error("iam", "GenerateCredentialReport", e))?;
        Ok(match out.state() {
            Some(ReportStateType::Complete) => ReportState::Complete,
            _ => ReportState::Pending,
        })
    }

    pub async fn get_credential_report(&self) -> Result<FetchedReport, Error> {
        let _permit = self.limiter.acquire().await;
        let out = self
            .client
            .get_credential_report()
            .send()
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

    /// All access keys of one user (at most two, but paginated all the same).
    pub async fn list_access_keys(&self, user: &str) -> Result<Vec<ListedKey>, Error> {
        let mut keys = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = {
                let _permit = self.limiter.acquire().await;
                self.client
                    .list_access_keys()
                    .user_name(user)
                    .set_marker(marker.take())
                    .send()
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
