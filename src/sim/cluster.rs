//! The simulated cluster: nodes, network, clients and faults on one virtual clock.
//!
//! Everything happens in one thread, in the order of an event queue keyed by
//! (virtual time, sequence number), and every random choice comes from generators seeded
//! from the run's seed: the same seed replays the same run, event for event.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::raft::{
    Entry, Event, HardState, Index, LogStore, MemStore, Message, MessageBody, NodeId, ProposeError,
    RaftNode, Role, Snapshot, Stats, StoreError, Term, Time,
};
use crate::storage::{FileStore, SyncPolicy};

use super::checker::{
    decode_state, encode_state, payload_id, Ack, Applied, Checker, Property, Violation,
};
use super::config::{Proposals, SimConfig, StoreKind};
use super::{
    derive_seed, SimError, STREAM_CLIENT, STREAM_CLOCK, STREAM_FAULT, STREAM_NET, STREAM_NODE,
};

/// Events at one virtual instant beyond this mean something feeds itself without end.
const SAME_INSTANT_LIMIT: u64 = 2_000_000;
/// Queued events beyond this mean messages multiply faster than they are delivered.
const QUEUE_LIMIT: usize = 1_000_000;

/// What happened in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// The run's seed.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// Virtual time at the end.
    pub end: Time,
    /// Events processed.
    pub events: u64,
    /// Messages the nodes sent.
    pub messages_sent: u64,
    /// Messages delivered (duplicates count twice).
    pub messages_delivered: u64,
    /// Messages lost, cut by a partition, or addressed to a crashed node.
    pub messages_dropped: u64,
    /// Messages held back for an election timeout or more before delivery.
    pub messages_held: u64,
    /// Extra copies the network made.
    pub messages_duplicated: u64,
    /// Proposals clients made.
    pub proposals: u64,
    /// Proposals a leader accepted.
    pub accepted: u64,
    /// Proposals acknowledged (applied at their index and term by the accepting node).
    pub acknowledged: u64,
    /// Accepted proposals whose slot went to another entry.
    pub lost: u64,
    /// Proposals not made because the clients already waited on their maximum.
    pub shed: u64,
    /// Accepted proposals whose client stopped waiting (timeout or crash of the node).
    pub abandoned: u64,
    /// Crashes (torn ones included).
    pub crashes: u64,
    /// Crashes inside a Ready, after its messages left and before its writes.
    pub torn_crashes: u64,
    /// Store writes that failed (each stops its node: a crash, counted in `crashes` too).
    pub store_failures: u64,
    /// Restarts.
    pub restarts: u64,
    /// Partitions imposed.
    pub partitions: u64,
    /// Leader elections won.
    pub elections_won: u64,
    /// Highest term any node reached.
    pub max_term: Term,
    /// Final commit index.
    pub commit_index: Index,
    /// From the heal to a fresh proposal applied on every node.
    pub recovery: Option<Duration>,
    /// The core's counters, summed over nodes and incarnations.
    pub stats: Stats,
    /// A hash of every event processed: equal for equal runs.
    pub fingerprint: u64,
    /// Most events that were ever queued at once.
    pub max_queue: usize,
}

enum Ev {
    Deliver { msg: Message, epoch: u64 },
    Timer { node: usize, gen: u64 },
    Propose,
    Fault,
    Restart { node: usize },
    TornTimeout { node: usize, epoch: u64 },
    Heal,
    Probe,
}

impl Ev {
    fn code(&self) -> u64 {
        match self {
            Ev::Deliver { msg, .. } => 1 | msg.from << 8 | msg.to << 16,
            Ev::Timer { node, .. } => 2 | (*node as u64) << 8,
            Ev::Propose => 3,
            Ev::Fault => 4,
            Ev::Restart { node } => 5 | (*node as u64) << 8,
            Ev::TornTimeout { node, .. } => 6 | (*node as u64) << 8,
            Ev::Heal => 7,
            Ev::Probe => 8,
        }
    }
}

struct Scheduled {
    at: Time,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // BinaryHeap is a max-heap; reversed, it pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Faults and client load.
    Faults,
    /// Faults healed; waiting for a fresh proposal to be applied everywhere.
    Recovery,
    /// Load over; waiting for every node to apply the whole committed log.
    Quiet,
    Done,
}

struct Pending {
    id: u64,
    proposed_at: Time,
    probe: bool,
}

/// A node's store; it survives the node's crashes.
enum NodeStore {
    Mem(MemStore),
    File { store: FileStore, dir: PathBuf },
}

impl NodeStore {
    fn open(kind: &StoreKind, id: NodeId) -> Result<NodeStore, SimError> {
        match kind {
            StoreKind::Mem => Ok(NodeStore::Mem(MemStore::new())),
            StoreKind::File { dir } => {
                let dir = dir.join(format!("node-{id}"));
                let store = open_file_store(&dir)?;
                Ok(NodeStore::File { store, dir })
            }
        }
    }

    /// What a crash leaves: a file store is dropped and its directory recovered afresh.
    fn reopen(&mut self) -> Result<(), SimError> {
        if let NodeStore::File { dir, .. } = self {
            let dir = std::mem::take(dir);
            // The old store goes first: it holds the directory's lock until dropped.
            *self = NodeStore::Mem(MemStore::new());
            *self = NodeStore::File {
                store: open_file_store(&dir)?,
                dir,
            };
        }
        Ok(())
    }
}

fn open_file_store(dir: &Path) -> Result<FileStore, SimError> {
    FileStore::open(dir, SyncPolicy::None).map_err(|source| SimError::Store {
        dir: dir.to_path_buf(),
        source,
    })
}

impl LogStore for NodeStore {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        match self {
            NodeStore::Mem(s) => s.append(entries),
            NodeStore::File { store, .. } => store.append(entries),
        }
    }
    fn save_hard_state(&mut self, hs: HardState) -> Result<(), StoreError> {
        match self {
            NodeStore::Mem(s) => s.save_hard_state(hs),
            NodeStore::File { store, .. } => store.save_hard_state(hs),
        }
    }
    fn compact(&mut self, upto: Index) -> Result<(), StoreError> {
        match self {
            NodeStore::Mem(s) => s.compact(upto),
            NodeStore::File { store, .. } => store.compact(upto),
        }
    }
    fn hard_state(&self) -> HardState {
        match self {
            NodeStore::Mem(s) => s.hard_state(),
            NodeStore::File { store, .. } => store.hard_state(),
        }
    }
    fn snapshot_point(&self) -> (Index, Term) {
        match self {
            NodeStore::Mem(s) => s.snapshot_point(),
            NodeStore::File { store, .. } => store.snapshot_point(),
        }
    }
    fn last_index(&self) -> Index {
        match self {
            NodeStore::Mem(s) => s.last_index(),
            NodeStore::File { store, .. } => store.last_index(),
        }
    }
    fn entries(&self, lo: Index, hi: Index) -> Result<Vec<Entry>, StoreError> {
        match self {
            NodeStore::Mem(s) => s.entries(lo, hi),
            NodeStore::File { store, .. } => store.entries(lo, hi),
        }
    }
    fn save_snapshot(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        match self {
            NodeStore::Mem(s) => s.save_snapshot(snap),
            NodeStore::File { store, .. } => store.save_snapshot(snap),
        }
    }
    fn snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        match self {
            NodeStore::Mem(s) => s.snapshot(),
            NodeStore::File { store, .. } => store.snapshot(),
        }
    }
}

