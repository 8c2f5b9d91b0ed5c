//! Durable, crash-safe storage of retained messages and persistent sessions on redb.
#![forbid(unsafe_code)]
