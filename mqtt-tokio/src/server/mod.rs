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
//!
//! The two connection paths differ only in their I/O (`mio` readiness and a timer heap for
//! many sockets in a reactor, tokio `AsyncRead`/`AsyncWrite` and a `Sleep` in a connection
//! task); their flow control is one (see `flow`): the same input credit (`flow::InputCredit`),
//! the same outbox with its one byte guard (`outbox::Outbox`; the core's own outbox count is
//! the flow control of the bytes going out), and the same closing state machine
//! (`closing::Life`: one `Phase`, one linger rule).

mod bridge;
mod bridge_status;
mod broker_task;
mod certificate;
mod closing;
mod cluster_port;
mod connection;
mod events;
mod flow;
mod http_files;
mod input;
mod listener;
mod local_client;
mod local_link;
mod metrics;
mod outbox;
mod reactor;
mod read_gate;
mod storage;
mod tls;
mod transport;
mod web;
mod write_queue;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_broker_core::{
    ApiMisuse, AuthRequest, Broker, Config, ConnectionId, ListenerId, Message, Stats,
    hooks::{AuthStep, Authenticator, Authorizer, EnhancedAuthenticator},
};
use mqtt_wire::{MqttStr, QoS, ReasonCode};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::auth::hooks::{
    FileAuthenticator, FileAuthorizer, ListenerPolicy, ListenerSecurity, SecurityFiles,
};
use crate::config::{ConfigError, Protocol, ServerConfig, SocketDomain};
use broker_task::Outlets;
pub use cluster_port::{ClusterOutput, ClusterOutputs, FORWARD_HIGH};
use events::EventHub;
pub use input::SessionSummary;
use input::{Input, RemoteInput};
use listener::{Listener, accept_loop};
use metrics::Metrics;
use mqtt_broker_core::persist::Persistence;
use mqtt_store::WallClock;
use std::path::PathBuf;
use std::time::SystemTime;
use storage::Storage;
pub use storage::{MosquittoImport, describe_import, import_mosquitto_db};

pub use events::{DEFAULT_EVENT_CAPACITY, EventRecvError, Events};
pub use local_client::{
    Delivery, LocalClient, LocalConnectOptions, LocalWill, MessageProperties, PublishRequest,
    SubscribeRequest,
};

/// Capacity of the broker task's input channel; readers wait when it is full.
const INPUT_CHANNEL: usize = 1024;

/// Messages a second the broker samples for the web page's viewers (with an HTTP listener).
const TAP_PER_SECOND: u32 = 2000;

/// Sampled messages a slow viewer may lag behind before it loses the oldest.
const TAP_BACKLOG: usize = 1024;

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
    /// A property of an in-process client's message or will is not a valid MQTT string
    /// (it names the property).
    InvalidProperty(&'static str),
    /// The broker refused the answer to a deferred authentication: no decision is waiting on
    /// that connection (the client left, reached its CONNECT deadline, or was answered
    /// already), or the answer does not fit (a `Fail` with a success code, a `Continue` without
    /// an authentication method).
    AuthAnswer(ApiMisuse),
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
            ServerError::InvalidProperty(name) => write!(f, "invalid {name}"),
            ServerError::AuthAnswer(misuse) => write!(f, "authentication answer refused: {misuse}"),
            ServerError::Stopped => f.write_str("the server has stopped"),
        }
    }
}

impl std::error::Error for ServerError {}

/// A change of the core configuration given to [`ServerBuilder::core_config`].
type CoreConfigChange = Box<dyn FnOnce(&mut Config) + Send>;

