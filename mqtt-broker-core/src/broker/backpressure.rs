//! Backpressure from full subscribers to the publishers filling them.
//!
//! A connected subscriber is *full* when its QoS 1/2 queue passes half of its bounds
//! (`max_queued_messages`, `max_queued_bytes`) or its connection's outbox (bytes handed out and
//! not yet flushed, where QoS 0 goes) passes half of `max_outbox_bytes`. The connection whose
//! PUBLISH is being routed to a full subscriber is paused ([`Output::PauseReading`]); once every
//! subscriber a publisher waits for is *drained* (queue under a quarter of its bounds and outbox
//! under a quarter of its bound, or offline, or gone), the publisher resumes
//! ([`Output::ResumeReading`]). So a subscriber that reads slower than its publishers send keeps
//! them in step instead of dropping their QoS 0 messages or overflowing its queue.
//! The pause takes effect at once: packets of a paused publisher already handed over stay
//! undecoded and unacknowledged until it resumes (the adapter's read gate bounds them to about one
//! read): in its read buffer, or, for the frames of a read being decoded when the pause came, kept
//! here as its *unread* frames, which are decoded first on resumption, so order is kept. So a queue or outbox overshoots its high-water mark by at most one
//! message per publisher, and acknowledged messages are not dropped.
//!
//! A pause lasts at most `Config::max_publisher_pause`: then the publisher resumes and the
//! subscribers it waited for are marked overflowing, which means the old policy (QoS 0 dropped
//! when the outbox is full, QoS 1/2 dropped when the queue is full, counted) until they drain.
//! A subscriber that never reads thus stalls its publishers once, for a bounded time, and memory
//! stays bounded throughout. A full subscriber whose connection has taken nothing (no flush, its
//! outbox not newly in use) for `max_publisher_pause` is treated the same way at once, so several
//! stuck subscribers cost one pause, not one each. Offline sessions and a publisher's own session
//! never pause anyone.
//!
//! The time a full session was waited for, and its overflowing mark, outlive its connection
//! until it drains: a subscriber whose connection breaks and comes back while still full (a
//! device on bad Wi-Fi) is waited for at most `max_publisher_pause` over all its connections,
//! not once per connection. (A disconnect still resumes the publishers waiting for it at once.)
//!
//! A session marked overflowing releases at once every publisher that waited for it (not only
//! the one whose pause expired), is passed over by its shared groups while another member can
//! take their messages, and hands the queued copies of its shared subscriptions to those members.
//! Its drops are counted one by one (`Stats::messages_dropped`,
//! `$SYS/broker/publish/messages/dropped`) but reported per *episode*: [`Event::DropsStarted`]
//! at the first drop, [`Event::DropsEnded`]
//! with the count once it has drained (or its session ended), so a log shows one line per stuck
//! subscriber, not one per message.

use std::time::Instant;

