//! A load port that follows the leader across faults, as a client that retries would.
//!
//! The open-loop generator hands every request to the port and goes on with its schedule
//! whatever the cluster does. A router thread sends each request to the node it believes
//! leads and keeps the request until it has a final answer:
//!
//! - a success (or a bad command) goes to the request's own reply channel, with its trace;
//! - "not the leader" sends it again to the leader named, or to the one the router finds;
//! - "leadership lost", "shutting down", or the node dying with the request in flight (its
//!   handle closes: the client's connection would break) mark the outcome unknown and send
//!   it again: every request is a Put of a key of its own, so a second apply is harmless;
//! - after [`GIVE_UP`] of retrying it fails with `LeadershipLost` if an attempt may have
//!   been applied, else with `NotLeader`.
//!
//! Latency still counts from the request's intended instant, so redirects and waits for a
//! new leader are in it (no coordinated omission).
//!
//! The router learns the leader as a client that asks every node would: the live node with
//! the highest term that says it leads (every [`TICK`]). A frozen old leader still says it
//! leads, but in an older term, so requests go to the new one once it is elected; those
//! already sent to the frozen node wait for it, as they would on a real connection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::raft::{NodeId, Role};
use crate::server::{Answer, ClientError, Refused, ReplyTo, Request, ServerHandle};

/// How often the router looks for the leader and for dead nodes.
pub const TICK: Duration = Duration::from_millis(2);
/// How long a request keeps being retried before it fails.
pub const GIVE_UP: Duration = Duration::from_secs(5);
/// Requests held at once; beyond this a new request fails at once (and is counted).
pub const MAX_HELD: usize = 1 << 20;
/// Room in the queue from the generator to the router.
const QUEUE: usize = 1 << 16;

/// Every node's current handle, by id - 1; a restarted node's slot gets its new handle.
pub type LiveHandles = Arc<RwLock<Vec<ServerHandle>>>;

/// The generator's side of a [`Follower`]: cloneable, never blocks unless the router is
/// `QUEUE` (65,536) requests behind.
#[derive(Clone, Debug)]
pub struct FollowPort {
    tx: mpsc::Sender<Request>,
}

impl FollowPort {
    /// Hands `req` to the router from a plain thread; back if the router is gone.
    pub fn blocking_send(&self, req: Request) -> Result<(), Request> {
        self.tx.blocking_send(req).map_err(|e| e.0)
    }

    /// Hands `req` to the router from async code.
    pub async fn send(&self, req: Request) -> Result<(), Request> {
        self.tx.send(req).await.map_err(|e| e.0)
    }

    /// Hands `req` to the router without waiting: back as [`Refused::Full`] if its queue
    /// is full, [`Refused::Closed`] if it is gone.
    pub fn offer(&self, req: Request) -> Result<(), Refused> {
        self.tx.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) => Refused::Full(r),
            mpsc::error::TrySendError::Closed(r) => Refused::Closed(r),
        })
    }
}

