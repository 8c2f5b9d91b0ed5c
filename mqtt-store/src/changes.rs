//! Changes to the tables before they reach the file: each [`PersistRecord`] becomes one [`Op`]
//! (a key and, where it has one, the value in the file's own layout), and [`Changes`] folds any
//! number of ops into the net change per key, which one write transaction applies.
//!
//! Folding is what keeps both write paths cheap: a delivery stored and acknowledged between two
//! writes never reaches the file, and a journaled store (see `journal.rs`) that keeps its changes
//! in memory for a whole interval holds at most one entry per key of the durable state, not one
//! per record. That relies on one invariant of the core: a delivery number is never reused
//! within a session's life (numbers increase; a removed session's entries go with it), so a
//! delivery stored since the last write is not in the file, and removing it again needs no
//! tombstone.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use mqtt_broker_core::persist::PersistRecord;
use redb::{ReadableTable, WriteTransaction};

use crate::clock::WallClock;
use crate::error::DecodeFailure;
use crate::format::{
    Reader, STATE_LEN, Writer, encode_delivery, encode_retained, encode_session, encode_state,
};
use crate::tables::{INCOMING_QOS2, MESSAGES, RETAINED, SESSIONS};

/// One change of one table entry; values are in the layouts of `format.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `retained[topic] = value`.
    RetainedPut { topic: String, value: Vec<u8> },
    /// Remove `retained[topic]`.
    RetainedRemove { topic: String },
    /// `sessions[client] = value`.
    SessionPut { client: String, value: Vec<u8> },
    /// Remove the session and every delivery and QoS 2 identifier of `client`.
    SessionRemove { client: String },
    /// `messages[(client, number)] = value`.
    MessagePut {
        client: String,
        number: u64,
        value: Vec<u8>,
    },
    /// Rewrite the state header of `messages[(client, number)]`.
    MessageState {
        client: String,
        number: u64,
        state: [u8; STATE_LEN],
    },
    /// Remove `messages[(client, number)]`.
    MessageRemove { client: String, number: u64 },
    /// Insert (`pending`) or remove `incoming_qos2[(client, packet_id)]`.
    Qos2 {
        client: String,
        packet_id: u16,
        pending: bool,
    },
}

impl Op {
    /// The op of `record`, its times mapped to the wall clock by `clock`.
    pub(crate) fn of(record: &PersistRecord, clock: &WallClock) -> Option<Op> {
        Some(match record {
            PersistRecord::RetainedSet { topic, message } => Op::RetainedPut {
                topic: topic.clone(),
                value: encode_retained(message, clock),
            },
            PersistRecord::RetainedCleared { topic } => Op::RetainedRemove {
                topic: topic.clone(),
            },
            PersistRecord::SessionSaved { client_id, record } => Op::SessionPut {
                client: client_id.clone(),
                value: encode_session(record, clock),
            },
            PersistRecord::SessionRemoved { client_id } => Op::SessionRemove {
                client: client_id.clone(),
            },
            PersistRecord::MessageStored {
                client_id,
                number,
                delivery,
            } => Op::MessagePut {
                client: client_id.clone(),
                number: *number,
                value: encode_delivery(delivery, delivery.state, clock),
            },
            PersistRecord::MessageState {
                client_id,
                number,
                state,
            } => Op::MessageState {
                client: client_id.clone(),
                number: *number,
                state: encode_state(*state),
            },
            PersistRecord::MessageDone { client_id, number } => Op::MessageRemove {
                client: client_id.clone(),
                number: *number,
            },
            PersistRecord::IncomingQos2 {
                client_id,
                packet_id,
                pending,
            } => Op::Qos2 {
                client: client_id.clone(),
                packet_id: packet_id.get(),
                pending: *pending,
            },
            _ => return None,
        })
    }

    /// At least the bytes [`Op::encode`] writes.
    pub(crate) fn size_hint(&self) -> usize {
        let (key, value) = match self {
            Op::RetainedPut { topic, value } => (topic.len(), value.len()),
            Op::SessionPut { client, value } | Op::MessagePut { client, value, .. } => {
                (client.len(), value.len())
            }
            Op::RetainedRemove { topic } => (topic.len(), 0),
            Op::SessionRemove { client }
            | Op::MessageState { client, .. }
            | Op::MessageRemove { client, .. }
            | Op::Qos2 { client, .. } => (client.len(), 0),
        };
        key + value + 24
    }

