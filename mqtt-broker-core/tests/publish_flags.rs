//! The DUP and RETAIN flags and the topic of a PUBLISH as the broker sends and takes them, in
//! 3.1.1 and 5.0, and the fixed-header flags of PUBREL.

mod common;

use common::*;
use mqtt_wire::{Ack, Packet, PublishQos, QoS};

/// A persistent session for `name` (3.1.1: CleanSession 0; 5.0: no clean start and an expiry).
fn persistent(h: &mut Harness, version: mqtt_wire::ProtocolVersion, name: &str) -> TestClient {
    let c = h.open(version);
    let mut connect = connect_packet(version, name);
    connect.clean_start = false;
    if version == V5 {
        connect.properties.session_expiry_interval = Some(600);
    }
    let ack = h.connect_with(c, connect);
    assert_eq!(ack.reason_code, mqtt_wire::ReasonCode::Success);
    c
}

#[test]
fn dup_marks_a_redelivery_and_nothing_else() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let sub = persistent(&mut h, version, "sub");
        h.subscribe(sub, "t", QoS::AtLeastOnce);
        let publisher = h.connect(version, "pub");
        // The publisher's own DUP says nothing of the broker's copy: sent for the first time, it
        // goes out with DUP 0 [MQTT-3.3.1-3] [MQTT5-3.3.1-3].
        let mut resent = publish_packet("t", b"one", PublishQos::AtLeastOnce(id(3)), false);
        resent.dup = true;
        h.send_publish(publisher, resent);
        assert!(matches!(h.expect(publisher), Packet::PubAck(_)));
        let first = h.publishes(sub);
        assert_eq!(first.len(), 1);
        assert!(!first[0].dup, "{version:?}: a first delivery");
        // Not acknowledged, the connection lost: on the resumed session the same message goes
        // out again with DUP 1 [MQTT-3.3.1-1] [MQTT5-3.3.1-1] and its packet identifier.
        h.drop_connection(sub);
        let sub = persistent(&mut h, version, "sub");
        let again = h.publishes(sub);
        assert_eq!(again.len(), 1, "{version:?}");
        assert!(again[0].dup, "{version:?}: a redelivery");
        assert_eq!(again[0].qos, first[0].qos);
        // QoS 0 copies never carry DUP [MQTT-3.3.1-2] [MQTT5-3.3.1-2].
        h.subscribe(sub, "q0", QoS::AtMostOnce);
        h.publish(publisher, "q0", b"zero", QoS::AtLeastOnce, false);
        let zero: Vec<_> = h
            .publishes(sub)
            .into_iter()
            .filter(|p| p.topic() == "q0")
            .collect();
        assert_eq!(zero.len(), 1);
        assert!(!zero[0].dup && zero[0].qos == PublishQos::AtMostOnce);
    }
}

#[test]
fn a_publish_without_retain_leaves_the_retained_message_alone() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let publisher = h.connect(version, "pub");
        h.publish(publisher, "tele/dev/LWT", b"Online", QoS::AtLeastOnce, true);
        // RETAIN 0: delivered to current subscribers, neither stored nor replacing the
        // retained message [MQTT-3.3.1-12] [MQTT5-3.3.1-8].
        h.publish(
            publisher,
            "tele/dev/LWT",
            b"transient",
            QoS::AtLeastOnce,
            false,
        );
        let late = h.connect(version, "late");
        h.subscribe(late, "tele/#", QoS::AtLeastOnce);
        let got = h.publishes(late);
        assert_eq!(got.len(), 1, "{version:?}");
        assert_eq!(got[0].payload(), b"Online");
        assert!(got[0].retain);
    }
}

