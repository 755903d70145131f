//! One node as its own OS process, as `raftbench node --config FILE --id N` runs it:
//! the cluster file says where everyone is, the certificate directory who they are.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{ClusterFile, ConfigFileError, StorageKind};
use crate::netem::LinkEmulator;
use crate::raft::{LogStore, MemStore, NodeId, StoreError};
use crate::remote::{ClientListener, ClientTransport, NodeProbe, ObserverTee, ProcessRecorder};
use crate::server::{AppendOrder, Server, ServerError, ServerParts};
use crate::shutdown::{Shutdown, ShutdownController};
use crate::storage::{FileStore, InlineSync, SyncPolicy};
use crate::tls;
use crate::transport::{self, BindSpec, Transport, TransportError, TransportKind};

/// Why a node process could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeProcessError {
    /// The cluster file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    /// The link emulator could not start.
    #[error("link emulator: {0}")]
    Emulator(String),
    /// The node's certificate or key could not be loaded.
    #[error("certificates: {0}")]
    Tls(#[from] tls::TlsError),
    /// A certificate file is missing: `raftbench certs` was not run for this cluster.
    #[error(
        "certificate file {path} is missing: run `raftbench certs --out {dir} --nodes {nodes}` \
         first (on several hosts, copy that directory from the host that ran it)"
    )]
    MissingCertificate {
        /// The missing file.
        path: std::path::PathBuf,
        /// The certificate directory the cluster file names.
        dir: std::path::PathBuf,
        /// The highest node id of the cluster file: `certs` writes ids 1..=nodes.
        nodes: NodeId,
    },
    /// The transport could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The log store could not be opened.
    #[error("log store: {0}")]
    Store(#[from] StoreError),
    /// The server refused its state.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The server stopped by itself (a log store failure; the log says which).
    #[error("node {0} stopped: its log store failed (see the error logged above)")]
    Stopped(NodeId),
    /// The node's `data_dir` cannot hold its log (not a directory, not writable, ...).
    #[error("node {node}: cannot open its log store in {path}: {source}")]
    DataDir {
        /// The node.
        node: NodeId,
        /// The directory (`data_dir` of the cluster file, plus `node-N`).
        path: std::path::PathBuf,
        /// What failed there.
        source: StoreError,
    },
    /// The metrics port could not be bound.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsBindError),
    /// The client port could not be bound.
    #[error("client listener on {addr}: {source}")]
    ClientListener {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The client port could not be set up (bind, certificate or limits).
    #[error(transparent)]
    Listener(#[from] crate::remote::ListenerError),
}

/// Runs node `id` of `file` until `stop` resolves (Ctrl-C, SIGTERM), then shuts down
/// gracefully: the server stops, client connections close, the transport says goodbye.
pub async fn run_node(
    file: &ClusterFile,
    id: NodeId,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), NodeProcessError> {
    let (members, cfg) = file.core_config(id)?;
    let me = file.node(id).expect("core_config checked the id").clone();
    for w in file.warnings() {
        tracing::warn!(node = id, "{w}");
    }
    // Bound first: a taken port then fails the start-up before anything else happens.
    let metrics_listener = match me.metrics_addr {
        Some(addr) => Some(crate::metrics::MetricsListener::bind(id, addr).await?),
        None => None,
    };
    let metrics = metrics_listener
        .as_ref()
        .map(|_| Arc::new(crate::metrics::NodeMetrics::new(id, &file.ids())));
    // Idle until the harness arms it over the client port (see `remote::recording`).
    let max_id = file.ids().last().copied().unwrap_or(id) as usize;
    let recorder = Arc::new(ProcessRecorder::new(id, max_id));
    let observer: Option<Arc<dyn crate::server::Observer>> = Some(match metrics.clone() {
        Some(m) => Arc::new(ObserverTee(vec![m, recorder.clone()])),
        None => recorder.clone(),
    });
    let peers: HashMap<NodeId, std::net::SocketAddr> = file
        .nodes
        .iter()
        .filter(|n| n.id != id)
        .map(|n| (n.id, n.raft_addr))
        .collect();
    // Each process emulates the links that leave it (see `netem`).
    let emulator = match file.network_config() {
        Some(net) => Some(
            LinkEmulator::new(net, id).map_err(|e| NodeProcessError::Emulator(e.to_string()))?,
        ),
        None => None,
    };
    let identity = match (file.transport, file.client_transport) {
        (TransportKind::Quic, _) | (_, ClientTransport::Quic) => {
            let dir = file.certs_dir();
            Some(tls::load_identity(&dir, id).map_err(|e| match e {
                tls::TlsError::Missing { path } => NodeProcessError::MissingCertificate {
                    path,
                    nodes: file.ids().last().copied().unwrap_or(id),
                    dir,
                },
                e => e.into(),
            })?)
        }
        // ClusterFile::load refuses the memory transport; `bind` would say it has no network.
        _ => None,
    };
    let (transport, inbox) = transport::bind(BindSpec {
        kind: file.transport,
        id,
        addr: me.raft_addr,
        identity: identity
            .as_ref()
            .filter(|_| file.transport == TransportKind::Quic),
        quic: &file.quic,
        settings: file.transport_settings.clone(),
        emulator: emulator.as_ref(),
        mem: None,
    })
    .await?
    .start(peers);
    let server_transport: Arc<dyn Transport> = match &metrics {
        Some(m) => Arc::new(crate::metrics::MeteredTransport::new(
            transport.clone(),
            m.clone(),
        )),
        None => transport.clone(),
    };
    let ctl = ShutdownController::new();
    let mut sync_stats = None;
    let seed = id ^ (std::process::id() as u64) << 16;
    let epoch = Instant::now();
    let data = file.node_data_dir(id);
    let server_task = match file.storage {
        StorageKind::Memory => spawn_server(
            members,
            cfg,
            seed,
            epoch,
            MemStore::new(),
            server_transport.clone(),
            inbox,
            &ctl,
            (file.append_order, observer.clone()),
        )?,
        StorageKind::File | StorageKind::FileNoSync => {
            let sync = if file.storage == StorageKind::File {
                file.sync
            } else {
                SyncPolicy::None
            };
            let store =
                FileStore::open(&data, sync).map_err(|source| NodeProcessError::DataDir {
                    node: id,
                    path: data.clone(),
                    source,
                })?;
            tracing::info!(node = id, dir = %data.display(), last_index = store.last_index(), term = store.hard_state().term, sync = sync.label(), group_commit = file.group_commit, "log store opened");
            if !sync.is_durable() {
                tracing::warn!(
                    node = id,
                    "sync = none: NOT DURABLE, a power loss may lose acknowledged writes"
                );
            }
            sync_stats = Some(store.sync_stats());
            let (t, o) = (
                server_transport.clone(),
                (file.append_order, observer.clone()),
            );
            if file.group_commit {
                spawn_server(members, cfg, seed, epoch, store, t, inbox, &ctl, o)?
            } else {
                spawn_server(
                    members,
                    cfg,
                    seed,
                    epoch,
                    InlineSync(store),
                    t,
                    inbox,
                    &ctl,
                    o,
                )?
            }
        }
    };
    let (handle, server_task) = server_task;
    let handle_status = handle.watch_status();
    let limits = file.client_limits.clone();
    let listener = match (&identity, file.client_transport) {
        (Some(identity), ClientTransport::Quic) => {
            ClientListener::bind_quic(me.client_addr, handle, identity, limits)?
        }
        _ => {
            tracing::warn!(
                node = id,
                clients = %me.client_addr,
                "client_transport = tcp_insecure: clients are NOT authenticated and their \
                 traffic is NOT encrypted; anyone who reaches this port can read and change \
                 every key"
            );
            ClientListener::bind_tcp_insecure(me.client_addr, handle, limits).await?
        }
    };
    let probe = NodeProbe::new(epoch, recorder).for_process(transport.clone());
    let listener = listener.with_probe(Arc::new(probe));
    let listener_monitor = listener.monitor();
    let metrics_task = match (metrics_listener, metrics) {
        (Some(l), Some(m)) => {
            let data_dir = (file.storage != StorageKind::Memory).then(|| data.clone());
            let mut registry = m.registry(handle_status, transport.clone(), data_dir);
            registry.register_collector(Box::new(crate::metrics::ListenerCollector::new(
                listener_monitor,
            )));
            if let Some(addr) = me.metrics_addr {
                tracing::info!(node = id, %addr, "serving Prometheus metrics at /metrics");
            }
            Some(tokio::spawn(crate::metrics::serve(
                l,
                Arc::new(registry),
                ctl.subscribe(),
            )))
        }
        _ => None,
    };
    tracing::info!(node = id, raft = %me.raft_addr, clients = %me.client_addr, transport = ?file.transport, client_transport = ?file.client_transport, "node running");
    let listener_task = tokio::spawn(listener.run(ctl.subscribe()));
    let mut server_task = server_task;
    let stopped_by_itself = tokio::select! {
        _ = stop => false,
        _ = &mut server_task => true,
    };
    tracing::info!(node = id, "shutting down");
    ctl.shutdown().await;
    if !stopped_by_itself {
        let _ = server_task.await;
    }
    let _ = listener_task.await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    drop(transport);
    if let Some(s) = sync_stats.map(|s| s.snapshot()) {
        tracing::info!(
            node = id,
            syncs = s.syncs,
            entries = s.entries,
            entries_per_sync = s.entries_per_sync(),
            sync_p50_us = s.latency_ns.value_at_quantile(0.5) / 1_000,
            sync_p99_us = s.latency_ns.value_at_quantile(0.99) / 1_000,
            "log syncs"
        );
    }
    if stopped_by_itself {
        return Err(NodeProcessError::Stopped(id));
    }
    Ok(())
}

type Spawned = (
    crate::server::ServerHandle,
    tokio::task::JoinHandle<crate::kv::KvStore>,
);

#[allow(clippy::too_many_arguments)]
fn spawn_server<S: LogStore + Send + 'static>(
    members: crate::raft::Membership,
    raft: crate::raft::Config,
    seed: u64,
    epoch: Instant,
    store: S,
    transport: Arc<dyn Transport>,
    inbox: crate::transport::Inbound,
    ctl: &ShutdownController,
    (order, observer): (AppendOrder, Option<Arc<dyn crate::server::Observer>>),
) -> Result<Spawned, NodeProcessError> {
    let (server, handle) = Server::new(ServerParts {
        members,
        raft,
        seed,
        epoch,
        store,
        transport,
        inbox,
        observer,
    })?;
    let server = server.with_append_order(order);
    let s: Shutdown = ctl.subscribe();
    Ok((handle, tokio::spawn(server.run(s))))
}