/// Builds a [`Server`]: the configuration, and optionally the hooks and limits of the broker
/// core.
///
/// * Who may connect: [`authenticator`](Self::authenticator) (replaces the password file and
///   the listeners' `allow_anonymous`), [`enhanced_authenticator`](Self::enhanced_authenticator)
///   (the MQTT 5.0 AUTH exchange), and [`auth_requests`](Self::auth_requests), where the
///   decisions those hooks defer ([`AuthDecision::Defer`](mqtt_broker_core::hooks::AuthDecision::Defer),
///   [`AuthStep::Defer`]) go, to be answered later through [`ServerHandle::accept_connect`],
///   [`ServerHandle::reject_connect`] or [`ServerHandle::continue_auth`].
/// * What they may do: [`authorizer`](Self::authorizer) (replaces the ACL file).
/// * Limits: those of [`ServerConfig::limits`] (the configuration file's), and every other
///   field of the core [`Config`] through [`core_config`](Self::core_config).
/// * Where state lives: in memory (the default), or written by the server's storage thread to
///   a store file, chosen in the [`ServerConfig`] itself: `persistence`,
///   `persistence_location` and `durability` (no file needed, see the example). Another store
///   can be built on the core's records (`mqtt_broker_core::persist`) by driving a `Broker`
///   directly.
/// * Events: [`event_capacity`](Self::event_capacity) bounds what
///   [`ServerHandle::subscribe_events`] receivers may fall behind.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mqtt_tokio::config::{Durability, ListenerConfig, ServerConfig};
/// use mqtt_tokio::mqtt_broker_core::hooks::{AuthDecision, Authenticator, ConnectCredentials};
/// use mqtt_tokio::Server;
///
/// struct OnlyAlice;
/// impl Authenticator for OnlyAlice {
///     fn authenticate(&mut self, c: &ConnectCredentials<'_>) -> AuthDecision {
///         match c.username {
///             Some("alice") => AuthDecision::Accept,
///             _ => AuthDecision::Reject(mqtt_tokio::mqtt_wire::ReasonCode::NotAuthorized),
///         }
///     }
/// }
///
/// let store = tempfile::tempdir()?;
/// let mut listener = ListenerConfig::default();
/// listener.port = 0;
/// let mut config = ServerConfig::default();
/// config.listeners.push(listener);
/// // State on disk, every acknowledgement after its fsync; `None` or `Some(false)`: in memory.
/// config.persistence = Some(true);
/// config.persistence_location = Some(store.path().to_owned());
/// config.durability = Durability::Sync;
///
/// let server = Server::builder(config)
///     .authenticator(Box::new(OnlyAlice))
///     .core_config(|core| {
///         core.max_sessions = 1_000;
///         core.max_retained_messages = 100;
///     })
///     .start()
///     .await?;
/// assert_eq!(server.handle().stats().await?.clients_connected, 0);
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct ServerBuilder {
    config: ServerConfig,
    authenticator: Option<Box<dyn Authenticator>>,
    authorizer: Option<Box<dyn Authorizer>>,
    enhanced_authenticator: Option<Box<dyn EnhancedAuthenticator>>,
    core_config: Vec<CoreConfigChange>,
    auth_requests: Option<mpsc::Sender<AuthRequest>>,
    event_capacity: usize,
    cluster: bool,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("custom_authenticator", &self.authenticator.is_some())
            .field("custom_authorizer", &self.authorizer.is_some())
            .field(
                "enhanced_authenticator",
                &self.enhanced_authenticator.is_some(),
            )
            .field("core_config_changes", &self.core_config.len())
            .field("auth_requests", &self.auth_requests.is_some())
            .field("event_capacity", &self.event_capacity)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// Checks `config` as far as it can be without binding a socket or opening the store: the
/// values, each listener's password and ACL files, TLS certificate, key, CA and CRL files and
/// `http_dir`, and the broker core's limits. What `mqtt-broker check-config` runs.
pub fn check_config(config: &ServerConfig) -> Result<(), ServerError> {
    config.validate().map_err(ServerError::Config)?;
    for (index, listener) in config.effective_listeners().iter().enumerate() {
        let (passwords, acl) = config.security_files(listener);
        SecurityFiles::load(passwords, acl).map_err(ServerError::Security)?;
        tls::Tls::new(listener).map_err(ServerError::Tls)?;
        if let Some(dir) = &listener.http_dir {
            http_files::HttpDir::new(dir).map_err(|why| {
                ServerError::Config(ConfigError::Invalid(format!("listener {index}: {why}")))
            })?;
        }
    }
    Broker::try_new(config.core_config()).map_err(ServerError::Core)?;
    Ok(())
}

impl ServerBuilder {
    /// A builder for `config`.
    pub fn new(config: ServerConfig) -> Self {
        ServerBuilder {
            config,
            authenticator: None,
            authorizer: None,
            enhanced_authenticator: None,
            core_config: Vec::new(),
            auth_requests: None,
            event_capacity: events::DEFAULT_EVENT_CAPACITY,
            cluster: false,
        }
    }

    /// Decides CONNECTs with `authenticator` instead of the password file and listener policy.
    /// It may answer [`AuthDecision::Defer`](mqtt_broker_core::hooks::AuthDecision::Defer) to decide
    /// later: see [`auth_requests`](Self::auth_requests).
    pub fn authenticator(mut self, authenticator: Box<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// Decides publications and subscriptions with `authorizer` instead of the ACL file.
    pub fn authorizer(mut self, authorizer: Box<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Runs the MQTT 5.0 enhanced authentication exchange (CONNECT with an Authentication
    /// Method, then AUTH packets both ways) with `authenticator`. Without it a CONNECT that
    /// names a method is refused with 0x8C Bad authentication method. A step may answer
    /// [`AuthStep::Defer`] to decide later: see [`auth_requests`](Self::auth_requests).
    pub fn enhanced_authenticator(mut self, authenticator: Box<dyn EnhancedAuthenticator>) -> Self {
        self.enhanced_authenticator = Some(authenticator);
        self
    }

    /// Where deferred authentication decisions go. When the authenticator answers
    /// [`AuthDecision::Defer`](mqtt_broker_core::hooks::AuthDecision::Defer) (or an enhanced
    /// authentication step [`AuthStep::Defer`]), the broker task sends the
    /// [`AuthRequest`] (credentials, or method and data) to `requests` and goes on serving
    /// the other connections; the waiting client gets its CONNACK (or next AUTH) when the
    /// application answers with [`ServerHandle::accept_connect`],
    /// [`ServerHandle::reject_connect`] or [`ServerHandle::continue_auth`], from any task and
    /// at any time before the CONNECT deadline (`limits.connect_timeout`), after which the
    /// broker closes the connection and a late answer gets [`ServerError::AuthAnswer`].
    ///
    /// The broker task never waits on this channel: a request that finds it full or closed
    /// is refused at once with 0x88 Server unavailable, as every deferred decision is when
    /// this is not set.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use mqtt_tokio::mqtt_broker_core::hooks::{AuthDecision, Authenticator, ConnectCredentials};
    /// use mqtt_tokio::{LocalConnectOptions, Server};
    ///
    /// /// Asks the application about every client.
    /// struct AskLater;
    /// impl Authenticator for AskLater {
    ///     fn authenticate(&mut self, _: &ConnectCredentials<'_>) -> AuthDecision {
    ///         AuthDecision::Defer
    ///     }
    /// }
    ///
    /// let config = mqtt_tokio::config::parse_toml("[[listener]]\nport = 0\n")?;
    /// let (requests, mut pending) = tokio::sync::mpsc::channel(64);
    /// let server = Server::builder(config)
    ///     .authenticator(Box::new(AskLater))
    ///     .auth_requests(requests)
    ///     .start()
    ///     .await?;
    /// let handle = server.handle();
    /// tokio::spawn(async move {
    ///     while let Some(request) = pending.recv().await {
    ///         // A database or HTTP call would go here.
    ///         let _ = handle.accept_connect(request.conn).await;
    ///     }
    /// });
    /// let client = server.handle().connect("app", LocalConnectOptions::new()).await?;
    /// client.disconnect().await?;
    /// server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn auth_requests(mut self, requests: mpsc::Sender<AuthRequest>) -> Self {
        self.auth_requests = Some(requests);
        self
    }

    /// Adjusts the broker core's limits and switches. `change` gets the [`Config`] that the
    /// [`ServerConfig`] makes (its `limits` and `check_retain_source` applied to the core's
    /// defaults) and may change any field, e.g. `max_sessions`, `max_queued_bytes`,
    /// `max_outbox_bytes`, the retained-message bounds, `max_subscriptions_per_client`,
    /// `topic_alias_maximum`, `max_topic_levels`, `max_client_id_len`,
    /// `max_session_expiry_interval`, `allow_empty_client_id`, `retain_available`,
    /// `assigned_client_id_prefix`, `version_string`; a field the `ServerConfig` also sets is
    /// overridden. Calls add up, in order. The one field it cannot change is `persistence`,
    /// which follows the store chosen in the `ServerConfig`. The result is checked
    /// ([`Config::validate`]) by [`start`](Self::start), which fails with
    /// [`ServerError::Core`].
    pub fn core_config(mut self, change: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.core_config.push(Box::new(change));
        self
    }

    /// How many events a [`ServerHandle::subscribe_events`] receiver may fall behind before it
    /// loses the oldest (default [`DEFAULT_EVENT_CAPACITY`]; at least 1). The memory it takes
    /// is bounded by this, however slow the receivers are.
    pub fn event_capacity(mut self, events: usize) -> Self {
        self.event_capacity = events.max(1);
        self
    }

    /// Makes this server a node of a cluster (as a `[cluster]` table in the configuration
    /// does; with this alone, give each node its own `auto_id_prefix`): the broker core runs
    /// with [`Config::cluster`], and what a backplane needs (messages published here, interest,
    /// clients waiting to be admitted, ended sessions, backpressure) is waiting in
    /// [`Server::cluster_outputs`] from the start; the backplane answers through the cluster
    /// methods of [`ServerHandle`] (`publish_remote`, `publish_remote_shared`, `retain_remote`,
    /// `admit`, `export_session`, `session_taken_over`, `set_cluster_link`,
    /// `set_cluster_pressure`). Every CONNECT then waits for `admit`, and shared subscriptions
    /// are served as the backplane says.
    pub fn cluster(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// Loads the security files, binds every listener and starts serving.
    pub async fn start(self) -> Result<Server, ServerError> {
        let config = self.config;
        config.validate().map_err(ServerError::Config)?;
        let listeners = config.effective_listeners();
        // Each listener's files: its own where it names them, else the server's; the same
        // pair of files is loaded once and shared.
        let mut files: Vec<Arc<SecurityFiles>> = Vec::new();
        let mut loaded: Vec<(SecurityPaths, Arc<SecurityFiles>)> = Vec::new();
        let mut security = Vec::with_capacity(listeners.len());
        for listener in &listeners {
            let paths = config.security_files(listener);
            let shared = match loaded.iter().find(|(p, _)| *p == paths) {
                Some((_, shared)) => shared.clone(),
                None => {
                    let (set, warnings) = SecurityFiles::load(paths.0.clone(), paths.1.clone())
                        .map_err(ServerError::Security)?;
                    warnings.iter().for_each(|w| warn!("{w}"));
                    let set = Arc::new(set);
                    files.push(set.clone());
                    loaded.push((paths, set.clone()));
                    set
                }
            };
            security.push(ListenerSecurity {
                policy: ListenerPolicy {
                    allow_anonymous: listener.allow_anonymous,
                    use_identity_as_username: listener.use_identity_as_username
                        || listener.use_subject_as_username,
                },
                files: shared,
            });
        }

        let persistent = config.persistence == Some(true);
        let mut core_config = config.core_config();
        self.core_config
            .into_iter()
            .for_each(|change| change(&mut core_config));
        core_config.cluster |= self.cluster;
        let cluster = core_config.cluster;
        // Both modes hold acknowledgements until the storage thread reports their records
        // written: durably (sync), or journaled with one `write` (periodic). Without the
        // storage thread nothing would answer the persistence batches.
        // The web page's topic tree watches a sample of what is routed.
        if listeners.iter().any(|l| l.protocol == Protocol::Http) {
            core_config.tap_per_second = TAP_PER_SECOND;
        }
        core_config.persistence = if persistent {
            Persistence::Sync
        } else {
            Persistence::Off
        };
        let queue_cap = core_config.max_outbox_bytes.saturating_mul(2) + 64 * 1024;
        let handshake_timeout = core_config.connect_timeout;
        let bridge_side = bridge::LocalSide {
            receive_maximum: core_config.receive_maximum,
            max_inflight: config.limits.max_inflight_messages.max(1),
            sys_interval: core_config.sys_interval,
            max_packet_size: core_config.max_packet_size,
        };
        let broker = Broker::try_new(core_config).map_err(ServerError::Core)?;
        // The HTTP listeners check `/metrics` logins against their listener's password file.
        let listener_files: Vec<Arc<SecurityFiles>> =
            security.iter().map(|s| s.files.clone()).collect();
        let broker = broker
            .with_authenticator(
                self.authenticator
                    .unwrap_or_else(|| Box::new(FileAuthenticator::per_listener(security.clone()))),
            )
            .with_authorizer(
                self.authorizer
                    .unwrap_or_else(|| Box::new(FileAuthorizer::per_listener(security))),
            );
        let broker = match self.enhanced_authenticator {
            Some(enhanced) => broker.with_enhanced_authenticator(enhanced),
            None => broker,
        };
        let (inputs, receiver) = mpsc::channel(INPUT_CHANNEL);
        let metrics = Metrics::new();
        let (broker, storage) = if persistent {
            let dir = config
                .persistence_location
                .clone()
                .unwrap_or_else(|| PathBuf::from("data"));
            // Switching from mosquitto: its file beside no store of ours is taken over once.
            let mosquitto_db = dir.join("mosquitto.db");
            if !dir.join(storage::STORE_FILE).exists() && mosquitto_db.is_file() {
                let import = import_mosquitto_db(&mosquitto_db, &dir)
                    .map_err(|why| ServerError::Store(mqtt_store::StoreError::Io(why)))?;
                info!(
                    file = %mosquitto_db.display(),
                    "first start beside a mosquitto.db: imported {}",
                    describe_import(&import)
                );
            }
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
            let storage = Storage::start(
                store,
                clock,
                config.durability,
                inputs.clone(),
                metrics.clone(),
            );
            (broker, Some(storage))
        } else {
            (broker, None)
        };

        let mut bound = Vec::with_capacity(listeners.len());
        let mut web_listeners = Vec::new();
        let mut addresses = Vec::with_capacity(listeners.len());
        let mut tls_sides = Vec::new();
        for (index, settings) in listeners.iter().enumerate() {
            let host = match &settings.bind_interface {
                Some(interface) => interface_address(interface, &settings.bind_address)
                    .map_err(|why| ServerError::Config(ConfigError::Invalid(why)))?
                    .to_string(),
                None => settings.bind_address.clone(),
            };
            let (address, socket) = bind(&host, settings.port, settings.socket_domain).await?;
            let local = socket
                .local_addr()
                .map_err(|e| ServerError::Bind(address.clone(), e))?;
            let tls = tls::Tls::new(settings)
                .map_err(ServerError::Tls)?
                .map(Arc::new);
            tls_sides.extend(tls.clone());
            let scheme = settings.scheme();
            addresses.push(local);
            if settings.protocol == Protocol::Http {
                let anonymous = settings.allow_anonymous && local.ip().is_loopback();
                info!(
                    "serving metrics on {scheme}://{local}/metrics (login {})",
                    if anonymous { "not needed" } else { "needed" }
                );
                let limit = settings
                    .max_connections
                    .map(|n| Arc::new(Semaphore::new(n)));
                let files = listener_files[index].clone();
                web_listeners.push((socket, tls, limit, anonymous, files));
                continue;
            }
            let socket = socket
                .into_std()
                .and_then(|socket| reactor::watch(mio::net::TcpListener::from_std(socket)))
                .map_err(|e| ServerError::Bind(address.clone(), e))?;
            info!(
                "listening on {scheme}://{local} (anonymous {})",
                if settings.allow_anonymous {
                    "allowed"
                } else {
                    "refused"
                }
            );
            let id = u16::try_from(index).map_err(|_| {
                ServerError::Config(ConfigError::Invalid("too many listeners".into()))
            })?;
            bound.push(Listener {
                id: ListenerId(id),
                socket,
                websocket: settings.protocol == Protocol::Websockets,
                tls,
                limit: settings
                    .max_connections
                    .map(|n| Arc::new(Semaphore::new(n))),
                handshake_timeout,
                queue_cap,
                accepted: metrics.accepted_on(id, &format!("{scheme}://{local}")),
                http: match &settings.http_dir {
                    Some(dir) => Some(Arc::new(http_files::HttpDir::new(dir).map_err(|why| {
                        ServerError::Config(ConfigError::Invalid(format!(
                            "listener {index}: {why}"
                        )))
                    })?)),
                    None => None,
                },
            });
        }

        // The broker task keeps one worker busy; the reactors get the others (one at least).
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let reactors = reactor::Reactors::start(workers.saturating_sub(1), &inputs, queue_cap)
            .map_err(|e| ServerError::Bind("the connection poller".into(), e))?;
        let events = Arc::new(EventHub::new(self.event_capacity));
        let (taps, _) = tokio::sync::broadcast::channel(TAP_BACKLOG);
        let (cluster_port, cluster_outputs) = match cluster {
            true => {
                let (port, outputs) = cluster_port::channel(inputs.clone());
                (Some(port), Some(outputs))
            }
            false => (None, None),
        };
        let outlets = Outlets {
            auth_requests: self.auth_requests,
            events: events.clone(),
            taps: taps.clone(),
            cluster: cluster_port,
        };
        let broker_task = tokio::spawn(broker_task::run(
            broker,
            receiver,
            storage,
            reactors.clone(),
            outlets,
        ));
        let ids = Arc::new(AtomicU64::new(1));
        let mut accept_tasks: Vec<JoinHandle<()>> = bound
            .into_iter()
            .map(|l| {
                let (inputs, ids, reactors) = (inputs.clone(), ids.clone(), reactors.clone());
                tokio::spawn(accept_loop(l, inputs, ids, reactors))
            })
            .collect();
        let handle = ServerHandle {
            inputs,
            ids,
            queue_cap,
            events: Arc::downgrade(&events),
            taps,
        };
        let (bridge_tasks, bridges) = bridge::start(&config.bridges, &handle, bridge_side)?;
        accept_tasks.extend(bridge_tasks);
        metrics.watch_bridges(bridges);
        for (socket, tls, limit, anonymous, files) in web_listeners {
            let web = Arc::new(web::Web {
                handle: handle.clone(),
                metrics: metrics.clone(),
                files,
                anonymous,
                secure: tls.is_some(),
                logins: Default::default(),
                histories: Default::default(),
            });
            let serving = web::accept_loop(socket, tls, web, limit, handshake_timeout);
            accept_tasks.push(tokio::spawn(serving));
        }
        Ok(Server {
            addresses,
            handle,
            files,
            tls: tls_sides,
            broker_task,
            accept_tasks,
            cluster_outputs,
        })
    }
}

/// The address a listener with `bind_interface` binds: the interface's first IPv4 address,
/// else its first IPv6 address; a specific `bind_address` must be one of them.
fn interface_address(interface: &str, bind_address: &str) -> Result<IpAddr, String> {
    let addresses: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .map_err(|e| format!("bind_interface {interface}: {e}"))?
        .filter(|a| a.interface_name == interface)
        .filter_map(|a| {
            let address = a.address?;
            (address.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())))
                .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect();
    if let Ok(wanted) = bind_address.parse::<IpAddr>()
        && !wanted.is_unspecified()
    {
        return addresses.contains(&wanted).then_some(wanted).ok_or_else(|| {
            format!("bind_interface {interface}: bind_address {bind_address} is not one of its addresses")
        });
    }
    (addresses.iter().find(|a| a.is_ipv4()))
        .or_else(|| addresses.first())
        .copied()
        .ok_or_else(|| {
            format!("bind_interface {interface}: no such interface, or it has no address")
        })
}

/// A listener's password and ACL file paths.
type SecurityPaths = (Option<PathBuf>, Option<PathBuf>);

/// Linux's "address family not supported" (no IPv6 in the kernel).
const EAFNOSUPPORT: i32 = 97;

/// Binds a listening socket on `host` and `port`; the address it names, and the socket. An
/// IPv6 literal is bracketed. `::` listens on every interface, IPv6 and IPv4 (a dual-stack
/// socket, as mosquitto's `listener PORT` opens both); where the host has no IPv6 it falls
/// back to every IPv4 interface, saying so. A `domain` keeps to one IP version (mosquitto's
/// `socket_domain`): `::` then means every interface of that version only, and a host name
/// its first address of that version.
async fn bind(
    host: &str,
    port: u16,
    domain: Option<SocketDomain>,
) -> Result<(String, TcpListener), ServerError> {
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let bind_error = |e| ServerError::Bind(address.clone(), e);
    match (host, domain) {
        (_, None) => {}
        ("::", Some(SocketDomain::Ipv4)) => {
            let any = format!("0.0.0.0:{port}");
            let socket = TcpListener::bind(&any)
                .await
                .map_err(|e| ServerError::Bind(any.clone(), e))?;
            return Ok((any, socket));
        }
        ("::", Some(SocketDomain::Ipv6)) => {
            let socket = bind_ipv6_only(port).map_err(bind_error)?;
            return Ok((address, socket));
        }
        (_, Some(domain)) => {
            let chosen = tokio::net::lookup_host(&address)
                .await
                .map_err(bind_error)?
                .find(|a| a.is_ipv4() == (domain == SocketDomain::Ipv4))
                .ok_or_else(|| {
                    bind_error(std::io::Error::new(
                        std::io::ErrorKind::AddrNotAvailable,
                        format!("no {domain:?} address (socket_domain)"),
                    ))
                })?;
            let socket = TcpListener::bind(chosen).await.map_err(bind_error)?;
            return Ok((chosen.to_string(), socket));
        }
    }
    match TcpListener::bind(&address).await {
        Ok(socket) => Ok((address, socket)),
        Err(e)
            if host == "::"
                && (matches!(
                    e.kind(),
                    std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
                ) || e.raw_os_error() == Some(EAFNOSUPPORT)) =>
        {
            warn!(%e, "no IPv6 on this host: listening on every IPv4 interface only");
            let fallback = format!("0.0.0.0:{port}");
            let socket = TcpListener::bind(&fallback)
                .await
                .map_err(|e| ServerError::Bind(fallback.clone(), e))?;
            Ok((fallback, socket))
        }
        Err(e) => Err(ServerError::Bind(address, e)),
    }
}

/// A socket listening on every IPv6 interface and no IPv4 one (`IPV6_V6ONLY`).
fn bind_ipv6_only(port: u16) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v6()?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv6V6Only, &true)
        .map_err(std::io::Error::from)?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))?;
    socket.listen(1024)
}

