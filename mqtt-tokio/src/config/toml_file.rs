//! The native configuration format: TOML mapped onto [`ServerConfig`] by serde.
//!
//! ```toml
//! password_file = "/etc/mqtt/passwd"
//! acl_file = "/etc/mqtt/acl"
//!
//! [[listener]]
//! bind_address = "0.0.0.0"
//! port = 1883
//!
//! [[listener]]
//! port = 8883
//! certfile = "/etc/mqtt/server.pem"
//! keyfile = "/etc/mqtt/server.key"
//!
//! [limits]
//! max_queued_messages = 5000
//! ```

use super::{ConfigError, ServerConfig};

/// Parses a TOML configuration; unknown keys are errors (a typo must not pass silently).
pub fn parse_toml(text: &str) -> Result<ServerConfig, ConfigError> {
    let config: ServerConfig =
        toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Limits, LogDest, Protocol};

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(parse_toml("").unwrap(), ServerConfig::default());
    }

    #[test]
    fn every_option_parses() {
        let text = r#"
            password_file = "/p"
            acl_file = "/a"
            persistence = true
            persistence_location = "/var/lib/mqtt"
            check_retain_source = false
            auto_id_prefix = "gen-"
            pid_file = "/run/mqtt.pid"
            use_username_as_clientid = true
            clientid_prefixes = "sonoff-"
            queue_qos0_messages = true

            [[listener]]
            bind_address = "0.0.0.0"
            port = 8883
            protocol = "websockets"
            cafile = "ca.pem"
            certfile = "server.pem"
            keyfile = "server.key"
            require_certificate = true
            use_identity_as_username = true
            allow_anonymous = true
            max_connections = 100

            [[listener]]
            port = 1884
            mount_point = "tenant/"
            max_qos = 0
            max_topic_alias = 2
            use_username_as_clientid = false
            allow_zero_length_clientid = true
            auto_id_prefix = "t-"

            [limits]
            max_inflight_messages = 10
            max_inflight_bytes = 2048
            max_queued_messages = 20
            message_size_limit = 4096
            max_keepalive = 60
            sys_interval = 0
            connect_timeout = 3
            max_publisher_pause = 7
            memory_limit = 1000000
            max_topic_alias = 0
            retain_available = false
            max_queued_bytes = 5000
            allow_zero_length_clientid = false
            max_session_expiry = 3600
            max_payload_size = 777
            max_qos = 1

            [log]
            dest = ["stdout", { file = "/var/log/mqtt.log" }]
            level = "debug"
        "#;
        let config = parse_toml(text).unwrap();
        assert_eq!(config.password_file.as_deref(), Some("/p".as_ref()));
        assert_eq!(config.acl_file.as_deref(), Some("/a".as_ref()));
        assert_eq!(config.persistence, Some(true));
        assert!(!config.check_retain_source);
        assert_eq!(config.listeners.len(), 2);
        let tls = &config.listeners[0];
        assert_eq!(tls.bind_address, "0.0.0.0");
        assert_eq!(tls.port, 8883);
        assert_eq!(tls.protocol, Protocol::Websockets);
        assert!(tls.is_tls() && tls.require_certificate && tls.use_identity_as_username);
        assert!(tls.allow_anonymous);
        assert_eq!(tls.max_connections, Some(100));
        let plain = &config.listeners[1];
        assert_eq!(plain.bind_address, "127.0.0.1");
        assert!(!plain.allow_anonymous);
        assert_eq!(
            config.limits,
            Limits {
                max_inflight_messages: 10,
                max_inflight_bytes: 2048,
                max_queued_messages: 20,
                message_size_limit: 4096,
                max_keepalive: 60,
                sys_interval: 0,
                connect_timeout: 3,
                max_publisher_pause: 7,
                memory_limit: 1_000_000,
                max_topic_alias: 0,
                retain_available: false,
                max_queued_bytes: 5000,
                allow_zero_length_clientid: false,
                max_session_expiry: 3600,
                max_payload_size: 777,
                max_qos: 1,
            }
        );
        assert_eq!(config.auto_id_prefix, "gen-");
        assert_eq!(config.pid_file.as_deref(), Some("/run/mqtt.pid".as_ref()));
        assert_eq!(
            config.log.dest,
            [LogDest::Stdout, LogDest::File("/var/log/mqtt.log".into())]
        );
        assert_eq!(config.log.level.as_deref(), Some("debug"));
        let core = config.core_config();
        assert_eq!(
            (
                core.listener.topic_alias_maximum,
                core.retain_available,
                core.max_queued_bytes
            ),
            (0, false, 5000)
        );
        assert_eq!(
            (
                core.listener.allow_empty_client_id,
                core.max_session_expiry_interval
            ),
            (false, 3600)
        );
        assert_eq!(core.listener.assigned_client_id_prefix, "gen-");
        assert_eq!(core.max_payload_size, 777);
        assert!(core.listener.use_username_as_client_id);
        assert_eq!(core.required_client_id_prefix.as_deref(), Some("sonoff-"));
        assert!(core.queue_qos0_messages);
        assert_eq!(core.max_inflight_bytes, 2048);
        // The second listener's own rules.
        let tenant = core.rules(mqtt_broker_core::ListenerId(1));
        assert_eq!(tenant.mount_point.as_deref(), Some("tenant/"));
        assert_eq!(tenant.maximum_qos, mqtt_wire::QoS::AtMostOnce);
        assert_eq!(tenant.topic_alias_maximum, 2);
        assert!(!tenant.use_username_as_client_id && tenant.allow_empty_client_id);
        assert_eq!(tenant.assigned_client_id_prefix, "t-");
        assert_eq!(
            core.rules(mqtt_broker_core::ListenerId(0)).mount_point,
            None
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        assert!(matches!(
            parse_toml("pasword_file = \"/p\""),
            Err(ConfigError::Syntax(_))
        ));
        assert!(matches!(
            parse_toml("[[listener]]\nprot = 1"),
            Err(ConfigError::Syntax(_))
        ));
    }

    #[test]
    fn bad_protocol_is_an_error() {
        assert!(parse_toml("[[listener]]\nprotocol = \"quic\"").is_err());
    }
}
