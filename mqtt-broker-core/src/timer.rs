//! A heap of deadlines, one per key, cancelled lazily.
//!
//! Re-arming or cancelling a key never searches the heap: the key's live generation is kept in a
//! map, and heap entries whose generation is stale are discarded when they reach the top. The top
//! is pruned after every change, so [`TimerHeap::next_deadline`] always names a live timer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::idmap::IdMap;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
