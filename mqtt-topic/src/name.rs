//! `TopicName`: a validated topic name (what a PUBLISH carries), holding the
//! received `Bytes` without copying them.

use bytes::Bytes;

use crate::topic_bytes::topic_bytes_type;
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

topic_bytes_type!(TopicName, validate_name, "name");

impl TopicName {
    /// Whether the name starts with `$` (such topics are not matched by
    /// filters that start with a wildcard [MQTT-4.7.2-1]).
    #[must_use]
    pub fn is_dollar(&self) -> bool {
        self.0.first() == Some(&b'$')
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
