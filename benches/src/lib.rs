//! Shared fixtures for the benchmarks in `benches/benches/`: MQTT 3.1.1 frames written by hand
//! (not by the codec under test), so a bench of the broker core does not depend on our encoder.
#![forbid(unsafe_code)]

/// Appends an MQTT string (two-byte length, then the bytes).
///
/// # Panics
/// The string is longer than 65,535 bytes.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("short string");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A whole frame: first byte, remaining length (variable byte integer), body.
#[must_use]
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
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

/// A 3.1.1 CONNECT without keep-alive: a clean session, or (`clean == false`) one the broker
/// keeps after the connection ends.
#[must_use]
pub fn connect(client_id: &str, clean: bool) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, "MQTT");
    body.extend_from_slice(&[4, if clean { 0x02 } else { 0x00 }, 0, 0]);
    put_str(&mut body, client_id);
    frame(0x10, &body)
}

/// A SUBSCRIBE (packet identifier 1) for `filters`, each at `qos`.
#[must_use]
pub fn subscribe(filters: &[&str], qos: u8) -> Vec<u8> {
    let mut body = vec![0, 1];
    for filter in filters {
        put_str(&mut body, filter);
        body.push(qos);
    }
    frame(0x82, &body)
}

/// A QoS 0 PUBLISH of `payload` bytes of `x` on `topic`.
#[must_use]
pub fn publish(topic: &str, payload: usize) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, topic);
    body.resize(body.len() + payload, b'x');
    frame(0x30, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_remaining_length() {
        assert_eq!(
            connect("a", true),
            b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01a"
        );
        assert_eq!(
            subscribe(&["t", "u"], 1),
            b"\x82\x0a\x00\x01\x00\x01t\x01\x00\x01u\x01"
        );
        let long = publish("t", 200);
        assert_eq!(
            (long[0], long[1], long[2], long.len()),
            (0x30, 0xcb, 0x01, 206)
        );
    }
}
