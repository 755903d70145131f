//! The files a run publishes read back to what `summary.json` says: `.hgrm` and `.hlog`
//! give the same percentiles, the JSON round-trips, the CSV has a row per point, the
//! plots are well-formed SVG and the report links each plot that was drawn.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use raftbench::harness::environment;
use raftbench::harness::histograms::{IntervalHistogram, PointHistograms, Unit};
use raftbench::harness::output::{self, file_names, read_run, sanitize, write_run};
use raftbench::harness::plots::{self, write_plots};
use raftbench::harness::report::{self, write_report};
use raftbench::harness::summary::{
    Baseline, Costs, Floor, FollowerLag, LoadKind, Percentiles, PointSummary, QuicStats,
    RunSummary, Saturation,
};

const INTERVAL: Duration = Duration::from_secs(1);

/// A deterministic spread of latencies in nanoseconds: a body around `base` and a tail
/// of one sample in fifty up to twenty times higher, over `seconds` intervals.
fn latency_values(base: u64, samples: u64) -> Vec<u64> {
    (0..samples)
        .map(|k| {
            let spread = (k * 7919) % 1000;
            if k % 50 == 0 {
                base * (2 + spread / 50)
            } else {
                base + base * spread / 1000
            }
        })
        .collect()
}

fn latency_hist(base: u64, samples: u64, seconds: u64) -> IntervalHistogram {
    let mut h = IntervalHistogram::new(Unit::Nanos, INTERVAL);
    for (k, value) in latency_values(base, samples).into_iter().enumerate() {
        let at = Duration::from_nanos(k as u64 * seconds * 1_000_000_000 / samples);
        h.record(at, value);
    }
    h.finish();
    h
}

/// The 99th percentile of the fixture's raw values by sorting them, without HdrHistogram:
/// what the published p99 must match to the histograms' three significant digits.
fn exact_p99_us(base: u64, samples: u64) -> f64 {
    let mut v = latency_values(base, samples);
    v.sort_unstable();
    let rank = ((0.99 * samples as f64).ceil() as usize).max(1) - 1;
    v[rank] as f64 / 1e3
}

fn count_hist(max: u64, samples: u64, seconds: u64) -> IntervalHistogram {
    let mut h = IntervalHistogram::new(Unit::Count, INTERVAL);
    for k in 0..samples {
        let at = Duration::from_nanos(k * seconds * 1_000_000_000 / samples);
        h.record(at, 1 + (k * 31) % max);
    }
    h.finish();
    h
}

fn lag(mean_us: f64, p99_us: f64) -> Percentiles {
    Percentiles {
        count: 1000,
        mean: mean_us,
        min: mean_us / 10.0,
        p50: mean_us,
        p90: (mean_us + p99_us) / 2.0,
        p99: p99_us,
        p999: p99_us * 1.2,
        p9999: p99_us * 1.3,
        max: p99_us * 1.5,
    }
}

#[allow(clippy::too_many_arguments)] // a test fixture: naming every field is the point
/// A point whose latency and batch-size summaries are computed from its histograms, as
/// the runner does.
fn point(
    name: &str,
    series: &str,
    params: &[(&str, &str)],
    config: &str,
    offered: f64,
    achieved: f64,
    hists: &PointHistograms,
    commit_lag_us: (f64, f64),
) -> PointSummary {
    let latency = Percentiles::of_nanos(&hists["latency"].total);
    let batch = Percentiles::scaled(&hists["batch_size"].total, 1.0);
    PointSummary {
        name: name.into(),
        series: series.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        load: LoadKind::OpenLoop,
        offered_rate: offered,
        achieved_rate: achieved,
        // An input here: the writers must show the flag; the rule that sets it is tested
        // on `summarize` itself.
        saturated: achieved < 0.95 * offered,
        schedule_invalid: false,
        measured_seconds: 3.0,
        warmup_seconds: 1.0,
        ok: latency.count,
        errors: 0,
        unanswered: 0,
        latency: latency.clone(),
        schedule_error: lag(5.0, 20.0),
        generator_thread: Default::default(),
        emulator_error: None,
        emulator_invalid: false,
        followers: vec![FollowerLag {
            node: 2,
            commit_lag: lag(commit_lag_us.0, commit_lag_us.1),
            apply_lag: lag(commit_lag_us.0 + 3.0, commit_lag_us.1 + 5.0),
        }],
        commit_lag: lag(commit_lag_us.0, commit_lag_us.1),
        apply_lag: lag(commit_lag_us.0 + 3.0, commit_lag_us.1 + 5.0),
        phases: Default::default(),
        phase_samples_missing: 0,
        phase_sum_mismatch: 0,
        batch_size: batch,
        pipeline_depth: lag(1.5, 3.0),
        storage: None,
        queue_depth: lag(120.0, 900.0),
        inbox_depth: lag(2.0, 40.0),
        overload_errors: if achieved < 0.95 * offered { 1000 } else { 0 },
        per_request: Costs {
            append_messages: 2.1,
            heartbeats: 0.1,
            commit_notices: 0.0,
            raft_messages: 4.2,
            wire_bytes: 300.0,
            cpu_seconds: 2e-5,
            ..Costs::default()
        },
        floor: Some(Floor {
            transport: "quic-raw".into(),
            threading: "per_node".into(),
            rate: offered,
            arrival: "poisson".into(),
            payload_bytes: 64,
            rtt: lag(90.0, 150.0),
        }),
        latency_p50_over_floor: Some(latency.p50 / 90.0),
        latency_p99_over_floor: Some(latency.p99 / 150.0),
        faults: Vec::new(),
        timeline: None,
        correctness: None,
        config: toml::from_str(config).expect("test config is TOML"),
        saturation: None,
        quic_stats: None,
        model: None,
        ..PointSummary::default()
    }
}

