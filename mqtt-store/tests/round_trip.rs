//! Whatever retained messages and wills (with their publisher), sessions and deliveries are written,
//! loading gives them back unchanged (receipt and disconnection times at millisecond precision
//! in wall-clock time).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use mqtt_broker_core::{
    ListenerId, Message, RetainSource,
    persist::{
        DeliveryState, PersistRecord, RecoveredDelivery, RecoveredMessage, RecoveredSession,
        SessionRecord, StoredDelivery, WillRecord,
    },
};
use mqtt_store::{Commit, DurableStore, WallClock};
use mqtt_wire::{MqttStr, PacketId, ProtocolVersion, QoS, RetainHandling, SubscriptionOptions};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn s(text: String) -> MqttStr {
    MqttStr::try_from(text).unwrap()
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9/é ]{0,12}"
}

/// A message received `offset` ms after the anchor, with any PUBLISH properties.
#[derive(Debug, Clone)]
struct MessageSpec {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    expiry: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation: Option<Vec<u8>>,
    format: Option<u8>,
    user: Vec<(String, String)>,
    publisher: Option<String>,
    offset: u64,
}

impl MessageSpec {
    fn build(&self, at: Instant) -> Message {
        let mut m = Message::new(
            s(self.topic.clone()),
            Bytes::from(self.payload.clone()),
            self.qos,
            self.retain,
            at,
        );
        m.properties.message_expiry_interval = self.expiry;
        m.properties.content_type = self.content_type.clone().map(s);
        m.properties.response_topic = self.response_topic.clone().map(s);
        m.properties.correlation_data = self.correlation.clone().map(Bytes::from);
        m.properties.payload_format_indicator = self.format;
        m.properties.user_properties = self
            .user
            .iter()
            .map(|(k, v)| (s(k.clone()), s(v.clone())))
            .collect();
        m.publisher = self.publisher.as_deref().map(Into::into);
        m
    }
}

fn message() -> impl Strategy<Value = MessageSpec> {
    (
        ("[a-z]{1,6}(/[a-z0-9]{1,6}){0,3}", vec(any::<u8>(), 0..64)),
        (qos(), any::<bool>(), option::of(1u32..)),
        (option::of(text()), option::of("[a-z/]{1,10}")),
        (option::of(vec(any::<u8>(), 0..8)), option::of(0u8..=1)),
        vec((text(), text()), 0..3),
        option::of("[a-z0-9-]{1,10}"),
        0u64..10_000_000,
    )
        .prop_map(
            |(
                (topic, payload),
                (qos, retain, expiry),
                (content_type, response_topic),
                (correlation, format),
                user,
                publisher,
                offset,
            )| MessageSpec {
                topic,
                payload,
                qos,
                retain,
                expiry,
                content_type,
                response_topic,
                correlation,
                format,
                user,
                publisher,
                offset,
            },
        )
}

/// The publisher of a retained message.
fn source() -> impl Strategy<Value = RetainSource> {
    (
        "[a-z0-9-]{0,10}",
        option::of(text()),
        any::<u16>(),
        option::of(text()),
    )
        .prop_map(|(client_id, username, listener, identity)| {
            RetainSource::new(client_id, username, ListenerId(listener), identity)
        })
}