/// A running server. Dropping it without [`Server::shutdown`] leaves its tasks running.
///
/// Data flow: a connection's reader (its reactor for plain TCP, its own task for TLS and
/// WebSocket) reads the socket and sends the bytes to the broker task over one bounded channel
/// (a full channel makes readers wait, which slows fast publishers through TCP instead of
/// buffering). The broker task answers by handing `Bytes` chunks to the connection's reactor
/// mailbox or write queue, never waiting on a socket; the writer drains them with vectored
/// writes and reports the bytes written, which the core uses to bound each connection's
/// outbox (the adapter only guards against a core that overshoots it: a connection whose
/// unwritten bytes would pass twice `max_outbox_bytes` and 64 KiB is closed). A slow
/// subscriber therefore only fills its own outbox: beyond it the core drops its QoS 0 messages
/// and keeps QoS 1/2 in its bounded session queue.
#[derive(Debug)]
pub struct Server {
    addresses: Vec<SocketAddr>,
    handle: ServerHandle,
    /// Every distinct set of password and ACL files (one per listener at most).
    files: Vec<Arc<SecurityFiles>>,
    /// The TLS sides of the listeners, reloaded with the security files.
    tls: Vec<Arc<tls::Tls>>,
    broker_task: JoinHandle<()>,
    accept_tasks: Vec<JoinHandle<()>>,
    /// What the backplane reads, until it is taken.
    cluster_outputs: Option<ClusterOutputs>,
}

