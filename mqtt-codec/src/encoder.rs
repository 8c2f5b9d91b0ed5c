//! Encoding: [`Packet::encoded_len`], [`Packet::encode`] and the field writers every packet uses.
//! A frame is measured first, the buffer reserved once, then written with `put_*`; if a field
//! turns out to be unencodable the partial frame is removed again, so `out` is left unchanged.

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::frame::{MAX_VBI, vbi_len};
use crate::packet::{Packet, PacketType};
use crate::primitives::ProtocolVersion;
use crate::string::MqttStr;

/// Bytes a UTF-8 string or binary field takes: two-byte length plus the bytes.
#[inline]
pub(crate) const fn prefixed_len(len: usize) -> usize {
    2 + len
}

/// Writes a two-byte-length-prefixed string (its bytes: no UTF-8 re-check).
#[inline]
pub(crate) fn put_str(out: &mut BytesMut, s: &MqttStr) -> Result<(), EncodeError> {
    put_utf8(out, s.as_bytes())
}

/// Writes a two-byte-length-prefixed string given as its (already valid) UTF-8 bytes.
#[inline]
pub(crate) fn put_utf8(out: &mut BytesMut, s: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(s.len()).map_err(|_| EncodeError::StringTooLong)?;
    out.put_u16(len);
    out.extend_from_slice(s);
    Ok(())
}

/// Writes two-byte-length-prefixed binary data.
#[inline]
pub(crate) fn put_binary(out: &mut BytesMut, data: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(data.len()).map_err(|_| EncodeError::BinaryTooLong)?;
    out.put_u16(len);
    out.extend_from_slice(data);
    Ok(())
}

/// Writes a fixed header with `remaining` bytes to follow, in one write. On error nothing is
/// written.
#[inline(always)]
pub(crate) fn put_fixed_header(
    out: &mut BytesMut,
    first_byte: u8,
    remaining: usize,
) -> Result<(), EncodeError> {
    // Constant-size writes for the common one- and two-byte lengths.
    if remaining < 0x80 {
        out.extend_from_slice(&[first_byte, remaining as u8]);
        return Ok(());
    }
    if remaining < 0x4000 {
        out.extend_from_slice(&[first_byte, (remaining as u8) | 0x80, (remaining >> 7) as u8]);
        return Ok(());
    }
    put_long_fixed_header(out, first_byte, remaining)
}

/// [`put_fixed_header`] for remaining lengths of three and four bytes (16 KiB and more), kept out
/// of line so the common case inlines small.
#[inline(never)]
fn put_long_fixed_header(
    out: &mut BytesMut,
    first_byte: u8,
    remaining: usize,
) -> Result<(), EncodeError> {
    let mut value = u32::try_from(remaining)
        .ok()
        .filter(|&r| r <= MAX_VBI)
        .ok_or(EncodeError::PacketTooLarge)?;
    // At most MAX_VBI, so at most four length bytes after the first byte.
    let mut header = [first_byte, 0, 0, 0, 0];
    let mut len = 1;
    for slot in header.iter_mut().skip(1) {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        len += 1;
        if value == 0 {
            *slot = byte;
            break;
        }
        *slot = byte | 0x80;
    }
    out.extend_from_slice(header.get(..len).unwrap_or_default());
    Ok(())
}

