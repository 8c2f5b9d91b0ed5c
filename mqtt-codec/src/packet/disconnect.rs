//! DISCONNECT.

use crate::properties::Properties;
use crate::reason::ReasonCode;

/// DISCONNECT. MQTT 3.x carries neither reason code nor properties (`Success`, empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason code (5.0); `Success` = normal disconnection.
    pub reason_code: ReasonCode,
    /// DISCONNECT properties (5.0).
    pub properties: Properties,
}
