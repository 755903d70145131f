//! The node side of the client protocol: accept connections, forward requests to the
//! server, write the answers back in whatever order they complete, and bound everything a
//! client can make the node hold.
//!
//! What a client can fill, and its bound ([`ClientLimits`]):
//! - connections: at most `max_connections`; more are refused at once;
//! - bytes read and not yet answered, across all connections (partial frames, requests in
//!   flight): at most `max_buffered_bytes`; a connection waits for room before it reads;
//! - answers waiting for a slow reader: at most `max_inflight_per_connection` requests per
//!   connection are between being read and their answer being written; at the bound the
//!   node stops reading that connection, so flow control holds the client back;
//! - time: a connection with nothing in flight that completes no request within
//!   `read_timeout_ms`, or whose answers cannot be written within `write_timeout_ms`, is closed.
//!
//! Over QUIC each connection also holds quinn's buffers: at most its receive and send
//! windows ([`ClientLimits::window_bytes`] each).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use quinn::crypto::rustls::QuicServerConfig;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::{
    encode_answer, encode_armed, encode_clock, encode_error, encode_recording_chunk, encode_status,
    frame_len, try_decode, ClientFrame, NodeProbe, WireError, CHUNK_BYTES,
};
use crate::kv::Command;
use crate::server::{ClientError, ReplyTo, Request, ServerHandle};
use crate::shutdown::Shutdown;
use crate::tls::{self, NodeIdentity};

/// What one node lets its clients make it hold (`[client_limits]` in a cluster file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientLimits {
    /// Client connections open at once (default 256); more are refused.
    pub max_connections: usize,
    /// Bytes read from clients and not yet answered, across all connections (default
    /// 64 MiB; at least one largest frame, 4 MiB).
    pub max_buffered_bytes: usize,
    /// Requests of one connection read and not yet answered on the wire (default 4,096).
    pub max_inflight_per_connection: usize,
    /// A connection with nothing in flight that completes no request for this long is
    /// closed, in ms (default 10,000): an idle client, or one that sends too slowly.
    pub read_timeout_ms: u64,
    /// A connection whose answers cannot be written for this long is closed, in ms
    /// (default 10,000): a client that stopped reading.
    pub write_timeout_ms: u64,
    /// QUIC receive and send window of one client connection, in bytes (default 1 MiB).
    pub window_bytes: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_connections: 256,
            max_buffered_bytes: 64 << 20,
            max_inflight_per_connection: 4096,
            read_timeout_ms: 10_000,
            write_timeout_ms: 10_000,
            window_bytes: 1 << 20,
        }
    }
}

impl ClientLimits {
    /// Checks the limits; the error names the key (under `client_limits.`) and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            (
                "max_inflight_per_connection",
                self.max_inflight_per_connection as u64,
            ),
            ("read_timeout_ms", self.read_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("window_bytes", self.window_bytes),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err((k, "must be at least 1".into()));
            }
        }
        if self.max_buffered_bytes < super::MAX_FRAME + 4 {
            return Err((
                "max_buffered_bytes",
                format!(
                    "must hold at least one largest frame ({} bytes)",
                    super::MAX_FRAME + 4
                ),
            ));
        }
        if self.max_buffered_bytes > Semaphore::MAX_PERMITS {
            return Err(("max_buffered_bytes", "is too large".into()));
        }
        if self.window_bytes >= 1 << 62 {
            return Err(("window_bytes", "must be below 2^62".into()));
        }
        Ok(())
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }

    fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    fn quic_transport(&self) -> quinn::TransportConfig {
        let w = quinn::VarInt::from_u64(self.window_bytes).unwrap_or(quinn::VarInt::MAX);
        let mut tc = quinn::TransportConfig::default();
        tc.stream_receive_window(w)
            .receive_window(w)
            .send_window(self.window_bytes)
            // One stream carries a connection's requests and answers; nothing else is open.
            .max_concurrent_bidi_streams(1u32.into())
            .max_concurrent_uni_streams(0u32.into())
            .max_idle_timeout(
                Duration::from_millis(self.read_timeout_ms.saturating_mul(3))
                    .try_into()
                    .ok(),
            );
        tc
    }
}

