//! Shared subscriptions (MQTT 5.0 §4.8.2): the `ShareName` and the
//! `SubscriptionFilter` that a SUBSCRIBE entry becomes, `$share/{ShareName}/{filter}`
//! or a plain filter.

use std::fmt;

use bytes::Bytes;

use crate::validate::{MULTI, SINGLE};
use crate::{TopicError, TopicFilter, TopicLimits};

/// The prefix that marks a shared subscription [MQTT5-4.8.2-1].
const SHARE_PREFIX: &[u8] = b"$share/";

/// A validated ShareName: non-empty UTF-8 without `/`, `+`, `#` or U+0000
/// [MQTT5-4.8.2-1/2].
///
/// ```
/// use mqtt_topic::{ShareName, SubscriptionFilter, TopicError, TopicFilter};
///
/// let workers = ShareName::new("workers".into())?;
/// let shared = SubscriptionFilter::shared(workers.clone(), TopicFilter::from_static("jobs/#")?);
/// assert_eq!(shared, SubscriptionFilter::from_static("$share/workers/jobs/#")?);
/// assert_eq!(shared.share(), Some(&workers));
///
/// assert_eq!(ShareName::new("".into()), Err(TopicError::EmptyShareName));
/// assert_eq!(ShareName::new("a+".into()), Err(TopicError::WildcardInShareName));
/// # Ok::<(), TopicError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareName(Bytes);

impl ShareName {
    /// Validates a ShareName on its own (without the `$share/` prefix).
    pub fn new(bytes: Bytes) -> Result<Self, TopicError> {
        if bytes.is_empty() {
            return Err(TopicError::EmptyShareName);
        }
        if memchr::memchr(b'/', &bytes).is_some() {
            return Err(TopicError::MissingSharedFilter);
        }
        if memchr::memchr2(SINGLE, MULTI, &bytes).is_some() {
            return Err(TopicError::WildcardInShareName);
        }
        if std::str::from_utf8(&bytes).is_err() {
            return Err(TopicError::InvalidUtf8);
        }
        if memchr::memchr(0, &bytes).is_some() {
            return Err(TopicError::NullCharacter);
        }
        Ok(Self(bytes))
    }

    /// The name as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Validated as UTF-8 at construction, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ShareName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareName({:?})", self.as_str())
    }
}

/// What one SUBSCRIBE entry asks for: a topic filter, optionally shared by a
/// group of subscribers that each receive a part of the messages.
///
/// ```
/// use mqtt_topic::SubscriptionFilter;
///
/// let shared = SubscriptionFilter::from_static("$share/workers/jobs/+")?;
/// assert_eq!(shared.share().map(|s| s.as_str()), Some("workers"));
/// assert_eq!(shared.filter().as_str(), "jobs/+");
/// assert!(SubscriptionFilter::from_static("$share/workers").is_err());
/// # Ok::<(), mqtt_topic::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionFilter {
    share: Option<ShareName>,
    filter: TopicFilter,
}

impl SubscriptionFilter {
    /// Parses a filter the MQTT 5.0 way: `$share/{ShareName}/{filter}` is a
    /// shared subscription [MQTT5-4.8.2-1/2], anything else a plain filter.
    pub fn parse(bytes: Bytes, limits: &TopicLimits) -> Result<Self, TopicError> {
        if !bytes.starts_with(SHARE_PREFIX) {
            return Ok(Self::plain(TopicFilter::with_limits(bytes, limits)?));
        }
        let rest = bytes.slice(SHARE_PREFIX.len()..);
        let Some(slash) = memchr::memchr(b'/', &rest) else {
            return Err(if rest.is_empty() {
                TopicError::EmptyShareName
            } else {
                ShareName::new(rest)
                    .err()
                    .unwrap_or(TopicError::MissingSharedFilter)
            });
        };
        let share = ShareName::new(rest.slice(..slash))?;
        let filter_bytes = rest.slice(slash + 1..);
        if filter_bytes.is_empty() {
            return Err(TopicError::MissingSharedFilter);
        }
        let filter = TopicFilter::with_limits(filter_bytes, limits)?;
        Ok(Self::shared(share, filter))
    }

