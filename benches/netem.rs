//! The link emulator's cost and precision.
//!
//! Criterion part: the per-datagram cost of sending a 1,200-byte datagram on loopback
//! through quinn's tokio UDP socket directly (`direct`, what runs without emulation),
//! through [`EmulatedSocket`] with zero delay (`emulated_zero_delay`: lookup, shaper
//! decision, then the same send), and the shaper's decision alone.
//!
//! Precision part (only with `NETEM_PRECISION=1`): the delivery thread's error (hand-over
//! minus due time) and its CPU time, for several spin margins and delays, with jobs
//! submitted at about 5,000 per second; then the error inside a 3-node QUIC cluster
//! committing puts at delays of 0.1, 1 and 5 ms one way.
//!
//! Compare within one run only: these machines are shared and noisy.

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use quinn::udp::Transmit;
use quinn::{AsyncUdpSocket, Runtime, TokioRuntime};
use raftbench::cluster::{ClusterSpec, LocalCluster};
use raftbench::netem::{
    EmulatedSocket, EmulatorOptions, Endpoint, LinkEmulator, LinkOverride, LinkSettings,
    NetworkConfig, Shaper, Traffic,
};
use raftbench::transport::TransportKind;
use rand::SeedableRng;

fn udp_send(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    // The receiver is never read: loopback drops what overflows its buffer, without
    // an error at the sender, so the sender's cost is what is measured.
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = receiver.local_addr().unwrap();
    let wrap = |s: UdpSocket| TokioRuntime.wrap_udp_socket(s).unwrap();
    let direct = wrap(UdpSocket::bind("127.0.0.1:0").unwrap());
    let emu = LinkEmulator::new(NetworkConfig::default(), 1).unwrap();
    let emu_handle = emu.clone();
    let emulated_inner = wrap(UdpSocket::bind("127.0.0.1:0").unwrap());
    let emulated = EmulatedSocket::new(emulated_inner.clone(), emu, Endpoint::Node(1));
    emulated.set_peers([(dest, Endpoint::Node(2))]);
    // tokio's socket sends only once it has seen the socket writable: poll each once.
    for s in [direct.clone(), emulated_inner.clone()] {
        let mut poller = s.create_io_poller();
        rt.block_on(std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx)))
            .unwrap();
    }
    let data = vec![0u8; 1200];
    let t = Transmit {
        destination: dest,
        ecn: None,
        contents: &data,
        segment_size: None,
        src_ip: None,
    };
    let mut g = c.benchmark_group("udp_send_1200B");
    // Every send must succeed, or the loop would time an error path.
    direct.try_send(&t).unwrap();
    g.bench_function("direct", |b| {
        b.iter(|| direct.try_send(black_box(&t)).unwrap())
    });
    g.bench_function("emulated_zero_delay", |b| {
        b.iter(|| emulated.try_send(black_box(&t)).unwrap())
    });
    g.finish();
    let failed = emu_handle.stats().send_failed;
    assert_eq!(
        failed, 0,
        "emulated sends failed: the loop timed an error path"
    );

    let mut shaper = Shaper::new(
        NetworkConfig::uniform(LinkSettings {
            delay_ms: 1.0,
            jitter_ms: 0.1,
            loss: 0.01,
            ..LinkSettings::default()
        }),
        rand_chacha::ChaCha8Rng::seed_from_u64(1),
    );
    let mut now = Duration::ZERO;
    c.bench_function("shaper_decide_delay_jitter_loss", |b| {
        b.iter(|| {
            now += Duration::from_micros(1);
            black_box(shaper.decide(
                now,
                Endpoint::Node(1),
                Endpoint::Node(2),
                1200,
                Traffic::Datagram,
            ))
        })
    });
}

criterion_group!(benches, udp_send);

fn percentile_us(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1e3
}

