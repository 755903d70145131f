//! The consensus core: Raft as a deterministic, sans-IO state machine.
//!
//! Nothing in here touches a socket, a clock, a thread or an unseeded random source.
//! Inputs are messages, proposals, the current time and acknowledgements; outputs are
//! collected in a [`Ready`]. The same core runs under the simulator's virtual time
//! ([`crate::sim`]) and under the async runtime of [`crate::server`] with real transports.
//!
//! # Driving a node
//!
//! ```
//! use bytes::Bytes;
//! use raftbench::raft::{Config, LogStore, MemStore, Membership, RaftNode, Time};
//!
//! // A one-node cluster elects itself at its first election timeout.
//! let members = Membership::new(1, vec![1]);
//! let mut node = RaftNode::new(members, Config::default(), 42, Time::ZERO).unwrap();
//! let mut store = MemStore::new();
//! let mut now = Time::ZERO;
//! let mut applied = Vec::new();
//!
//! for step in 0..3 {
//!     // 1. Feed inputs: timers when due, messages from peers (`node.step`), proposals.
//!     now = now.max(node.next_deadline());
//!     node.tick(now);
//!     if step == 1 {
//!         node.propose(Bytes::from_static(b"put x 1"), now).unwrap();
//!     }
//!     // 2. Collect and carry out what the node asks, in the order Ready documents.
//!     let rd = node.ready();
//!     // rd.messages: hand to the transport now.
//!     if let Some(hs) = rd.hard_state {
//!         store.save_hard_state(hs).unwrap();
//!     }
//!     if let Some(last) = rd.entries.last() {
//!         store.append(&rd.entries).unwrap();
//!         node.persisted(last.index, last.term);
//!     }
//!     // rd.persisted_messages: hand to the transport only now, after the disk write.
//!     for e in &rd.committed {
//!         applied.push(e.data.clone()); // apply to the state machine
//!     }
//!     if let Some(e) = rd.committed.last() {
//!         node.applied(e.index);
//!     }
//!     if let Some(upto) = rd.compact_to {
//!         store.compact(upto).unwrap();
//!     }
//!     // 3. Acknowledgements may produce more work (the leader's own persist can commit).
//!     while node.has_ready() {
//!         let rd = node.ready();
//!         for e in &rd.committed {
//!             applied.push(e.data.clone());
//!         }
//!         if let Some(e) = rd.committed.last() {
//!             node.applied(e.index);
//!         }
//!     }
//! }
//! assert!(applied.contains(&Bytes::from_static(b"put x 1")));
//! ```
//!
//! A real driver loops: wait until `next_deadline()` or until a message or proposal
//! arrives; feed everything that arrived (`step`, `propose`, `tick`); then drain
//! `ready()` until `has_ready()` is false. Feeding many inputs before one `ready()`
//! is what lets batches grow with load: proposals only join the log, and the
//! AppendEntries that carry them are built in `ready()`, once per round.
//!
//! # Snapshots
//!
//! With `snapshot_entries` above 0, the driver asks [`RaftNode::snapshot_due`] after applying;
//! when it answers an index, the driver encodes its state machine there and hands it to
//! [`RaftNode::snapshot_taken`], which discards the log up to it at once (whatever the
//! followers hold) and returns the [`Snapshot`] to save with [`LogStore::save_snapshot`].
//! A follower that needs an entry below the leader's first index gets the snapshot in
//! chunks of at most `snapshot_chunk_bytes` (the leader's [`Progress`] is in state
//! `Snapshot` meanwhile, replication to the others goes on); once the last chunk is in, its
//! [`Ready::snapshot`] asks the driver to save it and replace its state machine with it, and
//! the leader resumes with the entries after it. After a restart, the driver restores its
//! state machine from [`LogStore::snapshot`] before re-applying the log after it.
//!
//! # What the pieces are
//! - [`RaftNode`]: roles, terms, votes, the log consistency check, commit.
//! - [`Progress`] and [`Inflights`]: the leader's view of each follower and its pipeline window.
//! - [`Batcher`]: proposals held for the optional linger.
//! - [`RaftLog`]: the in-memory log after a discarded prefix.
//! - [`LogStore`]: where the driver persists; [`MemStore`] in memory.

pub mod batcher;
pub mod config;
pub mod log;
pub mod message;
pub mod node;
pub mod progress;
pub mod store;
pub mod types;

pub use batcher::Batcher;
pub use config::{CommitMode, Config, ConfigError, Membership, ReplicationTrigger};
pub use log::RaftLog;
pub use message::{
    AppendEntries, AppendEntriesResponse, AppendKind, InstallSnapshot, InstallSnapshotResponse,
    Message, MessageBody, RejectHint, RequestVote, RequestVoteResponse,
};
pub use node::{
    Event, ProposeError, RaftNode, Ready, RestoreError, SnapshotError, Stats, StepError,
};
pub use progress::{next_after_reject, Inflights, Progress, ProgressState, SnapshotTransfer};
pub use store::{DurableSink, LogStore, MemStore, StoreError};
pub use types::{
    Entry, EntryKind, HardState, Index, NodeId, Role, Snapshot, SnapshotMeta, Term, Time,
    ENTRY_OVERHEAD,
};
