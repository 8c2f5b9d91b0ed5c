//! Shared body of the per-version decode targets: decode a byte stream fed in two pieces,
//! re-encode every packet that decodes and check that it decodes back to the same packet, and
//! check that the borrowed stream API and in-place decoding decode the same packets.

use bytes::Buf as _;
use mqtt_wire::{BytesMut, DecodeError, Decoder, Packet, ProtocolVersion, decode_packet};

/// Largest packet the targets accept: small, so a declared huge length is refused at once.
const MAX_PACKET: u32 = 64 * 1024;

/// Feeds `data` to a decoder of `version` (split where the first byte says), round-tripping
/// every decoded packet, and checks that the borrowed stream API (`split_frames` + `packets`)
/// and `decode_in_place` fed the same way yield the same packets and the same error. Panics only on a broken codec
/// invariant.
pub fn run(version: ProtocolVersion, data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (first, second) = rest.split_at(split);
    let mut decoder = Decoder::new().with_max_packet_size(MAX_PACKET);
    decoder.set_version(version);
    let owned = decode_owned(decoder.clone(), first, second);
    for packet in &owned.0 {
        round_trip(packet, version);
    }
    if let Some(error) = owned.1 {
        check_error(error);
    }
    let borrowed = decode_borrowed(decoder.clone(), first, second);
    assert_eq!(borrowed, owned, "borrowed and owned decoding agree");
    let in_place = decode_in_place(decoder, first, second);
    assert_eq!(in_place, owned, "in-place and owned decoding agree");
}

/// What `Decoder::decode` yields from `first`, then `first` + `second`: the packets, then the
/// error that ended decoding, if any.
fn decode_owned(
    mut decoder: Decoder,
    first: &[u8],
    second: &[u8],
) -> (Vec<Packet>, Option<DecodeError>) {
    feed_in_two(first, second, |buf, got| {
        while let Some(packet) = decoder.decode(buf)? {
            got.push(packet);
        }
        Ok(())
    })
}

/// The same through `Decoder::split_frames` and `Decoder::packets`.
fn decode_borrowed(
    mut decoder: Decoder,
    first: &[u8],
    second: &[u8],
) -> (Vec<Packet>, Option<DecodeError>) {
    feed_in_two(first, second, |buf, got| {
        loop {
            let frames = decoder.split_frames(buf)?;
            if frames.is_empty() {
                return Ok(());
            }
            for packet in decoder.packets(&frames) {
                got.push(packet?.into_packet());
            }
        }
    })
}

/// The same through `Decoder::decode_in_place`, consuming each frame after its packet.
fn decode_in_place(
    mut decoder: Decoder,
    first: &[u8],
    second: &[u8],
) -> (Vec<Packet>, Option<DecodeError>) {
    feed_in_two(first, second, |buf, got| {
        while let Some((packet, len)) = decoder.decode_in_place(buf)? {
            got.push(packet.into_packet());
            buf.advance(len);
        }
        Ok(())
    })
}

/// Puts `first` in a buffer and lets `drain` decode what is whole into the packet list, then
/// appends `second` and drains again: the packets, then the error that ended decoding, if any.
fn feed_in_two(
    first: &[u8],
    second: &[u8],
    mut drain: impl FnMut(&mut BytesMut, &mut Vec<Packet>) -> Result<(), DecodeError>,
) -> (Vec<Packet>, Option<DecodeError>) {
    let mut buf = BytesMut::from(first);
    let mut got = Vec::new();
    for next in [Some(second), None] {
        if let Err(error) = drain(&mut buf, &mut got) {
            return (got, Some(error));
        }
        if let Some(bytes) = next {
            buf.extend_from_slice(bytes);
        }
    }
    (got, None)
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
    assert_eq!(
        out.len(),
        packet.encoded_len(version),
        "encoded_len is exact"
    );
    let again = decode_packet(out.freeze(), version).expect("an encoded packet decodes");
    assert_eq!(&again, packet, "decode(encode(p)) == p");
}

/// Every error knows what goes on the wire.
fn check_error(error: DecodeError) {
    let code = error.reason_code();
    assert!(
        u8::from(code) >= 0x80,
        "a decode error maps to an error reason code"
    );
    let _ = error.to_string();
}
