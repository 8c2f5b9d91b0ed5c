//! QoS 1 throughput with durable state (ignored; run by hand, release build):
//!
//! ```text
//! taskset -c 1 cargo test --release -p mqtt-broker --test durability_bench -- --ignored --nocapture
//! ```
//!
//! 8 publishers (MQTT 3.1.1, QoS 1, 64-byte payloads, 64 unacknowledged messages each) publish
//! on their own topics for `BENCH_SECONDS` (default 5) to one subscriber with a persistent
//! session (clean session off, QoS 1), so that every message is a durable delivery: stored,
//! sent, acknowledged. Brokers, each started fresh on an empty directory and pinned to CPU 0:
//! ours in memory (`persistence false`), ours with `durability = sync` (the default), ours
//! with `periodic 1s`, and Debian's mosquitto with `persistence true` (default
//! `autosave_interval`, 1800 s). `BENCH_ROUNDS` (default 3) rounds, the broker order rotating
//! (`BENCH_BROKER_CPUS=0,1` lets the brokers use both CPUs; `BENCH_BROKER_BIN` runs another
//! build of ours);
//! the table gives medians of publisher acknowledgements per second within the window, and
//! checks that every acknowledged message reached the subscriber.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Guard, free_port, have, scratch_dir, wait_for_port};

const PUBLISHERS: usize = 8;
const WINDOW: usize = 64;
const PAYLOAD: usize = 64;

/// One connection with an input buffer that survives read timeouts.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
}

fn frame(out: &mut Vec<u8>, first: u8, body: &[&[u8]]) {
    out.push(first);
    let mut len: usize = body.iter().map(|b| b.len()).sum();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    for part in body {
        out.extend_from_slice(part);
    }
}

fn string(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

impl Wire {
    fn connect(port: u16, client_id: &str, clean: bool) -> Wire {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut wire = Wire {
            stream,
            buf: vec![0; 1 << 16],
            pos: 0,
            out: Vec::new(),
        };
        wire.buf.clear();
        let mut header = string("MQTT");
        header.extend_from_slice(&[4, if clean { 0x02 } else { 0x00 }, 0, 60]);
        frame(&mut wire.out, 0x10, &[&header, &string(client_id)]);
        wire.flush();
        let (first, body) = wire.expect();
        assert_eq!((first, body.get(1)), (0x20, Some(&0)), "CONNACK");
        wire
    }

    fn flush(&mut self) {
        self.stream.write_all(&self.out).unwrap();
        self.out.clear();
    }

    /// The next complete packet in the buffer: (first byte, body).
    fn parse(&mut self) -> Option<(u8, Vec<u8>)> {
        let data = &self.buf[self.pos..];
        let (mut len, mut shift, mut at) = (0usize, 0, 1);
        loop {
            let byte = *data.get(at)?;
            len |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let body = data.get(at..at + len)?.to_vec();
        let first = data[0];
        self.pos += at + len;
        Some((first, body))
    }

    /// Reads more; `false` on a read timeout.
    fn fill(&mut self) -> bool {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 1 << 16];
        match self.stream.read(&mut chunk) {
            Ok(0) => panic!("broker closed the connection"),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(e) => panic!("read: {e}"),
        }
    }

    fn expect(&mut self) -> (u8, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(packet) = self.parse() {
                return packet;
            }
            assert!(Instant::now() < deadline, "no packet for 10 s");
            self.fill();
        }
    }
}

