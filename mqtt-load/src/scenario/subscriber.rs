//! Receiving: a [`Receiver`] takes the packets of one subscriber, checks sequence numbers,
//! records latency from the payload's stamp and acknowledges (batched per read): PUBACK at
//! QoS 1; at QoS 2 [MQTT-4.3.3] PUBREC for each PUBLISH, PUBCOMP for each PUBREL, and a
//! PUBLISH whose identifier is still waiting for its PUBREL is a re-delivery, not a new
//! message. [`receive`] is the subscriber task of the scenarios.

use std::time::Duration;

use mqtt_wire::{BytesMut, Packet, ProtocolVersion, PublishQos};
use tokio::time::Instant;

use super::pubsub::{Plan, RunState};
use crate::client::Client;
use crate::error::LoadError;
use crate::histogram::Histogram;
use crate::payload::Stamp;
use crate::sequence::SequenceTracker;
use crate::stats::Counters;

/// How often an idle subscriber looks at the run's state.
pub const POLL: Duration = Duration::from_millis(100);
/// After the publishers stop, a subscriber that has heard nothing for this long stops.
const QUIET: Duration = Duration::from_secs(1);
/// A stamp more than this far in the past is not taken for one (a payload of another tool).
const PLAUSIBLE_AGE_NS: u64 = 3_600_000_000_000;
/// A stamp at most this far in the future is taken for one (clocks of two processes).
const PLAUSIBLE_AHEAD_NS: u64 = 1_000_000_000;

/// What one subscriber saw.
#[derive(Debug)]
pub struct SubscriberOutcome {
    /// PUBLISH packets received (duplicates included, QoS 2 re-deliveries not).
    pub received: u64,
    /// Which sequence numbers arrived.
    pub tracker: SequenceTracker,
    /// End-to-end latency in nanoseconds.
    pub latency: Histogram,
    /// Messages with the RETAIN flag (not counted in the tracker or the latency).
    pub retained: u64,
    /// Messages without a plausible stamp (not from an `mqtt-load` publisher).
    pub unstamped: u64,
    /// QoS 2 PUBLISH packets for an identifier still waiting for its PUBREL.
    pub redelivered: u64,
    /// When the first message arrived.
    pub first_receive: Option<Instant>,
    /// When the last message arrived.
    pub last_receive: Option<Instant>,
    /// Why the subscriber stopped early, if it did.
    pub error: Option<LoadError>,
}

/// One subscriber's receiving state.
#[derive(Debug)]
pub struct Receiver {
    /// What it saw so far.
    pub outcome: SubscriberOutcome,
    /// QoS 2 identifiers received and not yet released (allocated on the first one).
    awaiting_release: Vec<bool>,
    /// Acknowledgements to write.
    acks: BytesMut,
    version: ProtocolVersion,
}

impl Receiver {
    /// A receiver checking sequence numbers with `tracker`.
    #[must_use]
    pub fn new(tracker: SequenceTracker, version: ProtocolVersion) -> Self {
        Self {
            outcome: SubscriberOutcome {
                received: 0,
                tracker,
                latency: Histogram::new(),
                retained: 0,
                unstamped: 0,
                redelivered: 0,
                first_receive: None,
                last_receive: None,
                error: None,
            },
            awaiting_release: Vec::new(),
            acks: BytesMut::new(),
            version,
        }
    }

