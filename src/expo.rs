//! Writes the exposition: Prometheus text 0.0.4 or OpenMetrics 1.0, which differ only in
//! metadata lines (OpenMetrics has `# UNIT` and `# EOF`, and names counter and info families
//! without their `_total` and `_info` sample suffixes).
//!
//! Most series only change when a collector's data does, so they are written once, when a run's
//! data is recorded, into [`Fragments`] (one per (account, collector), one part per family of
//! the collector's static list), and a scrape splices those bytes under each family's header.
//! Ages are the values that move between refreshes: their label text is kept, and the value is
//! computed at scrape time. A leaf module: collectors encode with it, `metrics` splices.

use std::fmt::Write as _;

use crate::gzip::{Deflated, GzipBody};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    OpenMetrics,
}

pub const PREFIX: &str = "infraaudit";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Info,
}

/// A metric family: name without prefix and unit, help text, unit and kind. Collectors declare
/// theirs as constants; a help text may hold `{every}`, the collector's configured interval.
#[derive(Debug, Clone, Copy)]
pub struct Family<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub unit: Option<&'static str>,
    pub kind: Kind,
}

/// A yes/no as a sample value.
pub fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The unit of time families.
pub const SECONDS: Option<&str> = Some("seconds");

impl<'a> Family<'a> {
    pub const fn gauge(name: &'a str, help: &'a str, unit: Option<&'static str>) -> Self {
        Self {
            name,
            help,
            unit,
            kind: Kind::Gauge,
        }
    }

    pub const fn counter(name: &'a str, help: &'a str) -> Self {
        Self {
            name,
            help,
            unit: None,
            kind: Kind::Counter,
        }
    }

    /// A counter of a quantity with a base unit (`seconds`): `<name>_<unit>_total`.
    pub const fn counter_with_unit(
        name: &'a str,
        help: &'a str,
        unit: Option<&'static str>,
    ) -> Self {
        Self {
            name,
            help,
            unit,
            kind: Kind::Counter,
        }
    }

    /// Series of value 1 whose labels are the information.
    pub const fn info(name: &'a str, help: &'a str) -> Self {
        Self {
            name,
            help,
            unit: None,
            kind: Kind::Info,
        }
    }

    /// `infraaudit_<name>[_<unit>]`: the family name in OpenMetrics.
    fn write_name(&self, out: &mut String) {
        out.push_str(PREFIX);
        out.push('_');
        out.push_str(self.name);
        if let Some(unit) = self.unit {
            out.push('_');
            out.push_str(unit);
        }
    }

    /// What the samples' names add to the family name; in text 0.0.4 the family has it too.
    fn suffix(&self) -> &'static str {
        match self.kind {
            Kind::Gauge => "",
            Kind::Counter => "_total",
            Kind::Info => "_info",
        }
    }

    /// The `# HELP`/`# TYPE` (and `# UNIT`) lines, with `help` for the family's own text.
    pub fn write_header(&self, out: &mut String, format: Format, help: &str) {
        let suffix = if format == Format::Text {
            self.suffix()
        } else {
            ""
        };
        let kind = match (format, self.kind) {
            (_, Kind::Counter) => "counter",
            (Format::OpenMetrics, Kind::Info) => "info",
            _ => "gauge",
        };
        for line in ["# HELP ", "# TYPE "] {
            out.push_str(line);
            self.write_name(out);
            out.push_str(suffix);
            out.push(' ');
            out.push_str(if line == "# HELP " { help } else { kind });
            out.push('\n');
        }
        if let (Format::OpenMetrics, Some(unit)) = (format, self.unit) {
            out.push_str("# UNIT ");
            self.write_name(out);
            out.push(' ');
            out.push_str(unit);
            out.push('\n');
        }
    }

    /// `name{label="value",...}`, label values escaped as both formats require.
    fn write_series(&self, out: &mut String, labels: &[(&str, &str)]) {
        self.write_name(out);
        out.push_str(self.suffix());
        if labels.is_empty() {
            return;
        }
        out.push('{');
        for (i, (name, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push_str("=\"");
            escape(out, value);
            out.push('"');
        }
        out.push('}');
    }
}

