//! The core under deterministic simulation: thousands of seeded runs with mixed faults,
//! calm runs that compare commit modes, and proof that every checker can fail.
//!
//! - `RAFTBENCH_SIM_SEEDS=<n>`: how many mixed-fault seeds to run (default 10 000), split
//!   across the `mixed_faults_*` tests; `RAFTBENCH_SIM_SEED_START=<s>` shifts the range.
//!   With fewer seeds than shards, a shard runs a seed of the range again rather than none.
//! - `RAFTBENCH_SIM_SEED=<n>`: replay exactly one seed with the `replay` test:
//!   `RAFTBENCH_SIM_SEED=1234 cargo test --test simulation replay -- --nocapture`
//!   (every shard then runs that seed too); `RAFTBENCH_SIM_TRACE=1` prints every event.
//! - `RAFTBENCH_SIM_KEEP_GOING=1`: run every seed of a shard even after a failure.
//!
//! Every run must acknowledge writes, elect a leader and recover after the heal; every shard
//! of at least [`FULL_SHARD`] seeds must also have injected every kind of fault and run
//! every value of every randomized knob (each shard prints how often each ran).

mod support;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use raftbench::raft::{CommitMode, Message, MessageBody, RaftLog, Role, Time};
use raftbench::sim::checker::{Ack, Applied};
use raftbench::sim::{
    self, Checker, Property, Proposals, SimConfig, SimError, SimReport, StoreKind,
};
use support::{entry_with_id as entry, env_u64};

const DEFAULT_SEEDS: u64 = 10_000;
const SHARDS: u64 = 8;
/// One group of `SHARDS` consecutive seeds in this many (so every shard gets some) persists
/// to `raftbench::storage::FileStore`s in a temporary directory instead of memory.
const FILE_STORE_EVERY: u64 = 20;
/// A shard with at least this many seeds must show every fault kind and knob value.
const FULL_SHARD: u64 = 400;

/// Whether mixed-fault `seed` persists to files.
fn uses_file_store(seed: u64) -> bool {
    (seed / SHARDS).is_multiple_of(FILE_STORE_EVERY)
}

/// The mixed-fault configuration of `seed`, with the temporary directory its file stores
/// live in (removed when dropped).
fn seed_config(seed: u64) -> (SimConfig, Option<tempfile::TempDir>) {
    let mut cfg = SimConfig::random(seed);
    if !uses_file_store(seed) {
        return (cfg, None);
    }
    let dir = tempfile::tempdir().expect("a temporary directory for the file stores");
    cfg.store = StoreKind::File {
        dir: dir.path().to_path_buf(),
    };
    (cfg, Some(dir))
}

/// Runs one seed, turning a panic inside the core (a debug assertion) into an error too.
fn run_one(seed: u64) -> Result<SimReport, String> {
    let (cfg, _dir) = seed_config(seed);
    match catch_unwind(AssertUnwindSafe(|| sim::run(cfg))) {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            Err(format!("the core panicked: {msg} (seed {seed})"))
        }
    }
}

/// What every mixed-fault run must show, whatever its seed: writes acknowledged, a leader
/// elected, and a fresh proposal applied everywhere after the heal.
fn check_run(r: &SimReport) -> Result<(), String> {
    if r.acknowledged == 0 {
        return Err(format!("no write was acknowledged: {r:?}"));
    }
    if r.elections_won == 0 {
        return Err(format!("no leader was elected: {r:?}"));
    }
    if r.recovery.is_none() {
        return Err(format!("no recovery after the heal was recorded: {r:?}"));
    }
    Ok(())
}

