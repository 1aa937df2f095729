//! The web configuration file of the Prometheus exporter-toolkit (`--web.config.file`, the same
//! file node_exporter takes): TLS with optional client certificates, basic auth users with bcrypt
//! hashes, and extra response headers.
//!
//! The file is read at startup (a bad one exits 64), then again on SIGHUP and whenever it or a
//! file it names changes. A new certificate, CA or user list applies to new connections (users:
//! to new requests); a bad file on reload keeps the previous configuration and logs why.
//! Keys of the format that infraaudit does not implement are errors naming the key, never
//! silently ignored.

mod auth;
mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use auth::BasicAuth;

/// How often the file and the files it names are checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(3);

/// A bad web configuration: the key at fault (dotted, as in the file) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfigError {
    pub key: String,
    pub message: String,
}

impl WebConfigError {
    // YAML errors quote the file, which may hold control characters; the error stays one line.
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: crate::config::one_line(&key.into()),
            message: crate::config::one_line(&message.into()),
        }
    }
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for WebConfigError {}

/// The file as written. Every key of the exporter-toolkit format is known here, so that the
/// ones infraaudit does not implement get a precise error instead of "unknown field".
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawFile {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRateLimit {
    interval: Option<serde_norway::Value>,
    burst: Option<serde_norway::Value>,
}

/// The headers that may be set, with their allowed values (none: any value), as in the
/// exporter-toolkit.
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// One loaded, validated web configuration.
pub struct WebConfig {
    /// None: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Offer HTTP/2 (over TLS through ALPN, in plain HTTP to clients that start with it).
    pub http2: bool,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// None: no basic auth.
    pub auth: Option<Arc<BasicAuth>>,
}

impl WebConfig {
    /// What infraaudit serves without a web configuration file.
    pub fn plain() -> Self {
        Self {
            tls: None,
            http2: true,
            headers: Vec::new(),
            auth: None,
        }
    }
}

/// A non-empty string: the exporter-toolkit treats "" as unset.
fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// What one read of the file found: the parsed file, the contents of the files it names, and a
/// digest of all of them, which tells whether anything changed since the last read.
struct Sources {
    raw: RawFile,
    /// Key (`tls_server_config.cert_file`, ...) -> contents.
    files: BTreeMap<&'static str, Vec<u8>>,
    fingerprint: [u8; 32],
}

fn read_sources(path: &Path) -> Result<Sources, WebConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| WebConfigError::new("(file)", format!("cannot read it: {e}")))?;
    // An empty document (or one of comments only) is null: no TLS, no users, as in Go.
    let raw: RawFile = serde_norway::from_str::<Option<RawFile>>(&text)
        .map_err(yaml_error)?
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut hasher = Sha256::new();
    hasher.update(text.as_bytes());
    let mut files = BTreeMap::new();
    if let Some(t) = &raw.tls_server_config {
        for (key, value) in [
            ("tls_server_config.cert_file", &t.cert_file),
            ("tls_server_config.key_file", &t.key_file),
            ("tls_server_config.client_ca_file", &t.client_ca_file),
        ] {
            let Some(name) = set(value) else { continue };
            // Relative to the web configuration file, as in the exporter-toolkit.
            let file: PathBuf = dir.join(name);
            let bytes = std::fs::read(&file).map_err(|e| {
                WebConfigError::new(key, format!("cannot read {}: {e}", file.display()))
            })?;
            hasher.update((key.len() as u64).to_le_bytes());
            hasher.update(key.as_bytes());
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
            files.insert(key, bytes);
        }
    }
    Ok(Sources {
        raw,
        files,
        fingerprint: hasher.finalize().into(),
    })
}

/// A YAML error as key and message. serde_norway prefixes the path of nested errors
/// ("tls_server_config: unknown field ..."); the rest is the message, with its position.
fn yaml_error(e: serde_norway::Error) -> WebConfigError {
    let text = e.to_string().replace('\n', " ");
    let (key, message) = match text.split_once(": ") {
        Some((key, message))
            if !key.contains(' ') && !key.is_empty() && !message.starts_with(' ') =>
        {
            (key, message)
        }
        _ => ("(top level)", text.as_str()),
    };
    // Under a secret-bearing key (or for the whole document, which may be anything), keep what
    // was expected but not the value serde quotes: `invalid type: string "$2y$...", expected
    // a map`.
    if key == "(top level)" || crate::config::is_secret_key(key) {
        for kind in ["invalid type", "invalid value"] {
            if message.starts_with(kind) {
                // The last ", expected " is serde's own, whatever the value holds.
                let message = match message.rsplit_once(", expected ") {
                    Some((_, expected)) => format!("{kind}: expected {expected}"),
                    None => kind.to_owned(),
                };
                return plain(key, &message);
            }
        }
    }
    plain(key, message)
}

