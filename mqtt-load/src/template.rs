//! [`Template`]: client identifiers, topics and payload texts with placeholders, expanded once
//! per client: `%i` (client index), `%c` (client identifier), `%u` (user name), `%rand` (a
//! random number below 2^32), `%rand_N` (a random number from 1 to N) and `%%` (a percent
//! sign).

use crate::error::LoadError;

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Index,
    ClientId,
    Username,
    /// A random number from 1 to N, or below 2^32 without N.
    Random(Option<u64>),
}

/// A text with placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What the placeholders of one client stand for.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    /// `%i`.
    pub index: u64,
    /// `%c`.
    pub client_id: &'a str,
    /// `%u`.
    pub username: &'a str,
}

impl Template {
    /// Parses `text`.
    ///
    /// # Errors
    /// A `%` that starts none of the placeholders, or `%rand_N` with N missing or zero.
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('%') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (part, used) = if let Some(tail) = after.strip_prefix("rand") {
                match tail.strip_prefix('_') {
                    Some(digits) => {
                        let len = digits.bytes().take_while(u8::is_ascii_digit).count();
                        let n = digits[..len]
                            .parse::<u64>()
                            .ok()
                            .filter(|&n| n > 0)
                            .ok_or_else(|| {
                                LoadError::Options(format!(
                                    "%rand_N needs a number N above 0 in {text:?}"
                                ))
                            })?;
                        (Some(Part::Random(Some(n))), 5 + len)
                    }
                    None => (Some(Part::Random(None)), 4),
                }
            } else {
                match after.chars().next() {
                    Some('i') => (Some(Part::Index), 1),
                    Some('c') => (Some(Part::ClientId), 1),
                    Some('u') => (Some(Part::Username), 1),
                    Some('%') => (None, 1),
                    _ => {
                        return Err(LoadError::Options(format!(
                            "unknown placeholder at {:?} in {text:?} (known: %i %c %u %rand \
                             %rand_N %%)",
                            &rest[at..]
                        )));
                    }
                }
            };
            match part {
                Some(part) => {
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                }
                None => literal.push('%'),
            }
            rest = &after[used..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// Whether the template mentions `%c` (a client identifier template must not).
    #[must_use]
    pub fn uses_client_id(&self) -> bool {
        self.parts.contains(&Part::ClientId)
    }

    /// Whether two clients may get different texts from it (`%i`, `%c` or `%rand`).
    #[must_use]
    pub fn varies_per_client(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Index | Part::ClientId | Part::Random(_)))
    }

    /// The text for one client; `rng` draws the `%rand` numbers.
    #[must_use]
    pub fn expand(&self, vars: &Vars<'_>, rng: &mut Rng) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Index => out.push_str(&vars.index.to_string()),
                Part::ClientId => out.push_str(vars.client_id),
                Part::Username => out.push_str(vars.username),
                Part::Random(None) => out.push_str(&(rng.next() >> 32).to_string()),
                Part::Random(Some(n)) => out.push_str(&(rng.next() % n + 1).to_string()),
            }
        }
        out
    }
}

/// A small non-cryptographic random generator (xorshift64*) for `%rand`.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value).
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        // Spread the seed's bits; a zero state would stay zero.
        let mixed = (seed ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        Self(if mixed == 0 { 1 } else { mixed })
    }

    /// A generator seeded from the clock and the process id.
    #[must_use]
    pub fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self::new(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next number.
    pub const fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str) -> String {
        let vars = Vars {
            index: 7,
            client_id: "bench-7",
            username: "alice",
        };
        Template::parse(text)
            .unwrap()
            .expand(&vars, &mut Rng::new(1))
    }

    #[test]
    fn placeholders_expand() {
        assert_eq!(expand("t/%i/%c/%u"), "t/7/bench-7/alice");
        assert_eq!(expand("100%% %i"), "100% 7");
        assert_eq!(expand("plain"), "plain");
        assert_eq!(expand(""), "");
        let small: u64 = expand("%rand_3").parse().unwrap();
        assert!((1..=3).contains(&small));
        let any: u64 = expand("%rand").parse().unwrap();
        assert!(any < 1 << 32);
        assert!(expand("r/%rand_10/x").starts_with("r/"));
        assert!(expand("r/%rand_10/x").ends_with("/x"));
    }

    #[test]
    fn bad_placeholders_are_refused() {
        for bad in ["t/%x", "%", "t/%rand_", "%rand_0", "a%"] {
            let e = Template::parse(bad).unwrap_err();
            assert!(matches!(e, LoadError::Options(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn reports_what_varies() {
        assert!(Template::parse("c-%c").unwrap().uses_client_id());
        assert!(!Template::parse("c-%u").unwrap().varies_per_client());
        assert!(Template::parse("c-%rand").unwrap().varies_per_client());
        assert!(Template::parse("c-%i").unwrap().varies_per_client());
    }

    #[test]
    fn random_numbers_differ() {
        let mut rng = Rng::new(0);
        let a = rng.next();
        let b = rng.next();
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }
}
