//! Getting a message to one session: send now, wait in the bounded queue, or drop (and count);
//! the outbound window (Receive Maximum) and the outbox bound decide. Also resending the window
//! when a session resumes.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mqtt_wire::{
    Ack, MqttStr, Packet, PacketId, Properties, ProtocolVersion, Publish, PublishQos, QoS,
};

use crate::alias::OutboundTopic;
use crate::broker::Broker;
use crate::conn::{Conn, Phase};
use crate::hooks::ClientRef;
use crate::idmap::IdMap;
use crate::ids::ConnectionId;
use crate::ids::SessionId;
use crate::inflight::Outbound;
use crate::message::{Delivery, Lifetime, Message};
use crate::output::{DropReason, Event};
use crate::persist::DeliveryState;
use crate::session::Sessions;

/// What became of one PUBLISH handed to [`Broker::send_publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendOutcome {
    /// Transmitted.
    Sent,
    /// Over the client's Maximum Packet Size: dropped as if delivered [MQTT5-3.1.2-25].
    TooLarge,
    /// Message expiry elapsed [MQTT5-3.3.2-5].
    Expired,
    /// The connection is gone.
    NoConnection,
    /// The authorizer refused this client read access to the topic, or the topic lies outside
    /// the mount point of the client's listener: skipped silently.
    Denied,
}

/// What one routing of a message carries from copy to copy, passed down as an argument: the
/// publisher that a full subscriber may pause, and the encoded QoS 0 header that the 3.1/3.1.1
/// copies share.
#[derive(Debug)]
pub(crate) struct Copies {
    publisher: Option<ConnectionId>,
    /// Whether the message goes to several sessions, so its header is worth keeping.
    several: bool,
    header: Option<SharedHeader>,
}

impl Copies {
    /// A single copy outside a routing (a retained message for a new subscription, a resend,
    /// a queued copy moving to another member): nobody to pause, nothing to share.
    pub(crate) fn one() -> Self {
        Copies {
            publisher: None,
            several: false,
            header: None,
        }
    }

    /// The copies of one routing to `count` sessions, published by the client on `publisher`.
    pub(crate) fn routing(publisher: Option<ConnectionId>, count: usize) -> Self {
        Copies {
            publisher,
            several: count > 1,
            header: None,
        }
    }
}

/// The connection `session` can be sent to now, if any.
pub(crate) fn online_conn(
    sessions: &Sessions,
    conns: &IdMap<ConnectionId, Box<Conn>>,
    session: SessionId,
) -> Option<ConnectionId> {
    let conn = sessions.get(&session)?.conn?;
    let c = conns.get(&conn)?;
    matches!(c.phase, Phase::Connected(s) if s == session).then_some(conn)
}

impl Broker {
    /// The connection `session` can be sent to now, if any.
    pub(crate) fn online_conn(&self, session: SessionId) -> Option<ConnectionId> {
        online_conn(&self.sessions, &self.conns, session)
    }

