//! The hardening suite's tools: a broker child process started from a per-test TOML file (killed
//! when dropped, its RSS readable from /proc), and a raw MQTT client over a blocking TCP socket
//! that writes hand-built bytes (so malformed packets are as easy as good ones), reads whole
//! frames with timeouts and picks apart the few answers the tests look at.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Guard, free_port, scratch_dir};

/// How long any single read waits before a test gives up on it.
pub const READ_LIMIT: Duration = Duration::from_secs(5);

/// A running `mqtt-broker` with its own configuration file.
pub struct Broker {
    /// The child; killed when dropped.
    pub child: Guard,
    /// The plain MQTT listener's port.
    pub port: u16,
    /// The test's scratch directory (configuration, password and ACL files).
    pub dir: PathBuf,
}

impl Broker {
    /// Starts the binary with a TOML file holding the top-level keys `top`, one anonymous
    /// loopback listener on a free port, then the tables `tables` (e.g. `[limits]`).
    pub fn start(test: &str, top: &str, tables: &str) -> Broker {
        Broker::start_with(test, top, tables, None)
    }

    /// Like [`Broker::start`], with the open-file limit of the broker set to `nofile` (through
    /// `prlimit`, so no code runs between fork and exec in the test). The broker's log goes to
    /// `broker.log` in the scratch directory (a pipe nobody reads could fill and stall it). A
    /// port taken between choosing and binding it is retried with another.
    pub fn start_with(test: &str, top: &str, tables: &str, nofile: Option<u64>) -> Broker {
        let dir = scratch_dir(test);
        for _attempt in 0..3 {
            let port = free_port();
            let conf = dir.join("broker.toml");
            let text = format!(
                "{top}\n[[listener]]\nbind_address = \"127.0.0.1\"\nport = {port}\nallow_anonymous = true\n\n{tables}\n"
            );
            std::fs::write(&conf, text).expect("write config");
            let binary = env!("CARGO_BIN_EXE_mqtt-broker");
            let mut command = match nofile {
                Some(n) => {
                    let mut c = Command::new("prlimit");
                    c.arg(format!("--nofile={n}:{n}")).arg(binary);
                    c
                }
                None => Command::new(binary),
            };
            let log = std::fs::File::create(dir.join("broker.log")).expect("log file");
            command
                .current_dir(&dir) // anything the broker writes stays in the test's directory
                .arg("-c")
                .arg(&conf)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            let mut child = Guard(command.spawn().expect("spawn broker"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Broker { child, port, dir };
                }
                if let Ok(Some(status)) = child.0.try_wait() {
                    let log = std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
                    assert!(
                        log.contains("in use"),
                        "broker exited ({status}) before listening: {log}"
                    );
                    break; // the port was taken meanwhile: try another
                }
                assert!(Instant::now() < deadline, "broker did not listen on {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port for the broker after 3 attempts");
    }

    /// A path inside the test's scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Resident set size of the broker, KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Open file descriptors of the broker.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The broker's `$SYS/broker/...` statistics (needs `sys_interval`), read by a fresh client
    /// that waits `limit` for them.
    pub fn sys_stats(&self, limit: Duration) -> std::collections::HashMap<String, String> {
        let mut c = self.client_v5("sys-reader");
        c.subscribe(1, "$SYS/broker/#", 0);
        let mut stats = std::collections::HashMap::new();
        let end = Instant::now() + limit;
        while let Got::Packet(h, body) = c.read(end.saturating_duration_since(Instant::now())) {
            if h >> 4 == 3 {
                let (topic, _, payload) = parse_publish(true, h, &body);
                let key = topic.trim_start_matches("$SYS/broker/").to_owned();
                stats.insert(key, String::from_utf8_lossy(&payload).into_owned());
            }
        }
        stats
    }

    /// Whether the broker process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// Sends SIGHUP (reload password and ACL files).
    pub fn reload(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    }

    /// A TCP connection with no MQTT sent yet.
    pub fn tcp(&self) -> Raw {
        Raw::tcp(self.port)
    }

    /// A connected v5 client (CONNACK 0 checked).
    pub fn client_v5(&self, id: &str) -> Raw {
        let mut raw = self.tcp();
        raw.send(&connect_v5(id, 60, None));
        let (header, body) = raw.expect_packet();
        assert_eq!(header, 0x20, "CONNACK expected for {id}");
        assert_eq!(body.get(1), Some(&0), "CONNACK refused {id}: {body:?}");
        raw.v5 = true;
        raw
    }

    /// A connected 3.1.1 client (CONNACK 0 checked).
    pub fn client_v311(&self, id: &str) -> Raw {
        let mut raw = self.tcp();
        raw.send(&connect_v311(id, 60, None));
        let (header, body) = raw.expect_packet();
        assert_eq!((header, body.get(1)), (0x20, Some(&0)), "CONNACK for {id}");
        raw
    }
}

/// Resident set size of process `pid`, KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// What a read found.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// A whole packet: first header byte and body.
    Packet(u8, Vec<u8>),
    /// The broker closed the connection (FIN or reset).
    Closed,
    /// Nothing arrived within the limit.
    Timeout,
}

/// A raw MQTT client over a blocking TCP socket.
pub struct Raw {
    /// The socket.
    pub stream: TcpStream,
    /// Whether packets carry v5 property lengths.
    pub v5: bool,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects to the broker's port.
    pub fn tcp(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            v5: false,
            buf: Vec::new(),
        }
    }

