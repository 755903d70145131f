//! Node processes as a benchmark target: `raftbench node` processes that the harness
//! starts on this host (`cluster.target = "processes"`, optionally one network namespace
//! per node), or a cluster that someone else runs (`"remote"`), named by its cluster file.
//!
//! The harness talks to the nodes only as a client does: over the client protocol (QUIC
//! with a client certificate of the cluster's CA). Load goes through a pipelined client
//! ([`RemotePort`]); counters, clocks and the nodes' own recordings come from status and
//! recording frames. Processes of one host share `CLOCK_MONOTONIC`, so a node's
//! timestamps are moved onto the harness's clock exactly by the difference of the two
//! clock origins; across hosts a four-timestamp exchange estimates the offset, with an
//! error bound that is published beside every lag.
//!
//! A node that dies without a fault killing it is noticed (its process exit is polled),
//! named in the point's `failures`, and fails the point instead of hanging it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::ClusterFile;
use crate::harness::node_recorder::NodeRecorder;
use crate::harness::remote_port::{ClockMap, MakeConnector, RemotePort};
use crate::harness::scenario::{PointConfig, StorageKind, TargetKind};
use crate::harness::summary::{NodeHost, TargetInfo};
use crate::harness::target::{Counters, LoadPort, Target, TargetError};
use crate::netem::LinkEmulator;
use crate::raft::{NodeId, Role};
use crate::remote::{Connector, PipelineOptions, RemoteClient};
use crate::server::{NodeStatus, Observer};
use crate::storage::SyncFloor;

/// How long a node process may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long one status question may take; a frozen node does not answer at all.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the watcher waits for one node's status before moving on.
const WATCH_STATUS_TIMEOUT: Duration = Duration::from_millis(20);
/// How often the watcher looks at the processes and (for faulted points) the nodes' roles.
const WATCH_EVERY: Duration = Duration::from_millis(10);
/// First ports of the nodes inside network namespaces (each host has its own address).
const NETNS_PORT_BASE: (u16, u16, u16) = (7100, 7200, 7300);
/// Four-timestamp exchanges per node for a remote clock estimate (the one with the
/// smallest round trip counts).
const CLOCK_SAMPLES: usize = 32;

/// The `raftbench` binary that runs nodes and load processes: `$RAFTBENCH_BIN`, else this
/// executable if it is `raftbench`, else `raftbench` beside the test binary's directory
/// (cargo puts test binaries in `target/<profile>/deps/`, the binary in `target/<profile>/`).
pub fn raftbench_binary() -> Result<PathBuf, TargetError> {
    if let Some(p) = std::env::var_os("RAFTBENCH_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| TargetError::Config {
        key: "cluster.target".into(),
        reason: format!("cannot find this executable: {e}"),
    })?;
    if exe.file_stem().is_some_and(|s| s == "raftbench") {
        return Ok(exe);
    }
    let beside = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("raftbench"))
        .filter(|p| p.exists());
    beside.ok_or_else(|| TargetError::Config {
        key: "cluster.target".into(),
        reason: format!(
            "node processes need the raftbench binary: set RAFTBENCH_BIN (this is {})",
            exe.display()
        ),
    })
}

/// One node process and what the harness knows of it.
struct NodeProc {
    id: NodeId,
    child: Option<Child>,
    /// A fault took it down on purpose (killed, not yet restarted).
    down: bool,
    /// Why it died when nothing killed it.
    died: Option<String>,
}

/// Questions to the nodes, on a runtime of their own: a client per node for statuses (a
/// client talks to one node at a time, and moving it would reconnect on every question),
/// and one that follows redirects for writes.
struct Control {
    rt: tokio::runtime::Runtime,
    per_node: Vec<(NodeId, RemoteClient)>,
    any: RemoteClient,
    /// How long one status question may take.
    timeout: Duration,
}

impl Control {
    fn new(
        rt: tokio::runtime::Runtime,
        connector: Connector,
        addrs: &HashMap<NodeId, SocketAddr>,
    ) -> Control {
        let mut ids: Vec<NodeId> = addrs.keys().copied().collect();
        ids.sort_unstable();
        let per_node = ids
            .into_iter()
            .map(|id| {
                let mut c = RemoteClient::with_connector(addrs.clone(), connector.clone());
                c.prefer(id);
                (id, c)
            })
            .collect();
        Control {
            rt,
            per_node,
            any: RemoteClient::with_connector(addrs.clone(), connector),
            timeout: STATUS_TIMEOUT,
        }
    }

    fn status(&mut self, id: NodeId) -> Result<NodeStatus, String> {
        let Control { rt, per_node, .. } = self;
        let client = per_node
            .iter_mut()
            .find(|(n, _)| *n == id)
            .map(|(_, c)| c)
            .ok_or_else(|| format!("node {id} is not a member"))?;
        let timeout = self.timeout;
        rt.block_on(async {
            match tokio::time::timeout(timeout, client.status(id)).await {
                Ok(Ok(s)) => Ok(s),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no status within {timeout:?}")),
            }
        })
    }
}

