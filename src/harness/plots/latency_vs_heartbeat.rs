//! Client latency against heartbeat interval, with the sparse-load model of each design:
//! the naive designs priced.

use std::time::Duration;

use plotters::prelude::*;

use super::axis::{from_zero, max_of};
use super::canvas::{color, figure_chart, styled, svg, with_legend, Legend, Mark, PLOT_WIDTH};
use super::commit_lag_vs_heartbeat::{heartbeat_ms, one_way};
use super::format::{micros, plain};
use super::series::group_by_other_params;
use super::{pe, PlotError, HEARTBEAT_KEY};
use crate::harness::model::LatencyModel;
use crate::harness::summary::{PointSummary, RunSummary};

/// The distinct client-latency models of `points` (one per design and one-way delay).
pub fn latency_models<'a>(
    run: &RunSummary,
    points: impl Iterator<Item = &'a PointSummary>,
) -> Vec<LatencyModel> {
    let mut models: Vec<LatencyModel> = Vec::new();
    for p in points {
        let m = LatencyModel::of_point(&p.config, one_way(run, p).0);
        if !models
            .iter()
            .any(|k| k.trigger == m.trigger && k.one_way == m.one_way)
        {
            models.push(m);
        }
    }
    models
}

fn model_ms(m: &LatencyModel, h_ms: f64) -> f64 {
    LatencyModel {
        heartbeat: Duration::from_secs_f64(h_ms.max(0.0) / 1e3),
        ..*m
    }
    .mean()
    .as_secs_f64()
        * 1e3
}

/// Measured client latency (mean, with p99 as a bar) against heartbeat interval H for the
/// series sweeping `raft.heartbeat_ms`, with the sparse-load model of each design beside;
/// None when no series sweeps H or the run emulates no link delay (the models are for
/// sparse load over a real round trip).
pub fn latency_vs_heartbeat(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let points = run.points.iter().filter(|p| {
        p.params.contains_key(HEARTBEAT_KEY)
            && p.latency.count > 0
            && p.config.network.delay_ms > 0.0
    });
    let mut groups = group_by_other_params(points, HEARTBEAT_KEY);
    if groups.is_empty() {
        return Ok(None);
    }
    for (_, g) in &mut groups {
        g.sort_by(|a, b| heartbeat_ms(a).total_cmp(&heartbeat_ms(b)));
    }
    let all = || groups.iter().flat_map(|(_, g)| g.iter().copied());
    let models = latency_models(run, all());
    let x1 = from_zero(max_of(all().map(heartbeat_ms)));
    let y1 = from_zero(max_of(
        all()
            .map(|p| p.latency.p99.max(p.latency.mean) / 1e3)
            .chain(models.iter().map(|m| model_ms(m, x1))),
    ));
    let title = format!(
        "{}: client latency vs heartbeat interval, with models",
        run.scenario
    );
    let model_color = |i: usize| [BLACK, RGBColor(170, 60, 0)][i % 2];
    let mut legend = Legend::default();
    for (i, m) in models.iter().enumerate() {
        legend.add(
            format!("model {}", m.describe()),
            Mark::Dashed(model_color(i)),
        );
        legend.add(
            format!("   d = {}", micros(m.one_way.as_secs_f64() * 1e6)),
            Mark::Blank,
        );
    }
    for (i, (label, _)) in groups.iter().enumerate() {
        legend.add(label.clone(), Mark::LineDot(color(i)));
    }
    legend.add("circle: measured mean; bar top: p99", Mark::Dot(BLACK));
    let svg = svg((PLOT_WIDTH + legend.width(), 650), |root| {
        let plot = with_legend(root, &title, &legend)?;
        let mut chart = figure_chart(&plot, 0.0..x1, 0.0..y1, 15)?;
        styled(&mut chart.configure_mesh(), 16, 13)
            .x_desc("heartbeat interval H (ms)")
            .y_desc("client latency (ms)")
            .x_label_formatter(&|v| plain(*v))
            .y_label_formatter(&|v| plain(*v))
            .draw()
            .map_err(pe)?;
        for (i, m) in models.iter().enumerate() {
            let line: Vec<(f64, f64)> = (0..=40)
                .map(|k| {
                    let h = x1 * f64::from(k) / 40.0;
                    (h, model_ms(m, h))
                })
                .collect();
            chart
                .draw_series(DashedLineSeries::new(
                    line,
                    8,
                    5,
                    model_color(i).stroke_width(2),
                ))
                .map_err(pe)?;
        }
        for (i, (_, g)) in groups.iter().enumerate() {
            let c = color(i);
            let mean: Vec<(f64, f64)> = g
                .iter()
                .map(|p| (heartbeat_ms(p), p.latency.mean / 1e3))
                .collect();
            chart
                .draw_series(LineSeries::new(mean.clone(), c.stroke_width(2)))
                .map_err(pe)?;
            chart
                .draw_series(mean.iter().map(|&xy| Circle::new(xy, 4, c.filled())))
                .map_err(pe)?;
            for (p, &(h, m)) in g.iter().zip(&mean) {
                let top = p.latency.p99 / 1e3;
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(h, m), (h, top)],
                        c.stroke_width(1),
                    )))
                    .map_err(pe)?;
            }
        }
        Ok(())
    })?;
    Ok(Some(svg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::ReplicationTrigger;

    #[test]
    fn one_model_per_design_and_nothing_without_emulated_delay() {
        let mut run = RunSummary::default();
        for (h, trigger) in [
            (50, ReplicationTrigger::Immediate),
            (50, ReplicationTrigger::OnTick),
            (100, ReplicationTrigger::OnTick),
        ] {
            let mut p = PointSummary::default();
            p.config.raft.heartbeat_interval = Duration::from_millis(h);
            p.config.raft.trigger = trigger;
            p.params.insert(HEARTBEAT_KEY.into(), h.to_string());
            p.latency.count = 10;
            p.latency.mean = 10_000.0;
            run.points.push(p);
        }
        assert!(
            latency_vs_heartbeat(&run).unwrap().is_none(),
            "no link delay"
        );
        for p in &mut run.points {
            p.config.network.delay_ms = 5.0;
        }
        let models = latency_models(&run, run.points.iter());
        assert_eq!(models.len(), 2);
        assert_eq!(model_ms(&models[1], 50.0), 35.0);
        assert!(latency_vs_heartbeat(&run)
            .unwrap()
            .unwrap()
            .contains("<svg"));
    }
}
