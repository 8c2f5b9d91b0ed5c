//! Bridges: connections from this broker to other MQTT servers, configured as mosquitto's
//! `connection` blocks or as `[[bridge]]` tables in TOML, with mosquitto's option names,
//! defaults and meanings.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::{ConfigError, tls_names};

/// Which way messages of a bridge topic travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From this broker to the remote one.
    Out,
    /// From the remote broker to this one.
    In,
    /// Both ways.
    Both,
}

impl Direction {
    /// Whether messages travel out to the remote broker.
    pub fn out(self) -> bool {
        matches!(self, Direction::Out | Direction::Both)
    }

    /// Whether messages travel in from the remote broker.
    pub fn inward(self) -> bool {
        matches!(self, Direction::In | Direction::Both)
    }
}

/// One `topic` line of a bridge: `topic PATTERN [in|out|both [QOS [LOCAL_PREFIX
/// [REMOTE_PREFIX]]]]`, as mosquitto reads it. The pattern `""` stands for "the prefix
/// alone"; a prefix `""` for none.
///
/// ```
/// use mqtt_tokio::config::{BridgeTopic, Direction};
///
/// let topic = BridgeTopic::parse("# both 1 home/ site-a/").unwrap();
/// assert_eq!(topic.direction, Direction::Both);
/// assert_eq!(topic.local_filter(), "home/#");
/// assert_eq!(topic.remote_filter(), "site-a/#");
/// assert_eq!(topic.to_remote("home/plug/POWER").as_deref(), Some("site-a/plug/POWER"));
/// assert_eq!(topic.to_local("site-a/plug/POWER").as_deref(), Some("home/plug/POWER"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeTopic {
    /// The pattern (a topic filter), `None` for `""`.
    pub pattern: Option<String>,
    /// The way messages travel (default: out).
    pub direction: Direction,
    /// The QoS of the subscriptions made for it (default 0).
    pub qos: u8,
    /// Put before the pattern on this broker.
    pub local_prefix: Option<String>,
    /// Put before the pattern on the remote broker.
    pub remote_prefix: Option<String>,
}

impl BridgeTopic {
    /// Reads the value of a `topic` line.
    ///
    /// # Errors
    /// The reason, as mosquitto would refuse the line: a wrong direction or QoS, a prefix with
    /// a wildcard, a `""` pattern without both prefixes, or a combination that is no valid
    /// topic filter.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut words = value.split_whitespace();
        let pattern = words.next().ok_or("expected a topic pattern")?;
        let mut topic = BridgeTopic {
            pattern: (pattern != "\"\"").then(|| pattern.to_owned()),
            direction: Direction::Out,
            qos: 0,
            local_prefix: None,
            remote_prefix: None,
        };
        // A word starting with `#` after the pattern begins a comment, as in mosquitto.
        let mut words = words.take_while(|w| !w.starts_with('#'));
        if let Some(direction) = words.next() {
            topic.direction = match direction.to_ascii_lowercase().as_str() {
                "out" => Direction::Out,
                "in" => Direction::In,
                "both" => Direction::Both,
                _ => return Err(format!("invalid bridge topic direction `{direction}`")),
            };
        }
        if let Some(qos) = words.next() {
            topic.qos = match qos {
                "0" => 0,
                "1" => 1,
                "2" => 2,
                _ => return Err(format!("invalid bridge QoS `{qos}`")),
            };
        }
        let prefix = |word: Option<&str>| word.filter(|w| *w != "\"\"").map(str::to_owned);
        topic.local_prefix = prefix(words.next());
        topic.remote_prefix = prefix(words.next());
        if let Some(extra) = words.next() {
            return Err(format!("unexpected `{extra}` after the remote prefix"));
        }
        topic.check()?;
        Ok(topic)
    }

    fn check(&self) -> Result<(), String> {
        if self.pattern.is_none() && (self.local_prefix.is_none() || self.remote_prefix.is_none()) {
            return Err(String::from(
                "a \"\" pattern needs both a local and a remote prefix",
            ));
        }
        for (side, prefix) in [
            ("local", &self.local_prefix),
            ("remote", &self.remote_prefix),
        ] {
            if let Some(prefix) = prefix
                && (prefix.contains(['+', '#']) || prefix.is_empty())
            {
                return Err(format!("invalid bridge topic {side} prefix `{prefix}`"));
            }
        }
        for filter in [self.local_filter(), self.remote_filter()] {
            mqtt_topic::TopicFilter::try_from(filter.as_str())
                .map_err(|why| format!("`{filter}` is not a valid topic filter: {why}"))?;
        }
        Ok(())
    }

    /// The filter of the subscription on this broker (for `out`): local prefix and pattern.
    pub fn local_filter(&self) -> String {
        join(self.local_prefix.as_deref(), self.pattern.as_deref())
    }

    /// The filter of the subscription on the remote broker (for `in`): remote prefix and
    /// pattern.
    pub fn remote_filter(&self) -> String {
        join(self.remote_prefix.as_deref(), self.pattern.as_deref())
    }

    /// The remote topic of a local `topic` this line sends out: the local prefix taken off,
    /// the remote one put on; `None` when the line does not send it.
    pub fn to_remote(&self, topic: &str) -> Option<String> {
        self.direction.out().then_some(())?;
        remap(
            topic,
            &self.local_filter(),
            self.local_prefix.as_deref(),
            self.remote_prefix.as_deref(),
        )
    }

    /// The local topic of a remote `topic` this line brings in; `None` when it does not.
    pub fn to_local(&self, topic: &str) -> Option<String> {
        self.direction.inward().then_some(())?;
        remap(
            topic,
            &self.remote_filter(),
            self.remote_prefix.as_deref(),
            self.local_prefix.as_deref(),
        )
    }
}

