//! The one error type of runtime paths. `kind()` gives a label-safe name from a bounded set.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed after the SDK's retries. `code` is AWS's error code, or a transport
    /// failure such as `dispatch_failure`; `message` is for logs only.
    #[error("{service} {operation}: {code}: {message}")]
    Aws {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
    },
    /// The credential report did not parse; the message says where (never a whole row).
    #[error("malformed credential report: {0}")]
    Report(String),
    #[error("the credential report was not ready within {0:?}")]
    ReportTimeout(Duration),
    #[error("the run did not finish within {0:?}")]
    Timeout(Duration),
    /// AWS reported a service-last-accessed job FAILED; `code` and `message` are its ErrorDetails.
    #[error("the Access Advisor job for {principal} failed: {code}: {message}")]
    AccessAdvisorJobFailed {
        principal: String,
        code: String,
        message: String,
    },
    #[error("the Access Advisor job for {0} was not done within {1:?}")]
    AccessAdvisorJobTimeout(String, Duration),
    #[error("the collector is not enabled for this account")]
    Disabled,
    /// Encoding a run's series panicked: a bug, counted as a failed run.
    #[error("the run's series could not be encoded")]
    Encode,
    /// AWS answered for another account than the one configured: an `account_id` that is not
    /// the credentials' account, or an endpoint or proxy answering for another account. Nothing
    /// of the run is recorded.
    #[error(
        "{evidence} shows account {found}, not the configured account {expected}; nothing from this run is recorded"
    )]
    AccountMismatch {
        expected: String,
        found: String,
        /// Where the other account showed: `STS GetCallerIdentity`, `the credential report`...
        evidence: &'static str,
    },
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Aws { .. } => "aws",
            Error::Report(_) => "report_malformed",
            Error::ReportTimeout(_) => "report_timeout",
            Error::Timeout(_) => "timeout",
            Error::AccessAdvisorJobFailed { .. } => "access_advisor_job_failed",
            Error::AccessAdvisorJobTimeout(..) => "access_advisor_job_timeout",
            Error::Disabled => "collector_disabled",
            Error::Encode => "encode",
            Error::AccountMismatch { .. } => "account_mismatch",
        }
    }

    /// AWS's error code, when the error is an AWS error.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => Some(code),
            _ => None,
        }
    }
}
