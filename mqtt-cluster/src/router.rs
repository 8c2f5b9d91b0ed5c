//! The router task: moves messages between this node's broker and NATS.
//!
//! Out: each message published here goes, as a [`frame`], to the subject of its
//! topic ([`message_subject`]); with no subscription anywhere NATS drops it at once. A retained
//! one also goes to the retained bucket. In: for each filter this broker has subscribers for,
//! a NATS subscription per subject of the filter ([`filter_subjects`]): plain filters with a
//! plain subscription, `$share/{ShareName}/{filter}` with a queue subscription named after the
//! whole shared filter, so NATS hands each message to one node per group. What arrives on a
//! plain subscription goes to this broker's plain subscriptions once (see [`Dedup`]), unless
//! it was published here; what arrives on a queue subscription goes to one member of that
//! group here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_nats::Client;
use bytes::Bytes;
use futures_util::StreamExt;
use mqtt_broker_core::Message;
use mqtt_tokio::{ClusterOutput, ClusterOutputs, ServerHandle};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::dedup::Dedup;
use crate::frame::{self, Origin};
use crate::owners;
use crate::pressure;
use crate::retained::Writer;
use crate::status::Status;
use crate::subject::{filter_subjects, message_subject, queue_group, split_shared};

/// Copies from NATS waiting for this task before the subscriptions' own buffers fill.
const INCOMING: usize = 8192;
/// Every this many messages handed to the broker, the receiver waits until the broker routed
/// the one before: at most twice this many are on their way into the broker, so that when a
/// subscriber here falls behind and its broker pauses the cluster, few arrive after the pause
/// (within the subscriber queue's headroom above the mark that paused it).
const TRACK_EVERY: u64 = 64;

/// One message from a NATS subscription: its frame, and the shared filter it came for.
struct Incoming {
    frame: Bytes,
    shared: Option<Arc<str>>,
}

/// The router's parts.
pub struct Router {
    pub(crate) client: Client,
    pub(crate) prefix: String,
    pub(crate) incarnation: u64,
    pub(crate) handle: ServerHandle,
    pub(crate) status: Arc<Status>,
    pub(crate) retained: Writer,
    pub(crate) owners: mpsc::UnboundedSender<owners::Change>,
    /// This node's name, for its backpressure announcements.
    pub(crate) node: String,
}

impl Router {
    /// Runs until the server stops.
    pub async fn run(self, mut outputs: ClusterOutputs) {
        let (incoming_tx, incoming) = mpsc::channel::<Incoming>(INCOMING);
        // Backpressure across nodes (see `pressure`): the broker's pause of the cluster is
        // announced, and the messages from NATS wait meanwhile.
        let (behind, behind_rx) = pressure::Behind::new();
        let behind = Arc::new(behind);
        let (hold_tx, hold) = watch::channel(false);
        let announcing = tokio::spawn(pressure::announce(
            self.client.clone(),
            format!("{}.pressure.{}", self.prefix, self.node),
            behind_rx,
        ));
        // The two directions are tasks of their own: handing a message to the broker (which
        // may wait for room) never holds up what the broker hands out, nor the other way.
        let mut receiver = Receiver {
            incarnation: self.incarnation,
            handle: self.handle.clone(),
            status: Arc::clone(&self.status),
            dedup: Dedup::default(),
            hold,
            handed: 0,
            routed: None,
            behind: Arc::clone(&behind),
        };
        let receiving = tokio::spawn(async move { receiver.run(incoming).await });
        let mut state = State {
            router: self,
            subscriptions: HashMap::new(),
            incoming: incoming_tx,
            seq: 0,
            behind,
            hold: hold_tx,
        };
        while let Some(output) = outputs.recv().await {
            state.output(output).await;
        }
        receiving.abort();
        announcing.abort();
        state
            .subscriptions
            .values()
            .flatten()
            .for_each(JoinHandle::abort);
    }
}

/// The sending side: what the broker hands out, to NATS.
struct State {
    router: Router,
    /// The forwarding tasks of each filter's NATS subscriptions.
    subscriptions: HashMap<Arc<str>, Vec<JoinHandle<()>>>,
    incoming: mpsc::Sender<Incoming>,
    /// Messages sent from this incarnation.
    seq: u64,
    /// Whether this node is behind.
    behind: Arc<pressure::Behind>,
    /// Whether the receiver holds the messages from NATS (the broker paused the cluster).
    hold: watch::Sender<bool>,
}

/// The receiving side: copies from NATS, to the broker.
struct Receiver {
    incarnation: u64,
    handle: ServerHandle,
    status: Arc<Status>,
    dedup: Dedup,
    /// While set, the messages from NATS wait (a subscriber here is behind).
    hold: watch::Receiver<bool>,
    /// Messages handed to the broker.
    handed: u64,
    /// Told when the last tracked one was routed.
    routed: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Whether this node is behind (set here when the messages from NATS pile up).
    behind: Arc<pressure::Behind>,
}

