//! [`Options`]: the command line of `mqtt-load`, one [`Scenario`] plus the knobs it reads, and
//! [`Options::validate`], which refuses combinations that cannot describe a run.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use mqtt_wire::{ProtocolVersion, QoS};

use crate::error::LoadError;
use crate::payload::STAMP_LEN;
use crate::template::Template;
use crate::transport::{TlsOptions, TlsVersion};

/// What to measure: a fixed scenario, or one of the `conn`, `pub` and `sub` modes whose
/// clients are described by templates (as emqtt-bench's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// P publishers on their own topics, one `#` subscriber (QoS from `--qos`, default 0).
    Fanin,
    /// One publisher, S subscribers on the same topic.
    Fanout,
    /// QoS 1 both ways with a window of unacknowledged messages per publisher; checks that
    /// nothing is lost.
    Qos1,
    /// Fixed total rate; reports end-to-end latency percentiles.
    Latency,
    /// N idle subscribed connections; reports the broker's memory per connection.
    Idle,
    /// Connect, CONNACK, disconnect, as fast as C workers can.
    Connrate,
    /// Mode: open `--clients` connections, one every `--interval` ms, and keep them for the
    /// run; reports connect latency percentiles and failures.
    Conn,
    /// Mode: `--clients` publishers on `--topic`, each at `--msg-interval` (or its share of
    /// `--rate`), QoS 0/1/2 with `--window` in flight; reports sent, acknowledged and the
    /// acknowledgement latency.
    #[value(name = "pub")]
    Pub,
    /// Mode: `--clients` subscribers on `--topic`; reports received messages, gaps and, from
    /// the stamps of `mqtt-load` publishers, end-to-end latency percentiles.
    Sub,
}

impl Scenario {
    /// The scenario's name on the command line and in the result line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Fanin => "fanin",
            Self::Fanout => "fanout",
            Self::Qos1 => "qos1",
            Self::Latency => "latency",
            Self::Idle => "idle",
            Self::Connrate => "connrate",
            Self::Conn => "conn",
            Self::Pub => "pub",
            Self::Sub => "sub",
        }
    }

    /// Whether this is one of the `conn`, `pub` and `sub` modes.
    #[must_use]
    pub const fn is_mode(self) -> bool {
        matches!(self, Self::Conn | Self::Pub | Self::Sub)
    }
}

/// `--tls-version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TlsVersionArg {
    /// TLS 1.2.
    #[value(name = "1.2")]
    V1_2,
    /// TLS 1.3.
    #[value(name = "1.3")]
    V1_3,
}

/// Where the clients connect: host, ports and transport, from `--url` or the separate options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Ports (several spread the clients).
    pub ports: Vec<u16>,
    /// Whether TLS is on.
    pub tls: bool,
    /// The WebSocket path, when MQTT goes over WebSocket.
    pub ws_path: Option<String>,
}