/// Why a client listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The address could not be bound.
    #[error("client listener on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The node's certificate could not make a TLS config.
    #[error("client listener TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// rustls refused the config for QUIC.
    #[error("client listener QUIC config: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// A limit is impossible.
    #[error("client_limits.{0}: {1}")]
    Limits(&'static str, String),
}

/// Counters of a client listener, for operators and tests.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections served so far.
    pub accepted: AtomicU64,
    /// Connections refused at the connection cap.
    pub refused: AtomicU64,
    /// QUIC handshakes that failed (no, foreign or wrong-role certificate, or another error).
    pub handshake_failed: AtomicU64,
    /// Connections closed for a malformed or oversized frame.
    pub closed_bad_frame: AtomicU64,
    /// Connections closed by the read or write timeout.
    pub closed_timeout: AtomicU64,
    /// Requests read (valid or not).
    pub requests: AtomicU64,
    /// Requests refused before proposing because they are not a command.
    pub bad_commands: AtomicU64,
    /// Most requests one connection had in flight (read, answer not yet written).
    pub max_inflight: AtomicUsize,
    /// Connections open now.
    pub open: AtomicUsize,
}

struct Shared {
    server: ServerHandle,
    limits: ClientLimits,
    stats: ListenerStats,
    /// Byte budget of [`ClientLimits::max_buffered_bytes`].
    budget: Arc<Semaphore>,
    /// Connection slots of [`ClientLimits::max_connections`].
    slots: Arc<Semaphore>,
    /// The node's clock and recorder, for the harness's clock and recording frames.
    probe: std::sync::OnceLock<Arc<NodeProbe>>,
}

/// A view of a running listener's counters and budget.
#[derive(Clone)]
pub struct ListenerMonitor(Arc<Shared>);

impl ListenerMonitor {
    /// The counters.
    pub fn stats(&self) -> &ListenerStats {
        &self.0.stats
    }

    /// Bytes read from clients and not yet answered, now.
    pub fn buffered_bytes(&self) -> usize {
        self.0.limits.max_buffered_bytes - self.0.budget.available_permits()
    }

    /// The limits in force.
    pub fn limits(&self) -> &ClientLimits {
        &self.0.limits
    }
}

enum Accept {
    Tcp(TcpListener),
    Quic(quinn::Endpoint),
}

/// Accepts client connections for one node.
pub struct ClientListener {
    accept: Accept,
    shared: Arc<Shared>,
}

impl ClientListener {
    /// Binds `addr` for clients of `server` in plain TCP with default limits (insecure:
    /// see [`super::ClientTransport::TcpInsecure`]).
    pub async fn bind(addr: SocketAddr, server: ServerHandle) -> std::io::Result<ClientListener> {
        Self::bind_tcp_insecure(addr, server, ClientLimits::default())
            .await
            .map_err(|e| match e {
                ListenerError::Bind { source, .. } => source,
                e => std::io::Error::other(e.to_string()),
            })
    }

