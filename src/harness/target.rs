//! What a point measures: a cluster that the harness starts, finds the leader of, loads,
//! faults, counts and stops. Today the cluster runs inside the harness's process
//! ([`InProcess`]); node processes and remote hosts implement the same [`Target`].

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::cluster::{ClusterError, ClusterSpec, FileStoreSpec, LocalCluster, SyncStatsByNode};
use crate::harness::follow::{FollowPort, LiveHandles};
use crate::harness::load::CommandMaker;
use crate::harness::node_recorder::NodeRecorder;
use crate::harness::remote_port::RemotePort;
use crate::harness::scenario::{Fault, PointConfig, StorageKind};
use crate::harness::summary::QuicStats;
use crate::netem::LinkEmulator;
use crate::raft::{NodeId, Role};
use crate::server::{Observer, Refused, Request, ServerHandle};
use crate::storage::{DiskFault, FileStore, SyncFloor, SyncSnapshot};

/// Why a target could not be started or led.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The cluster did not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// No leader emerged.
    #[error("no leader was elected within {0:?}")]
    NoLeader(Duration),
    /// Another node than `cluster.leader` leads.
    #[error("cluster.leader = {wanted}, but node {got} won the election")]
    WrongLeader {
        /// The node the scenario pinned.
        wanted: NodeId,
        /// The node that leads.
        got: NodeId,
    },
    /// Leadership moved while the point ran, so its figures mix two leaders.
    #[error("leadership moved during the point: node {from} led in term {term}, now {now}")]
    LeaderMoved {
        /// The leader at the start.
        from: NodeId,
        /// Its term.
        term: u64,
        /// What the cluster reports now.
        now: String,
    },
    /// A node process died without a fault killing it.
    #[error("{0}")]
    NodeDied(String),
    /// The point's configuration cannot build this target.
    #[error("{key}: {reason}")]
    Config {
        /// The key at fault.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Counters of a whole target at one instant; a point reports the difference across its
/// measured window.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// AppendEntries of every kind the leader sent.
    pub leader_appends: u64,
    /// Of which heartbeats.
    pub leader_heartbeats: u64,
    /// Of which eager commit notices.
    pub leader_notices: u64,
    /// Raft messages sent by every node.
    pub raft_messages: u64,
    /// Bytes the transports put on the wire.
    pub wire_bytes: u64,
    /// CPU time of the processes that run the target (and, in process, the harness).
    pub cpu: Duration,
    /// Of `cpu`, the node processes' own (outside the harness's process).
    pub node_cpu: Duration,
    /// Each node process's resident memory now (bytes), when the nodes run outside.
    pub node_rss: Vec<(NodeId, u64)>,
    /// Each node's log syncs so far, when the nodes keep their logs in files.
    pub syncs: Vec<(NodeId, SyncSnapshot)>,
    /// QUIC's own counters summed over every node's connections (None off QUIC).
    pub quic: Option<QuicStats>,
    /// Snapshots the running nodes installed from a leader (a restarted node counts from
    /// its restart).
    pub snapshots_installed: u64,
    /// InstallSnapshot chunks the running nodes sent.
    pub snapshot_chunks: u64,
}

/// Where the load sends its requests.
#[derive(Clone, Debug)]
pub enum LoadPort {
    /// The leader's in-process handle.
    Local(ServerHandle),
    /// A router that follows the leader across faults ([`crate::harness::follow`]).
    Following(FollowPort),
    /// Nodes in other processes, through the pipelined client ([`RemotePort`]).
    Remote(RemotePort),
}

impl LoadPort {
    /// Submits from a plain thread, waiting for room in the leader's queue; hands the
    /// request back if the leader is gone.
    pub fn blocking_send(&self, req: Request) -> Result<(), Request> {
        match self {
            LoadPort::Local(h) => h.blocking_send(req),
            LoadPort::Following(p) => p.blocking_send(req),
            LoadPort::Remote(p) => p.blocking_send(req),
        }
    }

    /// Submits without waiting: a full queue hands the request back as
    /// [`Refused::Full`] (an open loop answers it as overloaded), a stopped leader as
    /// [`Refused::Closed`].
    pub fn offer(&self, req: Request) -> Result<(), Refused> {
        match self {
            LoadPort::Local(h) => h.offer(req),
            LoadPort::Following(p) => p.offer(req),
            LoadPort::Remote(p) => p.offer(req),
        }
    }

