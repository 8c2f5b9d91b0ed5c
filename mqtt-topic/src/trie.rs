//! `SubscriptionTrie`: every subscription of the broker, keyed by filter
//! level, answering "who is subscribed to this topic name?" by walking the
//! name's levels once.
//!
//! Layout, chosen for memory at millions of subscriptions: nodes live in one
//! arena (`Vec<Node>`, `u32` indices, a free list); a node is 28 bytes — its
//! label (inline up to 12 bytes, else an offset into a shared label heap),
//! the `+` child, the index of its subscription set, and a handle on its
//! literal children (the child itself when there is one; else a list when
//! few, a hash table of indices when many). `#` is not a node: a filter
//! ending in `/#` is stored at its parent as a "multi" subscription.
//! Removal prunes nodes that no longer hold or lead to a subscription; freed
//! nodes are reused, and every arena is released when the trie becomes empty.

mod children;
mod hash;
pub(crate) mod labels;
mod members;
pub(crate) mod pending;
mod subs;

use std::hash::Hash;

use children::{ChildHandle, ChildSets, NO_CHILDREN, SET_FLAG};
use hash::LabelHasher;
use labels::{Label, LabelHeap};
use pending::Pending;
pub use subs::{Match, Member};
use subs::{SubSet, Tail};

use crate::validate::next_level;
use crate::{SubscriptionFilter, TopicName, TrieFull};

/// The root's index; the root is never anyone's child.
const ROOT: u32 = 0;
/// `Node::plus` when there is no `+` child (0 is the root, never a child).
const NO_PLUS: u32 = 0;
/// `Node::subs` when the node holds no subscription.
const NO_SUBS: u32 = u32::MAX;

/// One level of the trie.
#[derive(Debug, Default)]
struct Node {
    label: Label,
    plus: u32,
    subs: u32,
    children: ChildHandle,
}

impl Node {
    fn is_useless(&self) -> bool {
        self.subs == NO_SUBS && self.plus == NO_PLUS && self.children == NO_CHILDREN
    }
}

/// The subscriptions of all clients, matched against topic names.
///
/// `K` identifies a subscriber (a session id), `V` is the per-subscription
/// data (granted QoS, options, subscription identifier). One key holds at most
/// one subscription per filter (per ShareName and filter when shared); a key's
/// overlapping subscriptions are all reported, and the broker decides whether
/// to deliver once or once per subscription.
///
/// ```
/// use mqtt_topic::{Match, SubscriptionFilter, SubscriptionTrie, TopicName};
///
/// let mut trie = SubscriptionTrie::new();
/// trie.insert(&SubscriptionFilter::from_static("tele/+/SENSOR")?, 1u32, 'a')?;
/// trie.insert(&SubscriptionFilter::from_static("tele/#")?, 2u32, 'b')?;
///
/// let mut keys = Vec::new();
/// trie.for_each_match(&TopicName::from_static("tele/dev1/SENSOR")?, |m| {
///     if let Match::Subscriber(member) = m {
///         keys.push(member.key);
///     }
/// });
/// keys.sort();
/// assert_eq!(keys, [1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SubscriptionTrie<K, V> {
    nodes: Vec<Node>,
    free_nodes: Vec<u32>,
    subs: Vec<SubSet<K, V>>,
    free_subs: Vec<u32>,
    child_sets: ChildSets,
    labels: LabelHeap,
    hasher: LabelHasher,
    len: usize,
}

impl<K: Copy + Eq + Hash, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + Hash, V> SubscriptionTrie<K, V> {
    /// An empty trie; allocates nothing until the first insert.
    #[must_use]
    pub fn new() -> Self {
        Self {
            nodes: Vec::new(),
            free_nodes: Vec::new(),
            subs: Vec::new(),
            free_subs: Vec::new(),
            child_sets: ChildSets::default(),
            labels: LabelHeap::default(),
            hasher: LabelHasher::new(),
            len: 0,
        }
    }

