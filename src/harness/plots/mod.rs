//! SVG plots of a run, drawn from `summary.json` (and the latency histograms where a plot
//! needs the whole distribution), written into `<results>/plots/`.
//!
//! One file per figure; [`format`] and [`axis`] are shared with the report, so that a
//! number reads the same in a picture and in a table, and [`canvas`] holds the drawing
//! boilerplate. Each figure function is pure: it returns the SVG text, or `None` when the
//! run holds no data for it, so `raftbench report` can redraw whatever a run measured.
//!
//! - [`latency_vs_rate()`]: client latency percentiles against offered rate.
//! - [`throughput_vs_rate()`]: delivered throughput and overload refusals against offered rate.
//! - [`queues_vs_rate()`]: batch size, uncommitted entries and inbox depth against offered rate.
//! - [`percentile_spectrum()`]: each point's latency by percentile (needs the histograms).
//! - [`commit_lag_vs_heartbeat()`]: follower commit lag against H, with the models.
//! - [`sparse_vs_dense()`]: the sparse and dense points side by side, by commit mode.
//! - [`latency_vs_heartbeat()`]: client latency against H, with each design's model.
//! - [`batching()`]: saturation throughput and latency at a fraction of it, against the
//!   pipeline window and the batch limit, per round trip.
//! - [`loss()`]: client latency, follower commit lag and QUIC losses against link loss.
//! - [`fault_timeline()`]: throughput per 100 ms through each faulted point's faults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::histograms::{IntervalHistogram, PointHistograms, Unit};
use super::output::{file_names, fresh_dir, read_interval_log, write_file, OutputError};
use super::summary::RunSummary;

pub mod axis;
pub mod batching;
pub mod canvas;
pub mod commit_lag_vs_heartbeat;
pub mod fault_timeline;
pub mod format;
pub mod latency_vs_heartbeat;
pub mod latency_vs_rate;
pub mod loss;
pub mod percentile_spectrum;
pub mod queues_vs_rate;
pub mod series;
pub mod sparse_vs_dense;
pub mod throughput_vs_rate;

pub use batching::batching;
pub use commit_lag_vs_heartbeat::commit_lag_vs_heartbeat;
pub use fault_timeline::fault_timeline;
pub use latency_vs_heartbeat::latency_vs_heartbeat;
pub use latency_vs_rate::latency_vs_rate;
pub use loss::loss;
pub use percentile_spectrum::percentile_spectrum;
pub use queues_vs_rate::queues_vs_rate;
pub use sparse_vs_dense::sparse_vs_dense;
pub use throughput_vs_rate::throughput_vs_rate;

/// The sweep knob of the offered rate.
pub const RATE_KEY: &str = "workload.rate";
/// The sweep knob of the heartbeat interval.
pub const HEARTBEAT_KEY: &str = "raft.heartbeat_ms";
/// The series the sparse/dense comparison is drawn from when present.
pub const SPARSE_DENSE_SERIES: &str = "sparse-dense";
/// At most this many curves in the percentile spectrum, beyond which it is unreadable.
pub const MAX_SPECTRUM_CURVES: usize = 10;

/// File names of the plots, in the order the report shows them.
pub const PLOT_FILES: [&str; 10] = [
    "latency_vs_rate.svg",
    "throughput_vs_rate.svg",
    "queues_vs_rate.svg",
    "percentile_spectrum.svg",
    "commit_lag_vs_heartbeat.svg",
    "latency_vs_heartbeat.svg",
    "sparse_vs_dense.svg",
    "batching.svg",
    "loss.svg",
    "fault_timeline.svg",
];

/// A plot that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlotError(pub String);

/// A drawing error as a [`PlotError`] (plotters' errors are generic over the backend).
fn pe<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError(e.to_string())
}

/// Draws every plot the run has data for into `dir/plots/`, returning the files written.
pub fn write_plots(
    dir: &Path,
    run: &RunSummary,
    hists: &[(String, PointHistograms)],
) -> Result<Vec<PathBuf>, OutputError> {
    let plots_dir = dir.join("plots");
    // Plots from an earlier run in the same directory would be mistaken for this run's.
    fresh_dir(&plots_dir, "svg")?;
    // `raftbench report` has no histograms in memory; the interval log holds them exactly.
    let reread;
    let hists = if hists.iter().any(|(_, m)| m.contains_key("latency")) {
        hists
    } else {
        reread = latency_from_hlog(dir, run);
        &reread[..]
    };
    let mut written = Vec::new();
    for name in PLOT_FILES {
        let path = plots_dir.join(name);
        let svg = match name {
            "latency_vs_rate.svg" => latency_vs_rate(run),
            "throughput_vs_rate.svg" => throughput_vs_rate(run),
            "queues_vs_rate.svg" => queues_vs_rate(run),
            "percentile_spectrum.svg" => percentile_spectrum(run, hists),
            "commit_lag_vs_heartbeat.svg" => commit_lag_vs_heartbeat(run),
            "latency_vs_heartbeat.svg" => latency_vs_heartbeat(run),
            "batching.svg" => batching(run),
            "loss.svg" => loss(run),
            "fault_timeline.svg" => fault_timeline(run),
            _ => sparse_vs_dense(run),
        }
        .map_err(|e| OutputError::Plot {
            path: path.clone(),
            message: e.0,
        })?;
        if let Some(svg) = svg {
            write_file(&path, svg.as_bytes())?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The latency histograms of a run's points read back from `hlog/latency.hlog` (tags are
/// the points' file names); empty when the log is missing or unreadable.
fn latency_from_hlog(dir: &Path, run: &RunSummary) -> Vec<(String, PointHistograms)> {
    let Ok(mut totals) = read_interval_log(&dir.join("hlog").join("latency.hlog")) else {
        return Vec::new();
    };
    let tags = file_names(run.points.iter().map(|p| p.name.as_str()));
    run.points
        .iter()
        .zip(tags)
        .filter_map(|(p, tag)| {
            let total = totals.remove(&tag)?;
            let mut ih = IntervalHistogram::new(Unit::Nanos, Duration::from_secs(1));
            ih.total = total;
            Some((
                p.name.clone(),
                PointHistograms::from([("latency".to_string(), ih)]),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_run_draws_nothing() {
        let run = RunSummary::default();
        assert!(latency_vs_rate(&run).unwrap().is_none());
        assert!(throughput_vs_rate(&run).unwrap().is_none());
        assert!(queues_vs_rate(&run).unwrap().is_none());
        assert!(percentile_spectrum(&run, &[]).unwrap().is_none());
        assert!(commit_lag_vs_heartbeat(&run).unwrap().is_none());
        assert!(sparse_vs_dense(&run).unwrap().is_none());
        assert!(batching(&run).unwrap().is_none());
        assert!(latency_vs_heartbeat(&run).unwrap().is_none());
        assert!(loss(&run).unwrap().is_none());
        assert!(fault_timeline(&run).unwrap().is_none());
    }
}
