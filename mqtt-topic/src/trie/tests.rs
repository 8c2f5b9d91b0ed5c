//! Unit tests of the subscription trie: the §4.7 matching rules, shared
//! groups, replacement, removal and pruning.

use super::*;
use crate::SubscriptionFilter;

fn sub(filter: &str) -> SubscriptionFilter {
    SubscriptionFilter::try_from(filter).unwrap()
}

fn name(topic: &str) -> TopicName {
    TopicName::try_from(topic).unwrap()
}

/// What a lookup found: plain (key, value) pairs and (share, member keys).
type Found = (Vec<(u32, u32)>, Vec<(String, Vec<u32>)>);

/// Plain matches as sorted (key, value) pairs, groups as (share, keys).
fn matches(trie: &SubscriptionTrie<u32, u32>, topic: &str) -> Found {
    let (mut plain, mut groups) = (Vec::new(), Vec::new());
    trie.for_each_match(&name(topic), |m| match m {
        Match::Subscriber(member) => plain.push((member.key, member.value)),
        Match::Shared { share, members } => {
            groups.push((share.to_owned(), members.iter().map(|m| m.key).collect()));
        }
    });
    plain.sort_unstable();
    groups.sort_unstable();
    (plain, groups)
}

fn keys(trie: &SubscriptionTrie<u32, u32>, topic: &str) -> Vec<u32> {
    matches(trie, topic).0.into_iter().map(|(k, _)| k).collect()
}

fn trie_of(filters: &[&str]) -> SubscriptionTrie<u32, u32> {
    let mut trie = SubscriptionTrie::new();
    for (key, filter) in (0..).zip(filters) {
        trie.insert(&sub(filter), key, 0).unwrap();
    }
    trie
}

#[test]
fn spec_4_7_1_2_multi_level_wildcard_matches_parent_and_children() {
    let trie = trie_of(&["sport/tennis/player1/#", "sport/#", "#"]);
    assert_eq!(keys(&trie, "sport/tennis/player1"), [0, 1, 2]);
    assert_eq!(keys(&trie, "sport/tennis/player1/ranking"), [0, 1, 2]);
    assert_eq!(
        keys(&trie, "sport/tennis/player1/score/wimbledon"),
        [0, 1, 2]
    );
    assert_eq!(keys(&trie, "sport"), [1, 2]);
    assert_eq!(keys(&trie, "tele"), [2]);
    let tele = trie_of(&["tele/#"]);
    assert_eq!(keys(&tele, "tele"), [0]);
    assert_eq!(keys(&tele, "tele/"), [0]);
    assert_eq!(keys(&tele, "telex"), [] as [u32; 0]);
}

#[test]
fn spec_4_7_1_3_single_level_wildcard_matches_one_level() {
    let trie = trie_of(&["sport/tennis/+", "sport/+", "+/+", "/+", "+"]);
    assert_eq!(keys(&trie, "sport/tennis/player1"), [0]);
    assert_eq!(keys(&trie, "sport/tennis/player1/ranking"), [] as [u32; 0]);
    assert_eq!(keys(&trie, "sport"), [4]);
    assert_eq!(keys(&trie, "sport/"), [1, 2]);
    assert_eq!(keys(&trie, "/finance"), [2, 3]);
    assert_eq!(keys(&trie, "//"), [] as [u32; 0]);
}

#[test]
fn mqtt_4_7_2_1_wildcard_first_level_skips_dollar_topics() {
    let trie = trie_of(&["#", "+/monitor/Clients", "$SYS/#", "$SYS/monitor/+", "+"]);
    assert_eq!(keys(&trie, "$SYS/monitor/Clients"), [2, 3]);
    // rumqttd regressions: `$SYS/#` matches `$SYS/x` and `$SYS` itself.
    assert_eq!(keys(&trie, "$SYS/x"), [2]);
    assert_eq!(keys(&trie, "$SYS"), [2]);
    assert_eq!(keys(&trie, "a/monitor/Clients"), [0, 1]);
    assert_eq!(keys(&trie, "a$"), [0, 4]);
}

