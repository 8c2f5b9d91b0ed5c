//! Backpressure on the virtual clock: a publisher feeding a connected QoS 1 subscriber whose
//! queue passes half its bound is paused, resumes when the queue drains under a quarter, and
//! resumes anyway after `max_publisher_pause`, after which the full queue drops and counts.

mod common;

use std::time::Duration;

use common::*;
use mqtt_broker_core::DropReason;
use mqtt_wire::{Packet, PublishQos, QoS};

/// Queue bound 8 (high-water 4, low-water 2), window 2, pause at most 5 s.
fn harness(pause: Duration) -> Harness {
    Harness::with_config(config(|c| {
        c.max_queued_messages = 8;
        c.receive_maximum = 2;
        c.max_publisher_pause = pause;
    }))
}

/// Sends one QoS 1 PUBLISH without waiting for its PUBACK.
fn send_publish(h: &mut Harness, publisher: TestClient, packet_id: u16) {
    let packet = publish_packet("t", b"m", PublishQos::AtLeastOnce(id(packet_id)), false);
    h.send_publish(publisher, packet);
}

#[test]
fn publisher_is_paused_when_a_subscriber_queue_passes_half() {
    let mut h = harness(Duration::from_secs(5));
    let (_sub, publisher) = subscriber_and_publisher(&mut h, QoS::AtLeastOnce);
    // 2 in the window, 4 queued: at the mark, not above.
    h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 6);
    assert!(h.reading.is_empty());
    h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 1);
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    let received = h.broker.stats().messages_received;
    send_publish(&mut h, publisher, 8);
    h.expect_nothing(publisher); // a paused publisher's packets wait, unacknowledged
    assert_eq!(h.broker.stats().messages_received, received);
    assert_eq!(h.reading.len(), 1);
    assert_eq!(h.broker.stats().publishers_paused, 1);
}

#[test]
fn publisher_resumes_once_the_queue_drains_and_nothing_is_lost() {
    let mut h = harness(Duration::from_secs(5));
    let (sub, publisher) = subscriber_and_publisher(&mut h, QoS::AtLeastOnce);
    h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 7);
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    send_publish(&mut h, publisher, 8);
    let mut received = h.receive_and_ack(sub).len(); // 2 acked: 2 more sent, 3 left queued
    assert_eq!(h.reading.len(), 1, "3 queued is above the low-water mark");
    h.expect_nothing(publisher);
    received += h.receive_and_ack(sub).len(); // 1 left queued: under a quarter
    assert_eq!(
        h.reading,
        vec![(publisher.conn, false), (publisher.conn, true)]
    );
    // The waiting PUBLISH is handled on resume.
    assert!(matches!(h.expect(publisher), Packet::PubAck(_)));
    while received < 8 {
        let got = h.receive_and_ack(sub).len();
        assert!(got > 0, "queue drains");
        received += got;
    }
    assert_eq!(received, 8);
    assert_eq!(h.drops(DropReason::QueueFull), 0);
    assert_eq!(h.broker.stats().publisher_pauses_expired, 0);
}

#[test]
fn pause_ends_after_the_maximum_then_the_full_queue_drops_and_counts() {
    let mut h = harness(Duration::from_secs(5));
    let (_sub, publisher) = subscriber_and_publisher(&mut h, QoS::AtLeastOnce);
    h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 7);
    h.expect_pause_to_expire(publisher, Duration::from_secs(5));
    h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 10); // queue: 5 + 10 > 8
    assert_eq!(
        h.reading.len(),
        2,
        "a stuck subscriber pauses its publisher only once"
    );
    assert_eq!(h.drops(DropReason::QueueFull), 7);
    assert_eq!(h.broker.stats().messages_queued, 8);
}

#[test]
fn zero_maximum_pause_keeps_the_drop_policy() {
    let mut h = harness(Duration::ZERO);
    let (_sub, publisher) = subscriber_and_publisher(&mut h, QoS::AtLeastOnce);
    h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 12);
    assert!(h.reading.is_empty());
    assert_eq!(h.drops(DropReason::QueueFull), 2);
}

#[test]
fn subscriber_that_leaves_releases_its_publishers() {
    let mut h = harness(Duration::from_secs(5));
    let (sub, publisher) = subscriber_and_publisher(&mut h, QoS::AtLeastOnce);
    h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 7);
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    h.drop_connection(sub);
    assert_eq!(
        h.reading,
        vec![(publisher.conn, false), (publisher.conn, true)]
    );
}

#[test]
fn the_publishers_own_session_pauses_nobody() {
    let mut h = harness(Duration::from_secs(5));
    let publisher = h.connect(V311, "pub");
    h.subscribe(publisher, "t", QoS::AtLeastOnce);
    // The publisher's own queue: acknowledging would need the reads it would pause.
    for _ in 0..8 {
        h.send_publish(
            publisher,
            publish_packet("t", b"m", PublishQos::AtLeastOnce(id(7)), false),
        );
    }
    assert!(h.reading.is_empty());
}
