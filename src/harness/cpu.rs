//! Who in the process spent the CPU of a point: the nodes, or the harness measuring them.
//!
//! Each thread's time on a CPU comes from `/proc/self/task/<tid>/schedstat` (nanoseconds,
//! the scheduler's own accounting), read at the window's start and end. Threads are told
//! apart by name: the nodes' threads are `raftbench-node*`, the harness's are the load
//! generator (`rb-generator`), the closed-loop client threads (`rb-client-*`), the link
//! emulator's delivery thread (`netem-delivery`) and the recorder (the thread that runs the
//! point, known by its id). Everything else (disk syncers, tokio helpers) is `other`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Name of the open-loop generator's thread.
pub const GENERATOR_THREAD: &str = "rb-generator";
/// Prefix of the closed-loop client threads' names.
pub const CLIENT_THREAD_PREFIX: &str = "rb-client-";

/// One thread's CPU time at one instant.
#[derive(Clone, Debug)]
pub struct ThreadCpu {
    /// The thread's name (`comm`, at most 15 bytes).
    pub name: String,
    /// Nanoseconds it has spent on a CPU.
    pub ns: u64,
}

/// Every thread of this process and its CPU time, keyed by thread id; empty where `/proc`
/// is not readable.
pub fn snapshot() -> HashMap<u32, ThreadCpu> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let path = e.path();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        let name = std::fs::read_to_string(path.join("comm"))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default();
        if let Some(ns) = ns {
            out.insert(tid, ThreadCpu { name, ns });
        }
    }
    out
}

/// The calling thread's id, as `/proc/self/task` names it.
pub fn current_tid() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// CPU seconds spent over a point's measured window, by whom.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuShares {
    /// Every thread alive at the window's end (threads that ended within it are missed).
    pub process_seconds: f64,
    /// The nodes' threads (driver, transport; their runtimes).
    pub node_seconds: f64,
    /// The open-loop generator's thread.
    pub generator_seconds: f64,
    /// The thread that records answers (and, in the closed loop, runs no clients).
    pub recorder_seconds: f64,
    /// The closed-loop client threads (each sends and records its clients' requests).
    pub client_seconds: f64,
    /// The link emulator's delivery thread.
    pub emulator_seconds: f64,
    /// Every other thread (disk syncers, helpers).
    pub other_seconds: f64,
    /// The harness's share of the process: generator, recorder, clients and emulator over
    /// `process_seconds` (0 to 1).
    pub harness_share: f64,
}

impl CpuShares {
    /// The CPU each thread spent between `before` and `after`, grouped; `recorder` is the
    /// id of the thread that records answers.
    pub fn between(
        before: &HashMap<u32, ThreadCpu>,
        after: &HashMap<u32, ThreadCpu>,
        recorder: u32,
    ) -> CpuShares {
        let mut s = CpuShares::default();
        for (tid, t) in after {
            let was = before.get(tid).map_or(0, |b| b.ns);
            let secs = t.ns.saturating_sub(was) as f64 / 1e9;
            s.process_seconds += secs;
            let slot = if *tid == recorder {
                &mut s.recorder_seconds
            } else if t.name.starts_with("raftbench-node") {
                &mut s.node_seconds
            } else if t.name == GENERATOR_THREAD {
                &mut s.generator_seconds
            } else if t.name.starts_with(CLIENT_THREAD_PREFIX) {
                &mut s.client_seconds
            } else if t.name == "netem-delivery" {
                &mut s.emulator_seconds
            } else {
                &mut s.other_seconds
            };
            *slot += secs;
        }
        if s.process_seconds > 0.0 {
            s.harness_share = s.harness_seconds() / s.process_seconds;
        }
        s
    }

    /// CPU seconds of the harness's own threads.
    pub fn harness_seconds(&self) -> f64 {
        self.generator_seconds + self.recorder_seconds + self.client_seconds + self.emulator_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, ns: u64) -> ThreadCpu {
        ThreadCpu {
            name: name.into(),
            ns,
        }
    }

    #[test]
    fn threads_are_grouped_by_name_and_the_recorder_by_id() {
        let before = HashMap::from([
            (1, t("raftbench", 1_000_000_000)),
            (2, t("raftbench-node-1", 0)),
            (3, t(GENERATOR_THREAD, 500_000_000)),
        ]);
        let after = HashMap::from([
            (1, t("raftbench", 1_250_000_000)),
            (2, t("raftbench-node-1", 3_000_000_000)),
            (3, t(GENERATOR_THREAD, 750_000_000)),
            (4, t("rb-client-0", 250_000_000)),
            (5, t("syncer", 250_000_000)),
        ]);
        let s = CpuShares::between(&before, &after, 1);
        assert_eq!(s.process_seconds, 4.0);
        assert_eq!(s.node_seconds, 3.0);
        assert_eq!(s.recorder_seconds, 0.25);
        assert_eq!(s.generator_seconds, 0.25);
        assert_eq!(s.client_seconds, 0.25);
        assert_eq!(s.other_seconds, 0.25);
        assert_eq!(s.harness_share, 0.75 / 4.0);
    }

    /// A snapshot that holds thread `me`: listing `/proc/self/task` while other tests'
    /// threads start and end can skip entries (seen once in CI with many tests in
    /// parallel), so a bounded number of listings is taken.
    fn snapshot_with(me: u32) -> HashMap<u32, ThreadCpu> {
        let mut s = snapshot();
        for _ in 0..20 {
            if s.contains_key(&me) {
                break;
            }
            s = snapshot();
        }
        s
    }

    #[test]
    fn this_thread_is_in_the_snapshot_and_its_clock_moves() {
        let me = current_tid();
        let a = snapshot_with(me);
        // Busy for 30 ms of wall time (at least a scheduler tick of CPU, even on a
        // loaded machine it gets some), then off the CPU once: the kernel brings a
        // thread's total up to date when it is switched out.
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while t0.elapsed() < std::time::Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(x);
        std::thread::sleep(std::time::Duration::from_millis(1));
        let b = snapshot_with(me);
        assert!(a.contains_key(&me) && b.contains_key(&me));
        assert!(b[&me].ns > a[&me].ns);
    }
}
