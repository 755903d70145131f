//! One Raft node as a deterministic state machine: inputs in, [`Ready`] out.

use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::batcher::Batcher;
use super::config::{CommitMode, Config, ConfigError, Membership, ReplicationTrigger};
use super::log::RaftLog;
use super::message::{
    AppendEntries, AppendEntriesResponse, AppendKind, InstallSnapshot, InstallSnapshotResponse,
    Message, MessageBody, RejectHint, RequestVote, RequestVoteResponse,
};
use super::progress::{needed_after_reject, next_after_reject, Progress, ProgressState};
use super::store::{LogStore, StoreError};
use super::types::{
    Entry, EntryKind, HardState, Index, NodeId, Role, Snapshot, SnapshotMeta, Term, Time,
    ENTRY_OVERHEAD,
};

/// Something the driver should know about, beyond what to send, persist and apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The node took a new role (in `term`).
    RoleChanged {
        /// The term the role belongs to.
        term: Term,
        /// The new role.
        role: Role,
    },
    /// The node learned who leads `term` (None: nobody it knows of).
    LeaderChanged {
        /// The term.
        term: Term,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// The commit index moved from `from` to `to` at the time of the input being handled.
    /// On the leader this is when the entries committed; on a follower, when it learned it.
    CommitAdvanced {
        /// Old commit index.
        from: Index,
        /// New commit index.
        to: Index,
    },
    /// The leader put entries `first..=last` into an AppendEntries to `to` (heartbeats and
    /// commit notices carry none and are not reported). Drivers measure batch sizes and the
    /// pipeline from these, without walking the outgoing messages.
    EntriesSent {
        /// The follower.
        to: NodeId,
        /// First entry carried.
        first: Index,
        /// Last entry carried.
        last: Index,
        /// AppendEntries with entries now unacknowledged by that follower, this one included
        /// (a probe is not counted: it is alone by definition).
        inflight: usize,
    },
}

/// What the driver must do after feeding the node inputs, in this order:
/// send `messages`; persist `hard_state`, `snapshot` and `entries`, then call
/// [`RaftNode::persisted`]; send `persisted_messages`; restore the state machine from
/// `snapshot`; apply `committed`, then call [`RaftNode::applied`]; discard the store's prefix
/// up to `compact_to`. Separately, after applying, a driver that snapshots asks
/// [`RaftNode::snapshot_due`] and hands a snapshot to [`RaftNode::snapshot_taken`].
#[derive(Debug, Default)]
pub struct Ready {
    /// Messages that may leave at once (a leader's AppendEntries need not wait for its own disk).
    pub messages: Vec<Message>,
    /// New hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: the node's log now starts after it. Persist it
    /// ([`LogStore::save_snapshot`]) before `entries`, and replace the state machine with
    /// it before applying `committed` (which continue after its index).
    pub snapshot: Option<Snapshot>,
    /// Entries to persist; any stored entry at or after the first one's index is replaced.
    pub entries: Vec<Entry>,
    /// Messages that may only leave once `hard_state` and `entries` are persisted
    /// (votes and acknowledgements promise what is on disk).
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in index order.
    pub committed: Vec<Entry>,
    /// The store may discard entries up to here (after persisting `entries`).
    pub compact_to: Option<Index>,
    /// Events, in the order they happened.
    pub events: Vec<Event>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.persisted_messages.is_empty()
            && self.committed.is_empty()
            && self.compact_to.is_none()
            && self.events.is_empty()
    }
}

/// Why a proposal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals; the hint names the leader this node knows of.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader {
        /// The leader this node last heard from in its term, if any.
        leader: Option<NodeId>,
    },
    /// The leader already holds `max_uncommitted_entries` or `max_uncommitted_bytes` of
    /// uncommitted proposals: the cluster commits more slowly than proposals arrive. Retry
    /// later; nothing was appended.
    #[error("overloaded: {entries} entries ({bytes} bytes) proposed and not yet committed")]
    Overloaded {
        /// Uncommitted entries held.
        entries: u64,
        /// Their bytes, with per-entry overhead.
        bytes: usize,
    },
}

/// Why an incoming message was refused. The node's state is unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The sender is not a member of the cluster.
    #[error("message from unknown node {0}")]
    UnknownPeer(NodeId),
    /// The message is addressed to another node.
    #[error("message for node {to} delivered to node {me}")]
    WrongRecipient {
        /// The addressee.
        to: NodeId,
        /// This node.
        me: NodeId,
    },
    /// The message contradicts itself (entries out of order, from a future term, ...).
    #[error("malformed message from node {from}: {reason}")]
    Malformed {
        /// The sender.
        from: NodeId,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Why the core refused a snapshot the driver took.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The state machine has not applied the index the snapshot claims to cover.
    #[error("snapshot at index {index} is past the applied index {applied}")]
    NotApplied {
        /// The snapshot's index.
        index: Index,
        /// The highest index the driver reported applied.
        applied: Index,
    },
    /// The log is already discarded up to the index (a newer snapshot exists).
    #[error("snapshot at index {index} is not newer than the current one at {current}")]
    Stale {
        /// The snapshot's index.
        index: Index,
        /// Index of the latest snapshot or discarded prefix.
        current: Index,
    },
}

/// Why a node could not be rebuilt from its store.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters a node keeps about what it sent; the harness turns them into per-request costs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// AppendEntries carrying entries (or probing).
    pub appends: u64,
    /// Empty AppendEntries sent because the heartbeat timer fired.
    pub heartbeats: u64,
    /// Empty AppendEntries sent only to announce a commit (eager mode).
    pub commit_notices: u64,
    /// Entries carried by all AppendEntries.
    pub entries_sent: u64,
    /// Entry bytes (payload plus per-entry overhead) carried by all AppendEntries.
    pub entry_bytes_sent: u64,
    /// AppendEntries responses sent.
    pub append_responses: u64,
    /// Vote requests sent (pre-votes included).
    pub vote_requests: u64,
    /// Vote responses sent (pre-vote answers included).
    pub vote_responses: u64,
    /// Elections this node started.
    pub elections: u64,
    /// InstallSnapshot chunks sent (resends included).
    pub snapshot_chunks: u64,
    /// Snapshot bytes carried by those chunks.
    pub snapshot_bytes_sent: u64,
    /// Snapshots this node installed from a leader.
    pub snapshots_installed: u64,
}

impl Stats {
    /// Every AppendEntries sent, of any kind.
    pub fn append_messages(&self) -> u64 {
        self.appends + self.heartbeats + self.commit_notices
    }
}

