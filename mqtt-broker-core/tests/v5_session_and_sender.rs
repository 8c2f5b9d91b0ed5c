//! MQTT 5.0: what the broker does when a client breaks a rule it was told in the CONNACK (no
//! topic aliases, Maximum Packet Size), a rejected CONNECT followed by more data, Clean Start
//! processing, the broker as a QoS 2 sender before PUBREC, `$` topics and wildcards, and what a
//! broker's DISCONNECT never carries.

mod common;

use common::*;
use mqtt_broker_core::Config;
use mqtt_wire::{Packet, Properties, PropertyValues, PublishQos, QoS, ReasonCode};

fn expect_disconnect(h: &mut Harness, c: TestClient) -> mqtt_wire::Disconnect {
    match h.take(c, |p| matches!(p, Packet::Disconnect(_))) {
        Packet::Disconnect(d) => d,
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn mqtt5_3_2_2_18_no_topic_alias_maximum_means_no_aliases() {
    let mut rules = Config::default();
    rules.sys_interval = None;
    rules.listener.topic_alias_maximum = 0;
    let mut h = Harness::with_config(rules);
    let c = h.open(V5);
    let ack = h.connect_with(c, connect_packet(V5, "c"));
    assert_eq!(ack.properties.topic_alias_maximum, None);
    // Without a Topic Alias Maximum in the CONNACK the client may send no alias
    // [MQTT5-3.2.2-18]: one that does is disconnected with 0x94; the broker's DISCONNECT
    // carries no Session Expiry Interval [MQTT5-3.14.2-2].
    let mut publish = publish_packet("t", b"x", PublishQos::AtMostOnce, false);
    publish.properties = Properties::from(PropertyValues {
        topic_alias: Some(1),
        ..PropertyValues::default()
    });
    h.send_publish(c, publish);
    let d = expect_disconnect(&mut h, c);
    assert_eq!(d.reason_code, ReasonCode::TopicAliasInvalid);
    assert_eq!(d.properties.session_expiry_interval, None);
    assert!(h.is_closed(c));
}

#[test]
fn mqtt5_3_2_2_15_a_packet_above_the_brokers_maximum_is_refused() {
    let mut h = Harness::with_config(config(|c| c.max_packet_size = 64));
    let c = h.open(V5);
    let ack = h.connect_with(c, connect_packet(V5, "c"));
    assert_eq!(ack.properties.maximum_packet_size, Some(64));
    // A client keeps under the Maximum Packet Size the CONNACK gave it [MQTT5-3.2.2-15]; a
    // larger packet ends the connection (DISCONNECT 0x95, Packet too large).
    h.send_publish(
        c,
        publish_packet("t", &[b'x'; 100], PublishQos::AtMostOnce, false),
    );
    assert_eq!(
        expect_disconnect(&mut h, c).reason_code,
        ReasonCode::PacketTooLarge
    );
    assert!(h.is_closed(c));
}

#[test]
fn mqtt5_3_1_4_6_after_a_refused_connect_nothing_else_is_taken() {
    let mut h = Harness::with_config(config(|c| {
        c.required_client_id_prefix = Some("dev-".into())
    }));
    let watcher = h.open(V5);
    h.connect_with(watcher, connect_packet(V5, "dev-watcher"));
    h.subscribe(watcher, "#", QoS::AtMostOnce);
    // A refused CONNECT with a PUBLISH right behind it in the same read: the broker answers the
    // CONNECT and takes nothing more from that connection [MQTT5-3.1.4-6].
    let c = h.open(V5);
    let mut out = bytes::BytesMut::new();
    Packet::Connect(Box::new(connect_packet(V5, "intruder")))
        .encode(V5, &mut out)
        .expect("encodes");
    Packet::Publish(publish_packet(
        "t",
        b"sneaked",
        PublishQos::AtMostOnce,
        false,
    ))
    .encode(V5, &mut out)
    .expect("encodes");
    h.send_raw(c, &out);
    match h.expect(c) {
        Packet::ConnAck(a) => assert!(a.reason_code.is_error()),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(h.is_closed(c));
    assert!(h.publishes(watcher).is_empty(), "nothing was routed");
}

/// A persistent 5.0 session for `name`, subscribed to `t` at QoS 2 on first use.
fn resume(h: &mut Harness, name: &str, clean: bool) -> (TestClient, bool) {
    let c = h.open(V5);
    let mut connect = connect_packet(V5, name);
    connect.clean_start = clean;
    connect.properties.session_expiry_interval = Some(600);
    let ack = h.connect_with(c, connect);
    (c, ack.session_present)
}

#[test]
fn mqtt5_4_3_3_3_a_qos2_publish_is_unacknowledged_until_pubrec() {
    let mut h = Harness::new();
    let (sub, _) = resume(&mut h, "sub", true);
    h.subscribe(sub, "t", QoS::ExactlyOnce);
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"m", QoS::ExactlyOnce, false);
    let first = h.publishes(sub);
    assert_eq!(first.len(), 1);
    // No PUBREC: the broker holds the PUBLISH as unacknowledged [MQTT5-4.3.3-3] and, on the
    // resumed session, sends the PUBLISH again (DUP 1, same identifier), not a PUBREL.
    h.drop_connection(sub);
    let (sub, present) = resume(&mut h, "sub", false);
    assert!(present);
    let again = h.publishes(sub);
    assert_eq!(again.len(), 1);
    assert!(again[0].dup);
    assert_eq!(again[0].qos, first[0].qos);
}

#[test]
fn mqtt5_3_1_4_4_clean_start_discards_the_session() {
    let mut h = Harness::new();
    let (c, _) = resume(&mut h, "c", true);
    h.subscribe(c, "t", QoS::AtLeastOnce);
    h.drop_connection(c);
    // Clean Start 1 on an accepted CONNECT: the old session and its subscription are gone
    // [MQTT5-3.1.4-4] [MQTT5-3.1.2-4]; Session Present 0.
    let (c, present) = resume(&mut h, "c", true);
    assert!(!present);
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"m", QoS::AtLeastOnce, false);
    assert!(h.publishes(c).is_empty());
}

#[test]
fn mqtt5_4_7_2_1_wildcards_do_not_reach_dollar_topics() {
    let mut h = Harness::new();
    let all = h.connect(V5, "all");
    h.subscribe(all, "#", QoS::AtMostOnce);
    h.subscribe(all, "+/x", QoS::AtMostOnce);
    let dollar = h.connect(V5, "dollar");
    h.subscribe(dollar, "$app/#", QoS::AtMostOnce);
    let p = h.connect(V5, "p");
    h.publish(p, "$app/x", b"d", QoS::AtMostOnce, false);
    h.publish(p, "app/x", b"a", QoS::AtMostOnce, false);
    // A filter starting with a wildcard never matches a topic starting with `$`
    // [MQTT5-4.7.2-1]; "$app/#" does.
    let got: Vec<Vec<u8>> = h
        .publishes(all)
        .iter()
        .map(|p| p.payload().to_vec())
        .collect();
    assert_eq!(got, [b"a".to_vec()], "one copy of app/x, none of $app/x");
    assert_eq!(h.publishes(dollar).len(), 1);
}
