//! The load payload and the pre-encoded PUBLISH frame that carries it.
//!
//! Every payload starts with a [`Stamp`]: the publisher's index, its sequence number and the
//! send time, so a subscriber can check for loss and measure latency; the rest is zero
//! padding up to the requested size. A [`PublishTemplate`] encodes the frame once with
//! `mqtt-wire` and then only patches the stamp (and the packet identifier at QoS 1) in place
//! while appending copies to a batch buffer.

use mqtt_wire::{BytesMut, MqttStr, Packet, PacketId, ProtocolVersion, Publish, PublishQos, QoS};

use crate::error::LoadError;

/// Bytes of the stamp at the front of every payload: the smallest payload `--size` accepts.
pub const STAMP_LEN: usize = 20;

/// What a payload carries at its front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the publisher (0-based) within the run.
    pub publisher: u32,
    /// Per-publisher sequence number, from 0.
    pub sequence: u64,
    /// Send time, in nanoseconds since the Unix epoch (the wall clock read once at the start
    /// of the run, advanced by the monotonic clock), so a subscriber in another process on
    /// the same machine (or one with a synchronised clock) can measure latency.
    pub sent_ns: u64,
}

impl Stamp {
    /// Reads the stamp from the front of `payload`; `None` if it is too short.
    #[inline]
    #[must_use]
    pub fn read(payload: &[u8]) -> Option<Self> {
        let publisher = payload.get(0..4)?.try_into().ok()?;
        let sequence = payload.get(4..12)?.try_into().ok()?;
        let sent_ns = payload.get(12..STAMP_LEN)?.try_into().ok()?;
        Some(Self {
            publisher: u32::from_be_bytes(publisher),
            sequence: u64::from_be_bytes(sequence),
            sent_ns: u64::from_be_bytes(sent_ns),
        })
    }

    /// Writes the stamp into the front of `payload` (which must hold [`STAMP_LEN`] bytes).
    #[inline]
    fn write(self, payload: &mut [u8]) {
        if let Some(dst) = payload.get_mut(0..4) {
            dst.copy_from_slice(&self.publisher.to_be_bytes());
        }
        if let Some(dst) = payload.get_mut(4..12) {
            dst.copy_from_slice(&self.sequence.to_be_bytes());
        }
        if let Some(dst) = payload.get_mut(12..STAMP_LEN) {
            dst.copy_from_slice(&self.sent_ns.to_be_bytes());
        }
    }
}

/// A PUBLISH frame encoded once, copied and patched for every message.
#[derive(Clone, Debug)]
pub struct PublishTemplate {
    frame: BytesMut,
    payload_at: usize,
    packet_id_at: Option<usize>,
    stamped: bool,
}

impl PublishTemplate {
    /// Encodes a PUBLISH of `size` payload bytes (a stamp, then zeros) to `topic` at `qos`
    /// in `version`.
    ///
    /// # Errors
    /// `size` is below [`STAMP_LEN`], or the frame cannot be encoded.
    pub fn new(
        topic: &str,
        qos: QoS,
        size: usize,
        version: ProtocolVersion,
    ) -> Result<Self, LoadError> {
        if size < STAMP_LEN {
            return Err(LoadError::Options(format!(
                "message size {size} is below the {STAMP_LEN}-byte stamp"
            )));
        }
        Self::with_payload(topic, qos, false, vec![0; size], true, version)
    }

    /// Encodes a PUBLISH of `payload` to `topic` at `qos`, with the RETAIN flag `retain`, in
    /// `version`. When `stamped`, the first [`STAMP_LEN`] bytes of the payload are replaced by
    /// each message's [`Stamp`].
    ///
    /// # Errors
    /// A stamped payload shorter than the stamp, or a frame that cannot be encoded.
    pub fn with_payload(
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        stamped: bool,
        version: ProtocolVersion,
    ) -> Result<Self, LoadError> {
        let size = payload.len();
        if stamped && size < STAMP_LEN {
            return Err(LoadError::Options(format!(
                "message size {size} is below the {STAMP_LEN}-byte stamp"
            )));
        }
        let topic = MqttStr::try_from(topic.to_owned())
            .map_err(|_| LoadError::Options(format!("invalid topic {topic:?}")))?;
        let publish = Publish::new(topic, payload.into())
            .with_qos(PublishQos::new(qos, PacketId::MIN))
            .with_retain(retain);
        let mut frame = BytesMut::new();
        Packet::Publish(publish).encode(version, &mut frame)?;
        let payload_at = frame.len() - size;
        // The packet identifier sits right before the (empty, one-byte) v5 property list.
        let properties_len = usize::from(version.is_v5());
        let packet_id_at = (qos != QoS::AtMostOnce).then(|| payload_at - properties_len - 2);
        Ok(Self {
            frame,
            payload_at,
            packet_id_at,
            stamped,
        })
    }

