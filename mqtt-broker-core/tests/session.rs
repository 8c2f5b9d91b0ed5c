//! Chapter 4.1 (session state) and 4.4 (redelivery): offline queues and their bounds,
//! resending with DUP on resumption, v5 session expiry, and the store's session records.

mod common;

use std::time::Duration;

use common::*;
use mqtt_broker_core::persist::{Persistence, RecoveredSession, RecoveredState, SessionRecord};
use mqtt_broker_core::{Broker, Config, DropReason, Event};
use mqtt_wire::{
    Ack, Disconnect, Packet, Properties, PropertyValues, ProtocolVersion, PublishQos, QoS,
    ReasonCode, SubscriptionOptions,
};

/// Connects `id` with a persistent session (CleanSession=0 / expiry 600 s).
fn persistent(h: &mut Harness, version: ProtocolVersion, id: &str) -> (TestClient, bool) {
    let c = h.open(version);
    let mut connect = connect_packet(version, id);
    connect.clean_start = false;
    if version == V5 {
        connect.properties.session_expiry_interval = Some(600);
    }
    let ack = h.connect_with(c, connect);
    assert_eq!(ack.reason_code, ReasonCode::Success);
    (c, ack.session_present)
}

#[test]
fn mqtt311_3_1_2_5_offline_qos1_and_qos2_are_queued_qos0_is_not() {
    let modes = [Persistence::Off, Persistence::Sync];
    for (version, mode) in [V311, V5].into_iter().flat_map(|v| modes.map(|m| (v, m))) {
        let mut h = Harness::with_config(config(|c| c.persistence = mode));
        let (sub, _) = persistent(&mut h, version, "s");
        h.subscribe(sub, "t", QoS::ExactlyOnce);
        h.disconnect(sub, ReasonCode::Success);
        let p = h.connect(version, "p");
        h.publish(p, "t", b"0", QoS::AtMostOnce, false);
        h.publish(p, "t", b"1", QoS::AtLeastOnce, false);
        h.publish(p, "t", b"2", QoS::ExactlyOnce, false);
        let (sub, present) = persistent(&mut h, version, "s");
        assert!(present);
        let got = h.receive_and_ack(sub);
        let payloads: Vec<&[u8]> = got.iter().map(|p| p.payload()).collect();
        assert_eq!(
            payloads,
            [b"1".as_ref(), b"2".as_ref()],
            "{version:?} {mode:?}"
        );
        // Queued while offline, never sent before: a first attempt, DUP 0 [MQTT-3.3.1-1].
        assert!(got.iter().all(|p| !p.dup), "{version:?} {mode:?}: {got:?}");
    }
}

#[test]
fn queue_qos0_messages_keeps_qos0_for_offline_sessions_in_order() {
    let modes = [Persistence::Off, Persistence::Sync];
    for (version, mode) in [V311, V5].into_iter().flat_map(|v| modes.map(|m| (v, m))) {
        let mut h = Harness::with_config(config(|c| {
            c.persistence = mode;
            c.queue_qos0_messages = true;
            c.max_queued_messages = 3;
        }));
        let (sub, _) = persistent(&mut h, version, "s");
        h.subscribe(sub, "t", QoS::ExactlyOnce);
        h.disconnect(sub, ReasonCode::Success);
        let p = h.connect(version, "p");
        h.publish(p, "t", b"0", QoS::AtMostOnce, false);
        h.publish(p, "t", b"1", QoS::AtLeastOnce, false);
        h.publish(p, "t", b"2", QoS::AtMostOnce, false);
        // Beyond max_queued_messages: dropped and counted like a QoS 1/2 message.
        h.publish(p, "t", b"3", QoS::AtMostOnce, false);
        assert_eq!(h.drops(DropReason::QueueFull), 1, "{version:?} {mode:?}");
        let (sub, present) = persistent(&mut h, version, "s");
        assert!(present);
        let got = h.receive_and_ack(sub);
        let sent: Vec<(&[u8], PublishQos)> = got.iter().map(|p| (p.payload(), p.qos)).collect();
        // In publication order; QoS 0 without a packet identifier [MQTT-2.2.1-2] and DUP 0
        // [MQTT-3.3.1-2].
        assert!(
            matches!(
                sent[..],
                [
                    (b"0", PublishQos::AtMostOnce),
                    (b"1", PublishQos::AtLeastOnce(_)),
                    (b"2", PublishQos::AtMostOnce),
                ]
            ),
            "{version:?} {mode:?}: {sent:?}"
        );
        assert!(got.iter().all(|p| !p.dup), "{version:?} {mode:?}: {got:?}");
        // Sent once: nothing comes again on the next resumption.
        h.disconnect(sub, ReasonCode::Success);
        let (sub, _) = persistent(&mut h, version, "s");
        h.expect_nothing(sub);
    }
}

