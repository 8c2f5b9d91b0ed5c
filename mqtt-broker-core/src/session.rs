//! The state the broker keeps for one client identifier: its subscriptions, the outbound window,
//! the bounded queue of messages waiting for it, inbound QoS 2 identifiers awaiting PUBREL, its
//! will and its expiry.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use mqtt_wire::{PacketId, ProtocolVersion, SubscriptionOptions};

use crate::conn::Conn;
use crate::idmap::IdMap;
use crate::ids::{ConnectionId, ConnectionInfo, SessionId};
use crate::inflight::Inflight;
use crate::message::Delivery;
use crate::will::Will;

/// One subscription of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// Options granted (QoS already capped).
    pub(crate) options: SubscriptionOptions,
    /// Subscription identifier (v5).
    pub(crate) identifier: Option<u32>,
}

/// Above this many subscriptions a session indexes them by filter text; below, a linear search
/// of a vector is as fast and costs no table (most sessions hold one or two).
const INDEX_ABOVE: usize = 32;

/// The subscriptions of one session, each found by its filter text (including any `$share/`
/// prefix). Only the text is kept (the parsed filter lives in the subscription index, and is
/// parsed again from the text on the rare paths that need it); a single subscription, the common
/// case, is held inline.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions(Entries);

/// One subscription: its filter text and what was granted.
type Entry = (Box<str>, Subscription);

#[derive(Debug, Default)]
enum Entries {
    #[default]
    Empty,
    One(Entry),
    Many {
        entries: Vec<Entry>,
        /// Position in `entries` by filter text, once there are more than [`INDEX_ABOVE`].
        #[allow(
            clippy::box_collection,
            reason = "a thin pointer keeps the map of a session with few subscriptions small"
        )]
        index: Option<Box<HashMap<Box<str>, usize>>>,
    },
}

/// Position of the subscription to `text` in `entries`.
fn position(
    entries: &[Entry],
    index: Option<&HashMap<Box<str>, usize>>,
    text: &str,
) -> Option<usize> {
    match index {
        Some(index) => index.get(text).copied(),
        None => entries.iter().position(|(t, _)| **t == *text),
    }
}

impl Subscriptions {
    fn entries(&self) -> &[Entry] {
        match &self.0 {
            Entries::Empty => &[],
            Entries::One(entry) => std::slice::from_ref(entry),
            Entries::Many { entries, .. } => entries,
        }
    }

    /// Subscriptions held.
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether a subscription to `text` is held.
    pub(crate) fn contains_key(&self, text: &str) -> bool {
        match &self.0 {
            Entries::Many { entries, index } => position(entries, index.as_deref(), text).is_some(),
            _ => self.entries().iter().any(|(t, _)| **t == *text),
        }
    }

    /// Adds or replaces the subscription to the filter `text`; returns the one replaced.
    pub(crate) fn insert(
        &mut self,
        text: &str,
        subscription: Subscription,
    ) -> Option<Subscription> {
        match &mut self.0 {
            Entries::Empty => {
                self.0 = Entries::One((text.into(), subscription));
                None
            }
            Entries::One((t, slot)) if **t == *text => Some(std::mem::replace(slot, subscription)),
            Entries::One(_) => {
                let Entries::One(first) = std::mem::take(&mut self.0) else {
                    return None;
                };
                let mut entries = Vec::with_capacity(2);
                entries.extend([first, (text.into(), subscription)]);
                self.0 = Entries::Many {
                    entries,
                    index: None,
                };
                None
            }
            Entries::Many { entries, index } => {
                if let Some(at) = position(entries, index.as_deref(), text)
                    && let Some((_, slot)) = entries.get_mut(at)
                {
                    return Some(std::mem::replace(slot, subscription));
                }
                if entries.capacity() == entries.len() {
                    entries.reserve_exact(if entries.len() < 4 {
                        1
                    } else {
                        entries.len() / 2
                    });
                }
                entries.push((text.into(), subscription));
                let at = entries.len() - 1;
                match index {
                    Some(index) => {
                        index.insert(text.into(), at);
                    }
                    None if entries.len() > INDEX_ABOVE => {
                        let built = entries
                            .iter()
                            .enumerate()
                            .map(|(at, (t, _))| (t.clone(), at))
                            .collect();
                        *index = Some(Box::new(built));
                    }
                    None => {}
                }
                None
            }
        }
    }

