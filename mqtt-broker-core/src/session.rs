//! The state the broker keeps for one client identifier: its subscriptions, the outbound window,
//! the bounded queue of messages waiting for it, inbound QoS 2 identifiers awaiting PUBREL, its
//! will and its expiry.

use std::collections::{HashMap, HashSet, VecDeque};

use mqtt_topic::SubscriptionFilter;
use mqtt_wire::{PacketId, ProtocolVersion, SubscriptionOptions};

use crate::conn::ConnectionId;
use crate::inflight::Inflight;
use crate::message::Delivery;
use crate::will::Will;

/// Broker-internal handle of a session, used as the subscription trie key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SessionId(pub(crate) u64);

/// One subscription of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// Options granted (QoS already capped).
    pub(crate) options: SubscriptionOptions,
    /// Subscription identifier (v5).
    pub(crate) identifier: Option<u32>,
}

/// Why a delivery could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull;

/// The bounded queue of QoS 1/2 deliveries waiting for window or connection.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    items: VecDeque<Delivery>,
    bytes: usize,
}

impl Queue {
    /// Whether `delivery` fits within `max_messages` and `max_bytes`.
    pub(crate) fn has_room(
        &self,
        delivery: &Delivery,
        max_messages: usize,
        max_bytes: usize,
    ) -> bool {
        self.items.len() < max_messages && self.bytes.saturating_add(delivery.weight()) <= max_bytes
    }

    /// Appends `delivery` unless that would pass `max_messages` or `max_bytes`.
    pub(crate) fn push(
        &mut self,
        delivery: Delivery,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<(), QueueFull> {
        let weight = delivery.weight();
        if self.items.len() >= max_messages || self.bytes.saturating_add(weight) > max_bytes {
            return Err(QueueFull);
        }
        self.bytes += weight;
        self.items.push_back(delivery);
        Ok(())
    }

    /// The waiting deliveries, oldest first.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Delivery> {
        self.items.iter_mut()
    }

    /// Takes the oldest delivery.
    pub(crate) fn pop(&mut self) -> Option<Delivery> {
        let delivery = self.items.pop_front()?;
        self.bytes = self.bytes.saturating_sub(delivery.weight());
        Some(delivery)
    }

    /// Takes every delivery, oldest first.
    pub(crate) fn take_all(&mut self) -> Vec<Delivery> {
        self.bytes = 0;
        self.items.drain(..).collect()
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Deliveries waiting.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Payload and topic bytes waiting.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// State kept per client identifier.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client identifier.
    pub(crate) client_id: String,
    /// The connection it is attached to, if connected.
    pub(crate) conn: Option<ConnectionId>,
    /// Protocol version of the last connection.
    pub(crate) version: ProtocolVersion,
    /// Subscriptions by filter text (including any `$share/` prefix), with the parsed filter.
    pub(crate) subscriptions: HashMap<String, (SubscriptionFilter, Subscription)>,
    /// Outbound QoS 1/2 exchanges.
    pub(crate) inflight: Inflight,
    /// Deliveries waiting.
    pub(crate) queue: Queue,
    /// Inbound QoS 2 packet identifiers answered with PUBREC and awaiting PUBREL.
    pub(crate) incoming_qos2: HashSet<PacketId>,
    /// Session Expiry Interval in seconds, once disconnected (`u32::MAX` = never).
    pub(crate) expiry_interval: u32,
    /// The will stored with the session [MQTT5-3.1.2-7].
    pub(crate) will: Option<Will>,
    /// Routing scratch: the number of the last message routed here, and the index of its copy.
    pub(crate) route_mark: (u64, usize),
    /// Whether a record of this session was written for persistence.
    pub(crate) persisted: bool,
    /// Number of the last delivery recorded for persistence.
    pub(crate) next_number: u64,
}

impl Session {
    /// A new, empty session.
    pub(crate) fn new(client_id: String, version: ProtocolVersion) -> Self {
        Session {
            client_id,
            conn: None,
            version,
            subscriptions: HashMap::new(),
            inflight: Inflight::default(),
            queue: Queue::default(),
            incoming_qos2: HashSet::new(),
            expiry_interval: 0,
            will: None,
            route_mark: (0, 0),
            persisted: false,
            next_number: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;
    use mqtt_wire::{MqttStr, QoS};
    use std::sync::Arc;

    fn delivery(payload: &'static [u8]) -> Delivery {
        Delivery {
            message: Arc::new(Message::new(
                MqttStr::from_static("t"),
                Bytes::from_static(payload),
                QoS::AtLeastOnce,
                false,
                crate::test_epoch(),
            )),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            share: None,
            stored: 0,
        }
    }

    #[test]
    fn queue_is_bounded_by_messages_and_bytes() {
        let mut queue = Queue::default();
        assert!(queue.push(delivery(b"abc"), 2, 100).is_ok());
        assert!(queue.push(delivery(b"abc"), 2, 100).is_ok());
        assert_eq!(queue.push(delivery(b"abc"), 2, 100), Err(QueueFull));
        let mut small = Queue::default();
        assert!(small.push(delivery(b"abc"), 10, 4).is_ok());
        assert_eq!(small.push(delivery(b"abc"), 10, 4), Err(QueueFull));
        assert!(small.pop().is_some());
        assert!(
            small.push(delivery(b"abc"), 10, 4).is_ok(),
            "room again after a pop"
        );
        assert_eq!(small.len(), 1);
    }
}