    /// Handles one packet received at `now_ns` (run clock); returns whether it was a new
    /// message.
    ///
    /// # Errors
    /// The broker sent a DISCONNECT.
    pub fn handle(&mut self, packet: Packet, now_ns: u64) -> Result<bool, LoadError> {
        match packet {
            Packet::Publish(publish) => {
                match publish.qos {
                    PublishQos::AtMostOnce => {}
                    PublishQos::AtLeastOnce(id) => {
                        let [high, low] = id.get().to_be_bytes();
                        self.acks.extend_from_slice(&[0x40, 0x02, high, low]);
                    }
                    PublishQos::ExactlyOnce(id) => {
                        let [high, low] = id.get().to_be_bytes();
                        self.acks.extend_from_slice(&[0x50, 0x02, high, low]);
                        if self.awaiting_release.is_empty() {
                            self.awaiting_release = vec![false; usize::from(u16::MAX) + 1];
                        }
                        if let Some(waiting) = self.awaiting_release.get_mut(usize::from(id.get()))
                        {
                            if *waiting {
                                self.outcome.redelivered += 1;
                                return Ok(false);
                            }
                            *waiting = true;
                        }
                    }
                }
                let outcome = &mut self.outcome;
                outcome.received += 1;
                if publish.retain {
                    outcome.retained += 1;
                    return Ok(true);
                }
                match Stamp::read(publish.payload()).filter(|s| plausible(s.sent_ns, now_ns)) {
                    Some(stamp) => {
                        outcome.tracker.record(stamp.publisher, stamp.sequence);
                        outcome.latency.record(now_ns.saturating_sub(stamp.sent_ns));
                    }
                    None => outcome.unstamped += 1,
                }
                Ok(true)
            }
            Packet::PubRel(release) => {
                let id = release.packet_id.get();
                let [high, low] = id.to_be_bytes();
                let known = self
                    .awaiting_release
                    .get_mut(usize::from(id))
                    .map(std::mem::take)
                    .unwrap_or(false);
                if known || !self.version.is_v5() {
                    self.acks.extend_from_slice(&[0x70, 0x02, high, low]);
                } else {
                    // 0x92: Packet Identifier not found.
                    self.acks.extend_from_slice(&[0x70, 0x03, high, low, 0x92]);
                }
                Ok(false)
            }
            Packet::Disconnect(_) => Err(LoadError::Unexpected("DISCONNECT")),
            _ => Ok(false),
        }
    }

    /// Handles every packet already buffered by `client`; returns how many new messages.
    ///
    /// # Errors
    /// Malformed bytes or a DISCONNECT from the broker.
    pub fn drain(&mut self, client: &mut Client, now_ns: u64) -> Result<u64, LoadError> {
        let mut new = 0;
        while let Some(packet) = client.try_decode()? {
            new += u64::from(self.handle(packet, now_ns)?);
        }
        Ok(new)
    }

    /// Notes that `batch` new messages arrived at `now`.
    pub fn arrived(&mut self, batch: u64, now: Instant, counters: &Counters) {
        if batch > 0 {
            self.outcome.first_receive.get_or_insert(now);
            self.outcome.last_receive = Some(now);
            Counters::add(&counters.received, batch);
        }
    }

    /// Writes the acknowledgements queued so far.
    ///
    /// # Errors
    /// The socket fails.
    pub async fn flush(&mut self, client: &mut Client) -> Result<(), LoadError> {
        if !self.acks.is_empty() {
            client.write_all(&self.acks).await?;
            self.acks.clear();
        }
        Ok(())
    }
}

/// Whether `sent_ns` can be the send time of a message received at `now_ns`.
fn plausible(sent_ns: u64, now_ns: u64) -> bool {
    sent_ns <= now_ns.saturating_add(PLAUSIBLE_AHEAD_NS)
        && now_ns.saturating_sub(sent_ns) <= PLAUSIBLE_AGE_NS
}

/// Receives until every message sent has arrived, or the publishers are done and the
/// subscriber has been quiet for a second, or the drain time is over.
pub async fn receive(mut client: Client, plan: &Plan, state: &RunState) -> SubscriberOutcome {
    let tracker = SequenceTracker::new(plan.publishers as usize);
    let mut receiver = Receiver::new(tracker, client.version());
    if let Err(e) = receive_until_done(&mut client, plan, state, &mut receiver).await {
        receiver.outcome.error = Some(e);
    }
    receiver.outcome
}

