//! MQTT 5.0 features: topic aliases (3.3.2.3.4), message expiry (3.3.2.3.3), maximum packet size
//! (3.1.2.11.4), forwarded properties (3.3.2.3), subscription identifiers (3.3.4), and the
//! enhanced authentication exchange (4.12).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_broker_core::{
    Broker, Config, DropReason, Event,
    hooks::{AuthStep, EnhancedAuthenticator},
};
use mqtt_wire::{
    Auth, Packet, Properties, PropertyValues, PublishQos, QoS, ReasonCode, SubscriptionOptions,
};

fn publish_with(topic: &str, properties: Properties) -> Packet {
    let mut publish = publish_packet(topic, b"x", PublishQos::AtMostOnce, false);
    publish.properties = properties;
    Packet::Publish(publish)
}

#[test]
fn mqtt5_3_3_2_12_inbound_topic_alias_binds_and_resolves() {
    let mut h = Harness::new();
    let sub = h.connect(V5, "s");
    h.subscribe(sub, "long/topic", QoS::AtMostOnce);
    let p = h.connect(V5, "p");
    let alias = |n| {
        Properties::from(PropertyValues {
            topic_alias: Some(n),
            ..PropertyValues::default()
        })
    };
    h.send(p, publish_with("long/topic", alias(1)));
    h.send(p, publish_with("", alias(1)));
    let got = h.publishes(sub);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|p| p.topic() == "long/topic"),
        "subscribers see the topic name"
    );
    assert!(
        got.iter().all(|p| p.properties.topic_alias.is_none()),
        "[MQTT5-3.3.2-7] aliases stay on their connection"
    );
}

#[test]
fn mqtt5_3_3_2_12_topic_alias_above_maximum_gets_0x94() {
    // Alias 0 is refused by the codec (malformed); above the maximum is the core's call. A
    // client must keep within the Topic Alias Maximum of the CONNACK [MQTT5-3.2.2-17]
    // [MQTT5-3.3.2-9]: one that does not is disconnected with 0x94.
    let mut h = Harness::new(); // topic alias maximum 16
    let p = h.connect(V5, "p");
    h.send(
        p,
        publish_with(
            "t",
            Properties::from(PropertyValues {
                topic_alias: Some(17),
                ..PropertyValues::default()
            }),
        ),
    );
    match h.expect(p) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::TopicAliasInvalid),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(h.is_closed(p));
}

#[test]
fn mqtt5_unknown_topic_alias_gets_0x94() {
    let mut h = Harness::new();
    let p = h.connect(V5, "p");
    h.send(
        p,
        publish_with(
            "",
            Properties::from(PropertyValues {
                topic_alias: Some(3),
                ..PropertyValues::default()
            }),
        ),
    );
    match h.expect(p) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::TopicAliasInvalid),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn mqtt5_3_1_2_26_outbound_aliases_when_the_client_allows_them() {
    let mut h = Harness::new();
    let sub = h.open(V5);
    let mut connect = connect_packet(V5, "s");
    connect.properties.topic_alias_maximum = Some(1);
    h.connect_with(sub, connect);
    h.subscribe(sub, "#", QoS::AtMostOnce);
    let p = h.connect(V5, "p");
    h.publish(p, "a/b", b"1", QoS::AtMostOnce, false);
    h.publish(p, "a/b", b"2", QoS::AtMostOnce, false);
    h.publish(p, "c", b"3", QoS::AtMostOnce, false);
    let got = h.publishes(sub);
    // The broker's aliases start at 1: 0 is never sent [MQTT5-3.3.2-8].
    assert_eq!(
        (got[0].topic(), got[0].properties.topic_alias),
        ("a/b", Some(1))
    );
    assert_eq!(
        (got[1].topic(), got[1].properties.topic_alias),
        ("", Some(1))
    );
    assert_eq!(
        (got[2].topic(), got[2].properties.topic_alias),
        ("c", None),
        "[MQTT5-3.3.2-11] within maximum"
    );
}

