//! Follower commit lag against heartbeat interval, with the model of each configuration.

use std::time::Duration;

use plotters::prelude::*;

use super::axis::{from_zero, max_of};
use super::canvas::{color, figure_chart, styled, svg, with_legend, Legend, Mark, PLOT_WIDTH};
use super::format::{micros, plain, si};
use super::series::{file_name_of, group_by_other_params};
use super::{pe, PlotError, HEARTBEAT_KEY};
use crate::harness::model::LagModel;
use crate::harness::summary::{PointSummary, RunSummary};
use crate::raft::{CommitMode, ReplicationTrigger};

/// A model line to draw: the model (its heartbeat is the axis) and the transport whose
/// round trip gave its one-way delay, if any.
type ModelLine = (LagModel, Option<String>);

/// The heartbeat interval a point ran with, in ms (as files spell it).
pub(super) fn heartbeat_ms(p: &PointSummary) -> f64 {
    p.config.raft.heartbeat_interval.as_secs_f64() * 1e3
}

/// The model's mean follower commit lag (ms) at heartbeat interval `h_ms`.
fn model_ms(m: &LagModel, h_ms: f64) -> f64 {
    m.with_heartbeat(Duration::from_secs_f64(h_ms.max(0.0) / 1e3))
        .mean()
        .as_secs_f64()
        * 1e3
}

/// The one-way delay d for a point: the emulated one-way delay of its links (`network`),
/// plus half the p50 round trip of its rate-matched floor (else of the run's baseline on
/// the point's transport, else the first baseline; 0 without any).
pub(super) fn one_way(run: &RunSummary, p: &PointSummary) -> (Duration, Option<String>) {
    let emulated = Duration::from_secs_f64(p.config.network.delay_ms.max(0.0) / 1e3);
    if let Some(f) = &p.floor {
        let half = Duration::from_secs_f64((f.rtt.p50 / 2.0).max(0.0) / 1e6);
        return (emulated + half, Some(f.transport.clone()));
    }
    let transport = file_name_of(&p.config.cluster.transport);
    let b = run
        .baselines
        .iter()
        .find(|b| b.transport == transport)
        .or_else(|| run.baselines.first());
    match b {
        Some(b) => (
            emulated + Duration::from_secs_f64((b.rtt.p50 / 2.0).max(0.0) / 1e6),
            Some(b.transport.clone()),
        ),
        None => (emulated, None),
    }
}

/// The distinct model lines of the points, each drawn once, in the order independent
/// timer, timer reset by appends, eager.
fn model_lines<'a>(
    run: &RunSummary,
    points: impl Iterator<Item = &'a PointSummary>,
) -> Vec<ModelLine> {
    let mut lines: Vec<ModelLine> = Vec::new();
    for p in points {
        let (d, transport) = one_way(run, p);
        let m = LagModel::of_point(&p.config, d).with_heartbeat(Duration::ZERO);
        let same = |(k, _): &ModelLine| {
            k.describe() == m.describe()
                && k.one_way == m.one_way
                && k.rate == m.rate
                && k.arrival == m.arrival
        };
        if !lines.iter().any(same) {
            lines.push((m, transport));
        }
    }
    let eager = |m: &LagModel| m.commit_mode == CommitMode::Eager;
    let on_tick = |m: &LagModel| m.trigger == ReplicationTrigger::OnTick;
    lines.sort_by_key(|(m, _)| (on_tick(m), eager(m), !eager(m) && m.append_resets_heartbeat));
    lines
}