/// A cluster of node processes under test.
pub struct NodeProcesses {
    kind: TargetKind,
    file: ClusterFile,
    file_path: PathBuf,
    /// Where node logs go (`processes` only).
    log_dir: PathBuf,
    binary: Option<PathBuf>,
    netns: Option<crate::netns::Layout>,
    /// The namespaces did not exist before this target made them: it removes them.
    made_netns: bool,
    procs: Arc<Mutex<Vec<NodeProc>>>,
    control: Mutex<Control>,
    epoch: Instant,
    /// Each node's clock against the harness's: offset (node ns + offset = harness ns since
    /// `epoch`) and its error bound, measured at start and refreshed at the end.
    clocks: Mutex<HashMap<NodeId, (i64, u64)>>,
    /// The offsets the load port moves answers' traces by.
    offsets: Arc<ClockMap>,
    leader: NodeId,
    term: u64,
    /// Set once a leader is found (start fails otherwise).
    port: Option<LoadPort>,
    /// Each node's data directory, removed when the target stops.
    data: Option<tempfile::TempDir>,
    floors: Vec<SyncFloor>,
    stop_watch: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

/// Where to put a point's node processes and what they may observe.
pub struct ProcessSetup<'a> {
    /// The point.
    pub config: &'a PointConfig,
    /// Directory for the cluster file, certificates and node logs (kept with the results).
    pub dir: &'a Path,
    /// Parent of the nodes' data directories (default: `dir/data`).
    pub data_root: Option<&'a Path>,
    /// Told of role and commit changes seen by polling the nodes (faulted points).
    pub observer: Option<Arc<dyn Observer>>,
}

