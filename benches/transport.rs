//! One AppendEntries round trip (AE with 1, 64 or 1,024 entries of 64 bytes, answered
//! by an AppendEntriesResponse) over QUIC, TCP and memory, on loopback.
//!
//! Two runtime arrangements:
//! - `rtt_current_thread`: both nodes, their endpoints and the benchmark loop on one
//!   current-thread runtime: no thread hand-offs, the floor of each transport.
//! - `rtt_multi_thread`: a two-worker runtime; the loop runs on the benchmark thread and
//!   the transports' tasks on the workers, so each round trip crosses threads as a real
//!   driver's would.
//!
//! Compare within one run only: these machines are shared and noisy.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use raftbench::harness::baseline::{answer, append_batch};
use raftbench::raft::message::Message;
use raftbench::tls;
use raftbench::transport::{
    wait_connected, Inbound, MemMode, MemNetwork, QuicSettings, QuicTransport, StreamMode,
    TcpTransport, Transport, TransportSettings,
};
use tokio::runtime::Runtime;

const SIZES: [usize; 3] = [1, 64, 1_024];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Quic,
    QuicPerBatch,
    Tcp,
    Mem,
    MemEncode,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Quic => "quic",
            Kind::QuicPerBatch => "quic_per_batch",
            Kind::Tcp => "tcp",
            Kind::Mem => "mem",
            Kind::MemEncode => "mem_encode",
        }
    }
}

fn append(n: usize) -> Message {
    append_batch(n, 64)
}

type Node = (Box<dyn Transport>, Inbound);

/// Builds nodes 1 and 2 of `kind`, connected.
async fn pair(kind: Kind) -> (Node, Node) {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let settings = TransportSettings::default();
    let (a, b): (Node, Node) = match kind {
        Kind::Quic | Kind::QuicPerBatch => {
            let (_, ids) = tls::generate_cluster(&[1, 2]).unwrap();
            let quic = QuicSettings {
                stream_mode: match kind {
                    Kind::QuicPerBatch => StreamMode::PerBatch,
                    _ => StreamMode::Pipelined,
                },
                ..QuicSettings::default()
            };
            let b1 = QuicTransport::bind(&ids[0], local, &quic, settings.clone()).unwrap();
            let b2 = QuicTransport::bind(&ids[1], local, &quic, settings).unwrap();
            let peers = HashMap::from([(1, b1.local_addr()), (2, b2.local_addr())]);
            let (t1, i1) = b1.start(peers.clone());
            let (t2, i2) = b2.start(peers);
            ((Box::new(t1), i1), (Box::new(t2), i2))
        }
        Kind::Tcp => {
            let b1 = TcpTransport::bind(1, local, settings.clone())
                .await
                .unwrap();
            let b2 = TcpTransport::bind(2, local, settings).await.unwrap();
            let peers = HashMap::from([(1, b1.local_addr()), (2, b2.local_addr())]);
            let (t1, i1) = b1.start(peers.clone());
            let (t2, i2) = b2.start(peers);
            ((Box::new(t1), i1), (Box::new(t2), i2))
        }
        Kind::Mem | Kind::MemEncode => {
            let net = MemNetwork::new(match kind {
                Kind::MemEncode => MemMode::Encode,
                _ => MemMode::Move,
            });
            let (t1, i1) = net.join(1, 65_536);
            let (t2, i2) = net.join(2, 65_536);
            ((Box::new(t1), i1), (Box::new(t2), i2))
        }
    };
    assert!(wait_connected(a.0.as_ref(), 2).await);
    assert!(wait_connected(b.0.as_ref(), 1).await);
    (a, b)
}

fn runtime(multi: bool) -> Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}

fn bench_kind(c: &mut Criterion, group: &str, kind: Kind, multi: bool) {
    let rt = runtime(multi);
    let ((a, mut a_in), (b, mut b_in)) = rt.block_on(pair(kind));
    // Node 2 answers every AppendEntries at once, as a follower's driver would.
    rt.spawn(async move {
        while let Some((_, m)) = b_in.recv().await {
            b.send(answer(&m));
        }
    });
    let mut g = c.benchmark_group(group);
    for n in SIZES {
        let ae = append(n);
        g.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |bench, _| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        a.send(ae.clone());
                        let (_, resp) = a_in.recv().await.expect("transport alive");
                        black_box(resp);
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
    let dropped = a.stats().messages_dropped;
    assert_eq!(dropped, 0, "{} dropped messages", kind.name());
    drop(a);
    drop(rt);
}

fn round_trips(c: &mut Criterion) {
    for kind in [
        Kind::Quic,
        Kind::QuicPerBatch,
        Kind::Tcp,
        Kind::Mem,
        Kind::MemEncode,
    ] {
        bench_kind(c, "rtt_current_thread", kind, false);
    }
    for kind in [Kind::Quic, Kind::Tcp, Kind::Mem] {
        bench_kind(c, "rtt_multi_thread", kind, true);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = round_trips
}
criterion_main!(benches);