fn join(prefix: Option<&str>, pattern: Option<&str>) -> String {
    format!("{}{}", prefix.unwrap_or(""), pattern.unwrap_or(""))
}

/// `topic` with `from` taken off and `to` put on, if it matches `filter`.
fn remap(topic: &str, filter: &str, from: Option<&str>, to: Option<&str>) -> Option<String> {
    let filter = mqtt_topic::TopicFilter::try_from(filter).ok()?;
    let name = mqtt_topic::TopicName::try_from(topic).ok()?;
    if !filter.matches(&name) {
        return None;
    }
    let rest = match from {
        Some(prefix) => topic.strip_prefix(prefix).unwrap_or(topic),
        None => topic,
    };
    Some(format!("{}{rest}", to.unwrap_or("")))
}

impl<'de> Deserialize<'de> for BridgeTopic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let line = String::deserialize(deserializer)?;
        BridgeTopic::parse(&line).map_err(serde::de::Error::custom)
    }
}

/// The MQTT version a bridge speaks to its remote broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeProtocol {
    /// MQTT 3.1 (`mqttv31`).
    Mqttv31,
    /// MQTT 3.1.1 (`mqttv311`, mosquitto's default).
    #[default]
    Mqttv311,
    /// MQTT 5.0 (`mqttv50`).
    Mqttv50,
}

/// When a bridge connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartType {
    /// At start, and again after every drop (mosquitto's default).
    #[default]
    Automatic,
    /// Once `threshold` messages wait for it; it disconnects after `idle_timeout` without
    /// traffic.
    Lazy,
    /// At start only: not again once the connection ends.
    Once,
}

