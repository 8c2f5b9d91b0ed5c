//! `Config::memory_limit` on the virtual clock: once the bytes held for delivery (queued copies
//! plus unflushed outboxes) reach the limit, new PUBLISH packets are refused instead of held:
//! v5 PUBACK / PUBREC 0x97 Quota exceeded, QoS 0 dropped, a 3.1.1 publisher of QoS 1
//! disconnected. Accepted again once subscribers take enough; the count follows every queue
//! and outbox change.

mod common;

use std::time::Duration;

use common::*;
use mqtt_broker_core::Stats;
use mqtt_wire::{Ack, Packet, PublishQos, QoS, ReasonCode};

/// 100-byte payloads to `t`: 101 bytes each in a queue.
static PAYLOAD: [u8; 100] = [b'p'; 100];
const WEIGHT: usize = 101;
/// 40 queued copies reach the limit.
const LIMIT: usize = 40 * WEIGHT;

/// Window 2, queue bound far above the limit, no publisher pauses (a full queue is what the
/// limit is about here).
fn harness() -> Harness {
    Harness::with_config(config(|c| {
        c.receive_maximum = 2;
        c.max_publisher_pause = Duration::ZERO;
        c.memory_limit = LIMIT;
    }))
}

/// The count the limit uses matches the queues and outboxes it stands for.
fn consistent(h: &Harness) -> Stats {
    let stats = h.broker.stats();
    assert_eq!(
        stats.memory_used,
        stats.bytes_queued + stats.bytes_unflushed,
        "{stats:?}"
    );
    stats
}

/// Sends a QoS `qos` PUBLISH with packet id `packet_id` and returns the acknowledgement.
fn publish_v5(h: &mut Harness, publisher: TestClient, qos: QoS, packet_id: u16) -> Option<Ack> {
    let qos = match qos {
        QoS::AtMostOnce => PublishQos::AtMostOnce,
        QoS::AtLeastOnce => PublishQos::AtLeastOnce(id(packet_id)),
        QoS::ExactlyOnce => PublishQos::ExactlyOnce(id(packet_id)),
    };
    h.send_publish(publisher, publish_packet("t", &PAYLOAD, qos, false));
    match h.recv(publisher) {
        Some(Packet::PubAck(ack)) | Some(Packet::PubRec(ack)) => Some(ack),
        None => None,
        Some(other) => panic!("unexpected {other:?}"),
    }
}

/// A QoS 1 subscriber to `t` that does not acknowledge, and a v5 publisher.
fn stuck_and_publisher(h: &mut Harness) -> (TestClient, TestClient) {
    let sub = h.connect(V311, "sub");
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let publisher = h.connect(V5, "pub");
    (sub, publisher)
}

#[test]
fn mqtt5_3_4_2_1_at_the_limit_a_v5_publish_is_refused_with_quota_exceeded() {
    let mut h = harness();
    let (sub, publisher) = stuck_and_publisher(&mut h);
    // 2 go out in the window, 40 are queued: the limit is reached.
    for n in 1..=42 {
        let ack = publish_v5(&mut h, publisher, QoS::AtLeastOnce, n).expect("PUBACK");
        assert_eq!(ack.reason_code, ReasonCode::Success, "message {n}");
    }
    let stats = consistent(&h);
    assert_eq!(stats.bytes_queued, (40 * WEIGHT) as u64);
    // QoS 1: PUBACK 0x97 [MQTT5-3.4.2-1].
    let ack = publish_v5(&mut h, publisher, QoS::AtLeastOnce, 43).expect("PUBACK");
    assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded);
    // QoS 2: PUBREC 0x97 [MQTT5-3.5.2-1], which ends the exchange: the client sends no PUBREL
    // [MQTT5-4.3.3-4] and may use the packet identifier again at once.
    let ack = publish_v5(&mut h, publisher, QoS::ExactlyOnce, 44).expect("PUBREC");
    assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded);
    // QoS 0: dropped.
    assert_eq!(publish_v5(&mut h, publisher, QoS::AtMostOnce, 0), None);
    let stats = consistent(&h);
    assert_eq!(stats.publishes_refused_memory, 3);
    assert_eq!(
        stats.bytes_queued,
        (40 * WEIGHT) as u64,
        "nothing more held"
    );
    assert!(!h.is_closed(publisher));
    // The subscriber takes its messages: publishing is accepted again, the QoS 2 identifier
    // refused before included.
    let mut received = 0;
    loop {
        let got = h.receive_and_ack(sub).len();
        if got == 0 {
            break;
        }
        received += got;
    }
    assert_eq!(received, 42, "the refused messages went nowhere");
    assert_eq!(consistent(&h).memory_used, 0);
    let ack = publish_v5(&mut h, publisher, QoS::ExactlyOnce, 44).expect("PUBREC");
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let ack = publish_v5(&mut h, publisher, QoS::AtLeastOnce, 45).expect("PUBACK");
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

#[test]
fn mqtt311_3_3_5_2_at_the_limit_a_311_qos1_publisher_is_disconnected_not_acknowledged() {
    let mut h = harness();
    let (_sub, _) = stuck_and_publisher(&mut h);
    let publisher = h.connect(V311, "pub311");
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtLeastOnce, 42);
    // QoS 0 at the limit: dropped, the connection stays.
    h.publish(publisher, "t", &PAYLOAD, QoS::AtMostOnce, false);
    assert!(!h.is_closed(publisher));
    // QoS 1: 3.1.1 has no negative PUBACK; acknowledging a dropped message would lose it
    // silently, so the connection is closed instead [MQTT311-3.3.5-2].
    h.send_publish(
        publisher,
        publish_packet("t", &PAYLOAD, PublishQos::AtLeastOnce(id(9)), false),
    );
    h.expect_nothing(publisher);
    assert!(h.is_closed(publisher));
    assert_eq!(consistent(&h).publishes_refused_memory, 2);
}

