//! AUTH (MQTT 5.0 only): extended authentication exchange.

use crate::properties::Properties;
use crate::reason::ReasonCode;

/// AUTH.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// AUTH properties: authentication method and data, reason string, user properties.
    pub properties: Properties,
}
