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
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::dedup::Dedup;
use crate::frame::{self, Origin};
use crate::owners;
use crate::retained::Writer;
use crate::status::Status;
use crate::subject::{filter_subjects, message_subject, queue_group, split_shared};

/// Copies from NATS waiting for this task before the subscriptions' own buffers fill.
const INCOMING: usize = 8192;

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
}

impl Router {
    /// Runs until the server stops.
    pub async fn run(self, mut outputs: ClusterOutputs) {
        let (incoming_tx, incoming) = mpsc::channel::<Incoming>(INCOMING);
        // The two directions are tasks of their own: handing a message to the broker (which
        // may wait for room) never holds up what the broker hands out, nor the other way.
        let mut receiver = Receiver {
            incarnation: self.incarnation,
            handle: self.handle.clone(),
            status: Arc::clone(&self.status),
            dedup: Dedup::default(),
        };
        let receiving = tokio::spawn(async move { receiver.run(incoming).await });
        let mut state = State {
            router: self,
            subscriptions: HashMap::new(),
            incoming: incoming_tx,
            seq: 0,
        };
        while let Some(output) = outputs.recv().await {
            state.output(output).await;
        }
        receiving.abort();
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
}

/// The receiving side: copies from NATS, to the broker.
struct Receiver {
    incarnation: u64,
    handle: ServerHandle,
    status: Arc<Status>,
    dedup: Dedup,
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
            Ok(()) => self.router.status.forwarded(1),
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
                self.handle.publish_remote(message).await
            }
        };
        handed.is_ok()
    }
}
