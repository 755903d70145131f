//! An in-process cluster: N servers over QUIC, TCP or memory, each on its own thread with
//! a current-thread runtime (or all on one shared runtime), and a client that finds the
//! leader, follows redirects and retries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::kv::{Command, KvStore, Output};
use crate::netem::{EmulatorError, Endpoint, LinkEmulator, NetworkConfig};
use crate::raft::{Config, LogStore, MemStore, Membership, NodeId};
use crate::redirect::{Failure, Redirects};
use crate::server::AppendOrder;
use crate::server::{ClientError, Observer, Reply, Server, ServerError, ServerHandle, ServerParts};
use crate::shutdown::ShutdownController;
use crate::storage::{DiskFault, FaultyStore, FileStore, SharedMemStore, SyncPolicy, SyncStats};
use crate::tls::{self, NodeIdentity};
use crate::transport::{
    self, BindSpec, MemMode, MemNetwork, QuicSettings, StatsSnapshot, Transport, TransportError,
    TransportKind, TransportSettings,
};

/// How the nodes of an in-process cluster are spread over threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threading {
    /// A thread with a current-thread tokio runtime per node: a node's transport and driver
    /// share a thread, so a message crosses threads only between nodes (see README).
    #[default]
    PerNode,
    /// One multi-thread runtime for every node; tokio moves tasks between its workers.
    Shared,
}

/// What to build.
#[derive(Clone)]
pub struct ClusterSpec {
    /// Number of nodes (ids 1..=nodes).
    pub nodes: usize,
    /// The transport between nodes.
    pub transport: TransportKind,
    /// Encode messages even in memory (only for `TransportKind::Mem`).
    pub mem_mode: MemMode,
    /// The core's knobs, the same for every node.
    pub raft: Config,
    /// QUIC parameters (only for `TransportKind::Quic`).
    pub quic: QuicSettings,
    /// Queue and frame limits of the network transports.
    pub transport_settings: TransportSettings,
    /// Thread arrangement.
    pub threading: Threading,
    /// Master seed; node i's core gets `seed + i`.
    pub seed: u64,
    /// Where timestamps go.
    pub observer: Option<Arc<dyn Observer>>,
    /// A node that should win the first election: its election timeout is halved, so
    /// that (while the heartbeat is under a quarter of the timeout) it always times out
    /// first. It holds no other privilege: if it fails, another node leads.
    pub preferred_leader: Option<NodeId>,
    /// A node whose state machine takes this long per applied entry (an experiment knob).
    pub slow_apply: Option<(NodeId, Duration)>,
    /// Where nodes persist: None keeps every log in memory (the default).
    pub file_store: Option<FileStoreSpec>,
    /// When a leader sends entries it has not made durable yet.
    pub append_order: AppendOrder,
    /// How long a node's driver polls for input before parking its thread
    /// ([`Server::with_busy_poll`]; zero, the default: it parks at once).
    pub busy_poll: Duration,
    /// Whether followers poll too (else only the leader).
    pub busy_poll_followers: bool,
    /// Link emulation. None (default): no emulator in any path. Some: every transport and
    /// the cluster's client go through one [`LinkEmulator`], even if the config emulates
    /// nothing yet (so that faults can change links during the run).
    pub network: Option<NetworkConfig>,
    /// Nodes can be killed and restarted ([`LocalCluster::kill`]): with memory storage each
    /// node's store is kept by the cluster, as a disk keeps its files, so that a restarted
    /// node finds its vote and its log. Needs per-node threading.
    pub restartable: bool,
    /// Each node's store is wrapped so that its syncs can be slowed or its disk filled
    /// during the run ([`LocalCluster::disk`]).
    pub disk_faults: bool,
    /// Each node's transport can drop everything to and from chosen nodes
    /// ([`LocalCluster::isolate`]): a partition without the link emulator.
    pub cuttable: bool,
}

/// Durable logs for an in-process cluster: node N keeps a [`FileStore`] in `dir/node-N`,
/// with group commit.
#[derive(Clone, Debug)]
pub struct FileStoreSpec {
    /// The directory the nodes' directories go under.
    pub dir: std::path::PathBuf,
    /// How far appends are pushed before they count as durable.
    pub sync: SyncPolicy,
    /// Each node's sync counters and latency histogram, filled in as the nodes open their
    /// stores: keep a clone of this to read them while the cluster runs.
    pub stats: SyncStatsByNode,
}

