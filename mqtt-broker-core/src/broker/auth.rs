//! Authentication decisions that take more than one step: answers the caller gives later to a
//! deferred CONNECT, and the v5 AUTH exchange (during CONNECT and re-authentication), whose
//! steps may themselves be deferred to the caller.

use std::time::Instant;

use bytes::Bytes;
use mqtt_wire::{Auth, Connect, Packet, Properties, PropertyValues, ReasonCode};

use crate::broker::Broker;
use crate::conn::Phase;
use crate::error::{ApiMisuse, ProtocolViolation};
use crate::hooks::AuthStep;
use crate::ids::ConnectionId;
use crate::output::{AuthRequest, Output};

impl Broker {
    /// Answers an [`AuthRequest`](crate::AuthRequest): the client is let in (or, during
    /// re-authentication, stays in). Same as `continue_auth(conn, AuthStep::Success(None), now)`.
    pub fn accept_connect(&mut self, conn: ConnectionId, now: Instant) -> Result<(), ApiMisuse> {
        self.continue_auth(conn, AuthStep::Success(None), now)
    }

    /// Answers an [`AuthRequest`](crate::AuthRequest) with a refusal: CONNACK `reason` (a 3.1.1
    /// client gets the matching return code) then close, or DISCONNECT `reason` during
    /// re-authentication.
    pub fn reject_connect(
        &mut self,
        conn: ConnectionId,
        reason: ReasonCode,
        now: Instant,
    ) -> Result<(), ApiMisuse> {
        self.continue_auth(conn, AuthStep::Fail(reason), now)
    }