/// A node's clock: `offset + true_time * rate_ppm / 1e6`, so it may run fast or slow.
#[derive(Clone, Copy, Debug)]
struct Clock {
    offset: u64,
    rate_ppm: u64,
}

impl Clock {
    const TRUE: Clock = Clock {
        offset: 0,
        rate_ppm: 1_000_000,
    };

    /// What the node's clock reads at true time `t`.
    fn local(self, t: Time) -> Time {
        let scaled = t.as_nanos() as u128 * self.rate_ppm as u128 / 1_000_000;
        Time::from_nanos(
            self.offset
                .saturating_add(scaled.min(u64::MAX as u128) as u64),
        )
    }

    /// The earliest true time at which the node's clock reads `local` or later, so that a
    /// timer scheduled there finds its deadline due.
    fn true_time(self, local: Time) -> Time {
        let Some(since) = local.as_nanos().checked_sub(self.offset) else {
            return Time::ZERO;
        };
        let t = (since as u128 * 1_000_000).div_ceil(self.rate_ppm as u128);
        let mut t = Time::from_nanos(t.min(u64::MAX as u128) as u64);
        while self.local(t) < local {
            t = t + Duration::from_nanos(1);
        }
        t
    }
}

struct SimNode {
    id: NodeId,
    raft: Option<RaftNode>,
    /// Survives crashes.
    store: NodeStore,
    clock: Clock,
    /// The state machine; rolled back to the store's snapshot on a crash.
    applied: Vec<Applied>,
    /// Bumped at every crash and restart, so messages in flight to an old incarnation vanish.
    epoch: u64,
    incarnation: u64,
    timer: Option<(Time, u64)>,
    timer_gen: u64,
    /// Proposals this incarnation accepted, by the (index, term) it promised.
    pending: BTreeMap<(Index, Term), Pending>,
    torn_crash: bool,
    past_stats: Stats,
    same_instant_ticks: u64,
}

/// Closed-loop load for the commit rig: keeps `outstanding` proposals in flight.
pub(crate) struct ClosedLoop {
    pub(crate) total: u64,
    pub(crate) proposed: u64,
    pub(crate) acked: u64,
    /// Proposals refused or overwritten (a leader change); never expected in a calm run.
    pub(crate) failed: u64,
}

/// A simulated cluster. [`Simulation::run`] plays the whole scenario of its [`SimConfig`].
pub struct Simulation {
    cfg: SimConfig,
    now: Time,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    net_rng: ChaCha8Rng,
    fault_rng: ChaCha8Rng,
    client_rng: ChaCha8Rng,
    nodes: Vec<SimNode>,
    /// blocked[from * n + to]: the directed link is cut.
    blocked: Vec<bool>,
    loss: f64,
    duplicate: f64,
    hold: f64,
    checker: Checker,
    phase: Phase,
    phase_deadline: Time,
    heal_at: Time,
    next_id: u64,
    leader_hint: Option<usize>,
    probes: BTreeMap<u64, usize>,
    last_probe: Option<Time>,
    same_instant: u64,
    pub(crate) closed: Option<ClosedLoop>,
    pub(crate) latency: Histogram<u64>,
    pub(crate) latency_from: Time,
    report: SimReport,
    trace: bool,
}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17)
}

fn add_stats(acc: &mut Stats, s: &Stats) {
    acc.appends += s.appends;
    acc.heartbeats += s.heartbeats;
    acc.commit_notices += s.commit_notices;
    acc.entries_sent += s.entries_sent;
    acc.entry_bytes_sent += s.entry_bytes_sent;
    acc.append_responses += s.append_responses;
    acc.vote_requests += s.vote_requests;
    acc.vote_responses += s.vote_responses;
    acc.elections += s.elections;
    acc.snapshot_chunks += s.snapshot_chunks;
    acc.snapshot_bytes_sent += s.snapshot_bytes_sent;
    acc.snapshots_installed += s.snapshots_installed;
}

