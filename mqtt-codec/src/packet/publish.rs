//! PUBLISH: an application message. A decoded PUBLISH keeps its whole frame and the offsets of
//! topic and payload, so decoding one costs no reference-count update; a built one holds its
//! topic and payload as separate shared buffers.

use core::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::encoder::{frame_len, prefixed_len, put_fixed_header, put_frame, put_utf8};
use crate::error::{DecodeError, EncodeError};
use crate::primitives::{PacketId, ProtocolVersion, PublishQos};
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::string::{MqttStr, validate};

/// PUBLISH.
///
/// Topic and payload are read with [`Publish::topic`] and [`Publish::payload`] (borrowed, free)
/// or taken as shared buffers with [`Publish::topic_str`], [`Publish::payload_bytes`] and
/// [`Publish::into_payload`]. Equality compares the message (flags, topic, payload,
/// properties), not how it is stored.
///
/// ```
/// use mqtt_wire::{Bytes, MqttStr, Publish, PublishQos, PacketId};
///
/// let id = PacketId::new(1).expect("non-zero");
/// let publish = Publish::new(MqttStr::from_static("a/b"), Bytes::from_static(b"hi"))
///     .with_qos(PublishQos::AtLeastOnce(id))
///     .with_retain(true);
/// assert_eq!((publish.topic(), publish.payload()), ("a/b", &b"hi"[..]));
/// ```
#[derive(Clone)]
pub struct Publish {
    /// DUP flag: this is a re-delivery.
    pub dup: bool,
    /// QoS and packet identifier.
    pub qos: PublishQos,
    /// RETAIN flag.
    pub retain: bool,
    /// PUBLISH properties (5.0).
    pub properties: Properties,
    /// Topic name and payload.
    content: Content,
}

/// Where the topic and the payload live.
#[derive(Clone)]
enum Content {
    /// Decoded: `frame[topic_start..topic_end]` is the (validated) topic, `frame[payload_start..]`
    /// the payload.
    Frame {
        frame: Bytes,
        topic_start: u32,
        topic_end: u32,
        payload_start: u32,
    },
    /// Built by the application or the broker.
    Parts { topic: MqttStr, payload: Bytes },
}

impl Content {
    /// The payload; a frame is advanced past the headers, which needs no reference-count update.
    #[inline]
    fn into_payload(self) -> Bytes {
        match self {
            Self::Frame {
                mut frame,
                payload_start,
                ..
            } => {
                frame.advance(payload_start as usize);
                frame
            }
            Self::Parts { payload, .. } => payload,
        }
    }
}

impl Publish {
    /// A QoS 0 message, neither DUP nor RETAIN, without properties. The payload is shared,
    /// not copied.
    #[inline]
    #[must_use]
    pub fn new(topic: MqttStr, payload: Bytes) -> Self {
        Self {
            dup: false,
            qos: PublishQos::AtMostOnce,
            retain: false,
            properties: Properties::new(),
            content: Content::Parts { topic, payload },
        }
    }

    /// Sets the QoS and packet identifier.
    #[inline]
    #[must_use]
    pub fn with_qos(mut self, qos: PublishQos) -> Self {
        self.qos = qos;
        self
    }

    /// Sets the RETAIN flag.
    #[inline]
    #[must_use]
    pub fn with_retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Sets the DUP flag.
    #[inline]
    #[must_use]
    pub fn with_dup(mut self, dup: bool) -> Self {
        self.dup = dup;
        self
    }

    /// Sets the properties.
    #[inline]
    #[must_use]
    pub fn with_properties(mut self, properties: Properties) -> Self {
        self.properties = properties;
        self
    }

    /// The topic name (may be empty in 5.0 when a topic alias is used); its validity as a topic
    /// name is checked by the topic layer, not the codec.
    #[inline]
    #[must_use]
    pub fn topic(&self) -> &str {
        // Validated when decoded or built, so this never takes the fallback.
        core::str::from_utf8(self.topic_bytes()).unwrap_or_default()
    }

