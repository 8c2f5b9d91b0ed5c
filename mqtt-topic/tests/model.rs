//! Property tests: the trie and the retained tree agree with a naive model
//! (a list of filters or names scanned with a straightforward matcher) for
//! random filters and topics over an alphabet with `$`, empty levels, `+`,
//! `#` and multi-byte UTF-8, and random insert/remove sequences leave no
//! stale entries and no empty nodes.

use std::collections::BTreeMap;

use mqtt_topic::{
    Match, RetainedTree, SubscriptionFilter, SubscriptionTrie, TopicFilter, TopicName,
};
use proptest::prelude::*;

/// The naive reference matcher, written from §4.7 independently of the crate.
fn naive_matches(filter: &str, topic: &str) -> bool {
    fn levels_match(filter: &[&str], topic: &[&str]) -> bool {
        match (filter.split_first(), topic.split_first()) {
            (Some((&"#", _)), _) => true,
            (None, None) => true,
            (Some((f, f_rest)), Some((t, t_rest))) => {
                (*f == "+" || f == t) && levels_match(f_rest, t_rest)
            }
            _ => false,
        }
    }
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let filter: Vec<&str> = filter.split('/').collect();
    let topic: Vec<&str> = topic.split('/').collect();
    levels_match(&filter, &topic)
}

fn name_level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "b",
        "",
        "$",
        "$SYS",
        "Ä",
        "ÄÖ",
        "a$",
        "GERÄT",
        "ÄÖÜ-longer-than-12",
    ])
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(name_level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("topics are not empty [MQTT-4.7.3-1]", |topic| {
            !topic.is_empty()
        })
}

fn filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => name_level(), 1 => Just("+")];
    (prop::collection::vec(level, 0..4), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("filters are not empty [MQTT-4.7.3-1]", |filter| {
            !filter.is_empty()
        })
}

/// A filter that is shared by group `g` or `h` about a third of the time.
fn subscription() -> impl Strategy<Value = String> {
    (
        filter(),
        prop::sample::select(vec![None, None, None, None, Some("g"), Some("h")]),
    )
        .prop_map(|(filter, share)| match share {
            Some(share) => format!("$share/{share}/{filter}"),
            None => filter,
        })
}

/// The model: (subscription string, key) -> value.
type Model = BTreeMap<(String, u8), u16>;

/// Plain (key, value) pairs and groups (share, sorted members), all sorted.
type Found = (Vec<(u8, u16)>, Vec<(String, Vec<(u8, u16)>)>);

fn trie_found(trie: &SubscriptionTrie<u8, u16>, topic: &str) -> Found {
    let (mut plain, mut groups) = (Vec::new(), Vec::new());
    trie.for_each_match(
        &TopicName::try_from(topic).expect("valid topic"),
        |m| match m {
            Match::Subscriber(member) => plain.push((member.key, member.value)),
            Match::Shared { share, members } => {
                let mut members: Vec<_> = members.iter().map(|m| (m.key, m.value)).collect();
                members.sort_unstable();
                groups.push((share.to_owned(), members));
            }
        },
    );
    plain.sort_unstable();
    groups.sort_unstable();
    (plain, groups)
}

fn model_found(model: &Model, topic: &str) -> Found {
    let mut plain = Vec::new();
    let mut groups: BTreeMap<(String, String), Vec<(u8, u16)>> = BTreeMap::new();
    for ((subscription, key), value) in model {
        let parsed = SubscriptionFilter::try_from(subscription.as_str()).expect("valid filter");
        if !naive_matches(parsed.filter().as_str(), topic) {
            continue;
        }
        match parsed.share() {
            None => plain.push((*key, *value)),
            Some(share) => groups
                .entry((
                    share.as_str().to_owned(),
                    parsed.filter().as_str().to_owned(),
                ))
                .or_default()
                .push((*key, *value)),
        }
    }
    plain.sort_unstable();
    let mut groups: Vec<_> = groups
        .into_iter()
        .map(|((share, _), mut members)| {
            members.sort_unstable();
            (share, members)
        })
        .collect();
    groups.sort_unstable();
    (plain, groups)
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, u8, u16),
    Remove(String, u8),
    RemoveAll(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (subscription(), 0..4u8, any::<u16>()).prop_map(|(f, k, v)| Op::Insert(f, k, v)),
        3 => (subscription(), 0..4u8).prop_map(|(f, k)| Op::Remove(f, k)),
        1 => (0..4u8).prop_map(Op::RemoveAll),
    ]
}

