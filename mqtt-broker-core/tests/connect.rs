//! Chapter 3.1/3.2 (CONNECT, CONNACK), 3.12 (PING), 3.14 (DISCONNECT) and 4.13 (errors):
//! connection establishment, client identifiers, takeover, keep alive, authentication, and
//! malformed input.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_broker_core::{
    Broker, Config, Event,
    hooks::{AuthDecision, Authenticator, ConnectCredentials},
};
use mqtt_wire::{Packet, Properties, PropertyValues, QoS, ReasonCode};

#[test]
fn mqtt_3_1_0_1_first_packet_must_be_connect() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let c = h.open(version);
        h.send(c, Packet::PingReq);
        assert!(h.is_closed(c));
        h.expect_nothing(c); // no CONNACK, no DISCONNECT before CONNACK [MQTT5-3.14.0-1]
    }
}

#[test]
fn mqtt311_3_1_0_2_second_connect_closes_the_connection() {
    let mut h = Harness::new();
    let c = h.connect(V311, "a");
    h.send(c, connect_pkt(connect_packet(V311, "a")));
    assert!(h.is_closed(c));
    h.expect_nothing(c);
}

#[test]
fn mqtt5_3_1_0_2_second_connect_is_a_protocol_error() {
    let mut h = Harness::new();
    let c = h.connect(V5, "a");
    h.send(c, connect_pkt(connect_packet(V5, "a")));
    match h.expect(c) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::ProtocolError),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(h.is_closed(c));
    h.expect_nothing(c); // [MQTT5-3.2.0-2] no second CONNACK
}

#[test]
fn mqtt311_3_1_2_2_unsupported_level_gets_connack_0x01() {
    let mut h = Harness::new();
    let c = h.open(V311);
    // CONNECT "MQTT" level 2.
    h.send_raw(
        c,
        &[
            0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 2, 0x02, 0, 60, 0, 1, b'c',
        ],
    );
    match h.expect(c) {
        Packet::ConnAck(ack) => {
            assert_eq!(ack.reason_code, ReasonCode::UnsupportedProtocolVersion);
            assert!(!ack.session_present);
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(h.is_closed(c));
    assert_eq!(h.raw(c)[0][0].as_ref(), [0x20, 0x02, 0x00, 0x01]);
}

#[test]
fn mqtt5_3_1_2_2_unsupported_level_gets_connack_0x84() {
    let mut h = Harness::new();
    let c = h.open(V5);
    h.send_raw(
        c,
        &[
            0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 6, 0x02, 0, 60, 0, 1, b'c',
        ],
    );
    match h.expect(c) {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::UnsupportedProtocolVersion),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(h.is_closed(c));
}

#[test]
fn mqtt_3_1_2_3_reserved_connect_flag_closes_without_connack() {
    let mut h = Harness::new();
    let c = h.open(V311);
    h.send_raw(
        c,
        &[
            0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x03, 0, 60, 0, 1, b'c',
        ],
    );
    assert!(h.is_closed(c));
    h.expect_nothing(c); // [MQTT-3.1.4-1]
}

#[test]
fn mqtt311_3_1_3_8_empty_client_id_needs_clean_session() {
    // The client broke [MQTT-3.1.3-7]; the broker rejects the identifier with CONNACK 0x02 and
    // closes [MQTT-3.1.3-9].
    let mut h = Harness::new();
    let c = h.open(V311);
    let mut connect = connect_packet(V311, "");
    connect.clean_start = false;
    let ack = h.connect_with(c, connect);
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid); // return code 0x02
    assert!(h.is_closed(c));
    assert_eq!(h.raw(c)[0][0].as_ref(), [0x20, 0x02, 0x00, 0x02]);
}

#[test]
fn mqtt_3_1_3_6_empty_client_id_is_assigned() {
    let mut h = Harness::new();
    let c = h.open(V311);
    let ack = h.connect_with(c, connect_packet(V311, ""));
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert!(h.events.iter().any(
        |e| matches!(e, Event::ClientConnected { client_id, .. } if client_id.starts_with("auto-"))
    ));
}

#[test]
fn mqtt5_3_2_2_16_assigned_client_identifier_in_connack() {
    let mut h = Harness::new();
    let first = h.open(V5);
    let a = h.connect_with(first, connect_packet(V5, ""));
    let second = h.open(V5);
    let b = h.connect_with(second, connect_packet(V5, ""));
    let (Some(a), Some(b)) = (
        a.properties.assigned_client_identifier.clone(),
        b.properties.assigned_client_identifier.clone(),
    ) else {
        panic!("assigned client identifiers missing");
    };
    assert_ne!(a, b, "[MQTT5-3.1.3-6] unique");
    assert!(!h.is_closed(first) && !h.is_closed(second));
}

#[test]
fn mqtt31_client_id_limited_to_23_bytes() {
    let mut h = Harness::new();
    let c = h.open(V31);
    let ack = h.connect_with(c, connect_packet(V31, "abcdefghijklmnopqrstuvwxyz"));
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(h.is_closed(c));
    let c = h.connect(V31, "abcdefghijklmnopqrstuvw");
    assert!(!h.is_closed(c));
}

#[test]
fn client_id_longer_than_configured_limit_is_refused() {
    let mut h = Harness::with_config(config(|c| c.max_client_id_len = 4));
    let c = h.open(V5);
    let ack = h.connect_with(c, connect_packet(V5, "abcde"));
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid); // [MQTT5-3.1.3-8]
    assert!(h.is_closed(c));
}

