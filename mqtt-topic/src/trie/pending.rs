//! A stack of branches still to explore during a walk. The first eight
//! entries live inline, so an ordinary lookup allocates nothing; deeper
//! wildcard nesting spills to the heap instead of recursing.

/// How many entries live inline.
const INLINE: usize = 8;

/// A LIFO stack with inline storage.
pub(crate) struct Pending<T: Copy + Default> {
    inline: [T; INLINE],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy + Default> Pending<T> {
    /// An empty stack; allocates nothing.
    pub(crate) fn new() -> Self {
        Self {
            inline: [T::default(); INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Pushes an entry.
    #[inline]
    pub(crate) fn push(&mut self, item: T) {
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = item;
                self.len += 1;
            }
            None => self.spill.push(item),
        }
    }

    /// Pops the latest entry.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        self.len = self.len.checked_sub(1)?;
        self.inline.get(self.len).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_lifo_across_the_spill() {
        let mut stack = Pending::new();
        for i in 0..40u32 {
            stack.push(i);
        }
        for i in (0..40u32).rev() {
            assert_eq!(stack.pop(), Some(i));
        }
        assert_eq!(stack.pop(), None);
    }
}
