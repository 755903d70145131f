//! The harness's replay of node processes' recordings (`NodeRecorder::replay`): events on
//! three clocks, merged onto the harness's, give exactly the follower lags an in-process
//! recorder computes from the same events, and the leader's histograms land in the right
//! intervals.

use std::time::Duration;

use hdrhistogram::Histogram;
use raftbench::harness::histograms::{IntervalHistogram, Unit};
use raftbench::harness::node_recorder::{NodeHistograms, NodeRecorder};
use raftbench::raft::{Index, NodeId, Role, Time};
use raftbench::remote::{EventRecord, Recording};
use raftbench::server::Observer;

const MS: u64 = 1_000_000;
const US: u64 = 1_000;
const N: u64 = 100;
const INTERVAL: Duration = Duration::from_millis(100);

/// Harness window: [1 s, 2 s).
const START: u64 = 1_000 * MS;
const END: u64 = 2_000 * MS;

/// Offsets node -> harness (`harness = node + offset`).
const OFF: [i64; 4] = [0, 500 * MS as i64, -300 * (MS as i64), -2_000 * (MS as i64)];

/// One event on the harness's clock, as a node saw it.
#[derive(Clone, Copy, Debug)]
struct Ev {
    node: NodeId,
    role: Role,
    apply: bool,
    from: Index,
    to: Index,
    at: u64,
}

/// When the leader commits index `10 + i`, on the harness's clock.
fn c(i: u64) -> u64 {
    START + 5 * MS * i
}

fn lag2(i: u64) -> u64 {
    MS + i * US
}

/// Every event of the synthetic run, on the harness's clock: 10 warm-up entries
/// committed before the window, then N entries in it; follower 2 learns each at once,
/// follower 3 two at a time.
fn events() -> Vec<Ev> {
    let ev = |node, role, apply, from, to, at| Ev {
        node,
        role,
        apply,
        from,
        to,
        at,
    };
    let (l, f) = (Role::Leader, Role::Follower);
    let mut v = vec![
        ev(1, l, false, 0, 10, 900 * MS),
        ev(1, l, true, 0, 10, 900 * MS + US),
        ev(2, f, false, 0, 10, 950 * MS),
        ev(2, f, true, 0, 10, 951 * MS),
        ev(3, f, false, 0, 10, 960 * MS),
        ev(3, f, true, 0, 10, 961 * MS),
    ];
    for i in 1..=N {
        let idx = 10 + i;
        v.push(ev(1, l, false, idx - 1, idx, c(i)));
        v.push(ev(1, l, true, idx - 1, idx, c(i) + 10 * US));
        v.push(ev(2, f, false, idx - 1, idx, c(i) + lag2(i)));
        v.push(ev(2, f, true, idx - 1, idx, c(i) + lag2(i) + 200 * US + i));
        if i % 2 == 0 {
            // Learns idx - 1 and idx together, 3 ms after idx committed.
            v.push(ev(3, f, false, idx - 2, idx, c(i) + 3 * MS));
            v.push(ev(3, f, true, idx - 2, idx, c(i) + 3 * MS + 50 * US));
        }
    }
    v
}

fn empty(unit: Unit) -> IntervalHistogram {
    IntervalHistogram::new(unit, INTERVAL)
}

/// Node `node`'s recording of `evs`, on its own clock (harness time minus its offset).
fn recording(node: NodeId, evs: &[Ev], offset: i64) -> Recording {
    let mut r = Recording {
        node,
        window: (
            Time::from_nanos((START as i64 - offset) as u64),
            Time::from_nanos((END as i64 - offset) as u64),
        ),
        interval: INTERVAL,
        commits: Vec::new(),
        applies: Vec::new(),
        batch_size: empty(Unit::Count),
        pipeline_depth: empty(Unit::Count),
        queue_depth: empty(Unit::Count),
        inbox_depth: empty(Unit::Count),
        events_dropped: 0,
    };
    for e in evs.iter().filter(|e| e.node == node) {
        let rec = EventRecord {
            role: e.role,
            from: e.from,
            to: e.to,
            at: Time::from_nanos((e.at as i64 - offset) as u64),
        };
        if e.apply {
            r.applies.push(rec);
        } else {
            r.commits.push(rec);
        }
    }
    r
}

/// What an in-process recorder makes of the same events, called in time order.
fn in_process(evs: &[Ev]) -> NodeHistograms {
    let mut evs = evs.to_vec();
    evs.sort_by_key(|e| e.at);
    let r = NodeRecorder::new(3, INTERVAL);
    r.set_window(Time::from_nanos(START), Time::from_nanos(END));
    for e in evs {
        let at = Time::from_nanos(e.at);
        if e.apply {
            r.applied(e.node, e.role, e.to, at);
        } else {
            r.commit_advanced(e.node, e.role, e.from, e.to, at);
        }
    }
    r.take()
}

