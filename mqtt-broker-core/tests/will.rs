//! Chapter 3.1.2.5-3.1.3 (the will message) and 3.14.4 (DISCONNECT and the will): when a will
//! fires, with which QoS and RETAIN, and the v5 will delay.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_wire::{Disconnect, Packet, Properties, PropertyValues, ProtocolVersion, QoS, ReasonCode};

/// A watcher subscribed to `will/#` and a client `w` whose will goes to `will/w`.
fn setup(
    version: ProtocolVersion,
    qos: QoS,
    retain: bool,
    delay: Option<u32>,
    expiry: Option<u32>,
) -> (Harness, TestClient, TestClient) {
    let mut h = Harness::new();
    let watcher = h.connect(version, "watcher");
    h.subscribe(watcher, "will/#", QoS::ExactlyOnce);
    let c = h.open(version);
    let mut connect = connect_packet(version, "w");
    let mut last_will = will("will/w", b"bye", qos, retain);
    last_will.properties.will_delay_interval = delay;
    last_will.properties.user_properties = vec![(s("k1"), s("v1")), (s("k2"), s("v2"))];
    connect.will = Some(last_will);
    connect.properties.session_expiry_interval = expiry;
    h.connect_with(c, connect);
    (h, watcher, c)
}

#[test]
fn mqtt_3_1_2_8_will_published_when_the_connection_drops() {
    for version in [V31, V311, V5] {
        let (mut h, watcher, c) = setup(version, QoS::AtLeastOnce, false, None, None);
        h.drop_connection(c);
        let got = h.receive_and_ack(watcher);
        assert_eq!(got.len(), 1, "{version:?}");
        assert_eq!(got[0].topic(), "will/w");
        assert_eq!(got[0].payload(), Bytes::from_static(b"bye"));
        assert_eq!(got[0].qos.qos(), QoS::AtLeastOnce);
    }
}

#[test]
fn mqtt_3_14_4_3_will_discarded_on_disconnect() {
    for version in [V311, V5] {
        let (mut h, watcher, c) = setup(version, QoS::AtMostOnce, false, None, None);
        h.disconnect(c, ReasonCode::Success);
        assert!(h.is_closed(c));
        assert!(h.publishes(watcher).is_empty(), "[MQTT-3.1.2-10]");
    }
}

#[test]
fn mqtt5_disconnect_with_will_message_publishes_the_will() {
    let (mut h, watcher, c) = setup(V5, QoS::AtMostOnce, false, None, None);
    h.disconnect(c, ReasonCode::DisconnectWithWillMessage);
    assert_eq!(h.publishes(watcher).len(), 1);
}

#[test]
fn mqtt311_3_1_2_17_retained_will_is_retained() {
    let (mut h, watcher, c) = setup(V311, QoS::AtMostOnce, true, None, None);
    h.drop_connection(c);
    assert_eq!(h.publishes(watcher).len(), 1);
    let late = h.connect(V311, "late");
    h.subscribe(late, "will/w", QoS::AtMostOnce);
    let got = h.publishes(late);
    assert_eq!(got.len(), 1);
    assert!(got[0].retain);
}

#[test]
fn mqtt311_3_1_2_16_non_retained_will_is_not_retained() {
    let (mut h, _watcher, c) = setup(V311, QoS::AtMostOnce, false, None, None);
    h.drop_connection(c);
    let late = h.connect(V311, "late");
    h.subscribe(late, "will/w", QoS::AtMostOnce);
    assert!(h.publishes(late).is_empty());
}

#[test]
fn mqtt311_3_1_2_12_no_will_flag_no_will() {
    let mut h = Harness::new();
    let watcher = h.connect(V311, "watcher");
    h.subscribe(watcher, "#", QoS::AtMostOnce);
    let c = h.connect(V311, "quiet");
    h.drop_connection(c);
    assert!(h.publishes(watcher).is_empty());
}