#[test]
fn mqtt_4_4_0_1_unacknowledged_publish_resent_with_dup_and_same_id() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let (sub, _) = persistent(&mut h, version, "s");
        h.subscribe(sub, "t", QoS::AtLeastOnce);
        let p = h.connect(version, "p");
        h.publish(p, "t", b"a", QoS::AtLeastOnce, false);
        h.publish(p, "t", b"b", QoS::AtLeastOnce, false);
        let first = h.publishes(sub);
        assert_eq!(first.len(), 2);
        h.drop_connection(sub);
        let (sub, present) = persistent(&mut h, version, "s");
        assert!(present);
        let again = h.publishes(sub);
        assert_eq!(again.len(), 2, "[MQTT-4.6.0-1] in the original order");
        for (old, new) in first.iter().zip(&again) {
            assert_eq!(old.qos.packet_id(), new.qos.packet_id());
            assert_eq!(old.payload(), new.payload());
            assert!(new.dup, "[MQTT-3.3.1-1]");
        }
    }
}

#[test]
fn mqtt_4_4_0_1_pubrel_resent_on_resumption() {
    let mut h = Harness::new();
    let (sub, _) = persistent(&mut h, V311, "s");
    h.subscribe(sub, "t", QoS::ExactlyOnce);
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"x", QoS::ExactlyOnce, false);
    let pid = h.publishes(sub)[0].qos.packet_id().unwrap();
    h.send(sub, Packet::PubRec(Ack::new(pid)));
    assert!(matches!(h.expect(sub), Packet::PubRel(_)));
    h.drop_connection(sub);
    let (sub, _) = persistent(&mut h, V311, "s");
    match h.expect(sub) {
        Packet::PubRel(ack) => assert_eq!(ack.packet_id, pid),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    // The broker as a QoS 2 sender: PUBLISH until PUBREC, then PUBREL until PUBCOMP
    // [MQTT-4.3.3-1].
    h.expect_nothing(sub); // [MQTT5-4.3.3-6] the PUBLISH is not sent again
    h.send(sub, Packet::PubComp(Ack::new(pid)));
}

#[test]
fn mqtt5_4_3_3_10_inbound_qos2_state_survives_reconnection() {
    let mut h = Harness::new();
    let watcher = h.connect(V311, "w");
    h.subscribe(watcher, "t", QoS::AtMostOnce);
    let (p, _) = persistent(&mut h, V311, "p");
    h.send(
        p,
        Packet::Publish(publish_packet(
            "t",
            b"x",
            PublishQos::ExactlyOnce(id(4)),
            false,
        )),
    );
    assert!(matches!(h.expect(p), Packet::PubRec(_)));
    h.drop_connection(p);
    let (p, _) = persistent(&mut h, V311, "p");
    let mut dup = publish_packet("t", b"x", PublishQos::ExactlyOnce(id(4)), false);
    dup.dup = true;
    h.send(p, Packet::Publish(dup));
    assert!(matches!(h.expect(p), Packet::PubRec(_)));
    h.send(p, Packet::PubRel(Ack::new(id(4))));
    assert!(matches!(h.expect(p), Packet::PubComp(_)));
    assert_eq!(
        h.publishes(watcher).len(),
        1,
        "exactly once across the reconnection"
    );
}

