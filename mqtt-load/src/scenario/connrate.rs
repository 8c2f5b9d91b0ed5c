//! `connrate`: C workers each loop over connect, CONNACK, DISCONNECT, close; reports
//! connections per second and the connect-to-CONNACK latency; over TLS also how many
//! handshakes resumed a session (`tls_resumed`; 0 with `--no-tls-resume`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Client, ClientConfig};
use crate::error::LoadError;
use crate::histogram::Histogram;
use crate::options::Options;
use crate::report::Report;
use crate::stats::{Counters, spawn_progress};

/// Pause after a failed attempt, so a refusing broker is not hammered in a tight loop.
const BACKOFF: Duration = Duration::from_millis(10);

/// Runs the `connrate` scenario for `--duration` (or `--count` connections in all).
///
/// # Errors
/// None in practice: failed connections are counted in the report.
pub async fn run(options: &Options, config: &ClientConfig) -> Result<Report, LoadError> {
    let counters = Arc::new(Counters::default());
    let progress = (!options.quiet).then(|| spawn_progress(counters.clone(), "connrate"));
    let start = Instant::now();
    let deadline = start + options.duration();
    let budget = Arc::new(AtomicU64::new(if options.count == 0 {
        u64::MAX
    } else {
        options.count
    }));
    let mut tasks = JoinSet::new();
    for worker in 0..options.concurrency {
        let (config, counters, budget) = (config.clone(), counters.clone(), budget.clone());
        tasks.spawn(async move {
            let mut latency = Histogram::new();
            let mut first_error = None;
            let mut attempt = 0u64;
            while Instant::now() < deadline && take_one(&budget) {
                attempt += 1;
                let began = Instant::now();
                let id = format!("load-conn-{worker}-{attempt}");
                let connected = Client::connect(&config, &id).await;
                let handshake = began.elapsed();
                match connected {
                    Ok(client) => match client.disconnect().await {
                        Ok(()) => {
                            let ns = u64::try_from(handshake.as_nanos()).unwrap_or(u64::MAX);
                            latency.record(ns);
                            Counters::add(&counters.connections, 1);
                        }
                        Err(e) => fail(&counters, &mut first_error, e),
                    },
                    Err(e) => {
                        fail(&counters, &mut first_error, e);
                        tokio::time::sleep(BACKOFF).await;
                    }
                }
            }
            (latency, first_error)
        });
    }
    let mut latency = Histogram::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        if let Ok((histogram, error)) = joined {
            latency.merge(&histogram);
            first_error = first_error.or(error);
        }
    }
    let elapsed = start.elapsed();
    if let Some(progress) = progress {
        progress.abort();
    }

    let connects = Counters::get(&counters.connections);
    let mut report = Report::new("connrate", &options.broker_label());
    report.add("mqtt", options.mqtt_version);
    report.add("workers", options.concurrency);
    report.add("duration_s", format_args!("{:.2}", elapsed.as_secs_f64()));
    report.add("connects", connects);
    report.add("failed", Counters::get(&counters.errors));
    report.add_rate("conn_per_s", connects, elapsed.as_secs_f64());
    if config.transport.is_tls() {
        report.add("tls_resumed", config.transport.resumed_handshakes());
    }
    report.add_latency("", &latency);
    if let Some(e) = first_error {
        report.add("first_error", format_args!("\"{e}\""));
    }
    Ok(report)
}

/// Takes one connection from the shared budget; false when it is spent.
fn take_one(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

fn fail(counters: &Counters, first_error: &mut Option<LoadError>, e: LoadError) {
    Counters::add(&counters.errors, 1);
    first_error.get_or_insert(e);
}
