//! `$SYS/broker/...` statistics (mosquitto layout) published at the configured interval, and the
//! records of persistent sessions and retained messages handed to a store.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_broker_core::persist::{PersistRecord, Persistence};
use mqtt_wire::{QoS, ReasonCode};

#[test]
fn sys_topics_are_published_at_the_interval() {
    let mut h = Harness::with_config(config(|c| c.sys_interval = Some(Duration::from_secs(10))));
    let watcher = h.connect(V311, "watcher");
    h.subscribe(watcher, "$SYS/broker/#", QoS::AtMostOnce);
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"x", QoS::AtMostOnce, false);
    assert!(h.publishes(watcher).is_empty());
    h.advance(Duration::from_secs(10));
    let got = h.publishes(watcher);
    let value = |topic: &str| {
        got.iter()
            .find(|p| p.topic() == topic)
            .map(|p| p.payload_bytes())
            .unwrap_or_else(|| panic!("{topic} missing"))
    };
    assert_eq!(
        value("$SYS/broker/clients/connected"),
        Bytes::from_static(b"2")
    );
    // mosquitto's meanings: `messages/*` are packets of any kind (two CONNECT, a SUBSCRIBE,
    // a PUBLISH), `publish/messages/*` PUBLISH packets.
    assert_eq!(
        value("$SYS/broker/publish/messages/received"),
        Bytes::from_static(b"1")
    );
    assert_eq!(
        value("$SYS/broker/messages/received"),
        Bytes::from_static(b"4")
    );
    // One PUBLISH in the first 10 s: 6 a minute, as the first value of every average.
    assert_eq!(
        value("$SYS/broker/load/publish/received/1min"),
        Bytes::from_static(b"6.00")
    );
    assert_eq!(
        value("$SYS/broker/load/connections/15min"),
        Bytes::from_static(b"12.00")
    );
    assert_eq!(
        value("$SYS/broker/uptime"),
        Bytes::from_static(b"10 seconds")
    );
    value("$SYS/broker/bytes/received");
    value("$SYS/broker/bytes/sent");
    value("$SYS/broker/messages/sent");
    value("$SYS/broker/version");
    assert!(
        h.broker
            .poll_timeout()
            .is_some_and(|t| t <= h.now + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(10));
    assert!(!h.publishes(watcher).is_empty(), "published again");
    let late = h.connect(V311, "late");
    h.subscribe(late, "$SYS/broker/uptime", QoS::AtMostOnce);
    assert_eq!(h.publishes(late).len(), 1, "retained");
}

#[test]
fn no_sys_topics_unless_configured() {
    let mut h = Harness::new();
    let watcher = h.connect(V311, "watcher");
    h.subscribe(watcher, "$SYS/#", QoS::AtMostOnce);
    h.advance(Duration::from_secs(3600));
    assert!(h.publishes(watcher).is_empty());
}

/// The records of one kind in every batch handed out so far.
fn records<T>(h: &Harness, pick: impl Fn(&PersistRecord) -> Option<T>) -> Vec<T> {
    h.batches
        .iter()
        .flat_map(|batch| &batch.records)
        .filter_map(pick)
        .collect()
}

#[test]
fn persistent_sessions_are_recorded_for_the_store() {
    let mut h = Harness::with_config(config(|c| c.persistence = Persistence::Deferred));
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "durable");
    connect.properties.session_expiry_interval = Some(60);
    h.connect_with(c, connect);
    h.subscribe(c, "a/#", QoS::AtLeastOnce);
    let saved = records(&h, |r| match r {
        PersistRecord::SessionSaved { client_id, record } => {
            Some((client_id.clone(), record.clone()))
        }
        _ => None,
    });
    let (client_id, record) = saved.last().expect("the session is recorded");
    assert_eq!(client_id, "durable");
    assert_eq!(record.expiry_interval, 60);
    assert_eq!(record.subscriptions.len(), 1);
    let p = h.connect(V5, "p");
    h.publish(p, "r", b"x", QoS::AtMostOnce, true);
    let retained = records(&h, |r| match r {
        PersistRecord::RetainedSet { topic, .. } => Some(topic.clone()),
        _ => None,
    });
    assert_eq!(retained, ["r"]);
    assert_eq!(h.broker.stats().retained_messages, 1);
    h.disconnect(c, ReasonCode::Success);
    h.advance(Duration::from_secs(60));
    let removed = records(&h, |r| match r {
        PersistRecord::SessionRemoved { client_id } => Some(client_id.clone()),
        _ => None,
    });
    assert_eq!(removed, ["durable"], "removed at expiry");
    let clean = h.connect(V5, "clean");
    h.subscribe(clean, "x", QoS::AtMostOnce);
    let sessions = records(&h, |r| match r {
        PersistRecord::SessionSaved { client_id, .. } => Some(client_id.clone()),
        _ => None,
    });
    assert!(
        sessions.iter().all(|id| id == "durable"),
        "sessions without expiry are not recorded"
    );
}