#[test]
fn offline_queue_is_bounded_and_drops_are_counted() {
    let mut h = Harness::with_config(config(|c| c.max_queued_messages = 3));
    let (sub, _) = persistent(&mut h, V311, "s");
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    h.disconnect(sub, ReasonCode::Success);
    let p = h.connect(V311, "p");
    for _ in 0..5 {
        h.publish(p, "t", b"x", QoS::AtLeastOnce, false);
    }
    assert_eq!(h.broker.stats().messages_dropped, 2);
    let drops = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::MessageDropped { reason: DropReason::QueueFull, client_id } if &**client_id == "s"))
        .count();
    assert_eq!(drops, 2);
    let (sub, _) = persistent(&mut h, V311, "s");
    assert_eq!(h.receive_and_ack(sub).len(), 3);
}

#[test]
fn offline_queue_is_bounded_in_bytes() {
    let mut h = Harness::with_config(config(|c| c.max_queued_bytes = 25));
    let (sub, _) = persistent(&mut h, V5, "s");
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    h.disconnect(sub, ReasonCode::Success);
    let p = h.connect(V5, "p");
    for _ in 0..4 {
        h.publish(p, "t", b"123456789", QoS::AtLeastOnce, false); // 10 bytes with the topic
    }
    let (sub, _) = persistent(&mut h, V5, "s");
    assert_eq!(h.receive_and_ack(sub).len(), 2);
}

#[test]
fn mqtt311_3_1_2_6_clean_session_state_is_not_kept() {
    let mut h = Harness::new();
    let sub = h.connect(V311, "s");
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    h.disconnect(sub, ReasonCode::Success);
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"x", QoS::AtLeastOnce, false);
    let (sub, present) = persistent(&mut h, V311, "s");
    assert!(!present);
    assert!(h.publishes(sub).is_empty());
}

#[test]
fn mqtt5_4_1_0_2_session_discarded_after_expiry() {
    let mut h = Harness::new();
    let (sub, _) = persistent(&mut h, V5, "s");
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    h.drop_connection(sub);
    h.advance(Duration::from_secs(599));
    assert_eq!(h.broker.stats().clients_disconnected, 1);
    h.advance(Duration::from_secs(1));
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::SessionEnded { client_id } if &**client_id == "s"))
    );
    assert_eq!(h.broker.stats().subscriptions, 0);
    let (_, present) = persistent(&mut h, V5, "s");
    assert!(!present);
}

#[test]
fn mqtt5_disconnect_can_shorten_the_session_expiry() {
    let mut h = Harness::new();
    let (sub, _) = persistent(&mut h, V5, "s");
    h.send(
        sub,
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::Success,
            properties: Properties::from(PropertyValues {
                session_expiry_interval: Some(0),
                ..PropertyValues::default()
            }),
        }),
    );
    let (_, present) = persistent(&mut h, V5, "s");
    assert!(!present, "expiry 0 at DISCONNECT ends the session at once");
}

#[test]
fn mqtt5_3_1_2_23_session_kept_while_expiry_runs() {
    let mut h = Harness::new();
    let (sub, _) = persistent(&mut h, V5, "s");
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..SubscriptionOptions::default()
    };
    h.subscribe_with(sub, "t", options, Properties::default());
    h.drop_connection(sub);
    h.advance(Duration::from_secs(300));
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"x", QoS::AtLeastOnce, false);
    let (sub, present) = persistent(&mut h, V5, "s");
    assert!(present);
    assert_eq!(
        h.receive_and_ack(sub).len(),
        1,
        "subscription kept with the session"
    );
}

