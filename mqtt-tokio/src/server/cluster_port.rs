//! The server's side of a cluster: what the broker task hands a backplane (the messages
//! published here, this broker's interest, the clients that connect here) and, through
//! [`ServerHandle`](super::ServerHandle), what the backplane hands back (messages from other
//! nodes, the cluster's retained changes, sessions taken over elsewhere). The backplane itself
//! (NATS, for one) lives outside this crate: see the `mqtt-cluster` crate.
//!
//! The broker task never waits on the backplane. Messages go through a bounded channel: when
//! the backplane falls that far behind, a message is not handed out (it still reaches this
//! broker's subscribers) and is counted ([`ClusterOutputs::dropped`]). Interest and connection
//! changes are few (one per first or last subscription of a filter, one per CONNECT) and must
//! not be lost, so they go through a channel of their own without a bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mqtt_broker_core::{ConnectionId, Message};
use tokio::sync::mpsc;

/// What the broker hands its backplane, in the order it happened per kind.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClusterOutput {
    /// A message published on this broker (by a client, a will or the application; never
    /// `$SYS` or a message that came from another node), for the other nodes.
    Forward(Arc<Message>),
    /// The first subscription to `filter` on this broker began (`present`), or the last one
    /// ended. Shared subscriptions come as `$share/{ShareName}/{filter}`.
    Interest {
        /// The filter, as subscribed.
        filter: Arc<str>,
        /// Whether a subscription to it exists now.
        present: bool,
    },
    /// An authenticated client waits to be admitted
    /// ([`ServerHandle::admit`](crate::ServerHandle::admit)) once this node holds its session
    /// cluster-wide (taken, with its state unless `clean_start`, from the node that held it).
    Admit {
        /// The waiting connection.
        conn: ConnectionId,
        /// The client identifier in force.
        client_id: Arc<str>,
        /// Whether it asked for a clean start.
        clean_start: bool,
    },
    /// The session of a client identifier ended here (expired, closed with a clean session,
    /// replaced by a clean start, or taken over by another node).
    SessionEnded {
        /// The client identifier.
        client_id: Arc<str>,
    },
}

/// Messages waiting for the backplane before further ones are dropped (counted).
pub const FORWARD_CAPACITY: usize = 65_536;

/// The broker task's end: never waits.
#[derive(Debug)]
pub(crate) struct ClusterPort {
    forward: mpsc::Sender<Arc<Message>>,
    control: mpsc::UnboundedSender<ClusterOutput>,
    dropped: Arc<AtomicU64>,
}

impl ClusterPort {
    /// Hands a message out, or counts it when the backplane is [`FORWARD_CAPACITY`] behind.
    pub(crate) fn forward(&self, message: Arc<Message>) {
        if self.forward.try_send(message).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands an interest or connection change out (dropped only when the backplane is gone).
    pub(crate) fn control(&self, change: ClusterOutput) {
        let _ = self.control.send(change);
    }
}

/// The backplane's end: what the broker hands out, from
/// [`ServerBuilder::cluster`](crate::ServerBuilder::cluster).
#[derive(Debug)]
pub struct ClusterOutputs {
    forward: mpsc::Receiver<Arc<Message>>,
    control: mpsc::UnboundedReceiver<ClusterOutput>,
    dropped: Arc<AtomicU64>,
}

impl ClusterOutputs {
    /// The next output; interest and connection changes before messages. `None` once the
    /// server has stopped.
    pub async fn recv(&mut self) -> Option<ClusterOutput> {
        tokio::select! {
            biased;
            Some(change) = self.control.recv() => Some(change),
            Some(message) = self.forward.recv() => Some(ClusterOutput::Forward(message)),
            else => None,
        }
    }

    /// Messages not handed out because the backplane was [`FORWARD_CAPACITY`] behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A connected pair of ends.
pub(crate) fn channel() -> (ClusterPort, ClusterOutputs) {
    let (forward_tx, forward) = mpsc::channel(FORWARD_CAPACITY);
    let (control_tx, control) = mpsc::unbounded_channel();
    let dropped = Arc::new(AtomicU64::new(0));
    (
        ClusterPort {
            forward: forward_tx,
            control: control_tx,
            dropped: Arc::clone(&dropped),
        },
        ClusterOutputs {
            forward,
            control,
            dropped,
        },
    )
}
