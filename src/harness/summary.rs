//! What one run measured, as plain data: the schema of `summary.json`, from which every
//! other output (CSV, plots, report) is drawn, so `raftbench report` can redraw them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::harness::cpu::CpuShares;
use crate::harness::load::GeneratorThread;
use crate::harness::memory::Memory;
use crate::harness::scenario::PointConfig;

/// Percentiles of one histogram, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Smallest sample.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest sample.
    pub max: f64,
}

/// How the load was offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadKind {
    /// Requests at scheduled instants; latency counts from the schedule.
    #[default]
    OpenLoop,
    /// N clients with one request outstanding each; latency counts from the actual send.
    ClosedLoop,
}

/// Follower-side lags of one follower.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FollowerLag {
    /// The follower's id.
    pub node: u64,
    /// From the leader committing an entry to this follower learning it (its commit index reaching it).
    pub commit_lag: Percentiles,
    /// From the leader committing an entry to this follower applying it.
    pub apply_lag: Percentiles,
}

/// Where a request's time went, on average and by percentile (microseconds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// From the scheduled instant to the leader accepting the proposal (generator lag, queues).
    pub queue: Percentiles,
    /// From the proposal to the first AppendEntries carrying it (waiting for a batch or a window slot).
    pub batch_wait: Percentiles,
    /// From that AppendEntries to commit: the round trip to a majority (and followers' disks).
    pub replication: Percentiles,
    /// From commit to the leader applying it.
    pub apply: Percentiles,
    /// From the leader applying it to the client holding the answer.
    pub reply: Percentiles,
}

/// Costs per committed request over the measured window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    /// AppendEntries of all kinds sent by the leader.
    pub append_messages: f64,
    /// Of which heartbeats.
    pub heartbeats: f64,
    /// Of which eager commit notices.
    pub commit_notices: f64,
    /// Every Raft message sent by any node (AppendEntries, responses, votes).
    pub raft_messages: f64,
    /// Bytes the transports put on the wire (frames, all nodes).
    pub wire_bytes: f64,
    /// CPU seconds of the whole process (all nodes, generator and recorder).
    pub cpu_seconds: f64,
    /// CPU seconds of the nodes' threads alone.
    #[serde(default)]
    pub node_cpu_seconds: f64,
    /// CPU seconds of the harness's own threads (generator, recorder, client threads,
    /// link emulator).
    #[serde(default)]
    pub harness_cpu_seconds: f64,
}

