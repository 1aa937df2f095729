//! The API's requests as typed values: JSON bodies and query strings deserialized by serde into
//! structs that refuse unknown, repeated and missing fields, with errors that name the field.
//!
//! Query strings are percent-decoded by `serde_urlencoded` (form encoding: `+` is a space).
//! A repeated field is refused by serde's derive itself: serde_json and serde_urlencoded hand it
//! every key as it comes, and it does not buffer (no `flatten`, no untagged enums here, and no
//! `serde_json::Value` in between, which would keep the last). The tests below hold it to that.
//!
//! No message quotes a value: every field's own check answers with a fixed text, so an
//! ExternalId (a secret) sent in the wrong shape never comes back in an error.

use hyper::StatusCode;
use serde::de::{DeserializeOwned, Error as _, IgnoredAny};
use serde::{Deserialize, Deserializer};

use crate::collector::Check;
use crate::config::{Secret, is_account_id, is_external_id, is_role_name};

/// Largest `hours`: 100 years.
const MAX_HOURS: i64 = 24 * 365 * 100;

/// POST /v1/iam/old-access-keys/credential-report's body, and GET
/// /v1/iam/old-access-keys/list-users' query: keys older than `hours`, of one account or all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OldKeys {
    #[serde(deserialize_with = "hours")]
    pub hours: i64,
    #[serde(default, deserialize_with = "some_account_id")]
    pub account_id: Option<String>,
}

/// POST /api/audit/start's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartAudit {
    #[serde(deserialize_with = "account_id")]
    pub account_id: String,
    /// Empty: every check.
    #[serde(default, deserialize_with = "checks")]
    pub checks: Vec<Check>,
    /// For an account that is not configured; ignored for a configured one.
    #[serde(default, deserialize_with = "role_name")]
    pub role_name: Option<String>,
    /// For an account that is not configured; ignored for a configured one.
    #[serde(default, deserialize_with = "external_id")]
    pub external_id: Option<Secret>,
}

/// A request refused: the status and a message that starts with the field at fault.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// A JSON body: 400 when it is not JSON, 422 when it is not an object or a field is wrong.
pub fn from_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(bytes) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        ));
    }
    // serde_json also reads a struct from an array of its fields' values: refuse that first.
    if bytes.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b'{') {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        // The position is the byte's, not the field's: the message names the field instead.
        let text = inner.to_string();
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        let message = text.strip_suffix(&position).unwrap_or(&text);
        Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            field_message(e.path(), message, "field"),
        )
    })
}

/// A query string, percent-decoded: 400 when a parameter is wrong, unknown or repeated.
pub fn from_query<T: DeserializeOwned>(query: &str) -> Result<T, Refusal> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs)).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            field_message(e.path(), &e.inner().to_string(), "parameter"),
        )
    })
}

/// `field: what is wrong`. serde's derive names the field itself (in backticks) when it is
/// unknown, missing or repeated (serde::de::Error's provided methods); for the rest, the path
/// says which field's own check failed.
fn field_message(path: &serde_path_to_error::Path, message: &str, noun: &str) -> String {
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('`'))
    };
    if let Some((field, _)) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once("`, "))
    {
        format!("{field}: unknown {noun}")
    } else if let Some(field) = named("missing field `") {
        format!("{field}: required")
    } else if let Some(field) = named("duplicate field `") {
        format!("{field}: given more than once")
    } else if path.iter().next().is_none() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

/// `T` as the input has it, or `message` (which quotes nothing the client sent) when it is of
/// another type or `valid` refuses it.
fn checked<'de, D, T>(d: D, valid: impl FnOnce(&T) -> bool, message: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d)
        .ok()
        .filter(valid)
        .ok_or_else(|| D::Error::custom(message))
}

fn hours<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    checked(
        d,
        |h| (0..=MAX_HOURS).contains(h),
        "must be an integer from 0 to 876000",
    )
}

fn account_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(
        d,
        |id: &String| is_account_id(id),
        "must be a string of 12 digits",
    )
}

/// An optional field that, when present, must be an account id: `null` is not one.
fn some_account_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    account_id(d).map(Some)
}

fn role_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(
        d,
        |name: &String| is_role_name(name),
        "not a valid role name",
    )
    .map(Some)
}

