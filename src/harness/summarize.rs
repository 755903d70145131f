//! From what a point recorded to what it publishes: a pure function of histograms and
//! counts, so that every figure of `summary.json` is computed in one place and a test can
//! feed it by hand.

use std::time::Duration;

use crate::harness::cpu::CpuShares;
use crate::harness::histograms::{IntervalHistogram, PointHistograms, Unit};
use crate::harness::load::GeneratorReport;
use crate::harness::model::{LagModel, LatencyModel};
use crate::harness::node_recorder::NodeHistograms;
use crate::harness::reply_recorder::{ReplyRecorder, PHASES};
use crate::harness::scenario::{Fault, LoadMode, Point, PointConfig, StorageKind};
use crate::harness::summary::{
    Costs, Floor, FollowerLag, LoadKind, Models, NodeSyncs, Percentiles, Phases, PointSummary,
    Storage, SyncFloorSummary,
};
use crate::harness::target::Counters;
use crate::raft::NodeId;
use crate::server::AppendOrder;
use crate::storage::{SyncFloor, SyncPolicy};

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
    /// The sync floors measured before the point (one writer per node, and a lone
    /// writer), when its nodes keep logs in files.
    pub sync_floors: Vec<SyncFloor>,
    /// CPU over the window by thread group (None where it was not measured).
    pub cpu: Option<CpuShares>,
}

/// An emulator whose p99 delivery error exceeds this, or a tenth of the smallest delay it
/// emulates if larger, invalidates the point.
pub const EMULATOR_LIMIT: Duration = Duration::from_micros(50);

/// The smallest one-way delay (ms) on a link that carries the point's traffic: between
/// `leader` and each follower, both ways, as configured or as a `set_link` fault makes
/// it. Links between followers carry nothing while a leader leads, and the harness's load
/// crosses no client link, so their delays say nothing about the emulator's task. None
/// when no such link is delayed.
pub fn smallest_traffic_delay_ms(c: &PointConfig, leader: NodeId) -> Option<f64> {
    use crate::netem::Endpoint;
    let net = c.network_config();
    let carries = |from: Endpoint, to: Endpoint| {
        (from == Endpoint::Node(leader)) != (to == Endpoint::Node(leader))
            && from != Endpoint::Client
            && to != Endpoint::Client
    };
    let followers = (1..=c.cluster.nodes as NodeId).filter(|&n| n != leader);
    let configured = followers.flat_map(|f| {
        [
            net.settings_for(Endpoint::Node(leader), Endpoint::Node(f)),
            net.settings_for(Endpoint::Node(f), Endpoint::Node(leader)),
        ]
        .map(|s| s.delay_ms)
    });
    let faulted = c.faults.iter().filter_map(|f| match f {
        Fault::SetLink { link, .. } if carries(link.from, link.to) => link.delay_ms,
        _ => None,
    });
    let smallest = configured
        .chain(faulted)
        .filter(|d| *d > 0.0)
        .fold(f64::INFINITY, f64::min);
    smallest.is_finite().then_some(smallest)
}

