//! Topic patterns a little richer than MQTT's wildcards, for tools that watch a broker (not for
//! the protocol, which stays standard): within a level, `*` stands for any run of characters
//! and `?` for one (`stat/Sonoff*/POWER`); `+` and a last-level `#` keep their MQTT meaning.
//! A pattern subscribes with the narrowest MQTT filter that covers it ([`TopicGlob::filter`]:
//! each level holding `*` or `?` becomes `+`) and filters the rest itself
//! ([`TopicGlob::matches`]).

use crate::error::TopicError;
use crate::name::TopicName;

/// One level of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    /// Matches this text exactly.
    Exact(String),
    /// `+`: any one level.
    Any,
    /// A last-level `#`: this level and every one below, or none.
    Rest,
    /// A level with `*` / `?`: matched character by character.
    Glob(Vec<char>),
}

/// A topic pattern: MQTT's wildcards plus `*` and `?` inside a level.
///
/// ```
/// use mqtt_topic::TopicGlob;
///
/// let sonoffs = TopicGlob::parse("stat/Sonoff*/POWER")?;
/// assert_eq!(sonoffs.filter(), "stat/+/POWER");
/// assert!(sonoffs.matches("stat/Sonoff-Kitchen/POWER"));
/// assert!(!sonoffs.matches("stat/Shelly-1/POWER"));
/// assert!(TopicGlob::parse("tele/#")?.matches("tele/plug/LWT"));
/// # Ok::<(), mqtt_topic::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicGlob {
    levels: Vec<Level>,
}

impl TopicGlob {
    /// Reads a pattern: not empty, no U+0000, `#` only as the whole last level, `+` only as a
    /// whole level.
    pub fn parse(text: &str) -> Result<TopicGlob, TopicError> {
        if text.is_empty() {
            return Err(TopicError::Empty);
        }
        if text.contains('\0') {
            return Err(TopicError::NullCharacter);
        }
        let parts: Vec<&str> = text.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let level = match *part {
                "#" if index + 1 == parts.len() => Level::Rest,
                "+" => Level::Any,
                _ if part.contains('#') => return Err(TopicError::MisplacedMultiLevelWildcard),
                _ if part.contains('+') => return Err(TopicError::PartialSingleLevelWildcard),
                _ if part.contains(['*', '?']) => Level::Glob(part.chars().collect()),
                _ => Level::Exact((*part).to_owned()),
            };
            levels.push(level);
        }
        Ok(TopicGlob { levels })
    }

    /// The narrowest MQTT topic filter that matches every topic this pattern does.
    pub fn filter(&self) -> String {
        let levels: Vec<&str> = self
            .levels
            .iter()
            .map(|level| match level {
                Level::Exact(text) => text.as_str(),
                Level::Any | Level::Glob(_) => "+",
                Level::Rest => "#",
            })
            .collect();
        levels.join("/")
    }

    /// Whether `topic` matches: as MQTT filters match (a pattern starting with a wildcard does
    /// not match a `$` topic [MQTT-4.7.2-1]), `*` and `?` within their level.
    pub fn matches(&self, topic: &str) -> bool {
        if topic.starts_with('$') {
            let wild_first = match self.levels.first() {
                Some(Level::Any | Level::Rest) => true,
                Some(Level::Glob(chars)) => matches!(chars.first(), Some('*' | '?')),
                _ => false,
            };
            if wild_first {
                return false;
            }
        }
        let mut topic_levels = topic.split('/');
        for level in &self.levels {
            if *level == Level::Rest {
                return true;
            }
            let Some(part) = topic_levels.next() else {
                return false;
            };
            let matched = match level {
                Level::Exact(text) => text == part,
                Level::Any => true,
                Level::Glob(pattern) => glob_level(pattern, &part.chars().collect::<Vec<_>>()),
                Level::Rest => true,
            };
            if !matched {
                return false;
            }
        }
        topic_levels.next().is_none()
    }

    /// [`TopicGlob::matches`] for a validated name.
    pub fn matches_name(&self, name: &TopicName) -> bool {
        self.matches(name.as_str())
    }
}

