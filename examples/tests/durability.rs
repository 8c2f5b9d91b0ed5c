//! Durability of the `mqtt-broker` binary on its default redb store: a graceful restart keeps
//! retained messages, subscriptions and the queued QoS 1/2 messages of an offline persistent
//! session; SIGKILL at random moments while clients publish loses nothing that was
//! acknowledged (PUBACK / PUBREC), and QoS 2 messages arrive exactly once.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{Guard, free_port, run, scratch_dir, wait_for_port};

/// A blocking MQTT 3.1.1 or 5.0 client, just enough for these tests.
struct Client {
    stream: TcpStream,
    /// 4 (3.1.1) or 5.
    version: u8,
    /// QoS 2 receiver state: packet identifiers PUBREC'd and not yet released, kept by the
    /// caller across connections of a persistent session ([MQTT-4.3.3-9], v5 [MQTT-4.3.3-10]): a
    /// PUBLISH resent under one of them is the same message, not a new one.
    unreleased: HashSet<[u8; 2]>,
}

/// One packet read: first header byte and body.
type Packet = (u8, Vec<u8>);

/// A received message: topic, payload, QoS, retain.
type Received = (String, Vec<u8>, u8, bool);

fn string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
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
    out.extend_from_slice(body);
    out
}

/// Skips a v5 property block at `at` (its variable byte integer length and the properties).
fn skip_properties(body: &[u8], mut at: usize) -> usize {
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let byte = body[at];
        at += 1;
        len |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    at + len
}

impl Client {
    fn connect(port: u16, id: &str, clean: bool) -> std::io::Result<Client> {
        Client::connect_v(port, id, clean, 4, HashSet::new())
    }

    /// Connects with protocol `version` (4 or 5); a v5 session that is not clean gets a Session
    /// Expiry Interval of an hour, so it outlives the connection as a 3.1.1 one does.
    fn connect_v(
        port: u16,
        id: &str,
        clean: bool,
        version: u8,
        unreleased: HashSet<[u8; 2]>,
    ) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut client = Client {
            stream,
            version,
            unreleased,
        };
        let mut body = Vec::new();
        string(&mut body, "MQTT");
        body.extend_from_slice(&[version, if clean { 0x02 } else { 0x00 }, 0, 60]);
        if version == 5 {
            if clean {
                body.push(0);
            } else {
                body.extend_from_slice(&[5, 0x11, 0, 0, 0x0e, 0x10]);
            }
        }
        string(&mut body, id);
        client.send(&frame(0x10, &body))?;
        let (first, ack) = client.read()?;
        if first != 0x20 || ack.get(1) != Some(&0) {
            return Err(std::io::Error::other("CONNACK refused"));
        }
        Ok(client)
    }

    /// The empty property block of a v5 packet.
    fn properties(&self, body: &mut Vec<u8>) {
        if self.version == 5 {
            body.push(0);
        }
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    fn read(&mut self) -> std::io::Result<Packet> {
        let mut first = [0u8; 1];
        self.stream.read_exact(&mut first)?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut byte = [0u8; 1];
            self.stream.read_exact(&mut byte)?;
            len |= usize::from(byte[0] & 0x7f) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body)?;
        Ok((first[0], body))
    }

    fn subscribe(&mut self, filter: &str, qos: u8) -> std::io::Result<()> {
        let mut body = vec![0, 1];
        self.properties(&mut body);
        string(&mut body, filter);
        body.push(qos);
        self.send(&frame(0x82, &body))?;
        let (first, _) = self.read()?;
        assert_eq!(first, 0x90, "SUBACK");
        Ok(())
    }

    /// Publishes and waits for the PUBACK (QoS 1) or PUBREC (QoS 2): `Ok` means acknowledged.
    /// The QoS 2 exchange is then completed (PUBREL / PUBCOMP).
    fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
        id: u16,
    ) -> std::io::Result<()> {
        let mut body = Vec::new();
        string(&mut body, topic);
        body.extend_from_slice(&id.to_be_bytes());
        self.properties(&mut body);
        body.extend_from_slice(payload);
        self.send(&frame(0x30 | (qos << 1) | u8::from(retain), &body))?;
        let (first, ack) = self.read()?;
        let expected = if qos == 1 { 0x40 } else { 0x50 };
        // A v5 reason code of 0x80 or above is a refusal, not an acknowledgement.
        if first != expected || ack.get(2).is_some_and(|reason| *reason >= 0x80) {
            return Err(std::io::Error::other("unexpected acknowledgement"));
        }
        Ok(())
    }

    fn release(&mut self, id: u16) -> std::io::Result<()> {
        let [a, b] = id.to_be_bytes();
        self.send(&frame(0x62, &[a, b]))?;
        let (first, _) = self.read()?;
        if first != 0x70 {
            return Err(std::io::Error::other("expected PUBCOMP"));
        }
        Ok(())
    }

    /// Receives publishes until `idle` passes without one, acknowledging each (QoS 2: PUBREC,
    /// then PUBCOMP for the PUBREL). Returns (topic, payload, qos, retain) in arrival order; a
    /// QoS 2 message resent under an identifier not yet released is not returned twice.
    fn receive_all(&mut self, idle: Duration) -> Vec<Received> {
        self.receive(idle).0
    }

    /// As [`Client::receive_all`], and whether the connection is still open.
    fn receive(&mut self, idle: Duration) -> (Vec<Received>, bool) {
        self.stream.set_read_timeout(Some(idle)).unwrap();
        let mut got = Vec::new();
        loop {
            let (first, body) = match self.read() {
                Ok(packet) => packet,
                Err(e) => {
                    let open = matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                    return (got, open);
                }
            };
            let sent = match first >> 4 {
                3 => {
                    let qos = (first >> 1) & 3;
                    let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                    let topic = String::from_utf8(body[2..2 + len].to_vec()).unwrap();
                    let mut at = 2 + len;
                    let id = if qos > 0 {
                        at += 2;
                        Some([body[at - 2], body[at - 1]])
                    } else {
                        None
                    };
                    if self.version == 5 {
                        at = skip_properties(&body, at);
                    }
                    let message = (topic, body[at..].to_vec(), qos, first & 1 == 1);
                    match (qos, id) {
                        (1, Some(id)) => {
                            got.push(message);
                            self.send(&frame(0x40, &id))
                        }
                        (2, Some(id)) => {
                            if self.unreleased.insert(id) {
                                got.push(message);
                            }
                            self.send(&frame(0x50, &id))
                        }
                        _ => {
                            got.push(message);
                            Ok(())
                        }
                    }
                }
                6 => {
                    self.unreleased.remove(&[body[0], body[1]]);
                    self.send(&frame(0x70, &body[..2]))
                }
                _ => Ok(()),
            };
            if sent.is_err() {
                return (got, false);
            }
        }
    }

    /// Disconnects normally; returns the QoS 2 receiver state for the session's next
    /// connection.
    fn disconnect(mut self) -> HashSet<[u8; 2]> {
        let _ = self.send(&[0xe0, 0]);
        self.unreleased
    }
}

