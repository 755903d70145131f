//! In-process clusters over each transport commit real requests, and every replica ends
//! with the same key-value state.

use std::collections::BTreeMap;
use std::time::Duration;

use raftbench::cluster::{ClusterSpec, LocalCluster, Threading};
use raftbench::transport::TransportKind;

/// Upper bound on any wait; reaching it means the behaviour under test is broken.
const GUARD: Duration = Duration::from_secs(20);

fn commit_many(transport: TransportKind, threading: Threading, requests: usize) {
    let mut spec = ClusterSpec::new(3, transport);
    spec.threading = threading;
    spec.raft.election_timeout = Duration::from_millis(150);
    spec.raft.heartbeat_interval = Duration::from_millis(20);
    let cluster = LocalCluster::start(spec).expect("cluster starts");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let clients = 32;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let mut client = cluster.client();
            tasks.push(tokio::spawn(async move {
                for i in (c..requests).step_by(clients) {
                    client
                        .put(format!("key-{i}"), format!("value-{i}"))
                        .await
                        .unwrap_or_else(|e| panic!("put {i} failed: {e}"));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut client = cluster.client();
        let v = client.get("key-7").await.unwrap();
        assert_eq!(
            v.as_deref(),
            Some(&b"value-7"[..]),
            "a Get reads the Put through the log"
        );
        // Followers learn the last commit from a later heartbeat: wait until every node
        // has applied everything the leader committed.
        let target = cluster
            .handles()
            .iter()
            .map(|h| h.status().commit_index)
            .max()
            .unwrap();
        for h in cluster.handles() {
            let mut st = h.watch_status();
            tokio::time::timeout(GUARD, st.wait_for(|s| s.applied_index >= target))
                .await
                .unwrap_or_else(|_| panic!("node {} did not apply up to {target}", h.node()))
                .unwrap();
        }
    });
    let stores = cluster.shutdown();
    assert_eq!(stores.len(), 3);
    let expected: BTreeMap<Vec<u8>, Vec<u8>> = (0..requests)
        .map(|i| {
            (
                format!("key-{i}").into_bytes(),
                format!("value-{i}").into_bytes(),
            )
        })
        .collect();
    for (n, kv) in stores.iter().enumerate() {
        let state: BTreeMap<Vec<u8>, Vec<u8>> =
            kv.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        // Compare the whole map, but report only the first difference.
        if let Some((k, v)) = expected.iter().find(|(k, v)| state.get(*k) != Some(*v)) {
            panic!(
                "node {} holds {:?} under {}, expected {}",
                n + 1,
                state
                    .get(k)
                    .map(|b| String::from_utf8_lossy(b).into_owned()),
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            );
        }
        assert_eq!(state.len(), expected.len(), "node {}: no extra keys", n + 1);
    }
}

#[test]
fn quic_cluster_commits_10k_requests() {
    commit_many(TransportKind::Quic, Threading::PerNode, 10_000);
}

#[test]
fn tcp_cluster_commits_10k_requests() {
    commit_many(TransportKind::Tcp, Threading::PerNode, 10_000);
}

#[test]
fn mem_cluster_commits_10k_requests() {
    commit_many(TransportKind::Mem, Threading::PerNode, 10_000);
}

#[test]
fn quic_cluster_on_a_shared_runtime_commits() {
    commit_many(TransportKind::Quic, Threading::Shared, 2_000);
}
