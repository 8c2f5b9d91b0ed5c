//! MQTT names on NATS: topics as subjects, filters as subject patterns, and the keys of the
//! cluster's buckets, by one exact and reversible escaping.
//!
//! A NATS subject is a list of non-empty tokens separated by `.`, in which `*` (one token) and
//! `>` (one or more trailing tokens) are wildcards and white space is not allowed. A JetStream
//! key-value key is stricter still: only `A-Z a-z 0-9 - _ = / .`. An MQTT topic level may hold
//! any character but `/`, `+`, `#` and NUL, and may be empty. So every level becomes one token:
//!
//! - letters, digits and `-` stay as they are;
//! - every other byte of its UTF-8 (including `_`, `=`, `.`, `*`, `>`, spaces and non-ASCII)
//!   becomes `=` and two upper-case hexadecimal digits;
//! - an empty level becomes `_` (which no escaped level can be, as `_` itself is escaped).
//!
//! Topics starting with `$` live under their own second token (`s`, the others under `t`),
//! because MQTT's leading wildcards do not match them [MQTT-4.7.2-1] while NATS's would. A
//! filter's `+` becomes `*`; its trailing `#` becomes `>` and, since `#` also matches the
//! parent level [MQTT-4.7.1-2], the parent itself too (two subjects; `#` alone needs one).

use std::fmt::Write as _;

/// The second token of a topic that does not start with `$`.
const PLAIN: &str = "t";
/// The second token of a topic that starts with `$`.
const DOLLAR: &str = "s";

/// Appends the token of one topic level to `out`.
pub fn escape_level(level: &str, out: &mut String) {
    if level.is_empty() {
        out.push('_');
        return;
    }
    for byte in level.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "={byte:02X}");
        }
    }
}

/// The topic level of one token, or `None` when `token` is not one [`escape_level`] makes.
pub fn unescape_token(token: &str) -> Option<String> {
    if token == "_" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut level = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'=' {
            let hex = token.get(at + 1..at + 3)?;
            let value = u8::from_str_radix(hex, 16).ok()?;
            // Only what escaping makes: upper-case digits, and no byte that stays as it is.
            if hex.bytes().any(|b| b.is_ascii_lowercase())
                || value.is_ascii_alphanumeric()
                || value == b'-'
            {
                return None;
            }
            level.push(value);
            at += 3;
        } else if byte.is_ascii_alphanumeric() || byte == b'-' {
            level.push(byte);
            at += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(level).ok().filter(|l| !l.is_empty())
}

/// The tokens of `topic` after the prefix: its class and its escaped levels.
fn topic_tokens(topic: &str, out: &mut String) {
    out.push_str(if topic.starts_with('$') {
        DOLLAR
    } else {
        PLAIN
    });
    for level in topic.split('/') {
        out.push('.');
        escape_level(level, out);
    }
}

/// The subject a message published to `topic` is sent on: `{prefix}.m.{class}.{levels}`.
pub fn message_subject(prefix: &str, topic: &str) -> String {
    let mut subject = String::with_capacity(prefix.len() + topic.len() + 8);
    subject.push_str(prefix);
    subject.push_str(".m.");
    topic_tokens(topic, &mut subject);
    subject
}

/// The topic of a message subject (the inverse of [`message_subject`]).
pub fn topic_of_subject(prefix: &str, subject: &str) -> Option<String> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix(".m.")?;
    let (class, levels) = rest.split_once('.')?;
    let mut topic = String::with_capacity(levels.len());
    for (i, token) in levels.split('.').enumerate() {
        if i > 0 {
            topic.push('/');
        }
        topic.push_str(&unescape_token(token)?);
    }
    let dollar = topic.starts_with('$');
    match class {
        PLAIN if !dollar => Some(topic),
        DOLLAR if dollar => Some(topic),
        _ => None,
    }
}

/// The subject patterns that together match exactly the message subjects of the topics
/// `filter` (without any `$share/{ShareName}/` prefix) matches: one, or two when a trailing
/// `#` must also match its parent level.
pub fn filter_subjects(prefix: &str, filter: &str) -> Vec<String> {
    let class = if filter.starts_with('$') {
        DOLLAR
    } else {
        PLAIN
    };
    let mut subject = format!("{prefix}.m.{class}");
    let levels: Vec<&str> = filter.split('/').collect();
    let (body, multi) = match levels.split_last() {
        Some((&"#", body)) => (body, true),
        _ => (levels.as_slice(), false),
    };
    for level in body {
        subject.push('.');
        match *level {
            "+" => subject.push('*'),
            level => escape_level(level, &mut subject),
        }
    }
    if !multi {
        return vec![subject];
    }
    if body.is_empty() {
        // `#` alone: every topic of its class (all have at least one level).
        return vec![format!("{subject}.>")];
    }
    vec![format!("{subject}.>"), subject]
}

/// The key of `topic`'s retained message in the cluster's bucket: `{class}.{levels}`.
pub fn retained_key(topic: &str) -> String {
    let mut key = String::with_capacity(topic.len() + 4);
    topic_tokens(topic, &mut key);
    key
}

/// The topic of a retained-message key (the inverse of [`retained_key`]).
pub fn topic_of_retained_key(key: &str) -> Option<String> {
    topic_of_subject("", &format!(".m.{key}"))
}

/// The key of a client identifier in the session-owner bucket: one escaped token.
pub fn client_key(client_id: &str) -> String {
    let mut key = String::with_capacity(client_id.len() + 2);
    key.push('c');
    key.push('.');
    escape_level(client_id, &mut key);
    key
}

/// The client identifier of a session-owner key (the inverse of [`client_key`]).
pub fn client_of_key(key: &str) -> Option<String> {
    unescape_token(key.strip_prefix("c.")?)
}

