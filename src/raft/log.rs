//! The core's in-memory view of the log: entries after a discarded prefix.

use std::collections::VecDeque;

use super::types::{Entry, Index, Term};

/// The log as the core sees it. Entries up to `snapshot_index` have been discarded;
/// only their last index and term are kept, so the consistency check still works there.
#[derive(Debug, Default, Clone)]
pub struct RaftLog {
    snapshot_index: Index,
    snapshot_term: Term,
    entries: VecDeque<Entry>,
}

impl RaftLog {
    /// A log that starts after (`snapshot_index`, `snapshot_term`) and holds `entries`.
    pub fn new(snapshot_index: Index, snapshot_term: Term, entries: Vec<Entry>) -> RaftLog {
        RaftLog {
            snapshot_index,
            snapshot_term,
            entries: entries.into(),
        }
    }

    /// Last discarded index (0 if none).
    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    /// First index still held.
    pub fn first_index(&self) -> Index {
        self.snapshot_index + 1
    }

    /// Index of the last entry (the snapshot index when empty).
    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }

    /// Term of the last entry.
    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot_term, |e| e.term)
    }

    /// Term of the entry at `index`, if known (the snapshot point's term is known).
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.get(index).map(|e| e.term)
    }

    /// The entry at `index`, if held.
    pub fn get(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries.get((index - self.snapshot_index - 1) as usize)
    }

    /// Appends one entry; its index must be `last_index() + 1`.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push_back(entry);
    }

    /// Removes every entry at or after `index`.
    pub fn truncate_from(&mut self, index: Index) {
        debug_assert!(index > self.snapshot_index);
        self.entries
            .truncate((index.saturating_sub(self.snapshot_index + 1)) as usize);
    }

    /// Entries in `[lo, hi]` (clamped to what is held), cloned (payloads are shared).
    pub fn range(&self, lo: Index, hi: Index) -> impl Iterator<Item = &Entry> + '_ {
        let lo = lo.max(self.first_index());
        let hi = hi.min(self.last_index());
        let (start, end) = if lo > hi {
            (0, 0)
        } else {
            (
                (lo - self.snapshot_index - 1) as usize,
                (hi - self.snapshot_index) as usize,
            )
        };
        self.entries.range(start..end)
    }

    /// Up to `max_entries` entries from `lo`, stopping before `max_bytes` would be passed,
    /// but always at least one entry if `lo` is held.
    pub fn batch(&self, lo: Index, max_entries: usize, max_bytes: usize) -> (Vec<Entry>, usize) {
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in self.range(lo, self.last_index()).take(max_entries) {
            let size = e.size();
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push(e.clone());
        }
        (out, bytes)
    }

    /// First index of the run of entries with `term` that ends at or covers `index`:
    /// the follower's half of fast backup.
    pub fn first_index_of_term_at(&self, index: Index, term: Term) -> Index {
        let mut i = index;
        while i > self.first_index() && self.term(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// Last index holding an entry of `term`, if any is held: the leader's half of fast backup.
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        // Terms are non-decreasing along the log, so scan from the end and stop early.
        for e in self.entries.iter().rev() {
            if e.term == term {
                return Some(e.index);
            }
            if e.term < term {
                return None;
            }
        }
        None
    }

    /// Discards entries up to and including `upto` (which must be held).
    pub fn compact(&mut self, upto: Index) {
        if upto <= self.snapshot_index || upto > self.last_index() {
            return;
        }
        let n = (upto - self.snapshot_index) as usize;
        self.snapshot_term = self.entries[n - 1].term;
        self.entries.drain(..n);
        self.snapshot_index = upto;
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
