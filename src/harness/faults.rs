//! Faults under load: injecting a point's faults at their times, recording what the nodes
//! and the clients saw of them, and checking afterwards that nothing acknowledged was lost.
//!
//! - [`run_faults`] runs on a thread of its own: it waits for each fault's instant, finds
//!   the node it hits (the leader *then*, for leader faults), injects it, and undoes it
//!   (restart, heal, disk back to normal) when its time is up.
//! - [`FaultRecorder`] sits inside the nodes next to the node recorder ([`Tee`]): it keeps
//!   role changes (for the time to elect) and each node's commit index (for catch-up).
//! - [`ClientLog`] sees every answer the client holds: the per-100 ms timeline, the first
//!   commit after each fault, and the ids of acknowledged writes.
//! - [`read_back`] reads every acknowledged write from the leader through the log.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::harness::load::{wait_until, Intended};
use crate::harness::scenario::Fault;
use crate::harness::summary::{FaultSummary, Timeline};
use crate::harness::target::{LoadPort, Target};
use crate::harness::window::Window;
use crate::kv::{Command, Output};
use crate::netem::Endpoint;
use crate::raft::{Index, NodeId, Role, Term, Time};
use crate::server::{Answer, ClientError, Observer, ReplyTo, Request};

/// Width of a timeline bin.
pub const BIN: Duration = Duration::from_millis(100);
/// How long a leader fault waits for a leader to hit before it gives up.
const FIND_LEADER: Duration = Duration::from_secs(5);
/// Reads in flight at once during the read-back.
const READ_WINDOW: usize = 4096;
/// Ids of read-back requests start here, far above any load request's.
const READ_ID_BASE: u64 = 1 << 62;
/// Tries per key before a read-back gives up on it (counted as unverified).
const READ_TRIES: u32 = 5;

/// The key request `id` writes when every request writes a key of its own.
pub fn unique_key(id: u64) -> String {
    format!("w{id}")
}

/// A node becoming leader (or losing it), as the node reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleEvent {
    /// The node.
    pub node: NodeId,
    /// Its new role.
    pub role: Role,
    /// In this term.
    pub term: Term,
    /// When (ns on the cluster's clock).
    pub at: u64,
}

/// The nodes' side of faults: role changes and commit indexes.
pub struct FaultRecorder {
    roles: Mutex<Vec<RoleEvent>>,
    commit: Box<[AtomicU64]>,
    /// Per node: the commit index whose reaching ends a catch-up (u64::MAX: none armed).
    target: Box<[AtomicU64]>,
    /// Per node: when it reached its target (0: not yet).
    reached: Box<[AtomicU64]>,
}

impl FaultRecorder {
    /// A recorder for nodes `1..=nodes`.
    pub fn new(nodes: usize) -> FaultRecorder {
        let mk = |v: u64| (0..=nodes).map(|_| AtomicU64::new(v)).collect();
        FaultRecorder {
            roles: Mutex::new(Vec::new()),
            commit: mk(0),
            target: mk(u64::MAX),
            reached: mk(0),
        }
    }

    /// Starts timing node `node`'s catch-up to commit index `index`.
    pub fn arm(&self, node: NodeId, index: Index) {
        if let (Some(t), Some(r)) = (
            self.target.get(node as usize),
            self.reached.get(node as usize),
        ) {
            r.store(0, Relaxed);
            t.store(index, Relaxed);
        }
    }

    /// When node `node` reached the commit index it was armed with (ns), if it has.
    pub fn reached(&self, node: NodeId) -> Option<u64> {
        let r = self.reached.get(node as usize)?.load(Relaxed);
        (r != 0).then_some(r)
    }

