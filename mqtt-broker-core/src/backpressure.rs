//! Backpressure from full QoS 1/2 session queues to the publishers filling them.
//!
//! A connected session whose queue passes half of its bounds (`max_queued_messages`,
//! `max_queued_bytes`) pauses the connection whose PUBLISH is being routed to it
//! ([`Output::PauseReading`]); once every session a publisher waits for is back under a quarter
//! of its bounds (or offline, or gone), the publisher resumes ([`Output::ResumeReading`]).
//! The pause takes effect at once: packets of a paused publisher already handed over stay in its
//! read buffer, undecoded and unacknowledged, until it resumes (the adapter's read gate bounds
//! them to about one read). So a queue overshoots its high-water mark by at most one message per
//! publisher, and acknowledged messages are not dropped.
//!
//! A pause lasts at most `Config::max_publisher_pause`: then the publisher resumes and the
//! sessions it waited for are marked overflowing, which means the old policy (drop and count
//! when full) until they drain under the low-water mark. A subscriber that never reads thus
//! stalls its publishers once, for a bounded time, and memory stays bounded throughout. Offline
//! sessions and a publisher's own session never pause anyone.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::broker::{Broker, TimerKey};
use crate::conn::ConnectionId;
use crate::output::Output;
use crate::session::{Queue, SessionId};

/// Publishers paused on behalf of session queues.
#[derive(Debug, Default)]
pub(crate) struct Backpressure {
    /// The connection whose PUBLISH is being routed, if any.
    pub(crate) publisher: Option<ConnectionId>,
    /// Paused publishers, each with the sessions it waits for.
    paused: HashMap<ConnectionId, Vec<SessionId>>,
    /// Sessions whose publishers already waited the maximum pause: they pause nobody until
    /// their queue drains under the low-water mark.
    overflowing: HashSet<SessionId>,
    /// Resumed publishers whose buffered packets are still to be handled.
    resumed: Vec<ConnectionId>,
}

/// Whether `queue` is at or above half of either bound.
fn above_high_water(queue: &Queue, max_messages: usize, max_bytes: usize) -> bool {
    queue.len() >= max_messages.div_ceil(2) || queue.bytes() >= max_bytes.div_ceil(2)
}

/// Whether `queue` is under a quarter of both bounds.
fn below_low_water(queue: &Queue, max_messages: usize, max_bytes: usize) -> bool {
    queue.len() <= max_messages / 4 && queue.bytes() <= max_bytes / 4
}

impl Broker {
    /// Whether `conn` is paused: its buffered packets wait.
    pub(crate) fn is_paused(&self, conn: ConnectionId) -> bool {
        !self.backpressure.paused.is_empty() && self.backpressure.paused.contains_key(&conn)
    }

    /// Handles the packets that resumed publishers sent before they were paused.
    pub(crate) fn read_resumed(&mut self, now: Instant) {
        while let Some(conn) = self.backpressure.resumed.pop() {
            self.read_packets(conn, now);
        }
    }

    /// A QoS 1/2 delivery is about to be queued for `session`: pauses the publisher being
    /// routed when the queue is above its high-water mark.
    pub(crate) fn queue_pressure(&mut self, session: SessionId, now: Instant) {
        let pause = self.config.max_publisher_pause;
        let (max_messages, max_bytes) = (
            self.config.max_queued_messages,
            self.config.max_queued_bytes,
        );
        let Some(publisher) = self.backpressure.publisher else {
            return;
        };
        if pause.is_zero() {
            return;
        }
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        if s.conn.is_none() || s.conn == Some(publisher) {
            return; // an offline session cannot drain; a publisher must read its own acks
        }
        if self.backpressure.overflowing.contains(&session) {
            if below_low_water(&s.queue, max_messages, max_bytes) {
                self.backpressure.overflowing.remove(&session);
            }
            return;
        }
        if !above_high_water(&s.queue, max_messages, max_bytes) {
            return;
        }
        match self.backpressure.paused.get_mut(&publisher) {
            Some(waiting) => {
                if !waiting.contains(&session) {
                    waiting.push(session);
                }
            }
            None => {
                self.backpressure.paused.insert(publisher, vec![session]);
                self.stats.publishers_paused += 1;
                self.timers
                    .set_after(TimerKey::PublisherPause(publisher), now, pause);
                self.outputs
                    .push_back(Output::PauseReading { conn: publisher });
            }
        }
    }

    /// `session`'s queue shrank: resumes the publishers that waited only for it once it is
    /// under its low-water mark (or offline).
    pub(crate) fn queue_drained(&mut self, session: SessionId, now: Instant) {
        if self.backpressure.paused.is_empty() && self.backpressure.overflowing.is_empty() {
            return;
        }
        let (max_messages, max_bytes) = (
            self.config.max_queued_messages,
            self.config.max_queued_bytes,
        );
        let drained = self
            .sessions
            .get(&session)
            .is_none_or(|s| s.conn.is_none() || below_low_water(&s.queue, max_messages, max_bytes));
        if drained {
            self.backpressure.overflowing.remove(&session);
            self.release_session(session, now);
        }
    }

    /// Stops pausing anyone for `session`: resumes publishers that waited only for it.
    fn release_session(&mut self, session: SessionId, now: Instant) {
        let mut resumed = Vec::new();
        for (publisher, waiting) in &mut self.backpressure.paused {
            waiting.retain(|s| *s != session);
            if waiting.is_empty() {
                resumed.push(*publisher);
            }
        }
        resumed.sort();
        for publisher in resumed {
            self.backpressure.paused.remove(&publisher);
            self.resume(publisher, now);
        }
    }

    /// Lets `publisher` read again. The time it spent paused does not count against its keep
    /// alive: it could not be read from.
    fn resume(&mut self, publisher: ConnectionId, now: Instant) {
        self.timers.cancel(TimerKey::PublisherPause(publisher));
        if let Some(c) = self.conns.get_mut(&publisher) {
            c.last_packet = now;
            self.backpressure.resumed.push(publisher);
        }
        self.outputs
            .push_back(Output::ResumeReading { conn: publisher });
    }

    /// `publisher` waited `max_publisher_pause`: it resumes, and the sessions it waited for
    /// fall back to dropping when full until they drain.
    pub(crate) fn pause_expired(&mut self, publisher: ConnectionId, now: Instant) {
        let Some(waiting) = self.backpressure.paused.remove(&publisher) else {
            return;
        };
        self.stats.publisher_pauses_expired += 1;
        self.backpressure.overflowing.extend(waiting);
        self.resume(publisher, now);
    }

    /// `conn` closed: it no longer waits, and nobody waits for the session it carried.
    pub(crate) fn backpressure_closed(
        &mut self,
        conn: ConnectionId,
        session: Option<SessionId>,
        now: Instant,
    ) {
        if self.backpressure.paused.remove(&conn).is_some() {
            self.timers.cancel(TimerKey::PublisherPause(conn));
        }
        if let Some(session) = session {
            self.backpressure.overflowing.remove(&session);
            self.release_session(session, now);
        }
    }
}
