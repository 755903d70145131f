//! The files a run publishes under `results/<scenario>/`: `summary.json` (the source of
//! every other output), `summary.csv`, and the HdrHistogram formats other tools read:
//! percentile distributions (`hgrm/*.hgrm`) and interval logs (`hlog/*.hlog`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use super::histograms::{IntervalHistogram, PointHistograms, Unit};
use super::summary::{LoadKind, PointSummary, RunSummary};

/// Ticks per half distance to 100% in `.hgrm` files (HdrHistogram's usual 5).
pub const HGRM_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Why writing or reading results failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or directory could not be created, written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `summary.json` could not be encoded or parsed.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// `summary.csv` could not be written.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: csv::Error,
    },
    /// A histogram could not be serialized into an interval log.
    #[error("{path}: histogram serialization failed: {message}")]
    Histogram {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A plot could not be drawn.
    #[error("{path}: plot failed: {message}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `name` with every character outside `[A-Za-z0-9._=-]` replaced by `_`: safe in a file
/// name and as an interval-log tag (which may hold no comma or space).
pub fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '=' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".to_string()
    } else {
        s
    }
}

/// Sanitized file names for `names`, in order, made unique by a `-2`, `-3`... suffix
/// (two point names can differ only in characters that sanitizing replaces).
pub fn file_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut used = BTreeSet::new();
    names
        .into_iter()
        .map(|name| {
            let base = sanitize(name);
            let mut candidate = base.clone();
            let mut n = 2;
            while used.contains(&candidate) {
                candidate = format!("{base}-{n}");
                n += 1;
            }
            used.insert(candidate.clone());
            candidate
        })
        .collect()
}

/// HdrHistogram's `outputValueUnitScalingRatio` for a unit: recorded values are divided by
/// it when printed (nanoseconds print as microseconds).
pub fn scaling_ratio(unit: Unit) -> f64 {
    match unit {
        Unit::Nanos => 1000.0,
        Unit::Count => 1.0,
    }
}

/// The percentile distribution of `h` exactly as Java HdrHistogram's
/// `outputPercentileDistribution(out, ticks_per_half_distance, scaling_ratio)` prints it.
pub fn percentile_distribution(
    h: &Histogram<u64>,
    ticks_per_half_distance: u32,
    scaling_ratio: f64,
) -> String {
    let digits = usize::from(h.sigfig());
    let mut out = String::new();
    // Writing into a String cannot fail; the results are ignored below for that reason.
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        // Java prints the running total; summing the per-step counts keeps it exact.
        let mut total: u64 = 0;
        for v in h.iter_quantiles(ticks_per_half_distance) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scaling_ratio;
            let q = v.quantile_iterated_to();
            // Java compares the percentile level with 100.0 exactly: the last line has no
            // 1/(1-p) column rather than an infinity.
            #[allow(clippy::float_cmp)]
            if q != 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.digits$} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.digits$} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]",
        h.mean() / scaling_ratio,
        h.stdev() / scaling_ratio
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.digits$}, Total count    = {:12}]",
        h.max() as f64 / scaling_ratio,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    );
    out
}

/// Java's `subBucketCount`: the power of two that holds `2 * 10^sigfig` values at unit
/// resolution (the Rust crate does not expose it).
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// Writes `summary.json`, `summary.csv`, `hgrm/` and `hlog/` for a run into `dir`.
pub fn write_run(
    dir: &Path,
    run: &RunSummary,
    hists: &[(String, PointHistograms)],
) -> Result<(), OutputError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;

    let json_path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(run).map_err(|source| OutputError::Json {
        path: json_path.clone(),
        source,
    })?;
    write_file(&json_path, json.as_bytes())?;

    write_csv(&dir.join("summary.csv"), run)?;

    let names = file_names(hists.iter().map(|(name, _)| name.as_str()));
    write_hgrm(&dir.join("hgrm"), hists, &names)?;
    write_hlogs(&dir.join("hlog"), run, hists, &names)?;
    Ok(())
}

/// Reads a run's `summary.json` back (for `raftbench report <dir>`).
pub fn read_run(dir: &Path) -> Result<RunSummary, OutputError> {
    let path = dir.join("summary.json");
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    serde_json::from_str(&text).map_err(|source| OutputError::Json { path, source })
}

