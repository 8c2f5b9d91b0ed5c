//! Packets that borrow from a shared buffer of whole frames: [`PacketRef`], its PUBLISH form
//! [`PublishRef`], and the [`Packets`] iterator over such a buffer. Decoding a stream this way
//! changes no reference count per frame (the owned [`Packet`] of [`crate::Decoder::decode`] takes
//! one reference to its frame when split off and gives it back when dropped); a packet the caller
//! keeps becomes owned with one slice.

use core::fmt;
use core::iter::FusedIterator;

use bytes::Bytes;

use crate::decoder::Decoder;
use crate::error::DecodeError;
use crate::packet::{Packet, PacketType, Publish, PublishLayout};
use crate::primitives::PublishQos;
use crate::properties::Properties;
use crate::string::MqttStr;

/// A packet decoded from a shared buffer of frames ([`crate::Decoder::packets`],
/// [`crate::Decoder::decode_borrowed`]) or in place from the caller's buffer
/// ([`crate::Decoder::decode_in_place`]).
///
/// A PUBLISH, the packet that streams, borrows its frame; every other packet is decoded to its
/// owned form (its strings and binary fields are views into the shared buffer, as with
/// [`crate::Decoder::decode`], or copies when decoded in place; acknowledgements and pings of
/// 3.1.1 hold none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketRef<'a> {
    /// A PUBLISH whose topic and payload are read in place.
    Publish(PublishRef<'a>),
    /// Any other packet.
    Other(Packet),
}

impl PacketRef<'_> {
    /// The packet type.
    #[must_use]
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Self::Publish(_) => PacketType::Publish,
            Self::Other(packet) => packet.packet_type(),
        }
    }

    /// The owned packet: a PUBLISH takes a view of its frame (one reference-count update).
    #[must_use]
    pub fn into_packet(self) -> Packet {
        match self {
            Self::Publish(publish) => Packet::Publish(publish.into_publish()),
            Self::Other(packet) => packet,
        }
    }
}

impl From<PacketRef<'_>> for Packet {
    fn from(packet: PacketRef<'_>) -> Self {
        packet.into_packet()
    }
}

/// A decoded PUBLISH that borrows its frame from the buffer it was decoded from.
///
/// Topic and payload are validated and read in place ([`PublishRef::topic`],
/// [`PublishRef::payload`]); [`PublishRef::to_publish`] makes the owned [`Publish`], which shares
/// the frame (one reference-count update, no copy). Equality compares the message, as for
/// [`Publish`].
#[derive(Clone)]
pub struct PublishRef<'a> {
    /// DUP flag: this is a re-delivery.
    pub dup: bool,
    /// QoS and packet identifier.
    pub qos: PublishQos,
    /// RETAIN flag.
    pub retain: bool,
    /// PUBLISH properties (5.0).
    pub properties: Properties,
    /// The buffer the frame is in, and where.
    buf: &'a [u8],
    /// The shared buffer `buf` is the contents of, when decoded from one (views of it are
    /// taken instead of copies).
    owner: Option<&'a Bytes>,
    frame_start: usize,
    frame_end: usize,
    /// Offsets from `frame_start`.
    topic_start: u32,
    topic_end: u32,
    payload_start: u32,
}

impl<'a> PublishRef<'a> {
    /// The PUBLISH whose frame is `buf[frame_start..frame_end]`, parsed into `layout`.
    #[inline(always)]
    pub(crate) fn new(
        buf: &'a [u8],
        owner: Option<&'a Bytes>,
        frame_start: usize,
        frame_end: usize,
        layout: PublishLayout,
    ) -> Self {
        Self {
            owner,
            dup: layout.dup,
            qos: layout.qos,
            retain: layout.retain,
            properties: layout.properties,
            buf,
            frame_start,
            frame_end,
            topic_start: layout.topic_start,
            topic_end: layout.topic_end,
            payload_start: layout.payload_start,
        }
    }

