//! Drives the sans-IO broker with an arbitrary sequence of events from up to four connections:
//! opens, bytes, closes, flushes and time passing. The broker must never panic, every byte it
//! transmits must decode as whole, valid packets, and nothing may be sent on a closed connection.
//!
//! Input format (so seeds can be written by hand): a sequence of records `op conn args...`:
//! `0 c` open, `1 c n <n bytes>` bytes, `2 c` closed, `3 c hi lo` flushed `hi*256+lo` bytes,
//! `4 c t` advance `t * 100 ms` and fire timers, `5 c t` advance `t` minutes and fire timers.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mqtt_broker_core::{Broker, Config, ConnectionId, ConnectionInfo, Output};
use mqtt_wire::{BytesMut, Decoder, ProtocolVersion, decode_packet};

const CONNECTIONS: usize = 4;

/// What the target tracks per connection.
#[derive(Default)]
struct Peer {
    open: bool,
    closed_by_broker: bool,
    /// Decodes what the client sent, to learn the protocol version the broker negotiated.
    sent: BytesMut,
    sent_decoder: Decoder,
    sent_failed: bool,
    /// What the broker wrote, decoded frame by frame.
    received: BytesMut,
}

impl Peer {
    fn reset(&mut self) {
        *self = Peer {
            open: true,
            ..Peer::default()
        };
    }

    fn learn_version(&mut self, bytes: &[u8]) {
        if self.sent_failed || self.sent_decoder.version().is_some() {
            return;
        }
        self.sent.extend_from_slice(bytes);
        loop {
            match self.sent_decoder.decode(&mut self.sent) {
                Ok(Some(_)) if self.sent_decoder.version().is_none() => continue,
                Ok(_) => return,
                Err(_) => {
                    self.sent_failed = true;
                    return;
                }
            }
        }
    }

    /// Every frame the broker wrote decodes in the connection's version (a CONNACK refusing an
    /// unknown version may be in either form).
    fn check_received(&mut self) {
        let known = self.sent_decoder.version();
        loop {
            let Some(len) = frame_len(&self.received) else {
                return;
            };
            let frame = self.received.split_to(len).freeze();
            let versions = match known {
                Some(version) => vec![version],
                None => vec![ProtocolVersion::V3_1_1, ProtocolVersion::V5],
            };
            let decodes = versions
                .iter()
                .any(|&v| decode_packet(frame.clone(), v).is_ok());
            assert!(
                decodes,
                "broker wrote an undecodable frame {frame:?} ({known:?})"
            );
        }
    }
}

/// The length of the whole first frame in `buf`, once it is all there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for (i, &byte) in buf.iter().enumerate().skip(1).take(4) {
        len |= usize::from(byte & 0x7f) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            let total = 1 + i + len;
            return (buf.len() >= total).then_some(total);
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let mut config = Config::default();
    config.sys_interval = Some(Duration::from_secs(10));
    config.max_packet_size = 4096;
    let mut broker = Broker::new(config);
    let mut now = Instant::now();
    let mut peers: Vec<Peer> = (0..CONNECTIONS).map(|_| Peer::default()).collect();
    let mut input = data;
    let mut take = |n: usize| {
        let n = n.min(input.len());
        let (head, tail) = input.split_at(n);
        input = tail;
        head
    };
    while let [op, c] = take(2) {
        let index = usize::from(*c) % CONNECTIONS;
        let conn = ConnectionId(index as u64);
        match op % 6 {
            0 => {
                if broker
                    .handle_open(conn, ConnectionInfo::default(), now)
                    .is_ok()
                {
                    peers[index].reset();
                }
            }
            1 => {
                let n = take(1).first().copied().unwrap_or(0);
                let bytes = take(usize::from(n));
                // Both read inputs: a borrowed slice, or owned bytes (split without a copy).
                let fed = if (op / 6) % 2 == 1 {
                    broker.handle_read(conn, mqtt_wire::Bytes::copy_from_slice(bytes), now)
                } else {
                    broker.handle_bytes(conn, bytes, now)
                };
                if fed.is_ok() {
                    peers[index].learn_version(bytes);
                }
            }
            2 => {
                if broker.handle_closed(conn, now).is_ok() {
                    peers[index].open = false;
                }
            }
            3 => {
                let n = take(2);
                let n = n.iter().fold(0usize, |acc, &b| acc * 256 + usize::from(b));
                let _ = broker.handle_flushed(conn, n, now);
            }
            4 | 5 => {
                let t = u64::from(take(1).first().copied().unwrap_or(0));
                let step = if op % 6 == 4 {
                    Duration::from_millis(100 * t)
                } else {
                    Duration::from_secs(60 * t)
                };
                now += step;
                broker.handle_timeout(now);
            }
            _ => unreachable!(),
        }
        while let Some(output) = broker.poll_output() {
            match output {
                Output::Transmit { conn, data } => {
                    let peer = &mut peers[conn.0 as usize];
                    assert!(!peer.closed_by_broker, "transmit after close on {conn:?}");
                    for chunk in data {
                        peer.received.extend_from_slice(&chunk);
                    }
                    peer.check_received();
                }
                Output::Close { conn } => peers[conn.0 as usize].closed_by_broker = true,
                _ => {}
            }
        }
        let _ = broker.poll_timeout();
    }
});
