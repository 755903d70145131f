//! Throughput through each fault: per faulted point, successful answers, errors and the
//! offered load per 100 ms bin (as rates), with the fault's span shaded.

use plotters::prelude::*;

use super::canvas::{color, font, styled, svg, with_legend, Legend, Mark, PLOT_WIDTH};
use super::format::si;
use super::{pe, PlotError};
use crate::harness::summary::{PointSummary, RunSummary};

/// Height of one point's panel.
const PANEL_HEIGHT: u32 = 260;
/// Shade of a fault's span.
const FAULT_SPAN: RGBColor = RGBColor(255, 225, 225);
/// The fault's start.
const FAULT_LINE: RGBColor = RGBColor(214, 39, 40);

/// One panel per point with a timeline, stacked; None when no point has one.
pub fn fault_timeline(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let points: Vec<&PointSummary> = run
        .points
        .iter()
        .filter(|p| p.timeline.as_ref().is_some_and(|t| !t.ok.is_empty()))
        .collect();
    if points.is_empty() {
        return Ok(None);
    }
    let mut legend = Legend::default();
    legend.add("answered ok", Mark::Line(color(0), 2));
    legend.add("errors (after retries)", Mark::Line(color(3), 2));
    legend.add("offered", Mark::Dashed(RGBColor(90, 90, 90)));
    legend.add("fault: start and span", Mark::Bar(FAULT_SPAN));
    let title = format!(
        "{}: throughput through each fault (100 ms bins)",
        run.scenario
    );
    let height = 60 + PANEL_HEIGHT * points.len() as u32;
    let svg = svg((PLOT_WIDTH + legend.width(), height), |root| {
        let plot = with_legend(root, &title, &legend)?;
        let panels = plot.split_evenly((points.len(), 1));
        for (p, area) in points.iter().zip(panels.iter()) {
            panel(p, area)?;
        }
        Ok(())
    })?;
    Ok(Some(svg))
}

fn panel<DB: DrawingBackend>(
    p: &PointSummary,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), PlotError> {
    let t = p.timeline.as_ref().expect("filtered");
    let bin_s = t.bin_ms / 1e3;
    let per_s = |v: u64| v as f64 / bin_s;
    let n = t.ok.len();
    let x1 = n as f64 * bin_s;
    let y1 =
        t.ok.iter()
            .chain(&t.offered)
            .chain(&t.errors)
            .map(|&v| per_s(v))
            .fold(1.0, f64::max)
            * 1.1;
    let mut caption = p.name.clone();
    for f in &p.faults {
        caption.push_str(&format!(
            "  |  {} at {} s: unavailable {}",
            f.kind,
            f.at_s,
            f.unavailability_ms
                .map(|u| format!("{u:.0} ms"))
                .unwrap_or_else(|| "to the end".into())
        ));
        if f.max_gap_ms > 0.0 {
            caption.push_str(&format!(", longest gap {:.0} ms", f.max_gap_ms));
        }
        if let Some(e) = f.elect_ms {
            caption.push_str(&format!(", elected in {e:.0} ms"));
        }
        if let Some(c) = f.catch_up_ms {
            caption.push_str(&format!(", caught up in {c:.0} ms"));
        }
    }
    if let Some(c) = &p.correctness {
        caption.push_str(&format!("  |  lost {}", c.acknowledged_lost));
    }
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(13))
        .margin(8)
        .margin_right(15)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x1, 0.0..y1)
        .map_err(pe)?;
    styled(&mut chart.configure_mesh(), 13, 11)
        .x_desc("seconds into the measured window")
        .y_desc("requests/s")
        .y_label_formatter(&|v| si(*v))
        .draw()
        .map_err(pe)?;
    for f in &p.faults {
        let end = f.at_s + (f.duration_ms / 1e3).max(bin_s / 4.0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(f.at_s, 0.0), (end, y1)],
                FAULT_SPAN.filled(),
            )))
            .map_err(pe)?;
        chart
            .draw_series(LineSeries::new(
                [(f.at_s, 0.0), (f.at_s, y1)],
                FAULT_LINE.stroke_width(1),
            ))
            .map_err(pe)?;
    }
    let line = |v: &[u64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, &c)| ((i as f64 + 0.5) * bin_s, per_s(c)))
            .collect()
    };
    chart
        .draw_series(DashedLineSeries::new(
            line(&t.offered),
            4,
            3,
            RGBColor(90, 90, 90).stroke_width(1),
        ))
        .map_err(pe)?;
    chart
        .draw_series(LineSeries::new(line(&t.errors), color(3).stroke_width(2)))
        .map_err(pe)?;
    chart
        .draw_series(LineSeries::new(line(&t.ok), color(0).stroke_width(2)))
        .map_err(pe)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::summary::{FaultSummary, Timeline};

    #[test]
    fn draws_a_panel_per_faulted_point_and_nothing_without_one() {
        let mut run = RunSummary::default();
        assert!(fault_timeline(&run).unwrap().is_none());
        run.points.push(PointSummary {
            name: "kill_leader".into(),
            timeline: Some(Timeline {
                bin_ms: 100.0,
                ok: vec![200, 200, 0, 0, 350, 200],
                errors: vec![0, 0, 0, 1, 0, 0],
                offered: vec![200; 6],
            }),
            faults: vec![FaultSummary {
                kind: "kill_leader".into(),
                at_s: 0.2,
                duration_ms: 200.0,
                unavailability_ms: Some(230.0),
                elect_ms: Some(180.0),
                ..FaultSummary::default()
            }],
            ..PointSummary::default()
        });
        let svg = fault_timeline(&run).unwrap().expect("a panel");
        assert!(
            svg.contains("kill_leader at 0.2 s: unavailable 230 ms"),
            "{svg}"
        );
    }
}
