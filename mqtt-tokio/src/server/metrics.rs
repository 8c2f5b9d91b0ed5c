//! The broker's figures in the Prometheus project's OpenMetrics text format, through its Rust
//! client (`prometheus-client`): the core's counters (a [`Stats`] snapshot the broker task
//! copies on request; rendering holds no lock of the broker's) and what the adapter measures
//! itself (connections accepted per listener, the store's commit latency).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use mqtt_broker_core::{DropReason, Stats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::bridge_status::BridgeStatus;

/// The media type of what [`Metrics::render`] writes.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels naming a listener by its URL (`mqtt://127.0.0.1:1883`).
type ListenerLabel = [(&'static str, String); 1];

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// The core's figures as of the scrape being rendered.
    snapshot: Arc<Mutex<Snapshot>>,
    /// One render at a time: each sets the snapshot it encodes.
    rendering: Mutex<()>,
    accepted: Family<ListenerLabel, Counter>,
    commit_seconds: Histogram,
    /// The URL of each MQTT listener, by its index.
    listeners: Mutex<std::collections::BTreeMap<u16, String>>,
    /// The bridges' states, read at each scrape.
    bridges: Arc<Mutex<Vec<Arc<BridgeStatus>>>>,
}

impl Metrics {
    pub(crate) fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let accepted = Family::<ListenerLabel, Counter>::default();
        registry.register(
            "mqtt_listener_connections_accepted",
            "Network connections accepted, by listener",
            accepted.clone(),
        );
        // 100 µs to about 3 s.
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "mqtt_store_commit_seconds",
            "Time the store took to write (and, in sync durability, fsync) one batch of changes",
            commit_seconds.clone(),
        );
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        registry.register_collector(Box::new(CoreStats(snapshot.clone())));
        let bridges = Arc::new(Mutex::new(Vec::new()));
        registry.register_collector(Box::new(Bridges(bridges.clone())));
        Arc::new(Metrics {
            registry,
            snapshot,
            rendering: Mutex::new(()),
            accepted,
            commit_seconds,
            listeners: Mutex::default(),
            bridges,
        })
    }

    /// The bridges whose states the metrics show.
    pub(crate) fn watch_bridges(&self, bridges: Vec<Arc<BridgeStatus>>) {
        *self.bridges.lock().unwrap_or_else(PoisonError::into_inner) = bridges;
    }

    /// The counter of connections accepted on listener `index`, at `url` (which names it in
    /// the metrics).
    pub(crate) fn accepted_on(&self, index: u16, url: &str) -> Counter {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(index, url.to_owned());
        self.accepted
            .get_or_create(&[("listener", url.to_owned())])
            .clone()
    }

    /// Open connections by listener index, named by their URLs.
    pub(crate) fn name_listeners(&self, counts: &[(u16, u64)]) -> Vec<(String, u64)> {
        let names = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        names
            .iter()
            .map(|(index, url)| {
                let open = counts
                    .iter()
                    .find(|(i, _)| i == index)
                    .map_or(0, |(_, n)| *n);
                (url.clone(), open)
            })
            .collect()
    }

    /// Records one store commit that took `seconds`.
    pub(crate) fn commit_took(&self, seconds: f64) {
        self.commit_seconds.observe(seconds);
    }

    /// Every metric, the core's as of `snapshot`, in the OpenMetrics text format.
    pub(crate) fn render(&self, snapshot: Snapshot) -> String {
        let _one = self
            .rendering
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = snapshot;
        let mut out = String::with_capacity(8 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            let _ = writeln!(out, "# EOF");
        }
        out
    }
}

/// What a scrape asks the broker task for: its counters, and what takes a walk (messages in
/// flight, open connections by listener URL).
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) stats: Stats,
    pub(crate) inflight: u64,
    pub(crate) connections: Vec<(String, u64)>,
}

/// The core's figures, encoded from the snapshot on each scrape.
#[derive(Debug)]
struct CoreStats(Arc<Mutex<Snapshot>>);

