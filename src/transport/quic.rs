//! QUIC (quinn) with mutual TLS from [`crate::tls`].
//!
//! One connection per pair of nodes, dialed by the lower id (see the module docs of
//! [`crate::transport`]). Each side sends on unidirectional streams that it opens:
//!
//! - [`StreamMode::Pipelined`] (default): one long-lived stream per direction; frames
//!   follow each other in order, so pipelined AppendEntries arrive in the order sent.
//! - [`StreamMode::PerBatch`]: a fresh stream per message (each AppendEntries is one
//!   batch of entries), for comparison. Streams are independent, so messages may be
//!   delivered out of order, which Raft tolerates.
//!
//! The first stream each side opens starts with a Hello frame; in per-batch mode it
//! carries nothing else. A connection is accepted only if the TLS handshake verified
//! the peer's certificate against the cluster CA, the certificate names a known peer,
//! and the Hello names the same node. A dialer additionally checks that the server's
//! certificate names the node it meant to reach (TLS already checked the server name).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, VarInt};
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::debug;

use super::link::{close_code, hello_frame, read_hello, Backoff, ConnCtl, Shared, Sink, SinkIo};
use super::{ConnError, Inbound, StatsSnapshot, Transport, TransportError, TransportSettings};
use crate::netem::{self, EmulatedSocket, LinkEmulator};
use crate::raft::message::Message;
use crate::raft::types::NodeId;
use crate::tls::{self, NodeIdentity};

/// How Raft messages map onto QUIC streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamMode {
    /// One long-lived stream per direction; messages in order.
    #[default]
    Pipelined,
    /// A new stream per message; no ordering across messages.
    PerBatch,
}

/// Which congestion controller quinn runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CongestionController {
    /// CUBIC (RFC 9438), quinn's default.
    #[default]
    Cubic,
    /// BBR (quinn's experimental implementation).
    Bbr,
    /// NewReno (RFC 9002).
    NewReno,
}

/// QUIC transport parameters. Deserializes with defaults for missing fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuicSettings {
    /// How messages map onto streams (default pipelined).
    pub stream_mode: StreamMode,
    /// Bytes the peer may send on one stream ahead of our reading (default 4 MiB).
    pub stream_receive_window: u64,
    /// Bytes the peer may send on all streams ahead of our reading (default 16 MiB).
    pub receive_window: u64,
    /// Bytes we buffer unacknowledged across all streams (default 16 MiB).
    pub send_window: u64,
    /// Unidirectional streams the peer may have open at once (default 1,024; per-batch
    /// mode opens one per message).
    pub max_concurrent_uni_streams: u32,
    /// UDP payload size used before path MTU discovery (default 1,200, QUIC's minimum).
    pub initial_mtu: u16,
    /// Whether to probe for a larger path MTU (default true).
    pub mtu_discovery: bool,
    /// Largest UDP payload MTU discovery probes for (default 1,452).
    pub mtu_upper_bound: u16,
    /// Interval of keep-alive packets in ms, 0 for none (default 1,000), so that an idle
    /// link is not closed by the idle timeout and a dead peer is noticed.
    pub keep_alive_ms: u64,
    /// Close a connection after this long without hearing from the peer, in ms (default 10,000).
    pub idle_timeout_ms: u64,
    /// RTT assumed before the first sample, in µs (default 333,000, quinn's; lower on a LAN
    /// shortens the first loss-recovery timeouts).
    pub initial_rtt_us: u64,
    /// Congestion controller (default cubic).
    pub congestion: CongestionController,
    /// Whether to use UDP generic segmentation offload when available (default true).
    pub segmentation_offload: bool,
    /// ACK frequency extension: ack-eliciting packets the peer may receive before it must
    /// ACK. None (default) leaves the extension's knobs alone; setting this or one of the
    /// two below asks the peer to use them (if it supports the extension).
    pub ack_eliciting_threshold: Option<u32>,
    /// ACK frequency extension: longest delay before the peer ACKs, in µs (None: the peer's own).
    pub max_ack_delay_us: Option<u64>,
    /// ACK frequency extension: out-of-order packets that trigger an immediate ACK.
    pub ack_reordering_threshold: Option<u32>,
}

