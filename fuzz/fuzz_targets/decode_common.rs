//! Shared body of the per-version decode targets: decode a byte stream fed in two pieces,
//! re-encode every packet that decodes and check that it decodes back to the same packet.

use mqtt_wire::{BytesMut, DecodeError, Decoder, Packet, ProtocolVersion, decode_packet};

/// Largest packet the targets accept: small, so a declared huge length is refused at once.
const MAX_PACKET: u32 = 64 * 1024;

/// Feeds `data` to a decoder of `version` (split where the first byte says), round-tripping
/// every decoded packet. Panics only on a broken codec invariant.
pub fn run(version: ProtocolVersion, data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let mut decoder = Decoder::new().with_max_packet_size(MAX_PACKET);
    decoder.set_version(version);
    let mut buf = BytesMut::from(&rest[..split]);
    let mut fed_rest = false;
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(packet)) => round_trip(&packet, version),
            Ok(None) if !fed_rest => {
                buf.extend_from_slice(&rest[split..]);
                fed_rest = true;
            }
            Ok(None) => return,
            Err(error) => {
                check_error(error);
                return;
            }
        }
    }
}

/// `decode(encode(p)) == p`, and the encoder's length is exact.
fn round_trip(packet: &Packet, version: ProtocolVersion) {
    let version = match packet {
        Packet::Connect(connect) => connect.protocol,
        _ => version,
    };
    let mut out = BytesMut::new();
    if packet.encode(version, &mut out).is_err() {
        return;
    }
    assert_eq!(out.len(), packet.encoded_len(version), "encoded_len is exact");
    let again = decode_packet(out.freeze(), version).expect("an encoded packet decodes");
    assert_eq!(&again, packet, "decode(encode(p)) == p");
}

/// Every error knows what goes on the wire.
fn check_error(error: DecodeError) {
    let code = error.reason_code();
    assert!(u8::from(code) >= 0x80, "a decode error maps to an error reason code");
    let _ = error.to_string();
}