/// The router thread; it ends when every [`FollowPort`] is dropped and nothing is held,
/// or when the follower is dropped.
pub struct Follower {
    port: FollowPort,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts a router over `handles`.
    pub fn start(handles: LiveHandles) -> std::io::Result<Follower> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("raftbench-follow".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("a current-thread runtime builds");
                rt.block_on(Router::new(handles).run(rx, stop_rx));
            })?;
        Ok(Follower {
            port: FollowPort { tx },
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Where to send requests.
    pub fn port(&self) -> FollowPort {
        self.port.clone()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request the router holds.
struct Held {
    command: Bytes,
    reply: ReplyTo,
    /// The node its current attempt went to (None: waiting in the backlog).
    at: Option<NodeId>,
    first: Instant,
    /// An attempt ended without saying whether it was applied.
    maybe_applied: bool,
}

struct Router {
    live: LiveHandles,
    /// The handles attempts were sent through (a closed one means its node died).
    used: Vec<ServerHandle>,
    leader: Option<NodeId>,
    held: HashMap<u64, Held>,
    backlog: VecDeque<u64>,
    answers_tx: mpsc::UnboundedSender<Answer>,
    answers_rx: mpsc::UnboundedReceiver<Answer>,
}

impl Router {
    fn new(live: LiveHandles) -> Router {
        let used = live.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        Router {
            live,
            used,
            leader: None,
            held: HashMap::new(),
            backlog: VecDeque::new(),
            answers_tx,
            answers_rx,
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                a = self.answers_rx.recv() => {
                    let a = a.expect("the router holds a sender");
                    self.on_answer(a);
                }
                r = rx.recv(), if open => match r {
                    Some(r) => self.take(r),
                    None => open = false,
                },
                _ = tick.tick() => self.on_tick(),
            }
            if !open && self.held.is_empty() {
                break;
            }
        }
        for (id, h) in self.held.drain() {
            h.reply.send(id, Err(ClientError::ShuttingDown), None);
        }
    }

    fn take(&mut self, r: Request) {
        if self.held.len() >= MAX_HELD {
            r.reply
                .send(r.id, Err(ClientError::NotLeader { leader: None }), None);
            return;
        }
        self.held.insert(
            r.id,
            Held {
                command: r.command,
                reply: r.reply,
                at: None,
                first: Instant::now(),
                maybe_applied: false,
            },
        );
        if self.leader.is_none() {
            self.find_leader();
        }
        self.dispatch(r.id);
    }

    /// Sends held request `id` to the leader, or parks it in the backlog.
    fn dispatch(&mut self, id: u64) {
        let Some(l) = self.leader else {
            self.backlog.push_back(id);
            return;
        };
        let Some(h) = self.held.get_mut(&id) else {
            return;
        };
        let handle = &self.used[l as usize - 1];
        let req = Request {
            id,
            command: h.command.clone(),
            reply: ReplyTo::Channel(self.answers_tx.clone()),
        };
        match handle.try_send(req) {
            Ok(()) => h.at = Some(l),
            Err(_) => {
                h.at = None;
                if handle.is_closed() {
                    self.leader = None;
                }
                self.backlog.push_back(id);
            }
        }
    }

    fn on_answer(&mut self, a: Answer) {
        let Some(h) = self.held.get_mut(&a.id) else {
            return;
        };
        let from = h.at.take();
        match &a.reply {
            // An overloaded leader refused it: that is the answer, as it would be without
            // the router (retrying would hide the overload from the point's counts).
            Ok(_) | Err(ClientError::BadCommand(_)) | Err(ClientError::Overloaded) => {
                let h = self.held.remove(&a.id).expect("held");
                h.reply.send(a.id, a.reply, a.trace);
                return;
            }
            Err(ClientError::NotLeader { leader }) => match leader {
                Some(l) if Some(*l) != from && (*l as usize) <= self.used.len() => {
                    self.leader = Some(*l)
                }
                _ => {
                    if self.leader == from {
                        self.leader = None;
                    }
                }
            },
            Err(ClientError::LeadershipLost) | Err(ClientError::ShuttingDown) => {
                h.maybe_applied = true;
                if self.leader == from {
                    self.leader = None;
                }
            }
        }
        self.retry(a.id);
    }

    /// Sends `id` again, or fails it once it has been retried for [`GIVE_UP`].
    fn retry(&mut self, id: u64) {
        let Some(h) = self.held.get(&id) else {
            return;
        };
        if h.first.elapsed() > GIVE_UP {
            let h = self.held.remove(&id).expect("held");
            let err = if h.maybe_applied {
                ClientError::LeadershipLost
            } else {
                ClientError::NotLeader { leader: None }
            };
            h.reply.send(id, Err(err), None);
            return;
        }
        if self.leader.is_none() {
            self.find_leader();
        }
        self.dispatch(id);
    }

    fn on_tick(&mut self) {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner()).clone();
        for (i, fresh) in live.into_iter().enumerate() {
            let node = i as NodeId + 1;
            if self.used[i].is_closed() {
                // Its node died: what was in flight there will never be answered.
                let lost: Vec<u64> = self
                    .held
                    .iter()
                    .filter(|(_, h)| h.at == Some(node))
                    .map(|(&id, _)| id)
                    .collect();
                for id in lost {
                    let h = self.held.get_mut(&id).expect("held");
                    h.at = None;
                    h.maybe_applied = true;
                    self.backlog.push_back(id);
                }
                if self.leader == Some(node) {
                    self.leader = None;
                }
            }
            self.used[i] = fresh;
        }
        self.find_leader();
        if self.leader.is_some() {
            let waiting: Vec<u64> = self.backlog.drain(..).collect();
            for id in waiting {
                let Some(h) = self.held.get(&id) else {
                    continue;
                };
                if h.first.elapsed() > GIVE_UP {
                    self.retry(id);
                } else {
                    self.dispatch(id);
                }
            }
        } else {
            let expired: Vec<u64> = self
                .backlog
                .iter()
                .copied()
                .filter(|id| {
                    self.held
                        .get(id)
                        .is_some_and(|h| h.first.elapsed() > GIVE_UP)
                })
                .collect();
            self.backlog.retain(|id| {
                self.held
                    .get(id)
                    .is_some_and(|h| h.first.elapsed() <= GIVE_UP)
            });
            for id in expired {
                self.retry(id);
            }
        }
    }

    /// The live node with the highest term that says it leads.
    fn find_leader(&mut self) {
        let best = self
            .used
            .iter()
            .filter(|h| !h.is_closed())
            .map(|h| h.status())
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.term);
        if let Some(s) = best {
            self.leader = Some(s.id);
        }
    }
}
