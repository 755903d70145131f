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

use crate::harness::faults::{read_back, run_faults, ClientLog, FaultRecorder, Tee};
use crate::harness::follow::{self, Follower};
use crate::harness::histograms::PointHistograms;
use crate::harness::load::{wait_until, ClosedLoop, CommandMaker, Intended, OpenLoop};
use crate::harness::node_recorder::NodeRecorder;
use crate::harness::reply_recorder::ReplyRecorder;
use crate::harness::scenario::{LoadMode, Point};
use crate::harness::summarize::{summarize, Recorded};
use crate::harness::summary::{Correctness, Floor, PointSummary};
use crate::harness::target::{InProcess, LoadPort, Target, TargetError};
use crate::harness::window::Window;
use crate::raft::Time;
use crate::server::Answer;
use crate::server::Observer;

/// How long after the window the harness waits for the last answers.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// How often the answer task looks at the clock while no answer comes.
const POLL: Duration = Duration::from_millis(20);
/// Room for this many requests in flight at once (ids wrap around a ring of intended times).
const INTENDED_SLOTS: usize = 1 << 21;
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
    let frec = Arc::new(FaultRecorder::new(c.cluster.nodes));
    let observer: Arc<dyn Observer> = if faulted {
        Arc::new(Tee(vec![nodes.clone(), frec.clone()]))
    } else {
        nodes.clone()
    };
    let target_box: Box<dyn Target> =
        Box::new(InProcess::start_in(c, observer, data_root).map_err(target_err)?);
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
        if faulted {
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
    let start = Instant::now() + Duration::from_millis(5);
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

    let intended = Arc::new(Intended::new(INTENDED_SLOTS));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut replies = ReplyRecorder::new(window, intended.clone(), interval);
    let mut log = ClientLog::new(window);
    let closed = c.workload.mode == LoadMode::ClosedLoop;
    let target = &*target_box;
    let frec_ref = &*frec;

    let (generator, before, after, emulator, injected) = std::thread::scope(|s| {
        let open = (!closed).then(|| {
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
            s.spawn(move || gen.run())
        });
        let fault_thread = faulted
            .then(|| s.spawn(move || run_faults(target, &c.faults, win_start, epoch, frec_ref)));
        let counters = s.spawn(move || {
            wait_until(win_start);
            let b = target.counters();
            // The emulator's error counts from the window's start, as every figure does.
            if let Some(e) = target.emulator() {
                e.take_delivery_error();
            }
            wait_until(end);
            let emulator = target
                .emulator()
                .map(|e| (e.take_delivery_error(), e.stats().realtime));
            (b, target.counters(), emulator)
        });
        let mut closed_loop = closed.then(|| ClosedLoop {
            port: port.clone(),
            answers: tx.clone(),
            intended: intended.clone(),
            window,
            commands: commands(),
            sent: 0,
            in_window: 0,
        });
        let total_len = (end - start).as_secs_f64();
        let mut last_progress = Instant::now();
        let mut on_answer = |a: Answer, replies: &mut ReplyRecorder| {
            let got = Instant::now();
            replies.record(&a, got);
            if faulted {
                let got_ns = got.saturating_duration_since(epoch).as_nanos() as u64;
                log.record(&a, got_ns, intended.get(a.id));
            }
            if got - last_progress > Duration::from_millis(100) {
                last_progress = got;
                progress(((got - start).as_secs_f64() / total_len).clamp(0.0, 1.0));
            }
            got
        };
        // Until the window ends: record every answer; a closed loop sends the next request.
        rt.block_on(async {
            if let Some(cl) = closed_loop.as_mut() {
                tokio::time::sleep_until(start.into()).await;
                for _ in 0..c.workload.clients {
                    cl.send_one().await;
                }
            }
            while Instant::now() < end {
                let Ok(Some(a)) = tokio::time::timeout(POLL, rx.recv()).await else {
                    continue;
                };
                let got = on_answer(a, &mut replies);
                if let Some(cl) = closed_loop.as_mut() {
                    if got < end {
                        cl.send_one().await;
                    }
                }
            }
        });
        let generator = match (open, &closed_loop) {
            (Some(g), _) => g.join().expect("the generator does not panic"),
            (None, Some(cl)) => cl.report(interval),
            (None, None) => unreachable!("a point has an open or a closed loop"),
        };
        // Then the answers still due, for at most DRAIN_GRACE (with faults, for as long as
        // the router may still be retrying): what never comes counts as unanswered.
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
        let (before, after, emulator) = counters.join().expect("the counter thread does not panic");
        let injected = fault_thread
            .map(|t| t.join().expect("the fault thread does not panic"))
            .unwrap_or_default();
        (generator, before, after, emulator, injected)
    });
    let leader = target.leader();
    let sync_floors = target.sync_floors();
    let moved = target.check_leader();
    // Every acknowledged write must be in the log: read each back from the leader now that
    // every fault is undone.
    let correctness = faulted.then(|| {
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
        Err(e) if c.cluster.leader.is_some() => return Err(target_err(e)),
        Err(_) if faulted => {}
        Err(e) => {
            tracing::warn!(point = %point.name, error = %e, "the point's figures mix two leaders")
        }
        Ok(()) => {}
    }
    progress(1.0);
    replies.finish();
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
    };
    let sent = rec.generator.sent;
    let (mut summary, hists) = summarize(point, rec, floor);
    if faulted {
        summary.faults = log.analyse(&injected, &frec);
        summary.timeline = Some(log.timeline(&intended, sent, INTENDED_SLOTS));
        summary.correctness = correctness;
    }
    Ok((summary, hists))
}
