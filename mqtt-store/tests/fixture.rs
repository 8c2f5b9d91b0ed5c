//! The committed stores `tests/fixtures/store-v1.redb` and `store-v2.redb`, each written once by
//! its format version, must stay readable: every record they hold is checked field by field. A
//! later format version keeps these tests (and adds its own fixture) to prove it still reads the
//! older files. Both hold the same records; version 2 adds the publisher of a retained message
//! and of a retained will, which a version 1 file reads back without.
//!
//! The fixture of the current version is written by the ignored test `write_fixture`
//! (`cargo test -p mqtt-store --test fixture -- --ignored write_fixture`); it is not rewritten
//! by normal runs.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mqtt_broker_core::{
    ListenerId, Message, RetainSource,
    persist::{
        DeliveryState, PersistRecord, RecoveredDelivery, RecoveredMessage, RecoveredSession,
        RecoveredState, SessionRecord, StoredDelivery, WillRecord,
    },
};
use mqtt_store::{Commit, DurableStore, FORMAT_VERSION, WallClock};
use mqtt_wire::{MqttStr, PacketId, ProtocolVersion, QoS, RetainHandling, SubscriptionOptions};

/// 2026-01-01T00:00:00Z, the wall-clock time the fixture's broker started.
const T0_MILLIS: u64 = 1_767_225_600_000;

fn fixture_path(version: u64) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/store-v{version}.redb"))
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(T0_MILLIS)
}

fn s(text: &str) -> MqttStr {
    MqttStr::try_from(text.to_owned()).unwrap()
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// The retained message with every v5 property a PUBLISH may carry, and an expiry; from
/// version 2 on, with its publisher.
fn rich_retained(at: Instant, version: u64) -> Message {
    let mut m = Message::new(
        s("fixture/retained"),
        Bytes::from_static(b"retained-v1"),
        QoS::AtLeastOnce,
        true,
        at,
    );
    m.properties.message_expiry_interval = Some(3600);
    m.properties.payload_format_indicator = Some(1);
    m.properties.content_type = Some(s("text/plain"));
    m.properties.response_topic = Some(s("fixture/reply"));
    m.properties.correlation_data = Some(Bytes::from_static(b"corr-1"));
    m.properties.user_properties = vec![(s("origin"), s("fixture")), (s("origin"), s("again"))];
    m.publisher = Some("publisher-1".into());
    if version >= 2 {
        m.retain_source = Some(Box::new(RetainSource::new(
            "publisher-1".to_owned(),
            Some("alice".to_owned()),
            ListenerId(3),
            Some("CN=alice".to_owned()),
        )));
    }
    m
}

/// The retained will's publisher (from version 2 on): no user name or identity.
fn will_source(version: u64) -> Option<Box<RetainSource>> {
    (version >= 2).then(|| {
        Box::new(RetainSource::new(
            "session-v5".to_owned(),
            None,
            ListenerId(0),
            None,
        ))
    })
}

fn plain_retained(at: Instant) -> Message {
    Message::new(
        s("fixture/plain"),
        Bytes::from_static(b"\x00\x01binary"),
        QoS::AtMostOnce,
        true,
        at,
    )
}

fn will(at: Instant, version: u64) -> WillRecord {
    let mut message = Message::new(
        s("fixture/will"),
        Bytes::from_static(b"gone"),
        QoS::AtLeastOnce,
        true,
        at,
    );
    message.properties.message_expiry_interval = Some(600);
    message.retain_source = will_source(version);
    WillRecord {
        message,
        delay_interval: 120,
    }
}

fn v5_session(disconnected_at: Option<Instant>, will_at: Instant, version: u64) -> SessionRecord {
    let mut record = SessionRecord::new(ProtocolVersion::V5, 86_400);
    record.subscriptions = vec![
        (
            "fixture/#".to_owned(),
            SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::SendIfNew,
            },
            Some(7),
        ),
        (
            "$share/group/jobs/+".to_owned(),
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: RetainHandling::DoNotSend,
            },
            None,
        ),
    ];
    record.will = Some(will(will_at, version));
    record.disconnected_at = disconnected_at;
    record
}

fn v311_session() -> SessionRecord {
    let mut record = SessionRecord::new(ProtocolVersion::V3_1_1, u32::MAX);
    record.subscriptions = vec![(
        "legacy/+".to_owned(),
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..SubscriptionOptions::default()
        },
        None,
    )];
    record
}

