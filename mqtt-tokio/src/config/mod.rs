//! The server's configuration: listeners, security files and limits, with defaults that need no
//! file, read from our native TOML format or from a mosquitto.conf.
//!
//! [`ServerConfig::default`] is mosquitto 2.x's "local only" mode: one plain MQTT listener on
//! `127.0.0.1:1883` that admits anonymous clients. A file that declares listeners must say
//! `allow_anonymous = true` on each listener that should admit clients without a user name.

mod bridge;
mod cluster;
mod durability;
mod load;
mod mosquitto_conf;
pub(crate) mod tls_names;
mod toml_file;

use std::path::PathBuf;
use std::time::Duration;

use mqtt_broker_core::{ListenerId, ListenerRules};
use serde::Deserialize;

pub use bridge::{BridgeConfig, BridgeProtocol, BridgeTopic, Direction, StartType};
pub use cluster::ClusterConfig;
pub use durability::Durability;

pub use load::{ConfigError, LoadedConfig, OptionUse, load_file};
pub use mosquitto_conf::{
    OPTIONS, Support, options_table, parse_mosquitto_conf, parse_mosquitto_conf_file, support,
};
pub use toml_file::parse_toml;

/// Port of a plain MQTT listener when none is given.
pub const DEFAULT_PORT: u16 = 1883;

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The sockets to listen on (`[[listener]]` tables). When empty, one loopback listener on
    /// port 1883 is used, which admits anonymous clients unless a `password_file` is set.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// A password file in mosquitto_passwd format; when set, clients that give a user name must
    /// give its password.
    pub password_file: Option<PathBuf>,
    /// An ACL file in mosquitto format; when set, publishing and subscribing are limited to what
    /// it grants. An empty or unreadable file grants nothing.
    pub acl_file: Option<PathBuf>,
    /// Whether sessions and retained messages are written to disk. Unset, the library keeps
    /// state in memory and the `mqtt-broker` binary persists it.
    pub persistence: Option<bool>,
    /// Directory of the store file `mqtt-broker.redb` (default: `./data`).
    pub persistence_location: Option<PathBuf>,
    /// `"sync"` (default: nothing is acknowledged before it is on disk) or `"periodic 30s"`.
    pub durability: Durability,
    /// Start on an empty store when the existing one is corrupt; the damaged file is kept,
    /// renamed `mqtt-broker.redb.corrupt-<unix time>`. Without it the broker refuses to start.
    pub start_fresh: bool,
    /// Before a retained message goes to a new subscriber, check that the client that
    /// published it may still publish there (its write access may have been revoked by an ACL
    /// reload since); if not, the message is removed instead of delivered (CVE-2018-12546).
    /// Default true.
    pub check_retain_source: bool,
    /// Limits applied to every client.
    pub limits: Limits,
    /// Prefix of the client identifiers the broker assigns to clients that send an empty one
    /// (default `auto-`, as mosquitto).
    pub auto_id_prefix: String,
    /// A file the `mqtt-broker` binary writes its process id into once it runs (removed when
    /// it stops).
    pub pid_file: Option<PathBuf>,
    /// Where the `mqtt-broker` binary writes its log (default: standard error).
    pub log: Logging,
    /// The user (and its primary group) the `mqtt-broker` binary switches to once its ports
    /// are bound and its files open, when started as root (mosquitto's `user`).
    pub user: Option<String>,
    /// A client's user name becomes its client identifier (mosquitto's
    /// `use_username_as_clientid`); clients without one are refused.
    pub use_username_as_clientid: bool,
    /// Only client identifiers starting with this are admitted (mosquitto's
    /// `clientid_prefixes`).
    pub clientid_prefixes: Option<String>,
    /// QoS 0 messages are queued for offline persistent sessions too, within the queue limits
    /// (mosquitto's `queue_qos0_messages`; default false).
    pub queue_qos0_messages: bool,
    /// Connections to other brokers (`[[bridge]]` tables; mosquitto's `connection` blocks).
    #[serde(rename = "bridge")]
    pub bridges: Vec<BridgeConfig>,
    /// This server as a node of a cluster over NATS (`[cluster]`); `None`: a single broker.
    pub cluster: Option<ClusterConfig>,
}

