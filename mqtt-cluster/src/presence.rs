//! Which nodes the cluster has, for `$SYS`: every node announces itself on
//! `{prefix}.nodes.{node}` each status interval (its name and connected clients) and listens to
//! the others'; a node not heard of for three intervals is gone. Each node publishes, retained,
//! on its own broker (`$SYS` is never shared between nodes):
//!
//! | topic | payload |
//! |---|---|
//! | `$SYS/broker/cluster/state` | `connected`, or `degraded` while NATS is out of reach |
//! | `$SYS/broker/cluster/node` | this node's name |
//! | `$SYS/broker/cluster/nodes` | the number of nodes heard of (this one included) |
//! | `$SYS/broker/cluster/nodes/{node}/clients` | the clients connected to that node |
//! | `$SYS/broker/cluster/messages/sent` | messages this node sent to the others |
//! | `$SYS/broker/cluster/messages/received` | messages from the others handed to this node |

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::Client;
use futures_util::StreamExt;
use mqtt_tokio::ServerHandle;
use mqtt_wire::QoS;
use tracing::{debug, warn};

use crate::status::Status;

/// Intervals without news after which a node is taken as gone.
const GONE_AFTER: u32 = 3;

/// What one node last said of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Heard {
    clients: u64,
    at: Instant,
}

/// Announces this node and keeps `$SYS/broker/cluster/...` up to date until the server stops.
pub async fn run(
    client: Client,
    prefix: String,
    node: String,
    every: Duration,
    handle: ServerHandle,
    status: Arc<Status>,
) {
    let mut others = match client.subscribe(format!("{prefix}.nodes.*")).await {
        Ok(others) => others,
        Err(error) => {
            warn!(%error, "cannot hear the other nodes of the cluster");
            return;
        }
    };
    let mut nodes: BTreeMap<String, Heard> = BTreeMap::new();
    let mut published: BTreeMap<String, String> = BTreeMap::new();
    // This node hears its own announcements back through NATS: the end-to-end check that
    // NATS is reachable (a partition leaves the socket open, and the client's pings wait
    // while it has traffic to send).
    let mut heard_self = Instant::now();
    let mut reachable = true;
    let announced = format!("{prefix}.nodes.");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Ok(stats) = handle.stats().await else {
                    return; // the server stopped
                };
                let clients = stats.clients_connected;
                nodes.insert(node.clone(), Heard { clients, at: Instant::now() });
                let subject = format!("{prefix}.nodes.{node}");
                if let Err(error) = client.publish(subject, clients.to_string().into()).await {
                    debug!(%error, "node announcement not sent");
                }
                let now = Instant::now();
                nodes.retain(|_, heard| now.saturating_duration_since(heard.at) < every * GONE_AFTER);
                let counters = status.counters();
                let silent = now.saturating_duration_since(heard_self) >= every * GONE_AFTER;
                if silent && counters.connected {
                    // Connected by the client's account, yet nothing comes back: start over.
                    warn!("no answer from NATS; reconnecting");
                    status.set_connected(false);
                    let _ = client.force_reconnect().await;
                    heard_self = now;
                }
                let up = counters.connected && !silent;
                if up != reachable {
                    reachable = up;
                    if handle.set_cluster_link(up).await.is_err() {
                        return;
                    }
                }
                let mut topics = BTreeMap::new();
                let state = if up { "connected" } else { "degraded" };
                topics.insert("state".to_owned(), state.to_owned());
                topics.insert("node".to_owned(), node.clone());
                topics.insert("nodes".to_owned(), nodes.len().to_string());
                for (name, heard) in &nodes {
                    topics.insert(format!("nodes/{name}/clients"), heard.clients.to_string());
                }
                topics.insert("messages/sent".to_owned(), counters.forwarded.to_string());
                topics.insert("messages/received".to_owned(), counters.received.to_string());
                if !publish_changes(&handle, &mut published, topics).await {
                    return;
                }
            }
            Some(message) = others.next() => {
                let Some(name) = message.subject.as_str().strip_prefix(&announced) else {
                    continue;
                };
                let clients = std::str::from_utf8(&message.payload)
                    .ok()
                    .and_then(|text| text.parse().ok())
                    .unwrap_or(0);
                if name == node {
                    heard_self = Instant::now();
                }
                nodes.insert(name.to_owned(), Heard { clients, at: Instant::now() });
            }
        }
    }
}

/// Publishes, retained, what changed since the last time: new or changed values, and an empty
/// retained message (a clear) for a node that is gone. `false` once the server stopped.
async fn publish_changes(
    handle: &ServerHandle,
    published: &mut BTreeMap<String, String>,
    topics: BTreeMap<String, String>,
) -> bool {
    let gone: Vec<String> = published
        .keys()
        .filter(|topic| !topics.contains_key(*topic))
        .cloned()
        .collect();
    for topic in gone {
        published.remove(&topic);
        let full = format!("$SYS/broker/cluster/{topic}");
        if handle
            .publish(&full, Vec::new(), QoS::AtMostOnce, true)
            .await
            .is_err()
        {
            return false;
        }
    }
    for (topic, value) in topics {
        if published.get(&topic) == Some(&value) {
            continue;
        }
        let full = format!("$SYS/broker/cluster/{topic}");
        if handle
            .publish(&full, value.clone().into_bytes(), QoS::AtMostOnce, true)
            .await
            .is_err()
        {
            return false;
        }
        published.insert(topic, value);
    }
    true
}
