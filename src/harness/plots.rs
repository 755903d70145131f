//! SVG plots of a run, drawn from `summary.json` (and the latency histograms where a plot
//! needs the whole distribution), written into `<results>/plots/`.
//!
//! Each plot function is pure: it returns the SVG text, or `None` when the run holds no
//! data for that plot, so `raftbench report` can redraw whatever a run measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::histograms::{IntervalHistogram, PointHistograms, Unit};
use super::model;
use super::output::{file_names, fresh_dir, read_interval_log, write_file, OutputError};
use super::scenario::Arrival;
use super::summary::{Baseline, LoadKind, PointSummary, RunSummary};
use crate::raft::CommitMode;

/// The sweep knob of the offered rate.
pub const RATE_KEY: &str = "workload.rate";
/// The sweep knob of the heartbeat interval.
pub const HEARTBEAT_KEY: &str = "raft.heartbeat_ms";
/// The series the sparse/dense comparison is drawn from when present.
pub const SPARSE_DENSE_SERIES: &str = "sparse-dense";
/// At most this many curves in the percentile spectrum, beyond which it is unreadable.
pub const MAX_SPECTRUM_CURVES: usize = 10;

/// File names of the plots, in the order the report shows them.
pub const PLOT_FILES: [&str; 4] = [
    "latency_vs_rate.svg",
    "percentile_spectrum.svg",
    "commit_lag_vs_heartbeat.svg",
    "sparse_vs_dense.svg",
];

/// A plot that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlotError(pub String);

fn pe<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError(e.to_string())
}

