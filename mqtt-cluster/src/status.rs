//! What a node counts and whether it reaches NATS: for the log, `$SYS` and metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A node's counters, shared by its tasks.
#[derive(Debug, Default)]
pub struct Status {
    connected: AtomicBool,
    forwarded: AtomicU64,
    forward_failed: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    retained_applied: AtomicU64,
    retained_write_failed: AtomicU64,
    takeovers: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Whether the node's NATS connection is up.
    pub connected: bool,
    /// Messages published here and sent to NATS.
    pub forwarded: u64,
    /// Messages published here that NATS did not take (too large, connection closed).
    pub forward_failed: u64,
    /// Messages from other nodes handed to this broker (plain and shared copies).
    pub received: u64,
    /// Extra copies of a message (overlapping filters) dropped.
    pub duplicates: u64,
    /// Changes of the cluster's retained set applied here.
    pub retained_applied: u64,
    /// Retained changes the bucket did not take.
    pub retained_write_failed: u64,
    /// Sessions here given up because their client connected to another node.
    pub takeovers: u64,
}

macro_rules! counter {
    ($($name:ident),*) => {
        impl Status {
            $(
                #[doc = concat!("Counts one `", stringify!($name), "`.")]
                pub(crate) fn $name(&self) {
                    self.$name.fetch_add(1, Ordering::Relaxed);
                }
            )*
        }
    };
}

counter!(
    forwarded,
    forward_failed,
    retained_write_failed,
    received,
    duplicates,
    retained_applied,
    takeovers
);

impl Status {
    /// Records whether NATS is reachable.
    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            connected: self.connected.load(Ordering::Relaxed),
            forwarded: get(&self.forwarded),
            forward_failed: get(&self.forward_failed),
            received: get(&self.received),
            duplicates: get(&self.duplicates),
            retained_applied: get(&self.retained_applied),
            retained_write_failed: get(&self.retained_write_failed),
            takeovers: get(&self.takeovers),
        }
    }
}
