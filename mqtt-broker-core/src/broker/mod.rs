//! The [`Broker`]: owns every connection and session, takes inputs (`handle_*`, each with `now`)
//! and queues outputs for [`Broker::poll_output`]. Packet handling lives in the sibling modules
//! (`dispatch`, `connect`, `auth`, `publish`, `fanout`, `delivery`, `subscribe`, `lifecycle`,
//! `sys`); this file holds the state and the input/output surface.

mod auth;
mod backpressure;
mod connect;
mod delivery;
mod dispatch;
mod durability;
mod fanout;
mod lifecycle;
mod publish;
mod subscribe;
mod sys;
mod writer;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mqtt_topic::TopicLimits;
use mqtt_wire::ReasonCode;

use crate::backpressure::Backpressure;
use crate::config::Config;
use crate::conn::{Conn, Phase};
use crate::error::{ApiMisuse, ConfigError, ProtocolViolation};
use crate::hooks::{AllowAll, Authenticator, Authorizer, EnhancedAuthenticator, NoEnhancedAuth};
use crate::idmap::IdMap;
use crate::ids::SessionId;
use crate::ids::{ConnectionId, ConnectionInfo, ListenerId};
use crate::memory::MemoryUse;
use crate::message::Origin;
use crate::message::{Delivery, Message};
use crate::outbox::Outbox;
use crate::output::{Event, Output};
use crate::retained::Retained;
use crate::router::{InterestChange, Router, Scope};
use crate::session::{SessionView, Sessions};
use crate::stats::{Stats, SysLoad};
use crate::tap::Tap;
use crate::timer::{Due, TimerKey, Timers};

