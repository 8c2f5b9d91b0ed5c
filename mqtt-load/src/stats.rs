//! [`Counters`] shared by every task of a run, and the once-a-second progress line printed
//! from them on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Totals updated by the tasks of a run (once per batch, not once per message).
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages written by publishers.
    pub sent: AtomicU64,
    /// Messages received by subscribers.
    pub received: AtomicU64,
    /// PUBACKs received by publishers.
    pub acked: AtomicU64,
    /// Connections completed (`idle`, `connrate`).
    pub connections: AtomicU64,
    /// Connections that failed.
    pub errors: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter` (relaxed: these are statistics).
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    #[must_use]
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Starts a task printing one line per second with totals and per-second rates; abort it
/// when the run ends.
pub fn spawn_progress(counters: Arc<Counters>, label: &'static str) -> JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut ticker =
            tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        let mut last = [0u64; 4];
        loop {
            ticker.tick().await;
            let now = [
                Counters::get(&counters.sent),
                Counters::get(&counters.received),
                Counters::get(&counters.acked),
                Counters::get(&counters.connections),
            ];
            let rate = |i: usize| now[i].saturating_sub(last[i]);
            eprintln!(
                "[{label} {:>4.0}s] sent {} ({}/s) received {} ({}/s) acked {} connections {} ({}/s) errors {}",
                start.elapsed().as_secs_f64(),
                now[0],
                rate(0),
                now[1],
                rate(1),
                now[2],
                now[3],
                rate(3),
                Counters::get(&counters.errors),
            );
            last = now;
        }
    })
}
