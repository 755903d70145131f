//! In-process transport: messages move through channels, without sockets.
//!
//! It is the floor the network transports are compared with. [`MemMode::Move`] hands
//! the `Message` value itself to the receiver; [`MemMode::Encode`] encodes it and
//! decodes the frame on the sender's thread, so that codec cost is included and the
//! receiver gets entries sliced out of a frame, as from a socket.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::BytesMut;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::{bump, Inbound, Stats, StatsSnapshot, Transport};
use crate::codec;
use crate::netem::{Endpoint, LinkEmulator, Traffic};
use crate::raft::message::Message;
use crate::raft::types::NodeId;

/// Whether messages are encoded on their way through memory.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MemMode {
    /// Move the value: no serialization at all.
    #[default]
    Move,
    /// Encode to a frame and decode it again, as a socket transport would.
    Encode,
}

type Mailboxes = HashMap<NodeId, mpsc::Sender<(NodeId, Message)>>;

/// A set of in-process nodes that can reach each other; cheap to clone.
#[derive(Clone, Default)]
pub struct MemNetwork {
    nodes: Arc<RwLock<Mailboxes>>,
    mode: MemMode,
    emulator: Option<LinkEmulator>,
}

impl MemNetwork {
    /// An empty network whose transports use `mode`.
    pub fn new(mode: MemMode) -> Self {
        MemNetwork {
            nodes: Arc::default(),
            mode,
            emulator: None,
        }
    }

    /// An empty network whose messages cross `emulator`'s links (delay, jitter, loss,
    /// duplication, bandwidth, partitions per message); None is [`MemNetwork::new`].
    pub fn with_emulator(mode: MemMode, emulator: Option<LinkEmulator>) -> Self {
        MemNetwork {
            emulator,
            ..MemNetwork::new(mode)
        }
    }

    /// Adds node `id` with an inbound queue of `capacity` messages; replaces an earlier
    /// node with the same id (a restart).
    pub fn join(&self, id: NodeId, capacity: usize) -> (MemTransport, Inbound) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.nodes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx.clone());
        let (up, _) = watch::channel(true);
        let t = MemTransport {
            id,
            net: self.clone(),
            own: tx,
            up,
            stats: Stats::default(),
        };
        (t, rx)
    }
}

/// One node's handle on a [`MemNetwork`]; dropping it removes the node.
pub struct MemTransport {
    id: NodeId,
    net: MemNetwork,
    /// Our own mailbox, so that drop removes only it and not a newer node with our id.
    own: mpsc::Sender<(NodeId, Message)>,
    up: watch::Sender<bool>,
    stats: Stats,
}

impl Transport for MemTransport {
    fn local_id(&self) -> NodeId {
        self.id
    }

    fn send(&self, msg: Message) {
        let to = msg.to;
        let tx = self
            .net
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&to)
            .cloned();
        let Some(tx) = tx else {
            debug!(to, "dropping message for an absent node");
            bump(&self.stats.messages_dropped, 1);
            return;
        };
        let msg = match self.net.mode {
            MemMode::Move => msg,
            MemMode::Encode => {
                let mut buf = BytesMut::with_capacity(codec::encoded_len(&msg));
                codec::encode(&msg, &mut buf);
                bump(&self.stats.bytes_sent, buf.len() as u64);
                match codec::decode(buf.freeze()) {
                    Ok(m) => m,
                    Err(e) => unreachable!("a frame we just encoded does not decode: {e}"),
                }
            }
        };
        if let Some(emu) = &self.net.emulator {
            let size = codec::encoded_len(&msg);
            let (from, to) = (Endpoint::Node(self.id), Endpoint::Node(to));
            // A copy that finds the inbox full later is lost, like a datagram.
            emu.submit(
                from,
                to,
                size,
                Traffic::Datagram,
                (self.id, msg),
                move |m| {
                    let _ = tx.try_send(m);
                },
            );
            bump(&self.stats.messages_sent, 1);
            bump(&self.stats.writes, 1);
            return;
        }
        match tx.try_send((self.id, msg)) {
            Ok(()) => {
                bump(&self.stats.messages_sent, 1);
                bump(&self.stats.writes, 1);
            }
            Err(_) => bump(&self.stats.messages_dropped, 1),
        }
    }

    /// Memory links are always up: a message to an absent node is simply dropped.
    fn watch_connected(&self, _peer: NodeId) -> Option<watch::Receiver<bool>> {
        Some(self.up.subscribe())
    }

    fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}

impl Drop for MemTransport {
    fn drop(&mut self) {
        let mut nodes = self.net.nodes.write().unwrap_or_else(|e| e.into_inner());
        if nodes
            .get(&self.id)
            .is_some_and(|tx| tx.same_channel(&self.own))
        {
            nodes.remove(&self.id);
        }
    }
}
