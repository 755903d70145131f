//! What a point measures: a cluster that the harness starts, finds the leader of, loads,
//! faults, counts and stops. Today the cluster runs inside the harness's process
//! ([`InProcess`]); node processes and remote hosts implement the same [`Target`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{ClusterError, ClusterSpec, LocalCluster};
use crate::harness::scenario::PointConfig;
use crate::netem::LinkEmulator;
use crate::raft::{NodeId, Role};
use crate::server::{Observer, Refused, Request, ServerHandle};

/// Why a target could not be started or led.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The cluster did not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// No leader emerged.
    #[error("no leader was elected within {0:?}")]
    NoLeader(Duration),
    /// Another node than `cluster.leader` leads.
    #[error("cluster.leader = {wanted}, but node {got} won the election")]
    WrongLeader {
        /// The node the scenario pinned.
        wanted: NodeId,
        /// The node that leads.
        got: NodeId,
    },
    /// Leadership moved while the point ran, so its figures mix two leaders.
    #[error("leadership moved during the point: node {from} led in term {term}, now {now}")]
    LeaderMoved {
        /// The leader at the start.
        from: NodeId,
        /// Its term.
        term: u64,
        /// What the cluster reports now.
        now: String,
    },
    /// The point's configuration cannot build this target.
    #[error("{key}: {reason}")]
    Config {
        /// The key at fault.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Counters of a whole target at one instant; a point reports the difference across its
/// measured window.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// AppendEntries of every kind the leader sent.
    pub leader_appends: u64,
    /// Of which heartbeats.
    pub leader_heartbeats: u64,
    /// Of which eager commit notices.
    pub leader_notices: u64,
    /// Raft messages sent by every node.
    pub raft_messages: u64,
    /// Bytes the transports put on the wire.
    pub wire_bytes: u64,
    /// CPU time of the processes that run the target (and, in process, the harness).
    pub cpu: Duration,
}

/// Where the load sends its requests.
#[derive(Clone, Debug)]
pub enum LoadPort {
    /// The leader's in-process handle.
    Local(ServerHandle),
}

impl LoadPort {
    /// Submits from a plain thread, waiting for room in the leader's queue; hands the
    /// request back if the leader is gone.
    pub fn blocking_send(&self, req: Request) -> Result<(), Request> {
        match self {
            LoadPort::Local(h) => h.blocking_send(req),
        }
    }

    /// Submits without waiting: a full queue hands the request back as
    /// [`Refused::Full`] (an open loop answers it as overloaded), a stopped leader as
    /// [`Refused::Closed`].
    pub fn offer(&self, req: Request) -> Result<(), Refused> {
        match self {
            LoadPort::Local(h) => h.offer(req),
        }
    }

    /// Whether the leader says it is full (see [`ServerHandle::overloaded`]).
    pub fn overloaded(&self) -> bool {
        match self {
            LoadPort::Local(h) => h.overloaded(),
        }
    }

    /// Submits from async code, waiting for room.
    pub async fn send(&self, req: Request) -> Result<(), Request> {
        match self {
            LoadPort::Local(h) => h.send(req).await,
        }
    }
}

/// A cluster under test.
pub trait Target: Send + Sync {
    /// The node that leads, found when the target started.
    fn leader(&self) -> NodeId;
    /// Where load goes.
    fn port(&self) -> LoadPort;
    /// The clock origin of every timestamp the target reports (the nodes' `Time` zero).
    fn epoch(&self) -> Instant;
    /// Counters now.
    fn counters(&self) -> Counters;
    /// Blocks the leader's thread for `d`, as a garbage-collection pause would.
    fn stall_leader(&self, d: Duration);
    /// The link emulator between the nodes, if the point emulates links.
    fn emulator(&self) -> Option<&LinkEmulator>;
    /// Whether the leader found at start still leads in the same term.
    fn check_leader(&self) -> Result<(), TargetError>;
    /// Stops every node and waits for them.
    fn stop(self: Box<Self>);
}

