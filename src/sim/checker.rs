//! Raft's safety properties (Figure 3 of the paper) as incremental checks, plus the
//! client's view: an acknowledged write is never lost.
//!
//! Each property is its own type with the state it needs; [`Checker`] feeds them what the
//! simulator observes after every step and turns a breach into a [`Violation`] naming the
//! property, the seed, the virtual time and the nodes. The checks never look at a whole
//! history again: every observation costs a hash lookup or a short scan, so they can run
//! after every single event.
//!
//! The types take plain observations (terms, entries, a [`RaftLog`]), not a running cluster,
//! so a test can feed them a fabricated history and prove that they do fail.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::raft::{Entry, EntryKind, Index, NodeId, RaftLog, Role, Term, Time};

/// What identifies an entry's payload: clients propose unique 8-byte ids.
pub type PayloadId = u64;

/// The payload id of a leader's no-op entry (client ids start at 1).
pub const NOOP_ID: PayloadId = 0;

/// The payload id of `e`: its 8-byte big-endian id, [`NOOP_ID`] for a no-op, `u64::MAX`
/// for a payload no simulated client could have sent.
pub fn payload_id(e: &Entry) -> PayloadId {
    match e.kind {
        EntryKind::Noop => NOOP_ID,
        EntryKind::Normal => <[u8; 8]>::try_from(&e.data[..]).map_or(u64::MAX, u64::from_be_bytes),
    }
}

/// One slot of a node's state machine: the entry it applied at `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Log index.
    pub index: Index,
    /// Term of the entry.
    pub term: Term,
    /// Payload id of the entry.
    pub id: PayloadId,
}

impl Applied {
    /// The slot for entry `e`.
    pub fn of(e: &Entry) -> Applied {
        Applied {
            index: e.index,
            term: e.term,
            id: payload_id(e),
        }
    }
}

/// Bytes per slot in a simulated snapshot: term and payload id (the index is the position).
const SLOT_BYTES: usize = 16;

/// The simulated state machine's snapshot: every slot it applied, in index order, as
/// `[term u64][id u64]` each (big-endian).
pub fn encode_state(state: &[Applied]) -> Bytes {
    let mut b = BytesMut::with_capacity(state.len() * SLOT_BYTES);
    for a in state {
        b.put_u64(a.term);
        b.put_u64(a.id);
    }
    b.freeze()
}

/// The state machine a snapshot made by [`encode_state`] holds; an error for bytes that
/// are not a whole number of slots.
pub fn decode_state(data: &Bytes) -> Result<Vec<Applied>, String> {
    if !data.len().is_multiple_of(SLOT_BYTES) {
        return Err(format!(
            "snapshot of {} bytes is not a whole number of {SLOT_BYTES}-byte slots",
            data.len()
        ));
    }
    let mut rest = data.clone();
    let mut out = Vec::with_capacity(data.len() / SLOT_BYTES);
    while rest.has_remaining() {
        out.push(Applied {
            index: out.len() as Index + 1,
            term: rest.get_u64(),
            id: rest.get_u64(),
        });
    }
    Ok(out)
}

/// The properties the checker enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Property {
    /// At most one leader can be elected in a given term.
    ElectionSafety,
    /// If two logs contain an entry with the same index and term, the logs are identical
    /// in all entries up through that index.
    LogMatching,
    /// If an entry is committed in a given term, it is present in the logs of the leaders
    /// of all higher-numbered terms.
    LeaderCompleteness,
    /// If a node has applied an entry at an index, no other node ever applies a different
    /// entry at that index.
    StateMachineSafety,
    /// Every acknowledged proposal ends up exactly once, at one index, on every node.
    AcknowledgedDurability,
    /// Once faults heal, a leader is elected and new proposals commit on every node.
    Liveness,
    /// A state machine restored from a snapshot at an index (installed from a leader, or
    /// reloaded after a crash) equals the state of a node that applied the log up to that
    /// index, and so does what every snapshot taken decodes to.
    SnapshotFidelity,
    /// The core kept its side of the driver contract (well-formed messages and writes,
    /// no compaction of unapplied entries, no timer that fires forever).
    CoreContract,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A property that did not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{property} violated: {detail} (seed {seed}, virtual time {time}, node(s) {nodes:?})")]