/// The p99 delivery error (us) above which the emulator invalidates a point:
/// [`EMULATOR_LIMIT`] or a tenth of the smallest delay on a link carrying traffic,
/// whichever is larger.
pub fn emulator_limit_us(c: &PointConfig, leader: NodeId) -> f64 {
    let floor = EMULATOR_LIMIT.as_secs_f64() * 1e6;
    // A tenth of a delay in ms, in us.
    smallest_traffic_delay_ms(c, leader).map_or(floor, |d| floor.max(d * 100.0))
}

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
        sync_floors,
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
    let limit_us = emulator_limit_us(c, leader);
    let emulator_error = emulator.as_ref().map(|(h, _)| Percentiles::of_nanos(h));
    let emulator_invalid = match (&emulator, &emulator_error) {
        (Some((_, realtime)), Some(e)) => !realtime || e.p99 > limit_us,
        _ => false,
    };
    let phase = |i: usize| Percentiles::of_nanos(&r.phases[i].total);
    let summary = PointSummary {
        target: None,
        load_processes: Vec::new(),
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
        overload_refused_unsent: generator.refused,
        // Requests scheduled in the window but not answered count against the point.
        model: floor.as_ref().filter(|f| f.rtt.count > 0).map(|f| {
            let d = Duration::from_secs_f64(
                c.network.delay_ms.max(0.0) / 1e3 + (f.rtt.p50 / 2.0).max(0.0) / 1e6,
            );
            let lag = LagModel::of_point(c, d);
            let lat = LatencyModel::of_point(c, d);
            Models {
                one_way_us: d.as_secs_f64() * 1e6,
                commit_lag_mean_us: lag.mean().as_secs_f64() * 1e6,
                commit_lag_formula: lag.describe().to_string(),
                latency_mean_us: lat.mean().as_secs_f64() * 1e6,
                latency_formula: lat.describe().to_string(),
            }
        }),
        // The point fills it in from its own samples of the process.
        memory: None,
        snapshots: None,
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
            append_messages: per(after.leader_appends.saturating_sub(before.leader_appends)),
            heartbeats: per(after
                .leader_heartbeats
                .saturating_sub(before.leader_heartbeats)),
            commit_notices: per(after.leader_notices.saturating_sub(before.leader_notices)),
            raft_messages: per(after.raft_messages.saturating_sub(before.raft_messages)),
            wire_bytes: per(after.wire_bytes.saturating_sub(before.wire_bytes)),
            cpu_seconds: if ok == 0 {
                0.0
            } else {
                after.cpu.saturating_sub(before.cpu).as_secs_f64() / ok as f64
            },
            node_cpu_seconds: cpu.as_ref().map_or(0.0, |c| per_f(c.node_seconds)),
            harness_cpu_seconds: cpu.as_ref().map_or(0.0, |c| per_f(c.harness_seconds())),
        },
        storage: storage(
            c,
            leader,
            (&before, &after),
            &sync_floors,
            achieved,
            &mut hists,
        ),
        faults: Vec::new(),
        timeline: None,
        correctness: None,
        harness_cpu: cpu,
        config: c.clone(),
        saturation: None,
        quic_stats: after.quic.map(|a| a.since(before.quic.unwrap_or_default())),
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

/// The storage figures of a point with file storage: each node's syncs over the window
/// (the difference of the counters and histograms at its ends) and the floor; their
/// histograms go into `hists` as `sync_latency.nodeN` and `sync_floor`.
fn storage(
    c: &crate::harness::scenario::PointConfig,
    leader: NodeId,
    (before, after): (&Counters, &Counters),
    floors: &[SyncFloor],
    achieved: f64,
    hists: &mut PointHistograms,
) -> Option<Storage> {
    let interval = Duration::from_secs_f64(c.timing.interval_s);
    let st = &c.cluster.storage;
    if st.kind != StorageKind::File {
        return None;
    }
    let mut nodes = Vec::new();
    for (id, end) in &after.syncs {
        let start = before.syncs.iter().find(|(b, _)| b == id).map(|(_, s)| s);
        let mut latency = end.latency_ns.clone();
        // Counts only grow, so the window's histogram is the difference; a node restarted
        // during the window (a fault) has a fresh store whose counts are all in it.
        let (syncs, entries) = match start {
            Some(s)
                if end.syncs >= s.syncs
                    && end.entries >= s.entries
                    && latency.subtract(&s.latency_ns).is_ok() =>
            {
                (end.syncs - s.syncs, end.entries - s.entries)
            }
            _ => {
                latency = end.latency_ns.clone();
                (end.syncs, end.entries)
            }
        };
        nodes.push(NodeSyncs {
            node: *id,
            syncs,
            entries,
            entries_per_sync: if syncs == 0 {
                0.0
            } else {
                entries as f64 / syncs as f64
            },
            sync_latency: Percentiles::of_nanos(&latency),
        });
        let mut ih = IntervalHistogram::new(Unit::Nanos, interval);
        ih.total = latency;
        hists.insert(format!("sync_latency.node{id}"), ih);
    }
    let mut summarize_floor = |f: &SyncFloor, name: &str| {
        let mut ih = IntervalHistogram::new(Unit::Nanos, interval);
        ih.total = f.latency_ns.clone();
        hists.insert(name.into(), ih);
        SyncFloorSummary {
            record_bytes: f.record_bytes,
            writers: f.writers,
            syncs: f.syncs,
            syncs_per_s: f.syncs_per_s(),
            latency: Percentiles::of_nanos(&f.latency_ns),
        }
    };
    let nodes_n = c.cluster.nodes;
    let floor = floors
        .iter()
        .find(|f| f.writers == nodes_n)
        .map(|f| summarize_floor(f, "sync_floor"));
    let floor_solo = floors
        .iter()
        .find(|f| f.writers == 1 && nodes_n != 1)
        .map(|f| summarize_floor(f, "sync_floor_solo"));
    Some(Storage {
        sync: sync_name(st.sync).into(),
        append_order: match st.append_order {
            AppendOrder::SendFirst => "send_first",
            AppendOrder::PersistFirst => "persist_first",
        }
        .into(),
        leader,
        nodes,
        throughput_over_floor: floor
            .as_ref()
            .filter(|f| f.syncs_per_s > 0.0)
            .map(|f| achieved / f.syncs_per_s),
        floor,
        floor_solo,
    })
}

