//! MQTT 3.1.1 CONNECT flags and payload, and UTF-8 in the fields that carry names, written as
//! raw bytes so that combinations no client library would send can be tried: what the flags
//! announce must be what the payload holds, in the order the standard gives; anything else is
//! malformed and closes the connection without a CONNACK.

mod common;

use common::*;
use mqtt_broker_core::Event;
use mqtt_wire::QoS;

/// A 3.1.1 CONNECT frame with connect `flags`, keep alive 60 and `fields` as the payload, each
/// a two-byte length and the bytes.
fn connect(flags: u8, fields: &[&[u8]]) -> Vec<u8> {
    connect_frame(4, flags, fields)
}

/// A CONNECT frame of protocol `level` (4: 3.1.1, 5: 5.0, then with no CONNECT properties and,
/// when `flags` has a will, empty Will Properties before the will topic, the second field).
fn connect_frame(level: u8, flags: u8, fields: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, flags, 0, 60];
    if level == 5 {
        body.push(0); // CONNECT properties: none
    }
    for (i, field) in fields.iter().enumerate() {
        if level == 5 && i == 1 && flags & WILL != 0 {
            body.push(0); // Will Properties: none
        }
        body.extend_from_slice(&(field.len() as u16).to_be_bytes());
        body.extend_from_slice(field);
    }
    let mut frame = vec![0x10, body.len() as u8];
    frame.extend_from_slice(&body);
    frame
}

const CLEAN: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_QOS1: u8 = 0x08;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

/// Whether `bytes` as the first packet of a connection is accepted (CONNACK 0) or closes it
/// without a CONNACK.
fn accepted(bytes: &[u8]) -> (Harness, TestClient, bool) {
    let mut h = Harness::new();
    let c = h.open(V311);
    h.send_raw(c, bytes);
    let ok = !h.is_closed(c);
    if !ok {
        h.expect_nothing(c);
    }
    (h, c, ok)
}

#[test]
fn mqtt311_3_1_3_1_every_field_the_flags_announce_in_order() {
    // Client identifier first [MQTT-3.1.3-3], then will topic, will message, user name and
    // password, in that order [MQTT-3.1.3-1], each there because its flag is 1
    // [MQTT-3.1.2-19] [MQTT-3.1.2-21].
    let frame = connect(
        CLEAN | WILL | WILL_QOS1 | USERNAME | PASSWORD,
        &[b"dev", b"tele/dev/LWT", b"Offline", b"user", b"secret"],
    );
    let (mut h, c, ok) = accepted(&frame);
    assert!(ok);
    let session = h.broker.sessions().next().expect("a session");
    assert_eq!(
        (session.client_id(), session.username()),
        ("dev", Some("user"))
    );
    // The will is what the payload said: it is published when the connection ends without
    // DISCONNECT.
    let watcher = h.connect(V311, "watcher");
    h.subscribe(watcher, "tele/#", QoS::AtLeastOnce);
    h.drop_connection(c);
    let wills = h.publishes(watcher);
    assert_eq!(wills.len(), 1);
    assert_eq!(
        (wills[0].topic(), wills[0].payload()),
        ("tele/dev/LWT", &b"Offline"[..])
    );
}

#[test]
fn mqtt311_3_1_2_18_no_user_name_flag_no_user_name() {
    // User Name Flag 0: no user name in the payload, and none taken [MQTT-3.1.2-18]
    // (Password Flag 0 likewise [MQTT-3.1.2-20]).
    let (h, _, ok) = accepted(&connect(CLEAN, &[b"dev"]));
    assert!(ok);
    assert_eq!(
        h.broker.sessions().next().expect("a session").username(),
        None
    );
    // A user name the flags do not announce is bytes the packet should not have: malformed.
    let (_, _, ok) = accepted(&connect(CLEAN, &[b"dev", b"user"]));
    assert!(
        !ok,
        "a payload longer than its flags say closes the connection"
    );
    // Flagged but missing: malformed too.
    let (_, _, ok) = accepted(&connect(CLEAN | USERNAME, &[b"dev"]));
    assert!(!ok, "a user name flagged and missing closes the connection");
    let (_, _, ok) = accepted(&connect(CLEAN | USERNAME | PASSWORD, &[b"dev", b"user"]));
    assert!(!ok, "a password flagged and missing closes the connection");
}

#[test]
fn mqtt311_3_1_2_13_will_qos_without_will_flag_is_malformed() {
    // Will Flag 0 requires Will QoS 0 [MQTT-3.1.2-13]: the broker closes without CONNACK, as
    // no return code applies to a malformed CONNECT [MQTT-3.2.2-6].
    let (h, _, ok) = accepted(&connect(CLEAN | WILL_QOS1, &[b"dev"]));
    assert!(!ok);
    assert!(
        !h.events
            .iter()
            .any(|e| matches!(e, Event::ClientConnected { .. })),
        "no session began"
    );
}

#[test]
fn mqtt311_3_1_3_10_names_must_be_utf8() {
    // The will topic [MQTT-3.1.3-10] and the user name [MQTT-3.1.3-11] are UTF-8 strings:
    // ill-formed UTF-8 (a lone continuation byte) closes the connection [MQTT-1.5.3-1].
    let (_, _, ok) = accepted(&connect(CLEAN | WILL, &[b"dev", b"t\x80", b"m"]));
    assert!(!ok, "will topic");
    let (_, _, ok) = accepted(&connect(CLEAN | USERNAME, &[b"dev", b"u\xff"]));
    assert!(!ok, "user name");
    // A PUBLISH topic [MQTT-3.3.2-1] and a SUBSCRIBE filter [MQTT-3.8.3-1] likewise.
    let mut h = Harness::new();
    let c = h.connect(V311, "p");
    h.send_raw(c, &[0x30, 0x05, 0x00, 0x02, b'a', 0x80, b'x']);
    assert!(h.is_closed(c), "PUBLISH topic");
    let c = h.connect(V311, "s");
    h.send_raw(c, &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0xc3, 0x00]);
    assert!(h.is_closed(c), "SUBSCRIBE filter");
}

