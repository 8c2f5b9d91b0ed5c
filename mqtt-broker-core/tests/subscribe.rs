//! Chapter 3.8-3.11 (SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK) and 4.8 (shared subscriptions):
//! reason codes per filter, replacement, limits, authorization, No Local, round-robin groups.

mod common;

use bytes::Bytes;
use common::*;
use mqtt_broker_core::{
    Broker, Config,
    hooks::{Authorization, Authorizer, ClientRef},
};
use mqtt_wire::{Packet, Properties, QoS, ReasonCode, Subscribe, SubscriptionOptions, Unsubscribe};

fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    }
}

/// [MQTT-3.8.4-1] [MQTT-3.9.3-1] [MQTT311-3.8.4-4] [MQTT5-3.8.4-7] [MQTT5-3.9.3-2]
#[test]
fn mqtt_3_8_4_5_and_3_9_3_1_one_code_per_filter_in_order() {
    for (version, invalid) in [
        (V311, ReasonCode::UnspecifiedError),
        (V5, ReasonCode::TopicFilterInvalid),
    ] {
        let mut h = Harness::new();
        let c = h.connect(version, "c");
        h.send(
            c,
            Packet::Subscribe(Subscribe {
                packet_id: id(42),
                filters: vec![
                    (s("a"), options(QoS::ExactlyOnce)),
                    (s("a/#/b"), options(QoS::AtMostOnce)),
                    (s("c/+"), options(QoS::AtLeastOnce)),
                ],
                properties: Properties::default(),
            }),
        );
        match h.expect(c) {
            Packet::SubAck(ack) => {
                assert_eq!(ack.packet_id, id(42), "[MQTT-3.8.4-2]");
                assert_eq!(
                    ack.reason_codes,
                    [ReasonCode::GrantedQoS2, invalid, ReasonCode::GrantedQoS1],
                    "[MQTT5-3.8.4-6] [MQTT-3.9.3-2]"
                );
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
        assert!(!h.is_closed(c));
    }
}

#[test]
fn mqtt_3_8_4_3_identical_filter_replaces_the_subscription() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let sub = h.connect(version, "s");
        h.subscribe(sub, "t", QoS::AtMostOnce);
        h.subscribe(sub, "t", QoS::AtLeastOnce);
        let p = h.connect(version, "p");
        h.publish(p, "t", b"x", QoS::AtLeastOnce, false);
        let got = h.publishes(sub);
        assert_eq!(got.len(), 1, "one subscription, not two");
        assert_eq!(got[0].qos.qos(), QoS::AtLeastOnce);
    }
}

/// [MQTT-3.10.4-5] [MQTT5-3.11.3-2]
#[test]
fn mqtt_3_10_4_1_to_5_unsubscribe_removes_exact_matches_and_always_answers() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let sub = h.connect(version, "s");
        h.subscribe(sub, "a/+", QoS::AtMostOnce);
        let ack = h.unsubscribe(sub, "a/b");
        assert_eq!(ack.packet_id, id(101), "[MQTT-3.10.4-4]");
        if version == V5 {
            assert_eq!(ack.reason_codes, [ReasonCode::NoSubscriptionExisted]);
        } else {
            assert!(ack.reason_codes.is_empty());
        }
        let p = h.connect(version, "p");
        h.publish(p, "a/b", b"x", QoS::AtMostOnce, false);
        assert_eq!(
            h.publishes(sub).len(),
            1,
            "a/b did not remove a/+ [MQTT-3.10.4-1]"
        );
        let ack = h.unsubscribe(sub, "a/+");
        if version == V5 {
            assert_eq!(ack.reason_codes, [ReasonCode::Success]);
        }
        h.publish(p, "a/b", b"x", QoS::AtMostOnce, false);
        assert!(h.publishes(sub).is_empty(), "[MQTT-3.10.4-2]");
    }
}

#[test]
fn mqtt_3_10_4_6_multi_filter_unsubscribe_gets_one_unsuback() {
    let mut h = Harness::new();
    let c = h.connect(V5, "c");
    h.subscribe(c, "a", QoS::AtMostOnce);
    h.send(
        c,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: id(8),
            filters: vec![s("a"), s("b")],
            properties: Properties::default(),
        }),
    );
    match h.expect(c) {
        Packet::UnsubAck(ack) => assert_eq!(
            ack.reason_codes,
            [ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
            "[MQTT5-3.11.3-1]"
        ),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    h.expect_nothing(c);
}

#[test]
fn mqtt_3_10_4_3_unsubscribe_lets_inflight_qos1_complete() {
    let mut h = Harness::new();
    let sub = h.connect(V5, "s");
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"x", QoS::AtLeastOnce, false);
    let got = h.publishes(sub);
    h.unsubscribe(sub, "t");
    let pid = got[0].qos.packet_id().unwrap();
    h.send(sub, Packet::PubAck(mqtt_wire::Ack::new(pid)));
    h.expect_nothing(sub);
    assert!(!h.is_closed(sub));
}

