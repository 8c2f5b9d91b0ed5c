//! The sample of routed messages handed out as [`Output::Tap`](crate::Output::Tap): at most a
//! set number a second, counted in one-second windows of broker time.

use std::time::{Duration, Instant};

/// How many messages of the current second were handed out.
#[derive(Debug, Default)]
pub(crate) struct Tap {
    window: Option<Instant>,
    taken: u32,
}

impl Tap {
    /// Whether one more message may be handed out at `now`, at most `per_second` a second
    /// (0: none).
    pub(crate) fn take(&mut self, per_second: u32, now: Instant) -> bool {
        if per_second == 0 {
            return false;
        }
        let fresh = self
            .window
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window = Some(now);
            self.taken = 0;
        }
        if self.taken >= per_second {
            return false;
        }
        self.taken += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "a test picks its own start")]
    fn at_most_the_rate_a_second_and_none_when_off() {
        let mut tap = Tap::default();
        let start = Instant::now();
        let taken = (0..10).filter(|_| tap.take(3, start)).count();
        assert_eq!(taken, 3);
        assert!(tap.take(3, start + Duration::from_secs(1)), "a new second");
        let mut off = Tap::default();
        assert!(!off.take(0, start));
    }
}