    /// Bytes of one frame.
    #[must_use]
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Whether the frame is empty (never: a PUBLISH has a fixed header).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// Appends one frame carrying `stamp` (unless the payload is not stamped) and `packet_id`
    /// (at QoS 1 and 2) to `out`.
    #[inline]
    pub fn append(&self, out: &mut BytesMut, stamp: Stamp, packet_id: PacketId) {
        let start = out.len();
        out.extend_from_slice(&self.frame);
        if let Some(at) = self.packet_id_at
            && let Some(dst) = out.get_mut(start + at..start + at + 2)
        {
            dst.copy_from_slice(&packet_id.get().to_be_bytes());
        }
        if self.stamped
            && let Some(payload) = out.get_mut(start + self.payload_at..)
        {
            stamp.write(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_wire::decode_packet;

    fn round_trip(qos: QoS, version: ProtocolVersion) {
        let template = PublishTemplate::new("load/p7", qos, 64, version).unwrap();
        let mut out = BytesMut::new();
        let stamp = Stamp {
            publisher: 7,
            sequence: 123_456_789_012,
            sent_ns: 42,
        };
        let id = PacketId::new(513).unwrap();
        template.append(&mut out, stamp, id);
        template.append(
            &mut out,
            Stamp {
                sequence: 1,
                ..stamp
            },
            id,
        );
        assert_eq!(out.len(), 2 * template.len());
        let second = out.split_off(template.len()).freeze();
        let Packet::Publish(first) = decode_packet(out.freeze(), version).unwrap() else {
            panic!("not a PUBLISH");
        };
        assert_eq!(first.topic(), "load/p7");
        assert_eq!(first.payload().len(), 64);
        assert_eq!(Stamp::read(first.payload()), Some(stamp));
        let expected_qos = PublishQos::new(qos, id);
        assert_eq!(first.qos, expected_qos);
        let Packet::Publish(next) = decode_packet(second, version).unwrap() else {
            panic!("not a PUBLISH");
        };
        assert_eq!(Stamp::read(next.payload()).unwrap().sequence, 1);
    }

    #[test]
    fn patched_frames_decode_in_every_version_and_qos() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            round_trip(QoS::AtMostOnce, version);
            round_trip(QoS::AtLeastOnce, version);
            round_trip(QoS::ExactlyOnce, version);
        }
    }

    #[test]
    fn retained_text_payloads_keep_their_bytes() {
        let template = PublishTemplate::with_payload(
            "t/1",
            QoS::AtLeastOnce,
            true,
            b"{\"temp\": 21}".to_vec(),
            false,
            ProtocolVersion::V5,
        )
        .unwrap();
        let mut out = BytesMut::new();
        let stamp = Stamp {
            publisher: 1,
            sequence: 2,
            sent_ns: 3,
        };
        template.append(&mut out, stamp, PacketId::new(9).unwrap());
        let Packet::Publish(publish) = decode_packet(out.freeze(), ProtocolVersion::V5).unwrap()
        else {
            panic!("not a PUBLISH");
        };
        assert!(publish.retain);
        assert_eq!(publish.payload(), b"{\"temp\": 21}");
        assert_eq!(publish.qos.packet_id(), PacketId::new(9));
    }

    #[test]
    fn payload_smaller_than_the_stamp_is_refused() {
        let small = PublishTemplate::new("t", QoS::AtMostOnce, STAMP_LEN - 1, ProtocolVersion::V5);
        assert!(matches!(small, Err(LoadError::Options(_))));
        assert_eq!(Stamp::read(&[0; STAMP_LEN - 1]), None);
    }
}
