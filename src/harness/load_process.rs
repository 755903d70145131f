//! Load from processes of its own (`raftbench load`), on this host or on others, and the
//! merging of what several of them measured into one point.
//!
//! A load process reads a cluster file, opens a [`RemotePort`] to its nodes, checks that a
//! leader answers, and runs the very [`OpenLoop`] and [`ReplyRecorder`] the harness runs
//! in process. Its schedule starts at a wall-clock instant (`--start-at-unix-ms`) that
//! several processes share, so their measured windows and their histograms' intervals
//! line up. It writes `load-part.json` (its counts, its generator's schedule error and
//! CPU) and interval logs (`hlog/*.hlog`) of its latency, phases and schedule error;
//! [`merge_parts`] adds the parts together, interval by interval.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::{ClusterFile, ConfigFileError};
use crate::harness::cpu::GENERATOR_THREAD;
use crate::harness::histograms::{IntervalHistogram, Unit};
use crate::harness::load::{CommandMaker, GeneratorReport, GeneratorThread, Intended, OpenLoop};
use crate::harness::output::{self, OutputError};
use crate::harness::remote_port::{ClockMap, RemotePort, RemotePortError};
use crate::harness::reply_recorder::{ReplyRecorder, PHASES};
use crate::harness::scenario::{Arrival, LoadMode, Workload};
use crate::harness::summarize::SCHEDULE_LIMIT;
use crate::harness::summary::Percentiles;
use crate::harness::target::{process_cpu_time, LoadPort};
use crate::harness::window::Window;
use crate::kv::Command as KvCommand;
use crate::raft::NodeId;
use crate::remote::{Connector, PipelineOptions};
use crate::server::{ReplyTo, Request};

/// The file a load process writes its counts to, in its `--out` directory.
pub const PART_FILE: &str = "load-part.json";
/// Format version of [`PART_FILE`].
pub const PART_VERSION: u32 = 1;
/// How long after its window a load process waits for its last answers.
pub const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// How much longer than its requests' resend deadline (`--deadline-s`) a load process
/// waits for a leader to answer its probe (the pipeline's own answer comes first).
pub const PROBE_GRACE: Duration = Duration::from_secs(5);
/// The longest a probe waits with the default deadline.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Room for this many requests in flight (ids wrap around a ring of intended times).
const INTENDED_SLOTS: usize = 1 << 21;
/// How often the answer loop looks at the clock while no answer comes.
const POLL: Duration = Duration::from_millis(20);
/// Beyond the window, the probe and the drain: how long [`LoadSpawn::run`] waits for its
/// children before it calls one hung.
const SPAWN_GRACE: Duration = Duration::from_secs(10);

