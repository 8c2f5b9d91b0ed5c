//! Hardening: connection churn. 2,000 concurrent connections (20 threads x 100) connect,
//! subscribe and drop in a loop for 10 s, reusing their client identifiers (so takeovers race
//! with closes), a tenth of them keeping their session; some leave with DISCONNECT, some just
//! vanish, some mid-packet. Afterwards nothing is left of them but the kept sessions, memory
//! stays within what the peak concurrency explains and most of it goes back to the system, and
//! a normal client is served at once.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use raw::{Broker, Got, Raw, connect, publish, subscribe};

const THREADS: usize = 20;
const PER_THREAD: usize = 100;
const CHURN: Duration = Duration::from_secs(10);
/// Resident memory allowed above the baseline per concurrent connection, KiB.
const PER_CONNECTION_KIB: u64 = 48;
/// Once the churn has settled, at most this share (numerator, denominator) of what it added to
/// resident memory may remain. Measured (debug and release builds): about half remains with
/// the binary's jemalloc (the kept sessions, tables sized for the peak, allocator caches); all
/// of it with glibc's malloc, which keeps freed memory in its arenas.
const KEPT_SHARE: (u64, u64) = (3, 4);
/// How long memory may take to settle after the churn (jemalloc purges after about 1 s).
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// One thread's loop: open `PER_THREAD` connections, CONNECT + SUBSCRIBE on each, read the
/// answers, drop them in one of three ways; repeat until `stop`.
fn churn(port: u16, thread: usize, stop: Arc<AtomicBool>, rounds: Arc<AtomicUsize>) {
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let mut open: Vec<Raw> = Vec::with_capacity(PER_THREAD);
        for slot in 0..PER_THREAD {
            let Ok(mut c) = Raw::try_tcp(port) else {
                continue;
            };
            let id = format!("churn-{thread}-{slot}");
            let keep = slot % 10 == 0;
            let props: Vec<u8> = if keep {
                vec![0x11, 0, 0, 0, 60]
            } else {
                Vec::new()
            };
            let v5 = slot % 2 == 0;
            let mut bytes = if v5 {
                connect(5, &id, 30, None, &props)
            } else {
                connect(4, &id, 30, None, &[])
            };
            bytes.extend(subscribe(
                v5,
                1,
                &[(&format!("churn/{thread}/{slot}/#"), 1), ("churn/all", 0)],
            ));
            c.v5 = v5;
            c.send(&bytes);
            open.push(c);
        }
        for c in &mut open {
            // CONNACK, then SUBACK (or a close when taken over meanwhile).
            for _ in 0..2 {
                if !matches!(c.read(Duration::from_secs(5)), Got::Packet(..)) {
                    break;
                }
            }
        }
        for (i, mut c) in open.into_iter().enumerate() {
            match (i + round) % 3 {
                0 => c.send(&[0xe0, 0]),
                1 => c.send(&[0x30, 0x10, 0, 5]), // half a PUBLISH
                _ => {}
            }
        }
        round += 1;
        rounds.fetch_add(1, Ordering::Relaxed);
    }
}

/// The churn test. Resident memory is bounded by the peak concurrency, not by the number of
/// connections made, and comes back down afterwards: the broker's own counters (`$SYS`) and
/// open descriptors go back to what the remaining clients explain, and the allocator returns
/// most freed memory to the system (see `KEPT_SHARE`; a build with glibc's malloc,
/// `--no-default-features`, fails that check although nothing leaks).
#[test]
fn two_thousand_connections_churning_leave_no_trace() {
    let broker = Broker::start("hardening_churn", "", "[limits]\nsys_interval = 1\n");
    let mut normal = broker.client_v5("normal");
    assert_eq!(normal.subscribe(1, "churn/all", 0), vec![0]);
    let baseline = broker.rss_kib();
    let baseline_fds = broker.open_fds();

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            let port = broker.port;
            std::thread::spawn(move || churn(port, t, stop, rounds))
        })
        .collect();
    let mut peak = 0;
    let end = Instant::now() + CHURN;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        peak = peak.max(broker.rss_kib());
    }
    stop.store(true, Ordering::Relaxed);
    threads
        .into_iter()
        .for_each(|t| t.join().expect("churn thread"));
    let connections = rounds.load(Ordering::Relaxed) * PER_THREAD;

    // A normal client is served at once.
    let start = Instant::now();
    let mut fresh = broker.client_v5("fresh");
    fresh.send(&publish(true, "churn/all", b"hello", 0, 0, false));
    let (h, _) = normal.expect_kind(3);
    let served = start.elapsed();
    assert_eq!(h >> 4, 3);
    normal.ping();

    // Once the closed connections are gone: only "normal", "fresh" and the $SYS reader are
    // connected; the 200 kept sessions (one in ten ids) hold two subscriptions each.
    let stats = broker.sys_stats(Duration::from_millis(2500));
    let fds = broker.open_fds();
    let grown = peak.saturating_sub(baseline);
    let allowed = grown * KEPT_SHARE.0 / KEPT_SHARE.1;
    let settle_end = Instant::now() + SETTLE_LIMIT;
    let mut settled = broker.rss_kib();
    while settled.saturating_sub(baseline) > allowed && Instant::now() < settle_end {
        std::thread::sleep(Duration::from_millis(250));
        settled = broker.rss_kib();
    }
    eprintln!(
        "{connections} connections in {CHURN:?}; RSS baseline {baseline} KiB, peak {peak} KiB, \
         settled {settled} KiB; fds {baseline_fds} -> {fds}; fresh client served in {served:?}; \
         connections {:?}, offline sessions {:?}, subscriptions {:?}",
        stats.get("clients/connected"),
        stats.get("clients/disconnected"),
        stats.get("subscriptions/count"),
    );
    assert!(
        connections >= 2 * THREADS * PER_THREAD,
        "too little churn: {connections}"
    );
    assert!(
        served < Duration::from_millis(200),
        "fresh client took {served:?}"
    );
    // mosquitto's `clients/connected` (`load/connections` is a rate there, and here now).
    assert_eq!(
        stats.get("clients/connected").map(String::as_str),
        Some("3")
    );
    assert_eq!(
        stats.get("clients/disconnected").map(String::as_str),
        Some("200")
    );
    assert_eq!(
        stats.get("subscriptions/count").map(String::as_str),
        Some("402")
    );
    assert!(
        fds <= baseline_fds + 2,
        "descriptors {baseline_fds} -> {fds}"
    );
    let bound = (THREADS * PER_THREAD) as u64 * PER_CONNECTION_KIB;
    assert!(
        grown < bound && settled.saturating_sub(baseline) < bound,
        "RSS {baseline} -> peak {peak} -> {settled} KiB"
    );
    assert!(
        settled.saturating_sub(baseline) <= allowed,
        "RSS {baseline} -> peak {peak} -> {settled} KiB: more than {}/{} of the growth is still \
         resident after settling for up to {SETTLE_LIMIT:?}",
        KEPT_SHARE.0,
        KEPT_SHARE.1
    );
}
