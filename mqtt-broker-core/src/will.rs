//! The will message stored with a session, and when it fires.
//!
//! A will is published when the network connection closes without a DISCONNECT 0x00
//! [MQTT-3.1.2-8] [MQTT-3.14.4-3]: at once, or (v5) after the Will Delay Interval unless the client
//! reconnects first [MQTT5-3.1.3-9]; the delay never outlasts the session [MQTT-3.1.2-8].
//! A retained will remembers its client as the source of the retained message it becomes.
//!
//! A will is all a session keeps of its CONNECT, whose fields are views into the read buffer
//! the CONNECT arrived in. Kept for the whole connection (and, retained, for good), it is
//! always copied out of that buffer first ([`detach`]), once, at CONNECT.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mqtt_wire::{LastWill, MqttStr, Properties, QoS};

use crate::message::{Message, RetainSource, copy_views};
use crate::persist::WillRecord;

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
    pub(crate) fn into_message(self, publisher: Arc<str>, now: Instant) -> Message {
        let body = *self.body;
        let mut message = Message::new(body.topic, body.payload, body.qos, body.retain, now);
        message.properties = body.properties;
        message.publisher = Some(publisher);
        message.retain_source = body.source;
        message
    }
}

/// Copies the topic, payload and property strings of `will`, decoded from a client's read, into
/// one allocation of their own, so that keeping the will keeps nothing else of that read alive.
pub(crate) fn detach(will: &mut LastWill) {
    let LastWill {
        topic,
        payload,
        properties,
        ..
    } = will;
    copy_views(topic, payload, properties);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_will_is_copied_out_of_its_read_even_a_small_one() {
        let frames = Bytes::from_static(b"will/topicpayload");
        let mut will = LastWill {
            topic: MqttStr::try_from(frames.slice(0..10)).unwrap(),
            payload: frames.slice(10..17),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties::default(),
        };
        detach(&mut will);
        assert_eq!(&*will.topic, "will/topic");
        assert_eq!(will.payload, &b"payload"[..]);
        let read = frames.as_ptr_range();
        assert!(!read.contains(&will.topic.as_ptr()));
        assert!(!read.contains(&will.payload.as_ptr()));
    }
}
