//! Timestamps from inside the nodes, turned into follower lags, batch sizes and pipeline
//! depths (per-request phases travel with the answers instead: see
//! [`crate::harness::reply_recorder`]).
//!
//! The nodes call the [`Observer`] methods on their own threads; the recorder keeps, per
//! log index, when the leader committed it, in a ring of atomics tagged with the index
//! (so a slot reused 2^20 entries later is never mistaken).
//! A follower's commit or apply is compared against the leader's commit time at once, and
//! only the lag is kept. In-process nodes share one clock (`CLOCK_MONOTONIC`), so these
//! differences are exact up to the clock's resolution.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use crate::harness::histograms::{IntervalHistogram, Unit};
use crate::raft::{Index, NodeId, Role, Time};
use crate::server::Observer;

const RING_BITS: u32 = 20;
const RING: usize = 1 << RING_BITS;
const MASK: u64 = (RING as u64) - 1;

/// A ring of (tag, value) pairs indexed by `tag mod 2^20`.
struct TaggedRing {
    tags: Box<[AtomicU64]>,
    values: Box<[AtomicU64]>,
}

impl TaggedRing {
    fn new() -> TaggedRing {
        let mk = || {
            (0..RING)
                .map(|_| AtomicU64::new(u64::MAX))
                .collect::<Box<[_]>>()
        };
        TaggedRing {
            tags: mk(),
            values: mk(),
        }
    }

    fn set(&self, tag: u64, value: u64) {
        let i = (tag & MASK) as usize;
        self.values[i].store(value, Relaxed);
        self.tags[i].store(tag, Relaxed);
    }

    fn get(&self, tag: u64) -> Option<u64> {
        let i = (tag & MASK) as usize;
        (self.tags[i].load(Relaxed) == tag).then(|| self.values[i].load(Relaxed))
    }
}

/// Per-follower lag histograms.
///
/// Each sits behind its own mutex, which only that follower's thread takes (and the
/// harness once at the end), so it is never contended. `cargo bench --bench handoff`
/// measured 24 M records/s for one mutex shared by three busy threads against 436 M/s for
/// hdrhistogram's `sync` recorders; uncontended, the mutex costs a few tens of ns per
/// record, and it lets the recorder keep per-interval histograms for the `.hlog` files,
/// which `SyncHistogram`'s refresh-into-one model does not give.
struct FollowerHists {
    commit: IntervalHistogram,
    apply: IntervalHistogram,
}

/// The harness's [`Observer`] inside the nodes.
pub struct NodeRecorder {
    nodes: usize,
    window_start: AtomicU64,
    window_end: AtomicU64,
    interval: Duration,
    committed: TaggedRing,
    last_applied: Box<[AtomicU64]>,
    followers: Box<[Mutex<FollowerHists>]>,
    batch_size: Mutex<IntervalHistogram>,
    pipeline_depth: Mutex<IntervalHistogram>,
    /// The leader's queues, sampled once per driver round: uncommitted entries, and
    /// requests waiting in its inbox.
    queues: Mutex<(IntervalHistogram, IntervalHistogram)>,
}

impl NodeRecorder {
    /// A recorder for nodes `1..=nodes` whose interval histograms are `interval` long.
    pub fn new(nodes: usize, interval: Duration) -> NodeRecorder {
        let hist = |u| IntervalHistogram::new(u, interval);
        NodeRecorder {
            nodes,
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            interval,
            committed: TaggedRing::new(),
            last_applied: (0..=nodes).map(|_| AtomicU64::new(0)).collect(),
            followers: (0..=nodes)
                .map(|_| {
                    Mutex::new(FollowerHists {
                        commit: hist(Unit::Nanos),
                        apply: hist(Unit::Nanos),
                    })
                })
                .collect(),
            batch_size: Mutex::new(hist(Unit::Count)),
            pipeline_depth: Mutex::new(hist(Unit::Count)),
            queues: Mutex::new((hist(Unit::Count), hist(Unit::Count))),
        }
    }

    /// Sets the measured window; only events in it are kept.
    pub fn set_window(&self, start: Time, end: Time) {
        self.window_start.store(start.as_nanos(), Relaxed);
        self.window_end.store(end.as_nanos(), Relaxed);
    }