    /// The highest commit index any node has reported.
    pub fn max_commit(&self) -> Index {
        self.commit
            .iter()
            .map(|c| c.load(Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// Every role change so far.
    pub fn roles(&self) -> Vec<RoleEvent> {
        self.roles.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The highest term in which a node became leader so far.
    pub fn leader_term(&self) -> Term {
        self.roles()
            .iter()
            .filter(|e| e.role == Role::Leader)
            .map(|e| e.term)
            .max()
            .unwrap_or(0)
    }
}

impl Observer for FaultRecorder {
    fn commit_advanced(&self, node: NodeId, _role: Role, _from: Index, to: Index, at: Time) {
        let i = node as usize;
        if let Some(c) = self.commit.get(i) {
            c.store(to, Relaxed);
        }
        if let Some(t) = self.target.get(i) {
            if to >= t.load(Relaxed) {
                t.store(u64::MAX, Relaxed);
                self.reached[i].store(at.as_nanos().max(1), Relaxed);
            }
        }
    }

    fn applied(&self, _node: NodeId, _role: Role, _upto: Index, _at: Time) {}

    fn role_changed(&self, node: NodeId, role: Role, term: Term, at: Time) {
        self.roles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RoleEvent {
                node,
                role,
                term,
                at: at.as_nanos(),
            });
    }
}

/// What happened when one fault was injected.
#[derive(Clone, Debug)]
pub struct Injected {
    /// The fault, as configured.
    pub fault: Fault,
    /// When it was injected (ns on the cluster's clock).
    pub at: u64,
    /// The node it hit.
    pub node: Option<NodeId>,
    /// The highest leader term at the injection.
    pub term_before: Term,
    /// When it was undone (ns), if it was.
    pub end: Option<u64>,
    /// When the node it hit was restarted (ns), if it was.
    pub restarted: Option<u64>,
    /// Why the injection or its undoing failed, if it did.
    pub error: Option<String>,
}

/// One scheduled step: inject fault `i`, or undo it.
#[derive(Clone, Copy, Debug)]
enum Step {
    Inject(usize),
    Undo(usize),
}

/// Injects `faults` (seconds after `win_start`) into `target` and undoes each when its time
/// is up; returns what happened, in injection order. `epoch` is the cluster's clock origin.
pub fn run_faults(
    target: &dyn Target,
    faults: &[Fault],
    win_start: Instant,
    epoch: Instant,
    rec: &FaultRecorder,
) -> Vec<Injected> {
    let now_ns = || epoch.elapsed().as_nanos() as u64;
    let mut plan: Vec<(Instant, Step)> = faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                win_start + Duration::from_secs_f64(f.at_s()),
                Step::Inject(i),
            )
        })
        .collect();
    let mut done: Vec<Option<Injected>> = vec![None; faults.len()];
    while !plan.is_empty() {
        plan.sort_by_key(|(t, _)| *t);
        let (t, step) = plan.remove(0);
        wait_until(t);
        match step {
            Step::Inject(i) => {
                let f = &faults[i];
                let term_before = rec.leader_term();
                let at = now_ns();
                let mut inj = Injected {
                    fault: f.clone(),
                    at,
                    node: None,
                    term_before,
                    end: None,
                    restarted: None,
                    error: None,
                };
                match inject(target, f) {
                    Ok(node) => {
                        inj.node = node;
                        // The fault's instant is when it took effect: finding the leader of
                        // node processes asks each for its status (milliseconds), and a
                        // leader killed only then still commits and answers meanwhile.
                        inj.at = now_ns();
                    }
                    Err(e) => inj.error = Some(e),
                }
                tracing::info!(fault = ?f, node = ?inj.node, "fault injected");
                let d = f.duration_s();
                if inj.error.is_none() && d > 0.0 {
                    plan.push((Instant::now() + Duration::from_secs_f64(d), Step::Undo(i)));
                } else if d > 0.0 {
                    inj.end = Some(at);
                }
                done[i] = Some(inj);
            }
            Step::Undo(i) => {
                let Some(inj) = done[i].as_mut() else {
                    continue;
                };
                if let Err(e) = undo(target, inj, rec, now_ns) {
                    inj.error = Some(e);
                }
                inj.end = Some(now_ns());
                tracing::info!(fault = ?inj.fault, node = ?inj.node, "fault undone");
            }
        }
    }
    let mut out: Vec<Injected> = done.into_iter().flatten().collect();
    out.sort_by_key(|i| i.at);
    out
}

