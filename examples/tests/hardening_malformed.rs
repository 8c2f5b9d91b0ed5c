//! Hardening: every malformed packet and protocol error closes the connection, over a real
//! socket against the `mqtt-broker` binary. A v5 client first gets DISCONNECT with the precise
//! reason code, a refused CONNECT a CONNACK with its code; a 3.1.1 client and anything before
//! CONNECT just see the socket closed. One table row per case, each naming its spec id.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::time::Duration;

use raw::{Broker, connect, connect_v5, connect_v311, field, frame, publish, subscribe, varint};

/// How long the broker may take to close after a bad packet.
const CLOSE_LIMIT: Duration = Duration::from_secs(3);

/// What the broker must answer before closing.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// DISCONNECT with this reason code (v5 after a CONNACK 0).
    Disconnect(u8),
    /// CONNACK with this reason/return code.
    Connack(u8),
    /// Nothing: the socket is just closed.
    Close,
}

/// When the bad bytes are sent.
#[derive(Debug, Clone, Copy)]
enum After {
    /// Right after TCP connect.
    Nothing,
    /// After an accepted v5 CONNECT.
    ConnectV5,
    /// After an accepted 3.1.1 CONNECT.
    ConnectV311,
}

struct Row {
    id: &'static str,
    what: &'static str,
    after: After,
    bytes: Vec<u8>,
    expect: Expect,
}

fn row(id: &'static str, what: &'static str, after: After, bytes: Vec<u8>, expect: Expect) -> Row {
    Row {
        id,
        what,
        after,
        bytes,
        expect,
    }
}

/// A v5 PUBLISH QoS 0 with raw property bytes.
fn publish_props(topic: &str, props: &[u8]) -> Vec<u8> {
    let mut body = field(topic.as_bytes());
    body.extend(varint(props.len()));
    body.extend_from_slice(props);
    body.extend_from_slice(b"x");
    frame(0x30, &body)
}

