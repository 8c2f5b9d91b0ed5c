//! Rules per listener (mosquitto's listener options): mount points keep the clients of a listener
//! in their own part of the topic tree, and maximum QoS, topic aliases and client identifier
//! policy differ between listeners of one broker.

mod common;

use common::*;
use mqtt_broker_core::{Config, ListenerId, ListenerRules};
use mqtt_wire::{ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, SubscriptionOptions};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
/// The tenant's listener; listener 0 has the default rules.
const TENANT: ListenerId = ListenerId(1);

fn with_tenant(rules: impl FnOnce(&mut ListenerRules)) -> Harness {
    let mut tenant = ListenerRules::default();
    rules(&mut tenant);
    Harness::with_config(config(|c| {
        c.listeners.insert(TENANT, tenant);
    }))
}

fn mounted() -> Harness {
    with_tenant(|r| r.mount_point = Some(String::from("tenant/")))
}

fn connect_on(h: &mut Harness, version: ProtocolVersion, client_id: &str) -> TestClient {
    let client = h.open_on(version, TENANT);
    let ack = h.connect_with(client, connect_packet(version, client_id));
    assert_eq!(ack.reason_code, ReasonCode::Success, "CONNACK {ack:?}");
    client
}

fn topics(publishes: &[Publish]) -> Vec<&str> {
    publishes.iter().map(|p| p.topic()).collect()
}

#[test]
fn a_mounted_client_publishes_under_its_mount_point() {
    // mosquitto's 10-listener-mount-point test, both protocol versions.
    for version in [V4, V5] {
        let mut h = mounted();
        let outside = h.connect(version, "outside");
        h.subscribe(outside, "#", QoS::AtMostOnce);
        let tenant = connect_on(&mut h, version, "tenant-client");
        h.publish(tenant, "test", b"mount point", QoS::AtMostOnce, false);
        assert_eq!(topics(&h.publishes(outside)), ["tenant/test"]);
    }
}

#[test]
fn a_mounted_client_sees_only_its_tree_without_the_prefix() {
    for version in [V4, V5] {
        let mut h = mounted();
        let tenant = connect_on(&mut h, version, "tenant-client");
        h.subscribe(tenant, "#", QoS::AtLeastOnce);
        let outside = h.connect(version, "outside");
        h.publish(
            outside,
            "tenant/stat/plug/POWER",
            b"ON",
            QoS::AtLeastOnce,
            false,
        );
        h.publish(
            outside,
            "other/stat/plug/POWER",
            b"ON",
            QoS::AtLeastOnce,
            false,
        );
        h.publish(outside, "tenant", b"not below it", QoS::AtMostOnce, false);
        let received = h.receive_and_ack(tenant);
        assert_eq!(topics(&received), ["stat/plug/POWER"]);
        // Its own messages come back without the prefix too.
        h.publish(tenant, "cmnd/plug/POWER", b"OFF", QoS::AtMostOnce, false);
        assert_eq!(topics(&h.publishes(tenant)), ["cmnd/plug/POWER"]);
    }
}

#[test]
fn retained_messages_under_the_mount_point_reach_a_mounted_subscriber() {
    let mut h = mounted();
    let outside = h.connect(V4, "outside");
    h.publish(
        outside,
        "tenant/tele/plug/LWT",
        b"Online",
        QoS::AtLeastOnce,
        true,
    );
    h.publish(
        outside,
        "tele/plug/LWT",
        b"elsewhere",
        QoS::AtLeastOnce,
        true,
    );
    let tenant = connect_on(&mut h, V4, "tenant-client");
    h.subscribe(tenant, "tele/+/LWT", QoS::AtLeastOnce);
    let received = h.receive_and_ack(tenant);
    assert_eq!(topics(&received), ["tele/plug/LWT"]);
    assert_eq!(received[0].payload(), b"Online");
    assert!(received[0].retain); // [MQTT-3.3.1-8]
}

