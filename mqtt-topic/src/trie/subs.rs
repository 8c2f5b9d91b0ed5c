//! The subscriptions stored at one trie node: those whose filter ends there
//! (exact), those whose filter ends there with `/#` (multi), and shared
//! groups. A node with a single plain subscription stores it inline; the
//! public [`Match`] and [`Member`] types are what a lookup reports.

use std::hash::Hash;

use super::members::MemberList;

/// One subscriber of a filter and its per-subscription data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<K, V> {
    /// The subscriber (e.g. a session id).
    pub key: K,
    /// The per-subscription data (e.g. granted QoS and options).
    pub value: V,
}

/// One result of [`SubscriptionTrie::for_each_match`](crate::SubscriptionTrie::for_each_match).
///
/// A plain subscriber receives every matching message; of a shared group, the caller picks
/// one member per message, here in turn:
///
/// ```
/// use mqtt_topic::{Match, SubscriptionFilter, SubscriptionTrie, TopicName};
///
/// let mut trie = SubscriptionTrie::new();
/// trie.insert(&SubscriptionFilter::from_static("jobs/#")?, "audit", ())?;
/// trie.insert(&SubscriptionFilter::from_static("$share/pool/jobs/+")?, "worker1", ())?;
/// trie.insert(&SubscriptionFilter::from_static("$share/pool/jobs/+")?, "worker2", ())?;
///
/// let mut turn = 0;
/// let mut received = Vec::new();
/// for job in ["jobs/1", "jobs/2"] {
///     trie.for_each_match(&TopicName::from_static(job)?, |m| match m {
///         Match::Subscriber(member) => received.push(member.key),
///         Match::Shared { share, members } => {
///             assert_eq!(share, "pool");
///             let mut keys: Vec<_> = members.iter().map(|member| member.key).collect();
///             keys.sort(); // members come in no particular order
///             received.push(keys[turn % keys.len()]);
///             turn += 1;
///         }
///     });
/// }
/// received.sort();
/// assert_eq!(received, ["audit", "audit", "worker1", "worker2"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum Match<'a, K, V> {
    /// A plain subscription whose filter matches the topic.
    Subscriber(&'a Member<K, V>),
    /// A shared subscription group whose filter matches: the broker delivers
    /// to one of `members`, chosen by its own rule (e.g. a round-robin counter).
    Shared {
        /// The ShareName of the group.
        share: &'a str,
        /// The group's members, in no particular order; never empty.
        members: &'a [Member<K, V>],
    },
}

/// Where in a node a filter ends: at the node itself, or with a trailing `#`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tail {
    /// The filter's last level is this node.
    Exact,
    /// The filter continues with `/#` after this node (or is `#` at the root).
    Multi,
}

/// A shared group stored at a node.
#[derive(Debug)]
pub(super) struct Group<K, V> {
    share: Box<str>,
    tail: Tail,
    members: MemberList<K, V>,
}

/// The general form of a node's subscriptions.
#[derive(Debug)]
pub(super) struct SubList<K, V> {
    exact: MemberList<K, V>,
    multi: MemberList<K, V>,
    groups: Vec<Group<K, V>>,
}

/// The subscriptions of one node (a slot of the subscription slab).
#[derive(Debug)]
pub(super) enum SubSet<K, V> {
    /// A free slab slot.
    Vacant,
    /// Exactly one plain subscription.
    One(Tail, Member<K, V>),
    /// Anything else.
    Many(Box<SubList<K, V>>),
}

impl<K: Copy + Eq + Hash, V> SubSet<K, V> {
    /// Reports the subscriptions with `tail` to `visit`.
    #[inline]
    pub(super) fn visit<'a>(&'a self, tail: Tail, visit: &mut impl FnMut(Match<'a, K, V>)) {
        match self {
            Self::Vacant => {}
            Self::One(t, member) => {
                if *t == tail {
                    visit(Match::Subscriber(member));
                }
            }
            Self::Many(list) => {
                let plain = match tail {
                    Tail::Exact => &list.exact,
                    Tail::Multi => &list.multi,
                };
                plain
                    .as_slice()
                    .iter()
                    .for_each(|m| visit(Match::Subscriber(m)));
                for group in list.groups.iter().filter(|g| g.tail == tail) {
                    visit(Match::Shared {
                        share: &group.share,
                        members: group.members.as_slice(),
                    });
                }
            }
        }
    }

    /// The value of `key`'s subscription, if present.
    pub(super) fn get(&self, share: Option<&str>, tail: Tail, key: K) -> Option<&V> {
        let member = match (self, share) {
            (Self::One(t, m), None) if *t == tail && m.key == key => Some(m),
            (Self::Many(list), None) => list.plain(tail).get(key),
            (Self::Many(list), Some(share)) => {
                list.group(share, tail).and_then(|g| g.members.get(key))
            }
            _ => None,
        };
        member.map(|m| &m.value)
    }

