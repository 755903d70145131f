//! The client side of a point: every answer, turned into client latency (from the
//! intended send) and the phase breakdown that the answer's [`Trace`] carries.
//!
//! Each stamp of a request travels with its answer, so nothing is joined after the fact
//! and nothing can be lost between two rings: every successful answer gives one sample to
//! the latency histogram and one to each phase histogram. An answer whose phases cannot be
//! attributed (no trace, or stamps out of order) is counted in `phase_samples_missing`, never
//! dropped without a word.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::histograms::{IntervalHistogram, Unit};
use crate::harness::load::Intended;
use crate::harness::window::Window;
use crate::server::{Answer, ClientError, Trace};

/// The phases of a request's latency, in the order they happen; they add up to it.
pub const PHASES: [&str; 5] = ["queue", "batch_wait", "replication", "apply", "reply"];

/// How far the phases of one request may add up away from its latency before it counts
/// as a mismatch: above the clock's resolution, far below any phase worth reporting.
pub const PHASE_SUM_TOLERANCE_NS: u64 = 5_000;

/// Latency and phase histograms, and the counts that say what they cover.
pub struct ReplyRecorder {
    window: Window,
    intended: Arc<Intended>,
    /// Client latency: answer held minus intended send (ns).
    pub latency: IntervalHistogram,
    /// One histogram per entry of [`PHASES`] (ns).
    pub phases: [IntervalHistogram; 5],
    /// Answers of any kind received.
    pub answered: u64,
    /// Successful answers to requests scheduled in the window.
    pub ok: u64,
    /// Error answers to requests scheduled in the window.
    pub errors: u64,
    /// Of `errors`, those that said [`ClientError::Overloaded`]: the leader pushed back.
    pub overload_errors: u64,
    /// Successful answers that arrived in the window, whenever scheduled (delivered throughput).
    pub delivered: u64,
    /// Successful answers in the window whose phases could not be attributed.
    pub phase_samples_missing: u64,
    /// Successful answers whose phases add up to more than [`PHASE_SUM_TOLERANCE_NS`] away
    /// from their latency.
    pub phase_sum_mismatch: u64,
}

/// The phases of one request: intended send, trace, answer held, all on one clock (ns).
/// None when the stamps are out of order, so the phases would not add up.
pub fn phases_of(intended: u64, t: &Trace, got: u64) -> Option<[u64; 5]> {
    let stamps = [
        intended,
        t.accepted.as_nanos(),
        t.sent.as_nanos(),
        t.committed.as_nanos(),
        t.applied.as_nanos(),
        got,
    ];
    if stamps.windows(2).any(|w| w[1] < w[0]) {
        return None;
    }
    Some(std::array::from_fn(|i| stamps[i + 1] - stamps[i]))
}

impl ReplyRecorder {
    /// A recorder for answers to requests whose intended times `intended` holds.
    pub fn new(window: Window, intended: Arc<Intended>, interval: Duration) -> ReplyRecorder {
        let h = || IntervalHistogram::new(Unit::Nanos, interval);
        ReplyRecorder {
            window,
            intended,
            latency: h(),
            phases: std::array::from_fn(|_| h()),
            answered: 0,
            ok: 0,
            errors: 0,
            overload_errors: 0,
            delivered: 0,
            phase_samples_missing: 0,
            phase_sum_mismatch: 0,
        }
    }

    /// Records answer `a`, held by the client at `got`.
    pub fn record(&mut self, a: &Answer, got: Instant) {
        self.answered += 1;
        let got_t = got.saturating_duration_since(self.window.epoch);
        if a.reply.is_ok() && self.window.offset(got_t).is_some() {
            self.delivered += 1;
        }
        let sched = self.intended.get(a.id);
        let Some(off) = self.window.offset(Duration::from_nanos(sched)) else {
            return; // scheduled in warm-up or after the window
        };
        if let Err(e) = &a.reply {
            self.errors += 1;
            if *e == ClientError::Overloaded {
                self.overload_errors += 1;
            }
            return;
        }
        self.ok += 1;
        let got_ns = got_t.as_nanos() as u64;
        let latency = got_ns.saturating_sub(sched);
        self.latency.record(off, latency);
        match a.trace.as_ref().and_then(|t| phases_of(sched, t, got_ns)) {
            Some(parts) => {
                for (h, v) in self.phases.iter_mut().zip(parts) {
                    h.record(off, v);
                }
                if parts.iter().sum::<u64>().abs_diff(latency) > PHASE_SUM_TOLERANCE_NS {
                    self.phase_sum_mismatch += 1;
                }
            }
            None => self.phase_samples_missing += 1,
        }
    }

