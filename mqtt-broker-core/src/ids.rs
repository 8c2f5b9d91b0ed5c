//! The handles and facts that name things across the broker: connections (chosen by the
//! caller), listeners, what the caller knows of a connection, and sessions. Plain data, used by
//! every part.

use std::fmt;
use std::net::SocketAddr;

/// A connection handle chosen by the caller, unique while the connection is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl ConnectionId {
    /// Not a connection: the other nodes of a cluster, as the publisher of the messages
    /// routed with [`Broker::publish_remote`](crate::Broker::publish_remote). A subscriber
    /// here that falls behind pauses them as it would pause a client:
    /// [`Output::PauseReading`](crate::Output::PauseReading) with this id asks the backplane
    /// to stop the messages coming from the other nodes (and their publishers), and
    /// [`Output::ResumeReading`](crate::Output::ResumeReading) lets them come again. A caller
    /// never gives a real connection this id.
    pub const CLUSTER: ConnectionId = ConnectionId(u64::MAX);
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Which listener (port, TLS or not, WebSocket...) a connection came through; caller-defined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub u16);

/// What the caller knows about a new connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Remote address, if any.
    pub peer: Option<SocketAddr>,
    /// The listener it arrived on.
    pub listener: ListenerId,
    /// TLS client identity (e.g. certificate common name), usable as user name by hooks.
    pub tls_identity: Option<String>,
}

impl ConnectionInfo {
    /// Info with a peer address on listener 0.
    pub fn new(peer: Option<SocketAddr>) -> Self {
        ConnectionInfo {
            peer,
            ..ConnectionInfo::default()
        }
    }
}

/// Broker-internal handle of a session, used as the subscription trie key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SessionId(pub(crate) u64);