fn delivery(topic: &str, payload: &'static [u8], qos: QoS, at: Instant) -> StoredDelivery {
    let mut message = Message::new(s(topic), Bytes::from_static(payload), qos, false, at);
    message.publisher = Some("publisher-2".into());
    StoredDelivery {
        message: Arc::new(message),
        qos,
        retain: false,
        subscription_ids: vec![7],
        share: None,
        state: DeliveryState::Queued,
    }
}

/// The deliveries of `session-v5` as stored: (number, delivery); numbers 3 and 4 change state
/// after being stored, number 5 is finished and must be gone.
fn deliveries(at: Instant) -> Vec<(u64, StoredDelivery)> {
    let queued_1 = delivery("fixture/a", b"queued qos1", QoS::AtLeastOnce, at);
    let mut queued_2 = delivery("jobs/x", b"queued qos2", QoS::ExactlyOnce, at);
    queued_2.share = Some("group".to_owned());
    queued_2.subscription_ids = vec![];
    let mut expiring = delivery("fixture/b", b"inflight qos1", QoS::AtLeastOnce, at);
    let mut props = mqtt_wire::Properties::default();
    props.message_expiry_interval = Some(90);
    Arc::make_mut(&mut expiring.message).properties = props;
    let released = delivery("fixture/c", b"released qos2", QoS::ExactlyOnce, at);
    let finished = delivery("fixture/d", b"acknowledged", QoS::AtLeastOnce, at);
    vec![
        (1, queued_1),
        (2, queued_2),
        (3, expiring),
        (4, released),
        (5, finished),
    ]
}

fn record_stream(anchor: Instant, version: u64) -> Vec<PersistRecord> {
    let at = anchor + Duration::from_millis(1500);
    let client = "session-v5".to_owned();
    let mut records = vec![
        PersistRecord::SessionSaved {
            client_id: client.clone(),
            record: v5_session(None, at, version),
        },
        PersistRecord::SessionSaved {
            client_id: "session-v311".to_owned(),
            record: v311_session(),
        },
        PersistRecord::RetainedSet {
            topic: "fixture/retained".to_owned(),
            message: Arc::new(rich_retained(at, version)),
        },
        PersistRecord::RetainedSet {
            topic: "fixture/plain".to_owned(),
            message: Arc::new(plain_retained(anchor)),
        },
        PersistRecord::RetainedSet {
            topic: "fixture/cleared".to_owned(),
            message: Arc::new(plain_retained(anchor)),
        },
        PersistRecord::RetainedCleared {
            topic: "fixture/cleared".to_owned(),
        },
    ];
    for (number, delivery) in deliveries(at) {
        records.push(PersistRecord::MessageStored {
            client_id: client.clone(),
            number,
            delivery,
        });
    }
    records.extend([
        PersistRecord::MessageState {
            client_id: client.clone(),
            number: 3,
            state: DeliveryState::Sent(id(11)),
        },
        PersistRecord::MessageState {
            client_id: client.clone(),
            number: 4,
            state: DeliveryState::Sent(id(12)),
        },
        PersistRecord::MessageState {
            client_id: client.clone(),
            number: 4,
            state: DeliveryState::Released(id(12)),
        },
        PersistRecord::MessageDone {
            client_id: client.clone(),
            number: 5,
        },
        PersistRecord::IncomingQos2 {
            client_id: client.clone(),
            packet_id: id(42),
            pending: true,
        },
        PersistRecord::IncomingQos2 {
            client_id: client.clone(),
            packet_id: id(43),
            pending: true,
        },
        PersistRecord::IncomingQos2 {
            client_id: client.clone(),
            packet_id: id(43),
            pending: false,
        },
        // A session that ended takes its messages with it.
        PersistRecord::SessionSaved {
            client_id: "session-gone".to_owned(),
            record: SessionRecord::new(ProtocolVersion::V5, 60),
        },
        PersistRecord::MessageStored {
            client_id: "session-gone".to_owned(),
            number: 1,
            delivery: delivery("fixture/e", b"dropped", QoS::AtLeastOnce, at),
        },
        PersistRecord::SessionRemoved {
            client_id: "session-gone".to_owned(),
        },
        // The client of session-v5 disconnects 10 s after the start.
        PersistRecord::SessionSaved {
            client_id: client,
            record: v5_session(Some(anchor + Duration::from_secs(10)), at, version),
        },
    ]);
    records
}

