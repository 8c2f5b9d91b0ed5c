//! The malformed-input table: each row is a frame that breaks one rule, the version it is
//! received in, and the typed error the decoder must return (never a panic). Rows name the
//! normative statement they test, tagged `MQTT311-` / `MQTT5-` where the numbering differs.

// Test helpers outside #[test] functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used)]

use mqtt_wire::{
    Bytes, BytesMut, DecodeError, Decoder, ProtocolVersion, ReasonCode, decode_packet,
};

use DecodeError as E;
use ProtocolVersion::{V3_1, V3_1_1, V5};

const TABLE: &[(&str, ProtocolVersion, &[u8], DecodeError)] = &[
    // ---- fixed header
    (
        "packet type 0 is reserved",
        V3_1_1,
        b"\x00\x00",
        E::InvalidPacketType(0),
    ),
    (
        "AUTH does not exist in 3.1.1",
        V3_1_1,
        b"\xf0\x00",
        E::InvalidPacketType(15),
    ),
    (
        "AUTH does not exist in 3.1",
        V3_1,
        b"\xf0\x00",
        E::InvalidPacketType(15),
    ),
    (
        "[MQTT311-2.2.2-1] PUBREL flags 0010",
        V3_1_1,
        b"\x60\x02\x00\x01",
        E::InvalidFixedHeaderFlags {
            packet_type: 6,
            flags: 0,
        },
    ),
    (
        "[MQTT311-3.8.1-1] SUBSCRIBE flags 0010",
        V3_1_1,
        b"\x80\x06\x00\x01\x00\x01a\x00",
        E::InvalidFixedHeaderFlags {
            packet_type: 8,
            flags: 0,
        },
    ),
    (
        "[MQTT311-3.10.1-1] UNSUBSCRIBE flags 0010",
        V3_1_1,
        b"\xa0\x05\x00\x01\x00\x01a",
        E::InvalidFixedHeaderFlags {
            packet_type: 10,
            flags: 0,
        },
    ),
    (
        "[MQTT5-2.1.3-1] PUBACK flags 0000",
        V5,
        b"\x42\x02\x00\x01",
        E::InvalidFixedHeaderFlags {
            packet_type: 4,
            flags: 2,
        },
    ),
    (
        "[MQTT311-2.2.2-2] CONNECT flags 0000",
        V3_1_1,
        b"\x11\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00",
        E::InvalidFixedHeaderFlags {
            packet_type: 1,
            flags: 1,
        },
    ),
    (
        "[MQTT311-3.14.1-1] DISCONNECT flags 0000",
        V3_1_1,
        b"\xe1\x00",
        E::InvalidFixedHeaderFlags {
            packet_type: 14,
            flags: 1,
        },
    ),
    (
        "[MQTT5-3.14.1-1] DISCONNECT flags 0000",
        V5,
        b"\xe8\x00",
        E::InvalidFixedHeaderFlags {
            packet_type: 14,
            flags: 8,
        },
    ),
    (
        "[MQTT5-3.15.1-1] AUTH flags 0000",
        V5,
        b"\xf1\x00",
        E::InvalidFixedHeaderFlags {
            packet_type: 15,
            flags: 1,
        },
    ),
    (
        "remaining length of five bytes",
        V3_1_1,
        b"\x30\xff\xff\xff\xff\x01",
        E::MalformedRemainingLength,
    ),
    // ---- PUBLISH
    (
        "[MQTT-3.3.1-4] QoS 3",
        V3_1_1,
        b"\x36\x05\x00\x01a\x00\x01",
        E::InvalidQoS(3),
    ),
    (
        "[MQTT-3.3.1-4] QoS 3 (v5)",
        V5,
        b"\x36\x06\x00\x01a\x00\x01\x00",
        E::InvalidQoS(3),
    ),
    (
        "[MQTT-3.3.1-2] DUP with QoS 0",
        V3_1_1,
        b"\x38\x03\x00\x01a",
        E::DupWithQoS0,
    ),
    (
        "[MQTT-3.3.1-2] DUP with QoS 0 (v5)",
        V5,
        b"\x38\x04\x00\x01a\x00",
        E::DupWithQoS0,
    ),
    (
        "[MQTT311-2.3.1-1] QoS 1 packet id 0",
        V3_1_1,
        b"\x32\x05\x00\x01a\x00\x00",
        E::ZeroPacketId,
    ),
    (
        "[MQTT5-2.2.1-3] QoS 2 packet id 0",
        V5,
        b"\x34\x06\x00\x01a\x00\x00\x00",
        E::ZeroPacketId,
    ),
    (
        "[MQTT311-1.5.3-1] topic not UTF-8",
        V3_1_1,
        b"\x30\x03\x00\x01\xff",
        E::InvalidUtf8,
    ),
    (
        "[MQTT311-1.5.3-1] topic with a surrogate",
        V3_1_1,
        b"\x30\x05\x00\x03\xed\xa0\x80",
        E::InvalidUtf8,
    ),
    (
        "[MQTT311-1.5.3-2] topic with U+0000",
        V3_1_1,
        b"\x30\x04\x00\x02a\x00",
        E::NullCharacter,
    ),
    (
        "[MQTT5-1.5.4-2] topic with U+0000",
        V5,
        b"\x30\x05\x00\x02a\x00\x00",
        E::NullCharacter,
    ),
    (
        "topic longer than the packet",
        V3_1_1,
        b"\x30\x03\x00\x05a",
        E::Truncated,
    ),
    (
        "v5 PUBLISH without property length",
        V5,
        b"\x30\x03\x00\x01a",
        E::Truncated,
    ),
    (
        "property length beyond the packet",
        V5,
        b"\x30\x05\x00\x01a\x05\x01",
        E::Truncated,
    ),
    // ---- PUBLISH properties (v5)
    (
        "unknown property 0x00",
        V5,
        b"\x30\x05\x00\x01a\x01\x00",
        E::InvalidPropertyId(0),
    ),
    (
        "unknown property 0x7f",
        V5,
        b"\x30\x05\x00\x01a\x01\x7f",
        E::InvalidPropertyId(0x7f),
    ),
    (
        "session expiry not allowed in PUBLISH",
        V5,
        b"\x30\x09\x00\x01a\x05\x11\x00\x00\x00\x01",
        E::PropertyNotAllowed {
            property: 0x11,
            packet_type: 3,
        },
    ),
    (
        "payload format indicator twice",
        V5,
        b"\x30\x08\x00\x01a\x04\x01\x00\x01\x00",
        E::DuplicateProperty(0x01),
    ),
    (
        "payload format indicator 2",
        V5,
        b"\x30\x06\x00\x01a\x02\x01\x02",
        E::InvalidPropertyValue(0x01),
    ),
    (
        "topic alias 0",
        V5,
        b"\x30\x07\x00\x01a\x03\x23\x00\x00",
        E::InvalidPropertyValue(0x23),
    ),
    (
        "subscription identifier 0",
        V5,
        b"\x30\x06\x00\x01a\x02\x0b\x00",
        E::InvalidPropertyValue(0x0b),
    ),
    (
        "subscription identifier VBI of five bytes",
        V5,
        b"\x30\x0a\x00\x01a\x06\x0b\x80\x80\x80\x80\x01",
        E::MalformedVariableByteInteger,
    ),
    (
        "property value past the property length",
        V5,
        b"\x30\x07\x00\x01a\x02\x23\x00\x01",
        E::Truncated,
    ),
    (
        "[MQTT5-1.5.7-1] user property value not UTF-8",
        V5,
        b"\x30\x0b\x00\x01a\x07\x26\x00\x01k\x00\x01\xc0",
        E::InvalidUtf8,
    ),
    // ---- CONNECT
    (
        "[MQTT311-3.1.2-1] protocol name",
        V3_1_1,
        b"\x10\x0c\x00\x04MQTX\x04\x02\x00\x00\x00\x00",
        E::InvalidProtocolName,
    ),
    (
        "[MQTT311-3.1.2-2] MQTT level 3",
        V3_1_1,
        b"\x10\x0c\x00\x04MQTT\x03\x02\x00\x00\x00\x00",
        E::UnsupportedProtocolVersion(3),
    ),
    (
        "[MQTT311-3.1.2-2] MQIsdp level 4",
        V3_1_1,
        b"\x10\x0e\x00\x06MQIsdp\x04\x02\x00\x00\x00\x00",
        E::UnsupportedProtocolVersion(4),
    ),
    (
        "[MQTT5-3.1.2-2] MQTT level 6",
        V5,
        b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x00\x00\x00",
        E::UnsupportedProtocolVersion(6),
    ),
    (
        "[MQTT-3.1.2-3] reserved flag",
        V3_1_1,
        b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x00\x00\x00",
        E::InvalidConnectFlags,
    ),
    (
        "[MQTT5-3.1.2-3] reserved flag",
        V3_1_1,
        b"\x10\x0d\x00\x04MQTT\x05\x01\x00\x00\x00\x00\x00",
        E::InvalidConnectFlags,
    ),
    (
        "[MQTT-3.1.2-11] will QoS without will flag",
        V3_1_1,
        b"\x10\x0c\x00\x04MQTT\x04\x0a\x00\x00\x00\x00",
        E::WillFlagsWithoutWill,
    ),
    (
        "[MQTT311-3.1.2-15] will retain without will flag",
        V3_1_1,
        b"\x10\x0c\x00\x04MQTT\x04\x22\x00\x00\x00\x00",
        E::WillFlagsWithoutWill,
    ),
    (
        "[MQTT311-3.1.2-14] will QoS 3",
        V3_1_1,
        b"\x10\x0c\x00\x04MQTT\x04\x1e\x00\x00\x00\x00",
        E::InvalidWillQoS,
    ),
    (
        "[MQTT5-3.1.2-12] will QoS 3",
        V5,
        b"\x10\x0d\x00\x04MQTT\x05\x1e\x00\x00\x00\x00\x00",
        E::InvalidWillQoS,
    ),
    (
        "[MQTT311-3.1.2-22] password without user name",
        V3_1_1,
        b"\x10\x10\x00\x04MQTT\x04\x42\x00\x00\x00\x00\x00\x02pw",
        E::PasswordWithoutUsername,
    ),
    (
        "[MQTT311-3.1.2-22] password without user name (3.1)",
        V3_1,
        b"\x10\x12\x00\x06MQIsdp\x03\x42\x00\x00\x00\x00\x00\x02pw",
        E::PasswordWithoutUsername,
    ),
    (
        "[MQTT311-3.1.2-9] will flag without will fields",
        V3_1_1,
        b"\x10\x0c\x00\x04MQTT\x04\x06\x00\x00\x00\x00",
        E::Truncated,
    ),
    (
        "[MQTT311-3.1.3-4] client id not UTF-8",
        V3_1_1,
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01\xff",
        E::InvalidUtf8,
    ),
    (
        "CONNECT with trailing bytes",
        V3_1_1,
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x00\x00",
        E::TrailingBytes,
    ),
    (
        "will delay in CONNECT properties",
        V5,
        b"\x10\x12\x00\x04MQTT\x05\x02\x00\x00\x05\x18\x00\x00\x00\x01\x00\x00",
        E::PropertyNotAllowed {
            property: 0x18,
            packet_type: 1,
        },
    ),
    (
        "receive maximum 0",
        V5,
        b"\x10\x10\x00\x04MQTT\x05\x02\x00\x00\x03\x21\x00\x00\x00\x00",
        E::InvalidPropertyValue(0x21),
    ),
    (
        "maximum packet size 0",
        V5,
        b"\x10\x12\x00\x04MQTT\x05\x02\x00\x00\x05\x27\x00\x00\x00\x00\x00\x00",
        E::InvalidPropertyValue(0x27),
    ),
    (
        "request problem information 2",
        V5,
        b"\x10\x0f\x00\x04MQTT\x05\x02\x00\x00\x02\x17\x02\x00\x00",
        E::InvalidPropertyValue(0x17),
    ),
    (
        "request response information 2",
        V5,
        b"\x10\x0f\x00\x04MQTT\x05\x02\x00\x00\x02\x19\x02\x00\x00",
        E::InvalidPropertyValue(0x19),
    ),
    (
        "session expiry twice",
        V5,
        b"\x10\x17\x00\x04MQTT\x05\x02\x00\x00\x0a\x11\x00\x00\x00\x01\x11\x00\x00\x00\x01\x00\x00",
        E::DuplicateProperty(0x11),
    ),
    (
        "topic alias in will properties",
        V5,
        b"\x10\x16\x00\x04MQTT\x05\x06\x00\x00\x00\x00\x00\x03\x23\x00\x01\x00\x01t\x00\x00",
        E::PropertyNotAllowed {
            property: 0x23,
            packet_type: 1,
        },
    ),
    (
        "authentication data without method",
        V5,
        b"\x10\x12\x00\x04MQTT\x05\x02\x00\x00\x05\x16\x00\x02ab\x00\x00",
        E::InvalidPropertyValue(0x16),
    ),
    (
        "3.1.1 PUBREL with DUP",
        V3_1_1,
        b"\x6a\x02\x00\x01",
        E::InvalidFixedHeaderFlags {
            packet_type: 6,
            flags: 0x0a,
        },
    ),
    (
        "3.1 PUBREL with QoS 0",
        V3_1,
        b"\x60\x02\x00\x01",
        E::InvalidFixedHeaderFlags {
            packet_type: 6,
            flags: 0,
        },
    ),
    // ---- CONNACK
    (
        "[MQTT5-3.2.2-1] CONNACK reserved flags",
        V5,
        b"\x20\x03\x02\x00\x00",
        E::InvalidConnAckFlags(2),
    ),
    (
        "[MQTT311-3.2.2-1] CONNACK reserved flags",
        V3_1_1,
        b"\x20\x02\x80\x00",
        E::InvalidConnAckFlags(0x80),
    ),
    (
        "[MQTT311-3.2.2-4] session present with a refusal",
        V3_1_1,
        b"\x20\x02\x01\x05",
        E::SessionPresentOnRefusal,
    ),
    (
        "[MQTT5-3.2.2-6] session present with a refusal",
        V5,
        b"\x20\x03\x01\x87\x00",
        E::SessionPresentOnRefusal,
    ),
    (
        "3.1.1 return code 6",
        V3_1_1,
        b"\x20\x02\x00\x06",
        E::InvalidReasonCode(6),
    ),
    (
        "[MQTT5-3.2.2-8] CONNACK reason 0x10",
        V5,
        b"\x20\x03\x00\x10\x00",
        E::InvalidReasonCode(0x10),
    ),
    (
        "maximum QoS 2",
        V5,
        b"\x20\x05\x00\x00\x02\x24\x02",
        E::InvalidPropertyValue(0x24),
    ),
    (
        "retain available 2",
        V5,
        b"\x20\x05\x00\x00\x02\x25\x02",
        E::InvalidPropertyValue(0x25),
    ),
    (
        "wildcard subscription available 2",
        V5,
        b"\x20\x05\x00\x00\x02\x28\x02",
        E::InvalidPropertyValue(0x28),
    ),
    (
        "subscription identifier available 2",
        V5,
        b"\x20\x05\x00\x00\x02\x29\x02",
        E::InvalidPropertyValue(0x29),
    ),
    (
        "shared subscription available 2",
        V5,
        b"\x20\x05\x00\x00\x02\x2a\x02",
        E::InvalidPropertyValue(0x2a),
    ),
    (
        "v5 CONNACK without property length",
        V5,
        b"\x20\x02\x00\x00",
        E::Truncated,
    ),
    // ---- acknowledgements
    (
        "PUBACK with packet id 0",
        V3_1_1,
        b"\x40\x02\x00\x00",
        E::ZeroPacketId,
    ),
    (
        "3.1.1 PUBACK with a reason code",
        V3_1_1,
        b"\x40\x03\x00\x01\x00",
        E::TrailingBytes,
    ),
    ("PUBACK truncated", V3_1_1, b"\x40\x01\x00", E::Truncated),
    (
        "PUBACK reason 0x92",
        V5,
        b"\x40\x03\x00\x01\x92",
        E::InvalidReasonCode(0x92),
    ),
    (
        "PUBREL reason 0x10",
        V5,
        b"\x62\x03\x00\x01\x10",
        E::InvalidReasonCode(0x10),
    ),
    (
        "PUBCOMP undefined reason 0x03",
        V5,
        b"\x70\x03\x00\x01\x03",
        E::InvalidReasonCode(0x03),
    ),
    (
        "topic alias in PUBACK",
        V5,
        b"\x40\x07\x00\x01\x00\x03\x23\x00\x01",
        E::PropertyNotAllowed {
            property: 0x23,
            packet_type: 4,
        },
    ),
    (
        "reason string twice in PUBREC",
        V5,
        b"\x50\x0b\x00\x01\x00\x07\x1f\x00\x00\x1f\x00\x00\x00",
        E::DuplicateProperty(0x1f),
    ),
    // ---- SUBSCRIBE / SUBACK
    (
        "[MQTT311-3.8.3-3] SUBSCRIBE without filters",
        V3_1_1,
        b"\x82\x02\x00\x01",
        E::EmptySubscription,
    ),
    (
        "[MQTT5-3.8.3-2] SUBSCRIBE without filters",
        V5,
        b"\x82\x03\x00\x01\x00",
        E::EmptySubscription,
    ),
    (
        "[MQTT311-3.8.3-4] requested QoS 3",
        V3_1_1,
        b"\x82\x06\x00\x01\x00\x01a\x03",
        E::InvalidSubscriptionOptions(3),
    ),
    (
        "[MQTT311-3.8.3-4] reserved option bits",
        V3_1_1,
        b"\x82\x06\x00\x01\x00\x01a\x04",
        E::InvalidSubscriptionOptions(4),
    ),
    (
        "[MQTT5-3.8.3-5] reserved option bits",
        V5,
        b"\x82\x07\x00\x01\x00\x00\x01a\x40",
        E::InvalidSubscriptionOptions(0x40),
    ),
    (
        "retain handling 3",
        V5,
        b"\x82\x07\x00\x01\x00\x00\x01a\x30",
        E::InvalidSubscriptionOptions(0x30),
    ),
    (
        "v5 subscription QoS 3",
        V5,
        b"\x82\x07\x00\x01\x00\x00\x01a\x03",
        E::InvalidSubscriptionOptions(3),
    ),
    (
        "[MQTT311-2.3.1-1] SUBSCRIBE packet id 0",
        V3_1_1,
        b"\x82\x06\x00\x00\x00\x01a\x00",
        E::ZeroPacketId,
    ),
    (
        "filter without options byte",
        V3_1_1,
        b"\x82\x05\x00\x01\x00\x01a",
        E::Truncated,
    ),
    (
        "two subscription identifiers in SUBSCRIBE",
        V5,
        b"\x82\x0b\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00",
        E::DuplicateProperty(0x0b),
    ),
    (
        "3.1.1 SUBACK code 0x87",
        V3_1_1,
        b"\x90\x03\x00\x01\x87",
        E::InvalidReasonCode(0x87),
    ),
    (
        "v5 SUBACK code 0x11",
        V5,
        b"\x90\x04\x00\x01\x00\x11",
        E::InvalidReasonCode(0x11),
    ),
    // ---- UNSUBSCRIBE / UNSUBACK
    (
        "[MQTT-3.10.3-2] UNSUBSCRIBE without filters",
        V3_1_1,
        b"\xa2\x02\x00\x01",
        E::EmptyUnsubscribe,
    ),
    (
        "[MQTT5-3.10.3-2] UNSUBSCRIBE without filters",
        V5,
        b"\xa2\x03\x00\x01\x00",
        E::EmptyUnsubscribe,
    ),
    (
        "[MQTT311-3.10.3-1] filter not UTF-8",
        V3_1_1,
        b"\xa2\x05\x00\x01\x00\x01\xfe",
        E::InvalidUtf8,
    ),
    (
        "subscription identifier in UNSUBSCRIBE",
        V5,
        b"\xa2\x08\x00\x01\x02\x0b\x01\x00\x01a",
        E::PropertyNotAllowed {
            property: 0x0b,
            packet_type: 10,
        },
    ),
    (
        "3.1.1 UNSUBACK with payload",
        V3_1_1,
        b"\xb0\x03\x00\x01\x00",
        E::TrailingBytes,
    ),
    (
        "v5 UNSUBACK code 0x01",
        V5,
        b"\xb0\x04\x00\x01\x00\x01",
        E::InvalidReasonCode(0x01),
    ),
    // ---- PINGREQ, PINGRESP, DISCONNECT, AUTH
    (
        "PINGREQ with a body",
        V3_1_1,
        b"\xc0\x01\x00",
        E::TrailingBytes,
    ),
    (
        "PINGRESP with a body",
        V5,
        b"\xd0\x01\x00",
        E::TrailingBytes,
    ),
    (
        "3.1.1 DISCONNECT with a body",
        V3_1_1,
        b"\xe0\x01\x00",
        E::TrailingBytes,
    ),
    (
        "[MQTT5-3.14.2-1] DISCONNECT reason 0x01",
        V5,
        b"\xe0\x01\x01",
        E::InvalidReasonCode(0x01),
    ),
    (
        "DISCONNECT reason 0x85",
        V5,
        b"\xe0\x01\x85",
        E::InvalidReasonCode(0x85),
    ),
    (
        "assigned client id in DISCONNECT",
        V5,
        b"\xe0\x06\x00\x04\x12\x00\x01a",
        E::PropertyNotAllowed {
            property: 0x12,
            packet_type: 14,
        },
    ),
    (
        "DISCONNECT trailing after properties",
        V5,
        b"\xe0\x03\x00\x00\x00",
        E::TrailingBytes,
    ),
    (
        "[MQTT5-3.15.2-1] AUTH reason 0x00 is fine, 0x80 is not",
        V5,
        b"\xf0\x01\x80",
        E::InvalidReasonCode(0x80),
    ),
    (
        "session expiry in AUTH",
        V5,
        b"\xf0\x07\x18\x05\x11\x00\x00\x00\x01",
        E::PropertyNotAllowed {
            property: 0x11,
            packet_type: 15,
        },
    ),
];