#[test]
fn mqtt5_3_1_2_27_no_outbound_aliases_by_default() {
    let mut h = Harness::new();
    let sub = h.connect(V5, "s");
    h.subscribe(sub, "#", QoS::AtMostOnce);
    let p = h.connect(V5, "p");
    h.publish(p, "a", b"1", QoS::AtMostOnce, false);
    h.publish(p, "a", b"2", QoS::AtMostOnce, false);
    assert!(
        h.publishes(sub)
            .iter()
            .all(|p| p.properties.topic_alias.is_none() && p.topic() == "a")
    );
}

#[test]
fn mqtt5_3_3_2_6_message_expiry_counts_down_and_expired_messages_are_dropped() {
    let mut h = Harness::new();
    let sub = h.open(V5);
    let mut connect = connect_packet(V5, "s");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    h.connect_with(sub, connect.clone());
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    h.disconnect(sub, ReasonCode::Success);
    let p = h.connect(V5, "p");
    let mut publish = publish_packet("t", b"short", PublishQos::AtLeastOnce(id(1)), false);
    publish.properties.message_expiry_interval = Some(10);
    h.send(p, Packet::Publish(publish.clone()));
    publish.set_payload(Bytes::from_static(b"long"));
    publish.properties.message_expiry_interval = Some(100);
    h.send(p, Packet::Publish(publish));
    h.advance(Duration::from_secs(30));
    let sub = h.open(V5);
    h.connect_with(sub, connect);
    let got = h.receive_and_ack(sub);
    assert_eq!(got.len(), 1, "[MQTT5-3.3.2-5] the expired copy is not sent");
    assert_eq!(got[0].payload(), Bytes::from_static(b"long"));
    assert_eq!(
        got[0].properties.message_expiry_interval,
        Some(70),
        "[MQTT5-3.3.2-6]"
    );
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::MessageDropped {
            reason: DropReason::Expired,
            ..
        }
    )));
}

#[test]
fn mqtt5_3_1_2_24_and_25_packets_above_client_maximum_are_not_sent() {
    let mut h = Harness::new();
    let sub = h.open(V5);
    let mut connect = connect_packet(V5, "s");
    connect.properties.maximum_packet_size = Some(64);
    h.connect_with(sub, connect);
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let p = h.connect(V5, "p");
    h.publish(p, "t", &[1u8; 100], QoS::AtLeastOnce, false);
    h.publish(p, "t", b"small", QoS::AtLeastOnce, false);
    let got = h.receive_and_ack(sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload(), Bytes::from_static(b"small"));
    assert!(
        h.raw(sub)
            .iter()
            .all(|chunks| chunks.iter().map(Bytes::len).sum::<usize>() <= 64)
    );
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::MessageDropped {
            reason: DropReason::TooLarge,
            ..
        }
    )));
}

#[test]
fn mqtt5_3_3_2_forwarded_properties_are_unchanged() {
    let mut h = Harness::new();
    let sub = h.connect(V5, "s");
    h.subscribe(sub, "req", QoS::AtMostOnce);
    let p = h.connect(V5, "p");
    let properties = Properties::from(PropertyValues {
        payload_format_indicator: Some(1),
        content_type: Some(s("text/plain")),
        response_topic: Some(s("resp/1")),
        correlation_data: Some(Bytes::from_static(b"\x00\x01")),
        user_properties: vec![(s("b"), s("2")), (s("a"), s("1")), (s("b"), s("3"))],
        ..PropertyValues::default()
    });
    h.send(p, publish_with("req", properties.clone()));
    let got = h.publishes(sub);
    let forwarded = &got[0].properties;
    assert_eq!(
        forwarded.payload_format_indicator,
        Some(1),
        "[MQTT5-3.3.2-4]"
    );
    assert_eq!(
        forwarded.content_type, properties.content_type,
        "[MQTT5-3.3.2-20]"
    );
    assert_eq!(
        forwarded.response_topic, properties.response_topic,
        "[MQTT5-3.3.2-15]"
    );
    assert_eq!(
        forwarded.correlation_data, properties.correlation_data,
        "[MQTT5-3.3.2-16]"
    );
    assert_eq!(
        forwarded.user_properties, properties.user_properties,
        "[MQTT5-3.3.2-17] [MQTT5-3.3.2-18]"
    );
}

