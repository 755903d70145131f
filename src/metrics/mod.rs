//! A node's own figures for people and tools: Prometheus text exposition over HTTP at the
//! `metrics_addr` of its `[[nodes]]` entry, path `/metrics`.
//!
//! The node's task feeds [`NodeMetrics`] through the [`Observer`] hooks and a
//! [`MeteredTransport`] around its transport; both only touch atomics (relaxed, single
//! writer: the node's own task), so nothing on the hot path takes a lock. A scrape reads
//! those atomics, the node's published [`NodeStatus`], its transport's counters and
//! `/proc/self`, and `prometheus-client` encodes the text.
//!
//! # What a node can measure by itself
//!
//! The harness measures follower lags against the leader's commit instant, which a node
//! process cannot see: its peers' clocks are elsewhere. Every duration here is therefore
//! between two instants on this node's own clock:
//!
//! - `raftbench_follower_commit_lag_seconds`: on a follower, per entry, from the
//!   AppendEntries that brought the entry arriving to the follower learning that it
//!   committed. It spans the follower's acknowledgement reaching the leader, the quorum,
//!   and the commit index coming back, so it is larger than the harness's follower commit
//!   lag (leader commit to follower commit) by about one round trip plus a sync.
//! - `raftbench_leader_commit_seconds`: on a leader, per entry, from the first
//!   AppendEntries carrying it leaving to the leader seeing it committed.
//! - `raftbench_apply_lag_seconds`: on any node, per entry, from the node learning an entry
//!   committed to the node having applied it to its key-value store.

mod http;
mod listener;
mod proc_stats;

pub use http::{serve, MetricsBindError, MetricsListener, CONNECTION_LIFETIME};
pub use listener::ListenerCollector;
pub use proc_stats::{process_cpu_ns, process_rss_bytes};

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::raft::{Index, Message, MessageBody, NodeId, Role, Term, Time};
use crate::server::{NodeStatus, Observer};
use crate::transport::{StatsSnapshot, Transport};

/// Bucket upper bounds of the lag histograms, in nanoseconds (10 us to 10 s).
const LAG_BOUNDS_NS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Bucket upper bounds of the batch-size histogram (entries per AppendEntries).
const BATCH_BOUNDS: [u64; 15] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
];