/// The seeds shard `index` runs: its share of the range, or one seed of the range when the
/// range is too short to give every shard one; `RAFTBENCH_SIM_SEED` alone when set.
fn shard_seeds(index: u64) -> Vec<u64> {
    if let Some(seed) = env_u64("RAFTBENCH_SIM_SEED") {
        return vec![seed];
    }
    let total = env_u64("RAFTBENCH_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    assert!(total > 0, "RAFTBENCH_SIM_SEEDS must be at least 1");
    let start = env_u64("RAFTBENCH_SIM_SEED_START").unwrap_or(0);
    split(index, start, total)
}

/// Shard `index`'s seeds of `start..start + total` (`total` > 0): never none.
fn split(index: u64, start: u64, total: u64) -> Vec<u64> {
    let mine: Vec<u64> = (start..start + total)
        .filter(|s| s % SHARDS == index)
        .collect();
    if mine.is_empty() {
        vec![start + index % total]
    } else {
        mine
    }
}

/// The randomized knobs of a mixed-fault configuration, each with every value it can take.
fn knob_values(cfg: &SimConfig, seed: u64) -> Vec<(&'static str, String)> {
    let r = &cfg.raft;
    let f = &cfg.faults;
    let n = &cfg.net;
    let max_outstanding = match cfg.proposals {
        Proposals::Open {
            max_outstanding, ..
        } => max_outstanding,
        Proposals::Idle => 0,
    };
    vec![
        ("nodes", cfg.nodes.to_string()),
        ("commit mode", format!("{:?}", r.commit_mode)),
        ("trigger", format!("{:?}", r.trigger)),
        ("pre-vote", r.pre_vote.to_string()),
        ("check quorum", r.check_quorum.to_string()),
        (
            "append resets heartbeat",
            r.append_resets_heartbeat.to_string(),
        ),
        ("window (msgs)", r.max_inflight_msgs.to_string()),
        ("window (bytes)", r.max_inflight_bytes.to_string()),
        ("batch (entries)", r.max_batch_entries.to_string()),
        ("batch (bytes)", r.max_batch_bytes.to_string()),
        ("linger (us)", r.linger.as_micros().to_string()),
        ("compaction threshold", r.compact_threshold.to_string()),
        ("snapshot every", r.snapshot_entries.to_string()),
        ("snapshot chunk", r.snapshot_chunk_bytes.to_string()),
        ("loss", n.loss.to_string()),
        ("duplicate", n.duplicate.to_string()),
        ("long hold", n.hold.to_string()),
        ("torn crash", f.torn_crash.to_string()),
        ("crash on commit", f.crash_on_commit.to_string()),
        ("isolate on election", f.isolate_on_election.to_string()),
        ("store failure", f.store_failure.to_string()),
        ("clock drift", f.clock_drift.to_string()),
        ("client window", (max_outstanding > 4).to_string()),
        (
            "store",
            if uses_file_store(seed) { "file" } else { "mem" }.to_string(),
        ),
    ]
}

/// Every value each knob of [`knob_values`] can take (`SimConfig::random`'s choices).
const KNOBS: &[(&str, &[&str])] = &[
    ("nodes", &["3", "5"]),
    ("commit mode", &["Piggyback", "Eager"]),
    ("trigger", &["Immediate", "OnTick"]),
    ("pre-vote", &["true", "false"]),
    ("check quorum", &["true", "false"]),
    ("append resets heartbeat", &["true", "false"]),
    ("window (msgs)", &["1", "2", "4", "16"]),
    ("window (bytes)", &["64", "1024", "16777216"]),
    ("batch (entries)", &["1", "2", "8", "64", "1024"]),
    ("batch (bytes)", &["40", "128", "1048576"]),
    ("linger (us)", &["0", "1000", "5000"]),
    ("compaction threshold", &["0", "5", "50", "8192"]),
    ("snapshot every", &["0", "10", "50", "200"]),
    ("snapshot chunk", &["4096", "65536", "1048576"]),
    ("loss", &["0", "0.01", "0.05", "0.1", "0.2"]),
    ("duplicate", &["0", "0.01", "0.05", "0.1"]),
    ("long hold", &["0", "0.001", "0.01", "0.05"]),
    ("torn crash", &["0", "0.3", "0.6"]),
    ("crash on commit", &["0", "0.05", "0.2"]),
    ("isolate on election", &["0", "0.1", "0.3"]),
    ("store failure", &["0", "0.001", "0.01"]),
    ("clock drift", &["0", "0.001", "0.05", "0.2"]),
    ("client window", &["true", "false"]),
    ("store", &["mem", "file"]),
];

/// What a shard saw, summed over its seeds.
#[derive(Default)]
struct Tally {
    runs: u64,
    acked: u64,
    elections: u64,
    crashes: u64,
    torn_crashes: u64,
    store_failures: u64,
    restarts: u64,
    partitions: u64,
    dropped: u64,
    duplicated: u64,
    held: u64,
    /// Crashes of nodes persisting to files: each one reopens and recovers a directory.
    file_store_crashes: u64,
    /// Snapshots followers installed from a leader (InstallSnapshot).
    snapshots_installed: u64,
    /// InstallSnapshot chunks sent.
    snapshot_chunks: u64,
    max_events: u64,
    max_queue: usize,
    knobs: BTreeMap<(&'static str, String), u64>,
}

impl Tally {
    fn add(&mut self, seed: u64, r: &SimReport) {
        self.runs += 1;
        self.acked += r.acknowledged;
        self.elections += r.elections_won;
        self.crashes += r.crashes;
        self.torn_crashes += r.torn_crashes;
        self.store_failures += r.store_failures;
        self.restarts += r.restarts;
        self.partitions += r.partitions;
        self.dropped += r.messages_dropped;
        self.duplicated += r.messages_duplicated;
        self.held += r.messages_held;
        if uses_file_store(seed) {
            self.file_store_crashes += r.crashes;
        }
        self.snapshots_installed += r.stats.snapshots_installed;
        self.snapshot_chunks += r.stats.snapshot_chunks;
        self.max_events = self.max_events.max(r.events);
        self.max_queue = self.max_queue.max(r.max_queue);
        for knob in knob_values(&SimConfig::random(seed), seed) {
            *self.knobs.entry(knob).or_default() += 1;
        }
    }

    fn knob_lines(&self) -> String {
        let mut out = String::new();
        for (knob, _) in KNOBS {
            let values: Vec<String> = self
                .knobs
                .iter()
                .filter(|((k, _), _)| k == knob)
                .map(|((_, v), count)| format!("{v}: {count}"))
                .collect();
            out += &format!("\n  {knob}: {}", values.join(", "));
        }
        out
    }

    /// In a full shard, every fault kind happened and every knob value ran.
    fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        let faults = [
            ("acknowledged writes", self.acked),
            ("elections", self.elections),
            ("crashes", self.crashes),
            ("torn crashes", self.torn_crashes),
            ("store failures", self.store_failures),
            ("restarts", self.restarts),
            ("partitions", self.partitions),
            ("dropped messages", self.dropped),
            ("duplicated messages", self.duplicated),
            ("long-held messages", self.held),
            ("crashes of nodes on file stores", self.file_store_crashes),
            ("snapshots installed", self.snapshots_installed),
        ];
        for (what, count) in faults {
            if count == 0 {
                missing.push(format!("no {what}"));
            }
        }
        for (knob, values) in KNOBS {
            for v in *values {
                if !self.knobs.contains_key(&(*knob, v.to_string())) {
                    missing.push(format!("{knob} = {v} never ran"));
                }
            }
        }
        missing
    }
}

fn shard(index: u64) {
    let keep_going = std::env::var_os("RAFTBENCH_SIM_KEEP_GOING").is_some();
    let seeds = shard_seeds(index);
    let mut failures = Vec::new();
    let mut tally = Tally::default();
    for &seed in &seeds {
        match run_one(seed).and_then(|r| check_run(&r).map(|()| r)) {
            Ok(r) => tally.add(seed, &r),
            Err(e) => {
                eprintln!(
                    "seed {seed} FAILED: {e}\n  replay: {}",
                    sim::replay_command(seed)
                );
                failures.push((seed, e));
                if !keep_going {
                    break;
                }
            }
        }
    }
    eprintln!(
        "shard {index}: {} seeds passed ({} acknowledged proposals, {} elections, {} crashes \
         ({} torn, {} store failures), {} restarts, {} partitions, {} messages dropped, {} \
         duplicated, {} held past an election timeout; {} crashes recovered from file stores; {} \
         snapshots installed from {} chunks; at most {} events and {} queued in one run); knob \
         values run:{}",
        tally.runs,
        tally.acked,
        tally.elections,
        tally.crashes,
        tally.torn_crashes,
        tally.store_failures,
        tally.restarts,
        tally.partitions,
        tally.dropped,
        tally.duplicated,
        tally.held,
        tally.file_store_crashes,
        tally.snapshots_installed,
        tally.snapshot_chunks,
        tally.max_events,
        tally.max_queue,
        tally.knob_lines()
    );
    if let Some((seed, e)) = failures.first() {
        panic!(
            "{} seed(s) failed; first: seed {seed}: {e}\nreplay with: {}",
            failures.len(),
            sim::replay_command(*seed)
        );
    }
    assert_eq!(
        tally.runs,
        seeds.len() as u64,
        "shard {index} skipped seeds"
    );
    assert!(tally.runs > 0, "shard {index} ran no seed");
    if tally.runs >= FULL_SHARD {
        let missing = tally.missing();
        assert!(
            missing.is_empty(),
            "shard {index}: {} seeds, yet the fault mix or the knobs were not exercised: {}",
            tally.runs,
            missing.join("; ")
        );
    }
}

#[test]
fn mixed_faults_0() {
    shard(0);
}
#[test]
fn mixed_faults_1() {
    shard(1);
}
#[test]
fn mixed_faults_2() {
    shard(2);
}
#[test]
fn mixed_faults_3() {
    shard(3);
}
#[test]
fn mixed_faults_4() {
    shard(4);
}
#[test]
fn mixed_faults_5() {
    shard(5);
}
#[test]
fn mixed_faults_6() {
    shard(6);
}
#[test]
fn mixed_faults_7() {
    shard(7);
}

#[test]
fn every_shard_runs_a_seed_even_from_a_short_range() {
    // A range shorter than the shard count still hands every shard a seed of the range,
    // and together the shards cover the whole range.
    for total in [1u64, 3, 7, 8, 20] {
        for start in [0u64, 5] {
            let mut covered = std::collections::BTreeSet::new();
            for index in 0..SHARDS {
                let seeds = split(index, start, total);
                assert!(
                    !seeds.is_empty(),
                    "shard {index} of {start}+{total} is empty"
                );
                assert!(seeds.iter().all(|s| (start..start + total).contains(s)));
                covered.extend(seeds);
            }
            assert_eq!(covered.len() as u64, total, "start {start}, total {total}");
        }
    }
}

/// Replays `RAFTBENCH_SIM_SEED` (seed 0 when unset) and prints what happened; with
/// `RAFTBENCH_SIM_TRACE` set it prints every event first, then replays untraced.
#[test]
fn replay() {
    let seed = env_u64("RAFTBENCH_SIM_SEED").unwrap_or(0);
    let (cfg, _dir) = seed_config(seed);
    eprintln!("{cfg:#?}");
    let traced = std::env::var_os("RAFTBENCH_SIM_TRACE").map(|_| {
        let (cfg, _dir) = seed_config(seed);
        let mut s = sim::Simulation::new(cfg).unwrap();
        s.set_trace(true);
        s.run_to_end()
            .unwrap_or_else(|e| panic!("seed {seed} failed while tracing: {e}"));
        s.report()
    });
    let report = run_one(seed).unwrap_or_else(|e| {
        panic!(
            "seed {seed}: {e}\nreplay with: {}",
            sim::replay_command(seed)
        )
    });
    eprintln!("{report:#?}");
    check_run(&report).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(report.seed, seed);
    if let Some(traced) = traced {
        assert_eq!(
            traced, report,
            "seed {seed} ran differently with tracing on"
        );
    }
}

#[test]
fn same_seed_same_run() {
    for seed in [3, 17] {
        let a = sim::run_seed(seed).unwrap();
        let b = sim::run_seed(seed).unwrap();
        assert_eq!(a, b, "seed {seed} did not replay identically");
    }
    assert_ne!(
        sim::run_seed(3).unwrap().fingerprint,
        sim::run_seed(4).unwrap().fingerprint,
        "different seeds should differ"
    );
}

fn calm_run(cfg: SimConfig) -> SimReport {
    let seed = cfg.seed;
    sim::run(cfg).unwrap_or_else(|e| panic!("calm run (seed {seed}) failed: {e}"))
}

#[test]
fn eager_sends_commit_notices_piggyback_sends_fewer_appends() {
    for seed in [1, 2, 3] {
        let mut eager = SimConfig::calm(3, seed);
        eager.raft.commit_mode = CommitMode::Eager;
        let mut piggy = SimConfig::calm(3, seed);
        piggy.raft.commit_mode = CommitMode::Piggyback;
        let eager = calm_run(eager);
        let piggy = calm_run(piggy);
        assert!(eager.acknowledged > 0 && piggy.acknowledged > 0);
        assert!(
            eager.stats.commit_notices > 0,
            "seed {seed}: eager mode sent no commit notice: {:?}",
            eager.stats
        );
        assert_eq!(
            piggy.stats.commit_notices, 0,
            "seed {seed}: piggyback mode sent commit notices"
        );
        assert!(
            piggy.stats.append_messages() < eager.stats.append_messages(),
            "seed {seed}: piggyback sent {} AppendEntries, eager {}",
            piggy.stats.append_messages(),
            eager.stats.append_messages()
        );
    }
}

#[test]
fn calm_five_nodes_commit_and_apply_everything() {
    let cfg = SimConfig::calm(5, 11);
    let mut s = sim::Simulation::new(cfg).unwrap();
    s.run_to_end().unwrap();
    let report = s.report();
    assert_eq!(
        report.acknowledged, report.accepted,
        "a calm run loses nothing"
    );
    assert!(report.acknowledged >= 100, "{report:?}");
    let reference = s.applied(1).to_vec();
    assert_eq!(reference.len() as u64, report.commit_index);
    for id in 2..=5 {
        assert_eq!(
            s.applied(id),
            &reference[..],
            "node {id} applied something else"
        );
    }
    assert_eq!(
        report.elections_won, 1,
        "one election in a calm run: {report:?}"
    );
}

#[test]
fn calm_runs_with_random_knobs_stay_quiet() {
    // The mixed-fault knobs, with every fault switched off: one leader for the whole run,
    // no message lost, every accepted proposal acknowledged where it was promised.
    for seed in 0..20 {
        let mut cfg = SimConfig::random(seed);
        cfg.net.loss = 0.0;
        cfg.net.duplicate = 0.0;
        cfg.net.hold = 0.0;
        cfg.faults = sim::FaultConfig::none();
        let r = calm_run(cfg);
        assert!(r.acknowledged > 0, "seed {seed}: {r:?}");
        assert_eq!(
            r.elections_won, 1,
            "seed {seed}: a leader lost its place without a fault: {r:?}"
        );
        assert_eq!(
            (r.crashes, r.restarts, r.partitions, r.store_failures),
            (0, 0, 0, 0),
            "seed {seed}: {r:?}"
        );
        assert_eq!(
            (r.messages_dropped, r.messages_duplicated, r.messages_held),
            (0, 0, 0),
            "seed {seed}: {r:?}"
        );
        assert_eq!(
            r.lost, 0,
            "seed {seed}: an accepted proposal lost its slot: {r:?}"
        );
        assert_eq!(
            r.acknowledged + r.abandoned,
            r.accepted,
            "seed {seed}: accepted proposals neither acknowledged nor given up: {r:?}"
        );
    }
}

// ----- the liveness and contract checks can fail ----------------------------------------

fn violation_of(r: Result<SimReport, SimError>) -> sim::Violation {
    match r {
        Err(SimError::Violation(v)) => v,
        Err(e) => panic!("expected a violation, got another error: {e}"),
        Ok(r) => panic!("the run passed, but it was broken on purpose: {r:?}"),
    }
}

#[test]
fn liveness_check_catches_a_cluster_that_never_elects_a_leader() {
    let mut cfg = SimConfig::calm(3, 5);
    // Every message takes three of the longest election timeouts: each vote comes back
    // after its candidate moved on to a later term, so nobody is ever elected.
    cfg.raft.pre_vote = false;
    cfg.net.min_delay = cfg.max_election_timeout() * 3;
    cfg.net.max_delay = cfg.net.min_delay;
    let v = violation_of(sim::run(cfg));
    assert_eq!(v.property, Property::Liveness, "{v}");
    assert!(v.detail.contains("no fresh proposal"), "{v}");
    assert_eq!(v.seed, 5);
}

#[test]
fn contract_check_catches_a_message_storm() {
    let mut cfg = SimConfig::calm(3, 5);
    // A healthy calm run needs tens of thousands of events; a budget of 100 stands for a
    // core that floods the network.
    cfg.event_budget = 100;
    let v = violation_of(sim::run(cfg));
    assert_eq!(v.property, Property::CoreContract, "{v}");
    assert!(v.detail.contains("message storm"), "{v}");
}

#[test]
fn contract_check_catches_a_malformed_message() {
    let mut s = sim::Simulation::new(SimConfig::calm(3, 5)).unwrap();
    // Node 2 "sends" entries that do not follow their prev_log_index: its peer refuses them.
    s.inject(Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::AppendEntries(raftbench::raft::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![entry(5, 1, 7)],
            leader_commit: 0,
            compact_floor: 0,
            kind: raftbench::raft::AppendKind::Entries,
        }),
    });
    let v = violation_of(s.run_to_end().map(|()| s.report()));
    assert_eq!(v.property, Property::CoreContract, "{v}");
    assert!(v.detail.contains("refused"), "{v}");
    assert_eq!(v.nodes, vec![1, 2]);
}

