//! In-process clusters over each transport commit real requests, and every replica ends
//! with the same key-value state.

use std::time::Duration;

use raftbench::cluster::{ClusterSpec, LocalCluster, Threading};
use raftbench::transport::TransportKind;

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
        // Followers learn the last commit from the next heartbeat.
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    let stores = cluster.shutdown();
    assert_eq!(stores.len(), 3);
    for (n, kv) in stores.iter().enumerate() {
        assert_eq!(kv.len(), requests, "node {} holds every key", n + 1);
        for i in [0, requests / 2, requests - 1] {
            assert_eq!(
                kv.get(format!("key-{i}").as_bytes()).map(|b| b.to_vec()),
                Some(format!("value-{i}").into_bytes()),
                "node {} key-{i}",
                n + 1
            );
        }
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
