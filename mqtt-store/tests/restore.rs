//! A store written by one broker, read back and restored into a new broker after 100 s of
//! wall-clock downtime, on the virtual clock of the core's test harness: message expiry and
//! session expiry count the downtime from the stored wall-clock times, queued and in-flight
//! deliveries resume, and a delayed will fires when its delay (counted from the stored
//! disconnection) ends.

#![allow(clippy::unwrap_used)]

#[path = "../../mqtt-broker-core/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{Harness, V5, connect_packet, id, s};
use mqtt_broker_core::{
    Message,
    persist::{
        DeliveryState, PersistRecord, RecoveredState, SessionRecord, StoredDelivery, WillRecord,
    },
};
use mqtt_store::{Commit, DurableStore, WallClock};
use mqtt_wire::{PublishQos, QoS, ReasonCode};

/// Wall-clock time of the first broker's records.
fn w0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

const DOWNTIME: Duration = Duration::from_secs(100);

fn message(topic: &str, payload: &'static [u8], expiry: Option<u32>, h: &Harness) -> Message {
    let mut m = Message::new(
        s(topic),
        Bytes::from_static(payload),
        QoS::AtLeastOnce,
        false,
        h.now,
    );
    m.properties.message_expiry_interval = expiry;
    m
}

fn delivery(message: Message, state: DeliveryState) -> StoredDelivery {
    StoredDelivery {
        message: Arc::new(message),
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: vec![],
        share: None,
        state,
    }
}

fn session(expiry: u32, h: &Harness) -> SessionRecord {
    let mut record = SessionRecord::new(V5, expiry);
    record.disconnected_at = Some(h.now);
    record
}

/// What the first broker left: written at `w0()` on its own clock, read back from redb.
fn stored_state() -> RecoveredState {
    let first = Harness::new();
    let clock = WallClock::new(first.now, w0());
    let mut retained_long = message("r/long", b"long", Some(300), &first);
    retained_long.retain = true;
    let mut retained_short = message("r/short", b"short", Some(60), &first);
    retained_short.retain = true;
    let mut with_will = session(1000, &first);
    with_will.will = Some(WillRecord {
        message: message("will/w", b"w is gone", None, &first),
        delay_interval: 130,
    });
    let mut with_subscription = session(150, &first);
    with_subscription.subscriptions.push((
        "news/#".to_owned(),
        mqtt_wire::SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..Default::default()
        },
        None,
    ));
    let records = vec![
        PersistRecord::RetainedSet {
            topic: "r/long".to_owned(),
            message: Arc::new(retained_long),
        },
        PersistRecord::RetainedSet {
            topic: "r/short".to_owned(),
            message: Arc::new(retained_short),
        },
        PersistRecord::SessionSaved {
            client_id: "a".to_owned(),
            record: with_subscription,
        },
        PersistRecord::SessionSaved {
            client_id: "b".to_owned(),
            record: session(150, &first),
        },
        PersistRecord::SessionSaved {
            client_id: "w".to_owned(),
            record: with_will,
        },
        PersistRecord::MessageStored {
            client_id: "a".to_owned(),
            number: 1,
            delivery: delivery(
                message("news/1", b"in flight", None, &first),
                DeliveryState::Sent(id(5)),
            ),
        },
        PersistRecord::MessageStored {
            client_id: "a".to_owned(),
            number: 2,
            delivery: delivery(
                message("news/2", b"expired meanwhile", Some(120), &first),
                DeliveryState::Queued,
            ),
        },
        PersistRecord::MessageStored {
            client_id: "a".to_owned(),
            number: 3,
            delivery: delivery(
                message("news/3", b"queued", Some(1000), &first),
                DeliveryState::Queued,
            ),
        },
    ];
    static RUN: AtomicU32 = AtomicU32::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mqtt-store-restore-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.redb");
    let _ = std::fs::remove_file(&path);
    let mut store = DurableStore::open(&path).unwrap();
    store.apply(&records, &clock, Commit::Durable).unwrap();
    drop(store);
    let state = DurableStore::open(&path).unwrap().load(first.now).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    state
}

