//! `idle`: opens N connections, each subscribed to its own topic, and reports how much the
//! broker's resident memory grew per connection. With `--hold` it then keeps them open for a
//! while (so another client can probe the loaded broker) and counts how many survived.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Client, ClientConfig};
use crate::error::LoadError;
use crate::options::Options;
use crate::report::Report;
use crate::rss::resident_bytes;
use crate::stats::{Counters, spawn_progress};
use crate::transport::Stream;

/// Time for the broker to settle (allocator, lazily freed buffers) before memory is read:
/// three times the 1 s in which our binary's allocator gives freed pages back. With 1 s, the
/// figure of one build was bimodal (about half the runs ~100 bytes per connection higher,
/// memory of the connection burst not given back yet); with 3 s it is steady.
const SETTLE: Duration = Duration::from_secs(3);

/// Runs the `idle` scenario; connecting stops at `--duration`.
///
/// # Errors
/// None in practice: failed connections are counted in the report.
pub async fn run(options: &Options, config: &ClientConfig) -> Result<Report, LoadError> {
    let total = options.connections;
    let workers = options.concurrency.min(total).max(1);
    let rss_before = options.pid.and_then(resident_bytes);
    let counters = Arc::new(Counters::default());
    let progress = (!options.quiet).then(|| spawn_progress(counters.clone(), "idle"));
    let start = Instant::now();
    let deadline = start + options.duration();
    let qos = options.qos();
    let mut tasks = JoinSet::new();
    for worker in 0..workers {
        let (config, counters) = (config.clone(), counters.clone());
        let sources: Vec<_> = (worker..total)
            .step_by(workers as usize)
            .map(|i| options.source_addr(i))
            .collect();
        tasks.spawn(async move {
            let mut open: Vec<Stream> = Vec::new();
            let mut first_error = None;
            for (i, source) in (worker..total).step_by(workers as usize).zip(sources) {
                if Instant::now() >= deadline {
                    break;
                }
                let config = ClientConfig {
                    source,
                    ..config.clone()
                };
                match connect_and_subscribe(&config, i, qos).await {
                    Ok(stream) => {
                        open.push(stream);
                        Counters::add(&counters.connections, 1);
                    }
                    Err(e) => {
                        Counters::add(&counters.errors, 1);
                        first_error.get_or_insert(e);
                    }
                }
            }
            (open, first_error)
        });
    }
    let mut open = Vec::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        if let Ok((streams, error)) = joined {
            open.extend(streams);
            first_error = first_error.or(error);
        }
    }
    let connect_time = start.elapsed();
    tokio::time::sleep(SETTLE).await;
    let rss_after = options.pid.and_then(resident_bytes);
    if let Some(progress) = progress {
        progress.abort();
    }

    let established = open.len() as u64;
    let mut report = Report::new("idle", &options.broker_label());
    report.add("mqtt", options.mqtt_version);
    report.add("connections", established);
    report.add("failed", Counters::get(&counters.errors));
    report.add(
        "connect_s",
        format_args!("{:.2}", connect_time.as_secs_f64()),
    );
    report.add_rate("conn_per_s", established, connect_time.as_secs_f64());
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        report.add("rss_before_kb", before / 1024);
        report.add("rss_after_kb", after / 1024);
        let per_connection = after.saturating_sub(before).checked_div(established);
        report.add("bytes_per_conn", per_connection.unwrap_or(0));
    }
    if options.hold > 0.0 {
        eprintln!(
            "idle: holding {established} connections for {:.0} s",
            options.hold().as_secs_f64()
        );
        tokio::time::sleep(options.hold()).await;
        report.add(
            "held_s",
            format_args!("{:.0}", options.hold().as_secs_f64()),
        );
        let still_open = open.iter_mut().map(Stream::is_open).filter(|open| *open);
        report.add("still_open", still_open.count());
        if let Some(end) = options.pid.and_then(resident_bytes) {
            report.add("rss_end_kb", end / 1024);
        }
    }
    if let Some(e) = first_error {
        report.add("first_error", format_args!("\"{e}\""));
    }
    drop(open);
    Ok(report)
}

async fn connect_and_subscribe(
    config: &ClientConfig,
    index: u32,
    qos: mqtt_wire::QoS,
) -> Result<Stream, LoadError> {
    let mut client = Client::connect(config, &format!("load-idle-{index}")).await?;
    client.subscribe(&format!("load/idle/{index}"), qos).await?;
    Ok(client.into_stream())
}
