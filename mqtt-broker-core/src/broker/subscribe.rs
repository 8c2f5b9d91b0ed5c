//! SUBSCRIBE and UNSUBSCRIBE: one reason code per filter, replacing identical filters, limits
//! and authorization, and the retained messages a new subscription asks for.

use std::time::Instant;

use bytes::Bytes;
use mqtt_topic::{SubscriptionFilter, TopicName};
use mqtt_wire::{
    MqttStr, Packet, Properties, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};

use crate::broker::Broker;
use crate::broker::delivery::Copies;
use crate::error::ProtocolViolation;
use crate::hooks::{Authorization, ClientRef};
use crate::ids::ConnectionId;
use crate::ids::SessionId;
use crate::message::{Delivery, Lifetime, Message};
use crate::persist::PersistRecord;
use crate::session::{Session, Subscription};

impl Broker {
    /// SUBSCRIBE: SUBACK with one code per filter, in order [MQTT-3.8.4-1] [MQTT-3.9.3-1],
    /// then the retained messages of the new subscriptions.
    pub(crate) fn handle_subscribe(
        &mut self,
        conn: ConnectionId,
        session: SessionId,
        subscribe: Subscribe,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let Some(c) = self.conns.get(&conn) else {
            return Ok(());
        };
        let (v5, bridge) = (c.version.is_v5(), c.bridge);
        let rules = self.config.rules(c.info.listener);
        let (maximum_qos, mounted) = (rules.maximum_qos, rules.mount_point.is_some());
        let identifier = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied();
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained_for: Vec<(SubscriptionFilter, Subscription)> = Vec::new();
        for (text, mut options) in subscribe.filters {
            // Accepted at any QoS, granted at most the server's [MQTT5-3.2.2-10].
            options.qos = options.qos.min(maximum_qos);
            let Some((text, filter)) = self.broker_filter(conn, &text, mounted) else {
                self.stats.subscriptions_refused += 1;
                codes.push(failure(v5, ReasonCode::TopicFilterInvalid));
                continue;
            };
            if bridge {
                // A 3.x bridge cannot ask for these options; it is given them, so that what it
                // forwards here is not sent back to it and retained messages stay retained.
                // A shared subscription delivers to one member: there, no-local is refused.
                options.no_local = filter.share().is_none();
                options.retain_as_published = true;
            }
            if filter.share().is_some() && options.no_local {
                return Err(ProtocolViolation::new(
                    "MQTT-3.8.3-4",
                    "No Local on a shared subscription",
                    ReasonCode::ProtocolError,
                ));
            }
            let (code, new) =
                self.subscribe_one(conn, session, &text, &filter, options, identifier);
            if let Some(is_new) = new {
                let send = match options.retain_handling {
                    _ if filter.share().is_some() => false,
                    RetainHandling::SendAtSubscribe => true, // [MQTT5-3.3.1-9]
                    RetainHandling::SendIfNew => is_new,     // [MQTT5-3.3.1-10]
                    RetainHandling::DoNotSend => false,      // [MQTT5-3.3.1-11]
                };
                if send {
                    let subscription = Subscription {
                        options,
                        identifier,
                    };
                    retained_for.push((filter, subscription));
                }
            }
            if code.is_error() {
                self.stats.subscriptions_refused += 1;
            }
            codes.push(code);
        }
        let suback = SubAck {
            packet_id: subscribe.packet_id, // [MQTT-3.8.4-2]
            reason_codes: codes,
            properties: Properties::default(),
        };
        self.save_session(session, now);
        self.send_packet(conn, &Packet::SubAck(suback), now);
        for (filter, subscription) in retained_for {
            self.send_retained(session, &filter, subscription, now);
        }
        Ok(())
    }

