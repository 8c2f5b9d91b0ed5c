//! Hardening: time limits count whole packets (mosquitto CVE-2017-7651-style slow senders).
//! Keep alive expiry is detected within 1.5 times the keep alive plus a documented slack of
//! 0.5 s (keep alive 2 s: closed between 3.0 and 3.5 s after the last whole packet)
//! [MQTT-3.1.2-22]; a client dripping one byte at a time is closed just the same, and so is one
//! dripping its CONNECT past the connect deadline.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::time::{Duration, Instant};

use raw::{Broker, Got, Raw, connect_v5, publish};

/// Keep alive of the clients, seconds.
const KEEP_ALIVE: u16 = 2;
/// 1.5 x keep alive.
const EXPIRY: Duration = Duration::from_millis(3000);
/// Slack allowed past the expiry (timer and scheduling delay).
const SLACK: Duration = Duration::from_millis(500);
/// Pause between dripped bytes.
const DRIP: Duration = Duration::from_millis(100);

/// A v5 client with keep alive `KEEP_ALIVE`, and the instant its CONNACK arrived.
fn keepalive_client(broker: &Broker, id: &str) -> (Raw, Instant) {
    let mut c = broker.tcp();
    c.send(&connect_v5(id, KEEP_ALIVE, None));
    let (h, body) = c.expect_packet();
    assert_eq!((h, body.get(1)), (0x20, Some(&0)));
    (c, Instant::now())
}

/// Sends `bytes` one at a time every `DRIP` until the broker closes; returns when it closed and
/// what it sent.
fn drip_until_closed(c: &mut Raw, bytes: &[u8], limit: Duration) -> (Instant, Vec<(u8, Vec<u8>)>) {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    for byte in bytes.iter().cycle() {
        c.send(&[*byte]);
        match c.read(DRIP) {
            Got::Closed => return (Instant::now(), seen),
            Got::Packet(h, b) => seen.push((h, b)),
            Got::Timeout => {}
        }
        assert!(Instant::now() < deadline, "still open after {limit:?}");
    }
    unreachable!("cycle never ends")
}

fn assert_within_expiry(start: Instant, closed: Instant, what: &str) {
    let took = closed - start;
    eprintln!("{what}: closed after {took:?}");
    assert!(
        took >= EXPIRY - Duration::from_millis(50) && took <= EXPIRY + SLACK,
        "{what}: closed after {took:?}, expected {EXPIRY:?}..{:?}",
        EXPIRY + SLACK
    );
}

#[test]
fn mqtt_3_1_2_22_silent_client_closed_at_one_and_a_half_keep_alive() {
    let broker = Broker::start("hardening_time_silent", "", "");
    let (mut c, start) = keepalive_client(&broker, "silent");
    let seen = c.expect_closed(EXPIRY + SLACK + Duration::from_secs(2));
    assert_within_expiry(start, Instant::now(), "silent client");
    // v5: DISCONNECT 0x8D Keep Alive timeout first.
    assert!(
        matches!(seen.as_slice(), [(0xe0, body)] if body.first() == Some(&0x8d)),
        "{seen:x?}"
    );
}

#[test]
fn dripping_one_byte_at_a_time_does_not_reset_keep_alive() {
    let broker = Broker::start("hardening_time_drip", "", "");
    let (mut c, start) = keepalive_client(&broker, "drip");
    // A PUBLISH far longer than the time allows, sent a byte at a time.
    let long = publish(true, "drip", &[b'x'; 1000], 0, 0, false);
    let (closed, _) = drip_until_closed(&mut c, &long, EXPIRY + SLACK + Duration::from_secs(2));
    assert_within_expiry(start, closed, "dripping client");
    // Another client is served normally meanwhile.
    broker.client_v5("fine").ping();
}

#[test]
fn dripped_connect_is_closed_by_the_connect_deadline() {
    let broker = Broker::start(
        "hardening_time_connect",
        "",
        "[limits]\nconnect_timeout = 2\n",
    );
    let mut c = broker.tcp();
    let start = Instant::now();
    let mut connect = connect_v5("slow", 60, None);
    connect.extend(std::iter::repeat_n(0u8, 100)); // never complete within the deadline
    connect[1] = 0x7f; // declare more than is sent in time
    let (closed, seen) = drip_until_closed(&mut c, &connect, Duration::from_secs(5));
    let took = closed - start;
    eprintln!("dripped CONNECT: closed after {took:?}");
    assert!(seen.is_empty(), "{seen:x?}");
    assert!(
        took >= Duration::from_millis(1950) && took <= Duration::from_millis(2000) + SLACK,
        "closed after {took:?}"
    );
}
