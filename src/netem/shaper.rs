//! The sans-IO shaper: decides, for each datagram, whether and when it arrives.
//!
//! It reads no clock and draws only from the seeded RNG it was given: time is a
//! [`Duration`] since the emulator's epoch, passed in by the caller, so the same inputs
//! give the same decisions and the logic is tested in virtual time.
//!
//! Per datagram, in netem's order: a partition drops it; loss drops it (Gilbert-Elliott
//! first, then independent loss); it may be duplicated; each copy then waits for the
//! bandwidth (serialized behind earlier datagrams; dropped if the queue is full), then the
//! delay plus jitter; with `keep_order` no copy arrives before an earlier one on that link.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::config::{ms_to_duration, Endpoint, JitterDistribution, LinkSettings, NetworkConfig};

/// What the link does with a datagram: a byte stream (TCP) cannot lose, duplicate or
/// reorder, so for it only delay, jitter, bandwidth and partitions apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Traffic {
    /// A datagram (QUIC's UDP, the memory transport's messages): every knob applies.
    Datagram,
    /// A message on a reliable ordered stream (TCP, the client path): no loss, no
    /// duplication, no queue drop, always in order.
    Stream,
}

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Its two ends are on different sides of a partition.
    Partition,
    /// Random loss (independent or Gilbert-Elliott).
    Loss,
    /// The bandwidth queue was full (tail drop).
    QueueFull,
}

/// When one copy of a datagram arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Due time, since the emulator's epoch.
    pub due: Duration,
    /// Due already and nothing earlier on this link is still waiting: hand it over at once
    /// instead of scheduling it.
    pub immediate: bool,
}

/// The shaper's verdict on one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not delivered.
    Drop(DropReason),
    /// Delivered once.
    Deliver(Arrival),
    /// Delivered twice (duplication); each copy has its own jitter.
    Duplicate(Arrival, Arrival),
}

impl Decision {
    /// The arrivals, zero to two.
    pub fn arrivals(&self) -> impl Iterator<Item = Arrival> {
        let (a, b) = match *self {
            Decision::Drop(_) => (None, None),
            Decision::Deliver(a) => (Some(a), None),
            Decision::Duplicate(a, b) => (Some(a), Some(b)),
        };
        a.into_iter().chain(b)
    }
}

/// Counters of the shaper's decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShaperStats {
    /// Datagrams offered.
    pub offered: u64,
    /// Copies delivered (a duplicate counts twice).
    pub delivered: u64,
    /// Datagrams that were duplicated.
    pub duplicated: u64,
    /// Dropped by a partition.
    pub dropped_partition: u64,
    /// Dropped by random loss.
    pub dropped_loss: u64,
    /// Copies dropped by a full bandwidth queue.
    pub dropped_queue: u64,
}

/// The running state of one directed link.
#[derive(Debug)]
struct LinkState {
    settings: LinkSettings,
    /// Gilbert-Elliott: in the bad state.
    bad: bool,
    /// When the bandwidth-limited link finishes sending what it holds.
    link_free: Duration,
    /// Datagrams serialized or waiting to be: (end of serialization, size).
    backlog: VecDeque<(Duration, u64)>,
    backlog_bytes: u64,
    /// Latest due time handed out, for `keep_order` and streams.
    last_due: Duration,
    /// Latest due time of a copy that was scheduled rather than handed over at once.
    last_deferred: Option<Duration>,
}

impl LinkState {
    fn new(settings: LinkSettings) -> Self {
        LinkState {
            settings,
            bad: false,
            link_free: Duration::ZERO,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            last_due: Duration::ZERO,
            last_deferred: None,
        }
    }
}

/// Decides drop or arrival time for each datagram on each directed link.
#[derive(Debug)]
pub struct Shaper {
    config: NetworkConfig,
    links: HashMap<(Endpoint, Endpoint), LinkState>,
    /// Each group is cut off from everyone outside it.
    partitions: Vec<Vec<Endpoint>>,
    rng: ChaCha8Rng,
    stats: ShaperStats,
}

