//! What the disk allows and what group commit gets out of it, in one short run:
//!
//! - the fsync floor: a bare loop of append-write + sync of one 64-byte record (what one
//!   client with one sync per commit can reach at best), with `fsync` and `fdatasync`;
//! - [`FileStore`] with group commit under 1 and 64 concurrent appenders: one writer
//!   thread appends whatever has arrived (as a node's driver does) and a client's commit
//!   completes when the covering sync returns: commits/s, commit latency, entries per
//!   sync, sync latency; and the same without group commit (a sync per append, inline);
//! - a 3-node in-process QUIC cluster on FileStores under 1 and 64 closed-loop clients:
//!   commits/s with `fsync` in both append orders, and with `none` for comparison.
//!
//! `cargo bench --bench storage` (about 30 s; `RAFTBENCH_STORAGE_SECS` sets each run's
//! seconds, default 2). The files go to a temporary directory under `RAFTBENCH_STORAGE_DIR`
//! (default: the current directory, so the disk measured is the project's disk).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam::channel::{self, Receiver, Sender};
use hdrhistogram::Histogram;
use raftbench::cluster::{ClusterSpec, FileStoreSpec, LocalCluster};
use raftbench::kv::Command;
use raftbench::raft::{Entry, EntryKind, LogStore};
use raftbench::server::AppendOrder;
use raftbench::storage::{FileStore, SyncPolicy};
use raftbench::transport::TransportKind;

const RECORD: usize = 64;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid bounds")
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1_000.0
}

/// The library's sync floor: a bare loop of write + sync of one record at the end of a file.
fn floor(dir: &Path, policy: SyncPolicy, secs: f64) {
    let f = raftbench::storage::floor::measure(
        dir,
        policy,
        RECORD,
        1,
        std::time::Duration::from_secs_f64(secs),
        u64::MAX,
    )
    .unwrap();
    println!(
        "floor      {:10} 1 writer   {:>9.0} ops/s   write+sync p50 {:>8.1} us  p99 {:>8.1} us",
        policy.label(),
        f.syncs_per_s(),
        us(&f.latency_ns, 0.5),
        us(&f.latency_ns, 0.99)
    );
}

/// One writer thread, `clients` client threads each waiting for its entry's sync.
fn grouped(dir: &Path, policy: SyncPolicy, clients: usize, group: bool, secs: f64) {
    let sub = dir.join(format!("store-{}-{clients}-{group}", policy.label()));
    let mut store = FileStore::open(&sub, policy).unwrap();
    let (dur_tx, dur_rx) = channel::unbounded::<u64>();
    if group {
        assert!(store.start_background_sync(Box::new(move |r| {
            let _ = dur_tx.send(r.expect("sync"));
        })));
    }
    let stats = store.sync_stats();
    let (req_tx, req_rx) = channel::bounded::<Sender<()>>(4096);
    let stop = Arc::new(AtomicBool::new(false));
    let client_threads: Vec<_> = (0..clients)
        .map(|_| {
            let (req_tx, stop) = (req_tx.clone(), stop.clone());
            thread::spawn(move || {
                let mut h = hist();
                while !stop.load(Ordering::Relaxed) {
                    let (tx, rx) = channel::bounded(1);
                    let t = Instant::now();
                    if req_tx.send(tx).is_err() {
                        break;
                    }
                    // Bounded wait: a request left in the queue at the end is never answered.
                    let answered = (0..600).any(|_| {
                        rx.recv_timeout(Duration::from_millis(100)).is_ok()
                            || stop.load(Ordering::Relaxed)
                    });
                    if !answered || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    h.saturating_record(t.elapsed().as_nanos() as u64);
                }
                h
            })
        })
        .collect();
    drop(req_tx);
    let start = Instant::now();
    let commits = writer(&mut store, &req_rx, &dur_rx, group, secs);
    let el = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    drop(req_rx);
    let mut lat = hist();
    for t in client_threads {
        lat.add(t.join().unwrap()).unwrap();
    }
    let s = stats.snapshot();
    println!(
        "{} {:10} {:>3} clients {:>9.0} commits/s  commit p50 {:>8.1} us p99 {:>8.1} us | {:>6.1} entries/sync (max {:>3})  sync p50 {:>8.1} us p99 {:>8.1} us",
        if group { "group     " } else { "inline    " },
        policy.label(),
        clients,
        commits as f64 / el,
        us(&lat, 0.5),
        us(&lat, 0.99),
        s.entries_per_sync(),
        s.max_entries_per_sync,
        us(&s.latency_ns, 0.5),
        us(&s.latency_ns, 0.99),
    );
    drop(store);
    let _ = std::fs::remove_dir_all(sub);
}