    /// The number of subscriptions (shared group members included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no subscription.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `key`'s subscription to `filter`, or replaces its data.
    ///
    /// Returns the replaced data, or [`TrieFull`] when the arena's `u32`
    /// indices are exhausted (nothing is changed then).
    pub fn insert(
        &mut self,
        filter: &SubscriptionFilter,
        key: K,
        value: V,
    ) -> Result<Option<V>, TrieFull> {
        let bytes = filter.filter().as_bytes();
        let levels = memchr::memchr_iter(b'/', bytes).count() + 1;
        if self.nodes.len() + levels + 1 >= SET_FLAG as usize
            || self.labels.capacity_bytes() + bytes.len() >= u32::MAX as usize
        {
            return Err(TrieFull);
        }
        if self.nodes.is_empty() {
            self.nodes.push(Node {
                subs: NO_SUBS,
                ..Node::default()
            });
        }
        let mut node = ROOT;
        let mut tail = Tail::Exact;
        let mut at = Some(0);
        while let Some(start) = at {
            let (level, next) = next_level(bytes, start);
            match level {
                b"#" => {
                    tail = Tail::Multi;
                    break;
                }
                b"+" => node = self.plus_child_or_insert(node)?,
                _ => node = self.literal_child_or_insert(node, level)?,
            }
            at = next;
        }
        let slot = self.subs_of_or_insert(node)?;
        let share = filter.share().map(|s| s.as_str());
        let old = self
            .subs
            .get_mut(slot as usize)
            .and_then(|set| set.insert(share, tail, Member { key, value }));
        if old.is_none() {
            self.len += 1;
        }
        Ok(old)
    }

    /// The data of `key`'s subscription to `filter`, if any.
    #[must_use]
    pub fn get(&self, filter: &SubscriptionFilter, key: K) -> Option<&V> {
        let (path_end, tail) = self.find_node(filter, |_, _, _| {})?;
        let node = self.nodes.get(path_end as usize)?;
        let share = filter.share().map(|s| s.as_str());
        self.subs.get(node.subs as usize)?.get(share, tail, key)
    }