/// Jobs at ~5,000/s for `secs`, each due `delay` after submission.
fn synthetic(spin: Duration, delay_ms: f64, secs: f64) -> (hdrhistogram::Histogram<u64>, Duration) {
    let emu = LinkEmulator::with_options(
        NetworkConfig::uniform(LinkSettings {
            delay_ms,
            ..LinkSettings::default()
        }),
        EmulatorOptions { seed: 1, spin },
    )
    .unwrap();
    let start = Instant::now();
    let cpu0 = emu.delivery_cpu_time();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    while start.elapsed().as_secs_f64() < secs {
        emu.submit(
            Endpoint::Node(1),
            Endpoint::Node(2),
            100,
            Traffic::Datagram,
            (),
            |()| {},
        );
        // Exponential gaps, mean 200 us.
        let u: f64 = rand::Rng::random::<f64>(&mut rng);
        std::thread::sleep(Duration::from_secs_f64(-(1.0 - u).ln() * 200e-6));
    }
    std::thread::sleep(Duration::from_millis(delay_ms as u64 + 20));
    assert!(emu.stats().realtime, "measured without real-time priority");
    (emu.take_delivery_error(), emu.delivery_cpu_time() - cpu0)
}

fn in_cluster(delay_ms: f64, secs: f64) -> (hdrhistogram::Histogram<u64>, usize) {
    let mut net = NetworkConfig::uniform(LinkSettings {
        delay_ms,
        ..LinkSettings::default()
    });
    for n in 1..=3 {
        for (f, t) in [
            (Endpoint::Client, Endpoint::Node(n)),
            (Endpoint::Node(n), Endpoint::Client),
        ] {
            let mut o = LinkOverride::new(f, t);
            o.delay_ms = Some(0.0);
            net.links.push(o);
        }
    }
    let mut spec = ClusterSpec::new(3, TransportKind::Quic);
    spec.network = Some(net);
    let cluster = LocalCluster::start(spec).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let puts = rt.block_on(async {
        let mut client = cluster.client();
        client.put("warm", "up").await.unwrap();
        cluster.emulator().unwrap().take_delivery_error();
        let start = Instant::now();
        let mut n = 0;
        // Four concurrent clients.
        while start.elapsed().as_secs_f64() < secs {
            let mut tasks = Vec::new();
            for c in 0..4 {
                let mut cl = cluster.client();
                tasks.push(tokio::spawn(async move {
                    cl.put(format!("k{c}"), "v").await.is_ok()
                }));
            }
            for t in tasks {
                n += t.await.unwrap() as usize;
            }
        }
        n
    });
    let h = cluster.emulator().unwrap().take_delivery_error();
    cluster.shutdown();
    (h, puts)
}

fn precision() {
    println!("\nsynthetic: ~5,000 jobs/s; error = hand-over minus due (us); cpu = delivery thread");
    println!(
        "{:>8} {:>9} {:>8} {:>8} {:>8} {:>9}",
        "spin_us", "delay_ms", "p50", "p99", "max", "cpu_%"
    );
    let secs = 1.5;
    for spin_us in [0u64, 20, 50, 200] {
        for delay in [0.1, 1.0, 5.0] {
            let (h, cpu) = synthetic(Duration::from_micros(spin_us), delay, secs);
            println!(
                "{:>8} {:>9} {:>8.1} {:>8.1} {:>8.1} {:>9.1}",
                spin_us,
                delay,
                percentile_us(&h, 0.5),
                percentile_us(&h, 0.99),
                h.max() as f64 / 1e3,
                cpu.as_secs_f64() / secs * 100.0
            );
        }
    }
    println!("\n3-node QUIC cluster, 4 clients, every node link delayed (default spin)");
    println!(
        "{:>9} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "delay_ms", "samples", "p50", "p99", "max", "puts"
    );
    for delay in [0.1, 1.0, 5.0] {
        let (h, puts) = in_cluster(delay, 3.0);
        println!(
            "{:>9} {:>8} {:>8.1} {:>8.1} {:>8.1} {:>7}",
            delay,
            h.len(),
            percentile_us(&h, 0.5),
            percentile_us(&h, 0.99),
            h.max() as f64 / 1e3,
            puts
        );
    }
}

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    if std::env::var_os("NETEM_PRECISION").is_some() {
        precision();
    }
}
