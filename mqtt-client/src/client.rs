//! The client state machine.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_wire::{
    Ack, ConnAck, Connect, Decoder, Disconnect, MqttStr, Packet, PacketId, Properties, Publish,
    PublishQos, QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};

use crate::error::{ClientError, Disconnection};
use crate::options::Options;
use crate::session::{Outgoing, SessionState};

/// What the client tells the application, taken with [`Client::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// CONNACK with success: the connection is open. Unfinished messages of a resumed session
    /// have been queued for sending again [MQTT5-4.4.0-1].
    Connected {
        /// The server resumed the session.
        session_present: bool,
        /// The CONNACK's properties (5.0): the server's limits, an assigned client identifier.
        properties: Properties,
    },
    /// CONNACK with an error: the server refused the connection and closes it.
    Refused(ReasonCode),
    /// A PUBLISH from the server. QoS 1/2 messages are acknowledged by the client unless
    /// [`Options::manual_acks`] is set, then by [`Client::ack`].
    Message(Publish),
    /// PUBACK: a QoS 1 message is done (an error reason code means refused; it is not sent
    /// again [MQTT5-4.4.0-2]).
    Acknowledged {
        /// Its packet identifier.
        packet_id: PacketId,
        /// The server's reason code.
        reason_code: ReasonCode,
    },
    /// PUBREC: the server has a QoS 2 message. With a success code the PUBREL follows (at once,
    /// or with [`Client::release`] under manual acknowledgements); with an error code the
    /// exchange ends here.
    Received {
        /// Its packet identifier.
        packet_id: PacketId,
        /// The server's reason code.
        reason_code: ReasonCode,
    },
    /// PUBCOMP: a QoS 2 message is done.
    Completed {
        /// Its packet identifier.
        packet_id: PacketId,
        /// The server's reason code.
        reason_code: ReasonCode,
    },
    /// PUBREL for a QoS 2 message received from the server. Under manual acknowledgements the
    /// application answers it with [`Client::complete`].
    Released(PacketId),
    /// SUBACK.
    Subscribed(SubAck),
    /// UNSUBACK.
    Unsubscribed(UnsubAck),
    /// The connection is over: the transport should be closed once what
    /// [`Client::poll_transmit`] still holds is written. The session state is kept for the
    /// next [`Client::connect`].
    Disconnected(Disconnection),
}

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No connection: [`Client::connect`] may be called.
    Idle,
    /// CONNECT sent, no CONNACK yet.
    Connecting { deadline: Instant },
    /// Open.
    Connected,
    /// Over: waiting for the application to close the transport and report it.
    Closing,
}

/// A received message the application has not acknowledged yet (manual acknowledgements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unacknowledged {
    /// QoS 1: PUBACK due.
    Qos1,
    /// QoS 2: PUBREC due.
    Qos2,
    /// QoS 2 after PUBREL: PUBCOMP due.
    Release,
}

/// What the server announced in its CONNACK (5.0), with the defaults of the standard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// How many QoS 1/2 messages may be unacknowledged towards the server.
    pub receive_maximum: u16,
    /// The largest packet the server accepts.
    pub maximum_packet_size: u32,
    /// The highest QoS the server accepts.
    pub maximum_qos: QoS,
    /// Whether the server keeps retained messages.
    pub retain_available: bool,
    /// The keep alive in force (the server's, if it named one [MQTT5-3.1.2-21]).
    pub keep_alive: u16,
}

impl ServerLimits {
    fn unlimited(keep_alive: u16) -> Self {
        ServerLimits {
            receive_maximum: u16::MAX,
            maximum_packet_size: mqtt_wire::MAX_PACKET_SIZE,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            keep_alive,
        }
    }
}

