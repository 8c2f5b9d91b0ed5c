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

use mqtt_client::{Client, Event};
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
    /// `bridge_max_packet_size`: the largest packet sent out (0: the remote's limit only).
    max_out: usize,
    pub(crate) counts: Counts,
}

impl Relay {
    /// A relay for `topics`; `local_window` is the local broker's Receive Maximum.
    pub(crate) fn new(
        topics: Vec<BridgeTopic>,
        outgoing_retain: bool,
        local_window: u16,
        max_out: u32,
    ) -> Self {
        Relay {
            topics,
            outgoing_retain,
            outward: HashMap::new(),
            inward: HashMap::new(),
            waiting: VecDeque::new(),
            held: VecDeque::new(),
            local_window: usize::from(local_window.max(1)),
            max_out: max_out as usize,
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
        let limits = client.server_limits();
        let remote_qos = local_qos.qos().min(limits.maximum_qos);
        if let Some(id) = local_qos.packet_id() {
            let flight = Outward {
                local: local_qos.qos(),
                remote: remote_qos,
            };
            self.outward.insert(id, flight);
        }
        let topic = (self.topics.iter())
            .find_map(|t| t.to_remote(publish.topic()))
            .and_then(|topic| MqttStr::try_from(topic).ok());
        let Some(topic) = topic else {
            return self.drop_locally(local_qos, replies);
        };
        let retain = publish.retain && self.outgoing_retain && limits.retain_available;
        let mut out = publish.with_retain(retain);
        out.set_topic(topic);
        keep_message_properties(&mut out.properties);
        out.qos = match local_qos.packet_id() {
            Some(id) if remote_qos != QoS::AtMostOnce => PublishQos::new(remote_qos, id),
            _ => PublishQos::AtMostOnce,
        };
        let version = client.options().protocol_version();
        if self.max_out > 0 && Packet::Publish(out.clone()).encoded_len(version) > self.max_out {
            return self.drop_locally(local_qos, replies);
        }
        if out.qos.packet_id().is_some() && client.send_quota() == 0 {
            // The remote broker's Receive Maximum is reached: sent once an acknowledgement
            // makes room (the bridge's client is new on each connection, so an identifier
            // in use there is never a resend).
            self.held.push_back(out);
            return;
        }
        match client.forward(out, now) {
            Ok(()) => {
                self.counts.sent += 1;
                if let (Some(_), QoS::AtMostOnce) = (local_qos.packet_id(), remote_qos) {
                    // The remote broker takes QoS 0 only: done on this side at once.
                    self.answer_locally(local_qos, replies);
                }
            }
            Err(_) => self.drop_locally(local_qos, replies),
        }
    }

    /// A local message the remote broker will not get: acknowledged and counted.
    fn drop_locally(&mut self, qos: PublishQos, replies: &mut Vec<Packet>) {
        self.counts.dropped += 1;
        self.answer_locally(qos, replies);
    }

    /// Acknowledges a local message the remote side will not acknowledge: PUBACK, or PUBREC
    /// with the PUBREL to come answered here.
    fn answer_locally(&mut self, qos: PublishQos, replies: &mut Vec<Packet>) {
        if let Some(id) = qos.packet_id() {
            if qos.qos() == QoS::AtLeastOnce {
                self.outward.remove(&id);
            } else if let Some(flight) = self.outward.get_mut(&id) {
                flight.remote = QoS::AtMostOnce;
            }
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
                Err(_) => self.drop_locally(qos, replies),
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
            let mut local = publish;
            if let Some(topic) = topic {
                local.set_topic(topic);
            }
            keep_message_properties(&mut local.properties);
            if let Some(id) = local.qos.packet_id() {
                self.inward.insert(id, local.qos.qos());
            }
            self.counts.received += 1;
            replies.push(Packet::Publish(local));
        }
    }
}

/// The properties that belong to the message, not to one connection: no topic alias and no
/// subscription identifiers (a client must not send those [MQTT5-3.3.4-6]).
fn keep_message_properties(properties: &mut Properties) {
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::{Bytes, BytesMut};
    use mqtt_client::Options;
    use mqtt_wire::{Decoder, ProtocolVersion};

    use super::*;

    fn id(n: u16) -> PacketId {
        PacketId::new(n).unwrap()
    }

    /// A relay for `lines` and a remote client connected with CONNACK `connack` (5.0).
    fn pair(lines: &[&str], window: u16, max_out: u32, connack: &[u8]) -> (Relay, Client) {
        let topics = lines
            .iter()
            .map(|l| BridgeTopic::parse(l).unwrap())
            .collect();
        let mut client = Client::new(Options::new("bridge").manual_acks(true));
        let now = Instant::now();
        client.connect(now).unwrap();
        client.poll_transmit();
        client.handle_input(&mut BytesMut::from(connack), now);
        while client.poll_event().is_some() {}
        (Relay::new(topics, true, window, max_out), client)
    }

    /// What the client sent to the remote broker.
    fn sent(client: &mut Client) -> Vec<Packet> {
        let mut bytes = BytesMut::from(&client.poll_transmit().unwrap_or_default()[..]);
        let mut decoder = Decoder::new();
        decoder.set_version(ProtocolVersion::V5);
        std::iter::from_fn(|| decoder.decode(&mut bytes).unwrap()).collect()
    }

    /// Feeds the remote's `bytes` to the client and its events to the relay.
    fn from_remote(relay: &mut Relay, client: &mut Client, bytes: &[u8]) -> Vec<Packet> {
        let now = Instant::now();
        client.handle_input(&mut BytesMut::from(bytes), now);
        let mut replies = Vec::new();
        while let Some(event) = client.poll_event() {
            replies.extend(relay.remote_event(event, client, now));
        }
        replies
    }

    fn publish(topic: &'static str, qos: PublishQos) -> Packet {
        Packet::Publish(Publish::new(MqttStr::from(topic), Bytes::from_static(b"x")).with_qos(qos))
    }

    const CONNACK: &[u8] = b"\x20\x03\x00\x00\x00";

    #[test]
    fn qos1_out_keeps_the_local_identifier_and_acknowledges_when_the_remote_did() {
        let (mut relay, mut client) = pair(&["# out 1 home/ site/"], 10, 0, CONNACK);
        let now = Instant::now();
        let replies = relay.local_packet(
            publish("home/a", PublishQos::AtLeastOnce(id(7))),
            &mut client,
            now,
        );
        assert!(
            replies.is_empty(),
            "nothing acknowledged before the remote did"
        );
        let out = sent(&mut client);
        let [Packet::Publish(p)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (p.topic(), p.qos),
            ("site/a", PublishQos::AtLeastOnce(id(7)))
        );
        let replies = from_remote(&mut relay, &mut client, b"\x40\x02\x00\x07");
        assert!(matches!(&replies[..], [Packet::PubAck(a)] if a.packet_id == id(7)));
        assert_eq!(relay.counts.sent, 1);
    }

    #[test]
    fn qos2_out_to_a_qos1_remote_is_finished_here() {
        // CONNACK with Maximum QoS 1.
        let (mut relay, mut client) = pair(&["# out 2"], 10, 0, b"\x20\x05\x00\x00\x02\x24\x01");
        let now = Instant::now();
        relay.local_packet(
            publish("a", PublishQos::ExactlyOnce(id(9))),
            &mut client,
            now,
        );
        let out = sent(&mut client);
        assert!(
            matches!(&out[..], [Packet::Publish(p)] if p.qos == PublishQos::AtLeastOnce(id(9)))
        );
        let replies = from_remote(&mut relay, &mut client, b"\x40\x02\x00\x09");
        assert!(matches!(&replies[..], [Packet::PubRec(a)] if a.packet_id == id(9)));
        let replies = relay.local_packet(Packet::PubRel(Ack::new(id(9))), &mut client, now);
        assert!(matches!(&replies[..], [Packet::PubComp(a)] if a.packet_id == id(9)));
        assert!(
            sent(&mut client).is_empty(),
            "no PUBREL to a QoS 1 exchange"
        );
    }

    #[test]
    fn a_message_too_large_for_bridge_max_packet_size_is_dropped_and_counted() {
        let (mut relay, mut client) = pair(&["# out 2"], 10, 16, CONNACK);
        let now = Instant::now();
        let big = Packet::Publish(
            Publish::new(MqttStr::from("a"), Bytes::from(vec![0u8; 64]))
                .with_qos(PublishQos::ExactlyOnce(id(4))),
        );
        let replies = relay.local_packet(big, &mut client, now);
        assert!(matches!(&replies[..], [Packet::PubRec(a)] if a.packet_id == id(4)));
        assert!(sent(&mut client).is_empty());
        assert_eq!(relay.counts.dropped, 1);
        let replies = relay.local_packet(Packet::PubRel(Ack::new(id(4))), &mut client, now);
        assert!(matches!(&replies[..], [Packet::PubComp(_)]));
        assert!(sent(&mut client).is_empty());
    }

    #[test]
    fn qos2_in_is_relayed_step_by_step_with_the_remote_identifier() {
        let (mut relay, mut client) = pair(&["cmnd/# in 2 local/ \"\""], 10, 0, CONNACK);
        let now = Instant::now();
        // PUBLISH QoS 2, id 3, "cmnd/x".
        let replies = from_remote(
            &mut relay,
            &mut client,
            b"\x34\x0c\x00\x06cmnd/x\x00\x03\x00y",
        );
        let [Packet::Publish(p)] = &replies[..] else {
            panic!("{replies:?}")
        };
        assert_eq!(
            (p.topic(), p.qos),
            ("local/cmnd/x", PublishQos::ExactlyOnce(id(3)))
        );
        assert!(
            sent(&mut client).is_empty(),
            "no PUBREC before the local broker's"
        );
        relay.local_packet(Packet::PubRec(Ack::new(id(3))), &mut client, now);
        assert!(matches!(&sent(&mut client)[..], [Packet::PubRec(a)] if a.packet_id == id(3)));
        let replies = from_remote(&mut relay, &mut client, b"\x62\x02\x00\x03");
        assert!(matches!(&replies[..], [Packet::PubRel(a)] if a.packet_id == id(3)));
        assert!(
            sent(&mut client).is_empty(),
            "no PUBCOMP before the local broker's"
        );
        relay.local_packet(Packet::PubComp(Ack::new(id(3))), &mut client, now);
        assert!(matches!(&sent(&mut client)[..], [Packet::PubComp(a)] if a.packet_id == id(3)));
    }

    #[test]
    fn incoming_messages_wait_for_room_under_the_local_receive_maximum() {
        let (mut relay, mut client) = pair(&["# in 1"], 1, 0, CONNACK);
        let now = Instant::now();
        let first = from_remote(&mut relay, &mut client, b"\x32\x06\x00\x01a\x00\x01\x00");
        assert_eq!(first.len(), 1);
        let second = from_remote(&mut relay, &mut client, b"\x32\x06\x00\x01a\x00\x02\x00");
        assert!(second.is_empty());
        assert!(
            !relay.can_read_remote(),
            "the remote socket is not read meanwhile"
        );
        let replies = relay.local_packet(Packet::PubAck(Ack::new(id(1))), &mut client, now);
        assert!(
            matches!(&replies[..], [Packet::Publish(p)] if p.qos == PublishQos::AtLeastOnce(id(2)))
        );
        assert!(relay.can_read_remote());
    }
}
