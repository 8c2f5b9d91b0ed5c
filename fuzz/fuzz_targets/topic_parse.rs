//! Parses arbitrary bytes as a topic filter and a topic name; where both are valid, the
//! subscription trie and the retained tree must agree with `TopicFilter::matches`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mqtt_topic::{
    RetainedTree, SubscriptionFilter, SubscriptionTrie, TopicFilter, TopicLimits, TopicName,
};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (filter, name) = rest.split_at(usize::from(split).min(rest.len()));
    let limits = TopicLimits::default();
    // Shared-subscription parsing must never panic either.
    let _ = SubscriptionFilter::parse(Bytes::copy_from_slice(filter), &limits);
    let filter = TopicFilter::new(Bytes::copy_from_slice(filter));
    let name = TopicName::new(Bytes::copy_from_slice(name));
    let (Ok(filter), Ok(name)) = (filter, name) else {
        return;
    };
    let expected = filter.matches(&name);

    let mut trie = SubscriptionTrie::new();
    let plain = SubscriptionFilter::plain(filter.clone());
    trie.insert(&plain, 1u32, ())
        .expect("one subscription fits");
    let mut found = 0;
    trie.for_each_match(&name, |_| found += 1);
    assert_eq!(
        found == 1,
        expected,
        "trie agrees with TopicFilter::matches"
    );

    let mut retained = RetainedTree::new();
    retained.insert(name.clone(), ());
    let mut hits = 0;
    retained.for_each_match(&filter, |_, _| hits += 1);
    assert_eq!(
        hits == 1,
        expected,
        "retained tree agrees with TopicFilter::matches"
    );
});