    /// Wraps a connected stream (e.g. one with socket options set before connecting).
    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            v5: false,
            buf: Vec::new(),
        }
    }

    /// Connects, returning the error instead of panicking.
    pub fn try_tcp(port: u16) -> io::Result<Raw> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        Ok(Raw {
            stream,
            v5: false,
            buf: Vec::new(),
        })
    }

    /// Writes `bytes`; a broker that already closed may make this fail, which is ignored (the
    /// following read tells).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads one packet, waiting at most `limit`.
    pub fn read(&mut self, limit: Duration) -> Got {
        let deadline = Instant::now() + limit;
        loop {
            if let Some((header, body, used)) = split_frame(&self.buf) {
                self.buf.drain(..used);
                return Got::Packet(header, body);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::Timeout;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Got::Closed,
                Ok(n) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Got::Timeout;
                }
                Err(_) => return Got::Closed,
            }
        }
    }

    /// Reads one packet, panicking on close or timeout.
    pub fn expect_packet(&mut self) -> (u8, Vec<u8>) {
        match self.read(READ_LIMIT) {
            Got::Packet(h, b) => (h, b),
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// Reads packets until one whose type (high nibble) is `kind`, skipping others.
    pub fn expect_kind(&mut self, kind: u8) -> (u8, Vec<u8>) {
        loop {
            let (h, b) = self.expect_packet();
            if h >> 4 == kind {
                return (h, b);
            }
        }
    }

    /// Reads until the broker closes, returning every packet it sent before; panics if the
    /// connection is still open after `limit`.
    pub fn expect_closed(&mut self, limit: Duration) -> Vec<(u8, Vec<u8>)> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left) {
                Got::Packet(h, b) => seen.push((h, b)),
                Got::Closed => return seen,
                Got::Timeout => panic!("still open after {limit:?}; got {seen:?}"),
            }
        }
    }

    /// Sends PINGREQ and waits for PINGRESP, returning the round trip.
    pub fn ping(&mut self) -> Duration {
        let start = Instant::now();
        self.send(&[0xc0, 0]);
        loop {
            match self.read(READ_LIMIT) {
                Got::Packet(0xd0, _) => return start.elapsed(),
                Got::Packet(..) => {}
                other => panic!("no PINGRESP: {other:?}"),
            }
        }
    }

    /// Subscribes to one filter and returns the SUBACK reason codes.
    pub fn subscribe(&mut self, id: u16, filter: &str, qos: u8) -> Vec<u8> {
        self.send(&subscribe(self.v5, id, &[(filter, qos)]));
        let (_, body) = self.expect_kind(9);
        suback_codes(self.v5, &body)
    }
}

