//! The switch the broker task uses to stop and restart one connection's reader
//! (`Output::PauseReading` / `Output::ResumeReading`): while it is closed the reader does not
//! read, so TCP flow control slows the publisher down instead of its messages piling up in a
//! subscriber's queue.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Open unless paused; shared by the broker task (which flips it) and one reader (which waits).
#[derive(Debug, Default)]
pub(crate) struct ReadGate {
    paused: AtomicBool,
    resumed: Notify,
}

impl ReadGate {
    /// The reader waits before its next read.
    pub(crate) fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// The reader may read again.
    pub(crate) fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.resumed.notify_waiters();
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
    use std::sync::Arc;
    use std::time::Duration;

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