/// The leader now, or an error naming the fault.
fn leader_for(target: &dyn Target, f: &Fault) -> Result<NodeId, String> {
    target
        .current_leader(FIND_LEADER)
        .ok_or_else(|| format!("{}: no leader to hit within {FIND_LEADER:?}", f.kind()))
}

/// Injects `f`; returns the node it hit.
fn inject(target: &dyn Target, f: &Fault) -> Result<Option<NodeId>, String> {
    let emulator = || {
        target
            .emulator()
            .ok_or_else(|| format!("{}: the link emulator is not in the path", f.kind()))
    };
    let disk = |n: NodeId| {
        target
            .disk(n)
            .ok_or_else(|| format!("{}: node {n}'s store has no fault control", f.kind()))
    };
    let err = |e: crate::harness::target::TargetError| format!("{}: {e}", f.kind());
    Ok(match f {
        Fault::StallLeader { duration_ms, .. } => {
            target.stall_leader(Duration::from_secs_f64(duration_ms / 1e3));
            Some(target.leader())
        }
        Fault::SetLink { link, .. } => {
            emulator()?.update_link(link);
            None
        }
        Fault::Partition { nodes, .. } => {
            emulator()?.partition(nodes);
            None
        }
        Fault::Heal { .. } => {
            emulator()?.heal();
            None
        }
        Fault::KillLeader { .. } => {
            let l = leader_for(target, f)?;
            target.kill(l).map_err(err)?;
            Some(l)
        }
        Fault::StopLeader { duration_s, .. } => {
            let l = leader_for(target, f)?;
            target
                .freeze(l, Duration::from_secs_f64(*duration_s))
                .map_err(err)?;
            Some(l)
        }
        Fault::RestartFollower { .. } => {
            let l = leader_for(target, f)?;
            let victim = target
                .node_ids()
                .into_iter()
                .rev()
                .find(|&n| n != l && target.is_up(n))
                .ok_or_else(|| format!("{}: no follower is up", f.kind()))?;
            target.kill(victim).map_err(err)?;
            Some(victim)
        }
        Fault::PartitionLeader { .. } => {
            let l = leader_for(target, f)?;
            match target.emulator() {
                Some(e) => e.partition(&[Endpoint::Node(l)]),
                None => {
                    if !target.isolate(&[l]) {
                        return Err(format!("{}: the transports cannot be cut", f.kind()));
                    }
                }
            }
            Some(l)
        }
        Fault::SlowDisk {
            sync_ms,
            node,
            all_nodes,
            ..
        } => {
            let n = match node {
                Some(n) => *n,
                None => leader_for(target, f)?,
            };
            let delay = Duration::from_secs_f64(sync_ms / 1e3);
            if *all_nodes {
                for m in target.node_ids() {
                    disk(m)?.set_sync_delay(delay);
                }
            } else {
                disk(n)?.set_sync_delay(delay);
            }
            Some(n)
        }
        Fault::FillDisk { .. } => {
            let l = leader_for(target, f)?;
            disk(l)?.set_full(true);
            Some(l)
        }
    })
}

