//! A message read from a client is a view into the read buffer its frame arrived in. One that
//! the broker keeps long (retained, queued for a session, unacknowledged by a session gone
//! offline, or a will) must not keep that buffer alive, however small the read: it is copied
//! once. One delivered at once keeps sharing the buffer.
//!
//! Each test feeds several frames in one `handle_bytes` call and finds where the broker's copy
//! of that input lies from the payload chunk of a message delivered at once (the broker
//! transmits payloads as shared chunks); payloads kept long must lie elsewhere.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use mqtt_wire::{Connect, Packet, ProtocolVersion, Publish, PublishQos, QoS};

/// Frames encoded one after another into one input, remembering where each payload starts.
struct Input {
    bytes: BytesMut,
    payload_at: Vec<(&'static [u8], usize)>,
}

impl Input {
    fn new() -> Self {
        Input {
            bytes: BytesMut::new(),
            payload_at: Vec::new(),
        }
    }

    fn push(&mut self, topic: &str, payload: &'static [u8], qos: PublishQos, retain: bool) {
        Packet::Publish(publish_packet(topic, payload, qos, retain))
            .encode(V311, &mut self.bytes)
            .expect("test packet encodes");
        // The payload ends its frame.
        self.payload_at
            .push((payload, self.bytes.len() - payload.len()));
    }

    /// A CONNECT frame (the first of an input, so no payload offset to remember).
    fn connect(&mut self, connect: Connect) {
        connect_pkt(connect)
            .encode(V311, &mut self.bytes)
            .expect("test packet encodes");
    }

    /// `count` QoS 0 PUBLISH frames of 100 bytes that nobody receives.
    fn filler(&mut self, count: usize) {
        for _ in 0..count {
            self.push("nobody", &[b'.'; 100], PublishQos::AtMostOnce, false);
        }
    }

    fn offset_of(&self, payload: &[u8]) -> usize {
        self.payload_at
            .iter()
            .find(|(p, _)| *p == payload)
            .map(|(_, at)| *at)
            .expect("payload in the input")
    }
}

/// The address of the transmitted chunk to `client` holding exactly `payload`.
fn chunk_address(h: &Harness, client: TestClient, payload: &[u8]) -> usize {
    h.raw(client)
        .iter()
        .flatten()
        .find(|chunk| chunk.as_ref() == payload)
        .map(|chunk| chunk.as_ptr() as usize)
        .unwrap_or_else(|| panic!("no chunk {payload:?} sent"))
}

/// A client subscribed to "live", whose payload chunk tells where the broker holds an input.
fn watcher(h: &mut Harness, qos: QoS) -> TestClient {
    let watcher = h.connect(V311, "watcher");
    h.subscribe(watcher, "live", qos);
    watcher
}

/// Where the broker holds `input`: from the payload `live`, delivered at once to `client`.
fn input_range(h: &Harness, client: TestClient, input: &Input, live: &[u8]) -> (usize, usize) {
    let start = chunk_address(h, client, live) - input.offset_of(live);
    (start, start + input.bytes.len())
}

fn within((start, end): (usize, usize), address: usize) -> bool {
    (start..end).contains(&address)
}

const LIVE: &[u8] = b"delivered at once";
const LIVE_TOO: &[u8] = b"also delivered at once";
const KEPT: &[u8] = b"kept for later";

/// A 3.1.1 client whose session outlives its connection.
fn persistent(h: &mut Harness, client_id: &str) -> TestClient {
    let client = h.open(V311);
    let mut connect = connect_packet(V311, client_id);
    connect.clean_start = false;
    h.connect_with(client, connect);
    client
}

#[test]
fn a_retained_message_does_not_keep_the_read_buffer() {
    let mut h = Harness::new();
    let watcher = watcher(&mut h, QoS::AtMostOnce);
    let publisher = h.connect(V311, "publisher");
    let mut input = Input::new();
    input.push("live", LIVE, PublishQos::AtMostOnce, false);
    input.push("kept", KEPT, PublishQos::AtMostOnce, true);
    input.filler(30);
    h.send_raw(publisher, &input.bytes);
    let buffer = input_range(&h, watcher, &input, LIVE);

    let late = h.connect(V311, "late");
    h.subscribe(late, "kept", QoS::AtMostOnce);
    let retained = h.publishes(late);
    assert_eq!(retained.len(), 1);
    assert_eq!(retained[0].payload(), KEPT);
    assert!(!within(buffer, chunk_address(&h, late, KEPT)));
}

#[test]
fn messages_delivered_at_once_share_the_read_buffer() {
    let mut h = Harness::new();
    let watcher = watcher(&mut h, QoS::AtLeastOnce);
    let publisher = h.connect(V311, "publisher");
    let mut input = Input::new();
    input.push("live", LIVE, PublishQos::AtMostOnce, false);
    input.filler(30);
    input.push("live", LIVE_TOO, PublishQos::AtLeastOnce(id(1)), false);
    h.send_raw(publisher, &input.bytes);
    assert_eq!(h.publishes(watcher).len(), 2);
    let buffer = input_range(&h, watcher, &input, LIVE);
    let expected = buffer.0 + input.offset_of(LIVE_TOO);
    assert_eq!(chunk_address(&h, watcher, LIVE_TOO), expected);
}

#[test]
fn a_message_queued_for_offline_sessions_is_copied_once() {
    let mut h = Harness::new();
    let watcher = watcher(&mut h, QoS::AtMostOnce);
    let mut away = Vec::new();
    for client_id in ["away-1", "away-2"] {
        let client = persistent(&mut h, client_id);
        h.subscribe(client, "queued", QoS::AtLeastOnce);
        h.drop_connection(client);
        away.push(client_id);
    }
    let publisher = h.connect(V311, "publisher");
    let mut input = Input::new();
    input.push("live", LIVE, PublishQos::AtMostOnce, false);
    input.push("queued", KEPT, PublishQos::AtLeastOnce(id(1)), false);
    input.filler(30);
    h.send_raw(publisher, &input.bytes);
    let buffer = input_range(&h, watcher, &input, LIVE);

    let mut addresses = Vec::new();
    for client_id in away {
        let client = persistent(&mut h, client_id);
        let queued = h.publishes(client);
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].payload(), KEPT);
        addresses.push(chunk_address(&h, client, KEPT));
    }
    assert!(!within(buffer, addresses[0]));
    assert_eq!(addresses[0], addresses[1], "one copy shared by both queues");
}

