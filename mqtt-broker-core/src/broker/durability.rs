//! The broker's side of durability (see the [`persist`](crate::persist) module for the rules):
//! records made as durable state changes, outputs handed to the outbox's gate, and restoring
//! what a store recovered.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mqtt_topic::TopicName;

use crate::broker::Broker;
use crate::error::ApiMisuse;
use crate::gate::output_conn;
use crate::ids::SessionId;
use crate::inflight::Outbound;
use crate::message::{Delivery, Message};
use crate::output::Output;
use crate::session::Session;
use crate::timer::TimerKey;
use crate::will::Will;

use crate::persist::{
    DeliveryState, PersistRecord, Persistence, RecoveredDelivery, RecoveredSession, RecoveredState,
    StoredDelivery,
};

/// Shifts a message read back from a store to the broker's clock: its expiry interval is reduced
/// by the time since it was received; `None` if that consumed it.
fn age_message(
    mut message: Message,
    received: SystemTime,
    now: Instant,
    wall_now: SystemTime,
) -> Option<Message> {
    let age = wall_now.duration_since(received).unwrap_or(Duration::ZERO);
    if let Some(interval) = message.properties.message_expiry_interval {
        let left = u64::from(interval).checked_sub(age.as_secs())?;
        if left == 0 {
            return None;
        }
        message.properties.message_expiry_interval = Some(u32::try_from(left).unwrap_or(u32::MAX));
    }
    message.received_at = now;
    Some(message)
}

impl Broker {
    /// Appends a record to the batch being filled (nothing when persistence is off).
    pub(crate) fn persist(&mut self, record: PersistRecord) {
        self.out.record(record, None);
    }

    /// The client identifier of `session` when its changes are recorded (persistence on and a
    /// non-zero session expiry).
    /// The caller records a change of it next.
    pub(crate) fn recorded_client(&mut self, session: SessionId) -> Option<String> {
        if !self.out.recording() {
            return None;
        }
        let s = self.sessions.get(&session)?;
        let client_id = (s.expiry_interval > 0).then(|| s.client_id.to_string())?;
        self.out.mark(session);
        Some(client_id)
    }

    /// Records a change of `session` that the caller names itself.
    pub(crate) fn persist_for(&mut self, session: SessionId, record: PersistRecord) {
        self.out.record(record, Some(session));
    }

    /// Gives `delivery` a number in `session` and records it, if the session is recorded.
    pub(crate) fn store_delivery(
        &mut self,
        session: SessionId,
        delivery: &mut Delivery,
        state: DeliveryState,
    ) {
        let Some(client_id) = self.recorded_client(session) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        s.next_number += 1;
        let number = s.next_number;
        delivery.stored = number;
        let stored = StoredDelivery {
            message: Arc::clone(&delivery.message),
            qos: delivery.qos,
            retain: delivery.retain,
            subscription_ids: delivery.subscription_ids.clone(),
            share: delivery.share.as_deref().map(str::to_owned),
            state,
        };
        self.persist(PersistRecord::MessageStored {
            client_id,
            number,
            delivery: stored,
        });
    }

    /// Records the deliveries a session already holds when it becomes persistent. A QoS 2
    /// exchange already released has no message left to record and is not kept.
    pub(crate) fn persist_kept_deliveries(&mut self, session: SessionId) {
        let Some(client_id) = self.recorded_client(session) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let mut kept: Vec<(u64, StoredDelivery)> = Vec::new();
        let mut number = s.next_number;
        let mut keep = |delivery: &mut Delivery, state: DeliveryState| {
            number += 1;
            delivery.stored = number;
            let stored = StoredDelivery {
                message: Arc::clone(&delivery.message),
                qos: delivery.qos,
                retain: delivery.retain,
                subscription_ids: delivery.subscription_ids.clone(),
                share: delivery.share.as_deref().map(str::to_owned),
                state,
            };
            kept.push((number, stored));
        };
        for (id, outbound) in s.inflight.iter_mut() {
            if let Outbound::Published(delivery) = outbound {
                keep(delivery, DeliveryState::Sent(*id));
            }
        }
        for delivery in s.queue.iter_mut() {
            keep(delivery, DeliveryState::Queued);
        }
        s.next_number = number;
        for (number, delivery) in kept {
            self.persist(PersistRecord::MessageStored {
                client_id: client_id.clone(),
                number,
                delivery,
            });
        }
    }

