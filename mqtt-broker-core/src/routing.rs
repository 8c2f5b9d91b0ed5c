//! The subscription index: which sessions a topic name reaches, with shared-subscription groups
//! reported whole so the broker can pick one member.

use mqtt_topic::{Match, SubscriptionFilter, SubscriptionTrie, TopicName, TrieFull};

use crate::session::{SessionId, Subscription};

/// One match of a topic name.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A non-shared subscription of one session.
    Plain(SessionId, Subscription),
    /// A shared group: exactly one member gets the message.
    Shared {
        /// The ShareName; round-robin cursors are kept per share name.
        share: String,
        /// Its members, in subscription order.
        members: Vec<(SessionId, Subscription)>,
    },
}

/// All subscriptions of all sessions.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionIndex {
    trie: SubscriptionTrie<SessionId, Subscription>,
}

impl SubscriptionIndex {
    /// Adds or replaces `session`'s subscription to `filter`; returns whether it replaced one.
    pub(crate) fn insert(
        &mut self,
        session: SessionId,
        filter: &SubscriptionFilter,
        subscription: Subscription,
    ) -> Result<bool, TrieFull> {
        Ok(self.trie.insert(filter, session, subscription)?.is_some())
    }

    /// Removes `session`'s subscription to `filter`; returns whether there was one.
    pub(crate) fn remove(&mut self, session: SessionId, filter: &SubscriptionFilter) -> bool {
        self.trie.remove(filter, session).is_some()
    }

    /// Subscriptions held, all sessions together.
    pub(crate) fn len(&self) -> usize {
        self.trie.len()
    }

    /// Appends to `out` every subscription matching `topic`.
    pub(crate) fn matches(&self, topic: &TopicName, out: &mut Vec<Target>) {
        self.trie.for_each_match(topic, |m| match m {
            Match::Subscriber(member) => out.push(Target::Plain(member.key, member.value)),
            Match::Shared { share, members } => out.push(Target::Shared {
                share: share.to_owned(),
                members: members.iter().map(|m| (m.key, m.value)).collect(),
            }),
        });
    }
}