/// What loading the fixture of `version` must give, written out independently of the encoder.
fn expected(anchor: Instant, version: u64) -> RecoveredState {
    let received = t0() + Duration::from_millis(1500);
    let mut deliveries = deliveries(anchor);
    deliveries.truncate(4);
    let states = [
        DeliveryState::Queued,
        DeliveryState::Queued,
        DeliveryState::Sent(id(11)),
        DeliveryState::Released(id(12)),
    ];
    let messages = deliveries
        .into_iter()
        .zip(states)
        .map(|((number, mut delivery), state)| {
            delivery.state = state;
            RecoveredDelivery {
                number,
                delivery,
                received,
            }
        })
        .collect();
    RecoveredState {
        retained: vec![
            RecoveredMessage {
                message: plain_retained(anchor),
                received: t0(),
            },
            RecoveredMessage {
                message: rich_retained(anchor, version),
                received,
            },
        ],
        sessions: vec![
            RecoveredSession {
                client_id: "session-v311".to_owned(),
                record: v311_session(),
                disconnected: None,
                messages: vec![],
                incoming_qos2: vec![],
            },
            RecoveredSession {
                client_id: "session-v5".to_owned(),
                // The will's message comes back with the load's anchor as its receipt time.
                record: v5_session(None, anchor, version),
                disconnected: Some(t0() + Duration::from_secs(10)),
                messages,
                incoming_qos2: vec![id(42)],
            },
        ],
    }
}

/// Writes the fixture of the current format version. Run once per format version; the file is
/// committed.
#[test]
#[ignore = "writes tests/fixtures/store-v<FORMAT_VERSION>.redb; run by hand for a new format version"]
fn write_fixture() {
    let path = fixture_path(FORMAT_VERSION);
    let _ = std::fs::remove_file(&path);
    #[allow(clippy::disallowed_methods)]
    let anchor = Instant::now();
    let clock = WallClock::new(anchor, t0());
    let mut store = DurableStore::open(&path).unwrap();
    let records = record_stream(anchor, FORMAT_VERSION);
    let (first, rest) = records.split_at(6);
    store.apply(first, &clock, Commit::Durable).unwrap();
    store.apply(rest, &clock, Commit::Durable).unwrap();
    drop(store);
    assert_eq!(
        load_copy(&path, anchor, 1),
        expected(anchor, FORMAT_VERSION)
    );
}

/// Opens a copy (opening writes) `opens` times, returns what the last one loads.
fn load_copy(path: &Path, anchor: Instant, opens: usize) -> RecoveredState {
    let dir = std::env::temp_dir().join(format!(
        "mqtt-store-fixture-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("store.redb");
    std::fs::copy(path, &copy).unwrap();
    for _ in 1..opens {
        DurableStore::open(&copy).unwrap().load(anchor).unwrap();
    }
    let state = DurableStore::open(&copy).unwrap().load(anchor).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    state
}

/// Loads the fixture of `version` and compares it with what it must hold.
fn check_fixture(version: u64, opens: usize) {
    let path = fixture_path(version);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 100 * 1024, "fixture is {size} bytes");
    #[allow(clippy::disallowed_methods)]
    let anchor = Instant::now();
    let state = load_copy(&path, anchor, opens);
    let expected = expected(anchor, version);
    // Field by field first, for a readable failure; then the whole.
    assert_eq!(state.retained.len(), 2);
    for (got, want) in state.retained.iter().zip(&expected.retained) {
        assert_eq!(got.received, want.received, "{}", want.message.topic);
        assert_eq!(got.message.properties, want.message.properties);
        assert_eq!(got.message.retain_source, want.message.retain_source);
        assert_eq!(got.message, want.message);
    }
    assert_eq!(state.sessions.len(), 2);
    for (got, want) in state.sessions.iter().zip(&expected.sessions) {
        assert_eq!(got.client_id, want.client_id);
        assert_eq!(got.record.subscriptions, want.record.subscriptions);
        assert_eq!(got.record.will, want.record.will);
        assert_eq!(got.disconnected, want.disconnected);
        assert_eq!(got.incoming_qos2, want.incoming_qos2);
        assert_eq!(got.messages, want.messages, "{}", want.client_id);
    }
    assert_eq!(state, expected);
}

/// A version 1 file: its retained messages have no recorded publisher.
#[test]
fn version_1_fixture_reads_back_every_record() {
    check_fixture(1, 1);
}

/// The first open converts a version 1 file to version 2; later opens read it as version 2
/// (converting twice would leave bytes a reader refuses).
#[test]
fn version_1_file_is_converted_once() {
    check_fixture(1, 3);
}

#[test]
fn version_2_fixture_reads_back_every_record_with_retained_publishers() {
    check_fixture(2, 1);
}