    /// The topic's UTF-8 bytes.
    #[inline]
    fn topic_bytes(&self) -> &[u8] {
        match &self.content {
            Content::Frame {
                frame,
                topic_start,
                topic_end,
                ..
            } => frame
                .get(*topic_start as usize..*topic_end as usize)
                .unwrap_or_default(),
            Content::Parts { topic, .. } => topic.as_bytes(),
        }
    }

    /// The application payload.
    #[inline]
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        match &self.content {
            Content::Frame {
                frame,
                payload_start,
                ..
            } => frame.get(*payload_start as usize..).unwrap_or_default(),
            Content::Parts { payload, .. } => payload,
        }
    }

    /// The topic as a shared string (a view into the frame: one reference-count update).
    #[must_use]
    pub fn topic_str(&self) -> MqttStr {
        match &self.content {
            Content::Frame {
                frame,
                topic_start,
                topic_end,
                ..
            } => MqttStr::from_validated(frame.slice(*topic_start as usize..*topic_end as usize)),
            Content::Parts { topic, .. } => topic.clone(),
        }
    }

    /// The payload as a shared buffer (a view into the frame: one reference-count update).
    #[must_use]
    pub fn payload_bytes(&self) -> Bytes {
        match &self.content {
            Content::Frame {
                frame,
                payload_start,
                ..
            } => frame.slice(*payload_start as usize..),
            Content::Parts { payload, .. } => payload.clone(),
        }
    }

    /// The payload, taking over the buffer without a reference-count update.
    #[inline]
    #[must_use]
    pub fn into_payload(self) -> Bytes {
        self.content.into_payload()
    }

    /// Topic and payload as shared buffers; the payload takes over the frame, so this costs one
    /// reference-count update for the topic.
    #[must_use]
    pub fn into_topic_and_payload(self) -> (MqttStr, Bytes) {
        let topic = self.topic_str();
        (topic, self.into_payload())
    }

    /// Replaces the topic name (the payload keeps its buffer).
    pub fn set_topic(&mut self, topic: MqttStr) {
        let empty = Content::Parts {
            topic: MqttStr::default(),
            payload: Bytes::new(),
        };
        let payload = core::mem::replace(&mut self.content, empty).into_payload();
        self.content = Content::Parts { topic, payload };
    }

    /// Replaces the payload (the topic keeps its buffer).
    pub fn set_payload(&mut self, payload: Bytes) {
        let topic = self.topic_str();
        self.content = Content::Parts { topic, payload };
    }

    /// Decodes a PUBLISH from its whole `frame`, whose body starts at `body_start`; `flags` is
    /// the lower nibble of the fixed header. The frame is kept whole, so no reference count
    /// changes.
    #[inline(always)]
    pub(crate) fn decode(
        flags: u8,
        frame: Bytes,
        body_start: usize,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let layout = PublishLayout::parse(
            flags,
            &frame,
            Some(&frame),
            0,
            body_start,
            frame.len(),
            version,
        )?;
        Ok(Self::from_layout(layout, frame))
    }

    /// The PUBLISH whose `layout` was parsed from `frame` (offsets relative to its start).
    #[inline(always)]
    pub(crate) fn from_layout(layout: PublishLayout, frame: Bytes) -> Self {
        Self {
            dup: layout.dup,
            qos: layout.qos,
            retain: layout.retain,
            properties: layout.properties,
            content: Content::Frame {
                frame,
                topic_start: layout.topic_start,
                topic_end: layout.topic_end,
                payload_start: layout.payload_start,
            },
        }
    }

    /// The lower nibble of the fixed header: DUP, QoS, RETAIN.
    #[inline]
    fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos.qos() as u8) << 1) | u8::from(self.retain)
    }

    /// Remaining length, payload included.
    #[inline]
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut n = prefixed_len(self.topic_bytes().len()) + self.payload().len();
        if self.qos.packet_id().is_some() {
            n += 2;
        }
        if version.is_v5() {
            n += self.properties.encoded_len();
        }
        n
    }

    /// Writes the fixed header (announcing `body` bytes) and the variable header.
    #[inline]
    fn write_header(
        &self,
        version: ProtocolVersion,
        body: usize,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        put_fixed_header(out, 0x30 | self.flags(), body)?;
        self.write_variable_header(version, out)
    }

    /// Writes the variable header: topic, packet identifier, properties (5.0).
    #[inline]
    fn write_variable_header(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        put_utf8(out, self.topic_bytes())?;
        if let Some(id) = self.qos.packet_id() {
            out.put_u16(id.get());
        }
        if version.is_v5() {
            self.properties.write(PropertyContext::Publish, out)?;
        }
        Ok(())
    }

    /// Topic bytes and payload, with one look at where they live.
    #[inline]
    fn topic_and_payload(&self) -> (&[u8], &[u8]) {
        match &self.content {
            Content::Frame {
                frame,
                topic_start,
                topic_end,
                payload_start,
            } => (
                frame
                    .get(*topic_start as usize..*topic_end as usize)
                    .unwrap_or_default(),
                frame.get(*payload_start as usize..).unwrap_or_default(),
            ),
            Content::Parts { topic, payload } => (topic.as_bytes(), payload),
        }
    }

    /// Appends the whole frame (see [`crate::Packet::encode`]). Without properties (every
    /// PUBLISH in 3.x) the frame is measured from the two lengths and written straight, with
    /// every check done before the first byte; with properties it takes the general path.
    #[inline]
    pub(crate) fn encode(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let first_byte = 0x30 | self.flags();
        if version.is_v5() && !self.properties.is_empty() {
            return put_frame(out, first_byte, self.body_len(version), |out| {
                self.write_variable_header(version, out)?;
                out.extend_from_slice(self.payload());
                Ok(())
            });
        }
        let (topic, payload) = self.topic_and_payload();
        let topic_len = u16::try_from(topic.len()).map_err(|_| EncodeError::StringTooLong)?;
        let packet_id = self.qos.packet_id();
        // Topic, packet identifier, an empty property list in 5.0, payload.
        let body = prefixed_len(topic.len())
            + if packet_id.is_some() { 2 } else { 0 }
            + usize::from(version.is_v5())
            + payload.len();
        out.reserve(frame_len(body));
        let [len_high, len_low] = topic_len.to_be_bytes();
        if body < 0x80 {
            // Fixed header and topic length in one constant-size write.
            out.extend_from_slice(&[first_byte, body as u8, len_high, len_low]);
        } else {
            put_long_header(out, first_byte, body, topic_len)?;
        }
        out.extend_from_slice(topic);
        if let Some(id) = packet_id {
            out.put_u16(id.get());
        }
        if version.is_v5() {
            out.put_u8(0);
        }
        out.extend_from_slice(payload);
        Ok(())
    }

    /// Writes the fixed header and variable header only, announcing the full length; the caller
    /// sends the payload ([`Publish::payload_bytes`]) right after (for example with vectored
    /// I/O), so one payload buffer can be shared by every subscriber. On error `out` is left as
    /// it was.
    ///
    /// ```
    /// use mqtt_wire::{Bytes, BytesMut, MqttStr, Packet, ProtocolVersion, Publish};
    ///
    /// let payload = Bytes::from_static(b"a payload shared by every subscriber");
    /// let publish = Publish::new(MqttStr::from_static("news"), payload.clone());
    /// let mut header = BytesMut::new();
    /// publish.encode_header(ProtocolVersion::V5, &mut header)?;
    ///
    /// // Header then payload on the wire are the whole frame.
    /// let packet = Packet::Publish(publish);
    /// let mut whole = BytesMut::new();
    /// packet.encode(ProtocolVersion::V5, &mut whole)?;
    /// assert_eq!(header.len() + payload.len(), packet.encoded_len(ProtocolVersion::V5));
    /// assert_eq!([&header[..], &payload[..]].concat(), &whole[..]);
    /// # Ok::<(), mqtt_wire::EncodeError>(())
    /// ```
    ///
    /// # Errors
    /// As for [`crate::Packet::encode`].
    pub fn encode_header(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let body = self.body_len(version);
        out.reserve(frame_len(body) - self.payload().len());
        let start = out.len();
        let written = self.write_header(version, body, out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }
}

