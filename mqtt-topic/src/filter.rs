//! `TopicFilter`: a validated topic filter (what a SUBSCRIBE carries), holding
//! the received `Bytes` without copying them, and the single-filter match.

use bytes::Bytes;

use crate::topic_bytes::topic_bytes_type;
use crate::validate::{MULTI, SINGLE, next_level, validate_filter};
use crate::{TopicError, TopicLimits, TopicName};

/// A validated topic filter: the rules of a name, except that `+` may fill a
/// whole level and `#` may be the whole last level [MQTT5-4.7.1-1/2].
///
/// Cloning is a reference-count increment.
///
/// ```
/// use mqtt_topic::{TopicFilter, TopicName};
///
/// let filter = TopicFilter::from_static("sport/tennis/+")?;
/// assert!(filter.matches(&TopicName::from_static("sport/tennis/player1")?));
/// assert!(!filter.matches(&TopicName::from_static("sport/tennis/player1/ranking")?));
/// # Ok::<(), mqtt_topic::TopicError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(Bytes);

topic_bytes_type!(TopicFilter, validate_filter, "filter");

impl TopicFilter {
    /// Whether the filter contains `+` or `#`.
    #[must_use]
    pub fn has_wildcards(&self) -> bool {
        memchr::memchr2(SINGLE, MULTI, &self.0).is_some()
    }

    /// Whether this filter matches `name`, following §4.7: `#` also matches
    /// the parent level, `+` matches exactly one (possibly empty) level, a
    /// filter starting with a wildcard never matches a `$` name
    /// [MQTT-4.7.2-1], and levels compare byte for byte [MQTT-4.7.3-4].
    #[must_use]
    pub fn matches(&self, name: &TopicName) -> bool {
        let filter = self.as_bytes();
        let topic = name.as_bytes();
        if name.is_dollar() && matches!(filter.first(), Some(&(SINGLE | MULTI))) {
            return false;
        }
        let (mut f_at, mut t_at) = (Some(0), Some(0));
        loop {
            let Some(f_start) = f_at else {
                return t_at.is_none();
            };
            let (f_level, f_next) = next_level(filter, f_start);
            if f_level == [MULTI] {
                return true;
            }
            let Some(t_start) = t_at else {
                return false;
            };
            let (t_level, t_next) = next_level(topic, t_start);
            if f_level != [SINGLE] && f_level != t_level {
                return false;
            }
            (f_at, t_at) = (f_next, t_next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(filter: &str, name: &str) -> bool {
        TopicFilter::try_from(filter)
            .unwrap()
            .matches(&TopicName::try_from(name).unwrap())
    }

    #[test]
    fn mqtt_4_7_1_1_multi_level_wildcard_is_whole_last_level() {
        // [MQTT5-4.7.1-1] [MQTT311-4.7.1-2]
        for good in ["#", "/#", "sport/#", "sport/tennis/#", "+/#"] {
            assert!(TopicFilter::try_from(good).is_ok(), "{good}");
        }
        for bad in [
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "#/",
            "##",
            "a/#b",
            "a#/b",
        ] {
            assert_eq!(
                TopicFilter::try_from(bad),
                Err(TopicError::MisplacedMultiLevelWildcard),
                "{bad}"
            );
        }
    }

    #[test]
    fn mqtt_4_7_1_2_single_level_wildcard_fills_a_level() {
        // [MQTT5-4.7.1-2] [MQTT311-4.7.1-3]
        for good in ["+", "+/tennis/#", "sport/+/player1", "/+", "+/", "+/+"] {
            assert!(TopicFilter::try_from(good).is_ok(), "{good}");
        }
        for bad in ["sport+", "sport/+x", "++", "a/b+/c"] {
            assert_eq!(
                TopicFilter::try_from(bad),
                Err(TopicError::PartialSingleLevelWildcard),
                "{bad}"
            );
        }
    }

    #[test]
    fn mqtt_4_7_3_common_rules_apply_to_filters() {
        // [MQTT-4.7.3-1] [MQTT-4.7.3-2] [MQTT-4.7.3-3]
        assert_eq!(TopicFilter::try_from(""), Err(TopicError::Empty));
        assert_eq!(
            TopicFilter::try_from("a/\0"),
            Err(TopicError::NullCharacter)
        );
        assert_eq!(
            TopicFilter::try_from("a/".repeat(32_768)),
            Err(TopicError::TooLong)
        );
    }

    #[test]
    fn depth_limit_refuses_a_10000_level_filter() {
        let limits = TopicLimits {
            max_levels: 32,
            ..TopicLimits::default()
        };
        let deep = Bytes::from("a/".repeat(9_999) + "#");
        assert_eq!(
            TopicFilter::with_limits(deep.clone(), &limits),
            Err(TopicError::TooManyLevels)
        );
        assert!(TopicFilter::new(deep).is_ok());
    }

    #[test]
    fn spec_4_7_1_2_multi_level_examples() {
        // §4.7.1.2: "sport/tennis/player1/#"
        for name in [
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
        ] {
            assert!(matches("sport/tennis/player1/#", name), "{name}");
        }
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "sport/tennis"));
        assert!(!matches("sport/tennis/player1/#", "sport/tennis/player2"));
    }

    #[test]
    fn spec_4_7_1_3_single_level_examples() {
        // §4.7.1.3: "sport/tennis/+", "sport/+", "+/+", "/+", "+"
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(matches("sport/tennis/+", "sport/tennis/player2"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(matches("+/tennis/#", "sport/tennis"));
    }

    #[test]
    fn mqtt_4_7_2_1_wildcard_first_level_does_not_match_dollar_topics() {
        assert!(!matches("#", "$SYS/monitor/Clients"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        // rumqttd regressions: `$SYS/#` matches `$SYS/x` and the parent `$SYS`.
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS"));
        // A `$` later in the name is an ordinary character.
        assert!(matches("+/$x", "a/$x"));
        assert!(matches("#", "a$"));
    }

    #[test]
    fn mqtt_4_7_3_4_matching_is_byte_exact_and_case_sensitive() {
        assert!(matches("GERÄTETOPIC/+", "GERÄTETOPIC/1"));
        assert!(!matches("gerätetopic/+", "GERÄTETOPIC/1"));
        assert!(!matches("ACCOUNTS", "Accounts"));
        // A multi-byte first character is compared whole (rumqttd sliced it).
        assert!(matches("Ärger/#", "Ärger"));
        assert!(!matches("Är/#", "Ä"));
        assert!(matches("+", "Ä"));
    }

    #[test]
    fn empty_levels_match_like_any_level() {
        assert!(matches("a//b", "a//b"));
        assert!(matches("a/+/b", "a//b"));
        assert!(matches("a/#", "a/"));
        assert!(!matches("+", "/"));
        assert!(matches("+/+", "/"));
        assert!(!matches("a//b", "a/b"));
    }
}