pub struct Violation {
    /// The property.
    pub property: Property,
    /// The seed of the run.
    pub seed: u64,
    /// Virtual time of the observation that broke it.
    pub time: Time,
    /// The nodes involved.
    pub nodes: Vec<NodeId>,
    /// What was seen.
    pub detail: String,
}

/// A property's own finding, before the checker adds seed and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    /// The nodes involved.
    pub nodes: Vec<NodeId>,
    /// What was seen.
    pub detail: String,
}

fn breach<T>(nodes: Vec<NodeId>, detail: String) -> Result<T, Breach> {
    Err(Breach { nodes, detail })
}

/// FxHash: the registries are keyed by small integers and hashed on every event, where
/// SipHash would cost more than the check itself. Iteration order is never relied on.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// One committed log slot, as first observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommittedEntry {
    /// Term of the entry.
    pub term: Term,
    /// Payload id of the entry.
    pub id: PayloadId,
    /// Term of the node that first reported it committed: the term it was committed in.
    pub commit_term: Term,
}

/// The committed prefix of the cluster's log, built from commit events.
#[derive(Clone, Debug, Default)]
pub struct CommittedLog {
    entries: Vec<CommittedEntry>,
}

impl CommittedLog {
    /// Highest index known committed.
    pub fn last_index(&self) -> Index {
        self.entries.len() as Index
    }

    /// The committed entry at `index`, if known.
    pub fn get(&self, index: Index) -> Option<&CommittedEntry> {
        index
            .checked_sub(1)
            .and_then(|i| self.entries.get(i as usize))
    }
}

/// At most one leader per term: a registry term -> leader, fed by role changes, by the
/// leaders followers recognise, and by polling `role()`.
#[derive(Debug, Default)]
pub struct ElectionSafety {
    leaders: FastMap<Term, NodeId>,
}

impl ElectionSafety {
    /// `node` leads `term`.
    pub fn leader(&mut self, term: Term, node: NodeId) -> Result<(), Breach> {
        match self.leaders.get(&term) {
            Some(&other) if other != node => breach(
                vec![other, node],
                format!("nodes {other} and {node} were both leader in term {term}"),
            ),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term, node);
                Ok(())
            }
        }
    }

    /// `node` believes `leader` leads `term`; that leader must have been elected in it.
    pub fn recognised(&self, term: Term, node: NodeId, leader: NodeId) -> Result<(), Breach> {
        match self.leaders.get(&term) {
            Some(&l) if l == leader => Ok(()),
            Some(&l) => breach(
                vec![node, leader, l],
                format!("node {node} follows {leader} in term {term}, whose leader is {l}"),
            ),
            None => breach(
                vec![node, leader],
                format!(
                    "node {node} follows {leader} in term {term}, but nobody was elected in it"
                ),
            ),
        }
    }
}

/// Log Matching, by induction: a registry (index, term) -> (payload, term of the entry
/// before). Two logs that agree on (i, t) must agree on the payload there and on the term
/// at i - 1, and by the same registry on everything before. Every entry a node stores is
/// checked, so logs rewritten by truncation are covered.
///
/// Truncation is checked too: a node in term `T` may only lose a committed entry if it was
/// committed in a term above `T` (a stale leader overwrites a copy the node never counted
/// for; the real leader repairs it later). The leader of `T` or any later term holds every
/// entry committed up to `T`, so it never sends anything conflicting with one.
#[derive(Debug, Default)]
pub struct LogMatching {
    seen: FastMap<(Index, Term), (PayloadId, Term)>,
}