    /// Claims room for one request at the leader (see [`ServerHandle::claim_room`]);
    /// false: the leader says it is full and the request should be refused unsent.
    pub fn claim_room(&self) -> bool {
        match self {
            LoadPort::Local(h) => h.claim_room(),
            // The router holds requests across leaders; a refusal comes back as an answer.
            LoadPort::Following(_) => true,
            LoadPort::Remote(p) => !p.overloaded(),
        }
    }

    /// Submits from async code, waiting for room.
    pub async fn send(&self, req: Request) -> Result<(), Request> {
        match self {
            LoadPort::Local(h) => h.send(req).await,
            LoadPort::Following(p) => p.send(req).await,
            LoadPort::Remote(p) => p.send(req).await,
        }
    }
}

/// A cluster under test.
pub trait Target: Send + Sync {
    /// The node that leads, found when the target started.
    fn leader(&self) -> NodeId;
    /// Where load goes.
    fn port(&self) -> LoadPort;
    /// The clock origin of every timestamp the target reports (the nodes' `Time` zero).
    fn epoch(&self) -> Instant;
    /// Counters now.
    fn counters(&self) -> Counters;
    /// Blocks the leader's thread for `d`, as a garbage-collection pause would.
    fn stall_leader(&self, d: Duration);
    /// The link emulator between the nodes, if the point emulates links.
    fn emulator(&self) -> Option<&LinkEmulator>;
    /// The sync floors measured on the nodes' file system before they started (one writer
    /// per node, then a lone writer), when they keep their logs in files.
    fn sync_floors(&self) -> Vec<SyncFloor> {
        Vec::new()
    }
    /// Whether the leader found at start still leads in the same term.
    fn check_leader(&self) -> Result<(), TargetError>;
    /// Stops every node and waits for them.
    fn stop(self: Box<Self>);

    /// The node that leads now (the live node with the highest term that says it
    /// leads), waiting up to `within` for one; None if none emerged.
    fn current_leader(&self, within: Duration) -> Option<NodeId> {
        let _ = within;
        Some(self.leader())
    }
    /// Every node's id, in order.
    fn node_ids(&self) -> Vec<NodeId> {
        vec![self.leader()]
    }
    /// Whether node `id` runs (it was not killed, or was restarted since).
    fn is_up(&self, id: NodeId) -> bool {
        let _ = id;
        true
    }
    /// Kills node `id` abruptly (as SIGKILL).
    fn kill(&self, id: NodeId) -> Result<(), TargetError> {
        Err(unsupported(id, "kill"))
    }
    /// Restarts killed node `id` from what it stored.
    fn restart(&self, id: NodeId) -> Result<(), TargetError> {
        Err(unsupported(id, "restart"))
    }
    /// Freezes node `id`'s thread for `d` (as SIGSTOP, then SIGCONT).
    fn freeze(&self, id: NodeId, d: Duration) -> Result<(), TargetError> {
        let _ = d;
        Err(unsupported(id, "freeze"))
    }
    /// Cuts `nodes` off from the other nodes at the transports (empty: heal); false if the
    /// target cannot.
    fn isolate(&self, nodes: &[NodeId]) -> bool {
        let _ = nodes;
        false
    }
    /// Node `id`'s disk fault control, if its store is wrapped.
    fn disk(&self, id: NodeId) -> Option<Arc<DiskFault>> {
        let _ = id;
        None
    }
    /// A load port that follows the leader across faults, if the target has one.
    fn live_handles(&self) -> Option<LiveHandles> {
        None
    }
    /// Asks every node to record its commit and apply events and its histograms over
    /// `[start, end)` (node processes; in process the recorder is inside the nodes).
    /// Returns the nodes that could not be armed, described.
    fn arm_recordings(&self, start: Instant, end: Instant, interval: Duration) -> Vec<String> {
        let _ = (start, end, interval);
        Vec::new()
    }
    /// Takes every node's recording and replays it into `into`, on the harness's clock.
    /// Returns the nodes whose recording was lost, described, and the events the nodes
    /// could not keep (past their cap).
    fn collect_recordings(&self, into: &NodeRecorder) -> (Vec<String>, u64) {
        let _ = into;
        (Vec::new(), 0)
    }
    /// The cluster file the nodes run from (node processes), for load processes.
    fn cluster_file(&self) -> Option<std::path::PathBuf> {
        None
    }
    /// Where the nodes run, for the summary (None in process).
    fn info(&self) -> Option<crate::harness::summary::TargetInfo> {
        None
    }
    /// Every node that died without a fault killing it, described by name: the point
    /// fails with these (node processes only; a thread in process cannot die alone).
    fn failures(&self) -> Vec<String> {
        Vec::new()
    }
    /// Each node's commit index now (node id, commit index), for catch-up targets.
    fn commit_indexes(&self) -> Vec<(NodeId, u64)> {
        Vec::new()
    }
}

