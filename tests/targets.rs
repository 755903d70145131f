//! The harness against node processes (`cluster.target = "processes"`): a point runs with
//! the same outputs as in process (latency, phases, follower lags, counters), a node that
//! dies by itself fails the point by name instead of hanging it, a killed leader loses no
//! acknowledged write, and what node processes cannot do is refused with the key.
//!
//! Every cluster here is three `raftbench node` processes on loopback, started and stopped
//! by the harness; every load is bounded by the point's own window.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raftbench::harness::point::run_point_in;
use raftbench::harness::scenario::{Point, Scenario};
use raftbench::harness::summary::PointSummary;

fn points(text: &str) -> Result<Vec<Point>, String> {
    Scenario::parse(Path::new("tests/targets.rs"), text)
        .map(|s| s.points)
        .map_err(|e| e.to_string())
}

/// The node binary for the harness to start (cargo builds it for integration tests).
fn use_our_binary() {
    std::env::set_var("RAFTBENCH_BIN", env!("CARGO_BIN_EXE_raftbench"));
}

/// Node-process clusters one at a time: each takes three cores' worth of threads.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A 3-node point against node processes with short timeouts, `extra` appended.
fn scenario(rate: f64, measure: f64, extra: &str) -> String {
    format!(
        r#"
name = "targets-test"
baseline = false
[base.cluster]
nodes = 3
transport = "quic"
target = "processes"
[base.raft]
heartbeat_ms = 30.0
election_timeout_ms = 300.0
[base.workload]
rate = {rate}
arrival = "poisson"
[base.timing]
warmup_s = 0.5
measure_s = {measure}
{extra}
"#
    )
}

fn out_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("raftbench-targets-{name}-"))
        .tempdir()
        .unwrap()
}

fn run(p: &Point, out: &Path) -> PointSummary {
    let (s, _) =
        run_point_in(p, None, &|_| {}, Some(&out.join("data"))).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{}: ok {} errors {} unanswered {} p50 {} us p99 {} us missing phases {} target {:?}",
        s.name,
        s.ok,
        s.errors,
        s.unanswered,
        s.latency.p50,
        s.latency.p99,
        s.phase_samples_missing,
        s.target
    );
    s
}

#[test]
fn what_node_processes_cannot_do_is_refused_with_the_key() {
    let cases = [
        (
            "[base.cluster]\ntarget = \"processes\"\ntransport = \"mem\"\n",
            "cluster.transport",
        ),
        (
            "[base.cluster]\ntarget = \"processes\"\nleader = 1\n",
            "cluster.leader",
        ),
        ("[base.cluster]\ntarget = \"remote\"\n", "cluster.remote"),
        (
            "[base.cluster]\nnetns = \"rb\"\n",
            "cluster.netns",
        ),
        (
            "[base.workload]\nload_processes = 2\n",
            "workload.load_processes",
        ),
        (
            "[base.cluster]\ntarget = \"processes\"\n[[base.faults]]\nkind = \"partition_leader\"\nat_s = 1.0\nduration_s = 1.0\n",
            "faults[0]",
        ),
        (
            "[base.cluster]\ntarget = \"processes\"\n[[base.faults]]\nkind = \"kill_leader\"\nat_s = 1.0\nrestart_after_s = 1.0\n",
            "faults[0]",
        ),
        (
            "[base.cluster]\ntarget = \"remote\"\nremote = \"cluster.toml\"\n[[base.faults]]\nkind = \"stop_leader\"\nat_s = 1.0\nduration_s = 1.0\n",
            "faults",
        ),
    ];
    for (extra, key) in cases {
        let text = format!("name = \"t\"\n{extra}\n[[series]]\nname = \"s\"\n");
        let err = points(&text).expect_err(extra);
        assert!(err.contains(key), "{extra}: expected {key} in {err}");
    }
    // A remote cluster file is taken relative to the scenario file.
    let ps = points(
        "name = \"t\"\n[base.cluster]\ntarget = \"remote\"\nremote = \"c.toml\"\n[[series]]\nname = \"s\"\n",
    )
    .unwrap();
    assert_eq!(
        ps[0].config.cluster.remote.as_deref(),
        Some(Path::new("tests/c.toml"))
    );
}