/// One bridge (a mosquitto `connection` block, a TOML `[[bridge]]` table).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// The bridge's name (`connection NAME`).
    pub name: String,
    /// The remote broker's addresses, `host[:port]` (port 1883 when absent; an IPv6 address
    /// needs its port). Tried in order, the first one first after every drop, unless
    /// `round_robin`.
    pub addresses: Vec<String>,
    /// After a drop, try the next address instead of starting again from the first.
    pub round_robin: bool,
    /// The topic lines.
    #[serde(rename = "topic")]
    pub topics: Vec<BridgeTopic>,
    /// Client identifier on the remote broker (default `<hostname>.<name>`).
    pub remote_clientid: Option<String>,
    /// User name on the remote broker.
    pub remote_username: Option<String>,
    /// Password on the remote broker.
    pub remote_password: Option<String>,
    /// Client identifier of the bridge's session on this broker (default
    /// `local.<remote_clientid>`).
    pub local_clientid: Option<String>,
    /// User name on this broker: the bridge's traffic is then authorized by this broker's
    /// ACL as that user. Without one the bridge is trusted, as in mosquitto.
    pub local_username: Option<String>,
    /// Password on this broker.
    pub local_password: Option<String>,
    /// Clean session on the remote broker (default false: the remote keeps the bridge's
    /// subscriptions and QoS 1/2 messages while it is away).
    pub cleansession: bool,
    /// Clean session on this broker (default: as `cleansession`). `false` keeps what is to go
    /// out while the remote broker cannot be reached.
    pub local_cleansession: Option<bool>,
    /// Keep alive towards the remote broker, seconds (default 60).
    pub keepalive_interval: u16,
    /// `mqttv31`, `mqttv311` (default) or `mqttv50`.
    pub protocol_version: BridgeProtocol,
    /// Tell a 3.x remote broker that this is a bridge (the bridge bit), so it does not send
    /// back what the bridge published (default true; a remote that refuses it is connected
    /// to again without).
    pub try_private: bool,
    /// Publish the bridge's state as retained `1` / `0` (default true).
    pub notifications: bool,
    /// Only on this broker, not on the remote one.
    pub notifications_local_only: bool,
    /// The topic of the state (default `$SYS/broker/connection/<remote_clientid>/state`).
    pub notification_topic: Option<String>,
    /// Seconds before connecting again: one value is a constant delay, two are the base and
    /// cap of a jittered exponential backoff (default: 5 and 30, as mosquitto). In TOML a
    /// number or a pair: `restart_timeout = 10`, `restart_timeout = [5, 60]`.
    #[serde(deserialize_with = "restart_timeout")]
    pub restart_timeout: Option<(u64, Option<u64>)>,
    /// `automatic` (default), `lazy` or `once`.
    pub start_type: StartType,
    /// A lazy bridge disconnects after this many seconds without traffic (default 60).
    pub idle_timeout: u64,
    /// A lazy bridge connects once this many messages wait for it (default 10).
    pub threshold: usize,
    /// CA certificates (PEM) that verify the remote broker: TLS is used when this or
    /// `bridge_capath` is set.
    pub bridge_cafile: Option<PathBuf>,
    /// A directory of CA certificates (PEM).
    pub bridge_capath: Option<PathBuf>,
    /// The bridge's client certificate (PEM).
    pub bridge_certfile: Option<PathBuf>,
    /// Its private key (PEM).
    pub bridge_keyfile: Option<PathBuf>,
    /// Do not check that the remote certificate names the host connected to (the chain is
    /// still verified).
    pub bridge_insecure: bool,
    /// `tlsv1.2` or `tlsv1.3`: the only version used (default: both).
    pub bridge_tls_version: Option<String>,
    /// The ALPN protocol offered.
    pub bridge_alpn: Option<String>,
    /// The local address to connect from.
    pub bridge_bind_address: Option<String>,
    /// The largest packet sent to the remote broker (0: the remote's own limit only).
    pub bridge_max_packet_size: u32,
    /// Keep the retain flag of outgoing messages (default true).
    pub bridge_outgoing_retain: bool,
    /// Unsubscribe on the remote broker from the patterns of `out`-only lines, in case an
    /// older configuration subscribed to them there (default true).
    pub bridge_attempt_unsubscribe: bool,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            name: String::new(),
            addresses: Vec::new(),
            round_robin: false,
            topics: Vec::new(),
            remote_clientid: None,
            remote_username: None,
            remote_password: None,
            local_clientid: None,
            local_username: None,
            local_password: None,
            cleansession: false,
            local_cleansession: None,
            keepalive_interval: 60,
            protocol_version: BridgeProtocol::default(),
            try_private: true,
            notifications: true,
            notifications_local_only: false,
            notification_topic: None,
            restart_timeout: None,
            start_type: StartType::default(),
            idle_timeout: 60,
            threshold: 10,
            bridge_cafile: None,
            bridge_capath: None,
            bridge_certfile: None,
            bridge_keyfile: None,
            bridge_insecure: false,
            bridge_tls_version: None,
            bridge_alpn: None,
            bridge_bind_address: None,
            bridge_max_packet_size: 0,
            bridge_outgoing_retain: true,
            bridge_attempt_unsubscribe: true,
        }
    }
}

impl BridgeConfig {
    /// A bridge named `name` with mosquitto's defaults and nothing else.
    pub fn new(name: &str) -> Self {
        BridgeConfig {
            name: name.to_owned(),
            ..BridgeConfig::default()
        }
    }

    /// The client identifier on the remote broker.
    pub fn remote_client_id(&self) -> String {
        self.remote_clientid
            .clone()
            .unwrap_or_else(|| format!("{}.{}", hostname(), self.name))
    }