fn unsupported(id: NodeId, what: &str) -> TargetError {
    TargetError::Config {
        key: "faults".into(),
        reason: format!("this target cannot {what} node {id}"),
    }
}

/// The cluster inside this process: a thread (or a shared runtime) per node.
pub struct InProcess {
    cluster: Mutex<LocalCluster>,
    /// Each node's current handle (a restart replaces one), for the following port.
    live: LiveHandles,
    emulator: Option<LinkEmulator>,
    leader: ServerHandle,
    term: u64,
    /// The nodes' files, when they keep their logs in files: removed once they stop.
    data: Option<DataDir>,
}

/// A point's data directory with what was measured on it.
struct DataDir {
    /// Removed on drop, after the cluster stopped.
    _dir: tempfile::TempDir,
    stats: SyncStatsByNode,
    floors: Vec<SyncFloor>,
}

/// Makes a fresh data directory for a point with file storage and measures the sync
/// floor in it (before any node runs, so nothing else writes to the disk meanwhile).
fn data_dir(
    c: &PointConfig,
    data_root: Option<&Path>,
) -> Result<(DataDir, FileStoreSpec), TargetError> {
    let st = &c.cluster.storage;
    let parent = st
        .dir
        .clone()
        .or_else(|| data_root.map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).map_err(|e| TargetError::Config {
        key: "cluster.storage.dir".into(),
        reason: format!("cannot make {}: {e}", parent.display()),
    })?;
    let dir = tempfile::Builder::new()
        .prefix("raftbench-data-")
        .tempdir_in(&parent)
        .map_err(|e| TargetError::Config {
            key: "cluster.storage.dir".into(),
            reason: format!(
                "cannot make a data directory under {}: {e}",
                parent.display()
            ),
        })?;
    let floors = sync_floors_in(c, dir.path())?;
    let spec = FileStoreSpec::new(dir.path(), st.sync);
    let data = DataDir {
        _dir: dir,
        stats: spec.stats.clone(),
        floors,
    };
    Ok((data, spec))
}

/// The sync floors of point `c` measured in `dir` (one writer per node, the point's own
/// concurrency, then a lone writer), when its nodes sync their logs; none otherwise.
pub fn sync_floors_in(c: &PointConfig, dir: &Path) -> Result<Vec<SyncFloor>, TargetError> {
    let st = &c.cluster.storage;
    let mut floors = Vec::new();
    if st.kind == StorageKind::File && st.floor_s > 0.0 && st.sync.is_durable() {
        // One of the point's own commands, so the floor writes records of the point's size.
        let command = CommandMaker::new(&c.workload, c.seed).next_command().len();
        for writers in [c.cluster.nodes, 1] {
            let f = crate::storage::floor::measure(
                dir,
                st.sync,
                FileStore::record_bytes(command),
                writers,
                Duration::from_secs_f64(st.floor_s),
                u64::MAX,
            )
            .map_err(|e| TargetError::Config {
                key: "cluster.storage.dir".into(),
                reason: format!("sync floor in {}: {e}", dir.display()),
            })?;
            floors.push(f);
        }
    }
    Ok(floors)
}

/// How many applied entries apart the nodes of point `c` snapshot their state machines
/// (0: never): `raft.snapshot_entries`, or, for a point whose faults restart a node or move
/// the leader, `raft.compact_threshold` when snapshots are not asked for.
///
/// Such a point must not discard log the leader cannot replace: a node that was down or
/// cut off catches up from the leader's log, and a restarted one rebuilds its state from
/// what it stored. Compacting by `compact_threshold` alone drops the prefix without a
/// snapshot to send in its place, so those points compact through snapshots instead: a
/// node behind the discarded prefix gets the leader's snapshot (InstallSnapshot), and a
/// restarted one starts from its own. A point that turned compaction off
/// (`compact_threshold = 0`) keeps its whole log.
pub fn snapshot_entries(c: &PointConfig) -> u64 {
    let faults_need_snapshots = c
        .faults
        .iter()
        .any(|f| f.restarts_a_node() || f.moves_leader());
    if c.raft.snapshot_entries == 0 && faults_need_snapshots {
        c.raft.compact_threshold
    } else {
        c.raft.snapshot_entries
    }
}