/// A sans-IO MQTT client: the application feeds it the bytes read from the transport
/// ([`Client::handle_input`]) and the time ([`Client::handle_timeout`]), and takes from it
/// the bytes to write ([`Client::poll_transmit`]), what happened ([`Client::poll_event`]) and
/// when to wake it next ([`Client::poll_timeout`]). It opens no socket and reads no clock, so
/// it runs on any runtime and in a simulation.
///
/// The session state ([`Client::session`]) outlives connections: unfinished QoS 1/2 messages
/// are sent again when the server resumes the session, and can be saved across restarts
/// ([`SessionState::to_bytes`]).
///
/// ```
/// use std::time::Instant;
/// use bytes::BytesMut;
/// use mqtt_client::{Client, Event, Message, Options};
/// use mqtt_wire::{ProtocolVersion, QoS};
///
/// let now = Instant::now();
/// let mut client = Client::new(Options::new("lamp").version(ProtocolVersion::V3_1_1));
/// client.connect(now)?;
/// let connect = client.poll_transmit().expect("CONNECT");
/// assert_eq!(connect[0], 0x10);
///
/// // The server's CONNACK arrives: accepted, no session.
/// client.handle_input(&mut BytesMut::from(&b"\x20\x02\x00\x00"[..]), now);
/// assert!(matches!(client.poll_event(), Some(Event::Connected { session_present: false, .. })));
///
/// let id = client.publish(Message::new("stat/lamp/POWER", "ON").qos(QoS::AtLeastOnce), now)?;
/// assert!(id.is_some());
/// client.handle_input(&mut BytesMut::from(&b"\x40\x02\x00\x01"[..]), now); // PUBACK 1
/// assert!(matches!(client.poll_event(), Some(Event::Acknowledged { .. })));
/// # Ok::<(), mqtt_client::ClientError>(())
/// ```
#[derive(Debug)]
pub struct Client {
    options: Options,
    phase: Phase,
    decoder: Decoder,
    transmit: BytesMut,
    events: VecDeque<Event>,
    session: SessionState,
    unacknowledged: BTreeMap<PacketId, Unacknowledged>,
    requests: HashMap<PacketId, ()>,
    next_id: u16,
    server: ServerLimits,
    last_sent: Option<Instant>,
    ping_sent: Option<Instant>,
}

/// A message to publish with [`Client::publish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: MqttStr,
    /// The payload.
    pub payload: Bytes,
    /// The QoS.
    pub qos: QoS,
    /// The RETAIN flag.
    pub retain: bool,
    /// MQTT 5.0 properties.
    pub properties: Properties,
}

impl Message {
    /// A QoS 0 message, not retained, without properties.
    pub fn new(topic: impl Into<MqttStr>, payload: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties::default(),
        }
    }

    /// Sets the QoS.
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Sets the RETAIN flag.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Sets the properties.
    pub fn properties(mut self, properties: Properties) -> Self {
        self.properties = properties;
        self
    }
}

impl Client {
    /// A client with `options`, not connected, with an empty session.
    pub fn new(options: Options) -> Self {
        Self::with_session(options, SessionState::default())
    }

    /// A client that resumes `session` (read back with [`SessionState::from_bytes`]).
    pub fn with_session(options: Options, session: SessionState) -> Self {
        let keep_alive = options.keep_alive;
        let decoder = Decoder::new().with_max_packet_size(options.maximum_packet_size);
        Client {
            options,
            phase: Phase::Idle,
            decoder,
            transmit: BytesMut::new(),
            events: VecDeque::new(),
            session,
            unacknowledged: BTreeMap::new(),
            requests: HashMap::new(),
            next_id: 0,
            server: ServerLimits::unlimited(keep_alive),
            last_sent: None,
            ping_sent: None,
        }
    }

    /// The options the client was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Whether a connection is open (CONNACK received, not ended).
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The server's limits from the last CONNACK.
    pub fn server_limits(&self) -> ServerLimits {
        self.server
    }

    /// The session state: unfinished messages in both directions.
    pub fn session(&self) -> &SessionState {
        &self.session
    }

    /// Forgets the session state, for an application that keeps it elsewhere: a bridge whose
    /// local session holds every unfinished message and sends it again, or one that starts
    /// over. Also after a CONNACK without session, which the client does itself
    /// [MQTT5-3.2.2-5].
    pub fn discard_session(&mut self) {
        self.session = SessionState::default();
        self.unacknowledged.clear();
    }

