//! Secrets: the keys whose values are never shown, the [`Secret`] type that keeps them out of
//! logs, and where they are read from (the file, variables, secret files).

use std::path::{Path, PathBuf};

use figment::error::Kind;
use serde::{Deserialize, Serialize};

use super::{ApiConfig, Invalid};

/// Keys whose values are secrets wherever they appear, here and in the web configuration
/// ([`crate::web`]): errors, logs and `check-config` never show their values, whatever their
/// type. `external_id_env` and `bearer_tokens_env` name variables, and are not secrets. A new
/// secret-bearing key is one more name here.
pub const SECRET_KEYS: [&str; 3] = ["external_id", "bearer_tokens", "basic_auth_users"];

/// Whether `key` (`accounts[0].external_id`, `api.bearer_tokens[1]`) is a secret-bearing key
/// or lies under one.
pub fn is_secret_key(key: &str) -> bool {
    key.split(['.', '[', ']'])
        .any(|segment| SECRET_KEYS.contains(&segment))
}

/// A value that must never reach a log: its `Debug` is `<redacted>`, and reading it takes an
/// explicit [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The message for a value under a secret-bearing key: what was expected, never what was found;
/// None where figment's own message shows no value.
pub(super) fn secret_message(kind: &Kind) -> Option<String> {
    match kind {
        Kind::InvalidType(_, expected) => Some(format!("invalid type: expected {expected}")),
        Kind::InvalidValue(_, expected) => Some(format!("invalid value: expected {expected}")),
        Kind::InvalidLength(..)
        | Kind::UnknownField(..)
        | Kind::UnknownVariant(..)
        | Kind::MissingField(_)
        | Kind::DuplicateField(_) => None,
        // Custom messages, out-of-range numbers and anything figment adds may hold the value.
        _ => Some("invalid value".to_owned()),
    }
}

/// The ExternalId from whichever of `external_id`, `external_id_env` and `external_id_file` is
/// set, with the name of that key; Err: (the key at fault, why).
pub(super) fn external_id_of(
    value: &Option<Secret>,
    var: &Option<String>,
    file: &Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(&'static str, Option<Secret>), (&'static str, String)> {
    match (value, var, file) {
        (Some(v), None, None) => Ok(("external_id", Some(v.clone()))),
        (None, Some(var), None) => match env(var) {
            Some(v) if !v.is_empty() => Ok(("external_id_env", Some(Secret(v)))),
            _ => Err((
                "external_id_env",
                format!("environment variable {var} is not set or empty"),
            )),
        },
        (None, None, Some(path)) => Ok((
            "external_id_file",
            Some(Secret(
                read_secret_file(path).map_err(|m| ("external_id_file", m))?,
            )),
        )),
        (None, None, None) => Ok(("external_id", None)),
        _ => Err((
            "external_id",
            "set only one of external_id, external_id_env and external_id_file".into(),
        )),
    }
}

/// Largest secret file read: a token list, not a log someone pointed us at by mistake.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret from a file (systemd credentials, Kubernetes secret volumes), trimmed. The error
/// names the file and the reason, never its content.
fn read_secret_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if size > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "{shown} has {size} bytes; a secret file has at most {MAX_SECRET_FILE_BYTES}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(text.to_owned())
}

