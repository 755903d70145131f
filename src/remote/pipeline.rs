//! A pipelined client for open-loop load: [`Submitter::submit`] never waits (it returns the
//! request's id at once), answers arrive on [`Answers`] in whatever order they complete,
//! each with the leader's [`Trace`].
//!
//! One driver task owns the state: the requests in flight, one connection per node it
//! talks to (a writer and a reader task each), and the node it sends new requests to. A
//! `NotLeader` answer that names the leader is followed at once: the request goes to
//! the leader under the same id and keeps its scheduled instant, so the time the redirect
//! took counts in its latency. A request whose connection is lost, or that found no
//! leader, is sent again after a backoff (the policy of [`crate::redirect`]) until its
//! deadline; its answer counts the redirects and resends it took.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::connector::Connector;
use super::{encode_request, try_decode, ClientFrame, RemoteReplyError};
use crate::kv::Output;
use crate::raft::NodeId;
use crate::redirect::{BACKOFF_MAX, BACKOFF_MIN};
use crate::server::Trace;

/// Knobs of a [`Pipeline`].
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Requests submitted and not yet received from [`Answers`] (default 65,536); a
    /// submit beyond it fails with [`SubmitError::Full`].
    pub max_outstanding: usize,
    /// How long a request keeps being resent after lost connections or while no node leads
    /// (default 10 s); then it is answered [`RemoteReplyError::Unreachable`].
    pub deadline: Duration,
    /// The node to send to first (default: the lowest id).
    pub prefer: Option<NodeId>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            max_outstanding: 65_536,
            deadline: Duration::from_secs(10),
            prefer: None,
        }
    }
}

/// Why a request was not submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// As many requests as [`PipelineOptions::max_outstanding`] are outstanding.
    #[error("{0} requests outstanding: the pipeline is full")]
    Full(usize),
    /// The pipeline has stopped (its [`Answers`] was dropped).
    #[error("the pipeline has stopped")]
    Closed,
}

/// The final answer to one submitted request.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteAnswer {
    /// The id [`Submitter::submit`] returned.
    pub id: u64,
    /// The outcome.
    pub reply: Result<Output, RemoteReplyError>,
    /// When the leader handled it, on that node's clock (successful answers).
    pub trace: Option<Trace>,
    /// The node that answered.
    pub node: NodeId,
    /// The instant the request was scheduled for (given to [`Submitter::submit_at`]).
    pub scheduled: Instant,
    /// The instant its answer arrived.
    pub answered: Instant,
    /// Redirects to a named leader it followed.
    pub redirects: u32,
    /// Times it was sent again after a lost connection or while no node led.
    pub resent: u32,
}

impl RemoteAnswer {
    /// From schedule to answer: what an open-loop client measures.
    pub fn latency(&self) -> Duration {
        self.answered.saturating_duration_since(self.scheduled)
    }
}

/// Submits requests to a [`Pipeline`]; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Submitter {
    tx: mpsc::UnboundedSender<Op>,
    next_id: Arc<AtomicU64>,
    outstanding: Arc<AtomicUsize>,
    max: usize,
}

impl Submitter {
    /// Submits an encoded [`crate::kv::Command`] scheduled now; returns its id at once.
    pub fn submit(&self, command: Bytes) -> Result<u64, SubmitError> {
        self.submit_at(command, Instant::now())
    }

    /// Submits an encoded command that was scheduled for `scheduled` (its latency counts
    /// from then, so a late submit does not hide the wait); returns its id at once.
    pub fn submit_at(&self, command: Bytes, scheduled: Instant) -> Result<u64, SubmitError> {
        let n = self.outstanding.fetch_add(1, Ordering::Relaxed);
        if n >= self.max {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
            return Err(SubmitError::Full(self.max));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Op::Submit {
                id,
                command,
                scheduled,
            })
            .is_err()
        {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
            return Err(SubmitError::Closed);
        }
        Ok(id)
    }

    /// Requests submitted whose answers were not yet received.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }
}

/// The answers of a [`Pipeline`], in completion order. Dropping it stops the pipeline.
pub struct Answers {
    rx: mpsc::UnboundedReceiver<RemoteAnswer>,
    outstanding: Arc<AtomicUsize>,
}