    /// Binds `addr` for clients of `server` in plain TCP, unauthenticated.
    pub async fn bind_tcp_insecure(
        addr: SocketAddr,
        server: ServerHandle,
        limits: ClientLimits,
    ) -> Result<ClientListener, ListenerError> {
        let shared = Self::shared(server, limits)?;
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenerError::Bind { addr, source })?;
        Ok(ClientListener {
            accept: Accept::Tcp(l),
            shared,
        })
    }

    /// Binds UDP `addr` for clients of `server` over QUIC: the node presents `identity`'s
    /// certificate and accepts only client certificates of its cluster CA. Must be called
    /// within a tokio runtime.
    pub fn bind_quic(
        addr: SocketAddr,
        server: ServerHandle,
        identity: &NodeIdentity,
        limits: ClientLimits,
    ) -> Result<ClientListener, ListenerError> {
        let shared = Self::shared(server, limits)?;
        let crypto = QuicServerConfig::try_from(tls::client_port_config(identity)?)?;
        let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        cfg.transport_config(Arc::new(shared.limits.quic_transport()));
        // The node's own stateless-reset key (as its peer port has): a client of a node
        // that crashed and restarted gets a reset on its old connection and moves on at
        // once, instead of sending into it until the idle timeout (measured: a pipeline
        // whose leader was SIGKILLed got no answer for the rest of a 3 s point).
        let bind_err = |source| ListenerError::Bind { addr, source };
        let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        let endpoint = quinn::Endpoint::new(
            crate::transport::quic::endpoint_config(identity),
            Some(cfg),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_err)?;
        Ok(ClientListener {
            accept: Accept::Quic(endpoint),
            shared,
        })
    }

    fn shared(server: ServerHandle, limits: ClientLimits) -> Result<Arc<Shared>, ListenerError> {
        limits
            .validate()
            .map_err(|(k, why)| ListenerError::Limits(k, why))?;
        Ok(Arc::new(Shared {
            server,
            budget: Arc::new(Semaphore::new(limits.max_buffered_bytes)),
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            stats: ListenerStats::default(),
            probe: std::sync::OnceLock::new(),
        }))
    }

    /// Answers clock exchanges and recording requests with `probe`, and fills statuses
    /// with what it knows (without one they are refused with an error frame).
    pub fn with_probe(self, probe: Arc<NodeProbe>) -> ClientListener {
        // A fresh listener's cell is empty; a second probe would be a caller's bug.
        let _ = self.shared.probe.set(probe);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.accept {
            Accept::Tcp(l) => l.local_addr(),
            Accept::Quic(e) => e.local_addr(),
        }
    }

    /// The listener's counters and budget, readable while it runs.
    pub fn monitor(&self) -> ListenerMonitor {
        ListenerMonitor(self.shared.clone())
    }

    /// Serves until shutdown; each connection runs as its own task.
    pub async fn run(self, mut shutdown: Shutdown) {
        let shared = self.shared;
        match self.accept {
            Accept::Tcp(listener) => loop {
                tokio::select! {
                    _ = shutdown.recv() => return,
                    r = listener.accept() => match r {
                        Ok((stream, peer)) => {
                            let Some(slot) = take_slot(&shared) else {
                                drop(stream);
                                continue;
                            };
                            let _ = stream.set_nodelay(true);
                            let (rd, wr) = stream.into_split();
                            let shared = shared.clone();
                            let s = shutdown.resubscribe();
                            tokio::spawn(async move {
                                serve_logged(rd, wr, &shared, s, peer).await;
                                drop(slot);
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            },
            Accept::Quic(endpoint) => {
                loop {
                    tokio::select! {
                        _ = shutdown.recv() => break,
                        inc = endpoint.accept() => match inc {
                            None => break,
                            Some(inc) => {
                                let Some(slot) = take_slot(&shared) else {
                                    inc.refuse();
                                    continue;
                                };
                                let shared = shared.clone();
                                let s = shutdown.resubscribe();
                                tokio::spawn(async move {
                                    serve_quic(inc, &shared, s).await;
                                    drop(slot);
                                });
                            }
                        }
                    }
                }
                endpoint.close(0u32.into(), b"node shutting down");
                let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
            }
        }
    }
}

/// A connection slot, or None (counted as refused) at the cap.
fn take_slot(shared: &Arc<Shared>) -> Option<OwnedSemaphorePermit> {
    match shared.slots.clone().try_acquire_owned() {
        Ok(p) => Some(p),
        Err(_) => {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                max = shared.limits.max_connections,
                "client connection refused: at the connection cap"
            );
            None
        }
    }
}

async fn serve_quic(inc: quinn::Incoming, shared: &Arc<Shared>, shutdown: Shutdown) {
    let peer = inc.remote_address();
    let read_timeout = shared.limits.read_timeout();
    let conn = match inc.accept() {
        Ok(c) => tokio::time::timeout(read_timeout, c).await,
        Err(e) => Ok(Err(e)),
    };
    let conn = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            shared
                .stats
                .handshake_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, error = %e, "client handshake failed");
            return;
        }
        Err(_) => {
            shared
                .stats
                .handshake_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, "client handshake timed out");
            return;
        }
    };
    // The verifier accepted only a client certificate of the cluster CA; name it in logs.
    let who = conn
        .peer_identity()
        .and_then(|i| {
            i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|c| tls::cert_role(&c).ok());
    let (wr, rd) = match tokio::time::timeout(read_timeout, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "client connection closed before a stream");
            return;
        }
        Err(_) => {
            shared.stats.closed_timeout.fetch_add(1, Ordering::Relaxed);
            conn.close(CLOSE_TIMEOUT.into(), b"idle");
            return;
        }
    };
    tracing::debug!(%peer, client = ?who, "client connected");
    let code = serve_logged(rd, wr, shared, shutdown, peer).await;
    if code == CLOSE_DONE {
        // Closing now would discard answers not yet acknowledged: let the client close.
        let _ = tokio::time::timeout(read_timeout, conn.closed()).await;
    }
    conn.close(code.into(), b"");
}

