//! FileStore's directory lock and group commit: a second store on a directory is refused
//! (in this process and from another one), and one background sync covers every append
//! made while the previous one ran.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bytes::Bytes;
use raftbench::raft::{Entry, EntryKind, HardState, LogStore, StoreError};
use raftbench::storage::{FileStore, SyncPolicy, LOCK_FILE};
use tempfile::TempDir;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Bytes::from(vec![index as u8; 64]),
    }
}

/// Set in the child process of the cross-process lock test: the directory to try.
const LOCK_CHILD: &str = "RAFTBENCH_LOCK_CHILD";

#[test]
fn a_second_store_on_a_directory_is_refused_naming_directory_and_lock() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("node-1");
    let first = FileStore::open(&dir, SyncPolicy::None).unwrap();
    let err = FileStore::open(&dir, SyncPolicy::None).unwrap_err();
    match &err {
        StoreError::Locked { dir: d, lock, .. } => {
            assert_eq!(d, &dir);
            assert_eq!(lock, &dir.join(LOCK_FILE));
        }
        other => panic!("expected Locked, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains(&dir.display().to_string()), "{text}");
    assert!(text.contains(LOCK_FILE), "{text}");
    assert!(
        text.contains(&format!("process {}", std::process::id())),
        "the holder's pid is named: {text}"
    );
    // The lock goes with the store: the directory is usable again once it is dropped.
    drop(first);
    let again = FileStore::open(&dir, SyncPolicy::None).unwrap();
    assert_eq!(again.last_index(), 0);
}

#[test]
fn a_second_process_on_a_directory_is_refused() {
    if let Ok(dir) = std::env::var(LOCK_CHILD) {
        // The child: report what opening the held directory gives.
        match FileStore::open(Path::new(&dir), SyncPolicy::None) {
            Ok(_) => println!("CHILD OPENED"),
            Err(e) => println!("CHILD ERROR: {e}"),
        }
        return;
    }
    let root = TempDir::new().unwrap();
    let dir = root.path().join("node-1");
    let mut held = FileStore::open(&dir, SyncPolicy::None).unwrap();
    held.append(&[entry(1, 1)]).unwrap();
    let run_child = || {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_second_process_on_a_directory_is_refused",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(LOCK_CHILD, &dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run_child();
    assert!(out.contains("CHILD ERROR"), "child output: {out}");
    assert!(out.contains(&dir.display().to_string()), "{out}");
    assert!(out.contains(LOCK_FILE), "{out}");
    assert!(!out.contains("CHILD OPENED"), "{out}");
    assert_eq!(held.last_index(), 1, "the holder is untouched");
    // Once the holder is gone, another process may open it.
    drop(held);
    let out = run_child();
    assert!(out.contains("CHILD OPENED"), "child output: {out}");
}

/// Opens a store with its background syncer started; reports go to the returned channel.
fn open_grouped(
    dir: &Path,
    sync: SyncPolicy,
    on_report: impl Fn(u64) + Send + 'static,
) -> (FileStore, mpsc::Receiver<Result<u64, String>>) {
    let mut s = FileStore::open(dir, sync).unwrap();
    let (tx, rx) = mpsc::channel();
    let started = s.start_background_sync(Box::new(move |r| {
        if let Ok(t) = &r {
            on_report(*t);
        }
        let _ = tx.send(r.map_err(|e| e.to_string()));
    }));
    assert!(started, "a durable FileStore syncs in the background");
    assert!(s.group_commit());
    (s, rx)
}

/// Waits (bounded) for a report covering `ticket`.
fn wait_for_ticket(rx: &mpsc::Receiver<Result<u64, String>>, ticket: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..100_000 {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(t)) => {
                seen.push(t);
                if t >= ticket {
                    return seen;
                }
            }
            Ok(Err(e)) => panic!("sync failed: {e}"),
            Err(e) => panic!("no report covering ticket {ticket}: {e} (seen {seen:?})"),
        }
    }
    panic!("too many reports without reaching ticket {ticket}");
}

