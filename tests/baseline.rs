//! The physical-floor measurement: every floor, in both thread arrangements, completes
//! and reports a consistent histogram. No assertion compares times: these machines are
//! shared and noisy, and which floor is faster is what the measurement is for.

use std::time::Duration;

use raftbench::cluster::Threading;
use raftbench::harness::baseline::{
    self, measure, measure_all, BaselineError, BaselineSpec, FloorKey, FloorLevel, Pace, ALL_FLOORS,
};
use raftbench::harness::scenario::{Arrival, LoadMode, PointConfig};
use raftbench::transport::{QuicSettings, TransportKind};

const SAMPLES: usize = 200;

fn spec(transport: TransportKind, level: FloorLevel, threading: Threading) -> BaselineSpec {
    BaselineSpec {
        samples: SAMPLES,
        warmup: Duration::from_millis(20),
        ..BaselineSpec::new(transport, level, threading)
    }
}

fn check(transport: TransportKind, level: FloorLevel, threading: Threading, label: &str) {
    let s = spec(transport, level, threading);
    let (b, h) = measure(&s).unwrap_or_else(|e| panic!("{label} {threading:?}: {e}"));
    assert_eq!(b.transport, label);
    assert_eq!(b.payload_bytes, 64);
    assert_eq!(h.len(), SAMPLES as u64, "{label} {threading:?}");
    assert_eq!(b.rtt.count, SAMPLES as u64, "{label} {threading:?}");
    assert!(h.min() >= 1, "{label} {threading:?}: a zero round trip");
}

fn check_both(transport: TransportKind, level: FloorLevel, label: &str) {
    for threading in [Threading::PerNode, Threading::Shared] {
        check(transport, level, threading, label);
    }
}

#[test]
fn quic_raw() {
    check_both(TransportKind::Quic, FloorLevel::Raw, "quic-raw");
}

#[test]
fn tcp_raw() {
    check_both(TransportKind::Tcp, FloorLevel::Raw, "tcp-raw");
}

#[test]
fn mem_raw() {
    check_both(TransportKind::Mem, FloorLevel::Raw, "mem-raw");
}

#[test]
fn quic_transport() {
    check_both(TransportKind::Quic, FloorLevel::Transport, "quic");
}

#[test]
fn tcp_transport() {
    check_both(TransportKind::Tcp, FloorLevel::Transport, "tcp");
}

#[test]
fn mem_transport() {
    check_both(TransportKind::Mem, FloorLevel::Transport, "mem");
}

#[test]
fn measure_all_records_the_five_floors_in_order() {
    let all = measure_all(Threading::PerNode, &QuicSettings::default(), SAMPLES, None);
    let labels: Vec<&str> = all.iter().map(|(b, _)| b.transport.as_str()).collect();
    assert_eq!(labels, ["quic-raw", "tcp-raw", "quic", "tcp", "mem"]);
    let expected: Vec<String> = ALL_FLOORS
        .iter()
        .map(|&(t, l)| baseline::label(t, l))
        .collect();
    assert_eq!(labels, expected);
    for (b, h) in &all {
        assert_eq!(h.len(), SAMPLES as u64, "{}", b.transport);
        assert_eq!(b.payload_bytes, 64);
    }
}

#[test]
fn a_paced_floor_waits_for_its_slots_and_records_what_it_matched() {
    // 40 pings at a constant 100/s take at least 0.39 s however fast the machine: the
    // schedule, not the round trip, sets the pace (back to back they take milliseconds).
    let s = BaselineSpec {
        samples: 40,
        warmup: Duration::ZERO,
        pace: Some(Pace {
            rate: 100.0,
            arrival: Arrival::Constant,
            seed: 1,
        }),
        ..BaselineSpec::new(TransportKind::Tcp, FloorLevel::Raw, Threading::PerNode)
    };
    let t0 = std::time::Instant::now();
    let (b, h) = measure(&s).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(390),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(h.len(), 40);
    assert_eq!(b.rtt.count, 40);

    // A point's floor: its transport's raw round trip at its own rate and arrival process.
    let mut c = PointConfig::default();
    c.cluster.transport = TransportKind::Tcp;
    c.workload.rate = 2000.0;
    c.workload.arrival = Arrival::Poisson;
    let f = baseline::rate_matched(&c).expect("a TCP floor on loopback");
    assert_eq!(
        (f.transport.as_str(), f.rate, f.arrival.as_str()),
        ("tcp-raw", 2000.0, "poisson")
    );
    assert_eq!(f.rtt.count, 2000, "3 s at 2000/s, capped at 2000 samples");
    let mut closed = c.clone();
    closed.workload.mode = LoadMode::ClosedLoop;
    assert_ne!(
        FloorKey::of(&closed),
        FloorKey::of(&c),
        "a closed loop pings back to back"
    );
}

#[test]
fn empty_specs_are_refused() {
    let mut s = spec(TransportKind::Tcp, FloorLevel::Raw, Threading::PerNode);
    s.samples = 0;
    assert!(matches!(measure(&s), Err(BaselineError::Spec(_))));
    let mut s = spec(TransportKind::Tcp, FloorLevel::Raw, Threading::PerNode);
    s.payload_bytes = 0;
    assert!(matches!(measure(&s), Err(BaselineError::Spec(_))));
}

/// Prints every floor in both arrangements (for the README), not a check:
/// `cargo test --test baseline -- --ignored --nocapture print_floors`.
#[test]
#[ignore]
fn print_floors() {
    let samples = std::env::var("FLOOR_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(baseline::DEFAULT_SAMPLES);
    for threading in [Threading::PerNode, Threading::Shared] {
        for (transport, level) in ALL_FLOORS
            .into_iter()
            .chain([(TransportKind::Mem, FloorLevel::Raw)])
        {
            let s = BaselineSpec {
                samples,
                ..BaselineSpec::new(transport, level, threading)
            };
            let (b, _) = measure(&s).expect("floor measured");
            let r = &b.rtt;
            println!(
                "{threading:?}\t{:<9}\tn={}\tmin={:.1}\tp50={:.1}\tp90={:.1}\tp99={:.1}\tp99.9={:.1}\tmax={:.1}\tmean={:.1} us",
                b.transport, r.count, r.min, r.p50, r.p90, r.p99, r.p999, r.max, r.mean
            );
        }
    }
}