/// Where and what the `mqtt-broker` binary logs (`[log]` table; mosquitto's `log_dest` and
/// `log_type`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Logging {
    /// Destinations; empty means standard error. Several may be given.
    pub dest: Vec<LogDest>,
    /// Most detailed level logged: `error`, `warn`, `info` (default), `debug` or `trace`;
    /// `RUST_LOG` and `-v` override.
    pub level: Option<String>,
    /// The syslog facility `local0` to `local7` (0 to 7) for `syslog`; default `daemon`.
    pub facility: Option<u8>,
    /// Whether clients connecting, disconnecting and being refused are logged (default true;
    /// mosquitto's `connection_messages`). They are logged under the target
    /// `mqtt_tokio::connections`, which `RUST_LOG` can also filter.
    pub connection_messages: bool,
    /// Whether log lines start with a time stamp (default true; mosquitto's `log_timestamp`).
    pub timestamp: bool,
    /// strftime format of the time stamp, in local time (mosquitto's `log_timestamp_format`,
    /// e.g. `%Y-%m-%dT%H:%M:%S`); default RFC 3339 in UTC.
    pub timestamp_format: Option<String>,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            dest: Vec::new(),
            level: None,
            facility: None,
            connection_messages: true,
            timestamp: true,
            timestamp_format: None,
        }
    }
}

/// The log target of clients connecting, disconnecting and being refused, which
/// [`Logging::connection_messages`] (mosquitto's `connection_messages`) switches off.
pub const CONNECTIONS_LOG_TARGET: &str = "mqtt_tokio::connections";

/// The conversions of a strftime format this broker can print (chrono's; no `%E` / `%O`
/// modifiers).
const STRFTIME_CONVERSIONS: &str = "aAbBcCdDeFgGhHIjklmMnprRsStTuUVwWxXyYzZ%";

/// Whether `format` is a strftime format whose every conversion can be printed.
pub(crate) fn strftime_ok(format: &str) -> Result<(), String> {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(conversion) if STRFTIME_CONVERSIONS.contains(conversion) => {}
                Some(other) => return Err(format!("unsupported conversion `%{other}`")),
                None => return Err(String::from("a lone `%` at the end")),
            }
        }
    }
    Ok(())
}

/// One log destination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogDest {
    /// Standard error.
    Stderr,
    /// Standard output.
    Stdout,
    /// A file, appended to (created if missing).
    File(PathBuf),
    /// Nowhere (mosquitto's `log_dest none`).
    None,
    /// As messages under `$SYS/broker/log/<E|W|I>` (errors, warnings, information), for
    /// clients that subscribe (mosquitto's `log_dest topic`).
    Topic,
    /// To the local syslog daemon, through `/dev/log`.
    Syslog,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listeners: Vec::new(),
            password_file: None,
            acl_file: None,
            persistence: None,
            persistence_location: None,
            durability: Durability::default(),
            start_fresh: false,
            check_retain_source: true,
            limits: Limits::default(),
            auto_id_prefix: String::from("auto-"),
            pid_file: None,
            log: Logging::default(),
            user: None,
            use_username_as_clientid: false,
            clientid_prefixes: None,
            queue_qos0_messages: false,
            bridges: Vec::new(),
            cluster: None,
        }
    }
}

impl ServerConfig {
    /// The listeners to open: the configured ones, or the local-only default listener.
    pub fn effective_listeners(&self) -> Vec<ListenerConfig> {
        if self.listeners.is_empty() {
            vec![ListenerConfig {
                allow_anonymous: self.password_file.is_none(),
                ..ListenerConfig::default()
            }]
        } else {
            self.listeners.clone()
        }
    }

    /// Adds a loopback listener on `port` (the binary's `-p`): like the local-only default, it
    /// admits anonymous clients unless a password file is configured.
    pub fn add_local_listener(&mut self, port: u16) {
        self.listeners.push(ListenerConfig {
            port,
            allow_anonymous: self.password_file.is_none(),
            ..ListenerConfig::default()
        });
    }

