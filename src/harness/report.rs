//! `report.md`, a run's human-readable account (environment, baselines, results, plots,
//! rules and configuration), and the plain-text table the CLI prints after a run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::output::{write_file, OutputError};
use super::plots::format::{fixed, micros, plain, ratio, si};
use super::summary::{LoadKind, Percentiles, PointSummary, RunSummary};

/// Writes `dir/report.md` for `run`, embedding the plots in `plots` (files under `dir`).
pub fn write_report(dir: &Path, run: &RunSummary, plots: &[PathBuf]) -> Result<(), OutputError> {
    let links: Vec<String> = plots.iter().map(|p| plot_link(dir, p)).collect();
    write_file(&dir.join("report.md"), markdown(run, &links).as_bytes())
}

/// A plot's path relative to the report, with `/` separators so Markdown viewers follow it.
fn plot_link(dir: &Path, plot: &Path) -> String {
    let rel = plot.strip_prefix(dir).unwrap_or(plot);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// A percentile of a histogram that may be empty: "-" rather than a misleading zero.
fn pct(p: &Percentiles, v: f64) -> String {
    if p.count == 0 {
        "-".to_string()
    } else {
        micros(v)
    }
}

/// The flags a point carries: results that are not valid latency points say so.
fn flags(p: &PointSummary) -> String {
    let mut f = Vec::new();
    if p.saturated {
        f.push("SATURATED");
    }
    if p.invalid() {
        f.push("INVALID");
    }
    if p.load == LoadKind::ClosedLoop {
        f.push("closed-loop");
    }
    f.join(" ")
}

fn offered(p: &PointSummary) -> String {
    match p.load {
        LoadKind::OpenLoop => si(p.offered_rate),
        LoadKind::ClosedLoop => "closed".to_string(),
    }
}

/// Text safe inside a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// "10 s" when every point agrees, else "5-10 s".
fn seconds_range(values: impl Iterator<Item = f64>) -> String {
    let v: Vec<f64> = values.collect();
    if v.is_empty() {
        return "-".to_string();
    }
    let lo = v.iter().copied().fold(f64::MAX, f64::min);
    let hi = v.iter().copied().fold(f64::MIN, f64::max);
    if (hi - lo).abs() < 1e-9 {
        format!("{} s", plain(lo))
    } else {
        format!("{}-{} s", plain(lo), plain(hi))
    }
}

/// A fenced code block whose fence no line of `text` can close early.
fn fenced(lang: &str, text: &str) -> String {
    let mut fence = "```".to_string();
    while text.contains(&fence) {
        fence.push('`');
    }
    format!("{fence}{lang}\n{}\n{fence}\n", text.trim_end())
}

fn plot_caption(link: &str) -> &'static str {
    match link.rsplit('/').next().unwrap_or(link) {
        "latency_vs_rate.svg" => {
            "Client latency (p50, p99, p99.9) against offered rate; saturated points are ringed in red."
        }
        "throughput_vs_rate.svg" => {
            "Delivered throughput and requests refused as overloaded against offered rate; past the knee delivered should hold near its peak."
        }
        "queues_vs_rate.svg" => {
            "Batch size, uncommitted entries at the leader and requests in its inbox (means) against offered rate."
        }
        "percentile_spectrum.svg" => "Client latency by percentile, one curve per point.",
        "commit_lag_vs_heartbeat.svg" => {
            "Measured follower commit lag against heartbeat interval, with the model of each commit mode (dashed)."
        }
        "sparse_vs_dense.svg" => {
            "Sparse against dense load by commit mode: client latency and follower commit lag."
        }
        "latency_vs_heartbeat.svg" => {
            "Measured client latency against heartbeat interval, with each design's sparse-load model (dashed): 2d when entries leave at once, H/2 + 2d when they wait for the heartbeat."
        }
        "batching.svg" => {
            "Saturation throughput (top; a closed-loop probe) and client latency at a fraction of it (bottom; open loop) against the pipeline window (left) and the batch limit (right), one line per round trip."
        }
        "loss.svg" => {
            "Client latency, the lossy followers' commit lag and QUIC's lost packets against the loss probability on the links."
        }
        _ => "",
    }
}

/// A column of the results table, shared by `report.md` and the terminal table so that
/// both print a point the same way.
struct Column {
    /// Header in `report.md`.
    title: &'static str,
    /// Header in the terminal table, which leaves the column out when `None`.
    short: Option<&'static str>,
    /// Text reads left to right (names, flags); numbers align on the right.
    left: bool,
    /// The cell of a point.
    value: fn(&PointSummary) -> String,
}

