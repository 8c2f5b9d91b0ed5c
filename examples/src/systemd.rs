//! systemd's notify protocol (sd_notify(3)), spoken directly: one datagram per state change to
//! the Unix socket named by `$NOTIFY_SOCKET` (a path, or an abstract name after `@`). With
//! `Type=notify` (or `notify-reload`) a unit learns that the broker is ready only once its
//! listeners accept connections, that a SIGHUP reload runs, and that it is stopping. Without
//! `$NOTIFY_SOCKET` every call does nothing.

use std::os::unix::net::UnixDatagram;

use tokio::signal::unix::{SignalKind, signal};
use tracing::debug;

/// Where state changes go, if a service manager listens.
pub struct Notifier {
    target: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for, if any.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|name| {
            let name = name.to_string_lossy().into_owned();
            let address = match name.strip_prefix('@') {
                Some(abstract_name) => {
                    use std::os::linux::net::SocketAddrExt as _;
                    std::os::unix::net::SocketAddr::from_abstract_name(abstract_name).ok()?
                }
                None => std::os::unix::net::SocketAddr::from_pathname(&name).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, address))
        });
        Notifier { target }
    }

    /// Sends `state` (lines of `KEY=VALUE`); a manager that is gone is not an error.
    pub fn send(&self, state: &str) {
        if let Some((socket, address)) = &self.target
            && let Err(error) = socket.send_to_addr(state.as_bytes(), address)
        {
            debug!(%error, state, "service manager notification not sent");
        }
    }

    /// Tells the manager that the broker serves (its listeners are bound, and the server's own
    /// signal handlers installed), then returns what tells it of every reload (SIGHUP:
    /// `RELOADING=1` with the monotonic time `Type=notify-reload` wants, then `READY=1` once it
    /// is handed on) and of the stop (SIGTERM or SIGINT: `STOPPING=1`), until the process ends.
    /// The handlers are installed before `READY=1` goes out, so a signal the manager sends
    /// right after it is not missed. Call it inside the runtime.
    pub fn ready_then_follow_signals(self) -> impl Future<Output = ()> {
        let signals = self.target.is_some().then(|| {
            (
                signal(SignalKind::hangup()),
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            )
        });
        self.send(&format!("READY=1\nMAINPID={}", std::process::id()));
        async move {
            let Some((Ok(mut hangup), Ok(mut terminate), Ok(mut interrupt))) = signals else {
                return;
            };
            loop {
                tokio::select! {
                    Some(()) = hangup.recv() => {
                        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
                        // The server reloads on the same signal; the files are read by then.
                        tokio::task::yield_now().await;
                        self.send("READY=1");
                    }
                    Some(()) = terminate.recv() => self.send("STOPPING=1"),
                    Some(()) = interrupt.recv() => self.send("STOPPING=1"),
                    else => return,
                }
            }
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, as systemd compares it.
fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        let seconds = u64::try_from(t.tv_sec()).unwrap_or(0);
        let micros = u64::try_from(t.tv_nsec()).unwrap_or(0) / 1000;
        seconds * 1_000_000 + micros
    })
}
