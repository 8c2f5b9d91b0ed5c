//! One slow consumer must never slow the rest of the house. A QoS 1 subscriber whose TCP receive
//! window is full (a 4 KiB receive buffer, never read: a device on bad Wi-Fi, a crashed script
//! that holds its socket) and publishers sending 20,000 QoS 1 messages of 1 KiB to its topic:
//! the publishers are paused at most `max_publisher_pause` (2 s) once, then the stuck subscriber
//! is marked slow and pauses nobody again; its messages queue up to its limits and the rest are
//! dropped and counted (`$SYS/broker/publish/messages/dropped`, one log line per episode). Measured
//! throughout: at least 99 % of PUBACKs within 12 s, a second client's pings answered within
//! 100 ms, and the broker's memory growth bounded by the queue limits. Variants: 10 stuck
//! subscribers and 8 publishers; a stuck member of a shared subscription, whose group's other
//! members take the messages. And `memory_limit`: under a flood from many publishers into many
//! stuck subscribers the broker refuses publishes (v5 PUBACK 0x97, 3.1.1 publishers
//! disconnected) instead of growing.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raw::{Broker, Got, Raw, ack, connect_v311, parse_publish, publish, rss_kib};

/// Messages published in each scenario, all publishers together.
const MESSAGES: usize = 20_000;
/// Payload of each message.
const PAYLOAD: usize = 1024;
/// The bound: 99 % of PUBACKs within this long of the first PUBLISH.
const ACK_WITHIN: Duration = Duration::from_secs(12);
/// The bound on a bystander's ping round trip.
const PING_WITHIN: Duration = Duration::from_millis(100);
/// A wait for the next PUBACK longer than this is a pause.
const STALL: Duration = Duration::from_millis(300);
/// How long one publisher may spend paused in all: one `max_publisher_pause` (the default 2 s)
/// and some slack, so two pauses fail.
const PAUSED_AT_MOST: Duration = Duration::from_millis(3500);
/// How long the test waits for the last PUBACK at all.
const GIVE_UP: Duration = Duration::from_secs(40);
/// Receive buffer of a stuck subscriber.
const STUCK_RCVBUF: usize = 4096;
/// The default queue bounds (`max_queued_messages`, `max_queued_bytes` is far above
/// 1,000 x 1 KiB) and outbox bound of one session.
const MAX_QUEUED_MESSAGES: u64 = 1000;
const MAX_OUTBOX_KIB: u64 = 1024;
/// The default window (`max_inflight_messages`) towards a 3.1.1 subscriber.
const WINDOW: u64 = 32;

/// `$SYS` every second, so the test can read the drop counter.
const LIMITS: &str = "[limits]\nsys_interval = 1\n";

/// A QoS 1 subscriber to `filter` on a socket with a 4 KiB receive buffer that is never read
/// after the SUBACK. The socket is returned to keep the connection open.
fn stuck_subscriber(port: u16, id: &str, filter: &str) -> TcpStream {
    let mut raw = stuck_connection(port, id, true);
    assert_eq!(raw.subscribe(1, filter, 1), vec![1], "SUBACK for {id}");
    raw.stream
}

/// A 3.1.1 connection on a socket with a 4 KiB receive buffer, CONNACK read; with `clean`
/// false the session is kept (and resumed when it exists).
fn stuck_connection(port: u16, id: &str, clean: bool) -> Raw {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .set_recv_buffer_size(STUCK_RCVBUF)
        .expect("SO_RCVBUF");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    socket.connect(&addr.into()).expect("connect");
    let mut raw = Raw::from_stream(socket.into());
    let mut connect = connect_v311(id, 60, None);
    assert_eq!(connect[9], 0x02, "CONNECT flags: CleanSession");
    if !clean {
        connect[9] = 0;
    }
    raw.send(&connect);
    let (header, body) = raw.expect_packet();
    assert_eq!((header, body.get(1)), (0x20, Some(&0)), "CONNACK for {id}");
    raw
}

/// A second client pinging every 20 ms until stopped, sampling the broker's RSS as it goes.
struct Bystander {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<Duration>, u64)>,
}

impl Bystander {
    fn start(broker: &Broker) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let mut client = broker.client_v311("bystander");
        let pid = broker.pid();
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut pings = Vec::new();
            let mut peak_rss = 0;
            while !stopped.load(Ordering::Relaxed) {
                pings.push(client.ping());
                peak_rss = peak_rss.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            (pings, peak_rss)
        });
        Bystander { stop, thread }
    }

    /// Every ping's round trip and the peak RSS seen, KiB.
    fn finish(self) -> (Vec<Duration>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("bystander")
    }
}

