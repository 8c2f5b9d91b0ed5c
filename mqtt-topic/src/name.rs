//! `TopicName`: a validated topic name (what a PUBLISH carries), holding the
//! received `Bytes` without copying them.

use std::fmt;

use bytes::Bytes;

use crate::validate::validate_name;
use crate::{TopicError, TopicLimits};

/// A validated topic name: non-empty, at most 65,535 bytes, UTF-8 without
/// U+0000, and no wildcard [MQTT-4.7.3-1/2/3] [MQTT5-4.7.0-1].
///
/// Cloning is a reference-count increment.
///
/// ```
/// use mqtt_topic::{TopicError, TopicName};
///
/// let name = TopicName::from_static("sport/tennis/player1")?;
/// assert_eq!(name.levels().count(), 3);
/// assert_eq!(TopicName::try_from("sport/+").unwrap_err(), TopicError::WildcardInName);
/// # Ok::<(), TopicError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Bytes);

impl TopicName {
    /// Validates bytes the codec already received, under the protocol limits.
    pub fn new(bytes: Bytes) -> Result<Self, TopicError> {
        Self::with_limits(bytes, &TopicLimits::PROTOCOL)
    }

    /// Validates bytes under the broker's `limits`.
    pub fn with_limits(bytes: Bytes, limits: &TopicLimits) -> Result<Self, TopicError> {
        validate_name(&bytes, limits)?;
        Ok(Self(bytes))
    }

    /// Validates a static string without copying it.
    pub fn from_static(name: &'static str) -> Result<Self, TopicError> {
        Self::new(Bytes::from_static(name.as_bytes()))
    }

    /// The raw bytes (valid UTF-8).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Validated as UTF-8 at construction, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The underlying buffer (a cheap clone).
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// Consumes the name and returns its buffer.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The levels, split at `/`; empty levels are kept.
    pub fn levels(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|b| *b == b'/')
    }

    /// Whether the name starts with `$` (such topics are not matched by
    /// filters that start with a wildcard [MQTT-4.7.2-1]).
    #[must_use]
    pub fn is_dollar(&self) -> bool {
        self.0.first() == Some(&b'$')
    }
}

impl TryFrom<&str> for TopicName {
    type Error = TopicError;

    fn try_from(name: &str) -> Result<Self, TopicError> {
        Self::new(Bytes::copy_from_slice(name.as_bytes()))
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicError;

    fn try_from(name: String) -> Result<Self, TopicError> {
        Self::new(Bytes::from(name))
    }
}

impl TryFrom<Bytes> for TopicName {
    type Error = TopicError;

    fn try_from(bytes: Bytes) -> Result<Self, TopicError> {
        Self::new(bytes)
    }
}

impl std::str::FromStr for TopicName {
    type Err = TopicError;

    fn from_str(name: &str) -> Result<Self, TopicError> {
        Self::try_from(name)
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicName({:?})", self.as_str())
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<[u8]> for TopicName {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_4_7_3_1_empty_name_is_refused() {
        assert_eq!(TopicName::try_from(""), Err(TopicError::Empty));
    }

    #[test]
    fn mqtt_4_7_3_2_null_character_is_refused() {
        assert_eq!(TopicName::try_from("a\0b"), Err(TopicError::NullCharacter));
    }

    #[test]
    fn mqtt_4_7_3_3_length_limit_is_65535_bytes() {
        assert!(TopicName::try_from("a".repeat(65_535)).is_ok());
        assert_eq!(
            TopicName::try_from("a".repeat(65_536)),
            Err(TopicError::TooLong)
        );
        let limits = TopicLimits {
            max_len: 10,
            ..TopicLimits::default()
        };
        assert_eq!(
            TopicName::with_limits(Bytes::from_static(b"0123456789x"), &limits),
            Err(TopicError::TooLong)
        );
        let loose = TopicLimits {
            max_len: 1 << 20,
            ..TopicLimits::default()
        };
        let long = Bytes::from("a".repeat(70_000));
        assert_eq!(
            TopicName::with_limits(long, &loose),
            Err(TopicError::TooLong)
        );
    }

    #[test]
    fn mqtt_1_5_4_1_invalid_utf8_is_refused() {
        // [MQTT5-1.5.4-1] [MQTT311-1.5.3-1]: ill-formed bytes and an encoded surrogate.
        for bad in [&b"a/\xff"[..], b"\xc3", b"\xed\xa0\x80"] {
            assert_eq!(
                TopicName::new(Bytes::copy_from_slice(bad)),
                Err(TopicError::InvalidUtf8)
            );
        }
    }

    #[test]
    fn mqtt5_4_7_0_1_wildcards_are_refused_in_names() {
        // [MQTT5-4.7.0-1] [MQTT311-4.7.1-1]
        for bad in ["+", "#", "a/+", "a/#", "a+b", "sport/tennis#"] {
            assert_eq!(
                TopicName::try_from(bad),
                Err(TopicError::WildcardInName),
                "{bad}"
            );
        }
    }

    #[test]
    fn empty_levels_are_legal() {
        for good in ["/", "a//b", "/a", "a/", "//", " "] {
            assert!(TopicName::try_from(good).is_ok(), "{good}");
        }
        let name = TopicName::from_static("/finance").unwrap();
        assert_eq!(name.levels().collect::<Vec<_>>(), [&b""[..], b"finance"]);
    }

    #[test]
    fn depth_limit_is_checked() {
        let limits = TopicLimits {
            max_levels: 3,
            ..TopicLimits::default()
        };
        assert!(TopicName::with_limits(Bytes::from_static(b"a/b/c"), &limits).is_ok());
        assert_eq!(
            TopicName::with_limits(Bytes::from_static(b"a/b/c/"), &limits),
            Err(TopicError::TooManyLevels)
        );
    }

    #[test]
    fn construction_shares_the_buffer() {
        let frame = Bytes::from_static(b"xxsport/tennis");
        let name = TopicName::new(frame.slice(2..)).unwrap();
        assert_eq!(name.as_bytes().as_ptr(), frame[2..].as_ptr());
        assert_eq!(name.to_string(), "sport/tennis");
        assert!(TopicName::from_static("$SYS/x").unwrap().is_dollar());
    }

    #[test]
    fn error_is_small_and_copy() {
        fn is_copy<T: Copy>() {}
        is_copy::<TopicError>();
        assert_eq!(std::mem::size_of::<TopicError>(), 1);
    }
}