fn options() -> impl Strategy<Value = SubscriptionOptions> {
    (qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(|(qos, no_local, rap, handling)| {
        SubscriptionOptions {
            qos,
            no_local,
            retain_as_published: rap,
            retain_handling: match handling {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendIfNew,
                _ => RetainHandling::DoNotSend,
            },
        }
    })
}

/// A delivery: message, qos, subscription ids, share, state tag, packet id.
type DeliverySpec = (MessageSpec, QoS, Vec<u32>, Option<String>, u8, u16);

#[derive(Debug, Clone)]
struct SessionSpec {
    version: ProtocolVersion,
    expiry: u32,
    subscriptions: Vec<(String, SubscriptionOptions, Option<u32>)>,
    will: Option<(MessageSpec, u32, Option<RetainSource>)>,
    disconnected: Option<u64>,
    deliveries: Vec<DeliverySpec>,
    incoming: Vec<u16>,
}

fn session() -> impl Strategy<Value = SessionSpec> {
    (
        prop_oneof![
            Just(ProtocolVersion::V3_1),
            Just(ProtocolVersion::V3_1_1),
            Just(ProtocolVersion::V5)
        ],
        1u32..,
        vec(
            ("[a-z+#/$]{1,12}", options(), option::of(1u32..268_435_455)),
            0..4,
        ),
        option::of((message(), any::<u32>(), option::of(source()))),
        option::of(0u64..10_000_000),
        vec(
            (
                message(),
                qos(),
                vec(1u32..268_435_455, 0..3),
                option::of("[a-z]{1,6}"),
                0u8..3,
                1u16..,
            ),
            0..5,
        ),
        vec(1u16.., 0..4),
    )
        .prop_map(
            |(version, expiry, subscriptions, will, disconnected, deliveries, incoming)| {
                SessionSpec {
                    version,
                    expiry,
                    subscriptions,
                    will,
                    disconnected,
                    deliveries,
                    incoming,
                }
            },
        )
}

fn state(tag: u8, id: u16) -> DeliveryState {
    let id = PacketId::new(id).unwrap();
    match tag {
        0 => DeliveryState::Queued,
        1 => DeliveryState::Sent(id),
        _ => DeliveryState::Released(id),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn written_records_load_back_equal(
        retained in vec((message(), option::of(source())), 0..8),
        sessions in proptest::collection::btree_map("[a-z0-9]{1,8}", session(), 0..5),
    ) {
        let dir = std::env::temp_dir().join(format!(
            "mqtt-store-round-trip-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let _ = std::fs::remove_file(&path);
        #[allow(clippy::disallowed_methods)]
        let anchor = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        let clock = WallClock::new(anchor, wall);
        let at = |offset: u64| anchor + Duration::from_millis(offset);
        let time = |offset: u64| wall + Duration::from_millis(offset);

        let mut records = Vec::new();
        let mut want_retained: BTreeMap<String, RecoveredMessage> = BTreeMap::new();
        for (spec, source) in &retained {
            let build = |when: Instant| {
                let mut message = spec.build(when);
                message.retain_source = source.clone().map(Box::new);
                message
            };
            records.push(PersistRecord::RetainedSet {
                topic: spec.topic.clone(),
                message: Arc::new(build(at(spec.offset))),
            });
            want_retained.insert(spec.topic.clone(), RecoveredMessage {
                message: build(anchor),
                received: time(spec.offset),
            });
        }
        let mut want_sessions = Vec::new();
        for (client_id, spec) in &sessions {
            let record = |when: Instant| {
                let mut record = SessionRecord::new(spec.version, spec.expiry);
                record.subscriptions = spec.subscriptions.clone();
                record.will = spec.will.as_ref().map(|(m, delay, source)| {
                    let mut message = m.build(when);
                    message.retain_source = source.clone().map(Box::new);
                    WillRecord {
                        message,
                        delay_interval: *delay,
                    }
                });
                record
            };
            let mut saved = record(at(1));
            saved.disconnected_at = spec.disconnected.map(at);
            records.push(PersistRecord::SessionSaved { client_id: client_id.clone(), record: saved });
            let mut messages = Vec::new();
            for (n, (m, qos, ids, share, tag, id)) in spec.deliveries.iter().enumerate() {
                let delivery = |when: Instant| StoredDelivery {
                    message: Arc::new(m.build(when)),
                    qos: *qos,
                    retain: m.retain,
                    subscription_ids: ids.clone(),
                    share: share.clone(),
                    state: state(*tag, *id),
                };
                let number = n as u64 * 3 + 1;
                records.push(PersistRecord::MessageStored {
                    client_id: client_id.clone(),
                    number,
                    delivery: delivery(at(m.offset)),
                });
                messages.push(RecoveredDelivery { number, delivery: delivery(anchor), received: time(m.offset) });
            }
            let mut incoming: Vec<PacketId> =
                spec.incoming.iter().map(|id| PacketId::new(*id).unwrap()).collect();
            for id in &incoming {
                records.push(PersistRecord::IncomingQos2 {
                    client_id: client_id.clone(),
                    packet_id: *id,
                    pending: true,
                });
            }
            incoming.sort();
            incoming.dedup();
            want_sessions.push(RecoveredSession {
                client_id: client_id.clone(),
                record: record(anchor),
                disconnected: spec.disconnected.map(time),
                messages,
                incoming_qos2: incoming,
            });
        }

        let mut store = DurableStore::open(&path).unwrap();
        let (first, second) = records.split_at(records.len() / 2);
        store.apply(first, &clock, Commit::Journaled).unwrap();
        store.apply(second, &clock, Commit::Durable).unwrap();
        drop(store);
        let loaded = DurableStore::open(&path).unwrap().load(anchor).unwrap();
        // Journaled only and never synced: the next open replays the journal.
        let journaled_path = dir.join("journaled.redb");
        let mut store = DurableStore::open(&journaled_path).unwrap();
        store.apply(first, &clock, Commit::Journaled).unwrap();
        store.apply(second, &clock, Commit::Journaled).unwrap();
        drop(store);
        let reopened = DurableStore::open(&journaled_path).unwrap();
        let replay = reopened.journal_replay();
        prop_assert_eq!(replay.map(|r| r.ignored_bytes), (!records.is_empty()).then_some(0));
        let replayed = reopened.load(anchor).unwrap();
        drop(reopened);
        std::fs::remove_dir_all(&dir).unwrap();
        prop_assert_eq!(&replayed, &loaded);

        let want_retained: Vec<RecoveredMessage> = want_retained.into_values().collect();
        prop_assert_eq!(loaded.retained, want_retained);
        prop_assert_eq!(loaded.sessions, want_sessions);
    }
}

/// One store written record by record, one written in a single call (where changes to the same
/// delivery are merged): both load the same.
#[test]
fn merged_delivery_changes_load_like_one_by_one() {
    #[allow(clippy::disallowed_methods)]
    let anchor = Instant::now();
    let clock = WallClock::new(anchor, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let message = |n: u8| {
        Arc::new(Message::new(
            s(format!("t/{n}")),
            Bytes::from(vec![n; 4]),
            QoS::ExactlyOnce,
            false,
            anchor,
        ))
    };
    let stored = |client: &str, number: u64, state: DeliveryState| PersistRecord::MessageStored {
        client_id: client.to_owned(),
        number,
        delivery: StoredDelivery {
            message: message(number as u8),
            qos: QoS::ExactlyOnce,
            retain: false,
            subscription_ids: vec![],
            share: None,
            state,
        },
    };
    let changed = |client: &str, number: u64, state: DeliveryState| PersistRecord::MessageState {
        client_id: client.to_owned(),
        number,
        state,
    };
    let done = |client: &str, number: u64| PersistRecord::MessageDone {
        client_id: client.to_owned(),
        number,
    };
    let session = |client: &str| PersistRecord::SessionSaved {
        client_id: client.to_owned(),
        record: SessionRecord::new(ProtocolVersion::V5, 100),
    };
    let sent = DeliveryState::Sent(PacketId::new(1).unwrap());
    let released = DeliveryState::Released(PacketId::new(1).unwrap());
    let records = vec![
        session("a"),
        session("b"),
        stored("a", 1, DeliveryState::Queued),
        stored("a", 2, DeliveryState::Queued),
        changed("a", 1, sent),
        stored("a", 3, sent),
        done("a", 3),
        changed("a", 2, sent),
        changed("a", 2, released),
        stored("b", 1, DeliveryState::Queued),
        PersistRecord::SessionRemoved {
            client_id: "b".to_owned(),
        },
        session("b"),
        stored("b", 1, sent),
        done("a", 1),
        changed("a", 1, sent),
        stored("a", 4, DeliveryState::Queued),
    ];
    let dir = std::env::temp_dir().join(format!("mqtt-store-merged-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut one_by_one = DurableStore::open(dir.join("one.redb")).unwrap();
    for record in &records {
        one_by_one
            .apply([record], &clock, Commit::Journaled)
            .unwrap();
    }
    one_by_one.sync().unwrap();
    let mut merged = DurableStore::open(dir.join("merged.redb")).unwrap();
    merged.apply(&records, &clock, Commit::Durable).unwrap();
    // Half and half, to merge with what is already stored.
    let mut split = DurableStore::open(dir.join("split.redb")).unwrap();
    split.apply(&records[..7], &clock, Commit::Durable).unwrap();
    split.apply(&records[7..], &clock, Commit::Durable).unwrap();
    let expected = one_by_one.load(anchor).unwrap();
    let numbers: Vec<Vec<(u64, DeliveryState)>> = expected
        .sessions
        .iter()
        .map(|s| {
            s.messages
                .iter()
                .map(|m| (m.number, m.delivery.state))
                .collect()
        })
        .collect();
    assert_eq!(
        numbers,
        [
            vec![(2, released), (4, DeliveryState::Queued)],
            vec![(1, sent)]
        ]
    );
    assert_eq!(merged.load(anchor).unwrap(), expected);
    assert_eq!(split.load(anchor).unwrap(), expected);
    drop((one_by_one, merged, split));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What `journal` appended survives a crash before `fold_journaled` (the acknowledgement may
/// already have left), and a durable write after it keeps the order: journaled first.
#[test]
fn journaled_records_survive_without_their_fold() {
    #[allow(clippy::disallowed_methods)]
    let anchor = Instant::now();
    let clock = WallClock::new(anchor, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let retained = |payload: &'static [u8]| PersistRecord::RetainedSet {
        topic: "r".to_owned(),
        message: Arc::new(Message::new(
            s("r".to_owned()),
            Bytes::from_static(payload),
            QoS::AtLeastOnce,
            true,
            anchor,
        )),
    };
    let dir = std::env::temp_dir().join(format!("mqtt-store-unfolded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let payload = |store: &DurableStore| {
        store.load(anchor).unwrap().retained[0]
            .message
            .payload
            .clone()
    };

    let mut store = DurableStore::open(dir.join("a.redb")).unwrap();
    store.journal([&retained(b"one")], &clock).unwrap();
    drop(store); // a crash: never folded, never synced
    let store = DurableStore::open(dir.join("a.redb")).unwrap();
    assert_eq!(store.journal_replay().map(|r| r.entries), Some(1));
    assert_eq!(payload(&store), Bytes::from_static(b"one"));

    let mut store = DurableStore::open(dir.join("b.redb")).unwrap();
    store.journal([&retained(b"one")], &clock).unwrap();
    store
        .apply([&retained(b"two")], &clock, Commit::Durable)
        .unwrap();
    drop(store);
    let store = DurableStore::open(dir.join("b.redb")).unwrap();
    assert_eq!(
        store.journal_replay(),
        None,
        "the durable write took the journal with it"
    );
    assert_eq!(payload(&store), Bytes::from_static(b"two"));
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
