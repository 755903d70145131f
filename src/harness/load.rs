//! Load generators: an open loop that keeps a schedule, and a closed loop of N clients.
//!
//! The open loop gives every request a slot in a schedule fixed in advance (constant or
//! Poisson spacing, from the seed) and measures latency from that slot, so a stall that
//! delays sending is charged to the requests it delayed (no coordinated omission). It
//! also measures how late it actually sent each request: a generator that cannot keep its
//! schedule invalidates the point. Timer wheels tick in milliseconds, so the generator has
//! a thread of its own that waits with the kernel's high-resolution timers, in a real-time
//! scheduling class where the user may have one ([`GeneratorThread`]): on a 2-core machine
//! shared with the nodes, a normal thread waits for a scheduler time slice (about 1 ms at
//! the 99th percentile) before it can send. When it falls behind it sends every due request
//! at once.
//!
//! The closed loop is N clients with one request outstanding each; its latency counts from
//! the actual send, and its results are labelled closed-loop everywhere.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::harness::histograms::{IntervalHistogram, Unit};
use crate::harness::reply_recorder::ReplyRecorder;
use crate::harness::scenario::{Arrival, Workload};
use crate::harness::target::LoadPort;
use crate::harness::window::Window;
use crate::kv::Command;
use crate::server::{Answer, ClientError, Refused, ReplyTo, Request};

/// Above this rate the generator runs in the normal scheduling class and never spins.
/// Its slots are then closer together than a wake-up takes (50 us), so spinning would hold
/// a core at real-time priority for the whole point: measured on the 2-core VM, a spinning
/// real-time generator at 300,000/s starved the nodes until leadership moved, where a
/// sleeping normal one sends each wake-up's due requests together and leaves the rest of
/// the core to the nodes. Dense points have millisecond latencies, so a wake-up's lateness
/// (charged to the requests it delays) does not decide them.
pub const SPIN_MAX_RATE: f64 = 20_000.0;

/// A dense generator sleeps at least this long when it is ahead, then sends every request
/// that has come due together: one wake-up (a syscall and a context switch, several us
/// here) per this much schedule rather than one per slot. Each request's lateness is
/// charged to its latency, as always.
pub const DENSE_TICK: Duration = Duration::from_micros(100);

/// A dense generator reads the clock at least once per this many sends. Between two
/// readings its recorded lateness is short by the time the sends took (well under 20 us
/// for 32 of them, against the 1 ms that invalidates a point); latency itself counts from
/// each request's slot and does not use this reading. A reading per send was 2.5% of all
/// CPU samples at 1,000,000 Puts/s offered.
const DENSE_CLOCK_EVERY: u32 = 32;

/// Sleep only when the next slot is further off than this; spin for the last stretch.
/// With a real-time class and a 1 ns timer slack a sleep on these VMs wakes 5-20 us late,
/// so a short spin absorbs it; spinning longer would take a core from the nodes at dense
/// rates, where slots are a few microseconds apart and the wait is mostly a sleep.
const SPIN_WINDOW: Duration = Duration::from_micros(20);

/// Bytes of commands that share one allocation ([`CommandMaker`]): about 200 64-byte
/// Puts. A buffer stays allocated while any command in it lives (in a log, or as a value
/// in a node's map), as a network read's buffer does for the requests decoded from it.
const ARENA_BYTES: usize = 16 * 1024;

/// Makes the command of request `i`, deterministically from the seed.
pub struct CommandMaker {
    /// Commands are written one after another into this buffer and split off it, so that
    /// a few hundred share one allocation, as requests decoded from one network read share
    /// the read's buffer. One allocation per command (freed on a node thread when the
    /// entry is compacted) made the generator's `malloc` and the nodes' `free` 10% of all
    /// CPU samples at 600,000 Puts/s offered.
    arena: BytesMut,
    rng: ChaCha8Rng,
    value: Bytes,
    keys: u64,
    get_fraction: f64,
    /// With unique keys: the next request's id (request `i` writes key `w<i>`).
    unique: Option<u64>,
}

impl CommandMaker {
    /// A maker for `w`'s commands.
    pub fn new(w: &Workload, seed: u64) -> CommandMaker {
        CommandMaker {
            arena: BytesMut::new(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6b65_7973),
            value: Bytes::from(vec![b'v'; w.payload_bytes]),
            keys: w.keys,
            get_fraction: w.get_fraction,
            unique: None,
        }
    }