impl Answers {
    /// The next answer; None once the pipeline stopped and every answer was taken.
    pub async fn recv(&mut self) -> Option<RemoteAnswer> {
        let a = self.rx.recv().await?;
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
        Some(a)
    }

    /// Up to `limit` answers that are ready, without waiting; returns how many were added.
    pub fn drain_into(&mut self, out: &mut Vec<RemoteAnswer>, limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            match self.rx.try_recv() {
                Ok(a) => {
                    out.push(a);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        self.outstanding.fetch_sub(n, Ordering::Relaxed);
        n
    }
}

/// A pipelined client of a cluster: see the module docs.
pub struct Pipeline;

impl Pipeline {
    /// Starts a pipeline to the nodes at `addrs` on the current tokio runtime.
    pub fn start(
        addrs: HashMap<NodeId, SocketAddr>,
        connector: Connector,
        opts: PipelineOptions,
    ) -> (Submitter, Answers) {
        assert!(!addrs.is_empty(), "a cluster has nodes");
        let mut nodes: Vec<(NodeId, SocketAddr)> = addrs.into_iter().collect();
        nodes.sort_unstable();
        let (tx, ops) = mpsc::unbounded_channel();
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let outstanding = Arc::new(AtomicUsize::new(0));
        let current = opts
            .prefer
            .and_then(|p| nodes.iter().position(|(n, _)| *n == p))
            .unwrap_or(0);
        let driver = Driver {
            nodes,
            current,
            connector,
            deadline: opts.deadline,
            sessions: HashMap::new(),
            generation: 0,
            pending: HashMap::new(),
            retries: BinaryHeap::new(),
            answers: answers_tx,
            events_tx,
            dirty: Vec::new(),
            down: HashMap::new(),
        };
        tokio::spawn(driver.run(ops, events));
        (
            Submitter {
                tx,
                next_id: Arc::new(AtomicU64::new(1)),
                outstanding: outstanding.clone(),
                max: opts.max_outstanding,
            },
            Answers {
                rx: answers_rx,
                outstanding,
            },
        )
    }
}

enum Op {
    Submit {
        id: u64,
        command: Bytes,
        scheduled: Instant,
    },
}

enum Event {
    /// A frame from node's connection `generation`.
    Frame(NodeId, u64, ClientFrame),
    /// Node's connection `generation` failed or closed.
    Lost(NodeId, u64, String),
}

struct Pending {
    command: Bytes,
    scheduled: Instant,
    /// When it was first submitted (its resend deadline counts from here).
    submitted: Instant,
    node: NodeId,
    redirects: u32,
    resent: u32,
}

struct Session {
    generation: u64,
    out: BytesMut,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// Most redirects one request follows before it is treated as finding no leader (a
/// guard against two nodes naming each other while a term changes).
const MAX_REDIRECTS: u32 = 8;
/// Most operations or events handled before the buffered requests are flushed.
const BATCH: usize = 1024;
/// How long a node whose connection was lost is passed over (not dialed again, its name
/// in a redirect not followed), so that requests do not wait out connect timeouts.
const DOWN_FOR: Duration = Duration::from_secs(1);

struct Driver {
    nodes: Vec<(NodeId, SocketAddr)>,
    current: usize,
    connector: Connector,
    deadline: Duration,
    sessions: HashMap<NodeId, Session>,
    generation: u64,
    pending: HashMap<u64, Pending>,
    retries: BinaryHeap<Reverse<(Instant, u64)>>,
    answers: mpsc::UnboundedSender<RemoteAnswer>,
    events_tx: mpsc::UnboundedSender<Event>,
    dirty: Vec<NodeId>,
    /// Nodes whose connection was lost, and when.
    down: HashMap<NodeId, Instant>,
}

impl Driver {
    fn is_down(&self, node: NodeId) -> bool {
        self.down.get(&node).is_some_and(|t| t.elapsed() < DOWN_FOR)
    }

    /// Moves the target for new requests to the next node that is not down (the next one
    /// at all when every node is).
    fn advance(&mut self) {
        let n = self.nodes.len();
        for step in 1..=n {
            let i = (self.current + step) % n;
            if !self.is_down(self.nodes[i].0) {
                self.current = i;
                return;
            }
        }
        self.current = (self.current + 1) % n;
    }

    async fn run(
        mut self,
        mut ops: mpsc::UnboundedReceiver<Op>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let mut ops_open = true;
        loop {
            let next_retry = self.retries.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                biased;
                e = events.recv() => {
                    let Some(e) = e else { return };
                    self.on_event(e);
                    for _ in 0..BATCH {
                        match events.try_recv() {
                            Ok(e) => self.on_event(e),
                            Err(_) => break,
                        }
                    }
                }
                op = ops.recv(), if ops_open => match op {
                    Some(op) => {
                        self.on_op(op);
                        for _ in 0..BATCH {
                            match ops.try_recv() {
                                Ok(op) => self.on_op(op),
                                Err(_) => break,
                            }
                        }
                    }
                    None => ops_open = false,
                },
                _ = sleep_until_opt(next_retry) => self.due_retries(),
            }
            self.flush();
            if self.answers.is_closed() || (!ops_open && self.pending.is_empty()) {
                return;
            }
        }
    }

    fn on_op(&mut self, op: Op) {
        match op {
            Op::Submit {
                id,
                command,
                scheduled,
            } => {
                let node = self.nodes[self.current].0;
                self.pending.insert(
                    id,
                    Pending {
                        command,
                        scheduled,
                        submitted: Instant::now(),
                        node,
                        redirects: 0,
                        resent: 0,
                    },
                );
                self.send(node, id);
            }
        }
    }

    /// Buffers request `id` for `node`'s connection (opened if there is none).
    fn send(&mut self, node: NodeId, id: u64) {
        if !self.pending.contains_key(&id) {
            return;
        }
        if !self.sessions.contains_key(&node) {
            self.open(node);
        }
        let p = self.pending.get_mut(&id).expect("checked above");
        p.node = node;
        let s = self.sessions.get_mut(&node).expect("opened above");
        if s.out.is_empty() {
            self.dirty.push(node);
        }
        encode_request(id, &p.command, &mut s.out);
    }

    fn flush(&mut self) {
        for node in self.dirty.drain(..) {
            if let Some(s) = self.sessions.get_mut(&node) {
                if !s.out.is_empty() {
                    let _ = s.tx.send(s.out.split().freeze());
                }
            }
        }
    }

    fn open(&mut self, node: NodeId) {
        self.generation += 1;
        let generation = self.generation;
        let addr = self
            .nodes
            .iter()
            .find(|(n, _)| *n == node)
            .expect("only members are opened")
            .1;
        let (tx, rx) = mpsc::unbounded_channel();
        self.sessions.insert(
            node,
            Session {
                generation,
                out: BytesMut::new(),
                tx,
            },
        );
        tokio::spawn(session(
            self.connector.clone(),
            node,
            addr,
            generation,
            rx,
            self.events_tx.clone(),
        ));
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Frame(node, generation, ClientFrame::Reply(id, reply, trace)) => {
                if self.sessions.get(&node).map(|s| s.generation) != Some(generation) {
                    return; // from a connection already given up
                }
                self.down.remove(&node);
                let Some(p) = self.pending.get(&id) else {
                    return;
                };
                if p.node != node {
                    return; // an answer from a connection the request has since left
                }
                match reply {
                    Err(RemoteReplyError::NotLeader(Some(l)))
                        if l != node
                            && p.redirects < MAX_REDIRECTS
                            && !self.is_down(l)
                            && self.nodes.iter().any(|(n, _)| *n == l) =>
                    {
                        if self.nodes[self.current].0 == node {
                            self.current = self.index_of(l);
                        }
                        self.pending.get_mut(&id).expect("present").redirects += 1;
                        self.send(l, id);
                    }
                    Err(RemoteReplyError::NotLeader(_)) => {
                        if self.nodes[self.current].0 == node {
                            self.advance();
                        }
                        self.resend_later(id, "no leader known".into());
                    }
                    reply => self.finish(id, node, reply, trace),
                }
            }
            Event::Frame(..) => {} // a status answers nothing this client asked
            Event::Lost(node, generation, why) => {
                match self.sessions.get(&node) {
                    Some(s) if s.generation == generation => {
                        self.sessions.remove(&node);
                    }
                    _ => return,
                }
                tracing::debug!(node, error = %why, "pipeline connection lost");
                self.down.insert(node, Instant::now());
                if self.nodes[self.current].0 == node {
                    self.advance();
                }
                let lost: Vec<u64> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| p.node == node)
                    .map(|(id, _)| *id)
                    .collect();
                for id in lost {
                    self.resend_later(id, why.clone());
                }
            }
        }
    }

