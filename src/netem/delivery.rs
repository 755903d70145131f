//! The delivery thread: holds scheduled datagrams in a deadline heap and hands each over
//! at its due time, precisely.
//!
//! tokio's timer wheel has millisecond resolution, useless for a 100 us delay, so the
//! emulator has its own thread. It sleeps on a condition variable until shortly before the
//! earliest due time, then spins (yielding) for the last stretch. Three things make that
//! precise:
//!
//! - The thread's timer slack is set to 1 ns (`PR_SET_TIMERSLACK`). Linux's default slack of
//!   50 us lets the kernel fire a timed wait up to 50 us late, the whole error budget.
//! - It asks for `SCHED_FIFO` (lowest real-time priority). On a loaded machine a normal
//!   thread waits milliseconds for a core after its timer fired; without the priority
//!   ([`super::EmulatorStats::realtime`] false) the p99 error was 4 to 11 ms at load 9 on
//!   2 cores.
//! - The spin margin ([`DEFAULT_SPIN`], 50 us) covers the wake-up latency of a timed wait.
//!   Measured with `NETEM_PRECISION=1 cargo bench --bench netem` (2 shared cores, load
//!   average 9, ~5,000 datagrams/s, real-time priority; error p50/p99 in us, CPU of the
//!   delivery thread in % of a core):
//!
//!   | spin    | 0.1 ms delay     | 1 ms delay      | 5 ms delay       | CPU      |
//!   |---------|------------------|-----------------|------------------|----------|
//!   | 0       | 22 / 45          | 25 / 69         | 23 / 137         | 7-11 %   |
//!   | 20 us   | 2.6 / (outlier)  | 2.9 / 30        | 4.7 / 42         | 7-14 %   |
//!   | 50 us   | 0.3 / 13         | 0.3 / 12        | 0.4 / 106        | 16 %     |
//!   | 200 us  | 0.3 / 8.5        | 0.3 / 26        | 0.3 / 25         | 27-48 %  |
//!
//!   A pure timed wait is 20-25 us late at the median (the wake-up itself); 50 us of
//!   spinning removes that at about twice the CPU; 200 us buys nothing more and costs three
//!   times as much. The remaining tail is the machine (a sender preempted between its
//!   decision and the hand-over, or a core not available), which is why the harness must
//!   check each point's p99.
//!
//! Every datagram handed over records its error (hand-over time minus due time, in ns) in
//! an HDR histogram with 3 significant digits, which the harness takes per point.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// How long before a due time the thread stops sleeping and starts spinning.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// Longest the idle thread sleeps before it looks at its queue again (every wait is bounded).
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// A deferred hand-over: a datagram to send, a message to enqueue.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

struct Item {
    due: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Equal due times keep submission order.
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Item>>,
    seq: u64,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    errors: Mutex<Histogram<u64>>,
    /// CPU time the delivery thread has used, in ns (updated after each batch).
    cpu_ns: AtomicU64,
    /// Jobs handed over by the thread.
    delivered: AtomicU64,
    /// Whether the thread runs with a real-time priority.
    realtime: std::sync::atomic::AtomicBool,
    spin: Duration,
}

/// Largest error recorded as is (60 s); a larger one is recorded as 60 s.
const MAX_ERROR_NS: u64 = 60_000_000_000;