/// A load generator for MQTT brokers (in the spirit of emqtt-bench).
///
/// Prints one progress line per second to stderr and one `RESULT key=value ...` line to stdout
/// (and, with `--json`, a JSON summary).
#[derive(Clone, Debug, Parser)]
#[command(name = "mqtt-load", version, about)]
pub struct Options {
    /// The scenario or mode to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// The broker as a URL: `mqtt://host:port`, `mqtts://host:port`, `ws://host:port/path` or
    /// `wss://host:port/path` (default ports 1883, 8883, 80, 443; default path `/mqtt`).
    #[arg(long, conflicts_with_all = ["host", "port", "tls", "ws", "ws_path"])]
    pub url: Option<String>,
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port; several (`1883,1884,1885`, e.g. the nodes of a cluster) spread the
    /// publishers over them, publisher `i` on the `i`-th port modulo their number.
    #[arg(short = 'p', long, default_value = "1883", value_delimiter = ',', num_args = 1..)]
    pub port: Vec<u16>,
    /// Ports the subscribers connect to, when they are other brokers' than the publishers'
    /// (the far side of a bridge, other nodes of a cluster), spread as `--port`; default
    /// `--port`.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub sub_port: Vec<u16>,
    /// Host the subscribers connect to with `--sub-port`; default `--host`.
    #[arg(long)]
    pub sub_host: Option<String>,
    /// A label for the broker in the result line (default host:port).
    #[arg(long)]
    pub broker: Option<String>,
    /// MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5.
    #[arg(long = "mqtt-version", default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub mqtt_version: u8,
    /// User name of every client (`%i` and `%rand` are expanded per client).
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password of every client.
    #[arg(short = 'P', long)]
    pub password: Option<String>,
    /// Client identifier template of the modes: `%i` (index from `--start-index`), `%u` (user
    /// name), `%rand`, `%rand_N` (default `mqtt-load-MODE-%i`).
    #[arg(long)]
    pub client_id: Option<String>,
    /// First client index of the modes (`%i`), to run several processes side by side.
    #[arg(long, default_value_t = 0)]
    pub start_index: u64,
    /// Clients of the `conn`, `pub` and `sub` modes.
    #[arg(short = 'c', long, value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: Option<u32>,
    /// Topic template of `pub` and filter template of `sub`: `%i`, `%c`, `%u`, `%rand`,
    /// `%rand_N`, expanded once per client (default `pub`: `mqtt-load/%i`, `sub`:
    /// `mqtt-load/#`).
    #[arg(short = 't', long)]
    pub topic: Option<String>,
    /// QoS of publications and subscriptions (0, 1 or 2); `qos1` always uses 1.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size in bytes (the first 20 carry publisher, sequence and timestamp); `k` and
    /// `m` suffixes for KiB and MiB.
    #[arg(short = 's', long, value_parser = parse_size, conflicts_with = "payload")]
    pub size: Option<usize>,
    /// Payload text of `pub` (`%i`, `%c`, `%u`, `%rand` expanded once per client), after the
    /// 20-byte stamp unless `--no-stamp`.
    #[arg(short = 'm', long)]
    pub payload: Option<String>,
    /// `pub`: send the `--payload` text alone, without the stamp (no loss or latency figures
    /// for the subscribers then).
    #[arg(long, requires = "payload")]
    pub no_stamp: bool,
    /// `pub`: set the RETAIN flag.
    #[arg(short = 'r', long)]
    pub retain: bool,
    /// Start clean sessions (the default).
    #[arg(long, overrides_with = "no_clean")]
    pub clean: bool,
    /// Resume persistent sessions (Clean Session 0 / Clean Start 0); give the clients stable
    /// identifiers (`--client-id`) and, in MQTT 5, a `--session-expiry`.
    #[arg(long, overrides_with = "clean")]
    pub no_clean: bool,
    /// MQTT 5: Session Expiry Interval in seconds sent in the CONNECT.
    #[arg(long)]
    pub session_expiry: Option<u32>,
    /// Keep-alive in seconds (0: off); clients of the modes send PINGREQs. Default: long
    /// enough that no PINGREQ is needed during the run.
    #[arg(short = 'k', long)]
    pub keep_alive: Option<u16>,
    /// Modes: milliseconds between two connection attempts (the ramp); 0: all at once (at
    /// most `--concurrency` handshakes at a time).
    #[arg(short = 'i', long, default_value_t = 0.0)]
    pub interval: f64,
    /// `pub`: milliseconds between two messages of one client (default 1000 when neither this
    /// nor `--rate` is given).
    #[arg(short = 'I', long, conflicts_with = "rate")]
    pub msg_interval: Option<f64>,
    /// Publishers (default: fanin 8, qos1 8, others 1).
    #[arg(long)]
    pub publishers: Option<u32>,
    /// Subscribers (default: fanout 100, others 1).
    #[arg(long)]
    pub subscribers: Option<u32>,
    /// Total publish rate in messages per second, 0 for as fast as possible
    /// (default: latency 1000, pub 1 per client per second, others 0).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Unacknowledged QoS 1 and 2 messages each publisher keeps in flight (default 64 at QoS 1,
    /// 20 at QoS 2: brokers drop or refuse 3.1.1 clients with more QoS 2 messages in flight
    /// than their limit, mosquitto's being 20). Capped by an MQTT 5 broker's Receive Maximum.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub window: Option<u32>,
    /// How long to publish (or connect, or hold the connections), in seconds.
    #[arg(short = 'd', long, default_value_t = 5.0)]
    pub duration: f64,
    /// At most this many messages per publisher (or connections for `connrate`, or messages
    /// per subscriber for `sub`); 0: no limit.
    #[arg(short = 'L', long, default_value_t = 0)]
    pub count: u64,
    /// Connections for `idle`.
    #[arg(long, default_value_t = 1000)]
    pub connections: u32,
    /// Concurrent connecting workers for `idle` and `connrate`; handshakes at a time for the
    /// modes.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Broker process id, to read its resident memory from /proc (`idle`).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// How long subscribers (and QoS 1/2 publishers) may keep draining after the publishers
    /// stop, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Silence the per-second progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Local addresses to connect from, used round robin (e.g. `127.0.0.1,127.0.0.2`): each
    /// source address has its own range of ephemeral ports, so more than ~28k connections to
    /// one broker port need several. Default: chosen by the system.
    #[arg(long, value_delimiter = ',')]
    pub source_addrs: Vec<IpAddr>,
    /// `idle`: keep the connections open this many seconds after measuring, then report how
    /// many are still open (lets another client probe the broker while they are held).
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
    /// Connect over TLS (implied by `mqtts://`, `wss://` and every other TLS option).
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the CA certificates the broker's certificate must chain to (default: the
    /// system's CA bundle).
    #[arg(long)]
    pub cafile: Option<PathBuf>,
    /// PEM file of a client certificate (chain) to offer; needs `--key`.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Accept any broker certificate (self-signed test brokers); the handshake is still
    /// encrypted and signed.
    #[arg(long)]
    pub insecure: bool,
    /// Offer only this TLS version.
    #[arg(long, value_enum)]
    pub tls_version: Option<TlsVersionArg>,
    /// Offer only these cipher suites, comma separated: rustls (IANA) names such as
    /// `TLS13_AES_128_GCM_SHA256` or `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, or OpenSSL
    /// names such as `ECDHE-RSA-AES128-GCM-SHA256`.
    #[arg(long, value_delimiter = ',')]
    pub ciphers: Vec<String>,
    /// The name the broker's certificate must carry (default: the host).
    #[arg(long)]
    pub tls_server_name: Option<String>,
    /// Resume TLS sessions (the default): the clients of a run share one in-memory session
    /// cache, so a new connection resumes an earlier one's session where the broker allows
    /// it (TLS 1.3 tickets, TLS 1.2 session ids or tickets). Turns TLS on.
    #[arg(long, overrides_with = "no_tls_resume")]
    pub tls_resume: bool,
    /// Never resume a TLS session: every connection makes a full handshake (certificate,
    /// key exchange), e.g. to measure full handshakes per second with `connrate`. Turns TLS
    /// on.
    #[arg(long, overrides_with = "tls_resume")]
    pub no_tls_resume: bool,
    /// MQTT over WebSocket (subprotocol `mqtt`); over TLS with any TLS option (`wss`).
    #[arg(long)]
    pub ws: bool,
    /// The WebSocket path; implies `--ws`.
    #[arg(long)]
    pub ws_path: Option<String>,
    /// Print a JSON summary (every result field, latency percentiles) on stdout after the
    /// `RESULT` line.
    #[arg(long)]
    pub json: bool,
    /// Write the JSON summary to this file.
    #[arg(long)]
    pub json_file: Option<PathBuf>,
}

