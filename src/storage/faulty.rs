//! Disk faults for experiments: a [`LogStore`] wrapper whose syncs can be made slow, or
//! whose disk can be made full, while the node runs; and a memory store that outlives the
//! node using it, as a disk outlives a killed process.
//!
//! The harness holds the [`DiskFault`] of each node and flips it at scheduled times; the
//! wrapper reads it on every write (one atomic load when nothing is wrong).
//!
//! - A slow sync is charged where the sync happens: for a store with group commit, in its
//!   syncer thread (the report of every sync is delayed, so the next sync starts later and
//!   covers more, as a slow `fsync` would); for a store that syncs inline (a memory store,
//!   a file store without a syncer), on the caller's thread after the write.
//! - A full disk fails every write with `ENOSPC` before it reaches the store, so the store
//!   itself stays consistent; the node stops on the error as on any store error.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::raft::{
    DurableSink, Entry, HardState, Index, LogStore, MemStore, Snapshot, StoreError, Term,
};

/// The fault state of one node's disk, shared between the harness and the node's store.
#[derive(Debug, Default)]
pub struct DiskFault {
    /// Extra nanoseconds per sync (0: none).
    sync_delay_ns: AtomicU64,
    /// Every write fails with `ENOSPC`.
    full: AtomicBool,
    /// Syncs that were slowed down.
    slowed: AtomicU64,
    /// Writes refused because the disk was full.
    refused: AtomicU64,
}

impl DiskFault {
    /// Makes every sync take `d` longer (zero: back to normal).
    pub fn set_sync_delay(&self, d: Duration) {
        self.sync_delay_ns
            .store(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Fills the disk (every write fails) or gives it room again.
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::Relaxed);
    }

    /// Syncs slowed so far.
    pub fn slowed_syncs(&self) -> u64 {
        self.slowed.load(Ordering::Relaxed)
    }

    /// Writes refused so far because the disk was full.
    pub fn refused_writes(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Sleeps for the sync delay, if any.
    fn delay(&self) {
        let ns = self.sync_delay_ns.load(Ordering::Relaxed);
        if ns > 0 {
            self.slowed.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_nanos(ns));
        }
    }

    /// `ENOSPC` when the disk is full.
    fn check_room(&self) -> Result<(), StoreError> {
        if self.full.load(Ordering::Relaxed) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Io(io::Error::from_raw_os_error(libc::ENOSPC)));
        }
        Ok(())
    }
}

/// A store whose disk can be slowed or filled through its [`DiskFault`].
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    fault: Arc<DiskFault>,
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`, controlled by `fault`.
    pub fn new(inner: S, fault: Arc<DiskFault>) -> FaultyStore<S> {
        FaultyStore { inner, fault }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: LogStore> LogStore for FaultyStore<S> {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.fault.check_room()?;
        self.inner.append(entries)?;
        self.fault.delay();
        Ok(())
    }

    fn save_hard_state(&mut self, hs: HardState) -> Result<(), StoreError> {
        self.fault.check_room()?;
        self.inner.save_hard_state(hs)?;
        self.fault.delay();
        Ok(())
    }

    fn compact(&mut self, upto: Index) -> Result<(), StoreError> {
        self.fault.check_room()?;
        self.inner.compact(upto)
    }

    fn save_snapshot(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        self.fault.check_room()?;
        self.inner.save_snapshot(snap)?;
        self.fault.delay();
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        self.inner.snapshot()
    }

    fn hard_state(&self) -> HardState {
        self.inner.hard_state()
    }

    fn snapshot_point(&self) -> (Index, Term) {
        self.inner.snapshot_point()
    }

    fn last_index(&self) -> Index {
        self.inner.last_index()
    }

    fn entries(&self, lo: Index, hi: Index) -> Result<Vec<Entry>, StoreError> {
        self.inner.entries(lo, hi)
    }

    fn append_deferred(&mut self, entries: &[Entry]) -> Result<Option<u64>, StoreError> {
        self.fault.check_room()?;
        let r = self.inner.append_deferred(entries)?;
        if r.is_none() && !entries.is_empty() {
            // Durable on return: the sync happened inline.
            self.fault.delay();
        }
        Ok(r)
    }

    fn start_background_sync(&mut self, sink: DurableSink) -> bool {
        let fault = self.fault.clone();
        self.inner.start_background_sync(Box::new(move |r| {
            // On the syncer thread: the next sync waits for this one, as behind a slow fsync.
            if r.is_ok() {
                fault.delay();
            }
            sink(r)
        }))
    }
}

/// A memory store shared with whoever created it: the node writes through it, and it
/// survives the node being killed, so that a restarted node finds its vote and log as a
/// process finds its files. Every call takes a mutex that only one node ever uses.
#[derive(Clone, Debug, Default)]
pub struct SharedMemStore(pub Arc<Mutex<MemStore>>);

impl SharedMemStore {
    fn get(&self) -> std::sync::MutexGuard<'_, MemStore> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LogStore for SharedMemStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.get().append(entries)
    }
    fn append_owned(&mut self, entries: Vec<Entry>) -> Result<Option<u64>, StoreError> {
        self.get().append_owned(entries)
    }
    fn save_hard_state(&mut self, hs: HardState) -> Result<(), StoreError> {
        self.get().save_hard_state(hs)
    }
    fn save_snapshot(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        self.get().save_snapshot(snap)
    }
    fn snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        self.get().snapshot()
    }
    fn compact(&mut self, upto: Index) -> Result<(), StoreError> {
        self.get().compact(upto)
    }
    fn hard_state(&self) -> HardState {
        self.get().hard_state()
    }
    fn snapshot_point(&self) -> (Index, Term) {
        self.get().snapshot_point()
    }
    fn last_index(&self) -> Index {
        self.get().last_index()
    }
    fn entries(&self, lo: Index, hi: Index) -> Result<Vec<Entry>, StoreError> {
        self.get().entries(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryKind;

    fn entry(index: Index) -> Entry {
        Entry {
            index,
            term: 1,
            kind: EntryKind::Normal,
            data: bytes::Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn a_full_disk_refuses_writes_and_leaves_the_store_as_it_was() {
        let fault = Arc::new(DiskFault::default());
        let mut s = FaultyStore::new(MemStore::new(), fault.clone());
        s.append(&[entry(1)]).unwrap();
        fault.set_full(true);
        let e = s.append(&[entry(2)]).unwrap_err();
        assert!(
            matches!(&e, StoreError::Io(io) if io.raw_os_error() == Some(libc::ENOSPC)),
            "{e}"
        );
        assert!(s.save_hard_state(HardState::default()).is_err());
        assert_eq!(s.last_index(), 1);
        assert_eq!(fault.refused_writes(), 2);
        fault.set_full(false);
        s.append(&[entry(2)]).unwrap();
        assert_eq!(s.last_index(), 2);
    }

    #[test]
    fn slow_syncs_are_counted_and_a_shared_store_outlives_its_user() {
        let fault = Arc::new(DiskFault::default());
        let disk = SharedMemStore::default();
        let mut s = FaultyStore::new(disk.clone(), fault.clone());
        s.append(&[entry(1)]).unwrap();
        assert_eq!(fault.slowed_syncs(), 0);
        fault.set_sync_delay(Duration::from_micros(10));
        s.append(&[entry(2)]).unwrap();
        s.save_hard_state(HardState {
            term: 3,
            ..HardState::default()
        })
        .unwrap();
        assert_eq!(fault.slowed_syncs(), 2);
        drop(s);
        assert_eq!(disk.last_index(), 2);
        assert_eq!(disk.hard_state().term, 3);
    }
}