    /// The broker core's configuration derived from these settings: the server-wide rules,
    /// and each listener's own (listener `i` is `ListenerId(i)`).
    pub fn core_config(&self) -> mqtt_broker_core::Config {
        let mut core = self.limits.apply(mqtt_broker_core::Config::default());
        core.check_retain_source = self.check_retain_source;
        // A node of a cluster names the identifiers it assigns after itself: the cluster
        // keeps one session per identifier, and two nodes must not both assign `auto-1`.
        let node = self.cluster.as_ref().map(|c| format!("{}-", c.node));
        core.cluster = node.is_some();
        core.listener.assigned_client_id_prefix =
            format!("{}{}", self.auto_id_prefix, node.as_deref().unwrap_or(""));
        core.listener.use_username_as_client_id = self.use_username_as_clientid;
        core.required_client_id_prefix = self.clientid_prefixes.clone();
        core.queue_qos0_messages = self.queue_qos0_messages;
        for (index, listener) in self.effective_listeners().iter().enumerate() {
            let Ok(id) = u16::try_from(index) else {
                break; // refused when the listeners are bound
            };
            let mut rules = listener.rules(&core.listener);
            if let (Some(node), Some(_)) = (&node, &listener.auto_id_prefix) {
                rules.assigned_client_id_prefix.push_str(node);
            }
            if rules != core.listener {
                core.listeners.insert(ListenerId(id), rules);
            }
        }
        core
    }

    /// The password and ACL files of `listener`: its own where it names them
    /// (`per_listener_settings`), else the server's.
    pub fn security_files(&self, listener: &ListenerConfig) -> (Option<PathBuf>, Option<PathBuf>) {
        (
            (listener.password_file.clone()).or_else(|| self.password_file.clone()),
            (listener.acl_file.clone()).or_else(|| self.acl_file.clone()),
        )
    }

    /// Checks what can be checked without touching the network: TLS files come in pairs, the
    /// limits are usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (index, listener) in self.listeners.iter().enumerate() {
            listener.validate(index)?;
        }
        if self.log.facility.is_some_and(|f| f > 7) {
            return Err(ConfigError::Invalid(
                "log.facility must be 0 to 7 (local0 to local7)".into(),
            ));
        }
        if let Some(format) = &self.log.timestamp_format {
            strftime_ok(format).map_err(|why| {
                ConfigError::Invalid(format!("log.timestamp_format `{format}`: {why}"))
            })?;
        }
        if let Some(level) = &self.log.level
            && !["off", "error", "warn", "info", "debug", "trace"].contains(&level.as_str())
        {
            return Err(ConfigError::Invalid(format!(
                "log.level `{level}`: expected off, error, warn, info, debug or trace"
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for bridge in &self.bridges {
            bridge.validate()?;
            if !names.insert(bridge.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "duplicate bridge name `{}`",
                    bridge.name
                )));
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        self.limits.validate()
    }
}

/// What a listener speaks on top of its byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// MQTT directly on TCP (or TLS).
    #[default]
    Mqtt,
    /// MQTT in binary WebSocket messages, subprotocol `mqtt` (or `wss` with TLS).
    Websockets,
    /// Not MQTT: HTTP for Prometheus (`GET /metrics`) and orchestrators' probes
    /// (`GET /healthz`, `GET /readyz`); HTTPS with TLS. `/metrics` asks for a user of the
    /// password file unless the listener binds a loopback address and admits anonymous
    /// clients.
    Http,
}

/// The one IP version a listener keeps to (mosquitto's `socket_domain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketDomain {
    /// IPv4 only: `::` binds every IPv4 interface.
    Ipv4,
    /// IPv6 only: `::` binds every IPv6 interface and no IPv4 one.
    Ipv6,
}

