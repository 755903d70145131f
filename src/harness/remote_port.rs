//! A [`LoadPort`](crate::harness::target::LoadPort) to nodes in other processes or on other
//! hosts: the harness's requests go through the pipelined client
//! ([`crate::remote::Pipeline`]) and its answers come back as the in-process
//! [`Answer`]s, so the open loop, the closed loop and the reply recorder run unchanged.
//!
//! The pipeline runs on a thread of its own with a current-thread runtime. A request's
//! [`ReplyTo`] waits in a map under the pipeline's id until its answer arrives; the map
//! holds at most [`PipelineOptions::max_outstanding`] entries, like the pipeline. The
//! leader stamps its [`Trace`] on its own clock: [`ClockMap`] holds each node's offset to
//! the harness's clock, and an answer from a node whose offset is not known yet carries no
//! trace (its phases count as missing rather than being made up).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::kv::CommandError;
use crate::raft::{NodeId, Time};
use crate::remote::{
    Answers, ConnectError, Connector, Pipeline, PipelineOptions, RemoteAnswer, RemoteReplyError,
    SubmitError, Submitter,
};
use crate::server::{ClientError, Refused, Reply, ReplyTo, Request, Trace};

/// How long [`RemotePort::start`] waits for its thread to make the connector and start the
/// pipeline.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dropping the last [`RemotePort`] waits for its thread to close the connections.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a sender that waits for room looks again.
const ROOM_POLL: Duration = Duration::from_millis(1);
/// Most answers handed over per turn of the port's thread.
const BATCH: usize = 1024;

/// Each node's clock offset to the harness's clock: `harness_ns = node_ns + offset_ns`,
/// where `harness_ns` counts from the harness's epoch (its [`Window::epoch`]) and
/// `node_ns` is a [`Time`] the node stamped. Settable while the port runs.
///
/// [`Window::epoch`]: crate::harness::window::Window::epoch
#[derive(Debug, Default)]
pub struct ClockMap {
    offsets: RwLock<HashMap<NodeId, i64>>,
}

impl ClockMap {
    /// No offsets known (every trace is dropped until some are set).
    pub fn new() -> ClockMap {
        ClockMap::default()
    }

    /// A map holding `offsets`.
    pub fn with(offsets: HashMap<NodeId, i64>) -> ClockMap {
        ClockMap {
            offsets: RwLock::new(offsets),
        }
    }

    /// Sets node `node`'s offset (ns).
    pub fn set(&self, node: NodeId, offset_ns: i64) {
        self.write().insert(node, offset_ns);
    }

    /// Replaces every offset with `offsets`.
    pub fn set_all(&self, offsets: HashMap<NodeId, i64>) {
        *self.write() = offsets;
    }

