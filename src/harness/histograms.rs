//! HdrHistograms that also keep one histogram per interval (for `.hlog` interval logs).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Significant digits of every histogram (the measurement rules: three).
pub const SIGFIGS: u8 = 3;

/// What a metric's values are, which decides how files print them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Values are nanoseconds; files print microseconds.
    Nanos,
    /// Values are plain counts (entries, messages); files print them as they are.
    Count,
}

impl Unit {
    /// The factor from recorded values to printed values (HdrHistogram's
    /// `outputValueUnitScalingRatio` is its inverse).
    pub fn scale(self) -> f64 {
        match self {
            Unit::Nanos => 1e-3,
            Unit::Count => 1.0,
        }
    }
}

/// A histogram of a whole measured window plus one per fixed interval.
#[derive(Clone, Debug)]
pub struct IntervalHistogram {
    /// What the values are.
    pub unit: Unit,
    /// Every sample of the window.
    pub total: Histogram<u64>,
    /// (start since the window began, length, samples) per interval that had any.
    pub intervals: Vec<(Duration, Duration, Histogram<u64>)>,
    interval: Duration,
    current_start: Duration,
    current: Histogram<u64>,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new(SIGFIGS).expect("3 significant digits is valid")
}

impl IntervalHistogram {
    /// An empty histogram whose intervals are `interval` long.
    pub fn new(unit: Unit, interval: Duration) -> IntervalHistogram {
        IntervalHistogram {
            unit,
            total: new_hist(),
            intervals: Vec::new(),
            interval,
            current_start: Duration::ZERO,
            current: new_hist(),
        }
    }

    /// Records `value`, observed `at` after the window began.
    pub fn record(&mut self, at: Duration, value: u64) {
        self.roll(at);
        // Auto-resizing histograms accept any u64; an error here is impossible.
        let _ = self.total.record(value);
        let _ = self.current.record(value);
    }

    fn roll(&mut self, at: Duration) {
        while at >= self.current_start + self.interval {
            self.flush_current();
            self.current_start += self.interval;
        }
    }

    fn flush_current(&mut self) {
        if !self.current.is_empty() {
            let h = std::mem::replace(&mut self.current, new_hist());
            self.intervals.push((self.current_start, self.interval, h));
        }
    }

    /// Closes the interval in progress; call once recording is over.
    pub fn finish(&mut self) {
        self.flush_current();
    }

    /// Adds another recorder's samples (whose window began at the same instant).
    pub fn merge(&mut self, other: &IntervalHistogram) {
        let _ = self.total.add(&other.total);
        for (start, len, h) in &other.intervals {
            match self.intervals.iter_mut().find(|(s, _, _)| s == start) {
                Some((_, _, mine)) => {
                    let _ = mine.add(h);
                }
                None => self.intervals.push((*start, *len, h.clone())),
            }
        }
        self.intervals.sort_by_key(|(s, _, _)| *s);
    }
}

/// Every histogram of one sweep point, by metric name (file names derive from these).
pub type PointHistograms = BTreeMap<String, IntervalHistogram>;