use crate::broker::Broker;
use crate::ids::ConnectionId;
use crate::ids::SessionId;
use crate::output::{DropReason, Event, Output};
use crate::session::Queue;
use crate::timer::TimerKey;

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

    /// A QoS 1/2 delivery is about to be queued for `session`: pauses `publisher`, whose
    /// message is being routed, when the queue is above its high-water mark.
    pub(crate) fn queue_pressure(
        &mut self,
        session: SessionId,
        publisher: Option<ConnectionId>,
        now: Instant,
    ) {
        let Some(publisher) = publisher else {
            return;
        };
        let (max_messages, max_bytes) = (
            self.config.max_queued_messages,
            self.config.max_queued_bytes,
        );
        let full = self
            .sessions
            .get(&session)
            .is_some_and(|s| above_high_water(&s.queue, max_messages, max_bytes));
        self.pressure(session, publisher, full, now);
    }

    /// A QoS 0 delivery is about to be sent to `session` on `conn`: pauses `publisher`, whose
    /// message is being routed, when that outbox is above half of its bound.
    pub(crate) fn outbox_pressure(
        &mut self,
        session: SessionId,
        conn: ConnectionId,
        publisher: Option<ConnectionId>,
        now: Instant,
    ) {
        let Some(publisher) = publisher else {
            return;
        };
        let high_water = self.config.max_outbox_bytes.div_ceil(2);
        let full = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.outbox >= high_water);
        self.pressure(session, publisher, full, now);
    }

    /// Pauses `publisher` for `session` when `full`, unless the session is offline, is the
    /// publisher's own, or already made a publisher wait the maximum and has not drained since.
    fn pressure(&mut self, session: SessionId, publisher: ConnectionId, full: bool, now: Instant) {
        let pause = self.config.max_publisher_pause;
        if pause.is_zero() {
            return;
        }
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        if s.conn.is_none() || s.conn == Some(publisher) {
            return; // an offline session cannot drain; a publisher must read its own acks
        }
        if self.backpressure.is_overflowing(session) {
            if self.drained(session) {
                self.session_caught_up(session);
            }
            return;
        }
        if !full {
            return;
        }
        let since = self.waited_since(session, now);
        if self.stalled(session, now) || now.saturating_duration_since(since) >= pause {
            // Already took nothing for the longest pause (a reader that stopped, not a slow
            // one), or was waited for that long over its connections: waiting for it would
            // only hold the publisher up once more.
            self.mark_overflowing(vec![session], now);
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
                // What the session was waited for already counts.
                self.timers
                    .set(TimerKey::PublisherPause(publisher), since + pause);
                self.out.push(Output::PauseReading { conn: publisher });
            }
        }
    }

    /// When the wait for the full `session` began: the remembered start, unless it is more than
    /// two pauses old (no pause for it can still be on, and a connection that broke that long
    /// ago is not one a device is bouncing on), else now.
    fn waited_since(&mut self, session: SessionId, now: Instant) -> Instant {
        let stale_after = self.config.max_publisher_pause.saturating_mul(2);
        let since = self.backpressure.waited_since.entry(session).or_insert(now);
        if now.saturating_duration_since(*since) > stale_after {
            *since = now;
        }
        *since
    }

    /// Whether `session`'s connection (full, so with work waiting) has taken nothing for
    /// `max_publisher_pause` or longer.
    fn stalled(&self, session: SessionId, now: Instant) -> bool {
        let conn = self.sessions.get(&session).and_then(|s| s.conn);
        conn.and_then(|conn| self.conns.get(&conn))
            .is_some_and(|c| {
                now.saturating_duration_since(c.last_progress) >= self.config.max_publisher_pause
            })
    }

    /// Whether `session` is connected and under both low-water marks (queue and outbox), or
    /// gone. An offline session has not drained: it cannot.
    fn drained(&self, session: SessionId) -> bool {
        let Some(s) = self.sessions.get(&session) else {
            return true;
        };
        let Some(conn) = s.conn else {
            return false;
        };
        let outbox = self.conns.get(&conn).map_or(0, |c| c.outbox);
        outbox <= self.config.max_outbox_bytes / 4
            && below_low_water(
                &s.queue,
                self.config.max_queued_messages,
                self.config.max_queued_bytes,
            )
    }

    /// Marks `sessions` overflowing: every publisher that waited only for them resumes now, and
    /// the queued copies of their shared subscriptions go to other members of the groups.
    fn mark_overflowing(&mut self, sessions: Vec<SessionId>, now: Instant) {
        for &session in &sessions {
            self.backpressure.overflowing.insert(session);
        }
        for session in sessions {
            self.release_session(session, now);
            self.redistribute_shared(session, None, now);
        }
    }

    /// `session`'s queue or outbox shrank: resumes the publishers that waited only for it once
    /// it is drained, and ends its drop episode.
    pub(crate) fn session_drained(&mut self, session: SessionId, now: Instant) {
        if self.backpressure.paused.is_empty()
            && self.backpressure.overflowing.is_empty()
            && self.backpressure.dropping.is_empty()
            && self.backpressure.waited_since.is_empty()
        {
            return;
        }
        if self.drained(session) {
            self.release_session(session, now);
            self.session_caught_up(session);
        }
    }

    /// `session` drained: it is no longer overflowing, no wait for it is remembered, and its
    /// drop episode ends.
    fn session_caught_up(&mut self, session: SessionId) {
        self.backpressure.overflowing.remove(&session);
        self.backpressure.waited_since.remove(&session);
        self.end_drop_episode(session);
    }

    /// Counts one message dropped for `session`; the first of an episode is reported.
    pub(crate) fn count_drop(&mut self, session: SessionId, reason: DropReason) {
        self.stats.messages_dropped += 1;
        self.stats.dropped_by_reason[reason.index()] += 1;
        if let Some(dropped) = self.backpressure.dropping.get_mut(&session) {
            *dropped += 1;
            return;
        }
        self.backpressure.dropping.insert(session, 1);
        self.stats.drop_episodes += 1;
        if let Some(s) = self.sessions.get(&session) {
            let client_id = s.client_id.clone();
            self.event(Event::DropsStarted { client_id, reason });
        }
    }

    /// Ends `session`'s drop episode, if any, once it is connected and drained (an offline
    /// session's episode lasts until it is back and has caught up), or gone.
    fn end_drop_episode(&mut self, session: SessionId) {
        if self.backpressure.dropping.is_empty()
            || self
                .sessions
                .get(&session)
                .is_some_and(|s| s.conn.is_none())
        {
            return;
        }
        self.close_drop_episode(session);
    }

    /// Ends `session`'s drop episode, if any, reporting it while the session still exists.
    fn close_drop_episode(&mut self, session: SessionId) {
        if let Some(dropped) = self.backpressure.dropping.remove(&session)
            && let Some(s) = self.sessions.get(&session)
        {
            let client_id = s.client_id.clone();
            self.event(Event::DropsEnded { client_id, dropped });
        }
    }

    /// `session` is ending: its marks go, and its drop episode ends with it.
    pub(crate) fn backpressure_session_ended(&mut self, session: SessionId) {
        self.backpressure.overflowing.remove(&session);
        self.backpressure.waited_since.remove(&session);
        self.close_drop_episode(session);
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
        self.out.push(Output::ResumeReading { conn: publisher });
    }

    /// `publisher` waited `max_publisher_pause`: it resumes, and the sessions it waited for
    /// fall back to dropping when full (queue or outbox) until they drain.
    pub(crate) fn pause_expired(&mut self, publisher: ConnectionId, now: Instant) {
        let Some(waiting) = self.backpressure.paused.remove(&publisher) else {
            return;
        };
        self.stats.publisher_pauses_expired += 1;
        self.resume(publisher, now);
        self.mark_overflowing(waiting, now);
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
        self.backpressure.take_unread(conn);
        if let Some(session) = session {
            // Nobody waits for an offline session; whether it was overflowing, or how long it
            // was waited for, is kept for its next connection until it drains.
            self.release_session(session, now);
        }
    }
}
