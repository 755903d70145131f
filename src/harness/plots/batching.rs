//! Saturation throughput, and latency at a fraction of it, against the pipeline window
//! and against the batch limit, one line per round trip (the lecture's batching and
//! pipelining across round trips).

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{decades, max_of, min_positive};
use super::canvas::{color, figure_chart, font, styled, svg, Legend, Mark, INVALID};
use super::format::{plain, si};
use super::{pe, PlotError};
use crate::harness::summary::{PointSummary, RunSummary};

/// The sweep knob of the pipeline window.
pub const WINDOW_KEY: &str = "raft.max_inflight_msgs";
/// The sweep knob of the batch limit.
pub const BATCH_KEY: &str = "raft.max_batch_entries";

/// One line of a panel: a round trip and its points in x order.
type Line<'a> = (f64, Vec<&'a PointSummary>);

/// A value of a point (an axis, a knob).
type Value = fn(&PointSummary) -> f64;

/// The emulated round trip of a point in ms (twice its links' one-way delay).
pub fn rtt_ms(p: &PointSummary) -> f64 {
    2.0 * p.config.network.delay_ms
}

fn window(p: &PointSummary) -> f64 {
    p.config.raft.max_inflight_msgs as f64
}

fn batch(p: &PointSummary) -> f64 {
    p.config.raft.max_batch_entries as f64
}

/// The lines of one panel: for each round trip, the points with a saturation probe that
/// sweep `key`, joined by the point of another series that ran the same round trip with
/// the same value of the other knob (so a window sweep at batch 1024 and a batch sweep at
/// window 16 share their corner point).
pub fn panel_lines<'a>(run: &'a RunSummary, key: &str) -> Vec<Line<'a>> {
    let (x, other): (Value, Value) = if key == WINDOW_KEY {
        (window, batch)
    } else {
        (batch, window)
    };
    let probed = || run.points.iter().filter(|p| p.saturation.is_some());
    // Round trip (in us, to key a map) -> the other knob's value the sweep ran at.
    let mut fixed: BTreeMap<u64, f64> = BTreeMap::new();
    for p in probed().filter(|p| p.params.contains_key(key)) {
        fixed
            .entry((rtt_ms(p) * 1e3).round() as u64)
            .or_insert(other(p));
    }
    fixed
        .into_iter()
        .map(|(rtt_us, at)| {
            let mut pts: Vec<&PointSummary> = probed()
                .filter(|p| (rtt_ms(p) * 1e3).round() as u64 == rtt_us && other(p) == at)
                .collect();
            pts.sort_by(|a, b| x(a).total_cmp(&x(b)));
            pts.dedup_by(|a, b| x(a) == x(b));
            (rtt_us as f64 / 1e3, pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect()
}

fn throughput(p: &PointSummary) -> f64 {
    p.saturation.as_ref().map_or(0.0, |s| s.throughput)
}

fn invalid(p: &PointSummary) -> bool {
    p.invalid() || p.saturated || p.saturation.as_ref().is_some_and(|s| s.invalid)
}

/// Draws one panel: `y` of each point against `x`, log-log, one line per round trip.
#[allow(clippy::too_many_arguments)]
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[Line<'_>],
    x: Value,
    ys: &[(Value, bool)],
    rtts: &[f64],
    x_desc: &str,
    y_desc: &str,
) -> Result<(), PlotError> {
    let all = || lines.iter().flat_map(|(_, g)| g.iter().copied());
    let (x0, x1) = decades(min_positive(all().map(x)), max_of(all().map(x)));
    let yv = || all().flat_map(|p| ys.iter().map(move |(y, _)| y(p)));
    let (y0, y1) = decades(min_positive(yv()), max_of(yv()));
    let mut chart = figure_chart(area, (x0..x1).log_scale(), (y0..y1).log_scale(), 15)?;
    styled(&mut chart.configure_mesh(), 15, 12)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| plain(*v))
        .y_label_formatter(&|v| si(*v))
        .draw()
        .map_err(pe)?;
    for (rtt, g) in lines {
        let i = rtts.iter().position(|r| r == rtt).unwrap_or(0);
        let c = color(i);
        for &(y, thick) in ys {
            let pts: Vec<(f64, f64)> = g
                .iter()
                .filter(|p| y(p) > 0.0)
                .map(|p| (x(p), y(p)))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    pts.clone(),
                    c.stroke_width(if thick { 2 } else { 1 }),
                ))
                .map_err(pe)?;
            if thick {
                chart
                    .draw_series(pts.iter().map(|&xy| Circle::new(xy, 4, c.filled())))
                    .map_err(pe)?;
            } else {
                chart
                    .draw_series(pts.iter().map(|&xy| TriangleMarker::new(xy, 4, c.filled())))
                    .map_err(pe)?;
            }
            chart
                .draw_series(
                    g.iter()
                        .filter(|p| invalid(p) && y(p) > 0.0)
                        .map(|p| Circle::new((x(p), y(p)), 8, INVALID.stroke_width(2))),
                )
                .map_err(pe)?;
        }
    }
    Ok(())
}