#[test]
fn malformed_table() {
    for &(name, version, frame, expected) in TABLE {
        let got = decode_packet(Bytes::from_static(frame), version);
        assert_eq!(got, Err(expected), "{name}: {frame:02x?}");
        // The streaming decoder agrees and consumes nothing.
        let mut decoder = Decoder::new();
        if frame.first().is_some_and(|b| b >> 4 != 1) {
            decoder.set_version(version);
        }
        let mut buf = BytesMut::from(frame);
        buf.extend_from_slice(b"next");
        assert_eq!(
            decoder.decode(&mut buf),
            Err(expected),
            "{name} (streaming)"
        );
        let header_error = matches!(expected, E::MalformedRemainingLength);
        let left: &[u8] = if header_error {
            &buf[..frame.len()]
        } else {
            &buf[..]
        };
        let want: &[u8] = if header_error { frame } else { b"next" };
        assert_eq!(left, want, "{name}: consumed bytes");
    }
}

#[test]
fn every_malformed_row_maps_to_an_error_reason_code() {
    for &(name, _, _, expected) in TABLE {
        assert!(expected.reason_code().is_error(), "{name}");
    }
    assert_eq!(
        E::UnsupportedProtocolVersion(6).reason_code(),
        ReasonCode::UnsupportedProtocolVersion
    );
}

