//! Hardening: the broker's size limits hold against a client that pushes them. 10,000-level
//! topic names and filters are refused by the depth limit (default 64); 100,000 subscriptions
//! from one client are capped at the per-client limit (default 256, the rest refused with
//! 0x97) with bounded memory; invalid shared subscriptions are refused; client identifiers over
//! the limit (default 256 bytes) are refused.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::time::Duration;

use raw::{Broker, connect_v5, connect_v311, publish, suback_codes, subscribe};

/// The per-client subscription cap of the default configuration.
const MAX_SUBSCRIPTIONS: usize = 256;

#[test]
fn mqtt_4_7_deep_topics_and_filters_are_refused_by_the_depth_limit() {
    let broker = Broker::start("hardening_limits_depth", "", "");
    let deep = vec!["l"; 10_000].join("/");
    // A filter: refused in SUBACK (0x8F Topic Filter invalid), connection kept.
    let mut c = broker.client_v5("deep-sub");
    let codes = c.subscribe(1, &deep, 0);
    assert_eq!(codes, vec![0x8f], "deep filter");
    let codes = c.subscribe(2, &format!("{deep}/#"), 0);
    assert_eq!(codes, vec![0x8f], "deep filter with #");
    c.ping();
    // 3.1.1: failure 0x80.
    let mut old = broker.client_v311("deep-sub-311");
    assert_eq!(old.subscribe(1, &deep, 0), vec![0x80]);
    // A topic name: DISCONNECT 0x90 Topic Name invalid.
    c.send(&publish(true, &deep, b"x", 0, 0, false));
    let seen = c.expect_closed(Duration::from_secs(3));
    assert!(
        matches!(seen.as_slice(), [(0xe0, body)] if body.first() == Some(&0x90)),
        "{seen:x?}"
    );
    broker.client_v5("after").ping();
}

#[test]
fn hundred_thousand_subscriptions_are_capped_per_client() {
    let broker = Broker::start("hardening_limits_subs", "", "");
    let mut c = broker.client_v5("greedy");
    let before = broker.rss_kib();
    let names: Vec<String> = (0..100_000).map(|i| format!("s/{i}/+/x")).collect();
    let mut granted = 0;
    let mut refused = 0;
    for (n, batch) in names.chunks(500).enumerate() {
        let filters: Vec<(&str, u8)> = batch.iter().map(|f| (f.as_str(), 1)).collect();
        c.send(&subscribe(true, n as u16 + 1, &filters));
        let (_, body) = c.expect_kind(9);
        for code in suback_codes(true, &body) {
            match code {
                1 => granted += 1,
                0x97 => refused += 1,
                other => panic!("unexpected SUBACK code {other:#x}"),
            }
        }
    }
    let after = broker.rss_kib();
    eprintln!("granted {granted}, refused {refused}; RSS {before} -> {after} KiB",);
    assert_eq!(granted, MAX_SUBSCRIPTIONS);
    assert_eq!(refused, 100_000 - MAX_SUBSCRIPTIONS);
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "RSS {before} -> {after}"
    );
    // Re-subscribing to a filter it holds replaces it and is still granted [MQTT-3.8.4-3].
    assert_eq!(c.subscribe(1, "s/0/+/x", 1), vec![1]);
    c.ping();
}

#[test]
fn mqtt_4_8_2_invalid_shared_subscriptions_are_refused() {
    let broker = Broker::start("hardening_limits_share", "", "");
    let mut c = broker.client_v5("sharer");
    for filter in [
        "$share/group",
        "$share/group/",
        "$share//t",
        "$share/g+/t",
        "$share/g#/t",
        "$share/g/t/#/x",
        "$share/",
    ] {
        let codes = c.subscribe(1, filter, 0);
        assert!(
            matches!(codes.as_slice(), [0x8f] | [0x9e]),
            "{filter:?}: {codes:x?}"
        );
    }
    assert_eq!(c.subscribe(2, "$share/g/t", 1), vec![1], "a valid one");
    // Without the slash it is an ordinary filter on the topic `$share`.
    assert_eq!(c.subscribe(3, "$share", 0), vec![0]);
    let mut old = broker.client_v311("sharer-311");
    assert_eq!(old.subscribe(1, "$share/group", 0), vec![0x80]);
    // [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
    c.send(&subscribe(true, 3, &[("$share/g/t", 0x04)]));
    let seen = c.expect_closed(Duration::from_secs(3));
    assert!(
        matches!(seen.as_slice(), [(0xe0, body)] if body.first() == Some(&0x82)),
        "{seen:x?}"
    );
}

#[test]
fn mqtt_3_1_3_client_ids_over_the_limit_are_refused() {
    let broker = Broker::start("hardening_limits_client_id", "", "");
    for len in [257, 1000, 65_535] {
        let id = "i".repeat(len);
        let mut c = broker.tcp();
        c.send(&connect_v5(&id, 60, None));
        let seen = c.expect_closed(Duration::from_secs(3));
        assert!(
            matches!(seen.as_slice(), [(0x20, body)] if body.get(1) == Some(&0x85)),
            "v5, {len} bytes: {seen:x?}"
        );
        let mut c = broker.tcp();
        c.send(&connect_v311(&id, 60, None));
        let seen = c.expect_closed(Duration::from_secs(3));
        assert!(
            matches!(seen.as_slice(), [(0x20, body)] if body.get(1) == Some(&0x02)),
            "3.1.1, {len} bytes: {seen:x?}"
        );
    }
    // The limit itself is accepted.
    broker.client_v5(&"i".repeat(256)).ping();
}
