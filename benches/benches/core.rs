//! Throughput of the sans-IO broker core alone (no sockets): 1 publisher -> 1 subscriber,
//! 1 -> 1,000 subscribers and 1,000 publishers -> 1 subscriber, QoS 0, 64-byte payloads, MQTT
//! 3.1.1. Each iteration feeds the PUBLISH bytes, drains every output and reports the written
//! bytes back with `handle_flushed`, exactly as an adapter would.
//!
//! Before timing, each scenario counts heap allocations per delivered message with a counting
//! global allocator and prints them (`allocations per delivery`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mqtt_benches::{connect, publish, subscribe};
use mqtt_broker_core::{Broker, Config, ConnectionId, ConnectionInfo, Output};

/// Counts allocations so the bench can report allocations per delivered message.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is a
// relaxed counter increment. Unsafe is needed because `GlobalAlloc` is an unsafe trait, and a
// global allocator is the only way to count the allocations the core makes per message.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PAYLOAD: usize = 64;

/// A broker with connections driven like an adapter would: outputs drained after each input and
/// every transmit reported as flushed at once.
struct Harness {
    broker: Broker,
    now: Instant,
    deliveries: u64,
}

impl Harness {
    fn new() -> Self {
        let mut config = Config::default();
        config.sys_interval = None;
        Harness {
            broker: Broker::new(config),
            now: Instant::now(),
            deliveries: 0,
        }
    }

    fn client(&mut self, id: u64, filter: Option<&str>) -> ConnectionId {
        let conn = ConnectionId(id);
        self.broker
            .handle_open(conn, ConnectionInfo::default(), self.now)
            .expect("new connection");
        self.feed(conn, &connect(&format!("bench-{id}"), true));
        if let Some(filter) = filter {
            self.feed(conn, &subscribe(&[filter], 0));
        }
        self.deliveries = 0;
        conn
    }

    fn feed(&mut self, conn: ConnectionId, bytes: &[u8]) {
        self.broker
            .handle_bytes(conn, bytes, self.now)
            .expect("open connection");
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(output) = self.broker.poll_output() {
            if let Output::Transmit { conn, data } = output {
                let written = data.iter().map(|chunk| chunk.len()).sum();
                black_box(&data);
                self.deliveries += 1;
                self.broker
                    .handle_flushed(conn, written, self.now)
                    .expect("open connection");
            }
        }
    }
}

/// One scenario: a harness and the (publisher, frame) pairs it cycles through.
struct Scenario {
    name: &'static str,
    harness: Harness,
    publishes: Vec<(ConnectionId, Vec<u8>)>,
    deliveries_per_publish: u64,
}

impl Scenario {
    fn one_to_one() -> Self {
        let mut harness = Harness::new();
        harness.client(1, Some("bench/t"));
        let publisher = harness.client(2, None);
        Scenario {
            name: "1_to_1",
            harness,
            publishes: vec![(publisher, publish("bench/t", PAYLOAD))],
            deliveries_per_publish: 1,
        }
    }

    fn one_to_many(subscribers: u64) -> Self {
        let mut harness = Harness::new();
        for id in 0..subscribers {
            harness.client(id + 1, Some("bench/t"));
        }
        let publisher = harness.client(subscribers + 1, None);
        Scenario {
            name: "1_to_1000",
            harness,
            publishes: vec![(publisher, publish("bench/t", PAYLOAD))],
            deliveries_per_publish: subscribers,
        }
    }

    fn many_to_one(publishers: u64) -> Self {
        let mut harness = Harness::new();
        harness.client(1, Some("bench/#"));
        let publishes = (0..publishers)
            .map(|i| {
                let conn = harness.client(i + 2, None);
                (conn, publish(&format!("bench/{i}"), PAYLOAD))
            })
            .collect();
        Scenario {
            name: "1000_to_1",
            harness,
            publishes,
            deliveries_per_publish: 1,
        }
    }

    /// Publishes `rounds` times (cycling publishers) and returns the deliveries made.
    fn run(&mut self, rounds: usize) -> u64 {
        let before = self.harness.deliveries;
        for (conn, bytes) in self.publishes.iter().cycle().take(rounds) {
            self.harness.feed(*conn, bytes);
        }
        self.harness.deliveries - before
    }

    fn report_allocations(&mut self) {
        let rounds = 10_000 / self.deliveries_per_publish.max(1) as usize + 10;
        self.run(rounds); // warm up buffers
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let deliveries = self.run(rounds);
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(deliveries, rounds as u64 * self.deliveries_per_publish);
        println!(
            "core/{}: {:.2} allocations per delivery ({allocations} for {deliveries})",
            self.name,
            allocations as f64 / deliveries as f64
        );
    }
}

fn core_throughput(c: &mut Criterion) {
    let scenarios = [
        Scenario::one_to_one(),
        Scenario::one_to_many(1_000),
        Scenario::many_to_one(1_000),
    ];
    let mut group = c.benchmark_group("core");
    for mut scenario in scenarios {
        scenario.report_allocations();
        group.throughput(Throughput::Elements(scenario.deliveries_per_publish));
        group.bench_function(scenario.name, |b| {
            b.iter(|| scenario.run(1));
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = core;
    config = config();
    targets = core_throughput
}
criterion_main!(core);
