//! Chapter 3.3.1 (RETAIN) and 3.8.4 (retained messages on SUBSCRIBE): storing, replacing,
//! clearing, the RETAIN flag on forwarded copies, Retain As Published and Retain Handling.

mod common;

use bytes::Bytes;
use common::*;
use mqtt_wire::{Properties, QoS, RetainHandling, SubscriptionOptions};

fn options(retain_handling: RetainHandling, retain_as_published: bool) -> SubscriptionOptions {
    SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: false,
        retain_as_published,
        retain_handling,
    }
}

#[test]
fn mqtt311_3_3_1_6_mqtt5_3_3_1_9_retained_message_goes_to_new_subscribers_with_retain_1() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let p = h.connect(version, "p");
        h.publish(p, "a/b", b"first", QoS::AtLeastOnce, true);
        h.publish(p, "a/b", b"second", QoS::AtLeastOnce, true);
        let sub = h.connect(version, "s");
        h.subscribe(sub, "a/#", QoS::AtLeastOnce);
        let got = h.publishes(sub);
        assert_eq!(got.len(), 1, "replaced, not accumulated");
        assert_eq!(got[0].payload(), Bytes::from_static(b"second"));
        assert!(got[0].retain, "[MQTT311-3.3.1-8]");
        assert_eq!(got[0].qos.qos(), QoS::AtLeastOnce);
    }
}

#[test]
fn mqtt311_3_3_1_9_forwarded_to_existing_subscribers_with_retain_0() {
    let mut h = Harness::new();
    let sub = h.connect(V311, "s");
    h.subscribe(sub, "t", QoS::AtMostOnce);
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"x", QoS::AtMostOnce, true);
    assert!(!h.publishes(sub)[0].retain);
}

#[test]
fn mqtt311_3_3_1_10_mqtt5_3_3_1_6_empty_retained_payload_clears_and_is_forwarded() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let p = h.connect(version, "p");
        h.publish(p, "t", b"x", QoS::AtMostOnce, true);
        let sub = h.connect(version, "s");
        h.subscribe(sub, "t", QoS::AtMostOnce);
        assert_eq!(h.publishes(sub).len(), 1);
        h.publish(p, "t", b"", QoS::AtMostOnce, true);
        assert_eq!(
            h.publishes(sub).len(),
            1,
            "the empty message is forwarded normally"
        );
        let late = h.connect(version, "late");
        h.subscribe(late, "t", QoS::AtMostOnce);
        assert!(
            h.publishes(late).is_empty(),
            "[MQTT5-3.3.1-6] cleared, [MQTT5-3.3.1-7] [MQTT311-3.3.1-11] not stored"
        );
        assert_eq!(h.broker.stats().retained_messages, 0);
    }
}

#[test]
fn mqtt311_3_3_1_12_mqtt5_3_3_1_8_non_retained_publish_leaves_retained_message_alone() {
    let mut h = Harness::new();
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"kept", QoS::AtMostOnce, true);
    h.publish(p, "t", b"", QoS::AtMostOnce, false); // an empty non-retained publish must not clear
    h.publish(p, "t", b"other", QoS::AtMostOnce, false);
    let sub = h.connect(V311, "s");
    h.subscribe(sub, "t", QoS::AtMostOnce);
    let got = h.publishes(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload(), Bytes::from_static(b"kept"));
}

#[test]
fn mqtt311_3_3_1_7_retained_qos0_replaces_retained_qos1() {
    let mut h = Harness::new();
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"one", QoS::AtLeastOnce, true);
    h.publish(p, "t", b"zero", QoS::AtMostOnce, true);
    let sub = h.connect(V311, "s");
    h.subscribe(sub, "t", QoS::ExactlyOnce);
    let got = h.publishes(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload(), Bytes::from_static(b"zero"));
    assert_eq!(got[0].qos.qos(), QoS::AtMostOnce, "stored with its own QoS");
}

#[test]
fn mqtt311_3_8_4_3_resubscribing_resends_retained() {
    let mut h = Harness::new();
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"x", QoS::AtMostOnce, true);
    let sub = h.connect(V311, "s");
    h.subscribe(sub, "t", QoS::AtMostOnce);
    h.subscribe(sub, "t", QoS::AtMostOnce);
    assert_eq!(h.publishes(sub).len(), 2);
}