/// Each node's [`SyncStats`], by node id.
pub type SyncStatsByNode =
    Arc<std::sync::Mutex<std::collections::BTreeMap<NodeId, Arc<SyncStats>>>>;

impl FileStoreSpec {
    /// File stores under `dir` with `sync`, and an empty stats map.
    pub fn new(dir: impl Into<std::path::PathBuf>, sync: SyncPolicy) -> FileStoreSpec {
        FileStoreSpec {
            dir: dir.into(),
            sync,
            stats: SyncStatsByNode::default(),
        }
    }
}

impl ClusterSpec {
    /// A spec with default knobs for `nodes` nodes over `transport`.
    pub fn new(nodes: usize, transport: TransportKind) -> ClusterSpec {
        ClusterSpec {
            nodes,
            transport,
            mem_mode: MemMode::Move,
            raft: Config::default(),
            quic: QuicSettings::default(),
            transport_settings: TransportSettings::default(),
            threading: Threading::PerNode,
            seed: 1,
            observer: None,
            preferred_leader: None,
            slow_apply: None,
            file_store: None,
            append_order: AppendOrder::default(),
            busy_poll: Duration::ZERO,
            busy_poll_followers: false,
            network: None,
            restartable: false,
            disk_faults: false,
            cuttable: false,
        }
    }
}

/// Why a cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Certificates could not be made.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A transport could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A server refused its configuration.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The network emulation could not start (the message names the key at fault).
    #[error(transparent)]
    Network(#[from] EmulatorError),
    /// A node thread or runtime failed to start.
    #[error("node {0} failed to start: {1}")]
    Start(NodeId, String),
    /// A fault could not be applied to a node (it is not restartable, or is already down).
    #[error("node {0}: {1}")]
    Fault(NodeId, String),
}

/// One running node, from the cluster's side.
struct NodeSlot {
    id: NodeId,
    stop: Option<oneshot::Sender<()>>,
    /// Ends the node at once, without a graceful shutdown.
    kill: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<KvStore>>,
    thread: Option<JoinHandle<()>>,
}

/// A running in-process cluster. Dropping it without [`LocalCluster::shutdown`] still stops
/// every node, but does not wait for them.
pub struct LocalCluster {
    handles: Vec<ServerHandle>,
    transports: Vec<Arc<dyn Transport>>,
    slots: Vec<NodeSlot>,
    runtime: Option<tokio::runtime::Runtime>,
    epoch: Instant,
    emulator: Option<LinkEmulator>,
    /// What a restarted node is started with again.
    restart: RestartInfo,
}

/// What a node needs to start again after a kill: the same identity, address and peers,
/// and its "disk".
struct RestartInfo {
    spec: ClusterSpec,
    identities: Option<Vec<NodeIdentity>>,
    mem: Option<MemNetwork>,
    addrs: HashMap<NodeId, SocketAddr>,
    disks: Vec<Arc<DiskFault>>,
    mem_disks: Vec<SharedMemStore>,
    isolated: Arc<AtomicU64>,
}

/// A started node's handle and transport, as its thread reports them.
type StartedNode = (ServerHandle, Arc<dyn Transport>);

/// What each node task needs to start.
struct NodeStart {
    id: NodeId,
    /// Where to bind (port 0 at first; the same address again on a restart).
    addr: SocketAddr,
    /// Wait for a connection to every peer before serving (at first start only).
    wait_peers: bool,
    kill_rx: oneshot::Receiver<()>,
    disk: Option<Arc<DiskFault>>,
    mem_disk: Option<SharedMemStore>,
    isolated: Option<Arc<AtomicU64>>,
    spec: ClusterSpec,
    identity: Option<NodeIdentity>,
    mem: Option<MemNetwork>,
    emulator: Option<LinkEmulator>,
    epoch: Instant,
    addr_tx: std_mpsc::Sender<Result<(NodeId, SocketAddr), ClusterError>>,
    peers_rx: oneshot::Receiver<HashMap<NodeId, SocketAddr>>,
    ready_tx: std_mpsc::Sender<Result<StartedNode, ClusterError>>,
    stop_rx: oneshot::Receiver<()>,
    done_tx: oneshot::Sender<KvStore>,
}

