//! Binding and starting a transport whose kind is chosen at run time: the one place the
//! in-process cluster, the node process and the transport-level floors turn a
//! [`TransportKind`] into a running [`Transport`].
//!
//! Starting is split in two because a node must publish its address before it can
//! learn its peers': [`bind`] claims the socket (or the memory mailbox), then
//! [`Bound::local_addr`] is swapped with the peers, then [`Bound::start`] serves them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{
    Inbound, MemNetwork, MemTransport, QuicBinding, QuicSettings, QuicTransport, TcpBinding,
    TcpTransport, Transport, TransportError, TransportKind, TransportSettings,
};
use crate::netem::LinkEmulator;
use crate::raft::types::NodeId;
use crate::tls::NodeIdentity;

/// What one node's transport is bound with, whatever its kind.
pub struct BindSpec<'a> {
    /// Which transport.
    pub kind: TransportKind,
    /// This node's id.
    pub id: NodeId,
    /// Where to listen (port 0 picks a free port); a memory node only reports it back.
    pub addr: SocketAddr,
    /// The node's TLS identity: required for QUIC, unused by the others.
    pub identity: Option<&'a NodeIdentity>,
    /// QUIC parameters (QUIC only).
    pub quic: &'a QuicSettings,
    /// Queue and frame limits; a memory node takes only its `inbound_queue`.
    pub settings: TransportSettings,
    /// Emulated links for QUIC (below quinn) and TCP (per message). None: no emulator in
    /// the path. A memory network carries its own ([`MemNetwork::with_emulator`]).
    pub emulator: Option<&'a LinkEmulator>,
    /// The network a memory node joins: required for memory, unused by the others.
    pub mem: Option<&'a MemNetwork>,
}

/// A transport bound but not yet serving: read [`Bound::local_addr`], then
/// [`Bound::start`].
pub struct Bound(Inner);

enum Inner {
    Quic(QuicBinding),
    Tcp(TcpBinding),
    /// A memory node has joined its network at bind time, so that a peer that starts
    /// after the address swap can already reach it (a message to an absent node is dropped).
    Mem {
        addr: SocketAddr,
        transport: MemTransport,
        inbound: Inbound,
    },
}

/// Binds node `spec.id`'s transport of `spec.kind`. Must be called within a tokio runtime.
pub async fn bind(spec: BindSpec<'_>) -> Result<Bound, TransportError> {
    let inner = match spec.kind {
        TransportKind::Quic => {
            let identity = spec.identity.ok_or(TransportError::NoIdentity(spec.id))?;
            Inner::Quic(QuicTransport::bind_emulated(
                identity,
                spec.addr,
                spec.quic,
                spec.settings,
                spec.emulator,
            )?)
        }
        TransportKind::Tcp => Inner::Tcp(
            TcpTransport::bind(spec.id, spec.addr, spec.settings)
                .await?
                .with_emulator(spec.emulator.cloned()),
        ),
        TransportKind::Mem => {
            let net = spec.mem.ok_or(TransportError::NoMemNetwork(spec.id))?;
            let (transport, inbound) = net.join(spec.id, spec.settings.inbound_queue);
            Inner::Mem {
                addr: spec.addr,
                transport,
                inbound,
            }
        }
    };
    Ok(Bound(inner))
}

impl Bound {
    /// The address to give the peers: the socket's, or for memory the address asked for.
    pub fn local_addr(&self) -> SocketAddr {
        match &self.0 {
            Inner::Quic(b) => b.local_addr(),
            Inner::Tcp(b) => b.local_addr(),
            Inner::Mem { addr, .. } => *addr,
        }
    }

    /// Starts serving: accepts connections from `peers` and dials those with a higher id.
    ///
    /// `peers` maps every other member to its address (an entry for this node is
    /// ignored); a memory node needs no addresses. Must be called within a tokio runtime.
    pub fn start(self, peers: HashMap<NodeId, SocketAddr>) -> (Arc<dyn Transport>, Inbound) {
        match self.0 {
            Inner::Quic(b) => {
                let (t, i) = b.start(peers);
                (Arc::new(t), i)
            }
            Inner::Tcp(b) => {
                let (t, i) = b.start(peers);
                (Arc::new(t), i)
            }
            Inner::Mem {
                transport, inbound, ..
            } => (Arc::new(transport), inbound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::message::{Message, MessageBody, RequestVote};
    use crate::transport::MemMode;

    fn spec<'a>(kind: TransportKind, id: NodeId, quic: &'a QuicSettings) -> BindSpec<'a> {
        BindSpec {
            kind,
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            identity: None,
            quic,
            settings: TransportSettings::default(),
            emulator: None,
            mem: None,
        }
    }

    #[tokio::test]
    async fn missing_identity_or_network_is_an_error_naming_the_node() {
        let quic = QuicSettings::default();
        let e = bind(spec(TransportKind::Quic, 3, &quic)).await.err();
        assert!(matches!(e, Some(TransportError::NoIdentity(3))), "{e:?}");
        let e = bind(spec(TransportKind::Mem, 4, &quic)).await.err();
        assert!(matches!(e, Some(TransportError::NoMemNetwork(4))), "{e:?}");
    }

    #[tokio::test]
    async fn memory_nodes_are_reachable_from_bind_on() {
        let quic = QuicSettings::default();
        let net = MemNetwork::new(MemMode::Move);
        let bound = |id| BindSpec {
            mem: Some(&net),
            ..spec(TransportKind::Mem, id, &quic)
        };
        let one = bind(bound(1)).await.unwrap();
        let two = bind(bound(2)).await.unwrap();
        assert_eq!(two.local_addr(), SocketAddr::from(([127, 0, 0, 1], 0)));
        // Node 1 sends before node 2 has started: node 2 joined its network at bind.
        let (t1, _in1) = one.start(HashMap::new());
        t1.send(Message {
            from: 1,
            to: 2,
            term: 7,
            body: MessageBody::RequestVote(RequestVote {
                last_log_index: 0,
                last_log_term: 0,
                pre_vote: false,
            }),
        });
        let (_t2, mut in2) = two.start(HashMap::new());
        let (from, m) = in2.try_recv().expect("the message waits in node 2's inbox");
        assert_eq!((from, m.term), (1, 7));
    }
}
