//! Where a node's log and hard state persist: a trait a durable write-ahead log can
//! implement, an in-memory implementation, and a conformance suite every store must pass.
//!
//! The core never calls a store. The driver writes what [`Ready`](super::Ready) asks to
//! persist, acknowledges it with [`RaftNode::persisted`](super::RaftNode::persisted), and on
//! restart rebuilds the node from the store with [`RaftNode::restore`](super::RaftNode::restore).

use std::collections::VecDeque;

use super::types::{Entry, HardState, Index, Snapshot, Term};

/// Why a store refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The range asked for reaches below the discarded prefix.
    #[error("index {index} is compacted (the store begins after {snapshot_index})")]
    Compacted {
        /// The index asked for.
        index: Index,
        /// Last discarded index.
        snapshot_index: Index,
    },
    /// The range asked for reaches past the last entry.
    #[error("index {index} is past the last entry {last_index}")]
    Unavailable {
        /// The index asked for.
        index: Index,
        /// Last stored index.
        last_index: Index,
    },
    /// An append would leave a hole or overwrite discarded entries.
    #[error(
        "append at {first} does not follow the log ({snapshot_index} discarded, last {last_index})"
    )]
    NotContiguous {
        /// First index of the append.
        first: Index,
        /// Last discarded index.
        snapshot_index: Index,
        /// Last stored index.
        last_index: Index,
    },
    /// The underlying medium failed.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// Another store (in this process or another one) holds the data directory.
    #[error(
        "data directory {} is in use: lock file {} is held by another store{holder}",
        .dir.display(),
        .lock.display()
    )]
    Locked {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The lock file inside it.
        lock: std::path::PathBuf,
        /// What the lock file says about its holder (", process N"), or empty.
        holder: String,
    },
    /// The store cannot hold snapshots (a wrapper that does not forward them).
    #[error("this log store does not support snapshots")]
    SnapshotsUnsupported,
}

/// Where a store that syncs in the background reports progress, from its own thread:
/// `Ok(ticket)` once every write up to `ticket` is durable (tickets only grow), or the
/// error of the first sync that failed (the store then refuses every later write).
pub type DurableSink = Box<dyn Fn(Result<u64, StoreError>) + Send + 'static>;

/// Persistent Raft state: the log after a discarded prefix, and the hard state.
pub trait LogStore {
    /// Stores `entries` (contiguous, ascending), first discarding any stored entry at or
    /// after `entries[0].index`: a follower overwrites a conflicting suffix this way.
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError>;
    /// Replaces the stored hard state.
    fn save_hard_state(&mut self, hs: HardState) -> Result<(), StoreError>;
    /// Discards entries up to and including `upto`; a no-op at or below the current prefix.
    fn compact(&mut self, upto: Index) -> Result<(), StoreError>;
    /// The stored hard state (default if none was saved).
    fn hard_state(&self) -> HardState;
    /// The last discarded entry's index and term ((0, 0) when nothing was discarded).
    fn snapshot_point(&self) -> (Index, Term);
    /// Index of the last stored entry (the snapshot index when the log is empty).
    fn last_index(&self) -> Index;
    /// Entries in `[lo, hi)`.
    fn entries(&self, lo: Index, hi: Index) -> Result<Vec<Entry>, StoreError>;

    /// Stores `snap` as the latest snapshot and discards the log up to its index: the
    /// entries after it stay if the stored entry at its index has its term (the driver's own
    /// snapshot), otherwise every entry goes (a leader's snapshot replaces a divergent or
    /// short log). The snapshot point becomes its (index, term). A snapshot older than the
    /// snapshot point is ignored. Durable stores make it durable before returning.
    fn save_snapshot(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        let _ = snap;
        Err(StoreError::SnapshotsUnsupported)
    }