impl LocalCluster {
    /// Starts every node and waits until each has connected to all its peers.
    pub fn start(spec: ClusterSpec) -> Result<LocalCluster, ClusterError> {
        let ids: Vec<NodeId> = (1..=spec.nodes as NodeId).collect();
        let identities = match spec.transport {
            TransportKind::Quic => Some(tls::generate_cluster(&ids)?.1),
            _ => None,
        };
        let emulator = match &spec.network {
            Some(net) => {
                net.check_nodes(spec.nodes).map_err(EmulatorError::from)?;
                Some(LinkEmulator::new(net.clone(), spec.seed)?)
            }
            None => None,
        };
        let mem = (spec.transport == TransportKind::Mem)
            .then(|| MemNetwork::with_emulator(spec.mem_mode, emulator.clone()));
        let epoch = Instant::now();
        let runtime = match spec.threading {
            Threading::Shared => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("raftbench-node")
                    .build()
                    .map_err(|e| ClusterError::Start(0, e.to_string()))?,
            ),
            Threading::PerNode => None,
        };

        if spec.restartable && spec.threading == Threading::Shared {
            return Err(ClusterError::Fault(
                0,
                "restartable nodes need per-node threading".into(),
            ));
        }
        let disks: Vec<Arc<DiskFault>> = ids.iter().map(|_| Arc::default()).collect();
        let mem_disks: Vec<SharedMemStore> = ids.iter().map(|_| Default::default()).collect();
        let isolated = Arc::new(AtomicU64::new(0));
        let (addr_tx, addr_rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let mut peers_txs = Vec::new();
        let mut slots = Vec::new();
        for &id in &ids {
            let (peers_tx, peers_rx) = oneshot::channel();
            let (stop_tx, stop_rx) = oneshot::channel();
            let (kill_tx, kill_rx) = oneshot::channel();
            let (done_tx, done_rx) = oneshot::channel();
            peers_txs.push(peers_tx);
            let i = id as usize - 1;
            let start = NodeStart {
                id,
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                wait_peers: true,
                kill_rx,
                disk: spec.disk_faults.then(|| disks[i].clone()),
                mem_disk: (spec.restartable && spec.file_store.is_none())
                    .then(|| mem_disks[i].clone()),
                isolated: spec.cuttable.then(|| isolated.clone()),
                spec: spec.clone(),
                identity: identities.as_ref().map(|v| v[id as usize - 1].clone()),
                mem: mem.clone(),
                emulator: emulator.clone(),
                epoch,
                addr_tx: addr_tx.clone(),
                peers_rx,
                ready_tx: ready_tx.clone(),
                stop_rx,
                done_tx,
            };
            let thread = spawn_node(start, runtime.as_ref())?;
            slots.push(NodeSlot {
                id,
                stop: Some(stop_tx),
                kill: Some(kill_tx),
                done: Some(done_rx),
                thread,
            });
        }
        drop(addr_tx);
        drop(ready_tx);

        let mut addrs = HashMap::new();
        for _ in &ids {
            let (id, addr) = recv_start(&addr_rx)??;
            addrs.insert(id, addr);
        }
        for (tx, &id) in peers_txs.into_iter().zip(&ids) {
            let mut peers = addrs.clone();
            peers.remove(&id);
            let _ = tx.send(peers);
        }
        let mut started = Vec::new();
        for _ in &ids {
            started.push(recv_start(&ready_rx)??);
        }
        started.sort_by_key(|(h, _)| h.node());
        let (handles, transports) = started.into_iter().unzip();
        Ok(LocalCluster {
            handles,
            transports,
            slots,
            runtime,
            epoch,
            emulator: emulator.clone(),
            restart: RestartInfo {
                spec,
                identities,
                mem,
                addrs,
                disks,
                mem_disks,
                isolated,
            },
        })
    }

