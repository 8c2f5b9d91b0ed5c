//! One copy per message per node. A node subscribes on NATS once per subject of each of its
//! filters; filters overlap (`a/+` and `a/#`), so a message may arrive on several of its
//! subscriptions. Every message carries its origin (a node incarnation) and a sequence number
//! counted there; the first copy passes, the others are dropped.
//!
//! Copies of one message come close together, but not in order with other messages (each
//! subscription is its own stream), so each origin keeps a window of the last [`WINDOW`]
//! sequence numbers seen. A number older than the window cannot be told apart and passes
//! (a duplicate at worst, never a loss).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Sequence numbers remembered per origin.
pub const WINDOW: u64 = 1 << 16;
const WORDS: usize = (WINDOW / 64) as usize;
/// An origin silent this long is forgotten (a node that stopped: it comes back as a new
/// incarnation).
const IDLE: Duration = Duration::from_secs(600);

/// The sequence numbers seen, per origin.
#[derive(Debug, Default)]
pub struct Dedup {
    origins: HashMap<u64, Window>,
    checks: u64,
}

#[derive(Debug)]
struct Window {
    /// The highest number seen.
    top: u64,
    /// Bit `n % WINDOW` set: `n` seen (for `n` within the window below `top`).
    seen: Box<[u64; WORDS]>,
    last: Instant,
}

impl Window {
    fn bit(n: u64) -> (usize, u64) {
        let at = n % WINDOW;
        ((at / 64) as usize, 1u64 << (at % 64))
    }

    fn is_set(&self, n: u64) -> bool {
        let (word, mask) = Window::bit(n);
        self.seen.get(word).is_some_and(|w| w & mask != 0)
    }

    fn set(&mut self, n: u64, on: bool) {
        let (word, mask) = Window::bit(n);
        if let Some(w) = self.seen.get_mut(word) {
            if on {
                *w |= mask;
            } else {
                *w &= !mask;
            }
        }
    }
}

impl Dedup {
    /// Whether the message `seq` of `origin` is seen for the first time (and remembers it).
    pub fn first(&mut self, origin: u64, seq: u64, now: Instant) -> bool {
        self.checks += 1;
        if self.checks.is_multiple_of(4096) {
            self.origins
                .retain(|_, w| now.saturating_duration_since(w.last) < IDLE);
        }
        let window = self.origins.entry(origin).or_insert_with(|| Window {
            top: 0,
            seen: Box::new([0; WORDS]),
            last: now,
        });
        window.last = now;
        if seq > window.top {
            if seq - window.top >= WINDOW {
                window.seen.fill(0);
            } else {
                for n in window.top + 1..seq {
                    window.set(n, false);
                }
            }
            window.top = seq;
            window.set(seq, true);
            return true;
        }
        if window.top - seq >= WINDOW {
            return true; // too old to tell: pass
        }
        if window.is_set(seq) {
            return false;
        }
        window.set(seq, true);
        true
    }

    /// Origins remembered.
    pub fn origins(&self) -> usize {
        self.origins.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a set of everything seen: within the window, the answers agree.
        #[test]
        fn only_the_first_copy_passes(order in prop::collection::vec((0u64..3, 1u64..400), 1..600)) {
            let mut dedup = Dedup::default();
            let mut seen = std::collections::HashSet::new();
            let now = Instant::now();
            for (origin, seq) in order {
                prop_assert_eq!(dedup.first(origin, seq, now), seen.insert((origin, seq)));
            }
        }
    }

    #[test]
    fn copies_out_of_order_across_subscriptions_pass_once() {
        let mut dedup = Dedup::default();
        let now = Instant::now();
        assert!(dedup.first(1, 2, now));
        assert!(
            dedup.first(1, 1, now),
            "an earlier message on another subscription"
        );
        assert!(!dedup.first(1, 2, now));
        assert!(!dedup.first(1, 1, now));
        assert!(dedup.first(2, 1, now), "another origin counts on its own");
        assert!(dedup.first(1, 1 + WINDOW * 3, now));
        assert!(dedup.first(1, 2, now), "older than the window: passes");
        assert!(
            dedup.first(9, 1, now + IDLE * 2) && dedup.origins() == 3,
            "pruned only every 4096 checks"
        );
    }
}
