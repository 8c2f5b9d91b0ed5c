//! The flow control of a connection, one design for both connection paths, the reactor (plain
//! TCP, `mio`) and the task per connection (TLS, WebSocket, tokio `AsyncRead`/`AsyncWrite`).
//! Each path keeps only its I/O and its timer (a reactor's heap, a task's `Sleep`); the rules
//! are these types, used by both:
//!
//! - input: a reader has at most [`INPUT_CREDIT`] bytes handed to the broker task and not yet
//!   handled, counted by one [`InputCredit`] (a reactor socket's own, a task's in its
//!   [`ReadGate`](super::read_gate::ReadGate)); each read takes credit and carries it as a
//!   [`Credit`] beside its bytes, and the broker task hands it back once it has handled the
//!   read (the core may keep views into the bytes for longer: they are bounded by the core's
//!   outbox and queue limits instead);
//! - backpressure: the broker task pauses and resumes a reader (`Output::PauseReading` /
//!   `Output::ResumeReading`);
//! - output: what the broker hands a connection waits for its writer in one
//!   [`Outbox`](super::outbox::Outbox), whose bytes the core bounds and the outbox only guards
//!   against a core overshooting (see [`outbox`](super::outbox));
//! - the end: one closing state machine, [`Life`](super::closing::Life): a connection the
//!   broker closed writes what is queued (while the client takes bytes at least every
//!   [`LINGER`]), shuts its write side down and drains the client's input for at most
//!   [`LINGER`].

use std::time::Duration;

/// Bytes one connection may have in the broker task's input channel, not yet handled: one
/// read. Under a flood, another client's packet then waits behind at most this much per
/// flooder (measured: probe p99 ~30 ms in a debug build instead of seconds).
pub(crate) const INPUT_CREDIT: usize = 16 * 1024;

/// How long a connection the broker closed keeps draining the client's input.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// The input credit one reader has left: the accounting both paths use (the reactor keeps one
/// per socket, a connection task's [`ReadGate`](super::read_gate::ReadGate) one behind a lock).
/// A read takes credit for its bytes ([`InputCredit::try_spend`]), a read larger than the whole
/// credit takes all of it, and the broker task hands it back through the read's [`Credit`]
/// ([`InputCredit::give_back`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InputCredit {
    left: u32,
}

/// [`INPUT_CREDIT`] as the counter's type.
const FULL_CREDIT: u32 = if INPUT_CREDIT > u32::MAX as usize {
    u32::MAX
} else {
    INPUT_CREDIT as u32
};

impl Default for InputCredit {
    /// The whole credit: nothing handed over yet.
    fn default() -> Self {
        InputCredit { left: FULL_CREDIT }
    }
}

impl InputCredit {
    /// The most bytes a read may take now (a reader that sizes its reads reads no more).
    pub(crate) fn left(self) -> usize {
        self.left as usize
    }

    /// Takes the credit a read of `len` bytes needs (a read larger than the whole credit takes
    /// all of it); `None`, nothing taken, while less than that is left.
    pub(crate) fn try_spend(&mut self, len: usize) -> Option<u32> {
        let want = u32::try_from(len.min(INPUT_CREDIT)).unwrap_or(FULL_CREDIT);
        self.left = self.left.checked_sub(want)?;
        Some(want)
    }

    /// Takes back credit the broker task handed back (never more than the whole credit).
    pub(crate) fn give_back(&mut self, amount: u32) {
        self.left = self.left.saturating_add(amount).min(FULL_CREDIT);
    }
}

/// The input credit a read took from its connection's reader, handed back when dropped: by the
/// broker task once it has handled the read, however long the core keeps views of its bytes
/// (a QoS 0 message waiting in a slow subscriber's outbox must not hold its publisher's reads).
pub(crate) struct Credit(Option<Box<dyn FnOnce() + Send>>);

impl Credit {
    /// Credit that `give_back` returns.
    pub(crate) fn new(give_back: impl FnOnce() + Send + 'static) -> Self {
        Credit(Some(Box::new(give_back)))
    }

    /// No credit (a reader without a gate, such as an in-process client).
    pub(crate) fn none() -> Self {
        Credit(None)
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        if let Some(give_back) = self.0.take() {
            give_back();
        }
    }
}

impl std::fmt::Debug for Credit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Credit"
        } else {
            "Credit(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spend_the_credit_and_get_it_back() {
        let mut credit = InputCredit::default();
        assert_eq!(credit.left(), INPUT_CREDIT);
        assert_eq!(credit.try_spend(100), Some(100));
        assert_eq!(credit.left(), INPUT_CREDIT - 100);
        assert_eq!(
            credit.try_spend(INPUT_CREDIT),
            None,
            "not enough left: nothing taken"
        );
        assert_eq!(credit.left(), INPUT_CREDIT - 100);
        credit.give_back(100);
        assert_eq!(credit.left(), INPUT_CREDIT);
    }

    #[test]
    fn a_read_larger_than_the_credit_takes_all_of_it() {
        let mut credit = InputCredit::default();
        assert_eq!(
            credit.try_spend(3 * INPUT_CREDIT),
            Some(INPUT_CREDIT as u32)
        );
        assert_eq!(credit.left(), 0);
        assert_eq!(credit.try_spend(1), None);
        assert_eq!(credit.try_spend(0), Some(0), "an empty read costs nothing");
    }

    #[test]
    fn credit_never_grows_past_the_whole() {
        let mut credit = InputCredit::default();
        credit.give_back(u32::MAX);
        assert_eq!(credit.left(), INPUT_CREDIT);
    }
}
