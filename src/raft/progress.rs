//! What a leader knows about one follower's log, and the pipelining window toward it.

use std::collections::VecDeque;

use super::log::RaftLog;
use super::message::RejectHint;
use super::types::{Index, Snapshot, Time};

/// How the leader replicates to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The leader does not know where the logs agree: one AppendEntries at a time until one succeeds.
    Probe,
    /// The logs agree up to `match_index`: send optimistically while the window has room.
    Replicate,
    /// The follower needs entries the leader has discarded: the leader sends it a snapshot,
    /// one chunk at a time, and no entries until it is installed (raft-rs's `Snapshot`).
    Snapshot,
}

/// A snapshot being sent to one follower, go-back-N: chunks leave while fewer than
/// `window` bytes are unacknowledged, and after a heartbeat interval without progress the
/// leader resends from the acknowledged offset, or from the lowest offset the follower
/// asked for since (it restarted and lost the chunks it had). Rewinding only on that timer,
/// never on an answer, keeps stale answers of a reordering network from multiplying chunks. The progress holds the snapshot itself (its data is shared, not
/// copied), so a transfer finishes even if the leader takes a newer one meanwhile.
#[derive(Clone, Debug)]
pub struct SnapshotTransfer {
    /// The snapshot being sent.
    pub snapshot: Snapshot,
    /// Byte offset of the next chunk to send.
    pub offset: u64,
    /// Bytes the follower said it holds.
    pub acked: u64,
    /// Most bytes sent and not acknowledged.
    pub window: u64,
    /// The last chunk (`done`) has been sent since the last rewind.
    pub done_sent: bool,
    /// When `acked` last moved (or the transfer started or rewound).
    pub last_progress: Time,
    /// The lowest offset the follower asked for below `acked` since the last progress.
    pub asked_below: Option<u64>,
}

impl SnapshotTransfer {
    /// Whether no chunk may leave now.
    pub fn is_paused(&self) -> bool {
        self.done_sent || self.offset - self.acked >= self.window
    }

    /// The follower holds `held` bytes: progress, or (below what it acknowledged before)
    /// a note for the next rewind.
    pub fn on_held(&mut self, held: u64, now: Time) {
        let held = held.min(self.snapshot.data.len() as u64);
        if held > self.acked {
            self.acked = held;
            self.offset = self.offset.max(held);
            self.last_progress = now;
            self.asked_below = None;
        } else if held < self.acked {
            self.asked_below = Some(self.asked_below.map_or(held, |a| a.min(held)));
        }
    }

    /// Whether nothing moved for `interval` while something is unacknowledged.
    pub fn stalled(&self, now: Time, interval: std::time::Duration) -> bool {
        now >= self.last_progress + interval && (self.offset > self.acked || self.done_sent)
    }

    /// Sends again from the acknowledged offset, or from below it if the follower asked.
    pub fn rewind(&mut self, now: Time) {
        let to = self.asked_below.take().unwrap_or(self.acked);
        self.acked = to;
        self.offset = to;
        self.done_sent = false;
        self.last_progress = now;
    }
}

/// AppendEntries with entries sent to one follower and not yet acknowledged, bounded in
/// messages and bytes (raft-rs calls this `Inflights`).
#[derive(Clone, Debug)]
pub struct Inflights {
    sent: VecDeque<(Index, usize)>,
    bytes: usize,
    max_msgs: usize,
    max_bytes: usize,
}

impl Inflights {
    /// An empty window of at most `max_msgs` messages and `max_bytes` bytes.
    pub fn new(max_msgs: usize, max_bytes: usize) -> Inflights {
        Inflights {
            sent: VecDeque::with_capacity(max_msgs.min(1024)),
            bytes: 0,
            max_msgs,
            max_bytes,
        }
    }

    /// Whether another message must wait.
    pub fn full(&self) -> bool {
        self.sent.len() >= self.max_msgs || self.bytes >= self.max_bytes
    }

    /// Records a message whose last entry is `last_index`, carrying `bytes`.
    pub fn add(&mut self, last_index: Index, bytes: usize) {
        self.sent.push_back((last_index, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last entry is at or below `index` (it has been acknowledged).
    pub fn free_to(&mut self, index: Index) {
        while let Some(&(last, bytes)) = self.sent.front() {
            if last > index {
                break;
            }
            self.bytes -= bytes;
            self.sent.pop_front();
        }
    }

    /// Forgets every message (after a rejection or a state change).
    pub fn reset(&mut self) {
        self.sent.clear();
        self.bytes = 0;
    }

    /// Messages in flight.
    pub fn count(&self) -> usize {
        self.sent.len()
    }

    /// Bytes in flight.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The leader's view of one follower.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known to be stored on the follower and to match the leader's log.
    pub match_index: Index,
    /// Next index to send.
    pub next_index: Index,
    /// Probe or Replicate.
    pub state: ProgressState,
    /// In Probe: a probe is out and no answer or heartbeat answer has come back.
    pub probe_sent: bool,
    /// The pipelining window.
    pub inflights: Inflights,
    /// When the leader last sent this follower an AppendEntries of any kind.
    pub last_sent: Time,
    /// When `match_index` last advanced (or replication last restarted).
    pub last_progress: Time,
    /// Highest commit index this follower has been sent (clamped to what it can accept).
    pub commit_sent: Index,
    /// Whether the follower answered anything since the last quorum check.
    pub recent_active: bool,
    /// In Snapshot: index of the snapshot being sent (raft-rs's `pending_snapshot`), else 0.
    pub pending_snapshot: Index,
    /// In Snapshot: the transfer.
    pub transfer: Option<SnapshotTransfer>,
}

impl Progress {
    /// Progress for a follower about which nothing is known yet.
    pub fn new(next_index: Index, max_msgs: usize, max_bytes: usize, now: Time) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_msgs, max_bytes),
            last_sent: now,
            last_progress: now,
            commit_sent: 0,
            recent_active: false,
            pending_snapshot: 0,
            transfer: None,
        }
    }