/// Appends one whole frame: reserves its exact size once, writes the fixed header announcing
/// `body` bytes, then the body with `write_body`. If either fails, `out` is truncated back to
/// where it was, so a failed encode leaves no partial frame.
#[inline(always)]
pub(crate) fn put_frame(
    out: &mut BytesMut,
    first_byte: u8,
    body: usize,
    write_body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    out.reserve(frame_len(body));
    let start = out.len();
    let written = put_fixed_header(out, first_byte, body).and_then(|()| write_body(out));
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// A cursor over the zero-filled room of a measured frame: writes are plain slice copies, with
/// no capacity check per field as `BytesMut::put_*` makes. Used for MQTT 3.x CONNECT and
/// SUBSCRIBE, whose many short fields made those checks a measurable share of encoding.
pub(crate) struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl SliceWriter<'_> {
    /// Copies `bytes` to the cursor. The frame was measured exactly, so they always fit; were the
    /// measure ever wrong, the bytes past the end would be dropped, never written elsewhere.
    #[inline(always)]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            copy_short(dst, bytes);
        }
        self.pos = end;
    }

    /// A two-byte-length-prefixed string given as its UTF-8 bytes.
    #[inline(always)]
    pub(crate) fn utf8(&mut self, s: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(s.len()).map_err(|_| EncodeError::StringTooLong)?;
        self.put(&len.to_be_bytes());
        self.put(s);
        Ok(())
    }

    /// A two-byte-length-prefixed string given as its UTF-8 bytes, then one byte (a SUBSCRIBE
    /// entry: filter and options), with one bounds check for the three.
    #[inline(always)]
    pub(crate) fn utf8_and_byte(&mut self, s: &[u8], byte: u8) -> Result<(), EncodeError> {
        let len = u16::try_from(s.len()).map_err(|_| EncodeError::StringTooLong)?;
        let end = self.pos + 2 + s.len() + 1;
        if let Some(dst) = self.buf.get_mut(self.pos..end)
            && let Some((head, rest)) = dst.split_first_chunk_mut::<2>()
            && let Some((last, middle)) = rest.split_last_mut()
        {
            *head = len.to_be_bytes();
            copy_short(middle, s);
            *last = byte;
        }
        self.pos = end;
        Ok(())
    }

    /// Two-byte-length-prefixed binary data.
    #[inline(always)]
    pub(crate) fn binary(&mut self, data: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(data.len()).map_err(|_| EncodeError::BinaryTooLong)?;
        self.put(&len.to_be_bytes());
        self.put(data);
        Ok(())
    }
}

