//! QoS 0 backpressure on the virtual clock: a fast QoS 0 publisher feeding a subscriber whose
//! transmits are not flushed (a slow reader) is paused once that subscriber's outbox passes
//! half of `max_outbox_bytes`, so nothing is dropped; it resumes when the outbox drains under a
//! quarter, and after `max_publisher_pause` at the latest, after which the full outbox drops
//! QoS 0 for that subscriber (and counts it) instead of pausing anyone again.

mod common;

use std::time::Duration;

use common::*;
use mqtt_broker_core::{Config, DropReason};
use mqtt_wire::{Packet, PublishQos, QoS};

/// 100-byte payloads: a QoS 0 PUBLISH to `t` is 105 bytes on the wire (3.1.1).
static PAYLOAD: [u8; 100] = [b'p'; 100];
const PACKET: usize = 105;
/// Outbox bound: high-water mark 2,048 bytes (20 packets), low-water mark 1,024 (10 packets).
const OUTBOX: usize = 4096;

fn limits(pause: Duration) -> Config {
    config(|c| {
        c.max_packet_size = 1024;
        c.max_outbox_bytes = OUTBOX;
        c.max_publisher_pause = pause;
    })
}

/// A QoS 0 subscriber on `t` whose transmits are held (not flushed), and a publisher.
fn slow_subscriber_and_publisher(pause: Duration) -> (Harness, Reader, TestClient) {
    let mut h = Harness::with_config(limits(pause));
    let (sub, publisher) = subscriber_and_publisher(&mut h, QoS::AtMostOnce);
    h.hold_flush(sub, true);
    let reader = Reader {
        client: sub,
        base: transmitted(&h, sub),
        flushed: 0,
    };
    (h, reader, publisher)
}

/// A subscriber whose flushes the test reports itself, a part at a time.
struct Reader {
    client: TestClient,
    /// Bytes transmitted (and flushed) before its flushes were held.
    base: usize,
    /// Bytes flushed since.
    flushed: usize,
}

impl Reader {
    /// Bytes transmitted and not flushed.
    fn unflushed(&self, h: &Harness) -> usize {
        transmitted(h, self.client) - self.base - self.flushed
    }

    /// The socket took `bytes` more.
    fn flush(&mut self, h: &mut Harness, bytes: usize) {
        h.broker
            .handle_flushed(self.client.conn, bytes, h.now)
            .expect("flushed");
        self.flushed += bytes;
        h.drain();
    }
}

/// Bytes transmitted to `client` so far.
fn transmitted(h: &Harness, client: TestClient) -> usize {
    h.raw(client)
        .iter()
        .flat_map(|chunks| chunks.iter().map(|c| c.len()))
        .sum()
}

#[test]
fn a_qos0_publisher_is_paused_when_a_subscriber_outbox_passes_half() {
    let (mut h, reader, publisher) = slow_subscriber_and_publisher(Duration::from_secs(5));
    // 2,100 bytes held: the next delivery pauses.
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 20);
    assert!(h.reading.is_empty());
    assert_eq!(reader.unflushed(&h), 20 * PACKET);
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 1);
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    assert_eq!(h.broker.stats().publishers_paused, 1);
    // Further PUBLISH packets of the paused publisher wait in its read buffer, undecoded.
    let received = h.broker.stats().messages_received;
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 30);
    assert_eq!(h.broker.stats().messages_received, received);
    assert_eq!(h.publishes(reader.client).len(), 21);
    assert_eq!(
        h.drops(DropReason::OutboxFull),
        0,
        "nothing dropped while paused"
    );
}

#[test]
fn the_paused_publisher_resumes_when_the_outbox_drains_and_nothing_is_lost() {
    let (mut h, mut reader, publisher) = slow_subscriber_and_publisher(Duration::from_secs(5));
    // 21 delivered, then paused; 30 wait.
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 51);
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    reader.flush(&mut h, 11 * PACKET); // 10 packets (1,050 bytes) left: above a quarter
    assert_eq!(h.reading.len(), 1, "above the low-water mark: still paused");
    let before = h.publishes(reader.client).len();
    assert_eq!(before, 21);
    reader.flush(&mut h, PACKET); // 945 bytes left: under a quarter
    assert_eq!(
        h.reading[..2],
        [(publisher.conn, false), (publisher.conn, true)]
    );
    // The waiting packets are handled on resume, up to the high-water mark again; a reader that
    // keeps flushing gets every message.
    while reader.unflushed(&h) > 0 {
        let unflushed = reader.unflushed(&h);
        reader.flush(&mut h, unflushed);
    }
    assert_eq!(before + h.publishes(reader.client).len(), 51);
    assert_eq!(h.reading.last(), Some(&(publisher.conn, true)));
    assert_eq!(h.drops(DropReason::OutboxFull), 0);
    assert_eq!(h.broker.stats().publisher_pauses_expired, 0);
}