impl NodeProcesses {
    /// Starts (or, for `remote`, loads) the cluster of `setup.config` and waits for a leader.
    pub fn start(setup: ProcessSetup<'_>) -> Result<NodeProcesses, TargetError> {
        let c = setup.config;
        // A cluster file names its paths relative to itself: write absolute ones.
        let dir_abs = std::path::absolute(setup.dir).unwrap_or_else(|_| setup.dir.to_path_buf());
        let root_abs = setup
            .data_root
            .map(|r| std::path::absolute(r).unwrap_or_else(|_| r.to_path_buf()));
        let setup = ProcessSetup {
            dir: &dir_abs,
            data_root: root_abs.as_deref(),
            ..setup
        };
        let cfg_err = |key: &str, reason: String| TargetError::Config {
            key: key.into(),
            reason,
        };
        std::fs::create_dir_all(setup.dir).map_err(|e| {
            cfg_err(
                "cluster.target",
                format!("cannot make {}: {e}", setup.dir.display()),
            )
        })?;
        let (netns, made_netns) = match &c.cluster.netns {
            Some(prefix) => {
                let (layout, made) = netns_up(prefix).map_err(|e| cfg_err("cluster.netns", e))?;
                (Some(layout), made)
            }
            None => (None, false),
        };
        let (file_path, data, floors, binary) = match c.cluster.target {
            TargetKind::Remote => {
                let path = c
                    .cluster
                    .remote
                    .clone()
                    .ok_or_else(|| cfg_err("cluster.remote", "missing".into()))?;
                (path, None, Vec::new(), None)
            }
            _ => {
                let binary = raftbench_binary()?;
                let certs = setup.dir.join("certs");
                if crate::tls::existing_cluster_files(&certs, c.cluster.nodes).len()
                    < 2 + 2 * c.cluster.nodes
                {
                    crate::tls::write_cluster(&certs, c.cluster.nodes)
                        .map_err(|e| cfg_err("cluster.target", format!("certificates: {e}")))?;
                }
                let data_root = setup
                    .data_root
                    .map(Path::to_path_buf)
                    .or_else(|| c.cluster.storage.dir.clone())
                    .unwrap_or_else(|| setup.dir.join("data"));
                std::fs::create_dir_all(&data_root).map_err(|e| {
                    cfg_err(
                        "cluster.storage.dir",
                        format!("cannot make {}: {e}", data_root.display()),
                    )
                })?;
                let data = tempfile::Builder::new()
                    .prefix("raftbench-nodes-")
                    .tempdir_in(&data_root)
                    .map_err(|e| {
                        cfg_err(
                            "cluster.storage.dir",
                            format!(
                                "cannot make a data directory in {}: {e}",
                                data_root.display()
                            ),
                        )
                    })?;
                let floors = crate::harness::target::sync_floors_in(c, data.path())?;
                let path = setup.dir.join("cluster.toml");
                let text = cluster_file_text(c, &certs, data.path(), netns.as_ref())?;
                std::fs::write(&path, text).map_err(|e| {
                    cfg_err(
                        "cluster.target",
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?;
                (path, Some(data), floors, Some(binary))
            }
        };
        let file = ClusterFile::load(&file_path).map_err(|e| cfg_err("cluster", e.to_string()))?;
        if c.cluster.target == TargetKind::Remote && file.nodes.len() != c.cluster.nodes {
            return Err(cfg_err(
                "cluster.nodes",
                format!(
                    "{} names {} nodes, the point asks for {}",
                    file_path.display(),
                    file.nodes.len(),
                    c.cluster.nodes
                ),
            ));
        }
        let procs = Arc::new(Mutex::new(
            file.ids()
                .into_iter()
                .map(|id| NodeProc {
                    id,
                    child: None,
                    down: false,
                    died: None,
                })
                .collect::<Vec<_>>(),
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| cfg_err("runtime", e.to_string()))?;
        let connector = make_connector(&file, netns.as_ref(), rt.handle())?;
        let addrs: HashMap<NodeId, SocketAddr> =
            file.nodes.iter().map(|n| (n.id, n.client_addr)).collect();
        let control = Control::new(rt, connector, &addrs);
        let epoch = Instant::now();
        let mut me = NodeProcesses {
            kind: c.cluster.target,
            file,
            file_path,
            log_dir: setup.dir.to_path_buf(),
            binary,
            netns,
            made_netns,
            procs,
            control: Mutex::new(control),
            epoch,
            clocks: Mutex::new(HashMap::new()),
            offsets: Arc::new(ClockMap::new()),
            leader: 0,
            term: 0,
            port: None,
            data,
            floors,
            stop_watch: Arc::new(AtomicBool::new(false)),
            watcher: None,
        };
        if me.binary.is_some() {
            for id in me.file.ids() {
                me.spawn(id)?;
            }
        }
        me.watcher = Some(me.watch(setup.observer));
        let within = (c.raft.election_timeout * 20).max(Duration::from_secs(10));
        let (leader, term) = me.find_leader(within)?;
        me.leader = leader;
        me.term = term;
        me.measure_clocks()?;
        me.port = Some(me.connect_port(addrs)?);
        Ok(me)
    }

    fn procs(&self) -> MutexGuard<'_, Vec<NodeProc>> {
        self.procs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cluster file the nodes run from.
    pub fn cluster_file(&self) -> &Path {
        &self.file_path
    }

    /// Starts node `id`'s process (in its namespace, if any), appending to its log.
    fn spawn(&self, id: NodeId) -> Result<(), TargetError> {
        let bin = self
            .binary
            .as_ref()
            .ok_or_else(|| unsupported(id, "start"))?;
        let log_path = self.log_dir.join(format!("node-{id}.log"));
        let io_err = |e: std::io::Error| TargetError::Config {
            key: "cluster.target".into(),
            reason: format!("node {id}: {}: {e}", log_path.display()),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err)?;
        let mut cmd = match &self.netns {
            Some(l) => {
                let host = l
                    .hosts
                    .iter()
                    .find(|h| h.node == Some(id))
                    .ok_or_else(|| unsupported(id, "place"))?;
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &host.netns]).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        cmd.arg("node")
            .arg("--config")
            .arg(&self.file_path)
            .arg("--id")
            .arg(id.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err)?)
            .stderr(log)
            .env(
                "RUST_LOG",
                std::env::var("RAFTBENCH_NODE_LOG").unwrap_or("info".into()),
            );
        let child = cmd.spawn().map_err(io_err)?;
        let mut procs = self.procs();
        let p = procs
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| unsupported(id, "find"))?;
        p.child = Some(child);
        p.down = false;
        Ok(())
    }

    /// Polls the processes (a death nobody caused is recorded) and, with an observer, the
    /// nodes' roles and commit indexes (for the faults' election and catch-up figures; at
    /// [`WATCH_EVERY`] resolution).
    fn watch(&self, observer: Option<Arc<dyn Observer>>) -> std::thread::JoinHandle<()> {
        let procs = self.procs.clone();
        let stop = self.stop_watch.clone();
        let epoch = self.epoch;
        let poller = observer.and_then(|o| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let connector = make_connector(&self.file, self.netns.as_ref(), rt.handle()).ok()?;
            let addrs = self
                .file
                .nodes
                .iter()
                .map(|n| (n.id, n.client_addr))
                .collect();
            let mut ctl = Control::new(rt, connector, &addrs);
            // A frozen or dead node must not hold up the others' polls (and with them the
            // election and catch-up times); a live node on one host answers in well under
            // a millisecond.
            ctl.timeout = WATCH_STATUS_TIMEOUT;
            Some((o, ctl))
        });
        let ids = self.file.ids();
        // A restarted node has a new clock origin: its answers' traces must move by the
        // new offset from its first answer on (one host only; a remote target has no
        // restarts).
        let offsets = (self.kind == TargetKind::Processes).then(|| self.offsets.clone());
        let log_dir = self.log_dir.clone();
        let harness_origin = crate::remote::instant_to_monotonic_ns(self.epoch) as i64;
        std::thread::Builder::new()
            .name("node-watcher".into())
            .spawn(move || {
                let mut poller = poller;
                let mut seen: HashMap<NodeId, (Role, u64, u64)> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    for p in procs.lock().unwrap_or_else(|p| p.into_inner()).iter_mut() {
                        if p.down || p.died.is_some() {
                            continue;
                        }
                        if let Some(Ok(Some(status))) = p.child.as_mut().map(Child::try_wait) {
                            let log = log_dir.join(format!("node-{}.log", p.id));
                            p.died = Some(format!(
                                "node {} exited by itself ({status}); the end of {}: {}",
                                p.id,
                                log.display(),
                                log_tail(&log)
                            ));
                        }
                    }
                    if let Some((o, ctl)) = poller.as_mut() {
                        let down: Vec<NodeId> = procs
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .iter()
                            .filter(|p| p.down || p.died.is_some())
                            .map(|p| p.id)
                            .collect();
                        for &id in ids.iter().filter(|id| !down.contains(id)) {
                            let Ok(s) = ctl.status(id) else { continue };
                            if let Some(offsets) = &offsets {
                                let off = s.clock_origin_ns as i64 - harness_origin;
                                if offsets.get(id) != Some(off) {
                                    offsets.set(id, off);
                                }
                            }
                            let at =
                                crate::raft::Time::from_nanos(epoch.elapsed().as_nanos() as u64);
                            let before = seen.insert(id, (s.role, s.term, s.commit_index));
                            if before.is_none_or(|(r, t, _)| r != s.role || t != s.term) {
                                o.role_changed(id, s.role, s.term, at);
                            }
                            let from = before.map_or(0, |(_, _, c)| c);
                            if s.commit_index > from {
                                o.commit_advanced(id, s.role, from, s.commit_index, at);
                            }
                        }
                    }
                    std::thread::sleep(WATCH_EVERY);
                }
            })
            .expect("spawning the node watcher")
    }

