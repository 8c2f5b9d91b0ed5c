//! Flow control that both connection paths share, the reactor (plain TCP) and the task per
//! connection (TLS, WebSocket):
//!
//! - a reader has at most [`INPUT_CREDIT`] bytes handed to the broker task and not yet
//!   handled; each read takes credit and carries it as a [`Credit`] beside its bytes, and the
//!   broker task hands it back once it has handled the read (the core may keep views into the
//!   bytes for longer: they are bounded by the core's outbox and queue limits instead);
//! - the broker task pauses and resumes a reader (`Output::PauseReading` /
//!   `Output::ResumeReading`) for backpressure;
//! - a connection the broker closed writes what is queued and drains the client's input for at
//!   most [`LINGER`].

use std::time::Duration;

/// Bytes one connection may have in the broker task's input channel, not yet handled: one
/// read. Under a flood, another client's packet then waits behind at most this much per
/// flooder (measured: probe p99 ~30 ms in a debug build instead of seconds).
pub(crate) const INPUT_CREDIT: usize = 16 * 1024;

/// How long a connection the broker closed keeps draining the client's input.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

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
