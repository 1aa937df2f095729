//! AWS error codes for the `code` label: read from a failed response, kept to a bounded set.

/// Codes worth telling apart on a dashboard. Anything else becomes `other_4xx` or `other_5xx`,
/// so a misbehaving endpoint cannot create unbounded series.
const KNOWN: &[&str] = &[
    "AWSOrganizationsNotInUseException",
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidParameterValue",
    "InvalidToken",
    "LimitExceeded",
    "MalformedPolicyDocument",
    "NoSuchBucket",
    "NoSuchBucketPolicy",
    "NoSuchEntity",
    "NoSuchPublicAccessBlockConfiguration",
    "OptInRequired",
    "ParentNotFoundException",
    "RegionDisabledException",
    "ReportExpired",
    "ReportInProgress",
    "ReportNotPresent",
    "RequestExpired",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestTimeout",
    "ServerSideEncryptionConfigurationNotFoundError",
    "ServiceException",
    "ServiceFailure",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TokenRefreshRequired",
    "TooManyRequestsException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "ValidationError",
];

/// Codes for attempts that got no HTTP response.
pub const TIMEOUT: &str = "timeout";
pub const CONNECTION_ERROR: &str = "connection_error";
/// For a call that found no credentials to sign with (none in the environment, the profile
/// files or an instance or container role), so it never reached AWS.
pub const NO_CREDENTIALS: &str = "no_credentials";
/// Its message when the chain found nothing at all (else the cause of the provider that failed).
pub const NO_CREDENTIALS_FOUND: &str = "no AWS credentials found";

/// The bounded code for a failed response with this status, headers and (buffered) body.
pub fn from_response<'h>(
    status: u16,
    header: impl Fn(&str) -> Option<&'h str>,
    body: Option<&[u8]>,
) -> &'static str {
    let raw = header("x-amzn-query-error")
        .map(|v| v.split(';').next().unwrap_or(v))
        .or_else(|| header("x-amzn-errortype").map(|v| v.split(':').next().unwrap_or(v)))
        .map(str::to_owned)
        .or_else(|| body.and_then(code_from_body));
    bounded(raw.as_deref(), status)
}

pub fn bounded(raw: Option<&str>, status: u16) -> &'static str {
    if let Some(code) = raw.and_then(|c| KNOWN.iter().find(|k| **k == c.trim())) {
        return code;
    }
    if status >= 500 {
        "other_5xx"
    } else {
        "other_4xx"
    }
}

/// `<Code>X</Code>` (query and REST-XML protocols) or `"__type":"...#X"` (JSON protocols).
fn code_from_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if let Some(start) = text.find("<Code>") {
        let rest = &text[start + "<Code>".len()..];
        let end = rest.find("</Code>")?;
        return Some(rest[..end].to_owned());
    }
    let start = text.find("\"__type\"")?;
    let rest = &text[start + "\"__type\"".len()..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let value = &rest[..rest.find('"')?];
    Some(value.rsplit('#').next().unwrap_or(value).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<&'static str> {
        None
    }

    #[test]
    fn query_protocol_body() {
        let body = b"<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type>\
<Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>";
        assert_eq!(from_response(400, none, Some(body)), "Throttling");
    }

    #[test]
    fn ec2_body_and_json_type() {
        let ec2 = b"<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></Response>";
        assert_eq!(from_response(503, none, Some(ec2)), "RequestLimitExceeded");
        let json = br#"{"__type":"com.amazonaws.sts#ExpiredTokenException","message":"x"}"#;
        assert_eq!(
            from_response(400, none, Some(json)),
            "ExpiredTokenException"
        );
    }

    #[test]
    fn headers_win() {
        let h = |name: &str| (name == "x-amzn-query-error").then_some("AccessDenied;Sender");
        assert_eq!(
            from_response(403, h, Some(b"<Code>Throttling</Code>")),
            "AccessDenied"
        );
    }

    #[test]
    fn unknown_codes_are_bounded() {
        assert_eq!(
            from_response(400, none, Some(b"<Code>SomethingNew</Code>")),
            "other_4xx"
        );
        assert_eq!(
            from_response(502, none, Some(b"<html>Bad gateway</html>")),
            "other_5xx"
        );
        assert_eq!(from_response(500, none, None), "other_5xx");
        assert_eq!(
            from_response(400, none, Some(b"<Code>unterminated")),
            "other_4xx"
        );
    }
}
