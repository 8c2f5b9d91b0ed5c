//! `conn`: opens `--clients` connections along the ramp and keeps them until `--duration` is
//! over (sending PINGREQs when a `--keep-alive` asks for them), then disconnects them.
//! Reports how many connected, failed and were dropped by the broker, and the connect
//! latency (TCP, TLS and WebSocket handshakes, CONNECT to CONNACK).

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::ramp::Clients;
use crate::client::{Client, ClientConfig};
use crate::error::LoadError;
use crate::histogram::Histogram;
use crate::options::Options;
use crate::report::Report;
use crate::stats::{Counters, spawn_progress};

/// How one client of the run ended.
enum Outcome {
    /// Its point of the ramp came after the end of the run.
    NotStarted,
    /// It could not connect.
    Failed(LoadError),
    /// It connected after `ns` nanoseconds; `dropped` if the connection did not last the run.
    Connected {
        ns: u64,
        session_present: bool,
        dropped: Option<LoadError>,
    },
}

/// Runs the `conn` mode.
///
/// # Errors
/// A template does not parse; failed connections are counted in the report instead.
pub async fn run(options: &Options, configs: &[ClientConfig]) -> Result<Report, LoadError> {
    let counters = Arc::new(Counters::default());
    let progress = (!options.quiet).then(|| spawn_progress(counters.clone(), "conn"));
    let start = Instant::now();
    let deadline = start + options.duration();
    let clients = Clients::new(options, start)?;
    let mut tasks = JoinSet::new();
    for slot in 0..options.clients() {
        let identity = clients.identity(slot, configs)?;
        let (clients, counters) = (clients.clone(), counters.clone());
        tasks.spawn(async move {
            if clients.due(slot) >= deadline {
                return (Outcome::NotStarted, None);
            }
            let (connected, took) = clients.connect(&identity).await;
            match connected {
                Ok(client) => {
                    Counters::add(&counters.connections, 1);
                    let connected_at = Instant::now();
                    let session_present = client.session_present();
                    let dropped = hold(client, deadline).await.err();
                    if dropped.is_some() {
                        Counters::add(&counters.errors, 1);
                    }
                    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                    let outcome = Outcome::Connected {
                        ns,
                        session_present,
                        dropped,
                    };
                    (outcome, Some(connected_at))
                }
                Err(e) => {
                    Counters::add(&counters.errors, 1);
                    (Outcome::Failed(e), None)
                }
            }
        });
    }
    let mut latency = Histogram::new();
    let (mut connected, mut failed, mut dropped, mut not_started, mut resumed) = (0, 0, 0, 0, 0);
    let mut last_connect = start;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let Ok((outcome, connected_at)) = joined else {
            continue;
        };
        if let Some(at) = connected_at {
            last_connect = last_connect.max(at);
        }
        match outcome {
            Outcome::NotStarted => not_started += 1,
            Outcome::Failed(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Outcome::Connected {
                ns,
                session_present,
                dropped: lost,
            } => {
                connected += 1;
                latency.record(ns);
                resumed += u64::from(session_present);
                if let Some(e) = lost {
                    dropped += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    let ramp_time = (last_connect - start).as_secs_f64();
    let mut report = Report::new("conn", &options.broker_label());
    report.add("mqtt", options.mqtt_version);
    report.add("transport", configs[0].transport.scheme());
    report.add("clients", options.clients());
    report.add("connected", connected);
    report.add("failed", failed);
    report.add("dropped", dropped);
    report.add("not_started", not_started);
    report.add("session_present", resumed);
    report.add("ramp_s", format_args!("{ramp_time:.2}"));
    report.add_rate("conn_per_s", connected, ramp_time);
    report.add(
        "duration_s",
        format_args!("{:.2}", start.elapsed().as_secs_f64()),
    );
    report.add_latency("connect_", &latency);
    if let Some(e) = first_error {
        report.add("first_error", format_args!("\"{e}\""));
    }
    Ok(report)
}

/// Keeps `client` connected until `deadline`, then disconnects it.
///
/// # Errors
/// The broker closed the connection or sent a DISCONNECT.
async fn hold(mut client: Client, deadline: Instant) -> Result<(), LoadError> {
    loop {
        let wake = client.ping_due_at().map_or(deadline, |at| at.min(deadline));
        if let Ok(read) = tokio::time::timeout_at(wake, client.fill()).await {
            read?;
            while let Some(packet) = client.try_decode()? {
                if let mqtt_wire::Packet::Disconnect(_) = packet {
                    return Err(LoadError::Unexpected("DISCONNECT"));
                }
            }
        }
        if Instant::now() >= deadline {
            return client.disconnect().await;
        }
        client.ping_if_due().await?;
    }
}
