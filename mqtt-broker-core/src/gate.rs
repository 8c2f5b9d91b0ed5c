//! The durability gate: the records of durable state not handed out yet, their batch numbers,
//! and the outputs that wait for a batch to be durable (see the `persist` module for which
//! outputs wait and why). It knows outputs and sessions by their handles only; the broker tells
//! it, with each output, whose session it is for.

use std::collections::{HashMap, HashSet, VecDeque};

use mqtt_wire::PacketType;

use crate::error::ApiMisuse;
use crate::ids::{ConnectionId, SessionId};
use crate::output::Output;
use crate::persist::{PersistBatch, PersistRecord};

/// Records not yet handed out, batch numbers, and the outputs held for durability.
#[derive(Debug)]
pub(crate) struct DurabilityGate {
    pending: Vec<PersistRecord>,
    /// Number the batch being filled will get.
    next_seq: u64,
    /// Highest batch reported durable.
    durable: u64,
    /// Outputs held, each with the batch it waits for (0: only for an earlier output on its
    /// connection).
    held: VecDeque<(u64, Output)>,
    /// How many outputs each connection has in `held`.
    held_per_conn: HashMap<ConnectionId, usize>,
    /// The newest batch holding a record of each session, while that batch is not durable.
    session_batches: HashMap<SessionId, u64>,
}

impl Default for DurabilityGate {
    fn default() -> Self {
        DurabilityGate {
            pending: Vec::new(),
            next_seq: 1,
            durable: 0,
            held: VecDeque::new(),
            held_per_conn: HashMap::new(),
            session_batches: HashMap::new(),
        }
    }
}

impl DurabilityGate {
    /// Adds `record` to the batch being filled, as a record of `session` when given.
    pub(crate) fn record(&mut self, record: PersistRecord, session: Option<SessionId>) {
        if let Some(session) = session {
            self.mark(session);
        }
        self.pending.push(record);
    }

    /// A record of `session` goes into the batch being filled.
    pub(crate) fn mark(&mut self, session: SessionId) {
        self.session_batches.insert(session, self.next_seq);
    }

    /// The records gathered since the last batch, as the next batch.
    pub(crate) fn take_batch(&mut self) -> Option<PersistBatch> {
        if self.pending.is_empty() {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let records = std::mem::take(&mut self.pending);
        Some(PersistBatch { seq, records })
    }

    /// Lets `output` (for a connection of `session`, if any) through now, or holds it: when it
    /// needs a batch that is not durable yet, or an earlier output of its connection is held.
    pub(crate) fn admit(&mut self, output: Output, session: Option<SessionId>) -> Option<Output> {
        let conn = output_conn(&output);
        let behind = conn.is_some_and(|c| self.held_per_conn.contains_key(&c));
        let awaited = if needs_durability(&output) {
            self.awaited(session)
        } else {
            0
        };
        if !behind && awaited <= self.durable {
            return Some(output);
        }
        if let Some(conn) = conn {
            *self.held_per_conn.entry(conn).or_default() += 1;
        }
        self.held.push_back((awaited, output));
        None
    }

    /// Every batch up to `seq` is durable: the outputs that waited for them go to `out`, in
    /// order, each once nothing before it on its connection is still held. `Err` for a batch
    /// number not handed out yet.
    pub(crate) fn persisted(
        &mut self,
        seq: u64,
        out: &mut VecDeque<Output>,
    ) -> Result<(), ApiMisuse> {
        if seq >= self.next_seq {
            return Err(ApiMisuse::UnknownPersistBatch(seq));
        }
        self.durable = self.durable.max(seq);
        let durable = self.durable;
        self.session_batches.retain(|_, batch| *batch > durable);
        let mut blocked: HashSet<ConnectionId> = HashSet::new();
        let mut still_held = VecDeque::new();
        for (awaited, output) in self.held.drain(..) {
            let conn = output_conn(&output);
            if awaited > durable || conn.is_some_and(|c| blocked.contains(&c)) {
                blocked.extend(conn);
                still_held.push_back((awaited, output));
                continue;
            }
            if let Some(conn) = conn
                && let Some(count) = self.held_per_conn.get_mut(&conn)
            {
                *count -= 1;
                if *count == 0 {
                    self.held_per_conn.remove(&conn);
                }
            }
            out.push_back(output);
        }
        self.held = still_held;
        Ok(())
    }

    /// `conn` is gone: its held outputs are dropped, as nothing can be written to it any more
    /// (and its identifier may be given to a new connection).
    pub(crate) fn forget(&mut self, conn: ConnectionId) {
        if self.held_per_conn.remove(&conn).is_some() {
            self.held
                .retain(|(_, output)| output_conn(output) != Some(conn));
        }
    }

    /// The batch an output for a connection of `session` produced now depends on: the batch
    /// being filled if the input being handled recorded anything (its own records); else the
    /// newest batch holding a record of `session` (a state this output confirms, such as an
    /// inbound QoS 2 identifier answered again), not the newest batch of anyone. Without a
    /// session (no CONNACK yet), the newest batch.
    fn awaited(&self, session: Option<SessionId>) -> u64 {
        if !self.pending.is_empty() {
            return self.next_seq;
        }
        match session {
            Some(session) => self.session_batches.get(&session).copied().unwrap_or(0),
            None => self.next_seq - 1,
        }
    }
}

/// The connection an output is for, if any.
pub(crate) fn output_conn(output: &Output) -> Option<ConnectionId> {
    match output {
        Output::Transmit { conn, .. } | Output::Close { conn } => Some(*conn),
        _ => None,
    }
}

/// Whether `output` acknowledges durable state or commits to a packet identifier that must be
/// durable first (see the `persist` module). Read from the first byte of the packet.
fn needs_durability(output: &Output) -> bool {
    let Output::Transmit { data, .. } = output else {
        return false;
    };
    let Some(&first) = data.first().and_then(|chunk| chunk.first()) else {
        return false;
    };
    match PacketType::try_from(first >> 4) {
        Ok(PacketType::Publish) => (first >> 1) & 0b11 == 2, // QoS 2
        Ok(
            PacketType::ConnAck
            | PacketType::PubAck
            | PacketType::PubRec
            | PacketType::PubRel
            | PacketType::PubComp
            | PacketType::SubAck
            | PacketType::UnsubAck,
        ) => true,
        _ => false,
    }
}
