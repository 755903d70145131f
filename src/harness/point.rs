//! Runs one sweep point: start the target, offer the load, record both sides, summarize.
//!
//! The data's way through a point: a [`Target`] (the cluster) with a [`NodeRecorder`]
//! inside its nodes; a load ([`OpenLoop`] on a thread of its own, or a [`ClosedLoop`] on
//! the answer task) that sends to the leader; a [`ReplyRecorder`] that turns each answer
//! and the trace it carries into latency and phases; and [`summarize`], which turns what
//! both recorders hold into the point's summary.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::harness::cpu::{self, CpuShares, CLIENT_THREAD_PREFIX, GENERATOR_THREAD};
use crate::harness::faults::{read_back, run_faults, ClientLog, FaultRecorder};
use crate::harness::follow::{self, Follower};
use crate::harness::histograms::PointHistograms;
use crate::harness::load::{
    client_threads, clients_of_thread, run_client_thread_with, wait_until, Backoff, CommandMaker,
    GeneratorReport, GeneratorThread, Intended, OpenLoop,
};
use crate::harness::load_process::{merge_parts, LoadSpawn};
use crate::harness::memory::RssSampler;
use crate::harness::node_recorder::NodeRecorder;
use crate::harness::output::sanitize;
use crate::harness::processes::{raftbench_binary, NodeProcesses, ProcessSetup};
use crate::harness::reply_recorder::ReplyRecorder;
use crate::harness::scenario::{LoadMode, Point, TargetKind};
use crate::harness::summarize::{summarize, Recorded};
use crate::harness::summary::{Correctness, Floor, PointSummary, Snapshots};
use crate::harness::target::{snapshot_entries, InProcess, LoadPort, Target, TargetError};
use crate::harness::window::Window;
use crate::raft::{NodeId, Time};
use crate::remote::ObserverTee;
use crate::server::Answer;
use crate::server::Observer;

/// How long after the window the harness waits for the last answers.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// How often the answer task looks at the clock while no answer comes.
const POLL: Duration = Duration::from_millis(20);
/// Room for this many requests in flight at once (ids wrap around a ring of intended times).
const INTENDED_SLOTS: usize = 1 << 21;
/// How far ahead load processes' shared schedule starts: each must start, find the
/// leader and measure the nodes' clocks first.
const LOAD_PROCESS_LEAD: Duration = Duration::from_secs(3);
/// How long the read-back of a faulted point's acknowledged writes may take.
const READ_BACK_DEADLINE: Duration = Duration::from_secs(60);

/// Why a point could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The target did not start or lead.
    #[error("point {point}: {source}")]
    Target {
        /// The point.
        point: String,
        /// What went wrong.
        source: TargetError,
    },
    /// The harness could not set itself up (a runtime or thread failed to start).
    #[error("point {point}: {reason}")]
    Harness {
        /// The point.
        point: String,
        /// Why.
        reason: String,
    },
    /// A fault could not be injected or undone, so the point did not test what it says.
    #[error("point {point}: fault {reason}")]
    Fault {
        /// The point.
        point: String,
        /// What failed.
        reason: String,
    },
}