    /// Kills node `id` at once, as SIGKILL would kill its process: no graceful shutdown,
    /// nothing more sent, requests in flight never answered. What it stored survives (its
    /// file store's directory, or with memory storage the store the cluster keeps for it).
    /// Needs [`ClusterSpec::restartable`].
    pub fn kill(&mut self, id: NodeId) -> Result<(), ClusterError> {
        if !self.restart.spec.restartable {
            return Err(ClusterError::Fault(
                id,
                "the cluster was not started restartable".into(),
            ));
        }
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| ClusterError::Fault(id, "no such node".into()))?;
        let Some(kill) = slot.kill.take() else {
            return Err(ClusterError::Fault(id, "is already down".into()));
        };
        let _ = kill.send(());
        slot.stop = None;
        slot.done = None;
        if let Some(t) = slot.thread.take() {
            // The node's runtime is dropped with its thread: every task of the node, its
            // transport's included, ends where it stands.
            let _ = t.join();
        }
        // Only now, with its runtime gone, may the transport's endpoint be dropped: closing
        // it earlier would tell the peers goodbye, which a killed process cannot.
        self.transports[id as usize - 1] = Arc::new(DeadTransport(id));
        Ok(())
    }

    /// Starts node `id` again after [`LocalCluster::kill`], on the same address, from what
    /// it stored; returns once it serves (it does not wait for its peers).
    pub fn restart(&mut self, id: NodeId) -> Result<(), ClusterError> {
        let i = id as usize - 1;
        if self.slots.get(i).is_none_or(|s| s.kill.is_some()) {
            return Err(ClusterError::Fault(id, "is not down".into()));
        }
        let info = &self.restart;
        let (addr_tx, _addr_rx) = std_mpsc::channel();
        let (peers_tx, peers_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (kill_tx, kill_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let mut peers = info.addrs.clone();
        peers.remove(&id);
        let _ = peers_tx.send(peers);
        let start = NodeStart {
            id,
            addr: info.addrs[&id],
            wait_peers: false,
            kill_rx,
            disk: info.spec.disk_faults.then(|| info.disks[i].clone()),
            mem_disk: info
                .spec
                .file_store
                .is_none()
                .then(|| info.mem_disks[i].clone()),
            isolated: info.spec.cuttable.then(|| info.isolated.clone()),
            spec: info.spec.clone(),
            identity: info.identities.as_ref().map(|v| v[i].clone()),
            mem: info.mem.clone(),
            emulator: self.emulator.clone(),
            epoch: self.epoch,
            addr_tx,
            peers_rx,
            ready_tx,
            stop_rx,
            done_tx,
        };
        let thread = spawn_node(start, self.runtime.as_ref())?;
        let slot = &mut self.slots[i];
        slot.thread = thread;
        slot.stop = Some(stop_tx);
        slot.kill = Some(kill_tx);
        slot.done = Some(done_rx);
        let (handle, transport) = recv_start(&ready_rx)??;
        self.handles[i] = handle;
        self.transports[i] = transport;
        Ok(())
    }

    /// Whether node `id` is running (not killed, or restarted since).
    pub fn is_up(&self, id: NodeId) -> bool {
        self.slots
            .get(id as usize - 1)
            .is_some_and(|s| s.kill.is_some())
    }

    /// Node `id`'s disk fault control, if the cluster was started with
    /// [`ClusterSpec::disk_faults`].
    pub fn disk(&self, id: NodeId) -> Option<Arc<DiskFault>> {
        if !self.restart.spec.disk_faults {
            return None;
        }
        self.restart.disks.get(id as usize - 1).cloned()
    }

    /// Cuts `nodes` off from every other node (both ways), or heals with an empty list.
    /// Needs [`ClusterSpec::cuttable`]; false without it.
    pub fn isolate(&self, nodes: &[NodeId]) -> bool {
        let mask = nodes.iter().fold(0u64, |m, &n| m | (1u64 << (n % 64)));
        self.restart.isolated.store(mask, Ordering::Relaxed);
        self.restart.spec.cuttable
    }

    /// The cluster's link emulator, if [`ClusterSpec::network`] was set: timed link changes,
    /// partitions, and the delivery-error histogram.
    pub fn emulator(&self) -> Option<&LinkEmulator> {
        self.emulator.as_ref()
    }

    /// The clock origin of every node's timestamps.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// A handle per node, in id order.
    pub fn handles(&self) -> &[ServerHandle] {
        &self.handles
    }

    /// Each node's transport (for its counters), in id order.
    pub fn transports(&self) -> &[Arc<dyn Transport>] {
        &self.transports
    }

    /// A client that finds the leader by itself.
    pub fn client(&self) -> ClusterClient {
        ClusterClient::new(self.handles.clone()).with_emulator(self.emulator.clone())
    }

    /// Stops every node and waits for it; returns each node's final key-value store.
    pub fn shutdown(mut self) -> Vec<KvStore> {
        let mut stores = Vec::new();
        for slot in &mut self.slots {
            if let Some(stop) = slot.stop.take() {
                let _ = stop.send(());
            }
        }
        for slot in &mut self.slots {
            if let Some(t) = slot.thread.take() {
                let _ = t.join();
            }
            let kv = slot.done.take().and_then(|mut rx| {
                // The node has finished (its thread is joined) or finishes on the shared runtime.
                for _ in 0..500 {
                    match rx.try_recv() {
                        Ok(kv) => return Some(kv),
                        Err(oneshot::error::TryRecvError::Empty) => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(_) => return None,
                    }
                }
                None
            });
            if kv.is_none() && slot.kill.is_some() {
                tracing::warn!(node = slot.id, "node did not report its final state");
            }
            stores.push(kv.unwrap_or_default());
        }
        self.transports.clear();
        self.handles.clear();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        stores
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(stop) = slot.stop.take() {
                let _ = stop.send(());
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn recv_start<T>(rx: &std_mpsc::Receiver<T>) -> Result<T, ClusterError> {
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| ClusterError::Start(0, "a node did not start within 30 s".into()))
}

/// Starts a node on its own thread, or as a task of the shared runtime.
fn spawn_node(
    start: NodeStart,
    runtime: Option<&tokio::runtime::Runtime>,
) -> Result<Option<JoinHandle<()>>, ClusterError> {
    let id = start.id;
    Ok(match runtime {
        Some(rt) => {
            rt.spawn(node_main(start));
            None
        }
        None => Some(
            std::thread::Builder::new()
                .name(format!("raftbench-node-{id}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime builds");
                    rt.block_on(node_main(start));
                })
                .map_err(|e| ClusterError::Start(id, e.to_string()))?,
        ),
    })
}

/// The transport of a killed node, until it restarts: counts nothing, sends nothing.
struct DeadTransport(NodeId);

impl Transport for DeadTransport {
    fn local_id(&self) -> NodeId {
        self.0
    }
    fn send(&self, _msg: crate::raft::Message) {}
    fn watch_connected(&self, _peer: NodeId) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }
    fn stats(&self) -> StatsSnapshot {
        StatsSnapshot::default()
    }
}

/// A transport that drops every message from or to an isolated node (a bit per node id in
/// `isolated`): a partition made at the senders, for clusters without the link emulator.
struct CutTransport {
    inner: Arc<dyn Transport>,
    isolated: Arc<AtomicU64>,
}

impl Transport for CutTransport {
    fn local_id(&self) -> NodeId {
        self.inner.local_id()
    }
    fn send(&self, msg: crate::raft::Message) {
        let cut = self.isolated.load(Ordering::Relaxed);
        let bit = |n: NodeId| 1u64 << (n % 64);
        if cut != 0 && (cut & bit(self.inner.local_id()) != 0 || cut & bit(msg.to) != 0) {
            return;
        }
        self.inner.send(msg)
    }
    fn watch_connected(&self, peer: NodeId) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.inner.watch_connected(peer)
    }
    fn stats(&self) -> StatsSnapshot {
        self.inner.stats()
    }
}

