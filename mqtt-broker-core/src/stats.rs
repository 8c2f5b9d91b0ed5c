//! Broker counters, and their `$SYS/broker/...` rendering in the mosquitto layout.

use std::time::{Duration, Instant};

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
}

impl Stats {
    /// The `$SYS/broker/...` topics and values, in a fixed order.
    pub fn sys_topics(
        &self,
        started: Instant,
        now: Instant,
        version: &str,
    ) -> Vec<(String, String)> {
        let uptime = now.saturating_duration_since(started);
        let entries: [(&str, String); 17] = [
            ("version", version.to_owned()),
            ("uptime", format_uptime(uptime)),
            ("clients/connected", self.clients_connected.to_string()),
            (
                "clients/disconnected",
                self.clients_disconnected.to_string(),
            ),
            (
                "clients/total",
                (self.clients_connected + self.clients_disconnected).to_string(),
            ),
            ("clients/maximum", self.clients_maximum.to_string()),
            ("messages/received", self.messages_received.to_string()),
            ("messages/sent", self.messages_sent.to_string()),
            ("messages/dropped", self.messages_dropped.to_string()),
            ("messages/stored", self.messages_queued.to_string()),
            ("bytes/received", self.bytes_received.to_string()),
            ("bytes/sent", self.bytes_sent.to_string()),
            ("load/connections", self.connections_open.to_string()),
            ("packets/received", self.packets_received.to_string()),
            ("packets/sent", self.packets_sent.to_string()),
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
        assert_eq!(get("$SYS/broker/messages/received"), Some("7"));
        assert_eq!(get("$SYS/broker/uptime"), Some("42 seconds"));
        assert_eq!(get("$SYS/broker/version"), Some("v1"));
    }
}
