//! `[cluster]`: this server as one node of several acting as one broker over NATS with
//! JetStream (run by the `mqtt-cluster` crate; the `mqtt-broker` binary starts it when the
//! table is there). Only the settings live here; without the table nothing of a cluster runs.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// How this node joins its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster: letters, digits, `-` and `_`.
    pub node: String,
    /// The NATS servers to connect to (`nats://host:4222`, `tls://host:4222`); at least one.
    /// JetStream must be enabled on them.
    pub nats: Vec<String>,
    /// Prefix of every NATS subject and JetStream bucket of the cluster (default `mqtt`), so
    /// that several clusters can share one NATS.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// NATS user name (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// NATS password.
    #[serde(default)]
    pub password: Option<String>,
    /// NATS authentication token.
    #[serde(default)]
    pub token: Option<String>,
    /// A NATS credentials file (JWT and NKey seed).
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// CA certificate file (PEM) to verify the NATS servers with; TLS is then required.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS servers that ask for one, with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Copies JetStream keeps of the cluster's state (retained messages, session owners):
    /// 1 (default) on a single NATS server, 3 on a NATS cluster of three or more.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Seconds between two announcements of this node to the others (its name and clients),
    /// and between two updates of `$SYS/broker/cluster/...` here; a node not heard of for
    /// three of them is taken as gone. Default 5, at least 1.
    #[serde(default = "default_status_interval")]
    pub status_interval: u64,
}

fn default_status_interval() -> u64 {
    5
}

fn default_prefix() -> String {
    String::from("mqtt")
}

fn default_replicas() -> usize {
    1
}

impl ClusterConfig {
    /// A node named `node` of the cluster on the NATS at `nats`, every other setting at its
    /// default.
    pub fn new(node: impl Into<String>, nats: Vec<String>) -> Self {
        ClusterConfig {
            node: node.into(),
            nats,
            prefix: default_prefix(),
            username: None,
            password: None,
            token: None,
            credentials: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            replicas: default_replicas(),
            status_interval: default_status_interval(),
        }
    }

    /// Refuses what the cluster could not honour.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(format!("cluster: {why}")));
        let token_safe = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !token_safe(&self.node) {
            return invalid(format!(
                "node `{}`: a name of letters, digits, `-` and `_` is needed",
                self.node
            ));
        }
        if !token_safe(&self.prefix) {
            return invalid(format!(
                "prefix `{}`: letters, digits, `-` and `_` only",
                self.prefix
            ));
        }
        if self.nats.is_empty() {
            return invalid(String::from(
                "no NATS server given (nats = [\"nats://host:4222\"])",
            ));
        }
        for url in &self.nats {
            let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|s| url.starts_with(s));
            if !scheme_ok || url.contains(char::is_whitespace) {
                return invalid(format!(
                    "NATS server `{url}`: expected nats://host:port or tls://host:port"
                ));
            }
        }
        if self.password.is_some() && self.username.is_none() {
            return invalid(String::from("a password without a username"));
        }
        let methods = [
            self.username.is_some(),
            self.token.is_some(),
            self.credentials.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return invalid(String::from(
                "one of username/password, token or credentials, not several",
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid(String::from("tls_cert and tls_key go together"));
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid(format!(
                "replicas {}: JetStream keeps 1 to 5 copies",
                self.replicas
            ));
        }
        if self.status_interval == 0 {
            return invalid(String::from("status_interval must be at least 1 second"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_toml;

    #[test]
    fn a_cluster_table_is_read_with_its_defaults() {
        let config = parse_toml(
            "[cluster]\nnode = \"pi-2\"\nnats = [\"nats://10.0.0.1:4222\", \"nats://10.0.0.2:4222\"]\n",
        )
        .expect("valid");
        let cluster = config.cluster.clone().expect("a cluster");
        assert_eq!(cluster.node, "pi-2");
        assert_eq!(cluster.nats.len(), 2);
        assert_eq!((cluster.prefix.as_str(), cluster.replicas), ("mqtt", 1));
        assert!(parse_toml("").expect("valid").cluster.is_none());
        let core = config.core_config();
        assert!(core.cluster);
        assert_eq!(
            core.listener.assigned_client_id_prefix, "auto-pi-2-",
            "assigned identifiers differ from node to node"
        );
    }

    #[test]
    fn what_the_cluster_cannot_honour_is_refused() {
        for (text, why) in [
            ("node = \"a.b\"\nnats = [\"nats://h:4222\"]", "node `a.b`"),
            ("node = \"a\"\nnats = []", "no NATS server"),
            ("node = \"a\"\nnats = [\"http://h\"]", "expected nats://"),
            (
                "node = \"a\"\nnats = [\"nats://h:1\"]\npassword = \"p\"",
                "without a username",
            ),
            (
                "node = \"a\"\nnats = [\"nats://h:1\"]\ntoken = \"t\"\nusername = \"u\"",
                "not several",
            ),
            (
                "node = \"a\"\nnats = [\"nats://h:1\"]\nreplicas = 7",
                "replicas 7",
            ),
            (
                "node = \"a\"\nnats = [\"nats://h:1\"]\nprefix = \"a.b\"",
                "prefix",
            ),
            ("node = \"a\"\nnats = [\"nats://h:1\"]\nseeds = 1", "seeds"),
        ] {
            let error = parse_toml(&format!("[cluster]\n{text}\n"))
                .expect_err(text)
                .to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