#[test]
fn mqtt311_3_2_2_1_to_3_session_present_follows_clean_session() {
    let mut h = Harness::new();
    let c = h.open(V311);
    let mut connect = connect_packet(V311, "p");
    connect.clean_start = false;
    let ack = h.connect_with(c, connect.clone());
    assert!(
        !ack.session_present,
        "[MQTT311-3.2.2-3] no stored session yet"
    );
    h.disconnect(c, ReasonCode::Success);
    let c = h.open(V311);
    let ack = h.connect_with(c, connect.clone());
    assert!(
        ack.session_present,
        "[MQTT311-3.2.2-2] stored session resumed"
    );
    h.disconnect(c, ReasonCode::Success);
    let c = h.open(V311);
    connect.clean_start = true;
    let ack = h.connect_with(c, connect);
    assert!(!ack.session_present, "[MQTT311-3.2.2-1] clean session");
}

#[test]
fn mqtt5_3_1_2_4_and_5_clean_start_and_session_expiry() {
    let mut h = Harness::new();
    let mut connect = connect_packet(V5, "p");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(60);
    let c = h.open(V5);
    assert!(!h.connect_with(c, connect.clone()).session_present); // [MQTT5-3.1.2-6]
    h.disconnect(c, ReasonCode::Success);
    let c = h.open(V5);
    assert!(
        h.connect_with(c, connect.clone()).session_present,
        "[MQTT5-3.1.2-5] [MQTT5-3.2.2-3]"
    );
    h.disconnect(c, ReasonCode::Success);
    let c = h.open(V5);
    connect.clean_start = true;
    assert!(
        !h.connect_with(c, connect).session_present,
        "[MQTT5-3.1.2-4] [MQTT5-3.2.2-2]"
    );
}

#[test]
fn mqtt311_3_1_4_2_takeover_disconnects_the_existing_client() {
    let mut h = Harness::new();
    let old = h.connect(V311, "same");
    let new = h.connect(V311, "same");
    assert!(h.is_closed(old));
    h.expect_nothing(old);
    assert!(!h.is_closed(new));
}

#[test]
fn mqtt5_3_1_4_3_takeover_sends_0x8e_to_the_existing_client() {
    let mut h = Harness::new();
    let old = h.connect(V5, "same");
    let new = h.connect(V5, "same");
    match h.expect(old) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::SessionTakenOver),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(h.is_closed(old));
    assert!(!h.is_closed(new));
    // The new connection works.
    h.send(new, Packet::PingReq);
    assert_eq!(h.expect(new), Packet::PingResp);
}

