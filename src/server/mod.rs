//! A node at run time: a tokio task that drives the Raft core, persists through the log
//! store, applies committed entries to the key-value store, and answers clients.
//!
//! The driver loop waits for a message, a client request or the core's next deadline;
//! then it drains whatever else has already arrived (up to a bound) before asking the core
//! for one [`Ready`](crate::raft::Ready). Draining first is what lets batches grow with load: a
//! hundred proposals that arrive together leave in one AppendEntries.

mod client;
mod persist;

pub use client::{
    Answer, ClientError, NodeStatus, Outbox, Refused, Reply, ReplyTo, Request, Room, ServerHandle,
    Trace,
};
pub use persist::AppendOrder;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::kv::KvStore;
use crate::raft::{
    Config, EntryKind, Event, Index, LogStore, MemStore, Membership, Message, NodeId, RaftNode,
    Role, Term, Time,
};
use crate::shutdown::Shutdown;
use crate::transport::{Inbound, Transport};

/// Most inputs of one kind taken in one round before the core is asked for a Ready:
/// large enough to batch, small enough that timers and replies are not starved.
const MAX_DRAIN: usize = 4096;

/// Client requests a server's queue holds: two drain rounds. The leader answers what it
/// cannot take at once (its uncommitted limit), so the queue only absorbs the burst between
/// two rounds; a longer one would only add waiting (65,536 requests were a second at the
/// overloaded leader's pace). A full queue is the client's to handle: the harness's open
/// loop counts it as an overload refusal, other senders wait for room.
const INBOX: usize = 2 * MAX_DRAIN;

/// Timestamps of what happens inside a node, for the harness to measure follower commit and
/// apply lag, batch sizes and the pipeline. Called on the node's own task: implementations
/// must be cheap and must not block. Per-request timestamps do not go through here: they
/// travel with each answer as a [`Trace`].
pub trait Observer: Send + Sync + 'static {
    /// The node's commit index moved from `from` to `to` at `at` (on the leader: the
    /// entries committed; on a follower: it learned that they had).
    fn commit_advanced(&self, node: NodeId, role: Role, from: Index, to: Index, at: Time);
    /// The node applied entries up to `upto` at `at`.
    fn applied(&self, node: NodeId, role: Role, upto: Index, at: Time);
    /// The node's role or leader changed.
    fn role_changed(&self, _node: NodeId, _role: Role, _term: Term, _at: Time) {}
    /// The leader sent follower `to` an AppendEntries with entries `first..=last` at `at`,
    /// leaving `inflight` AppendEntries unacknowledged to it (the core's
    /// [`Event::EntriesSent`]).
    fn entries_sent(
        &self,
        _node: NodeId,
        _to: NodeId,
        _first: Index,
        _last: Index,
        _inflight: usize,
        _at: Time,
    ) {
    }
    /// A message from `from` reached the node at `at`, before the core steps it
    /// (node metrics count messages and bytes per peer, and time entries' arrival).
    fn message_received(&self, _node: NodeId, _from: NodeId, _msg: &Message, _at: Time) {}
    /// Once per driver round on the leader, after its Ready is handled: entries proposed
    /// and not yet committed, and client requests waiting in its inbox (the queues that
    /// overload fills).
    fn queues(&self, _node: NodeId, _uncommitted: u64, _inbox: usize, _at: Time) {}
}

/// Everything a server is built from.
pub struct ServerParts<S> {
    /// Which member this node is.
    pub members: Membership,
    /// The core's knobs.
    pub raft: Config,
    /// Seed for the core's election timeouts.
    pub seed: u64,
    /// The clock origin shared by every node of an in-process cluster, so their timestamps compare.
    pub epoch: Instant,
    /// The persisted state to start from (an empty store for a new node).
    pub store: S,
    /// Carries messages to the peers.
    pub transport: Arc<dyn Transport>,
    /// Messages from the peers, with the id each connection authenticated.
    pub inbox: Inbound,
    /// Where measurement timestamps go, if anywhere.
    pub observer: Option<Arc<dyn Observer>>,
}

/// A proposal waiting for its entry to be applied, with the stamps its [`Trace`] will carry.
struct PendingReply {
    index: Index,
    term: Term,
    id: u64,
    reply: ReplyTo,
    accepted: Time,
    sent: Option<Time>,
}