/// One sweep point's results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PointSummary {
    /// Unique name within the run, used for file names (`<series>/<knob>=<value>...`).
    pub name: String,
    /// The series the point belongs to.
    pub series: String,
    /// The swept knobs and their values at this point, in sweep order.
    pub params: BTreeMap<String, String>,
    /// Open- or closed-loop.
    pub load: LoadKind,
    /// Requests per second offered (open loop), or 0 (closed loop).
    pub offered_rate: f64,
    /// Successful answers per second that arrived within the measured window (whenever
    /// their requests were scheduled): the throughput delivered.
    pub achieved_rate: f64,
    /// The achieved rate fell below 95% of the offered rate: not a valid latency point.
    pub saturated: bool,
    /// The generator missed its schedule (its p99 lateness exceeded the limit): not a valid point.
    pub schedule_invalid: bool,
    /// Measured window length in seconds (after warm-up).
    pub measured_seconds: f64,
    /// Warm-up length in seconds (excluded).
    pub warmup_seconds: f64,
    /// Requests answered successfully in the window.
    pub ok: u64,
    /// Requests answered with an error in the window.
    pub errors: u64,
    /// Of `errors`, those the leader refused as overloaded (its uncommitted limit or its
    /// request queue was full): offered load pushed back rather than queued.
    #[serde(default)]
    pub overload_errors: u64,
    /// Of `overload_errors`, those the client refused itself, unsent, because the leader
    /// had published no room for them (the rest crossed to the leader and back).
    #[serde(default)]
    pub overload_refused_unsent: u64,
    /// Requests scheduled in the window but never answered.
    pub unanswered: u64,
    /// Client latency.
    pub latency: Percentiles,
    /// The generator's scheduling error: actual send minus intended send.
    pub schedule_error: Percentiles,
    /// The link emulator's delivery error over the window (delivered minus due time), when
    /// the point emulates links.
    #[serde(default)]
    pub emulator_error: Option<Percentiles>,
    /// The emulator missed its schedule (p99 error above 50 us or a tenth of the smallest
    /// delay on a link that carries traffic, between the leader and a follower, whichever
    /// is larger, or no real-time delivery thread): not a valid point.
    #[serde(default)]
    pub emulator_invalid: bool,
    /// How the generator's thread was scheduled (`realtime` or `normal`).
    #[serde(default)]
    pub generator_thread: GeneratorThread,
    /// Commit and apply lag of each follower.
    pub followers: Vec<FollowerLag>,
    /// Commit lag over all followers together.
    pub commit_lag: Percentiles,
    /// Apply lag over all followers together.
    pub apply_lag: Percentiles,
    /// Where the time went.
    pub phases: Phases,
    /// Successful answers in the window whose phases could not be attributed (no trace, or
    /// stamps out of order): every other one gave one sample to every phase. Must be 0.
    #[serde(default)]
    pub phase_samples_missing: u64,
    /// Successful answers whose phases add up to more than 5 us away from their latency.
    #[serde(default)]
    pub phase_sum_mismatch: u64,
    /// Entries per AppendEntries that carried entries (the batch size distribution; not microseconds).
    pub batch_size: Percentiles,
    /// AppendEntries in flight to a follower right after the leader sent one (pipeline depth; not microseconds).
    pub pipeline_depth: Percentiles,
    /// Entries the leader held proposed and not yet committed, sampled once per driver
    /// round (bounded by `raft.max_uncommitted_entries`; not microseconds).
    #[serde(default)]
    pub queue_depth: Percentiles,
    /// Client requests waiting in the leader's inbox, sampled once per driver round (not
    /// microseconds).
    #[serde(default)]
    pub inbox_depth: Percentiles,
    /// Costs per committed request.
    pub per_request: Costs,
    /// Who spent the process's CPU over the window: the nodes or the harness measuring
    /// them (per-thread clocks), when measured.
    #[serde(default)]
    pub harness_cpu: Option<CpuShares>,
    /// The rate-matched floor this point's ratios use, if measured.
    #[serde(default)]
    pub floor: Option<Floor>,
    /// Median client latency over the floor's median, if measured.
    pub latency_p50_over_floor: Option<f64>,
    /// 99th-percentile client latency over the floor's 99th percentile, if measured.
    #[serde(default)]
    pub latency_p99_over_floor: Option<f64>,
    /// Log syncs and the sync floor, when the nodes keep their logs in files.
    #[serde(default)]
    pub storage: Option<Storage>,
    /// Each fault injected, in time order, with what clients and nodes saw of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSummary>,
    /// Answers and offered load per 100 ms over the measured window (points with faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// The read-back after a faulted point: every acknowledged write, read through the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correctness: Option<Correctness>,
    /// The configuration of this point, exactly as run.
    pub config: PointConfig,
    /// The closed-loop probe that found this point's saturation throughput, when the point
    /// runs at a fraction of it (`[base.saturation]`).
    #[serde(default)]
    pub saturation: Option<Saturation>,
    /// QUIC's own counters over the measured window, summed over every node's connections
    /// (QUIC points only).
    #[serde(default)]
    pub quic_stats: Option<QuicStats>,
    /// Each `raftbench load` process that offered this point's load (empty: the harness
    /// offered it), with its own schedule error and CPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_processes: Vec<crate::harness::load_process::GeneratorSummary>,
    /// Where the nodes ran (node processes and remote clusters; None in process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetInfo>,
    /// The sparse-load models of this point's design (follower commit lag and client
    /// latency), when its one-way delay d is known (a floor was measured).
    #[serde(default)]
    pub model: Option<Models>,
    /// The harness process's resident memory over the window (start, end, sampled peak,
    /// growth per request), where it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// State-machine snapshots over the window, when the nodes take them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Snapshots>,
}

