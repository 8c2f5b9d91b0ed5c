//! The global memory bound (`Config::memory_limit`, mosquitto's option of that name): bytes of
//! messages the broker holds for delivery, counted as they come and go, and the refusal of new
//! PUBLISH packets while the count is at the limit.
//!
//! Counted: every copy of a message waiting in a session queue (its topic and payload bytes,
//! as `max_queued_bytes` counts them) and every byte handed out for a connection and not yet
//! reported flushed (its outbox). A message queued for several sessions counts once per copy,
//! so the count is an upper bound of what they hold (their payload is shared). The per-session
//! bounds (`max_queued_messages`, `max_queued_bytes`, `max_outbox_bytes`) still apply; the
//! limit bounds their sum over many sessions.
//!
//! At the limit a PUBLISH is refused before it is routed: a v5 client gets PUBACK / PUBREC
//! 0x97 (Quota exceeded) for QoS 1 / 2; a QoS 0 message is dropped; a 3.1/3.1.1 client, which
//! cannot be told, is disconnected rather than acknowledged for a message that was dropped
//! [MQTT311-3.3.5-2]. Publishing is accepted again once subscribers have taken enough.

/// Bytes held for delivery, all sessions and connections together.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MemoryUse {
    /// Topic and payload bytes of the deliveries in session queues.
    queued: usize,
    /// Deliveries in session queues.
    messages: usize,
}

impl MemoryUse {
    /// Bytes counted against `Config::memory_limit`, with `unflushed` bytes handed out for
    /// connections and not yet flushed (the outbox counts those).
    pub(crate) fn used(self, unflushed: usize) -> usize {
        self.queued.saturating_add(unflushed)
    }

    /// A delivery of `weight` bytes was queued.
    pub(crate) fn queued(&mut self, weight: usize) {
        self.added(1, weight);
    }

    /// `messages` deliveries of `bytes` in all were queued.
    pub(crate) fn added(&mut self, messages: usize, bytes: usize) {
        self.messages = self.messages.saturating_add(messages);
        self.queued = self.queued.saturating_add(bytes);
    }

    /// `messages` deliveries of `bytes` in all left session queues.
    pub(crate) fn removed(&mut self, messages: usize, bytes: usize) {
        self.messages = self.messages.saturating_sub(messages);
        self.queued = self.queued.saturating_sub(bytes);
    }

    /// Deliveries in session queues, and their topic and payload bytes.
    pub(crate) fn in_queues(self) -> (usize, usize) {
        (self.messages, self.queued)
    }

    /// Whether `limit` bytes or more are held for delivery, with `unflushed` bytes in the
    /// outbox (never when `limit` is 0, which means none).
    pub(crate) fn at_limit(self, limit: usize, unflushed: usize) -> bool {
        limit != 0 && self.used(unflushed) >= limit
    }

    /// A delivery of `weight` bytes left its queue.
    pub(crate) fn unqueued(&mut self, weight: usize) {
        self.removed(1, weight);
    }
}