impl Default for QuicSettings {
    fn default() -> Self {
        QuicSettings {
            stream_mode: StreamMode::Pipelined,
            stream_receive_window: 4 * 1024 * 1024,
            receive_window: 16 * 1024 * 1024,
            send_window: 16 * 1024 * 1024,
            max_concurrent_uni_streams: 1_024,
            initial_mtu: 1_200,
            mtu_discovery: true,
            mtu_upper_bound: 1_452,
            keep_alive_ms: 1_000,
            idle_timeout_ms: 10_000,
            initial_rtt_us: 333_000,
            congestion: CongestionController::Cubic,
            segmentation_offload: true,
            ack_eliciting_threshold: None,
            max_ack_delay_us: None,
            ack_reordering_threshold: None,
        }
    }
}

impl QuicSettings {
    /// The quinn transport config these settings describe.
    pub fn transport_config(&self) -> Result<quinn::TransportConfig, TransportError> {
        let varint = |name: &'static str, v: u64| {
            VarInt::from_u64(v).map_err(|_| TransportError::Settings {
                name,
                reason: format!("{v} exceeds 2^62 - 1"),
            })
        };
        let mut tc = quinn::TransportConfig::default();
        tc.stream_receive_window(varint("stream_receive_window", self.stream_receive_window)?)
            .receive_window(varint("receive_window", self.receive_window)?)
            .send_window(self.send_window)
            .max_concurrent_uni_streams(self.max_concurrent_uni_streams.into())
            // Nothing uses bidirectional streams; refuse them.
            .max_concurrent_bidi_streams(0u32.into())
            .initial_mtu(self.initial_mtu)
            .initial_rtt(Duration::from_micros(self.initial_rtt_us))
            .enable_segmentation_offload(self.segmentation_offload)
            .keep_alive_interval(
                (self.keep_alive_ms > 0).then(|| Duration::from_millis(self.keep_alive_ms)),
            )
            .max_idle_timeout(Some(
                Duration::from_millis(self.idle_timeout_ms)
                    .try_into()
                    .map_err(|_| TransportError::Settings {
                        name: "idle_timeout_ms",
                        reason: "too large".into(),
                    })?,
            ));
        if self.mtu_discovery {
            let mut mtu = quinn::MtuDiscoveryConfig::default();
            mtu.upper_bound(self.mtu_upper_bound);
            tc.mtu_discovery_config(Some(mtu));
        } else {
            tc.mtu_discovery_config(None);
        }
        match self.congestion {
            CongestionController::Cubic => tc
                .congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default())),
            CongestionController::Bbr => {
                tc.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()))
            }
            CongestionController::NewReno => tc.congestion_controller_factory(Arc::new(
                quinn::congestion::NewRenoConfig::default(),
            )),
        };
        if self.ack_eliciting_threshold.is_some()
            || self.max_ack_delay_us.is_some()
            || self.ack_reordering_threshold.is_some()
        {
            let mut ack = quinn::AckFrequencyConfig::default();
            if let Some(t) = self.ack_eliciting_threshold {
                ack.ack_eliciting_threshold(t.into());
            }
            ack.max_ack_delay(self.max_ack_delay_us.map(Duration::from_micros));
            if let Some(t) = self.ack_reordering_threshold {
                ack.reordering_threshold(t.into());
            }
            tc.ack_frequency_config(Some(ack));
        }
        Ok(tc)
    }
}

/// A bound QUIC endpoint, not yet serving: read its address, then [`QuicBinding::start`].
pub struct QuicBinding {
    id: NodeId,
    endpoint: Endpoint,
    client_config: quinn::ClientConfig,
    mode: StreamMode,
    settings: TransportSettings,
    /// The emulating socket below quinn, told the peers' addresses at start.
    emulated: Option<Arc<EmulatedSocket>>,
}

/// A node's QUIC transport; dropping it closes the endpoint and every connection.
pub struct QuicTransport {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    connections: Connections,
}

/// Most connections a transport remembers for [`Transport::quic_connection_stats`]; the
/// oldest closed ones are forgotten first (a peer that keeps reconnecting cannot grow it).
const REMEMBERED_CONNECTIONS: usize = 64;

