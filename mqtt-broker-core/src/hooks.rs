//! Pluggable policy: who may connect, who may publish, subscribe or receive where (and whether a
//! retained message's publisher still may), and the v5 enhanced authentication exchange.
//!
//! Hooks are called synchronously and must not block. A decision that needs I/O (a database, an
//! HTTP call) answers [`AuthDecision::Defer`]: the broker then emits an
//! [`Output::AuthRequest`](crate::Output::AuthRequest) and waits, without blocking other
//! connections, for [`Broker::accept_connect`](crate::Broker::accept_connect) or
//! [`Broker::reject_connect`](crate::Broker::reject_connect). The defaults allow everything except
//! enhanced authentication, which they refuse with 0x8C (bad authentication method).

use bytes::Bytes;
use mqtt_wire::{ProtocolVersion, QoS, ReasonCode};

use crate::ids::ConnectionInfo;

/// The credentials of a CONNECT, as seen by an [`Authenticator`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConnectCredentials<'a> {
    /// Where the connection came from.
    pub info: &'a ConnectionInfo,
    /// The protocol version.
    pub protocol: ProtocolVersion,
    /// The client identifier as sent (empty when the broker will assign one).
    pub client_id: &'a str,
    /// User name, if any.
    pub username: Option<&'a str>,
    /// Password, if any.
    pub password: Option<&'a [u8]>,
}

/// An authentication decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// Let the client in.
    Accept,
    /// Refuse with this CONNACK reason (mapped to a 3.1.1 return code for older clients),
    /// e.g. `BadUserNameOrPassword` or `NotAuthorized`.
    Reject(ReasonCode),
    /// Decide later: the broker emits an `AuthRequest` and waits for the caller's answer.
    Defer,
}

/// Decides whether a CONNECT is accepted.
///
/// ```
/// use mqtt_broker_core::hooks::{AuthDecision, Authenticator, ConnectCredentials};
/// use mqtt_broker_core::{Broker, Config};
/// use mqtt_wire::ReasonCode;
///
/// /// Lets in the devices that know the house password.
/// struct House;
///
/// impl Authenticator for House {
///     fn authenticate(&mut self, credentials: &ConnectCredentials<'_>) -> AuthDecision {
///         match (credentials.username, credentials.password) {
///             (Some("tasmota"), Some(b"secret")) => AuthDecision::Accept,
///             _ => AuthDecision::Reject(ReasonCode::BadUserNameOrPassword),
///         }
///     }
/// }
///
/// let broker = Broker::new(Config::default()).with_authenticator(Box::new(House));
/// # let _ = broker;
/// ```
pub trait Authenticator: Send {
    /// Called once per CONNECT that passed the protocol checks.
    fn authenticate(&mut self, credentials: &ConnectCredentials<'_>) -> AuthDecision;
}

/// Accepts every client.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate(&mut self, _: &ConnectCredentials<'_>) -> AuthDecision {
        AuthDecision::Accept
    }
}

/// Who is asking, for an [`Authorizer`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ClientRef<'a> {
    /// The client identifier.
    pub client_id: &'a str,
    /// The user name given at CONNECT, if any.
    pub username: Option<&'a str>,
    /// The connection's origin.
    pub info: &'a ConnectionInfo,
}

/// An authorization decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// Go ahead.
    Allow,
    /// Refuse with this reason code (e.g. `NotAuthorized` 0x87; 3.1.1 SUBACK shows 0x80).
    Deny(ReasonCode),
}

