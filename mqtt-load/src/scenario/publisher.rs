//! One publisher task: writes batches of pre-encoded PUBLISH frames, paced by the rate and,
//! at QoS 1, by a window of unacknowledged packet identifiers freed by PUBACKs.

use std::time::Duration;

use mqtt_wire::{BytesMut, Packet, PacketId};
use tokio::time::Instant;

use super::pubsub::{Plan, RunState};
use crate::client::Client;
use crate::error::LoadError;
use crate::payload::{PublishTemplate, Stamp};
use crate::stats::Counters;

/// Bytes written per batch (at most): large writes keep the load tool off the profile.
const BATCH_BYTES: usize = 64 * 1024;
/// How long a write may stay blocked past the deadline before the publisher gives up on it.
const WRITE_GRACE: Duration = Duration::from_millis(100);
/// How long a blocked publisher sleeps before looking at the clock again.
const POLL: Duration = Duration::from_millis(100);

/// What one publisher did.
#[derive(Debug, Default)]
pub struct PublisherOutcome {
    /// Messages written (sequence numbers `0..sent`).
    pub sent: u64,
    /// PUBACKs for outstanding identifiers.
    pub acked: u64,
    /// PUBACKs for identifiers that were not outstanding.
    pub unexpected_acks: u64,
    /// Messages still unacknowledged when the publisher gave up.
    pub unacked: u64,
    /// Whether the last batch was cut short because the broker stopped reading (only its
    /// frames written whole are counted as sent).
    pub write_cut: bool,
    /// Why the publisher stopped early, if it did.
    pub error: Option<LoadError>,
}

/// Publisher `index` runs until the plan's deadline (and, at QoS 1, until its window drains
/// or the drain time is over).
pub async fn publish(
    mut client: Client,
    template: PublishTemplate,
    index: u32,
    plan: &Plan,
    state: &RunState,
) -> PublisherOutcome {
    let mut me = Publisher {
        window: plan.window.map(|w| w as u64),
        outstanding: if plan.window.is_some() {
            vec![false; usize::from(u16::MAX) + 1]
        } else {
            Vec::new()
        },
        next_id: 0,
        inflight: 0,
        outcome: PublisherOutcome::default(),
    };
    if let Err(e) = me.run(&mut client, &template, index, plan, state).await {
        me.outcome.error = Some(e);
    }
    me.outcome.unacked = me.inflight;
    me.outcome
}

struct Publisher {
    window: Option<u64>,
    outstanding: Vec<bool>,
    next_id: u16,
    inflight: u64,
    outcome: PublisherOutcome,
}

impl Publisher {
    async fn run(
        &mut self,
        client: &mut Client,
        template: &PublishTemplate,
        index: u32,
        plan: &Plan,
        state: &RunState,
    ) -> Result<(), LoadError> {
        let max_batch = (BATCH_BYTES / template.len()).max(1) as u64;
        let mut batch = BytesMut::with_capacity(max_batch as usize * template.len());
        let per_publisher_rate = plan.rate as f64 / f64::from(plan.publishers);
        let start = state.start;
        let deadline = start + plan.duration;
        let give_up = deadline + plan.drain;
        loop {
            let now = Instant::now();
            let sequence = self.outcome.sent;
            let sending = now < deadline && (plan.count == 0 || sequence < plan.count);
            if (!sending && self.inflight == 0) || now >= give_up {
                return Ok(());
            }
            let mut n = if sending { max_batch } else { 0 };
            if let Some(window) = self.window {
                n = n.min(window.saturating_sub(self.inflight));
            }
            if plan.count > 0 {
                n = n.min(plan.count - sequence);
            }
            let mut wake = now + POLL;
            if plan.rate > 0 && n > 0 {
                let due = ((now - start).as_secs_f64() * per_publisher_rate) as u64 + 1;
                n = n.min(due.saturating_sub(sequence));
                if n == 0 {
                    wake = start + Duration::from_secs_f64(sequence as f64 / per_publisher_rate);
                }
            }
            if n > 0 {
                batch.clear();
                let stamp = Stamp {
                    publisher: index,
                    sequence,
                    sent_ns: state.now_ns(),
                };
                for k in 0..n {
                    let id = self.take_packet_id();
                    template.append(
                        &mut batch,
                        Stamp {
                            sequence: sequence + k,
                            ..stamp
                        },
                        id,
                    );
                }
                // A broker that stops reading must not stretch the run: give up at the deadline
                // and count only the frames written whole (the broker drops a partial one).
                let written = client.write_until(&batch, deadline + WRITE_GRACE).await?;
                let whole = (written / template.len()) as u64;
                self.outcome.sent += whole;
                state.add_sent(index, whole);
                if whole < n {
                    self.outcome.write_cut = true;
                    return Ok(());
                }
                client.try_fill()?;
            } else if self.inflight > 0 {
                if let Ok(read) = tokio::time::timeout_at(wake, client.fill()).await {
                    read?;
                }
            } else {
                tokio::time::sleep_until(wake).await;
            }
            self.take_acks(client, state)?;
        }
    }

    /// The next free packet identifier, marked outstanding (QoS 0: any identifier, unused).
    fn take_packet_id(&mut self) -> PacketId {
        if self.window.is_none() {
            return PacketId::MIN;
        }
        loop {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if let Some(slot) = self.outstanding.get_mut(usize::from(self.next_id))
                && !*slot
            {
                *slot = true;
                self.inflight += 1;
                return PacketId::new(self.next_id).unwrap_or(PacketId::MIN);
            }
        }
    }

    /// Processes every buffered packet: PUBACKs free their identifiers.
    fn take_acks(&mut self, client: &mut Client, state: &RunState) -> Result<(), LoadError> {
        let mut acked = 0;
        while let Some(packet) = client.try_decode()? {
            match packet {
                Packet::PubAck(ack) => {
                    match self.outstanding.get_mut(usize::from(ack.packet_id.get())) {
                        Some(slot) if *slot => {
                            *slot = false;
                            self.inflight -= 1;
                            acked += 1;
                        }
                        _ => self.outcome.unexpected_acks += 1,
                    }
                }
                Packet::Disconnect(_) => return Err(LoadError::Unexpected("DISCONNECT")),
                _ => {}
            }
        }
        self.outcome.acked += acked;
        Counters::add(&state.counters.acked, acked);
        Ok(())
    }
}
