//! One byte heap holding every node's level label, so a node stores an
//! 8-byte reference instead of a boxed slice with its allocator overhead.
//! Released bytes are garbage until the owner compacts the heap, which it
//! does once garbage outweighs the live bytes (amortised O(1) per byte).

/// A reference to a label in a [`LabelHeap`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Label {
    offset: u32,
    len: u32,
}

impl Label {
    /// The label's length in bytes.
    pub(crate) fn len(self) -> usize {
        self.len as usize
    }
}

/// The heap is full: more than 4 GiB of labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeapFull;

/// The byte heap of labels.
#[derive(Debug, Default)]
pub(crate) struct LabelHeap {
    bytes: Vec<u8>,
    live: usize,
}

/// Below this many garbage bytes the heap is never compacted.
const COMPACT_MIN_GARBAGE: usize = 64 * 1024;

impl LabelHeap {
    /// Copies `label` into the heap.
    pub(crate) fn push(&mut self, label: &[u8]) -> Result<Label, HeapFull> {
        let offset = u32::try_from(self.bytes.len()).map_err(|_| HeapFull)?;
        let len = u32::try_from(label.len()).map_err(|_| HeapFull)?;
        offset.checked_add(len).ok_or(HeapFull)?;
        self.bytes.extend_from_slice(label);
        self.live += label.len();
        Ok(Label { offset, len })
    }

    /// The bytes of `label`.
    #[inline]
    pub(crate) fn get(&self, label: Label) -> &[u8] {
        let start = label.offset as usize;
        self.bytes
            .get(start..start + label.len as usize)
            .unwrap_or_default()
    }

    /// Marks `label` as garbage.
    pub(crate) fn release(&mut self, label: Label) {
        self.live -= label.len();
    }

    /// Whether garbage outweighs live bytes enough to compact.
    pub(crate) fn wants_compaction(&self) -> bool {
        let garbage = self.bytes.len() - self.live;
        garbage > COMPACT_MIN_GARBAGE && garbage > self.live
    }

    /// Rebuilds the heap from the live labels, rewriting each in place.
    pub(crate) fn compact<'a>(&mut self, live: impl Iterator<Item = &'a mut Label>) {
        let mut fresh = Self {
            bytes: Vec::with_capacity(self.live),
            live: 0,
        };
        for label in live {
            let bytes = self.get(*label);
            // The fresh heap is never larger than the old one, so this fits.
            if let Ok(moved) = fresh.push(bytes) {
                *label = moved;
            }
        }
        *self = fresh;
    }

    /// Frees everything (the trie became empty).
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Bytes held, live or garbage.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.bytes.capacity()
    }
}