/// Draws every plot the run has data for into `dir/plots/`, returning the files written.
pub fn write_plots(
    dir: &Path,
    run: &RunSummary,
    hists: &[(String, PointHistograms)],
) -> Result<Vec<PathBuf>, OutputError> {
    let plots_dir = dir.join("plots");
    // Plots from an earlier run in the same directory would be mistaken for this run's.
    fresh_dir(&plots_dir, "svg")?;
    // `raftbench report` has no histograms in memory; the interval log holds them exactly.
    let reread;
    let hists = if hists.iter().any(|(_, m)| m.contains_key("latency")) {
        hists
    } else {
        reread = latency_from_hlog(dir, run);
        &reread[..]
    };
    let mut written = Vec::new();
    for name in PLOT_FILES {
        let path = plots_dir.join(name);
        let svg = match name {
            "latency_vs_rate.svg" => latency_vs_rate(run),
            "percentile_spectrum.svg" => percentile_spectrum(run, hists),
            "commit_lag_vs_heartbeat.svg" => commit_lag_vs_heartbeat(run),
            _ => sparse_vs_dense(run),
        }
        .map_err(|e| OutputError::Plot {
            path: path.clone(),
            message: e.0,
        })?;
        if let Some(svg) = svg {
            write_file(&path, svg.as_bytes())?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The latency histograms of a run's points read back from `hlog/latency.hlog` (tags are
/// the points' file names); empty when the log is missing or unreadable.
fn latency_from_hlog(dir: &Path, run: &RunSummary) -> Vec<(String, PointHistograms)> {
    let Ok(mut totals) = read_interval_log(&dir.join("hlog").join("latency.hlog")) else {
        return Vec::new();
    };
    let tags = file_names(run.points.iter().map(|p| p.name.as_str()));
    run.points
        .iter()
        .zip(tags)
        .filter_map(|(p, tag)| {
            let total = totals.remove(&tag)?;
            let mut ih = IntervalHistogram::new(Unit::Nanos, Duration::from_secs(1));
            ih.total = total;
            Some((
                p.name.clone(),
                PointHistograms::from([("latency".to_string(), ih)]),
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Data helpers.

/// A value of a point's configuration by dotted path (`raft.commit_mode`).
fn config_value(p: &PointSummary, key: &str) -> Option<toml::Value> {
    let table = toml::Table::try_from(&p.config).ok()?;
    let mut parts = key.split('.');
    let mut v = table.get(parts.next()?)?.clone();
    for part in parts {
        v = v.as_table()?.get(part)?.clone();
    }
    Some(v)
}

/// A knob of a point as a number: its swept value if swept, else its configured value.
fn knob_f64(p: &PointSummary, key: &str) -> Option<f64> {
    if let Some(v) = p.params.get(key) {
        if let Ok(x) = unquote(v).parse::<f64>() {
            return Some(x);
        }
    }
    match config_value(p, key)? {
        toml::Value::Integer(i) => Some(i as f64),
        toml::Value::Float(f) => Some(f),
        _ => None,
    }
}

/// A knob of a point as text: its swept value if swept, else its configured value.
fn knob_str(p: &PointSummary, key: &str) -> Option<String> {
    if let Some(v) = p.params.get(key) {
        return Some(unquote(v).to_string());
    }
    match config_value(p, key)? {
        toml::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Swept values may be kept as TOML literals (`"eager"`); compare them bare.
fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// Points of one line: the same series and the same values of every knob but `x_key`.
fn group_by_other_params<'a>(
    points: impl IntoIterator<Item = &'a PointSummary>,
    x_key: &str,
) -> Vec<(String, Vec<&'a PointSummary>)> {
    let mut groups: Vec<(String, Vec<&PointSummary>)> = Vec::new();
    for p in points {
        let others: Vec<String> = p
            .params
            .iter()
            .filter(|(k, _)| k.as_str() != x_key)
            .map(|(k, v)| format!("{}={}", short_knob(k), unquote(v)))
            .collect();
        let label = if others.is_empty() {
            p.series.clone()
        } else {
            format!("{} ({})", p.series, others.join(", "))
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, v)) => v.push(p),
            None => groups.push((label, vec![p])),
        }
    }
    groups
}

/// A point as a legend shows it: its series and swept values, short knob names.
fn point_label(run: &RunSummary, name: &str) -> String {
    match run.points.iter().find(|p| p.name == name) {
        Some(p) if !p.params.is_empty() => {
            let params: Vec<String> = p
                .params
                .iter()
                .map(|(k, v)| format!("{}={}", short_knob(k), unquote(v)))
                .collect();
            format!("{}: {}", p.series, params.join(", "))
        }
        _ => name.to_string(),
    }
}

/// The last component of a knob path, which is what a legend has room for.
fn short_knob(k: &str) -> &str {
    k.rsplit('.').next().unwrap_or(k)
}

/// A duration given in microseconds, as µs below a millisecond and ms above.
fn us_text(us: f64) -> String {
    if us >= 1000.0 {
        format!("{} ms", trim_num(us / 1e3))
    } else {
        format!("{} µs", trim_num(us))
    }
}

/// A log axis range covering `[lo, hi]` in whole decades, so its ticks fall on powers of ten.
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    let lo = if lo.is_finite() && lo > 0.0 { lo } else { 1e-3 };
    let hi = if hi.is_finite() && hi > lo { hi } else { lo };
    let a = 10f64.powf(lo.log10().floor());
    let mut b = 10f64.powf(hi.log10().ceil());
    if b <= a {
        b = a * 10.0;
    }
    (a, b)
}

/// A number for an axis label: 3 significant digits, SI suffix from 1000 on.
fn si(v: f64) -> String {
    let (x, suffix) = if v.abs() >= 1e6 {
        (v / 1e6, "M")
    } else if v.abs() >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{}{suffix}", trim_num(x))
}

/// `x` with at most 3 significant digits and no trailing zeros.
fn trim_num(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    let digits = (2 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Colors that stay apart on white and in grey print.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(214, 39, 40),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

const SATURATED: RGBColor = RGBColor(220, 0, 0);
const GREY_LINE: RGBColor = RGBColor(90, 90, 90);
/// Minor grid lines: present, but quieter than plotters' default.
const LIGHT_GRID: RGBColor = RGBColor(240, 240, 240);
const INVALID: RGBColor = RGBColor(230, 140, 0);

fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font())
}

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
enum Mark {
    /// A solid line of this width.
    Line(RGBColor, u32),
    /// A dashed line.
    Dashed(RGBColor),
    /// A line with a filled circle on it.
    LineDot(RGBColor),
    /// A filled circle.
    Dot(RGBColor),
    /// A filled triangle.
    Triangle(RGBColor),
    /// A cross.
    Cross(RGBColor),
    /// A hollow ring.
    Ring(RGBColor),
    /// Nothing: a line that continues the entry above.
    Blank,
    /// A filled square (a bar).
    Bar(RGBColor),
}

/// Legend entries kept outside the plotting area, where they cannot hide data.
#[derive(Default)]
struct Legend(Vec<(String, Mark)>);

/// Longest legend label kept whole; longer ones are shortened in the middle.
const LEGEND_CHARS: usize = 64;
/// Plot width beside the legend.
const PLOT_WIDTH: u32 = 900;

impl Legend {
    fn add(&mut self, label: impl Into<String>, mark: Mark) {
        let mut label: String = label.into();
        let n = label.chars().count();
        if n > LEGEND_CHARS {
            let head: String = label.chars().take(LEGEND_CHARS / 2 - 1).collect();
            let tail: String = label.chars().skip(n - LEGEND_CHARS / 2 + 1).collect();
            label = format!("{head}…{tail}");
        }
        self.0.push((label, mark));
    }

    /// Pixels the legend needs beside the plot (about 7 px per character at 13 px).
    fn width(&self) -> u32 {
        let chars = self
            .0
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        (chars as u32 * 7 + 70).clamp(180, 560)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let (x, top) = (8i32, 40i32);
        let row = 21i32;
        let (w, _) = area.dim_in_pixel();
        let h = row * self.0.len() as i32 + 12;
        area.draw(&Rectangle::new(
            [(x, top), (w as i32 - 10, top + h)],
            RGBColor(120, 120, 120).stroke_width(1),
        ))
        .map_err(pe)?;
        for (i, (label, mark)) in self.0.iter().enumerate() {
            let y = top + 16 + row * i as i32;
            let (a, b, c) = (x + 10, x + 22, x + 34);
            let r = match *mark {
                Mark::Line(col, width) => area.draw(&PathElement::new(
                    vec![(a, y), (c, y)],
                    col.stroke_width(width),
                )),
                Mark::Dashed(col) => area
                    .draw(&PathElement::new(
                        vec![(a, y), (a + 9, y)],
                        col.stroke_width(2),
                    ))
                    .and_then(|_| {
                        area.draw(&PathElement::new(
                            vec![(a + 15, y), (c, y)],
                            col.stroke_width(2),
                        ))
                    }),
                Mark::LineDot(col) => area
                    .draw(&PathElement::new(vec![(a, y), (c, y)], col.stroke_width(2)))
                    .and_then(|_| area.draw(&Circle::new((b, y), 4, col.filled()))),
                Mark::Dot(col) => area.draw(&Circle::new((b, y), 4, col.filled())),
                Mark::Triangle(col) => area.draw(&TriangleMarker::new((b, y), 5, col.filled())),
                Mark::Cross(col) => area.draw(&Cross::new((b, y), 5, col.stroke_width(2))),
                Mark::Ring(col) => area.draw(&Circle::new((b, y), 7, col.stroke_width(2))),
                Mark::Bar(col) => area.draw(&Rectangle::new(
                    [(b - 6, y - 6), (b + 6, y + 6)],
                    col.filled(),
                )),
                Mark::Blank => Ok(()),
            };
            r.map_err(pe)?;
            area.draw(&Text::new(label.clone(), (c + 10, y - 7), font(13)))
                .map_err(pe)?;
        }
        Ok(())
    }
}

impl Legend {
    /// Draws the entries side by side on one line, centred (for short legends over panels).
    fn draw_row<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let widths: Vec<i32> = self
            .0
            .iter()
            .map(|(l, _)| 30 + 8 * l.chars().count() as i32 + 24)
            .collect();
        let (w, h) = area.dim_in_pixel();
        let mut x = (w as i32 - widths.iter().sum::<i32>()) / 2;
        let y = h as i32 / 2;
        for ((label, mark), width) in self.0.iter().zip(widths) {
            if let Mark::Bar(col) = mark {
                area.draw(&Rectangle::new([(x, y - 6), (x + 14, y + 6)], col.filled()))
                    .map_err(pe)?;
            }
            area.draw(&Text::new(label.clone(), (x + 22, y - 7), font(14)))
                .map_err(pe)?;
            x += width;
        }
        Ok(())
    }
}

/// Splits the canvas under `title` into the plot (left) and the legend (right).
fn with_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &Legend,
) -> Result<DrawingArea<DB, Shift>, PlotError> {
    let body = root.titled(title, font(22)).map_err(pe)?;
    let (plot, side) = body.split_horizontally(PLOT_WIDTH);
    legend.draw(&side)?;
    Ok(plot)
}

/// Renders into an SVG string of `size` pixels.
fn svg<F>(size: (u32, u32), draw: F) -> Result<String, PlotError>
where
    F: for<'a> FnOnce(&DrawingArea<SVGBackend<'a>, Shift>) -> Result<(), PlotError>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        draw(&root)?;
        root.present().map_err(pe)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Latency against offered rate.

/// Client latency p50/p99/p99.9 against offered rate for every series sweeping
/// `workload.rate` (log-log), saturated and invalid points ringed and labelled.
pub fn latency_vs_rate(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let points = run.points.iter().filter(|p| {
        p.params.contains_key(RATE_KEY)
            && p.load == LoadKind::OpenLoop
            && p.offered_rate > 0.0
            && p.latency.count > 0
    });
    let mut groups = group_by_other_params(points, RATE_KEY);
    if groups.is_empty() {
        return Ok(None);
    }
    for (_, g) in &mut groups {
        g.sort_by(|a, b| a.offered_rate.total_cmp(&b.offered_rate));
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
        all().map(|p| p.offered_rate).fold(f64::MAX, f64::min),
        all().map(|p| p.offered_rate).fold(0.0, f64::max),
    );
    let y_lo = all()
        .map(|p| p.latency.p50)
        .chain(floors.iter().map(|f| f.1))
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min);
    let y_hi = all()
        .map(|p| p.latency.p999.max(p.latency.p99))
        .chain(floors.iter().map(|f| f.1))
        .fold(0.0, f64::max);
    let (y0, y1) = decades(y_lo, y_hi);
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
    if all().any(|p| p.schedule_invalid && !p.saturated) {
        legend.add(
            "invalid: generator missed its schedule",
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
        let mut chart = ChartBuilder::on(&plot)
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(75)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("offered rate (requests/s, log)")
            .y_desc("client latency from the schedule (µs, log)")
            .x_label_formatter(&|v| si(*v))
            .y_label_formatter(&|v| si(*v))
            .light_line_style(LIGHT_GRID)
            .axis_desc_style(font(16))
            .label_style(font(13))
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
                            format!("{transport} round trip p50: {} µs", trim_num(*rtt)),
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
            } else if p.schedule_invalid {
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

// ---------------------------------------------------------------------------------------
// Percentile spectrum.

/// `1/(1-q)` on a log scale: 0 at the median's left edge (q=0), 1 at 90%, 2 at 99%...
fn spectrum_x(q: f64) -> f64 {
    (1.0 / (1.0 - q)).log10()
}

/// Label of a spectrum tick: 0%, 90%, 99%, 99.9%, ...
fn spectrum_label(x: f64) -> String {
    if x.abs() < 1e-9 {
        return "0%".to_string();
    }
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.ceil() as i32 - 2).clamp(0, 8) as usize;
    format!("{p:.decimals$}%")
}

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
        let flagged = summary.is_some_and(|p| p.saturated || p.schedule_invalid);
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
                        spectrum_x(v.quantile_iterated_to()),
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
    let (y0, y1) = decades(
        curves
            .iter()
            .flat_map(|(_, c)| c.iter().map(|p| p.1))
            .fold(f64::MAX, f64::min),
        curves
            .iter()
            .flat_map(|(_, c)| c.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
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
        let mut chart = ChartBuilder::on(&plot)
            .margin(15)
            .margin_right(35)
            .x_label_area_size(50)
            .y_label_area_size(75)
            .build_cartesian_2d(0.0..x_max, (y0..y1).log_scale())
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("percentile (log scale of 1/(1-p))")
            .y_desc("client latency (µs, log)")
            .x_labels(x_max as usize + 1)
            .x_label_formatter(&|v| spectrum_label(*v))
            .y_label_formatter(&|v| si(*v))
            .light_line_style(LIGHT_GRID)
            .axis_desc_style(font(16))
            .label_style(font(13))
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

// ---------------------------------------------------------------------------------------
// Commit lag against heartbeat interval.

/// Which model of BRIEF.md a point's configuration calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LagModel {
    /// Piggybacked commit index, heartbeat timer independent of appends: mean H/2 + d.
    Independent,
    /// Piggybacked commit index, heartbeat timer reset by every append: H + d.
    ResetByAppends,
    /// Eager commit notification: d.
    Eager,
}

impl LagModel {
    /// The model a point's configuration calls for.
    pub fn of(p: &PointSummary) -> LagModel {
        let eager = knob_str(p, "raft.commit_mode").is_some_and(|m| m == "eager");
        let resets = knob_str(p, "raft.append_resets_heartbeat").is_some_and(|v| v == "true");
        if eager {
            LagModel::Eager
        } else if resets {
            LagModel::ResetByAppends
        } else {
            LagModel::Independent
        }
    }

    /// Mean follower commit lag (ms) the model predicts at heartbeat `h_ms`, one-way delay
    /// `d_ms`, with requests at `rate` per second spaced by `arrival`: the next request's
    /// AppendEntries also carries the commit, so at rates near 1/H the lag stays below
    /// H/2 + d (see [`crate::harness::model`]). A rate of 0 gives the pure sparse limit.
    pub fn mean_ms(self, h_ms: f64, d_ms: f64, rate: f64, arrival: Arrival) -> f64 {
        let m = model::LagModel {
            commit_mode: match self {
                LagModel::Eager => CommitMode::Eager,
                _ => CommitMode::Piggyback,
            },
            append_resets_heartbeat: self == LagModel::ResetByAppends,
            heartbeat: Duration::from_secs_f64(h_ms.max(0.0) / 1e3),
            arrival,
            rate,
            one_way: Duration::from_secs_f64(d_ms.max(0.0) / 1e3),
        };
        m.mean().as_secs_f64() * 1e3
    }

    fn describe(self) -> &'static str {
        match self {
            LagModel::Independent => "H/2 + d (piggyback, heartbeat timer independent)",
            LagModel::ResetByAppends => "H + d (piggyback, timer reset by appends)",
            LagModel::Eager => "d (eager commit notice)",
        }
    }
}

/// The one-way delay d (ms) for a point: half the p50 round trip of the baseline on the
/// point's transport (else the first baseline), or 0 without baselines.
fn one_way_ms(run: &RunSummary, p: &PointSummary) -> (f64, Option<String>) {
    let transport = knob_str(p, "cluster.transport");
    let b = run
        .baselines
        .iter()
        .find(|b| Some(&b.transport) == transport.as_ref())
        .or_else(|| run.baselines.first());
    match b {
        Some(b) => (b.rtt.p50 / 2.0 / 1e3, Some(b.transport.clone())),
        None => (0.0, None),
    }
}

/// Measured follower commit lag (mean, and p99) against heartbeat interval H for the
/// series sweeping `raft.heartbeat_ms`, with the model of each point's commit mode beside.
pub fn commit_lag_vs_heartbeat(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let points = run.points.iter().filter(|p| {
        p.params.contains_key(HEARTBEAT_KEY)
            && p.commit_lag.count > 0
            && knob_f64(p, HEARTBEAT_KEY).is_some()
    });
    let mut groups = group_by_other_params(points, HEARTBEAT_KEY);
    if groups.is_empty() {
        return Ok(None);
    }
    let h_of = |p: &PointSummary| knob_f64(p, HEARTBEAT_KEY).unwrap_or(0.0);
    for (_, g) in &mut groups {
        g.sort_by(|a, b| h_of(a).total_cmp(&h_of(b)));
    }
    // Distinct models to draw: by kind and delay, so the same line is drawn once.
    let mut models: Vec<(LagModel, f64, Option<String>, f64, Arrival)> = Vec::new();
    for (_, g) in &groups {
        for p in g {
            let m = LagModel::of(p);
            let (d, transport) = one_way_ms(run, p);
            let rate = knob_f64(p, "workload.rate").unwrap_or(0.0);
            let arrival = match knob_str(p, "workload.arrival").as_deref() {
                Some("poisson") => Arrival::Poisson,
                _ => Arrival::Constant,
            };
            if !models.iter().any(|(k, dd, _, r, a)| {
                *k == m && (dd - d).abs() < 1e-9 && (r - rate).abs() < 1e-9 && *a == arrival
            }) {
                models.push((m, d, transport, rate, arrival));
            }
        }
    }
    models.sort_by_key(|m| m.0);
    let all = || groups.iter().flat_map(|(_, g)| g.iter());
    let h_max = all().map(|p| h_of(p)).fold(0.0, f64::max);
    let x1 = if h_max > 0.0 { h_max * 1.1 } else { 1.0 };
    let y_max = all()
        .map(|p| p.commit_lag.p99.max(p.commit_lag.mean) / 1e3)
        .chain(
            models
                .iter()
                .map(|(m, d, _, r, a)| m.mean_ms(x1, *d, *r, *a)),
        )
        .fold(0.0, f64::max);
    let y1 = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };

    let title = format!(
        "{}: follower commit lag vs heartbeat interval, with models",
        run.scenario
    );
    let model_color = |i: usize| [BLACK, RGBColor(110, 110, 110), RGBColor(170, 60, 0)][i % 3];
    let mut legend = Legend::default();
    for (i, (m, d, transport, rate, arrival)) in models.iter().enumerate() {
        let d_text = match transport {
            Some(t) => format!("d = {} ms (half the {t} RTT p50)", trim_num(*d)),
            None => "d = 0 (no baseline)".to_string(),
        };
        let d_text = if *m != LagModel::Eager && *rate > 0.0 {
            format!(
                "{d_text}; capped by the next request at {} req/s ({arrival:?})",
                trim_num(*rate)
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
        let mut chart = ChartBuilder::on(&plot)
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(75)
            .build_cartesian_2d(0.0..x1, 0.0..y1)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("heartbeat interval H (ms)")
            .y_desc("follower commit lag (ms)")
            .x_label_formatter(&|v| trim_num(*v))
            .y_label_formatter(&|v| trim_num(*v))
            .light_line_style(LIGHT_GRID)
            .axis_desc_style(font(16))
            .label_style(font(13))
            .draw()
            .map_err(pe)?;

        for (i, (m, d, _, r, a)) in models.iter().enumerate() {
            let line: Vec<(f64, f64)> = (0..=40)
                .map(|k| {
                    let h = x1 * f64::from(k) / 40.0;
                    (h, m.mean_ms(h, *d, *r, *a))
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
                .map(|p| (h_of(p), p.commit_lag.mean / 1e3))
                .collect();
            let p99: Vec<(f64, f64)> = g
                .iter()
                .map(|p| (h_of(p), p.commit_lag.p99 / 1e3))
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

// ---------------------------------------------------------------------------------------
// Sparse against dense.

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
    let rate = |p: &PointSummary| knob_f64(p, RATE_KEY).unwrap_or(p.offered_rate);
    let mut cats: Vec<(&PointSummary, String, f64)> = points
        .iter()
        .map(|p| {
            let mode = knob_str(p, "raft.commit_mode").unwrap_or_default();
            (*p, mode, rate(p))
        })
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

fn sparse_dense_label(p: &PointSummary, density: &str, several_series: bool) -> String {
    let mode = knob_str(p, "raft.commit_mode").unwrap_or_else(|| "?".to_string());
    let rate = knob_f64(p, RATE_KEY).unwrap_or(p.offered_rate);
    let mut label = format!("{mode}, {density} {}/s", si(rate));
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

/// Latency p50/p99/p99.9 and mean follower commit lag of the sparse and dense points,
/// grouped by commit mode, as two panels of bars.
pub fn sparse_vs_dense(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let points = sparse_dense_points(run);
    let cats = sparse_dense_categories(&points);
    if cats.is_empty() {
        return Ok(None);
    }
    let n = cats.len();
    let lat_lo = cats
        .iter()
        .map(|(_, p)| p.latency.p50)
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min);
    let lat_hi = cats
        .iter()
        .map(|(_, p)| p.latency.p999.max(p.latency.p99))
        .fold(0.0, f64::max);
    let lag_lo = cats
        .iter()
        .map(|(_, p)| p.commit_lag.mean)
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min);
    let lag_hi = cats
        .iter()
        .map(|(_, p)| p.commit_lag.p99.max(p.commit_lag.mean))
        .fold(0.0, f64::max);
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
        let mut chart = ChartBuilder::on(&panels[0])
            .caption("client latency", font(17))
            .margin(12)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), (y0..y1).log_scale())
            .map_err(pe)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label_of)
            .x_desc("commit mode, load (offered rate)")
            .y_desc("latency (µs, log)")
            .light_line_style(LIGHT_GRID)
            .y_label_formatter(&|v| si(*v))
            .axis_desc_style(font(15))
            .label_style(font(12))
            .draw()
            .map_err(pe)?;
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
        let mut chart = ChartBuilder::on(&panels[1])
            .caption("follower commit lag (bar: mean, whisker: p99)", font(17))
            .margin(12)
            .margin_right(70)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), (y0..y1).log_scale())
            .map_err(pe)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label_of)
            .x_desc("commit mode, load (offered rate)")
            .y_desc("commit lag (µs, log)")
            .light_line_style(LIGHT_GRID)
            .y_label_formatter(&|v| si(*v))
            .axis_desc_style(font(15))
            .label_style(font(12))
            .draw()
            .map_err(pe)?;
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
                            format!("mean {}", us_text(p.commit_lag.mean)),
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

    #[test]
    fn spectrum_axis_labels() {
        assert_eq!(spectrum_label(0.0), "0%");
        assert_eq!(spectrum_label(1.0), "90%");
        assert_eq!(spectrum_label(2.0), "99%");
        assert_eq!(spectrum_label(3.0), "99.9%");
        assert_eq!(spectrum_label(5.0), "99.999%");
        assert!((spectrum_x(0.99) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn decades_and_numbers() {
        assert_eq!(decades(150.0, 2500.0), (100.0, 10000.0));
        assert_eq!(decades(100.0, 100.0), (100.0, 1000.0));
        assert_eq!(si(20000.0), "20k");
        assert_eq!(si(1500000.0), "1.5M");
        assert_eq!(trim_num(0.045), "0.045");
        assert_eq!(trim_num(12.5), "12.5");
    }

    #[test]
    fn models_follow_the_brief() {
        assert_eq!(
            LagModel::Independent.mean_ms(50.0, 1.0, 0.0, Arrival::Constant),
            26.0
        );
        assert_eq!(
            LagModel::ResetByAppends.mean_ms(50.0, 1.0, 0.0, Arrival::Constant),
            51.0
        );
        assert_eq!(
            LagModel::Eager.mean_ms(50.0, 1.0, 0.0, Arrival::Constant),
            1.0
        );
        let mut p = PointSummary {
            config: toml::from_str("[raft]\ncommit_mode = \"eager\"\n").unwrap(),
            ..Default::default()
        };
        assert_eq!(LagModel::of(&p), LagModel::Eager);
        p.params
            .insert("raft.commit_mode".into(), "\"piggyback\"".into());
        p.config = toml::from_str("[raft]\nappend_resets_heartbeat = true\n").unwrap();
        assert_eq!(LagModel::of(&p), LagModel::ResetByAppends);
    }

    #[test]
    fn empty_run_draws_nothing() {
        let run = RunSummary::default();
        assert!(latency_vs_rate(&run).unwrap().is_none());
        assert!(percentile_spectrum(&run, &[]).unwrap().is_none());
        assert!(commit_lag_vs_heartbeat(&run).unwrap().is_none());
        assert!(sparse_vs_dense(&run).unwrap().is_none());
    }
}
