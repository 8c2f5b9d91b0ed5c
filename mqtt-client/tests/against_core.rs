//! The client against the broker's own sans-IO core, on simulated time and in-memory
//! connections: both state machines are real, so what is shown here is what two processes
//! on a socket would do, minus the socket. Connections can be cut at any point.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_broker_core::{Broker, Config, ConnectionId, ConnectionInfo, Output};
use mqtt_client::{Client, Event, Message, Options};
use mqtt_wire::{MqttStr, Properties, ProtocolVersion, Publish, QoS, SubscriptionOptions};
use proptest::prelude::*;

use ProtocolVersion::{V3_1_1, V5};

/// A broker core and clients wired to it.
struct Net {
    broker: Broker,
    now: Instant,
    clients: Vec<Peer>,
    next_conn: u64,
}

struct Peer {
    client: Client,
    conn: Option<ConnectionId>,
    input: BytesMut,
    events: Vec<Event>,
}

impl Net {
    fn new(config: Config) -> Self {
        Net {
            broker: Broker::try_new(config).unwrap(),
            now: Instant::now(),
            clients: Vec::new(),
            next_conn: 0,
        }
    }

    fn add(&mut self, options: Options) -> usize {
        self.clients.push(Peer {
            client: Client::new(options),
            conn: None,
            input: BytesMut::new(),
            events: Vec::new(),
        });
        self.clients.len() - 1
    }

    /// Opens a transport for client `i` and sends its CONNECT.
    fn connect(&mut self, i: usize) {
        self.next_conn += 1;
        let conn = ConnectionId(self.next_conn);
        self.broker
            .handle_open(conn, ConnectionInfo::default(), self.now)
            .unwrap();
        let peer = &mut self.clients[i];
        peer.conn = Some(conn);
        peer.input.clear();
        peer.client.connect(self.now).unwrap();
        self.pump();
    }

    /// Cuts client `i`'s transport without a DISCONNECT: bytes in flight both ways are lost.
    fn cut(&mut self, i: usize) {
        if let Some(conn) = self.clients[i].conn.take() {
            let _ = self.clients[i].client.poll_transmit();
            self.clients[i].client.connection_lost();
            self.broker.handle_closed(conn, self.now).unwrap();
        }
        self.pump();
    }

    /// Moves bytes both ways until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for peer in &mut self.clients {
                while let Some(event) = peer.client.poll_event() {
                    peer.events.push(event);
                }
                if let (Some(conn), Some(bytes)) = (peer.conn, peer.client.poll_transmit()) {
                    self.broker.handle_bytes(conn, &bytes, self.now).unwrap();
                    moved = true;
                }
            }
            while let Some(output) = self.broker.poll_output() {
                moved = true;
                match output {
                    Output::Transmit { conn, data } => {
                        let len: usize = data.iter().map(|d| d.len()).sum();
                        if let Some(peer) = self.clients.iter_mut().find(|p| p.conn == Some(conn)) {
                            for chunk in data {
                                peer.input.extend_from_slice(&chunk);
                            }
                            peer.client.handle_input(&mut peer.input, self.now);
                            self.broker.handle_flushed(conn, len, self.now).unwrap();
                        }
                    }
                    Output::Close { conn } => {
                        if let Some(peer) = self.clients.iter_mut().find(|p| p.conn == Some(conn)) {
                            peer.conn = None;
                            peer.client.connection_lost();
                        }
                        self.broker.handle_closed(conn, self.now).unwrap();
                    }
                    Output::Persist(batch) => {
                        self.broker.handle_persisted(batch.seq, self.now).unwrap();
                    }
                    _ => {}
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        for peer in &mut self.clients {
            peer.client.handle_timeout(self.now);
        }
        self.broker.handle_timeout(self.now);
        self.pump();
    }

    fn client(&mut self, i: usize) -> &mut Client {
        &mut self.clients[i].client
    }

    fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.clients[i].events)
    }

    fn messages(&mut self, i: usize) -> Vec<Publish> {
        self.take_events(i)
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn subscribe(&mut self, i: usize, filter: &str, qos: QoS) {
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        let now = self.now;
        self.client(i)
            .subscribe(vec![(s(filter), options)], Properties::default(), now)
            .unwrap();
        self.pump();
        assert!(
            self.take_events(i)
                .iter()
                .any(|e| matches!(e, Event::Subscribed(_)))
        );
    }

    fn publish(&mut self, i: usize, topic: &str, payload: &str, qos: QoS) {
        let now = self.now;
        let message = Message::new(s(topic), payload.to_owned()).qos(qos);
        self.client(i).publish(message, now).unwrap();
        self.pump();
    }
}