    /// The latest snapshot saved, if any (what a restarted driver restores its state
    /// machine from).
    fn snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        Ok(None)
    }

    /// Stores `entries` as [`append`](Self::append) does but may return before they are
    /// durable: `Ok(None)` when they already are (the default, what a synchronous store
    /// does), `Ok(Some(ticket))` when the store's background syncer will report `ticket`
    /// (or a larger one) to the sink given to [`start_background_sync`](Self::start_background_sync)
    /// once they are. Reads see the entries at once either way.
    fn append_deferred(&mut self, entries: &[Entry]) -> Result<Option<u64>, StoreError> {
        self.append(entries).map(|()| None)
    }

    /// [`append_deferred`](Self::append_deferred), handing the entries over: a store that
    /// keeps entries in memory moves them in rather than cloning each (a clone is an atomic
    /// increment on the entry's shared buffer, and the dropped original a decrement:
    /// together about 4% of CPU samples at 800,000 Puts/s offered).
    fn append_owned(&mut self, entries: Vec<Entry>) -> Result<Option<u64>, StoreError> {
        self.append_deferred(&entries)
    }

    /// Makes later [`append_deferred`](Self::append_deferred) calls sync in the background
    /// and report to `sink`; false (the default) when the store only syncs inline.
    fn start_background_sync(&mut self, sink: DurableSink) -> bool {
        drop(sink);
        false
    }
}

/// A store in memory: what the simulator and the in-memory runtime persist to.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    hard_state: HardState,
    snapshot_index: Index,
    snapshot_term: Term,
    entries: VecDeque<Entry>,
    snapshot: Option<Snapshot>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Number of entries held (after the discarded prefix).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl MemStore {
    /// Makes room for entries that start at `first`: drops the suffix they replace, or
    /// refuses a start that would leave a hole or rewrite the snapshot.
    fn truncate_for(&mut self, first: Index) -> Result<(), StoreError> {
        let last_index = self.last_index();
        if first <= self.snapshot_index || first > last_index + 1 {
            return Err(StoreError::NotContiguous {
                first,
                snapshot_index: self.snapshot_index,
                last_index,
            });
        }
        self.entries
            .truncate((first - self.snapshot_index - 1) as usize);
        Ok(())
    }
}

impl LogStore for MemStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        self.truncate_for(first.index)?;
        self.entries.extend(entries.iter().cloned());
        Ok(())
    }

    fn append_owned(&mut self, entries: Vec<Entry>) -> Result<Option<u64>, StoreError> {
        let Some(first) = entries.first() else {
            return Ok(None);
        };
        self.truncate_for(first.index)?;
        self.entries.extend(entries);
        Ok(None)
    }

    fn save_hard_state(&mut self, hs: HardState) -> Result<(), StoreError> {
        self.hard_state = hs;
        Ok(())
    }

    fn compact(&mut self, upto: Index) -> Result<(), StoreError> {
        let Some((n, term)) = compaction(&self.entries, self.snapshot_index, upto)? else {
            return Ok(());
        };
        self.snapshot_term = term;
        self.entries.drain(..n);
        self.snapshot_index = upto;
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn snapshot_point(&self) -> (Index, Term) {
        (self.snapshot_index, self.snapshot_term)
    }

    fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }

    fn entries(&self, lo: Index, hi: Index) -> Result<Vec<Entry>, StoreError> {
        read_range(&self.entries, self.snapshot_index, lo, hi)
    }

    fn save_snapshot(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        let Some(keep_from) = snapshot_cut(&self.entries, self.snapshot_index, snap) else {
            return Ok(());
        };
        self.entries.drain(..keep_from);
        self.snapshot_index = snap.meta.index;
        self.snapshot_term = snap.meta.term;
        self.snapshot = Some(snap.clone());
        Ok(())
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.snapshot.clone())
    }
}

/// How many leading entries of a log held in memory after `snapshot_index` saving `snap`
/// discards ([`LogStore::save_snapshot`]): up to its index when the entry there has its
/// term, else all of them; None when `snap` is older than the snapshot point.
pub fn snapshot_cut(
    entries: &VecDeque<Entry>,
    snapshot_index: Index,
    snap: &Snapshot,
) -> Option<usize> {
    let index = snap.meta.index;
    if index < snapshot_index {
        return None;
    }
    let n = (index - snapshot_index) as usize;
    let matches = n == 0 || entries.get(n - 1).is_some_and(|e| e.term == snap.meta.term);
    Some(if matches { n } else { entries.len() })
}

