//! Every knob of the core, with the defaults a demanding user would start from.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::NodeId;

/// When the leader tells followers that commit advanced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitMode {
    /// The commit index rides on the next AppendEntries or heartbeat (Raft as published).
    Piggyback,
    /// As soon as commit advances, each follower that gets no AppendEntries in the same
    /// round receives an empty one carrying the new commit index: one extra message.
    Eager,
}

/// When the leader sends new entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationTrigger {
    /// As soon as a follower's window has room (adaptive batching).
    Immediate,
    /// Only when the heartbeat timer fires, as naive implementations do.
    OnTick,
}

/// Who is in the cluster and which member this node is: fixed for a node's life, and kept
/// apart from the knobs so that one [`Config`] serves every node of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// This node's id; must be in `voters`.
    pub id: NodeId,
    /// Every voting member, this node included.
    pub voters: Vec<NodeId>,
}

impl Membership {
    /// Node `id` of `voters`.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Membership {
        Membership { id, voters }
    }

    /// Checks that this node is a member and nobody is named twice.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: String| Err(ConfigError { field, reason });
        if self.voters.is_empty() {
            return bad("voters", "must name at least one node".into());
        }
        if !self.voters.contains(&self.id) {
            return bad(
                "id",
                format!("{} is not among the voters {:?}", self.id, self.voters),
            );
        }
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.voters.len() {
            return bad("voters", format!("{:?} names a node twice", self.voters));
        }
        Ok(())
    }

    /// Votes needed to win an election or commit an entry: a majority, counting the leader.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// Largest `snapshot_chunk_bytes`: half the transports' default frame limit, so that a
/// chunk and its header always fit in one frame.
pub const MAX_SNAPSHOT_CHUNK: usize = 8 << 20;

/// Every knob of the core, as configuration files spell them: the field names below are
/// the Rust names, and files use the serde names (durations in milliseconds:
/// `heartbeat_ms`, `election_timeout_ms`, `linger_ms`). Missing keys take the defaults;
/// unknown keys are refused. Durations are in virtual or real time alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How often a leader sends an AppendEntries to an idle follower (default 50 ms).
    #[serde(rename = "heartbeat_ms", with = "millis")]
    pub heartbeat_interval: Duration,
    /// Minimum election timeout; each timeout is drawn uniformly from [this, 2 x this)
    /// (default 500 ms).
    #[serde(rename = "election_timeout_ms", with = "millis")]
    pub election_timeout: Duration,
    /// Most entries in one AppendEntries (default 1024).
    pub max_batch_entries: usize,
    /// Most payload bytes (with per-entry overhead) in one AppendEntries; one entry always
    /// fits (default 1 MiB).
    pub max_batch_bytes: usize,
    /// How long a proposal may wait at the leader for more to join its batch (default 0: none).
    #[serde(rename = "linger_ms", with = "millis")]
    pub linger: Duration,
    /// Most AppendEntries carrying entries in flight to one follower: the pipeline window
    /// (default 16).
    pub max_inflight_msgs: usize,
    /// Most entry bytes in flight to one follower (default 16 MiB).
    pub max_inflight_bytes: usize,
    /// When followers learn that commit advanced: `piggyback` (default) or `eager`.
    pub commit_mode: CommitMode,
    /// When new entries are sent: `immediate` (default) or `on_tick`.
    pub trigger: ReplicationTrigger,
    /// Whether sending an AppendEntries to a follower restarts that follower's heartbeat timer.
    /// True (as etcd and raft-rs do not, but many implementations do) makes a sparse-load
    /// follower learn commits a full interval late; false (default) keeps one leader-wide
    /// periodic timer, so the wait is uniform over the interval.
    pub append_resets_heartbeat: bool,
    /// A leader that has not heard from a majority within an election timeout steps down,
    /// so a partitioned leader stops accepting proposals it cannot commit (default true).
    pub check_quorum: bool,
    /// Before an election, ask for pre-votes without raising the term (Raft thesis 9.6);
    /// a node grants one only if it has not heard from a leader within the minimum
    /// election timeout. A node that was partitioned or restarted then cannot force an
    /// election on a cluster whose leader is alive (default true).
    pub pre_vote: bool,
    /// Discard the applied log prefix once this many entries can go (0: never discard;
    /// default 8192). Only the prefix every node holds goes, so a follower that stays down
    /// keeps the leader's log growing; used only when `snapshot_entries` is 0.
    pub compact_threshold: u64,
    /// Most entries a leader holds proposed but not yet committed (those waiting for the
    /// linger included); a proposal beyond it is refused at once as overloaded, so that
    /// offered load past what the cluster commits is pushed back to clients instead of
    /// queueing without bound (default 8192: more than one full window of batches).
    pub max_uncommitted_entries: usize,
    /// Most payload bytes (with per-entry overhead) a leader holds proposed but not yet
    /// committed; one proposal is always accepted when nothing is uncommitted, as raft-rs's
    /// `max_uncommitted_size` does (default 32 MiB).
    pub max_uncommitted_bytes: usize,
    /// Ask the driver for a state-machine snapshot every this many applied entries
    /// ([`RaftNode::snapshot_due`](super::RaftNode::snapshot_due)); each snapshot discards
    /// the log up to its index on this node, whatever the followers hold, and a follower
    /// behind it receives the snapshot (InstallSnapshot). 0 (default): never, and the log
    /// is compacted by `compact_threshold` as before, for drivers that cannot snapshot.
    pub snapshot_entries: u64,
    /// Most snapshot bytes in one InstallSnapshot chunk (default 1 MiB, at most 8 MiB so a
    /// chunk always fits the transports' 16 MiB frame limit).
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot a follower buffers from a leader; a bigger transfer is dropped
    /// (default 4 GiB).
    pub max_snapshot_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(500),
            max_batch_entries: 1024,
            max_batch_bytes: 1 << 20,
            linger: Duration::ZERO,
            max_inflight_msgs: 16,
            max_inflight_bytes: 16 << 20,
            commit_mode: CommitMode::Piggyback,
            trigger: ReplicationTrigger::Immediate,
            append_resets_heartbeat: false,
            check_quorum: true,
            pre_vote: true,
            compact_threshold: 8192,
            max_uncommitted_entries: 8192,
            max_uncommitted_bytes: 32 << 20,
            snapshot_entries: 0,
            snapshot_chunk_bytes: 1 << 20,
            max_snapshot_bytes: 4 << 30,
        }
    }
}

