//! One session per client identifier in the whole cluster. A JetStream key-value bucket holds,
//! per client identifier ([`client_key`]), the node incarnation that holds its session. When a
//! client connects to a node, the node claims the key with a compare-and-set on the key's last
//! revision (read again and retried when another node wrote in between). The value it replaced
//! names the previous holder, which the claimant then tells directly, on that incarnation's
//! own subject (`{prefix}.owner.{incarnation}`), which revision took the key. A node told of a
//! revision later than its own claim gives the session up: its connection is taken over
//! (DISCONNECT 0x8E for MQTT 5.0) [MQTT5-3.1.4-3] [MQTT311-3.1.4-2].
//!
//! Every claim is a compare-and-set on the revision before it, so the claims of one client
//! identifier form one chain, and each holder in it hears from its successor. Of two CONNECTs
//! at once on two nodes exactly one keeps its connection: the one whose claim came last, as if
//! the two had connected to one broker in that order. A connect costs two requests to the
//! bucket and at most one notice, whatever the number of nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
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
    /// The compare-and-set of this attempt (a number counted per node) is under way; the
    /// latest revision another node told of meanwhile.
    Pending(u64, Option<u64>),
    /// Held from this revision of the key.
    Held(u64),
}

/// Who a node is in the bucket and on NATS.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The subject prefix.
    pub prefix: String,
    /// The node's name.
    pub node: String,
    /// This start of the node.
    pub incarnation: u64,
}

impl Identity {
    /// The value this node writes as a key's owner: `{node} {incarnation:016x}`.
    fn value(&self) -> Bytes {
        Bytes::from(format!("{} {:016x}", self.node, self.incarnation))
    }

    /// The subject the holder written as `value` hears its successors on.
    fn notices(&self, value: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(value).ok()?;
        let incarnation = text.split(' ').nth(1)?;
        Some(format!("{}.owner.{incarnation}", self.prefix))
    }
}

/// A finished claim: the key, the attempt, and the revision written with the value it
/// replaced (or `None` when every attempt failed).
type Claimed = (String, u64, Option<(u64, Option<Bytes>)>);

/// The owner task's state.
struct Owners {
    store: Store,
    client: Client,
    handle: ServerHandle,
    status: Arc<Status>,
    me: Identity,
    claims: HashMap<String, Claim>,
    attempts: u64,
    results: mpsc::UnboundedSender<Claimed>,
}

/// Runs the owner task until the server stops or `changes` ends.
pub async fn run(
    store: Store,
    client: Client,
    handle: ServerHandle,
    status: Arc<Status>,
    me: Identity,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    let own = format!("{}.owner.{:016x}", me.prefix, me.incarnation);
    let mut notices = match client.subscribe(own).await {
        Ok(notices) => notices,
        Err(error) => {
            warn!(%error, "cannot hear of sessions taken over by other nodes");
            return;
        }
    };
    let (results, mut claimed) = mpsc::unbounded_channel();
    let mut owners = Owners {
        store,
        client,
        handle,
        status,
        me,
        claims: HashMap::new(),
        attempts: 0,
        results,
    };
    loop {
        let alive = tokio::select! {
            change = changes.recv() => match change {
                Some(Change::Connected(client)) => {
                    owners.claim(&client);
                    true
                }
                Some(Change::Ended(client)) => {
                    owners.release(&client);
                    true
                }
                None => false,
            },
            Some(notice) = notices.next() => match parse_notice(&notice.payload) {
                Some((key, revision)) => owners.told(key, revision).await,
                None => true,
            },
            Some((key, attempt, written)) = claimed.recv() => {
                owners.claimed(key, attempt, written).await
            }
        };
        if !alive {
            return;
        }
    }
}

/// A notice's payload: `{key} {revision}`.
fn parse_notice(payload: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (key, revision) = text.rsplit_once(' ')?;
    Some((key.to_owned(), revision.parse().ok()?))
}

impl Owners {
    /// Starts claiming `client`'s key.
    fn claim(&mut self, client: &str) {
        let key = client_key(client);
        self.attempts += 1;
        let attempt = self.attempts;
        self.claims
            .insert(key.clone(), Claim::Pending(attempt, None));
        let (store, me, results) = (self.store.clone(), self.me.value(), self.results.clone());
        tokio::spawn(async move {
            let written = compare_and_set(&store, &key, me).await;
            let _ = results.send((key, attempt, written));
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
    async fn claimed(
        &mut self,
        key: String,
        attempt: u64,
        written: Option<(u64, Option<Bytes>)>,
    ) -> bool {
        let Some((revision, previous)) = written else {
            if matches!(self.claims.get(&key), Some(Claim::Pending(a, _)) if *a == attempt) {
                warn!(
                    key,
                    "could not claim the session in the cluster; keeping it here"
                );
                self.claims.remove(&key);
            }
            return true;
        };
        // The previous holder hears of it, whatever became of this attempt since.
        if let Some(previous) = previous.filter(|p| *p != self.me.value())
            && let Some(subject) = self.me.notices(&previous)
        {
            let notice = format!("{key} {revision}");
            if let Err(error) = self.client.publish(subject, notice.into()).await {
                debug!(key, %error, "takeover notice not sent");
            }
        }
        let told = match self.claims.get(&key) {
            Some(Claim::Pending(a, told)) if *a == attempt => *told,
            _ => return true, // a later claim, or the session ended meanwhile
        };
        self.claims.insert(key.clone(), Claim::Held(revision));
        match told {
            Some(later) if later > revision => self.give_up(&key).await,
            _ => true,
        }
    }

    /// Another node took `key` at `revision`; `false` once the server has stopped.
    async fn told(&mut self, key: String, revision: u64) -> bool {
        match self.claims.get_mut(&key) {
            Some(Claim::Held(held)) if revision > *held => self.give_up(&key).await,
            Some(Claim::Pending(_, told)) => {
                *told = Some(told.map_or(revision, |t| t.max(revision)));
                true
            }
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
/// written and the value it replaced, or `None` when every attempt lost or failed.
async fn compare_and_set(store: &Store, key: &str, me: Bytes) -> Option<(u64, Option<Bytes>)> {
    for attempt in 0..CLAIM_ATTEMPTS {
        let written = match store.entry(key).await {
            Ok(Some(entry)) if entry.operation == Operation::Put => store
                .update(key, me.clone(), entry.revision)
                .await
                .ok()
                .map(|revision| (revision, Some(entry.value))),
            Ok(_) => store.create(key, me.clone()).await.ok().map(|r| (r, None)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_reaches_the_incarnation_written_in_the_value() {
        let me = Identity {
            prefix: "mqtt".into(),
            node: "b".into(),
            incarnation: 0xab,
        };
        assert_eq!(&me.value()[..], b"b 00000000000000ab");
        assert_eq!(
            me.notices(b"a 00000000000000ff").as_deref(),
            Some("mqtt.owner.00000000000000ff")
        );
        assert_eq!(me.notices(b"garbage"), None);
        assert_eq!(parse_notice(b"c.plug 42"), Some(("c.plug".to_owned(), 42)));
        assert_eq!(parse_notice(b"c.plug x"), None);
    }
}