/// The cluster inside this process: a thread (or a shared runtime) per node.
pub struct InProcess {
    cluster: LocalCluster,
    leader: ServerHandle,
    term: u64,
}

/// CPU time of this whole process so far.
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

impl InProcess {
    /// Starts the cluster that `c` describes, with `observer` inside every node, and waits
    /// for a leader (a committed write proves it leads).
    pub fn start(c: &PointConfig, observer: Arc<dyn Observer>) -> Result<InProcess, TargetError> {
        let mut spec = ClusterSpec::new(c.cluster.nodes, c.cluster.transport);
        spec.threading = c.cluster.threading;
        spec.mem_mode = c.cluster.mem_mode;
        spec.quic = c.cluster.quic.clone();
        spec.transport_settings = c.cluster.transport_settings.clone();
        spec.seed = c.seed;
        spec.raft = c.raft.clone();
        spec.observer = Some(observer);
        spec.preferred_leader = c.cluster.leader;
        spec.slow_apply = c
            .cluster
            .slow_apply
            .as_ref()
            .map(|s| (s.node, Duration::from_secs_f64(s.cost_us / 1e6)));
        let net = c.network_config();
        // Link faults need the emulator in the path even while it emulates nothing yet.
        let link_faults = c.faults.iter().any(|f| f.needs_emulator());
        spec.network = (net.is_active() || link_faults).then_some(net);
        let cluster = LocalCluster::start(spec)?;
        let within = (c.raft.election_timeout * 20).max(Duration::from_secs(5));
        let leader = find_leader(&cluster, within)?;
        if let Some(wanted) = c.cluster.leader {
            if leader.node() != wanted {
                return Err(TargetError::WrongLeader {
                    wanted,
                    got: leader.node(),
                });
            }
        }
        let term = leader.status().term;
        Ok(InProcess {
            cluster,
            leader,
            term,
        })
    }
}

fn find_leader(cluster: &LocalCluster, within: Duration) -> Result<ServerHandle, TargetError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TargetError::Config {
            key: "runtime".into(),
            reason: e.to_string(),
        })?;
    let mut client = cluster.client();
    client.set_deadline(within);
    rt.block_on(client.put("raftbench-warmup", "x"))
        .map_err(|_| TargetError::NoLeader(within))?;
    let id = client.leader_guess();
    let h = cluster.handles()[id as usize - 1].clone();
    if h.status().role != Role::Leader {
        return Err(TargetError::NoLeader(within));
    }
    Ok(h)
}

impl Target for InProcess {
    fn leader(&self) -> NodeId {
        self.leader.node()
    }

    fn port(&self) -> LoadPort {
        LoadPort::Local(self.leader.clone())
    }

    fn epoch(&self) -> Instant {
        self.cluster.epoch()
    }

    fn counters(&self) -> Counters {
        let leader = self.leader.node();
        let mut c = Counters {
            cpu: process_cpu_time(),
            ..Counters::default()
        };
        for h in self.cluster.handles() {
            let st = h.status();
            let s = &st.stats;
            c.raft_messages +=
                s.append_messages() + s.append_responses + s.vote_requests + s.vote_responses;
            if h.node() == leader {
                c.leader_appends = s.append_messages();
                c.leader_heartbeats = s.heartbeats;
                c.leader_notices = s.commit_notices;
            }
        }
        for t in self.cluster.transports() {
            c.wire_bytes += t.stats().bytes_sent;
        }
        c
    }

    fn stall_leader(&self, d: Duration) {
        self.leader.stall(d);
    }

    fn emulator(&self) -> Option<&LinkEmulator> {
        self.cluster.emulator()
    }

    fn check_leader(&self) -> Result<(), TargetError> {
        let st = self.leader.status();
        if st.role == Role::Leader && st.term == self.term {
            return Ok(());
        }
        Err(TargetError::LeaderMoved {
            from: self.leader.node(),
            term: self.term,
            now: format!("{:?} in term {}", st.role, st.term),
        })
    }

    fn stop(self: Box<Self>) {
        self.cluster.shutdown();
    }
}
