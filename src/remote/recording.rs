//! What a node process records for the harness, exactly: its commit and apply events and
//! its own histograms over a window a client arms, taken back over the client protocol.
//!
//! In process, the harness's [`NodeRecorder`] sits inside every node and shares their
//! clock. A node process instead keeps a [`ProcessRecorder`] (idle until armed): the
//! commit and apply events as compact [`EventRecord`]s, which the harness replays through
//! its own recorder on its clock ([`NodeRecorder::replay`]), and the histograms that need
//! no other node (batch size, pipeline depth, queue and inbox depth) from a
//! [`NodeRecorder`] of its own. [`encode_recording`] turns a [`Recording`] into bytes
//! (histograms in HdrHistogram's V2 format, interval by interval), which travel in chunks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

use crate::harness::histograms::{IntervalHistogram, Unit};
use crate::harness::node_recorder::NodeRecorder;
use crate::raft::{Index, Message, NodeId, Role, Term, Time};
use crate::server::{NodeStatus, Observer};
use crate::transport::Transport;

/// Records a node keeps per armed window unless the client asks for fewer.
pub const DEFAULT_MAX_RECORDS: u64 = 8_000_000;
/// How long after the window's end commit and apply events are still kept: a follower
/// learns of a commit after the leader, and applies after that.
pub const RECORDING_TAIL: Duration = Duration::from_secs(5);
/// Most bytes of one recording a client accepts.
pub const MAX_RECORDING_BYTES: usize = 512 << 20;
/// Most recording bytes one frame carries.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Most intervals one armed window may have (bounds the node's histograms).
pub const MAX_INTERVALS: u64 = 1_000_000;

/// Format version of an encoded [`Recording`].
const FORMAT: u8 = 1;
/// Bytes of one encoded [`EventRecord`].
const RECORD_LEN: usize = 1 + 3 * 8;
/// Bytes of HdrHistogram's V2 header (cookie, payload length, offset, digits, low, high,
/// ratio), whose payload length the decoder checks before trusting it.
const V2_HEADER: usize = 40;

/// One commit or apply event of a node, as its [`Observer`] saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// The node's role then.
    pub role: Role,
    /// Commit: the commit index before; apply: the index applied before.
    pub from: Index,
    /// Commit: the commit index after; apply: the index applied up to.
    pub to: Index,
    /// When, on the node's `Time` clock.
    pub at: Time,
}

/// What a client asks a node to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArmSpec {
    /// The window's start, on the node's `Time` clock.
    pub start: Time,
    /// The window's end (events are kept until `end` plus [`RECORDING_TAIL`]).
    pub end: Time,
    /// Length of the histograms' intervals.
    pub interval: Duration,
    /// Most events kept (0: the node's own cap, [`DEFAULT_MAX_RECORDS`] unless it says
    /// otherwise; a client cannot raise it).
    pub max_records: u64,
}