#[test]
fn mqtt5_3_3_4_3_subscription_identifier_is_delivered() {
    let mut h = Harness::new();
    let sub = h.connect(V5, "s");
    let options = SubscriptionOptions {
        qos: QoS::AtMostOnce,
        ..SubscriptionOptions::default()
    };
    h.subscribe_with(
        sub,
        "t",
        options,
        Properties::from(PropertyValues {
            subscription_identifiers: vec![77],
            ..PropertyValues::default()
        }),
    );
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"x", QoS::AtMostOnce, false);
    assert_eq!(
        h.publishes(sub)[0].properties.subscription_identifiers,
        vec![77]
    );
}

/// Method "TOKEN": the client must answer the challenge "who?" with "me".
struct Token;

impl EnhancedAuthenticator for Token {
    fn supports(&self, method: &str) -> bool {
        method == "TOKEN"
    }
    fn start(&mut self, _: &str, _: &str, _: Option<&[u8]>) -> AuthStep {
        AuthStep::Continue(Bytes::from_static(b"who?"))
    }
    fn step(&mut self, _: &str, _: &str, data: Option<&[u8]>) -> AuthStep {
        if data == Some(b"me".as_ref()) {
            AuthStep::Success(Some(Bytes::from_static(b"welcome")))
        } else {
            AuthStep::Fail(ReasonCode::NotAuthorized)
        }
    }
}

fn auth(reason: ReasonCode, data: &'static [u8]) -> Packet {
    Packet::Auth(Auth {
        reason_code: reason,
        properties: Properties::from(PropertyValues {
            authentication_method: Some(s("TOKEN")),
            authentication_data: Some(Bytes::from_static(data)),
            ..PropertyValues::default()
        }),
    })
}

#[test]
fn mqtt5_4_12_enhanced_authentication_exchange() {
    let mut h = Harness::with_broker(
        Broker::new(Config::default()).with_enhanced_authenticator(Box::new(Token)),
    );
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "t");
    connect.properties.authentication_method = Some(s("TOKEN"));
    h.send(c, connect_pkt(connect.clone()));
    match h.expect(c) {
        Packet::Auth(a) => {
            assert_eq!(
                a.reason_code,
                ReasonCode::ContinueAuthentication,
                "[MQTT5-4.12.0-2]"
            );
            assert_eq!(
                a.properties.authentication_method,
                Some(s("TOKEN")),
                "[MQTT5-4.12.0-5]"
            );
            assert_eq!(
                a.properties.authentication_data,
                Some(Bytes::from_static(b"who?"))
            );
        }
        other => panic!("expected AUTH, got {other:?}"),
    }
    h.send(c, auth(ReasonCode::ContinueAuthentication, b"me"));
    match h.expect(c) {
        Packet::ConnAck(a) => {
            assert_eq!(a.reason_code, ReasonCode::Success);
            assert_eq!(a.properties.authentication_method, Some(s("TOKEN")));
            assert_eq!(
                a.properties.authentication_data,
                Some(Bytes::from_static(b"welcome"))
            );
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // Re-authentication [MQTT5-4.12.1-1].
    h.send(c, auth(ReasonCode::ReAuthenticate, b""));
    assert!(
        matches!(h.expect(c), Packet::Auth(a) if a.reason_code == ReasonCode::ContinueAuthentication)
    );
    h.send(c, auth(ReasonCode::ContinueAuthentication, b"me"));
    assert!(matches!(h.expect(c), Packet::Auth(a) if a.reason_code == ReasonCode::Success));
    // A failed re-authentication closes [MQTT5-4.12.1-2].
    h.send(c, auth(ReasonCode::ReAuthenticate, b""));
    h.expect(c);
    h.send(c, auth(ReasonCode::ContinueAuthentication, b"not me"));
    assert!(
        matches!(h.expect(c), Packet::Disconnect(d) if d.reason_code == ReasonCode::NotAuthorized)
    );
    assert!(h.is_closed(c));

    // A wrong answer during CONNECT is refused with CONNACK [MQTT5-4.12.0-4].
    let c = h.open(V5);
    h.send(c, connect_pkt(connect));
    h.expect(c);
    h.send(c, auth(ReasonCode::ContinueAuthentication, b"nobody"));
    assert!(
        matches!(h.expect(c), Packet::ConnAck(a) if a.reason_code == ReasonCode::NotAuthorized)
    );
    assert!(h.is_closed(c));
}

#[test]
fn mqtt5_4_12_0_7_auth_without_a_method_is_a_protocol_error() {
    let mut h = Harness::new();
    let c = h.connect(V5, "c");
    h.send(c, auth(ReasonCode::ReAuthenticate, b""));
    assert!(
        matches!(h.expect(c), Packet::Disconnect(d) if d.reason_code == ReasonCode::ProtocolError)
    );
    assert!(h.is_closed(c));
}

#[test]
fn mqtt5_3_1_2_30_only_auth_before_connack() {
    let mut h = Harness::with_broker(
        Broker::new(Config::default()).with_enhanced_authenticator(Box::new(Token)),
    );
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "t");
    connect.properties.authentication_method = Some(s("TOKEN"));
    h.send(c, connect_pkt(connect));
    h.expect(c);
    h.send(c, Packet::PingReq);
    assert!(h.is_closed(c));
    h.expect_nothing(c); // no PINGRESP, no DISCONNECT before CONNACK [MQTT5-3.14.0-1]
}

