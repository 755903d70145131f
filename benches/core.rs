//! The consensus core alone: proposals pushed to commit through a calm simulated 3-node
//! cluster (no I/O, no serialization, a constant 1 us virtual delay), in entries per second,
//! for each combination of batch limit and pipeline window.
//!
//! The client keeps `OUTSTANDING` proposals in flight, so batches form only when the window
//! is full: a wide window with a small backlog sends many small messages (hashicorp/raft #541).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use raftbench::sim::CommitRig;

/// Entries committed per measured iteration.
const ENTRIES: u64 = 4096;
/// Proposals the closed-loop client keeps in flight.
const OUTSTANDING: usize = 1024;

fn commit_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_3_nodes");
    group.throughput(Throughput::Elements(ENTRIES));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for batch in [1usize, 16, 256] {
        for window in [1usize, 4, 32] {
            let id = BenchmarkId::new(format!("batch{batch}"), format!("window{window}"));
            group.bench_with_input(id, &(batch, window), |b, &(batch, window)| {
                let mut rig =
                    CommitRig::new(batch, window).expect("a calm cluster elects a leader");
                b.iter(|| {
                    let done = rig
                        .commit(ENTRIES, OUTSTANDING)
                        .expect("a calm cluster commits");
                    assert_eq!(done, ENTRIES);
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, commit_throughput);
criterion_main!(benches);