    /// A client's filter as the broker keeps it, behind the mount point of its connection's
    /// listener, and parsed; `None` if the client's filter, or the joined one, is invalid.
    fn broker_filter(
        &self,
        conn: ConnectionId,
        text: &MqttStr,
        mounted: bool,
    ) -> Option<(MqttStr, SubscriptionFilter)> {
        // Parsed from a copy: the session keeps it, and a view would pin the packet.
        let parse = |text: &MqttStr| {
            SubscriptionFilter::parse(Bytes::copy_from_slice(text.as_bytes()), &self.topic_limits)
                .ok()
        };
        if !mounted {
            return Some((text.clone(), parse(text)?));
        }
        // The client's own filter must be valid: `t/` + an empty filter would be.
        parse(text)?;
        let listener = self.conns.get(&conn)?.info.listener;
        let text = self.config.rules(listener).mount_filter(text)?;
        let filter = parse(&text)?;
        Some((text, filter))
    }

    /// Adds one subscription. Returns the SUBACK code and, on success, whether it is new.
    fn subscribe_one(
        &mut self,
        conn: ConnectionId,
        session: SessionId,
        text: &str,
        filter: &SubscriptionFilter,
        options: SubscriptionOptions,
        identifier: Option<u32>,
    ) -> (ReasonCode, Option<bool>) {
        let (Some(c), Some(s)) = (self.conns.get(&conn), self.sessions.get_mut(&session)) else {
            return (ReasonCode::UnspecifiedError, None);
        };
        let v5 = c.version.is_v5();
        let exists = s.subscriptions.contains_key(text);
        if !exists && s.subscriptions.len() >= self.config.max_subscriptions_per_client {
            return (failure(v5, ReasonCode::QuotaExceeded), None);
        }
        let client = ClientRef {
            client_id: &s.client_id,
            username: c.username.as_deref(),
            info: &c.info,
        };
        if let Authorization::Deny(code) =
            self.authorizer
                .authorize_subscribe(&client, text, options.qos)
        {
            return (failure(v5, code), None);
        }
        let subscription = Subscription {
            options,
            identifier,
        };
        let Ok(change) = self.router.insert(session, filter, subscription) else {
            return (failure(v5, ReasonCode::QuotaExceeded), None);
        };
        // Replaces an identical filter [MQTT-3.8.4-3].
        s.subscriptions.insert(text, subscription);
        self.stats.subscriptions = self.router.len() as u64;
        self.interest_changed(change);
        (granted(options.qos), Some(!exists))
    }

    /// Sends the retained messages matching a new subscription, RETAIN=1 [MQTT311-3.3.1-6]
    /// [MQTT311-3.3.1-8].
    fn send_retained(
        &mut self,
        session: SessionId,
        filter: &SubscriptionFilter,
        subscription: Subscription,
        now: Instant,
    ) {
        for message in self.retained.matching(filter.filter()) {
            // An expired retained message, or one whose publisher lost its write access, is
            // dropped from the store when met.
            if message.lifetime(now) == Lifetime::Expired || !self.retain_source_allowed(&message) {
                if let Ok(topic) = TopicName::new(message.topic.clone().into_bytes()) {
                    self.clear_retained(&topic);
                }
                continue;
            }
            let delivery = Delivery {
                qos: message.qos.min(subscription.options.qos),
                retain: true,
                subscription_ids: subscription.identifier.into_iter().collect(),
                share: None,
                stored: 0,
                message,
            };
            self.deliver(session, delivery, &mut Copies::one(), now);
        }
    }

    /// Whether the publisher of a retained message may still publish it (CVE-2018-12546);
    /// always when the check is off or the message has no recorded publisher.
    fn retain_source_allowed(&mut self, message: &Message) -> bool {
        let Some(source) = &message.retain_source else {
            return true;
        };
        if !self.config.check_retain_source {
            return true;
        }
        let info = source.connection_info();
        let publisher = ClientRef {
            client_id: &source.client_id,
            username: source.username.as_deref(),
            info: &info,
        };
        self.authorizer
            .authorize_retained_source(&publisher, &message.topic, message.qos)
    }

