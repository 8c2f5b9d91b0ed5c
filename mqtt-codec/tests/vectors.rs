//! Byte-exact vectors per packet type and protocol version: each frame decodes to the expected
//! packet and the packet encodes back to exactly the same bytes (canonical frames), or, for the
//! non-canonical forms the specification also allows, decodes to the same packet as the
//! canonical one.

// Test helpers outside #[test] functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used)]

use mqtt_wire::{
    Ack, Auth, Bytes, BytesMut, ConnAck, Connect, Decoder, Disconnect, LastWill, MqttStr, Packet,
    PacketId, Properties, PropertyValues, ProtocolVersion, Publish, PublishQos, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, decode_packet,
};

use ProtocolVersion::{V3_1, V3_1_1, V5};

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

/// Asserts that `frame` decodes to `packet` in `version` and that `packet` encodes to `frame`.
fn exact(version: ProtocolVersion, frame: &[u8], packet: &Packet) {
    let decoded = decode_packet(Bytes::copy_from_slice(frame), version).unwrap();
    assert_eq!(&decoded, packet, "decode of {frame:02x?}");
    let mut out = BytesMut::new();
    packet.encode(version, &mut out).unwrap();
    assert_eq!(&out[..], frame, "encode of {packet:?}");
    assert_eq!(packet.encoded_len(version), frame.len());
}

/// Asserts that a non-canonical `frame` decodes to `packet`.
fn decodes_to(version: ProtocolVersion, frame: &[u8], packet: &Packet) {
    let decoded = decode_packet(Bytes::copy_from_slice(frame), version).unwrap();
    assert_eq!(&decoded, packet, "decode of {frame:02x?}");
}

fn user(k: &'static str, v: &'static str) -> (MqttStr, MqttStr) {
    (MqttStr::from(k), MqttStr::from(v))
}

// ---------------------------------------------------------------- CONNECT

#[test]
fn connect_311_with_will_user_and_password() {
    let frame = b"\x10\x2a\x00\x04MQTT\x04\xee\x00\x3c\x00\x08client-1\x00\x03w/t\x00\x03bye\x00\x04user\x00\x04pass";
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V3_1_1,
        bridge: false,
        clean_start: true,
        keep_alive: 60,
        client_id: "client-1".into(),
        will: Some(LastWill {
            topic: "w/t".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Properties::default(),
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"pass")),
        properties: Properties::default(),
    }));
    exact(V3_1_1, frame, &packet);
}

#[test]
fn connect_311_bridge_bit_as_mosquitto_bridges_send_it() {
    // A mosquitto bridge with try_private (its default) sends level 0x84: 4 with the top bit.
    let frame = b"\x10\x10\x00\x04MQTT\x84\x00\x00\x3c\x00\x04br-1";
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V3_1_1,
        bridge: true,
        clean_start: false,
        keep_alive: 60,
        client_id: "br-1".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }));
    exact(V3_1_1, frame, &packet);
    let mut v31 = BytesMut::from(&b"\x10\x12\x00\x06MQIsdp\x83\x00\x00\x3c\x00\x04br-1"[..]);
    let Some(Packet::Connect(connect)) = Decoder::new().decode(&mut v31).unwrap() else {
        panic!("a CONNECT")
    };
    assert_eq!((connect.protocol, connect.bridge), (V3_1, true));
    // 5.0 has no bridge bit: 0x85 is an unknown level [MQTT5-3.1.2-2].
    let err = decode_packet(
        Bytes::from_static(b"\x10\x11\x00\x04MQTT\x85\x00\x00\x3c\x00\x00\x04br-1"),
        V5,
    )
    .unwrap_err();
    assert_eq!(
        err,
        mqtt_wire::DecodeError::UnsupportedProtocolVersion(0x85)
    );
}

#[test]
fn connect_31_mqisdp_as_mosquitto_pub_sends_it() {
    // mosquitto_pub -V mqttv31: protocol name "MQIsdp", level 3, clean session, keep alive 60.
    let frame = b"\x10\x1f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x11mosqpub|1234-host";
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V3_1,
        bridge: false,
        clean_start: true,
        keep_alive: 60,
        client_id: "mosqpub|1234-host".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }));
    // A CONNECT is decoded in the version it names, whatever the connection's version.
    exact(V3_1_1, frame, &packet);
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(&frame[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(packet));
    assert_eq!(decoder.version(), Some(V3_1));
}

