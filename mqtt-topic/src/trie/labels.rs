//! Level labels: up to 12 bytes live inside the node (device ids, `SENSOR`,
//! `tele`), so comparing them touches no other memory; longer ones go to one
//! byte heap shared by the trie, referenced by offset, instead of a boxed
//! slice with its allocator overhead. Released heap bytes are garbage until
//! the owner compacts the heap, which it does once garbage outweighs the live
//! bytes (amortised O(1) per byte).

use super::hash::load_le;

/// The longest label stored inline.
const INLINE: usize = 12;

/// A label: inline bytes, or the offset of its bytes in a [`LabelHeap`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Label {
    /// The bytes when `len <= INLINE`, else the heap offset in the first four.
    bytes: [u8; INLINE],
    len: u32,
}

impl Label {
    /// The label's length in bytes.
    pub(crate) fn len(self) -> usize {
        self.len as usize
    }

    /// The comparison key of `level`, if it is short enough to be stored
    /// inline; compare it to labels with [`Label::equals_inline`].
    #[inline]
    pub(crate) fn inline_key(level: &[u8]) -> Option<InlineKey> {
        if level.len() > INLINE {
            return None;
        }
        let (low, high) = level.split_at(level.len().min(8));
        Some(InlineKey {
            low: load_le(low),
            high: load_le(high) as u32,
            len: level.len(),
        })
    }

    /// Whether this label equals the level `key` was made from: integer
    /// comparisons only, no call to memcmp.
    #[inline]
    pub(crate) fn equals_inline(&self, key: &InlineKey) -> bool {
        let [a, b, c, d, e, f, g, h, i, j, k, l] = self.bytes;
        self.len() == key.len
            && u64::from_le_bytes([a, b, c, d, e, f, g, h]) == key.low
            && u32::from_le_bytes([i, j, k, l]) == key.high
    }

    fn is_inline(self) -> bool {
        self.len() <= INLINE
    }

    fn offset(self) -> usize {
        let [a, b, c, d, ..] = self.bytes;
        u32::from_le_bytes([a, b, c, d]) as usize
    }
}

/// A short level packed into integers, to compare against inline labels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InlineKey {
    low: u64,
    high: u32,
    len: usize,
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
        let len = u32::try_from(label.len()).map_err(|_| HeapFull)?;
        let mut bytes = [0u8; INLINE];
        if label.len() <= INLINE {
            bytes
                .iter_mut()
                .zip(label)
                .for_each(|(to, from)| *to = *from);
            return Ok(Label { bytes, len });
        }
        let offset = u32::try_from(self.bytes.len()).map_err(|_| HeapFull)?;
        offset.checked_add(len).ok_or(HeapFull)?;
        bytes
            .iter_mut()
            .zip(offset.to_le_bytes())
            .for_each(|(to, from)| *to = from);
        self.bytes.extend_from_slice(label);
        self.live += label.len();
        Ok(Label { bytes, len })
    }

    /// The bytes of `label`.
    #[inline]
    pub(crate) fn get<'a>(&'a self, label: &'a Label) -> &'a [u8] {
        if label.is_inline() {
            return label.bytes.get(..label.len()).unwrap_or_default();
        }
        let start = label.offset();
        self.bytes
            .get(start..start + label.len())
            .unwrap_or_default()
    }

    /// Marks `label` as garbage.
    pub(crate) fn release(&mut self, label: Label) {
        if !label.is_inline() {
            self.live -= label.len();
        }
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
        for label in live.filter(|label| !label.is_inline()) {
            // The fresh heap is never larger than the old one, so this fits.
            if let Ok(moved) = fresh.push(self.get(label)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_keys_compare_like_bytes_for_every_length() {
        let mut heap = LabelHeap::default();
        let source = b"abcdefghijklmnop";
        for len in 0..=INLINE {
            let label = heap.push(&source[..len]).unwrap();
            assert_eq!(heap.get(&label), &source[..len]);
            for other in 0..=INLINE {
                let key = Label::inline_key(&source[..other]).unwrap();
                assert_eq!(label.equals_inline(&key), len == other, "{len} vs {other}");
            }
            let mut changed = source[..len].to_vec();
            if let Some(last) = changed.last_mut() {
                *last = b'Z';
                assert!(!label.equals_inline(&Label::inline_key(&changed).unwrap()));
            }
        }
        assert!(Label::inline_key(&source[..=INLINE]).is_none());
        let long = heap.push(&source[..=INLINE]).unwrap();
        assert_eq!(heap.get(&long), &source[..=INLINE]);
    }
}
