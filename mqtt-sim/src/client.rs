//! A simulated MQTT client: what a real client library and its application do, chosen by the
//! seed. It keeps the client's half of the session (QoS 1/2 messages in flight, inbound QoS 2
//! identifiers) across reconnects as the spec asks, resends in order when the session is
//! resumed, and tells the oracle what it sent and saw.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::{Bytes, BytesMut};
use mqtt_wire::{
    Ack, Connect, Decoder, Disconnect, LastWill, MqttStr, Packet, PacketId, Properties,
    PropertyValues, ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, Subscribe,
    SubscriptionOptions, Unsubscribe,
};

use crate::oracle::{Ms, MsgId, Oracle};
use crate::rng::Rng;

/// Topics clients publish to (Tasmota's layout, and one plain topic).
pub const TOPICS: [&str; 6] = [
    "tele/a/STATE",
    "tele/b/STATE",
    "cmnd/a/POWER",
    "cmnd/b/POWER",
    "stat/a/RESULT",
    "x",
];

/// Filters clients subscribe to.
pub const FILTERS: [&str; 9] = [
    "tele/+/STATE",
    "tele/#",
    "cmnd/a/POWER",
    "cmnd/+/POWER",
    "#",
    "stat/+/RESULT",
    "+/a/#",
    "tele/+/LWT",
    "x",
];

/// A subscription a client asks for.
#[derive(Debug, Clone, Copy)]
struct Want {
    filter: &'static str,
    qos: u8,
    /// No Local (5.0).
    no_local: bool,
    /// Retain As Published (5.0).
    retain_as_published: bool,
}

impl Want {
    /// A subscription to `filter` with options drawn from `rng` (5.0 ones for a 5.0 client).
    fn draw(filter: &'static str, v5: bool, rng: &mut Rng) -> Want {
        Want {
            filter,
            qos: rng.below(3) as u8,
            no_local: v5 && rng.chance(20),
            retain_as_published: v5 && rng.chance(25),
        }
    }
}

/// Shared subscriptions a worker client takes part in (groups `g` and `h`).
pub const SHARED: [&str; 3] = ["$share/g/tele/+/STATE", "$share/g/cmnd/#", "$share/h/#"];

/// What a client asks of the world.
#[derive(Debug)]
pub enum Out {
    /// Write these bytes on the connection.
    Send(Bytes),
    /// Open a new connection (the world then calls [`Client::opened`]).
    Connect,
    /// Close the socket after what was sent (after a DISCONNECT).
    Close,
    /// The network drops the connection now (both ends see it end).
    NetDrop,
    /// Walk away: the client forgets the connection, the broker is not told (half-open).
    Abandon,
}

/// The fixed traits of a client, drawn once per run.
#[derive(Debug, Clone)]
struct Profile {
    version: ProtocolVersion,
    /// Never asks for a clean start (after its first connection).
    steady: bool,
    /// Percent of connections that keep their session.
    persistent_pct: u64,
    /// v5 session expiry of a persistent session, seconds (`u32::MAX`: never).
    expiry: u32,
    keep_alive: u16,
    will: Option<WillProfile>,
    filters: Vec<Want>,
    /// Subscribes only through its shared subscription.
    worker: bool,
    topics: Vec<&'static str>,
    /// Publishes with topic aliases when the broker allows them (5.0).
    aliases: bool,
}

#[derive(Debug, Clone)]
struct WillProfile {
    qos: u8,
    retain: bool,
    /// v5 Will Delay Interval, seconds.
    delay: u32,
}

/// Where a publish of ours stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// QoS 1, waiting for PUBACK.
    Acknowledgement,
    /// QoS 2, waiting for PUBREC.
    Receipt,
    /// QoS 2, PUBREL sent, waiting for PUBCOMP.
    Completion,
}

#[derive(Debug, Clone)]
struct Outgoing {
    pid: PacketId,
    msg: MsgId,
    publish: Publish,
    stage: Stage,
}

/// The connection as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// No connection.
    Down,
    /// CONNECT sent on this connection, no CONNACK yet.
    Connecting(u64),
    /// Connected.
    Up(u64),
}

/// What the client chose for its current connection.
#[derive(Debug, Clone, Copy)]
struct Choice {
    clean_start: bool,
    persistent: bool,
}