#[test]
fn store_records_persistent_sessions_and_restores_them() {
    let mut h = Harness::new();
    let (sub, _) = persistent(&mut h, V5, "s");
    h.subscribe(sub, "a/+", QoS::AtLeastOnce);
    h.disconnect(sub, ReasonCode::Success);
    // The session as a durable store hands it back after a restart.
    let mut record = SessionRecord::new(V5, 600);
    record.subscriptions.push((
        "a/+".to_owned(),
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..SubscriptionOptions::default()
        },
        None,
    ));
    let state = RecoveredState {
        retained: Vec::new(),
        sessions: vec![RecoveredSession {
            client_id: "s".to_owned(),
            record,
            disconnected: None,
            messages: Vec::new(),
            incoming_qos2: Vec::new(),
        }],
    };
    let mut h = Harness::new();
    h.broker
        .restore(state, h.now, std::time::SystemTime::UNIX_EPOCH);
    let p = h.connect(V5, "p");
    h.publish(p, "a/b", b"x", QoS::AtLeastOnce, false);
    let (sub, present) = persistent(&mut h, V5, "s");
    assert!(present, "restored session");
    assert_eq!(h.receive_and_ack(sub).len(), 1);
}

#[test]
fn mqtt5_4_4_0_2_error_pubrec_is_never_retransmitted() {
    let mut h = Harness::new();
    let (sub, _) = persistent(&mut h, V5, "s");
    h.subscribe(sub, "t", QoS::ExactlyOnce);
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"x", QoS::ExactlyOnce, false);
    let pid = h.publishes(sub)[0].qos.packet_id().unwrap();
    let rec = Ack {
        reason_code: ReasonCode::UnspecifiedError,
        ..Ack::new(pid)
    };
    h.send(sub, Packet::PubRec(rec));
    h.expect_nothing(sub); // no PUBREL after an error PUBREC
    h.drop_connection(sub);
    let (sub, present) = persistent(&mut h, V5, "s");
    assert!(present);
    h.expect_nothing(sub);
}

#[test]
fn mqtt_3_1_2_10_will_is_removed_once_published() {
    let mut h = Harness::new();
    let watcher = h.connect(V311, "w");
    h.subscribe(watcher, "will", QoS::AtMostOnce);
    let c = h.open(V311);
    let mut connect = connect_packet(V311, "c");
    connect.clean_start = false;
    connect.will = Some(will("will", b"x", QoS::AtMostOnce, false));
    h.connect_with(c, connect.clone());
    h.drop_connection(c);
    assert_eq!(h.publishes(watcher).len(), 1);
    connect.will = None;
    let c = h.open(V311);
    assert!(h.connect_with(c, connect).session_present);
    h.drop_connection(c);
    assert!(
        h.publishes(watcher).is_empty(),
        "the old will is not stored with the session any more"
    );
}

#[test]
fn a_zero_queue_still_delivers_to_connected_clients() {
    let mut h = Harness::with_config(config(|c| c.max_queued_messages = 0));
    let (sub, _) = persistent(&mut h, V5, "s");
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"online", QoS::AtLeastOnce, false);
    assert_eq!(
        h.receive_and_ack(sub).len(),
        1,
        "an open window needs no queue"
    );
    h.disconnect(sub, ReasonCode::Success);
    h.publish(p, "t", b"offline", QoS::AtLeastOnce, false);
    assert_eq!(h.broker.stats().messages_dropped, 1);
    let (sub, _) = persistent(&mut h, V5, "s");
    assert!(h.publishes(sub).is_empty());
}

#[test]
fn session_count_is_bounded() {
    for (version, raw) in [(V311, 0x03u8), (V5, 0x97u8)] {
        let mut h = Harness::with_config(config(|c| c.max_sessions = 2));
        let (a, _) = persistent(&mut h, version, "a");
        h.disconnect(a, ReasonCode::Success);
        let _b = h.connect(version, "b");
        let c = h.open(version);
        let ack = h.connect_with(c, connect_packet(version, "c"));
        assert!(ack.reason_code.is_error());
        assert_eq!(h.raw(c)[0][0].as_ref()[3], raw);
        assert!(h.is_closed(c));
        let (_, present) = persistent(&mut h, version, "a");
        assert!(present, "an existing session can still be resumed");
    }
}

/// Refuses delivery (read access) of the topics in a list shared with the test, so the test
/// can revoke access while sessions live, as a reloaded ACL does.
struct ReadDenied(std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>);