    /// The whole frame, fixed header included, as received.
    #[inline]
    #[must_use]
    pub fn frame(&self) -> &'a [u8] {
        let buf: &'a [u8] = self.buf;
        buf.get(self.frame_start..self.frame_end)
            .unwrap_or_default()
    }

    /// The topic's UTF-8 bytes.
    #[inline]
    fn topic_bytes(&self) -> &'a [u8] {
        self.frame()
            .get(self.topic_start as usize..self.topic_end as usize)
            .unwrap_or_default()
    }

    /// The topic name (may be empty in 5.0 when a topic alias is used); as for
    /// [`Publish::topic`], its validity as a topic name is for the topic layer to check.
    #[inline]
    #[must_use]
    pub fn topic(&self) -> &'a str {
        // Validated when decoded, so this never takes the fallback.
        core::str::from_utf8(self.topic_bytes()).unwrap_or_default()
    }

    /// The application payload.
    #[inline]
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        self.frame()
            .get(self.payload_start as usize..)
            .unwrap_or_default()
    }

    /// `buf[start..end]` as `Bytes`: a view of the shared buffer, or a copy.
    fn bytes(&self, start: usize, end: usize) -> Bytes {
        crate::reader::view_or_copy(self.owner, self.buf, start, end)
    }

    /// The topic as a shared string: a view into the shared buffer (one reference-count
    /// update), or a copy when decoded in place ([`crate::Decoder::decode_in_place`]).
    #[must_use]
    pub fn topic_str(&self) -> MqttStr {
        let start = self.frame_start + self.topic_start as usize;
        let end = self.frame_start + self.topic_end as usize;
        MqttStr::from_validated(self.bytes(start, end))
    }

    /// The payload as a shared buffer: a view into the shared buffer (one reference-count
    /// update), or a copy when decoded in place.
    #[must_use]
    pub fn payload_bytes(&self) -> Bytes {
        let start = self.frame_start + self.payload_start as usize;
        self.bytes(start, self.frame_end)
    }

    /// The owned [`Publish`], sharing the frame (one reference-count update, no copy), or
    /// with a copy of the frame when decoded in place.
    #[must_use]
    pub fn to_publish(&self) -> Publish {
        self.clone().into_publish()
    }

    /// The owned [`Publish`] as [`PublishRef::to_publish`]; the properties are moved.
    #[must_use]
    pub fn into_publish(self) -> Publish {
        let frame = self.bytes(self.frame_start, self.frame_end);
        let layout = PublishLayout {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            properties: self.properties,
            topic_start: self.topic_start,
            topic_end: self.topic_end,
            payload_start: self.payload_start,
        };
        Publish::from_layout(layout, frame)
    }
}

impl From<PublishRef<'_>> for Publish {
    fn from(publish: PublishRef<'_>) -> Self {
        publish.into_publish()
    }
}

impl PartialEq for PublishRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.dup == other.dup
            && self.qos == other.qos
            && self.retain == other.retain
            && self.topic_bytes() == other.topic_bytes()
            && self.payload() == other.payload()
            && self.properties == other.properties
    }
}

impl Eq for PublishRef<'_> {}

impl PartialEq<Publish> for PublishRef<'_> {
    fn eq(&self, other: &Publish) -> bool {
        self.dup == other.dup
            && self.qos == other.qos
            && self.retain == other.retain
            && self.topic() == other.topic()
            && self.payload() == other.payload()
            && self.properties == other.properties
    }
}

impl fmt::Debug for PublishRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishRef")
            .field("dup", &self.dup)
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("topic", &self.topic())
            .field("properties", &self.properties)
            .field("payload", &Bytes::copy_from_slice(self.payload()))
            .finish()
    }
}

/// The packets of a shared buffer of whole frames, in order, each borrowing from it; made by
/// [`crate::Decoder::packets`].
///
/// Ends at the end of the buffer, before a partial frame, or after yielding the first error.
#[derive(Debug)]
pub struct Packets<'d, 'a> {
    decoder: &'d mut Decoder,
    frames: &'a Bytes,
    offset: usize,
    failed: bool,
}