/// The leader's pending replies, in index order, and how far AppendEntries have carried
/// them: the first `stamped` have their `sent` instant.
#[derive(Default)]
struct Pending {
    queue: VecDeque<PendingReply>,
    stamped: usize,
    /// Highest index sent to any follower in this leadership.
    sent_upto: Index,
}

impl Pending {
    fn push(&mut self, p: PendingReply) {
        self.queue.push_back(p);
    }

    fn pop_front(&mut self) -> Option<PendingReply> {
        let p = self.queue.pop_front()?;
        self.stamped = self.stamped.saturating_sub(1);
        Some(p)
    }

    /// Entries up to `last` left the leader at `at`.
    fn sent(&mut self, last: Index, at: Time) {
        if last <= self.sent_upto {
            return;
        }
        self.sent_upto = last;
        while let Some(p) = self.queue.get_mut(self.stamped) {
            if p.index > last {
                break;
            }
            p.sent = Some(at);
            self.stamped += 1;
        }
    }

    /// Leadership ended: every pending reply is handed back, the send mark forgotten.
    fn drain(&mut self) -> impl Iterator<Item = PendingReply> + '_ {
        self.stamped = 0;
        self.sent_upto = 0;
        self.queue.drain(..)
    }
}

/// An applied entry's outcome, held until the whole batch is applied and stamped.
type Applied = (
    Index,
    Term,
    Option<Result<crate::kv::Output, crate::kv::CommandError>>,
);

/// One node's driver task state.
pub struct Server<S = MemStore> {
    raft: RaftNode,
    store: S,
    kv: KvStore,
    transport: Arc<dyn Transport>,
    inbox: Inbound,
    requests: mpsc::Receiver<Request>,
    pending: Pending,
    /// Scratch for one Ready's applied entries (kept to reuse its allocation).
    applied: Vec<Applied>,
    epoch: Instant,
    observer: Option<Arc<dyn Observer>>,
    status: tokio::sync::watch::Sender<NodeStatus>,
    control: mpsc::UnboundedReceiver<Control>,
    persist: persist::PersistPath,
    /// Extra time each applied entry takes (zero: none), to emulate a slow state machine.
    apply_cost: std::time::Duration,
    /// Answers of this round for batched queues, sent at the round's end.
    outbox: Outbox,
    /// How long the driver keeps polling for input before it parks (zero: it parks at
    /// once). See [`Server::with_busy_poll`].
    busy_poll: std::time::Duration,
    /// Whether followers poll too (else only a leader does).
    busy_poll_followers: bool,
    /// The room under this leader's uncommitted limits, so that in-process senders see
    /// the pushback before they send ([`ServerHandle::claim_room`]).
    room: Arc<client::Room>,
    /// `epoch` as a `CLOCK_MONOTONIC` reading (see [`NodeStatus::clock_origin_ns`]).
    clock_origin_ns: u64,
}

/// Out-of-band instructions to a server, for experiments.
#[derive(Debug)]
pub enum Control {
    /// Block the node's thread for this long, as a garbage-collection pause or a stuck
    /// disk would: nothing on the node runs meanwhile, its transport included when they
    /// share a thread.
    Stall(std::time::Duration),
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The core refused the configuration or the store.
    #[error(transparent)]
    Restore(#[from] crate::raft::RestoreError),
    /// The store's snapshot could not be read or is not a key-value snapshot.
    #[error("the stored snapshot cannot be restored: {0}")]
    Snapshot(String),
}

impl<S: LogStore + Send + 'static> Server<S> {
    /// Builds a server and the handle clients submit through.
    pub fn new(parts: ServerParts<S>) -> Result<(Server<S>, ServerHandle), ServerError> {
        let now = Time::from_nanos(parts.epoch.elapsed().as_nanos() as u64);
        let id = parts.members.id;
        let raft = RaftNode::restore(parts.members, parts.raft, parts.seed, now, &parts.store)?;
        // The state machine starts from the stored snapshot; the log after it is re-applied.
        let kv = match parts
            .store
            .snapshot()
            .map_err(|e| ServerError::Snapshot(e.to_string()))?
        {
            Some(snap) if snap.meta.index == raft.applied_index() => {
                KvStore::restore(&snap.data).map_err(|e| ServerError::Snapshot(e.to_string()))?
            }
            _ => KvStore::new(),
        };
        let mut store = parts.store;
        let last_index = store.last_index();
        let persist = persist::PersistPath::new(&mut store, last_index);
        let (tx, rx) = mpsc::channel(INBOX);
        let (control_tx, control) = mpsc::unbounded_channel();
        let clock_origin_ns = crate::remote::instant_to_monotonic_ns(parts.epoch);
        let (status, status_rx) = tokio::sync::watch::channel(NodeStatus {
            id,
            clock_origin_ns,
            ..NodeStatus::default()
        });
        let server = Server {
            control,
            status,
            raft,
            store,
            persist,
            kv,
            transport: parts.transport,
            inbox: parts.inbox,
            requests: rx,
            pending: Pending::default(),
            applied: Vec::new(),
            apply_cost: std::time::Duration::ZERO,
            room: Arc::default(),
            outbox: Outbox::default(),
            busy_poll: std::time::Duration::ZERO,
            busy_poll_followers: false,
            epoch: parts.epoch,
            observer: parts.observer,
            clock_origin_ns,
        };
        let handle = ServerHandle::new(id, tx, status_rx, control_tx, server.room.clone());
        Ok((server, handle))
    }

