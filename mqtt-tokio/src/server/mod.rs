//! The running server: binds the configured listeners, starts the broker task and the
//! reactors, and stops them gracefully.
//!
//! ```text
//!  listener tasks ─accept─┬─ plain TCP ──► reactor (one per runtime worker, owns many sockets)
//!                         │                 │ read: socket ─► Input::Bytes ──┐  bounded mpsc
//!                         │                 │ write: mailbox ─► socket       │  (back-pressure
//!                         │                 │        └► Input::Flushed ──────┤   on readers)
//!                         └─ TLS, WebSocket ─► connection task (one per client,│
//!                                             after the handshakes; same inputs)
//!                                                                            ▼
//!  reactor mailbox / WriteQueue ◄──Transmit/Close/Pause── broker task (owns the Broker,
//!                                                          sleeps until poll_timeout)
//! ```

mod broker_task;
mod connection;
mod listener;
mod local_client;
mod reactor;
mod read_gate;
mod storage;
mod tls;
mod transport;
mod write_queue;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_broker_core::{
    Broker, ListenerId, Message,
    hooks::{Authenticator, Authorizer},
};
use mqtt_wire::{MqttStr, QoS, ReasonCode};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::auth::hooks::{FileAuthenticator, FileAuthorizer, ListenerPolicy, SecurityFiles};
use crate::config::{ConfigError, Protocol, ServerConfig};
use broker_task::Input;
use listener::{Listener, accept_loop};
use mqtt_broker_core::persist::Persistence;
use mqtt_store::WallClock;
use std::path::PathBuf;
use std::time::SystemTime;
use storage::Storage;

pub use local_client::{Delivery, LocalClient, LocalConnectOptions};

/// Capacity of the broker task's input channel; readers wait when it is full.
const INPUT_CHANNEL: usize = 1024;

/// Why the server could not start or a request could not be served.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is unusable.
    Config(ConfigError),
    /// A password or ACL file could not be loaded.
    Security(crate::auth::hooks::SecurityError),
    /// A listener's TLS files could not be used.
    Tls(String),
    /// A listener could not be bound.
    Bind(String, std::io::Error),
    /// The broker core refused the limits.
    Core(mqtt_broker_core::ConfigError),
    /// The store could not be opened or read (a corrupt one is refused unless `start_fresh`).
    Store(mqtt_store::StoreError),
    /// An in-process publish named an invalid topic (or a subscription an invalid filter).
    InvalidTopic,
    /// The broker refused an in-process client's request (CONNACK, SUBACK, PUBACK... reason).
    Refused(ReasonCode),
    /// The in-process client's connection is closed.
    Disconnected,
    /// The server has stopped.
    Stopped,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(e) => e.fmt(f),
            ServerError::Security(e) => e.fmt(f),
            ServerError::Tls(why) => write!(f, "TLS: {why}"),
            ServerError::Bind(address, e) => write!(f, "cannot listen on {address}: {e}"),
            ServerError::Core(e) => write!(f, "broker limits: {e}"),
            ServerError::Store(e) if e.is_corrupt() => write!(
                f,
                "{e} (start with --start-fresh, or start_fresh = true in the configuration, to \
                 keep it aside and start on an empty store)"
            ),
            ServerError::Store(e) => e.fmt(f),
            ServerError::InvalidTopic => f.write_str("invalid topic name"),
            ServerError::Refused(reason) => write!(f, "refused by the broker: {reason:?}"),
            ServerError::Disconnected => f.write_str("the in-process client is disconnected"),
            ServerError::Stopped => f.write_str("the server has stopped"),
        }
    }
}

impl std::error::Error for ServerError {}

/// Builds a [`Server`]: the configuration, and optionally hooks that replace the password and
/// ACL files.
pub struct ServerBuilder {
    config: ServerConfig,
    authenticator: Option<Box<dyn Authenticator>>,
    authorizer: Option<Box<dyn Authorizer>>,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("custom_authenticator", &self.authenticator.is_some())
            .field("custom_authorizer", &self.authorizer.is_some())
            .finish()
    }
}

impl ServerBuilder {
    /// A builder for `config`.
    pub fn new(config: ServerConfig) -> Self {
        ServerBuilder {
            config,
            authenticator: None,
            authorizer: None,
        }
    }

