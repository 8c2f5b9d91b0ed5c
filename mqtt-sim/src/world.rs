//! The simulated world of one run: a clock, a network of connections, the broker's process
//! (the sans-IO [`Broker`] and its [`DurableStore`] on a [`SimDisk`]), the clients, the fault
//! schedule and the oracle, all driven by one event queue in time order. Nothing here reads a
//! clock, opens a socket or starts a thread: the seed decides everything.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use mqtt_broker_core::persist::{PersistBatch, Persistence};
use mqtt_broker_core::{Broker, Config, ConnectionId, ConnectionInfo, DropReason, Event, Output};
use mqtt_store::{Commit, DurableStore, WallClock};
use mqtt_wire::{
    Connect, Decoder, MqttStr, Packet, PacketId, Properties, ProtocolVersion, PublishQos, QoS,
    Subscribe, SubscriptionOptions,
};

use crate::client::{Client, Link, Out, msg_of};
use crate::disk::{Ending, SimDisk};
use crate::oracle::{Ms, MsgId, Oracle};
use crate::rng::Rng;
use crate::{Durability, Mutation, Options};

/// Where the store's file is said to be (it lives on the simulated disk; no journal is found
/// there).
const STORE_PATH: &str = "/nonexistent/mqtt-sim/broker.redb";

/// The connection the auditor reads the retained set on at the end.
const AUDITOR: u64 = u64::MAX - 1;

#[derive(Debug)]
enum Ev {
    /// Bytes from a client reach the broker.
    ToBroker(u64, Bytes),
    /// The client end of a connection closed (FIN) or the network dropped it: the broker
    /// learns it now.
    BrokerSeesClose(u64),
    /// Bytes from the broker reach the client.
    ToClient(u64, Bytes),
    /// The client learns its connection ended.
    ClientSeesClose(u64),
    /// A slow reader's stall ended: it reads what waits on the connection.
    Read(u64),
    /// The broker resumed reading a connection: it reads what waited.
    Unheld(u64),
    /// A client's next step.
    Client(usize),
    /// The broker's timer, set for this process.
    Timer(u64),
    /// The storage thread's group commit, for this process.
    Commit(u64),
    /// Periodic durability's checkpoint, for this process.
    Checkpoint(u64),
    /// The broker's process ends.
    Crash(Ending),
    /// The broker's process starts again.
    Restart,
    /// Faults stop; clients resume and read.
    Heal,
    /// A fresh client reads the retained set.
    Audit,
}

impl Ev {
    /// A number per kind of event, for the digest.
    fn kind(&self) -> u64 {
        match self {
            Ev::ToBroker(c, b) | Ev::ToClient(c, b) => c ^ (b.len() as u64) << 20,
            Ev::BrokerSeesClose(c) | Ev::ClientSeesClose(c) | Ev::Read(c) | Ev::Unheld(c) => c << 1,
            Ev::Client(c) => *c as u64,
            Ev::Timer(i) | Ev::Commit(i) => *i,
            Ev::Checkpoint(i) => i << 8,
            Ev::Crash(e) => *e as u64,
            Ev::Restart => 1,
            Ev::Heal => 2,
            Ev::Audit => 3,
        }
    }
}

/// One connection, as the network sees it.
#[derive(Debug)]
struct Conn {
    client: usize,
    /// The broker process that accepted it (`None`: refused, the broker was down).
    process: Option<u64>,
    /// The broker has not closed it (nor been told it closed).
    broker_open: bool,
    /// The client still uses it.
    client_open: bool,
    /// The client left it without telling anyone (half-open).
    abandoned: bool,
    /// When the last bytes in each direction arrive: a connection keeps its order.
    to_broker_at: Ms,
    to_client_at: Ms,
    /// Reading paused by the broker (backpressure): bytes (and the end of the stream, `None`)
    /// wait here.
    paused: bool,
    held: VecDeque<Option<Bytes>>,
    /// Bytes arrived that a slow reader has not read yet, oldest first.
    unread: VecDeque<Bytes>,
    /// A `Read` event is due for `unread`.
    read_scheduled: bool,
    /// Bytes of the client's reached the broker (its CONNECT, at least in part).
    delivered_any: bool,
    /// A normal DISCONNECT is among the bytes sent.
    disconnect_sent: bool,
    /// The broker accepted its CONNECT (a will exists only then).
    accepted: bool,
    /// The broker ended the connection (reported at once, even while its `Close` waits).
    ended: bool,
}

/// The broker's process.
struct Process {
    incarnation: u64,
    broker: Broker,
    store: DurableStore,
    disk: SimDisk,
    /// Batches waiting for the group commit.
    batches: Vec<PersistBatch>,
    commit_scheduled: bool,
    timer_at: Option<Ms>,
}

