//! A subscriber that never reads must not stall the broker or the other clients: its outbox
//! fills and its QoS 0 messages are dropped, while a reading subscriber keeps receiving.
//! Also: a listener's connection limit makes the next client wait until one leaves.

mod common;

use std::time::Duration;

use common::TestServer;
use mqtt_tokio::config::parse_toml;
use mqtt_wire::QoS;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(20);

/// CONNECT 3.1.1 with a two-letter client id, clean session, keep alive 0.
fn connect(id: &[u8; 2]) -> Vec<u8> {
    let mut packet = vec![
        0x10, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0, 0, 2,
    ];
    packet.extend_from_slice(id);
    packet
}

/// SUBSCRIBE packet id 1 to "load/#" at QoS 0.
const SUBSCRIBE: &[u8] = &[
    0x82, 0x0b, 0, 1, 0, 6, b'l', b'o', b'a', b'd', b'/', b'#', 0,
];

async fn subscribed_client(port: u16, id: &[u8; 2]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(&connect(id)).await.expect("write");
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.expect("connack");
    assert_eq!(connack, [0x20, 2, 0, 0]);
    stream.write_all(SUBSCRIBE).await.expect("write");
    let mut suback = [0u8; 5];
    stream.read_exact(&mut suback).await.expect("suback");
    assert_eq!(suback, [0x90, 3, 0, 1, 0]);
    stream
}

#[test]
fn a_stalled_subscriber_does_not_stall_the_others() {
    let server = TestServer::local();
    let port = server.port(0);
    let handle = server.server().handle();
    server.block_on(async move {
        let _stalled = subscribed_client(port, b"st").await; // never read from
        let mut reader = subscribed_client(port, b"rd").await;
        let payload = vec![b'x'; 16 * 1024];
        let total = 2_000; // 32 MiB offered to each subscriber: far beyond any buffer
        let count = tokio::spawn(async move {
            // Count PUBLISH packets (topic "load/n", payload 16 KiB) until the last marker.
            let mut received = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            let mut window: Vec<u8> = Vec::new();
            loop {
                let n = reader.read(&mut buf).await.expect("read");
                assert!(n > 0, "server closed the reading subscriber");
                window.extend_from_slice(&buf[..n]);
                received += count_occurrences(&window, b"load/n");
                if window.windows(9).any(|w| w == b"load/last") {
                    return received;
                }
                let keep = window.len().saturating_sub(16);
                window.drain(..keep);
            }
        });
        let publishing = async {
            for _ in 0..total {
                handle
                    .publish("load/n", payload.clone(), QoS::AtMostOnce, false)
                    .await
                    .expect("publish");
            }
        };
        tokio::time::timeout(LIMIT, publishing)
            .await
            .expect("publishing is not held up by the stalled subscriber");
        // The reader's own outbox may have been full when the burst ended (QoS 0 is then
        // dropped for it), so the marker is repeated until it gets through.
        let marking = async {
            while !count.is_finished() {
                handle
                    .publish("load/last", &b"end"[..], QoS::AtMostOnce, false)
                    .await
                    .expect("publish");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(LIMIT, marking)
            .await
            .expect("the reading subscriber keeps being served");
        let received = count.await.expect("reader task");
        assert!(received > 0);
    });
}

fn count_occurrences(window: &[u8], needle: &[u8]) -> usize {
    window
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

#[test]
fn max_connections_closes_the_next_client_at_once_as_mosquitto_does() {
    let server = TestServer::start(
        parse_toml("[[listener]]\nport = 0\nallow_anonymous = true\nmax_connections = 1\n")
            .expect("config"),
    );
    let port = server.port(0);
    server.block_on(async move {
        let first = subscribed_client(port, b"c1").await;
        // The second TCP connection is closed at once: no CONNACK, the end of the stream.
        let mut second = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let _ = second.write_all(&connect(b"c2")).await;
        let mut connack = [0u8; 4];
        let refused = tokio::time::timeout(LIMIT, second.read_exact(&mut connack))
            .await
            .expect("closed promptly, not left waiting");
        assert!(refused.is_err(), "second client served: {connack:?}");
        // Once the first leaves, a new client is served.
        drop(first);
        let served = async {
            loop {
                let mut third = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
                third.write_all(&connect(b"c3")).await.ok()?;
                let mut connack = [0u8; 4];
                if third.read_exact(&mut connack).await.is_ok() {
                    return Some(connack);
                }
                // The first's slot is freed once the broker saw it go: try again.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let connack = tokio::time::timeout(LIMIT, served)
            .await
            .expect("served once the first left");
        assert_eq!(connack, Some([0x20, 2, 0, 0]));
    });
}
