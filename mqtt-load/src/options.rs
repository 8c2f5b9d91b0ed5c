//! [`Options`]: the command line of `mqtt-load`, one [`Scenario`] plus the knobs it reads.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use mqtt_wire::{ProtocolVersion, QoS};

use crate::payload::STAMP_LEN;

/// What to measure.
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
        }
    }
}

/// A load generator for MQTT brokers (in the spirit of emqtt-bench).
///
/// Prints one progress line per second to stderr and one `RESULT key=value ...` line to stdout.
#[derive(Clone, Debug, Parser)]
#[command(name = "mqtt-load", version, about)]
pub struct Options {
    /// The scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port; several (`1883,1884,1885`, e.g. the nodes of a cluster) spread the
    /// publishers over them, publisher `i` on the `i`-th port modulo their number.
    #[arg(long, default_value = "1883", value_delimiter = ',', num_args = 1..)]
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
    /// MQTT protocol level: 4 (3.1.1) or 5.
    #[arg(long = "mqtt-version", default_value_t = 4, value_parser = clap::value_parser!(u8).range(4..=5))]
    pub mqtt_version: u8,
    /// QoS of publications and subscriptions (0 or 1); `qos1` always uses 1.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// Payload size in bytes (the first 20 carry publisher, sequence and timestamp).
    #[arg(long, default_value_t = 64, value_parser = parse_size)]
    pub size: usize,
    /// Publishers (default: fanin 8, qos1 8, others 1).
    #[arg(long)]
    pub publishers: Option<u32>,
    /// Subscribers (default: fanout 100, others 1).
    #[arg(long)]
    pub subscribers: Option<u32>,
    /// Total publish rate in messages per second, 0 for as fast as possible
    /// (default: latency 1000, others 0).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Unacknowledged QoS 1 messages each publisher keeps in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub window: u32,
    /// How long to publish (or connect), in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// At most this many messages per publisher (or connections for `connrate`); 0: no limit.
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Connections for `idle`.
    #[arg(long, default_value_t = 1000)]
    pub connections: u32,
    /// Concurrent connecting workers for `idle` and `connrate`.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Broker process id, to read its resident memory from /proc (`idle`).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// How long subscribers may keep draining after the publishers stop, in seconds.
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
}

impl Options {
    /// The protocol version from `--mqtt-version`.
    #[must_use]
    pub const fn version(&self) -> ProtocolVersion {
        if self.mqtt_version == 5 {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V3_1_1
        }
    }

    /// The QoS of messages and subscriptions.
    #[must_use]
    pub fn qos(&self) -> QoS {
        if self.scenario == Scenario::Qos1 || self.qos == 1 {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        }
    }

    /// Publishers, with the scenario's default.
    #[must_use]
    pub fn publishers(&self) -> u32 {
        self.publishers.unwrap_or(match self.scenario {
            Scenario::Fanin | Scenario::Qos1 => 8,
            _ => 1,
        })
    }

    /// Subscribers, with the scenario's default.
    #[must_use]
    pub fn subscribers(&self) -> u32 {
        self.subscribers.unwrap_or(match self.scenario {
            Scenario::Fanout => 100,
            _ => 1,
        })
    }

    /// Total rate, with the scenario's default (0: unlimited).
    #[must_use]
    pub fn rate(&self) -> u64 {
        self.rate.unwrap_or(match self.scenario {
            Scenario::Latency => 1000,
            _ => 0,
        })
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

    /// Keep-alive long enough that silent subscribers outlive the run without PINGREQs.
    #[must_use]
    pub fn keep_alive(&self) -> u16 {
        let run = self.duration.max(0.0) + self.drain.max(0.0) + self.hold.max(0.0);
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
        self.broker.clone().unwrap_or_else(|| {
            let ports: Vec<String> = self.port.iter().map(u16::to_string).collect();
            format!("{}:{}", self.host, ports.join(","))
        })
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    let size: usize = text.parse().map_err(|e| format!("{e}"))?;
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
        assert!(Options::try_parse_from(["mqtt-load", "fanin", "--mqtt-version", "3"]).is_err());
    }
}
