//! The cluster seam (`Config::cluster`), driven with a fake second node: messages published on
//! one broker leave as `Output::Forward` and enter the other with `Broker::publish_remote`;
//! subscriptions show as `Event::InterestChanged`; a session another node took over is ended
//! with `Broker::session_taken_over`.

mod common;

use std::sync::Arc;

use common::*;
use mqtt_broker_core::{Event, Message};
use mqtt_wire::{Packet, QoS, ReasonCode, SubscriptionOptions};

fn node() -> Harness {
    Harness::with_config(config(|c| c.cluster = true))
}

/// Hands every message `from` forwarded so far to `to`, as a backplane would: routed to its
/// plain subscriptions, and a retained one made its retained message (the backplane's
/// retained set changed).
fn link(from: &mut Harness, to: &mut Harness) {
    for message in std::mem::take(&mut from.forwarded) {
        let message: Message = Arc::unwrap_or_clone(message);
        if message.retain {
            to.broker
                .retain_remote(message.clone(), to.now)
                .expect("valid topic");
        }
        to.broker
            .publish_remote(message, to.now)
            .expect("valid topic");
        to.drain();
    }
}

fn interest(h: &Harness) -> Vec<(String, bool)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::InterestChanged { filter, present } => Some((filter.to_string(), *present)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_message_published_on_one_node_reaches_the_subscribers_of_the_other_once() {
    let (mut a, mut b) = (node(), node());
    let here = a.connect(V5, "here");
    a.subscribe(here, "home/+/state", QoS::AtLeastOnce);
    let there = b.connect(V311, "there");
    b.subscribe(there, "home/#", QoS::AtLeastOnce);
    let publisher = a.connect(V5, "plug");
    a.publish(publisher, "home/plug/state", b"ON", QoS::AtLeastOnce, false);
    assert_eq!(a.forwarded.len(), 1, "handed out once");
    link(&mut a, &mut b);

    assert_eq!(a.receive_and_ack(here).len(), 1);
    let received = b.receive_and_ack(there);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].topic(), "home/plug/state");
    assert_eq!(received[0].payload(), b"ON");
    assert!(
        b.forwarded.is_empty(),
        "a remote message is not handed out again"
    );
}

#[test]
fn a_retained_message_from_another_node_is_retained_here_too() {
    let (mut a, mut b) = (node(), node());
    let device = a.connect(V311, "tasmota");
    a.publish(
        device,
        "tele/tasmota/LWT",
        b"Online",
        QoS::AtLeastOnce,
        true,
    );
    link(&mut a, &mut b);
    let late = b.connect(V311, "dashboard");
    b.subscribe(late, "tele/+/LWT", QoS::AtLeastOnce);
    let retained = b.receive_and_ack(late);
    assert_eq!(retained.len(), 1);
    assert!(
        retained[0].retain,
        "[MQTT-3.3.1-6] sent with RETAIN 1 to a new subscription"
    );
    assert_eq!(retained[0].payload(), b"Online");
}

#[test]
fn routing_a_remote_message_leaves_the_retained_set_to_the_backplane() {
    let (mut a, mut b) = (node(), node());
    let device = a.connect(V311, "tasmota");
    a.publish(device, "tele/tasmota/LWT", b"Online", QoS::AtMostOnce, true);
    let message = Arc::unwrap_or_clone(a.forwarded.remove(0));
    b.broker
        .publish_remote(message.clone(), b.now)
        .expect("valid topic");
    assert_eq!(b.broker.stats().retained_messages, 0);
    b.broker.retain_remote(message, b.now).expect("valid topic");
    assert_eq!(b.broker.stats().retained_messages, 1);
    // An empty retained payload clears [MQTT311-3.3.1-10]; nothing is delivered.
    let watcher = b.connect(V5, "watcher");
    b.subscribe(watcher, "tele/#", QoS::AtMostOnce);
    let _retained = b.publishes(watcher);
    a.publish(device, "tele/tasmota/LWT", b"", QoS::AtMostOnce, true);
    let clear = Arc::unwrap_or_clone(a.forwarded.remove(0));
    b.broker.retain_remote(clear, b.now).expect("valid topic");
    b.drain();
    assert_eq!(b.broker.stats().retained_messages, 0);
    assert!(b.publishes(watcher).is_empty(), "keeping is not delivering");
}

