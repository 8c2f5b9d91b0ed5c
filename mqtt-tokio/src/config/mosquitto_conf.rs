//! A reader for mosquitto.conf, so an existing mosquitto installation can switch over with
//! `-c /etc/mosquitto/mosquitto.conf`.
//!
//! The common options are honoured (see [`HONOURED`]); every other option is skipped with a
//! warning that names it and its line, never silently. As in mosquitto 2.x without
//! `per_listener_settings true`, `allow_anonymous` applies to every listener; a `listener`
//! without a bind address listens on every IPv4 interface; a file with no `listener` or `port`
//! keeps the local-only default listener.

use std::path::PathBuf;

use super::{ConfigError, Durability, ListenerConfig, LoadedConfig, Protocol, ServerConfig};

/// The mosquitto.conf options this reader understands.
pub const HONOURED: &[&str] = &[
    "listener",
    "port",
    "bind_address",
    "protocol",
    "allow_anonymous",
    "per_listener_settings",
    "password_file",
    "acl_file",
    "check_retain_source",
    "cafile",
    "certfile",
    "keyfile",
    "require_certificate",
    "use_identity_as_username",
    "max_connections",
    "persistence",
    "persistence_location",
    "autosave_interval",
    "autosave_on_changes",
    "max_inflight_messages",
    "max_queued_messages",
    "message_size_limit",
    "max_keepalive",
    "sys_interval",
    "memory_limit",
];

/// The reader's state while walking the lines.
#[derive(Default)]
struct Reader {
    config: ServerConfig,
    warnings: Vec<String>,
    /// Index in `config.listeners` of the listener that per-listener options apply to.
    current: Option<usize>,
    /// Index of the listener made by `port` / `bind_address` outside any `listener` block.
    default_listener: Option<usize>,
    per_listener_settings: bool,
    global_allow_anonymous: Option<bool>,
    /// `autosave_interval`, resolved with `autosave_on_changes` at the end (either may come
    /// first).
    autosave_interval: Option<u64>,
    autosave_on_changes: bool,
}

/// Parses the text of a mosquitto.conf.
pub fn parse_mosquitto_conf(text: &str) -> Result<LoadedConfig, ConfigError> {
    let mut reader = Reader::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (option, value) = match line.split_once(char::is_whitespace) {
            Some((option, value)) => (option, value.trim()),
            None => (line, ""),
        };
        reader
            .option(option, value)
            .map_err(|why| ConfigError::Syntax(format!("line {}: {option}: {why}", index + 1)))?;
        if !HONOURED.contains(&option) {
            reader.warnings.push(format!(
                "mosquitto.conf line {}: option `{option}` is not supported and was ignored",
                index + 1
            ));
        }
    }
    reader.finish()
}

impl Reader {
    fn option(&mut self, option: &str, value: &str) -> Result<(), String> {
        let limits = &mut self.config.limits;
        match option {
            "listener" => {
                let mut words = value.split_whitespace();
                let port = number(words.next().unwrap_or(""))?;
                let bind_address = words.next().unwrap_or("0.0.0.0").to_owned();
                self.config.listeners.push(ListenerConfig {
                    port,
                    bind_address,
                    ..ListenerConfig::default()
                });
                self.current = Some(self.config.listeners.len() - 1);
            }
            "port" => self.default_listener().port = number(value)?,
            "bind_address" => self.default_listener().bind_address = value.to_owned(),
            "protocol" => {
                self.listener().protocol = match value {
                    "mqtt" => Protocol::Mqtt,
                    "websockets" => Protocol::Websockets,
                    _ => return Err(format!("unknown protocol `{value}`")),
                }
            }
            "allow_anonymous" => {
                let allow = boolean(value)?;
                if self.per_listener_settings {
                    self.listener().allow_anonymous = allow;
                } else {
                    self.global_allow_anonymous = Some(allow);
                }
            }
            "per_listener_settings" => self.per_listener_settings = boolean(value)?,
            "password_file" => self.config.password_file = Some(path(value)?),
            "acl_file" => self.config.acl_file = Some(path(value)?),
            "check_retain_source" => self.config.check_retain_source = boolean(value)?,
            "cafile" => self.listener().cafile = Some(path(value)?),
            "certfile" => self.listener().certfile = Some(path(value)?),
            "keyfile" => self.listener().keyfile = Some(path(value)?),
            "require_certificate" => self.listener().require_certificate = boolean(value)?,
            "use_identity_as_username" => {
                self.listener().use_identity_as_username = boolean(value)?
            }
            "max_connections" => {
                let max: i64 = number(value)?;
                self.listener().max_connections = usize::try_from(max).ok().filter(|&n| n > 0);
            }
            "persistence" => self.config.persistence = Some(boolean(value)?),
            // Resolved in `finish`: seconds, or changes with `autosave_on_changes true`.
            "autosave_interval" => self.autosave_interval = Some(number(value)?),
            "autosave_on_changes" => self.autosave_on_changes = boolean(value)?,
            "persistence_location" => self.config.persistence_location = Some(path(value)?),
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
            "message_size_limit" => limits.message_size_limit = number(value)?,
            "max_keepalive" => limits.max_keepalive = number(value)?,
            "sys_interval" => limits.sys_interval = number(value)?,
            // Bytes; 0 (mosquitto's default) means no limit.
            "memory_limit" => limits.memory_limit = number(value)?,
            _ => {}
        }
        Ok(())
    }

