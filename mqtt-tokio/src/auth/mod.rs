//! Who may connect and what they may do: mosquitto-compatible password and ACL files.

pub mod acl;
pub mod hooks;
pub mod password;