#[test]
fn connect_5_with_properties_and_will_properties() {
    let frame = b"\x10\x2a\x00\x04MQTT\x05\x06\x00\x3c\x0f\x11\x00\x00\x00\x78\x21\x00\x0a\x26\x00\x01k\x00\x01v\x00\x03abc\x05\x18\x00\x00\x00\x05\x00\x01t\x00\x00";
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V5,
        bridge: false,
        clean_start: true,
        keep_alive: 60,
        client_id: "abc".into(),
        will: Some(LastWill {
            topic: "t".into(),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties::from(PropertyValues {
                will_delay_interval: Some(5),
                ..PropertyValues::default()
            }),
        }),
        username: None,
        password: None,
        properties: Properties::from(PropertyValues {
            session_expiry_interval: Some(120),
            receive_maximum: Some(10),
            user_properties: vec![user("k", "v")],
            ..PropertyValues::default()
        }),
    }));
    exact(V5, frame, &packet);
}

#[test]
fn connect_5_password_without_username_is_allowed() {
    let frame = b"\x10\x11\x00\x04MQTT\x05\x40\x00\x00\x00\x00\x00\x00\x02pw";
    let packet = Packet::Connect(Box::new(Connect {
        protocol: V5,
        bridge: false,
        clean_start: false,
        keep_alive: 0,
        client_id: MqttStr::default(),
        will: None,
        username: None,
        password: Some(Bytes::from_static(b"pw")),
        properties: Properties::default(),
    }));
    exact(V5, frame, &packet);
}

// ---------------------------------------------------------------- CONNACK

#[test]
fn connack_311() {
    let accepted = Packet::ConnAck(ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::default(),
    });
    exact(V3_1_1, b"\x20\x02\x01\x00", &accepted);
    let refused = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::NotAuthorized,
        properties: Properties::default(),
    });
    exact(V3_1_1, b"\x20\x02\x00\x05", &refused);
    exact(V3_1, b"\x20\x02\x00\x05", &refused);
}

#[test]
fn connack_5_with_properties() {
    let frame = b"\x20\x0e\x00\x00\x0b\x12\x00\x03cid\x21\x00\x14\x24\x01";
    let packet = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: Properties::from(PropertyValues {
            assigned_client_identifier: Some("cid".into()),
            receive_maximum: Some(20),
            maximum_qos: Some(1),
            ..PropertyValues::default()
        }),
    });
    exact(V5, frame, &packet);
    let refused = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::UnsupportedProtocolVersion,
        properties: Properties::default(),
    });
    exact(V5, b"\x20\x03\x00\x84\x00", &refused);
}

// ---------------------------------------------------------------- PUBLISH

#[test]
fn publish_qos0_and_qos1_v311() {
    let qos0 = Packet::Publish(Publish::new("a/b".into(), Bytes::from_static(b"hello")));
    exact(V3_1_1, b"\x30\x0a\x00\x03a/bhello", &qos0);
    let qos1 = Packet::Publish(
        Publish::new("a/b".into(), Bytes::from_static(b"hello"))
            .with_qos(PublishQos::AtLeastOnce(id(10)))
            .with_retain(true)
            .with_dup(true),
    );
    exact(V3_1_1, b"\x3b\x0c\x00\x03a/b\x00\x0ahello", &qos1);
    let qos2 = Packet::Publish(
        Publish::new("x".into(), Bytes::new()).with_qos(PublishQos::ExactlyOnce(id(0x1234))),
    );
    exact(V3_1, b"\x34\x05\x00\x01x\x12\x34", &qos2);
}

#[test]
fn publish_5_with_properties_and_alias() {
    let frame = b"\x32\x12\x00\x03a/b\x00\x0a\x05\x01\x01\x23\x00\x05hello";
    let packet = Packet::Publish(
        Publish::new("a/b".into(), Bytes::from_static(b"hello"))
            .with_qos(PublishQos::AtLeastOnce(id(10)))
            .with_properties(Properties::from(PropertyValues {
                payload_format_indicator: Some(1),
                topic_alias: Some(5),
                ..PropertyValues::default()
            })),
    );
    exact(V5, frame, &packet);
    // An empty topic with an alias, and two subscription identifiers (allowed in PUBLISH).
    let frame = b"\x30\x0b\x00\x00\x08\x0b\x01\x0b\x80\x01\x23\x00\x01";
    let packet = Packet::Publish(
        Publish::new(MqttStr::default(), Bytes::new()).with_properties(Properties::from(
            PropertyValues {
                subscription_identifiers: vec![1, 128],
                topic_alias: Some(1),
                ..PropertyValues::default()
            },
        )),
    );
    exact(V5, frame, &packet);
}

