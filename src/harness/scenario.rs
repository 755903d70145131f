//! Scenarios as files: one typed, validated configuration per sweep point, expanded from
//! a scenario file's `base` and its `series` of sweeps.
//!
//! ```toml
//! name = "default"
//! seed = 1
//! [base.workload]
//! rate = 200
//! [[series]]
//! name = "sparse-dense"
//! sweep = [
//!   { knob = "workload.rate", values = [200, 20000] },
//!   { knob = "raft.commit_mode", values = ["piggyback", "eager"] },
//! ]
//! ```
//!
//! Every key of a point can be swept: a knob is the dotted path of a key in the point
//! configuration. The sweeps of one series form a cartesian product. An unknown key, a
//! value of the wrong type or an impossible value is refused with a message that names
//! the file and the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cluster::Threading;
use crate::config::ConfigFileError;
use crate::netem::{Endpoint, LinkOverride, LinkSettings, NetemError, NetworkConfig};
use crate::raft::{Config, NodeId};
use crate::server::AppendOrder;
use crate::storage::SyncPolicy;
use crate::transport::{MemMode, QuicSettings, TransportKind, TransportSettings};

/// The cluster under test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// Number of nodes (default 3).
    pub nodes: usize,
    /// `quic` (default), `tcp` or `mem`.
    pub transport: TransportKind,
    /// `per_node` (default: a thread and current-thread runtime per node) or `shared`.
    pub threading: Threading,
    /// For the memory transport: `move` (default) or `encode`.
    pub mem_mode: MemMode,
    /// QUIC parameters.
    pub quic: QuicSettings,
    /// Queue and frame limits of the network transports.
    pub transport_settings: TransportSettings,
    /// The node that must lead every point (none: whichever wins). It is favoured in the
    /// first election; a point fails if another node leads or leadership moves during it.
    pub leader: Option<NodeId>,
    /// A node whose state machine is slow: `{ node = 3, cost_us = 1000.0 }` makes each
    /// entry it applies take that much longer (its thread sleeps), to show that when a
    /// follower applies does not change client latency (the lecture's L6).
    pub slow_apply: Option<SlowApply>,
    /// Microseconds the leader's driver keeps polling for input before it parks its
    /// thread (default 0: it parks at once). Trades CPU for thread wake-ups on a sparse
    /// commit's path; the CPU it costs shows in the point's CPU per request. In process only.
    pub busy_poll_us: f64,
    /// Whether followers poll for `busy_poll_us` too (default false: only the leader).
    pub busy_poll_followers: bool,
    /// Where the nodes keep their logs (`[base.cluster.storage]`): in memory (the default)
    /// or in files synced with group commit.
    pub storage: StorageSection,
    /// Where the nodes run: `in_process` (default: threads of the harness), `processes`
    /// (`raftbench node` processes the harness starts on this host) or `remote` (an
    /// existing cluster of node processes, named by `remote`, that the harness only loads
    /// and measures).
    pub target: TargetKind,
    /// With `target = "remote"`: the cluster file that names the nodes (relative to the
    /// scenario file). Its certificate directory must hold a client certificate.
    pub remote: Option<PathBuf>,
    /// With `target = "processes"`: run node N in network namespace `<netns>-nN` and the
    /// harness's clients in `<netns>-load` (as `raftbench netns up --prefix <netns>` makes
    /// them; root only), so that every byte crosses veth pairs and a bridge.
    pub netns: Option<String>,
}

/// Where a point's nodes run (see [`ClusterSection::target`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Threads of the harness's own process.
    #[default]
    InProcess,
    /// `raftbench node` processes on this host, started and stopped by the harness.
    Processes,
    /// Node processes someone else runs, named by a cluster file.
    Remote,
}

impl TargetKind {
    /// The name a scenario file uses.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::InProcess => "in_process",
            TargetKind::Processes => "processes",
            TargetKind::Remote => "remote",
        }
    }
}

/// The kind of log store every node of a point uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// Logs in memory: nothing touches a disk. A node that a fault kills keeps its store,
    /// as a disk keeps its files: what it had stored (its vote, every entry it
    /// acknowledged) survives the kill.
    #[default]
    Memory,
    /// A [`crate::storage::FileStore`] per node with group commit, in a directory made for
    /// the point (under `dir`, or else under the run's output as `data/`) and removed after it.
    File,
}

/// Durable logs for a point (see [`ClusterSection::storage`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// `memory` (default) or `file`.
    pub kind: StorageKind,
    /// With `file`: `fsync` (default), `fdatasync` or `none` (NOT durable).
    pub sync: SyncPolicy,
    /// With `file`: `send_first` (default: the leader sends before its own sync returns,
    /// Raft thesis 10.2.1) or `persist_first`.
    pub append_order: AppendOrder,
    /// With `file`: the directory under which each point gets a fresh data directory,
    /// removed after the point (default: `data/` in the run's output directory, else the
    /// system's temporary directory). Put it on the disk you mean to measure.
    pub dir: Option<PathBuf>,
    /// With `file`: seconds of sync floor (one writer, write + sync of one record of the
    /// point's size, in the same directory) measured before each point; 0 skips it.
    pub floor_s: f64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            kind: StorageKind::Memory,
            sync: SyncPolicy::Fsync,
            append_order: AppendOrder::SendFirst,
            dir: None,
            floor_s: 1.0,
        }
    }
}