    /// Whether the leader must hold off sending entries.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => self.transfer.as_ref().is_none_or(|t| t.is_paused()),
        }
    }

    /// Back to probing from just after what is known to match.
    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflights.reset();
        self.pending_snapshot = 0;
        self.transfer = None;
    }

    /// Start sending `snapshot` from its first byte, with at most `window` bytes unacknowledged.
    pub fn become_snapshot(&mut self, snapshot: Snapshot, window: u64, now: Time) {
        self.state = ProgressState::Snapshot;
        self.probe_sent = false;
        self.inflights.reset();
        self.pending_snapshot = snapshot.meta.index;
        self.transfer = Some(SnapshotTransfer {
            snapshot,
            offset: 0,
            acked: 0,
            window: window.max(1),
            done_sent: false,
            last_progress: now,
            asked_below: None,
        });
    }

    /// Start pipelining from just after what is known to match.
    pub fn become_replicate(&mut self, now: Time) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflights.reset();
        self.last_progress = now;
        self.pending_snapshot = 0;
        self.transfer = None;
    }

    /// Records that the follower holds everything up to `index`; true if that is news.
    pub fn maybe_update(&mut self, index: Index, now: Time) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.last_progress = now;
        }
        self.next_index = self.next_index.max(index + 1);
        self.probe_sent = false;
        self.inflights.free_to(index);
        updated
    }

    /// Handles a rejection of the AppendEntries whose prev index was `rejected`; `hint` is
    /// where the leader computed the logs may agree. False if the rejection is stale.
    pub fn maybe_decrease_to(&mut self, rejected: Index, hint: Index) -> bool {
        match self.state {
            ProgressState::Replicate => {
                // A rejection of something at or below match answers an old message.
                if rejected <= self.match_index {
                    return false;
                }
                self.become_probe();
                self.next_index = hint.min(rejected).max(self.match_index + 1);
                true
            }
            // Entries are not being sent: any rejection answers an earlier message.
            ProgressState::Snapshot => false,
            ProgressState::Probe => {
                if self.next_index == 0 || rejected != self.next_index - 1 {
                    return false;
                }
                self.next_index = hint.min(rejected).max(self.match_index + 1);
                self.probe_sent = false;
                true
            }
        }
    }
}

/// Where a leader with `log` resumes after a follower rejected with `hint` (fast backup):
/// past the follower's log if it is short; past the leader's last entry of the conflicting
/// term if the leader has that term; else at the follower's first entry of that term.
/// One round trip skips a whole term instead of one entry.
pub fn next_after_reject(log: &RaftLog, hint: RejectHint) -> Index {
    // Without snapshots, everything in the discarded prefix is held by every node.
    needed_after_reject(log, hint).max(log.first_index())
}

/// The first index the follower that rejected with `hint` may need, before clamping to what
/// the leader still holds: at or below the leader's snapshot index, only a snapshot helps.
pub fn needed_after_reject(log: &RaftLog, hint: RejectHint) -> Index {
    match hint.conflict_term {
        None => hint.last_index + 1,
        Some(t) => match log.last_index_of_term(t) {
            Some(i) => i + 1,
            None => hint.conflict_index,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflights_fill_by_count_and_by_bytes() {
        let mut w = Inflights::new(3, 1000);
        w.add(1, 10);
        w.add(2, 10);
        assert!(!w.full());
        w.add(3, 10);
        assert!(w.full(), "three messages fill a window of three");
        w.free_to(2);
        assert_eq!(w.count(), 1);
        assert_eq!(w.bytes(), 10);
        assert!(!w.full());
        w.add(10, 995);
        assert!(w.full(), "1005 bytes fill a window of 1000 bytes");
        w.free_to(9);
        assert_eq!(
            w.count(),
            1,
            "freeing below the last entry of a message keeps it"
        );
        w.reset();
        assert_eq!((w.count(), w.bytes()), (0, 0));
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let now = Time::ZERO;
        let mut p = Progress::new(11, 4, 1 << 20, now);
        p.maybe_update(10, now);
        p.become_replicate(now);
        p.next_index = 20;
        assert!(!p.maybe_decrease_to(9, 5), "rejection below match is stale");
        assert_eq!(p.state, ProgressState::Replicate);
        assert!(p.maybe_decrease_to(15, 12));
        assert_eq!(p.state, ProgressState::Probe);
        assert_eq!(p.next_index, 12);
        assert!(
            !p.maybe_decrease_to(15, 12),
            "a probe rejection for another prev is stale"
        );
        assert!(p.maybe_decrease_to(11, 3));
        assert_eq!(p.next_index, 11, "never below match + 1");
    }
}
