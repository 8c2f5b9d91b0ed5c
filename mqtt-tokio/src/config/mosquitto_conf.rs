//! A reader for mosquitto.conf, so an existing mosquitto installation can switch over with
//! `-c /etc/mosquitto/mosquitto.conf`.
//!
//! Every option of mosquitto.conf(5) of mosquitto 2.0 is in [`OPTIONS`], with what this reader
//! does with it ([`Support`]): honoured with mosquitto's meaning, refused (the broker does not
//! start, and the error names the file, the line and why), or ignored with a warning where
//! nothing a client could notice and nothing about security, reachability or data changes. An
//! option that is not in the table is an error, as in mosquitto: a typo must not pass.
//!
//! As in mosquitto 2.x: `include_dir` (in the main file only) reads the directory's `*.conf`
//! files in mosquitto's order; without `per_listener_settings true`, `allow_anonymous` applies
//! to every listener; options met before the first `listener` belong to the default listener
//! (the one `port` / `bind_address` make, else the local-only one); a file with no `listener`
//! or `port` keeps the local-only listener; nothing is persisted unless `persistence true`;
//! sessions are kept until `persistent_client_expiration`, without a cap of ours.

use std::path::{Path, PathBuf};

use super::{
    BridgeConfig, BridgeProtocol, BridgeTopic, ConfigError, Durability, ListenerConfig,
    LoadedConfig, LogDest, OptionUse, Protocol, ServerConfig, SocketDomain, StartType, tls_names,
};