/// Every connection a transport established, for their QUIC statistics.
#[derive(Clone, Default)]
struct Connections(Arc<std::sync::Mutex<Vec<Connection>>>);

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, conn: Connection) {
        let mut v = self.lock();
        if v.len() >= REMEMBERED_CONNECTIONS {
            match v.iter().position(|c| c.close_reason().is_some()) {
                Some(i) => {
                    v.remove(i);
                }
                None => {
                    v.remove(0);
                }
            }
        }
        v.push(conn);
    }

    fn stats(&self) -> Vec<quinn::ConnectionStats> {
        self.lock().iter().map(|c| c.stats()).collect()
    }
}

impl QuicTransport {
    /// Binds an endpoint for `identity.id` on `addr` (port 0 picks a free port).
    ///
    /// Must be called within a tokio runtime.
    pub fn bind(
        identity: &NodeIdentity,
        addr: SocketAddr,
        quic: &QuicSettings,
        settings: TransportSettings,
    ) -> Result<QuicBinding, TransportError> {
        Self::bind_emulated(identity, addr, quic, settings, None)
    }

    /// Like [`QuicTransport::bind`], with every outbound datagram sent through `emulator`
    /// (a socket below quinn, so QUIC reacts to the emulated links). With None the
    /// endpoint is exactly what `bind` makes: no emulation in the path.
    pub fn bind_emulated(
        identity: &NodeIdentity,
        addr: SocketAddr,
        quic: &QuicSettings,
        settings: TransportSettings,
        emulator: Option<&LinkEmulator>,
    ) -> Result<QuicBinding, TransportError> {
        settings.validate()?;
        let transport = Arc::new(quic.transport_config()?);
        let server_crypto = QuicServerConfig::try_from(tls::server_config(identity)?)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());
        let client_crypto = QuicClientConfig::try_from(tls::client_config(identity)?)?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
        client_config.transport_config(transport);
        let bind_err = |source| TransportError::Bind { addr, source };
        let (endpoint, emulated) = match emulator {
            None => {
                // What Endpoint::server does, with the node's own stateless-reset key.
                let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
                let endpoint = Endpoint::new(
                    endpoint_config(identity),
                    Some(server),
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(bind_err)?;
                (endpoint, None)
            }
            Some(emu) => {
                // What Endpoint::server does, with our socket between quinn and the real one.
                let socket = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
                let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
                let real = runtime.wrap_udp_socket(socket).map_err(bind_err)?;
                let sock = Arc::new(EmulatedSocket::new(
                    real,
                    emu.clone(),
                    netem::Endpoint::Node(identity.id),
                ));
                let endpoint = Endpoint::new_with_abstract_socket(
                    endpoint_config(identity),
                    Some(server),
                    sock.clone(),
                    runtime,
                )
                .map_err(bind_err)?;
                (endpoint, Some(sock))
            }
        };
        Ok(QuicBinding {
            id: identity.id,
            endpoint,
            client_config,
            mode: quic.stream_mode,
            settings,
            emulated,
        })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    /// Closes everything and waits until the peers were told (or the close timed out).
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        self.endpoint
            .close(close_code::SHUTDOWN.into(), b"shutting down");
        self.endpoint.wait_idle().await;
    }
}

impl QuicBinding {
    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    /// Starts serving `peers`, as [`super::Bound::start`] describes.
    pub fn start(self, peers: HashMap<NodeId, SocketAddr>) -> (QuicTransport, Inbound) {
        if let Some(sock) = &self.emulated {
            sock.set_peers(
                peers
                    .iter()
                    .map(|(&id, &addr)| (addr, netem::Endpoint::Node(id))),
            );
        }
        let (shared, inbound, dialed) = Shared::new(self.id, &peers, self.settings);
        let connections = Connections::default();
        let node = Arc::new(Node {
            shared: shared.clone(),
            endpoint: self.endpoint.clone(),
            client_config: self.client_config,
            mode: self.mode,
            connections: connections.clone(),
        });
        for (peer, addr) in dialed {
            tokio::spawn(node.clone().dial_loop(peer, addr));
        }
        tokio::spawn(node.accept_loop());
        (
            QuicTransport {
                shared,
                endpoint: self.endpoint,
                connections,
            },
            inbound,
        )
    }
}