#[test]
fn a_mounted_client_s_will_stays_under_its_mount_point() {
    let mut h = mounted();
    let outside = h.connect(V4, "outside");
    h.subscribe(outside, "#", QoS::AtMostOnce);
    let tenant = h.open_on(V4, TENANT);
    let mut connect = connect_packet(V4, "plug");
    connect.will = Some(will("tele/plug/LWT", b"Offline", QoS::AtMostOnce, false));
    let ack = h.connect_with(tenant, connect);
    assert_eq!(ack.reason_code, ReasonCode::Success);
    h.drop_connection(tenant);
    // [MQTT-3.1.2-8]: the will is published when the connection drops, behind the mount.
    assert_eq!(topics(&h.publishes(outside)), ["tenant/tele/plug/LWT"]);
}

#[test]
fn unsubscribe_removes_the_mounted_filter() {
    let mut h = mounted();
    let tenant = connect_on(&mut h, V5, "tenant-client");
    h.subscribe(tenant, "cmnd/#", QoS::AtMostOnce);
    let ack = h.unsubscribe(tenant, "cmnd/#");
    assert_eq!(ack.reason_codes, [ReasonCode::Success]); // [MQTT5-3.11.3-1]
    let outside = h.connect(V5, "outside");
    h.publish(outside, "tenant/cmnd/x", b"1", QoS::AtMostOnce, false);
    h.expect_nothing(tenant);
}

#[test]
fn a_shared_subscription_keeps_its_group_and_gets_the_mount_point() {
    let mut h = mounted();
    let tenant = connect_on(&mut h, V5, "worker");
    let ack = h.subscribe(tenant, "$share/workers/jobs/+", QoS::AtMostOnce);
    assert_eq!(ack.reason_codes, [ReasonCode::Success]);
    let outside = h.connect(V5, "outside");
    h.publish(outside, "tenant/jobs/1", b"run", QoS::AtMostOnce, false);
    h.publish(outside, "jobs/2", b"not ours", QoS::AtMostOnce, false);
    assert_eq!(topics(&h.publishes(tenant)), ["jobs/1"]);
}

#[test]
fn an_invalid_filter_stays_invalid_behind_a_mount_point() {
    let mut h = mounted();
    let tenant = connect_on(&mut h, V5, "tenant-client");
    // An empty filter is invalid [MQTT5-4.7.3-1], even though `tenant/` would not be.
    let ack = h.subscribe(tenant, "", QoS::AtMostOnce);
    assert_eq!(ack.reason_codes, [ReasonCode::TopicFilterInvalid]);
}

#[test]
fn outbound_topic_aliases_name_the_topic_the_client_sees() {
    let mut h = mounted();
    let tenant = h.open_on(V5, TENANT);
    let mut connect = connect_packet(V5, "aliased");
    connect.properties.topic_alias_maximum = Some(4);
    assert_eq!(
        h.connect_with(tenant, connect).reason_code,
        ReasonCode::Success
    );
    h.subscribe(tenant, "a/b", QoS::AtMostOnce);
    let outside = h.connect(V5, "outside");
    h.publish(outside, "tenant/a/b", b"1", QoS::AtMostOnce, false);
    h.publish(outside, "tenant/a/b", b"2", QoS::AtMostOnce, false);
    let received = h.publishes(tenant);
    assert_eq!(received.len(), 2);
    // The first names the topic and binds the alias; the second uses the alias alone
    // [MQTT5-3.3.2-12].
    assert_eq!(received[0].topic(), "a/b");
    let alias = received[0].properties.topic_alias;
    assert!(alias.is_some());
    assert_eq!(received[1].topic(), "");
    assert_eq!(received[1].properties.topic_alias, alias);
}

#[test]
fn a_message_queued_outside_the_mount_point_is_not_sent_there() {
    let mut h = mounted();
    // The session subscribes on the plain listener, then goes offline.
    let plain = h.open(V4);
    let mut connect = connect_packet(V4, "roamer");
    connect.clean_start = false;
    h.connect_with(plain, connect.clone());
    h.subscribe(plain, "#", QoS::AtLeastOnce);
    h.disconnect(plain, ReasonCode::Success);
    let outside = h.connect(V4, "outside");
    h.publish(outside, "other/x", b"outside", QoS::AtLeastOnce, false);
    h.publish(outside, "tenant/y", b"inside", QoS::AtLeastOnce, false);
    // It comes back on the mounted listener: only what lies below the mount point reaches it.
    let tenant = h.open_on(V4, TENANT);
    let ack = h.connect_with(tenant, connect);
    assert!(ack.session_present);
    let received = h.receive_and_ack(tenant);
    assert_eq!(topics(&received), ["y"]);
}

