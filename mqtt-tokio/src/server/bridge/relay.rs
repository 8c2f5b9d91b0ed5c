//! What a bridge does with each packet: the two sessions it joins, relayed packet by packet
//! with their packet identifiers mirrored. No I/O here: the bridge task hands in what the
//! local broker sent and what the remote client reported, and sends what comes back.
//!
//! A QoS 1/2 message going out keeps the packet identifier the local broker gave it, on the
//! remote connection too; one coming in keeps the remote broker's, on the local connection.
//! Each acknowledgement is passed on only when the other side has given its own, so at every
//! moment each message is held by a session that survives a crash of the other side (the
//! local one in this broker's store, the remote one in the remote broker's), and a message
//! sent again after a reconnection or a restart carries the identifier the receiving side
//! already knows: QoS 2 stays exactly once across both hops.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use mqtt_client::{Client, ClientError, Event};
use mqtt_wire::{Ack, MqttStr, Packet, PacketId, Properties, Publish, PublishQos, QoS, ReasonCode};

use crate::config::BridgeTopic;

/// An outgoing QoS 1/2 message on its way: the QoS of each side (the remote one may be lower:
/// its Maximum QoS).
#[derive(Debug, Clone, Copy)]
struct Outward {
    local: QoS,
    remote: QoS,
}

/// Counters of one bridge, per direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Messages sent to the remote broker.
    pub(crate) sent: u64,
    /// Messages brought in from the remote broker.
    pub(crate) received: u64,
    /// Messages the remote broker cannot take (too large, retained where it has none) or that
    /// match no topic line: acknowledged and dropped.
    pub(crate) dropped: u64,
}

/// The relay state of one bridge connection.
#[derive(Debug)]
pub(crate) struct Relay {
    topics: Vec<BridgeTopic>,
    outgoing_retain: bool,
    /// Outgoing messages by the local broker's packet identifier.
    outward: HashMap<PacketId, Outward>,
    /// Incoming QoS 1/2 messages sent to the local broker, not yet acknowledged by it.
    inward: HashMap<PacketId, QoS>,
    /// Incoming messages waiting for room under the local broker's Receive Maximum.
    waiting: VecDeque<Publish>,
    /// Outgoing messages waiting for room under the remote broker's Receive Maximum.
    held: VecDeque<Publish>,
    /// The local broker's Receive Maximum.
    local_window: usize,
    pub(crate) counts: Counts,
}

impl Relay {
    /// A relay for `topics`; `local_window` is the local broker's Receive Maximum.
    pub(crate) fn new(topics: Vec<BridgeTopic>, outgoing_retain: bool, local_window: u16) -> Self {
        Relay {
            topics,
            outgoing_retain,
            outward: HashMap::new(),
            inward: HashMap::new(),
            waiting: VecDeque::new(),
            held: VecDeque::new(),
            local_window: usize::from(local_window.max(1)),
            counts: Counts::default(),
        }
    }