impl mqtt_broker_core::hooks::Authorizer for ReadDenied {
    fn authorize_publish(
        &mut self,
        _: &mqtt_broker_core::hooks::ClientRef<'_>,
        _: &str,
        _: QoS,
        _: bool,
    ) -> mqtt_broker_core::hooks::Authorization {
        mqtt_broker_core::hooks::Authorization::Allow
    }
    fn authorize_subscribe(
        &mut self,
        _: &mqtt_broker_core::hooks::ClientRef<'_>,
        _: &str,
        _: QoS,
    ) -> mqtt_broker_core::hooks::Authorization {
        mqtt_broker_core::hooks::Authorization::Allow
    }
    fn authorize_delivery(
        &mut self,
        client: &mqtt_broker_core::hooks::ClientRef<'_>,
        topic: &str,
        _: QoS,
        _: bool,
    ) -> bool {
        client.client_id != "s" || !self.0.lock().is_ok_and(|denied| denied.contains(&topic))
    }
}

/// Read access is checked for every copy when it goes out: routed, retained at subscribe, and
/// queued for an offline session before the access was revoked.
#[test]
fn delivery_authorization_filters_routed_retained_and_queued_copies() {
    for version in [V311, V5] {
        let denied = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let broker =
            Broker::new(Config::default()).with_authorizer(Box::new(ReadDenied(denied.clone())));
        let mut h = Harness::with_broker(broker);
        let (sub, _) = persistent(&mut h, version, "s");
        h.subscribe(sub, "home/#", QoS::AtLeastOnce);
        h.disconnect(sub, ReasonCode::Success);
        let p = h.connect(version, "p");
        h.publish(p, "home/secret", b"queued", QoS::AtLeastOnce, true);
        h.publish(p, "home/open", b"queued", QoS::AtLeastOnce, false);
        denied.lock().unwrap().push("home/secret");
        let (sub, present) = persistent(&mut h, version, "s");
        assert!(present);
        let topics = |got: Vec<mqtt_wire::Publish>| -> Vec<String> {
            got.iter().map(|p| p.topic().to_owned()).collect()
        };
        let got = h.publishes(sub);
        assert_eq!(topics(got), ["home/open"], "queued copy of a revoked topic");
        h.publish(p, "home/secret", b"routed", QoS::AtMostOnce, false);
        h.publish(p, "home/open", b"routed", QoS::AtMostOnce, false);
        assert_eq!(topics(h.publishes(sub)), ["home/open"], "routed copies");
        h.subscribe(sub, "home/+", QoS::AtMostOnce);
        assert!(
            h.publishes(sub).is_empty(),
            "retained copy of a revoked topic"
        );
        let other = h.connect(version, "o");
        h.subscribe(other, "home/+", QoS::AtMostOnce);
        assert_eq!(
            topics(h.publishes(other)),
            ["home/secret"],
            "others still read it"
        );
    }
}

/// A client id connected with a session that ends with its connection, then taken over by a
/// connection asking to resume (mosquitto's 07-will-takeover case).
fn take_over_a_session_without_expiry(version: ProtocolVersion) -> (Harness, TestClient, bool) {
    let mut h = Harness::new();
    let first = h.connect(version, "c"); // clean start, no expiry
    h.subscribe(first, "t", QoS::AtLeastOnce);
    let (second, present) = persistent(&mut h, version, "c");
    assert!(h.is_closed(first), "taken over");
    (h, second, present)
}

#[test]
fn mqtt311_3_1_2_6_a_clean_session_taken_over_is_not_resumed() {
    let (mut h, second, present) = take_over_a_session_without_expiry(V311);
    assert!(
        !present,
        "the CleanSession=1 session ended with its connection"
    );
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"x", QoS::AtLeastOnce, false);
    assert!(
        h.publishes(second).is_empty(),
        "its subscription ended with it"
    );
}

#[test]
fn mqtt5_3_1_2_6_a_session_without_expiry_taken_over_is_not_resumed() {
    let (mut h, second, present) = take_over_a_session_without_expiry(V5);
    assert!(
        !present,
        "[MQTT5-3.1.2-23] no expiry: it ended with its connection"
    );
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"x", QoS::AtLeastOnce, false);
    assert!(h.publishes(second).is_empty());
}

