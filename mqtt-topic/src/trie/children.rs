//! The literal children of the trie's nodes, stored compactly. A node holds
//! a 4-byte handle: 0 for none, the child's own index when it has exactly one
//! (the common case deep in a trie), or a flagged index into [`ChildSets`],
//! where a few children are a list scanned linearly and many — the level under
//! `cmnd/` with a million devices — an open-addressing table of node indices
//! tagged with a 32-bit hash of their label.
//!
//! Node index 0 is the root, which is never a child, so 0 marks "none" and an
//! empty table slot.

use crate::TrieFull;

/// A node's handle on its literal children.
pub(super) type ChildHandle = u32;
/// The handle of a node without literal children.
pub(super) const NO_CHILDREN: ChildHandle = 0;
/// Set in a handle that refers to a [`ChildSet`]; node indices stay below it.
pub(super) const SET_FLAG: u32 = 1 << 31;
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

/// Two or more children of one node.
#[derive(Debug)]
enum ChildSet {
    /// A free slot.
    Vacant,
    /// A few, scanned linearly.
    List(Vec<u32>),
    /// Many, hashed by label.
    Table(ChildTable),
}

/// The storage of every node's multi-child sets, with a free list.
#[derive(Debug, Default)]
pub(super) struct ChildSets {
    sets: Vec<ChildSet>,
    free: Vec<u32>,
}

impl ChildSets {
    /// Finds the child of `handle` for which `is_match` holds; `hash` is only
    /// computed when a table has to be probed.
    #[inline]
    pub(super) fn find(
        &self,
        handle: ChildHandle,
        hash: impl FnOnce() -> u32,
        mut is_match: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        if handle == NO_CHILDREN {
            return None;
        }
        if handle & SET_FLAG == 0 {
            return is_match(handle).then_some(handle);
        }
        match self.sets.get((handle & !SET_FLAG) as usize)? {
            ChildSet::Vacant => None,
            ChildSet::List(list) => list.iter().copied().find(|c| is_match(*c)),
            ChildSet::Table(table) => table.find(hash(), is_match),
        }
    }

    /// Adds a child known to be absent; `hash_of` gives any child's hash.
    pub(super) fn insert(
        &mut self,
        handle: &mut ChildHandle,
        child: u32,
        hash_of: impl Fn(u32) -> u32,
    ) -> Result<(), TrieFull> {
        if *handle == NO_CHILDREN {
            *handle = child;
            return Ok(());
        }
        if *handle & SET_FLAG == 0 {
            let at = self.allocate(ChildSet::List(vec![*handle, child]))?;
            *handle = SET_FLAG | at;
            return Ok(());
        }
        let Some(set) = self.sets.get_mut((*handle & !SET_FLAG) as usize) else {
            return Ok(());
        };
        match set {
            ChildSet::List(list) if list.len() < LIST_MAX => list.push(child),
            ChildSet::List(list) => {
                let mut table = ChildTable::with_capacity(TABLE_MIN);
                for c in list.iter().copied().chain([child]) {
                    table.insert(c, hash_of(c));
                }
                *set = ChildSet::Table(table);
            }
            ChildSet::Table(table) => table.insert(child, hash_of(child)),
            ChildSet::Vacant => {}
        }
        Ok(())
    }

    /// Removes `child` (whose hash is `hash`), shrinking the storage.
    pub(super) fn remove(&mut self, handle: &mut ChildHandle, child: u32, hash: u32) {
        if *handle & SET_FLAG == 0 {
            if *handle == child {
                *handle = NO_CHILDREN;
            }
            return;
        }
        let at = *handle & !SET_FLAG;
        let Some(set) = self.sets.get_mut(at as usize) else {
            return;
        };
        match set {
            ChildSet::List(list) => {
                list.retain(|c| *c != child);
                if let [only] = list.as_slice() {
                    *handle = *only;
                    *set = ChildSet::Vacant;
                    self.free.push(at);
                }
            }
            ChildSet::Table(table) => {
                table.remove(child, hash);
                if table.len <= LIST_AGAIN {
                    *set = ChildSet::List(table.iter().collect());
                }
            }
            ChildSet::Vacant => {}
        }
    }

    /// Every child of `handle`, in no particular order.
    pub(super) fn for_each(&self, handle: ChildHandle, mut f: impl FnMut(u32)) {
        if handle & SET_FLAG == 0 {
            if handle != NO_CHILDREN {
                f(handle);
            }
            return;
        }
        match self.sets.get((handle & !SET_FLAG) as usize) {
            Some(ChildSet::List(list)) => list.iter().copied().for_each(f),
            Some(ChildSet::Table(table)) => table.iter().for_each(f),
            Some(ChildSet::Vacant) | None => {}
        }
    }

    /// Heap bytes held by all sets.
    pub(super) fn heap_bytes(&self) -> usize {
        let inner: usize = self
            .sets
            .iter()
            .map(|set| match set {
                ChildSet::Vacant => 0,
                ChildSet::List(list) => list.capacity() * size_of::<u32>(),
                ChildSet::Table(table) => table.slots.len() * size_of::<Slot>(),
            })
            .sum();
        self.sets.capacity() * size_of::<ChildSet>()
            + self.free.capacity() * size_of::<u32>()
            + inner
    }

    /// The number of sets in use.
    pub(super) fn live(&self) -> usize {
        self.sets.len() - self.free.len()
    }

    fn allocate(&mut self, set: ChildSet) -> Result<u32, TrieFull> {
        if let Some(at) = self.free.pop()
            && let Some(slot) = self.sets.get_mut(at as usize)
        {
            *slot = set;
            return Ok(at);
        }
        let at = u32::try_from(self.sets.len())
            .ok()
            .filter(|at| at & SET_FLAG == 0)
            .ok_or(TrieFull)?;
        self.sets.push(set);
        Ok(at)
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
        let mut sets = ChildSets::default();
        let mut handle = NO_CHILDREN;
        for c in 1..=200 {
            sets.insert(&mut handle, c, hash).unwrap();
        }
        assert!(matches!(sets.sets.first(), Some(ChildSet::Table(_))));
        for c in 1..=200 {
            assert_eq!(sets.find(handle, || hash(c), |x| x == c), Some(c));
        }
        for c in (1..=200).filter(|c| c % 3 != 0) {
            sets.remove(&mut handle, c, hash(c));
            assert_eq!(sets.find(handle, || hash(c), |x| x == c), None);
        }
        for c in (1..=200).filter(|c| c % 3 == 0) {
            assert_eq!(sets.find(handle, || hash(c), |x| x == c), Some(c));
        }
        for c in (1..=200).filter(|c| c % 3 == 0) {
            sets.remove(&mut handle, c, hash(c));
        }
        assert_eq!(handle, NO_CHILDREN);
        assert_eq!(sets.live(), 0);
    }
}
