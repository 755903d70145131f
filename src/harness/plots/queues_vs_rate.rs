//! What the leader's queues and batches do as offered load rises (log-log): batch size,
//! uncommitted entries and inbox depth beside the latency plot, so that a knee shows
//! where the batches pin at their limit and the queues fill.

use plotters::prelude::*;

use super::axis::{decades, max_of, min_positive};
use super::canvas::{color, figure_chart, styled, svg, with_legend, Legend, Mark, PLOT_WIDTH};
use super::format::si;
use super::series::rate_groups;
use super::{pe, PlotError};
use crate::harness::summary::{PointSummary, RunSummary};

/// A quantity drawn: its legend label and how to read it from a point.
type Quantity = (&'static str, fn(&PointSummary) -> f64);

/// The three quantities drawn, each with its marker.
const QUANTITIES: [Quantity; 3] = [
    ("batch size mean (entries per AppendEntries)", |p| {
        p.batch_size.mean
    }),
    ("uncommitted entries at the leader, mean", |p| {
        p.queue_depth.mean
    }),
    ("requests in the leader's inbox, mean", |p| {
        p.inbox_depth.mean
    }),
];

/// Batch size, uncommitted entries and inbox depth (means) against offered rate for every
/// series sweeping `workload.rate`.
pub fn queues_vs_rate(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let groups = rate_groups(run, |p| p.queue_depth.count > 0);
    if groups.is_empty() {
        return Ok(None);
    }
    let all = || groups.iter().flat_map(|(_, g)| g.iter());
    let values = || all().flat_map(|p| QUANTITIES.iter().map(move |(_, f)| f(p)));
    let (x0, x1) = decades(
        min_positive(all().map(|p| p.offered_rate)),
        max_of(all().map(|p| p.offered_rate)),
    );
    // Empty queues are drawn on the axis floor.
    let (y0, y1) = decades(min_positive(values()).min(0.1), max_of(values()).max(1.0));
    let pos = |v: f64| v.max(y0);

    let mut legend = Legend::default();
    for (i, (label, _)) in groups.iter().enumerate() {
        legend.add(label.clone(), Mark::Line(color(i), 3));
    }
    legend.add(QUANTITIES[0].0, Mark::Dot(BLACK));
    legend.add(QUANTITIES[1].0, Mark::Triangle(BLACK));
    legend.add(QUANTITIES[2].0, Mark::Cross(BLACK));

    let title = format!("{}: batches and queues vs offered rate", run.scenario);
    let svg = svg((PLOT_WIDTH + legend.width(), 650), |root| {
        let plot = with_legend(root, &title, &legend)?;
        let mut chart = figure_chart(&plot, (x0..x1).log_scale(), (y0..y1).log_scale(), 15)?;
        styled(&mut chart.configure_mesh(), 16, 13)
            .x_desc("offered rate (requests/s, log)")
            .y_desc("entries or requests (log)")
            .x_label_formatter(&|v| si(*v))
            .y_label_formatter(&|v| si(*v))
            .draw()
            .map_err(pe)?;
        for (i, (_, g)) in groups.iter().enumerate() {
            let c = color(i);
            for (k, (_, f)) in QUANTITIES.iter().enumerate() {
                let xy: Vec<(f64, f64)> = g.iter().map(|p| (p.offered_rate, pos(f(p)))).collect();
                let width = if k == 0 { 2 } else { 1 };
                chart
                    .draw_series(LineSeries::new(xy.clone(), c.stroke_width(width)))
                    .map_err(pe)?;
                match k {
                    0 => chart
                        .draw_series(xy.iter().map(|&p| Circle::new(p, 4, c.filled())))
                        .map(|_| ()),
                    1 => chart
                        .draw_series(xy.iter().map(|&p| TriangleMarker::new(p, 5, c.filled())))
                        .map(|_| ()),
                    _ => chart
                        .draw_series(xy.iter().map(|&p| Cross::new(p, 5, c.stroke_width(2))))
                        .map(|_| ()),
                }
                .map_err(pe)?;
            }
        }
        Ok(())
    })?;
    Ok(Some(svg))
}