#[test]
fn mqtt_3_12_4_1_pingreq_gets_pingresp() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let c = h.connect(version, "a");
        h.send(c, Packet::PingReq);
        assert_eq!(h.expect(c), Packet::PingResp);
    }
}

#[test]
fn mqtt311_3_1_2_24_silent_client_closed_after_one_and_a_half_keep_alive() {
    let mut h = Harness::new();
    let watcher = h.connect(V311, "w");
    h.subscribe(watcher, "will/#", QoS::AtMostOnce);
    let c = h.open(V311);
    let mut connect = connect_packet(V311, "k");
    connect.keep_alive = 10;
    connect.will = Some(will("will/k", b"gone", QoS::AtMostOnce, false));
    h.connect_with(c, connect);
    h.advance(Duration::from_secs(9));
    // A client keeps within its Keep Alive by a PINGREQ when otherwise idle [MQTT-3.1.2-23]: the
    // broker answers and keeps it; one that falls silent is closed at one and a half times it.
    h.send(c, Packet::PingReq); // activity resets the clock
    assert_eq!(h.expect(c), Packet::PingResp);
    h.advance(Duration::from_secs(14));
    assert!(!h.is_closed(c));
    h.advance(Duration::from_secs(2));
    assert!(h.is_closed(c));
    let wills = h.publishes(watcher);
    assert_eq!(
        wills.len(),
        1,
        "the will is published on keep alive timeout"
    );
    assert_eq!(wills[0].payload(), Bytes::from_static(b"gone"));
}

#[test]
fn mqtt5_3_1_2_22_keep_alive_timeout_sends_0x8d() {
    let mut h = Harness::new();
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "k");
    connect.keep_alive = 4;
    h.connect_with(c, connect);
    h.advance(Duration::from_secs(6));
    match h.expect(c) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::KeepAliveTimeout),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(h.is_closed(c));
}

#[test]
fn mqtt5_3_2_2_21_server_keep_alive_lowers_the_client_value() {
    let mut h = Harness::with_config(config(|c| c.max_keep_alive = 30));
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "k");
    connect.keep_alive = 0;
    let ack = h.connect_with(c, connect);
    assert_eq!(ack.properties.server_keep_alive, Some(30));
    h.advance(Duration::from_secs(46));
    assert!(h.is_closed(c), "the server keep alive is enforced");
    // [MQTT5-3.2.2-22]: without a Server Keep Alive the client's value is used.
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "k2");
    connect.keep_alive = 20;
    let ack = h.connect_with(c, connect);
    assert_eq!(ack.properties.server_keep_alive, None);
}

#[test]
fn connection_without_connect_closes_at_the_deadline() {
    let mut h = Harness::new();
    let c = h.open(V311);
    h.send_raw(c, &[0x10]); // a partial packet is not a CONNECT
    h.advance(Duration::from_secs(9));
    assert!(!h.is_closed(c));
    h.advance(Duration::from_secs(2));
    assert!(h.is_closed(c));
    h.expect_nothing(c);
}

#[test]
fn mqtt5_4_13_1_1_malformed_packet_gets_disconnect_0x81() {
    let mut h = Harness::new();
    let c = h.connect(V5, "m");
    // SUBSCRIBE with fixed-header flags 0000 [MQTT-3.8.1-1].
    h.send_raw(c, &[0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a']);
    match h.expect(c) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::MalformedPacket),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(h.is_closed(c));
}

#[test]
fn mqtt311_4_8_0_1_malformed_packet_closes() {
    let mut h = Harness::new();
    let c = h.connect(V311, "m");
    h.send_raw(c, &[0x62, 0x02, 0x00, 0x00]); // PUBREL with packet id 0
    assert!(h.is_closed(c));
    h.expect_nothing(c);
}

#[test]
fn garbage_never_panics_and_ends_in_close() {
    let mut h = Harness::new();
    let c = h.open(V5);
    h.send_raw(c, &[0xff; 64]);
    assert!(h.is_closed(c));
}

#[test]
fn mqtt5_3_1_4_1_packet_larger_than_maximum_gets_0x95() {
    let mut h = Harness::with_config(config(|c| c.max_packet_size = 128));
    let c = h.connect(V5, "big");
    h.publish(c, "t", b"small", QoS::AtMostOnce, false);
    h.send_raw(c, &[0x30, 0xff, 0x01]); // PUBLISH announcing 255 bytes
    match h.expect(c) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::PacketTooLarge),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(h.is_closed(c));
}

