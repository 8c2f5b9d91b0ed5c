//! `pub`: `--clients` publishers along the ramp, each on its topic (from `--topic`), at its
//! rate (`--msg-interval`, or its share of `--rate`), QoS 0/1/2 with `--window` messages in
//! flight, until `--duration` or `--count` messages; the payload is a stamp then zeros
//! (`--size`) or the `--payload` text (after the stamp unless `--no-stamp`). Reports what was
//! sent, acknowledged and refused, and the acknowledgement latency.

use std::sync::Arc;

use mqtt_wire::QoS;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::publisher::{self, PublisherOutcome};
use super::pubsub::{Plan, RunState};
use super::ramp::{Clients, Identity};
use crate::client::ClientConfig;
use crate::error::LoadError;
use crate::histogram::Histogram;
use crate::options::Options;
use crate::payload::{PublishTemplate, STAMP_LEN};
use crate::report::Report;
use crate::stats::{Counters, spawn_progress};

/// How one publisher of the run ended.
enum Outcome {
    NotStarted,
    Failed(LoadError),
    Published(PublisherOutcome),
}

/// Runs the `pub` mode.
///
/// # Errors
/// A template does not parse or a topic cannot be encoded; failed connections are counted
/// in the report instead.
pub async fn run(options: &Options, configs: &[ClientConfig]) -> Result<Report, LoadError> {
    let plan = Arc::new(Plan {
        publishers: options.clients(),
        subscribers: 0,
        qos: options.qos(),
        rate: options.rate(),
        per_publisher_rate: options.per_publisher_rate(),
        window: (options.qos() != QoS::AtMostOnce).then_some(options.window()),
        count: options.count,
        duration: options.duration(),
        drain: options.drain(),
    });
    let counters = Arc::new(Counters::default());
    let progress = (!options.quiet).then(|| spawn_progress(counters.clone(), "pub"));
    let state = Arc::new(RunState::new(counters, plan.publishers));
    let deadline = state.start + plan.duration;
    let clients = Clients::new(options, state.start)?;
    let mut tasks = JoinSet::new();
    for slot in 0..plan.publishers {
        let identity = clients.identity(slot, configs)?;
        let template = template(options, &identity)?;
        let (clients, plan, state) = (clients.clone(), plan.clone(), state.clone());
        tasks.spawn(async move {
            if clients.due(slot) >= deadline {
                return Outcome::NotStarted;
            }
            let mut client = match clients.connect(&identity).await {
                (Ok(client), _) => client,
                (Err(e), _) => {
                    Counters::add(&state.counters.errors, 1);
                    return Outcome::Failed(e);
                }
            };
            Counters::add(&state.counters.connections, 1);
            // The stamp names the publisher by its index (`%i`), unique across processes
            // started with different `--start-index`.
            let index = u32::try_from(identity.index).unwrap_or(u32::MAX);
            let began = Instant::now();
            let outcome =
                publisher::publish(&mut client, template, index, &plan, &state, began).await;
            if outcome.error.is_none() {
                let _ = client.disconnect().await;
            }
            Outcome::Published(outcome)
        });
    }
    let mut outcomes = Vec::new();
    let (mut failed, mut not_started) = (0, 0);
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Outcome::Published(outcome)) => outcomes.push(outcome),
            Ok(Outcome::Failed(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Ok(Outcome::NotStarted) => not_started += 1,
            Err(_) => failed += 1,
        }
    }
    let elapsed = state.start.elapsed();
    state.finish_publishing();
    if let Some(progress) = progress {
        progress.abort();
    }

    let sum = |f: fn(&PublisherOutcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let sent = sum(|o| o.sent);
    let mut ack_latency = Histogram::new();
    for outcome in &outcomes {
        if let Some(latency) = &outcome.ack_latency {
            ack_latency.merge(latency);
        }
    }
    let errors: Vec<&LoadError> = outcomes.iter().filter_map(|o| o.error.as_ref()).collect();
    let mut report = Report::new("pub", &options.broker_label());
    report.add("mqtt", options.mqtt_version);
    report.add("transport", configs[0].transport.scheme());
    report.add("qos", plan.qos as u8);
    report.add("retain", options.retain);
    report.add("clients", plan.publishers);
    report.add("connected", outcomes.len());
    report.add("failed", failed);
    report.add("not_started", not_started);
    report.add("rate", plan.rate);
    report.add("duration_s", format_args!("{:.2}", elapsed.as_secs_f64()));
    report.add("sent", sent);
    if plan.window.is_some() {
        report.add("acked", sum(|o| o.acked));
        report.add("unacked", sum(|o| o.unacked));
        report.add("refused", sum(|o| o.refused));
        report.add("unexpected_acks", sum(|o| o.unexpected_acks));
    }
    report.add(
        "writes_cut",
        outcomes.iter().filter(|o| o.write_cut).count(),
    );
    report.add_rate("sent_per_s", sent, elapsed.as_secs_f64());
    if plan.window.is_some() {
        report.add_latency("ack_", &ack_latency);
    }
    report.add("errors", errors.len());
    let first = errors.first().map(ToString::to_string);
    if let Some(first) = first.or(first_error.map(|e| e.to_string())) {
        report.add("first_error", format_args!("\"{first}\""));
    }
    Ok(report)
}

/// The PUBLISH frame of one publisher.
fn template(options: &Options, identity: &Identity) -> Result<PublishTemplate, LoadError> {
    let stamped = !options.no_stamp;
    let payload = match &identity.payload {
        Some(text) if stamped => [&[0; STAMP_LEN][..], text.as_bytes()].concat(),
        Some(text) => text.as_bytes().to_vec(),
        None => vec![0; options.size()],
    };
    PublishTemplate::with_payload(
        &identity.topic,
        options.qos(),
        options.retain,
        payload,
        stamped,
        identity.config.version,
    )
}
