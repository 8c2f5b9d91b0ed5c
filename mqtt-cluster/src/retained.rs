//! The cluster's retained messages: one JetStream key-value bucket, one key per topic
//! ([`retained_key`]), the message as a [`frame`] (history 1: only the last
//! value is kept). A node writes the retained messages published on it ([`Writer`], in the
//! order they were published) and follows the bucket from its first key on ([`follow`]):
//! every node ends with the same retained set, the bucket's, and a node that starts late
//! serves it too. A change is ordered by the bucket's revision, so two nodes setting one topic
//! at once agree on which came last.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use async_nats::jetstream::kv::{Entry, Operation, Store};
use bytes::Bytes;
use futures_util::StreamExt;
use mqtt_broker_core::Message;
use mqtt_tokio::ServerHandle;
use mqtt_wire::{MqttStr, QoS};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::frame;
use crate::status::Status;
use crate::subject::{retained_key, topic_of_retained_key};

/// A change to write: the topic's key and its new frame (`None`: cleared).
type Change = (String, Option<Bytes>);

/// Retained changes waiting for the bucket before the router waits for room.
const PENDING: usize = 4096;

/// Hands retained changes to the bucket, one at a time, in the order given.
#[derive(Debug, Clone)]
pub struct Writer {
    changes: mpsc::Sender<Change>,
}

impl Writer {
    /// Starts the writing task on `store`. A change the bucket does not take (NATS out of
    /// reach) is kept, the last one per topic, and written again every second until it is
    /// taken, unless a later change of its topic was taken first: the cluster catches up with
    /// what was retained here meanwhile.
    pub fn start(store: Store, status: std::sync::Arc<Status>) -> Writer {
        let (changes, mut pending) = mpsc::channel::<Change>(PENDING);
        tokio::spawn(async move {
            let mut failed: HashMap<String, Option<Bytes>> = HashMap::new();
            let mut retry = tokio::time::interval(RETRY);
            loop {
                tokio::select! {
                    change = pending.recv() => {
                        let Some((key, value)) = change else {
                            return;
                        };
                        failed.remove(&key);
                        if let Err(error) = write(&store, &key, value.clone()).await {
                            status.retained_write_failed();
                            warn!(key, %error, "retained message not written to the cluster yet");
                            failed.insert(key, value);
                        }
                    }
                    _ = retry.tick(), if !failed.is_empty() => {
                        let keys: Vec<String> = failed.keys().cloned().collect();
                        for key in keys {
                            let value = failed.get(&key).cloned().flatten();
                            if write(&store, &key, value).await.is_ok() {
                                failed.remove(&key);
                            }
                        }
                    }
                }
            }
        });
        Writer { changes }
    }

    /// Sets (or, with an empty payload, clears) the cluster's retained message of `message`'s
    /// topic; `frame` is the message's frame. Waits while 4,096 changes are ahead.
    pub async fn write(&self, message: &Message, frame: Bytes) {
        let key = retained_key(message.topic.as_str());
        let value = (!message.payload.is_empty()).then_some(frame);
        let _ = self.changes.send((key, value)).await;
    }
}

/// Follows the bucket into `handle`'s retained store until the server stops: the changes
/// from now on, and every key's current value, which are applied before this returns (a
/// node serves the cluster's retained set from the start). A key's change is applied only
/// when its revision is newer than the one applied (the load and the changes overlap).
pub async fn follow(
    store: Store,
    handle: ServerHandle,
    status: std::sync::Arc<Status>,
) -> tokio::task::JoinHandle<()> {
    let mut follower = Follower {
        store,
        handle,
        status,
        applied: HashMap::new(),
    };
    let first = follower.start().await;
    tokio::spawn(async move {
        let mut changes = first;
        loop {
            if let Some(changes) = changes.as_mut() {
                while let Some(entry) = changes.next().await {
                    match entry {
                        Ok(entry) => {
                            if !follower.apply(entry).await {
                                return;
                            }
                        }
                        Err(error) => warn!(%error, "following the cluster's retained messages"),
                    }
                }
            }
            tokio::time::sleep(RETRY).await;
            changes = follower.start().await;
        }
    })
}

/// What the following task keeps.
struct Follower {
    store: Store,
    handle: ServerHandle,
    status: std::sync::Arc<Status>,
    /// The revision applied per key.
    applied: HashMap<String, u64>,
}

impl Follower {
    /// Watches the changes from now on, then applies every key's current value; the changes,
    /// or `None` when the bucket cannot be watched now.
    async fn start(&mut self) -> Option<async_nats::jetstream::kv::Watch> {
        // The changes first, then the load: nothing falls between the two.
        let changes = match self.store.watch_all().await {
            Ok(changes) => changes,
            Err(error) => {
                warn!(%error, "cannot follow the cluster's retained messages; retrying");
                return None;
            }
        };
        match load(&self.store).await {
            Ok(entries) => {
                for entry in entries {
                    self.apply(entry).await;
                }
            }
            Err(error) => warn!(%error, "cannot read the cluster's retained messages"),
        }
        Some(changes)
    }

    /// Applies one change unless a newer one of its key was; `false` once the server stopped.
    async fn apply(&mut self, entry: Entry) -> bool {
        if self
            .applied
            .get(&entry.key)
            .is_some_and(|&r| r >= entry.revision)
        {
            return true;
        }
        self.applied.insert(entry.key.clone(), entry.revision);
        let message = match entry.operation {
            Operation::Put => match frame::decode(entry.value, Instant::now(), SystemTime::now()) {
                Ok((message, _)) => message,
                Err(error) => {
                    warn!(key = entry.key, %error, "a retained message that does not decode");
                    return true;
                }
            },
            Operation::Delete | Operation::Purge => {
                let Some(topic) = topic_of_retained_key(&entry.key) else {
                    return true;
                };
                let Ok(topic) = MqttStr::try_from(topic) else {
                    return true;
                };
                Message::new(topic, Bytes::new(), QoS::AtMostOnce, true, Instant::now())
            }
        };
        debug!(
            key = entry.key,
            revision = entry.revision,
            "cluster retained change"
        );
        self.status.retained_applied();
        self.handle.retain_remote(message).await.is_ok()
    }
}

/// Puts `value` under `key`, or deletes the key for `None`.
async fn write(store: &Store, key: &str, value: Option<Bytes>) -> Result<(), String> {
    match value {
        Some(frame) => store
            .put(key, frame)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        None => store.delete(key).await.map_err(|e| e.to_string()),
    }
}

/// Wait before following the bucket again, or writing again what it did not take.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Every key's current value.
async fn load(store: &Store) -> Result<Vec<Entry>, String> {
    let mut keys = store.keys().await.map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| e.to_string())?;
        if let Some(entry) = store.entry(key).await.map_err(|e| e.to_string())? {
            entries.push(entry);
        }
    }
    Ok(entries)
}
