//! One publisher task: writes batches of pre-encoded PUBLISH frames, paced by the rate and,
//! at QoS 1 and 2, by a window of unacknowledged packet identifiers.
//!
//! QoS 1: an identifier is freed by its PUBACK. QoS 2 [MQTT-4.3.3]: the PUBREC of an
//! identifier is answered with a PUBREL (kept outstanding), its PUBCOMP frees it; a PUBREC
//! with an error reason code (5.0) ends the exchange without a PUBREL. A PUBREC for an
//! identifier already released is answered with the PUBREL again.

use std::time::Duration;

use mqtt_wire::{BytesMut, Packet, PacketId};
use tokio::time::Instant;

use super::pubsub::{Plan, RunState};
use crate::client::Client;
use crate::error::LoadError;
use crate::histogram::Histogram;
use crate::payload::{PublishTemplate, Stamp};
use crate::stats::Counters;

/// Bytes written per batch (at most): large writes keep the load tool off the profile.
const BATCH_BYTES: usize = 64 * 1024;
/// How long a write may stay blocked past the deadline before the publisher gives up on it.
const WRITE_GRACE: Duration = Duration::from_millis(100);
/// How long a blocked publisher sleeps before looking at the clock again.
const POLL: Duration = Duration::from_millis(100);

/// Where the exchange of one packet identifier stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not in use.
    Free,
    /// PUBLISH sent, waiting for its PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREL sent, waiting for its PUBCOMP (QoS 2).
    Released,
}

/// What one publisher did.
#[derive(Debug, Default)]
pub struct PublisherOutcome {
    /// Messages written (sequence numbers `0..sent`).
    pub sent: u64,
    /// Messages whose exchange completed successfully (PUBACK at QoS 1, PUBCOMP at QoS 2).
    pub acked: u64,
    /// Acknowledgements (PUBACK, PUBREC, PUBCOMP) for identifiers not waiting for them.
    pub unexpected_acks: u64,
    /// PUBACKs or PUBRECs with an error reason code (MQTT 5.0): the broker refused them.
    pub refused: u64,
    /// Messages still unacknowledged when the publisher gave up.
    pub unacked: u64,
    /// Whether the last batch was cut short because the broker stopped reading (only its
    /// frames written whole are counted as sent).
    pub write_cut: bool,
    /// Time from writing a message to its PUBACK or PUBCOMP, in nanoseconds.
    pub ack_latency: Option<Histogram>,
    /// Why the publisher stopped early, if it did.
    pub error: Option<LoadError>,
}

/// Publisher `index` runs until the plan's deadline (and, at QoS 1 and 2, until its window
/// drains or the drain time is over). Its rate counts from `began`, when it connected. The
/// window never exceeds the broker's Receive Maximum.
pub async fn publish(
    client: &mut Client,
    template: PublishTemplate,
    index: u32,
    plan: &Plan,
    state: &RunState,
    began: Instant,
) -> PublisherOutcome {
    let windowed = plan.window.is_some();
    let slots = if windowed {
        usize::from(u16::MAX) + 1
    } else {
        0
    };
    let receive_maximum = client.receive_maximum().map_or(u64::MAX, u64::from);
    let mut me = Publisher {
        window: plan.window.map(|w| u64::from(w).min(receive_maximum)),
        slots: vec![Slot::Free; slots],
        sent_at: vec![0; slots],
        next_id: 0,
        inflight: 0,
        releases: BytesMut::new(),
        outcome: PublisherOutcome {
            ack_latency: windowed.then(Histogram::new),
            ..PublisherOutcome::default()
        },
    };
    if let Err(e) = me.run(client, &template, index, plan, state, began).await {
        me.outcome.error = Some(e);
    }
    me.outcome.unacked = me.inflight;
    me.outcome
}

