//! Points measured at a fraction of their own saturation throughput.
//!
//! A configuration's capacity is not known in advance (it moves by orders of magnitude
//! with the round trip, the pipeline window and the batch limit), so a point with
//! `[base.saturation]` is run in two steps on two fresh clusters of the same
//! configuration: a closed-loop probe whose many clients keep every queue, window and
//! batch full ([`probe_point`]), whose delivered throughput is the saturation throughput;
//! then the point itself, open loop at a fraction of it ([`at_fraction`]), whose latency
//! is the latency at that load. An open loop above capacity would find the same
//! throughput but pile up an unbounded queue; a closed loop bounds it by its clients.

use crate::harness::scenario::{validate_point, LoadMode, Point};
use crate::harness::summary::{PointSummary, Saturation};

/// The closed-loop probe of `p`, if `p` runs at a fraction of its saturation throughput:
/// the same configuration with the probe's clients and timing, and no probe of its own.
pub fn probe_point(p: &Point) -> Option<Point> {
    let sat = p.config.saturation.as_ref()?;
    let mut config = p.config.clone();
    config.workload.mode = LoadMode::ClosedLoop;
    config.workload.clients = sat.clients;
    config.timing.warmup_s = sat.warmup_s;
    config.timing.measure_s = sat.measure_s;
    // Faults belong to the point's own window, not to the probe's.
    config.faults.clear();
    config.saturation = None;
    Some(Point {
        name: format!("{} (saturation probe)", p.name),
        series: p.series.clone(),
        params: p.params.clone(),
        config,
    })
}

/// `p` resolved to an open loop at its probe's throughput times the configured fraction,
/// and what the probe found; an error (the reason) if the probe delivered nothing.
pub fn at_fraction(p: &Point, probe: &PointSummary) -> Result<(Point, Saturation), String> {
    let sat = p
        .config
        .saturation
        .as_ref()
        .ok_or("the point has no [saturation] table")?;
    let throughput = probe.achieved_rate;
    if !(throughput.is_finite() && throughput > 0.0) {
        return Err(format!(
            "the saturation probe ({} closed-loop clients, {} s) delivered no answer: \
             {} errors, {} unanswered",
            sat.clients, sat.measure_s, probe.errors, probe.unanswered
        ));
    }
    let mut point = p.clone();
    point.config.workload.mode = LoadMode::OpenLoop;
    point.config.workload.rate = throughput * sat.fraction;
    validate_point(&point.config).map_err(|(k, r)| format!("{k}: {r}"))?;
    Ok((
        point,
        Saturation {
            throughput,
            clients: sat.clients,
            fraction: sat.fraction,
            measured_seconds: probe.measured_seconds,
            latency: probe.latency.clone(),
            batch_size_mean: probe.batch_size.mean,
            pipeline_depth_mean: probe.pipeline_depth.mean,
            invalid: probe.invalid(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::scenario::{Fault, PointConfig, SaturationProbe};
    use crate::harness::summary::Percentiles;

    fn point(sat: Option<SaturationProbe>) -> Point {
        let mut config = PointConfig {
            saturation: sat,
            ..PointConfig::default()
        };
        config.faults.push(Fault::Heal { at_s: 1.0 });
        Point {
            name: "w/max_inflight_msgs=4".into(),
            series: "w".into(),
            params: vec![("raft.max_inflight_msgs".into(), "4".into())],
            config,
        }
    }

    #[test]
    fn the_probe_is_a_closed_loop_with_the_probes_clients_and_timing() {
        assert!(probe_point(&point(None)).is_none());
        let p = point(Some(SaturationProbe {
            clients: 300,
            warmup_s: 0.5,
            measure_s: 1.5,
            fraction: 0.5,
        }));
        let probe = probe_point(&p).unwrap();
        let c = &probe.config;
        assert_eq!(c.workload.mode, LoadMode::ClosedLoop);
        assert_eq!(c.workload.clients, 300);
        assert_eq!((c.timing.warmup_s, c.timing.measure_s), (0.5, 1.5));
        assert!(c.saturation.is_none() && c.faults.is_empty());
        assert_eq!(
            c.raft, p.config.raft,
            "the probe runs the point's own knobs"
        );
        assert_eq!(probe.params, p.params);
    }

    #[test]
    fn the_point_runs_open_loop_at_the_fraction_of_the_probes_throughput() {
        let p = point(Some(SaturationProbe {
            fraction: 0.5,
            ..SaturationProbe::default()
        }));
        let probe = PointSummary {
            achieved_rate: 12_000.0,
            measured_seconds: 2.0,
            latency: Percentiles {
                count: 24_000,
                p50: 300_000.0,
                ..Percentiles::default()
            },
            ..PointSummary::default()
        };
        let (resolved, sat) = at_fraction(&p, &probe).unwrap();
        assert_eq!(resolved.config.workload.mode, LoadMode::OpenLoop);
        assert_eq!(resolved.config.workload.rate, 6_000.0);
        assert_eq!(resolved.name, p.name, "the point keeps its name");
        assert_eq!(resolved.config.faults, p.config.faults);
        assert_eq!(sat.throughput, 12_000.0);
        assert_eq!((sat.clients, sat.fraction), (4096, 0.5));
        assert_eq!(sat.latency.p50, 300_000.0);
        assert!(!sat.invalid);
    }

    #[test]
    fn a_probe_that_delivered_nothing_is_an_error() {
        let p = point(Some(SaturationProbe::default()));
        let probe = PointSummary {
            errors: 7,
            ..PointSummary::default()
        };
        let e = at_fraction(&p, &probe).unwrap_err();
        assert!(
            e.contains("delivered no answer") && e.contains("7 errors"),
            "{e}"
        );
        assert!(at_fraction(&point(None), &probe).is_err());
    }
}
