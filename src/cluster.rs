//! An in-process cluster: N servers over QUIC, TCP or memory, each on its own thread with
//! a current-thread runtime (or all on one shared runtime), and a client that finds the
//! leader, follows redirects and retries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::kv::{Command, KvStore, Output};
use crate::netem::{EmulatorError, Endpoint, LinkEmulator, NetworkConfig};
use crate::raft::{Config, MemStore, NodeId};
use crate::server::{ClientError, Observer, Reply, Server, ServerError, ServerHandle, ServerParts};
use crate::shutdown::ShutdownController;
use crate::tls::{self, NodeIdentity};
use crate::transport::{
    MemMode, MemNetwork, QuicSettings, QuicTransport, TcpTransport, Transport, TransportError,
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
    /// The core's knobs; `id` and `voters` are filled in per node.
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
    /// Link emulation. None (default): no emulator in any path. Some: every transport and
    /// the cluster's client go through one [`LinkEmulator`], even if the config emulates
    /// nothing yet (so that faults can change links during the run).
    pub network: Option<NetworkConfig>,
}

impl ClusterSpec {
    /// A spec with default knobs for `nodes` nodes over `transport`.
    pub fn new(nodes: usize, transport: TransportKind) -> ClusterSpec {
        ClusterSpec {
            nodes,
            transport,
            mem_mode: MemMode::Move,
            raft: Config::new(1, vec![1]),
            quic: QuicSettings::default(),
            transport_settings: TransportSettings::default(),
            threading: Threading::PerNode,
            seed: 1,
            observer: None,
            network: None,
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
}

/// One running node, from the cluster's side.
struct NodeSlot {
    id: NodeId,
    stop: Option<oneshot::Sender<()>>,
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
}

/// A started node's handle and transport, as its thread reports them.
type StartedNode = (ServerHandle, Arc<dyn Transport>);

/// What each node task needs to start.
struct NodeStart {
    id: NodeId,
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

enum Binding {
    Quic(crate::transport::QuicBinding),
    Tcp(crate::transport::TcpBinding),
    Mem,
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

        let (addr_tx, addr_rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let mut peers_txs = Vec::new();
        let mut slots = Vec::new();
        for &id in &ids {
            let (peers_tx, peers_rx) = oneshot::channel();
            let (stop_tx, stop_rx) = oneshot::channel();
            let (done_tx, done_rx) = oneshot::channel();
            peers_txs.push(peers_tx);
            let start = NodeStart {
                id,
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
            let thread = match &runtime {
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
            };
            slots.push(NodeSlot {
                id,
                stop: Some(stop_tx),
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
            emulator,
        })
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
            if kv.is_none() {
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

async fn node_main(s: NodeStart) {
    let id = s.id;
    let spec = &s.spec;
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let binding = match spec.transport {
        TransportKind::Quic => QuicTransport::bind_emulated(
            s.identity.as_ref().expect("QUIC nodes have identities"),
            addr,
            &spec.quic,
            spec.transport_settings.clone(),
            s.emulator.as_ref(),
        )
        .map(Binding::Quic),
        TransportKind::Tcp => TcpTransport::bind(id, addr, spec.transport_settings.clone())
            .await
            .map(|b| Binding::Tcp(b.with_emulator(s.emulator.clone()))),
        TransportKind::Mem => Ok(Binding::Mem),
    };
    let binding = match binding {
        Ok(b) => b,
        Err(e) => {
            let _ = s.addr_tx.send(Err(e.into()));
            return;
        }
    };
    let local = match &binding {
        Binding::Quic(b) => b.local_addr(),
        Binding::Tcp(b) => b.local_addr(),
        Binding::Mem => addr,
    };
    let _ = s.addr_tx.send(Ok((id, local)));
    let Ok(peers) = s.peers_rx.await else { return };
    let (transport, inbox): (Arc<dyn Transport>, _) = match binding {
        Binding::Quic(b) => {
            let (t, i) = b.start(peers.clone());
            (Arc::new(t), i)
        }
        Binding::Tcp(b) => {
            let (t, i) = b.start(peers.clone());
            (Arc::new(t), i)
        }
        Binding::Mem => {
            let (t, i) = s
                .mem
                .as_ref()
                .expect("memory nodes share a network")
                .join(id, spec.transport_settings.inbound_queue);
            (Arc::new(t), i)
        }
    };
    for &peer in peers.keys() {
        crate::transport::wait_connected(transport.as_ref(), peer).await;
    }
    let voters: Vec<NodeId> = (1..=spec.nodes as NodeId).collect();
    let mut raft = spec.raft.clone();
    raft.id = id;
    raft.voters = voters;
    let parts = ServerParts {
        raft,
        seed: spec.seed.wrapping_add(id),
        epoch: s.epoch,
        store: MemStore::new(),
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
    let ctl = ShutdownController::new();
    let task = tokio::spawn(server.run(ctl.subscribe()));
    let _ = s.ready_tx.send(Ok((handle, transport.clone())));
    let _ = s.stop_rx.await;
    ctl.shutdown().await;
    let kv = task.await.unwrap_or_default();
    drop(transport);
    let _ = s.done_tx.send(kv);
}

/// A client of an in-process cluster: sends to the leader it believes in, follows
/// redirects, and retries what is retryable until a deadline.
#[derive(Clone)]
pub struct ClusterClient {
    handles: Vec<ServerHandle>,
    leader: usize,
    emulator: Option<LinkEmulator>,
    /// How long one call keeps retrying before it gives up.
    pub deadline: Duration,
}

impl ClusterClient {
    /// A client of the servers behind `handles`.
    pub fn new(handles: Vec<ServerHandle>) -> ClusterClient {
        ClusterClient {
            handles,
            leader: 0,
            emulator: None,
            deadline: Duration::from_secs(10),
        }
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
        self.handles[self.leader].node()
    }

    /// Runs `cmd` on the cluster, retrying through leader changes.
    pub async fn call(&mut self, cmd: &Command) -> Reply {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(1);
        loop {
            let r = self.submit_once(cmd).await;
            let retry = match &r {
                Ok(_) | Err(ClientError::BadCommand(_)) => return r,
                Err(ClientError::NotLeader { leader: Some(l) }) => {
                    if let Some(i) = self.handles.iter().position(|h| h.node() == *l) {
                        self.leader = i;
                    }
                    // A redirect to a known leader is worth trying at once.
                    Duration::ZERO
                }
                Err(ClientError::NotLeader { leader: None })
                | Err(ClientError::LeadershipLost)
                | Err(ClientError::ShuttingDown) => {
                    self.leader = (self.leader + 1) % self.handles.len();
                    backoff
                }
            };
            if start.elapsed() > self.deadline {
                return r;
            }
            if !retry.is_zero() {
                tokio::time::sleep(retry).await;
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
        }
    }

    /// One attempt at the current guess, across the emulated client links if any.
    async fn submit_once(&self, cmd: &Command) -> Reply {
        let handle = &self.handles[self.leader];
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