#[test]
fn in_a_cluster_each_shared_group_gets_its_copy_where_the_backplane_says() {
    let (mut a, mut b) = (node(), node());
    let plain = a.connect(V5, "plain");
    a.subscribe(plain, "jobs/+", QoS::AtLeastOnce);
    let (w1, w2) = (a.connect(V5, "w1"), a.connect(V311, "w2"));
    a.subscribe(w1, "$share/pool/jobs/+", QoS::AtLeastOnce);
    a.subscribe(w2, "$share/pool/jobs/+", QoS::AtLeastOnce);
    let other = a.connect(V5, "other");
    a.subscribe(other, "$share/pool/jobs/#", QoS::AtLeastOnce);
    // Published here: the plain subscriber gets it now, the groups through the backplane.
    let publisher = a.connect(V5, "publisher");
    a.publish(publisher, "jobs/1", b"x", QoS::AtLeastOnce, false);
    assert_eq!(a.receive_and_ack(plain).len(), 1);
    let mut none = Vec::new();
    for worker in [w1, w2, other] {
        none.extend(a.receive_and_ack(worker));
    }
    assert!(
        none.is_empty(),
        "no group served before the backplane picks"
    );
    let message = Arc::unwrap_or_clone(a.forwarded.remove(0));
    // The backplane picked this node for `$share/pool/jobs/+`, twice: one member each time,
    // in turn; the group under `jobs/#` is another subscription and gets nothing from it.
    for _ in 0..2 {
        let served = a
            .broker
            .publish_remote_shared(message.clone(), "$share/pool/jobs/+", a.now)
            .expect("a shared filter matching the topic");
        assert!(served);
        a.drain();
    }
    let got: Vec<usize> = [w1, w2, other]
        .into_iter()
        .map(|w| a.receive_and_ack(w).len())
        .collect();
    assert_eq!(got, [1, 1, 0]);
    assert_eq!(
        a.receive_and_ack(plain).len(),
        0,
        "the plain subscriber had its copy"
    );
    // A node without members says so; a filter that is not shared, or does not match, is
    // the caller's mistake.
    assert_eq!(
        b.broker
            .publish_remote_shared(message.clone(), "$share/pool/jobs/+", b.now),
        Ok(false)
    );
    assert!(
        b.broker
            .publish_remote_shared(message.clone(), "jobs/+", b.now)
            .is_err()
    );
    assert!(
        b.broker
            .publish_remote_shared(message, "$share/pool/other/+", b.now)
            .is_err()
    );
}

#[test]
fn without_its_backplane_a_node_serves_its_shared_groups_itself() {
    let mut a = node();
    let (w1, w2) = (a.connect(V5, "w1"), a.connect(V5, "w2"));
    a.subscribe(w1, "$share/pool/jobs/+", QoS::AtLeastOnce);
    a.subscribe(w2, "$share/pool/jobs/+", QoS::AtLeastOnce);
    let publisher = a.connect(V5, "publisher");
    a.broker.set_cluster_link(false);
    a.publish(publisher, "jobs/1", b"x", QoS::AtLeastOnce, false);
    a.publish(publisher, "jobs/2", b"y", QoS::AtLeastOnce, false);
    let got = [a.receive_and_ack(w1).len(), a.receive_and_ack(w2).len()];
    assert_eq!(
        got,
        [1, 1],
        "one member per message, in turn, as a single broker"
    );
    assert_eq!(
        a.forwarded.len(),
        2,
        "still handed out, for the backplane to count"
    );
    a.broker.set_cluster_link(true);
    a.publish(publisher, "jobs/3", b"z", QoS::AtLeastOnce, false);
    let got = [a.receive_and_ack(w1).len(), a.receive_and_ack(w2).len()];
    assert_eq!(got, [0, 0], "the backplane's to place again");
}

#[test]
fn mqtt5_3_8_3_3_no_local_holds_for_a_message_that_came_through_another_node() {
    let (mut a, mut b) = (node(), node());
    let publisher = a.connect(V5, "c");
    a.publish(publisher, "t", b"x", QoS::AtMostOnce, false);
    assert_eq!(
        a.forwarded[0].publisher.as_deref(),
        Some("c"),
        "the publisher's identity travels with the message"
    );
    // The same client identifier subscribed with No Local on the other node, and another client.
    let same = b.connect(V5, "c");
    let no_local = SubscriptionOptions {
        no_local: true,
        ..SubscriptionOptions::default()
    };
    b.subscribe_with(same, "t", no_local, Default::default());
    let other = b.connect(V5, "d");
    b.subscribe_with(other, "t", no_local, Default::default());
    link(&mut a, &mut b);
    assert!(b.publishes(same).is_empty(), "not back to its publisher");
    assert_eq!(b.publishes(other).len(), 1);
}