fn escape(out: &mut String, value: &str) {
    let mut rest = value;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// A sample's value.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    F64(f64),
    U64(u64),
    /// Seconds from this Unix time to the scrape, at least 0.
    Since(f64),
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::U64(n)
    }
}

fn write_f64(out: &mut String, v: f64) {
    out.push(' ');
    out.push_str(dtoa::Buffer::new().format(v));
    out.push('\n');
}

/// One family's part of one (account, collector): whole sample lines, or for ages the text
/// before each value and the time the value counts from.
#[derive(Debug, Default)]
struct Fragment {
    text: String,
    /// (end of the sample's text in `text`, time it counts from)
    since: Vec<(usize, f64)>,
    /// `text` compressed for gzip scrapes, when it has no ages (they change at every scrape).
    deflated: Deflated,
}

impl Fragment {
    fn write(&self, out: &mut String, now: f64) {
        if self.since.is_empty() {
            out.push_str(&self.text);
            return;
        }
        let mut start = 0;
        for &(end, since) in &self.since {
            out.push_str(&self.text[start..end]);
            write_f64(out, (now - since).max(0.0));
            start = end;
        }
        // Samples of other values after the last age, should a family mix them.
        out.push_str(&self.text[start..]);
    }
}

/// The recorded series of one (account, collector): one part per family of the collector's
/// static list, at that family's index, whatever order the series were recorded in.
#[derive(Debug, Default)]
pub struct Fragments(Vec<Fragment>);

impl Fragments {
    /// Bytes held, for memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|f| {
                f.text.capacity()
                    + f.since.capacity() * std::mem::size_of::<(usize, f64)>()
                    + f.deflated.heap_bytes()
            })
            .sum()
    }
}

/// Records one (account, collector)'s series, family by family, off the scrape path.
pub struct Recorder<'f> {
    families: &'f [Family<'static>],
    parts: Vec<Fragment>,
}

impl<'f> Recorder<'f> {
    /// A recorder for the families of one collector's list.
    pub fn new(families: &'f [Family<'static>]) -> Self {
        Self {
            families,
            parts: families.iter().map(|_| Fragment::default()).collect(),
        }
    }

    /// Appends series of `family`, which must be in the list (tests check every collector's).
    /// Labels are usually an array with static names; info series with configured tag labels
    /// pass a `Vec`.
    pub fn series<'n, 's, L, V>(
        &mut self,
        family: &Family<'_>,
        series: impl Iterator<Item = (L, V)>,
    ) where
        L: AsRef<[(&'n str, &'s str)]>,
        V: Into<Value>,
    {
        let index = self
            .families
            .iter()
            .position(|f| f.name == family.name && f.unit == family.unit);
        debug_assert!(index.is_some(), "{} is not in the list", family.name);
        let Some(fragment) = index.and_then(|i| self.parts.get_mut(i)) else {
            return;
        };
        for (labels, value) in series {
            family.write_series(&mut fragment.text, labels.as_ref());
            match value.into() {
                Value::Since(since) => fragment.since.push((fragment.text.len(), since)),
                other => write_value(&mut fragment.text, other, 0.0),
            }
        }
    }

    /// The recorded parts, each also compressed for gzip scrapes unless it holds ages.
    pub fn finish(mut self) -> Fragments {
        for part in &mut self.parts {
            part.text.shrink_to_fit();
            part.since.shrink_to_fit();
            if part.since.is_empty() {
                part.deflated = Deflated::new(part.text.as_bytes());
            }
        }
        Fragments(self.parts)
    }

    /// The recorded parts, not compressed: for parts written once (live families).
    pub fn finish_plain(self) -> Fragments {
        Fragments(self.parts)
    }
}

