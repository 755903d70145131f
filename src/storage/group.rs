//! Group commit: a syncer thread that makes a store's written records durable in batches.
//!
//! The writer (the node's driver) writes records to the page cache and calls
//! [`Syncer::request`] with a ticket, a number that grows with every write. The syncer
//! thread waits for a request, takes the latest one (every request that arrived while its
//! previous sync ran is folded into it), runs one sync of the log file, and reports the
//! ticket to the sink: every write up to that ticket is now durable. One sync thus covers
//! every entry that arrived while the previous one ran, and the writer never waits for
//! the disk. Waiting state is one slot, not a queue, so it is bounded whatever the load.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use hdrhistogram::Histogram;

use super::SyncPolicy;
use crate::raft::{DurableSink, StoreError};

/// Counters and the latency histogram of a store's log syncs, shared with whoever reports them.
#[derive(Debug)]
pub struct SyncStats {
    syncs: AtomicU64,
    entries: AtomicU64,
    /// Largest number of entries one sync covered.
    max_entries: AtomicU64,
    /// Sync latency in nanoseconds.
    latency: Mutex<Histogram<u64>>,
}

/// A copy of [`SyncStats`] at one instant.
#[derive(Clone, Debug)]
pub struct SyncSnapshot {
    /// Log syncs run (inline and in the background).
    pub syncs: u64,
    /// Entries those syncs made durable.
    pub entries: u64,
    /// Most entries one sync made durable.
    pub max_entries_per_sync: u64,
    /// Duration of each sync, in nanoseconds.
    pub latency_ns: Histogram<u64>,
}

impl SyncSnapshot {
    /// Mean entries per sync (0 when nothing was synced).
    pub fn entries_per_sync(&self) -> f64 {
        if self.syncs == 0 {
            0.0
        } else {
            self.entries as f64 / self.syncs as f64
        }
    }
}

impl Default for SyncStats {
    fn default() -> SyncStats {
        SyncStats {
            syncs: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            max_entries: AtomicU64::new(0),
            // 1 µs .. 100 s at 3 significant digits: any sync a disk can take.
            latency: Mutex::new(
                Histogram::new_with_bounds(1_000, 100_000_000_000, 3).expect("valid bounds"),
            ),
        }
    }
}

impl SyncStats {
    /// Records one sync that made `entries` entries durable in `nanos` nanoseconds.
    pub fn record(&self, entries: u64, nanos: u64) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.max_entries.fetch_max(entries, Ordering::Relaxed);
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(nanos.max(1_000));
    }

    /// The counters and histogram now.
    pub fn snapshot(&self) -> SyncSnapshot {
        let latency = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        SyncSnapshot {
            syncs: self.syncs.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            max_entries_per_sync: self.max_entries.load(Ordering::Relaxed),
            latency_ns: latency,
        }
    }
}

/// Runs `policy`'s sync of `file` and records it in `stats` as covering `entries` entries.
pub(crate) fn timed_sync(
    policy: SyncPolicy,
    file: &File,
    entries: u64,
    stats: &SyncStats,
) -> std::io::Result<()> {
    if !policy.is_durable() {
        return Ok(());
    }
    let t = Instant::now();
    policy.sync(file)?;
    stats.record(entries, t.elapsed().as_nanos() as u64);
    Ok(())
}

/// The one request slot the writer fills and the syncer empties.
struct Slot {
    /// Highest ticket written and not yet taken by the syncer (0: none).
    ticket: u64,
    /// Entries written since the syncer last took the slot.
    entries: u64,
    /// The log file the latest write went to (it changes when compaction rewrites the log;
    /// the rewrite syncs the new file, so syncing the latest file covers the older ones).
    file: Option<Arc<File>>,
    /// Set when the owner drops the syncer: finish the pending request, then exit.
    closing: bool,
}

struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
    /// Set when a sync failed: the file's state on disk is unknown from then on.
    failed: AtomicBool,
}

/// A background thread that syncs a log file in groups (see the module docs).
pub struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("failed", &self.failed())
            .finish()
    }
}

impl Syncer {
    /// Starts the syncer thread; it reports each durable ticket, or the first failure, to `sink`.
    pub fn start(
        name: String,
        policy: SyncPolicy,
        stats: Arc<SyncStats>,
        sink: DurableSink,
    ) -> std::io::Result<Syncer> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                ticket: 0,
                entries: 0,
                file: None,
                closing: false,
            }),
            wake: Condvar::new(),
            failed: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(&s, policy, &stats, sink))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for every write up to `ticket` (`entries` new entries, in `file`) to be made durable.
    pub fn request(&self, ticket: u64, entries: u64, file: &Arc<File>) {
        let mut slot = self.shared.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.ticket = slot.ticket.max(ticket);
        slot.entries += entries;
        slot.file = Some(file.clone());
        drop(slot);
        self.shared.wake.notify_one();
    }

    /// Whether a background sync failed (the store must then refuse writes).
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared
            .slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closing = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, policy: SyncPolicy, stats: &SyncStats, sink: DurableSink) {
    loop {
        let (ticket, entries, file) = {
            let mut slot = shared.slot.lock().unwrap_or_else(|p| p.into_inner());
            while slot.file.is_none() && !slot.closing {
                slot = shared.wake.wait(slot).unwrap_or_else(|p| p.into_inner());
            }
            let Some(file) = slot.file.take() else {
                return; // closing, nothing pending
            };
            let taken = (slot.ticket, slot.entries, file);
            slot.entries = 0;
            taken
        };
        match timed_sync(policy, &file, entries, stats) {
            Ok(()) => sink(Ok(ticket)),
            Err(e) => {
                shared.failed.store(true, Ordering::Release);
                tracing::error!(error = %e, ticket, "log sync failed; the store refuses further writes");
                sink(Err(StoreError::Io(e)));
                return;
            }
        }
    }
}