#[test]
fn maximum_qos_is_the_listener_s() {
    let mut h = with_tenant(|r| r.maximum_qos = QoS::AtMostOnce);
    let tenant = h.open_on(V5, TENANT);
    let ack = h.connect_with(tenant, connect_packet(V5, "limited"));
    // [MQTT5-3.2.2-9]: a server that does not support QoS 1 and 2 says so in CONNACK.
    assert_eq!(ack.properties.maximum_qos, Some(0));
    // [MQTT5-3.2.2-10]: a subscription is granted at most the Maximum QoS.
    let granted = h.subscribe(tenant, "x", QoS::ExactlyOnce);
    assert_eq!(granted.reason_codes, [ReasonCode::Success]);
    // The other listener keeps the broker's QoS 2.
    let plain = h.open(V5);
    let ack = h.connect_with(plain, connect_packet(V5, "full"));
    assert_eq!(ack.properties.maximum_qos, None);
    let granted = h.subscribe(plain, "x", QoS::ExactlyOnce);
    assert_eq!(granted.reason_codes, [ReasonCode::GrantedQoS2]);
    // [MQTT5-3.2.2-11]: a PUBLISH above the listener's Maximum QoS is a protocol error.
    h.send_publish(
        tenant,
        publish_packet("x", b"1", PublishQos::AtLeastOnce(id(1)), false),
    );
    assert!(h.is_closed(tenant));
}

#[test]
fn user_name_as_client_id_is_the_listener_s() {
    let mut h = with_tenant(|r| r.use_username_as_client_id = true);
    let tenant = h.open_on(V5, TENANT);
    let mut connect = connect_packet(V5, "sent-id");
    connect.username = Some(s("plug"));
    assert_eq!(
        h.connect_with(tenant, connect).reason_code,
        ReasonCode::Success
    );
    let ids: Vec<String> = h
        .broker
        .sessions()
        .map(|s| s.client_id().to_owned())
        .collect();
    assert_eq!(ids, ["plug"]);
    // The plain listener keeps the identifier the client sent.
    h.connect(V5, "sent-id");
    let mut ids: Vec<String> = h
        .broker
        .sessions()
        .map(|s| s.client_id().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["plug", "sent-id"]);
    // Without a user name the tenant listener refuses the client.
    let anonymous = h.open_on(V5, TENANT);
    let ack = h.connect_with(anonymous, connect_packet(V5, "x"));
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
}

#[test]
fn empty_client_ids_and_their_prefix_are_the_listener_s() {
    let mut h = with_tenant(|r| {
        r.allow_empty_client_id = false;
        r.assigned_client_id_prefix = String::from("never-");
    });
    let tenant = h.open_on(V5, TENANT);
    let ack = h.connect_with(tenant, connect_packet(V5, ""));
    // [MQTT5-3.1.3-8]: a server that does not accept an empty identifier answers 0x85.
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
    let plain = h.open(V5);
    let ack = h.connect_with(plain, connect_packet(V5, ""));
    // [MQTT5-3.2.2-16]: the plain listener assigns one, with the default prefix.
    let assigned = ack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("assigned");
    assert!(assigned.starts_with("auto-"), "{assigned}");
}

#[test]
fn a_mount_point_that_cannot_prefix_topics_is_refused() {
    for bad in ["", "a/+/", "a/#"] {
        let mut config = Config::default();
        let mut rules = ListenerRules::default();
        rules.mount_point = Some(bad.to_owned());
        config.listeners.insert(TENANT, rules);
        assert!(config.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn mounted_subscriptions_keep_their_options() {
    let mut h = mounted();
    let tenant = connect_on(&mut h, V5, "tenant-client");
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        ..SubscriptionOptions::default()
    };
    h.subscribe_with(tenant, "loop", options, Default::default());
    // [MQTT5-3.8.3-3]: No Local: its own message does not come back.
    h.publish(tenant, "loop", b"1", QoS::AtLeastOnce, false);
    h.expect_nothing(tenant);
}
