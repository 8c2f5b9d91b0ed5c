//! Virtual-clock test harness: a [`Harness`] owns a `Broker` and a hand-driven `now`; each
//! [`TestClient`] encodes packets with the codec, feeds them to the broker, and decodes what the
//! broker transmits back. Outputs are drained after every input, as the driving-loop rule says.
//! Shared by every integration test file, which each use a part of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_broker_core::{
    AuthRequest, Broker, Config, ConnectionId, ConnectionInfo, DropReason, Event, ListenerId,
    Message, Output, hooks::Authorizer, persist::PersistBatch,
};
use mqtt_wire::{
    Ack, ConnAck, Connect, Decoder, Disconnect, LastWill, MqttStr, Packet, PacketId, Properties,
    ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe,
};

/// A client handle (copyable; state lives in the harness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestClient {
    pub conn: ConnectionId,
    pub version: ProtocolVersion,
}

#[derive(Debug)]
struct Peer {
    decoder: Decoder,
    buf: BytesMut,
    inbox: VecDeque<Packet>,
    /// Transmit chunk lists as received (for zero-copy checks).
    raw: Vec<Vec<Bytes>>,
    closed: bool,
    auto_flush: bool,
    unflushed: usize,
}

/// A broker, a clock and the peers' view of the wire.
pub struct Harness {
    pub broker: Broker,
    pub now: Instant,
    next_conn: u64,
    peers: HashMap<ConnectionId, Peer>,
    pub events: Vec<Event>,
    pub auth_requests: Vec<AuthRequest>,
    /// `PauseReading` (`false`) and `ResumeReading` (`true`) outputs, in order.
    pub reading: Vec<(ConnectionId, bool)>,
    /// `Persist` batches, in order.
    pub batches: Vec<PersistBatch>,
    /// Whether batches wait for [`Harness::persist_now`] instead of being reported durable at
    /// once.
    pub hold_persist: bool,
    /// `Forward` outputs (cluster seam), in order.
    pub forwarded: Vec<Arc<Message>>,
    /// `Tap` outputs (the sample for viewers), in order.
    pub tapped: Vec<Arc<Message>>,
    /// Whether a client waiting for the cluster's backplane (`Admit`) is admitted at once,
    /// without a session from elsewhere (default), or kept in `admissions`.
    pub admit_at_once: bool,
    /// `Admit` outputs kept: connection, client identifier, clean start.
    pub admissions: Vec<(ConnectionId, String, bool)>,
    /// Reads fed so far (`send_raw` alternates between the two read inputs).
    reads: u64,
}

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// The wall clock, for the cluster seam's hand-overs.
#[allow(clippy::disallowed_methods)]
pub fn wall() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

pub fn id(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero packet id")
}

