//! Deterministic simulation of a Raft cluster: the proof that the core is safe.
//!
//! A [`Simulation`] runs 3 or 5 [`RaftNode`](crate::raft::RaftNode)s on one virtual clock
//! over a network that delays, reorders, loses, duplicates, partitions and now and then holds
//! messages for longer than an election timeout, while nodes crash (losing everything but
//! their store: a [`MemStore`](crate::raft::MemStore), or a
//! [`FileStore`](crate::storage::FileStore) reopened from its directory), see store writes
//! fail (and stop, as a driver must), and restart. Each node's clock may run up to a drawn
//! fraction fast or slow. One `u64` seed decides everything, so a failure replays exactly:
//!
//! ```text
//! RAFTBENCH_SIM_SEED=1234 cargo test --test simulation replay -- --nocapture
//! ```
//!
//! Half the mixed-fault runs take state-machine snapshots every few entries (the simulated
//! state machine is the sequence of applied entries; its snapshot, their encoding), so that
//! crashed and cut-off nodes catch up by InstallSnapshot in chunks and restart from their
//! stored snapshot.
//!
//! After every event the [`checker`] verifies Raft's safety properties incrementally
//! (Election Safety, Log Matching, Leader Completeness, State Machine Safety, and Snapshot
//! Fidelity: every snapshot taken, installed or reloaded holds what applying the log up to
//! its index holds); at the end
//! it verifies that every acknowledged proposal is on every node exactly once. Each run ends
//! with a liveness check: once the faults heal, a fresh proposal must commit on every node
//! within ten maximum election timeouts.
//!
//! ```
//! use raftbench::sim::{self, SimConfig};
//!
//! let report = sim::run(SimConfig::calm(3, 7)).unwrap();
//! assert!(report.acknowledged > 0);
//! ```

pub mod checker;
mod cluster;
pub mod config;

use std::time::Duration;

pub use checker::{Applied, Checker, Property, Violation};
pub use cluster::{SimReport, Simulation};
pub use config::{FaultConfig, NetConfig, Proposals, SimConfig, StoreKind};

use crate::raft::{ConfigError, NodeId, ReplicationTrigger};

const STREAM_CONFIG: u64 = 1;
const STREAM_NODE: u64 = 2;
const STREAM_NET: u64 = 3;
const STREAM_FAULT: u64 = 4;
const STREAM_CLIENT: u64 = 5;
const STREAM_CLOCK: u64 = 6;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d4_9bb1_1331_11eb);
    x ^ (x >> 31)
}

/// An independent seed for one purpose (`stream`, `n`) of the run with `seed`, so that adding
/// a draw to one generator does not shift every other choice of the run.
pub fn derive_seed(seed: u64, stream: u64, n: u64) -> u64 {
    splitmix64(seed ^ splitmix64(stream.wrapping_mul(0x1000_0000_01b3) ^ splitmix64(n)))
}

/// Why a simulated run failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A property did not hold.
    #[error(transparent)]
    Violation(#[from] Violation),
    /// A node's file store could not be opened or recovered.
    #[error("the store in {} could not be opened: {source}", dir.display())]
    Store {
        /// The store's directory.
        dir: std::path::PathBuf,
        /// What the store said.
        source: crate::raft::StoreError,
    },
}

/// Plays the scenario of `cfg` to its end.
pub fn run(cfg: SimConfig) -> Result<SimReport, SimError> {
    Simulation::new(cfg)?.run()
}

/// Plays the mixed-fault scenario of `seed` ([`SimConfig::random`]).
pub fn run_seed(seed: u64) -> Result<SimReport, SimError> {
    run(SimConfig::random(seed))
}

/// The command that replays the mixed-fault run of `seed`.
pub fn replay_command(seed: u64) -> String {
    format!("RAFTBENCH_SIM_SEED={seed} cargo test --test simulation replay -- --nocapture")
}