#[test]
fn mqtt5_3_8_3_3_no_local_skips_own_messages() {
    let mut h = Harness::new();
    let c = h.connect(V5, "c");
    h.subscribe_with(
        c,
        "t",
        SubscriptionOptions {
            no_local: true,
            ..options(QoS::AtMostOnce)
        },
        Properties::default(),
    );
    h.publish(c, "t", b"mine", QoS::AtMostOnce, false);
    assert!(h.publishes(c).is_empty());
    let other = h.connect(V5, "o");
    h.publish(other, "t", b"theirs", QoS::AtMostOnce, false);
    assert_eq!(h.publishes(c).len(), 1);
}

#[test]
fn mqtt311_own_messages_are_delivered() {
    let mut h = Harness::new();
    let c = h.connect(V311, "c");
    h.subscribe(c, "t", QoS::AtMostOnce);
    h.publish(c, "t", b"mine", QoS::AtMostOnce, false);
    assert_eq!(h.publishes(c).len(), 1);
}

#[test]
fn a_311_bridge_gets_no_local_and_retain_as_published() {
    // The bridge bit (mosquitto's try_private) is outside the standard; a bridge connecting
    // with it must not get back what it forwarded, and retained messages stay retained, so two
    // brokers bridged both ways on `#` do not loop.
    let mut h = Harness::new();
    let bridge = h.open(V311);
    let mut connect = connect_packet(V311, "bridge");
    connect.bridge = true;
    assert_eq!(
        h.connect_with(bridge, connect).reason_code,
        ReasonCode::Success
    );
    h.subscribe(bridge, "#", QoS::AtLeastOnce);
    h.publish(bridge, "t", b"forwarded", QoS::AtMostOnce, false);
    assert!(h.publishes(bridge).is_empty());
    let other = h.connect(V311, "o");
    h.publish(other, "t", b"retained", QoS::AtMostOnce, true);
    let got = h.publishes(bridge);
    assert_eq!(got.len(), 1);
    assert!(got[0].retain, "retain as published");
    // A shared subscription of a bridge is not no-local (that would be refused).
    h.subscribe(bridge, "$share/g/s", QoS::AtMostOnce);
    h.publish(bridge, "s", b"shared", QoS::AtMostOnce, false);
    assert_eq!(h.publishes(bridge).len(), 1);
}

#[test]
fn mqtt5_3_8_3_4_no_local_on_shared_subscription_is_a_protocol_error() {
    let mut h = Harness::new();
    let c = h.connect(V5, "c");
    h.send(
        c,
        Packet::Subscribe(Subscribe {
            packet_id: id(1),
            filters: vec![(
                s("$share/g/t"),
                SubscriptionOptions {
                    no_local: true,
                    ..options(QoS::AtMostOnce)
                },
            )],
            properties: Properties::default(),
        }),
    );
    match h.expect(c) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::ProtocolError),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert!(h.is_closed(c));
}

#[test]
fn subscription_limit_gets_quota_exceeded() {
    for (version, code) in [
        (V311, ReasonCode::UnspecifiedError),
        (V5, ReasonCode::QuotaExceeded),
    ] {
        let mut h = Harness::with_config(config(|c| c.max_subscriptions_per_client = 2));
        let c = h.connect(version, "c");
        h.subscribe(c, "a", QoS::AtMostOnce);
        h.subscribe(c, "b", QoS::AtMostOnce);
        assert_eq!(h.subscribe(c, "c", QoS::AtMostOnce).reason_codes, [code]);
        assert_eq!(h.broker.stats().subscriptions_refused, 1, "counted");
        assert_eq!(
            h.subscribe(c, "a", QoS::AtLeastOnce).reason_codes,
            [ReasonCode::GrantedQoS1],
            "replacing is fine"
        );
    }
}

struct DenySubscribe;

impl Authorizer for DenySubscribe {
    fn authorize_publish(&mut self, _: &ClientRef<'_>, _: &str, _: QoS, _: bool) -> Authorization {
        Authorization::Allow
    }
    fn authorize_subscribe(&mut self, _: &ClientRef<'_>, filter: &str, _: QoS) -> Authorization {
        if filter.starts_with("private") {
            Authorization::Deny(ReasonCode::NotAuthorized)
        } else {
            Authorization::Allow
        }
    }
}

