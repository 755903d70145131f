//! Transports that carry Raft messages between nodes: QUIC, TCP and in-memory.
//!
//! # Design
//!
//! Every transport has the same two halves, so that a driver can be written once and
//! the three can be compared in one run:
//!
//! - **Outbound**: [`Transport::send`] routes a [`Message`] by `msg.to`. It never blocks
//!   and never fails: it queues the message for that peer, and a message that cannot be
//!   queued (unknown peer, queue full, no connection) is dropped and counted, because
//!   Raft retransmits whatever matters.
//! - **Inbound**: an [`Inbound`] channel of `(sender, message)` pairs, where the sender
//!   is the peer the connection was authenticated as (TLS certificate on QUIC, Hello
//!   frame on TCP). It is bounded: when the consumer falls behind, readers stop reading,
//!   and the network's flow control pushes back on the senders.
//!
//! The network transports ([`QuicTransport`], [`TcpTransport`]) share one machinery:
//!
//! - One connection per pair of nodes, dialed by the node with the **lower id**; the
//!   other side only accepts. Both sides then send a Hello frame
//!   ([`crate::codec::Frame::Hello`]) and check the peer's. After a connection is lost
//!   the dialer redials with exponential backoff ([`TransportSettings::reconnect_min_ms`]
//!   doubling to [`TransportSettings::reconnect_max_ms`]); a new connection from a peer
//!   replaces the old one.
//! - Per peer, one writer task owns the outbound queue and the current connection. It
//!   wakes on a message, drains whatever else is queued (up to
//!   [`TransportSettings::max_write_bytes`]), encodes all of it into one reused buffer and
//!   writes it with one call: under load a write carries many frames, at low load a
//!   message goes out alone and at once.
//! - Per connection (per stream on QUIC), one reader task decodes frames and forwards them.
//!   Anything wrong on a connection (failed handshake, unknown peer, a malformed or
//!   oversized frame, a message whose `from`/`to` does not match the connection) closes
//!   that connection with a `tracing::warn!` naming the reason; every other connection
//!   carries on.
//!
//! [`MemTransport`] moves messages through in-process channels, by default without
//! encoding them ([`MemMode`]).
//!
//! A driver that picks the transport at run time binds it with [`bind`] and starts the
//! [`Bound`] result once it knows its peers' addresses.

mod bound;
mod link;
pub mod mem;
pub mod quic;
pub mod tcp;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::raft::message::Message;
use crate::raft::types::NodeId;
use crate::tls::TlsError;

pub use bound::{bind, BindSpec, Bound};
pub use mem::{MemMode, MemNetwork, MemTransport};
pub use quic::{CongestionController, QuicBinding, QuicSettings, QuicTransport, StreamMode};
pub use tcp::{TcpBinding, TcpTransport};

/// Received messages, each with the authenticated id of the peer that sent it.
pub type Inbound = mpsc::Receiver<(NodeId, Message)>;

/// Moves Raft messages from this node to its peers.
pub trait Transport: Send + Sync {
    /// This node's id.
    fn local_id(&self) -> NodeId;

    /// Queues `msg` for `msg.to`; never blocks, drops (and counts) what cannot be queued.
    fn send(&self, msg: Message);

    /// A watch that is true while a connection to `peer` is up; None for an unknown peer.
    fn watch_connected(&self, peer: NodeId) -> Option<watch::Receiver<bool>>;

    /// Counters since the transport started.
    fn stats(&self) -> StatsSnapshot;

    /// QUIC's own statistics of each connection this transport has made or accepted
    /// (closed ones included, up to a bound); empty for transports other than QUIC.
    fn quic_connection_stats(&self) -> Vec<quinn::ConnectionStats> {
        Vec::new()
    }
}

/// Waits until `transport` has a connection to `peer` (forever if it never comes).
///
/// Returns false for a peer the transport does not know.
pub async fn wait_connected(transport: &dyn Transport, peer: NodeId) -> bool {
    let Some(mut rx) = transport.watch_connected(peer) else {
        return false;
    };
    let up = rx.wait_for(|up| *up).await.is_ok();
    up
}

/// Which transport to run; lets a config file choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// QUIC with mutual TLS.
    Quic,
    /// Plain TCP.
    Tcp,
    /// In-process channels.
    Mem,
}

/// Settings shared by the network transports. Deserializes with defaults for missing fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportSettings {
    /// Largest frame body accepted or sent, in bytes (default 16 MiB). A peer announcing
    /// a larger one is disconnected; a larger outbound message is dropped.
    pub max_frame: usize,
    /// Messages queued per peer before `send` starts dropping (default 65,536).
    pub send_queue: usize,
    /// Received messages buffered for the consumer before readers pause (default 65,536).
    pub inbound_queue: usize,
    /// Bytes of frames gathered into one write (default 256 KiB).
    pub max_write_bytes: usize,
    /// First redial delay after a failed dial or a lost connection (default 10 ms).
    pub reconnect_min_ms: u64,
    /// Longest redial delay; the delay doubles up to it (default 1,000 ms).
    pub reconnect_max_ms: u64,
    /// Longest a dial plus Hello exchange may take before it is abandoned (default 5,000 ms).
    pub handshake_timeout_ms: u64,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            max_frame: crate::codec::DEFAULT_MAX_FRAME,
            send_queue: 65_536,
            inbound_queue: 65_536,
            max_write_bytes: 256 * 1024,
            reconnect_min_ms: 10,
            reconnect_max_ms: 1_000,
            handshake_timeout_ms: 5_000,
        }
    }
}