    fn now(&self) -> Time {
        Time::from_nanos(self.epoch.elapsed().as_nanos() as u64)
    }

    fn deadline_instant(&self) -> tokio::time::Instant {
        let d = std::time::Duration::from_nanos(self.raft.next_deadline().as_nanos());
        tokio::time::Instant::from_std(self.epoch + d)
    }

    /// Runs until shutdown is requested or every input is closed. Requests still waiting
    /// then fail with [`ClientError::ShuttingDown`].
    pub async fn run(mut self, mut shutdown: Shutdown) -> KvStore {
        let sleep = tokio::time::sleep_until(self.deadline_instant());
        tokio::pin!(sleep);
        let mut inbox_open = true;
        let mut requests_open = true;
        loop {
            self.poll_busily().await;
            tokio::select! {
                biased;
                _ = shutdown.recv() => break,
                m = self.inbox.recv(), if inbox_open => match m {
                    Some((from, m)) => self.step(from, m),
                    None => inbox_open = false,
                },
                r = self.requests.recv(), if requests_open => match r {
                    Some(r) => self.propose(r),
                    None => requests_open = false,
                },
                Some(c) = self.control.recv() => match c {
                    Control::Stall(d) => std::thread::sleep(d),
                },
                _ = self.persist.report(), if self.persist.deferred() => {
                    if let Err(e) = self.on_durable() {
                        stop_on_store_error(self.raft.id(), &e);
                        break;
                    }
                }
                _ = &mut sleep => {}
            }
            if !inbox_open && !requests_open {
                break;
            }
            for _ in 0..MAX_DRAIN {
                match self.inbox.try_recv() {
                    Ok((from, m)) => self.step(from, m),
                    Err(_) => break,
                }
            }
            for _ in 0..MAX_DRAIN {
                match self.requests.try_recv() {
                    Ok(r) => self.propose(r),
                    Err(_) => break,
                }
            }
            let now = self.now();
            if now >= self.raft.next_deadline() {
                self.raft.tick(now);
            }
            let ready = self.process_ready();
            self.outbox.flush();
            if let Err(e) = ready {
                stop_on_store_error(self.raft.id(), &e);
                break;
            }
            // Room first: a status that shows this round's proposals comes with the room
            // left after them.
            self.publish_room();
            self.publish_status();
            if self.raft.role() == Role::Leader {
                if let Some(o) = &self.observer {
                    let (uncommitted, _) = self.raft.uncommitted();
                    o.queues(self.raft.id(), uncommitted, self.requests.len(), self.now());
                }
            }
            sleep.as_mut().reset(self.deadline_instant());
        }
        self.fail_pending(|| ClientError::ShuttingDown);
        self.outbox.flush();
        while let Ok(r) = self.requests.try_recv() {
            r.reply.send(r.id, Err(ClientError::ShuttingDown), None);
        }
        self.kv
    }