    /// Records a state change (`Some`) or the end (`None`) of stored delivery `number`.
    pub(crate) fn delivery_changed(
        &mut self,
        session: SessionId,
        number: u64,
        state: Option<DeliveryState>,
    ) {
        if number == 0 {
            return;
        }
        let Some(client_id) = self.recorded_client(session) else {
            return;
        };
        self.persist(match state {
            Some(state) => PersistRecord::MessageState {
                client_id,
                number,
                state,
            },
            None => PersistRecord::MessageDone { client_id, number },
        });
    }

    /// Queues an output for the caller; in `Sync` mode it is held if it needs a batch that is
    /// not durable yet, or if an earlier output on its connection is held.
    pub(crate) fn emit(&mut self, output: Output) {
        let session = match self.config.persistence {
            Persistence::Sync => output_conn(&output).and_then(|c| self.conns.get(&c)?.session()),
            _ => None,
        };
        self.out.emit(output, session);
    }

    /// Every batch up to `seq` is durable: outputs that waited for them are released, in order,
    /// each once nothing before it on its connection is still held.
    /// `Err` for a batch number not handed out yet.
    pub fn handle_persisted(&mut self, seq: u64, now: Instant) -> Result<(), ApiMisuse> {
        self.tick(now);
        self.out.persisted(seq)
    }

    /// Loads what a store recovered: retained messages and offline persistent sessions with
    /// their subscriptions, queued and in-flight deliveries, inbound QoS 2 identifiers and
    /// delayed wills. `wall_now` is the wall-clock time matching `now`; message and session
    /// expiry count the time since the stored wall-clock times. Call it before any connection
    /// opens.
    pub fn restore(&mut self, state: RecoveredState, now: Instant, wall_now: SystemTime) {
        self.tick(now);
        for recovered in state.retained {
            let Some(message) = age_message(recovered.message, recovered.received, now, wall_now)
            else {
                continue;
            };
            if let Ok(topic) = TopicName::new(message.topic.clone().into_bytes()) {
                self.retained.set(topic, Arc::new(message));
            }
        }
        for recovered in state.sessions {
            self.restore_session(recovered, now, wall_now);
        }
    }

    /// Cluster seam: gives up the session of `client_id` to the node of the cluster its client
    /// is connecting to, and returns it as that node's [`Broker::admit`] takes it: its
    /// subscriptions, expiry and protocol version, the QoS 1/2 messages queued for it and those
    /// sent and not yet acknowledged (resent there with DUP [MQTT-4.4.0-1]), and the QoS 2
    /// packet identifiers it awaits PUBREL for. Its connection here is taken over first
    /// (DISCONNECT 0x8E for v5; a will without delay is published, as on any takeover). Copies
    /// from shared subscriptions stay with their groups here (handed to other members). `None`
    /// when this broker has no such session, or one that ends with its connection (nothing to
    /// resume).
    pub fn export_session(
        &mut self,
        client_id: &str,
        now: Instant,
        wall_now: SystemTime,
    ) -> Option<RecoveredSession> {
        self.tick(now);
        let session = self.sessions.find(client_id)?;
        if let Some(conn) = self.sessions.get(&session).and_then(|s| s.conn) {
            self.take_over(conn, now);
        }
        let s = self.sessions.get(&session)?;
        if s.expiry_interval == 0 {
            self.end_session(session, false, now);
            return None;
        }
        let record = s.record();
        let received = |message: &Message| {
            wall_now
                .checked_sub(now.saturating_duration_since(message.received_at))
                .unwrap_or(wall_now)
        };
        let mut messages = Vec::new();
        let mut keep = |delivery: &Delivery, state: DeliveryState| {
            let number = messages.len() as u64 + 1;
            messages.push(RecoveredDelivery {
                number,
                delivery: StoredDelivery {
                    message: Arc::clone(&delivery.message),
                    qos: delivery.qos,
                    retain: delivery.retain,
                    subscription_ids: delivery.subscription_ids.clone(),
                    share: None,
                    state,
                },
                received: received(&delivery.message),
            });
        };
        for (id, outbound) in s.inflight.iter() {
            match outbound {
                Outbound::Published(delivery) if delivery.share.is_none() => {
                    keep(delivery, DeliveryState::Sent(*id));
                }
                Outbound::Released(_) => {
                    // Only the identifier is left of a released QoS 2 exchange.
                    let placeholder = Delivery {
                        message: Arc::new(Message::new(
                            mqtt_wire::MqttStr::from_static("$released"),
                            bytes::Bytes::new(),
                            mqtt_wire::QoS::ExactlyOnce,
                            false,
                            now,
                        )),
                        qos: mqtt_wire::QoS::ExactlyOnce,
                        retain: false,
                        subscription_ids: Vec::new(),
                        share: None,
                        stored: 0,
                    };
                    keep(&placeholder, DeliveryState::Released(*id));
                }
                Outbound::Published(_) => {}
            }
        }
        for delivery in s.queue.iter().filter(|d| d.share.is_none()) {
            keep(delivery, DeliveryState::Queued);
        }
        let exported = RecoveredSession {
            client_id: client_id.to_owned(),
            record,
            disconnected: None,
            messages,
            incoming_qos2: s.incoming_qos2.ids().to_vec(),
        };
        self.end_session(session, false, now);
        Some(exported)
    }