fn rows() -> Vec<Row> {
    use After::*;
    use Expect::*;
    let long_id = "c".repeat(300);
    let mut bad_flags_connect = connect_v5("f", 60, None);
    bad_flags_connect[9] |= 0x01; // reserved CONNECT flag
    let mut will_qos3 = connect_v5("w", 60, None);
    will_qos3[9] |= 0x04 | 0x18; // will flag + QoS 3 (payload lacks the will too)
    vec![
        // Packets only a server sends (a CONNACK from a v5 client crashed mosquitto 2.0.9,
        // CVE-2021-28166).
        row(
            "MQTT-4.13.1-1",
            "CONNACK from a client",
            ConnectV5,
            vec![0x20, 3, 0, 0, 0],
            Disconnect(0x82),
        ),
        row(
            "MQTT-4.13.1-1",
            "SUBACK from a client",
            ConnectV5,
            vec![0x90, 4, 0, 1, 0, 0],
            Disconnect(0x82),
        ),
        row(
            "MQTT-4.13.1-1",
            "UNSUBACK from a client",
            ConnectV5,
            vec![0xb0, 4, 0, 1, 0, 0],
            Disconnect(0x82),
        ),
        row(
            "MQTT-4.13.1-1",
            "PINGRESP from a client",
            ConnectV5,
            vec![0xd0, 0],
            Disconnect(0x82),
        ),
        row(
            "MQTT-4.13.1-1",
            "CONNACK from a 3.1.1 client",
            ConnectV311,
            vec![0x20, 2, 0, 0],
            Close,
        ),
        // Fixed header.
        row(
            "MQTT-2.1.3-1",
            "PINGREQ with a non-zero length",
            ConnectV5,
            vec![0xc0, 1, 0],
            Disconnect(0x81),
        ),
        row(
            "MQTT-2.1.3-1",
            "PINGREQ with flag bits",
            ConnectV5,
            vec![0xc1, 0],
            Disconnect(0x81),
        ),
        row(
            "MQTT-2.1.3-1",
            "packet type 0",
            ConnectV5,
            vec![0x00, 0],
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.6.1-1",
            "PUBREL with flags 0000",
            ConnectV5,
            vec![0x60, 2, 0, 1],
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.8.1-1",
            "SUBSCRIBE with flags 0000",
            ConnectV5,
            {
                let mut s = subscribe(true, 1, &[("a", 0)]);
                s[0] = 0x80;
                s
            },
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.10.1-1",
            "UNSUBSCRIBE with flags 0000",
            ConnectV5,
            frame(0xa0, &[0, 1, 0, 0, 1, b'a']),
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.14.1-1",
            "DISCONNECT with flag bits",
            ConnectV5,
            vec![0xe1, 0],
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.15.1-1",
            "AUTH with flag bits",
            ConnectV5,
            vec![0xf1, 0],
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.3.1-4",
            "PUBLISH QoS 3",
            ConnectV5,
            {
                let mut p = publish(true, "t", b"x", 1, 1, false);
                p[0] = 0x36;
                p
            },
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.3.1-2",
            "PUBLISH QoS 0 with DUP",
            ConnectV5,
            {
                let mut p = publish(true, "t", b"x", 0, 0, false);
                p[0] |= 0x08;
                p
            },
            Disconnect(0x82),
        ),
        row(
            "MQTT-1.5.5-1",
            "five-byte remaining length",
            ConnectV5,
            vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
            Disconnect(0x81),
        ),
        row(
            "MQTT-1.5.5-1",
            "five-byte remaining length, 3.1.1",
            ConnectV311,
            vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
            Close,
        ),
        row(
            "MQTT-3.2.2-15",
            "PUBLISH above the maximum packet size",
            ConnectV5,
            vec![0x30, 0x80, 0x80, 0x80, 0x01],
            Disconnect(0x95),
        ),
        // Packet contents.
        row(
            "MQTT-2.2.1-3",
            "QoS 1 PUBLISH with packet id 0",
            ConnectV5,
            publish(true, "t", b"x", 1, 0, false),
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.3.2-2",
            "PUBLISH to a wildcard topic",
            ConnectV5,
            publish(true, "a/+", b"x", 0, 0, false),
            Disconnect(0x90),
        ),
        // A zero-length topic crashed mosquitto 2.0.7 (CVE-2021-34432).
        row(
            "MQTT-4.7.3-1",
            "PUBLISH to an empty topic without alias",
            ConnectV5,
            publish(true, "", b"x", 0, 0, false),
            Disconnect(0x82),
        ),
        row(
            "MQTT-1.5.4-1",
            "PUBLISH topic with invalid UTF-8",
            ConnectV5,
            {
                let mut body = vec![0, 2, 0xc3, 0x28, 0];
                body.push(b'x');
                frame(0x30, &body)
            },
            Disconnect(0x81),
        ),
        row(
            "MQTT-1.5.4-2",
            "PUBLISH topic with U+0000",
            ConnectV5,
            publish(true, "a\0b", b"x", 0, 0, false),
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.3.2-8",
            "topic alias 0",
            ConnectV5,
            publish_props("t", &[0x23, 0, 0]),
            Disconnect(0x82),
        ),
        row(
            "MQTT-3.3.2-9",
            "topic alias above the maximum",
            ConnectV5,
            publish_props("t", &[0x23, 0xff, 0xff]),
            Disconnect(0x94),
        ),
        row(
            "MQTT-3.3.2-12",
            "unbound topic alias with empty topic",
            ConnectV5,
            publish_props("", &[0x23, 0, 1]),
            Disconnect(0x94),
        ),
        row(
            "MQTT-3.10.3-2",
            "UNSUBSCRIBE without filters",
            ConnectV5,
            frame(0xa2, &[0, 1, 0]),
            Disconnect(0x82),
        ),
        row(
            "MQTT-2.2.2-2",
            "property not allowed in PUBLISH",
            ConnectV5,
            publish_props("t", &[0x11, 0, 0, 0, 1]),
            Disconnect(0x81),
        ),
        row(
            "MQTT-2.2.2-2",
            "duplicate property",
            ConnectV5,
            publish_props("t", &[0x01, 1, 0x01, 1]),
            Disconnect(0x82),
        ),
        row(
            "MQTT-3.8.3-2",
            "SUBSCRIBE without filters",
            ConnectV5,
            frame(0x82, &[0, 1, 0]),
            Disconnect(0x82),
        ),
        row(
            "MQTT-3.8.3-5",
            "SUBSCRIBE with reserved option bits",
            ConnectV5,
            subscribe(true, 1, &[("a", 0xc0)]),
            Disconnect(0x81),
        ),
        row(
            "MQTT-3.1.0-2",
            "a second CONNECT",
            ConnectV5,
            connect_v5("again", 60, None),
            Disconnect(0x82),
        ),
        row(
            "MQTT-3.1.0-2",
            "a second CONNECT, 3.1.1",
            ConnectV311,
            connect_v311("again", 60, None),
            Close,
        ),
        row(
            "MQTT-4.12.0-7",
            "AUTH without a method",
            ConnectV5,
            frame(0xf0, &[0x19, 0]),
            Disconnect(0x82),
        ),
        row(
            "MQTT-4.12.0-7",
            "AUTH with no reason code",
            ConnectV5,
            vec![0xf0, 0],
            Disconnect(0x82),
        ),
        // Before or in CONNECT.
        row(
            "MQTT-3.1.0-1",
            "PUBLISH before CONNECT",
            Nothing,
            publish(false, "t", b"x", 0, 0, false),
            Close,
        ),
        row(
            "MQTT-3.1.0-1",
            "PINGREQ before CONNECT",
            Nothing,
            vec![0xc0, 0],
            Close,
        ),
        row(
            "MQTT-3.1.0-1",
            "AUTH before CONNECT",
            Nothing,
            frame(0xf0, &[0x18, 0]),
            Close,
        ),
        row(
            "MQTT-3.1.2-1",
            "protocol name MQTX",
            Nothing,
            {
                let mut c = connect_v311("n", 60, None);
                c[7] = b'X';
                c
            },
            Close,
        ),
        row(
            "MQTT-3.1.2-2",
            "protocol level 6",
            Nothing,
            connect(6, "v", 60, None, &[]),
            Connack(0x84),
        ),
        row(
            "MQTT-3.1.2-3",
            "reserved CONNECT flag",
            Nothing,
            bad_flags_connect,
            Connack(0x81),
        ),
        row(
            "MQTT-3.1.2-12",
            "will QoS 3",
            Nothing,
            will_qos3,
            Connack(0x81),
        ),
        row(
            "MQTT-3.1.4-1",
            "receive maximum 0",
            Nothing,
            connect(5, "r", 60, None, &[0x21, 0, 0]),
            Connack(0x82),
        ),
        row(
            "MQTT-3.1.4-1",
            "maximum packet size 0",
            Nothing,
            connect(5, "m", 60, None, &[0x27, 0, 0, 0, 0]),
            Connack(0x82),
        ),
        row(
            "MQTT-3.1.4-1",
            "authentication data without a method",
            Nothing,
            connect(5, "d", 60, None, &[0x16, 0, 1, 7]),
            Connack(0x82),
        ),
        row(
            "MQTT-4.12.0-1",
            "unsupported authentication method",
            Nothing,
            connect(5, "a", 60, None, &[0x15, 0, 3, b'x', b'y', b'z']),
            Connack(0x8c),
        ),
        row(
            "MQTT-3.1.3-5",
            "client id over the limit, v5",
            Nothing,
            connect_v5(&long_id, 60, None),
            Connack(0x85),
        ),
        row(
            "MQTT-3.1.3-5",
            "client id over the limit, 3.1.1",
            Nothing,
            connect_v311(&long_id, 60, None),
            Connack(0x02),
        ),
        row(
            "MQTT-3.1.4-1",
            "truncated CONNECT",
            Nothing,
            frame(0x10, &[0, 4, b'M', b'Q']),
            Close,
        ),
    ]
}