fn run_with(points: Vec<PointSummary>) -> RunSummary {
    RunSummary {
        scenario: "synthetic".into(),
        description: "Synthetic run for the results-files test.".into(),
        seed: 42,
        scenario_text: "name = \"synthetic\"\nseed = 42\n[base.workload]\nrate = 200\n".into(),
        environment: environment::capture(),
        baselines: vec![Baseline {
            transport: "quic".into(),
            threading: "per_node".into(),
            payload_bytes: 64,
            rtt: lag(90.0, 150.0),
        }],
        points,
    }
}

/// Two points of the `sparse-dense` series, with names that need sanitizing.
fn two_points() -> (RunSummary, Vec<(String, PointHistograms)>) {
    let mut all = Vec::new();
    let mut points = Vec::new();
    for (name, rate, base_ns, achieved) in [
        (
            "sparse-dense/workload.rate=200 mode",
            "200",
            80_000u64,
            200.0,
        ),
        (
            "sparse-dense/workload.rate=20000 mode",
            "20000",
            150_000,
            15_000.0,
        ),
    ] {
        let hists = PointHistograms::from([
            ("latency".to_string(), latency_hist(base_ns, 3000, 3)),
            ("batch_size".to_string(), count_hist(40, 500, 3)),
        ]);
        let offered: f64 = rate.parse().unwrap();
        points.push(point(
            name,
            "sparse-dense",
            &[("workload.rate", rate)],
            "[raft]\ncommit_mode = \"piggyback\"\nheartbeat_ms = 50.0\n[cluster]\ntransport = \"quic\"\n",
            offered,
            achieved,
            &hists,
            (25_000.0, 49_000.0),
        ));
        all.push((name.to_string(), hists));
    }
    (run_with(points), all)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks one `.hgrm` file against the histogram it was printed from; `p99` is (the p99
/// of summary.json, the p99 of the raw values), both in the file's units.
fn check_hgrm(path: &Path, h: &Histogram<u64>, ratio: f64, p99: Option<(f64, f64)>) {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "       Value     Percentile TotalCount 1/(1-Percentile)",
        "{}",
        path.display()
    );
    assert_eq!(lines[1], "");
    let footer = lines
        .iter()
        .position(|l| l.starts_with("#[Mean    = "))
        .expect("mean footer");
    assert!(lines[footer + 1].starts_with("#[Max     = "));
    assert!(lines[footer + 1].contains(&format!("Total count    = {:>12}]", h.len())));
    assert!(lines[footer + 2].starts_with("#[Buckets = "));
    assert_eq!(lines.len(), footer + 3);

    let rows: Vec<(f64, f64, u64)> = lines[2..footer]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() == 4 || f.len() == 3, "{l}");
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert!(rows.len() > 10);
    for w in rows.windows(2) {
        assert!(w[1].1 >= w[0].1, "percentile column decreases: {w:?}");
        assert!(w[1].2 >= w[0].2, "count column decreases: {w:?}");
    }
    let last = rows.last().unwrap();
    assert_eq!(last.1, 1.0);
    assert_eq!(last.2, h.len());
    assert_eq!(
        lines[footer - 1].split_whitespace().count(),
        3,
        "last line has no 1/(1-p)"
    );

    // Every line's value is the histogram's value at that line's percentile, to its
    // resolution (the iterator and value_at_quantile may round a count differently).
    for &(v, q, _) in &rows {
        let recorded = (v * ratio).round() as u64;
        let lo = h.lowest_equivalent(h.value_at_quantile((q - 1e-9).max(0.0)));
        let hi = h.highest_equivalent(h.value_at_quantile((q + 1e-9).min(1.0)));
        assert!(
            lo <= recorded && recorded <= hi,
            "{}: value {v} at {q} outside [{lo}, {hi}]",
            path.display()
        );
    }
    // The 99% level lies between two lines: their values bracket the p99 of summary.json.
    let exact = h.value_at_quantile(0.99) as f64 / ratio;
    let below = rows.iter().rfind(|r| r.1 <= 0.99).unwrap();
    let above = rows.iter().find(|r| r.1 >= 0.99).unwrap();
    assert!(below.0 <= exact + 1e-9 && exact <= above.0 + 1e-9);
    if let Some((p99, raw)) = p99 {
        assert!(
            (p99 - raw).abs() <= raw * 1e-3,
            "summary p99 {p99} vs raw {raw}"
        );
        assert!(
            (exact - raw).abs() <= raw * 1e-3,
            "file p99 {exact} vs raw {raw}"
        );
        assert!(below.0 <= p99 + 1e-9 && p99 <= above.0 + 1e-9);
    }
}

