//! The members of one filter at one node (plain subscribers, or one shared
//! group): a vector, plus a key index once the list grows, so a filter that a
//! hundred thousand clients share still inserts and removes in O(1).

use std::collections::HashMap;
use std::hash::Hash;

use super::subs::Member;

/// From this many members on, a list keeps a key index.
const INDEX_FROM: usize = 16;

/// The members of one filter, in no particular order.
#[derive(Debug)]
pub(super) struct MemberList<K, V> {
    members: Vec<Member<K, V>>,
    /// Boxed: most lists never grow an index, and the box keeps them small.
    #[allow(
        clippy::box_collection,
        reason = "a thin pointer keeps small lists at 32 bytes"
    )]
    index: Option<Box<HashMap<K, usize>>>,
}

impl<K, V> Default for MemberList<K, V> {
    fn default() -> Self {
        Self {
            members: Vec::new(),
            index: None,
        }
    }
}

impl<K: Copy + Eq + Hash, V> MemberList<K, V> {
    /// The members.
    #[inline]
    pub(super) fn as_slice(&self) -> &[Member<K, V>] {
        &self.members
    }

    /// How many members there are.
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// The member with `key`.
    pub(super) fn get(&self, key: K) -> Option<&Member<K, V>> {
        self.members.get(self.position(key)?)
    }

    /// Adds `member`, or replaces the value of the member with its key;
    /// returns the replaced value.
    pub(super) fn upsert(&mut self, member: Member<K, V>) -> Option<V> {
        if let Some(at) = self.position(member.key) {
            let existing = self.members.get_mut(at)?;
            return Some(std::mem::replace(&mut existing.value, member.value));
        }
        let (key, at) = (member.key, self.members.len());
        if at < INDEX_FROM {
            // Small lists are the norm: keep them tight rather than doubling.
            self.members.reserve_exact(1);
        }
        self.members.push(member);
        match &mut self.index {
            Some(index) => {
                index.insert(key, at);
            }
            None if self.members.len() > INDEX_FROM => {
                let index = self.members.iter().enumerate().map(|(at, m)| (m.key, at));
                self.index = Some(Box::new(index.collect()));
            }
            None => {}
        }
        None
    }

    /// Removes the member with `key`; returns its value.
    pub(super) fn remove(&mut self, key: K) -> Option<V> {
        let at = self.position(key)?;
        if at >= self.members.len() {
            return None;
        }
        let removed = self.members.swap_remove(at);
        if let Some(index) = &mut self.index {
            index.remove(&key);
            if let Some(moved) = self.members.get(at) {
                index.insert(moved.key, at);
            }
            if self.members.len() < INDEX_FROM / 2 {
                self.index = None;
            }
        }
        if self.members.len() * 4 < self.members.capacity() {
            self.members.shrink_to_fit();
        }
        Some(removed.value)
    }

    /// Takes the last member out.
    pub(super) fn pop(&mut self) -> Option<Member<K, V>> {
        let member = self.members.pop()?;
        if let Some(index) = &mut self.index {
            index.remove(&member.key);
        }
        Some(member)
    }

    /// Heap bytes behind the list.
    pub(super) fn heap_bytes(&self) -> usize {
        let index = self.index.as_ref().map_or(0, |index| {
            size_of::<HashMap<K, usize>>() + index.capacity() * (size_of::<(K, usize)>() + 1)
        });
        self.members.capacity() * size_of::<Member<K, V>>() + index
    }

    fn position(&self, key: K) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&key).copied(),
            None => self.members.iter().position(|m| m.key == key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_stays_consistent_through_growth_and_removal() {
        let mut list = MemberList::default();
        for key in 0..1000u32 {
            assert_eq!(list.upsert(Member { key, value: key }), None);
        }
        assert_eq!(list.upsert(Member { key: 7, value: 70 }), Some(7));
        for key in (0..1000).filter(|k| k % 3 != 0) {
            assert_eq!(list.remove(key), Some(if key == 7 { 70 } else { key }));
            assert_eq!(list.remove(key), None);
        }
        for key in 0..1000 {
            assert_eq!(
                list.get(key).map(|m| m.value),
                (key % 3 == 0).then_some(key)
            );
        }
        while list.len() > 3 {
            let key = list.as_slice()[list.len() / 2].key;
            assert_eq!(list.remove(key), Some(key));
            assert!(list.get(key).is_none());
        }
        assert!(list.index.is_none());
        assert!(list.as_slice().iter().all(|m| list.get(m.key).is_some()));
    }
}