    /// Whether the bridge may read more from the remote broker (nothing waits for room on
    /// the local side).
    pub(crate) fn can_read_remote(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A packet the local broker sent the bridge; returns the packets to send back to it.
    pub(crate) fn local_packet(
        &mut self,
        packet: Packet,
        client: &mut Client,
        now: Instant,
    ) -> Vec<Packet> {
        let mut replies = Vec::new();
        match packet {
            Packet::Publish(publish) => self.send_out(publish, client, now, &mut replies),
            // The local broker's answers to incoming messages go on to the remote broker.
            Packet::PubAck(ack) => {
                let _ = client.ack(ack.packet_id, ack.reason_code);
                self.inward.remove(&ack.packet_id);
                self.drain_waiting(&mut replies);
            }
            Packet::PubRec(ack) => {
                let _ = client.ack(ack.packet_id, ack.reason_code);
                if ack.reason_code.is_error() {
                    self.inward.remove(&ack.packet_id);
                    self.drain_waiting(&mut replies);
                }
            }
            Packet::PubComp(ack) => {
                let _ = client.complete(ack.packet_id, ack.reason_code);
                self.inward.remove(&ack.packet_id);
                self.drain_waiting(&mut replies);
            }
            Packet::PubRel(rel) => match self.outward.get(&rel.packet_id) {
                // Sent on at QoS 0 or 1: the remote side is done already.
                Some(flight) if flight.remote != QoS::ExactlyOnce => {
                    self.outward.remove(&rel.packet_id);
                    replies.push(Packet::PubComp(Ack::new(rel.packet_id)));
                }
                _ => {
                    if client.release(rel.packet_id).is_err() {
                        // Still waiting for the remote PUBREC: a PUBREL cannot come yet.
                        replies.push(Packet::PubComp(ack(
                            rel.packet_id,
                            ReasonCode::PacketIdentifierNotFound,
                        )));
                    }
                }
            },
            _ => {}
        }
        replies
    }

    /// An event of the remote client; returns the packets to send to the local broker.
    pub(crate) fn remote_event(
        &mut self,
        event: Event,
        client: &mut Client,
        now: Instant,
    ) -> Vec<Packet> {
        let mut replies = Vec::new();
        match event {
            Event::Message(publish) => {
                self.waiting.push_back(publish);
                self.drain_waiting(&mut replies);
            }
            Event::Acknowledged {
                packet_id,
                reason_code,
            } => {
                let local = self.outward.get(&packet_id).map(|f| f.local);
                match local {
                    Some(QoS::ExactlyOnce) => {
                        // Downgraded to QoS 1 on the remote side: the local PUBREL is answered
                        // by the bridge.
                        replies.push(Packet::PubRec(ack(packet_id, reason_code)));
                        if let Some(flight) = self.outward.get_mut(&packet_id) {
                            flight.remote = QoS::AtLeastOnce;
                        }
                    }
                    _ => {
                        self.outward.remove(&packet_id);
                        replies.push(Packet::PubAck(ack(packet_id, reason_code)));
                    }
                }
                self.drain_held(client, now, &mut replies);
            }
            Event::Received {
                packet_id,
                reason_code,
            } => {
                if reason_code.is_error() {
                    self.outward.remove(&packet_id);
                }
                replies.push(Packet::PubRec(ack(packet_id, reason_code)));
                self.drain_held(client, now, &mut replies);
            }
            Event::Completed {
                packet_id,
                reason_code,
            } => {
                self.outward.remove(&packet_id);
                replies.push(Packet::PubComp(ack(packet_id, reason_code)));
            }
            Event::Released(packet_id) => {
                replies.push(Packet::PubRel(Ack::new(packet_id)));
            }
            _ => {}
        }
        replies
    }

    /// Sends a message from the local broker on to the remote one.
    fn send_out(
        &mut self,
        publish: Publish,
        client: &mut Client,
        now: Instant,
        replies: &mut Vec<Packet>,
    ) {
        let local_qos = publish.qos;
        let Some(topic) = self
            .topics
            .iter()
            .find_map(|t| t.to_remote(publish.topic()))
        else {
            self.counts.dropped += 1;
            done_locally(local_qos, replies);
            return;
        };
        let Ok(topic) = MqttStr::try_from(topic) else {
            self.counts.dropped += 1;
            done_locally(local_qos, replies);
            return;
        };
        let limits = client.server_limits();
        let remote_qos = local_qos.qos().min(limits.maximum_qos);
        let retain = publish.retain && self.outgoing_retain && limits.retain_available;
        let mut out = publish.clone().with_retain(retain);
        out.set_topic(topic);
        out.properties = message_properties(&publish.properties);
        out.qos = match local_qos.packet_id() {
            Some(id) if remote_qos != QoS::AtMostOnce => PublishQos::new(remote_qos, id),
            _ => PublishQos::AtMostOnce,
        };
        if let Some(id) = local_qos.packet_id() {
            self.outward.insert(
                id,
                Outward {
                    local: local_qos.qos(),
                    remote: remote_qos,
                },
            );
        }
        match client.forward(out.clone(), now) {
            Ok(()) => {
                self.counts.sent += 1;
                if let (Some(_), QoS::AtMostOnce) = (local_qos.packet_id(), remote_qos) {
                    // The remote broker takes QoS 0 only: done on this side at once.
                    self.answer_locally(local_qos, replies);
                }
            }
            Err(ClientError::ReceiveMaximum(_)) => self.held.push_back(out),
            Err(_) => {
                self.counts.dropped += 1;
                self.answer_locally(local_qos, replies);
            }
        }
    }

    /// Acknowledges a local message the remote side will not acknowledge.
    fn answer_locally(&mut self, qos: PublishQos, replies: &mut Vec<Packet>) {
        if let Some(id) = qos.packet_id()
            && qos.qos() == QoS::AtLeastOnce
        {
            self.outward.remove(&id);
        }
        if let Some(flight) = qos.packet_id().and_then(|id| self.outward.get_mut(&id)) {
            flight.remote = QoS::AtMostOnce; // the PUBREL is answered here
        }
        done_locally(qos, replies);
    }

    /// Sends held outgoing messages while the remote Receive Maximum has room.
    fn drain_held(&mut self, client: &mut Client, now: Instant, replies: &mut Vec<Packet>) {
        while client.send_quota() > 0 {
            let Some(out) = self.held.pop_front() else {
                return;
            };
            let qos = out.qos;
            match client.forward(out, now) {
                Ok(()) => self.counts.sent += 1,
                Err(_) => {
                    self.counts.dropped += 1;
                    self.answer_locally(qos, replies);
                }
            }
        }
    }

    /// Sends waiting incoming messages to the local broker while its Receive Maximum has room.
    fn drain_waiting(&mut self, replies: &mut Vec<Packet>) {
        while let Some(next) = self.waiting.front() {
            if next.qos.packet_id().is_some() && self.inward.len() >= self.local_window {
                return;
            }
            let Some(publish) = self.waiting.pop_front() else {
                return;
            };
            let topic = self
                .topics
                .iter()
                .find_map(|t| t.to_local(publish.topic()))
                .and_then(|t| MqttStr::try_from(t).ok());
            let mut local = publish.clone();
            if let Some(topic) = topic {
                local.set_topic(topic);
            }
            local.properties = message_properties(&publish.properties);
            if let Some(id) = publish.qos.packet_id() {
                self.inward.insert(id, publish.qos.qos());
            }
            self.counts.received += 1;
            replies.push(Packet::Publish(local));
        }
    }
}

/// The properties that belong to the message, not to one connection: no topic alias and no
/// subscription identifiers (a client must not send those [MQTT5-3.3.4-6]).
fn message_properties(properties: &Properties) -> Properties {
    let mut kept = properties.clone();
    kept.topic_alias = None;
    kept.subscription_identifiers.clear();
    kept
}

/// The local broker's message is done as far as the bridge goes: PUBACK, or PUBREC (its
/// PUBREL is then answered with PUBCOMP).
fn done_locally(qos: PublishQos, replies: &mut Vec<Packet>) {
    match qos {
        PublishQos::AtMostOnce => {}
        PublishQos::AtLeastOnce(id) => replies.push(Packet::PubAck(Ack::new(id))),
        PublishQos::ExactlyOnce(id) => replies.push(Packet::PubRec(Ack::new(id))),
    }
}

fn ack(packet_id: PacketId, reason_code: ReasonCode) -> Ack {
    Ack {
        packet_id,
        reason_code,
        properties: Properties::default(),
    }
}
