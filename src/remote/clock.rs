//! Putting a node's clock on the caller's: `CLOCK_MONOTONIC` for processes on one host,
//! and NTP's four-timestamp exchange for nodes on other hosts.
//!
//! A node's [`Time`](crate::raft::Time) is nanoseconds since its epoch (an [`Instant`]).
//! Rust's `Instant` reads `CLOCK_MONOTONIC` on Linux, so a node can name its epoch as a
//! `CLOCK_MONOTONIC` reading ([`instant_to_monotonic_ns`]), and any process on the same
//! host can translate its timestamps exactly. Across hosts, [`ClockOffset::estimate`]
//! bounds the offset by causality: the node's receive stamp follows the client's send, and
//! the client's receive stamp follows the node's send.

use std::time::Instant;

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on every Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) cannot fail");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `instant` as a `CLOCK_MONOTONIC` reading in nanoseconds (the clock `Instant` reads on
/// Linux). `Instant` does not expose its reading, so this brackets one `clock_gettime`
/// between two `Instant::now()` and takes the middle: off by at most half the bracket
/// (tens of nanoseconds).
pub fn instant_to_monotonic_ns(instant: Instant) -> u64 {
    let before = Instant::now();
    let mono = monotonic_now_ns();
    let after = Instant::now();
    let mid = before + (after - before) / 2;
    if instant <= mid {
        mono.saturating_sub((mid - instant).as_nanos() as u64)
    } else {
        mono.saturating_add((instant - mid).as_nanos() as u64)
    }
}

/// One four-timestamp exchange with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    /// The client sent its request, in ns on the client's clock.
    pub t1: u64,
    /// The node received it, in ns on the node's `Time` clock.
    pub t2: u64,
    /// The node sent its answer, in ns on the node's `Time` clock.
    pub t3: u64,
    /// The client received the answer, in ns on the client's clock.
    pub t4: u64,
}

impl ClockSample {
    /// The round trip minus the node's time between receiving and answering, in ns.
    pub fn round_trip_ns(&self) -> u64 {
        self.t4
            .saturating_sub(self.t1)
            .saturating_sub(self.t3.saturating_sub(self.t2))
    }
}

/// A node clock's offset from the caller's, with its error bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockOffset {
    /// Maps node time to the caller's clock: `caller_ns = node_ns + offset_ns`.
    pub offset_ns: i64,
    /// The true offset lies within `offset_ns ± error_ns` (half the round trip of the
    /// sample used, rounded up).
    pub error_ns: u64,
}

impl ClockOffset {
    /// NTP's estimate from the sample with the smallest round trip; None without samples.
    ///
    /// Causality bounds the true offset `o` (with `caller = node + o`): the node received
    /// after the client sent, `t2 + o >= t1`, and the client received after the node sent,
    /// `t4 >= t3 + o`; so `o` lies in `[t1 - t2, t4 - t3]`, whose middle is the estimate
    /// and whose half width (half the round trip) the error.
    pub fn estimate(samples: &[ClockSample]) -> Option<ClockOffset> {
        let s = samples.iter().min_by_key(|s| s.round_trip_ns())?;
        let lo = s.t1 as i128 - s.t2 as i128;
        let hi = s.t4 as i128 - s.t3 as i128;
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let width = (hi - lo) as u128;
        let offset = lo + (width / 2) as i128;
        Some(ClockOffset {
            offset_ns: offset.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            error_ns: width.div_ceil(2).min(u64::MAX as u128) as u64,
        })
    }

    /// Whether `offset_ns` lies within this estimate's bound.
    pub fn contains(&self, offset_ns: i64) -> bool {
        (offset_ns as i128 - self.offset_ns as i128).unsigned_abs() <= self.error_ns as u128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_uses_the_shortest_round_trip_and_bounds_the_offset() {
        // Node clock = caller clock - 1_000 (offset +1_000); one-way delays vary.
        let sample = |t1: u64, up: u64, work: u64, down: u64| {
            let t2 = t1 + up - 1_000;
            let t3 = t2 + work;
            ClockSample {
                t1,
                t2,
                t3,
                t4: t3 + 1_000 + down,
            }
        };
        let samples = [
            sample(10_000, 500, 50, 900),
            sample(20_000, 30, 10_000, 70), // shortest round trip: 100
            sample(30_000, 2_000, 5, 10),
        ];
        assert_eq!(samples[1].round_trip_ns(), 100);
        let est = ClockOffset::estimate(&samples).unwrap();
        assert_eq!(est.error_ns, 50);
        assert!(est.contains(1_000), "{est:?}");
        // Asymmetric delays (30 up, 70 down) put the midpoint 20 off, within the bound.
        assert_eq!(est.offset_ns, 1_000 + 20);
        assert!(!est.contains(1_100));
        assert_eq!(ClockOffset::estimate(&[]), None);
    }

    #[test]
    fn a_negative_offset_and_an_odd_round_trip() {
        // Node clock ahead of the caller's by 5 s.
        let s = ClockSample {
            t1: 100,
            t2: 5_000_000_100 + 3,
            t3: 5_000_000_100 + 3,
            t4: 100 + 7,
        };
        let est = ClockOffset::estimate(&[s]).unwrap();
        assert_eq!(est.error_ns, 4, "7 ns round trip: half, rounded up");
        assert!(est.contains(-5_000_000_000));
    }

    #[test]
    fn an_instant_maps_onto_clock_monotonic() {
        let before = monotonic_now_ns();
        let now = Instant::now();
        let after = monotonic_now_ns();
        let m = instant_to_monotonic_ns(now);
        // Slack far above any bracket: this checks the clock, not the speed.
        let slack = 1_000_000_000;
        assert!(
            m + slack >= before && m <= after + slack,
            "{before} {m} {after}"
        );
        let later = instant_to_monotonic_ns(now + std::time::Duration::from_secs(3));
        assert!(later.abs_diff(m + 3_000_000_000) < slack, "{m} {later}");
    }
}
