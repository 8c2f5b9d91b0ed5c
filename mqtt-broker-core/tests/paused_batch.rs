//! A publisher paused in the middle of one read: several PUBLISH arrive in a single
//! `handle_bytes`, the first ones fill a subscriber's queue and pause the publisher, and the
//! frames not yet decoded wait. After resumption every later packet is handled exactly once and
//! in order, before anything that arrived while paused; an error among them still gets its
//! protocol reaction, after the packets before it.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use mqtt_broker_core::Event;
use mqtt_wire::{Packet, PublishQos, QoS};

/// Queue bound 8 (high-water 4, low-water 2), window 2, pause at most 5 s.
fn harness() -> Harness {
    Harness::with_config(config(|c| {
        c.max_queued_messages = 8;
        c.receive_maximum = 2;
        c.max_publisher_pause = Duration::from_secs(5);
    }))
}

/// The payloads of the batch PUBLISH packets: packet id `n` carries `m<n>`.
fn payload(n: u16) -> &'static [u8] {
    let text: &'static str = format!("m{n}").leak();
    text.as_bytes()
}

/// Appends the encoding of `packet` to `buf`.
fn encode(packet: Packet, buf: &mut BytesMut) {
    packet.encode(V311, buf).expect("test packet encodes");
}

fn publish(n: u16) -> Packet {
    Packet::Publish(publish_packet(
        "t",
        payload(n),
        PublishQos::AtLeastOnce(id(n)),
        false,
    ))
}

/// A subscriber on `t` that does not acknowledge yet, and a publisher whose six messages
/// filled the subscriber's window (2) and its queue to the high-water mark (4).
fn subscriber_and_publisher(h: &mut Harness) -> (TestClient, TestClient) {
    let sub = h.connect(V311, "sub");
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let publisher = h.connect(V311, "pub");
    for _ in 0..6 {
        h.publish(publisher, "t", b"m", QoS::AtLeastOnce, false);
    }
    assert!(h.reading.is_empty());
    (sub, publisher)
}

/// The packet ids of the PUBACKs the client received, and whether a PINGRESP came (and after
/// how many PUBACKs).
fn acks(h: &mut Harness, client: TestClient) -> (Vec<u16>, Option<usize>) {
    let mut ids = Vec::new();
    let mut pong = None;
    for packet in h.recv_all(client) {
        match packet {
            Packet::PubAck(ack) => ids.push(ack.packet_id.get()),
            Packet::PingResp => pong = Some(ids.len()),
            other => panic!("unexpected {other:?}"),
        }
    }
    (ids, pong)
}

/// Acknowledges what the subscriber got until it has `wanted` messages; their payloads.
fn drain_subscriber(h: &mut Harness, sub: TestClient, wanted: usize) -> Vec<Vec<u8>> {
    let mut payloads = Vec::new();
    while payloads.len() < wanted {
        let got = h.receive_and_ack(sub);
        assert!(!got.is_empty(), "the subscriber's queue drains");
        payloads.extend(got.iter().map(|p| p.payload().to_vec()));
    }
    payloads
}

#[test]
fn packets_after_the_pause_in_one_read_are_handled_once_in_order_after_resume() {
    let mut h = harness();
    let (sub, publisher) = subscriber_and_publisher(&mut h);
    let received = h.broker.stats().messages_received;

    // One read: PUBLISH 10..=19, then the first half of PUBLISH 20.
    let mut batch = BytesMut::new();
    for n in 10..20 {
        encode(publish(n), &mut batch);
    }
    let mut last = BytesMut::new();
    encode(publish(20), &mut last);
    encode(Packet::PingReq, &mut last);
    let tail = last.split_off(4);
    batch.extend_from_slice(&last);
    h.send_raw(publisher, &batch);

    // PUBLISH 10 went above the high-water mark: paused right after it.
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    assert_eq!(acks(&mut h, publisher), (vec![10], None));
    assert_eq!(h.broker.stats().messages_received, received + 1);

    // More arrives while paused (the rest of PUBLISH 20, a PINGREQ): it waits behind the batch.
    h.send_raw(publisher, &tail);
    assert_eq!(acks(&mut h, publisher), (vec![], None));
    assert_eq!(h.broker.stats().messages_received, received + 1);

    // The subscriber reads: the publisher resumes (and pauses again) until all is through.
    let payloads = drain_subscriber(&mut h, sub, 6 + 11);
    let mut expected: Vec<Vec<u8>> = vec![b"m".to_vec(); 6];
    expected.extend((10..=20).map(|n| payload(n).to_vec()));
    assert_eq!(payloads, expected);
    assert_eq!(h.broker.stats().messages_received, received + 11);

    let (ids, pong) = acks(&mut h, publisher);
    assert_eq!(ids, (11..=20).collect::<Vec<_>>(), "each once, in order");
    assert_eq!(pong, Some(10), "PINGRESP after the last PUBACK");
    assert!(
        h.broker.stats().publishers_paused >= 2,
        "paused again while handling the kept frames"
    );
    assert_eq!(h.reading.last(), Some(&(publisher.conn, true)));
    h.expect_nothing(sub);
}

#[test]
fn malformed_frame_kept_by_a_pause_is_refused_after_the_packets_before_it() {
    let mut h = harness();
    let (sub, publisher) = subscriber_and_publisher(&mut h);

    // PUBLISH 10 (pauses), PUBLISH 11, then a frame of the reserved packet type 0
    // [MQTT311-2.2.1]: malformed, the connection is closed.
    let mut batch = BytesMut::new();
    encode(publish(10), &mut batch);
    encode(publish(11), &mut batch);
    batch.extend_from_slice(b"\x00\x00");
    encode(publish(12), &mut batch);
    h.send_raw(publisher, &batch);
    assert_eq!(acks(&mut h, publisher), (vec![10], None));
    assert!(!h.is_closed(publisher), "the bad frame waits undecoded");

    let payloads = drain_subscriber(&mut h, sub, 6 + 2);
    assert_eq!(payloads.last().map(Vec::as_slice), Some(&b"m11"[..]));
    assert_eq!(acks(&mut h, publisher), (vec![11], None));
    assert!(h.is_closed(publisher));
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::ProtocolError { conn, .. } if *conn == publisher.conn))
    );
    assert_eq!(h.broker.stats().messages_received, 6 + 2);
}

#[test]
fn frames_kept_for_a_publisher_that_closes_are_never_handled() {
    let mut h = harness();
    let (sub, publisher) = subscriber_and_publisher(&mut h);
    let mut batch = BytesMut::new();
    for n in 10..13 {
        encode(publish(n), &mut batch);
    }
    h.send_raw(publisher, &batch);
    assert_eq!(acks(&mut h, publisher), (vec![10], None));
    h.drop_connection(publisher);

    // PUBLISH 11 and 12 went with the connection; a new one's messages follow PUBLISH 10.
    let again = h.connect(V311, "pub");
    h.publish(again, "t", b"after", QoS::AtLeastOnce, false);
    let payloads = drain_subscriber(&mut h, sub, 6 + 2);
    let mut expected: Vec<Vec<u8>> = vec![b"m".to_vec(); 6];
    expected.extend([b"m10".to_vec(), b"after".to_vec()]);
    assert_eq!(payloads, expected);
    h.expect_nothing(sub);
    assert_eq!(h.broker.stats().messages_received, 6 + 2);
}
