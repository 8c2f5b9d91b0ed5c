//! Several `mqtt-tokio` brokers acting as one, over NATS with JetStream.
//!
//! Each broker (a *node*) connects to NATS and, from its broker core's cluster seam
//! ([`ServerBuilder::cluster`](mqtt_tokio::ServerBuilder::cluster)):
//!
//! - **routes**: a message published on a node goes to the NATS subject of its topic
//!   ([`subject`]); a node subscribes on NATS for exactly the filters it has subscribers for,
//!   so only messages someone wants cross the network, once per interested node;
//! - **serves shared subscriptions cluster-wide**: a `$share/{ShareName}/{filter}` becomes a
//!   NATS queue subscription, and NATS hands each message to one node of the group, which
//!   picks one member;
//! - **keeps one retained set**: in a JetStream key-value bucket, which every node follows
//!   (see [`retained`]);
//! - **keeps one session per client identifier**: ownership in a second bucket, claimed with a
//!   compare-and-set when a client connects; the node that held it before takes its
//!   connection over (see [`owners`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mqtt_tokio::{Server, config::{ClusterConfig, ServerConfig}};
//!
//! let config = ServerConfig::default();
//! let mut server = Server::builder(config).cluster().start().await?;
//! let cluster = ClusterConfig::new("node-1", vec!["nats://127.0.0.1:4222".into()]);
//! let node = mqtt_cluster::join(&cluster, &mut server).await?;
//! server.run_until_signalled().await?;
//! println!("{:?}", node.counters());
//! # Ok(())
//! # }
//! ```

pub mod dedup;
pub mod frame;
pub mod owners;
pub mod presence;
pub mod pressure;
pub mod retained;
mod router;
pub mod status;
pub mod subject;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use mqtt_tokio::Server;
use mqtt_tokio::config::ClusterConfig;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use status::Counters;
use status::Status;

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The server was not started with [`ServerBuilder::cluster`](mqtt_tokio::ServerBuilder::cluster),
    /// or its outputs were taken already.
    #[error("the server was not started as a node of a cluster (ServerBuilder::cluster)")]
    NotANode,
    /// A NATS server address that does not parse.
    #[error("NATS server `{0}`: {1}")]
    Address(String, String),
    /// The credentials file could not be read.
    #[error("NATS credentials {0}: {1}")]
    Credentials(String, std::io::Error),
    /// No NATS server answered.
    #[error("cannot connect to NATS ({0}): {1}")]
    Connect(String, String),
    /// JetStream is not enabled, or a bucket cannot be created.
    #[error("JetStream bucket {0}: {1} (is JetStream enabled on the NATS servers?)")]
    Bucket(String, String),
}

/// A node that joined its cluster; its tasks run until the server stops.
#[derive(Debug)]
pub struct Node {
    status: Arc<Status>,
}

impl Node {
    /// The node's counters now.
    pub fn counters(&self) -> Counters {
        self.status.counters()
    }
}

