//! Plain TCP: the same frames and Hello handshake as QUIC, without TLS.
//!
//! Without TLS the Hello is the only identity check, so this transport is for
//! benchmarks and trusted networks. Sockets run with `TCP_NODELAY`, since the writer
//! already batches and Nagle's algorithm would only add latency to lone messages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::link::{hello_frame, read_hello, Backoff, ConnCtl, Shared, Sink, SinkIo};
use super::{ConnError, Inbound, StatsSnapshot, Transport, TransportError, TransportSettings};
use crate::netem::{Endpoint, LinkEmulator, Traffic};
use crate::raft::message::Message;
use crate::raft::types::NodeId;

/// A bound TCP listener, not yet serving: read its address, then [`TcpBinding::start`].
pub struct TcpBinding {
    id: NodeId,
    listener: TcpListener,
    settings: TransportSettings,
    emulator: Option<LinkEmulator>,
}

/// A node's TCP transport; dropping it closes the listener and every connection.
pub struct TcpTransport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept_task: Option<JoinHandle<()>>,
    emulator: Option<LinkEmulator>,
}

impl TcpTransport {
    /// Binds node `id`'s listener on `addr` (port 0 picks a free port).
    pub async fn bind(
        id: NodeId,
        addr: SocketAddr,
        settings: TransportSettings,
    ) -> Result<TcpBinding, TransportError> {
        settings.validate()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| TransportError::Bind { addr, source })?;
        Ok(TcpBinding {
            id,
            listener,
            settings,
            emulator: None,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes everything and waits until the listening socket is released.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(t) = self.accept_task.take() {
            let _ = t.await;
        }
    }
}

impl TcpBinding {
    /// Sends every outbound message through `emulator` (delay, jitter, bandwidth and
    /// partitions per message; a byte stream neither loses nor reorders). None: no emulation.
    pub fn with_emulator(mut self, emulator: Option<LinkEmulator>) -> TcpBinding {
        self.emulator = emulator;
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Starts serving `peers`, as [`super::Bound::start`] describes.
    pub fn start(self, peers: HashMap<NodeId, SocketAddr>) -> (TcpTransport, Inbound) {
        let local_addr = self.local_addr();
        let (shared, inbound, dialed) = Shared::new(self.id, &peers, self.settings);
        for (peer, addr) in dialed {
            tokio::spawn(dial_loop(shared.clone(), peer, addr));
        }
        let accept_task = tokio::spawn(accept_loop(shared.clone(), self.listener));
        (
            TcpTransport {
                shared,
                local_addr,
                accept_task: Some(accept_task),
                emulator: self.emulator,
            },
            inbound,
        )
    }
}

impl Transport for TcpTransport {
    fn local_id(&self) -> NodeId {
        self.shared.id
    }
    fn send(&self, msg: Message) {
        match &self.emulator {
            None => self.shared.send(msg),
            Some(emu) => {
                let (from, to) = (Endpoint::Node(self.shared.id), Endpoint::Node(msg.to));
                let size = crate::codec::encoded_len(&msg);
                let shared = self.shared.clone();
                emu.submit(from, to, size, Traffic::Stream, msg, move |m| {
                    shared.send(m)
                });
            }
        }
    }
    fn watch_connected(&self, peer: NodeId) -> Option<watch::Receiver<bool>> {
        self.shared.watch_connected(peer)
    }
    fn stats(&self) -> StatsSnapshot {
        self.shared.stats()
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// Sends our Hello and reads the peer's; returns the peer's id and any bytes after it.
async fn handshake(s: &mut TcpStream, id: NodeId) -> Result<(NodeId, BytesMut), ConnError> {
    s.write_all(&hello_frame(id)).await?;
    read_hello(s).await
}

/// Splits an established connection between the peer's writer and a new reader task;
/// returns the token that is cancelled when the connection is gone.
fn run_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: NodeId,
    buf: BytesMut,
) -> CancellationToken {
    let token = shared.shutdown.child_token();
    let ctl = ConnCtl::Tcp(token.clone());
    let (mut r, w) = stream.into_split();
    shared.register(
        peer,
        Sink {
            io: SinkIo::Tcp(w),
            ctl: ctl.clone(),
        },
    );
    let shared = shared.clone();
    let t = token.clone();
    tokio::spawn(async move {
        let res = tokio::select! {
            r = shared.read_frames(&mut r, buf, peer) => r,
            _ = t.cancelled() => Ok(()),
        };
        shared.reader_done(peer, &ctl, res);
        t.cancel();
    });
    token
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, remote) = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Typically out of file descriptors: pause rather than spin.
                    warn!(node = shared.id, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = accept_one(&shared, stream).await {
                shared.rejected(remote, &e);
            }
        });
    }
}

async fn accept_one(shared: &Arc<Shared>, mut stream: TcpStream) -> Result<(), ConnError> {
    stream.set_nodelay(true)?;
    let (peer, buf) = tokio::select! {
        _ = shared.shutdown.cancelled() => return Ok(()),
        r = tokio::time::timeout(shared.settings.handshake_timeout(), handshake(&mut stream, shared.id)) => {
            r.map_err(|_| ConnError::Timeout)??
        }
    };
    if !shared.is_peer(peer) {
        return Err(ConnError::UnknownPeer(peer));
    }
    debug!(node = shared.id, peer, "accepted connection");
    run_connection(shared, stream, peer, buf);
    Ok(())
}

async fn dial_one(
    shared: &Shared,
    peer: NodeId,
    addr: SocketAddr,
) -> Result<(TcpStream, BytesMut), ConnError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (said, buf) = handshake(&mut stream, shared.id).await?;
    if said != peer {
        return Err(ConnError::IdentityMismatch { said, is: peer });
    }
    Ok((stream, buf))
}

async fn dial_loop(shared: Arc<Shared>, peer: NodeId, addr: SocketAddr) {
    let mut backoff = Backoff::new(&shared.settings);
    loop {
        let res = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = tokio::time::timeout(shared.settings.handshake_timeout(), dial_one(&shared, peer, addr)) => {
                r.unwrap_or(Err(ConnError::Timeout))
            }
        };
        match res {
            Ok((stream, buf)) => {
                debug!(node = shared.id, peer, "connected");
                backoff.reset();
                let token = run_connection(&shared, stream, peer, buf);
                token.cancelled().await;
                if shared.shutdown.is_cancelled() {
                    return;
                }
                debug!(node = shared.id, peer, "connection lost; redialing");
            }
            Err(e) => debug!(node = shared.id, peer, error = %e, "dial failed"),
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.step()) => {}
        }
    }
}