    /// Node `node`'s offset, if known.
    pub fn get(&self, node: NodeId) -> Option<i64> {
        self.offsets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node)
            .copied()
    }

    /// Every offset known now.
    pub fn snapshot(&self) -> HashMap<NodeId, i64> {
        self.offsets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<NodeId, i64>> {
        self.offsets.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// `t` (on a node's clock) moved onto the harness's clock by `offset_ns`; None if a stamp
/// would fall before the harness's epoch or overflow (the offset cannot be right then).
pub fn translate(t: &Trace, offset_ns: i64) -> Option<Trace> {
    let mv = |at: Time| {
        at.as_nanos()
            .checked_add_signed(offset_ns)
            .map(Time::from_nanos)
    };
    Some(Trace {
        index: t.index,
        accepted: mv(t.accepted)?,
        sent: mv(t.sent)?,
        committed: mv(t.committed)?,
        applied: mv(t.applied)?,
    })
}

/// A failure as it arrives over the wire, as the harness's in-process answers say it.
///
/// A request the pipeline gave up on ([`RemoteReplyError::Unreachable`]: no node reached or
/// none led before its deadline) answers [`ClientError::LeadershipLost`], "outcome unknown":
/// it may have reached a leader before a connection was lost, so it must not count as
/// surely not applied. [`RemotePort::stats`] counts these answers apart.
pub fn client_error(e: RemoteReplyError) -> ClientError {
    match e {
        RemoteReplyError::NotLeader(leader) => ClientError::NotLeader { leader },
        RemoteReplyError::LeadershipLost => ClientError::LeadershipLost,
        RemoteReplyError::ShuttingDown => ClientError::ShuttingDown,
        RemoteReplyError::Overloaded => ClientError::Overloaded,
        RemoteReplyError::BadCommand(why) => ClientError::BadCommand(command_error(&why)),
        RemoteReplyError::Unreachable(_) => ClientError::LeadershipLost,
    }
}

/// The [`CommandError`] whose text a node sent (its `Display`); a text this client does not
/// know reads as truncated, the error a command cut short or garbled gives.
fn command_error(why: &str) -> CommandError {
    if let Some(tag) = why.strip_prefix("unknown command tag ") {
        if let Ok(tag) = tag.trim().parse() {
            return CommandError::UnknownTag(tag);
        }
    }
    CommandError::Truncated
}

/// Why a [`RemotePort`] did not start.
#[derive(Debug, thiserror::Error)]
pub enum RemotePortError {
    /// The cluster has no node to send to.
    #[error("a remote load port needs at least one node's client address")]
    NoNodes,
    /// The port's thread or its runtime could not be made.
    #[error("remote load port thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The connector (client certificate, socket) could not be made.
    #[error("remote load port: {0}")]
    Connect(#[from] ConnectError),
    /// The thread did not report back in time.
    #[error("the remote load port's thread did not start within {0:?}")]
    StartTimeout(Duration),
}

/// What a [`RemotePort`] has seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemotePortStats {
    /// Answers handed to their requests' [`ReplyTo`].
    pub answered: u64,
    /// Of which successful.
    pub ok: u64,
    /// Of which the pipeline gave up on ([`RemoteReplyError::Unreachable`]).
    pub unreachable: u64,
    /// The reason the last of those gave.
    pub last_unreachable: Option<String>,
    /// Successful answers that came without a trace, or from a node with no offset yet.
    pub untraced: u64,
    /// The node that answered last.
    pub last_node: Option<NodeId>,
}

/// The state the senders and the port's thread share.
struct Shared {
    submitter: Submitter,
    max: usize,
    /// The pipeline's resend deadline: also how long a sender waits for room.
    deadline: Duration,
    /// Pipeline id -> (the harness's request id, where its answer goes).
    waiting: Mutex<HashMap<u64, (u64, ReplyTo)>>,
    closed: AtomicBool,
    offsets: Arc<ClockMap>,
    answered: AtomicU64,
    ok: AtomicU64,
    unreachable: AtomicU64,
    untraced: AtomicU64,
    last_node: AtomicU64,
    last_unreachable: Mutex<Option<String>>,
}

impl Shared {
    fn waiting(&self) -> MutexGuard<'_, HashMap<u64, (u64, ReplyTo)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands each answer of `batch` to its request (drains `batch`; `out` is scratch).
    fn deliver(&self, batch: &mut Vec<RemoteAnswer>, out: &mut Vec<(u64, ReplyTo, RemoteAnswer)>) {
        {
            let mut waiting = self.waiting();
            for a in batch.drain(..) {
                if let Some((id, reply)) = waiting.remove(&a.id) {
                    out.push((id, reply, a));
                }
            }
        }
        for (id, reply_to, a) in out.drain(..) {
            let (reply, trace) = self.convert(a);
            reply_to.send(id, reply, trace);
        }
    }

    fn convert(&self, a: RemoteAnswer) -> (Reply, Option<Trace>) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        self.last_node.store(a.node, Ordering::Relaxed);
        match a.reply {
            Ok(out) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let trace = a
                    .trace
                    .and_then(|t| translate(&t, self.offsets.get(a.node)?));
                if trace.is_none() {
                    self.untraced.fetch_add(1, Ordering::Relaxed);
                }
                (Ok(out), trace)
            }
            Err(e) => {
                if let RemoteReplyError::Unreachable(why) = &e {
                    self.unreachable.fetch_add(1, Ordering::Relaxed);
                    *self
                        .last_unreachable
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                }
                (Err(client_error(e)), None)
            }
        }
    }

    /// Refuses every later request and answers those still waiting: the port stops.
    fn close(&self) {
        let left: Vec<(u64, ReplyTo)> = {
            let mut waiting = self.waiting();
            self.closed.store(true, Ordering::Relaxed);
            waiting.drain().map(|(_, v)| v).collect()
        };
        for (id, reply) in left {
            reply.send(id, Err(ClientError::ShuttingDown), None);
        }
    }
}