#[test]
fn topics_go_out_as_the_subscription_matched_and_never_hold_wildcards() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let sub = h.connect(version, "sub");
        h.subscribe(sub, "stat/+/POWER", QoS::AtMostOnce);
        let publisher = h.connect(version, "pub");
        for topic in ["stat/a/POWER", "stat/b/RESULT", "stat/c/POWER"] {
            h.publish(publisher, topic, b"ON", QoS::AtMostOnce, false);
        }
        // The topic names a subscriber gets match its filter, as published
        // [MQTT-3.3.2-3] [MQTT5-3.3.2-3].
        let topics: Vec<String> = h
            .publishes(sub)
            .iter()
            .map(|p| p.topic().to_owned())
            .collect();
        assert_eq!(topics, ["stat/a/POWER", "stat/c/POWER"], "{version:?}");
        // A topic name with a wildcard is refused: the connection closes
        // [MQTT-3.3.2-2] [MQTT5-3.3.2-2].
        for topic in ["stat/+/POWER", "stat/#"] {
            let c = h.connect(version, "wild");
            h.send_publish(
                c,
                publish_packet(topic, b"x", PublishQos::AtMostOnce, false),
            );
            assert!(h.is_closed(c), "{version:?}: {topic}");
        }
    }
}

#[test]
fn pubrel_with_other_fixed_header_flags_is_malformed() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let publisher = h.connect(version, "pub");
        h.send_publish(
            publisher,
            publish_packet("t", b"x", PublishQos::ExactlyOnce(id(4)), false),
        );
        assert!(matches!(h.expect(publisher), Packet::PubRec(_)));
        // PUBREL's flags are 0010 [MQTT-3.6.1-1] [MQTT5-3.6.1-1]: 0000 closes the connection.
        h.send_raw(publisher, &[0x60, 0x02, 0x00, 0x04]);
        assert!(h.is_closed(publisher), "{version:?}");
        // The well-formed one completes the exchange.
        let publisher = h.connect(version, "pub2");
        h.send_publish(
            publisher,
            publish_packet("t", b"x", PublishQos::ExactlyOnce(id(4)), false),
        );
        assert!(matches!(h.expect(publisher), Packet::PubRec(_)));
        h.send(publisher, Packet::PubRel(Ack::new(id(4))));
        assert!(matches!(h.expect(publisher), Packet::PubComp(_)));
    }
}

#[test]
fn after_disconnect_nothing_more_is_taken() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let sub = h.connect(version, "sub");
        h.subscribe(sub, "t", QoS::AtMostOnce);
        let c = h.connect(version, "c");
        // A client closes after DISCONNECT and sends nothing more [MQTT-3.14.4-1]
        // [MQTT-3.14.4-2]: a PUBLISH behind it in the same read is not taken, and the broker
        // closes the connection.
        let mut bytes = vec![0xe0, 0x00];
        bytes.extend_from_slice(&[0x30, 0x04, 0x00, 0x01, b't', b'x']);
        h.send_raw(c, &bytes);
        assert!(h.is_closed(c), "{version:?}");
        assert!(
            h.publishes(sub).is_empty(),
            "{version:?}: nothing after DISCONNECT"
        );
    }
}

#[test]
fn a_qos2_identifier_reused_before_pubrel_is_the_same_message() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let sub = h.connect(version, "sub");
        h.subscribe(sub, "t", QoS::ExactlyOnce);
        let publisher = h.connect(version, "pub");
        // A client takes an identifier not in use for a new message [MQTT-2.3.1-2]; one that
        // reuses an identifier still waiting for its PUBREL is taken at its word as resending:
        // PUBREC again, nothing delivered twice [MQTT5-4.3.3-10].
        for payload in [&b"first"[..], b"second"] {
            h.send_publish(
                publisher,
                publish_packet("t", payload, PublishQos::ExactlyOnce(id(5)), false),
            );
            assert!(
                matches!(h.expect(publisher), Packet::PubRec(_)),
                "{version:?}"
            );
        }
        let got = h.receive_and_ack(sub);
        assert_eq!(got.len(), 1, "{version:?}");
        assert_eq!(got[0].payload(), b"first");
        // After PUBCOMP the identifier is free again [MQTT-2.3.1-3].
        h.send(publisher, Packet::PubRel(Ack::new(id(5))));
        assert!(matches!(h.expect(publisher), Packet::PubComp(_)));
        h.send_publish(
            publisher,
            publish_packet("t", b"third", PublishQos::ExactlyOnce(id(5)), false),
        );
        assert!(matches!(h.expect(publisher), Packet::PubRec(_)));
        let got = h.receive_and_ack(sub);
        assert_eq!(
            got.len(),
            1,
            "{version:?}: a new message under the freed identifier"
        );
        assert_eq!(got[0].payload(), b"third");
    }
}
