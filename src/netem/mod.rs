//! Link emulation in the process (the kernel's netem is not available here).
//!
//! - [`config`]: the `network` table and the `links` list ([`NetworkConfig`]).
//! - [`shaper`]: the sans-IO decision per datagram (loss, duplication, bandwidth, delay,
//!   jitter, order, partitions), tested in virtual time.
//! - `delivery`: the thread that hands scheduled datagrams over at their
//!   due time, precisely, and records its own error.
//! - [`socket`]: the UDP socket below quinn ([`EmulatedSocket`]), so that QUIC's loss
//!   recovery and congestion control react to the emulated link as to a real one.
//!
//! A [`LinkEmulator`] is one cluster's emulated network: every node's transport holds a
//! clone, and the harness uses it for timed changes (a link's settings, partitions) and
//! for the delivery-error histogram. Emulation happens on the sending side: the datagram
//! from a to b is held back in a's socket (or transport) and handed to the real socket (or
//! channel) when due. Without a `LinkEmulator` nothing of this is in the path.

pub mod config;
mod delivery;
pub mod shaper;
pub mod socket;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use config::{
    Endpoint, GilbertElliott, JitterDistribution, LinkOverride, LinkSettings, NetemError,
    NetworkConfig,
};
pub use delivery::DEFAULT_SPIN;
pub use shaper::{Arrival, Decision, DropReason, Shaper, ShaperStats, Traffic};
pub use socket::EmulatedSocket;

use delivery::Scheduler;

/// Knobs of the emulator itself (not of the links).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmulatorOptions {
    /// Seed of the shaper's RNG (loss, jitter, duplication).
    pub seed: u64,
    /// How long before a due time the delivery thread stops sleeping and spins.
    pub spin: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            seed: 1,
            spin: DEFAULT_SPIN,
        }
    }
}

/// Counters of an emulator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EmulatorStats {
    /// The shaper's decisions.
    pub shaper: ShaperStats,
    /// Copies handed over at once by the sender (due already).
    pub immediate: u64,
    /// Copies handed over by the delivery thread.
    pub scheduled: u64,
    /// Copies waiting in the delivery thread.
    pub pending: u64,
    /// Copies whose hand-over to the real socket failed (socket buffer full, error).
    pub send_failed: u64,
    /// Whether the delivery thread runs with a real-time priority (SCHED_FIFO); without
    /// it, a loaded machine delays deliveries by scheduling latency.
    pub realtime: bool,
}

struct Inner {
    shaper: Mutex<Shaper>,
    scheduler: Scheduler,
    epoch: Instant,
    immediate: std::sync::atomic::AtomicU64,
    send_failed: Arc<std::sync::atomic::AtomicU64>,
}

/// One cluster's emulated network; cheap to clone, all clones share the links and the
/// delivery thread (which stops when the last clone is dropped).
#[derive(Clone)]
pub struct LinkEmulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LinkEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkEmulator").finish_non_exhaustive()
    }
}