    /// Decides CONNECTs with `authenticator` instead of the password file and listener policy.
    pub fn authenticator(mut self, authenticator: Box<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// Decides publications and subscriptions with `authorizer` instead of the ACL file.
    pub fn authorizer(mut self, authorizer: Box<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Loads the security files, binds every listener and starts serving.
    pub async fn start(self) -> Result<Server, ServerError> {
        let config = self.config;
        config.validate().map_err(ServerError::Config)?;
        let (files, warnings) =
            SecurityFiles::load(config.password_file.clone(), config.acl_file.clone())
                .map_err(ServerError::Security)?;
        warnings.iter().for_each(|w| warn!("{w}"));
        let files = Arc::new(files);
        let listeners = config.effective_listeners();
        let policies: Vec<ListenerPolicy> = listeners
            .iter()
            .map(|l| ListenerPolicy {
                allow_anonymous: l.allow_anonymous,
                use_identity_as_username: l.use_identity_as_username,
            })
            .collect();

        let mut core_config = config.core_config();
        if config.persistence == Some(true) {
            // Both modes hold acknowledgements until the storage thread reports their records
            // written: durably (sync), or journaled with one `write` (periodic).
            core_config.persistence = Persistence::Sync;
        }
        let queue_cap = core_config.max_outbox_bytes.saturating_mul(2) + 64 * 1024;
        let handshake_timeout = core_config.connect_timeout;
        let broker = Broker::try_new(core_config).map_err(ServerError::Core)?;
        let broker = broker
            .with_authenticator(self.authenticator.unwrap_or_else(|| {
                Box::new(FileAuthenticator::new(files.clone(), policies.clone()))
            }))
            .with_authorizer(
                self.authorizer
                    .unwrap_or_else(|| Box::new(FileAuthorizer::new(files.clone(), policies))),
            );
        let (inputs, receiver) = mpsc::channel(INPUT_CHANNEL);
        let (broker, storage) = if config.persistence == Some(true) {
            let dir = config
                .persistence_location
                .clone()
                .unwrap_or_else(|| PathBuf::from("data"));
            let (now, wall) = (Instant::now(), SystemTime::now());
            let (store, state) =
                storage::open(&dir, config.start_fresh, now).map_err(ServerError::Store)?;
            info!(
                file = %store.path().display(),
                retained = state.retained.len(),
                sessions = state.sessions.len(),
                durability = %config.durability,
                "store loaded"
            );
            if let Some(replay) = store.journal_replay() {
                info!(
                    entries = replay.entries,
                    "changes journaled before the last stop written into the store"
                );
                if replay.ignored_bytes > 0 {
                    warn!(
                        bytes = replay.ignored_bytes,
                        "the journal ended in a write cut short (never acknowledged); ignored"
                    );
                }
            }
            info!("{}", config.durability.guarantee());
            let mut broker = broker;
            broker.restore(state, now, wall);
            let clock = WallClock::new(now, wall);
            let storage = Storage::start(store, clock, config.durability, inputs.clone());
            (broker, Some(storage))
        } else {
            (broker, None)
        };

        let mut bound = Vec::with_capacity(listeners.len());
        let mut addresses = Vec::with_capacity(listeners.len());
        for (index, settings) in listeners.iter().enumerate() {
            let address = format!("{}:{}", settings.bind_address, settings.port);
            let socket = TcpListener::bind(&address)
                .await
                .map_err(|e| ServerError::Bind(address.clone(), e))?;
            let local = socket
                .local_addr()
                .map_err(|e| ServerError::Bind(address.clone(), e))?;
            let socket = socket
                .into_std()
                .and_then(|socket| reactor::watch(mio::net::TcpListener::from_std(socket)))
                .map_err(|e| ServerError::Bind(address.clone(), e))?;
            let tls = tls::acceptor(settings).map_err(ServerError::Tls)?;
            let scheme = match (settings.protocol, tls.is_some()) {
                (Protocol::Mqtt, false) => "mqtt",
                (Protocol::Mqtt, true) => "mqtts",
                (Protocol::Websockets, false) => "ws",
                (Protocol::Websockets, true) => "wss",
            };
            info!(
                "listening on {scheme}://{local} (anonymous {})",
                if settings.allow_anonymous {
                    "allowed"
                } else {
                    "refused"
                }
            );
            addresses.push(local);
            bound.push(Listener {
                id: ListenerId(u16::try_from(index).map_err(|_| {
                    ServerError::Config(ConfigError::Invalid("too many listeners".into()))
                })?),
                socket,
                protocol: settings.protocol,
                tls,
                limit: settings
                    .max_connections
                    .map(|n| Arc::new(Semaphore::new(n))),
                handshake_timeout,
                queue_cap,
            });
        }

        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let reactors = reactor::Reactors::start(workers, &inputs, queue_cap)
            .map_err(|e| ServerError::Bind("the connection poller".into(), e))?;
        let broker_task = tokio::spawn(broker_task::run(
            broker,
            receiver,
            storage,
            reactors.clone(),
        ));
        let ids = Arc::new(AtomicU64::new(1));
        let accept_tasks = bound
            .into_iter()
            .map(|l| {
                let (inputs, ids, reactors) = (inputs.clone(), ids.clone(), reactors.clone());
                tokio::spawn(accept_loop(l, inputs, ids, reactors))
            })
            .collect();
        Ok(Server {
            addresses,
            handle: ServerHandle {
                inputs,
                ids,
                queue_cap,
            },
            files,
            broker_task,
            accept_tasks,
        })
    }
}

/// A running server. Dropping it without [`Server::shutdown`] leaves its tasks running.
///
/// Data flow: a connection's reader (its reactor for plain TCP, its own task for TLS and
/// WebSocket) reads the socket and sends the bytes to the broker task over one bounded channel
/// (a full channel makes readers wait, which slows fast publishers through TCP instead of
/// buffering). The broker task answers by handing `Bytes` chunks to the connection's reactor
/// mailbox or write queue, never waiting on a socket; the writer drains them with vectored
/// writes and reports the bytes written, which the core uses to bound each connection's
/// outbox. A slow subscriber therefore only fills its own outbox: beyond it the
/// core drops its QoS 0 messages and keeps QoS 1/2 in its bounded session queue.
#[derive(Debug)]
pub struct Server {
    addresses: Vec<SocketAddr>,
    handle: ServerHandle,
    files: Arc<SecurityFiles>,
    broker_task: JoinHandle<()>,
    accept_tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// A builder for `config`.
    pub fn builder(config: ServerConfig) -> ServerBuilder {
        ServerBuilder::new(config)
    }

    /// The bound address of each listener, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// A handle for publishing and connecting clients from inside the process.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Re-reads the password and ACL files (what SIGHUP does); returns the problems met.
    pub fn reload_security(&self) -> Vec<String> {
        self.files.reload()
    }

    /// Stops accepting, closes every connection (letting queued bytes out for up to two
    /// seconds) and waits for the broker task to end.
    pub async fn shutdown(self) {
        self.accept_tasks.iter().for_each(JoinHandle::abort);
        let _ = self.handle.inputs.send(Input::Shutdown).await;
        if let Err(e) = self.broker_task.await {
            error!(%e, "broker task failed");
        }
    }

    /// Serves until SIGINT or SIGTERM (Ctrl-C elsewhere), reloading the security files on
    /// SIGHUP, then shuts down.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        signals::serve(&self).await?;
        self.shutdown().await;
        Ok(())
    }
}

/// Publishes into a running server from the same process, and connects in-process clients
/// ([`ServerHandle::connect`]).
#[derive(Debug, Clone)]
pub struct ServerHandle {
    inputs: mpsc::Sender<Input>,
    /// Where connection ids come from (shared with the listeners).
    ids: Arc<AtomicU64>,
    /// The byte cap of a connection's write queue.
    queue_cap: usize,
}

impl ServerHandle {
    /// Publishes `payload` to `topic` as if a client had, waiting only for room in the broker's
    /// input channel.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), ServerError> {
        let topic = MqttStr::try_from(topic.to_owned()).map_err(|_| ServerError::InvalidTopic)?;
        let message = Message::new(topic, payload.into(), qos, retain, Instant::now());
        self.inputs
            .send(Input::Publish(Box::new(message)))
            .await
            .map_err(|_| ServerError::Stopped)
    }
}

mod signals {
    //! Waiting for the operator: SIGINT/SIGTERM stop the server, SIGHUP reloads its files.

    use tracing::{error, info};

    use super::Server;

    #[cfg(unix)]
    pub(super) async fn serve(server: &Server) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut hangup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => {
                    info!("SIGHUP: reloading password and ACL files");
                    server.reload_security().iter().for_each(|p| error!("{p}"));
                }
            }
        }
        info!("signal received, stopping");
        Ok(())
    }

    #[cfg(not(unix))]
    pub(super) async fn serve(_server: &Server) -> std::io::Result<()> {
        tokio::signal::ctrl_c().await
    }
}

/// Time a shutdown may take at most, for callers that bound it.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(3);
