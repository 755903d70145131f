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

/// How a core node behaves. Durations are in virtual or real time alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// This node's id; must be in `voters`.
    pub id: NodeId,
    /// Every voting member, this node included.
    pub voters: Vec<NodeId>,
    /// How often a leader sends an AppendEntries to an idle follower.
    pub heartbeat_interval: Duration,
    /// Minimum election timeout; each timeout is drawn uniformly from [this, 2 x this).
    pub election_timeout: Duration,
    /// Most entries in one AppendEntries.
    pub max_batch_entries: usize,
    /// Most payload bytes (with per-entry overhead) in one AppendEntries; one entry always fits.
    pub max_batch_bytes: usize,
    /// How long a proposal may wait at the leader for more to join its batch (0: none).
    pub linger: Duration,
    /// Most AppendEntries carrying entries in flight to one follower (the pipeline window).
    pub max_inflight_msgs: usize,
    /// Most entry bytes in flight to one follower.
    pub max_inflight_bytes: usize,
    /// When followers learn that commit advanced.
    pub commit_mode: CommitMode,
    /// When new entries are sent.
    pub trigger: ReplicationTrigger,
    /// Whether sending an AppendEntries to a follower restarts that follower's heartbeat timer.
    /// True (as etcd and raft-rs do not, but many implementations do) makes a sparse-load
    /// follower learn commits a full interval late; false keeps one leader-wide periodic timer,
    /// so the wait is uniform over the interval.
    pub append_resets_heartbeat: bool,
    /// A leader that has not heard from a majority within an election timeout steps down,
    /// so a partitioned leader stops accepting proposals it cannot commit.
    pub check_quorum: bool,
    /// Before an election, ask for pre-votes without raising the term (Raft thesis 9.6);
    /// a node grants one only if it has not heard from a leader within the minimum
    /// election timeout. A node that was partitioned or restarted then cannot force an
    /// election on a cluster whose leader is alive.
    pub pre_vote: bool,
    /// Discard the applied log prefix once this many entries can go (0: never discard).
    pub compact_threshold: u64,
}

impl Config {
    /// A configuration with the defaults for node `id` of `voters`.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        Config {
            id,
            voters,
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
        }
    }

    /// Checks the values make sense together; the error names the offending field.
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
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval", "must be above zero".into());
        }
        if self.heartbeat_interval >= self.election_timeout {
            return bad(
                "heartbeat_interval",
                format!(
                    "{:?} must be below election_timeout {:?}, or followers start elections under a live leader",
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
        Ok(())
    }

    /// Votes needed to win an election or commit an entry: a majority, counting the leader.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
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