/// A sync policy's name as configuration files spell it.
fn sync_name(p: SyncPolicy) -> &'static str {
    match p {
        SyncPolicy::Fsync => "fsync",
        SyncPolicy::Fdatasync => "fdatasync",
        SyncPolicy::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::load::{GeneratorThread, Intended};
    use crate::harness::node_recorder::NodeRecorder;
    use crate::harness::scenario::{PointConfig, Timing};
    use crate::harness::summary::QuicStats;
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
            sync_floors: Vec::new(),
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
    fn quic_stats_count_the_window_and_models_need_a_floor() {
        let mut rec = recorded(1500, 1500, 10_000);
        rec.before.quic = Some(QuicStats {
            sent_packets: 10,
            lost_packets: 1,
            ..QuicStats::default()
        });
        rec.after.quic = Some(QuicStats {
            sent_packets: 110,
            lost_packets: 4,
            ..QuicStats::default()
        });
        let mut p = point(1000.0);
        p.config.network.delay_ms = 5.0;
        p.config.raft.trigger = crate::raft::ReplicationTrigger::OnTick;
        let floor = Floor {
            rtt: Percentiles {
                count: 100,
                p50: 200.0,
                ..Percentiles::default()
            },
            ..Floor::default()
        };
        let (s, _) = summarize(&p, rec, Some(floor));
        let q = s.quic_stats.unwrap();
        assert_eq!((q.sent_packets, q.lost_packets), (100, 3));
        let m = s.model.unwrap();
        // d = 5 ms + 100 us; on_tick at H = 50 ms: H/2 + 2d.
        assert!((m.one_way_us - 5_100.0).abs() < 1e-6, "{}", m.one_way_us);
        assert!(
            (m.latency_mean_us - 35_200.0).abs() < 1e-6,
            "{}",
            m.latency_mean_us
        );
        assert!((m.commit_lag_mean_us - 44_900.0).abs() < 1e-6);
        assert!(m.latency_formula.starts_with("H/2 + 2d"));
        let (s, _) = summarize(&point(1000.0), recorded(10, 10, 0), None);
        assert!(s.model.is_none() && s.quic_stats.is_none());
    }

    #[test]
    fn the_emulator_limit_uses_only_links_that_carry_traffic() {
        use crate::netem::LinkOverride;
        let mut c = PointConfig::default();
        c.network.delay_ms = 5.0;
        // Followers 2 and 3 talk over 0.1 ms, but never while node 1 leads.
        for (a, b) in [(2, 3), (3, 2)] {
            let mut l = LinkOverride::new(a.into(), b.into());
            l.delay_ms = Some(0.1);
            c.links.push(l);
        }
        assert_eq!(smallest_traffic_delay_ms(&c, 1), Some(5.0));
        assert_eq!(emulator_limit_us(&c, 1), 500.0);
        // With node 2 leading, the 0.1 ms link carries its traffic to node 3.
        assert_eq!(smallest_traffic_delay_ms(&c, 2), Some(0.1));
        assert_eq!(emulator_limit_us(&c, 2), 50.0);
        // A fault that slows nothing but speeds a leader's link up counts.
        let mut l = LinkOverride::new(1.into(), 3.into());
        l.delay_ms = Some(1.0);
        c.faults.push(Fault::SetLink { at_s: 1.0, link: l });
        assert_eq!(smallest_traffic_delay_ms(&c, 1), Some(1.0));
        // No delay anywhere: the fixed limit.
        let c = PointConfig::default();
        assert_eq!(smallest_traffic_delay_ms(&c, 1), None);
        assert_eq!(emulator_limit_us(&c, 1), 50.0);
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

    #[test]
    fn storage_figures_cover_the_window_only_and_judge_against_the_floor() {
        use crate::storage::SyncStats;
        let mut p = point(1000.0);
        p.config.cluster.storage.kind = StorageKind::File;
        let stats = SyncStats::default();
        stats.record(10, 2 * MS); // before the window: left out
        let before = Counters {
            syncs: vec![(1, stats.snapshot())],
            ..Counters::default()
        };
        for _ in 0..4 {
            stats.record(50, 4 * MS);
        }
        let after = Counters {
            syncs: vec![(1, stats.snapshot())],
            ..Counters::default()
        };
        let mut floor_hist =
            hdrhistogram::Histogram::new_with_bounds(1_000, 100_000_000_000, 3).unwrap();
        floor_hist.record(5 * MS).unwrap();
        let floor = SyncFloor {
            policy: SyncPolicy::Fsync,
            record_bytes: 90,
            writers: 3,
            syncs: 600,
            elapsed: Duration::from_secs(1),
            latency_ns: floor_hist.clone(),
        };
        let solo = SyncFloor {
            writers: 1,
            syncs: 50,
            ..floor.clone()
        };
        let mut rec = recorded(1000, 1000, 0);
        rec.before = before;
        rec.after = after;
        rec.sync_floors = vec![floor, solo];
        let (s, hists) = summarize(&p, rec, None);
        let st = s.storage.expect("file storage reports its syncs");
        assert_eq!(st.sync, "fsync");
        assert_eq!(st.nodes.len(), 1);
        assert_eq!(st.nodes[0].syncs, 4);
        assert_eq!(st.nodes[0].entries, 200);
        assert_eq!(st.nodes[0].entries_per_sync, 50.0);
        assert_eq!(st.nodes[0].sync_latency.count, 4);
        let f = st.floor.as_ref().unwrap();
        assert_eq!(f.writers, 3);
        assert_eq!(
            f.syncs_per_s, 200.0,
            "600 cycles by 3 writers in 1 s: 200 per log"
        );
        assert_eq!(st.floor_solo.as_ref().unwrap().syncs_per_s, 50.0);
        // 500 answers in the 1 s window (half the schedule falls in warm-up) over 200 syncs/s.
        let ratio = st.throughput_over_floor.unwrap();
        assert!((ratio - s.achieved_rate / 200.0).abs() < 1e-9, "{ratio}");
        assert!(hists.contains_key("sync_latency.node1"));
        assert!(hists.contains_key("sync_floor"));
        assert!(hists.contains_key("sync_floor_solo"));
    }

    #[test]
    fn memory_storage_reports_no_storage_figures() {
        let (s, _) = summarize(&point(1000.0), recorded(10, 10, 0), None);
        assert!(s.storage.is_none());
    }
}
