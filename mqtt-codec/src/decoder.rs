//! Decoding: the streaming [`Decoder`] that finds frame boundaries in a `BytesMut`, enforces the
//! size limit from the fixed header alone and splits each frame off zero-copy (or a whole batch
//! of frames at once, decoded as packets borrowing from it), and [`decode_packet`] which parses
//! one whole frame.

use bytes::{Bytes, BytesMut};

use crate::borrowed::{PacketRef, Packets, PublishRef};
use crate::error::DecodeError;
use crate::frame::{FixedHeader, MAX_PACKET_SIZE, parse_fixed_header};
use crate::packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, Packet, PacketType, Publish, PublishLayout, SubAck,
    Subscribe, UnsubAck, Unsubscribe,
};
use crate::primitives::ProtocolVersion;
use crate::reader::Reader;

/// A streaming decoder for one connection.
///
/// Until a CONNECT has been decoded (or [`Decoder::set_version`] called) packets other than
/// CONNECT are decoded with MQTT 3.1.1 rules.
///
/// Bytes are appended to a `BytesMut` as they arrive; [`Decoder::decode`] takes whole frames
/// off its front and leaves a partial one for the next read:
///
/// ```
/// use mqtt_wire::{BytesMut, DecodeError, Decoder, Packet, ProtocolVersion};
///
/// let mut decoder = Decoder::new().with_max_packet_size(128);
/// let mut buf = BytesMut::new();
/// // A 3.1.1 CONNECT (client id "dev1") arrives in two reads.
/// buf.extend_from_slice(b"\x10\x10\x00\x04MQTT\x04");
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// buf.extend_from_slice(b"\x02\x00\x1e\x00\x04dev1");
/// let Some(Packet::Connect(connect)) = decoder.decode(&mut buf)? else { panic!() };
/// assert_eq!((&*connect.client_id, connect.keep_alive), ("dev1", 30));
/// assert_eq!(decoder.version(), Some(ProtocolVersion::V3_1_1));
/// assert!(buf.is_empty());
///
/// // A PUBLISH announcing 1000 bytes is refused from its fixed header alone.
/// buf.extend_from_slice(b"\x30\xe8\x07");
/// assert_eq!(
///     decoder.decode(&mut buf),
///     Err(DecodeError::PacketTooLarge { size: 1003, max: 128 })
/// );
/// # Ok::<(), DecodeError>(())
/// ```
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
    /// Each packet owns a reference to its frame: splitting it off and dropping it are two
    /// atomic reference-count updates. To decode many frames with none, see
    /// [`Decoder::split_frames`] and [`Decoder::packets`].
    ///
    /// # Errors
    /// The bytes break the specification; see [`DecodeError::reason_code`].
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = self.whole_frame(buf)? else {
            return Ok(None);
        };
        let frame = buf.split_to(header.frame_len()).freeze();
        let version = self.version_for(&frame, 0, header);
        decode_body(frame, header, version).map(Some)
    }

    /// Splits every whole frame at the front of `buf` off at once, as one shared buffer to
    /// decode with [`Decoder::packets`] or [`Decoder::decode_borrowed`]: one split for the whole
    /// batch instead of one per frame. A partial frame at the end stays in `buf`; if nothing
    /// whole is buffered the result is empty (and allocates nothing).
    ///
    /// Each frame's size limit is checked from its fixed header, as in [`Decoder::decode`].
    ///
    /// # Errors
    /// The first frame in `buf` declares more than the maximum packet size or has a malformed
    /// remaining length; nothing is consumed. (When such a frame follows whole frames, those are
    /// returned first and the error comes with the next call.)
    pub fn split_frames(&self, buf: &mut BytesMut) -> Result<Bytes, DecodeError> {
        let len = self.whole_frames_len(buf)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        Ok(buf.split_to(len).freeze())
    }

    /// [`Decoder::split_frames`] for a read that arrived as [`Bytes`]: the whole frames at its
    /// front are split off without a copy (a view into the same buffer), and the rest (a
    /// partial frame, or the frame after which an error will be reported) stays in `buf`.
    ///
    /// ```
    /// use mqtt_wire::{Bytes, Decoder};
    ///
    /// let decoder = Decoder::new();
    /// let mut read = Bytes::from_static(b"\xc0\x00\xc0\x00\x30"); // two PINGREQ, a partial PUBLISH
    /// let frames = decoder.split_whole_frames(&mut read)?;
    /// assert_eq!((&frames[..], &read[..]), (&b"\xc0\x00\xc0\x00"[..], &b"\x30"[..]));
    /// # Ok::<(), mqtt_wire::DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Decoder::split_frames`]: the first frame is too large or malformed.
    pub fn split_whole_frames(&self, buf: &mut Bytes) -> Result<Bytes, DecodeError> {
        let len = self.whole_frames_len(buf)?;
        Ok(buf.split_to(len))
    }

    /// Length of the whole frames at the front of `buf`; an error only for the first frame.
    fn whole_frames_len(&self, buf: &[u8]) -> Result<usize, DecodeError> {
        let mut len = 0;
        loop {
            match self.whole_frame(buf.get(len..).unwrap_or_default()) {
                Ok(Some(header)) => len += header.frame_len(),
                Ok(None) => return Ok(len),
                Err(error) if len == 0 => return Err(error),
                Err(_) => return Ok(len),
            }
        }
    }

    /// Decodes the packets of the whole frames in `frames` in order, each borrowing from it
    /// (see [`PacketRef`]): no reference count changes per frame.
    ///
    /// Iteration ends at the end of `frames` or before a partial frame at its end
    /// ([`Packets::remainder`] holds what was not decoded), and after the first error, which
    /// is yielded once. Version and size rules are those of [`Decoder::decode`].
    ///
    /// ```
    /// use mqtt_wire::{BytesMut, Decoder, PacketRef, ProtocolVersion};
    ///
    /// let mut decoder = Decoder::new();
    /// decoder.set_version(ProtocolVersion::V3_1_1);
    /// let mut input = BytesMut::from(&b"\x30\x07\x00\x03a/bhi\x30\x06\x00\x01cbye\xc0"[..]);
    ///
    /// let frames = decoder.split_frames(&mut input)?; // two PUBLISH; PINGREQ is partial
    /// assert_eq!(&input[..], b"\xc0");
    /// let mut kept = Vec::new();
    /// for packet in decoder.packets(&frames) {
    ///     match packet? {
    ///         PacketRef::Publish(publish) if publish.topic() == "c" => {
    ///             kept.push(publish.to_publish()); // one reference-count update
    ///         }
    ///         PacketRef::Publish(publish) => assert_eq!(publish.payload(), b"hi"),
    ///         PacketRef::Other(packet) => unreachable!("{packet:?}"),
    ///     }
    /// }
    /// drop(frames); // `kept` holds its frame on its own
    /// assert_eq!((kept[0].topic(), kept[0].payload()), ("c", &b"bye"[..]));
    /// # Ok::<(), mqtt_wire::DecodeError>(())
    /// ```
    pub fn packets<'a>(&mut self, frames: &'a Bytes) -> Packets<'_, 'a> {
        Packets::new(self, frames)
    }

    /// Decodes the packet of the frame at `frames[*offset..]` and advances `offset` past it;
    /// the packet borrows from `frames` (see [`PacketRef`]). `Ok(None)`: `offset` is at the
    /// end of `frames` or at a partial frame, and is left unchanged.
    ///
    /// The same as [`Decoder::packets`], one step at a time and without holding the decoder
    /// between steps, so a caller that keeps the decoder beside other state (a broker's
    /// connection table) can handle each packet before decoding the next, or stop early and
    /// keep `frames.slice(offset..)`.
    ///
    /// # Errors
    /// As for [`Decoder::decode`]; after an error the connection must be closed.
    #[inline(always)]
    pub fn decode_borrowed<'a>(
        &mut self,
        frames: &'a Bytes,
        offset: &mut usize,
    ) -> Result<Option<PacketRef<'a>>, DecodeError> {
        let start = *offset;
        let Some(header) = self.whole_frame(frames.get(start..).unwrap_or_default())? else {
            return Ok(None);
        };
        let end = start + header.frame_len();
        *offset = end;
        let version = self.version_for(frames, start, header);
        if header.first_byte >> 4 == PacketType::Publish as u8 {
            let flags = header.first_byte & 0x0F;
            let body_start = start + header.header_len;
            let owner = Some(frames);
            let layout =
                PublishLayout::parse(flags, frames, owner, start, body_start, end, version)?;
            return Ok(Some(PacketRef::Publish(PublishRef::new(
                frames, owner, start, end, layout,
            ))));
        }
        decode_other(frames, Some(frames), start, header, version)
            .map(|packet| Some(PacketRef::Other(packet)))
    }

    /// Decodes the frame at the front of `buf` in place, without taking it out of the buffer:
    /// the packet borrows from `buf` and the frame's length comes with it, for the caller to
    /// consume (`BytesMut::advance`) once the packet is dropped. `Ok(None)`: no whole frame
    /// yet. Validation, version and size rules are those of [`Decoder::decode`].
    ///
    /// This is the cheapest way to handle a packet that is read and then dropped (a client
    /// reading acknowledgements and messages, a load generator): no reference count changes
    /// and nothing is allocated for a PUBLISH (5.0 properties aside, which are copied) or an
    /// acknowledgement of 3.1.1. Other packets whose owned form holds `Bytes` fields (CONNECT,
    /// SUBSCRIBE, UNSUBSCRIBE, anything of 5.0) are decoded from one copy of their frame; a
    /// packet to keep is better decoded with [`Decoder::decode`] or
    /// [`Decoder::decode_borrowed`], which share the frame.
    ///
    /// ```
    /// use bytes::Buf as _;
    /// use mqtt_wire::{BytesMut, Decoder, PacketRef, PacketType, ProtocolVersion};
    ///
    /// let mut decoder = Decoder::new();
    /// decoder.set_version(ProtocolVersion::V3_1_1);
    /// let mut input = BytesMut::from(&b"\x30\x07\x00\x03a/bhi\x40\x02\x00\x01\x30"[..]);
    /// let mut seen = Vec::new();
    /// while let Some((packet, len)) = decoder.decode_in_place(&input)? {
    ///     match packet {
    ///         PacketRef::Publish(publish) => seen.push((publish.topic().to_owned(), publish.payload()[0])),
    ///         PacketRef::Other(packet) => assert_eq!(packet.packet_type(), PacketType::PubAck),
    ///     }
    ///     input.advance(len);
    /// }
    /// assert_eq!(seen, [("a/b".to_owned(), b'h')]);
    /// assert_eq!(&input[..], b"\x30"); // a partial frame waits for more bytes
    /// # Ok::<(), mqtt_wire::DecodeError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`Decoder::decode`]; after an error the connection must be closed.
    #[inline(always)]
    pub fn decode_in_place<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Option<(PacketRef<'a>, usize)>, DecodeError> {
        let Some(header) = self.whole_frame(buf)? else {
            return Ok(None);
        };
        let end = header.frame_len();
        let version = self.version_for(buf, 0, header);
        if header.first_byte >> 4 == PacketType::Publish as u8 {
            let flags = header.first_byte & 0x0F;
            let layout =
                PublishLayout::parse(flags, buf, None, 0, header.header_len, end, version)?;
            let publish = PublishRef::new(buf, None, 0, end, layout);
            return Ok(Some((PacketRef::Publish(publish), end)));
        }
        let packet = if holds_bytes(header.first_byte >> 4, version) {
            // One copy of the frame, of which the fields take views.
            let frame = Bytes::copy_from_slice(buf.get(..end).unwrap_or_default());
            decode_other(&frame, Some(&frame), 0, header, version)?
        } else {
            decode_other(buf, None, 0, header, version)?
        };
        Ok(Some((PacketRef::Other(packet), end)))
    }

    /// The fixed header of the frame at the start of `buf` if the whole frame is there;
    /// `Ok(None)` if more bytes are needed. The size limit is checked first.
    #[inline(always)]
    fn whole_frame(&self, buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
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
        Ok((buf.len() >= size).then_some(header))
    }

    /// The version to decode the frame at `buf[start..]` with. A CONNECT while no version is
    /// known makes the decoder adopt the version it names.
    #[inline(always)]
    fn version_for(&mut self, buf: &[u8], start: usize, header: FixedHeader) -> ProtocolVersion {
        let version = self.version.unwrap_or(ProtocolVersion::V3_1_1);
        if self.version.is_none() && header.first_byte >> 4 == PacketType::Connect as u8 {
            let body = start + header.header_len;
            let mut r = Reader::borrowed(buf, body, start + header.frame_len());
            if let Ok((protocol, _)) = Connect::decode_protocol(&mut r) {
                self.version = Some(protocol);
            }
        }
        version
    }
}

