//! The application message routed by the broker, shared (`Arc`) by every session it goes to, and
//! the [`Delivery`] of one message to one session.
//!
//! A message keeps the properties that are forwarded unchanged to subscribers (payload format,
//! content type, response topic, correlation data, user properties in order) and the time it
//! entered the broker, from which the remaining message expiry is computed [MQTT5-3.3.2-6].
//! A retained message published by a client also remembers who published it
//! ([`RetainSource`]), so its publisher's write access can be checked again whenever it is
//! delivered (CVE-2018-12546).
//!
//! A message read from a client is a view into the read buffer its frame arrived in. One kept
//! long (retained, waiting in a session queue, or unacknowledged by a session gone offline) is
//! first copied out of that buffer, once ([`Message::detach_pinned`]), so the limits that count
//! its bytes count what it keeps alive; so is a will (see `will`). One delivered at once (QoS 0,
//! or sent into an open window) is never copied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_wire::{MqttStr, Properties, QoS};

use crate::ids::{ConnectionId, ConnectionInfo, ListenerId};

/// One application message.
///
/// ```
/// use std::time::Instant;
/// use mqtt_broker_core::{Broker, Config, Message};
/// use mqtt_wire::{Bytes, MqttStr, QoS};
///
/// let now = Instant::now();
/// let mut broker = Broker::new(Config::default());
/// // A retained state, published by the application itself (no client connection).
/// let message = Message::new(MqttStr::from_static("stat/plug/POWER"), Bytes::from_static(b"ON"), QoS::AtLeastOnce, true, now);
/// broker.publish(message, now)?;
/// assert_eq!(broker.stats().retained_messages, 1);
/// # Ok::<(), mqtt_broker_core::ApiMisuse>(())
/// ```
#[derive(Debug, Clone, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The topic name (never an alias).
    pub topic: MqttStr,
    /// The payload, shared by every copy sent.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The RETAIN flag it was published with.
    pub retain: bool,
    /// Properties forwarded to subscribers (v5). Topic alias and subscription identifiers are
    /// never kept here: they belong to one connection.
    pub properties: Properties,
    /// When the broker received it.
    pub received_at: Instant,
    /// Client identifier of the publisher (for No Local), `None` for in-process messages.
    pub publisher: Option<Arc<str>>,
    /// Who published it, kept with retained messages published by a client (a retained will's
    /// publisher is its client); `None` for messages of the embedding application, `$SYS` and
    /// retained messages restored from a store that did not record it (format version 1). See
    /// [`Config::check_retain_source`](crate::Config::check_retain_source).
    pub retain_source: Option<Box<RetainSource>>,
    /// Whether its bytes are still views into the read buffer of the client that published it:
    /// set when decoded, cleared by [`Message::detach_pinned`]. Whatever else that buffer
    /// holds (other frames, bytes before it, room for later reads) stays alive as long as such
    /// a view, so a message kept long is copied out first, without guessing how large the
    /// buffer is.
    pub(crate) pins_buffer: bool,
}

/// Equality of the message, not of where its bytes live.
impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        let Message {
            topic,
            payload,
            qos,
            retain,
            properties,
            received_at,
            publisher,
            retain_source,
            pins_buffer: _,
        } = self;
        *topic == other.topic
            && *payload == other.payload
            && *qos == other.qos
            && *retain == other.retain
            && *properties == other.properties
            && *received_at == other.received_at
            && *publisher == other.publisher
            && *retain_source == other.retain_source
    }
}

/// The publisher of a retained message, as its authorizer saw it: enough to ask again, when the
/// message is delivered, whether that client may still publish to its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetainSource {
    /// The publisher's client identifier.
    pub client_id: String,
    /// The user name it gave at CONNECT, if any.
    pub username: Option<String>,
    /// The listener it was connected through.
    pub listener: ListenerId,
    /// Its TLS client identity, if any.
    pub tls_identity: Option<String>,
}

impl RetainSource {
    /// A source with these fields.
    pub fn new(
        client_id: String,
        username: Option<String>,
        listener: ListenerId,
        tls_identity: Option<String>,
    ) -> Self {
        RetainSource {
            client_id,
            username,
            listener,
            tls_identity,
        }
    }

