//! Load generators: an open loop that keeps a schedule, and a closed loop of N clients.
//!
//! The open loop gives every request a slot in a schedule fixed in advance (constant or
//! Poisson spacing, from the seed) and measures latency from that slot, so a stall that
//! delays sending is charged to the requests it delayed (no coordinated omission). It
//! also measures how late it actually sent each request: a generator that cannot keep its
//! schedule invalidates the point. Timer wheels tick in milliseconds, so the generator
//! sleeps only while the next slot is far off and yields the core until the slot arrives
//! for the last stretch; when it falls behind it sends every due request at once.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::harness::histograms::{IntervalHistogram, Unit};
use crate::harness::scenario::{Arrival, Workload};
use crate::kv::Command;
use crate::server::{Reply, ReplyTo, Request, ServerHandle};

/// Sleep only when the next slot is further off than this; yield the core closer to it.
/// Small, because yielding keeps a core busy: at dense rates the generator would otherwise
/// spin all the time and take a core from the nodes it measures. A sleep overshoots by
/// about 50 us on these VMs, so dense schedules leave in small bursts, a little late; the
/// lateness is measured and reported.
const SLEEP_SLACK: Duration = Duration::from_micros(50);

/// Makes the command of request `i`, deterministically from the seed.
pub struct CommandMaker {
    rng: ChaCha8Rng,
    value: Bytes,
    keys: u64,
    get_fraction: f64,
}

impl CommandMaker {
    /// A maker for `w`'s commands.
    pub fn new(w: &Workload, seed: u64) -> CommandMaker {
        CommandMaker {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6b65_7973),
            value: Bytes::from(vec![b'v'; w.payload_bytes]),
            keys: w.keys,
            get_fraction: w.get_fraction,
        }
    }

    /// The next command, encoded.
    pub fn next_command(&mut self) -> Bytes {
        let key = Bytes::from(format!("k{}", self.rng.random_range(0..self.keys)));
        let cmd = if self.get_fraction > 0.0 && self.rng.random_bool(self.get_fraction) {
            Command::Get { key }
        } else {
            Command::Put {
                key,
                value: self.value.clone(),
            }
        };
        cmd.encode()
    }
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

/// An open-loop generator.
pub struct OpenLoop {
    /// Where requests go.
    pub leader: ServerHandle,
    /// Where replies go.
    pub replies: crossbeam::channel::Sender<(u64, Reply)>,
    /// Intended times by request id.
    pub intended: Arc<Intended>,
    /// The cluster's clock origin.
    pub epoch: Instant,
    /// First slot.
    pub start: Instant,
    /// No slot at or after this.
    pub end: Instant,
    /// The measured window (slots in it count), as offsets from `epoch`.
    pub window: (Duration, Duration),
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

/// What a generator reports when it stops.
pub struct GeneratorReport {
    /// Requests sent, in all.
    pub sent: u64,
    /// Requests whose slot fell in the measured window: the offered load as realized
    /// (a Poisson schedule offers a little more or less than its nominal rate).
    pub in_window: u64,
    /// Lateness of each send in the window: actual minus intended (ns).
    pub schedule_error: IntervalHistogram,
}

impl OpenLoop {
    /// Runs on the calling thread (which must be outside any tokio runtime) until `end`.
    pub fn run(mut self) -> GeneratorReport {
        let mut err = IntervalHistogram::new(Unit::Nanos, self.interval);
        let mut sent = 0u64;
        let mut in_window = 0u64;
        let schedule = Schedule::new(self.rate, self.arrival, self.seed);
        for offset in schedule {
            let slot = self.start + offset;
            if slot >= self.end {
                break;
            }
            wait_until(slot);
            let now = Instant::now();
            let slot_t = slot.duration_since(self.epoch);
            self.intended.set(sent, slot_t.as_nanos() as u64);
            if slot_t >= self.window.0 && slot_t < self.window.1 {
                in_window += 1;
                err.record(
                    slot_t - self.window.0,
                    now.duration_since(slot).as_nanos() as u64,
                );
            }
            let req = Request {
                id: sent,
                command: self.commands.next_command(),
                reply: ReplyTo::Queue(self.replies.clone()),
            };
            if self.leader.blocking_send(req).is_err() {
                break; // the server is gone
            }
            sent += 1;
        }
        err.finish();
        GeneratorReport {
            sent,
            in_window,
            schedule_error: err,
        }
    }
}

/// Waits until `t`: sleeps while it is far off, then yields the core until it arrives.
pub fn wait_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        let left = t - now;
        if left > SLEEP_SLACK {
            std::thread::sleep(left - SLEEP_SLACK / 2);
        } else {
            std::thread::yield_now();
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