    /// Appends the op to `w`: a tag byte, then its fields (strings and values as bytes after a
    /// varint length, numbers as varints).
    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            Op::RetainedPut { topic, value } => {
                w.u8(1);
                w.short_bytes(topic.as_bytes());
                w.short_bytes(value);
            }
            Op::RetainedRemove { topic } => {
                w.u8(2);
                w.short_bytes(topic.as_bytes());
            }
            Op::SessionPut { client, value } => {
                w.u8(3);
                w.short_bytes(client.as_bytes());
                w.short_bytes(value);
            }
            Op::SessionRemove { client } => {
                w.u8(4);
                w.short_bytes(client.as_bytes());
            }
            Op::MessagePut {
                client,
                number,
                value,
            } => {
                w.u8(5);
                w.short_bytes(client.as_bytes());
                w.varint(*number);
                w.short_bytes(value);
            }
            Op::MessageState {
                client,
                number,
                state,
            } => {
                w.u8(6);
                w.short_bytes(client.as_bytes());
                w.varint(*number);
                state.iter().for_each(|b| w.u8(*b));
            }
            Op::MessageRemove { client, number } => {
                w.u8(7);
                w.short_bytes(client.as_bytes());
                w.varint(*number);
            }
            Op::Qos2 {
                client,
                packet_id,
                pending,
            } => {
                w.u8(8);
                w.short_bytes(client.as_bytes());
                w.varint(u64::from(*packet_id));
                w.u8(u8::from(*pending));
            }
        }
    }

    /// Reads one op written by [`Op::encode`].
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Op, DecodeFailure> {
        Ok(match r.u8("journal op")? {
            1 => Op::RetainedPut {
                topic: r.short_string("topic")?,
                value: r.short_bytes("retained value")?.to_vec(),
            },
            2 => Op::RetainedRemove {
                topic: r.short_string("topic")?,
            },
            3 => Op::SessionPut {
                client: r.short_string("client identifier")?,
                value: r.short_bytes("session value")?.to_vec(),
            },
            4 => Op::SessionRemove {
                client: r.short_string("client identifier")?,
            },
            5 => Op::MessagePut {
                client: r.short_string("client identifier")?,
                number: r.varint("delivery number")?,
                value: r.short_bytes("delivery value")?.to_vec(),
            },
            6 => Op::MessageState {
                client: r.short_string("client identifier")?,
                number: r.varint("delivery number")?,
                state: r.array("delivery state")?,
            },
            7 => Op::MessageRemove {
                client: r.short_string("client identifier")?,
                number: r.varint("delivery number")?,
            },
            8 => Op::Qos2 {
                client: r.short_string("client identifier")?,
                packet_id: u16::try_from(r.varint("packet identifier")?)
                    .map_err(|_| DecodeFailure("packet identifier out of range".into()))?,
                pending: r.flag("pending flag")?,
            },
            tag => return Err(DecodeFailure(format!("unknown journal op {tag}"))),
        })
    }
}

/// Shortens one group of ops without changing what it does, before it is journaled: a
/// delivery stored in the group takes its later state changes into its stored value, and one
/// stored and removed within the group goes altogether (it never was in the file: see the
/// module documentation). Within a group a delivery is usually stored and sent together, so
/// this saves one op per durable delivery.
pub(crate) fn compact(ops: &mut Vec<Op>) {
    // Delivery number → index of the op that stored it in this group.
    let mut stored: HashMap<u64, usize> = HashMap::new();
    let mut dropped = vec![false; ops.len()];
    for i in 0..ops.len() {
        let (number, state) = match &ops[i] {
            Op::MessagePut { number, .. } => {
                stored.insert(*number, i);
                continue;
            }
            Op::SessionRemove { .. } => {
                stored.clear();
                continue;
            }
            Op::MessageState { number, state, .. } => (*number, Some(*state)),
            Op::MessageRemove { number, .. } => (*number, None),
            _ => continue,
        };
        let Some(&at) = stored.get(&number) else {
            continue;
        };
        let same_client = match (&ops[at], &ops[i]) {
            (
                Op::MessagePut { client: put, .. },
                Op::MessageState { client, .. } | Op::MessageRemove { client, .. },
            ) => put == client,
            _ => false,
        };
        let Op::MessagePut { value, .. } = &mut ops[at] else {
            continue;
        };
        if !same_client {
            continue;
        }
        match state {
            Some(state) if value.len() >= STATE_LEN => value[..STATE_LEN].copy_from_slice(&state),
            Some(_) => continue,
            None => {
                dropped[at] = true;
                stored.remove(&number);
            }
        }
        dropped[i] = true;
    }
    let mut at = 0;
    ops.retain(|_| {
        at += 1;
        !dropped[at - 1]
    });
}