fn broker(dir: &Path, port: u16) -> Guard {
    broker_with(dir, port, &[])
}

/// The broker in `dir` (its store in `dir/data`) with extra command-line arguments.
fn broker_with(dir: &Path, port: u16, args: &[&str]) -> Guard {
    let guard = Guard::spawn(
        Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
            .args(["-p", &port.to_string(), "--http", "off"])
            .args(args)
            .env("RUST_LOG", "warn")
            .current_dir(dir),
    );
    wait_for_port(port, Duration::from_secs(20));
    guard
}

/// Sends SIGTERM and waits for the broker to exit.
fn stop_gracefully(guard: Guard) {
    let pid = guard.0.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let (code, _, stderr) = guard.finish(Duration::from_secs(20));
    assert!(code.is_some(), "broker did not stop: {stderr}");
}

fn retained(port: u16) -> HashMap<String, Vec<u8>> {
    let mut reader = Client::connect(port, "retained-reader", true).unwrap();
    reader.subscribe("r/#", 1).unwrap();
    let got = reader.receive_all(Duration::from_millis(700));
    reader.disconnect();
    got.into_iter()
        .filter(|(_, _, _, retain)| *retain)
        .map(|(topic, payload, _, _)| (topic, payload))
        .collect()
}

#[test]
fn graceful_restart_keeps_retained_subscriptions_and_queued_messages() {
    let dir = scratch_dir("durability-restart");
    let port = free_port();
    let guard = broker(&dir, port);
    let mut subscriber = Client::connect(port, "sub", false).unwrap();
    subscriber.subscribe("t/#", 2).unwrap();
    subscriber.disconnect();
    let mut publisher = Client::connect(port, "pub", true).unwrap();
    publisher.publish("r/state", b"on", 1, true, 1).unwrap();
    publisher.publish("t/1", b"one", 1, false, 2).unwrap();
    publisher.publish("t/2", b"two", 2, false, 3).unwrap();
    publisher.release(3).unwrap();
    publisher.disconnect();
    std::thread::sleep(Duration::from_millis(200));
    stop_gracefully(guard);

    let guard = broker(&dir, port);
    assert_eq!(
        retained(port).get("r/state").map(Vec::as_slice),
        Some(&b"on"[..])
    );
    let mut subscriber = Client::connect(port, "sub", false).unwrap();
    let got = subscriber.receive_all(Duration::from_millis(700));
    let payloads: Vec<(&[u8], u8)> = got.iter().map(|(_, p, q, _)| (p.as_slice(), *q)).collect();
    assert_eq!(payloads, [(&b"one"[..], 1), (&b"two"[..], 2)]);
    // The subscription itself survived too: a new message reaches the resumed session.
    let mut publisher = Client::connect(port, "pub", true).unwrap();
    publisher.publish("t/3", b"three", 1, false, 4).unwrap();
    let got = subscriber.receive_all(Duration::from_millis(500));
    assert_eq!(got.len(), 1, "{got:?}");
    stop_gracefully(guard);
}