    /// Whether `conn` has room in its outbox.
    fn outbox_open(&self, conn: ConnectionId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.outbox < self.config.max_outbox_bytes)
    }

    /// Counts and reports a message dropped for `session` (see `backpressure` for episodes).
    pub(crate) fn dropped(&mut self, session: SessionId, reason: DropReason) {
        self.count_drop(session, reason);
        let client_id = self
            .sessions
            .get(&session)
            .map(|s| s.client_id.clone())
            .unwrap_or_default();
        self.event(Event::MessageDropped { client_id, reason });
    }

    /// Delivers to one session. QoS 0 goes out now or is dropped (full outbox, or offline unless
    /// `queue_qos0_messages`, which queues it like QoS 1/2), and an outbox past half its bound
    /// pauses the publisher (see `backpressure`);
    /// QoS 1/2 goes out now when the window allows, else waits in the bounded session queue
    /// [MQTT311-3.1.2-5]. A queued message still a view into its read is copied first
    /// ([`Message::detach_pinned`]); the copy is returned for the rest of its routing to share.
    pub(crate) fn deliver(
        &mut self,
        session: SessionId,
        mut delivery: Delivery,
        copies: &mut Copies,
        now: Instant,
    ) -> Option<Arc<Message>> {
        let online = self.online_conn(session);
        if delivery.qos == QoS::AtMostOnce && (online.is_some() || !self.config.queue_qos0_messages)
        {
            let Some(conn) = online else {
                return None; // QoS 0 is not kept for offline sessions
            };
            self.outbox_pressure(session, conn, copies.publisher, now);
            if !self.outbox_open(conn) {
                self.dropped(session, DropReason::OutboxFull);
                return None;
            }
            match self.send_publish(conn, &delivery, None, false, copies, now) {
                SendOutcome::Sent | SendOutcome::NoConnection | SendOutcome::Denied => {}
                SendOutcome::TooLarge => self.dropped(session, DropReason::TooLarge),
                SendOutcome::Expired => self.dropped(session, DropReason::Expired),
            }
            return None;
        }
        let queue_empty = self
            .sessions
            .get(&session)
            .is_some_and(|s| s.queue.is_empty());
        if queue_empty && let Some((conn, id)) = self.send_slot(session) {
            self.send_in_window(session, conn, id, delivery, now);
            return None;
        }
        let (max_messages, max_bytes) = (
            self.config.max_queued_messages,
            self.config.max_queued_bytes,
        );
        self.queue_pressure(session, copies.publisher, now);
        let s = self.sessions.get_mut(&session)?;
        if !s.queue.has_room(&delivery, max_messages, max_bytes) {
            self.dropped(session, DropReason::QueueFull);
            return None;
        }
        let detached =
            Message::detach_pinned(&mut delivery.message).then(|| Arc::clone(&delivery.message));
        self.store_delivery(session, &mut delivery, DeliveryState::Queued);
        let weight = delivery.weight();
        if let Some(s) = self.sessions.get_mut(&session)
            && s.queue.push(delivery, max_messages, max_bytes).is_ok()
        {
            self.memory.queued(weight);
        }
        detached
    }

    /// Sends queued deliveries, oldest first, while the window and the outbox allow. A QoS 0
    /// one (queued while offline, `queue_qos0_messages`) goes out in its turn without taking a
    /// place in the window.
    pub(crate) fn pump(&mut self, session: SessionId, now: Instant) {
        while let Some((conn, id)) = self.send_slot(session) {
            let Some(delivery) = self.sessions.get_mut(&session).and_then(|s| s.queue.pop()) else {
                break;
            };
            self.memory.unqueued(delivery.weight());
            if delivery.qos == QoS::AtMostOnce {
                self.send_queued_qos0(session, conn, delivery, now);
            } else {
                self.send_in_window(session, conn, id, delivery, now);
            }
        }
        self.session_drained(session, now);
    }

    /// Sends a QoS 0 delivery that waited in the queue; it is done once handed out.
    fn send_queued_qos0(
        &mut self,
        session: SessionId,
        conn: ConnectionId,
        delivery: Delivery,
        now: Instant,
    ) {
        let outcome = self.send_publish(conn, &delivery, None, false, &mut Copies::one(), now);
        self.delivery_changed(session, delivery.stored, None);
        match outcome {
            SendOutcome::TooLarge => self.dropped(session, DropReason::TooLarge),
            SendOutcome::Expired => self.dropped(session, DropReason::Expired),
            SendOutcome::Sent | SendOutcome::NoConnection | SendOutcome::Denied => {}
        }
    }

    /// The connection and a free packet identifier, when `session` may send one more QoS 1/2
    /// PUBLISH now: connected, outbox open, fewer exchanges in flight than the client's
    /// Receive Maximum [MQTT5-3.3.4-9] [MQTT5-4.9.0-2], and fewer bytes than
    /// `max_inflight_bytes`.
    fn send_slot(&mut self, session: SessionId) -> Option<(ConnectionId, PacketId)> {
        let conn = self.online_conn(session)?;
        if !self.outbox_open(conn) {
            return None;
        }
        let window = usize::from(self.conns.get(&conn)?.receive_maximum);
        let s = self.sessions.get_mut(&session)?;
        if s.inflight.len() >= window {
            return None;
        }
        let max_bytes = self.config.max_inflight_bytes;
        if max_bytes > 0 && s.inflight.published_bytes() >= max_bytes {
            return None;
        }
        Some((conn, s.inflight.next_id()?))
    }

    /// Sends one QoS 1/2 delivery with `id` and records it in the window. Its "sent with `id`"
    /// record comes first, so in `Sync` mode a QoS 2 PUBLISH waits until the identifier is
    /// durable: a restart can then only resend it under the same identifier. A delivery that is
    /// not sent after all is recorded as done.
    fn send_in_window(
        &mut self,
        session: SessionId,
        conn: ConnectionId,
        id: PacketId,
        mut delivery: Delivery,
        now: Instant,
    ) {
        if delivery.stored == 0 {
            self.store_delivery(session, &mut delivery, DeliveryState::Sent(id));
        } else {
            self.delivery_changed(session, delivery.stored, Some(DeliveryState::Sent(id)));
        }
        let outcome = self.send_publish(conn, &delivery, Some(id), false, &mut Copies::one(), now);
        if outcome == SendOutcome::Sent {
            if let Some(s) = self.sessions.get_mut(&session) {
                s.inflight.push(id, delivery);
            }
            return;
        }
        self.delivery_changed(session, delivery.stored, None);
        match outcome {
            SendOutcome::TooLarge => self.dropped(session, DropReason::TooLarge),
            SendOutcome::Expired => self.dropped(session, DropReason::Expired),
            SendOutcome::Sent | SendOutcome::NoConnection | SendOutcome::Denied => {}
        }
    }

    /// Resends the unacknowledged window of a resumed session, in order, with the original
    /// packet identifiers and DUP=1 [MQTT-4.4.0-1] [MQTT-3.3.1-1].
    pub(crate) fn resend_inflight(&mut self, session: SessionId, conn: ConnectionId, now: Instant) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        let pending: Vec<(PacketId, Outbound)> = s.inflight.iter().cloned().collect();
        for (id, state) in pending {
            match state {
                Outbound::Published(delivery) => {
                    let outcome =
                        self.send_publish(conn, &delivery, Some(id), true, &mut Copies::one(), now);
                    if outcome == SendOutcome::TooLarge {
                        // Treated as delivered [MQTT5-3.1.2-25]: free its slot.
                        if let Some(s) = self.sessions.get_mut(&session) {
                            s.inflight.remove(id);
                        }
                        self.delivery_changed(session, delivery.stored, None);
                        self.dropped(session, DropReason::TooLarge);
                    }
                }
                Outbound::Released(_) => self.send_packet(conn, &Packet::PubRel(Ack::new(id)), now),
            }
        }
    }

    /// Whether the client on `conn` may receive `delivery` (read access), asked once per copy
    /// sent; no allocation.
    fn may_receive(&mut self, conn: ConnectionId, delivery: &Delivery) -> bool {
        let Some(c) = self.conns.get(&conn) else {
            return false;
        };
        let Some(s) = c.session().and_then(|id| self.sessions.get(&id)) else {
            return false;
        };
        let client = ClientRef {
            client_id: &s.client_id,
            username: c.username.as_deref(),
            info: &c.info,
        };
        let message = &delivery.message;
        self.authorizer.authorize_delivery(
            &client,
            message.topic.as_str(),
            delivery.qos,
            delivery.retain,
        )
    }

    /// Encodes one PUBLISH as a header chunk plus the shared payload chunk (after the read
    /// check, except for resends). A QoS 0 header for a 3.x client may be shared by `copies`.
    pub(crate) fn send_publish(
        &mut self,
        conn: ConnectionId,
        delivery: &Delivery,
        packet_id: Option<PacketId>,
        dup: bool,
        copies: &mut Copies,
        now: Instant,
    ) -> SendOutcome {
        if !dup && !self.may_receive(conn, delivery) {
            return SendOutcome::Denied;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return SendOutcome::NoConnection;
        };
        let message = &delivery.message;
        // Behind a mount point the client sees the topic without it; otherwise the topic is
        // the message's own (taken below, after the shared-header path that needs none).
        let rules = self.config.rules(c.info.listener);
        let mounted = match rules.mount_point {
            None => None,
            Some(_) => match rules.unmount(&message.topic) {
                Some(topic) => Some(topic),
                None => return SendOutcome::Denied,
            },
        };
        let remaining = match message.lifetime(now) {
            Lifetime::Unlimited => None,
            Lifetime::Remaining(secs) => Some(secs),
            // A QoS 2 message already sent is never expired [MQTT5-4.3.3-7].
            Lifetime::Expired if dup => Some(1),
            Lifetime::Expired => return SendOutcome::Expired,
        };
        if packet_id.is_none() && !c.version.is_v5() && mounted.is_none() {
            return self.send_shared_header(conn, delivery, copies, now);
        }
        let topic = mounted.unwrap_or_else(|| message.topic.clone());
        let qos = match packet_id {
            Some(id) => PublishQos::new(delivery.qos, id),
            None => PublishQos::AtMostOnce,
        };
        let v5 = c.version.is_v5();
        let (sent_topic, properties, naming) = if v5 {
            let mut properties = message.properties.clone();
            properties.message_expiry_interval = remaining; // [MQTT5-3.3.2-6]
            properties
                .subscription_identifiers
                .clone_from(&delivery.subscription_ids);
            let naming = c.outbound_aliases.name(&topic);
            let sent = match naming {
                OutboundTopic::Alias(alias) => {
                    properties.topic_alias = Some(alias);
                    MqttStr::from_static("")
                }
                OutboundTopic::Bind(alias) => {
                    properties.topic_alias = Some(alias);
                    topic.clone()
                }
                OutboundTopic::Plain => topic.clone(),
            };
            (sent, properties, naming)
        } else {
            (topic.clone(), Properties::default(), OutboundTopic::Plain)
        };
        let publish = Publish::new(sent_topic, message.payload.clone())
            .with_dup(dup && packet_id.is_some()) // [MQTT-3.3.1-2]
            .with_qos(qos)
            .with_retain(delivery.retain)
            .with_properties(properties);
        let version = c.version;
        let max_packet_size = c.max_packet_size as usize;
        let buf = self.out.scratch();
        if publish.encode_header(version, buf).is_err() {
            buf.clear();
            return SendOutcome::TooLarge;
        }
        if buf.len() + publish.payload().len() > max_packet_size {
            buf.clear();
            return SendOutcome::TooLarge; // [MQTT5-3.1.2-24]
        }
        let header = buf.split().freeze();
        let Some(c) = self.conns.get_mut(&conn) else {
            return SendOutcome::NoConnection;
        };
        if let OutboundTopic::Bind(alias) = naming {
            c.outbound_aliases.bind(topic, alias);
        }
        self.stats.messages_sent += 1;
        let sent_qos = if packet_id.is_some() {
            delivery.qos
        } else {
            QoS::AtMostOnce
        };
        self.stats.messages_sent_by_qos[sent_qos as usize] += 1;
        let payload = publish.into_payload();
        self.stats.publish_bytes_sent += payload.len() as u64;
        self.out.transmit_publish(conn, c, header, payload, now);
        SendOutcome::Sent
    }

    /// Sends a QoS 0 PUBLISH to a 3.1/3.1.1 client. Its header depends only on the message and
    /// the RETAIN flag, so it is encoded once per message routed to several sessions and shared
    /// (like the payload) by every such copy of `copies`: a fan-out to many subscribers costs a
    /// reference count per copy, not an encode. The header goes with `copies` once the message
    /// is routed.
    fn send_shared_header(
        &mut self,
        conn: ConnectionId,
        delivery: &Delivery,
        copies: &mut Copies,
        now: Instant,
    ) -> SendOutcome {
        let Some(c) = self.conns.get(&conn) else {
            return SendOutcome::NoConnection;
        };
        let (version, max_packet_size) = (c.version, c.max_packet_size as usize);
        let message = &delivery.message;
        let header = match &copies.header {
            Some(shared) if shared.matches(message, delivery.retain, version) => {
                shared.header.clone()
            }
            _ => {
                let publish = Publish::new(message.topic.clone(), message.payload.clone())
                    .with_retain(delivery.retain);
                let buf = self.out.scratch();
                if publish.encode_header(version, buf).is_err() {
                    buf.clear();
                    return SendOutcome::TooLarge;
                }
                let header = buf.split().freeze();
                if copies.several {
                    copies.header = Some(SharedHeader {
                        message: Arc::clone(message),
                        retain: delivery.retain,
                        version,
                        header: header.clone(),
                    });
                }
                header
            }
        };
        if header.len() + message.payload.len() > max_packet_size {
            return SendOutcome::TooLarge;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return SendOutcome::NoConnection;
        };
        self.stats.messages_sent += 1;
        self.stats.messages_sent_by_qos[QoS::AtMostOnce as usize] += 1;
        self.stats.publish_bytes_sent += message.payload.len() as u64;
        self.out
            .transmit_publish(conn, c, header, message.payload.clone(), now);
        SendOutcome::Sent
    }
}