/// Bucket upper bounds of the in-flight histogram (AppendEntries unacknowledged).
const INFLIGHT_BOUNDS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// A histogram with fixed buckets made of atomics: recording is a few relaxed adds.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: &'static [u64],
    /// One more than `bounds`: the last counts values above every bound.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl AtomicHistogram {
    /// An empty histogram with these (ascending) bucket upper bounds.
    pub fn new(bounds: &'static [u64]) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Records `n` values equal to `v`.
    pub fn record_n(&self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i].fetch_add(n, Relaxed);
        self.sum.fetch_add(v.saturating_mul(n), Relaxed);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Encodes the histogram with every bound and the sum multiplied by `scale` (1e-9
    /// turns nanoseconds into seconds).
    fn encode(&self, mut m: MetricEncoder, scale: f64) -> std::fmt::Result {
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(self.counts.iter())
            .map(|(&b, c)| (b as f64 * scale, c.load(Relaxed)))
            .collect();
        buckets.push((f64::INFINITY, self.counts[self.bounds.len()].load(Relaxed)));
        let count = buckets.iter().map(|b| b.1).sum();
        let sum = self.sum.load(Relaxed) as f64 * scale;
        m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// Which instant each log index reached a stage at, as a queue of `(last index, instant)`
/// records in index order: a record stands for the indexes after the previous record's.
/// Written and read only by the node's own task, so relaxed atomics suffice; they are
/// atomics only because [`Observer`] methods take `&self`.
#[derive(Debug)]
struct StageTimes {
    last: Box<[AtomicU64]>,
    at: Box<[AtomicU64]>,
    /// Records pushed so far; the ring holds the last `CAP`.
    head: AtomicU64,
    /// Records consumed so far.
    tail: AtomicU64,
    /// Highest index a record covers.
    high: AtomicU64,
    /// Highest index already measured (or skipped).
    done: AtomicU64,
}

/// Records kept per stage: enough for every AppendEntries or commit advance between two
/// commits even with deep pipelines; an older record is dropped rather than the ring grown.
const CAP: usize = 4096;

impl StageTimes {
    fn new() -> StageTimes {
        let mk = || (0..CAP).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>();
        StageTimes {
            last: mk(),
            at: mk(),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            high: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// Indexes up to `last` reached the stage at `at` (those already recorded keep their
    /// first instant).
    fn push(&self, last: Index, at: u64) {
        if last <= self.high.load(Relaxed) {
            return;
        }
        self.high.store(last, Relaxed);
        let head = self.head.load(Relaxed);
        if head - self.tail.load(Relaxed) == CAP as u64 {
            self.tail.store(head - CAP as u64 + 1, Relaxed);
        }
        let i = (head % CAP as u64) as usize;
        self.last[i].store(last, Relaxed);
        self.at[i].store(at, Relaxed);
        self.head.store(head + 1, Relaxed);
    }

    /// Indexes after `from` are the first to be measured (what came before happened before
    /// this node watched, or was measured already).
    fn start_after(&self, from: Index) {
        if self.done.load(Relaxed) < from {
            self.done.store(from, Relaxed);
        }
    }

    /// Indexes up to `upto` reached the next stage at `at`: each one's time since its
    /// record goes into `hist`.
    fn finish(&self, upto: Index, at: u64, hist: &AtomicHistogram) {
        let mut done = self.done.load(Relaxed);
        let head = self.head.load(Relaxed);
        let mut tail = self.tail.load(Relaxed);
        while done < upto && tail < head {
            let i = (tail % CAP as u64) as usize;
            let last = self.last[i].load(Relaxed);
            if last > done {
                let hi = last.min(upto);
                hist.record_n(at.saturating_sub(self.at[i].load(Relaxed)), hi - done);
                done = hi;
            }
            if last <= upto {
                tail += 1;
            } else {
                break;
            }
        }
        self.tail.store(tail, Relaxed);
        self.done.store(done.max(upto), Relaxed);
    }

    /// Forgets every record (the node changed role: the stage means something else now).
    fn clear(&self) {
        self.tail.store(self.head.load(Relaxed), Relaxed);
    }
}

/// Counters for one peer.
#[derive(Debug, Default)]
struct PeerCounters {
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
    /// AppendEntries unacknowledged to this peer right after the latest send.
    inflight: AtomicU64,
}

/// One node's live figures, fed by the node's task through [`Observer`] and
/// [`MeteredTransport`].
#[derive(Debug)]
pub struct NodeMetrics {
    node: NodeId,
    peers: Box<[(NodeId, PeerCounters)]>,
    /// Entries per AppendEntries that carried entries.
    batch_entries: AtomicHistogram,
    /// AppendEntries in flight to a follower right after each send.
    inflight: AtomicHistogram,
    follower_commit_lag: AtomicHistogram,
    leader_commit: AtomicHistogram,
    apply_lag: AtomicHistogram,
    /// Arrival (follower) or first send (leader) of each index.
    arrived: StageTimes,
    /// When this node learned each index committed.
    committed: StageTimes,
    role: AtomicU64,
}

impl NodeMetrics {
    /// Metrics for node `node` of a cluster whose members are `members` (itself included).
    pub fn new(node: NodeId, members: &[NodeId]) -> NodeMetrics {
        NodeMetrics {
            node,
            peers: members
                .iter()
                .filter(|&&p| p != node)
                .map(|&p| (p, PeerCounters::default()))
                .collect(),
            batch_entries: AtomicHistogram::new(&BATCH_BOUNDS),
            inflight: AtomicHistogram::new(&INFLIGHT_BOUNDS),
            follower_commit_lag: AtomicHistogram::new(&LAG_BOUNDS_NS),
            leader_commit: AtomicHistogram::new(&LAG_BOUNDS_NS),
            apply_lag: AtomicHistogram::new(&LAG_BOUNDS_NS),
            arrived: StageTimes::new(),
            committed: StageTimes::new(),
            role: AtomicU64::new(role_code(Role::Follower)),
        }
    }

    fn peer(&self, id: NodeId) -> Option<&PeerCounters> {
        self.peers.iter().find(|(p, _)| *p == id).map(|(_, c)| c)
    }

    /// Counts a message handed to the transport for `msg.to`.
    pub fn count_sent(&self, msg: &Message) {
        if let Some(p) = self.peer(msg.to) {
            p.messages_sent.fetch_add(1, Relaxed);
            p.bytes_sent
                .fetch_add(crate::codec::encoded_len(msg) as u64, Relaxed);
        }
    }

    /// Builds the registry a metrics endpoint encodes: this node's figures, its status,
    /// its transport's counters and the process's. `data_dir` is where its log files are,
    /// if it keeps any.
    pub fn registry(
        self: &Arc<Self>,
        status: watch::Receiver<NodeStatus>,
        transport: Arc<dyn Transport>,
        data_dir: Option<PathBuf>,
    ) -> Registry {
        let mut r = Registry::default();
        r.register_collector(Box::new(NodeCollector {
            metrics: self.clone(),
            status,
            transport,
            data_dir,
        }));
        r
    }
}

fn role_code(r: Role) -> u64 {
    match r {
        Role::Follower => 0,
        Role::Candidate => 1,
        Role::Leader => 2,
    }
}

impl Observer for NodeMetrics {
    fn commit_advanced(&self, _node: NodeId, role: Role, from: Index, to: Index, at: Time) {
        let at = at.as_nanos();
        self.arrived.start_after(from);
        let hist = if role == Role::Leader {
            &self.leader_commit
        } else {
            &self.follower_commit_lag
        };
        self.arrived.finish(to, at, hist);
        self.committed.start_after(from);
        self.committed.push(to, at);
    }

    fn applied(&self, _node: NodeId, _role: Role, upto: Index, at: Time) {
        self.committed.finish(upto, at.as_nanos(), &self.apply_lag);
    }

    fn role_changed(&self, _node: NodeId, role: Role, _term: Term, _at: Time) {
        self.role.store(role_code(role), Relaxed);
        self.arrived.clear();
    }

    fn entries_sent(
        &self,
        _node: NodeId,
        to: NodeId,
        first: Index,
        last: Index,
        inflight: usize,
        at: Time,
    ) {
        if last >= first {
            self.batch_entries.record_n(last - first + 1, 1);
            self.arrived.push(last, at.as_nanos());
        }
        self.inflight.record_n(inflight as u64, 1);
        if let Some(p) = self.peer(to) {
            p.inflight.store(inflight as u64, Relaxed);
        }
    }

    fn message_received(&self, _node: NodeId, from: NodeId, msg: &Message, at: Time) {
        if let Some(p) = self.peer(from) {
            p.messages_received.fetch_add(1, Relaxed);
            p.bytes_received
                .fetch_add(crate::codec::encoded_len(msg) as u64, Relaxed);
        }
        if let MessageBody::AppendEntries(ae) = &msg.body {
            if self.role.load(Relaxed) != role_code(Role::Leader) && !ae.entries.is_empty() {
                self.arrived
                    .push(ae.prev_log_index + ae.entries.len() as u64, at.as_nanos());
            }
        }
    }
}

/// A transport that counts, per peer, the messages and frame bytes handed to the one it
/// wraps.
pub struct MeteredTransport {
    inner: Arc<dyn Transport>,
    metrics: Arc<NodeMetrics>,
}

impl MeteredTransport {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn Transport>, metrics: Arc<NodeMetrics>) -> MeteredTransport {
        MeteredTransport { inner, metrics }
    }
}

impl Transport for MeteredTransport {
    fn local_id(&self) -> NodeId {
        self.inner.local_id()
    }

    fn send(&self, msg: Message) {
        self.metrics.count_sent(&msg);
        self.inner.send(msg);
    }

    fn watch_connected(&self, peer: NodeId) -> Option<watch::Receiver<bool>> {
        self.inner.watch_connected(peer)
    }

    fn stats(&self) -> StatsSnapshot {
        self.inner.stats()
    }
}

/// Reads everything at scrape time.
struct NodeCollector {
    metrics: Arc<NodeMetrics>,
    status: watch::Receiver<NodeStatus>,
    transport: Arc<dyn Transport>,
    data_dir: Option<PathBuf>,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCollector")
            .field("node", &self.metrics.node)
            .finish()
    }
}

/// Encodes one unlabelled gauge.
fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: V,
) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// Encodes one unlabelled counter (the encoder appends `_total`).
fn counter<V: prometheus_client::encoding::EncodeCounterValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: V,
) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

/// Encodes a counter (or gauge) with one value per label value.
fn family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &str,
    values: &[(String, u64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (l, v) in values {
        let labels = [(label, l.as_str())];
        let fm = m.encode_family(&labels)?;
        let mut fm = fm;
        match kind {
            MetricType::Counter => fm.encode_counter::<NoLabelSet, _, u64>(v, None)?,
            _ => fm.encode_gauge(v)?,
        }
    }
    Ok(())
}

/// Bytes of the regular files directly under `dir` (a node's log store).
fn dir_bytes(dir: &std::path::Path) -> Option<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).ok()? {
        let m = e.ok()?.metadata().ok()?;
        if m.is_file() {
            total += m.len();
        }
    }
    Some(total)
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let m = &self.metrics;
        let s = self.status.borrow().clone();
        let roles = [Role::Follower, Role::Candidate, Role::Leader].map(|r| {
            let name = match r {
                Role::Follower => "follower",
                Role::Candidate => "candidate",
                Role::Leader => "leader",
            };
            (name.to_string(), u64::from(s.role == r))
        });
        family(
            &mut e,
            "raftbench_role",
            "1 for this node's current Raft role, 0 for the others",
            MetricType::Gauge,
            "role",
            &roles,
        )?;
        gauge(&mut e, "raftbench_node_id", "This node's id", s.id)?;
        gauge(&mut e, "raftbench_term", "This node's current term", s.term)?;
        gauge(
            &mut e,
            "raftbench_leader_id",
            "The leader this node knows of (0: none)",
            s.leader.unwrap_or(0),
        )?;
        gauge(
            &mut e,
            "raftbench_commit_index",
            "Highest log index this node knows committed",
            s.commit_index,
        )?;
        gauge(
            &mut e,
            "raftbench_applied_index",
            "Highest log index applied to this node's key-value store",
            s.applied_index,
        )?;
        gauge(
            &mut e,
            "raftbench_log_last_index",
            "Last index in this node's log (node processes keep the whole log: its length in entries)",
            s.last_index,
        )?;
        if let Some(bytes) = self.data_dir.as_deref().and_then(dir_bytes) {
            gauge(
                &mut e,
                "raftbench_log_bytes",
                "Bytes of this node's log store files on disk",
                bytes,
            )?;
        }
        let st = &s.stats;
        family(
            &mut e,
            "raftbench_append_entries_sent",
            "AppendEntries sent, by why they were sent",
            MetricType::Counter,
            "kind",
            &[
                ("entries".into(), st.appends),
                ("heartbeat".into(), st.heartbeats),
                ("commit_notice".into(), st.commit_notices),
            ],
        )?;
        counter(
            &mut e,
            "raftbench_entries_sent",
            "Log entries carried by all AppendEntries sent",
            st.entries_sent,
        )?;
        counter(
            &mut e,
            "raftbench_entry_bytes_sent",
            "Entry bytes (payload plus per-entry overhead) carried by all AppendEntries sent",
            st.entry_bytes_sent,
        )?;
        counter(
            &mut e,
            "raftbench_elections",
            "Elections this node started",
            st.elections,
        )?;
        let per_peer = |f: &dyn Fn(&PeerCounters) -> u64| -> Vec<(String, u64)> {
            m.peers
                .iter()
                .map(|(id, c)| (id.to_string(), f(c)))
                .collect()
        };
        family(
            &mut e,
            "raftbench_peer_messages_sent",
            "Raft messages handed to the transport for each peer",
            MetricType::Counter,
            "peer",
            &per_peer(&|c| c.messages_sent.load(Relaxed)),
        )?;
        family(
            &mut e,
            "raftbench_peer_bytes_sent",
            "Frame bytes (length prefix included) of the Raft messages for each peer",
            MetricType::Counter,
            "peer",
            &per_peer(&|c| c.bytes_sent.load(Relaxed)),
        )?;
        family(
            &mut e,
            "raftbench_peer_messages_received",
            "Raft messages received from each peer",
            MetricType::Counter,
            "peer",
            &per_peer(&|c| c.messages_received.load(Relaxed)),
        )?;
        family(
            &mut e,
            "raftbench_peer_bytes_received",
            "Frame bytes (length prefix included) of the Raft messages from each peer",
            MetricType::Counter,
            "peer",
            &per_peer(&|c| c.bytes_received.load(Relaxed)),
        )?;
        family(
            &mut e,
            "raftbench_append_inflight",
            "AppendEntries unacknowledged to each follower right after the latest send (leader)",
            MetricType::Gauge,
            "peer",
            &per_peer(&|c| c.inflight.load(Relaxed)),
        )?;
        let t = self.transport.stats();
        counter(
            &mut e,
            "raftbench_transport_messages_dropped",
            "Raft messages the transport dropped (full queue, no connection, failed write)",
            t.messages_dropped,
        )?;
        counter(
            &mut e,
            "raftbench_transport_connections_established",
            "Peer connections that completed the handshake",
            t.connections_established,
        )?;
        counter(
            &mut e,
            "raftbench_transport_connections_rejected",
            "Incoming peer connections refused (TLS failure, unknown peer, bad Hello)",
            t.connections_rejected,
        )?;
        let hists: [(&str, &str, &AtomicHistogram, f64); 5] = [
            (
                "raftbench_append_batch_entries",
                "Entries per AppendEntries that carried entries (leader)",
                &m.batch_entries,
                1.0,
            ),
            (
                "raftbench_append_inflight_at_send",
                "AppendEntries unacknowledged to the follower right after each send (leader)",
                &m.inflight,
                1.0,
            ),
            (
                "raftbench_follower_commit_lag_seconds",
                "Per entry on a follower: from the AppendEntries carrying it arriving to learning it committed",
                &m.follower_commit_lag,
                1e-9,
            ),
            (
                "raftbench_leader_commit_seconds",
                "Per entry on a leader: from the first AppendEntries carrying it leaving to seeing it committed",
                &m.leader_commit,
                1e-9,
            ),
            (
                "raftbench_apply_lag_seconds",
                "Per entry: from this node learning it committed to having applied it",
                &m.apply_lag,
                1e-9,
            ),
        ];
        for (name, help, h, scale) in hists {
            h.encode(
                e.encode_descriptor(name, help, None, MetricType::Histogram)?,
                scale,
            )?;
        }
        if let Some(p) = proc_stats::read() {
            gauge(
                &mut e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.rss_bytes,
            )?;
            counter(
                &mut e,
                "process_cpu_seconds",
                "User and system CPU time spent in seconds",
                p.cpu_seconds,
            )?;
        }
        Ok(())
    }
}