/// Saturation throughput (top) and client latency at the configured fraction of it
/// (bottom, p50 and p99) against the pipeline window (left) and the batch limit (right),
/// one line per round trip; None if no point ran with a saturation probe.
pub fn batching(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let by_window = panel_lines(run, WINDOW_KEY);
    let by_batch = panel_lines(run, BATCH_KEY);
    if by_window.is_empty() && by_batch.is_empty() {
        return Ok(None);
    }
    let mut rtts: Vec<f64> = by_window.iter().chain(&by_batch).map(|(r, _)| *r).collect();
    rtts.sort_by(f64::total_cmp);
    rtts.dedup();
    let fixed_of = |lines: &[Line<'_>], other: Value| {
        lines
            .first()
            .and_then(|(_, g)| g.first())
            .map(|p| plain(other(p)))
            .unwrap_or_default()
    };
    let fraction = run
        .points
        .iter()
        .find_map(|p| p.saturation.as_ref().map(|s| s.fraction))
        .unwrap_or(0.5);
    let mut legend = Legend::default();
    for (i, r) in rtts.iter().enumerate() {
        legend.add(
            format!("round trip {} ms", plain(*r)),
            Mark::LineDot(color(i)),
        );
    }
    legend.add(
        "top: saturation throughput (closed-loop probe)",
        Mark::Blank,
    );
    legend.add(
        format!("bottom: latency at {} of it (open loop)", plain(fraction)),
        Mark::Blank,
    );
    legend.add("p50: circle, thick line", Mark::Dot(BLACK));
    legend.add("p99: triangle, thin line", Mark::Triangle(BLACK));
    legend.add(
        "invalid: emulator missed its schedule, or saturated",
        Mark::Ring(INVALID),
    );
    let title = format!(
        "{}: batching and pipelining across round trips",
        run.scenario
    );
    let svg = svg((1400 + legend.width(), 1000), |root| {
        let body = root.titled(&title, font(22)).map_err(pe)?;
        let (plot, side) = body.split_horizontally(1400);
        legend.draw(&side)?;
        let cells = plot.split_evenly((2, 2));
        let w_desc = format!(
            "pipeline window (AppendEntries in flight), batch limit {}",
            fixed_of(&by_window, batch)
        );
        let b_desc = format!(
            "batch limit (entries per AppendEntries), window {}",
            fixed_of(&by_batch, window)
        );
        let lat50: Value = |p| p.latency.p50;
        let lat99: Value = |p| p.latency.p99;
        if !by_window.is_empty() {
            panel(
                &cells[0],
                &by_window,
                window,
                &[(throughput, true)],
                &rtts,
                &w_desc,
                "saturation throughput (requests/s)",
            )?;
            panel(
                &cells[2],
                &by_window,
                window,
                &[(lat50, true), (lat99, false)],
                &rtts,
                &w_desc,
                "client latency (µs)",
            )?;
        }
        if !by_batch.is_empty() {
            panel(
                &cells[1],
                &by_batch,
                batch,
                &[(throughput, true)],
                &rtts,
                &b_desc,
                "saturation throughput (requests/s)",
            )?;
            panel(
                &cells[3],
                &by_batch,
                batch,
                &[(lat50, true), (lat99, false)],
                &rtts,
                &b_desc,
                "client latency (µs)",
            )?;
        }
        Ok(())
    })?;
    Ok(Some(svg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::summary::Saturation;

    fn point(rtt_ms: f64, w: usize, b: usize, sweeps: &str, tput: f64) -> PointSummary {
        let mut p = PointSummary {
            saturation: Some(Saturation {
                throughput: tput,
                fraction: 0.5,
                ..Saturation::default()
            }),
            ..PointSummary::default()
        };
        p.config.network.delay_ms = rtt_ms / 2.0;
        p.config.raft.max_inflight_msgs = w;
        p.config.raft.max_batch_entries = b;
        let v = if sweeps == WINDOW_KEY { w } else { b };
        p.params.insert(sweeps.into(), v.to_string());
        p.latency.p50 = 1000.0;
        p.latency.p99 = 2000.0;
        p
    }

    #[test]
    fn the_window_and_batch_sweeps_share_their_corner_point() {
        let mut run = RunSummary::default();
        for rtt in [0.2, 20.0] {
            for w in [1, 4, 16] {
                run.points
                    .push(point(rtt, w, 1024, WINDOW_KEY, 100.0 * w as f64));
            }
            for b in [1, 16] {
                run.points.push(point(rtt, 16, b, BATCH_KEY, b as f64));
            }
        }
        let w = panel_lines(&run, WINDOW_KEY);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].0, 0.2);
        let xs: Vec<f64> = w[1].1.iter().map(|p| window(p)).collect();
        assert_eq!(xs, [1.0, 4.0, 16.0]);
        let b = panel_lines(&run, BATCH_KEY);
        let xs: Vec<f64> = b[0].1.iter().map(|p| batch(p)).collect();
        assert_eq!(
            xs,
            [1.0, 16.0, 1024.0],
            "the window series' W=16 point joins"
        );
        assert!(batching(&run).unwrap().unwrap().contains("<svg"));
        assert!(batching(&RunSummary::default()).unwrap().is_none());
    }
}