    /// How many QoS 1/2 messages can be published now before the server's Receive Maximum is
    /// reached [MQTT5-3.3.4-7].
    pub fn send_quota(&self) -> usize {
        let in_flight = self
            .session
            .outgoing
            .values()
            .filter(|(_, entry)| matches!(entry, Outgoing::Publish(_)))
            .count();
        usize::from(self.server.receive_maximum).saturating_sub(in_flight)
    }

    /// Starts a connection on a fresh transport: queues the CONNECT. Call it once the
    /// transport is open; after a [`Event::Disconnected`], once the old one is closed and a new
    /// one open.
    ///
    /// # Errors
    /// [`ClientError::AlreadyConnected`] while a connection is open or being opened, or
    /// [`ClientError::Encode`] for options that cannot be encoded.
    pub fn connect(&mut self, now: Instant) -> Result<(), ClientError> {
        if matches!(self.phase, Phase::Connecting { .. } | Phase::Connected) {
            return Err(ClientError::AlreadyConnected);
        }
        let v5 = self.options.version.is_v5();
        let mut properties = Properties::default();
        if v5 {
            if self.options.session_expiry_interval > 0 {
                properties.session_expiry_interval = Some(self.options.session_expiry_interval);
            }
            if self.options.receive_maximum != u16::MAX {
                properties.receive_maximum = Some(self.options.receive_maximum);
            }
            if self.options.maximum_packet_size != mqtt_wire::MAX_PACKET_SIZE {
                properties.maximum_packet_size = Some(self.options.maximum_packet_size);
            }
        }
        let connect = Connect {
            protocol: self.options.version,
            bridge: self.options.bridge && !v5,
            clean_start: self.options.clean_start,
            keep_alive: self.options.keep_alive,
            client_id: self.options.client_id.clone(),
            will: self.options.will.clone(),
            username: self.options.username.clone(),
            password: self.options.password.clone(),
            properties,
        };
        let mut frame = BytesMut::new();
        Packet::Connect(Box::new(connect)).encode(self.options.version, &mut frame)?;
        self.decoder = Decoder::new().with_max_packet_size(self.options.maximum_packet_size);
        self.decoder.set_version(self.options.version);
        self.transmit.clear();
        self.transmit.extend_from_slice(&frame);
        self.requests.clear();
        self.ping_sent = None;
        self.last_sent = Some(now);
        self.server = ServerLimits::unlimited(self.options.keep_alive);
        self.phase = Phase::Connecting {
            deadline: now + self.options.connect_timeout,
        };
        Ok(())
    }

    /// The transport closed (or failed) without the client asking. Pending requests are
    /// forgotten; the session state stays for the next [`Client::connect`]. Reports
    /// [`Event::Disconnected`] unless the end was reported already.
    pub fn connection_lost(&mut self) {
        if matches!(self.phase, Phase::Connecting { .. } | Phase::Connected) {
            self.events
                .push_back(Event::Disconnected(Disconnection::ByServer(
                    ReasonCode::UnspecifiedError,
                )));
        }
        self.phase = Phase::Idle;
        self.requests.clear();
        self.ping_sent = None;
    }

    /// Sends DISCONNECT with `reason` (normal: `Success`, which discards the will) and ends
    /// the connection.
    pub fn disconnect(&mut self, reason: ReasonCode) {
        if matches!(self.phase, Phase::Connected | Phase::Connecting { .. }) {
            let disconnect = Disconnect {
                reason_code: reason,
                properties: Properties::default(),
            };
            self.send(&Packet::Disconnect(disconnect));
            self.end(Disconnection::ByClient);
        }
    }