/// State-machine snapshots over a point's measured window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshots {
    /// Applied entries between two snapshots of a node (`raft.snapshot_entries`, or the
    /// compaction threshold for points whose faults restart a node or move the leader).
    pub every_entries: u64,
    /// Snapshots that nodes installed from a leader (a node behind the discarded prefix
    /// caught up by InstallSnapshot).
    pub installed: u64,
    /// InstallSnapshot chunks sent.
    pub chunks_sent: u64,
}

/// Where a point's nodes ran, when not in the harness's process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// `processes` or `remote`.
    pub kind: String,
    /// The network namespaces' prefix, when each node ran in one of its own.
    #[serde(default)]
    pub netns: Option<String>,
    /// The cluster file the nodes ran from.
    pub cluster_file: String,
    /// Every node: where it ran and how its clock relates to the harness's.
    pub nodes: Vec<NodeHost>,
    /// Nodes that died without a fault killing them: the point failed.
    #[serde(default)]
    pub failures: Vec<String>,
    /// Nodes whose recording (follower lags, batches, queues) could not be armed or
    /// taken, described: their figures are missing from the point, not invented.
    #[serde(default)]
    pub recordings_missing: Vec<String>,
    /// Commit and apply events the nodes could not keep (past their cap): lag samples
    /// missing from the point, counted.
    #[serde(default)]
    pub node_events_dropped: u64,
}

/// One node of a [`TargetInfo`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeHost {
    /// The node.
    pub id: crate::raft::NodeId,
    /// Its host: its address, or its network namespace.
    pub host: String,
    /// Where peers reached it.
    pub raft_addr: String,
    /// Where clients reached it.
    pub client_addr: String,
    /// Its process id, when the harness started it.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Nanoseconds added to its timestamps to put them on the harness's clock.
    #[serde(default)]
    pub clock_offset_ns: Option<i64>,
    /// The bound on that offset's error (0 on one host: one `CLOCK_MONOTONIC`).
    #[serde(default)]
    pub clock_error_ns: Option<u64>,
    /// Its resident memory at the measured window's start (MB, from its status).
    #[serde(default)]
    pub rss_start_mb: Option<f64>,
    /// Its resident memory at the window's end (MB).
    #[serde(default)]
    pub rss_end_mb: Option<f64>,
}

/// What the models say a point should measure (see `harness::model`): with
/// d = the links' emulated one-way delay + half the rate-matched floor's p50.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Models {
    /// The one-way delay d the models use (us).
    pub one_way_us: f64,
    /// Mean follower commit lag (us).
    pub commit_lag_mean_us: f64,
    /// Its formula.
    pub commit_lag_formula: String,
    /// Mean client latency at sparse load (us).
    pub latency_mean_us: f64,
    /// Its formula.
    pub latency_formula: String,
}

/// What a point's saturation probe found: a closed loop of many clients keeps the
/// cluster's queues full, so its delivered throughput is the most the configuration
/// carries; the point itself then runs open-loop at `fraction` of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Saturation {
    /// Successful answers per second the probe got in its window: the saturation throughput.
    pub throughput: f64,
    /// Closed-loop clients of the probe (one request outstanding each).
    pub clients: usize,
    /// The point's offered rate over `throughput`.
    pub fraction: f64,
    /// The probe's measured window in seconds.
    pub measured_seconds: f64,
    /// The probe's client latency (closed loop: from the send, queueing included).
    pub latency: Percentiles,
    /// The probe's mean entries per AppendEntries.
    pub batch_size_mean: f64,
    /// The probe's mean AppendEntries in flight to a follower after a send.
    pub pipeline_depth_mean: f64,
    /// The probe's link emulator missed its schedule: the throughput is not a valid figure.
    pub invalid: bool,
}