/// What this reader does with one mosquitto.conf option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Honoured with mosquitto's meaning; the text notes where values or meaning differ
    /// (empty: none). Values it names as refused stop the start with the reason.
    Honoured(&'static str),
    /// Refused: the broker does not start. The text says why.
    Refused(&'static str),
    /// Accepted with a warning: nothing a client could notice and nothing about security,
    /// reachability or data depends on it. The text says why.
    Ignored(&'static str),
}

use Support::{Honoured, Ignored, Refused};

const BRIDGE: Support = Honoured("in a `connection` block (see BRIDGES.md)");
const PLUGIN: Support = Refused(
    "plugins are not supported (mosquitto's C plugin interface); use password_file and acl_file, or embed the broker and set an Authenticator",
);

/// Every option of mosquitto.conf(5) of mosquitto 2.0 (and the older names it still accepts),
/// with what this reader does with it. Options ending in `_` are prefixes (`auth_opt_*`).
pub const OPTIONS: &[(&str, Support)] = &[
    ("acl_file", Honoured("")),
    ("address", BRIDGE),
    ("addresses", BRIDGE),
    (
        "allow_duplicate_messages",
        Ignored(
            "deprecated in mosquitto 2.0; a client with overlapping subscriptions gets one copy of a message here",
        ),
    ),
    ("allow_anonymous", Honoured("")),
    ("allow_zero_length_clientid", Honoured("")),
    ("auth_opt_", PLUGIN),
    ("auth_plugin", PLUGIN),
    ("auth_plugin_deny_special_chars", PLUGIN),
    ("auto_id_prefix", Honoured("")),
    (
        "autosave_interval",
        Honoured("`0` = `sync` durability, `N` = `periodic Ns` (1800 with `persistence true`)"),
    ),
    (
        "autosave_on_changes",
        Honoured("`every N changes` durability"),
    ),
    ("bind_address", Honoured("")),
    (
        "bind_interface",
        Honoured(
            "binds the interface's first IPv4 address, else its first IPv6 address, read at start",
        ),
    ),
    ("bridge_alpn", BRIDGE),
    ("bridge_attempt_unsubscribe", BRIDGE),
    ("bridge_bind_address", BRIDGE),
    ("bridge_cafile", BRIDGE),
    ("bridge_capath", BRIDGE),
    ("bridge_certfile", BRIDGE),
    (
        "bridge_identity",
        Refused("TLS-PSK is not supported (rustls has no pre-shared keys); use certificates"),
    ),
    ("bridge_insecure", BRIDGE),
    ("bridge_keyfile", BRIDGE),
    ("bridge_max_packet_size", BRIDGE),
    ("bridge_outgoing_retain", BRIDGE),
    ("bridge_protocol_version", BRIDGE),
    (
        "bridge_psk",
        Refused("TLS-PSK is not supported (rustls has no pre-shared keys); use certificates"),
    ),
    (
        "bridge_require_ocsp",
        Refused("OCSP stapling is not checked by this broker's TLS client"),
    ),
    ("bridge_tls_version", BRIDGE),
    ("cafile", Honoured("")),
    (
        "capath",
        Honoured(
            "every file of the directory that holds PEM certificates (OpenSSL's hashed names, `.pem`, `.crt`)",
        ),
    ),
    ("certfile", Honoured("")),
    ("check_retain_source", Honoured("")),
    (
        "ciphers",
        Honoured(
            "OpenSSL names of the TLS 1.2 suites rustls has (ECDHE with AES-GCM or ChaCha20, e.g. Tasmota's ECDHE-RSA-AES128-GCM-SHA256); keywords such as `HIGH` and other names are refused",
        ),
    ),
    (
        "ciphers_tls1.3",
        Honoured("TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256"),
    ),
    ("cleansession", BRIDGE),
    ("clientid", BRIDGE),
    ("clientid_prefixes", Honoured("")),
    ("connection", BRIDGE),
    (
        "connection_messages",
        Honoured("logged under the target `mqtt_tokio::connections`"),
    ),
    (
        "crlfile",
        Honoured("PEM CRLs; client certificates they revoke are refused (needs cafile)"),
    ),
    (
        "dhparamfile",
        Ignored("rustls uses no finite-field Diffie-Hellman: the parameters are not needed"),
    ),
    (
        "http_dir",
        Honoured(
            "on a `protocol websockets` listener: `GET`/`HEAD` of files below the directory (`index.html` for a directory), 404 otherwise",
        ),
    ),
    ("idle_timeout", BRIDGE),
    (
        "include_dir",
        Honoured("in the main file only, `*.conf` in mosquitto's order"),
    ),
    ("keepalive_interval", BRIDGE),
    ("keyfile", Honoured("")),
    (
        "listener",
        Honoured(
            "without an address it listens on every interface, IPv6 and IPv4 (one dual-stack socket; IPv4 only where the host has no IPv6)",
        ),
    ),
    ("local_cleansession", BRIDGE),
    ("local_clientid", BRIDGE),
    ("local_password", BRIDGE),
    ("local_username", BRIDGE),
    (
        "log_dest",
        Honoured(
            "`stderr`, `stdout`, `file PATH`, `syslog` (to `/dev/log`, as `mqtt-broker[PID]`), `topic` (`$SYS/broker/log/E`, `W`, `I`), `none`, several at once; `dlt` (automotive diagnostic log) is refused",
        ),
    ),
    ("log_facility", Honoured("`0` to `7`: local0 to local7")),
    (
        "log_timestamp",
        Honoured(
            "the time stamp is RFC 3339 in UTC unless `log_timestamp_format` is given (mosquitto: seconds since 1970)",
        ),
    ),
    (
        "log_timestamp_format",
        Honoured("strftime conversions except the `%E`/`%O` modifiers, in local time"),
    ),
    (
        "log_type",
        Honoured(
            "mapped to the most detailed level named (`debug` for subscribe/unsubscribe/websockets/all)",
        ),
    ),
    (
        "max_connections",
        Honoured("`-1` = unlimited; a connection beyond it is closed at once"),
    ),
    ("max_inflight_bytes", Honoured("`0` = no byte bound")),
    ("max_inflight_messages", Honoured("`0` = 65535")),
    ("max_keepalive", Honoured("")),
    (
        "max_packet_size",
        Honoured("at least 20 bytes, as mosquitto"),
    ),
    ("max_qos", Honoured("")),
    ("max_queued_bytes", Honoured("`0` = no byte bound")),
    (
        "max_queued_messages",
        Honoured("`0` = 1 000 000 (memory stays bounded)"),
    ),
    ("max_topic_alias", Honoured("")),
    ("maximum_qos", Honoured("as `max_qos`")),
    ("memory_limit", Honoured("")),
    (
        "message_size_limit",
        Honoured(
            "the payload; a larger PUBLISH is dropped and acknowledged (v5 0x83: mosquitto's 0x95 is no PUBACK reason code), the connection kept",
        ),
    ),
    (
        "mount_point",
        Honoured(
            "also taken off the topics a client receives (mosquitto 2.0.11 forgets to; later 2.0 releases do), and joined to the topic of UNSUBSCRIBE; a shared subscription keeps `$share/<group>/` in front",
        ),
    ),
    ("notification_topic", BRIDGE),
    ("notifications", BRIDGE),
    ("notifications_local_only", BRIDGE),
    ("password", BRIDGE),
    ("password_file", Honoured("")),
    (
        "per_listener_settings",
        Honoured(
            "allow_anonymous, password_file, acl_file, allow_zero_length_clientid and auto_id_prefix per listener",
        ),
    ),
    (
        "persistence",
        Honoured("default `false`, as mosquitto; the store is `mqtt-broker.redb` (see STORAGE.md)"),
    ),
    (
        "persistence_file",
        Ignored(
            "the store is mqtt-broker.redb in persistence_location; mosquitto's file is not written (a mosquitto.db there is imported once, on the first start without a store)",
        ),
    ),
    ("persistence_location", Honoured("")),
    (
        "persistent_client_expiration",
        Honoured("`<n>h|d|w|m|y`; without it sessions are kept for ever, as mosquitto"),
    ),
    (
        "pid_file",
        Honoured("written once the listeners are bound, removed at exit"),
    ),
    ("plugin", PLUGIN),
    ("plugin_opt_", PLUGIN),
    ("port", Honoured("")),
    (
        "protocol",
        Honoured(
            "`mqtt`, `websockets`, and ours: `http` (Prometheus `/metrics`, `/healthz`, `/readyz`)",
        ),
    ),
    (
        "psk_file",
        Refused("TLS-PSK is not supported; use certificates"),
    ),
    (
        "psk_hint",
        Refused("TLS-PSK is not supported; use certificates"),
    ),
    ("queue_qos0_messages", Honoured("")),
    ("remote_clientid", BRIDGE),
    ("remote_password", BRIDGE),
    ("remote_username", BRIDGE),
    ("require_certificate", Honoured("")),
    ("restart_timeout", BRIDGE),
    ("retain_available", Honoured("")),
    ("retained_persistence", Honoured("as `persistence`")),
    (
        "retry_interval",
        Ignored("no longer available in mosquitto 2.0 either"),
    ),
    ("round_robin", BRIDGE),
    (
        "set_tcp_nodelay",
        Ignored("TCP_NODELAY is always set here (low latency)"),
    ),
    ("socket_domain", Honoured("")),
    ("start_type", BRIDGE),
    ("sys_interval", Honoured("")),
    ("threshold", BRIDGE),
    (
        "tls_engine",
        Refused("OpenSSL engines are not supported; keys are read from PEM files"),
    ),
    (
        "tls_engine_kpass_sha1",
        Refused("OpenSSL engines are not supported; keys are read from PEM files"),
    ),
    ("tls_keyform", Honoured("`pem` only; `engine` is refused")),
    (
        "tls_version",
        Honoured("`tlsv1.2` (TLS 1.2 and 1.3) or `tlsv1.3`; older versions are refused (rustls)"),
    ),
    ("topic", BRIDGE),
    ("try_private", BRIDGE),
    (
        "upgrade_outgoing_qos",
        Honoured("`false` only; `true` is refused"),
    ),
    ("use_identity_as_username", Honoured("")),
    (
        "use_subject_as_username",
        Honoured(
            "the subject as OpenSSL prints it in RFC 2253 form, e.g. `CN=plug-7,O=Home Lab,C=DE`",
        ),
    ),
    ("use_username_as_clientid", Honoured("")),
    (
        "user",
        Honoured(
            "when started as root: switches to the user once ports are bound and files open; a missing user is an error. Without the option the broker keeps the user it was started as (mosquitto: `mosquitto`)",
        ),
    ),
    ("username", BRIDGE),
    (
        "websockets_headers_size",
        Ignored("WebSocket handshake headers are bounded by the WebSocket library"),
    ),
    (
        "websockets_log_level",
        Ignored("WebSocket library logging is part of the broker's log"),
    ),
];

/// The option table as Markdown, one row per option: what docs/CONFIG.md shows.
pub fn options_table() -> String {
    let mut table = String::from("| option | here | why / how |\n|---|---|---|\n");
    for (name, support) in OPTIONS {
        let name = if name.ends_with("opt_") {
            format!("{name}*")
        } else {
            (*name).to_owned()
        };
        let (here, why) = match support {
            Honoured("") => ("honoured", "as mosquitto"),
            Honoured(note) => ("honoured", *note),
            Refused(why) => ("**refused**", *why),
            Ignored(why) => ("ignored (warning)", *why),
        };
        table.push_str(&format!("| `{name}` | {here} | {why} |\n"));
    }
    table
}

/// Why an honoured option's value cannot be used.
enum Problem {
    /// The value is wrong: a syntax error.
    Bad(String),
    /// The value is one this broker does not support: a refusal.
    Unsupported(String),
}

impl From<String> for Problem {
    fn from(why: String) -> Self {
        Problem::Bad(why)
    }
}

/// What this reader does with `option` (prefix options included); `None` for an option
/// mosquitto does not know either.
pub fn support(option: &str) -> Option<Support> {
    OPTIONS
        .iter()
        .find(|(name, _)| {
            if name.ends_with("opt_") {
                option.len() > name.len() && option.starts_with(name)
            } else {
                *name == option
            }
        })
        .map(|&(_, support)| support)
}

/// Where a line came from, for errors and warnings.
#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a str,
    line: usize,
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The reader's state while walking the lines of the main file and its includes.
#[derive(Default)]
struct Reader {
    config: ServerConfig,
    warnings: Vec<String>,
    /// Every option line read, with its treatment.
    options: Vec<OptionUse>,
    /// Index in `config.listeners` of the listener that per-listener options apply to, once a
    /// `listener` line was read.
    current: Option<usize>,
    /// The default listener's settings: options met before any `listener` line.
    default: ListenerConfig,
    /// `port` or `bind_address` was given: the default listener is opened.
    default_opened: bool,
    /// `bind_address` was given (with `port` alone, the default listener binds every
    /// interface).
    default_bind_given: bool,
    /// `allow_anonymous` given for the default listener with `per_listener_settings true`.
    default_anonymous: Option<bool>,
    per_listener_settings: bool,
    global_allow_anonymous: Option<bool>,
    /// `autosave_interval`, resolved with `autosave_on_changes` at the end (either may come
    /// first).
    autosave_interval: Option<u64>,
    autosave_on_changes: bool,
    persistent_client_expiration: u32,
    /// `max_packet_size`, combined with `message_size_limit` at the end (0: none).
    max_packet_size: u32,
    /// Index in `config.bridges` of the bridge that bridge options apply to, once a
    /// `connection` line was read.
    bridge: Option<usize>,
    /// Where each bridge's `connection` line is, for the errors of its checks at the end.
    bridge_lines: Vec<String>,
}

/// Parses the text of a mosquitto.conf; `include_dir` is read from the file system, and
/// errors name the file as `mosquitto.conf`.
pub fn parse_mosquitto_conf(text: &str) -> Result<LoadedConfig, ConfigError> {
    parse_mosquitto_conf_file(text, Path::new("mosquitto.conf"))
}

/// Parses the text of the mosquitto.conf at `path` (named in errors and warnings).
pub fn parse_mosquitto_conf_file(text: &str, path: &Path) -> Result<LoadedConfig, ConfigError> {
    let mut reader = Reader::default();
    // mosquitto's defaults where ours differ: 20 messages in flight, no byte bound on a
    // session's queue (1000 messages bound it, as ours).
    reader.config.limits.max_inflight_messages = 20;
    reader.config.limits.max_queued_bytes = 0;
    reader.read(text, &path.display().to_string(), true)?;
    reader.finish()
}

/// The `*.conf` files of `dir` in the order mosquitto reads them: by name, letters compared
/// without case first, then with case.
fn include_files(dir: &str) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot open include_dir {dir}: {e}"))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() > 5 && n.ends_with(".conf"))
        })
        .collect();
    files.sort_by(|a, b| {
        let (a, b) = (a.to_string_lossy(), b.to_string_lossy());
        let key = |s: &str| {
            s.bytes()
                .map(|c| (c.to_ascii_uppercase(), c))
                .collect::<Vec<_>>()
        };
        key(&a).cmp(&key(&b))
    });
    Ok(files)
}