// ----- the checker can fail -------------------------------------------------------------

fn expect(property: Property, r: Result<(), sim::Violation>) {
    match r {
        Err(v) => {
            assert_eq!(v.property, property, "wrong property reported: {v}");
            assert_eq!(v.seed, 99);
            let text = v.to_string();
            assert!(
                text.contains(&format!("{property}")) && text.contains("seed 99"),
                "{text}"
            );
        }
        Ok(()) => panic!("the checker missed a {property} violation"),
    }
}

#[test]
fn checker_catches_two_leaders_in_one_term() {
    let mut c = Checker::new(99);
    let log = RaftLog::default();
    let t = Time::from_nanos(5);
    c.role_changed(t, 1, 3, Role::Leader, &log).unwrap();
    c.role_changed(t, 1, 3, Role::Leader, &log).unwrap();
    c.role_changed(t, 2, 4, Role::Leader, &log).unwrap();
    expect(
        Property::ElectionSafety,
        c.role_changed(t, 2, 3, Role::Leader, &log),
    );
    // A follower that recognises a leader nobody elected is caught too.
    expect(Property::ElectionSafety, c.leader_changed(t, 3, 4, Some(1)));
    expect(
        Property::ElectionSafety,
        c.role_observed(t, 3, 4, Role::Leader),
    );
}