#[test]
fn unauthorized_subscription_gets_0x87_or_0x80() {
    for (version, code) in [
        (V311, ReasonCode::UnspecifiedError),
        (V5, ReasonCode::NotAuthorized),
    ] {
        let mut h = Harness::with_broker(
            Broker::new(Config::default()).with_authorizer(Box::new(DenySubscribe)),
        );
        let c = h.connect(version, "c");
        assert_eq!(
            h.subscribe(c, "private/x", QoS::AtMostOnce).reason_codes,
            [code]
        );
        let p = h.connect(version, "p");
        h.publish(p, "private/x", b"x", QoS::AtMostOnce, false);
        assert!(h.publishes(c).is_empty());
    }
}

#[test]
fn mqtt5_4_8_2_shared_group_round_robin() {
    let mut h = Harness::new();
    let a = h.connect(V5, "a");
    let b = h.connect(V5, "b");
    h.subscribe(a, "$share/g/t/#", QoS::AtLeastOnce);
    h.subscribe(b, "$share/g/t/#", QoS::AtMostOnce);
    let p = h.connect(V5, "p");
    for _ in 0..4 {
        h.publish(p, "t/x", b"m", QoS::AtLeastOnce, false);
    }
    let to_a = h.receive_and_ack(a);
    let to_b = h.publishes(b);
    assert_eq!(
        (to_a.len(), to_b.len()),
        (2, 2),
        "each message to exactly one member, alternating"
    );
    assert!(to_a.iter().all(|p| p.qos.qos() == QoS::AtLeastOnce));
    assert!(
        to_b.iter().all(|p| p.qos.qos() == QoS::AtMostOnce),
        "[MQTT5-4.8.2-3] member's granted QoS"
    );
}

#[test]
fn mqtt5_4_8_2_shared_group_prefers_connected_members() {
    let mut h = Harness::new();
    let a = h.open(V5);
    let mut connect = connect_packet(V5, "a");
    connect.properties.session_expiry_interval = Some(600);
    h.connect_with(a, connect);
    h.subscribe(a, "$share/g/t", QoS::AtLeastOnce);
    let b = h.connect(V5, "b");
    h.subscribe(b, "$share/g/t", QoS::AtLeastOnce);
    h.drop_connection(a);
    let p = h.connect(V5, "p");
    for _ in 0..3 {
        h.publish(p, "t", b"m", QoS::AtLeastOnce, false);
    }
    assert_eq!(
        h.receive_and_ack(b).len(),
        3,
        "the offline member gets nothing while another is online"
    );
}

#[test]
fn mqtt5_4_8_2_queued_shared_messages_follow_the_group_when_a_member_leaves() {
    let mut h = Harness::new();
    let a = h.open(V5);
    let mut connect = connect_packet(V5, "a");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    connect.properties.receive_maximum = Some(1);
    h.connect_with(a, connect.clone());
    h.subscribe(a, "$share/g/t", QoS::AtLeastOnce);
    let b = h.connect(V5, "b");
    h.subscribe(b, "$share/g/t", QoS::AtLeastOnce);
    let p = h.connect(V5, "p");
    for payload in [b"1", b"2", b"3", b"4"] {
        h.publish(p, "t", payload, QoS::AtLeastOnce, false);
    }
    let to_a = h.publishes(a);
    assert_eq!(to_a.len(), 1, "window of one: the second copy for a waits");
    assert_eq!(to_a[0].payload(), b"1");
    let to_b: Vec<_> = h
        .receive_and_ack(b)
        .into_iter()
        .map(|p| p.into_payload())
        .collect();
    assert_eq!(to_b, [Bytes::from_static(b"2"), Bytes::from_static(b"4")]);
    h.drop_connection(a);
    let moved: Vec<_> = h
        .receive_and_ack(b)
        .into_iter()
        .map(|p| p.into_payload())
        .collect();
    assert_eq!(
        moved,
        [Bytes::from_static(b"3")],
        "queued copy went to the remaining member"
    );
    // The copy a had started stays with a [MQTT5-4.8.2-4].
    let a = h.open(V5);
    h.connect_with(a, connect);
    let resent = h.publishes(a);
    assert_eq!(resent.len(), 1);
    assert!(resent[0].dup);
    assert_eq!(resent[0].payload(), b"1");
}

#[test]
fn mqtt5_shared_subscription_gets_no_retained_messages() {
    let mut h = Harness::new();
    let p = h.connect(V5, "p");
    h.publish(p, "t", b"kept", QoS::AtMostOnce, true);
    let c = h.connect(V5, "c");
    h.subscribe(c, "$share/g/t", QoS::AtMostOnce);
    assert!(h.publishes(c).is_empty());
}
