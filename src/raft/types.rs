//! Plain value types shared by every part of the core.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use bytes::Bytes;

/// Identifies one member of the cluster; ids are small and stable for the cluster's life.
pub type NodeId = u64;
/// A Raft term: a logical clock that orders leaderships.
pub type Term = u64;
/// A position in the replicated log; the first entry has index 1, 0 means "before the log".
pub type Index = u64;

/// A point in time as the driver sees it: nanoseconds since an epoch the driver chose.
///
/// The core never reads a clock; every input carries the time, so the same code runs
/// under virtual time in the simulator and under `std::time::Instant` in the runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The driver's epoch.
    pub const ZERO: Time = Time(0);

    /// A time `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this is, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, earlier: Time) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.0 as f64 / 1e9)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A client command, opaque to the core.
    Normal,
    /// The empty entry a new leader appends so that entries of earlier terms can commit
    /// (Raft paper section 5.4.2: a leader only counts replicas of its own term).
    Noop,
}

/// One slot of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Position in the log.
    pub index: Index,
    /// Whether this is a client command or a leader's no-op.
    pub kind: EntryKind,
    /// The command bytes; shared, never copied by the core.
    pub data: Bytes,
}

impl Entry {
    /// Bytes this entry accounts for in batch and in-flight limits (payload plus a fixed header).
    pub fn size(&self) -> usize {
        ENTRY_OVERHEAD + self.data.len()
    }
}

/// Fixed per-entry cost used for byte limits: term, index, kind and payload length, as the
/// codec frames an entry (8 + 8 + 1 + 4 bytes).
pub const ENTRY_OVERHEAD: usize = 21;

/// The state a node must persist before it answers a message that depends on it
/// (Figure 2: currentTerm and votedFor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Latest term this node has seen.
    pub term: Term,
    /// Candidate this node voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
}

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks for votes to become leader.
    Candidate,
    /// Accepts proposals and replicates the log.
    Leader,
}

/// What a snapshot covers: the log up to and including `index` (whose entry had `term`),
/// and the membership at that point (raft-rs keeps the same triple).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMeta {
    /// Last log index the snapshot includes.
    pub index: Index,
    /// Term of the entry at `index`.
    pub term: Term,
    /// Every voting member when the snapshot was taken (fixed for a cluster's life here,
    /// carried so that a restored node can tell).
    pub voters: Vec<NodeId>,
}

/// A state-machine snapshot: its metadata and the state machine's own encoding, opaque to
/// the core (shared, never copied by it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The state machine's encoding of itself at `meta.index`.
    pub data: Bytes,
}