impl Transport for QuicTransport {
    fn local_id(&self) -> NodeId {
        self.shared.id
    }
    fn send(&self, msg: Message) {
        self.shared.send(msg)
    }
    fn watch_connected(&self, peer: NodeId) -> Option<watch::Receiver<bool>> {
        self.shared.watch_connected(peer)
    }
    fn stats(&self) -> StatsSnapshot {
        self.shared.stats()
    }
    fn quic_connection_stats(&self) -> Vec<quinn::ConnectionStats> {
        self.connections.stats()
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.endpoint
            .close(close_code::SHUTDOWN.into(), b"shutting down");
    }
}

/// The endpoint configuration of `identity`'s node: quinn's defaults, with a stateless-reset
/// key derived from the node's private key instead of a random one. A node that restarts
/// (after a crash, with the same identity) then answers its peers' packets on their old
/// connections with resets they recognize, so they drop those connections and redial at
/// once, rather than waiting out the idle timeout while the node is unreachable.
pub(crate) fn endpoint_config(identity: &NodeIdentity) -> quinn::EndpointConfig {
    let mut d = ring::digest::Context::new(&ring::digest::SHA256);
    d.update(b"raftbench QUIC stateless reset key v1");
    d.update(identity.key.secret_der());
    let secret = d.finish();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_ref());
    let mut config = quinn::EndpointConfig::new(Arc::new(key));
    // quinn's default ids carry a hash under a random key, and a packet whose id fails it
    // gets no reset: the restarted node must accept the ids its previous life handed out.
    config.cid_generator(|| {
        Box::new(RandomCids(ring::rand::SystemRandom::new()))
            as Box<dyn quinn::ConnectionIdGenerator>
    });
    config
}

/// Random 8-byte connection ids that any restart of the node accepts as its own (so that
/// it answers packets on a connection it lost with a stateless reset).
struct RandomCids(ring::rand::SystemRandom);

impl quinn::ConnectionIdGenerator for RandomCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let mut id = [0u8; 8];
        // The system's generator does not fail on Linux; a zero id would still work.
        let _ = ring::rand::SecureRandom::fill(&self.0, &mut id);
        quinn::ConnectionId::new(&id)
    }
    fn cid_len(&self) -> usize {
        8
    }
    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// What the endpoint's tasks share.
struct Node {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    client_config: quinn::ClientConfig,
    mode: StreamMode,
    connections: Connections,
}

/// The node id in the certificate a connection's peer presented.
fn cert_peer_id(conn: &Connection) -> Result<NodeId, ConnError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(tls::TlsError::NoCertificate)?;
    Ok(tls::peer_id(&certs)?)
}