impl Server {
    /// A builder for `config`.
    pub fn builder(config: ServerConfig) -> ServerBuilder {
        ServerBuilder::new(config)
    }

    /// What this node hands its cluster's backplane (see [`ServerBuilder::cluster`]); `None`
    /// when the server is not a node of a cluster, or once taken.
    pub fn cluster_outputs(&mut self) -> Option<ClusterOutputs> {
        self.cluster_outputs.take()
    }

    /// The bound address of each listener, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// A handle for publishing and connecting clients from inside the process.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Re-reads the password and ACL files and the TLS listeners' certificate, key, CA and
    /// CRL files (what SIGHUP does); returns the problems met. A renewed certificate serves the
    /// next connections; open ones keep theirs. TLS files that cannot be used leave the
    /// listener as it was.
    pub fn reload_security(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.files.iter().flat_map(|f| f.reload()).collect();
        for tls in &self.tls {
            if let Err(why) = tls.reload() {
                problems.push(format!("TLS files not reloaded, the old ones stay: {why}"));
            }
        }
        problems
    }

    /// Hands an operator's request to the broker task (nothing when it has stopped).
    #[cfg(unix)]
    async fn operator(&self, input: Input) {
        let _ = self.handle.inputs.send(input).await;
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
    ///
    /// The signal handlers are installed by this call, before the returned future is first
    /// polled: a signal sent any time after it (say, right after a service manager heard that the
    /// broker is ready) is seen. Call it inside the runtime.
    pub fn run_until_signalled(self) -> impl Future<Output = std::io::Result<()>> {
        let signals = signals::Signals::install();
        async move {
            signals?.serve(&self).await;
            self.shutdown().await;
            Ok(())
        }
    }
}

/// The application's side of a running server, cheap to clone and usable from any task:
/// publishing ([`ServerHandle::publish`]), in-process clients ([`ServerHandle::connect`]),
/// answers to deferred authentications ([`ServerHandle::accept_connect`],
/// [`ServerHandle::reject_connect`], [`ServerHandle::continue_auth`]), the broker's counters
/// ([`ServerHandle::stats`]) and its events ([`ServerHandle::subscribe_events`]).
///
/// Every request goes to the broker task through the same bounded channel as the sockets'
/// bytes, so it is handled in order with them and waits only for room in that channel.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    inputs: mpsc::Sender<Input>,
    /// Where connection ids come from (shared with the listeners).
    ids: Arc<AtomicU64>,
    /// The byte cap of a connection's outbox (see `outbox`).
    queue_cap: usize,
    /// The broker task's event hub (weak: receivers see the end when the task ends).
    events: std::sync::Weak<EventHub>,
    /// The sample of routed messages, for the web page.
    taps: tokio::sync::broadcast::Sender<Arc<Message>>,
}