impl Options {
    /// The protocol version from `--mqtt-version`.
    #[must_use]
    pub const fn version(&self) -> ProtocolVersion {
        match self.mqtt_version {
            5 => ProtocolVersion::V5,
            3 => ProtocolVersion::V3_1,
            _ => ProtocolVersion::V3_1_1,
        }
    }

    /// The QoS of messages and subscriptions.
    #[must_use]
    pub fn qos(&self) -> QoS {
        match (self.scenario, self.qos) {
            (Scenario::Qos1, _) | (_, 1) => QoS::AtLeastOnce,
            (_, 2) => QoS::ExactlyOnce,
            _ => QoS::AtMostOnce,
        }
    }

    /// Publishers, with the scenario's default.
    #[must_use]
    pub fn publishers(&self) -> u32 {
        self.publishers.unwrap_or(match self.scenario {
            Scenario::Fanin | Scenario::Qos1 => 8,
            Scenario::Pub => self.clients(),
            _ => 1,
        })
    }

    /// Subscribers, with the scenario's default.
    #[must_use]
    pub fn subscribers(&self) -> u32 {
        self.subscribers.unwrap_or(match self.scenario {
            Scenario::Fanout => 100,
            Scenario::Sub => self.clients(),
            _ => 1,
        })
    }

    /// The window of unacknowledged messages per publisher, with its QoS's default.
    #[must_use]
    pub fn window(&self) -> u32 {
        self.window.unwrap_or(match self.qos() {
            QoS::ExactlyOnce => 20,
            _ => 64,
        })
    }