impl Node {
    async fn accept_loop(self: Arc<Self>) {
        loop {
            let incoming = tokio::select! {
                _ = self.shared.shutdown.cancelled() => return,
                i = self.endpoint.accept() => match i {
                    Some(i) => i,
                    None => return, // endpoint closed
                },
            };
            let node = self.clone();
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                let res = tokio::time::timeout(
                    node.shared.settings.handshake_timeout(),
                    node.accept_one(incoming),
                )
                .await
                .unwrap_or(Err(ConnError::Timeout));
                if let Err(e) = res {
                    node.shared.rejected(remote, &e);
                }
            });
        }
    }

    async fn accept_one(&self, incoming: quinn::Incoming) -> Result<(), ConnError> {
        let conn = incoming.await?;
        let peer = match cert_peer_id(&conn) {
            Ok(p) if self.shared.is_peer(p) => p,
            Ok(p) => {
                conn.close(close_code::UNKNOWN_PEER.into(), b"unknown peer");
                return Err(ConnError::UnknownPeer(p));
            }
            Err(e) => {
                conn.close(close_code::PROTOCOL.into(), b"bad certificate");
                return Err(e);
            }
        };
        self.establish(conn, peer).await?;
        debug!(node = self.shared.id, peer, "accepted connection");
        Ok(())
    }

    async fn dial_one(&self, peer: NodeId, addr: SocketAddr) -> Result<Connection, ConnError> {
        let conn = self
            .endpoint
            .connect_with(self.client_config.clone(), addr, &tls::server_name(peer))?
            .await?;
        let is = cert_peer_id(&conn)?;
        if is != peer {
            conn.close(close_code::PROTOCOL.into(), b"wrong node");
            return Err(ConnError::IdentityMismatch { said: is, is: peer });
        }
        self.establish(conn.clone(), peer).await?;
        Ok(conn)
    }

    async fn dial_loop(self: Arc<Self>, peer: NodeId, addr: SocketAddr) {
        let mut backoff = Backoff::new(&self.shared.settings);
        loop {
            let res = tokio::select! {
                _ = self.shared.shutdown.cancelled() => return,
                r = tokio::time::timeout(self.shared.settings.handshake_timeout(), self.dial_one(peer, addr)) => {
                    r.unwrap_or(Err(ConnError::Timeout))
                }
            };
            match res {
                Ok(conn) => {
                    debug!(node = self.shared.id, peer, "connected");
                    backoff.reset();
                    tokio::select! {
                        _ = self.shared.shutdown.cancelled() => return,
                        e = conn.closed() => {
                            debug!(node = self.shared.id, peer, error = %e, "connection lost; redialing");
                        }
                    }
                }
                Err(e) => debug!(node = self.shared.id, peer, error = %e, "dial failed"),
            }
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.step()) => {}
            }
        }
    }

    /// Exchanges Hellos on each side's first stream, then hands the connection to the
    /// peer's writer and starts reading. On error the connection is closed.
    async fn establish(&self, conn: Connection, peer: NodeId) -> Result<(), ConnError> {
        let res = async {
            let mut send = conn.open_uni().await?;
            send.write_all(&hello_frame(self.shared.id)).await?;
            let mut recv = conn.accept_uni().await?;
            let (said, buf) = read_hello(&mut recv).await?;
            if said != peer {
                return Err(ConnError::IdentityMismatch { said, is: peer });
            }
            Ok((send, recv, buf))
        }
        .await;
        let (mut send, recv, buf) = match res {
            Ok(x) => x,
            Err(e) => {
                conn.close(close_code::PROTOCOL.into(), b"handshake failed");
                return Err(e);
            }
        };
        let io = match self.mode {
            StreamMode::Pipelined => SinkIo::QuicStream(send),
            StreamMode::PerBatch => {
                send.finish()?;
                SinkIo::QuicPerMessage(conn.clone())
            }
        };
        self.connections.add(conn.clone());
        self.shared.register(
            peer,
            Sink {
                io,
                ctl: ConnCtl::Quic(conn.clone()),
            },
        );
        spawn_reader(self.shared.clone(), conn.clone(), peer, recv, buf);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    s = conn.accept_uni() => s,
                };
                match stream {
                    Ok(s) => spawn_reader(shared.clone(), conn.clone(), peer, s, BytesMut::new()),
                    Err(e) => {
                        debug!(node = shared.id, peer, error = %e, "connection ended");
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}

fn spawn_reader(
    shared: Arc<Shared>,
    conn: Connection,
    peer: NodeId,
    mut recv: quinn::RecvStream,
    buf: BytesMut,
) {
    tokio::spawn(async move {
        let res = shared.read_frames(&mut recv, buf, peer).await;
        let ctl = ConnCtl::Quic(conn);
        if res.is_err() && !ctl.is_closed() && !shared.shutdown.is_cancelled() {
            // Tell a misbehaving sender to stop before the close reaches it.
            let _ = recv.stop(VarInt::from_u32(close_code::PROTOCOL));
        }
        shared.reader_done(peer, &ctl, res);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_build() {
        QuicSettings::default().transport_config().unwrap();
        let s: QuicSettings = toml::from_str(
            "congestion = \"bbr\"\nstream_mode = \"per_batch\"\nack_eliciting_threshold = 10",
        )
        .unwrap();
        assert_eq!(s.congestion, CongestionController::Bbr);
        assert_eq!(s.stream_mode, StreamMode::PerBatch);
        s.transport_config().unwrap();
        let bad = QuicSettings {
            receive_window: u64::MAX,
            ..QuicSettings::default()
        };
        assert!(bad.transport_config().is_err());
    }
}