/// The net change to one stored delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MessageWrite {
    /// Write this value (stored since the last write: not in the file).
    Put(Vec<u8>),
    /// Rewrite the state header of the value in the file.
    State([u8; STATE_LEN]),
    /// Remove it from the file.
    Remove,
}

/// Ops folded into the net change per key, in the order that keeps their meaning: removed
/// sessions' entries first, then every put and removal.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    retained: BTreeMap<String, Option<Vec<u8>>>,
    sessions: BTreeMap<String, Option<Vec<u8>>>,
    /// Clients whose deliveries and QoS 2 identifiers in the file are removed before the rest.
    cleared: BTreeSet<String>,
    /// Per client (one string comparison per op, not one per tree level), per number.
    messages: BTreeMap<String, BTreeMap<u64, MessageWrite>>,
    /// Per client, inbound QoS 2 identifiers to insert (`true`) or remove.
    incoming: BTreeMap<String, BTreeMap<u16, bool>>,
}

/// The entry of `client` in `map` (the op's own string becomes the key if it is new).
fn of_client<V: Default>(map: &mut BTreeMap<String, V>, client: String) -> &mut V {
    map.entry(client).or_default()
}

impl Changes {
    /// Folds `op` in after everything added before.
    pub(crate) fn add(&mut self, op: Op) {
        match op {
            Op::RetainedPut { topic, value } => {
                self.retained.insert(topic, Some(value));
            }
            Op::RetainedRemove { topic } => {
                self.retained.insert(topic, None);
            }
            Op::SessionPut { client, value } => {
                self.sessions.insert(client, Some(value));
            }
            Op::SessionRemove { client } => {
                self.messages.remove(client.as_str());
                self.incoming.remove(client.as_str());
                self.sessions.insert(client.clone(), None);
                self.cleared.insert(client);
            }
            Op::MessagePut {
                client,
                number,
                value,
            } => {
                of_client(&mut self.messages, client).insert(number, MessageWrite::Put(value));
            }
            Op::MessageState {
                client,
                number,
                state,
            } => match of_client(&mut self.messages, client).entry(number) {
                Entry::Occupied(mut entry) => match entry.get_mut() {
                    MessageWrite::Put(value) if value.len() >= STATE_LEN => {
                        value[..STATE_LEN].copy_from_slice(&state);
                    }
                    MessageWrite::State(old) => *old = state,
                    _ => {}
                },
                Entry::Vacant(entry) => {
                    entry.insert(MessageWrite::State(state));
                }
            },
            Op::MessageRemove { client, number } => {
                let stored_here = self
                    .messages
                    .get_mut(client.as_str())
                    .and_then(|numbers| numbers.remove_entry(&number).map(|e| (numbers, e)));
                match stored_here {
                    // Stored since the last write: the file never had it.
                    Some((numbers, (_, MessageWrite::Put(_)))) => {
                        if numbers.is_empty() {
                            self.messages.remove(client.as_str());
                        }
                    }
                    _ => {
                        of_client(&mut self.messages, client).insert(number, MessageWrite::Remove);
                    }
                }
            }
            Op::Qos2 {
                client,
                packet_id,
                pending,
            } => {
                of_client(&mut self.incoming, client).insert(packet_id, pending);
            }
        }
    }
}