/// Reads an interval log with the hdrhistogram crate's own reader and adds its histograms
/// up per tag; also returns the log's text for header checks.
fn read_hlog(path: &Path) -> (String, BTreeMap<String, (Histogram<u64>, usize)>) {
    let bytes = std::fs::read(path).unwrap();
    let mut de = Deserializer::new();
    let mut per_tag: BTreeMap<String, (Histogram<u64>, usize)> = BTreeMap::new();
    let mut starts = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let LogEntry::Interval(ilh) = entry else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(ilh.encoded_histogram())
            .unwrap();
        let h: Histogram<u64> = de.deserialize(&mut raw.as_slice()).unwrap();
        // Interval_Max is printed in microseconds for nanosecond metrics.
        let divisor = if path.ends_with("latency.hlog") {
            1000.0
        } else {
            1.0
        };
        assert!((ilh.max() - h.max() as f64 / divisor).abs() < 1e-3 + 1e-9 * ilh.max());
        assert_eq!(ilh.duration(), INTERVAL);
        starts.push(ilh.start_timestamp());
        let tag = ilh.tag().expect("every interval is tagged").to_string();
        let e = per_tag
            .entry(tag)
            .or_insert_with(|| (Histogram::new(3).unwrap(), 0));
        e.0.add(&h).unwrap();
        e.1 += 1;
    }
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "timestamps in order"
    );
    (String::from_utf8(bytes).unwrap(), per_tag)
}

