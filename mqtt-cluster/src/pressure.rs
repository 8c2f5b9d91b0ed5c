//! Backpressure across nodes. On one broker a subscriber that falls behind pauses the clients
//! publishing to it until it catches up. In a cluster the publishers of the messages a node
//! receives are on other nodes, which core NATS cannot slow down, so the node says so itself:
//! while its broker pauses "the cluster" as a publisher (`ConnectionId::CLUSTER`; the node then
//! also stops handing it messages from NATS), or while the messages from NATS pile up before
//! its broker, it announces `1` on `{prefix}.pressure.{node}` (again every [`REFRESH`]); every other node stops reading its own connections while any node's
//! announcement is `1` and fresh (not older than [`STALE`]: a node that died behind does not
//! stop the cluster for good), and reads again at `0`. The pause lasts at most the broker's
//! `max_publisher_pause`, after which the slow subscriber drops (counted), as on one broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::Client;
use futures_util::StreamExt;
use mqtt_tokio::ServerHandle;
use tokio::sync::watch;
use tracing::{debug, warn};

/// How often a node behind says so again.
pub const REFRESH: Duration = Duration::from_millis(250);
/// How long an announcement holds without being said again.
pub const STALE: Duration = Duration::from_secs(2);

/// Whether this node is behind with the messages from the other nodes, for either reason:
/// its broker paused the cluster (a subscriber here is behind), or the messages from NATS pile
/// up before the broker (this node takes them more slowly than they come).
#[derive(Debug)]
pub struct Behind {
    broker: AtomicBool,
    backlog: AtomicBool,
    either: watch::Sender<bool>,
}

impl Behind {
    /// Not behind; `announce` follows the returned receiver.
    pub fn new() -> (Behind, watch::Receiver<bool>) {
        let (either, receiver) = watch::channel(false);
        let behind = Behind {
            broker: AtomicBool::new(false),
            backlog: AtomicBool::new(false),
            either,
        };
        (behind, receiver)
    }

    /// The broker paused the cluster (`true`) or let it go on.
    pub fn broker(&self, behind: bool) {
        self.broker.store(behind, Ordering::Relaxed);
        self.update();
    }

    /// The messages from NATS pile up (`true`) or are taken as they come.
    pub fn backlog(&self, behind: bool) {
        if self.backlog.swap(behind, Ordering::Relaxed) != behind {
            self.update();
        }
    }

    fn update(&self) {
        let either = self.broker.load(Ordering::Relaxed) || self.backlog.load(Ordering::Relaxed);
        self.either
            .send_if_modified(|now| std::mem::replace(now, either) != either);
    }
}

/// Announces whether this node is behind on `subject`: at each change, and again every
/// [`REFRESH`] while it is. Runs until `behind` ends.
pub async fn announce(client: Client, subject: String, mut behind: watch::Receiver<bool>) {
    let mut refresh = tokio::time::interval(REFRESH);
    loop {
        let now_behind = *behind.borrow_and_update();
        let word = if now_behind { "1" } else { "0" };
        if let Err(error) = client.publish(subject.clone(), word.into()).await {
            debug!(%error, "pressure announcement not sent");
        }
        if now_behind {
            tokio::select! {
                changed = behind.changed() => if changed.is_err() { return },
                _ = refresh.tick() => {}
            }
        } else if behind.changed().await.is_err() {
            return;
        }
    }
}

/// Follows the other nodes' announcements: this broker stops reading while any of them is
/// behind. Runs until the server stops.
pub async fn follow(client: Client, prefix: String, node: String, handle: ServerHandle) {
    let mut announcements = match client.subscribe(format!("{prefix}.pressure.*")).await {
        Ok(announcements) => announcements,
        Err(error) => {
            warn!(%error, "cannot hear the other nodes' backpressure");
            return;
        }
    };
    let own = format!("{prefix}.pressure.{node}");
    let mut behind: HashMap<String, Instant> = HashMap::new();
    let mut holding = false;
    let mut expire = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            Some(message) = announcements.next() => {
                if message.subject.as_str() == own {
                    continue;
                }
                let name = message.subject.as_str().to_owned();
                if &message.payload[..] == b"1" {
                    behind.insert(name, Instant::now());
                } else {
                    behind.remove(&name);
                }
            }
            _ = expire.tick() => {
                let now = Instant::now();
                behind.retain(|_, at| now.saturating_duration_since(*at) < STALE);
            }
        }
        let hold = !behind.is_empty();
        if hold != holding {
            holding = hold;
            debug!(hold, "another node's subscribers are behind");
            if handle.set_cluster_pressure(hold).await.is_err() {
                return;
            }
        }
    }
}
