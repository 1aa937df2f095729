//! infraaudit: the security posture of many AWS accounts as Prometheus metrics.
//!
//! Data flows one way: AWS -> collector -> snapshot -> exposition. Collection runs in the
//! background; `/metrics` only reads the latest immutable snapshot.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod aws;
pub mod checks;
pub mod collector;
pub mod config;
pub mod discovery;
pub mod error;
pub mod expo;
pub mod gzip;
pub mod http;
pub mod metrics;
pub mod overview;
pub mod owners;
pub mod scheduler;
pub mod snapshot;
pub mod time;
pub mod web;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("INFRAAUDIT_REVISION");