    /// The publisher's connection as far as it is known: listener and TLS identity, no peer
    /// address (the publisher may be long gone).
    pub(crate) fn connection_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            peer: None,
            listener: self.listener,
            tls_identity: self.tls_identity.clone(),
        }
    }
}

/// What remains of a message's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// No expiry interval.
    Unlimited,
    /// This many whole seconds remain (at least 1).
    Remaining(u32),
    /// Expired: must not be delivered [MQTT5-3.3.2-5].
    Expired,
}

impl Message {
    /// A message for in-process publishing, without properties.
    pub fn new(topic: MqttStr, payload: Bytes, qos: QoS, retain: bool, now: Instant) -> Self {
        Message {
            topic,
            payload,
            qos,
            retain,
            properties: Properties::default(),
            received_at: now,
            publisher: None,
            retain_source: None,
            pins_buffer: false,
        }
    }

    /// Makes `message` one that keeps nothing alive beyond its own bytes, before it is kept long
    /// (stored as retained, queued for a session, or left unacknowledged by a session gone
    /// offline): when it is still a view into a read buffer, it is replaced by a copy whose
    /// topic, payload and property strings share one allocation of their own ([`copy_views`]).
    /// `message` is the slot the copy is shared from, so one routing copies at most once.
    /// Returns whether it copied.
    pub(crate) fn detach_pinned(message: &mut Arc<Message>) -> bool {
        if !message.pins_buffer {
            return false;
        }
        let mut copy = Message::clone(message);
        copy.pins_buffer = false;
        copy_views(&mut copy.topic, &mut copy.payload, &mut copy.properties);
        *message = Arc::new(copy);
        true
    }

    /// Remaining lifetime at `now`.
    pub(crate) fn lifetime(&self, now: Instant) -> Lifetime {
        let Some(interval) = self.properties.message_expiry_interval else {
            return Lifetime::Unlimited;
        };
        let waited = now.saturating_duration_since(self.received_at);
        match Duration::from_secs(u64::from(interval)).checked_sub(waited) {
            Some(left) if !left.is_zero() => {
                // Round up so that a message with time left never shows 0.
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                Lifetime::Remaining(u32::try_from(secs).unwrap_or(u32::MAX))
            }
            _ => Lifetime::Expired,
        }
    }

    /// Bytes this message accounts for in queues and the retained store: topic and payload.
    pub fn weight(&self) -> usize {
        self.topic.len() + self.payload.len()
    }
}

/// Bytes of the fields of a message that may be views into a received frame (topic, payload,
/// property strings and data): what it keeps of its own once copied.
fn views_len(topic: &mut MqttStr, payload: &mut Bytes, properties: &mut Properties) -> usize {
    let mut len = 0;
    for_each_view(topic, payload, properties, |view| len += view.bytes().len());
    len
}

/// Replaces those fields (see [`views_len`]) by views of one allocation of their own holding
/// the same bytes, in order: whatever they were views into is no longer kept alive by them.
pub(crate) fn copy_views(topic: &mut MqttStr, payload: &mut Bytes, properties: &mut Properties) {
    let len = views_len(topic, payload, properties);
    let mut joined = Vec::with_capacity(len);
    for_each_view(topic, payload, properties, |view| {
        joined.extend_from_slice(view.bytes());
    });
    let joined = Bytes::from(joined);
    let mut at = 0;
    for_each_view(topic, payload, properties, |view| {
        let end = at + view.bytes().len();
        view.replace(joined.slice(at..end));
        at = end;
    });
}

/// Calls `visit` with every byte field of a message that may be a view into a received frame.
fn for_each_view(
    topic: &mut MqttStr,
    payload: &mut Bytes,
    properties: &mut Properties,
    mut visit: impl FnMut(View<'_>),
) {
    visit(View::Text(topic));
    visit(View::Binary(payload));
    if let Some(text) = &mut properties.content_type {
        visit(View::Text(text));
    }
    if let Some(text) = &mut properties.response_topic {
        visit(View::Text(text));
    }
    if let Some(data) = &mut properties.correlation_data {
        visit(View::Binary(data));
    }
    for (name, value) in &mut properties.user_properties {
        visit(View::Text(name));
        visit(View::Text(value));
    }
}

/// A byte field of a message.
enum View<'a> {
    Text(&'a mut MqttStr),
    Binary(&'a mut Bytes),
}

impl View<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            View::Text(text) => text.as_bytes(),
            View::Binary(data) => data,
        }
    }

    /// Points the field at `copy`, which holds the same bytes.
    fn replace(self, copy: Bytes) {
        match self {
            // The same bytes as valid UTF-8: never keeps the view.
            View::Text(text) => {
                if let Ok(copy) = MqttStr::try_from(copy) {
                    *text = copy;
                }
            }
            View::Binary(data) => *data = copy,
        }
    }
}