/// A PUBLISH parsed in place: its flags and properties, and where its topic and payload lie
/// in its frame. Shared by the owned [`Publish`] and the borrowed [`crate::PublishRef`].
pub(crate) struct PublishLayout {
    pub(crate) dup: bool,
    pub(crate) qos: PublishQos,
    pub(crate) retain: bool,
    pub(crate) properties: Properties,
    /// Offsets from the start of the frame (a frame is at most `MAX_PACKET_SIZE` bytes, so
    /// they fit in `u32`).
    pub(crate) topic_start: u32,
    pub(crate) topic_end: u32,
    pub(crate) payload_start: u32,
}

impl PublishLayout {
    /// Parses the PUBLISH whose frame is `buf[frame_start..frame_end]` and whose body starts at
    /// `body_start` (an offset into `buf`); `flags` is the lower nibble of its fixed header.
    /// The topic is validated [MQTT-1.5.3-1/2]; nothing is copied and no reference count
    /// changes (properties of 5.0 aside, which are views of `owner`, the shared buffer `buf`
    /// is the contents of, or copies when there is none).
    #[inline(always)]
    pub(crate) fn parse(
        flags: u8,
        buf: &[u8],
        owner: Option<&Bytes>,
        frame_start: usize,
        body_start: usize,
        frame_end: usize,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let dup = flags & 0b1000 != 0;
        let retain = flags & 0b0001 != 0;
        let qos_bits = (flags >> 1) & 0b11;
        // Read from the body slice directly: one bounds check per field.
        let body = buf.get(body_start..frame_end).unwrap_or_default();
        let [len_high, len_low, rest @ ..] = body else {
            return Err(DecodeError::Truncated);
        };
        let topic_len = usize::from(u16::from_be_bytes([*len_high, *len_low]));
        let (topic, rest) = rest
            .split_at_checked(topic_len)
            .ok_or(DecodeError::Truncated)?;
        validate(topic)?;
        let topic_start = body_start - frame_start + 2;
        let topic_end = topic_start + topic_len;
        let mut payload_start = topic_end;
        let qos = match qos_bits {
            0 if dup => return Err(DecodeError::DupWithQoS0), // [MQTT-3.3.1-2]
            0 => PublishQos::AtMostOnce,
            1 | 2 => {
                let [id_high, id_low, ..] = rest else {
                    return Err(DecodeError::Truncated);
                };
                // [MQTT-2.3.1-1]
                let id = PacketId::new(u16::from_be_bytes([*id_high, *id_low]))
                    .ok_or(DecodeError::ZeroPacketId)?;
                payload_start += 2;
                if qos_bits == 1 {
                    PublishQos::AtLeastOnce(id)
                } else {
                    PublishQos::ExactlyOnce(id)
                }
            }
            _ => return Err(DecodeError::InvalidQoS(qos_bits)), // [MQTT-3.3.1-4]
        };
        let properties = if version.is_v5() {
            let r = &mut Reader::over(buf, owner, frame_start + payload_start, frame_end);
            let properties = Properties::decode(r, PropertyContext::Publish)?;
            payload_start = r.position() - frame_start;
            properties
        } else {
            Properties::new()
        };
        // Offsets within one frame, which is at most MAX_PACKET_SIZE (< 2^32) bytes long.
        Ok(Self {
            dup,
            qos,
            retain,
            properties,
            topic_start: topic_start as u32,
            topic_end: topic_end as u32,
            payload_start: payload_start as u32,
        })
    }
}