impl Config {
    /// Checks the values make sense together; the error names the offending key as files
    /// spell it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: String| Err(ConfigError { field, reason });
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_ms", "must be above zero".into());
        }
        if self.heartbeat_interval >= self.election_timeout {
            return bad(
                "heartbeat_ms",
                format!(
                    "{:?} must be below election_timeout_ms {:?}, or followers start elections under a live leader",
                    self.heartbeat_interval, self.election_timeout
                ),
            );
        }
        if self.max_batch_entries == 0 {
            return bad("max_batch_entries", "must be at least 1".into());
        }
        if self.max_batch_bytes == 0 {
            return bad("max_batch_bytes", "must be at least 1".into());
        }
        if self.max_inflight_msgs == 0 {
            return bad(
                "max_inflight_msgs",
                "must be at least 1 (1 means no pipelining)".into(),
            );
        }
        if self.max_inflight_bytes == 0 {
            return bad("max_inflight_bytes", "must be at least 1".into());
        }
        if self.max_uncommitted_entries == 0 {
            return bad(
                "max_uncommitted_entries",
                "must be at least 1, or the leader accepts no proposal".into(),
            );
        }
        if self.max_uncommitted_bytes == 0 {
            return bad(
                "max_uncommitted_bytes",
                "must be at least 1, or the leader accepts no proposal".into(),
            );
        }
        if self.snapshot_chunk_bytes == 0 || self.snapshot_chunk_bytes > MAX_SNAPSHOT_CHUNK {
            return bad(
                "snapshot_chunk_bytes",
                format!(
                    "{} must be between 1 and {MAX_SNAPSHOT_CHUNK} (a chunk must fit in one frame)",
                    self.snapshot_chunk_bytes
                ),
            );
        }
        if self.max_snapshot_bytes == 0 {
            return bad("max_snapshot_bytes", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Durations as (fractional) milliseconds in files; a negative or non-finite number is
/// refused with the value in the message.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        if !ms.is_finite() || ms < 0.0 {
            return Err(serde::de::Error::custom(format!(
                "must be a non-negative number of milliseconds, got {ms}"
            )));
        }
        Ok(Duration::from_secs_f64(ms / 1e3))
    }
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid raft config: `{field}` {reason}")]
pub struct ConfigError {
    /// The field at fault, as named in the config.
    pub field: &'static str,
    /// Why it cannot work.
    pub reason: String,
}
