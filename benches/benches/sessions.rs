//! Scale of the broker core alone (no sockets): up to a million persistent sessions, each with
//! two subscriptions, in one `Broker`.
//!
//! For each size it reports
//! - heap bytes per session (a CleanSession=0 session of a client that went away) and per
//!   subscription, counted by a global allocator that tracks live bytes, and the growth of
//!   resident memory per session (allocator overhead included; meaningful for the first size
//!   of a run only, later sizes reuse memory the earlier ones freed);
//! - the time to route one QoS 0 PUBLISH to the one online client whose filter matches, among
//!   all those sessions' filters (median of rounds of 10,000 publishes);
//! - the time to bring the sessions back at start-up: open the store (`mqtt-store`, redb) the
//!   broker's `Persist` records were written to, load it and `Broker::restore` them.
//!
//! The sessions look like a fleet of Tasmota devices: client id `dev-<i>`, subscribed to
//! `cmnd/dev-<i>/#` and to its group's `cmnd/grp-<i % 1000>/#`, at QoS 1.
//!
//! `cargo bench -p mqtt-benches --bench sessions` runs 10,000, 100,000 and 1,000,000 sessions
//! (about two minutes and 3 GiB at the largest size); `SESSIONS_SIZES=10000,100000` chooses
//! others. Timings belong here, never in tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mqtt_benches::{connect, publish, subscribe};
use mqtt_broker_core::persist::{PersistBatch, Persistence};
use mqtt_broker_core::{Broker, Config, ConnectionId, ConnectionInfo, Output};
use mqtt_store::{Commit, DurableStore, WallClock};

/// Counts the bytes the program holds on the heap.
struct LiveBytes;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is a
// relaxed counter update. Unsafe is needed because `GlobalAlloc` is an unsafe trait, and a global
// allocator is the only way to count what the core holds per session without sampling RSS.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: LiveBytes = LiveBytes;

/// Groups the devices are spread over (the second subscription of each).
const GROUPS: usize = 1_000;
/// Sessions whose `Persist` records are written to the store in one transaction.
const SESSIONS_PER_COMMIT: usize = 10_000;
/// Publishes per routing round, and rounds.
const PUBLISHES: usize = 10_000;
const ROUNDS: usize = 15;

fn filters(device: usize) -> [String; 2] {
    [
        format!("cmnd/dev-{device}/#"),
        format!("cmnd/grp-{}/#", device % GROUPS),
    ]
}

/// A broker driven as an adapter drives it: outputs drained after every input, transmits
/// reported written at once, `Persist` batches collected for the caller to write.
struct Driver {
    broker: Broker,
    now: Instant,
    batches: Vec<PersistBatch>,
    next_conn: u64,
}

impl Driver {
    fn new(sessions: usize, persistence: Persistence) -> Driver {
        let mut config = Config::default();
        config.sys_interval = None;
        config.max_sessions = sessions + 10;
        config.persistence = persistence;
        Driver {
            broker: Broker::try_new(config).expect("a valid configuration"),
            now: Instant::now(),
            batches: Vec::new(),
            next_conn: 0,
        }
    }

    fn open(&mut self) -> ConnectionId {
        self.next_conn += 1;
        let conn = ConnectionId(self.next_conn);
        self.broker
            .handle_open(conn, ConnectionInfo::default(), self.now)
            .expect("a new connection");
        conn
    }

    fn feed(&mut self, conn: ConnectionId, bytes: &[u8]) {
        self.broker
            .handle_bytes(conn, bytes, self.now)
            .expect("an open connection");
        self.drain();
    }

    fn close(&mut self, conn: ConnectionId) {
        self.broker
            .handle_closed(conn, self.now)
            .expect("an open connection");
        self.drain();
    }

    /// Handles every output; returns the transmits.
    fn drain(&mut self) -> usize {
        let mut transmits = 0;
        while let Some(output) = self.broker.poll_output() {
            match output {
                Output::Transmit { conn, data } => {
                    let written = data.iter().map(|chunk| chunk.len()).sum();
                    black_box(&data);
                    transmits += 1;
                    // A transmit to a connection closed meanwhile is simply not written.
                    let _ = self.broker.handle_flushed(conn, written, self.now);
                }
                Output::Persist(batch) => self.batches.push(batch),
                _ => {}
            }
        }
        transmits
    }

    /// Device `i` connects with CleanSession=0, subscribes (or not) and goes away.
    fn add_device(&mut self, device: usize, subscribed: bool) {
        let conn = self.open();
        self.feed(conn, &connect(&format!("dev-{device}"), false));
        if subscribed {
            let [own, group] = filters(device);
            self.feed(conn, &subscribe(&[&own, &group], 1));
        }
        self.close(conn);
    }

    /// Writes the collected batches to `store` in one transaction and reports them persisted.
    fn commit(&mut self, store: &mut DurableStore, clock: &WallClock) {
        let batches = std::mem::take(&mut self.batches);
        store
            .apply(
                batches.iter().flat_map(|b| b.records.iter()),
                clock,
                Commit::Durable,
            )
            .expect("the store takes the records");
        for batch in &batches {
            self.broker
                .handle_persisted(batch.seq, self.now)
                .expect("a batch the broker emitted");
        }
        self.drain();
    }
}

