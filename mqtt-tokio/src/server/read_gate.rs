//! One connection reader's flow control. The broker task closes the gate to stop the reader
//! and opens it again (`Output::PauseReading` / `Output::ResumeReading`): while it is closed
//! the reader does not read, so TCP flow control slows the publisher down instead of its
//! messages piling up in a subscriber's queue. And the reader has at most [`INPUT_CREDIT`](super::flow::INPUT_CREDIT)
//! bytes handed to the broker task and not yet handled, counted by the same
//! [`InputCredit`] as a reactor socket's (see `flow`): the shared input channel is first come,
//! first served, so without this one client flooding it could queue megabytes ahead of every
//! other client's next packet.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use super::flow::InputCredit;

/// Open unless paused; shared by the broker task (which flips it and hands credit back) and
/// one reader (which waits and spends credit).
#[derive(Debug, Default)]
pub(crate) struct ReadGate {
    paused: AtomicBool,
    resumed: Notify,
    /// The reader's input credit: the same accounting as a reactor socket's.
    credit: Mutex<InputCredit>,
    /// Credit was handed back (a reader waiting in [`ReadGate::spend`] looks again).
    credited: Notify,
}

impl ReadGate {
    /// Takes credit for a read of `len` bytes at once if there is enough (see
    /// [`InputCredit::try_spend`]).
    pub(crate) fn try_spend(&self, len: usize) -> Option<u32> {
        self.credit.lock().ok()?.try_spend(len)
    }

    /// Takes credit for a read of `len` bytes (a read larger than the whole credit takes all
    /// of it), waiting until the broker task has handled enough earlier reads. Returns how
    /// much was taken, to be handed back with [`ReadGate::give_back`].
    pub(crate) async fn spend(&self, len: usize) -> u32 {
        loop {
            let credited = self.credited.notified();
            tokio::pin!(credited);
            credited.as_mut().enable(); // registered before the look: no lost wake-up
            if let Some(taken) = self.try_spend(len) {
                return taken;
            }
            credited.await;
        }
    }

    /// Returns credit taken by [`ReadGate::spend`] once the broker task has handled the bytes.
    pub(crate) fn give_back(&self, credit: u32) {
        if let Ok(mut left) = self.credit.lock() {
            left.give_back(credit);
        }
        // One reader: a permit stored while it is not waiting only makes it look once more.
        self.credited.notify_one();
    }

    /// The reader waits before its next read.
    pub(crate) fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// The reader may read again.
    pub(crate) fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.resumed.notify_waiters();
    }

    /// Whether the broker has paused the reader.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Returns once the gate is open.
    pub(crate) async fn open(&self) {
        loop {
            let resumed = self.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable(); // registered before the check: no lost wake-up
            if !self.paused.load(Ordering::SeqCst) {
                return;
            }
            resumed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::flow::INPUT_CREDIT;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_reader_waits_for_credit_the_broker_gives_back() {
        let gate = Arc::new(ReadGate::default());
        assert_eq!(gate.spend(INPUT_CREDIT * 2).await as usize, INPUT_CREDIT);
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.spend(10).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "no credit left");
        gate.give_back(INPUT_CREDIT as u32);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap();
        assert_eq!(got.unwrap(), 10);
    }

    #[tokio::test]
    async fn a_paused_gate_opens_on_resume() {
        let gate = Arc::new(ReadGate::default());
        gate.open().await; // open by default
        gate.pause();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.open().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "paused gate holds the reader");
        gate.resume();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
