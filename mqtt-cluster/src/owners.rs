//! One session per client identifier in the whole cluster. A JetStream key-value bucket holds,
//! per client identifier ([`client_key`]), the node incarnation that holds its session. When
//! a client connects to a node, the node claims the key with a compare-and-set on the key's
//! last revision (retried when another node wrote in between); every node follows the bucket.
//! A node whose client's key was claimed later (a higher revision) by another node gives the
//! session up: its connection is taken over (DISCONNECT 0x8E for MQTT 5.0) [MQTT5-3.1.4-3]
//! [MQTT311-3.1.4-2]. The bucket's revisions order every claim the same way for every node,
//! so of two CONNECTs at once on two nodes exactly one keeps its connection: the one whose
//! claim came last, as if the two had connected to one broker in that order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{Operation, Store};
use bytes::Bytes;
use futures_util::StreamExt;
use mqtt_tokio::ServerHandle;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::status::Status;
use crate::subject::{client_key, client_of_key};

/// Attempts at a claim before giving up (each one lost to another node's write).
const CLAIM_ATTEMPTS: usize = 16;

/// What the router tells the owner task.
#[derive(Debug)]
pub enum Change {
    /// A client connected here.
    Connected(Arc<str>),
    /// A session ended here.
    Ended(Arc<str>),
}

/// This node's hold on one client identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// The compare-and-set of this attempt (a number counted per node) is under way.
    Pending(u64),
    /// Held from this revision of the key.
    Held(u64),
}

/// The owner task's state.
struct Owners {
    store: Store,
    handle: ServerHandle,
    status: Arc<Status>,
    /// This node's value in the bucket: its name and incarnation.
    me: Bytes,
    /// The last revision of each key seen in the bucket, and whether it names this node.
    latest: HashMap<String, (u64, bool)>,
    claims: HashMap<String, Claim>,
    attempts: u64,
    results: mpsc::UnboundedSender<(String, u64, Option<u64>)>,
}

/// Runs the owner task until the server stops or `changes` ends.
pub async fn run(
    store: Store,
    handle: ServerHandle,
    status: Arc<Status>,
    me: String,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    // Claims from now on: one made before this node's own claims cannot be newer than them.
    let mut watch = match store.watch_all().await {
        Ok(watch) => watch,
        Err(error) => {
            warn!(%error, "cannot follow the cluster's session owners");
            return;
        }
    };
    let (results, mut claimed) = mpsc::unbounded_channel();
    let mut owners = Owners {
        store,
        handle,
        status,
        me: Bytes::from(me),
        latest: HashMap::new(),
        claims: HashMap::new(),
        attempts: 0,
        results,
    };
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(Change::Connected(client)) => owners.claim(&client),
                Some(Change::Ended(client)) => owners.release(&client),
                None => return,
            },
            entry = watch.next() => match entry {
                Some(Ok(entry)) => {
                    let mine = entry.operation == Operation::Put && entry.value == owners.me;
                    if !owners.seen(entry.key, entry.revision, mine).await {
                        return;
                    }
                }
                Some(Err(error)) => warn!(%error, "following the cluster's session owners"),
                None => {
                    warn!("the cluster's session owners can no longer be followed; following again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Ok(again) = owners.store.watch_all().await {
                        watch = again;
                    }
                }
            },
            Some((key, attempt, revision)) = claimed.recv() => {
                if !owners.claimed(key, attempt, revision).await {
                    return;
                }
            }
        }
    }
}

impl Owners {
    /// Starts claiming `client`'s key.
    fn claim(&mut self, client: &str) {
        let key = client_key(client);
        self.attempts += 1;
        let attempt = self.attempts;
        self.claims.insert(key.clone(), Claim::Pending(attempt));
        let (store, me, results) = (self.store.clone(), self.me.clone(), self.results.clone());
        tokio::spawn(async move {
            let revision = compare_and_set(&store, &key, me).await;
            let _ = results.send((key, attempt, revision));
        });
    }

    /// The session of `client` ended here: the key is removed if this node still holds it.
    fn release(&mut self, client: &str) {
        let key = client_key(client);
        if let Some(Claim::Held(revision)) = self.claims.remove(&key) {
            let store = self.store.clone();
            tokio::spawn(async move {
                // Another node's later claim makes this fail, as it should.
                let _ = store.delete_expect_revision(&key, Some(revision)).await;
            });
        }
    }

    /// A claim of this node finished; `false` once the server has stopped.
    async fn claimed(&mut self, key: String, attempt: u64, revision: Option<u64>) -> bool {
        if self.claims.get(&key) != Some(&Claim::Pending(attempt)) {
            return true; // a later claim, or the session ended meanwhile
        }
        let Some(revision) = revision else {
            warn!(
                key,
                "could not claim the session in the cluster; keeping it here"
            );
            self.claims.remove(&key);
            return true;
        };
        self.claims.insert(key.clone(), Claim::Held(revision));
        match self.latest.get(&key) {
            Some(&(latest, false)) if latest > revision => self.give_up(&key).await,
            _ => true,
        }
    }

    /// The bucket's key `key` is at `revision` (naming this node when `mine`); `false` once
    /// the server has stopped.
    async fn seen(&mut self, key: String, revision: u64, mine: bool) -> bool {
        self.latest.insert(key.clone(), (revision, mine));
        match self.claims.get(&key) {
            Some(&Claim::Held(held)) if !mine && revision > held => self.give_up(&key).await,
            _ => true,
        }
    }

    /// Another node holds `key`'s session now: it ends here.
    async fn give_up(&mut self, key: &str) -> bool {
        self.claims.remove(key);
        let Some(client) = client_of_key(key) else {
            return true;
        };
        info!(
            client_id = client,
            "session taken over by another node of the cluster"
        );
        self.status.takeovers();
        self.handle.session_taken_over(&client).await.is_ok()
    }
}

/// Writes `me` as the owner of `key` over whatever revision is there now; the revision
/// written, or `None` when every attempt lost or failed.
async fn compare_and_set(store: &Store, key: &str, me: Bytes) -> Option<u64> {
    for attempt in 0..CLAIM_ATTEMPTS {
        let written = match store.entry(key).await {
            Ok(Some(entry)) if entry.operation == Operation::Put => {
                store.update(key, me.clone(), entry.revision).await.ok()
            }
            Ok(_) => store.create(key, me.clone()).await.ok(),
            Err(error) => {
                debug!(key, %error, "reading a session owner");
                None
            }
        };
        if written.is_some() {
            return written;
        }
        // Lost to another node's write (or NATS is slow): read again.
        tokio::time::sleep(Duration::from_millis(5 << attempt.min(6))).await;
    }
    None
}
