//! What the bridges report of themselves: written by each bridge's task, read by the metrics
//! endpoint and the bridge's `$SYS` topics, without asking the broker task.

use std::sync::atomic::{AtomicBool, AtomicU64};

/// The state of one bridge, read by `$SYS`, the metrics and the logs.
#[derive(Debug)]
pub(crate) struct BridgeStatus {
    /// The bridge's name.
    pub(crate) name: String,
    /// Connected to the remote broker.
    pub(crate) connected: AtomicBool,
    /// Messages sent to the remote broker.
    pub(crate) sent: AtomicU64,
    /// Messages brought in.
    pub(crate) received: AtomicU64,
    /// Messages acknowledged and dropped (too large for the remote broker, ...).
    pub(crate) dropped: AtomicU64,
    /// Messages waiting in the bridge's local session (queued and in flight), as of the last
    /// look.
    pub(crate) queued: AtomicU64,
    /// Connections made.
    pub(crate) connections: AtomicU64,
}

impl BridgeStatus {
    /// A bridge named `name`, not connected, with every count at zero.
    pub(crate) fn new(name: &str) -> Self {
        BridgeStatus {
            name: name.to_owned(),
            connected: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        }
    }
}
