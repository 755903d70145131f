//! What one run measured, as plain data: the schema of `summary.json`, from which every
//! other output (CSV, plots, report) is drawn, so `raftbench report` can redraw them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::harness::cpu::CpuShares;
use crate::harness::load::GeneratorThread;
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
    /// configured delay, whichever is larger, or no real-time delivery thread): not a valid
    /// point.
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
    /// The configuration of this point, exactly as run.
    pub config: PointConfig,
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
        self.schedule_invalid || self.emulator_invalid
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