    /// Removes the subscription to `text`.
    pub(crate) fn remove(&mut self, text: &str) -> Option<Subscription> {
        match &mut self.0 {
            Entries::Empty => None,
            Entries::One((t, _)) if **t != *text => None,
            Entries::One(_) => match std::mem::take(&mut self.0) {
                Entries::One((_, removed)) => Some(removed),
                _ => None,
            },
            Entries::Many { entries, index } => {
                let at = position(entries, index.as_deref(), text)?;
                let (_, removed) = entries.swap_remove(at);
                if let Some(index) = index {
                    index.remove(text);
                    if let Some((moved, _)) = entries.get(at) {
                        index.insert(moved.clone(), at);
                    }
                }
                if entries.len() <= 1 {
                    // Back inline (or to nothing): the vector and any index go.
                    self.0 = entries.pop().map_or(Entries::Empty, Entries::One);
                }
                Some(removed)
            }
        }
    }

    /// Every subscription with its filter text, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = (&str, &Subscription)> {
        self.entries().iter().map(|(text, sub)| (&**text, sub))
    }
}

/// Every session, and the session of each client identifier: the one place sessions are
/// created and discarded, so the identifier index never names a session that is gone.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    /// Boxed: the table then holds pointers, so its spare capacity costs 16 bytes a slot
    /// instead of a whole session (idle memory per client).
    by_id: IdMap<SessionId, Box<Session>>,
    /// Keyed by the session's own shared identifier (16 bytes a slot, no second copy of the
    /// text).
    by_client_id: HashMap<Arc<str>, SessionId>,
    last_id: u64,
    last_assigned: u64,
}

impl Sessions {
    /// The session `id`.
    pub(crate) fn get(&self, id: &SessionId) -> Option<&Session> {
        self.by_id.get(id).map(|s| &**s)
    }

    /// The session `id`, to change.
    pub(crate) fn get_mut(&mut self, id: &SessionId) -> Option<&mut Session> {
        self.by_id.get_mut(id).map(|s| &mut **s)
    }

    /// The session of `client_id`.
    pub(crate) fn find(&self, client_id: &str) -> Option<SessionId> {
        self.by_client_id.get(client_id).copied()
    }

    /// Sessions held, connected or not.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The identifiers of every session, in no particular order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.by_id.keys().copied()
    }

    /// Every session, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Session> {
        self.by_id.values().map(|s| &**s)
    }

    /// A new, empty session for `client_id`, which from now on names it.
    pub(crate) fn create(&mut self, client_id: &str, version: ProtocolVersion) -> SessionId {
        let id = self.reserve_id();
        self.insert(id, Session::new(Arc::from(client_id), version));
        id
    }

    /// An identifier for a session that the caller builds and then [`Sessions::insert`]s.
    pub(crate) fn reserve_id(&mut self) -> SessionId {
        self.last_id += 1;
        SessionId(self.last_id)
    }

    /// Holds `session` as `id`; its client identifier names it from now on.
    pub(crate) fn insert(&mut self, id: SessionId, session: Session) {
        self.by_client_id.insert(Arc::clone(&session.client_id), id);
        self.by_id.insert(id, Box::new(session));
    }

    /// Discards session `id`; its client identifier no longer names it (unless a newer session
    /// took the identifier over already).
    pub(crate) fn remove(&mut self, id: &SessionId) -> Option<Box<Session>> {
        let session = self.by_id.remove(id)?;
        if self.by_client_id.get(&session.client_id) == Some(id) {
            self.by_client_id.remove(&session.client_id);
        }
        Some(session)
    }

    /// A client identifier no session has: `prefix` and a counter [MQTT-3.1.3-6].
    pub(crate) fn assign_client_id(&mut self, prefix: &str) -> String {
        loop {
            self.last_assigned += 1;
            let id = format!("{prefix}{}", self.last_assigned);
            if !self.by_client_id.contains_key(id.as_str()) {
                return id;
            }
        }
    }
}

