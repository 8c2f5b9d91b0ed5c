//! The state of backpressure (see the parent module for its rules): paused publishers, the
//! sessions they wait for, overflowing sessions, drop episodes, and frames left undecoded by a
//! pause. Its fields are read and changed by the parent module's rules only.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;

use crate::ids::{ConnectionId, SessionId};

/// Publishers paused on behalf of full subscribers.
#[derive(Debug, Default)]
pub(crate) struct Backpressure {
    /// Paused publishers, each with the sessions it waits for.
    pub(super) paused: HashMap<ConnectionId, Vec<SessionId>>,
    /// Sessions whose publishers already waited the maximum pause: they pause nobody until
    /// their queue drains under the low-water mark.
    pub(super) overflowing: HashSet<SessionId>,
    /// Resumed publishers whose buffered packets are still to be handled.
    pub(super) resumed: Vec<ConnectionId>,
    /// Whole frames split off a publisher's read buffer and not decoded when it was paused:
    /// they come before its read buffer.
    pub(super) unread: HashMap<ConnectionId, Bytes>,
    /// Sessions in a drop episode (they dropped a message and have not drained since), with the
    /// number dropped so far.
    pub(super) dropping: HashMap<SessionId, u64>,
    /// Full sessions a publisher waited for, with when the first wait began. Kept across
    /// reconnections until the session drains, so that a subscriber whose connection breaks
    /// and comes back while it is still full is marked overflowing once the waits add up to
    /// `max_publisher_pause`, instead of pausing its publishers again with each connection.
    pub(super) waited_since: HashMap<SessionId, Instant>,
}

impl Backpressure {
    /// Keeps `frames`, the undecoded rest of a batch of `conn` that was paused, for its
    /// resumption. `conn` has nothing kept already: kept frames are taken before more are split.
    pub(crate) fn keep_unread(&mut self, conn: ConnectionId, frames: Bytes) {
        if !frames.is_empty() {
            self.unread.insert(conn, frames);
        }
    }

    /// Whether frames are kept for `conn`.
    pub(crate) fn has_unread(&self, conn: ConnectionId) -> bool {
        !self.unread.is_empty() && self.unread.contains_key(&conn)
    }

    /// Takes the frames kept for `conn`, if any.
    pub(crate) fn take_unread(&mut self, conn: ConnectionId) -> Option<Bytes> {
        if self.unread.is_empty() {
            return None;
        }
        self.unread.remove(&conn)
    }
}

impl Backpressure {
    /// Whether `session` is marked overflowing: it pauses nobody and its shared groups pass it
    /// over while another member can take their messages.
    pub(crate) fn is_overflowing(&self, session: SessionId) -> bool {
        !self.overflowing.is_empty() && self.overflowing.contains(&session)
    }
}