/// One node's apply cost (see [`ClusterSection::slow_apply`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowApply {
    /// The node.
    pub node: NodeId,
    /// Extra microseconds per applied entry.
    pub cost_us: f64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            nodes: 3,
            transport: TransportKind::Quic,
            threading: Threading::PerNode,
            mem_mode: MemMode::Move,
            quic: QuicSettings::default(),
            transport_settings: TransportSettings::default(),
            leader: None,
            slow_apply: None,
            busy_poll_us: 0.0,
            busy_poll_followers: false,
            storage: StorageSection::default(),
            target: TargetKind::InProcess,
            remote: None,
            netns: None,
        }
    }
}

/// How requests are offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// Requests at scheduled instants, whatever the answers do (latency from the schedule).
    OpenLoop,
    /// `clients` clients, one request outstanding each (latency from the send; labelled so).
    ClosedLoop,
}

/// How scheduled instants are spaced in open loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Exactly 1/rate apart.
    Constant,
    /// Exponentially distributed gaps with mean 1/rate (a Poisson process), from the seed.
    Poisson,
}

/// The requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// `open_loop` (default) or `closed_loop`.
    pub mode: LoadMode,
    /// Open loop: requests per second (default 200).
    pub rate: f64,
    /// Open loop: `constant` (default) or `poisson` spacing.
    pub arrival: Arrival,
    /// Closed loop: number of clients (default 1).
    pub clients: usize,
    /// Closed loop: threads the clients are spread over, each sending and recording its
    /// own clients' requests, so that the loop measures the cluster rather than one
    /// generator thread (default 0: one per core; never more than `clients`).
    pub client_threads: usize,
    /// Bytes of each Put's value (default 64).
    pub payload_bytes: usize,
    /// Fraction of requests that are Gets, 0 to 1 (default 0).
    pub get_fraction: f64,
    /// Number of distinct keys (default 10,000).
    pub keys: u64,
    /// Open loop against node processes: `raftbench load` processes that share the rate
    /// (each `rate / n`, seed + i), their histograms merged exactly (default 0: the load
    /// comes from the harness's own process).
    pub load_processes: usize,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            mode: LoadMode::OpenLoop,
            rate: 200.0,
            arrival: Arrival::Constant,
            clients: 1,
            client_threads: 0,
            payload_bytes: 64,
            get_fraction: 0.0,
            keys: 10_000,
            load_processes: 0,
        }
    }
}

/// How long each point runs (the `timing` table; `phases` is accepted as its old name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// Seconds of load before measuring (excluded from every result; default 2).
    pub warmup_s: f64,
    /// Seconds measured (default 5).
    pub measure_s: f64,
    /// Interval of the `.hlog` interval histograms, in seconds (default 1).
    pub interval_s: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            warmup_s: 2.0,
            measure_s: 5.0,
            interval_s: 1.0,
        }
    }
}

/// A fault injected at a time in the measured window (`[[base.faults]]`, each with `kind`
/// and `at_s`, seconds after the window starts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Block the leader's thread for `duration_ms`, as a garbage-collection pause or a stuck
    /// disk would.
    StallLeader {
        /// When.
        at_s: f64,
        /// How long.
        duration_ms: f64,
    },
    /// Change the knobs of one directed link (`link = { from = 1, to = 3, delay_ms = 20 }`):
    /// the moment a follower slows down, or its link starts losing.
    SetLink {
        /// When.
        at_s: f64,
        /// The link and the knobs that change.
        link: LinkOverride,
    },
    /// Cut `nodes` (node ids, or `"client"`) off from everyone else, both ways.
    Partition {
        /// When.
        at_s: f64,
        /// One side of the cut.
        nodes: Vec<Endpoint>,
    },
    /// Undo every partition.
    Heal {
        /// When.
        at_s: f64,
    },
    /// The leader's node dies abruptly (as SIGKILL: no graceful shutdown, its requests in
    /// flight never answered) and restarts from its store `restart_after_s` later.
    KillLeader {
        /// When.
        at_s: f64,
        /// Seconds until it restarts.
        restart_after_s: f64,
    },
    /// The leader's thread is frozen (as SIGSTOP) for `duration_s`, then resumes.
    StopLeader {
        /// When.
        at_s: f64,
        /// How long.
        duration_s: f64,
    },
    /// A follower dies abruptly and restarts from its store `down_s` later.
    RestartFollower {
        /// When.
        at_s: f64,
        /// Seconds it stays down.
        down_s: f64,
    },
    /// The leader is cut off from every other node for `duration_s` (by the link emulator
    /// when it is in the path, otherwise by dropping at the transports).
    PartitionLeader {
        /// When.
        at_s: f64,
        /// How long.
        duration_s: f64,
    },
    /// Every log sync of the leader (or of `node`) takes `sync_ms` longer for `duration_s`.
    SlowDisk {
        /// When.
        at_s: f64,
        /// How long.
        duration_s: f64,
        /// Extra milliseconds per sync.
        sync_ms: f64,
        /// The node whose disk slows (default: the leader at `at_s`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<NodeId>,
        /// Slow every node's disk instead (a shared disk, or a cluster-wide hiccup): with
        /// group commit a slow leader alone is outvoted by its followers' disks.
        #[serde(default)]
        all_nodes: bool,
    },
    /// The leader's disk is full for `duration_s`: every write fails (ENOSPC), so the node
    /// stops as on any store error; it restarts from its store when the disk has room again.
    FillDisk {
        /// When.
        at_s: f64,
        /// How long.
        duration_s: f64,
    },
}