/// A broker restored 100 s (wall clock) after the records were written, with a watcher
/// subscribed to the wills.
fn restarted() -> (Harness, common::TestClient) {
    let state = stored_state();
    let mut h = Harness::new();
    let now = h.now;
    h.broker.restore(state, now, w0() + DOWNTIME);
    let watcher = h.connect(V5, "watcher");
    h.subscribe(watcher, "will/#", QoS::AtLeastOnce);
    (h, watcher)
}

fn resume(h: &mut Harness, client_id: &str) -> (common::TestClient, bool) {
    let client = h.open(V5);
    let mut connect = connect_packet(V5, client_id);
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(150);
    let ack = h.connect_with(client, connect);
    assert_eq!(ack.reason_code, ReasonCode::Success);
    (client, ack.session_present)
}

#[test]
fn restored_retained_message_expiry_counts_the_downtime() {
    let (mut h, _) = restarted();
    let reader = h.connect(V5, "reader");
    h.subscribe(reader, "r/#", QoS::AtLeastOnce);
    let got = h.receive_and_ack(reader);
    // r/short (60 s) expired during the 100 s downtime; r/long (300 s) has 200 s left.
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].topic(), "r/long");
    assert_eq!(got[0].properties.message_expiry_interval, Some(200));
    h.advance(Duration::from_secs(201));
    let late = h.connect(V5, "late-reader");
    h.subscribe(late, "r/#", QoS::AtLeastOnce);
    assert!(h.publishes(late).is_empty(), "r/long outlived its expiry");
}

#[test]
fn restored_session_expiry_counts_the_downtime() {
    let (mut h, _) = restarted();
    // Both sessions had 150 s and were disconnected when the broker stopped: 50 s are left.
    h.advance(Duration::from_secs(49));
    let (a, present) = resume(&mut h, "a");
    assert!(present, "session a expired early");
    let got = h.receive_and_ack(a);
    let topics: Vec<(&str, bool)> = got.iter().map(|p| (p.topic(), p.dup)).collect();
    // The in-flight message is resent first (DUP), the queued one follows; the message whose
    // 120 s expiry ran out (100 s down + 49 s) is not delivered.
    assert_eq!(topics, [("news/1", true), ("news/3", false)]);
    assert!(matches!(got[0].qos, PublishQos::AtLeastOnce(pid) if pid == id(5)));
    assert_eq!(got[1].properties.message_expiry_interval, Some(1000 - 149));
    // The restored subscription still routes.
    let publisher = h.connect(V5, "publisher");
    h.publish(
        publisher,
        "news/4",
        b"after restart",
        QoS::AtLeastOnce,
        false,
    );
    let got = h.receive_and_ack(a);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic(), "news/4");

    h.advance(Duration::from_secs(2));
    let (_, present) = resume(&mut h, "b");
    assert!(!present, "session b outlived its expiry");
}

#[test]
fn restored_delayed_will_fires_when_its_delay_ends() {
    let (mut h, watcher) = restarted();
    // 130 s delay, 100 s of it spent while the broker was down.
    h.advance(Duration::from_secs(29));
    assert!(h.publishes(watcher).is_empty(), "will sent early");
    h.advance(Duration::from_secs(2));
    let got = h.receive_and_ack(watcher);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].topic(), "will/w");
    assert_eq!(got[0].payload(), &b"w is gone"[..]);
}

#[test]
fn a_will_whose_delay_ended_during_the_downtime_fires_at_restore() {
    let mut state = stored_state();
    for session in &mut state.sessions {
        if let Some(will) = &mut session.record.will {
            // 30 s: over during the 100 s downtime. Retained, so a later subscriber sees it.
            will.delay_interval = 30;
            will.message.retain = true;
        }
    }
    let mut h = Harness::new();
    let now = h.now;
    h.broker.restore(state, now, w0() + DOWNTIME);
    h.advance(Duration::ZERO);
    let watcher = h.connect(V5, "watcher");
    h.subscribe(watcher, "will/#", QoS::AtLeastOnce);
    let got = h.receive_and_ack(watcher);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].topic(), "will/w");
}