impl Reader {
    /// Reads the lines of one file; `main` for the file given on the command line (the only
    /// one whose `include_dir` is followed, as in mosquitto).
    fn read(&mut self, text: &str, file: &str, main: bool) -> Result<(), ConfigError> {
        for (index, raw) in text.lines().enumerate() {
            let at = At {
                file,
                line: index + 1,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (option, value) = match line.split_once(char::is_whitespace) {
                Some((option, value)) => (option, value.trim()),
                None => (line, ""),
            };
            if let Some(support) = support(option) {
                self.options.push(OptionUse {
                    at: at.to_string(),
                    line: line.to_owned(),
                    support,
                });
            }
            match support(option) {
                None => {
                    return Err(ConfigError::Syntax(format!(
                        "{at}: unknown option `{option}`"
                    )));
                }
                Some(Refused(why)) => {
                    return Err(ConfigError::Refused(format!("{at}: {option}: {why}")));
                }
                Some(Ignored(why)) => {
                    self.warnings
                        .push(format!("{at}: option `{option}` ignored: {why}"));
                }
                Some(Honoured(_)) if option == "include_dir" => {
                    if value.is_empty() {
                        return Err(ConfigError::Syntax(format!(
                            "{at}: include_dir: expected a directory"
                        )));
                    }
                    if !main {
                        self.warnings.push(format!(
                            "{at}: include_dir ignored: only the main file's is read, as in mosquitto"
                        ));
                        continue;
                    }
                    let files = include_files(value)
                        .map_err(|why| ConfigError::Io(format!("{at}: {why}")))?;
                    for path in files {
                        let name = path.display().to_string();
                        let text = std::fs::read_to_string(&path)
                            .map_err(|e| ConfigError::Io(format!("{name}: {e}")))?;
                        self.read(&text, &name, false)?;
                    }
                }
                Some(Honoured(_)) if option == "connection" => {
                    self.bridge_lines.push(at.to_string());
                    self.option(option, value).map_err(|why| match why {
                        Problem::Unsupported(why) | Problem::Bad(why) => {
                            ConfigError::Syntax(format!("{at}: {option}: {why}"))
                        }
                    })?
                }
                Some(Honoured(_)) => self.option(option, value).map_err(|why| match why {
                    Problem::Unsupported(why) => {
                        ConfigError::Refused(format!("{at}: {option}: {why}"))
                    }
                    Problem::Bad(why) => ConfigError::Syntax(format!("{at}: {option}: {why}")),
                })?,
            }
        }
        Ok(())
    }

    fn option(&mut self, option: &str, value: &str) -> Result<(), Problem> {
        if option == "connection" {
            let name = word(value)?;
            if self.config.bridges.iter().any(|b| b.name == name) {
                return Err(Problem::Bad(format!("duplicate bridge name `{name}`")));
            }
            self.config.bridges.push(BridgeConfig::new(name));
            self.bridge = Some(self.config.bridges.len() - 1);
            return Ok(());
        }
        if support(option) == Some(BRIDGE) {
            let Some(index) = self.bridge else {
                return Err(Problem::Bad(String::from(
                    "needs a `connection` line before it, as in mosquitto",
                )));
            };
            return bridge_option(&mut self.config.bridges[index], option, value);
        }
        let limits = &mut self.config.limits;
        match option {
            "listener" => {
                let mut words = value.split_whitespace();
                let port = number(words.next().unwrap_or(""))?;
                // Without an address: every interface, IPv6 and IPv4, as mosquitto.
                let bind_address = words.next().unwrap_or("::").to_owned();
                if words.next().is_some() {
                    return Err(Problem::Bad(String::from(
                        "expected a port and an optional address",
                    )));
                }
                self.config.listeners.push(ListenerConfig {
                    port,
                    bind_address,
                    ..ListenerConfig::default()
                });
                self.current = Some(self.config.listeners.len() - 1);
            }
            "port" => {
                self.default.port = number(value)?;
                self.default_opened = true;
            }
            "bind_interface" => self.listener().bind_interface = Some(word(value)?.to_owned()),
            "bind_address" => {
                self.default.bind_address = word(value)?.to_owned();
                self.default_opened = true;
                self.default_bind_given = true;
            }
            "socket_domain" => {
                self.listener().socket_domain = Some(match value {
                    "ipv4" => SocketDomain::Ipv4,
                    "ipv6" => SocketDomain::Ipv6,
                    _ => {
                        return Err(Problem::Bad(format!(
                            "expected ipv4 or ipv6, got `{value}`"
                        )));
                    }
                })
            }
            "protocol" => {
                self.listener().protocol = match value {
                    "mqtt" => Protocol::Mqtt,
                    "websockets" => Protocol::Websockets,
                    // Ours: metrics and probes.
                    "http" => Protocol::Http,
                    _ => return Err(Problem::Bad(format!("unsupported protocol `{value}`"))),
                }
            }
            "allow_anonymous" => {
                let allow = boolean(value)?;
                if self.per_listener_settings {
                    match self.current {
                        Some(index) => self.config.listeners[index].allow_anonymous = allow,
                        None => self.default_anonymous = Some(allow),
                    }
                } else {
                    self.global_allow_anonymous = Some(allow);
                }
            }
            "per_listener_settings" => self.per_listener_settings = boolean(value)?,
            "password_file" if self.per_listener_settings => {
                self.listener().password_file = Some(path(value)?);
            }
            "acl_file" if self.per_listener_settings => {
                self.listener().acl_file = Some(path(value)?);
            }
            "password_file" => self.config.password_file = Some(path(value)?),
            "acl_file" => self.config.acl_file = Some(path(value)?),
            "check_retain_source" => self.config.check_retain_source = boolean(value)?,
            "cafile" => self.listener().cafile = Some(path(value)?),
            "capath" => self.listener().capath = Some(path(value)?),
            "certfile" => self.listener().certfile = Some(path(value)?),
            "keyfile" => self.listener().keyfile = Some(path(value)?),
            "tls_keyform" => {
                if value != "pem" {
                    return Err(Problem::Unsupported(String::from(
                        "only PEM keys are supported (OpenSSL engines are not)",
                    )));
                }
            }
            "tls_version" => {
                // tlsv1 and tlsv1.1 are real versions this broker refuses; others are typos.
                tls_names::allows_tls12(value).map_err(|why| match value {
                    "tlsv1" | "tlsv1.1" => Problem::Unsupported(why),
                    _ => Problem::Bad(why),
                })?;
                self.listener().tls_version = Some(value.to_owned());
            }
            "ciphers" => {
                tls_names::cipher_suites(value, false)?;
                self.listener().ciphers = Some(value.to_owned());
            }
            "ciphers_tls1.3" => {
                tls_names::cipher_suites(value, true)?;
                self.listener().ciphers_tls13 = Some(value.to_owned());
            }
            "crlfile" => self.listener().crlfile = Some(path(value)?),
            "http_dir" => self.listener().http_dir = Some(path(value)?),
            "require_certificate" => self.listener().require_certificate = boolean(value)?,
            "use_identity_as_username" => {
                self.listener().use_identity_as_username = boolean(value)?
            }
            "use_subject_as_username" => self.listener().use_subject_as_username = boolean(value)?,
            "max_connections" => {
                let max: i64 = number(value)?;
                self.listener().max_connections = usize::try_from(max).ok().filter(|&n| n > 0);
            }
            "persistence" | "retained_persistence" => {
                self.config.persistence = Some(boolean(value)?)
            }
            // Resolved in `finish`: seconds, or changes with `autosave_on_changes true`.
            "autosave_interval" => self.autosave_interval = Some(number(value)?),
            "autosave_on_changes" => self.autosave_on_changes = boolean(value)?,
            "persistence_location" => self.config.persistence_location = Some(path(value)?),
            "persistent_client_expiration" => {
                self.persistent_client_expiration = duration(value)?;
            }
            // mosquitto: 0 means "no limit"; the protocol's ceiling is 65535.
            "max_inflight_messages" => {
                let max: u16 = number(value)?;
                limits.max_inflight_messages = if max == 0 { u16::MAX } else { max };
            }
            // mosquitto: 0 means "no limit"; we keep memory bounded with a large ceiling.
            "max_queued_messages" => {
                let max: usize = number(value)?;
                limits.max_queued_messages = if max == 0 { 1_000_000 } else { max };
            }
            "max_queued_bytes" => limits.max_queued_bytes = number(value)?,
            "max_inflight_bytes" => limits.max_inflight_bytes = number(value)?,
            // The payload, as in mosquitto; `max_packet_size` bounds the whole packet.
            "message_size_limit" => limits.max_payload_size = number(value)?,
            "max_packet_size" => {
                let max: u32 = number(value)?;
                if max != 0 && max < 20 {
                    return Err(Problem::Bad(String::from("must be 0 or at least 20 bytes")));
                }
                self.max_packet_size = max;
            }
            "max_keepalive" => limits.max_keepalive = number(value)?,
            "max_topic_alias" => self.listener().max_topic_alias = Some(number(value)?),
            "max_qos" | "maximum_qos" => {
                let qos: u8 = number(value)?;
                if qos > 2 {
                    return Err(Problem::Bad(format!("expected 0, 1 or 2, got `{value}`")));
                }
                self.listener().max_qos = Some(qos);
            }
            "mount_point" => {
                let Some(index) = self.current else {
                    return Err(Problem::Bad(String::from(
                        "needs a `listener` line before it, as in mosquitto",
                    )));
                };
                let mount = word(value)?;
                if mount.contains(['+', '#']) {
                    return Err(Problem::Bad(format!(
                        "`{mount}` contains a wildcard character"
                    )));
                }
                self.config.listeners[index].mount_point = Some(mount.to_owned());
            }
            "retain_available" => limits.retain_available = boolean(value)?,
            "allow_zero_length_clientid" if self.per_listener_settings => {
                self.listener().allow_zero_length_clientid = Some(boolean(value)?);
            }
            "auto_id_prefix" if self.per_listener_settings => {
                self.listener().auto_id_prefix = Some(word(value)?.to_owned());
            }
            "allow_zero_length_clientid" => limits.allow_zero_length_clientid = boolean(value)?,
            "auto_id_prefix" => self.config.auto_id_prefix = word(value)?.to_owned(),
            "queue_qos0_messages" => self.config.queue_qos0_messages = boolean(value)?,
            "upgrade_outgoing_qos" => {
                if boolean(value)? {
                    return Err(Problem::Unsupported(String::from(
                        "messages are delivered at the lower of the two QoS, as MQTT requires [MQTT5-3.8.4-8]",
                    )));
                }
            }
            "sys_interval" => limits.sys_interval = number(value)?,
            // Bytes; 0 (mosquitto's default) means no limit.
            "memory_limit" => limits.memory_limit = number(value)?,
            "pid_file" => self.config.pid_file = Some(path(value)?),
            "user" => self.config.user = Some(word(value)?.to_owned()),
            "clientid_prefixes" => self.config.clientid_prefixes = Some(word(value)?.to_owned()),
            "use_username_as_clientid" => {
                self.listener().use_username_as_clientid = Some(boolean(value)?);
            }
            "log_dest" => {
                let mut words = value.splitn(2, char::is_whitespace);
                let dest = match (words.next().unwrap_or(""), words.next().map(str::trim)) {
                    ("stderr", None) => LogDest::Stderr,
                    ("stdout", None) => LogDest::Stdout,
                    ("none", None) => LogDest::None,
                    ("topic", None) => LogDest::Topic,
                    ("file", Some(file)) if !file.is_empty() => LogDest::File(file.into()),
                    ("file", _) => return Err(Problem::Bad(String::from("expected a file name"))),
                    ("syslog", None) => LogDest::Syslog,
                    ("dlt", _) => {
                        return Err(Problem::Unsupported(format!(
                            "log destination `{value}` is not supported yet"
                        )));
                    }
                    _ => return Err(Problem::Bad(format!("unknown log destination `{value}`"))),
                };
                self.config.log.dest.push(dest);
            }
            "connection_messages" => self.config.log.connection_messages = boolean(value)?,
            "log_timestamp" => self.config.log.timestamp = boolean(value)?,
            "log_timestamp_format" => {
                super::strftime_ok(value).map_err(Problem::Bad)?;
                self.config.log.timestamp_format = Some(value.to_owned());
            }
            "log_facility" => {
                let facility: u8 = number(value)?;
                if facility > 7 {
                    return Err(Problem::Bad(format!(
                        "expected 0 to 7 (local0 to local7), got `{value}`"
                    )));
                }
                self.config.log.facility = Some(facility);
            }
            "log_type" => {
                let level = match value {
                    "none" => "off",
                    "error" => "error",
                    "warning" => "warn",
                    "notice" | "information" => "info",
                    "debug" | "subscribe" | "unsubscribe" | "websockets" | "all" => "debug",
                    _ => return Err(Problem::Bad(format!("unknown log type `{value}`"))),
                };
                // Several log_type lines: the most detailed one wins.
                let rank = |l: &str| {
                    ["off", "error", "warn", "info", "debug"]
                        .iter()
                        .position(|&x| x == l)
                };
                let keep = match &self.config.log.level {
                    Some(old) => rank(old) >= rank(level),
                    None => false,
                };
                if !keep {
                    self.config.log.level = Some(level.to_owned());
                }
            }
            _ => {
                return Err(Problem::Bad(String::from(
                    "honoured but not handled (a bug: please report it)",
                )));
            }
        }
        Ok(())
    }

    /// The listener that per-listener options apply to: the last `listener`, else the
    /// default listener.
    fn listener(&mut self) -> &mut ListenerConfig {
        match self.current {
            Some(index) => &mut self.config.listeners[index],
            None => &mut self.default,
        }
    }

    fn finish(mut self) -> Result<LoadedConfig, ConfigError> {
        // As mosquitto: listener options given before the first `listener` line open the
        // default listener (port 1883, every interface) beside the others.
        let default_set = self.default != ListenerConfig::default();
        if self.default_opened || (default_set && !self.config.listeners.is_empty()) {
            let mut default = std::mem::take(&mut self.default);
            if !self.default_bind_given {
                default.bind_address = String::from("::");
            }
            default.allow_anonymous = self.default_anonymous.unwrap_or(false);
            self.config.listeners.insert(0, default);
        } else if self.config.listeners.is_empty()
            && (self.default != ListenerConfig::default() || self.default_anonymous.is_some())
        {
            // Local-only mode, with settings given for it (TLS files, connection limit,
            // anonymous access).
            let default = std::mem::take(&mut self.default);
            let anonymous = self.config.password_file.is_none();
            self.config.listeners.push(ListenerConfig {
                allow_anonymous: self.default_anonymous.unwrap_or(anonymous),
                ..default
            });
        }
        // mosquitto saves every `autosave_interval` seconds (default 1800), or after that many
        // changes with `autosave_on_changes`; 0 means on every change. Ours journals every
        // change before acknowledging it in both periodic modes (docs/STORAGE.md).
        if self.autosave_interval.is_some() || self.config.persistence == Some(true) {
            let interval = self.autosave_interval.unwrap_or(1800);
            self.config.durability = match (interval, self.autosave_on_changes) {
                (0, _) => Durability::Sync,
                (n, false) => Durability::Periodic(std::time::Duration::from_secs(n)),
                (n, true) => Durability::Changes(n),
            };
        }
        // The packet bound is `max_packet_size` (0, mosquitto's default: the protocol's
        // maximum); `message_size_limit` bounds payloads.
        self.config.limits.message_size_limit = self.max_packet_size;
        // mosquitto persists nothing unless told to, and keeps sessions without a cap.
        self.config.persistence.get_or_insert(false);
        self.config.limits.max_session_expiry = self.persistent_client_expiration;
        if let Some(allow) = self.global_allow_anonymous {
            if self.config.listeners.is_empty() {
                // Local-only mode with an explicit choice: make the implicit listener explicit.
                self.config.listeners.push(ListenerConfig::default());
            }
            for listener in &mut self.config.listeners {
                listener.allow_anonymous = allow;
            }
        }
        for (bridge, at) in self.config.bridges.iter().zip(&self.bridge_lines) {
            bridge.check().map_err(|why| {
                ConfigError::Invalid(format!("{at}: connection {}: {why}", bridge.name))
            })?;
        }
        self.config.validate()?;
        Ok(LoadedConfig {
            config: self.config,
            warnings: self.warnings,
            options: self.options,
        })
    }
}

/// One option of a `connection` block.
fn bridge_option(bridge: &mut BridgeConfig, option: &str, value: &str) -> Result<(), Problem> {
    let text = |value: &str| word(value).map(|w| Some(w.to_owned()));
    match option {
        "address" | "addresses" => {
            if !bridge.addresses.is_empty() {
                return Err(Problem::Bad(String::from("addresses given twice")));
            }
            bridge.addresses = value
                .split_whitespace()
                .take_while(|w| !w.starts_with('#'))
                .map(str::to_owned)
                .collect();
            if bridge.addresses.is_empty() {
                return Err(Problem::Bad(String::from("expected an address")));
            }
            bridge.remote_addresses()?;
        }
        "round_robin" => bridge.round_robin = boolean(value)?,
        "topic" => bridge.topics.push(BridgeTopic::parse(value)?),
        "clientid" | "remote_clientid" => bridge.remote_clientid = text(value)?,
        "username" | "remote_username" => bridge.remote_username = text(value)?,
        "password" | "remote_password" => bridge.remote_password = text(value)?,
        "local_clientid" => bridge.local_clientid = text(value)?,
        "local_username" => bridge.local_username = text(value)?,
        "local_password" => bridge.local_password = text(value)?,
        "cleansession" => bridge.cleansession = boolean(value)?,
        "local_cleansession" => bridge.local_cleansession = Some(boolean(value)?),
        "keepalive_interval" => bridge.keepalive_interval = number(value)?,
        "bridge_protocol_version" => {
            bridge.protocol_version = match value {
                "mqttv31" => BridgeProtocol::Mqttv31,
                "mqttv311" => BridgeProtocol::Mqttv311,
                "mqttv50" => BridgeProtocol::Mqttv50,
                _ => {
                    return Err(Problem::Bad(format!(
                        "expected mqttv31, mqttv311 or mqttv50, got `{value}`"
                    )));
                }
            }
        }
        "try_private" => bridge.try_private = boolean(value)?,
        "notifications" => bridge.notifications = boolean(value)?,
        "notifications_local_only" => bridge.notifications_local_only = boolean(value)?,
        "notification_topic" => bridge.notification_topic = text(value)?,
        "restart_timeout" => {
            let mut words = value.split_whitespace();
            // As mosquitto: below one second is one second.
            let base = number::<u64>(words.next().unwrap_or(""))?.max(1);
            let cap = words.next().map(number::<u64>).transpose()?;
            if cap.is_some_and(|cap| cap < base) {
                return Err(Problem::Bad(String::from(
                    "backoff cap is lower than the base",
                )));
            }
            bridge.restart_timeout = Some((base, cap));
        }
        "start_type" => {
            bridge.start_type = match value {
                "automatic" => StartType::Automatic,
                "lazy" => StartType::Lazy,
                "once" => StartType::Once,
                "manual" => {
                    return Err(Problem::Unsupported(String::from(
                        "manual start_type is not supported (nor by mosquitto)",
                    )));
                }
                _ => return Err(Problem::Bad(format!("invalid start_type `{value}`"))),
            }
        }
        "idle_timeout" => bridge.idle_timeout = number::<u64>(value)?.max(1),
        "threshold" => bridge.threshold = number::<usize>(value)?.max(1),
        "bridge_cafile" => bridge.bridge_cafile = Some(path(value)?),
        "bridge_capath" => bridge.bridge_capath = Some(path(value)?),
        "bridge_certfile" => bridge.bridge_certfile = Some(path(value)?),
        "bridge_keyfile" => bridge.bridge_keyfile = Some(path(value)?),
        "bridge_insecure" => bridge.bridge_insecure = boolean(value)?,
        "bridge_tls_version" => {
            tls_names::allows_tls12(value).map_err(|why| match value {
                "tlsv1" | "tlsv1.1" => Problem::Unsupported(why),
                _ => Problem::Bad(why),
            })?;
            bridge.bridge_tls_version = text(value)?;
        }
        "bridge_alpn" => bridge.bridge_alpn = text(value)?,
        "bridge_bind_address" => bridge.bridge_bind_address = text(value)?,
        "bridge_max_packet_size" => bridge.bridge_max_packet_size = number(value)?,
        "bridge_outgoing_retain" => bridge.bridge_outgoing_retain = boolean(value)?,
        "bridge_attempt_unsubscribe" => bridge.bridge_attempt_unsubscribe = boolean(value)?,
        _ => {
            return Err(Problem::Bad(String::from(
                "honoured but not handled (a bug: please report it)",
            )));
        }
    }
    Ok(())
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got `{value}`")),
    }
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("expected a number in range, got `{value}`"))
}