/// Why an emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The configuration is invalid (the message names the key).
    #[error("network configuration: {0}")]
    Config(#[from] NetemError),
    /// The delivery thread could not be spawned.
    #[error("cannot start the delivery thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl LinkEmulator {
    /// An emulator of `config` whose shaper is seeded with `seed`.
    pub fn new(config: NetworkConfig, seed: u64) -> Result<LinkEmulator, EmulatorError> {
        Self::with_options(
            config,
            EmulatorOptions {
                seed,
                ..EmulatorOptions::default()
            },
        )
    }

    /// An emulator of `config` with explicit emulator knobs.
    pub fn with_options(
        config: NetworkConfig,
        opts: EmulatorOptions,
    ) -> Result<LinkEmulator, EmulatorError> {
        config.validate()?;
        Ok(LinkEmulator {
            inner: Arc::new(Inner {
                shaper: Mutex::new(Shaper::new(config, ChaCha8Rng::seed_from_u64(opts.seed))),
                scheduler: Scheduler::start(opts.spin)?,
                epoch: Instant::now(),
                immediate: Default::default(),
                send_failed: Default::default(),
            }),
        })
    }

    fn shaper(&self) -> MutexGuard<'_, Shaper> {
        // The shaper's state stays consistent across a panic in a caller.
        self.inner.shaper.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings in force on `from` → `to`.
    pub fn link(&self, from: Endpoint, to: Endpoint) -> LinkSettings {
        self.shaper().settings(from, to)
    }

    /// Replaces the settings of `from` → `to` from now on.
    pub fn set_link(&self, from: Endpoint, to: Endpoint, settings: LinkSettings) {
        self.shaper().set_link(from, to, settings);
    }

    /// Changes the knobs `change` names on its link (a timed fault such as "delay 20 ms").
    pub fn update_link(&self, change: &LinkOverride) {
        let mut shaper = self.shaper();
        let mut s = shaper.settings(change.from, change.to);
        change.apply(&mut s);
        shaper.set_link(change.from, change.to, s);
    }

    /// Validates `change`, then applies it as [`LinkEmulator::update_link`]; `key` names it
    /// in the error (e.g. `faults[2]`).
    pub fn try_update_link(&self, key: &str, change: &LinkOverride) -> Result<(), NetemError> {
        NetworkConfig {
            network: LinkSettings::default(),
            links: vec![change.clone()],
        }
        .validate()
        .map_err(|e| match e {
            NetemError::Invalid { key: k, reason } => NetemError::Invalid {
                key: k.replacen("links[0]", key, 1),
                reason,
            },
        })?;
        self.update_link(change);
        Ok(())
    }

    /// Cuts `group` off from every endpoint outside it, both ways, until [`LinkEmulator::heal`].
    pub fn partition(&self, group: &[Endpoint]) {
        self.shaper().partition(group.iter().copied());
    }

    /// Removes every partition (link settings stay as they are).
    pub fn heal(&self) {
        self.shaper().heal();
    }

    /// The delivery error (hand-over minus due time, ns, 3 significant digits) since the
    /// last call; the emulator starts a new histogram.
    ///
    /// Only copies that waited in the delivery thread are recorded: a copy due at once
    /// (zero delay) is handed over by the sender and counted in
    /// [`EmulatorStats::immediate`] instead.
    pub fn take_delivery_error(&self) -> Histogram<u64> {
        self.inner.scheduler.take_errors()
    }

    /// CPU time the delivery thread has used since the emulator started.
    pub fn delivery_cpu_time(&self) -> Duration {
        self.inner.scheduler.cpu_time()
    }

    /// Counters since the emulator started.
    pub fn stats(&self) -> EmulatorStats {
        use std::sync::atomic::Ordering::Relaxed;
        EmulatorStats {
            shaper: self.shaper().stats(),
            immediate: self.inner.immediate.load(Relaxed),
            scheduled: self.inner.scheduler.delivered(),
            pending: self.inner.scheduler.pending() as u64,
            send_failed: self.inner.send_failed.load(Relaxed),
            realtime: self.inner.scheduler.realtime(),
        }
    }

    /// Time since the emulator's epoch: the shaper's clock.
    fn now(&self) -> Duration {
        self.inner.epoch.elapsed()
    }

    /// Decides the fate of `size` bytes on `from` → `to`, now.
    pub(crate) fn decide(
        &self,
        from: Endpoint,
        to: Endpoint,
        size: usize,
        traffic: Traffic,
    ) -> Decision {
        let now = self.now();
        self.shaper().decide(now, from, to, size, traffic)
    }

    /// Runs `job` on the delivery thread at `due` (since the epoch).
    pub(crate) fn schedule(&self, due: Duration, job: delivery::Job) {
        self.inner.scheduler.schedule(self.inner.epoch + due, job);
    }

    pub(crate) fn count_immediate(&self) {
        self.inner
            .immediate
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn send_failed(&self) -> &std::sync::atomic::AtomicU64 {
        &self.inner.send_failed
    }

    pub(crate) fn send_failed_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.inner.send_failed.clone()
    }

    /// Sends `item` on `from` → `to` through the emulated link: `deliver(item)` runs at
    /// once if it is due at once, else on the delivery thread at its due time; twice if
    /// the link duplicates it; never if the link drops it. Returns the decision.
    pub fn submit<T, F>(
        &self,
        from: Endpoint,
        to: Endpoint,
        size: usize,
        traffic: Traffic,
        item: T,
        deliver: F,
    ) -> Decision
    where
        T: Clone + Send + 'static,
        F: Fn(T) + Send + Sync + 'static,
    {
        let decision = self.decide(from, to, size, traffic);
        match decision {
            Decision::Drop(_) => {}
            Decision::Deliver(a) => self.hand_over(a, item, deliver),
            Decision::Duplicate(a, b) => {
                let deliver = Arc::new(deliver);
                let d2 = deliver.clone();
                self.hand_over(a, item.clone(), move |t| deliver(t));
                self.hand_over(b, item, move |t| d2(t));
            }
        }
        decision
    }

    fn hand_over<T, F>(&self, a: Arrival, item: T, deliver: F)
    where
        T: Send + 'static,
        F: FnOnce(T) + Send + 'static,
    {
        if a.immediate {
            self.count_immediate();
            deliver(item);
        } else {
            self.schedule(a.due, Box::new(move || deliver(item)));
        }
    }

    /// Waits as long as the link `from` → `to` takes to carry `size` bytes (as a stream:
    /// delay, jitter, bandwidth; no loss). Returns false if a partition cuts the link.
    ///
    /// For paths that are not a transport, such as the harness's client to the leader.
    pub async fn transit(&self, from: Endpoint, to: Endpoint, size: usize) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tx = Mutex::new(Some(tx));
        let d = self.submit(from, to, size, Traffic::Stream, (), move |()| {
            if let Some(tx) = tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(());
            }
        });
        match d {
            Decision::Drop(_) => false,
            // The sender is gone only if the emulator stopped; then there is nothing to wait for.
            _ => {
                let _ = rx.await;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn delayed(ms: f64) -> NetworkConfig {
        NetworkConfig::uniform(LinkSettings {
            delay_ms: ms,
            ..LinkSettings::default()
        })
    }

    #[test]
    fn submit_delivers_later_records_error_and_counts() {
        let emu = LinkEmulator::new(delayed(1.0), 1).unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let start = Instant::now();
        for i in 0..20u32 {
            emu.submit(1.into(), 2.into(), 100, Traffic::Datagram, i, move |_| {});
            let _ = i;
        }
        emu.submit(
            1.into(),
            2.into(),
            100,
            Traffic::Datagram,
            99u32,
            move |i| {
                let _ = tx.lock().unwrap().send((i, Instant::now()));
            },
        );
        let (i, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(i, 99);
        assert!(at - start >= Duration::from_millis(1));
        let h = emu.take_delivery_error();
        assert_eq!(h.len(), 21);
        let s = emu.stats();
        assert_eq!((s.scheduled, s.immediate, s.shaper.offered), (21, 0, 21));
    }

    #[test]
    fn zero_delay_is_handed_over_by_the_caller() {
        let emu = LinkEmulator::new(NetworkConfig::default(), 1).unwrap();
        let me = std::thread::current().id();
        let ran_here = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran_here.clone();
        emu.submit(1.into(), 2.into(), 10, Traffic::Datagram, (), move |()| {
            r.store(
                std::thread::current().id() == me,
                std::sync::atomic::Ordering::SeqCst,
            );
        });
        assert!(ran_here.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(emu.stats().immediate, 1);
        assert_eq!(emu.take_delivery_error().len(), 0);
    }

    #[test]
    fn runtime_changes_partition_heal_and_update() {
        let emu = LinkEmulator::new(NetworkConfig::default(), 1).unwrap();
        emu.partition(&[Endpoint::Node(3)]);
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = count.clone();
        let send = |from: u64, to: u64| {
            let c = c.clone();
            emu.submit(
                from.into(),
                to.into(),
                10,
                Traffic::Datagram,
                (),
                move |()| {
                    c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                },
            )
        };
        assert_eq!(send(1, 3), Decision::Drop(DropReason::Partition));
        assert_eq!(send(3, 2), Decision::Drop(DropReason::Partition));
        assert!(matches!(send(1, 2), Decision::Deliver(_)));
        emu.heal();
        assert!(matches!(send(1, 3), Decision::Deliver(_)));
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);

        let mut change = LinkOverride::new(1.into(), 2.into());
        change.delay_ms = Some(7.0);
        emu.update_link(&change);
        assert_eq!(emu.link(1.into(), 2.into()).delay_ms, 7.0);
        assert_eq!(emu.link(2.into(), 1.into()).delay_ms, 0.0);
        change.loss = Some(2.0);
        assert_eq!(
            emu.try_update_link("faults[3]", &change)
                .unwrap_err()
                .to_string(),
            "faults[3].loss must be in [0,1]"
        );
    }

    #[test]
    fn invalid_config_is_refused() {
        let mut c = delayed(1.0);
        c.network.loss = -0.5;
        assert_eq!(
            LinkEmulator::new(c, 1).unwrap_err().to_string(),
            "network configuration: network.loss must be in [0,1]"
        );
    }

    #[tokio::test]
    async fn transit_waits_for_the_link() {
        let emu = LinkEmulator::new(delayed(2.0), 1).unwrap();
        let t = Instant::now();
        assert!(emu.transit(Endpoint::Client, 1.into(), 100).await);
        assert!(t.elapsed() >= Duration::from_millis(2));
        emu.partition(&[Endpoint::Client]);
        assert!(!emu.transit(Endpoint::Client, 1.into(), 100).await);
    }
}