/// A sans-IO MQTT broker. See the [crate documentation](crate) for the driving loop.
pub struct Broker {
    config: Config,
    topic_limits: TopicLimits,
    authenticator: Box<dyn Authenticator>,
    authorizer: Box<dyn Authorizer>,
    enhanced_auth: Box<dyn EnhancedAuthenticator>,
    retained: Retained,
    /// Boxed, like `sessions`: the tables then hold pointers, so their spare capacity costs
    /// 16 bytes a slot instead of a whole connection (idle memory per client).
    conns: IdMap<ConnectionId, Box<Conn>>,
    sessions: Sessions,
    router: Router,
    /// The copies of the message being routed; empty between inputs (kept for its capacity).
    deliveries: Vec<(SessionId, Delivery)>,
    /// Keyed timers, the one deadline of each connection (stamps kept in `Conn`), the start.
    timers: Timers,
    stats: Stats,
    /// The `$SYS/broker/load/...` averages.
    sys_load: SysLoad,
    /// Number of the message being routed (see `Session::route_mark`).
    route_seq: u64,
    /// The read buffer of whichever connection has no partial packet waiting: a read is
    /// appended to it, its whole frames are split off and handled, and the emptied rest comes
    /// back here (`spare_read_buffer`). Idle connections then hold no read buffer, and reads
    /// reuse one allocation once the frames that shared it are dropped.
    read_spare: BytesMut,
    /// The outputs, their encoding buffer and the durability gate.
    out: Outbox,
    /// Publishers paused for full subscriber queues.
    backpressure: Backpressure,
    /// Bytes held for delivery, checked against `Config::memory_limit`.
    memory: MemoryUse,
    /// The sample of routed messages handed out for viewers.
    tap: Tap,
    /// With `Config::cluster`: whether the backplane reaches the other nodes (see
    /// [`Broker::set_cluster_link`]).
    cluster_link: bool,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("connections", &self.conns.len())
            .field("sessions", &self.sessions.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker with `config`, accepting every client, authorizing everything, refusing enhanced
    /// authentication, with nothing restored. `config` is taken as is; [`Broker::try_new`]
    /// checks it first.
    pub fn new(config: Config) -> Broker {
        let topic_limits = TopicLimits {
            max_len: usize::from(u16::MAX),
            max_levels: config.max_topic_levels,
        };
        let router = Router::new(config.cluster);
        let out = Outbox::new(config.persistence);
        Broker {
            config,
            topic_limits,
            authenticator: Box::new(AllowAll),
            authorizer: Box::new(AllowAll),
            enhanced_auth: Box::new(NoEnhancedAuth),
            retained: Retained::default(),
            conns: IdMap::default(),
            sessions: Sessions::default(),
            router,
            deliveries: Vec::new(),
            timers: Timers::default(),
            stats: Stats::default(),
            sys_load: SysLoad::default(),
            route_seq: 0,
            read_spare: BytesMut::new(),
            out,
            backpressure: Backpressure::default(),
            memory: MemoryUse::default(),
            tap: Tap::default(),
            cluster_link: true,
        }
    }

    /// Like [`Broker::new`], after checking `config` with [`Config::validate`].
    pub fn try_new(config: Config) -> Result<Broker, ConfigError> {
        config.validate()?;
        Ok(Broker::new(config))
    }

    /// Replaces the authenticator.
    pub fn with_authenticator(mut self, authenticator: Box<dyn Authenticator>) -> Self {
        self.authenticator = authenticator;
        self
    }

    /// Replaces the authorizer.
    pub fn with_authorizer(mut self, authorizer: Box<dyn Authorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// Replaces the v5 enhanced authenticator.
    pub fn with_enhanced_authenticator(mut self, auth: Box<dyn EnhancedAuthenticator>) -> Self {
        self.enhanced_auth = auth;
        self
    }

    /// The counters, as of now. Every figure is kept as it changes: a snapshot costs a copy,
    /// not a walk over the sessions or connections, so it may be taken as often as a metrics
    /// scrape or a web page asks.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats.clone();
        let (messages, bytes) = self.memory.in_queues();
        (stats.messages_queued, stats.bytes_queued) = (messages as u64, bytes as u64);
        stats.bytes_unflushed = self.out.unflushed() as u64;
        // Kept as they change, so a snapshot costs no walk over the sessions; debug builds
        // (every test) check the counts against one.
        debug_assert_eq!(
            (messages, bytes),
            self.sessions
                .values()
                .fold((0, 0), |(m, b), s| (m + s.queue.len(), b + s.queue.bytes())),
            "queue counts drifted"
        );
        debug_assert_eq!(
            stats.bytes_unflushed,
            self.conns.values().map(|c| c.outbox as u64).sum::<u64>(),
            "outbox count drifted"
        );
        debug_assert_eq!(
            (
                stats.clients_by_protocol.iter().sum::<u64>(),
                stats.messages_received_by_qos.iter().sum::<u64>(),
                stats.messages_sent_by_qos.iter().sum::<u64>(),
                stats.dropped_by_reason.iter().sum::<u64>(),
            ),
            (
                stats.clients_connected,
                stats.messages_received,
                stats.messages_sent,
                stats.messages_dropped
            ),
            "a breakdown drifted from its total"
        );
        stats.memory_used = self.memory.used(self.out.unflushed()) as u64;
        (stats.bytes_sent, stats.packets_sent) = self.out.sent();
        stats.retained_messages = self.retained.len() as u64;
        stats
    }

    /// Every session, connected or not, in no particular order: a walk over all of them, for
    /// an operator's dump or a page of clients, not for every message.
    ///
    /// ```
    /// use mqtt_broker_core::{Broker, Config, ConnectionId, ConnectionInfo};
    /// # let now = std::time::Instant::now();
    /// let mut broker = Broker::new(Config::default());
    /// broker.handle_open(ConnectionId(1), ConnectionInfo::default(), now)?;
    /// // CONNECT "c", then SUBSCRIBE to "t" (MQTT 3.1.1).
    /// broker.handle_bytes(ConnectionId(1), b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c", now)?;
    /// broker.handle_bytes(ConnectionId(1), b"\x82\x06\x00\x01\x00\x01t\x01", now)?;
    /// let session = broker.sessions().next().expect("one session");
    /// assert_eq!((session.client_id(), session.connected()), ("c", true));
    /// assert_eq!(session.subscriptions().map(|(f, _)| f).collect::<Vec<_>>(), ["t"]);
    /// # Ok::<(), mqtt_broker_core::ApiMisuse>(())
    /// ```
    pub fn sessions(&self) -> impl Iterator<Item = SessionView<'_>> {
        self.sessions
            .values()
            .map(|s| SessionView::new(s, s.conn.and_then(|c| self.conns.get(&c)).map(|c| &**c)))
    }

