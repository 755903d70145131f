//! How clients reach a server in the same process, and what they get back.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::kv::{Command, CommandError, Output};
use crate::raft::{Index, NodeId, Role, Stats, Term, Time};

/// The answer to one request.
pub type Reply = Result<Output, ClientError>;

/// When the leader handled one committed request, on the node's clock (the epoch its
/// [`super::ServerParts`] names). The stamps travel with the answer, so a client can split
/// its latency into phases without joining anything afterwards; they never decrease:
/// `accepted <= sent <= committed <= applied`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// The log index the request took.
    pub index: Index,
    /// The leader appended it to its log.
    pub accepted: Time,
    /// The first AppendEntries carrying it left (the commit instant when none was needed:
    /// a single-node cluster).
    pub sent: Time,
    /// The leader saw it committed.
    pub committed: Time,
    /// The leader applied it and was about to answer.
    pub applied: Time,
}

/// A reply to a request that named an id, as queued consumers receive it.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The id the request carried.
    pub id: u64,
    /// The outcome.
    pub reply: Reply,
    /// When the leader handled it; present on every successful reply that went through the
    /// log (all of them: Gets are linearized through the log too).
    pub trace: Option<Trace>,
}

/// Why a request did not succeed. All but `BadCommand` are worth retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// This node does not lead; retry at the leader it names, if any.
    #[error("not the leader; try {leader:?}")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The node lost leadership while the request was in flight: it may or may not have
    /// been applied. Retry (a retried Put is idempotent, a Get harmless).
    #[error("leadership lost while the request was in flight; outcome unknown, retry")]
    LeadershipLost,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The payload is not a command.
    #[error("bad command: {0}")]
    BadCommand(CommandError),
    /// The leader refused the request at once, without appending it: it already holds as
    /// many uncommitted proposals as `raft.max_uncommitted_entries` (or `_bytes`) allow, or
    /// its request queue is full. The cluster commits more slowly than requests arrive;
    /// retry later (nothing was applied).
    #[error("overloaded: the leader holds as many uncommitted proposals as it may; retry later")]
    Overloaded,
}

/// Where a server sends the reply for one request.
#[derive(Debug)]
pub enum ReplyTo {
    /// A one-off waiter.
    Oneshot(oneshot::Sender<Reply>),
    /// A queue shared by many requests in flight (a network connection's writer, a load
    /// generator); answers carry the request id and the leader's [`Trace`].
    Channel(mpsc::UnboundedSender<Answer>),
    /// A queue that takes answers in batches: a server sends the answers of one driver
    /// round that go to the same queue together (the harness's open loop). One channel
    /// send per answer (an atomic push and a wake) was 8% of all CPU samples at 1,000,000
    /// Puts/s offered; per round it is one.
    Batch(mpsc::UnboundedSender<Vec<Answer>>),
}

impl ReplyTo {
    /// Delivers the reply; a waiter that has gone away is ignored.
    pub fn send(self, id: u64, reply: Reply, trace: Option<Trace>) {
        match self {
            ReplyTo::Oneshot(tx) => {
                let _ = tx.send(reply);
            }
            ReplyTo::Channel(tx) => {
                let _ = tx.send(Answer { id, reply, trace });
            }
            ReplyTo::Batch(tx) => {
                let _ = tx.send(vec![Answer { id, reply, trace }]);
            }
        }
    }
}

/// Answers gathered over one driver round, one batch per [`ReplyTo::Batch`] queue, sent
/// together by [`flush`](Outbox::flush); other replies go out at once.
#[derive(Debug, Default)]
pub struct Outbox {
    batches: Vec<(mpsc::UnboundedSender<Vec<Answer>>, Vec<Answer>)>,
}

impl Outbox {
    /// Sends the reply now, or holds it for its queue's batch.
    pub fn send(&mut self, to: ReplyTo, id: u64, reply: Reply, trace: Option<Trace>) {
        let ReplyTo::Batch(tx) = to else {
            return to.send(id, reply, trace);
        };
        let answer = Answer { id, reply, trace };
        // A round's answers nearly always go to one queue, so the last batch is the one.
        match self
            .batches
            .iter_mut()
            .rev()
            .find(|(q, _)| q.same_channel(&tx))
        {
            Some((_, batch)) => batch.push(answer),
            None => self.batches.push((tx, vec![answer])),
        }
    }

    /// Sends every held batch (a queue whose receiver has gone is skipped).
    pub fn flush(&mut self) {
        for (tx, batch) in self.batches.drain(..) {
            let _ = tx.send(batch);
        }
    }
}

/// A client request as the server takes it.
#[derive(Debug)]
pub struct Request {
    /// The client's id for the request, echoed in queued replies.
    pub id: u64,
    /// The encoded [`Command`].
    pub command: Bytes,
    /// Where the answer goes.
    pub reply: ReplyTo,
}

/// What a node reports about itself, for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit_index: Index,
    /// Highest index applied to its key-value store.
    pub applied_index: Index,
    /// Its last log index.
    pub last_index: Index,
    /// What its core has sent so far.
    pub stats: Stats,
    /// The node's `Time` zero (its epoch) as a `CLOCK_MONOTONIC` reading in ns: processes
    /// on one host put each other's timestamps on one clock with it.
    pub clock_origin_ns: u64,
    /// The node process's CPU time so far, user plus system, in ns (0: not a node process).
    pub cpu_ns: u64,
    /// The node process's resident memory now, in bytes (0: not a node process).
    pub rss_bytes: u64,
    /// Bytes the node's Raft transport has sent (0: not measured).
    pub transport_bytes_sent: u64,
}

