//! What a simulated run looks like: cluster size, network, faults, load and core knobs,
//! all decided by one seed.

use std::path::PathBuf;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::raft::{CommitMode, Config, Membership, ReplicationTrigger};

/// Healthy mixed-fault runs process at most some 60 000 events.
const DEFAULT_EVENT_BUDGET: u64 = 5_000_000;

/// The network between every pair of nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay; each message draws uniformly from [min, max], so messages reorder.
    pub max_delay: Duration,
    /// Probability that a message is lost (fault phase only).
    pub loss: f64,
    /// Probability that a message arrives twice (fault phase only).
    pub duplicate: f64,
    /// Probability that a message is held back and delivered between one election timeout
    /// and three of the longest ones after it was sent (fault phase only): a stale message
    /// from a term long over, not just a lost one.
    pub hold: f64,
}

/// Partitions and crashes during the fault phase.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Mean time between fault events (partition, heal, crash, restart); zero: no faults.
    pub mean_interval: Duration,
    /// Most nodes down at once.
    pub max_down: usize,
    /// Probability that a crash lands inside a Ready: after its messages left, before its writes.
    pub torn_crash: f64,
    /// Longest a crashed node stays down before it restarts on its own.
    pub max_downtime: Duration,
    /// Probability that a leader crashes the moment its commit index advances, before the
    /// Ready that follows leaves: the window in which Figure 8 of the paper loses entries
    /// committed by counting replicas of an earlier term.
    pub crash_on_commit: f64,
    /// Probability that a node is cut off from everyone the moment it wins an election, before
    /// its first AppendEntries leaves: it keeps a no-op nobody else has (an orphan entry).
    pub isolate_on_election: f64,
    /// Probability that a store write (entries or hard state) fails; an append may leave
    /// a prefix of its entries behind. The node then stops as a driver must (it may not
    /// acknowledge what it could not persist) and restarts from what its store holds.
    pub store_failure: f64,
    /// Largest relative deviation of a node's clock rate from true time (0.05: each node's
    /// clock runs between 5% slow and 5% fast, fixed per node); clocks also start at
    /// unrelated offsets. Unlike the other faults it does not heal.
    pub clock_drift: f64,
}

impl FaultConfig {
    /// No faults at all.
    pub fn none() -> FaultConfig {
        FaultConfig {
            mean_interval: Duration::ZERO,
            max_down: 0,
            torn_crash: 0.0,
            max_downtime: Duration::ZERO,
            crash_on_commit: 0.0,
            isolate_on_election: 0.0,
            store_failure: 0.0,
            clock_drift: 0.0,
        }
    }
}

/// Where the simulated nodes persist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// A [`MemStore`](crate::raft::MemStore) per node that survives its crashes.
    #[default]
    Mem,
    /// A [`FileStore`](crate::storage::FileStore) per node in `dir/node-N` (the directory
    /// must be fresh), synced never: a simulated crash drops the store and reopens the
    /// directory, which is what a killed process leaves in the page cache.
    File {
        /// Parent of the per-node directories.
        dir: PathBuf,
    },
}

/// How simulated clients offer proposals (the harness's counterpart for real clusters is
/// [`crate::harness::scenario::Workload`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Proposals {
    /// Bursts of 1..=`max_burst` proposals at Poisson times, `rate` bursts per virtual second,
    /// from a client population that waits on at most `max_outstanding` proposals: arrivals
    /// beyond that are shed, so an overloaded configuration cannot build an unbounded backlog.
    Open {
        /// Bursts per virtual second.
        rate: f64,
        /// Most proposals in one burst.
        max_burst: usize,
        /// Most accepted proposals awaiting their outcome at once.
        max_outstanding: usize,
    },
    /// No proposals except the liveness probe (the commit rig drives its own closed loop).
    Idle,
}

