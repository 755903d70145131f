//! One node as its own OS process, as `raftbench node --config FILE --id N` runs it:
//! the cluster file says where everyone is, the certificate directory who they are.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{ClusterFile, ConfigFileError, StorageKind};
use crate::netem::LinkEmulator;
use crate::raft::{LogStore, MemStore, NodeId, StoreError};
use crate::remote::ClientListener;
use crate::server::{Server, ServerError, ServerParts};
use crate::shutdown::{Shutdown, ShutdownController};
use crate::storage::{FileStore, SyncPolicy};
use crate::tls;
use crate::transport::{QuicTransport, TcpTransport, Transport, TransportError, TransportKind};

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
    /// The transport could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The log store could not be opened.
    #[error("log store: {0}")]
    Store(#[from] StoreError),
    /// The server refused its state.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The client port could not be bound.
    #[error("client listener on {addr}: {source}")]
    ClientListener {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Runs node `id` of `file` until `stop` resolves (Ctrl-C, SIGTERM), then shuts down
/// gracefully: the server stops, client connections close, the transport says goodbye.
pub async fn run_node(
    file: &ClusterFile,
    id: NodeId,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), NodeProcessError> {
    let cfg = file.core_config(id)?;
    let me = file.node(id).expect("core_config checked the id").clone();
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
    let (transport, inbox): (Arc<dyn Transport>, _) = match file.transport {
        TransportKind::Quic => {
            let identity = tls::load_identity(&file.certs_dir(), id)?;
            let b = QuicTransport::bind_emulated(
                &identity,
                me.raft_addr,
                &file.quic,
                file.transport_settings.clone(),
                emulator.as_ref(),
            )?;
            let (t, i) = b.start(peers);
            (Arc::new(t), i)
        }
        TransportKind::Tcp => {
            let b = TcpTransport::bind(id, me.raft_addr, file.transport_settings.clone())
                .await?
                .with_emulator(emulator.clone());
            let (t, i) = b.start(peers);
            (Arc::new(t), i)
        }
        TransportKind::Mem => unreachable!("ClusterFile::load refuses the memory transport"),
    };
    let ctl = ShutdownController::new();
    let seed = id ^ (std::process::id() as u64) << 16;
    let epoch = Instant::now();
    let data = file.node_data_dir(id);
    let server_task = match file.storage {
        StorageKind::Memory => spawn_server(
            cfg,
            seed,
            epoch,
            MemStore::new(),
            transport.clone(),
            inbox,
            &ctl,
        )?,
        StorageKind::File | StorageKind::FileNoSync => {
            let sync = if file.storage == StorageKind::File {
                SyncPolicy::Always
            } else {
                SyncPolicy::Never
            };
            let store = FileStore::open(&data, sync)?;
            tracing::info!(node = id, dir = %data.display(), last_index = store.last_index(), term = store.hard_state().term, "log store opened");
            spawn_server(cfg, seed, epoch, store, transport.clone(), inbox, &ctl)?
        }
    };
    let (handle, server_task) = server_task;
    let listener = ClientListener::bind(me.client_addr, handle)
        .await
        .map_err(|source| NodeProcessError::ClientListener {
            addr: me.client_addr,
            source,
        })?;
    tracing::info!(node = id, raft = %me.raft_addr, clients = %me.client_addr, transport = ?file.transport, "node running");
    let listener_task = tokio::spawn(listener.run(ctl.subscribe()));
    stop.await;
    tracing::info!(node = id, "shutting down");
    ctl.shutdown().await;
    let _ = server_task.await;
    let _ = listener_task.await;
    drop(transport);
    Ok(())
}

type Spawned = (
    crate::server::ServerHandle,
    tokio::task::JoinHandle<crate::kv::KvStore>,
);

fn spawn_server<S: LogStore + Send + 'static>(
    raft: crate::raft::Config,
    seed: u64,
    epoch: Instant,
    store: S,
    transport: Arc<dyn Transport>,
    inbox: crate::transport::Inbound,
    ctl: &ShutdownController,
) -> Result<Spawned, NodeProcessError> {
    let (server, handle) = Server::new(ServerParts {
        raft,
        seed,
        epoch,
        store,
        transport,
        inbox,
        observer: None,
    })?;
    let s: Shutdown = ctl.subscribe();
    Ok((handle, tokio::spawn(server.run(s))))
}