impl State {
    async fn output(&mut self, output: ClusterOutput) {
        match output {
            ClusterOutput::Forward(message) => self.forward(&message).await,
            ClusterOutput::Interest { filter, present } => {
                if present {
                    self.subscribe(filter).await;
                } else if let Some(tasks) = self.subscriptions.remove(&filter) {
                    // Dropping a subscriber unsubscribes it on NATS.
                    tasks.iter().for_each(JoinHandle::abort);
                }
            }
            ClusterOutput::Admit {
                conn,
                client_id,
                clean_start,
            } => {
                let _ = self.router.owners.send(owners::Change::Admit {
                    conn,
                    client_id,
                    clean_start,
                });
            }
            ClusterOutput::SessionEnded { client_id } => {
                let _ = self.router.owners.send(owners::Change::Ended(client_id));
            }
            ClusterOutput::Pressure { behind } => {
                let _ = self.hold.send(behind);
                self.behind.broker(behind);
            }
            _ => {}
        }
    }

    async fn forward(&mut self, message: &Message) {
        self.seq += 1;
        let origin = Origin {
            node: self.router.incarnation,
            seq: self.seq,
        };
        let frame = match frame::encode(message, origin, SystemTime::now()) {
            Ok(frame) => frame,
            Err(error) => {
                self.router.status.forward_failed();
                warn!(topic = %message.topic, %error, "message not sent to the cluster");
                return;
            }
        };
        if message.retain {
            self.router.retained.write(message, frame.clone()).await;
        }
        let subject = message_subject(&self.router.prefix, message.topic.as_str());
        match self.router.client.publish(subject, frame).await {
            Ok(()) => self.router.status.forwarded(),
            Err(error) => {
                self.router.status.forward_failed();
                warn!(topic = %message.topic, %error, "message not sent to the cluster");
            }
        }
    }

    /// Subscribes on NATS for `filter`, one forwarding task per subject.
    async fn subscribe(&mut self, filter: Arc<str>) {
        let (plain, queue) = match split_shared(&filter) {
            Some((_, plain)) => (plain, Some(queue_group(&filter))),
            None => (&*filter, None),
        };
        let mut tasks = Vec::new();
        for subject in filter_subjects(&self.router.prefix, plain) {
            let subscribed = match &queue {
                Some(queue) => {
                    self.router
                        .client
                        .queue_subscribe(subject.clone(), queue.clone())
                        .await
                }
                None => self.router.client.subscribe(subject.clone()).await,
            };
            let mut subscriber = match subscribed {
                Ok(subscriber) => subscriber,
                Err(error) => {
                    warn!(%filter, subject, %error, "cannot subscribe on NATS");
                    continue;
                }
            };
            let incoming = self.incoming.clone();
            let shared = queue.as_ref().map(|_| Arc::clone(&filter));
            tasks.push(tokio::spawn(async move {
                while let Some(message) = subscriber.next().await {
                    let copy = Incoming {
                        frame: message.payload,
                        shared: shared.clone(),
                    };
                    if incoming.send(copy).await.is_err() {
                        return;
                    }
                }
            }));
        }
        debug!(%filter, subjects = tasks.len(), "subscribed on NATS");
        if let Some(old) = self.subscriptions.insert(filter, tasks) {
            old.iter().for_each(JoinHandle::abort);
        }
    }
}

impl Receiver {
    async fn run(&mut self, mut incoming: mpsc::Receiver<Incoming>) {
        while let Some(copy) = incoming.recv().await {
            // More than half the buffer waiting: the other nodes are asked to wait until a
            // quarter of it is left (their publishers pause, as a slow subscriber pauses them
            // on one broker) rather than NATS dropping what this node cannot take in time.
            let waiting = incoming.len();
            if waiting > INCOMING / 2 {
                self.behind.backlog(true);
            } else if waiting < INCOMING / 4 {
                self.behind.backlog(false);
            }
            while *self.hold.borrow() {
                if self.hold.changed().await.is_err() {
                    break;
                }
            }
            if !self.deliver(copy).await {
                return;
            }
        }
    }

    /// Hands a copy from NATS to the broker; `false` once the server has stopped.
    async fn deliver(&mut self, copy: Incoming) -> bool {
        let now = Instant::now();
        let (message, origin) = match frame::decode(copy.frame, now, SystemTime::now()) {
            Ok(decoded) => decoded,
            Err(error) => {
                warn!(%error, "a message from NATS that is not a cluster frame");
                return true;
            }
        };
        let handed = match copy.shared {
            Some(filter) => {
                self.status.received();
                self.handle.publish_remote_shared(message, filter).await
            }
            None => {
                if origin.node == self.incarnation {
                    return true; // published here: its subscribers here have it
                }
                if !self.dedup.first(origin.node, origin.seq, now) {
                    self.status.duplicates();
                    return true;
                }
                self.status.received();
                self.handed += 1;
                if !self.handed.is_multiple_of(TRACK_EVERY) {
                    self.handle.publish_remote(message).await
                } else {
                    // At most two windows handed in and not yet routed (see `TRACK_EVERY`).
                    if let Some(routed) = self.routed.take() {
                        let _ = routed.await;
                    }
                    match self.handle.publish_remote_tracked(message).await {
                        Ok(routed) => {
                            self.routed = Some(routed);
                            Ok(())
                        }
                        Err(error) => Err(error),
                    }
                }
            }
        };
        handed.is_ok()
    }
}