    /// Offset of `t` into the window, if it lies in it.
    fn in_window(&self, t: u64) -> Option<Duration> {
        let start = self.window_start.load(Relaxed);
        let end = self.window_end.load(Relaxed);
        (t >= start && t < end).then(|| Duration::from_nanos(t - start))
    }

    /// Takes the histograms: commit and apply lag per follower (keyed by node id, empty
    /// for nodes that never followed), batch sizes, pipeline depths.
    pub fn take(&self) -> NodeHistograms {
        let fresh = |u| IntervalHistogram::new(u, self.interval);
        let mut followers = Vec::new();
        for (id, f) in self.followers.iter().enumerate().skip(1) {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let mut commit = std::mem::replace(&mut f.commit, fresh(Unit::Nanos));
            let mut apply = std::mem::replace(&mut f.apply, fresh(Unit::Nanos));
            commit.finish();
            apply.finish();
            followers.push((id as NodeId, commit, apply));
        }
        let mut batch = std::mem::replace(
            &mut *self.batch_size.lock().unwrap_or_else(|e| e.into_inner()),
            fresh(Unit::Count),
        );
        let mut depth = std::mem::replace(
            &mut *self
                .pipeline_depth
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
            fresh(Unit::Count),
        );
        batch.finish();
        depth.finish();
        let (mut queue, mut inbox) = std::mem::replace(
            &mut *self.queues.lock().unwrap_or_else(|e| e.into_inner()),
            (fresh(Unit::Count), fresh(Unit::Count)),
        );
        queue.finish();
        inbox.finish();
        NodeHistograms {
            followers,
            batch_size: batch,
            pipeline_depth: depth,
            queue_depth: queue,
            inbox_depth: inbox,
        }
    }

    /// Number of nodes observed.
    pub fn nodes(&self) -> usize {
        self.nodes
    }
}

/// How far ahead of its time a leader's commit is replayed: a follower's event that a
/// clock-offset error places just before the leader's commit still finds it. Far above any
/// offset error on a network, and far below the time to commit 2^20 entries.
pub const REPLAY_LEAD: Duration = Duration::from_secs(1);

impl NodeRecorder {
    /// Feeds node processes' recordings through this recorder as if its nodes had called
    /// it: every commit and apply event, moved onto this recorder's clock by its node's
    /// offset (`harness_ns = node_ns + offset`) and merged in time order, goes through
    /// [`Observer::commit_advanced`] and [`Observer::applied`], so that follower commit
    /// and apply lags come out as in process; the batch, pipeline, queue and inbox
    /// histograms (only a leader records any) are merged into this recorder's, their
    /// intervals rebased onto its window.
    ///
    /// Call it after [`NodeRecorder::set_window`] and before [`NodeRecorder::take`], on a
    /// recorder that no in-process node feeds. A leader's commits are replayed
    /// [`REPLAY_LEAD`] early (the lag is still measured from their own time), so that an
    /// offset error smaller than that cannot lose a sample.
    pub fn replay(&self, recordings: &[(crate::remote::Recording, i64)]) {
        // (harness time, rank << 60 | recording << 40 | index), 16 bytes an event: at equal
        // times leaders' commits come first, then followers' commits, then applies, as
        // they happen in process.
        const RANK: u32 = 60;
        const REC: u32 = 40;
        let mut order: Vec<(i64, u64)> = Vec::new();
        let harness = |at: Time, off: i64| {
            (at.as_nanos() as i128 + off as i128).clamp(0, i64::MAX as i128) as i64
        };
        let lead = REPLAY_LEAD.as_nanos() as i64;
        for (r, (rec, off)) in recordings.iter().enumerate() {
            let r = (r as u64) << REC;
            for (i, e) in rec.commits.iter().enumerate() {
                let at = harness(e.at, *off);
                if e.role == Role::Leader {
                    order.push((at - lead, r | i as u64));
                } else {
                    order.push((at, 1 << RANK | r | i as u64));
                }
            }
            for i in 0..rec.applies.len() {
                order.push((harness(rec.applies[i].at, *off), 2 << RANK | r | i as u64));
            }
        }
        order.sort_unstable();
        for (_, tag) in order {
            let (rank, r) = (tag >> RANK, (tag >> REC) & ((1 << (RANK - REC)) - 1));
            let i = (tag & ((1 << REC) - 1)) as usize;
            let (rec, off) = &recordings[r as usize];
            let node = rec.node;
            if rank == 2 {
                let e = rec.applies[i];
                let at = Time::from_nanos(harness(e.at, *off) as u64);
                // Where this node's applies stood: exact even if earlier events were
                // outside the window or past the node's cap.
                if let Some(last) = self.last_applied.get(node as usize) {
                    last.store(e.from, Relaxed);
                }
                self.applied(node, e.role, e.to, at);
            } else {
                let e = rec.commits[i];
                let at = Time::from_nanos(harness(e.at, *off) as u64);
                self.commit_advanced(node, e.role, e.from, e.to, at);
            }
        }
        let start = self.window_start.load(Relaxed) as i128;
        for (rec, off) in recordings {
            // Where the node's window began, relative to this recorder's.
            let shift = rec.window.0.as_nanos() as i128 + *off as i128 - start;
            for (mine, theirs) in [
                (&self.batch_size, &rec.batch_size),
                (&self.pipeline_depth, &rec.pipeline_depth),
            ] {
                mine.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .merge(&rebased(theirs, shift, self.interval));
            }
            let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            q.0.merge(&rebased(&rec.queue_depth, shift, self.interval));
            q.1.merge(&rebased(&rec.inbox_depth, shift, self.interval));
        }
    }
}

