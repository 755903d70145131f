//! Each point's client latency by percentile, on the `1/(1-p)` axis.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::axis::{decades, max_of, min_positive, percentile_label, percentile_x};
use super::canvas::{color, figure_chart, styled, svg, with_legend, Legend, Mark, PLOT_WIDTH};
use super::format::si;
use super::series::point_label;
use super::{pe, PlotError, MAX_SPECTRUM_CURVES};
use crate::harness::histograms::PointHistograms;
use crate::harness::summary::RunSummary;

/// A point's name, whether it is flagged (saturated or invalid), and its latency histogram.
type SpectrumPoint<'a> = (&'a str, bool, &'a hdrhistogram::Histogram<u64>);

/// The points whose spectra are drawn: all of them, or when that is too many, the largest
/// series that fits (else the first points of the first series); with the series chosen.
fn spectrum_points<'a>(
    run: &'a RunSummary,
    hists: &'a [(String, PointHistograms)],
) -> (Option<String>, Vec<SpectrumPoint<'a>>) {
    let mut all: Vec<(&str, &str, bool, &hdrhistogram::Histogram<u64>)> = Vec::new();
    for (name, metrics) in hists {
        let Some(ih) = metrics.get("latency") else {
            continue;
        };
        if ih.total.is_empty() {
            continue;
        }
        let summary = run.points.iter().find(|p| &p.name == name);
        let series = summary.map(|p| p.series.as_str()).unwrap_or("");
        let flagged = summary.is_some_and(|p| p.saturated || p.invalid());
        all.push((name.as_str(), series, flagged, &ih.total));
    }
    if all.len() <= MAX_SPECTRUM_CURVES {
        return (
            None,
            all.into_iter().map(|(n, _, f, h)| (n, f, h)).collect(),
        );
    }
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, s, _, _) in &all {
        *sizes.entry(s).or_default() += 1;
    }
    let chosen = sizes
        .iter()
        .filter(|(_, n)| **n <= MAX_SPECTRUM_CURVES)
        .max_by_key(|(_, n)| **n)
        .map(|(s, _)| *s)
        .unwrap_or(all[0].1)
        .to_string();
    let picked = all
        .into_iter()
        .filter(|(_, s, _, _)| *s == chosen)
        .take(MAX_SPECTRUM_CURVES)
        .map(|(n, _, f, h)| (n, f, h))
        .collect();
    (Some(chosen), picked)
}

/// The client-latency percentile spectrum of each point (from its histogram), on the
/// usual `1/(1-p)` axis; needs the histograms, so only a fresh run draws it.
pub fn percentile_spectrum(
    run: &RunSummary,
    hists: &[(String, PointHistograms)],
) -> Result<Option<String>, PlotError> {
    let (chosen, points) = spectrum_points(run, hists);
    if points.is_empty() {
        return Ok(None);
    }
    let curves: Vec<(String, Vec<(f64, f64)>)> = points
        .iter()
        .map(|(name, flagged, h)| {
            // The q = 1 step (the maximum) sits at infinity on this axis; it is left out,
            // as HdrHistogram's own plotter does.
            let pts: Vec<(f64, f64)> = h
                .iter_quantiles(5)
                .filter(|v| v.quantile_iterated_to() < 1.0)
                .map(|v| {
                    (
                        percentile_x(v.quantile_iterated_to()),
                        (v.value_iterated_to() as f64 * 1e-3).max(1e-3),
                    )
                })
                .collect();
            let mut label = point_label(run, name);
            if *flagged {
                label.push_str(" (saturated or invalid)");
            }
            (label, pts)
        })
        .collect();
    let x_max = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|p| p.0))
        .fold(1.0, f64::max)
        .ceil()
        .min(9.0);
    let values = || curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1));
    // Every value is at least 1e-3 (the curves clamp it), so the smallest is positive.
    let (y0, y1) = decades(min_positive(values()), max_of(values()));
    let title = match &chosen {
        Some(series) => format!(
            "{}: client latency by percentile (series {series})",
            run.scenario
        ),
        None => format!("{}: client latency by percentile", run.scenario),
    };
    let mut legend = Legend::default();
    for (i, (label, _)) in curves.iter().enumerate() {
        legend.add(label.clone(), Mark::Line(color(i), 3));
    }
    let svg = svg((PLOT_WIDTH + legend.width(), 650), |root| {
        let plot = with_legend(root, &title, &legend)?;
        let mut chart = figure_chart(&plot, 0.0..x_max, (y0..y1).log_scale(), 35)?;
        styled(&mut chart.configure_mesh(), 16, 13)
            .x_desc("percentile (log scale of 1/(1-p))")
            .y_desc("client latency (µs, log)")
            .x_labels(x_max as usize + 1)
            .x_label_formatter(&|v| percentile_label(*v))
            .y_label_formatter(&|v| si(*v))
            .draw()
            .map_err(pe)?;
        for (i, (_, pts)) in curves.iter().enumerate() {
            chart
                .draw_series(LineSeries::new(pts.clone(), color(i).stroke_width(2)))
                .map_err(pe)?;
        }
        Ok(())
    })?;
    Ok(Some(svg))
}
