//! The sparse and dense points side by side, by commit mode: client latency and follower
//! commit lag as two panels of bars.

use std::collections::BTreeMap;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{decades, max_of, min_positive};
use super::canvas::{color, font, styled, svg, Legend, Mark};
use super::format::{micros, si};
use super::series::{file_name_of, short_knob, unquote};
use super::{pe, PlotError, RATE_KEY, SPARSE_DENSE_SERIES};
use crate::harness::summary::{PointSummary, RunSummary};

/// The points compared as sparse against dense: the `sparse-dense` series, else every
/// series whose points sweep exactly two rates.
fn sparse_dense_points(run: &RunSummary) -> Vec<&PointSummary> {
    let named: Vec<&PointSummary> = run
        .points
        .iter()
        .filter(|p| p.series == SPARSE_DENSE_SERIES)
        .collect();
    if !named.is_empty() {
        return named;
    }
    let mut rates: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in &run.points {
        if let Some(r) = p.params.get(RATE_KEY) {
            let v = rates.entry(p.series.as_str()).or_default();
            if !v.contains(r) {
                v.push(r.clone());
            }
        }
    }
    run.points
        .iter()
        .filter(|p| {
            p.params.contains_key(RATE_KEY)
                && rates.get(p.series.as_str()).is_some_and(|r| r.len() == 2)
        })
        .collect()
}

/// The bars' groups in order (by series and commit mode, sparse before dense), labelled.
fn sparse_dense_categories<'a>(points: &[&'a PointSummary]) -> Vec<(String, &'a PointSummary)> {
    let several_series = points.windows(2).any(|w| w[0].series != w[1].series);
    let rate = |p: &PointSummary| p.offered_rate;
    let mut cats: Vec<(&PointSummary, String, f64)> = points
        .iter()
        .map(|p| (*p, commit_mode(p), rate(p)))
        .collect();
    cats.sort_by(|a, b| {
        (a.0.series.as_str(), a.1.as_str())
            .cmp(&(b.0.series.as_str(), b.1.as_str()))
            .then(a.2.total_cmp(&b.2))
    });
    cats.iter()
        .map(|(p, _, r)| {
            // Within its series, the lower of the two rates is the sparse one.
            let lowest = points
                .iter()
                .filter(|q| q.series == p.series)
                .map(|q| rate(q))
                .fold(f64::MAX, f64::min);
            let density = if *r <= lowest { "sparse" } else { "dense" };
            (sparse_dense_label(p, density, several_series), *p)
        })
        .collect()
}

/// The commit mode a point ran with, as files spell it.
fn commit_mode(p: &PointSummary) -> String {
    file_name_of(&p.config.raft.commit_mode)
}

/// A bar group's label: commit mode, load, the other swept knobs, and its flags.
fn sparse_dense_label(p: &PointSummary, density: &str, several_series: bool) -> String {
    let mut label = format!("{}, {density} {}/s", commit_mode(p), si(p.offered_rate));
    for (k, v) in &p.params {
        if k != RATE_KEY && k != "raft.commit_mode" {
            label = format!("{label} {}={}", short_knob(k), unquote(v));
        }
    }
    if several_series {
        label = format!("{}: {label}", p.series);
    }
    if p.saturated {
        label.push_str(" (sat.)");
    } else if p.schedule_invalid {
        label.push_str(" (invalid)");
    }
    label
}

/// One of the two panels: bar groups at 0..`bars` under their labels, a log axis `y` in µs.
struct Panel {
    caption: &'static str,
    y_desc: &'static str,
    margin_right: u32,
    bars: usize,
    y: (f64, f64),
}

impl Panel {
    /// The panel's chart on `area`, its mesh drawn, the groups labelled by `label_of`.
    fn chart<'a, DB: DrawingBackend>(
        &self,
        area: &'a DrawingArea<DB, Shift>,
        label_of: &dyn Fn(&f64) -> String,
    ) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, LogCoord<f64>>>, PlotError> {
        let (y0, y1) = self.y;
        let mut chart = ChartBuilder::on(area)
            .caption(self.caption, font(17))
            .margin(12)
            .margin_right(self.margin_right)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(self.bars as f64 - 0.5), (y0..y1).log_scale())
            .map_err(pe)?;
        styled(&mut chart.configure_mesh(), 15, 12)
            .disable_x_mesh()
            .x_labels(self.bars)
            .x_label_formatter(label_of)
            .x_desc("commit mode, load (offered rate)")
            .y_desc(self.y_desc)
            .y_label_formatter(&|v| si(*v))
            .draw()
            .map_err(pe)?;
        Ok(chart)
    }
}