#[test]
fn interest_is_reported_at_the_first_and_the_last_subscription_of_a_filter() {
    let mut h = node();
    let one = h.connect(V5, "one");
    let two = h.connect(V5, "two");
    h.subscribe(one, "a/+", QoS::AtMostOnce);
    h.subscribe(two, "a/+", QoS::AtLeastOnce);
    h.subscribe(two, "$share/g/b/#", QoS::AtMostOnce);
    assert_eq!(
        interest(&h),
        [("a/+".to_owned(), true), ("$share/g/b/#".to_owned(), true)]
    );
    h.unsubscribe(one, "a/+");
    assert_eq!(interest(&h).len(), 2, "another subscriber remains");
    h.disconnect(two, ReasonCode::Success); // a clean session: its subscriptions end with it
    assert_eq!(
        interest(&h)[2..],
        [
            ("a/+".to_owned(), false),
            ("$share/g/b/#".to_owned(), false)
        ]
    );
}

#[test]
fn a_single_broker_reports_nothing_for_a_cluster() {
    let mut h = Harness::new();
    let (sub, publisher) = subscriber_and_publisher(&mut h, QoS::AtMostOnce);
    h.publish(publisher, "t", b"x", QoS::AtMostOnce, false);
    assert_eq!(h.publishes(sub).len(), 1);
    assert!(h.forwarded.is_empty());
    assert!(interest(&h).is_empty());
}

#[test]
fn wills_are_handed_out_and_sys_messages_are_not() {
    let mut h = Harness::with_config(config(|c| {
        c.cluster = true;
        c.sys_interval = Some(std::time::Duration::from_secs(10));
    }));
    let c = h.open(V311);
    let mut connect = connect_packet(V311, "device");
    connect.will = Some(will("tele/device/LWT", b"Offline", QoS::AtLeastOnce, true));
    h.connect_with(c, connect);
    h.advance(std::time::Duration::from_secs(11));
    assert!(h.forwarded.is_empty(), "$SYS stays on its node");
    h.drop_connection(c);
    let topics: Vec<_> = h.forwarded.iter().map(|m| m.topic.to_string()).collect();
    assert_eq!(topics, ["tele/device/LWT"]);
    // The application's `$SYS/...` is this broker's too.
    let sys = Message::new(
        mqtt_wire::MqttStr::from_static("$SYS/broker/cluster/state"),
        bytes::Bytes::from_static(b"up"),
        QoS::AtMostOnce,
        true,
        h.now,
    );
    h.broker.publish(sys, h.now).expect("valid topic");
    h.drain();
    assert_eq!(h.forwarded.len(), 1);
}

#[test]
fn mqtt5_3_1_4_3_a_session_taken_over_by_another_node_disconnects_its_client_here() {
    let mut a = node();
    let c = a.connect(V5, "c");
    a.subscribe(c, "t", QoS::AtLeastOnce);
    assert!(!a.broker.session_taken_over("nobody", a.now));
    assert!(a.broker.session_taken_over("c", a.now));
    a.drain();
    match a.expect(c) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::SessionTakenOver),
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
    assert!(a.is_closed(c));
    let stats = a.broker.stats();
    assert_eq!((stats.clients_connected, stats.subscriptions), (0, 0));
    assert!(
        interest(&a).contains(&("t".to_owned(), false)),
        "its interest leaves with it"
    );
}

#[test]
fn mqtt311_3_1_4_2_a_taken_over_3_1_1_client_is_closed_and_its_will_published() {
    let mut a = node();
    let watcher = a.connect(V311, "watcher");
    a.subscribe(watcher, "lwt", QoS::AtMostOnce);
    let c = a.open(V311);
    let mut connect = connect_packet(V311, "c");
    connect.will = Some(will("lwt", b"gone", QoS::AtMostOnce, false));
    a.connect_with(c, connect);
    assert!(a.broker.session_taken_over("c", a.now));
    a.drain();
    assert!(a.is_closed(c));
    assert!(
        a.recv_all(c).is_empty(),
        "3.1.1 has no DISCONNECT from the server"
    );
    let wills = a.publishes(watcher);
    assert_eq!(wills.len(), 1);
    assert_eq!(wills[0].payload(), b"gone");
}

/// A v5 CONNECT of `id` with a session that outlives its connection.
fn persistent(id: &str, clean_start: bool) -> mqtt_wire::Connect {
    let mut connect = connect_packet(V5, id);
    connect.clean_start = clean_start;
    connect.properties.session_expiry_interval = Some(300);
    connect
}