#[test]
fn results_files_read_back_to_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("results").join("synthetic");
    let (run, hists) = two_points();

    write_run(&dir, &run, &hists).unwrap();
    let plots = write_plots(&dir, &run, &hists).unwrap();
    write_report(&dir, &run, &plots).unwrap();

    // summary.json round-trips.
    let back = read_run(&dir).unwrap();
    assert_eq!(back, run);

    // summary.csv: a header and one row per point, a column per swept knob.
    let mut csv = csv::Reader::from_path(dir.join("summary.csv")).unwrap();
    let header = csv.headers().unwrap().clone();
    assert_eq!(&header[0], "name");
    assert!(header.iter().any(|h| h == "workload.rate"));
    assert!(header.iter().any(|h| h == "latency_p999_us"));
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), run.points.len());
    let rate_col = header.iter().position(|h| h == "workload.rate").unwrap();
    assert_eq!(&rows[0][rate_col], "200");
    assert_eq!(&rows[0][0], run.points[0].name.as_str());

    // .hgrm: one per point and metric, each the histogram's distribution.
    let names = file_names(hists.iter().map(|(n, _)| n.as_str()));
    assert_eq!(names[0], sanitize(&run.points[0].name));
    assert!(!names[0].contains(' ') && !names[0].contains('/'));
    for ((_, metrics), (file, p)) in hists.iter().zip(names.iter().zip(&back.points)) {
        for (metric, ih) in metrics {
            let path = dir.join("hgrm").join(format!("{file}.{metric}.hgrm"));
            assert!(path.is_file(), "{}", path.display());
            let ratio = output::scaling_ratio(ih.unit);
            let base = if p.offered_rate < 1000.0 {
                80_000
            } else {
                150_000
            };
            let p99 = (metric == "latency").then(|| (p.latency.p99, exact_p99_us(base, 3000)));
            check_hgrm(&path, &ih.total, ratio, p99);
        }
    }

    // .hlog: the intervals of each point, added up, give summary.json's percentiles.
    let (text, per_tag) = read_hlog(&dir.join("hlog").join("latency.hlog"));
    assert!(text.contains("#[Histogram log format version 1.3]"));
    assert!(text.contains("#[StartTime: "));
    assert!(text.contains("#[BaseTime: "));
    assert!(text.contains(
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
    ));
    assert!(text.contains("nanoseconds"), "the log states its units");
    assert_eq!(per_tag.len(), back.points.len());
    for (file, p) in names.iter().zip(&back.points) {
        let (total, intervals) = &per_tag[file];
        assert_eq!(*intervals, 3, "one histogram per second of the window");
        let read_back = Percentiles::of_nanos(total);
        assert_eq!(read_back.count, p.latency.count);
        assert_eq!(read_back.p50, p.latency.p50);
        assert_eq!(read_back.p99, p.latency.p99);
        assert_eq!(read_back.p999, p.latency.p999);
        assert_eq!(read_back.max, p.latency.max);
        assert!((read_back.mean - p.latency.mean).abs() <= p.latency.mean * 1e-9);
    }
    let (_, batch) = read_hlog(&dir.join("hlog").join("batch_size.hlog"));
    for (file, p) in names.iter().zip(&back.points) {
        let read_back = Percentiles::scaled(&batch[file].0, 1.0);
        assert_eq!(read_back.count, p.batch_size.count);
        assert_eq!(read_back.p99, p.batch_size.p99);
        assert_eq!(read_back.max, p.batch_size.max);
    }
    // The library's own reader agrees.
    let totals = output::read_interval_log(&dir.join("hlog").join("latency.hlog")).unwrap();
    assert_eq!(totals[&names[1]].len(), back.points[1].latency.count);

    // Plots: latency against rate, the spectrum and sparse/dense have data here; the
    // heartbeat sweep does not, so it is neither drawn nor linked.
    let drawn: Vec<String> = plots
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "latency_vs_rate.svg",
        "percentile_spectrum.svg",
        "sparse_vs_dense.svg",
    ] {
        assert!(
            drawn.iter().any(|d| d == expected),
            "{expected} in {drawn:?}"
        );
    }
    assert!(!drawn.iter().any(|d| d == "commit_lag_vs_heartbeat.svg"));
    for p in &plots {
        assert_well_formed_svg(p);
    }

    // report.md links each plot drawn, and only those.
    let md = read(&dir.join("report.md"));
    for d in &drawn {
        assert!(md.contains(&format!("](plots/{d})")), "{d} linked");
    }
    assert!(!md.contains("commit_lag_vs_heartbeat.svg"));
    assert!(md.contains("```toml\nname = \"synthetic\""));
    assert!(md.contains("SATURATED"), "the dense point fell below 95%");
    assert!(md.contains(&run.environment.git_revision));
    assert!(md.contains("| Seed | 42 |"));

    // The terminal table has a line per point.
    let table = report::table(&run);
    for p in &run.points {
        assert!(table.contains(&p.name));
    }

    // `raftbench report <dir>` redraws from summary.json alone: the spectrum comes back
    // from the interval log.
    let redrawn = write_plots(&dir, &back, &[]).unwrap();
    assert_eq!(redrawn.len(), plots.len());
}

fn assert_well_formed_svg(path: &Path) {
    let svg = read(path);
    let t = svg.trim();
    assert!(
        t.starts_with("<svg") || t.starts_with("<?xml"),
        "{}",
        path.display()
    );
    assert!(t.ends_with("</svg>"), "{}", path.display());
    assert!(t.contains("<text"), "{} has labels", path.display());
}