struct Password(&'static [u8]);

impl Authenticator for Password {
    fn authenticate(&mut self, credentials: &ConnectCredentials<'_>) -> AuthDecision {
        if credentials.password == Some(self.0) {
            AuthDecision::Accept
        } else if credentials.username == Some("later") {
            AuthDecision::Defer
        } else {
            AuthDecision::Reject(ReasonCode::BadUserNameOrPassword)
        }
    }
}

fn password_broker() -> Harness {
    Harness::with_broker(
        Broker::new(Config::default()).with_authenticator(Box::new(Password(b"pw"))),
    )
}

#[test]
fn mqtt5_3_1_4_2_failed_authentication_is_refused_and_closed() {
    for (version, raw) in [(V311, 0x04u8), (V5, 0x86u8)] {
        let mut h = password_broker();
        let c = h.open(version);
        let mut connect = connect_packet(version, "a");
        connect.username = Some(s("u"));
        connect.password = Some(Bytes::from_static(b"wrong"));
        let ack = h.connect_with(c, connect);
        assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword);
        assert!(!ack.session_present, "[MQTT311-3.2.2-4] [MQTT5-3.2.2-6]");
        assert!(h.is_closed(c), "[MQTT311-3.2.2-5] [MQTT5-3.2.2-7]");
        assert_eq!(h.raw(c)[0][0].as_ref()[3], raw);
        assert_eq!(
            h.broker.stats().auth_failures,
            1,
            "counted as an auth failure"
        );
    }
}

#[test]
fn mqtt311_3_1_4_5_mqtt5_3_1_4_6_input_after_refusal_is_ignored() {
    for version in [V311, V5] {
        let mut h = password_broker();
        let c = h.open(version);
        let mut connect = connect_packet(version, "a");
        connect.username = Some(s("u"));
        let mut bytes = bytes::BytesMut::new();
        connect_pkt(connect).encode(version, &mut bytes).unwrap();
        Packet::PingReq.encode(version, &mut bytes).unwrap();
        h.send_raw(c, &bytes);
        assert!(matches!(h.expect(c), Packet::ConnAck(_)));
        h.expect_nothing(c); // no PINGRESP
    }
}

#[test]
fn deferred_authentication_is_answered_later() {
    let mut h = password_broker();
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "d");
    connect.username = Some(s("later"));
    h.send(c, connect_pkt(connect.clone()));
    h.expect_nothing(c);
    assert_eq!(h.auth_requests.len(), 1);
    assert_eq!(h.auth_requests[0].client_id, "d");
    assert!(!h.auth_requests[0].reauthentication);
    h.broker.accept_connect(c.conn, h.now).unwrap();
    h.drain();
    assert!(matches!(h.expect(c), Packet::ConnAck(a) if a.reason_code == ReasonCode::Success));
    let connected = h.events.iter().find_map(|e| match e {
        Event::ClientConnected {
            conn,
            username,
            protocol,
            keep_alive,
            ..
        } if *conn == c.conn => Some((username.as_deref(), *protocol, *keep_alive)),
        _ => None,
    });
    assert_eq!(
        connected,
        Some((Some("later"), V5, connect.keep_alive)),
        "the event names who connected, how"
    );
    assert!(
        h.broker.accept_connect(c.conn, h.now).is_err(),
        "nothing pending any more"
    );

    let c = h.open(V5);
    connect.client_id = s("e");
    h.send(c, connect_pkt(connect));
    h.broker
        .reject_connect(c.conn, ReasonCode::NotAuthorized, h.now)
        .unwrap();
    h.drain();
    assert!(
        matches!(h.expect(c), Packet::ConnAck(a) if a.reason_code == ReasonCode::NotAuthorized)
    );
    assert!(h.is_closed(c));
}

