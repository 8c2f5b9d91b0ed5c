//! MQTT 5.0 on the wire: UNSUBSCRIBE and its UNSUBACK, fixed-header flags and UTF-8 of
//! SUBSCRIBE and UNSUBSCRIBE, PINGREQ, DISCONNECT with a will, topic names and filters
//! (U+0000, no normalization), client identifiers, and the first packet of a connection.

mod common;

use common::*;
use mqtt_wire::{Ack, Packet, PublishQos, QoS, ReasonCode, Unsubscribe};

fn unsubscribe(
    h: &mut Harness,
    c: TestClient,
    packet_id: u16,
    filters: &[&str],
) -> Vec<ReasonCode> {
    h.send(
        c,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: id(packet_id),
            filters: filters.iter().map(|f| s(f)).collect(),
            properties: Default::default(),
        }),
    );
    match h.take(c, |p| matches!(p, Packet::UnsubAck(_))) {
        Packet::UnsubAck(ack) => {
            assert_eq!(ack.packet_id, id(packet_id), "[MQTT5-3.10.4-5]");
            ack.reason_codes
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

#[test]
fn mqtt5_3_10_4_1_unsubscribe_removes_exact_matches_only() {
    let mut h = Harness::new();
    let sub = h.connect(V5, "sub");
    h.subscribe(sub, "a/+", QoS::AtLeastOnce);
    h.subscribe(sub, "a/b", QoS::AtLeastOnce);
    // Filters compared character by character, exact matches removed [MQTT5-3.10.4-1]; one
    // UNSUBACK for several filters, a code each in order [MQTT5-3.10.4-6], sent even where
    // nothing was removed [MQTT5-3.10.4-4] [MQTT5-3.10.4-5].
    let codes = unsubscribe(&mut h, sub, 9, &["a/+", "A/+", "a/#"]);
    assert_eq!(
        codes,
        [
            ReasonCode::Success,
            ReasonCode::NoSubscriptionExisted,
            ReasonCode::NoSubscriptionExisted
        ]
    );
    // No new message is routed through the removed filter [MQTT5-3.10.4-2]: "a/b" arrives
    // once, through "a/b"; "a/c" not at all.
    let publisher = h.connect(V5, "pub");
    h.publish(publisher, "a/b", b"1", QoS::AtLeastOnce, false);
    h.publish(publisher, "a/c", b"2", QoS::AtLeastOnce, false);
    let got = h.receive_and_ack(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic(), "a/b");
}

#[test]
fn mqtt5_3_10_4_3_deliveries_in_flight_complete_after_unsubscribe() {
    let mut h = Harness::new();
    let sub = h.connect(V5, "sub");
    h.subscribe(sub, "q1", QoS::AtLeastOnce);
    h.subscribe(sub, "q2", QoS::ExactlyOnce);
    let publisher = h.connect(V5, "pub");
    h.publish(publisher, "q1", b"1", QoS::AtLeastOnce, false);
    h.publish(publisher, "q2", b"2", QoS::ExactlyOnce, false);
    let got = h.publishes(sub);
    assert_eq!(got.len(), 2);
    assert_eq!(
        unsubscribe(&mut h, sub, 3, &["q1", "q2"]),
        [ReasonCode::Success, ReasonCode::Success]
    );
    // The QoS 1 and QoS 2 deliveries under way finish [MQTT5-3.10.4-3].
    for p in &got {
        match p.qos {
            PublishQos::AtLeastOnce(pid) => h.send(sub, Packet::PubAck(Ack::new(pid))),
            PublishQos::ExactlyOnce(pid) => {
                h.send(sub, Packet::PubRec(Ack::new(pid)));
                match h.expect(sub) {
                    Packet::PubRel(ack) => assert_eq!(ack.packet_id, pid),
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                h.send(sub, Packet::PubComp(Ack::new(pid)));
            }
            PublishQos::AtMostOnce => panic!("QoS 1 or 2 expected"),
        }
    }
    h.expect_nothing(sub);
    assert!(!h.is_closed(sub));
}

#[test]
fn mqtt5_3_8_1_1_fixed_header_flags_and_utf8_of_subscribe_and_unsubscribe() {
    // SUBSCRIBE and UNSUBSCRIBE carry flags 0010 [MQTT5-3.8.1-1] [MQTT5-3.10.1-1]; their filters
    // are UTF-8 [MQTT5-3.8.3-1] [MQTT5-3.10.3-1]. Either broken closes the connection.
    let cases: [(&str, &[u8]); 4] = [
        (
            "SUBSCRIBE flags 0000",
            &[0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x00][..],
        ),
        (
            "UNSUBSCRIBE flags 0000",
            &[0xa0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a'][..],
        ),
        (
            "SUBSCRIBE filter 0xC3",
            &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0xc3, 0x00][..],
        ),
        (
            "UNSUBSCRIBE filter 0x80",
            &[0xa2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x80][..],
        ),
    ];
    for (what, bytes) in cases {
        let mut h = Harness::new();
        let c = h.connect(V5, "c");
        h.send_raw(c, bytes);
        assert!(h.is_closed(c), "{what}");
    }
    // The same packets well formed are taken (so the cases above fail for what they show).
    let mut h = Harness::new();
    let c = h.connect(V5, "c");
    h.send_raw(c, &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x00]);
    h.send_raw(c, &[0xa2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a']);
    assert!(!h.is_closed(c), "well formed");
    assert!(matches!(h.expect(c), Packet::SubAck(_)));
    assert!(matches!(h.expect(c), Packet::UnsubAck(_)));
}

#[test]
fn mqtt5_3_12_4_1_pingreq_gets_pingresp() {
    let mut h = Harness::new();
    let c = h.connect(V5, "c");
    h.send(c, Packet::PingReq);
    assert_eq!(h.expect(c), Packet::PingResp); // [MQTT5-3.12.4-1]
}

#[test]
fn mqtt5_3_14_4_3_a_normal_disconnect_discards_the_will() {
    let mut h = Harness::new();
    let watcher = h.connect(V5, "w");
    h.subscribe(watcher, "will/#", QoS::AtMostOnce);
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "d");
    connect.will = Some(will("will/d", b"gone", QoS::AtMostOnce, false));
    h.connect_with(c, connect);
    // DISCONNECT 0x00: the will is discarded, not published [MQTT5-3.14.4-3].
    h.disconnect(c, ReasonCode::Success);
    assert!(h.is_closed(c));
    h.drop_connection(c);
    assert!(h.publishes(watcher).is_empty());
    // A QoS 0 delivery carries QoS 0 and DUP 0 [MQTT5-4.3.1-1].
    let p = h.connect(V5, "p");
    h.publish(p, "will/x", b"q0", QoS::AtMostOnce, false);
    let got = h.publishes(watcher);
    assert_eq!(got.len(), 1);
    assert!(got[0].qos == PublishQos::AtMostOnce && !got[0].dup);
}

#[test]
fn mqtt5_4_7_3_2_no_nul_and_no_normalization_in_topics() {
    let mut h = Harness::new();
    // U+0000 in a topic name or a filter closes the connection [MQTT5-4.7.3-2].
    let c = h.connect(V5, "nul-topic");
    h.send_raw(c, &[0x30, 0x07, 0x00, 0x03, b'a', 0x00, b'b', 0x00, b'x']);
    assert!(h.is_closed(c), "topic name");
    let c = h.connect(V5, "nul-filter");
    h.send_raw(
        c,
        &[
            0x82, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03, b'a', 0x00, b'b', 0x00,
        ],
    );
    assert!(h.is_closed(c), "topic filter");
    // Matching compares the encoded characters, with no normalization [MQTT5-4.7.3-4]:
    // "café" precomposed does not match "cafe" + combining acute.
    let sub = h.connect(V5, "sub");
    h.subscribe(sub, "caf\u{e9}", QoS::AtMostOnce);
    let p = h.connect(V5, "pub");
    h.publish(p, "cafe\u{301}", b"decomposed", QoS::AtMostOnce, false);
    h.publish(p, "caf\u{e9}", b"precomposed", QoS::AtMostOnce, false);
    let got = h.publishes(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload(), b"precomposed");
}

#[test]
fn mqtt5_3_1_3_5_client_identifiers_and_the_first_packet() {
    let mut h = Harness::new();
    // Alphanumeric identifiers of 1 to 23 bytes are accepted [MQTT5-3.1.3-5].
    for name in ["a", "abcdefghijklmnopqrstuvw", "0123456789ABCDEFGHIJKLM"] {
        let c = h.open(V5);
        let ack = h.connect_with(c, connect_packet(V5, name));
        assert_eq!(ack.reason_code, ReasonCode::Success, "{name}");
    }
    // An empty one gets an identifier assigned and returned in the CONNACK, and used as if the
    // client had sent it [MQTT5-3.1.3-7].
    let c = h.open(V5);
    let ack = h.connect_with(c, connect_packet(V5, ""));
    let assigned = ack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("an assigned identifier");
    assert!(h.broker.sessions().any(|s| s.client_id() == &*assigned));
    // Anything but CONNECT first closes the connection [MQTT5-3.1.0-1].
    let c = h.open(V5);
    h.send(c, Packet::PingReq);
    assert!(h.is_closed(c));
    // A protocol name other than "MQTT": refused (CONNACK 0x84 allowed), closed [MQTT5-3.1.2-1].
    let c = h.open(V5);
    h.send_raw(
        c,
        &[
            0x10, 0x0e, 0x00, 0x04, b'M', b'Q', b'T', b'X', 5, 0x02, 0, 60, 0, 0, 0x01, b'c',
        ],
    );
    assert!(h.is_closed(c));
}
