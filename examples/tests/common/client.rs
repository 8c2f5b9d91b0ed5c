//! A blocking MQTT client for the tests: `mqtt_client::Client` (our sans-IO client) driven
//! over a std `TcpStream` with read timeouts. It acknowledges what it receives itself.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_client::{Client, Event, Message, Options};
use mqtt_wire::{MqttStr, Properties, Publish, QoS, SubscriptionOptions};

/// How long one wait for an answer may take.
pub const ANSWER: Duration = Duration::from_secs(10);

/// A connected client.
pub struct TestClient {
    port: u16,
    stream: TcpStream,
    client: Client,
    input: BytesMut,
    messages: VecDeque<Publish>,
    events: VecDeque<Event>,
    /// What the last CONNACK said.
    session_present: bool,
}

/// `text` as an MQTT string.
pub fn s(text: &str) -> MqttStr {
    MqttStr::try_from(text.to_owned()).expect("valid string")
}

impl TestClient {
    /// Connects to loopback `port` with `options` and waits for the CONNACK.
    pub fn connect(port: u16, options: Options) -> TestClient {
        Self::try_connect(port, options).expect("connected")
    }

    /// Connects, or says why not.
    pub fn try_connect(port: u16, options: Options) -> Result<TestClient, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut this = TestClient {
            port,
            stream,
            client: Client::new(options),
            input: BytesMut::new(),
            messages: VecDeque::new(),
            events: VecDeque::new(),
            session_present: false,
        };
        this.handshake()?;
        Ok(this)
    }

    fn handshake(&mut self) -> Result<(), String> {
        self.client
            .connect(Instant::now())
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + ANSWER;
        loop {
            self.pump(Duration::from_millis(50));
            while let Some(event) = self.events.pop_front() {
                match event {
                    Event::Connected {
                        session_present, ..
                    } => {
                        self.session_present = session_present;
                        return Ok(());
                    }
                    Event::Refused(code) => return Err(format!("refused: {code:?}")),
                    Event::Disconnected(why) => return Err(format!("disconnected: {why:?}")),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                return Err(String::from("no CONNACK"));
            }
        }
    }

    /// Connects again on a new socket (to `port`), keeping the client's session state:
    /// unfinished messages are sent again and duplicates of received QoS 2 messages are
    /// recognised. `false` when the broker cannot be reached or refuses.
    pub fn reconnect(&mut self, port: u16) -> bool {
        self.client.connection_lost();
        while self.client.poll_event().is_some() {}
        let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = stream.set_nodelay(true);
        self.port = port;
        self.stream = stream;
        self.input.clear();
        self.handshake().is_ok()
    }

    /// Whether the last CONNACK said the session was resumed.
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    /// The port it last connected to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The sans-IO client inside.
    pub fn inner(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Writes what is due, reads for up to `wait`, and sorts what came in.
    pub fn pump(&mut self, wait: Duration) {
        self.flush();
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .expect("timeout");
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => self.client.connection_lost(),
            Ok(n) => {
                self.input.extend_from_slice(&buf[..n]);
                self.client.handle_input(&mut self.input, Instant::now());
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => self.client.connection_lost(),
        }
        self.client.handle_timeout(Instant::now());
        self.flush();
        while let Some(event) = self.client.poll_event() {
            match event {
                Event::Message(publish) => self.messages.push_back(publish),
                other => self.events.push_back(other),
            }
        }
    }

    fn flush(&mut self) {
        while let Some(bytes) = self.client.poll_transmit() {
            if self.stream.write_all(&bytes).is_err() {
                self.client.connection_lost();
                return;
            }
        }
    }

    /// Whether the connection is open.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Subscribes and waits for the SUBACK; returns its reason codes.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<mqtt_wire::ReasonCode> {
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        self.subscribe_with(filter, options)
    }

    /// Subscribes with `options` and waits for the SUBACK; returns its reason codes.
    pub fn subscribe_with(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
    ) -> Vec<mqtt_wire::ReasonCode> {
        self.client
            .subscribe(
                vec![(s(filter), options)],
                Properties::default(),
                Instant::now(),
            )
            .expect("subscribe");
        let deadline = Instant::now() + ANSWER;
        loop {
            self.pump(Duration::from_millis(20));
            if let Some(at) = self
                .events
                .iter()
                .position(|e| matches!(e, Event::Subscribed(_)))
                && let Some(Event::Subscribed(ack)) = self.events.remove(at)
            {
                return ack.reason_codes;
            }
            assert!(Instant::now() < deadline, "no SUBACK for {filter}");
        }
    }

    /// Publishes and, for QoS 1/2, waits until the broker acknowledged it.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        let message = Message::new(s(topic), payload.to_vec())
            .qos(qos)
            .retain(retain);
        let id = self
            .client
            .publish(message, Instant::now())
            .expect("publish");
        let Some(id) = id else {
            self.flush();
            return;
        };
        let deadline = Instant::now() + ANSWER;
        loop {
            self.pump(Duration::from_millis(20));
            let done = self.events.iter().position(|e| {
                matches!(e, Event::Acknowledged { packet_id, .. } | Event::Completed { packet_id, .. } if *packet_id == id)
            });
            if let Some(at) = done {
                self.events.remove(at);
                return;
            }
            assert!(Instant::now() < deadline, "no acknowledgement for {topic}");
        }
    }

    /// Publishes `count` messages `topic` with payloads `0`, `1`, ... at `qos`, keeping as
    /// many in flight as the broker allows; returns once all are acknowledged (or `limit`
    /// passed: then the number acknowledged so far).
    pub fn publish_numbered(
        &mut self,
        topic: &str,
        count: usize,
        qos: QoS,
        limit: Duration,
    ) -> usize {
        let deadline = Instant::now() + limit;
        let mut next = 0;
        let mut done = 0;
        while done < count && Instant::now() < deadline {
            while next < count && self.client.send_quota() > 0 && self.client.is_connected() {
                let message = Message::new(s(topic), next.to_string()).qos(qos);
                if self.client.publish(message, Instant::now()).is_err() {
                    break;
                }
                next += 1;
            }
            self.pump(Duration::from_millis(5));
            let before = self.events.len();
            self.events
                .retain(|e| !matches!(e, Event::Acknowledged { .. } | Event::Completed { .. }));
            done += before - self.events.len();
            if !self.client.is_connected() {
                break;
            }
        }
        done
    }

    /// Pumps once and counts the QoS 1/2 publications the broker finished acknowledging.
    pub fn take_completions(&mut self, wait: Duration) -> usize {
        self.pump(wait);
        let before = self.events.len();
        self.events
            .retain(|e| !matches!(e, Event::Acknowledged { .. } | Event::Completed { .. }));
        before - self.events.len()
    }

    /// The next message, waiting up to `limit`.
    pub fn recv(&mut self, limit: Duration) -> Option<Publish> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(message) = self.messages.pop_front() {
                return Some(message);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.pump(Duration::from_millis(20));
        }
    }

    /// Every message until none came for `quiet`.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Publish> {
        let mut got = Vec::new();
        while let Some(message) = self.recv(quiet) {
            got.push(message);
        }
        got
    }

    /// Messages until `count` came or nothing came for `quiet`.
    pub fn collect(&mut self, count: usize, quiet: Duration) -> Vec<Publish> {
        let mut got = Vec::new();
        while got.len() < count {
            match self.recv(quiet) {
                Some(message) => got.push(message),
                None => break,
            }
        }
        got
    }

    /// How the connection ended, waiting up to `limit` for it to end; `None` while open.
    pub fn disconnection(&mut self, limit: Duration) -> Option<mqtt_client::Disconnection> {
        let deadline = Instant::now() + limit;
        while self.is_connected() && Instant::now() < deadline {
            self.pump(Duration::from_millis(20));
        }
        self.events.iter().find_map(|e| match e {
            Event::Disconnected(how) => Some(how.clone()),
            _ => None,
        })
    }

    /// A normal DISCONNECT.
    pub fn disconnect(mut self) {
        self.client.disconnect(mqtt_wire::ReasonCode::Success);
        self.flush();
    }
}

/// The payload as text.
pub fn text(publish: &Publish) -> String {
    String::from_utf8_lossy(publish.payload()).into_owned()
}
