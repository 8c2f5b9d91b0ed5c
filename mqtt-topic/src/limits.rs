//! The limits a broker sets on topic names and filters, checked while they are
//! validated: a maximum length in bytes and a maximum number of levels.

/// The largest length the protocol allows for a topic name or filter
/// [MQTT-4.7.3-3].
pub const PROTOCOL_MAX_LEN: usize = 65_535;

/// Limits checked at validation, on top of the protocol's rules.
///
/// The protocol alone allows 65,535 bytes and therefore up to 65,536 levels;
/// a broker usually wants far fewer, e.g. `max_levels: 32`.
///
/// ```
/// use mqtt_topic::{TopicError, TopicFilter, TopicLimits};
///
/// let limits = TopicLimits { max_levels: 8, ..TopicLimits::default() };
/// let deep = "a/".repeat(10_000) + "#";
/// assert_eq!(
///     TopicFilter::with_limits(deep.into(), &limits).unwrap_err(),
///     TopicError::TooManyLevels
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// Maximum length in bytes; values above 65,535 act as 65,535.
    pub max_len: usize,
    /// Maximum number of levels (the number of `/` plus one).
    pub max_levels: usize,
}

impl TopicLimits {
    /// Only the protocol's own limits: 65,535 bytes, any number of levels.
    pub const PROTOCOL: Self = Self {
        max_len: PROTOCOL_MAX_LEN,
        max_levels: usize::MAX,
    };

    /// The effective maximum length: the configured one, capped by the protocol.
    pub(crate) fn effective_max_len(&self) -> usize {
        self.max_len.min(PROTOCOL_MAX_LEN)
    }
}

impl Default for TopicLimits {
    fn default() -> Self {
        Self::PROTOCOL
    }
}
