//! What follower commit lag should be, from the README's models, so that measurements can be
//! drawn and checked against them.
//!
//! A follower learns that entry i committed from the next AppendEntries the leader sends it
//! after committing i: either the one carrying the next request, or a heartbeat. With H the
//! heartbeat interval, d the one-way delay and requests at rate r:
//!
//! - heartbeats on a leader-wide timer (appends do not reset it): the heartbeat comes after
//!   U ~ Uniform(0, H); the next request after A (A = 1/r for constant arrivals,
//!   Exponential(r) for Poisson ones); lag = min(U, A) + d. For r·H << 1 this is H/2 + d.
//! - heartbeat timer reset by every append: the heartbeat comes exactly H after the append
//!   that carried i; lag = min(H, A) + d. For r·H << 1 this is H + d.
//! - eager notification: lag = d, at one extra message per follower per commit.

use std::time::Duration;

use crate::harness::scenario::{Arrival, PointConfig};
use crate::raft::CommitMode;

/// The inputs of the model.
#[derive(Clone, Copy, Debug)]
pub struct LagModel {
    /// Piggyback or eager.
    pub commit_mode: CommitMode,
    /// Whether an append restarts the follower's heartbeat timer.
    pub append_resets_heartbeat: bool,
    /// Heartbeat interval H.
    pub heartbeat: Duration,
    /// Request spacing.
    pub arrival: Arrival,
    /// Requests per second r (0 for none).
    pub rate: f64,
    /// One-way delay d.
    pub one_way: Duration,
}

impl LagModel {
    /// The model of a point run with `config`, over a one-way delay `one_way`.
    pub fn of_point(config: &PointConfig, one_way: Duration) -> LagModel {
        LagModel {
            commit_mode: config.raft.commit_mode,
            append_resets_heartbeat: config.raft.append_resets_heartbeat,
            heartbeat: config.raft.heartbeat_interval,
            arrival: config.workload.arrival,
            rate: config.workload.rate,
            one_way,
        }
    }

    /// The same model at heartbeat interval `heartbeat` (to draw it against H).
    pub fn with_heartbeat(self, heartbeat: Duration) -> LagModel {
        LagModel { heartbeat, ..self }
    }

