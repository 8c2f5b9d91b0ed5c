//! One subscriber task: reads frames, checks sequence numbers, records latency from the
//! payload's timestamp and, at QoS 1, answers every PUBLISH with a PUBACK (batched per read).

use std::time::Duration;

use mqtt_wire::{BytesMut, Packet, PublishQos};
use tokio::time::Instant;

use super::pubsub::{Plan, RunState};
use crate::client::Client;
use crate::error::LoadError;
use crate::histogram::Histogram;
use crate::payload::Stamp;
use crate::sequence::SequenceTracker;
use crate::stats::Counters;

/// How often an idle subscriber looks at the run's state.
const POLL: Duration = Duration::from_millis(100);
/// After the publishers stop, a subscriber that has heard nothing for this long stops.
const QUIET: Duration = Duration::from_secs(1);

/// What one subscriber saw.
#[derive(Debug)]
pub struct SubscriberOutcome {
    /// PUBLISH packets received (duplicates included).
    pub received: u64,
    /// Which sequence numbers arrived.
    pub tracker: SequenceTracker,
    /// End-to-end latency in nanoseconds.
    pub latency: Histogram,
    /// When the last message arrived.
    pub last_receive: Option<Instant>,
    /// Why the subscriber stopped early, if it did.
    pub error: Option<LoadError>,
}

/// Receives until every message sent has arrived, or the publishers are done and the
/// subscriber has been quiet for a second, or the drain time is over.
pub async fn receive(mut client: Client, plan: &Plan, state: &RunState) -> SubscriberOutcome {
    let mut outcome = SubscriberOutcome {
        received: 0,
        tracker: SequenceTracker::new(plan.publishers as usize),
        latency: Histogram::new(),
        last_receive: None,
        error: None,
    };
    if let Err(e) = receive_until_done(&mut client, plan, state, &mut outcome).await {
        outcome.error = Some(e);
    }
    outcome
}

async fn receive_until_done(
    client: &mut Client,
    plan: &Plan,
    state: &RunState,
    outcome: &mut SubscriberOutcome,
) -> Result<(), LoadError> {
    let mut acks = BytesMut::with_capacity(64 * 1024);
    // When the publishers were first seen done, and how many messages each sent.
    let mut done = None;
    loop {
        if let Ok(read) = tokio::time::timeout(POLL, client.fill()).await {
            read?;
        }
        let now = Instant::now();
        let now_ns = state.now_ns();
        let mut batch = 0;
        while let Some(packet) = client.try_decode()? {
            match packet {
                Packet::Publish(publish) => {
                    batch += 1;
                    if let Some(stamp) = Stamp::read(publish.payload()) {
                        outcome.tracker.record(stamp.publisher, stamp.sequence);
                        outcome.latency.record(now_ns.saturating_sub(stamp.sent_ns));
                    }
                    if let PublishQos::AtLeastOnce(id) = publish.qos {
                        let [high, low] = id.get().to_be_bytes();
                        acks.extend_from_slice(&[0x40, 0x02, high, low]);
                    }
                }
                Packet::Disconnect(_) => return Err(LoadError::Unexpected("DISCONNECT")),
                _ => {}
            }
        }
        if !acks.is_empty() {
            client.write_all(&acks).await?;
            acks.clear();
        }
        if batch > 0 {
            outcome.received += batch;
            outcome.last_receive = Some(now);
            Counters::add(&state.counters.received, batch);
        }
        if done.is_none() {
            done = state.sent_per_publisher().map(|sent| (now, sent));
        }
        if let Some((since, sent)) = &done {
            let since = *since;
            let heard = outcome.last_receive.map_or(since, |t| t.max(since));
            let all_in = outcome.tracker.missing(sent) == 0;
            if all_in || now - heard >= QUIET || now - since >= plan.drain {
                return Ok(());
            }
        }
    }
}