impl Collector for CoreStats {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snapshot = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let s = &snapshot.stats;
        let e = &mut encoder;
        gauge(
            e,
            "mqtt_connections",
            "Network connections open",
            s.connections_open,
        )?;
        counter(
            e,
            "mqtt_connections_opened",
            "Network connections opened",
            s.sockets_opened,
        )?;
        let versions = ["3.1", "3.1.1", "5.0"];
        let by_protocol: Vec<_> = versions.iter().zip(s.clients_by_protocol).collect();
        gauges(
            e,
            "mqtt_clients_connected",
            "Connected clients, by protocol version",
            "protocol",
            &by_protocol,
        )?;
        counter(
            e,
            "mqtt_connects_accepted",
            "CONNECTs accepted",
            s.connects_accepted,
        )?;
        counter(
            e,
            "mqtt_connects_refused",
            "CONNECTs refused",
            s.connections_refused,
        )?;
        counter(
            e,
            "mqtt_auth_failures",
            "CONNECTs refused for their credentials",
            s.auth_failures,
        )?;
        let sessions = [
            (&"online", s.clients_connected),
            (&"offline", s.clients_disconnected),
        ];
        gauges(
            e,
            "mqtt_sessions",
            "Sessions, by whether their client is connected",
            "state",
            &sessions,
        )?;
        counter(
            e,
            "mqtt_sessions_expired",
            "Sessions ended by their expiry interval",
            s.clients_expired,
        )?;
        let qos = ["0", "1", "2"];
        let received: Vec<_> = qos.iter().zip(s.messages_received_by_qos).collect();
        counters(
            e,
            "mqtt_messages_received",
            "PUBLISH packets received from clients, by QoS",
            "qos",
            &received,
        )?;
        let sent: Vec<_> = qos.iter().zip(s.messages_sent_by_qos).collect();
        counters(
            e,
            "mqtt_messages_sent",
            "PUBLISH packets sent to clients, by QoS",
            "qos",
            &sent,
        )?;
        counter(
            e,
            "mqtt_publish_received_bytes",
            "Payload bytes of the PUBLISH packets received",
            s.publish_bytes_received,
        )?;
        counter(
            e,
            "mqtt_publish_sent_bytes",
            "Payload bytes of the PUBLISH packets sent",
            s.publish_bytes_sent,
        )?;
        counter(
            e,
            "mqtt_received_bytes",
            "Bytes received from clients",
            s.bytes_received,
        )?;
        counter(
            e,
            "mqtt_sent_bytes",
            "Bytes handed out for transmission",
            s.bytes_sent,
        )?;
        counter(
            e,
            "mqtt_packets_received",
            "MQTT packets received",
            s.packets_received,
        )?;
        counter(e, "mqtt_packets_sent", "MQTT packets sent", s.packets_sent)?;
        let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        let dropped: Vec<_> = names.iter().zip(s.dropped_by_reason).collect();
        counters(
            e,
            "mqtt_messages_dropped",
            "Messages dropped for a session, by reason",
            "reason",
            &dropped,
        )?;
        let refused = [
            (&"memory_limit", s.publishes_refused_memory),
            (&"payload_size", s.publishes_refused_size),
        ];
        counters(
            e,
            "mqtt_publishes_refused",
            "PUBLISH packets refused, by reason",
            "reason",
            &refused,
        )?;
        gauge(
            e,
            "mqtt_retained_messages",
            "Retained messages stored",
            s.retained_messages,
        )?;
        counter(
            e,
            "mqtt_retained_refused",
            "Retained PUBLISH refused: the retained store was full",
            s.retained_refused,
        )?;
        gauge(
            e,
            "mqtt_subscriptions",
            "Subscriptions held by all sessions",
            s.subscriptions,
        )?;
        counter(
            e,
            "mqtt_subscriptions_refused",
            "Subscriptions refused",
            s.subscriptions_refused,
        )?;
        gauge(
            e,
            "mqtt_queued_messages",
            "Messages waiting in session queues",
            s.messages_queued,
        )?;
        gauge(
            e,
            "mqtt_queued_bytes",
            "Topic and payload bytes waiting in session queues",
            s.bytes_queued,
        )?;
        gauge(
            e,
            "mqtt_unflushed_bytes",
            "Bytes handed to connections and not yet written",
            s.bytes_unflushed,
        )?;
        gauge(
            e,
            "mqtt_memory_used_bytes",
            "Bytes held for delivery, as memory_limit counts them",
            s.memory_used,
        )?;
        counter(
            e,
            "mqtt_protocol_errors",
            "Connections closed for a protocol error",
            s.protocol_errors,
        )?;
        counter(
            e,
            "mqtt_slow_consumers_closed",
            "Connections closed for not reading what the broker wrote",
            s.slow_consumers_closed,
        )?;
        counter(
            e,
            "mqtt_publishers_paused",
            "Times a publisher was paused for a filling subscriber",
            s.publishers_paused,
        )?;
        counter(
            e,
            "mqtt_drop_episodes",
            "Times a session started dropping messages",
            s.drop_episodes,
        )?;
        gauge(
            e,
            "mqtt_messages_inflight",
            "QoS 1/2 messages sent to clients and not yet acknowledged",
            snapshot.inflight,
        )?;
        let by_listener: Vec<(&str, u64)> = snapshot
            .connections
            .iter()
            .map(|(url, n)| (url.as_str(), *n))
            .collect();
        let by_listener: Vec<(&&str, u64)> = by_listener.iter().map(|(u, n)| (u, *n)).collect();
        gauges(
            e,
            "mqtt_listener_connections",
            "Network connections open, by listener",
            "listener",
            &by_listener,
        )?;
        Ok(())
    }
}

/// The bridges' figures, read from their shared states on each scrape.
#[derive(Debug)]
struct Bridges(Arc<Mutex<Vec<Arc<BridgeStatus>>>>);