/// A jitter sample in units of `jitter_ms` (before the cut at ±4 for the unbounded ones).
fn jitter_unit(rng: &mut ChaCha8Rng, dist: JitterDistribution) -> f64 {
    match dist {
        JitterDistribution::Uniform => rng.random_range(-1.0..=1.0),
        JitterDistribution::Normal => std_normal(rng).clamp(-4.0, 4.0),
        JitterDistribution::ParetoNormal => {
            // Pareto(x_m = 1, shape 3) has mean 1.5 and standard deviation sqrt(3)/2.
            let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
            let pareto = (u.powf(-1.0 / 3.0) - 1.5) / (3f64.sqrt() / 2.0);
            (0.75 * std_normal(rng) + 0.25 * pareto).clamp(-4.0, 4.0)
        }
    }
}

/// Box-Muller; one of the pair is discarded, which costs little at datagram rates.
fn std_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Shaper {
    /// A shaper for `config` drawing from `rng` (seed it for repeatable runs).
    pub fn new(config: NetworkConfig, rng: ChaCha8Rng) -> Shaper {
        Shaper {
            config,
            links: HashMap::new(),
            partitions: Vec::new(),
            rng,
            stats: ShaperStats::default(),
        }
    }

    fn state(&mut self, from: Endpoint, to: Endpoint) -> &mut LinkState {
        let config = &self.config;
        self.links
            .entry((from, to))
            .or_insert_with(|| LinkState::new(config.settings_for(from, to)))
    }

    /// The settings in force on `from` → `to`.
    pub fn settings(&self, from: Endpoint, to: Endpoint) -> LinkSettings {
        match self.links.get(&(from, to)) {
            Some(s) => s.settings.clone(),
            None => self.config.settings_for(from, to),
        }
    }

    /// Replaces the settings of `from` → `to` from now on (datagrams already decided keep
    /// their times; `keep_order` still holds across the change).
    pub fn set_link(&mut self, from: Endpoint, to: Endpoint, settings: LinkSettings) {
        self.state(from, to).settings = settings;
    }

    /// Cuts every member of `group` off from every endpoint outside it, both ways, until
    /// [`Shaper::heal`]. Several partitions may hold at once.
    pub fn partition(&mut self, group: impl IntoIterator<Item = Endpoint>) {
        let mut g: Vec<Endpoint> = group.into_iter().collect();
        g.sort();
        g.dedup();
        self.partitions.push(g);
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.partitions.clear();
    }

    /// Whether `from` → `to` is cut by a partition.
    pub fn is_cut(&self, from: Endpoint, to: Endpoint) -> bool {
        self.partitions
            .iter()
            .any(|g| g.binary_search(&from).is_ok() != g.binary_search(&to).is_ok())
    }

    /// Counters so far.
    pub fn stats(&self) -> ShaperStats {
        self.stats
    }

    /// Decides what happens to a datagram of `size` bytes sent on `from` → `to` at `now`.
    pub fn decide(
        &mut self,
        now: Duration,
        from: Endpoint,
        to: Endpoint,
        size: usize,
        traffic: Traffic,
    ) -> Decision {
        self.stats.offered += 1;
        if self.is_cut(from, to) {
            self.stats.dropped_partition += 1;
            return Decision::Drop(DropReason::Partition);
        }
        let config = &self.config;
        let st = self
            .links
            .entry((from, to))
            .or_insert_with(|| LinkState::new(config.settings_for(from, to)));
        let rng = &mut self.rng;
        let datagram = traffic == Traffic::Datagram;
        if datagram {
            let mut lost = false;
            let ge = st.settings.gilbert_elliott;
            if ge.is_on() {
                let p_loss = if st.bad { ge.loss_bad } else { ge.loss_good };
                lost = p_loss > 0.0 && rng.random::<f64>() < p_loss;
                let flip = if st.bad { ge.r } else { ge.p };
                if flip > 0.0 && rng.random::<f64>() < flip {
                    st.bad = !st.bad;
                }
            }
            if !lost && st.settings.loss > 0.0 {
                lost = rng.random::<f64>() < st.settings.loss;
            }
            if lost {
                self.stats.dropped_loss += 1;
                return Decision::Drop(DropReason::Loss);
            }
        }
        let copies = if datagram
            && st.settings.duplicate > 0.0
            && rng.random::<f64>() < st.settings.duplicate
        {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut out = [None; 2];
        for slot in out.iter_mut().take(copies) {
            *slot = Self::one_copy(st, rng, now, size as u64, datagram);
        }
        let arrivals = out.iter().flatten().count() as u64;
        self.stats.delivered += arrivals;
        self.stats.dropped_queue += copies as u64 - arrivals;
        match out {
            [Some(a), Some(b)] => Decision::Duplicate(a, b),
            [Some(a), None] | [None, Some(a)] => Decision::Deliver(a),
            [None, None] => Decision::Drop(DropReason::QueueFull),
        }
    }

    fn one_copy(
        st: &mut LinkState,
        rng: &mut ChaCha8Rng,
        now: Duration,
        size: u64,
        datagram: bool,
    ) -> Option<Arrival> {
        let s = &st.settings;
        let sent = if s.rate_mbit > 0.0 {
            while st.backlog.front().is_some_and(|&(end, _)| end <= now) {
                let (_, n) = st.backlog.pop_front().expect("front exists");
                st.backlog_bytes -= n;
            }
            if datagram {
                let full_packets =
                    s.queue_packets > 0 && st.backlog.len() as u64 >= s.queue_packets;
                let full_bytes = s.queue_bytes > 0 && st.backlog_bytes + size > s.queue_bytes;
                if full_packets || full_bytes {
                    return None;
                }
            }
            // bits / (Mbit/s) = microseconds.
            let tx = Duration::from_nanos((size as f64 * 8.0 * 1e3 / s.rate_mbit).round() as u64);
            let end = st.link_free.max(now) + tx;
            st.link_free = end;
            st.backlog.push_back((end, size));
            st.backlog_bytes += size;
            end
        } else {
            now
        };
        let mut delay_ms = s.delay_ms;
        if s.jitter_ms > 0.0 {
            delay_ms += s.jitter_ms * jitter_unit(rng, s.jitter_distribution);
        }
        let mut due = sent + ms_to_duration(delay_ms.max(0.0));
        if s.keep_order || !datagram {
            due = due.max(st.last_due);
        }
        st.last_due = st.last_due.max(due);
        // Handing over at once must not overtake a copy of this link still scheduled.
        let immediate = due <= now && st.last_deferred.is_none_or(|d| d < now);
        if !immediate {
            st.last_deferred = Some(st.last_deferred.map_or(due, |d| d.max(due)));
        }
        Some(Arrival { due, immediate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netem::config::GilbertElliott;
    use rand::SeedableRng;

    const A: Endpoint = Endpoint::Node(1);
    const B: Endpoint = Endpoint::Node(2);
    const C: Endpoint = Endpoint::Node(3);

    fn shaper(s: LinkSettings) -> Shaper {
        Shaper::new(NetworkConfig::uniform(s), ChaCha8Rng::seed_from_u64(7))
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn due(d: Decision) -> Duration {
        match d {
            Decision::Deliver(a) => a.due,
            other => panic!("expected one delivery, got {other:?}"),
        }
    }

    #[test]
    fn no_emulation_delivers_immediately() {
        let mut s = shaper(LinkSettings::default());
        for i in 0..100 {
            let d = s.decide(us(i * 3), A, B, 1200, Traffic::Datagram);
            assert_eq!(
                d,
                Decision::Deliver(Arrival {
                    due: us(i * 3),
                    immediate: true
                })
            );
        }
    }

    #[test]
    fn delay_is_exact() {
        let mut s = shaper(LinkSettings {
            delay_ms: 5.0,
            ..LinkSettings::default()
        });
        for i in 0..1000u64 {
            let now = us(i * 17);
            let d = s.decide(now, A, B, 1200, Traffic::Datagram);
            assert_eq!(
                d,
                Decision::Deliver(Arrival {
                    due: now + Duration::from_millis(5),
                    immediate: false
                })
            );
        }
        // 0.1 ms, the smallest delay the delivery thread promises to keep.
        s.set_link(
            A,
            C,
            LinkSettings {
                delay_ms: 0.1,
                ..LinkSettings::default()
            },
        );
        assert_eq!(due(s.decide(us(10), A, C, 1, Traffic::Datagram)), us(110));
    }

    fn jitter_samples(dist: JitterDistribution, n: u64) -> Vec<f64> {
        let mut s = shaper(LinkSettings {
            delay_ms: 10.0,
            jitter_ms: 2.0,
            jitter_distribution: dist,
            ..LinkSettings::default()
        });
        (0..n)
            .map(|i| {
                let now = us(i * 100);
                (due(s.decide(now, A, B, 100, Traffic::Datagram)) - now).as_secs_f64() * 1e3
            })
            .collect()
    }

    fn mean_sd(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn uniform_jitter_stays_within_bounds_and_fills_them() {
        let v = jitter_samples(JitterDistribution::Uniform, 20_000);
        assert!(v.iter().all(|&d| (8.0..=12.0).contains(&d)));
        let (mean, sd) = mean_sd(&v);
        assert!((mean - 10.0).abs() < 0.05, "mean {mean}");
        // Uniform on [-2, 2] has sd 2/sqrt(3) = 1.155.
        assert!((sd - 1.155).abs() < 0.03, "sd {sd}");
        assert!(v.iter().any(|&d| d < 8.05) && v.iter().any(|&d| d > 11.95));
    }

    #[test]
    fn normal_jitter_has_its_sd_and_is_cut_at_four_sigma() {
        let v = jitter_samples(JitterDistribution::Normal, 20_000);
        assert!(v.iter().all(|&d| (2.0..=18.0).contains(&d)));
        let (mean, sd) = mean_sd(&v);
        assert!((mean - 10.0).abs() < 0.06, "mean {mean}");
        assert!((sd - 2.0).abs() < 0.06, "sd {sd}");
    }

    #[test]
    fn pareto_normal_jitter_is_bounded_and_right_skewed() {
        let v = jitter_samples(JitterDistribution::ParetoNormal, 20_000);
        assert!(v.iter().all(|&d| (2.0..=18.0).contains(&d)));
        let (mean, _) = mean_sd(&v);
        assert!((mean - 10.0).abs() < 0.1, "mean {mean}");
        let above = v.iter().filter(|&&d| d > 14.0).count();
        let below = v.iter().filter(|&&d| d < 6.0).count();
        assert!(above > below, "tail above {above}, below {below}");
    }

    #[test]
    fn jitter_never_makes_a_negative_delay() {
        let mut s = shaper(LinkSettings {
            delay_ms: 0.1,
            jitter_ms: 1.0,
            ..LinkSettings::default()
        });
        for i in 0..5000 {
            let now = us(1000 + i);
            assert!(due(s.decide(now, A, B, 100, Traffic::Datagram)) >= now);
        }
    }

    fn loss_run(s: &mut Shaper, n: u64) -> Vec<bool> {
        (0..n)
            .map(|i| {
                matches!(
                    s.decide(us(i), A, B, 100, Traffic::Datagram),
                    Decision::Drop(DropReason::Loss)
                )
            })
            .collect()
    }

    #[test]
    fn independent_loss_rate_is_within_statistical_bounds() {
        for p in [0.001, 0.01, 0.05] {
            let mut s = shaper(LinkSettings {
                loss: p,
                ..LinkSettings::default()
            });
            let n = 200_000u64;
            let lost = loss_run(&mut s, n).iter().filter(|&&l| l).count() as f64;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (lost - n as f64 * p).abs() < 4.0 * sd,
                "p {p}: lost {lost} of {n}"
            );
            assert_eq!(s.stats().dropped_loss, lost as u64);
        }
    }

    #[test]
    fn gilbert_elliott_loss_is_bursty_with_the_model_mean() {
        let ge = GilbertElliott {
            p: 0.01,
            r: 0.25,
            loss_good: 0.0,
            loss_bad: 1.0,
        };
        let mut s = shaper(LinkSettings {
            gilbert_elliott: ge,
            ..LinkSettings::default()
        });
        let n = 400_000;
        let lost = loss_run(&mut s, n);
        let rate = lost.iter().filter(|&&l| l).count() as f64 / n as f64;
        let expect = ge.mean_loss(); // 0.01 / 0.26 = 3.85 %
        assert!(
            (rate - expect).abs() < 0.1 * expect,
            "rate {rate}, model {expect}"
        );
        // Mean burst length 1/r = 4 datagrams.
        let bursts = lost.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
        let mean_burst = lost.iter().filter(|&&l| l).count() as f64 / bursts;
        assert!((mean_burst - 4.0).abs() < 0.4, "mean burst {mean_burst}");
    }

    #[test]
    fn duplication_rate_and_streams_are_never_lost_or_duplicated() {
        let mut s = shaper(LinkSettings {
            duplicate: 0.1,
            loss: 0.2,
            ..LinkSettings::default()
        });
        let n = 50_000u64;
        let mut dups = 0;
        for i in 0..n {
            if let Decision::Duplicate(a, b) = s.decide(us(i), A, B, 100, Traffic::Datagram) {
                assert_eq!((a.due, b.due), (us(i), us(i)));
                dups += 1;
            }
        }
        // Duplication is decided among the 80 % that survive loss.
        let expect = n as f64 * 0.8 * 0.1;
        assert!(
            (dups as f64 - expect).abs() < 4.0 * (expect * 0.9).sqrt(),
            "{dups}"
        );
        for i in 0..10_000 {
            assert!(matches!(
                s.decide(us(n + i), A, B, 100, Traffic::Stream),
                Decision::Deliver(_)
            ));
        }
    }

    #[test]
    fn bandwidth_serializes_datagrams() {
        // 8 Mbit/s: a 1000-byte datagram takes exactly 1 ms.
        let mut s = shaper(LinkSettings {
            rate_mbit: 8.0,
            delay_ms: 2.0,
            ..LinkSettings::default()
        });
        for i in 1..=10u64 {
            let d = due(s.decide(Duration::ZERO, A, B, 1000, Traffic::Datagram));
            assert_eq!(d, Duration::from_millis(i + 2));
        }
        // An idle link sends at once: serialization only, no queueing.
        let d = due(s.decide(Duration::from_millis(100), A, B, 500, Traffic::Datagram));
        assert_eq!(d, us(100_000 + 500 + 2000));
        // The other direction has its own queue.
        let d = due(s.decide(Duration::ZERO, B, A, 1000, Traffic::Datagram));
        assert_eq!(d, Duration::from_millis(3));
    }

    #[test]
    fn full_queue_drops_the_tail_and_drains_with_time() {
        let mut s = shaper(LinkSettings {
            rate_mbit: 8.0,
            queue_packets: 5,
            ..LinkSettings::default()
        });
        let v: Vec<Decision> = (0..10)
            .map(|_| s.decide(Duration::ZERO, A, B, 1000, Traffic::Datagram))
            .collect();
        assert!(v[..5].iter().all(|d| matches!(d, Decision::Deliver(_))));
        assert!(v[5..]
            .iter()
            .all(|d| *d == Decision::Drop(DropReason::QueueFull)));
        assert_eq!(s.stats().dropped_queue, 5);
        // After 2 ms two datagrams have left; two fit again, the third does not.
        let at = Duration::from_millis(2);
        assert_eq!(
            due(s.decide(at, A, B, 1000, Traffic::Datagram)),
            Duration::from_millis(6)
        );
        assert_eq!(
            due(s.decide(at, A, B, 1000, Traffic::Datagram)),
            Duration::from_millis(7)
        );
        assert_eq!(
            s.decide(at, A, B, 1000, Traffic::Datagram),
            Decision::Drop(DropReason::QueueFull)
        );
        // A byte limit: 2500 bytes hold two 1000-byte datagrams.
        s.set_link(
            A,
            C,
            LinkSettings {
                rate_mbit: 8.0,
                queue_packets: 0,
                queue_bytes: 2500,
                ..LinkSettings::default()
            },
        );
        let kept = (0..5)
            .filter(|_| {
                !matches!(
                    s.decide(at, A, C, 1000, Traffic::Datagram),
                    Decision::Drop(_)
                )
            })
            .count();
        assert_eq!(kept, 2);
        // A stream is never tail-dropped: it waits.
        for _ in 0..20 {
            assert!(matches!(
                s.decide(at, A, B, 1000, Traffic::Stream),
                Decision::Deliver(_)
            ));
        }
    }

    fn inversions(keep_order: bool, traffic: Traffic) -> usize {
        let mut s = shaper(LinkSettings {
            delay_ms: 1.0,
            jitter_ms: 0.5,
            keep_order,
            ..LinkSettings::default()
        });
        let dues: Vec<Duration> = (0..2000)
            .map(|i| due(s.decide(us(i * 50), A, B, 100, traffic)))
            .collect();
        dues.windows(2).filter(|w| w[1] < w[0]).count()
    }

    #[test]
    fn jitter_reorders_unless_order_is_kept() {
        assert!(inversions(false, Traffic::Datagram) > 100);
        assert_eq!(inversions(true, Traffic::Datagram), 0);
        assert_eq!(inversions(false, Traffic::Stream), 0);
    }

    #[test]
    fn immediate_copies_never_overtake_scheduled_ones() {
        let mut s = shaper(LinkSettings {
            delay_ms: 5.0,
            keep_order: true,
            ..LinkSettings::default()
        });
        let first = due(s.decide(Duration::ZERO, A, B, 100, Traffic::Datagram));
        s.set_link(
            A,
            B,
            LinkSettings {
                keep_order: true,
                ..LinkSettings::default()
            },
        );
        // Delay gone, but the earlier datagram is still on its way.
        match s.decide(us(1000), A, B, 100, Traffic::Datagram) {
            Decision::Deliver(a) => assert_eq!((a.due, a.immediate), (first, false)),
            d => panic!("{d:?}"),
        }
        // Once it is due, new datagrams go out at once again.
        let now = first + us(1);
        match s.decide(now, A, B, 100, Traffic::Datagram) {
            Decision::Deliver(a) => assert_eq!((a.due, a.immediate), (now, true)),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn partition_drops_both_ways_until_healed() {
        let mut s = shaper(LinkSettings::default());
        s.partition([C]);
        for (f, t) in [(A, C), (C, A), (B, C), (C, B), (Endpoint::Client, C)] {
            assert_eq!(
                s.decide(us(1), f, t, 10, Traffic::Stream),
                Decision::Drop(DropReason::Partition)
            );
        }
        assert!(matches!(
            s.decide(us(1), A, B, 10, Traffic::Datagram),
            Decision::Deliver(_)
        ));
        s.heal();
        assert!(matches!(
            s.decide(us(2), A, C, 10, Traffic::Datagram),
            Decision::Deliver(_)
        ));
        assert_eq!(s.stats().dropped_partition, 5);
    }

    #[test]
    fn per_link_overrides_and_runtime_changes() {
        let mut cfg = NetworkConfig::uniform(LinkSettings {
            delay_ms: 1.0,
            ..LinkSettings::default()
        });
        let mut o = crate::netem::LinkOverride::new(A, C);
        o.delay_ms = Some(20.0);
        cfg.links.push(o);
        let mut s = Shaper::new(cfg, ChaCha8Rng::seed_from_u64(1));
        assert_eq!(
            due(s.decide(Duration::ZERO, A, C, 1, Traffic::Datagram)),
            Duration::from_millis(20)
        );
        assert_eq!(
            due(s.decide(Duration::ZERO, C, A, 1, Traffic::Datagram)),
            Duration::from_millis(1)
        );
        s.set_link(
            C,
            A,
            LinkSettings {
                delay_ms: 3.0,
                ..LinkSettings::default()
            },
        );
        assert_eq!(s.settings(C, A).delay_ms, 3.0);
        assert_eq!(
            due(s.decide(Duration::ZERO, C, A, 1, Traffic::Datagram)),
            Duration::from_millis(3)
        );
    }

    #[test]
    fn same_seed_same_decisions() {
        let run = || {
            let mut s = shaper(LinkSettings {
                delay_ms: 1.0,
                jitter_ms: 1.0,
                loss: 0.1,
                duplicate: 0.05,
                ..LinkSettings::default()
            });
            (0..1000)
                .map(|i| s.decide(us(i * 10), A, B, 100, Traffic::Datagram))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
