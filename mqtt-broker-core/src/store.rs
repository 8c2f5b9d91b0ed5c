//! Where retained messages and persistent session records live: the [`Store`] trait and
//! [`MemoryStore`], its in-memory implementation.
//!
//! The broker is the only writer. Retained messages are read from the store when a subscription
//! asks for them, so the store is their single home. Session records are written through
//! (subscriptions and expiry, whenever they change) so a durable store can restore them at start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use mqtt_topic::{RetainedTree, TopicFilter, TopicName};
use mqtt_wire::{ProtocolVersion, SubscriptionOptions};

use crate::message::Message;

/// A will kept with a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillRecord {
    /// Topic, payload, QoS, RETAIN and properties of the will (its `received_at` is the time the
    /// record was made; `publisher` is unset; `retain_source` is its client when it is
    /// retained).
    pub message: Message,
    /// Will Delay Interval in seconds.
    pub delay_interval: u32,
}

/// The durable part of a session: enough to restore its subscriptions after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRecord {
    /// Protocol version of the client's last connection.
    pub version: ProtocolVersion,
    /// Session Expiry Interval in seconds (`u32::MAX` = never).
    pub expiry_interval: u32,
    /// Subscriptions: filter text (with any `$share/` prefix), options, identifier.
    pub subscriptions: Vec<(String, SubscriptionOptions, Option<u32>)>,
    /// The will waiting for the connection (or the session) to end.
    pub will: Option<WillRecord>,
    /// When its client disconnected (broker time); `None` while connected.
    pub disconnected_at: Option<Instant>,
}

impl SessionRecord {
    /// A record without subscriptions or will.
    pub fn new(version: ProtocolVersion, expiry_interval: u32) -> Self {
        SessionRecord {
            version,
            expiry_interval,
            subscriptions: Vec::new(),
            will: None,
            disconnected_at: None,
        }
    }
}

/// Storage for retained messages and session records. Calls must not block: a durable store
/// buffers its writes.
pub trait Store: Send {
    /// Sets the retained message of `topic`, replacing any [MQTT-3.3.1-5].
    fn set_retained(&mut self, topic: TopicName, message: Arc<Message>);
    /// Clears the retained message of `topic`; returns whether there was one [MQTT5-3.3.1-6].
    fn remove_retained(&mut self, topic: &TopicName) -> bool;
    /// Calls `visit` with every retained message whose topic matches `filter`.
    fn for_each_retained(&self, filter: &TopicFilter, visit: &mut dyn FnMut(&Arc<Message>));
    /// The retained message of `topic`, if any.
    fn get_retained(&self, topic: &TopicName) -> Option<Arc<Message>>;
    /// Number of retained messages.
    fn retained_len(&self) -> usize;
    /// Topic and payload bytes of the retained messages.
    fn retained_bytes(&self) -> usize;
    /// Records (or replaces) the session of `client_id`.
    fn save_session(&mut self, client_id: &str, record: &SessionRecord);
    /// Forgets the session of `client_id`.
    fn remove_session(&mut self, client_id: &str);
    /// Every recorded session, read once when the store is given to the broker.
    fn load_sessions(&mut self) -> Vec<(String, SessionRecord)>;
}

/// Keeps everything in memory; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    retained: RetainedTree<Arc<Message>>,
    retained_bytes: usize,
    sessions: HashMap<String, SessionRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl Store for MemoryStore {
    fn set_retained(&mut self, topic: TopicName, message: Arc<Message>) {
        self.retained_bytes += message.weight();
        if let Some(old) = self.retained.insert(topic, message) {
            self.retained_bytes = self.retained_bytes.saturating_sub(old.weight());
        }
    }

    fn remove_retained(&mut self, topic: &TopicName) -> bool {
        let Some(old) = self.retained.remove(topic) else {
            return false;
        };
        self.retained_bytes = self.retained_bytes.saturating_sub(old.weight());
        true
    }

    fn get_retained(&self, topic: &TopicName) -> Option<Arc<Message>> {
        self.retained.get(topic).cloned()
    }

    fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }

    fn for_each_retained(&self, filter: &TopicFilter, visit: &mut dyn FnMut(&Arc<Message>)) {
        self.retained
            .for_each_match(filter, |_, message| visit(message));
    }

    fn retained_len(&self) -> usize {
        self.retained.len()
    }

    fn save_session(&mut self, client_id: &str, record: &SessionRecord) {
        self.sessions.insert(client_id.to_owned(), record.clone());
    }

    fn remove_session(&mut self, client_id: &str) {
        self.sessions.remove(client_id);
    }

    fn load_sessions(&mut self) -> Vec<(String, SessionRecord)> {
        self.sessions
            .iter()
            .map(|(id, record)| (id.clone(), record.clone()))
            .collect()
    }
}