#[test]
fn one_sync_covers_every_append_made_while_the_previous_one_ran() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("node-1");
    // The first report holds the syncer until the writer has made all its appends, so
    // they all arrive while a sync is running, whatever the disk's speed.
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let first = std::sync::atomic::AtomicBool::new(true);
    let (mut s, rx) = open_grouped(&dir, SyncPolicy::Fdatasync, move |_| {
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            g.wait();
        }
    });
    const N: u64 = 100;
    assert_eq!(s.append_deferred(&[entry(1, 1)]).unwrap(), Some(1));
    let mut last = 1;
    for i in 2..=N {
        last = s.append_deferred(&[entry(i, 1)]).unwrap().unwrap();
    }
    assert_eq!(last, N, "one ticket per append");
    assert_eq!(s.last_index(), N, "reads see deferred appends at once");
    gate.wait();
    let seen = wait_for_ticket(&rx, N);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "tickets grow: {seen:?}"
    );
    let stats = s.sync_stats().snapshot();
    assert_eq!(
        stats.entries, N,
        "every entry is covered by a sync exactly once"
    );
    assert!(
        stats.syncs < N / 2,
        "appends were grouped: {} syncs for {N} entries",
        stats.syncs
    );
    assert!(
        stats.max_entries_per_sync > 1,
        "one sync covered {} entries",
        stats.max_entries_per_sync
    );
    assert_eq!(stats.latency_ns.len(), stats.syncs);
    drop(s);
    let s = FileStore::open(&dir, SyncPolicy::Fdatasync).unwrap();
    assert_eq!(
        s.entries(1, N + 1).unwrap(),
        (1..=N).map(|i| entry(i, 1)).collect::<Vec<_>>()
    );
}

#[test]
fn appends_from_many_threads_through_one_writer_share_syncs() {
    // The driver's shape: clients hand entries to one writer, which appends whatever has
    // arrived and never waits for the disk; each client waits for its entry's sync.
    let root = TempDir::new().unwrap();
    let dir = root.path().join("node-1");
    let (mut s, rx) = open_grouped(&dir, SyncPolicy::Fdatasync, |_| {});
    const CLIENTS: u64 = 16;
    const EACH: u64 = 20;
    let (req_tx, req_rx) = mpsc::channel::<mpsc::Sender<()>>();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let req_tx = req_tx.clone();
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    let (done_tx, done_rx) = mpsc::channel();
                    req_tx.send(done_tx).unwrap();
                    done_rx.recv_timeout(Duration::from_secs(20)).unwrap();
                }
            })
        })
        .collect();
    drop(req_tx);
    let mut next = 1;
    let mut waiting: Vec<(u64, mpsc::Sender<()>)> = Vec::new();
    let mut durable = 0;
    let total = CLIENTS * EACH;
    for _ in 0..1_000_000 {
        if durable >= next - 1 && next > total {
            break;
        }
        // Take every request that has arrived, append them as one batch.
        let mut batch = Vec::new();
        while let Ok(done) = req_rx.try_recv() {
            batch.push(done);
        }
        if !batch.is_empty() {
            let es: Vec<_> = (next..next + batch.len() as u64)
                .map(|i| entry(i, 1))
                .collect();
            next += batch.len() as u64;
            let t = s.append_deferred(&es).unwrap().unwrap();
            waiting.extend(batch.into_iter().map(|d| (t, d)));
        }
        match rx.recv_timeout(Duration::from_millis(1)) {
            Ok(Ok(t)) => durable = t,
            Ok(Err(e)) => panic!("sync failed: {e}"),
            Err(_) => {}
        }
        waiting.retain(|(t, d)| {
            if *t <= durable {
                let _ = d.send(());
                false
            } else {
                true
            }
        });
        if waiting.is_empty() && next > total {
            break;
        }
    }
    for c in clients {
        c.join().unwrap();
    }
    let stats = s.sync_stats().snapshot();
    assert_eq!(s.last_index(), total);
    assert_eq!(stats.entries, total);
    assert!(stats.syncs >= 1 && stats.syncs <= total);
}