/// Decides, per topic, whether a client may publish or subscribe.
///
/// ```
/// use mqtt_broker_core::hooks::{Authorization, Authorizer, ClientRef};
/// use mqtt_broker_core::{Broker, Config};
/// use mqtt_wire::{QoS, ReasonCode};
///
/// /// Each device publishes under its own `tele/<client id>/` only; anyone may subscribe.
/// struct OwnTopics;
///
/// impl Authorizer for OwnTopics {
///     fn authorize_publish(&mut self, client: &ClientRef<'_>, topic: &str, _: QoS, _: bool) -> Authorization {
///         let own = topic.strip_prefix("tele/").and_then(|rest| rest.strip_prefix(client.client_id));
///         if own.is_some_and(|rest| rest.starts_with('/')) {
///             Authorization::Allow
///         } else {
///             Authorization::Deny(ReasonCode::NotAuthorized)
///         }
///     }
///     fn authorize_subscribe(&mut self, _: &ClientRef<'_>, _: &str, _: QoS) -> Authorization {
///         Authorization::Allow
///     }
/// }
///
/// let broker = Broker::new(Config::default()).with_authorizer(Box::new(OwnTopics));
/// # let _ = broker;
/// ```
pub trait Authorizer: Send {
    /// May `client` publish to `topic`? A refusal acknowledges the PUBLISH with PUBACK/PUBREC
    /// carrying the reason (v5) or silently drops it (3.1.1) [MQTT311-3.3.5-2].
    fn authorize_publish(
        &mut self,
        client: &ClientRef<'_>,
        topic: &str,
        qos: QoS,
        retain: bool,
    ) -> Authorization;
    /// May `client` subscribe to `filter`? A refusal is a SUBACK failure code.
    fn authorize_subscribe(
        &mut self,
        client: &ClientRef<'_>,
        filter: &str,
        qos: QoS,
    ) -> Authorization;
    /// May a message published to `topic` be delivered to `client` (read access)? Asked for
    /// every copy when it goes out: routed, retained at subscribe, or leaving the session queue
    /// (so a revoked access also stops what was queued or retained before); not for resends of
    /// a copy already sent. A refusal silently skips this copy. It sits on the delivery hot
    /// path: answer without blocking or allocating. The default allows.
    fn authorize_delivery(
        &mut self,
        client: &ClientRef<'_>,
        topic: &str,
        qos: QoS,
        retain: bool,
    ) -> bool {
        let _ = (client, topic, qos, retain);
        true
    }
    /// May the client that published a retained message still publish it to `topic`? Asked
    /// before the message goes to a new subscriber, when
    /// [`Config::check_retain_source`](crate::Config::check_retain_source) is on (the default),
    /// with the publisher as recorded (`info.peer` is `None`: the publisher may be gone). A
    /// refusal removes the retained message and sends nothing (CVE-2018-12546: a write access
    /// revoked after publishing must not keep the message alive). The default asks
    /// [`authorize_publish`](Authorizer::authorize_publish) again.
    fn authorize_retained_source(
        &mut self,
        publisher: &ClientRef<'_>,
        topic: &str,
        qos: QoS,
    ) -> bool {
        self.authorize_publish(publisher, topic, qos, true) == Authorization::Allow
    }
}

impl Authorizer for AllowAll {
    fn authorize_publish(&mut self, _: &ClientRef<'_>, _: &str, _: QoS, _: bool) -> Authorization {
        Authorization::Allow
    }
    fn authorize_subscribe(&mut self, _: &ClientRef<'_>, _: &str, _: QoS) -> Authorization {
        Authorization::Allow
    }
}

/// One step of a v5 enhanced authentication exchange (AUTH packets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Done: accept, optionally with final authentication data for the CONNACK/AUTH.
    Success(Option<Bytes>),
    /// Send this challenge in an AUTH 0x18 and wait for the client's answer.
    Continue(Bytes),
    /// Refuse with this reason (CONNACK during connect, DISCONNECT on re-authentication).
    Fail(ReasonCode),
    /// Decide later: the broker emits an `AuthRequest` carrying the method and data, and waits
    /// for [`Broker::continue_auth`](crate::Broker::continue_auth).
    Defer,
}

/// The v5 enhanced authentication exchange for one authentication method.
pub trait EnhancedAuthenticator: Send {
    /// Whether `method` is supported; an unsupported method is refused with 0x8C.
    fn supports(&self, method: &str) -> bool;
    /// First step, from the CONNECT (or from an AUTH 0x19 re-authentication).
    fn start(&mut self, client_id: &str, method: &str, data: Option<&[u8]>) -> AuthStep;
    /// A further step, from an AUTH 0x18.
    fn step(&mut self, client_id: &str, method: &str, data: Option<&[u8]>) -> AuthStep;
}

/// Supports no authentication method: any CONNECT carrying one is refused with 0x8C
/// [MQTT5-4.12.0-1].
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEnhancedAuth;

impl EnhancedAuthenticator for NoEnhancedAuth {
    fn supports(&self, _: &str) -> bool {
        false
    }
    fn start(&mut self, _: &str, _: &str, _: Option<&[u8]>) -> AuthStep {
        AuthStep::Fail(ReasonCode::BadAuthenticationMethod)
    }
    fn step(&mut self, _: &str, _: &str, _: Option<&[u8]>) -> AuthStep {
        AuthStep::Fail(ReasonCode::BadAuthenticationMethod)
    }
}