/// Why a recording could not be armed, encoded or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    /// The window or interval is unusable.
    #[error("recording window: {0}")]
    BadSpec(String),
    /// The encoded recording ends early.
    #[error("recording truncated ({0})")]
    Truncated(&'static str),
    /// The encoded recording is of another format version.
    #[error("recording format {0}, expected {FORMAT}")]
    Format(u8),
    /// A byte that should name a role or unit does not.
    #[error("recording: unknown {0} code {1}")]
    Unknown(&'static str, u8),
    /// A histogram could not be encoded or decoded.
    #[error("recording histogram: {0}")]
    Histogram(String),
    /// The recording is larger than [`MAX_RECORDING_BYTES`].
    #[error("recording of {0} bytes exceeds the {MAX_RECORDING_BYTES}-byte limit")]
    TooLarge(u64),
}

/// Everything one node recorded over an armed window.
#[derive(Clone, Debug)]
pub struct Recording {
    /// The node.
    pub node: NodeId,
    /// The armed window, on the node's clock (events run on to `end + RECORDING_TAIL`).
    pub window: (Time, Time),
    /// Length of the histograms' intervals.
    pub interval: Duration,
    /// Its commit-index advances in the window, in order.
    pub commits: Vec<EventRecord>,
    /// Its applies in the window, in order.
    pub applies: Vec<EventRecord>,
    /// Entries per AppendEntries it sent with entries (a leader's).
    pub batch_size: IntervalHistogram,
    /// AppendEntries in flight right after each send.
    pub pipeline_depth: IntervalHistogram,
    /// Uncommitted entries, once per driver round as leader.
    pub queue_depth: IntervalHistogram,
    /// Requests waiting in its inbox, once per driver round as leader.
    pub inbox_depth: IntervalHistogram,
    /// Events past the cap, not kept (never dropped silently).
    pub events_dropped: u64,
}

impl Recording {
    /// Whether any event says the node led.
    pub fn led(&self) -> bool {
        self.commits.iter().any(|r| r.role == Role::Leader)
    }
}

/// An armed window in progress.
struct Armed {
    spec: ArmSpec,
    commits: Vec<EventRecord>,
    applies: Vec<EventRecord>,
    dropped: u64,
    hists: NodeRecorder,
}

/// The recorder inside a node process: idle (one relaxed load per event) until armed.
pub struct ProcessRecorder {
    node: NodeId,
    nodes: usize,
    max_records: u64,
    armed: AtomicBool,
    keep_from: AtomicU64,
    keep_until: AtomicU64,
    /// The index this node applied up to, kept while idle too so that the first apply of a
    /// window knows where it started.
    last_applied: AtomicU64,
    state: Mutex<Option<Armed>>,
}

impl ProcessRecorder {
    /// An idle recorder for node `node` of a cluster whose highest id is `nodes`.
    pub fn new(node: NodeId, nodes: usize) -> ProcessRecorder {
        ProcessRecorder {
            node,
            nodes: nodes.max(node as usize),
            max_records: DEFAULT_MAX_RECORDS,
            armed: AtomicBool::new(false),
            keep_from: AtomicU64::new(u64::MAX),
            keep_until: AtomicU64::new(u64::MAX),
            last_applied: AtomicU64::new(0),
            state: Mutex::new(None),
        }
    }

    /// The same with another cap on events kept per window.
    pub fn with_max_records(mut self, max: u64) -> ProcessRecorder {
        self.max_records = max;
        self
    }

    /// Starts recording `spec`'s window (a window still armed is discarded).
    pub fn arm(&self, spec: ArmSpec) -> Result<(), RecordingError> {
        if spec.end <= spec.start {
            return Err(RecordingError::BadSpec(format!(
                "end {} is not after start {}",
                spec.end, spec.start
            )));
        }
        if spec.interval.is_zero() {
            return Err(RecordingError::BadSpec("interval is zero".into()));
        }
        let intervals = (spec.end - spec.start).as_nanos() / spec.interval.as_nanos();
        if intervals > MAX_INTERVALS as u128 {
            return Err(RecordingError::BadSpec(format!(
                "{intervals} intervals of {:?}; at most {MAX_INTERVALS}",
                spec.interval
            )));
        }
        let cap = match spec.max_records {
            0 => self.max_records,
            n => n.min(self.max_records),
        };
        let hists = NodeRecorder::new(self.nodes, spec.interval);
        hists.set_window(spec.start, spec.end);
        let mut st = self.lock();
        self.armed.store(false, Relaxed);
        *st = Some(Armed {
            spec: ArmSpec {
                max_records: cap,
                ..spec
            },
            commits: Vec::new(),
            applies: Vec::new(),
            dropped: 0,
            hists,
        });
        self.keep_from.store(spec.start.as_nanos(), Relaxed);
        self.keep_until
            .store((spec.end + RECORDING_TAIL).as_nanos(), Relaxed);
        self.armed.store(true, Relaxed);
        Ok(())
    }

    /// Whether a window is armed.
    pub fn is_armed(&self) -> bool {
        self.armed.load(Relaxed)
    }

    /// Ends the armed window and returns what it recorded (None: nothing was armed).
    pub fn take(&self) -> Option<Recording> {
        let armed = {
            let mut st = self.lock();
            self.armed.store(false, Relaxed);
            st.take()?
        };
        let h = armed.hists.take();
        Some(Recording {
            node: self.node,
            window: (armed.spec.start, armed.spec.end),
            interval: armed.spec.interval,
            commits: armed.commits,
            applies: armed.applies,
            batch_size: h.batch_size,
            pipeline_depth: h.pipeline_depth,
            queue_depth: h.queue_depth,
            inbox_depth: h.inbox_depth,
            events_dropped: armed.dropped,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Armed>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keep(&self, apply: bool, rec: EventRecord) {
        let at = rec.at.as_nanos();
        if at < self.keep_from.load(Relaxed) || at >= self.keep_until.load(Relaxed) {
            return;
        }
        let mut st = self.lock();
        let Some(a) = st.as_mut() else {
            return;
        };
        if (a.commits.len() + a.applies.len()) as u64 >= a.spec.max_records {
            a.dropped += 1;
        } else if apply {
            a.applies.push(rec);
        } else {
            a.commits.push(rec);
        }
    }
}

impl Observer for ProcessRecorder {
    fn commit_advanced(&self, _node: NodeId, role: Role, from: Index, to: Index, at: Time) {
        if self.armed.load(Relaxed) {
            self.keep(false, EventRecord { role, from, to, at });
        }
    }

    fn applied(&self, _node: NodeId, role: Role, upto: Index, at: Time) {
        let from = self.last_applied.swap(upto, Relaxed);
        if self.armed.load(Relaxed) {
            self.keep(
                true,
                EventRecord {
                    role,
                    from,
                    to: upto,
                    at,
                },
            );
        }
    }

    fn entries_sent(
        &self,
        node: NodeId,
        to: NodeId,
        first: Index,
        last: Index,
        inflight: usize,
        at: Time,
    ) {
        if self.armed.load(Relaxed) {
            if let Some(a) = self.lock().as_ref() {
                a.hists.entries_sent(node, to, first, last, inflight, at);
            }
        }
    }

    fn queues(&self, node: NodeId, uncommitted: u64, inbox: usize, at: Time) {
        if self.armed.load(Relaxed) {
            if let Some(a) = self.lock().as_ref() {
                a.hists.queues(node, uncommitted, inbox, at);
            }
        }
    }
}

/// Several observers as one: each hook goes to every one, in order.
pub struct ObserverTee(pub Vec<Arc<dyn Observer>>);

impl Observer for ObserverTee {
    fn commit_advanced(&self, node: NodeId, role: Role, from: Index, to: Index, at: Time) {
        for o in &self.0 {
            o.commit_advanced(node, role, from, to, at);
        }
    }

    fn applied(&self, node: NodeId, role: Role, upto: Index, at: Time) {
        for o in &self.0 {
            o.applied(node, role, upto, at);
        }
    }

    fn role_changed(&self, node: NodeId, role: Role, term: Term, at: Time) {
        for o in &self.0 {
            o.role_changed(node, role, term, at);
        }
    }

    fn entries_sent(
        &self,
        node: NodeId,
        to: NodeId,
        first: Index,
        last: Index,
        inflight: usize,
        at: Time,
    ) {
        for o in &self.0 {
            o.entries_sent(node, to, first, last, inflight, at);
        }
    }

    fn message_received(&self, node: NodeId, from: NodeId, msg: &Message, at: Time) {
        for o in &self.0 {
            o.message_received(node, from, msg, at);
        }
    }

    fn queues(&self, node: NodeId, uncommitted: u64, inbox: usize, at: Time) {
        for o in &self.0 {
            o.queues(node, uncommitted, inbox, at);
        }
    }
}

/// What a node's client port needs beyond its server to answer the harness: its clock,
/// its recorder and where its process figures come from.
pub struct NodeProbe {
    epoch: Instant,
    recorder: Arc<ProcessRecorder>,
    transport: Option<Arc<dyn Transport>>,
    process: bool,
}

impl NodeProbe {
    /// A probe for a node whose `Time` zero is `epoch`, recording into `recorder`; the
    /// status it fills carries no process figures (see [`NodeProbe::for_process`]).
    pub fn new(epoch: Instant, recorder: Arc<ProcessRecorder>) -> NodeProbe {
        NodeProbe {
            epoch,
            recorder,
            transport: None,
            process: false,
        }
    }

    /// The same, also filling the status with this process's CPU time and RSS (for a node
    /// that has its process to itself) and `transport`'s bytes sent.
    pub fn for_process(mut self, transport: Arc<dyn Transport>) -> NodeProbe {
        self.transport = Some(transport);
        self.process = true;
        self
    }

    /// The node's `Time` now.
    pub fn now(&self) -> Time {
        Time::from_nanos(self.epoch.elapsed().as_nanos() as u64)
    }

    /// The recorder.
    pub fn recorder(&self) -> &Arc<ProcessRecorder> {
        &self.recorder
    }

    /// Adds what the probe knows to a status the server published.
    pub fn fill(&self, st: &mut NodeStatus) {
        if self.process {
            st.cpu_ns = crate::metrics::process_cpu_ns();
            st.rss_bytes = crate::metrics::process_rss_bytes().unwrap_or(0);
        }
        if let Some(t) = &self.transport {
            st.transport_bytes_sent = t.stats().bytes_sent;
        }
    }
}

/// Encodes a recording (format version, header, events, then each histogram).
pub fn encode_recording(r: &Recording) -> Result<Bytes, RecordingError> {
    let mut b = BytesMut::with_capacity(64 + (r.commits.len() + r.applies.len()) * RECORD_LEN);
    b.put_u8(FORMAT);
    b.put_u64(r.node);
    b.put_u64(r.window.0.as_nanos());
    b.put_u64(r.window.1.as_nanos());
    b.put_u64(r.interval.as_nanos() as u64);
    b.put_u64(r.events_dropped);
    for events in [&r.commits, &r.applies] {
        b.put_u64(events.len() as u64);
        for e in events {
            b.put_u8(role_code(e.role));
            b.put_u64(e.from);
            b.put_u64(e.to);
            b.put_u64(e.at.as_nanos());
        }
    }
    let mut ser = V2Serializer::new();
    for h in [
        &r.batch_size,
        &r.pipeline_depth,
        &r.queue_depth,
        &r.inbox_depth,
    ] {
        b.put_u8(match h.unit {
            Unit::Nanos => 0,
            Unit::Count => 1,
        });
        put_hist(&mut ser, &h.total, &mut b)?;
        let intervals = h.intervals();
        b.put_u32(intervals.len() as u32);
        for (start, len, ih) in &intervals {
            b.put_u64(start.as_nanos() as u64);
            b.put_u64(len.as_nanos() as u64);
            put_hist(&mut ser, ih, &mut b)?;
        }
    }
    if b.len() > MAX_RECORDING_BYTES {
        return Err(RecordingError::TooLarge(b.len() as u64));
    }
    Ok(b.freeze())
}

fn put_hist(
    ser: &mut V2Serializer,
    h: &Histogram<u64>,
    b: &mut BytesMut,
) -> Result<(), RecordingError> {
    let mut v = Vec::new();
    ser.serialize(h, &mut v)
        .map_err(|e| RecordingError::Histogram(format!("{e:?}")))?;
    b.put_u32(v.len() as u32);
    b.put_slice(&v);
    Ok(())
}

/// Reads a recording [`encode_recording`] wrote; every length is checked against the
/// bytes that are there before anything is allocated for it.
pub fn decode_recording(mut b: &[u8]) -> Result<Recording, RecordingError> {
    need(b, 1 + 5 * 8, "header")?;
    let format = b.get_u8();
    if format != FORMAT {
        return Err(RecordingError::Format(format));
    }
    let node = b.get_u64();
    let start = Time::from_nanos(b.get_u64());
    let end = Time::from_nanos(b.get_u64());
    let interval = Duration::from_nanos(b.get_u64());
    let events_dropped = b.get_u64();
    let mut lists = Vec::with_capacity(2);
    for what in ["commit events", "apply events"] {
        need(b, 8, what)?;
        let n = b.get_u64();
        if n.checked_mul(RECORD_LEN as u64)
            .is_none_or(|len| len > b.remaining() as u64)
        {
            return Err(RecordingError::Truncated(what));
        }
        let mut v = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let role = role_from(b.get_u8())?;
            v.push(EventRecord {
                role,
                from: b.get_u64(),
                to: b.get_u64(),
                at: Time::from_nanos(b.get_u64()),
            });
        }
        lists.push(v);
    }
    let applies = lists.pop().expect("two lists");
    let commits = lists.pop().expect("two lists");
    let mut de = Deserializer::new();
    let mut hists = Vec::with_capacity(4);
    for _ in 0..4 {
        need(b, 1, "histogram unit")?;
        let unit = match b.get_u8() {
            0 => Unit::Nanos,
            1 => Unit::Count,
            u => return Err(RecordingError::Unknown("unit", u)),
        };
        let mut h = IntervalHistogram::new(unit, interval.max(Duration::from_nanos(1)));
        h.total = get_hist(&mut de, &mut b)?;
        need(b, 4, "interval count")?;
        let n = b.get_u32();
        for _ in 0..n {
            need(b, 16, "interval")?;
            let s = Duration::from_nanos(b.get_u64());
            let len = Duration::from_nanos(b.get_u64());
            let hist = get_hist(&mut de, &mut b)?;
            h.push_interval(s, len, &hist);
        }
        hists.push(h);
    }
    let mut hists = hists.into_iter();
    let mut next = || hists.next().expect("four histograms");
    Ok(Recording {
        node,
        window: (start, end),
        interval,
        commits,
        applies,
        batch_size: next(),
        pipeline_depth: next(),
        queue_depth: next(),
        inbox_depth: next(),
        events_dropped,
    })
}

fn need(b: &[u8], n: usize, what: &'static str) -> Result<(), RecordingError> {
    if b.len() < n {
        return Err(RecordingError::Truncated(what));
    }
    Ok(())
}

fn get_hist(de: &mut Deserializer, b: &mut &[u8]) -> Result<Histogram<u64>, RecordingError> {
    need(b, 4, "histogram length")?;
    let len = b.get_u32() as usize;
    need(b, len, "histogram")?;
    let (mine, rest) = b.split_at(len);
    // The deserializer allocates the payload length the header claims: check it first.
    if len < V2_HEADER {
        return Err(RecordingError::Truncated("histogram header"));
    }
    let payload = u32::from_be_bytes([mine[4], mine[5], mine[6], mine[7]]) as usize;
    if payload > len - V2_HEADER {
        return Err(RecordingError::Truncated("histogram payload"));
    }
    let mut r = mine;
    let mut h: Histogram<u64> = de
        .deserialize(&mut r)
        .map_err(|e| RecordingError::Histogram(format!("{e:?}")))?;
    // Decoded histograms have fixed bounds; merged into, they must grow as the harness's do.
    h.auto(true);
    *b = rest;
    Ok(h)
}

fn role_code(r: Role) -> u8 {
    match r {
        Role::Follower => 0,
        Role::Candidate => 1,
        Role::Leader => 2,
    }
}

fn role_from(b: u8) -> Result<Role, RecordingError> {
    match b {
        0 => Ok(Role::Follower),
        1 => Ok(Role::Candidate),
        2 => Ok(Role::Leader),
        r => Err(RecordingError::Unknown("role", r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Time {
        Time::from_nanos(ms * 1_000_000)
    }

    fn spec(start: u64, end: u64) -> ArmSpec {
        ArmSpec {
            start: t(start),
            end: t(end),
            interval: Duration::from_millis(100),
            max_records: 0,
        }
    }

    /// A leader's events before, in and after the window: only those from the start to
    /// the end plus the tail are kept, and the histograms only count the window.
    #[test]
    fn a_recorder_keeps_the_window_and_its_tail() {
        let r = ProcessRecorder::new(1, 3);
        r.applied(1, Role::Leader, 5, t(1)); // idle: only where the applies stand
        assert!(r.take().is_none(), "nothing armed");
        r.arm(spec(1_000, 2_000)).unwrap();
        r.commit_advanced(1, Role::Leader, 5, 6, t(999)); // before
        r.commit_advanced(1, Role::Leader, 6, 8, t(1_000));
        r.applied(1, Role::Leader, 8, t(1_001));
        r.entries_sent(1, 2, 9, 12, 3, t(1_050));
        r.entries_sent(1, 2, 13, 13, 1, t(2_050)); // after the window: not in histograms
        r.queues(1, 4, 2, t(1_150));
        r.commit_advanced(1, Role::Leader, 8, 13, t(6_999)); // in the tail
        r.commit_advanced(1, Role::Leader, 13, 14, t(7_000)); // past it
        let rec = r.take().unwrap();
        assert!(!r.is_armed());
        assert_eq!(rec.node, 1);
        assert_eq!(rec.window, (t(1_000), t(2_000)));
        let c: Vec<(Index, Index)> = rec.commits.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(c, vec![(6, 8), (8, 13)]);
        assert_eq!(
            rec.applies,
            vec![EventRecord {
                role: Role::Leader,
                from: 5,
                to: 8,
                at: t(1_001)
            }]
        );
        assert_eq!(rec.batch_size.total.len(), 1);
        assert_eq!(rec.batch_size.total.max(), 4);
        assert_eq!(rec.pipeline_depth.total.max(), 3);
        assert_eq!(rec.queue_depth.total.max(), 4);
        assert_eq!(rec.inbox_depth.total.max(), 2);
        assert_eq!(rec.queue_depth.intervals()[0].0, Duration::from_millis(100));
        assert_eq!(rec.events_dropped, 0);
        assert!(r.take().is_none(), "take disarms");
    }

    #[test]
    fn events_past_the_cap_are_counted() {
        let r = ProcessRecorder::new(2, 3).with_max_records(100);
        r.arm(ArmSpec {
            max_records: 3,
            ..spec(0, 1_000)
        })
        .unwrap();
        for i in 0..10 {
            r.commit_advanced(2, Role::Follower, i, i + 1, t(i + 1));
        }
        let rec = r.take().unwrap();
        assert_eq!(rec.commits.len(), 3);
        assert_eq!(rec.events_dropped, 7);
        // A client cannot raise the node's own cap.
        r.arm(ArmSpec {
            max_records: 1_000,
            ..spec(0, 1_000)
        })
        .unwrap();
        for i in 0..200 {
            r.applied(2, Role::Follower, i + 1, t(i + 1));
        }
        let rec = r.take().unwrap();
        assert_eq!((rec.applies.len(), rec.events_dropped), (100, 100));
    }

    #[test]
    fn unusable_windows_are_refused() {
        let r = ProcessRecorder::new(1, 1);
        assert!(matches!(r.arm(spec(5, 5)), Err(RecordingError::BadSpec(_))));
        assert!(r
            .arm(ArmSpec {
                interval: Duration::ZERO,
                ..spec(0, 5)
            })
            .is_err());
        assert!(r
            .arm(ArmSpec {
                interval: Duration::from_nanos(1),
                ..spec(0, 5_000)
            })
            .is_err());
        assert!(!r.is_armed());
    }

    fn sample_recording() -> Recording {
        let r = ProcessRecorder::new(3, 3);
        r.arm(spec(0, 1_000)).unwrap();
        for i in 0..50u64 {
            r.commit_advanced(3, Role::Follower, i, i + 1, t(i * 10 + 1));
            r.applied(3, Role::Candidate, i + 1, t(i * 10 + 2));
            r.entries_sent(3, 1, i, i + (i % 7), 1 + i as usize % 3, t(i * 10 + 3));
            r.queues(3, i * 1_000_000, 9, t(i * 10 + 4));
        }
        let mut rec = r.take().unwrap();
        rec.events_dropped = 17;
        rec
    }

    fn same_hist(a: &IntervalHistogram, b: &IntervalHistogram) {
        assert_eq!(a.unit, b.unit);
        // `assert!`, not `assert_eq!`: a failure would print every bucket.
        assert!(a.total == b.total, "totals differ");
        assert_eq!(a.intervals().len(), b.intervals().len());
        for (x, y) in a.intervals().iter().zip(&b.intervals()) {
            assert_eq!((x.0, x.1), (y.0, y.1));
            assert!(x.2 == y.2, "interval at {:?} differs", x.0);
        }
    }

    #[test]
    fn recordings_round_trip() {
        let rec = sample_recording();
        assert!(rec.batch_size.intervals().len() > 1);
        let bytes = encode_recording(&rec).unwrap();
        let back = decode_recording(&bytes).unwrap();
        assert_eq!(back.node, 3);
        assert_eq!(back.window, rec.window);
        assert_eq!(back.interval, rec.interval);
        assert_eq!(back.commits, rec.commits);
        assert_eq!(back.applies, rec.applies);
        assert_eq!(back.events_dropped, 17);
        same_hist(&back.batch_size, &rec.batch_size);
        same_hist(&back.pipeline_depth, &rec.pipeline_depth);
        same_hist(&back.queue_depth, &rec.queue_depth);
        same_hist(&back.inbox_depth, &rec.inbox_depth);
        // Decoded histograms still grow when merged into.
        let mut h = back.batch_size.total.clone();
        h.record(u64::MAX / 4).unwrap();
    }

    #[test]
    fn truncated_or_foreign_recordings_are_errors() {
        let bytes = encode_recording(&sample_recording()).unwrap();
        for cut in [0, 1, 40, 41, 49, 60, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                decode_recording(&bytes[..cut]).is_err(),
                "{cut} of {} bytes decoded",
                bytes.len()
            );
        }
        let mut other = bytes.to_vec();
        other[0] = 9;
        assert_eq!(
            decode_recording(&other).unwrap_err(),
            RecordingError::Format(9)
        );
        // An event count far beyond the bytes present allocates nothing.
        let mut huge = bytes.to_vec();
        huge[41..49].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            decode_recording(&huge),
            Err(RecordingError::Truncated(_))
        ));
    }
}