/// Every histogram of an interval log (`.hlog`) added together per tag (untagged
/// intervals under ""): the whole-window histogram of each point the log holds.
pub fn read_interval_log(path: &Path) -> Result<BTreeMap<String, Histogram<u64>>, OutputError> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    let bad = |message: String| OutputError::Histogram {
        path: path.to_path_buf(),
        message,
    };
    let bytes = fs::read(path).map_err(io_err(path))?;
    let mut deserializer = Deserializer::new();
    let mut totals: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(interval) = entry.map_err(|e| bad(format!("{e:?}")))? else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|e| bad(e.to_string()))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut raw.as_slice())
            .map_err(|e| bad(e.to_string()))?;
        let tag = interval
            .tag()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let total = match totals.entry(tag) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Histogram::new(h.sigfig()).map_err(|e| bad(e.to_string()))?)
            }
        };
        total.add(&h).map_err(|e| bad(format!("{e:?}")))?;
    }
    Ok(totals)
}

/// Writes `bytes` to `path`, naming the file in the error.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    fs::write(path, bytes).map_err(io_err(path))
}

/// Creates `dir` and removes files ending in `ext` left in it by an earlier run, so a
/// point or metric that no longer exists leaves no stale file behind.
pub(crate) fn fresh_dir(dir: &Path, ext: &str) -> Result<(), OutputError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == ext) {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

fn write_hgrm(
    dir: &Path,
    hists: &[(String, PointHistograms)],
    names: &[String],
) -> Result<(), OutputError> {
    fresh_dir(dir, "hgrm")?;
    for ((_, metrics), file) in hists.iter().zip(names) {
        for (metric, ih) in metrics {
            let text = percentile_distribution(
                &ih.total,
                HGRM_TICKS_PER_HALF_DISTANCE,
                scaling_ratio(ih.unit),
            );
            let path = dir.join(format!("{file}.{}.hgrm", sanitize(metric)));
            write_file(&path, text.as_bytes())?;
        }
    }
    Ok(())
}

fn unit_words(unit: Unit) -> &'static str {
    match unit {
        Unit::Nanos => {
            "values are recorded in nanoseconds; Interval_Max is printed in microseconds (max / 1000)"
        }
        Unit::Count => "values are plain counts; Interval_Max is printed as recorded",
    }
}

/// One interval log per metric, holding every point's intervals tagged with the point.
fn write_hlogs(
    dir: &Path,
    run: &RunSummary,
    hists: &[(String, PointHistograms)],
    names: &[String],
) -> Result<(), OutputError> {
    fresh_dir(dir, "hlog")?;
    let mut metrics: BTreeMap<&str, Vec<(&str, &PointSummary, &IntervalHistogram)>> =
        BTreeMap::new();
    let empty = PointSummary::default();
    for ((point, per_metric), file) in hists.iter().zip(names) {
        let summary = run
            .points
            .iter()
            .find(|p| &p.name == point)
            .unwrap_or(&empty);
        for (metric, ih) in per_metric {
            metrics
                .entry(metric.as_str())
                .or_default()
                .push((file.as_str(), summary, ih));
        }
    }

    let base = humantime::parse_rfc3339_weak(&run.environment.started).ok();
    for (metric, entries) in metrics {
        let path = dir.join(format!("{}.hlog", sanitize(metric)));
        let text = interval_log(run, metric, base, &entries).map_err(|message| {
            OutputError::Histogram {
                path: path.clone(),
                message,
            }
        })?;
        write_file(&path, &text)?;
    }
    Ok(())
}

