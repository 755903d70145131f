//! The machinery QUIC and TCP share: per-peer writer tasks, frame readers, the Hello
//! exchange and redial backoff.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{bump, ConnError, Inbound, Stats, StatsSnapshot, TransportSettings};
use crate::codec::{self, Frame, LEN_PREFIX};
use crate::raft::message::Message;
use crate::raft::types::NodeId;

/// Hello frames are 10 bytes; anything longer before the handshake is hostile, so an
/// unauthenticated peer cannot make us buffer a large frame.
pub(crate) const HELLO_MAX_FRAME: usize = 64;

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Reserve more before a read once less than this is free.
const MIN_READ_SPACE: usize = 4 * 1024;

/// QUIC application close codes.
pub(crate) mod close_code {
    /// The transport is shutting down.
    pub const SHUTDOWN: u32 = 0;
    /// The peer broke the protocol (bad frame, bad Hello, misrouted message).
    pub const PROTOCOL: u32 = 1;
    /// A newer connection to the same peer replaced this one.
    pub const REPLACED: u32 = 2;
    /// The peer is not a member this node talks to.
    pub const UNKNOWN_PEER: u32 = 3;
    /// Writing failed; the connection is abandoned.
    pub const WRITE_FAILED: u32 = 4;
}

/// A handle to close a connection or learn that it closed, cheap to clone.
#[derive(Clone)]
pub(crate) enum ConnCtl {
    /// TCP: both the reader and the writer watch the token.
    Tcp(CancellationToken),
    /// QUIC: the connection handle itself.
    Quic(quinn::Connection),
}

impl ConnCtl {
    pub(crate) fn close(&self, code: u32, reason: &str) {
        match self {
            ConnCtl::Tcp(t) => t.cancel(),
            ConnCtl::Quic(c) => c.close(code.into(), reason.as_bytes()),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            ConnCtl::Tcp(t) => t.is_cancelled(),
            ConnCtl::Quic(c) => c.close_reason().is_some(),
        }
    }

    pub(crate) async fn closed(&self) {
        match self {
            ConnCtl::Tcp(t) => t.cancelled().await,
            ConnCtl::Quic(c) => {
                c.closed().await;
            }
        }
    }
}

/// Where a writer puts its bytes.
pub(crate) enum SinkIo {
    /// The write half of a TCP connection.
    Tcp(OwnedWriteHalf),
    /// One long-lived QUIC stream: frames pipelined in order.
    QuicStream(quinn::SendStream),
    /// A new QUIC stream per message.
    QuicPerMessage(quinn::Connection),
}

impl SinkIo {
    /// Whether frames of several messages may share one write.
    fn batches(&self) -> bool {
        !matches!(self, SinkIo::QuicPerMessage(_))
    }

    async fn write(&mut self, buf: &[u8]) -> Result<(), ConnError> {
        match self {
            SinkIo::Tcp(w) => w.write_all(buf).await?,
            SinkIo::QuicStream(s) => s.write_all(buf).await?,
            SinkIo::QuicPerMessage(c) => {
                let mut s = c.open_uni().await?;
                s.write_all(buf).await?;
                s.finish()?;
            }
        }
        Ok(())
    }
}

/// A connection as its writer sees it.
pub(crate) struct Sink {
    pub(crate) io: SinkIo,
    pub(crate) ctl: ConnCtl,
}

/// What the rest of the transport holds of one peer.
pub(crate) struct Link {
    queue: mpsc::Sender<Message>,
    conns: mpsc::UnboundedSender<Sink>,
    connected: watch::Receiver<bool>,
}