proptest! {
    #[test]
    fn single_filter_match_equals_naive(filter in filter(), topic in topic()) {
        let parsed = TopicFilter::try_from(filter.as_str()).unwrap();
        let name = TopicName::try_from(topic.as_str()).unwrap();
        prop_assert_eq!(parsed.matches(&name), naive_matches(&filter, &topic));
    }

    #[test]
    fn trie_matches_equal_naive_scan(
        subscriptions in prop::collection::vec((subscription(), 0..4u8, any::<u16>()), 0..40),
        topics in prop::collection::vec(topic(), 1..20),
    ) {
        let mut trie = SubscriptionTrie::new();
        let mut model = Model::new();
        for (subscription, key, value) in subscriptions {
            let parsed = SubscriptionFilter::try_from(subscription.as_str()).unwrap();
            let old = trie.insert(&parsed, key, value).unwrap();
            prop_assert_eq!(old, model.insert((subscription, key), value));
        }
        prop_assert_eq!(trie.len(), model.len());
        for topic in &topics {
            prop_assert_eq!(trie_found(&trie, topic), model_found(&model, topic), "topic {}", topic);
        }
    }

    #[test]
    fn insert_remove_sequences_leave_nothing_stale(
        ops in prop::collection::vec(op(), 1..60),
        topics in prop::collection::vec(topic(), 1..10),
    ) {
        let mut trie = SubscriptionTrie::new();
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Insert(subscription, key, value) => {
                    let parsed = SubscriptionFilter::try_from(subscription.as_str()).unwrap();
                    let old = trie.insert(&parsed, key, value).unwrap();
                    prop_assert_eq!(old, model.insert((subscription, key), value));
                }
                Op::Remove(subscription, key) => {
                    let parsed = SubscriptionFilter::try_from(subscription.as_str()).unwrap();
                    prop_assert_eq!(trie.remove(&parsed, key), model.remove(&(subscription, key)));
                }
                Op::RemoveAll(key) => {
                    let mine: Vec<String> =
                        model.keys().filter(|(_, k)| *k == key).map(|(s, _)| s.clone()).collect();
                    let parsed: Vec<SubscriptionFilter> =
                        mine.iter().map(|s| SubscriptionFilter::try_from(s.as_str()).unwrap()).collect();
                    prop_assert_eq!(trie.remove_all(key, &parsed), mine.len());
                    model.retain(|(_, k), _| *k != key);
                }
            }
            prop_assert_eq!(trie.len(), model.len());
            prop_assert_eq!(trie.check_invariants(), Ok(()));
        }
        for topic in &topics {
            prop_assert_eq!(trie_found(&trie, topic), model_found(&model, topic), "topic {}", topic);
        }
        let everything: Vec<(String, u8)> = model.keys().cloned().collect();
        for (subscription, key) in everything {
            let parsed = SubscriptionFilter::try_from(subscription.as_str()).unwrap();
            prop_assert!(trie.remove(&parsed, key).is_some());
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.node_count(), 0);
    }

    #[test]
    fn retained_matches_equal_naive_scan(
        ops in prop::collection::vec((topic(), any::<bool>(), any::<u16>()), 0..60),
        filters in prop::collection::vec(filter(), 1..20),
    ) {
        let mut tree = RetainedTree::new();
        let mut model: BTreeMap<String, u16> = BTreeMap::new();
        for (topic, insert, value) in ops {
            let name = TopicName::try_from(topic.as_str()).unwrap();
            if insert {
                prop_assert_eq!(tree.insert(name, value), model.insert(topic, value));
            } else {
                prop_assert_eq!(tree.remove(&name), model.remove(&topic));
            }
            prop_assert_eq!(tree.len(), model.len());
            prop_assert_eq!(tree.check_invariants(), Ok(()));
        }
        for (topic, value) in &model {
            prop_assert_eq!(tree.get(&TopicName::try_from(topic.as_str()).unwrap()), Some(value));
        }
        for filter in &filters {
            let mut found = Vec::new();
            tree.for_each_match(&TopicFilter::try_from(filter.as_str()).unwrap(), |name, value| {
                found.push((name.to_string(), *value));
            });
            found.sort();
            let expected: Vec<(String, u16)> = model
                .iter()
                .filter(|(topic, _)| naive_matches(filter, topic))
                .map(|(topic, value)| (topic.clone(), *value))
                .collect();
            prop_assert_eq!(found, expected, "filter {}", filter);
        }
    }
}
