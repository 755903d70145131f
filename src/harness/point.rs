//! Runs one sweep point: start the target, offer the load, record both sides, summarize.
//!
//! The data's way through a point: a [`Target`] (the cluster) with a [`NodeRecorder`]
//! inside its nodes; a load ([`OpenLoop`] on a thread of its own, or a [`ClosedLoop`] on
//! the answer task) that sends to the leader; a [`ReplyRecorder`] that turns each answer
//! and the trace it carries into latency and phases; and [`summarize`], which turns what
//! both recorders hold into the point's summary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::harness::histograms::PointHistograms;
use crate::harness::load::{wait_until, ClosedLoop, CommandMaker, Intended, OpenLoop};
use crate::harness::node_recorder::NodeRecorder;
use crate::harness::reply_recorder::ReplyRecorder;
use crate::harness::scenario::{Fault, LoadMode, Point};
use crate::harness::summarize::{summarize, Recorded};
use crate::harness::summary::{Floor, PointSummary};
use crate::harness::target::{InProcess, Target, TargetError};
use crate::harness::window::Window;
use crate::raft::Time;
use crate::server::Answer;

/// How long after the window the harness waits for the last answers.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// How often the answer task looks at the clock while no answer comes.
const POLL: Duration = Duration::from_millis(20);
/// Room for this many requests in flight at once (ids wrap around a ring of intended times).
const INTENDED_SLOTS: usize = 1 << 21;

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
}

/// Applies fault `f` to `target` now.
fn inject(target: &dyn Target, f: &Fault) {
    let emulator = || {
        target
            .emulator()
            .expect("a point with link faults starts its cluster with the emulator")
    };
    match f {
        Fault::StallLeader { duration_ms, .. } => {
            target.stall_leader(Duration::from_secs_f64(duration_ms / 1e3))
        }
        Fault::SetLink { link, .. } => emulator().update_link(link),
        Fault::Partition { nodes, .. } => emulator().partition(nodes),
        Fault::Heal { .. } => emulator().heal(),
    }
    tracing::info!(fault = ?f, "fault injected");
}

/// Runs one point. `floor` is the rate-matched raw round trip of the point's transport,
/// if measured. `progress` is called with the fraction of the point done.
pub fn run_point(
    point: &Point,
    floor: Option<Floor>,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(PointSummary, PointHistograms), RunError> {
    let c = &point.config;
    let target_err = |source| RunError::Target {
        point: point.name.clone(),
        source,
    };
    let interval = Duration::from_secs_f64(c.timing.interval_s);
    let nodes = Arc::new(NodeRecorder::new(c.cluster.nodes, interval));
    let target_box: Box<dyn Target> =
        Box::new(InProcess::start(c, nodes.clone()).map_err(target_err)?);
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
    let closed = c.workload.mode == LoadMode::ClosedLoop;
    let target = &*target_box;

    let (generator, before, after, emulator) = std::thread::scope(|s| {
        let open = (!closed).then(|| {
            let gen = OpenLoop {
                port: target.port(),
                answers: tx.clone(),
                intended: intended.clone(),
                start,
                end,
                window,
                rate: c.workload.rate,
                arrival: c.workload.arrival,
                seed: c.seed,
                commands: CommandMaker::new(&c.workload, c.seed),
                interval,
            };
            s.spawn(move || gen.run())
        });
        if !c.faults.is_empty() {
            let mut faults = c.faults.clone();
            faults.sort_by(|a, b| a.at_s().total_cmp(&b.at_s()));
            s.spawn(move || {
                for f in faults {
                    wait_until(win_start + Duration::from_secs_f64(f.at_s()));
                    inject(target, &f);
                }
            });
        }
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
            port: target.port(),
            answers: tx.clone(),
            intended: intended.clone(),
            window,
            commands: CommandMaker::new(&c.workload, c.seed),
            sent: 0,
            in_window: 0,
        });
        let total_len = (end - start).as_secs_f64();
        let mut last_progress = Instant::now();
        let mut on_answer = |a: Answer, replies: &mut ReplyRecorder| {
            let got = Instant::now();
            replies.record(&a, got);
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
        // Then the answers still due, for at most DRAIN_GRACE: what never comes counts as
        // unanswered.
        rt.block_on(async {
            while replies.answered < generator.sent && Instant::now() < end + DRAIN_GRACE {
                if let Ok(Some(a)) = tokio::time::timeout(POLL, rx.recv()).await {
                    on_answer(a, &mut replies);
                }
            }
        });
        let (before, after, emulator) = counters.join().expect("the counter thread does not panic");
        (generator, before, after, emulator)
    });
    let leader = target.leader();
    let sync_floors = target.sync_floors();
    let moved = target.check_leader();
    drop(rt);
    target_box.stop();
    match moved {
        Err(e) if c.cluster.leader.is_some() => return Err(target_err(e)),
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
    Ok(summarize(point, rec, floor))
}