/// State shared by a network transport's tasks.
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) links: HashMap<NodeId, Link>,
    pub(crate) inbound: mpsc::Sender<(NodeId, Message)>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) settings: TransportSettings,
    /// Cancelled when the transport is dropped; every task watches it.
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    /// Creates the links to `peers`, spawns one writer task per peer, and returns the
    /// peers this node dials: those with a higher id (the other side of a pair only accepts).
    pub(crate) fn new(
        id: NodeId,
        peers: &HashMap<NodeId, SocketAddr>,
        settings: TransportSettings,
    ) -> (Arc<Shared>, Inbound, Vec<(NodeId, SocketAddr)>) {
        let stats = Arc::new(Stats::default());
        let shutdown = CancellationToken::new();
        let (inbound, inbound_rx) = mpsc::channel(settings.inbound_queue);
        let mut links = HashMap::new();
        for &peer in peers.keys() {
            if peer == id {
                continue;
            }
            let (queue, rx) = mpsc::channel(settings.send_queue);
            let (conns, conns_rx) = mpsc::unbounded_channel();
            let (up_tx, connected) = watch::channel(false);
            let writer = Writer {
                peer,
                rx,
                conns: conns_rx,
                up: up_tx,
                stats: stats.clone(),
                max_frame: settings.max_frame,
                max_write_bytes: settings.max_write_bytes,
                shutdown: shutdown.clone(),
            };
            tokio::spawn(writer.run());
            links.insert(
                peer,
                Link {
                    queue,
                    conns,
                    connected,
                },
            );
        }
        let shared = Shared {
            id,
            links,
            inbound,
            stats,
            settings,
            shutdown,
        };
        let dialed = peers
            .iter()
            .filter(|(&peer, _)| peer > id)
            .map(|(&peer, &addr)| (peer, addr))
            .collect();
        (Arc::new(shared), inbound_rx, dialed)
    }

    /// The hot path of [`super::Transport::send`].
    pub(crate) fn send(&self, msg: Message) {
        match self.links.get(&msg.to) {
            Some(link) => {
                if link.queue.try_send(msg).is_err() {
                    bump(&self.stats.messages_dropped, 1);
                }
            }
            None => {
                debug!(to = msg.to, "dropping message for an unknown peer");
                bump(&self.stats.messages_dropped, 1);
            }
        }
    }

    pub(crate) fn is_peer(&self, peer: NodeId) -> bool {
        self.links.contains_key(&peer)
    }

    pub(crate) fn watch_connected(&self, peer: NodeId) -> Option<watch::Receiver<bool>> {
        self.links.get(&peer).map(|l| l.connected.clone())
    }

    pub(crate) fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Hands a freshly established connection to `peer`'s writer.
    pub(crate) fn register(&self, peer: NodeId, sink: Sink) {
        bump(&self.stats.connections_established, 1);
        if let Some(link) = self.links.get(&peer) {
            // Fails only when the writer has exited, i.e. during shutdown.
            if let Err(e) = link.conns.send(sink) {
                e.0.ctl.close(close_code::SHUTDOWN, "shutting down");
            }
        }
    }

    /// Counts and logs a refused incoming connection.
    pub(crate) fn rejected(&self, remote: impl std::fmt::Display, err: &ConnError) {
        bump(&self.stats.connections_rejected, 1);
        warn!(node = self.id, %remote, error = %err, "refusing connection");
    }

    /// Reads Raft frames from one connection or stream until it ends, forwarding them.
    ///
    /// On a protocol error the caller closes the connection; a clean end of stream or a
    /// dropped inbound receiver returns Ok.
    pub(crate) async fn read_frames<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        mut buf: BytesMut,
        peer: NodeId,
    ) -> Result<(), ConnError> {
        let max_frame = self.settings.max_frame;
        loop {
            while let Some(m) = codec::try_decode_frame(&mut buf, max_frame)? {
                if m.from != peer || m.to != self.id {
                    return Err(ConnError::Misrouted {
                        from: m.from,
                        to: m.to,
                        peer,
                    });
                }
                bump(&self.stats.messages_received, 1);
                if self.inbound.send((peer, m)).await.is_err() {
                    return Ok(());
                }
            }
            if buf.capacity() - buf.len() < MIN_READ_SPACE {
                buf.reserve(READ_CHUNK);
            }
            let n = r.read_buf(&mut buf).await?;
            if n == 0 {
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err(ConnError::EofInFrame)
                };
            }
            bump(&self.stats.bytes_received, n as u64);
        }
    }

    /// Reads a reader's errors into a log line and a close; used by every reader task.
    pub(crate) fn reader_done(&self, peer: NodeId, ctl: &ConnCtl, res: Result<(), ConnError>) {
        if let Err(e) = res {
            if ctl.is_closed() || self.shutdown.is_cancelled() {
                // The connection was closed on purpose (replaced, shut down) or by the
                // peer: the read error is the consequence, not a reason.
                debug!(node = self.id, peer, error = %e, "reader ended");
                return;
            }
            if matches!(
                e,
                ConnError::Codec(_) | ConnError::Misrouted { .. } | ConnError::EofInFrame
            ) {
                bump(&self.stats.connections_closed_on_error, 1);
                warn!(node = self.id, peer, error = %e, "closing connection");
                ctl.close(close_code::PROTOCOL, "protocol error");
            } else {
                debug!(node = self.id, peer, error = %e, "connection lost");
                ctl.close(close_code::SHUTDOWN, "connection lost");
            }
        }
    }
}

/// Writes our Hello into `buf` for the caller to send.
pub(crate) fn hello_frame(id: NodeId) -> BytesMut {
    let mut b = BytesMut::with_capacity(LEN_PREFIX + 10);
    codec::encode_frame(&Frame::Hello(id), &mut b);
    b
}