/// Inbound QoS 2 packet identifiers awaiting PUBREL, sorted; boxed while any is held and
/// nothing otherwise (8 bytes in the session). At most the broker's Receive Maximum are held, and
/// clients mostly use increasing identifiers, so inserting is appending.
#[derive(Debug, Default)]
#[allow(
    clippy::box_collection,
    reason = "a thin pointer: most sessions never hold an inbound QoS 2 identifier"
)]
pub(crate) struct PacketIds(Option<Box<Vec<PacketId>>>);

impl PacketIds {
    /// The identifiers, in order.
    pub(crate) fn ids(&self) -> &[PacketId] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Whether `id` is held.
    pub(crate) fn contains(&self, id: &PacketId) -> bool {
        self.ids().binary_search(id).is_ok()
    }

    /// Identifiers held.
    pub(crate) fn len(&self) -> usize {
        self.ids().len()
    }

    /// Adds `id`; returns whether it was new.
    pub(crate) fn insert(&mut self, id: PacketId) -> bool {
        let ids = self.0.get_or_insert_default();
        match ids.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                ids.insert(at, id);
                true
            }
        }
    }

    /// Removes `id`; returns whether it was held. The buffer goes once none is left.
    pub(crate) fn remove(&mut self, id: &PacketId) -> bool {
        let Some(ids) = self.0.as_mut() else {
            return false;
        };
        let Ok(at) = ids.binary_search(id) else {
            return false;
        };
        ids.remove(at);
        if ids.is_empty() {
            self.0 = None;
        }
        true
    }
}

impl Extend<PacketId> for PacketIds {
    fn extend<T: IntoIterator<Item = PacketId>>(&mut self, ids: T) {
        ids.into_iter().for_each(|id| {
            self.insert(id);
        });
    }
}

/// Why a delivery could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull;

/// The bounded queue of QoS 1/2 deliveries waiting for window or connection. Boxed from its
/// first delivery on (8 bytes in a session that never queued).
#[derive(Debug, Default)]
pub(crate) struct Queue(Option<Box<QueueItems>>);

/// The deliveries of a [`Queue`] and their weight.
#[derive(Debug, Default)]
struct QueueItems {
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
        self.len() < max_messages && self.bytes().saturating_add(delivery.weight()) <= max_bytes
    }

    /// Appends `delivery` unless that would pass `max_messages` or `max_bytes`.
    pub(crate) fn push(
        &mut self,
        delivery: Delivery,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<(), QueueFull> {
        let weight = delivery.weight();
        if self.len() >= max_messages || self.bytes().saturating_add(weight) > max_bytes {
            return Err(QueueFull);
        }
        let queue = self.0.get_or_insert_default();
        queue.bytes += weight;
        queue.items.push_back(delivery);
        Ok(())
    }

    /// The waiting deliveries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Delivery> {
        self.0.iter().flat_map(|queue| queue.items.iter())
    }

    /// The waiting deliveries, oldest first, to change.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Delivery> {
        self.0.iter_mut().flat_map(|queue| queue.items.iter_mut())
    }

    /// Takes the oldest delivery.
    pub(crate) fn pop(&mut self) -> Option<Delivery> {
        let queue = self.0.as_mut()?;
        let delivery = queue.items.pop_front()?;
        queue.bytes = queue.bytes.saturating_sub(delivery.weight());
        Some(delivery)
    }

    /// Takes every delivery, oldest first.
    pub(crate) fn take_all(&mut self) -> Vec<Delivery> {
        match self.0.as_mut() {
            Some(queue) => {
                queue.bytes = 0;
                queue.items.drain(..).collect()
            }
            None => Vec::new(),
        }
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deliveries waiting.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |queue| queue.items.len())
    }

    /// Payload and topic bytes waiting.
    pub(crate) fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |queue| queue.bytes)
    }
}