impl ServerHandle {
    /// Cluster: routes `message`, published on another node, to this node's plain
    /// subscriptions ([`Broker::publish_remote`](mqtt_broker_core::Broker::publish_remote)).
    pub async fn publish_remote(&self, message: Message) -> Result<(), ServerError> {
        self.remote(RemoteInput::Publish(Box::new(message), None))
            .await
    }

    /// Cluster: [`ServerHandle::publish_remote`], and a receiver told once the broker routed
    /// the message: a backplane that waits on it now and then keeps the messages it has handed
    /// in and the broker has not yet routed few, so that a pause of the cluster
    /// ([`ConnectionId::CLUSTER`](mqtt_broker_core::ConnectionId::CLUSTER)) takes effect at
    /// once.
    pub async fn publish_remote_tracked(
        &self,
        message: Message,
    ) -> Result<oneshot::Receiver<()>, ServerError> {
        let (routed, receiver) = oneshot::channel();
        self.remote(RemoteInput::Publish(Box::new(message), Some(routed)))
            .await?;
        Ok(receiver)
    }

    /// Cluster: delivers `message` to one member here of the shared subscription `filter`
    /// (`$share/{ShareName}/{filter}`), which the backplane picked this node for
    /// ([`Broker::publish_remote_shared`](mqtt_broker_core::Broker::publish_remote_shared)).
    /// A group with no member here any more gets nothing (logged).
    pub async fn publish_remote_shared(
        &self,
        message: Message,
        filter: Arc<str>,
    ) -> Result<(), ServerError> {
        self.remote(RemoteInput::Shared(Box::new(message), filter))
            .await
    }

