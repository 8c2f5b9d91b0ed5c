//! Where a connection is in its life, and how it ends: one sans-IO state machine ([`Life`]) that
//! both connection paths feed, a reactor socket (plain TCP) and a connection task (TLS,
//! WebSocket). The paths only do the I/O ([`Event`]s in, [`Action`]s out) and keep the one
//! timer it asks for: a reactor on its timer heap, a connection task in a tokio `Sleep`.
//!
//! ```text
//!  Open ──broker closed──► Closing ──all written──► Draining ──client closed / drain ends──► Gone
//!   │                        │  write what is queued,   write side shut down, broker told;
//!   │                        │  input discarded;        input discarded for at most LINGER
//!   │                        │  socket full: LINGER,
//!   │                        │  again while it takes bytes
//!   └─client closed/failed───┴─client closed/failed, or LINGER without progress──► Gone (broker told)
//! ```
//!
//! Why drain: dropping a socket with unread input makes the kernel answer with a reset, which
//! can destroy the last packet (typically a DISCONNECT with its reason code) before the client
//! reads it, and makes the client's next write fail. Why [`LINGER`]: a client that neither
//! reads nor closes must not keep its connection, its queue and its reader forever.

use std::time::Instant;

use super::flow::LINGER;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading (for the broker) and writing.
    Open,
    /// The broker closed it: what is queued is written, input is discarded.
    Closing,
    /// Everything is written, the write side shut down, and the broker task knows it is gone.
    /// Input is discarded until the client closes too or the drain timer ends.
    Draining,
    /// The socket is to be dropped.
    Gone,
}

/// The closing timer a connection has running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// None.
    None,
    /// Closing with the socket full: the connection goes when it ends, unless the socket took
    /// bytes meanwhile (it then runs again).
    Linger,
    /// Draining: the connection goes when it ends, whether the client has closed or not.
    Drain,
}

/// What happened to a connection, as its path saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The broker closed the connection (or refused its bytes).
    BrokerClosed,
    /// The socket took this many bytes.
    Wrote(usize),
    /// The socket is full and bytes wait to be written.
    Blocked,
    /// Nothing is left to write (nor will be, once closing).
    AllWritten,
    /// The client closed its side, or the socket (or the broker task) failed.
    ClientClosed,
    /// This timer ended.
    Deadline(Timer),
}

/// What the path does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing more than it does.
    Nothing,
    /// Run the timer [`Life::timer`] names until this instant, then report its
    /// [`Event::Deadline`].
    Arm(Instant),
    /// Shut the write side down, tell the broker task the connection is gone, and discard the
    /// client's input until it closes or the drain timer ([`Timer::Drain`]) ends then.
    ShutDown {
        /// When the drain timer ends.
        drain_until: Instant,
    },
    /// Drop the socket; `report`: tell the broker task first (it does not know yet).
    Drop {
        /// The broker task still counts the connection as there.
        report: bool,
    },
}

/// One connection's closing state machine: its [`Phase`], the timer it runs, and whether the
/// socket took bytes since the linger timer started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Life {
    phase: Phase,
    timer: Timer,
    /// The socket took bytes since the [`Timer::Linger`] started.
    progressed: bool,
}

impl Default for Life {
    /// An open connection.
    fn default() -> Self {
        Life {
            phase: Phase::Open,
            timer: Timer::None,
            progressed: false,
        }
    }
}

impl Life {
    /// Where the connection is.
    pub(crate) fn phase(self) -> Phase {
        self.phase
    }

    /// The timer running (the one an [`Action::Arm`] or [`Action::ShutDown`] asked for).
    pub(crate) fn timer(self) -> Timer {
        self.timer
    }

