//! What the broker task handed to one connection and its writer has not taken yet: the
//! adapter's side of the outbox, the same type on both connection paths (a reactor socket
//! owns one, a connection task's [`WriteQueue`](super::write_queue::WriteQueue) one behind
//! its lock).
//!
//! Outbox bytes are bounded once, by the core: `Conn.outbox` counts the bytes it handed out
//! (`Output::Transmit`) and has not seen reported written (`Input::Flushed`), stops handing
//! out QoS 0 and queued QoS 1/2 past `max_outbox_bytes` and closes a client that does not
//! read past twice that. The bytes waiting here are a part of those (handed out, not yet
//! written), so the adapter needs no flow control of its own: nothing here pauses, resumes or
//! reports anything. What it keeps is the chunks, and their byte count only for one guard
//! against a core that overshoots its own bound: [`Outbox::push`] refuses chunks that would
//! take the waiting bytes past a hard cap (twice `max_outbox_bytes` and 64 KiB, set in
//! `Server::start`), and the connection is closed rather than memory grown. The rule lives
//! here only; neither path counts the bytes again.
//!
//! Bytes leave the outbox when the writer takes them: a reactor as the socket takes them
//! ([`Outbox::consume`]), a connection task a batch at a time ([`Outbox::take`]), which it
//! then writes at the socket's pace.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf as _, Bytes};

/// Most chunks handed to one vectored write (Linux's `IOV_MAX`): fewer, larger writes cost
/// the kernel fewer system calls and fewer TCP segments per message.
pub(crate) const MAX_BATCH_CHUNKS: usize = 1024;

/// The chunks waiting for one connection's writer, in order, and their byte count.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Chunks not yet taken; the first may be partly written (its front is cut off).
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    bytes: usize,
}

impl Outbox {
    /// Appends `chunks` (empty ones dropped); `false`, nothing appended, when the waiting bytes
    /// would pass `cap`. An empty outbox takes the vector's buffer as it is.
    pub(crate) fn push(&mut self, chunks: Vec<Bytes>, cap: usize) -> bool {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let Some(total) = self.bytes.checked_add(len).filter(|&total| total <= cap) else {
            return false;
        };
        self.bytes = total;
        let chunks = chunks.into_iter().filter(|c| !c.is_empty());
        if self.chunks.is_empty() {
            self.chunks = chunks.collect();
        } else {
            self.chunks.extend(chunks);
        }
        true
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The front chunks (at most [`MAX_BATCH_CHUNKS`]) as slices for one vectored write.
    pub(crate) fn front_slices(&self) -> Vec<IoSlice<'_>> {
        (self.chunks.iter())
            .take(MAX_BATCH_CHUNKS)
            .map(|chunk| IoSlice::new(chunk))
            .collect()
    }

    /// Drops `written` bytes from the front: the socket took them.
    pub(crate) fn consume(&mut self, mut written: usize) {
        self.bytes = self.bytes.saturating_sub(written);
        while let Some(front) = self.chunks.front_mut() {
            if front.len() > written {
                front.advance(written);
                break;
            }
            written -= front.len();
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            self.chunks = VecDeque::new(); // an idle connection holds no buffer
        }
    }

    /// Moves the front chunks (at most [`MAX_BATCH_CHUNKS`] in all) into `batch` for the
    /// writer. When all of it fits into an empty batch, the outbox's buffer becomes the batch,
    /// so an idle outbox holds no buffer.
    pub(crate) fn take(&mut self, batch: &mut Vec<Bytes>) {
        let before = batch.len();
        if batch.is_empty() && self.chunks.len() <= MAX_BATCH_CHUNKS {
            *batch = Vec::from(std::mem::take(&mut self.chunks));
        } else {
            let take = self.chunks.len().min(MAX_BATCH_CHUNKS);
            batch.extend(self.chunks.drain(..take));
        }
        let taken: usize = batch[before..].iter().map(Bytes::len).sum();
        self.bytes = self.bytes.saturating_sub(taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn the_cap_refuses_what_would_pass_it_and_room_comes_back_as_bytes_leave() {
        let mut outbox = Outbox::default();
        assert!(outbox.push(vec![chunk("abc")], 4));
        assert!(!outbox.push(vec![chunk("de")], 4), "5 bytes would pass 4");
        assert!(outbox.push(vec![chunk("d")], 4), "4 bytes are within 4");
        outbox.consume(2);
        assert!(outbox.push(vec![chunk("ef")], 4));
        let mut batch = Vec::new();
        outbox.take(&mut batch);
        assert_eq!(batch, vec![chunk("c"), chunk("d"), chunk("ef")]);
        assert!(outbox.is_empty());
        assert!(
            outbox.push(vec![chunk("ghij")], 4),
            "taken bytes are the writer's"
        );
    }

    #[test]
    fn consume_cuts_the_front_and_empty_chunks_are_dropped() {
        let mut outbox = Outbox::default();
        assert!(outbox.push(vec![chunk("ab"), Bytes::new(), chunk("cde")], 100));
        assert_eq!(outbox.front_slices().len(), 2);
        outbox.consume(3);
        let rest: Vec<Vec<u8>> = outbox.front_slices().iter().map(|s| s.to_vec()).collect();
        assert_eq!(rest, vec![b"de".to_vec()]);
        outbox.consume(2);
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_batch_takes_at_most_max_batch_chunks() {
        let mut outbox = Outbox::default();
        let many = vec![chunk("x"); MAX_BATCH_CHUNKS + 1];
        assert!(outbox.push(many, usize::MAX));
        let mut batch = Vec::new();
        outbox.take(&mut batch);
        assert_eq!(batch.len(), MAX_BATCH_CHUNKS);
        assert!(!outbox.is_empty());
        assert!(
            outbox.push(vec![chunk("y")], MAX_BATCH_CHUNKS + 1),
            "one left, one more"
        );
        assert!(!outbox.push(vec![chunk("z")], 2));
    }
}