/// Undoes `inj`: restarts, resumes, heals or clears the disk.
fn undo(
    target: &dyn Target,
    inj: &mut Injected,
    rec: &FaultRecorder,
    now_ns: impl Fn() -> u64,
) -> Result<(), String> {
    let kind = inj.fault.kind();
    let Some(node) = inj.node else {
        return Ok(());
    };
    let err = |e: crate::harness::target::TargetError| format!("{kind}: {e}");
    let mut restart = |target: &dyn Target| -> Result<(), String> {
        // Catch-up counts to what the cluster had committed when the node came back.
        let upto = target
            .commit_indexes()
            .into_iter()
            .map(|(_, c)| c)
            .max()
            .unwrap_or(0)
            .max(rec.max_commit());
        rec.arm(node, upto);
        inj.restarted = Some(now_ns());
        target.restart(node).map_err(err)
    };
    match &inj.fault {
        Fault::KillLeader { .. } | Fault::RestartFollower { .. } => restart(target)?,
        Fault::PartitionLeader { .. } => match target.emulator() {
            Some(e) => e.heal(),
            None => {
                target.isolate(&[]);
            }
        },
        Fault::SlowDisk { all_nodes, .. } => {
            let nodes = if *all_nodes {
                target.node_ids()
            } else {
                vec![node]
            };
            for n in nodes {
                if let Some(d) = target.disk(n) {
                    d.set_sync_delay(Duration::ZERO);
                }
            }
        }
        Fault::FillDisk { .. } => {
            if let Some(d) = target.disk(node) {
                d.set_full(false);
            }
            // The node stopped on its first refused write; its "supervisor" restarts it.
            if target.is_up(node) {
                target.kill(node).map_err(err)?;
            }
            restart(target)?;
        }
        // Stops and stalls end by themselves; link faults are undone by a `heal`.
        _ => {}
    }
    Ok(())
}

/// One successful answer as the client held it (ns on the cluster's clock).
#[derive(Clone, Copy, Debug)]
struct OkAnswer {
    got: u64,
    committed: u64,
    intended: u64,
}

/// The client's side of a faulted point: every answer, by time.
pub struct ClientLog {
    window: Window,
    ok_bins: Vec<u64>,
    err_bins: Vec<u64>,
    oks: Vec<OkAnswer>,
    /// Ids of requests acknowledged as written (a Put answered "done").
    pub acknowledged: Vec<u64>,
    /// Answers of any kind.
    pub answered: u64,
    /// Answers that leave the outcome unknown (leadership lost, shutting down).
    pub indeterminate: u64,
}

impl ClientLog {
    /// A log over `window`.
    pub fn new(window: Window) -> ClientLog {
        let bins = ((window.end - window.start).as_nanos() / BIN.as_nanos()).max(1) as usize;
        ClientLog {
            window,
            ok_bins: vec![0; bins],
            err_bins: vec![0; bins],
            oks: Vec::new(),
            acknowledged: Vec::new(),
            answered: 0,
            indeterminate: 0,
        }
    }

    /// The end of the measured window (ns on the cluster's clock).
    fn window_end_ns(&self) -> u64 {
        self.window.end.as_nanos() as u64
    }

    fn bin(&self, t: u64) -> Option<usize> {
        let off = self.window.offset(Duration::from_nanos(t))?;
        let b = (off.as_nanos() / BIN.as_nanos()) as usize;
        (b < self.ok_bins.len()).then_some(b)
    }

    /// Records answer `a`, held at `got` (ns), to a request intended at `intended` (ns).
    pub fn record(&mut self, a: &Answer, got: u64, intended: u64) {
        self.answered += 1;
        match &a.reply {
            Ok(out) => {
                if let Some(b) = self.bin(got) {
                    self.ok_bins[b] += 1;
                }
                if *out == Output::Done {
                    self.acknowledged.push(a.id);
                }
                let committed = a.trace.map(|t| t.committed.as_nanos()).unwrap_or(got);
                self.oks.push(OkAnswer {
                    got,
                    committed,
                    intended,
                });
            }
            Err(e) => {
                if let Some(b) = self.bin(got) {
                    self.err_bins[b] += 1;
                }
                if matches!(e, ClientError::LeadershipLost | ClientError::ShuttingDown) {
                    self.indeterminate += 1;
                }
            }
        }
    }

    /// The timeline, with the offered load from the `sent` requests' intended times.
    pub fn timeline(&self, intended: &Intended, sent: u64, slots: usize) -> Timeline {
        let mut offered = vec![0; self.ok_bins.len()];
        for id in sent.saturating_sub(slots as u64)..sent {
            if let Some(b) = self.bin(intended.get(id)) {
                offered[b] += 1;
            }
        }
        Timeline {
            bin_ms: BIN.as_secs_f64() * 1e3,
            ok: self.ok_bins.clone(),
            errors: self.err_bins.clone(),
            offered,
        }
    }

