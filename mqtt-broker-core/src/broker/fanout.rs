//! Routing one message: update the retained store, find matching subscriptions, pick one member
//! per shared group (round-robin, online members first), and shape a [`Delivery`] per session.
//!
//! A session matched by several non-shared subscriptions gets one copy at the highest matching
//! QoS [MQTT311-3.3.5-1] [MQTT5-3.3.4-2] carrying every matching subscription identifier
//! [MQTT5-3.3.4-4], retained if any of them has Retain As Published; a subscription excluded by
//! No Local does not contribute. Each shared subscription adds its own copy for the member it
//! picks. The payload is shared by every copy. Queued copies of a shared subscription follow the group when their
//! session leaves it.

use std::sync::Arc;
use std::time::Instant;

use mqtt_topic::TopicName;

use crate::backpressure::Backpressure;
use crate::broker::Broker;
use crate::broker::delivery::{Copies, online_conn};
use crate::conn::Conn;
use crate::idmap::IdMap;
use crate::ids::ConnectionId;
use crate::ids::SessionId;
use crate::message::{Delivery, Message, Origin};
use crate::output::{Event, Output};
use crate::persist::PersistRecord;
use crate::router::{Reach, Route, Scope};
use crate::session::{Sessions, Subscription};

impl Broker {
    /// Routes `message`, published to `topic`, to every matching subscription. A full
    /// subscriber may pause the publishing client (see `backpressure`). With `Config::cluster`,
    /// a message published here is also handed out for the other nodes (`Output::Forward`),
    /// and its shared subscriptions are left to the backplane, which picks the node that
    /// serves each group (see [`Broker::publish_remote_shared`]).
    pub(crate) fn route(
        &mut self,
        topic: TopicName,
        message: Message,
        origin: Origin,
        now: Instant,
    ) {
        let scope = match origin {
            Origin::Client(_) | Origin::Local | Origin::Remote if self.shares_by_backplane() => {
                Scope::Plain
            }
            _ => Scope::All,
        };
        self.route_to(topic, message, origin, scope, now);
    }

    /// Routes `message` to the subscriptions `scope` names. A message from another node
    /// ([`Origin::Remote`]) leaves the retained store alone: the backplane keeps it
    /// ([`Broker::retain_remote`]).
    pub(crate) fn route_to(
        &mut self,
        topic: TopicName,
        message: Message,
        origin: Origin,
        scope: Scope<'_>,
        now: Instant,
    ) {
        let mut message = Arc::new(message);
        if message.retain && origin != Origin::Remote {
            self.update_retained(&topic, &mut message);
        }
        // `$SYS/...` belongs to each broker (its statistics, its bridges' states).
        if self.config.cluster
            && matches!(origin, Origin::Client(_) | Origin::Local)
            && !topic.as_str().starts_with("$SYS/")
        {
            self.emit(Output::Forward(Arc::clone(&message)));
        }
        if self.tap.take(self.config.tap_per_second, now) {
            self.emit(Output::Tap(Arc::clone(&message)));
        }
        let publisher = match origin {
            Origin::Client(conn) => Some(conn),
            // The other nodes pause as one publisher (see `ConnectionId::CLUSTER`).
            Origin::Remote => Some(ConnectionId::CLUSTER),
            Origin::Local | Origin::Sys => None,
        };
        let routes = {
            let (sessions, conns, backpressure) = (&self.sessions, &self.conns, &self.backpressure);
            self.router.route(&topic, scope, |session| {
                reach(sessions, conns, backpressure, session)
            })
        };
        let mut deliveries = std::mem::take(&mut self.deliveries);
        // A session matched by several non-shared filters gets one copy: its first match
        // records (this routing's number, index of its copy) in the session.
        self.route_seq += 1;
        let seq = self.route_seq;
        for route in &routes {
            let Some(s) = self.sessions.get_mut(&route.session) else {
                continue;
            };
            let Route {
                session,
                subscription,
                ref share,
            } = *route;
            let options = subscription.options;
            if options.no_local && message.publisher.as_deref() == Some(&*s.client_id) {
                continue; // [MQTT5-3.8.3-3]
            }
            let qos = message.qos.min(options.qos); // [MQTT5-3.8.4-8] [MQTT311-3.8.4-6]
            // [MQTT5-3.3.1-12] [MQTT5-3.3.1-13]; 3.1.1 always clears it [MQTT311-3.3.1-9],
            // except for a bridge that asked with the bridge bit (not a standard client).
            let retain =
                (s.version.is_v5() || s.bridge) && options.retain_as_published && message.retain;
            if share.is_none() && s.route_mark.0 == seq {
                // Another filter of a session already served: merge into its one copy
                // [MQTT5-3.3.4-2] [MQTT5-3.3.4-4] [MQTT311-3.3.5-1].
                if let Some((_, delivery)) = deliveries.get_mut(s.route_mark.1) {
                    delivery.qos = delivery.qos.max(qos);
                    delivery.retain |= retain;
                    if let Some(id) = subscription.identifier
                        && !delivery.subscription_ids.contains(&id)
                    {
                        delivery.subscription_ids.push(id);
                    }
                }
                continue;
            }
            if share.is_none() {
                s.route_mark = (seq, deliveries.len());
            }
            deliveries.push((
                session,
                Delivery {
                    message: Arc::clone(&message),
                    qos,
                    retain,
                    subscription_ids: subscription.identifier.into_iter().collect(),
                    share: share.clone(),
                    stored: 0,
                },
            ));
        }
        self.router.recycle(routes);
        let mut copies = Copies::routing(publisher, deliveries.len());
        // A copy made to queue the message (see `Message::detach_pinned`) serves every later
        // session of this routing.
        let mut detached: Option<Arc<Message>> = None;
        for (session, mut delivery) in deliveries.drain(..) {
            if let Some(copy) = &detached {
                delivery.message = Arc::clone(copy);
            }
            if let Some(copy) = self.deliver(session, delivery, &mut copies, now) {
                detached = Some(copy);
            }
        }
        if deliveries.capacity() <= KEPT_DELIVERIES {
            self.deliveries = deliveries;
        }
    }