#[test]
fn mqtt5_4_12_0_1_unsupported_authentication_method_gets_0x8c() {
    let mut h = Harness::new();
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "x");
    connect.properties = Properties::from(PropertyValues {
        authentication_method: Some(s("SCRAM-SHA-1")),
        ..PropertyValues::default()
    });
    let ack = h.connect_with(c, connect);
    assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod);
    assert!(h.is_closed(c));
}

#[test]
fn mqtt5_3_2_2_connack_announces_limits() {
    let mut h = Harness::new();
    let c = h.open(V5);
    let ack = h.connect_with(c, connect_packet(V5, "l"));
    let config = Config::default();
    assert_eq!(ack.properties.receive_maximum, Some(config.receive_maximum));
    assert_eq!(
        ack.properties.maximum_packet_size,
        Some(config.max_packet_size)
    );
    assert_eq!(
        ack.properties.topic_alias_maximum,
        Some(config.listener.topic_alias_maximum)
    );
    assert_eq!(
        ack.properties.response_information, None,
        "[MQTT5-3.1.2-28]"
    );
    assert_eq!(
        ack.properties.authentication_method, None,
        "[MQTT5-4.12.0-6]"
    );
}

#[test]
fn mqtt5_session_expiry_above_maximum_is_announced() {
    let mut h = Harness::with_config(config(|c| c.max_session_expiry_interval = 100));
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "l");
    connect.properties.session_expiry_interval = Some(1000);
    let ack = h.connect_with(c, connect);
    assert_eq!(ack.properties.session_expiry_interval, Some(100));
}

#[test]
fn mqtt5_3_14_disconnect_is_never_answered() {
    let mut h = Harness::new();
    let c = h.connect(V5, "d");
    h.disconnect(c, ReasonCode::Success);
    assert!(h.is_closed(c));
    h.expect_nothing(c);
}

#[test]
fn shutdown_disconnects_everyone_with_0x8b() {
    let mut h = Harness::new();
    let v5 = h.connect(V5, "a");
    let v3 = h.connect(V311, "b");
    h.broker.shutdown(h.now);
    h.drain();
    assert!(
        matches!(h.expect(v5), Packet::Disconnect(d) if d.reason_code == ReasonCode::ServerShuttingDown)
    );
    h.expect_nothing(v3);
    assert!(h.is_closed(v5) && h.is_closed(v3));
}

struct NoWills;

impl mqtt_broker_core::hooks::Authorizer for NoWills {
    fn authorize_publish(
        &mut self,
        _: &mqtt_broker_core::hooks::ClientRef<'_>,
        topic: &str,
        _: QoS,
        _: bool,
    ) -> mqtt_broker_core::hooks::Authorization {
        if topic.starts_with("will/") {
            mqtt_broker_core::hooks::Authorization::Deny(ReasonCode::NotAuthorized)
        } else {
            mqtt_broker_core::hooks::Authorization::Allow
        }
    }
    fn authorize_subscribe(
        &mut self,
        _: &mqtt_broker_core::hooks::ClientRef<'_>,
        _: &str,
        _: QoS,
    ) -> mqtt_broker_core::hooks::Authorization {
        mqtt_broker_core::hooks::Authorization::Allow
    }
}

#[test]
fn will_to_a_forbidden_topic_refuses_the_connect() {
    for version in [V311, V5] {
        let mut h =
            Harness::with_broker(Broker::new(Config::default()).with_authorizer(Box::new(NoWills)));
        let c = h.open(version);
        let mut connect = connect_packet(version, "w");
        connect.will = Some(will("will/w", b"x", QoS::AtMostOnce, false));
        let ack = h.connect_with(c, connect);
        assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
        assert!(h.is_closed(c));
    }
}