    /// Clients of a mode (default 1).
    #[must_use]
    pub fn clients(&self) -> u32 {
        self.clients.unwrap_or(1)
    }

    /// Total rate, with the scenario's default (0: unlimited).
    #[must_use]
    pub fn rate(&self) -> u64 {
        if self.scenario == Scenario::Pub {
            let per_client = self.per_publisher_rate();
            return (per_client * f64::from(self.clients())).round() as u64;
        }
        self.rate.unwrap_or(match self.scenario {
            Scenario::Latency => 1000,
            _ => 0,
        })
    }

    /// Messages per second of one publisher (0: as fast as the window allows).
    #[must_use]
    pub fn per_publisher_rate(&self) -> f64 {
        if self.scenario == Scenario::Pub {
            if let Some(ms) = self.msg_interval {
                return if ms > 0.0 { 1000.0 / ms } else { 0.0 };
            }
            return match self.rate {
                Some(rate) => rate as f64 / f64::from(self.clients()),
                None => 1.0,
            };
        }
        self.rate() as f64 / f64::from(self.publishers().max(1))
    }

    /// `--duration` as a [`Duration`] (negative or invalid values count as zero).
    #[must_use]
    pub fn duration(&self) -> Duration {
        Duration::try_from_secs_f64(self.duration).unwrap_or_default()
    }

    /// `--drain` as a [`Duration`].
    #[must_use]
    pub fn drain(&self) -> Duration {
        Duration::try_from_secs_f64(self.drain).unwrap_or_default()
    }

    /// `--interval` (the connection ramp) as a [`Duration`].
    #[must_use]
    pub fn ramp_interval(&self) -> Duration {
        Duration::try_from_secs_f64(self.interval / 1000.0).unwrap_or_default()
    }

    /// `--keep-alive`, or one long enough that silent subscribers outlive the run without
    /// PINGREQs.
    #[must_use]
    pub fn keep_alive(&self) -> u16 {
        if let Some(keep_alive) = self.keep_alive {
            return keep_alive;
        }
        let ramp = self.interval.max(0.0) / 1000.0 * f64::from(self.clients());
        let run = self.duration.max(0.0) + self.drain.max(0.0) + self.hold.max(0.0) + ramp;
        let needed = run * 2.0 + 60.0;
        needed.min(f64::from(u16::MAX)) as u16
    }

    /// `--hold` as a [`Duration`].
    #[must_use]
    pub fn hold(&self) -> Duration {
        Duration::try_from_secs_f64(self.hold).unwrap_or_default()
    }

    /// The local address connection number `index` binds to (round robin over
    /// `--source-addrs`), or `None` to let the system choose.
    #[must_use]
    pub fn source_addr(&self, index: u32) -> Option<IpAddr> {
        let count = u32::try_from(self.source_addrs.len())
            .ok()
            .filter(|&n| n > 0)?;
        self.source_addrs.get((index % count) as usize).copied()
    }

    /// The label of the broker in the result line.
    #[must_use]
    pub fn broker_label(&self) -> String {
        if let Some(label) = &self.broker {
            return label.clone();
        }
        match &self.url {
            Some(url) => url.clone(),
            None => {
                let ports: Vec<String> = self.port.iter().map(u16::to_string).collect();
                format!("{}:{}", self.host, ports.join(","))
            }
        }
    }