    /// Waits for a committed write, then asks every node which leads (highest term).
    fn find_leader(&self, within: Duration) -> Result<(NodeId, u64), TargetError> {
        let until = Instant::now() + within;
        {
            let mut ctl = self.control();
            let Control { rt, any, .. } = &mut *ctl;
            any.deadline = within;
            rt.block_on(any.put("raftbench-warmup", "x"))
                .map_err(|_| self.failed_or(TargetError::NoLeader(within)))?;
        }
        loop {
            if let Some(d) = self.failure() {
                return Err(node_died(d));
            }
            if let Some(s) = self.leader_status() {
                return Ok((s.id, s.term));
            }
            if Instant::now() >= until {
                return Err(TargetError::NoLeader(within));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The status of the node that says it leads, in the highest term, if one does.
    fn leader_status(&self) -> Option<NodeStatus> {
        let mut ctl = self.control();
        self.file
            .ids()
            .into_iter()
            .filter(|&id| self.is_up(id))
            .filter_map(|id| ctl.status(id).ok())
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.term)
    }

    fn failed_or(&self, e: TargetError) -> TargetError {
        match self.failure() {
            Some(d) => node_died(d),
            None => e,
        }
    }

    /// Every node death that no fault caused, in node order.
    pub fn failures(&self) -> Vec<String> {
        self.procs().iter().filter_map(|p| p.died.clone()).collect()
    }

    fn failure(&self) -> Option<String> {
        self.failures().into_iter().next()
    }

    /// The load port: a pipelined client of its own thread (inside the load host's
    /// namespace, if any), whose answers' traces move onto the harness's clock.
    fn connect_port(&self, addrs: HashMap<NodeId, SocketAddr>) -> Result<LoadPort, TargetError> {
        let file = self.file.clone();
        let ns = self.netns.as_ref().map(|l| l.load_host().netns.clone());
        let make: MakeConnector = Box::new(move || {
            if let Some(ns) = &ns {
                crate::netns::enter(ns).map_err(|e| {
                    crate::remote::ConnectError::Bind(std::io::Error::other(e.to_string()))
                })?;
            }
            Connector::for_cluster(&file, "")
        });
        let opts = PipelineOptions {
            prefer: Some(self.leader),
            ..PipelineOptions::default()
        };
        let port = RemotePort::start(addrs, make, opts, self.offsets.clone()).map_err(|e| {
            TargetError::Config {
                key: "cluster.target".into(),
                reason: format!("load port: {e}"),
            }
        })?;
        Ok(LoadPort::Remote(port))
    }

    /// Puts every node's clock against the harness's: on one host (namespaces included:
    /// they share the kernel's clocks) exactly, from the nodes' `CLOCK_MONOTONIC` origins;
    /// on other hosts by a four-timestamp exchange whose error bound goes with it.
    fn measure_clocks(&self) -> Result<(), TargetError> {
        let mut found = HashMap::new();
        let harness_origin = crate::remote::instant_to_monotonic_ns(self.epoch) as i64;
        let mut ctl = self.control();
        for id in self.file.ids() {
            let clock = match self.kind {
                TargetKind::Remote => {
                    let Control { rt, per_node, .. } = &mut *ctl;
                    let Some((_, client)) = per_node.iter_mut().find(|(n, _)| *n == id) else {
                        continue;
                    };
                    let samples = rt
                        .block_on(client.clock_samples(id, CLOCK_SAMPLES, self.epoch))
                        .map_err(|e| TargetError::Config {
                            key: "cluster.remote".into(),
                            reason: format!("clock of node {id}: {e}"),
                        })?;
                    crate::remote::ClockOffset::estimate(&samples)
                        .map(|o| (o.offset_ns, o.error_ns))
                }
                _ => ctl
                    .status(id)
                    .ok()
                    .map(|s| (s.clock_origin_ns as i64 - harness_origin, 0)),
            };
            if let Some(c) = clock {
                found.insert(id, c);
            }
        }
        drop(ctl);
        let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
        for (id, (off, err)) in found {
            // A second estimate widens the bound by how far it moved (drift, or a node
            // that restarted with a new origin).
            let (off, err) = match clocks.get(&id) {
                Some(&(o0, e0)) if self.kind == TargetKind::Remote => {
                    (o0, e0.max(err).max(o0.abs_diff(off)))
                }
                _ => (off, err),
            };
            clocks.insert(id, (off, err));
            self.offsets.set(id, off);
        }
        Ok(())
    }

    /// Node `id`'s offset onto the harness's clock, if known.
    fn offset(&self, id: NodeId) -> Option<i64> {
        self.clocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|c| c.0)
    }

    /// Where the nodes run and how their clocks relate to the harness's, for the summary.
    pub fn info(&self) -> TargetInfo {
        let clocks = self
            .clocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let procs = self.procs();
        TargetInfo {
            kind: self.kind.name().to_string(),
            netns: self.netns.as_ref().map(|l| l.prefix.clone()),
            cluster_file: self.file_path.display().to_string(),
            nodes: self
                .file
                .nodes
                .iter()
                .map(|n| NodeHost {
                    id: n.id,
                    host: match &self.netns {
                        Some(l) => l
                            .hosts
                            .iter()
                            .find(|h| h.node == Some(n.id))
                            .map_or_else(String::new, |h| h.netns.clone()),
                        None => n.raft_addr.ip().to_string(),
                    },
                    raft_addr: n.raft_addr.to_string(),
                    client_addr: n.client_addr.to_string(),
                    pid: procs
                        .iter()
                        .find(|p| p.id == n.id)
                        .and_then(|p| p.child.as_ref().map(Child::id)),
                    clock_offset_ns: clocks.get(&n.id).map(|c| c.0),
                    clock_error_ns: clocks.get(&n.id).map(|c| c.1),
                    rss_start_mb: None,
                    rss_end_mb: None,
                })
                .collect(),
            failures: procs.iter().filter_map(|p| p.died.clone()).collect(),
            recordings_missing: Vec::new(),
            node_events_dropped: 0,
        }
    }

    fn signal(&self, id: NodeId, sig: libc::c_int) -> Result<(), TargetError> {
        let procs = self.procs();
        let pid = procs
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.child.as_ref().map(Child::id))
            .ok_or_else(|| unsupported(id, "signal"))?;
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
            return Err(TargetError::Config {
                key: "faults".into(),
                reason: format!(
                    "signal {sig} to node {id} (pid {pid}): {}",
                    std::io::Error::last_os_error()
                ),
            });
        }
        Ok(())
    }
}

