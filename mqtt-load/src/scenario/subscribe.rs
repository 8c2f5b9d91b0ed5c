//! `sub`: `--clients` subscribers along the ramp, each on its filter (from `--topic`) at
//! `--qos`, until `--duration` is over or each has received `--count` messages. Messages from
//! `mqtt-load` publishers (in this or another process) carry a stamp: the report counts
//! duplicates, reordering and gaps per publisher and the end-to-end latency percentiles.
//! Retained messages and, with `--no-clean`, the messages queued for a resumed session count
//! too (those that arrive before the SUBACK included).

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::pubsub::RunState;
use super::ramp::Clients;
use super::subscriber::{POLL, Receiver, SubscriberOutcome};
use crate::client::{Client, ClientConfig};
use crate::error::LoadError;
use crate::histogram::Histogram;
use crate::options::Options;
use crate::report::Report;
use crate::sequence::SequenceTracker;
use crate::stats::{Counters, spawn_progress};

/// How one subscriber of the run ended.
enum Outcome {
    NotStarted,
    Failed(LoadError),
    Subscribed {
        session_present: bool,
        outcome: Box<SubscriberOutcome>,
    },
}

/// Runs the `sub` mode.
///
/// # Errors
/// A template does not parse; failed connections are counted in the report instead.
pub async fn run(options: &Options, configs: &[ClientConfig]) -> Result<Report, LoadError> {
    let counters = Arc::new(Counters::default());
    let progress = (!options.quiet).then(|| spawn_progress(counters.clone(), "sub"));
    let state = Arc::new(RunState::new(counters, 0));
    let deadline = state.start + options.duration();
    let clients = Clients::new(options, state.start)?;
    let (qos, count) = (options.qos(), options.count);
    let total = options.clients();
    let subscribed = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = JoinSet::new();
    for slot in 0..total {
        let identity = clients.identity(slot, configs)?;
        let (clients, state, subscribed) = (clients.clone(), state.clone(), subscribed.clone());
        tasks.spawn(async move {
            if clients.due(slot) >= deadline {
                subscribed.add_permits(1);
                return Outcome::NotStarted;
            }
            let mut client = match clients.connect(&identity).await {
                (Ok(client), _) => client,
                (Err(e), _) => {
                    Counters::add(&state.counters.errors, 1);
                    subscribed.add_permits(1);
                    return Outcome::Failed(e);
                }
            };
            let session_present = client.session_present();
            let subscribing = client.subscribe(&identity.topic, qos).await;
            subscribed.add_permits(1);
            if let Err(e) = subscribing {
                Counters::add(&state.counters.errors, 1);
                return Outcome::Failed(e);
            }
            Counters::add(&state.counters.connections, 1);
            let mut receiver = Receiver::new(SequenceTracker::growing(), client.version());
            let received = receive(&mut client, &mut receiver, &state, deadline, count).await;
            match received {
                Ok(()) => {
                    let _ = client.disconnect().await;
                }
                Err(e) => receiver.outcome.error = Some(e),
            }
            Outcome::Subscribed {
                session_present,
                outcome: Box::new(receiver.outcome),
            }
        });
    }
    // Tell whoever waits (a script, a test) that the subscriptions are in place.
    let ready = subscribed.acquire_many(total).await.is_ok();
    if ready && !options.quiet {
        eprintln!("sub: {total} clients subscribed");
    }
    let mut outcomes = Vec::new();
    let (mut failed, mut not_started, mut resumed) = (0, 0, 0u64);
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Outcome::Subscribed {
                session_present,
                outcome,
            }) => {
                resumed += u64::from(session_present);
                outcomes.push(outcome);
            }
            Ok(Outcome::Failed(e)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Ok(Outcome::NotStarted) => not_started += 1,
            Err(_) => failed += 1,
        }
    }
    let elapsed = state.start.elapsed();
    if let Some(progress) = progress {
        progress.abort();
    }

    let mut latency = Histogram::new();
    for outcome in &outcomes {
        latency.merge(&outcome.latency);
    }
    let sum = |f: fn(&SubscriberOutcome) -> u64| outcomes.iter().map(|o| f(o)).sum::<u64>();
    let received = sum(|o| o.received);
    let first = outcomes.iter().filter_map(|o| o.first_receive).min();
    let last = outcomes.iter().filter_map(|o| o.last_receive).max();
    let receive_time = match (first, last) {
        (Some(first), Some(last)) if last > first => (last - first).as_secs_f64(),
        _ => 0.0,
    };
    let errors: Vec<&LoadError> = outcomes.iter().filter_map(|o| o.error.as_ref()).collect();
    let mut report = Report::new("sub", &options.broker_label());
    report.add("mqtt", options.mqtt_version);
    report.add("transport", configs[0].transport.scheme());
    report.add("qos", qos as u8);
    report.add("clients", total);
    report.add("connected", outcomes.len());
    report.add("failed", failed);
    report.add("not_started", not_started);
    report.add("session_present", resumed);
    report.add("duration_s", format_args!("{:.2}", elapsed.as_secs_f64()));
    report.add("received", received);
    report.add("unique", sum(|o| o.tracker.unique()));
    report.add("duplicates", sum(|o| o.tracker.duplicates()));
    report.add("out_of_order", sum(|o| o.tracker.out_of_order()));
    report.add("gaps", sum(|o| o.tracker.gaps()));
    report.add("redelivered", sum(|o| o.redelivered));
    report.add("retained", sum(|o| o.retained));
    report.add("unstamped", sum(|o| o.unstamped));
    report.add(
        "publishers_seen",
        outcomes
            .iter()
            .map(|o| o.tracker.publishers_seen())
            .max()
            .unwrap_or(0),
    );
    report.add_rate("msg_per_s", received, receive_time);
    report.add_latency("", &latency);
    report.add("errors", errors.len());
    let first = errors.first().map(ToString::to_string);
    if let Some(first) = first.or(first_error.map(|e| e.to_string())) {
        report.add("first_error", format_args!("\"{first}\""));
    }
    Ok(report)
}

/// Receives until `deadline`, or until `count` messages arrived when `count` is not 0.
async fn receive(
    client: &mut Client,
    receiver: &mut Receiver,
    state: &RunState,
    deadline: Instant,
    count: u64,
) -> Result<(), LoadError> {
    let enough = |receiver: &Receiver| count > 0 && receiver.outcome.received >= count;
    let mut early = 0;
    for packet in client.take_early() {
        early += u64::from(receiver.handle(packet, state.now_ns())?);
    }
    receiver.flush(client).await?;
    receiver.arrived(early, Instant::now(), &state.counters);
    while !enough(receiver) && Instant::now() < deadline {
        let mut wake = deadline.min(Instant::now() + POLL);
        if let Some(ping) = client.ping_due_at() {
            wake = wake.min(ping);
        }
        if let Ok(read) = tokio::time::timeout_at(wake, client.fill()).await {
            read?;
        }
        let now = Instant::now();
        let batch = receiver.drain(client, state.now_ns())?;
        receiver.flush(client).await?;
        receiver.arrived(batch, now, &state.counters);
        client.ping_if_due().await?;
    }
    Ok(())
}
