//! A connection the broker ends is closed gracefully: the client still reads the DISCONNECT
//! and its reason code, and what it sends meanwhile is discarded instead of answered with a
//! TCP reset (the Eclipse Paho interoperability test `test_flow_control2` depends on this).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{LIMIT, TestServer};
use mqtt_tokio::config::parse_toml;

/// v5 CONNECT, clean start, keep alive 60, client identifier "c".
const CONNECT_V5: &[u8] = &[
    0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'c',
];

/// v5 QoS 2 PUBLISH to "t" with packet identifier `id` and payload "x".
fn publish_qos2(id: u8) -> [u8; 9] {
    [0x34, 7, 0, 1, b't', 0, id, 0, b'x']
}

/// Splits a byte stream into (first byte, body) packets.
fn packets(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((&first, rest)) = bytes.split_first() {
        let (mut len, mut shift, mut used) = (0usize, 0, 0);
        for &b in rest {
            used += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let body = &rest[used..used + len];
        out.push((first, body.to_vec()));
        bytes = &rest[used + len..];
    }
    out
}

#[test]
fn receive_maximum_exceeded_disconnect_reaches_a_client_still_sending() {
    // The server's Receive Maximum is 1, so a second unfinished QoS 2 PUBLISH is answered by
    // DISCONNECT 0x93 (section 3.3.4), the last packet sent [MQTT5-3.14.4-1], and the close
    // of the connection [MQTT5-3.14.4-2].
    let config = parse_toml(
        "[[listener]]\nport = 0\nallow_anonymous = true\n[limits]\nmax_inflight_messages = 1\n",
    )
    .unwrap();
    let server = TestServer::start(config);
    let mut client = TcpStream::connect(("127.0.0.1", server.port(0))).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.write_all(CONNECT_V5).unwrap();
    let mut connack = [0u8; 64];
    let n = client.read(&mut connack).unwrap();
    assert_eq!(connack.first(), Some(&0x20), "{:?}", &connack[..n]);

    client
        .write_all(&[publish_qos2(1), publish_qos2(2)].concat())
        .unwrap();
    // Let the broker answer and close its side before the client writes again, as a client
    // that is busy sending does.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        // PUBREL 1: ignored by then, but must not make the broker's host reset the connection.
        client.write_all(&[0x62, 2, 0, 1]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut received = Vec::new();
    match client.read_to_end(&mut received) {
        Ok(_) => {}
        Err(e) => panic!("connection reset instead of closed ({:?}): {e}", e.kind()),
    }
    let packets = packets(&received);
    let kinds: Vec<u8> = packets.iter().map(|(first, _)| first >> 4).collect();
    assert_eq!(kinds, [5, 14], "PUBREC then DISCONNECT: {packets:?}");
    assert_eq!(packets[1].1.first(), Some(&0x93), "{packets:?}");
}
