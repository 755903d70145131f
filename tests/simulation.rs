//! The core under deterministic simulation: thousands of seeded runs with mixed faults,
//! calm runs that compare commit modes, and proof that the checker can fail.
//!
//! - `RAFTBENCH_SIM_SEEDS=<n>`: how many mixed-fault seeds to run (default 10 000), split
//!   across the `mixed_faults_*` tests; `RAFTBENCH_SIM_SEED_START=<s>` shifts the range.
//! - `RAFTBENCH_SIM_SEED=<n>`: replay exactly one seed with the `replay` test:
//!   `RAFTBENCH_SIM_SEED=1234 cargo test --test simulation replay -- --nocapture`.
//! - `RAFTBENCH_SIM_KEEP_GOING=1`: run every seed of a shard even after a failure.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use raftbench::raft::{CommitMode, Entry, EntryKind, RaftLog, Role, Time};
use raftbench::sim::checker::{Ack, Applied};
use raftbench::sim::{self, Checker, Property, SimConfig, SimReport};

const DEFAULT_SEEDS: u64 = 10_000;
const SHARDS: u64 = 8;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not an unsigned integer")),
    )
}

/// Runs one seed, turning a panic inside the core (a debug assertion) into an error too.
fn run_one(seed: u64) -> Result<SimReport, String> {
    match catch_unwind(AssertUnwindSafe(|| sim::run_seed(seed))) {
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

fn shard(index: u64) {
    if std::env::var_os("RAFTBENCH_SIM_SEED").is_some() {
        return; // replaying one seed: only `replay` runs it
    }
    let total = env_u64("RAFTBENCH_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let start = env_u64("RAFTBENCH_SIM_SEED_START").unwrap_or(0);
    let keep_going = std::env::var_os("RAFTBENCH_SIM_KEEP_GOING").is_some();
    let mut failures = Vec::new();
    let (mut runs, mut acked, mut crashes, mut elections) = (0u64, 0u64, 0u64, 0u64);
    let (mut max_events, mut max_queue) = (0u64, 0usize);
    for seed in (start..start + total).filter(|s| s % SHARDS == index) {
        match run_one(seed) {
            Ok(r) => {
                runs += 1;
                acked += r.acknowledged;
                crashes += r.crashes;
                elections += r.elections_won;
                max_events = max_events.max(r.events);
                max_queue = max_queue.max(r.max_queue);
            }
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
        "shard {index}: {runs} seeds passed ({acked} acknowledged proposals, {crashes} crashes, \
         {elections} elections; at most {max_events} events and {max_queue} queued in one run)"
    );
    if let Some((seed, e)) = failures.first() {
        panic!(
            "{} seed(s) failed; first: seed {seed}: {e}\nreplay with: {}",
            failures.len(),
            sim::replay_command(*seed)
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

/// Replays `RAFTBENCH_SIM_SEED` (seed 0 when unset) and prints what happened.
#[test]
fn replay() {
    let seed = env_u64("RAFTBENCH_SIM_SEED").unwrap_or(0);
    eprintln!("{:#?}", SimConfig::random(seed));
    if std::env::var_os("RAFTBENCH_SIM_TRACE").is_some() {
        let mut s = sim::Simulation::new(SimConfig::random(seed)).unwrap();
        s.set_trace(true);
        let r = s.run_to_end();
        eprintln!("{:#?}\n{r:?}", s.report());
        return;
    }
    match run_one(seed) {
        Ok(report) => eprintln!("{report:#?}"),
        Err(e) => panic!(
            "seed {seed}: {e}\nreplay with: {}",
            sim::replay_command(seed)
        ),
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
    // The mixed-fault knobs, with every fault switched off.
    for seed in 0..20 {
        let mut cfg = SimConfig::random(seed);
        cfg.net.loss = 0.0;
        cfg.net.duplicate = 0.0;
        cfg.faults = sim::FaultConfig::none();
        let r = calm_run(cfg);
        assert!(r.acknowledged > 0, "seed {seed}: {r:?}");
        assert_eq!(r.crashes, 0);
    }
}

// ----- the checker can fail -------------------------------------------------------------

fn entry(index: u64, term: u64, id: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Bytes::copy_from_slice(&id.to_be_bytes()),
    }
}

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
