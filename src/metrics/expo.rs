//! Writes the exposition: Prometheus text 0.0.4 or OpenMetrics 1.0, which differ only in
//! metadata lines (OpenMetrics has `# UNIT` and `# EOF`, and names counter and info families
//! without their `_total` and `_info` sample suffixes).
//!
//! Most series only change when a collector's data does, so they are written once per data
//! change into [`Fragments`] (one per (account, collector)), and a scrape splices those bytes
//! under each family's header. Ages are the values that move between refreshes: their label
//! text is kept, and the value is computed at scrape time.

use std::fmt::Write as _;
use std::sync::Arc;

use super::Format;

pub const PREFIX: &str = "infraaudit";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Info,
}

/// A metric family: name without prefix and unit, help text, unit and kind.
#[derive(Debug, Clone, Copy)]
pub struct Family<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub unit: Option<&'static str>,
    pub kind: Kind,
}

impl<'a> Family<'a> {
    pub fn gauge(name: &'a str, help: &'a str, unit: Option<&'static str>) -> Self {
        let kind = Kind::Gauge;
        Self {
            name,
            help,
            unit,
            kind,
        }
    }

    pub fn counter(name: &'a str, help: &'a str) -> Self {
        let (unit, kind) = (None, Kind::Counter);
        Self {
            name,
            help,
            unit,
            kind,
        }
    }

    /// A counter of a quantity with a base unit (`seconds`): `<name>_<unit>_total`.
    pub fn counter_with_unit(name: &'a str, help: &'a str, unit: Option<&'static str>) -> Self {
        Self {
            unit,
            ..Self::counter(name, help)
        }
    }

    /// Series of value 1 whose labels are the information.
    pub fn info(name: &'a str, help: &'a str) -> Self {
        let (unit, kind) = (None, Kind::Info);
        Self {
            name,
            help,
            unit,
            kind,
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

    fn write_header(&self, out: &mut String, format: Format) {
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
            out.push_str(if line == "# HELP " { self.help } else { kind });
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

/// The series of one (account, collector), per cached family in the order they are encoded.
#[derive(Debug, Default)]
pub struct Fragments(Vec<Fragment>);

impl Fragments {
    /// Bytes held, for memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|f| f.text.capacity() + f.since.capacity() * std::mem::size_of::<(usize, f64)>())
            .sum()
    }
}

/// Where families go: into one (account, collector)'s fragments, or out as a scrape.
pub struct Encoder<'a> {
    mode: Mode<'a>,
    /// Index of the next cached family.
    next: usize,
}

enum Mode<'a> {
    Record(&'a mut Fragments),
    Write {
        out: &'a mut String,
        format: Format,
        cached: &'a [Arc<Fragments>],
        now: f64,
    },
}

impl<'a> Encoder<'a> {
    /// Records the cached families' series into `into`; live families are skipped.
    pub fn record(into: &'a mut Fragments) -> Self {
        Self {
            mode: Mode::Record(into),
            next: 0,
        }
    }

    /// Writes a scrape to `out`: each cached family from `cached` (in the order of the
    /// snapshot's entries), each live family from its series.
    pub fn write(
        out: &'a mut String,
        format: Format,
        cached: &'a [Arc<Fragments>],
        now: f64,
    ) -> Self {
        Self {
            mode: Mode::Write {
                out,
                format,
                cached,
                now,
            },
            next: 0,
        }
    }

    /// A family whose series come from the snapshot's entries: encoded once per data change.
    /// The series are read only when recording, never during a scrape.
    pub fn cached<'s, const N: usize, V: Into<Value>>(
        &mut self,
        family: Family<'_>,
        series: impl Iterator<Item = ([(&'static str, &'s str); N], V)>,
    ) {
        let index = self.next;
        self.next += 1;
        match &mut self.mode {
            Mode::Record(into) => {
                let mut fragment = Fragment::default();
                for (labels, value) in series {
                    family.write_series(&mut fragment.text, &labels);
                    match value.into() {
                        Value::Since(since) => fragment.since.push((fragment.text.len(), since)),
                        other => write_value(&mut fragment.text, other, 0.0),
                    }
                }
                fragment.text.shrink_to_fit();
                into.0.push(fragment);
            }
            Mode::Write {
                out,
                format,
                cached,
                now,
            } => {
                family.write_header(out, *format);
                for fragments in cached.iter() {
                    if let Some(fragment) = fragments.0.get(index) {
                        fragment.write(out, *now);
                    }
                }
            }
        }
    }

    /// A family computed at every scrape (small ones: statuses, counters, summaries).
    pub fn live<'s, const N: usize, V: Into<Value>>(
        &mut self,
        family: Family<'_>,
        series: impl Iterator<Item = ([(&'static str, &'s str); N], V)>,
    ) {
        if let Mode::Write {
            out, format, now, ..
        } = &mut self.mode
        {
            family.write_header(out, *format);
            for (labels, value) in series {
                family.write_series(out, &labels);
                write_value(out, value.into(), *now);
            }
        }
    }

    /// Ends the exposition.
    pub fn finish(self) {
        if let Mode::Write {
            out,
            format: Format::OpenMetrics,
            ..
        } = self.mode
        {
            out.push_str("# EOF\n");
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

    fn scrape(format: Format, families: &[(Family<'_>, Value)]) -> String {
        let mut out = String::new();
        let mut e = Encoder::write(&mut out, format, &[], 100.0);
        for (f, v) in families {
            e.live(*f, [([("a", "q\"b\\s\nn")], *v)].into_iter());
        }
        e.finish();
        out
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

    #[test]
    fn recorded_families_are_spliced_with_ages_computed_at_write_time() {
        let gauge = family(Kind::Gauge, None);
        let age = family(Kind::Gauge, Some("seconds"));
        let record = |account: &'static str, created: f64| {
            let mut f = Fragments::default();
            let mut e = Encoder::record(&mut f);
            let ages = [
                ([("account_id", account)], Value::Since(created)),
                ([("account_id", "fixed")], Value::F64(1.0)),
            ];
            e.cached(age, ages.into_iter());
            e.live(gauge, std::iter::once(([], Value::F64(7.0))));
            e.cached(
                gauge,
                [([("account_id", account)], Value::F64(2.0))].into_iter(),
            );
            f
        };
        let (one, two) = (Arc::new(record("1", 10.0)), Arc::new(record("2", 30.0)));
        let mut out = String::new();
        let cached = [one, two];
        let mut e = Encoder::write(&mut out, Format::Text, &cached, 40.0);
        e.cached(age, std::iter::empty::<([(&str, &str); 0], Value)>());
        e.live(gauge, std::iter::once(([], Value::F64(7.0))));
        e.cached(gauge, std::iter::empty::<([(&str, &str); 0], Value)>());
        e.finish();
        let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "infraaudit_x_seconds{account_id=\"1\"} 30.0",
                "infraaudit_x_seconds{account_id=\"fixed\"} 1.0",
                "infraaudit_x_seconds{account_id=\"2\"} 10.0",
                "infraaudit_x_seconds{account_id=\"fixed\"} 1.0",
                "infraaudit_x 7.0",
                "infraaudit_x{account_id=\"1\"} 2.0",
                "infraaudit_x{account_id=\"2\"} 2.0",
            ]
        );
    }
}