/// Whether a packet of type `type_bits` can hold strings or binary data (which the owned packet
/// types keep as `Bytes`): anything with 5.0 properties, CONNECT, SUBSCRIBE and UNSUBSCRIBE.
#[inline]
fn holds_bytes(type_bits: u8, version: ProtocolVersion) -> bool {
    version.is_v5()
        || type_bits == PacketType::Connect as u8
        || type_bits == PacketType::Subscribe as u8
        || type_bits == PacketType::Unsubscribe as u8
}

/// Decodes one whole frame (fixed header included) received on a connection of `version`.
/// A CONNECT is decoded in the version it names.
///
/// ```
/// use mqtt_wire::{
///     Bytes, DecodeError, Packet, PacketId, ProtocolVersion, ReasonCode, decode_packet,
/// };
///
/// // An MQTT 5.0 PUBACK for packet 5 with reason code 0x10 (no matching subscribers).
/// let frame = Bytes::from_static(b"\x40\x03\x00\x05\x10");
/// let Packet::PubAck(ack) = decode_packet(frame, ProtocolVersion::V5)? else { panic!() };
/// assert_eq!(ack.packet_id, PacketId::new(5).expect("non-zero"));
/// assert_eq!(ack.reason_code, ReasonCode::NoMatchingSubscribers);
///
/// let cut_short = Bytes::from_static(b"\x40\x03\x00\x05");
/// assert_eq!(decode_packet(cut_short, ProtocolVersion::V5), Err(DecodeError::Truncated));
/// # Ok::<(), DecodeError>(())
/// ```
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