#[test]
fn mqtt5_3_1_2_5_a_persistent_session_taken_over_is_resumed() {
    let mut h = Harness::new();
    let (first, _) = persistent(&mut h, V5, "c");
    h.subscribe(first, "t", QoS::AtLeastOnce);
    let (second, present) = persistent(&mut h, V5, "c");
    assert!(present);
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"x", QoS::AtLeastOnce, false);
    assert_eq!(h.receive_and_ack(second).len(), 1);
}

#[test]
fn mqtt5_4_3_3_inbound_qos2_state_survives_a_reconnect_of_a_kept_session() {
    // mosquitto's 03-publish-c2b-disconnect-qos2: PUBLISH QoS 2, PUBREC, reconnect, PUBREL.
    let mut h = Harness::new();
    let (c, _) = persistent(&mut h, V5, "c");
    h.send_publish(
        c,
        publish_packet("t", b"x", PublishQos::ExactlyOnce(id(9)), false),
    );
    assert!(matches!(h.expect(c), Packet::PubRec(_)));
    h.drop_connection(c);
    let (c, present) = persistent(&mut h, V5, "c");
    assert!(present);
    h.send(c, Packet::PubRel(Ack::new(id(9))));
    match h.expect(c) {
        Packet::PubComp(ack) => assert_eq!(
            ack.reason_code,
            ReasonCode::Success,
            "[MQTT5-4.3.3-11] the identifier is still known"
        ),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

#[test]
fn an_operator_disconnects_a_client_with_administrative_action() {
    let mut h = Harness::new();
    let subscriber = h.connect(V5, "dashboard");
    h.subscribe(subscriber, "tele/#", QoS::AtMostOnce);
    let plug = h.open(V5);
    let mut connect = connect_packet(V5, "plug");
    connect.keep_alive = 30;
    connect.username = Some(s("tasmota"));
    connect.will = Some(will("tele/plug/LWT", b"Offline", QoS::AtMostOnce, true));
    h.connect_with(plug, connect);
    // The page of clients: who, from where, with which keep alive.
    let view: Vec<(String, Option<u16>, Option<String>)> = h
        .broker
        .sessions()
        .filter(|s| s.client_id() == "plug")
        .map(|s| {
            (
                s.client_id().to_owned(),
                s.keep_alive(),
                s.username().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        view,
        [("plug".to_owned(), Some(30), Some("tasmota".to_owned()))]
    );
    let now = h.now;
    assert!(h.broker.disconnect_client("plug", now));
    h.drain();
    // [MQTT5-3.14.2-1] a reason code the server may send: 0x98 Administrative action.
    match h.expect(plug) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::AdministrativeAction),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(h.is_closed(plug));
    // Not a clean DISCONNECT from the client: its will goes out [MQTT-3.1.2-8].
    let wills = h.publishes(subscriber);
    assert_eq!(wills.len(), 1);
    assert_eq!(wills[0].topic(), "tele/plug/LWT");
    assert!(!h.broker.disconnect_client("nobody", now));
}

/// MQTT 3.1 has no Session Present flag (the byte is reserved, 0), but resumes the session all
/// the same (the simulator's oracle first took the 0 for a lost session).
#[test]
fn mqtt311_3_1_2_4_a_persistent_session_taken_over_is_resumed() {
    for version in [V311, ProtocolVersion::V3_1] {
        let mut h = Harness::new();
        let (first, _) = persistent(&mut h, version, "c");
        h.subscribe(first, "t", QoS::AtLeastOnce);
        let (second, present) = persistent(&mut h, version, "c");
        assert!(h.is_closed(first), "taken over");
        assert_eq!(
            present,
            version == V311,
            "{version:?}: the flag exists since 3.1.1"
        );
        let p = h.connect(V311, "p");
        h.publish(p, "t", b"x", QoS::AtLeastOnce, false);
        assert_eq!(h.receive_and_ack(second).len(), 1, "{version:?}");
    }
}
