//! The tables of the store file and their key types (`docs/STORAGE.md`, "Tables and keys").

use redb::TableDefinition;

/// Settings: the format version, and the last journal epoch written into the file.
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// Topic → retained value.
pub(crate) const RETAINED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("retained");
/// Client identifier → session value.
pub(crate) const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
/// (client identifier, delivery number) → delivery value.
pub(crate) const MESSAGES: TableDefinition<'_, (&str, u64), &[u8]> =
    TableDefinition::new("messages");
/// (client identifier, packet identifier) → nothing: inbound QoS 2 awaiting PUBREL.
pub(crate) const INCOMING_QOS2: TableDefinition<'_, (&str, u16), ()> =
    TableDefinition::new("incoming_qos2");

/// Key of the format version in `meta`.
pub(crate) const VERSION_KEY: &str = "format_version";
/// Key of the newest journal epoch whose entries are in the file, in `meta`.
pub(crate) const JOURNAL_KEY: &str = "journal_epoch";