#[test]
fn mqtt31_connack_has_no_session_present_flag() {
    let mut h = Harness::new();
    let mut connect = connect_packet(V31, "old");
    connect.clean_start = false;
    let c = h.open(V31);
    h.connect_with(c, connect.clone());
    h.disconnect(c, ReasonCode::Success);
    let c = h.open(V31);
    assert!(!h.connect_with(c, connect).session_present);
    assert_eq!(h.raw(c)[0][0].as_ref(), [0x20, 0x02, 0x00, 0x00]);
}

#[test]
fn broker_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Broker>();
}

#[test]
fn answering_a_plain_deferral_with_a_challenge_is_a_caller_mistake() {
    let mut h = password_broker();
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "d");
    connect.username = Some(s("later"));
    h.send(c, connect_pkt(connect));
    let challenge = mqtt_broker_core::hooks::AuthStep::Continue(Bytes::from_static(b"?"));
    assert_eq!(
        h.broker.continue_auth(c.conn, challenge, h.now),
        Err(mqtt_broker_core::ApiMisuse::NoAuthenticationMethod(
            c.conn.0
        ))
    );
    assert_eq!(
        h.broker.reject_connect(c.conn, ReasonCode::Success, h.now),
        Err(mqtt_broker_core::ApiMisuse::NotAFailureReason(
            ReasonCode::Success
        ))
    );
    h.broker.accept_connect(c.conn, h.now).unwrap();
    h.drain();
    assert!(matches!(h.expect(c), Packet::ConnAck(a) if a.reason_code == ReasonCode::Success));
}

#[test]
fn unanswered_deferral_ends_at_the_connect_deadline() {
    let mut h = password_broker();
    let c = h.open(V311);
    let mut connect = connect_packet(V311, "d");
    connect.username = Some(s("later"));
    h.send(c, connect_pkt(connect));
    h.advance(Duration::from_secs(11));
    assert!(h.is_closed(c));
    assert!(
        h.broker.accept_connect(c.conn, h.now).is_err(),
        "closed and forgotten"
    );
}

#[test]
fn mqtt311_keep_alive_above_the_maximum_is_refused() {
    let mut h = Harness::with_config(config(|c| c.max_keep_alive = 30));
    for keep_alive in [0, 31] {
        let c = h.open(V311);
        let mut connect = connect_packet(V311, "k");
        connect.keep_alive = keep_alive;
        let ack = h.connect_with(c, connect);
        assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
        assert!(h.is_closed(c));
    }
    let c = h.open(V311);
    let mut connect = connect_packet(V311, "k");
    connect.keep_alive = 30;
    assert_eq!(h.connect_with(c, connect).reason_code, ReasonCode::Success);
}

#[test]
fn mqtt311_3_1_2_1_wrong_protocol_name_closes() {
    let mut h = Harness::new();
    let c = h.open(V311);
    h.send_raw(
        c,
        &[
            0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'X', 4, 0x02, 0, 60, 0, 1, b'c',
        ],
    );
    assert!(h.is_closed(c));
}

/// [MQTT311-3.1.4-4] [MQTT5-3.1.4-5] [MQTT-3.2.0-1] [MQTT5-3.2.2-1]
#[test]
fn mqtt_3_1_3_5_short_alphanumeric_client_ids_are_accepted() {
    for version in [V31, V311, V5] {
        for id in ["a", "0123456789abcdefghijklm"] {
            let mut h = Harness::new();
            let c = h.open(version);
            let ack = h.connect_with(c, connect_packet(version, id));
            assert_eq!(ack.reason_code, ReasonCode::Success);
            let first = &h.raw(c)[0][0];
            assert_eq!(first[0], 0x20, "the first packet is CONNACK");
            assert_eq!(first[2] & 0xfe, 0, "acknowledge flags bits 7-1 are zero");
        }
    }
}

#[test]
fn mqtt5_3_2_2_13_retained_will_without_retain_support_is_refused() {
    let mut h = Harness::with_config(config(|c| c.retain_available = false));
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "w");
    connect.will = Some(will("w", b"x", QoS::AtMostOnce, true));
    let ack = h.connect_with(c, connect);
    assert_eq!(ack.reason_code, ReasonCode::RetainNotSupported);
    assert!(h.is_closed(c), "[MQTT5-4.13.2-1]");
}