/// What the publishers were told was stored, and which payloads count as QoS 2.
#[derive(Default)]
struct Acked {
    messages: HashSet<Vec<u8>>,
    qos2: HashSet<Vec<u8>>,
    /// Per retained topic, the highest counter acknowledged.
    retained: HashMap<String, u64>,
}

fn publisher(
    port: u16,
    (round, qos, version): (u32, u8, u8),
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    let id = format!("pub-{round}-{qos}");
    let Ok(mut client) = Client::connect_v(port, &id, true, version, HashSet::new()) else {
        return;
    };
    let retained_topic = format!("r/{round}-{qos}");
    for n in 0..200u64 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let id = (n % 60_000) as u16 + 1;
        let payload = format!("{round}-{qos}-{n}").into_bytes();
        if n % 10 == 0 {
            let value = n.to_string();
            if client
                .publish(&retained_topic, value.as_bytes(), 1, true, id)
                .is_err()
            {
                return;
            }
            acked
                .lock()
                .unwrap()
                .retained
                .insert(retained_topic.clone(), n);
            continue;
        }
        if client
            .publish(&format!("t/{qos}"), &payload, qos, false, id)
            .is_err()
        {
            return;
        }
        {
            let mut acked = acked.lock().unwrap();
            if qos == 2 {
                acked.qos2.insert(payload.clone());
            }
            acked.messages.insert(payload);
        }
        if qos == 2 && client.release(id).is_err() {
            return;
        }
    }
}

/// A persistent subscriber to `t/#` at QoS 2, its deliveries counted across connections.
struct Subscriber {
    id: &'static str,
    version: u8,
    unreleased: HashSet<[u8; 2]>,
    delivered: HashMap<Vec<u8>, u32>,
}

impl Subscriber {
    fn new(port: u16, id: &'static str, version: u8) -> Subscriber {
        let mut client = Client::connect_v(port, id, false, version, HashSet::new()).unwrap();
        client.subscribe("t/#", 2).unwrap();
        Subscriber {
            id,
            version,
            unreleased: client.disconnect(),
            delivered: HashMap::new(),
        }
    }

    fn connect(&mut self, port: u16) -> std::io::Result<Client> {
        let unreleased = std::mem::take(&mut self.unreleased);
        Client::connect_v(port, self.id, false, self.version, unreleased)
    }

    fn count(&mut self, got: Vec<Received>) {
        for (_, payload, _, _) in got {
            *self.delivered.entry(payload).or_default() += 1;
        }
    }

    /// Connected until `stop` or the broker goes away, taking what comes.
    fn stay_online(mut self, port: u16, stop: Arc<AtomicBool>) -> Subscriber {
        let Ok(mut client) = self.connect(port) else {
            return self;
        };
        loop {
            let (got, open) = client.receive(Duration::from_millis(100));
            self.count(got);
            if !open || stop.load(Ordering::Relaxed) {
                break;
            }
        }
        self.unreleased = std::mem::take(&mut client.unreleased);
        self
    }

    /// Everything acknowledged must have arrived, and every QoS 2 message exactly once.
    fn check(&self, round: u32, acked: &Acked) {
        let lost: Vec<_> = acked
            .messages
            .iter()
            .filter(|m| !self.delivered.contains_key(*m))
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}, {}: {} of {} acknowledged messages lost: {lost:?}",
            self.id,
            lost.len(),
            acked.messages.len()
        );
        for payload in &acked.qos2 {
            assert_eq!(
                self.delivered.get(payload),
                Some(&1),
                "{}: QoS 2 {payload:?} not exactly once",
                self.id
            );
        }
    }
}