    /// Bytes to write to the transport, in order; `None` when there are none.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.transmit.is_empty()).then(|| self.transmit.split().freeze())
    }

    /// The next event, in the order they happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] must be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Connecting { deadline } => Some(deadline),
            Phase::Connected if self.server.keep_alive > 0 => {
                let interval = Duration::from_secs(u64::from(self.server.keep_alive));
                match self.ping_sent {
                    // A PINGRESP is due within the keep alive.
                    Some(sent) => Some(sent + interval),
                    None => self.last_sent.map(|sent| sent + interval),
                }
            }
            _ => None,
        }
    }

    /// The time has come: sends PINGREQ after a keep alive without sending anything
    /// [MQTT5-3.1.2-20], and ends the connection when the CONNACK or a PINGRESP is overdue.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Connecting { deadline } if now >= deadline => self.end(Disconnection::Timeout),
            Phase::Connected if self.server.keep_alive > 0 => {
                let interval = Duration::from_secs(u64::from(self.server.keep_alive));
                if let Some(sent) = self.ping_sent {
                    if now >= sent + interval {
                        self.end(Disconnection::Timeout);
                    }
                } else if self.last_sent.is_some_and(|sent| now >= sent + interval) {
                    self.send(&Packet::PingReq);
                    self.last_sent = Some(now);
                    self.ping_sent = Some(now);
                }
            }
            _ => {}
        }
    }

    /// Takes every whole packet out of `input` (bytes read from the transport) and acts on
    /// it. A partial packet stays in `input` for the next read. A server in breach of the
    /// protocol gets DISCONNECT with the reason (5.0) and the connection ends
    /// ([`Event::Disconnected`]).
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) {
        while matches!(self.phase, Phase::Connecting { .. } | Phase::Connected) {
            match self.decoder.decode(input) {
                Ok(Some(packet)) => self.handle_packet(packet, now),
                Ok(None) => return,
                Err(error) => {
                    let code = error.reason_code();
                    self.protocol_error(code, error.to_string());
                    return;
                }
            }
        }
    }

    /// Publishes `message` with a packet identifier of the client's choosing (QoS 1/2);
    /// returns it (`None` for QoS 0).
    ///
    /// # Errors
    /// [`ClientError::NotConnected`], the server's limits ([`ClientError::ReceiveMaximum`],
    /// [`ClientError::PacketTooLarge`], [`ClientError::QosNotSupported`],
    /// [`ClientError::RetainNotSupported`]), [`ClientError::NoPacketId`] or
    /// [`ClientError::Encode`].
    pub fn publish(
        &mut self,
        message: Message,
        now: Instant,
    ) -> Result<Option<PacketId>, ClientError> {
        let id = match message.qos {
            QoS::AtMostOnce => None,
            _ => Some(self.free_id()?),
        };
        let qos = match id {
            Some(id) => PublishQos::new(message.qos, id),
            None => PublishQos::AtMostOnce,
        };
        let publish = Publish::new(message.topic, message.payload)
            .with_qos(qos)
            .with_retain(message.retain)
            .with_properties(message.properties);
        self.forward(publish, now)?;
        Ok(id)
    }

    /// Publishes `publish` as it is, with the packet identifier it carries: for a relay that
    /// mirrors another session's identifiers. An identifier still unfinished is taken as that
    /// message being sent again (a resumed session on the relay's other side).
    ///
    /// # Errors
    /// As [`Client::publish`].
    pub fn forward(&mut self, publish: Publish, now: Instant) -> Result<(), ClientError> {
        if self.phase != Phase::Connected {
            return Err(ClientError::NotConnected);
        }
        let qos = publish.qos.qos();
        if qos > self.server.maximum_qos {
            return Err(ClientError::QosNotSupported(qos as u8));
        }
        if publish.retain && !self.server.retain_available {
            return Err(ClientError::RetainNotSupported);
        }
        let packet = Packet::Publish(publish);
        let size = packet.encoded_len(self.options.version);
        if size > self.server.maximum_packet_size as usize {
            return Err(ClientError::PacketTooLarge {
                size,
                maximum: self.server.maximum_packet_size,
            });
        }
        let Packet::Publish(publish) = packet else {
            unreachable!("built above")
        };
        if let Some(id) = publish.qos.packet_id() {
            let resent = matches!(
                self.session.outgoing.get(&id),
                Some((_, Outgoing::Publish(_)))
            );
            if !resent && self.send_quota() == 0 {
                return Err(ClientError::ReceiveMaximum(self.server.receive_maximum));
            }
            self.session.insert(id, Outgoing::Publish(publish.clone()));
        }
        self.send(&Packet::Publish(publish));
        self.last_sent = Some(now);
        Ok(())
    }

    /// Subscribes to `filters`; the answer comes as [`Event::Subscribed`] with the returned
    /// packet identifier.
    ///
    /// # Errors
    /// [`ClientError::NotConnected`], [`ClientError::NoPacketId`], [`ClientError::Encode`].
    pub fn subscribe(
        &mut self,
        filters: Vec<(MqttStr, SubscriptionOptions)>,
        properties: Properties,
        now: Instant,
    ) -> Result<PacketId, ClientError> {
        let packet_id = self.request_id()?;
        let packet = Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties,
        });
        self.send_request(packet, packet_id, now)
    }

    /// Unsubscribes from `filters`; the answer comes as [`Event::Unsubscribed`].
    ///
    /// # Errors
    /// As [`Client::subscribe`].
    pub fn unsubscribe(
        &mut self,
        filters: Vec<MqttStr>,
        now: Instant,
    ) -> Result<PacketId, ClientError> {
        let packet_id = self.request_id()?;
        let packet = Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters,
            properties: Properties::default(),
        });
        self.send_request(packet, packet_id, now)
    }

    /// Acknowledges a received QoS 1 (PUBACK) or QoS 2 (PUBREC) message with `reason`
    /// (manual acknowledgements). An error code on a QoS 2 message ends its exchange.
    ///
    /// # Errors
    /// [`ClientError::UnknownPacketId`] when no such message waits;
    /// [`ClientError::NotConnected`] (the server sends it again on a resumed session).
    pub fn ack(&mut self, packet_id: PacketId, reason: ReasonCode) -> Result<(), ClientError> {
        if self.phase != Phase::Connected {
            return Err(ClientError::NotConnected);
        }
        match self.unacknowledged.get(&packet_id) {
            Some(Unacknowledged::Qos1) => {
                self.unacknowledged.remove(&packet_id);
                self.send(&Packet::PubAck(ack(packet_id, reason)));
            }
            Some(Unacknowledged::Qos2) => {
                self.unacknowledged.remove(&packet_id);
                if !reason.is_error() {
                    // Until PUBREL, a duplicate is acknowledged, not delivered [MQTT5-4.3.3-10].
                    self.session.incoming.insert(packet_id, ());
                }
                self.send(&Packet::PubRec(ack(packet_id, reason)));
            }
            _ => return Err(ClientError::UnknownPacketId(packet_id.get())),
        }
        Ok(())
    }

    /// Sends the PUBREL of an outgoing QoS 2 message whose PUBREC came (manual
    /// acknowledgements) [MQTT5-4.3.3-4], or sends it again. An identifier the client has no
    /// record of is taken as an exchange whose state the application holds (a relay whose
    /// other side sends its PUBREL again after a restart): it is recorded as released and the
    /// PUBREL is sent.
    ///
    /// # Errors
    /// [`ClientError::UnknownPacketId`] when the message still waits for its PUBREC. While
    /// not connected the PUBREL is recorded and sent on the resumed session.
    pub fn release(&mut self, packet_id: PacketId) -> Result<(), ClientError> {
        match self.session.outgoing.get_mut(&packet_id) {
            Some((_, Outgoing::Publish(_))) => {
                return Err(ClientError::UnknownPacketId(packet_id.get()));
            }
            Some((_, Outgoing::Released { sent })) => *sent = true,
            None => self
                .session
                .insert(packet_id, Outgoing::Released { sent: true }),
        }
        if self.phase == Phase::Connected {
            self.send(&Packet::PubRel(Ack::new(packet_id)));
        }
        Ok(())
    }

    /// Sends the PUBCOMP of a received QoS 2 message whose PUBREL came (manual
    /// acknowledgements) [MQTT5-4.3.3-11].
    ///
    /// # Errors
    /// [`ClientError::UnknownPacketId`] when no PUBCOMP is due for it;
    /// [`ClientError::NotConnected`].
    pub fn complete(&mut self, packet_id: PacketId, reason: ReasonCode) -> Result<(), ClientError> {
        if self.phase != Phase::Connected {
            return Err(ClientError::NotConnected);
        }
        if self.unacknowledged.get(&packet_id) != Some(&Unacknowledged::Release) {
            return Err(ClientError::UnknownPacketId(packet_id.get()));
        }
        self.unacknowledged.remove(&packet_id);
        self.session.incoming.remove(&packet_id);
        self.send(&Packet::PubComp(ack(packet_id, reason)));
        Ok(())
    }

    fn handle_packet(&mut self, packet: Packet, now: Instant) {
        if let Phase::Connecting { .. } = self.phase {
            match packet {
                Packet::ConnAck(connack) => self.handle_connack(connack, now),
                // The first packet from the server must be CONNACK [MQTT5-3.2.0-1].
                other => self.protocol_error(
                    ReasonCode::ProtocolError,
                    format!("{:?} before CONNACK", other.packet_type()),
                ),
            }
            return;
        }
        self.ping_sent = None;
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish),
            Packet::PubAck(ack) => match self.session.outgoing.get(&ack.packet_id) {
                Some((_, Outgoing::Publish(p))) if p.qos.qos() == QoS::AtLeastOnce => {
                    self.session.outgoing.remove(&ack.packet_id);
                    self.events.push_back(Event::Acknowledged {
                        packet_id: ack.packet_id,
                        reason_code: ack.reason_code,
                    });
                }
                Some(_) => self.wrong_ack("PUBACK", ack.packet_id),
                None => {} // a late duplicate: nothing waits for it
            },
            Packet::PubRec(rec) => match self.session.outgoing.get_mut(&rec.packet_id) {
                Some((_, entry @ Outgoing::Publish(_))) => {
                    if matches!(entry, Outgoing::Publish(p) if p.qos.qos() != QoS::ExactlyOnce) {
                        self.wrong_ack("PUBREC", rec.packet_id);
                        return;
                    }
                    if rec.reason_code.is_error() {
                        // Refused: done, never sent again [MQTT5-4.4.0-2].
                        self.session.outgoing.remove(&rec.packet_id);
                    } else {
                        let manual = self.options.manual_acks;
                        *entry = Outgoing::Released { sent: !manual };
                        if !manual {
                            self.send(&Packet::PubRel(Ack::new(rec.packet_id)));
                        }
                    }
                    self.events.push_back(Event::Received {
                        packet_id: rec.packet_id,
                        reason_code: rec.reason_code,
                    });
                }
                // A PUBREC again after PUBREL: the PUBREL is sent again.
                Some((_, Outgoing::Released { sent: true })) => {
                    self.send(&Packet::PubRel(Ack::new(rec.packet_id)));
                }
                Some(_) => {}
                None => {
                    let code = ReasonCode::PacketIdentifierNotFound;
                    self.send(&Packet::PubRel(ack(rec.packet_id, code)));
                }
            },
            Packet::PubComp(comp) => match self.session.outgoing.get(&comp.packet_id) {
                Some((_, Outgoing::Released { .. })) => {
                    self.session.outgoing.remove(&comp.packet_id);
                    self.events.push_back(Event::Completed {
                        packet_id: comp.packet_id,
                        reason_code: comp.reason_code,
                    });
                }
                Some(_) => self.wrong_ack("PUBCOMP", comp.packet_id),
                None => {}
            },
            Packet::PubRel(rel) => {
                let id = rel.packet_id;
                if self.options.manual_acks {
                    self.unacknowledged.insert(id, Unacknowledged::Release);
                    self.events.push_back(Event::Released(id));
                } else {
                    let code = if self.session.incoming.remove(&id).is_some() {
                        ReasonCode::Success
                    } else {
                        ReasonCode::PacketIdentifierNotFound
                    };
                    self.events.push_back(Event::Released(id));
                    self.send(&Packet::PubComp(ack(id, code)));
                }
            }
            Packet::SubAck(suback) => {
                if self.requests.remove(&suback.packet_id).is_some() {
                    self.events.push_back(Event::Subscribed(suback));
                }
            }
            Packet::UnsubAck(unsuback) => {
                if self.requests.remove(&unsuback.packet_id).is_some() {
                    self.events.push_back(Event::Unsubscribed(unsuback));
                }
            }
            Packet::PingResp => {}
            Packet::Disconnect(disconnect) => {
                self.phase = Phase::Closing;
                self.events
                    .push_back(Event::Disconnected(Disconnection::ByServer(
                        disconnect.reason_code,
                    )));
            }
            other => self.protocol_error(
                ReasonCode::ProtocolError,
                format!("{:?} from a server", other.packet_type()),
            ),
        }
    }

    fn handle_connack(&mut self, connack: ConnAck, now: Instant) {
        if connack.reason_code.is_error() {
            self.phase = Phase::Closing;
            self.events.push_back(Event::Refused(connack.reason_code));
            self.events
                .push_back(Event::Disconnected(Disconnection::ByServer(
                    connack.reason_code,
                )));
            return;
        }
        if connack.session_present && self.options.clean_start {
            // [MQTT5-3.2.2-4]: a client that started clean cannot resume anything.
            self.protocol_error(
                ReasonCode::ProtocolError,
                "session present after a clean start".to_owned(),
            );
            return;
        }
        let p = &connack.properties;
        self.server = ServerLimits {
            receive_maximum: p.receive_maximum.unwrap_or(u16::MAX),
            maximum_packet_size: p.maximum_packet_size.unwrap_or(mqtt_wire::MAX_PACKET_SIZE),
            maximum_qos: match p.maximum_qos {
                Some(0) => QoS::AtMostOnce,
                Some(1) => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            },
            retain_available: p.retain_available != Some(0),
            keep_alive: p.server_keep_alive.unwrap_or(self.options.keep_alive), // [MQTT5-3.1.2-21]
        };
        self.phase = Phase::Connected;
        if connack.session_present {
            self.resend(now);
        } else {
            // The server has no session: nothing of ours is pending there [MQTT5-3.2.2-5].
            self.discard_session();
        }
        self.events.push_back(Event::Connected {
            session_present: connack.session_present,
            properties: connack.properties,
        });
    }

    /// Sends the unfinished messages of a resumed session again, in their order: PUBLISH with
    /// DUP, PUBREL as it was [MQTT5-4.4.0-1].
    fn resend(&mut self, now: Instant) {
        let entries: Vec<(PacketId, Outgoing)> = self
            .session
            .outgoing()
            .map(|(id, entry)| (id, entry.clone()))
            .collect();
        for (id, entry) in entries {
            match entry {
                Outgoing::Publish(publish) => self.send(&Packet::Publish(publish.with_dup(true))),
                Outgoing::Released { sent: true } => self.send(&Packet::PubRel(Ack::new(id))),
                Outgoing::Released { sent: false } => {}
            }
        }
        self.last_sent = Some(now);
    }

    fn handle_publish(&mut self, publish: Publish) {
        if publish.properties.topic_alias.is_some() {
            // This client announces no Topic Alias Maximum: any alias is invalid [MQTT5-3.3.2-10].
            self.protocol_error(ReasonCode::TopicAliasInvalid, "topic alias".to_owned());
            return;
        }
        let manual = self.options.manual_acks;
        match publish.qos {
            PublishQos::AtMostOnce => self.events.push_back(Event::Message(publish)),
            PublishQos::AtLeastOnce(id) => {
                if self.unacknowledged.get(&id) == Some(&Unacknowledged::Qos1) {
                    return; // sent again before the application acknowledged it
                }
                if !self.within_receive_maximum() {
                    return;
                }
                if manual {
                    self.unacknowledged.insert(id, Unacknowledged::Qos1);
                } else {
                    self.send(&Packet::PubAck(Ack::new(id)));
                }
                self.events.push_back(Event::Message(publish));
            }
            PublishQos::ExactlyOnce(id) => {
                if self.session.incoming.contains_key(&id) {
                    // A duplicate before PUBREL: PUBREC again, not delivered [MQTT5-4.3.3-10].
                    self.send(&Packet::PubRec(Ack::new(id)));
                    return;
                }
                if self.unacknowledged.contains_key(&id) {
                    return;
                }
                if !self.within_receive_maximum() {
                    return;
                }
                if manual {
                    self.unacknowledged.insert(id, Unacknowledged::Qos2);
                } else {
                    self.session.incoming.insert(id, ());
                    self.send(&Packet::PubRec(Ack::new(id)));
                }
                self.events.push_back(Event::Message(publish));
            }
        }
    }

    /// Whether one more QoS 1/2 message from the server fits the Receive Maximum this client
    /// announced; if not, the connection ends with 0x93 [MQTT5-3.3.4-9].
    fn within_receive_maximum(&mut self) -> bool {
        if !self.options.version.is_v5() {
            return true;
        }
        let pending = self.session.incoming.len()
            + self
                .unacknowledged
                .values()
                .filter(|u| **u != Unacknowledged::Release)
                .count();
        if pending >= usize::from(self.options.receive_maximum) {
            self.protocol_error(
                ReasonCode::ReceiveMaximumExceeded,
                "more unacknowledged messages than the receive maximum".to_owned(),
            );
            return false;
        }
        true
    }

    /// An acknowledgement of the wrong kind for a message in flight [MQTT5-4.13.1-1].
    fn wrong_ack(&mut self, kind: &str, id: PacketId) {
        self.protocol_error(
            ReasonCode::ProtocolError,
            format!("{kind} for packet identifier {id} of another QoS"),
        );
    }

    fn protocol_error(&mut self, code: ReasonCode, reason: String) {
        if self.options.version.is_v5() && self.phase == Phase::Connected {
            let disconnect = Disconnect {
                reason_code: code,
                properties: Properties::default(),
            };
            self.send(&Packet::Disconnect(disconnect));
        }
        self.end(Disconnection::ProtocolError { code, reason });
    }

    fn end(&mut self, why: Disconnection) {
        self.phase = Phase::Closing;
        self.requests.clear();
        self.events.push_back(Event::Disconnected(why));
    }

    fn send_request(
        &mut self,
        packet: Packet,
        packet_id: PacketId,
        now: Instant,
    ) -> Result<PacketId, ClientError> {
        if self.phase != Phase::Connected {
            return Err(ClientError::NotConnected);
        }
        let mut frame = BytesMut::new();
        packet.encode(self.options.version, &mut frame)?;
        if frame.len() > self.server.maximum_packet_size as usize {
            return Err(ClientError::PacketTooLarge {
                size: frame.len(),
                maximum: self.server.maximum_packet_size,
            });
        }
        self.requests.insert(packet_id, ());
        self.transmit.extend_from_slice(&frame);
        self.last_sent = Some(now);
        Ok(packet_id)
    }

    fn request_id(&mut self) -> Result<PacketId, ClientError> {
        if self.phase != Phase::Connected {
            return Err(ClientError::NotConnected);
        }
        self.free_id()
    }

    /// An identifier no unfinished message or request uses [MQTT5-2.2.1-3].
    fn free_id(&mut self) -> Result<PacketId, ClientError> {
        for _ in 0..u16::MAX {
            self.next_id = self.next_id.wrapping_add(1);
            if let Some(id) = PacketId::new(self.next_id)
                && !self.session.outgoing.contains_key(&id)
                && !self.requests.contains_key(&id)
            {
                return Ok(id);
            }
        }
        Err(ClientError::NoPacketId)
    }

    fn send(&mut self, packet: &Packet) {
        // Packets built here from decoded or checked parts always encode; one that would not
        // is not sent rather than sent half.
        let mark = self.transmit.len();
        if packet
            .encode(self.options.version, &mut self.transmit)
            .is_err()
        {
            self.transmit.truncate(mark);
        }
    }
}

/// An acknowledgement with `reason` (5.0; 3.x carries none).
fn ack(packet_id: PacketId, reason: ReasonCode) -> Ack {
    Ack {
        packet_id,
        reason_code: reason,
        properties: Properties::default(),
    }
}