    /// QoS 1/2 messages sent and not yet acknowledged, all sessions together: a walk over the
    /// sessions (no allocation), for a metrics scrape rather than for every message.
    pub fn inflight_messages(&self) -> u64 {
        self.sessions
            .values()
            .map(|s| s.inflight.len() as u64)
            .sum()
    }

    /// Open connections by the listener they came through: a walk over the connections, for a
    /// metrics scrape.
    pub fn connections_by_listener(&self) -> std::collections::BTreeMap<ListenerId, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for conn in self.conns.values() {
            *counts.entry(conn.info.listener).or_insert(0) += 1;
        }
        counts
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the adapter said about an open connection when it opened (peer address,
    /// listener, TLS identity); `None` once it is closed.
    pub fn connection_info(&self, conn: ConnectionId) -> Option<&ConnectionInfo> {
        self.conns.get(&conn).map(|c| &c.info)
    }

    // ---------------------------------------------------------------- inputs

    /// A connection opened. Its CONNECT must arrive within `connect_timeout`.
    pub fn handle_open(
        &mut self,
        conn: ConnectionId,
        info: ConnectionInfo,
        now: Instant,
    ) -> Result<(), ApiMisuse> {
        self.tick(now);
        if self.conns.contains_key(&conn) {
            return Err(ApiMisuse::ConnectionAlreadyOpen(conn.0));
        }
        self.conns.insert(
            conn,
            Box::new(Conn::new(info, self.config.max_packet_size, now)),
        );
        self.stats.connections_open += 1;
        self.stats.sockets_opened += 1;
        let deadline = now.checked_add(self.config.connect_timeout);
        self.arm_conn_timer(conn, deadline);
        Ok(())
    }

    /// Bytes arrived on a connection. Any complete packets are handled; a partial one waits.
    /// Whatever the bytes are, the answer is `Ok`: malformed input closes the connection. `Err`
    /// only for a connection id that is not open.
    pub fn handle_bytes(
        &mut self,
        conn: ConnectionId,
        data: &[u8],
        now: Instant,
    ) -> Result<(), ApiMisuse> {
        if self.accept_read(conn, data, now)? {
            self.buffer_read(conn, data);
            self.read_packets(conn, now);
            self.read_resumed(now);
        }
        Ok(())
    }

    /// [`Broker::handle_bytes`] for a read the caller holds as [`Bytes`]: when nothing partial
    /// is buffered for the connection, its whole frames are decoded and handled as views into
    /// `data` (no copy; a PUBLISH delivered at once shares it with its subscribers; each fixed
    /// header is parsed once) and only a partial frame at its end is copied, to wait for the
    /// rest.
    pub fn handle_read(
        &mut self,
        conn: ConnectionId,
        data: Bytes,
        now: Instant,
    ) -> Result<(), ApiMisuse> {
        if !self.accept_read(conn, &data, now)? {
            return Ok(());
        }
        let buffered = self
            .conns
            .get(&conn)
            .is_some_and(|c| !c.read_buf.is_empty());
        if buffered || self.backpressure.has_unread(conn) || self.is_paused(conn) {
            self.buffer_read(conn, &data);
            self.read_packets(conn, now);
        } else if let Some(end) = self.read_frames(conn, &data, now) {
            self.buffer_read(conn, &data[end..]); // a partial frame waits for the rest
        }
        self.read_resumed(now);
        Ok(())
    }

    /// The checks of a read before its bytes are buffered: `Ok(false)` when they are to be
    /// ignored (a closing connection) or were refused (a first packet that is not CONNECT).
    fn accept_read(
        &mut self,
        conn: ConnectionId,
        data: &[u8],
        now: Instant,
    ) -> Result<bool, ApiMisuse> {
        self.tick(now);
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(ApiMisuse::UnknownConnection(conn.0))?;
        if matches!(c.phase, Phase::Closing) {
            return Ok(false); // [MQTT5-3.1.4-6] [MQTT311-3.1.4-5]: ignore whatever follows a refusal or a close
        }
        self.stats.bytes_received += data.len() as u64;
        if matches!(c.phase, Phase::AwaitingConnect)
            && c.read_buf.is_empty()
            && data.first().is_some_and(|first| first >> 4 != 1)
        {
            // [MQTT-3.1.0-1]: refused from its first byte, before any of its body is buffered
            // (mosquitto CVE-2023-0809 buffered what such packets declared).
            let violation = ProtocolViolation::new(
                "MQTT-3.1.0-1",
                "first packet is not CONNECT",
                ReasonCode::ProtocolError,
            );
            self.protocol_error(conn, violation, now);
            return Ok(false);
        }
        Ok(true)
    }

    /// Appends `data` to the read buffer of `conn` (the broker's spare one when it has none).
    fn buffer_read(&mut self, conn: ConnectionId, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.read_buf.is_empty() {
                c.read_buf = std::mem::take(&mut self.read_spare);
            }
            c.read_buf.extend_from_slice(data);
        }
    }

