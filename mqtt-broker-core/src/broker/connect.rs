//! CONNECT to CONNACK: client identifier rules, will checks, the first authentication step
//! (multi-step and deferred ones continue in `auth`), client takeover, clean start / session
//! resumption, and the limits announced to v5 clients.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mqtt_topic::TopicName;
use mqtt_wire::{
    ConnAck, Connect, Disconnect, MqttStr, Packet, PacketType, Properties, ProtocolVersion, QoS,
    ReasonCode,
};

use crate::alias::{OutboundAliases, detached};
use crate::broker::Broker;
use crate::conn::{Admission, Phase};
use crate::error::ApiMisuse;
use crate::hooks::{AuthDecision, AuthStep, Authorization, ClientRef, ConnectCredentials};
use crate::ids::{ConnectionId, ListenerId};
use crate::message::RetainSource;
use crate::output::{Event, Output};
use crate::timer::TimerKey;
use crate::will::{self, Will};

/// Where a protocol version counts in [`Stats::clients_by_protocol`](crate::Stats).
pub(crate) fn protocol_index(version: ProtocolVersion) -> usize {
    match version {
        ProtocolVersion::V3_1 => 0,
        ProtocolVersion::V3_1_1 => 1,
        ProtocolVersion::V5 => 2,
    }
}

/// Longest client identifier 3.1 allows.
const V3_1_MAX_CLIENT_ID: usize = 23;