/// Entries `[lo, hi)` of a log held in memory after `snapshot_index`, with the errors
/// every [`LogStore`] gives for a range outside it (shared by the stores that keep an
/// in-memory copy).
pub fn read_range(
    entries: &VecDeque<Entry>,
    snapshot_index: Index,
    lo: Index,
    hi: Index,
) -> Result<Vec<Entry>, StoreError> {
    if lo <= snapshot_index {
        return Err(StoreError::Compacted {
            index: lo,
            snapshot_index,
        });
    }
    let last_index = snapshot_index + entries.len() as Index;
    if hi > last_index + 1 {
        return Err(StoreError::Unavailable {
            index: hi - 1,
            last_index,
        });
    }
    if hi <= lo {
        return Ok(Vec::new());
    }
    let start = (lo - snapshot_index - 1) as usize;
    let end = (hi - snapshot_index - 1) as usize;
    Ok(entries.range(start..end).cloned().collect())
}

/// What compacting a log held in memory after `snapshot_index` up to `upto` discards:
/// the number of entries and the term of the last one; None when `upto` is already
/// discarded, an error when it is past the last entry (the [`LogStore::compact`] contract).
pub fn compaction(
    entries: &VecDeque<Entry>,
    snapshot_index: Index,
    upto: Index,
) -> Result<Option<(usize, Term)>, StoreError> {
    if upto <= snapshot_index {
        return Ok(None);
    }
    let last_index = snapshot_index + entries.len() as Index;
    if upto > last_index {
        return Err(StoreError::Unavailable {
            index: upto,
            last_index,
        });
    }
    let n = (upto - snapshot_index) as usize;
    Ok(Some((n, entries[n - 1].term)))
}

/// The behaviour every [`LogStore`] must show, as a function a store's own tests call
/// with a factory for fresh, empty stores (as openraft's storage suite does).
pub mod conformance {
    use bytes::Bytes;

    use super::{LogStore, StoreError};
    use crate::raft::types::{Entry, EntryKind, HardState, Snapshot, SnapshotMeta};

