//! The storage thread: opens and loads the redb store at start, then writes the broker's
//! persistence batches. Group commit: it takes every batch that arrived while the previous
//! commit was syncing and writes them in one transaction, then reports the highest durable batch
//! to the broker task, which releases the acknowledgements that waited for it. In periodic mode
//! each group is appended to the store's journal instead (one `write`, no fsync) and reported at
//! once, so acknowledgements wait only for the kernel to hold the change; every interval a
//! checkpoint writes the journaled changes into the redb file durably (`docs/STORAGE.md`).
//! A checkpoint can also be asked for at any time (SIGUSR1, as mosquitto saves its database).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use mqtt_broker_core::persist::{PersistBatch, RecoveredState};
use mqtt_store::{Commit, DurableStore, StoreError, WallClock};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::input::Input;
use super::metrics::Metrics;
use crate::config::Durability;

/// Name of the store file inside the persistence location.
pub(crate) const STORE_FILE: &str = "mqtt-broker.redb";

/// Opens the store in `dir` (created if needed) and reads it back. A corrupt store is refused,
/// unless `start_fresh`: then it is renamed aside (never deleted) and an empty one is created.
pub(crate) fn open(
    dir: &Path,
    start_fresh: bool,
    now: Instant,
) -> Result<(DurableStore, RecoveredState), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
    let path = dir.join(STORE_FILE);
    let opened = DurableStore::open(&path).and_then(|store| {
        let state = store.load(now)?;
        Ok((store, state))
    });
    match opened {
        Err(e) if e.is_corrupt() && start_fresh => {
            let aside = corrupt_name(&path);
            warn!(%e, aside = %aside.display(), "starting fresh; the damaged store is kept aside");
            std::fs::rename(&path, &aside)
                .map_err(|e| StoreError::Io(format!("{}: {e}", aside.display())))?;
            // Its journal belongs to it: replayed onto an empty store it would dangle.
            let journal = DurableStore::journal_path(&path);
            if journal.exists() {
                let aside = corrupt_name(&journal);
                std::fs::rename(&journal, &aside)
                    .map_err(|e| StoreError::Io(format!("{}: {e}", aside.display())))?;
            }
            let store = DurableStore::open(&path)?;
            let state = store.load(now)?;
            Ok((store, state))
        }
        other => other,
    }
}

/// What [`import_mosquitto_db`] brought over.
pub use mqtt_store::MosquittoImport;

/// Imports mosquitto's persistence file `file` (`mosquitto.db`) into the store in `dir`:
/// retained messages, persistent sessions with their subscriptions, and the messages queued or
/// in flight for them, written in one transaction. The store must hold nothing yet (a merge
/// could contradict what it has); a file that does not read whole is refused with its offset
/// and nothing is written. `file` is only read.
pub fn import_mosquitto_db(file: &Path, dir: &Path) -> Result<MosquittoImport, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let (now, wall) = (Instant::now(), SystemTime::now());
    let now_unix = wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let import = mqtt_store::read_mosquitto_db(&bytes, now, now_unix)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let (mut store, state) =
        open(dir, false, now).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !state.retained.is_empty() || !state.sessions.is_empty() {
        return Err(format!(
            "{} already holds {} retained messages and {} sessions: import into an empty store \
             (move {STORE_FILE} aside first)",
            store.path().display(),
            state.retained.len(),
            state.sessions.len()
        ));
    }
    store
        .apply(&import.records, &WallClock::new(now, wall), Commit::Durable)
        .map_err(|e| format!("{}: {e}", store.path().display()))?;
    Ok(import)
}

/// One line saying what an import brought over.
pub fn describe_import(import: &MosquittoImport) -> String {
    format!(
        "{} retained messages, {} sessions with {} subscriptions, {} queued or in-flight \
         messages, {} QoS 2 messages awaiting PUBREL ({} expired ones left out; mosquitto.db \
         format {})",
        import.retained,
        import.sessions,
        import.subscriptions,
        import.queued,
        import.incoming_qos2,
        import.expired,
        import.version
    )
}

fn corrupt_name(path: &Path) -> PathBuf {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{stamp}"));
    PathBuf::from(name)
}

/// What the storage thread is asked to do.
#[derive(Debug)]
enum Job {
    /// Write a batch of records.
    Batch(PersistBatch),
    /// Make everything written so far durable in the store file now.
    Checkpoint,
}