    /// Adds what another recorder of the same window holds (both finished): the
    /// closed loop's client threads each record their own answers.
    pub fn merge(&mut self, other: &ReplyRecorder) {
        self.latency.merge(&other.latency);
        for (mine, theirs) in self.phases.iter_mut().zip(&other.phases) {
            mine.merge(theirs);
        }
        self.answered += other.answered;
        self.ok += other.ok;
        self.errors += other.errors;
        self.overload_errors += other.overload_errors;
        self.delivered += other.delivered;
        self.phase_samples_missing += other.phase_samples_missing;
        self.phase_sum_mismatch += other.phase_sum_mismatch;
    }

    /// Closes the histograms' last intervals.
    pub fn finish(&mut self) {
        self.latency.finish();
        for h in &mut self.phases {
            h.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Time;

    fn trace(a: u64, s: u64, c: u64, p: u64) -> Trace {
        Trace {
            index: 1,
            accepted: Time::from_nanos(a),
            sent: Time::from_nanos(s),
            committed: Time::from_nanos(c),
            applied: Time::from_nanos(p),
        }
    }

    #[test]
    fn phases_add_up_and_misordered_stamps_are_refused() {
        let p = phases_of(100, &trace(150, 170, 400, 420), 500).unwrap();
        assert_eq!(p, [50, 20, 230, 20, 80]);
        assert_eq!(p.iter().sum::<u64>(), 400);
        assert_eq!(phases_of(100, &trace(150, 170, 400, 420), 410), None);
        assert_eq!(phases_of(200, &trace(150, 170, 400, 420), 500), None);
    }

    #[test]
    fn refusals_count_as_errors_and_overload_errors_and_merge() {
        let epoch = Instant::now();
        let window = Window {
            epoch,
            start: Duration::ZERO,
            end: Duration::from_secs(10),
        };
        let intended = Arc::new(Intended::new(16));
        let mut a = ReplyRecorder::new(window, intended.clone(), Duration::from_secs(1));
        let mut b = ReplyRecorder::new(window, intended.clone(), Duration::from_secs(1));
        for id in 0..3 {
            intended.set(id, 1_000);
            let refusal = Answer {
                id,
                reply: Err(ClientError::Overloaded),
                trace: None,
            };
            a.record(&refusal, epoch + Duration::from_millis(1));
        }
        b.record(
            &Answer {
                id: 0,
                reply: Err(ClientError::ShuttingDown),
                trace: None,
            },
            epoch + Duration::from_millis(1),
        );
        a.finish();
        b.finish();
        a.merge(&b);
        assert_eq!(
            (a.answered, a.ok, a.errors, a.overload_errors),
            (4, 0, 4, 3)
        );
        assert_eq!(a.latency.total.len(), 0, "refusals are not latency samples");
    }

    #[test]
    fn every_ok_answer_in_the_window_is_one_sample_or_one_missing() {
        let epoch = Instant::now();
        let window = Window {
            epoch,
            start: Duration::from_micros(100),
            end: Duration::from_secs(10),
        };
        let intended = Arc::new(Intended::new(16));
        for (id, t) in [(0u64, 50_000u64), (1, 200_000), (2, 300_000), (3, 400_000)] {
            intended.set(id, t);
        }
        let mut r = ReplyRecorder::new(window, intended, Duration::from_secs(1));
        let got = epoch + Duration::from_millis(1);
        let ok = |id, trace| Answer {
            id,
            reply: Ok(crate::kv::Output::Done),
            trace,
        };
        r.record(&ok(0, Some(trace(60_000, 70_000, 80_000, 90_000))), got); // warm-up
        r.record(&ok(1, Some(trace(210_000, 220_000, 230_000, 240_000))), got);
        r.record(&ok(2, None), got);
        r.record(
            &Answer {
                id: 3,
                reply: Err(crate::server::ClientError::LeadershipLost),
                trace: None,
            },
            got,
        );
        r.finish();
        assert_eq!((r.answered, r.ok, r.errors, r.delivered), (4, 2, 1, 3));
        assert_eq!(r.overload_errors, 0, "a lost leadership is no refusal");
        assert_eq!(r.latency.total.len(), 2);
        assert_eq!(r.phase_samples_missing, 1);
        for h in &r.phases {
            assert_eq!(h.total.len(), 1);
        }
        assert_eq!(r.phase_sum_mismatch, 0);
    }
}
