//! Chapter 4.13 (handling errors) under arbitrary input: whatever bytes arrive, in whatever
//! pieces, at whatever times, the broker never panics, never writes after a close, and every
//! connection that misbehaves ends in a close.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use mqtt_wire::{Packet, ProtocolVersion};
use proptest::prelude::*;

fn connect_bytes(version: ProtocolVersion) -> Vec<u8> {
    let mut connect = connect_packet(version, "fuzz");
    connect.keep_alive = 5;
    connect.will = Some(will("w", b"x", mqtt_wire::QoS::AtLeastOnce, true));
    let mut buf = BytesMut::new();
    connect_pkt(connect)
        .encode(version, &mut buf)
        .expect("CONNECT encodes");
    buf.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(
        v5 in any::<bool>(),
        connect_first in any::<bool>(),
        chunks in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..64), 0u8..8), 0..12),
    ) {
        let version = if v5 { V5 } else { V311 };
        let mut h = Harness::new();
        let watcher = h.connect(version, "watcher");
        h.subscribe(watcher, "#", mqtt_wire::QoS::ExactlyOnce);
        let c = h.open(version);
        if connect_first {
            h.send_raw(c, &connect_bytes(version));
        }
        for (bytes, wait) in chunks {
            if h.is_closed(c) {
                break;
            }
            h.send_raw(c, &bytes);
            h.advance(Duration::from_secs(u64::from(wait)));
        }
        h.advance(Duration::from_secs(60));
        prop_assert!(h.is_closed(c), "silence past keep alive / CONNECT deadline ends in a close");
        h.send(watcher, Packet::PingReq);
        prop_assert!(!h.is_closed(watcher), "other clients are unaffected");
    }
}