    /// The client identifier of the bridge's session on this broker.
    pub fn local_client_id(&self) -> String {
        self.local_clientid
            .clone()
            .unwrap_or_else(|| format!("local.{}", self.remote_client_id()))
    }

    /// The topic of the bridge's state notifications.
    pub fn notification_topic(&self) -> String {
        self.notification_topic
            .clone()
            .unwrap_or_else(|| format!("$SYS/broker/connection/{}/state", self.remote_client_id()))
    }

    /// Whether the bridge's session on this broker is clean.
    pub fn local_clean(&self) -> bool {
        self.local_cleansession.unwrap_or(self.cleansession)
    }

    /// Whether the bridge speaks TLS to the remote broker.
    pub fn is_tls(&self) -> bool {
        self.bridge_cafile.is_some() || self.bridge_capath.is_some()
    }

    /// The remote addresses as host and port.
    ///
    /// # Errors
    /// An address whose port is not 1 to 65535.
    pub fn remote_addresses(&self) -> Result<Vec<(String, u16)>, String> {
        self.addresses.iter().map(|a| split_address(a)).collect()
    }

    /// Checks what mosquitto checks at start, and what this broker needs.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the bridge and the reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check()
            .map_err(|why| ConfigError::Invalid(format!("bridge {}: {why}", self.name)))
    }

    /// What [`BridgeConfig::validate`] finds wrong, without the bridge's name.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err(String::from("a bridge needs a name (connection NAME)"));
        }
        if self.addresses.is_empty() {
            return Err(String::from("no remote addresses defined"));
        }
        self.remote_addresses()?;
        if self.topics.is_empty() {
            return Err(String::from("no topics defined"));
        }
        for topic in &self.topics {
            topic.check()?;
        }
        if self.bridge_certfile.is_some() != self.bridge_keyfile.is_some() {
            return Err(String::from(
                "bridge_certfile and bridge_keyfile must be given together",
            ));
        }
        if (self.bridge_certfile.is_some() || self.bridge_insecure || self.bridge_alpn.is_some())
            && !self.is_tls()
        {
            return Err(String::from(
                "TLS options need bridge_cafile or bridge_capath",
            ));
        }
        if let Some(version) = &self.bridge_tls_version {
            tls_names::allows_tls12(version)?;
        }
        if let Some((base, Some(cap))) = self.restart_timeout
            && cap < base
        {
            return Err(String::from(
                "backoff cap is lower than the base in restart_timeout",
            ));
        }
        if self.remote_password.is_some() && self.remote_username.is_none() {
            return Err(String::from("remote_password needs remote_username"));
        }
        Ok(())
    }
}

/// `restart_timeout` in TOML: one number or two.
fn restart_timeout<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<(u64, Option<u64>)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(u64),
        Two([u64; 2]),
    }
    Ok(Some(match Form::deserialize(deserializer)? {
        Form::One(delay) => (delay.max(1), None),
        Form::Two([base, cap]) => (base.max(1), Some(cap)),
    }))
}

/// `host[:port]`; the port is looked for after the last `:`, so an IPv6 address needs one.
fn split_address(address: &str) -> Result<(String, u16), String> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid port in address `{address}`"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Ok((host.to_owned(), port))
        }
        _ => Ok((address.to_owned(), 1883)),
    }
}