/// What [`demo`] measured, all in virtual time.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoReport {
    /// Proposals acknowledged per virtual second of load.
    pub commits_per_sec_virtual: f64,
    /// Median time from proposal to the leader applying it.
    pub commit_latency_p50: Duration,
    /// 99th percentile of the same.
    pub commit_latency_p99: Duration,
    /// Messages of any kind sent per acknowledged proposal.
    pub messages_per_commit: f64,
    /// AppendEntries of any kind sent per acknowledged proposal.
    pub appends_per_commit: f64,
    /// Proposals acknowledged.
    pub commits: u64,
}

/// A calm 3-node cluster under `rate` proposals per virtual second for `seconds_virtual`
/// (after a warm-up that elects a leader), with the default core configuration.
pub fn demo(seconds_virtual: f64, rate: f64, seed: u64) -> Result<DemoReport, SimError> {
    let mut cfg = SimConfig::calm(3, seed);
    cfg.raft = crate::raft::Config::default();
    cfg.warmup = cfg.max_election_timeout() * 3;
    cfg.event_budget = u64::MAX;
    cfg.duration = Duration::from_secs_f64(seconds_virtual.max(0.001));
    cfg.proposals = Proposals::Open {
        rate: rate.max(1e-6),
        max_burst: 1,
        max_outstanding: usize::MAX,
    };
    let load_start = crate::raft::Time::ZERO + cfg.warmup;
    let mut sim = Simulation::new(cfg)?;
    sim.latency_from = load_start;
    // Count the cost of the load only, not of the election before it.
    while sim.now() < load_start {
        sim.step()?;
    }
    let before = sim.report();
    sim.run_to_end()?;
    let after = sim.report();
    let commits = after.acknowledged - before.acknowledged;
    let per = |x: u64| x as f64 / commits.max(1) as f64;
    let nanos = |q: f64| Duration::from_nanos(sim.latency.value_at_quantile(q));
    Ok(DemoReport {
        commits_per_sec_virtual: commits as f64 / seconds_virtual.max(0.001),
        commit_latency_p50: nanos(0.5),
        commit_latency_p99: nanos(0.99),
        messages_per_commit: per(after.messages_sent - before.messages_sent),
        appends_per_commit: per(after.stats.append_messages() - before.stats.append_messages()),
        commits,
    })
}

/// A calm 3-node cluster with a constant 1 us delay, no checks and a closed-loop client:
/// what `benches/core.rs` pushes proposals through to measure the core alone.
pub struct CommitRig {
    sim: Simulation,
    leader: NodeId,
}

impl CommitRig {
    /// A cluster with the given batch and window limits, run until a leader is elected.
    pub fn new(max_batch_entries: usize, max_inflight_msgs: usize) -> Result<CommitRig, SimError> {
        let mut cfg = SimConfig::calm(3, 1);
        cfg.raft.max_batch_entries = max_batch_entries;
        cfg.raft.max_inflight_msgs = max_inflight_msgs;
        cfg.raft.trigger = ReplicationTrigger::Immediate;
        cfg.net.min_delay = Duration::from_micros(1);
        cfg.net.max_delay = Duration::from_micros(1);
        cfg.proposals = Proposals::Idle;
        cfg.checks = false;
        cfg.event_budget = u64::MAX;
        // Never heal or probe: the rig drives the cluster by hand.
        cfg.duration = Duration::from_secs(1 << 30);
        let mut sim = Simulation::new(cfg)?;
        let leader = loop {
            sim.step()?;
            if let Some(l) = sim.leader() {
                let r = sim.node(l).expect("leader is up");
                if r.commit_index() >= r.log().last_index() {
                    break l;
                }
            }
        };
        Ok(CommitRig { sim, leader })
    }

    /// Proposes `total` entries to the leader, `outstanding` at a time, and returns once the
    /// leader applied them all; the result is the number acknowledged.
    pub fn commit(&mut self, total: u64, outstanding: usize) -> Result<u64, SimError> {
        let acked_before = self.sim.report().acknowledged;
        self.sim
            .start_closed_loop(self.leader, total, outstanding)?;
        while self
            .sim
            .closed
            .as_ref()
            .is_some_and(|c| c.acked + c.failed < c.total)
        {
            self.sim.step()?;
        }
        Ok(self.sim.report().acknowledged - acked_before)
    }
}
