//! Hardening: QoS 2 exactly-once under a client re-sending the same packet id many times before
//! PUBREL (delivered once, nothing lost, no growth: mosquitto leaked here, CVE-2023-28366), and
//! QoS 1/2 floods from clients that never read their acknowledgements (bounded memory; other
//! clients keep a low round-trip latency; a QoS 2 flooder that never releases is disconnected
//! with 0x93 at the Receive Maximum).

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use raw::{Broker, Got, Raw, ack, parse_publish, publish, quantile};

/// Latency bound for the probe clients while a flood runs (99th percentile).
const P99_LIMIT: Duration = Duration::from_millis(50);
/// Resident memory growth allowed during a flood, KiB.
const GROWTH_LIMIT_KIB: u64 = 64 * 1024;

#[test]
fn mqtt_4_3_3_qos2_resent_many_times_is_delivered_once() {
    let broker = Broker::start("hardening_qos2_dup", "", "");
    let mut sub = broker.client_v5("sub");
    assert_eq!(sub.subscribe(1, "dup/#", 0), vec![0]);
    let mut publisher = broker.client_v5("pub");
    let payload = vec![b'p'; 10 * 1024];
    let first = publish(true, "dup/a", &payload, 2, 7, false);
    let mut again = first.clone();
    again[0] |= 0x08; // DUP
    let rss_before = broker.rss_kib();
    const RESENDS: usize = 3000;
    publisher.send(&first);
    for _ in 0..RESENDS {
        publisher.send(&again);
    }
    for _ in 0..=RESENDS {
        let (h, body) = publisher.expect_packet();
        assert_eq!((h, &body[..2]), (0x50, &[0u8, 7][..]), "PUBREC 7 each time");
    }
    let rss_after = broker.rss_kib();
    publisher.send(&ack(0x62, 7));
    let (h, body) = publisher.expect_packet();
    assert_eq!((h, &body[..2]), (0x70, &[0u8, 7][..]), "PUBCOMP 7");
    // The same id, now free again, carries a new message.
    publisher.send(&publish(true, "dup/b", b"second", 2, 7, false));
    assert_eq!(publisher.expect_packet().0, 0x50);
    publisher.send(&ack(0x62, 7));
    assert_eq!(publisher.expect_packet().0, 0x70);

    let mut topics = Vec::new();
    loop {
        match sub.read(Duration::from_millis(500)) {
            Got::Packet(h, body) if h >> 4 == 3 => topics.push(parse_publish(true, h, &body).0),
            Got::Packet(..) => {}
            Got::Timeout => break,
            Got::Closed => panic!("subscriber closed"),
        }
    }
    assert_eq!(
        topics,
        ["dup/a", "dup/b"],
        "each message exactly once, in order"
    );
    eprintln!("RSS before {rss_before} KiB, after {RESENDS} resends {rss_after} KiB");
    assert!(
        rss_after.saturating_sub(rss_before) < 16 * 1024,
        "resends grew RSS from {rss_before} to {rss_after} KiB"
    );
}

/// A subscriber and a publisher measuring publish-to-delivery latency and ping round trips.
struct Probe {
    sub: Raw,
    publisher: Raw,
}

impl Probe {
    fn new(broker: &Broker) -> Probe {
        let mut sub = broker.client_v5("probe-sub");
        assert_eq!(sub.subscribe(1, "probe/t", 0), vec![0]);
        Probe {
            sub,
            publisher: broker.client_v5("probe-pub"),
        }
    }

    /// One publish-to-delivery time and one ping round trip.
    fn sample(&mut self) -> (Duration, Duration) {
        let start = Instant::now();
        self.publisher
            .send(&publish(true, "probe/t", b"x", 0, 0, false));
        let (h, _) = self.sub.expect_kind(3);
        assert_eq!(h >> 4, 3);
        let delivery = start.elapsed();
        (delivery, self.publisher.ping())
    }

    /// Samples every 10 ms for `period`; returns the 99th percentiles.
    fn run(&mut self, period: Duration) -> (Duration, Duration) {
        let end = Instant::now() + period;
        let mut deliveries = Vec::new();
        let mut pings = Vec::new();
        while Instant::now() < end {
            let (d, p) = self.sample();
            deliveries.push(d);
            pings.push(p);
            std::thread::sleep(Duration::from_millis(10));
        }
        (quantile(&mut deliveries, 0.99), quantile(&mut pings, 0.99))
    }
}

/// How a flooding writer ended.
#[derive(Debug)]
struct FloodEnd {
    bytes: usize,
    disconnected: bool,
    disconnect: Option<u8>,
}

