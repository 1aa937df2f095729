//! `basic_auth_users`: HTTP basic auth against bcrypt hashes.
//!
//! bcrypt costs about 100 ms at cost 10, by design. So a verdict, good or bad, is cached per
//! (user, password) for the life of the configuration (a reload starts afresh), keyed by a
//! SHA-256 digest so that no password is kept; a scrape every 15 s then costs one hash lookup.
//! Uncached verifications run on the blocking pool, at most one per CPU at a time, so a flood
//! of wrong passwords queues instead of taking every core.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::WebConfigError;

/// Verified for unknown users, so that a wrong user name takes as long as a wrong password
/// (the exporter-toolkit does the same). The bcrypt hash, cost 10, of a random string.
const DUMMY_HASH: &str = "$2b$10$kzl.6rtWhnZa5NTRmMD8sOG.qqOA5eYX31RO11XKIAi0b43O5YRcq";

/// Verdicts kept; past this the cache starts over (a flood of distinct wrong passwords must not
/// grow memory).
const CACHE_LIMIT: usize = 1024;

struct User {
    name_digest: [u8; 32],
    hash: String,
}

pub struct BasicAuth {
    users: Vec<User>,
    cache: Mutex<HashMap<[u8; 32], bool>>,
    bcrypt_slots: Arc<Semaphore>,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl BasicAuth {
    /// Checks that every value is a bcrypt hash; an error names the user, never the hash.
    pub(super) fn new(users: &BTreeMap<String, String>) -> Result<Self, WebConfigError> {
        let mut list = Vec::with_capacity(users.len());
        for (name, hash) in users {
            if bcrypt::HashParts::from_str(hash).is_err() {
                return Err(WebConfigError::new(
                    format!("basic_auth_users.{name}"),
                    "not a bcrypt hash (`htpasswd -nBC 10 \"\" | tr -d ':\\n'` makes one)",
                ));
            }
            list.push(User {
                name_digest: digest(name.as_bytes()),
                hash: hash.clone(),
            });
        }
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            users: list,
            cache: Mutex::new(HashMap::new()),
            bcrypt_slots: Arc::new(Semaphore::new(cpus)),
        })
    }

    /// Whether the `Authorization` header carries the basic credentials of a configured user.
    pub async fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        // The user name's length is part of the key, so ("ab", "c") and ("a", "bc") differ.
        let mut key = Sha256::new();
        key.update((user.len() as u64).to_le_bytes());
        key.update(&user);
        key.update(&password);
        let key: [u8; 32] = key.finalize().into();
        if let Some(ok) = self.cached(&key) {
            return ok;
        }
        // Every user is compared, by digest, in constant time: timing tells nothing of names.
        let presented = digest(&user);
        let mut found: Option<&User> = None;
        for u in &self.users {
            if bool::from(u.name_digest.ct_eq(&presented)) {
                found = Some(u);
            }
        }
        let hash = found.map_or(DUMMY_HASH, |u| u.hash.as_str()).to_owned();
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return false;
        };
        let verified =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let ok = found.is_some() && verified;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, ok);
        ok
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get(key).copied()
    }
}

/// `Basic base64(user:password)` -> (user, password), as bytes (RFC 7617 leaves the charset
/// open). The password may contain colons; the user name cannot.
fn parse_basic(value: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let (user, password) = decoded.split_at(colon);
    Some((user.to_vec(), password[1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
    }

    #[test]
    fn parses_basic_credentials() {
        assert_eq!(
            parse_basic(&header("alice", "a:b")),
            Some((b"alice".to_vec(), b"a:b".to_vec()))
        );
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer abc")), None);
        assert_eq!(parse_basic(&HeaderValue::from_static("Basic !!!")), None);
    }

    #[test]
    fn the_dummy_hash_is_a_bcrypt_hash() {
        assert!(bcrypt::HashParts::from_str(DUMMY_HASH).is_ok());
    }

    /// Timing does not tell which names exist: an unknown user's check costs a bcrypt (of the
    /// dummy hash) like a known user's wrong password. Medians of interleaved checks, so that a
    /// busy machine slows both alike; within 2x either way (without the dummy check the unknown
    /// user's is thousands of times faster).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_users_cost_a_bcrypt_like_known_ones() {
        const N: usize = 11;
        // The dummy hash's cost, and `htpasswd -nBC 10`'s.
        let hash = bcrypt::hash("s3cret", 10).unwrap();
        let auth = BasicAuth::new(&BTreeMap::from([("alice".to_owned(), hash)])).unwrap();
        let timed = |user: &'static str, i: usize| {
            let auth = &auth;
            async move {
                // A new password each time: a cached verdict costs nothing.
                let started = std::time::Instant::now();
                assert!(
                    !auth
                        .allows(Some(&header(user, &format!("wrong-{i}"))))
                        .await
                );
                started.elapsed()
            }
        };
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for i in 0..N {
            known.push(timed("alice", i).await);
            unknown.push(timed("mallory", i).await);
        }
        let median = |mut v: Vec<std::time::Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (known, unknown) = (median(known), median(unknown));
        let ratio = unknown.as_secs_f64() / known.as_secs_f64();
        eprintln!(
            "median of {N}: unknown user {unknown:?}, known user {known:?}, ratio {ratio:.2}"
        );
        assert!(
            (0.5..=2.0).contains(&ratio),
            "unknown user {unknown:?}, known user's wrong password {known:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifies_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = BTreeMap::from([("alice".to_owned(), hash)]);
        let auth = BasicAuth::new(&users).unwrap();
        assert!(auth.allows(Some(&header("alice", "s3cret"))).await);
        assert!(!auth.allows(Some(&header("alice", "wrong"))).await);
        assert!(!auth.allows(Some(&header("bob", "s3cret"))).await);
        assert!(!auth.allows(None).await);
        assert_eq!(auth.cache.lock().unwrap().len(), 3);
        // Cached: the same answers.
        assert!(auth.allows(Some(&header("alice", "s3cret"))).await);
        assert!(!auth.allows(Some(&header("alice", "wrong"))).await);
    }
}
