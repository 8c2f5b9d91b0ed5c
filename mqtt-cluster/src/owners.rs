//! One session per client identifier in the whole cluster, and the session moving with its
//! client. A JetStream key-value bucket holds, per client identifier ([`client_key`]), the node
//! incarnation that holds its session. An authenticated client waits (no CONNACK yet) while
//! the node claims the key with a compare-and-set on the key's last revision (read again and
//! retried when another node wrote in between). The value it replaced names the previous
//! holder. Unless the client asked for a clean start, the node asks that holder for the session
//! (`{prefix}.session.{incarnation}`, a NATS request): the holder takes its connection over
//! (DISCONNECT 0x8E for MQTT 5.0 [MQTT5-3.1.4-3], a close for 3.x [MQTT311-3.1.4-2]) and hands
//! the session over — subscriptions, expiry, the QoS 1/2 messages queued for it and those not
//! yet acknowledged — in the store's record layouts ([`mqtt_store::encode_handover`]). The
//! client is then admitted with it, and CONNACK says the session is present [MQTT5-3.2.2-2].
//! With a clean start the previous holder is only told (`{prefix}.owner.{incarnation}`) which
//! revision took the key, and ends its connection and session.
//!
//! Every claim is a compare-and-set on the revision before it, so the claims of one client
//! identifier form one chain, and each holder in it hears from its successor. Of two CONNECTs
//! at once on two nodes exactly one keeps its connection: the one whose claim came last, as if
//! the two had connected to one broker in that order. A connect costs two requests to the
//! bucket and at most one request or notice to one node, whatever the number of nodes. A
//! holder that is gone (killed) answers nothing: the client is admitted without a session
//! after [`HANDOVER_TIMEOUT`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::Client;
use async_nats::jetstream::kv::{Operation, Store};
use bytes::Bytes;
use futures_util::StreamExt;
use mqtt_broker_core::ConnectionId;
use mqtt_broker_core::persist::RecoveredSession;
use mqtt_tokio::ServerHandle;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::status::Status;
use crate::subject::{client_key, client_of_key};

/// Attempts at a claim before giving up (each one lost to another node's write).
const CLAIM_ATTEMPTS: usize = 16;

/// How long a node waits for the previous holder to hand a session over.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a claim may take before the client is admitted anyway, as on a single broker
/// (the bucket is out of reach: a node cut off from NATS keeps taking clients).
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// What the router tells the owner task.
#[derive(Debug)]
pub enum Change {
    /// An authenticated client waits to be admitted here.
    Admit {
        /// Its connection.
        conn: ConnectionId,
        /// Its client identifier.
        client_id: Arc<str>,
        /// Whether it asked for a clean start.
        clean_start: bool,
    },
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
        self.subject_of(value, "owner")
    }

    /// The subject the holder written as `value` hands its sessions over on.
    fn handovers(&self, value: &[u8]) -> Option<String> {
        self.subject_of(value, "session")
    }

    fn subject_of(&self, value: &[u8], kind: &str) -> Option<String> {
        let text = std::str::from_utf8(value).ok()?;
        let incarnation = text.split(' ').nth(1)?;
        Some(format!("{}.{kind}.{incarnation}", self.prefix))
    }
}