/// The sending end of the storage thread.
#[derive(Debug)]
pub(crate) struct Storage {
    batches: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Storage {
    /// Starts the thread; in `Sync` mode it reports durable batches on `inputs`. Each commit's
    /// time goes to `metrics`.
    pub(crate) fn start(
        store: DurableStore,
        clock: WallClock,
        durability: Durability,
        inputs: mpsc::Sender<Input>,
        metrics: Arc<Metrics>,
    ) -> Storage {
        let (batches, receiver) = channel();
        let thread = std::thread::Builder::new()
            .name("mqtt-storage".into())
            .spawn(move || writer(store, clock, durability, &receiver, &inputs, &metrics));
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                error!(%e, "cannot start the storage thread");
                std::process::exit(70);
            }
        };
        Storage {
            batches: Some(batches),
            thread,
        }
    }

    /// Hands a batch to the thread.
    pub(crate) fn write(&self, batch: PersistBatch) {
        if let Some(batches) = &self.batches {
            let _ = batches.send(Job::Batch(batch));
        }
    }

    /// Asks the thread to make everything written so far durable in the store file now (in
    /// `sync` mode it already is).
    pub(crate) fn checkpoint(&self) {
        if let Some(batches) = &self.batches {
            let _ = batches.send(Job::Checkpoint);
        }
    }

    /// Lets the thread write what it has, make it durable, and stop.
    pub(crate) async fn finish(mut self) {
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// A failed write cannot be acknowledged nor retried safely: the broker stops rather than
/// pretend (clients then resend what was not acknowledged).
fn fatal(e: &StoreError) -> ! {
    error!(%e, "cannot write the store; stopping");
    std::process::exit(70);
}

/// The store failed: see [`fatal`].
fn or_stop<T>(result: Result<T, StoreError>) -> T {
    result.unwrap_or_else(|e| fatal(&e))
}

/// Runs one commit of the store, recording how long it took.
fn timed<T>(metrics: &Metrics, commit: impl FnOnce() -> Result<T, StoreError>) -> T {
    let started = Instant::now();
    let result = or_stop(commit());
    metrics.commit_took(started.elapsed().as_secs_f64());
    result
}

fn writer(
    mut store: DurableStore,
    clock: WallClock,
    durability: Durability,
    receiver: &Receiver<Job>,
    inputs: &mpsc::Sender<Input>,
    metrics: &Metrics,
) {
    match durability {
        Durability::Periodic(every) => {
            journaled(
                &mut store,
                &clock,
                (Some(every), u64::MAX),
                (receiver, inputs),
                metrics,
            );
        }
        Durability::Changes(count) => {
            journaled(
                &mut store,
                &clock,
                (None, count),
                (receiver, inputs),
                metrics,
            );
        }
        _ => {
            while let Ok(first) = receiver.recv() {
                let (group, checkpoint) = gather(first, receiver);
                if !group.is_empty() {
                    let records = group.iter().flat_map(|b| &b.records);
                    timed(metrics, || store.apply(records, &clock, Commit::Durable));
                }
                if checkpoint {
                    info!("checkpoint asked for: every change is already durable (sync mode)");
                }
                if let Some(last) = group.last()
                    && inputs.blocking_send(Input::Persisted(last.seq)).is_err()
                {
                    break;
                }
            }
        }
    }
    info!(file = %store.path().display(), "store closed");
}

/// Periodic modes: each group is journaled and reported at once; a checkpoint makes the journal
/// durable when due — every `every` (interval mode) or after `max_changes` records — and at the
/// end.
fn journaled(
    store: &mut DurableStore,
    clock: &WallClock,
    (every, max_changes): (Option<Duration>, u64),
    (receiver, inputs): (&Receiver<Job>, &mpsc::Sender<Input>),
    metrics: &Metrics,
) {
    let mut next_sync = every.map(|every| Instant::now() + every);
    let mut changes = 0u64;
    loop {
        let received = match next_sync {
            Some(at) => receiver.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let mut asked = false;
        match received {
            Ok(first) => {
                let (group, checkpoint) = gather(first, receiver);
                asked = checkpoint;
                if !group.is_empty() {
                    timed(metrics, || {
                        store.journal(group.iter().flat_map(|b| &b.records), clock)
                    });
                }
                changes += group.iter().map(|b| b.records.len() as u64).sum::<u64>();
                // Journaled: the acknowledgements may leave; the rest is off their path.
                if let Some(last) = group.last()
                    && inputs.blocking_send(Input::Persisted(last.seq)).is_err()
                {
                    break;
                }
                drop(group);
                or_stop(store.fold_journaled());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let due = next_sync.is_some_and(|at| Instant::now() >= at) || changes >= max_changes;
        if asked {
            info!(
                changes,
                "checkpoint asked for: writing the journaled changes durably"
            );
        }
        if due || asked {
            timed(metrics, || store.sync());
            changes = 0;
            next_sync = every.map(|every| Instant::now() + every);
        }
    }
    // What arrived after the broker task stopped listening is journaled too.
    for job in receiver.try_iter() {
        if let Job::Batch(batch) = job {
            or_stop(store.apply(&batch.records, clock, Commit::Journaled));
        }
    }
    or_stop(store.sync());
}

/// The batches of `first` and every job already waiting behind it, and whether a checkpoint
/// was asked for among them.
fn gather(first: Job, receiver: &Receiver<Job>) -> (Vec<PersistBatch>, bool) {
    let mut group = Vec::new();
    let mut checkpoint = false;
    for job in std::iter::once(first).chain(receiver.try_iter()) {
        match job {
            Job::Batch(batch) => group.push(batch),
            Job::Checkpoint => checkpoint = true,
        }
    }
    (group, checkpoint)
}