/// Whether `text` matches `pattern` (`*`: any run, `?`: one character), with the classic
/// backtrack to the last `*`: linear in practice, quadratic at worst, never exponential.
fn glob_level(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some('?') => {
                p += 1;
                t += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicFilter;
    use proptest::prelude::*;

    #[test]
    fn globs_match_within_their_level() {
        let glob = TopicGlob::parse("stat/Sonoff*/POWER").unwrap();
        assert!(glob.matches("stat/Sonoff/POWER"));
        assert!(glob.matches("stat/Sonoff_12/POWER"));
        assert!(
            !glob.matches("stat/Sonoff/a/POWER"),
            "* stays within its level"
        );
        assert!(!glob.matches("stat/Sonoff/POWER1"));
        let one = TopicGlob::parse("tele/plug-?/LWT").unwrap();
        assert!(one.matches("tele/plug-7/LWT") && !one.matches("tele/plug-77/LWT"));
        let middle = TopicGlob::parse("a/*x*y/b").unwrap();
        assert!(
            middle.matches("a/..x..y/b") && middle.matches("a/xy/b") && !middle.matches("a/yx/b")
        );
    }

    #[test]
    fn mqtt_wildcards_keep_their_meaning() {
        let rest = TopicGlob::parse("tele/#").unwrap();
        assert!(rest.matches("tele") && rest.matches("tele/a/b") && !rest.matches("stat/a"));
        let any = TopicGlob::parse("+/POWER").unwrap();
        assert!(any.matches("x/POWER") && !any.matches("x/y/POWER"));
        // [MQTT-4.7.2-1]: a leading wildcard does not match `$` topics.
        assert!(!TopicGlob::parse("#").unwrap().matches("$SYS/broker/uptime"));
        assert!(
            !TopicGlob::parse("*/broker/#")
                .unwrap()
                .matches("$SYS/broker/uptime")
        );
        assert!(
            TopicGlob::parse("$SYS/#")
                .unwrap()
                .matches("$SYS/broker/uptime")
        );
    }

    #[test]
    fn the_filter_is_the_narrowest_mqtt_cover() {
        let cases = [
            ("stat/Sonoff*/POWER", "stat/+/POWER"),
            ("tele/+/SENSOR", "tele/+/SENSOR"),
            ("a/b?/#", "a/+/#"),
            ("plain/topic", "plain/topic"),
        ];
        for (pattern, filter) in cases {
            assert_eq!(TopicGlob::parse(pattern).unwrap().filter(), filter);
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert_eq!(TopicGlob::parse(""), Err(TopicError::Empty));
        assert_eq!(
            TopicGlob::parse("a/#/b"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(
            TopicGlob::parse("a/b#"),
            Err(TopicError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(
            TopicGlob::parse("a/b+"),
            Err(TopicError::PartialSingleLevelWildcard)
        );
        assert_eq!(TopicGlob::parse("a\0"), Err(TopicError::NullCharacter));
    }

    /// A naive model: the glob as a regular expression over the whole topic.
    fn model(pattern: &str, topic: &str) -> bool {
        fn level(pattern: &[char], text: &[char]) -> bool {
            match (pattern.first(), text.first()) {
                (None, None) => true,
                (Some('*'), _) => {
                    level(&pattern[1..], text) || (!text.is_empty() && level(pattern, &text[1..]))
                }
                (Some('?'), Some(_)) => level(&pattern[1..], &text[1..]),
                (Some(p), Some(t)) if p == t => level(&pattern[1..], &text[1..]),
                _ => false,
            }
        }
        let p: Vec<&str> = pattern.split('/').collect();
        let t: Vec<&str> = topic.split('/').collect();
        if topic.starts_with('$') && matches!(p[0].chars().next(), Some('+' | '#' | '*' | '?')) {
            return false;
        }
        for (i, part) in p.iter().enumerate() {
            if *part == "#" {
                return true;
            }
            let Some(text) = t.get(i) else { return false };
            if *part != "+" {
                let (pc, tc): (Vec<char>, Vec<char>) =
                    (part.chars().collect(), text.chars().collect());
                if !level(&pc, &tc) {
                    return false;
                }
            }
        }
        p.len() == t.len()
    }

    fn pattern() -> impl Strategy<Value = String> {
        let level = prop_oneof!["[ab*?]{0,3}", Just("+".to_owned()), "[ab$]{1,2}"];
        (prop::collection::vec(level, 1..4), any::<bool>())
            .prop_map(|(mut levels, rest)| {
                if rest {
                    levels.push("#".to_owned());
                }
                levels.join("/")
            })
            .prop_filter("a pattern is not empty", |p| !p.is_empty())
    }

    proptest! {
        #[test]
        fn matches_like_the_model_and_within_its_filter(
            pattern in pattern(),
            topic in "[ab$]{0,2}(/[ab]{0,3}){0,3}",
        ) {
            let glob = TopicGlob::parse(&pattern).unwrap();
            prop_assert_eq!(glob.matches(&topic), model(&pattern, &topic), "{} vs {}", pattern, topic);
            if glob.matches(&topic) && let Ok(name) = TopicName::new(topic.clone().into()) {
                let filter = TopicFilter::new(glob.filter().into()).unwrap();
                prop_assert!(filter.matches(&name), "{} covers {} but {} does not", pattern, topic, filter);
            }
        }
    }
}
