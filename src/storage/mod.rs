//! Durable implementations of [`LogStore`](crate::raft::LogStore): what a node that must
//! survive a process kill or a restart persists to.
//!
//! - [`FileStore`]: a first durable store, one directory per node: an append-only log
//!   file of checksummed records, the hard state and the snapshot point in small files
//!   replaced atomically. Simple rather than fast: one write and (by default) one fsync
//!   per append, no group commit. A write-ahead log with group commit comes later behind
//!   the same trait.
//!
//! [`SyncPolicy`] says how far each write is pushed before the store returns; it is shared
//! by every durable store so that configurations keep their meaning when stores change.

pub mod file;

pub use file::{FileStore, Recovery, HARD_STATE_FILE, LOG_FILE, META_FILE};

use serde::{Deserialize, Serialize};

/// How far a durable store pushes each write before it returns.
///
/// Raft's safety argument assumes that a node's vote, term and acknowledged entries
/// survive any crash: only [`SyncPolicy::Always`] gives that. [`SyncPolicy::Never`] is for
/// measurements and tests that want the file format's cost without the disk's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// `fdatasync` after every append and hard-state save, and `fsync` of the directory
    /// after every atomic file replacement, all before the call returns. What survives a
    /// power loss is then exactly what the store acknowledged.
    #[default]
    Always,
    /// Never sync: writes go to the OS page cache and reach the disk when the kernel
    /// decides. Everything a call acknowledged survives the process being killed
    /// (SIGKILL, panic, abort), because the kernel still holds it; a power loss or kernel
    /// crash may lose any suffix of recent writes, including a vote, which is unsafe for
    /// Raft (a node could vote twice in one term or forget entries it acknowledged).
    Never,
}