/// The driver's shape: append what has arrived, release what the syncer reported.
fn writer(
    store: &mut FileStore,
    req_rx: &Receiver<Sender<()>>,
    dur_rx: &Receiver<u64>,
    group: bool,
    secs: f64,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut next = 1u64;
    let mut waiting: std::collections::VecDeque<(u64, Sender<()>)> = Default::default();
    let mut batch = Vec::new();
    let mut commits = 0u64;
    let data = Bytes::from(vec![0xabu8; RECORD]);
    while Instant::now() < deadline {
        channel::select! {
            recv(req_rx) -> r => if let Ok(r) = r { batch.push(r) },
            recv(dur_rx) -> t => if let Ok(t) = t { release(&mut waiting, t, &mut commits) },
            default(Duration::from_millis(10)) => {}
        }
        while let Ok(r) = req_rx.try_recv() {
            batch.push(r);
        }
        if !batch.is_empty() {
            let es: Vec<Entry> = (next..next + batch.len() as u64)
                .map(|index| Entry {
                    term: 1,
                    index,
                    kind: EntryKind::Normal,
                    data: data.clone(),
                })
                .collect();
            next += es.len() as u64;
            if group {
                let t = store.append_deferred(&es).unwrap().expect("a ticket");
                waiting.extend(batch.drain(..).map(|r| (t, r)));
            } else {
                store.append(&es).unwrap();
                for r in batch.drain(..) {
                    let _ = r.send(());
                    commits += 1;
                }
            }
        }
        while let Ok(t) = dur_rx.try_recv() {
            release(&mut waiting, t, &mut commits);
        }
    }
    commits
}

fn release(waiting: &mut std::collections::VecDeque<(u64, Sender<()>)>, t: u64, n: &mut u64) {
    while waiting.front().is_some_and(|(w, _)| *w <= t) {
        let (_, r) = waiting.pop_front().expect("front exists");
        let _ = r.send(());
        *n += 1;
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run short.
    let secs: f64 = std::env::var("RAFTBENCH_STORAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            2.0
        } else {
            0.05
        });
    let base = std::env::var("RAFTBENCH_STORAGE_DIR").unwrap_or_else(|_| ".".into());
    let dir = tempfile::Builder::new()
        .prefix("storage-bench-")
        .tempdir_in(base)
        .unwrap();
    println!(
        "storage bench in {} ({secs} s per run, {RECORD}-byte records)",
        dir.path().display()
    );
    for policy in [SyncPolicy::Fsync, SyncPolicy::Fdatasync] {
        floor(dir.path(), policy, secs);
    }
    for policy in [SyncPolicy::Fsync, SyncPolicy::Fdatasync] {
        for clients in [1, 64] {
            grouped(dir.path(), policy, clients, true, secs);
        }
    }
    grouped(dir.path(), SyncPolicy::Fsync, 64, false, secs);
    for (sync, order) in [
        (SyncPolicy::Fsync, AppendOrder::SendFirst),
        (SyncPolicy::Fsync, AppendOrder::PersistFirst),
        (SyncPolicy::None, AppendOrder::SendFirst),
    ] {
        for clients in [1, 64] {
            cluster(dir.path(), sync, order, clients, secs);
        }
    }
}

/// A 3-node in-process QUIC cluster on FileStores: `clients` closed-loop clients write to
/// the leader for `secs`; a write counts when the leader answers it (committed and applied).
fn cluster(dir: &Path, sync: SyncPolicy, order: AppendOrder, clients: usize, secs: f64) {
    let sub = tempfile::tempdir_in(dir).unwrap();
    let mut spec = ClusterSpec::new(3, TransportKind::Quic);
    spec.raft.election_timeout = Duration::from_millis(500);
    spec.raft.heartbeat_interval = Duration::from_millis(50);
    let stores = FileStoreSpec::new(sub.path(), sync);
    let stats = stores.stats.clone();
    spec.file_store = Some(stores);
    spec.append_order = order;
    let cl = LocalCluster::start(spec).expect("cluster starts");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = cl.client();
    rt.block_on(async { client.put("warm", "up").await.expect("a leader") });
    let leader = cl.handles()[client.leader_guess() as usize - 1].clone();
    let (n, lat) = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let h = leader.clone();
                tokio::spawn(async move {
                    let mut lat = hist();
                    let mut n = 0u64;
                    while tokio::time::Instant::now() < deadline {
                        let cmd = Command::Put {
                            key: Bytes::from(format!("k{c}")),
                            value: Bytes::from(vec![7u8; RECORD]),
                        };
                        let t = Instant::now();
                        if h.submit(&cmd).await.is_ok() {
                            n += 1;
                            lat.saturating_record(t.elapsed().as_nanos() as u64);
                        }
                    }
                    (n, lat)
                })
            })
            .collect();
        let mut total = 0;
        let mut all = hist();
        for t in tasks {
            let (n, l) = t.await.unwrap();
            total += n;
            all.add(l).unwrap();
        }
        (total, all)
    });
    let leader_syncs = stats.lock().unwrap()[&leader.node()].snapshot();
    println!(
        "cluster    {:10} {:>3} clients {:>9.0} commits/s  commit p50 {:>8.1} us p99 {:>8.1} us | leader {:>6.1} entries/sync  sync p50 {:>8.1} us p99 {:>8.1} us | 3 nodes, QUIC, {:?}",
        sync.label().split(' ').next().unwrap_or_default(),
        clients,
        n as f64 / secs,
        us(&lat, 0.5),
        us(&lat, 0.99),
        leader_syncs.entries_per_sync(),
        us(&leader_syncs.latency_ns, 0.5),
        us(&leader_syncs.latency_ns, 0.99),
        order,
    );
    cl.shutdown();
}