struct Publisher {
    window: Option<u64>,
    slots: Vec<Slot>,
    /// Send time (run nanoseconds) of the message under each identifier.
    sent_at: Vec<u64>,
    next_id: u16,
    inflight: u64,
    /// PUBRELs to write.
    releases: BytesMut,
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
        began: Instant,
    ) -> Result<(), LoadError> {
        let max_batch = (BATCH_BYTES / template.len()).max(1) as u64;
        let mut batch = BytesMut::with_capacity(max_batch as usize * template.len());
        let rate = plan.per_publisher_rate;
        let deadline = state.start + plan.duration;
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
            if rate > 0.0 && n > 0 {
                let due = ((now - began).as_secs_f64() * rate) as u64 + 1;
                n = n.min(due.saturating_sub(sequence));
                if n == 0 {
                    wake = began + Duration::from_secs_f64(sequence as f64 / rate);
                }
            }
            if let Some(ping) = client.ping_due_at() {
                wake = wake.min(ping);
            }
            if n > 0 {
                batch.clear();
                let stamp = Stamp {
                    publisher: index,
                    sequence,
                    sent_ns: state.now_ns(),
                };
                for k in 0..n {
                    let id = self.take_packet_id(stamp.sent_ns);
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
            if !self.releases.is_empty() {
                client.write_all(&self.releases).await?;
                self.releases.clear();
            }
            client.ping_if_due().await?;
        }
    }

    /// The next free packet identifier, marked outstanding since `now_ns` (QoS 0: any
    /// identifier, unused).
    fn take_packet_id(&mut self, now_ns: u64) -> PacketId {
        if self.window.is_none() {
            return PacketId::MIN;
        }
        loop {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            let at = usize::from(self.next_id);
            if let Some(slot) = self.slots.get_mut(at)
                && *slot == Slot::Free
            {
                *slot = Slot::Published;
                if let Some(sent) = self.sent_at.get_mut(at) {
                    *sent = now_ns;
                }
                self.inflight += 1;
                return PacketId::new(self.next_id).unwrap_or(PacketId::MIN);
            }
        }
    }

    /// Ends the exchange of identifier `at`: frees it and records its latency if it succeeded.
    fn complete(&mut self, at: usize, success: bool, now_ns: u64) {
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = Slot::Free;
        }
        self.inflight -= 1;
        if success {
            self.outcome.acked += 1;
            let sent = self.sent_at.get(at).copied().unwrap_or(now_ns);
            if let Some(latency) = &mut self.outcome.ack_latency {
                latency.record(now_ns.saturating_sub(sent));
            }
        } else {
            self.outcome.refused += 1;
        }
    }

    /// Processes every buffered packet: PUBACKs and PUBCOMPs free their identifiers, PUBRECs
    /// queue PUBRELs.
    fn take_acks(&mut self, client: &mut Client, state: &RunState) -> Result<(), LoadError> {
        let acked_before = self.outcome.acked;
        let now_ns = state.now_ns();
        while let Some(packet) = client.try_decode()? {
            match packet {
                Packet::PubAck(ack) => {
                    let at = usize::from(ack.packet_id.get());
                    match self.slots.get(at) {
                        Some(Slot::Published) => {
                            self.complete(at, !ack.reason_code.is_error(), now_ns);
                        }
                        _ => self.outcome.unexpected_acks += 1,
                    }
                }
                Packet::PubRec(rec) => {
                    let at = usize::from(rec.packet_id.get());
                    match self.slots.get(at) {
                        // An error PUBREC ends the exchange: no PUBREL (5.0 §4.3.3).
                        Some(Slot::Published) if rec.reason_code.is_error() => {
                            self.complete(at, false, now_ns);
                        }
                        Some(Slot::Published | Slot::Released) => {
                            if let Some(slot) = self.slots.get_mut(at) {
                                *slot = Slot::Released;
                            }
                            let [high, low] = rec.packet_id.get().to_be_bytes();
                            self.releases.extend_from_slice(&[0x62, 0x02, high, low]);
                        }
                        _ => self.outcome.unexpected_acks += 1,
                    }
                }
                Packet::PubComp(comp) => {
                    let at = usize::from(comp.packet_id.get());
                    match self.slots.get(at) {
                        Some(Slot::Released) => {
                            self.complete(at, !comp.reason_code.is_error(), now_ns);
                        }
                        _ => self.outcome.unexpected_acks += 1,
                    }
                }
                Packet::Disconnect(_) => return Err(LoadError::Unexpected("DISCONNECT")),
                _ => {}
            }
        }
        Counters::add(&state.counters.acked, self.outcome.acked - acked_before);
        Ok(())
    }
}
