//! The hand-offs the harness makes between threads, measured so the choice is not a guess:
//! replies from a node's thread to the recorder thread (crossbeam vs std vs tokio
//! channels), and recording lags from node threads (a mutex around a histogram vs
//! hdrhistogram's `sync` recorder).

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hdrhistogram::sync::SyncHistogram;
use hdrhistogram::Histogram;

const N: u64 = 100_000;

fn channels(c: &mut Criterion) {
    let mut g = c.benchmark_group("reply_handoff");
    g.throughput(Throughput::Elements(N))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    g.bench_function("crossbeam_unbounded", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (tx, rx) = crossbeam::channel::unbounded::<(u64, u64)>();
                let start = Instant::now();
                let t = thread::spawn(move || (0..N).for_each(|i| tx.send((i, i)).unwrap()));
                for _ in 0..N {
                    rx.recv().unwrap();
                }
                total += start.elapsed();
                t.join().unwrap();
            }
            total
        })
    });
    g.bench_function("std_mpsc", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
                let start = Instant::now();
                let t = thread::spawn(move || (0..N).for_each(|i| tx.send((i, i)).unwrap()));
                for _ in 0..N {
                    rx.recv().unwrap();
                }
                total += start.elapsed();
                t.join().unwrap();
            }
            total
        })
    });
    g.bench_function("tokio_unbounded_blocking_recv", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
                let start = Instant::now();
                let t = thread::spawn(move || (0..N).for_each(|i| tx.send((i, i)).unwrap()));
                for _ in 0..N {
                    rx.blocking_recv().unwrap();
                }
                total += start.elapsed();
                t.join().unwrap();
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("lag_recording_3_threads");
    g.throughput(Throughput::Elements(3 * N))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    g.bench_function("mutex_histogram", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let h = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
                let start = Instant::now();
                let ts: Vec<_> = (0..3)
                    .map(|_| {
                        let h = h.clone();
                        thread::spawn(move || {
                            for i in 0..N {
                                h.lock().unwrap().record(1_000 + i % 5_000).unwrap();
                            }
                        })
                    })
                    .collect();
                ts.into_iter().for_each(|t| t.join().unwrap());
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("sync_histogram_recorders", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut h: SyncHistogram<u64> = Histogram::<u64>::new(3).unwrap().into_sync();
                let start = Instant::now();
                let ts: Vec<_> = (0..3)
                    .map(|_| {
                        let mut r = h.recorder();
                        thread::spawn(move || {
                            for i in 0..N {
                                r.record(1_000 + i % 5_000).unwrap();
                            }
                        })
                    })
                    .collect();
                ts.into_iter().for_each(|t| t.join().unwrap());
                h.refresh();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, channels);
criterion_main!(benches);
