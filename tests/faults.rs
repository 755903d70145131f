//! Faults under load in process: a killed leader is replaced while the open loop keeps its
//! schedule, and every acknowledged write reads back afterwards; a slow disk shows in the
//! tail; a restarted follower on memory storage keeps what it stored and catches up. The
//! effects asserted (an election, hundreds of milliseconds of sync delay) are far larger
//! than machine noise; no assertion bounds how long anything took.

use std::path::Path;

use raftbench::harness::point::run_point_in;
use raftbench::harness::scenario::{Fault, Point, Scenario, StorageKind};
use raftbench::harness::summary::PointSummary;

fn points(text: &str) -> Result<Vec<Point>, String> {
    Scenario::parse(Path::new("tests/faults.rs"), text)
        .map(|s| s.points)
        .map_err(|e| e.to_string())
}

/// A 3-node QUIC cluster with short timeouts, 600 requests/s, 0.5 s warm-up and `measure`
/// seconds measured, with `extra` appended (storage, faults, series).
fn scenario(measure: f64, extra: &str) -> String {
    format!(
        r#"
name = "faults-test"
baseline = false
[base.cluster]
nodes = 3
transport = "quic"
[base.raft]
heartbeat_ms = 30.0
election_timeout_ms = 300.0
[base.workload]
rate = 600.0
arrival = "poisson"
[base.timing]
warmup_s = 0.5
measure_s = {measure}
{extra}
"#
    )
}

fn run(p: &Point, data: &Path) -> PointSummary {
    let (s, _) = run_point_in(p, None, &|_| {}, Some(data)).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{}: faults {:?}\ncorrectness {:?}\nok {} errors {} unanswered {} p99 {} us max {} us",
        s.name, s.faults, s.correctness, s.ok, s.errors, s.unanswered, s.latency.p99, s.latency.max
    );
    s
}

#[test]
fn a_killed_leader_is_replaced_under_load_and_nothing_acknowledged_is_lost() {
    let ps = points(&scenario(
        3.0,
        r#"
[base.cluster.storage]
kind = "file"
sync = "none"
[[base.faults]]
kind = "kill_leader"
at_s = 1.0
restart_after_s = 1.0
[[series]]
name = "kill"
"#,
    ))
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let s = run(&ps[0], data.path());
    assert_eq!(s.faults.len(), 1);
    let f = &s.faults[0];
    assert_eq!(f.kind, "kill_leader");
    let old = f.node.expect("the fault hit a node");
    let new = f.new_leader.expect("a new leader was elected");
    assert_ne!(new, old, "a surviving node leads");
    assert!(f.elect_ms.is_some());
    let unavailable = f.unavailability_ms.expect("commits resumed in the window");
    assert!(unavailable > 0.0, "{unavailable}");
    assert!(
        f.catch_up_ms.is_some(),
        "the restarted node caught up: {f:?}"
    );
    let c = s
        .correctness
        .as_ref()
        .expect("a faulted point is read back");
    assert_eq!(c.acknowledged_lost, 0, "{c:?}");
    assert_eq!(c.unverified, 0, "{c:?}");
    // Warm-up plus the window at 600/s: far more than the few lost to the kill.
    assert!(c.acknowledged_writes > 1000, "{c:?}");
    let t = s.timeline.as_ref().expect("a timeline");
    assert_eq!(t.ok.len(), 30, "3 s in 100 ms bins");
    assert!(
        t.offered.iter().all(|&o| o > 0),
        "the schedule never stopped: {t:?}"
    );
    // The open loop kept offering while nothing committed: some bin after the kill holds
    // no answer at all, and answers come back later.
    let kill_bin = 10;
    assert!(t.ok[kill_bin..].contains(&0), "{t:?}");
    assert!(t.ok[25..].iter().all(|&n| n > 0), "{t:?}");
    assert!(
        data.path().read_dir().unwrap().next().is_none(),
        "the nodes' data is removed"
    );
}

#[test]
fn a_slow_disk_shows_in_the_tail() {
    // Memory storage syncs inline: each of the leader's writes waits the delay on its
    // thread, so requests queue behind it for the whole second.
    let ps = points(&scenario(
        2.0,
        r#"
[[base.faults]]
kind = "slow_disk"
at_s = 0.5
duration_s = 1.0
sync_ms = 100.0
[[series]]
name = "slow"
"#,
    ))
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let s = run(&ps[0], data.path());
    let f = &s.faults[0];
    assert_eq!(f.kind, "slow_disk");
    let worst = f
        .latency_max_ms
        .expect("requests were answered after the fault");
    assert!(worst >= 100.0, "worst latency after the fault {worst} ms");
    assert!(s.latency.p99 >= 100_000.0, "p99 {} us", s.latency.p99);
    assert_eq!(s.correctness.as_ref().unwrap().acknowledged_lost, 0);
}

#[test]
fn a_follower_restarted_on_memory_storage_keeps_its_log_and_catches_up() {
    let ps = points(&scenario(
        2.5,
        r#"
[[base.faults]]
kind = "restart_follower"
at_s = 0.5
down_s = 1.0
[[series]]
name = "restart"
"#,
    ))
    .unwrap();
    assert_eq!(ps[0].config.cluster.storage.kind, StorageKind::Memory);
    let data = tempfile::tempdir().unwrap();
    let s = run(&ps[0], data.path());
    let f = &s.faults[0];
    assert_eq!(f.kind, "restart_follower");
    assert!(f.elect_ms.is_none(), "the leader kept leading: {f:?}");
    assert!(f.catch_up_ms.is_some(), "the follower caught up: {f:?}");
    let c = s.correctness.as_ref().unwrap();
    assert_eq!((c.acknowledged_lost, c.unverified), (0, 0), "{c:?}");
}