/// A finished claim.
struct Claimed {
    key: String,
    attempt: u64,
    conn: ConnectionId,
    /// The revision written (`None` when every attempt failed).
    revision: Option<u64>,
    /// The session the previous holder handed over.
    session: Option<RecoveredSession>,
}

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
    let asked = format!("{}.session.{:016x}", me.prefix, me.incarnation);
    let (mut notices, mut requests) =
        match tokio::try_join!(client.subscribe(own), client.subscribe(asked)) {
            Ok(subscribed) => subscribed,
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
                Some(Change::Admit { conn, client_id, clean_start }) => {
                    owners.claim(conn, &client_id, clean_start);
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
            Some(request) = requests.next() => owners.hand_over(request).await,
            Some(claimed) = claimed.recv() => owners.claimed(claimed).await,
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
    /// Starts claiming `client`'s key for the client waiting on `conn`: the compare-and-set,
    /// then the session from the previous holder unless `clean_start` (or a notice to it).
    fn claim(&mut self, conn: ConnectionId, client: &str, clean_start: bool) {
        let key = client_key(client);
        self.attempts += 1;
        let attempt = self.attempts;
        self.claims
            .insert(key.clone(), Claim::Pending(attempt, None));
        let reachable = self.status.counters().connected;
        let (store, nats, me, results) = (
            self.store.clone(),
            self.client.clone(),
            self.me.clone(),
            self.results.clone(),
        );
        let client = client.to_owned();
        tokio::spawn(async move {
            // Cut off from NATS, the client is let in at once, as on a single broker.
            let written = match reachable {
                true => {
                    tokio::time::timeout(CLAIM_TIMEOUT, compare_and_set(&store, &key, me.value()))
                        .await
                        .ok()
                        .flatten()
                }
                false => None,
            };
            let revision = written.as_ref().map(|(revision, _)| *revision);
            let previous = written
                .and_then(|(_, previous)| previous)
                .filter(|previous| *previous != me.value());
            let mut session = None;
            if let (Some(previous), Some(revision)) = (previous, revision) {
                if clean_start {
                    if let Some(subject) = me.notices(&previous) {
                        let notice = format!("{key} {revision}");
                        if let Err(error) = nats.publish(subject, notice.into()).await {
                            debug!(key, %error, "takeover notice not sent");
                        }
                    }
                } else if let Some(subject) = me.handovers(&previous) {
                    session = fetch(&nats, subject, &client).await;
                }
            }
            let _ = results.send(Claimed {
                key,
                attempt,
                conn,
                revision,
                session,
            });
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

    /// A claim of this node finished: the client is admitted (given up at once when a later
    /// claim came meanwhile); `false` once the server has stopped.
    async fn claimed(&mut self, claimed: Claimed) -> bool {
        let Claimed {
            key,
            attempt,
            conn,
            revision,
            session,
        } = claimed;
        if self.handle.admit(conn, session).await.is_err() {
            return false;
        }
        let told = match self.claims.get(&key) {
            Some(Claim::Pending(a, told)) if *a == attempt => *told,
            _ => return true, // a later claim, or the session ended meanwhile
        };
        let Some(revision) = revision else {
            warn!(
                key,
                "could not claim the session in the cluster (NATS out of reach); admitted here alone"
            );
            self.claims.remove(&key);
            return true;
        };
        self.claims.insert(key.clone(), Claim::Held(revision));
        match told {
            Some(later) if later > revision => self.give_up(&key).await,
            _ => true,
        }
    }

    /// Another node asks for a session held here (its client connected there): it is given
    /// up and sent back (empty when there is none to resume); `false` once the server has
    /// stopped.
    async fn hand_over(&mut self, request: async_nats::Message) -> bool {
        let Some(reply) = request.reply else {
            return true;
        };
        let Ok(client) = std::str::from_utf8(&request.payload) else {
            return true;
        };
        self.claims.remove(&client_key(client));
        let session = match self.handle.export_session(client).await {
            Ok(session) => session,
            Err(_) => return false,
        };
        let bytes = session.map_or_else(Vec::new, |session| {
            let clock = mqtt_store::WallClock::new(Instant::now(), SystemTime::now());
            mqtt_store::encode_handover(&session, &clock)
        });
        info!(
            client_id = client,
            "session handed over to another node of the cluster"
        );
        self.status.takeovers();
        if let Err(error) = self.client.publish(reply, bytes.into()).await {
            warn!(client_id = client, %error, "session hand-over not sent");
        }
        true
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

/// Asks the previous holder on `subject` for `client`'s session.
async fn fetch(nats: &Client, subject: String, client: &str) -> Option<RecoveredSession> {
    let asked = nats.request(subject, client.to_owned().into());
    match tokio::time::timeout(HANDOVER_TIMEOUT, asked).await {
        Ok(Ok(reply)) if reply.payload.is_empty() => None,
        Ok(Ok(reply)) => match mqtt_store::decode_handover(&reply.payload, Instant::now()) {
            Ok(session) => Some(session),
            Err(error) => {
                warn!(client_id = client, %error, "a session hand-over that does not decode");
                None
            }
        },
        Ok(Err(error)) => {
            debug!(client_id = client, %error, "no session hand-over (its node is gone)");
            None
        }
        Err(_) => {
            warn!(
                client_id = client,
                "no session hand-over in time (its node is gone?)"
            );
            None
        }
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