    /// UNSUBSCRIBE: removes exact matches [MQTT-3.10.4-1]; UNSUBACK even if nothing matched
    /// [MQTT-3.10.4-5].
    pub(crate) fn handle_unsubscribe(
        &mut self,
        conn: ConnectionId,
        session: SessionId,
        unsubscribe: Unsubscribe,
        now: Instant,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let v5 = c.version.is_v5();
        let rules = self.config.rules(c.info.listener);
        let filters: Vec<Option<MqttStr>> = unsubscribe
            .filters
            .iter()
            .map(|text| rules.mount_filter(text))
            .collect();
        let mut codes = Vec::with_capacity(filters.len());
        for text in &filters {
            // A filter too long behind the mount point was never subscribed.
            let removed = text.as_ref().and_then(|text| {
                self.sessions
                    .get_mut(&session)
                    .and_then(|s| s.subscriptions.remove(text.as_str()))
                    .and_then(|_| self.parsed_filter(text.as_str()))
            });
            let code = match removed {
                Some(filter) => {
                    let change = self.router.remove(session, &filter);
                    self.interest_changed(change);
                    if let Some(share) = filter.share() {
                        self.redistribute_shared(session, Some(share.as_str()), now);
                    }
                    ReasonCode::Success
                }
                None => ReasonCode::NoSubscriptionExisted,
            };
            codes.push(code);
        }
        self.stats.subscriptions = self.router.len() as u64;
        let unsuback = UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes: if v5 { codes } else { Vec::new() },
            properties: Properties::default(),
        };
        self.save_session(session, now);
        self.send_packet(conn, &Packet::UnsubAck(unsuback), now);
    }

    /// The filter a session's subscription was parsed from, parsed again from its `text`
    /// (which parsed under the same limits when it was subscribed).
    pub(crate) fn parsed_filter(&self, text: &str) -> Option<SubscriptionFilter> {
        SubscriptionFilter::parse(Bytes::copy_from_slice(text.as_bytes()), &self.topic_limits).ok()
    }

    /// Re-creates a subscription read from the store.
    pub(crate) fn restore_subscription(
        &mut self,
        id: SessionId,
        session: &mut Session,
        text: String,
        options: SubscriptionOptions,
        identifier: Option<u32>,
    ) {
        let Ok(filter) = SubscriptionFilter::parse(text.clone().into(), &self.topic_limits) else {
            return;
        };
        let subscription = Subscription {
            options,
            identifier,
        };
        if let Ok(change) = self.router.insert(id, &filter, subscription) {
            self.interest_changed(change);
            session.subscriptions.insert(&text, subscription);
            self.stats.subscriptions = self.router.len() as u64;
        }
    }

    /// Records a persistent session's durable fields for persistence; a session that stopped being persistent is recorded as removed.
    pub(crate) fn save_session(&mut self, session: SessionId, now: Instant) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.expiry_interval == 0 {
            if std::mem::take(&mut s.persisted) {
                let client_id = s.client_id.to_string();
                self.persist_for(session, PersistRecord::SessionRemoved { client_id });
            }
            return;
        }
        let newly_persisted = !std::mem::replace(&mut s.persisted, true);
        let mut record = s.record();
        record.will = s.will.as_ref().map(|will| will.to_record(now));
        record.disconnected_at = s.conn.is_none().then_some(now);
        let client_id = s.client_id.to_string();
        self.persist_for(session, PersistRecord::SessionSaved { client_id, record });
        if newly_persisted {
            self.persist_kept_deliveries(session);
        }
    }
}

/// The granted-QoS code [MQTT5-3.8.4-7].
fn granted(qos: QoS) -> ReasonCode {
    match qos {
        QoS::AtMostOnce => ReasonCode::GRANTED_QOS0,
        QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
        QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
    }
}

/// A failure code: as given for v5 (0x80 if not a SUBACK code), 0x80 for 3.1.1 [MQTT-3.9.3-2].
fn failure(v5: bool, code: ReasonCode) -> ReasonCode {
    if v5 && code.is_valid_for(mqtt_wire::PacketType::SubAck) && code.is_error() {
        code
    } else {
        ReasonCode::UnspecifiedError
    }
}