/// The NATS queue group of the shared subscription `$share/{group}/{filter}`: NATS picks one
/// member per queue group among all subscriptions matching a subject (whatever their
/// subjects), so the group is named after the whole shared filter, as MQTT counts a group per
/// ShareName and filter.
pub fn queue_group(shared_filter: &str) -> String {
    let mut queue = String::with_capacity(shared_filter.len() + 4);
    queue.push('q');
    escape_level(shared_filter, &mut queue);
    queue
}

/// A `$share/{ShareName}/{filter}` split into the share name and the filter.
pub fn split_shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix("$share/")?.split_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mqtt_topic::{SubscriptionFilter, TopicLimits, TopicName};
    use proptest::prelude::*;

    /// NATS's subject matching, written from its documentation: `*` one token, `>` one or
    /// more trailing tokens, literal tokens equal.
    fn nats_matches(pattern: &str, subject: &str) -> bool {
        let (pattern, subject): (Vec<&str>, Vec<&str>) =
            (pattern.split('.').collect(), subject.split('.').collect());
        for (i, token) in pattern.iter().enumerate() {
            match *token {
                ">" => return subject.len() > i,
                "*" if i < subject.len() => {}
                literal if subject.get(i) == Some(&literal) => {}
                _ => return false,
            }
        }
        pattern.len() == subject.len()
    }

    /// A NATS subject's rules: non-empty tokens of visible ASCII, no `*`/`>` inside one.
    fn valid_subject(subject: &str) -> bool {
        subject.split('.').all(|t| {
            !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) && !t.contains(['*', '>'])
        })
    }

    /// A JetStream key's alphabet.
    fn valid_key(key: &str) -> bool {
        !key.starts_with('.')
            && !key.ends_with('.')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_=/.".contains(&b))
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-c]{1,2}",
            Just("$SYS".to_owned()),
            Just("$".to_owned()),
            Just("*".to_owned()),
            Just(">".to_owned()),
            Just("a.b".to_owned()),
            Just("_".to_owned()),
            Just("=41".to_owned()),
            Just("x y".to_owned()),
            Just("Küche".to_owned()),
            "\\PC{1,3}".prop_filter("no MQTT separators", |s| !s.contains(['/', '+', '#', '\0'])),
        ]
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5)
            .prop_map(|levels| levels.join("/"))
            .prop_filter("a topic has a character", |t| !t.is_empty())
    }

    fn filter() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop_oneof![3 => level(), 1 => Just("+".to_owned())], 0..4),
            any::<bool>(),
        )
            .prop_filter_map("a filter has a level", |(mut levels, multi)| {
                if multi {
                    levels.push("#".to_owned());
                }
                Some(levels.join("/")).filter(|f| !f.is_empty())
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The escaping is exact: back to the same topic, and a valid subject and key.
        #[test]
        fn a_topic_goes_there_and_back(topic in topic()) {
            let subject = message_subject("mqtt", &topic);
            prop_assert!(valid_subject(&subject), "{subject}");
            prop_assert_eq!(topic_of_subject("mqtt", &subject), Some(topic.clone()));
            let key = retained_key(&topic);
            prop_assert!(valid_key(&key), "{key}");
            prop_assert_eq!(topic_of_retained_key(&key), Some(topic.clone()));
            let client = client_key(&topic);
            prop_assert!(valid_key(&client), "{client}");
            prop_assert_eq!(client_of_key(&client), Some(topic));
        }

        /// A filter's subjects match a topic's subject exactly when our own trie's filter
        /// matches the topic [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.2-1].
        #[test]
        fn nats_matches_exactly_what_the_filter_matches(filter in filter(), topic in topic()) {
            let limits = TopicLimits::default();
            let parsed = SubscriptionFilter::parse(Bytes::from(filter.clone()), &limits)
                .expect("a valid filter");
            let name = TopicName::with_limits(Bytes::from(topic.clone()), &limits)
                .expect("a valid topic");
            let ours = parsed.filter().matches(&name);
            let subject = message_subject("mqtt", &topic);
            let patterns = filter_subjects("mqtt", &filter);
            let theirs: Vec<bool> = patterns.iter().map(|p| nats_matches(p, &subject)).collect();
            prop_assert_eq!(ours, theirs.contains(&true), "{} {:?} {}", filter, patterns, subject);
            prop_assert!(theirs.iter().filter(|m| **m).count() <= 1, "never two copies");
        }
    }

    #[test]
    fn the_escaping_reads_as_the_topic_it_was() {
        assert_eq!(
            message_subject("mqtt", "cmnd/sonoff_1/POWER"),
            "mqtt.m.t.cmnd.sonoff=5F1.POWER"
        );
        assert_eq!(message_subject("mqtt", "/a//"), "mqtt.m.t._.a._._");
        assert_eq!(message_subject("mqtt", "$SYS/x"), "mqtt.m.s.=24SYS.x");
        assert_eq!(
            filter_subjects("mqtt", "tele/+/LWT"),
            ["mqtt.m.t.tele.*.LWT"]
        );
        assert_eq!(
            filter_subjects("mqtt", "tele/#"),
            ["mqtt.m.t.tele.>", "mqtt.m.t.tele"]
        );
        assert_eq!(filter_subjects("mqtt", "#"), ["mqtt.m.t.>"]);
        assert_eq!(filter_subjects("mqtt", "$SYS/#")[0], "mqtt.m.s.=24SYS.>");
        assert_eq!(unescape_token("=5f"), None, "one spelling per level");
        assert_eq!(unescape_token("=41"), None, "`A` is never escaped");
        assert_eq!(split_shared("$share/g/a/#"), Some(("g", "a/#")));
        assert_eq!(queue_group("$share/g/a/#"), "q=24share=2Fg=2Fa=2F=23");
    }
}
