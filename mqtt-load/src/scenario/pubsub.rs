//! The publish/subscribe engine behind `fanin`, `fanout`, `qos1` and `latency`: connects the
//! subscribers first, then the publishers, runs them for the duration, lets the subscribers
//! drain, and turns their outcomes into one [`Report`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mqtt_wire::QoS;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::publisher::{self, PublisherOutcome};
use super::subscriber::{self, SubscriberOutcome};
use crate::client::{Client, ClientConfig};
use crate::error::LoadError;
use crate::histogram::Histogram;
use crate::options::{Options, Scenario};
use crate::payload::PublishTemplate;
use crate::report::Report;
use crate::stats::{Counters, spawn_progress};

/// What a publish/subscribe run does, derived from the options.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Publisher count (each with its own topic, except in `fanout`).
    pub publishers: u32,
    /// Subscriber count (each subscribed to every publisher's topic).
    pub subscribers: u32,
    /// QoS of messages and subscriptions.
    pub qos: QoS,
    /// Total messages per second, 0 for unlimited (for the report).
    pub rate: u64,
    /// Messages per second of each publisher, 0 for unlimited.
    pub per_publisher_rate: f64,
    /// Unacknowledged messages per publisher at QoS 1 and 2.
    pub window: Option<u32>,
    /// Messages per publisher, 0 for unlimited.
    pub count: u64,
    /// How long the publishers publish.
    pub duration: Duration,
    /// How long subscribers (and QoS 1 publishers) may drain afterwards.
    pub drain: Duration,
}

/// State shared by the tasks of a run.
#[derive(Debug)]
pub struct RunState {
    /// Totals for the progress line.
    pub counters: Arc<Counters>,
    /// When the run started; publishing starts here.
    pub start: Instant,
    /// The wall clock at `start`, in nanoseconds since the Unix epoch.
    start_unix_ns: u64,
    publishing_done: AtomicBool,
    sent: Vec<AtomicU64>,
}