#[test]
fn mqtt5_protocol_error_disconnect_explains_itself() {
    let mut h = Harness::new();
    let c = h.connect(V5, "c");
    h.send(c, connect_pkt(connect_packet(V5, "c")));
    match h.expect(c) {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason_code, ReasonCode::ProtocolError);
            assert_eq!(d.properties.reason_string, Some(s("second CONNECT")));
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn mqtt5_3_14_2_3_reason_string_left_out_when_too_large() {
    let mut h = Harness::new();
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "c");
    connect.properties.maximum_packet_size = Some(16);
    h.connect_with(c, connect);
    h.send(c, connect_pkt(connect_packet(V5, "c")));
    match h.expect(c) {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason_code, ReasonCode::ProtocolError);
            assert_eq!(d.properties.reason_string, None);
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn mqtt5_3_1_2_29_reason_strings_only_with_problem_information() {
    for (request, expected) in [(None, true), (Some(0), false)] {
        let mut h = Harness::new();
        let c = h.open(V5);
        let mut connect = connect_packet(V5, "c");
        connect.properties.request_problem_information = request;
        h.connect_with(c, connect);
        h.send(
            c,
            Packet::Publish(publish_packet(
                "$SYS/x",
                b"x",
                PublishQos::AtLeastOnce(id(1)),
                false,
            )),
        );
        match h.expect(c) {
            Packet::PubAck(ack) => {
                assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
                assert_eq!(ack.properties.reason_string.is_some(), expected);
            }
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}

#[test]
fn mqtt5_3_1_2_25_resend_too_large_for_the_new_connection_frees_its_slot() {
    let mut h = Harness::new();
    let mut connect = connect_packet(V5, "s");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(60);
    connect.properties.receive_maximum = Some(1);
    let sub = h.open(V5);
    h.connect_with(sub, connect.clone());
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let p = h.connect(V5, "p");
    h.publish(p, "t", &[9u8; 200], QoS::AtLeastOnce, false);
    assert_eq!(h.publishes(sub).len(), 1, "sent, never acknowledged");
    h.drop_connection(sub);
    h.publish(p, "t", b"small", QoS::AtLeastOnce, false);
    connect.properties.maximum_packet_size = Some(64);
    let sub = h.open(V5);
    h.connect_with(sub, connect);
    let got = h.receive_and_ack(sub);
    assert_eq!(
        got.len(),
        1,
        "the big one is dropped, the small one takes its slot"
    );
    assert_eq!(got[0].payload(), Bytes::from_static(b"small"));
}

#[test]
fn mqtt5_3_3_2_14_response_topic_with_wildcards_is_a_protocol_error() {
    let mut h = Harness::new();
    let p = h.connect(V5, "p");
    h.send(
        p,
        publish_with(
            "t",
            Properties::from(PropertyValues {
                response_topic: Some(s("reply/#")),
                ..PropertyValues::default()
            }),
        ),
    );
    assert!(
        matches!(h.expect(p), Packet::Disconnect(d) if d.reason_code == ReasonCode::ProtocolError)
    );
    assert!(h.is_closed(p));
}

/// Hands every step to the caller.
struct AskTheCaller;

impl EnhancedAuthenticator for AskTheCaller {
    fn supports(&self, method: &str) -> bool {
        method == "TOKEN"
    }
    fn start(&mut self, _: &str, _: &str, _: Option<&[u8]>) -> AuthStep {
        AuthStep::Defer
    }
    fn step(&mut self, _: &str, _: &str, _: Option<&[u8]>) -> AuthStep {
        AuthStep::Defer
    }
}

#[test]
fn mqtt5_4_12_enhanced_authentication_steps_can_be_deferred_to_the_caller() {
    let mut h = Harness::with_broker(
        Broker::new(Config::default()).with_enhanced_authenticator(Box::new(AskTheCaller)),
    );
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "t");
    connect.properties.authentication_method = Some(s("TOKEN"));
    connect.properties.authentication_data = Some(Bytes::from_static(b"hello"));
    h.send(c, connect_pkt(connect));
    h.expect_nothing(c);
    let request = h.auth_requests.pop().expect("a request for the caller");
    assert_eq!(request.method.as_deref(), Some("TOKEN"));
    assert_eq!(request.data, Some(Bytes::from_static(b"hello")));
    h.broker
        .continue_auth(
            c.conn,
            AuthStep::Continue(Bytes::from_static(b"who?")),
            h.now,
        )
        .unwrap();
    h.drain();
    assert!(
        matches!(h.expect(c), Packet::Auth(a) if a.reason_code == ReasonCode::ContinueAuthentication)
    );
    assert!(
        h.broker.accept_connect(c.conn, h.now).is_err(),
        "now the client's turn"
    );
    h.send(c, auth(ReasonCode::ContinueAuthentication, b"me"));
    let request = h
        .auth_requests
        .pop()
        .expect("the answer goes to the caller");
    assert_eq!(request.data, Some(Bytes::from_static(b"me")));
    h.broker.accept_connect(c.conn, h.now).unwrap();
    h.drain();
    assert!(matches!(h.expect(c), Packet::ConnAck(a) if a.reason_code == ReasonCode::Success));

    assert!(!request.reauthentication, "a step of CONNECT");
    // Re-authentication deferred, then refused: DISCONNECT [MQTT5-4.12.1-2].
    h.send(c, auth(ReasonCode::ReAuthenticate, b"again"));
    assert_eq!(h.auth_requests.len(), 1);
    assert!(h.auth_requests[0].reauthentication, "[MQTT5-4.12.1-1]");
    h.send(c, Packet::PingReq);
    assert_eq!(
        h.expect(c),
        Packet::PingResp,
        "the connection keeps working meanwhile"
    );
    h.broker
        .reject_connect(c.conn, ReasonCode::NotAuthorized, h.now)
        .unwrap();
    h.drain();
    assert!(
        matches!(h.expect(c), Packet::Disconnect(d) if d.reason_code == ReasonCode::NotAuthorized)
    );
    assert!(h.is_closed(c));
}

#[test]
fn mqtt5_client_auth_before_the_servers_turn_is_refused() {
    let mut h = Harness::with_broker(
        Broker::new(Config::default()).with_enhanced_authenticator(Box::new(AskTheCaller)),
    );
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "t");
    connect.properties.authentication_method = Some(s("TOKEN"));
    h.send(c, connect_pkt(connect));
    h.send(c, auth(ReasonCode::ContinueAuthentication, b"eager"));
    assert!(
        matches!(h.expect(c), Packet::ConnAck(a) if a.reason_code == ReasonCode::ProtocolError)
    );
    assert!(h.is_closed(c));
}

/// A message too large for a subscriber's Maximum Packet Size is left out for it
/// [MQTT5-3.1.2-24], and the next one that fits still arrives, at QoS 0, 1 and 2 (mosquitto's
/// `12-prop-maximum-packet-size-publish-qos*`).
#[test]
fn mqtt5_3_1_2_24_the_message_after_a_too_large_one_still_arrives() {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let mut h = Harness::new();
        let sub = h.open(V5);
        let mut connect = connect_packet(V5, "sub");
        connect.properties.maximum_packet_size = Some(64);
        h.connect_with(sub, connect);
        h.subscribe(sub, "t", qos);
        let p = h.connect(V5, "p");
        h.publish(p, "t", &[9u8; 200], qos, false);
        h.publish(p, "t", b"small", qos, false);
        let got = h.receive_and_ack(sub);
        let payloads: Vec<&[u8]> = got.iter().map(|m| m.payload()).collect();
        assert_eq!(payloads, [b"small".as_ref()], "{qos:?}");
    }
}