/// Reads `faults` as a list of [`Fault`]s, or as the single-stall table of earlier versions.
fn faults_list_or_legacy_table<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Fault>, D::Error> {
    struct Faults;
    impl<'de> serde::de::Visitor<'de> for Faults {
        type Value = Vec<Fault>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of faults ([[base.faults]] with `kind` and `at_s`)")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Vec<Fault>, A::Error> {
            Vec::<Fault>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Vec<Fault>, A::Error> {
            #[derive(Deserialize)]
            #[serde(default, deny_unknown_fields)]
            struct Legacy {
                leader_stall_ms: f64,
                leader_stall_at_s: f64,
            }
            impl Default for Legacy {
                fn default() -> Legacy {
                    Legacy {
                        leader_stall_ms: 0.0,
                        leader_stall_at_s: 0.0,
                    }
                }
            }
            let l = Legacy::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
            Ok(if l.leader_stall_ms > 0.0 {
                vec![Fault::StallLeader {
                    at_s: l.leader_stall_at_s,
                    duration_ms: l.leader_stall_ms,
                }]
            } else {
                Vec::new()
            })
        }
    }
    d.deserialize_any(Faults)
}

impl Fault {
    /// Seconds after the window starts.
    pub fn at_s(&self) -> f64 {
        match self {
            Fault::StallLeader { at_s, .. }
            | Fault::SetLink { at_s, .. }
            | Fault::Partition { at_s, .. }
            | Fault::Heal { at_s }
            | Fault::KillLeader { at_s, .. }
            | Fault::StopLeader { at_s, .. }
            | Fault::RestartFollower { at_s, .. }
            | Fault::PartitionLeader { at_s, .. }
            | Fault::SlowDisk { at_s, .. }
            | Fault::FillDisk { at_s, .. } => *at_s,
        }
    }

    /// Seconds from `at_s` until the fault is undone (a restart, a resume, a heal); 0 for
    /// faults that are not undone by themselves.
    pub fn duration_s(&self) -> f64 {
        match self {
            Fault::StallLeader { duration_ms, .. } => duration_ms / 1e3,
            Fault::KillLeader {
                restart_after_s: d, ..
            }
            | Fault::StopLeader { duration_s: d, .. }
            | Fault::RestartFollower { down_s: d, .. }
            | Fault::PartitionLeader { duration_s: d, .. }
            | Fault::SlowDisk { duration_s: d, .. }
            | Fault::FillDisk { duration_s: d, .. } => *d,
            Fault::SetLink { .. } | Fault::Partition { .. } | Fault::Heal { .. } => 0.0,
        }
    }

    /// The fault's kind as the scenario names it (`kill_leader`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::StallLeader { .. } => "stall_leader",
            Fault::SetLink { .. } => "set_link",
            Fault::Partition { .. } => "partition",
            Fault::Heal { .. } => "heal",
            Fault::KillLeader { .. } => "kill_leader",
            Fault::StopLeader { .. } => "stop_leader",
            Fault::RestartFollower { .. } => "restart_follower",
            Fault::PartitionLeader { .. } => "partition_leader",
            Fault::SlowDisk { .. } => "slow_disk",
            Fault::FillDisk { .. } => "fill_disk",
        }
    }

    /// Whether the fault acts on links, so the emulator must be in the path.
    pub fn needs_emulator(&self) -> bool {
        matches!(
            self,
            Fault::SetLink { .. } | Fault::Partition { .. } | Fault::Heal { .. }
        )
    }

    /// Whether the fault is meant to take leadership away (so the point cannot pin a leader).
    pub fn moves_leader(&self) -> bool {
        matches!(
            self,
            Fault::KillLeader { .. }
                | Fault::StopLeader { .. }
                | Fault::PartitionLeader { .. }
                | Fault::FillDisk { .. }
        )
    }

    /// Whether the fault kills a node and restarts it from its store.
    pub fn restarts_a_node(&self) -> bool {
        matches!(
            self,
            Fault::KillLeader { .. } | Fault::RestartFollower { .. } | Fault::FillDisk { .. }
        )
    }

    /// Whether the fault acts through a wrapper around the nodes' log stores.
    pub fn needs_disk_control(&self) -> bool {
        matches!(self, Fault::SlowDisk { .. } | Fault::FillDisk { .. })
    }
}

/// Everything one sweep point runs with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PointConfig {
    /// The cluster.
    pub cluster: ClusterSection,
    /// The core's knobs.
    pub raft: Config,
    /// The requests.
    pub workload: Workload,
    /// Warm-up and measured window.
    #[serde(alias = "phases")]
    pub timing: Timing,
    /// Faults injected during the measured window, in any order. (The table of earlier
    /// versions, `leader_stall_ms` and `leader_stall_at_s`, is still read, so that older
    /// `summary.json` files can be redrawn.)
    #[serde(deserialize_with = "faults_list_or_legacy_table")]
    pub faults: Vec<Fault>,
    /// Link emulation on every link, one way (`[base.network]`: `delay_ms`, `jitter_ms`,
    /// `loss`, ...); the default emulates nothing and keeps the emulator out of the path.
    pub network: LinkSettings,
    /// Directed links that override `network` (`[[base.links]]` with `from`, `to` and the
    /// same knobs; an end is a node id or `"client"`).
    pub links: Vec<LinkOverride>,
    /// Seed of everything random in the point (arrivals, keys, election timeouts);
    /// 0 (the default) takes the scenario's seed.
    pub seed: u64,
    /// Run the point at a fraction of its own saturation throughput, found first by a
    /// closed-loop probe on a fresh cluster of the same configuration
    /// (`[base.saturation]`: `clients`, `warmup_s`, `measure_s`, `fraction`); the point
    /// then runs open loop at `fraction` times the probe's throughput, whatever
    /// `workload.mode` and `workload.rate` say.
    pub saturation: Option<SaturationProbe>,
}

