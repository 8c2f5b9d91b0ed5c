//! The breakdowns of the counters that metrics export: by QoS, by drop reason, by protocol
//! version.

mod common;

use common::*;
use mqtt_broker_core::DropReason;
use mqtt_wire::{ProtocolVersion, QoS, ReasonCode};

#[test]
fn messages_are_counted_by_qos_in_both_directions() {
    let mut h = Harness::new();
    let sub = h.connect(V5, "sub");
    h.subscribe(sub, "t", QoS::ExactlyOnce);
    let publisher = h.connect(V311, "pub");
    h.publish(publisher, "t", b"0", QoS::AtMostOnce, false);
    h.publish(publisher, "t", b"1", QoS::AtLeastOnce, false);
    h.publish(publisher, "t", b"2", QoS::ExactlyOnce, false);
    h.publish(publisher, "t", b"2", QoS::ExactlyOnce, false);
    h.receive_and_ack(sub);
    let stats = h.broker.stats();
    assert_eq!(stats.messages_received_by_qos, [1, 1, 2]);
    // Delivered at the lower of the two QoS [MQTT-3.8.4-6]: as published here.
    assert_eq!(stats.messages_sent_by_qos, [1, 1, 2]);
}

#[test]
fn clients_are_counted_by_protocol_version_while_connected() {
    let mut h = Harness::new();
    let a = h.connect(ProtocolVersion::V3_1, "a");
    let _b = h.connect(V311, "b");
    let c = h.connect(V5, "c");
    let _d = h.connect(V5, "d");
    assert_eq!(h.broker.stats().clients_by_protocol, [1, 1, 2]);
    h.disconnect(a, ReasonCode::Success);
    h.drop_connection(c);
    assert_eq!(h.broker.stats().clients_by_protocol, [0, 1, 1]);
    // A takeover moves the client to the new connection's version.
    h.connect(ProtocolVersion::V3_1, "b");
    assert_eq!(h.broker.stats().clients_by_protocol, [1, 0, 1]);
}

#[test]
fn dropped_messages_are_counted_by_reason() {
    let mut h = Harness::with_config(config(|c| c.max_queued_messages = 1));
    let sub = h.open(V311);
    let mut connect = connect_packet(V311, "s");
    connect.clean_start = false;
    h.connect_with(sub, connect);
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    h.disconnect(sub, ReasonCode::Success);
    let publisher = h.connect(V311, "p");
    for _ in 0..3 {
        h.publish(publisher, "t", b"x", QoS::AtLeastOnce, false);
    }
    let stats = h.broker.stats();
    assert_eq!(stats.dropped(DropReason::QueueFull), 2);
    assert_eq!(stats.dropped(DropReason::Expired), 0);
    assert_eq!(stats.messages_dropped, 2);
}

#[test]
fn the_tap_hands_out_at_most_its_rate_of_routed_messages_a_second() {
    let mut h = Harness::with_config(config(|c| c.tap_per_second = 2));
    let publisher = h.connect(V311, "p");
    for payload in [b"1", b"2", b"3"] {
        h.publish(
            publisher,
            "tele/plug/SENSOR",
            payload,
            QoS::AtMostOnce,
            false,
        );
    }
    let tapped: Vec<&[u8]> = h.tapped.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(tapped, [b"1", b"2"]);
    h.advance(std::time::Duration::from_secs(1));
    h.publish(publisher, "tele/plug/SENSOR", b"4", QoS::AtMostOnce, false);
    assert_eq!(h.tapped.len(), 3, "a new second");
    // Off by default: nothing is handed out.
    let mut quiet = Harness::new();
    let publisher = quiet.connect(V311, "p");
    quiet.publish(publisher, "t", b"x", QoS::AtMostOnce, false);
    assert!(quiet.tapped.is_empty());
}

#[test]
fn a_scrape_can_count_messages_in_flight_and_connections_by_listener() {
    let mut h = Harness::new();
    let sub = h.connect(V5, "s");
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let publisher = h.open_on(V311, mqtt_broker_core::ListenerId(3));
    h.connect_with(publisher, connect_packet(V311, "p"));
    h.publish(publisher, "t", b"1", QoS::AtLeastOnce, false);
    h.publish(publisher, "t", b"2", QoS::AtLeastOnce, false);
    // Sent to `s`, not acknowledged yet.
    assert_eq!(h.publishes(sub).len(), 2);
    assert_eq!(h.broker.inflight_messages(), 2);
    let by_listener: Vec<(u16, u64)> = h
        .broker
        .connections_by_listener()
        .into_iter()
        .map(|(l, n)| (l.0, n))
        .collect();
    assert_eq!(by_listener, [(0, 1), (3, 1)]);
}