#[test]
fn a_restarted_follower_behind_the_snapshots_catches_up_by_one_and_nothing_is_lost() {
    // 600 writes/s with a snapshot every 50 entries: while the follower is down for a
    // second, the leader snapshots a dozen times and discards the log the follower lacks.
    let ps = points(&scenario(
        3.0,
        r#"
[[base.faults]]
kind = "restart_follower"
at_s = 0.5
down_s = 1.0
[[series]]
name = "restart-snapshots"
set = { "raft.snapshot_entries" = 50, "raft.snapshot_chunk_bytes" = 4096 }
"#,
    ))
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let s = run(&ps[0], data.path());
    eprintln!("snapshots {:?}", s.snapshots);
    let f = &s.faults[0];
    assert_eq!(f.kind, "restart_follower");
    assert!(f.catch_up_ms.is_some(), "the follower caught up: {f:?}");
    let snaps = s.snapshots.as_ref().expect("the nodes snapshot");
    assert_eq!(snaps.every_entries, 50);
    assert!(
        snaps.installed > 0,
        "the restarted follower caught up without a snapshot: {snaps:?}"
    );
    assert!(snaps.chunks_sent > 0, "{snaps:?}");
    let c = s.correctness.as_ref().unwrap();
    assert!(c.acknowledged_writes > 1000, "{c:?}");
    assert_eq!((c.acknowledged_lost, c.unverified), (0, 0), "{c:?}");
}

#[test]
fn a_killed_leader_on_file_storage_that_snapshots_loses_nothing_and_rejoins() {
    // The killed leader restarts from its own snapshot and log files, while the new leader
    // snapshots past what it holds: it rejoins by InstallSnapshot.
    let ps = points(&scenario(
        3.0,
        r#"
[base.cluster.storage]
kind = "file"
sync = "none"
[[base.faults]]
kind = "kill_leader"
at_s = 0.5
restart_after_s = 1.0
[[series]]
name = "kill-snapshots"
set = { "raft.snapshot_entries" = 50, "raft.snapshot_chunk_bytes" = 4096 }
"#,
    ))
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let s = run(&ps[0], data.path());
    eprintln!("snapshots {:?}", s.snapshots);
    let f = &s.faults[0];
    assert_eq!(f.kind, "kill_leader");
    assert_ne!(f.new_leader, f.node, "a surviving node leads: {f:?}");
    let snaps = s.snapshots.as_ref().expect("the nodes snapshot");
    assert!(snaps.installed > 0, "{snaps:?}");
    let c = s.correctness.as_ref().unwrap();
    assert!(c.acknowledged_writes > 1000, "{c:?}");
    assert_eq!(c.acknowledged_lost, 0, "{c:?}");
}

#[test]
fn a_point_whose_faults_restart_nodes_compacts_through_snapshots() {
    let ps = points(&scenario(
        1.0,
        r#"
[[base.faults]]
kind = "restart_follower"
at_s = 0.2
down_s = 0.2
[[series]]
name = "a"
[[series]]
name = "b"
set = { "raft.compact_threshold" = 0 }
[[series]]
name = "c"
set = { "raft.snapshot_entries" = 100 }
"#,
    ))
    .unwrap();
    let every: Vec<u64> = ps
        .iter()
        .map(|p| raftbench::harness::target::snapshot_entries(&p.config))
        .collect();
    let default = raftbench::raft::Config::default().compact_threshold;
    assert!(default > 0);
    assert_eq!(every, vec![default, 0, 100]);
}

#[test]
fn the_published_fault_scenario_parses_with_one_point_per_fault_kind() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-configs/faults.toml");
    let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut kinds: Vec<&str> = sc
        .points
        .iter()
        .map(|p| {
            assert_eq!(p.config.faults.len(), 1, "{}", p.name);
            assert_eq!(p.config.cluster.storage.kind, StorageKind::File);
            assert!(p.config.cluster.leader.is_none());
            p.config.faults[0].kind()
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    for k in [
        "kill_leader",
        "stop_leader",
        "restart_follower",
        "partition_leader",
        "slow_disk",
        "fill_disk",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert!(matches!(
        sc.points[0].config.faults[0],
        Fault::KillLeader { .. }
    ));
}

#[test]
fn impossible_fault_configurations_are_refused_with_the_key() {
    let e = points(&scenario(
        3.0,
        "[[base.faults]]\nkind = \"kill_leader\"\nat_s = 1.0\nrestart_after_s = 1.0\n[[series]]\nname = \"a\"\nset = { \"cluster.leader\" = 1 }\n",
    ))
    .unwrap_err();
    assert!(
        e.contains("cluster.leader") && e.contains("kill_leader"),
        "{e}"
    );
    let e = points(&scenario(
        3.0,
        "[[base.faults]]\nkind = \"stop_leader\"\nat_s = 2.5\nduration_s = 1.0\n[[series]]\nname = \"a\"\n",
    ))
    .unwrap_err();
    assert!(e.contains("faults[0]") && e.contains("measure_s"), "{e}");
    let e = points(&scenario(
        3.0,
        "[[base.faults]]\nkind = \"fill_disk\"\nat_s = 1.0\nduration_s = 1.0\n[[series]]\nname = \"a\"\n",
    ))
    .unwrap_err();
    assert!(e.contains("storage"), "{e}");
    let e = points(&scenario(
        3.0,
        "[[base.faults]]\nkind = \"slow_disk\"\nat_s = 1.0\nduration_s = 1.0\n[[series]]\nname = \"a\"\n",
    ))
    .unwrap_err();
    assert!(e.contains("sync_ms"), "{e}");
}
