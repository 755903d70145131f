//! The sync floor: what the disk under a data directory allows writers that each append a
//! record to their own file and sync it, over and over. A durable commit cannot be cheaper
//! than one such write plus sync, so durable figures are judged against this floor,
//! measured in the same run, on the same file system, with records of the same size.
//!
//! The conditions matter as much as the disk. On the VM this project was developed on,
//! while other processes wrote heavily to the same file system, one writer alone got 177
//! write+fsync cycles/s (p50 4.1 ms) and three writers at once about 3,600/s each (p50
//! 0.17 ms): concurrent syncs share the file system's journal commits. On the same VM
//! when quiet, one writer got about 5,500/s and three about 4,100/s each
//! (`results/durable/`). A cluster of three nodes syncs three logs at once, so its floor is
//! measured with one writer per node, in the same run, just before the point; the lone
//! writer is kept beside it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::SyncPolicy;

/// What [`measure`] saw.
#[derive(Clone, Debug)]
pub struct SyncFloor {
    /// The policy every write was synced with.
    pub policy: SyncPolicy,
    /// The size of each record written, in bytes.
    pub record_bytes: usize,
    /// Writers that ran at once, each on its own file.
    pub writers: usize,
    /// Writes (each followed by a sync) done, all writers together.
    pub syncs: u64,
    /// Wall time of the loop.
    pub elapsed: Duration,
    /// Latency of each write plus sync, in nanoseconds.
    pub latency_ns: Histogram<u64>,
}

impl SyncFloor {
    /// Write+sync cycles per second of one writer (the mean over the writers): the most
    /// commits one log can make durable without grouping.
    pub fn syncs_per_s(&self) -> f64 {
        if self.elapsed.is_zero() || self.writers == 0 {
            0.0
        } else {
            self.syncs as f64 / self.writers as f64 / self.elapsed.as_secs_f64()
        }
    }
}

/// Runs `writers` threads at once, each appending `record_bytes`-byte records to its own
/// scratch file in `dir` and syncing each with `policy`, for `budget` or `max_syncs` cycles
/// per writer, whichever ends first (and at least one); the scratch files are removed
/// afterwards.
pub fn measure(
    dir: &Path,
    policy: SyncPolicy,
    record_bytes: usize,
    writers: usize,
    budget: Duration,
    max_syncs: u64,
) -> io::Result<SyncFloor> {
    let writers = writers.max(1);
    let start = Instant::now();
    let results: Vec<io::Result<(u64, Histogram<u64>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let path = dir.join(format!("sync-floor-{}-{w}.tmp", std::process::id()));
                s.spawn(move || {
                    let r = one_writer(&path, policy, record_bytes, start + budget, max_syncs);
                    let _ = std::fs::remove_file(&path);
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a floor writer does not panic"))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut latency_ns = histogram();
    let mut syncs = 0;
    for r in results {
        let (n, h) = r?;
        syncs += n;
        latency_ns.add(&h).expect("same bounds");
    }
    Ok(SyncFloor {
        policy,
        record_bytes,
        writers,
        syncs,
        elapsed,
        latency_ns,
    })
}

/// 1 µs .. 100 s at 3 significant digits, as the stores' own sync histograms.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3).expect("valid bounds")
}

fn one_writer(
    path: &Path,
    policy: SyncPolicy,
    record_bytes: usize,
    until: Instant,
    max_syncs: u64,
) -> io::Result<(u64, Histogram<u64>)> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let record = vec![0xab_u8; record_bytes];
    let mut latency_ns = histogram();
    let mut syncs = 0u64;
    loop {
        let t = Instant::now();
        file.write_all(&record)?;
        policy.sync(&file)?;
        latency_ns.saturating_record((t.elapsed().as_nanos() as u64).max(1_000));
        syncs += 1;
        if syncs >= max_syncs.max(1) || Instant::now() >= until {
            return Ok((syncs, latency_ns));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_cycle_limit_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = measure(
            dir.path(),
            SyncPolicy::None,
            80,
            3,
            Duration::from_secs(60),
            25,
        )
        .unwrap();
        assert_eq!(f.syncs, 75, "25 cycles for each of 3 writers");
        assert_eq!(f.latency_ns.len(), 75);
        assert_eq!(f.record_bytes, 80);
        assert_eq!(f.writers, 3);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("not-there");
        assert!(measure(&gone, SyncPolicy::Fsync, 80, 2, Duration::from_secs(1), 5).is_err());
    }
}