/// Writes `chunk` over and over until `stop` or until the broker ends the connection, never
/// reading; then reads what the broker said last.
fn flood(mut c: Raw, chunk: Vec<u8>, stop: Arc<AtomicBool>) -> FloodEnd {
    c.stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .expect("write timeout");
    let mut end = FloodEnd {
        bytes: 0,
        disconnected: false,
        disconnect: None,
    };
    let mut at = 0;
    while !stop.load(Ordering::Relaxed) {
        match c.stream.write(&chunk[at..]) {
            Ok(n) => {
                end.bytes += n;
                at = (at + n) % chunk.len();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                end.disconnected = true;
                break;
            }
        }
    }
    loop {
        match c.read(Duration::from_millis(500)) {
            Got::Packet(0xe0, body) => end.disconnect = body.first().copied(),
            Got::Packet(..) => {}
            Got::Closed | Got::Timeout => break,
        }
    }
    end
}

/// PUBLISH packets of `qos` with ids 1..=n on `topic`.
fn qos_burst(qos: u8, topic: &str, n: u16, payload: &[u8]) -> Vec<u8> {
    (1..=n)
        .flat_map(|id| publish(true, topic, payload, qos, id, false))
        .collect()
}

/// Two clients flood QoS 1 PUBLISH packets and never read: one whose own messages come back to
/// it (it subscribes), one publishing empty messages nobody wants. While they run, a probe pair
/// keeps a low publish-to-delivery and ping latency (the 99th percentile stays under 50 ms
/// above the quiet one: the machine is shared, debug build); memory stays bounded; the broker
/// disconnects the flooders with 0x97 once their unread acknowledgements fill the outbox bound
/// (megabytes of 4-byte PUBACKs: loopback socket buffers take most of it first).
#[test]
fn qos1_flood_that_never_reads_acks_leaves_others_unaffected() {
    let broker = Broker::start("hardening_qos1_flood", "", "");
    let mut probe = Probe::new(&broker);
    let (quiet_delivery, quiet_ping) = probe.run(Duration::from_millis(300));
    let baseline = broker.rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let mut echo = broker.client_v5("flood-echo");
    assert_eq!(echo.subscribe(1, "flood/#", 1), vec![1]);
    let plain = broker.client_v5("flood-plain");
    let floods: Vec<_> = [
        (echo, qos_burst(1, "flood/echo", 200, &[b'e'; 1024])),
        (plain, qos_burst(1, "sink", 2000, b"")),
    ]
    .into_iter()
    .map(|(c, chunk)| {
        let stop = stop.clone();
        std::thread::spawn(move || flood(c, chunk, stop))
    })
    .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (delivery_p99, ping_p99) = probe.run(Duration::from_secs(3));
    let loaded = broker.rss_kib();
    // Let the flood go on until the broker has cut both (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !floods.iter().all(|t| t.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let ends: Vec<FloodEnd> = floods
        .into_iter()
        .map(|t| t.join().expect("flood"))
        .collect();
    eprintln!(
        "quiet p99 delivery {quiet_delivery:?} ping {quiet_ping:?}; under QoS 1 flood p99 delivery \
         {delivery_p99:?} ping {ping_p99:?}; RSS {baseline} -> {loaded} KiB; flooders {ends:?}"
    );
    assert!(
        delivery_p99 < P99_LIMIT + quiet_delivery,
        "delivery p99 {delivery_p99:?}"
    );
    assert!(ping_p99 < P99_LIMIT + quiet_ping, "ping p99 {ping_p99:?}");
    assert!(loaded.saturating_sub(baseline) < GROWTH_LIMIT_KIB);
    for end in &ends {
        assert!(end.disconnected, "flooder still served: {end:?}");
    }
    probe.sample();
}

#[test]
fn mqtt_3_3_4_9_qos2_flood_without_pubrel_is_cut_at_receive_maximum() {
    let broker = Broker::start("hardening_qos2_flood", "", "");
    let mut probe = Probe::new(&broker);
    let mut flooder = broker.client_v5("flood2");
    // 32 is the advertised Receive Maximum; the 33rd unreleased QoS 2 PUBLISH is one too many.
    flooder.send(&qos_burst(2, "q2", 200, &[b'q'; 100]));
    let mut pubrecs = 0;
    let mut reason = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match flooder.read(Duration::from_secs(1)) {
            Got::Packet(0x50, _) => pubrecs += 1,
            Got::Packet(0xe0, body) => reason = body.first().copied(),
            Got::Packet(..) => {}
            Got::Closed => break,
            Got::Timeout => panic!("flooder still open"),
        }
    }
    assert_eq!(pubrecs, 32);
    assert_eq!(reason, Some(0x93), "DISCONNECT Receive Maximum exceeded");
    probe.sample();
}