/// QUIC's connection statistics (`quinn::Connection::stats`) summed over connections:
/// what QUIC's loss recovery did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuicStats {
    /// Connections summed (each node's side of each link counts once).
    pub connections: u64,
    /// QUIC packets sent.
    pub sent_packets: u64,
    /// Packets QUIC declared lost (their data is retransmitted in new packets).
    pub lost_packets: u64,
    /// Bytes of the packets declared lost.
    pub lost_bytes: u64,
    /// Congestion events (window reductions).
    pub congestion_events: u64,
    /// UDP datagrams sent.
    pub udp_datagrams_sent: u64,
    /// STREAM frames sent (retransmitted data goes out in new STREAM frames).
    pub stream_frames_sent: u64,
    /// ACK frames sent.
    pub ack_frames_sent: u64,
    /// PING frames sent (QUIC's probes after a timeout).
    pub ping_frames_sent: u64,
}

impl QuicStats {
    /// The sum of `self` and `other` (two connections' counters together).
    pub fn plus(self, o: QuicStats) -> QuicStats {
        QuicStats {
            connections: self.connections + o.connections,
            sent_packets: self.sent_packets + o.sent_packets,
            lost_packets: self.lost_packets + o.lost_packets,
            lost_bytes: self.lost_bytes + o.lost_bytes,
            congestion_events: self.congestion_events + o.congestion_events,
            udp_datagrams_sent: self.udp_datagrams_sent + o.udp_datagrams_sent,
            stream_frames_sent: self.stream_frames_sent + o.stream_frames_sent,
            ack_frames_sent: self.ack_frames_sent + o.ack_frames_sent,
            ping_frames_sent: self.ping_frames_sent + o.ping_frames_sent,
        }
    }

    /// What happened between `before` and `self` (counters that went back, as when a
    /// connection was replaced, count as 0); `connections` is the later count.
    pub fn since(self, before: QuicStats) -> QuicStats {
        QuicStats {
            connections: self.connections,
            sent_packets: self.sent_packets.saturating_sub(before.sent_packets),
            lost_packets: self.lost_packets.saturating_sub(before.lost_packets),
            lost_bytes: self.lost_bytes.saturating_sub(before.lost_bytes),
            congestion_events: self
                .congestion_events
                .saturating_sub(before.congestion_events),
            udp_datagrams_sent: self
                .udp_datagrams_sent
                .saturating_sub(before.udp_datagrams_sent),
            stream_frames_sent: self
                .stream_frames_sent
                .saturating_sub(before.stream_frames_sent),
            ack_frames_sent: self.ack_frames_sent.saturating_sub(before.ack_frames_sent),
            ping_frames_sent: self
                .ping_frames_sent
                .saturating_sub(before.ping_frames_sent),
        }
    }

    /// One connection's counters, as quinn reports them.
    pub fn of_connection(c: &quinn::ConnectionStats) -> QuicStats {
        QuicStats {
            connections: 1,
            sent_packets: c.path.sent_packets,
            lost_packets: c.path.lost_packets,
            lost_bytes: c.path.lost_bytes,
            congestion_events: c.path.congestion_events,
            udp_datagrams_sent: c.udp_tx.datagrams,
            stream_frames_sent: c.frame_tx.stream,
            ack_frames_sent: c.frame_tx.acks,
            ping_frames_sent: c.frame_tx.ping,
        }
    }

    /// The sum over `conns`.
    pub fn sum<'a>(conns: impl IntoIterator<Item = &'a quinn::ConnectionStats>) -> QuicStats {
        conns
            .into_iter()
            .map(QuicStats::of_connection)
            .fold(QuicStats::default(), QuicStats::plus)
    }

    /// Lost packets over sent packets (0 when nothing was sent).
    pub fn loss_fraction(&self) -> f64 {
        if self.sent_packets == 0 {
            0.0
        } else {
            self.lost_packets as f64 / self.sent_packets as f64
        }
    }
}

/// Durability figures of a point whose nodes keep their logs in files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    /// The sync policy: `fsync`, `fdatasync` or `none`.
    pub sync: String,
    /// `send_first` or `persist_first`.
    pub append_order: String,
    /// The node that led during the point.
    pub leader: u64,
    /// Each node's log syncs over the measured window.
    pub nodes: Vec<NodeSyncs>,
    /// Write + sync loops on the same file system, one writer per node at once (the
    /// point's own concurrency), with records of the point's size, measured just before
    /// the point: the floor the ratio uses.
    pub floor: Option<SyncFloorSummary>,
    /// The same loop with one writer alone: on some disks far slower than with company.
    #[serde(default)]
    pub floor_solo: Option<SyncFloorSummary>,
    /// Committed requests per second over the floor's write + sync cycles per second: how
    /// many commits group commit and batching fit in what one sync per commit would allow.
    pub throughput_over_floor: Option<f64>,
}