/// How a point finds its saturation throughput (see [`PointConfig::saturation`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaturationProbe {
    /// Closed-loop clients, one request outstanding each (default 4096): enough to keep
    /// every window and batch full, i.e. more than the throughput times the round trip.
    pub clients: usize,
    /// Seconds of the probe before it measures (default 1).
    pub warmup_s: f64,
    /// Seconds the probe measures (default 2).
    pub measure_s: f64,
    /// The point's open-loop rate as a fraction of the throughput found (default 0.5).
    pub fraction: f64,
}

impl Default for SaturationProbe {
    fn default() -> Self {
        SaturationProbe {
            clients: 4096,
            warmup_s: 1.0,
            measure_s: 2.0,
            fraction: 0.5,
        }
    }
}

impl PointConfig {
    /// The point's links as the emulator takes them.
    pub fn network_config(&self) -> NetworkConfig {
        NetworkConfig {
            network: self.network.clone(),
            links: self.links.clone(),
        }
    }
}

/// One sweep dimension: a knob and the values it takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Dotted path of the key, e.g. `workload.rate` or `raft.heartbeat_ms`.
    pub knob: String,
    /// Values, in run order.
    pub values: Vec<toml::Value>,
}

/// A group of points: fixed overrides plus sweeps whose product gives the points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    /// Name (used in point names and plot titles).
    pub name: String,
    /// Overrides applied to the base for every point of the series (dotted keys).
    #[serde(default)]
    pub set: toml::Table,
    /// Sweep dimensions; none means a single point.
    #[serde(default)]
    pub sweep: Vec<Sweep>,
}

/// A scenario file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name: results go to `results/<name>/`.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Master seed (each point's `seed` defaults to it).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Measure the raw and transport round trips first (default true).
    #[serde(default = "yes")]
    pub baseline: bool,
    /// Configuration shared by every point.
    #[serde(default)]
    pub base: PointConfig,
    /// The series of points.
    pub series: Vec<Series>,
}

fn default_seed() -> u64 {
    1
}
fn yes() -> bool {
    true
}

/// One expanded point: its name, series, swept values and configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Unique within the scenario.
    pub name: String,
    /// The series it belongs to.
    pub series: String,
    /// Swept knob = value, in sweep order.
    pub params: Vec<(String, String)>,
    /// The configuration, validated.
    pub config: PointConfig,
}

/// A scenario, read and expanded.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file as parsed.
    pub file: ScenarioFile,
    /// The file's text, for the record.
    pub text: String,
    /// Where it came from.
    pub path: PathBuf,
    /// Every point, in run order.
    pub points: Vec<Point>,
}

fn invalid(path: &Path, key: impl Into<String>, reason: impl Into<String>) -> ConfigFileError {
    ConfigFileError::Invalid {
        path: path.to_owned(),
        key: key.into(),
        reason: reason.into(),
    }
}

/// Sets `path` (dotted) in `table` to `value`; refuses a path the table does not have,
/// since every key of a point is present once the defaults are serialized.
fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let mut parts = path.split('.').peekable();
    let mut cur = table;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            // Option fields without a value are absent from the serialized defaults; allow
            // setting a key that is missing only if its parent table exists.
            cur.insert(p.to_string(), value);
            return Ok(());
        }
        cur = match cur.get_mut(p) {
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(format!("`{p}` is a value, not a table")),
            None => return Err(format!("no such key `{p}`")),
        };
    }
    Err("empty knob".into())
}

