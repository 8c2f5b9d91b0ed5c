//! Broker counters, and their `$SYS/broker/...` rendering in the mosquitto layout.

use std::time::{Duration, Instant};

use crate::output::DropReason;

/// Counters kept by the broker; read them with [`Broker::stats`](crate::Broker::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections that completed CONNECT and are open.
    pub clients_connected: u64,
    /// Sessions kept for clients that are not connected.
    pub clients_disconnected: u64,
    /// Highest `clients_connected` seen.
    pub clients_maximum: u64,
    /// Network connections open (including those that have not sent CONNECT).
    pub connections_open: u64,
    /// PUBLISH packets received from clients.
    pub messages_received: u64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: u64,
    /// Messages dropped for one session (queue full, outbox full, expired, too large); QoS 0
    /// messages are never kept for offline sessions and are not counted.
    pub messages_dropped: u64,
    /// Bytes received from clients.
    pub bytes_received: u64,
    /// Bytes handed out for transmission.
    pub bytes_sent: u64,
    /// Packets received.
    pub packets_received: u64,
    /// Packets sent.
    pub packets_sent: u64,
    /// Connections closed for a protocol error or malformed packet.
    pub protocol_errors: u64,
    /// CONNECTs refused.
    pub connections_refused: u64,
    /// Retained PUBLISH refused because the retained store was full.
    pub retained_refused: u64,
    /// Subscriptions refused (limit, authorization, invalid filter).
    pub subscriptions_refused: u64,
    /// Connections closed because they did not read what the broker wrote.
    pub slow_consumers_closed: u64,
    /// Retained messages stored (read from the store by `Broker::stats`).
    pub retained_messages: u64,
    /// Subscriptions held by all sessions.
    pub subscriptions: u64,
    /// Messages waiting in session queues.
    pub messages_queued: u64,
    /// Times a publisher was paused because a subscriber it feeds was filling up (its queue or
    /// its outbox).
    pub publishers_paused: u64,
    /// Pauses that reached `Config::max_publisher_pause` (that subscriber then drops when full).
    pub publisher_pauses_expired: u64,
    /// Drop episodes: times a session dropped a message after having none dropped since it
    /// last drained (each also reported once as
    /// [`Event::DropsStarted`](crate::Event::DropsStarted)).
    pub drop_episodes: u64,
    /// Topic and payload bytes of the messages waiting in session queues.
    pub bytes_queued: u64,
    /// Bytes handed out for connections and not yet reported flushed.
    pub bytes_unflushed: u64,
    /// Bytes held for delivery as `Config::memory_limit` counts them: `bytes_queued` plus
    /// `bytes_unflushed`.
    pub memory_used: u64,
    /// PUBLISH packets refused because the broker held `Config::memory_limit` bytes.
    pub publishes_refused_memory: u64,
    /// PUBLISH packets dropped because their payload passed `Config::max_payload_size`.
    pub publishes_refused_size: u64,
    /// Network connections opened since the start.
    pub sockets_opened: u64,
    /// CONNECT packets accepted since the start.
    pub connects_accepted: u64,
    /// Sessions ended because their expiry interval passed.
    pub clients_expired: u64,
    /// Payload bytes of the PUBLISH packets received.
    pub publish_bytes_received: u64,
    /// Payload bytes of the PUBLISH packets sent.
    pub publish_bytes_sent: u64,
    /// PUBLISH packets received from clients, by QoS (index 0, 1, 2).
    pub messages_received_by_qos: [u64; 3],
    /// PUBLISH packets sent to clients, by QoS (index 0, 1, 2).
    pub messages_sent_by_qos: [u64; 3],
    /// Messages dropped, by [`DropReason::index`]; read with [`Stats::dropped`].
    pub dropped_by_reason: [u64; 4],
    /// Connected clients by protocol version: 3.1, 3.1.1, 5.0.
    pub clients_by_protocol: [u64; 3],
    /// CONNECTs refused for their credentials: bad user name or password, not authorized, or
    /// an authentication method the broker does not offer.
    pub auth_failures: u64,
}

impl Stats {
    /// Messages dropped for `reason`.
    ///
    /// ```
    /// use mqtt_broker_core::{DropReason, Stats};
    ///
    /// let stats = Stats::default();
    /// assert_eq!(stats.dropped(DropReason::QueueFull), 0);
    /// ```
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped_by_reason[reason.index()]
    }

    /// The `$SYS/broker/...` topics and values, in a fixed order, with mosquitto's names and
    /// meanings: `messages/*` count packets of every kind, `publish/messages/*` PUBLISH packets,
    /// `messages/stored` and `store/messages/*` what waits in session queues.
    pub fn sys_topics(
        &self,
        started: Instant,
        now: Instant,
        version: &str,
    ) -> Vec<(String, String)> {
        let uptime = now.saturating_duration_since(started);
        let entries: [(&str, String); 23] = [
            ("version", version.to_owned()),
            ("uptime", format_uptime(uptime)),
            ("clients/connected", self.clients_connected.to_string()),
            ("clients/active", self.clients_connected.to_string()),
            (
                "clients/disconnected",
                self.clients_disconnected.to_string(),
            ),
            ("clients/inactive", self.clients_disconnected.to_string()),
            (
                "clients/total",
                (self.clients_connected + self.clients_disconnected).to_string(),
            ),
            ("clients/maximum", self.clients_maximum.to_string()),
            ("clients/expired", self.clients_expired.to_string()),
            ("messages/received", self.packets_received.to_string()),
            ("messages/sent", self.packets_sent.to_string()),
            ("messages/stored", self.messages_queued.to_string()),
            ("store/messages/count", self.messages_queued.to_string()),
            ("store/messages/bytes", self.bytes_queued.to_string()),
            (
                "publish/messages/received",
                self.messages_received.to_string(),
            ),
            ("publish/messages/sent", self.messages_sent.to_string()),
            (
                "publish/messages/dropped",
                self.messages_dropped.to_string(),
            ),
            (
                "publish/bytes/received",
                self.publish_bytes_received.to_string(),
            ),
            ("publish/bytes/sent", self.publish_bytes_sent.to_string()),
            ("bytes/received", self.bytes_received.to_string()),
            ("bytes/sent", self.bytes_sent.to_string()),
            (
                "retained messages/count",
                self.retained_messages.to_string(),
            ),
            ("subscriptions/count", self.subscriptions.to_string()),
        ];
        entries
            .into_iter()
            .map(|(name, value)| (format!("$SYS/broker/{name}"), value))
            .collect()
    }
}