/// Resident memory of this process, from `/proc/self/statm` (0 where there is none).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Bytes per session: heap bytes (live allocations) of sessions with and without their two
/// subscriptions, each in a broker of its own, and the growth of resident memory for the first
/// (allocator overhead included). Returns (heap per session, heap per subscription, RSS per
/// session).
fn memory(sessions: usize) -> (f64, f64, f64) {
    let per_session = |subscribed: bool| {
        let (before, rss_before) = (LIVE.load(Ordering::Relaxed), rss_bytes());
        let mut driver = Driver::new(sessions, Persistence::Off);
        for device in 0..sessions {
            driver.add_device(device, subscribed);
        }
        let held = LIVE.load(Ordering::Relaxed).saturating_sub(before);
        let resident = rss_bytes().saturating_sub(rss_before);
        drop(driver);
        (
            held as f64 / sessions as f64,
            resident as f64 / sessions as f64,
        )
    };
    // With subscriptions first, while the process has no freed memory to reuse.
    let (with_two, rss) = per_session(true);
    let (bare, _) = per_session(false);
    (with_two, (with_two - bare) / 2.0, rss)
}

/// Median nanoseconds to route one QoS 0 PUBLISH to the one online client whose own filter
/// matches it, with every other device's session offline and subscribed.
fn routing(sessions: usize) -> f64 {
    let mut driver = Driver::new(sessions, Persistence::Off);
    for device in 0..sessions {
        driver.add_device(device, true);
    }
    // The device in the middle comes back online; a controller publishes to it.
    let device = sessions / 2;
    let online = driver.open();
    driver.feed(online, &connect(&format!("dev-{device}"), false));
    let controller = driver.open();
    driver.feed(controller, &connect("controller", true));
    let frame = publish(&format!("cmnd/dev-{device}/POWER"), 2);
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let mut delivered = 0;
            for _ in 0..PUBLISHES {
                driver
                    .broker
                    .handle_bytes(controller, &frame, driver.now)
                    .expect("an open connection");
                delivered += driver.drain();
            }
            let took = start.elapsed();
            assert_eq!(delivered, PUBLISHES, "each publish reaches the device once");
            took.as_secs_f64() * 1e9 / PUBLISHES as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

/// Writes `sessions` subscribed sessions to a fresh store, then times opening it, loading it and
/// restoring a new broker from it. Returns (write seconds, restore seconds, store bytes).
fn restore(sessions: usize) -> (f64, Duration, u64) {
    let dir = std::env::temp_dir().join(format!("mqtt-bench-sessions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join("store.redb");
    let clock = WallClock::new(Instant::now(), SystemTime::now());
    let start = Instant::now();
    {
        let mut store = DurableStore::open(&path).expect("a new store");
        let mut driver = Driver::new(sessions, Persistence::Sync);
        for device in 0..sessions {
            driver.add_device(device, true);
            if (device + 1) % SESSIONS_PER_COMMIT == 0 {
                driver.commit(&mut store, &clock);
            }
        }
        driver.commit(&mut store, &clock);
    }
    let written = start.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());

    let start = Instant::now();
    let store = DurableStore::open(&path).expect("the store opens");
    let now = Instant::now();
    let state = store.load(now).expect("the store loads");
    let mut broker = Broker::try_new({
        let mut config = Config::default();
        config.sys_interval = None;
        config.max_sessions = sessions + 10;
        config.persistence = Persistence::Sync;
        config
    })
    .expect("a valid configuration");
    broker.restore(state, now, SystemTime::now());
    let restored = start.elapsed();
    assert_eq!(
        broker.sessions().count(),
        sessions,
        "every session comes back"
    );
    assert_eq!(
        broker
            .sessions()
            .map(|s| s.subscriptions().count())
            .sum::<usize>(),
        2 * sessions,
        "with their subscriptions"
    );
    drop(broker);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    (written, restored, size)
}

fn sizes() -> Vec<usize> {
    std::env::var("SESSIONS_SIZES").map_or_else(
        |_| vec![10_000, 100_000, 1_000_000],
        |list| {
            list.split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .expect("SESSIONS_SIZES: numbers, comma-separated")
                })
                .collect()
        },
    )
}

fn main() {
    // `cargo test --benches` runs bench binaries with no `--bench`: a small size only.
    let sizes = if std::env::args().any(|a| a == "--bench") {
        sizes()
    } else {
        vec![1_000]
    };
    println!(
        "| sessions | heap B per session (2 subscriptions) | B per subscription | RSS B per session | route one PUBLISH, ns (median of {ROUNDS}) | write to store, s | store MiB | restore (open + load + restore), s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for sessions in sizes {
        let (per_session, per_subscription, rss) = memory(sessions);
        let route = routing(sessions);
        let (written, restored, size) = restore(sessions);
        println!(
            "| {sessions} | {per_session:.0} | {per_subscription:.0} | {rss:.0} | {route:.0} | {written:.1} | {:.1} | {:.2} |",
            size as f64 / (1024.0 * 1024.0),
            restored.as_secs_f64()
        );
    }
}