    /// Handles the complete packets buffered for `conn`, unless it is paused (then they wait,
    /// undecoded, for [`Output::ResumeReading`]). Frames a pause left undecoded go first, then
    /// the read buffer: every whole frame in it is split off at once and decoded in place
    /// (`read_frames`).
    pub(crate) fn read_packets(&mut self, conn: ConnectionId, now: Instant) {
        let mut split = false;
        loop {
            if self.is_paused(conn) {
                break;
            }
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if matches!(c.phase, Phase::Closing) {
                c.read_buf = BytesMut::new();
                self.backpressure.take_unread(conn);
                return;
            }
            let frames = match self.backpressure.take_unread(conn) {
                Some(unread) => unread,
                None => match c.decoder.split_frames(&mut c.read_buf) {
                    Ok(frames) if frames.is_empty() => break,
                    Ok(frames) => {
                        split = true;
                        frames
                    }
                    Err(error) => {
                        self.decode_failed(conn, error, now);
                        break;
                    }
                },
            };
            if self.read_frames(conn, &frames, now).is_none() {
                break;
            }
        }
        if split {
            self.spare_read_buffer(conn);
        }
    }

    /// Once the frames split off `conn`'s read buffer are handled, the buffer, if emptied, goes
    /// back to the broker (with the allocation it may still share with frames kept elsewhere):
    /// an idle connection keeps no read buffer, and the next read reuses the allocation unless
    /// a kept frame still holds it.
    fn spare_read_buffer(&mut self, conn: ConnectionId) {
        if let Some(c) = self.conns.get_mut(&conn)
            && c.read_buf.is_empty()
        {
            self.read_spare = std::mem::take(&mut c.read_buf);
        }
    }

    /// Decodes and handles the whole frames at the front of `frames` in order, each borrowing
    /// from it (no reference count changes per frame; a PUBLISH that is kept takes its own
    /// view). `Some(end)` when every whole frame was handled: `frames[end..]` is empty or the
    /// start of a partial frame. `None` when it stopped early: the connection is paused (the
    /// rest is kept for its resumption: its whole frames as unread, a partial one in the read
    /// buffer), closing, gone or sent malformed bytes.
    fn read_frames(&mut self, conn: ConnectionId, frames: &Bytes, now: Instant) -> Option<usize> {
        let mut offset = 0;
        loop {
            if self.is_paused(conn) {
                self.keep_for_resumption(conn, frames.slice(offset..));
                return None;
            }
            let c = self.conns.get_mut(&conn)?;
            if matches!(c.phase, Phase::Closing) {
                return None;
            }
            match c.decoder.decode_borrowed(frames, &mut offset) {
                Ok(Some(packet)) => {
                    c.last_packet = now;
                    self.stats.packets_received += 1;
                    self.handle_packet(conn, packet, now);
                    self.check_outbox(conn, now);
                }
                Ok(None) => return Some(offset),
                Err(error) => {
                    self.decode_failed(conn, error, now);
                    return None;
                }
            }
        }
    }