#[test]
fn frame_length_must_match_the_header() {
    assert_eq!(
        decode_packet(Bytes::from_static(b"\xc0\x00\x00"), V3_1_1),
        Err(E::TrailingBytes)
    );
    assert_eq!(
        decode_packet(Bytes::from_static(b"\x30\x05\x00\x01a"), V3_1_1),
        Err(E::Truncated)
    );
    assert_eq!(decode_packet(Bytes::new(), V3_1_1), Err(E::Truncated));
}

#[test]
fn huge_declared_length_is_refused_from_the_header_alone() {
    // 256 MB declared against a 1 MB limit: refused with only the 5 header bytes buffered.
    let mut decoder = Decoder::new().with_max_packet_size(1 << 20);
    let mut buf = BytesMut::from(&b"\x30\xff\xff\xff\x7f"[..]);
    let capacity = buf.capacity();
    assert_eq!(
        decoder.decode(&mut buf),
        Err(E::PacketTooLarge {
            size: 268_435_460,
            max: 1 << 20
        })
    );
    assert_eq!(buf.capacity(), capacity, "nothing reserved");
    assert_eq!(buf.len(), 5);
}

#[test]
fn exact_limit_is_accepted() {
    let mut decoder = Decoder::new().with_max_packet_size(2);
    let mut buf = BytesMut::from(&b"\xc0\x00\xc0\x01\x00"[..]);
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert_eq!(
        decoder.decode(&mut buf),
        Err(E::PacketTooLarge { size: 3, max: 2 })
    );
}

#[test]
fn version_is_adopted_from_a_connect_even_when_malformed_later() {
    // MQTT 5 CONNECT with will QoS 3: the caller must still answer with a v5 CONNACK.
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&b"\x10\x0d\x00\x04MQTT\x05\x1e\x00\x00\x00\x00\x00"[..]);
    assert_eq!(decoder.decode(&mut buf), Err(E::InvalidWillQoS));
    assert_eq!(decoder.version(), Some(V5));
}