impl Broker {
    /// A CONNECT on a connection that has not sent one.
    pub(crate) fn handle_connect(
        &mut self,
        conn: ConnectionId,
        mut connect: Box<Connect>,
        now: Instant,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.version = connect.protocol;
        c.bridge = connect.bridge;
        let version = connect.protocol;
        let listener = c.info.listener;
        if let Err(reason) = self.check_connect(&mut connect, listener) {
            self.refuse(conn, reason, now);
            return;
        }
        // The will outlives the CONNECT: it lets go of the read buffer now.
        if let Some(last_will) = &mut connect.will {
            will::detach(last_will);
        }
        if let (true, Some(method)) = (
            version.is_v5(),
            connect.properties.authentication_method.clone(),
        ) {
            if !self.enhanced_auth.supports(&method) {
                self.refuse(conn, ReasonCode::BadAuthenticationMethod, now); // [MQTT5-4.12.0-1]
                return;
            }
            let data = connect.properties.authentication_data.clone();
            let step = self
                .enhanced_auth
                .start(&connect.client_id, &method, data.as_deref());
            if let Some(c) = self.conns.get_mut(&conn) {
                c.auth_method = Some(Box::new(detached(&method)));
            }
            self.connect_auth_step(conn, connect, step, data, now);
            return;
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let credentials = ConnectCredentials {
            info: &c.info,
            protocol: version,
            client_id: &connect.client_id,
            username: connect.username.as_deref(),
            password: connect.password.as_deref(),
        };
        let step = match self.authenticator.authenticate(&credentials) {
            AuthDecision::Accept => AuthStep::Success(None),
            AuthDecision::Reject(reason) => AuthStep::Fail(reason),
            AuthDecision::Defer => AuthStep::Defer,
        };
        self.connect_auth_step(conn, connect, step, None, now);
    }

    /// Protocol-level checks of an accepted-format CONNECT on `listener`; `Err` is the CONNACK
    /// reason. The will's topic is put behind the listener's mount point.
    fn check_connect(&self, connect: &mut Connect, listener: ListenerId) -> Result<(), ReasonCode> {
        let rules = self.config.rules(listener);
        let id_len = connect.client_id.len();
        let empty_allowed = rules.allow_empty_client_id
            && match connect.protocol {
                ProtocolVersion::V3_1 => false,
                ProtocolVersion::V3_1_1 => connect.clean_start, // [MQTT311-3.1.3-8]
                ProtocolVersion::V5 => true,
            };
        let too_long = id_len > self.config.max_client_id_len
            || (connect.protocol == ProtocolVersion::V3_1 && id_len > V3_1_MAX_CLIENT_ID);
        if let Some(prefix) = &self.config.required_client_id_prefix
            && !connect.client_id.starts_with(prefix.as_str())
        {
            return Err(ReasonCode::NotAuthorized);
        }
        if (id_len == 0 && !empty_allowed) || too_long {
            return Err(ReasonCode::ClientIdentifierNotValid); // [MQTT311-3.1.3-9] [MQTT5-3.1.3-8]
        }
        // A 3.x client cannot be told a Server Keep Alive: one above the maximum is refused
        // (as mosquitto does) rather than silently shortened.
        let max_keep_alive = self.config.max_keep_alive;
        if !connect.protocol.is_v5()
            && max_keep_alive > 0
            && (connect.keep_alive == 0 || connect.keep_alive > max_keep_alive)
        {
            return Err(ReasonCode::ClientIdentifierNotValid);
        }
        if let Some(will) = &mut connect.will {
            will.topic = rules
                .mount(&will.topic)
                .ok_or(ReasonCode::TopicNameInvalid)?;
            if TopicName::with_limits(will.topic.clone().into_bytes(), &self.topic_limits).is_err()
            {
                return Err(ReasonCode::TopicNameInvalid);
            }
            if will.retain && !self.config.retain_available {
                return Err(ReasonCode::RetainNotSupported); // [MQTT5-3.2.2-13]
            }
            if will.qos > rules.maximum_qos {
                return Err(ReasonCode::QoSNotSupported); // [MQTT5-3.2.2-12]
            }
        }
        Ok(())
    }

    /// Refuses a CONNECT: CONNACK with `reason` (session present 0 [MQTT5-3.2.2-6] [MQTT311-3.2.2-4]) then close
    /// [MQTT5-3.2.2-7] [MQTT311-3.2.2-5].
    pub(crate) fn refuse(&mut self, conn: ConnectionId, reason: ReasonCode, now: Instant) {
        let reason = if reason.is_error() && reason.is_valid_for(PacketType::ConnAck) {
            reason
        } else {
            ReasonCode::UnspecifiedError
        };
        self.stats.connections_refused += 1;
        if matches!(
            reason,
            ReasonCode::BadUserNameOrPassword
                | ReasonCode::NotAuthorized
                | ReasonCode::BadAuthenticationMethod
        ) {
            self.stats.auth_failures += 1;
        }
        self.event(Event::ConnectRefused { conn, reason });
        let connack = ConnAck {
            session_present: false,
            reason_code: reason,
            properties: Properties::default(),
        };
        self.send_packet(conn, &Packet::ConnAck(connack), now);
        self.close(conn, reason, now);
    }

    /// A CONNECT naming a protocol level the broker does not speak: CONNACK 0x01 for older
    /// clients [MQTT-3.1.2-2], 0x84 in the v5 format for newer ones, then close.
    pub(crate) fn refuse_unsupported_version(
        &mut self,
        conn: ConnectionId,
        level: u8,
        now: Instant,
    ) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.version = if level >= 5 {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V3_1_1
            };
        }
        self.refuse(conn, ReasonCode::UnsupportedProtocolVersion, now);
    }

    /// An authenticated client: its client identifier in force, then (in a cluster, once
    /// admitted) takeover, session, CONNACK, resend, queue.
    pub(crate) fn complete_connect(
        &mut self,
        conn: ConnectionId,
        connect: Connect,
        auth_data: Option<Bytes>,
        now: Instant,
    ) {
        let assigned = connect.client_id.is_empty();
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let rules = self.config.rules(c.info.listener);
        let client_id = if rules.use_username_as_client_id {
            let Some(username) = &connect.username else {
                self.refuse(conn, ReasonCode::NotAuthorized, now);
                return;
            };
            username.to_string()
        } else if assigned {
            self.sessions
                .assign_client_id(&rules.assigned_client_id_prefix)
        } else {
            connect.client_id.to_string()
        };
        if !self.will_allowed(conn, &client_id, &connect) {
            self.refuse(conn, ReasonCode::NotAuthorized, now);
            return;
        }
        if self.config.cluster {
            // The backplane takes the session cluster-wide first (see `admit`).
            let request = Output::Admit {
                conn,
                client_id: Arc::from(client_id.as_str()),
                clean_start: connect.clean_start,
            };
            if let Some(c) = self.conns.get_mut(&conn) {
                c.phase = Phase::Admitting(Box::new(Admission {
                    connect,
                    auth_data,
                    client_id,
                    assigned,
                }));
            }
            self.emit(request);
            return;
        }
        self.finish_connect(conn, connect, auth_data, client_id, assigned, now);
    }

    /// Cluster seam: admits a client waiting after [`Output::Admit`]: `session` is its
    /// session as the node that held it handed it over (subscriptions, queued and unacknowledged
    /// messages, will), or `None` (a clean start, no session anywhere, or its node is gone).
    /// The client is then let in as on a single broker: its session here (the one handed over,
    /// or one this broker still has) is resumed unless it asked for a clean start, and CONNACK
    /// says so [MQTT5-3.2.2-2] [MQTT311-3.2.2-2].
    pub fn admit(
        &mut self,
        conn: ConnectionId,
        session: Option<crate::persist::RecoveredSession>,
        now: Instant,
        wall_now: std::time::SystemTime,
    ) -> Result<(), ApiMisuse> {
        self.tick(now);
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(ApiMisuse::UnknownConnection(conn.0))?;
        let admission = match std::mem::replace(&mut c.phase, Phase::AwaitingConnect) {
            Phase::Admitting(admission) => admission,
            other => {
                c.phase = other;
                return Err(ApiMisuse::NoPendingAuthentication(conn.0));
            }
        };
        let Admission {
            connect,
            auth_data,
            client_id,
            assigned,
        } = *admission;
        if let Some(session) = session.filter(|s| s.client_id == client_id)
            && self.sessions.find(&client_id).is_none()
        {
            self.adopt_session(session, now, wall_now);
        }
        self.finish_connect(conn, connect, auth_data, client_id, assigned, now);
        Ok(())
    }

    /// Lets an authenticated, admitted client in: takeover, session, CONNACK, resend, queue.
    fn finish_connect(
        &mut self,
        conn: ConnectionId,
        connect: Connect,
        auth_data: Option<Bytes>,
        client_id: String,
        assigned: bool,
        now: Instant,
    ) {
        let version = connect.protocol;
        let v5 = version.is_v5();
        let existing = self.sessions.find(&client_id);
        if existing.is_none() && self.sessions.len() >= self.config.max_sessions {
            self.refuse(conn, ReasonCode::QuotaExceeded, now);
            return;
        }
        if let Some(old) = existing
            .and_then(|s| self.sessions.get(&s))
            .and_then(|s| s.conn)
            && old != conn
        {
            self.take_over(old, now); // [MQTT311-3.1.4-2] [MQTT5-3.1.4-3]
        }
        let requested_expiry = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            u32::MAX
        };
        let expiry = requested_expiry.min(self.config.max_session_expiry_interval);
        // A session without expiry (CleanSession=1, or v5 expiry 0) lasts as long as its
        // connection [MQTT311-3.1.2-6] [MQTT5-3.1.2-23]: taken over, it ended with that
        // connection, and there is nothing to resume [MQTT5-3.1.2-6].
        let resumable = existing
            .and_then(|s| self.sessions.get(&s))
            .is_some_and(|s| s.expiry_interval > 0);
        let (session, session_present) = match existing {
            Some(session) if !connect.clean_start && resumable => (session, true), // [MQTT5-3.1.2-5] [MQTT311-3.1.2-4]
            Some(old) => {
                self.end_session(old, false, now); // [MQTT5-3.1.2-4] [MQTT311-3.1.2-6]
                (self.sessions.create(&client_id, version), false)
            }
            None => (self.sessions.create(&client_id, version), false),
        };
        if session_present {
            self.stats.clients_disconnected = self.stats.clients_disconnected.saturating_sub(1);
        }
        self.timers.cancel(TimerKey::SessionExpiry(session));
        self.timers.cancel(TimerKey::WillDelay(session)); // [MQTT5-3.1.3-9]
        let will = connect
            .will
            .as_ref()
            .zip(self.conns.get(&conn))
            .map(|(will, c)| {
                // A retained will remembers its client, as a retained PUBLISH does.
                let source = will.retain.then(|| {
                    let username = connect.username.as_ref().map(|u| u.to_string());
                    let (listener, identity) = (c.info.listener, c.info.tls_identity.clone());
                    RetainSource::new(client_id.clone(), username, listener, identity)
                });
                Will::from_connect(will, source)
            });
        if let Some(s) = self.sessions.get_mut(&session) {
            s.conn = Some(conn);
            s.version = version;
            s.bridge = connect.bridge;
            s.expiry_interval = expiry;
            s.will = will; // [MQTT5-3.1.2-7]
        }
        let keep_alive = self.negotiated_keep_alive(connect.keep_alive);
        let config = &self.config;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.phase = Phase::Connected(session);
        c.username = connect.username.as_deref().map(Box::from);
        c.keep_alive = keep_alive;
        let rules = config.rules(c.info.listener);
        let mut properties = Properties::default();
        if v5 {
            let p = &connect.properties;
            c.max_packet_size = p.maximum_packet_size.unwrap_or(u32::MAX);
            c.receive_maximum = p.receive_maximum.unwrap_or(u16::MAX);
            // The client's maximum bounds the aliases; the broker's own bounds their memory.
            let aliases = p.topic_alias_maximum.unwrap_or(0);
            c.outbound_aliases = OutboundAliases::new(aliases.min(rules.topic_alias_maximum));
            c.problem_information = p.request_problem_information != Some(0);
            properties.receive_maximum =
                (config.receive_maximum != u16::MAX).then_some(config.receive_maximum);
            properties.maximum_packet_size = Some(config.max_packet_size);
            properties.topic_alias_maximum =
                (rules.topic_alias_maximum > 0).then_some(rules.topic_alias_maximum);
            properties.retain_available = (!config.retain_available).then_some(0);
            // [MQTT5-3.2.2-9]
            properties.maximum_qos =
                (rules.maximum_qos != QoS::ExactlyOnce).then_some(rules.maximum_qos as u8);
            if assigned {
                // [MQTT5-3.1.3-7] [MQTT5-3.2.2-16]
                properties.assigned_client_identifier = MqttStr::try_from(client_id.clone()).ok();
            }
            if expiry != requested_expiry {
                properties.session_expiry_interval = Some(expiry);
            }
            if keep_alive != connect.keep_alive {
                properties.server_keep_alive = Some(keep_alive);
            }
            if c.auth_method.is_some() {
                properties.authentication_method = c.auth_method.as_deref().cloned(); // [MQTT5-4.12.0-5]
                properties.authentication_data = auth_data;
            }
        } else {
            c.receive_maximum = config.receive_maximum;
        }
        let keep_alive_deadline = c.keep_alive_deadline();
        self.arm_conn_timer(conn, keep_alive_deadline); // the CONNECT deadline goes

        let connack = ConnAck {
            // [MQTT5-3.2.2-2] [MQTT5-3.2.2-3] [MQTT311-3.2.2-1] [MQTT311-3.2.2-2]
            // [MQTT311-3.2.2-3]; 3.1 has no such flag.
            session_present: session_present && version != ProtocolVersion::V3_1,
            reason_code: ReasonCode::Success,
            properties,
        };
        // The record first: in `Sync` persistence the CONNACK confirming the session waits for
        // the batch that holds it (found by the simulator, seed 330: a CONNACK went out ahead of
        // its session's record and a power cut then lost the session).
        self.save_session(session, now);
        self.send_packet(conn, &Packet::ConnAck(connack), now);
        self.stats.clients_connected += 1;
        self.stats.clients_by_protocol[protocol_index(version)] += 1;
        self.stats.connects_accepted += 1;
        self.stats.clients_maximum = self.stats.clients_maximum.max(self.stats.clients_connected);
        if let (Some(s), Some(c)) = (self.sessions.get(&session), self.conns.get(&conn)) {
            let event = Event::ClientConnected {
                conn,
                client_id: Arc::clone(&s.client_id),
                session_present,
                username: c.username.clone(),
                protocol: c.version,
                keep_alive: c.keep_alive,
                info: c.info.clone(),
            };
            self.event(event);
        }
        if session_present {
            self.resend_inflight(session, conn, now);
        }
        self.pump(session, now);
    }

    /// Whether the client may publish its will where it asks to (never under `$SYS`).
    fn will_allowed(&mut self, conn: ConnectionId, client_id: &str, connect: &Connect) -> bool {
        let (Some(will), Some(c)) = (&connect.will, self.conns.get(&conn)) else {
            return true;
        };
        if super::publish::reserved_for_broker(will.topic.as_bytes()) {
            return false;
        }
        let client = ClientRef {
            client_id,
            username: connect.username.as_deref(),
            info: &c.info,
        };
        self.authorizer
            .authorize_publish(&client, &will.topic, will.qos, will.retain)
            == Authorization::Allow
    }

    /// The keep alive in force: the client's, lowered to the configured maximum.
    fn negotiated_keep_alive(&self, requested: u16) -> u16 {
        let max = self.config.max_keep_alive;
        if max > 0 && (requested == 0 || requested > max) {
            max
        } else {
            requested
        }
    }

    /// Disconnects the connection currently holding a session that a new CONNECT claims:
    /// DISCONNECT 0x8E for v5 [MQTT5-3.1.4-3], then close. The session itself stays.
    pub(crate) fn take_over(&mut self, old: ConnectionId, now: Instant) {
        if self.conns.get(&old).is_some_and(|c| c.version.is_v5()) {
            let packet = Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::SessionTakenOver,
                ..Disconnect::default()
            });
            self.send_packet(old, &packet, now);
        }
        self.detach_for_takeover(old, now);
        self.emit(Output::Close { conn: old });
    }
}