/// QUIC close codes the node uses on client connections.
const CLOSE_DONE: u32 = 0;
const CLOSE_BAD_FRAME: u32 = 1;
const CLOSE_TIMEOUT: u32 = 2;
const CLOSE_IO: u32 = 3;

async fn serve_logged<R, W>(
    rd: R,
    wr: W,
    shared: &Arc<Shared>,
    shutdown: Shutdown,
    peer: SocketAddr,
) -> u32
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
    shared.stats.open.fetch_add(1, Ordering::Relaxed);
    let r = serve(rd, wr, shared.clone(), shutdown).await;
    shared.stats.open.fetch_sub(1, Ordering::Relaxed);
    match r {
        Ok(()) => CLOSE_DONE,
        Err(e) => {
            tracing::info!(%peer, error = %e, "client connection closed");
            match e {
                ConnError::Wire(_) => {
                    shared
                        .stats
                        .closed_bad_frame
                        .fetch_add(1, Ordering::Relaxed);
                    CLOSE_BAD_FRAME
                }
                ConnError::ReadTimeout | ConnError::WriteTimeout => {
                    shared.stats.closed_timeout.fetch_add(1, Ordering::Relaxed);
                    CLOSE_TIMEOUT
                }
                ConnError::Io(_) => CLOSE_IO,
            }
        }
    }
}

/// Bytes read from a socket at a time (and held from the budget for it).
const CHUNK: usize = 64 * 1024;
/// Bytes of answers gathered into one write.
const WRITE_BATCH: usize = 256 * 1024;

/// A request between being read and its answer being written.
struct Held {
    /// The id the client gave it.
    client_id: u64,
    /// Its bytes in the budget.
    _bytes: OwnedSemaphorePermit,
}

/// What the connection's reader and writer share.
struct Conn {
    /// In-flight requests by connection-local sequence number (the id the server sees).
    held: Mutex<HashMap<u64, Held>>,
    /// Slots of `max_inflight_per_connection`.
    inflight: Semaphore,
    /// When the connection last completed a request or wrote an answer, in ms since `start`.
    last_activity_ms: AtomicU64,
    start: Instant,
}

impl Conn {
    fn touch(&self) {
        self.last_activity_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.start + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }
}

/// An answer for the writer: a request's (by sequence number), or one of the node's own
/// (by the client's id).
enum Out {
    Answer(crate::server::Answer),
    Status(u64, Box<crate::server::NodeStatus>),
    /// A clock exchange: the client's `t1` and the node's receive time `t2` (the send time
    /// is stamped as the answer is encoded).
    Clock(u64, u64, u64),
    /// A recording is armed.
    Armed(u64),
    /// A request the node refused, and why.
    Error(u64, String),
    /// An encoded recording, written in chunks.
    Recording(u64, bytes::Bytes),
}