async fn receive_until_done(
    client: &mut Client,
    plan: &Plan,
    state: &RunState,
    receiver: &mut Receiver,
) -> Result<(), LoadError> {
    // When the publishers were first seen done, and how many messages each sent.
    let mut done = None;
    let early = client.take_early();
    for packet in early {
        receiver.handle(packet, state.now_ns())?;
    }
    loop {
        if let Ok(read) = tokio::time::timeout(POLL, client.fill()).await {
            read?;
        }
        let now = Instant::now();
        let batch = receiver.drain(client, state.now_ns())?;
        receiver.flush(client).await?;
        receiver.arrived(batch, now, &state.counters);
        if done.is_none() {
            done = state.sent_per_publisher().map(|sent| (now, sent));
        }
        if let Some((since, sent)) = &done {
            let since = *since;
            let heard = receiver
                .outcome
                .last_receive
                .map_or(since, |t| t.max(since));
            let all_in = receiver.outcome.tracker.missing(sent) == 0;
            if all_in || now - heard >= QUIET || now - since >= plan.drain {
                return Ok(());
            }
        }
        client.ping_if_due().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_wire::{Ack, MqttStr, PacketId, Publish};

    fn publish(qos: PublishQos, payload: Vec<u8>) -> Packet {
        let topic = MqttStr::try_from("t".to_owned()).unwrap();
        Packet::Publish(Publish::new(topic, payload.into()).with_qos(qos))
    }

    fn stamped(sequence: u64, sent_ns: u64) -> Vec<u8> {
        let mut payload = vec![0; 20];
        payload[4..12].copy_from_slice(&sequence.to_be_bytes());
        payload[12..20].copy_from_slice(&sent_ns.to_be_bytes());
        payload
    }

    #[test]
    fn qos2_receive_flow_answers_and_deduplicates() {
        let now = 10_000_000_000_000;
        let mut r = Receiver::new(SequenceTracker::new(1), ProtocolVersion::V5);
        let id = PacketId::new(7).unwrap();
        let message = || publish(PublishQos::ExactlyOnce(id), stamped(0, now - 1_000));
        assert!(r.handle(message(), now).unwrap());
        // Re-sent before the PUBREL: PUBREC again, not a second message.
        assert!(!r.handle(message(), now).unwrap());
        assert!(!r.handle(Packet::PubRel(Ack::new(id)), now).unwrap());
        // Unknown identifier in 5.0: PUBCOMP with "Packet Identifier not found".
        let other = PacketId::new(8).unwrap();
        assert!(!r.handle(Packet::PubRel(Ack::new(other)), now).unwrap());
        assert_eq!(
            &r.acks[..],
            [
                0x50, 2, 0, 7, // PUBREC
                0x50, 2, 0, 7, // PUBREC again
                0x70, 2, 0, 7, // PUBCOMP
                0x70, 3, 0, 8, 0x92, // PUBCOMP, not found
            ]
        );
        assert_eq!((r.outcome.received, r.outcome.redelivered), (1, 1));
        assert_eq!(r.outcome.latency.max(), 1_000);
        // After the release the identifier is free for a new message.
        assert!(r.handle(message(), now).unwrap());
    }

    #[test]
    fn qos1_is_acknowledged_and_odd_payloads_are_not_timed() {
        let now = 10_000_000_000_000;
        let mut r = Receiver::new(SequenceTracker::new(1), ProtocolVersion::V3_1_1);
        let id = PacketId::new(1).unwrap();
        assert!(
            r.handle(publish(PublishQos::AtLeastOnce(id), b"hello".to_vec()), now)
                .unwrap()
        );
        let ancient = stamped(0, now - PLAUSIBLE_AGE_NS - 1);
        assert!(
            r.handle(publish(PublishQos::AtMostOnce, ancient), now)
                .unwrap()
        );
        assert_eq!(&r.acks[..], [0x40, 2, 0, 1]);
        assert_eq!((r.outcome.received, r.outcome.unstamped), (2, 2));
        assert!(r.outcome.latency.is_empty());
        assert!(
            r.handle(Packet::Disconnect(Default::default()), now)
                .is_err()
        );
    }
}
