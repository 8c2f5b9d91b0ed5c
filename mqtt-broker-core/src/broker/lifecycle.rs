//! How connections and sessions end: DISCONNECT from the client, keep alive and CONNECT
//! deadlines, takeover, the will (at once or delayed), and session expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_topic::TopicName;
use mqtt_wire::{Disconnect, ReasonCode};

use crate::broker::Broker;
use crate::broker::connect::protocol_index;
use crate::conn::Phase;
use crate::error::ProtocolViolation;
use crate::ids::ConnectionId;
use crate::ids::SessionId;
use crate::message::Origin;
use crate::output::Event;
use crate::persist::PersistRecord;
use crate::timer::TimerKey;
use crate::will::Will;

impl Broker {
    /// DISCONNECT from the client: record the new session expiry (v5), discard the will unless
    /// the reason is 0x04 [MQTT-3.14.4-3] [MQTT-3.1.2-10], and close without answering.
    pub(crate) fn handle_disconnect(
        &mut self,
        conn: ConnectionId,
        session: SessionId,
        disconnect: Disconnect,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let max_expiry = self.config.max_session_expiry_interval;
        if let (Some(s), Some(requested)) = (
            self.sessions.get_mut(&session),
            disconnect.properties.session_expiry_interval,
        ) {
            if s.expiry_interval == 0 && requested != 0 {
                // §3.14.2.2.2: zero at CONNECT cannot become non-zero at DISCONNECT.
                return Err(ProtocolViolation::new(
                    "MQTT-3.14.2.2.2",
                    "session expiry set at DISCONNECT after 0 at CONNECT",
                    ReasonCode::ProtocolError,
                ));
            }
            s.expiry_interval = requested.min(max_expiry);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.clean_disconnect = disconnect.reason_code != ReasonCode::DisconnectWithWillMessage;
        }
        self.close(conn, disconnect.reason_code, now);
        Ok(())
    }

    /// Counts a connected client gone from `conn` (its session now offline).
    fn client_left(&mut self, conn: ConnectionId) {
        self.stats.clients_connected = self.stats.clients_connected.saturating_sub(1);
        self.stats.clients_disconnected += 1;
        if let Some(c) = self.conns.get(&conn) {
            let count = &mut self.stats.clients_by_protocol[protocol_index(c.version)];
            *count = count.saturating_sub(1);
        }
    }

    /// Detaches `conn` from everything: its timers, and its session if it had one.
    pub(crate) fn end_connection(&mut self, conn: ConnectionId, reason: ReasonCode, now: Instant) {
        self.arm_conn_timer(conn, None);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let clean = c.clean_disconnect;
        let phase = std::mem::replace(&mut c.phase, Phase::Closing);
        if let Phase::Connected(session) = phase {
            self.detach_session(conn, session, clean, reason, now);
        }
    }