/// A column titled `title` in `report.md` and `short` in the terminal.
const fn col(
    title: &'static str,
    short: Option<&'static str>,
    left: bool,
    value: fn(&PointSummary) -> String,
) -> Column {
    Column {
        title,
        short,
        left,
        value,
    }
}

/// The results table's columns, in order.
#[rustfmt::skip]
const RESULT_COLUMNS: [Column; 19] = [
    col("point", Some("point"), true, |p| p.name.clone()),
    col("offered/s", Some("offered/s"), false, offered),
    col("achieved/s", Some("achieved/s"), false, |p| si(p.achieved_rate)),
    col("flags", Some("flags"), true, flags),
    col("p50", Some("p50"), false, |p| pct(&p.latency, p.latency.p50)),
    col("p99", Some("p99"), false, |p| pct(&p.latency, p.latency.p99)),
    col("p99.9", Some("p99.9"), false, |p| pct(&p.latency, p.latency.p999)),
    col("p50 / floor", Some("/floor"), false, |p| ratio(p.latency_p50_over_floor)),
    col("commit lag mean", Some("lag mean"), false, |p| pct(&p.commit_lag, p.commit_lag.mean)),
    col("commit lag p99", Some("lag p99"), false, |p| pct(&p.commit_lag, p.commit_lag.p99)),
    col("AppendEntries / req", Some("AE/req"), false, |p| fixed(p.per_request.append_messages, 2)),
    col("messages / req", None, false, |p| fixed(p.per_request.raft_messages, 2)),
    col("batch mean", Some("batch"), false, |p| fixed(p.batch_size.mean, 1)),
    col("uncommitted mean", None, false, |p| if p.queue_depth.count == 0 { "-".into() } else { fixed(p.queue_depth.mean, 0) }),
    col("refused / s", Some("refused/s"), false, refused),
    col("CPU / req", Some("CPU/req"), false, |p| micros(p.per_request.cpu_seconds * 1e6)),
    col("harness CPU", Some("harness"), false, |p| p.harness_cpu.as_ref().map_or("-".into(), |c| format!("{:.1}%", c.harness_share * 100.0))),
    col("RSS MB start / end / peak", None, false, |p| p.memory.as_ref().map_or("-".into(), |m| format!("{:.0} / {:.0} / {:.0}", m.rss_start_mb, m.rss_end_mb, m.rss_peak_mb))),
    col("RSS growth / req", None, false, |p| p.memory.as_ref().map_or("-".into(), |m| format!("{:.1} B", m.growth_per_request_bytes))),
];

/// Requests refused as overloaded per second of the window.
fn refused(p: &PointSummary) -> String {
    if p.measured_seconds <= 0.0 {
        return "-".into();
    }
    si(p.overload_errors as f64 / p.measured_seconds)
}

