//! The application message routed by the broker, shared (`Arc`) by every session it goes to, and
//! the [`Delivery`] of one message to one session.
//!
//! A message keeps the properties that are forwarded unchanged to subscribers (payload format,
//! content type, response topic, correlation data, user properties in order) and the time it
//! entered the broker, from which the remaining message expiry is computed [MQTT5-3.3.2-6].
//! A retained message published by a client also remembers who published it
//! ([`RetainSource`]), so its publisher's write access can be checked again whenever it is
//! delivered (CVE-2018-12546).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_wire::{MqttStr, Properties, QoS};

use crate::conn::{ConnectionInfo, ListenerId};

/// One application message.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub publisher: Option<String>,
    /// Who published it, kept with retained messages published by a client (a retained will's
    /// publisher is its client); `None` for messages of the embedding application, `$SYS` and
    /// retained messages restored from a store that did not record it (format version 1). See
    /// [`Config::check_retain_source`](crate::Config::check_retain_source).
    pub retain_source: Option<Box<RetainSource>>,
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
        }
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
    pub(crate) share: Option<String>,
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