/// A Raft node: the whole of Figure 2, plus batching, pipelining and commit-notice modes.
///
/// See the [module documentation](super) for how to drive it.
pub struct RaftNode {
    members: Membership,
    cfg: Config,
    rng: ChaCha8Rng,
    now: Time,

    term: Term,
    voted_for: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: RaftLog,
    commit: Index,

    /// Highest index the driver has persisted (in the current log).
    persisted: Index,
    /// Highest index handed to the driver to apply.
    apply_handed: Index,
    /// Highest index the driver has applied.
    applied: Index,
    /// Lowest index every node is known to hold, as the leader last said.
    compact_floor: Index,

    election_deadline: Time,
    /// Leader-wide heartbeat timer (used when appends do not reset it).
    heartbeat_deadline: Time,
    quorum_check_deadline: Time,
    votes: Vec<NodeId>,
    /// Scratch space for the commit computation.
    match_scratch: Vec<Index>,
    /// Pre-votes granted so far, while a pre-vote round is under way.
    prevotes: Option<Vec<NodeId>>,
    /// When this node last heard from the leader of its term (None: no leader known).
    leader_contact: Option<Time>,
    /// Per-follower progress, in `members.voters` order; None in the slot of this node.
    progress: Vec<Option<Progress>>,
    batcher: Batcher,
    /// Bytes (with per-entry overhead) of the leader's entries after the commit index,
    /// batcher included; zero off the leader.
    uncommitted_bytes: usize,
    hard_state_dirty: bool,
    unpersisted_from: Option<Index>,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    events: Vec<Event>,
    stats: Stats,
    /// The latest snapshot, taken here or installed from a leader; what a leader sends.
    snapshot: Option<Snapshot>,
    /// The snapshot transfer a follower is receiving.
    incoming: Option<Incoming>,
    /// A snapshot installed from a leader that the driver has not yet been handed.
    restore_pending: Option<Snapshot>,
}

/// A snapshot being received, chunk by chunk, from one leader in one term.
struct Incoming {
    from: NodeId,
    term: Term,
    meta: SnapshotMeta,
    data: Vec<u8>,
    /// Chunks that arrived ahead of `data`'s end (a reordering network), by offset, with
    /// their `done` flag; merged once the gap before them fills.
    ahead: std::collections::BTreeMap<u64, (Bytes, bool)>,
    /// Whether the chunk flagged `done` has been appended.
    complete: bool,
}

/// Most chunks a follower keeps ahead of a gap.
const MAX_CHUNKS_AHEAD: usize = 64;

impl Incoming {
    /// Appends the chunk at `offset` if it continues the data, keeps it aside if it is
    /// ahead (within bounds), ignores it if it is already held; then merges what now fits.
    fn add(&mut self, offset: u64, data: Bytes, done: bool) {
        let have = self.data.len() as u64;
        if offset > have {
            if self.ahead.len() < MAX_CHUNKS_AHEAD {
                self.ahead.insert(offset, (data, done));
            }
            return;
        }
        if offset == have && !self.complete {
            self.data.extend_from_slice(&data);
            self.complete = done;
        }
        while let Some(entry) = self.ahead.first_entry() {
            let at = *entry.key();
            let have = self.data.len() as u64;
            if at > have {
                break;
            }
            let (chunk, done) = entry.remove();
            if at == have && !self.complete {
                self.data.extend_from_slice(&chunk);
                self.complete = done;
            }
        }
    }

    /// Bytes held, those kept ahead included (what the bound applies to).
    fn buffered(&self) -> u64 {
        self.data.len() as u64
            + self
                .ahead
                .values()
                .map(|(c, _)| c.len() as u64)
                .sum::<u64>()
    }
}

impl RaftNode {
    /// A fresh node with an empty log, as at first boot. `seed` drives its election timeouts.
    pub fn new(
        members: Membership,
        cfg: Config,
        seed: u64,
        now: Time,
    ) -> Result<RaftNode, ConfigError> {
        members.validate()?;
        cfg.validate()?;
        Ok(RaftNode::build(
            members,
            cfg,
            seed,
            now,
            HardState::default(),
            RaftLog::default(),
        ))
    }

    /// A node rebuilt from what it persisted, as after a crash: volatile state starts over
    /// at the store's discarded prefix, which the driver's state machine already reflects
    /// (a driver that snapshots restores it from [`LogStore::snapshot`] first).
    pub fn restore(
        members: Membership,
        cfg: Config,
        seed: u64,
        now: Time,
        store: &impl LogStore,
    ) -> Result<RaftNode, RestoreError> {
        members.validate()?;
        cfg.validate()?;
        let (snap_index, snap_term) = store.snapshot_point();
        let entries = store.entries(snap_index + 1, store.last_index() + 1)?;
        let log = RaftLog::new(snap_index, snap_term, entries);
        let snapshot = store.snapshot()?;
        let mut node = RaftNode::build(members, cfg, seed, now, store.hard_state(), log);
        node.snapshot = snapshot;
        Ok(node)
    }

    fn build(
        members: Membership,
        cfg: Config,
        seed: u64,
        now: Time,
        hs: HardState,
        log: RaftLog,
    ) -> RaftNode {
        let snap = log.snapshot_index();
        let persisted = log.last_index();
        let mut node = RaftNode {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now,
            term: hs.term,
            voted_for: hs.voted_for,
            role: Role::Follower,
            leader: None,
            log,
            commit: snap,
            persisted,
            apply_handed: snap,
            applied: snap,
            compact_floor: snap,
            election_deadline: now,
            heartbeat_deadline: now,
            quorum_check_deadline: now,
            votes: Vec::new(),
            match_scratch: Vec::new(),
            prevotes: None,
            leader_contact: None,
            progress: Vec::new(),
            batcher: Batcher::default(),
            uncommitted_bytes: 0,
            hard_state_dirty: false,
            unpersisted_from: None,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            events: Vec::new(),
            stats: Stats::default(),
            snapshot: None,
            incoming: None,
            restore_pending: None,
            members,
            cfg,
        };
        node.reset_election_deadline();
        node
    }

    // ----- inputs -------------------------------------------------------------------