#[test]
fn a_point_against_node_processes_has_the_same_outputs_as_in_process() {
    let _one = one_at_a_time();
    use_our_binary();
    let out = out_dir("same");
    let ps = points(&format!(
        "{}\n[[series]]\nname = \"p\"\n",
        scenario(300.0, 2.0, "")
    ))
    .unwrap();
    let s = run(&ps[0], out.path());
    let t = s
        .target
        .as_ref()
        .expect("a processes point says where it ran");
    assert_eq!(t.kind, "processes");
    assert_eq!(t.nodes.len(), 3);
    assert!(t.nodes.iter().all(|n| n.pid.is_some()), "{t:?}");
    // Each node's memory, from its own status, at the window's start and end.
    assert!(
        t.nodes
            .iter()
            .all(|n| n.rss_start_mb.is_some_and(|m| m > 1.0)
                && n.rss_end_mb.is_some_and(|m| m > 1.0)),
        "{t:?}"
    );
    assert!(t.failures.is_empty(), "{:?}", t.failures);
    assert!(!s.failed());
    assert!(s.ok > 300, "about 600 answers expected, got {}", s.ok);
    assert_eq!(s.errors, 0);
    assert_eq!(s.unanswered, 0);
    // Every answer's phases are attributed: the leader's stamps moved onto the
    // harness's clock.
    assert_eq!(s.phase_samples_missing, 0);
    // The nodes' own recordings give each follower's commit lag.
    assert_eq!(s.followers.len(), 2, "{:?}", s.followers);
    // Each node process keeps its log in the results.
    let point_dir = out.path().join("nodes").join("p");
    for id in 1..=3 {
        let log = point_dir.join(format!("node-{id}.log"));
        assert!(log.exists(), "{} missing", log.display());
    }
    assert!(point_dir.join("cluster.toml").exists());
}

/// Pids of processes whose command line names `config` and `--id id`.
fn node_pids(config: &Path, id: u64) -> Vec<i32> {
    let want = config.as_os_str().to_string_lossy().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let has = |a: &str, b: &str| args.windows(2).any(|w| w[0] == a && w[1] == b);
        if has("--config", &want)
            && has("--id", &id.to_string())
            && args.iter().any(|a| a == "node")
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_node_that_dies_mid_point_fails_the_point_by_name() {
    let _one = one_at_a_time();
    use_our_binary();
    let out = out_dir("dies");
    let ps = points(&format!(
        "{}\n[[series]]\nname = \"p\"\n",
        scenario(200.0, 3.0, "")
    ))
    .unwrap();
    let config: PathBuf = out.path().join("nodes").join("p").join("cluster.toml");
    // Someone else kills node 3 a second into the point.
    let killer = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Some(&pid) = node_pids(&config, 3).first() {
                std::thread::sleep(Duration::from_millis(1500));
                // SAFETY: kill(2) of a pid we just found running our node's command line.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    let (s, _) = run_point_in(&ps[0], None, &|_| {}, Some(&out.path().join("data")))
        .expect("the point ends and reports the death");
    assert!(killer.join().unwrap(), "node 3 never started");
    let t = s.target.as_ref().unwrap();
    assert!(s.failed(), "{t:?}");
    assert!(s.invalid());
    assert!(
        t.failures.iter().any(|f| f.contains("node 3")),
        "{:?}",
        t.failures
    );
}

#[test]
fn a_killed_leader_process_loses_no_acknowledged_write() {
    let _one = one_at_a_time();
    use_our_binary();
    let out = out_dir("kill");
    let ps = points(&format!(
        "{}\n[[series]]\nname = \"p\"\n",
        scenario(
            400.0,
            3.0,
            r#"
[base.cluster.storage]
kind = "file"
sync = "none"
floor_s = 0.0
[[base.faults]]
kind = "kill_leader"
at_s = 1.0
restart_after_s = 0.5
"#
        )
    ))
    .unwrap();
    let s = run(&ps[0], out.path());
    let c = s.correctness.as_ref().expect("a faulted point reads back");
    assert!(c.acknowledged_writes > 300, "{c:?}");
    assert_eq!(c.acknowledged_lost, 0, "{c:?}");
    assert_eq!(c.unverified, 0, "{c:?}");
    assert_eq!(s.faults.len(), 1);
    // A new leader was elected: clients saw a gap of at least an election timeout's order.
    assert!(s.faults[0].unavailability_ms.is_some(), "{:?}", s.faults[0]);
    assert!(
        !s.failed(),
        "a killed node is not a failure: {:?}",
        s.target
    );
}

/// Why this machine cannot make network namespaces, if it cannot.
fn no_namespaces() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: creating network namespaces needs root".into());
    }
    match std::process::Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`ip` (iproute2) is not installed".into()),
    }
}

