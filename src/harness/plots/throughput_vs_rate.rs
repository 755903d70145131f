//! Delivered throughput and overload refusals against offered rate (linear), beside the
//! latency plot: the knee, and whether anything past it collapses, at a glance.

use plotters::prelude::*;

use super::axis::{from_zero, max_of};
use super::canvas::{
    color, figure_chart, font, styled, svg, with_legend, Legend, Mark, GREY_LINE, PLOT_WIDTH,
    SATURATED,
};
use super::format::si;
use super::series::rate_groups;
use super::{pe, PlotError};
use crate::harness::summary::RunSummary;

/// Fraction of the peak a point past the knee must still deliver (the line drawn).
pub const PEAK_FRACTION: f64 = 0.9;

/// Delivered (successful answers per second) and refused-as-overloaded requests per second
/// against offered rate for every series sweeping `workload.rate`, with the ideal
/// delivered = offered line and 90% of each series' peak.
pub fn throughput_vs_rate(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let groups = rate_groups(run, |_| true);
    if groups.is_empty() {
        return Ok(None);
    }
    let all = || groups.iter().flat_map(|(_, g)| g.iter());
    let overload_rate = |p: &crate::harness::summary::PointSummary| {
        if p.measured_seconds > 0.0 {
            p.overload_errors as f64 / p.measured_seconds
        } else {
            0.0
        }
    };
    let x1 = from_zero(max_of(all().map(|p| p.offered_rate)));
    let y1 = from_zero(max_of(
        all()
            .map(|p| p.achieved_rate.max(overload_rate(p)))
            .chain(all().map(|p| p.offered_rate)),
    ));

    let mut legend = Legend::default();
    for (i, (label, _)) in groups.iter().enumerate() {
        legend.add(format!("{label}: delivered"), Mark::LineDot(color(i)));
    }
    legend.add("refused as overloaded (same color)", Mark::Dashed(BLACK));
    legend.add("delivered = offered", Mark::Dashed(GREY_LINE));
    legend.add(
        format!("{:.0}% of the series' peak", PEAK_FRACTION * 100.0),
        Mark::Dashed(SATURATED),
    );

    let title = format!(
        "{}: delivered throughput vs offered rate (open loop)",
        run.scenario
    );
    let svg = svg((PLOT_WIDTH + legend.width(), 650), |root| {
        let plot = with_legend(root, &title, &legend)?;
        let mut chart = figure_chart(&plot, 0.0..x1, 0.0..y1, 25)?;
        styled(&mut chart.configure_mesh(), 16, 13)
            .x_desc("offered rate (requests/s)")
            .y_desc("requests/s")
            .x_label_formatter(&|v| si(*v))
            .y_label_formatter(&|v| si(*v))
            .draw()
            .map_err(pe)?;
        let top = x1.min(y1);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (top, top)],
                4,
                4,
                GREY_LINE.stroke_width(1),
            ))
            .map_err(pe)?;
        for (i, (_, g)) in groups.iter().enumerate() {
            let c = color(i);
            let delivered: Vec<(f64, f64)> = g
                .iter()
                .map(|p| (p.offered_rate, p.achieved_rate))
                .collect();
            chart
                .draw_series(LineSeries::new(delivered.clone(), c.stroke_width(2)))
                .map_err(pe)?;
            chart
                .draw_series(delivered.iter().map(|&xy| Circle::new(xy, 4, c.filled())))
                .map_err(pe)?;
            let refused: Vec<(f64, f64)> = g
                .iter()
                .map(|p| (p.offered_rate, overload_rate(p)))
                .collect();
            if refused.iter().any(|r| r.1 > 0.0) {
                chart
                    .draw_series(DashedLineSeries::new(
                        refused.clone(),
                        6,
                        4,
                        c.stroke_width(1),
                    ))
                    .map_err(pe)?;
                chart
                    .draw_series(
                        refused
                            .iter()
                            .map(|&xy| Cross::new(xy, 5, c.stroke_width(2))),
                    )
                    .map_err(pe)?;
            }
            let peak = max_of(g.iter().map(|p| p.achieved_rate));
            let line = peak * PEAK_FRACTION;
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, line), (x1, line)],
                    3,
                    3,
                    SATURATED.stroke_width(1),
                ))
                .map_err(pe)?;
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((0.0, line))
                        + Text::new(
                            format!("90% of peak {}", si(peak)),
                            (6, 4),
                            font(12).color(&SATURATED),
                        ),
                ))
                .map_err(pe)?;
        }
        Ok(())
    })?;
    Ok(Some(svg))
}