    /// Makes request `i` (the i-th command made) use key
    /// [`unique_key(i)`](crate::harness::faults::unique_key), so that every acknowledged
    /// write can be read back on its own.
    pub fn with_unique_keys(mut self) -> CommandMaker {
        self.unique = Some(0);
        self
    }

    /// The next command, encoded: key `k<n>`, written on the stack and encoded with the
    /// value in one allocation (a `format!` and a `Bytes` per key were the generator's
    /// largest cost after its wake-ups); or a key of its own per request, for faulted points.
    pub fn next_command(&mut self) -> Bytes {
        let mut buf = [0u8; 21];
        let own;
        let key: &[u8] = match self.unique.as_mut() {
            Some(n) => {
                *n += 1;
                own = crate::harness::faults::unique_key(*n - 1);
                own.as_bytes()
            }
            None => key_name(self.rng.random_range(0..self.keys), &mut buf),
        };
        let get = self.get_fraction > 0.0 && self.rng.random_bool(self.get_fraction);
        let need = 5 + key.len() + if get { 0 } else { self.value.len() };
        if self.arena.capacity() < need {
            // A fresh buffer: the old one lives on in the commands split off it.
            self.arena = BytesMut::with_capacity(ARENA_BYTES.max(need));
        }
        if get {
            Command::encode_get_into(key, &mut self.arena);
        } else {
            Command::encode_put_into(key, &self.value, &mut self.arena);
        }
        self.arena.split().freeze()
    }
}

/// Writes `k<n>` (decimal) into `buf` and returns it.
fn key_name(mut n: u64, buf: &mut [u8; 21]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    i -= 1;
    buf[i] = b'k';
    &buf[i..]
}

/// Intended send instants of an open loop, as offsets from its start.
pub struct Schedule {
    rng: ChaCha8Rng,
    gap_ns: f64,
    arrival: Arrival,
    next_ns: f64,
}

impl Schedule {
    /// Slots at `rate` per second with `arrival` spacing.
    pub fn new(rate: f64, arrival: Arrival, seed: u64) -> Schedule {
        Schedule {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x7363_6865),
            gap_ns: 1e9 / rate,
            arrival,
            next_ns: 0.0,
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let at = self.next_ns;
        let gap = match self.arrival {
            Arrival::Constant => self.gap_ns,
            Arrival::Poisson => {
                let u: f64 = self.rng.random_range(0.0..1.0);
                -(1.0 - u).ln() * self.gap_ns
            }
        };
        self.next_ns += gap;
        Some(Duration::from_nanos(at as u64))
    }
}

/// The intended send time of each request id (nanoseconds on the cluster's clock),
/// shared between the generator and the reply recorder.
pub struct Intended {
    slots: Box<[AtomicU64]>,
    mask: u64,
}

impl Intended {
    /// Room for `capacity` (rounded up to a power of two) requests in flight at once.
    pub fn new(capacity: usize) -> Intended {
        let n = capacity.next_power_of_two();
        Intended {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n as u64 - 1,
        }
    }

    /// Records request `id`'s intended time.
    pub fn set(&self, id: u64, t: u64) {
        self.slots[(id & self.mask) as usize].store(t, Relaxed);
    }

    /// Request `id`'s intended time.
    pub fn get(&self, id: u64) -> u64 {
        self.slots[(id & self.mask) as usize].load(Relaxed)
    }
}

/// How the generator's thread is scheduled, as it reports in each point's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorThread {
    /// `SCHED_FIFO`: runs as soon as a slot is due, ahead of the nodes it measures.
    Realtime,
    /// The normal time-sharing class (the real-time one was refused): it may wait for a
    /// time slice, which shows as schedule error.
    #[default]
    Normal,
}

impl GeneratorThread {
    /// Puts the calling thread in a real-time class if it may and `realtime` asks for it,
    /// and asks for the finest timer slack either way; says which class it got.
    pub fn enter(realtime: bool) -> GeneratorThread {
        // SAFETY: prctl and sched_setscheduler act on the calling thread with plain values.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
            if !realtime {
                return GeneratorThread::Normal;
            }
            let param = libc::sched_param { sched_priority: 1 };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 {
                return GeneratorThread::Realtime;
            }
        }
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "the load generator could not take a real-time scheduling class \
             (needs CAP_SYS_NICE or an RLIMIT_RTPRIO); its schedule error will be larger"
        );
        GeneratorThread::Normal
    }
}