/// Splits one frame off the front of `buf`: (first byte, body, bytes used).
pub fn split_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let header = *buf.first()?;
    let mut len = 0usize;
    let mut shift = 0;
    let mut at = 1;
    loop {
        let b = *buf.get(at)?;
        len |= usize::from(b & 0x7f) << shift;
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return None;
        }
    }
    let body = buf.get(at..at + len)?.to_vec();
    Some((header, body, at + len))
}

/// A variable byte integer.
pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A length-prefixed string or binary field.
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A whole frame: first byte, remaining length, body.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// User name and password of a CONNECT.
pub type Login<'a> = Option<(&'a str, &'a str)>;

/// A 3.1.1 CONNECT with CleanSession=1.
pub fn connect_v311(id: &str, keep_alive: u16, login: Login<'_>) -> Vec<u8> {
    connect(4, id, keep_alive, login, &[])
}

/// A 5.0 CONNECT with Clean Start, no properties.
pub fn connect_v5(id: &str, keep_alive: u16, login: Login<'_>) -> Vec<u8> {
    connect(5, id, keep_alive, login, &[])
}

/// A CONNECT of protocol `level` (4 or 5) with Clean Start and `props` (v5 only).
pub fn connect(level: u8, id: &str, keep_alive: u16, login: Login<'_>, props: &[u8]) -> Vec<u8> {
    let mut flags = 0x02;
    if login.is_some() {
        flags |= 0xc0;
    }
    let mut body = field(b"MQTT");
    body.push(level);
    body.push(flags);
    body.extend(keep_alive.to_be_bytes());
    if level == 5 {
        body.extend(varint(props.len()));
        body.extend_from_slice(props);
    }
    body.extend(field(id.as_bytes()));
    if let Some((user, pass)) = login {
        body.extend(field(user.as_bytes()));
        body.extend(field(pass.as_bytes()));
    }
    frame(0x10, &body)
}

/// A SUBSCRIBE with (filter, options) pairs.
pub fn subscribe(v5: bool, id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    for (filter, options) in filters {
        body.extend(field(filter.as_bytes()));
        body.push(*options);
    }
    frame(0x82, &body)
}

/// A PUBLISH; `id` is used when `qos > 0`.
pub fn publish(v5: bool, topic: &str, payload: &[u8], qos: u8, id: u16, retain: bool) -> Vec<u8> {
    let mut body = field(topic.as_bytes());
    if qos > 0 {
        body.extend(id.to_be_bytes());
    }
    if v5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    frame(0x30 | (qos << 1) | u8::from(retain), &body)
}

/// An acknowledgement (PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70) without reason code.
pub fn ack(first: u8, id: u16) -> Vec<u8> {
    frame(first, &id.to_be_bytes())
}

/// The reason codes of a SUBACK body.
pub fn suback_codes(v5: bool, body: &[u8]) -> Vec<u8> {
    let mut rest = body.get(2..).unwrap_or_default();
    if v5 {
        let (len, used) = read_varint(rest);
        rest = rest.get(used + len..).unwrap_or_default();
    }
    rest.to_vec()
}

/// A variable byte integer at the front of `bytes`: (value, bytes used).
pub fn read_varint(bytes: &[u8]) -> (usize, usize) {
    let mut value = 0;
    for (i, b) in bytes.iter().enumerate().take(4) {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    (value, bytes.len())
}

/// Topic, packet id (0 for QoS 0) and payload of a PUBLISH.
pub fn parse_publish(v5: bool, header: u8, body: &[u8]) -> (String, u16, Vec<u8>) {
    let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8_lossy(&body[2..2 + len]).into_owned();
    let mut at = 2 + len;
    let mut id = 0;
    if (header >> 1) & 3 > 0 {
        id = u16::from_be_bytes([body[at], body[at + 1]]);
        at += 2;
    }
    if v5 {
        let (plen, used) = read_varint(&body[at..]);
        at += used + plen;
    }
    (topic, id, body[at..].to_vec())
}

/// Writes `text` to `path`.
pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

/// The `q`-quantile of `samples` (sorted in place).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}