/// State kept per client identifier.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client identifier, shared with the client id table, the messages it publishes
    /// (their publisher, for No Local) and events.
    pub(crate) client_id: Arc<str>,
    /// The connection it is attached to, if connected.
    pub(crate) conn: Option<ConnectionId>,
    /// Protocol version of the last connection.
    pub(crate) version: ProtocolVersion,
    /// The last connection was a 3.x bridge (the bridge bit): retain-as-published is honoured
    /// for it although 3.1.1 clears RETAIN on forwarded messages otherwise.
    pub(crate) bridge: bool,
    /// Subscriptions by filter text (including any `$share/` prefix), with the parsed filter.
    pub(crate) subscriptions: Subscriptions,
    /// Outbound QoS 1/2 exchanges.
    pub(crate) inflight: Inflight,
    /// Deliveries waiting.
    pub(crate) queue: Queue,
    /// Inbound QoS 2 packet identifiers answered with PUBREC and awaiting PUBREL.
    pub(crate) incoming_qos2: PacketIds,
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
    /// Its durable fields without the will: version, expiry, subscriptions.
    pub(crate) fn record(&self) -> crate::persist::SessionRecord {
        let mut record = crate::persist::SessionRecord::new(self.version, self.expiry_interval);
        record.subscriptions = self
            .subscriptions
            .values()
            .map(|(text, sub)| (text.to_owned(), sub.options, sub.identifier))
            .collect();
        record
    }

    /// A new, empty session.
    pub(crate) fn new(client_id: Arc<str>, version: ProtocolVersion) -> Self {
        Session {
            client_id,
            conn: None,
            version,
            bridge: false,
            subscriptions: Subscriptions::default(),
            inflight: Inflight::default(),
            queue: Queue::default(),
            incoming_qos2: PacketIds::default(),
            expiry_interval: 0,
            will: None,
            route_mark: (0, 0),
            persisted: false,
            next_number: 0,
        }
    }
}

/// A read-only look at one session, for an operator's dump or a page of clients (see
/// [`Broker::sessions`](crate::Broker::sessions)).
#[derive(Clone, Copy)]
pub struct SessionView<'a>(&'a Session, Option<&'a Conn>);

impl<'a> SessionView<'a> {
    /// A view of `session`, with the connection its client is on, if any.
    pub(crate) fn new(session: &'a Session, conn: Option<&'a Conn>) -> Self {
        SessionView(session, conn)
    }

    /// What the caller said about the connection its client is on (peer address, listener,
    /// TLS identity); `None` while it is not connected.
    pub fn connection(&self) -> Option<&'a ConnectionInfo> {
        self.1.map(|c| &c.info)
    }

    /// The keep alive in force on its connection, in seconds (0: none).
    pub fn keep_alive(&self) -> Option<u16> {
        self.1.map(|c| c.keep_alive)
    }

    /// The user name its client connected with.
    pub fn username(&self) -> Option<&'a str> {
        self.1.and_then(|c| c.username.as_deref())
    }

    /// The client identifier.
    pub fn client_id(&self) -> &'a str {
        &self.0.client_id
    }

    /// Whether a client is connected to it.
    pub fn connected(&self) -> bool {
        self.0.conn.is_some()
    }

    /// The protocol version of its last connection.
    pub fn protocol(&self) -> ProtocolVersion {
        self.0.version
    }

    /// Its subscriptions: filter text (with any `$share/` prefix) and the options granted, in
    /// no particular order.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&'a str, SubscriptionOptions)> + 'a {
        self.0
            .subscriptions
            .values()
            .map(|(text, sub)| (text, sub.options))
    }

    /// Messages waiting in its queue.
    pub fn queued(&self) -> usize {
        self.0.queue.len()
    }

    /// QoS 1/2 messages sent to it and not yet acknowledged.
    pub fn inflight(&self) -> usize {
        self.0.inflight.len()
    }
}