/// An open-loop generator.
pub struct OpenLoop {
    /// Where requests go.
    pub port: LoadPort,
    /// Where answers go, in batches (a leader sends each round's together).
    pub answers: mpsc::UnboundedSender<Vec<Answer>>,
    /// Intended times by request id.
    pub intended: Arc<Intended>,
    /// First slot.
    pub start: Instant,
    /// No slot at or after this.
    pub end: Instant,
    /// The measured window (slots in it count).
    pub window: Window,
    /// Requests per second.
    pub rate: f64,
    /// Spacing.
    pub arrival: Arrival,
    /// Seed of spacing and keys.
    pub seed: u64,
    /// The commands.
    pub commands: CommandMaker,
    /// Interval of the scheduling-error histogram.
    pub interval: Duration,
}

/// What a generator did.
pub struct GeneratorReport {
    /// Requests sent, in all.
    pub sent: u64,
    /// Requests whose slot fell in the measured window: the offered load as realized
    /// (a Poisson schedule offers a little more or less than its nominal rate), sent or
    /// refused.
    pub in_window: u64,
    /// Of `in_window`, those refused as overloaded without being sent: the leader said it
    /// was full, or its queue was.
    pub refused: u64,
    /// Lateness of each send in the window: actual minus intended (ns).
    pub schedule_error: IntervalHistogram,
    /// How the generator's thread was scheduled.
    pub thread: GeneratorThread,
    /// CPU seconds the generator's thread spent on slots in the measured window (its own
    /// thread clock; None for a closed loop, whose client threads are measured apart).
    pub cpu_seconds: Option<f64>,
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl OpenLoop {
    /// Runs the schedule on the calling thread (which it moves to a real-time class if it
    /// may) until `end`; answers go to `answers`.
    pub fn run(mut self) -> GeneratorReport {
        let dense = self.rate > SPIN_MAX_RATE;
        let thread = GeneratorThread::enter(!dense);
        let spin = SPIN_WINDOW;
        let mut err = IntervalHistogram::new(Unit::Nanos, self.interval);
        let mut sent = 0u64;
        let mut in_window = 0u64;
        let mut cpu_from = None;
        let mut refused = 0u64;
        let schedule = Schedule::new(self.rate, self.arrival, self.seed);
        let epoch = self.window.epoch;
        let mut now = Instant::now();
        let mut stale = 0u32;
        for offset in schedule {
            let slot = self.start + offset;
            if slot >= self.end {
                break;
            }
            if dense {
                // Requests already due are sent back to back; the clock is read again
                // only when the next slot may lie ahead, or every DENSE_CLOCK_EVERY sends.
                stale += 1;
                if slot > now || stale >= DENSE_CLOCK_EVERY {
                    now = Instant::now();
                    stale = 0;
                    if slot > now {
                        std::thread::sleep((slot - now).max(DENSE_TICK));
                        now = Instant::now();
                    }
                }
            } else {
                wait_until_spinning(slot, spin);
                now = Instant::now();
            }
            let slot_t = slot.duration_since(epoch);
            let off = self.window.offset(slot_t);
            if let Some(off) = off {
                in_window += 1;
                err.record(off, now.duration_since(slot).as_nanos() as u64);
                cpu_from.get_or_insert_with(thread_cpu_time);
            }
            // The leader says it is full: refused here, as a client that honours its
            // pushback would, without building or sending the request. Past the knee most
            // requests are refused, and a refusal that crossed two threads and back cost
            // as much CPU as the nodes' work on an accepted one.
            if !self.port.claim_room() {
                refused += u64::from(off.is_some());
                continue;
            }
            self.intended.set(sent, slot_t.as_nanos() as u64);
            let req = Request {
                id: sent,
                command: self.commands.next_command(),
                reply: ReplyTo::Batch(self.answers.clone()),
            };
            match self.port.offer(req) {
                Ok(()) => {}
                // Waiting for room would push every later send off its schedule and hide
                // the overload in queueing; the leader's full queue is an answer in itself.
                Err(Refused::Full(_)) => {
                    refused += u64::from(off.is_some());
                    continue;
                }
                Err(Refused::Closed(_)) => break, // the server is gone
            }
            sent += 1;
        }
        err.finish();
        GeneratorReport {
            sent,
            in_window,
            schedule_error: err,
            thread,
            cpu_seconds: cpu_from.map(|t| (thread_cpu_time() - t).as_secs_f64()),
            refused,
        }
    }
}

/// A closed loop: `clients` clients with one request outstanding each. It runs on the
/// task that receives the answers: each answer sends that client's next request. A point
/// runs several, one per client thread ([`run_client_thread`]).
pub struct ClosedLoop {
    /// Where requests go.
    pub port: LoadPort,
    /// Where answers go.
    pub answers: mpsc::UnboundedSender<Answer>,
    /// Send times by request id (latency counts from the actual send).
    pub intended: Arc<Intended>,
    /// The measured window (sends in it count).
    pub window: Window,
    /// The commands.
    pub commands: CommandMaker,
    /// The next request's id.
    pub next_id: u64,
    /// How far apart this loop's ids are: loops on other threads take the ids between.
    pub id_step: u64,
    /// Requests sent so far.
    pub sent: u64,
    /// Of which sent in the measured window.
    pub in_window: u64,
}

impl ClosedLoop {
    /// Sends one request; false if the leader is gone.
    pub async fn send_one(&mut self) -> bool {
        let now = self.window.epoch.elapsed();
        let id = self.next_id;
        self.next_id += self.id_step;
        self.intended.set(id, now.as_nanos() as u64);
        if self.window.offset(now).is_some() {
            self.in_window += 1;
        }
        let req = Request {
            id,
            command: self.commands.next_command(),
            reply: ReplyTo::Channel(self.answers.clone()),
        };
        self.sent += 1;
        self.port.send(req).await.is_ok()
    }

