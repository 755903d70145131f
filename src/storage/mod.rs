//! Durable implementations of [`LogStore`](crate::raft::LogStore): what a node that must
//! survive a process kill or a restart persists to.
//!
//! - [`FileStore`]: one directory per node, locked against a second user: an append-only
//!   log file of checksummed records, the hard state and the snapshot point in small files
//!   replaced atomically. With [`LogStore::start_background_sync`](crate::raft::LogStore::start_background_sync)
//!   it commits in groups: the driver writes to the page cache and a syncer thread runs one
//!   sync for everything written while the previous one ran ([`group`]).
//!
//! [`SyncPolicy`] says how far each write is pushed before it counts as durable; it is shared
//! by every durable store so that configurations keep their meaning when stores change.

pub mod faulty;
pub mod file;
pub mod floor;
pub mod group;

pub use faulty::{DiskFault, FaultyStore, SharedMemStore};
pub use file::{
    FileStore, Recovery, HARD_STATE_FILE, LOCK_FILE, LOG_FILE, META_FILE, SNAPSHOT_FILE,
};
pub use floor::SyncFloor;
pub use group::{SyncSnapshot, SyncStats};

use std::fs::File;
use std::io;

use serde::{Deserialize, Serialize};

/// How far a durable store pushes a write before it counts as durable.
///
/// Raft's safety argument assumes that a node's vote, term and acknowledged entries
/// survive any crash: [`SyncPolicy::Fsync`] and [`SyncPolicy::Fdatasync`] give that;
/// [`SyncPolicy::None`] is for measurements and tests that want the file format's cost
/// without the disk's, and is **not durable**.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// `fsync` (data and metadata) of the log after appends, of each replaced file, and of
    /// the directory after every atomic replacement. The default for node processes.
    #[default]
    Fsync,
    /// `fdatasync` of the log after appends (skips metadata such as mtime that recovery does
    /// not need; file size changes are still synced), `fsync` of the directory after renames.
    /// What survives a power loss is what the store reported durable. `always` is the old
    /// name of this policy.
    #[serde(alias = "always")]
    Fdatasync,
    /// Never sync (NOT DURABLE): writes reach the OS page cache and the disk when the
    /// kernel decides. Everything written survives the process being killed (SIGKILL,
    /// panic, abort), because the kernel still holds it; a power loss or kernel crash may
    /// lose any suffix of recent writes, including a vote, which is unsafe for Raft (a node
    /// could vote twice in one term or forget entries it acknowledged). `never` is the old
    /// name of this policy.
    #[serde(alias = "never")]
    None,
}

impl SyncPolicy {
    /// Whether writes are pushed to the disk at all (false only for [`SyncPolicy::None`]).
    pub fn is_durable(self) -> bool {
        self != SyncPolicy::None
    }

    /// Pushes `file`'s written data to the disk as this policy says.
    pub fn sync(self, file: &File) -> io::Result<()> {
        match self {
            SyncPolicy::Fsync => file.sync_all(),
            SyncPolicy::Fdatasync => file.sync_data(),
            SyncPolicy::None => Ok(()),
        }
    }

    /// The policy's name in configuration files and logs, with a warning for `none`.
    pub fn label(self) -> &'static str {
        match self {
            SyncPolicy::Fsync => "fsync",
            SyncPolicy::Fdatasync => "fdatasync",
            SyncPolicy::None => "none (NOT DURABLE: a power loss may lose acknowledged writes)",
        }
    }
}

/// A store with its background syncer disabled: every append is synced inline, holding
/// the driver, as before group commit (for comparisons: `group_commit = false`).
#[derive(Debug)]
pub struct InlineSync<S>(pub S);

impl<S: crate::raft::LogStore> crate::raft::LogStore for InlineSync<S> {
    fn append(&mut self, entries: &[crate::raft::Entry]) -> Result<(), crate::raft::StoreError> {
        self.0.append(entries)
    }
    fn save_hard_state(
        &mut self,
        hs: crate::raft::HardState,
    ) -> Result<(), crate::raft::StoreError> {
        self.0.save_hard_state(hs)
    }
    fn compact(&mut self, upto: crate::raft::Index) -> Result<(), crate::raft::StoreError> {
        self.0.compact(upto)
    }
    fn hard_state(&self) -> crate::raft::HardState {
        self.0.hard_state()
    }
    fn snapshot_point(&self) -> (crate::raft::Index, crate::raft::Term) {
        self.0.snapshot_point()
    }
    fn last_index(&self) -> crate::raft::Index {
        self.0.last_index()
    }
    fn entries(
        &self,
        lo: crate::raft::Index,
        hi: crate::raft::Index,
    ) -> Result<Vec<crate::raft::Entry>, crate::raft::StoreError> {
        self.0.entries(lo, hi)
    }
    fn save_snapshot(
        &mut self,
        snap: &crate::raft::Snapshot,
    ) -> Result<(), crate::raft::StoreError> {
        self.0.save_snapshot(snap)
    }
    fn snapshot(&self) -> Result<Option<crate::raft::Snapshot>, crate::raft::StoreError> {
        self.0.snapshot()
    }
}
