//! HdrHistograms that also keep one histogram per interval (for `.hlog` interval logs).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
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
///
/// Closed intervals are kept encoded (HdrHistogram's V2 format, which run-length encodes
/// empty buckets, deflated as the `.hlog` files hold them): a nanosecond histogram that
/// saw values up to 100 ms holds about 140 KB of counters, almost all zero, and a point
/// keeps about fifteen of them per interval, so holding them decoded grew the process by
/// about 1.5 MB per second of window whatever the rate. Encoded, one interval takes a few
/// KB.
#[derive(Clone, Debug)]
pub struct IntervalHistogram {
    /// What the values are.
    pub unit: Unit,
    /// Every sample of the window.
    pub total: Histogram<u64>,
    /// (start since the window began, length, encoded samples) per interval that had any.
    closed: Vec<(Duration, Duration, Vec<u8>)>,
    interval: Duration,
    current_start: Duration,
    current: Histogram<u64>,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new(SIGFIGS).expect("3 significant digits is valid")
}

fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail, and every count of an auto-resizing u64 histogram
    // fits the format's 64-bit counts.
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("a histogram encodes into memory");
    buf
}

fn decode(bytes: &[u8]) -> Histogram<u64> {
    // The bytes were written by `encode` in this process.
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .expect("an encoded interval decodes");
    // As recorded: adding a wider histogram to it resizes it instead of failing.
    h.auto(true);
    h
}

impl IntervalHistogram {
    /// An empty histogram whose intervals are `interval` long.
    pub fn new(unit: Unit, interval: Duration) -> IntervalHistogram {
        IntervalHistogram {
            unit,
            total: new_hist(),
            closed: Vec::new(),
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
            self.closed
                .push((self.current_start, self.interval, encode(&h)));
        }
    }

    /// (start since the window began, length, samples) per closed interval that had any,
    /// in order of start (decoded on each call).
    pub fn intervals(&self) -> Vec<(Duration, Duration, Histogram<u64>)> {
        self.closed
            .iter()
            .map(|(start, len, bytes)| (*start, *len, decode(bytes)))
            .collect()
    }

    /// Adds `h` as the closed interval starting at `start` (added to the one already
    /// there, if any), keeping the intervals in order; `total` is left as it is. For
    /// histograms read back from files or other processes.
    pub fn push_interval(&mut self, start: Duration, len: Duration, h: &Histogram<u64>) {
        match self.closed.iter_mut().find(|(s, _, _)| *s == start) {
            Some((_, _, mine)) => {
                let mut sum = decode(mine);
                let _ = sum.add(h);
                *mine = encode(&sum);
            }
            None => {
                self.closed.push((start, len, encode(h)));
                self.closed.sort_by_key(|(s, _, _)| *s);
            }
        }
    }

    /// Bytes held by the closed intervals' encodings.
    pub fn encoded_bytes(&self) -> usize {
        self.closed.iter().map(|(_, _, b)| b.len()).sum()
    }

    /// Closes the interval in progress; call once recording is over.
    pub fn finish(&mut self) {
        self.flush_current();
    }

    /// Adds another recorder's samples (whose window began at the same instant).
    pub fn merge(&mut self, other: &IntervalHistogram) {
        let _ = self.total.add(&other.total);
        for (start, len, theirs) in &other.closed {
            match self.closed.iter_mut().find(|(s, _, _)| s == start) {
                Some((_, _, mine)) => {
                    let mut sum = decode(mine);
                    let _ = sum.add(decode(theirs));
                    *mine = encode(&sum);
                }
                None => self.closed.push((*start, *len, theirs.clone())),
            }
        }
        self.closed.sort_by_key(|(s, _, _)| *s);
    }
}

/// Every histogram of one sweep point, by metric name (file names derive from these).
pub type PointHistograms = BTreeMap<String, IntervalHistogram>;

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn closed_intervals_decode_to_what_was_recorded_and_merge() {
        let mut a = IntervalHistogram::new(Unit::Nanos, secs(1));
        let mut b = IntervalHistogram::new(Unit::Nanos, secs(1));
        for v in [1_000u64, 2_000, 50_000_000] {
            a.record(secs(0), v);
        }
        a.record(secs(2), 7_000);
        b.record(secs(2), 9_000);
        b.record(secs(3), 11_000);
        a.finish();
        b.finish();
        let got = a.intervals();
        assert_eq!(
            got.iter()
                .map(|(s, l, h)| (*s, *l, h.len()))
                .collect::<Vec<_>>(),
            vec![(secs(0), secs(1), 3), (secs(2), secs(1), 1)]
        );
        assert_eq!(got[0].2.max(), a.total.max());
        a.merge(&b);
        let merged = a.intervals();
        let counts: Vec<_> = merged.iter().map(|(s, _, h)| (*s, h.len())).collect();
        assert_eq!(counts, vec![(secs(0), 3), (secs(2), 2), (secs(3), 1)]);
        assert!(merged[1].2.equivalent(9_000, merged[1].2.max()));
        assert_eq!(a.total.len(), 6);
    }

    #[test]
    fn a_closed_interval_takes_far_less_than_its_counters() {
        // A latency interval as a busy point records it: microseconds to a 100 ms tail.
        let mut h = IntervalHistogram::new(Unit::Nanos, secs(1));
        for i in 0..100_000u64 {
            h.record(secs(0), 20_000 + (i * 7919) % 400_000);
        }
        h.record(secs(0), 100_000_000);
        h.finish();
        let counters = h.total.distinct_values() * std::mem::size_of::<u64>();
        assert!(
            h.encoded_bytes() * 10 < counters,
            "encoded {} bytes against {counters} of counters",
            h.encoded_bytes()
        );
    }
}