/// One listening socket and the rules for the clients it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// Address or host name to bind (default `127.0.0.1`; `0.0.0.0` or `::` for every interface).
    pub bind_address: String,
    /// A network interface (e.g. `eth0`) whose address the listener binds, as mosquitto's
    /// `bind_interface`: its first IPv4 address, else its first IPv6 address. A specific
    /// `bind_address` must then be one of the interface's.
    pub bind_interface: Option<String>,
    /// TCP port (default 1883; 0 picks a free port).
    pub port: u16,
    /// Only IPv4 or only IPv6 (default: what `bind_address` names; `::` is both).
    pub socket_domain: Option<SocketDomain>,
    /// `mqtt` (default) or `websockets`.
    pub protocol: Protocol,
    /// PEM file of the CA certificates that sign client certificates (enables client
    /// certificate verification when `require_certificate` is set).
    pub cafile: Option<PathBuf>,
    /// A directory of such CA certificates (mosquitto's `capath`): every file in it that holds
    /// PEM certificates, beside `cafile`'s.
    pub capath: Option<PathBuf>,
    /// PEM certificate chain of the server; with `keyfile`, turns the listener into TLS.
    pub certfile: Option<PathBuf>,
    /// PEM private key of the server.
    pub keyfile: Option<PathBuf>,
    /// Refuse TLS clients that present no certificate signed by `cafile`.
    pub require_certificate: bool,
    /// Use the client certificate's common name (CN) as the user name.
    pub use_identity_as_username: bool,
    /// Use the client certificate's whole subject, as RFC 2253 prints it
    /// (`CN=plug-7,O=Home Lab,C=DE`), as the user name (mosquitto's `use_subject_as_username`;
    /// `use_identity_as_username` wins when both are set).
    pub use_subject_as_username: bool,
    /// Lowest TLS version: `tlsv1.2` (default: TLS 1.2 and 1.3) or `tlsv1.3`.
    pub tls_version: Option<String>,
    /// TLS 1.2 cipher suites allowed, OpenSSL names separated by `:` (e.g. Tasmota's
    /// `ECDHE-RSA-AES128-GCM-SHA256`); default: every suite rustls offers.
    pub ciphers: Option<String>,
    /// TLS 1.3 cipher suites allowed (e.g. `TLS_AES_256_GCM_SHA384`); default: all three.
    pub ciphers_tls13: Option<String>,
    /// PEM file of certificate revocation lists: client certificates they revoke are refused
    /// (needs `cafile`).
    pub crlfile: Option<PathBuf>,
    /// Admit clients that give no user name (default false; true on the implicit local-only
    /// listener).
    pub allow_anonymous: bool,
    /// This listener's own password file, instead of the server's (mosquitto's
    /// `per_listener_settings`).
    pub password_file: Option<PathBuf>,
    /// This listener's own ACL file, instead of the server's.
    pub acl_file: Option<PathBuf>,
    /// Most connections open at once on this listener; a further one is closed at once, as
    /// mosquitto does (default: no limit).
    pub max_connections: Option<usize>,
    /// A directory whose files a WebSocket listener serves to plain HTTP `GET` requests (a
    /// browser client's page), mosquitto's `http_dir`.
    pub http_dir: Option<PathBuf>,
    /// Prefix joined to every topic this listener's clients publish to, subscribe to or name in
    /// a will, and taken off the topics they receive: they see only the tree below it
    /// (mosquitto's `mount_point`, e.g. `tenant-a/`).
    pub mount_point: Option<String>,
    /// Highest QoS this listener's clients may use, instead of `limits.max_qos`.
    pub max_qos: Option<u8>,
    /// Topic aliases this listener's v5 clients may set up, instead of `limits.max_topic_alias`.
    pub max_topic_alias: Option<u16>,
    /// Whether this listener's clients are known by their user name, instead of the server's
    /// `use_username_as_clientid`.
    pub use_username_as_clientid: Option<bool>,
    /// Whether this listener's clients may send an empty client identifier, instead of
    /// `limits.allow_zero_length_clientid`.
    pub allow_zero_length_clientid: Option<bool>,
    /// Prefix of the identifiers assigned to this listener's clients, instead of the server's
    /// `auto_id_prefix`.
    pub auto_id_prefix: Option<String>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            bind_address: String::from("127.0.0.1"),
            bind_interface: None,
            port: DEFAULT_PORT,
            socket_domain: None,
            protocol: Protocol::Mqtt,
            cafile: None,
            capath: None,
            certfile: None,
            keyfile: None,
            require_certificate: false,
            use_identity_as_username: false,
            use_subject_as_username: false,
            tls_version: None,
            ciphers: None,
            ciphers_tls13: None,
            crlfile: None,
            allow_anonymous: false,
            password_file: None,
            acl_file: None,
            max_connections: None,
            http_dir: None,
            mount_point: None,
            max_qos: None,
            max_topic_alias: None,
            use_username_as_clientid: None,
            allow_zero_length_clientid: None,
            auto_id_prefix: None,
        }
    }
}

