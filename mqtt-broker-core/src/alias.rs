//! v5 topic aliases of one connection, in both directions. Aliases never outlive their network
//! connection [MQTT5-3.3.2-7].
//!
//! Topics kept here are copied out of the packets they arrived in (see [`detached`]): a view
//! would keep a whole received frame, payload included, alive for the life of the connection.

use std::collections::HashMap;

use mqtt_wire::{MqttStr, ReasonCode};

use crate::error::ProtocolViolation;

/// Aliases a client set for its PUBLISH packets to the broker. The table is boxed and made on
/// first use: most connections never use an alias, and a connection keeps 8 bytes for it (the
/// maximum is the broker's, the same for every connection).
#[derive(Debug, Default)]
pub(crate) struct InboundAliases {
    #[allow(
        clippy::box_collection,
        reason = "a thin pointer keeps the connection of a client using no alias small"
    )]
    topics: Option<Box<HashMap<u16, MqttStr>>>,
}

impl InboundAliases {
    /// Resolves the topic of an incoming PUBLISH carrying `alias`, one of 1..=`maximum` (the
    /// value advertised in CONNACK): a non-empty `topic` (re)binds the alias, an empty one uses
    /// the binding.
    pub(crate) fn resolve(
        &mut self,
        alias: u16,
        topic: &MqttStr,
        maximum: u16,
    ) -> Result<MqttStr, ProtocolViolation> {
        if alias == 0 || alias > maximum {
            // [MQTT5-3.3.2-12]: only 1..=maximum is accepted.
            return Err(ProtocolViolation::new(
                "MQTT-3.3.2-12",
                "topic alias out of range",
                ReasonCode::TopicAliasInvalid,
            ));
        }
        if topic.is_empty() {
            self.topics
                .as_ref()
                .and_then(|topics| topics.get(&alias))
                .cloned()
                .ok_or(ProtocolViolation::new(
                    "MQTT-3.3.2-12",
                    "topic alias not bound",
                    ReasonCode::TopicAliasInvalid,
                ))
        } else {
            self.topics
                .get_or_insert_default()
                .insert(alias, detached(topic));
            Ok(topic.clone())
        }
    }
}

/// Aliases the broker assigns for its PUBLISH packets to a client: the first `maximum` distinct
/// topics get one, in order of first use; later topics are sent in full. The table is boxed and
/// made only for a client that accepts aliases: a connection keeps 8 bytes for it.
#[derive(Debug, Default)]
pub(crate) struct OutboundAliases {
    table: Option<Box<OutboundTable>>,
}

#[derive(Debug)]
struct OutboundTable {
    maximum: u16,
    aliases: HashMap<MqttStr, u16>,
}

/// How to name the topic of one outgoing PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutboundTopic {
    /// Full topic, no alias.
    Plain,
    /// Full topic, and bind this alias to it.
    Bind(u16),
    /// Empty topic, this alias.
    Alias(u16),
}

impl OutboundAliases {
    /// Uses at most `maximum` aliases (the client's Topic Alias Maximum; 0 = none
    /// [MQTT5-3.1.2-27]).
    pub(crate) fn new(maximum: u16) -> Self {
        let table = (maximum > 0).then(|| {
            Box::new(OutboundTable {
                maximum,
                aliases: HashMap::new(),
            })
        });
        OutboundAliases { table }
    }

    /// How to send `topic` [MQTT5-3.1.2-26] [MQTT5-3.3.2-8]; a `Bind` takes effect with
    /// [`OutboundAliases::bind`], once the packet is really sent.
    pub(crate) fn name(&self, topic: &MqttStr) -> OutboundTopic {
        let Some(table) = self.table.as_deref() else {
            return OutboundTopic::Plain;
        };
        if let Some(alias) = table.aliases.get(topic) {
            return OutboundTopic::Alias(*alias);
        }
        let used = u16::try_from(table.aliases.len()).unwrap_or(u16::MAX);
        if used < table.maximum {
            OutboundTopic::Bind(used + 1)
        } else {
            OutboundTopic::Plain
        }
    }

    /// Records that `alias` now names `topic`.
    pub(crate) fn bind(&mut self, topic: MqttStr, alias: u16) {
        if let Some(table) = &mut self.table {
            table.aliases.insert(detached(&topic), alias);
        }
    }
}

/// A copy of `text` that shares no buffer with the packet it came from.
pub(crate) fn detached(text: &MqttStr) -> MqttStr {
    MqttStr::try_from(text.as_str().to_owned()).unwrap_or_else(|_| text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_topics_do_not_pin_their_packet() {
        let frame = bytes::Bytes::from(b"a/b and a large payload".to_vec());
        let topic = MqttStr::try_from(frame.slice(0..3)).unwrap();
        let kept = detached(&topic);
        assert_eq!(kept, topic);
        assert_ne!(kept.as_bytes().as_ptr(), frame.as_ptr());
    }

    #[test]
    fn inbound_alias_binds_then_resolves() {
        let mut aliases = InboundAliases::default();
        let topic = MqttStr::from_static("a/b");
        assert_eq!(aliases.resolve(1, &topic, 2), Ok(topic.clone()));
        assert_eq!(aliases.resolve(1, &MqttStr::from_static(""), 2), Ok(topic));
    }

    #[test]
    fn mqtt5_3_3_2_12_inbound_alias_outside_range_is_invalid() {
        let mut aliases = InboundAliases::default();
        let topic = MqttStr::from_static("a");
        for alias in [0, 3] {
            let err = aliases.resolve(alias, &topic, 2).unwrap_err();
            assert_eq!(err.reason, ReasonCode::TopicAliasInvalid);
        }
        let err = aliases
            .resolve(2, &MqttStr::from_static(""), 2)
            .unwrap_err();
        assert_eq!(err.reason, ReasonCode::TopicAliasInvalid);
    }

    #[test]
    fn mqtt5_3_1_2_26_outbound_aliases_stay_within_maximum() {
        let mut aliases = OutboundAliases::new(1);
        let a = MqttStr::from_static("a");
        let b = MqttStr::from_static("b");
        assert_eq!(aliases.name(&a), OutboundTopic::Bind(1));
        assert_eq!(
            aliases.name(&a),
            OutboundTopic::Bind(1),
            "not bound until sent"
        );
        aliases.bind(a.clone(), 1);
        assert_eq!(aliases.name(&a), OutboundTopic::Alias(1));
        assert_eq!(aliases.name(&b), OutboundTopic::Plain);
        let none = OutboundAliases::new(0);
        assert_eq!(none.name(&a), OutboundTopic::Plain);
    }
}