/// `h` with each interval moved by `shift_ns` and snapped to the start of the `interval`
/// it then falls in (intervals before the window go to the first).
fn rebased(h: &IntervalHistogram, shift_ns: i128, interval: Duration) -> IntervalHistogram {
    let mut out = IntervalHistogram::new(h.unit, interval);
    out.total = h.total.clone();
    let len = interval.as_nanos().max(1) as i128;
    for (start, _, hist) in h.intervals() {
        let at = (start.as_nanos() as i128 + shift_ns).max(0);
        let s = Duration::from_nanos(((at / len) * len).min(u64::MAX as i128) as u64);
        out.push_interval(s, interval, &hist);
    }
    out
}

/// The histograms a [`NodeRecorder`] collected.
pub struct NodeHistograms {
    /// (follower, commit lag, apply lag) for every node id.
    pub followers: Vec<(NodeId, IntervalHistogram, IntervalHistogram)>,
    /// Entries per AppendEntries that carried entries.
    pub batch_size: IntervalHistogram,
    /// AppendEntries in flight right after each send.
    pub pipeline_depth: IntervalHistogram,
    /// The leader's uncommitted entries, once per driver round.
    pub queue_depth: IntervalHistogram,
    /// Requests waiting in the leader's inbox, once per driver round.
    pub inbox_depth: IntervalHistogram,
}

impl Observer for NodeRecorder {
    fn commit_advanced(&self, node: NodeId, role: Role, from: Index, to: Index, at: Time) {
        let at = at.as_nanos();
        if role == Role::Leader {
            for i in from + 1..=to {
                self.committed.set(i, at);
            }
            return;
        }
        let Some(slot) = self.followers.get(node as usize) else {
            return;
        };
        let mut f = slot.lock().unwrap_or_else(|e| e.into_inner());
        for i in from + 1..=to {
            if let Some(c) = self.committed.get(i) {
                if let Some(off) = self.in_window(c) {
                    f.commit.record(off, at.saturating_sub(c));
                }
            }
        }
    }

    fn applied(&self, node: NodeId, role: Role, upto: Index, at: Time) {
        let Some(last) = self.last_applied.get(node as usize) else {
            return;
        };
        let from = last.swap(upto, Relaxed);
        let at = at.as_nanos();
        if role == Role::Leader {
            return;
        }
        let mut f = self.followers[node as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for i in from + 1..=upto {
            if let Some(c) = self.committed.get(i) {
                if let Some(off) = self.in_window(c) {
                    f.apply.record(off, at.saturating_sub(c));
                }
            }
        }
    }

    fn entries_sent(
        &self,
        _node: NodeId,
        _to: NodeId,
        first: Index,
        last: Index,
        inflight: usize,
        at: Time,
    ) {
        if let Some(off) = self.in_window(at.as_nanos()) {
            self.batch_size
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(off, last - first + 1);
            self.pipeline_depth
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(off, inflight as u64);
        }
    }

    fn queues(&self, _node: NodeId, uncommitted: u64, inbox: usize, at: Time) {
        if let Some(off) = self.in_window(at.as_nanos()) {
            let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            q.0.record(off, uncommitted);
            q.1.record(off, inbox as u64);
        }
    }
}