#[test]
fn checker_catches_two_entries_applied_at_one_index() {
    let mut c = Checker::new(99);
    let t = Time::ZERO;
    let a = [entry(1, 1, 10)];
    c.commit_advanced(t, 1, 1, 0, 1, a.iter()).unwrap();
    c.applied(t, 1, &a[0]).unwrap();
    // Node 2 applies another entry at index 1.
    expect(
        Property::StateMachineSafety,
        c.applied(t, 2, &entry(1, 2, 20)),
    );
    // Committing another entry at a committed index is the same violation.
    let b = [entry(1, 2, 20)];
    expect(
        Property::StateMachineSafety,
        c.commit_advanced(t, 2, 2, 0, 1, b.iter()),
    );
    // Applying out of order.
    expect(
        Property::StateMachineSafety,
        c.applied(t, 1, &entry(3, 1, 30)),
    );
}

#[test]
fn checker_catches_diverging_logs() {
    let mut c = Checker::new(99);
    let t = Time::ZERO;
    c.stored(t, 1, 2, 0, &[entry(1, 1, 10), entry(2, 2, 20)], &[])
        .unwrap();
    c.stored(t, 2, 2, 0, &[entry(1, 1, 10)], &[]).unwrap();
    // Same (index 2, term 2) but after a different entry.
    expect(
        Property::LogMatching,
        c.stored(t, 2, 2, 3, &[entry(2, 2, 20)], &[]),
    );
    // Same (index, term), another payload.
    expect(
        Property::LogMatching,
        c.stored(t, 3, 2, 1, &[entry(2, 2, 21)], &[]),
    );
    // Entry (1, term 1) commits in term 3.
    let committed = [entry(1, 1, 10)];
    c.commit_advanced(t, 1, 3, 0, 1, committed.iter()).unwrap();
    // A node still in term 2 may lose its copy to a stale leader of term 2...
    c.stored(t, 4, 2, 0, &[entry(1, 2, 25)], &[entry(1, 1, 10)])
        .unwrap();
    // ...but a node in term 3 or later only hears from leaders that hold the entry.
    expect(
        Property::LogMatching,
        c.stored(t, 2, 3, 0, &[entry(1, 3, 30)], &[entry(1, 1, 10)]),
    );
}