/// A server that allows at most QoS 1 (mosquitto's `max_qos 1`).
#[test]
fn mqtt5_3_2_2_9_to_12_a_reduced_maximum_qos_is_announced_and_enforced() {
    let mut h = Harness::with_config(config(|c| c.listener.maximum_qos = QoS::AtLeastOnce));
    let c = h.open(V5);
    h.send(c, connect_pkt(connect_packet(V5, "c")));
    match h.expect(c) {
        Packet::ConnAck(ack) => assert_eq!(ack.properties.maximum_qos, Some(1), "[MQTT5-3.2.2-9]"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // A QoS 2 subscription is accepted, granted at QoS 1 [MQTT5-3.2.2-10].
    h.send(
        c,
        Packet::Subscribe(mqtt_wire::Subscribe {
            packet_id: id(1),
            filters: vec![(
                s("t"),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    ..SubscriptionOptions::default()
                },
            )],
            properties: Properties::default(),
        }),
    );
    match h.expect(c) {
        Packet::SubAck(ack) => assert_eq!(ack.reason_codes, [ReasonCode::GrantedQoS1]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    // A QoS 2 PUBLISH breaks the announced maximum [MQTT5-3.2.2-11]: DISCONNECT 0x9B.
    let publish = publish_packet("t", b"x", PublishQos::ExactlyOnce(id(2)), false);
    h.send(c, Packet::Publish(publish));
    assert!(
        matches!(h.expect(c), Packet::Disconnect(d) if d.reason_code == ReasonCode::QoSNotSupported)
    );
    assert!(h.is_closed(c));

    // A will above the maximum is refused [MQTT5-3.2.2-12].
    let w = h.open(V5);
    let mut connect = connect_packet(V5, "w");
    connect.will = Some(will("lwt", b"gone", QoS::ExactlyOnce, false));
    h.send(w, connect_pkt(connect));
    assert!(
        matches!(h.expect(w), Packet::ConnAck(a) if a.reason_code == ReasonCode::QoSNotSupported)
    );
    assert!(h.is_closed(w));

    // A 3.1.1 client cannot be told: a QoS 2 PUBLISH closes it, as mosquitto does.
    let old = h.connect(V311, "old");
    let publish = publish_packet("t", b"x", PublishQos::ExactlyOnce(id(3)), false);
    h.send(old, Packet::Publish(publish));
    assert!(h.is_closed(old));
}