    /// What the loop did (a closed loop keeps no schedule, so it has no schedule error).
    pub fn report(&self, interval: Duration) -> GeneratorReport {
        GeneratorReport {
            sent: self.sent,
            in_window: self.in_window,
            schedule_error: IntervalHistogram::new(Unit::Nanos, interval),
            thread: GeneratorThread::Normal,
            cpu_seconds: None,
            refused: 0,
        }
    }
}

/// How many threads the closed loop's clients are spread over: `wanted`, or one per core
/// when 0, and never more threads than clients.
pub fn client_threads(wanted: usize, clients: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = if wanted == 0 { cores } else { wanted };
    t.clamp(1, clients.max(1))
}

/// The clients of thread `index` of `threads` when `clients` are spread evenly.
pub fn clients_of_thread(clients: usize, threads: usize, index: usize) -> usize {
    clients / threads + usize::from(index < clients % threads)
}

/// What one client thread did: its answers, recorded, and its sends.
pub struct ClientThreadReport {
    /// Its answers (finished).
    pub replies: ReplyRecorder,
    /// Requests sent, in all.
    pub sent: u64,
    /// Of which sent in the measured window.
    pub in_window: u64,
    /// CPU seconds the thread spent in the measured window (its own clock: the thread may
    /// end before the harness's snapshot at the window's end).
    pub cpu_seconds: f64,
    /// Answers that said [`ClientError::Overloaded`], in all (the window's are also in
    /// `replies.overload_errors`).
    pub overloaded: u64,
    /// Times a client waited before its next request (after an overload).
    pub backed_off: u64,
}

/// How a closed-loop client waits after the leader answers [`ClientError::Overloaded`]:
/// a random wait in `[b/2, b]`, where `b` starts at `first` and doubles with every
/// overload in a row up to `cap`, and is forgotten at the client's next other answer.
///
/// Without it a refused client resends at once: 16,384 clients at 100 ms RTT kept the
/// leader busy refusing them until leadership moved. The random half spreads the refused
/// clients' retries apart instead of bringing them back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait's upper bound.
    pub first: Duration,
    /// The largest upper bound.
    pub cap: Duration,
}

impl Backoff {
    /// Starts at 1 ms (a few commits at a saturated leader) and stops doubling at 100 ms.
    pub const DEFAULT: Backoff = Backoff {
        first: Duration::from_millis(1),
        cap: Duration::from_millis(100),
    };