/// This machine's name, for the default client identifiers.
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| String::from("localhost"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_form_of_mosquittos_topic_line() {
        let t = BridgeTopic::parse("sensors/#").unwrap();
        assert_eq!((t.direction, t.qos), (Direction::Out, 0));
        assert_eq!(t.to_remote("sensors/a").as_deref(), Some("sensors/a"));
        assert_eq!(t.to_local("sensors/a"), None, "out only");

        let t = BridgeTopic::parse("cmnd/+/POWER in 2").unwrap();
        assert_eq!((t.direction, t.qos), (Direction::In, 2));
        assert_eq!(
            t.to_local("cmnd/plug/POWER").as_deref(),
            Some("cmnd/plug/POWER")
        );
        assert_eq!(t.to_local("cmnd/plug/STATE"), None);

        // Prefixes: local `home/`, remote `site/`.
        let t = BridgeTopic::parse("tele/# both 1 home/ site/").unwrap();
        assert_eq!(t.local_filter(), "home/tele/#");
        assert_eq!(t.remote_filter(), "site/tele/#");
        assert_eq!(t.to_remote("home/tele/x").as_deref(), Some("site/tele/x"));
        assert_eq!(t.to_local("site/tele/x").as_deref(), Some("home/tele/x"));

        // `""` prefixes stand for none.
        let t = BridgeTopic::parse("a/# out 0 \"\" remote/").unwrap();
        assert_eq!(t.local_prefix, None);
        assert_eq!(t.to_remote("a/b").as_deref(), Some("remote/a/b"));

        // A `""` pattern: the prefixes are whole topics, mapped onto each other.
        let t = BridgeTopic::parse("\"\" both 0 local/topic remote/topic").unwrap();
        assert_eq!(t.local_filter(), "local/topic");
        assert_eq!(t.to_remote("local/topic").as_deref(), Some("remote/topic"));
        assert_eq!(t.to_local("remote/topic").as_deref(), Some("local/topic"));
        assert_eq!(t.to_local("remote/topic/x"), None);

        // A comment ends the line.
        let t = BridgeTopic::parse("x/# in 1 # to the cloud").unwrap();
        assert_eq!(
            (t.direction, t.qos, t.local_prefix),
            (Direction::In, 1, None)
        );
    }

    #[test]
    fn lines_mosquitto_refuses_are_refused() {
        for bad in [
            "",
            "a/# sideways",
            "a/# out 3",
            "\"\" out 0 local/",
            "a/# out 0 lo+cal/",
            "a/# out 0 l/ r/ extra",
            "a/#/b out",
        ] {
            assert!(BridgeTopic::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_same_bridge_in_toml() {
        let config = crate::config::parse_toml(
            r##"
            [[bridge]]
            name = "cloud"
            addresses = ["broker.example.net:8883", "backup.example.net"]
            topic = ["tele/# out 1 home/ site-a/", "cmnd/# in 2"]
            remote_clientid = "house"
            protocol_version = "mqttv50"
            restart_timeout = [2, 20]
            start_type = "lazy"
            bridge_cafile = "/etc/ssl/ca.pem"

            [[bridge]]
            name = "second"
            addresses = ["10.0.0.9"]
            topic = ["# both"]
            restart_timeout = 3
            "##,
        )
        .unwrap();
        let cloud = &config.bridges[0];
        assert_eq!(
            cloud.topics[0].to_remote("home/tele/x").as_deref(),
            Some("site-a/tele/x")
        );
        assert_eq!(cloud.protocol_version, BridgeProtocol::Mqttv50);
        assert_eq!(cloud.restart_timeout, Some((2, Some(20))));
        assert_eq!(cloud.start_type, StartType::Lazy);
        assert!(cloud.is_tls());
        assert_eq!(config.bridges[1].restart_timeout, Some((3, None)));
        assert!(
            crate::config::parse_toml(
                "[[bridge]]\nname = \"x\"\naddresses = [\"h\"]\ntopic = [\"a/# sideways\"]\n"
            )
            .is_err()
        );
        assert!(
            crate::config::parse_toml("[[bridge]]\nname = \"x\"\naddresses = [\"h\"]\n").is_err(),
            "no topics"
        );
    }

    #[test]
    fn addresses_and_defaults() {
        let mut bridge = BridgeConfig::new("cloud");
        bridge.addresses = vec![
            "broker.lan".into(),
            "10.0.0.2:8883".into(),
            "[::1]:1884".into(),
        ];
        assert_eq!(
            bridge.remote_addresses().unwrap(),
            [
                ("broker.lan".to_owned(), 1883),
                ("10.0.0.2".to_owned(), 8883),
                ("::1".to_owned(), 1884)
            ]
        );
        assert!(bridge.remote_client_id().ends_with(".cloud"));
        assert_eq!(
            bridge.local_client_id(),
            format!("local.{}", bridge.remote_client_id())
        );
        assert_eq!(
            bridge.notification_topic(),
            format!("$SYS/broker/connection/{}/state", bridge.remote_client_id())
        );
        assert!(bridge.validate().is_err(), "no topics");
        bridge.topics.push(BridgeTopic::parse("#").unwrap());
        assert!(bridge.validate().is_ok());
        bridge.addresses.push("host:0".into());
        assert!(bridge.validate().is_err());
    }
}
