//! MQTT 5.0: what the broker says beside a reason code (Reason String, User Property) is left out
//! of an acknowledgement that would then pass the client's Maximum Packet Size; the
//! acknowledgement itself still goes.

mod common;

use common::*;
use mqtt_wire::{Ack, Packet, PublishQos, ReasonCode};

/// A 5.0 client announcing `max` as its Maximum Packet Size.
fn client(h: &mut Harness, name: &str, max: Option<u32>) -> TestClient {
    let c = h.open(V5);
    let mut connect = connect_packet(V5, name);
    connect.properties.maximum_packet_size = max;
    let ack = h.connect_with(c, connect);
    assert_eq!(ack.reason_code, ReasonCode::Success);
    c
}

/// The PUBACK / PUBREC a publish to `$SYS` (refused) gets, and the frame's length.
fn refused(h: &mut Harness, c: TestClient, qos: PublishQos) -> (Ack, usize) {
    h.send_publish(c, publish_packet("$SYS/x", b"no", qos, false));
    let len = h
        .raw(c)
        .last()
        .map_or(0, |chunks| chunks.iter().map(|b| b.len()).sum());
    match h.expect(c) {
        Packet::PubAck(ack) | Packet::PubRec(ack) => (ack, len),
        other => panic!("expected an acknowledgement, got {other:?}"),
    }
}

#[test]
fn mqtt5_3_4_2_2_reason_strings_go_only_where_they_fit() {
    let mut h = Harness::new();
    // Room enough: the refusal is explained.
    let roomy = client(&mut h, "roomy", None);
    for qos in [
        PublishQos::AtLeastOnce(id(1)),
        PublishQos::ExactlyOnce(id(2)),
    ] {
        let (ack, _) = refused(&mut h, roomy, qos);
        assert!(ack.reason_code.is_error());
        assert!(ack.properties.reason_string.is_some(), "{qos:?}");
    }
    // A client accepting 30 bytes: PUBACK [MQTT5-3.4.2-2] and PUBREC [MQTT5-3.5.2-2] drop their
    // Reason String (and carry no User Property [MQTT5-3.4.2-3] [MQTT5-3.5.2-3]) rather than
    // pass that size; the reason code still says what happened.
    let tight = client(&mut h, "tight", Some(30));
    for qos in [
        PublishQos::AtLeastOnce(id(3)),
        PublishQos::ExactlyOnce(id(4)),
    ] {
        let (ack, len) = refused(&mut h, tight, qos);
        assert!(ack.reason_code.is_error(), "{qos:?}");
        assert!(ack.properties.reason_string.is_none(), "{qos:?}");
        assert!(ack.properties.user_properties.is_empty());
        assert!(len <= 30, "{qos:?}: {len} bytes");
    }
}

#[test]
fn mqtt5_3_6_2_2_acknowledgements_without_extras_always_fit() {
    // PUBREL [MQTT5-3.6.2-2] [MQTT5-3.6.2-3], PUBCOMP [MQTT5-3.7.2-2] [MQTT5-3.7.2-3], SUBACK
    // [MQTT5-3.9.2-1] [MQTT5-3.9.2-2] and UNSUBACK [MQTT5-3.11.2-1] [MQTT5-3.11.2-2] carry no
    // Reason String or User Property from this broker: to a client that accepts 30 bytes every
    // one of them arrives, within that size, with its reason code alone. PUBREL and PUBCOMP use
    // only their defined reason codes [MQTT5-3.6.2-1] [MQTT5-3.7.2-1].
    let mut h = Harness::new();
    let c = client(&mut h, "c", Some(30));
    let check = |h: &Harness, what: &str| {
        for chunks in h.raw(c) {
            let len: usize = chunks.iter().map(|b| b.len()).sum();
            assert!(len <= 30, "{what}: a {len}-byte packet");
        }
    };
    let ack = h.subscribe(c, "t", mqtt_wire::QoS::ExactlyOnce);
    assert!(ack.properties.reason_string.is_none() && ack.properties.user_properties.is_empty());
    // As publisher: PUBLISH QoS 2, PUBREL -> PUBCOMP.
    h.send_publish(
        c,
        publish_packet("t", b"m", PublishQos::ExactlyOnce(id(7)), false),
    );
    let mut pubcomp = None;
    let mut delivered = None;
    for p in h.recv_all(c) {
        match p {
            Packet::PubRec(_) => h.send(c, Packet::PubRel(Ack::new(id(7)))),
            Packet::Publish(p) => delivered = Some(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    for p in h.recv_all(c) {
        match p {
            Packet::PubComp(ack) => pubcomp = Some(ack),
            Packet::Publish(p) => delivered = Some(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    let pubcomp = pubcomp.expect("PUBCOMP");
    assert_eq!(pubcomp.reason_code, ReasonCode::Success);
    assert!(pubcomp.properties.reason_string.is_none());
    // As subscriber: the copy, PUBREC -> PUBREL.
    let delivered = delivered.expect("its own message back");
    let PublishQos::ExactlyOnce(pid) = delivered.qos else {
        panic!("QoS 2 expected")
    };
    h.send(c, Packet::PubRec(Ack::new(pid)));
    match h.expect(c) {
        Packet::PubRel(ack) => {
            assert_eq!(ack.reason_code, ReasonCode::Success);
            assert!(ack.properties.reason_string.is_none());
        }
        other => panic!("expected PUBREL, got {other:?}"),
    }
    h.send(c, Packet::PubComp(Ack::new(pid)));
    let codes = h.unsubscribe(c, "t");
    assert!(
        codes.properties.reason_string.is_none() && codes.properties.user_properties.is_empty()
    );
    check(&h, "every packet");
}
