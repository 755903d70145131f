//! The harness sees what it claims to see: a 200 ms leader stall lands in the open-loop
//! tail (and mostly escapes a closed loop), and follower commit lag at sparse load follows
//! the heartbeat model. Effects asserted here are far larger than machine noise.

use std::path::Path;

use std::time::Duration;

use raftbench::harness::model::LagModel;
use raftbench::harness::run::run_point;
use raftbench::harness::scenario::{Arrival, Point, Scenario};
use raftbench::raft::CommitMode;

fn points(text: &str) -> Vec<Point> {
    Scenario::parse(Path::new("tests/harness.rs"), text)
        .unwrap_or_else(|e| panic!("{e}"))
        .points
}

#[test]
fn a_leader_stall_shows_in_the_open_loop_tail_not_in_a_closed_loop() {
    let ps = points(
        r#"
name = "stall"
[base.phases]
warmup_s = 0.5
measure_s = 2.0
[base.faults]
leader_stall_ms = 200
leader_stall_at_s = 0.8
[[series]]
name = "open"
set = { "workload.rate" = 1000.0 }
[[series]]
name = "closed"
set = { "workload.mode" = "closed_loop", "workload.clients" = 4 }
"#,
    );
    let (open, open_h) = run_point(&ps[0], None, &|_| {}).unwrap();
    let (closed, closed_h) = run_point(&ps[1], None, &|_| {}).unwrap();
    let slow = |h: &hdrhistogram::Histogram<u64>| h.count_between(100_000_000, u64::MAX);
    let open_slow = slow(&open_h["latency"].total);
    let closed_slow = slow(&closed_h["latency"].total);
    eprintln!(
        "open p99.9 {} us, {open_slow} slow; closed {closed_slow} slow",
        open.latency.p999
    );
    assert!(
        open.latency.p999 >= 100_000.0,
        "open loop p99.9 {} us must show the 200 ms stall",
        open.latency.p999
    );
    // Requests scheduled during the stall each wait for it: about 1000/s x 0.2 s of them.
    assert!(
        open_slow >= 50,
        "open loop saw {open_slow} samples over 100 ms"
    );
    // A closed loop's clients sit out the stall: one slow sample each.
    assert!(
        closed_slow * 5 < open_slow,
        "closed loop saw {closed_slow} slow samples, open loop {open_slow}"
    );
    assert!(closed.ok > 0 && open.ok > 1000);
    assert_eq!(open.unanswered, 0);
}

#[test]
fn sparse_piggyback_commit_lag_follows_the_heartbeat_model() {
    // Poisson arrivals at 5/s: far sparser than one per heartbeat, and never in step with it.
    let ps = points(
        r#"
name = "model"
[base.workload]
rate = 5.0
arrival = "poisson"
[base.phases]
warmup_s = 0.5
measure_s = 8.0
[[series]]
name = "hb"
sweep = [ { knob = "raft.heartbeat_ms", values = [20.0, 50.0] } ]
"#,
    );
    for p in &ps {
        let (s, _) = run_point(p, None, &|_| {}).unwrap();
        // Heartbeats on a timer that appends do not reset: lag ~ Uniform(0, H) + d (the
        // model also accounts for the rare request that beats the heartbeat), with d the
        // one-way delay: half the replication round trip measured in the same run.
        let d = s.phases.replication.p50 / 2.0;
        let model = LagModel {
            commit_mode: CommitMode::Piggyback,
            append_resets_heartbeat: false,
            heartbeat: Duration::from_secs_f64(p.config.raft.heartbeat_ms / 1e3),
            arrival: Arrival::Poisson,
            rate: p.config.workload.rate,
            one_way: Duration::from_secs_f64(d / 1e6),
        }
        .mean()
        .as_secs_f64()
            * 1e6;
        let mean = s.commit_lag.mean;
        eprintln!(
            "{}: mean commit lag {mean:.0} us, model {model:.0} us",
            p.name
        );
        assert!(
            s.commit_lag.count >= 40,
            "{}: {} lag samples",
            p.name,
            s.commit_lag.count
        );
        assert!(
            (mean - model).abs() <= 0.25 * model,
            "{}: mean follower commit lag {mean:.0} us vs model {model:.0} us",
            p.name
        );
        assert_eq!(s.followers.len(), 2);
        assert!(
            s.per_request.heartbeats > 0.0,
            "sparse load leans on heartbeats"
        );
    }
}

#[test]
fn eager_mode_pays_a_message_to_cut_the_lag() {
    let ps = points(
        r#"
name = "eager"
[base.workload]
rate = 20.0
arrival = "poisson"
[base.raft]
heartbeat_ms = 50.0
[base.phases]
warmup_s = 0.5
measure_s = 3.0
[[series]]
name = "mode"
sweep = [ { knob = "raft.commit_mode", values = ["piggyback", "eager"] } ]
"#,
    );
    let (pig, _) = run_point(&ps[0], None, &|_| {}).unwrap();
    let (eager, _) = run_point(&ps[1], None, &|_| {}).unwrap();
    eprintln!(
        "piggyback lag {:.0} us, eager lag {:.0} us, eager notices/request {:.2}",
        pig.commit_lag.mean, eager.commit_lag.mean, eager.per_request.commit_notices
    );
    assert_eq!(pig.per_request.commit_notices, 0.0);
    assert!(
        eager.per_request.commit_notices >= 1.5,
        "one notice per follower per commit"
    );
    assert!(
        eager.commit_lag.mean * 10.0 < pig.commit_lag.mean,
        "eager lag {} us vs piggyback {} us",
        eager.commit_lag.mean,
        pig.commit_lag.mean
    );
}
