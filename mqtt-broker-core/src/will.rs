//! The will message stored with a session, and when it fires.
//!
//! A will is published when the network connection closes without a DISCONNECT 0x00
//! [MQTT-3.1.2-8] [MQTT-3.14.4-3]: at once, or (v5) after the Will Delay Interval unless the client
//! reconnects first [MQTT5-3.1.3-9]; the delay never outlasts the session [MQTT-3.1.2-8].
//! A retained will remembers its client as the source of the retained message it becomes.
//!
//! A will is all a session keeps of its CONNECT, whose fields are views into the read buffer
//! the CONNECT arrived in: one that would keep a buffer much larger than itself alive for the
//! whole connection (and, retained, for good) is copied out of it first ([`detach_pinned`]).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mqtt_wire::{LastWill, MqttStr, Properties, QoS};

use crate::message::{Message, RetainSource, copy_views, pins_read_buffer, views_len};
use crate::store::WillRecord;

/// A will waiting for its connection to end. Its message is boxed: every session has a place
/// for a will, few have one, and a session is kept per connected client.
#[derive(Debug, Clone)]
pub(crate) struct Will {
    /// Will Delay Interval in seconds (0 for 3.1/3.1.1).
    pub(crate) delay_interval: u32,
    body: Box<WillBody>,
}

/// What a will publishes.
#[derive(Debug, Clone)]
struct WillBody {
    topic: MqttStr,
    payload: Bytes,
    qos: QoS,
    retain: bool,
    properties: Properties,
    /// The client, when the will is retained (see [`Message::retain_source`]).
    source: Option<Box<RetainSource>>,
}

impl Will {
    /// The will of a CONNECT; `source` is its client when the will is retained.
    pub(crate) fn from_connect(will: &LastWill, source: Option<RetainSource>) -> Self {
        let mut properties = will.properties.clone();
        let delay_interval = properties.will_delay_interval.take().unwrap_or(0);
        Will {
            delay_interval,
            body: Box::new(WillBody {
                topic: will.topic.clone(),
                payload: will.payload.clone(),
                qos: will.qos,
                retain: will.retain,
                properties,
                source: source.map(Box::new),
            }),
        }
    }

    /// The durable form of this will; `now` stands for the time of receipt.
    pub(crate) fn to_record(&self, now: Instant) -> WillRecord {
        let body = &self.body;
        let mut message = Message::new(
            body.topic.clone(),
            body.payload.clone(),
            body.qos,
            body.retain,
            now,
        );
        message.properties = body.properties.clone();
        message.retain_source = body.source.clone();
        WillRecord {
            message,
            delay_interval: self.delay_interval,
        }
    }

    /// A will read back from a store.
    pub(crate) fn from_record(record: WillRecord) -> Self {
        let message = record.message;
        Will {
            delay_interval: record.delay_interval,
            body: Box::new(WillBody {
                topic: message.topic,
                payload: message.payload,
                qos: message.qos,
                retain: message.retain,
                properties: message.properties,
                source: message.retain_source,
            }),
        }
    }

    /// The message to publish now [MQTT5-3.1.2-14] [MQTT5-3.1.2-15]
    /// [MQTT311-3.1.2-16] [MQTT311-3.1.2-17] [MQTT5-3.1.3-10].
    pub(crate) fn into_message(self, publisher: String, now: Instant) -> Message {
        let body = *self.body;
        let mut message = Message::new(body.topic, body.payload, body.qos, body.retain, now);
        message.properties = body.properties;
        message.publisher = Some(publisher);
        message.retain_source = body.source;
        message
    }
}

/// Copies `will` out of the read buffer its CONNECT was just split from when it pins it (see
/// [`pins_read_buffer`]); returns whether it copied. Called while the CONNECT's batch of frames
/// is handled: the CONNECT, the first packet, begins the batch, and the batch was split off the
/// front of `read_buf`, so the will's views keep alive the rest of the batch (up to where
/// `read_buf` now begins) and the room left in `read_buf`.
pub(crate) fn detach_pinned(will: &mut LastWill, read_buf: &BytesMut) -> bool {
    let LastWill {
        topic,
        payload,
        properties,
        ..
    } = will;
    let rest_of_batch = (read_buf.as_ptr() as usize).saturating_sub(topic.as_ptr() as usize);
    let backing = rest_of_batch + read_buf.capacity();
    if !pins_read_buffer(backing, views_len(topic, payload, properties)) {
        return false;
    }
    copy_views(topic, payload, properties);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A will read from a batch of `batch` bytes split off a read buffer of `capacity` bytes,
    /// and what is left of that buffer.
    fn will_in_read(batch: usize, capacity: usize) -> (LastWill, BytesMut) {
        let mut read_buf = BytesMut::with_capacity(capacity);
        read_buf.extend_from_slice(b"will/topicpayload");
        read_buf.resize(batch, b'.');
        let frames = read_buf.split_to(batch).freeze();
        let will = LastWill {
            topic: MqttStr::try_from(frames.slice(0..10)).unwrap(),
            payload: frames.slice(10..17),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties::default(),
        };
        (will, read_buf)
    }

    #[test]
    fn a_will_alone_in_a_small_read_is_kept_as_it_is() {
        let (mut will, read_buf) = will_in_read(40, 40);
        let before = will.payload.as_ptr();
        assert!(!detach_pinned(&mut will, &read_buf));
        assert_eq!(will.payload.as_ptr(), before);
    }

    #[test]
    fn a_will_followed_by_many_frames_or_much_room_is_copied() {
        for (batch, capacity) in [(4096, 4096), (40, 4096)] {
            let (mut will, read_buf) = will_in_read(batch, capacity);
            let frames = will.topic.as_ptr() as usize..read_buf.as_ptr() as usize;
            assert!(detach_pinned(&mut will, &read_buf), "{batch} of {capacity}");
            assert_eq!(&*will.topic, "will/topic");
            assert_eq!(will.payload, &b"payload"[..]);
            assert!(!frames.contains(&(will.payload.as_ptr() as usize)));
        }
    }
}