    /// Cluster: the cluster's retained message of `message`'s topic changed (an empty payload
    /// clears it); it becomes this node's, without a delivery
    /// ([`Broker::retain_remote`](mqtt_broker_core::Broker::retain_remote)).
    pub async fn retain_remote(&self, message: Message) -> Result<(), ServerError> {
        self.remote(RemoteInput::Retain(Box::new(message))).await
    }

    /// Cluster: the session of `client_id` belongs to another node now; a connection holding
    /// it here is taken over (DISCONNECT 0x8E to a v5 client) and the session ends here
    /// ([`Broker::session_taken_over`](mqtt_broker_core::Broker::session_taken_over)).
    pub async fn session_taken_over(&self, client_id: &str) -> Result<(), ServerError> {
        self.remote(RemoteInput::TakenOver(client_id.into())).await
    }

    /// Cluster: lets the client waiting on `conn` ([`ClusterOutput::Admit`]) in, with
    /// `session` as the node that held it handed it over
    /// ([`Broker::admit`](mqtt_broker_core::Broker::admit)).
    pub async fn admit(
        &self,
        conn: ConnectionId,
        session: Option<mqtt_broker_core::persist::RecoveredSession>,
    ) -> Result<(), ServerError> {
        self.remote(RemoteInput::Admit(conn, session.map(Box::new)))
            .await
    }