impl Changes {
    /// Writes the net change into `tx`: the removed sessions' deliveries and QoS 2 identifiers
    /// first, then each table in key order.
    pub(crate) fn write(&self, tx: &WriteTransaction) -> Result<(), redb::Error> {
        let mut retained = tx.open_table(RETAINED)?;
        let mut sessions = tx.open_table(SESSIONS)?;
        let mut messages = tx.open_table(MESSAGES)?;
        let mut incoming = tx.open_table(INCOMING_QOS2)?;
        for client in &self.cleared {
            let id = client.as_str();
            messages.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            incoming.retain_in((id, 0)..=(id, u16::MAX), |_, _| false)?;
        }
        for (topic, value) in &self.retained {
            match value {
                Some(value) => retained
                    .insert(topic.as_str(), value.as_slice())
                    .map(drop)?,
                None => retained.remove(topic.as_str()).map(drop)?,
            }
        }
        for (client, value) in &self.sessions {
            match value {
                Some(value) => sessions
                    .insert(client.as_str(), value.as_slice())
                    .map(drop)?,
                None => sessions.remove(client.as_str()).map(drop)?,
            }
        }
        for (client, numbers) in &self.messages {
            for (number, write) in numbers {
                let key = (client.as_str(), *number);
                match write {
                    MessageWrite::Put(value) => messages.insert(key, value.as_slice()).map(drop)?,
                    MessageWrite::State(state) => {
                        let old = messages.get(key)?.map(|v| v.value().to_vec());
                        if let Some(mut value) = old
                            && value.len() >= STATE_LEN
                        {
                            value[..STATE_LEN].copy_from_slice(state);
                            messages.insert(key, value.as_slice())?;
                        }
                    }
                    MessageWrite::Remove => messages.remove(key).map(drop)?,
                }
            }
        }
        for (client, ids) in &self.incoming {
            for (packet_id, pending) in ids {
                let key = (client.as_str(), *packet_id);
                if *pending {
                    incoming.insert(key, ())?;
                } else {
                    incoming.remove(key)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_group_keeps_one_op_per_delivery_stored_in_it() {
        let put = |client: &str, number| Op::MessagePut {
            client: client.into(),
            number,
            value: vec![0, 0, 0, 9],
        };
        let sent = |client: &str, number| Op::MessageState {
            client: client.into(),
            number,
            state: [1, 7, 0],
        };
        let done = |client: &str, number| Op::MessageRemove {
            client: client.into(),
            number,
        };
        let mut ops = vec![
            put("a", 1),
            sent("a", 1),
            put("a", 2),
            sent("b", 2), // another client's delivery 2: kept
            done("a", 2),
            sent("a", 3), // stored before this group: kept
            Op::SessionRemove { client: "a".into() },
            done("a", 1), // after the removal: kept, it changes nothing
        ];
        compact(&mut ops);
        assert_eq!(
            ops,
            [
                Op::MessagePut {
                    client: "a".into(),
                    number: 1,
                    value: vec![1, 7, 0, 9]
                },
                sent("b", 2),
                sent("a", 3),
                Op::SessionRemove { client: "a".into() },
                done("a", 1),
            ]
        );
    }

    #[test]
    fn every_op_reads_back_as_written_at_the_edges_of_its_numbers() {
        let ops = [
            Op::RetainedPut {
                topic: "a/é".into(),
                value: vec![0; 300],
            },
            Op::RetainedRemove {
                topic: String::new(),
            },
            Op::SessionPut {
                client: "c".into(),
                value: vec![],
            },
            Op::SessionRemove { client: "c".into() },
            Op::MessagePut {
                client: "c".into(),
                number: u64::MAX,
                value: vec![7; 128],
            },
            Op::MessageState {
                client: "c".into(),
                number: 127,
                state: [1, 255, 255],
            },
            Op::MessageRemove {
                client: "c".into(),
                number: 128,
            },
            Op::Qos2 {
                client: "c".into(),
                packet_id: u16::MAX,
                pending: true,
            },
        ];
        let mut w = Writer::default();
        ops.iter().for_each(|op| op.encode(&mut w));
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        let back: Vec<Op> = ops.iter().map(|_| Op::decode(&mut r).unwrap()).collect();
        assert!(r.is_empty());
        assert_eq!(back, ops);
        // A truncated op, an unknown tag and an over-long varint are errors, not panics.
        for cut in 0..bytes.len() {
            let mut r = Reader::new(&bytes[..cut]);
            while !r.is_empty() {
                if Op::decode(&mut r).is_err() {
                    break;
                }
            }
        }
        assert!(Op::decode(&mut Reader::new(&[9])).is_err());
        assert!(
            Op::decode(&mut Reader::new(&[
                7, 1, b'c', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]))
            .is_err()
        );
    }
}