/// What a run did, for the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Events handled.
    pub events: u64,
    /// Messages published (including wills armed).
    pub messages: u64,
    /// Crashes and power cuts.
    pub crashes: u64,
    /// Connections opened.
    pub connections: u64,
    /// Simulated milliseconds.
    pub sim_ms: u64,
    /// Deliveries of acknowledged QoS 1/2 messages the oracle required at the end.
    pub owed: u64,
    /// Faults the run met (stalls, cut connections, crashes, power cuts, failing fsyncs, full
    /// disks), numbered from 0 in the order met, those left out by `Options::faults_off`
    /// included.
    pub faults: u64,
    /// A digest of the event sequence (time and kind of every event): two runs of a seed
    /// that differ here did not replay exactly.
    pub digest: u64,
}

/// Periodic durability: the store's journal (a real file in a directory of the run) and its
/// checkpoints.
struct Journaled {
    dir: PathBuf,
    /// Simulated milliseconds between checkpoints.
    interval: Ms,
    /// The last checkpoint: a power cut loses what was acknowledged after it.
    checkpoint_at: Ms,
}

impl Journaled {
    fn store(&self) -> PathBuf {
        self.dir.join("broker.redb")
    }
}

/// One run.
pub struct World {
    opts: Options,
    /// Periodic durability's journal, when the run uses it.
    journal: Option<Journaled>,
    rng: Rng,
    now: Ms,
    base: Instant,
    wall_base: SystemTime,
    seq: u64,
    queue: BinaryHeap<Reverse<(Ms, u64)>>,
    events: HashMap<u64, Ev>,
    process: Option<Process>,
    /// The disk the next process starts from.
    disk: SimDisk,
    incarnations: u64,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    clients: Vec<Client>,
    oracle: Oracle,
    next_msg: MsgId,
    healing: bool,
    /// The auditor's view of the retained set.
    audit: Option<(Decoder, BytesMut, BTreeMap<String, MsgId>)>,
    config: Config,
    /// A memory limit was found broken (reported once).
    limits_broken: bool,
    /// The last events, for a failure's report.
    trace: VecDeque<String>,
    counts: Counts,
}

impl World {
    /// A world for `seed`.
    pub fn new(seed: u64, opts: Options, base: Instant) -> World {
        let mut rng = Rng::new(seed);
        let durable = match opts.durability {
            Some(d) => d != Durability::Memory,
            None => rng.chance(80),
        };
        // Drawn apart, so that the seeds of the other modes run as before periodic mode was
        // simulated.
        let mut side = Rng::new(seed ^ 0x7065_7269_6f64_6963);
        let periodic = match opts.durability {
            Some(d) => d == Durability::Periodic,
            None => durable && side.chance(40),
        };
        let journal = periodic.then(|| Journaled {
            dir: std::env::temp_dir().join(format!("mqtt-sim-{}-{seed}", std::process::id())),
            interval: side.between(2_000, 20_000),
            checkpoint_at: 0,
        });
        let clients: Vec<Client> = (0..opts.clients)
            .map(|i| {
                let mut c = Client::new(i, rng.fork());
                if opts.trace > 0 {
                    c.log = Some(Vec::new());
                }
                c
            })
            .collect();
        let oracle = Oracle::new(clients.iter().map(|c| c.name.clone()).collect(), durable);
        let mut config = Config::default();
        config.persistence = if durable {
            Persistence::Sync
        } else {
            Persistence::Off
        };
        config.max_queued_messages = *rng.pick(&[1000, 1000, 20]);
        config.receive_maximum = *rng.pick(&[32, 4]);
        config.queue_qos0_messages = rng.chance(50);
        // A broker-wide memory limit in two runs of five (drawn apart, as above): small, so
        // that publishes are refused (v5: Quota exceeded; 3.x QoS 1/2: the connection closed)
        // while slow readers and offline sessions hold messages.
        config.memory_limit = *side.pick(&[0, 0, 0, 1024, 2048]);
        World {
            opts,
            journal,
            rng,
            now: 0,
            base,
            wall_base: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            process: None,
            disk: SimDisk::new(),
            incarnations: 0,
            conns: BTreeMap::new(),
            next_conn: 0,
            clients,
            oracle,
            next_msg: 0,
            healing: false,
            audit: None,
            config,
            limits_broken: false,
            trace: VecDeque::new(),
            counts: Counts::default(),
        }
    }

    fn at(&self, ms: Ms) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    fn wall(&self) -> SystemTime {
        self.wall_base + Duration::from_millis(self.now)
    }

    fn to_ms(&self, at: Instant) -> Ms {
        let d = at.saturating_duration_since(self.base);
        // Round up: a timer must not fire before its deadline.
        (d.as_nanos().div_ceil(1_000_000)) as Ms
    }

