//! Unit tests of the retained-topic tree: lookups by filter under the §4.7
//! rules, replacement, removal and pruning.

use super::*;

fn name(topic: &str) -> TopicName {
    TopicName::try_from(topic).unwrap()
}

fn found(tree: &RetainedTree<u32>, filter: &str) -> Vec<String> {
    let mut names = Vec::new();
    tree.for_each_match(&TopicFilter::try_from(filter).unwrap(), |n, _| {
        names.push(n.to_string())
    });
    names.sort();
    names
}

fn tree_of(topics: &[&str]) -> RetainedTree<u32> {
    let mut tree = RetainedTree::new();
    for (value, topic) in (0..).zip(topics) {
        tree.insert(name(topic), value);
    }
    tree
}

#[test]
fn spec_4_7_examples_against_stored_names() {
    let tree = tree_of(&[
        "sport",
        "sport/",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player2",
        "/finance",
    ]);
    assert_eq!(
        found(&tree, "sport/tennis/player1/#"),
        ["sport/tennis/player1", "sport/tennis/player1/ranking"]
    );
    assert_eq!(
        found(&tree, "sport/#"),
        [
            "sport",
            "sport/",
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player2"
        ]
    );
    assert_eq!(
        found(&tree, "sport/tennis/+"),
        ["sport/tennis/player1", "sport/tennis/player2"]
    );
    assert_eq!(found(&tree, "sport/+"), ["sport/"]);
    assert_eq!(found(&tree, "+/+"), ["/finance", "sport/"]);
    assert_eq!(found(&tree, "+"), ["sport"]);
    assert_eq!(found(&tree, "/+"), ["/finance"]);
    assert_eq!(found(&tree, "#").len(), 6);
}

#[test]
fn mqtt_4_7_2_1_wildcard_first_level_skips_dollar_topics() {
    let tree = tree_of(&["$SYS", "$SYS/x", "$SYS/a/b", "a/$SYS"]);
    assert_eq!(found(&tree, "#"), ["a/$SYS"]);
    assert_eq!(found(&tree, "+/#"), ["a/$SYS"]);
    assert_eq!(found(&tree, "+/$SYS"), ["a/$SYS"]);
    assert_eq!(found(&tree, "$SYS/#"), ["$SYS", "$SYS/a/b", "$SYS/x"]);
    assert_eq!(found(&tree, "$SYS/+"), ["$SYS/x"]);
}

#[test]
fn mqtt_4_7_3_4_byte_exact_utf8_levels() {
    let tree = tree_of(&["GERÄTETOPIC/1", "gerätetopic/1", "Ä"]);
    assert_eq!(found(&tree, "GERÄTETOPIC/+"), ["GERÄTETOPIC/1"]);
    assert_eq!(found(&tree, "Ä/#"), ["Ä"]);
    assert_eq!(found(&tree, "A"), [] as [&str; 0]);
}

#[test]
fn insert_get_replace_remove_and_prune() {
    let mut tree = RetainedTree::new();
    assert_eq!(tree.insert(name("a/b/c"), 1), None);
    assert_eq!(tree.insert(name("a/b/c"), 2), Some(1));
    assert_eq!(tree.insert(name("a"), 3), None);
    assert_eq!(tree.len(), 2);
    assert_eq!(tree.get(&name("a/b/c")), Some(&2));
    assert_eq!(tree.get(&name("a/b")), None);
    assert_eq!(tree.node_count(), 4);
    assert_eq!(tree.remove(&name("a/b")), None);
    assert_eq!(tree.remove(&name("a/b/c")), Some(2));
    tree.check_invariants().unwrap();
    assert_eq!(tree.node_count(), 2);
    assert_eq!(tree.remove(&name("a")), Some(3));
    assert!(tree.is_empty());
    assert_eq!(tree.node_count(), 1);
    tree.check_invariants().unwrap();
}