    /// The members of the shared group of `filter` (`$share/{ShareName}/{filter}`): the
    /// same members [`SubscriptionTrie::for_each_match`] reports for it, found without a
    /// topic (a cluster that picked this broker for one delivery to the group asks for them).
    /// Empty for a plain filter or a group with no member.
    ///
    /// ```
    /// use mqtt_topic::{SubscriptionFilter, SubscriptionTrie};
    ///
    /// let mut trie = SubscriptionTrie::new();
    /// let pool = SubscriptionFilter::from_static("$share/pool/jobs/+")?;
    /// trie.insert(&pool, "worker1", ())?;
    /// trie.insert(&SubscriptionFilter::from_static("$share/pool/jobs/#")?, "worker2", ())?;
    /// let members: Vec<_> = trie.shared_members(&pool).iter().map(|m| m.key).collect();
    /// assert_eq!(members, ["worker1"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn shared_members(&self, filter: &SubscriptionFilter) -> &[Member<K, V>] {
        let Some(share) = filter.share() else {
            return &[];
        };
        self.find_node(filter, |_, _, _| {})
            .and_then(|(node, tail)| {
                let slot = self.nodes.get(node as usize)?.subs;
                self.subs
                    .get(slot as usize)?
                    .group_members(share.as_str(), tail)
            })
            .unwrap_or(&[])
    }

    /// Removes `key`'s subscription to `filter`; returns its data. Nodes that
    /// no longer lead to a subscription are freed.
    pub fn remove(&mut self, filter: &SubscriptionFilter, key: K) -> Option<V> {
        let mut path: Vec<(u32, u32, bool)> = Vec::new();
        let (node, tail) = self.find_node(filter, |parent, child, plus| {
            path.push((parent, child, plus));
        })?;
        let share = filter.share().map(|s| s.as_str());
        let slot = self.nodes.get(node as usize)?.subs;
        let set = self.subs.get_mut(slot as usize)?;
        let removed = set.remove(share, tail, key)?;
        self.len -= 1;
        if set.is_vacant() {
            self.free_subs.push(slot);
            if let Some(n) = self.nodes.get_mut(node as usize) {
                n.subs = NO_SUBS;
            }
        }
        if self.len == 0 {
            self.release_everything();
            return Some(removed);
        }
        for (parent, child, plus) in path.into_iter().rev() {
            if !self.nodes.get(child as usize).is_some_and(Node::is_useless) {
                break;
            }
            self.detach(parent, child, plus);
        }
        if self.labels.wants_compaction() {
            self.labels
                .compact(self.nodes.iter_mut().map(|node| &mut node.label));
        }
        Some(removed)
    }

    /// Removes every subscription of `key` to the given filters (the ones its
    /// session remembers); returns how many were removed.
    pub fn remove_all<'f>(
        &mut self,
        key: K,
        filters: impl IntoIterator<Item = &'f SubscriptionFilter>,
    ) -> usize {
        filters
            .into_iter()
            .filter(|filter| self.remove(filter, key).is_some())
            .count()
    }

    /// Calls `visit` once per subscription (or shared group) whose filter
    /// matches `topic`, without allocating in the common case.
    ///
    /// `#` matches the parent level, `+` exactly one level (empty ones too),
    /// and filters starting with a wildcard skip `$` topics [MQTT-4.7.2-1].
    pub fn for_each_match<'a>(&'a self, topic: &TopicName, mut visit: impl FnMut(Match<'a, K, V>)) {
        let bytes = topic.as_bytes();
        let skip_root_wildcards = topic.is_dollar();
        let mut pending: Pending<(u32, Option<usize>)> = Pending::new();
        let (mut index, mut at) = (ROOT, Some(0));
        loop {
            if let Some(node) = self.nodes.get(index as usize) {
                let wildcards_apply = !(index == ROOT && skip_root_wildcards);
                let subs = self.subs.get(node.subs as usize);
                if let (Some(subs), true) = (subs, wildcards_apply) {
                    subs.visit(Tail::Multi, &mut visit);
                }
                match at {
                    None => {
                        if let Some(subs) = subs {
                            subs.visit(Tail::Exact, &mut visit);
                        }
                    }
                    Some(start) => {
                        let (level, next) = next_level(bytes, start);
                        if node.plus != NO_PLUS && wildcards_apply {
                            pending.push((node.plus, next));
                        }
                        if let Some(child) = self.literal_child(node, level) {
                            (index, at) = (child, next);
                            continue;
                        }
                    }
                }
            }
            match pending.pop() {
                Some((next_index, next_at)) => (index, at) = (next_index, next_at),
                None => return,
            }
        }
    }

    /// The number of live nodes, root included (for tests of pruning).
    #[doc(hidden)]
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free_nodes.len()
    }

    /// Heap bytes held by the trie (arena capacities, label heap, child
    /// tables, subscription lists), for memory measurements.
    #[doc(hidden)]
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let arenas = self.nodes.capacity() * size_of::<Node>()
            + (self.free_nodes.capacity() + self.free_subs.capacity()) * size_of::<u32>()
            + self.subs.capacity() * size_of::<SubSet<K, V>>()
            + self.labels.capacity_bytes();
        let lists: usize = self.subs.iter().map(SubSet::heap_bytes).sum();
        arenas + self.child_sets.heap_bytes() + lists
    }

    /// Checks the structure: every non-root node leads to a subscription, the
    /// free lists and counters agree with what is reachable, and every child
    /// can be found by its label.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return match (self.len, self.subs.len()) {
                (0, 0) => Ok(()),
                other => Err(format!("no nodes but len/subs {other:?}")),
            };
        }
        let (mut reachable, mut subs_live, mut counted, mut sets) = (0, 0, 0, 0);
        let mut stack = vec![ROOT];
        while let Some(index) = stack.pop() {
            let node = self.nodes.get(index as usize).ok_or("dangling index")?;
            reachable += 1;
            if index != ROOT && node.is_useless() {
                return Err(format!("node {index} is empty"));
            }
            if let Some(set) = self.subs.get(node.subs as usize) {
                if set.is_vacant() {
                    return Err(format!("node {index} points at a vacant set"));
                }
                subs_live += 1;
                counted += set.len();
            }
            if node.plus != NO_PLUS {
                stack.push(node.plus);
            }
            sets += usize::from(node.children & SET_FLAG != 0);
            let mut lost = None;
            self.child_sets.for_each(node.children, |child| {
                let label = self.label_of(child);
                if self.literal_child(node, label) != Some(child) {
                    lost = Some(child);
                }
                stack.push(child);
            });
            if let Some(child) = lost {
                return Err(format!("child {child} not found by its label"));
            }
        }
        if reachable != self.node_count() {
            return Err(format!("{reachable} reachable, {} live", self.node_count()));
        }
        if sets != self.child_sets.live() {
            return Err(format!(
                "{sets} child sets reachable, {} live",
                self.child_sets.live()
            ));
        }
        if subs_live != self.subs.len() - self.free_subs.len() || counted != self.len {
            return Err(format!(
                "subscription sets {subs_live}, counted {counted}, len {}",
                self.len
            ));
        }
        Ok(())
    }

    fn hash(&self, label: &[u8]) -> u32 {
        self.hasher.hash(label)
    }

    fn label_of(&self, index: u32) -> &[u8] {
        label_bytes(&self.nodes, &self.labels, index)
    }

    #[inline]
    fn literal_child(&self, node: &Node, level: &[u8]) -> Option<u32> {
        let hash = || self.hash(level);
        match Label::inline_key(level) {
            Some(key) => self.child_sets.find(node.children, hash, |child| {
                self.nodes
                    .get(child as usize)
                    .is_some_and(|c| c.label.equals_inline(&key))
            }),
            None => self
                .child_sets
                .find(node.children, hash, |child| self.label_of(child) == level),
        }
    }

    /// Walks `filter` without changing anything, telling `step` each
    /// (parent, child, is_plus) edge; returns the last node and the tail kind.
    fn find_node(
        &self,
        filter: &SubscriptionFilter,
        mut step: impl FnMut(u32, u32, bool),
    ) -> Option<(u32, Tail)> {
        let bytes = filter.filter().as_bytes();
        let mut index = ROOT;
        let mut at = Some(0);
        while let Some(start) = at {
            let node = self.nodes.get(index as usize)?;
            let (level, next) = next_level(bytes, start);
            let (child, plus) = match level {
                b"#" => return Some((index, Tail::Multi)),
                b"+" if node.plus != NO_PLUS => (node.plus, true),
                b"+" => return None,
                _ => (self.literal_child(node, level)?, false),
            };
            step(index, child, plus);
            (index, at) = (child, next);
        }
        self.nodes.get(index as usize)?;
        Some((index, Tail::Exact))
    }

    fn new_node(&mut self, label: &[u8]) -> Result<u32, TrieFull> {
        let node = Node {
            label: self.labels.push(label).map_err(|_| TrieFull)?,
            plus: NO_PLUS,
            subs: NO_SUBS,
            children: NO_CHILDREN,
        };
        if let Some(index) = self.free_nodes.pop()
            && let Some(slot) = self.nodes.get_mut(index as usize)
        {
            *slot = node;
            return Ok(index);
        }
        let index = u32::try_from(self.nodes.len())
            .ok()
            .filter(|index| index & SET_FLAG == 0)
            .ok_or(TrieFull)?;
        self.nodes.push(node);
        Ok(index)
    }

    fn plus_child_or_insert(&mut self, parent: u32) -> Result<u32, TrieFull> {
        match self.nodes.get(parent as usize) {
            Some(node) if node.plus != NO_PLUS => Ok(node.plus),
            _ => {
                let child = self.new_node(b"+")?;
                if let Some(node) = self.nodes.get_mut(parent as usize) {
                    node.plus = child;
                }
                Ok(child)
            }
        }
    }

    fn literal_child_or_insert(&mut self, parent: u32, level: &[u8]) -> Result<u32, TrieFull> {
        let parent_node = self.nodes.get(parent as usize).ok_or(TrieFull)?;
        if let Some(child) = self.literal_child(parent_node, level) {
            return Ok(child);
        }
        let mut handle = parent_node.children;
        let child = self.new_node(level)?;
        let (nodes, labels, hasher) = (&self.nodes, &self.labels, &self.hasher);
        self.child_sets.insert(&mut handle, child, |c| {
            hasher.hash(label_bytes(nodes, labels, c))
        })?;
        if let Some(node) = self.nodes.get_mut(parent as usize) {
            node.children = handle;
        }
        Ok(child)
    }

    fn subs_of_or_insert(&mut self, index: u32) -> Result<u32, TrieFull> {
        let node = self.nodes.get(index as usize).ok_or(TrieFull)?;
        if node.subs != NO_SUBS {
            return Ok(node.subs);
        }
        let slot = match self.free_subs.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.subs.len()).map_err(|_| TrieFull)?;
                self.subs.push(SubSet::Vacant);
                slot
            }
        };
        if let Some(node) = self.nodes.get_mut(index as usize) {
            node.subs = slot;
        }
        Ok(slot)
    }

    /// Unlinks the useless `child` from `parent` and frees it.
    fn detach(&mut self, parent: u32, child: u32, plus: bool) {
        let hash = self.hash(self.label_of(child));
        if let Some(node) = self.nodes.get_mut(parent as usize) {
            if plus {
                node.plus = NO_PLUS;
            } else {
                self.child_sets.remove(&mut node.children, child, hash);
            }
        }
        if let Some(node) = self.nodes.get_mut(child as usize) {
            let freed = std::mem::take(node);
            self.labels.release(freed.label);
            self.free_nodes.push(child);
        }
    }

    /// Drops every allocation once the last subscription is gone.
    fn release_everything(&mut self) {
        self.nodes = Vec::new();
        self.free_nodes = Vec::new();
        self.subs = Vec::new();
        self.free_subs = Vec::new();
        self.child_sets = ChildSets::default();
        self.labels.clear();
    }
}

/// The label bytes of node `index`.
fn label_bytes<'a>(nodes: &'a [Node], labels: &'a LabelHeap, index: u32) -> &'a [u8] {
    nodes
        .get(index as usize)
        .map_or(&[][..], |node| labels.get(&node.label))
}

#[cfg(test)]
mod tests;