/// A QoS 1 member of a shared group that reads and acknowledges everything until stopped.
struct Reader {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

impl Reader {
    fn start(broker: &Broker, id: &str, filter: &str) -> Reader {
        let mut client = broker.client_v311(id);
        assert_eq!(client.subscribe(1, filter, 1), vec![1]);
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicUsize::new(0));
        let (stopped, count) = (Arc::clone(&stop), Arc::clone(&received));
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match client.read(Duration::from_millis(100)) {
                    Got::Packet(header, body) if header >> 4 == 3 => {
                        let (_, id, _) = parse_publish(false, header, &body);
                        if id != 0 {
                            client.send(&ack(0x40, id));
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Got::Packet(..) | Got::Timeout => {}
                    Got::Closed => panic!("reader closed by the broker"),
                }
            }
        });
        Reader {
            stop,
            received,
            thread,
        }
    }

    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("reader");
        self.received.load(Ordering::Relaxed)
    }
}

/// One publisher sending `count` QoS 1 messages to `topic` (a writer thread), as fast as the
/// broker reads them or at most `rate` a second, while this thread times every PUBACK from
/// `start`. Each payload starts with the message's number (1, 2, ...), big-endian.
fn publisher(
    port: u16,
    id: &str,
    topic: &str,
    count: usize,
    rate: Option<u32>,
    start: Instant,
) -> Vec<Duration> {
    let mut client = client_v311(port, id);
    let mut writer = client.stream.try_clone().expect("clone");
    let topic = topic.to_owned();
    let writing = std::thread::spawn(move || {
        let mut payload = vec![b'x'; PAYLOAD];
        let mut batch = Vec::new();
        for n in 1..=count {
            let packet_id = u16::try_from(n).expect("fewer than 65,536 per publisher");
            payload[..8].copy_from_slice(&(n as u64).to_be_bytes());
            batch.extend(publish(false, &topic, &payload, 1, packet_id, false));
            if let Some(rate) = rate {
                let due = start + Duration::from_secs_f64(n as f64 / f64::from(rate));
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            if n % 16 == 0 || n == count {
                if writer.write_all(&batch).is_err() {
                    return; // the read side reports what became of the rest
                }
                batch.clear();
            }
        }
    });
    let mut acked = Vec::with_capacity(count);
    while acked.len() < count {
        let left = GIVE_UP.saturating_sub(start.elapsed());
        match client.read(left) {
            Got::Packet(0x40, _) => acked.push(start.elapsed()),
            Got::Packet(..) => {}
            Got::Timeout | Got::Closed => break,
        }
    }
    let _ = client.stream.shutdown(std::net::Shutdown::Both);
    writing.join().expect("writer");
    acked
}

/// What one flood measured.
struct Flood {
    /// PUBACK times from the first PUBLISH, all publishers.
    acks: Vec<Duration>,
    /// Per publisher, the time it waited for its next PUBACK in waits over [`STALL`], summed:
    /// the pauses it met.
    stalled: Vec<Duration>,
    pings: Vec<Duration>,
    rss_before_kib: u64,
    rss_peak_kib: u64,
}

impl Flood {
    fn acked_within(&self, limit: Duration) -> usize {
        self.acks.iter().filter(|t| **t <= limit).count()
    }

    fn max_ping(&self) -> Duration {
        self.pings.iter().copied().max().unwrap_or_default()
    }

    /// Prints the figures and checks the bounds: 99 % of PUBACKs within 12 s, pings
    /// within 100 ms, and memory growth under `rss_bound_kib`.
    fn check(&self, name: &str, rss_bound_kib: u64) {
        let mut pings = self.pings.clone();
        let p99 = raw::quantile(&mut pings, 0.99);
        let within = self.acked_within(ACK_WITHIN);
        let growth = self.rss_peak_kib.saturating_sub(self.rss_before_kib);
        eprintln!(
            "{name}: {within}/{MESSAGES} PUBACKs within {ACK_WITHIN:?} ({} in all, last at {:?}); \
             paused {:?}; {} pings, p99 {p99:?}, max {:?}; RSS {} KiB -> peak {} KiB (+{growth} KiB, bound {rss_bound_kib} KiB)",
            self.acks.len(),
            self.acks.iter().max(),
            self.stalled,
            self.pings.len(),
            self.max_ping(),
            self.rss_before_kib,
            self.rss_peak_kib,
        );
        assert!(
            within * 100 >= MESSAGES * 99,
            "{name}: only {within} of {MESSAGES} PUBACKs within {ACK_WITHIN:?}"
        );
        // Paused once at most, for at most `max_publisher_pause`.
        assert!(
            self.stalled.iter().all(|t| *t <= PAUSED_AT_MOST),
            "{name}: publishers paused for {:?} in all",
            self.stalled
        );
        assert!(
            self.max_ping() <= PING_WITHIN,
            "{name}: a ping took {:?}",
            self.max_ping()
        );
        assert!(
            growth <= rss_bound_kib,
            "{name}: RSS grew by {growth} KiB, over {rss_bound_kib} KiB"
        );
    }
}

/// `publishers` publishers share [`MESSAGES`] QoS 1 messages to `topic` while a bystander pings;
/// with `rate`, each sends at most that many a second.
fn flood(broker: &Broker, publishers: usize, topic: &str, rate: Option<u32>) -> Flood {
    let rss_before_kib = broker.rss_kib();
    let bystander = Bystander::start(broker);
    let start = Instant::now();
    let threads: Vec<_> = (0..publishers)
        .map(|n| {
            let id = format!("pub{n}");
            let count = MESSAGES / publishers + usize::from(n < MESSAGES % publishers);
            let (port, topic) = (broker.port, topic.to_owned());
            std::thread::spawn(move || publisher(port, &id, &topic, count, rate, start))
        })
        .collect();
    let mut acks = Vec::new();
    let mut stalled = Vec::new();
    for thread in threads {
        let times = thread.join().expect("publisher");
        stalled.push(
            times
                .windows(2)
                .map(|w| w[1].saturating_sub(w[0]))
                .filter(|gap| *gap > STALL)
                .sum(),
        );
        acks.extend(times);
    }
    let (pings, rss_peak_kib) = bystander.finish();
    Flood {
        acks,
        stalled,
        pings,
        rss_before_kib,
        rss_peak_kib,
    }
}

/// A connected 3.1.1 client on `port`.
fn client_v311(port: u16, id: &str) -> Raw {
    let mut raw = Raw::tcp(port);
    raw.send(&connect_v311(id, 60, None));
    let (header, body) = raw.expect_packet();
    assert_eq!((header, body.get(1)), (0x20, Some(&0)), "CONNACK for {id}");
    raw
}

/// Memory the broker may grow by: per stuck session a full queue (1,000 messages of 1 KiB, a
/// quarter more for bookkeeping) and a full outbox (1 MiB), plus 12 MiB for the reads in
/// flight, socket buffers and the allocator. A queue without its bound (20,000 messages for one
/// stuck subscriber) passes it.
fn rss_bound_kib(stuck: u64) -> u64 {
    stuck * (MAX_QUEUED_MESSAGES * 5 / 4 + MAX_OUTBOX_KIB) + 12 * 1024
}

/// The number of `$SYS/broker/publish/messages/dropped`.
fn dropped(broker: &Broker) -> u64 {
    let stats = broker.sys_stats(Duration::from_millis(1500));
    stats
        .get("publish/messages/dropped")
        .and_then(|v| v.parse().ok())
        .expect("$SYS/broker/publish/messages/dropped")
}

/// Lines of the broker's log that report drops for `client`.
fn drop_episodes(broker: &Broker, client: &str) -> usize {
    let log = std::fs::read_to_string(broker.path("broker.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("dropping messages") && l.contains(&format!("client_id={client} ")))
        .count()
}

#[test]
fn one_stuck_subscriber_does_not_stall_a_qos1_publisher() {
    let broker = Broker::start("slow_subscriber_one", "", LIMITS);
    let stuck = stuck_subscriber(broker.port, "stuck", "load/t");
    let flood = flood(&broker, 1, "load/t", None);
    flood.check("1 stuck, 1 publisher", rss_bound_kib(1));
    // What did not fit its queue (1,000) and window (32) was dropped and counted, and logged
    // once for the episode, not per message.
    let dropped = dropped(&broker);
    assert_eq!(dropped, MESSAGES as u64 - MAX_QUEUED_MESSAGES - WINDOW);
    assert_eq!(
        drop_episodes(&broker, "stuck"),
        1,
        "one log line per episode"
    );
    // It reads again: it gets its window, then its queue, in the order published
    // [MQTT311-4.6.0-6], and nothing after what was dropped.
    let mut stuck = Raw::from_stream(stuck);
    let mut numbers = Vec::new();
    while let Got::Packet(header, body) = stuck.read(Duration::from_secs(2)) {
        if header >> 4 == 3 {
            let (_, id, payload) = parse_publish(false, header, &body);
            stuck.send(&ack(0x40, id));
            let number: [u8; 8] = payload[..8].try_into().expect("numbered payload");
            numbers.push(u64::from_be_bytes(number));
        }
    }
    let expected: Vec<u64> = (1..=MAX_QUEUED_MESSAGES + WINDOW).collect();
    assert_eq!(numbers.len(), expected.len());
    assert!(numbers == expected, "out of order or not the first ones");
}

#[test]
fn ten_stuck_subscribers_do_not_stall_eight_publishers() {
    let broker = Broker::start("slow_subscriber_ten", "", LIMITS);
    let _stuck: Vec<_> = (0..10)
        .map(|n| stuck_subscriber(broker.port, &format!("stuck{n}"), "load/t"))
        .collect();
    let flood = flood(&broker, 8, "load/t", None);
    flood.check("10 stuck, 8 publishers", rss_bound_kib(10));
    let dropped = dropped(&broker);
    assert!(
        dropped >= 10 * ((MESSAGES as u64) - MAX_QUEUED_MESSAGES - 100),
        "dropped {dropped}"
    );
    for n in 0..10 {
        assert_eq!(drop_episodes(&broker, &format!("stuck{n}")), 1, "stuck{n}");
    }
}

#[test]
fn a_stuck_member_of_a_shared_subscription_leaves_the_messages_to_the_others() {
    let broker = Broker::start("slow_subscriber_shared", "", LIMITS);
    let _stuck = stuck_subscriber(broker.port, "stuck", "$share/g/load/t");
    let readers: Vec<_> = (0..2)
        .map(|n| Reader::start(&broker, &format!("reader{n}"), "$share/g/load/t"))
        .collect();
    let flood = flood(&broker, 1, "load/t", None);
    flood.check("stuck shared member", rss_bound_kib(1));
    std::thread::sleep(Duration::from_millis(500)); // the last deliveries
    let received: usize = readers.into_iter().map(Reader::finish).sum();
    eprintln!("the group's readers received {received} of {MESSAGES}");
    // The stuck member keeps what it was sent (its window) and nothing more is lost.
    assert!(received * 100 >= MESSAGES * 99, "readers got {received}");
}

#[test]
fn a_stuck_subscriber_that_keeps_reconnecting_does_not_stall_the_publisher() {
    // A device on bad Wi-Fi: its session is kept, it reconnects every 1.5 s and never reads;
    // the publisher sends 3,000 messages a second (about 7 s in all), so it meets several
    // reconnections.
    let broker = Broker::start("slow_subscriber_reconnecting", "", LIMITS);
    let mut raw = stuck_connection(broker.port, "flaky", false);
    assert_eq!(raw.subscribe(1, "load/t", 1), vec![1]);
    let stop = Arc::new(AtomicBool::new(false));
    let port = broker.port;
    let stopped = Arc::clone(&stop);
    let reconnecting = std::thread::spawn(move || {
        let mut current = raw.stream;
        let mut reconnects = 0;
        while !stopped.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1500));
            // The connection breaks, and the device is back a moment later.
            let _ = current.shutdown(std::net::Shutdown::Both);
            std::thread::sleep(Duration::from_millis(50));
            current = stuck_connection(port, "flaky", false).stream;
            reconnects += 1;
        }
        reconnects
    });
    let flood = flood(&broker, 1, "load/t", Some(3000));
    stop.store(true, Ordering::Relaxed);
    let reconnects = reconnecting.join().expect("reconnecting subscriber");
    eprintln!("the stuck subscriber reconnected {reconnects} times");
    flood.check("1 stuck reconnecting, 1 publisher", rss_bound_kib(1));
    assert!(reconnects >= 1);
}