    /// Takes over a session another node of the cluster held: restored as from a store, then
    /// written to this broker's own store (if it keeps one) as a session new here.
    pub(crate) fn adopt_session(
        &mut self,
        recovered: RecoveredSession,
        now: Instant,
        wall_now: SystemTime,
    ) {
        let client_id = recovered.client_id.clone();
        self.restore_session(recovered, now, wall_now);
        if let Some(session) = self.sessions.find(&client_id)
            && let Some(s) = self.sessions.get_mut(&session)
        {
            s.persisted = false;
        }
    }

    fn restore_session(&mut self, recovered: RecoveredSession, now: Instant, wall_now: SystemTime) {
        let RecoveredSession {
            client_id,
            record,
            disconnected,
            messages,
            incoming_qos2,
        } = recovered;
        let id = self.sessions.reserve_id();
        let client_id: Arc<str> = Arc::from(client_id);
        let mut session = Session::new(Arc::clone(&client_id), record.version);
        session.expiry_interval = record.expiry_interval;
        session.persisted = true;
        session.will = record.will.map(Will::from_record);
        for (filter, options, identifier) in record.subscriptions {
            self.restore_subscription(id, &mut session, filter, options, identifier);
        }
        session.incoming_qos2.extend(incoming_qos2);
        for recovered in messages {
            session.next_number = session.next_number.max(recovered.number);
            let stored = recovered.delivery;
            let Some(message) =
                age_message((*stored.message).clone(), recovered.received, now, wall_now)
            else {
                continue;
            };
            let delivery = Delivery {
                message: Arc::new(message),
                qos: stored.qos,
                retain: stored.retain,
                subscription_ids: stored.subscription_ids,
                share: stored.share.map(Arc::from),
                stored: recovered.number,
            };
            match stored.state {
                DeliveryState::Queued => {
                    // Restored whole: the limits applied when it was queued.
                    let _ = session.queue.push(delivery, usize::MAX, usize::MAX);
                }
                DeliveryState::Sent(packet_id) => session.inflight.push(packet_id, delivery),
                DeliveryState::Released(packet_id) => {
                    session.inflight.push_released(packet_id, recovered.number);
                }
            }
        }
        let away = disconnected
            .and_then(|at| wall_now.duration_since(at).ok())
            .unwrap_or(Duration::ZERO);
        let will_delay = session.will.as_ref().map(|w| w.delay_interval);
        let expiry = session.expiry_interval;
        self.memory
            .added(session.queue.len(), session.queue.bytes());
        self.sessions.insert(id, session);
        self.stats.clients_disconnected += 1;
        if expiry != u32::MAX {
            let left = Duration::from_secs(u64::from(expiry)).saturating_sub(away);
            self.timers
                .set_after(TimerKey::SessionExpiry(id), now, left);
        }
        if let Some(delay) = will_delay {
            let left = Duration::from_secs(u64::from(delay)).saturating_sub(away);
            self.timers.set_after(TimerKey::WillDelay(id), now, left);
        }
    }
}