async fn node_main(s: NodeStart) {
    let id = s.id;
    let spec = &s.spec;
    let bound = transport::bind(BindSpec {
        kind: spec.transport,
        id,
        addr: s.addr,
        identity: s.identity.as_ref(),
        quic: &spec.quic,
        settings: spec.transport_settings.clone(),
        emulator: s.emulator.as_ref(),
        mem: s.mem.as_ref(),
    })
    .await;
    let bound = match bound {
        Ok(b) => b,
        Err(e) => {
            let _ = s.addr_tx.send(Err(e.into()));
            return;
        }
    };
    let _ = s.addr_tx.send(Ok((id, bound.local_addr())));
    let Ok(peers) = s.peers_rx.await else { return };
    let (transport, inbox) = bound.start(peers.clone());
    if s.wait_peers {
        for &peer in peers.keys() {
            crate::transport::wait_connected(transport.as_ref(), peer).await;
        }
    }
    let transport: Arc<dyn Transport> = match s.isolated {
        Some(isolated) => Arc::new(CutTransport {
            inner: transport,
            isolated,
        }),
        None => transport,
    };
    let voters: Vec<NodeId> = (1..=spec.nodes as NodeId).collect();
    let raft = node_config(spec, id);
    let file_store = spec.file_store.clone();
    let disk = s.disk;
    let mem_disk = s.mem_disk;
    let s = Serving {
        id,
        spec: s.spec,
        epoch: s.epoch,
        ready_tx: s.ready_tx,
        stop_rx: s.stop_rx,
        kill_rx: s.kill_rx,
        done_tx: s.done_tx,
    };
    let members = Membership::new(id, voters);
    match (file_store, mem_disk) {
        (None, None) => serve_on(s, members, raft, MemStore::new(), disk, transport, inbox).await,
        (None, Some(d)) => serve_on(s, members, raft, d, disk, transport, inbox).await,
        (Some(f), _) => match FileStore::open(&f.dir.join(format!("node-{id}")), f.sync) {
            Ok(store) => {
                f.stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, store.sync_stats());
                serve_on(s, members, raft, store, disk, transport, inbox).await
            }
            Err(e) => {
                let _ = s.ready_tx.send(Err(ClusterError::Start(id, e.to_string())));
            }
        },
    }
}

