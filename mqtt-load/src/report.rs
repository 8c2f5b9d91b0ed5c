//! [`Report`]: the final `RESULT key=value ...` line, one machine-readable line on stdout.

use std::fmt::{self, Display, Write as _};

/// An ordered list of `key=value` fields.
#[derive(Clone, Debug, Default)]
pub struct Report {
    fields: Vec<(&'static str, String)>,
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

    /// Appends a field; spaces in the value become underscores so the line stays splittable.
    pub fn add(&mut self, key: &'static str, value: impl Display) {
        let mut text = String::new();
        let _ = write!(text, "{value}");
        self.fields
            .push((key, text.replace(char::is_whitespace, "_")));
    }

    /// Appends a rate with one decimal.
    pub fn add_rate(&mut self, key: &'static str, count: u64, seconds: f64) {
        let rate = if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        };
        self.add(key, format_args!("{rate:.1}"));
    }
}

impl Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RESULT")?;
        for (key, value) in &self.fields {
            write!(f, " {key}={value}")?;
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
    }
}
