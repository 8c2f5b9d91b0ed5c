//! [`LoadError`]: why a load run, or one of its connections, failed.

use std::fmt;
use std::io;

use mqtt_wire::{DecodeError, EncodeError, ReasonCode};

/// A failure of the load generator or of the broker under test.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// A socket operation failed.
    Io(io::Error),
    /// The broker sent bytes that are not valid MQTT.
    Decode(DecodeError),
    /// A packet could not be encoded (e.g. a topic too long).
    Encode(EncodeError),
    /// The broker closed the connection.
    Closed,
    /// The broker refused the CONNECT.
    Refused(ReasonCode),
    /// The broker refused a subscription.
    SubscribeRefused(ReasonCode),
    /// The broker answered with a packet that makes no sense at this point.
    Unexpected(&'static str),
    /// The broker did not answer in time.
    Timeout(&'static str),
    /// The options cannot describe a run.
    Options(String),
    /// The TLS settings cannot be used (a file, a certificate, a version or suite choice).
    Tls(String),
    /// The WebSocket upgrade failed.
    WebSocket(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "i/o error: {e}"),
            Self::Decode(e) => write!(f, "malformed packet from the broker: {e}"),
            Self::Encode(e) => write!(f, "cannot encode a packet: {e}"),
            Self::Closed => f.write_str("the broker closed the connection"),
            Self::Refused(code) => write!(f, "CONNECT refused: {code:?}"),
            Self::SubscribeRefused(code) => write!(f, "SUBSCRIBE refused: {code:?}"),
            Self::Unexpected(what) => write!(f, "unexpected packet: {what}"),
            Self::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Self::Options(why) => write!(f, "bad options: {why}"),
            Self::Tls(why) => write!(f, "TLS: {why}"),
            Self::WebSocket(why) => write!(f, "WebSocket upgrade failed: {why}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Decode(e) => Some(e),
            Self::Encode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for LoadError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<DecodeError> for LoadError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl From<EncodeError> for LoadError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}