impl Simulation {
    /// A cluster of fresh nodes at virtual time zero, with the scenario's first events queued.
    pub fn new(cfg: SimConfig) -> Result<Simulation, SimError> {
        let n = cfg.nodes;
        let mut nodes = Vec::with_capacity(n);
        let mut clock_rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, STREAM_CLOCK, 0));
        for i in 0..n {
            let id = i as NodeId + 1;
            let drift = cfg.faults.clock_drift.clamp(0.0, 0.5);
            let clock = if drift > 0.0 {
                let dev = (drift * 1e6) as i64;
                Clock {
                    offset: clock_rng.random_range(0..=10_000_000_000u64),
                    rate_ppm: (1_000_000 + clock_rng.random_range(-dev..=dev)) as u64,
                }
            } else {
                Clock::TRUE
            };
            let raft = RaftNode::new(
                cfg.membership(id),
                cfg.raft.clone(),
                derive_seed(cfg.seed, STREAM_NODE, id << 32),
                clock.local(Time::ZERO),
            )?;
            nodes.push(SimNode {
                id,
                raft: Some(raft),
                store: NodeStore::open(&cfg.store, id)?,
                clock,
                applied: Vec::new(),
                epoch: 0,
                incarnation: 0,
                timer: None,
                timer_gen: 0,
                pending: BTreeMap::new(),
                torn_crash: false,
                past_stats: Stats::default(),
                same_instant_ticks: 0,
            });
        }
        let seed = cfg.seed;
        let mut sim = Simulation {
            now: Time::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            net_rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_NET, 0)),
            fault_rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_FAULT, 0)),
            client_rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_CLIENT, 0)),
            nodes,
            blocked: vec![false; n * n],
            loss: cfg.net.loss,
            duplicate: cfg.net.duplicate,
            hold: cfg.net.hold,
            checker: Checker::new(seed),
            phase: Phase::Faults,
            phase_deadline: Time::ZERO,
            heal_at: Time::ZERO + cfg.warmup + cfg.duration,
            next_id: 1,
            leader_hint: None,
            probes: BTreeMap::new(),
            last_probe: None,
            same_instant: 0,
            closed: None,
            // Bounded so that saturating_record clamps only beyond an hour: an auto-resizing
            // histogram would clamp every value to its initial range instead of growing.
            latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("bounds and 3 significant digits are valid"),
            latency_from: Time::ZERO,
            report: SimReport {
                seed,
                nodes: n,
                ..SimReport::default()
            },
            trace: false,
            cfg,
        };
        for i in 0..n {
            sim.schedule_timer(i);
        }
        if matches!(sim.cfg.proposals, Proposals::Open { .. }) {
            sim.push(Time::ZERO + sim.cfg.warmup, Ev::Propose);
        }
        if !sim.cfg.faults.mean_interval.is_zero() {
            let first = sim.fault_gap();
            sim.push(Time::ZERO + first, Ev::Fault);
        }
        sim.push(sim.heal_at, Ev::Heal);
        Ok(sim)
    }

    /// Plays the scenario: fault phase, heal, a fresh proposal applied everywhere within the
    /// liveness bound, a quiet phase until every node applied the whole committed log, and
    /// the final checks.
    pub fn run(mut self) -> Result<SimReport, SimError> {
        self.run_to_end()?;
        Ok(self.report())
    }

    /// Plays the rest of the scenario, keeping the simulation for inspection.
    pub fn run_to_end(&mut self) -> Result<(), SimError> {
        while self.phase != Phase::Done {
            self.step()?;
            self.check_phase()?;
        }
        self.finish()?;
        Ok(())
    }

    /// Prints every event to stderr as it is processed (for replaying a failing seed).
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    /// The configuration being played.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// The node with `id`, if it is up.
    pub fn node(&self, id: NodeId) -> Option<&RaftNode> {
        self.nodes.get((id as usize).checked_sub(1)?)?.raft.as_ref()
    }

    /// The state machine of node `id`: what it applied, in index order.
    pub fn applied(&self, id: NodeId) -> &[Applied] {
        &self.nodes[id as usize - 1].applied
    }

    /// The counters so far.
    pub fn report(&self) -> SimReport {
        let mut r = self.report.clone();
        r.end = self.now;
        r.stats = Stats::default();
        for sn in &self.nodes {
            add_stats(&mut r.stats, &sn.past_stats);
            if let Some(raft) = &sn.raft {
                add_stats(&mut r.stats, raft.stats());
                r.max_term = r.max_term.max(raft.term());
                r.commit_index = r.commit_index.max(raft.commit_index());
            }
        }
        r
    }

    /// The node that leads in the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|sn| sn.raft.as_ref())
            .filter(|r| r.role() == Role::Leader)
            .max_by_key(|r| r.term())
            .map(|r| r.id())
    }

    /// Puts `msg` on the wire as if its sender's core had sent it, bypassing the core: for
    /// tests that break a run on purpose to show that the checks catch it.
    pub fn inject(&mut self, msg: Message) {
        self.send(msg);
    }

    // ----- the event loop -------------------------------------------------------------

    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.report.max_queue = self.report.max_queue.max(self.queue.len() + 1);
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn violation(&self, property: Property, nodes: Vec<NodeId>, detail: String) -> Violation {
        self.checker.violation(property, self.now, nodes, detail)
    }

    /// Processes the next event.
    pub(crate) fn step(&mut self) -> Result<(), Violation> {
        let Some(s) = self.queue.pop() else {
            return Err(self.violation(
                Property::Liveness,
                vec![],
                "nothing left to happen".into(),
            ));
        };
        debug_assert!(s.at >= self.now);
        if s.at == self.now {
            self.same_instant += 1;
            if self.same_instant > SAME_INSTANT_LIMIT {
                return Err(self.violation(
                    Property::CoreContract,
                    vec![],
                    format!("{SAME_INSTANT_LIMIT} events at one virtual instant: a livelock"),
                ));
            }
        } else {
            self.same_instant = 0;
        }
        self.now = s.at;
        self.report.events += 1;
        if self.report.events > self.cfg.event_budget || self.queue.len() > QUEUE_LIMIT {
            return Err(self.violation(
                Property::CoreContract,
                vec![],
                format!(
                    "{} events processed and {} queued: a message storm or a livelock",
                    self.report.events,
                    self.queue.len()
                ),
            ));
        }
        self.report.fingerprint = mix(mix(self.report.fingerprint, s.at.as_nanos()), s.ev.code());
        if self.trace {
            self.trace_event(&s.ev);
        }
        match s.ev {
            Ev::Deliver { msg, epoch } => self.deliver(msg, epoch),
            Ev::Timer { node, gen } => self.on_timer(node, gen),
            Ev::Propose => self.on_propose(),
            Ev::Fault => self.on_fault(),
            Ev::Restart { node } => {
                if self.nodes[node].raft.is_none() {
                    self.restart(node)?;
                }
                Ok(())
            }
            Ev::TornTimeout { node, epoch } => {
                let sn = &self.nodes[node];
                if sn.torn_crash && sn.epoch == epoch {
                    self.crash(node)?;
                }
                Ok(())
            }
            Ev::Heal => self.on_heal(),
            Ev::Probe => self.on_probe(),
        }
    }

    fn trace_event(&self, ev: &Ev) {
        let what = match ev {
            Ev::Deliver { msg, epoch } => {
                let body = match &msg.body {
                    MessageBody::AppendEntries(ae) => format!(
                        "append {:?} prev ({}, t{}) {} entries {:?} commit {} floor {}",
                        ae.kind,
                        ae.prev_log_index,
                        ae.prev_log_term,
                        ae.entries.len(),
                        ae.entries
                            .first()
                            .zip(ae.entries.last())
                            .map(|(a, b)| (a.index, b.index)),
                        ae.leader_commit,
                        ae.compact_floor
                    ),
                    MessageBody::InstallSnapshot(is) => format!(
                        "snapshot ({}, t{}) offset {} {} bytes done {}",
                        is.meta.index,
                        is.meta.term,
                        is.offset,
                        is.data.len(),
                        is.done
                    ),
                    other => format!("{other:?}"),
                };
                let stale = self.nodes[msg.to as usize - 1].epoch != *epoch;
                format!(
                    "deliver {}->{} t{} {body}{}",
                    msg.from,
                    msg.to,
                    msg.term,
                    if stale { " (stale)" } else { "" }
                )
            }
            Ev::Timer { node, gen } => {
                if self.nodes[*node].timer.map(|(_, g)| g) != Some(*gen) {
                    return;
                }
                format!("timer {}", node + 1)
            }
            Ev::Propose => "propose".into(),
            Ev::Fault => "fault".into(),
            Ev::Restart { node } => format!("restart {}", node + 1),
            Ev::TornTimeout { node, .. } => format!("torn-timeout {}", node + 1),
            Ev::Heal => "heal".into(),
            Ev::Probe => "probe".into(),
        };
        eprintln!("{} {what} | {}", self.now, self.describe_nodes());
    }

    fn check_phase(&mut self) -> Result<(), Violation> {
        match self.phase {
            Phase::Faults | Phase::Done => Ok(()),
            Phase::Recovery => {
                if self.now > self.phase_deadline {
                    return Err(self.violation(
                        Property::Liveness,
                        vec![],
                        format!(
                            "no fresh proposal was applied on every node within {:?} of the heal \
                             (at {}); {}",
                            self.cfg.liveness_bound(),
                            self.heal_at,
                            self.describe_nodes()
                        ),
                    ));
                }
                Ok(())
            }
            Phase::Quiet => {
                if self.converged() {
                    self.phase = Phase::Done;
                    return Ok(());
                }
                if self.now > self.phase_deadline {
                    return Err(self.violation(
                        Property::Liveness,
                        vec![],
                        format!(
                            "nodes did not all apply the committed log within {:?}; {}",
                            self.cfg.liveness_bound(),
                            self.describe_nodes()
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    fn describe_nodes(&self) -> String {
        let parts: Vec<String> = self
            .nodes
            .iter()
            .map(|sn| match &sn.raft {
                None => format!("{}: down", sn.id),
                Some(r) => format!(
                    "{}: {:?} term {} leader {:?} last {} commit {} applied {}",
                    sn.id,
                    r.role(),
                    r.term(),
                    r.leader(),
                    r.log().last_index(),
                    r.commit_index(),
                    r.applied_index()
                ),
            })
            .collect();
        parts.join("; ")
    }

    /// Every node is up and has applied everything committed, and the leader's log holds
    /// nothing more.
    fn converged(&self) -> bool {
        let mut commit = 0;
        for sn in &self.nodes {
            let Some(r) = &sn.raft else {
                return false;
            };
            commit = commit.max(r.commit_index());
        }
        let leader_done = self
            .nodes
            .iter()
            .filter_map(|sn| sn.raft.as_ref())
            .any(|r| {
                // A proposal still lingering in the batcher has an index but no entry yet.
                r.role() == Role::Leader
                    && r.log().last_index() == commit
                    && r.pending_proposals() == 0
            });
        leader_done
            && self.nodes.iter().all(|sn| {
                let r = sn.raft.as_ref().expect("checked above");
                r.applied_index() == commit
                    && (!self.cfg.checks || sn.applied.len() as Index == commit)
            })
    }

    fn finish(&mut self) -> Result<(), Violation> {
        if !self.cfg.checks {
            return Ok(());
        }
        let seqs: Vec<(NodeId, &[Applied])> = self
            .nodes
            .iter()
            .map(|sn| (sn.id, sn.applied.as_slice()))
            .collect();
        self.checker.finish(self.now, &seqs)
    }

    // ----- nodes ----------------------------------------------------------------------

    fn schedule_timer(&mut self, n: usize) {
        let Some(raft) = &self.nodes[n].raft else {
            return;
        };
        let due = self.nodes[n]
            .clock
            .true_time(raft.next_deadline())
            .max(self.now);
        let sn = &mut self.nodes[n];
        if matches!(sn.timer, Some((at, _)) if at <= due) {
            return; // an earlier wakeup is queued; it re-arms for the later deadline
        }
        sn.timer_gen += 1;
        sn.timer = Some((due, sn.timer_gen));
        let gen = sn.timer_gen;
        self.push(due, Ev::Timer { node: n, gen });
    }

    fn on_timer(&mut self, n: usize, gen: u64) -> Result<(), Violation> {
        let sn = &mut self.nodes[n];
        let now = sn.clock.local(self.now);
        if sn.timer.map(|(_, g)| g) != Some(gen) {
            return Ok(()); // superseded by an earlier wakeup, or the node crashed
        }
        sn.timer = None;
        let Some(raft) = sn.raft.as_mut() else {
            return Ok(());
        };
        if now >= raft.next_deadline() {
            sn.same_instant_ticks = if self.same_instant == 0 {
                0
            } else {
                sn.same_instant_ticks + 1
            };
            if sn.same_instant_ticks > 10_000 {
                let id = sn.id;
                return Err(self.violation(
                    Property::CoreContract,
                    vec![id],
                    "next_deadline() stays due after tick(): the timer fires forever".into(),
                ));
            }
            raft.tick(now);
            self.drive(n)?;
        }
        self.schedule_timer(n);
        Ok(())
    }

    fn deliver(&mut self, msg: Message, epoch: u64) -> Result<(), Violation> {
        let n = self.nodes.len();
        let (from, to) = (msg.from as usize - 1, msg.to as usize - 1);
        let sn = &mut self.nodes[to];
        if sn.epoch != epoch || self.blocked[from * n + to] {
            self.report.messages_dropped += 1;
            return Ok(());
        }
        let Some(raft) = sn.raft.as_mut() else {
            self.report.messages_dropped += 1;
            return Ok(());
        };
        self.report.messages_delivered += 1;
        if let Err(e) = raft.step(msg, sn.clock.local(self.now)) {
            let id = sn.id;
            return Err(self.violation(
                Property::CoreContract,
                vec![id, from as NodeId + 1],
                format!("a message the core sent was refused: {e}"),
            ));
        }
        self.drive(to)
    }

    fn send(&mut self, msg: Message) {
        self.report.messages_sent += 1;
        let n = self.nodes.len();
        let (from, to) = (msg.from as usize - 1, msg.to as usize - 1);
        if to >= n || self.nodes[to].raft.is_none() || self.blocked[from * n + to] {
            self.report.messages_dropped += 1;
            return;
        }
        if self.loss > 0.0 && self.net_rng.random_bool(self.loss) {
            self.report.messages_dropped += 1;
            return;
        }
        let epoch = self.nodes[to].epoch;
        if self.duplicate > 0.0 && self.net_rng.random_bool(self.duplicate) {
            self.report.messages_duplicated += 1;
            let at = self.now + self.delivery_delay();
            self.push(
                at,
                Ev::Deliver {
                    msg: msg.clone(),
                    epoch,
                },
            );
        }
        let at = self.now + self.delivery_delay();
        self.push(at, Ev::Deliver { msg, epoch });
    }

    /// The network's delay, or now and then (fault phase) a hold of one election timeout
    /// to three of the longest: the message arrives from a term that may be long over.
    fn delivery_delay(&mut self) -> Duration {
        if self.hold > 0.0 && self.net_rng.random_bool(self.hold) {
            self.report.messages_held += 1;
            let lo = self.cfg.raft.election_timeout.as_nanos() as u64;
            let hi = (self.cfg.max_election_timeout() * 3).as_nanos() as u64;
            return Duration::from_nanos(self.net_rng.random_range(lo..=hi.max(lo)));
        }
        self.delay()
    }

    fn delay(&mut self) -> Duration {
        let lo = self.cfg.net.min_delay.as_nanos() as u64;
        let hi = self.cfg.net.max_delay.as_nanos() as u64;
        if hi <= lo {
            return Duration::from_nanos(lo);
        }
        Duration::from_nanos(self.net_rng.random_range(lo..=hi))
    }

    /// Carries out what node `n` asks, in the order `Ready` documents, until it has nothing more.
    fn drive(&mut self, n: usize) -> Result<(), Violation> {
        let now = self.now;
        let id = self.nodes[n].id;
        loop {
            let Some(raft) = self.nodes[n].raft.as_mut() else {
                return Ok(());
            };
            if !raft.has_ready() {
                break;
            }
            let rd = raft.ready();
            for ev in &rd.events {
                self.observe(n, ev)?;
            }
            self.isolate_on_election(n, &rd.events);
            if self.crash_on_commit(n, &rd.events) {
                // The commit happened in memory; nothing of this Ready reaches disk or wire.
                return self.crash_with_restart(n);
            }

            // 1. Messages that may leave before the disk write.
            for m in rd.messages {
                self.send(m);
            }
            if self.nodes[n].torn_crash
                && (rd.hard_state.is_some() || rd.snapshot.is_some() || !rd.entries.is_empty())
            {
                self.report.torn_crashes += 1;
                return self.crash(n);
            }

            // 2. Persist, then acknowledge. A failed write stops the node: it may not
            // acknowledge or vote on what it could not persist.
            if let Some(hs) = rd.hard_state {
                if self.store_fails() {
                    return self.stop_on_store_failure(n);
                }
                let r = self.nodes[n].store.save_hard_state(hs);
                if !self.stored_or_stopped(n, id, r, "Ready.hard_state")? {
                    return Ok(());
                }
            }
            if let Some(snap) = &rd.snapshot {
                if self.store_fails() {
                    return self.stop_on_store_failure(n);
                }
                let r = self.nodes[n].store.save_snapshot(snap);
                if !self.stored_or_stopped(n, id, r, "Ready.snapshot")? {
                    return Ok(());
                }
            }
            if let (Some(first), Some(last)) = (rd.entries.first(), rd.entries.last()) {
                // A failing append may leave any prefix of its entries behind.
                let failed = self.store_fails();
                let kept = if failed {
                    self.fault_rng.random_range(0..rd.entries.len())
                } else {
                    rd.entries.len()
                };
                let written = &rd.entries[..kept];
                let sn = &mut self.nodes[n];
                let raft = sn.raft.as_mut().expect("up");
                if self.cfg.checks {
                    let Some(prev_term) = raft.log().term(first.index - 1) else {
                        return Err(self.violation(
                            Property::CoreContract,
                            vec![id],
                            format!("entries from {} do not follow the node's log", first.index),
                        ));
                    };
                    let store_last = sn.store.last_index();
                    let replaced = if first.index <= store_last && !written.is_empty() {
                        sn.store
                            .entries(first.index, store_last + 1)
                            .unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    if self.trace && !replaced.is_empty() {
                        let old: Vec<_> = replaced.iter().map(|e| (e.index, e.term)).collect();
                        let new: Vec<_> = rd.entries.iter().map(|e| (e.index, e.term)).collect();
                        eprintln!("    node {id} overwrites {old:?} with {new:?}");
                    }
                    let term = raft.term();
                    self.checker
                        .stored(now, id, term, prev_term, written, &replaced)?;
                }
                let r = self.nodes[n].store.append(written);
                if !self.stored_or_stopped(n, id, r, "Ready.entries")? {
                    return Ok(());
                }
                if failed {
                    return self.stop_on_store_failure(n);
                }
                let sn = &mut self.nodes[n];
                sn.raft
                    .as_mut()
                    .expect("up")
                    .persisted(last.index, last.term);
            }

            // 3. Messages that promise what is now on disk.
            for m in rd.persisted_messages {
                self.send(m);
            }

            // 4. Restore the state machine from a leader's snapshot, then apply.
            if let Some(snap) = &rd.snapshot {
                self.restore_state(n, snap, "installed")?;
            }
            let mut refill = 0;
            for e in &rd.committed {
                self.apply(n, e, &mut refill)?;
            }
            let sn = &mut self.nodes[n];
            let raft = sn.raft.as_mut().expect("up");
            if let Some(last) = rd.committed.last() {
                raft.applied(last.index);
            }
            if let Some(index) = raft.snapshot_due() {
                if !self.take_snapshot(n, index)? {
                    return Ok(());
                }
            }
            let sn = &mut self.nodes[n];

            // 5. Compact.
            if let Some(upto) = rd.compact_to {
                if let Err(e) = sn.store.compact(upto) {
                    return Err(self.violation(
                        Property::CoreContract,
                        vec![id],
                        format!("Ready.compact_to {upto} could not be applied: {e}"),
                    ));
                }
            }
            if refill > 0 {
                self.refill(n, refill);
            }
        }
        if self.cfg.checks {
            let raft = self.nodes[n].raft.as_ref().expect("up");
            let (term, role) = (raft.term(), raft.role());
            self.checker.role_observed(now, id, term, role)?;
        }
        self.schedule_timer(n);
        Ok(())
    }

    /// Replaces node `n`'s state machine with the one `snap` holds (`what`: installed from
    /// a leader, or reloaded after a crash), checking it against the applied log.
    fn restore_state(&mut self, n: usize, snap: &Snapshot, what: &str) -> Result<(), Violation> {
        if !self.cfg.checks {
            return Ok(());
        }
        let id = self.nodes[n].id;
        let state = match decode_state(&snap.data) {
            Ok(s) => s,
            Err(e) => {
                return Err(self.violation(Property::SnapshotFidelity, vec![id], e));
            }
        };
        self.checker
            .restored(self.now, id, snap.meta.index, &state, what)?;
        self.nodes[n].applied = state;
        Ok(())
    }

    /// Node `n` snapshots its state machine at `index` (its applied index) and saves it;
    /// false if the save failed and the node stopped.
    fn take_snapshot(&mut self, n: usize, index: Index) -> Result<bool, Violation> {
        let id = self.nodes[n].id;
        let data = if self.cfg.checks {
            let applied = &self.nodes[n].applied;
            if applied.len() as Index != index {
                let len = applied.len();
                return Err(self.violation(
                    Property::CoreContract,
                    vec![id],
                    format!("snapshot_due() says {index} but the state machine applied {len}"),
                ));
            }
            encode_state(applied)
        } else {
            Bytes::new()
        };
        let raft = self.nodes[n].raft.as_mut().expect("up");
        let snap = match raft.snapshot_taken(index, data) {
            Ok(s) => s,
            Err(e) => {
                return Err(self.violation(
                    Property::CoreContract,
                    vec![id],
                    format!("snapshot_due() offered {index} but snapshot_taken refused it: {e}"),
                ))
            }
        };
        if self.cfg.checks {
            let state = decode_state(&snap.data)
                .map_err(|e| self.violation(Property::SnapshotFidelity, vec![id], e))?;
            self.checker.snapshot_taken(self.now, id, index, &state)?;
        }
        if self.store_fails() {
            self.stop_on_store_failure(n)?;
            return Ok(false);
        }
        let r = self.nodes[n].store.save_snapshot(&snap);
        self.stored_or_stopped(n, id, r, "a snapshot taken")
    }

    fn observe(&mut self, n: usize, ev: &Event) -> Result<(), Violation> {
        let now = self.now;
        let sn = &self.nodes[n];
        let raft = sn.raft.as_ref().expect("up");
        if self.trace && !matches!(ev, Event::EntriesSent { .. }) {
            let terms = match *ev {
                Event::CommitAdvanced { from, to } => {
                    let t: Vec<_> = raft.log().range(from + 1, to).map(|e| e.term).collect();
                    format!(" entry terms {t:?}")
                }
                _ => String::new(),
            };
            eprintln!("    node {} (term {}): {ev:?}{terms}", sn.id, raft.term());
        }
        if let Event::RoleChanged {
            role: Role::Leader, ..
        } = ev
        {
            self.report.elections_won += 1;
        }
        if !self.cfg.checks {
            return Ok(());
        }
        match *ev {
            Event::RoleChanged { term, role } => {
                self.checker
                    .role_changed(now, sn.id, term, role, raft.log())
            }
            Event::LeaderChanged { term, leader } => {
                self.checker.leader_changed(now, sn.id, term, leader)
            }
            Event::CommitAdvanced { from, to } => self.checker.commit_advanced(
                now,
                sn.id,
                raft.term(),
                from,
                to,
                raft.log().range(from + 1, to),
            ),
            Event::EntriesSent { .. } => Ok(()),
        }
    }

    fn apply(&mut self, n: usize, e: &Entry, refill: &mut usize) -> Result<(), Violation> {
        let now = self.now;
        let id = payload_id(e);
        let node_id = self.nodes[n].id;
        if self.cfg.checks {
            self.checker.applied(now, node_id, e)?;
            self.nodes[n].applied.push(Applied::of(e));
        }
        let sn = &mut self.nodes[n];
        while let Some(slot) = sn.pending.first_entry() {
            let (index, term) = *slot.key();
            if index > e.index {
                break;
            }
            let p = slot.remove();
            if (index, term) != (e.index, e.term) {
                self.report.lost += 1;
                if let Some(cl) = &mut self.closed {
                    cl.failed += 1;
                }
                continue;
            }
            if p.id != id {
                return Err(self.violation(
                    Property::AcknowledgedDurability,
                    vec![node_id],
                    format!(
                        "node {node_id} accepted payload {} at ({index}, term {term}) but applied {id} there",
                        p.id
                    ),
                ));
            }
            self.report.acknowledged += 1;
            if self.cfg.checks {
                self.checker.acknowledged(Ack {
                    id,
                    index,
                    term,
                    node: node_id,
                });
            }
            if !p.probe && p.proposed_at >= self.latency_from {
                let ns = (now - p.proposed_at).as_nanos() as u64;
                self.latency.saturating_record(ns.max(1));
            }
            if let Some(cl) = &mut self.closed {
                cl.acked += 1;
                if cl.proposed < cl.total {
                    *refill += 1;
                }
            }
        }
        if self.phase == Phase::Recovery {
            if let Some(count) = self.probes.get_mut(&id) {
                *count += 1;
                if *count == self.nodes.len() {
                    self.report.recovery = Some(now - self.heal_at);
                    self.phase = Phase::Quiet;
                    self.phase_deadline = now + self.cfg.liveness_bound();
                }
            }
        }
        Ok(())
    }

    fn isolate_on_election(&mut self, n: usize, events: &[Event]) {
        let p = self.cfg.faults.isolate_on_election;
        if p <= 0.0 || self.phase != Phase::Faults {
            return;
        }
        let elected = events.iter().any(|e| {
            matches!(
                e,
                Event::RoleChanged {
                    role: Role::Leader,
                    ..
                }
            )
        });
        if elected && self.fault_rng.random_bool(p) {
            let len = self.nodes.len();
            self.report.partitions += 1;
            for other in (0..len).filter(|&o| o != n) {
                self.blocked[n * len + other] = true;
                self.blocked[other * len + n] = true;
            }
        }
    }

    fn crash_on_commit(&mut self, n: usize, events: &[Event]) -> bool {
        let p = self.cfg.faults.crash_on_commit;
        if p <= 0.0 || self.phase != Phase::Faults {
            return false;
        }
        let is_leader = self.nodes[n]
            .raft
            .as_ref()
            .is_some_and(|r| r.role() == Role::Leader);
        let advanced = events
            .iter()
            .any(|e| matches!(e, Event::CommitAdvanced { .. }));
        let down = self.nodes.iter().filter(|sn| sn.raft.is_none()).count();
        is_leader
            && advanced
            && down < self.cfg.faults.max_down.min(self.nodes.len())
            && self.fault_rng.random_bool(p)
    }

    /// Whether the next store write fails (fault phase only, within the crash budget).
    fn store_fails(&mut self) -> bool {
        let p = self.cfg.faults.store_failure;
        if p <= 0.0 || self.phase != Phase::Faults {
            return false;
        }
        let down = self.nodes.iter().filter(|sn| sn.raft.is_none()).count();
        down < self.cfg.faults.max_down.min(self.nodes.len()) && self.fault_rng.random_bool(p)
    }

    /// A store write failed: the node stops as a crash does and restarts later from what
    /// its store holds.
    fn stop_on_store_failure(&mut self, n: usize) -> Result<(), Violation> {
        self.report.store_failures += 1;
        self.crash_with_restart(n)
    }

    /// What a store call's outcome means for node `n` (id `id`): true if it stored; an I/O
    /// error stops the node as a crash does (false); any other error breaks the driver's
    /// contract with the store.
    fn stored_or_stopped(
        &mut self,
        n: usize,
        id: NodeId,
        r: Result<(), StoreError>,
        what: &str,
    ) -> Result<bool, Violation> {
        match r {
            Ok(()) => Ok(true),
            Err(StoreError::Io(_)) => self.stop_on_store_failure(n).map(|()| false),
            Err(e) => Err(self.violation(
                Property::CoreContract,
                vec![id],
                format!("{what} could not be stored: {e}"),
            )),
        }
    }

    fn crash_with_restart(&mut self, n: usize) -> Result<(), Violation> {
        self.crash(n)?;
        let max_down = self.cfg.faults.max_downtime.as_nanos().max(1) as u64;
        let downtime = Duration::from_nanos(self.fault_rng.random_range(0..=max_down));
        self.push(self.now + downtime, Ev::Restart { node: n });
        Ok(())
    }

    fn crash(&mut self, n: usize) -> Result<(), Violation> {
        let sn = &mut self.nodes[n];
        let Some(raft) = sn.raft.take() else {
            return Ok(());
        };
        add_stats(&mut sn.past_stats, raft.stats());
        sn.epoch += 1;
        sn.timer = None;
        self.report.abandoned += sn.pending.len() as u64;
        sn.pending.clear();
        sn.torn_crash = false;
        self.report.crashes += 1;
        if self.leader_hint == Some(n) {
            self.leader_hint = None;
        }
        if let Err(e) = sn.store.reopen() {
            let id = sn.id;
            return Err(self.violation(Property::CoreContract, vec![id], e.to_string()));
        }
        let stored = match sn.store.snapshot() {
            Ok(s) => s.filter(|s| s.meta.index == sn.store.snapshot_point().0),
            Err(e) => {
                let id = sn.id;
                return Err(self.violation(Property::CoreContract, vec![id], e.to_string()));
            }
        };
        if let Some(snap) = stored {
            // The state machine is rebuilt from the stored snapshot, as a real driver's is.
            return self.restore_state(n, &snap, "reloaded");
        }
        let sn = &mut self.nodes[n];
        if self.cfg.checks {
            let snap = sn.store.snapshot_point().0;
            if (sn.applied.len() as Index) < snap {
                let (id, len) = (sn.id, sn.applied.len());
                return Err(self.violation(
                    Property::CoreContract,
                    vec![id],
                    format!(
                        "the store discarded up to {snap} but the state machine only applied {len}"
                    ),
                ));
            }
            // Entries in the discarded prefix live on in the snapshot; the rest is re-applied.
            sn.applied.truncate(snap as usize);
            self.checker.rolled_back(sn.id, snap);
        }
        Ok(())
    }

    fn restart(&mut self, n: usize) -> Result<(), Violation> {
        let now = self.now;
        let sn = &mut self.nodes[n];
        sn.incarnation += 1;
        let seed = derive_seed(self.cfg.seed, STREAM_NODE, sn.id << 32 | sn.incarnation);
        let local = sn.clock.local(now);
        let raft = match RaftNode::restore(
            self.cfg.membership(sn.id),
            self.cfg.raft.clone(),
            seed,
            local,
            &sn.store,
        ) {
            Ok(r) => r,
            Err(e) => {
                let id = sn.id;
                return Err(self.violation(
                    Property::CoreContract,
                    vec![id],
                    format!("restore failed: {e}"),
                ));
            }
        };
        sn.raft = Some(raft);
        sn.epoch += 1;
        self.report.restarts += 1;
        self.drive(n)
    }

    // ----- clients --------------------------------------------------------------------

    fn random_up_node(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].raft.is_some())
            .collect();
        if up.is_empty() {
            return None;
        }
        Some(up[self.client_rng.random_range(0..up.len())])
    }

    /// Proposes a fresh payload to whichever node the client believes leads, following
    /// "not the leader" hints; a proposal no node accepts is dropped, never retried later.
    fn client_propose(&mut self, probe: bool) -> Result<bool, Violation> {
        let id = self.next_id;
        self.next_id += 1;
        self.report.proposals += 1;
        let data = Bytes::copy_from_slice(&id.to_be_bytes());
        let mut target = match self.leader_hint.filter(|&i| self.nodes[i].raft.is_some()) {
            Some(i) => Some(i),
            None => self.random_up_node(),
        };
        for _ in 0..3 {
            let Some(t) = target else {
                break;
            };
            let local = self.nodes[t].clock.local(self.now);
            let raft = self.nodes[t].raft.as_mut().expect("up");
            match raft.propose(data.clone(), local) {
                Ok((index, term)) => {
                    self.report.accepted += 1;
                    self.leader_hint = Some(t);
                    if probe {
                        self.probes.insert(id, 0);
                    }
                    self.nodes[t].pending.insert(
                        (index, term),
                        Pending {
                            id,
                            proposed_at: self.now,
                            probe,
                        },
                    );
                    self.drive(t)?;
                    return Ok(true);
                }
                // The leader holds as much uncommitted as it may: dropped, as a client
                // that gives up would.
                Err(ProposeError::Overloaded { .. }) => break,
                Err(ProposeError::NotLeader { leader }) => {
                    let hinted = leader
                        .map(|l| l as usize - 1)
                        .filter(|&i| i != t && self.nodes[i].raft.is_some());
                    target = match hinted {
                        Some(i) => Some(i),
                        None => self.random_up_node(),
                    };
                    self.leader_hint = target;
                }
            }
        }
        Ok(false)
    }

    fn on_propose(&mut self) -> Result<(), Violation> {
        if self.phase != Phase::Faults {
            return Ok(());
        }
        let Proposals::Open {
            rate,
            max_burst,
            max_outstanding,
        } = self.cfg.proposals
        else {
            return Ok(());
        };
        let burst = self.client_rng.random_range(1..=max_burst.max(1));
        for _ in 0..burst {
            if self.outstanding() >= max_outstanding {
                self.abandon_old_proposals();
                if self.outstanding() >= max_outstanding {
                    self.report.shed += 1;
                    continue;
                }
            }
            self.client_propose(false)?;
        }
        // Poisson arrivals: exponential gaps.
        let u: f64 = self.client_rng.random_range(f64::EPSILON..1.0);
        let gap = Duration::from_secs_f64(-u.ln() / rate.max(1e-9));
        let at = self.now + gap;
        self.push(at, Ev::Propose);
        Ok(())
    }

    fn outstanding(&self) -> usize {
        self.nodes.iter().map(|sn| sn.pending.len()).sum()
    }

    /// Clients stop waiting for proposals older than the client timeout.
    fn abandon_old_proposals(&mut self) {
        let Some(cutoff) = self
            .now
            .as_nanos()
            .checked_sub(self.cfg.client_timeout().as_nanos() as u64)
        else {
            return;
        };
        for sn in &mut self.nodes {
            let before = sn.pending.len();
            sn.pending.retain(|_, p| p.proposed_at.as_nanos() > cutoff);
            self.report.abandoned += (before - sn.pending.len()) as u64;
        }
    }

    fn on_probe(&mut self) -> Result<(), Violation> {
        if self.phase != Phase::Recovery {
            return Ok(());
        }
        // A probe accepted by a leader that then lost its term may never commit: try afresh.
        let stale = self.cfg.max_election_timeout();
        if self.last_probe.is_none_or(|t| self.now >= t + stale) && self.client_propose(true)? {
            self.last_probe = Some(self.now);
        }
        let at = self.now + self.cfg.raft.heartbeat_interval;
        self.push(at, Ev::Probe);
        Ok(())
    }

    /// Closed loop: after acknowledgements, node `n` (the leader) gets as many new proposals.
    fn refill(&mut self, n: usize, count: usize) {
        let now = self.now;
        for _ in 0..count {
            let Some(cl) = &mut self.closed else {
                return;
            };
            if cl.proposed >= cl.total {
                return;
            }
            cl.proposed += 1;
            let id = self.next_id;
            self.next_id += 1;
            self.report.proposals += 1;
            let local = self.nodes[n].clock.local(now);
            let Some(raft) = self.nodes[n].raft.as_mut() else {
                return;
            };
            let Ok((index, term)) = raft.propose(Bytes::copy_from_slice(&id.to_be_bytes()), local)
            else {
                if let Some(cl) = &mut self.closed {
                    cl.failed += 1;
                }
                continue;
            };
            {
                self.report.accepted += 1;
                self.nodes[n].pending.insert(
                    (index, term),
                    Pending {
                        id,
                        proposed_at: now,
                        probe: false,
                    },
                );
            }
        }
    }

    /// Starts a closed loop of `total` proposals to node `leader`, `outstanding` at a time.
    pub(crate) fn start_closed_loop(
        &mut self,
        leader: NodeId,
        total: u64,
        outstanding: usize,
    ) -> Result<(), Violation> {
        self.closed = Some(ClosedLoop {
            total,
            proposed: 0,
            acked: 0,
            failed: 0,
        });
        let n = leader as usize - 1;
        self.refill(n, outstanding);
        // Proposals only join the log; the node's next Ready sends them.
        self.drive(n)
    }

    // ----- faults ---------------------------------------------------------------------

    fn fault_gap(&mut self) -> Duration {
        let mean = self.cfg.faults.mean_interval.as_secs_f64();
        let u: f64 = self.fault_rng.random_range(f64::EPSILON..1.0);
        Duration::from_secs_f64(-u.ln() * mean)
    }

    fn on_fault(&mut self) -> Result<(), Violation> {
        if self.phase != Phase::Faults {
            return Ok(());
        }
        let n = self.nodes.len();
        let down = self.nodes.iter().filter(|sn| sn.raft.is_none()).count();
        let roll = self.fault_rng.random_range(0..100u32);
        if roll < 30 {
            self.partition();
        } else if roll < 50 {
            self.blocked.iter_mut().for_each(|b| *b = false);
        } else if roll < 80 {
            if down < self.cfg.faults.max_down.min(n) {
                let victim = self.crash_victim();
                let torn = self.fault_rng.random_bool(self.cfg.faults.torn_crash);
                let max_down = self.cfg.faults.max_downtime.as_nanos().max(1) as u64;
                let downtime = Duration::from_nanos(self.fault_rng.random_range(0..=max_down));
                if torn {
                    let sn = &mut self.nodes[victim];
                    sn.torn_crash = true;
                    let epoch = sn.epoch;
                    let at = self.now + self.cfg.raft.election_timeout;
                    self.push(
                        at,
                        Ev::TornTimeout {
                            node: victim,
                            epoch,
                        },
                    );
                    self.push(at + downtime, Ev::Restart { node: victim });
                } else {
                    self.crash(victim)?;
                    self.push(self.now + downtime, Ev::Restart { node: victim });
                }
            }
        } else if down > 0 {
            let downs: Vec<usize> = (0..n).filter(|&i| self.nodes[i].raft.is_none()).collect();
            let i = downs[self.fault_rng.random_range(0..downs.len())];
            self.restart(i)?;
        }
        let at = self.now + self.fault_gap();
        self.push(at, Ev::Fault);
        Ok(())
    }

    /// Half the time the node that leads in the highest term: the most disruptive choice.
    fn crash_victim(&mut self) -> usize {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].raft.is_some() && !self.nodes[i].torn_crash)
            .collect();
        if let Some(l) = self.leader() {
            if self.fault_rng.random_bool(0.5) && up.contains(&(l as usize - 1)) {
                return l as usize - 1;
            }
        }
        if up.is_empty() {
            return 0;
        }
        up[self.fault_rng.random_range(0..up.len())]
    }

    fn partition(&mut self) {
        let n = self.nodes.len();
        self.report.partitions += 1;
        self.blocked.iter_mut().for_each(|b| *b = false);
        match self.fault_rng.random_range(0..4u32) {
            0 => {
                // Isolate one node (the leader half the time), both directions.
                let victim = match self.leader() {
                    Some(l) if self.fault_rng.random_bool(0.5) => l as usize - 1,
                    _ => self.fault_rng.random_range(0..n),
                };
                for other in 0..n {
                    if other != victim {
                        self.blocked[victim * n + other] = true;
                        self.blocked[other * n + victim] = true;
                    }
                }
            }
            1 => {
                // Two random sides, symmetric.
                let side: Vec<bool> = (0..n).map(|_| self.fault_rng.random_bool(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        if side[a] != side[b] {
                            self.blocked[a * n + b] = true;
                        }
                    }
                }
            }
            2 => {
                // One-way: the victim hears everyone but nobody hears it (or the reverse).
                let victim = self.fault_rng.random_range(0..n);
                let outgoing = self.fault_rng.random_bool(0.5);
                for other in (0..n).filter(|&o| o != victim) {
                    if outgoing {
                        self.blocked[victim * n + other] = true;
                    } else {
                        self.blocked[other * n + victim] = true;
                    }
                }
            }
            _ => {
                // Random directed links.
                for a in 0..n {
                    for b in (0..n).filter(|&b| b != a) {
                        self.blocked[a * n + b] = self.fault_rng.random_bool(0.3);
                    }
                }
            }
        }
    }

    fn on_heal(&mut self) -> Result<(), Violation> {
        self.blocked.iter_mut().for_each(|b| *b = false);
        self.loss = 0.0;
        self.duplicate = 0.0;
        self.hold = 0.0;
        for i in 0..self.nodes.len() {
            self.nodes[i].torn_crash = false;
            if self.nodes[i].raft.is_none() {
                self.restart(i)?;
            }
        }
        self.phase = Phase::Recovery;
        self.heal_at = self.now;
        self.phase_deadline = self.now + self.cfg.liveness_bound();
        self.push(self.now, Ev::Probe);
        Ok(())
    }
}