#[test]
fn mqtt_4_7_3_4_levels_compare_byte_for_byte() {
    let trie = trie_of(&["GERÄTETOPIC/+", "gerätetopic/#", "Ä/#", "+/Ä"]);
    assert_eq!(keys(&trie, "GERÄTETOPIC/x"), [0]);
    assert_eq!(keys(&trie, "gerätetopic"), [1]);
    assert_eq!(keys(&trie, "Ä"), [2]);
    assert_eq!(keys(&trie, "Äx/Ä"), [3]);
    assert_eq!(keys(&trie, "A"), [] as [u32; 0]);
}

#[test]
fn empty_levels_are_real_levels() {
    let trie = trie_of(&["a//b", "a/+/b", "/a", "a/", "+/+"]);
    assert_eq!(keys(&trie, "a//b"), [0, 1]);
    assert_eq!(keys(&trie, "/a"), [2, 4]);
    assert_eq!(keys(&trie, "a/"), [3, 4]);
    assert_eq!(keys(&trie, "a/b"), [4]);
}

#[test]
fn insert_replaces_and_reports_every_overlapping_subscription() {
    let mut trie = SubscriptionTrie::new();
    assert_eq!(trie.insert(&sub("a/+"), 7, 1), Ok(None));
    assert_eq!(trie.insert(&sub("a/+"), 7, 2), Ok(Some(1)));
    assert_eq!(trie.insert(&sub("a/#"), 7, 3), Ok(None));
    assert_eq!(trie.insert(&sub("a/b"), 7, 4), Ok(None));
    assert_eq!(trie.len(), 3);
    assert_eq!(matches(&trie, "a/b").0, [(7, 2), (7, 3), (7, 4)]);
    assert_eq!(trie.get(&sub("a/+"), 7), Some(&2));
    assert_eq!(trie.get(&sub("a/+"), 8), None);
    assert_eq!(trie.get(&sub("a/c"), 7), None);
}

#[test]
fn mqtt5_4_8_2_shared_groups_are_reported_with_their_members() {
    let mut trie = SubscriptionTrie::new();
    trie.insert(&sub("$share/g/jobs/+"), 1, 0).unwrap();
    trie.insert(&sub("$share/g/jobs/+"), 2, 0).unwrap();
    trie.insert(&sub("$share/h/jobs/+"), 3, 0).unwrap();
    trie.insert(&sub("$share/g/jobs/#"), 4, 0).unwrap();
    trie.insert(&sub("jobs/+"), 1, 9).unwrap();
    assert_eq!(trie.len(), 5);
    let (plain, groups) = matches(&trie, "jobs/a");
    assert_eq!(plain, [(1, 9)]);
    assert_eq!(
        groups,
        [
            ("g".into(), vec![1, 2]),
            ("g".into(), vec![4]),
            ("h".into(), vec![3])
        ]
    );
    // Shared groups obey the `$` rule like any filter [MQTT-4.7.2-1].
    trie.insert(&sub("$share/g/#"), 5, 0).unwrap();
    assert!(matches(&trie, "$SYS/a").1.is_empty());
    assert_eq!(trie.remove(&sub("$share/g/jobs/+"), 1), Some(0));
    assert_eq!(trie.remove(&sub("$share/g/jobs/+"), 1), None);
    assert_eq!(matches(&trie, "jobs/a").1[0], ("g".into(), vec![2]));
    trie.check_invariants().unwrap();
}

#[test]
fn removal_prunes_nodes_and_releases_memory() {
    let mut trie = SubscriptionTrie::new();
    trie.insert(&sub("a/b/c/d"), 1, 0).unwrap();
    trie.insert(&sub("a/+/c"), 1, 0).unwrap();
    trie.insert(&sub("a/#"), 2, 0).unwrap();
    assert_eq!(trie.node_count(), 7);
    assert_eq!(trie.remove(&sub("a/b/c/d"), 1), Some(0));
    trie.check_invariants().unwrap();
    assert_eq!(trie.node_count(), 4);
    assert_eq!(trie.remove(&sub("a/b/c/d"), 1), None);
    assert_eq!(trie.remove(&sub("a/+/c"), 2), None);
    assert_eq!(trie.remove_all(1, [&sub("a/+/c"), &sub("x")]), 1);
    assert_eq!(trie.node_count(), 2);
    assert_eq!(trie.remove(&sub("a/#"), 2), Some(0));
    assert!(trie.is_empty());
    assert_eq!(trie.node_count(), 0);
    trie.check_invariants().unwrap();
}