/// No estimate of the read buffer's size: a read holding nothing but the message (and one
/// delivered at once, to locate it) is let go of too.
#[test]
fn a_message_queued_from_a_small_read_is_copied_too() {
    let mut h = Harness::new();
    let watcher = watcher(&mut h, QoS::AtMostOnce);
    let client = persistent(&mut h, "away");
    h.subscribe(client, "queued", QoS::AtLeastOnce);
    h.drop_connection(client);
    let publisher = h.connect(V311, "publisher");
    let mut input = Input::new();
    input.push("live", LIVE, PublishQos::AtMostOnce, false);
    input.push("queued", KEPT, PublishQos::AtLeastOnce(id(1)), false);
    h.send_raw(publisher, &input.bytes);
    let buffer = input_range(&h, watcher, &input, LIVE);

    let client = persistent(&mut h, "away");
    assert_eq!(h.publishes(client).len(), 1);
    assert!(!within(buffer, chunk_address(&h, client, KEPT)));
}

#[test]
fn an_unacknowledged_message_lets_go_of_the_read_buffer_when_its_session_goes_offline() {
    let mut h = Harness::new();
    let watcher = watcher(&mut h, QoS::AtMostOnce);
    let away = persistent(&mut h, "away");
    h.subscribe(away, "inflight", QoS::AtLeastOnce);
    let publisher = h.connect(V311, "publisher");
    let mut input = Input::new();
    input.push("live", LIVE, PublishQos::AtMostOnce, false);
    input.push("inflight", KEPT, PublishQos::AtLeastOnce(id(1)), false);
    input.filler(30);
    h.send_raw(publisher, &input.bytes);
    let buffer = input_range(&h, watcher, &input, LIVE);
    assert!(
        within(buffer, chunk_address(&h, away, KEPT)),
        "sent at once, sharing the read buffer"
    );
    h.drop_connection(away); // before its PUBACK

    let away = persistent(&mut h, "away");
    let resent = h.publishes(away);
    assert_eq!(resent.len(), 1);
    assert!(resent[0].dup, "the unacknowledged message, sent again");
    assert_eq!(resent[0].payload(), KEPT);
    assert!(!within(buffer, chunk_address(&h, away, KEPT)));
}

#[test]
fn a_will_does_not_keep_the_read_buffer_of_its_connect() {
    let mut h = Harness::new();
    let watcher = watcher(&mut h, QoS::AtMostOnce);
    h.subscribe(watcher, "will", QoS::AtMostOnce);
    let client = h.open(V311);
    let mut connect = connect_packet(V311, "mortal");
    connect.will = Some(will("will", KEPT, QoS::AtMostOnce, true));
    let mut input = Input::new();
    input.connect(connect);
    input.push("live", LIVE, PublishQos::AtMostOnce, false);
    input.filler(30);
    h.send_raw(client, &input.bytes);
    let buffer = input_range(&h, watcher, &input, LIVE);
    h.drop_connection(client);
    assert!(h.publishes(watcher).iter().any(|p| p.payload() == KEPT));
    assert!(!within(buffer, chunk_address(&h, watcher, KEPT)));

    let late = h.connect(V311, "late");
    h.subscribe(late, "will", QoS::AtMostOnce);
    let retained = h.publishes(late);
    assert_eq!(retained.len(), 1);
    assert!(!within(buffer, chunk_address(&h, late, KEPT)));
}

/// Messages the application publishes own their bytes: kept as given.
#[test]
fn an_application_message_is_kept_as_given() {
    let mut h = Harness::new();
    let payload = Bytes::from(vec![b'x'; 4096]).slice(100..200);
    let mut message = app_message("kept", b"", QoS::AtMostOnce, true, h.now);
    message.payload = payload.clone();
    h.broker.publish(message, h.now).unwrap();
    h.drain();
    let late = h.connect(ProtocolVersion::V5, "late");
    h.subscribe(late, "kept", QoS::AtMostOnce);
    let retained: Vec<Publish> = h.publishes(late);
    assert_eq!(retained.len(), 1);
    assert_eq!(chunk_address(&h, late, &payload), payload.as_ptr() as usize);
}