    /// No wait: a refused client resends at once (for comparison only).
    pub const NONE: Backoff = Backoff {
        first: Duration::ZERO,
        cap: Duration::ZERO,
    };

    /// The upper bound after one more overload in a row, from `prev` (zero: the first).
    pub fn next_bound(&self, prev: Duration) -> Duration {
        if prev.is_zero() {
            self.first.min(self.cap)
        } else {
            (prev * 2).min(self.cap)
        }
    }

    /// A wait drawn under `bound`: uniform in `[bound/2, bound]`.
    pub fn draw(bound: Duration, rng: &mut ChaCha8Rng) -> Duration {
        let ns = bound.as_nanos() as u64;
        if ns == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.random_range(ns / 2..=ns))
    }
}

/// Runs `clients` closed-loop clients on the calling thread (with a runtime of its own)
/// from `start` to `end`, then waits up to `grace` for their last answers. Request ids are
/// `index`, `index + threads`, ... so that the threads share the ring of send times. A
/// client refused as overloaded backs off by [`Backoff::DEFAULT`], randomized from `index`.
#[allow(clippy::too_many_arguments)]
pub fn run_client_thread(
    port: LoadPort,
    clients: usize,
    index: usize,
    threads: usize,
    intended: Arc<Intended>,
    window: Window,
    commands: CommandMaker,
    times: (Instant, Instant, Duration),
    interval: Duration,
) -> std::io::Result<ClientThreadReport> {
    run_client_thread_with(
        Backoff::DEFAULT,
        index as u64,
        port,
        clients,
        index,
        threads,
        intended,
        window,
        commands,
        times,
        interval,
    )
}

/// As [`run_client_thread`], with the clients' `backoff` on overload and the `seed` of its
/// random waits.
#[allow(clippy::too_many_arguments)]
pub fn run_client_thread_with(
    backoff: Backoff,
    seed: u64,
    port: LoadPort,
    clients: usize,
    index: usize,
    threads: usize,
    intended: Arc<Intended>,
    window: Window,
    commands: CommandMaker,
    (start, end, grace): (Instant, Instant, Duration),
    interval: Duration,
) -> std::io::Result<ClientThreadReport> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut replies = ReplyRecorder::new(window, intended.clone(), interval);
    let mut cl = ClosedLoop {
        port,
        answers: tx,
        intended,
        window,
        commands,
        next_id: index as u64,
        id_step: threads as u64,
        sent: 0,
        in_window: 0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0062_6163_6b6f_6666);
    // Which client each request in flight belongs to, and each client's backoff bound
    // (zero: not backing off); at most `clients` entries each.
    let mut owner: HashMap<u64, usize> = HashMap::with_capacity(clients);
    let mut bound = vec![Duration::ZERO; clients];
    // Clients waiting out a backoff, by the instant they send again.
    let mut waiting: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let (mut overloaded, mut backed_off) = (0u64, 0u64);
    let win_start = window.start_instant();
    let mut cpu_from = None;
    let mut cpu_to = None;
    rt.block_on(async {
        tokio::time::sleep_until(start.into()).await;
        for client in 0..clients {
            let id = cl.next_id;
            if !cl.send_one().await {
                break;
            }
            owner.insert(id, client);
        }
        'run: while Instant::now() < end {
            if cpu_from.is_none() && Instant::now() >= win_start {
                cpu_from = Some(thread_cpu_time());
            }
            let now = Instant::now();
            let wait = waiting.peek().map_or(CLIENT_POLL, |Reverse((at, _))| {
                at.saturating_duration_since(now).min(CLIENT_POLL)
            });
            if let Ok(Some(mut a)) = tokio::time::timeout(wait, rx.recv()).await {
                // Everything already queued without a timer per answer: registering one
                // per `recv` cost more than recording the answer.
                loop {
                    let got = Instant::now();
                    replies.record(&a, got);
                    if let Some(client) = owner.remove(&a.id) {
                        if matches!(a.reply, Err(ClientError::Overloaded)) {
                            overloaded += 1;
                            bound[client] = backoff.next_bound(bound[client]);
                        } else {
                            bound[client] = Duration::ZERO;
                        }
                        let pause = Backoff::draw(bound[client], &mut rng);
                        if !pause.is_zero() {
                            backed_off += 1;
                            waiting.push(Reverse((got + pause, client)));
                        } else if got < end {
                            let id = cl.next_id;
                            if !cl.send_one().await {
                                break 'run;
                            }
                            owner.insert(id, client);
                        }
                    }
                    match rx.try_recv() {
                        Ok(next) => a = next,
                        Err(_) => break,
                    }
                }
            }
            // The clients whose backoff is over send again.
            let now = Instant::now();
            while let Some(&Reverse((at, client))) = waiting.peek() {
                if at > now || now >= end {
                    break;
                }
                waiting.pop();
                let id = cl.next_id;
                if !cl.send_one().await {
                    break 'run;
                }
                owner.insert(id, client);
            }
        }
        cpu_to = Some(thread_cpu_time());
        while replies.answered < cl.sent && Instant::now() < end + grace {
            if let Ok(Some(a)) = tokio::time::timeout(CLIENT_POLL, rx.recv()).await {
                if matches!(a.reply, Err(ClientError::Overloaded)) {
                    overloaded += 1;
                }
                replies.record(&a, Instant::now());
            }
        }
    });
    replies.finish();
    Ok(ClientThreadReport {
        replies,
        sent: cl.sent,
        in_window: cl.in_window,
        cpu_seconds: match (cpu_from, cpu_to) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        },
        overloaded,
        backed_off,
    })
}