/// A family's header lines in both formats, written (and compressed) once: a gzip scrape of
/// many families would otherwise compress each header on its own.
#[derive(Debug)]
pub struct Header {
    text: [String; 2],
    deflated: [Deflated; 2],
}

impl Header {
    pub fn new(family: &Family<'_>, help: &str) -> Self {
        let text = [Format::Text, Format::OpenMetrics].map(|format| {
            let mut out = String::new();
            family.write_header(&mut out, format, help);
            out
        });
        let deflated = [0, 1].map(|i| Deflated::new(text[i].as_bytes()));
        Self { text, deflated }
    }
}

/// Writes one scrape: headers, recorded parts spliced, live families. A gzip scrape copies
/// the recorded parts' compressed bytes and compresses only the text written now (headers,
/// ages, live families) in between.
pub struct Writer {
    /// The whole exposition, or for gzip the text written since the last compressed part.
    text: String,
    gzip: Option<GzipBody>,
    format: Format,
    now: f64,
}

/// A finished scrape.
pub enum Body {
    Text(String),
    Gzip(Vec<u8>),
}

impl Writer {
    /// `capacity`: the expected size of the exposition (of the gzip body when `gzip`).
    pub fn new(format: Format, now: f64, capacity: usize, gzip: bool) -> Self {
        let (text, gzip) = if gzip {
            (
                String::with_capacity(64 * 1024),
                Some(GzipBody::with_capacity(capacity)),
            )
        } else {
            (String::with_capacity(capacity), None)
        };
        Self {
            text,
            gzip,
            format,
            now,
        }
    }

    /// A family's header, written beforehand.
    pub fn header(&mut self, header: &Header) {
        let i = usize::from(self.format == Format::OpenMetrics);
        match &mut self.gzip {
            Some(body) => {
                body.push_text(self.text.as_bytes());
                self.text.clear();
                body.push_deflated(&header.deflated[i]);
            }
            None => self.text.push_str(&header.text[i]),
        }
    }

    /// The recorded part at `index` of one (account, collector), ages computed now.
    pub fn splice(&mut self, fragments: &Fragments, index: usize) {
        let Some(fragment) = fragments.0.get(index) else {
            return;
        };
        let Some(body) = &mut self.gzip else {
            return fragment.write(&mut self.text, self.now);
        };
        body.push_text(self.text.as_bytes());
        self.text.clear();
        if fragment.since.is_empty() {
            body.push_deflated(&fragment.deflated);
        } else {
            // Ages change at every scrape: written now, and stored rather than compressed.
            fragment.write(&mut self.text, self.now);
            body.push_stored(self.text.as_bytes());
            self.text.clear();
        }
    }

    /// A family computed at every scrape (small ones: statuses, counters, summaries).
    pub fn live<'s, const N: usize, V: Into<Value>>(
        &mut self,
        family: Family<'_>,
        series: impl Iterator<Item = ([(&'static str, &'s str); N], V)>,
    ) {
        family.write_header(&mut self.text, self.format, family.help);
        for (labels, value) in series {
            family.write_series(&mut self.text, &labels);
            write_value(&mut self.text, value.into(), self.now);
        }
    }

    /// Ends the exposition.
    pub fn finish(mut self) -> Body {
        if self.format == Format::OpenMetrics {
            self.text.push_str("# EOF\n");
        }
        match self.gzip {
            Some(mut body) => {
                body.push_text(self.text.as_bytes());
                Body::Gzip(body.finish())
            }
            None => Body::Text(self.text),
        }
    }
}