    /// Whether TLS is on: `--tls`, an `mqtts://` or `wss://` URL, or any TLS option.
    #[must_use]
    pub fn tls_enabled(&self) -> bool {
        let by_url = self
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("mqtts://") || u.starts_with("wss://"));
        self.tls
            || by_url
            || self.cafile.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.insecure
            || self.tls_version.is_some()
            || !self.ciphers.is_empty()
            || self.tls_server_name.is_some()
            || self.tls_resume
            || self.no_tls_resume
    }

    /// The TLS settings, when TLS is on.
    #[must_use]
    pub fn tls_options(&self) -> Option<TlsOptions> {
        self.tls_enabled().then(|| TlsOptions {
            cafile: self.cafile.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            insecure: self.insecure,
            version: self.tls_version.map(|v| match v {
                TlsVersionArg::V1_2 => TlsVersion::V1_2,
                TlsVersionArg::V1_3 => TlsVersion::V1_3,
            }),
            ciphers: self.ciphers.clone(),
            server_name: self.tls_server_name.clone(),
            no_resumption: self.no_tls_resume,
        })
    }

    /// Where the clients connect, from `--url` or `--host`, `--port`, `--ws`, `--ws-path`.
    ///
    /// # Errors
    /// A URL that is not `mqtt`, `mqtts`, `ws` or `wss`, or has a bad port.
    pub fn target(&self) -> Result<Target, LoadError> {
        let Some(url) = &self.url else {
            let ws_path = match (&self.ws_path, self.ws) {
                (Some(path), _) => Some(path.clone()),
                (None, true) => Some("/mqtt".to_owned()),
                (None, false) => None,
            };
            return Ok(Target {
                host: self.host.clone(),
                ports: self.port.clone(),
                tls: self.tls_enabled(),
                ws_path,
            });
        };
        parse_url(url, self.tls_enabled())
    }

    /// The client identifier template of a mode.
    #[must_use]
    pub fn client_id_template(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("mqtt-load-{}-%i", self.scenario.name()))
    }

    /// The topic template of `pub` or filter template of `sub`.
    #[must_use]
    pub fn topic_template(&self) -> String {
        self.topic.clone().unwrap_or_else(|| {
            match self.scenario {
                Scenario::Sub => "mqtt-load/#",
                _ => "mqtt-load/%i",
            }
            .to_owned()
        })
    }

    /// The payload size: `--size`, or 64.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size.unwrap_or(64)
    }

    /// Refuses options that cannot describe a run, with a message naming them.
    ///
    /// # Errors
    /// [`LoadError::Options`] saying what is wrong.
    pub fn validate(&self) -> Result<(), LoadError> {
        let refuse = |why: String| Err(LoadError::Options(why));
        let mode = self.scenario.is_mode();
        let name = self.scenario.name();
        let mode_only: [(&str, bool); 7] = [
            ("--clients", self.clients.is_some()),
            ("--topic", self.topic.is_some()),
            ("--client-id", self.client_id.is_some()),
            ("--payload", self.payload.is_some()),
            ("--retain", self.retain),
            ("--msg-interval", self.msg_interval.is_some()),
            ("--interval", self.interval != 0.0),
        ];
        if !mode && let Some((option, _)) = mode_only.iter().find(|(_, given)| *given) {
            return refuse(format!(
                "{option} applies to the conn, pub and sub modes, not to {name}"
            ));
        }
        if mode && (self.publishers.is_some() || self.subscribers.is_some()) {
            return refuse(format!(
                "{name} takes --clients, not --publishers or --subscribers"
            ));
        }
        if self.scenario != Scenario::Pub
            && (self.payload.is_some() || self.retain || self.msg_interval.is_some())
        {
            return refuse("--payload, --retain and --msg-interval apply to pub".to_owned());
        }
        if self.scenario == Scenario::Conn && self.topic.is_some() {
            return refuse("conn does not publish or subscribe: no --topic".to_owned());
        }
        if self.session_expiry.is_some() && self.mqtt_version != 5 {
            return refuse("--session-expiry needs --mqtt-version 5".to_owned());
        }
        if !self.interval.is_finite() || self.interval < 0.0 {
            return refuse(format!(
                "--interval {} is not a number of ms",
                self.interval
            ));
        }
        if let Some(ms) = self.msg_interval
            && (!ms.is_finite() || ms < 0.0)
        {
            return refuse(format!("--msg-interval {ms} is not a number of ms"));
        }
        if !self.duration.is_finite() || self.duration < 0.0 {
            return refuse(format!(
                "--duration {} is not a number of seconds",
                self.duration
            ));
        }
        if self.qos() == QoS::ExactlyOnce && self.scenario == Scenario::Qos1 {
            return refuse("qos1 runs at QoS 1".to_owned());
        }
        if mode {
            let id = Template::parse(&self.client_id_template())?;
            if id.uses_client_id() {
                return refuse("the client id template cannot contain %c".to_owned());
            }
            if self.clients() > 1 && !id.varies_per_client() {
                return refuse(format!(
                    "{} clients would share the client id {:?}: put %i in --client-id",
                    self.clients(),
                    self.client_id_template()
                ));
            }
            Template::parse(&self.topic_template())?;
            if let Some(payload) = &self.payload {
                Template::parse(payload)?;
            }
        }
        if let Some(username) = &self.username {
            let username = Template::parse(username)?;
            if username.uses_client_id() {
                return refuse("the user name template cannot contain %c".to_owned());
            }
        }
        let target = self.target()?;
        if target.ports.is_empty() {
            return refuse("no port given".to_owned());
        }
        if let Some(path) = &target.ws_path
            && !path.starts_with('/')
        {
            return refuse(format!("the WebSocket path {path:?} must start with '/'"));
        }
        Ok(())
    }
}

