//! Validated MQTT topic names and filters, and a wildcard subscription trie.
#![forbid(unsafe_code)]