    /// Offers a client command. On the leader it returns the index and term the entry will
    /// have; the command is committed when an entry with that index and term is applied.
    pub fn propose(&mut self, data: Bytes, now: Time) -> Result<(Index, Term), ProposeError> {
        self.advance_time(now);
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        let index = self.log.last_index() + self.batcher.len() as Index + 1;
        let entries = index - 1 - self.commit;
        let size = ENTRY_OVERHEAD + data.len();
        if entries >= self.cfg.max_uncommitted_entries as Index
            || (self.uncommitted_bytes > 0
                && self.uncommitted_bytes + size > self.cfg.max_uncommitted_bytes)
        {
            return Err(ProposeError::Overloaded {
                entries,
                bytes: self.uncommitted_bytes,
            });
        }
        self.uncommitted_bytes += size;
        if self.cfg.linger.is_zero() && self.batcher.is_empty() {
            self.append_entry(EntryKind::Normal, data);
        } else {
            self.batcher.push(data, now);
            self.flush_batcher_if_due();
        }
        Ok((index, self.term))
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, msg: Message, now: Time) -> Result<(), StepError> {
        self.advance_time(now);
        if msg.to != self.members.id {
            return Err(StepError::WrongRecipient {
                to: msg.to,
                me: self.members.id,
            });
        }
        if msg.from == self.members.id || !self.members.voters.contains(&msg.from) {
            return Err(StepError::UnknownPeer(msg.from));
        }
        if let MessageBody::AppendEntries(ae) = &msg.body {
            check_append(&msg, ae)?;
        }
        if let MessageBody::InstallSnapshot(is) = &msg.body {
            check_install(&msg, is)?;
        }

        // A pre-vote asks about the term after the candidate's, and a granted pre-vote
        // answers with that term: neither may raise anyone's term.
        let pre_vote_term = match &msg.body {
            MessageBody::RequestVote(rv) => rv.pre_vote,
            MessageBody::RequestVoteResponse(r) => r.pre_vote && r.granted,
            _ => false,
        };
        if msg.term > self.term && !pre_vote_term {
            // Any message from a later term means ours is over (Figure 2, "All Servers").
            let leader = match msg.body {
                MessageBody::AppendEntries(_) | MessageBody::InstallSnapshot(_) => Some(msg.from),
                _ => None,
            };
            self.become_follower(msg.term, leader);
        }

        match msg.body {
            MessageBody::AppendEntries(ae) => self.on_append(msg.from, msg.term, ae),
            MessageBody::AppendEntriesResponse(r) => {
                if msg.term == self.term && self.role == Role::Leader {
                    self.on_append_response(msg.from, r);
                }
            }
            MessageBody::RequestVote(rv) if rv.pre_vote => self.on_pre_vote(msg.from, msg.term, rv),
            MessageBody::RequestVote(rv) => self.on_request_vote(msg.from, msg.term, rv),
            MessageBody::RequestVoteResponse(r) if r.pre_vote => {
                if r.granted && msg.term == self.term + 1 {
                    self.on_pre_vote_granted(msg.from);
                }
            }
            MessageBody::RequestVoteResponse(r) => {
                if msg.term == self.term && self.role == Role::Candidate && r.granted {
                    self.on_vote_granted(msg.from);
                }
            }
            MessageBody::InstallSnapshot(is) => self.on_install_snapshot(msg.from, msg.term, is),
            MessageBody::InstallSnapshotResponse(r) => {
                if msg.term == self.term && self.role == Role::Leader {
                    self.on_snapshot_response(msg.from, r);
                }
            }
        }
        Ok(())
    }

    /// Lets timers fire: elections, heartbeats, quorum checks, an expired linger.
    pub fn tick(&mut self, now: Time) {
        self.advance_time(now);
        match self.role {
            Role::Follower | Role::Candidate => {
                if now >= self.election_deadline {
                    if self.cfg.pre_vote {
                        self.pre_campaign();
                    } else {
                        self.campaign();
                    }
                }
            }
            Role::Leader => {
                if self.cfg.check_quorum && now >= self.quorum_check_deadline {
                    if !self.quorum_active() {
                        self.become_follower(self.term, None);
                        return;
                    }
                    self.quorum_check_deadline = now + self.cfg.election_timeout;
                }
                self.flush_batcher_if_due();
                self.heartbeat(now);
            }
        }
    }