impl<'d, 'a> Packets<'d, 'a> {
    /// An iterator decoding `frames` from its start with `decoder`.
    pub(crate) fn new(decoder: &'d mut Decoder, frames: &'a Bytes) -> Self {
        Self {
            decoder,
            frames,
            offset: 0,
            failed: false,
        }
    }

    /// How many bytes of the buffer have been decoded (the frame of an error included, unless
    /// the error was in its fixed header).
    #[must_use]
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// What has not been decoded yet (a view: one reference-count update), for a caller that
    /// stops early and decodes the rest later.
    #[must_use]
    pub fn remainder(&self) -> Bytes {
        self.frames.slice(self.offset.min(self.frames.len())..)
    }
}

impl<'a> Iterator for Packets<'_, 'a> {
    type Item = Result<PacketRef<'a>, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.decoder.decode_borrowed(self.frames, &mut self.offset) {
            Ok(packet) => packet.map(Ok),
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}

impl FusedIterator for Packets<'_, '_> {}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::{PacketId, ProtocolVersion};

    fn v311() -> Decoder {
        let mut decoder = Decoder::new();
        decoder.set_version(ProtocolVersion::V3_1_1);
        decoder
    }

    #[test]
    fn in_place_publish_points_into_the_callers_buffer() {
        let buf = BytesMut::from(&b"\x32\x09\x00\x03a/b\x00\x07hi\x40\x02\x00\x07"[..]);
        let mut decoder = v311();
        let Some((PacketRef::Publish(publish), len)) = decoder.decode_in_place(&buf).unwrap()
        else {
            panic!("a PUBLISH");
        };
        assert_eq!(len, 11);
        assert_eq!(publish.topic().as_ptr(), buf[4..].as_ptr());
        assert_eq!(publish.payload().as_ptr(), buf[9..].as_ptr());
        // Kept, it becomes an owned copy that outlives the buffer.
        let owned = publish.to_publish();
        assert_ne!(owned.payload().as_ptr(), buf[9..].as_ptr());
        let rest = &buf[len..];
        let id = PacketId::new(7).unwrap();
        let Some((PacketRef::Other(Packet::PubAck(ack)), 4)) =
            decoder.decode_in_place(rest).unwrap()
        else {
            panic!("a PUBACK");
        };
        assert_eq!(ack.packet_id, id);
        drop(buf);
        assert_eq!((owned.topic(), owned.payload()), ("a/b", &b"hi"[..]));
    }

    #[test]
    fn publish_borrows_and_converts_with_one_view() {
        let frames = Bytes::from_static(b"\x32\x09\x00\x03a/b\x00\x07hi");
        let mut decoder = v311();
        let mut packets = decoder.packets(&frames);
        let Some(Ok(PacketRef::Publish(publish))) = packets.next() else {
            panic!("not a PUBLISH");
        };
        assert!(packets.next().is_none());
        assert_eq!(publish.topic(), "a/b");
        assert_eq!(publish.payload(), b"hi");
        assert_eq!(publish.frame(), &frames[..]);
        assert_eq!(publish.topic().as_ptr(), frames[4..].as_ptr());
        let id = PacketId::new(7).unwrap();
        assert_eq!(publish.qos, PublishQos::AtLeastOnce(id));
        let owned = publish.to_publish();
        assert_eq!(publish, owned);
        assert_eq!(owned.payload().as_ptr(), publish.payload().as_ptr());
        assert_eq!(publish.topic_str(), "a/b");
        assert_eq!(&publish.payload_bytes()[..], b"hi");
        let packet = PacketRef::Publish(publish).into_packet();
        assert_eq!(packet, Packet::Publish(owned));
    }

    #[test]
    fn other_packets_are_owned() {
        // PUBACK 5, PINGREQ.
        let frames = Bytes::from_static(b"\x40\x02\x00\x05\xc0\x00");
        let mut decoder = v311();
        let got: Vec<PacketType> = decoder
            .packets(&frames)
            .map(|p| p.unwrap().packet_type())
            .collect();
        assert_eq!(got, [PacketType::PubAck, PacketType::PingReq]);
    }

    #[test]
    fn stops_before_a_partial_frame_and_keeps_it() {
        let frames = Bytes::from_static(b"\xc0\x00\x30\x07\x00\x03a");
        let mut decoder = v311();
        let mut packets = decoder.packets(&frames);
        assert_eq!(
            packets.next().map(|p| p.unwrap().packet_type()),
            Some(PacketType::PingReq)
        );
        assert!(packets.next().is_none());
        assert_eq!(
            (packets.offset(), &packets.remainder()[..]),
            (2, &frames[2..])
        );
    }

    #[test]
    fn error_is_yielded_once() {
        // [MQTT-1.5.3-2] U+0000 in the topic, then a valid PINGREQ that is never reached.
        let frames = Bytes::from_static(b"\x30\x05\x00\x03a\x00b\xc0\x00");
        let mut decoder = v311();
        let mut packets = decoder.packets(&frames);
        assert_eq!(packets.next(), Some(Err(DecodeError::NullCharacter)));
        assert_eq!(packets.next(), None);
    }

    #[test]
    fn size_limit_applies() {
        let frames = Bytes::from_static(b"\x30\x07\x00\x03a/bhi");
        let mut decoder = v311().with_max_packet_size(8);
        let mut offset = 0;
        assert_eq!(
            decoder.decode_borrowed(&frames, &mut offset),
            Err(DecodeError::PacketTooLarge { size: 9, max: 8 })
        );
        assert_eq!(offset, 0);
    }

    #[test]
    fn split_frames_takes_whole_frames_only() {
        let decoder = v311().with_max_packet_size(9);
        let mut buf = BytesMut::from(&b"\xc0\x00\x30\x07\x00\x03a/bhi\xc0"[..]);
        let frames = decoder.split_frames(&mut buf).unwrap();
        assert_eq!((frames.len(), &buf[..]), (11, &b"\xc0"[..]));
        assert!(decoder.split_frames(&mut buf).unwrap().is_empty());
        // A frame over the limit: the whole frames before it first, then the error.
        let mut buf = BytesMut::from(&b"\xc0\x00\x30\x08\x00\x03a/bhi!"[..]);
        assert_eq!(decoder.split_frames(&mut buf).unwrap().len(), 2);
        assert_eq!(
            decoder.split_frames(&mut buf),
            Err(DecodeError::PacketTooLarge { size: 10, max: 9 })
        );
        assert_eq!(buf.len(), 10);
    }

    #[test]
    fn a_caller_can_stop_and_resume_from_the_remainder() {
        // The broker pattern: decode step by step without holding the decoder, stop after the
        // first packet (a paused publisher), keep the rest, resume later.
        let frames = Bytes::from_static(b"\x30\x03\x00\x01a\x30\x03\x00\x01b\xc0\x00");
        let mut decoder = v311();
        let mut offset = 0;
        let first = decoder.decode_borrowed(&frames, &mut offset).unwrap();
        assert!(matches!(first, Some(PacketRef::Publish(p)) if p.topic() == "a"));
        let pending = frames.slice(offset..);
        drop(frames);
        let mut offset = 0;
        let mut rest = Vec::new();
        while let Some(packet) = decoder.decode_borrowed(&pending, &mut offset).unwrap() {
            rest.push(packet.into_packet());
        }
        assert_eq!(offset, pending.len());
        assert!(matches!(&rest[..], [Packet::Publish(p), Packet::PingReq] if p.topic() == "b"));
    }

    #[test]
    fn connect_sets_the_version_for_what_follows() {
        // A 5.0 CONNECT, then a PUBLISH with an empty property list (a 5.0-only field).
        let frames = Bytes::from_static(
            b"\x10\x0d\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x00\x30\x05\x00\x01t\x00x",
        );
        let mut decoder = Decoder::new();
        let got: Vec<Packet> = decoder
            .packets(&frames)
            .map(|p| p.unwrap().into_packet())
            .collect();
        assert_eq!(decoder.version(), Some(ProtocolVersion::V5));
        let Packet::Publish(publish) = &got[1] else {
            panic!("not a PUBLISH");
        };
        assert_eq!((publish.topic(), publish.payload()), ("t", &b"x"[..]));
    }
}