    /// Stores, replaces or clears the retained message of `topic`. A message stored that is
    /// still a view into its read is replaced by its copy (for the routing too), and so is the
    /// topic name it is stored under, which is a view into the same read.
    pub(crate) fn update_retained(&mut self, topic: &TopicName, message: &mut Arc<Message>) {
        if !self.config.retain_available {
            return;
        }
        if message.payload.is_empty() {
            // [MQTT5-3.3.1-6] [MQTT5-3.3.1-7] [MQTT311-3.3.1-10] [MQTT311-3.3.1-11]: clears, and is not stored itself.
            self.clear_retained(topic);
        } else if self.retained_room(topic, message) {
            let key = if Message::detach_pinned(message) {
                self.detached_name(topic, message)
            } else {
                topic.clone()
            };
            self.retained.set(key, Arc::clone(message)); // [MQTT-3.3.1-5]
            self.persist(PersistRecord::RetainedSet {
                topic: topic.as_str().to_owned(),
                message: Arc::clone(message),
            });
            self.event(Event::RetainedChanged {
                topic: topic.as_str().to_owned(),
                present: true,
            });
        } else {
            self.stats.retained_refused += 1;
        }
    }

    /// `topic` as a view of the copied topic of `message` (the same name), so that the retained
    /// store's key keeps nothing of the read either.
    fn detached_name(&self, topic: &TopicName, message: &Message) -> TopicName {
        let text = &message.topic;
        TopicName::with_limits_utf8(text.clone().into_bytes(), text, &self.topic_limits)
            .unwrap_or_else(|_| topic.clone())
    }

    /// Whether storing `message` as the retained message of `topic` stays within the retained
    /// limits (a replacement frees what it replaces).
    pub(crate) fn retained_room(&self, topic: &TopicName, message: &Message) -> bool {
        self.retained.has_room(
            topic,
            message,
            self.config.max_retained_messages,
            self.config.max_retained_bytes,
        )
    }

    /// Clears the retained message of `topic`, if any.
    pub(crate) fn clear_retained(&mut self, topic: &TopicName) {
        if self.retained.remove(topic) {
            self.persist(PersistRecord::RetainedCleared {
                topic: topic.as_str().to_owned(),
            });
            self.event(Event::RetainedChanged {
                topic: topic.as_str().to_owned(),
                present: false,
            });
        }
    }

    /// Hands the queued shared-subscription copies of `session` (of the group `only`, or of all
    /// groups) to other connected members; copies no other member can take stay queued.
    pub(crate) fn redistribute_shared(
        &mut self,
        session: SessionId,
        only: Option<&str>,
        now: Instant,
    ) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let moving = |d: &Delivery| match (&d.share, only) {
            (Some(share), Some(only)) => &**share == only,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !s.queue.is_empty() {
            // Taken out whole, and the session's own copies put back: counted out and in.
            self.memory.removed(s.queue.len(), s.queue.bytes());
        }
        let (shared, own): (Vec<_>, Vec<_>) = s.queue.take_all().into_iter().partition(moving);
        let (max_messages, max_bytes) = (
            self.config.max_queued_messages,
            self.config.max_queued_bytes,
        );
        for delivery in own {
            let weight = delivery.weight();
            if s.queue.push(delivery, max_messages, max_bytes).is_ok() {
                self.memory.queued(weight);
            }
        }
        for delivery in shared {
            let target = self.other_member(session, &delivery);
            match target {
                Some((other, subscription)) => {
                    self.delivery_changed(session, delivery.stored, None);
                    // Shaped anew by the subscription it now goes out through: QoS
                    // [MQTT5-4.8.2-3], RETAIN [MQTT5-3.3.1-12] [MQTT5-3.3.1-13] (found by the
                    // simulator: the first member's Retain As Published stuck to the copy).
                    let keeps_retain = self
                        .sessions
                        .get(&other)
                        .is_some_and(|o| o.version.is_v5() || o.bridge)
                        && subscription.options.retain_as_published;
                    let delivery = Delivery {
                        stored: 0,
                        qos: delivery.message.qos.min(subscription.options.qos),
                        retain: keeps_retain && delivery.message.retain,
                        subscription_ids: subscription.identifier.into_iter().collect(),
                        ..delivery
                    };
                    self.deliver(other, delivery, &mut Copies::one(), now);
                }
                None => {
                    let weight = delivery.weight();
                    if let Some(s) = self.sessions.get_mut(&session)
                        && s.queue.push(delivery, max_messages, max_bytes).is_ok()
                    {
                        self.memory.queued(weight);
                    }
                }
            }
        }
    }