/// serde's wording, made to read like the configuration's errors: the unknown field in the key
/// and a plain list of the known ones (not nested backticks), "a map" for our internal struct
/// names, and the position last as "(line L, column C)".
fn plain(key: &str, message: &str) -> WebConfigError {
    let (message, position) = match message.rsplit_once(" at line ") {
        Some((before, at)) => match at.split_once(" column ") {
            Some((line, column))
                if line.parse::<u32>().is_ok() && column.parse::<u32>().is_ok() =>
            {
                (before, format!(" (line {line}, column {column})"))
            }
            _ => (message, String::new()),
        },
        None => (message, String::new()),
    };
    let unknown = message.strip_prefix("unknown field `").and_then(|rest| {
        let (field, known) = rest.split_once("`, ")?;
        let known = known
            .strip_prefix("expected one of ")
            .or_else(|| known.strip_prefix("expected "))?;
        let names: Vec<&str> = known
            .split(", ")
            .flat_map(|n| n.split(" or "))
            .map(|n| n.trim_matches('`'))
            .collect();
        Some((field, names.join(", ")))
    });
    if let Some((field, known)) = unknown {
        let key = match key {
            "(top level)" => field.to_owned(),
            key => format!("{key}.{field}"),
        };
        return WebConfigError::new(
            key,
            format!("unknown field; known fields: {known}{position}"),
        );
    }
    let message = match message.find("expected struct ") {
        Some(at) => format!("{}expected a map", &message[..at]),
        None => message.to_owned(),
    };
    WebConfigError::new(key, format!("{message}{position}"))
}

fn build(sources: &Sources) -> Result<WebConfig, WebConfigError> {
    let raw = &sources.raw;
    if let Some(r) = &raw.rate_limit {
        let zero = |v: &Option<serde_norway::Value>| match v {
            None | Some(serde_norway::Value::Null) => true,
            Some(serde_norway::Value::Number(n)) => n.as_f64() == Some(0.0),
            Some(serde_norway::Value::String(s)) => {
                s == "0" || humantime::parse_duration(s).is_ok_and(|d| d.is_zero())
            }
            Some(_) => false,
        };
        // An interval of 0 disables the limiter in the exporter-toolkit: accept that.
        if !zero(&r.interval) || (!zero(&r.burst) && r.interval.is_none()) {
            return Err(WebConfigError::new(
                "rate_limit",
                "not supported by infraaudit; remove it (or set interval: 0)",
            ));
        }
    }
    let http = raw.http_server_config.as_ref();
    let http2 = http.and_then(|h| h.http2).unwrap_or(true);
    let mut headers = Vec::new();
    for (name, value) in http.and_then(|h| h.headers.as_ref()).into_iter().flatten() {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| n == name) else {
            let names: Vec<&str> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(WebConfigError::new(
                key,
                format!("this header cannot be set; one of {}", names.join(", ")),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(WebConfigError::new(
                key,
                format!("must be one of {}", allowed.join(", ")),
            ));
        }
        // Blank means unset, as in the exporter-toolkit.
        if value.is_empty() {
            continue;
        }
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(WebConfigError::new(key, "not a valid header value"));
        };
        headers.push((n, v));
    }
    let tls = match &raw.tls_server_config {
        Some(t) => tls::server_config(t, &sources.files, http2)?,
        None => None,
    };
    let auth = match &raw.basic_auth_users {
        Some(users) if !users.is_empty() => Some(Arc::new(BasicAuth::new(users)?)),
        _ => None,
    };
    Ok(WebConfig {
        tls,
        http2,
        headers,
        auth,
    })
}

/// Reads and validates the file once: the startup check.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    build(&read_sources(path)?)
}

/// The configuration in force, swapped on reload.
pub struct Live {
    path: PathBuf,
    current: ArcSwap<WebConfig>,
    state: Mutex<ReloadState>,
}

