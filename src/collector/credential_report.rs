//! The IAM credential report: CSV in, typed rows out.
//!
//! Columns are found by header name, not position, since AWS has added columns over the years.
//! `N/A`, `no_information` and `not_supported` all mean "absent" and become `None`.

use chrono::{DateTime, Utc};

/// The user name AWS gives the account's root user in the report.
pub const ROOT_USER: &str = "<root_account>";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialReport {
    /// Every row, the root row included (see [`ReportRow::is_root`]).
    pub rows: Vec<ReportRow>,
}

impl CredentialReport {
    pub fn root(&self) -> Option<&ReportRow> {
        self.rows.iter().find(|r| r.is_root())
    }

    pub fn users(&self) -> impl Iterator<Item = &ReportRow> {
        self.rows.iter().filter(|r| !r.is_root())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub user: String,
    pub arn: String,
    pub user_creation_time: Option<DateTime<Utc>>,
    pub password_enabled: Option<bool>,
    pub password_last_used: Option<DateTime<Utc>>,
    pub password_last_changed: Option<DateTime<Utc>>,
    pub mfa_active: bool,
    /// The report's two access-key slots, `access_key_1_*` and `access_key_2_*`.
    pub keys: [KeySlot; 2],
}

impl ReportRow {
    pub fn is_root(&self) -> bool {
        self.user == ROOT_USER
    }