#[test]
fn publish_payload_and_topic_are_views_into_the_frame() {
    let frame = Bytes::from_static(b"\x30\x0a\x00\x03a/bhello");
    let Packet::Publish(p) = decode_packet(frame.clone(), V3_1_1).unwrap() else {
        panic!("not a publish")
    };
    assert_eq!(p.payload().as_ptr(), frame[7..].as_ptr());
    assert_eq!(p.topic().as_bytes().as_ptr(), frame[4..].as_ptr());
}

#[test]
fn publish_encode_header_leaves_out_the_payload() {
    let p = Publish::new("t".into(), Bytes::from_static(b"payload"))
        .with_qos(PublishQos::AtLeastOnce(id(1)));
    for version in [V3_1, V3_1_1, V5] {
        let mut header = BytesMut::new();
        p.encode_header(version, &mut header).unwrap();
        header.extend_from_slice(p.payload());
        let mut whole = BytesMut::new();
        Packet::Publish(p.clone())
            .encode(version, &mut whole)
            .unwrap();
        assert_eq!(header, whole);
    }
}

// ---------------------------------------------------------------- PUBACK, PUBREC, PUBREL, PUBCOMP

#[test]
fn acks_v311() {
    exact(
        V3_1_1,
        b"\x40\x02\x00\x0a",
        &Packet::PubAck(Ack::new(id(10))),
    );
    exact(
        V3_1_1,
        b"\x50\x02\x00\x0a",
        &Packet::PubRec(Ack::new(id(10))),
    );
    exact(
        V3_1_1,
        b"\x62\x02\x00\x0a",
        &Packet::PubRel(Ack::new(id(10))),
    );
    exact(
        V3_1,
        b"\x70\x02\xff\xff",
        &Packet::PubComp(Ack::new(id(0xffff))),
    );
}

#[test]
fn mqtt_31_allows_dup_on_pubrel_subscribe_unsubscribe() {
    // MQTT 3.1 sent these with QoS 1 and DUP set on retransmission; 3.1.1 made the flags fixed.
    decodes_to(V3_1, b"\x6a\x02\x00\x0a", &Packet::PubRel(Ack::new(id(10))));
    let unsubscribe = Packet::Unsubscribe(Unsubscribe {
        packet_id: id(2),
        filters: vec!["a".into()],
        properties: Properties::default(),
    });
    decodes_to(V3_1, b"\xaa\x05\x00\x02\x00\x01a", &unsubscribe);
}

#[test]
fn acks_v5_short_forms() {
    // Success without properties: the two-byte form.
    exact(V5, b"\x40\x02\x00\x0a", &Packet::PubAck(Ack::new(id(10))));
    // A reason code without properties: three bytes, no property length.
    let no_subscribers = Packet::PubAck(Ack {
        reason_code: ReasonCode::NoMatchingSubscribers,
        ..Ack::new(id(10))
    });
    exact(V5, b"\x40\x03\x00\x0a\x10", &no_subscribers);
    let not_found = Packet::PubRel(Ack {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..Ack::new(id(10))
    });
    exact(V5, b"\x62\x03\x00\x0a\x92", &not_found);
    // Non-canonical but valid: explicit Success and an empty property list.
    decodes_to(
        V5,
        b"\x40\x04\x00\x0a\x00\x00",
        &Packet::PubAck(Ack::new(id(10))),
    );
    decodes_to(
        V5,
        b"\x50\x03\x00\x0a\x00",
        &Packet::PubRec(Ack::new(id(10))),
    );
}

#[test]
fn acks_v5_with_reason_string() {
    let packet = Packet::PubComp(Ack {
        packet_id: id(10),
        reason_code: ReasonCode::Success,
        properties: Properties::from(PropertyValues {
            reason_string: Some("ok".into()),
            ..PropertyValues::default()
        }),
    });
    exact(V5, b"\x70\x09\x00\x0a\x00\x05\x1f\x00\x02ok", &packet);
}

