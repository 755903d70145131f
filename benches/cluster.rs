//! End-to-end commits through an in-process 3-node cluster: one client's commit latency
//! (a request answered after the leader applies it) and the throughput of many clients,
//! over QUIC, TCP and memory, with a runtime per node or one shared runtime.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raftbench::cluster::{ClusterSpec, LocalCluster, Threading};
use raftbench::kv::Command;
use raftbench::server::{ReplyTo, Request};
use raftbench::transport::TransportKind;

fn cluster(transport: TransportKind, threading: Threading) -> LocalCluster {
    let mut spec = ClusterSpec::new(3, transport);
    spec.threading = threading;
    spec.raft.election_timeout = Duration::from_millis(100);
    spec.raft.heartbeat_interval = Duration::from_millis(20);
    LocalCluster::start(spec).expect("cluster starts")
}

fn leader_handle(
    c: &LocalCluster,
    rt: &tokio::runtime::Runtime,
) -> raftbench::server::ServerHandle {
    let mut client = c.client();
    rt.block_on(async {
        client
            .put("warm", "up")
            .await
            .expect("cluster elects a leader")
    });
    let id = client.leader_guess();
    c.handles()[id as usize - 1].clone()
}

fn commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cmd = Command::Put {
        key: Bytes::from_static(b"key"),
        value: Bytes::from(vec![7u8; 64]),
    };
    let mut g = c.benchmark_group("commit_latency_1_client");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    for (name, transport, threading) in [
        ("quic_per_node", TransportKind::Quic, Threading::PerNode),
        ("quic_shared", TransportKind::Quic, Threading::Shared),
        ("tcp_per_node", TransportKind::Tcp, Threading::PerNode),
        ("mem_per_node", TransportKind::Mem, Threading::PerNode),
    ] {
        let cl = cluster(transport, threading);
        let leader = leader_handle(&cl, &rt);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        leader.submit(&cmd).await.expect("commit");
                    }
                    start.elapsed()
                })
            })
        });
        cl.shutdown();
    }
    g.finish();

    let mut g = c.benchmark_group("commit_throughput");
    g.measurement_time(Duration::from_secs(3)).sample_size(10);
    let batch = 20_000u64;
    g.throughput(Throughput::Elements(batch));
    for (name, transport, threading) in [
        ("quic_per_node", TransportKind::Quic, Threading::PerNode),
        ("quic_shared", TransportKind::Quic, Threading::Shared),
        ("tcp_per_node", TransportKind::Tcp, Threading::PerNode),
        ("mem_per_node", TransportKind::Mem, Threading::PerNode),
    ] {
        let cl = cluster(transport, threading);
        let leader = leader_handle(&cl, &rt);
        let payload = cmd.encode();
        g.bench_with_input(BenchmarkId::from_parameter(name), &batch, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                    let start = Instant::now();
                    rt.block_on(async {
                        for id in 0..n {
                            let req = Request {
                                id,
                                command: payload.clone(),
                                reply: ReplyTo::Channel(tx.clone()),
                            };
                            leader.send(req).await.expect("server accepts");
                        }
                        for _ in 0..n {
                            let a = rx.recv().await.expect("a reply per request");
                            a.reply.expect("committed");
                        }
                    });
                    total += start.elapsed();
                }
                total
            })
        });
        cl.shutdown();
    }
    g.finish();
}

criterion_group!(benches, commit);
criterion_main!(benches);