    /// Parses a static string (MQTT 5.0 rules, protocol limits), without copying.
    pub fn from_static(filter: &'static str) -> Result<Self, TopicError> {
        Self::parse(
            Bytes::from_static(filter.as_bytes()),
            &TopicLimits::PROTOCOL,
        )
    }

    /// A plain (non-shared) subscription; also what MQTT 3.1.1 uses for every filter.
    #[must_use]
    pub fn plain(filter: TopicFilter) -> Self {
        Self {
            share: None,
            filter,
        }
    }

    /// A shared subscription of group `share` on `filter`.
    #[must_use]
    pub fn shared(share: ShareName, filter: TopicFilter) -> Self {
        Self {
            share: Some(share),
            filter,
        }
    }

    /// The ShareName, if this is a shared subscription.
    #[must_use]
    pub fn share(&self) -> Option<&ShareName> {
        self.share.as_ref()
    }

    /// The topic filter that is matched against topic names.
    #[must_use]
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }
}

impl From<TopicFilter> for SubscriptionFilter {
    fn from(filter: TopicFilter) -> Self {
        Self::plain(filter)
    }
}

impl TryFrom<&str> for SubscriptionFilter {
    type Error = TopicError;

    fn try_from(filter: &str) -> Result<Self, TopicError> {
        Self::parse(
            Bytes::copy_from_slice(filter.as_bytes()),
            &TopicLimits::PROTOCOL,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &'static str) -> Result<SubscriptionFilter, TopicError> {
        SubscriptionFilter::from_static(s)
    }

    #[test]
    fn mqtt5_4_8_2_1_share_prefix_and_non_empty_name() {
        let shared = parse("$share/consumer1/sport/tennis/+").unwrap();
        assert_eq!(shared.share().unwrap().as_str(), "consumer1");
        assert_eq!(shared.filter().as_str(), "sport/tennis/+");
        assert_eq!(parse("$share//x"), Err(TopicError::EmptyShareName));
        assert_eq!(parse("$share/"), Err(TopicError::EmptyShareName));
    }

    #[test]
    fn mqtt5_4_8_2_2_share_name_rules_and_filter_required() {
        assert_eq!(parse("$share/group"), Err(TopicError::MissingSharedFilter));
        assert_eq!(parse("$share/group/"), Err(TopicError::MissingSharedFilter));
        assert_eq!(
            parse("$share/gr+up/x"),
            Err(TopicError::WildcardInShareName)
        );
        assert_eq!(parse("$share/#/x"), Err(TopicError::WildcardInShareName));
        assert_eq!(parse("$share/+"), Err(TopicError::WildcardInShareName));
        assert_eq!(
            parse("$share/g/a#"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
        assert!(parse("$share/g/#").is_ok());
        assert!(parse("$share/g//").is_ok());
    }

    #[test]
    fn plain_filters_and_lookalikes_are_not_shared() {
        for plain in ["$SYS/#", "$sharex/g/a", "$share", "share/g/a"] {
            assert_eq!(parse(plain).unwrap().share(), None, "{plain}");
        }
        assert_eq!(
            ShareName::new(Bytes::from_static(b"a/b")),
            Err(TopicError::MissingSharedFilter)
        );
    }

    #[test]
    fn limits_apply_to_the_inner_filter() {
        let limits = TopicLimits {
            max_levels: 2,
            ..TopicLimits::default()
        };
        let bytes = Bytes::from_static(b"$share/g/a/b/c");
        assert_eq!(
            SubscriptionFilter::parse(bytes, &limits),
            Err(TopicError::TooManyLevels)
        );
    }
}