    /// Keeps what a paused connection sent and has not been handled: its whole frames as
    /// unread (handled first when it resumes), a partial frame after them in the read buffer
    /// (before anything read later). The frame headers are parsed again here, on this rare
    /// path only; a malformed header leaves everything in the read buffer, to fail on
    /// resumption.
    fn keep_for_resumption(&mut self, conn: ConnectionId, mut rest: Bytes) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if let Ok(whole) = c.decoder.split_whole_frames(&mut rest)
            && !whole.is_empty()
        {
            self.backpressure.keep_unread(conn, whole);
        }
        self.buffer_read(conn, &rest);
    }

    /// The socket took `bytes` of what was transmitted. Frees outbox room and sends what waited.
    pub fn handle_flushed(
        &mut self,
        conn: ConnectionId,
        bytes: usize,
        now: Instant,
    ) -> Result<(), ApiMisuse> {
        self.tick(now);
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(ApiMisuse::UnknownConnection(conn.0))?;
        if !c.flushed(bytes, now) {
            return Err(ApiMisuse::FlushedTooMuch(conn.0));
        }
        self.out.flushed(bytes);
        if let Some(session) = c.session() {
            self.pump(session, now);
        }
        self.read_resumed(now);
        Ok(())
    }

    /// The connection is gone (EOF, error, or after an `Output::Close`).
    pub fn handle_closed(&mut self, conn: ConnectionId, now: Instant) -> Result<(), ApiMisuse> {
        self.tick(now);
        let Some(c) = self.conns.get(&conn) else {
            return Err(ApiMisuse::UnknownConnection(conn.0));
        };
        let session = c.session();
        self.end_connection(conn, ReasonCode::UnspecifiedError, now);
        self.backpressure_closed(conn, session, now);
        self.read_resumed(now);
        if let Some(c) = self.conns.remove(&conn) {
            self.out.flushed(c.outbox);
        }
        self.out.forget(conn);
        self.prune_conn_timers();
        self.stats.connections_open = self.stats.connections_open.saturating_sub(1);
        Ok(())
    }

    /// Runs every timer due at `now`. Safe to call at any time, too often included.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        loop {
            let conns = &self.conns;
            let live_stamp = |conn| conns.get(&conn).map(|c| c.timer_stamp);
            let Some(due) = self.timers.pop_expired(now, live_stamp) else {
                break;
            };
            match due {
                Due::Conn(conn) => self.conn_timer_expired(conn, now),
                Due::Key(TimerKey::SessionExpiry(session)) => {
                    if self.sessions.get(&session).is_some() {
                        self.stats.clients_expired += 1;
                    }
                    self.end_session(session, true, now);
                }
                Due::Key(TimerKey::WillDelay(session)) => self.fire_will(session, now),
                Due::Key(TimerKey::Sys) => self.publish_sys(now),
                Due::Key(TimerKey::PublisherPause(conn)) => self.pause_expired(conn, now),
            }
        }
        self.read_resumed(now);
    }

    /// Publishes `message` from inside the process (no publisher connection).
    pub fn publish(&mut self, message: Message, now: Instant) -> Result<(), ApiMisuse> {
        self.tick(now);
        let topic = self.topic_of(&message)?;
        self.route(topic, message, Origin::Local, now);
        Ok(())
    }

    /// Cluster seam: routes `message`, published on another broker of a cluster (handed out
    /// there as [`Output::Forward`]), to the plain subscriptions of this one; shared groups
    /// get theirs through [`Broker::publish_remote_shared`]. Its `publisher` is the client
    /// that published it, so No Local holds across brokers [MQTT5-3.8.3-3]. A retained
    /// message is delivered as retained where Retain As Published asks, but it does not
    /// change this broker's retained messages: the backplane keeps one retained set for the
    /// cluster and hands each change to [`Broker::retain_remote`]. It is not handed out again.
    ///
    /// ```
    /// use std::time::Instant;
    /// use mqtt_broker_core::{Broker, Config, Message, Output};
    /// use mqtt_wire::{Bytes, MqttStr, QoS};
    ///
    /// let mut config = Config::default();
    /// config.cluster = true;
    /// let (mut here, mut there) = (Broker::new(config.clone()), Broker::new(config));
    /// let now = Instant::now();
    /// let message = Message::new(MqttStr::from_static("t"), Bytes::from_static(b"x"), QoS::AtMostOnce, true, now);
    /// here.publish(message, now)?;
    /// while let Some(output) = here.poll_output() {
    ///     if let Output::Forward(message) = output {
    ///         there.publish_remote((*message).clone(), now)?;
    ///         assert_eq!(there.stats().retained_messages, 0, "routing leaves the retained set alone");
    ///         there.retain_remote((*message).clone(), now)?;
    ///     }
    /// }
    /// assert_eq!(there.stats().retained_messages, 1);
    /// assert!(std::iter::from_fn(|| there.poll_output()).all(|o| !matches!(o, Output::Forward(_))));
    /// # Ok::<(), mqtt_broker_core::ApiMisuse>(())
    /// ```
    pub fn publish_remote(&mut self, message: Message, now: Instant) -> Result<(), ApiMisuse> {
        self.tick(now);
        let topic = self.topic_of(&message)?;
        self.route_to(topic, message, Origin::Remote, Scope::Plain, now);
        Ok(())
    }

    /// Cluster seam: delivers `message` (published on any broker of the cluster) to one member
    /// here of the shared subscription `filter` (`$share/{ShareName}/{filter}`, as reported by
    /// [`Event::InterestChanged`]): the backplane picked this broker for the group's one copy.
    /// The member is picked as for a local message (round robin, connected
    /// members first). `Ok(false)` when no session here belongs to that group any more: the
    /// copy is the backplane's to place elsewhere.
    pub fn publish_remote_shared(
        &mut self,
        message: Message,
        filter: &str,
        now: Instant,
    ) -> Result<bool, ApiMisuse> {
        self.tick(now);
        let topic = self.topic_of(&message)?;
        let filter = mqtt_topic::SubscriptionFilter::parse(
            Bytes::copy_from_slice(filter.as_bytes()),
            &self.topic_limits,
        )
        .map_err(|_| ApiMisuse::InvalidTopic)?;
        if filter.share().is_none() || !filter.filter().matches(&topic) {
            return Err(ApiMisuse::InvalidTopic);
        }
        let served = self.router.has_shared_members(&filter);
        self.route_to(topic, message, Origin::Remote, Scope::Share(&filter), now);
        Ok(served)
    }

    /// Cluster seam: makes `message` this broker's retained message of its topic, or clears
    /// it when the payload is empty [MQTT311-3.3.1-10] [MQTT5-3.3.1-6], without delivering it: the
    /// backplane's retained set changed (on any broker). Limits apply as to a local retained
    /// message.
    pub fn retain_remote(&mut self, message: Message, now: Instant) -> Result<(), ApiMisuse> {
        self.tick(now);
        let topic = self.topic_of(&message)?;
        let mut message = std::sync::Arc::new(message);
        self.update_retained(&topic, &mut message);
        Ok(())
    }

    /// Cluster seam: whether the backplane reaches the other nodes (it does until told
    /// otherwise). While it does not, this broker serves its shared subscriptions itself,
    /// one member per group among its own sessions, as a single broker would: the clients
    /// here keep being served while the cluster is out of reach. Messages published here are
    /// still handed out ([`Output::Forward`]), for the backplane to count as not sent.
    pub fn set_cluster_link(&mut self, up: bool) {
        self.cluster_link = up;
    }

    /// Whether this broker leaves its shared subscriptions to the cluster's backplane.
    pub(crate) fn shares_by_backplane(&self) -> bool {
        self.config.cluster && self.cluster_link
    }

    /// Cluster seam: the session of `client_id` now belongs to another broker of the cluster
    /// (its client connected there). A connection holding it here is taken over as by a
    /// CONNECT with the same identifier: DISCONNECT 0x8E (Session taken over) to a v5 client,
    /// then close [MQTT5-3.1.4-3] [MQTT311-3.1.4-2]; a will without delay is published. The
    /// session is then discarded here, without publishing a delayed will: it lives on with its
    /// new owner. `false` when this broker had no session of that identifier.
    pub fn session_taken_over(&mut self, client_id: &str, now: Instant) -> bool {
        self.tick(now);
        let Some(session) = self.sessions.find(client_id) else {
            return false;
        };
        if let Some(conn) = self.sessions.get(&session).and_then(|s| s.conn) {
            self.take_over(conn, now);
        }
        self.end_session(session, false, now);
        true
    }

    /// Ends the connection of the client `client_id` as an operator asked (a button on a page):
    /// DISCONNECT 0x98 (Administrative action) to a v5 client, then close. Its will is
    /// published and its session kept as its expiry says, as for any connection lost. `false`
    /// when no client of that identifier is connected.
    pub fn disconnect_client(&mut self, client_id: &str, now: Instant) -> bool {
        self.tick(now);
        let conn = self
            .sessions
            .find(client_id)
            .and_then(|s| self.sessions.get(&s))
            .and_then(|s| s.conn);
        let Some(conn) = conn else {
            return false;
        };
        self.disconnect(conn, ReasonCode::AdministrativeAction, now);
        true
    }

    /// The validated topic name of a message from the application or another node.
    fn topic_of(&self, message: &Message) -> Result<mqtt_topic::TopicName, ApiMisuse> {
        mqtt_topic::TopicName::with_limits(message.topic.clone().into_bytes(), &self.topic_limits)
            .map_err(|_| ApiMisuse::InvalidTopic)
    }

    /// Ends every connection for a shutdown: DISCONNECT 0x8B for v5 clients, then close. Wills
    /// of clients that did not disconnect are published; sessions with an expiry stay.
    pub fn shutdown(&mut self, now: Instant) {
        self.tick(now);
        let mut conns: Vec<ConnectionId> = self.conns.keys().copied().collect();
        conns.sort();
        for conn in conns {
            self.disconnect(conn, ReasonCode::ServerShuttingDown, now);
        }
    }

    // ---------------------------------------------------------------- outputs

    /// The next thing to do. Drain until `None` after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.poll()
    }

    /// When to call [`Broker::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    // ---------------------------------------------------------------- internals

    /// Work done at every input: start the clock-driven duties on the first one.
    pub(crate) fn tick(&mut self, now: Instant) {
        if !self.timers.start(now) {
            return;
        }
        if let Some(interval) = self.config.sys_interval {
            self.timers.set_after(TimerKey::Sys, now, interval);
        }
        let offline: Vec<SessionId> = self.sessions.ids().collect();
        for session in offline {
            self.arm_session_expiry(session, now);
        }
    }

    /// Arms the one deadline of `conn` at `at` (none for `None`), replacing any it had: the
    /// CONNECT deadline while it has not connected, then its keep alive.
    pub(crate) fn arm_conn_timer(&mut self, conn: ConnectionId, at: Option<Instant>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.timer_stamp = self.timers.arm_conn(conn, at);
        self.prune_conn_timers();
    }

    /// Drops the connection deadlines no connection holds any more from the top of their heap.
    fn prune_conn_timers(&mut self) {
        let conns = &self.conns;
        self.timers
            .prune_conns(conns.len(), |conn| conns.get(&conn).map(|c| c.timer_stamp));
    }

    /// The deadline of `conn` came: a CONNECT deadline if it has not connected yet, else a keep
    /// alive check.
    fn conn_timer_expired(&mut self, conn: ConnectionId, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.timer_stamp = 0;
        if matches!(
            c.phase,
            Phase::AwaitingConnect | Phase::Authenticating(_) | Phase::Admitting(_)
        ) {
            self.connect_deadline(conn, now);
        } else {
            self.keep_alive_check(conn, now);
        }
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.out.event(event);
    }

    /// Reports a change of interest (the router makes them only with `Config::cluster`).
    pub(crate) fn interest_changed(&mut self, change: Option<InterestChange>) {
        if let Some(InterestChange { filter, present }) = change {
            self.event(Event::InterestChanged { filter, present });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_stale_connection_deadline_does_not_hold_back_a_due_timer() {
        let mut broker = Broker::new(Config::default());
        let t0 = crate::test_epoch();
        broker.tick(t0);
        // A deadline no connection holds, earlier than a due session expiry.
        let stale = ConnectionId(99);
        broker
            .timers
            .arm_conn(stale, Some(t0 + Duration::from_secs(1)));
        let session = SessionId(1);
        broker.timers.set(
            TimerKey::SessionExpiry(session),
            t0 + Duration::from_secs(2),
        );

        broker.handle_timeout(t0 + Duration::from_secs(3));
        assert_eq!(broker.timers.next_deadline(), None, "the expiry ran");
    }

    /// The transmitted bytes per connection after feeding `reads` to connection 2 (connection 1
    /// subscribed to `t` first), each read whole, as `Bytes` when `owned`.
    fn run(reads: &[&[u8]], owned: bool) -> Vec<u8> {
        let t0 = crate::test_epoch();
        let mut broker = Broker::new(Config::default());
        let mut sent = Vec::new();
        let subscriber: &[u8] =
            b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01s\x82\x06\x00\x01\x00\x01t\x01";
        for (conn, bytes) in [(1, subscriber)]
            .into_iter()
            .chain(reads.iter().map(|r| (2, *r)))
        {
            let conn = ConnectionId(conn);
            if broker.connection_info(conn).is_none() {
                broker
                    .handle_open(conn, ConnectionInfo::default(), t0)
                    .expect("new");
            }
            if owned {
                broker
                    .handle_read(conn, Bytes::copy_from_slice(bytes), t0)
                    .expect("open");
            } else {
                broker.handle_bytes(conn, bytes, t0).expect("open");
            }
            while let Some(output) = broker.poll_output() {
                if let Output::Transmit { conn, data } = output {
                    let len = data.iter().map(Bytes::len).sum();
                    broker.handle_flushed(conn, len, t0).expect("open");
                    sent.push(conn.0 as u8);
                    data.iter().for_each(|chunk| sent.extend_from_slice(chunk));
                }
            }
        }
        sent
    }

    #[test]
    fn owned_reads_split_anywhere_handle_like_borrowed_ones() {
        // CONNECT "p", PUBLISH t QoS 1 (id 1), PUBLISH t QoS 0, PINGREQ, then an oversized
        // remaining length (malformed: 5 length bytes) that closes the connection.
        let stream: &[u8] = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01p\x32\x06\x00\x01t\x00\x01A\x30\x04\x00\x01tB\xc0\x00\x30\xff\xff\xff\xff\x7f";
        let expected = run(&[stream], false);
        assert!(
            expected.windows(2).any(|w| w == b"\xd0\x00"),
            "PINGRESP sent"
        );
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let reads = [&stream[..i], &stream[i..j], &stream[j..]];
                assert_eq!(run(&reads, true), expected, "split at {i} and {j}");
                assert_eq!(run(&reads, false), expected, "split at {i} and {j}");
            }
        }
    }
}