fn interval_log(
    run: &RunSummary,
    metric: &str,
    base: Option<SystemTime>,
    entries: &[(&str, &PointSummary, &IntervalHistogram)],
) -> Result<Vec<u8>, String> {
    let unit = entries
        .first()
        .map(|(_, _, ih)| ih.unit)
        .unwrap_or(Unit::Count);
    let mut buf: Vec<u8> = Vec::new();
    let mut head = String::new();
    let _ = writeln!(
        head,
        "#[raftbench interval log of \"{metric}\" in scenario \"{}\": {}]",
        run.scenario,
        unit_words(unit)
    );
    let _ = writeln!(
        head,
        "#[Timestamps: seconds since BaseTime (the run's start); the measured windows of the points follow one another in run order, warm-up and set-up between them left out; each interval is tagged with its point]"
    );
    for (tag, p, _) in entries {
        let _ = writeln!(head, "#[Tag {tag} = point \"{}\"]", p.name);
    }
    let _ = writeln!(head, "#[Histogram log format version 1.3]");
    // Timestamps need an origin: without a parsable start time, the epoch makes them
    // explicit deltas rather than times that readers would take for Unix times.
    let base = base.unwrap_or(SystemTime::UNIX_EPOCH);
    time_header(
        &mut head,
        base,
        humantime::format_rfc3339_seconds(base).to_string(),
    );
    buf.extend_from_slice(head.as_bytes());

    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder.with_max_value_divisor(scaling_ratio(unit));
    let mut writer = builder
        .begin_log_with(&mut buf, &mut serializer)
        .map_err(|e| e.to_string())?;
    let mut offset = Duration::ZERO;
    for (tag, p, ih) in entries {
        let tag = Tag::new(tag).ok_or_else(|| format!("invalid tag {tag:?}"))?;
        let mut end = Duration::ZERO;
        for (start, len, h) in ih.intervals() {
            writer
                .write_histogram(&h, offset + start, len, Some(tag))
                .map_err(|e| e.to_string())?;
            end = end.max(start + len);
        }
        let measured = Duration::try_from_secs_f64(p.measured_seconds).unwrap_or(Duration::ZERO);
        offset += end.max(measured);
    }
    drop(writer);
    Ok(buf)
}

/// Writes one interval histogram as an interval log (`.hlog`) at `path`: its intervals,
/// untagged, with timestamps in seconds since `base` (the start of the measured window
/// they count from), under a comment line `title`.
pub fn write_interval_histogram(
    path: &Path,
    title: &str,
    base: SystemTime,
    ih: &IntervalHistogram,
) -> Result<(), OutputError> {
    let fail = |message: String| OutputError::Histogram {
        path: path.to_path_buf(),
        message,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut head = String::new();
    let _ = writeln!(head, "#[{title}: {}]", unit_words(ih.unit));
    let _ = writeln!(
        head,
        "#[Timestamps: seconds since BaseTime (the measured window's start)]"
    );
    let _ = writeln!(head, "#[Histogram log format version 1.3]");
    time_header(
        &mut head,
        base,
        humantime::format_rfc3339_millis(base).to_string(),
    );
    buf.extend_from_slice(head.as_bytes());
    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder.with_max_value_divisor(scaling_ratio(ih.unit));
    let mut writer = builder
        .begin_log_with(&mut buf, &mut serializer)
        .map_err(|e| fail(e.to_string()))?;
    for (start, len, h) in ih.intervals() {
        writer
            .write_histogram(&h, start, len, None)
            .map_err(|e| fail(e.to_string()))?;
    }
    drop(writer);
    write_file(path, &buf)
}

/// Reads back what [`write_interval_histogram`] wrote: the histogram (its total the sum of
/// its intervals, interval starts and lengths rounded to the millisecond the file keeps)
/// and the BaseTime, if the log names one.
pub fn read_interval_histogram(
    path: &Path,
    unit: Unit,
    interval: Duration,
) -> Result<(IntervalHistogram, Option<Duration>), OutputError> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    let bad = |message: String| OutputError::Histogram {
        path: path.to_path_buf(),
        message,
    };
    let ms = |d: Duration| Duration::from_millis((d.as_secs_f64() * 1e3).round() as u64);
    let bytes = fs::read(path).map_err(io_err(path))?;
    let mut deserializer = Deserializer::new();
    let mut ih = IntervalHistogram::new(unit, interval);
    let mut base = None;
    for entry in IntervalLogIterator::new(&bytes) {
        let interval = match entry.map_err(|e| bad(format!("{e:?}")))? {
            LogEntry::BaseTime(t) => {
                base = Some(t);
                continue;
            }
            LogEntry::StartTime(_) => continue,
            LogEntry::Interval(i) => i,
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|e| bad(e.to_string()))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut raw.as_slice())
            .map_err(|e| bad(e.to_string()))?;
        ih.total.add(&h).map_err(|e| bad(format!("{e:?}")))?;
        ih.push_interval(ms(interval.start_timestamp()), ms(interval.duration()), &h);
    }
    Ok((ih, base))
}