    /// Acknowledges that entries up to `index` (whose entry has `term`) are persisted.
    pub fn persisted(&mut self, index: Index, term: Term) {
        if index <= self.persisted || self.log.term(index) != Some(term) {
            return; // stale: the entries were replaced since
        }
        self.persisted = index.min(self.log.last_index());
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// Acknowledges that the state machine has applied entries up to `index`.
    pub fn applied(&mut self, index: Index) {
        self.applied = self.applied.max(index.min(self.apply_handed));
    }

    /// The index a driver that snapshots should snapshot its state machine at now (the
    /// applied index), once `snapshot_entries` entries were applied since the last snapshot;
    /// None when snapshots are off or not yet due.
    pub fn snapshot_due(&self) -> Option<Index> {
        let every = self.cfg.snapshot_entries;
        (every > 0 && self.applied >= self.log.snapshot_index() + every).then_some(self.applied)
    }

    /// Takes the driver's snapshot of its state machine at applied index `index`: the log up
    /// to it is discarded here at once, whatever the followers hold (one behind it gets the
    /// snapshot). The driver must save the returned snapshot with
    /// [`LogStore::save_snapshot`], which discards the store's prefix too.
    pub fn snapshot_taken(&mut self, index: Index, data: Bytes) -> Result<Snapshot, SnapshotError> {
        if index > self.applied {
            return Err(SnapshotError::NotApplied {
                index,
                applied: self.applied,
            });
        }
        let current = self.log.snapshot_index();
        let Some(term) = self.log.term(index).filter(|_| index > current) else {
            return Err(SnapshotError::Stale { index, current });
        };
        let snap = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                voters: self.members.voters.clone(),
            },
            data,
        };
        self.log.compact(index);
        // Entries it covers are as durable as the snapshot the driver now saves; entries
        // up to it are committed, so this moves no commit.
        self.persisted = self.persisted.max(index);
        // Applied entries were handed out with their Ready, so nothing unpersisted is lost.
        if let Some(u) = self.unpersisted_from {
            if u <= index {
                self.unpersisted_from = (index < self.log.last_index()).then_some(index + 1);
            }
        }
        self.snapshot = Some(snap.clone());
        Ok(snap)
    }

    // ----- outputs ------------------------------------------------------------------

    /// Collects what the driver must do; see [`Ready`] for the order.
    pub fn ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            self.flush_batcher_if_due();
            self.replicate();
        }
        let mut rd = Ready {
            messages: std::mem::take(&mut self.messages),
            persisted_messages: std::mem::take(&mut self.persisted_messages),
            events: std::mem::take(&mut self.events),
            ..Ready::default()
        };
        if self.hard_state_dirty {
            self.hard_state_dirty = false;
            rd.hard_state = Some(self.hard_state());
        }
        rd.snapshot = self.restore_pending.take();
        if let Some(from) = self.unpersisted_from.take() {
            rd.entries = self
                .log
                .range(from, self.log.last_index())
                .cloned()
                .collect();
        }
        if self.commit > self.apply_handed {
            rd.committed = self
                .log
                .range(self.apply_handed + 1, self.commit)
                .cloned()
                .collect();
            self.apply_handed = self.commit;
        }
        rd.compact_to = self.maybe_compact();
        rd
    }

    /// Whether [`ready`](Self::ready) has anything to hand out.
    pub fn has_ready(&self) -> bool {
        !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || !self.events.is_empty()
            || self.hard_state_dirty
            || self.restore_pending.is_some()
            || self.unpersisted_from.is_some()
            || self.commit > self.apply_handed
            || (self.role == Role::Leader && self.has_replication_work())
    }

    /// When [`tick`](Self::tick) must next be called.
    pub fn next_deadline(&self) -> Time {
        match self.role {
            Role::Follower | Role::Candidate => self.election_deadline,
            Role::Leader => {
                let mut t = self.heartbeat_due();
                if self.cfg.check_quorum {
                    t = t.min(self.quorum_check_deadline);
                }
                if let Some(oldest) = self.batcher.oldest() {
                    t = t.min(oldest + self.cfg.linger);
                }
                t
            }
        }
    }

    // ----- observers ----------------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.members.id
    }
    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    /// Who is in the cluster, and which member this node is.
    pub fn membership(&self) -> &Membership {
        &self.members
    }
    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// Commit index.
    pub fn commit_index(&self) -> Index {
        self.commit
    }
    /// Highest index the driver reported applied.
    pub fn applied_index(&self) -> Index {
        self.applied
    }
    /// The persistent state as it stands (possibly not yet persisted).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
        }
    }
    /// The in-memory log.
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    /// The leader's view of follower `peer`, if this node leads.
    pub fn progress(&self, peer: NodeId) -> Option<&Progress> {
        let i = self.members.voters.iter().position(|&v| v == peer)?;
        self.progress.get(i)?.as_ref()
    }
    /// Counters of what this node sent.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// Proposals held back by the linger.
    pub fn pending_proposals(&self) -> usize {
        self.batcher.len()
    }
    /// Entries the leader holds proposed and not yet committed (linger included), and their
    /// bytes: what [`Config::max_uncommitted_entries`] and `max_uncommitted_bytes` bound.
    pub fn uncommitted(&self) -> (u64, usize) {
        if self.role != Role::Leader {
            return (0, 0);
        }
        let last = self.log.last_index() + self.batcher.len() as Index;
        (last - self.commit, self.uncommitted_bytes)
    }

    /// The latest snapshot this node holds (taken here or installed from a leader).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
    /// Bytes of the snapshot transfer being received, if one is under way.
    pub fn incoming_snapshot_bytes(&self) -> Option<usize> {
        self.incoming.as_ref().map(|i| i.data.len())
    }

    // ----- roles --------------------------------------------------------------------

    fn advance_time(&mut self, now: Time) {
        // Time never runs backwards for the core, even if a driver's inputs race.
        self.now = self.now.max(now);
    }

    fn random_election_timeout(&mut self) -> Duration {
        let base = self.cfg.election_timeout.as_nanos() as u64;
        Duration::from_nanos(base + self.rng.random_range(0..base.max(1)))
    }

    fn reset_election_deadline(&mut self) {
        self.election_deadline = self.now + self.random_election_timeout();
    }

    fn set_role(&mut self, role: Role) {
        if self.role != role {
            self.role = role;
            self.events.push(Event::RoleChanged {
                term: self.term,
                role,
            });
        }
    }

    fn set_leader(&mut self, leader: Option<NodeId>) {
        if self.leader != leader {
            self.leader = leader;
            self.events.push(Event::LeaderChanged {
                term: self.term,
                leader,
            });
        }
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.hard_state_dirty = true;
            // A transfer belongs to one leader's term; free its buffer.
            self.incoming = None;
            // A new term starts with no known leader; report that before naming one.
            self.set_leader(None);
        }
        // Only a leader's message (or a granted vote, in on_request_vote) defers our own
        // candidacy (Figure 2). A term raised by a candidate we refuse must not: a node with
        // a stale log whose timer runs first would otherwise keep resetting every node
        // that could win, and no leader would ever be elected (mixed-fault seed 566 with
        // clock drift). A leader that steps down has no election timer running: it starts one.
        if leader.is_some() || self.role == Role::Leader {
            self.reset_election_deadline();
        }
        self.set_role(Role::Follower);
        self.set_leader(leader);
        self.leader_contact = leader.map(|_| self.now);
        self.prevotes = None;
        self.progress.clear();
        self.votes.clear();
        self.batcher.clear();
        self.uncommitted_bytes = 0;
    }

    /// Asks every peer whether it would vote for us in the next term, without raising ours.
    fn pre_campaign(&mut self) {
        self.set_leader(None);
        self.leader_contact = None;
        self.prevotes = Some(vec![self.members.id]);
        self.reset_election_deadline();
        if self.members.quorum() <= 1 {
            self.campaign();
            return;
        }
        let rv = RequestVote {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: true,
        };
        for i in 0..self.members.voters.len() {
            let to = self.members.voters[i];
            if to != self.members.id {
                self.stats.vote_requests += 1;
                // Nothing was changed, so nothing must be persisted first.
                self.messages.push(Message {
                    from: self.members.id,
                    to,
                    term: self.term + 1,
                    body: MessageBody::RequestVote(rv.clone()),
                });
            }
        }
    }

    fn on_pre_vote(&mut self, from: NodeId, term: Term, rv: RequestVote) {
        let up_to_date =
            (rv.last_log_term, rv.last_log_index) >= (self.log.last_term(), self.log.last_index());
        // A node that hears from a live leader does not help unseat it (thesis 9.6).
        let leader_alive = self.role == Role::Leader
            || self
                .leader_contact
                .is_some_and(|t| self.now < t + self.cfg.election_timeout);
        let granted = term > self.term && up_to_date && !leader_alive;
        self.stats.vote_responses += 1;
        self.messages.push(Message {
            from: self.members.id,
            to: from,
            term: if granted { term } else { self.term },
            body: MessageBody::RequestVoteResponse(RequestVoteResponse {
                granted,
                pre_vote: true,
            }),
        });
    }

    fn on_pre_vote_granted(&mut self, from: NodeId) {
        let Some(prevotes) = self.prevotes.as_mut() else {
            return;
        };
        if !prevotes.contains(&from) {
            prevotes.push(from);
        }
        if prevotes.len() >= self.members.quorum() {
            self.campaign();
        }
    }

    fn campaign(&mut self) {
        self.prevotes = None;
        self.incoming = None;
        self.term += 1;
        self.voted_for = Some(self.members.id);
        self.hard_state_dirty = true;
        self.stats.elections += 1;
        self.set_leader(None);
        self.set_role(Role::Candidate);
        self.votes.clear();
        self.votes.push(self.members.id);
        self.reset_election_deadline();
        if self.votes.len() >= self.members.quorum() {
            self.become_leader();
            return;
        }
        let rv = RequestVote {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: false,
        };
        for i in 0..self.members.voters.len() {
            let to = self.members.voters[i];
            if to != self.members.id {
                self.stats.vote_requests += 1;
                // Our own vote must be on disk before we ask for others.
                self.persisted_messages.push(Message {
                    from: self.members.id,
                    to,
                    term: self.term,
                    body: MessageBody::RequestVote(rv.clone()),
                });
            }
        }
    }

    fn on_request_vote(&mut self, from: NodeId, term: Term, rv: RequestVote) {
        let up_to_date =
            (rv.last_log_term, rv.last_log_index) >= (self.log.last_term(), self.log.last_index());
        let granted = term == self.term
            && self.voted_for.is_none_or(|v| v == from)
            && up_to_date
            && self.role != Role::Leader;
        if granted {
            if self.voted_for.is_none() {
                self.voted_for = Some(from);
                self.hard_state_dirty = true;
            }
            // Granting a vote defers our own candidacy, or we would split the votes.
            self.reset_election_deadline();
        }
        self.stats.vote_responses += 1;
        self.persisted_messages.push(Message {
            from: self.members.id,
            to: from,
            term: self.term,
            body: MessageBody::RequestVoteResponse(RequestVoteResponse {
                granted,
                pre_vote: false,
            }),
        });
    }

    fn on_vote_granted(&mut self, from: NodeId) {
        if !self.votes.contains(&from) {
            self.votes.push(from);
        }
        if self.votes.len() >= self.members.quorum() {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        self.set_role(Role::Leader);
        self.set_leader(Some(self.members.id));
        let next = self.log.last_index() + 1;
        let now = self.now;
        self.progress = self
            .members
            .voters
            .iter()
            .map(|&v| {
                (v != self.members.id).then(|| {
                    Progress::new(
                        next,
                        self.cfg.max_inflight_msgs,
                        self.cfg.max_inflight_bytes,
                        now,
                    )
                })
            })
            .collect();
        self.heartbeat_deadline = now + self.cfg.heartbeat_interval;
        self.quorum_check_deadline = now + self.cfg.election_timeout;
        // Entries of earlier terms commit only once one of ours does (section 5.4.2).
        self.append_entry(EntryKind::Noop, Bytes::new());
        // Entries of earlier terms count against the limit until they commit, as ours do.
        self.uncommitted_bytes = self
            .log
            .range(self.commit + 1, self.log.last_index())
            .map(Entry::size)
            .sum();
        if self.members.voters.len() == 1 {
            self.maybe_commit();
        }
    }

    fn quorum_active(&mut self) -> bool {
        let mut active = 1; // the leader itself
        for pr in self.progress.iter_mut().flatten() {
            if pr.recent_active {
                active += 1;
            }
            pr.recent_active = false;
        }
        active >= self.members.quorum()
    }

    // ----- leader: log and replication ----------------------------------------------

    fn append_entry(&mut self, kind: EntryKind, data: Bytes) {
        let index = self.log.last_index() + 1;
        self.log.push(Entry {
            term: self.term,
            index,
            kind,
            data,
        });
        self.unpersisted_from.get_or_insert(index);
    }

    fn flush_batcher_if_due(&mut self) {
        if self.batcher.due(
            self.now,
            self.cfg.linger,
            self.cfg.max_batch_entries,
            self.cfg.max_batch_bytes,
        ) {
            let pending: Vec<Bytes> = self.batcher.take().collect();
            for data in pending {
                self.append_entry(EntryKind::Normal, data);
            }
        }
    }

    fn owes_commit_notice(&self, slot: usize) -> bool {
        self.progress[slot].as_ref().is_some_and(|pr| {
            pr.state != ProgressState::Snapshot && self.commit.min(pr.match_index) > pr.commit_sent
        })
    }

    fn has_replication_work(&self) -> bool {
        if self
            .progress
            .iter()
            .flatten()
            .any(|pr| pr.state == ProgressState::Snapshot && !pr.is_paused())
        {
            return true;
        }
        if self.cfg.commit_mode == CommitMode::Eager
            && (0..self.progress.len()).any(|slot| self.owes_commit_notice(slot))
        {
            return true;
        }
        if self.cfg.trigger == ReplicationTrigger::OnTick {
            return false;
        }
        let last = self.log.last_index();
        self.progress.iter().flatten().any(|pr| {
            !pr.is_paused() && (pr.next_index <= last || pr.state != ProgressState::Replicate)
        })
    }

    /// Sends entries to every follower whose window has room (in `immediate` mode), then
    /// eager commit notices.
    fn replicate(&mut self) {
        if self.cfg.trigger == ReplicationTrigger::Immediate {
            for slot in 0..self.progress.len() {
                self.send_entries(slot, false);
            }
        } else {
            // Snapshot chunks follow their answers whatever the trigger: one per heartbeat
            // would make a transfer take as many intervals as it has chunks.
            for slot in 0..self.progress.len() {
                if self.progress[slot]
                    .as_ref()
                    .is_some_and(|pr| pr.state == ProgressState::Snapshot)
                {
                    self.send_snapshot_chunk(slot, false);
                }
            }
        }
        if self.cfg.commit_mode == CommitMode::Eager {
            // Every follower hears of a commit it can accept as soon as it can accept it:
            // when commit advances, or when its own acknowledgement arrives after that.
            for slot in 0..self.progress.len() {
                if self.owes_commit_notice(slot) {
                    self.send_empty(slot, AppendKind::CommitNotice);
                }
            }
        }
    }

    /// Sends as many AppendEntries with entries to the follower in `slot` as its window
    /// allows (one probe in Probe state). `force_probe` sends a probe even when paused.
    fn send_entries(&mut self, slot: usize, force_probe: bool) {
        let last = self.log.last_index();
        loop {
            let Some(pr) = self.progress[slot].as_ref() else {
                return;
            };
            if pr.state == ProgressState::Snapshot {
                self.send_snapshot_chunk(slot, force_probe);
                return;
            }
            let probing = pr.state == ProgressState::Probe;
            if pr.is_paused() && !(force_probe && probing) {
                return;
            }
            if !probing && pr.next_index > last {
                return;
            }
            let next = pr.next_index.max(self.log.first_index());
            let prev = next - 1;
            let Some(prev_term) = self.log.term(prev) else {
                // Unreachable while compaction only discards what every node holds.
                return;
            };
            let (entries, bytes) =
                self.log
                    .batch(next, self.cfg.max_batch_entries, self.cfg.max_batch_bytes);
            let n = entries.len() as Index;
            let to = self.members.voters[slot];
            let commit = self.commit.min(prev + n);
            let now = self.now;
            let pr = self.progress[slot].as_mut().expect("checked above");
            pr.last_sent = now;
            pr.commit_sent = pr.commit_sent.max(commit);
            if probing {
                pr.probe_sent = true;
                pr.next_index = next;
            } else {
                pr.next_index = next + n;
                pr.inflights.add(prev + n, bytes);
            }
            let inflight = pr.inflights.count();
            self.stats.appends += 1;
            self.stats.entries_sent += n;
            self.stats.entry_bytes_sent += bytes as u64;
            if n > 0 {
                self.events.push(Event::EntriesSent {
                    to,
                    first: next,
                    last: prev + n,
                    inflight,
                });
            }
            let floor = self.compact_floor_as_leader();
            self.messages.push(Message {
                from: self.members.id,
                to,
                term: self.term,
                body: MessageBody::AppendEntries(AppendEntries {
                    prev_log_index: prev,
                    prev_log_term: prev_term,
                    entries,
                    leader_commit: self.commit,
                    compact_floor: floor,
                    kind: AppendKind::Entries,
                }),
            });
            if probing {
                return;
            }
        }
    }

    /// Sends an empty AppendEntries carrying the commit index, never beyond what the
    /// follower has matched. In Replicate its consistency check sits at the last entry sent,
    /// so a follower that lost in-flight entries (a dropped connection, a restart) rejects it
    /// and the leader probes again within one heartbeat; in Probe it sits at the match index,
    /// so it succeeds and lets the next probe go.
    fn send_empty(&mut self, slot: usize, kind: AppendKind) {
        let Some(pr) = self.progress[slot].as_mut() else {
            return;
        };
        let at = match pr.state {
            ProgressState::Replicate => pr.next_index - 1,
            ProgressState::Probe => pr.match_index,
            // Chunks keep the follower's timer reset and it cannot use a commit index yet;
            // a heartbeat due now is one the window's chunks stand for (re-arm its timer).
            ProgressState::Snapshot => {
                pr.last_sent = self.now;
                return;
            }
        };
        let prev = at.max(self.log.snapshot_index());
        let Some(prev_term) = self.log.term(prev) else {
            return;
        };
        let commit = self.commit.min(pr.match_index);
        pr.last_sent = self.now;
        pr.commit_sent = pr.commit_sent.max(commit);
        match kind {
            AppendKind::Heartbeat => self.stats.heartbeats += 1,
            AppendKind::CommitNotice => self.stats.commit_notices += 1,
            AppendKind::Entries => self.stats.appends += 1,
        }
        let to = self.members.voters[slot];
        let floor = self.compact_floor_as_leader();
        self.messages.push(Message {
            from: self.members.id,
            to,
            term: self.term,
            body: MessageBody::AppendEntries(AppendEntries {
                prev_log_index: prev,
                prev_log_term: prev_term,
                entries: Vec::new(),
                leader_commit: commit,
                compact_floor: floor,
                kind,
            }),
        });
    }

    fn heartbeat_due(&self) -> Time {
        if self.cfg.append_resets_heartbeat {
            let h = self.cfg.heartbeat_interval;
            self.progress
                .iter()
                .flatten()
                .map(|pr| pr.last_sent + h)
                .min()
                .unwrap_or(self.now + h)
        } else {
            self.heartbeat_deadline
        }
    }

    fn heartbeat(&mut self, now: Time) {
        let h = self.cfg.heartbeat_interval;
        let global_due = !self.cfg.append_resets_heartbeat && now >= self.heartbeat_deadline;
        if global_due {
            // Keep the grid: a late tick does not shift later heartbeats.
            self.heartbeat_deadline = self.heartbeat_deadline + h;
            if self.heartbeat_deadline <= now {
                self.heartbeat_deadline = now + h;
            }
        }
        for slot in 0..self.progress.len() {
            let Some(pr) = self.progress[slot].as_mut() else {
                continue;
            };
            let due = global_due || (self.cfg.append_resets_heartbeat && now >= pr.last_sent + h);
            if !due {
                continue;
            }
            let sent_before = self.messages.len();
            if self.cfg.trigger == ReplicationTrigger::OnTick {
                self.send_entries(slot, true);
            } else if self.progress[slot]
                .as_ref()
                .is_some_and(|p| p.state != ProgressState::Replicate)
            {
                // A probe or chunk lost on the way would stall the follower until the next
                // heartbeat.
                self.send_entries(slot, true);
            }
            if self.messages.len() == sent_before {
                self.send_empty(slot, AppendKind::Heartbeat);
            }
        }
    }

    fn on_append_response(&mut self, from: NodeId, r: AppendEntriesResponse) {
        let Some(slot) = self.members.voters.iter().position(|&v| v == from) else {
            return;
        };
        let now = self.now;
        let last = self.log.last_index();
        let hint_next = r.reject.map(|h| next_after_reject(&self.log, h));
        // A follower that needs an entry at or below our snapshot point can only catch up
        // from the snapshot: when its log is too short, or its entry at that point conflicts.
        let snap_index = self.log.snapshot_index();
        let needs_snapshot = r.reject.is_some_and(|h| {
            needed_after_reject(&self.log, h) <= snap_index
                && (h.conflict_term.is_none() || r.prev_log_index <= snap_index)
        });
        let snapshot = self.sendable_snapshot().cloned();
        let window = self.snapshot_window();
        let Some(pr) = self.progress[slot].as_mut() else {
            return;
        };
        pr.recent_active = true;
        match hint_next {
            None => {
                let match_index = r.match_index.min(last);
                let state = pr.state;
                let updated = pr.maybe_update(match_index, now);
                let caught_up =
                    state == ProgressState::Snapshot && pr.match_index >= pr.pending_snapshot;
                if state == ProgressState::Probe || caught_up {
                    // Any success proves the logs agree up to match: start pipelining.
                    pr.become_replicate(now);
                }
                if updated {
                    self.maybe_commit();
                }
            }
            Some(next) => {
                if pr.maybe_decrease_to(r.prev_log_index, next) && needs_snapshot {
                    if let Some(snap) = snapshot {
                        pr.become_snapshot(snap, window, now);
                    }
                }
            }
        }
    }

    /// The snapshot a follower behind the log's first index needs: the one the log's
    /// discarded prefix ends at (None when the prefix was discarded without a snapshot).
    fn sendable_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot
            .as_ref()
            .filter(|s| s.meta.index == self.log.snapshot_index() && s.meta.index > 0)
    }

    /// Unacknowledged snapshot bytes allowed per follower: as many chunks as AppendEntries.
    fn snapshot_window(&self) -> u64 {
        self.cfg.snapshot_chunk_bytes as u64 * self.cfg.max_inflight_msgs as u64
    }

    /// Sends the follower in `slot` the chunks of its snapshot its window allows; `resend`
    /// (a heartbeat) first goes back to the acknowledged offset if the transfer made no
    /// progress for a heartbeat interval (a chunk or its answer was lost).
    fn send_snapshot_chunk(&mut self, slot: usize, resend: bool) {
        let now = self.now;
        let h = self.cfg.heartbeat_interval;
        let chunk = self.cfg.snapshot_chunk_bytes as u64;
        let to = self.members.voters[slot];
        let Some(pr) = self.progress[slot].as_mut() else {
            return;
        };
        let Some(t) = pr.transfer.as_mut() else {
            // Unreachable: Snapshot state always carries its transfer. Probe instead.
            pr.become_probe();
            return;
        };
        if resend && t.stalled(now, h) {
            t.rewind(now);
        }
        while !t.is_paused() {
            let len = t.snapshot.data.len() as u64;
            let offset = t.offset.min(len);
            let end = (offset + chunk).min(len);
            let done = end == len;
            t.offset = end;
            t.done_sent = done;
            pr.last_sent = now;
            self.stats.snapshot_chunks += 1;
            self.stats.snapshot_bytes_sent += end - offset;
            self.messages.push(Message {
                from: self.members.id,
                to,
                term: self.term,
                body: MessageBody::InstallSnapshot(InstallSnapshot {
                    meta: t.snapshot.meta.clone(),
                    offset,
                    data: t.snapshot.data.slice(offset as usize..end as usize),
                    done,
                }),
            });
        }
    }

    fn on_snapshot_response(&mut self, from: NodeId, r: InstallSnapshotResponse) {
        let Some(slot) = self.members.voters.iter().position(|&v| v == from) else {
            return;
        };
        let now = self.now;
        let last = self.log.last_index();
        let Some(pr) = self.progress[slot].as_mut() else {
            return;
        };
        pr.recent_active = true;
        if let Some(m) = r.match_index {
            let updated = pr.maybe_update(m.min(last), now);
            if pr.state == ProgressState::Snapshot && pr.match_index >= pr.pending_snapshot {
                // Installed: resume with entries right after it (Probe: the first
                // AppendEntries confirms the match, then pipelining starts).
                pr.become_probe();
            }
            if updated {
                self.maybe_commit();
            }
            return;
        }
        if pr.state != ProgressState::Snapshot {
            return;
        }
        let Some(t) = pr.transfer.as_mut() else {
            return;
        };
        if (t.snapshot.meta.index, t.snapshot.meta.term) != (r.snapshot_index, r.snapshot_term) {
            return; // answers a transfer of another snapshot
        }
        t.on_held(r.next_offset, now);
    }

    fn maybe_commit(&mut self) {
        // Runs on every acknowledgement: reuse one buffer rather than allocate.
        let mut matches = std::mem::take(&mut self.match_scratch);
        matches.clear();
        matches.extend(self.progress.iter().flatten().map(|pr| pr.match_index));
        matches.push(self.persisted);
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matches[self.members.quorum() - 1];
        self.match_scratch = matches;
        // Only an entry of the leader's own term commits by counting replicas (Figure 8).
        if candidate > self.commit && self.log.term(candidate) == Some(self.term) {
            self.set_commit(candidate);
        }
    }

    fn set_commit(&mut self, to: Index) {
        let from = self.commit;
        if self.role == Role::Leader {
            let done: usize = self.log.range(from + 1, to).map(Entry::size).sum();
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(done);
        }
        self.commit = to;
        self.events.push(Event::CommitAdvanced { from, to });
    }

    fn compact_floor_as_leader(&self) -> Index {
        self.progress
            .iter()
            .flatten()
            .map(|pr| pr.match_index)
            .fold(self.persisted, Index::min)
    }

    fn maybe_compact(&mut self) -> Option<Index> {
        if self.cfg.compact_threshold == 0 || self.cfg.snapshot_entries > 0 {
            // With snapshots, only a snapshot discards the log (snapshot_taken).
            return None;
        }
        let floor = if self.role == Role::Leader {
            self.compact_floor_as_leader()
        } else {
            self.compact_floor
        };
        let upto = floor.min(self.applied).min(self.persisted);
        if upto >= self.log.snapshot_index() + self.cfg.compact_threshold {
            self.log.compact(upto);
            return Some(upto);
        }
        None
    }

    // ----- follower -----------------------------------------------------------------

    fn on_append(&mut self, from: NodeId, term: Term, ae: AppendEntries) {
        if term < self.term {
            // Tell a deposed leader about the newer term.
            self.respond_append(from, ae.prev_log_index, 0, None);
            return;
        }
        // term == self.term: there is a leader of our term, and it is `from`.
        self.heard_from_leader(from, term);

        let last = self.log.last_index();
        let prev = ae.prev_log_index;
        if prev > last {
            let hint = RejectHint {
                conflict_term: None,
                conflict_index: 0,
                last_index: last,
            };
            self.respond_append(from, prev, 0, Some(hint));
            return;
        }
        if prev >= self.log.snapshot_index() {
            let have = self.log.term(prev).expect("prev is held");
            if have != ae.prev_log_term {
                let hint = RejectHint {
                    conflict_term: Some(have),
                    conflict_index: self.log.first_index_of_term_at(prev, have),
                    last_index: last,
                };
                self.respond_append(from, prev, 0, Some(hint));
                return;
            }
        }
        // prev is below the discarded prefix: those entries are committed, so they match.

        let match_index = prev + ae.entries.len() as Index;
        for e in ae.entries {
            if e.index <= self.log.snapshot_index() {
                continue;
            }
            match self.log.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    // A conflicting suffix can only hold uncommitted entries (Log Matching).
                    debug_assert!(e.index > self.commit, "truncating a committed entry");
                    self.log.truncate_from(e.index);
                    self.persisted = self.persisted.min(e.index - 1);
                    self.unpersisted_from =
                        Some(self.unpersisted_from.map_or(e.index, |u| u.min(e.index)));
                    self.log.push(e);
                }
                None => {
                    let index = e.index;
                    self.log.push(e);
                    self.unpersisted_from.get_or_insert(index);
                }
            }
        }
        let new_commit = ae.leader_commit.min(match_index);
        if new_commit > self.commit {
            self.set_commit(new_commit);
        }
        self.compact_floor = self.compact_floor.max(ae.compact_floor.min(match_index));
        self.respond_append(from, prev, match_index, None);
    }

    /// `from` leads our term (an AppendEntries or a snapshot chunk of this term came from
    /// it): follow it, and count the contact toward not starting an election.
    fn heard_from_leader(&mut self, from: NodeId, term: Term) {
        if self.role != Role::Follower {
            self.become_follower(term, Some(from));
        } else {
            self.set_leader(Some(from));
            self.leader_contact = Some(self.now);
            self.prevotes = None;
            self.reset_election_deadline();
        }
    }

    fn on_install_snapshot(&mut self, from: NodeId, term: Term, m: InstallSnapshot) {
        let (index, snap_term) = (m.meta.index, m.meta.term);
        if term < self.term {
            // A deposed leader's chunk: our answer carries the newer term.
            self.respond_snapshot(from, index, snap_term, 0, None);
            return;
        }
        self.heard_from_leader(from, term);

        if index <= self.commit {
            // Everything it covers is committed here, and committed entries match the leader's.
            self.incoming = None;
            let commit = self.commit;
            self.respond_snapshot(from, index, snap_term, 0, Some(commit));
            return;
        }
        if self.log.term(index) == Some(snap_term) {
            // The log holds the snapshot's last entry, hence everything before it (Log
            // Matching): commit up to it and apply from the log, as raft-rs fast-forwards.
            self.incoming = None;
            self.set_commit(index);
            self.respond_snapshot(from, index, snap_term, 0, Some(index));
            return;
        }

        // A first chunk starts a transfer, unless it repeats the one under way.
        if m.offset == 0
            && !self.incoming.as_ref().is_some_and(|i| {
                i.from == from && i.term == term && i.meta == m.meta && !i.data.is_empty()
            })
        {
            self.incoming = Some(Incoming {
                from,
                term,
                meta: m.meta.clone(),
                data: Vec::new(),
                ahead: Default::default(),
                complete: false,
            });
        }

        let max = self.cfg.max_snapshot_bytes;
        let Some(inc) = self
            .incoming
            .as_mut()
            .filter(|i| i.from == from && i.term == term && i.meta == m.meta)
        else {
            // A chunk of a transfer we do not hold (we restarted, or a newer one began).
            self.respond_snapshot(from, index, snap_term, 0, None);
            return;
        };
        if inc.buffered() + m.data.len() as u64 > max {
            // Bounded buffer: a snapshot larger than we accept is dropped.
            self.incoming = None;
            self.respond_snapshot(from, index, snap_term, 0, None);
            return;
        }
        // A duplicate is ignored, a chunk ahead of a gap kept aside; the answer says what
        // we hold, so the leader resends from there.
        inc.add(m.offset, m.data, m.done);
        let have = inc.data.len() as u64;
        if !inc.complete {
            self.respond_snapshot(from, index, snap_term, have, None);
            return;
        }
        let inc = self.incoming.take().expect("checked above");
        self.install(Snapshot {
            meta: inc.meta,
            data: Bytes::from(inc.data),
        });
        self.respond_snapshot(from, index, snap_term, have, Some(index));
    }

    /// Replaces the whole log with `snap`: nothing the log held at its index agrees with
    /// it, so nothing after it can be kept either (raft-rs's `restore`).
    fn install(&mut self, snap: Snapshot) {
        let (index, term) = (snap.meta.index, snap.meta.term);
        debug_assert!(index > self.commit);
        self.log = RaftLog::new(index, term, Vec::new());
        self.commit = index;
        self.apply_handed = index;
        self.applied = index;
        self.persisted = index;
        self.unpersisted_from = None;
        self.stats.snapshots_installed += 1;
        self.snapshot = Some(snap.clone());
        self.restore_pending = Some(snap);
    }

    fn respond_snapshot(
        &mut self,
        to: NodeId,
        snapshot_index: Index,
        snapshot_term: Term,
        next_offset: u64,
        match_index: Option<Index>,
    ) {
        // Sent after the Ready's writes: a match promises what the store holds.
        self.persisted_messages.push(Message {
            from: self.members.id,
            to,
            term: self.term,
            body: MessageBody::InstallSnapshotResponse(InstallSnapshotResponse {
                snapshot_index,
                snapshot_term,
                next_offset,
                match_index,
            }),
        });
    }

    fn respond_append(
        &mut self,
        to: NodeId,
        prev: Index,
        match_index: Index,
        reject: Option<RejectHint>,
    ) {
        self.stats.append_responses += 1;
        self.persisted_messages.push(Message {
            from: self.members.id,
            to,
            term: self.term,
            body: MessageBody::AppendEntriesResponse(AppendEntriesResponse {
                prev_log_index: prev,
                match_index,
                reject,
            }),
        });
    }
}