fn word(value: &str) -> Result<&str, String> {
    match value.split_whitespace().collect::<Vec<_>>()[..] {
        [word] => Ok(word),
        [] => Err(String::from("expected a value")),
        _ => Err(format!("expected one value, got `{value}`")),
    }
}

fn path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        Err(String::from("expected a path"))
    } else {
        Ok(PathBuf::from(value))
    }
}

/// mosquitto's duration syntax: a number and a unit, `h`, `d`, `w`, `m` (month) or `y`; in
/// seconds (at most `u32::MAX`).
fn duration(value: &str) -> Result<u32, String> {
    let bad = || format!("expected a number and h, d, w, m or y, got `{value}`");
    let split = value.len().checked_sub(1).ok_or_else(bad)?;
    let (count, unit) = value.split_at(split);
    let count: u64 = count.parse().map_err(|_| bad())?;
    let unit: u64 = match unit {
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "m" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    Ok(u32::try_from(count.saturating_mul(unit))
        .unwrap_or(u32::MAX)
        .max(1))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogDest;

    #[test]
    fn empty_file_keeps_local_only_mode() {
        let loaded = parse_mosquitto_conf("# nothing\n\n").unwrap();
        // mosquitto's defaults: nothing persisted, sessions kept without a cap of ours, packets
        // bounded by the protocol only, 20 in flight, queues bounded by count only.
        let mut expected = ServerConfig {
            persistence: Some(false),
            ..ServerConfig::default()
        };
        expected.limits.max_session_expiry = 0;
        expected.limits.message_size_limit = 0;
        expected.limits.max_inflight_messages = 20;
        expected.limits.max_queued_bytes = 0;
        assert_eq!(loaded.config, expected);
        assert!(loaded.warnings.is_empty());
        assert!(loaded.config.effective_listeners()[0].allow_anonymous);
    }

    #[test]
    fn typical_raspberry_pi_file() {
        let conf_d = tempfile::tempdir().unwrap();
        std::fs::write(conf_d.path().join("local.conf"), "sys_interval 30\n").unwrap();
        let text = format!(
            "\
pid_file /run/mosquitto/mosquitto.pid
persistence true
persistence_location /var/lib/mosquitto/
log_dest file /var/log/mosquitto/mosquitto.log
include_dir {}
",
            conf_d.path().display()
        ) + "\
listener 1883
allow_anonymous false
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl
listener 8883 192.168.1.2
cafile /etc/ssl/ca.pem
certfile /etc/ssl/server.pem
keyfile /etc/ssl/server.key
require_certificate true
use_identity_as_username true
max_connections 50
listener 9001
protocol websockets
max_inflight_messages 0
max_queued_messages 200
message_size_limit 100000
max_keepalive 120
memory_limit 67108864
";
        let loaded = parse_mosquitto_conf(&text).unwrap();
        let config = &loaded.config;
        assert_eq!(config.persistence, Some(true));
        assert_eq!(
            config.persistence_location.as_deref(),
            Some("/var/lib/mosquitto/".as_ref())
        );
        assert_eq!(
            config.password_file.as_deref(),
            Some("/etc/mosquitto/passwd".as_ref())
        );
        assert_eq!(config.listeners.len(), 3);
        assert_eq!(
            config.listeners[0].bind_address, "::",
            "IPv6 and IPv4, as mosquitto"
        );
        assert_eq!(config.listeners[0].port, 1883);
        let tls = &config.listeners[1];
        assert_eq!(tls.bind_address, "192.168.1.2");
        assert!(tls.is_tls() && tls.require_certificate && tls.use_identity_as_username);
        assert_eq!(tls.max_connections, Some(50));
        assert_eq!(config.listeners[2].protocol, Protocol::Websockets);
        assert!(config.listeners.iter().all(|l| !l.allow_anonymous));
        assert_eq!(config.limits.max_inflight_messages, u16::MAX);
        assert_eq!(config.limits.max_queued_messages, 200);
        assert_eq!(
            config.limits.max_payload_size, 100_000,
            "the payload, as mosquitto"
        );
        assert_eq!(
            config.limits.message_size_limit, 0,
            "no packet bound but the protocol's"
        );
        assert_eq!(config.limits.max_keepalive, 120);
        assert_eq!(config.limits.sys_interval, 30);
        assert_eq!(config.limits.memory_limit, 64 * 1024 * 1024);
        // pid_file, log_dest and include_dir are honoured (sys_interval came from conf.d).
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(
            config.pid_file.as_deref(),
            Some("/run/mosquitto/mosquitto.pid".as_ref())
        );
        assert_eq!(
            config.log.dest,
            [LogDest::File("/var/log/mosquitto/mosquitto.log".into())]
        );
    }

    #[test]
    fn port_and_bind_address_make_the_default_listener() {
        let loaded = parse_mosquitto_conf("port 1884\nbind_address 10.0.0.1\n").unwrap();
        assert_eq!(loaded.config.listeners.len(), 1);
        assert_eq!(loaded.config.listeners[0].port, 1884);
        assert_eq!(loaded.config.listeners[0].bind_address, "10.0.0.1");
        assert!(!loaded.config.listeners[0].allow_anonymous);
    }

    #[test]
    fn allow_anonymous_is_global_unless_per_listener() {
        let global =
            parse_mosquitto_conf("listener 1\nallow_anonymous true\nlistener 2\n").unwrap();
        assert!(global.config.listeners.iter().all(|l| l.allow_anonymous));
        let per = parse_mosquitto_conf(
            "per_listener_settings true\nlistener 1\nallow_anonymous true\nlistener 2\n",
        )
        .unwrap();
        assert!(per.config.listeners[0].allow_anonymous);
        assert!(!per.config.listeners[1].allow_anonymous);
    }

    #[test]
    fn explicit_anonymous_refusal_holds_in_local_only_mode() {
        let loaded = parse_mosquitto_conf("allow_anonymous false\n").unwrap();
        let listeners = loaded.config.effective_listeners();
        assert_eq!(listeners[0].bind_address, "127.0.0.1");
        assert!(!listeners[0].allow_anonymous);
    }

    #[test]
    fn bad_values_name_their_line() {
        let err = parse_mosquitto_conf("listener 1883\nallow_anonymous yes\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax(ref s) if s.contains("mosquitto.conf:2")));
        assert!(parse_mosquitto_conf("listener 70000\n").is_err());
        assert!(parse_mosquitto_conf("protocol quic\n").is_err());
        assert!(parse_mosquitto_conf("certfile\n").is_err());
    }

    #[test]
    fn check_retain_source_is_read() {
        let off = parse_mosquitto_conf("check_retain_source false\n").unwrap();
        assert!(!off.config.check_retain_source && off.warnings.is_empty());
        let on = parse_mosquitto_conf("check_retain_source true\n").unwrap();
        assert!(on.config.check_retain_source);
    }

    #[test]
    fn autosave_settings_map_onto_durability() {
        let durability = |text: &str| parse_mosquitto_conf(text).unwrap().config.durability;
        let seconds = |n| Durability::Periodic(std::time::Duration::from_secs(n));
        // mosquitto's default interval with persistence on.
        assert_eq!(durability("persistence true\n"), seconds(1800));
        assert_eq!(
            durability("autosave_interval 60\npersistence true\n"),
            seconds(60)
        );
        assert_eq!(
            durability("autosave_interval 0\npersistence true\n"),
            Durability::Sync
        );
        // Either order.
        assert_eq!(
            durability("autosave_on_changes true\nautosave_interval 500\n"),
            Durability::Changes(500)
        );
        assert_eq!(
            durability("autosave_interval 500\nautosave_on_changes true\n"),
            Durability::Changes(500)
        );
        assert_eq!(durability("persistence false\n"), Durability::default());
    }

    #[test]
    fn unlimited_max_connections() {
        let loaded = parse_mosquitto_conf("listener 1\nmax_connections -1\n").unwrap();
        assert_eq!(loaded.config.listeners[0].max_connections, None);
    }
}

#[cfg(test)]
mod strictness {
    use super::*;
    use crate::config::LogDest;

    /// A line setting `option` to a sample value.
    fn sample(option: &str) -> String {
        if option.ends_with("opt_") {
            format!("{option}key value")
        } else {
            format!("{option} value")
        }
    }

    #[test]
    fn every_refused_option_stops_the_start_naming_file_line_and_reason() {
        let refused: Vec<_> = OPTIONS
            .iter()
            .filter_map(|&(name, support)| match support {
                Refused(why) => Some((name, why)),
                _ => None,
            })
            .collect();
        assert!(refused.len() > 5, "plugins, TLS-PSK and more");
        for (name, why) in refused {
            let text = format!("listener 1883\n{}\n", sample(name));
            let file = Path::new("/etc/mosquitto/mosquitto.conf");
            match parse_mosquitto_conf_file(&text, file) {
                Err(ConfigError::Refused(message)) => {
                    assert!(
                        message.starts_with("/etc/mosquitto/mosquitto.conf:2: ")
                            && message.contains(name.trim_end_matches('_'))
                            && message.contains(why),
                        "{name}: {message}"
                    );
                }
                other => panic!("{name} must be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn connection_blocks_are_read_with_mosquittos_meaning() {
        let text = "listener 1883\n\
            connection cloud\n\
            address broker.example.net:8883 backup.example.net # fail-over\n\
            topic tele/# out 1 home/ site-a/\n\
            topic cmnd/# in 2\n\
            topic \"\" both 0 local/state remote/state\n\
            remote_clientid house\n\
            remote_username bridge\n\
            remote_password secret\n\
            cleansession false\n\
            local_cleansession true\n\
            keepalive_interval 30\n\
            bridge_protocol_version mqttv50\n\
            try_private false\n\
            notifications true\n\
            notification_topic house/bridge/state\n\
            restart_timeout 2 20\n\
            start_type lazy\n\
            threshold 3\n\
            idle_timeout 90\n\
            bridge_cafile /etc/ssl/ca.pem\n\
            bridge_insecure true\n\
            bridge_tls_version tlsv1.3\n\
            bridge_alpn mqtt\n\
            bridge_max_packet_size 4096\n\
            bridge_outgoing_retain false\n\
            local_username bridge-local\n\
            connection second\n\
            addresses 10.0.0.9\n\
            topic # both\n\
            round_robin true\n";
        let config = parse_mosquitto_conf(text).unwrap().config;
        assert_eq!(config.bridges.len(), 2);
        let cloud = &config.bridges[0];
        assert_eq!(cloud.name, "cloud");
        assert_eq!(
            cloud.remote_addresses().unwrap(),
            [
                ("broker.example.net".to_owned(), 8883),
                ("backup.example.net".to_owned(), 1883)
            ]
        );
        assert_eq!(cloud.topics.len(), 3);
        assert_eq!(
            cloud.topics[0].to_remote("home/tele/x").as_deref(),
            Some("site-a/tele/x")
        );
        assert_eq!(cloud.topics[1].qos, 2);
        assert_eq!(cloud.topics[2].pattern, None);
        assert_eq!(cloud.remote_client_id(), "house");
        assert_eq!(cloud.local_client_id(), "local.house");
        assert_eq!(cloud.remote_username.as_deref(), Some("bridge"));
        assert!(!cloud.cleansession && cloud.local_clean());
        assert_eq!(cloud.keepalive_interval, 30);
        assert_eq!(cloud.protocol_version, BridgeProtocol::Mqttv50);
        assert!(!cloud.try_private);
        assert_eq!(cloud.notification_topic(), "house/bridge/state");
        assert_eq!(cloud.restart_timeout, Some((2, Some(20))));
        assert_eq!(
            (cloud.start_type, cloud.threshold, cloud.idle_timeout),
            (StartType::Lazy, 3, 90)
        );
        assert!(cloud.is_tls() && cloud.bridge_insecure);
        assert_eq!(cloud.bridge_max_packet_size, 4096);
        assert!(!cloud.bridge_outgoing_retain);
        assert_eq!(cloud.local_username.as_deref(), Some("bridge-local"));
        let second = &config.bridges[1];
        assert!(second.round_robin && second.try_private && second.notifications);
        assert_eq!(second.start_type, StartType::Automatic);
        // The listener after which the blocks came is still there.
        assert_eq!(config.listeners.len(), 1);
    }

    #[test]
    fn a_bridge_mosquitto_would_refuse_names_its_file_and_line() {
        for (text, line, why) in [
            ("topic a/#\n", 1, "needs a `connection` line"),
            ("connection a\nconnection a\n", 2, "duplicate bridge name"),
            ("connection a\naddress h\n", 1, "no topics defined"),
            ("connection a\ntopic #\n", 1, "no remote addresses"),
            ("connection a\naddress h:0\n", 2, "invalid port"),
            (
                "connection a\naddress h\ntopic # sideways\n",
                3,
                "direction",
            ),
            (
                "connection a\naddress h\ntopic # out 0\nstart_type manual\n",
                4,
                "manual",
            ),
            (
                "connection a\naddress h\ntopic # out 0\nrestart_timeout 30 5\n",
                4,
                "lower than the base",
            ),
            (
                "connection a\naddress h\ntopic #\nbridge_insecure true\n",
                1,
                "need bridge_cafile",
            ),
        ] {
            let file = Path::new("/etc/mosquitto/conf.d/bridge.conf");
            let err = parse_mosquitto_conf_file(text, file)
                .unwrap_err()
                .to_string();
            let at = format!("/etc/mosquitto/conf.d/bridge.conf:{line}: ");
            assert!(err.contains(&at) && err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn options_that_would_weaken_the_broker_are_refused() {
        for line in [
            "psk_file /etc/mosquitto/psk",
            "plugin /usr/lib/mosquitto_dynamic_security.so",
            "auth_plugin /usr/lib/auth.so",
            "auth_opt_backends files",
            "ciphers HIGH:!aNULL",
            "tls_version tlsv1.1",
            "log_dest dlt",
            "bridge_psk 0123abcd",
        ] {
            let err = parse_mosquitto_conf(&format!("listener 8883\n{line}\n")).unwrap_err();
            let message = match &err {
                ConfigError::Refused(m) | ConfigError::Syntax(m) => m,
                other => panic!("{line}: {other}"),
            };
            assert!(message.starts_with("mosquitto.conf:2: "), "{line}: {err}");
        }
    }

    #[test]
    fn values_this_broker_does_not_support_are_refusals_not_syntax_errors() {
        for line in [
            "upgrade_outgoing_qos true",
            "log_dest dlt",
            "tls_version tlsv1.1",
        ] {
            let err = parse_mosquitto_conf(&format!("{line}\n")).unwrap_err();
            assert!(
                matches!(err, ConfigError::Refused(ref m) if !m.contains('\0')),
                "{line}: {err:?}"
            );
        }
        let typo = parse_mosquitto_conf("upgrade_outgoing_qos yes\n").unwrap_err();
        assert!(matches!(typo, ConfigError::Syntax(_)), "{typo:?}");
    }

    #[test]
    fn an_unknown_option_is_an_error_as_in_mosquitto() {
        let err = parse_mosquitto_conf("listener 1883\nallow_anonymus true\n").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Syntax(String::from(
                "mosquitto.conf:2: unknown option `allow_anonymus`"
            ))
        );
        assert_eq!(support("auth_opt_"), None, "a prefix alone is no option");
        assert_eq!(support("plugin_opt_x"), Some(PLUGIN));
    }

    #[test]
    fn ignored_options_warn_with_their_line_and_reason() {
        let loaded =
            parse_mosquitto_conf("listener 1883\nwebsockets_log_level 255\nset_tcp_nodelay true\n")
                .unwrap();
        assert_eq!(loaded.warnings.len(), 2);
        assert!(
            loaded.warnings[0]
                .starts_with("mosquitto.conf:2: option `websockets_log_level` ignored: ")
        );
        assert!(loaded.warnings[1].contains("TCP_NODELAY"));
    }

    #[test]
    fn include_dir_reads_conf_files_in_mosquittos_order_from_the_main_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        // Case-insensitive first: a.conf, B.conf, c.conf; later files win.
        write("c.conf", "max_keepalive 30\ninclude_dir /nonexistent\n");
        write("B.conf", "max_keepalive 20\nlistener 1884\n");
        write("a.conf", "max_keepalive 10\nlistener 1883\n");
        write("notes.txt", "this is not read\n");
        write(".conf", "neither is this\n");
        let text = format!(
            "include_dir {}\nallow_anonymous true\n",
            dir.path().display()
        );
        let loaded = parse_mosquitto_conf(&text).unwrap();
        let ports: Vec<u16> = loaded.config.listeners.iter().map(|l| l.port).collect();
        assert_eq!(ports, [1883, 1884]);
        assert_eq!(loaded.config.limits.max_keepalive, 30);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("c.conf:2: include_dir ignored"));

        let missing = parse_mosquitto_conf("include_dir /nonexistent/conf.d\n").unwrap_err();
        assert!(matches!(missing, ConfigError::Io(ref m) if m.contains("mosquitto.conf:1")));
        // An error inside an included file names that file.
        write("d.conf", "max_keepalive many\n");
        let err = parse_mosquitto_conf(&text).unwrap_err();
        assert!(
            matches!(err, ConfigError::Syntax(ref m) if m.contains("d.conf:1: max_keepalive")),
            "{err}"
        );
    }

    #[test]
    fn per_listener_options_before_any_listener_open_no_extra_listener() {
        let loaded = parse_mosquitto_conf(
            "per_listener_settings true\nallow_anonymous true\nlistener 1884 127.0.0.1\nallow_anonymous false\n",
        )
        .unwrap();
        let listeners = &loaded.config.listeners;
        assert_eq!(listeners.len(), 1, "no anonymous 0.0.0.0:1883 listener");
        assert_eq!(
            (listeners[0].port, listeners[0].allow_anonymous),
            (1884, false)
        );
    }

    #[test]
    fn per_listener_password_and_acl_files_belong_to_their_listener() {
        let text = "per_listener_settings true\nlistener 1883\npassword_file /a\nacl_file /acl-a\n\
                    listener 1884\npassword_file /b\nlistener 1885\nallow_anonymous true\n";
        let loaded = parse_mosquitto_conf(text).unwrap();
        let files: Vec<(Option<&Path>, Option<&Path>)> = (loaded.config.listeners.iter())
            .map(|l| (l.password_file.as_deref(), l.acl_file.as_deref()))
            .collect();
        assert_eq!(
            files,
            [
                (Some("/a".as_ref()), Some("/acl-a".as_ref())),
                (Some("/b".as_ref()), None),
                (None, None),
            ]
        );
        assert_eq!(
            loaded.config.password_file, None,
            "nothing for the whole broker"
        );
        // Without per_listener_settings they are the broker's.
        let global =
            parse_mosquitto_conf("listener 1883\npassword_file /a\nlistener 1884\n").unwrap();
        assert_eq!(global.config.password_file.as_deref(), Some("/a".as_ref()));
        assert!(
            global
                .config
                .listeners
                .iter()
                .all(|l| l.password_file.is_none())
        );
    }

    #[test]
    fn limits_take_mosquittos_names_and_syntax() {
        let loaded = parse_mosquitto_conf(
            "persistent_client_expiration 14d\nmax_topic_alias 0\nretain_available false\n\
             max_queued_bytes 1000000\nmax_inflight_bytes 4096\nallow_zero_length_clientid 0\nauto_id_prefix gen-\n\
             max_packet_size 5000\nmessage_size_limit 300\nlog_type error\nlog_type notice\n\
             log_dest stdout\nlog_dest stderr\nlog_dest syslog\nlog_facility 5\n\
             queue_qos0_messages false\n",
        )
        .unwrap();
        let config = &loaded.config;
        assert_eq!(config.limits.max_session_expiry, 14 * 86_400);
        // A listener option: on the local-only listener here.
        assert_eq!(config.listeners[0].max_topic_alias, Some(0));
        assert!(!config.limits.retain_available && !config.limits.allow_zero_length_clientid);
        assert_eq!(config.limits.max_queued_bytes, 1_000_000);
        assert_eq!(config.core_config().max_inflight_bytes, 4096);
        assert_eq!(config.limits.message_size_limit, 5000);
        assert_eq!(config.limits.max_payload_size, 300);
        assert_eq!(config.auto_id_prefix, "gen-");
        assert_eq!(config.log.level.as_deref(), Some("info"));
        assert_eq!(
            config.log.dest,
            [LogDest::Stdout, LogDest::Stderr, LogDest::Syslog]
        );
        assert_eq!(config.log.facility, Some(5));
        assert!(parse_mosquitto_conf("log_facility 8\n").is_err());
        assert_eq!(duration("2w"), Ok(14 * 86_400));
        assert!(duration("14").is_err() && duration("d").is_err() && duration("").is_err());
        assert!(
            parse_mosquitto_conf("queue_qos0_messages true\n")
                .unwrap()
                .config
                .core_config()
                .queue_qos0_messages
        );
        assert!(parse_mosquitto_conf("max_packet_size 19\n").is_err());
        assert_eq!(
            parse_mosquitto_conf("max_packet_size 30\n")
                .unwrap()
                .config
                .limits
                .message_size_limit,
            30
        );
    }
}

#[cfg(test)]
mod documentation {
    /// docs/CONFIG.md shows the option table as [`super::options_table`] renders it (skipped
    /// when the crate is built outside the workspace, without the docs).
    #[test]
    fn config_md_lists_every_option_as_the_reader_treats_it() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md");
        let Ok(doc) = std::fs::read_to_string(path) else {
            return;
        };
        let (start, end) = ("<!-- options:start -->\n", "<!-- options:end -->");
        let from = doc
            .find(start)
            .expect("docs/CONFIG.md has the options markers")
            + start.len();
        let to = doc[from..].find(end).expect("the end marker") + from;
        let table = super::options_table();
        assert!(
            doc[from..to] == table,
            "docs/CONFIG.md's option table is stale; between the markers it must read:\n{table}"
        );
    }
}

#[cfg(test)]
mod tls_options {
    use super::*;

    #[test]
    fn tls_versions_ciphers_and_crls_reach_the_listener() {
        let loaded = parse_mosquitto_conf(
            "listener 8883\ncafile /ca.pem\ncertfile /s.pem\nkeyfile /s.key\n\
             tls_version tlsv1.3\nciphers ECDHE-RSA-AES128-GCM-SHA256\n\
             ciphers_tls1.3 TLS_AES_256_GCM_SHA384\ncrlfile /crl.pem\n",
        )
        .unwrap();
        let tls = &loaded.config.listeners[0];
        assert_eq!(tls.tls_version.as_deref(), Some("tlsv1.3"));
        assert_eq!(tls.ciphers.as_deref(), Some("ECDHE-RSA-AES128-GCM-SHA256"));
        assert_eq!(tls.ciphers_tls13.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        assert_eq!(tls.crlfile.as_deref(), Some("/crl.pem".as_ref()));
        // On a plain listener they would be silently meaningless: refused.
        let err = parse_mosquitto_conf("listener 1883\nciphers ECDHE-RSA-AES128-GCM-SHA256\n")
            .unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid(ref m) if m.contains("need certfile")),
            "{err}"
        );
    }
}

#[cfg(test)]
mod listener_rules {
    use super::*;
    use mqtt_broker_core::ListenerId;
    use mqtt_wire::QoS;

    #[test]
    fn max_qos_belongs_to_its_listener() {
        let loaded = parse_mosquitto_conf("listener 1883\nmax_qos 0\nlistener 1884\n").unwrap();
        let core = loaded.config.core_config();
        assert_eq!(core.rules(ListenerId(0)).maximum_qos, QoS::AtMostOnce);
        assert_eq!(core.rules(ListenerId(1)).maximum_qos, QoS::ExactlyOnce);
        assert!(parse_mosquitto_conf("listener 1883\nmax_qos 3\n").is_err());
    }

    #[test]
    fn client_identifier_options_belong_to_their_listener() {
        let loaded = parse_mosquitto_conf(
            "clientid_prefixes sonoff-\nlistener 1883\nuse_username_as_clientid true\nlistener 1884\n",
        )
        .unwrap();
        let core = loaded.config.core_config();
        assert!(core.rules(ListenerId(0)).use_username_as_client_id);
        assert!(!core.rules(ListenerId(1)).use_username_as_client_id);
        assert_eq!(core.required_client_id_prefix.as_deref(), Some("sonoff-"));
        // With per_listener_settings, allow_zero_length_clientid and auto_id_prefix too.
        let loaded = parse_mosquitto_conf(
            "per_listener_settings true\nlistener 1883\nallow_zero_length_clientid false\n\
             listener 1884\nauto_id_prefix tenant-\n",
        )
        .unwrap();
        let core = loaded.config.core_config();
        assert!(!core.rules(ListenerId(0)).allow_empty_client_id);
        assert_eq!(core.rules(ListenerId(0)).assigned_client_id_prefix, "auto-");
        assert!(core.rules(ListenerId(1)).allow_empty_client_id);
        assert_eq!(
            core.rules(ListenerId(1)).assigned_client_id_prefix,
            "tenant-"
        );
        // Without it they are the broker's.
        let loaded = parse_mosquitto_conf(
            "listener 1883\nallow_zero_length_clientid false\nlistener 1884\n",
        )
        .unwrap();
        let core = loaded.config.core_config();
        assert!(!core.rules(ListenerId(1)).allow_empty_client_id);
    }

    #[test]
    fn mount_points_and_topic_aliases_belong_to_their_listener() {
        let loaded = parse_mosquitto_conf(
            "listener 1883\nlistener 1884\nmount_point tenant/\nmax_topic_alias 4\n",
        )
        .unwrap();
        let core = loaded.config.core_config();
        assert_eq!(core.rules(ListenerId(0)).mount_point, None);
        assert_eq!(core.rules(ListenerId(0)).topic_alias_maximum, 16);
        assert_eq!(
            core.rules(ListenerId(1)).mount_point.as_deref(),
            Some("tenant/")
        );
        assert_eq!(core.rules(ListenerId(1)).topic_alias_maximum, 4);
        // mosquitto wants a listener first, and no wildcard.
        let before = parse_mosquitto_conf("mount_point tenant/\nlistener 1883\n").unwrap_err();
        assert!(
            before.to_string().contains("mosquitto.conf:1: mount_point"),
            "{before}"
        );
        let wild = parse_mosquitto_conf("listener 1883\nmount_point a/+/\n").unwrap_err();
        assert!(
            wild.to_string().contains("mosquitto.conf:2: mount_point"),
            "{wild}"
        );
    }

    #[test]
    fn listener_options_before_the_first_listener_open_the_default_one_as_mosquitto() {
        let loaded = parse_mosquitto_conf("max_qos 1\nlistener 8883\n").unwrap();
        let listeners = &loaded.config.listeners;
        assert_eq!(listeners.len(), 2);
        assert_eq!(
            (listeners[0].port, listeners[0].bind_address.as_str()),
            (1883, "::")
        );
        assert_eq!(listeners[0].max_qos, Some(1));
        assert_eq!(listeners[1].port, 8883);
        assert_eq!(listeners[1].max_qos, None);
    }
}