/// One simulated client.
#[derive(Debug)]
pub struct Client {
    /// Its index (and the oracle's name for it).
    pub idx: usize,
    /// Its client identifier.
    pub name: String,
    rng: Rng,
    profile: Profile,
    link: Link,
    choice: Choice,
    inflight: VecDeque<Outgoing>,
    incoming_qos2: HashSet<u16>,
    pending_subs: HashMap<u16, Vec<(&'static str, u64)>>,
    pending_unsubs: HashSet<u16>,
    next_pid: u16,
    decoder: Decoder,
    buf: BytesMut,
    last_sent: Ms,
    receive_maximum: usize,
    /// The run is healing: connect, resume, read; nothing else.
    healing: bool,
    /// Reads are held until then (a slow reader).
    pub stalled_until: Ms,
    /// Offline until then (switched off).
    away_until: Ms,
    /// Topic aliases of this connection (5.0), and how many the broker allows.
    aliases: HashMap<&'static str, u16>,
    alias_maximum: u16,
    /// Packets sent and received, for a failure's trace (kept only when tracing).
    pub log: Option<Vec<String>>,
}

fn qos_of(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn encode(packet: &Packet, version: ProtocolVersion) -> Bytes {
    let mut out = BytesMut::new();
    packet
        .encode(version, &mut out)
        .unwrap_or_else(|e| panic!("the simulator built an unencodable packet: {e}"));
    out.freeze()
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap_or_else(|| panic!("packet identifier 0"))
}

fn text(s: &str) -> MqttStr {
    MqttStr::try_from(s.to_owned()).unwrap_or_else(|e| panic!("invalid string {s:?}: {e}"))
}

/// The message identifier a payload carries (its first 8 bytes).
pub fn msg_of(payload: &[u8]) -> Option<MsgId> {
    let bytes: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

impl Client {
    /// A client whose traits are drawn from `rng`.
    pub fn new(idx: usize, mut rng: Rng) -> Client {
        let version = match rng.below(10) {
            0 => ProtocolVersion::V3_1,
            1..=4 => ProtocolVersion::V3_1_1,
            _ => ProtocolVersion::V5,
        };
        let v5 = version.is_v5();
        // A worker takes messages through one shared subscription and has no other.
        let worker = rng.chance(25);
        let filters = if worker {
            let filter = *rng.pick(&SHARED);
            let mut want = Want::draw(filter, v5, &mut rng);
            want.no_local = false; // a Protocol Error on a shared subscription [MQTT5-3.8.3-4]
            vec![want]
        } else {
            (0..rng.between(1, 3))
                .map(|_| {
                    let filter = *rng.pick(&FILTERS);
                    Want::draw(filter, v5, &mut rng)
                })
                .collect()
        };
        let topics = (0..rng.between(1, 3)).map(|_| *rng.pick(&TOPICS)).collect();
        let will = rng.chance(50).then(|| WillProfile {
            qos: rng.below(3) as u8,
            retain: rng.chance(50),
            delay: if version.is_v5() && rng.chance(40) {
                rng.between(1, 8) as u32
            } else {
                0
            },
        });
        // A steady client keeps one persistent session all run long (a dashboard, a home
        // automation server): what it is owed across crashes and reconnects is checked at the
        // end.
        let steady = rng.chance(40) || (worker && rng.chance(60));
        let profile = Profile {
            version,
            steady,
            persistent_pct: if steady {
                100
            } else {
                *rng.pick(&[0, 50, 90, 100])
            },
            expiry: if steady {
                *rng.pick(&[u32::MAX, 3600])
            } else {
                *rng.pick(&[u32::MAX, 3600, 60, 20])
            },
            keep_alive: *rng.pick(&[0, 5, 10, 30]),
            will,
            filters,
            worker,
            topics,
            aliases: v5 && rng.chance(50),
        };
        let mut decoder = Decoder::new();
        decoder.set_version(version);
        Client {
            idx,
            name: format!("c{idx}"),
            rng,
            profile,
            link: Link::Down,
            choice: Choice {
                clean_start: true,
                persistent: false,
            },
            inflight: VecDeque::new(),
            incoming_qos2: HashSet::new(),
            pending_subs: HashMap::new(),
            pending_unsubs: HashSet::new(),
            next_pid: 0,
            decoder,
            buf: BytesMut::new(),
            last_sent: 0,
            receive_maximum: 8,
            healing: false,
            stalled_until: 0,
            away_until: 0,
            aliases: HashMap::new(),
            alias_maximum: 0,
            log: None,
        }
    }

    /// What the latest CONNECT asked for: a clean start, a session that outlives the
    /// connection.
    pub fn asked(&self) -> (bool, bool) {
        (self.choice.clean_start, self.choice.persistent)
    }

    /// The connection the client believes in.
    pub fn link(&self) -> Link {
        self.link
    }

    /// The v5 expiry of the current session in ms as the oracle counts it (`None`: never).
    fn expiry_ms(&self) -> Option<Ms> {
        if !self.profile.version.is_v5() || self.profile.expiry == u32::MAX {
            None
        } else {
            Some(u64::from(self.profile.expiry) * 1000)
        }
    }

    /// Stop misbehaving: from now on only connect (resuming), read and keep alive.
    pub fn heal(&mut self) {
        self.healing = true;
    }

    fn packet_id(&mut self) -> PacketId {
        loop {
            self.next_pid = self.next_pid.wrapping_add(1).max(1);
            let n = self.next_pid;
            let used = self.inflight.iter().any(|o| o.pid.get() == n)
                || self.pending_subs.contains_key(&n)
                || self.pending_unsubs.contains(&n);
            if !used {
                return pid(n);
            }
        }
    }

    fn send(&mut self, packet: &Packet, now: Ms, out: &mut Vec<Out>) {
        self.last_sent = now;
        if let Some(log) = &mut self.log {
            log.push(format!("{} -> {}", self.name, describe(packet)));
        }
        out.push(Out::Send(encode(packet, self.profile.version)));
    }

    /// The client's next step; returns what to do and when to be asked again.
    pub fn act(&mut self, now: Ms, next_msg: &mut MsgId, oracle: &mut Oracle) -> (Vec<Out>, Ms) {
        let mut out = Vec::new();
        let ka = u64::from(self.profile.keep_alive) * 1000;
        let mut next = if self.healing {
            1000
        } else {
            self.rng.between(20, 1500)
        };
        if ka > 0 {
            next = next.min(ka / 2);
        }
        match self.link {
            Link::Down => {
                if self.healing || (now >= self.away_until && self.rng.chance(60)) {
                    out.push(Out::Connect);
                }
            }
            Link::Connecting(_) => {}
            Link::Up(_) => {
                if ka > 0 && now.saturating_sub(self.last_sent) >= ka / 2 {
                    self.send(&Packet::PingReq, now, &mut out);
                }
                if !self.healing {
                    self.misbehave_or_work(now, next_msg, oracle, &mut out);
                }
            }
        }
        (out, next)
    }

    fn misbehave_or_work(
        &mut self,
        now: Ms,
        next_msg: &mut MsgId,
        oracle: &mut Oracle,
        out: &mut Vec<Out>,
    ) {
        match self.rng.below(100) {
            0..=54 => {
                for _ in 0..self.rng.between(1, 4) {
                    self.publish(now, next_msg, oracle, out);
                }
            }
            55..=61 => self.subscribe(now, oracle, out),
            62..=65 => self.unsubscribe(now, oracle, out),
            66..=70 => {
                let disconnect = Packet::Disconnect(Disconnect::default());
                self.send(&disconnect, now, out);
                out.push(Out::Close);
                self.lost(now, oracle);
                if self.rng.chance(50) {
                    // Switched off for a while: its session collects what it is sent.
                    self.away_until = now + self.rng.between(2_000, 20_000);
                }
            }
            71..=73 => {
                out.push(Out::NetDrop);
                self.lost(now, oracle);
            }
            74..=75 => {
                out.push(Out::Abandon);
                self.lost(now, oracle);
            }
            // Stalls only ever end later: reads held back keep their order.
            76..=79 => {
                self.stalled_until = self.stalled_until.max(now + self.rng.between(100, 4000));
            }
            _ => {}
        }
    }

    fn publish(&mut self, now: Ms, next_msg: &mut MsgId, oracle: &mut Oracle, out: &mut Vec<Out>) {
        let qos = self.rng.below(3) as u8;
        if qos > 0 && self.inflight.len() >= self.receive_maximum {
            return;
        }
        let topic = *self.rng.pick(&self.profile.topics);
        let retain = self.rng.chance(20);
        let clear = retain && self.rng.chance(15);
        *next_msg += 1;
        let msg = *next_msg;
        let payload = if clear {
            Bytes::new()
        } else {
            let mut p = msg.to_be_bytes().to_vec();
            p.resize(8 + self.rng.index(40), b'.');
            Bytes::from(p)
        };
        let mut publish = Publish::new(text(topic), payload).with_retain(retain);
        // One message in five of a 5.0 publisher expires after 1 to 8 s (chosen from its
        // number, so the clients' draws stay as they were).
        let expiry = (self.profile.version.is_v5() && msg.is_multiple_of(5))
            .then(|| 1 + (msg / 5 % 8) as u32);
        if let Some(secs) = expiry {
            publish.properties = PropertyValues {
                message_expiry_interval: Some(secs),
                ..PropertyValues::default()
            }
            .into();
        }
        oracle.published(self.idx, msg, topic, qos, retain, clear, expiry, now);
        if qos > 0 {
            let id = self.packet_id();
            publish = publish.with_qos(if qos == 1 {
                PublishQos::AtLeastOnce(id)
            } else {
                PublishQos::ExactlyOnce(id)
            });
            self.inflight.push_back(Outgoing {
                pid: id,
                msg,
                publish: publish.clone(),
                stage: if qos == 1 {
                    Stage::Acknowledgement
                } else {
                    Stage::Receipt
                },
            });
        }
        if let Some(log) = &mut self.log {
            log.push(format!(
                "{} publishes {msg} on {topic} (QoS {qos}, retain {retain})",
                self.name
            ));
        }
        let publish = self.aliased(topic, publish);
        self.send(&Packet::Publish(publish), now, out);
    }

    /// `publish` (to `topic`) as it goes out on this connection: with a topic alias where the
    /// broker allows them, the topic itself only the first time [MQTT5-3.3.2-12].
    fn aliased(&mut self, topic: &'static str, publish: Publish) -> Publish {
        if self.alias_maximum == 0 {
            return publish;
        }
        let known = self.aliases.get(topic).copied();
        let alias = match known {
            Some(alias) => alias,
            None if self.aliases.len() < usize::from(self.alias_maximum) => {
                let alias = self.aliases.len() as u16 + 1;
                self.aliases.insert(topic, alias);
                alias
            }
            None => return publish,
        };
        let name = if known.is_some() {
            MqttStr::from_static("")
        } else {
            text(topic)
        };
        let mut aliased = Publish::new(name, publish.payload_bytes())
            .with_qos(publish.qos)
            .with_retain(publish.retain);
        aliased.dup = publish.dup;
        let mut properties = (*publish.properties).clone();
        properties.topic_alias = Some(alias);
        aliased.properties = properties.into();
        aliased
    }

    fn subscribe(&mut self, now: Ms, oracle: &mut Oracle, out: &mut Vec<Out>) {
        let filters = if self.profile.worker || self.rng.chance(50) {
            self.profile.filters.clone()
        } else {
            let filter = *self.rng.pick(&FILTERS);
            vec![Want::draw(
                filter,
                self.profile.version.is_v5(),
                &mut self.rng,
            )]
        };
        self.send_subscribe(filters, now, oracle, out);
    }

    fn send_subscribe(
        &mut self,
        filters: Vec<Want>,
        now: Ms,
        oracle: &mut Oracle,
        out: &mut Vec<Out>,
    ) {
        let id = self.packet_id();
        let subscribe = Subscribe {
            packet_id: id,
            filters: filters
                .iter()
                .map(|w| {
                    let options = SubscriptionOptions {
                        qos: qos_of(w.qos),
                        no_local: w.no_local,
                        retain_as_published: w.retain_as_published,
                        ..SubscriptionOptions::default()
                    };
                    (text(w.filter), options)
                })
                .collect(),
            properties: Properties::default(),
        };
        let asked = filters
            .into_iter()
            .map(|w| {
                let asked = oracle.subscribing(
                    self.idx,
                    w.filter,
                    w.qos,
                    w.no_local,
                    w.retain_as_published,
                    now,
                );
                (w.filter, asked)
            })
            .collect();
        self.pending_subs.insert(id.get(), asked);
        self.send(&Packet::Subscribe(subscribe), now, out);
    }

    fn unsubscribe(&mut self, now: Ms, oracle: &mut Oracle, out: &mut Vec<Out>) {
        let filter = match self.profile.filters.first() {
            Some(share) if self.profile.worker => share.filter,
            _ => *self.rng.pick(&FILTERS),
        };
        let id = self.packet_id();
        self.pending_unsubs.insert(id.get());
        oracle.unsubscribing(self.idx, filter, now);
        let unsubscribe = Unsubscribe {
            packet_id: id,
            filters: vec![text(filter)],
            properties: Properties::default(),
        };
        self.send(&Packet::Unsubscribe(unsubscribe), now, out);
    }

    /// The world opened connection `conn` for us; returns the CONNECT. `next_msg` numbers the
    /// will.
    pub fn opened(
        &mut self,
        conn: u64,
        now: Ms,
        next_msg: &mut MsgId,
        oracle: &mut Oracle,
    ) -> Vec<Out> {
        let version = self.profile.version;
        let persistent =
            self.healing && self.choice.persistent || self.rng.chance(self.profile.persistent_pct);
        let clean_start = if self.healing || self.profile.steady {
            false
        } else if version.is_v5() {
            self.rng.chance(25)
        } else {
            !persistent
        };
        let persistent = if version.is_v5() {
            persistent
        } else {
            !clean_start
        };
        self.choice = Choice {
            clean_start,
            persistent,
        };
        self.link = Link::Connecting(conn);
        // Topic aliases belong to a connection [MQTT5-3.3.2-7].
        self.aliases.clear();
        self.alias_maximum = 0;
        if clean_start {
            // The client discards its session state when it asks for a clean start, whether
            // or not the CONNACK arrives [MQTT-3.1.2-4] [MQTT5-3.1.2-4].
            self.inflight.clear();
            self.incoming_qos2.clear();
            oracle.client_state_reset(self.idx);
        }
        self.buf.clear();
        self.decoder = Decoder::new();
        self.decoder.set_version(version);
        // How long the session outlives this connection (a delayed will waits at most that).
        let session_ms = match (version.is_v5() && persistent, self.profile.expiry) {
            (false, _) => Some(0),
            (true, u32::MAX) => None,
            (true, secs) => Some(u64::from(secs) * 1000),
        };
        let will = self.profile.will.clone().map(|w| {
            *next_msg += 1;
            let msg = *next_msg;
            let topic = format!("tele/{}/LWT", self.name);
            oracle.will_armed(
                self.idx,
                conn,
                msg,
                &topic,
                w.qos,
                w.retain,
                u64::from(w.delay) * 1000,
                session_ms,
                now,
            );
            let mut properties = PropertyValues::default();
            if w.delay > 0 {
                properties.will_delay_interval = Some(w.delay);
            }
            LastWill {
                topic: text(&topic),
                payload: Bytes::copy_from_slice(&msg.to_be_bytes()),
                qos: qos_of(w.qos),
                retain: w.retain,
                properties: properties.into(),
            }
        });
        let mut properties = PropertyValues::default();
        if version.is_v5() && persistent {
            properties.session_expiry_interval = Some(self.profile.expiry);
        }
        let connect = Connect {
            protocol: version,
            bridge: false,
            clean_start,
            keep_alive: self.profile.keep_alive,
            client_id: text(&self.name),
            will,
            username: None,
            password: None,
            properties: properties.into(),
        };
        let mut out = Vec::new();
        self.send(&Packet::Connect(Box::new(connect)), now, &mut out);
        out
    }

    /// The connection ended as the client sees it (closed by the broker or the network, or
    /// left by the client).
    fn lost(&mut self, now: Ms, oracle: &mut Oracle) {
        if let Link::Up(_) = self.link {
            oracle.connection_lost(self.idx, self.expiry_ms(), now);
        }
        if !self.choice.persistent {
            // A session that lasts only as long as its connection ends with it, on both sides
            // [MQTT-3.1.2-6] [MQTT5-3.1.2-23]: nothing of it is resent on the next connection.
            self.inflight.clear();
            self.incoming_qos2.clear();
            oracle.client_state_reset(self.idx);
        }
        self.link = Link::Down;
    }

    /// The socket of `conn` closed under us.
    pub fn closed(&mut self, conn: u64, now: Ms, oracle: &mut Oracle) {
        match self.link {
            Link::Up(c) | Link::Connecting(c) if c == conn => self.lost(now, oracle),
            _ => {}
        }
    }

    /// Bytes arrived on `conn`; returns what the client answers.
    pub fn received(&mut self, conn: u64, data: &[u8], now: Ms, oracle: &mut Oracle) -> Vec<Out> {
        let mut out = Vec::new();
        match self.link {
            Link::Up(c) | Link::Connecting(c) if c == conn => {}
            _ => return out, // an old connection's leftovers
        }
        self.buf.extend_from_slice(data);
        loop {
            let packet = match self.decoder.decode(&mut self.buf) {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(e) => panic!("{}: the broker sent undecodable bytes: {e}", self.name),
            };
            self.handle(conn, packet, now, oracle, &mut out);
            if self.link == Link::Down {
                break;
            }
        }
        out
    }

    fn handle(
        &mut self,
        conn: u64,
        packet: Packet,
        now: Ms,
        oracle: &mut Oracle,
        out: &mut Vec<Out>,
    ) {
        if let Some(log) = &mut self.log {
            log.push(format!(
                "{} <- {} (conn {conn})",
                self.name,
                describe(&packet)
            ));
        }
        match packet {
            Packet::ConnAck(ack) => {
                if ack.reason_code != ReasonCode::Success {
                    out.push(Out::Close);
                    self.link = Link::Down;
                    return;
                }
                self.link = Link::Up(conn);
                self.receive_maximum = ack
                    .properties
                    .receive_maximum
                    .map_or(8, |m| usize::from(m).min(8));
                if self.profile.aliases {
                    self.alias_maximum = ack.properties.topic_alias_maximum.unwrap_or(0);
                }
                let flag =
                    (self.profile.version != ProtocolVersion::V3_1).then_some(ack.session_present);
                let present = oracle.connack(
                    self.idx,
                    self.choice.clean_start,
                    flag,
                    self.choice.persistent,
                    now,
                );
                self.pending_subs.clear();
                self.pending_unsubs.clear();
                if present {
                    for o in &self.inflight {
                        oracle.resent(o.msg, now);
                    }
                    let resend: Vec<Packet> = self
                        .inflight
                        .iter()
                        .map(|o| match o.stage {
                            Stage::Acknowledgement | Stage::Receipt => {
                                let mut publish = o.publish.clone();
                                publish.dup = true;
                                Packet::Publish(publish)
                            }
                            Stage::Completion => Packet::PubRel(Ack::new(o.pid)),
                        })
                        .collect();
                    for packet in resend {
                        self.send(&packet, now, out);
                    }
                } else {
                    // A new session: what was in flight is no longer the broker's business.
                    self.inflight.clear();
                    self.incoming_qos2.clear();
                }
                if !present || self.rng.chance(30) {
                    let filters = self.profile.filters.clone();
                    self.send_subscribe(filters, now, oracle, out);
                }
            }
            Packet::Publish(publish) => {
                let retain = publish.retain;
                let qos = match publish.qos {
                    PublishQos::AtMostOnce => 0,
                    PublishQos::AtLeastOnce(_) => 1,
                    PublishQos::ExactlyOnce(_) => 2,
                };
                let msg = msg_of(publish.payload());
                // What a 5.0 client was told of the message's lifetime.
                let expiry = self
                    .profile
                    .version
                    .is_v5()
                    .then_some(publish.properties.message_expiry_interval);
                match publish.qos {
                    PublishQos::AtMostOnce => {
                        if let Some(msg) = msg {
                            oracle.received(self.idx, msg, qos, retain, false, expiry, now);
                        }
                    }
                    PublishQos::AtLeastOnce(id) => {
                        if let Some(msg) = msg {
                            oracle.received(self.idx, msg, qos, retain, false, expiry, now);
                        }
                        self.send(&Packet::PubAck(Ack::new(id)), now, out);
                    }
                    PublishQos::ExactlyOnce(id) => {
                        let duplicate = !self.incoming_qos2.insert(id.get());
                        if let Some(msg) = msg {
                            oracle.received(self.idx, msg, qos, retain, duplicate, expiry, now);
                        }
                        self.send(&Packet::PubRec(Ack::new(id)), now, out);
                    }
                }
            }
            Packet::PubRel(ack) => {
                self.incoming_qos2.remove(&ack.packet_id.get());
                self.send(&Packet::PubComp(Ack::new(ack.packet_id)), now, out);
            }
            Packet::PubAck(ack) => {
                if let Some(at) = self
                    .inflight
                    .iter()
                    .position(|o| o.pid == ack.packet_id && o.stage == Stage::Acknowledgement)
                {
                    let o = self.inflight.remove(at).unwrap_or_else(|| unreachable!());
                    if !ack.reason_code.is_error() {
                        oracle.acknowledged(o.msg, now);
                    }
                }
            }
            Packet::PubRec(ack) => {
                if let Some(at) = self.inflight.iter().position(|o| o.pid == ack.packet_id) {
                    if ack.reason_code.is_error() {
                        self.inflight.remove(at);
                        return;
                    }
                    let o = &mut self.inflight[at];
                    if o.stage == Stage::Receipt {
                        oracle.acknowledged(o.msg, now);
                        o.stage = Stage::Completion;
                    }
                    self.send(&Packet::PubRel(Ack::new(ack.packet_id)), now, out);
                }
            }
            Packet::PubComp(ack) => {
                if let Some(at) = self
                    .inflight
                    .iter()
                    .position(|o| o.pid == ack.packet_id && o.stage == Stage::Completion)
                {
                    self.inflight.remove(at);
                }
            }
            Packet::SubAck(ack) => {
                if let Some(filters) = self.pending_subs.remove(&ack.packet_id.get()) {
                    for ((filter, asked), code) in filters.iter().zip(&ack.reason_codes) {
                        // (The same filter twice in one SUBSCRIBE: the later one's number ends
                        // the earlier.)
                        if let Some(granted) = granted_qos(*code) {
                            oracle.subscribed(self.idx, filter, granted, *asked, now);
                        }
                    }
                }
            }
            Packet::UnsubAck(ack) => {
                self.pending_unsubs.remove(&ack.packet_id.get());
            }
            Packet::Disconnect(_) => {
                out.push(Out::Close);
                self.lost(now, oracle);
            }
            Packet::PingResp | Packet::Auth(_) => {}
            other => panic!("{}: the broker sent {other:?}", self.name),
        }
    }
}

/// The QoS a SUBACK reason code grants, if it grants one.
fn granted_qos(code: ReasonCode) -> Option<u8> {
    match code {
        ReasonCode::Success => Some(0),
        ReasonCode::GrantedQoS1 => Some(1),
        ReasonCode::GrantedQoS2 => Some(2),
        _ => None,
    }
}

/// A packet in one short line, for traces.
fn describe(packet: &Packet) -> String {
    match packet {
        Packet::Publish(p) => format!(
            "PUBLISH {}{} {:?} dup={} retain={} msg={:?}",
            p.topic(),
            p.properties
                .topic_alias
                .map_or(String::new(), |a| format!(" (alias {a})")),
            p.qos,
            p.dup,
            p.retain,
            msg_of(p.payload())
        ),
        Packet::Connect(c) => format!(
            "CONNECT clean={} expiry={:?} will={}",
            c.clean_start,
            c.properties.session_expiry_interval,
            c.will.is_some()
        ),
        Packet::ConnAck(a) => format!("CONNACK present={} {:?}", a.session_present, a.reason_code),
        Packet::PubAck(a) => format!("PUBACK {} {:?}", a.packet_id, a.reason_code),
        Packet::PubRec(a) => format!("PUBREC {} {:?}", a.packet_id, a.reason_code),
        Packet::PubRel(a) => format!("PUBREL {}", a.packet_id),
        Packet::PubComp(a) => format!("PUBCOMP {}", a.packet_id),
        Packet::Subscribe(s) => format!(
            "SUBSCRIBE {} {:?}",
            s.packet_id,
            s.filters
                .iter()
                .map(|(f, o)| (f.as_str().to_owned(), o.qos))
                .collect::<Vec<_>>()
        ),
        Packet::SubAck(a) => format!("SUBACK {} {:?}", a.packet_id, a.reason_codes),
        Packet::Unsubscribe(u) => format!("UNSUBSCRIBE {} {:?}", u.packet_id, u.filters),
        other => format!("{:?}", other.packet_type()),
    }
}