/// A fuller run: a rate sweep under two commit modes, a heartbeat sweep under three
/// commit-lag models and a sparse/dense series, so that every plot is drawn.
fn full_run() -> (RunSummary, Vec<(String, PointHistograms)>) {
    let mut points = Vec::new();
    let mut all = Vec::new();
    let mut add = |name: String,
                   series: &str,
                   params: Vec<(&str, String)>,
                   config: String,
                   offered: f64,
                   achieved: f64,
                   base_ns: u64,
                   lag_us: (f64, f64)| {
        let hists = PointHistograms::from([
            ("latency".to_string(), latency_hist(base_ns, 3000, 3)),
            ("batch_size".to_string(), count_hist(10, 300, 3)),
        ]);
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        points.push(point(
            &name, series, &params, &config, offered, achieved, &hists, lag_us,
        ));
        all.push((name, hists));
    };
    for mode in ["piggyback", "eager"] {
        for (i, rate) in [1000.0, 10_000.0, 100_000.0, 400_000.0]
            .into_iter()
            .enumerate()
        {
            let achieved = if i == 3 { rate * 0.6 } else { rate };
            let base =
                if mode == "eager" { 110_000 } else { 100_000 } * (1 + 3 * i as u64 * i as u64);
            add(
                format!("rate/workload.rate={rate},raft.commit_mode={mode}"),
                "rate",
                vec![
                    ("workload.rate", rate.to_string()),
                    ("raft.commit_mode", mode.to_string()),
                ],
                format!("[raft]\ncommit_mode = \"{mode}\"\n[cluster]\ntransport = \"quic\"\n"),
                rate,
                achieved,
                base,
                (500.0, 900.0),
            );
        }
    }
    for (mode, resets) in [("piggyback", false), ("piggyback", true), ("eager", false)] {
        for h in [10.0, 25.0, 50.0, 100.0] {
            let lag_ms: f64 = match (mode, resets) {
                ("eager", _) => 0.06,
                (_, true) => h + 0.05,
                _ => h / 2.0 + 0.05,
            };
            add(
                format!("heartbeat/raft.heartbeat_ms={h},resets={resets},mode={mode}"),
                "heartbeat",
                vec![
                    ("raft.heartbeat_ms", h.to_string()),
                    ("raft.commit_mode", mode.to_string()),
                    ("raft.append_resets_heartbeat", resets.to_string()),
                ],
                format!(
                    "[raft]\ncommit_mode = \"{mode}\"\nheartbeat_ms = {h:.1}\nappend_resets_heartbeat = {resets}\n[cluster]\ntransport = \"quic\"\n"
                ),
                200.0,
                200.0,
                200_000,
                (lag_ms * 1e3 * 1.03, lag_ms * 1e3 * 1.9),
            );
        }
    }
    for mode in ["piggyback", "eager"] {
        for rate in [200.0, 20_000.0] {
            let lag_us = match (mode, rate < 1000.0) {
                ("eager", _) => 70.0,
                (_, true) => 25_000.0,
                _ => 400.0,
            };
            add(
                format!("sparse-dense/workload.rate={rate},raft.commit_mode={mode}"),
                "sparse-dense",
                vec![
                    ("workload.rate", rate.to_string()),
                    ("raft.commit_mode", mode.to_string()),
                ],
                format!("[raft]\ncommit_mode = \"{mode}\"\n[cluster]\ntransport = \"quic\"\n"),
                rate,
                rate,
                if rate < 1000.0 { 120_000 } else { 300_000 },
                (lag_us, lag_us * 1.8),
            );
        }
    }
    // Batching: points with a saturation probe, over two round trips, a window sweep and
    // a batch sweep that meet at window 16, batch 1024.
    for delay in [0.1, 10.0] {
        for (key, w, b) in [
            ("raft.max_inflight_msgs", 1, 1024),
            ("raft.max_inflight_msgs", 16, 1024),
            ("raft.max_batch_entries", 16, 1),
        ] {
            let v = if key == "raft.max_inflight_msgs" {
                w
            } else {
                b
            };
            add(
                format!("batching-{delay}/{key}={v}"),
                &format!("batching-{delay}"),
                vec![(key, v.to_string())],
                format!(
                    "[raft]\nmax_inflight_msgs = {w}\nmax_batch_entries = {b}\n[network]\ndelay_ms = {delay}\n"
                ),
                1000.0 * w as f64,
                1000.0 * w as f64,
                300_000,
                (500.0, 900.0),
            );
        }
    }
    // Loss on the links to follower 3, then to both, with a loss-free reference.
    for (name, followers, loss) in [
        ("no-loss", vec![], 0.0),
        ("f3-1pct", vec![3], 0.01),
        ("both-1pct", vec![2, 3], 0.01),
    ] {
        let links: String = followers
            .iter()
            .flat_map(|f| [(1, *f), (*f, 1)])
            .map(|(a, b)| format!("[[links]]\nfrom = {a}\nto = {b}\nloss = {loss}\n"))
            .collect();
        add(
            format!("loss/{name}"),
            name,
            vec![],
            format!("[cluster]\nleader = 1\n[network]\ndelay_ms = 5.0\n{links}"),
            500.0,
            500.0,
            10_000_000,
            (6_000.0, 30_000.0),
        );
    }
    // The naive designs over a 5 ms link: entries only with the heartbeat.
    for h in [20.0, 50.0] {
        add(
            format!("on-tick/raft.heartbeat_ms={h}"),
            "on-tick",
            vec![("raft.heartbeat_ms", h.to_string())],
            format!(
                "[raft]\ntrigger = \"on_tick\"\nheartbeat_ms = {h:.1}\n[network]\ndelay_ms = 5.0\n"
            ),
            20.0,
            20.0,
            (h as u64 / 2 + 10) * 1_000_000,
            (h * 1e3 - 5_000.0, h * 1e3),
        );
    }
    for p in points.iter_mut() {
        if p.series.starts_with("batching") {
            p.saturation = Some(Saturation {
                throughput: p.achieved_rate * 2.0,
                clients: 4096,
                fraction: 0.5,
                ..Saturation::default()
            });
        }
        if p.name.starts_with("loss/") {
            p.quic_stats = Some(QuicStats {
                sent_packets: 10_000,
                lost_packets: (p.config.links.len() as u64) * 25,
                ..QuicStats::default()
            });
        }
    }
    // A faulted point: its timeline and faults feed the fault timeline.
    let mut faulted = points[0].clone();
    faulted.name = "kill_leader".into();
    faulted.series = "kill_leader".into();
    faulted.params.clear();
    faulted.timeline = Some(raftbench::harness::summary::Timeline {
        bin_ms: 100.0,
        ok: vec![20, 20, 0, 0, 35, 20],
        errors: vec![0, 0, 0, 1, 0, 0],
        offered: vec![20; 6],
    });
    faulted.faults = vec![raftbench::harness::summary::FaultSummary {
        kind: "kill_leader".into(),
        at_s: 0.2,
        duration_ms: 200.0,
        unavailability_ms: Some(230.0),
        ..Default::default()
    }];
    let h = all[0].1.clone();
    all.push((faulted.name.clone(), h));
    points.push(faulted);
    (run_with(points), all)
}

