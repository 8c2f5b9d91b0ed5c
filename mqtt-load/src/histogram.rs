//! [`Histogram`]: a fixed-size log-linear histogram of durations (or any `u64`) with a bounded
//! relative error, recorded without allocation and merged across tasks at the end of a run.
//!
//! Values below 128 have a bucket each; above, every power of two is split into 64 buckets,
//! so a reported percentile is at most 1/64 (about 1.6 %) above the true value. The largest
//! value is also kept exactly.

/// Sub-bucket bits: values below `1 << SUB_BITS` are exact.
const SUB_BITS: u32 = 7;
/// Buckets per power of two above the exact range.
const HALF: u64 = 1 << (SUB_BITS - 1);
/// Enough buckets for every `u64`.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 2) * HALF as usize;

/// A log-linear histogram of `u64` values.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram (one allocation of about 30 KiB).
    #[must_use]
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
        }
    }

    /// Adds one value.
    #[inline]
    pub fn record(&mut self, value: u64) {
        if let Some(count) = self.counts.get_mut(bucket_of(value)) {
            *count += 1;
        }
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    #[must_use]
    pub const fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest value recorded, exactly (0 when empty).
    #[must_use]
    pub const fn max(&self) -> u64 {
        self.max
    }

    /// The value below or at which `percent` % of the values lie (nearest rank), reported as
    /// the upper edge of its bucket and never above [`Histogram::max`]; 0 when empty.
    #[must_use]
    pub fn percentile(&self, percent: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let fraction = (percent / 100.0).clamp(0.0, 1.0);
        // Nearest rank: the smallest value with at least `rank` values at or below it. The
        // tolerance keeps 99.9 % of 1000 at rank 999 despite 0.999 * 1000 > 999 in binary.
        let exact = fraction * self.total as f64;
        let rank = ((exact - exact * 1e-12).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_edge(bucket).min(self.max);
            }
        }
        self.max
    }
}

/// The bucket holding `value`.
#[inline]
fn bucket_of(value: u64) -> usize {
    if value < 1 << SUB_BITS {
        return value as usize;
    }
    let shift = 64 - SUB_BITS - value.leading_zeros();
    (u64::from(shift) * HALF + (value >> shift)) as usize
}

/// The largest value that falls in `bucket`.
fn upper_edge(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < 1 << SUB_BITS {
        return bucket;
    }
    let shift = bucket / HALF - 1;
    let mantissa = bucket - shift * HALF;
    let upper = (u128::from(mantissa + 1) << shift) - 1;
    u64::try_from(upper).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.len(), 100);
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(100.0), 100);
        assert_eq!(h.percentile(0.0), 1);
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let h = Histogram::new();
        assert!(h.is_empty());
        assert_eq!(h.percentile(50.0), 0);
        assert_eq!(h.max(), 0);
    }

    #[test]
    fn buckets_are_contiguous_and_cover_their_values() {
        let mut previous_upper = None;
        for bucket in 0..BUCKETS {
            let upper = upper_edge(bucket);
            assert_eq!(bucket_of(upper), bucket, "upper edge of {bucket}");
            if let Some(p) = previous_upper {
                assert_eq!(bucket_of(p + 1), bucket, "first value of {bucket}");
            }
            previous_upper = Some(upper);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(upper_edge(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn relative_error_is_bounded() {
        for v in [128, 1_000, 12_345, 999_999, 1 << 40, u64::MAX / 3] {
            let mut h = Histogram::new();
            h.record(v);
            h.record(v.saturating_add(v)); // a larger value so max does not clamp the answer
            let reported = h.percentile(50.0);
            assert!(reported >= v, "{reported} < {v}");
            assert!(
                (reported - v) as f64 <= v as f64 / 64.0,
                "{reported} vs {v}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_skewed_distribution() {
        let mut h = Histogram::new();
        for _ in 0..990 {
            h.record(1_000);
        }
        for _ in 0..9 {
            h.record(50_000);
        }
        h.record(7_000_000);
        assert!((1_000..=1_016).contains(&h.percentile(50.0)));
        assert!((1_000..=1_016).contains(&h.percentile(99.0)));
        assert!((50_000..=50_800).contains(&h.percentile(99.9)));
        assert_eq!(h.percentile(100.0), 7_000_000);
        assert_eq!(h.max(), 7_000_000);
    }

    #[test]
    fn merge_adds_counts_and_keeps_the_max() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        (0..50).for_each(|_| a.record(10));
        (0..50).for_each(|_| b.record(20));
        b.record(5_000);
        a.merge(&b);
        assert_eq!(a.len(), 101);
        assert_eq!(a.percentile(40.0), 10);
        assert_eq!(a.percentile(60.0), 20);
        assert_eq!(a.max(), 5_000);
    }
}