#[test]
fn mqtt5_3_1_3_10_will_keeps_user_property_order() {
    let (mut h, watcher, c) = setup(V5, QoS::AtMostOnce, false, None, None);
    h.drop_connection(c);
    let got = h.publishes(watcher);
    assert_eq!(
        got[0].properties.user_properties,
        vec![(s("k1"), s("v1")), (s("k2"), s("v2"))]
    );
}

#[test]
fn mqtt5_3_1_2_8_will_waits_for_its_delay() {
    let (mut h, watcher, c) = setup(V5, QoS::AtMostOnce, false, Some(10), Some(100));
    h.drop_connection(c);
    h.advance(Duration::from_secs(9));
    assert!(h.publishes(watcher).is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.publishes(watcher).len(), 1);
}

#[test]
fn mqtt5_3_1_3_9_reconnecting_within_the_delay_suppresses_the_will() {
    let (mut h, watcher, c) = setup(V5, QoS::AtMostOnce, false, Some(10), Some(100));
    h.drop_connection(c);
    h.advance(Duration::from_secs(5));
    let back = h.open(V5);
    let mut connect = connect_packet(V5, "w");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(100);
    assert!(h.connect_with(back, connect).session_present);
    h.advance(Duration::from_secs(20));
    assert!(h.publishes(watcher).is_empty());
}

#[test]
fn mqtt5_3_1_2_8_will_fires_when_the_session_ends_first() {
    let (mut h, watcher, c) = setup(V5, QoS::AtMostOnce, false, Some(60), Some(5));
    h.drop_connection(c);
    h.advance(Duration::from_secs(4));
    assert!(h.publishes(watcher).is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.publishes(watcher).len(),
        1,
        "session expiry ends the wait"
    );
}

#[test]
fn mqtt5_will_without_session_fires_at_once_despite_delay() {
    let (mut h, watcher, c) = setup(V5, QoS::AtMostOnce, false, Some(60), None);
    h.drop_connection(c);
    assert_eq!(
        h.publishes(watcher).len(),
        1,
        "session expiry 0 ends the session at close"
    );
}

#[test]
fn mqtt5_4_13_1_1_will_published_on_protocol_error() {
    let (mut h, watcher, c) = setup(V5, QoS::AtMostOnce, false, None, None);
    h.send(c, connect_pkt(connect_packet(V5, "w")));
    assert!(h.is_closed(c));
    assert_eq!(h.publishes(watcher).len(), 1, "close without DISCONNECT");
}

#[test]
fn mqtt311_takeover_publishes_the_old_will() {
    let (mut h, watcher, c) = setup(V311, QoS::AtMostOnce, false, None, None);
    let _new = h.connect(V311, "w");
    assert!(h.is_closed(c));
    assert_eq!(h.publishes(watcher).len(), 1);
}

#[test]
fn mqtt5_takeover_cancels_a_delayed_will() {
    let (mut h, watcher, c) = setup(V5, QoS::AtMostOnce, false, Some(30), Some(100));
    let _new = h.connect(V5, "w");
    assert!(h.is_closed(c));
    h.advance(Duration::from_secs(60));
    assert!(h.publishes(watcher).is_empty());
}

#[test]
fn mqtt5_server_disconnect_is_not_a_clean_disconnect() {
    let (mut h, watcher, c) = setup(V5, QoS::AtMostOnce, false, None, None);
    // A client DISCONNECT carrying a session expiry after 0 at CONNECT is a protocol error:
    // the broker closes, and the will is published.
    h.send(
        c,
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::Success,
            properties: Properties::from(PropertyValues {
                session_expiry_interval: Some(30),
                ..PropertyValues::default()
            }),
        }),
    );
    assert!(h.is_closed(c));
    assert!(
        matches!(h.recv(c), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::ProtocolError)
    );
    assert_eq!(h.publishes(watcher).len(), 1);
}