/// Reads the peer's Hello; returns its id and whatever followed it in `buf`.
pub(crate) async fn read_hello<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<(NodeId, BytesMut), ConnError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        match codec::try_decode_any(&mut buf, HELLO_MAX_FRAME)? {
            Some(Frame::Hello(id)) => return Ok((id, buf)),
            Some(Frame::Raft(_)) => return Err(ConnError::NoHello),
            None => {}
        }
        if r.read_buf(&mut buf).await? == 0 {
            return Err(ConnError::EofInHandshake);
        }
    }
}

/// Exponential redial delay.
pub(crate) struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(s: &TransportSettings) -> Self {
        let min = Duration::from_millis(s.reconnect_min_ms);
        Backoff {
            next: min,
            min,
            max: Duration::from_millis(s.reconnect_max_ms),
        }
    }

    /// The delay to wait now; doubles the next one.
    pub(crate) fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// One per peer: owns the outbound queue and the current connection to the peer.
struct Writer {
    peer: NodeId,
    rx: mpsc::Receiver<Message>,
    conns: mpsc::UnboundedReceiver<Sink>,
    up: watch::Sender<bool>,
    stats: Arc<Stats>,
    max_frame: usize,
    max_write_bytes: usize,
    shutdown: CancellationToken,
}

impl Writer {
    async fn run(mut self) {
        let mut sink: Option<Sink> = None;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            let first = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                c = self.conns.recv() => {
                    let Some(c) = c else { break };
                    if let Some(old) = sink.replace(c) {
                        old.ctl.close(close_code::REPLACED, "replaced by a newer connection");
                    }
                    self.up.send_replace(true);
                    continue;
                }
                // Drop a dead connection at once rather than at the next message, so that
                // its socket closes and `connected` is accurate.
                _ = async {
                    match &sink {
                        Some(s) => s.ctl.closed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    sink = None;
                    self.up.send_replace(false);
                    continue;
                }
                m = self.rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            let Some(s) = sink.as_mut() else {
                self.drop_queued(1);
                continue;
            };
            buf.clear();
            let mut count = 0u64;
            let mut next = Some(first);
            while let Some(m) = next.take() {
                if codec::encoded_len(&m) - LEN_PREFIX > self.max_frame {
                    warn!(
                        peer = self.peer,
                        len = codec::encoded_len(&m),
                        "dropping oversized message"
                    );
                    bump(&self.stats.messages_dropped, 1);
                } else {
                    codec::encode(&m, &mut buf);
                    count += 1;
                }
                if s.io.batches() && buf.len() < self.max_write_bytes {
                    next = self.rx.try_recv().ok();
                }
            }
            if count == 0 {
                continue;
            }
            let res = tokio::select! {
                r = s.io.write(&buf) => r,
                _ = s.ctl.closed() => Err(ConnError::EofInFrame),
                _ = self.shutdown.cancelled() => break,
            };
            match res {
                Ok(()) => {
                    bump(&self.stats.messages_sent, count);
                    bump(&self.stats.bytes_sent, buf.len() as u64);
                    bump(&self.stats.writes, 1);
                }
                Err(e) => {
                    debug!(peer = self.peer, error = %e, "write failed; dropping connection");
                    bump(&self.stats.messages_dropped, count);
                    s.ctl.close(close_code::WRITE_FAILED, "write failed");
                    sink = None;
                    self.up.send_replace(false);
                }
            }
        }
        if let Some(s) = sink {
            s.ctl.close(close_code::SHUTDOWN, "shutting down");
        }
        self.up.send_replace(false);
    }

    /// Drops `n` already-taken messages plus everything queued: there is no connection.
    fn drop_queued(&mut self, n: u64) {
        let mut dropped = n;
        while self.rx.try_recv().is_ok() {
            dropped += 1;
        }
        bump(&self.stats.messages_dropped, dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn backoff_doubles_from_10ms_to_a_1s_cap_and_resets() {
        let mut b = Backoff::new(&TransportSettings::default());
        let seq: Vec<Duration> = (0..10).map(|_| b.step()).collect();
        assert_eq!(seq, ms(&[10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]));
        // A successful connection starts the next outage from the minimum again.
        b.reset();
        assert_eq!(
            (0..3).map(|_| b.step()).collect::<Vec<_>>(),
            ms(&[10, 20, 40])
        );
    }

    #[test]
    fn backoff_follows_the_settings() {
        let s = TransportSettings {
            reconnect_min_ms: 3,
            reconnect_max_ms: 10,
            ..TransportSettings::default()
        };
        let mut b = Backoff::new(&s);
        let seq: Vec<Duration> = (0..5).map(|_| b.step()).collect();
        assert_eq!(seq, ms(&[3, 6, 10, 10, 10]));
    }
}
