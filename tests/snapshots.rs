//! State-machine snapshots at run time: a follower cut off while the leader writes past
//! several snapshots catches up by InstallSnapshot to the same key-value state, and the
//! retained log stays bounded (counted in entries) under a long write sequence.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use raftbench::cluster::{ClusterSpec, FileStoreSpec, LocalCluster};
use raftbench::kv::KvStore;
use raftbench::netem::{Endpoint, NetworkConfig};
use raftbench::raft::{EntryKind, LogStore};
use raftbench::storage::{FileStore, SyncPolicy};
use raftbench::transport::TransportKind;
use tempfile::TempDir;

/// Upper bound on any wait; reaching it means the behaviour under test is broken.
const GUARD: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn map_of(kv: &KvStore) -> BTreeMap<Bytes, Bytes> {
    kv.iter()
        .map(|(k, v)| (Bytes::copy_from_slice(k), v.clone()))
        .collect()
}

/// Waits until every node has applied what the most advanced node committed, and at least
/// `writes` entries (a status can lag the answers its node already sent).
async fn all_applied(cluster: &LocalCluster, writes: u64) {
    let target = cluster
        .handles()
        .iter()
        .map(|h| h.status().commit_index)
        .max()
        .unwrap()
        .max(writes);
    for h in cluster.handles() {
        let mut st = h.watch_status();
        tokio::time::timeout(GUARD, st.wait_for(|s| s.applied_index >= target))
            .await
            .unwrap_or_else(|_| panic!("node {} did not apply up to {target}", h.node()))
            .unwrap();
    }
}

#[test]
fn a_follower_cut_off_past_several_snapshots_catches_up_by_install_snapshot() {
    catch_up_by_snapshot(TransportKind::Mem);
}

#[test]
fn a_follower_catches_up_by_install_snapshot_over_quic() {
    // Over QUIC every chunk goes through the codec and a real stream.
    catch_up_by_snapshot(TransportKind::Quic);
}

fn catch_up_by_snapshot(transport: TransportKind) {
    let mut spec = ClusterSpec::new(3, transport);
    spec.raft.election_timeout = Duration::from_millis(200);
    spec.raft.heartbeat_interval = Duration::from_millis(20);
    spec.raft.snapshot_entries = 20;
    // Small chunks, so that the transfer takes several.
    spec.raft.snapshot_chunk_bytes = 512;
    spec.preferred_leader = Some(1);
    spec.network = Some(NetworkConfig::default());
    let cluster = LocalCluster::start(spec).expect("cluster starts");
    let rt = runtime();
    rt.block_on(async {
        let mut client = cluster.client();
        for i in 0..10 {
            client.put(format!("early-{i}"), "x").await.unwrap();
        }
        let emu = cluster.emulator().expect("the cluster has an emulator");
        emu.partition(&[Endpoint::Node(3)]);
        let cut_at = cluster.handles()[2].status().last_index;
        // Enough writes for several snapshots past what node 3 holds; values overwrite
        // keys, so the snapshot and the log's effect differ in shape.
        for i in 0..200 {
            client
                .put(format!("key-{}", i % 37), format!("value-{i}"))
                .await
                .unwrap_or_else(|e| panic!("put {i} failed: {e}"));
        }
        let leader = cluster.handles()[client.leader_guess() as usize - 1].status();
        assert_ne!(leader.id, 3, "the cut-off node cannot lead");
        assert!(
            leader.applied_index >= cut_at + 3 * 20,
            "the leader applied {} entries past node 3's {cut_at}: fewer than three snapshots",
            leader.applied_index - cut_at
        );
        emu.heal();
        client.put("after", "heal").await.unwrap();
        // Ten early writes, 200, one after the heal, and the leader's no-op.
        all_applied(&cluster, 212).await;
        let installed = cluster.handles()[2].status().stats.snapshots_installed;
        assert!(installed >= 1, "node 3 caught up without a snapshot");
        let chunks: u64 = cluster
            .handles()
            .iter()
            .map(|h| h.status().stats.snapshot_chunks)
            .sum();
        assert!(chunks > 1, "one snapshot chunk only ({chunks})");
    });
    let kvs = cluster.shutdown();
    let reference = map_of(&kvs[0]);
    assert_eq!(reference.len(), 10 + 37 + 1);
    assert_eq!(
        reference.get(&Bytes::from_static(b"key-14")),
        Some(&Bytes::from_static(b"value-199"))
    );
    for (i, kv) in kvs.iter().enumerate() {
        assert_eq!(map_of(kv), reference, "node {} differs", i + 1);
    }
}

#[test]
fn the_retained_log_stays_bounded_and_a_restart_rebuilds_the_same_state() {
    const EVERY: u64 = 50;
    const WRITES: usize = 2_000;
    let root = TempDir::new().unwrap();
    let mut spec = ClusterSpec::new(3, TransportKind::Mem);
    spec.raft.election_timeout = Duration::from_millis(200);
    spec.raft.heartbeat_interval = Duration::from_millis(20);
    spec.raft.snapshot_entries = EVERY;
    spec.file_store = Some(FileStoreSpec::new(root.path(), SyncPolicy::None));
    let cluster = LocalCluster::start(spec).expect("cluster starts");
    let rt = runtime();
    rt.block_on(async {
        let writers = 16;
        let mut tasks = Vec::new();
        for w in 0..writers {
            let mut client = cluster.client();
            tasks.push(tokio::spawn(async move {
                for i in (w..WRITES).step_by(writers) {
                    client
                        .put(format!("key-{}", i % 100), format!("value-{i}"))
                        .await
                        .unwrap_or_else(|e| panic!("put {i} failed: {e}"));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        all_applied(&cluster, WRITES as u64 + 1).await;
    });
    let kvs = cluster.shutdown();
    for (i, kv) in kvs.iter().enumerate() {
        let id = i + 1;
        let store = FileStore::open(&root.path().join(format!("node-{id}")), SyncPolicy::None)
            .expect("the store reopens");
        let snap = store
            .snapshot()
            .unwrap()
            .unwrap_or_else(|| panic!("node {id} took no snapshot"));
        assert!(
            snap.meta.index + 2 * EVERY >= WRITES as u64,
            "node {id}'s latest snapshot is at {}",
            snap.meta.index
        );
        // Entries kept after the snapshot: fewer than a snapshot interval, plus what the
        // last round applied at once. The whole sequence is 40 intervals long.
        assert!(
            (store.len() as u64) < 2 * EVERY + 64,
            "node {id} keeps {} entries after a {WRITES}-write run",
            store.len()
        );
        // What a restarted node rebuilds: the snapshot, then the log after it.
        let mut rebuilt = KvStore::restore(&snap.data).expect("a key-value snapshot");
        for e in store
            .entries(snap.meta.index + 1, store.last_index() + 1)
            .unwrap()
        {
            if e.kind == EntryKind::Normal {
                let _ = rebuilt.apply(&e.data);
            }
        }
        assert_eq!(
            map_of(&rebuilt),
            map_of(kv),
            "node {id} rebuilds another state"
        );
        assert_eq!(rebuilt.len(), 100);
    }
}