impl std::fmt::Debug for SessionView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionView")
            .field("client_id", &self.client_id())
            .field("connected", &self.connected())
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;
    use mqtt_wire::{MqttStr, QoS};
    use std::sync::Arc;

    #[test]
    fn a_client_identifier_names_its_newest_session_only_while_it_exists() {
        let mut sessions = Sessions::default();
        let first = sessions.create("dev", ProtocolVersion::V5);
        assert_eq!(sessions.find("dev"), Some(first));
        // A restored session of the same identifier takes the name over.
        let second = sessions.reserve_id();
        sessions.insert(second, Session::new(Arc::from("dev"), ProtocolVersion::V5));
        assert_ne!(first, second);
        assert_eq!(sessions.find("dev"), Some(second));
        // Discarding the older one leaves the name with the newer one.
        assert!(sessions.remove(&first).is_some());
        assert_eq!(sessions.find("dev"), Some(second));
        assert!(sessions.remove(&second).is_some());
        assert_eq!((sessions.find("dev"), sessions.len()), (None, 0));
        assert!(sessions.remove(&second).is_none());
    }

    #[test]
    fn assigned_client_identifiers_are_unused_ones() {
        let mut sessions = Sessions::default();
        sessions.create("auto-1", ProtocolVersion::V5);
        assert_eq!(
            sessions.assign_client_id("auto-"),
            "auto-2",
            "[MQTT-3.1.3-6]"
        );
        assert_eq!(sessions.assign_client_id("auto-"), "auto-3");
    }

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

    fn subscription(identifier: u32) -> Subscription {
        Subscription {
            options: SubscriptionOptions::default(),
            identifier: Some(identifier),
        }
    }

    #[test]
    fn subscriptions_are_found_replaced_and_removed_by_their_text() {
        let mut subs = Subscriptions::default();
        for (text, id) in [("a/b", 1), ("$share/g/a/b", 2), ("$share/h/a/b", 3)] {
            assert!(subs.insert(text, subscription(id)).is_none());
        }
        assert!(subs.contains_key("$share/g/a/b") && !subs.contains_key("$share/g/a"));
        assert!(!subs.contains_key("g/a/b") && !subs.contains_key("$share/ga/b"));
        let replaced = subs.insert("a/b", subscription(4));
        assert_eq!(replaced.map(|s| s.identifier), Some(Some(1)));
        assert_eq!(subs.len(), 3);
        let removed = subs.remove("$share/g/a/b").map(|s| s.identifier);
        assert_eq!(removed, Some(Some(2)));
        assert!(subs.remove("$share/g/a/b").is_none());
        let mut texts: Vec<&str> = subs.values().map(|(text, _)| text).collect();
        texts.sort();
        assert_eq!(texts, ["$share/h/a/b", "a/b"]);
    }

    #[test]
    fn a_single_subscription_is_held_inline() {
        let mut subs = Subscriptions::default();
        subs.insert("a", subscription(1));
        assert!(matches!(subs.0, Entries::One(_)));
        subs.insert("b", subscription(2));
        assert!(matches!(subs.0, Entries::Many { .. }));
        assert_eq!(subs.remove("a").map(|s| s.identifier), Some(Some(1)));
        assert!(matches!(subs.0, Entries::One(_)), "back inline");
        assert!(subs.contains_key("b") && !subs.contains_key("a"));
        assert!(subs.remove("a").is_none());
        assert_eq!(subs.remove("b").map(|s| s.identifier), Some(Some(2)));
        assert!(matches!(subs.0, Entries::Empty) && subs.len() == 0);
    }

    #[test]
    fn many_subscriptions_are_indexed_and_stay_consistent() {
        let mut subs = Subscriptions::default();
        let texts: Vec<String> = (0..100).map(|i| format!("t/{i}")).collect();
        for (i, text) in texts.iter().enumerate() {
            subs.insert(text, subscription(i as u32));
        }
        assert!(matches!(&subs.0, Entries::Many { index: Some(_), .. }));
        for text in texts.iter().step_by(3) {
            assert!(subs.remove(text).is_some(), "{text}");
        }
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(subs.contains_key(text), i % 3 != 0, "{text}");
        }
        for (text, sub) in subs.values() {
            assert_eq!(text, format!("t/{}", sub.identifier.unwrap()));
        }
    }

    /// One session per client, connected or not: it stays within jemalloc's 192-byte size class
    /// (a will inline and a hash set of QoS 2 identifiers made it 320; the queue and the QoS 2
    /// identifiers inline, 224).
    #[test]
    fn a_session_fits_in_192_bytes() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 192, "Session is {size} bytes");
    }

    #[test]
    fn packet_ids_stay_sorted_and_unique() {
        let id = |n| PacketId::new(n).unwrap();
        let mut ids = PacketIds::default();
        ids.extend([id(5), id(1), id(3)]);
        assert!(!ids.insert(id(3)), "already held");
        assert!(ids.insert(id(2)));
        assert_eq!(ids.ids(), [id(1), id(2), id(3), id(5)]);
        assert!(ids.contains(&id(5)) && !ids.contains(&id(4)));
        assert!(ids.remove(&id(1)) && !ids.remove(&id(1)));
        assert_eq!(ids.len(), 3);
        for n in [2, 3, 5] {
            assert!(ids.remove(&id(n)));
        }
        assert!(ids.0.is_none(), "an empty set holds no buffer");
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