    /// Cluster: gives the session of `client_id` up to another node and returns it
    /// ([`Broker::export_session`](mqtt_broker_core::Broker::export_session)); `None` when
    /// there is none here to resume.
    pub async fn export_session(
        &self,
        client_id: &str,
    ) -> Result<Option<mqtt_broker_core::persist::RecoveredSession>, ServerError> {
        let (reply, session) = oneshot::channel();
        self.remote(RemoteInput::Export(client_id.into(), reply))
            .await?;
        session.await.map_err(|_| ServerError::Stopped)
    }

    /// Cluster: whether the backplane reaches the other nodes; while it does not, this node
    /// serves its shared subscriptions itself
    /// ([`Broker::set_cluster_link`](mqtt_broker_core::Broker::set_cluster_link)).
    pub async fn set_cluster_link(&self, up: bool) -> Result<(), ServerError> {
        self.remote(RemoteInput::Link(up)).await
    }

    /// Cluster: a subscriber on another node is behind with the messages from here (`true`):
    /// this node stops reading its connections, as a single broker pauses a publisher for a
    /// full subscriber, until told it caught up (`false`).
    pub async fn set_cluster_pressure(&self, behind: bool) -> Result<(), ServerError> {
        self.remote(RemoteInput::Pressure(behind)).await
    }

    async fn remote(&self, input: RemoteInput) -> Result<(), ServerError> {
        self.inputs
            .send(Input::Remote(input))
            .await
            .map_err(|_| ServerError::Stopped)
    }

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

    /// Lets in the client whose authentication was deferred on `conn` (the
    /// [`AuthRequest::conn`] the application received, see [`ServerBuilder::auth_requests`]):
    /// it gets CONNACK 0x00, or stays connected after a re-authentication.
    ///
    /// # Errors
    /// [`ServerError::AuthAnswer`] when no decision is waiting on `conn` (the client left or
    /// reached its CONNECT deadline, or it was answered already); [`ServerError::Stopped`].
    pub async fn accept_connect(&self, conn: ConnectionId) -> Result<(), ServerError> {
        self.continue_auth(conn, AuthStep::Success(None)).await
    }

    /// Refuses the client whose authentication was deferred on `conn`: CONNACK `reason` (an
    /// error code such as `NotAuthorized` or `BadUserNameOrPassword`; a 3.1.1 client gets the
    /// matching return code) and the connection is closed.
    ///
    /// # Errors
    /// As [`ServerHandle::accept_connect`]; also [`ServerError::AuthAnswer`] when `reason` is
    /// not an error code.
    pub async fn reject_connect(
        &self,
        conn: ConnectionId,
        reason: ReasonCode,
    ) -> Result<(), ServerError> {
        self.continue_auth(conn, AuthStep::Fail(reason)).await
    }

    /// Answers a deferred authentication on `conn` with the next step: `Success` (with the
    /// server's final authentication data for the CONNACK, in an enhanced authentication),
    /// `Fail`, `Continue` (a challenge sent in AUTH 0x18; enhanced authentication only) or
    /// `Defer` (keep waiting). Returns once the broker has taken the answer.
    ///
    /// # Errors
    /// As [`ServerHandle::accept_connect`]; also [`ServerError::AuthAnswer`] for a step that
    /// does not fit the request.
    pub async fn continue_auth(
        &self,
        conn: ConnectionId,
        step: AuthStep,
    ) -> Result<(), ServerError> {
        let (done, answer) = oneshot::channel();
        self.inputs
            .send(Input::AuthAnswer { conn, step, done })
            .await
            .map_err(|_| ServerError::Stopped)?;
        answer
            .await
            .map_err(|_| ServerError::Stopped)?
            .map_err(ServerError::AuthAnswer)
    }