/// The counters whose rates `$SYS/broker/load/...` shows, as mosquitto names them.
const LOADS: [&str; 9] = [
    "messages/received",
    "messages/sent",
    "publish/dropped",
    "publish/received",
    "publish/sent",
    "bytes/received",
    "bytes/sent",
    "sockets",
    "connections",
];

/// The averaging windows of the load figures, in seconds.
const WINDOWS: [(u32, &str); 3] = [(60, "1min"), (300, "5min"), (900, "15min")];

/// `$SYS/broker/load/...`: per-minute rates of the counters of [`LOADS`], averaged over 1, 5
/// and 15 minutes the way mosquitto does (an exponentially decaying average updated at every
/// `$SYS` interval, first set to the first interval's rate).
#[derive(Debug, Default, Clone)]
pub(crate) struct SysLoad {
    /// The counters at the last update, and when; `None` before the first.
    last: Option<([u64; 9], Instant)>,
    /// The averages, by window then counter.
    averages: [[f64; 9]; 3],
}

impl SysLoad {
    /// The load topics at `now` from `stats`; the first update measures from `started`.
    pub(crate) fn update(
        &mut self,
        stats: &Stats,
        started: Instant,
        now: Instant,
    ) -> Vec<(String, String)> {
        let counters = [
            stats.packets_received,
            stats.packets_sent,
            stats.messages_dropped,
            stats.messages_received,
            stats.messages_sent,
            stats.bytes_received,
            stats.bytes_sent,
            stats.sockets_opened,
            stats.connects_accepted,
        ];
        let (before, since) = match self.last {
            Some((before, at)) => (Some(before), at),
            None => (None, started),
        };
        self.last = Some((counters, now));
        let seconds = now.saturating_duration_since(since).as_secs_f64().max(1.0);
        let mut topics = Vec::with_capacity(LOADS.len() * WINDOWS.len());
        for (w, (window, suffix)) in WINDOWS.iter().enumerate() {
            let exponent = (-seconds / f64::from(*window)).exp();
            for (i, name) in LOADS.iter().enumerate() {
                let previous = before.map_or(0, |before| before[i]);
                let rate = counters[i].saturating_sub(previous) as f64 * 60.0 / seconds;
                let average = &mut self.averages[w][i];
                *average = match before {
                    None => rate,
                    Some(_) => rate + exponent * (*average - rate),
                };
                topics.push((
                    format!("$SYS/broker/load/{name}/{suffix}"),
                    format!("{average:.2}"),
                ));
            }
        }
        topics
    }
}

/// mosquitto writes uptime as "<seconds> seconds".
fn format_uptime(uptime: Duration) -> String {
    format!("{} seconds", uptime.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_topics_follow_mosquitto_names() {
        let t0 = crate::test_epoch();
        let stats = Stats {
            clients_connected: 3,
            messages_received: 7,
            packets_received: 20,
            ..Stats::default()
        };
        let topics = stats.sys_topics(t0, t0 + Duration::from_secs(42), "v1");
        let get = |name: &str| {
            topics
                .iter()
                .find(|(topic, _)| topic == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get("$SYS/broker/clients/connected"), Some("3"));
        assert_eq!(get("$SYS/broker/publish/messages/received"), Some("7"));
        assert_eq!(
            get("$SYS/broker/messages/received"),
            Some("20"),
            "packets, as mosquitto"
        );
        assert_eq!(get("$SYS/broker/uptime"), Some("42 seconds"));
        assert_eq!(get("$SYS/broker/version"), Some("v1"));
    }

    #[test]
    fn load_figures_decay_towards_the_current_rate_as_mosquitto_computes_them() {
        let t0 = crate::test_epoch();
        let mut load = SysLoad::default();
        let mut stats = Stats::default();
        let value = |topics: &[(String, String)], name: &str| -> f64 {
            let topic = format!("$SYS/broker/load/{name}");
            topics
                .iter()
                .find(|(t, _)| *t == topic)
                .map(|(_, v)| v.parse().expect("a number"))
                .unwrap_or_else(|| panic!("{topic} missing"))
        };
        // 60 PUBLISH in the first minute: 60 a minute, in every window.
        stats.messages_received = 60;
        let first = load.update(&stats, t0, t0 + Duration::from_secs(60));
        assert_eq!(first.len(), 27);
        assert_eq!(value(&first, "publish/received/1min"), 60.0);
        assert_eq!(value(&first, "publish/received/15min"), 60.0);
        // A silent minute: the 1-minute figure falls to 60/e, the 15-minute one much less.
        let second = load.update(&stats, t0, t0 + Duration::from_secs(120));
        let one = value(&second, "publish/received/1min");
        let fifteen = value(&second, "publish/received/15min");
        assert!((one - 60.0 / std::f64::consts::E).abs() < 0.01, "{one}");
        assert!(
            (fifteen - 60.0 * (-60.0f64 / 900.0).exp()).abs() < 0.01,
            "{fifteen}"
        );
    }
}