    fn index_of(&self, node: NodeId) -> usize {
        self.nodes
            .iter()
            .position(|(n, _)| *n == node)
            .unwrap_or(self.current)
    }

    /// Sends `id` again after a backoff, or answers it Unreachable past its deadline.
    fn resend_later(&mut self, id: u64, why: String) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        if p.submitted.elapsed() > self.deadline {
            let node = p.node;
            self.finish(id, node, Err(RemoteReplyError::Unreachable(why)), None);
            return;
        }
        p.resent += 1;
        // Not a member: the request waits in no connection until it is due.
        p.node = 0;
        let wait = BACKOFF_MIN
            .saturating_mul(1 << p.resent.min(16))
            .min(BACKOFF_MAX);
        self.retries.push(Reverse((Instant::now() + wait, id)));
    }

    fn due_retries(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = self.retries.peek().copied() {
            if at > now {
                break;
            }
            self.retries.pop();
            if self.is_down(self.nodes[self.current].0) {
                self.advance();
            }
            let node = self.nodes[self.current].0;
            self.send(node, id);
        }
    }

    fn finish(
        &mut self,
        id: u64,
        node: NodeId,
        reply: Result<Output, RemoteReplyError>,
        trace: Option<Trace>,
    ) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let _ = self.answers.send(RemoteAnswer {
            id,
            reply,
            trace,
            node,
            scheduled: p.scheduled,
            answered: Instant::now(),
            redirects: p.redirects,
            resent: p.resent,
        });
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One connection to `node`: writes what the driver buffers, reads and decodes answers.
async fn session(
    connector: Connector,
    node: NodeId,
    addr: SocketAddr,
    generation: u64,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::UnboundedSender<Event>,
) {
    let link = match connector.connect(node, addr).await {
        Ok(l) => l,
        Err(e) => {
            let _ = events.send(Event::Lost(node, generation, e));
            return;
        }
    };
    let mut link = link;
    let mut rd = std::mem::replace(&mut link.rd, Box::pin(tokio::io::empty()));
    let reader_events = events.clone();
    let reader = tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            loop {
                match try_decode(&mut buf) {
                    Ok(Some(f)) => {
                        if reader_events
                            .send(Event::Frame(node, generation, f))
                            .is_err()
                        {
                            return "the pipeline stopped".to_string();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return format!("bad frame from node {node}: {e}"),
                }
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) => return format!("node {node} closed the connection"),
                Ok(_) => {}
                Err(e) => return format!("reading from node {node}: {e}"),
            }
        }
    });
    let mut reader = reader;
    let why = loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(mut chunk) => {
                    // Gather what else is queued into one write.
                    let mut more = Vec::new();
                    while let Ok(c) = rx.try_recv() {
                        more.push(c);
                        if more.len() >= 64 {
                            break;
                        }
                    }
                    if !more.is_empty() {
                        let mut b = BytesMut::from(&chunk[..]);
                        for c in more {
                            b.extend_from_slice(&c);
                        }
                        chunk = b.freeze();
                    }
                    if let Err(e) = link.wr.write_all(&chunk).await {
                        break format!("writing to node {node}: {e}");
                    }
                }
                None => {
                    // The driver dropped this connection; nothing more to send or read.
                    reader.abort();
                    return;
                }
            },
            r = &mut reader => {
                break r.unwrap_or_else(|e| e.to_string());
            }
        }
    };
    reader.abort();
    let _ = events.send(Event::Lost(node, generation, why));
}