/// The encoded header of the QoS 0 PUBLISH being fanned out to 3.1/3.1.1 clients, kept for the
/// next copy of the same message. It holds the message, so the pointer it compares cannot be
/// reused.
#[derive(Debug)]
pub(crate) struct SharedHeader {
    message: Arc<Message>,
    retain: bool,
    version: ProtocolVersion,
    header: Bytes,
}

impl SharedHeader {
    fn matches(&self, message: &Arc<Message>, retain: bool, version: ProtocolVersion) -> bool {
        Arc::ptr_eq(&self.message, message) && self.retain == retain && self.version == version
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use mqtt_wire::{Connect, Subscribe, SubscriptionOptions};

    use super::*;
    use crate::{Config, ConnectionInfo, Output};

    #[allow(clippy::disallowed_methods)] // a test needs some instant to start from
    fn epoch() -> Instant {
        Instant::now()
    }

    fn s(text: &'static str) -> MqttStr {
        MqttStr::from_static(text)
    }

    /// Feeds `packet` (3.1.1) to `conn` and returns the transmits that follow, per connection.
    fn send(broker: &mut Broker, conn: u64, packet: Packet, now: Instant) -> Vec<(u64, Bytes)> {
        let mut buf = BytesMut::new();
        packet
            .encode(ProtocolVersion::V3_1_1, &mut buf)
            .expect("encodes");
        broker
            .handle_bytes(ConnectionId(conn), &buf, now)
            .expect("open");
        let mut sent = Vec::new();
        while let Some(output) = broker.poll_output() {
            if let Output::Transmit { conn, data } = output {
                let len = data.iter().map(Bytes::len).sum();
                broker.handle_flushed(conn, len, now).expect("flushed");
                sent.extend(data.into_iter().map(|chunk| (conn.0, chunk)));
            }
        }
        sent
    }

    fn connect(broker: &mut Broker, conn: u64, client_id: &'static str, now: Instant) {
        let info = ConnectionInfo::default();
        broker
            .handle_open(ConnectionId(conn), info, now)
            .expect("new");
        let connect = Connect {
            protocol: ProtocolVersion::V3_1_1,
            bridge: false,
            clean_start: true,
            keep_alive: 0,
            client_id: s(client_id),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        };
        send(broker, conn, Packet::Connect(connect.into()), now);
    }

    fn publish(topic: &'static str, payload: &'static [u8]) -> Packet {
        Packet::Publish(Publish::new(s(topic), Bytes::from_static(payload)))
    }

    #[test]
    fn copies_of_a_qos0_message_share_one_encoded_header() {
        let now = epoch();
        let mut broker = Broker::new(Config::default());
        for (conn, id) in [(1, "a"), (2, "b")] {
            connect(&mut broker, conn, id, now);
            let subscribe = Subscribe {
                packet_id: PacketId::new(1).expect("non-zero"),
                filters: vec![(s("t/#"), SubscriptionOptions::default())],
                properties: Properties::default(),
            };
            send(&mut broker, conn, Packet::Subscribe(subscribe), now);
        }
        connect(&mut broker, 3, "publisher", now);

        let sent = send(&mut broker, 3, publish("t/x", b"one"), now);
        let [(1, h1), (1, p1), (2, h2), (2, p2)] = sent.as_slice() else {
            panic!("two copies expected: {sent:?}");
        };
        assert_eq!(h1.as_ref(), [0x30, 8, 0, 3, b't', b'/', b'x']);
        assert_eq!((h1, h1.as_ptr()), (h2, h2.as_ptr()), "one header, shared");
        assert_eq!((p1.as_ref(), p1.as_ptr()), (b"one".as_ref(), p2.as_ptr()));

        // The next message, to another topic and of another size, gets its own header.
        let sent = send(&mut broker, 3, publish("t/yy", b"four"), now);
        let [(1, h1), (1, _), (2, h2), (2, _)] = sent.as_slice() else {
            panic!("two copies expected: {sent:?}");
        };
        assert_eq!(h1.as_ref(), [0x30, 10, 0, 4, b't', b'/', b'y', b'y']);
        assert_eq!(h1.as_ptr(), h2.as_ptr());
    }
}