    /// The broker's counters ([`Stats`]), read by the broker task when it takes the request:
    /// a consistent snapshot, never a stale copy. It waits behind the inputs already queued;
    /// reading it costs the broker a pass over its sessions and connections, so poll it at the
    /// pace of a metrics scraper, not per message.
    ///
    /// # Errors
    /// [`ServerError::Stopped`].
    pub async fn stats(&self) -> Result<Stats, ServerError> {
        let (reply, stats) = oneshot::channel();
        self.inputs
            .send(Input::Stats(reply))
            .await
            .map_err(|_| ServerError::Stopped)?;
        stats.await.map_err(|_| ServerError::Stopped)
    }

    /// Every session, connected or not, summarised (a page of clients). A walk over all of
    /// them in the broker task: for an operator's view, not for every message.
    ///
    /// # Errors
    /// [`ServerError::Stopped`] once the server stopped.
    pub async fn sessions(&self) -> Result<Vec<SessionSummary>, ServerError> {
        let (reply, sessions) = oneshot::channel();
        self.inputs
            .send(Input::Sessions(reply))
            .await
            .map_err(|_| ServerError::Stopped)?;
        sessions.await.map_err(|_| ServerError::Stopped)
    }

    /// Ends the connection of the client `client_id` as an operator asked: DISCONNECT 0x98
    /// (Administrative action) to a v5 client, then close; its will is published, its session
    /// kept as its expiry says. `Ok(false)` when no such client is connected.
    ///
    /// # Errors
    /// [`ServerError::Stopped`] once the server stopped.
    pub async fn disconnect_client(&self, client_id: &str) -> Result<bool, ServerError> {
        let (done, found) = oneshot::channel();
        let client_id = client_id.to_owned();
        self.inputs
            .send(Input::DisconnectClient { client_id, done })
            .await
            .map_err(|_| ServerError::Stopped)?;
        found.await.map_err(|_| ServerError::Stopped)
    }

    /// The broker's counters with what takes a walk (messages in flight, open connections by
    /// listener index), for a metrics scrape.
    pub(crate) async fn metrics_snapshot(&self) -> Result<input::MetricsFigures, ServerError> {
        let (reply, snapshot) = oneshot::channel();
        self.inputs
            .send(Input::Metrics(reply))
            .await
            .map_err(|_| ServerError::Stopped)?;
        snapshot.await.map_err(|_| ServerError::Stopped)
    }

    /// A receiver of the sample of routed messages (with an HTTP listener).
    pub(crate) fn taps(&self) -> tokio::sync::broadcast::Receiver<Arc<Message>> {
        self.taps.subscribe()
    }

    /// A receiver of the broker's events from now on (see [`Events`]): connections accepted
    /// and refused, disconnections, protocol errors, dropped messages, retained changes,
    /// ended sessions. Receivers that fall behind lose the oldest events, never slowing the
    /// broker; while there is none, events cost nothing more than the server's own log. On a
    /// stopped server the receiver is at its end at once.
    pub fn subscribe_events(&self) -> Events {
        EventHub::subscribe(&self.events)
    }
}

mod signals {
    //! Waiting for the operator, as mosquitto: SIGINT/SIGTERM stop the server, SIGHUP reloads
    //! its password and ACL files, SIGUSR1 writes the persistent state durably now, SIGUSR2
    //! writes every session and its subscriptions to the log. Only the first two end it.

    use tracing::{error, info};

    use super::Server;
    #[cfg(unix)]
    use super::input::Input;

    /// The operator's signals, listened to from [`Signals::install`] on.
    #[cfg(unix)]
    pub(super) struct Signals {
        terminate: tokio::signal::unix::Signal,
        interrupt: tokio::signal::unix::Signal,
        hangup: tokio::signal::unix::Signal,
        save: tokio::signal::unix::Signal,
        dump: tokio::signal::unix::Signal,
    }

    #[cfg(unix)]
    impl Signals {
        /// Installs the handlers now (inside the runtime).
        pub(super) fn install() -> std::io::Result<Signals> {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
                hangup: signal(SignalKind::hangup())?,
                save: signal(SignalKind::user_defined1())?,
                dump: signal(SignalKind::user_defined2())?,
            })
        }

        /// Acts on each signal until one that stops the server.
        pub(super) async fn serve(mut self, server: &Server) {
            loop {
                tokio::select! {
                    _ = self.terminate.recv() => break,
                    _ = self.interrupt.recv() => break,
                    _ = self.hangup.recv() => {
                        info!("SIGHUP: reloading password and ACL files");
                        server.reload_security().iter().for_each(|p| error!("{p}"));
                    }
                    _ = self.save.recv() => {
                        info!("SIGUSR1: writing the persistent state");
                        server.operator(Input::Checkpoint).await;
                    }
                    _ = self.dump.recv() => {
                        info!("SIGUSR2: logging sessions and subscriptions");
                        server.operator(Input::LogSessions).await;
                    }
                }
            }
            info!("signal received, stopping");
        }
    }

    /// Ctrl-C, where there are no Unix signals.
    #[cfg(not(unix))]
    pub(super) struct Signals;

    #[cfg(not(unix))]
    impl Signals {
        /// Nothing to install ahead.
        pub(super) fn install() -> std::io::Result<Signals> {
            Ok(Signals)
        }

        /// Waits for Ctrl-C.
        pub(super) async fn serve(self, _server: &Server) {
            if let Err(e) = tokio::signal::ctrl_c().await {
                error!(%e, "Ctrl-C cannot be awaited; stopping");
            }
        }
    }
}

/// Time a shutdown may take at most, for callers that bound it.
pub const SHUTDOWN_LIMIT: Duration = Duration::from_secs(3);
