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
//! - entries only with the heartbeat (`trigger = on_tick`): every message leaves on the
//!   heartbeat grid, so the commit of i (one round trip after the tick that carried it)
//!   reaches a follower with the first tick after it: lag = k H - 2d + d, with k the
//!   ticks a round trip spans (k = ceil(2d / H), at least 1). For 2d < H this is H - d.
//!
//! Client latency at sparse load ([`LatencyModel`]): a request waits for the
//! AppendEntries that carries it, then one round trip to the faster follower: 2d when
//! entries leave at once (whatever the heartbeat does), E[wait for the next tick] + 2d =
//! H/2 + 2d when they leave only with the heartbeat (a request arrives at a uniformly
//! random moment of the tick's period).

use std::time::Duration;

use crate::harness::scenario::{Arrival, PointConfig};
use crate::raft::{CommitMode, ReplicationTrigger};

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
    /// When entries leave: at once, or only with the heartbeat.
    pub trigger: ReplicationTrigger,
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
            trigger: config.raft.trigger,
        }
    }

    /// The same model at heartbeat interval `heartbeat` (to draw it against H).
    pub fn with_heartbeat(self, heartbeat: Duration) -> LagModel {
        LagModel { heartbeat, ..self }
    }

    /// The formula's sparse-load limit and the regime it models, for a legend; models with
    /// the same formula differ only in their inputs.
    pub fn describe(&self) -> &'static str {
        if self.trigger == ReplicationTrigger::OnTick {
            "kH - d (entries only with the heartbeat; k = ceil(2d/H))"
        } else if self.commit_mode == CommitMode::Eager {
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
        if self.trigger == ReplicationTrigger::OnTick && h > 0.0 {
            let k = (2.0 * d / h).ceil().max(1.0);
            return Duration::from_secs_f64(k * h - d);
        }
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

/// The expected client latency at sparse load of a design (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyModel {
    /// When entries leave.
    pub trigger: ReplicationTrigger,
    /// Heartbeat interval H.
    pub heartbeat: Duration,
    /// One-way delay d.
    pub one_way: Duration,
}

impl LatencyModel {
    /// The model of a point run with `config`, over a one-way delay `one_way`.
    pub fn of_point(config: &PointConfig, one_way: Duration) -> LatencyModel {
        LatencyModel {
            trigger: config.raft.trigger,
            heartbeat: config.raft.heartbeat_interval,
            one_way,
        }
    }

    /// The formula, for a legend or a table.
    pub fn describe(&self) -> &'static str {
        match self.trigger {
            ReplicationTrigger::Immediate => "2d (entries leave at once)",
            ReplicationTrigger::OnTick => "H/2 + 2d (entries wait for the next heartbeat)",
        }
    }

    /// Expected (mean) client latency.
    pub fn mean(&self) -> Duration {
        let wait = match self.trigger {
            ReplicationTrigger::Immediate => Duration::ZERO,
            ReplicationTrigger::OnTick => self.heartbeat / 2,
        };
        wait + self.one_way * 2
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
            trigger: ReplicationTrigger::Immediate,
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
            trigger: ReplicationTrigger::Immediate,
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

    #[test]
    fn on_tick_lag_is_the_next_tick_after_the_round_trip() {
        let mut config = PointConfig::default();
        config.raft.trigger = ReplicationTrigger::OnTick;
        config.raft.heartbeat_interval = Duration::from_millis(50);
        config.workload.rate = 20.0;
        let m = LagModel::of_point(&config, Duration::from_millis(5));
        // Committed 10 ms after the tick; the next tick 50 ms after it; 5 ms to arrive.
        assert_eq!(m.mean(), Duration::from_millis(45));
        assert!(m.describe().starts_with("kH - d"));
        // A round trip longer than H: the commit waits for the second tick after its own.
        let m = m.with_heartbeat(Duration::from_millis(8));
        assert_eq!(m.mean(), Duration::from_millis(11));
    }

    #[test]
    fn client_latency_waits_half_a_tick_only_when_entries_wait_for_it() {
        let mut config = PointConfig::default();
        config.raft.heartbeat_interval = Duration::from_millis(50);
        let d = Duration::from_millis(5);
        let m = LatencyModel::of_point(&config, d);
        assert_eq!(m.mean(), Duration::from_millis(10));
        assert!(m.describe().starts_with("2d"));
        config.raft.append_resets_heartbeat = true;
        assert_eq!(
            LatencyModel::of_point(&config, d).mean(),
            Duration::from_millis(10)
        );
        config.raft.trigger = ReplicationTrigger::OnTick;
        let m = LatencyModel::of_point(&config, d);
        assert_eq!(m.mean(), Duration::from_millis(35));
        assert!(m.describe().starts_with("H/2 + 2d"));
    }
}