    /// The formula's sparse-load limit and the regime it models, for a legend; models with
    /// the same formula differ only in their inputs.
    pub fn describe(&self) -> &'static str {
        if self.commit_mode == CommitMode::Eager {
            "d (eager commit notice)"
        } else if self.append_resets_heartbeat {
            "H + d (piggyback, timer reset by appends)"
        } else {
            "H/2 + d (piggyback, heartbeat timer independent)"
        }
    }

    /// Expected (mean) follower commit lag.
    pub fn mean(&self) -> Duration {
        let d = self.one_way.as_secs_f64();
        if self.commit_mode == CommitMode::Eager {
            return Duration::from_secs_f64(d);
        }
        let h = self.heartbeat.as_secs_f64();
        let r = self.rate;
        if h <= 0.0 {
            return Duration::from_secs_f64(d);
        }
        let wait = match (self.append_resets_heartbeat, self.arrival) {
            (_, _) if r <= 0.0 => {
                if self.append_resets_heartbeat {
                    h
                } else {
                    h / 2.0
                }
            }
            // E[min(U(0,H), g)] with g = 1/r.
            (false, Arrival::Constant) => {
                let g = 1.0 / r;
                if h <= g {
                    h / 2.0
                } else {
                    g - g * g / (2.0 * h)
                }
            }
            // E[min(U(0,H), Exp(r))] = (1/r) (1 - (1 - e^{-rH}) / (rH)).
            (false, Arrival::Poisson) => {
                let x = r * h;
                if x < 1e-6 {
                    h / 2.0 // the series' first term; the closed form loses all precision here
                } else {
                    (1.0 - (1.0 - (-x).exp()) / x) / r
                }
            }
            // E[min(H, g)].
            (true, Arrival::Constant) => h.min(1.0 / r),
            // E[min(H, Exp(r))] = (1 - e^{-rH}) / r.
            // (`exp_m1` keeps 1 - e^{-rH} exact when rH is tiny, where the plain form
            // overshot H: a test bounding the model by H found it.)
            (true, Arrival::Poisson) => (-(-r * h).exp_m1() / r).min(h),
        };
        Duration::from_secs_f64(wait + d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(resets: bool, arrival: Arrival, h_ms: f64, rate: f64) -> f64 {
        LagModel {
            commit_mode: CommitMode::Piggyback,
            append_resets_heartbeat: resets,
            heartbeat: Duration::from_secs_f64(h_ms / 1e3),
            arrival,
            rate,
            one_way: Duration::ZERO,
        }
        .mean()
        .as_secs_f64()
            * 1e3
    }

    #[test]
    fn sparse_limits_match_the_brief() {
        // r H = 0.0001: the heartbeat alone decides.
        for arrival in [Arrival::Constant, Arrival::Poisson] {
            assert!((model(false, arrival, 50.0, 0.002) - 25.0).abs() < 0.01);
            assert!((model(true, arrival, 50.0, 0.002) - 50.0).abs() < 0.01);
        }
    }

    #[test]
    fn dense_load_caps_the_lag_at_the_next_request() {
        // 1000 requests/s, H = 100 ms: the next append comes within about 1 ms.
        assert!(model(false, Arrival::Constant, 100.0, 1000.0) < 1.0);
        assert!(model(false, Arrival::Poisson, 100.0, 1000.0) < 1.0);
        assert!((model(true, Arrival::Constant, 100.0, 1000.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_lag_never_exceeds_the_heartbeat_wait_and_falls_with_the_rate() {
        // Even at the edges (no heartbeat, no requests, absurd rates) the mean wait is at
        // most the heartbeat's (H/2 on a free-running timer, H when appends reset it) and
        // more requests never make followers learn later.
        for resets in [false, true] {
            let bound = |h: f64| if resets { h } else { h / 2.0 };
            for arrival in [Arrival::Constant, Arrival::Poisson] {
                for h in [0.0, 1e-9, 1.0, 100.0] {
                    let mut last = f64::INFINITY;
                    for rate in [0.0, 1e-9, 200.0, 1e6] {
                        let m = model(resets, arrival, h, rate);
                        assert!(
                            (0.0..=bound(h) + 1e-6).contains(&m),
                            "{resets} {arrival:?} H={h} ms rate={rate}: {m} ms"
                        );
                        assert!(m <= last + 1e-9, "lag grew with the rate: {m} after {last}");
                        last = m;
                    }
                }
            }
        }
    }

    #[test]
    fn eager_is_the_one_way_delay() {
        let m = LagModel {
            commit_mode: CommitMode::Eager,
            append_resets_heartbeat: false,
            heartbeat: Duration::from_millis(50),
            arrival: Arrival::Constant,
            rate: 10.0,
            one_way: Duration::from_micros(40),
        };
        assert_eq!(m.mean(), Duration::from_micros(40));
    }

    #[test]
    fn a_point_config_picks_its_model() {
        let mut config = PointConfig::default();
        config.raft.commit_mode = CommitMode::Eager;
        let m = LagModel::of_point(&config, Duration::from_millis(1));
        assert_eq!(m.describe(), "d (eager commit notice)");
        assert_eq!(m.mean(), Duration::from_millis(1));
        config.raft.commit_mode = CommitMode::Piggyback;
        config.raft.append_resets_heartbeat = true;
        config.workload.rate = 0.0;
        let m = LagModel::of_point(&config, Duration::from_millis(1))
            .with_heartbeat(Duration::from_millis(50));
        assert!(m.describe().starts_with("H + d"));
        assert_eq!(m.mean(), Duration::from_millis(51));
        config.raft.append_resets_heartbeat = false;
        let m = LagModel::of_point(&config, Duration::from_millis(1))
            .with_heartbeat(Duration::from_millis(50));
        assert!(m.describe().starts_with("H/2 + d"));
        assert_eq!(m.mean(), Duration::from_millis(26));
    }
}