/// Makes the namespaces of `prefix` where missing; says whether none existed before (then
/// the caller removes them when done).
fn netns_up(prefix: &str) -> Result<(crate::netns::Layout, bool), String> {
    let layout = crate::netns::Layout::new(prefix).map_err(|e| e.to_string())?;
    let none_before = crate::netns::status(&layout)
        .map(|st| st.iter().all(|s| !s.exists))
        .unwrap_or(false);
    crate::netns::up(&layout)
        .map_err(|e| format!("the namespaces could not be made (root needed): {e}"))?;
    Ok((layout, none_before))
}

fn unsupported(id: NodeId, what: &str) -> TargetError {
    TargetError::Config {
        key: "faults".into(),
        reason: format!("this target cannot {what} node {id}"),
    }
}

fn node_died(what: String) -> TargetError {
    TargetError::NodeDied(what)
}

/// A client connector for `file`'s nodes, made on `rt`; with namespaces, from inside the
/// load host's namespace (a socket stays in the namespace it was made in).
fn make_connector(
    file: &ClusterFile,
    netns: Option<&crate::netns::Layout>,
    rt: &tokio::runtime::Handle,
) -> Result<Connector, TargetError> {
    let ns = netns.map(|l| l.load_host().netns.clone());
    let file = file.clone();
    let rt = rt.clone();
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(ns) = &ns {
                crate::netns::enter(ns).map_err(|e| TargetError::Config {
                    key: "cluster.netns".into(),
                    reason: e.to_string(),
                })?;
            }
            let _guard = rt.enter();
            Connector::for_cluster(&file, "").map_err(|e| TargetError::Config {
                key: "cluster".into(),
                reason: format!("client connector: {e}"),
            })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(TargetError::Config {
                key: "cluster".into(),
                reason: "the connector thread panicked".into(),
            })
        })
    })
}