/// CPU time of this whole process so far.
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

impl InProcess {
    /// Starts the cluster that `c` describes, with `observer` inside every node, and waits
    /// for a leader (a committed write proves it leads).
    pub fn start(c: &PointConfig, observer: Arc<dyn Observer>) -> Result<InProcess, TargetError> {
        InProcess::start_in(c, observer, None)
    }

    /// As [`InProcess::start`], with file stores (if `cluster.storage` asks for them) in a
    /// fresh directory under `data_root` (default: the system's temporary directory),
    /// removed when the target stops.
    pub fn start_in(
        c: &PointConfig,
        observer: Arc<dyn Observer>,
        data_root: Option<&Path>,
    ) -> Result<InProcess, TargetError> {
        let mut spec = ClusterSpec::new(c.cluster.nodes, c.cluster.transport);
        spec.threading = c.cluster.threading;
        spec.mem_mode = c.cluster.mem_mode;
        spec.quic = c.cluster.quic.clone();
        spec.transport_settings = c.cluster.transport_settings.clone();
        spec.seed = c.seed;
        spec.raft = c.raft.clone();
        spec.observer = Some(observer);
        spec.preferred_leader = c.cluster.leader;
        spec.busy_poll = Duration::from_secs_f64(c.cluster.busy_poll_us / 1e6);
        spec.busy_poll_followers = c.cluster.busy_poll_followers;
        spec.slow_apply = c
            .cluster
            .slow_apply
            .as_ref()
            .map(|s| (s.node, Duration::from_secs_f64(s.cost_us / 1e6)));
        let net = c.network_config();
        // Link faults need the emulator in the path even while it emulates nothing yet.
        let link_faults = c.faults.iter().any(|f| f.needs_emulator());
        spec.network = (net.is_active() || link_faults).then_some(net);
        spec.restartable = c.faults.iter().any(Fault::restarts_a_node);
        spec.raft.snapshot_entries = snapshot_entries(c);
        spec.disk_faults = c.faults.iter().any(Fault::needs_disk_control);
        spec.cuttable = spec.network.is_none()
            && c.faults
                .iter()
                .any(|f| matches!(f, Fault::PartitionLeader { .. }));
        // The data directory (and the sync floor measured in it) comes before the nodes;
        // it is removed when `data` drops, also if the cluster does not start.
        let data = match c.cluster.storage.kind {
            StorageKind::Memory => None,
            StorageKind::File => {
                let (data, files) = data_dir(c, data_root)?;
                spec.file_store = Some(files);
                spec.append_order = c.cluster.storage.append_order;
                Some(data)
            }
        };
        let cluster = LocalCluster::start(spec)?;
        let within = (c.raft.election_timeout * 20).max(Duration::from_secs(5));
        let leader = find_leader(&cluster, within)?;
        if let Some(wanted) = c.cluster.leader {
            if leader.node() != wanted {
                return Err(TargetError::WrongLeader {
                    wanted,
                    got: leader.node(),
                });
            }
        }
        let term = leader.status().term;
        Ok(InProcess {
            live: Arc::new(RwLock::new(cluster.handles().to_vec())),
            emulator: cluster.emulator().cloned(),
            cluster: Mutex::new(cluster),
            leader,
            term,
            data,
        })
    }

    fn cluster(&self) -> MutexGuard<'_, LocalCluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, id: NodeId) -> Option<ServerHandle> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get((id as usize).wrapping_sub(1))
            .cloned()
    }
}

fn find_leader(cluster: &LocalCluster, within: Duration) -> Result<ServerHandle, TargetError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TargetError::Config {
            key: "runtime".into(),
            reason: e.to_string(),
        })?;
    let mut client = cluster.client();
    client.set_deadline(within);
    rt.block_on(client.put("raftbench-warmup", "x"))
        .map_err(|_| TargetError::NoLeader(within))?;
    let id = client.leader_guess();
    let h = cluster.handles()[id as usize - 1].clone();
    if h.status().role != Role::Leader {
        return Err(TargetError::NoLeader(within));
    }
    Ok(h)
}