/// The whole `report.md` text, linking the plots at `links` (relative to the report).
pub fn markdown(run: &RunSummary, links: &[String]) -> String {
    let mut md = String::new();
    let e = &run.environment;
    let _ = writeln!(md, "# raftbench: {}\n", run.scenario);
    if !run.description.trim().is_empty() {
        let _ = writeln!(md, "{}\n", run.description.trim());
    }

    let _ = writeln!(md, "## Environment\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let profile = if e.profile == "debug" {
        "debug (**latencies of a debug build are not meaningful**)".to_string()
    } else {
        e.profile.clone()
    };
    let rows: [(&str, String); 9] = [
        ("CPU", e.cpu.clone()),
        ("Cores", e.cores.to_string()),
        ("Kernel", e.kernel.clone()),
        ("rustc", e.rustc.clone()),
        ("Git revision", e.git_revision.clone()),
        ("Profile", profile),
        ("Started (UTC)", e.started.clone()),
        ("Host", e.host.clone()),
        ("Seed", run.seed.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(md, "| {k} | {} |", cell(&v));
    }
    md.push('\n');

    let _ = writeln!(md, "## Measurement rules\n");
    let _ = writeln!(
        md,
        "- Open-loop latency counts from each request's scheduled instant, not its actual send (no coordinated omission); closed-loop points count from the send and are labelled. Warm-up ({}) is excluded; the measured window is {} per point.",
        seconds_range(run.points.iter().map(|p| p.warmup_seconds)),
        seconds_range(run.points.iter().map(|p| p.measured_seconds)),
    );
    let _ = writeln!(
        md,
        "- SATURATED: achieved below 95% of offered; INVALID: the generator (or the link emulator) missed its schedule. Neither is a valid latency point; both stay in the tables, marked. Histograms keep 3 significant digits.\n"
    );

    let _ = writeln!(
        md,
        "## Baselines (the physical floor, measured in this run)\n"
    );
    if run.baselines.is_empty() {
        let _ = writeln!(md, "No baseline was measured.\n");
    } else {
        let _ = writeln!(
            md,
            "`-raw`: plain quinn / TCP ping-pong; without: through raftbench's own transports. \
             With a thread per endpoint a round trip wakes the other thread twice, which costs far \
             more on an idle VM than on a busy one: compare points with floors measured in the same state.\n"
        );
        let _ = writeln!(
            md,
            "| transport | threading | payload | RTT p50 | p99 | p99.9 | max | samples |\n|---|---|---:|---:|---:|---:|---:|---:|"
        );
        for b in &run.baselines {
            let _ = writeln!(
                md,
                "| {} | {} | {} B | {} | {} | {} | {} | {} |",
                cell(&b.transport),
                cell(&b.threading),
                b.payload_bytes,
                micros(b.rtt.p50),
                micros(b.rtt.p99),
                micros(b.rtt.p999),
                micros(b.rtt.max),
                b.rtt.count
            );
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Results\n");
    if run.points.is_empty() {
        let _ = writeln!(md, "No point was run.\n");
    } else {
        let header: Vec<&str> = RESULT_COLUMNS.iter().map(|c| c.title).collect();
        let rule: Vec<&str> = RESULT_COLUMNS
            .iter()
            .map(|c| if c.left { "---" } else { "---:" })
            .collect();
        let _ = writeln!(md, "| {} |\n|{}|", header.join(" | "), rule.join("|"));
        for p in &run.points {
            let cells: Vec<String> = RESULT_COLUMNS.iter().map(|c| cell(&(c.value)(p))).collect();
            let _ = writeln!(md, "| {} |", cells.join(" | "));
        }
        md.push('\n');
        let _ = writeln!(
            md,
            "Every number above, and more (phases, apply lag, schedule error, pipeline depth, bytes and CPU per request), is in `summary.json` and `summary.csv`; full distributions are in `hgrm/` (percentile distributions) and `hlog/` (interval logs, HdrHistogram 1.3, V2+DEFLATE).\n"
        );
    }

    durability(&mut md, run);
    md.push_str(&crate::harness::faults::report_section(run));

    if !links.is_empty() {
        let _ = writeln!(md, "## Plots\n");
        for link in links {
            let name = link.rsplit('/').next().unwrap_or(link);
            let alt = name.trim_end_matches(".svg").replace('_', " ");
            let _ = writeln!(md, "![{alt}]({link})\n");
            let caption = plot_caption(link);
            if !caption.is_empty() {
                let _ = writeln!(md, "*{caption}*\n");
            }
        }
    }

    let _ = writeln!(md, "## Points and their parameters\n");
    if !run.points.is_empty() {
        let _ = writeln!(
            md,
            "| point | series | parameters | window |\n|---|---|---|---|"
        );
        for p in &run.points {
            let params: Vec<String> = p
                .params
                .iter()
                .map(|(k, v)| format!("`{k} = {v}`"))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} s after {} s warm-up |",
                cell(&p.name),
                cell(&p.series),
                cell(&params.join(", ")),
                plain(p.measured_seconds),
                plain(p.warmup_seconds),
            );
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Scenario file\n");
    md.push_str(&fenced("toml", &run.scenario_text));
    md
}

/// The durability table, for runs whose points keep their logs in files: each point's
/// throughput against the sync floor measured just before it, and the leader's syncs.
fn durability(md: &mut String, run: &RunSummary) {
    let points: Vec<(&PointSummary, &crate::harness::summary::Storage)> = run
        .points
        .iter()
        .filter_map(|p| p.storage.as_ref().map(|s| (p, s)))
        .collect();
    if points.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Durability (logs in files)\n");
    let _ = writeln!(
        md,
        "The floor is a loop of write + sync of one record of the point's size per writer, one writer per node at once (the point's own concurrency), on the same file system, measured just before the point; the lone-writer loop is shown beside it, since a disk can treat one writer and several very differently. `x floor` is committed requests per second over one floor writer's syncs per second.\n"
    );
    let _ = writeln!(
        md,
        "| point | sync | order | commits/s | floor syncs/s per writer | x floor | floor p50 | floor p99 | lone writer syncs/s | lone p50 | leader syncs/s | entries/sync | leader sync p50 | p99 |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (p, s) in points {
        let lead = s.nodes.iter().find(|n| n.node == s.leader);
        let f = s.floor.as_ref();
        let solo = s.floor_solo.as_ref();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&p.name),
            cell(&s.sync),
            cell(&s.append_order),
            plain(p.achieved_rate.round()),
            f.map(|f| plain(f.syncs_per_s.round())).unwrap_or_default(),
            s.throughput_over_floor
                .map(|r| format!("{r:.1}"))
                .unwrap_or_default(),
            f.map(|f| micros(f.latency.p50)).unwrap_or_default(),
            f.map(|f| micros(f.latency.p99)).unwrap_or_default(),
            solo.map(|f| plain(f.syncs_per_s.round()))
                .unwrap_or_default(),
            solo.map(|f| micros(f.latency.p50)).unwrap_or_default(),
            lead.map(|n| plain((n.syncs as f64 / p.measured_seconds).round()))
                .unwrap_or_default(),
            lead.map(|n| format!("{:.1}", n.entries_per_sync))
                .unwrap_or_default(),
            lead.map(|n| micros(n.sync_latency.p50)).unwrap_or_default(),
            lead.map(|n| micros(n.sync_latency.p99)).unwrap_or_default(),
        );
    }
    md.push('\n');
}

/// A compact fixed-width table of the run's points for the terminal.
pub fn table(run: &RunSummary) -> String {
    let columns: Vec<&Column> = RESULT_COLUMNS
        .iter()
        .filter(|c| c.short.is_some())
        .collect();
    let header: Vec<String> = columns
        .iter()
        .map(|c| c.short.unwrap_or(c.title).to_string())
        .collect();
    let rows: Vec<Vec<String>> = run
        .points
        .iter()
        .map(|p| columns.iter().map(|c| (c.value)(p)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            // Names and flags read left to right; numbers line up on the right.
            if columns[i].left {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
            s.push_str("  ");
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} point(s)", run.scenario, run.points.len());
    for b in &run.baselines {
        let _ = writeln!(
            out,
            "floor: {} round trip ({}, {} B) p50 {}  p99 {}",
            b.transport,
            b.threading,
            b.payload_bytes,
            micros(b.rtt.p50),
            micros(b.rtt.p99)
        );
    }
    let _ = writeln!(out, "{}", line(&header));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outgrow_the_text() {
        assert_eq!(fenced("toml", "a = 1"), "```toml\na = 1\n```\n");
        assert!(fenced("", "x\n```\ny").starts_with("````\n"));
    }

    #[test]
    fn a_p50_reads_the_same_in_both_tables_and_the_plots() {
        let mut run = RunSummary::default();
        run.points.push(PointSummary {
            name: "p".into(),
            latency: Percentiles {
                count: 10,
                p50: 4500.0,
                p99: 1_228_900.0,
                ..Default::default()
            },
            ..Default::default()
        });
        let md = markdown(&run, &[]);
        let term = table(&run);
        for (v, text) in [(4500.0, "4.50 ms"), (1_228_900.0, "1.23 s")] {
            assert_eq!(micros(v), text);
            assert!(md.contains(&format!("| {text} |")), "{md}");
            assert!(term.contains(text), "{term}");
        }
        // The terminal table leaves out only the columns without a short title.
        let header = term.lines().nth(1).unwrap();
        let columns = header.split("  ").filter(|c| !c.trim().is_empty());
        assert_eq!(columns.count(), 15, "{header}");
        assert!(!header.contains("messages"));
    }

    #[test]
    fn table_aligns_columns() {
        let mut run = RunSummary {
            scenario: "s".into(),
            ..Default::default()
        };
        for name in ["a", "a-much-longer-name"] {
            run.points.push(PointSummary {
                name: name.into(),
                offered_rate: 200.0,
                achieved_rate: 199.0,
                ..Default::default()
            });
        }
        let t = table(&run);
        let lines: Vec<&str> = t.lines().skip(1).collect();
        assert_eq!(lines.len(), 3);
        let col = |l: &str| l.find("199").unwrap();
        assert_eq!(col(lines[1]), col(lines[2]));
    }
}