/// Stops the port's thread when the last clone of the port goes.
struct Owner {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    done: Mutex<std::sync::mpsc::Receiver<()>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Owner {
    fn stop(&self) {
        let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let _ = stop.send(());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(thread) = thread else { return };
        if thread.thread().id() == std::thread::current().id() {
            return; // dropped by its own thread: it ends by itself
        }
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        match done.recv_timeout(STOP_TIMEOUT) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                "the remote load port's thread did not stop within {STOP_TIMEOUT:?}; left behind"
            ),
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where load goes when the nodes run in other processes: see the module docs. Cheap to
/// clone; the pipeline stops (its connections closed) when the last clone is dropped.
#[derive(Clone)]
pub struct RemotePort {
    shared: Arc<Shared>,
    owner: Arc<Owner>,
}

impl std::fmt::Debug for RemotePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePort")
            .field("outstanding", &self.shared.submitter.outstanding())
            .field("max_outstanding", &self.shared.max)
            .finish()
    }
}

/// Makes the port's [`Connector`], on the port's own thread and inside its runtime (so a
/// caller can first enter a network namespace there).
pub type MakeConnector = Box<dyn FnOnce() -> Result<Connector, ConnectError> + Send>;

impl RemotePort {
    /// Starts a pipeline to the nodes at `addrs` on a thread of its own: `make_connector`
    /// runs on that thread before any socket is made. Answers' traces are moved onto the
    /// harness's clock by `offsets` (which may be filled later).
    pub fn start(
        addrs: HashMap<NodeId, SocketAddr>,
        make_connector: MakeConnector,
        opts: PipelineOptions,
        offsets: Arc<ClockMap>,
    ) -> Result<RemotePort, RemotePortError> {
        if addrs.is_empty() {
            return Err(RemotePortError::NoNodes);
        }
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let max = opts.max_outstanding.max(1);
        let deadline = opts.deadline;
        let thread = std::thread::Builder::new()
            .name("rb-remote-port".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(RemotePortError::Thread(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let connector = match make_connector() {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let (submitter, answers) = Pipeline::start(addrs, connector.clone(), opts);
                    let shared = Arc::new(Shared {
                        submitter,
                        max,
                        deadline,
                        waiting: Mutex::new(HashMap::new()),
                        closed: AtomicBool::new(false),
                        offsets,
                        answered: AtomicU64::new(0),
                        ok: AtomicU64::new(0),
                        unreachable: AtomicU64::new(0),
                        untraced: AtomicU64::new(0),
                        last_node: AtomicU64::new(0),
                        last_unreachable: Mutex::new(None),
                    });
                    if ready_tx.send(Ok(shared.clone())).is_err() {
                        return; // the starter gave up waiting
                    }
                    serve(&shared, answers, stop_rx).await;
                    shared.close();
                    connector.close().await;
                });
                drop(rt);
                let _ = done_tx.send(());
            })
            .map_err(RemotePortError::Thread)?;
        let owner = Arc::new(Owner {
            stop: Mutex::new(Some(stop_tx)),
            done: Mutex::new(done_rx),
            thread: Mutex::new(Some(thread)),
        });
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(shared)) => Ok(RemotePort { shared, owner }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RemotePortError::StartTimeout(START_TIMEOUT)),
        }
        // On an error `owner` drops here: it stops and joins the thread.
    }

    /// Submits without waiting: a full pipeline hands the request back as
    /// [`Refused::Full`], a stopped one as [`Refused::Closed`].
    pub fn offer(&self, req: Request) -> Result<(), Refused> {
        let s = &*self.shared;
        let mut waiting = s.waiting();
        if s.closed.load(Ordering::Relaxed) {
            return Err(Refused::Closed(req));
        }
        if waiting.len() >= s.max {
            return Err(Refused::Full(req));
        }
        // Submitted under the lock, so that the answer cannot arrive before its entry.
        match s.submitter.submit(req.command.clone()) {
            Ok(pid) => {
                waiting.insert(pid, (req.id, req.reply));
                Ok(())
            }
            Err(SubmitError::Full(_)) => Err(Refused::Full(req)),
            Err(SubmitError::Closed) => Err(Refused::Closed(req)),
        }
    }

    /// How long [`RemotePort::blocking_send`] and [`RemotePort::send`] wait for room.
    pub fn send_timeout(&self) -> Duration {
        // As long as a request may be resent: longer, the cluster is as good as gone.
        self.shared.deadline
    }

    /// Submits from a plain thread, waiting (at most [`RemotePort::send_timeout`]) for
    /// room; hands the request back if the port stopped or no room came.
    pub fn blocking_send(&self, mut req: Request) -> Result<(), Request> {
        let until = Instant::now() + self.send_timeout();
        loop {
            match self.offer(req) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed(r)) => return Err(r),
                Err(Refused::Full(r)) if Instant::now() >= until => return Err(r),
                Err(Refused::Full(r)) => req = r,
            }
            std::thread::sleep(ROOM_POLL);
        }
    }

    /// Submits from async code, waiting (at most [`RemotePort::send_timeout`]) for room.
    pub async fn send(&self, mut req: Request) -> Result<(), Request> {
        let until = Instant::now() + self.send_timeout();
        loop {
            match self.offer(req) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed(r)) => return Err(r),
                Err(Refused::Full(r)) if Instant::now() >= until => return Err(r),
                Err(Refused::Full(r)) => req = r,
            }
            tokio::time::sleep(ROOM_POLL).await;
        }
    }

    /// Whether the pipeline holds as many requests as it may.
    pub fn overloaded(&self) -> bool {
        self.shared.submitter.outstanding() >= self.shared.max
    }

    /// Requests submitted and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.shared.waiting().len()
    }

    /// The offsets the port translates traces by.
    pub fn offsets(&self) -> &Arc<ClockMap> {
        &self.shared.offsets
    }

    /// What the port has seen so far.
    pub fn stats(&self) -> RemotePortStats {
        let s = &*self.shared;
        let last = s.last_node.load(Ordering::Relaxed);
        RemotePortStats {
            answered: s.answered.load(Ordering::Relaxed),
            ok: s.ok.load(Ordering::Relaxed),
            unreachable: s.unreachable.load(Ordering::Relaxed),
            last_unreachable: s
                .last_unreachable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            untraced: s.untraced.load(Ordering::Relaxed),
            last_node: (last != 0).then_some(last),
        }
    }

    /// Stops the pipeline now (also done when the last clone drops): requests still
    /// waiting are answered [`ClientError::ShuttingDown`], later ones refused as closed.
    pub fn stop(&self) {
        self.owner.stop();
    }
}