fn external_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    checked(
        d,
        |id: &String| is_external_id(id),
        "2 to 1224 characters from [A-Za-z0-9_+=,.@:/-]",
    )
    .map(|id| Some(Secret::new(id)))
}

fn checks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Check>, D::Error> {
    let names: Vec<&str> = Check::all().map(Check::name).collect();
    let message = format!("must be a list of check names ({})", names.join(", "));
    let all_known = |given: &Vec<String>| given.iter().all(|n| Check::from_name(n).is_some());
    let given: Vec<String> = checked(d, all_known, &message)?;
    Ok(given.iter().filter_map(|n| Check::from_name(n)).collect())
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;

    fn body<T: DeserializeOwned>(text: &str) -> T {
        from_body(text.as_bytes()).unwrap_or_else(|r| panic!("{text}: {r:?}"))
    }

    fn query(text: &str) -> OldKeys {
        from_query(text).unwrap_or_else(|r| panic!("{text}: {r:?}"))
    }

    /// The status and message of the refusal of `text` as a `T` body.
    fn body_refused<T: DeserializeOwned + Debug>(text: &str) -> (u16, String) {
        match from_body::<T>(text.as_bytes()) {
            Ok(v) => panic!("{text}: accepted as {v:?}"),
            Err(r) => (r.status.as_u16(), r.message),
        }
    }

    fn query_refused(text: &str) -> (u16, String) {
        match from_query::<OldKeys>(text) {
            Ok(v) => panic!("{text}: accepted as {v:?}"),
            Err(r) => (r.status.as_u16(), r.message),
        }
    }

    fn refusal(status: u16, message: &str) -> (u16, String) {
        (status, message.to_owned())
    }

    #[test]
    fn a_valid_body_and_query_parse() {
        let k: OldKeys = body(r#"{"hours": 2160, "account_id": "123456789012"}"#);
        assert_eq!(
            (k.hours, k.account_id.as_deref()),
            (2160, Some("123456789012"))
        );
        let k: OldKeys = body(" {\"hours\": 0}\n");
        assert_eq!((k.hours, k.account_id), (0, None));
        let k = query("hours=876000&account_id=123456789012");
        assert_eq!(
            (k.hours, k.account_id.as_deref()),
            (876000, Some("123456789012"))
        );
        let a: StartAudit = body(
            r#"{"account_id": "123456789012", "checks": ["s3_public_access", "ec2_imdsv2"],
                "role_name": "InfraAuditRole", "external_id": "ext-id"}"#,
        );
        assert_eq!(
            a.checks,
            [
                crate::collector::s3::PUBLIC_ACCESS,
                crate::collector::ec2::IMDSV2
            ]
        );
        assert_eq!(a.role_name.as_deref(), Some("InfraAuditRole"));
        assert_eq!(a.external_id.as_ref().map(Secret::expose), Some("ext-id"));
        let a: StartAudit = body(r#"{"account_id": "123456789012"}"#);
        assert!(a.checks.is_empty() && a.role_name.is_none() && a.external_id.is_none());
    }

    #[test]
    fn query_strings_are_percent_decoded() {
        assert_eq!(query("hours=%31").hours, 1);
        let k = query("%68ours=2&account_id=%3123456789012");
        assert_eq!(
            (k.hours, k.account_id.as_deref()),
            (2, Some("123456789012"))
        );
        // Empty pairs are nothing.
        assert_eq!(query("&hours=3&").hours, 3);
        // Form encoding: `+` is a space, and no number starts with one.
        assert_eq!(
            query_refused("hours=+1"),
            refusal(400, "hours: must be an integer from 0 to 876000")
        );
    }

    #[test]
    fn a_repeated_parameter_or_key_is_refused_naming_it() {
        let twice = |status, field: &str| (status, format!("{field}: given more than once"));
        // Even with the same value, and once spelt with an escape.
        for repeated in ["hours=1&hours=2", "hours=1&hours=1", "hours=1&%68ours=1"] {
            assert_eq!(query_refused(repeated), twice(400, "hours"), "{repeated}");
        }
        assert_eq!(
            query_refused("hours=1&account_id=123456789012&account_id=222222222222"),
            twice(400, "account_id")
        );
        for repeated in [
            r#"{"hours": 1, "hours": 2}"#,
            r#"{"hours": 1, "h\u006furs": 1}"#,
        ] {
            assert_eq!(
                body_refused::<OldKeys>(repeated),
                twice(422, "hours"),
                "{repeated}"
            );
        }
        assert_eq!(
            body_refused::<StartAudit>(
                r#"{"account_id": "123456789012", "checks": [], "checks": []}"#
            ),
            twice(422, "checks")
        );
        assert_eq!(
            body_refused::<StartAudit>(
                r#"{"account_id": "123456789012", "external_id": "ab", "external_id": "ab"}"#
            ),
            twice(422, "external_id")
        );
    }

    #[test]
    fn unknown_and_missing_fields_are_refused_naming_them() {
        assert_eq!(
            query_refused("hours=1&acount_id=1"),
            refusal(400, "acount_id: unknown parameter")
        );
        assert_eq!(query_refused(""), refusal(400, "hours: required"));
        assert_eq!(
            body_refused::<OldKeys>(r#"{"hours": 1, "acount_id": "123456789012"}"#),
            refusal(422, "acount_id: unknown field")
        );
        assert_eq!(
            body_refused::<OldKeys>("{}"),
            refusal(422, "hours: required")
        );
        assert_eq!(
            body_refused::<StartAudit>(r#"{"checks": []}"#),
            refusal(422, "account_id: required")
        );
    }

    #[test]
    fn a_wrong_value_is_refused_naming_the_field_and_quoting_nothing() {
        let hours = refusal(422, "hours: must be an integer from 0 to 876000");
        for bad in ["-1", "876001", "1.5", "\"1\"", "null", "[1]", "{}"] {
            assert_eq!(
                body_refused::<OldKeys>(&format!(r#"{{"hours": {bad}}}"#)),
                hours,
                "{bad}"
            );
        }
        let hours = refusal(400, "hours: must be an integer from 0 to 876000");
        for bad in [
            "hours=",
            "hours",
            "hours=-1",
            "hours=876001",
            "hours=1.0",
            "hours=x",
        ] {
            assert_eq!(query_refused(bad), hours, "{bad}");
        }
        let account = refusal(422, "account_id: must be a string of 12 digits");
        for bad in [
            "123456789012",
            "\"12345678901\"",
            "null",
            "\"12345678901a\"",
        ] {
            assert_eq!(
                body_refused::<OldKeys>(&format!(r#"{{"hours": 1, "account_id": {bad}}}"#)),
                account,
                "{bad}"
            );
        }
        assert_eq!(
            query_refused("hours=1&account_id=1234"),
            refusal(400, "account_id: must be a string of 12 digits")
        );
        let (status, message) = body_refused::<StartAudit>(
            r#"{"account_id": "123456789012", "checks": ["s3_encryption", "nope"]}"#,
        );
        assert_eq!(status, 422);
        assert!(
            message.starts_with("checks: must be a list of check names (iam_access_key_age, "),
            "{message}"
        );
        assert_eq!(
            body_refused::<StartAudit>(
                r#"{"account_id": "123456789012", "role_name": "../../evil"}"#
            ),
            refusal(422, "role_name: not a valid role name")
        );
        // An ExternalId is a secret: a wrong one is not sent back.
        let wrong_id = refusal(
            422,
            "external_id: 2 to 1224 characters from [A-Za-z0-9_+=,.@:/-]",
        );
        for secret in ["\"not sent back\"", "123456", "[\"not-sent-back\"]"] {
            assert_eq!(
                body_refused::<StartAudit>(&format!(
                    r#"{{"account_id": "123456789012", "external_id": {secret}}}"#
                )),
                wrong_id,
                "{secret}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_refused() {
        for not_json in ["{not json", "", "{\"hours\": 1} x"] {
            let (status, message) = body_refused::<OldKeys>(not_json);
            assert_eq!(status, 400, "{not_json}");
            assert!(message.starts_with("the body is not JSON: "), "{message}");
        }
        // serde_json would read `[2160]` as {"hours": 2160}.
        for not_object in [
            "[2160]",
            " [2160, \"123456789012\"]",
            "2160",
            "\"x\"",
            "null",
        ] {
            assert_eq!(
                body_refused::<OldKeys>(not_object),
                refusal(422, "the body must be a JSON object"),
                "{not_object}"
            );
        }
    }
}