/// A v5 publisher keeping at most `window` QoS 1 messages unacknowledged (the broker's Receive
/// Maximum [MQTT5-3.3.4-7]); returns the reason code of every PUBACK, in order.
fn publisher_v5(port: u16, id: &str, topic: &str, count: usize, window: usize) -> Vec<u8> {
    let mut client = Raw::tcp(port);
    client.send(&raw::connect_v5(id, 60, None));
    let (header, body) = client.expect_packet();
    assert_eq!((header, body.get(1)), (0x20, Some(&0)), "CONNACK for {id}");
    let mut writer = client.stream.try_clone().expect("clone");
    let acked = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&acked);
    let topic = topic.to_owned();
    let start = Instant::now();
    let writing = std::thread::spawn(move || {
        let payload = vec![b'x'; PAYLOAD];
        for n in 1..=count {
            while n > seen.load(Ordering::Acquire) + window {
                if start.elapsed() > GIVE_UP {
                    return;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            let packet_id = u16::try_from(n).expect("fewer than 65,536");
            if writer
                .write_all(&publish(true, &topic, &payload, 1, packet_id, false))
                .is_err()
            {
                return;
            }
        }
    });
    let mut reasons = Vec::with_capacity(count);
    while reasons.len() < count {
        match client.read(GIVE_UP.saturating_sub(start.elapsed())) {
            Got::Packet(0x40, body) => {
                reasons.push(body.get(2).copied().unwrap_or(0));
                acked.fetch_add(1, Ordering::Release);
            }
            Got::Packet(..) => {}
            Got::Timeout | Got::Closed => break,
        }
    }
    let _ = client.stream.shutdown(std::net::Shutdown::Both);
    writing.join().expect("writer");
    reasons
}

#[test]
fn memory_limit_holds_under_a_flood_from_many_clients() {
    // Per-session bounds far above what the flood offers: only the global limit holds it.
    const LIMIT_KIB: u64 = 4 * 1024;
    let limits = format!(
        "[limits]\nsys_interval = 1\nmax_queued_messages = 100000\nmemory_limit = {}\n",
        LIMIT_KIB * 1024
    );
    let broker = Broker::start("slow_subscriber_memory_limit", "", &limits);
    let _stuck: Vec<_> = (0..10)
        .map(|n| stuck_subscriber(broker.port, &format!("stuck{n}"), "load/t"))
        .collect();
    let rss_before_kib = broker.rss_kib();
    let bystander = Bystander::start(&broker);
    let per_publisher = 5_000;
    let port = broker.port;
    let threads: Vec<_> = (0..8)
        .map(|n| {
            std::thread::spawn(move || {
                publisher_v5(port, &format!("pub{n}"), "load/t", per_publisher, 32)
            })
        })
        .collect();
    let reasons: Vec<Vec<u8>> = threads
        .into_iter()
        .map(|t| t.join().expect("publisher"))
        .collect();
    // A 3.1.1 publisher at the limit cannot be told: it is disconnected rather than
    // acknowledged for a message that was dropped [MQTT311-3.3.5-2].
    let mut old = client_v311(port, "pub311");
    old.send(&publish(false, "load/t", &[b'x'; PAYLOAD], 1, 1, false));
    let answer = old.read(Duration::from_secs(5));
    let (pings, rss_peak_kib) = bystander.finish();
    let growth = rss_peak_kib.saturating_sub(rss_before_kib);
    let max_ping = pings.iter().max().copied().unwrap_or_default();
    let refused: usize = reasons
        .iter()
        .map(|r| r.iter().filter(|c| **c == 0x97).count())
        .sum();
    let answered: usize = reasons.iter().map(Vec::len).sum();
    eprintln!(
        "memory_limit {LIMIT_KIB} KiB: {answered} of {} PUBACKs, {refused} with 0x97; \
         RSS +{growth} KiB (peak {rss_peak_kib} KiB); {} pings, max {max_ping:?}; 3.1.1 publisher: {answer:?}",
        8 * per_publisher,
        pings.len()
    );
    assert_eq!(answered, 8 * per_publisher, "every PUBLISH answered");
    assert!(
        reasons.iter().flatten().all(|c| *c == 0 || *c == 0x97),
        "only Success or Quota exceeded"
    );
    assert!(refused > 0, "the limit was reached");
    assert_eq!(answer, Got::Closed, "3.1.1 publisher disconnected");
    assert!(
        growth <= LIMIT_KIB + 24 * 1024,
        "RSS grew by {growth} KiB with a limit of {LIMIT_KIB} KiB"
    );
    assert!(max_ping <= PING_WITHIN, "a ping took {max_ping:?}");
}
