//! `TopicName`: a validated topic name (what a PUBLISH carries), holding the
//! received `Bytes` without copying them.

use bytes::Bytes;

use crate::topic_bytes::topic_bytes_type;
use crate::validate::{Utf8, validate_name, validate_name_utf8};
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

    /// Validates `bytes` under `limits`, given `text`: the same bytes already seen as a `str`
    /// (same address and length, e.g. two views into one received frame whose topic the codec
    /// checked). That proves them UTF-8, so only the topic rules are checked, without reading
    /// the UTF-8 again; when `text` is not a view of `bytes`, everything is checked as by
    /// [`TopicName::with_limits`].
    ///
    /// ```
    /// use mqtt_topic::{TopicError, TopicLimits, TopicName};
    /// # use bytes::Bytes;
    ///
    /// let frame = Bytes::from_static(b"sensors/1");
    /// let text = std::str::from_utf8(&frame).expect("checked by the codec");
    /// let name = TopicName::with_limits_utf8(frame.clone(), text, &TopicLimits::PROTOCOL)?;
    /// assert_eq!(name.as_bytes(), b"sensors/1");
    /// # Ok::<(), TopicError>(())
    /// ```
    pub fn with_limits_utf8(
        bytes: Bytes,
        text: &str,
        limits: &TopicLimits,
    ) -> Result<Self, TopicError> {
        let same = text.as_ptr() == bytes.as_ptr() && text.len() == bytes.len();
        let utf8 = if same { Utf8::Known } else { Utf8::Unchecked };
        validate_name_utf8(&bytes, limits, utf8)?;
        Ok(Self(bytes))
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
    fn with_limits_utf8_checks_the_topic_rules() {
        let limits = TopicLimits {
            max_levels: 2,
            ..TopicLimits::PROTOCOL
        };
        let cases: [(&[u8], Result<(), TopicError>); 5] = [
            (b"a/b", Ok(())),
            (b"", Err(TopicError::Empty)),
            (b"a/+", Err(TopicError::WildcardInName)),
            (b"a\0b", Err(TopicError::NullCharacter)), // [MQTT-4.7.3-2]
            (b"a/b/c", Err(TopicError::TooManyLevels)),
        ];
        for (raw, expected) in cases {
            let bytes = Bytes::copy_from_slice(raw);
            let text = std::str::from_utf8(&bytes).unwrap();
            let got = TopicName::with_limits_utf8(bytes.clone(), text, &limits);
            assert_eq!(
                got.map(|name| name.to_bytes()),
                expected.map(|()| bytes.clone())
            );
        }
    }

    #[test]
    fn with_limits_utf8_checks_utf8_when_text_is_another_buffer() {
        // [MQTT-1.5.4-1]: a `str` elsewhere proves nothing about these bytes.
        let bytes = Bytes::from_static(b"a/\xff");
        assert_eq!(
            TopicName::with_limits_utf8(bytes, "a/b", &TopicLimits::PROTOCOL),
            Err(TopicError::InvalidUtf8)
        );
        let bytes = Bytes::from_static(b"a/b");
        let longer = Bytes::from_static(b"a/bc");
        let text = std::str::from_utf8(&longer).unwrap();
        assert!(TopicName::with_limits_utf8(bytes, text, &TopicLimits::PROTOCOL).is_ok());
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
