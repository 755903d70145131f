//! From what a point recorded to what it publishes: a pure function of histograms and
//! counts, so that every figure of `summary.json` is computed in one place and a test can
//! feed it by hand.

use std::time::Duration;

use crate::harness::cpu::CpuShares;
use crate::harness::histograms::{IntervalHistogram, PointHistograms, Unit};
use crate::harness::load::GeneratorReport;
use crate::harness::node_recorder::NodeHistograms;
use crate::harness::reply_recorder::{ReplyRecorder, PHASES};
use crate::harness::scenario::{LoadMode, Point};
use crate::harness::summary::{
    Costs, Floor, FollowerLag, LoadKind, Percentiles, Phases, PointSummary,
};
use crate::harness::target::Counters;
use crate::raft::NodeId;

/// A point whose generator was later than this at the 99th percentile is invalid.
pub const SCHEDULE_LIMIT: Duration = Duration::from_millis(1);

/// A point whose achieved rate fell below this fraction of the offered rate is saturated.
pub const SATURATION_FRACTION: f64 = 0.95;

/// Everything a point recorded.
pub struct Recorded {
    /// The client side: latency, phases and answer counts (finished).
    pub replies: ReplyRecorder,
    /// The node side: follower lags, batch sizes, pipeline depths.
    pub nodes: NodeHistograms,
    /// What the generator did.
    pub generator: GeneratorReport,
    /// Target counters at the start of the measured window.
    pub before: Counters,
    /// Target counters at its end.
    pub after: Counters,
    /// The leader during the point.
    pub leader: NodeId,
    /// The measured window's length.
    pub measured: Duration,
    /// The warm-up's length.
    pub warmup: Duration,
    /// The link emulator's delivery error over the window (ns) and whether its delivery
    /// thread ran in a real-time class; None without emulation.
    pub emulator: Option<(hdrhistogram::Histogram<u64>, bool)>,
    /// CPU over the window by thread group (None where it was not measured).
    pub cpu: Option<CpuShares>,
}

/// An emulator whose p99 delivery error exceeds this, or a tenth of the smallest delay it
/// emulates if larger, invalidates the point.
pub const EMULATOR_LIMIT: Duration = Duration::from_micros(50);

