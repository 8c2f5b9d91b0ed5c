//! The typed error returned when a topic name, topic filter or shared
//! subscription filter is refused. Each variant names the normative statement
//! it enforces; the error is one byte and `Copy`, so it can travel in hot paths.

/// Why a topic name, topic filter or `$share` filter was refused.
///
/// Statement ids differ between the two specifications; where they do, both are
/// given as `[MQTT311-…]` and `[MQTT5-…]`.
///
/// ```
/// use mqtt_topic::{TopicError, TopicFilter, TopicName};
///
/// let error = TopicName::from_static("sensors/+").unwrap_err();
/// assert_eq!(error, TopicError::WildcardInName);
/// assert_eq!(error.to_string(), "wildcard in a topic name [MQTT-4.7.0-1]");
/// assert_eq!(TopicFilter::from_static("sensors/t+"), Err(TopicError::PartialSingleLevelWildcard));
/// assert_eq!(TopicFilter::from_static(""), Err(TopicError::Empty));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic is zero bytes long [MQTT-4.7.3-1].
    #[error("topic is empty [MQTT-4.7.3-1]")]
    Empty,
    /// The topic is longer than 65,535 bytes or than the configured
    /// [`TopicLimits::max_len`](crate::TopicLimits::max_len) [MQTT-4.7.3-3].
    #[error("topic is longer than the allowed length [MQTT-4.7.3-3]")]
    TooLong,
    /// The topic has more levels than
    /// [`TopicLimits::max_levels`](crate::TopicLimits::max_levels) allows.
    #[error("topic has more levels than the allowed depth")]
    TooManyLevels,
    /// The bytes are not well-formed UTF-8 [MQTT311-1.5.3-1] [MQTT5-1.5.4-1].
    #[error("topic is not well-formed UTF-8 [MQTT-1.5.4-1]")]
    InvalidUtf8,
    /// The topic contains U+0000 [MQTT-4.7.3-2].
    #[error("topic contains U+0000 [MQTT-4.7.3-2]")]
    NullCharacter,
    /// A topic name contains `+` or `#` [MQTT311-4.7.1-1] [MQTT5-4.7.0-1].
    #[error("wildcard in a topic name [MQTT-4.7.0-1]")]
    WildcardInName,
    /// `#` is not the whole last level of a filter [MQTT311-4.7.1-2] [MQTT5-4.7.1-1].
    #[error("'#' must be the whole last level [MQTT-4.7.1-1]")]
    MisplacedMultiLevelWildcard,
    /// `+` does not fill a whole level [MQTT311-4.7.1-3] [MQTT5-4.7.1-2].
    #[error("'+' must fill a whole level [MQTT-4.7.1-2]")]
    PartialSingleLevelWildcard,
    /// The ShareName of a `$share/` filter is empty [MQTT5-4.8.2-1].
    #[error("empty ShareName [MQTT-4.8.2-1]")]
    EmptyShareName,
    /// The ShareName contains `+` or `#` [MQTT5-4.8.2-2].
    #[error("ShareName contains a wildcard [MQTT-4.8.2-2]")]
    WildcardInShareName,
    /// No `/` and topic filter follow the ShareName [MQTT5-4.8.2-2].
    #[error("no topic filter after the ShareName [MQTT-4.8.2-2]")]
    MissingSharedFilter,
}

/// The subscription trie cannot grow: its `u32` node indices or its 4 GiB
/// label heap are exhausted. Nothing was changed; the broker should refuse
/// the subscription (e.g. with reason code 0x97, quota exceeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("subscription trie is full")]
pub struct TrieFull;
