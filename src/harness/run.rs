//! Runs sweep points: start a cluster, offer the load, record, and summarize.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{ClusterError, ClusterSpec, LocalCluster};
use crate::harness::histograms::{IntervalHistogram, PointHistograms, Unit};
use crate::harness::load::{wait_until, CommandMaker, GeneratorReport, Intended, OpenLoop};
use crate::harness::recorder::Recorder;
use crate::harness::scenario::{LoadMode, Point};
use crate::harness::summary::{Costs, FollowerLag, LoadKind, Percentiles, Phases, PointSummary};
use crate::raft::{NodeId, Role};
use crate::server::{ReplyTo, Request, ServerHandle};

/// A point whose generator was later than this at the 99th percentile is invalid.
pub const SCHEDULE_LIMIT: Duration = Duration::from_millis(1);
/// How long after the window the harness waits for the last answers.
const DRAIN_GRACE: Duration = Duration::from_secs(3);

/// Why a point could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The cluster did not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// No leader emerged.
    #[error("no leader was elected within {0:?}")]
    NoLeader(Duration),
    /// The point's configuration is unusable.
    #[error("point {point}: {reason}")]
    Config {
        /// The point.
        point: String,
        /// Why.
        reason: String,
    },
}

/// Process-wide counters at one instant.
#[derive(Clone, Debug, Default)]
struct Counters {
    leader_appends: u64,
    leader_heartbeats: u64,
    leader_notices: u64,
    raft_messages: u64,
    wire_bytes: u64,
    cpu: Duration,
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn counters(cluster: &LocalCluster, leader: NodeId) -> Counters {
    let mut c = Counters {
        cpu: cpu_time(),
        ..Counters::default()
    };
    for h in cluster.handles() {
        let st = h.status();
        let s = &st.stats;
        c.raft_messages +=
            s.append_messages() + s.append_responses + s.vote_requests + s.vote_responses;
        if h.node() == leader {
            c.leader_appends = s.append_messages();
            c.leader_heartbeats = s.heartbeats;
            c.leader_notices = s.commit_notices;
        }
    }
    for t in cluster.transports() {
        c.wire_bytes += t.stats().bytes_sent;
    }
    c
}

async fn find_leader(cluster: &LocalCluster, within: Duration) -> Result<ServerHandle, RunError> {
    let mut client = cluster.client();
    client.deadline = within;
    client
        .put("raftbench-warmup", "x")
        .await
        .map_err(|_| RunError::NoLeader(within))?;
    let id = client.leader_guess();
    let h = cluster.handles()[id as usize - 1].clone();
    if h.status().role != Role::Leader {
        return Err(RunError::NoLeader(within));
    }
    Ok(h)
}

/// Runs one point. `floor_p50_us` is the run's baseline round trip for the point's
/// transport, if measured. `progress` is called with the fraction of the point done.
pub fn run_point(
    point: &Point,
    floor_p50_us: Option<f64>,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(PointSummary, PointHistograms), RunError> {
    let c = &point.config;
    let cfg_err = |reason: String| RunError::Config {
        point: point.name.clone(),
        reason,
    };
    let interval = Duration::from_secs_f64(c.phases.interval_s);
    let recorder = Arc::new(Recorder::new(c.cluster.nodes, interval));
    let mut spec = ClusterSpec::new(c.cluster.nodes, c.cluster.transport);
    spec.threading = c.cluster.threading;
    spec.mem_mode = c.cluster.mem_mode;
    spec.quic = c.cluster.quic.clone();
    spec.transport_settings = c.cluster.transport_settings.clone();
    spec.seed = c.seed;
    spec.raft = c
        .raft
        .to_core(1, vec![1], "raft.")
        .map_err(|(k, r)| cfg_err(format!("{k} {r}")))?;
    spec.observer = Some(recorder.clone());
    let cluster = LocalCluster::start(spec)?;
    let epoch = cluster.epoch();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| cfg_err(e.to_string()))?;
    let election_wait = Duration::from_secs_f64(c.raft.election_timeout_ms / 1e3 * 20.0)
        .max(Duration::from_secs(5));
    let leader = rt.block_on(find_leader(&cluster, election_wait))?;
    let leader_id = leader.node();

    let warmup = Duration::from_secs_f64(c.phases.warmup_s);
    let measure = Duration::from_secs_f64(c.phases.measure_s);
    let start = Instant::now() + Duration::from_millis(5);
    let win_start = start + warmup;
    let end = win_start + measure;
    let window = (win_start - epoch, end - epoch);
    recorder.set_window(
        crate::raft::Time::from_nanos(window.0.as_nanos() as u64),
        crate::raft::Time::from_nanos(window.1.as_nanos() as u64),
    );

    let intended = Arc::new(Intended::new(1 << 21));
    // Replies cross from the leader's thread to this one through a crossbeam channel:
    // `cargo bench --bench handoff` moves 40 M replies/s through it (std's mpsc, built on
    // the same algorithm, 69 M/s; tokio's unbounded channel with blocking_recv, 15 M/s),
    // far above the cluster's peak, and it offers the timed receive this loop needs.
    let (tx, rx) = crossbeam::channel::unbounded();
    let sent = Arc::new(AtomicU64::new(0));
    let gen_done = Arc::new(AtomicBool::new(false));
    let closed = c.workload.mode == LoadMode::ClosedLoop;

    let mut latency = IntervalHistogram::new(Unit::Nanos, interval);
    let phase = |_: &str| IntervalHistogram::new(Unit::Nanos, interval);
    let (mut queue, mut batch_wait, mut replication, mut apply, mut reply) = (
        phase("queue"),
        phase("batch_wait"),
        phase("replication"),
        phase("apply"),
        phase("reply"),
    );
    let (mut ok, mut errors, mut in_window) = (0u64, 0u64, 0u64);
    // Successful answers that arrived inside the window, whenever they were scheduled: the
    // throughput actually delivered. Counting answers to requests scheduled in the window
    // instead would credit an overloaded cluster with the backlog it drains afterwards.
    let mut delivered = 0u64;
    let mut before = Counters::default();
    let mut after = Counters::default();

    let report: GeneratorReport = std::thread::scope(|s| {
        let generator = (!closed).then(|| {
            let gen = OpenLoop {
                leader: leader.clone(),
                replies: tx.clone(),
                intended: intended.clone(),
                epoch,
                start,
                end,
                window,
                rate: c.workload.rate,
                arrival: c.workload.arrival,
                seed: c.seed,
                commands: CommandMaker::new(&c.workload, c.seed),
                interval,
            };
            let sent = sent.clone();
            let done = gen_done.clone();
            s.spawn(move || {
                let r = gen.run();
                sent.store(r.sent, Relaxed);
                done.store(true, Relaxed);
                r
            })
        });
        if c.faults.leader_stall_ms > 0.0 {
            let stall = Duration::from_secs_f64(c.faults.leader_stall_ms / 1e3);
            let at = win_start + Duration::from_secs_f64(c.faults.leader_stall_at_s);
            let l = leader.clone();
            s.spawn(move || {
                wait_until(at);
                l.stall(stall);
            });
        }
        let snap = s.spawn(|| {
            wait_until(win_start);
            let b = counters(&cluster, leader_id);
            wait_until(end);
            (b, counters(&cluster, leader_id))
        });

        // Closed loop: this thread is the N clients; each answer sends the next request.
        let mut commands = CommandMaker::new(&c.workload, c.seed);
        let mut next_id = 0u64;
        let mut send_one = |next_id: &mut u64| {
            let now = Instant::now();
            intended.set(*next_id, (now - epoch).as_nanos() as u64);
            let req = Request {
                id: *next_id,
                command: commands.next_command(),
                reply: ReplyTo::Queue(tx.clone()),
            };
            *next_id += 1;
            leader.blocking_send(req).is_ok()
        };
        if closed {
            wait_until(start);
            for _ in 0..c.workload.clients {
                send_one(&mut next_id);
            }
        }

        let mut answered = 0u64;
        let total_len = (end - start).as_secs_f64();
        let mut last_progress = Instant::now();
        loop {
            let now = Instant::now();
            if now >= end {
                let all_sent = if closed { next_id } else { sent.load(Relaxed) };
                let done = closed || gen_done.load(Relaxed);
                if (done && answered >= all_sent) || now >= end + DRAIN_GRACE {
                    break;
                }
            }
            let Ok((id, r)) = rx.recv_timeout(Duration::from_millis(20)) else {
                continue;
            };
            let got = Instant::now();
            answered += 1;
            if r.is_ok() && got >= win_start && got < end {
                delivered += 1;
            }
            let t_got = (got - epoch).as_nanos() as u64;
            let sched = intended.get(id);
            let sched_d = Duration::from_nanos(sched);
            if sched_d >= window.0 && sched_d < window.1 {
                let off = sched_d - window.0;
                in_window += 1;
                match r {
                    Ok(_) => {
                        ok += 1;
                        latency.record(off, t_got.saturating_sub(sched));
                        if let Some(tl) = recorder.timeline(id) {
                            let p = tl.proposed.as_nanos();
                            let f = tl.first_sent.as_nanos();
                            let cm = tl.committed.as_nanos();
                            let a = tl.applied.as_nanos();
                            queue.record(off, p.saturating_sub(sched));
                            batch_wait.record(off, f.saturating_sub(p));
                            replication.record(off, cm.saturating_sub(f));
                            apply.record(off, a.saturating_sub(cm));
                            reply.record(off, t_got.saturating_sub(a));
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            if closed && got < end {
                send_one(&mut next_id);
            }
            if got - last_progress > Duration::from_millis(100) {
                last_progress = got;
                progress(((got - start).as_secs_f64() / total_len).clamp(0.0, 1.0));
            }
        }
        let (b, a) = snap.join().expect("the counter thread does not panic");
        before = b;
        after = a;
        match generator {
            Some(g) => g.join().expect("the generator does not panic"),
            None => GeneratorReport {
                sent: next_id,
                in_window,
                schedule_error: IntervalHistogram::new(Unit::Nanos, interval),
            },
        }
    });
    drop(rt);
    cluster.shutdown();
    progress(1.0);

    // Requests scheduled in the window but not answered count against the point.
    let scheduled_in_window = report.in_window;
    let unanswered = scheduled_in_window.saturating_sub(ok + errors);

    let rec = recorder.take();
    let mut hists: PointHistograms = BTreeMap::new();
    for h in [
        &mut latency,
        &mut queue,
        &mut batch_wait,
        &mut replication,
        &mut apply,
        &mut reply,
    ] {
        h.finish();
    }
    let mut commit_all = IntervalHistogram::new(Unit::Nanos, interval);
    let mut apply_all = IntervalHistogram::new(Unit::Nanos, interval);
    let mut followers = Vec::new();
    for (id, commit, applyh) in rec.followers {
        if id == leader_id {
            continue;
        }
        commit_all.merge(&commit);
        apply_all.merge(&applyh);
        followers.push(FollowerLag {
            node: id,
            commit_lag: Percentiles::of_nanos(&commit.total),
            apply_lag: Percentiles::of_nanos(&applyh.total),
        });
        hists.insert(format!("commit_lag.node{id}"), commit);
        hists.insert(format!("apply_lag.node{id}"), applyh);
    }

    let measured = measure.as_secs_f64();
    let achieved = delivered as f64 / measured;
    let offered = if closed { 0.0 } else { c.workload.rate };
    let sched = Percentiles::of_nanos(&report.schedule_error.total);
    let per = |d: u64| if ok == 0 { 0.0 } else { d as f64 / ok as f64 };
    let lat = Percentiles::of_nanos(&latency.total);
    let summary = PointSummary {
        name: point.name.clone(),
        series: point.series.clone(),
        params: point.params.iter().cloned().collect(),
        load: if closed {
            LoadKind::ClosedLoop
        } else {
            LoadKind::OpenLoop
        },
        offered_rate: offered,
        achieved_rate: achieved,
        // Against the load the schedule really offered in the window, so that a Poisson
        // schedule's own variation is not taken for saturation.
        saturated: !closed && achieved < 0.95 * (scheduled_in_window as f64 / measured),
        schedule_invalid: !closed && sched.p99 > SCHEDULE_LIMIT.as_secs_f64() * 1e6,
        measured_seconds: measured,
        warmup_seconds: warmup.as_secs_f64(),
        ok,
        errors,
        unanswered,
        latency_p50_over_floor: floor_p50_us
            .filter(|f| *f > 0.0 && lat.count > 0)
            .map(|f| lat.p50 / f),
        latency: lat,
        schedule_error: sched,
        followers,
        commit_lag: Percentiles::of_nanos(&commit_all.total),
        apply_lag: Percentiles::of_nanos(&apply_all.total),
        phases: Phases {
            queue: Percentiles::of_nanos(&queue.total),
            batch_wait: Percentiles::of_nanos(&batch_wait.total),
            replication: Percentiles::of_nanos(&replication.total),
            apply: Percentiles::of_nanos(&apply.total),
            reply: Percentiles::of_nanos(&reply.total),
        },
        batch_size: Percentiles::scaled(&rec.batch_size.total, 1.0),
        pipeline_depth: Percentiles::scaled(&rec.pipeline_depth.total, 1.0),
        per_request: Costs {
            append_messages: per(after.leader_appends - before.leader_appends),
            heartbeats: per(after.leader_heartbeats - before.leader_heartbeats),
            commit_notices: per(after.leader_notices - before.leader_notices),
            raft_messages: per(after.raft_messages - before.raft_messages),
            wire_bytes: per(after.wire_bytes - before.wire_bytes),
            cpu_seconds: if ok == 0 {
                0.0
            } else {
                (after.cpu.saturating_sub(before.cpu)).as_secs_f64() / ok as f64
            },
        },
        config: toml::Table::try_from(c).expect("a point config serializes"),
    };
    hists.insert("latency".into(), latency);
    hists.insert("schedule_error".into(), report.schedule_error);
    hists.insert("commit_lag".into(), commit_all);
    hists.insert("apply_lag".into(), apply_all);
    hists.insert("phase.queue".into(), queue);
    hists.insert("phase.batch_wait".into(), batch_wait);
    hists.insert("phase.replication".into(), replication);
    hists.insert("phase.apply".into(), apply);
    hists.insert("phase.reply".into(), reply);
    hists.insert("batch_size".into(), rec.batch_size);
    hists.insert("pipeline_depth".into(), rec.pipeline_depth);
    Ok((summary, hists))
}
