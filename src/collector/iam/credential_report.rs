//! The IAM credential report: CSV in, typed rows out.
//!
//! Columns are found by header name, not position, since AWS has added columns over the years.
//! `N/A`, `no_information` and `not_supported` all mean "absent" and become `None`.
//! A report that contradicts itself (a user twice, an active key without a creation time) is
//! refused rather than half-read: a silently dropped row or key would be a missed finding.

use std::collections::HashMap;

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
    #[error("the report has the column {0:?} twice")]
    DuplicateColumn(&'static str),
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

impl From<ParseError> for crate::error::Error {
    fn from(e: ParseError) -> Self {
        crate::error::Error::Report(e.to_string())
    }
}

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
        let mut found = headers.iter().enumerate().filter(|(_, h)| h.trim() == name);
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Ok(i),
            (None, _) => Err(ParseError::MissingColumn(name)),
            // Which of the two is meant is anybody's guess.
            (Some(_), Some(_)) => Err(ParseError::DuplicateColumn(name)),
        }
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
    // User name -> line of its row. IAM user names are unique; the same name twice would
    // give two series with the same labels.
    let mut seen: HashMap<String, u64> = HashMap::new();
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
        if user.trim().is_empty() {
            return Err(err(USER, "empty user name".into()));
        }
        if let Some(first) = seen.insert(user.to_owned(), line) {
            return Err(err(
                USER,
                format!("{user:?} appears twice (first on line {first})"),
            ));
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
            // A slot's key is known by its creation time; an active one without it would be
            // dropped by `present_keys`, hiding an active key from every check.
            if keys[slot].active && keys[slot].last_rotated.is_none() {
                return Err(err(names[0], format!("true, but {} is absent", names[1])));
            }
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

    /// A column of a rewritten report: one of the original's, by index, or a new one.
    enum Col {
        Old(usize),
        New(&'static str, &'static str),
    }

    /// `content` with its columns rearranged by `pick`, which sees the original header.
    fn reshape(content: &[u8], pick: impl Fn(&[String]) -> Vec<Col>) -> Vec<u8> {
        let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(content)
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        let cols = pick(&rows[0]);
        let mut w = csv::Writer::from_writer(Vec::new());
        for (i, row) in rows.iter().enumerate() {
            w.write_record(cols.iter().map(|c| match c {
                Col::Old(j) => row[*j].as_str(),
                Col::New(name, _) if i == 0 => name,
                Col::New(_, value) => value,
            }))
            .unwrap();
        }
        w.into_inner().unwrap()
    }

    fn without(content: &[u8], drop: &[&str]) -> Vec<u8> {
        reshape(content, |h| {
            (0..h.len())
                .filter(|&i| !drop.contains(&h[i].as_str()))
                .map(Col::Old)
                .collect()
        })
    }

    /// Every column the parser reads.
    fn required() -> Vec<&'static str> {
        let mut all = vec![
            USER,
            ARN,
            CREATED,
            PW_ENABLED,
            PW_LAST_USED,
            PW_LAST_CHANGED,
            MFA,
        ];
        all.extend(SLOT_COLUMNS.iter().flatten());
        all
    }

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        for name in [
            "aws_with_root.csv",
            "aws_root_with_keys.csv",
            "emulator_no_root.csv",
        ] {
            let original = fixture(name);
            let want = parse(&original).unwrap();
            let reversed = reshape(&original, |h| (0..h.len()).rev().map(Col::Old).collect());
            assert_eq!(parse(&reversed).unwrap(), want, "{name} reversed");
            // A rotation moves every column, `user` last.
            let rotated = reshape(&original, |h| {
                (1..h.len()).chain([0]).map(Col::Old).collect()
            });
            assert_eq!(parse(&rotated).unwrap(), want, "{name} rotated");
        }
    }

    #[test]
    fn columns_not_read_may_be_missing_and_unknown_ones_are_ignored() {
        let original = fixture("aws_with_root.csv");
        let want = parse(&original).unwrap();
        // An older report's column set: no password_next_rotation, no certificates.
        let old = without(
            &original,
            &[
                "password_next_rotation",
                "cert_1_active",
                "cert_1_last_rotated",
                "cert_2_active",
                "cert_2_last_rotated",
            ],
        );
        assert_eq!(parse(&old).unwrap(), want);
        // Columns AWS may add one day, first and last, some with names close to ours.
        let newer = reshape(&original, |h| {
            let mut cols = vec![Col::New("access_key_3_active", "true")];
            cols.extend((0..h.len()).map(Col::Old));
            cols.push(Col::New("user_name", "someone-else"));
            cols.push(Col::New("passkey_last_used", "garbage, not a time"));
            cols
        });
        assert_eq!(parse(&newer).unwrap(), want);
    }

    #[test]
    fn a_missing_column_is_named() {
        let original = fixture("aws_with_root.csv");
        for name in required() {
            let err = parse(&without(&original, &[name])).unwrap_err();
            assert_eq!(err, ParseError::MissingColumn(name));
            assert_eq!(
                err.to_string(),
                format!("the report has no column \"{name}\"")
            );
        }
    }

    #[test]
    fn a_column_read_twice_is_refused() {
        let original = fixture("aws_with_root.csv");
        let twice = reshape(&original, |h| {
            let slot = h.iter().position(|c| c == "access_key_1_active").unwrap();
            (0..h.len()).chain([slot]).map(Col::Old).collect()
        });
        assert_eq!(
            parse(&twice),
            Err(ParseError::DuplicateColumn("access_key_1_active"))
        );
        // A column we do not read may repeat.
        let cert = reshape(&original, |h| {
            let cert = h.iter().position(|c| c == "cert_1_active").unwrap();
            (0..h.len()).chain([cert]).map(Col::Old).collect()
        });
        assert_eq!(parse(&cert), parse(&original));
    }

    #[test]
    fn crlf_line_endings_and_a_byte_order_mark_change_nothing() {
        let original = fixture("aws_with_root.csv");
        let want = parse(&original).unwrap();
        let text = String::from_utf8(original).unwrap();
        assert!(!text.contains('\r'));
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(parse(crlf.as_bytes()).unwrap(), want);
        let bom = format!("\u{feff}{text}");
        assert_eq!(parse(bom.as_bytes()).unwrap(), want);
        let both = format!("\u{feff}{crlf}");
        assert_eq!(parse(both.as_bytes()).unwrap(), want);
        // The last line without its line break.
        assert_eq!(parse(text.trim_end().as_bytes()).unwrap(), want);
        // With `user` last, a stray '\r' would end up in the name.
        let reversed = reshape(text.as_bytes(), |h| {
            (0..h.len()).rev().map(Col::Old).collect()
        });
        let reversed = String::from_utf8(reversed).unwrap().replace('\n', "\r\n");
        assert_eq!(parse(reversed.as_bytes()).unwrap(), want);
    }

    #[test]
    fn invalid_utf8_anywhere_is_refused() {
        let mut bytes = fixture("aws_with_root.csv");
        // "alice" -> "al\xffce", in the middle of the report.
        let at = bytes.windows(5).position(|w| w == b"alice").unwrap();
        bytes[at + 2] = 0xff;
        assert_eq!(parse(&bytes), Err(ParseError::NotUtf8));
        // A Latin-1 "é" at the very end.
        let mut bytes = fixture("aws_with_root.csv");
        bytes.push(0xe9);
        assert_eq!(parse(&bytes), Err(ParseError::NotUtf8));
    }

    #[test]
    fn empty_and_header_only_reports() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"\r\n\t "), Err(ParseError::Empty));
        let text = String::from_utf8(fixture("aws_with_root.csv")).unwrap();
        let header = text.lines().next().unwrap();
        // An account without users, as moto writes it (no root row): a report of nobody.
        for only in [
            header.to_owned(),
            format!("{header}\n"),
            format!("{header}\r\n"),
        ] {
            let report = parse(only.as_bytes()).unwrap();
            assert!(report.rows.is_empty());
            assert!(report.root().is_none());
        }
    }

    #[test]
    fn an_oversized_report_is_refused_before_it_is_read() {
        // 50 MB made of a valid report, ending in a byte that is not UTF-8: only the size
        // check, which comes first, can give TooLarge, and it looks at no byte.
        let row = "u,arn:aws:iam::123456789012:user/u,N/A,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A\n";
        let size = 50 * 1024 * 1024;
        let mut big = Vec::with_capacity(size);
        big.extend_from_slice(required().join(",").as_bytes());
        big.push(b'\n');
        while big.len() + row.len() < size {
            big.extend_from_slice(row.as_bytes());
        }
        big.resize(size, 0xff);
        let err = parse(&big).unwrap_err();
        assert_eq!(err, ParseError::TooLarge(size));
        assert_eq!(
            err.to_string(),
            "the report has 52428800 bytes, more than the 16777216 a real one can have"
        );

        // The limit itself is allowed: a report of exactly MAX_REPORT_BYTES is read (and here
        // refused for its content, not its size).
        big.truncate(MAX_REPORT_BYTES);
        big[MAX_REPORT_BYTES - 1] = 0xff;
        assert_eq!(parse(&big), Err(ParseError::NotUtf8));
    }

    #[test]
    fn a_report_that_contradicts_itself_is_refused() {
        let text = String::from_utf8(fixture("aws_with_root.csv")).unwrap();
        let line = |n: usize| text.lines().nth(n).unwrap().to_owned();

        // The same user twice, root included; the error names both lines.
        for n in [1, 2] {
            let twice = format!("{text}{}\n", line(n));
            match parse(twice.as_bytes()) {
                Err(ParseError::Line { line: 7, message }) => assert_eq!(
                    message,
                    format!(
                        "user: {:?} appears twice (first on line {})",
                        line(n).split(',').next().unwrap(),
                        n + 1
                    )
                ),
                other => panic!("expected a line error, got {other:?}"),
            }
        }

        // A user name of blanks is no name.
        let blank = text.replacen("\ncarol,", "\n   ,", 1);
        assert_eq!(
            parse(blank.as_bytes()),
            Err(ParseError::Line {
                line: 5,
                message: "user: empty user name".into()
            })
        );

        // carol's slot 1 "active" without a key: an active key nobody could see.
        let carol = line(4);
        let active = carol.replacen(",false,false,N/A,", ",false,true,N/A,", 1);
        assert_ne!(carol, active);
        let ghost = text.replace(&carol, &active);
        assert_eq!(
            parse(ghost.as_bytes()),
            Err(ParseError::Line {
                line: 5,
                message: "access_key_1_active: true, but access_key_1_last_rotated is absent"
                    .into()
            })
        );
    }
}