    /// Keeps the thread awake for up to the busy-poll window while neither a message nor a
    /// request is waiting, so that one arriving soon is taken without a wake-up. Each
    /// `yield_now` lets the current-thread runtime poll its I/O driver without blocking
    /// (tokio defers a yielded task until the driver has been polled), so the transport's
    /// sockets are read meanwhile. Returns early on input and at the core's deadline.
    async fn poll_busily(&mut self) {
        if self.busy_poll.is_zero()
            || (self.raft.role() != Role::Leader && !self.busy_poll_followers)
        {
            return;
        }
        let until = (Instant::now() + self.busy_poll).min(self.deadline_instant().into_std());
        while self.inbox.is_empty() && self.requests.is_empty() && Instant::now() < until {
            tokio::task::yield_now().await;
        }
    }

    /// How many more proposals the leader's uncommitted limits take, less the requests
    /// already waiting in its queue, for in-process senders to claim ([`client::Room`]).
    /// Written once per round: a sender's claims between two rounds touch the cache line,
    /// the leader only overwrites it.
    fn publish_room(&self) {
        let left = if self.raft.role() == Role::Leader {
            let (entries, bytes) = self.raft.uncommitted();
            let cfg = self.raft.config();
            if bytes >= cfg.max_uncommitted_bytes {
                0
            } else {
                cfg.max_uncommitted_entries as i64 - entries as i64 - self.requests.len() as i64
            }
        } else {
            client::Room::UNLIMITED
        };
        self.room.publish(left);
    }

    fn publish_status(&self) {
        let r = &self.raft;
        let now = NodeStatus {
            id: r.id(),
            role: r.role(),
            term: r.term(),
            leader: r.leader(),
            commit_index: r.commit_index(),
            applied_index: r.applied_index(),
            last_index: r.log().last_index(),
            stats: r.stats().clone(),
            clock_origin_ns: self.clock_origin_ns,
            ..NodeStatus::default()
        };
        // Only wake watchers on change: this runs once per loop round.
        self.status.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
    }

    fn step(&mut self, from: NodeId, m: Message) {
        if m.from != from {
            // The transport checks this too; a node never takes another's word for its id.
            tracing::warn!(
                node = self.raft.id(),
                from,
                claimed = m.from,
                "dropped a misrouted message"
            );
            return;
        }
        let now = self.now();
        if let Some(o) = &self.observer {
            o.message_received(self.raft.id(), from, &m, now);
        }
        if let Err(e) = self.raft.step(m, now) {
            tracing::warn!(node = self.raft.id(), error = %e, "dropped a message");
        }
    }

    fn propose(&mut self, r: Request) {
        let now = self.now();
        match self.raft.propose(r.command, now) {
            Ok((index, term)) => self.pending.push(PendingReply {
                index,
                term,
                id: r.id,
                reply: r.reply,
                accepted: now,
                sent: None,
            }),
            Err(crate::raft::ProposeError::NotLeader { leader }) => {
                r.reply
                    .send(r.id, Err(ClientError::NotLeader { leader }), None)
            }
            // Answered at once: a queue that grows past what the cluster commits only
            // turns throughput into latency, and then into collapse.
            Err(crate::raft::ProposeError::Overloaded { .. }) => {
                r.reply.send(r.id, Err(ClientError::Overloaded), None)
            }
        }
    }