#[test]
fn a_subscriber_that_never_flushes_holds_the_publisher_up_once_for_the_maximum_pause() {
    let (mut h, reader, publisher) = slow_subscriber_and_publisher(Duration::from_secs(5));
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 51);
    h.expect_pause_to_expire(publisher, Duration::from_secs(5));
    // Released: the 30 waiting and 50 more go through; the outbox fills past its bound (40
    // packets, 4,200 bytes: one goes out while it is under) and the rest is dropped and
    // counted, without another pause.
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 50);
    assert_eq!(
        h.reading.len(),
        2,
        "a stuck subscriber pauses its publisher once"
    );
    assert_eq!(h.broker.stats().messages_received, 101);
    assert_eq!(h.publishes(reader.client).len(), 40);
    assert_eq!(h.drops(DropReason::OutboxFull), 101 - 40);
    assert!(reader.unflushed(&h) < OUTBOX + PACKET);
}

#[test]
fn zero_maximum_pause_keeps_dropping_qos0_for_a_full_outbox() {
    let (mut h, reader, publisher) = slow_subscriber_and_publisher(Duration::ZERO);
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 50);
    assert!(h.reading.is_empty());
    assert_eq!(h.publishes(reader.client).len(), 40);
    assert_eq!(h.drops(DropReason::OutboxFull), 50 - 40);
}

#[test]
fn a_publisher_feeding_its_own_full_outbox_is_not_paused() {
    let mut h = Harness::with_config(limits(Duration::from_secs(5)));
    let publisher = h.connect(V311, "pub");
    h.subscribe(publisher, "t", QoS::AtMostOnce);
    h.hold_flush(publisher, true);
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 50);
    assert!(h.reading.is_empty());
    assert!(h.drops(DropReason::OutboxFull) > 0);
}

#[test]
fn a_qos1_publish_to_a_qos0_subscriber_pauses_too_and_is_acknowledged_on_resume() {
    let (mut h, mut reader, publisher) = slow_subscriber_and_publisher(Duration::from_secs(5));
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 21);
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    let packet = publish_packet("t", &PAYLOAD, PublishQos::AtLeastOnce(id(9)), false);
    h.send_publish(publisher, packet);
    h.expect_nothing(publisher); // waits, unacknowledged
    let unflushed = reader.unflushed(&h);
    reader.flush(&mut h, unflushed);
    assert!(matches!(h.expect(publisher), Packet::PubAck(_)));
    assert_eq!(h.publishes(reader.client).len(), 22);
}

#[test]
fn several_stuck_subscribers_hold_the_publisher_up_once_not_once_each() {
    let mut h = Harness::with_config(config(|c| {
        c.max_packet_size = 1024;
        c.max_outbox_bytes = OUTBOX;
        c.max_publisher_pause = Duration::from_secs(5);
        c.max_queued_messages = 100; // QoS 1 high-water mark: 50 queued
        c.receive_maximum = 2;
    }));
    // One QoS 0 subscriber that stops reading, one QoS 1 subscriber that stops acknowledging.
    let stuck0 = h.connect(V311, "stuck0");
    h.subscribe(stuck0, "t", QoS::AtMostOnce);
    let stuck1 = h.connect(V311, "stuck1");
    h.subscribe(stuck1, "t", QoS::AtLeastOnce);
    let publisher = h.connect(V311, "pub");
    h.hold_flush(stuck0, true);
    let publish_qos1 = |h: &mut Harness, n: usize| {
        for _ in 0..n {
            h.publish(publisher, "t", &PAYLOAD, QoS::AtLeastOnce, false); // PUBACK expected
        }
    };
    publish_qos1(&mut h, 21); // stuck0's outbox passes half: paused
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    h.advance(Duration::from_secs(5));
    assert_eq!(h.broker.stats().publisher_pauses_expired, 1);
    // stuck1's queue passes half too (2 in flight, 79 queued), but it has taken nothing for
    // the longest pause: the publisher goes on.
    publish_qos1(&mut h, 60);
    assert_eq!(h.reading.len(), 2, "no second pause");
    assert_eq!(h.broker.stats().publishers_paused, 1);
    assert_eq!(h.broker.stats().messages_queued, 79);
}

#[test]
fn a_subscriber_idle_for_long_is_not_taken_for_stuck_when_a_burst_comes() {
    let (mut h, reader, publisher) = slow_subscriber_and_publisher(Duration::from_secs(5));
    h.advance(Duration::from_secs(60)); // nothing to send: no progress, but nothing waiting
    h.publish_n(publisher, "t", &PAYLOAD, QoS::AtMostOnce, 21);
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    assert_eq!(h.publishes(reader.client).len(), 21);
    assert_eq!(h.drops(DropReason::OutboxFull), 0);
}
