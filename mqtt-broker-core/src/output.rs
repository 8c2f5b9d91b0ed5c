//! What the broker asks of its caller: bytes to write, connections to close, decisions to take,
//! and events to record.
//!
//! Outputs come out of one FIFO ([`Broker::poll_output`](crate::Broker::poll_output)), so a
//! DISCONNECT followed by a close of the same connection stays in that order.

use std::sync::Arc;

use bytes::Bytes;
use mqtt_wire::{ProtocolVersion, ReasonCode};

use crate::ids::ConnectionId;
use crate::ids::ConnectionInfo;
use crate::message::Message;
use crate::persist::PersistBatch;

/// One thing the caller must do. The [crate documentation](crate) shows the driving loop
/// that handles each.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub enum Output {
    /// Write these chunks, in order, to the connection. A PUBLISH is a small header chunk followed
    /// by its payload chunk, shared (not copied) by every subscriber it goes to.
    Transmit {
        /// Where to write.
        conn: ConnectionId,
        /// The chunks, to be written back to back (vectored writes welcome).
        data: Vec<Bytes>,
    },
    /// Close the connection once everything transmitted before on it has been written.
    Close {
        /// The connection to close.
        conn: ConnectionId,
    },
    /// An authentication decision waits for the caller: answer it with
    /// [`Broker::accept_connect`](crate::Broker::accept_connect),
    /// [`Broker::reject_connect`](crate::Broker::reject_connect) or
    /// [`Broker::continue_auth`](crate::Broker::continue_auth).
    AuthRequest(AuthRequest),
    /// Something for metrics or persistence.
    Event(Event),
    /// Write these records durably, in one transaction, then (in
    /// [`Persistence::Sync`](crate::persist::Persistence::Sync) mode) report the batch number with
    /// [`Broker::handle_persisted`](crate::Broker::handle_persisted).
    Persist(PersistBatch),
    /// Stop reading from this connection: a subscriber queue its messages go to is filling up.
    /// Bytes already handed over are kept, undecoded, and handled after the resume. Lasts until
    /// the matching
    /// [`Output::ResumeReading`] (at most `Config::max_publisher_pause`) or the connection's end.
    PauseReading {
        /// The publisher's connection.
        conn: ConnectionId,
    },
    /// Read from this connection again.
    ResumeReading {
        /// The publisher's connection.
        conn: ConnectionId,
    },
    /// With [`Config::cluster`](crate::Config::cluster): a message published on this broker (by
    /// a client, a will or the application; not `$SYS`, not one from another node), for the
    /// other nodes to route with [`Broker::publish_remote`](crate::Broker::publish_remote). Its
    /// `publisher` names the client, for No Local there.
    Forward(Arc<Message>),
    /// With [`Config::cluster`](crate::Config::cluster): an authenticated client waits to be
    /// admitted. The backplane makes this node the holder of the client's session
    /// cluster-wide (taking it from the node that held it, with its subscriptions and
    /// messages unless `clean_start`), then calls [`Broker::admit`](crate::Broker::admit); the
    /// CONNACK goes out then. Without an answer before the CONNECT deadline the connection is
    /// closed.
    Admit {
        /// The waiting connection.
        conn: ConnectionId,
        /// The client identifier in force (as given, the user name, or assigned).
        client_id: Arc<str>,
        /// Whether the client asked for a clean start (no session to resume).
        clean_start: bool,
    },
    /// With [`Config::tap_per_second`](crate::Config::tap_per_second): a sample of the messages
    /// routed here (at most that many a second; `$SYS` included), for a viewer such as a web
    /// page's topic tree. The rest are not handed out: a viewer costs the broker next to
    /// nothing however busy it is.
    Tap(Arc<Message>),
}

/// The credentials of a CONNECT whose authentication was deferred.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The connection waiting.
    pub conn: ConnectionId,
    /// Where it came from.
    pub info: ConnectionInfo,
    /// Protocol version of the CONNECT.
    pub protocol: ProtocolVersion,
    /// Client identifier as sent (empty if the broker is to assign one).
    pub client_id: String,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Bytes>,
    /// The v5 authentication method, when the decision is a step of enhanced authentication
    /// (answer it with [`Broker::continue_auth`](crate::Broker::continue_auth)).
    pub method: Option<String>,
    /// The client's latest authentication data (enhanced authentication).
    pub data: Option<Bytes>,
    /// Whether this is a re-authentication of a connected client (v5 AUTH 0x19) rather than a
    /// CONNECT: refusing it disconnects the client [MQTT5-4.12.1-2].
    pub reauthentication: bool,
}