async fn serve<R, W>(
    mut rd: R,
    wr: W,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) -> Result<(), ConnError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limits = &shared.limits;
    let conn = Arc::new(Conn {
        held: Mutex::new(HashMap::new()),
        inflight: Semaphore::new(limits.max_inflight_per_connection),
        last_activity_ms: AtomicU64::new(0),
        start: Instant::now(),
    });
    // Unbounded only in type: at most `max_inflight_per_connection` answers are ever in it,
    // since a request is read only with a free in-flight slot.
    let (tx, rx) = mpsc::unbounded_channel::<crate::server::Answer>();
    let (status_tx, status_rx) = mpsc::unbounded_channel::<Out>();
    let (writer_failed_tx, mut writer_failed) = tokio::sync::oneshot::channel::<ConnError>();
    let writer = tokio::spawn(write_answers(
        wr,
        rx,
        status_rx,
        conn.clone(),
        shared.clone(),
        writer_failed_tx,
    ));
    let mut buf = BytesMut::new();
    // Budget bytes held for what `buf` holds and the chunk being read into it.
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut seq: u64 = 0;
    let mut stopping = false;
    let read_timeout = limits.read_timeout();
    let result: Result<(), ConnError> = 'conn: loop {
        // Every complete frame in the buffer, each with a free in-flight slot.
        loop {
            let len = match frame_len(&buf) {
                Ok(Some(len)) if buf.len() >= 4 + len => len,
                Ok(_) => break,
                Err(e) => break 'conn Err(e.into()),
            };
            let slot = tokio::select! {
                _ = shutdown.recv() => { stopping = true; break 'conn Ok(()) }
                e = &mut writer_failed => break 'conn Err(e.unwrap_or(ConnError::WriteTimeout)),
                s = conn.inflight.acquire() => s.expect("the semaphore is never closed"),
            };
            let bytes = held
                .as_mut()
                .and_then(|h| h.split(4 + len))
                .expect("a complete frame's bytes are held");
            let frame = match try_decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => unreachable!("a complete frame decodes or fails"),
                Err(e) => break 'conn Err(e.into()),
            };
            shared.stats.requests.fetch_add(1, Ordering::Relaxed);
            conn.touch();
            match frame {
                ClientFrame::Request(client_id, command) => {
                    // A copy, so that a small request in flight does not pin the whole read
                    // buffer it arrived in (the budget counts the request's bytes only).
                    let command = bytes::Bytes::copy_from_slice(&command);
                    slot.forget();
                    record_inflight(&shared, &conn);
                    seq += 1;
                    conn.held.lock().expect("not poisoned").insert(
                        seq,
                        Held {
                            client_id,
                            _bytes: bytes,
                        },
                    );
                    // Refused before proposing: bytes that are not a command never reach the log.
                    if let Err(e) = Command::decode(&command) {
                        shared.stats.bad_commands.fetch_add(1, Ordering::Relaxed);
                        let _ = tx.send(crate::server::Answer {
                            id: seq,
                            reply: Err(ClientError::BadCommand(e)),
                            trace: None,
                        });
                        continue;
                    }
                    let req = Request {
                        id: seq,
                        command,
                        reply: ReplyTo::Channel(tx.clone()),
                    };
                    tokio::select! {
                        _ = shutdown.recv() => { stopping = true; break 'conn Ok(()) }
                        r = shared.server.send(req) => if r.is_err() {
                            break 'conn Ok(());
                        },
                    }
                }
                ClientFrame::StatusRequest(client_id) => {
                    slot.forget();
                    record_inflight(&shared, &conn);
                    drop(bytes);
                    let mut st = Box::new(shared.server.status());
                    if let Some(p) = shared.probe.get() {
                        p.fill(&mut st);
                    }
                    let _ = status_tx.send(Out::Status(client_id, st));
                }
                ClientFrame::ClockRequest(client_id, t1) => {
                    slot.forget();
                    drop(bytes);
                    let out = match shared.probe.get() {
                        Some(p) => Out::Clock(client_id, t1, p.now().as_nanos()),
                        None => Out::Error(client_id, NO_PROBE.into()),
                    };
                    let _ = status_tx.send(out);
                }
                ClientFrame::Arm(client_id, spec) => {
                    slot.forget();
                    drop(bytes);
                    let out = match shared.probe.get().map(|p| p.recorder().arm(spec)) {
                        Some(Ok(())) => Out::Armed(client_id),
                        Some(Err(e)) => Out::Error(client_id, e.to_string()),
                        None => Out::Error(client_id, NO_PROBE.into()),
                    };
                    let _ = status_tx.send(out);
                }
                ClientFrame::Take(client_id) => {
                    slot.forget();
                    drop(bytes);
                    match shared.probe.get() {
                        Some(p) => {
                            // Encoding a large recording takes a while: off the runtime.
                            let (p, tx) = (p.clone(), status_tx.clone());
                            tokio::spawn(async move {
                                let enc = tokio::task::spawn_blocking(move || {
                                    match p.recorder().take() {
                                        None => Err("no recording is armed".to_string()),
                                        Some(r) => {
                                            super::encode_recording(&r).map_err(|e| e.to_string())
                                        }
                                    }
                                })
                                .await
                                .unwrap_or_else(|e| Err(format!("encoding failed: {e}")));
                                let _ = tx.send(match enc {
                                    Ok(b) => Out::Recording(client_id, b),
                                    Err(why) => Out::Error(client_id, why),
                                });
                            });
                        }
                        None => {
                            let _ = status_tx.send(Out::Error(client_id, NO_PROBE.into()));
                        }
                    }
                }
                ClientFrame::Reply(..)
                | ClientFrame::Status(..)
                | ClientFrame::Clock(..)
                | ClientFrame::Armed(..)
                | ClientFrame::RecordingChunk(..)
                | ClientFrame::Error(..) => {
                    break 'conn Err(WireError::Unknown(2).into());
                }
            }
        }
        // Read more: up to the rest of the frame under way, at most a chunk.
        let want = match frame_len(&buf) {
            Ok(Some(len)) => (4 + len - buf.len()).min(CHUNK),
            _ => CHUNK,
        };
        let have = held.as_ref().map_or(0, |h| h.num_permits());
        let need = (buf.len() + want).saturating_sub(have);
        let mut deadline = conn.last_activity() + read_timeout;
        if need > 0 {
            let more = loop {
                tokio::select! {
                    _ = shutdown.recv() => { stopping = true; break 'conn Ok(()) }
                    e = &mut writer_failed => break 'conn Err(e.unwrap_or(ConnError::WriteTimeout)),
                    p = shared.budget.clone().acquire_many_owned(need as u32) => {
                        break p.expect("the semaphore is never closed");
                    }
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        match extend(&conn, &shared, read_timeout) {
                            Some(d) => deadline = d,
                            None => break 'conn Err(ConnError::ReadTimeout),
                        }
                    }
                }
            };
            match held.as_mut() {
                Some(h) => h.merge(more),
                None => held = Some(more),
            }
        }
        let mut limited = (&mut rd).take(want as u64);
        let n = loop {
            tokio::select! {
                _ = shutdown.recv() => { stopping = true; break 'conn Ok(()) }
                e = &mut writer_failed => break 'conn Err(e.unwrap_or(ConnError::WriteTimeout)),
                r = limited.read_buf(&mut buf) => match r {
                    Ok(n) => break n,
                    Err(e) => break 'conn Err(e.into()),
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    match extend(&conn, &shared, read_timeout) {
                        Some(d) => deadline = d,
                        None => break 'conn Err(ConnError::ReadTimeout),
                    }
                }
            }
        };
        if n == 0 {
            break Ok(());
        }
        // Return what the read did not fill (keep what the buffer holds).
        if let Some(h) = held.as_mut() {
            if h.num_permits() > buf.len() {
                drop(h.split(h.num_permits() - buf.len()));
            }
        }
    };
    drop(held);
    drop(tx);
    drop(status_tx);
    if result.is_err() || stopping {
        writer.abort();
    }
    // After a clean end the writer finishes the answers still in flight (each bounded by
    // the write timeout).
    let _ = writer.await;
    result
}