/// Hands answers over until told to stop (or the pipeline ends).
async fn serve(shared: &Shared, mut answers: Answers, mut stop: oneshot::Receiver<()>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut out = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            biased;
            // A stop, or the port dropped before it could say so.
            _ = &mut stop => return,
            a = answers.recv() => {
                let Some(a) = a else { return };
                batch.push(a);
                answers.drain_into(&mut batch, BATCH - 1);
                shared.deliver(&mut batch, &mut out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_move_by_the_offset_and_refuse_to_go_before_the_epoch() {
        let t = Trace {
            index: 3,
            accepted: Time::from_nanos(1_000),
            sent: Time::from_nanos(2_000),
            committed: Time::from_nanos(3_000),
            applied: Time::from_nanos(4_000),
        };
        let up = translate(&t, 500).unwrap();
        assert_eq!(
            [up.accepted, up.sent, up.committed, up.applied].map(Time::as_nanos),
            [1_500, 2_500, 3_500, 4_500]
        );
        assert_eq!(up.index, 3);
        let down = translate(&t, -1_000).unwrap();
        assert_eq!(down.accepted.as_nanos(), 0);
        assert_eq!(translate(&t, -1_001), None, "a stamp before the epoch");
    }

    #[test]
    fn remote_errors_map_onto_client_errors() {
        let cases = [
            (
                RemoteReplyError::NotLeader(Some(2)),
                ClientError::NotLeader { leader: Some(2) },
            ),
            (
                RemoteReplyError::NotLeader(None),
                ClientError::NotLeader { leader: None },
            ),
            (RemoteReplyError::Overloaded, ClientError::Overloaded),
            (
                RemoteReplyError::LeadershipLost,
                ClientError::LeadershipLost,
            ),
            (RemoteReplyError::ShuttingDown, ClientError::ShuttingDown),
            (
                RemoteReplyError::Unreachable("connect refused".into()),
                ClientError::LeadershipLost,
            ),
        ];
        for (remote, want) in cases {
            assert_eq!(client_error(remote), want);
        }
        for e in [CommandError::Truncated, CommandError::UnknownTag(9)] {
            assert_eq!(
                client_error(RemoteReplyError::BadCommand(e.to_string())),
                ClientError::BadCommand(e)
            );
        }
    }

    #[test]
    fn clock_map_is_settable() {
        let m = ClockMap::new();
        assert_eq!(m.get(1), None);
        m.set(1, -5);
        m.set_all(HashMap::from([(2, 7)]));
        assert_eq!((m.get(1), m.get(2)), (None, Some(7)));
        assert_eq!(m.snapshot(), HashMap::from([(2, 7)]));
    }
}
