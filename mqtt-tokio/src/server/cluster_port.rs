//! The server's side of a cluster: what the broker task hands a backplane (the messages
//! published here, this broker's interest, the clients that connect here) and, through
//! [`ServerHandle`](super::ServerHandle), what the backplane hands back (messages from other
//! nodes, the cluster's retained changes, sessions taken over elsewhere). The backplane itself
//! (NATS, for one) lives outside this crate: see the `mqtt-cluster` crate.
//!
//! The broker task never waits on the backplane, and a message published here is never
//! dropped on the way to it: when the backplane falls [`FORWARD_HIGH`] messages behind, the
//! broker task stops reading every connection (publishers wait, as TCP makes them) until the
//! backplane has caught up to a quarter of that, so that QoS 1 and 2 messages acknowledged here
//! do reach the backplane. Interest, admissions and ended sessions go through a channel of
//! their own (few: one per first or last subscription of a filter, one per CONNECT).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mqtt_broker_core::{ConnectionId, Message};
use tokio::sync::mpsc;

use super::input::Input;

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
    /// A subscriber here is behind with the messages from other nodes (`behind`), or caught
    /// up: the other nodes should stop their publishers until it has
    /// ([`ServerHandle::set_cluster_pressure`](crate::ServerHandle::set_cluster_pressure) there).
    Pressure {
        /// Whether it is behind.
        behind: bool,
    },
    /// The session of a client identifier ended here (expired, closed with a clean session,
    /// replaced by a clean start, or taken over by another node).
    SessionEnded {
        /// The client identifier.
        client_id: Arc<str>,
    },
}

/// Messages waiting for the backplane at which the broker stops reading its connections.
pub const FORWARD_HIGH: usize = 16_384;
/// Messages waiting at which it reads them again.
const FORWARD_LOW: usize = FORWARD_HIGH / 4;

/// The broker task's end: never waits.
#[derive(Debug)]
pub(crate) struct ClusterPort {
    forward: mpsc::UnboundedSender<Arc<Message>>,
    control: mpsc::UnboundedSender<ClusterOutput>,
    flow: Arc<Flow>,
}

/// How far the backplane is behind, shared by both ends.
#[derive(Debug, Default)]
struct Flow {
    /// Messages handed out and not yet taken.
    waiting: AtomicUsize,
    /// Whether the broker stopped reading for the backplane.
    paused: AtomicBool,
}

impl ClusterPort {
    /// Hands a message out; `true` when the backplane just fell [`FORWARD_HIGH`] behind: the
    /// broker task then stops reading its connections until [`Input::ClusterDrained`].
    pub(crate) fn forward(&self, message: Arc<Message>) -> bool {
        let waiting = self.flow.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = self.forward.send(message);
        waiting >= FORWARD_HIGH && !self.flow.paused.swap(true, Ordering::AcqRel)
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
    forward: mpsc::UnboundedReceiver<Arc<Message>>,
    control: mpsc::UnboundedReceiver<ClusterOutput>,
    flow: Arc<Flow>,
    /// The broker task's inputs, to say it may read again.
    inputs: mpsc::Sender<Input>,
}

impl ClusterOutputs {
    /// The next output; interest, admissions and ended sessions before messages. `None` once
    /// the server has stopped. Taking messages lets a paused broker read again.
    pub async fn recv(&mut self) -> Option<ClusterOutput> {
        let output = tokio::select! {
            biased;
            Some(change) = self.control.recv() => change,
            Some(message) = self.forward.recv() => ClusterOutput::Forward(message),
            else => return None,
        };
        if let ClusterOutput::Forward(_) = output {
            let waiting = self.flow.waiting.fetch_sub(1, Ordering::Relaxed) - 1;
            if waiting <= FORWARD_LOW && self.flow.paused.swap(false, Ordering::AcqRel) {
                let _ = self.inputs.send(Input::ClusterDrained).await;
            }
        }
        Some(output)
    }
}

/// A connected pair of ends; `inputs` reaches the broker task.
pub(crate) fn channel(inputs: mpsc::Sender<Input>) -> (ClusterPort, ClusterOutputs) {
    let (forward_tx, forward) = mpsc::unbounded_channel();
    let (control_tx, control) = mpsc::unbounded_channel();
    let flow = Arc::new(Flow::default());
    (
        ClusterPort {
            forward: forward_tx,
            control: control_tx,
            flow: Arc::clone(&flow),
        },
        ClusterOutputs {
            forward,
            control,
            flow,
            inputs,
        },
    )
}
