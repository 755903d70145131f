//! The harness process's resident memory over a point's window: at its start, at its end
//! and its sampled peak, so that every point publishes whether memory stays flat.
//!
//! In process, the nodes, the load and the recorders share this process, so its RSS is
//! what the whole point holds. The peak is sampled rather than read from `VmHWM`, which
//! covers the process's whole life (earlier points included).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often the sampler reads the RSS while it waits for the window's end.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The process's resident memory over one point's measured window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// RSS when the window began (MB, 10^6 bytes).
    pub rss_start_mb: f64,
    /// RSS when the window ended (MB).
    pub rss_end_mb: f64,
    /// Highest RSS sampled over the window (MB), every 250 ms and at both ends.
    pub rss_peak_mb: f64,
    /// RSS growth over the window per request answered in it (bytes; negative if it
    /// shrank): about 0 when memory is flat.
    pub growth_per_request_bytes: f64,
}

/// This process's resident set size in bytes, from `/proc/self/statm`; None where that
/// file cannot be read (not Linux).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(resident * u64::try_from(page).ok()?)
}

/// RSS samples taken across a window.
#[derive(Clone, Debug, Default)]
pub struct RssSampler {
    start: Option<u64>,
    last: Option<u64>,
    peak: u64,
}

impl RssSampler {
    /// A sampler that takes its first sample (the window's start) now.
    pub fn start() -> RssSampler {
        let mut s = RssSampler::default();
        s.sample();
        s.start = s.last;
        s
    }

    /// Takes one sample; the last one taken is the window's end.
    pub fn sample(&mut self) {
        if let Some(b) = rss_bytes() {
            self.last = Some(b);
            self.peak = self.peak.max(b);
        }
    }

    /// Samples every [`SAMPLE_EVERY`] until `until` is within one period, without
    /// spinning (the caller waits out the rest precisely).
    pub fn sample_until(&mut self, until: Instant) {
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if left <= SAMPLE_EVERY {
                return;
            }
            std::thread::sleep(SAMPLE_EVERY);
            self.sample();
        }
    }

    /// The figures, with growth per request over `requests` answered in the window; None
    /// if the RSS could not be read.
    pub fn figures(&self, requests: u64) -> Option<Memory> {
        let (start, end) = (self.start?, self.last?);
        let mb = |b: u64| b as f64 / 1e6;
        let growth = end as f64 - start as f64;
        Some(Memory {
            rss_start_mb: mb(start),
            rss_end_mb: mb(end),
            rss_peak_mb: mb(self.peak),
            growth_per_request_bytes: if requests > 0 {
                growth / requests as f64
            } else {
                0.0
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_in_which_memory_grows_shows_the_growth_per_request() {
        let mut s = RssSampler::start();
        // Touch 64 MB so the pages are resident: an effect far above the RSS's noise.
        let mut held = vec![1u8; 64 << 20];
        for i in (0..held.len()).step_by(4096) {
            held[i] = i as u8;
        }
        s.sample();
        let m = s.figures(1_000).expect("Linux has /proc/self/statm");
        assert!(std::hint::black_box(&held).len() == 64 << 20);
        assert!(m.rss_start_mb > 0.0 && m.rss_end_mb > 0.0, "{m:?}");
        assert!(m.rss_end_mb - m.rss_start_mb > 32.0, "{m:?}");
        assert!(m.rss_peak_mb >= m.rss_end_mb, "{m:?}");
        assert!(m.growth_per_request_bytes > 32_000.0, "{m:?}");
        assert_eq!(s.figures(0).unwrap().growth_per_request_bytes, 0.0);
    }
}
