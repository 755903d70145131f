//! Client latency p50/p99/p99.9 against offered rate, log-log, with the measured floor.

use plotters::prelude::*;

use super::axis::{decades, max_of, min_positive};
use super::canvas::{
    color, figure_chart, font, styled, svg, with_legend, Legend, Mark, GREY_LINE, INVALID,
    PLOT_WIDTH, SATURATED,
};
use super::format::{micros, si};
use super::series::rate_groups;
use super::{pe, PlotError};
use crate::harness::summary::{Baseline, RunSummary};

/// Client latency p50/p99/p99.9 against offered rate for every series sweeping
/// `workload.rate` (log-log), saturated and invalid points ringed and labelled.
pub fn latency_vs_rate(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let groups = rate_groups(run, |p| p.latency.count > 0);
    if groups.is_empty() {
        return Ok(None);
    }
    let all = || groups.iter().flat_map(|(_, g)| g.iter());
    // The raw floors only (plain quinn and TCP), when measured: five close lines with
    // their labels would bury each other.
    let measured = |b: &&Baseline| b.rtt.count > 0 && b.rtt.p50 > 0.0;
    let raw: Vec<&Baseline> = run
        .baselines
        .iter()
        .filter(measured)
        .filter(|b| b.transport.ends_with("-raw"))
        .collect();
    let shown = if raw.is_empty() {
        run.baselines.iter().filter(measured).collect()
    } else {
        raw
    };
    let floors: Vec<(String, f64)> = shown
        .into_iter()
        .map(|b| (b.transport.clone(), b.rtt.p50))
        .collect();
    let (x0, x1) = decades(
        min_positive(all().map(|p| p.offered_rate)),
        max_of(all().map(|p| p.offered_rate)),
    );
    let (y0, y1) = decades(
        min_positive(
            all()
                .map(|p| p.latency.p50)
                .chain(floors.iter().map(|f| f.1)),
        ),
        max_of(
            all()
                .map(|p| p.latency.p999.max(p.latency.p99))
                .chain(floors.iter().map(|f| f.1)),
        ),
    );
    let pos = |v: f64| v.max(y0);

    // One color per line, one marker per percentile: the legend says each once rather
    // than for every combination.
    let mut legend = Legend::default();
    for (i, (label, _)) in groups.iter().enumerate() {
        legend.add(label.clone(), Mark::Line(color(i), 3));
    }
    legend.add("p50: circle, thick line", Mark::Dot(BLACK));
    legend.add("p99: triangle, thin line", Mark::Triangle(BLACK));
    legend.add("p99.9: cross, dashed line", Mark::Cross(BLACK));
    if all().any(|p| p.saturated) {
        legend.add(
            "saturated: achieved < 95% of offered",
            Mark::Ring(SATURATED),
        );
    }
    if all().any(|p| p.invalid() && !p.saturated) {
        legend.add(
            "invalid: generator or emulator missed its schedule",
            Mark::Ring(INVALID),
        );
    }
    if !floors.is_empty() {
        legend.add("raw round trip p50 (the floor)", Mark::Dashed(GREY_LINE));
    }

    let title = format!(
        "{}: client latency vs offered rate (open loop)",
        run.scenario
    );
    let svg = svg((PLOT_WIDTH + legend.width(), 650), |root| {
        let plot = with_legend(root, &title, &legend)?;
        let mut chart = figure_chart(&plot, (x0..x1).log_scale(), (y0..y1).log_scale(), 15)?;
        styled(&mut chart.configure_mesh(), 16, 13)
            .x_desc("offered rate (requests/s, log)")
            .y_desc("client latency from the schedule (µs, log)")
            .x_label_formatter(&|v| si(*v))
            .y_label_formatter(&|v| si(*v))
            .draw()
            .map_err(pe)?;

        for (i, (_, g)) in groups.iter().enumerate() {
            let c = color(i);
            let p50: Vec<(f64, f64)> = g
                .iter()
                .map(|p| (p.offered_rate, pos(p.latency.p50)))
                .collect();
            let p99: Vec<(f64, f64)> = g
                .iter()
                .map(|p| (p.offered_rate, pos(p.latency.p99)))
                .collect();
            let p999: Vec<(f64, f64)> = g
                .iter()
                .map(|p| (p.offered_rate, pos(p.latency.p999)))
                .collect();
            chart
                .draw_series(LineSeries::new(p50.clone(), c.stroke_width(2)))
                .map_err(pe)?;
            chart
                .draw_series(p50.iter().map(|&xy| Circle::new(xy, 4, c.filled())))
                .map_err(pe)?;
            chart
                .draw_series(LineSeries::new(p99.clone(), c.stroke_width(1)))
                .map_err(pe)?;
            chart
                .draw_series(p99.iter().map(|&xy| TriangleMarker::new(xy, 5, c.filled())))
                .map_err(pe)?;
            chart
                .draw_series(DashedLineSeries::new(p999.clone(), 6, 4, c.stroke_width(1)))
                .map_err(pe)?;
            chart
                .draw_series(p999.iter().map(|&xy| Cross::new(xy, 5, c.stroke_width(2))))
                .map_err(pe)?;
        }

        // The physical floor: a raw round trip of the same binary in the same run.
        for (transport, rtt) in &floors {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x0, *rtt), (x1, *rtt)],
                    3,
                    3,
                    GREY_LINE.stroke_width(1),
                ))
                .map_err(pe)?;
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((x0, *rtt))
                        + Text::new(
                            format!("{transport} round trip p50: {}", micros(*rtt)),
                            (6, -16),
                            font(12).color(&GREY_LINE),
                        ),
                ))
                .map_err(pe)?;
        }

        // Ring every flagged point; label each offered rate once, where the rings are.
        let mut labelled: Vec<f64> = Vec::new();
        for p in all() {
            let (c, word) = if p.saturated {
                (SATURATED, "saturated")
            } else if p.invalid() {
                (INVALID, "schedule missed")
            } else {
                continue;
            };
            let ys = [p.latency.p50, p.latency.p99, p.latency.p999];
            chart
                .draw_series(
                    ys.iter()
                        .map(|&y| Circle::new((p.offered_rate, pos(y)), 9, c.stroke_width(2))),
                )
                .map_err(pe)?;
            if labelled.contains(&p.offered_rate) {
                continue;
            }
            labelled.push(p.offered_rate);
            let top = all()
                .filter(|q| q.offered_rate == p.offered_rate)
                .map(|q| q.latency.p999)
                .fold(0.0, f64::max);
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((p.offered_rate, pos(top)))
                        + Text::new(word.to_string(), (-30, -28), font(13).color(&c)),
                ))
                .map_err(pe)?;
        }
        Ok(())
    })?;
    Ok(Some(svg))
}