/// The end of an interval log's header: its start and base time (`base`, also written as
/// `rfc`), then the column names.
fn time_header(head: &mut String, base: SystemTime, rfc: String) {
    let base_secs = base
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let _ = writeln!(
        head,
        "#[StartTime: {base_secs:.3} (seconds since epoch), {rfc}]"
    );
    let _ = writeln!(head, "#[BaseTime: {base_secs:.3} (seconds since epoch)]");
    let _ = writeln!(
        head,
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
    );
}

/// Formats an optional number for CSV: empty when absent.
fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn load_name(load: LoadKind) -> &'static str {
    match load {
        LoadKind::OpenLoop => "open_loop",
        LoadKind::ClosedLoop => "closed_loop",
    }
}

/// The fixed columns of `summary.csv` after the parameter columns, with their values.
fn csv_fields(p: &PointSummary) -> Vec<(&'static str, String)> {
    let storage = p.storage.as_ref();
    let leader_syncs = storage.and_then(|s| s.nodes.iter().find(|n| n.node == s.leader));
    let f = |v: f64| v.to_string();
    vec![
        ("load", load_name(p.load).to_string()),
        ("offered_rate", f(p.offered_rate)),
        ("achieved_rate", f(p.achieved_rate)),
        ("saturated", p.saturated.to_string()),
        ("schedule_invalid", p.schedule_invalid.to_string()),
        ("emulator_invalid", p.emulator_invalid.to_string()),
        ("measured_seconds", f(p.measured_seconds)),
        ("warmup_seconds", f(p.warmup_seconds)),
        ("ok", p.ok.to_string()),
        ("errors", p.errors.to_string()),
        ("overload_errors", p.overload_errors.to_string()),
        (
            "overload_refused_unsent",
            p.overload_refused_unsent.to_string(),
        ),
        ("unanswered", p.unanswered.to_string()),
        ("latency_p50_us", f(p.latency.p50)),
        ("latency_p90_us", f(p.latency.p90)),
        ("latency_p99_us", f(p.latency.p99)),
        ("latency_p999_us", f(p.latency.p999)),
        ("latency_max_us", f(p.latency.max)),
        ("latency_mean_us", f(p.latency.mean)),
        ("schedule_error_p50_us", f(p.schedule_error.p50)),
        ("schedule_error_p99_us", f(p.schedule_error.p99)),
        ("schedule_error_max_us", f(p.schedule_error.max)),
        ("commit_lag_mean_us", f(p.commit_lag.mean)),
        ("commit_lag_p50_us", f(p.commit_lag.p50)),
        ("commit_lag_p99_us", f(p.commit_lag.p99)),
        ("apply_lag_mean_us", f(p.apply_lag.mean)),
        ("apply_lag_p50_us", f(p.apply_lag.p50)),
        ("apply_lag_p99_us", f(p.apply_lag.p99)),
        ("phase_queue_mean_us", f(p.phases.queue.mean)),
        ("phase_batch_wait_mean_us", f(p.phases.batch_wait.mean)),
        ("phase_replication_mean_us", f(p.phases.replication.mean)),
        ("phase_apply_mean_us", f(p.phases.apply.mean)),
        ("phase_reply_mean_us", f(p.phases.reply.mean)),
        ("phase_samples_missing", p.phase_samples_missing.to_string()),
        ("batch_size_mean", f(p.batch_size.mean)),
        ("batch_size_p50", f(p.batch_size.p50)),
        ("batch_size_max", f(p.batch_size.max)),
        ("pipeline_depth_mean", f(p.pipeline_depth.mean)),
        ("pipeline_depth_max", f(p.pipeline_depth.max)),
        (
            "append_messages_per_request",
            f(p.per_request.append_messages),
        ),
        ("heartbeats_per_request", f(p.per_request.heartbeats)),
        (
            "commit_notices_per_request",
            f(p.per_request.commit_notices),
        ),
        ("raft_messages_per_request", f(p.per_request.raft_messages)),
        ("wire_bytes_per_request", f(p.per_request.wire_bytes)),
        ("cpu_seconds_per_request", f(p.per_request.cpu_seconds)),
        ("floor_p50_us", opt(p.floor.as_ref().map(|f| f.rtt.p50))),
        ("floor_p99_us", opt(p.floor.as_ref().map(|f| f.rtt.p99))),
        ("latency_p50_over_floor", opt(p.latency_p50_over_floor)),
        ("latency_p99_over_floor", opt(p.latency_p99_over_floor)),
        (
            "emulator_error_p99_us",
            opt(p.emulator_error.as_ref().map(|e| e.p99)),
        ),
        (
            "sync_floor_per_s",
            opt(storage
                .and_then(|s| s.floor.as_ref())
                .map(|f| f.syncs_per_s)),
        ),
        (
            "throughput_over_sync_floor",
            opt(storage.and_then(|s| s.throughput_over_floor)),
        ),
        (
            "leader_entries_per_sync",
            opt(leader_syncs.map(|n| n.entries_per_sync)),
        ),
        (
            "leader_sync_p99_us",
            opt(leader_syncs.map(|n| n.sync_latency.p99)),
        ),
        (
            "saturation_throughput",
            opt(p.saturation.as_ref().map(|s| s.throughput)),
        ),
        (
            "quic_sent_packets",
            opt(p.quic_stats.map(|q| q.sent_packets as f64)),
        ),
        (
            "quic_lost_packets",
            opt(p.quic_stats.map(|q| q.lost_packets as f64)),
        ),
        (
            "node_cpu_seconds_per_request",
            f(p.per_request.node_cpu_seconds),
        ),
        (
            "harness_cpu_seconds_per_request",
            f(p.per_request.harness_cpu_seconds),
        ),
        (
            "harness_cpu_share",
            opt(p.harness_cpu.as_ref().map(|c| c.harness_share)),
        ),
        ("queue_depth_mean", f(p.queue_depth.mean)),
        ("queue_depth_max", f(p.queue_depth.max)),
    ]
}