#[test]
fn wide_levels_switch_to_a_table_and_back() {
    let mut trie = SubscriptionTrie::new();
    let filters: Vec<_> = (0..1000).map(|i| sub(&format!("cmnd/dev{i}/#"))).collect();
    for (key, filter) in (0..).zip(&filters) {
        trie.insert(filter, key, key).unwrap();
    }
    trie.check_invariants().unwrap();
    assert_eq!(matches(&trie, "cmnd/dev500/POWER").0, [(500, 500)]);
    for (key, filter) in (0..).zip(&filters).skip(3) {
        assert_eq!(trie.remove(filter, key), Some(key));
    }
    trie.check_invariants().unwrap();
    assert_eq!(trie.node_count(), 5);
    assert_eq!(keys(&trie, "cmnd/dev2"), [2]);
}

#[test]
fn very_deep_filters_do_not_overflow_the_stack() {
    let mut trie = SubscriptionTrie::new();
    let deep = "+/".repeat(30_000) + "#";
    trie.insert(&sub(&deep), 1, 0).unwrap();
    let topic = "a/".repeat(30_000);
    assert_eq!(keys(&trie, &topic), [1]);
    assert_eq!(trie.remove(&sub(&deep), 1), Some(0));
    assert_eq!(trie.node_count(), 0);
}

#[test]
fn node_stays_compact() {
    assert_eq!(std::mem::size_of::<Node>(), 28);
}

#[test]
fn long_labels_survive_heap_compaction() {
    let mut trie = SubscriptionTrie::new();
    let filters: Vec<_> = (0..20_000)
        .map(|i| sub(&format!("a-level-longer-than-twelve-{i:08}/x")))
        .collect();
    for (key, filter) in (0..).zip(&filters) {
        trie.insert(filter, key, key).unwrap();
    }
    for (key, filter) in (0..).zip(&filters).take(15_000) {
        assert_eq!(trie.remove(filter, key), Some(key));
    }
    assert!(
        trie.labels.capacity_bytes() < 20_000 * 20,
        "heap was compacted"
    );
    trie.check_invariants().unwrap();
    for key in [15_000, 17_777, 19_999] {
        let topic = format!("a-level-longer-than-twelve-{key:08}/x");
        assert_eq!(matches(&trie, &topic).0, [(key, key)]);
    }
    assert_eq!(
        keys(&trie, "a-level-longer-than-twelve-00000001/x"),
        [] as [u32; 0]
    );
}

#[test]
fn a_filter_shared_by_many_clients_stays_consistent() {
    let mut trie = SubscriptionTrie::new();
    let (plain, shared) = (sub("alerts/#"), sub("$share/workers/alerts/#"));
    for key in 0..20_000 {
        trie.insert(&plain, key, key).unwrap();
        trie.insert(&shared, key, key).unwrap();
    }
    for key in (0..20_000).filter(|k| k % 4 != 0) {
        assert_eq!(trie.remove(&plain, key), Some(key));
        assert_eq!(trie.remove(&shared, key), Some(key));
    }
    assert_eq!(trie.insert(&plain, 8, 80), Ok(Some(8)));
    let (found, groups) = matches(&trie, "alerts/fire");
    assert_eq!(found.len(), 5_000);
    assert!(found.contains(&(8, 80)) && !found.contains(&(9, 9)));
    assert_eq!(groups.len(), 1);
    let mut members = groups[0].1.clone();
    members.sort_unstable();
    assert_eq!(members, (0..20_000).step_by(4).collect::<Vec<u32>>());
    trie.check_invariants().unwrap();
}