/// What a node task keeps once its transport is up.
struct Serving {
    id: NodeId,
    spec: ClusterSpec,
    epoch: Instant,
    ready_tx: std_mpsc::Sender<Result<StartedNode, ClusterError>>,
    stop_rx: oneshot::Receiver<()>,
    kill_rx: oneshot::Receiver<()>,
    done_tx: oneshot::Sender<KvStore>,
}

/// Runs a node's server on `store`, behind a disk-fault wrapper if `disk` is given.
async fn serve_on<S: LogStore + Send + 'static>(
    s: Serving,
    members: Membership,
    raft: Config,
    store: S,
    disk: Option<Arc<DiskFault>>,
    transport: Arc<dyn Transport>,
    inbox: crate::transport::Inbound,
) {
    match disk {
        Some(d) => {
            serve(
                s,
                members,
                raft,
                FaultyStore::new(store, d),
                transport,
                inbox,
            )
            .await
        }
        None => serve(s, members, raft, store, transport, inbox).await,
    }
}

/// Runs a node's server on `store` until the cluster stops it.
async fn serve<S: LogStore + Send + 'static>(
    s: Serving,
    members: Membership,
    raft: Config,
    store: S,
    transport: Arc<dyn Transport>,
    inbox: crate::transport::Inbound,
) {
    let spec = &s.spec;
    let parts = ServerParts {
        members,
        raft,
        seed: spec.seed.wrapping_add(s.id),
        epoch: s.epoch,
        store,
        transport: transport.clone(),
        inbox,
        observer: spec.observer.clone(),
    };
    let (server, handle) = match Server::new(parts) {
        Ok(x) => x,
        Err(e) => {
            let _ = s.ready_tx.send(Err(e.into()));
            return;
        }
    };
    let cost = match spec.slow_apply {
        Some((node, cost)) if node == s.id => cost,
        _ => Duration::ZERO,
    };
    let server = server
        .with_append_order(spec.append_order)
        .with_apply_cost(cost)
        .with_busy_poll(spec.busy_poll, spec.busy_poll_followers);
    let ctl = ShutdownController::new();
    let task = tokio::spawn(server.run(ctl.subscribe()));
    let _ = s.ready_tx.send(Ok((handle, transport.clone())));
    tokio::select! {
        biased;
        // Killed: return at once; the runtime's end drops the server task where it stands.
        Ok(()) = s.kill_rx => return,
        _ = s.stop_rx => {}
    }
    ctl.shutdown().await;
    let kv = task.await.unwrap_or_default();
    drop(transport);
    let _ = s.done_tx.send(kv);
}