/// Runs one point. `floor` is the rate-matched raw round trip of the point's transport,
/// if measured. `progress` is called with the fraction of the point done.
pub fn run_point(
    point: &Point,
    floor: Option<Floor>,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(PointSummary, PointHistograms), RunError> {
    run_point_in(point, floor, progress, None)
}

/// As [`run_point`], with the nodes' file stores (if any) under `data_root`.
///
/// A point with faults also: sends its load through a port that follows the leader
/// ([`follow`]) unless it pins one, writes a key of its own per request, records each
/// fault's effect and the client timeline, and reads every acknowledged write back at the
/// end ([`crate::harness::faults`]).
pub fn run_point_in(
    point: &Point,
    floor: Option<Floor>,
    progress: &(dyn Fn(f64) + Sync),
    data_root: Option<&Path>,
) -> Result<(PointSummary, PointHistograms), RunError> {
    let c = &point.config;
    let target_err = |source| RunError::Target {
        point: point.name.clone(),
        source,
    };
    let harness_err = |reason: String| RunError::Harness {
        point: point.name.clone(),
        reason,
    };
    let interval = Duration::from_secs_f64(c.timing.interval_s);
    let nodes = Arc::new(NodeRecorder::new(c.cluster.nodes, interval));
    let faulted = !c.faults.is_empty();
    let closed = c.workload.mode == LoadMode::ClosedLoop;
    // The faults' figures and the read-back come from the open loop's answers, which all
    // pass through this thread; a closed loop's client threads record latency only.
    let traced = faulted && !closed;
    let frec = Arc::new(FaultRecorder::new(c.cluster.nodes));
    let observer: Arc<dyn Observer> = if faulted {
        // Every hook to both (the node recorder's queue and batch figures included).
        Arc::new(ObserverTee(vec![nodes.clone(), frec.clone()]))
    } else {
        nodes.clone()
    };
    let target_box: Box<dyn Target> = match c.cluster.target {
        TargetKind::InProcess => {
            Box::new(InProcess::start_in(c, observer, data_root).map_err(target_err)?)
        }
        TargetKind::Processes | TargetKind::Remote => {
            // The nodes' cluster file, certificates and logs stay with the results.
            let dir = match data_root.and_then(Path::parent) {
                Some(out) => out.join("nodes").join(sanitize(&point.name)),
                None => std::env::temp_dir()
                    .join(format!("raftbench-nodes-{}", std::process::id()))
                    .join(sanitize(&point.name)),
            };
            Box::new(
                NodeProcesses::start(ProcessSetup {
                    config: c,
                    dir: &dir,
                    data_root,
                    observer: faulted.then(|| frec.clone() as Arc<dyn Observer>),
                })
                .map_err(target_err)?,
            )
        }
    };
    // A point that pins its leader sends to it alone (and fails if leadership moves).
    let follower = match target_box.live_handles() {
        Some(h) if faulted && c.cluster.leader.is_none() => {
            Some(Follower::start(h).map_err(|e| harness_err(format!("router thread: {e}")))?)
        }
        _ => None,
    };
    let port = match &follower {
        Some(f) => LoadPort::Following(f.port()),
        None => target_box.port(),
    };
    let commands = || {
        let m = CommandMaker::new(&c.workload, c.seed);
        if traced {
            m.with_unique_keys()
        } else {
            m
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| RunError::Harness {
            point: point.name.clone(),
            reason: format!("answer runtime: {e}"),
        })?;

    let warmup = Duration::from_secs_f64(c.timing.warmup_s);
    let measure = Duration::from_secs_f64(c.timing.measure_s);
    let epoch = target_box.epoch();
    // Load processes start, find the leader and measure the nodes' clocks before their
    // shared schedule begins: give them that long.
    let load_processes = if closed { 0 } else { c.workload.load_processes };
    let lead = if load_processes > 0 {
        LOAD_PROCESS_LEAD
    } else {
        Duration::from_millis(5)
    };
    let start = Instant::now() + lead;
    let window = Window {
        epoch,
        start: (start + warmup).duration_since(epoch),
        end: (start + warmup + measure).duration_since(epoch),
    };
    let (win_start, end) = (window.start_instant(), window.end_instant());
    nodes.set_window(
        Time::from_nanos(window.start.as_nanos() as u64),
        Time::from_nanos(window.end.as_nanos() as u64),
    );

    // Node processes record inside themselves; in process the recorder is in the nodes.
    let unarmed = target_box.arm_recordings(win_start, end, interval);
    let intended = Arc::new(Intended::new(INTENDED_SLOTS));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut replies = ReplyRecorder::new(window, intended.clone(), interval);
    let mut log = ClientLog::new(window);
    let target = &*target_box;
    let frec_ref = &*frec;
    // The open loop's answers all come to this thread; the closed loop's go to its
    // client threads.
    let recorder_tid = cpu::current_tid();

    let cluster_file = target_box.cluster_file();
    let scoped = std::thread::scope(|s| {
        // Several load processes of their own, sharing one schedule start (wall clock).
        let procs = if load_processes > 0 {
            let file = cluster_file.clone().ok_or_else(|| {
                harness_err("workload.load_processes: the target has no cluster file".into())
            })?;
            let out = file
                .parent()
                .map(|d| d.join("load"))
                .unwrap_or_else(|| std::env::temp_dir().join("raftbench-load"));
            let start_at = crate::harness::load_process::unix_ms_now()
                + start.saturating_duration_since(Instant::now()).as_millis() as u64;
            let w = c.workload.clone();
            let bin = raftbench_binary().map_err(target_err)?;
            let h = std::thread::Builder::new()
                .name("rb-load-procs".into())
                .spawn_scoped(s, move || {
                    let mut spawn = LoadSpawn::new(
                        &file,
                        load_processes,
                        &w,
                        start_at,
                        warmup,
                        measure,
                        c.seed,
                        &out,
                    );
                    spawn.bin = bin;
                    spawn.interval = interval;
                    spawn.run()
                })
                .map_err(|e| harness_err(format!("load process thread: {e}")))?;
            Some(h)
        } else {
            None
        };
        let open = if closed || procs.is_some() {
            None
        } else {
            let gen = OpenLoop {
                port: port.clone(),
                answers: tx.clone(),
                intended: intended.clone(),
                start,
                end,
                window,
                rate: c.workload.rate,
                arrival: c.workload.arrival,
                seed: c.seed,
                commands: commands(),
                interval,
            };
            let h = std::thread::Builder::new()
                .name(GENERATOR_THREAD.into())
                .spawn_scoped(s, move || gen.run())
                .map_err(|e| harness_err(format!("generator thread: {e}")))?;
            Some(h)
        };
        // The closed loop's clients, spread over threads that each send and record their
        // own: one thread of clients measures the thread, not the cluster.
        let mut client_handles = Vec::new();
        if closed {
            let clients = c.workload.clients;
            let threads = client_threads(c.workload.client_threads, clients);
            for i in 0..threads {
                let (port, intended) = (port.clone(), intended.clone());
                // Each thread its own key stream, reproducible from the seed.
                let commands = CommandMaker::new(&c.workload, c.seed.wrapping_add(i as u64));
                let n = clients_of_thread(clients, threads, i);
                let h = std::thread::Builder::new()
                    .name(format!("{CLIENT_THREAD_PREFIX}{i}"))
                    .spawn_scoped(s, move || {
                        run_client_thread_with(
                            Backoff::DEFAULT,
                            c.seed.wrapping_add(i as u64),
                            port,
                            n,
                            i,
                            threads,
                            intended,
                            window,
                            commands,
                            (start, end, DRAIN_GRACE),
                            interval,
                        )
                    })
                    .map_err(|e| harness_err(format!("client thread: {e}")))?;
                client_handles.push(h);
            }
        }
        let fault_thread = faulted
            .then(|| s.spawn(move || run_faults(target, &c.faults, win_start, epoch, frec_ref)));
        let counters = s.spawn(move || {
            wait_until(win_start);
            let cpu_before = cpu::snapshot();
            let mut rss = RssSampler::start();
            let b = target.counters();
            // The emulator's error counts from the window's start, as every figure does.
            if let Some(e) = target.emulator() {
                e.take_delivery_error();
            }
            rss.sample_until(end);
            wait_until(end);
            let cpu_after = cpu::snapshot();
            rss.sample();
            let emulator = target
                .emulator()
                .map(|e| (e.take_delivery_error(), e.stats().realtime));
            (
                b,
                target.counters(),
                emulator,
                CpuShares::between(&cpu_before, &cpu_after, recorder_tid),
                rss,
            )
        });
        let total_len = (end - start).as_secs_f64();
        let mut last_progress = Instant::now();
        // A batch's answers arrived together: one clock reading for all of them.
        let mut on_answer = |batch: Vec<Answer>, replies: &mut ReplyRecorder| {
            let got = Instant::now();
            let got_ns = got.saturating_duration_since(epoch).as_nanos() as u64;
            for a in &batch {
                replies.record(a, got);
                if traced {
                    log.record(a, got_ns, intended.get(a.id));
                }
            }
            if got - last_progress > Duration::from_millis(100) {
                last_progress = got;
                progress(((got - start).as_secs_f64() / total_len).clamp(0.0, 1.0));
            }
        };
        let mut client_cpu = 0.0;
        let mut generators = Vec::new();
        let generator = if let Some(procs) = procs {
            while Instant::now() < end {
                progress(((Instant::now() - start).as_secs_f64() / total_len).clamp(0.0, 1.0));
                std::thread::sleep(Duration::from_millis(100).min(end - Instant::now()));
            }
            let parts = procs
                .join()
                .expect("the load process thread does not panic")
                .map_err(|e| harness_err(format!("load processes: {e}")))?;
            let merged =
                merge_parts(&parts).map_err(|e| harness_err(format!("load processes: {e}")))?;
            replies.merge(&merged.replies);
            generators = merged.generators;
            merged.generator
        } else if let Some(open) = open {
            // Until the window ends: record every answer.
            rt.block_on(async {
                while Instant::now() < end {
                    if let Ok(Some(a)) = tokio::time::timeout(POLL, rx.recv()).await {
                        on_answer(a, &mut replies);
                        // Everything already queued without a timer per answer: registering
                        // one per `recv` cost more than recording the answer.
                        while let Ok(a) = rx.try_recv() {
                            on_answer(a, &mut replies);
                        }
                    }
                }
            });
            let generator = open.join().expect("the generator does not panic");
            // Then the answers still due, for at most DRAIN_GRACE (with faults, for as long
            // as the router may still be retrying): what never comes counts as unanswered.
            let drain = if faulted {
                DRAIN_GRACE.max(follow::GIVE_UP + Duration::from_secs(1))
            } else {
                DRAIN_GRACE
            };
            rt.block_on(async {
                while replies.answered < generator.sent && Instant::now() < end + drain {
                    if let Ok(Some(a)) = tokio::time::timeout(POLL, rx.recv()).await {
                        on_answer(a, &mut replies);
                    }
                }
            });
            generator
        } else {
            while Instant::now() < end {
                progress(((Instant::now() - start).as_secs_f64() / total_len).clamp(0.0, 1.0));
                std::thread::sleep(Duration::from_millis(100).min(end - Instant::now()));
            }
            let mut generator = GeneratorReport {
                sent: 0,
                in_window: 0,
                schedule_error: crate::harness::histograms::IntervalHistogram::new(
                    crate::harness::histograms::Unit::Nanos,
                    interval,
                ),
                thread: GeneratorThread::Normal,
                cpu_seconds: None,
                refused: 0,
            };
            for h in client_handles {
                let r = h
                    .join()
                    .expect("a client thread does not panic")
                    .map_err(|e| harness_err(format!("client runtime: {e}")))?;
                replies.merge(&r.replies);
                generator.sent += r.sent;
                generator.in_window += r.in_window;
                client_cpu += r.cpu_seconds;
            }
            generator
        };
        let (before, after, emulator, mut cpu, rss) =
            counters.join().expect("the counter thread does not panic");
        let injected = fault_thread
            .map(|t| t.join().expect("the fault thread does not panic"))
            .unwrap_or_default();
        if closed {
            // Client threads may end before the snapshot at the window's end: their own
            // clocks count instead.
            cpu.process_seconds += client_cpu - cpu.client_seconds;
            cpu.client_seconds = client_cpu;
        }
        Ok((
            generator, before, after, emulator, cpu, injected, generators, rss,
        ))
    });
    let (generator, before, after, emulator, mut cpu, injected, generators, rss) = match scoped {
        Ok(v) => v,
        Err(e) => {
            drop(port);
            drop(follower);
            target_box.stop();
            return Err(e);
        }
    };
    // The generator's thread ends with the window, often before the snapshot at its end
    // is taken: its own clock counts instead.
    if let Some(g) = generator.cpu_seconds {
        cpu.process_seconds += g - cpu.generator_seconds;
        cpu.generator_seconds = g;
    }
    // Node processes spend their CPU outside this process: theirs joins the nodes' share.
    let node_cpu = after.node_cpu.saturating_sub(before.node_cpu).as_secs_f64();
    cpu.node_seconds += node_cpu;
    cpu.process_seconds += node_cpu;
    if cpu.process_seconds > 0.0 {
        cpu.harness_share = cpu.harness_seconds() / cpu.process_seconds;
    }
    let leader = target.leader();
    let sync_floors = target.sync_floors();
    let moved = target.check_leader();
    let (unrecorded, events_dropped) = target.collect_recordings(&nodes);
    let target_info = target.info().map(|mut t| {
        t.recordings_missing = unarmed.into_iter().chain(unrecorded).collect();
        t.node_events_dropped = events_dropped;
        let mb = |rss: &[(NodeId, u64)], id| {
            rss.iter()
                .find(|(n, _)| *n == id)
                .map(|(_, b)| *b as f64 / 1e6)
        };
        for n in &mut t.nodes {
            n.rss_start_mb = mb(&before.node_rss, n.id);
            n.rss_end_mb = mb(&after.node_rss, n.id);
        }
        t
    });
    // Every acknowledged write must be in the log: read each back from the leader now that
    // every fault is undone.
    let correctness = traced.then(|| {
        let value = bytes::Bytes::from(vec![b'v'; c.workload.payload_bytes]);
        let found = rt.block_on(read_back(
            &port,
            &log.acknowledged,
            &value,
            READ_BACK_DEADLINE,
        ));
        Correctness {
            acknowledged_writes: log.acknowledged.len() as u64,
            acknowledged_lost: found.lost,
            unverified: found.unverified,
            unknown_outcome: generator.sent.saturating_sub(log.answered) + log.indeterminate,
        }
    });
    drop(port);
    drop(follower);
    drop(rt);
    target_box.stop();
    if let Some(e) = injected.iter().find_map(|i| i.error.clone()) {
        return Err(RunError::Fault {
            point: point.name.clone(),
            reason: e,
        });
    }
    match moved {
        // A node that died by itself is named in the summary's target.failures, and the
        // point counts as failed (see PointSummary::failed); its figures are still written.
        Err(TargetError::NodeDied(d)) => {
            tracing::error!(point = %point.name, "{d}: the point failed")
        }
        Err(e) if c.cluster.leader.is_some() => return Err(target_err(e)),
        Err(_) if faulted => {}
        Err(e) => {
            tracing::warn!(point = %point.name, error = %e, "the point's figures mix two leaders")
        }
        Ok(()) => {}
    }
    progress(1.0);
    replies.finish();
    let every_entries = snapshot_entries(c);
    let snapshots = (every_entries > 0).then(|| Snapshots {
        every_entries,
        installed: after
            .snapshots_installed
            .saturating_sub(before.snapshots_installed),
        chunks_sent: after.snapshot_chunks.saturating_sub(before.snapshot_chunks),
    });
    let rec = Recorded {
        replies,
        nodes: nodes.take(),
        generator,
        before,
        after,
        leader,
        measured: measure,
        warmup,
        emulator,
        sync_floors,
        cpu: Some(cpu),
    };
    let sent = rec.generator.sent;
    let (mut summary, hists) = summarize(point, rec, floor);
    summary.target = target_info;
    summary.load_processes = generators;
    summary.memory = rss.figures(summary.ok + summary.errors);
    summary.snapshots = snapshots;
    if traced {
        summary.faults = log.analyse(&injected, &frec);
        summary.timeline = Some(log.timeline(&intended, sent, INTENDED_SLOTS));
        summary.correctness = correctness;
    }
    Ok((summary, hists))
}