    fn process_ready(&mut self) -> Result<(), crate::raft::StoreError> {
        while self.raft.has_ready() {
            let rd = self.raft.ready();
            let id = self.raft.id();
            // One instant for the round: the commit times the observer sees and the ones
            // the answers carry are the same, and AppendEntries leave after it.
            let now = self.now();
            for ev in &rd.events {
                match *ev {
                    Event::CommitAdvanced { from, to } => {
                        // Commit times first: a follower on another thread may learn of a
                        // commit from the messages below before this thread gets back here.
                        if let Some(o) = &self.observer {
                            o.commit_advanced(id, self.raft.role(), from, to, now);
                        }
                    }
                    Event::EntriesSent {
                        to,
                        first,
                        last,
                        inflight,
                    } => {
                        self.pending.sent(last, now);
                        if let Some(o) = &self.observer {
                            o.entries_sent(id, to, first, last, inflight, now);
                        }
                    }
                    Event::RoleChanged { .. } | Event::LeaderChanged { .. } => {}
                }
            }
            if let Some(snap) = &rd.snapshot {
                // A leader's snapshot: durable before anything that follows it, and the
                // state machine replaced before the entries after it apply.
                self.store.save_snapshot(snap)?;
                self.kv = KvStore::restore(&snap.data).map_err(|e| {
                    crate::raft::StoreError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("snapshot {} from the leader: {e}", snap.meta.index),
                    ))
                })?;
                if let Some(o) = &self.observer {
                    o.applied(id, self.raft.role(), snap.meta.index, now);
                }
            }
            self.persist_ready(
                rd.messages,
                rd.hard_state,
                rd.entries,
                rd.persisted_messages,
            )?;
            let role = self.raft.role();
            for ev in &rd.events {
                if let Event::RoleChanged { term, role } = *ev {
                    if let Some(o) = &self.observer {
                        o.role_changed(id, role, term, self.now());
                    }
                    if role != Role::Leader {
                        // Entries we proposed may still commit under another leader, but
                        // we can no longer tell the client: it must retry (and may see it twice).
                        self.fail_pending(|| ClientError::LeadershipLost);
                    }
                }
            }
            if let Some(last) = rd.committed.last().map(|e| e.index) {
                let mut applied = std::mem::take(&mut self.applied);
                for e in &rd.committed {
                    let out = match e.kind {
                        EntryKind::Noop => None,
                        EntryKind::Normal => Some(self.kv.apply(&e.data)),
                    };
                    applied.push((e.index, e.term, out));
                    if !self.apply_cost.is_zero() {
                        // The node's thread is busy meanwhile, as with a state machine
                        // that writes to a slow disk: nothing else on it runs.
                        std::thread::sleep(self.apply_cost);
                    }
                }
                self.raft.applied(last);
                // Stamped once the whole batch is applied and before any answer leaves, so
                // that a client never holds an answer older than its `applied` stamp.
                let applied_at = self.now();
                if let Some(o) = &self.observer {
                    o.applied(id, role, last, applied_at);
                }
                for (index, term, out) in applied.drain(..) {
                    self.answer(index, term, out, now, applied_at);
                }
                self.applied = applied;
            }
            if let Some(index) = self.raft.snapshot_due() {
                self.take_snapshot(index)?;
            }
            if let Some(upto) = rd.compact_to {
                self.compact_when_durable(upto)?;
            }
        }
        Ok(())
    }

    /// Snapshots the key-value store at `index` (its applied index), discarding the log up
    /// to it in the core and in the store.
    fn take_snapshot(&mut self, index: Index) -> Result<(), crate::raft::StoreError> {
        let data = self.kv.snapshot();
        let snap = self
            .raft
            .snapshot_taken(index, data)
            .map_err(|e| crate::raft::StoreError::Io(std::io::Error::other(e.to_string())))?;
        self.store.save_snapshot(&snap)
    }

    /// Answers the pending requests up to `index` (committed at `committed`, applied at
    /// `applied`); those whose entry was replaced by another leader's learn that.
    fn answer(
        &mut self,
        index: Index,
        term: Term,
        out: Option<Result<crate::kv::Output, crate::kv::CommandError>>,
        committed: Time,
        applied: Time,
    ) {
        while let Some(p) = self.pending.queue.front() {
            if p.index > index {
                break;
            }
            let p = self.pending.pop_front().expect("front exists");
            if p.index < index || p.term != term {
                // Our entry at that index was replaced by another leader's.
                p.reply.send(p.id, Err(ClientError::LeadershipLost), None);
                continue;
            }
            let trace = Trace {
                index,
                accepted: p.accepted,
                sent: p.sent.unwrap_or(committed).min(committed),
                committed,
                applied,
            };
            let (reply, trace) = match &out {
                Some(Ok(o)) => (Ok(o.clone()), Some(trace)),
                Some(Err(e)) => (Err(ClientError::BadCommand(e.clone())), Some(trace)),
                None => (Err(ClientError::LeadershipLost), None),
            };
            self.outbox.send(p.reply, p.id, reply, trace);
        }
    }

    fn fail_pending(&mut self, err: impl Fn() -> ClientError) {
        for p in self.pending.drain() {
            p.reply.send(p.id, Err(err()), None);
        }
    }
}

/// A store that cannot persist leaves the node unable to keep Raft's promises (a vote or
/// an acknowledgement must be on disk before it is sent), so the node stops rather than
/// lie: the caller leaves its loop, failing waiting requests, and `run` returns.
fn stop_on_store_error(node: NodeId, e: &crate::raft::StoreError) {
    tracing::error!(node, error = %e, "log store failed; stopping the node");
}
