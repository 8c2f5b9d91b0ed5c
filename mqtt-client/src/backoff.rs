//! How long to wait before connecting again.

use std::time::Duration;

/// Delays between connection attempts: a constant one, or exponential backoff with
/// "decorrelated jitter" (each delay drawn between the base and three times the previous one,
/// capped), as mosquitto's bridges wait. The random numbers come from a seed, so a run can be
/// replayed.
///
/// ```
/// use std::time::Duration;
/// use mqtt_client::Backoff;
///
/// let mut backoff = Backoff::jittered(Duration::from_secs(5), Duration::from_secs(30), 7);
/// for _ in 0..20 {
///     let delay = backoff.next_delay();
///     assert!(delay >= Duration::from_secs(5) && delay <= Duration::from_secs(30));
/// }
/// backoff.reset(); // connected: the next failure starts at the base again
/// let mut constant = Backoff::constant(Duration::from_secs(2));
/// assert_eq!(constant.next_delay(), Duration::from_secs(2));
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    current: Duration,
    jitter: bool,
    random: u64,
}

impl Backoff {
    /// The same delay every time.
    pub fn constant(delay: Duration) -> Self {
        Backoff {
            base: delay,
            cap: delay,
            current: delay,
            jitter: false,
            random: 1,
        }
    }

    /// Delays from `base` growing towards `cap` with decorrelated jitter; `seed` picks the
    /// random sequence. A `cap` below `base` is taken as `base`.
    pub fn jittered(base: Duration, cap: Duration, seed: u64) -> Self {
        Backoff {
            base,
            cap: cap.max(base),
            current: base,
            jitter: true,
            random: seed | 1,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        if !self.jitter {
            return self.base;
        }
        // xorshift64: enough for spreading reconnections, and replayable.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        let low = self.base.as_millis() as u64;
        let high = (self.current.as_millis() as u64).saturating_mul(3).max(low);
        let drawn = low + self.random % (high - low + 1);
        self.current = Duration::from_millis(drawn).min(self.cap);
        self.current
    }

    /// A connection succeeded: start again from the base.
    pub fn reset(&mut self) {
        self.current = self.base;
    }
}
