//! The measured window of a point: warm-up before it is excluded from every figure.

use std::time::{Duration, Instant};

/// The measured window, as offsets from the cluster's clock origin.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// The cluster's clock origin (the nodes' `Time` zero).
    pub epoch: Instant,
    /// First instant measured.
    pub start: Duration,
    /// First instant no longer measured.
    pub end: Duration,
}

impl Window {
    /// Offset of `t` (on the cluster's clock) into the window, if it lies in it.
    pub fn offset(&self, t: Duration) -> Option<Duration> {
        (t >= self.start && t < self.end).then(|| t - self.start)
    }

    /// Window length.
    pub fn len(&self) -> Duration {
        self.end - self.start
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The window's start as an instant.
    pub fn start_instant(&self) -> Instant {
        self.epoch + self.start
    }

    /// The window's end as an instant.
    pub fn end_instant(&self) -> Instant {
        self.epoch + self.end
    }
}