impl ListenerConfig {
    /// The core's rules for this listener: `server`'s, with what this listener sets itself.
    fn rules(&self, server: &ListenerRules) -> ListenerRules {
        let mut rules = server.clone();
        rules.mount_point.clone_from(&self.mount_point);
        if let Some(qos) = self.max_qos {
            rules.maximum_qos = qos_of(qos);
        }
        if let Some(max) = self.max_topic_alias {
            rules.topic_alias_maximum = max;
        }
        if let Some(on) = self.use_username_as_clientid {
            rules.use_username_as_client_id = on;
        }
        if let Some(allow) = self.allow_zero_length_clientid {
            rules.allow_empty_client_id = allow;
        }
        if let Some(prefix) = &self.auto_id_prefix {
            rules.assigned_client_id_prefix.clone_from(prefix);
        }
        rules
    }

    /// The URL scheme of this listener: `mqtt`, `mqtts`, `ws`, `wss`, `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        match (self.protocol, self.is_tls()) {
            (Protocol::Mqtt, false) => "mqtt",
            (Protocol::Mqtt, true) => "mqtts",
            (Protocol::Websockets, false) => "ws",
            (Protocol::Websockets, true) => "wss",
            (Protocol::Http, false) => "http",
            (Protocol::Http, true) => "https",
        }
    }

    /// Whether this listener wraps its connections in TLS.
    pub fn is_tls(&self) -> bool {
        self.certfile.is_some()
    }

    fn validate(&self, index: usize) -> Result<(), ConfigError> {
        let invalid = |why: &str| ConfigError::Invalid(format!("listener {index}: {why}"));
        if self.certfile.is_some() != self.keyfile.is_some() {
            return Err(invalid("certfile and keyfile must be given together"));
        }
        let has_ca = self.cafile.is_some() || self.capath.is_some();
        if self.require_certificate && (!has_ca || !self.is_tls()) {
            return Err(invalid(
                "require_certificate needs cafile or capath, certfile and keyfile",
            ));
        }
        if (self.use_identity_as_username || self.use_subject_as_username)
            && !self.require_certificate
        {
            return Err(invalid(
                "use_identity_as_username and use_subject_as_username need require_certificate",
            ));
        }
        if self.max_connections == Some(0) {
            return Err(invalid("max_connections must be at least 1"));
        }
        if self.http_dir.is_some() && self.protocol != Protocol::Websockets {
            return Err(invalid("http_dir needs protocol websockets"));
        }
        if self.max_qos.is_some_and(|qos| qos > 2) {
            return Err(invalid("max_qos must be 0, 1 or 2"));
        }
        if let Some(mount) = &self.mount_point
            && (mount.is_empty() || mount.contains(['+', '#', '\0']))
        {
            return Err(invalid(
                "mount_point must be a topic prefix without `+`, `#` or U+0000",
            ));
        }
        let tls_options = self.tls_version.is_some()
            || self.ciphers.is_some()
            || self.ciphers_tls13.is_some()
            || self.crlfile.is_some();
        if tls_options && !self.is_tls() {
            return Err(invalid(
                "tls_version, ciphers, ciphers_tls13 and crlfile need certfile and keyfile",
            ));
        }
        if self.crlfile.is_some() && !has_ca {
            return Err(invalid("crlfile needs cafile or capath"));
        }
        if let Some(version) = &self.tls_version {
            tls_names::allows_tls12(version).map_err(|why| invalid(&why))?;
        }
        if let Some(list) = &self.ciphers {
            tls_names::cipher_suites(list, false).map_err(|why| invalid(&why))?;
        }
        if let Some(list) = &self.ciphers_tls13 {
            tls_names::cipher_suites(list, true).map_err(|why| invalid(&why))?;
        }
        Ok(())
    }
}