/// Measured follower commit lag (mean, and p99) against heartbeat interval H for the
/// series sweeping `raft.heartbeat_ms`, with the model of each point's configuration beside.
pub fn commit_lag_vs_heartbeat(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let points = run
        .points
        .iter()
        .filter(|p| p.params.contains_key(HEARTBEAT_KEY) && p.commit_lag.count > 0);
    let mut groups = group_by_other_params(points, HEARTBEAT_KEY);
    if groups.is_empty() {
        return Ok(None);
    }
    for (_, g) in &mut groups {
        g.sort_by(|a, b| heartbeat_ms(a).total_cmp(&heartbeat_ms(b)));
    }
    let all = || groups.iter().flat_map(|(_, g)| g.iter().copied());
    let models = model_lines(run, all());
    let x1 = from_zero(max_of(all().map(heartbeat_ms)));
    let y1 = from_zero(max_of(
        all()
            .map(|p| p.commit_lag.p99.max(p.commit_lag.mean) / 1e3)
            .chain(models.iter().map(|(m, _)| model_ms(m, x1))),
    ));

    let title = format!(
        "{}: follower commit lag vs heartbeat interval, with models",
        run.scenario
    );
    let model_color = |i: usize| [BLACK, RGBColor(110, 110, 110), RGBColor(170, 60, 0)][i % 3];
    let mut legend = Legend::default();
    for (i, (m, transport)) in models.iter().enumerate() {
        let d_text = match transport {
            Some(t) => format!(
                "d = {} (link delay + half the {t} RTT p50)",
                micros(m.one_way.as_secs_f64() * 1e6)
            ),
            None => "d = 0 (no baseline)".to_string(),
        };
        let d_text = if m.commit_mode != CommitMode::Eager
            && m.trigger == ReplicationTrigger::Immediate
            && m.rate > 0.0
        {
            format!(
                "{d_text}; capped by the next request at {} req/s ({:?})",
                si(m.rate),
                m.arrival
            )
        } else {
            d_text
        };
        legend.add(
            format!("model {}", m.describe()),
            Mark::Dashed(model_color(i)),
        );
        legend.add(format!("   {d_text}"), Mark::Blank);
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
            .y_desc("follower commit lag (ms)")
            .x_label_formatter(&|v| plain(*v))
            .y_label_formatter(&|v| plain(*v))
            .draw()
            .map_err(pe)?;

        for (i, (m, _)) in models.iter().enumerate() {
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
                .map(|p| (heartbeat_ms(p), p.commit_lag.mean / 1e3))
                .collect();
            let p99: Vec<(f64, f64)> = g
                .iter()
                .map(|p| (heartbeat_ms(p), p.commit_lag.p99 / 1e3))
                .collect();
            chart
                .draw_series(LineSeries::new(mean.clone(), c.stroke_width(2)))
                .map_err(pe)?;
            chart
                .draw_series(mean.iter().map(|&xy| Circle::new(xy, 4, c.filled())))
                .map_err(pe)?;
            // The p99 as an error bar rising from the mean: the spread the model's mean hides.
            for (&(h, m), &(_, p)) in mean.iter().zip(&p99) {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(h, m), (h, p)],
                        c.stroke_width(1),
                    )))
                    .map_err(pe)?;
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((h, p))
                            + PathElement::new(vec![(-5, 0), (5, 0)], c.stroke_width(2)),
                    ))
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
    use crate::harness::summary::{Baseline, Percentiles};
    use crate::transport::TransportKind;

    fn point(heartbeat_ms: u64, mode: CommitMode, resets: bool) -> PointSummary {
        let mut p = PointSummary::default();
        p.config.raft.heartbeat_interval = Duration::from_millis(heartbeat_ms);
        p.config.raft.commit_mode = mode;
        p.config.raft.append_resets_heartbeat = resets;
        p.config.cluster.transport = TransportKind::Tcp;
        p
    }

    fn baseline(transport: &str, p50_us: f64) -> Baseline {
        Baseline {
            transport: transport.into(),
            rtt: Percentiles {
                count: 1,
                p50: p50_us,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn one_line_per_model_in_order_from_the_typed_config() {
        let run = RunSummary {
            baselines: vec![baseline("quic", 100.0), baseline("tcp", 60.0)],
            ..Default::default()
        };
        let points = [
            point(50, CommitMode::Eager, true),
            point(10, CommitMode::Piggyback, true),
            point(10, CommitMode::Piggyback, false),
            point(50, CommitMode::Piggyback, false),
            point(50, CommitMode::Eager, false),
        ];
        assert_eq!(heartbeat_ms(&points[1]), 10.0);
        let lines = model_lines(&run, points.iter());
        let names: Vec<&str> = lines.iter().map(|(m, _)| m.describe()).collect();
        assert_eq!(
            names,
            [
                "H/2 + d (piggyback, heartbeat timer independent)",
                "H + d (piggyback, timer reset by appends)",
                "d (eager commit notice)",
            ]
        );
        // d is half the round trip on the points' own transport, not the first baseline's.
        for (m, transport) in &lines {
            assert_eq!(transport.as_deref(), Some("tcp"));
            assert_eq!(m.one_way, Duration::from_micros(30));
        }
        // The default 200 requests/s cap the independent timer's wait near 1/r = 5 ms.
        let independent = &lines[0].0;
        assert!(
            model_ms(independent, 100.0) < 5.1,
            "{}",
            model_ms(independent, 100.0)
        );
    }
}