/// Publishes for `seconds` after the barrier; returns (acknowledged in the window, total).
/// Closed loop: at most `WINDOW` messages unacknowledged, and at most `WINDOW` published but
/// not yet delivered to the subscriber (`delivered`), so that no queue grows and the rate is
/// the broker's steady end-to-end rate.
fn publisher(
    port: u16,
    index: usize,
    start: &Barrier,
    (seconds, rate): (f64, Option<f64>),
    delivered: &AtomicU64,
) -> (u64, u64) {
    let mut wire = Wire::connect(port, &format!("bench-pub-{index}"), true);
    let topic = string(&format!("bench/{index}"));
    let payload = vec![b'x'; PAYLOAD];
    start.wait();
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(seconds);
    // Paced: at most `rate` messages per second since the start.
    let allowed =
        |sent: u64| rate.is_none_or(|r| (sent as f64) < r * began.elapsed().as_secs_f64());
    let (mut sent, mut outstanding, mut in_window, mut total) = (0u64, 0usize, 0u64, 0u64);
    loop {
        let open = Instant::now() < deadline;
        if open {
            let limit = delivered.load(Ordering::Acquire) + WINDOW as u64;
            let before = sent;
            while outstanding < WINDOW && sent < limit && allowed(sent) {
                let id = ((sent % 65_535) + 1) as u16;
                frame(&mut wire.out, 0x32, &[&topic, &id.to_be_bytes(), &payload]);
                sent += 1;
                outstanding += 1;
            }
            if sent > before {
                wire.flush();
            }
        } else if outstanding == 0 {
            return (in_window, total);
        }
        if outstanding == 0 {
            std::thread::sleep(Duration::from_micros(if rate.is_some() {
                1000
            } else {
                100
            }));
            continue;
        }
        let (first, _) = wire.expect();
        assert_eq!(first, 0x40, "PUBACK");
        outstanding -= 1;
        total += 1;
        if open {
            in_window += 1;
        }
        while let Some((first, _)) = wire.parse() {
            assert_eq!(first, 0x40, "PUBACK");
            outstanding -= 1;
            total += 1;
            if Instant::now() < deadline {
                in_window += 1;
            }
        }
    }
}

/// Receives and acknowledges until `done` is set and `expected` messages arrived (or 3 s of
/// silence), counting in `progress`. Returns the messages received.
fn subscriber(
    mut wire: Wire,
    done: &AtomicBool,
    expected: &AtomicU64,
    progress: &AtomicU64,
    delivered: &[AtomicU64],
) -> u64 {
    let mut received = 0u64;
    let mut last = Instant::now();
    loop {
        progress.store(received, Ordering::Release);
        while let Some((first, body)) = wire.parse() {
            if first >> 4 == 3 {
                received += 1;
                let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let publisher: usize = std::str::from_utf8(&body[8..2 + len])
                    .unwrap()
                    .parse()
                    .unwrap();
                delivered[publisher].fetch_add(1, Ordering::Release);
                if (first >> 1) & 3 == 1 {
                    frame(&mut wire.out, 0x40, &[&body[2 + len..4 + len]]);
                }
            }
        }
        wire.flush();
        if done.load(Ordering::Acquire) {
            if received >= expected.load(Ordering::Acquire) {
                return received;
            }
            if last.elapsed() > Duration::from_secs(3) {
                return received;
            }
        }
        if wire.fill() {
            last = Instant::now();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Broker {
    Memory,
    Sync,
    Periodic,
    Mosquitto,
    /// mosquitto saving every 5 s (for the disk comparison).
    Mosquitto5,
    /// Ours with `periodic 5s` (for the disk comparison).
    Periodic5,
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Broker::Memory => "mqtt-broker, persistence off",
            Broker::Sync => "mqtt-broker, durability sync",
            Broker::Periodic => "mqtt-broker, durability periodic 1s",
            Broker::Mosquitto => "mosquitto, persistence true",
            Broker::Mosquitto5 => "mosquitto, autosave_interval 5",
            Broker::Periodic5 => "mqtt-broker, durability periodic 5s",
        }
    }

    fn start(self, dir: &Path, port: u16) -> Guard {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 100\n\
             max_queued_messages 1000000\npersistence_location {}/\n",
            data.display()
        );
        conf += match self {
            Broker::Memory => "persistence false\n",
            Broker::Sync => "persistence true\nautosave_interval 0\n",
            Broker::Periodic => "persistence true\nautosave_interval 1\n",
            Broker::Periodic5 => "persistence true\nautosave_interval 5\n",
            Broker::Mosquitto => {
                "persistence true\nmax_queued_bytes 16777216\nset_tcp_nodelay true\nlog_dest none\n"
            }
            Broker::Mosquitto5 => {
                "persistence true\nautosave_interval 5\nmax_queued_bytes 16777216\n\
                 set_tcp_nodelay true\nlog_dest none\n"
            }
        };
        let path = dir.join("broker.conf");
        std::fs::write(&path, conf).unwrap();
        let ours = env_or(
            "BENCH_BROKER_BIN",
            env!("CARGO_BIN_EXE_mqtt-broker").to_owned(),
        );
        let program = match self {
            Broker::Mosquitto | Broker::Mosquitto5 => "mosquitto",
            _ => ours.as_str(),
        };
        let guard = Guard::spawn(
            Command::new("taskset")
                .args([
                    "-c",
                    &env_or("BENCH_BROKER_CPUS", "0".to_owned()),
                    program,
                    "-c",
                ])
                .arg(&path)
                .env("RUST_LOG", "warn"),
        );
        wait_for_port(port, Duration::from_secs(20));
        guard
    }
}