    fn schedule(&mut self, at: Ms, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at.max(self.now), self.seq)));
        self.events.insert(self.seq, ev);
    }

    /// Whether the fault the run meets now happens: it does unless `Options::faults_off`
    /// leaves its number out (the shrinker's bisection of the fault schedule). Every fault site
    /// asks once, after the seed has chosen the fault.
    fn fault(&mut self, what: &str) -> bool {
        let number = self.counts.faults;
        self.counts.faults += 1;
        let on = self.opts.faults_off.binary_search(&number).is_err();
        self.note(|| {
            format!(
                "fault {number}: {what}{}",
                if on { "" } else { " (left out)" }
            )
        });
        on
    }

    fn note(&mut self, text: impl FnOnce() -> String) {
        if self.opts.trace > 0 {
            if self.trace.len() == self.opts.trace {
                self.trace.pop_front();
            }
            let line = format!("{:>8} {}", self.now, text());
            self.trace.push_back(line);
        }
    }

    /// The last events of the run (with `Options::trace`).
    pub fn trace(&self) -> impl Iterator<Item = &String> {
        self.trace.iter()
    }

    fn latency(&mut self) -> Ms {
        if self.opts.faults && !self.healing && self.rng.chance(2) {
            let stall = self.rng.between(200, 3000);
            if self.fault("stall") {
                return stall;
            }
            1 + stall % 15
        } else {
            self.rng.between(1, 15)
        }
    }

    /// Runs the whole schedule; returns the violations found.
    pub fn run(&mut self) -> (Vec<String>, Counts) {
        self.start_process();
        for c in 0..self.clients.len() {
            let at = self.rng.below(500);
            self.schedule(at, Ev::Client(c));
        }
        let active = self.opts.duration_ms;
        if self.opts.faults {
            let mut t = 0;
            loop {
                t += self.rng.between(2_000, 30_000);
                if t >= active {
                    break;
                }
                let ending = if self.rng.chance(50) {
                    Ending::ProcessCrash
                } else {
                    Ending::PowerCut
                };
                self.schedule(t, Ev::Crash(ending));
            }
        }
        self.schedule(active, Ev::Heal);
        let end = active + 60_000;
        self.schedule(end - 10_000, Ev::Audit);
        while let Some(Reverse((at, seq))) = self.queue.pop() {
            if at > end {
                break;
            }
            self.now = at;
            let Some(ev) = self.events.remove(&seq) else {
                continue;
            };
            self.counts.events += 1;
            self.counts.digest = (self.counts.digest ^ at ^ (ev.kind() << 56))
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(5);
            self.handle(ev);
            if self.opts.trace > 0 {
                for i in 0..self.clients.len() {
                    let lines = self.clients[i]
                        .log
                        .as_mut()
                        .map(std::mem::take)
                        .unwrap_or_default();
                    for line in lines {
                        self.note(|| line);
                    }
                }
            }
        }
        self.counts.sim_ms = end;
        self.counts.messages = self.next_msg;
        for (i, c) in self.clients.iter().enumerate() {
            if matches!(c.link(), Link::Up(_)) {
                self.oracle.up_at_end(i);
            }
        }
        let retained = self
            .audit
            .take()
            .map(|(_, _, retained)| retained)
            .unwrap_or_default();
        let violations = self.oracle.finish(&retained, end);
        self.counts.owed = self.oracle.owed_checked();
        (violations, self.counts)
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::ToBroker(conn, bytes) => self.arrive_at_broker(conn, bytes),
            Ev::BrokerSeesClose(conn) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if !c.broker_open || c.process != self.process.as_ref().map(|p| p.incarnation) {
                    return;
                }
                if c.paused || !c.held.is_empty() {
                    // Not reading, the broker does not see the end of the stream either.
                    c.held.push_back(None);
                    return;
                }
                self.broker_sees_close(conn);
            }
            Ev::ToClient(conn, bytes) => self.arrive_at_client(conn, bytes),
            Ev::Read(conn) => self.read(conn),
            Ev::Unheld(conn) => self.unheld(conn),
            Ev::ClientSeesClose(conn) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if !c.client_open {
                    return;
                }
                c.client_open = false;
                let client = c.client;
                self.note(|| format!("c{client} sees conn {conn} close"));
                self.clients[client].closed(conn, self.now, &mut self.oracle);
            }
            Ev::Client(c) => self.client_step(c),
            Ev::Timer(incarnation) => {
                let now = self.now;
                let at = self.at(now);
                if let Some(p) = self.process.as_mut().filter(|p| {
                    p.incarnation == incarnation && p.timer_at.is_some_and(|t| t <= now)
                }) {
                    p.timer_at = None;
                    p.broker.handle_timeout(at);
                    self.drain();
                }
            }
            Ev::Commit(incarnation) => self.commit(incarnation),
            Ev::Checkpoint(incarnation) => self.checkpoint(incarnation),
            Ev::Crash(ending) => {
                let what = match ending {
                    Ending::ProcessCrash => "process crash",
                    Ending::PowerCut => "power cut",
                };
                if self.fault(what) {
                    self.crash(ending);
                }
            }
            Ev::Restart => {
                if self.process.is_none() {
                    self.start_process();
                }
            }
            Ev::Heal => {
                self.healing = true;
                self.note(|| "heal".to_owned());
                if self.process.is_none() {
                    self.start_process();
                }
                for c in &mut self.clients {
                    c.heal();
                }
            }
            Ev::Audit => self.audit(),
        }
    }

    /// The broker reads the end of `conn`'s stream (FIN, reset, or the network's failure).
    fn broker_sees_close(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.broker_open = false;
        c.held.clear();
        let (client, clean) = (c.client, c.disconnect_sent || !c.accepted);
        self.note(|| format!("broker sees conn {conn} close"));
        if !clean && !self.has_other_connection(client, conn) {
            self.oracle.abnormal_end(conn, self.now);
        }
        let now = self.at(self.now);
        if let Some(p) = &mut self.process {
            p.broker
                .handle_closed(ConnectionId(conn), now)
                .unwrap_or_else(|e| panic!("handle_closed: {e}"));
        }
        self.drain();
    }

    /// Whether `client` has a connection besides `conn` (a takeover, whose will the oracle
    /// leaves alone).
    fn has_other_connection(&self, client: usize, conn: u64) -> bool {
        self.conns
            .iter()
            .any(|(id, c)| *id != conn && c.client == client && c.client_open)
    }

    // ---- the broker's process ----

    fn start_process(&mut self) {
        self.incarnations += 1;
        let incarnation = self.incarnations;
        let disk = self.disk.clone();
        if self.opts.faults
            && self.opts.mutation == Some(Mutation::IgnoreFsyncError)
            && self.rng.chance(50)
        {
            let n = self.rng.between(5, 40);
            if self.fault("fsync fails (planted)") {
                disk.fail_sync_after(n);
            }
        }
        if self.opts.faults && !self.healing {
            match self.rng.below(20) {
                0 => {
                    let n = self.rng.between(5, 60);
                    if self.fault("fsync fails") {
                        disk.fail_sync_after(n);
                    }
                }
                1 => {
                    let room = self.rng.index(64 * 1024);
                    if self.fault("disk fills up") {
                        disk.fill_up_after(room);
                    }
                }
                _ => {}
            }
        }
        let path = self
            .journal
            .as_ref()
            .map_or_else(|| PathBuf::from(STORE_PATH), Journaled::store);
        if let Some(j) = &self.journal {
            std::fs::create_dir_all(&j.dir).unwrap_or_else(|e| panic!("{}: {e}", j.dir.display()));
        }
        let store = match DurableStore::open_on(disk.clone(), &path) {
            Ok(store) => store,
            Err(e) if !e.is_corrupt() => {
                // The broker refuses to start (a full disk, a failing fsync); the operator
                // makes room and starts it again.
                self.note(|| format!("the broker does not start: {e}"));
                self.disk = disk.after(Ending::ProcessCrash, &mut self.rng);
                let later = self.now + self.rng.between(1000, 5000);
                self.schedule(later, Ev::Restart);
                return;
            }
            Err(e) => {
                let text = format!("the store does not open after a restart: {e}");
                self.oracle_violation(text);
                // Nothing more to learn from this run: end it.
                self.queue.clear();
                return;
            }
        };
        let broker = Broker::try_new(self.config.clone())
            .unwrap_or_else(|e| panic!("the simulator's configuration is invalid: {e}"));
        let now = self.at(self.now);
        let mut process = Process {
            incarnation,
            broker,
            store,
            disk,
            batches: Vec::new(),
            commit_scheduled: false,
            timer_at: None,
        };
        if self.config.persistence == Persistence::Sync {
            match process.store.load(now) {
                Ok(state) => process.broker.restore(state, now, self.wall()),
                Err(e) => {
                    self.oracle_violation(format!("the store cannot be read after a restart: {e}"));
                    self.queue.clear();
                    return;
                }
            }
        }
        self.note(|| format!("broker process {incarnation} starts"));
        self.process = Some(process);
        if let Some(j) = &mut self.journal {
            // Opening wrote what the journal held into the file, durably.
            j.checkpoint_at = self.now;
            let at = self.now + j.interval;
            self.schedule(at, Ev::Checkpoint(incarnation));
        }
        self.drain();
    }

    fn oracle_violation(&mut self, text: String) {
        let now = self.now;
        self.oracle.seen(now, text);
    }

    fn crash(&mut self, ending: Ending) {
        let Some(process) = self.process.take() else {
            return;
        };
        self.counts.crashes += 1;
        self.note(|| format!("broker crash: {ending:?}"));
        self.disk = process.disk.after(ending, &mut self.rng);
        drop(process);
        self.oracle.crashed(self.now);
        if ending == Ending::PowerCut {
            self.cut_journal();
        }
        let open: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.broker_open)
            .map(|(id, _)| *id)
            .collect();
        for conn in open {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.broker_open = false;
            }
            let delay = match ending {
                // The kernel resets the sockets of a dead process.
                Ending::ProcessCrash => self.rng.between(1, 10),
                // A dead machine says nothing: the clients notice by their own timers.
                Ending::PowerCut => self.rng.between(500, 8000),
            };
            self.schedule(self.now + delay, Ev::ClientSeesClose(conn));
        }
        let down = self.rng.between(100, 4000);
        self.schedule(self.now + down, Ev::Restart);
    }

    /// The storage thread: writes every waiting batch in one durable transaction, then
    /// reports the newest durable.
    fn commit(&mut self, incarnation: u64) {
        let clock = WallClock::new(self.base, self.wall_base);
        let now = self.at(self.now);
        let mutation = self.opts.mutation;
        let how = if self.journal.is_some() {
            Commit::Journaled
        } else {
            Commit::Durable
        };
        let Some(p) = self.process_of(incarnation) else {
            return;
        };
        p.commit_scheduled = false;
        let batches = std::mem::take(&mut p.batches);
        let Some(last) = batches.last().map(|b| b.seq) else {
            return;
        };
        let written = match mutation {
            Some(m) => p.store.apply(
                batches
                    .iter()
                    .flat_map(|b| b.records.iter())
                    .filter_map(|r| m.filter(r))
                    .collect::<Vec<_>>()
                    .iter(),
                &clock,
                how,
            ),
            None => p
                .store
                .apply(batches.iter().flat_map(|b| b.records.iter()), &clock, how),
        };
        if self.opts.trace > 0 {
            let ok = written.is_ok();
            self.note(|| format!("commit up to batch {last}: {ok}"));
        }
        let Some(p) = self.process_of(incarnation) else {
            return;
        };
        match written {
            Ok(()) => {
                if mutation != Some(Mutation::AckBeforeCommit) {
                    p.broker
                        .handle_persisted(last, now)
                        .unwrap_or_else(|e| panic!("handle_persisted: {e}"));
                }
                self.drain();
            }
            Err(e) if mutation == Some(Mutation::IgnoreFsyncError) => {
                p.broker
                    .handle_persisted(last, now)
                    .unwrap_or_else(|e| panic!("handle_persisted: {e}"));
                self.note(|| format!("store error ignored: {e}"));
                self.drain();
            }
            Err(e) => {
                // As the storage thread does: a store that cannot write stops the broker, which
                // must not acknowledge what is not durable.
                self.note(|| format!("store error, the broker stops: {e}"));
                self.crash(Ending::PowerCut);
            }
        }
    }

    /// The broker's process, if it is still incarnation `incarnation` (an event of a process
    /// that crashed since finds none).
    fn process_of(&mut self, incarnation: u64) -> Option<&mut Process> {
        self.process
            .as_mut()
            .filter(|p| p.incarnation == incarnation)
    }

    /// Periodic durability: the store writes what it journaled into the file, durably.
    fn checkpoint(&mut self, incarnation: u64) {
        let Some(p) = self.process_of(incarnation) else {
            return;
        };
        match p.store.sync() {
            Ok(()) => {
                if let Some(j) = &mut self.journal {
                    j.checkpoint_at = self.now;
                    let at = self.now + j.interval;
                    self.schedule(at, Ev::Checkpoint(incarnation));
                }
                self.note(|| "checkpoint".to_owned());
            }
            Err(e) => {
                self.note(|| format!("checkpoint failed, the broker stops: {e}"));
                self.crash(Ending::PowerCut);
            }
        }
    }

    /// A power cut: the journal was never synced, so any tail of it may be gone.
    fn cut_journal(&mut self) {
        let Some(j) = &self.journal else {
            return;
        };
        let path = DurableStore::journal_path(j.store());
        let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) else {
            return;
        };
        let keep = self.rng.below(len + 1);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        file.set_len(keep)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let since = j.checkpoint_at;
        self.note(|| format!("journal cut to {keep} of {len} bytes; last checkpoint {since} ms"));
        self.oracle.power_cut(since, self.now);
    }

    /// Drains the broker's outputs, as the driving-loop rule says, and sets its timer.
    fn drain(&mut self) {
        loop {
            let Some(p) = self.process.as_mut() else {
                return;
            };
            let Some(output) = p.broker.poll_output() else {
                break;
            };
            self.output(output);
        }
        self.check_limits();
        let Some(p) = self.process.as_ref() else {
            return;
        };
        if let Some(deadline) = p.broker.poll_timeout() {
            let at = self.to_ms(deadline).max(self.now);
            let incarnation = p.incarnation;
            if p.timer_at.is_none_or(|t| at < t) {
                if let Some(p) = self.process.as_mut() {
                    p.timer_at = Some(at);
                }
                self.schedule(at, Ev::Timer(incarnation));
            }
        }
    }

    /// Session queues stay within `max_queued_messages`, and the broker's count of queued
    /// messages (what `memory_limit` is enforced with) agrees with its sessions' queues. (The
    /// broker's own view: how much it holds is the one thing the outside cannot see.)
    fn check_limits(&mut self) {
        let Some(p) = self.process.as_ref() else {
            return;
        };
        if self.limits_broken {
            return; // reported once a run
        }
        let most = self.config.max_queued_messages;
        let mut found = Vec::new();
        let mut queued = 0;
        for session in p.broker.sessions() {
            queued += session.queued();
            if session.queued() > most {
                found.push(format!(
                    "{} has {} messages queued, more than max_queued_messages ({most})",
                    session.client_id(),
                    session.queued()
                ));
            }
        }
        let counted = p.broker.stats().messages_queued;
        if counted != queued as u64 {
            found.push(format!(
                "the broker counts {counted} messages queued for its memory limit; its sessions hold {queued}"
            ));
        }
        self.limits_broken = !found.is_empty();
        for text in found {
            self.oracle_violation(text);
        }
    }

    fn output(&mut self, output: Output) {
        let now = self.at(self.now);
        match output {
            Output::Transmit { conn, data } => {
                let conn = conn.0;
                let bytes = if data.len() == 1 {
                    data.into_iter().next().unwrap_or_default()
                } else {
                    let mut all = BytesMut::new();
                    for chunk in &data {
                        all.extend_from_slice(chunk);
                    }
                    all.freeze()
                };
                if conn == AUDITOR {
                    self.audit_read(&bytes);
                    return;
                }
                if self.opts.trace > 0 {
                    let held = self.conns.get(&conn).map(|c| c.to_client_at);
                    self.note(|| {
                        format!(
                            "broker -> conn {conn}: {} bytes {:02x?} (after {held:?})",
                            bytes.len(),
                            &bytes[..bytes.len().min(6)]
                        )
                    });
                }
                let lat = self.latency();
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.abandoned || !c.client_open {
                    return; // nobody reads: never flushed
                }
                c.to_client_at = c.to_client_at.max(self.now + lat);
                let at = c.to_client_at;
                self.schedule(at, Ev::ToClient(conn, bytes));
            }
            Output::Close { conn } => {
                let conn = conn.0;
                if let Some(p) = self.process.as_mut() {
                    p.broker
                        .handle_closed(ConnectionId(conn), now)
                        .unwrap_or_else(|e| panic!("handle_closed: {e}"));
                }
                if conn == AUDITOR {
                    return;
                }
                let lat = self.latency();
                let mut abnormal = None;
                if let Some(c) = self.conns.get_mut(&conn) {
                    if c.broker_open && c.accepted && !c.disconnect_sent {
                        abnormal = Some(c.client);
                    }
                    c.broker_open = false;
                    c.to_client_at = c.to_client_at.max(self.now + lat);
                    let at = c.to_client_at;
                    self.schedule(at, Ev::ClientSeesClose(conn));
                }
                if let Some(client) = abnormal {
                    // Closed by the broker (keep alive, protocol error): a will may be due,
                    // except after a takeover, which the oracle leaves alone.
                    if !self.has_other_connection(client, conn) {
                        self.oracle.abnormal_end(conn, self.now);
                    }
                }
            }
            Output::Persist(batch) => {
                if self.opts.trace > 0 {
                    let kinds: Vec<String> = batch
                        .records
                        .iter()
                        .map(|r| format!("{r:?}").chars().take(60).collect())
                        .collect();
                    self.note(|| format!("persist batch {}: {kinds:?}", batch.seq));
                }
                let mutation = self.opts.mutation;
                let latency = self.rng.between(1, 8);
                let Some(p) = self.process.as_mut() else {
                    return;
                };
                if mutation == Some(Mutation::AckBeforeCommit) {
                    p.broker
                        .handle_persisted(batch.seq, now)
                        .unwrap_or_else(|e| panic!("handle_persisted: {e}"));
                }
                p.batches.push(batch);
                if !p.commit_scheduled {
                    p.commit_scheduled = true;
                    let incarnation = p.incarnation;
                    self.schedule(self.now + latency, Ev::Commit(incarnation));
                }
            }
            Output::PauseReading { conn } => {
                self.note(|| format!("broker pauses reading {conn}"));
                if let Some(c) = self.conns.get_mut(&conn.0) {
                    c.paused = true;
                }
            }
            Output::ResumeReading { conn } => {
                self.note(|| format!("broker resumes reading {conn}"));
                let conn = conn.0;
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.paused = false;
                    if !c.held.is_empty() {
                        self.schedule(self.now, Ev::Unheld(conn));
                    }
                }
            }
            // The broker ended the connection (whatever it still sends, held or not): bytes
            // that reach it later, a DISCONNECT included, are not read.
            Output::Event(Event::ClientDisconnected { conn, reason, .. }) => {
                self.note(|| format!("broker ends {conn}: {reason:?}"));
                if let Some(c) = self.conns.get_mut(&conn.0) {
                    c.ended = true;
                }
            }
            Output::Event(Event::ClientConnected { conn, .. }) => {
                if let Some(c) = self.conns.get_mut(&conn.0) {
                    c.accepted = true;
                }
            }
            // QoS 0 meeting a full outbox is dropped by design and owed nothing; any other
            // drop (a full queue) makes the client's losses allowed, as documented.
            Output::Event(Event::MessageDropped { client_id, reason })
                if reason != DropReason::OutboxFull =>
            {
                self.oracle.dropped_for(&client_id);
            }
            _ => {}
        }
    }

    // ---- the network ----

    /// `conn`, if the running broker process has it open.
    fn open_at_broker(&mut self, conn: u64) -> Option<&mut Conn> {
        let incarnation = self.process.as_ref().map(|p| p.incarnation);
        self.conns
            .get_mut(&conn)
            .filter(|c| c.broker_open && c.process == incarnation)
    }

    fn arrive_at_broker(&mut self, conn: u64, bytes: Bytes) {
        let Some(c) = self.open_at_broker(conn) else {
            return;
        };
        if c.paused || !c.held.is_empty() {
            // Bytes that arrive while reading is paused, or before what waited since is read,
            // queue behind it.
            c.held.push_back(Some(bytes));
            return;
        }
        self.feed(conn, bytes);
    }

    /// The broker reads what waited while its reading of `conn` was paused, in order, until it
    /// pauses again.
    fn unheld(&mut self, conn: u64) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.paused {
                return;
            }
            match c.held.pop_front() {
                Some(Some(bytes)) => self.feed(conn, bytes),
                Some(None) => {
                    if c.broker_open {
                        self.broker_sees_close(conn);
                    }
                    return;
                }
                None => return,
            }
        }
    }

    /// Hands bytes of `conn` to the broker.
    fn feed(&mut self, conn: u64, bytes: Bytes) {
        let Some(c) = self.open_at_broker(conn) else {
            return;
        };
        let client = c.client;
        let disconnect = c.disconnect_sent && !c.ended && bytes[..] == [0xE0, 0x00];
        let first = !std::mem::replace(&mut c.delivered_any, true);
        if disconnect {
            self.oracle.disconnect_delivered(conn, self.now);
        }
        if first {
            let (clean_start, persistent) = self.clients[client].asked();
            self.oracle
                .connect_sent(client, clean_start, persistent, self.now);
        }
        self.note(|| {
            format!(
                "broker reads {} bytes of conn {conn}: {:02x?}",
                bytes.len(),
                &bytes[..bytes.len().min(4)]
            )
        });
        let now = self.at(self.now);
        if let Some(p) = self.process.as_mut() {
            p.broker
                .handle_read(ConnectionId(conn), bytes, now)
                .unwrap_or_else(|e| panic!("handle_read: {e}"));
        }
        self.drain();
    }

    fn arrive_at_client(&mut self, conn: u64, bytes: Bytes) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if !c.client_open || c.abandoned {
            return;
        }
        let client = c.client;
        let stalled = self.clients[client].stalled_until;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.unread.push_back(bytes);
        if stalled > self.now {
            // A slow reader: what arrives waits, in order, for the stall to end.
            if !c.read_scheduled {
                c.read_scheduled = true;
                self.schedule(stalled, Ev::Read(conn));
            }
            return;
        }
        self.read(conn);
    }

    /// The client reads what waits on `conn`, in order.
    fn read(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.read_scheduled = false;
        let stalled = self.clients[c.client].stalled_until;
        if stalled > self.now {
            c.read_scheduled = true;
            self.schedule(stalled, Ev::Read(conn));
            return;
        }
        while let Some(bytes) = self.conns.get_mut(&conn).and_then(|c| c.unread.pop_front()) {
            self.deliver(conn, bytes);
        }
    }

    fn deliver(&mut self, conn: u64, bytes: Bytes) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if !c.client_open || c.abandoned {
            return;
        }
        let (client, process) = (c.client, c.process);
        let len = bytes.len();
        let broker_open = c.broker_open;
        if broker_open && process == self.process.as_ref().map(|p| p.incarnation) {
            let now = self.at(self.now);
            if let Some(p) = self.process.as_mut() {
                p.broker
                    .handle_flushed(ConnectionId(conn), len, now)
                    .unwrap_or_else(|e| panic!("handle_flushed: {e}"));
            }
        }
        let outs = self.clients[client].received(conn, &bytes, self.now, &mut self.oracle);
        self.client_outputs(client, conn, outs);
        self.drain();
    }

    fn client_step(&mut self, client: usize) {
        // The connection the step acts on: the one before the step (which may leave it).
        let conn = match self.clients[client].link() {
            Link::Up(c) | Link::Connecting(c) => c,
            Link::Down => 0,
        };
        let (outs, next) = self.clients[client].act(self.now, &mut self.next_msg, &mut self.oracle);
        self.client_outputs(client, conn, outs);
        self.schedule(self.now + next, Ev::Client(client));
    }

    fn client_outputs(&mut self, client: usize, conn: u64, outs: Vec<Out>) {
        for out in outs {
            match out {
                Out::Connect => self.open(client),
                Out::Send(bytes) => self.send(conn, bytes),
                Out::Close => self.end_stream(conn),
                Out::NetDrop => self.net_drop(conn),
                Out::Abandon => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.client_open = false;
                        c.abandoned = true;
                    }
                    self.note(|| format!("c{client} abandons conn {conn}"));
                }
            }
        }
    }

    /// The client's end of `conn` closes (FIN) or the network fails: the broker sees the end
    /// of the stream after the bytes before it.
    fn end_stream(&mut self, conn: u64) {
        let lat = self.latency();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.client_open = false;
            c.to_broker_at = c.to_broker_at.max(self.now + lat);
            let at = c.to_broker_at;
            self.schedule(at, Ev::BrokerSeesClose(conn));
        }
    }

    fn net_drop(&mut self, conn: u64) {
        self.end_stream(conn);
        self.note(|| format!("network drops conn {conn}"));
    }

    fn send(&mut self, conn: u64, bytes: Bytes) {
        let lat = self.latency();
        let cut = self.opts.faults && !self.healing && self.rng.chance(1);
        let cut_at = if cut { self.rng.index(bytes.len()) } else { 0 };
        let cut = cut && self.fault("connection cut");
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.client_open {
            return;
        }
        if bytes.first() == Some(&0xE0) {
            c.disconnect_sent = true;
        }
        c.to_broker_at = c.to_broker_at.max(self.now + lat);
        let at = c.to_broker_at;
        if cut {
            // The network fails in the middle of this write: the broker gets a prefix, the
            // client learns of it a little later.
            if cut_at > 0 {
                self.schedule(at, Ev::ToBroker(conn, bytes.slice(..cut_at)));
            }
            self.net_drop(conn);
            let notice = self.now + self.rng.between(1, 50);
            self.schedule(notice, Ev::ClientSeesClose(conn));
            if let Some(c) = self.conns.get_mut(&conn) {
                c.client_open = true; // until the notice arrives
            }
            return;
        }
        self.schedule(at, Ev::ToBroker(conn, bytes));
    }

    fn open(&mut self, client: usize) {
        self.next_conn += 1;
        let conn = self.next_conn;
        self.counts.connections += 1;
        let process = self.process.as_ref().map(|p| p.incarnation);
        self.conns.insert(
            conn,
            Conn {
                client,
                process,
                broker_open: process.is_some(),
                client_open: true,
                abandoned: false,
                to_broker_at: self.now,
                to_client_at: self.now,
                paused: false,
                held: VecDeque::new(),
                unread: VecDeque::new(),
                read_scheduled: false,
                delivered_any: false,
                disconnect_sent: false,
                accepted: false,
                ended: false,
            },
        );
        let outs =
            self.clients[client].opened(conn, self.now, &mut self.next_msg, &mut self.oracle);
        match self.process.as_mut() {
            Some(p) => {
                let now = self.base + Duration::from_millis(self.now);
                p.broker
                    .handle_open(ConnectionId(conn), ConnectionInfo::default(), now)
                    .unwrap_or_else(|e| panic!("handle_open: {e}"));
                self.note(|| format!("c{client} opens conn {conn}"));
                self.client_outputs(client, conn, outs);
                self.drain();
            }
            None => {
                // Connection refused.
                let at = self.now + self.rng.between(1, 5);
                self.schedule(at, Ev::ClientSeesClose(conn));
            }
        }
    }

    // ---- the audit of the retained set ----

    fn audit(&mut self) {
        let now = self.at(self.now);
        let Some(p) = self.process.as_mut() else {
            self.oracle_violation("the broker is down at the audit".to_owned());
            return;
        };
        let mut decoder = Decoder::new();
        decoder.set_version(ProtocolVersion::V5);
        self.audit = Some((decoder, BytesMut::new(), BTreeMap::new()));
        let connect = Connect {
            protocol: ProtocolVersion::V5,
            bridge: false,
            clean_start: true,
            keep_alive: 0,
            client_id: MqttStr::from_static("sim-auditor"),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        };
        let subscribe = Subscribe {
            packet_id: PacketId::new(1).unwrap_or_else(|| unreachable!()),
            filters: vec![(
                MqttStr::from_static("#"),
                SubscriptionOptions {
                    qos: QoS::AtMostOnce,
                    ..SubscriptionOptions::default()
                },
            )],
            properties: Properties::default(),
        };
        let mut bytes = BytesMut::new();
        for packet in [
            Packet::Connect(Box::new(connect)),
            Packet::Subscribe(subscribe),
        ] {
            packet
                .encode(ProtocolVersion::V5, &mut bytes)
                .unwrap_or_else(|e| panic!("auditor packet: {e}"));
        }
        p.broker
            .handle_open(ConnectionId(AUDITOR), ConnectionInfo::default(), now)
            .unwrap_or_else(|e| panic!("handle_open: {e}"));
        p.broker
            .handle_read(ConnectionId(AUDITOR), bytes.freeze(), now)
            .unwrap_or_else(|e| panic!("handle_read: {e}"));
        self.drain();
        // The SUBACK waits for the session's record: run the storage a few times.
        for _ in 0..3 {
            if let Some(incarnation) = self.process.as_ref().map(|p| p.incarnation) {
                self.commit(incarnation);
            }
        }
    }

    fn audit_read(&mut self, bytes: &[u8]) {
        let Some((decoder, buf, retained)) = self.audit.as_mut() else {
            return;
        };
        buf.extend_from_slice(bytes);
        while let Ok(Some(packet)) = decoder.decode(buf) {
            if let Packet::Publish(p) = packet
                && p.retain
                && p.qos == PublishQos::AtMostOnce
                && let Some(msg) = msg_of(p.payload())
            {
                retained.insert(p.topic().to_owned(), msg);
            }
        }
        let len = bytes.len();
        let now = self.at(self.now);
        if let Some(p) = self.process.as_mut() {
            p.broker
                .handle_flushed(ConnectionId(AUDITOR), len, now)
                .unwrap_or_else(|e| panic!("handle_flushed: {e}"));
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(j) = &self.journal {
            // Best effort: a leftover directory in the temporary directory harms nothing.
            let _ = std::fs::remove_dir_all(&j.dir);
        }
    }
}
