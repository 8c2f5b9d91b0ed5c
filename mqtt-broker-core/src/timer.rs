//! Heaps of deadlines, cancelled lazily.
//!
//! Re-arming or cancelling never searches a heap: heap entries carry a stamp, and entries whose
//! stamp is no longer the live one are discarded when they reach the top. The top is pruned after
//! every change, so `next_deadline` always names a live timer.
//!
//! [`TimerHeap`] keeps the live stamp of each key in its own map; [`ConnTimers`], the one
//! deadline of each connection (its CONNECT deadline, then its keep alive), leaves the live stamp
//! with the connection, so an idle connection costs it one heap entry and no map entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::idmap::IdMap;
use crate::ids::{ConnectionId, SessionId};

/// What a broker timer is for. A connection's CONNECT deadline and keep alive are not here but
/// in the connections' own heap ([`Timers::arm_conn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// A disconnected session ends.
    SessionExpiry(SessionId),
    /// A delayed will is published.
    WillDelay(SessionId),
    /// `$SYS` statistics are published.
    Sys,
    /// A paused publisher resumes, whether or not the queues it fed drained.
    PublisherPause(ConnectionId),
}

/// A timer that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// The one deadline of a connection: its CONNECT deadline before it connected, then its
    /// keep alive. The connection must forget its stamp.
    Conn(ConnectionId),
    /// A keyed timer.
    Key(TimerKey),
}

/// Every deadline of a broker: keyed timers, one deadline per connection, and the time of the
/// first input (the epoch of the connection deadlines and the start of `$SYS` uptime).
#[derive(Debug)]
pub(crate) struct Timers {
    keyed: TimerHeap<TimerKey>,
    conns: ConnTimers<ConnectionId>,
    started: Option<Instant>,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            keyed: TimerHeap::new(),
            conns: ConnTimers::default(),
            started: None,
        }
    }
}

impl Timers {
    /// Notes the first input at `now`; `true` only the first time.
    pub(crate) fn start(&mut self, now: Instant) -> bool {
        if self.started.is_some() {
            return false;
        }
        self.started = Some(now);
        true
    }

    /// The time of the first input.
    pub(crate) fn started(&self) -> Option<Instant> {
        self.started
    }

    /// Arms `key` to fire `after` from `now`, replacing its deadline.
    pub(crate) fn set_after(&mut self, key: TimerKey, now: Instant, after: Duration) {
        self.keyed.set_after(key, now, after);
    }

    /// Arms `key` to fire at `at`, replacing its deadline.
    pub(crate) fn set(&mut self, key: TimerKey, at: Instant) {
        self.keyed.set(key, at);
    }

    /// Disarms `key`.
    pub(crate) fn cancel(&mut self, key: TimerKey) {
        self.keyed.cancel(key);
    }

    /// Arms the one deadline of `conn` at `at`; returns the stamp the connection must keep (0:
    /// none, for `None` or a deadline too far to come). Call [`Timers::prune_conns`] once it is
    /// kept.
    pub(crate) fn arm_conn(&mut self, conn: ConnectionId, at: Option<Instant>) -> u64 {
        match at {
            Some(at) => self.conns.set(conn, at, self.started.unwrap_or(at)),
            None => 0,
        }
    }

    /// Drops the connection deadlines no connection holds any more from the top of their
    /// heap; `open` connections exist, `live_stamp` reads the stamp one keeps.
    pub(crate) fn prune_conns(
        &mut self,
        open: usize,
        live_stamp: impl Fn(ConnectionId) -> Option<u64>,
    ) {
        self.conns.prune(open, live_stamp);
    }

    /// The earliest deadline of all.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match (self.keyed.next_deadline(), self.conns.next_deadline()) {
            (Some(at), Some(conn_at)) => Some(at.min(conn_at)),
            (at, conn_at) => at.or(conn_at),
        }
    }

    /// Removes and returns one timer due at `now`, the earliest first; `live_stamp` reads the
    /// stamp a connection keeps.
    pub(crate) fn pop_expired(
        &mut self,
        now: Instant,
        live_stamp: impl Fn(ConnectionId) -> Option<u64>,
    ) -> Option<Due> {
        // A stale connection deadline on top must not put a later one before a keyed timer.
        self.conns.prune(usize::MAX, &live_stamp);
        let conn_first = match (self.conns.next_deadline(), self.keyed.next_deadline()) {
            (Some(conn_at), Some(at)) => conn_at < at,
            (conn_at, _) => conn_at.is_some(),
        };
        if conn_first && let Some(conn) = self.conns.pop_expired(now, live_stamp) {
            return Some(Due::Conn(conn));
        }
        self.keyed.pop_expired(now).map(Due::Key)
    }
}

/// Deadlines keyed by `K`; at most one live deadline per key.
#[derive(Debug)]
pub(crate) struct TimerHeap<K> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    live: IdMap<K, u64>,
    next_generation: u64,
}