#[test]
fn every_plot_is_drawn_for_a_full_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Set RESULTS_FILES_OUT to keep the files (to look at the plots).
    let dir = match std::env::var_os("RESULTS_FILES_OUT") {
        Some(d) => Path::new(&d).to_path_buf(),
        None => tmp.path().join("full"),
    };
    let (run, hists) = full_run();
    write_run(&dir, &run, &hists).unwrap();
    let written = write_plots(&dir, &run, &hists).unwrap();
    write_report(&dir, &run, &written).unwrap();
    assert_eq!(written.len(), plots::PLOT_FILES.len(), "{written:?}");
    for p in &written {
        assert_well_formed_svg(p);
    }
    let svg = read(&dir.join("plots").join("commit_lag_vs_heartbeat.svg"));
    assert!(
        svg.contains("H/2 + d"),
        "the independent-timer model is drawn"
    );
    assert!(svg.contains("H + d"), "the reset-by-appends model is drawn");
    let svg = read(&dir.join("plots").join("latency_vs_rate.svg"));
    assert!(svg.contains("saturated"), "saturated points are annotated");
    let svg = read(&dir.join("plots").join("batching.svg"));
    assert!(svg.contains("round trip 20 ms") && svg.contains("round trip 0.2 ms"));
    let svg = read(&dir.join("plots").join("loss.svg"));
    assert!(
        svg.contains("followers 2 and 3"),
        "one line per set of lossy followers"
    );
    let svg = read(&dir.join("plots").join("latency_vs_heartbeat.svg"));
    assert!(
        svg.contains("H/2 + 2d"),
        "the on_tick latency model is drawn"
    );
    let md = read(&dir.join("report.md"));
    for f in plots::PLOT_FILES {
        assert!(md.contains(&format!("](plots/{f})")), "{f} linked");
    }
}