fn s(text: &str) -> MqttStr {
    MqttStr::try_from(text.to_owned()).unwrap()
}

fn persistent(id: &str, version: ProtocolVersion) -> Options {
    Options::new(s(id))
        .version(version)
        .clean_start(false)
        .session_expiry_interval(3600)
}

#[test]
fn mqtt5_4_3_qos_0_1_2_round_trip_in_both_versions() {
    for version in [V3_1_1, V5] {
        let mut net = Net::new(Config::default());
        let sub = net.add(Options::new("sub").version(version));
        let publisher = net.add(Options::new("pub").version(version));
        net.connect(sub);
        net.connect(publisher);
        assert!(net.client(sub).is_connected());
        net.subscribe(sub, "t/#", QoS::ExactlyOnce);
        net.take_events(publisher);
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            net.publish(publisher, "t/a", &format!("{qos:?}"), qos);
        }
        let got = net.messages(sub);
        assert_eq!(got.len(), 3, "{version:?}");
        assert_eq!(
            got.iter().map(|p| p.qos.qos()).collect::<Vec<_>>(),
            [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        );
        // The publisher's QoS 1 and 2 exchanges completed [MQTT5-4.3.2-3] [MQTT5-4.3.3-5].
        let events = net.take_events(publisher);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Acknowledged { .. }))
        );
        assert!(events.iter().any(|e| matches!(e, Event::Completed { .. })));
        assert!(net.client(publisher).session().is_empty());
        // The subscriber answered both: the broker holds nothing for it in flight.
        assert!(net.client(sub).session().is_empty());
        assert_eq!(net.broker.inflight_messages(), 0);
    }
}

#[test]
fn mqtt5_4_4_0_1_unfinished_messages_are_sent_again_on_a_resumed_session() {
    for version in [V3_1_1, V5] {
        let mut net = Net::new(Config::default());
        let sub = net.add(persistent("sub", version));
        let publisher = net.add(persistent("pub", version));
        net.connect(sub);
        net.subscribe(sub, "t", QoS::ExactlyOnce);
        net.connect(publisher);
        // The publisher's bytes leave, but the connection breaks before any answer comes back.
        let now = net.now;
        for (n, qos) in [(1, QoS::AtLeastOnce), (2, QoS::ExactlyOnce)] {
            let message = Message::new("t", format!("m{n}")).qos(qos);
            net.client(publisher).publish(message, now).unwrap();
        }
        let bytes = net.client(publisher).poll_transmit().unwrap();
        let conn = net.clients[publisher].conn.unwrap();
        net.broker.handle_bytes(conn, &bytes, net.now).unwrap();
        net.cut(publisher);
        assert_eq!(net.client(publisher).session().outgoing().count(), 2);
        net.connect(publisher);
        // Resent with DUP; the broker already had both: QoS 2 is not delivered twice
        // [MQTT5-4.3.3-10]; QoS 1 may be.
        let got = net.messages(sub);
        let twos = got
            .iter()
            .filter(|p| p.qos.qos() == QoS::ExactlyOnce)
            .count();
        assert_eq!(twos, 1, "{version:?}: {got:?}");
        assert!(net.client(publisher).session().is_empty(), "{version:?}");
    }
}

#[test]
fn mqtt5_3_2_2_5_no_session_at_the_server_drops_the_clients_state() {
    let mut net = Net::new(Config::default());
    let publisher = net.add(persistent("pub", V5));
    net.connect(publisher);
    let now = net.now;
    net.client(publisher)
        .publish(Message::new("t", "x").qos(QoS::AtLeastOnce), now)
        .unwrap();
    let _ = net.client(publisher).poll_transmit(); // lost on the way
    net.cut(publisher);
    net.broker = Broker::try_new(Config::default()).unwrap(); // a server that forgot us
    net.connect(publisher);
    assert!(net.take_events(publisher).iter().any(|e| matches!(
        e,
        Event::Connected {
            session_present: false,
            ..
        }
    )));
    assert!(net.client(publisher).session().is_empty());
}