    fn snapshot(index: u64, term: u64) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                voters: vec![1, 2, 3],
            },
            data: Bytes::from(format!("state at {index}@{term}")),
        }
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: Bytes::from(format!("{index}@{term}")),
        }
    }

    /// Runs every check against stores made by `new_store`; panics naming the first that fails.
    pub fn run<S: LogStore>(mut new_store: impl FnMut() -> S) {
        empty_store_is_empty(&mut new_store());
        append_then_read_back(&mut new_store());
        append_overwrites_conflicting_suffix(&mut new_store());
        append_refuses_a_hole(&mut new_store());
        hard_state_round_trips(&mut new_store());
        compact_discards_prefix_and_keeps_term(&mut new_store());
        reads_outside_the_log_fail(&mut new_store());
        owned_append_is_append(&mut new_store());
    }

    fn owned_append_is_append<S: LogStore>(s: &mut S) {
        let es: Vec<_> = (1..=4).map(|i| entry(i, 1)).collect();
        assert_eq!(
            s.append_owned(es.clone()).unwrap(),
            None,
            "owned_append_is_append"
        );
        assert_eq!(s.entries(1, 5).unwrap(), es, "owned_append_is_append");
        s.append_owned(vec![entry(3, 2)]).unwrap();
        assert_eq!(
            s.last_index(),
            3,
            "owned_append_is_append: the conflicting suffix goes"
        );
        assert_eq!(
            s.entries(3, 4).unwrap(),
            vec![entry(3, 2)],
            "owned_append_is_append"
        );
        assert!(
            matches!(
                s.append_owned(vec![entry(9, 2)]),
                Err(StoreError::NotContiguous { .. })
            ),
            "owned_append_is_append: a hole is refused"
        );
        assert_eq!(
            s.append_owned(Vec::new()).unwrap(),
            None,
            "owned_append_is_append"
        );
        assert_eq!(s.last_index(), 3, "owned_append_is_append");
    }

    /// Runs the snapshot checks ([`LogStore::save_snapshot`]) against stores made by
    /// `new_store`, for stores that hold snapshots.
    pub fn run_snapshots<S: LogStore>(mut new_store: impl FnMut() -> S) {
        snapshot_keeps_matching_suffix(&mut new_store());
        snapshot_replaces_conflicting_log(&mut new_store());
        snapshot_past_the_log_replaces_it(&mut new_store());
        older_snapshot_is_ignored(&mut new_store());
    }

    fn snapshot_keeps_matching_suffix<S: LogStore>(s: &mut S) {
        assert_eq!(
            s.snapshot().unwrap(),
            None,
            "snapshot_keeps_matching_suffix"
        );
        s.append(&[
            entry(1, 1),
            entry(2, 1),
            entry(3, 2),
            entry(4, 2),
            entry(5, 3),
        ])
        .unwrap();
        let snap = snapshot(3, 2);
        s.save_snapshot(&snap).unwrap();
        assert_eq!(
            s.snapshot().unwrap(),
            Some(snap),
            "snapshot_keeps_matching_suffix"
        );
        assert_eq!(s.snapshot_point(), (3, 2), "snapshot_keeps_matching_suffix");
        assert_eq!(s.last_index(), 5, "snapshot_keeps_matching_suffix");
        assert_eq!(
            s.entries(4, 6).unwrap(),
            vec![entry(4, 2), entry(5, 3)],
            "snapshot_keeps_matching_suffix"
        );
        assert!(
            matches!(s.entries(3, 5), Err(StoreError::Compacted { .. })),
            "snapshot_keeps_matching_suffix: the covered prefix is gone"
        );
        s.append(&[entry(6, 3)]).unwrap();
        assert_eq!(s.last_index(), 6, "appending after a snapshot");
    }

    fn snapshot_replaces_conflicting_log<S: LogStore>(s: &mut S) {
        s.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        s.save_snapshot(&snapshot(3, 2)).unwrap();
        assert_eq!(
            s.snapshot_point(),
            (3, 2),
            "snapshot_replaces_conflicting_log"
        );
        assert_eq!(
            s.last_index(),
            3,
            "snapshot_replaces_conflicting_log: entries after a conflicting point go"
        );
        s.append(&[entry(4, 2)]).unwrap();
        assert_eq!(s.entries(4, 5).unwrap(), vec![entry(4, 2)]);
    }

    fn snapshot_past_the_log_replaces_it<S: LogStore>(s: &mut S) {
        s.append(&[entry(1, 1), entry(2, 1)]).unwrap();
        s.save_snapshot(&snapshot(10, 4)).unwrap();
        assert_eq!(
            s.snapshot_point(),
            (10, 4),
            "snapshot_past_the_log_replaces_it"
        );
        assert_eq!(s.last_index(), 10, "snapshot_past_the_log_replaces_it");
        assert!(s.entries(11, 11).unwrap().is_empty());
        assert!(
            matches!(
                s.append(&[entry(5, 4)]),
                Err(StoreError::NotContiguous { .. })
            ),
            "snapshot_past_the_log_replaces_it: the covered range cannot be appended to"
        );
        s.append(&[entry(11, 4)]).unwrap();
        assert_eq!(s.last_index(), 11, "snapshot_past_the_log_replaces_it");
    }

    fn older_snapshot_is_ignored<S: LogStore>(s: &mut S) {
        s.append(&(1..=6).map(|i| entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        let newer = snapshot(5, 1);
        s.save_snapshot(&newer).unwrap();
        s.save_snapshot(&snapshot(3, 1)).unwrap();
        assert_eq!(
            s.snapshot().unwrap(),
            Some(newer),
            "older_snapshot_is_ignored"
        );
        assert_eq!(s.snapshot_point(), (5, 1), "older_snapshot_is_ignored");
        assert_eq!(s.last_index(), 6, "older_snapshot_is_ignored");
    }

    fn empty_store_is_empty<S: LogStore>(s: &mut S) {
        assert_eq!(s.last_index(), 0, "empty_store_is_empty");
        assert_eq!(s.snapshot_point(), (0, 0), "empty_store_is_empty");
        assert_eq!(s.hard_state(), HardState::default(), "empty_store_is_empty");
        assert!(s.entries(1, 1).unwrap().is_empty(), "empty_store_is_empty");
    }

    fn append_then_read_back<S: LogStore>(s: &mut S) {
        let es: Vec<_> = (1..=5).map(|i| entry(i, 1)).collect();
        s.append(&es).unwrap();
        assert_eq!(s.last_index(), 5, "append_then_read_back");
        assert_eq!(s.entries(1, 6).unwrap(), es, "append_then_read_back");
        assert_eq!(
            s.entries(2, 4).unwrap(),
            es[1..3].to_vec(),
            "append_then_read_back"
        );
        s.append(&[entry(6, 2)]).unwrap();
        assert_eq!(s.last_index(), 6, "append_then_read_back");
    }

    fn append_overwrites_conflicting_suffix<S: LogStore>(s: &mut S) {
        s.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        s.append(&[entry(3, 2)]).unwrap();
        assert_eq!(s.last_index(), 3, "append_overwrites_conflicting_suffix");
        assert_eq!(
            s.entries(1, 4).unwrap(),
            vec![entry(1, 1), entry(2, 1), entry(3, 2)],
            "append_overwrites_conflicting_suffix"
        );
    }

    fn append_refuses_a_hole<S: LogStore>(s: &mut S) {
        s.append(&[entry(1, 1)]).unwrap();
        let err = s.append(&[entry(3, 1)]).unwrap_err();
        assert!(
            matches!(err, StoreError::NotContiguous { first: 3, .. }),
            "append_refuses_a_hole: {err}"
        );
        assert_eq!(
            s.last_index(),
            1,
            "append_refuses_a_hole: the log must be untouched"
        );
    }

    fn hard_state_round_trips<S: LogStore>(s: &mut S) {
        let hs = HardState {
            term: 7,
            voted_for: Some(3),
        };
        s.save_hard_state(hs).unwrap();
        assert_eq!(s.hard_state(), hs, "hard_state_round_trips");
    }

    fn compact_discards_prefix_and_keeps_term<S: LogStore>(s: &mut S) {
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 3)])
            .unwrap();
        s.compact(3).unwrap();
        assert_eq!(
            s.snapshot_point(),
            (3, 2),
            "compact_discards_prefix_and_keeps_term"
        );
        assert_eq!(s.last_index(), 4, "compact_discards_prefix_and_keeps_term");
        assert!(
            matches!(s.entries(3, 5), Err(StoreError::Compacted { .. })),
            "compact_discards_prefix_and_keeps_term"
        );
        assert_eq!(s.entries(4, 5).unwrap(), vec![entry(4, 3)]);
        s.compact(2).unwrap();
        assert_eq!(
            s.snapshot_point(),
            (3, 2),
            "compacting below the prefix is a no-op"
        );
        s.append(&[entry(5, 3)]).unwrap();
        assert_eq!(s.last_index(), 5, "appending after a compaction");
        assert!(
            matches!(
                s.append(&[entry(3, 4)]),
                Err(StoreError::NotContiguous { .. })
            ),
            "overwriting discarded entries must fail"
        );
        s.compact(5).unwrap();
        assert_eq!(
            s.last_index(),
            5,
            "a fully compacted log keeps its last index"
        );
        assert!(s.entries(6, 6).unwrap().is_empty());
    }

    fn reads_outside_the_log_fail<S: LogStore>(s: &mut S) {
        s.append(&[entry(1, 1), entry(2, 1)]).unwrap();
        assert!(
            matches!(s.entries(1, 4), Err(StoreError::Unavailable { .. })),
            "reads_outside_the_log_fail"
        );
        assert!(
            matches!(s.entries(0, 2), Err(StoreError::Compacted { .. })),
            "index 0 is never an entry"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_store_conforms() {
        conformance::run(MemStore::new);
        conformance::run_snapshots(MemStore::new);
    }
}