fn value_label(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Scenario {
    /// Reads, expands and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ConfigFileError> {
        Scenario::load_with(path, &[])
    }

    /// Reads a scenario file and overrides keys of its base (`--set knob=value`): each
    /// value is read as TOML (`500`, `2.5`, `true`, `"eager"`), and as a string if it is
    /// not valid TOML (`eager`).
    pub fn load_with(
        path: &Path,
        overrides: &[(String, String)],
    ) -> Result<Scenario, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Scenario::parse_with(path, &text, overrides)
    }

    /// Expands scenario `text` (as if read from `path`).
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ConfigFileError> {
        Scenario::parse_with(path, text, &[])
    }

    /// Expands scenario `text` (as if read from `path`) with `overrides` of its base.
    pub fn parse_with(
        path: &Path,
        text: &str,
        overrides: &[(String, String)],
    ) -> Result<Scenario, ConfigFileError> {
        let mut file: ScenarioFile =
            toml::from_str(text).map_err(|source| ConfigFileError::Parse {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        if file.base.seed == 0 {
            file.base.seed = file.seed;
        }
        if file.series.is_empty() {
            return Err(invalid(path, "series", "must list at least one series"));
        }
        let mut base = toml::Table::try_from(&file.base).expect("a point config serializes");
        for (k, raw) in overrides {
            let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.clone()));
            set_path(&mut base, k, value).map_err(|r| invalid(path, format!("--set {k}"), r))?;
        }
        let mut points = Vec::new();
        for (si, series) in file.series.iter().enumerate() {
            let mut table = base.clone();
            for (k, v) in &series.set {
                set_path(&mut table, k, v.clone())
                    .map_err(|r| invalid(path, format!("series[{si}].set.{k}"), r))?;
            }
            // The cartesian product of the sweeps, first sweep outermost.
            let mut combos: Vec<Vec<(usize, usize)>> = vec![Vec::new()];
            for (wi, sw) in series.sweep.iter().enumerate() {
                if sw.values.is_empty() {
                    return Err(invalid(
                        path,
                        format!("series[{si}].sweep[{wi}].values"),
                        "must list at least one value",
                    ));
                }
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        (0..sw.values.len()).map(move |vi| {
                            let mut c = c.clone();
                            c.push((wi, vi));
                            c
                        })
                    })
                    .collect();
            }
            for combo in combos {
                let mut t = table.clone();
                let mut params = Vec::new();
                for &(wi, vi) in &combo {
                    let sw = &series.sweep[wi];
                    let v = sw.values[vi].clone();
                    params.push((sw.knob.clone(), value_label(&v)));
                    set_path(&mut t, &sw.knob, v).map_err(|r| {
                        invalid(
                            path,
                            format!("series[{si}].sweep[{wi}].knob = {}", sw.knob),
                            r,
                        )
                    })?;
                }
                let key_of = |what: String| {
                    if combo.is_empty() {
                        format!("series[{si}]{what}")
                    } else {
                        format!("series[{si}] ({}){what}", fmt_params(&params))
                    }
                };
                let mut config: PointConfig =
                    toml::Value::Table(t)
                        .try_into()
                        .map_err(|e: toml::de::Error| {
                            invalid(path, key_of(String::new()), e.message().to_string())
                        })?;
                // A remote cluster file is named relative to the scenario, as a cluster
                // file names its certificates relative to itself.
                if let Some(r) = config.cluster.remote.as_mut().filter(|r| r.is_relative()) {
                    if let Some(dir) = path.parent() {
                        *r = dir.join(&*r);
                    }
                }
                validate_point(&config)
                    .map_err(|(k, r)| invalid(path, key_of(format!(": {k}")), r))?;
                let name = if params.is_empty() {
                    series.name.clone()
                } else {
                    format!("{}/{}", series.name, fmt_params(&params))
                };
                points.push(Point {
                    name,
                    series: series.name.clone(),
                    params,
                    config,
                });
            }
        }
        let mut names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(
                path,
                "series",
                format!("two points are both named `{}`", w[0]),
            ));
        }
        Ok(Scenario {
            file,
            text: text.to_string(),
            path: path.to_owned(),
            points,
        })
    }
}

