//! Proposals that wait at the leader before they join the log, for the optional linger.

use bytes::Bytes;

use super::types::{Time, ENTRY_OVERHEAD};

/// Holds proposals until a batch is full or the oldest has lingered long enough.
///
/// With no linger (the default) every proposal passes straight through and batching is
/// purely adaptive: entries pile up in the log while a follower's window is full and leave
/// together when it opens. A linger trades latency at sparse load for fuller batches.
#[derive(Debug, Default)]
pub struct Batcher {
    pending: Vec<Bytes>,
    bytes: usize,
    oldest: Option<Time>,
}

impl Batcher {
    /// Adds a proposal that arrived at `now`.
    pub fn push(&mut self, data: Bytes, now: Time) {
        self.bytes += ENTRY_OVERHEAD + data.len();
        self.pending.push(data);
        self.oldest.get_or_insert(now);
    }

    /// Number of proposals held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the oldest proposal was added.
    pub fn oldest(&self) -> Option<Time> {
        self.oldest
    }

    /// Whether the batch must go now: it is full, or its oldest proposal has waited `linger`.
    pub fn due(
        &self,
        now: Time,
        linger: std::time::Duration,
        max_entries: usize,
        max_bytes: usize,
    ) -> bool {
        match self.oldest {
            None => false,
            Some(t) => {
                self.pending.len() >= max_entries || self.bytes >= max_bytes || now >= t + linger
            }
        }
    }

    /// Takes every held proposal, oldest first.
    pub fn take(&mut self) -> std::vec::Drain<'_, Bytes> {
        self.bytes = 0;
        self.oldest = None;
        self.pending.drain(..)
    }

    /// Drops every held proposal (leadership was lost).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.bytes = 0;
        self.oldest = None;
    }
}