#[test]
fn checker_catches_a_leader_missing_a_committed_entry() {
    let mut c = Checker::new(99);
    let t = Time::ZERO;
    let committed = [entry(1, 1, 10), entry(2, 1, 11)];
    c.commit_advanced(t, 1, 1, 0, 2, committed.iter()).unwrap();
    let full = RaftLog::new(0, 0, committed.to_vec());
    c.role_changed(t, 2, 2, Role::Leader, &full).unwrap();
    let short = RaftLog::new(0, 0, vec![entry(1, 1, 10)]);
    expect(
        Property::LeaderCompleteness,
        c.role_changed(t, 3, 3, Role::Leader, &short),
    );
    // A log that compacted the committed prefix holds it in its snapshot.
    let compacted = RaftLog::new(2, 1, vec![]);
    c.role_changed(t, 3, 4, Role::Leader, &compacted).unwrap();
}

#[test]
fn checker_catches_a_lost_acknowledged_write() {
    let mut c = Checker::new(99);
    let t = Time::ZERO;
    c.acknowledged(Ack {
        id: 10,
        index: 1,
        term: 1,
        node: 1,
    });
    let good = [Applied {
        index: 1,
        term: 1,
        id: 10,
    }];
    let dup = [
        good[0],
        Applied {
            index: 2,
            term: 1,
            id: 10,
        },
    ];
    c.finish(t, &[(1, &good), (2, &good)]).unwrap();
    expect(
        Property::AcknowledgedDurability,
        c.finish(t, &[(1, &dup), (2, &dup)]),
    );
    expect(
        Property::AcknowledgedDurability,
        c.finish(t, &[(1, &[]), (2, &[])]),
    );
    expect(
        Property::StateMachineSafety,
        c.finish(t, &[(1, &good), (2, &dup)]),
    );
}