    /// Whether the broker task still counts the connection as there (it is to hear of the
    /// bytes written, and of the end).
    pub(crate) fn broker_knows(self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Closing)
    }

    /// Takes `event`, seen at `now`; says what to do next.
    pub(crate) fn on(&mut self, event: Event, now: Instant) -> Action {
        match (self.phase, event) {
            (Phase::Gone, _) => Action::Nothing,
            (Phase::Open | Phase::Closing, Event::ClientClosed) => self.gone(true),
            (Phase::Draining, Event::ClientClosed) => self.gone(false),
            (Phase::Open, Event::BrokerClosed) => {
                self.phase = Phase::Closing;
                Action::Nothing
            }
            (Phase::Closing, Event::Wrote(bytes)) => {
                self.progressed |= bytes > 0 && self.timer == Timer::Linger;
                Action::Nothing
            }
            (Phase::Closing, Event::Blocked) if self.timer == Timer::None => {
                // A client that does not read gets LINGER to take the rest, not forever.
                self.timer = Timer::Linger;
                self.progressed = false;
                Action::Arm(now + LINGER)
            }
            (Phase::Closing, Event::AllWritten) => {
                self.phase = Phase::Draining;
                self.timer = Timer::Drain;
                Action::ShutDown {
                    drain_until: now + LINGER,
                }
            }
            (Phase::Closing, Event::Deadline(Timer::Linger)) if self.timer == Timer::Linger => {
                if std::mem::take(&mut self.progressed) {
                    // The client takes bytes: its LINGER starts again.
                    Action::Arm(now + LINGER)
                } else {
                    self.gone(true)
                }
            }
            (Phase::Draining, Event::Deadline(Timer::Drain)) => self.gone(false),
            _ => Action::Nothing,
        }
    }

    /// The connection is to go; `report`: the broker task is to be told.
    fn gone(&mut self, report: bool) -> Action {
        self.phase = Phase::Gone;
        self.timer = Timer::None;
        Action::Drop { report }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection the broker closed at `now`.
    fn closing(now: Instant) -> Life {
        let mut life = Life::default();
        assert_eq!(life.on(Event::BrokerClosed, now), Action::Nothing);
        assert_eq!(life.phase(), Phase::Closing);
        life
    }

    #[test]
    fn an_open_connection_ignores_writes_and_timers() {
        let now = Instant::now();
        let mut life = Life::default();
        for event in [
            Event::Wrote(10),
            Event::Blocked,
            Event::AllWritten,
            Event::Deadline(Timer::Linger),
            Event::Deadline(Timer::Drain),
        ] {
            assert_eq!(life.on(event, now), Action::Nothing, "{event:?}");
            assert_eq!(life, Life::default(), "{event:?}");
        }
        assert!(life.broker_knows());
    }

    #[test]
    fn a_client_that_leaves_an_open_connection_is_reported() {
        let mut life = Life::default();
        let action = life.on(Event::ClientClosed, Instant::now());
        assert_eq!(action, Action::Drop { report: true });
        assert_eq!(life.phase(), Phase::Gone);
    }

    #[test]
    fn the_broker_closes_then_what_is_written_is_shut_down_and_drained() {
        let now = Instant::now();
        let mut life = closing(now);
        assert!(
            life.broker_knows(),
            "the broker hears of the last bytes written"
        );
        assert_eq!(life.on(Event::BrokerClosed, now), Action::Nothing);
        let action = life.on(Event::AllWritten, now);
        assert_eq!(
            action,
            Action::ShutDown {
                drain_until: now + LINGER
            }
        );
        assert_eq!(
            (life.phase(), life.timer()),
            (Phase::Draining, Timer::Drain)
        );
        assert!(!life.broker_knows(), "the broker was told");
    }

    #[test]
    fn a_full_socket_while_closing_starts_linger_once() {
        let now = Instant::now();
        let mut life = closing(now);
        assert_eq!(life.on(Event::Blocked, now), Action::Arm(now + LINGER));
        assert_eq!(life.timer(), Timer::Linger);
        let later = now + LINGER / 2;
        assert_eq!(
            life.on(Event::Blocked, later),
            Action::Nothing,
            "runs already"
        );
    }

    #[test]
    fn linger_without_progress_drops_and_reports() {
        let now = Instant::now();
        let mut life = closing(now);
        life.on(Event::Blocked, now);
        let end = now + LINGER;
        assert_eq!(
            life.on(Event::Deadline(Timer::Linger), end),
            Action::Drop { report: true }
        );
        assert_eq!(life.phase(), Phase::Gone);
    }

    #[test]
    fn linger_runs_again_while_the_client_takes_bytes() {
        let now = Instant::now();
        let mut life = closing(now);
        life.on(Event::Blocked, now);
        assert_eq!(life.on(Event::Wrote(0), now), Action::Nothing);
        assert_eq!(life.on(Event::Wrote(5), now), Action::Nothing);
        let end = now + LINGER;
        assert_eq!(
            life.on(Event::Deadline(Timer::Linger), end),
            Action::Arm(end + LINGER)
        );
        // Nothing taken in the second LINGER: gone.
        assert_eq!(
            life.on(Event::Deadline(Timer::Linger), end + LINGER),
            Action::Drop { report: true }
        );
    }

    #[test]
    fn bytes_written_before_the_linger_do_not_extend_it() {
        let now = Instant::now();
        let mut life = closing(now);
        life.on(Event::Wrote(5), now);
        life.on(Event::Blocked, now);
        assert_eq!(
            life.on(Event::Deadline(Timer::Linger), now + LINGER),
            Action::Drop { report: true }
        );
    }

    #[test]
    fn a_client_that_leaves_while_closing_is_reported() {
        let now = Instant::now();
        let mut life = closing(now);
        life.on(Event::Blocked, now);
        assert_eq!(
            life.on(Event::ClientClosed, now),
            Action::Drop { report: true }
        );
    }

    #[test]
    fn draining_ends_when_the_client_closes_or_the_drain_timer_ends_unreported() {
        let now = Instant::now();
        let mut drained = closing(now);
        drained.on(Event::AllWritten, now);
        let mut timed_out = drained;
        assert_eq!(
            drained.on(Event::ClientClosed, now),
            Action::Drop { report: false }
        );
        assert_eq!(
            timed_out.on(Event::Deadline(Timer::Drain), now + LINGER),
            Action::Drop { report: false }
        );
        assert_eq!(timed_out.phase(), Phase::Gone);
    }

    #[test]
    fn a_stale_linger_timer_does_not_end_the_drain() {
        let now = Instant::now();
        let mut life = closing(now);
        life.on(Event::Blocked, now);
        life.on(Event::AllWritten, now);
        let before = life;
        for event in [
            Event::Deadline(Timer::Linger),
            Event::Wrote(3),
            Event::Blocked,
            Event::BrokerClosed,
            Event::AllWritten,
        ] {
            assert_eq!(life.on(event, now + LINGER), Action::Nothing, "{event:?}");
        }
        assert_eq!(life, before);
    }

    #[test]
    fn a_drain_timer_means_nothing_before_the_drain() {
        let now = Instant::now();
        let mut life = closing(now);
        life.on(Event::Blocked, now);
        assert_eq!(
            life.on(Event::Deadline(Timer::Drain), now + LINGER),
            Action::Nothing
        );
        assert_eq!(life.phase(), Phase::Closing);
    }

    #[test]
    fn nothing_happens_once_gone() {
        let now = Instant::now();
        let mut life = Life::default();
        life.on(Event::ClientClosed, now);
        for event in [
            Event::BrokerClosed,
            Event::ClientClosed,
            Event::AllWritten,
            Event::Deadline(Timer::Drain),
        ] {
            assert_eq!(life.on(event, now), Action::Nothing, "{event:?}");
        }
        assert!(!life.broker_knows());
    }
}