/// Why a message was not delivered to one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// The session queue was at its message or byte limit.
    QueueFull,
    /// A QoS 0 message met a full outbox.
    OutboxFull,
    /// The message expiry interval elapsed before delivery.
    Expired,
    /// The packet would exceed the client's maximum packet size [MQTT5-3.1.2-25].
    TooLarge,
}

impl DropReason {
    /// Every reason, in [`DropReason::index`] order.
    pub const ALL: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::OutboxFull,
        DropReason::Expired,
        DropReason::TooLarge,
    ];

    /// Its place in [`DropReason::ALL`] (and in [`Stats::dropped_by_reason`](crate::Stats)).
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short lower-case name, for metric labels: `queue_full`, `outbox_full`, `expired`,
    /// `too_large`.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::OutboxFull => "outbox_full",
            DropReason::Expired => "expired",
            DropReason::TooLarge => "too_large",
        }
    }
}

/// Events for metrics and persistence, delivered as [`Output::Event`].
///
/// ```
/// use std::time::Instant;
/// use mqtt_broker_core::{Broker, Config, ConnectionId, ConnectionInfo, Event, Output};
///
/// let (mut broker, now) = (Broker::new(Config::default()), Instant::now());
/// broker.handle_open(ConnectionId(1), ConnectionInfo::default(), now)?;
/// let connect = [0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'c'];
/// broker.handle_bytes(ConnectionId(1), &connect, now)?;
/// let connected: Vec<String> = std::iter::from_fn(|| broker.poll_output())
///     .filter_map(|output| match output {
///         Output::Event(Event::ClientConnected { client_id, .. }) => Some(client_id.to_string()),
///         _ => None,
///     })
///     .collect();
/// assert_eq!(connected, ["c"]);
/// # Ok::<(), mqtt_broker_core::ApiMisuse>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A client completed CONNECT.
    ClientConnected {
        /// Its connection.
        conn: ConnectionId,
        /// Its (possibly assigned) client identifier.
        client_id: Arc<str>,
        /// Whether an existing session was resumed.
        session_present: bool,
        /// The user name it authenticated with, if any.
        username: Option<Box<str>>,
        /// Its protocol version.
        protocol: ProtocolVersion,
        /// The keep alive in force, in seconds (0: none), after the server's limit.
        keep_alive: u16,
        /// Where it came from (peer address, listener, TLS identity).
        info: ConnectionInfo,
    },
    /// A connected client's connection ended.
    ClientDisconnected {
        /// Its connection.
        conn: ConnectionId,
        /// Its client identifier.
        client_id: Arc<str>,
        /// Why (NormalDisconnection when the client sent DISCONNECT 0x00).
        reason: ReasonCode,
    },
    /// A connection was refused during CONNECT.
    ConnectRefused {
        /// The connection.
        conn: ConnectionId,
        /// The reason sent (or that would have been sent) in CONNACK.
        reason: ReasonCode,
    },
    /// A peer broke the protocol; the connection is being closed.
    ProtocolError {
        /// The connection.
        conn: ConnectionId,
        /// The normative statement broken, when known.
        spec_id: Option<&'static str>,
        /// The reason code sent in the DISCONNECT (v5).
        reason: ReasonCode,
    },
    /// A session ended (expired, or replaced by a clean start).
    SessionEnded {
        /// Its client identifier.
        client_id: Arc<str>,
    },
    /// A session started dropping messages (queue or outbox full, expired, too large): the first
    /// drop of an episode, which lasts until the session has drained (its queue under a quarter
    /// of its bounds, its outbox under a quarter of its bound) while connected, or has ended.
    /// Meant for the log: one line per slow subscriber, not one per message.
    DropsStarted {
        /// The session's client identifier.
        client_id: Arc<str>,
        /// Why its first message was dropped.
        reason: DropReason,
    },
    /// A session's drop episode ended: it drained, or it ended.
    DropsEnded {
        /// The session's client identifier.
        client_id: Arc<str>,
        /// Messages dropped for it in the episode.
        dropped: u64,
    },
    /// A message was dropped for one session (one per message, for metrics; see
    /// [`Event::DropsStarted`] for a log).
    MessageDropped {
        /// The session's client identifier.
        client_id: Arc<str>,
        /// Why.
        reason: DropReason,
    },
    /// With [`Config::cluster`](crate::Config::cluster): this broker has its first subscription
    /// to `filter` (`present`), or no longer any (`!present`). The filter is the text the
    /// clients subscribed with, `$share/GROUP/` prefix included.
    InterestChanged {
        /// The filter.
        filter: Arc<str>,
        /// Whether this broker now has a subscription to it.
        present: bool,
    },
    /// The retained message of a topic was set (`true`) or cleared (`false`).
    RetainedChanged {
        /// The topic.
        topic: String,
        /// Whether a message is now retained there.
        present: bool,
    },
}
