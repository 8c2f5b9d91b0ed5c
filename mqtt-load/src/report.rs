//! [`Report`]: the final `RESULT key=value ...` line, one machine-readable line on stdout, and
//! the same figures as a JSON object ([`Report::to_json`]) with the latency percentiles grouped.

use std::fmt::{self, Display, Write as _};

use crate::histogram::Histogram;

/// The percentiles every latency summary carries, with their names in the result line and in
/// the JSON summary.
const PERCENTILES: [(f64, &str, &str); 4] = [
    (50.0, "p50", "p50"),
    (90.0, "p90", "p90"),
    (99.0, "p99", "p99"),
    (99.9, "p999", "p99_9"),
];

/// Latency percentiles in microseconds, as reported.
#[derive(Clone, Debug, PartialEq)]
struct Latency {
    name: String,
    count: u64,
    /// (JSON name, microseconds), then `max`.
    values: Vec<(&'static str, f64)>,
}

/// An ordered list of `key=value` fields, and latency summaries.
#[derive(Clone, Debug, Default)]
pub struct Report {
    fields: Vec<(String, String)>,
    latencies: Vec<Latency>,
}

impl Report {
    /// A report for `scenario` against `broker`.
    #[must_use]
    pub fn new(scenario: &str, broker: &str) -> Self {
        let mut report = Self::default();
        report.add("scenario", scenario);
        report.add("broker", broker);
        report
    }

    /// Appends a field (spaces in the value become underscores in the result line).
    pub fn add(&mut self, key: impl Into<String>, value: impl Display) {
        let mut text = String::new();
        let _ = write!(text, "{value}");
        self.fields.push((key.into(), text));
    }

    /// Appends a rate with one decimal.
    pub fn add_rate(&mut self, key: impl Into<String>, count: u64, seconds: f64) {
        let rate = if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        };
        self.add(key, format_args!("{rate:.1}"));
    }

    /// Appends the percentiles (p50, p90, p99, p99.9) and maximum of `nanos`, a histogram of
    /// nanoseconds, in microseconds: fields `{prefix}p50_us` ... `{prefix}max_us` in the
    /// result line, and an object `{prefix}latency_us` in the JSON summary.
    pub fn add_latency(&mut self, prefix: &str, nanos: &Histogram) {
        let micros = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        let mut values = Vec::new();
        for (percent, field, json) in PERCENTILES {
            let value = micros(nanos.percentile(percent));
            self.add(format!("{prefix}{field}_us"), format_args!("{value:.1}"));
            values.push((json, value));
        }
        let max = micros(nanos.max());
        self.add(format!("{prefix}max_us"), format_args!("{max:.1}"));
        values.push(("max", max));
        self.latencies.push(Latency {
            name: format!("{prefix}latency_us"),
            count: nanos.len(),
            values,
        });
    }

    /// The value of field `key`, as added.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The report as one JSON object: every field (numbers as numbers, `true` and `false` as
    /// booleans, the rest as strings),
    /// then each latency summary as an object with `count`, `p50`, `p90`, `p99`, `p99_9` and
    /// `max` in microseconds.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        let mut first = true;
        let mut key = |out: &mut String, name: &str| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
            push_json_string(out, name);
            out.push(':');
        };
        for (name, value) in &self.fields {
            key(&mut out, name);
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if is_json_number(value) || value == "true" || value == "false" {
                out.push_str(value);
            } else {
                push_json_string(&mut out, unquoted);
            }
        }
        for latency in &self.latencies {
            key(&mut out, &latency.name);
            let _ = write!(out, "{{\"count\":{}", latency.count);
            for (name, value) in &latency.values {
                let _ = write!(out, ",\"{name}\":{value}");
            }
            out.push('}');
        }
        out.push('}');
        out
    }
}

/// Whether `text` is a number in JSON's grammar (the forms the reports write).
fn is_json_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole)
        && (whole == "0" || !whole.starts_with('0'))
        && fraction.is_none_or(all_digits)
}

/// Appends `text` as a JSON string, escaped.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RESULT")?;
        for (key, value) in &self.fields {
            write!(f, " {key}={}", value.replace(char::is_whitespace, "_"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_one_splittable_line() {
        let mut r = Report::new("fanin", "our broker");
        r.add("sent", 10);
        r.add_rate("msg_per_s", 10, 4.0);
        assert_eq!(
            r.to_string(),
            "RESULT scenario=fanin broker=our_broker sent=10 msg_per_s=2.5"
        );
        assert_eq!(r.get("sent"), Some("10"));
    }

    #[test]
    fn json_keeps_numbers_and_escapes_text() {
        let mut r = Report::new("sub", "b \"1\"\\\n");
        r.add("received", 12);
        r.add("first_error", "\"i/o error: refused\"");
        r.add("version", "01");
        r.add("rate", "-2.5");
        r.add("retain", true);
        let mut h = Histogram::new();
        h.record(1_500);
        h.record(3_000);
        r.add_latency("", &h);
        assert!(
            r.to_string()
                .contains(" p90_us=3.0 p99_us=3.0 p999_us=3.0 max_us=3.0")
        );
        assert_eq!(
            r.to_json(),
            "{\"scenario\":\"sub\",\"broker\":\"b \\\"1\\\"\\\\\\n\",\"received\":12,\
             \"first_error\":\"i/o error: refused\",\"version\":\"01\",\"rate\":-2.5,\"retain\":true,\
             \"p50_us\":1.5,\"p90_us\":3.0,\"p99_us\":3.0,\"p999_us\":3.0,\"max_us\":3.0,\
             \"latency_us\":{\"count\":2,\"p50\":1.5,\"p90\":3,\"p99\":3,\"p99_9\":3,\"max\":3}}"
        );
    }

    #[test]
    fn json_numbers_follow_the_grammar() {
        for good in ["0", "12", "-3", "0.5", "10.25"] {
            assert!(is_json_number(good), "{good}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "inf", "NaN", "1e5", "+1", "1.2.3", "ok",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
        let mut out = String::new();
        push_json_string(&mut out, "\u{1}é");
        assert_eq!(out, "\"\\u0001é\"");
    }
}
