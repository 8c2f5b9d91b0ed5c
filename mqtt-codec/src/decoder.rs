//! Decoding: the streaming [`Decoder`] that finds frame boundaries in a `BytesMut`, enforces the
//! size limit from the fixed header alone and splits each frame off zero-copy, and
//! [`decode_packet`] which parses one whole frame.

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::frame::{FixedHeader, MAX_PACKET_SIZE, parse_fixed_header};
use crate::packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, Packet, PacketType, Publish, SubAck, Subscribe,
    UnsubAck, Unsubscribe,
};
use crate::primitives::ProtocolVersion;
use crate::reader::Reader;

/// A streaming decoder for one connection.
///
/// Until a CONNECT has been decoded (or [`Decoder::set_version`] called) packets other than
/// CONNECT are decoded with MQTT 3.1.1 rules.
#[derive(Clone, Debug)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with an unknown version and no size limit beyond the protocol's
    /// ([`MAX_PACKET_SIZE`]).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            version: None,
            max_packet_size: MAX_PACKET_SIZE,
        }
    }

    /// Sets the largest accepted packet, fixed header included.
    #[must_use]
    pub const fn with_max_packet_size(mut self, bytes: u32) -> Self {
        self.max_packet_size = bytes;
        self
    }

    /// The largest accepted packet, fixed header included.
    #[must_use]
    pub const fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Fixes the protocol version of the connection.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// The protocol version, once known.
    #[must_use]
    pub const fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Decodes the next packet from the front of `buf`.
    ///
    /// `Ok(None)`: `buf` does not hold a whole frame yet and nothing was consumed. `Ok(Some)`:
    /// one frame was split off `buf` and frozen, and every field of the packet is a view into
    /// it. The size limit is checked as soon as the fixed header is complete, before the body
    /// is buffered. After an error the connection must be closed: errors found in the fixed header
    /// (size, remaining length) consume nothing, errors in the body consume the frame.
    ///
    /// When a CONNECT names a supported protocol version and no version is set yet, the decoder
    /// adopts that version, even if a later field of the CONNECT is malformed, so the caller
    /// knows which CONNACK form to answer with.
    ///
    /// # Errors
    /// The bytes break the specification; see [`DecodeError::reason_code`].
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = parse_fixed_header(buf)? else {
            return Ok(None);
        };
        let size = header.frame_len();
        if size > self.max_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size: u32::try_from(size).unwrap_or(u32::MAX),
                max: self.max_packet_size,
            });
        }
        if buf.len() < size {
            return Ok(None);
        }
        let frame = buf.split_to(size).freeze();
        let version = self.version.unwrap_or(ProtocolVersion::V3_1_1);
        if header.first_byte >> 4 == PacketType::Connect as u8 && self.version.is_none() {
            let mut r = Reader::new(&frame, header.header_len, size);
            if let Ok(protocol) = Connect::decode_protocol(&mut r) {
                self.version = Some(protocol);
            }
        }
        decode_body(frame, header, version).map(Some)
    }
}

/// Decodes one whole frame (fixed header included) received on a connection of `version`.
/// A CONNECT is decoded in the version it names.
///
/// # Errors
/// The frame is incomplete (`Truncated`), longer than its header says (`TrailingBytes`), or
/// breaks the specification.
#[inline]
pub fn decode_packet(frame: Bytes, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let header = parse_fixed_header(&frame)?.ok_or(DecodeError::Truncated)?;
    let size = header.frame_len();
    if frame.len() < size {
        return Err(DecodeError::Truncated);
    }
    if frame.len() > size {
        return Err(DecodeError::TrailingBytes);
    }
    decode_body(frame, header, version)
}

/// Checks the packet type and its fixed-header flags, then decodes the body.
#[inline(always)]
fn decode_body(
    frame: Bytes,
    header: FixedHeader,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    let type_bits = header.first_byte >> 4;
    let flags = header.first_byte & 0x0F;
    if type_bits == PacketType::Publish as u8 {
        // The common case first; PUBLISH flags are checked by its decoder.
        return Publish::decode(flags, frame, header.header_len, version).map(Packet::Publish);
    }
    let packet_type = PacketType::try_from(type_bits)?;
    if packet_type == PacketType::Auth && !version.is_v5() {
        return Err(DecodeError::InvalidPacketType(type_bits));
    }
    if let Some(required) = packet_type.required_flags()
        && flags != required
        // MQTT 3.1 let PUBREL, SUBSCRIBE and UNSUBSCRIBE carry DUP on retransmission.
        && !(version == ProtocolVersion::V3_1 && required == 0b0010 && flags == 0b1010)
    {
        // [MQTT311-2.2.2-1/2] [MQTT5-2.1.3-1]
        return Err(DecodeError::InvalidFixedHeaderFlags {
            packet_type: type_bits,
            flags,
        });
    }
    let (start, end) = (header.header_len, header.frame_len());
    let body = |frame| Reader::new(frame, start, end);
    Ok(match packet_type {
        PacketType::Publish => {
            Packet::Publish(Publish::decode(flags, frame, header.header_len, version)?)
        }
        PacketType::Connect => Packet::Connect(Box::new(Connect::decode(&mut body(&frame))?)),
        PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(&mut body(&frame), version)?),
        PacketType::PubAck => Packet::PubAck(Ack::decode(&mut body(&frame), version, packet_type)?),
        PacketType::PubRec => Packet::PubRec(Ack::decode(&mut body(&frame), version, packet_type)?),
        PacketType::PubRel => Packet::PubRel(Ack::decode(&mut body(&frame), version, packet_type)?),
        PacketType::PubComp => {
            Packet::PubComp(Ack::decode(&mut body(&frame), version, packet_type)?)
        }
        PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(&mut body(&frame), version)?),
        PacketType::SubAck => Packet::SubAck(SubAck::decode(&mut body(&frame), version)?),
        PacketType::Unsubscribe => {
            Packet::Unsubscribe(Unsubscribe::decode(&mut body(&frame), version)?)
        }
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(&mut body(&frame), version)?),
        PacketType::PingReq => {
            body(&frame).finish()?;
            Packet::PingReq
        }
        PacketType::PingResp => {
            body(&frame).finish()?;
            Packet::PingResp
        }
        PacketType::Disconnect => {
            Packet::Disconnect(Disconnect::decode(&mut body(&frame), version)?)
        }
        PacketType::Auth => Packet::Auth(Auth::decode(&mut body(&frame))?),
    })
}