struct ReloadState {
    /// Of the sources last read, applied or rejected (for a file that cannot be read: of the
    /// error).
    fingerprint: [u8; 32],
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    Unchanged,
    Applied,
    /// The previous configuration stays.
    Rejected(WebConfigError),
}

impl Live {
    /// Loads the file; an error is a bad startup configuration.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let sources = read_sources(path)?;
        let config = build(&sources)?;
        Ok(Self {
            path: path.to_owned(),
            current: ArcSwap::from_pointee(config),
            state: Mutex::new(ReloadState {
                fingerprint: sources.fingerprint,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn current(&self) -> Arc<WebConfig> {
        self.current.load_full()
    }

    /// Reads the file again and applies it when it (or a file it names) changed, or always
    /// when `force`. A bad file is reported once, not at every poll, until it changes again.
    pub fn reload(&self, force: bool) -> Reloaded {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let sources = read_sources(&self.path);
        let fingerprint = match &sources {
            Ok(s) => s.fingerprint,
            Err(e) => Sha256::digest(e.to_string().as_bytes()).into(),
        };
        if !force && fingerprint == state.fingerprint {
            return Reloaded::Unchanged;
        }
        state.fingerprint = fingerprint;
        let config = sources.and_then(|s| build(&s)).and_then(|config| {
            if self.current.load().tls.is_some() != config.tls.is_some() {
                return Err(WebConfigError::new(
                    "tls_server_config",
                    "turning TLS on or off needs a restart",
                ));
            }
            Ok(config)
        });
        match config {
            Ok(config) => {
                self.current.store(Arc::new(config));
                Reloaded::Applied
            }
            Err(e) => Reloaded::Rejected(e),
        }
    }

    /// Reloads when `hangup` is notified (SIGHUP) and when the files change, until
    /// `shutdown`; logs each outcome but "unchanged".
    pub async fn watch(self: Arc<Self>, hangup: Arc<Notify>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let force = tokio::select! {
                _ = tick.tick() => false,
                () = hangup.notified() => true,
                () = shutdown.cancelled() => return,
            };
            let me = self.clone();
            let outcome = tokio::task::spawn_blocking(move || me.reload(force)).await;
            let path = self.path.display();
            match outcome {
                Ok(Reloaded::Unchanged) => {}
                Ok(Reloaded::Applied) => {
                    tracing::info!(path = %path, "web configuration reloaded");
                }
                Ok(Reloaded::Rejected(e)) => tracing::error!(
                    path = %path,
                    error = %e,
                    "bad web configuration; keeping the previous one"
                ),
                Err(e) => tracing::error!(error = %e, "the web configuration reload failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("infraaudit-web-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn err(text: &str) -> WebConfigError {
        // Tests run in parallel: a file of their own each, or one reads another's.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = dir(&format!("err-{n}"));
        match load(&write(&d, "web.yml", text)) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn empty_and_comment_only_files_mean_plain_http() {
        let d = dir("empty");
        for text in [
            "",
            "# nothing\n",
            "basic_auth_users: {}\n",
            "tls_server_config:\n",
        ] {
            let c = load(&write(&d, "web.yml", text)).unwrap();
            assert!(c.tls.is_none() && c.auth.is_none() && c.http2, "{text:?}");
        }
    }

    #[test]
    fn unknown_and_unsupported_keys_are_errors_naming_the_key() {
        let e = err("tls_server_config:\n  cert_fle: x\n");
        assert_eq!(e.key, "tls_server_config.cert_fle", "{e}");
        let e = err("basic_auth_user:\n  a: b\n");
        assert!(e.to_string().contains("basic_auth_user"), "{e}");
        let e = err("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n");
        assert_eq!(e.key, "tls_server_config.cipher_suites", "{e}");
        let e = err("rate_limit:\n  interval: 1s\n  burst: 20\n");
        assert_eq!(e.key, "rate_limit", "{e}");
        // Disabled rate limiting is accepted.
        let d = dir("rl");
        load(&write(
            &d,
            "web.yml",
            "rate_limit:\n  interval: 0\n  burst: 0\n",
        ))
        .unwrap();
        let e = err("http_server_config:\n  headers:\n    X-Powered-By: me\n");
        assert_eq!(e.key, "http_server_config.headers.X-Powered-By", "{e}");
        let e = err("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
        assert_eq!(e.key, "http_server_config.headers.X-Frame-Options", "{e}");
    }

    #[test]
    fn errors_read_like_the_configurations() {
        // Unknown fields: named in the key, the known ones as a plain list, position last.
        let e = err("tls_server_config:\n  foo: 1\n");
        assert_eq!(e.key, "tls_server_config.foo", "{e}");
        assert!(
            e.message
                .starts_with("unknown field; known fields: cert, key, client_ca,"),
            "{e}"
        );
        assert!(e.message.ends_with(" (line 2, column 3)"), "{e}");
        let e = err("nope: 1\n");
        assert_eq!(e.key, "nope", "{e}");
        assert_eq!(
            e.message,
            "unknown field; known fields: tls_server_config, http_server_config, \
             basic_auth_users, rate_limit"
        );
        // No internal type names, no backticks anywhere.
        let e = err("tls_server_config: [\n");
        assert_eq!(
            e.to_string(),
            "tls_server_config: invalid type: sequence, expected a map (line 1, column 20)"
        );
        for text in ["tls_server_config:\n  foo: 1\n", "nope: 1\n"] {
            assert!(!err(text).to_string().contains('`'), "{text}");
        }
        let e = err("rate_limit: 3\n");
        assert!(
            e.message.ends_with("expected a map (line 1, column 13)"),
            "{e}"
        );
    }

    #[test]
    fn bad_hashes_name_the_user_but_not_the_hash() {
        let e = err("basic_auth_users:\n  alice: notahash-secretish\n");
        assert_eq!(e.key, "basic_auth_users.alice", "{e}");
        assert!(!e.to_string().contains("secretish"), "{e}");
    }

    #[test]
    fn type_errors_under_basic_auth_users_show_no_hash() {
        let hash = "$2y$10$SECRETHASHSECRETHASHSECRETHASHSECRETHASHSECRETHASHSEC";
        for (text, key, expected) in [
            (
                format!("basic_auth_users: \"{hash}\"\n"),
                "basic_auth_users",
                "expected a map",
            ),
            (
                format!("basic_auth_users: {hash}\n"),
                "basic_auth_users",
                "expected a map",
            ),
            (
                format!("basic_auth_users:\n  alice: [\"{hash}\"]\n"),
                "basic_auth_users.alice",
                "expected a string",
            ),
            (format!("\"{hash}\"\n"), "(top level)", "expected a map"),
            (
                format!("basic_auth_users: \"{hash}, expected a map\"\n"),
                "basic_auth_users",
                "invalid type: expected a map (line 1",
            ),
        ] {
            let e = err(&text);
            assert_eq!(e.key, key, "{e}");
            assert!(e.message.contains(expected), "{e}");
            assert!(
                !e.to_string().contains("SECRET"),
                "the error shows the hash: {e}"
            );
        }
        // Other keys keep the value: it helps, and it is no secret.
        let e = err("http_server_config:\n  http2: maybe\n");
        assert!(e.message.contains("\"maybe\""), "{e}");
    }

    #[test]
    fn tls_needs_cert_and_key_and_names_missing_files() {
        let e = err("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n");
        assert!(e.key.starts_with("tls_server_config."), "{e}");
        let e = err("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n");
        assert_eq!(e.key, "tls_server_config.cert_file", "{e}");
        let e = err("tls_server_config:\n  client_auth_type: Sometimes\n");
        assert_eq!(e.key, "tls_server_config.client_auth_type", "{e}");
    }

    #[test]
    fn the_example_file_has_only_supported_keys() {
        // Its certificate files do not exist here: parse and check everything else.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("web-config.example.yml");
        let text = std::fs::read_to_string(&path).unwrap();
        let raw = serde_norway::from_str::<Option<RawFile>>(&text)
            .unwrap()
            .unwrap();
        let sources = Sources {
            raw: RawFile {
                tls_server_config: None,
                ..raw
            },
            files: BTreeMap::new(),
            fingerprint: [0; 32],
        };
        let c = build(&sources).unwrap();
        assert!(c.auth.is_some() && c.headers.len() == 2);
    }

    #[test]
    fn headers_are_applied() {
        let d = dir("headers");
        let c = load(&write(
            &d,
            "web.yml",
            "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: \"\"\n",
        ))
        .unwrap();
        assert!(!c.http2);
        assert_eq!(c.headers.len(), 1);
        assert_eq!(c.headers[0].0.as_str(), "x-frame-options");
    }
}