#[test]
fn mqtt5_3_3_1_9_to_11_retain_handling() {
    let mut h = Harness::new();
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"x", QoS::AtMostOnce, true);
    let sub = h.connect(V5, "s");
    let none = Properties::default();
    h.subscribe_with(
        sub,
        "t",
        options(RetainHandling::SendAtSubscribe, false),
        none.clone(),
    );
    assert_eq!(h.publishes(sub).len(), 1, "[MQTT5-3.3.1-9]");
    h.subscribe_with(
        sub,
        "t",
        options(RetainHandling::SendAtSubscribe, false),
        none.clone(),
    );
    assert_eq!(
        h.publishes(sub).len(),
        1,
        "[MQTT5-3.8.4-4] sent again on replacement"
    );
    h.subscribe_with(
        sub,
        "t",
        options(RetainHandling::SendIfNew, false),
        none.clone(),
    );
    assert!(h.publishes(sub).is_empty(), "[MQTT5-3.3.1-10] not new");
    h.subscribe_with(
        sub,
        "+",
        options(RetainHandling::SendIfNew, false),
        none.clone(),
    );
    assert_eq!(h.publishes(sub).len(), 1, "[MQTT5-3.3.1-10] new");
    h.subscribe_with(sub, "#", options(RetainHandling::DoNotSend, false), none);
    assert!(h.publishes(sub).is_empty(), "[MQTT5-3.3.1-11]");
}

#[test]
fn mqtt5_3_3_1_12_and_13_retain_as_published() {
    let mut h = Harness::new();
    let keep = h.connect(V5, "keep");
    h.subscribe_with(
        keep,
        "t",
        options(RetainHandling::DoNotSend, true),
        Properties::default(),
    );
    let clear = h.connect(V5, "clear");
    h.subscribe_with(
        clear,
        "t",
        options(RetainHandling::DoNotSend, false),
        Properties::default(),
    );
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"x", QoS::AtMostOnce, true);
    assert!(h.publishes(keep)[0].retain, "[MQTT5-3.3.1-13]");
    assert!(!h.publishes(clear)[0].retain, "[MQTT5-3.3.1-12]");
}

#[test]
fn mqtt311_3_1_2_7_retained_messages_outlive_sessions() {
    let mut h = Harness::new();
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"x", QoS::AtMostOnce, true);
    h.disconnect(p, mqtt_wire::ReasonCode::Success);
    let sub = h.connect(V311, "s");
    h.subscribe(sub, "t", QoS::AtMostOnce);
    assert_eq!(h.publishes(sub).len(), 1);
}

#[test]
fn mqtt5_retain_unavailable_refuses_retained_publish() {
    // A client told Retain Available 0 sends no retained PUBLISH [MQTT5-3.2.2-14]; one that
    // does is disconnected with 0x9A.
    let mut h = Harness::with_config(config(|c| c.retain_available = false));
    let c = h.open(V5);
    let ack = h.connect_with(c, connect_packet(V5, "p"));
    assert_eq!(ack.properties.retain_available, Some(0));
    h.send(
        c,
        mqtt_wire::Packet::Publish(publish_packet(
            "t",
            b"x",
            mqtt_wire::PublishQos::AtMostOnce,
            true,
        )),
    );
    match h.expect(c) {
        mqtt_wire::Packet::Disconnect(d) => {
            assert_eq!(d.reason_code, mqtt_wire::ReasonCode::RetainNotSupported)
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn retained_store_is_bounded_in_messages_and_bytes() {
    for version in [V311, V5] {
        let mut h = Harness::with_config(config(|c| {
            c.max_retained_messages = 2;
            c.max_retained_bytes = 64;
        }));
        let p = h.connect(version, "p");
        h.publish(p, "a", b"1", QoS::AtMostOnce, true);
        h.publish(p, "b", b"2", QoS::AtMostOnce, true);
        h.publish(p, "a", b"replaced", QoS::AtMostOnce, true); // a replacement always fits
        h.send(
            p,
            mqtt_wire::Packet::Publish(publish_packet(
                "c",
                b"3",
                mqtt_wire::PublishQos::AtLeastOnce(id(1)),
                true,
            )),
        );
        match h.expect(p) {
            mqtt_wire::Packet::PubAck(ack) if version == V5 => {
                assert_eq!(ack.reason_code, mqtt_wire::ReasonCode::QuotaExceeded)
            }
            mqtt_wire::Packet::PubAck(_) => {}
            other => panic!("expected PUBACK, got {other:?}"),
        }
        h.publish(p, "b", &[0u8; 100], QoS::AtMostOnce, true); // over the byte bound
        let stats = h.broker.stats();
        assert_eq!(stats.retained_messages, 2);
        assert_eq!(stats.retained_refused, 2);
        let sub = h.connect(version, "s");
        h.subscribe(sub, "#", QoS::AtMostOnce);
        let mut got: Vec<Bytes> = h
            .publishes(sub)
            .into_iter()
            .map(|p| p.into_payload())
            .collect();
        got.sort();
        assert_eq!(
            got,
            [Bytes::from_static(b"2"), Bytes::from_static(b"replaced")]
        );
    }
}