/// Refuses an InstallSnapshot that covers nothing or entries from a later term than the
/// message's.
fn check_install(msg: &Message, is: &InstallSnapshot) -> Result<(), StepError> {
    let malformed = |reason| StepError::Malformed {
        from: msg.from,
        reason,
    };
    if is.meta.index == 0 || is.meta.term == 0 {
        return Err(malformed("snapshot covers no entry"));
    }
    if is.meta.term > msg.term {
        return Err(malformed("snapshot term exceeds the message term"));
    }
    Ok(())
}

/// Refuses an AppendEntries whose entries do not follow its prev index in order,
/// or come from a term later than the message's.
fn check_append(msg: &Message, ae: &AppendEntries) -> Result<(), StepError> {
    let malformed = |reason| StepError::Malformed {
        from: msg.from,
        reason,
    };
    let mut term = ae.prev_log_term;
    for (expect, e) in (ae.prev_log_index + 1..).zip(&ae.entries) {
        if e.index != expect {
            return Err(malformed(
                "entries do not follow prev_log_index contiguously",
            ));
        }
        if e.term < term || e.term > msg.term {
            return Err(malformed(
                "entry terms go backwards or exceed the message term",
            ));
        }
        term = e.term;
    }
    if ae.prev_log_term > msg.term {
        return Err(malformed("prev_log_term exceeds the message term"));
    }
    Ok(())
}
