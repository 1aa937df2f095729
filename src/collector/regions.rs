//! The run of a regional collector (ec2, ebs, vpc): one call per region, regions concurrently.
//!
//! A region that fails (not enabled, denied by an SCP, throttled) keeps its last good data and
//! does not fail the others; the run fails only when no region answered (with the first
//! region's error), or when any region answered for another account (`account_mismatch`:
//! nothing of the run can be trusted). A failed run leaves the last good data untouched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, stream};

use crate::aws::ec2::Regions;
use crate::error::Error;

/// One region's part of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regional<T> {
    pub region: String,
    /// False when this run failed there; `data` is then the last good one.
    pub success: bool,
    /// None when the region has never answered.
    pub data: Option<Arc<T>>,
}

/// Each region's last good data.
pub type Cache<T> = HashMap<String, Arc<T>>;

/// Calls `call` for each of `configured` (or, when empty, of the account's enabled regions),
/// `max_concurrency` regions at a time; sorted by region.
pub async fn collect<T, F, Fut>(
    api: &impl Regions,
    configured: &[String],
    last: &Mutex<Cache<T>>,
    max_concurrency: usize,
    call: F,
) -> Result<Vec<Regional<T>>, Error>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let regions = if configured.is_empty() {
        api.enabled_regions().await?
    } else {
        configured.to_vec()
    };
    let mut results = stream::iter(regions)
        .map(|region| {
            let answer = call(region.clone());
            async move { (region, answer.await) }
        })
        .buffer_unordered(max_concurrency.max(1));
    let previous = last.lock().map(|l| l.clone()).unwrap_or_default();
    let mut fresh = Cache::new();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    while let Some((region, result)) = results.next().await {
        let (success, data) = match result {
            Ok(data) => (true, Some(Arc::new(data))),
            Err(e) => {
                errors.push((region.clone(), e));
                (false, previous.get(&region).cloned())
            }
        };
        if let Some(data) = &data {
            fresh.insert(region.clone(), data.clone());
        }
        out.push(Regional {
            region,
            success,
            data,
        });
    }
    // Another account's data in any region: nothing of this run can be trusted.
    if let Some(i) = errors
        .iter()
        .position(|(_, e)| matches!(e, Error::AccountMismatch { .. }))
    {
        return Err(errors.swap_remove(i).1);
    }
    // When no region answered, the run fails and its failure line says why (once, not once
    // per region as well).
    if out.iter().all(|r| !r.success) {
        if let Some((_, e)) = errors.into_iter().next() {
            return Err(e);
        }
    } else {
        for (region, e) in errors {
            tracing::warn!(%region, error.kind = e.kind(), error = %e, "region failed; keeping its last good data");
        }
    }
    if let Ok(mut l) = last.lock() {
        *l = fresh;
    }
    out.sort_by(|a, b| a.region.cmp(&b.region));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per region: a number, or an AWS error code; a region not in the table is not enabled.
    #[derive(Default)]
    struct Fake {
        enabled: Vec<String>,
        answers: Mutex<HashMap<String, Result<u32, Error>>>,
        calls: Mutex<Vec<String>>,
    }

    impl Regions for Fake {
        async fn enabled_regions(&self) -> Result<Vec<String>, Error> {
            self.calls.lock().unwrap().push("DescribeRegions".into());
            Ok(self.enabled.clone())
        }
    }

    fn aws(code: &str) -> Error {
        Error::Aws {
            service: "ec2",
            operation: "Call",
            code: code.into(),
            message: String::new(),
        }
    }

    fn mismatch() -> Error {
        Error::AccountMismatch {
            expected: "111111111111".into(),
            found: "222222222222".into(),
            evidence: "a test",
        }
    }

    impl Fake {
        fn set(&self, region: &str, answer: Result<u32, Error>) {
            self.answers.lock().unwrap().insert(region.into(), answer);
        }

        async fn call(&self, region: String) -> Result<u32, Error> {
            self.calls.lock().unwrap().push(region.clone());
            match self.answers.lock().unwrap().get(&region) {
                Some(Ok(n)) => Ok(*n),
                Some(Err(Error::AccountMismatch { .. })) => Err(mismatch()),
                Some(Err(e)) => Err(aws(e.aws_code().unwrap_or("other"))),
                None => Err(aws("AuthFailure")),
            }
        }

        async fn run(&self, regions: &[&str], last: &Mutex<Cache<u32>>) -> Result<Seen, Error> {
            let regions: Vec<String> = regions.iter().map(|s| (*s).to_owned()).collect();
            let out = collect(self, &regions, last, 2, |r| self.call(r)).await?;
            Ok(out
                .into_iter()
                .map(|r| (r.region, r.success, r.data.map(|d| *d)))
                .collect())
        }
    }

    type Seen = Vec<(String, bool, Option<u32>)>;

    fn seen(rows: &[(&str, bool, Option<u32>)]) -> Seen {
        rows.iter()
            .map(|(r, s, d)| ((*r).to_owned(), *s, *d))
            .collect()
    }

    #[tokio::test]
    async fn enabled_regions_are_asked_only_when_none_are_configured() {
        let api = Fake {
            enabled: vec!["b".into(), "a".into()],
            ..Fake::default()
        };
        api.set("a", Ok(1));
        api.set("b", Ok(2));
        let last = Mutex::default();
        let got = api.run(&[], &last).await.unwrap();
        assert_eq!(got, seen(&[("a", true, Some(1)), ("b", true, Some(2))]));
        assert!(
            api.calls
                .lock()
                .unwrap()
                .contains(&"DescribeRegions".into())
        );
        api.calls.lock().unwrap().clear();
        api.run(&["a"], &last).await.unwrap();
        assert_eq!(*api.calls.lock().unwrap(), ["a"]);
    }

    #[tokio::test]
    async fn a_failed_region_keeps_its_last_good_data_and_a_new_one_has_none() {
        let api = Fake::default();
        api.set("a", Ok(1));
        api.set("b", Ok(2));
        let last = Mutex::default();
        api.run(&["a", "b"], &last).await.unwrap();
        api.set("a", Ok(10));
        api.set("b", Err(aws("UnauthorizedOperation")));
        let got = api.run(&["a", "b", "c"], &last).await.unwrap();
        assert_eq!(
            got,
            seen(&[
                ("a", true, Some(10)),
                ("b", false, Some(2)),
                ("c", false, None)
            ])
        );
        // Still failing: still the same last good data.
        let got = api.run(&["a", "b"], &last).await.unwrap();
        assert_eq!(got, seen(&[("a", true, Some(10)), ("b", false, Some(2))]));
    }

    #[tokio::test]
    async fn no_region_answering_fails_the_run_and_keeps_the_cache() {
        let api = Fake::default();
        api.set("a", Ok(1));
        let last = Mutex::default();
        api.run(&["a", "b"], &last).await.unwrap();
        let before = last.lock().unwrap().clone();
        api.set("a", Err(aws("RequestLimitExceeded")));
        let err = api.run(&["a", "b"], &last).await.unwrap_err();
        assert!(err.aws_code().is_some());
        assert_eq!(*last.lock().unwrap(), before);
    }

    #[tokio::test]
    async fn another_account_in_one_region_fails_the_run() {
        let api = Fake::default();
        api.set("a", Ok(1));
        api.set("b", Err(mismatch()));
        let last = Mutex::default();
        let err = api.run(&["a", "b"], &last).await.unwrap_err();
        assert_eq!(err.kind(), "account_mismatch");
        assert!(last.lock().unwrap().is_empty());
    }
}