/// The cluster file of a point's node processes: the point's Raft, transport, storage and
/// link settings, its nodes on free loopback ports (or at their namespaces' addresses).
fn cluster_file_text(
    c: &PointConfig,
    certs: &Path,
    data: &Path,
    netns: Option<&crate::netns::Layout>,
) -> Result<String, TargetError> {
    let ser = |key: &str, v: Result<toml::Value, toml::ser::Error>| {
        v.map_err(|e| TargetError::Config {
            key: key.into(),
            reason: format!("cannot write it into a cluster file: {e}"),
        })
    };
    let mut t = toml::Table::new();
    t.insert(
        "transport".into(),
        ser(
            "cluster.transport",
            toml::Value::try_from(c.cluster.transport),
        )?,
    );
    t.insert("client_transport".into(), "quic".into());
    t.insert("certs".into(), certs.display().to_string().into());
    t.insert("data_dir".into(), data.display().to_string().into());
    let st = &c.cluster.storage;
    let storage = match st.kind {
        StorageKind::Memory => "memory",
        StorageKind::File => "file",
    };
    t.insert("storage".into(), storage.into());
    if st.kind == StorageKind::File {
        t.insert(
            "sync".into(),
            ser("cluster.storage.sync", toml::Value::try_from(st.sync))?,
        );
        t.insert(
            "append_order".into(),
            ser(
                "cluster.storage.append_order",
                toml::Value::try_from(st.append_order),
            )?,
        );
    }
    t.insert("raft".into(), ser("raft", toml::Value::try_from(&c.raft))?);
    t.insert(
        "quic".into(),
        ser("cluster.quic", toml::Value::try_from(&c.cluster.quic))?,
    );
    t.insert(
        "transport_settings".into(),
        ser(
            "cluster.transport_settings",
            toml::Value::try_from(&c.cluster.transport_settings),
        )?,
    );
    t.insert(
        "network".into(),
        ser("network", toml::Value::try_from(&c.network))?,
    );
    t.insert(
        "links".into(),
        ser("links", toml::Value::try_from(&c.links))?,
    );
    let mut nodes = Vec::new();
    for id in 1..=c.cluster.nodes as NodeId {
        let (raft, client, metrics) = match netns {
            Some(l) => {
                let ip = l
                    .hosts
                    .iter()
                    .find(|h| h.node == Some(id))
                    .map(|h| h.addr)
                    .ok_or_else(|| TargetError::Config {
                        key: "cluster.netns".into(),
                        reason: format!("no namespace for node {id}"),
                    })?;
                let (r, cl, m) = NETNS_PORT_BASE;
                let id16 = id as u16;
                (
                    SocketAddr::from((ip, r + id16)),
                    SocketAddr::from((ip, cl + id16)),
                    SocketAddr::from((ip, m + id16)),
                )
            }
            None => (free_port()?, free_port()?, free_port()?),
        };
        let mut n = toml::Table::new();
        n.insert("id".into(), (id as i64).into());
        n.insert("raft_addr".into(), raft.to_string().into());
        n.insert("client_addr".into(), client.to_string().into());
        n.insert("metrics_addr".into(), metrics.to_string().into());
        nodes.push(toml::Value::Table(n));
    }
    t.insert("nodes".into(), toml::Value::Array(nodes));
    Ok(format!(
        "# Written by the harness for one point's node processes.\n{}",
        toml::to_string(&t).map_err(|e| TargetError::Config {
            key: "cluster".into(),
            reason: e.to_string(),
        })?
    ))
}

