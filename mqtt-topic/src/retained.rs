//! `RetainedTree`: the retained messages' topic names, as a tree of levels,
//! so a new subscription's filter can be walked through it. A literal level
//! is one hash lookup, `+` visits the children of one node, `#` a subtree;
//! the tree is never scanned beyond what the filter can match.

use std::collections::HashMap;

use crate::validate::next_level;
use crate::{TopicFilter, TopicName};

/// The root's index.
const ROOT: usize = 0;

/// One level of the tree.
#[derive(Debug)]
struct Node<V> {
    children: HashMap<Box<[u8]>, usize>,
    value: Option<(TopicName, V)>,
}

impl<V> Node<V> {
    fn empty() -> Self {
        Self {
            children: HashMap::new(),
            value: None,
        }
    }
}

/// Retained data `V` (e.g. the retained PUBLISH) keyed by topic name, and
/// queried by topic filter.
///
/// ```
/// use mqtt_topic::{RetainedTree, TopicFilter, TopicName};
///
/// let mut retained = RetainedTree::new();
/// retained.insert(TopicName::from_static("$SYS/uptime")?, 1);
/// retained.insert(TopicName::from_static("tele/dev1/STATE")?, 2);
/// let mut found = Vec::new();
/// retained.for_each_match(&TopicFilter::from_static("#")?, |_, v| found.push(*v));
/// assert_eq!(found, [2]); // `#` does not reach `$` topics [MQTT-4.7.2-1]
/// # Ok::<(), mqtt_topic::TopicError>(())
/// ```
#[derive(Debug)]
pub struct RetainedTree<V> {
    nodes: Vec<Node<V>>,
    free: Vec<usize>,
    len: usize,
}

impl<V> Default for RetainedTree<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> RetainedTree<V> {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self {
            nodes: vec![Node::empty()],
            free: Vec::new(),
            len: 0,
        }
    }

    /// The number of retained topics.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is retained.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` for `name`; returns the value it replaces.
    pub fn insert(&mut self, name: TopicName, value: V) -> Option<V> {
        let mut index = ROOT;
        for level in name.levels() {
            index = self.child_or_insert(index, level);
        }
        let node = self.nodes.get_mut(index)?;
        let old = node.value.replace((name, value)).map(|(_, v)| v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value stored for `name`.
    #[must_use]
    pub fn get(&self, name: &TopicName) -> Option<&V> {
        let index = self.find(name, |_, _| {})?;
        self.nodes.get(index)?.value.as_ref().map(|(_, v)| v)
    }

    /// Removes and returns the value stored for `name`, freeing the levels
    /// that no longer lead to a retained topic.
    pub fn remove(&mut self, name: &TopicName) -> Option<V> {
        let mut path = Vec::new();
        let index = self.find(name, |parent, level| path.push((parent, level)))?;
        let (_, value) = self.nodes.get_mut(index)?.value.take()?;
        self.len -= 1;
        let mut child = index;
        for (parent, level) in path.into_iter().rev() {
            let useless = self
                .nodes
                .get(child)
                .is_some_and(|n| n.value.is_none() && n.children.is_empty());
            if !useless {
                break;
            }
            if let Some(node) = self.nodes.get_mut(parent) {
                node.children.remove(level);
            }
            if let Some(node) = self.nodes.get_mut(child) {
                *node = Node::empty();
                self.free.push(child);
            }
            child = parent;
        }
        if self.len == 0 {
            *self = Self::new();
        }
        Some(value)
    }

    /// Calls `visit` with every stored topic that `filter` matches: `+`
    /// matches one level, `#` the parent level and everything below, and a
    /// filter starting with a wildcard skips `$` topics [MQTT-4.7.2-1].
    pub fn for_each_match<'a>(
        &'a self,
        filter: &TopicFilter,
        mut visit: impl FnMut(&'a TopicName, &'a V),
    ) {
        let bytes = filter.as_bytes();
        let mut stack: Vec<(usize, Option<usize>)> = vec![(ROOT, Some(0))];
        while let Some((index, at)) = stack.pop() {
            let Some(node) = self.nodes.get(index) else {
                continue;
            };
            let Some(start) = at else {
                if let Some((name, value)) = &node.value {
                    visit(name, value);
                }
                continue;
            };
            let (level, next) = next_level(bytes, start);
            let children = node
                .children
                .iter()
                .filter(|(label, _)| index != ROOT || label.first() != Some(&b'$'))
                .map(|(_, child)| *child);
            match level {
                b"#" => {
                    if let Some((name, value)) = &node.value {
                        visit(name, value);
                    }
                    self.visit_subtrees(children, &mut visit);
                }
                b"+" => stack.extend(children.map(|child| (child, next))),
                _ => {
                    if let Some(child) = node.children.get(level) {
                        stack.push((*child, next));
                    }
                }
            }
        }
    }

    /// The number of live nodes, root included (for tests of pruning).
    #[doc(hidden)]
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Checks that every non-root node leads to a value and that the counts
    /// agree with what is reachable.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let (mut reachable, mut values) = (0, 0);
        let mut stack = vec![ROOT];
        while let Some(index) = stack.pop() {
            let node = self.nodes.get(index).ok_or("dangling index")?;
            reachable += 1;
            values += usize::from(node.value.is_some());
            if index != ROOT && node.value.is_none() && node.children.is_empty() {
                return Err(format!("node {index} is empty"));
            }
            stack.extend(node.children.values().copied());
        }
        if reachable != self.node_count() || values != self.len {
            return Err(format!(
                "reachable {reachable} of {} nodes, {values} values for len {}",
                self.node_count(),
                self.len
            ));
        }
        Ok(())
    }

    fn visit_subtrees<'a>(
        &'a self,
        roots: impl Iterator<Item = usize>,
        visit: &mut impl FnMut(&'a TopicName, &'a V),
    ) {
        let mut stack: Vec<usize> = roots.collect();
        while let Some(index) = stack.pop() {
            if let Some(node) = self.nodes.get(index) {
                if let Some((name, value)) = &node.value {
                    visit(name, value);
                }
                stack.extend(node.children.values().copied());
            }
        }
    }

    fn find<'n>(
        &self,
        name: &'n TopicName,
        mut step: impl FnMut(usize, &'n [u8]),
    ) -> Option<usize> {
        let mut index = ROOT;
        for level in name.levels() {
            let child = *self.nodes.get(index)?.children.get(level)?;
            step(index, level);
            index = child;
        }
        Some(index)
    }

    fn child_or_insert(&mut self, parent: usize, level: &[u8]) -> usize {
        if let Some(child) = self.nodes.get(parent).and_then(|n| n.children.get(level)) {
            return *child;
        }
        let child = match self.free.pop() {
            Some(index) => index,
            None => {
                self.nodes.push(Node::empty());
                self.nodes.len() - 1
            }
        };
        if let Some(node) = self.nodes.get_mut(parent) {
            node.children.insert(level.into(), child);
        }
        child
    }
}

#[cfg(test)]
mod tests;
