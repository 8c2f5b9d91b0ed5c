//! The rules a listener sets for the connections that arrive on it: mosquitto's per-listener
//! options (`mount_point`, `max_qos`, `max_topic_alias`, `use_username_as_clientid`, and with
//! `per_listener_settings` also `allow_zero_length_clientid` and `auto_id_prefix`).

use mqtt_wire::{MqttStr, QoS};

/// What one listener decides for its clients. [`Config::listener`](crate::Config::listener)
/// holds the rules of every listener not named in
/// [`Config::listeners`](crate::Config::listeners).
///
/// ```
/// use mqtt_broker_core::{Config, ListenerId, ListenerRules};
/// use mqtt_wire::QoS;
///
/// let mut config = Config::default();
/// // Listener 1 keeps its clients under `tenant-a/` and at QoS 1 at most.
/// let mut tenant = ListenerRules::default();
/// tenant.mount_point = Some(String::from("tenant-a/"));
/// tenant.maximum_qos = QoS::AtLeastOnce;
/// config.listeners.insert(ListenerId(1), tenant);
/// assert_eq!(config.rules(ListenerId(1)).maximum_qos, QoS::AtLeastOnce);
/// assert_eq!(config.rules(ListenerId(0)).maximum_qos, QoS::ExactlyOnce);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerRules {
    /// Prefix put before every topic a client of this listener publishes, subscribes to,
    /// unsubscribes from or names in its will, and taken off the topics of the messages it
    /// receives: clients of the listener see only the tree below it (mosquitto's
    /// `mount_point`). Joined as is, as mosquitto does: `tenant/` gives `tenant/cmnd/x`. A
    /// message whose topic lies outside the prefix (queued for the session while it was
    /// connected elsewhere) is not sent to it. `$share/<group>/` stays in front of a shared
    /// subscription's filter, which gets the prefix.
    pub mount_point: Option<String>,
    /// Highest QoS clients may publish at (mosquitto's `max_qos`; default `ExactlyOnce`).
    /// Below it, v5 clients are told in CONNACK (Maximum QoS), subscriptions are granted at
    /// most this QoS, a will above it is refused (v5 CONNACK 0x9B) and a PUBLISH above it
    /// ends the connection (v5 DISCONNECT 0x9B).
    pub maximum_qos: QoS,
    /// Topic aliases a v5 client may use towards the broker (0 disables them), and the most the
    /// broker uses towards a client.
    pub topic_alias_maximum: u16,
    /// Accept an empty client identifier (3.1.1 with CleanSession=1, and 5.0) by assigning one.
    pub allow_empty_client_id: bool,
    /// Prefix of client identifiers assigned by the broker.
    pub assigned_client_id_prefix: String,
    /// A client's user name becomes its client identifier, whatever it sent (mosquitto's
    /// `use_username_as_clientid`); a client without a user name is refused (Not authorized).
    pub use_username_as_client_id: bool,
}

impl Default for ListenerRules {
    fn default() -> Self {
        ListenerRules {
            mount_point: None,
            maximum_qos: QoS::ExactlyOnce,
            topic_alias_maximum: 16,
            allow_empty_client_id: true,
            assigned_client_id_prefix: String::from("auto-"),
            use_username_as_client_id: false,
        }
    }
}

