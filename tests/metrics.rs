//! Node processes serve Prometheus text at `metrics_addr`/metrics: the names and types are
//! there and the counters move with writes. And the cluster-file mistakes a node refuses
//! at start-up (a taken metrics port, an unusable data_dir, a shared address) name what
//! is wrong; memory storage warns.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_raftbench");

/// One scrape: `# TYPE` per metric family, and every sample's value by its full name
/// with labels (`raftbench_role{role="leader"}`).
#[derive(Debug, Default)]
struct Scrape {
    types: HashMap<String, String>,
    samples: HashMap<String, f64>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                s.types.insert(name.to_string(), kind.to_string());
            } else if line.starts_with('#') || line.is_empty() {
                continue;
            } else {
                let (name, value) = line.rsplit_once(' ').expect("sample value");
                let v: f64 = value
                    .parse()
                    .unwrap_or_else(|_| panic!("not a number in {line:?}"));
                s.samples.insert(name.to_string(), v);
            }
        }
        s
    }

    fn get(&self, name: &str) -> f64 {
        *self
            .samples
            .get(name)
            .unwrap_or_else(|| panic!("no sample {name}"))
    }

    fn kind(&self, family: &str) -> &str {
        self.types
            .get(family)
            .unwrap_or_else(|| panic!("no TYPE for {family}"))
    }
}

/// GET `path` over HTTP/1.1; (status line, content type, body).
fn http_get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.lines().next().unwrap_or("").to_string();
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, ctype, body.to_string())
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, ctype, body) = http_get(addr, "/metrics");
    assert!(status.contains("200"), "{status}\n{body}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    Scrape::parse(&body)
}

struct Nodes {
    dir: tempfile::TempDir,
    config: PathBuf,
    children: Vec<Child>,
}