fn replayed(recs: &[(Recording, i64)]) -> NodeHistograms {
    let r = NodeRecorder::new(3, INTERVAL);
    r.set_window(Time::from_nanos(START), Time::from_nanos(END));
    r.replay(recs);
    r.take()
}

fn follower(h: &NodeHistograms, id: NodeId) -> (&IntervalHistogram, &IntervalHistogram) {
    let (_, c, a) = h.followers.iter().find(|(n, _, _)| *n == id).unwrap();
    (c, a)
}

/// Equal histograms; a failure names their counts and extremes, not every bucket.
#[track_caller]
fn eq(a: &Histogram<u64>, b: &Histogram<u64>) {
    let show = |h: &Histogram<u64>| (h.len(), h.min(), h.max(), h.mean());
    assert!(a == b, "{:?} != {:?}", show(a), show(b));
}

#[track_caller]
fn same(a: &IntervalHistogram, b: &IntervalHistogram) {
    eq(&a.total, &b.total);
    assert_eq!(a.intervals().len(), b.intervals().len());
    for (x, y) in a.intervals().iter().zip(&b.intervals()) {
        assert_eq!((x.0, x.1), (y.0, y.1));
        eq(&x.2, &y.2);
    }
}

fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = Histogram::new(3).unwrap();
    for v in values {
        h.record(v).unwrap();
    }
    h
}

#[test]
fn replay_gives_the_lags_an_in_process_recorder_gives() {
    let evs = events();
    let recs: Vec<(Recording, i64)> = (1..=3)
        .map(|n| (recording(n, &evs, OFF[n as usize]), OFF[n as usize]))
        .collect();
    let got = replayed(&recs);
    let want = in_process(&evs);

    // Follower 2: one sample per entry of the window, each its own lag.
    let (c2, a2) = follower(&got, 2);
    assert_eq!(c2.total.len(), N);
    eq(&c2.total, &hist((1..=N).map(lag2)));
    eq(&a2.total, &hist((1..=N).map(|i| lag2(i) + 200 * US + i)));
    // Follower 3: odd entries waited 8 ms (5 ms to the next commit, plus 3), even 3 ms.
    let (c3, a3) = follower(&got, 3);
    let lag3 = |i: u64| if i % 2 == 1 { 8 * MS } else { 3 * MS };
    eq(&c3.total, &hist((1..=N).map(lag3)));
    eq(&a3.total, &hist((1..=N).map(|i| lag3(i) + 50 * US)));
    // The leader has no follower lags; the warm-up (committed before the window) none.
    assert!(follower(&got, 1).0.total.is_empty());

    for id in 1..=3 {
        let (gc, ga) = follower(&got, id);
        let (wc, wa) = follower(&want, id);
        same(gc, wc);
        same(ga, wa);
    }
    assert!(c2.intervals().len() >= 5, "samples spread over intervals");
}

#[test]
fn replay_merges_the_leaders_histograms_into_the_harness_window() {
    let evs = events();
    let mut leader = recording(1, &evs, OFF[1]);
    // Aligned with the harness window: node interval k is harness interval k.
    leader.batch_size.record(Duration::from_millis(150), 4);
    leader.batch_size.record(Duration::from_millis(350), 7);
    leader.batch_size.finish();
    leader.queue_depth.record(Duration::from_millis(10), 30);
    leader.queue_depth.finish();
    // A node whose window began 50 ms before the harness's: its offset 120 ms is 70 ms
    // into the harness's window, in its first interval.
    let mut early = recording(2, &evs, OFF[2]);
    early.window.0 = Time::from_nanos(early.window.0.as_nanos() - 50 * MS);
    early.pipeline_depth.record(Duration::from_millis(120), 2);
    early.pipeline_depth.finish();
    let got = replayed(&[(leader, OFF[1]), (early, OFF[2])]);
    eq(&got.batch_size.total, &hist([4, 7]));
    let starts: Vec<Duration> = got.batch_size.intervals().iter().map(|i| i.0).collect();
    assert_eq!(
        starts,
        vec![Duration::from_millis(100), Duration::from_millis(300)]
    );
    eq(&got.queue_depth.total, &hist([30]));
    assert_eq!(got.pipeline_depth.intervals()[0].0, Duration::ZERO);
    eq(&got.pipeline_depth.total, &hist([2]));
    assert!(got.inbox_depth.total.is_empty());
}

/// An offset estimated 2 ms wrong puts a follower's commits before the leader's on the
/// harness's clock; the sample is still taken (as a lag of zero), not lost.
#[test]
fn an_offset_error_below_the_lead_loses_no_sample() {
    let evs = events();
    let wrong = OFF[2] - 2 * MS as i64;
    let recs = vec![
        (recording(1, &evs, OFF[1]), OFF[1]),
        (recording(2, &evs, OFF[2]), wrong),
    ];
    let got = replayed(&recs);
    let (c2, _) = follower(&got, 2);
    assert_eq!(c2.total.len(), N);
    assert_eq!(c2.total.max(), 0, "each lag was below the 2 ms error");
}