/// Why a load process, or the merging of load parts, failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadProcessError {
    /// A command-line value is out of range.
    #[error("--{flag}: {reason}")]
    Arg {
        /// The flag.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// The cluster file could not be used.
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    /// The port to the nodes did not start.
    #[error(transparent)]
    Port(#[from] RemotePortError),
    /// No leader answered the probe: the cluster is down, unreachable or leaderless.
    #[error("no leader of {config} answered within {within:?}: {reason}")]
    NoLeader {
        /// The cluster file.
        config: PathBuf,
        /// How long the probe waited.
        within: Duration,
        /// The last failure.
        reason: String,
    },
    /// Not one request of the window was answered successfully.
    #[error("no request of the measured window was answered ok ({errors} errors; last failure: {reason}); the part is in {dir}")]
    NoAnswers {
        /// How many error answers came.
        errors: u64,
        /// The last failure the port saw.
        reason: String,
        /// Where the part was written.
        dir: PathBuf,
    },
    /// The shared start instant had passed before the schedule could begin.
    #[error("--start-at-unix-ms {start_at} was {late_ms} ms in the past when the schedule was ready to begin; give a later start")]
    StartPassed {
        /// The start asked for.
        start_at: u64,
        /// How late.
        late_ms: u64,
    },
    /// A thread or a runtime could not be started.
    #[error("load process: {0}")]
    Io(#[source] std::io::Error),
    /// A result file could not be written or read.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A part's `load-part.json` could not be parsed or has another format.
    #[error("{path}: {reason}")]
    Part {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Parts to merge measured different windows or intervals.
    #[error("load part in {dir} measured another window than {first}: {what}")]
    WindowMismatch {
        /// The part that differs.
        dir: PathBuf,
        /// The first part.
        first: PathBuf,
        /// What differs.
        what: String,
    },
    /// Nothing to merge.
    #[error("no load parts to merge")]
    NoParts,
    /// A load process could not be started.
    #[error("starting load process {index} ({bin}): {source}")]
    Spawn {
        /// Its index.
        index: usize,
        /// The executable.
        bin: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A load process exited with a failure.
    #[error("load process {index} ({dir}) failed with {status}; its log ends:\n{log_tail}")]
    ChildFailed {
        /// Its index.
        index: usize,
        /// Its output directory (its log is `load.log` there).
        dir: PathBuf,
        /// How it exited.
        status: ExitStatus,
        /// The last lines of its log.
        log_tail: String,
    },
    /// Load processes did not finish in time and were killed.
    #[error("load processes {hung:?} did not finish within {within:?} and were killed (logs: load.log in {dirs:?})")]
    Hung {
        /// Their indexes.
        hung: Vec<usize>,
        /// Their output directories.
        dirs: Vec<PathBuf>,
        /// How long they were given.
        within: Duration,
    },
}

fn arg_err(flag: &'static str, reason: impl Into<String>) -> LoadProcessError {
    LoadProcessError::Arg {
        flag,
        reason: reason.into(),
    }
}

/// `raftbench load`: an open loop against a cluster file's nodes.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// The cluster file (its nodes' client addresses and certificate directory).
    #[arg(long)]
    pub config: PathBuf,
    /// Requests per second this process offers.
    #[arg(long)]
    pub rate: f64,
    /// Seconds measured.
    #[arg(long)]
    pub measure_s: f64,
    /// Seconds of load before the measured window (excluded from every figure).
    #[arg(long)]
    pub warmup_s: f64,
    /// Spacing of the schedule: `constant` or `poisson`.
    #[arg(long, default_value = "constant", value_parser = parse_arrival)]
    pub arrival: Arrival,
    /// Seed of the schedule and the keys.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Bytes of each Put's value.
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Fraction of requests that are Gets, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub get_fraction: f64,
    /// The client certificate: client-NAME.pem of the cluster's certificate directory
    /// (default: client.pem).
    #[arg(long, value_name = "NAME", default_value = "")]
    pub cert: String,
    /// When the schedule starts, in milliseconds since the Unix epoch (wall clock), shared
    /// by every load process of a run (default: one second after a leader first answered).
    #[arg(long)]
    pub start_at_unix_ms: Option<u64>,
    /// Length of the histograms' intervals in seconds (a whole number of milliseconds).
    #[arg(long, default_value_t = 1.0)]
    pub interval_s: f64,
    /// Requests in flight at most; beyond, the schedule's requests count as refused.
    #[arg(long, default_value_t = PipelineOptions::default().max_outstanding)]
    pub max_outstanding: usize,
    /// Seconds a request keeps being resent while no leader answers; then it fails (and
    /// the probe for a leader gives up after this plus 5 s).
    #[arg(long, default_value_t = 10.0)]
    pub deadline_s: f64,
    /// Where load-part.json and hlog/ go.
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_arrival(s: &str) -> Result<Arrival, String> {
    match s {
        "constant" => Ok(Arrival::Constant),
        "poisson" => Ok(Arrival::Poisson),
        _ => Err(format!("{s:?}: expected constant or poisson")),
    }
}

fn arrival_name(a: Arrival) -> &'static str {
    match a {
        Arrival::Constant => "constant",
        Arrival::Poisson => "poisson",
    }
}

impl LoadArgs {
    fn check(&self) -> Result<(), LoadProcessError> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(arg_err("rate", "must be a number above 0"));
        }
        if !(self.measure_s.is_finite() && self.measure_s > 0.0) {
            return Err(arg_err("measure-s", "must be a number above 0"));
        }
        if !(self.warmup_s.is_finite() && self.warmup_s >= 0.0) {
            return Err(arg_err("warmup-s", "must be 0 or more"));
        }
        let ms = self.interval_s * 1e3;
        if !(ms.is_finite() && ms >= 1.0 && (ms - ms.round()).abs() < 1e-6) {
            return Err(arg_err(
                "interval-s",
                "must be a whole number of milliseconds, at least 0.001",
            ));
        }
        if self.keys == 0 {
            return Err(arg_err("keys", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.get_fraction) {
            return Err(arg_err("get-fraction", "must be between 0 and 1"));
        }
        if self.payload_bytes > crate::remote::MAX_FRAME / 2 {
            return Err(arg_err(
                "payload-bytes",
                format!("must be at most {}", crate::remote::MAX_FRAME / 2),
            ));
        }
        if !(self.deadline_s.is_finite() && self.deadline_s > 0.0) {
            return Err(arg_err("deadline-s", "must be a number above 0"));
        }
        if self.max_outstanding == 0 {
            return Err(arg_err("max-outstanding", "must be at least 1"));
        }
        Ok(())
    }

    /// The workload these arguments describe.
    pub fn workload(&self) -> Workload {
        Workload {
            mode: LoadMode::OpenLoop,
            rate: self.rate,
            arrival: self.arrival,
            payload_bytes: self.payload_bytes,
            get_fraction: self.get_fraction,
            keys: self.keys,
            ..Workload::default()
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_millis((self.interval_s * 1e3).round() as u64)
    }
}

/// What one load process measured (`load-part.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadPartSummary {
    /// Format version ([`PART_VERSION`]).
    pub version: u32,
    /// The host it ran on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The cluster file it loaded.
    pub cluster_file: PathBuf,
    /// Requests per second it offered.
    pub rate: f64,
    /// The schedule's spacing.
    pub arrival: Arrival,
    /// Seed of the schedule and the keys.
    pub seed: u64,
    /// Bytes of each Put's value.
    pub payload_bytes: usize,
    /// Distinct keys.
    pub keys: u64,
    /// Fraction of Gets.
    pub get_fraction: f64,
    /// The schedule's start (ms since the Unix epoch, wall clock).
    pub start_at_unix_ms: u64,
    /// Seconds of warm-up before the window.
    pub warmup_s: f64,
    /// Seconds measured.
    pub measure_s: f64,
    /// Seconds per histogram interval.
    pub interval_s: f64,
    /// Requests sent, in all.
    pub sent: u64,
    /// Requests whose slot fell in the window, sent or refused.
    pub in_window: u64,
    /// Of those, refused unsent because the pipeline was full.
    pub refused: u64,
    /// Answers of any kind received.
    pub answered: u64,
    /// Successful answers to requests scheduled in the window.
    pub ok: u64,
    /// Error answers to requests scheduled in the window.
    pub errors: u64,
    /// Of which the leader's overload refusals.
    pub overload_errors: u64,
    /// Successful answers that arrived in the window (delivered throughput).
    pub delivered: u64,
    /// Successful answers in the window whose phases could not be attributed (no trace,
    /// or no clock offset for the node that answered).
    pub phase_samples_missing: u64,
    /// Successful answers whose phases do not add up to their latency.
    pub phase_sum_mismatch: u64,
    /// Requests sent that got no answer before the drain ended.
    pub unanswered: u64,
    /// Answers the client gave up on (no node reached, or none led, within the deadline).
    pub unreachable: u64,
    /// The reason the last of those gave.
    pub last_unreachable: Option<String>,
    /// The nodes whose clock offsets were known (their phases are attributed).
    pub offsets_known: Vec<NodeId>,
    /// The generator's lateness in the window (us).
    pub schedule_error: Percentiles,
    /// Fraction of the window's sends later than the schedule limit (1 ms).
    pub late_fraction: f64,
    /// How the generator's thread was scheduled.
    pub thread: GeneratorThread,
    /// CPU seconds of the generator's thread in the window.
    pub generator_cpu_seconds: Option<f64>,
    /// CPU seconds of the whole process.
    pub process_cpu_seconds: f64,
    /// Client latency in the window (us), for a quick look (the hlog has every sample).
    pub latency: Percentiles,
}

impl LoadPartSummary {
    /// One line for a terminal.
    pub fn one_line(&self) -> String {
        format!(
            "load {:.0}/s for {} s: sent {}, ok {}, errors {} (overloaded {}), unanswered {}, \
             latency p50 {:.0} us p99 {:.0} us, schedule error p99 {:.0} us, late {:.2}%, \
             phases missing {}",
            self.rate,
            self.measure_s,
            self.sent,
            self.ok,
            self.errors,
            self.overload_errors,
            self.unanswered,
            self.latency.p50,
            self.latency.p99,
            self.schedule_error.p99,
            self.late_fraction * 100.0,
            self.phase_samples_missing,
        )
    }
}

/// Fraction of the samples of `h` (ns) above `limit`.
pub fn late_fraction(h: &hdrhistogram::Histogram<u64>, limit: Duration) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    let limit = limit.as_nanos() as u64;
    let late: u64 = h
        .iter_recorded()
        .filter(|v| v.value_iterated_to() > limit)
        .map(|v| v.count_at_value())
        .sum();
    late as f64 / h.len() as f64
}

/// Milliseconds since the Unix epoch now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A shared start `delay` from now, for `--start-at-unix-ms`.
pub fn start_at_after(delay: Duration) -> u64 {
    unix_ms_now() + delay.as_millis() as u64
}

/// The instant (on this process's monotonic clock) of wall-clock `unix_ms`; None if it
/// has passed, with how many ms ago.
fn instant_of(unix_ms: u64) -> Result<Instant, u64> {
    let (now_sys, now) = (SystemTime::now(), Instant::now());
    let at = UNIX_EPOCH + Duration::from_millis(unix_ms);
    match at.duration_since(now_sys) {
        Ok(ahead) => Ok(now + ahead),
        Err(e) => Err(e.duration().as_millis() as u64),
    }
}

/// Each node's clock offset to this load process's clock, such that
/// `epoch_ns = node_ns + offset` where `epoch_ns` counts from `epoch`.
///
/// Each node's clock offset onto this process's clock (ns since `epoch`), by the
/// four-timestamp exchange of the client protocol: a load process cannot tell whether the
/// nodes share its host, so it estimates on every host (its error is half the best round
/// trip, tens of microseconds on one host). A node that does not answer gets no offset:
/// its answers' phases then count as missing rather than being invented.
fn node_offsets(file: &ClusterFile, cert: &str, epoch: Instant) -> HashMap<NodeId, i64> {
    const SAMPLES: usize = 32;
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return HashMap::new();
    };
    rt.block_on(async {
        let mut out = HashMap::new();
        let Ok(mut client) = crate::remote::RemoteClient::for_cluster(file, cert) else {
            return out;
        };
        // Stamps count from now; `epoch` may lie ahead (the shared start).
        let reference = Instant::now();
        let shift = epoch.saturating_duration_since(reference).as_nanos() as i64
            - reference.saturating_duration_since(epoch).as_nanos() as i64;
        for id in file.ids() {
            let samples = tokio::time::timeout(
                Duration::from_secs(5),
                client.clock_samples(id, SAMPLES, reference),
            )
            .await;
            if let Ok(Ok(samples)) = samples {
                if let Some(o) = crate::remote::ClockOffset::estimate(&samples) {
                    out.insert(id, o.offset_ns - shift);
                }
            }
        }
        client.close().await;
        out
    })
}

/// The host's name, for the part's record.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Runs `raftbench load`: see the module docs. Writes the part into `args.out` and
/// returns what it holds.
pub fn run_load(args: &LoadArgs) -> Result<LoadPartSummary, LoadProcessError> {
    args.check()?;
    let file = ClusterFile::load(&args.config)?;
    let addrs: HashMap<NodeId, SocketAddr> =
        file.nodes.iter().map(|n| (n.id, n.client_addr)).collect();
    let interval = args.interval();
    let warmup = Duration::from_secs_f64(args.warmup_s);
    let measure = Duration::from_secs_f64(args.measure_s);
    let opts = PipelineOptions {
        max_outstanding: args.max_outstanding,
        deadline: Duration::from_secs_f64(args.deadline_s),
        ..PipelineOptions::default()
    };
    let probe_within = opts.deadline + PROBE_GRACE;
    let offsets = Arc::new(ClockMap::new());
    let connector_file = file.clone();
    let cert = args.cert.clone();
    let port = RemotePort::start(
        addrs,
        Box::new(move || Connector::for_cluster(&connector_file, &cert)),
        opts,
        offsets.clone(),
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(LoadProcessError::Io)?;

    // A committed write proves a leader answers, and leaves the pipeline pointed at it.
    let (ptx, mut prx) = mpsc::unbounded_channel();
    let probe = Request {
        id: 0,
        command: KvCommand::encode_put(b"raftbench-load-probe", b"x"),
        reply: ReplyTo::Channel(ptx),
    };
    let no_leader = |reason: String| LoadProcessError::NoLeader {
        config: args.config.clone(),
        within: probe_within,
        reason,
    };
    if port.blocking_send(probe).is_err() {
        return Err(no_leader("the client pipeline stopped".into()));
    }
    match rt.block_on(async { tokio::time::timeout(probe_within, prx.recv()).await }) {
        Ok(Some(a)) => {
            if let Err(e) = a.reply {
                let why = port.stats().last_unreachable.unwrap_or_default();
                return Err(no_leader(format!("{e} {why}").trim().to_string()));
            }
        }
        Ok(None) => return Err(no_leader("the client pipeline stopped".into())),
        Err(_) => return Err(no_leader("no answer".into())),
    }

    // Without a shared start, one second after a leader answered.
    let start_at = args
        .start_at_unix_ms
        .unwrap_or_else(|| start_at_after(Duration::from_secs(1)));
    let start = instant_of(start_at)
        .map_err(|late_ms| LoadProcessError::StartPassed { start_at, late_ms })?;
    let epoch = start;
    offsets.set_all(node_offsets(&file, &args.cert, epoch));
    let offsets_known = {
        let mut ids: Vec<NodeId> = offsets.snapshot().into_keys().collect();
        ids.sort_unstable();
        ids
    };
    let window = Window {
        epoch,
        start: warmup,
        end: warmup + measure,
    };
    let end = window.end_instant();
    let intended = Arc::new(Intended::new(INTENDED_SLOTS));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut replies = ReplyRecorder::new(window, intended.clone(), interval);
    let gen = OpenLoop {
        port: LoadPort::Remote(port.clone()),
        answers: tx.clone(),
        intended,
        start,
        end,
        window,
        rate: args.rate,
        arrival: args.arrival,
        seed: args.seed,
        commands: CommandMaker::new(&args.workload(), args.seed),
        interval,
    };
    let generator = std::thread::Builder::new()
        .name(GENERATOR_THREAD.into())
        .spawn(move || gen.run())
        .map_err(LoadProcessError::Io)?;
    rt.block_on(async {
        while Instant::now() < end {
            if let Ok(Some(batch)) = tokio::time::timeout(POLL, rx.recv()).await {
                record_batch(&mut replies, batch);
                while let Ok(batch) = rx.try_recv() {
                    record_batch(&mut replies, batch);
                }
            }
        }
    });
    let generator = generator
        .join()
        .map_err(|_| LoadProcessError::Io(std::io::Error::other("the generator panicked")))?;
    rt.block_on(async {
        while replies.answered < generator.sent && Instant::now() < end + DRAIN_GRACE {
            if let Ok(Some(batch)) = tokio::time::timeout(POLL, rx.recv()).await {
                record_batch(&mut replies, batch);
            }
        }
    });
    let stats = port.stats();
    drop(port);
    replies.finish();
    let part = LoadPart::new(args, start_at, generator, replies, &stats, offsets_known);
    part.write(&args.out)?;
    if part.summary.ok == 0 && part.summary.in_window > 0 {
        return Err(LoadProcessError::NoAnswers {
            errors: part.summary.errors,
            reason: stats
                .last_unreachable
                .unwrap_or_else(|| "no successful answer".into()),
            dir: args.out.clone(),
        });
    }
    Ok(part.summary)
}

/// What one load process measured: its counts and its histograms.
#[derive(Clone, Debug)]
pub struct LoadPart {
    /// Where it was read from (empty before it is written).
    pub dir: PathBuf,
    /// Its counts.
    pub summary: LoadPartSummary,
    /// Client latency (ns), by interval of the window.
    pub latency: IntervalHistogram,
    /// One per entry of [`PHASES`] (ns).
    pub phases: [IntervalHistogram; 5],
    /// The generator's lateness (ns).
    pub schedule_error: IntervalHistogram,
}

/// The interval-log file of `metric` in a part's directory.
fn hlog_path(dir: &Path, metric: &str) -> PathBuf {
    dir.join("hlog").join(format!("{metric}.hlog"))
}

fn phase_metric(name: &str) -> String {
    format!("phase.{name}")
}

impl LoadPart {
    fn new(
        args: &LoadArgs,
        start_at: u64,
        generator: GeneratorReport,
        replies: ReplyRecorder,
        stats: &crate::harness::remote_port::RemotePortStats,
        offsets_known: Vec<NodeId>,
    ) -> LoadPart {
        let sched = &generator.schedule_error.total;
        let summary = LoadPartSummary {
            version: PART_VERSION,
            host: host_name(),
            pid: std::process::id(),
            cluster_file: args.config.clone(),
            rate: args.rate,
            arrival: args.arrival,
            seed: args.seed,
            payload_bytes: args.payload_bytes,
            keys: args.keys,
            get_fraction: args.get_fraction,
            start_at_unix_ms: start_at,
            warmup_s: args.warmup_s,
            measure_s: args.measure_s,
            interval_s: args.interval().as_secs_f64(),
            sent: generator.sent,
            in_window: generator.in_window,
            refused: generator.refused,
            answered: replies.answered,
            ok: replies.ok,
            errors: replies.errors,
            overload_errors: replies.overload_errors,
            delivered: replies.delivered,
            phase_samples_missing: replies.phase_samples_missing,
            phase_sum_mismatch: replies.phase_sum_mismatch,
            unanswered: generator.sent.saturating_sub(replies.answered),
            unreachable: stats.unreachable,
            last_unreachable: stats.last_unreachable.clone(),
            offsets_known,
            schedule_error: Percentiles::of_nanos(sched),
            late_fraction: late_fraction(sched, SCHEDULE_LIMIT),
            thread: generator.thread,
            generator_cpu_seconds: generator.cpu_seconds,
            process_cpu_seconds: process_cpu_time().as_secs_f64(),
            latency: Percentiles::of_nanos(&replies.latency.total),
        };
        let ReplyRecorder {
            latency, phases, ..
        } = replies;
        LoadPart {
            dir: PathBuf::new(),
            summary,
            latency,
            phases,
            schedule_error: generator.schedule_error,
        }
    }

    /// The window's start on the wall clock.
    pub fn window_start(&self) -> SystemTime {
        UNIX_EPOCH
            + Duration::from_millis(self.summary.start_at_unix_ms)
            + Duration::from_secs_f64(self.summary.warmup_s)
    }

    fn histograms(&self) -> Vec<(String, &IntervalHistogram)> {
        let mut v = vec![("latency".to_string(), &self.latency)];
        for (name, h) in PHASES.iter().zip(&self.phases) {
            v.push((phase_metric(name), h));
        }
        v.push(("schedule_error".into(), &self.schedule_error));
        v
    }

    /// Writes `dir/load-part.json` and `dir/hlog/*.hlog`.
    pub fn write(&self, dir: &Path) -> Result<(), LoadProcessError> {
        let hlog = dir.join("hlog");
        std::fs::create_dir_all(&hlog).map_err(|source| OutputError::Io {
            path: hlog.clone(),
            source,
        })?;
        let path = dir.join(PART_FILE);
        let json =
            serde_json::to_string_pretty(&self.summary).map_err(|source| OutputError::Json {
                path: path.clone(),
                source,
            })?;
        std::fs::write(&path, json).map_err(|source| OutputError::Io {
            path: path.clone(),
            source,
        })?;
        let base = self.window_start();
        for (metric, h) in self.histograms() {
            let title = format!(
                "raftbench load part (pid {}, seed {}): {metric}",
                self.summary.pid, self.summary.seed
            );
            output::write_interval_histogram(&hlog_path(dir, &metric), &title, base, h)?;
        }
        Ok(())
    }

    /// Reads the part a load process wrote into `dir`.
    pub fn read(dir: &Path) -> Result<LoadPart, LoadProcessError> {
        let path = dir.join(PART_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| OutputError::Io {
            path: path.clone(),
            source,
        })?;
        let summary: LoadPartSummary =
            serde_json::from_str(&text).map_err(|e| LoadProcessError::Part {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if summary.version != PART_VERSION {
            return Err(LoadProcessError::Part {
                path,
                reason: format!(
                    "format version {}, this build reads {PART_VERSION}",
                    summary.version
                ),
            });
        }
        let interval = Duration::from_millis((summary.interval_s * 1e3).round() as u64);
        let read = |metric: &str| {
            output::read_interval_histogram(&hlog_path(dir, metric), Unit::Nanos, interval)
                .map(|(h, _)| h)
        };
        let latency = read("latency")?;
        let mut phases: [IntervalHistogram; 5] =
            std::array::from_fn(|_| IntervalHistogram::new(Unit::Nanos, interval));
        for (h, name) in phases.iter_mut().zip(PHASES) {
            *h = read(&phase_metric(name))?;
        }
        let schedule_error = read("schedule_error")?;
        Ok(LoadPart {
            dir: dir.to_path_buf(),
            summary,
            latency,
            phases,
            schedule_error,
        })
    }
}

/// One load process's generator, as a point's summary publishes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratorSummary {
    /// The host it ran on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Its output directory.
    pub dir: PathBuf,
    /// Requests per second it offered.
    pub rate: f64,
    /// Its seed.
    pub seed: u64,
    /// Requests sent, in all.
    pub sent: u64,
    /// Requests whose slot fell in the window.
    pub in_window: u64,
    /// Of those, refused unsent (pipeline full).
    pub refused: u64,
    /// Median lateness (us).
    pub schedule_error_p50_us: f64,
    /// 99th percentile lateness (us).
    pub schedule_error_p99_us: f64,
    /// Largest lateness (us).
    pub schedule_error_max_us: f64,
    /// Fraction of sends later than 1 ms.
    pub late_fraction: f64,
    /// How its thread was scheduled.
    pub thread: GeneratorThread,
    /// CPU seconds of its generator thread in the window.
    pub generator_cpu_seconds: Option<f64>,
    /// CPU seconds of its whole process.
    pub process_cpu_seconds: f64,
}

/// Several load processes' parts added together.
pub struct MergedLoad {
    /// Every answer of every part, as one [`ReplyRecorder`] of the shared window (finished;
    /// its histograms are the parts' added interval by interval).
    pub replies: ReplyRecorder,
    /// The generators as one (sums; schedule error merged; real-time only if all were;
    /// CPU the sum of the generator threads').
    pub generator: GeneratorReport,
    /// Each generator on its own.
    pub generators: Vec<GeneratorSummary>,
    /// The shared schedule start (ms since the Unix epoch).
    pub start_at_unix_ms: u64,
    /// Requests sent and never answered, over every part.
    pub unanswered: u64,
    /// Answers the clients gave up on, over every part.
    pub unreachable: u64,
}

/// Adds `parts` together; they must share their schedule start, warm-up, window and
/// interval, so that their intervals line up exactly.
pub fn merge_parts(parts: &[LoadPart]) -> Result<MergedLoad, LoadProcessError> {
    let first = parts.first().ok_or(LoadProcessError::NoParts)?;
    let f = &first.summary;
    for p in &parts[1..] {
        let s = &p.summary;
        let mismatch = if s.start_at_unix_ms != f.start_at_unix_ms {
            Some(format!(
                "start at {} ms, not {}",
                s.start_at_unix_ms, f.start_at_unix_ms
            ))
        } else if s.warmup_s != f.warmup_s || s.measure_s != f.measure_s {
            Some(format!(
                "warm-up {} s and window {} s, not {} s and {} s",
                s.warmup_s, s.measure_s, f.warmup_s, f.measure_s
            ))
        } else if s.interval_s != f.interval_s {
            Some(format!(
                "intervals of {} s, not {} s",
                s.interval_s, f.interval_s
            ))
        } else {
            None
        };
        if let Some(what) = mismatch {
            return Err(LoadProcessError::WindowMismatch {
                dir: p.dir.clone(),
                first: first.dir.clone(),
                what,
            });
        }
    }
    let interval = Duration::from_millis((f.interval_s * 1e3).round() as u64);
    let measure = Duration::from_secs_f64(f.measure_s);
    // The parts' window on this process's clock, as well as it can be placed: only its
    // length and start matter to what the merged recorder holds.
    let window = Window {
        epoch: Instant::now(),
        start: Duration::ZERO,
        end: measure,
    };
    let mut replies = ReplyRecorder::new(window, Arc::new(Intended::new(1)), interval);
    let mut generator = GeneratorReport {
        sent: 0,
        in_window: 0,
        refused: 0,
        schedule_error: IntervalHistogram::new(Unit::Nanos, interval),
        thread: GeneratorThread::Realtime,
        cpu_seconds: None,
    };
    let mut generators = Vec::with_capacity(parts.len());
    let (mut unanswered, mut unreachable) = (0, 0);
    for p in parts {
        let s = &p.summary;
        replies.latency.merge(&p.latency);
        for (mine, theirs) in replies.phases.iter_mut().zip(&p.phases) {
            mine.merge(theirs);
        }
        replies.answered += s.answered;
        replies.ok += s.ok;
        replies.errors += s.errors;
        replies.overload_errors += s.overload_errors;
        replies.delivered += s.delivered;
        replies.phase_samples_missing += s.phase_samples_missing;
        replies.phase_sum_mismatch += s.phase_sum_mismatch;
        generator.sent += s.sent;
        generator.in_window += s.in_window;
        generator.refused += s.refused;
        generator.schedule_error.merge(&p.schedule_error);
        if s.thread != GeneratorThread::Realtime {
            generator.thread = GeneratorThread::Normal;
        }
        if let Some(c) = s.generator_cpu_seconds {
            *generator.cpu_seconds.get_or_insert(0.0) += c;
        }
        unanswered += s.unanswered;
        unreachable += s.unreachable;
        generators.push(GeneratorSummary {
            host: s.host.clone(),
            pid: s.pid,
            dir: p.dir.clone(),
            rate: s.rate,
            seed: s.seed,
            sent: s.sent,
            in_window: s.in_window,
            refused: s.refused,
            schedule_error_p50_us: s.schedule_error.p50,
            schedule_error_p99_us: s.schedule_error.p99,
            schedule_error_max_us: s.schedule_error.max,
            late_fraction: s.late_fraction,
            thread: s.thread,
            generator_cpu_seconds: s.generator_cpu_seconds,
            process_cpu_seconds: s.process_cpu_seconds,
        });
    }
    Ok(MergedLoad {
        replies,
        generator,
        generators,
        start_at_unix_ms: f.start_at_unix_ms,
        unanswered,
        unreachable,
    })
}

/// Several `raftbench load` processes on this host, sharing one schedule start.
#[derive(Clone, Debug)]
pub struct LoadSpawn {
    /// The raftbench executable (default: this one).
    pub bin: PathBuf,
    /// The cluster file.
    pub cluster_file: PathBuf,
    /// How many processes; each offers `workload.rate / processes`.
    pub processes: usize,
    /// The load (open loop; its rate is the total).
    pub workload: Workload,
    /// The shared schedule start (ms since the Unix epoch).
    pub start_at_unix_ms: u64,
    /// Warm-up before the window.
    pub warmup: Duration,
    /// The window.
    pub measure: Duration,
    /// Histogram interval (a whole number of ms).
    pub interval: Duration,
    /// Process `i` uses seed `seed + i`.
    pub seed: u64,
    /// The client certificate name (empty: client.pem).
    pub cert: String,
    /// Process `i` writes into `out_dir/load-i/`.
    pub out_dir: PathBuf,
    /// Beyond the window's end: how long the processes may take (to find a leader, drain
    /// and write) before they count as hung and are killed.
    pub grace: Duration,
}

impl LoadSpawn {
    /// `n` processes running `current_exe() load`, with 1 s intervals and client.pem.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cluster_file: &Path,
        n: usize,
        workload: &Workload,
        start_at_unix_ms: u64,
        warmup: Duration,
        measure: Duration,
        seed: u64,
        out_dir: &Path,
    ) -> LoadSpawn {
        LoadSpawn {
            bin: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("raftbench")),
            cluster_file: cluster_file.to_path_buf(),
            processes: n,
            workload: workload.clone(),
            start_at_unix_ms,
            warmup,
            measure,
            interval: Duration::from_secs(1),
            seed,
            cert: String::new(),
            out_dir: out_dir.to_path_buf(),
            grace: PROBE_TIMEOUT + DRAIN_GRACE + SPAWN_GRACE,
        }
    }

    /// Process `i`'s output directory.
    pub fn dir(&self, i: usize) -> PathBuf {
        self.out_dir.join(format!("load-{i}"))
    }

    /// Process `i`'s arguments (after the executable).
    pub fn args(&self, i: usize) -> Vec<OsString> {
        let w = &self.workload;
        let n = self.processes.max(1);
        let mut a: Vec<OsString> = vec!["load".into(), "--config".into()];
        a.push(self.cluster_file.clone().into());
        for (flag, value) in [
            ("--rate", (w.rate / n as f64).to_string()),
            ("--measure-s", self.measure.as_secs_f64().to_string()),
            ("--warmup-s", self.warmup.as_secs_f64().to_string()),
            ("--arrival", arrival_name(w.arrival).to_string()),
            ("--seed", self.seed.wrapping_add(i as u64).to_string()),
            ("--payload-bytes", w.payload_bytes.to_string()),
            ("--keys", w.keys.to_string()),
            ("--get-fraction", w.get_fraction.to_string()),
            ("--cert", self.cert.clone()),
            ("--start-at-unix-ms", self.start_at_unix_ms.to_string()),
            ("--interval-s", self.interval.as_secs_f64().to_string()),
        ] {
            a.push(flag.into());
            a.push(value.into());
        }
        a.push("--out".into());
        a.push(self.dir(i).into());
        a
    }

    /// How long the processes are given from now: until the window ends, plus
    /// [`LoadSpawn::grace`].
    pub fn deadline(&self) -> Duration {
        let until_start = UNIX_EPOCH + Duration::from_millis(self.start_at_unix_ms);
        let to_start = until_start
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        to_start + self.warmup + self.measure + self.grace
    }

    /// Starts the processes, waits for them (killing any still running at
    /// [`LoadSpawn::deadline`]), and reads their parts.
    pub fn run(&self) -> Result<Vec<LoadPart>, LoadProcessError> {
        let within = self.deadline();
        let until = Instant::now() + within;
        let mut children: Vec<(usize, Child)> = Vec::new();
        let kill_all = |children: &mut Vec<(usize, Child)>| {
            for (_, c) in children.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        };
        for i in 0..self.processes {
            let dir = self.dir(i);
            let spawned = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::File::create(dir.join("load.log")))
                .and_then(|log| Ok((log.try_clone()?, log)))
                .and_then(|(out, err)| {
                    Command::new(&self.bin)
                        .args(self.args(i))
                        .stdin(Stdio::null())
                        .stdout(out)
                        .stderr(err)
                        .spawn()
                });
            match spawned {
                Ok(c) => children.push((i, c)),
                Err(source) => {
                    kill_all(&mut children);
                    return Err(LoadProcessError::Spawn {
                        index: i,
                        bin: self.bin.clone(),
                        source,
                    });
                }
            }
        }
        let mut failed = None;
        while !children.is_empty() && Instant::now() < until {
            let mut i = 0;
            while i < children.len() {
                match children[i].1.try_wait() {
                    Ok(Some(status)) => {
                        let (index, _) = children.swap_remove(i);
                        if !status.success() && failed.is_none() {
                            failed = Some((index, status));
                        }
                    }
                    Ok(None) => i += 1,
                    Err(_) => {
                        let (index, mut c) = children.swap_remove(i);
                        let _ = c.kill();
                        if let Ok(status) = c.wait() {
                            failed.get_or_insert((index, status));
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !children.is_empty() {
            let mut hung: Vec<usize> = children.iter().map(|(i, _)| *i).collect();
            hung.sort_unstable();
            kill_all(&mut children);
            return Err(LoadProcessError::Hung {
                dirs: hung.iter().map(|&i| self.dir(i)).collect(),
                hung,
                within,
            });
        }
        if let Some((index, status)) = failed {
            let dir = self.dir(index);
            let log = std::fs::read_to_string(dir.join("load.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let log_tail = lines[lines.len().saturating_sub(10)..].join("\n");
            return Err(LoadProcessError::ChildFailed {
                index,
                dir,
                status,
                log_tail,
            });
        }
        (0..self.processes)
            .map(|i| LoadPart::read(&self.dir(i)))
            .collect()
    }
}

/// Starts `n` load processes (`current_exe() load`, each at `workload.rate / n` with seed
/// `seed + i`, into `out_dir/load-i/`) sharing the schedule start `start_at_unix_ms`,
/// waits for them (killing a hung one), and reads their parts. See [`LoadSpawn`] to
/// change the executable, the interval or the certificate.
#[allow(clippy::too_many_arguments)]
pub fn spawn_load_processes(
    cluster_file: &Path,
    n: usize,
    workload: &Workload,
    start_at_unix_ms: u64,
    warmup: Duration,
    measure: Duration,
    seed: u64,
    out_dir: &Path,
) -> Result<Vec<LoadPart>, LoadProcessError> {
    LoadSpawn::new(
        cluster_file,
        n,
        workload,
        start_at_unix_ms,
        warmup,
        measure,
        seed,
        out_dir,
    )
    .run()
}

/// Records answers that arrived together, at one clock reading.
fn record_batch(replies: &mut ReplyRecorder, batch: Vec<crate::server::Answer>) {
    let got = Instant::now();
    for a in &batch {
        replies.record(a, got);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(interval: Duration, samples: &[(u64, u64)]) -> IntervalHistogram {
        let mut h = IntervalHistogram::new(Unit::Nanos, interval);
        for &(at_ms, v) in samples {
            h.record(Duration::from_millis(at_ms), v);
        }
        h.finish();
        h
    }

    fn part(dir: &str, seed: u64, latency: &[(u64, u64)], sched: &[(u64, u64)]) -> LoadPart {
        let interval = Duration::from_secs(1);
        let summary = LoadPartSummary {
            version: PART_VERSION,
            host: "h".into(),
            pid: 1,
            cluster_file: "c.toml".into(),
            rate: 100.0,
            arrival: Arrival::Poisson,
            seed,
            payload_bytes: 64,
            keys: 10,
            get_fraction: 0.0,
            start_at_unix_ms: 1_700_000_000_000,
            warmup_s: 1.0,
            measure_s: 3.0,
            interval_s: 1.0,
            sent: latency.len() as u64 + 1,
            in_window: latency.len() as u64,
            refused: 0,
            answered: latency.len() as u64,
            ok: latency.len() as u64,
            errors: 0,
            overload_errors: 0,
            delivered: latency.len() as u64,
            phase_samples_missing: latency.len() as u64,
            phase_sum_mismatch: 0,
            unanswered: 1,
            unreachable: 0,
            last_unreachable: None,
            offsets_known: Vec::new(),
            schedule_error: Percentiles::default(),
            late_fraction: 0.0,
            thread: GeneratorThread::Normal,
            generator_cpu_seconds: Some(0.5),
            process_cpu_seconds: 1.0,
            latency: Percentiles::default(),
        };
        LoadPart {
            dir: dir.into(),
            summary,
            latency: ih(interval, latency),
            phases: std::array::from_fn(|i| ih(interval, &latency[..i.min(latency.len())])),
            schedule_error: ih(interval, sched),
        }
    }

    #[test]
    fn merged_parts_hold_exactly_the_histogram_of_all_samples() {
        let a_samples = [
            (10, 1_000),
            (900, 5_000),
            (1_500, 70_000),
            (2_999, 3_000_000),
        ];
        let b_samples = [(20, 2_000), (1_001, 5_000), (1_999, 123_456), (2_500, 9)];
        let a = part("a", 1, &a_samples, &[(10, 100), (2_000, 2_000_000)]);
        let b = part("b", 2, &b_samples, &[(30, 300)]);
        // Written and read back, as the parts of two processes would be.
        let tmp = tempfile::tempdir().unwrap();
        let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
        a.write(&da).unwrap();
        b.write(&db).unwrap();
        let parts = [LoadPart::read(&da).unwrap(), LoadPart::read(&db).unwrap()];
        assert_eq!(parts[0].summary, a.summary, "the summary round-trips");
        let m = merge_parts(&parts).unwrap();

        let all: Vec<(u64, u64)> = a_samples.iter().chain(&b_samples).copied().collect();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        let want = ih(Duration::from_secs(1), &sorted);
        assert_eq!(m.replies.latency.total, want.total);
        assert_eq!(m.replies.latency.total.len(), 8);
        assert_eq!(m.replies.latency.intervals().len(), want.intervals().len());
        for ((s1, l1, h1), (s2, l2, h2)) in
            m.replies.latency.intervals().iter().zip(&want.intervals())
        {
            assert_eq!((s1, l1), (s2, l2));
            assert_eq!(h1, h2, "interval at {s1:?}");
        }
        assert_eq!(
            m.replies.phases[2].total.len(),
            4,
            "2 samples from each part"
        );
        assert_eq!(m.generator.sent, 10);
        assert_eq!(m.generator.schedule_error.total.len(), 3);
        assert_eq!(m.generator.cpu_seconds, Some(1.0));
        assert_eq!(m.generator.thread, GeneratorThread::Normal);
        assert_eq!((m.replies.ok, m.unanswered), (8, 2));
        assert_eq!(m.generators.len(), 2);
        assert_eq!(m.generators[1].seed, 2);
    }

    #[test]
    fn parts_of_other_windows_do_not_merge() {
        let a = part("a", 1, &[(10, 1)], &[]);
        let mut b = part("b", 2, &[(10, 1)], &[]);
        b.summary.start_at_unix_ms += 1;
        let e = merge_parts(&[a, b]).err().unwrap();
        assert!(
            matches!(&e, LoadProcessError::WindowMismatch { dir, .. } if dir == Path::new("b")),
            "{e}"
        );
        assert!(matches!(merge_parts(&[]), Err(LoadProcessError::NoParts)));
    }

    #[test]
    fn late_fraction_counts_sends_later_than_the_limit() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for v in [10, 100, 900_000, 2_000_000] {
            h.record(v).unwrap();
        }
        assert_eq!(late_fraction(&h, Duration::from_millis(1)), 0.25);
        assert_eq!(
            late_fraction(&hdrhistogram::Histogram::new(3).unwrap(), SCHEDULE_LIMIT),
            0.0
        );
    }

    #[test]
    fn bad_arguments_name_their_flag() {
        let mut a = LoadArgs {
            config: "c.toml".into(),
            rate: 100.0,
            measure_s: 1.0,
            warmup_s: 0.0,
            arrival: Arrival::Constant,
            seed: 1,
            payload_bytes: 64,
            keys: 10,
            get_fraction: 0.0,
            cert: String::new(),
            start_at_unix_ms: None,
            interval_s: 1.0,
            max_outstanding: 10,
            deadline_s: 10.0,
            out: "o".into(),
        };
        assert!(a.check().is_ok());
        a.interval_s = 0.0005;
        assert!(a
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("--interval-s"));
        a.interval_s = 1.0;
        a.rate = 0.0;
        assert!(a.check().unwrap_err().to_string().starts_with("--rate"));
    }

    /// A spawn of `n` copies of the shell script `script` instead of raftbench.
    fn fake_spawn(dir: &Path, n: usize, script: &str) -> LoadSpawn {
        let bin = dir.join("fake-raftbench");
        std::fs::write(&bin, format!("#!/bin/sh\n{script}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut s = LoadSpawn::new(
            Path::new("c.toml"),
            n,
            &Workload::default(),
            unix_ms_now(),
            Duration::ZERO,
            Duration::from_millis(100),
            1,
            &dir.join("out"),
        );
        s.bin = bin;
        s.grace = Duration::from_millis(500);
        s
    }

    #[test]
    fn a_hung_load_process_is_killed_and_named() {
        let tmp = tempfile::tempdir().unwrap();
        let s = fake_spawn(
            tmp.path(),
            2,
            "case \"$*\" in *load-1*) exec sleep 30;; esac",
        );
        let started = Instant::now();
        let e = s.run().err().unwrap();
        assert!(
            matches!(&e, LoadProcessError::Hung { hung, .. } if hung == &[1]),
            "{e}"
        );
        // Killed, not waited out (30 s).
        assert!(started.elapsed() < Duration::from_secs(25));
    }

    #[test]
    fn a_failed_load_process_is_named_with_its_log() {
        let tmp = tempfile::tempdir().unwrap();
        let s = fake_spawn(tmp.path(), 1, "echo 'no leader of c.toml' >&2; exit 3");
        let e = s.run().err().unwrap();
        assert!(
            matches!(&e, LoadProcessError::ChildFailed { index: 0, log_tail, .. }
                if log_tail.contains("no leader of c.toml")),
            "{e}"
        );
    }

    #[test]
    fn each_spawned_process_offers_its_share_with_its_own_seed() {
        let w = Workload {
            rate: 1000.0,
            ..Workload::default()
        };
        let s = LoadSpawn::new(
            Path::new("c.toml"),
            4,
            &w,
            5,
            Duration::from_secs(1),
            Duration::from_secs(2),
            7,
            Path::new("/tmp/x"),
        );
        let args: Vec<String> = s
            .args(3)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(after("--rate"), "250");
        assert_eq!(after("--seed"), "10");
        assert_eq!(after("--out"), "/tmp/x/load-3");
        assert_eq!(after("--start-at-unix-ms"), "5");
    }
}
