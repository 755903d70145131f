//! Client latency, follower commit lag and QUIC's lost packets against the loss
//! probability on the links, one line per set of lossy followers (the lecture's loss
//! experiment).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{decades, max_of, min_positive};
use super::canvas::{color, figure_chart, font, styled, svg, Legend, Mark, INVALID};
use super::format::{plain, si};
use super::{pe, PlotError};
use crate::harness::summary::{PointSummary, RunSummary};
use crate::netem::Endpoint;
use crate::raft::NodeId;

/// The highest independent loss probability on any of a point's links.
pub fn loss_of(p: &PointSummary) -> f64 {
    p.config
        .links
        .iter()
        .filter_map(|l| l.loss)
        .fold(p.config.network.loss, f64::max)
}

/// The followers whose links to or from the leader lose datagrams; every follower when
/// `network.loss` is set.
pub fn lossy_followers(p: &PointSummary) -> Vec<NodeId> {
    let leader = p.config.cluster.leader.unwrap_or(1);
    let nodes = p.config.cluster.nodes as NodeId;
    if p.config.network.loss > 0.0 {
        return (1..=nodes).filter(|&n| n != leader).collect();
    }
    let mut v: Vec<NodeId> = p
        .config
        .links
        .iter()
        .filter(|l| l.loss.is_some_and(|x| x > 0.0))
        .flat_map(|l| [l.from, l.to])
        .filter_map(|e| match e {
            Endpoint::Node(n) if n != leader => Some(n),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Whether loss-free point `r` is the reference of lossy point `p`: the same cluster,
/// core knobs, load and link delay, only without loss.
fn reference_of(r: &PointSummary, p: &PointSummary) -> bool {
    let (a, b) = (&r.config, &p.config);
    loss_of(r) == 0.0
        && a.cluster == b.cluster
        && a.raft == b.raft
        && a.workload == b.workload
        && a.network.delay_ms == b.network.delay_ms
}

/// The lines: for each set of lossy followers, its points by loss, each starting from the
/// loss-free points of the same configuration (the reference they share).
pub fn loss_lines(run: &RunSummary) -> Vec<(Vec<NodeId>, Vec<&PointSummary>)> {
    let mut lines: Vec<(Vec<NodeId>, Vec<&PointSummary>)> = Vec::new();
    for p in run.points.iter().filter(|p| loss_of(p) > 0.0) {
        let who = lossy_followers(p);
        match lines.iter_mut().find(|(w, _)| *w == who) {
            Some((_, g)) => g.push(p),
            None => {
                let mut g: Vec<&PointSummary> =
                    run.points.iter().filter(|r| reference_of(r, p)).collect();
                g.push(p);
                lines.push((who, g));
            }
        }
    }
    for (_, g) in &mut lines {
        g.sort_by(|a, b| loss_of(a).total_cmp(&loss_of(b)));
    }
    lines
}

fn who_label(who: &[NodeId]) -> String {
    let names: Vec<String> = who.iter().map(|n| n.to_string()).collect();
    match names.len() {
        1 => format!("loss on the links to follower {}", names[0]),
        _ => format!("loss on the links to followers {}", names.join(" and ")),
    }
}

/// The distinct loss values, in order: the x axis's categories.
fn categories(lines: &[(Vec<NodeId>, Vec<&PointSummary>)]) -> Vec<f64> {
    let mut v: Vec<f64> = lines
        .iter()
        .flat_map(|(_, g)| g.iter().map(|p| loss_of(p)))
        .collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

type Value = fn(&PointSummary) -> f64;

#[allow(clippy::too_many_arguments)]
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[(Vec<NodeId>, Vec<&PointSummary>)],
    cats: &[f64],
    ys: &[(Value, u32)],
    y_desc: &str,
    log: bool,
) -> Result<(), PlotError> {
    let xi = |p: &PointSummary| {
        cats.iter()
            .position(|c| *c == loss_of(p))
            .map_or(0.0, |i| i as f64)
    };
    let all = || lines.iter().flat_map(|(_, g)| g.iter().copied());
    let yv = || all().flat_map(|p| ys.iter().map(move |(y, _)| y(p)));
    let x_range = -0.3..(cats.len() as f64 - 0.7);
    let label = |v: &f64| {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        cats.get(i as usize)
            .map(|c| format!("{}%", plain(c * 100.0)))
            .unwrap_or_default()
    };
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            styled(&mut chart.configure_mesh(), 15, 12)
                .x_desc("loss per datagram on the lossy links")
                .y_desc(y_desc)
                .x_labels(cats.len().max(2) * 2 + 1)
                .x_label_formatter(&label)
                .y_label_formatter(&|v| si(*v))
                .draw()
                .map_err(pe)?;
            for (i, (_, g)) in lines.iter().enumerate() {
                let c = color(i);
                for &(y, marker) in ys {
                    let pts: Vec<(f64, f64)> = g
                        .iter()
                        .filter(|p| !log || y(p) > 0.0)
                        .map(|p| (xi(p), y(p)))
                        .collect();
                    chart
                        .draw_series(LineSeries::new(
                            pts.clone(),
                            c.stroke_width(if marker == 0 { 2 } else { 1 }),
                        ))
                        .map_err(pe)?;
                    match marker {
                        0 => chart
                            .draw_series(pts.iter().map(|&xy| Circle::new(xy, 4, c.filled())))
                            .map_err(pe)?,
                        1 => chart
                            .draw_series(
                                pts.iter().map(|&xy| TriangleMarker::new(xy, 5, c.filled())),
                            )
                            .map_err(pe)?,
                        _ => chart
                            .draw_series(pts.iter().map(|&xy| Cross::new(xy, 5, c.stroke_width(2))))
                            .map_err(pe)?,
                    };
                    chart
                        .draw_series(
                            g.iter()
                                .filter(|p| p.invalid() && (!log || y(p) > 0.0))
                                .map(|p| Circle::new((xi(p), y(p)), 9, INVALID.stroke_width(2))),
                        )
                        .map_err(pe)?;
                }
            }
        }};
    }
    if log {
        let (y0, y1) = decades(min_positive(yv()), max_of(yv()));
        draw!(figure_chart(area, x_range, (y0..y1).log_scale(), 15)?);
    } else {
        let y1 = super::axis::from_zero(max_of(yv()));
        draw!(figure_chart(area, x_range, 0.0..y1, 15)?);
    }
    Ok(())
}