impl Nodes {
    fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{id}.log"))).unwrap_or_default()
    }

    fn start(&mut self, id: u64) {
        let log = std::fs::File::create(self.dir.path().join(format!("node-{id}.log"))).unwrap();
        let child = Command::new(BIN)
            .args(["node", "--config"])
            .arg(&self.config)
            .args(["--id", &id.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A cluster file for `n` nodes on free loopback ports (with metrics), and its certs.
fn cluster(n: u64, storage: &str) -> (Nodes, Vec<SocketAddr>) {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new(BIN)
        .args(["certs", "--out"])
        .arg(dir.path().join("certs"))
        .args(["--nodes", &n.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "raftbench certs failed");
    let mut toml =
        format!("storage = \"{storage}\"\n[raft]\nheartbeat_ms = 50\nelection_timeout_ms = 1500\n");
    let mut metrics = Vec::new();
    for id in 1..=n {
        let m: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        metrics.push(m);
        toml.push_str(&format!(
            "[[nodes]]\nid = {id}\nraft_addr = \"127.0.0.1:{}\"\nclient_addr = \"127.0.0.1:{}\"\nmetrics_addr = \"{m}\"\n",
            free_port(),
            free_port()
        ));
    }
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, toml).unwrap();
    (
        Nodes {
            dir,
            config,
            children: Vec::new(),
        },
        metrics,
    )
}

fn client(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["client", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// Scrapes `addr` until `cond` holds, for at most 30 s; the last scrape either way.
fn scrape_until(addr: SocketAddr, cond: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = scrape(addr);
        if cond(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (at most 30 s) until the metrics endpoint answers.
fn wait_serving(addr: SocketAddr, nodes: &Nodes, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(
            Instant::now() < deadline,
            "node {id} never served metrics:\n{}",
            nodes.log(id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_node_processes_serve_their_figures_and_counters_move_with_writes() {
    let (mut nodes, metrics) = cluster(3, "file");
    for id in 1..=3 {
        nodes.start(id);
    }
    for (i, &m) in metrics.iter().enumerate() {
        wait_serving(m, &nodes, i as u64 + 1);
    }
    let before: Vec<Scrape> = metrics.iter().map(|&m| scrape(m)).collect();
    let families = [
        ("raftbench_role", "gauge"),
        ("raftbench_term", "gauge"),
        ("raftbench_commit_index", "gauge"),
        ("raftbench_applied_index", "gauge"),
        ("raftbench_log_last_index", "gauge"),
        ("raftbench_log_bytes", "gauge"),
        ("raftbench_peer_messages_sent_total", "counter"),
        ("raftbench_peer_bytes_sent_total", "counter"),
        ("raftbench_peer_messages_received_total", "counter"),
        ("raftbench_peer_bytes_received_total", "counter"),
        ("raftbench_append_inflight", "gauge"),
        ("raftbench_append_batch_entries", "histogram"),
        ("raftbench_follower_commit_lag_seconds", "histogram"),
        ("raftbench_leader_commit_seconds", "histogram"),
        ("raftbench_apply_lag_seconds", "histogram"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
    ];
    for (name, kind) in families {
        assert_eq!(before[0].kind(name), kind, "{name}");
    }
    assert!(before[0].get("process_resident_memory_bytes") > 1e6);
    // Per-peer series name the other two nodes only.
    assert!(before[0]
        .samples
        .contains_key("raftbench_peer_messages_sent_total{peer=\"2\"}"));
    assert!(!before[0]
        .samples
        .contains_key("raftbench_peer_messages_sent_total{peer=\"1\"}"));

    const WRITES: usize = 20;
    for i in 0..WRITES {
        let out = client(&nodes.config, &["put", &format!("k{i}"), &format!("v{i}")]);
        assert!(
            out.status.success(),
            "put k{i}: {}\n{}{}{}",
            String::from_utf8_lossy(&out.stderr),
            nodes.log(1),
            nodes.log(2),
            nodes.log(3)
        );
    }
    let applied_all = |s: &Scrape| s.get("raftbench_applied_index") >= WRITES as f64;
    let after: Vec<Scrape> = metrics
        .iter()
        .map(|&m| scrape_until(m, applied_all))
        .collect();
    let leaders: Vec<usize> = (0..3)
        .filter(|&i| after[i].get("raftbench_role{role=\"leader\"}") == 1.0)
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {leaders:?}");
    let l = leaders[0];
    let leader_id = l as u64 + 1;
    for (i, s) in after.iter().enumerate() {
        let id = i as u64 + 1;
        assert!(applied_all(s), "node {id} applied {WRITES} writes");
        assert!(s.get("raftbench_commit_index") >= WRITES as f64);
        assert_eq!(s.get("raftbench_leader_id"), leader_id as f64);
        assert!(
            s.get("raftbench_log_bytes") > 0.0,
            "node {id} has log files"
        );
        assert!(
            s.get("raftbench_apply_lag_seconds_count") >= WRITES as f64,
            "node {id} timed every applied entry"
        );
        // Followers talk only to the leader; the leader to both.
        let partners: Vec<u64> = if id == leader_id {
            (1..=3).filter(|&p| p != id).collect()
        } else {
            vec![leader_id]
        };
        for p in partners {
            for dir in ["sent", "received"] {
                let key = |s: &Scrape, what| {
                    s.get(&format!(
                        "raftbench_peer_{what}_{dir}_total{{peer=\"{p}\"}}"
                    ))
                };
                assert!(
                    key(s, "messages") > key(&before[i], "messages"),
                    "node {id}: messages {dir} with {p} moved"
                );
                assert!(key(s, "bytes") > key(&before[i], "bytes"));
            }
        }
        if i != l {
            assert!(
                s.get("raftbench_follower_commit_lag_seconds_count") >= WRITES as f64,
                "follower {id} timed every entry it learned committed"
            );
            assert_eq!(s.get("raftbench_role{role=\"follower\"}"), 1.0);
        }
    }
    let ls = &after[l];
    let batches = ls.get("raftbench_append_batch_entries_count");
    assert!(batches >= WRITES as f64, "batches: {batches}");
    assert!(ls.get("raftbench_append_batch_entries_sum") >= 2.0 * WRITES as f64);
    assert!(ls.get("raftbench_leader_commit_seconds_count") >= WRITES as f64);
    assert_eq!(
        ls.get("raftbench_leader_commit_seconds_bucket{le=\"+Inf\"}"),
        ls.get("raftbench_leader_commit_seconds_count")
    );
    assert!(ls.get("raftbench_append_entries_sent_total{kind=\"entries\"}") >= WRITES as f64);

    // Anything but /metrics is refused, and the node keeps serving.
    let (status, _, _) = http_get(metrics[l], "/");
    assert!(status.contains("404"), "{status}");
    scrape(metrics[l]);
}

/// Runs `raftbench node` on a file that must be refused; its stderr.
fn refused_start(config: &Path, id: u64) -> String {
    let mut child = Command::new(BIN)
        .args(["node", "--config"])
        .arg(config)
        .args(["--id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node started instead of refusing {}", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "{err}");
    err
}

#[test]
fn a_taken_metrics_port_is_named_with_its_node() {
    let (nodes, metrics) = cluster(1, "memory");
    let _taken = std::net::TcpListener::bind(metrics[0]).unwrap();
    let err = refused_start(&nodes.config, 1);
    assert!(
        err.contains(&format!(
            "node 1: cannot serve metrics on metrics_addr {}",
            metrics[0]
        )),
        "{err}"
    );
}

#[test]
fn an_unusable_data_dir_is_named() {
    let (nodes, _) = cluster(1, "file");
    // data_dir is a regular file: node-1 cannot be made under it.
    let blocker = nodes.dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let text = std::fs::read_to_string(&nodes.config).unwrap();
    std::fs::write(&nodes.config, format!("data_dir = \"not-a-dir\"\n{text}")).unwrap();
    let err = refused_start(&nodes.config, 1);
    let path = blocker.join("node-1");
    assert!(
        err.contains(&format!(
            "node 1: cannot open its log store in {}",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn a_shared_raft_addr_is_refused_naming_both_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        "[[nodes]]\nid = 1\nraft_addr = \"127.0.0.1:7101\"\nclient_addr = \"127.0.0.1:7201\"\n\
         [[nodes]]\nid = 3\nraft_addr = \"127.0.0.1:7101\"\nclient_addr = \"127.0.0.1:7203\"\n",
    )
    .unwrap();
    let err = refused_start(&config, 1);
    assert!(err.contains("cluster.toml"), "{err}");
    assert!(
        err.contains(
            "127.0.0.1:7101 is given to both node 1 (`raft_addr`) and node 3 (`raft_addr`)"
        ),
        "{err}"
    );
}

#[test]
fn memory_storage_warns_and_a_single_node_serves_metrics() {
    let (mut nodes, metrics) = cluster(1, "memory");
    nodes.start(1);
    wait_serving(metrics[0], &nodes, 1);
    let s = scrape_until(metrics[0], |s| {
        s.get("raftbench_role{role=\"leader\"}") == 1.0
    });
    assert_eq!(s.get("raftbench_role{role=\"leader\"}"), 1.0);
    assert!(
        !s.samples.contains_key("raftbench_log_bytes"),
        "no log files in memory"
    );
    let log = nodes.log(1);
    assert!(log.contains("nothing survives a restart"), "{log}");
}
