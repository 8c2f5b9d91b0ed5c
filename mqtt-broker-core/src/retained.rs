//! The retained messages: one per topic name, within the configured count and byte bounds.
//! [`Retained`] is their only home in the broker; a durable store learns of every change through
//! `PersistRecord::RetainedSet` / `RetainedCleared` and hands them back with `Broker::restore`.

use std::sync::Arc;

use mqtt_topic::{RetainedTree, TopicFilter, TopicName};

use crate::message::Message;

/// The retained message of every topic that has one, and the bytes they hold
/// ([`Message::weight`]).
#[derive(Debug, Default)]
pub(crate) struct Retained {
    tree: RetainedTree<Arc<Message>>,
    bytes: usize,
}

impl Retained {
    /// Sets the retained message of `topic`, replacing any [MQTT-3.3.1-5].
    pub(crate) fn set(&mut self, topic: TopicName, message: Arc<Message>) {
        self.bytes += message.weight();
        if let Some(old) = self.tree.insert(topic, message) {
            self.bytes = self.bytes.saturating_sub(old.weight());
        }
    }

    /// Clears the retained message of `topic`; whether there was one [MQTT5-3.3.1-6].
    pub(crate) fn remove(&mut self, topic: &TopicName) -> bool {
        let Some(old) = self.tree.remove(topic) else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(old.weight());
        true
    }

    /// The retained messages whose topics match `filter`, in the order of their topics (byte
    /// order): the same for every run, whatever order the tree's hash maps visit them in.
    pub(crate) fn matching(&self, filter: &TopicFilter) -> Vec<Arc<Message>> {
        let mut found = Vec::new();
        self.tree.for_each_match(filter, |topic, message| {
            found.push((topic, Arc::clone(message)))
        });
        found.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        found.into_iter().map(|(_, message)| message).collect()
    }

    /// Number of retained messages.
    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether `message` may become the retained message of `topic` with at most `max_messages`
    /// messages and `max_bytes` bytes retained in all (a replacement frees what it replaces).
    pub(crate) fn has_room(
        &self,
        topic: &TopicName,
        message: &Message,
        max_messages: usize,
        max_bytes: usize,
    ) -> bool {
        let old = self.tree.get(topic);
        let old_weight = old.map_or(0, |m| m.weight());
        let count = self.tree.len() + usize::from(old.is_none());
        let bytes = self.bytes.saturating_sub(old_weight) + message.weight();
        count <= max_messages && bytes <= max_bytes
    }

    /// The addresses of the topic names the messages are kept under (tests check that a key
    /// keeps no read buffer alive).
    #[cfg(test)]
    pub(crate) fn key_addresses(&self) -> Vec<usize> {
        let mut keys = Vec::new();
        let all = TopicFilter::new(bytes::Bytes::from_static(b"#")).expect("valid filter");
        self.tree.for_each_match(&all, |topic, _| {
            keys.push(topic.as_bytes().as_ptr() as usize);
        });
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mqtt_wire::QoS;

    fn name(text: &'static str) -> TopicName {
        TopicName::new(Bytes::from_static(text.as_bytes())).expect("valid topic")
    }

    fn message(topic: &'static str, payload: &'static [u8]) -> Arc<Message> {
        Arc::new(Message::new(
            mqtt_wire::MqttStr::from_static(topic),
            Bytes::from_static(payload),
            QoS::AtMostOnce,
            true,
            crate::test_epoch(),
        ))
    }

    #[test]
    fn bytes_follow_replacements_and_removals() {
        let mut retained = Retained::default();
        retained.set(name("a"), message("a", b"1234"));
        retained.set(name("b"), message("b", b"12"));
        assert_eq!((retained.len(), retained.bytes), (2, 5 + 3));
        retained.set(name("a"), message("a", b"1"));
        assert_eq!((retained.len(), retained.bytes), (2, 2 + 3));
        assert!(retained.remove(&name("b")));
        assert!(!retained.remove(&name("b")));
        assert_eq!((retained.len(), retained.bytes), (1, 2));
    }

    #[test]
    fn a_replacement_frees_what_it_replaces() {
        let mut retained = Retained::default();
        retained.set(name("a"), message("a", b"1234")); // 5 bytes
        let bigger = message("a", b"123456"); // 7 bytes
        assert!(retained.has_room(&name("a"), &bigger, 1, 7));
        assert!(
            !retained.has_room(&name("b"), &bigger, 1, 100),
            "a second message"
        );
        assert!(
            !retained.has_room(&name("b"), &bigger, 2, 11),
            "5 + 7 bytes"
        );
    }
}
