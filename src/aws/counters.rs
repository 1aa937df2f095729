//! AWS calls counted per attempt by the SDK interceptor in [`super`], per account, for the
//! exporter's own `infraaudit_aws_*` families (encoded by `metrics`, which reads these maps).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// (account_id, service, operation)
pub type ApiKey = (String, &'static str, String);

/// AWS calls, counted per attempt by the SDK interceptor in `aws`. Sorted maps, so that the
/// exposition is in a stable order.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    requests: Mutex<BTreeMap<ApiKey, u64>>,
    errors: Mutex<BTreeMap<(ApiKey, &'static str), u64>>,
    /// (account_id, code) -> assumed-role credentials dropped after AWS rejected them.
    dropped: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// account_id -> seconds its calls waited for a concurrency slot.
    waited: Mutex<BTreeMap<String, f64>>,
}

impl ApiMetrics {
    /// One attempt whose answer was read (`error`: its code when it failed), for callers
    /// without an account that can leave the set (tests, benchmarks).
    pub fn record(
        &self,
        account_id: &str,
        service: &'static str,
        operation: &str,
        error: Option<&'static str>,
    ) {
        let counted = AtomicBool::new(true);
        self.record_request(&counted, account_id, service, operation);
        if let Some(code) = error {
            self.record_error(&counted, account_id, service, operation, code);
        }
    }

    /// One attempt handed to the network, counted before its answer (an attempt whose caller
    /// went away, such as an AssumeRole whose waiters all timed out, was still sent), while
    /// `counted` holds. It is read under the lock: once `counted` is false and
    /// [`ApiMetrics::forget`] has run, no late call brings a series back.
    pub fn record_request(
        &self,
        counted: &AtomicBool,
        account_id: &str,
        service: &'static str,
        operation: &str,
    ) {
        if let Ok(mut requests) = self.requests.lock()
            && counted.load(Ordering::Acquire)
        {
            let key = (account_id.to_owned(), service, operation.to_owned());
            *requests.entry(key).or_default() += 1;
        }
    }

    /// The error code of an attempt whose failure was read, while `counted` holds, as
    /// [`ApiMetrics::record_request`].
    pub fn record_error(
        &self,
        counted: &AtomicBool,
        account_id: &str,
        service: &'static str,
        operation: &str,
        code: &'static str,
    ) {
        if let Ok(mut errors) = self.errors.lock()
            && counted.load(Ordering::Acquire)
        {
            let key = (account_id.to_owned(), service, operation.to_owned());
            *errors.entry((key, code)).or_default() += 1;
        }
    }

    /// The account's assumed-role credentials were dropped: AWS rejected them with `code`, or
    /// data of another account came back, while `counted` holds.
    pub fn record_credentials_dropped(
        &self,
        counted: &AtomicBool,
        account_id: &str,
        code: &'static str,
    ) {
        if let Ok(mut dropped) = self.dropped.lock()
            && counted.load(Ordering::Acquire)
        {
            *dropped.entry((account_id.to_owned(), code)).or_default() += 1;
        }
    }

    /// One call of the account waited `seconds` for a concurrency slot, while `counted` holds.
    pub fn record_slot_wait(&self, counted: &AtomicBool, account_id: &str, seconds: f64) {
        if let Ok(mut waited) = self.waited.lock()
            && counted.load(Ordering::Acquire)
        {
            match waited.get_mut(account_id) {
                Some(total) => *total += seconds,
                None => {
                    waited.insert(account_id.to_owned(), seconds);
                }
            }
        }
    }

    /// How many times the account's credentials were dropped for `code`.
    pub fn dropped_count(&self, account_id: &str, code: &str) -> Option<u64> {
        let dropped = self.dropped.lock().ok()?;
        dropped
            .iter()
            .find(|((a, c), _)| a == account_id && *c == code)
            .map(|(_, n)| *n)
    }

    /// Seconds the account's calls waited for a concurrency slot.
    pub fn waited_seconds(&self, account_id: &str) -> Option<f64> {
        self.waited.lock().ok()?.get(account_id).copied()
    }

    /// Drops every series of an account that is no longer audited: no stale series.
    pub fn forget(&self, account_id: &str) {
        if let Ok(mut dropped) = self.dropped.lock() {
            dropped.retain(|(account, _), _| account != account_id);
        }
        if let Ok(mut waited) = self.waited.lock() {
            waited.remove(account_id);
        }
        if let Ok(mut requests) = self.requests.lock() {
            requests.retain(|(account, _, _), _| account != account_id);
        }
        if let Ok(mut errors) = self.errors.lock() {
            errors.retain(|((account, _, _), _), _| account != account_id);
        }
    }

    /// (account_id, service, operation) -> requests sent.
    pub fn requests(&self) -> BTreeMap<ApiKey, u64> {
        self.requests.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// ((account_id, service, operation), code) -> failed requests.
    pub fn errors(&self) -> BTreeMap<(ApiKey, &'static str), u64> {
        self.errors.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// (account_id, code) -> assumed-role credentials dropped.
    pub fn dropped(&self) -> BTreeMap<(String, &'static str), u64> {
        self.dropped.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// account_id -> seconds its calls waited for a concurrency slot.
    pub fn waited(&self) -> BTreeMap<String, f64> {
        self.waited.lock().map(|m| m.clone()).unwrap_or_default()
    }
}