    /// Another connected member of the group `delivery` came through.
    fn other_member(
        &mut self,
        session: SessionId,
        delivery: &Delivery,
    ) -> Option<(SessionId, Subscription)> {
        let share = delivery.share.as_deref()?;
        let topic = TopicName::new(delivery.message.topic.clone().into_bytes()).ok()?;
        let (sessions, conns, backpressure) = (&self.sessions, &self.conns, &self.backpressure);
        self.router.other_member(&topic, share, session, |member| {
            reach(sessions, conns, backpressure, member)
        })
    }
}

/// Delivery buffers longer than this are not kept between routings.
const KEPT_DELIVERIES: usize = 4096;

/// How `session` can be reached now, for a shared group's pick.
fn reach(
    sessions: &Sessions,
    conns: &IdMap<ConnectionId, Box<Conn>>,
    backpressure: &Backpressure,
    session: SessionId,
) -> Reach {
    if online_conn(sessions, conns, session).is_none() {
        Reach::Offline
    } else if backpressure.is_overflowing(session) {
        Reach::Overflowing
    } else {
        Reach::Ready
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use mqtt_wire::{
        Connect, MqttStr, Packet, PacketId, Properties, ProtocolVersion, Publish, Subscribe,
        SubscriptionOptions,
    };

    use crate::{Broker, Config, ConnectionId, ConnectionInfo, Output};

    const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

    fn encode(packets: &[Packet]) -> BytesMut {
        let mut buf = BytesMut::new();
        for packet in packets {
            packet.encode(V311, &mut buf).expect("test packet encodes");
        }
        buf
    }

    /// Feeds `bytes` to `conn`, reports every transmit flushed, returns the chunks sent to `to`.
    fn feed(broker: &mut Broker, conn: u64, bytes: &[u8], to: u64) -> Vec<Bytes> {
        let now = crate::test_epoch();
        broker
            .handle_bytes(ConnectionId(conn), bytes, now)
            .expect("open");
        let mut chunks = Vec::new();
        while let Some(output) = broker.poll_output() {
            if let Output::Transmit { conn, data } = output {
                let len = data.iter().map(Bytes::len).sum();
                broker.handle_flushed(conn, len, now).expect("open");
                if conn.0 == to {
                    chunks.extend(data);
                }
            }
        }
        chunks
    }

    fn connect(broker: &mut Broker, conn: u64, client_id: &'static str) {
        let now = crate::test_epoch();
        broker
            .handle_open(ConnectionId(conn), ConnectionInfo::default(), now)
            .expect("new");
        let connect = Connect {
            protocol: V311,
            bridge: false,
            clean_start: true,
            keep_alive: 0,
            client_id: MqttStr::from_static(client_id),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        };
        feed(broker, conn, &encode(&[Packet::Connect(connect.into())]), 0);
    }

    #[test]
    fn the_topic_a_retained_message_is_kept_under_does_not_keep_the_read_buffer() {
        let mut broker = Broker::new(Config::default());
        connect(&mut broker, 1, "watcher");
        let subscribe = Subscribe {
            packet_id: PacketId::new(1).expect("non-zero"),
            filters: vec![(MqttStr::from_static("live"), SubscriptionOptions::default())],
            properties: Properties::default(),
        };
        feed(&mut broker, 1, &encode(&[Packet::Subscribe(subscribe)]), 0);
        connect(&mut broker, 2, "publisher");
        let live = Publish::new(MqttStr::from_static("live"), Bytes::from_static(b"now"));
        let kept = Publish::new(MqttStr::from_static("kept"), Bytes::from_static(b"later"))
            .with_retain(true)
            .with_qos(mqtt_wire::PublishQos::AtMostOnce);
        let input = encode(&[Packet::Publish(live), Packet::Publish(kept)]);
        let sent = feed(&mut broker, 2, &input, 1);
        // The payload of "live" is delivered as a view into the broker's copy of the input; it
        // ends the first frame.
        let payload = sent
            .iter()
            .find(|c| c.as_ref() == b"now")
            .expect("delivered");
        let first_frame_len = 2 + 2 + 4 + 3;
        let start = payload.as_ptr() as usize + 3 - first_frame_len;
        let read_buffer = start..start + input.len();
        let keys = broker.retained.key_addresses();
        assert_eq!(keys.len(), 1, "one retained message kept");
        assert!(!read_buffer.contains(&keys[0]), "the key is a copy");
        assert_eq!(broker.stats().retained_messages, 1);
    }
}