/// A loopback port free for UDP and TCP at once (QUIC listens on UDP, TCP transports and
/// the metrics server on TCP), found by binding port 0. Another process could take it
/// before the node binds it; the node then fails to start and the point says so.
fn free_port() -> Result<SocketAddr, TargetError> {
    let err = |e: std::io::Error| TargetError::Config {
        key: "cluster.target".into(),
        reason: format!("no free loopback port: {e}"),
    };
    for _ in 0..64 {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(err)?;
        let addr = udp.local_addr().map_err(err)?;
        if std::net::TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err(err(std::io::Error::other("64 tries")))
}

impl Drop for NodeProcesses {
    /// Stops every node: SIGTERM, then SIGKILL for any still running after
    /// [`STOP_GRACE`]; then removes their data and the namespaces this target made. The
    /// logs stay.
    fn drop(&mut self) {
        self.stop_watch.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        drop(self.port.take());
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        for p in procs.iter_mut() {
            if let Some(child) = p.child.as_mut() {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe {
                    libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
                }
            }
        }
        let until = Instant::now() + STOP_GRACE;
        for p in procs.iter_mut() {
            if let Some(mut child) = p.child.take() {
                loop {
                    match child.try_wait() {
                        Ok(Some(_)) | Err(_) => break,
                        Ok(None) if Instant::now() >= until => {
                            tracing::warn!(node = p.id, "node did not stop after SIGTERM; killed");
                            let _ = child.kill();
                            let _ = child.wait();
                            break;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        }
        drop(procs);
        // The nodes' files go only once every node has stopped.
        drop(self.data.take());
        if let (Some(l), true) = (&self.netns, self.made_netns) {
            if let Err(e) = crate::netns::down(l, false) {
                tracing::warn!(prefix = %l.prefix, error = %e, "namespaces not removed");
            }
        }
    }
}

impl Target for NodeProcesses {
    fn leader(&self) -> NodeId {
        self.leader
    }

    fn port(&self) -> LoadPort {
        self.port
            .clone()
            .expect("start connects the port before it returns")
    }

    fn epoch(&self) -> Instant {
        self.epoch
    }

    fn counters(&self) -> Counters {
        let mut c = Counters::default();
        let mut ctl = self.control();
        for id in self.file.ids() {
            let Ok(st) = ctl.status(id) else { continue };
            c.wire_bytes += st.transport_bytes_sent;
            c.node_cpu += Duration::from_nanos(st.cpu_ns);
            c.node_rss.push((id, st.rss_bytes));
            let s = &st.stats;
            c.raft_messages +=
                s.append_messages() + s.append_responses + s.vote_requests + s.vote_responses;
            if id == self.leader {
                c.leader_appends = s.append_messages();
                c.leader_heartbeats = s.heartbeats;
                c.leader_notices = s.commit_notices;
            }
        }
        c.cpu = crate::harness::target::process_cpu_time() + c.node_cpu;
        c
    }

    fn arm_recordings(&self, start: Instant, end: Instant, interval: Duration) -> Vec<String> {
        let mut failed = Vec::new();
        let mut ctl = self.control();
        for id in self.file.ids() {
            let Some(off) = self.offset(id) else {
                failed.push(format!("node {id}: clock unknown"));
                continue;
            };
            let node_time = |t: Instant| {
                let ns = t.saturating_duration_since(self.epoch).as_nanos() as i64 - off;
                crate::raft::Time::from_nanos(ns.max(0) as u64)
            };
            let Control { rt, per_node, .. } = &mut *ctl;
            let Some((_, client)) = per_node.iter_mut().find(|(n, _)| *n == id) else {
                continue;
            };
            let armed =
                rt.block_on(client.arm_recording(id, node_time(start), node_time(end), interval));
            if let Err(e) = armed {
                failed.push(format!("node {id}: {e}"));
            }
        }
        failed
    }

    fn collect_recordings(&self, into: &NodeRecorder) -> (Vec<String>, u64) {
        // Clocks once more, so that a remote estimate's bound covers the whole run.
        let _ = self.measure_clocks();
        let mut failed = Vec::new();
        let mut got = Vec::new();
        let mut dropped = 0;
        let mut ctl = self.control();
        for id in self.file.ids() {
            let Control { rt, per_node, .. } = &mut *ctl;
            let Some((_, client)) = per_node.iter_mut().find(|(n, _)| *n == id) else {
                continue;
            };
            match (rt.block_on(client.take_recording(id)), self.offset(id)) {
                (Ok(r), Some(off)) => {
                    dropped += r.events_dropped;
                    got.push((r, off));
                }
                (Ok(_), None) => failed.push(format!("node {id}: clock unknown")),
                (Err(e), _) => failed.push(format!("node {id}: {e}")),
            }
        }
        into.replay(&got);
        (failed, dropped)
    }

    fn stall_leader(&self, d: Duration) {
        let _ = self.freeze(self.leader, d);
    }

    fn emulator(&self) -> Option<&LinkEmulator> {
        None
    }

    fn sync_floors(&self) -> Vec<SyncFloor> {
        self.floors.clone()
    }

    fn check_leader(&self) -> Result<(), TargetError> {
        if let Some(d) = self.failure() {
            return Err(node_died(d));
        }
        let st = self.control().status(self.leader);
        match st {
            Ok(st) if st.role == Role::Leader && st.term == self.term => Ok(()),
            Ok(st) => Err(TargetError::LeaderMoved {
                from: self.leader,
                term: self.term,
                now: format!("{:?} in term {}", st.role, st.term),
            }),
            Err(e) => Err(TargetError::LeaderMoved {
                from: self.leader,
                term: self.term,
                now: format!("no answer: {e}"),
            }),
        }
    }

    fn stop(self: Box<Self>) {
        // Drop stops the nodes (gracefully), so that a target that failed to start, or a
        // point that returned early, leaves no node process behind either.
        drop(self);
    }

    fn current_leader(&self, within: Duration) -> Option<NodeId> {
        let until = Instant::now() + within;
        loop {
            if let Some(s) = self.leader_status() {
                return Some(s.id);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.file.ids()
    }

    fn is_up(&self, id: NodeId) -> bool {
        self.procs()
            .iter()
            .find(|p| p.id == id)
            .is_some_and(|p| match self.kind {
                TargetKind::Remote => true,
                _ => p.child.is_some() && !p.down && p.died.is_none(),
            })
    }

    fn kill(&self, id: NodeId) -> Result<(), TargetError> {
        let mut procs = self.procs();
        let p = procs
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| unsupported(id, "kill"))?;
        let mut child = p.child.take().ok_or_else(|| unsupported(id, "kill"))?;
        p.down = true;
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    fn restart(&self, id: NodeId) -> Result<(), TargetError> {
        self.spawn(id)
    }

    fn freeze(&self, id: NodeId, d: Duration) -> Result<(), TargetError> {
        self.signal(id, libc::SIGSTOP)?;
        let pid = self
            .procs()
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.child.as_ref().map(Child::id));
        // SIGCONT after `d`, from a thread of its own, as a signal from outside would come.
        std::thread::spawn(move || {
            std::thread::sleep(d);
            if let Some(pid) = pid {
                // SAFETY: kill(2) on our child's pid (at worst it exited meanwhile).
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGCONT);
                }
            }
        });
        Ok(())
    }

    fn commit_indexes(&self) -> Vec<(NodeId, u64)> {
        let mut ctl = self.control();
        self.file
            .ids()
            .into_iter()
            .filter_map(|id| ctl.status(id).ok().map(|s| (id, s.commit_index)))
            .collect()
    }

    fn failures(&self) -> Vec<String> {
        NodeProcesses::failures(self)
    }

    fn cluster_file(&self) -> Option<PathBuf> {
        Some(self.file_path.clone())
    }

    fn info(&self) -> Option<TargetInfo> {
        Some(NodeProcesses::info(self))
    }
}

/// A `raftbench echo` process: the far end of the floor of node processes, on this host
/// or in node 1's namespace. Killed on drop.
pub struct EchoProcess {
    child: Child,
    /// Namespaces this echo made (none existed before): removed on drop.
    made_netns: Option<crate::netns::Layout>,
    /// How to reach it.
    pub peer: crate::harness::baseline::EchoPeer,
}

impl EchoProcess {
    /// Starts the echo for point `c`'s arrangement, with certificates under `dir`.
    pub fn start(c: &PointConfig, dir: &Path) -> Result<EchoProcess, TargetError> {
        use std::io::BufRead;
        let err = |reason: String| TargetError::Config {
            key: "cluster.target".into(),
            reason: format!("floor echo process: {reason}"),
        };
        let bin = raftbench_binary()?;
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let certs = dir.join("floor-certs");
        let mut made_netns = None;
        if crate::tls::existing_cluster_files(&certs, 2).len() < 6 {
            crate::tls::write_cluster(&certs, 2).map_err(|e| err(e.to_string()))?;
        }
        let (mut cmd, bind, netns) = match &c.cluster.netns {
            Some(prefix) => {
                let (l, made) = netns_up(prefix).map_err(err)?;
                made_netns = made.then(|| l.clone());
                let host = l
                    .hosts
                    .iter()
                    .find(|h| h.node == Some(1))
                    .ok_or_else(|| err("no namespace for node 1".into()))?;
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &host.netns]).arg(&bin);
                (
                    cmd,
                    SocketAddr::from((host.addr, NETNS_PORT_BASE.0 + 99)),
                    Some(l.load_host().netns.clone()),
                )
            }
            None => (
                Command::new(&bin),
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                None,
            ),
        };
        let transport = match c.cluster.transport {
            crate::transport::TransportKind::Tcp => "tcp",
            _ => "quic",
        };
        let mut child = cmd
            .arg("echo")
            .args(["--transport", transport, "--bind", &bind.to_string()])
            .arg("--certs")
            .arg(&certs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| err(format!("{}: {e}", bin.display())))?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| std::io::BufReader::new(out).read_line(&mut line));
        let addr = match (read, line.trim().strip_prefix("listening ")) {
            (Some(Ok(_)), Some(a)) => a.parse::<SocketAddr>().ok(),
            _ => None,
        };
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err(format!("did not say where it listens (got {line:?})")));
        };
        Ok(EchoProcess {
            child,
            made_netns,
            peer: crate::harness::baseline::EchoPeer {
                addr,
                certs,
                netns: netns.clone(),
                arrangement: if netns.is_some() {
                    "namespaces".into()
                } else {
                    "processes".into()
                },
            },
        })
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(l) = &self.made_netns {
            let _ = crate::netns::down(l, false);
        }
    }
}

/// The last few lines of a node's log (at most its last 2 KiB), to say why a node died
/// in the error that reports it: the log itself is gone with a test's temporary directory.
fn log_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 2048;
    let Ok(mut f) = std::fs::File::open(path) else {
        return "(no log)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL)));
    let mut buf = Vec::new();
    let _ = f.take(TAIL).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(empty log)".into()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::log_tail;

    #[test]
    fn a_dead_nodes_error_carries_the_end_of_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-1.log");
        let text: String = (1..=10).map(|i| format!("line {i}\n\n")).collect();
        std::fs::write(&path, text).unwrap();
        assert_eq!(
            log_tail(&path),
            "line 6 | line 7 | line 8 | line 9 | line 10"
        );
        std::fs::write(&path, "x".repeat(5000) + "\nbind failed: address in use\n").unwrap();
        assert!(log_tail(&path).ends_with("bind failed: address in use"));
        assert!(
            !log_tail(&path).contains(&"x".repeat(2049)),
            "only the log's last 2 KiB are read"
        );
        assert_eq!(log_tail(&dir.path().join("none.log")), "(no log)");
    }
}