/// One node's log syncs over a measured window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSyncs {
    /// The node.
    pub node: u64,
    /// Syncs run.
    pub syncs: u64,
    /// Entries those syncs made durable.
    pub entries: u64,
    /// Entries per sync, on average.
    pub entries_per_sync: f64,
    /// Duration of each sync.
    pub sync_latency: Percentiles,
}

/// A sync floor (see [`Storage::floor`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncFloorSummary {
    /// Bytes per record written.
    pub record_bytes: usize,
    /// Writers at once, each on its own file.
    pub writers: usize,
    /// Write + sync cycles done, all writers together.
    pub syncs: u64,
    /// Cycles per second of one writer.
    pub syncs_per_s: f64,
    /// Duration of each write + sync.
    pub latency: Percentiles,
}

/// One injected fault and its effect.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSummary {
    /// `kill_leader`, `stop_leader`, ... as in the scenario.
    pub kind: String,
    /// Seconds after the measured window's start it was injected (as scheduled).
    pub at_s: f64,
    /// The node it hit (None for link faults).
    pub node: Option<u64>,
    /// Milliseconds the fault lasted (until the restart, resume or heal); 0 if not undone.
    pub duration_ms: f64,
    /// From the fault to the first answer, as the client holds it, of a request committed
    /// after the fault: how long clients saw no commit. None if none came in the window.
    pub unavailability_ms: Option<f64>,
    /// From the fault to a node becoming leader in a later term than the one at the fault;
    /// None if leadership did not move.
    pub elect_ms: Option<f64>,
    /// The node that won that election.
    pub new_leader: Option<u64>,
    /// For a restarted node: from its restart to its commit index reaching the commit
    /// index the leader had at the restart. None if it did not within the window.
    pub catch_up_ms: Option<f64>,
    /// The longest time clients held no successful answer, from the fault to a second
    /// after it ended (ms): the outage even when a few commits slip out right after the
    /// fault (a full disk stops its node only at its next write).
    #[serde(default)]
    pub max_gap_ms: f64,
    /// Worst client latency of a request scheduled within a second after the fault (ms).
    pub latency_max_ms: Option<f64>,
    /// Successful answers per second in the second before the fault.
    pub ok_rate_before: f64,
    /// Successful answers per second from the fault to its end (or the next second).
    pub ok_rate_during: f64,
    /// Successful answers per second in the second after the fault ended.
    pub ok_rate_after: f64,
}

/// Client-side counts per time bin over the measured window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Bin width in milliseconds.
    pub bin_ms: f64,
    /// Successful answers that arrived in each bin.
    pub ok: Vec<u64>,
    /// Error answers that arrived in each bin (after the client's retries).
    pub errors: Vec<u64>,
    /// Requests scheduled in each bin.
    pub offered: Vec<u64>,
}

/// What the read-back after a faulted point found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Correctness {
    /// Writes acknowledged to the client (each a Put of a key of its own), warm-up included.
    pub acknowledged_writes: u64,
    /// Acknowledged writes that a linearizable read from the leader did not find: must be 0.
    pub acknowledged_lost: u64,
    /// Acknowledged writes that could not be read back (the reads failed): unverified.
    pub unverified: u64,
    /// Requests sent whose fate the client does not know: never answered, or answered
    /// "leadership lost" after its last retry (Jepsen's indeterminate).
    pub unknown_outcome: u64,
}

/// The machine and build a run happened on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// CPU model.
    pub cpu: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Compiler that built the binary.
    pub rustc: String,
    /// Git revision of the source (with `-dirty` if it had uncommitted changes).
    pub git_revision: String,
    /// Build profile (release or debug).
    pub profile: String,
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// Host name.
    pub host: String,
}

