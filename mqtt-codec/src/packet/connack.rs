//! CONNACK: the server's answer to CONNECT.

use crate::properties::Properties;
use crate::reason::ReasonCode;

/// CONNACK. In MQTT 3.x the return code is carried as the equivalent [`ReasonCode`]
/// (see [`crate::ConnectReturnCode`] for the mapping).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// Reason code (v5) or mapped return code (v3).
    pub reason_code: ReasonCode,
    /// CONNACK properties (5.0).
    pub properties: Properties,
}