    /// The session loses its connection: will, then expiry [MQTT5-3.1.2-23] [MQTT5-4.1.0-2]. A
    /// session kept copies its unacknowledged messages out of the read buffers they were
    /// published from (`Inflight::detach_pinned`).
    fn detach_session(
        &mut self,
        conn: ConnectionId,
        session: SessionId,
        clean: bool,
        reason: ReasonCode,
        now: Instant,
    ) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.conn != Some(conn) {
            return;
        }
        s.conn = None;
        if clean {
            s.will = None;
        }
        let client_id = s.client_id.clone();
        let expiry = s.expiry_interval;
        let will_delay = s.will.as_ref().map(|w| w.delay_interval);
        self.client_left(conn);
        self.event(Event::ClientDisconnected {
            conn,
            client_id,
            reason,
        });
        match will_delay {
            Some(0) => self.fire_will(session, now),
            // The will waits for its delay or the end of the session, whichever is first.
            Some(delay) if expiry > 0 && delay < expiry => {
                let after = Duration::from_secs(u64::from(delay));
                self.timers
                    .set_after(TimerKey::WillDelay(session), now, after);
            }
            _ => {}
        }
        self.redistribute_shared(session, None, now);
        if expiry == 0 {
            self.end_session(session, true, now);
        } else {
            // Kept offline, perhaps for long: what waits for acknowledgement lets go of the
            // read buffers it was sent from.
            if let Some(s) = self.sessions.get_mut(&session) {
                s.inflight.detach_pinned();
            }
            self.arm_session_expiry(session, now);
            self.save_session(session, now);
        }
    }

    /// Takeover: the old connection leaves its session to the new one. A will without delay
    /// fires; a delayed will is cancelled by the new connection [MQTT5-3.1.3-9].
    pub(crate) fn detach_for_takeover(&mut self, conn: ConnectionId, now: Instant) {
        self.arm_conn_timer(conn, None);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let phase = std::mem::replace(&mut c.phase, Phase::Closing);
        let Phase::Connected(session) = phase else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        s.conn = None;
        let client_id = s.client_id.clone();
        let fire = s.will.as_ref().is_some_and(|w| w.delay_interval == 0);
        if !fire {
            s.will = None;
        }
        self.client_left(conn);
        self.event(Event::ClientDisconnected {
            conn,
            client_id,
            reason: ReasonCode::SessionTakenOver,
        });
        if fire {
            self.fire_will(session, now);
        }
    }

    /// Arms the expiry of a disconnected session (never for `u32::MAX`).
    pub(crate) fn arm_session_expiry(&mut self, session: SessionId, now: Instant) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        if s.conn.is_some() || s.expiry_interval == u32::MAX {
            return;
        }
        let after = Duration::from_secs(u64::from(s.expiry_interval));
        self.timers
            .set_after(TimerKey::SessionExpiry(session), now, after);
    }

    /// Discards a session; a pending will is published first when `publish_will`
    /// [MQTT-3.1.2-8].
    pub(crate) fn end_session(&mut self, session: SessionId, publish_will: bool, now: Instant) {
        self.redistribute_shared(session, None, now);
        self.backpressure_session_ended(session);
        let Some(mut s) = self.sessions.remove(&session) else {
            return;
        };
        self.memory.removed(s.queue.len(), s.queue.bytes());
        self.timers.cancel(TimerKey::SessionExpiry(session));
        self.timers.cancel(TimerKey::WillDelay(session));
        for (text, _) in s.subscriptions.values() {
            if let Some(filter) = self.parsed_filter(text) {
                let change = self.router.remove(session, &filter);
                self.interest_changed(change);
            }
        }
        self.stats.subscriptions = self.router.len() as u64;
        if s.conn.is_none() {
            self.stats.clients_disconnected = self.stats.clients_disconnected.saturating_sub(1);
        }
        if s.persisted {
            self.persist(PersistRecord::SessionRemoved {
                client_id: s.client_id.to_string(),
            });
        }
        let will = if publish_will { s.will.take() } else { None };
        let client_id = s.client_id;
        self.event(Event::SessionEnded {
            client_id: Arc::clone(&client_id),
        });
        if let Some(will) = will {
            self.publish_will(will, client_id, now);
        }
    }

    /// Publishes the session's will now, if it still has one.
    pub(crate) fn fire_will(&mut self, session: SessionId, now: Instant) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let Some(will) = s.will.take() else {
            return;
        };
        let client_id = s.client_id.clone();
        self.save_session(session, now);
        self.publish_will(will, client_id, now);
    }

    fn publish_will(&mut self, will: Will, client_id: Arc<str>, now: Instant) {
        let message = will.into_message(client_id, now);
        // The topic was validated at CONNECT.
        if let Ok(topic) =
            TopicName::with_limits(message.topic.clone().into_bytes(), &self.topic_limits)
        {
            self.route(topic, message, Origin::Local, now);
        }
    }

    /// A connection that has not completed CONNECT in time is closed.
    pub(crate) fn connect_deadline(&mut self, conn: ConnectionId, now: Instant) {
        let waiting = self.conns.get(&conn).is_some_and(|c| {
            matches!(
                c.phase,
                Phase::AwaitingConnect | Phase::Authenticating(_) | Phase::Admitting(_)
            )
        });
        if waiting {
            self.close(conn, ReasonCode::MaximumConnectTime, now);
        }
    }

    /// Closes a connection silent for 1.5x its keep alive [MQTT5-3.1.2-22] [MQTT311-3.1.2-24], with DISCONNECT 0x8D
    /// for v5; the will is published.
    pub(crate) fn keep_alive_check(&mut self, conn: ConnectionId, now: Instant) {
        let Some(deadline) = self.conns.get(&conn).and_then(|c| c.keep_alive_deadline()) else {
            return;
        };
        if now >= deadline {
            self.disconnect(conn, ReasonCode::KeepAliveTimeout, now);
        } else {
            self.arm_conn_timer(conn, Some(deadline));
        }
    }
}
