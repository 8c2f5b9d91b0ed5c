//! What reaches the broker task from outside ([`Input`]: from the connection paths, the
//! storage thread and the application) and where it answers a connection ([`Sink`]). Plain
//! types: the reactor, the connection tasks and the storage thread build them without knowing
//! the broker task.

use std::sync::Arc;

use bytes::Bytes;
use mqtt_broker_core::persist::RecoveredSession;
use mqtt_broker_core::{ApiMisuse, ConnectionId, ConnectionInfo, Message, Stats, hooks::AuthStep};
use tokio::sync::oneshot;

use super::flow::Credit;
use super::reactor::mailbox::Remote;
use super::write_queue::WriteQueue;

/// Something that happened outside the broker.
#[derive(Debug)]
pub(crate) enum Input {
    /// A connection was accepted (after its TLS / WebSocket handshake).
    Open {
        conn: ConnectionId,
        info: Box<ConnectionInfo>,
        sink: Sink,
    },
    /// Bytes arrived. The core may keep views into `data` (a message delivered at once shares
    /// it with its subscribers); `credit` goes back to the reader as soon as they are handled.
    Bytes {
        conn: ConnectionId,
        data: Bytes,
        credit: Credit,
    },
    /// The socket took this many bytes.
    Flushed { conn: ConnectionId, bytes: usize },
    /// The connection is gone.
    Closed { conn: ConnectionId },
    /// An in-process publish.
    Publish(Box<Message>),
    /// Close every connection and stop.
    Shutdown,
    /// The storage thread made every persistence batch up to this one durable.
    Persisted(u64),
    /// The application's answer to a deferred authentication ([`Output::AuthRequest`]).
    AuthAnswer {
        conn: ConnectionId,
        step: AuthStep,
        done: oneshot::Sender<Result<(), ApiMisuse>>,
    },
    /// The application asks for the broker's counters.
    Stats(oneshot::Sender<Stats>),
    /// A metrics scrape asks for the counters, the messages in flight and the open connections
    /// by listener index.
    Metrics(oneshot::Sender<MetricsFigures>),
    /// The operator asks for the persistent state to be written durably now (SIGUSR1).
    Checkpoint,
    /// The operator asks for every session and its subscriptions in the log (SIGUSR2).
    LogSessions,
    /// The application asks for a summary of every session (a page of clients).
    Sessions(oneshot::Sender<Vec<SessionSummary>>),
    /// From the cluster's backplane.
    Remote(RemoteInput),
    /// The cluster's backplane caught up: connections may be read again.
    ClusterDrained,
    /// The operator ends a client's connection (DISCONNECT 0x98); answers whether it was
    /// connected.
    DisconnectClient {
        client_id: String,
        done: oneshot::Sender<bool>,
    },
}

/// What a cluster's backplane hands the broker.
#[derive(Debug)]
pub(crate) enum RemoteInput {
    /// A message published on another node, for the plain subscriptions here; told on the
    /// sender when routed.
    Publish(Box<Message>, Option<oneshot::Sender<()>>),
    /// A message for one member here of a shared subscription (`$share/...`).
    Shared(Box<Message>, Arc<str>),
    /// The cluster's retained message of a topic changed.
    Retain(Box<Message>),
    /// The session of this client identifier belongs to another node now.
    TakenOver(Box<str>),
    /// The backplane reaches the other nodes (`true`) or lost them.
    Link(bool),
    /// A subscriber on another node is behind with the messages from here (`true`): reading
    /// stops until it caught up.
    Pressure(bool),
    /// A client waiting for admission is let in, with the session handed over, if any.
    Admit(ConnectionId, Option<Box<RecoveredSession>>),
    /// Another node asks for a session: given up here and sent back.
    Export(Box<str>, oneshot::Sender<Option<RecoveredSession>>),
}

/// One session as [`ServerHandle::sessions`](crate::ServerHandle::sessions) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSummary {
    /// The client identifier.
    pub client_id: String,
    /// Whether its client is connected.
    pub connected: bool,
    /// The connected client's address.
    pub peer: Option<std::net::SocketAddr>,
    /// The user name it connected with.
    pub username: Option<String>,
    /// The protocol version of its last connection: `3.1`, `3.1.1` or `5.0`.
    pub protocol: &'static str,
    /// Keep alive in force, in seconds (0: none), while connected.
    pub keep_alive: Option<u16>,
    /// Its subscriptions: filter and granted QoS.
    pub subscriptions: Vec<(String, u8)>,
    /// Messages waiting in its queue.
    pub queued: usize,
    /// QoS 1/2 messages sent and not yet acknowledged.
    pub inflight: usize,
}

/// What a metrics scrape gets from the broker task: its counters, the QoS 1/2 messages in
/// flight, and the open connections by listener index.
pub(crate) type MetricsFigures = (Stats, u64, Vec<(u16, u64)>);

/// Where the broker task sends a connection's bytes and orders.
#[derive(Debug)]
pub(crate) enum Sink {
    /// The write queue of the connection's own task (TLS, WebSocket, in-process clients).
    Task(Arc<WriteQueue>),
    /// A connection of a reactor (plain TCP).
    Reactor(Remote),
}

impl Sink {
    /// Hands chunks over; `false` when the connection refuses them (over its byte cap, or
    /// closing).
    pub(crate) fn write(&self, conn: ConnectionId, chunks: Vec<Bytes>) -> bool {
        match self {
            Sink::Task(queue) => queue.push(chunks),
            Sink::Reactor(remote) => {
                remote.write(conn, chunks);
                true
            }
        }
    }

    /// Closes the connection once what it was handed is written.
    pub(crate) fn close(&self, conn: ConnectionId) {
        match self {
            Sink::Task(queue) => queue.close(),
            Sink::Reactor(remote) => remote.close(conn),
        }
    }

    /// Stops reading the connection (`true`) or starts again (`false`).
    pub(crate) fn pause(&self, conn: ConnectionId, paused: bool) {
        match self {
            Sink::Task(queue) if paused => queue.gate().pause(),
            Sink::Task(queue) => queue.gate().resume(),
            Sink::Reactor(remote) => remote.pause(conn, paused),
        }
    }
}
