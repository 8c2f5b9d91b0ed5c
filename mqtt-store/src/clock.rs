//! Mapping the broker's monotonic time to wall-clock time: the store keeps wall-clock times so
//! that expiry can be computed across a restart, while the core only ever sees `Instant`s.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A pair of readings of the two clocks taken at the same moment.
///
/// ```
/// use std::time::{Duration, Instant, UNIX_EPOCH};
/// use mqtt_store::WallClock;
///
/// let now = Instant::now();
/// let clock = WallClock::new(now, UNIX_EPOCH + Duration::from_secs(1_000));
/// assert_eq!(clock.unix_millis(now + Duration::from_millis(250)), 1_000_250);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    instant: Instant,
    wall: SystemTime,
}

impl WallClock {
    /// An anchor from two readings taken together (by the caller: this crate reads no clock).
    pub fn new(instant: Instant, wall: SystemTime) -> Self {
        WallClock { instant, wall }
    }

    /// The wall-clock time of `at`.
    pub fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.wall + after,
            None => self
                .wall
                .checked_sub(self.instant.saturating_duration_since(at))
                .unwrap_or(UNIX_EPOCH),
        }
    }

    /// Milliseconds since the Unix epoch of `at` (0 before the epoch).
    pub fn unix_millis(&self, at: Instant) -> u64 {
        to_millis(self.wall(at))
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn to_millis(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The time `millis` after the Unix epoch.
pub(crate) fn from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_before_and_after_the_anchor_map_to_wall_time() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = WallClock::new(now, wall);
        assert_eq!(clock.unix_millis(now), 1_000_000_000);
        assert_eq!(
            clock.unix_millis(now + Duration::from_millis(1500)),
            1_000_001_500
        );
        if let Some(before) = now.checked_sub(Duration::from_secs(2)) {
            assert_eq!(clock.unix_millis(before), 999_998_000);
        }
        assert_eq!(from_millis(to_millis(wall)), wall);
    }
}