/// The API's tokens; with the API on, at least one, each long enough to be a secret.
pub(super) fn api_tokens(
    api: &ApiConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Secret>, Invalid> {
    // Presented tokens are trimmed; configured ones must match that.
    let mut tokens: Vec<Secret> = api
        .bearer_tokens
        .iter()
        .map(|t| Secret(t.expose().trim().to_owned()))
        .collect();
    if let Some(var) = &api.bearer_tokens_env {
        let value = env(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            Invalid::new(
                "api.bearer_tokens_env",
                format!("environment variable {var} is not set or empty"),
            )
        })?;
        tokens.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Secret(t.to_owned())),
        );
    }
    if let Some(path) = &api.bearer_tokens_file {
        let value =
            read_secret_file(path).map_err(|m| Invalid::new("api.bearer_tokens_file", m))?;
        tokens.extend(
            value
                .lines()
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.starts_with('#'))
                .map(|t| Secret(t.to_owned())),
        );
    }
    if !api.enabled {
        return Ok(tokens);
    }
    if tokens.is_empty() {
        return Err(Invalid::new(
            "api.bearer_tokens",
            "the API is enabled without a token: set bearer_tokens, bearer_tokens_env or bearer_tokens_file",
        ));
    }
    if tokens.iter().any(|t| t.expose().len() < 16) {
        return Err(Invalid::new(
            "api.bearer_tokens",
            "tokens must have at least 16 characters",
        ));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::testing::*;
    use crate::config::{load, load_str};

    /// A file in a per-process temporary directory.
    fn secret_file(tag: &str, content: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("infraaudit-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(tag);
        std::fs::write(&path, content).unwrap();
        path
    }

    const ROLE_ACCOUNT: &str = r#"
[[accounts]]
id = "222222222222"
role_arn = "arn:aws:iam::222222222222:role/Audit"
"#;

    #[test]
    fn external_id_from_a_file_is_trimmed() {
        let path = secret_file("external-id", "from-a-file-123\n");
        let text = format!("{ROLE_ACCOUNT}external_id_file = {:?}\n", path);
        let s = load_str(&text, &no_env, &sections()).unwrap();
        assert_eq!(
            s.accounts[0].external_id.as_ref().map(Secret::expose),
            Some("from-a-file-123")
        );
    }

    #[test]
    fn external_id_file_errors_name_the_key_not_the_content() {
        let missing = format!("{ROLE_ACCOUNT}external_id_file = \"/nonexistent/infraaudit-id\"\n");
        let e = load_str(&missing, &no_env, &sections())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("accounts[0].external_id_file") && e.contains("/nonexistent/infraaudit-id"),
            "{e}"
        );

        let path = secret_file("bad-external-id", "not valid because of spaces\n");
        let bad = format!("{ROLE_ACCOUNT}external_id_file = {:?}\n", path);
        let e = load_str(&bad, &no_env, &sections())
            .unwrap_err()
            .to_string();
        assert!(e.contains("accounts[0].external_id_file"), "{e}");
        assert!(!e.contains("spaces"), "the error shows the secret: {e}");

        let empty = secret_file("empty-external-id", " \n");
        let e = load_str(
            &format!("{ROLE_ACCOUNT}external_id_file = {:?}\n", empty),
            &no_env,
            &sections(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is empty"), "{e}");

        let both = format!(
            "{ROLE_ACCOUNT}external_id = \"abc-123\"\nexternal_id_file = {:?}\n",
            path
        );
        let e = load_str(&both, &no_env, &sections())
            .unwrap_err()
            .to_string();
        assert!(e.contains("set only one of"), "{e}");
    }

    #[test]
    fn bearer_tokens_from_a_file_one_per_line() {
        let path = secret_file(
            "tokens",
            "# rotated 2026-11\nfirst-token-0123456789\n\n  second-token-0123456789  \n",
        );
        let text = format!("[api]\nenabled = true\nbearer_tokens_file = {:?}\n", path);
        let s = load_str(&text, &no_env, &sections()).unwrap();
        let tokens: Vec<&str> = s.api_tokens.iter().map(Secret::expose).collect();
        assert_eq!(
            tokens,
            ["first-token-0123456789", "second-token-0123456789"]
        );

        let short = secret_file("short-tokens", "short\n");
        let text = format!("[api]\nenabled = true\nbearer_tokens_file = {:?}\n", short);
        let e = load_str(&text, &no_env, &sections())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("api.bearer_tokens") && !e.contains("short\n"),
            "{e}"
        );
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let id_file = secret_file("debug-external-id", "id-from-file-0123");
        let tokens = secret_file("debug-tokens", "token-from-file-0123456789\n");
        let text = format!(
            "[api]\nenabled = true\nbearer_tokens = [\"token-inline-0123456789\"]\nbearer_tokens_file = {tokens:?}\n\
             {ROLE_ACCOUNT}external_id_file = {id_file:?}\n\
             [[accounts]]\nid = \"333333333333\"\nrole_arn = \"arn:aws:iam::333333333333:role/A\"\nexternal_id = \"id-inline-0123\"\n"
        );
        let s = load_str(&text, &no_env, &sections()).unwrap();
        let shown = format!("{s:?} {:#?}", s.config);
        for secret in [
            "id-from-file-0123",
            "token-from-file-0123456789",
            "token-inline-0123456789",
            "id-inline-0123",
        ] {
            assert!(!shown.contains(secret), "Debug shows {secret}: {shown}");
        }
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn api_needs_a_token_and_reads_them_from_the_environment() {
        let e = load_err("bad_api_no_token.toml");
        assert!(e.contains("api.bearer_tokens"), "{e}");
        let env = |k: &str| {
            (k == "INFRAAUDIT_TEST_API_TOKENS")
                .then(|| " env-token-a-0123456789 , env-token-b-0123456789,".to_owned())
        };
        let s = load(Some(&fixture("api_env_tokens.toml")), &env, &sections()).unwrap();
        let tokens: Vec<&str> = s.api_tokens.iter().map(Secret::expose).collect();
        assert_eq!(
            tokens,
            [
                "file-token-0123456789",
                "env-token-a-0123456789",
                "env-token-b-0123456789"
            ]
        );
        assert!(
            !format!("{s:?}").contains("env-token-a"),
            "tokens are redacted"
        );
        let e = match load(Some(&fixture("api_env_tokens.toml")), &no_env, &sections()) {
            Ok(_) => panic!("the variable is not set"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("api.bearer_tokens_env"), "{e}");
    }

    #[test]
    fn type_errors_of_secret_keys_name_the_type_not_the_value() {
        let account = "[[accounts]]\nid = \"222222222222\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n";
        let cases = [
            (
                "[api]\nbearer_tokens = \"SECRET-toml-token\"\n".to_owned(),
                "api.bearer_tokens",
                "expected a sequence",
            ),
            (
                "[api]\nbearer_tokens = [\"SECRET-token-0123456789\", 7]\n".to_owned(),
                "api.bearer_tokens[1]",
                "expected a string",
            ),
            (
                "[organizations]\nenabled = true\nexternal_id = 5318008123\n".to_owned(),
                "organizations.external_id",
                "expected a string",
            ),
            (
                format!("{account}external_id = 5318008123\n"),
                "accounts[0].external_id",
                "expected a string",
            ),
            (
                format!("{account}external_id = [\"SECRET-in-a-list\"]\n"),
                "accounts[0].external_id",
                "expected a string",
            ),
        ];
        for (text, key, expected) in cases {
            let e = load_str(&text, &no_env, &sections()).unwrap_err();
            let line = e.to_string();
            assert_eq!(e.key, key, "{line}");
            assert!(e.message.contains(expected), "{line}");
            assert!(
                !line.contains(SHOWN) && !line.contains("5318008123"),
                "the error shows the secret: {line}"
            );
        }
        // Other keys keep the value: it helps, and it is no secret.
        let e = load_str("[aws]\nmax_concurrency = \"lots\"\n", &no_env, &sections()).unwrap_err();
        assert!(e.message.contains("\"lots\""), "{e}");
    }
}