#[test]
fn mqtt5_3_3_4_7_the_servers_receive_maximum_is_kept() {
    let mut config = Config::default();
    config.receive_maximum = 2;
    let mut net = Net::new(config);
    let publisher = net.add(Options::new("pub"));
    net.connect(publisher);
    assert_eq!(net.client(publisher).server_limits().receive_maximum, 2);
    let now = net.now;
    for _ in 0..2 {
        net.client(publisher)
            .publish(Message::new("t", "x").qos(QoS::AtLeastOnce), now)
            .unwrap();
    }
    assert_eq!(net.client(publisher).send_quota(), 0);
    let third = net
        .client(publisher)
        .publish(Message::new("t", "x").qos(QoS::AtLeastOnce), now);
    assert_eq!(third, Err(mqtt_client::ClientError::ReceiveMaximum(2)));
    // QoS 0 still goes [MQTT5-4.9.0-3].
    assert!(
        net.client(publisher)
            .publish(Message::new("t", "x"), now)
            .is_ok()
    );
    net.pump();
    assert_eq!(net.client(publisher).send_quota(), 2);
}

#[test]
fn mqtt5_3_1_2_20_an_idle_client_pings_and_the_server_keeps_it() {
    let mut net = Net::new(Config::default());
    let c = net.add(Options::new("c").keep_alive(10));
    net.connect(c);
    for _ in 0..10 {
        net.advance(Duration::from_secs(10));
        assert!(net.client(c).is_connected());
    }
    // The broker would have closed a connection silent for 1.5 x 10 s [MQTT5-3.1.2-22].
    assert!(net.clients[c].conn.is_some());
}

#[test]
fn manual_acknowledgements_leave_only_when_the_application_says() {
    let mut net = Net::new(Config::default());
    let sub = net.add(Options::new("sub").manual_acks(true));
    let publisher = net.add(Options::new("pub"));
    net.connect(sub);
    net.connect(publisher);
    net.subscribe(sub, "t", QoS::ExactlyOnce);
    net.publish(publisher, "t", "one", QoS::AtLeastOnce);
    net.publish(publisher, "t", "two", QoS::ExactlyOnce);
    let got = net.messages(sub);
    assert_eq!(got.len(), 2);
    assert_eq!(
        net.broker.inflight_messages(),
        2,
        "nothing acknowledged yet"
    );
    for p in &got {
        let id = p.qos.packet_id().unwrap();
        net.client(sub)
            .ack(id, mqtt_wire::ReasonCode::Success)
            .unwrap();
    }
    net.pump();
    let released: Vec<_> = net
        .take_events(sub)
        .into_iter()
        .filter_map(|e| match e {
            Event::Released(id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(released.len(), 1);
    net.client(sub)
        .complete(released[0], mqtt_wire::ReasonCode::Success)
        .unwrap();
    net.pump();
    assert_eq!(net.broker.inflight_messages(), 0);
    assert!(
        net.client(sub)
            .complete(released[0], mqtt_wire::ReasonCode::Success)
            .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A stream of QoS 2 messages from a persistent publisher to a persistent subscriber,
    /// with both connections cut at random points and resumed: every message arrives exactly
    /// once and in order [MQTT5-4.3.3-10] [MQTT5-4.4.0-1] [MQTT5-4.6.0-6].
    #[test]
    fn qos2_is_exactly_once_and_in_order_across_cuts(
        cuts in proptest::collection::vec((any::<bool>(), 0usize..40), 0..12),
        v5 in any::<bool>(),
    ) {
        let version = if v5 { V5 } else { V3_1_1 };
        let mut net = Net::new(Config::default());
        let sub = net.add(persistent("sub", version));
        let publisher = net.add(persistent("pub", version).receive_maximum(4));
        net.connect(sub);
        net.subscribe(sub, "t", QoS::ExactlyOnce);
        net.connect(publisher);
        let total = 40;
        let mut sent = 0;
        let mut received = Vec::new();
        let mut cuts = cuts.into_iter().peekable();
        while sent < total || !net.client(publisher).session().is_empty() {
            if let Some(&(which, at)) = cuts.peek()
                && at <= sent
            {
                cuts.next();
                let who = if which { sub } else { publisher };
                net.cut(who);
                net.connect(who);
                received.extend(net.messages(sub));
                continue;
            }
            if sent < total && net.client(publisher).send_quota() > 0 {
                let now = net.now;
                let message = Message::new("t", format!("{sent}")).qos(QoS::ExactlyOnce);
                net.client(publisher).publish(message, now).unwrap();
                sent += 1;
            }
            net.pump();
            received.extend(net.messages(sub));
        }
        let payloads: Vec<String> = received
            .iter()
            .map(|p| String::from_utf8(p.payload().to_vec()).unwrap())
            .collect();
        let expected: Vec<String> = (0..total).map(|n| n.to_string()).collect();
        prop_assert_eq!(payloads, expected);
    }
}