/// How long a NATS connection attempt or request may take.
const NATS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the NATS connection is pinged: a connection that stops answering (a network
/// partition, not a closed socket) is taken as lost after two unanswered pings, and the node
/// reports itself degraded and serves its shared groups itself.
const NATS_PING: Duration = Duration::from_secs(2);

/// Connects `server` (started with
/// [`ServerBuilder::cluster`](mqtt_tokio::ServerBuilder::cluster)) to the cluster `config`
/// describes: NATS, the buckets (created by the first node), and the node's tasks.
pub async fn join(config: &ClusterConfig, server: &mut Server) -> Result<Node, ClusterError> {
    let outputs = server.cluster_outputs().ok_or(ClusterError::NotANode)?;
    let handle = server.handle();
    let status = Arc::new(Status::default());
    let (links, mut link_changes) = mpsc::unbounded_channel();
    let client = connect(config, &status, links).await?;
    status.set_connected(true);
    let stream = jetstream::new(client.clone());
    let retained = bucket(&stream, &format!("{}_retained", config.prefix), config).await?;
    let sessions = bucket(&stream, &format!("{}_sessions", config.prefix), config).await?;
    let incarnation = incarnation();
    let (owners_tx, owners_rx) = mpsc::unbounded_channel();
    let router = router::Router {
        client: client.clone(),
        prefix: config.prefix.clone(),
        incarnation,
        handle: handle.clone(),
        status: Arc::clone(&status),
        retained: retained::Writer::start(retained.clone(), Arc::clone(&status)),
        owners: owners_tx,
        node: config.node.clone(),
    };
    // The node's tasks run until the server stops (each ends when its server handle fails).
    let _detached: [JoinHandle<()>; 6] = [
        retained::follow(retained, handle.clone(), Arc::clone(&status)).await,
        tokio::spawn(owners::run(
            sessions,
            client.clone(),
            handle.clone(),
            Arc::clone(&status),
            owners::Identity {
                prefix: config.prefix.clone(),
                node: config.node.clone(),
                incarnation,
            },
            owners_rx,
        )),
        tokio::spawn(presence::run(
            client.clone(),
            config.prefix.clone(),
            config.node.clone(),
            Duration::from_secs(config.status_interval.max(1)),
            handle.clone(),
            Arc::clone(&status),
        )),
        tokio::spawn(pressure::follow(
            client.clone(),
            config.prefix.clone(),
            config.node.clone(),
            handle.clone(),
        )),
        tokio::spawn(router.run(outputs)),
        // The broker hears whether NATS is reachable (its shared groups depend on it).
        tokio::spawn(async move {
            while let Some(up) = link_changes.recv().await {
                if handle.set_cluster_link(up).await.is_err() {
                    return;
                }
            }
        }),
    ];
    info!(node = config.node, nats = ?config.nats, "joined the cluster");
    Ok(Node { status })
}

/// The NATS connection `config` asks for.
async fn connect(
    config: &ClusterConfig,
    status: &Arc<Status>,
    links: mpsc::UnboundedSender<bool>,
) -> Result<async_nats::Client, ClusterError> {
    let addresses = config
        .nats
        .iter()
        .map(|url| {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|e| ClusterError::Address(url.clone(), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let watched = Arc::clone(status);
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("mqtt-cluster {}", config.node))
        .connection_timeout(NATS_TIMEOUT)
        .ping_interval(NATS_PING)
        .request_timeout(Some(NATS_TIMEOUT))
        .max_reconnects(None)
        .event_callback(move |event| {
            let (watched, links) = (Arc::clone(&watched), links.clone());
            async move {
                match event {
                    async_nats::Event::Connected => {
                        info!("NATS connection up");
                        watched.set_connected(true);
                        let _ = links.send(true);
                    }
                    async_nats::Event::Disconnected => {
                        warn!("NATS connection lost; serving local clients only until it is back");
                        watched.set_connected(false);
                        let _ = links.send(false);
                    }
                    other => warn!(event = %other, "NATS"),
                }
            }
        });
    if let (Some(user), password) = (&config.username, &config.password) {
        options = options.user_and_password(user.clone(), password.clone().unwrap_or_default());
    }
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let Some(path) = &config.credentials {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| ClusterError::Credentials(path.display().to_string(), e))?;
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    options
        .connect(addresses)
        .await
        .map_err(|e| ClusterError::Connect(config.nats.join(", "), e.to_string()))
}

/// The key-value bucket `name`, created when it is not there yet (by whichever node comes
/// first; a node losing that race reads the winner's).
async fn bucket(
    stream: &jetstream::Context,
    name: &str,
    config: &ClusterConfig,
) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = stream.get_key_value(name).await {
        return Ok(store);
    }
    let created = stream
        .create_key_value(kv::Config {
            bucket: name.to_owned(),
            history: 1,
            num_replicas: config.replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        Err(error) => stream
            .get_key_value(name)
            .await
            .map_err(|_| ClusterError::Bucket(name.to_owned(), error.to_string())),
    }
}

/// A number for this start of this node, different at every start (a node that restarts is
/// a new origin of messages).
fn incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}