impl Default for Publish {
    /// A QoS 0 message with an empty topic and payload.
    fn default() -> Self {
        Self::new(MqttStr::default(), Bytes::new())
    }
}

impl PartialEq for Publish {
    fn eq(&self, other: &Self) -> bool {
        self.dup == other.dup
            && self.qos == other.qos
            && self.retain == other.retain
            && self.topic_bytes() == other.topic_bytes()
            && self.payload() == other.payload()
            && self.properties == other.properties
    }
}

impl Eq for Publish {}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("dup", &self.dup)
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("topic", &self.topic())
            .field("properties", &self.properties)
            .field("payload", &self.payload_bytes())
            .finish()
    }
}

/// A PUBLISH fixed header with a remaining length of 128 bytes or more, then the topic length:
/// one constant-size write up to 16 KiB. Out of line, so the small-message path stays short.
/// Writes nothing when the frame is too large, so `out` is unchanged on every error.
#[inline(never)]
fn put_long_header(
    out: &mut BytesMut,
    first_byte: u8,
    body: usize,
    topic_len: u16,
) -> Result<(), EncodeError> {
    let [len_high, len_low] = topic_len.to_be_bytes();
    if body < 0x4000 {
        let (low, high) = ((body as u8) | 0x80, (body >> 7) as u8);
        out.extend_from_slice(&[first_byte, low, high, len_high, len_low]);
    } else {
        put_fixed_header(out, first_byte, body)?;
        out.extend_from_slice(&[len_high, len_low]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decoder, Packet, PacketId};

    fn decoded(frame: &'static [u8], version: ProtocolVersion) -> Publish {
        let mut decoder = Decoder::new();
        decoder.set_version(version);
        let mut buf = BytesMut::from(frame);
        match decoder.decode(&mut buf).unwrap() {
            Some(Packet::Publish(p)) => p,
            other => panic!("not a PUBLISH: {other:?}"),
        }
    }

    #[test]
    fn decoded_and_built_compare_by_meaning() {
        let got = decoded(b"\x32\x09\x00\x03a/b\x00\x07hi", ProtocolVersion::V3_1_1);
        let id = PacketId::new(7).unwrap();
        let built = Publish::new(MqttStr::from_static("a/b"), Bytes::from_static(b"hi"))
            .with_qos(PublishQos::AtLeastOnce(id));
        assert_eq!(got, built);
        assert_eq!((got.topic(), got.payload()), ("a/b", &b"hi"[..]));
        assert_ne!(got, built.clone().with_retain(true));
        assert_ne!(got, built.with_dup(true));
    }

    #[test]
    fn owned_views_point_into_the_frame() {
        let got = decoded(b"\x30\x07\x00\x03a/bhi", ProtocolVersion::V3_1_1);
        let topic = got.topic_str();
        let payload = got.payload_bytes();
        assert_eq!((topic.as_str(), &payload[..]), ("a/b", &b"hi"[..]));
        assert_eq!(topic.as_bytes().as_ptr(), got.topic().as_ptr());
        assert_eq!(payload.as_ptr(), got.payload().as_ptr());
        let ptr = got.payload().as_ptr();
        let owned = got.into_payload();
        assert_eq!((&owned[..], owned.as_ptr()), (&b"hi"[..], ptr));
    }

    #[test]
    fn v5_properties_and_payload() {
        // Topic "t", property list with topic alias 2, payload "x".
        let got = decoded(b"\x30\x08\x00\x01t\x03\x23\x00\x02x", ProtocolVersion::V5);
        assert_eq!(got.properties.topic_alias, Some(2));
        assert_eq!((got.topic(), got.payload()), ("t", &b"x"[..]));
    }

    #[test]
    fn setters_keep_the_other_half() {
        let mut got = decoded(b"\x30\x07\x00\x03a/bhi", ProtocolVersion::V3_1_1);
        got.set_topic(MqttStr::from_static("c"));
        assert_eq!((got.topic(), got.payload()), ("c", &b"hi"[..]));
        got.set_payload(Bytes::from_static(b"yo"));
        assert_eq!((got.topic(), got.payload()), ("c", &b"yo"[..]));
    }

    #[test]
    fn invalid_topic_rejected() {
        // [MQTT-1.5.3-2] U+0000 in the topic.
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(&b"\x30\x05\x00\x03a\x00b"[..]);
        assert_eq!(decoder.decode(&mut buf), Err(DecodeError::NullCharacter));
    }
}
