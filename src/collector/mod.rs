//! Collectors: each turns one account's AWS state into data for the snapshot.
//!
//! Adding one: a file here, a variant of [`CollectorData`], a line in [`for_account`].

pub mod credential_report;
pub mod iam;
pub mod key_match;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::aws::AccountSession;
use crate::config::Config;
use crate::error::Error;

/// What one successful run produced.
#[derive(Debug)]
pub enum CollectorData {
    Iam(iam::IamData),
}

pub trait Collector: Send + Sync {
    /// The `collector` label value.
    fn name(&self) -> &'static str;
    fn interval(&self) -> Duration;
    /// A run still going after this long is abandoned and counts as failed.
    fn timeout(&self) -> Duration;
    fn collect(&self) -> BoxFuture<'_, Result<CollectorData, Error>>;
}

/// The explicit list of collectors for one account.
pub fn for_account(config: &Config, session: &Arc<AccountSession>) -> Vec<Arc<dyn Collector>> {
    vec![Arc::new(iam::IamCollector::new(
        session,
        &config.collectors.iam,
    ))]
}

/// Every IAM action the collectors call, for the documented policy (checked by a test).
pub fn permissions() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = iam::PERMISSIONS.to_vec();
    all.sort_unstable();
    all.dedup();
    all
}
