//! The literal children of one trie node, stored compactly: none, one index
//! inline, a short list scanned linearly, or — for levels like the one under
//! `cmnd/` with a million devices — an open-addressing table of node indices
//! tagged with a 32-bit hash of their label.
//!
//! Node index 0 is the root, which is never a child, so 0 marks an empty slot.

/// Above this many children a node switches from a list to a hash table.
const LIST_MAX: usize = 8;
/// At or below this many children a table turns back into a list.
const LIST_AGAIN: usize = 4;
/// The smallest table.
const TABLE_MIN: usize = 16;

/// One table slot: a child index (0 = empty) and its label's hash.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    child: u32,
    hash: u32,
}

/// Linear-probing table of child indices, with backward-shift deletion.
#[derive(Debug)]
pub(super) struct ChildTable {
    slots: Box<[Slot]>,
    len: usize,
}

impl ChildTable {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: vec![Slot::default(); capacity].into_boxed_slice(),
            len: 0,
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn find(&self, hash: u32, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.mask();
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots.get(at)?;
            if slot.child == 0 {
                return None;
            }
            if slot.hash == hash && is_match(slot.child) {
                return Some(slot.child);
            }
            at = (at + 1) & mask;
        }
    }

    fn place(&mut self, slot: Slot) {
        let mask = self.mask();
        let mut at = slot.hash as usize & mask;
        while let Some(existing) = self.slots.get_mut(at) {
            if existing.child == 0 {
                *existing = slot;
                self.len += 1;
                return;
            }
            at = (at + 1) & mask;
        }
    }

    fn resize(&mut self, capacity: usize) {
        let old = std::mem::replace(self, Self::with_capacity(capacity));
        for slot in old.slots.iter().filter(|s| s.child != 0) {
            self.place(*slot);
        }
    }

    fn insert(&mut self, child: u32, hash: u32) {
        // Keep the load at or below 4/5 so probe sequences stay short.
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            self.resize(self.slots.len() * 2);
        }
        self.place(Slot { child, hash });
    }

    fn remove(&mut self, child: u32, hash: u32) {
        let mask = self.mask();
        let mut at = hash as usize & mask;
        loop {
            match self.slots.get(at) {
                Some(slot) if slot.child == child => break,
                Some(slot) if slot.child != 0 => at = (at + 1) & mask,
                _ => return,
            }
        }
        let mut hole = at;
        let mut next = (at + 1) & mask;
        while let Some(&slot) = self.slots.get(next) {
            if slot.child == 0 {
                break;
            }
            let home = slot.hash as usize & mask;
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = slot;
                }
                hole = next;
            }
            next = (next + 1) & mask;
        }
        if let Some(h) = self.slots.get_mut(hole) {
            *h = Slot::default();
        }
        self.len -= 1;
        if self.slots.len() > TABLE_MIN && self.len * 8 < self.slots.len() {
            self.resize(self.slots.len() / 2);
        }
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter(|s| s.child != 0).map(|s| s.child)
    }
}

/// The literal children of a node.
#[derive(Debug, Default)]
pub(super) enum Children {
    /// No literal child.
    #[default]
    Empty,
    /// Exactly one, inline (the common case deep in a trie).
    One(u32),
    /// A few, scanned linearly. Boxed so the enum stays 16 bytes: most
    /// nodes have no child or one, and a node's size is paid a million times.
    #[allow(
        clippy::box_collection,
        reason = "a thin pointer keeps Node at 32 bytes"
    )]
    List(Box<Vec<u32>>),
    /// Many, hashed by label.
    Table(Box<ChildTable>),
}

impl Children {
    /// Finds the child for which `is_match` holds; `hash` is only computed
    /// when a table has to be probed.
    #[inline]
    pub(super) fn find(
        &self,
        hash: impl FnOnce() -> u32,
        mut is_match: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        match self {
            Self::Empty => None,
            Self::One(child) => is_match(*child).then_some(*child),
            Self::List(list) => list.iter().copied().find(|c| is_match(*c)),
            Self::Table(table) => table.find(hash(), is_match),
        }
    }

    /// Adds a child known to be absent; `hash_of` gives any child's hash.
    pub(super) fn insert(&mut self, child: u32, hash_of: impl Fn(u32) -> u32) {
        *self = match std::mem::take(self) {
            Self::Empty => Self::One(child),
            Self::One(first) => Self::List(Box::new(vec![first, child])),
            Self::List(mut list) if list.len() < LIST_MAX => {
                list.push(child);
                Self::List(list)
            }
            Self::List(list) => {
                let mut table = ChildTable::with_capacity(TABLE_MIN);
                for c in list.iter().copied().chain([child]) {
                    table.insert(c, hash_of(c));
                }
                Self::Table(Box::new(table))
            }
            Self::Table(mut table) => {
                table.insert(child, hash_of(child));
                Self::Table(table)
            }
        };
    }

    /// Removes `child` (whose hash is `hash`), shrinking the storage.
    pub(super) fn remove(&mut self, child: u32, hash: u32) {
        *self = match std::mem::take(self) {
            Self::Empty => Self::Empty,
            Self::One(only) if only == child => Self::Empty,
            one @ Self::One(_) => one,
            Self::List(mut list) => {
                list.retain(|c| *c != child);
                match list.as_slice() {
                    [] => Self::Empty,
                    [only] => Self::One(*only),
                    _ => Self::List(list),
                }
            }
            Self::Table(mut table) => {
                table.remove(child, hash);
                if table.len <= LIST_AGAIN {
                    Self::List(Box::new(table.iter().collect()))
                } else {
                    Self::Table(table)
                }
            }
        };
    }

    /// Whether there is no literal child.
    pub(super) fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }

    /// Every child index, in no particular order.
    pub(super) fn for_each(&self, mut f: impl FnMut(u32)) {
        match self {
            Self::Empty => {}
            Self::One(child) => f(*child),
            Self::List(list) => list.iter().copied().for_each(f),
            Self::Table(table) => table.iter().for_each(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(child: u32) -> u32 {
        // Deliberately collide often to exercise probing and deletion.
        child % 7
    }

    #[test]
    fn grows_into_a_table_and_shrinks_back() {
        let mut children = Children::default();
        for c in 1..=200 {
            children.insert(c, hash);
        }
        assert!(matches!(children, Children::Table(_)));
        for c in 1..=200 {
            assert_eq!(children.find(|| hash(c), |x| x == c), Some(c));
        }
        for c in (1..=200).filter(|c| c % 3 != 0) {
            children.remove(c, hash(c));
            assert_eq!(children.find(|| hash(c), |x| x == c), None);
        }
        for c in (1..=200).filter(|c| c % 3 == 0) {
            assert_eq!(children.find(|| hash(c), |x| x == c), Some(c));
        }
        for c in (1..=200).filter(|c| c % 3 == 0) {
            children.remove(c, hash(c));
        }
        assert!(children.is_empty());
    }
}