/// Node `id`'s knobs: the cluster's, with the preferred leader's election timeout halved.
fn node_config(spec: &ClusterSpec, id: NodeId) -> Config {
    let mut c = spec.raft.clone();
    if spec.preferred_leader == Some(id) {
        let halved = c.election_timeout / 2;
        if halved > c.heartbeat_interval {
            c.election_timeout = halved;
        }
    }
    c
}

/// A client of an in-process cluster: sends to the leader it believes in, follows
/// redirects, and retries what is retryable until a deadline.
#[derive(Clone)]
pub struct ClusterClient {
    handles: Vec<ServerHandle>,
    redirects: Redirects,
    emulator: Option<LinkEmulator>,
}

impl ClusterClient {
    /// A client of the servers behind `handles`, giving up on a call after 10 s.
    pub fn new(handles: Vec<ServerHandle>) -> ClusterClient {
        let members = handles.iter().map(ServerHandle::node).collect();
        ClusterClient {
            handles,
            redirects: Redirects::new(members, Duration::from_secs(10)),
            emulator: None,
        }
    }

    /// How long one call keeps retrying before it gives up.
    pub fn set_deadline(&mut self, d: Duration) {
        self.redirects.deadline = d;
    }

    /// Sends every call across `emulator`'s links between [`Endpoint::Client`] and the
    /// node called (delay, jitter, bandwidth, partitions; the client path is a reliable
    /// stream, so no loss). None: calls go straight to the node.
    pub fn with_emulator(mut self, emulator: Option<LinkEmulator>) -> ClusterClient {
        self.emulator = emulator;
        self
    }

    /// The node the client currently sends to.
    pub fn leader_guess(&self) -> NodeId {
        self.redirects.current()
    }

    /// Runs `cmd` on the cluster, retrying through leader changes ([`crate::redirect`]).
    pub async fn call(&mut self, cmd: &Command) -> Reply {
        self.redirects.start();
        loop {
            let r = self.submit_once(cmd).await;
            let failure = match &r {
                Ok(_) | Err(ClientError::BadCommand(_)) => return r,
                Err(ClientError::NotLeader { leader }) => Failure::NotLeader(*leader),
                Err(ClientError::LeadershipLost)
                | Err(ClientError::ShuttingDown)
                | Err(ClientError::Overloaded) => Failure::Unavailable,
            };
            match self.redirects.failed(failure) {
                None => return r,
                Some(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
                Some(_) => {}
            }
        }
    }

    /// One attempt at the current guess, across the emulated client links if any.
    async fn submit_once(&self, cmd: &Command) -> Reply {
        let node = self.redirects.current();
        let handle = self.handles.iter().find(|h| h.node() == node);
        let handle = handle.expect("members are the handles' nodes");
        let Some(emu) = &self.emulator else {
            return handle.submit(cmd).await;
        };
        let node = Endpoint::Node(handle.node());
        // A cut link looks like a node that does not answer: the caller's retry loop
        // moves on after its backoff.
        if !emu.transit(Endpoint::Client, node, cmd.encoded_len()).await {
            return Err(ClientError::NotLeader { leader: None });
        }
        let r = handle.submit(cmd).await;
        // Replies are small; their size matters only on a bandwidth-limited link.
        if !emu.transit(node, Endpoint::Client, 64).await {
            return Err(ClientError::NotLeader { leader: None });
        }
        r
    }

    /// Stores `value` under `key`.
    pub async fn put(
        &mut self,
        key: impl Into<bytes::Bytes>,
        value: impl Into<bytes::Bytes>,
    ) -> Result<(), ClientError> {
        self.call(&Command::Put {
            key: key.into(),
            value: value.into(),
        })
        .await
        .map(|_| ())
    }

    /// Reads the value under `key`, through the log.
    pub async fn get(
        &mut self,
        key: impl Into<bytes::Bytes>,
    ) -> Result<Option<bytes::Bytes>, ClientError> {
        match self.call(&Command::Get { key: key.into() }).await? {
            Output::Value(v) => Ok(v),
            Output::Done => Ok(None),
        }
    }
}