impl<K: Copy + Eq + Hash + Ord> TimerHeap<K> {
    /// An empty heap.
    pub(crate) fn new() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            live: IdMap::default(),
            next_generation: 0,
        }
    }

    /// Arms `key` at `at`, replacing any deadline it had.
    pub(crate) fn set(&mut self, key: K, at: Instant) {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.live.insert(key, generation);
        self.heap.push(Reverse((at, generation, key)));
        self.prune();
    }

    /// Arms `key` at `now + after`; a deadline beyond what `Instant` can hold never comes, so
    /// the key is then disarmed.
    pub(crate) fn set_after(&mut self, key: K, now: Instant, after: Duration) {
        match now.checked_add(after) {
            Some(at) => self.set(key, at),
            None => self.cancel(key),
        }
    }

    /// Disarms `key`; a no-op if it was not armed.
    pub(crate) fn cancel(&mut self, key: K) {
        if self.live.remove(&key).is_some() {
            self.prune();
        }
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns one key whose deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<K> {
        let Reverse((at, _, key)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.live.remove(&key);
        self.prune();
        Some(key)
    }

    /// Drops stale entries from the top of the heap.
    fn prune(&mut self) {
        while let Some(Reverse((_, generation, key))) = self.heap.peek() {
            if self.live.get(key) == Some(generation) {
                break;
            }
            self.heap.pop();
        }
        // Bound the garbage: rebuild when stale entries dominate.
        if self.heap.len() > 64 && self.heap.len() > 4 * self.live.len() {
            let live = &self.live;
            self.heap
                .retain(|Reverse((_, generation, key))| live.get(key) == Some(generation));
        }
    }
}

/// One deadline per connection; the connection keeps the stamp of the live one (0: none), and
/// every method that may find a stale entry is told how to read that stamp (`live_stamp`).
/// Deadlines are kept as nanoseconds since an epoch (the first input): 24 bytes an entry.
#[derive(Debug)]
pub(crate) struct ConnTimers<K> {
    heap: BinaryHeap<Reverse<(u64, K, u64)>>,
    epoch: Option<Instant>,
    last_stamp: u64,
}

impl<K: Ord> Default for ConnTimers<K> {
    fn default() -> Self {
        ConnTimers {
            heap: BinaryHeap::new(),
            epoch: None,
            last_stamp: 0,
        }
    }
}

impl<K: Copy + Ord> ConnTimers<K> {
    /// Arms a deadline at `at` for `key`; returns the stamp `key` must keep to keep it live
    /// (which disarms any deadline it had), or 0 for a deadline too far to ever come. `epoch`
    /// (the broker's first input, no later than any deadline) is fixed by the first call. Call
    /// [`ConnTimers::prune`] once the stamp is kept.
    pub(crate) fn set(&mut self, key: K, at: Instant, epoch: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(epoch);
        let Ok(offset) = u64::try_from(at.saturating_duration_since(epoch).as_nanos()) else {
            return 0;
        };
        self.last_stamp += 1;
        self.heap.push(Reverse((offset, key, self.last_stamp)));
        self.last_stamp
    }

    /// The earliest deadline, live if [`ConnTimers::prune`] ran since the last change.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let Reverse((offset, _, _)) = self.heap.peek()?;
        self.epoch?.checked_add(Duration::from_nanos(*offset))
    }

    /// Removes and returns one live key whose deadline is at or before `now`; the key must then
    /// forget its stamp.
    pub(crate) fn pop_expired(
        &mut self,
        now: Instant,
        live_stamp: impl Fn(K) -> Option<u64>,
    ) -> Option<K> {
        self.prune(usize::MAX, &live_stamp);
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, key, _))| key)
    }

    /// Drops stale entries from the top of the heap, and every stale entry once they dominate
    /// (more than four entries per possible live one, of which there are at most `keys`).
    pub(crate) fn prune(&mut self, keys: usize, live_stamp: impl Fn(K) -> Option<u64>) {
        let is_live =
            |&Reverse((_, key, stamp)): &Reverse<(u64, K, u64)>| live_stamp(key) == Some(stamp);
        while let Some(top) = self.heap.peek() {
            if is_live(top) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > 64 && self.heap.len() / 4 > keys {
            self.heap.retain(is_live);
        }
        if self.heap.capacity() > 64 && self.heap.len() < self.heap.capacity() / 4 {
            self.heap.shrink_to(self.heap.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_pop_connection_and_keyed_deadlines_in_order_skipping_stale_ones() {
        let t0 = crate::test_epoch();
        let mut timers = Timers::default();
        assert!(timers.start(t0));
        assert!(!timers.start(t0 + Duration::from_secs(5)), "started once");
        let (stale, live) = (ConnectionId(1), ConnectionId(2));
        let stale_stamp = timers.arm_conn(stale, Some(t0 + Duration::from_secs(1)));
        let live_stamp = timers.arm_conn(live, Some(t0 + Duration::from_secs(3)));
        let expiry = TimerKey::SessionExpiry(SessionId(7));
        timers.set(expiry, t0 + Duration::from_secs(2));
        assert_ne!(stale_stamp, 0);
        // Connection 1 dropped its stamp (re-armed elsewhere or closed).
        let keeps = |conn| (conn == live).then_some(live_stamp);
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        let now = t0 + Duration::from_secs(4);
        assert_eq!(timers.pop_expired(now, keeps), Some(Due::Key(expiry)));
        assert_eq!(timers.pop_expired(now, keeps), Some(Due::Conn(live)));
        assert_eq!(timers.pop_expired(now, keeps), None);
        assert_eq!(timers.next_deadline(), None);
        assert_eq!(timers.started(), Some(t0));
    }

    #[test]
    fn pops_in_deadline_order() {
        let t0 = crate::test_epoch();
        let mut timers = TimerHeap::new();
        timers.set(2u32, t0 + Duration::from_secs(2));
        timers.set(1u32, t0 + Duration::from_secs(1));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_expired(t0), None);
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(5)), Some(1));
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(5)), Some(2));
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(5)), None);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn rearming_replaces_the_old_deadline() {
        let t0 = crate::test_epoch();
        let mut timers = TimerHeap::new();
        timers.set(7u32, t0 + Duration::from_secs(1));
        timers.set(7u32, t0 + Duration::from_secs(3));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(2)), None);
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(3)), Some(7));
    }

    #[test]
    fn unreachable_deadline_is_never_armed() {
        let t0 = crate::test_epoch();
        let mut timers = TimerHeap::new();
        timers.set_after(1u32, t0, Duration::MAX);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn cancelled_timer_never_fires() {
        let t0 = crate::test_epoch();
        let mut timers = TimerHeap::new();
        timers.set(1u32, t0);
        timers.cancel(1);
        assert_eq!(timers.next_deadline(), None);
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(9)), None);
    }

    #[test]
    fn stale_entries_are_bounded() {
        let t0 = crate::test_epoch();
        let mut timers = TimerHeap::new();
        timers.set(0u32, t0 + Duration::from_secs(1));
        for i in 0..10_000u64 {
            timers.set(1u32, t0 + Duration::from_secs(2 + i));
        }
        assert!(timers.heap.len() <= 64 * 4 + 8);
    }

    #[test]
    fn conn_timers_fire_only_the_stamp_their_key_keeps() {
        let t0 = crate::test_epoch();
        let mut timers = ConnTimers::default();
        let mut stamps = [0u64; 3];
        stamps[1] = timers.set(1usize, t0 + Duration::from_secs(1), t0);
        stamps[2] = timers.set(2usize, t0 + Duration::from_secs(2), t0);
        stamps[1] = timers.set(1usize, t0 + Duration::from_secs(3), t0); // re-armed
        stamps[2] = 0; // disarmed
        let live = |key: usize| stamps.get(key).copied();
        timers.prune(3, live);
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(timers.pop_expired(t0 + Duration::from_secs(2), live), None);
        assert_eq!(
            timers.pop_expired(t0 + Duration::from_secs(3), live),
            Some(1)
        );
    }

    #[test]
    fn conn_timers_keep_exact_deadlines_and_never_arm_unreachable_ones() {
        let t0 = crate::test_epoch();
        let mut timers = ConnTimers::default();
        let at = t0 + Duration::new(7, 123_456_789);
        let stamp = timers.set(1usize, at, t0);
        assert_eq!(timers.next_deadline(), Some(at));
        let too_far = t0 + Duration::from_secs(u64::MAX / 1_000_000_000 + 1);
        assert_eq!(timers.set(2usize, too_far, t0), 0);
        assert_eq!(
            timers.pop_expired(at - Duration::from_nanos(1), |_| Some(stamp)),
            None
        );
        assert_eq!(timers.pop_expired(at, |_| Some(stamp)), Some(1));
    }

    #[test]
    fn conn_timers_bound_their_stale_entries() {
        let t0 = crate::test_epoch();
        let mut timers = ConnTimers::default();
        let mut stamp = 0;
        for i in 0..10_000u64 {
            // Each new deadline is the earliest, so the stale ones stay below the top.
            stamp = timers.set(0usize, t0 + Duration::from_secs(10_000 - i), t0);
            timers.prune(1, |_| Some(stamp));
        }
        assert!(timers.heap.len() <= 4 + 64, "{}", timers.heap.len());
        assert!(
            timers.heap.capacity() <= 4 * 64,
            "{}",
            timers.heap.capacity()
        );
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            timers.pop_expired(t0 + Duration::from_secs(1), |_| Some(stamp)),
            Some(0)
        );
        assert_eq!(
            timers.pop_expired(t0 + Duration::from_secs(10_000), |_| Some(0)),
            None
        );
    }
}
