//! Runs a whole scenario: the baselines, every point in order with a progress bar, then
//! writes summary, histograms, plots and the report under the results directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::harness::baseline;
use crate::harness::environment;
use crate::harness::histograms::PointHistograms;
use crate::harness::output::{self, OutputError};
use crate::harness::plots;
use crate::harness::point::{run_point_in, RunError};
use crate::harness::processes::EchoProcess;
use crate::harness::report;
use crate::harness::saturation;
use crate::harness::scenario::{Scenario, TargetKind};
use crate::harness::summary::{Floor, RunSummary};

/// Round trips per baseline floor.
pub const BASELINE_SAMPLES: usize = 2_000;

/// Why a scenario run failed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A point failed to run.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Results could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A node process died during a point without a fault killing it: the run's results
    /// are written (the point marked failed), but the run fails.
    #[error("{dir}: node processes died during: {points} (their logs are under nodes/)")]
    NodesDied {
        /// The results directory.
        dir: PathBuf,
        /// Each failing point with the nodes that died.
        points: String,
    },
    /// A faulted point lost acknowledged writes, or could not read them all back: the run's
    /// results are written, but the run fails.
    #[error("{dir}: acknowledged writes lost or unverified after faults: {points}")]
    AcknowledgedLost {
        /// The results directory.
        dir: PathBuf,
        /// Each failing point with its counts.
        points: String,
    },
}

/// How to run a scenario.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Where results go (`<dir>/` itself, e.g. `results/default`).
    pub out_dir: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Runs every point of `sc` and writes the results; returns the summary.
pub fn run_scenario(sc: &Scenario, opts: &RunOptions) -> Result<RunSummary, ScenarioError> {
    let mut run = RunSummary {
        scenario: sc.file.name.clone(),
        description: sc.file.description.trim().to_string(),
        seed: sc.file.seed,
        scenario_text: sc.text.clone(),
        environment: environment::capture(),
        baselines: Vec::new(),
        points: Vec::new(),
    };
    let bar = if opts.progress {
        let b = ProgressBar::new((sc.points.len() as u64 + 1) * 1000);
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise:.dim} [{bar:40.cyan/blue}] {percent:>3}% {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        ProgressBar::hidden()
    };
    if sc.file.baseline {
        bar.set_message("baseline: raw QUIC and TCP round trips");
        let base = &sc.file.base.cluster;
        run.baselines = baseline::measure_all(base.threading, &base.quic, BASELINE_SAMPLES, None)
            .into_iter()
            .map(|(b, _)| b)
            .collect();
    }
    bar.set_position(1000);
    let mut hists: Vec<(String, PointHistograms)> = Vec::new();
    // Points that share a transport, threading and arrival process share a floor.
    let mut floors: Vec<(baseline::FloorKey, Option<Floor>)> = Vec::new();
    for (i, p) in sc.points.iter().enumerate() {
        let base_pos = (i as u64 + 1) * 1000;
        let data = opts.out_dir.join("data");
        // A point at a fraction of its saturation throughput: the probe first, on a
        // cluster of its own; then the point resolved to its open-loop rate.
        let resolved;
        let (p, saturation) = match saturation::probe_point(p) {
            Some(probe) => {
                bar.set_message(format!("{}: saturation probe", p.name));
                let (found, _) = run_point_in(&probe, None, &|_| {}, Some(&data))?;
                let (r, s) =
                    saturation::at_fraction(p, &found).map_err(|reason| RunError::Harness {
                        point: p.name.clone(),
                        reason,
                    })?;
                resolved = r;
                (&resolved, Some(s))
            }
            None => (p, None),
        };
        bar.set_message(format!("{} ({}/{})", p.name, i + 1, sc.points.len()));
        let floor = if sc.file.baseline {
            let key = baseline::FloorKey::of(&p.config);
            match floors.iter().find(|(k, _)| *k == key) {
                Some((_, f)) => f.clone(),
                None => {
                    bar.set_message(format!("{}: its rate-matched floor", p.name));
                    let f = match p.config.cluster.target {
                        TargetKind::InProcess => baseline::rate_matched(&p.config),
                        // Between two processes (and namespaces), as the nodes talk.
                        TargetKind::Processes => {
                            match EchoProcess::start(&p.config, &opts.out_dir.join("nodes")) {
                                Ok(echo) => baseline::rate_matched_to(&p.config, &echo.peer),
                                Err(e) => {
                                    tracing::warn!(point = %p.name, error = %e, "floor not measured");
                                    None
                                }
                            }
                        }
                        // The harness cannot start an echo on another host.
                        TargetKind::Remote => None,
                    };
                    floors.push((key, f.clone()));
                    f
                }
            }
        } else {
            None
        };
        let b = bar.clone();
        let (mut summary, h) = run_point_in(
            p,
            floor,
            &move |f| b.set_position(base_pos + (f * 1000.0) as u64),
            Some(&data),
        )?;
        // The nodes' data of the point is removed with it; an empty parent goes too.
        let _ = std::fs::remove_dir(&data);
        summary.saturation = saturation;
        run.points.push(summary);
        hists.push((p.name.clone(), h));
    }
    bar.finish_and_clear();
    write_all(&opts.out_dir, &run, &hists)?;
    let lost: Vec<String> = run
        .points
        .iter()
        .filter_map(|p| {
            let c = p.correctness.as_ref()?;
            (c.acknowledged_lost > 0 || c.unverified > 0).then(|| {
                format!(
                    "{} ({} of {} lost, {} unverified)",
                    p.name, c.acknowledged_lost, c.acknowledged_writes, c.unverified
                )
            })
        })
        .collect();
    let died: Vec<String> = run
        .points
        .iter()
        .filter_map(|p| {
            let t = p.target.as_ref().filter(|t| !t.failures.is_empty())?;
            Some(format!("{}: {}", p.name, t.failures.join(", ")))
        })
        .collect();
    if !died.is_empty() {
        return Err(ScenarioError::NodesDied {
            dir: opts.out_dir.clone(),
            points: died.join("; "),
        });
    }
    if !lost.is_empty() {
        return Err(ScenarioError::AcknowledgedLost {
            dir: opts.out_dir.clone(),
            points: lost.join("; "),
        });
    }
    Ok(run)
}

/// Writes summary, histograms, plots and report for `run` into `dir`.
pub fn write_all(
    dir: &Path,
    run: &RunSummary,
    hists: &[(String, PointHistograms)],
) -> Result<(), OutputError> {
    output::write_run(dir, run, hists)?;
    crate::harness::faults::write_timelines(dir, run)?;
    let plots = plots::write_plots(dir, run, hists)?;
    report::write_report(dir, run, &plots)?;
    Ok(())
}