impl Default for NodeStatus {
    fn default() -> Self {
        NodeStatus {
            id: 0,
            role: Role::Follower,
            term: 0,
            leader: None,
            commit_index: 0,
            applied_index: 0,
            last_index: 0,
            stats: Stats::default(),
            clock_origin_ns: 0,
            cpu_ns: 0,
            rss_bytes: 0,
            transport_bytes_sent: 0,
        }
    }
}

/// Why [`ServerHandle::offer`] handed a request back.
#[derive(Debug)]
pub enum Refused {
    /// The server's request queue is full.
    Full(Request),
    /// The server has stopped.
    Closed(Request),
}

/// A cheap, cloneable way to submit requests to one server.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    id: NodeId,
    tx: mpsc::Sender<Request>,
    status: watch::Receiver<NodeStatus>,
    control: mpsc::UnboundedSender<super::Control>,
    room: std::sync::Arc<Room>,
}

/// Room for new proposals under the leader's uncommitted limit, as the leader last saw it,
/// less what in-process senders have claimed since: a credit window, as QUIC's flow control
/// is one. The leader rewrites it once per driver round; a sender claims one unit per
/// request and refuses the request itself when none is left.
///
/// A yes/no "full" flag, which this replaces, let every request sent between two rounds
/// through: past the knee the leader then refused thousands per round, each a message to
/// it and an answer back, and delivered 78% of its peak at 1.7x the peak offered.
#[derive(Debug)]
pub struct Room(std::sync::atomic::AtomicI64);

impl Default for Room {
    fn default() -> Self {
        Room(std::sync::atomic::AtomicI64::new(Room::UNLIMITED))
    }
}

impl Room {
    /// What a node that does not lead publishes: senders are not held back (they learn
    /// from its answer where the leader is).
    pub const UNLIMITED: i64 = i64::MAX / 2;

    /// The leader's view at the end of a round: `left` more proposals fit.
    pub fn publish(&self, left: i64) {
        self.0.store(left, std::sync::atomic::Ordering::Relaxed);
    }

    /// Claims room for one request; false when the last published room is used up.
    pub fn claim(&self) -> bool {
        // Refused claims only read: past the knee most claims are refused, and a write
        // each would pull the line away from the leader's next publication for nothing.
        self.0.load(std::sync::atomic::Ordering::Relaxed) > 0
            && self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) > 0
    }

    /// The room left now (may be negative: claims refused since the last publication).
    pub fn left(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ServerHandle {
    pub(super) fn new(
        id: NodeId,
        tx: mpsc::Sender<Request>,
        status: watch::Receiver<NodeStatus>,
        control: mpsc::UnboundedSender<super::Control>,
        room: std::sync::Arc<Room>,
    ) -> ServerHandle {
        ServerHandle {
            id,
            tx,
            status,
            control,
            room,
        }
    }

    /// Claims room for one request under the leader's uncommitted limit ([`Room`]); false:
    /// a request sent now would most likely be refused with [`ClientError::Overloaded`].
    /// An in-process sender that honours this pushback (the harness's open loop) refuses
    /// the request itself and spares the leader the work; the leader still refuses
    /// whatever arrives past its limit.
    pub fn claim_room(&self) -> bool {
        self.room.claim()
    }

    /// Blocks the node's thread for `d` (see [`super::Control::Stall`]).
    pub fn stall(&self, d: std::time::Duration) {
        let _ = self.control.send(super::Control::Stall(d));
    }

    /// Submits a request from a thread outside any tokio runtime, waiting for room.
    pub fn blocking_send(&self, req: Request) -> Result<(), Request> {
        self.tx.blocking_send(req).map_err(|e| e.0)
    }

    /// Whether the server behind this handle has stopped taking requests (it ended, or
    /// its node was killed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The node's latest status.
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// A watch on the node's status, to wait for a condition.
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.status.clone()
    }

    /// The node this handle reaches.
    pub fn node(&self) -> NodeId {
        self.id
    }

    /// Submits a command and waits for its reply.
    pub async fn submit(&self, cmd: &Command) -> Reply {
        let (tx, rx) = oneshot::channel();
        let req = Request {
            id: 0,
            command: cmd.encode(),
            reply: ReplyTo::Oneshot(tx),
        };
        if self.tx.send(req).await.is_err() {
            return Err(ClientError::ShuttingDown);
        }
        rx.await.unwrap_or(Err(ClientError::ShuttingDown))
    }

    /// Submits a request without waiting; the reply goes where `req.reply` says.
    /// Fails at once (with the request handed back) if the server's queue is full or closed.
    pub fn try_send(&self, req: Request) -> Result<(), Request> {
        self.tx.try_send(req).map_err(|e| e.into_inner())
    }

    /// Submits a request without waiting, saying whether a refusal means the queue is full
    /// (the caller may answer [`ClientError::Overloaded`]) or the server is gone.
    pub fn offer(&self, req: Request) -> Result<(), Refused> {
        self.tx.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) => Refused::Full(r),
            mpsc::error::TrySendError::Closed(r) => Refused::Closed(r),
        })
    }

    /// Submits a request, waiting for room in the server's queue.
    pub async fn send(&self, req: Request) -> Result<(), Request> {
        self.tx.send(req).await.map_err(|e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Room;

    #[test]
    fn room_lets_through_what_was_published_and_no_more_until_the_next_publication() {
        let room = Room::default();
        assert!(
            (0..1000).all(|_| room.claim()),
            "a node that never led holds no one back"
        );
        room.publish(3);
        let granted = (0..10).filter(|_| room.claim()).count();
        assert_eq!(granted, 3);
        assert_eq!(room.left(), 0, "refused claims leave the count alone");
        room.publish(0);
        assert!(!room.claim(), "a full leader takes nothing");
        room.publish(-5);
        assert!(!room.claim(), "nor does one past its limit");
        room.publish(Room::UNLIMITED);
        assert!(room.claim());
    }
}