pub fn s(text: &str) -> MqttStr {
    MqttStr::try_from(text.to_owned()).expect("valid string")
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        Self::with_broker(Broker::try_new(config).expect("valid config"))
    }

    /// A broker with `config` that asks `authorizer`.
    pub fn with_authorizer(config: Config, authorizer: impl Authorizer + 'static) -> Self {
        let broker = Broker::try_new(config).expect("valid config");
        Self::with_broker(broker.with_authorizer(Box::new(authorizer)))
    }

    pub fn with_broker(broker: Broker) -> Self {
        Harness {
            broker,
            now: epoch(),
            next_conn: 0,
            peers: HashMap::new(),
            events: Vec::new(),
            auth_requests: Vec::new(),
            reading: Vec::new(),
            batches: Vec::new(),
            hold_persist: false,
            forwarded: Vec::new(),
            tapped: Vec::new(),
            admit_at_once: true,
            admissions: Vec::new(),
            reads: 0,
        }
    }

    /// Drains every output, delivering bytes to peers and acting on closes.
    pub fn drain(&mut self) {
        while let Some(output) = self.broker.poll_output() {
            match output {
                Output::Transmit { conn, data } => {
                    let peer = self.peers.get_mut(&conn).expect("transmit to a known peer");
                    assert!(!peer.closed, "bytes after close on {conn}");
                    let len: usize = data.iter().map(Bytes::len).sum();
                    for chunk in &data {
                        peer.buf.extend_from_slice(chunk);
                    }
                    peer.raw.push(data);
                    while let Some(packet) = peer
                        .decoder
                        .decode(&mut peer.buf)
                        .expect("broker output decodes")
                    {
                        peer.inbox.push_back(packet);
                    }
                    if peer.auto_flush {
                        self.broker
                            .handle_flushed(conn, len, self.now)
                            .expect("flush");
                    } else {
                        peer.unflushed += len;
                    }
                }
                Output::Close { conn } => {
                    let peer = self.peers.get_mut(&conn).expect("close of a known peer");
                    assert!(!peer.closed, "double close of {conn}");
                    peer.closed = true;
                    self.broker.handle_closed(conn, self.now).expect("closed");
                }
                Output::AuthRequest(request) => self.auth_requests.push(request),
                Output::Event(event) => self.events.push(event),
                Output::PauseReading { conn } => self.reading.push((conn, false)),
                Output::ResumeReading { conn } => self.reading.push((conn, true)),
                Output::Forward(message) => self.forwarded.push(message),
                Output::Admit { conn, .. } if self.admit_at_once => {
                    // A backplane with no other node holding the session.
                    self.broker
                        .admit(conn, None, self.now, wall())
                        .expect("admitted");
                }
                Output::Admit {
                    conn,
                    client_id,
                    clean_start,
                } => self
                    .admissions
                    .push((conn, client_id.to_string(), clean_start)),
                Output::Tap(message) => self.tapped.push(message),
                Output::Persist(batch) => {
                    let seq = batch.seq;
                    self.batches.push(batch);
                    if !self.hold_persist {
                        self.broker
                            .handle_persisted(seq, self.now)
                            .expect("persisted");
                    }
                }
                _ => {}
            }
        }
    }

    /// Reports every batch handed out so far as durable, and drains.
    pub fn persist_now(&mut self) {
        if let Some(seq) = self.batches.last().map(|b| b.seq) {
            self.broker
                .handle_persisted(seq, self.now)
                .expect("persisted");
        }
        self.drain();
    }

    /// Opens a connection without sending anything.
    pub fn open(&mut self, version: ProtocolVersion) -> TestClient {
        self.open_on(version, ListenerId::default())
    }

    /// Opens a connection on `listener` without sending anything.
    pub fn open_on(&mut self, version: ProtocolVersion, listener: ListenerId) -> TestClient {
        self.next_conn += 1;
        let conn = ConnectionId(self.next_conn);
        let mut decoder = Decoder::new();
        decoder.set_version(version);
        self.peers.insert(
            conn,
            Peer {
                decoder,
                buf: BytesMut::new(),
                inbox: VecDeque::new(),
                raw: Vec::new(),
                closed: false,
                auto_flush: true,
                unflushed: 0,
            },
        );
        let mut info = ConnectionInfo::default();
        info.listener = listener;
        self.broker.handle_open(conn, info, self.now).expect("open");
        self.drain();
        TestClient { conn, version }
    }

    /// Feeds raw bytes: every other read as a borrowed slice (`handle_bytes`), the others as
    /// owned `Bytes` (`handle_read`), so every test runs both ways in.
    pub fn send_raw(&mut self, client: TestClient, bytes: &[u8]) {
        self.reads += 1;
        if self.reads.is_multiple_of(2) {
            let owned = Bytes::copy_from_slice(bytes);
            self.broker
                .handle_read(client.conn, owned, self.now)
                .expect("bytes");
        } else {
            self.broker
                .handle_bytes(client.conn, bytes, self.now)
                .expect("bytes");
        }
        self.drain();
    }

    /// Encodes and feeds a packet.
    pub fn send(&mut self, client: TestClient, packet: Packet) {
        let mut buf = BytesMut::new();
        packet
            .encode(client.version, &mut buf)
            .expect("test packet encodes");
        self.send_raw(client, &buf);
    }

    /// The next packet the client received, if any.
    pub fn recv(&mut self, client: TestClient) -> Option<Packet> {
        self.peers
            .get_mut(&client.conn)
            .and_then(|p| p.inbox.pop_front())
    }

    /// The next packet, which must exist.
    pub fn expect(&mut self, client: TestClient) -> Packet {
        self.recv(client)
            .unwrap_or_else(|| panic!("{:?} expected a packet", client.conn))
    }

    /// Removes and returns the first received packet that `wanted` accepts, leaving the others.
    pub fn take(&mut self, client: TestClient, wanted: impl Fn(&Packet) -> bool) -> Packet {
        let inbox = &mut self.peers.get_mut(&client.conn).expect("known peer").inbox;
        let at = inbox
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("no such packet in {inbox:?}"));
        inbox.remove(at).expect("position is in range")
    }

    /// Everything received so far.
    pub fn recv_all(&mut self, client: TestClient) -> Vec<Packet> {
        self.peers
            .get_mut(&client.conn)
            .map(|p| p.inbox.drain(..).collect())
            .unwrap_or_default()
    }

    /// Asserts nothing more was received.
    pub fn expect_nothing(&mut self, client: TestClient) {
        let left = self.recv_all(client);
        assert!(left.is_empty(), "unexpected packets: {left:?}");
    }

    pub fn is_closed(&self, client: TestClient) -> bool {
        self.peers.get(&client.conn).is_some_and(|p| p.closed)
    }

    /// The socket goes away (EOF or error) without DISCONNECT.
    pub fn drop_connection(&mut self, client: TestClient) {
        let peer = self.peers.get_mut(&client.conn).expect("known peer");
        if !peer.closed {
            peer.closed = true;
            self.broker
                .handle_closed(client.conn, self.now)
                .expect("closed");
        }
        self.drain();
    }

    /// Raw chunk lists transmitted to the client.
    pub fn raw(&self, client: TestClient) -> &[Vec<Bytes>] {
        self.peers.get(&client.conn).map_or(&[], |p| &p.raw)
    }

    /// Stops (or resumes) reporting flushes for the client.
    pub fn hold_flush(&mut self, client: TestClient, hold: bool) {
        let peer = self.peers.get_mut(&client.conn).expect("known peer");
        peer.auto_flush = !hold;
        let unflushed = std::mem::take(&mut peer.unflushed);
        if !hold && unflushed > 0 {
            self.broker
                .handle_flushed(client.conn, unflushed, self.now)
                .expect("flush");
            self.drain();
        }
    }

    /// Moves the clock and runs due timers.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.broker.handle_timeout(self.now);
        self.drain();
    }

    /// `publisher` was paused and nothing else changed: it stays paused until `pause` has
    /// passed and is resumed then (once), the expiry counted.
    pub fn expect_pause_to_expire(&mut self, publisher: TestClient, pause: Duration) {
        assert_eq!(self.reading, vec![(publisher.conn, false)]);
        self.advance(pause - Duration::from_millis(1));
        assert_eq!(self.reading.len(), 1, "still paused before the maximum");
        self.advance(Duration::from_millis(1));
        assert_eq!(
            self.reading,
            vec![(publisher.conn, false), (publisher.conn, true)]
        );
        assert_eq!(self.broker.stats().publisher_pauses_expired, 1);
    }

    /// Sends CONNECT, returns the CONNACK.
    pub fn connect_with(&mut self, client: TestClient, connect: Connect) -> ConnAck {
        self.send(client, connect_pkt(connect));
        match self.expect(client) {
            Packet::ConnAck(ack) => ack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Opens and connects with clean start and no will; asserts success.
    pub fn connect(&mut self, version: ProtocolVersion, client_id: &str) -> TestClient {
        let client = self.open(version);
        let ack = self.connect_with(client, connect_packet(version, client_id));
        assert_eq!(ack.reason_code, ReasonCode::Success, "CONNACK {ack:?}");
        client
    }

    pub fn subscribe(&mut self, client: TestClient, filter: &str, qos: QoS) -> SubAck {
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        self.subscribe_with(client, filter, options, Properties::default())
    }

    pub fn subscribe_with(
        &mut self,
        client: TestClient,
        filter: &str,
        options: SubscriptionOptions,
        properties: Properties,
    ) -> SubAck {
        self.send(
            client,
            Packet::Subscribe(Subscribe {
                packet_id: id(100),
                filters: vec![(s(filter), options)],
                properties,
            }),
        );
        match self.take(client, |p| matches!(p, Packet::SubAck(_))) {
            Packet::SubAck(ack) => ack,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub fn unsubscribe(&mut self, client: TestClient, filter: &str) -> UnsubAck {
        self.send(
            client,
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(101),
                filters: vec![s(filter)],
                properties: Properties::default(),
            }),
        );
        match self.take(client, |p| matches!(p, Packet::UnsubAck(_))) {
            Packet::UnsubAck(ack) => ack,
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }

    /// Publishes; for QoS 1/2 also completes the client side of the handshake.
    pub fn publish(
        &mut self,
        client: TestClient,
        topic: &str,
        payload: &'static [u8],
        qos: QoS,
        retain: bool,
    ) {
        let qos = match qos {
            QoS::AtMostOnce => PublishQos::AtMostOnce,
            QoS::AtLeastOnce => PublishQos::AtLeastOnce(id(7)),
            QoS::ExactlyOnce => PublishQos::ExactlyOnce(id(7)),
        };
        self.send(
            client,
            Packet::Publish(publish_packet(topic, payload, qos, retain)),
        );
        match qos {
            PublishQos::AtMostOnce => {}
            PublishQos::AtLeastOnce(_) => assert!(matches!(self.expect(client), Packet::PubAck(_))),
            PublishQos::ExactlyOnce(pid) => {
                assert!(matches!(self.expect(client), Packet::PubRec(_)));
                self.send(client, Packet::PubRel(Ack::new(pid)));
                assert!(matches!(self.expect(client), Packet::PubComp(_)));
            }
        }
    }

    /// Publishes `payload` to `topic` `n` times (not retained), as [`Harness::publish`].
    pub fn publish_n(
        &mut self,
        client: TestClient,
        topic: &str,
        payload: &'static [u8],
        qos: QoS,
        n: usize,
    ) {
        for _ in 0..n {
            self.publish(client, topic, payload, qos, false);
        }
    }

    /// Sends a PUBLISH and waits for nothing (no acknowledgement is read).
    pub fn send_publish(&mut self, client: TestClient, publish: Publish) {
        self.send(client, Packet::Publish(publish));
    }

    /// How many messages were dropped for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::MessageDropped { reason: r, .. } if *r == reason))
            .count()
    }

    pub fn disconnect(&mut self, client: TestClient, reason: ReasonCode) {
        self.send(
            client,
            Packet::Disconnect(Disconnect {
                reason_code: reason,
                properties: Properties::default(),
            }),
        );
    }

    /// Received PUBLISH packets (other packets are dropped).
    pub fn publishes(&mut self, client: TestClient) -> Vec<Publish> {
        self.recv_all(client)
            .into_iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// Acknowledges every received QoS 1/2 PUBLISH fully and returns them.
    pub fn receive_and_ack(&mut self, client: TestClient) -> Vec<Publish> {
        let received = self.publishes(client);
        for publish in &received {
            match publish.qos {
                PublishQos::AtMostOnce => {}
                PublishQos::AtLeastOnce(pid) => self.send(client, Packet::PubAck(Ack::new(pid))),
                PublishQos::ExactlyOnce(pid) => {
                    self.send(client, Packet::PubRec(Ack::new(pid)));
                    assert!(matches!(self.expect(client), Packet::PubRel(_)));
                    self.send(client, Packet::PubComp(Ack::new(pid)));
                }
            }
        }
        received
    }
}

pub fn connect_packet(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol: version,
        bridge: false,
        clean_start: true,
        keep_alive: 0,
        client_id: s(client_id),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

pub fn will(topic: &str, payload: &'static [u8], qos: QoS, retain: bool) -> LastWill {
    LastWill {
        topic: s(topic),
        payload: Bytes::from_static(payload),
        qos,
        retain,
        properties: Properties::default(),
    }
}

pub fn publish_packet(
    topic: &str,
    payload: &'static [u8],
    qos: PublishQos,
    retain: bool,
) -> Publish {
    Publish::new(s(topic), Bytes::from_static(payload))
        .with_qos(qos)
        .with_retain(retain)
}

/// A message published in process (by the application, not a client).
pub fn app_message(
    topic: &str,
    payload: &'static [u8],
    qos: QoS,
    retain: bool,
    now: Instant,
) -> Message {
    Message::new(s(topic), Bytes::from_static(payload), qos, retain, now)
}

/// A subscriber to `t` at `qos` (`sub`) and a publisher (`pub`), both 3.1.1, connected in that
/// order.
pub fn subscriber_and_publisher(h: &mut Harness, qos: QoS) -> (TestClient, TestClient) {
    let sub = h.connect(V311, "sub");
    h.subscribe(sub, "t", qos);
    let publisher = h.connect(V311, "pub");
    (sub, publisher)
}

pub const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
pub const V5: ProtocolVersion = ProtocolVersion::V5;
pub const V31: ProtocolVersion = ProtocolVersion::V3_1;

/// The default config with one change.
pub fn config(change: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    change(&mut config);
    config
}

/// A CONNECT packet (whether the codec boxes it or not).
#[allow(clippy::useless_conversion)]
pub fn connect_pkt(connect: Connect) -> Packet {
    Packet::Connect(connect.into())
}