/// A raw transport round trip measured in the same run: the physical floor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// `quic`, `tcp` or `mem` through our transports; `quic-raw`, `tcp-raw` for plain quinn and TCP.
    pub transport: String,
    /// The runtime arrangement it was measured in (`per_node` or `shared`): a thread
    /// hand-off per direction costs far more on an idle VM than on a busy one.
    #[serde(default)]
    pub threading: String,
    /// Payload bytes per ping.
    pub payload_bytes: usize,
    /// Round-trip times.
    pub rtt: Percentiles,
}

/// The floor one point is judged against: the raw round trip of its transport, measured in
/// the same run with the point's own arrival process and rate (so as idle, or as busy, as
/// the point's nodes are) and its threading.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// `quic-raw`, `tcp-raw` or `mem-raw`.
    pub transport: String,
    /// `per_node` or `shared`.
    pub threading: String,
    /// Pings per second offered (0: back to back, as for a closed loop).
    pub rate: f64,
    /// `poisson` or `constant` (empty when back to back).
    pub arrival: String,
    /// Bytes per ping.
    pub payload_bytes: usize,
    /// Round-trip times.
    pub rtt: Percentiles,
}

/// A whole run: what `summary.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Scenario name (the results directory's name).
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Master seed.
    pub seed: u64,
    /// The scenario file's text, verbatim.
    pub scenario_text: String,
    /// Machine and build.
    pub environment: Environment,
    /// Transport round trips measured in this run.
    pub baselines: Vec<Baseline>,
    /// One entry per sweep point, in run order.
    pub points: Vec<PointSummary>,
}

impl PointSummary {
    /// Whether the generator or the link emulator missed its schedule: not a valid point.
    pub fn invalid(&self) -> bool {
        self.schedule_invalid || self.emulator_invalid || self.failed()
    }

    /// Whether a node died during the point without a fault killing it.
    pub fn failed(&self) -> bool {
        self.target.as_ref().is_some_and(|t| !t.failures.is_empty())
    }
}

impl Percentiles {
    /// Percentiles of `h`, whose values are nanoseconds, in microseconds.
    pub fn of_nanos(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
        Percentiles::scaled(h, 1e-3)
    }

    /// Percentiles of `h` with each value multiplied by `scale`.
    pub fn scaled(h: &hdrhistogram::Histogram<u64>, scale: f64) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |p: f64| h.value_at_quantile(p) as f64 * scale;
        Percentiles {
            count: h.len(),
            mean: h.mean() * scale,
            min: h.min() as f64 * scale,
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: h.max() as f64 * scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_stats_sum_over_connections_and_difference_over_the_window() {
        let mut a = quinn::ConnectionStats::default();
        a.path.sent_packets = 100;
        a.path.lost_packets = 3;
        a.path.lost_bytes = 3000;
        a.frame_tx.stream = 90;
        let mut b = quinn::ConnectionStats::default();
        b.path.sent_packets = 50;
        b.path.congestion_events = 2;
        b.udp_tx.datagrams = 50;
        b.frame_tx.ping = 1;
        let sum = QuicStats::sum([&a, &b]);
        assert_eq!(sum.connections, 2);
        assert_eq!(
            (sum.sent_packets, sum.lost_packets, sum.lost_bytes),
            (150, 3, 3000)
        );
        assert_eq!((sum.congestion_events, sum.udp_datagrams_sent), (2, 50));
        assert_eq!((sum.stream_frames_sent, sum.ping_frames_sent), (90, 1));
        assert!((sum.loss_fraction() - 0.02).abs() < 1e-12);
        let before = QuicStats {
            sent_packets: 40,
            lost_packets: 1,
            // A replaced connection can leave a later sum below an earlier one.
            ping_frames_sent: 5,
            ..QuicStats::default()
        };
        let d = sum.since(before);
        assert_eq!(
            (d.sent_packets, d.lost_packets, d.ping_frames_sent),
            (110, 2, 0)
        );
        assert_eq!(d.connections, 2);
        assert_eq!(QuicStats::default().loss_fraction(), 0.0);
    }
}