fn fmt_params(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a scenario may not name `"client"` in a link or a link fault.
const NO_CLIENT_LINKS: &str = "names \"client\", but the harness's load generator hands \
     requests to the leader inside the process and crosses no client link, so it would \
     shape nothing (client links shape only the cluster client of cluster files); \
     emulate the links between nodes instead";

/// Checks one point; the error is (key, reason).
pub fn validate_point(c: &PointConfig) -> Result<(), (String, String)> {
    let bad = |k: &str, r: String| Err((k.to_string(), r));
    if c.cluster.nodes == 0 {
        return bad("cluster.nodes", "must be at least 1".into());
    }
    if let Some(s) = &c.cluster.slow_apply {
        if s.node == 0 || s.node > c.cluster.nodes as NodeId {
            return bad(
                "cluster.slow_apply.node",
                format!("{} is not a node of 1..={}", s.node, c.cluster.nodes),
            );
        }
        if !(s.cost_us.is_finite() && s.cost_us >= 0.0) {
            return bad(
                "cluster.slow_apply.cost_us",
                format!("must be a non-negative number, got {}", s.cost_us),
            );
        }
    }
    let bp = c.cluster.busy_poll_us;
    if !(bp.is_finite() && (0.0..=100_000.0).contains(&bp)) {
        return bad(
            "cluster.busy_poll_us",
            format!("must be between 0 and 100000 microseconds, got {bp}"),
        );
    }
    let st = &c.cluster.storage;
    if !(st.floor_s.is_finite() && (0.0..=60.0).contains(&st.floor_s)) {
        return bad(
            "cluster.storage.floor_s",
            format!("must be between 0 and 60 seconds, got {}", st.floor_s),
        );
    }
    if let Some(l) = c.cluster.leader {
        if l == 0 || l > c.cluster.nodes as NodeId {
            return bad(
                "cluster.leader",
                format!("{l} is not a node of 1..={}", c.cluster.nodes),
            );
        }
        if c.raft.heartbeat_interval * 4 > c.raft.election_timeout {
            return bad(
                "cluster.leader",
                "needs raft.heartbeat_ms at most a quarter of raft.election_timeout_ms, so that the preferred node times out first".into(),
            );
        }
    }
    c.raft
        .validate()
        .map_err(|e| (format!("raft.{}", e.field), e.reason))?;
    let w = &c.workload;
    if w.mode == LoadMode::OpenLoop && !(w.rate.is_finite() && w.rate > 0.0) {
        return bad("workload.rate", format!("must be above 0, got {}", w.rate));
    }
    if w.mode == LoadMode::ClosedLoop && w.clients == 0 {
        return bad("workload.clients", "must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&w.get_fraction) {
        return bad(
            "workload.get_fraction",
            format!("must be within 0..=1, got {}", w.get_fraction),
        );
    }
    if w.keys == 0 {
        return bad("workload.keys", "must be at least 1".into());
    }
    if let Some(sat) = &c.saturation {
        if sat.clients == 0 {
            return bad("saturation.clients", "must be at least 1".into());
        }
        for (k, v) in [
            ("saturation.warmup_s", sat.warmup_s),
            ("saturation.measure_s", sat.measure_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(k, format!("must be a non-negative number, got {v}"));
            }
        }
        if sat.measure_s <= 0.0 {
            return bad("saturation.measure_s", "must be above 0".into());
        }
        if !(sat.fraction.is_finite() && sat.fraction > 0.0 && sat.fraction <= 1.0) {
            return bad(
                "saturation.fraction",
                format!("must be within (0, 1], got {}", sat.fraction),
            );
        }
    }
    let p = &c.timing;
    for (k, v) in [
        ("timing.warmup_s", p.warmup_s),
        ("timing.measure_s", p.measure_s),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return bad(k, format!("must be a non-negative number, got {v}"));
        }
    }
    if p.measure_s <= 0.0 {
        return bad("timing.measure_s", "must be above 0".into());
    }
    if !(p.interval_s.is_finite() && p.interval_s > 0.0) {
        return bad("timing.interval_s", "must be above 0".into());
    }
    let net = c.network_config();
    net.validate()
        .and_then(|()| net.check_nodes(c.cluster.nodes))
        .map_err(|NetemError::Invalid { key, reason }| (key, reason))?;
    // The harness's load hands requests to the leader in process: a client link would
    // shape nothing, and the run would look as if it did.
    for (i, l) in c.links.iter().enumerate() {
        for (end, e) in [("from", l.from), ("to", l.to)] {
            if e == Endpoint::Client {
                return bad(&format!("links[{i}].{end}"), NO_CLIENT_LINKS.into());
            }
        }
    }
    for (i, f) in c.faults.iter().enumerate() {
        let at = f.at_s();
        if !(at.is_finite() && at >= 0.0) {
            return bad(
                &format!("faults[{i}].at_s"),
                format!("must be a non-negative number, got {at}"),
            );
        }
        let d = f.duration_s();
        if !(d.is_finite() && d >= 0.0) {
            return bad(
                &format!("faults[{i}] ({})", f.kind()),
                format!("its duration must be a non-negative number, got {d}"),
            );
        }
        if !matches!(f, Fault::StallLeader { .. }) && at + d > p.measure_s {
            return bad(
                &format!("faults[{i}] ({})", f.kind()),
                format!(
                    "ends at {} s, after the measured window (timing.measure_s = {})",
                    at + d,
                    p.measure_s
                ),
            );
        }
        if f.moves_leader() {
            if let Some(l) = c.cluster.leader {
                return bad(
                    "cluster.leader",
                    format!(
                        "is pinned to node {l}, but faults[{i}] ({}) takes leadership away; leave cluster.leader unset",
                        f.kind()
                    ),
                );
            }
        }
        if (f.restarts_a_node() || f.moves_leader()) && c.cluster.threading == Threading::Shared {
            return bad(
                &format!("faults[{i}] ({})", f.kind()),
                "needs cluster.threading = \"per_node\": a node on the shared runtime cannot be killed or frozen alone".into(),
            );
        }
        if f.restarts_a_node() && c.cluster.nodes < 3 {
            return bad(
                &format!("faults[{i}] ({})", f.kind()),
                format!("needs at least 3 nodes, so that the others keep a majority; cluster.nodes = {}", c.cluster.nodes),
            );
        }
        match f {
            Fault::SlowDisk { sync_ms, node, .. } => {
                if !(sync_ms.is_finite() && *sync_ms >= 0.0) {
                    return bad(
                        &format!("faults[{i}].sync_ms"),
                        format!("must be a non-negative number, got {sync_ms}"),
                    );
                }
                if let Some(n) = node {
                    if *n == 0 || *n > c.cluster.nodes as NodeId {
                        return bad(
                            &format!("faults[{i}].node"),
                            format!("{n} is not a node of 1..={}", c.cluster.nodes),
                        );
                    }
                }
            }
            Fault::FillDisk { .. } if c.cluster.storage.kind != StorageKind::File => {
                return bad(
                    &format!("faults[{i}] (fill_disk)"),
                    "needs cluster.storage.kind = \"file\"".into(),
                );
            }
            _ => {}
        }
        match f {
            Fault::StallLeader { duration_ms, .. }
                if !(duration_ms.is_finite() && *duration_ms >= 0.0) =>
            {
                return bad(
                    &format!("faults[{i}].duration_ms"),
                    format!("must be a non-negative number, got {duration_ms}"),
                );
            }
            Fault::SetLink { link, .. }
                if link.from == Endpoint::Client || link.to == Endpoint::Client =>
            {
                return bad(&format!("faults[{i}].link"), NO_CLIENT_LINKS.into());
            }
            Fault::Partition { nodes, .. } if nodes.contains(&Endpoint::Client) => {
                return bad(&format!("faults[{i}].nodes"), NO_CLIENT_LINKS.into());
            }
            Fault::SetLink { link, .. } => NetworkConfig {
                network: LinkSettings::default(),
                links: vec![link.clone()],
            }
            .validate()
            .and_then(|()| {
                NetworkConfig {
                    network: LinkSettings::default(),
                    links: vec![link.clone()],
                }
                .check_nodes(c.cluster.nodes)
            })
            .map_err(|NetemError::Invalid { key, reason }| {
                (format!("faults[{i}].link ({key})"), reason)
            })?,
            Fault::Partition { nodes, .. } => {
                for n in nodes {
                    if let Endpoint::Node(id) = n {
                        if *id == 0 || *id > c.cluster.nodes as NodeId {
                            return bad(
                                &format!("faults[{i}].nodes"),
                                format!(
                                    "names node {id}, but the cluster has nodes 1..={}",
                                    c.cluster.nodes
                                ),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    validate_target(c)
}

/// What a point outside the harness's process can and cannot do: every refusal names
/// the key, so that a scenario never silently measures something else than it says.
fn validate_target(c: &PointConfig) -> Result<(), (String, String)> {
    let bad = |k: &str, r: String| Err((k.to_string(), r));
    let kind = c.cluster.target;
    if kind == TargetKind::InProcess {
        if c.cluster.remote.is_some() {
            return bad("cluster.remote", "needs cluster.target = \"remote\"".into());
        }
        if c.cluster.netns.is_some() {
            return bad(
                "cluster.netns",
                "needs cluster.target = \"processes\"".into(),
            );
        }
        if c.workload.load_processes > 0 {
            return bad(
                "workload.load_processes",
                "load processes need node processes: cluster.target = \"processes\" or \"remote\""
                    .into(),
            );
        }
        return Ok(());
    }
    let name = kind.name();
    if c.cluster.transport == TransportKind::Mem {
        return bad(
            "cluster.transport",
            format!("the memory transport exists only in process, not with target = \"{name}\""),
        );
    }
    if c.cluster.slow_apply.is_some() {
        return bad(
            "cluster.slow_apply",
            format!("only in process (target = \"{name}\" cannot slow a node's apply)"),
        );
    }
    if c.cluster.busy_poll_us != 0.0 {
        return bad(
            "cluster.busy_poll_us",
            format!("only in process (target = \"{name}\" runs its nodes' drivers as they are)"),
        );
    }
    if c.cluster.leader.is_some() {
        return bad(
            "cluster.leader",
            format!("only in process (target = \"{name}\" cannot favour a node in elections)"),
        );
    }
    match kind {
        TargetKind::Remote => {
            if c.cluster.remote.is_none() {
                return bad(
                    "cluster.remote",
                    "target = \"remote\" needs the cluster file of the running nodes".into(),
                );
            }
            if c.cluster.netns.is_some() {
                return bad(
                    "cluster.netns",
                    "needs cluster.target = \"processes\"".into(),
                );
            }
            if !c.faults.is_empty() {
                return bad(
                    "faults",
                    "target = \"remote\" only measures: the harness does not control the nodes"
                        .into(),
                );
            }
        }
        TargetKind::Processes => {
            if c.cluster.remote.is_some() {
                return bad("cluster.remote", "needs cluster.target = \"remote\"".into());
            }
            if c.cluster.netns.is_some() && c.cluster.nodes != crate::netns::NODE_HOSTS as usize {
                return bad(
                    "cluster.nodes",
                    format!(
                        "cluster.netns has {} node hosts, the point asks for {} nodes",
                        crate::netns::NODE_HOSTS,
                        c.cluster.nodes
                    ),
                );
            }
            for (i, f) in c.faults.iter().enumerate() {
                if !matches!(
                    f,
                    Fault::KillLeader { .. }
                        | Fault::StopLeader { .. }
                        | Fault::RestartFollower { .. }
                ) {
                    return bad(
                        &format!("faults[{i}]"),
                        "node processes take kill_leader, stop_leader and restart_follower \
                         (signals); this kind needs target = \"in_process\""
                            .into(),
                    );
                }
                if f.restarts_a_node() && c.cluster.storage.kind == StorageKind::Memory {
                    return bad(
                        &format!("faults[{i}]"),
                        "a node process restarted on memory storage comes back empty; \
                         set cluster.storage.kind = \"file\""
                            .into(),
                    );
                }
            }
        }
        TargetKind::InProcess => {}
    }
    if c.workload.load_processes > 0 {
        if c.workload.mode != LoadMode::OpenLoop {
            return bad(
                "workload.load_processes",
                "load processes run open loops; set workload.mode = \"open_loop\"".into(),
            );
        }
        if !c.faults.is_empty() {
            return bad(
                "workload.load_processes",
                "a faulted point reads back every acknowledged write from the harness's own \
                 clients; use load_processes = 0"
                    .into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Scenario, String> {
        Scenario::parse(Path::new("bench-configs/x.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn sweeps_form_a_product_in_order() {
        let s = parse(
            r#"
name = "t"
[[series]]
name = "a"
sweep = [ { knob = "workload.rate", values = [100, 1000] },
          { knob = "raft.commit_mode", values = ["piggyback", "eager"] } ]
[[series]]
name = "hb"
set = { "raft.heartbeat_ms" = 5.0 }
"#,
        )
        .unwrap();
        let names: Vec<_> = s.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "a/rate=100,commit_mode=piggyback",
                "a/rate=100,commit_mode=eager",
                "a/rate=1000,commit_mode=piggyback",
                "a/rate=1000,commit_mode=eager",
                "hb"
            ]
        );
        assert_eq!(s.points[3].config.workload.rate, 1000.0);
        assert_eq!(
            s.points[4].config.raft.heartbeat_interval,
            Duration::from_millis(5)
        );
        assert_eq!(s.points[0].config.seed, 1, "points inherit the master seed");
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        let e = parse("name = \"t\"\n[base.raft]\nheartbeat = 5\n[[series]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(e.contains("x.toml") && e.contains("heartbeat"), "{e}");
        let e = parse("name = \"t\"\n[[series]]\nname = \"a\"\nsweep = [{ knob = \"raft.hearbeat_ms\", values = [1] }]\n")
            .unwrap_err();
        assert!(e.contains("x.toml") && e.contains("hearbeat_ms"), "{e}");
        let e = parse("name = \"t\"\n[[series]]\nname = \"a\"\nsweep = [{ knob = \"rafts.heartbeat_ms\", values = [1] }]\n")
            .unwrap_err();
        assert!(e.contains("rafts"), "{e}");
    }

    #[test]
    fn wrong_types_and_impossible_values_are_named() {
        let e = parse("name = \"t\"\n[base.workload]\nrate = \"fast\"\n[[series]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(e.contains("x.toml") && e.contains("rate"), "{e}");
        let e =
            parse("name = \"t\"\n[base.raft]\nheartbeat_ms = 600.0\n[[series]]\nname = \"a\"\n")
                .unwrap_err();
        assert!(e.contains("raft.heartbeat_ms"), "{e}");
        let e = parse("name = \"t\"\n[[series]]\nname = \"a\"\nsweep = [{ knob = \"raft.max_inflight_msgs\", values = [4, 0] }]\n")
            .unwrap_err();
        assert!(
            e.contains("raft.max_inflight_msgs") && e.contains("max_inflight_msgs=0"),
            "{e}"
        );
        let e = parse("name = \"t\"\n[[series]]\nname = \"a\"\nsweep = [{ knob = \"raft.commit_mode\", values = [\"loud\"] }]\n")
            .unwrap_err();
        assert!(e.contains("loud"), "{e}");
        let e =
            parse("name = \"t\"\n[base.cluster]\nbusy_poll_us = -5.0\n[[series]]\nname = \"a\"\n")
                .unwrap_err();
        assert!(
            e.contains("cluster.busy_poll_us") && e.contains("-5"),
            "{e}"
        );
        let e = parse("name = \"t\"\n[base.cluster]\nbusy_poll_us = 50.0\ntarget = \"processes\"\n[[series]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(
            e.contains("cluster.busy_poll_us") && e.contains("only in process"),
            "{e}"
        );
        let s = parse("name = \"t\"\n[[series]]\nname = \"a\"\nsweep = [{ knob = \"cluster.busy_poll_us\", values = [0, 200] }]\n")
            .unwrap();
        assert_eq!(s.points[1].config.cluster.busy_poll_us, 200.0);
    }

    #[test]
    fn faults_are_a_list_and_the_old_stall_table_still_reads() {
        let s = parse("name = \"t\"\n[[base.faults]]\nkind = \"heal\"\nat_s = 1.5\n[[base.faults]]\nkind = \"stall_leader\"\nat_s = 0.5\nduration_ms = 200.0\n[[series]]\nname = \"a\"\n").unwrap();
        assert_eq!(
            s.points[0].config.faults,
            [
                Fault::Heal { at_s: 1.5 },
                Fault::StallLeader {
                    at_s: 0.5,
                    duration_ms: 200.0
                }
            ]
        );
        let s = parse("name = \"t\"\n[base.faults]\nleader_stall_ms = 200\nleader_stall_at_s = 0.8\n[[series]]\nname = \"a\"\n").unwrap();
        assert_eq!(
            s.points[0].config.faults,
            [Fault::StallLeader {
                at_s: 0.8,
                duration_ms: 200.0
            }]
        );
        let e = parse("name = \"t\"\n[[base.faults]]\nkind = \"explode\"\nat_s = 1\n[[series]]\nname = \"a\"\n").unwrap_err();
        assert!(e.contains("explode"), "{e}");
    }

    #[test]
    fn client_links_are_refused_since_the_load_crosses_none() {
        let e = parse("name = \"t\"\n[[base.links]]\nfrom = \"client\"\nto = 1\ndelay_ms = 5.0\n[[series]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(
            e.contains("links[0].from") && e.contains("client link"),
            "{e}"
        );
        let e = parse("name = \"t\"\n[[series]]\nname = \"a\"\nset = { links = [ { from = 1, to = 2, delay_ms = 1.0 }, { from = 1, to = \"client\", delay_ms = 1.0 } ] }\n")
            .unwrap_err();
        assert!(e.contains("links[1].to"), "{e}");
        let e = parse("name = \"t\"\n[[base.faults]]\nkind = \"partition\"\nat_s = 1.0\nnodes = [\"client\"]\n[[series]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(e.contains("faults[0].nodes"), "{e}");
        let e = parse("name = \"t\"\n[[base.faults]]\nkind = \"set_link\"\nat_s = 1.0\nlink = { from = \"client\", to = 1, delay_ms = 2.0 }\n[[series]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(e.contains("faults[0].link"), "{e}");
        // Links between nodes still run.
        parse("name = \"t\"\n[[base.links]]\nfrom = 1\nto = 2\ndelay_ms = 5.0\n[[series]]\nname = \"a\"\n").unwrap();
    }

    #[test]
    fn saturation_knobs_are_read_and_checked() {
        let s = parse("name = \"t\"\n[base.saturation]\nclients = 64\n[[series]]\nname = \"a\"\nsweep = [{ knob = \"saturation.fraction\", values = [0.25] }]\n").unwrap();
        let sat = s.points[0].config.saturation.as_ref().unwrap();
        assert_eq!((sat.clients, sat.fraction, sat.measure_s), (64, 0.25, 2.0));
        let e =
            parse("name = \"t\"\n[base.saturation]\nfraction = 1.5\n[[series]]\nname = \"a\"\n")
                .unwrap_err();
        assert!(e.contains("saturation.fraction"), "{e}");
        let e = parse("name = \"t\"\n[base.saturation]\nclients = 0\n[[series]]\nname = \"a\"\n")
            .unwrap_err();
        assert!(e.contains("saturation.clients"), "{e}");
    }

    #[test]
    fn shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-configs");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            if p.extension().is_some_and(|e| e == "toml") && text.contains("[[series]]") {
                Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 1, "bench-configs has scenarios");
    }
}