impl Collector for Bridges {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let bridges = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if bridges.is_empty() {
            return Ok(());
        }
        let e = &mut encoder;
        let names: Vec<&str> = bridges.iter().map(|b| b.name.as_str()).collect();
        type Field = fn(&BridgeStatus) -> u64;
        let figures: [(&str, &str, Field, bool); 6] = [
            (
                "mqtt_bridge_connected",
                "Whether the bridge is connected to its remote broker",
                |b| u64::from(b.connected.load(Ordering::Relaxed)),
                true,
            ),
            (
                "mqtt_bridge_queued_messages",
                "Messages waiting in the bridge's local session (as of its last look)",
                |b| b.queued.load(Ordering::Relaxed),
                true,
            ),
            (
                "mqtt_bridge_messages_sent",
                "Messages the bridge sent to its remote broker",
                |b| b.sent.load(Ordering::Relaxed),
                false,
            ),
            (
                "mqtt_bridge_messages_received",
                "Messages the bridge brought in from its remote broker",
                |b| b.received.load(Ordering::Relaxed),
                false,
            ),
            (
                "mqtt_bridge_messages_dropped",
                "Messages the bridge acknowledged and dropped (the remote broker cannot take them)",
                |b| b.dropped.load(Ordering::Relaxed),
                false,
            ),
            (
                "mqtt_bridge_connections",
                "Connections the bridge made to its remote broker",
                |b| b.connections.load(Ordering::Relaxed),
                false,
            ),
        ];
        for (name, help, field, is_gauge) in figures {
            let values: Vec<(&&str, u64)> = names
                .iter()
                .zip(bridges.iter())
                .map(|(n, b)| (n, field(b)))
                .collect();
            if is_gauge {
                gauges(e, name, help, "bridge", &values)?;
            } else {
                counters(e, name, help, "bridge", &values)?;
            }
        }
        Ok(())
    }
}

fn counter(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counters(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family =
        e.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (value, count) in values {
        let labels = [(label, **value)];
        ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = e.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    for (value, count) in values {
        let labels = [(label, **value)];
        ConstGauge::new(i64::try_from(*count).unwrap_or(i64::MAX))
            .encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_snapshot_and_the_adapter_figures() {
        let metrics = Metrics::new();
        metrics.accepted_on(0, "mqtt://127.0.0.1:1883").inc_by(3);
        metrics.commit_took(0.002);
        let mut stats = Stats::default();
        stats.messages_received_by_qos = [5, 2, 1];
        stats.messages_received = 8;
        stats.clients_by_protocol = [0, 4, 1];
        stats.dropped_by_reason[DropReason::QueueFull.index()] = 7;
        let bridge = Arc::new(BridgeStatus::new("cloud"));
        bridge.connected.store(true, Ordering::Relaxed);
        bridge.sent.store(5, Ordering::Relaxed);
        bridge.queued.store(2, Ordering::Relaxed);
        metrics.watch_bridges(vec![bridge]);
        let snapshot = Snapshot {
            stats,
            inflight: 4,
            connections: vec![(String::from("mqtt://127.0.0.1:1883"), 2)],
        };
        let text = metrics.render(snapshot);
        for line in [
            "mqtt_messages_received_total{qos=\"0\"} 5",
            "mqtt_messages_received_total{qos=\"2\"} 1",
            "mqtt_clients_connected{protocol=\"3.1.1\"} 4",
            "mqtt_messages_dropped_total{reason=\"queue_full\"} 7",
            "mqtt_listener_connections_accepted_total{listener=\"mqtt://127.0.0.1:1883\"} 3",
            "mqtt_store_commit_seconds_count 1",
            "mqtt_messages_inflight 4",
            "mqtt_listener_connections{listener=\"mqtt://127.0.0.1:1883\"} 2",
            "# TYPE mqtt_messages_received counter",
            "mqtt_bridge_connected{bridge=\"cloud\"} 1",
            "mqtt_bridge_messages_sent_total{bridge=\"cloud\"} 5",
            "mqtt_bridge_queued_messages{bridge=\"cloud\"} 2",
            "mqtt_bridge_messages_dropped_total{bridge=\"cloud\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn the_grafana_dashboard_and_the_docs_name_only_metrics_that_exist() {
        let metrics = Metrics::new();
        metrics.accepted_on(0, "mqtt://127.0.0.1:1883").inc();
        metrics.watch_bridges(vec![Arc::new(BridgeStatus::new("cloud"))]);
        let snapshot = Snapshot {
            connections: vec![(String::from("mqtt://127.0.0.1:1883"), 1)],
            ..Snapshot::default()
        };
        let text = metrics.render(snapshot);
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        for file in ["grafana-dashboard.json", "METRICS.md"] {
            let path = format!("{}/../docs/{file}", env!("CARGO_MANIFEST_DIR"));
            let doc = std::fs::read_to_string(&path).expect("the docs file");
            let named = doc
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("mqtt_") && word.len() > "mqtt_".len());
            for name in named {
                let histogram = format!("{name}_bucket");
                assert!(
                    samples.contains(&name) || samples.contains(&histogram.as_str()),
                    "{file} names `{name}`, which /metrics does not have"
                );
            }
        }
    }
}
