//! Shrinking a failing run to a short one: fewer clients, a shorter active phase, then the
//! fault schedule bisected (delta debugging over the numbered faults, `Options::faults_off`)
//! down to the faults without which the run no longer fails. A change of options or a left-out
//! fault changes what follows it (the run is then a different one that still breaks a
//! guarantee, as with proptest's shrinking), so every candidate is run in full and kept only
//! if it fails.

use crate::{Options, Report, run};

/// Rounds of the fault bisection at most.
const MAX_BISECTION_ROUNDS: usize = 200;

/// The smallest failing run of `seed` found from `opts` (which must fail), and its report.
/// Returns `None` if `opts` does not fail.
pub fn shrink(seed: u64, opts: &Options) -> Option<(Options, Report)> {
    let fails = |o: &Options| {
        let report = run(seed, o);
        (!report.violations.is_empty()).then_some(report)
    };
    let mut best = opts.clone();
    let mut report = fails(&best)?;
    if let Some((clients, r)) = (1..best.clients).find_map(|n| {
        let o = Options {
            clients: n,
            ..best.clone()
        };
        fails(&o).map(|r| (n, r))
    }) {
        (best.clients, report) = (clients, r);
    }
    if let Some((duration_ms, r)) = [2_000, 5_000, 10_000, 20_000, 30_000, 45_000]
        .into_iter()
        .filter(|&d| d < best.duration_ms)
        .find_map(|d| {
            let o = Options {
                duration_ms: d,
                ..best.clone()
            };
            fails(&o).map(|r| (d, r))
        })
    {
        (best.duration_ms, report) = (duration_ms, r);
    }
    // Delta debugging over the faults the run still has on: drop chunks of them (halves, then
    // quarters, ...) while the run fails without them. The numbering is that of the run with
    // all faults on up to the first left out, so each round renumbers from a fresh full count.
    let mut granularity = 2;
    // A left-out fault can let the run meet new ones: the search is bounded in runs.
    for _ in 0..MAX_BISECTION_ROUNDS {
        let on: Vec<u64> = (0..report.counts.faults)
            .filter(|n| best.faults_off.binary_search(n).is_err())
            .collect();
        if on.is_empty() {
            break;
        }
        let chunk = on.len().div_ceil(granularity.min(on.len()));
        let mut dropped = false;
        for part in on.chunks(chunk) {
            let mut off = best.faults_off.clone();
            off.extend_from_slice(part);
            off.sort_unstable();
            let candidate = Options {
                faults_off: off,
                ..best.clone()
            };
            if let Some(r) = fails(&candidate) {
                (best, report) = (candidate, r);
                dropped = true;
                break;
            }
        }
        if dropped {
            granularity = (granularity - 1).max(2);
        } else if chunk == 1 {
            break;
        } else {
            granularity *= 2;
        }
    }
    // Numbers the final run never reached name no fault of it.
    best.faults_off.retain(|&n| n < report.counts.faults);
    Some((best, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mutation;

    /// A planted fault (subscriptions not stored) is found, and shrinking keeps a failing run
    /// with no more clients, time or faults than the first.
    #[test]
    fn a_failing_run_shrinks_to_a_smaller_one_that_still_fails() {
        let opts = Options {
            mutation: Some(Mutation::ForgetSubscriptions),
            ..Options::default()
        };
        let (seed, first) = (0..50)
            .map(|seed| (seed, run(seed, &opts)))
            .find(|(_, r)| !r.violations.is_empty())
            .expect("a seed that finds the planted fault");
        let (small, report) = shrink(seed, &opts).expect("the run fails");
        assert!(!report.violations.is_empty());
        assert!(small.clients <= opts.clients && small.duration_ms <= opts.duration_ms);
        let faults_on = report.counts.faults - small.faults_off.len() as u64;
        assert!(
            faults_on <= first.counts.faults,
            "{faults_on} > {}",
            first.counts.faults
        );
        // The shrunk run replays: the same failure again.
        assert_eq!(run(seed, &small).violations, report.violations);
        assert_eq!(
            shrink(
                seed,
                &Options {
                    mutation: None,
                    ..opts
                }
            )
            .map(|_| ()),
            None
        );
    }
}
