//! The broker's events for the application: a bounded broadcast fed by the broker task.
//!
//! The broker task never waits on a subscriber: the broadcast keeps the last
//! `capacity` events, a receiver that falls further behind loses the oldest ones (and is told
//! how many), and memory stays bounded whatever the receivers do. While no receiver exists the
//! broker task only reads one atomic counter per event: nothing is cloned or locked.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use mqtt_broker_core::Event;
use tokio::sync::broadcast;

pub use tokio::sync::broadcast::error::RecvError as EventRecvError;

/// Events kept for receivers when [`ServerBuilder::event_capacity`](super::ServerBuilder::event_capacity)
/// is not called.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// The sending side, owned by the broker task ([`ServerHandle`](super::ServerHandle)s hold a
/// weak reference, so that receivers see the end of the stream when the broker task ends).
pub(crate) struct EventHub {
    sender: broadcast::Sender<Event>,
    /// Live [`Events`] receivers; the broker task skips the broadcast while it is zero.
    receivers: Arc<AtomicUsize>,
}

impl fmt::Debug for EventHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHub")
            .field("receivers", &self.receivers.load(Ordering::Relaxed))
            .finish()
    }
}

impl EventHub {
    /// A hub keeping at most `capacity` (at least 1) events for slow receivers.
    pub(crate) fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventHub {
            sender,
            receivers: Arc::default(),
        }
    }

    /// Hands `event` to the receivers, if there are any; never waits.
    pub(crate) fn publish(&self, event: Event) {
        if self.receivers.load(Ordering::Relaxed) > 0 {
            // An error only means the last receiver went away meanwhile.
            let _ = self.sender.send(event);
        }
    }

    /// A new receiver of the events published from now on; one that is already at its end
    /// when the hub is gone (the server has stopped).
    pub(crate) fn subscribe(hub: &Weak<Self>) -> Events {
        match hub.upgrade() {
            Some(hub) => {
                hub.receivers.fetch_add(1, Ordering::Relaxed);
                Events {
                    receiver: hub.sender.subscribe(),
                    receivers: hub.receivers.clone(),
                }
            }
            None => {
                let (sender, receiver) = broadcast::channel(1);
                drop(sender);
                Events {
                    receiver,
                    receivers: Arc::new(AtomicUsize::new(1)),
                }
            }
        }
    }
}

/// A receiver of the broker's [`Event`]s (clients connecting and disconnecting, refusals,
/// protocol errors, dropped messages, retained changes...), made by
/// [`ServerHandle::subscribe_events`](super::ServerHandle::subscribe_events).
///
/// It sees the events published after it was made. It holds at most the server's event
/// capacity: a receiver that falls further behind gets [`EventRecvError::Lagged`] with the
/// number of events it missed, then the oldest event still kept. The broker never waits for it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mqtt_tokio::mqtt_broker_core::Event;
/// use mqtt_tokio::{LocalConnectOptions, Server};
///
/// let config = mqtt_tokio::config::parse_toml(
///     "[[listener]]\nport = 0\nbind_address = \"127.0.0.1\"\nallow_anonymous = true\n",
/// )?;
/// let server = Server::builder(config).start().await?;
/// let mut events = server.handle().subscribe_events();
/// let client = server.handle().connect("watched", LocalConnectOptions::new()).await?;
/// match events.recv().await? {
///     Event::ClientConnected { client_id, .. } => assert_eq!(&*client_id, "watched"),
///     other => panic!("unexpected {other:?}"),
/// }
/// client.disconnect().await?;
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Events {
    receiver: broadcast::Receiver<Event>,
    /// The hub's count of live receivers, which this one is part of.
    receivers: Arc<AtomicUsize>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("waiting", &self.receiver.len())
            .finish()
    }
}

impl Events {
    /// The next event.
    ///
    /// # Errors
    /// [`EventRecvError::Lagged`] when events were lost because this receiver fell behind by
    /// more than the capacity (the next call returns the oldest event kept);
    /// [`EventRecvError::Closed`] once the server has stopped and every event was taken.
    pub async fn recv(&mut self) -> Result<Event, EventRecvError> {
        self.receiver.recv().await
    }

    /// The next event if one is waiting, without waiting.
    ///
    /// # Errors
    /// As [`Events::recv`], plus `TryRecvError::Empty` when none is waiting.
    pub fn try_recv(&mut self) -> Result<Event, broadcast::error::TryRecvError> {
        self.receiver.try_recv()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.receivers.fetch_sub(1, Ordering::Relaxed);
    }
}