impl ListenerRules {
    /// Whether the mount point is usable: not empty, no wildcard, no U+0000, short enough to
    /// leave room for a topic.
    pub(crate) fn mount_point_error(&self) -> Option<&'static str> {
        let mount = self.mount_point.as_deref()?;
        if mount.is_empty() {
            Some("a mount point must not be empty")
        } else if mount.contains(['+', '#', '\0']) {
            Some("a mount point must not contain `+`, `#` or U+0000")
        } else if mount.len() >= usize::from(u16::MAX) {
            Some("a mount point must be shorter than 65535 bytes")
        } else {
            None
        }
    }

    /// `topic` as the broker sees it: behind the mount point, if any. `None` if the joined
    /// topic is longer than an MQTT string may be.
    pub(crate) fn mount(&self, topic: &MqttStr) -> Option<MqttStr> {
        match &self.mount_point {
            None => Some(topic.clone()),
            Some(mount) => joined(format!("{mount}{topic}")),
        }
    }

    /// A filter as the broker sees it: the mount point goes after `$share/<group>/`.
    pub(crate) fn mount_filter(&self, filter: &MqttStr) -> Option<MqttStr> {
        let Some(mount) = &self.mount_point else {
            return Some(filter.clone());
        };
        let joined = match shared_group_end(filter.as_str()) {
            Some(end) => format!("{}{mount}{}", &filter[..end], &filter[end..]),
            None => format!("{mount}{filter}"),
        };
        self::joined(joined)
    }

    /// `topic` as this listener's client sees it: without the mount point (no copy). `None` if
    /// the topic lies outside the mount point.
    pub(crate) fn unmount(&self, topic: &MqttStr) -> Option<MqttStr> {
        match &self.mount_point {
            None => Some(topic.clone()),
            Some(mount) => topic.strip_prefix(mount),
        }
    }
}

/// A joined topic or filter, if an MQTT string can hold it (65535 bytes).
fn joined(text: String) -> Option<MqttStr> {
    if text.len() > usize::from(u16::MAX) {
        return None;
    }
    MqttStr::try_from(text).ok()
}

/// Where the filter of `$share/<group>/<filter>` starts, for a shared subscription.
fn shared_group_end(filter: &str) -> Option<usize> {
    let rest = filter.strip_prefix("$share/")?;
    let group = rest.find('/')?;
    Some("$share/".len() + group + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounted(mount: &str) -> ListenerRules {
        ListenerRules {
            mount_point: Some(mount.to_owned()),
            ..ListenerRules::default()
        }
    }

    #[test]
    fn mount_joins_as_is_and_unmount_takes_it_off() {
        let rules = mounted("tenant/");
        let topic = MqttStr::from_static("cmnd/plug/POWER");
        let inside = rules.mount(&topic).unwrap();
        assert_eq!(inside, "tenant/cmnd/plug/POWER");
        assert_eq!(rules.unmount(&inside).unwrap(), topic);
        assert!(rules.unmount(&MqttStr::from_static("other/x")).is_none());
        // Without a mount point both are the identity.
        let plain = ListenerRules::default();
        assert_eq!(plain.mount(&topic).unwrap(), topic);
        assert_eq!(plain.unmount(&topic).unwrap(), topic);
    }

    #[test]
    fn a_shared_filter_keeps_its_group_in_front() {
        let rules = mounted("t/");
        let shared = MqttStr::from_static("$share/g/cmnd/#");
        assert_eq!(rules.mount_filter(&shared).unwrap(), "$share/g/t/cmnd/#");
        let plain = MqttStr::from_static("cmnd/+/POWER");
        assert_eq!(rules.mount_filter(&plain).unwrap(), "t/cmnd/+/POWER");
        // `$share/` without a group end is not a shared filter: joined as a plain one.
        let odd = MqttStr::from_static("$share/x");
        assert_eq!(rules.mount_filter(&odd).unwrap(), "t/$share/x");
    }

    #[test]
    fn a_joined_topic_longer_than_an_mqtt_string_is_refused() {
        let rules = mounted(&"m".repeat(60_000));
        let long = MqttStr::try_from("x".repeat(6_000)).unwrap();
        assert!(rules.mount(&long).is_none());
        assert!(rules.mount_filter(&long).is_none());
    }

    #[test]
    fn unusable_mount_points_are_named() {
        assert!(mounted("").mount_point_error().is_some());
        assert!(mounted("a/+/").mount_point_error().is_some());
        assert!(mounted("a/#").mount_point_error().is_some());
        assert!(mounted("tenant/").mount_point_error().is_none());
        assert!(ListenerRules::default().mount_point_error().is_none());
    }
}