/// Limits applied to every client (`[limits]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// QoS 1/2 messages in flight per client in each direction (v5 Receive Maximum; default 32).
    pub max_inflight_messages: u16,
    /// Topic and payload bytes of QoS 1/2 messages sent to a client and not yet acknowledged;
    /// further ones wait in its queue, one message always passes (default 0: no byte bound).
    pub max_inflight_bytes: u64,
    /// Messages queued per session while its client is offline or its window is full
    /// (default 1000).
    pub max_queued_messages: usize,
    /// Largest MQTT packet accepted, in bytes, whole packet included (default 1 MiB; 0 means
    /// the protocol maximum, 256 MiB).
    pub message_size_limit: u32,
    /// Largest keep alive granted, in seconds; larger requests are lowered (default 0: any).
    pub max_keepalive: u16,
    /// Seconds between `$SYS` statistics updates (default 10; 0 disables them).
    pub sys_interval: u64,
    /// Seconds a new connection has to send its CONNECT (default 10).
    pub connect_timeout: u64,
    /// Longest pause, in seconds, of a publisher whose messages fill a connected QoS 1/2
    /// subscriber's queue past half; after it the queue drops what does not fit (default 2;
    /// 0 never pauses and drops at once).
    pub max_publisher_pause: u64,
    /// Bytes of messages the broker may hold for delivery, all clients together: copies queued
    /// for sessions plus bytes written and not yet taken by the sockets (mosquitto's
    /// `memory_limit`). At the limit new publishes are refused (v5: PUBACK / PUBREC 0x97 Quota
    /// exceeded; QoS 0 dropped; a 3.1/3.1.1 publisher of QoS 1/2 is disconnected). Default 0:
    /// no limit beyond the per-session bounds.
    pub memory_limit: u64,
    /// Topic aliases a v5 client may set up towards the broker (Topic Alias Maximum; default
    /// 16; 0 refuses aliases).
    pub max_topic_alias: u16,
    /// Whether retained messages are kept (default true; false: a retained PUBLISH is refused,
    /// v5 Retain Available 0).
    pub retain_available: bool,
    /// Topic and payload bytes queued per session (default 16 MiB; 0 means no limit beyond
    /// `max_queued_messages`).
    pub max_queued_bytes: u64,
    /// Whether a client may send an empty client identifier and get one assigned (default
    /// true).
    pub allow_zero_length_clientid: bool,
    /// Longest a disconnected session is kept, in seconds, whatever its client asked
    /// (mosquitto's `persistent_client_expiration`; default 604800, 7 days; 0: no limit).
    pub max_session_expiry: u32,
    /// Largest payload of a PUBLISH that is routed (mosquitto's `message_size_limit`); a larger
    /// one is dropped and acknowledged, the connection kept (default 0: none beyond
    /// `message_size_limit`, which bounds the whole packet).
    pub max_payload_size: u32,
    /// Highest QoS clients may publish at, 0 to 2 (default 2): v5 clients are told in CONNACK,
    /// subscriptions are granted at most this, a will or PUBLISH above it is refused.
    pub max_qos: u8,
}

/// The QoS a `max_qos` number names (validated to be 0 to 2).
fn qos_of(qos: u8) -> mqtt_wire::QoS {
    match qos {
        0 => mqtt_wire::QoS::AtMostOnce,
        1 => mqtt_wire::QoS::AtLeastOnce,
        _ => mqtt_wire::QoS::ExactlyOnce,
    }
}