/// How often a client thread looks at the clock while no answer comes.
const CLIENT_POLL: Duration = Duration::from_millis(20);

/// Waits until `t`: sleeps while it is far off, then spins for the last [`SPIN_WINDOW`].
pub fn wait_until(t: Instant) {
    wait_until_spinning(t, SPIN_WINDOW)
}

/// Waits until `t`: sleeps while it is further off than `spin`, then spins.
pub fn wait_until_spinning(t: Instant, spin: Duration) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > spin {
            std::thread::sleep(left - spin);
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_schedule_is_evenly_spaced() {
        let s: Vec<_> = Schedule::new(1000.0, Arrival::Constant, 1)
            .take(4)
            .collect();
        assert_eq!(s, [0, 1, 2, 3].map(Duration::from_millis).to_vec());
    }

    #[test]
    fn poisson_schedule_has_the_right_mean_and_replays() {
        let a: Vec<_> = Schedule::new(1000.0, Arrival::Poisson, 7)
            .take(20_001)
            .collect();
        let b: Vec<_> = Schedule::new(1000.0, Arrival::Poisson, 7)
            .take(20_001)
            .collect();
        assert_eq!(a, b, "the same seed gives the same schedule");
        let mean_gap = a[20_000].as_secs_f64() / 20_000.0;
        assert!((mean_gap - 0.001).abs() < 0.0001, "mean gap {mean_gap}");
        let gaps_differ = a.windows(2).any(|w| w[1] - w[0] != a[1] - a[0]);
        assert!(gaps_differ);
    }

    #[test]
    fn clients_are_spread_over_threads_without_loss() {
        for (clients, wanted) in [(1, 0), (7, 3), (4096, 0), (5, 8), (3, 1)] {
            let t = client_threads(wanted, clients);
            assert!(t >= 1 && t <= clients, "{clients} clients on {t} threads");
            if wanted > 0 {
                assert_eq!(t, wanted.min(clients));
            }
            let per: Vec<usize> = (0..t).map(|i| clients_of_thread(clients, t, i)).collect();
            assert_eq!(per.iter().sum::<usize>(), clients, "{per:?}");
            assert!(per.iter().max().unwrap() - per.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn key_names_are_k_and_the_decimal_number() {
        let mut buf = [0u8; 21];
        for n in [0u64, 7, 10, 9_999, u64::MAX] {
            assert_eq!(key_name(n, &mut buf), format!("k{n}").as_bytes());
        }
    }

    #[test]
    fn commands_follow_the_mix() {
        let w = Workload {
            get_fraction: 0.5,
            keys: 10,
            ..Workload::default()
        };
        let mut m = CommandMaker::new(&w, 3);
        let mut gets = 0;
        for _ in 0..1000 {
            match Command::decode(&m.next_command()).unwrap() {
                Command::Get { .. } => gets += 1,
                Command::Put { value, .. } => assert_eq!(value.len(), 64),
            }
        }
        assert!((400..600).contains(&gets), "{gets} gets of 1000");
    }
}