impl RunState {
    /// A run starting now, with totals in `counters` and `publishers` publishers.
    #[must_use]
    pub fn new(counters: Arc<Counters>, publishers: u32) -> Self {
        let start_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            counters,
            start: Instant::now(),
            start_unix_ns,
            publishing_done: AtomicBool::new(false),
            sent: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Nanoseconds since the Unix epoch: the wall clock at the start advanced by the
    /// monotonic clock (the stamps' time base).
    #[inline]
    pub fn now_ns(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.start_unix_ns.saturating_add(elapsed)
    }

    /// Counts `n` more messages written whole by publisher `index`.
    pub fn add_sent(&self, index: u32, n: u64) {
        if let Some(sent) = self.sent.get(index as usize) {
            sent.fetch_add(n, Ordering::Relaxed);
        }
        Counters::add(&self.counters.sent, n);
    }

    /// Once every publisher has stopped: how many messages each sent.
    pub fn sent_per_publisher(&self) -> Option<Vec<u64>> {
        self.publishing_done.load(Ordering::Acquire).then(|| {
            self.sent
                .iter()
                .map(|s| s.load(Ordering::Relaxed))
                .collect()
        })
    }

    /// Marks every publisher as stopped.
    pub fn finish_publishing(&self) {
        self.publishing_done.store(true, Ordering::Release);
    }
}

/// Topic of publisher `index` in `scenario`, and the filter the subscribers use.
fn topics(scenario: Scenario, index: u32) -> (String, &'static str) {
    match scenario {
        Scenario::Fanout => ("load/fanout".into(), "load/fanout"),
        Scenario::Qos1 => (format!("load/qos1/{index}"), "load/qos1/#"),
        Scenario::Latency => (format!("load/latency/{index}"), "load/latency/#"),
        _ => (format!("load/fanin/{index}"), "#"),
    }
}

/// Runs one publish/subscribe scenario: publisher `i` connects to `configs[i % len]`,
/// subscriber `i` to `sub_configs[i % len]` (both non-empty).
///
/// # Errors
/// A client cannot connect or subscribe before the run starts.
pub async fn run(
    options: &Options,
    configs: &[ClientConfig],
    sub_configs: &[ClientConfig],
) -> Result<Report, LoadError> {
    let spread = |configs: &[ClientConfig], i: u32| -> Result<ClientConfig, LoadError> {
        let at = usize::try_from(i).unwrap_or(0) % configs.len().max(1);
        configs
            .get(at)
            .cloned()
            .ok_or_else(|| LoadError::Options("no broker address".into()))
    };
    let plan = Plan {
        publishers: options.publishers().max(1),
        subscribers: options.subscribers(),
        qos: options.qos(),
        rate: options.rate(),
        per_publisher_rate: options.per_publisher_rate(),
        window: (options.qos() != QoS::AtMostOnce).then_some(options.window()),
        count: options.count,
        duration: options.duration(),
        drain: options.drain(),
    };
    let (_, filter) = topics(options.scenario, 0);
    let mut subscribers = Vec::new();
    for i in 0..plan.subscribers {
        let mut client =
            Client::connect(&spread(sub_configs, i)?, &format!("load-sub-{i}")).await?;
        client.subscribe(filter, plan.qos).await?;
        subscribers.push(client);
    }
    let mut publishers = Vec::new();
    for i in 0..plan.publishers {
        let config = spread(configs, i)?;
        let client = Client::connect(&config, &format!("load-pub-{i}")).await?;
        let (topic, _) = topics(options.scenario, i);
        let template = PublishTemplate::new(&topic, plan.qos, options.size(), config.version)?;
        publishers.push((client, template));
    }

    let counters = Arc::new(Counters::default());
    let progress =
        (!options.quiet).then(|| spawn_progress(counters.clone(), options.scenario.name()));
    let state = Arc::new(RunState::new(counters, plan.publishers));
    let plan = Arc::new(plan);
    let mut receiving = JoinSet::new();
    for client in subscribers {
        let (plan, state) = (plan.clone(), state.clone());
        receiving.spawn(async move { subscriber::receive(client, &plan, &state).await });
    }
    let mut publishing = JoinSet::new();
    for (index, (mut client, template)) in (0u32..).zip(publishers) {
        let (plan, state) = (plan.clone(), state.clone());
        publishing.spawn(async move {
            let began = state.start;
            publisher::publish(&mut client, template, index, &plan, &state, began).await
        });
    }
    let mut published = Vec::new();
    while let Some(joined) = publishing.join_next().await {
        if let Ok(outcome) = joined {
            published.push(outcome);
        }
    }
    let publish_time = state.start.elapsed();
    state.finish_publishing();
    let sent = state.sent_per_publisher().unwrap_or_default();
    let mut received = Vec::new();
    while let Some(joined) = receiving.join_next().await {
        if let Ok(outcome) = joined {
            received.push(outcome);
        }
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    Ok(summarize(
        options,
        &plan,
        &state,
        &sent,
        publish_time,
        &published,
        &received,
    ))
}

/// Folds the outcomes of every task into the result line.
fn summarize(
    options: &Options,
    plan: &Plan,
    state: &RunState,
    sent: &[u64],
    publish_time: Duration,
    published: &[PublisherOutcome],
    received: &[SubscriberOutcome],
) -> Report {
    let total_sent: u64 = sent.iter().sum();
    let expected = total_sent * u64::from(plan.subscribers);
    let mut latency = Histogram::new();
    let (mut unique, mut duplicates, mut out_of_order, mut missing) = (0, 0, 0, 0);
    for outcome in received {
        latency.merge(&outcome.latency);
        unique += outcome.tracker.unique();
        duplicates += outcome.tracker.duplicates();
        out_of_order += outcome.tracker.out_of_order();
        missing += outcome.tracker.missing(sent);
    }
    // A subscriber that never reported lost everything.
    missing += total_sent * u64::from(plan.subscribers).saturating_sub(received.len() as u64);
    let total_received: u64 = received.iter().map(|o| o.received).sum();
    let receive_time = received
        .iter()
        .filter_map(|o| o.last_receive)
        .max()
        .map_or(Duration::ZERO, |t| t - state.start);
    let errors: Vec<&LoadError> = published
        .iter()
        .filter_map(|o| o.error.as_ref())
        .chain(received.iter().filter_map(|o| o.error.as_ref()))
        .collect();

    let mut report = Report::new(options.scenario.name(), &options.broker_label());
    report.add("mqtt", options.mqtt_version);
    report.add("qos", plan.qos as u8);
    report.add("size", options.size());
    report.add("publishers", plan.publishers);
    report.add("subscribers", plan.subscribers);
    report.add("rate", plan.rate);
    report.add(
        "duration_s",
        format_args!("{:.2}", publish_time.as_secs_f64()),
    );
    report.add("sent", total_sent);
    report.add("expected", expected);
    report.add("received", total_received);
    report.add("unique", unique);
    report.add("lost", missing);
    let delivered = if expected == 0 {
        100.0
    } else {
        unique as f64 * 100.0 / expected as f64
    };
    report.add("delivered_pct", format_args!("{delivered:.1}"));
    report.add("duplicates", duplicates);
    report.add("out_of_order", out_of_order);
    if plan.window.is_some() {
        report.add("acked", published.iter().map(|o| o.acked).sum::<u64>());
        report.add("unacked", published.iter().map(|o| o.unacked).sum::<u64>());
        report.add(
            "unexpected_acks",
            published.iter().map(|o| o.unexpected_acks).sum::<u64>(),
        );
        report.add("refused", published.iter().map(|o| o.refused).sum::<u64>());
        report.add(
            "verified",
            if missing == 0 && errors.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
        );
    }
    report.add(
        "writes_cut",
        published.iter().filter(|o| o.write_cut).count(),
    );
    report.add_rate("sent_per_s", total_sent, publish_time.as_secs_f64());
    report.add_rate("msg_per_s", total_received, receive_time.as_secs_f64());
    report.add_latency("", &latency);
    report.add("errors", errors.len());
    if let Some(first) = errors.first() {
        report.add("first_error", format_args!("\"{first}\""));
    }
    report
}
