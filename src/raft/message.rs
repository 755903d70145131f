//! The messages Raft nodes exchange (Figure 2 of the paper, plus the fast-backup hint).

use bytes::Bytes;

use super::types::{Entry, Index, NodeId, SnapshotMeta, Term};

/// One message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Sender's current term; a receiver with a lower term steps down.
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// Leader to follower: new entries (possibly none: a heartbeat) and the commit index.
    AppendEntries(AppendEntries),
    /// Follower to leader: whether the entries matched and how far the logs agree.
    AppendEntriesResponse(AppendEntriesResponse),
    /// Candidate to everyone: please vote for me.
    RequestVote(RequestVote),
    /// Answer to a vote request.
    RequestVoteResponse(RequestVoteResponse),
    /// Leader to a follower behind its discarded prefix: one chunk of a snapshot.
    InstallSnapshot(InstallSnapshot),
    /// Follower to leader: how far the snapshot transfer got, or that it is installed.
    InstallSnapshotResponse(InstallSnapshotResponse),
}

/// Why an AppendEntries was sent; measurement only, the receiver treats all alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppendKind {
    /// Carries new entries (or probes the follower's log).
    Entries,
    /// Sent because the heartbeat timer fired.
    Heartbeat,
    /// Sent only to tell the follower that commit advanced (eager commit mode).
    CommitNotice,
}

/// AppendEntries: the log consistency check plus the entries that follow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntries {
    /// Index of the entry just before `entries`.
    pub prev_log_index: Index,
    /// Term of that entry; the follower must hold it to accept.
    pub prev_log_term: Term,
    /// Entries to store, in index order, starting at `prev_log_index + 1`.
    pub entries: Vec<Entry>,
    /// Leader's commit index; the follower commits up to min(this, last new entry).
    pub leader_commit: Index,
    /// Every node holds the log up to here, so a node may discard what it has applied below it.
    pub compact_floor: Index,
    /// Why the leader sent it.
    pub kind: AppendKind,
}

/// The follower's answer to AppendEntries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntriesResponse {
    /// The `prev_log_index` of the request being answered, so stale answers can be told apart.
    pub prev_log_index: Index,
    /// On success: the last index known to match the leader's log (prev + entries).
    /// On rejection: unused (0).
    pub match_index: Index,
    /// None on success; on rejection, where the leader should look next.
    pub reject: Option<RejectHint>,
}

/// Fast backup: lets the leader skip a whole conflicting term per round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RejectHint {
    /// Term of the follower's entry at `prev_log_index`, or None if its log is shorter.
    pub conflict_term: Option<Term>,
    /// First index the follower holds with `conflict_term` (meaningful when it is Some).
    pub conflict_index: Index,
    /// Index of the follower's last entry.
    pub last_index: Index,
}

/// RequestVote: a candidate's bid, with its log position for the up-to-date check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestVote {
    /// Index of the candidate's last entry.
    pub last_log_index: Index,
    /// Term of the candidate's last entry.
    pub last_log_term: Term,
    /// A pre-vote (Raft thesis 9.6): "would you vote for me in the term after mine?"
    /// Asks without raising anyone's term, so a node that cannot win does not disrupt.
    pub pre_vote: bool,
}

/// The answer to RequestVote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestVoteResponse {
    /// Whether the vote was granted.
    pub granted: bool,
    /// Whether this answers a pre-vote.
    pub pre_vote: bool,
}

/// One chunk of a snapshot (Raft paper Figure 13, with raft-rs's metadata). Chunks go one
/// at a time; a follower keeps the bytes of one transfer, identified by sender, term and
/// snapshot, and asks for the offset it needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSnapshot {
    /// What the whole snapshot covers.
    pub meta: SnapshotMeta,
    /// Byte offset of `data` in the snapshot's data.
    pub offset: u64,
    /// The chunk; at most the leader's `snapshot_chunk_bytes`.
    pub data: Bytes,
    /// Whether this is the last chunk.
    pub done: bool,
}

/// The follower's answer to one [`InstallSnapshot`] chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSnapshotResponse {
    /// Index of the snapshot being answered.
    pub snapshot_index: Index,
    /// Term of the snapshot being answered.
    pub snapshot_term: Term,
    /// Bytes of the snapshot the follower holds: the offset the leader should send next
    /// (0 when the follower has no transfer in progress with this leader and snapshot).
    pub next_offset: u64,
    /// Set once the follower's log matches the leader's up to this index (the snapshot
    /// is installed, or the follower already had what it covers): replication resumes after it.
    pub match_index: Option<Index>,
}

impl Message {
    /// Whether this message is an AppendEntries of any kind.
    pub fn is_append(&self) -> bool {
        matches!(self.body, MessageBody::AppendEntries(_))
    }
}