/// The mean commit lag of the followers that lose datagrams, else of all followers (ms).
fn lossy_lag_mean(p: &PointSummary) -> f64 {
    lossy_lag(p, |f| f.commit_lag.mean)
}

fn lossy_lag_p99(p: &PointSummary) -> f64 {
    lossy_lag(p, |f| f.commit_lag.p99)
}

fn lossy_lag(p: &PointSummary, v: fn(&crate::harness::summary::FollowerLag) -> f64) -> f64 {
    let who = lossy_followers(p);
    let fs: Vec<f64> = p
        .followers
        .iter()
        .filter(|f| who.is_empty() || who.contains(&f.node))
        .map(v)
        .collect();
    if fs.is_empty() {
        0.0
    } else {
        fs.iter().sum::<f64>() / fs.len() as f64
    }
}

/// Client latency (p50, p99, p99.9), the lossy followers' commit lag (mean, p99) and
/// QUIC's lost packets per thousand sent, against loss; None if no point loses datagrams.
pub fn loss(run: &RunSummary) -> Result<Option<String>, PlotError> {
    let lines = loss_lines(run);
    if lines.is_empty() {
        return Ok(None);
    }
    let cats = categories(&lines);
    let mut legend = Legend::default();
    for (i, (who, _)) in lines.iter().enumerate() {
        legend.add(who_label(who), Mark::LineDot(color(i)));
    }
    legend.add("p50 / mean: circle, thick line", Mark::Dot(BLACK));
    legend.add("p99: triangle, thin line", Mark::Triangle(BLACK));
    legend.add("p99.9: cross", Mark::Cross(BLACK));
    legend.add("invalid: emulator or generator", Mark::Ring(INVALID));
    legend.add("middle: commit lag of the lossy followers", Mark::Blank);
    legend.add(
        "right: QUIC packets declared lost per 1000 sent",
        Mark::Blank,
    );
    let title = format!(
        "{}: client latency, follower commit lag and QUIC losses vs link loss",
        run.scenario
    );
    let svg = svg((1500 + legend.width(), 600), |root| {
        let body = root.titled(&title, font(22)).map_err(pe)?;
        let (plot, side) = body.split_horizontally(1500);
        legend.draw(&side)?;
        let cells = plot.split_evenly((1, 3));
        panel(
            &cells[0],
            &lines,
            &cats,
            &[
                (|p| p.latency.p50, 0),
                (|p| p.latency.p99, 1),
                (|p| p.latency.p999, 2),
            ],
            "client latency (µs, log)",
            true,
        )?;
        panel(
            &cells[1],
            &lines,
            &cats,
            &[(lossy_lag_mean, 0), (lossy_lag_p99, 1)],
            "follower commit lag (µs, log)",
            true,
        )?;
        panel(
            &cells[2],
            &lines,
            &cats,
            &[(
                |p| p.quic_stats.map_or(0.0, |q| q.loss_fraction() * 1000.0),
                0,
            )],
            "QUIC lost packets per 1000 sent",
            false,
        )?;
        Ok(())
    })?;
    Ok(Some(svg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::summary::QuicStats;
    use crate::netem::LinkOverride;

    fn point(loss: f64, followers: &[NodeId]) -> PointSummary {
        let mut p = PointSummary::default();
        p.config.cluster.leader = Some(1);
        for &f in followers {
            for (a, b) in [(1, f), (f, 1)] {
                let mut l = LinkOverride::new(a.into(), b.into());
                l.loss = Some(loss);
                l.delay_ms = Some(5.0);
                p.config.links.push(l);
            }
        }
        p.quic_stats = Some(QuicStats {
            sent_packets: 1000,
            lost_packets: (loss * 1000.0) as u64,
            ..QuicStats::default()
        });
        p.latency.p50 = 10_000.0;
        p
    }

    #[test]
    fn lines_group_by_lossy_followers_and_share_the_reference() {
        let mut run = RunSummary::default();
        run.points.push(point(0.0, &[3]));
        // A loss-free point of another configuration is no reference.
        let mut other = point(0.0, &[]);
        other.config.raft.heartbeat_interval = std::time::Duration::from_millis(7);
        run.points.push(other);
        for loss in [0.05, 0.001, 0.01] {
            run.points.push(point(loss, &[3]));
            run.points.push(point(loss, &[2, 3]));
        }
        assert_eq!(lossy_followers(&run.points[2]), [3]);
        assert_eq!(lossy_followers(&run.points[3]), [2, 3]);
        let lines = loss_lines(&run);
        assert_eq!(lines.len(), 2);
        let losses: Vec<f64> = lines[1].1.iter().map(|p| loss_of(p)).collect();
        assert_eq!(losses, [0.0, 0.001, 0.01, 0.05]);
        assert_eq!(
            who_label(&lines[1].0),
            "loss on the links to followers 2 and 3"
        );
        assert!(loss(&run).unwrap().unwrap().contains("<svg"));
        assert!(loss(&RunSummary::default()).unwrap().is_none());
    }
}