/// Fixed-header flags and empty payloads that make a packet malformed: the codec refuses them,
/// the broker closes (after DISCONNECT 0x81 for v5).
#[test]
fn mqtt_3_6_1_1_3_10_1_1_3_14_1_1_malformed_headers_close() {
    let cases: [(&str, &[u8]); 6] = [
        (
            "PUBREL flags 0000 [MQTT-3.6.1-1]",
            &[0x60, 0x02, 0x00, 0x01],
        ),
        (
            "UNSUBSCRIBE flags 0000 [MQTT-3.10.1-1]",
            &[0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'],
        ),
        ("DISCONNECT flags 0001 [MQTT-3.14.1-1]", &[0xe1, 0x00]),
        (
            "SUBSCRIBE without filters [MQTT311-3.8.3-3] [MQTT5-3.8.3-2]",
            &[0x82, 0x02, 0x00, 0x01],
        ),
        (
            "UNSUBSCRIBE without filters [MQTT-3.10.3-2]",
            &[0xa2, 0x02, 0x00, 0x01],
        ),
        (
            "SUBSCRIBE QoS 3 [MQTT311-3.8.3-4]",
            &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03],
        ),
    ];
    for version in [V311, V5] {
        for (what, bytes) in cases {
            let mut h = Harness::new();
            let c = h.connect(version, "m");
            h.send_raw(c, bytes);
            assert!(h.is_closed(c), "{what} {version:?}");
            if version == V5 {
                assert!(
                    matches!(h.recv(c), Some(Packet::Disconnect(d)) if d.reason_code.is_error()),
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn mqtt5_3_15_1_1_auth_with_flags_closes() {
    let mut h = Harness::new();
    let c = h.connect(V5, "a");
    h.send_raw(c, &[0xf1, 0x00]);
    assert!(h.is_closed(c));
}

/// mosquitto's `use_username_as_clientid`: the user name is the client identifier, so two
/// devices sharing credentials take each other over; a client without a user name is refused.
#[test]
fn the_user_name_can_be_the_client_identifier() {
    let mut h = Harness::with_config(config(|c| c.listener.use_username_as_client_id = true));
    for version in [V311, V5] {
        let c = h.open(version);
        let mut connect = connect_packet(version, "sent-id");
        connect.username = Some(s("plug-7"));
        h.send(c, connect_pkt(connect));
        assert!(matches!(h.expect(c), Packet::ConnAck(a) if a.reason_code == ReasonCode::Success));
        let joined = h.events.iter().rev().find_map(|e| match e {
            Event::ClientConnected {
                conn, client_id, ..
            } if *conn == c.conn => Some(client_id.to_string()),
            _ => None,
        });
        assert_eq!(joined.as_deref(), Some("plug-7"), "{version:?}");
    }
    // No user name: refused.
    let c = h.open(V5);
    h.send(c, connect_pkt(connect_packet(V5, "anonymous")));
    assert!(
        matches!(h.expect(c), Packet::ConnAck(a) if a.reason_code == ReasonCode::NotAuthorized)
    );
    assert!(h.is_closed(c));
}

/// mosquitto's `clientid_prefixes`: only client identifiers with the prefix are admitted.
#[test]
fn only_client_identifiers_with_the_required_prefix_are_admitted() {
    let mut h = Harness::with_config(config(|c| {
        c.required_client_id_prefix = Some("sonoff-".into())
    }));
    let ok = h.open(V311);
    h.send(ok, connect_pkt(connect_packet(V311, "sonoff-kitchen")));
    assert!(matches!(h.expect(ok), Packet::ConnAck(a) if a.reason_code == ReasonCode::Success));
    for version in [V311, V5] {
        let c = h.open(version);
        h.send(c, connect_pkt(connect_packet(version, "intruder")));
        match h.expect(c) {
            Packet::ConnAck(a) => assert!(a.reason_code.is_error(), "{version:?}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        assert!(h.is_closed(c));
    }
}
