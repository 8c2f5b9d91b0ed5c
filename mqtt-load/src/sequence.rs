//! [`SequenceTracker`]: checks the per-publisher sequence numbers a subscriber receives, so a
//! run can tell exactly how many messages were lost, duplicated or reordered.
//!
//! One bit per sequence number per publisher, grown as numbers arrive (amortised, not per
//! message); sequence numbers at or above [`MAX_SEQUENCE`] are rejected to bound memory.

/// Sequence numbers must be below this (2^32 messages per publisher, 512 MiB of bits at most).
pub const MAX_SEQUENCE: u64 = 1 << 32;
/// A growing tracker follows publisher indexes below this.
pub const MAX_GROWN_PUBLISHERS: u32 = 1 << 20;

/// What one received sequence number means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The first copy, in order (above every number seen before from that publisher).
    InOrder,
    /// The first copy, but below a number already seen from that publisher.
    OutOfOrder,
    /// A copy of a number already seen.
    Duplicate,
    /// The publisher index or the sequence number is out of range.
    Invalid,
}

/// Per-publisher record of which sequence numbers arrived.
#[derive(Clone, Debug, Default)]
pub struct SequenceTracker {
    publishers: Vec<PublisherRecord>,
    duplicates: u64,
    out_of_order: u64,
    invalid: u64,
    grows: bool,
}

#[derive(Clone, Debug, Default)]
struct PublisherRecord {
    seen: Vec<u64>,
    unique: u64,
    next: u64,
}

impl SequenceTracker {
    /// A tracker for publishers `0..publishers`.
    #[must_use]
    pub fn new(publishers: usize) -> Self {
        Self {
            publishers: vec![PublisherRecord::default(); publishers],
            ..Self::default()
        }
    }

    /// A tracker for publishers it learns from the messages (indexes below
    /// [`MAX_GROWN_PUBLISHERS`]), when the subscriber does not know how many there are.
    #[must_use]
    pub fn growing() -> Self {
        Self {
            grows: true,
            ..Self::default()
        }
    }

    /// Records that message `sequence` of `publisher` arrived.
    #[inline]
    pub fn record(&mut self, publisher: u32, sequence: u64) -> Arrival {
        if self.grows
            && publisher < MAX_GROWN_PUBLISHERS
            && publisher as usize >= self.publishers.len()
        {
            self.publishers
                .resize(publisher as usize + 1, PublisherRecord::default());
        }
        let record = match self.publishers.get_mut(publisher as usize) {
            Some(record) if sequence < MAX_SEQUENCE => record,
            _ => {
                self.invalid += 1;
                return Arrival::Invalid;
            }
        };
        let word = (sequence / 64) as usize;
        let bit = 1u64 << (sequence % 64);
        if word >= record.seen.len() {
            record.seen.resize((word + 1).next_power_of_two(), 0);
        }
        let Some(slot) = record.seen.get_mut(word) else {
            self.invalid += 1;
            return Arrival::Invalid;
        };
        if *slot & bit != 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        *slot |= bit;
        record.unique += 1;
        if sequence >= record.next {
            record.next = sequence + 1;
            Arrival::InOrder
        } else {
            self.out_of_order += 1;
            Arrival::OutOfOrder
        }
    }

    /// Distinct messages received, over all publishers.
    #[must_use]
    pub fn unique(&self) -> u64 {
        self.publishers.iter().map(|p| p.unique).sum()
    }

    /// Copies received more than once.
    #[must_use]
    pub const fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// First copies that arrived after a higher number from the same publisher.
    #[must_use]
    pub const fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// Messages whose publisher index or sequence number was out of range.
    #[must_use]
    pub const fn invalid(&self) -> u64 {
        self.invalid
    }

    /// Messages missing below the highest number received from each publisher (all a
    /// subscriber can tell when it does not know how many were sent).
    #[must_use]
    pub fn gaps(&self) -> u64 {
        self.publishers
            .iter()
            .map(|record| record.next.saturating_sub(record.unique))
            .sum()
    }

    /// Publishers heard from.
    #[must_use]
    pub fn publishers_seen(&self) -> usize {
        self.publishers.iter().filter(|p| p.unique > 0).count()
    }

    /// Messages never received, given how many each publisher sent (numbers `0..sent[i]`).
    #[must_use]
    pub fn missing(&self, sent: &[u64]) -> u64 {
        self.publishers
            .iter()
            .zip(sent)
            .map(|(record, &sent)| sent.saturating_sub(record.unique))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_everything_when_nothing_is_lost() {
        let mut t = SequenceTracker::new(2);
        for s in 0..1000 {
            assert_eq!(t.record(0, s), Arrival::InOrder);
            assert_eq!(t.record(1, s), Arrival::InOrder);
        }
        assert_eq!(t.unique(), 2000);
        assert_eq!(t.missing(&[1000, 1000]), 0);
        assert_eq!((t.duplicates(), t.out_of_order(), t.invalid()), (0, 0, 0));
    }

    #[test]
    fn finds_gaps_per_publisher() {
        let mut t = SequenceTracker::new(2);
        for s in (0..100).filter(|s| s % 10 != 3) {
            t.record(0, s);
        }
        for s in 0..90 {
            t.record(1, s);
        }
        // Publisher 0 lost 10 in the middle, publisher 1 lost its last 10.
        assert_eq!(t.missing(&[100, 100]), 20);
        assert_eq!(t.out_of_order(), 0);
    }

    #[test]
    fn detects_duplicates_and_reordering() {
        let mut t = SequenceTracker::new(1);
        assert_eq!(t.record(0, 0), Arrival::InOrder);
        assert_eq!(t.record(0, 2), Arrival::InOrder);
        assert_eq!(t.record(0, 1), Arrival::OutOfOrder);
        assert_eq!(t.record(0, 2), Arrival::Duplicate);
        assert_eq!(t.record(0, 0), Arrival::Duplicate);
        assert_eq!(t.unique(), 3);
        assert_eq!(t.duplicates(), 2);
        assert_eq!(t.out_of_order(), 1);
        assert_eq!(t.missing(&[3]), 0);
    }

    #[test]
    fn rejects_unknown_publishers_and_huge_numbers() {
        let mut t = SequenceTracker::new(1);
        assert_eq!(t.record(1, 0), Arrival::Invalid);
        assert_eq!(t.record(0, MAX_SEQUENCE), Arrival::Invalid);
        assert_eq!(t.invalid(), 2);
        assert_eq!(t.unique(), 0);
    }

    #[test]
    fn a_growing_tracker_learns_its_publishers() {
        let mut t = SequenceTracker::growing();
        assert_eq!(t.record(3, 0), Arrival::InOrder);
        assert_eq!(t.record(3, 2), Arrival::InOrder);
        assert_eq!(t.record(0, 0), Arrival::InOrder);
        assert_eq!(t.record(MAX_GROWN_PUBLISHERS, 0), Arrival::Invalid);
        assert_eq!((t.unique(), t.gaps(), t.publishers_seen()), (3, 1, 2));
    }

    #[test]
    fn word_boundaries_are_tracked_separately() {
        let mut t = SequenceTracker::new(1);
        for s in [63, 64, 127, 128, 4095] {
            assert_eq!(t.record(0, s), Arrival::InOrder);
        }
        assert_eq!(t.record(0, 64), Arrival::Duplicate);
        assert_eq!(t.unique(), 5);
        assert_eq!(t.missing(&[4096]), 4096 - 5);
    }
}
