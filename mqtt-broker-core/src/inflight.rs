//! Outbound QoS 1/2 messages sent to a client and not yet acknowledged, in send order, with the
//! packet identifiers they use.
//!
//! The window is bounded by the client's Receive Maximum [MQTT5-3.3.4-9]; the entries are kept in
//! the order they were first sent so a resumed session resends them in that order [MQTT-4.6.0-1].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use mqtt_wire::{PacketId, QoS};

use crate::message::{Delivery, Message};

/// Where one outbound exchange stands.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published(Delivery),
    /// PUBREL sent; waiting for PUBCOMP [MQTT5-4.3.3-5]. Carries the delivery's stored number.
    Released(u64),
}

/// Result of a PUBACK or a PUBCOMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acked {
    /// It ended the exchange of the delivery with this stored number (0: not recorded).
    Ended(u64),
    /// No exchange uses the packet identifier (a late duplicate): ignored.
    Unknown,
    /// The exchange waits for another kind of acknowledgement: a protocol error.
    WrongKind,
}

/// Result of a PUBREC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecOutcome {
    /// A QoS 2 PUBLISH (with this stored number) was waiting: now release it.
    Release(u64),
    /// Already released (the PUBREL was lost): send the PUBREL again.
    AlreadyReleased,
    /// An error code ended the exchange of the delivery with this stored number.
    Failed(u64),
    /// Unknown packet identifier.
    Unknown,
    /// The exchange is a QoS 1 one: a protocol error.
    WrongKind,
}

/// One exchange of the window: its packet identifier and where it is.
type Exchange = (PacketId, Outbound);

/// The window of a session that never had an exchange.
static NO_EXCHANGES: VecDeque<Exchange> = VecDeque::new();

/// The outbound window of one session.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    /// Made on the first exchange: a session that only ever gets QoS 0 keeps 8 bytes for it.
    #[allow(
        clippy::box_collection,
        reason = "a thin pointer keeps the session of a QoS 0 subscriber small"
    )]
    entries: Option<Box<VecDeque<Exchange>>>,
    last_id: u16,
}

impl Inflight {
    fn entries(&self) -> &VecDeque<Exchange> {
        self.entries.as_deref().unwrap_or(&NO_EXCHANGES)
    }

    fn entries_mut(&mut self) -> &mut VecDeque<Exchange> {
        self.entries.get_or_insert_default()
    }

    /// Exchanges in progress.
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Topic and payload bytes of the PUBLISH packets waiting for PUBACK or PUBREC, counted
    /// when asked: only a broker with `max_inflight_bytes` asks.
    pub(crate) fn published_bytes(&self) -> usize {
        self.entries()
            .iter()
            .map(|(_, outbound)| match outbound {
                Outbound::Published(delivery) => delivery.weight(),
                Outbound::Released(_) => 0,
            })
            .sum()
    }

    /// The packet identifier the next exchange gets: the first after the last one used that no
    /// exchange uses [MQTT-4.3.2-1] [MQTT-4.3.3-1]. It is taken only by [`Inflight::push`], so
    /// asking without sending wastes none (identifiers go up by one per message). `None` when
    /// all 65535 are taken (the window never allows that many).
    pub(crate) fn next_id(&self) -> Option<PacketId> {
        let mut candidate = self.last_id;
        for _ in 0..u16::MAX {
            candidate = candidate.checked_add(1).unwrap_or(1);
            let id = PacketId::new(candidate)?;
            if !self.entries().iter().any(|(used, _)| *used == id) {
                return Some(id);
            }
        }
        None
    }

    /// Records a PUBLISH just sent with `id`.
    pub(crate) fn push(&mut self, id: PacketId, delivery: Delivery) {
        self.last_id = id.get();
        self.entries_mut()
            .push_back((id, Outbound::Published(delivery)));
    }

    fn position(&self, id: PacketId) -> Option<usize> {
        self.entries().iter().position(|(used, _)| *used == id)
    }

    /// A PUBACK arrived: ends a QoS 1 exchange.
    pub(crate) fn puback(&mut self, id: PacketId) -> Acked {
        let Some(index) = self.position(id) else {
            return Acked::Unknown;
        };
        match self.entries().get(index) {
            Some((_, Outbound::Published(d))) if d.qos == QoS::AtLeastOnce => {
                let stored = d.stored;
                self.entries_mut().remove(index);
                Acked::Ended(stored)
            }
            _ => Acked::WrongKind,
        }
    }

    /// A PUBREC arrived. `failed` (reason 0x80 or above) ends the exchange [MQTT5-4.4.0-2].
    pub(crate) fn pubrec(&mut self, id: PacketId, failed: bool) -> RecOutcome {
        let Some(index) = self.position(id) else {
            return RecOutcome::Unknown;
        };
        let Some((_, state)) = self.entries_mut().get_mut(index) else {
            return RecOutcome::Unknown;
        };
        match state {
            Outbound::Published(d) if d.qos == QoS::ExactlyOnce => {
                let stored = d.stored;
                if failed {
                    self.entries_mut().remove(index);
                    RecOutcome::Failed(stored)
                } else {
                    *state = Outbound::Released(stored);
                    RecOutcome::Release(stored)
                }
            }
            Outbound::Released(_) => RecOutcome::AlreadyReleased,
            Outbound::Published(_) => RecOutcome::WrongKind,
        }
    }

    /// A PUBCOMP arrived: ends a released QoS 2 exchange.
    pub(crate) fn pubcomp(&mut self, id: PacketId) -> Acked {
        let Some(index) = self.position(id) else {
            return Acked::Unknown;
        };
        match self.entries().get(index) {
            Some((_, Outbound::Released(stored))) => {
                let stored = *stored;
                self.entries_mut().remove(index);
                Acked::Ended(stored)
            }
            _ => Acked::WrongKind,
        }
    }