/// Largest packet the protocol can express: 256 MiB of remaining length plus a fixed header.
const PROTOCOL_MAX_PACKET: u32 = 268_435_455 + 5;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflight_messages: 32,
            max_inflight_bytes: 0,
            max_queued_messages: 1000,
            message_size_limit: 1024 * 1024,
            max_keepalive: 0,
            sys_interval: 10,
            connect_timeout: 10,
            max_publisher_pause: 2,
            memory_limit: 0,
            max_topic_alias: 16,
            retain_available: true,
            max_queued_bytes: 16 * 1024 * 1024,
            allow_zero_length_clientid: true,
            max_session_expiry: 7 * 24 * 3600,
            max_payload_size: 0,
            max_qos: 2,
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_inflight_messages == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_inflight_messages must be at least 1".into(),
            ));
        }
        if self.connect_timeout == 0 {
            return Err(ConfigError::Invalid(
                "limits.connect_timeout must be at least 1 second".into(),
            ));
        }
        if self.max_qos > 2 {
            return Err(ConfigError::Invalid(
                "limits.max_qos must be 0, 1 or 2".into(),
            ));
        }
        if self.message_size_limit != 0 && self.message_size_limit < 20 {
            return Err(ConfigError::Invalid(
                "limits.message_size_limit must be 0 or at least 20 bytes".into(),
            ));
        }
        Ok(())
    }

    /// The largest packet size these limits allow.
    pub fn max_packet_size(&self) -> u32 {
        if self.message_size_limit == 0 {
            PROTOCOL_MAX_PACKET
        } else {
            self.message_size_limit
        }
    }

    /// Writes these limits into a core configuration.
    pub fn apply(&self, mut core: mqtt_broker_core::Config) -> mqtt_broker_core::Config {
        core.receive_maximum = self.max_inflight_messages;
        core.max_inflight_bytes = usize::try_from(self.max_inflight_bytes).unwrap_or(usize::MAX);
        core.max_queued_messages = self.max_queued_messages;
        core.max_packet_size = self.max_packet_size();
        core.max_outbox_bytes = core.max_outbox_bytes.max(core.max_packet_size as usize);
        core.max_keep_alive = self.max_keepalive;
        core.sys_interval = (self.sys_interval > 0).then(|| Duration::from_secs(self.sys_interval));
        core.connect_timeout = Duration::from_secs(self.connect_timeout);
        core.max_publisher_pause = Duration::from_secs(self.max_publisher_pause);
        core.memory_limit = usize::try_from(self.memory_limit).unwrap_or(usize::MAX);
        core.listener.topic_alias_maximum = self.max_topic_alias;
        core.retain_available = self.retain_available;
        core.max_queued_bytes = match self.max_queued_bytes {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        core.listener.allow_empty_client_id = self.allow_zero_length_clientid;
        core.max_payload_size = usize::try_from(self.max_payload_size).unwrap_or(usize::MAX);
        core.listener.maximum_qos = qos_of(self.max_qos);
        core.max_session_expiry_interval = match self.max_session_expiry {
            0 => u32::MAX,
            n => n,
        };
        core
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_local_only_anonymous() {
        let config = ServerConfig::default();
        let listeners = config.effective_listeners();
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].bind_address, "127.0.0.1");
        assert_eq!(listeners[0].port, 1883);
        assert!(listeners[0].allow_anonymous);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn retain_source_check_is_on_by_default_and_reaches_the_core() {
        let mut config = ServerConfig::default();
        assert!(config.check_retain_source);
        assert!(config.core_config().check_retain_source);
        config.check_retain_source = false;
        assert!(!config.core_config().check_retain_source);
    }

    #[test]
    fn default_listener_is_not_anonymous_with_a_password_file() {
        let config = ServerConfig {
            password_file: Some("pw".into()),
            ..ServerConfig::default()
        };
        assert!(!config.effective_listeners()[0].allow_anonymous);
    }

    #[test]
    fn limits_reach_the_core_config() {
        let limits = Limits {
            max_inflight_messages: 5,
            message_size_limit: 0,
            sys_interval: 0,
            max_publisher_pause: 3,
            memory_limit: 1 << 20,
            ..Limits::default()
        };
        let core = limits.apply(mqtt_broker_core::Config::default());
        assert_eq!(core.receive_maximum, 5);
        assert_eq!(core.max_publisher_pause, Duration::from_secs(3));
        assert_eq!(core.memory_limit, 1 << 20);
        assert_eq!(core.max_packet_size, PROTOCOL_MAX_PACKET);
        assert!(core.max_outbox_bytes >= PROTOCOL_MAX_PACKET as usize);
        assert_eq!(core.sys_interval, None);
        assert_eq!(core.validate(), Ok(()));
    }

    #[test]
    fn local_listeners_follow_the_default_policy() {
        let mut config = ServerConfig::default();
        config.add_local_listener(0);
        assert_eq!(config.effective_listeners()[0].port, 0);
        assert!(config.effective_listeners()[0].allow_anonymous);
        config.password_file = Some("pw".into());
        config.add_local_listener(1);
        assert!(!config.listeners[1].allow_anonymous);
    }

    #[test]
    fn tls_files_must_come_in_pairs() {
        let config = ServerConfig {
            listeners: vec![ListenerConfig {
                certfile: Some("c.pem".into()),
                ..ListenerConfig::default()
            }],
            ..ServerConfig::default()
        };
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
    }
}
