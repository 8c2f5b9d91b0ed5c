//! Hardening: a declared remaining length is never trusted (NanoMQ's length-field overflows;
//! mosquitto CVE-2017-7651, a huge CONNECT, and CVE-2023-0809, huge packets before CONNECT).
//! With the packet limit at the protocol maximum (256 MiB), 1,000 connections each declaring a
//! 256 MB PUBLISH after CONNECT, and 1,000 more declaring it before CONNECT, must barely move the
//! broker's resident memory: nothing is reserved for bytes that have not arrived. 2,000 client
//! sockets stay well within the default open-file limit of this environment (20,000); the
//! broker needs as many.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::time::{Duration, Instant};

use raw::{Broker, Got, Raw};

/// Connections per phase.
const CONNECTIONS: usize = 1000;
/// The bound on resident memory growth, KiB.
const GROWTH_LIMIT_KIB: u64 = 64 * 1024;
/// A PUBLISH (and a CONNECT) fixed header declaring 268,435,455 bytes.
const HUGE_PUBLISH: [u8; 5] = [0x30, 0xff, 0xff, 0xff, 0x7f];
const HUGE_CONNECT: [u8; 5] = [0x10, 0xff, 0xff, 0xff, 0x7f];

#[test]
fn declared_256_mb_reserves_nothing() {
    let broker = Broker::start(
        "hardening_length",
        "",
        "[limits]\nmessage_size_limit = 0\nconnect_timeout = 3\n",
    );
    let mut probe = broker.client_v5("probe");
    probe.ping();
    let baseline = broker.rss_kib();

    let mut held: Vec<Raw> = Vec::with_capacity(2 * CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut c = broker.client_v5(&format!("huge-{i}"));
        c.send(&HUGE_PUBLISH);
        c.send(b"abc"); // a few body bytes: the broker must wait for the rest, not reserve it
        held.push(c);
    }
    for i in 0..CONNECTIONS {
        let mut c = broker.tcp();
        c.send(if i % 2 == 0 {
            &HUGE_PUBLISH
        } else {
            &HUGE_CONNECT
        });
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let loaded = broker.rss_kib();
    let rtt = probe.ping();
    eprintln!(
        "RSS baseline {baseline} KiB, with {} huge declarations {loaded} KiB (+{} KiB); probe ping {rtt:?}",
        2 * CONNECTIONS,
        loaded.saturating_sub(baseline)
    );
    assert!(
        loaded.saturating_sub(baseline) < GROWTH_LIMIT_KIB,
        "RSS grew from {baseline} to {loaded} KiB"
    );
    assert!(rtt < Duration::from_millis(200), "probe ping took {rtt:?}");

    // The connections that never sent a whole CONNECT are closed: at once when their first
    // byte is not CONNECT, by the connect deadline otherwise.
    let deadline = Instant::now() + Duration::from_secs(8);
    for c in held.iter_mut().skip(CONNECTIONS) {
        let left = deadline.saturating_duration_since(Instant::now());
        loop {
            match c.read(left) {
                Got::Closed => break,
                Got::Packet(..) => {}
                Got::Timeout => panic!("pre-CONNECT connection still open after the deadline"),
            }
        }
    }
    drop(held);
    probe.ping();
}

/// Bytes of junk each connection sends after its non-CONNECT fixed header.
const JUNK: usize = 512 * 1024;

/// CVE-2023-0809: a first packet that is not CONNECT is refused from its first byte, so its
/// body is never buffered; 200 connections each sending half a megabyte of it barely move RSS.
#[test]
fn a_first_packet_that_is_not_connect_is_refused_at_once() {
    let broker = Broker::start("hardening_length_first", "", "");
    let baseline = broker.rss_kib();
    let junk = vec![0u8; JUNK];
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut c = broker.tcp();
        c.stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut header = vec![0x30]; // PUBLISH declaring 900 KiB, within the 1 MiB limit
        header.extend(raw::varint(900 * 1024));
        c.send(&header);
        c.send(&junk);
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let loaded = broker.rss_kib();
    eprintln!("RSS {baseline} -> {loaded} KiB after 200 x {JUNK} bytes of pre-CONNECT junk");
    for c in &mut held {
        assert!(
            matches!(c.read(Duration::from_secs(2)), Got::Closed),
            "not closed"
        );
    }
    assert!(
        loaded.saturating_sub(baseline) < 32 * 1024,
        "RSS {baseline} -> {loaded} KiB"
    );
}