/// The registry's text, as `/metrics` serves it.
pub fn encode_text(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut out, registry).is_err() {
        // Writing into a String cannot fail; a collector's error would be a bug here.
        let _ = writeln!(out, "# encoding failed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound() {
        static B: [u64; 3] = [1, 10, 100];
        let h = AtomicHistogram::new(&B);
        h.record_n(1, 1);
        h.record_n(2, 3);
        h.record_n(100, 1);
        h.record_n(101, 2);
        let got: Vec<u64> = h.counts.iter().map(|c| c.load(Relaxed)).collect();
        assert_eq!(got, vec![1, 3, 1, 2]);
        assert_eq!(h.count(), 7);
        assert_eq!(h.sum.load(Relaxed), 1 + 6 + 100 + 202);
    }

    #[test]
    fn stage_times_measure_each_index_from_its_first_record() {
        static B: [u64; 4] = [5, 10, 20, 40];
        let t = StageTimes::new();
        let h = AtomicHistogram::new(&B);
        t.push(3, 100); // 1..=3 arrive at 100
        t.push(3, 150); // a retransmission keeps the first instant
        t.push(5, 110); // 4..=5 at 110
        t.finish(4, 120, &h); // 1..=3 waited 20, 4 waited 10
        let got: Vec<u64> = h.counts.iter().map(|c| c.load(Relaxed)).collect();
        assert_eq!(got, vec![0, 1, 3, 0, 0]);
        t.finish(5, 140, &h); // 5 waited 30
        assert_eq!(h.counts[3].load(Relaxed), 1);
        assert_eq!(h.count(), 5);
        t.finish(9, 200, &h); // nothing recorded for 6..=9
        assert_eq!(h.count(), 5);
        t.push(12, 300);
        t.start_after(10); // 10 was measured elsewhere (or before we watched)
        t.finish(12, 301, &h);
        assert_eq!(h.count(), 7);
        assert_eq!(h.counts[0].load(Relaxed), 2);
    }

    /// A leader's view: entries leave, commit, apply; the figures and the text follow.
    #[test]
    fn a_leader_times_commit_and_apply_and_counts_batches() {
        let m = Arc::new(NodeMetrics::new(1, &[1, 2, 3]));
        let t = Time::from_nanos;
        m.role_changed(1, Role::Leader, 2, t(0));
        m.entries_sent(1, 2, 1, 4, 1, t(1_000)); // 1..=4 leave at 1 us
        m.entries_sent(1, 3, 1, 4, 2, t(1_500)); // a second copy keeps the first instant
        m.entries_sent(1, 2, 5, 5, 2, t(2_000));
        m.commit_advanced(1, Role::Leader, 0, 5, t(101_000));
        m.applied(1, Role::Leader, 5, t(151_000));
        assert_eq!(m.batch_entries.count(), 3);
        assert_eq!(m.batch_entries.sum.load(Relaxed), 4 + 4 + 1);
        assert_eq!(m.leader_commit.count(), 5);
        assert_eq!(m.leader_commit.sum.load(Relaxed), 4 * 100_000 + 99_000);
        assert_eq!(m.follower_commit_lag.count(), 0);
        assert_eq!(m.apply_lag.count(), 5);
        assert_eq!(m.apply_lag.sum.load(Relaxed), 5 * 50_000);
        assert_eq!(m.peer(3).unwrap().inflight.load(Relaxed), 2);
        assert!(m.peer(1).is_none(), "no counters for itself");

        let (status_tx, status) = watch::channel(NodeStatus {
            id: 1,
            role: Role::Leader,
            term: 2,
            leader: Some(1),
            commit_index: 5,
            applied_index: 5,
            last_index: 5,
            ..NodeStatus::default()
        });
        let net = crate::transport::MemNetwork::new(crate::transport::MemMode::Move);
        let (transport, _inbox) = net.join(1, 1);
        let text = encode_text(&m.registry(status, Arc::new(transport), None));
        drop(status_tx);
        for line in [
            "# TYPE raftbench_role gauge",
            "raftbench_role{role=\"leader\"} 1",
            "raftbench_role{role=\"follower\"} 0",
            "raftbench_commit_index 5",
            "# TYPE raftbench_peer_messages_sent_total counter",
            "raftbench_peer_messages_sent_total{peer=\"2\"} 0",
            "raftbench_append_inflight{peer=\"3\"} 2",
            "# TYPE raftbench_leader_commit_seconds histogram",
            "raftbench_leader_commit_seconds_bucket{le=\"0.0001\"} 5",
            "raftbench_leader_commit_seconds_count 5",
            "raftbench_apply_lag_seconds_bucket{le=\"5e-05\"} 5",
            "raftbench_append_batch_entries_bucket{le=\"4\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("raftbench_log_bytes"), "no data dir given");
    }

    #[test]
    fn stage_times_drop_the_oldest_record_when_full() {
        static B: [u64; 1] = [1_000_000];
        let t = StageTimes::new();
        let h = AtomicHistogram::new(&B);
        for i in 1..=(CAP as u64 + 10) {
            t.push(i, i);
        }
        t.finish(CAP as u64 + 10, CAP as u64 + 10, &h);
        // The 10 dropped records' indexes are counted with the oldest kept record.
        assert_eq!(h.count(), CAP as u64 + 10);
    }
}