    /// The listener that per-listener options apply to: the last `listener`, else the default.
    fn listener(&mut self) -> &mut ListenerConfig {
        let index = match self.current {
            Some(index) => index,
            None => self.default_index(),
        };
        &mut self.config.listeners[index]
    }

    fn default_listener(&mut self) -> &mut ListenerConfig {
        let index = self.default_index();
        &mut self.config.listeners[index]
    }

    fn default_index(&mut self) -> usize {
        if let Some(index) = self.default_listener {
            return index;
        }
        self.config.listeners.push(ListenerConfig {
            bind_address: String::from("0.0.0.0"),
            ..ListenerConfig::default()
        });
        let index = self.config.listeners.len() - 1;
        self.default_listener = Some(index);
        index
    }

    fn finish(mut self) -> Result<LoadedConfig, ConfigError> {
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
        if let Some(allow) = self.global_allow_anonymous {
            if self.config.listeners.is_empty() {
                // Local-only mode with an explicit choice: make the implicit listener explicit.
                self.config.listeners.push(ListenerConfig::default());
            }
            for listener in &mut self.config.listeners {
                listener.allow_anonymous = allow;
            }
        }
        self.config.validate()?;
        Ok(LoadedConfig {
            config: self.config,
            warnings: self.warnings,
        })
    }
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got `{value}`")),
    }
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("expected a number in range, got `{value}`"))
}

fn path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        Err(String::from("expected a path"))
    } else {
        Ok(PathBuf::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_keeps_local_only_mode() {
        let loaded = parse_mosquitto_conf("# nothing\n\n").unwrap();
        assert_eq!(loaded.config, ServerConfig::default());
        assert!(loaded.warnings.is_empty());
        assert!(loaded.config.effective_listeners()[0].allow_anonymous);
    }

    #[test]
    fn typical_raspberry_pi_file() {
        let text = "\
pid_file /run/mosquitto/mosquitto.pid
persistence true
persistence_location /var/lib/mosquitto/
log_dest file /var/log/mosquitto/mosquitto.log
include_dir /etc/mosquitto/conf.d
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
sys_interval 30
memory_limit 67108864
";
        let loaded = parse_mosquitto_conf(text).unwrap();
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
        assert_eq!(config.listeners[0].bind_address, "0.0.0.0");
        assert_eq!(config.listeners[0].port, 1883);
        let tls = &config.listeners[1];
        assert_eq!(tls.bind_address, "192.168.1.2");
        assert!(tls.is_tls() && tls.require_certificate && tls.use_identity_as_username);
        assert_eq!(tls.max_connections, Some(50));
        assert_eq!(config.listeners[2].protocol, Protocol::Websockets);
        assert!(config.listeners.iter().all(|l| !l.allow_anonymous));
        assert_eq!(config.limits.max_inflight_messages, u16::MAX);
        assert_eq!(config.limits.max_queued_messages, 200);
        assert_eq!(config.limits.message_size_limit, 100_000);
        assert_eq!(config.limits.max_keepalive, 120);
        assert_eq!(config.limits.sys_interval, 30);
        assert_eq!(config.limits.memory_limit, 64 * 1024 * 1024);
        // Each ignored option is named, with its line.
        assert_eq!(loaded.warnings.len(), 3);
        assert!(loaded.warnings[0].contains("line 1") && loaded.warnings[0].contains("pid_file"));
        assert!(loaded.warnings[1].contains("log_dest"));
        assert!(loaded.warnings[2].contains("include_dir"));
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
        assert!(matches!(err, ConfigError::Syntax(ref s) if s.contains("line 2")));
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
