//! Heap held by the core per idle subscribed connection: N MQTT 3.1.1 clients each CONNECT
//! (clean session, keep alive 60 s) and SUBSCRIBE to a topic of their own, then the live heap
//! bytes the broker gained are divided by N. A counting global allocator measures them; the
//! figure is printed and bounded so that a regression fails.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use mqtt_broker_core::{Broker, Config, ConnectionId, ConnectionInfo, Output};
use mqtt_wire::{
    Connect, MqttStr, Packet, PacketId, Properties, ProtocolVersion, QoS, Subscribe,
    SubscriptionOptions,
};

/// Forwards to the system allocator and keeps the number of live bytes requested.
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is a
// relaxed counter update. `GlobalAlloc` is an unsafe trait, and a global allocator is the only
// way to see the heap the core keeps.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const CONNECTIONS: u64 = 1_000;

/// Above what the core holds today (see the CHANGELOG), so that growth fails the test.
const CEILING_PER_CONNECTION: isize = 730;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Encodes `packet` into `buf` (cleared first).
fn encode(packet: &Packet, buf: &mut BytesMut) {
    buf.clear();
    packet
        .encode(ProtocolVersion::V3_1_1, buf)
        .expect("test packet encodes");
}

/// Drops every output, reporting transmitted bytes as flushed, as an adapter would.
fn drain(broker: &mut Broker, now: Instant) {
    while let Some(output) = broker.poll_output() {
        if let Output::Transmit { conn, data } = output {
            let len = data.iter().map(|chunk| chunk.len()).sum();
            broker.handle_flushed(conn, len, now).expect("flushed");
        }
    }
}

#[test]
fn an_idle_subscribed_connection_costs_the_core_little_heap() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut broker = Broker::try_new(Config::default()).expect("valid config");
    let mut buf = BytesMut::with_capacity(256);
    // The first input starts the broker's clock-driven duties; not a per-connection cost.
    broker.handle_timeout(now);
    drain(&mut broker, now);
    let before = live_bytes();
    for n in 0..CONNECTIONS {
        let conn = ConnectionId(n);
        broker
            .handle_open(conn, ConnectionInfo::default(), now)
            .expect("open");
        let connect = Connect {
            protocol: ProtocolVersion::V3_1_1,
            bridge: false,
            clean_start: true,
            keep_alive: 60,
            client_id: MqttStr::try_from(format!("client-{n}")).expect("valid id"),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        };
        #[allow(clippy::useless_conversion)]
        encode(&Packet::Connect(connect.into()), &mut buf);
        broker.handle_bytes(conn, &buf, now).expect("connect");
        drain(&mut broker, now);
        let subscribe = Subscribe {
            packet_id: PacketId::new(1).expect("non-zero"),
            filters: vec![(
                MqttStr::try_from(format!("clients/{n}/inbox")).expect("valid filter"),
                SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..SubscriptionOptions::default()
                },
            )],
            properties: Properties::default(),
        };
        encode(&Packet::Subscribe(subscribe), &mut buf);
        broker.handle_bytes(conn, &buf, now).expect("subscribe");
        drain(&mut broker, now);
    }
    let per_connection = (live_bytes() - before) / CONNECTIONS as isize;
    let stats = broker.stats();
    assert_eq!(stats.connections_open, CONNECTIONS);
    assert_eq!(stats.subscriptions, CONNECTIONS);
    println!("core heap per idle subscribed connection: {per_connection} bytes");
    assert!(
        per_connection <= CEILING_PER_CONNECTION,
        "{per_connection} bytes per connection"
    );
}