    /// The members of the shared group `share` whose filter ends here with `tail`.
    pub(super) fn group_members(&self, share: &str, tail: Tail) -> Option<&[Member<K, V>]> {
        match self {
            Self::Many(list) => list.group(share, tail).map(|g| g.members.as_slice()),
            Self::Vacant | Self::One(..) => None,
        }
    }

    /// Adds or replaces `key`'s subscription; returns the replaced value.
    pub(super) fn insert(
        &mut self,
        share: Option<&str>,
        tail: Tail,
        member: Member<K, V>,
    ) -> Option<V> {
        let mut list = match (std::mem::replace(self, Self::Vacant), share) {
            (Self::Vacant, None) => {
                *self = Self::One(tail, member);
                return None;
            }
            (Self::One(t, mut m), None) if t == tail && m.key == member.key => {
                let old = std::mem::replace(&mut m.value, member.value);
                *self = Self::One(t, m);
                return Some(old);
            }
            (Self::Vacant, Some(_)) => Box::new(SubList::default()),
            (Self::One(t, m), _) => {
                let mut list = SubList::default();
                list.plain_mut(t).upsert(m);
                Box::new(list)
            }
            (Self::Many(list), _) => list,
        };
        let old = list.insert(share, tail, member);
        *self = Self::Many(list);
        old
    }

    /// Removes `key`'s subscription; returns its value.
    pub(super) fn remove(&mut self, share: Option<&str>, tail: Tail, key: K) -> Option<V> {
        match (std::mem::replace(self, Self::Vacant), share) {
            (Self::One(t, m), None) if t == tail && m.key == key => Some(m.value),
            (Self::Many(mut list), _) => {
                let removed = list.remove(share, tail, key);
                *self = list.normalize();
                removed
            }
            (other, _) => {
                *self = other;
                None
            }
        }
    }

    /// Whether nothing is stored.
    pub(super) fn is_vacant(&self) -> bool {
        matches!(self, Self::Vacant)
    }

    /// Heap bytes behind this set (the general form only).
    pub(super) fn heap_bytes(&self) -> usize {
        let Self::Many(list) = self else {
            return 0;
        };
        size_of::<SubList<K, V>>()
            + list.exact.heap_bytes()
            + list.multi.heap_bytes()
            + list.groups.capacity() * size_of::<Group<K, V>>()
            + list
                .groups
                .iter()
                .map(|g| g.share.len() + g.members.heap_bytes())
                .sum::<usize>()
    }

    /// The number of subscriptions (plain ones plus group members).
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Vacant => 0,
            Self::One(..) => 1,
            Self::Many(list) => {
                list.exact.len()
                    + list.multi.len()
                    + list.groups.iter().map(|g| g.members.len()).sum::<usize>()
            }
        }
    }
}

impl<K, V> Default for SubList<K, V> {
    fn default() -> Self {
        Self {
            exact: MemberList::default(),
            multi: MemberList::default(),
            groups: Vec::new(),
        }
    }
}

impl<K: Copy + Eq + Hash, V> SubList<K, V> {
    fn plain(&self, tail: Tail) -> &MemberList<K, V> {
        match tail {
            Tail::Exact => &self.exact,
            Tail::Multi => &self.multi,
        }
    }

    fn plain_mut(&mut self, tail: Tail) -> &mut MemberList<K, V> {
        match tail {
            Tail::Exact => &mut self.exact,
            Tail::Multi => &mut self.multi,
        }
    }

    fn group(&self, share: &str, tail: Tail) -> Option<&Group<K, V>> {
        self.groups
            .iter()
            .find(|g| g.tail == tail && &*g.share == share)
    }

    fn insert(&mut self, share: Option<&str>, tail: Tail, member: Member<K, V>) -> Option<V> {
        let members = match share {
            None => self.plain_mut(tail),
            Some(share) => {
                if self.group(share, tail).is_none() {
                    self.groups.push(Group {
                        share: share.into(),
                        tail,
                        members: MemberList::default(),
                    });
                }
                let group = self
                    .groups
                    .iter_mut()
                    .find(|g| g.tail == tail && &*g.share == share)?;
                &mut group.members
            }
        };
        members.upsert(member)
    }

    fn remove(&mut self, share: Option<&str>, tail: Tail, key: K) -> Option<V> {
        let members = match share {
            None => self.plain_mut(tail),
            Some(share) => {
                let at = self
                    .groups
                    .iter()
                    .position(|g| g.tail == tail && &*g.share == share)?;
                let group = self.groups.get_mut(at)?;
                let removed = group.members.remove(key);
                if group.members.len() == 0 {
                    self.groups.swap_remove(at);
                }
                return removed;
            }
        };
        members.remove(key)
    }

    /// Turns a list back into the compact forms when it has become small.
    fn normalize(mut self: Box<Self>) -> SubSet<K, V> {
        let plain = self.exact.len() + self.multi.len();
        if !self.groups.is_empty() || plain > 1 {
            return SubSet::Many(self);
        }
        if let Some(member) = self.exact.pop() {
            return SubSet::One(Tail::Exact, member);
        }
        match self.multi.pop() {
            Some(member) => SubSet::One(Tail::Multi, member),
            None => SubSet::Vacant,
        }
    }
}