/// Writes `summary.csv` (a row per point) for `run` at `path`.
pub fn write_csv(path: &Path, run: &RunSummary) -> Result<(), OutputError> {
    let csv_err = |source| OutputError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let params: BTreeSet<&str> = run
        .points
        .iter()
        .flat_map(|p| p.params.keys().map(String::as_str))
        .collect();
    let mut w = csv::Writer::from_path(path).map_err(csv_err)?;
    let fixed = csv_fields(&PointSummary::default());
    let header: Vec<&str> = ["name", "series"]
        .into_iter()
        .chain(params.iter().copied())
        .chain(fixed.iter().map(|(k, _)| *k))
        .collect();
    w.write_record(&header).map_err(csv_err)?;
    for p in &run.points {
        let mut row = vec![p.name.clone(), p.series.clone()];
        row.extend(
            params
                .iter()
                .map(|k| p.params.get(*k).cloned().unwrap_or_default()),
        );
        row.extend(csv_fields(p).into_iter().map(|(_, v)| v));
        w.write_record(&row).map_err(csv_err)?;
    }
    w.flush().map_err(io_err(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_safe_characters_only() {
        assert_eq!(
            sanitize("sparse-dense/workload.rate=200 x,y"),
            "sparse-dense_workload.rate=200_x_y"
        );
        assert_eq!(sanitize(""), "_");
        assert_eq!(file_names(["a/b", "a_b", "a b"]), ["a_b", "a_b-2", "a_b-3"]);
    }

    #[test]
    fn percentile_distribution_matches_java_layout() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        // Values below 2048 are exact at three digits, so the expected text is plain.
        for v in 1..=100u64 {
            h.record(v * 10).unwrap();
        }
        let text = percentile_distribution(&h, 5, 10.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "       1.000 0.000000000000          1           1.00"
        );
        let last = lines[lines.len() - 4];
        assert_eq!(last, "     100.000 1.000000000000        100");
        assert_eq!(
            lines[lines.len() - 3],
            "#[Mean    =       50.500, StdDeviation   =       28.866]"
        );
        assert_eq!(
            lines[lines.len() - 2],
            "#[Max     =      100.000, Total count    =          100]"
        );
        assert!(lines[lines.len() - 1].starts_with("#[Buckets = "));
        assert!(lines[lines.len() - 1].ends_with("SubBuckets     =         2048]"));
    }

    #[test]
    fn empty_histogram_prints_header_and_footer() {
        let h = Histogram::<u64>::new(3).unwrap();
        let text = percentile_distribution(&h, 5, 1.0);
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("Total count    =            0]"));
    }
}