/// Rounds of publishers at QoS 1 and 2 (MQTT `versions` alternating) with retained updates;
/// the broker, started with `args`, is SIGKILLed at a random moment of each round, one
/// persistent subscriber connected and one offline; after each restart nothing acknowledged
/// (PUBACK / PUBREC) may be missing, retained topics must not go back, and QoS 2 messages
/// arrive exactly once ([MQTT-4.3.3-10], v5 [MQTT-4.3.3-13] on the subscriber side).
fn kill_rounds(name: &str, args: &[&str], versions: [u8; 2]) {
    let dir = scratch_dir(name);
    let port = free_port();
    let guard = broker_with(&dir, port, args);
    let mut offline = Subscriber::new(port, "sub-offline", versions[0]);
    let mut online = Some(Subscriber::new(port, "sub-online", versions[1]));
    std::thread::sleep(Duration::from_millis(100));
    let mut guard = Some(guard);
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let started = Instant::now();
    let mut all = Acked::default();
    for round in 0..4 {
        let acked = Arc::new(Mutex::new(Acked::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let listening = {
            let (subscriber, stop) = (online.take().unwrap(), stop.clone());
            std::thread::spawn(move || subscriber.stay_online(port, stop))
        };
        let publishers: Vec<_> = [1u8, 2, 1, 2]
            .into_iter()
            .enumerate()
            .map(|(i, qos)| {
                let (stop, acked) = (stop.clone(), acked.clone());
                let plan = (round * 10 + i as u32, qos, versions[i % 2]);
                std::thread::spawn(move || publisher(port, plan, stop, acked))
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        std::thread::sleep(Duration::from_millis(150 + u64::from(seed % 600)));
        let mut killed = guard.take().unwrap();
        killed.0.kill().unwrap(); // SIGKILL
        let _ = killed.0.wait();
        stop.store(true, Ordering::Relaxed);
        publishers.into_iter().for_each(|p| p.join().unwrap());
        let mut subscriber = listening.join().unwrap();

        guard = Some(broker_with(&dir, port, args));
        let acked = Arc::into_inner(acked).unwrap().into_inner().unwrap();
        let retained = retained(port);
        for (topic, counter) in &acked.retained {
            let kept: u64 = retained
                .get(topic)
                .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
                .unwrap_or_else(|| panic!("round {round}: retained {topic} lost"));
            assert!(
                kept >= *counter,
                "round {round}: retained {topic} went back to {kept} from {counter}"
            );
        }
        all.messages.extend(acked.messages.iter().cloned());
        all.qos2.extend(acked.qos2.iter().cloned());
        for subscriber in [&mut offline, &mut subscriber] {
            let mut client = subscriber.connect(port).unwrap();
            let got = client.receive_all(Duration::from_millis(1000));
            subscriber.count(got);
            subscriber.unreleased = client.disconnect();
            subscriber.check(round, &all);
        }
        online = Some(subscriber);
        eprintln!(
            "{name} round {round}: {} acknowledged messages, {} retained topics, all kept",
            acked.messages.len(),
            acked.retained.len()
        );
        assert!(started.elapsed() < Duration::from_secs(120), "bounded time");
    }
    if let Some(guard) = guard {
        stop_gracefully(guard);
    }
}

#[test]
fn sigkill_while_publishing_loses_nothing_acknowledged() {
    kill_rounds("durability-crash", &[], [4, 5]);
}

/// A TOML configuration with `durability = "<durability>"`, in a scratch directory of its own;
/// its path.
fn toml_config(name: &str, durability: &str) -> String {
    let config = scratch_dir(name).join("broker.toml");
    std::fs::write(&config, format!("durability = \"{durability}\"\n")).unwrap();
    config.to_string_lossy().into_owned()
}

/// `periodic` with an interval far longer than the test: no checkpoint happens before the
/// kills, so everything kept comes from the journal, written before each acknowledgement.
#[test]
fn sigkill_in_periodic_mode_loses_nothing_acknowledged() {
    let config = toml_config("durability-periodic-crash-config", "periodic 1800s");
    kill_rounds("durability-periodic-crash", &["-c", &config], [5, 4]);
}

/// The store file of a broker started in `dir`.
fn store_file(dir: &Path) -> std::path::PathBuf {
    dir.join("data").join("mqtt-broker.redb")
}

/// A store with one retained message, written by a broker that stopped cleanly.
fn store_with_retained(dir: &Path) {
    let port = free_port();
    let guard = broker(dir, port);
    let mut publisher = Client::connect(port, "pub", true).unwrap();
    publisher.publish("r/state", b"on", 1, true, 1).unwrap();
    publisher.disconnect();
    stop_gracefully(guard);
}

/// Starts the broker on a damaged store: it must refuse, saying why, with a non-zero status.
fn assert_refused(dir: &Path, damage: &str) {
    let output = run(
        Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
            .args(["-p", &free_port().to_string(), "--http", "off"])
            .env("RUST_LOG", "warn")
            .current_dir(dir),
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "{damage}: the broker started on a damaged store"
    );
    assert!(
        stderr.contains("is corrupt") && stderr.contains("mqtt-broker.redb"),
        "{damage}: unclear message: {stderr}"
    );
    assert!(
        stderr.contains("--start-fresh"),
        "{damage}: the message does not name the way out: {stderr}"
    );
}

#[test]
fn a_corrupt_store_is_refused_and_start_fresh_keeps_it_aside() {
    let dir = scratch_dir("durability-corrupt");
    store_with_retained(&dir);
    let path = store_file(&dir);
    let good = std::fs::read(&path).unwrap();

    // Truncated.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert_refused(&dir, "truncated");
    // Header bytes overwritten.
    let mut damaged = good.clone();
    damaged[..64].fill(0xA5);
    std::fs::write(&path, &damaged).unwrap();
    assert_refused(&dir, "overwritten header");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        damaged,
        "a refused store was changed"
    );

    // --start-fresh: the damaged file is renamed aside, never deleted, and the broker runs on
    // an empty store.
    let port = free_port();
    let guard = broker_with(&dir, port, &["--start-fresh"]);
    let aside: Vec<_> = std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("mqtt-broker.redb.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(dir.join("data").join(&aside[0])).unwrap(),
        damaged
    );
    assert!(retained(port).is_empty(), "the fresh store has old data");
    let mut publisher = Client::connect(port, "pub", true).unwrap();
    publisher.publish("r/new", b"fresh", 1, true, 1).unwrap();
    publisher.disconnect();
    stop_gracefully(guard);
    let guard = broker(&dir, port);
    assert_eq!(
        retained(port).get("r/new").map(Vec::as_slice),
        Some(&b"fresh"[..])
    );
    stop_gracefully(guard);
}

#[test]
fn a_store_from_a_newer_format_is_refused() {
    let dir = scratch_dir("durability-newer");
    store_with_retained(&dir);
    {
        let db = redb::Database::create(store_file(&dir)).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format_version", mqtt_store::FORMAT_VERSION + 1)
                .unwrap();
        }
        tx.commit().unwrap();
    }
    for args in [&[][..], &["--start-fresh"][..]] {
        let output = run(
            Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
                .args(["-p", &free_port().to_string(), "--http", "off"])
                .args(args)
                .env("RUST_LOG", "warn")
                .current_dir(&dir),
            Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{args:?}: started on a newer store"
        );
        assert!(
            stderr.contains(&format!(
                "format version {}",
                mqtt_store::FORMAT_VERSION + 1
            )),
            "{args:?}: unclear message: {stderr}"
        );
    }
}

#[test]
fn periodic_durability_keeps_what_was_written_before_the_last_sync() {
    let dir = scratch_dir("durability-periodic");
    let config = toml_config("durability-periodic-config", "periodic 1s");
    let port = free_port();
    let guard = broker_with(&dir, port, &["-c", &config]);
    let mut subscriber = Client::connect(port, "sub", false).unwrap();
    subscriber.subscribe("t/#", 1).unwrap();
    subscriber.disconnect();
    let mut publisher = Client::connect(port, "pub", true).unwrap();
    for n in 1..=20u16 {
        let payload = n.to_string();
        publisher
            .publish(&format!("r/{n}"), payload.as_bytes(), 1, true, n)
            .unwrap();
        publisher
            .publish("t/queued", payload.as_bytes(), 1, false, n)
            .unwrap();
    }
    // Everything was acknowledged at once; after the 1 s interval (and a margin) it is on
    // disk. A kill inside the interval may lose the interval: that is what periodic means.
    std::thread::sleep(Duration::from_millis(2500));
    let mut killed = guard;
    killed.0.kill().unwrap(); // SIGKILL
    let _ = killed.0.wait();

    let guard = broker_with(&dir, port, &["-c", &config]);
    let kept = retained(port);
    for n in 1..=20u16 {
        assert_eq!(
            kept.get(&format!("r/{n}")).map(Vec::as_slice),
            Some(n.to_string().as_bytes()),
            "retained r/{n} lost"
        );
    }
    let mut subscriber = Client::connect(port, "sub", false).unwrap();
    let got = subscriber.receive_all(Duration::from_millis(700));
    assert_eq!(got.len(), 20, "queued messages: {got:?}");
    stop_gracefully(guard);
}