/// What one run measured.
struct Measured {
    /// Publisher acknowledgements per second within the window.
    acked: f64,
    /// Messages received by the subscriber per second within the window.
    delivered: f64,
    /// Acknowledged messages that never reached the subscriber (dropped by a queue bound).
    lost: u64,
    /// Within the window: bytes the broker handed to `write` (`wchar`), bytes it dirtied
    /// for the disk less those cancelled by truncation before writeback (`write_bytes` −
    /// `cancelled_write_bytes`), and its fsync + fdatasync calls (perf's syscall tracepoints;
    /// `None` without perf).
    disk: Disk,
}

#[derive(Debug, Default, Clone, Copy)]
struct Disk {
    wchar: u64,
    dirtied: i64,
    fsyncs: Option<u64>,
}

/// `wchar` and `write_bytes − cancelled_write_bytes` of `pid` now.
fn io_counters(pid: u32) -> (u64, i64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let dirtied = field("write_bytes:") as i64 - field("cancelled_write_bytes:") as i64;
    (field("wchar:"), dirtied)
}

/// Counts the fsync and fdatasync calls of `pid` for `seconds` (perf, in the background).
fn count_fsyncs(pid: u32, seconds: f64) -> Option<std::process::Child> {
    Command::new("perf")
        .args(["stat", "-x", ",", "-e"])
        .arg("syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync")
        .args(["-p", &pid.to_string(), "--", "sleep", &format!("{seconds}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()
}

fn fsyncs_counted(perf: Option<std::process::Child>) -> Option<u64> {
    let out = perf?.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let counts: Vec<u64> = text
        .lines()
        .filter(|l| l.contains("syscalls:sys_enter_f"))
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect();
    (counts.len() == 2).then(|| counts.iter().sum())
}

/// The bench's load: a subscriber with a persistent session on `bench/#` (QoS 1) and
/// `PUBLISHERS` publishers (paced to `rate` in all, if given), all started at `start`.
struct Load {
    /// The publishers and `extra` more parties wait here; the caller too.
    start: Arc<Barrier>,
    progress: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    expected: Arc<AtomicU64>,
    receiver: std::thread::JoinHandle<u64>,
    publishers: Vec<std::thread::JoinHandle<(u64, u64)>>,
}

impl Load {
    fn start(port: u16, seconds: f64, rate: Option<f64>, extra: usize) -> Load {
        let mut sub = Wire::connect(port, "bench-sub", false);
        let mut subscribe = vec![0, 1];
        subscribe.extend(string("bench/#"));
        subscribe.push(1);
        frame(&mut sub.out, 0x82, &[&subscribe]);
        sub.flush();
        assert_eq!(sub.expect().0, 0x90, "SUBACK");
        let done = Arc::new(AtomicBool::new(false));
        let expected = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(AtomicU64::new(0));
        let delivered: Arc<Vec<AtomicU64>> =
            Arc::new((0..PUBLISHERS).map(|_| AtomicU64::new(0)).collect());
        let receiver = {
            let (done, expected, progress) = (done.clone(), expected.clone(), progress.clone());
            let delivered = delivered.clone();
            std::thread::spawn(move || subscriber(sub, &done, &expected, &progress, &delivered))
        };
        let start = Arc::new(Barrier::new(PUBLISHERS + 1 + extra));
        let publishers = (0..PUBLISHERS)
            .map(|i| {
                let (start, delivered) = (start.clone(), delivered.clone());
                let pace = rate.map(|r| r / PUBLISHERS as f64);
                std::thread::spawn(move || {
                    publisher(port, i, &start, (seconds, pace), &delivered[i])
                })
            })
            .collect();
        Load {
            start,
            progress,
            done,
            expected,
            receiver,
            publishers,
        }
    }

    /// Waits for the publishers and for the subscriber to receive what they sent: (messages
    /// acknowledged within the window, in all, received).
    fn finish(self) -> (u64, u64, u64) {
        let (mut in_window, mut total) = (0, 0);
        for p in self.publishers {
            let (w, t) = p.join().unwrap();
            in_window += w;
            total += t;
        }
        self.expected.store(total, Ordering::Release);
        self.done.store(true, Ordering::Release);
        let received = self.receiver.join().unwrap();
        (in_window, total, received)
    }
}

fn run(broker: Broker, seconds: f64, rate: Option<f64>) -> Measured {
    let dir = scratch_dir(&format!("durability-bench-{broker:?}"));
    let port = free_port();
    let guard = broker.start(&dir, port);
    let pid = guard.0.id();
    let load = Load::start(port, seconds, rate, 0);
    load.start.wait();
    let before = load.progress.load(Ordering::Acquire);
    let (wchar, dirtied) = io_counters(pid);
    let perf = count_fsyncs(pid, seconds);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let within = load.progress.load(Ordering::Acquire) - before;
    let (wchar_end, dirtied_end) = io_counters(pid);
    let disk = Disk {
        wchar: wchar_end - wchar,
        dirtied: dirtied_end - dirtied,
        fsyncs: fsyncs_counted(perf),
    };
    let (in_window, total, received) = load.finish();
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
    Measured {
        acked: in_window as f64 / seconds,
        delivered: within as f64 / seconds,
        lost: total.saturating_sub(received),
        disk,
    }
}

/// The environment variable `name` parsed, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
#[ignore = "benchmark: run by hand with --release --ignored --nocapture"]
fn qos1_throughput_with_durable_sessions() {
    let seconds: f64 = env_or("BENCH_SECONDS", 5.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let mut brokers = vec![Broker::Memory, Broker::Sync, Broker::Periodic];
    if have("mosquitto", "the mosquitto column") {
        brokers.push(Broker::Mosquitto);
    }
    // BENCH_ONLY=sync (or memory, periodic, mosquitto) runs one broker, e.g. under a profiler.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        brokers.retain(|b| format!("{b:?}").eq_ignore_ascii_case(&only));
    }
    let mut acked: Vec<Vec<f64>> = vec![Vec::new(); brokers.len()];
    let mut delivered: Vec<Vec<f64>> = vec![Vec::new(); brokers.len()];
    for round in 0..rounds {
        for k in 0..brokers.len() {
            let i = (k + round) % brokers.len();
            let m = run(brokers[i], seconds, None);
            eprintln!(
                "round {round}: {:<38} acked {:>8.0} msg/s, delivered {:>8.0} msg/s, \
                 dropped by queue bounds {}",
                brokers[i].name(),
                m.acked,
                m.delivered,
                m.lost
            );
            acked[i].push(m.acked);
            delivered[i].push(m.delivered);
        }
    }
    let acked: Vec<f64> = acked.iter_mut().map(|r| median(r)).collect();
    let delivered: Vec<f64> = delivered.iter_mut().map(|r| median(r)).collect();
    println!(
        "\n| broker | publisher acks/s | vs in-memory | subscriber deliveries/s | vs in-memory |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (i, broker) in brokers.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.2} |",
            broker.name(),
            acked[i],
            acked[i] / acked[0].max(1.0),
            delivered[i],
            delivered[i] / delivered[0].max(1.0)
        );
    }
}

/// What the disk pays for 1,000 QoS 1 messages per second to a persistent session, per
/// durability mode and against mosquitto's autosave (ignored; run by hand, release build):
///
/// ```text
/// cargo test --release -p mqtt-broker --test durability_bench disk -- --ignored --nocapture
/// ```
///
/// The same 8 publishers, paced to `BENCH_RATE` (default 1,000) messages per second in all,
/// for `BENCH_SECONDS` (default 20). Per broker: bytes handed to `write` per message, bytes
/// dirtied for the disk per message (page granularity; pages truncated before writeback are
/// not counted), fsync + fdatasync calls in the window. A PUBLISH of the bench is 77 bytes.
#[test]
#[ignore = "benchmark: run by hand with --release --ignored --nocapture"]
fn disk_cost_at_1000_qos1_per_second() {
    let seconds: f64 = env_or("BENCH_SECONDS", 20.0);
    let rate: f64 = env_or("BENCH_RATE", 1000.0);
    let mut brokers = vec![
        Broker::Memory,
        Broker::Sync,
        Broker::Periodic5,
        Broker::Periodic,
    ];
    if have("mosquitto", "the mosquitto rows") {
        brokers.extend([Broker::Mosquitto5, Broker::Mosquitto]);
    }
    println!(
        "\n| broker | acked msg/s | write() bytes/msg | dirtied bytes/msg | fsyncs in {seconds:.0} s |"
    );
    println!("|---|---:|---:|---:|---:|");
    for broker in brokers {
        let m = run(broker, seconds, Some(rate));
        let messages = (m.acked * seconds).max(1.0);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {} |",
            broker.name(),
            m.acked,
            m.disk.wchar as f64 / messages,
            m.disk.dirtied as f64 / messages,
            m.disk.fsyncs.map_or("n/a".to_owned(), |n| n.to_string())
        );
        assert_eq!(m.lost, 0, "{}: acknowledged messages lost", broker.name());
    }
}

/// PUBACK latency of a lone QoS 1 publisher that waits for each acknowledgement (as Tasmota
/// does) on a topic nobody keeps, while the 8 publishers of the throughput bench load a
/// `durability = sync` broker with durable deliveries (ignored; run by hand, release build):
///
/// ```text
/// taskset -c 1 cargo test --release -p mqtt-broker --test durability_bench latency -- --ignored --nocapture
/// ```
///
/// Prints the median, 90th and 99th percentile over `BENCH_SECONDS` (default 5).
#[test]
#[ignore = "benchmark: run by hand with --release --ignored --nocapture"]
fn puback_latency_beside_durable_load() {
    let seconds: f64 = env_or("BENCH_SECONDS", 5.0);
    let dir = scratch_dir("durability-bench-latency");
    let port = free_port();
    let guard = Broker::Sync.start(&dir, port);
    let load = Load::start(port, seconds, None, 1);
    let probe = {
        let start = load.start.clone();
        std::thread::spawn(move || {
            let mut wire = Wire::connect(port, "probe", true);
            let topic = string("probe/state");
            start.wait();
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let mut waits = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let id = ((n % 65_535) + 1) as u16;
                frame(&mut wire.out, 0x32, &[&topic, &id.to_be_bytes(), b"ON"]);
                let sent = Instant::now();
                wire.flush();
                assert_eq!(wire.expect().0, 0x40, "PUBACK");
                waits.push(sent.elapsed());
                std::thread::sleep(Duration::from_millis(2));
            }
            waits
        })
    };
    load.start.wait();
    let mut waits = probe.join().unwrap();
    let (_, total, _) = load.finish();
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
    waits.sort();
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "\nprobe PUBACKs: {} | median {:.3} ms | p90 {:.3} ms | p99 {:.3} ms | load {:.0} msg/s",
        waits.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        total as f64 / seconds
    );
}