/// Splits `scheme://host[:port][/path]`; `force_tls` adds TLS to `mqtt` and `ws` URLs (TLS
/// options given with them).
fn parse_url(url: &str, force_tls: bool) -> Result<Target, LoadError> {
    let bad = |why: &str| LoadError::Options(format!("--url {url:?}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected scheme://host[:port][/path]"))?;
    let (tls, ws, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => (false, false, 1883),
        "mqtts" | "ssl" => (true, false, 8883),
        "ws" => (false, true, 80),
        "wss" => (true, true, 443),
        _ => return Err(bad("the scheme must be mqtt, mqtts, ws or wss")),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("unclosed '['"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(port) => port.parse().map_err(|_| bad("bad port"))?,
        None => default_port,
    };
    if !ws && !path.is_empty() && path != "/" {
        return Err(bad("only ws:// and wss:// URLs have a path"));
    }
    let ws_path = ws.then(|| {
        if path.is_empty() {
            "/mqtt".to_owned()
        } else {
            path.to_owned()
        }
    });
    Ok(Target {
        host: host.to_owned(),
        ports: vec![port],
        tls: tls || force_tls,
        ws_path,
    })
}

fn parse_size(text: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.strip_suffix(['k', 'm']) {
        Some(digits) if lower.ends_with('k') => (digits, 1024),
        Some(digits) => (digits, 1024 * 1024),
        None => (lower.as_str(), 1),
    };
    let size = digits
        .parse::<usize>()
        .map_err(|e| format!("{e}"))?
        .checked_mul(unit)
        .ok_or("too large")?;
    if size < STAMP_LEN {
        return Err(format!("at least {STAMP_LEN} bytes"));
    }
    if size > 64 * 1024 * 1024 {
        return Err("at most 64 MiB".into());
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_scenario() {
        let o = Options::parse_from(["mqtt-load", "fanout"]);
        assert_eq!((o.publishers(), o.subscribers(), o.rate()), (1, 100, 0));
        let o = Options::parse_from(["mqtt-load", "latency", "--mqtt-version", "5"]);
        assert_eq!(o.rate(), 1000);
        assert_eq!(o.version(), ProtocolVersion::V5);
        let o = Options::parse_from(["mqtt-load", "qos1"]);
        assert_eq!((o.publishers(), o.qos()), (8, QoS::AtLeastOnce));
    }

    #[test]
    fn source_addresses_rotate_and_hold_extends_keep_alive() {
        let o = Options::parse_from(["mqtt-load", "idle", "--source-addrs", "127.0.0.1,127.0.0.2"]);
        let first: IpAddr = "127.0.0.1".parse().unwrap();
        let second: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(
            (o.source_addr(0), o.source_addr(1), o.source_addr(2)),
            (Some(first), Some(second), Some(first))
        );
        assert_eq!(
            Options::parse_from(["mqtt-load", "idle"]).source_addr(7),
            None
        );
        let held = Options::parse_from(["mqtt-load", "idle", "--hold", "300"]);
        assert!(u64::from(held.keep_alive()) > 600);
        assert_eq!(held.hold(), Duration::from_secs(300));
    }

    #[test]
    fn rejects_payloads_smaller_than_the_stamp() {
        assert!(Options::try_parse_from(["mqtt-load", "fanin", "--size", "19"]).is_err());
        assert!(Options::try_parse_from(["mqtt-load", "fanin", "--mqtt-version", "2"]).is_err());
        let o = Options::parse_from(["mqtt-load", "pub", "--size", "2k"]);
        assert_eq!(o.size(), 2048);
    }

    fn refused(args: &[&str]) -> String {
        let o = Options::parse_from([&["mqtt-load"], args].concat());
        match o.validate() {
            Err(LoadError::Options(why)) => why,
            other => panic!("{args:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn inconsistent_options_are_refused() {
        assert!(refused(&["fanin", "--topic", "t"]).contains("--topic applies"));
        assert!(refused(&["pub", "--publishers", "2"]).contains("--clients"));
        assert!(refused(&["sub", "--retain"]).contains("apply to pub"));
        assert!(refused(&["pub", "--session-expiry", "60"]).contains("--mqtt-version 5"));
        assert!(refused(&["pub", "-c", "2", "--client-id", "same"]).contains("%i"));
        assert!(refused(&["sub", "-t", "a/%z"]).contains("unknown placeholder"));
        assert!(refused(&["conn", "--url", "http://x"]).contains("scheme"));
        assert!(refused(&["conn", "--ws-path", "mqtt"]).contains("start with '/'"));
        assert!(refused(&["conn", "--client-id", "x-%c"]).contains("%c"));
        let bad_cert = ["mqtt-load", "conn", "--cert", "c.pem"];
        assert!(Options::try_parse_from(bad_cert).is_err());
        let url_and_port = ["mqtt-load", "conn", "--url", "mqtt://h", "--port", "1"];
        assert!(Options::try_parse_from(url_and_port).is_err());
        let o = Options::parse_from(["mqtt-load", "pub", "-c", "3", "--qos", "2"]);
        assert!(o.validate().is_ok());
        assert_eq!(o.qos(), QoS::ExactlyOnce);
    }

    #[test]
    fn urls_name_the_transport() {
        let target = |url: &str| {
            Options::parse_from(["mqtt-load", "conn", "--url", url])
                .target()
                .unwrap()
        };
        let t = target("mqtt://broker.example:1884");
        assert_eq!(
            (t.host.as_str(), t.ports.as_slice(), t.tls),
            ("broker.example", &[1884][..], false)
        );
        assert_eq!(t.ws_path, None);
        let t = target("mqtts://broker.example");
        assert_eq!((t.ports[0], t.tls), (8883, true));
        let t = target("ws://127.0.0.1:8080");
        assert_eq!(
            (t.ports[0], t.tls, t.ws_path.as_deref()),
            (8080, false, Some("/mqtt"))
        );
        let t = target("wss://[::1]:8443/ws");
        assert_eq!((t.host.as_str(), t.ports[0], t.tls), ("::1", 8443, true));
        assert_eq!(t.ws_path.as_deref(), Some("/ws"));
        let o = Options::parse_from(["mqtt-load", "sub", "--ws", "--cafile", "ca.pem"]);
        let t = o.target().unwrap();
        assert_eq!((t.tls, t.ws_path.as_deref()), (true, Some("/mqtt")));
    }

    #[test]
    fn tls_resumption_is_on_unless_refused() {
        let tls = |args: &[&str]| {
            Options::parse_from([&["mqtt-load", "connrate"], args].concat()).tls_options()
        };
        assert!(tls(&[]).is_none());
        assert!(!tls(&["--tls"]).unwrap().no_resumption);
        assert!(!tls(&["--tls-resume"]).unwrap().no_resumption);
        assert!(tls(&["--no-tls-resume"]).unwrap().no_resumption);
        // The last of the two wins.
        assert!(
            !tls(&["--no-tls-resume", "--tls-resume"])
                .unwrap()
                .no_resumption
        );
        assert!(
            tls(&["--tls-resume", "--no-tls-resume"])
                .unwrap()
                .no_resumption
        );
    }

    #[test]
    fn pub_rates_are_per_client() {
        let o = Options::parse_from(["mqtt-load", "pub", "-c", "4"]);
        assert_eq!((o.per_publisher_rate(), o.rate()), (1.0, 4));
        let o = Options::parse_from(["mqtt-load", "pub", "-c", "4", "-I", "10"]);
        assert_eq!((o.per_publisher_rate(), o.rate()), (100.0, 400));
        let o = Options::parse_from(["mqtt-load", "pub", "-c", "4", "--rate", "0"]);
        assert_eq!(o.per_publisher_rate(), 0.0);
        let o = Options::parse_from(["mqtt-load", "fanin", "--rate", "800"]);
        assert_eq!(o.per_publisher_rate(), 100.0);
    }
}