impl Body {
    pub fn len(&self) -> usize {
        match self {
            Body::Text(t) => t.len(),
            Body::Gzip(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Body::Text(t) => t.into_bytes(),
            Body::Gzip(b) => b,
        }
    }
}

fn write_value(out: &mut String, value: Value, now: f64) {
    match value {
        Value::F64(v) => write_f64(out, v),
        Value::Since(since) => write_f64(out, (now - since).max(0.0)),
        Value::U64(n) => {
            let _ = writeln!(out, " {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(kind: Kind, unit: Option<&'static str>) -> Family<'static> {
        Family {
            name: "x",
            help: "Help.",
            unit,
            kind,
        }
    }

    fn text(body: Body) -> String {
        match body {
            Body::Text(t) => t,
            Body::Gzip(b) => {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&b[..]), &mut t)
                    .unwrap();
                t
            }
        }
    }

    fn scrape(format: Format, families: &[(Family<'_>, Value)]) -> String {
        let mut w = Writer::new(format, 100.0, 0, false);
        for (f, v) in families {
            w.live(*f, [([("a", "q\"b\\s\nn")], *v)].into_iter());
        }
        text(w.finish())
    }

    #[test]
    fn both_formats_with_units_suffixes_and_escaping() {
        let families = [
            (family(Kind::Counter, None), Value::U64(3)),
            (family(Kind::Info, None), Value::U64(1)),
            (family(Kind::Gauge, Some("seconds")), Value::Since(98.5)),
        ];
        let l = r#"{a="q\"b\\s\nn"}"#;
        assert_eq!(
            scrape(Format::Text, &families),
            format!(
                "# HELP infraaudit_x_total Help.\n# TYPE infraaudit_x_total counter\ninfraaudit_x_total{l} 3\n\
# HELP infraaudit_x_info Help.\n# TYPE infraaudit_x_info gauge\ninfraaudit_x_info{l} 1\n\
# HELP infraaudit_x_seconds Help.\n# TYPE infraaudit_x_seconds gauge\ninfraaudit_x_seconds{l} 1.5\n"
            )
        );
        assert_eq!(
            scrape(Format::OpenMetrics, &families),
            format!(
                "# HELP infraaudit_x Help.\n# TYPE infraaudit_x counter\ninfraaudit_x_total{l} 3\n\
# HELP infraaudit_x Help.\n# TYPE infraaudit_x info\ninfraaudit_x_info{l} 1\n\
# HELP infraaudit_x_seconds Help.\n# TYPE infraaudit_x_seconds gauge\n# UNIT infraaudit_x_seconds seconds\n\
infraaudit_x_seconds{l} 1.5\n# EOF\n"
            )
        );
    }

    const AGE: Family<'static> = Family::gauge("x", "Help.", SECONDS);
    const PLAIN: Family<'static> = Family::gauge("x", "Help.", None);
    const LIST: [Family<'static>; 2] = [AGE, PLAIN];

    #[test]
    fn parts_are_keyed_by_family_not_by_recording_order() {
        let record = |account: &'static str, created: f64| {
            let mut r = Recorder::new(&LIST);
            // The plain family first, though it is second in the list.
            r.series(
                &PLAIN,
                [([("account_id", account)], Value::F64(2.0))].into_iter(),
            );
            r.series(
                &AGE,
                [([("account_id", account)], Value::Since(created))].into_iter(),
            );
            r.series(
                &AGE,
                [([("account_id", "fixed")], Value::F64(1.0))].into_iter(),
            );
            r.finish()
        };
        let (one, two) = (record("1", 10.0), record("2", 30.0));
        let scrape = |gzip| {
            let mut w = Writer::new(Format::Text, 40.0, 0, gzip);
            for (i, family) in LIST.iter().enumerate() {
                w.header(&Header::new(family, family.help));
                w.splice(&one, i);
                w.splice(&two, i);
            }
            text(w.finish())
        };
        let out = scrape(false);
        // The gzip scrape splices the plain part's compressed bytes between live text.
        assert_eq!(scrape(true), out);
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "infraaudit_x_seconds{account_id=\"1\"} 30.0",
                "infraaudit_x_seconds{account_id=\"fixed\"} 1.0",
                "infraaudit_x_seconds{account_id=\"2\"} 10.0",
                "infraaudit_x_seconds{account_id=\"fixed\"} 1.0",
                "infraaudit_x{account_id=\"1\"} 2.0",
                "infraaudit_x{account_id=\"2\"} 2.0",
            ]
        );
    }
}