/// A 3.1.1 client resends what it had in flight before it reads on [MQTT-4.4.0-1]: closing it
/// for the resend at the limit would close it on every reconnect, before it could acknowledge
/// the messages it holds of the full queues (the simulator's seed 1085 went round that loop
/// for a minute). The resend (DUP) is taken; a new message is still refused.
#[test]
fn mqtt311_4_4_0_1_at_the_limit_a_resent_publish_is_taken_so_the_client_can_read_on() {
    let mut h = harness();
    let (_sub, _) = stuck_and_publisher(&mut h);
    let publisher = h.connect(V311, "pub311");
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtLeastOnce, 42);
    let mut resend = publish_packet("t", &PAYLOAD, PublishQos::AtLeastOnce(id(9)), false);
    resend.dup = true;
    h.send_publish(publisher, resend);
    match h.recv(publisher) {
        Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, id(9)),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    assert!(!h.is_closed(publisher));
    let stats = consistent(&h);
    assert_eq!(stats.publishes_refused_memory, 0);
    assert_eq!(stats.bytes_queued, (41 * WEIGHT) as u64, "one more held");
    h.send_publish(
        publisher,
        publish_packet("t", &PAYLOAD, PublishQos::AtLeastOnce(id(10)), false),
    );
    h.expect_nothing(publisher);
    assert!(h.is_closed(publisher), "a new message is refused as before");
}

#[test]
fn unflushed_outboxes_count_and_are_released_when_their_connection_closes() {
    let mut h = harness();
    let sub = h.connect(V311, "sub0");
    h.subscribe(sub, "t", QoS::AtMostOnce);
    h.hold_flush(sub, true);
    let publisher = h.connect(V5, "pub");
    // QoS 0 copies written and not flushed: 107 bytes each on the wire (3.1.1).
    let mut accepted = 0;
    while h.broker.stats().publishes_refused_memory == 0 {
        let _ = publish_v5(&mut h, publisher, QoS::AtMostOnce, 0);
        accepted += 1;
        assert!(accepted < 100, "never refused");
    }
    let stats = consistent(&h);
    assert!(stats.bytes_unflushed as usize >= LIMIT, "{stats:?}");
    assert_eq!(stats.bytes_queued, 0);
    let ack = publish_v5(&mut h, publisher, QoS::AtLeastOnce, 1).expect("PUBACK");
    assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded);
    // The subscriber's connection goes: what it held is released.
    h.drop_connection(sub);
    assert_eq!(consistent(&h).memory_used, 0);
    let ack = publish_v5(&mut h, publisher, QoS::AtLeastOnce, 2).expect("PUBACK");
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

#[test]
fn an_ended_session_releases_its_queue_and_shared_copies_move_with_their_count() {
    let mut h = harness();
    let stuck = h.connect(V311, "stuck");
    h.subscribe(stuck, "$share/g/t", QoS::AtLeastOnce);
    let other = h.connect(V311, "other");
    h.subscribe(other, "$share/g/t", QoS::AtLeastOnce);
    h.hold_flush(other, true);
    let publisher = h.connect(V5, "pub");
    for n in 1..=20 {
        let ack = publish_v5(&mut h, publisher, QoS::AtLeastOnce, n).expect("PUBACK");
        assert_eq!(ack.reason_code, ReasonCode::Success);
    }
    let before = consistent(&h);
    assert_eq!(before.bytes_queued, (16 * WEIGHT) as u64, "8 queued each");
    // The stuck member goes (clean session): its queued copies go to the other member.
    h.drop_connection(stuck);
    let after = consistent(&h);
    assert_eq!(
        after.bytes_queued,
        (16 * WEIGHT) as u64,
        "moved, counted once"
    );
    // The other one goes too: nothing is held any more.
    h.drop_connection(other);
    assert_eq!(consistent(&h).memory_used, 0);
}

#[test]
fn queues_restored_from_a_store_count_against_the_limit() {
    use std::sync::Arc;
    use std::time::SystemTime;

    use mqtt_broker_core::persist::{
        DeliveryState, RecoveredDelivery, RecoveredSession, RecoveredState, SessionRecord,
        StoredDelivery,
    };

    let mut h = harness();
    let message = app_message("t", &PAYLOAD, QoS::AtLeastOnce, false, h.now);
    let messages = (1..=40)
        .map(|number| RecoveredDelivery {
            number,
            delivery: StoredDelivery {
                message: Arc::new(message.clone()),
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: Vec::new(),
                share: None,
                state: DeliveryState::Queued,
            },
            received: SystemTime::UNIX_EPOCH,
        })
        .collect();
    let state = RecoveredState {
        retained: Vec::new(),
        sessions: vec![RecoveredSession {
            client_id: "kept".to_owned(),
            record: SessionRecord::new(V311, u32::MAX),
            disconnected: None,
            messages,
            incoming_qos2: Vec::new(),
        }],
    };
    h.broker.restore(state, h.now, SystemTime::UNIX_EPOCH);
    // 40 restored copies: at the limit before anybody published.
    assert_eq!(consistent(&h).bytes_queued, (40 * WEIGHT) as u64);
    let publisher = h.connect(V5, "pub");
    let ack = publish_v5(&mut h, publisher, QoS::AtLeastOnce, 1).expect("PUBACK");
    assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded);
}