#[test]
fn demo_reports_sparse_commits() {
    let r = sim::demo(2.0, 200.0, 5).unwrap();
    assert!(r.commits > 200, "{r:?}");
    // A commit needs at least a round trip to a follower (calm delays are at least 200 us).
    assert!(
        r.commit_latency_p50 >= std::time::Duration::from_micros(400),
        "{r:?}"
    );
    assert!(r.commit_latency_p50 <= r.commit_latency_p99);
    assert!(r.messages_per_commit > 0.0);
}

#[test]
fn commit_rig_commits_what_it_proposes() {
    let mut rig = sim::CommitRig::new(16, 4).unwrap();
    assert_eq!(rig.commit(1000, 64).unwrap(), 1000);
    assert_eq!(rig.commit(500, 1).unwrap(), 500);
}

#[test]
fn snapshot_fidelity_catches_a_snapshot_that_is_not_the_applied_log() {
    use raftbench::sim::checker::{decode_state, encode_state, SnapshotFidelity};
    let mut f = SnapshotFidelity::default();
    for i in 1..=4 {
        f.applied(&entry(i, 1 + i / 3, 100 + i));
    }
    let good: Vec<Applied> = (1..=3)
        .map(|i| Applied {
            index: i,
            term: 1 + i / 3,
            id: 100 + i,
        })
        .collect();
    let round_trip = decode_state(&encode_state(&good)).unwrap();
    assert_eq!(
        round_trip, good,
        "the simulated snapshot encoding round-trips"
    );
    f.holds(1, 3, &good, "installed").unwrap();
    let mut wrong = good.clone();
    wrong[1].id = 999;
    let b = f.holds(2, 3, &wrong, "installed").unwrap_err();
    assert!(
        b.detail.contains("differs from the applied log at index 2"),
        "{}",
        b.detail
    );
    assert!(
        f.holds(2, 2, &good, "reloaded").is_err(),
        "a state longer than its index"
    );
    let mut ahead = good.clone();
    ahead.push(Applied {
        index: 4,
        term: 2,
        id: 104,
    });
    ahead.push(Applied {
        index: 5,
        term: 2,
        id: 105,
    });
    let b = f.holds(3, 5, &ahead, "taken").unwrap_err();
    assert!(b.detail.contains("applied only up to 4"), "{}", b.detail);
    assert!(decode_state(&bytes::Bytes::from_static(&[1, 2, 3])).is_err());
}