    /// Restores a QoS 2 exchange already released (read back from a store).
    pub(crate) fn push_released(&mut self, id: PacketId, stored: u64) {
        self.last_id = id.get();
        self.entries_mut()
            .push_back((id, Outbound::Released(stored)));
    }

    /// The stored number of the delivery using `id` (0 when not recorded or unknown).
    #[cfg(test)]
    pub(crate) fn stored_number(&self, id: PacketId) -> u64 {
        match self.entries().iter().find(|(used, _)| *used == id) {
            Some((_, Outbound::Published(delivery))) => delivery.stored,
            Some((_, Outbound::Released(stored))) => *stored,
            None => 0,
        }
    }

    /// Forgets the exchange using `id`.
    pub(crate) fn remove(&mut self, id: PacketId) {
        if let Some(index) = self.position(id) {
            self.entries_mut().remove(index);
        }
    }

    /// The connection is gone and the session is kept: the messages waiting for acknowledgement
    /// that are still views into a read are copied out of it ([`Message::detach_pinned`]), each
    /// shared message once however many exchanges use it. Returns how many copies were made.
    pub(crate) fn detach_pinned(&mut self) -> usize {
        // Original -> copy, by address; the original is held so its address stays its own.
        let mut copies: HashMap<*const Message, (Arc<Message>, Arc<Message>)> = HashMap::new();
        for (_, outbound) in self.entries.iter_mut().flat_map(|e| e.iter_mut()) {
            let Outbound::Published(delivery) = outbound else {
                continue;
            };
            if !delivery.message.pins_buffer {
                continue;
            }
            let original = Arc::clone(&delivery.message);
            let (_, copy) = copies.entry(Arc::as_ptr(&original)).or_insert_with(|| {
                let mut copy = Arc::clone(&original);
                Message::detach_pinned(&mut copy);
                (original, copy)
            });
            delivery.message = Arc::clone(copy);
        }
        copies.len()
    }

    /// Exchanges in send order, changeable.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut (PacketId, Outbound)> {
        self.entries.iter_mut().flat_map(|e| e.iter_mut())
    }

    /// Exchanges in send order, for resending on session resumption [MQTT-4.4.0-1].
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(PacketId, Outbound)> {
        self.entries().iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mqtt_wire::MqttStr;

    fn delivery(qos: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message::new(
                MqttStr::from_static("t"),
                Bytes::new(),
                qos,
                false,
                crate::test_epoch(),
            )),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
            share: None,
            stored: 0,
        }
    }

    #[test]
    fn ids_skip_those_in_use_and_wrap() {
        let mut inflight = Inflight::default();
        let first = inflight.next_id().unwrap();
        inflight.push(first, delivery(QoS::AtLeastOnce));
        inflight.last_id = u16::MAX;
        assert_eq!(
            inflight.next_id().unwrap().get(),
            2,
            "1 is in use, 0 skipped"
        );
    }

    #[test]
    fn qos2_exchange_runs_publish_rec_rel_comp() {
        let mut inflight = Inflight::default();
        let id = inflight.next_id().unwrap();
        inflight.push(id, delivery(QoS::ExactlyOnce));
        assert!(
            !matches!(inflight.puback(id), Acked::Ended(_)),
            "PUBACK does not end a QoS 2 exchange"
        );
        assert!(matches!(inflight.pubrec(id, false), RecOutcome::Release(_)));
        assert_eq!(inflight.pubrec(id, false), RecOutcome::AlreadyReleased);
        assert!(matches!(inflight.pubcomp(id), Acked::Ended(_)));
        assert_eq!(inflight.len(), 0);
    }

    #[test]
    fn detaching_copies_each_pinned_message_once_and_leaves_the_others() {
        let mut inflight = Inflight::default();
        let mut pinned = delivery(QoS::AtLeastOnce);
        Arc::make_mut(&mut pinned.message).pins_buffer = true;
        let plain = delivery(QoS::AtLeastOnce);
        for d in [pinned.clone(), plain.clone(), pinned.clone()] {
            let id = inflight.next_id().unwrap();
            inflight.push(id, d);
        }
        let released = inflight.next_id().unwrap();
        inflight.push_released(released, 7);

        assert_eq!(inflight.detach_pinned(), 1);
        let messages: Vec<&Arc<Message>> = inflight
            .iter()
            .filter_map(|(_, outbound)| match outbound {
                Outbound::Published(d) => Some(&d.message),
                Outbound::Released(_) => None,
            })
            .collect();
        assert!(!Arc::ptr_eq(messages[0], &pinned.message), "copied");
        assert!(!messages[0].pins_buffer);
        assert_eq!(*messages[0], pinned.message);
        assert!(Arc::ptr_eq(messages[0], messages[2]), "one copy shared");
        assert!(
            Arc::ptr_eq(messages[1], &plain.message),
            "not pinning: kept"
        );
        assert_eq!(inflight.stored_number(released), 7);
        assert_eq!(inflight.detach_pinned(), 0, "nothing pins any more");
    }

    #[test]
    fn mqtt5_4_4_0_2_error_pubrec_ends_the_exchange() {
        let mut inflight = Inflight::default();
        let id = inflight.next_id().unwrap();
        inflight.push(id, delivery(QoS::ExactlyOnce));
        assert!(matches!(inflight.pubrec(id, true), RecOutcome::Failed(_)));
        assert_eq!(inflight.len(), 0);
    }
}
