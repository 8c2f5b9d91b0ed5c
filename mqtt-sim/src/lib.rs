//! Deterministic simulation of the whole broker: the sans-IO core and the real store
//! (`mqtt-store` on redb) over a simulated disk, many simulated clients over a simulated
//! network, and a simulated clock, all driven by one seed. A run lets the clients do what real
//! ones do (MQTT 3.1, 3.1.1 and 5.0; clean and persistent sessions with expiry; QoS 0/1/2 both
//! ways; wildcards; retained messages; wills; takeovers; keep-alive timeouts; slow readers;
//! reconnects) while the seed injects faults (connections cut at any byte, half-open
//! connections, stalls, process crashes, power cuts that keep any subset of the unsynced
//! writes and tear one, failing fsyncs, a full disk), then heals everything and lets an
//! [`oracle`] check MQTT's guarantees. Every failure is a seed that replays exactly:
//!
//! ```
//! use mqtt_sim::{Options, run};
//!
//! let report = run(42, &Options::default());
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! assert!(report.counts.events > 0);
//! ```
//!
//! Not a dependency of any shipped crate: it exists to test them. `docs/TESTING.md` explains
//! how to run it, replay a seed and add a behaviour or a fault.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod disk;
pub mod oracle;
pub mod rng;
pub mod shrink;
pub mod world;

use std::time::Instant;

use mqtt_broker_core::persist::PersistRecord;

pub use shrink::shrink;
pub use world::Counts;

/// A deliberate fault in the system under test, to show the oracle notices (a mutation
/// check); none in a normal run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// The storage layer reports every batch durable as soon as the broker hands it over,
    /// before writing it.
    AckBeforeCommit,
    /// The storage layer carries on after a failed write or fsync as if it had succeeded.
    IgnoreFsyncError,
    /// The store does not keep inbound QoS 2 packet identifiers (a message resent with DUP
    /// after a restart is routed again).
    ForgetIncomingQos2,
    /// The store does not keep the clearing of a retained message (an old one comes back).
    ForgetRetainedClear,
    /// The store does not keep a session's subscriptions.
    ForgetSubscriptions,
    /// The store does not keep messages queued for persistent sessions.
    ForgetQueuedMessages,
}

impl Mutation {
    /// Every mutation, with its command-line name.
    pub const ALL: [(Mutation, &'static str); 6] = [
        (Mutation::AckBeforeCommit, "ack-before-commit"),
        (Mutation::IgnoreFsyncError, "ignore-fsync-error"),
        (Mutation::ForgetIncomingQos2, "forget-incoming-qos2"),
        (Mutation::ForgetRetainedClear, "forget-retained-clear"),
        (Mutation::ForgetSubscriptions, "forget-subscriptions"),
        (Mutation::ForgetQueuedMessages, "forget-queued-messages"),
    ];

    /// Whether the store under this mutation writes `record` (as given, or changed).
    pub(crate) fn filter(self, record: &PersistRecord) -> Option<PersistRecord> {
        match (self, record) {
            (Mutation::ForgetIncomingQos2, PersistRecord::IncomingQos2 { .. })
            | (Mutation::ForgetRetainedClear, PersistRecord::RetainedCleared { .. })
            | (Mutation::ForgetQueuedMessages, PersistRecord::MessageStored { .. }) => None,
            (Mutation::ForgetSubscriptions, PersistRecord::SessionSaved { client_id, record }) => {
                let mut record = record.clone();
                record.subscriptions.clear();
                Some(PersistRecord::SessionSaved {
                    client_id: client_id.clone(),
                    record,
                })
            }
            _ => Some(record.clone()),
        }
    }

    /// The mutation named `name`.
    pub fn named(name: &str) -> Option<Mutation> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(m, _)| *m)
    }
}

/// How the simulated broker keeps its state (docs/STORAGE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `durability sync`: nothing is acknowledged before it is on disk.
    Sync,
    /// `durability periodic`: every change is journaled (one `write`) before it is
    /// acknowledged, the store is made durable at checkpoints: a process crash loses nothing,
    /// a power cut what came after the last checkpoint.
    Periodic,
    /// No store: a crash loses everything.
    Memory,
}

/// What a run simulates.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simulated clients.
    pub clients: usize,
    /// Simulated milliseconds of activity (and faults) before everything heals.
    pub duration_ms: u64,
    /// Whether faults are injected.
    pub faults: bool,
    /// How the broker keeps its state; `None`: the seed chooses.
    pub durability: Option<Durability>,
    /// A deliberate fault to plant.
    pub mutation: Option<Mutation>,
    /// Events to keep for a failure's report (0: none).
    pub trace: usize,
    /// Faults left out, by their number in the run (sorted): see `Counts::faults`. The
    /// shrinker bisects the fault schedule with it.
    pub faults_off: Vec<u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            clients: 6,
            duration_ms: 60_000,
            faults: true,
            durability: None,
            mutation: None,
            trace: 0,
            faults_off: Vec::new(),
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Broken guarantees (empty when the run passed).
    pub violations: Vec<String>,
    /// What the run did.
    pub counts: Counts,
    /// The last events before the end, with `Options::trace`.
    pub trace: Vec<String>,
}

/// The instant simulated time starts from: any fixed point works, as the broker only compares
/// instants it was given.
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

/// Runs the simulation for `seed`.
pub fn run(seed: u64, opts: &Options) -> Report {
    let mut world = world::World::new(seed, opts.clone(), origin());
    let (violations, counts) = world.run();
    Report {
        seed,
        violations,
        counts,
        trace: world.trace().cloned().collect(),
    }
}

/// The command that replays `seed` with `opts`.
pub fn replay_command(seed: u64, opts: &Options) -> String {
    let mut cmd = format!(
        "cargo run -p mqtt-sim --release -- --seed {seed} --clients {} --duration {}",
        opts.clients,
        opts.duration_ms / 1000
    );
    if !opts.faults {
        cmd.push_str(" --no-faults");
    }
    if let Some(durability) = opts.durability {
        cmd.push_str(match durability {
            Durability::Sync => " --durable",
            Durability::Periodic => " --periodic",
            Durability::Memory => " --in-memory",
        });
    }
    if let Some(m) = opts.mutation {
        let name = Mutation::ALL
            .iter()
            .find(|(x, _)| *x == m)
            .map_or("?", |(_, n)| n);
        cmd.push_str(&format!(" --mutation {name}"));
    }
    if !opts.faults_off.is_empty() {
        let off: Vec<String> = opts.faults_off.iter().map(u64::to_string).collect();
        cmd.push_str(&format!(" --faults-off {}", off.join(",")));
    }
    cmd.push_str(" --trace 200");
    cmd
}