    /// What each injected fault did, as the client and the nodes saw it.
    pub fn analyse(&mut self, injected: &[Injected], rec: &FaultRecorder) -> Vec<FaultSummary> {
        self.oks.sort_by_key(|o| o.got);
        let roles = rec.roles();
        let sec = 1_000_000_000u64;
        let rate = |oks: &[OkAnswer], from: u64, to: u64| {
            if to <= from {
                return 0.0;
            }
            let n = oks.iter().filter(|o| o.got >= from && o.got < to).count();
            n as f64 / ((to - from) as f64 / 1e9)
        };
        let ms = |ns: u64| ns as f64 / 1e6;
        injected
            .iter()
            .map(|inj| {
                let at = inj.at;
                let end = inj.end.unwrap_or(at);
                let first = self.oks[self.oks.partition_point(|o| o.got < at)..]
                    .iter()
                    .find(|o| o.committed >= at);
                let elected = roles
                    .iter()
                    .filter(|e| e.role == Role::Leader && e.term > inj.term_before && e.at >= at)
                    .min_by_key(|e| e.at);
                let catch_up = match (inj.restarted, inj.node) {
                    (Some(r), Some(n)) => rec.reached(n).map(|t| ms(t.saturating_sub(r))),
                    _ => None,
                };
                let latency_max = self
                    .oks
                    .iter()
                    .filter(|o| o.intended >= at && o.intended < at + sec)
                    .map(|o| o.got.saturating_sub(o.intended))
                    .max();
                let during_end = if end > at { end } else { at + sec };
                // Gaps between successive answers from the fault to a second after its end.
                let horizon = end.max(at) + sec;
                let mut last = at;
                let mut max_gap = 0;
                for o in &self.oks[self.oks.partition_point(|o| o.got < at)..] {
                    if o.got > horizon {
                        break;
                    }
                    max_gap = max_gap.max(o.got - last);
                    last = o.got;
                }
                max_gap = max_gap.max(horizon.min(self.window_end_ns()).saturating_sub(last));
                FaultSummary {
                    kind: inj.fault.kind().to_string(),
                    at_s: inj.fault.at_s(),
                    node: inj.node,
                    duration_ms: ms(end - at),
                    unavailability_ms: first.map(|o| ms(o.got.saturating_sub(at))),
                    elect_ms: elected.map(|e| ms(e.at - at)),
                    new_leader: elected.map(|e| e.node),
                    catch_up_ms: catch_up,
                    max_gap_ms: ms(max_gap),
                    latency_max_ms: latency_max.map(ms),
                    ok_rate_before: rate(&self.oks, at.saturating_sub(sec), at),
                    ok_rate_during: rate(&self.oks, at, during_end),
                    ok_rate_after: rate(&self.oks, end, end + sec),
                }
            })
            .collect()
    }
}

/// What a read-back found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadBack {
    /// Keys read back with the value written.
    pub found: u64,
    /// Keys absent (or holding another value): acknowledged writes lost.
    pub lost: u64,
    /// Keys whose reads kept failing: neither found nor lost.
    pub unverified: u64,
}

