//! `raftbench load` against real node processes on loopback: two load processes share
//! one schedule start, and their parts merge into one result; a load process that finds
//! no leader says so and exits with a failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftbench::harness::load_process::{merge_parts, start_at_after, LoadSpawn};
use raftbench::harness::scenario::{Arrival, Workload};
use raftbench::raft::{NodeId, Role};
use raftbench::remote::{Connector, RemoteClient};

mod support;
use support::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_raftbench");

struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
    children: Vec<Child>,
    client_addrs: HashMap<NodeId, SocketAddr>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(BIN)
            .args(["certs", "--out"])
            .arg(dir.path().join("certs"))
            .args(["--nodes", "3"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "raftbench certs failed");
        let mut toml = String::from(
            "storage = \"memory\"\n[raft]\nheartbeat_ms = 50\nelection_timeout_ms = 1500\n",
        );
        let mut client_addrs = HashMap::new();
        for id in 1..=3u64 {
            let raft: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let client: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            client_addrs.insert(id, client);
            toml.push_str(&format!(
                "[[nodes]]\nid = {id}\nraft_addr = \"{raft}\"\nclient_addr = \"{client}\"\n"
            ));
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, toml).unwrap();
        let mut children = Vec::new();
        for id in 1..=3u64 {
            let log = std::fs::File::create(dir.path().join(format!("node-{id}.log"))).unwrap();
            children.push(
                Command::new(BIN)
                    .args(["node", "--config"])
                    .arg(&config)
                    .args(["--id", &id.to_string()])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap(),
            );
        }
        Cluster {
            dir,
            config,
            children,
            client_addrs,
        }
    }

    fn logs(&self) -> String {
        (1..=3)
            .map(|id| {
                let p = self.dir.path().join(format!("node-{id}.log"));
                format!(
                    "--- node {id} ---\n{}\n",
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Waits (bounded) until a node says it leads.
    fn wait_for_leader(&self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let connector = Connector::quic_from_dir(
                &self.dir.path().join("certs"),
                "",
                "127.0.0.1:0".parse().unwrap(),
            )
            .unwrap();
            let mut client = RemoteClient::with_connector(self.client_addrs.clone(), connector);
            let start = Instant::now();
            'wait: loop {
                for id in 1..=3 {
                    if let Ok(s) = client.status(id).await {
                        if s.role == Role::Leader {
                            break 'wait;
                        }
                    }
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "no leader:\n{}",
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            client.close().await;
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn two_load_processes_merge_into_one_result() {
    let cluster = Cluster::start();
    cluster.wait_for_leader();
    let out = tempfile::tempdir().unwrap();
    let workload = Workload {
        rate: 200.0,
        arrival: Arrival::Poisson,
        keys: 100,
        ..Workload::default()
    };
    let mut spawn = LoadSpawn::new(
        &cluster.config,
        2,
        &workload,
        start_at_after(Duration::from_secs(3)),
        Duration::from_millis(500),
        Duration::from_secs(2),
        11,
        out.path(),
    );
    spawn.bin = BIN.into();
    let parts = spawn
        .run()
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert_eq!(parts.len(), 2);
    let merged = merge_parts(&parts).unwrap();

    let sum = |f: &dyn Fn(&raftbench::harness::load_process::LoadPartSummary) -> u64| {
        parts.iter().map(|p| f(&p.summary)).sum::<u64>()
    };
    assert_eq!(merged.generator.sent, sum(&|s| s.sent));
    assert_eq!(merged.generator.in_window, sum(&|s| s.in_window));
    assert_eq!(
        merged.replies.latency.total.len(),
        parts.iter().map(|p| p.latency.total.len()).sum::<u64>()
    );
    assert_eq!(
        merged.generator.schedule_error.total.len(),
        parts
            .iter()
            .map(|p| p.schedule_error.total.len())
            .sum::<u64>()
    );
    for p in &parts {
        let s = &p.summary;
        assert!(s.sent > 0, "{s:?}");
        assert_eq!(s.rate, 100.0, "each process offers half");
        assert_eq!(
            (s.answered, s.errors, s.unanswered, s.refused),
            (s.sent, 0, 0, 0),
            "every request answered ok: {s:?}"
        );
        assert_eq!(s.ok, s.in_window, "{s:?}");
        assert_eq!(p.latency.total.len(), s.ok);
        // Every node's clock offset was estimated (four-timestamp exchange), so the
        // answers' phases are attributed; the few whose stamps the estimate's error puts
        // out of order are counted, never invented.
        assert_eq!(s.offsets_known.len(), 3, "{s:?}");
        assert!(s.phase_samples_missing < s.ok / 2, "{s:?}");
    }
    assert_ne!(parts[0].summary.seed, parts[1].summary.seed);
    assert_eq!(merged.replies.ok, sum(&|s| s.ok));
    assert_eq!(merged.replies.latency.total.len(), merged.replies.ok);
    assert_eq!(merged.unanswered, 0);
    assert_eq!(merged.generators.len(), 2);
    // The intervals line up: no more intervals than the window holds.
    assert!(merged.replies.latency.intervals().len() <= 2);
}

#[test]
fn a_load_process_that_reaches_no_leader_fails_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    let mut toml = String::from("client_transport = \"tcp_insecure\"\n");
    for id in 1..=3 {
        toml.push_str(&format!(
            "[[nodes]]\nid = {id}\nraft_addr = \"127.0.0.1:{}\"\nclient_addr = \"127.0.0.1:{}\"\n",
            free_port(),
            free_port()
        ));
    }
    std::fs::write(&config, toml).unwrap();
    let out = Command::new(BIN)
        .args(["load", "--config"])
        .arg(&config)
        .args([
            "--rate",
            "100",
            "--measure-s",
            "1",
            "--warmup-s",
            "0",
            "--deadline-s",
            "0.5",
            "--out",
        ])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no leader of"), "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
}