#[test]
fn mqtt5_3_2_2_2_a_persistent_session_moves_to_the_node_its_client_connects_to() {
    let (mut a, mut b) = (node(), node());
    b.admit_at_once = false;
    let c = a.open(V5);
    a.connect_with(c, persistent("c", true));
    a.subscribe(c, "cmnd/#", QoS::AtLeastOnce);
    let publisher = a.connect(V5, "publisher");
    a.publish(publisher, "cmnd/plug/POWER", b"ON", QoS::AtLeastOnce, false);
    let unacknowledged = a.publishes(c); // received, never acknowledged
    assert_eq!(unacknowledged.len(), 1);
    a.drop_connection(c);
    a.publish(
        publisher,
        "cmnd/plug/POWER",
        b"OFF",
        QoS::AtLeastOnce,
        false,
    ); // queued

    // The client connects to b, which asks the backplane first.
    let moved = b.open(V5);
    b.send(moved, Packet::Connect(Box::new(persistent("c", false))));
    assert_eq!(b.admissions, [(moved.conn, "c".to_owned(), false)]);
    assert!(
        b.recv_all(moved).is_empty(),
        "no CONNACK before the admission"
    );
    let session = a
        .broker
        .export_session("c", a.now, wall())
        .expect("a holds the session");
    assert_eq!(session.record.subscriptions.len(), 1);
    assert_eq!(session.messages.len(), 2, "one unacknowledged, one queued");
    assert!(
        a.broker.export_session("c", a.now, wall()).is_none(),
        "given up: one session per client identifier"
    );
    b.broker
        .admit(moved.conn, Some(session), b.now, wall())
        .expect("waiting");
    b.drain();
    match b.expect(moved) {
        Packet::ConnAck(ack) => assert!(ack.session_present, "[MQTT5-3.2.2-2] the session resumed"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    let got = b.publishes(moved);
    assert_eq!(
        got.iter()
            .map(|p| (p.payload().to_vec(), p.dup))
            .collect::<Vec<_>>(),
        [(b"ON".to_vec(), true), (b"OFF".to_vec(), false)],
        "the unacknowledged one again with DUP [MQTT5-4.4.0-1], then the queued one"
    );
    assert!(
        interest(&b).contains(&("cmnd/#".to_owned(), true)),
        "its subscription is b's interest now"
    );
}

#[test]
fn mqtt5_3_1_4_3_a_connected_client_is_taken_over_when_its_session_moves() {
    let (mut a, mut b) = (node(), node());
    b.admit_at_once = false;
    let c = a.open(V5);
    a.connect_with(c, persistent("c", true));
    let session = a.broker.export_session("c", a.now, wall());
    a.drain();
    match a.expect(c) {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, ReasonCode::SessionTakenOver),
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
    assert!(a.is_closed(c));
    // A clean start gets no session, whatever was handed over [MQTT5-3.1.2-4].
    let fresh = b.open(V5);
    b.send(fresh, Packet::Connect(Box::new(persistent("c", true))));
    b.broker
        .admit(fresh.conn, session, b.now, wall())
        .expect("waiting");
    b.drain();
    match b.expect(fresh) {
        Packet::ConnAck(ack) => assert!(!ack.session_present),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(
        b.broker.admit(fresh.conn, None, b.now, wall()).is_err(),
        "admitted once"
    );
}

#[test]
fn a_client_the_backplane_never_admits_is_closed_at_the_connect_deadline() {
    let mut b = node();
    b.admit_at_once = false;
    let waiting = b.open(V5);
    b.send(waiting, Packet::Connect(Box::new(persistent("c", false))));
    b.advance(std::time::Duration::from_secs(3600));
    assert!(b.is_closed(waiting));
}

#[test]
fn a_subscriber_falling_behind_messages_from_other_nodes_pauses_the_cluster_as_a_publisher() {
    let (mut a, mut b) = (node(), node());
    let slow = b.connect(V311, "slow");
    b.subscribe(slow, "t", QoS::AtLeastOnce);
    let publisher = a.connect(V5, "publisher");
    for _ in 0..700 {
        a.publish(publisher, "t", b"x", QoS::AtLeastOnce, false);
    }
    link(&mut a, &mut b);
    let cluster = mqtt_broker_core::ConnectionId::CLUSTER;
    assert_eq!(
        b.reading,
        [(cluster, false)],
        "the other nodes are asked to stop, as a client would be paused"
    );
    assert_eq!(b.broker.stats().messages_dropped, 0);
    let mut received = 0;
    while received < 700 {
        let got = b.receive_and_ack(slow).len();
        assert!(got > 0, "everything arrives: {received} so far");
        received += got;
    }
    assert_eq!(
        b.reading,
        [(cluster, false), (cluster, true)],
        "and to go on once it drained"
    );
}