/// A 5.0 CONNECT frame (see [`connect_frame`]).
fn connect_v5(flags: u8, fields: &[&[u8]]) -> Vec<u8> {
    connect_frame(5, flags, fields)
}

/// Whether `bytes` as the first packet of a 5.0 connection is accepted (the connection stays
/// open and a successful CONNACK comes back); a refusal may carry a CONNACK with an error code.
fn accepted_v5(bytes: &[u8]) -> (Harness, TestClient, bool) {
    let mut h = Harness::new();
    let c = h.open(V5);
    h.send_raw(c, bytes);
    let ok = !h.is_closed(c);
    if ok {
        match h.expect(c) {
            mqtt_wire::Packet::ConnAck(ack) => {
                assert_eq!(ack.reason_code, mqtt_wire::ReasonCode::Success);
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
    (h, c, ok)
}

const WILL_RETAIN: u8 = 0x20;

#[test]
fn mqtt5_3_1_3_1_every_field_the_flags_announce_in_order() {
    // Client identifier first [MQTT5-3.1.3-3], then Will Properties, Will Topic, Will Payload,
    // User Name, Password [MQTT5-3.1.3-1], each there because its flag is 1
    // [MQTT5-3.1.2-9] [MQTT5-3.1.2-17] [MQTT5-3.1.2-19].
    let frame = connect_v5(
        CLEAN | WILL | WILL_QOS1 | USERNAME | PASSWORD,
        &[b"dev", b"tele/dev/LWT", b"Offline", b"user", b"secret"],
    );
    let (mut h, c, ok) = accepted_v5(&frame);
    assert!(ok);
    let session = h.broker.sessions().next().expect("a session");
    assert_eq!(
        (session.client_id(), session.username()),
        ("dev", Some("user"))
    );
    // The will is kept with the session [MQTT5-3.1.2-7] and published when the connection ends
    // without DISCONNECT; Will Retain 0 publishes it non-retained [MQTT5-3.1.2-14].
    let watcher = h.connect(V5, "watcher");
    h.subscribe(watcher, "tele/#", QoS::AtLeastOnce);
    h.drop_connection(c);
    let wills = h.publishes(watcher);
    assert_eq!(wills.len(), 1);
    assert_eq!(
        (wills[0].topic(), wills[0].payload()),
        ("tele/dev/LWT", &b"Offline"[..])
    );
    let late = h.connect(V5, "late");
    h.subscribe(late, "tele/#", QoS::AtLeastOnce);
    assert!(h.publishes(late).is_empty(), "nothing retained");
}

#[test]
fn mqtt5_3_1_2_16_the_flags_and_the_payload_agree() {
    // User Name Flag 0: none in the payload [MQTT5-3.1.2-16], none taken; Password Flag 0
    // likewise [MQTT5-3.1.2-18].
    let (h, _, ok) = accepted_v5(&connect_v5(CLEAN, &[b"dev"]));
    assert!(ok);
    assert_eq!(
        h.broker.sessions().next().expect("a session").username(),
        None
    );
    let (_, _, ok) = accepted_v5(&connect_v5(CLEAN, &[b"dev", b"user"]));
    assert!(!ok, "bytes the flags do not announce");
    let (_, _, ok) = accepted_v5(&connect_v5(CLEAN | USERNAME, &[b"dev"]));
    assert!(!ok, "a user name flagged and missing");
    // Will QoS [MQTT5-3.1.2-11] and Will Retain [MQTT5-3.1.2-13] must be 0 without a will.
    let (_, _, ok) = accepted_v5(&connect_v5(CLEAN | WILL_QOS1, &[b"dev"]));
    assert!(!ok, "Will QoS without a will");
    let (_, _, ok) = accepted_v5(&connect_v5(CLEAN | WILL_RETAIN, &[b"dev"]));
    assert!(!ok, "Will Retain without a will");
}

#[test]
fn mqtt5_3_1_3_4_strings_must_be_utf8() {
    // The client identifier [MQTT5-3.1.3-4], will topic [MQTT5-3.1.3-11] and user name
    // [MQTT5-3.1.3-12] are UTF-8 Encoded Strings: ill-formed UTF-8 refuses the connection.
    let (_, _, ok) = accepted_v5(&connect_v5(CLEAN, &[b"d\xc3"]));
    assert!(!ok, "client identifier");
    let (_, _, ok) = accepted_v5(&connect_v5(CLEAN | WILL, &[b"dev", b"t\x80", b"m"]));
    assert!(!ok, "will topic");
    let (_, _, ok) = accepted_v5(&connect_v5(CLEAN | USERNAME, &[b"dev", b"u\xff"]));
    assert!(!ok, "user name");
    // A PUBLISH's Response Topic [MQTT5-3.3.2-13] and Content Type [MQTT5-3.3.2-19] too.
    for property in [0x08u8, 0x03] {
        let mut h = Harness::new();
        let c = h.connect(V5, "p");
        // Topic "a", properties: one string property holding 0x80, payload "x".
        h.send_raw(
            c,
            &[
                0x30, 0x0a, 0x00, 0x01, b'a', 0x04, property, 0x00, 0x01, 0x80, b'x', b'y',
            ],
        );
        assert!(h.is_closed(c), "property {property:#04x}");
    }
}