/// The point's summary and the histograms its files are written from.
pub fn summarize(
    point: &Point,
    rec: Recorded,
    floor: Option<Floor>,
) -> (PointSummary, PointHistograms) {
    let c = &point.config;
    let closed = c.workload.mode == LoadMode::ClosedLoop;
    let interval = Duration::from_secs_f64(c.timing.interval_s);
    let Recorded {
        replies: r,
        nodes,
        generator,
        before,
        after,
        leader,
        measured,
        warmup,
        emulator,
        cpu,
    } = rec;
    let mut hists = PointHistograms::new();

    let mut commit_all = IntervalHistogram::new(Unit::Nanos, interval);
    let mut apply_all = IntervalHistogram::new(Unit::Nanos, interval);
    let mut followers = Vec::new();
    for (id, commit, apply) in nodes.followers {
        if id == leader {
            continue;
        }
        commit_all.merge(&commit);
        apply_all.merge(&apply);
        followers.push(FollowerLag {
            node: id,
            commit_lag: Percentiles::of_nanos(&commit.total),
            apply_lag: Percentiles::of_nanos(&apply.total),
        });
        hists.insert(format!("commit_lag.node{id}"), commit);
        hists.insert(format!("apply_lag.node{id}"), apply);
    }

    let secs = measured.as_secs_f64();
    let achieved = r.delivered as f64 / secs;
    let ok = r.ok;
    let per = |d: u64| if ok == 0 { 0.0 } else { d as f64 / ok as f64 };
    let per_f = |d: f64| if ok == 0 { 0.0 } else { d / ok as f64 };
    let sched = Percentiles::of_nanos(&generator.schedule_error.total);
    let lat = Percentiles::of_nanos(&r.latency.total);
    let limit_us = {
        let net = c.network_config();
        let smallest = std::iter::once(net.network.delay_ms)
            .chain(net.links.iter().filter_map(|l| l.delay_ms))
            .filter(|d| *d > 0.0)
            .fold(f64::INFINITY, f64::min);
        (EMULATOR_LIMIT.as_secs_f64() * 1e6).max(if smallest.is_finite() {
            smallest * 100.0
        } else {
            0.0
        })
    };
    let emulator_error = emulator.as_ref().map(|(h, _)| Percentiles::of_nanos(h));
    let emulator_invalid = match (&emulator, &emulator_error) {
        (Some((_, realtime)), Some(e)) => !realtime || e.p99 > limit_us,
        _ => false,
    };
    let phase = |i: usize| Percentiles::of_nanos(&r.phases[i].total);
    let summary = PointSummary {
        name: point.name.clone(),
        series: point.series.clone(),
        params: point.params.iter().cloned().collect(),
        load: if closed {
            LoadKind::ClosedLoop
        } else {
            LoadKind::OpenLoop
        },
        offered_rate: if closed { 0.0 } else { c.workload.rate },
        achieved_rate: achieved,
        // Against the load the schedule really offered in the window, so that a Poisson
        // schedule's own variation is not taken for saturation.
        saturated: !closed && achieved < SATURATION_FRACTION * (generator.in_window as f64 / secs),
        schedule_invalid: !closed && sched.p99 > SCHEDULE_LIMIT.as_secs_f64() * 1e6,
        measured_seconds: secs,
        warmup_seconds: warmup.as_secs_f64(),
        ok,
        errors: r.errors + generator.refused,
        overload_errors: r.overload_errors + generator.refused,
        // Requests scheduled in the window but not answered count against the point.
        unanswered: generator
            .in_window
            .saturating_sub(ok + r.errors + generator.refused),
        latency_p50_over_floor: floor
            .as_ref()
            .filter(|f| f.rtt.p50 > 0.0 && lat.count > 0)
            .map(|f| lat.p50 / f.rtt.p50),
        latency_p99_over_floor: floor
            .as_ref()
            .filter(|f| f.rtt.p99 > 0.0 && lat.count > 0)
            .map(|f| lat.p99 / f.rtt.p99),
        floor,
        latency: lat,
        schedule_error: sched,
        generator_thread: generator.thread,
        emulator_error,
        emulator_invalid,
        followers,
        commit_lag: Percentiles::of_nanos(&commit_all.total),
        apply_lag: Percentiles::of_nanos(&apply_all.total),
        phases: Phases {
            queue: phase(0),
            batch_wait: phase(1),
            replication: phase(2),
            apply: phase(3),
            reply: phase(4),
        },
        phase_samples_missing: r.phase_samples_missing,
        phase_sum_mismatch: r.phase_sum_mismatch,
        batch_size: Percentiles::scaled(&nodes.batch_size.total, 1.0),
        pipeline_depth: Percentiles::scaled(&nodes.pipeline_depth.total, 1.0),
        queue_depth: Percentiles::scaled(&nodes.queue_depth.total, 1.0),
        inbox_depth: Percentiles::scaled(&nodes.inbox_depth.total, 1.0),
        per_request: Costs {
            append_messages: per(after.leader_appends - before.leader_appends),
            heartbeats: per(after.leader_heartbeats - before.leader_heartbeats),
            commit_notices: per(after.leader_notices - before.leader_notices),
            raft_messages: per(after.raft_messages - before.raft_messages),
            wire_bytes: per(after.wire_bytes - before.wire_bytes),
            cpu_seconds: if ok == 0 {
                0.0
            } else {
                after.cpu.saturating_sub(before.cpu).as_secs_f64() / ok as f64
            },
            node_cpu_seconds: cpu.as_ref().map_or(0.0, |c| per_f(c.node_seconds)),
            harness_cpu_seconds: cpu.as_ref().map_or(0.0, |c| per_f(c.harness_seconds())),
        },
        harness_cpu: cpu,
        config: c.clone(),
    };
    let ReplyRecorder {
        latency, phases, ..
    } = r;
    hists.insert("latency".into(), latency);
    for (name, h) in PHASES.iter().zip(phases) {
        hists.insert(format!("phase.{name}"), h);
    }
    hists.insert("schedule_error".into(), generator.schedule_error);
    hists.insert("commit_lag".into(), commit_all);
    hists.insert("apply_lag".into(), apply_all);
    hists.insert("batch_size".into(), nodes.batch_size);
    hists.insert("pipeline_depth".into(), nodes.pipeline_depth);
    hists.insert("queue_depth".into(), nodes.queue_depth);
    hists.insert("inbox_depth".into(), nodes.inbox_depth);
    if let Some((h, _)) = emulator {
        let mut ih = IntervalHistogram::new(Unit::Nanos, interval);
        ih.total = h;
        hists.insert("emulator_error".into(), ih);
    }
    (summary, hists)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::load::{GeneratorThread, Intended};
    use crate::harness::node_recorder::NodeRecorder;
    use crate::harness::scenario::{PointConfig, Timing};
    use crate::harness::window::Window;
    use crate::raft::Time;
    use crate::server::{Answer, Trace};
    use std::sync::Arc;
    use std::time::Instant;

    const MS: u64 = 1_000_000;

    fn point(rate: f64) -> Point {
        let mut config = PointConfig::default();
        config.workload.rate = rate;
        config.timing = Timing {
            warmup_s: 1.0,
            measure_s: 1.0,
            interval_s: 1.0,
        };
        Point {
            name: "p".into(),
            series: "s".into(),
            params: Vec::new(),
            config,
        }
    }

    /// A point of `offered` requests scheduled 1 ms apart from t = 0.5 s (half in warm-up),
    /// of which the first `answered` get an answer 100 us after their slot, and a generator
    /// whose lateness is `late_ns` for every send.
    fn recorded(offered: u64, answered: u64, late_ns: u64) -> Recorded {
        let epoch = Instant::now();
        let window = Window {
            epoch,
            start: Duration::from_secs(1),
            end: Duration::from_secs(2),
        };
        let intended = Arc::new(Intended::new(1 << 12));
        let mut replies = ReplyRecorder::new(window, intended.clone(), Duration::from_secs(1));
        let mut err = IntervalHistogram::new(Unit::Nanos, Duration::from_secs(1));
        let mut in_window = 0;
        for id in 0..offered {
            let slot = 500 * MS + id * MS;
            intended.set(id, slot);
            if let Some(off) = window.offset(Duration::from_nanos(slot)) {
                in_window += 1;
                err.record(off, late_ns);
            }
            if id < answered {
                let t = |d: u64| Time::from_nanos(slot + d * 1_000);
                let a = Answer {
                    id,
                    reply: Ok(crate::kv::Output::Done),
                    trace: Some(Trace {
                        index: id + 1,
                        accepted: t(10),
                        sent: t(20),
                        committed: t(80),
                        applied: t(90),
                    }),
                };
                replies.record(&a, epoch + Duration::from_nanos(slot + 100_000));
            }
        }
        replies.finish();
        err.finish();
        Recorded {
            replies,
            nodes: NodeRecorder::new(3, Duration::from_secs(1)).take(),
            generator: GeneratorReport {
                sent: offered,
                in_window,
                schedule_error: err,
                thread: GeneratorThread::Realtime,
                cpu_seconds: None,
                refused: 0,
            },
            before: Counters::default(),
            after: Counters::default(),
            leader: 1,
            measured: Duration::from_secs(1),
            warmup: Duration::from_secs(1),
            emulator: None,
            cpu: None,
        }
    }

    #[test]
    fn warm_up_is_excluded_and_phases_follow_the_trace() {
        let (s, h) = summarize(&point(1000.0), recorded(1500, 1500, 10_000), None);
        // Slots from 0.5 s to 2.0 s: only the 1000 in [1 s, 2 s) count.
        assert_eq!((s.ok, s.unanswered, s.errors), (1000, 0, 0));
        assert_eq!(h["latency"].total.len(), 1000);
        assert!((s.latency.p50 - 100.0).abs() < 0.1, "{}", s.latency.p50);
        assert!((s.phases.replication.p50 - 60.0).abs() < 0.1);
        assert!((s.phases.reply.p50 - 10.0).abs() < 0.1);
        assert_eq!(s.phase_samples_missing, 0);
        assert!(!s.saturated && !s.schedule_invalid);
        assert_eq!(s.generator_thread, GeneratorThread::Realtime);
    }

    #[test]
    fn a_point_below_95_percent_of_its_offered_load_is_saturated() {
        // 1000 offered in the window; answered: 500 in warm-up + 949 in the window.
        let (s, _) = summarize(&point(1000.0), recorded(1500, 1449, 10_000), None);
        assert_eq!(s.unanswered, 51);
        assert!(s.saturated, "achieved {} of 1000/s", s.achieved_rate);
        let (s, _) = summarize(&point(1000.0), recorded(1500, 1451, 10_000), None);
        assert!(!s.saturated, "achieved {} of 1000/s", s.achieved_rate);
    }

    #[test]
    fn a_generator_late_by_more_than_1_ms_at_p99_invalidates_the_point() {
        let (s, _) = summarize(&point(1000.0), recorded(1500, 1500, 1_100_000), None);
        assert!(
            s.schedule_invalid,
            "p99 lateness {} us",
            s.schedule_error.p99
        );
        let (s, _) = summarize(&point(1000.0), recorded(1500, 1500, 900_000), None);
        assert!(
            !s.schedule_invalid,
            "p99 lateness {} us",
            s.schedule_error.p99
        );
    }
}