#[test]
fn a_failed_store_refuses_writes_and_sync_none_has_no_syncer() {
    let root = TempDir::new().unwrap();
    let mut s = FileStore::open(&root.path().join("n"), SyncPolicy::None).unwrap();
    assert!(
        !s.start_background_sync(Box::new(|_| {})),
        "nothing to sync in the background under sync = none"
    );
    assert_eq!(s.append_deferred(&[entry(1, 1)]).unwrap(), None);
    s.save_hard_state(HardState {
        term: 1,
        voted_for: Some(1),
    })
    .unwrap();
}

#[test]
fn an_overwrite_under_group_commit_leaves_the_new_suffix_after_reopen() {
    let root = TempDir::new().unwrap();
    let dir = root.path().join("node-1");
    let (mut s, rx) = open_grouped(&dir, SyncPolicy::Fdatasync, |_| {});
    let es: Vec<_> = (1..=10).map(|i| entry(i, 1)).collect();
    s.append_deferred(&es).unwrap();
    let t = s
        .append_deferred(&[entry(6, 2), entry(7, 2)])
        .unwrap()
        .unwrap();
    wait_for_ticket(&rx, t);
    drop(s);
    let s = FileStore::open(&dir, SyncPolicy::Fdatasync).unwrap();
    assert_eq!(s.last_index(), 7);
    assert_eq!(
        s.entries(5, 8).unwrap(),
        vec![entry(5, 1), entry(6, 2), entry(7, 2)]
    );
}

#[test]
fn an_in_process_cluster_on_file_stores_keeps_every_acknowledged_write() {
    use raftbench::cluster::{ClusterSpec, FileStoreSpec, LocalCluster};
    use raftbench::transport::TransportKind;
    let root = TempDir::new().unwrap();
    let mut spec = ClusterSpec::new(3, TransportKind::Mem);
    spec.raft.election_timeout = Duration::from_millis(200);
    spec.raft.heartbeat_interval = Duration::from_millis(20);
    let stores = FileStoreSpec::new(root.path(), SyncPolicy::Fdatasync);
    let stats = stores.stats.clone();
    spec.file_store = Some(stores);
    let cl = LocalCluster::start(spec).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = cl.client();
    rt.block_on(async { client.put("warm", "up").await.expect("a leader") });
    let leader = cl.handles()[client.leader_guess() as usize - 1].clone();
    // 32 concurrent writers: the leader's and the followers' syncs each cover several.
    const WRITERS: usize = 32;
    const EACH: usize = 10;
    let acked = rt.block_on(async {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let h = leader.clone();
                tokio::spawn(async move {
                    let mut ok = 0;
                    for i in 0..EACH {
                        let cmd = raftbench::kv::Command::Put {
                            key: Bytes::from(format!("w{w}-{i}")),
                            value: Bytes::from_static(b"v"),
                        };
                        let r = tokio::time::timeout(Duration::from_secs(20), h.submit(&cmd))
                            .await
                            .expect("answered within 20 s");
                        if r.is_ok() {
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        let mut n = 0;
        for t in tasks {
            n += t.await.unwrap();
        }
        n
    });
    assert_eq!(acked, WRITERS * EACH, "every write is acknowledged");
    let commit = leader.status().commit_index;
    let syncs = stats.lock().unwrap()[&leader.node()].snapshot();
    assert!(syncs.syncs > 0, "the leader's syncs are counted");
    assert!(
        syncs.entries >= (WRITERS * EACH) as u64,
        "every entry the leader wrote was synced: {} of {}",
        syncs.entries,
        WRITERS * EACH
    );
    drop(leader);
    cl.shutdown();
    // Every node's directory holds at least what a majority acknowledged; the leader's
    // and at least one follower's hold everything committed.
    let mut holding = 0;
    for id in 1..=3 {
        let s = FileStore::open(
            &root.path().join(format!("node-{id}")),
            SyncPolicy::Fdatasync,
        )
        .unwrap();
        if s.last_index() >= commit {
            holding += 1;
        }
    }
    assert!(
        holding >= 2,
        "a majority holds the {commit} committed entries on disk"
    );
}