impl Target for InProcess {
    fn leader(&self) -> NodeId {
        self.leader.node()
    }

    fn port(&self) -> LoadPort {
        LoadPort::Local(self.leader.clone())
    }

    fn epoch(&self) -> Instant {
        self.cluster().epoch()
    }

    fn counters(&self) -> Counters {
        let leader = self.leader.node();
        let mut c = Counters {
            cpu: process_cpu_time(),
            ..Counters::default()
        };
        let cluster = self.cluster();
        for h in cluster.handles() {
            let st = h.status();
            let s = &st.stats;
            c.raft_messages +=
                s.append_messages() + s.append_responses + s.vote_requests + s.vote_responses;
            c.snapshots_installed += s.snapshots_installed;
            c.snapshot_chunks += s.snapshot_chunks;
            if h.node() == leader {
                c.leader_appends = s.append_messages();
                c.leader_heartbeats = s.heartbeats;
                c.leader_notices = s.commit_notices;
            }
        }
        let mut quic: Vec<quinn::ConnectionStats> = Vec::new();
        for t in cluster.transports() {
            c.wire_bytes += t.stats().bytes_sent;
            quic.extend(t.quic_connection_stats());
        }
        if let Some(d) = &self.data {
            let stats = d.stats.lock().unwrap_or_else(|p| p.into_inner());
            c.syncs = stats.iter().map(|(id, s)| (*id, s.snapshot())).collect();
        }
        c.quic = (!quic.is_empty()).then(|| QuicStats::sum(&quic));
        c
    }

    fn sync_floors(&self) -> Vec<SyncFloor> {
        self.data
            .as_ref()
            .map(|d| d.floors.clone())
            .unwrap_or_default()
    }

    fn stall_leader(&self, d: Duration) {
        self.leader.stall(d);
    }

    fn emulator(&self) -> Option<&LinkEmulator> {
        self.emulator.as_ref()
    }

    fn check_leader(&self) -> Result<(), TargetError> {
        let st = self.leader.status();
        if st.role == Role::Leader && st.term == self.term {
            return Ok(());
        }
        Err(TargetError::LeaderMoved {
            from: self.leader.node(),
            term: self.term,
            now: format!("{:?} in term {}", st.role, st.term),
        })
    }

    fn stop(self: Box<Self>) {
        let InProcess { cluster, data, .. } = *self;
        cluster
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .shutdown();
        // The nodes' files go only once every node has stopped.
        drop(data);
    }

    fn current_leader(&self, within: Duration) -> Option<NodeId> {
        let until = Instant::now() + within;
        loop {
            let handles = self.live.read().unwrap_or_else(|p| p.into_inner()).clone();
            let best = handles
                .iter()
                .filter(|h| !h.is_closed())
                .map(|h| h.status())
                .filter(|s| s.role == Role::Leader)
                .max_by_key(|s| s.term);
            if let Some(s) = best {
                return Some(s.id);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(ServerHandle::node)
            .collect()
    }

    fn is_up(&self, id: NodeId) -> bool {
        self.cluster().is_up(id)
    }

    fn kill(&self, id: NodeId) -> Result<(), TargetError> {
        self.cluster().kill(id)?;
        Ok(())
    }

    fn restart(&self, id: NodeId) -> Result<(), TargetError> {
        let mut cluster = self.cluster();
        cluster.restart(id)?;
        let fresh = cluster.handles()[id as usize - 1].clone();
        self.live.write().unwrap_or_else(|p| p.into_inner())[id as usize - 1] = fresh;
        Ok(())
    }

    fn freeze(&self, id: NodeId, d: Duration) -> Result<(), TargetError> {
        let h = self.handle(id).ok_or_else(|| unsupported(id, "find"))?;
        h.stall(d);
        Ok(())
    }

    fn isolate(&self, nodes: &[NodeId]) -> bool {
        self.cluster().isolate(nodes)
    }

    fn disk(&self, id: NodeId) -> Option<Arc<DiskFault>> {
        self.cluster().disk(id)
    }

    fn live_handles(&self) -> Option<LiveHandles> {
        Some(self.live.clone())
    }

    fn commit_indexes(&self) -> Vec<(NodeId, u64)> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|h| !h.is_closed())
            .map(|h| (h.node(), h.status().commit_index))
            .collect()
    }
}