/// Where a message being routed comes from (`Broker::route`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A client's PUBLISH on this connection: a full subscriber may pause it.
    Client(ConnectionId),
    /// The application or a will.
    Local,
    /// The broker's own statistics (`$SYS`): of this broker only.
    Sys,
    /// Another broker of a cluster (`Broker::publish_remote`): routed here only.
    Remote,
}

/// One message bound for one session, with what that subscription made of it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The shared message.
    pub(crate) message: Arc<Message>,
    /// QoS granted for this copy (the lower of published and subscribed) [MQTT5-3.8.4-8].
    pub(crate) qos: QoS,
    /// RETAIN flag of this copy.
    pub(crate) retain: bool,
    /// Subscription identifiers of the matching subscriptions [MQTT5-3.3.4-3].
    pub(crate) subscription_ids: Vec<u32>,
    /// The ShareName when this copy came through a shared subscription: if the session leaves
    /// before sending it, another member of the group gets it.
    pub(crate) share: Option<Arc<str>>,
    /// Its number in the session's durable record, 0 when not recorded.
    pub(crate) stored: u64,
}

impl Delivery {
    /// Bytes accounted for in a session queue.
    pub(crate) fn weight(&self) -> usize {
        self.message.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(expiry: Option<u32>, at: Instant) -> Message {
        let mut message = Message::new(
            MqttStr::from_static("a/b"),
            Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
            false,
            at,
        );
        message.properties.message_expiry_interval = expiry;
        message
    }

    #[test]
    fn a_detached_message_shares_one_allocation_and_nothing_of_its_frame() {
        let frame = Bytes::from(b"a/b|payload|text/plain|reply|id|key|value".to_vec());
        let text = |range| MqttStr::try_from(frame.slice(range)).unwrap();
        let mut message = Message::new(
            text(0..3),
            frame.slice(4..11),
            QoS::AtLeastOnce,
            false,
            crate::test_epoch(),
        );
        message.properties.content_type = Some(text(12..22));
        message.properties.response_topic = Some(text(23..28));
        message.properties.correlation_data = Some(frame.slice(29..31));
        message.properties.user_properties = vec![(text(32..35), text(36..41))];
        let original = message.clone();
        let mut shared = Arc::new(message.clone());
        assert!(
            !Message::detach_pinned(&mut shared),
            "not marked as pinning"
        );

        message.pins_buffer = true;
        let mut shared = Arc::new(message);
        assert!(Message::detach_pinned(&mut shared));
        assert_eq!(*shared, original);
        assert!(!shared.pins_buffer);
        let frame_range = frame.as_ptr_range();
        let mut at = shared.topic.as_bytes().as_ptr();
        let mut copy = (*shared).clone();
        let Message {
            topic,
            payload,
            properties,
            ..
        } = &mut copy;
        for_each_view(topic, payload, properties, |view| {
            let bytes = view.bytes();
            assert!(!frame_range.contains(&bytes.as_ptr()));
            assert_eq!(bytes.as_ptr(), at, "one allocation, in order");
            at = bytes.as_ptr_range().end;
        });
        assert!(!Message::detach_pinned(&mut shared), "copied at most once");
    }

    #[test]
    fn lifetime_counts_down_and_expires() {
        let t0 = crate::test_epoch();
        let m = message(Some(10), t0);
        assert_eq!(m.lifetime(t0), Lifetime::Remaining(10));
        assert_eq!(
            m.lifetime(t0 + Duration::from_millis(2500)),
            Lifetime::Remaining(8)
        );
        assert_eq!(m.lifetime(t0 + Duration::from_secs(10)), Lifetime::Expired);
        assert_eq!(message(None, t0).lifetime(t0), Lifetime::Unlimited);
    }
}
