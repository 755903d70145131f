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
    } else if p.invalid() {
        label.push_str(" (invalid)");
    }
    label
}

/// The panels' captions, axis descriptions and right margins (the right one leaves room
/// for the mean's label).
const PANELS: [(&str, &str, u32); 2] = [
    ("client latency", "latency (µs, log)", 12),
    (
        "follower commit lag (bar: mean, whisker: p99)",
        "commit lag (µs, log)",
        70,
    ),
];

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

        let chart = |i: usize, y: (f64, f64)| {
            let (caption, y_desc, margin_right) = PANELS[i];
            Panel {
                caption,
                y_desc,
                margin_right,
                bars: n,
                y,
            }
            .chart(&panels[i], &label_of)
        };

        // Left: client latency, three bars per point.
        let y = decades(lat_lo, lat_hi);
        let y0 = y.0;
        let mut latency = chart(0, y)?;
        for k in 0..3usize {
            let c = color(k);
            let rects = cats.iter().enumerate().map(move |(i, (_, p))| {
                let v = [p.latency.p50, p.latency.p99, p.latency.p999][k].max(y0);
                let x = i as f64 - 0.36 + 0.24 * k as f64;
                Rectangle::new([(x, y0), (x + 0.22, v)], c.filled())
            });
            latency.draw_series(rects).map_err(pe)?;
        }

        // Right: follower commit lag, mean as a bar, p99 as a whisker.
        let y = decades(lag_lo, lag_hi);
        let y0 = y.0;
        let mut lag = chart(1, y)?;
        let c = color(3);
        lag.draw_series(cats.iter().enumerate().map(|(i, (_, p))| {
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
            lag.draw_series(std::iter::once(PathElement::new(
                vec![(x, m), (x, top)],
                BLACK.stroke_width(1),
            )))
            .map_err(pe)?;
            lag.draw_series(std::iter::once(PathElement::new(
                vec![(x - 0.08, top), (x + 0.08, top)],
                BLACK.stroke_width(2),
            )))
            .map_err(pe)?;
            // The mean in figures: on a log axis, bar heights are hard to read off.
            lag.draw_series(std::iter::once(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::CommitMode;

    fn point(rate: f64, mode: CommitMode) -> PointSummary {
        let mut p = PointSummary {
            series: SPARSE_DENSE_SERIES.into(),
            offered_rate: rate,
            ..Default::default()
        };
        p.params.insert(RATE_KEY.into(), rate.to_string());
        // Swept values as the scenario wrote them; the labels read the typed config.
        p.params
            .insert("raft.commit_mode".into(), "\"ignored\"".into());
        p.config.raft.commit_mode = mode;
        p
    }

    #[test]
    fn bars_are_grouped_by_mode_sparse_first_and_labelled_from_the_config() {
        let mut run = RunSummary::default();
        for rate in [20_000.0, 200.0] {
            for mode in [CommitMode::Piggyback, CommitMode::Eager] {
                run.points.push(point(rate, mode));
            }
        }
        run.points[0].saturated = true;
        let points = sparse_dense_points(&run);
        let labels: Vec<String> = sparse_dense_categories(&points)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(
            labels,
            [
                "eager, sparse 200/s",
                "eager, dense 20k/s",
                "piggyback, sparse 200/s",
                "piggyback, dense 20k/s (sat.)",
            ]
        );
        assert!(sparse_vs_dense(&run).unwrap().is_some());
    }
}