// ---------------------------------------------------------------- SUBSCRIBE / SUBACK

#[test]
fn subscribe_and_suback_v311() {
    let packet = Packet::Subscribe(Subscribe {
        packet_id: id(1),
        filters: vec![
            (
                "a/b".into(),
                SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..Default::default()
                },
            ),
            (
                "#".into(),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    ..Default::default()
                },
            ),
        ],
        properties: Properties::default(),
    });
    exact(
        V3_1_1,
        b"\x82\x0c\x00\x01\x00\x03a/b\x01\x00\x01#\x02",
        &packet,
    );
    let suback = Packet::SubAck(SubAck {
        packet_id: id(1),
        reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
        properties: Properties::default(),
    });
    exact(V3_1_1, b"\x90\x04\x00\x01\x01\x80", &suback);
}

#[test]
fn subscribe_and_suback_v5() {
    let packet = Packet::Subscribe(Subscribe {
        packet_id: id(1),
        filters: vec![(
            "a/b".into(),
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        )],
        properties: Properties::from(PropertyValues {
            subscription_identifiers: vec![5],
            ..PropertyValues::default()
        }),
    });
    exact(V5, b"\x82\x0b\x00\x01\x02\x0b\x05\x00\x03a/b\x2d", &packet);
    let suback = Packet::SubAck(SubAck {
        packet_id: id(1),
        reason_codes: vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::WildcardSubscriptionsNotSupported,
        ],
        properties: Properties::default(),
    });
    exact(V5, b"\x90\x05\x00\x01\x00\x01\xa2", &suback);
}

// ---------------------------------------------------------------- UNSUBSCRIBE / UNSUBACK

#[test]
fn unsubscribe_and_unsuback() {
    let packet = Packet::Unsubscribe(Unsubscribe {
        packet_id: id(2),
        filters: vec!["a/b".into()],
        properties: Properties::default(),
    });
    exact(V3_1_1, b"\xa2\x07\x00\x02\x00\x03a/b", &packet);
    exact(V5, b"\xa2\x08\x00\x02\x00\x00\x03a/b", &packet);
    let v3 = Packet::UnsubAck(UnsubAck {
        packet_id: id(2),
        reason_codes: vec![],
        properties: Properties::default(),
    });
    exact(V3_1_1, b"\xb0\x02\x00\x02", &v3);
    let v5 = Packet::UnsubAck(UnsubAck {
        packet_id: id(2),
        reason_codes: vec![ReasonCode::NoSubscriptionExisted],
        properties: Properties::default(),
    });
    exact(V5, b"\xb0\x04\x00\x02\x00\x11", &v5);
}

// ---------------------------------------------------------------- PINGREQ, PINGRESP, DISCONNECT, AUTH

#[test]
fn ping_and_disconnect() {
    for version in [V3_1, V3_1_1, V5] {
        exact(version, b"\xc0\x00", &Packet::PingReq);
        exact(version, b"\xd0\x00", &Packet::PingResp);
        exact(
            version,
            b"\xe0\x00",
            &Packet::Disconnect(Disconnect::default()),
        );
    }
    let with_will = Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::DisconnectWithWillMessage,
        properties: Properties::default(),
    });
    exact(V5, b"\xe0\x01\x04", &with_will);
    let taken_over = Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::SessionTakenOver,
        properties: Properties::from(PropertyValues {
            session_expiry_interval: Some(0),
            ..PropertyValues::default()
        }),
    });
    exact(V5, b"\xe0\x07\x8e\x05\x11\x00\x00\x00\x00", &taken_over);
    decodes_to(
        V5,
        b"\xe0\x02\x00\x00",
        &Packet::Disconnect(Disconnect::default()),
    );
}

#[test]
fn auth_v5() {
    exact(V5, b"\xf0\x00", &Packet::Auth(Auth::default()));
    let packet = Packet::Auth(Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::from(PropertyValues {
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(b"xy")),
            ..PropertyValues::default()
        }),
    });
    exact(
        V5,
        b"\xf0\x0f\x18\x0d\x15\x00\x05SCRAM\x16\x00\x02xy",
        &packet,
    );
}
