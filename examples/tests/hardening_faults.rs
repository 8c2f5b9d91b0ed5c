//! Hardening: faults around the broker. A subscriber that stops reading (its TCP window full)
//! stalls neither the publisher nor the other subscribers, and costs bounded memory; the broker
//! run with 64 open files (`prlimit --nofile=64:64`) survives running out of descriptors:
//! connections beyond the limit wait in the listen backlog, the clients it has keep being
//! served, and once some leave new ones are accepted again.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::time::{Duration, Instant};

use raw::{Broker, Got, Raw, ack, connect_v5, publish, quantile};

/// Messages the publisher sends, and how many it keeps unacknowledged at once.
const MESSAGES: u16 = 3000;
const WINDOW: u16 = 16;

#[test]
fn a_subscriber_that_stops_reading_stalls_nobody() {
    let broker = Broker::start("hardening_faults_stuck", "", "");
    // Never reads after SUBACK; QoS 1 so its messages wait in its bounded queue.
    let mut stuck = broker.client_v5("stuck");
    assert_eq!(stuck.subscribe(1, "f/#", 1), vec![1]);
    let mut stuck0 = broker.client_v5("stuck-qos0");
    assert_eq!(stuck0.subscribe(1, "f/#", 0), vec![0]);
    let mut good = broker.client_v5("good");
    assert_eq!(good.subscribe(1, "f/#", 1), vec![1]);
    let baseline = broker.rss_kib();

    // The healthy subscriber reads and acknowledges in its own thread.
    let reader = std::thread::spawn(move || {
        let mut received = 0u32;
        while received < u32::from(MESSAGES) {
            match good.read(Duration::from_secs(5)) {
                Got::Packet(h, body) if h >> 4 == 3 => {
                    let (_, id, _) = raw::parse_publish(true, h, &body);
                    good.send(&ack(0x40, id));
                    received += 1;
                }
                Got::Packet(..) => {}
                other => panic!("healthy subscriber: {other:?} after {received}"),
            }
        }
        received
    });

    let mut publisher = broker.client_v5("publisher");
    let payload = vec![b'f'; 10 * 1024];
    let mut sent_at = std::collections::HashMap::new();
    let mut ack_times = Vec::new();
    let mut next = 1u16;
    let start = Instant::now();
    while ack_times.len() < usize::from(MESSAGES) {
        while next <= MESSAGES && sent_at.len() < usize::from(WINDOW) {
            publisher.send(&publish(true, "f/x", &payload, 1, next, false));
            sent_at.insert(next, Instant::now());
            next += 1;
        }
        let (h, body) = publisher.expect_packet();
        assert_eq!(h, 0x40, "PUBACK expected");
        let id = u16::from_be_bytes([body[0], body[1]]);
        let at = sent_at.remove(&id).expect("known id");
        ack_times.push(at.elapsed());
    }
    let took = start.elapsed();
    let received = reader.join().expect("reader");
    let loaded = broker.rss_kib();
    let p99 = quantile(&mut ack_times, 0.99);
    eprintln!(
        "{MESSAGES} x 10 KiB QoS 1 in {took:?} (PUBACK p99 {p99:?}); healthy subscriber got \
         {received}; RSS {baseline} -> {loaded} KiB"
    );
    assert_eq!(received, u32::from(MESSAGES));
    assert!(p99 < Duration::from_millis(100), "PUBACK p99 {p99:?}");
    assert!(
        loaded.saturating_sub(baseline) < 64 * 1024,
        "RSS {baseline} -> {loaded}"
    );
    publisher.ping();
    // The stuck subscribers are still there or were cut with a reason; either way the broker
    // serves a new client at once.
    broker.client_v5("later").ping();
    drop((stuck, stuck0));
}

/// A v5 CONNECT on a fresh socket; whether its CONNACK arrives within `limit`.
fn try_client(port: u16, id: &str, limit: Duration) -> (Option<Raw>, bool) {
    let Ok(mut c) = Raw::try_tcp(port) else {
        return (None, false);
    };
    c.send(&connect_v5(id, 60, None));
    let accepted = matches!(c.read(limit), Got::Packet(0x20, ref body) if body.get(1) == Some(&0));
    c.v5 = true;
    (Some(c), accepted)
}

#[test]
fn running_out_of_file_descriptors_is_survived() {
    let mut broker = Broker::start_with("hardening_faults_nofile", "", "", Some(64));
    let mut first = broker.client_v5("first");
    assert_eq!(first.subscribe(1, "fd/#", 0), vec![0]);
    let mut extras = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let (c, accepted) = try_client(
            broker.port,
            &format!("extra-{i}"),
            Duration::from_millis(500),
        );
        match (c, accepted) {
            (Some(c), true) => extras.push(c),
            (c, false) => {
                refused = Some((i, c));
                break;
            }
            (None, _) => unreachable!(),
        }
    }
    let (limit_at, waiting) = refused.expect("the descriptor limit was never reached");
    eprintln!(
        "broker stopped accepting after {} extra clients (fds {})",
        limit_at,
        broker.open_fds()
    );
    assert!(broker.alive(), "broker died at the descriptor limit");
    // The clients it has are served: ping, and a publish from an extra reaches `first`.
    first.ping();
    let last = extras.last_mut().expect("some extras");
    last.send(&publish(true, "fd/t", b"still here", 0, 0, false));
    assert_eq!(first.expect_kind(3).0 >> 4, 3);

    // Close half the extras: the one waiting in the backlog and new ones are accepted again.
    let keep = extras.len() / 2;
    extras.truncate(keep);
    if let Some(mut waiting) = waiting {
        let got = waiting.read(Duration::from_secs(3));
        assert!(
            matches!(got, Got::Packet(0x20, ref body) if body.get(1) == Some(&0)),
            "the waiting client was not accepted after room was made: {got:?}"
        );
    }
    let start = Instant::now();
    let (c, accepted) = try_client(broker.port, "after", Duration::from_secs(3));
    assert!(
        accepted,
        "a new client is accepted once descriptors are free"
    );
    eprintln!(
        "new client accepted {:?} after room was made",
        start.elapsed()
    );
    drop(c);
    first.ping();
    assert!(broker.alive());
}