/// `dst.copy_from_slice(src)` for slices of equal length, with the short lengths of MQTT's
/// fields (client ids, topics, filters: mostly under 33 bytes) copied inline as two
/// overlapping fixed-size moves instead of a call to `memcpy`, whose call and size dispatch
/// cost more than the copy at these sizes.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    fn overlapping<const N: usize>(dst: &mut [u8], src: &[u8]) {
        if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
            *d = *s;
        }
        if let (Some(d), Some(s)) = (dst.last_chunk_mut::<N>(), src.last_chunk::<N>()) {
            *d = *s;
        }
    }
    match src.len() {
        0 => {}
        1 => overlapping::<1>(dst, src),
        2..=3 => overlapping::<2>(dst, src),
        4..=7 => overlapping::<4>(dst, src),
        8..=15 => overlapping::<8>(dst, src),
        16..=32 => overlapping::<16>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// [`put_frame`] for bodies written through a [`SliceWriter`]: `out` grows by the exact frame
/// (zero-filled) once, the fixed header is written, then `write_body` fills the rest. On error
/// `out` is truncated back, as with [`put_frame`].
#[inline(always)]
pub(crate) fn put_frame_exact(
    out: &mut BytesMut,
    first_byte: u8,
    body: usize,
    write_body: impl FnOnce(&mut SliceWriter<'_>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    // The fixed header is written (or refused as too large) before the room is made.
    put_fixed_header(out, first_byte, body)?;
    // Short bodies are zero-filled from a constant by one inline copy rather than a call to
    // `memset`.
    const ZEROS: [u8; 128] = [0; 128];
    match ZEROS.get(..body) {
        Some(zeros) => out.extend_from_slice(zeros),
        None => out.resize(out.len() + body, 0),
    }
    let header_end = out.len() - body;
    let mut writer = SliceWriter {
        buf: out.get_mut(header_end..).unwrap_or_default(),
        pos: 0,
    };
    let written = write_body(&mut writer);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// Length of a whole frame whose remaining length is `body`.
#[inline]
pub(crate) const fn frame_len(body: usize) -> usize {
    1 + vbi_len(body) + body
}

impl Packet {
    /// The remaining length (everything after the fixed header) in `version`.
    fn body_len(&self, version: ProtocolVersion) -> usize {
        match self {
            Self::Connect(p) => p.body_len(),
            Self::ConnAck(p) => p.body_len(version),
            Self::Publish(p) => p.body_len(version),
            Self::PubAck(p) | Self::PubRec(p) | Self::PubRel(p) | Self::PubComp(p) => {
                p.body_len(version)
            }
            Self::Subscribe(p) => p.body_len(version),
            Self::SubAck(p) => p.body_len(version),
            Self::Unsubscribe(p) => p.body_len(version),
            Self::UnsubAck(p) => p.body_len(version),
            Self::PingReq | Self::PingResp => 0,
            Self::Disconnect(p) => p.body_len(version),
            Self::Auth(p) => p.body_len(),
        }
    }

    /// The exact size of the frame [`Packet::encode`] writes for `version`, fixed header
    /// included. A CONNECT is measured in its own `protocol` version.
    #[must_use]
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        frame_len(self.body_len(version))
    }

    /// Appends the frame of this packet in `version` to `out`, reserving space once. A CONNECT
    /// is encoded in its own `protocol` version. On error `out` is left as it was.
    ///
    /// # Errors
    /// A field that cannot be encoded: too long, a property or reason code the packet type
    /// cannot carry, AUTH in MQTT 3.x, etc. (see [`EncodeError`]).
    #[inline]
    pub fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
        // PUBLISH, the packet that streams, inlines into the caller; the others share one
        // function.
        if let Self::Publish(p) = self {
            return p.encode(version, out);
        }
        self.encode_other(version, out)
    }

    /// [`Packet::encode`] for every packet but PUBLISH: a thin dispatch (inlined into the
    /// caller) to CONNECT and SUBSCRIBE, which have their own functions, and to
    /// [`Packet::encode_small`].
    #[inline]
    fn encode_other(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        match self {
            Self::Connect(p) => p.encode(out),
            Self::Subscribe(p) => p.encode(version, out),
            _ => self.encode_small(version, out),
        }
    }

    /// [`Packet::encode`] for the packets without a function of their own: one dispatch, then
    /// each arm measures and writes its own type.
    #[inline(never)]
    fn encode_small(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let first_byte = first_byte(self.packet_type());
        match self {
            Self::Publish(p) => p.encode(version, out),
            Self::Connect(p) => p.encode(out),
            Self::Auth(p) => {
                if !version.is_v5() {
                    return Err(EncodeError::UnsupportedPacket(first_byte >> 4));
                }
                put_frame(out, first_byte, p.body_len(), |out| p.write(out))
            }
            Self::ConnAck(p) => put_frame(out, first_byte, p.body_len(version), |out| {
                p.write(version, out)
            }),
            Self::PubAck(p) | Self::PubRec(p) | Self::PubRel(p) | Self::PubComp(p) => {
                let packet_type = self.packet_type();
                put_frame(out, first_byte, p.body_len(version), |out| {
                    p.write(version, packet_type, out)
                })
            }
            Self::Subscribe(p) => p.encode(version, out),
            Self::SubAck(p) => put_frame(out, first_byte, p.body_len(version), |out| {
                p.write(version, out)
            }),
            Self::Unsubscribe(p) => put_frame(out, first_byte, p.body_len(version), |out| {
                p.write(version, out)
            }),
            Self::UnsubAck(p) => put_frame(out, first_byte, p.body_len(version), |out| {
                p.write(version, out)
            }),
            Self::Disconnect(p) => put_frame(out, first_byte, p.body_len(version), |out| {
                p.write(version, out)
            }),
            Self::PingReq | Self::PingResp => put_fixed_header(out, first_byte, 0),
        }
    }
}

/// The first fixed-header byte of a packet of this type (PUBLISH: without its flags).
#[inline]
const fn first_byte(packet_type: PacketType) -> u8 {
    let flags = match packet_type.required_flags() {
        Some(flags) => flags,
        None => 0,
    };
    (packet_type as u8) << 4 | flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::parse_fixed_header;
    use crate::{Connect, Properties, Publish, QoS, Subscribe, SubscriptionOptions, decode_packet};
    use bytes::Bytes;

    fn long_str() -> MqttStr {
        MqttStr::try_from(Bytes::from(vec![b'a'; 70_000])).unwrap()
    }

    /// Every encoding path (PUBLISH direct, SliceWriter for 3.x CONNECT and SUBSCRIBE,
    /// `put_frame` for 5.0) refuses a string over 65,535 bytes and leaves `out` as it was.
    #[test]
    fn unencodable_field_leaves_out_unchanged() {
        let connect = |protocol, client_id| {
            Packet::Connect(Box::new(Connect {
                protocol,
                bridge: false,
                clean_start: true,
                keep_alive: 0,
                client_id,
                will: None,
                username: Some(long_str()),
                password: None,
                properties: Properties::default(),
            }))
        };
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id: crate::PacketId::new(1).unwrap(),
            filters: vec![
                (MqttStr::from_static("a"), SubscriptionOptions::default()),
                (long_str(), SubscriptionOptions::default()),
            ],
            properties: Properties::default(),
        });
        let publish = Packet::Publish(Publish::new(long_str(), Bytes::from_static(b"x")));
        for version in [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ] {
            let packets = [
                connect(version, MqttStr::from_static("id")),
                connect(version, long_str()),
                subscribe.clone(),
                publish.clone(),
            ];
            for packet in packets {
                let mut out = BytesMut::from(&b"before"[..]);
                assert_eq!(
                    packet.encode(version, &mut out),
                    Err(EncodeError::StringTooLong)
                );
                assert_eq!(
                    &out[..],
                    b"before",
                    "{version:?} {:?}",
                    packet.packet_type()
                );
            }
        }
    }

    /// Frames whose remaining length takes two or three bytes take the general fixed-header
    /// path of every encoder and still round-trip.
    #[test]
    fn long_frames_round_trip() {
        for len in [100, 20_000] {
            let filter = MqttStr::try_from(Bytes::from(vec![b'f'; len])).unwrap();
            let subscribe = Packet::Subscribe(Subscribe {
                packet_id: crate::PacketId::new(9).unwrap(),
                filters: vec![(filter.clone(), SubscriptionOptions::default())],
                properties: Properties::default(),
            });
            let connect = Packet::Connect(Box::new(Connect {
                protocol: ProtocolVersion::V3_1_1,
                bridge: false,
                clean_start: false,
                keep_alive: 5,
                client_id: filter.clone(),
                will: Some(crate::LastWill {
                    topic: filter,
                    payload: Bytes::from_static(b"w"),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    properties: Properties::default(),
                }),
                username: None,
                password: None,
                properties: Properties::default(),
            }));
            for packet in [subscribe, connect] {
                let mut out = BytesMut::from(&b"x"[..]);
                packet.encode(ProtocolVersion::V3_1_1, &mut out).unwrap();
                assert_eq!(out.len(), 1 + packet.encoded_len(ProtocolVersion::V3_1_1));
                let frame = out.split_off(1).freeze();
                assert_eq!(
                    decode_packet(frame, ProtocolVersion::V3_1_1).unwrap(),
                    packet
                );
            }
        }
    }

    #[test]
    fn short_copies_copy_exactly() {
        let src: Vec<u8> = (1..=40).collect();
        for len in 0..=40 {
            let mut dst = vec![0u8; len + 2];
            copy_short(&mut dst[1..=len], &src[..len]);
            assert_eq!(&dst[1..=len], &src[..len], "{len}");
            assert_eq!((dst[0], dst[len + 1]), (0, 0), "{len}: nothing outside");
        }
    }

    #[test]
    fn fixed_header_lengths_round_trip() {
        for remaining in [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_VBI] {
            let mut out = BytesMut::new();
            put_fixed_header(&mut out, 0x30, remaining as usize).unwrap();
            assert_eq!(out.len(), 1 + vbi_len(remaining as usize));
            let header = parse_fixed_header(&out).unwrap().unwrap();
            assert_eq!((header.first_byte, header.remaining_len), (0x30, remaining));
            assert_eq!(header.header_len, out.len());
        }
        let mut out = BytesMut::new();
        assert_eq!(
            put_fixed_header(&mut out, 0x30, MAX_VBI as usize + 1),
            Err(EncodeError::PacketTooLarge)
        );
        assert!(out.is_empty());
    }
}