fn new_histogram() -> Histogram<u64> {
    // Fixed bounds: `saturating_record` on an auto-resizing histogram clamps to its
    // initial top (2,048) instead of growing.
    Histogram::new_with_bounds(1, MAX_ERROR_NS, 3).expect("valid bounds and precision")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A job that panicked leaves the data consistent (pushes and pops are atomic).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Owner of the delivery thread; dropping it stops the thread and drops what is pending.
pub(crate) struct Scheduler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Scheduler {
    /// Starts the thread; it spins the last `spin` before each due time.
    pub(crate) fn start(spin: Duration) -> std::io::Result<Scheduler> {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Condvar::new(),
            errors: Mutex::new(new_histogram()),
            cpu_ns: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            realtime: Default::default(),
            spin,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("netem-delivery".into())
            .spawn(move || run(&s))?;
        Ok(Scheduler {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `job` on the delivery thread at `due`.
    pub(crate) fn schedule(&self, due: Instant, job: Job) {
        let mut q = lock(&self.shared.queue);
        let seq = q.seq;
        q.seq += 1;
        let earliest = q.heap.peek().is_none_or(|Reverse(h)| due < h.due);
        q.heap.push(Reverse(Item { due, seq, job }));
        drop(q);
        // Only a new earliest item changes how long the thread must wait.
        if earliest {
            self.shared.wake.notify_one();
        }
    }

    /// The delivery-error histogram since the last take, replaced by an empty one.
    pub(crate) fn take_errors(&self) -> Histogram<u64> {
        std::mem::replace(&mut *lock(&self.shared.errors), new_histogram())
    }

    /// CPU time the delivery thread has used so far.
    pub(crate) fn cpu_time(&self) -> Duration {
        Duration::from_nanos(self.shared.cpu_ns.load(Ordering::Relaxed))
    }

    /// Jobs handed over so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    /// Whether the thread got a real-time priority (known once it has started).
    pub(crate) fn realtime(&self) -> bool {
        self.shared.realtime.load(Ordering::Relaxed)
    }

    /// Jobs waiting.
    pub(crate) fn pending(&self) -> usize {
        lock(&self.shared.queue).heap.len()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            // The thread may be the one dropping us (a job held the last handle): no join.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn thread_cpu_ns() -> u64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own; the clock id is valid.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        }
    }
    0
}

/// Lowers this thread's timer slack and, where allowed, gives it a real-time priority;
/// returns whether the real-time priority was granted.
fn set_precise_timers() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack.
        let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        if rc != 0 {
            tracing::warn!("cannot lower the delivery thread's timer slack; delivery will be late");
        }
        // On a loaded machine a normal thread waits milliseconds for a core after its timer
        // fired. SCHED_FIFO (lowest real-time priority) runs it at once; the thread sleeps
        // between due times, and the kernel's RT throttling bounds it if it ever did not.
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: pid 0 is this thread; the param outlives the call.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        if rc == 0 {
            return true;
        }
        tracing::debug!("no real-time priority for the delivery thread (needs CAP_SYS_NICE)");
    }
    false
}

fn run(s: &Shared) {
    s.realtime
        .store(set_precise_timers(), std::sync::atomic::Ordering::Relaxed);
    let mut batch: Vec<Item> = Vec::new();
    let mut q = lock(&s.queue);
    loop {
        if q.stop {
            return;
        }
        let now = Instant::now();
        let Some(Reverse(head)) = q.heap.peek() else {
            q = s
                .wake
                .wait_timeout(q, IDLE_WAIT)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        };
        if head.due > now {
            let left = head.due - now;
            if left > s.spin {
                q = s
                    .wake
                    .wait_timeout(q, (left - s.spin).min(IDLE_WAIT))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            } else {
                let due = head.due;
                drop(q);
                while Instant::now() < due {
                    std::thread::yield_now();
                }
                q = lock(&s.queue);
            }
            continue;
        }
        while q.heap.peek().is_some_and(|Reverse(h)| h.due <= now) {
            batch.push(q.heap.pop().expect("peeked").0);
        }
        drop(q);
        // Counted before the histogram sees them, so that counts >= samples at any moment.
        s.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut errors = lock(&s.errors);
        for item in batch.drain(..) {
            let err = Instant::now().saturating_duration_since(item.due);
            errors.saturating_record((err.as_nanos() as u64).min(MAX_ERROR_NS));
            (item.job)();
        }
        drop(errors);
        s.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
        q = lock(&s.queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn jobs_run_in_due_order_and_record_errors() {
        let s = Scheduler::start(DEFAULT_SPIN).unwrap();
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now() + Duration::from_millis(5);
        // Submitted out of order; the heap sorts them, equal due times keep submission order.
        for (i, off) in [(0u32, 900u64), (1, 100), (2, 500), (3, 500), (4, 300)] {
            let tx = tx.clone();
            s.schedule(
                t0 + Duration::from_micros(off),
                Box::new(move || {
                    let _ = tx.send((i, Instant::now()));
                }),
            );
        }
        let got: Vec<(u32, Instant)> = (0..5)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("job ran"))
            .collect();
        let order: Vec<u32> = got.iter().map(|g| g.0).collect();
        assert_eq!(order, vec![1, 4, 2, 3, 0]);
        // Never early.
        assert!(got.iter().all(|g| g.1 >= t0));
        assert_eq!(s.delivered(), 5);
        let h = s.take_errors();
        assert_eq!(h.len(), 5);
        assert_eq!(s.take_errors().len(), 0);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn dropping_the_scheduler_stops_the_thread_and_drops_pending_jobs() {
        let s = Scheduler::start(DEFAULT_SPIN).unwrap();
        let flag = Arc::new(());
        let held = flag.clone();
        s.schedule(
            Instant::now() + Duration::from_secs(3600),
            Box::new(move || drop(held)),
        );
        assert_eq!(Arc::strong_count(&flag), 2);
        drop(s);
        assert_eq!(Arc::strong_count(&flag), 1);
    }
}