/// Reads the key of every acknowledged write in `ids` (written with `value`) through `port`
/// with Gets, which go through the log (linearizable), at most `READ_WINDOW` (4,096) at once,
/// giving up after `deadline`.
pub async fn read_back(
    port: &LoadPort,
    ids: &[u64],
    value: &Bytes,
    deadline: Duration,
) -> ReadBack {
    let until = tokio::time::Instant::now() + deadline;
    let (tx, mut rx) = mpsc::unbounded_channel::<Answer>();
    let mut out = ReadBack::default();
    let mut tries = vec![0u32; ids.len()];
    let mut queue: std::collections::VecDeque<usize> = (0..ids.len()).collect();
    let mut in_flight = 0usize;
    loop {
        while in_flight < READ_WINDOW {
            let Some(i) = queue.pop_front() else { break };
            tries[i] += 1;
            let req = Request {
                id: READ_ID_BASE + i as u64,
                command: Command::Get {
                    key: Bytes::from(unique_key(ids[i])),
                }
                .encode(),
                reply: ReplyTo::Channel(tx.clone()),
            };
            if port.send(req).await.is_err() {
                out.unverified += (queue.len() + 1) as u64 + in_flight as u64;
                return out;
            }
            in_flight += 1;
        }
        if in_flight == 0 {
            return out;
        }
        let Ok(Some(a)) = tokio::time::timeout_at(until, rx.recv()).await else {
            out.unverified += (queue.len() + in_flight) as u64;
            return out;
        };
        in_flight -= 1;
        let Some(i) = a.id.checked_sub(READ_ID_BASE).map(|i| i as usize) else {
            continue;
        };
        match a.reply {
            Ok(Output::Value(Some(v))) if v == *value => out.found += 1,
            Ok(_) => {
                tracing::error!(key = %unique_key(ids[i]), "an acknowledged write is not in the log");
                out.lost += 1;
            }
            Err(_) if tries[i] < READ_TRIES => queue.push_back(i),
            Err(_) => out.unverified += 1,
        }
    }
}

/// Writes `timeline/<point>.csv` (bin start in seconds, ok, errors, offered per bin) for
/// every point of `run` that has a timeline; returns the files written.
pub fn write_timelines(
    dir: &std::path::Path,
    run: &crate::harness::summary::RunSummary,
) -> Result<Vec<std::path::PathBuf>, crate::harness::output::OutputError> {
    use crate::harness::output::{file_names, fresh_dir, write_file};
    let with: Vec<_> = run.points.iter().filter(|p| p.timeline.is_some()).collect();
    if with.is_empty() {
        return Ok(Vec::new());
    }
    let tdir = dir.join("timeline");
    fresh_dir(&tdir, "csv")?;
    let names = file_names(with.iter().map(|p| p.name.as_str()));
    let mut written = Vec::new();
    for (p, name) in with.iter().zip(names) {
        let t = p.timeline.as_ref().expect("filtered");
        let mut text = String::from("start_s,ok,errors,offered\n");
        for i in 0..t.ok.len() {
            text.push_str(&format!(
                "{:.3},{},{},{}\n",
                i as f64 * t.bin_ms / 1e3,
                t.ok[i],
                t.errors.get(i).copied().unwrap_or(0),
                t.offered.get(i).copied().unwrap_or(0)
            ));
        }
        let path = tdir.join(format!("{name}.csv"));
        write_file(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// The report's "Faults" section: one row per injected fault, then what the read-back
/// found; empty when no point had faults.
pub fn report_section(run: &crate::harness::summary::RunSummary) -> String {
    use std::fmt::Write as _;
    let faulted: Vec<_> = run.points.iter().filter(|p| !p.faults.is_empty()).collect();
    if faulted.is_empty() {
        return String::new();
    }
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
    let mut md = String::from("## Faults\n\n");
    md.push_str("Per fault: unavailability is from the fault to the first answer of a request committed after it, as the client held it; the longest gap is the longest time without any successful answer until a second after the fault ended; elect is to a new leader in a later term; catch-up is a restarted node's commit index reaching the leader's at its restart. Every acknowledged write (a key of its own per request) is read back from the leader through the log after the point.\n\n");
    md.push_str("| point | fault | at (s) | node | unavailable (ms) | longest gap (ms) | elect (ms) | new leader | catch-up (ms) | acknowledged | lost | unverified | unknown outcome |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for p in faulted {
        let c = p.correctness.clone().unwrap_or_default();
        for f in &p.faults {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
                p.name,
                f.kind,
                f.at_s,
                f.node.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                opt(f.unavailability_ms),
                f.max_gap_ms,
                opt(f.elect_ms),
                f.new_leader
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt(f.catch_up_ms),
                c.acknowledged_writes,
                if c.acknowledged_lost > 0 {
                    format!("**{}**", c.acknowledged_lost)
                } else {
                    "0".into()
                },
                c.unverified,
                c.unknown_outcome
            );
        }
    }
    md.push('\n');
    md
}