/// Latency p50/p99/p99.9 and mean follower commit lag of the sparse and dense points,
/// grouped by commit mode, as two panels of bars.
pub fn sparse_vs_dense(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let points = sparse_dense_points(run);
    let cats = sparse_dense_categories(&points);
    if cats.is_empty() {
        return Ok(None);
    }
    let n = cats.len();
    let (lat_lo, lat_hi) = (
        min_positive(cats.iter().map(|(_, p)| p.latency.p50)),
        max_of(cats.iter().map(|(_, p)| p.latency.p999.max(p.latency.p99))),
    );
    let (lag_lo, lag_hi) = (
        min_positive(cats.iter().map(|(_, p)| p.commit_lag.mean)),
        max_of(
            cats.iter()
                .map(|(_, p)| p.commit_lag.p99.max(p.commit_lag.mean)),
        ),
    );
    let labels: Vec<String> = cats.iter().map(|(l, _)| l.clone()).collect();
    let title = format!("{}: sparse vs dense load, by commit mode", run.scenario);
    let width = (300 + 280 * n as u32).clamp(1000, 3000);
    let mut legend = Legend::default();
    legend.add("latency p50", Mark::Bar(color(0)));
    legend.add("p99", Mark::Bar(color(1)));
    legend.add("p99.9", Mark::Bar(color(2)));
    legend.add("commit lag mean (whisker: p99)", Mark::Bar(color(3)));
    let svg = svg((width, 640), |root| {
        let root = root.titled(&title, font(22)).map_err(pe)?;
        let (row, root) = root.split_vertically(34);
        legend.draw_row(&row)?;
        let panels = root.split_evenly((1, 2));
        let label_of = |v: &f64| -> String {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        };

        // Left: client latency, three bars per point.
        let (y0, y1) = decades(lat_lo, lat_hi);
        let panel = Panel {
            caption: "client latency",
            y_desc: "latency (µs, log)",
            margin_right: 12,
            bars: n,
            y: (y0, y1),
        };
        let mut chart = panel.chart(&panels[0], &label_of)?;
        for k in 0..3usize {
            let c = color(k);
            let rects = cats.iter().enumerate().map(move |(i, (_, p))| {
                let v = [p.latency.p50, p.latency.p99, p.latency.p999][k].max(y0);
                let x = i as f64 - 0.36 + 0.24 * k as f64;
                Rectangle::new([(x, y0), (x + 0.22, v)], c.filled())
            });
            chart.draw_series(rects).map_err(pe)?;
        }

        // Right: follower commit lag, mean as a bar, p99 as a whisker.
        let (y0, y1) = decades(lag_lo, lag_hi);
        let panel = Panel {
            caption: "follower commit lag (bar: mean, whisker: p99)",
            y_desc: "commit lag (µs, log)",
            margin_right: 70,
            bars: n,
            y: (y0, y1),
        };
        let mut chart = panel.chart(&panels[1], &label_of)?;
        let c = color(3);
        chart
            .draw_series(cats.iter().enumerate().map(|(i, (_, p))| {
                let x = i as f64;
                Rectangle::new(
                    [(x - 0.25, y0), (x + 0.25, p.commit_lag.mean.max(y0))],
                    c.filled(),
                )
            }))
            .map_err(pe)?;
        for (i, (_, p)) in cats.iter().enumerate() {
            let x = i as f64;
            let (m, top) = (p.commit_lag.mean.max(y0), p.commit_lag.p99.max(y0));
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, m), (x, top)],
                    BLACK.stroke_width(1),
                )))
                .map_err(pe)?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x - 0.08, top), (x + 0.08, top)],
                    BLACK.stroke_width(2),
                )))
                .map_err(pe)?;
            // The mean in figures: on a log axis, bar heights are hard to read off.
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((x, m))
                        + Text::new(
                            format!("mean {}", micros(p.commit_lag.mean)),
                            (6, -18),
                            font(12),
                        ),
                ))
                .map_err(pe)?;
        }
        Ok(())
    })?;
    Ok(Some(svg))
}