#[test]
fn every_bad_packet_closes_with_the_precise_reason() {
    let broker = Broker::start("hardening_malformed", "", "");
    let mut failures = Vec::new();
    for row in rows() {
        let mut client = match row.after {
            After::Nothing => broker.tcp(),
            After::ConnectV5 => broker.client_v5("bad"),
            After::ConnectV311 => broker.client_v311("bad"),
        };
        client.send(&row.bytes);
        let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client.expect_closed(CLOSE_LIMIT)
        }));
        let seen = match seen {
            Ok(seen) => seen,
            Err(_) => {
                failures.push(format!("[{}] {}: connection not closed", row.id, row.what));
                continue;
            }
        };
        let ok = match row.expect {
            Expect::Disconnect(code) => {
                matches!(seen.as_slice(), [(0xe0, body)] if body.first() == Some(&code))
            }
            Expect::Connack(code) => {
                matches!(seen.as_slice(), [(0x20, body)] if body.get(1) == Some(&code))
            }
            Expect::Close => seen.is_empty(),
        };
        if !ok {
            failures.push(format!(
                "[{}] {}: expected {:?}, got {:x?}",
                row.id, row.what, row.expect, seen
            ));
        }
    }
    // The broker served every row and still serves a good client.
    let mut good = broker.client_v5("good");
    good.ping();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