impl TransportSettings {
    fn validate(&self) -> Result<(), TransportError> {
        let bad = |name, reason: &str| {
            Err(TransportError::Settings {
                name,
                reason: reason.to_owned(),
            })
        };
        if self.send_queue == 0 {
            return bad("send_queue", "must be at least 1");
        }
        if self.inbound_queue == 0 {
            return bad("inbound_queue", "must be at least 1");
        }
        if self.max_frame > u32::MAX as usize {
            return bad("max_frame", "must fit in the u32 length prefix");
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            return bad("reconnect_min_ms", "must be in 1..=reconnect_max_ms");
        }
        Ok(())
    }

    fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
}

/// Why a transport could not be set up.
#[derive(Debug, Error)]
pub enum TransportError {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
    /// The node's TLS identity or config is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The TLS config cannot drive QUIC (it lacks TLS 1.3 or its initial cipher suite).
    #[error("TLS config unusable for QUIC: {0}")]
    QuicCrypto(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// A QUIC transport was asked for without the node's TLS identity.
    #[error("node {0}: the QUIC transport needs the node's TLS identity")]
    NoIdentity(NodeId),
    /// A memory transport was asked for without a network to join.
    #[error("node {0}: the memory transport needs a network to join")]
    NoMemNetwork(NodeId),
    /// A setting is out of range.
    #[error("invalid setting {name}: {reason}")]
    Settings {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// What went wrong on one connection; logged when the connection is closed.
#[derive(Debug, Error)]
pub(crate) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("bad frame: {0}")]
    Codec(#[from] crate::codec::CodecError),
    #[error("QUIC connection: {0}")]
    Quic(#[from] quinn::ConnectionError),
    #[error("QUIC connect: {0}")]
    QuicConnect(#[from] quinn::ConnectError),
    #[error("QUIC read: {0}")]
    QuicRead(#[from] quinn::ReadError),
    #[error("QUIC write: {0}")]
    QuicWrite(#[from] quinn::WriteError),
    #[error("QUIC stream: {0}")]
    QuicStream(#[from] quinn::ClosedStream),
    #[error("peer certificate: {0}")]
    Tls(#[from] TlsError),
    #[error("handshake timed out")]
    Timeout,
    #[error("connection closed during the handshake")]
    EofInHandshake,
    #[error("connection closed in the middle of a frame")]
    EofInFrame,
    #[error("first frame was not a Hello")]
    NoHello,
    #[error("peer says it is node {said} but is node {is}")]
    IdentityMismatch { said: NodeId, is: NodeId },
    #[error("node {0} is not a peer of this node")]
    UnknownPeer(NodeId),
    #[error("message from {from} to {to} on the connection with {peer}")]
    Misrouted {
        from: NodeId,
        to: NodeId,
        peer: NodeId,
    },
}

/// Counters of a transport, as plain numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Messages handed to a connection.
    pub messages_sent: u64,
    /// Bytes handed to a connection (frames, prefix included).
    pub bytes_sent: u64,
    /// Write calls (each carries one or more frames).
    pub writes: u64,
    /// Messages dropped: unknown peer, full queue, no connection, failed write, oversized.
    pub messages_dropped: u64,
    /// Messages received and forwarded to the inbound channel.
    pub messages_received: u64,
    /// Bytes read from connections.
    pub bytes_received: u64,
    /// Connections that completed the handshake (dialed or accepted).
    pub connections_established: u64,
    /// Incoming connections refused: TLS failure, unknown peer, bad Hello.
    pub connections_rejected: u64,
    /// Established connections closed because of a protocol error.
    pub connections_closed_on_error: u64,
}

/// The live counters behind [`StatsSnapshot`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    writes: AtomicU64,
    messages_dropped: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
    connections_established: AtomicU64,
    connections_rejected: AtomicU64,
    connections_closed_on_error: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            messages_sent: g(&self.messages_sent),
            bytes_sent: g(&self.bytes_sent),
            writes: g(&self.writes),
            messages_dropped: g(&self.messages_dropped),
            messages_received: g(&self.messages_received),
            bytes_received: g(&self.bytes_received),
            connections_established: g(&self.connections_established),
            connections_rejected: g(&self.connections_rejected),
            connections_closed_on_error: g(&self.connections_closed_on_error),
        }
    }
}