impl LogMatching {
    /// `node`, in `node_term`, stores `entries` (contiguous), after an entry of `prev_term`,
    /// replacing `replaced` (what it held from `entries[0].index` on).
    pub fn stored(
        &mut self,
        node: NodeId,
        node_term: Term,
        prev_term: Term,
        entries: &[Entry],
        replaced: &[Entry],
        committed: &CommittedLog,
    ) -> Result<(), Breach> {
        let mut prev = prev_term;
        for e in entries {
            let id = payload_id(e);
            match self.seen.get(&(e.index, e.term)) {
                Some(&(other_id, other_prev)) if (other_id, other_prev) != (id, prev) => {
                    return breach(
                        vec![node],
                        format!(
                            "node {node} stores ({}, term {}) holding {id} after term {prev}, \
                             but another log holds it with {other_id} after term {other_prev}",
                            e.index, e.term
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    self.seen.insert((e.index, e.term), (id, prev));
                }
            }
            prev = e.term;
        }
        let first = entries.first().map_or(Index::MAX, |e| e.index);
        for old in replaced {
            let Some(c) = committed.get(old.index) else {
                break; // replaced entries ascend; the rest are above the committed prefix too
            };
            let new_term = old
                .index
                .checked_sub(first)
                .and_then(|k| entries.get(k as usize))
                .map(|e| e.term);
            if c.term == old.term && new_term != Some(old.term) && node_term >= c.commit_term {
                return breach(
                    vec![node],
                    format!(
                        "node {node} in term {node_term} overwrote entry ({}, term {}), committed \
                         in term {}, with term {:?}",
                        old.index, old.term, c.commit_term, new_term
                    ),
                );
            }
        }
        Ok(())
    }
}

/// A new leader holds every entry committed in an earlier term. The entries it discarded
/// into its snapshot are committed and applied, so only the retained suffix is checked.
#[derive(Debug, Default)]
pub struct LeaderCompleteness;

impl LeaderCompleteness {
    /// `node` became leader of `term` with `log`.
    pub fn leader_elected(
        &self,
        node: NodeId,
        term: Term,
        log: &RaftLog,
        committed: &CommittedLog,
    ) -> Result<(), Breach> {
        let from = log.snapshot_index().max(1);
        for index in from..=committed.last_index() {
            let c = committed.get(index).expect("within the committed prefix");
            // An entry first committed in this term or later may legally be missing: a vote
            // from the past can arrive after a later leader committed (stale-term leader).
            if c.commit_term >= term {
                continue;
            }
            let have = log.term(index);
            if have != Some(c.term) {
                return breach(
                    vec![node],
                    format!(
                        "node {node} became leader of term {term} holding term {have:?} at index \
                         {index}, where term {} (payload {}) committed in term {}",
                        c.term, c.id, c.commit_term
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Nodes apply one and the same entry at each index, in index order, and only committed ones.
#[derive(Debug, Default)]
pub struct StateMachineSafety {
    applied: Vec<(Term, PayloadId, NodeId)>,
    last_applied: FastMap<NodeId, Index>,
}

impl StateMachineSafety {
    /// `node` learned that everything up to `to` is committed, reading `entries`
    /// (the newly committed ones, from `from + 1`) from its log while in `term`.
    pub fn committed<'a>(
        &mut self,
        node: NodeId,
        term: Term,
        from: Index,
        to: Index,
        entries: impl Iterator<Item = &'a Entry>,
        committed: &mut CommittedLog,
    ) -> Result<(), Breach> {
        let mut expect = from + 1;
        for e in entries {
            if e.index != expect {
                break;
            }
            expect += 1;
            let id = payload_id(e);
            match committed.get(e.index) {
                Some(c) if (c.term, c.id) != (e.term, id) => {
                    return breach(
                        vec![node],
                        format!(
                            "node {node} committed ({}, term {}) = {id}, but ({}, term {}) = {} was \
                             committed before",
                            e.index, e.term, e.index, c.term, c.id
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    debug_assert_eq!(e.index, committed.last_index() + 1);
                    committed.entries.push(CommittedEntry {
                        term: e.term,
                        id,
                        commit_term: term,
                    });
                }
            }
        }
        if expect <= to {
            return breach(
                vec![node],
                format!("node {node} committed up to {to} but its log lacks index {expect}"),
            );
        }
        Ok(())
    }

    /// `node` applies `e`.
    pub fn applied(
        &mut self,
        node: NodeId,
        e: &Entry,
        committed: &CommittedLog,
    ) -> Result<(), Breach> {
        let last = self.last_applied.entry(node).or_insert(0);
        if e.index != *last + 1 {
            return breach(
                vec![node],
                format!(
                    "node {node} applied index {} right after {}",
                    e.index, *last
                ),
            );
        }
        *last = e.index;
        let id = payload_id(e);
        let slot = (e.index - 1) as usize;
        if let Some(&(term, other_id, other)) = self.applied.get(slot) {
            if (term, other_id) != (e.term, id) {
                return breach(
                    vec![other, node],
                    format!(
                        "index {}: node {other} applied (term {term}, {other_id}), node {node} \
                         applied (term {}, {id})",
                        e.index, e.term
                    ),
                );
            }
        } else {
            debug_assert_eq!(slot, self.applied.len());
            self.applied.push((e.term, id, node));
        }
        match committed.get(e.index) {
            Some(c) if (c.term, c.id) == (e.term, id) => Ok(()),
            other => breach(
                vec![node],
                format!(
                    "node {node} applied ({}, term {}) = {id}, but the committed entry there is {other:?}",
                    e.index, e.term
                ),
            ),
        }
    }

    /// `node` crashed; its state machine was rolled back to its snapshot at `applied_to`.
    pub fn rolled_back(&mut self, node: NodeId, applied_to: Index) {
        self.last_applied.insert(node, applied_to);
    }

    /// At the end, every node has applied the same sequence.
    pub fn converged(&self, nodes: &[(NodeId, &[Applied])]) -> Result<(), Breach> {
        let Some(&(first, reference)) = nodes.first() else {
            return Ok(());
        };
        for &(node, seq) in &nodes[1..] {
            if seq != reference {
                let at = seq
                    .iter()
                    .zip(reference)
                    .position(|(a, b)| a != b)
                    .unwrap_or(seq.len().min(reference.len()));
                return breach(
                    vec![first, node],
                    format!(
                        "final state machines differ at position {at}: node {first} has {} entries, \
                         node {node} {}",
                        reference.len(),
                        seq.len()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Snapshots hold what applying the log holds: a digest of the state machine after each
/// index, built from the nodes that apply the log entry by entry (State Machine Safety
/// makes it one sequence), against which every snapshot taken or restored is compared.
#[derive(Debug, Default)]
pub struct SnapshotFidelity {
    /// digests[i - 1]: the state after applying the log through index i.
    digests: Vec<u64>,
}

fn slot_digest(prev: u64, a: &Applied) -> u64 {
    let mut h = FxHasher(prev);
    h.write_u64(a.index);
    h.write_u64(a.term);
    h.write_u64(a.id);
    h.finish()
}

impl SnapshotFidelity {
    /// Some node applied `e` from its log (after the other checks accepted it).
    pub fn applied(&mut self, e: &Entry) {
        if e.index == self.digests.len() as Index + 1 {
            let prev = self.digests.last().copied().unwrap_or(0);
            self.digests.push(slot_digest(prev, &Applied::of(e)));
        }
    }

    /// `node` holds `state` as its state machine at `index`, from a snapshot (`what` says
    /// which: taken, installed, reloaded).
    pub fn holds(
        &self,
        node: NodeId,
        index: Index,
        state: &[Applied],
        what: &str,
    ) -> Result<(), Breach> {
        if state.len() as Index != index {
            return breach(
                vec![node],
                format!(
                    "node {node}'s {what} snapshot at index {index} holds {} slots",
                    state.len()
                ),
            );
        }
        if index == 0 {
            return Ok(());
        }
        let Some(&want) = self.digests.get(index as usize - 1) else {
            return breach(
                vec![node],
                format!(
                    "node {node}'s {what} snapshot covers index {index}, but the log was applied \
                     only up to {}",
                    self.digests.len()
                ),
            );
        };
        let mut d = 0;
        for (k, a) in state.iter().enumerate() {
            d = slot_digest(d, a);
            if self.digests[k] != d {
                return breach(
                    vec![node],
                    format!(
                        "node {node}'s {what} snapshot at index {index} differs from the applied \
                         log at index {} (holds term {}, payload {})",
                        k + 1,
                        a.term,
                        a.id
                    ),
                );
            }
        }
        debug_assert_eq!(d, want);
        Ok(())
    }
}

/// A proposal acknowledged to its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The proposal's payload id.
    pub id: PayloadId,
    /// Index the accepting node returned.
    pub index: Index,
    /// Term the accepting node returned.
    pub term: Term,
    /// The node that accepted and applied it.
    pub node: NodeId,
}

/// Every acknowledged proposal sits exactly once, at its index, in every node's state
/// machine; and no payload appears twice in any state machine.
#[derive(Debug, Default)]
pub struct AcknowledgedDurability {
    acked: Vec<Ack>,
}

impl AcknowledgedDurability {
    /// A client was told that its proposal committed.
    pub fn acknowledged(&mut self, ack: Ack) {
        self.acked.push(ack);
    }

    /// Proposals acknowledged so far.
    pub fn count(&self) -> usize {
        self.acked.len()
    }

    /// Checks the final state machines (after every node applied the whole committed log).
    pub fn check_final(&self, nodes: &[(NodeId, &[Applied])]) -> Result<(), Breach> {
        for &(node, seq) in nodes {
            let mut seen: FastMap<PayloadId, Index> = FastMap::default();
            for a in seq {
                if a.id == NOOP_ID {
                    continue;
                }
                if let Some(earlier) = seen.insert(a.id, a.index) {
                    return breach(
                        vec![node],
                        format!(
                            "node {node} applied payload {} twice, at {earlier} and {}",
                            a.id, a.index
                        ),
                    );
                }
            }
            for ack in &self.acked {
                let slot = seq.get((ack.index - 1) as usize);
                let ok = slot
                    .is_some_and(|a| a.index == ack.index && a.term == ack.term && a.id == ack.id);
                if !ok {
                    return breach(
                        vec![node, ack.node],
                        format!(
                            "payload {} acknowledged at ({}, term {}) by node {} is not there on node \
                             {node} (it holds {slot:?})",
                            ack.id, ack.index, ack.term, ack.node
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// All the checks, fed by the simulator after every step.
#[derive(Debug)]
pub struct Checker {
    seed: u64,
    committed: CommittedLog,
    /// At most one leader per term.
    pub election_safety: ElectionSafety,
    /// Logs that agree on (index, term) agree before it.
    pub log_matching: LogMatching,
    /// Leaders hold what was committed before their term.
    pub leader_completeness: LeaderCompleteness,
    /// Nodes apply the same entries.
    pub state_machine_safety: StateMachineSafety,
    /// Acknowledged proposals survive.
    pub acknowledged_durability: AcknowledgedDurability,
    /// Snapshots hold what applying the log holds.
    pub snapshot_fidelity: SnapshotFidelity,
}

impl Checker {
    /// A checker for the run with `seed` (the seed is only reported).
    pub fn new(seed: u64) -> Checker {
        Checker {
            seed,
            committed: CommittedLog::default(),
            election_safety: ElectionSafety::default(),
            log_matching: LogMatching::default(),
            leader_completeness: LeaderCompleteness,
            state_machine_safety: StateMachineSafety::default(),
            acknowledged_durability: AcknowledgedDurability::default(),
            snapshot_fidelity: SnapshotFidelity::default(),
        }
    }

    /// The committed prefix observed so far.
    pub fn committed(&self) -> &CommittedLog {
        &self.committed
    }

    /// A violation of `property` at `time`, with this run's seed.
    pub fn violation(
        &self,
        property: Property,
        time: Time,
        nodes: Vec<NodeId>,
        detail: String,
    ) -> Violation {
        Violation {
            property,
            seed: self.seed,
            time,
            nodes,
            detail,
        }
    }

    fn wrap(&self, property: Property, time: Time, r: Result<(), Breach>) -> Result<(), Violation> {
        r.map_err(|b| self.violation(property, time, b.nodes, b.detail))
    }

    /// `node` took `role` in `term`; `log` is its log right then.
    pub fn role_changed(
        &mut self,
        time: Time,
        node: NodeId,
        term: Term,
        role: Role,
        log: &RaftLog,
    ) -> Result<(), Violation> {
        if role != Role::Leader {
            return Ok(());
        }
        let r = self.election_safety.leader(term, node);
        self.wrap(Property::ElectionSafety, time, r)?;
        let r = self
            .leader_completeness
            .leader_elected(node, term, log, &self.committed);
        self.wrap(Property::LeaderCompleteness, time, r)
    }

    /// `node` reports (through `role()`) that it plays `role` in `term`.
    pub fn role_observed(
        &mut self,
        time: Time,
        node: NodeId,
        term: Term,
        role: Role,
    ) -> Result<(), Violation> {
        if role != Role::Leader {
            return Ok(());
        }
        let r = self.election_safety.leader(term, node);
        self.wrap(Property::ElectionSafety, time, r)
    }

    /// `node` learned that `leader` leads `term`.
    pub fn leader_changed(
        &mut self,
        time: Time,
        node: NodeId,
        term: Term,
        leader: Option<NodeId>,
    ) -> Result<(), Violation> {
        let Some(leader) = leader else {
            return Ok(());
        };
        let r = self.election_safety.recognised(term, node, leader);
        self.wrap(Property::ElectionSafety, time, r)
    }

    /// `node`, in `node_term`, persists `entries` after an entry of `prev_term`, replacing
    /// `replaced`.
    pub fn stored(
        &mut self,
        time: Time,
        node: NodeId,
        node_term: Term,
        prev_term: Term,
        entries: &[Entry],
        replaced: &[Entry],
    ) -> Result<(), Violation> {
        let r = self.log_matching.stored(
            node,
            node_term,
            prev_term,
            entries,
            replaced,
            &self.committed,
        );
        self.wrap(Property::LogMatching, time, r)
    }

    /// `node`, in `term`, moved its commit index from `from` to `to`; `entries` are its log
    /// entries from `from + 1` on.
    pub fn commit_advanced<'a>(
        &mut self,
        time: Time,
        node: NodeId,
        term: Term,
        from: Index,
        to: Index,
        entries: impl Iterator<Item = &'a Entry>,
    ) -> Result<(), Violation> {
        let r =
            self.state_machine_safety
                .committed(node, term, from, to, entries, &mut self.committed);
        self.wrap(Property::StateMachineSafety, time, r)
    }

    /// `node` applies `e` to its state machine.
    pub fn applied(&mut self, time: Time, node: NodeId, e: &Entry) -> Result<(), Violation> {
        let r = self.state_machine_safety.applied(node, e, &self.committed);
        self.wrap(Property::StateMachineSafety, time, r)?;
        self.snapshot_fidelity.applied(e);
        Ok(())
    }

    /// `node` took a snapshot at `index` whose data decodes to `state`.
    pub fn snapshot_taken(
        &mut self,
        time: Time,
        node: NodeId,
        index: Index,
        state: &[Applied],
    ) -> Result<(), Violation> {
        let r = self.snapshot_fidelity.holds(node, index, state, "taken");
        self.wrap(Property::SnapshotFidelity, time, r)
    }

    /// `node` replaced its state machine with `state`, restored from a snapshot at `index`
    /// (`what`: installed from a leader, or reloaded after a crash); it applies from
    /// `index + 1` on.
    pub fn restored(
        &mut self,
        time: Time,
        node: NodeId,
        index: Index,
        state: &[Applied],
        what: &str,
    ) -> Result<(), Violation> {
        let r = self.snapshot_fidelity.holds(node, index, state, what);
        self.wrap(Property::SnapshotFidelity, time, r)?;
        self.state_machine_safety.rolled_back(node, index);
        Ok(())
    }

    /// `node` crashed and its state machine rolled back to its snapshot at `applied_to`.
    pub fn rolled_back(&mut self, node: NodeId, applied_to: Index) {
        self.state_machine_safety.rolled_back(node, applied_to);
    }

    /// A proposal was acknowledged to its client.
    pub fn acknowledged(&mut self, ack: Ack) {
        self.acknowledged_durability.acknowledged(ack);
    }

    /// The end-of-run checks over every node's final state machine.
    pub fn finish(&self, time: Time, nodes: &[(NodeId, &[Applied])]) -> Result<(), Violation> {
        let r = self.state_machine_safety.converged(nodes);
        self.wrap(Property::StateMachineSafety, time, r)?;
        let r = self.acknowledged_durability.check_final(nodes);
        self.wrap(Property::AcknowledgedDurability, time, r)
    }
}