/// The read deadline has passed: the next one, if the connection is still allowed to wait
/// (it has requests in flight, or was active since), or None to close it.
fn extend(conn: &Conn, shared: &Shared, timeout: Duration) -> Option<Instant> {
    let busy = conn.inflight.available_permits() < shared.limits.max_inflight_per_connection;
    let next = conn.last_activity() + timeout;
    if busy {
        // Waiting for answers is not idling; look again soon.
        Some(Instant::now() + timeout.min(Duration::from_millis(100)))
    } else if next > Instant::now() {
        Some(next)
    } else {
        None
    }
}

/// Why a clock or recording request is refused by a listener without a [`NodeProbe`].
const NO_PROBE: &str = "this node keeps no clock exchange or recordings (not a node process)";

fn record_inflight(shared: &Shared, conn: &Conn) {
    let n = shared.limits.max_inflight_per_connection - conn.inflight.available_permits();
    shared.stats.max_inflight.fetch_max(n, Ordering::Relaxed);
}

async fn write_answers<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<crate::server::Answer>,
    mut status_rx: mpsc::UnboundedReceiver<Out>,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    failed: tokio::sync::oneshot::Sender<ConnError>,
) {
    let mut out = BytesMut::with_capacity(16 * 1024);
    let write_timeout = shared.limits.write_timeout();
    let mut answers_open = true;
    let mut status_open = true;
    let probe = shared.probe.get().cloned();
    let encode = |o: Out, out: &mut BytesMut| match o {
        Out::Answer(a) => {
            let held = conn.held.lock().expect("not poisoned").remove(&a.id);
            if let Some(h) = held {
                encode_answer(h.client_id, &a.reply, a.trace.as_ref(), out);
            }
        }
        Out::Status(id, st) => encode_status(id, &st, out),
        Out::Clock(id, t1, t2) => {
            // As late as it can be stamped: the node's send time.
            let t3 = probe.as_ref().map_or(t2, |p| p.now().as_nanos());
            encode_clock(id, t1, t2, t3, out);
        }
        Out::Armed(id) => encode_armed(id, out),
        Out::Error(id, why) => encode_error(id, &why, out),
        Out::Recording(..) => unreachable!("recordings are written in chunks"),
    };
    loop {
        let mut n = 0usize;
        tokio::select! {
            a = rx.recv(), if answers_open => match a {
                Some(a) => { encode(Out::Answer(a), &mut out); n += 1; }
                None => answers_open = false,
            },
            s = status_rx.recv(), if status_open => match s {
                Some(Out::Recording(id, rec)) => {
                    // Chunk by chunk, each its own write: a large recording never sits in
                    // the write buffer whole.
                    let total = rec.len() as u64;
                    for (i, chunk) in rec.chunks(CHUNK_BYTES).enumerate() {
                        encode_recording_chunk(id, total, (i * CHUNK_BYTES) as u64, chunk, &mut out);
                        match tokio::time::timeout(write_timeout, wr.write_all(&out)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                let _ = failed.send(ConnError::Io(e));
                                return;
                            }
                            Err(_) => {
                                let _ = failed.send(ConnError::WriteTimeout);
                                return;
                            }
                        }
                        out.clear();
                    }
                    n += 1;
                }
                Some(s) => { encode(s, &mut out); n += 1; }
                None => status_open = false,
            },
            else => break,
        }
        // Gather whatever else is ready into the same write, up to a batch.
        while out.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(a) => {
                    encode(Out::Answer(a), &mut out);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if n == 0 {
            continue;
        }
        match tokio::time::timeout(write_timeout, wr.write_all(&out)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = failed.send(ConnError::Io(e));
                return;
            }
            Err(_) => {
                let _ = failed.send(ConnError::WriteTimeout);
                return;
            }
        }
        out.clear();
        conn.touch();
        conn.inflight.add_permits(n);
    }
    let _ = tokio::time::timeout(write_timeout, wr.shutdown()).await;
}

/// What ends one client connection (logged, never fatal to the node).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The client sent a bad frame.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Nothing in flight and no complete request within the read timeout.
    #[error("no complete request within the read timeout")]
    ReadTimeout,
    /// Answers could not be written within the write timeout.
    #[error("answers not taken within the write timeout")]
    WriteTimeout,
}