    /// Slots (1 or 2) that hold a key: those with a creation time.
    pub fn present_keys(&self) -> impl Iterator<Item = (u8, &KeySlot)> {
        (1u8..)
            .zip(self.keys.iter())
            .filter(|(_, k)| k.last_rotated.is_some())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeySlot {
    pub active: bool,
    /// When the key in this slot was created (AWS calls it last rotated), to the second.
    pub last_rotated: Option<DateTime<Utc>>,
    pub last_used_date: Option<DateTime<Utc>>,
    pub last_used_region: Option<String>,
    pub last_used_service: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the report is empty")]
    Empty,
    #[error("the report is not UTF-8")]
    NotUtf8,
    #[error("the report has {0} bytes, more than the {MAX_REPORT_BYTES} a real one can have")]
    TooLarge(usize),
    #[error("the report has no column {0:?}")]
    MissingColumn(&'static str),
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
}

// Columns we read; all must be present.
const USER: &str = "user";
const ARN: &str = "arn";
const CREATED: &str = "user_creation_time";
const PW_ENABLED: &str = "password_enabled";
const PW_LAST_USED: &str = "password_last_used";
const PW_LAST_CHANGED: &str = "password_last_changed";
const MFA: &str = "mfa_active";
const SLOT_COLUMNS: [[&str; 5]; 2] = [
    [
        "access_key_1_active",
        "access_key_1_last_rotated",
        "access_key_1_last_used_date",
        "access_key_1_last_used_region",
        "access_key_1_last_used_service",
    ],
    [
        "access_key_2_active",
        "access_key_2_last_rotated",
        "access_key_2_last_used_date",
        "access_key_2_last_used_region",
        "access_key_2_last_used_service",
    ],
];

/// About 9 times the report of an account at IAM's 5,000-user quota (some 350 bytes a row):
/// anything larger is not a credential report. The SDK has read it by then; this spares the
/// parse and the snapshot, not the download.
pub const MAX_REPORT_BYTES: usize = 16 * 1024 * 1024;

pub fn parse(content: &[u8]) -> Result<CredentialReport, ParseError> {
    if content.len() > MAX_REPORT_BYTES {
        return Err(ParseError::TooLarge(content.len()));
    }
    if content.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    if std::str::from_utf8(content).is_err() {
        return Err(ParseError::NotUtf8);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(content);
    let headers = reader
        .headers()
        .map_err(|e| ParseError::Line {
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let col = |name: &'static str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or(ParseError::MissingColumn(name))
    };
    let user_i = col(USER)?;
    let arn_i = col(ARN)?;
    let created_i = col(CREATED)?;
    let pw_enabled_i = col(PW_ENABLED)?;
    let pw_last_used_i = col(PW_LAST_USED)?;
    let pw_last_changed_i = col(PW_LAST_CHANGED)?;
    let mfa_i = col(MFA)?;
    let mut slot_i = [[0usize; 5]; 2];
    for (slot, names) in SLOT_COLUMNS.iter().enumerate() {
        for (j, name) in names.iter().enumerate() {
            slot_i[slot][j] = col(name)?;
        }
    }

    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ParseError::Line {
            line: e.position().map_or(0, csv::Position::line),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        let field = |i: usize| record.get(i).unwrap_or_default();
        let err = |column: &str, message: String| ParseError::Line {
            line,
            message: format!("{column}: {message}"),
        };
        let user = field(user_i);
        if user.is_empty() {
            return Err(err(USER, "empty user name".into()));
        }
        let time = |i: usize, column: &str| parse_time(field(i)).map_err(|m| err(column, m));
        let flag = |i: usize, column: &str| parse_bool(field(i)).map_err(|m| err(column, m));
        let mut keys: [KeySlot; 2] = Default::default();
        for (slot, idx) in slot_i.iter().enumerate() {
            let names = SLOT_COLUMNS[slot];
            keys[slot] = KeySlot {
                active: flag(idx[0], names[0])?.unwrap_or(false),
                last_rotated: time(idx[1], names[1])?,
                last_used_date: time(idx[2], names[2])?,
                last_used_region: text(field(idx[3])),
                last_used_service: text(field(idx[4])),
            };
        }
        rows.push(ReportRow {
            user: user.to_owned(),
            arn: field(arn_i).to_owned(),
            user_creation_time: time(created_i, CREATED)?,
            password_enabled: flag(pw_enabled_i, PW_ENABLED)?,
            password_last_used: time(pw_last_used_i, PW_LAST_USED)?,
            password_last_changed: time(pw_last_changed_i, PW_LAST_CHANGED)?,
            mfa_active: flag(mfa_i, MFA)?.unwrap_or(false),
            keys,
        });
    }
    Ok(CredentialReport { rows })
}

fn is_absent(v: &str) -> bool {
    matches!(v.trim(), "" | "N/A" | "no_information" | "not_supported")
}

fn text(v: &str) -> Option<String> {
    (!is_absent(v)).then(|| v.trim().to_owned())
}

fn parse_time(v: &str) -> Result<Option<DateTime<Utc>>, String> {
    if is_absent(v) {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(v.trim())
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| format!("{v:?} is not an ISO 8601 time: {e}"))
}

fn parse_bool(v: &str) -> Result<Option<bool>, String> {
    match v.trim() {
        "true" | "TRUE" | "True" => Ok(Some(true)),
        "false" | "FALSE" | "False" => Ok(Some(false)),
        other if is_absent(other) => Ok(None),
        other => Err(format!("{other:?} is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/credential_report")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn aws_report_with_root_row() {
        let report = parse(&fixture("aws_with_root.csv")).unwrap();
        assert_eq!(report.rows.len(), 5);

        let root = report.root().unwrap();
        assert_eq!(root.arn, "arn:aws:iam::123456789012:root");
        assert_eq!(root.password_enabled, None, "not_supported is absent");
        assert_eq!(root.password_last_used, Some(t(2026, 10, 30, 8, 12, 41)));
        assert!(root.mfa_active);
        assert_eq!(root.present_keys().count(), 0);

        let users: Vec<_> = report.users().map(|r| r.user.as_str()).collect();
        assert_eq!(
            users,
            ["alice", "bob", "carol", "svc-ci+deploy@example.com"]
        );

        let alice = &report.rows[1];
        assert_eq!(alice.password_enabled, Some(true));
        assert_eq!(alice.password_last_used, None, "no_information is absent");
        assert!(!alice.mfa_active);
        assert_eq!(alice.keys[0].last_rotated, Some(t(2026, 5, 7, 9, 15, 2)));
        assert!(alice.keys[0].active);
        assert_eq!(
            alice.keys[0].last_used_date,
            Some(t(2026, 11, 20, 13, 45, 0))
        );
        assert_eq!(alice.keys[0].last_used_service.as_deref(), Some("s3"));
        assert_eq!(alice.keys[1], KeySlot::default());

        let bob = &report.rows[2];
        assert_eq!(
            bob.present_keys().map(|(s, _)| s).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(!bob.keys[0].active);
        assert_eq!(bob.keys[1].last_used_date, None, "a key never used is N/A");

        let carol = &report.rows[3];
        assert_eq!(carol.password_enabled, Some(false));
        assert_eq!(carol.password_last_used, None, "N/A is absent");
        assert_eq!(carol.present_keys().count(), 0);

        // A key only in slot 2 (slot 1 deleted): the slot numbers are the report's.
        let svc = &report.rows[4];
        assert_eq!(svc.present_keys().map(|(s, _)| s).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn moto_style_report_without_root() {
        let report = parse(&fixture("emulator_no_root.csv")).unwrap();
        assert!(report.root().is_none());
        assert_eq!(report.rows.len(), 2);
    }

    #[test]
    fn column_order_does_not_matter() {
        let csv = "arn,user,mfa_active,user_creation_time,password_enabled,password_last_used,password_last_changed,\
access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,\
access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service\n\
arn:aws:iam::123456789012:user/x,x,true,2020-01-01T00:00:00+00:00,false,N/A,N/A,false,N/A,N/A,N/A,N/A,true,2021-02-03T04:05:06+00:00,N/A,N/A,N/A\n";
        let report = parse(csv.as_bytes()).unwrap();
        let x = &report.rows[0];
        assert!(x.mfa_active);
        assert_eq!(x.keys[0].last_rotated, Some(t(2021, 2, 3, 4, 5, 6)));
        assert!(x.keys[0].active);
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"\n  \n"), Err(ParseError::Empty));
        assert_eq!(parse(&[0xff, 0xfe, b'a']), Err(ParseError::NotUtf8));
        let huge = vec![b'a'; MAX_REPORT_BYTES + 1];
        assert_eq!(
            parse(&huge),
            Err(ParseError::TooLarge(MAX_REPORT_BYTES + 1))
        );
        assert_eq!(
            parse(b"user,arn\nx,y\n"),
            Err(ParseError::MissingColumn("user_creation_time"))
        );
        assert_eq!(
            parse(b"<html>Service Unavailable</html>"),
            Err(ParseError::MissingColumn("user"))
        );

        // Truncated in the middle of a row: csv reports the short record.
        let full = fixture("aws_with_root.csv");
        let cut = &full[..full.len() - 40];
        match parse(cut) {
            Err(ParseError::Line { line, .. }) => assert_eq!(line, 6),
            other => panic!("expected a line error, got {other:?}"),
        }

        let bad_time = String::from_utf8(fixture("aws_with_root.csv"))
            .unwrap()
            .replace("2026-05-07T09:15:02+00:00", "2026-13-07T09:15:02+00:00");
        match parse(bad_time.as_bytes()) {
            Err(ParseError::Line { line: 3, message }) => {
                assert!(
                    message.starts_with("access_key_1_last_rotated"),
                    "{message}"
                )
            }
            other => panic!("expected a line error, got {other:?}"),
        }

        let bad_bool = String::from_utf8(fixture("aws_with_root.csv"))
            .unwrap()
            .replacen(",true,", ",yes,", 1);
        assert!(matches!(
            parse(bad_bool.as_bytes()),
            Err(ParseError::Line { .. })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap stand-in for a fuzzer: every prefix of a real report, and some noise.
        let full = fixture("aws_with_root.csv");
        for end in 0..full.len() {
            let _ = parse(&full[..end]);
        }
        let mut seed: u32 = 7;
        for _ in 0..2000 {
            let mut bytes = full.clone();
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (seed as usize) % bytes.len();
            bytes[i] = (seed >> 16) as u8;
            let _ = parse(&bytes);
        }
    }
}