/// Decodes a whole owned frame: a PUBLISH keeps it, other packets take views into it.
#[inline(always)]
fn decode_body(
    frame: Bytes,
    header: FixedHeader,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    if header.first_byte >> 4 == PacketType::Publish as u8 {
        // The common case first; PUBLISH flags are checked by its decoder.
        let flags = header.first_byte & 0x0F;
        return Publish::decode(flags, frame, header.header_len, version).map(Packet::Publish);
    }
    decode_other(&frame, Some(&frame), 0, header, version)
}

/// Checks the packet type and its fixed-header flags, then decodes the body of the frame at
/// `buf[start..]` (the caller has checked that it is whole). Fields are views into `owner`, the
/// shared buffer `buf` is the contents of, or copies when there is none.
/// Out of line, so the PUBLISH paths that inline it stay small.
#[inline(never)]
fn decode_other(
    buf: &[u8],
    owner: Option<&Bytes>,
    start: usize,
    header: FixedHeader,
    version: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    let type_bits = header.first_byte >> 4;
    let flags = header.first_byte & 0x0F;
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
    let (body_start, end) = (start + header.header_len, start + header.frame_len());
    let body = || Reader::over(buf, owner, body_start, end);
    Ok(match packet_type {
        PacketType::Publish => {
            let layout = PublishLayout::parse(flags, buf, owner, start, body_start, end, version)?;
            let frame = crate::reader::view_or_copy(owner, buf, start, end);
            Packet::Publish(Publish::from_layout(layout, frame))
        }
        PacketType::Connect => Packet::Connect(Box::new(Connect::decode(&mut body())?)),
        PacketType::ConnAck => Packet::ConnAck(ConnAck::decode(&mut body(), version)?),
        PacketType::PubAck => Packet::PubAck(Ack::decode(&mut body(), version, packet_type)?),
        PacketType::PubRec => Packet::PubRec(Ack::decode(&mut body(), version, packet_type)?),
        PacketType::PubRel => Packet::PubRel(Ack::decode(&mut body(), version, packet_type)?),
        PacketType::PubComp => Packet::PubComp(Ack::decode(&mut body(), version, packet_type)?),
        PacketType::Subscribe => Packet::Subscribe(Subscribe::decode(&mut body(), version)?),
        PacketType::SubAck => Packet::SubAck(SubAck::decode(&mut body(), version)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::decode(&mut body(), version)?),
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(&mut body(), version)?),
        PacketType::PingReq => {
            body().finish()?;
            Packet::PingReq
        }
        PacketType::PingResp => {
            body().finish()?;
            Packet::PingResp
        }
        PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(&mut body(), version)?),
        PacketType::Auth => Packet::Auth(Auth::decode(&mut body())?),
    })
}