    /// Answers an [`AuthRequest`](crate::AuthRequest) with the next step: `Success`, `Fail`,
    /// `Continue` (send a challenge in AUTH 0x18; enhanced authentication only) or `Defer` again.
    pub fn continue_auth(
        &mut self,
        conn: ConnectionId,
        step: AuthStep,
        now: Instant,
    ) -> Result<(), ApiMisuse> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(ApiMisuse::UnknownConnection(conn.0))?;
        if !c.awaiting_decision {
            return Err(ApiMisuse::NoPendingAuthentication(conn.0));
        }
        match &step {
            AuthStep::Fail(reason) if !reason.is_error() => {
                return Err(ApiMisuse::NotAFailureReason(*reason));
            }
            AuthStep::Continue(_) if c.auth_method.is_none() => {
                return Err(ApiMisuse::NoAuthenticationMethod(conn.0));
            }
            AuthStep::Defer => return Ok(()),
            _ => {}
        }
        c.awaiting_decision = false;
        match std::mem::replace(&mut c.phase, Phase::AwaitingConnect) {
            Phase::Authenticating(connect) => {
                self.connect_auth_step(conn, connect, step, None, now)
            }
            other => {
                c.phase = other;
                self.reauth_step(conn, step, None, now);
            }
        }
        Ok(())
    }

    /// An AUTH during the v5 enhanced authentication of a CONNECT.
    pub(crate) fn handle_connect_auth(&mut self, conn: ConnectionId, auth: Auth, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let method = match &c.auth_method {
            Some(method) if !c.awaiting_decision => (**method).clone(),
            // No method [MQTT5-4.12.0-7], or the client did not wait for the server's AUTH.
            _ => {
                self.refuse(conn, ReasonCode::ProtocolError, now);
                return;
            }
        };
        if auth.reason_code != ReasonCode::ContinueAuthentication
            || auth.properties.authentication_method.as_ref() != Some(&method)
        {
            self.refuse(conn, ReasonCode::ProtocolError, now); // [MQTT5-4.12.0-3] [MQTT5-4.12.0-5]
            return;
        }
        let Phase::Authenticating(connect) =
            std::mem::replace(&mut c.phase, Phase::AwaitingConnect)
        else {
            return;
        };
        let data = auth.properties.authentication_data.clone();
        let step = self
            .enhanced_auth
            .step(&connect.client_id, &method, data.as_deref());
        self.connect_auth_step(conn, connect, step, data, now);
    }

    /// Applies one authentication step to a CONNECT waiting for CONNACK. `data` is the client's
    /// latest authentication data, passed on if the step is deferred to the caller.
    pub(crate) fn connect_auth_step(
        &mut self,
        conn: ConnectionId,
        connect: Box<Connect>,
        step: AuthStep,
        data: Option<Bytes>,
        now: Instant,
    ) {
        match step {
            AuthStep::Success(data) => self.complete_connect(conn, *connect, data, now),
            AuthStep::Fail(reason) => self.refuse(conn, reason, now), // [MQTT5-4.12.0-4]
            AuthStep::Continue(challenge) => {
                self.send_auth_challenge(
                    conn,
                    ReasonCode::ContinueAuthentication,
                    Some(challenge),
                    now,
                );
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.phase = Phase::Authenticating(connect);
                }
            }
            AuthStep::Defer => {
                let request = self.auth_request(conn, &connect, data);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.phase = Phase::Authenticating(connect);
                    c.awaiting_decision = true;
                }
                if let Some(request) = request {
                    self.out.push(Output::AuthRequest(request));
                }
            }
        }
    }

    /// An AUTH after CONNACK: v5 re-authentication [MQTT5-4.12.1-1].
    pub(crate) fn handle_reauth(
        &mut self,
        conn: ConnectionId,
        auth: Auth,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let violation = ProtocolViolation::new(
            "MQTT-4.12.1-1",
            "AUTH without the connection's authentication method",
            ReasonCode::ProtocolError,
        );
        let Some(c) = self.conns.get(&conn) else {
            return Ok(());
        };
        let Some(method) = c.auth_method.as_deref().cloned() else {
            return Err(violation);
        };
        if c.awaiting_decision || auth.properties.authentication_method.as_ref() != Some(&method) {
            return Err(violation);
        }
        let client_id = self.client_id_of(conn);
        let data = auth.properties.authentication_data.clone();
        let step = match auth.reason_code {
            ReasonCode::ReAuthenticate => {
                self.enhanced_auth
                    .start(&client_id, &method, data.as_deref())
            }
            ReasonCode::ContinueAuthentication => {
                self.enhanced_auth
                    .step(&client_id, &method, data.as_deref())
            }
            _ => return Err(violation),
        };
        self.reauth_step(conn, step, data, now);
        Ok(())
    }

    /// Applies one re-authentication step: AUTH 0x00 or 0x18, DISCONNECT on failure
    /// [MQTT5-4.12.1-2], or a request to the caller.
    fn reauth_step(
        &mut self,
        conn: ConnectionId,
        step: AuthStep,
        data: Option<Bytes>,
        now: Instant,
    ) {
        match step {
            AuthStep::Success(data) => {
                self.send_auth_challenge(conn, ReasonCode::Success, data, now)
            }
            AuthStep::Continue(challenge) => {
                self.send_auth_challenge(
                    conn,
                    ReasonCode::ContinueAuthentication,
                    Some(challenge),
                    now,
                );
            }
            AuthStep::Fail(reason) => self.disconnect(conn, reason, now),
            AuthStep::Defer => {
                let client_id = self.client_id_of(conn);
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.awaiting_decision = true;
                let request = AuthRequest {
                    conn,
                    info: c.info.clone(),
                    protocol: c.version,
                    client_id,
                    username: c.username.as_deref().map(str::to_owned),
                    password: None,
                    method: c.auth_method.as_ref().map(|m| m.to_string()),
                    data,
                    reauthentication: true,
                };
                self.out.push(Output::AuthRequest(request));
            }
        }
    }

    /// Sends AUTH with the connection's method [MQTT5-4.12.0-5].
    fn send_auth_challenge(
        &mut self,
        conn: ConnectionId,
        reason: ReasonCode,
        data: Option<Bytes>,
        now: Instant,
    ) {
        let method = self
            .conns
            .get(&conn)
            .and_then(|c| c.auth_method.as_deref().cloned());
        let auth = Auth {
            reason_code: reason, // [MQTT5-4.12.0-2]
            properties: Properties::from(PropertyValues {
                authentication_method: method,
                authentication_data: data,
                ..PropertyValues::default()
            }),
        };
        self.send_packet(conn, &Packet::Auth(auth), now);
    }

    /// What the caller needs to decide about a CONNECT.
    fn auth_request(
        &self,
        conn: ConnectionId,
        connect: &Connect,
        data: Option<Bytes>,
    ) -> Option<AuthRequest> {
        let c = self.conns.get(&conn)?;
        Some(AuthRequest {
            conn,
            info: c.info.clone(),
            protocol: connect.protocol,
            client_id: connect.client_id.to_string(),
            username: connect.username.as_ref().map(|u| u.to_string()),
            password: connect.password.clone(),
            method: c.auth_method.as_ref().map(|m| m.to_string()),
            data,
            reauthentication: false,
        })
    }

    /// The client identifier of a connected connection (empty otherwise).
    fn client_id_of(&self, conn: ConnectionId) -> String {
        self.conns
            .get(&conn)
            .and_then(|c| c.session())
            .and_then(|s| self.sessions.get(&s))
            .map(|s| s.client_id.to_string())
            .unwrap_or_default()
    }
}