#[test]
fn a_point_runs_across_network_namespaces_and_removes_them() {
    if let Some(why) = no_namespaces() {
        eprintln!("skipped: {why}");
        return;
    }
    let _one = one_at_a_time();
    use_our_binary();
    let out = out_dir("netns");
    let prefix = "rbtgt";
    let ps = points(&format!(
        "{}\n[[series]]\nname = \"p\"\nset = {{ \"cluster.netns\" = \"{prefix}\" }}\n",
        scenario(200.0, 2.0, "")
    ))
    .unwrap();
    let s = run(&ps[0], out.path());
    let t = s.target.as_ref().unwrap();
    assert_eq!(t.netns.as_deref(), Some(prefix));
    // Each node on a host of its own: its namespace, its address on the bridge.
    for (i, n) in t.nodes.iter().enumerate() {
        assert_eq!(n.host, format!("{prefix}-n{}", i + 1));
        assert!(n.client_addr.starts_with("10.213.0."), "{n:?}");
    }
    assert!(s.ok > 200, "{}", s.ok);
    assert_eq!(s.errors + s.unanswered, 0);
    assert_eq!(s.phase_samples_missing, 0);
    assert_eq!(s.followers.len(), 2);
    // The namespaces the point made are gone with it.
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains(prefix), "left behind: {list}");
}

#[test]
fn load_from_two_load_processes_merges_into_one_point() {
    let _one = one_at_a_time();
    use_our_binary();
    let out = out_dir("loadprocs");
    let ps = points(&format!(
        "{}\n[[series]]\nname = \"p\"\nset = {{ \"workload.load_processes\" = 2 }}\n",
        scenario(1000.0, 2.0, "")
    ))
    .unwrap();
    let (s, h) = run_point_in(&ps[0], None, &|_| {}, Some(&out.path().join("data")))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "ok {} errors {} unanswered {} missing {} generators {:?}",
        s.ok, s.errors, s.unanswered, s.phase_samples_missing, s.load_processes
    );
    assert_eq!(s.load_processes.len(), 2, "{:?}", s.load_processes);
    // Each offered half the rate, with a seed of its own.
    assert!(s.load_processes.iter().all(|g| g.rate == 500.0));
    assert_ne!(s.load_processes[0].seed, s.load_processes[1].seed);
    let sent: u64 = s.load_processes.iter().map(|g| g.sent).sum();
    assert!(sent > 1500, "{sent}");
    assert_eq!(s.errors + s.unanswered, 0);
    assert!(s.ok > 1500, "{}", s.ok);
    // The merged latency histogram holds exactly one sample per successful answer.
    assert_eq!(h["latency"].total.len(), s.ok);
    assert_eq!(s.followers.len(), 2);
}