/// One simulated run. [`SimConfig::random`] derives everything from the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Cluster size; node ids are 1..=nodes.
    pub nodes: usize,
    /// The seed every random choice of the run derives from.
    pub seed: u64,
    /// Core knobs for every node; `id` and `voters` are filled in per node.
    pub raft: Config,
    /// The network.
    pub net: NetConfig,
    /// The faults.
    pub faults: FaultConfig,
    /// How the simulated clients propose.
    pub proposals: Proposals,
    /// Where nodes persist.
    pub store: StoreKind,
    /// Virtual time before the load starts (faults may start at once).
    pub warmup: Duration,
    /// Length of the fault phase, during which the load runs; then every fault heals.
    pub duration: Duration,
    /// Whether to run the invariant checkers (off only for benchmarks).
    pub checks: bool,
    /// Most events one run may process: far above what a healthy run needs, so a message
    /// storm or livelock fails as a violation instead of eating the machine's memory.
    pub event_budget: u64,
}

impl SimConfig {
    /// A calm run: no loss, duplication, partition or crash; small random delays; sparse load.
    pub fn calm(nodes: usize, seed: u64) -> SimConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(super::derive_seed(seed, super::STREAM_CONFIG, 0));
        let min_us = rng.random_range(200..=1_000u64);
        let max_us = min_us + rng.random_range(0..=2_000u64);
        let raft = Config {
            heartbeat_interval: Duration::from_millis(30),
            election_timeout: Duration::from_millis(300),
            ..Config::default()
        };
        SimConfig {
            nodes,
            seed,
            raft,
            net: NetConfig {
                min_delay: Duration::from_micros(min_us),
                max_delay: Duration::from_micros(max_us),
                loss: 0.0,
                duplicate: 0.0,
                hold: 0.0,
            },
            faults: FaultConfig::none(),
            proposals: Proposals::Open {
                rate: 100.0,
                max_burst: 1,
                max_outstanding: 1_000,
            },
            store: StoreKind::Mem,
            warmup: Duration::from_millis(1_500),
            duration: Duration::from_secs(2),
            checks: true,
            event_budget: DEFAULT_EVENT_BUDGET,
        }
    }

    /// A run with mixed faults: every knob, rate and fault mix drawn from `seed`.
    pub fn random(seed: u64) -> SimConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(super::derive_seed(seed, super::STREAM_CONFIG, 1));
        let r = &mut rng;
        let nodes = if r.random_bool(0.5) { 3 } else { 5 };
        let et_ms = r.random_range(100..=300u64);
        let election_timeout = Duration::from_millis(et_ms);
        let heartbeat_interval = Duration::from_millis(et_ms / r.random_range(3..=10u64));

        // Delays stay well below the election timeout, or no leader could ever hold on.
        let min_us = r.random_range(0..=2_000u64);
        let max_us = min_us + r.random_range(0..=et_ms * 1_000 / 5);

        let mut raft = Config {
            heartbeat_interval,
            election_timeout,
            ..Config::default()
        };
        raft.max_batch_entries = pick(r, &[1, 2, 8, 64, 1024]);
        // 40 bytes fits one 8-byte proposal per message, 128 four of them.
        raft.max_batch_bytes = pick(r, &[40, 128, 1 << 20]);
        raft.max_inflight_msgs = pick(r, &[1, 2, 4, 16]);
        raft.max_inflight_bytes = pick(r, &[64, 1024, 16 << 20]);
        raft.linger = Duration::from_micros(pick(r, &[0, 0, 0, 1_000, 5_000]));
        raft.commit_mode = if r.random_bool(0.5) {
            CommitMode::Piggyback
        } else {
            CommitMode::Eager
        };
        raft.trigger = if r.random_bool(0.75) {
            ReplicationTrigger::Immediate
        } else {
            ReplicationTrigger::OnTick
        };
        raft.append_resets_heartbeat = r.random_bool(0.5);
        raft.check_quorum = r.random_bool(0.8);
        raft.pre_vote = r.random_bool(0.5);
        raft.compact_threshold = pick(r, &[0, 5, 50, 50, 8192]);

        let mut net = NetConfig {
            min_delay: Duration::from_micros(min_us),
            max_delay: Duration::from_micros(max_us),
            loss: pick(r, &[0.0, 0.01, 0.05, 0.1, 0.2]),
            duplicate: pick(r, &[0.0, 0.01, 0.05, 0.1]),
            hold: 0.0,
        };
        let mut faults = FaultConfig {
            mean_interval: Duration::from_millis(r.random_range(50..=600u64)),
            max_down: r.random_range(1..=nodes),
            torn_crash: pick(r, &[0.0, 0.3, 0.6]),
            max_downtime: Duration::from_millis(r.random_range(50..=1_000u64)),
            crash_on_commit: pick(r, &[0.0, 0.05, 0.2, 0.2]),
            isolate_on_election: pick(r, &[0.0, 0.1, 0.3, 0.3]),
            store_failure: 0.0,
            clock_drift: 0.0,
        };
        let rate = r.random_range(20.0..400.0);
        let max_burst = r.random_range(1..=8usize);
        let max_outstanding = pick(r, &[4, 16, 64]);
        let duration = Duration::from_millis(r.random_range(2_000..=8_000u64));
        // Drawn last, so that adding them kept every earlier choice of a seed as it was.
        net.hold = pick(r, &[0.0, 0.0, 0.001, 0.01, 0.05]);
        faults.store_failure = pick(r, &[0.0, 0.0, 0.001, 0.01]);
        faults.clock_drift = pick(r, &[0.0, 0.0, 0.001, 0.05, 0.2]);
        // Half the runs snapshot (small thresholds, so that crashed and cut-off nodes catch
        // up by InstallSnapshot), in chunks small enough that most transfers take several.
        raft.snapshot_entries = pick(r, &[0, 0, 10, 50, 200]);
        raft.snapshot_chunk_bytes = pick(r, &[4096, 65536, 1 << 20]);

        // A node cut off for the whole fault phase must fetch the whole log once it heals,
        // entry by entry when the run takes no snapshots, within the liveness bound. Size
        // the load so the log stays within what this configuration replicates in half the
        // bound; otherwise a starved configuration would fail liveness on throughput alone.
        let budget = replication_capacity(&raft, &net) * (election_timeout * 2 * 5).as_secs_f64();
        let expected = rate * (1 + max_burst) as f64 / 2.0 * duration.as_secs_f64();
        let rate = if expected > budget {
            rate * budget / expected
        } else {
            rate
        };
        let max_outstanding = max_outstanding.min((budget / 4.0) as usize).max(4);
        let proposals = Proposals::Open {
            rate,
            max_burst,
            max_outstanding,
        };
        SimConfig {
            nodes,
            seed,
            raft,
            net,
            faults,
            proposals,
            store: StoreKind::Mem,
            warmup: Duration::ZERO,
            duration,
            checks: true,
            event_budget: DEFAULT_EVENT_BUDGET,
        }
    }

    /// The core configuration of node `id`.
    pub fn membership(&self, id: u64) -> Membership {
        Membership::new(id, (1..=self.nodes as u64).collect())
    }

    /// How long a client waits for the outcome of an accepted proposal before giving up on it
    /// (without retrying: if it commits later, it is simply never acknowledged).
    pub fn client_timeout(&self) -> Duration {
        self.max_election_timeout() * 4
    }

    /// The longest election timeout a node can draw.
    pub fn max_election_timeout(&self) -> Duration {
        self.raft.election_timeout * 2
    }

    /// How long after the faults heal a leader must have committed a fresh proposal on every
    /// node (and, again, how long the final quiet phase may take to converge).
    pub fn liveness_bound(&self) -> Duration {
        self.max_election_timeout() * 10
    }
}

/// Rough entries per second a leader ships to one follower: a batch per message, two
/// messages per round (reordering keeps deeper pipelines from paying off), a round being a
/// round trip, or a heartbeat interval when entries only leave on the tick.
fn replication_capacity(raft: &Config, net: &NetConfig) -> f64 {
    let entry = (crate::raft::ENTRY_OVERHEAD + 8) as f64;
    let per_msg =
        (raft.max_batch_entries as f64).min((raft.max_batch_bytes as f64 / entry).floor().max(1.0));
    let window = (raft.max_inflight_msgs as f64)
        .min(
            (raft.max_inflight_bytes as f64 / (entry * per_msg))
                .ceil()
                .max(1.0),
        )
        .min(2.0);
    let rtt = (net.min_delay + net.max_delay).as_secs_f64() + 0.001;
    let round = match raft.trigger {
        ReplicationTrigger::Immediate => rtt,
        ReplicationTrigger::OnTick => rtt.max(raft.heartbeat_interval.as_secs_f64()),
    };
    per_msg * window / round
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, choices: &[T]) -> T {
    choices[rng.random_range(0..choices.len())]
}
