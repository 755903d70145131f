//! Real node processes on loopback: kill the leader with SIGKILL, keep writing, read back
//! every acknowledged key, restart the killed node and watch it catch up.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftbench::raft::{NodeId, Role};
use raftbench::remote::RemoteClient;

const BIN: &str = env!("CARGO_BIN_EXE_raftbench");

/// A port free for both UDP (QUIC) and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
    children: HashMap<NodeId, Child>,
    client_addrs: HashMap<NodeId, SocketAddr>,
}

impl Cluster {
    fn new(transport: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(BIN)
            .args(["certs", "--out"])
            .arg(dir.path().join("certs"))
            .args(["--nodes", "3"])
            .status()
            .unwrap();
        assert!(status.success(), "raftbench certs failed");
        let mut toml = format!(
            "transport = \"{transport}\"\nstorage = \"file\"\n[raft]\nheartbeat_ms = 20\nelection_timeout_ms = 300\ncompact_threshold = 0\n"
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
        let mut c = Cluster {
            dir,
            config,
            children: HashMap::new(),
            client_addrs,
        };
        for id in 1..=3 {
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: NodeId) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node-{id}.log")))
            .unwrap();
        let child = Command::new(BIN)
            .args(["node", "--config"])
            .arg(&self.config)
            .args(["--id", &id.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.insert(id, child);
    }

    fn kill(&mut self, id: NodeId) {
        let mut child = self.children.remove(&id).unwrap();
        child.kill().unwrap(); // SIGKILL on Unix: no chance to flush or say goodbye
        child.wait().unwrap();
    }

    fn client(&self) -> RemoteClient {
        RemoteClient::new(self.client_addrs.clone())
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for id in 1..=3 {
            let p: &Path = &self.dir.path().join(format!("node-{id}.log"));
            s.push_str(&format!(
                "--- node {id} ---\n{}\n",
                std::fs::read_to_string(p).unwrap_or_default()
            ));
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut c) in self.children.drain() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn write_keys(c: &Cluster, range: std::ops::Range<usize>) -> Vec<usize> {
    let mut tasks = Vec::new();
    let writers = 8;
    for w in 0..writers {
        let mut client = c.client();
        client.deadline = Duration::from_secs(20);
        let keys: Vec<usize> = range.clone().skip(w).step_by(writers).collect();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for k in keys {
                client
                    .put(format!("k{k}"), format!("v{k}"))
                    .await
                    .unwrap_or_else(|e| panic!("put k{k}: {e}"));
                acked.push(k);
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked
}

async fn leader(c: &Cluster) -> NodeId {
    let mut client = c.client();
    let start = Instant::now();
    loop {
        for id in c.children.keys().copied().collect::<Vec<_>>() {
            if let Ok(s) = client.status(id).await {
                if s.role == Role::Leader {
                    return id;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no leader:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kill_leader_and_recover(transport: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut c = Cluster::new(transport);
    rt.block_on(async {
        let mut acked = write_keys(&c, 0..1000).await;
        assert_eq!(acked.len(), 1000);
        let old = leader(&c).await;
        let old_term = c.client().status(old).await.unwrap().term;
        c.kill(old);

        let new = leader(&c).await;
        assert_ne!(new, old, "a surviving node leads");
        let mut client = c.client();
        let st = client.status(new).await.unwrap();
        assert!(st.term > old_term, "the new leader has a later term");

        acked.extend(write_keys(&c, 1000..2000).await);
        assert_eq!(acked.len(), 2000);

        // Every acknowledged key reads back, through the log, from the new leader.
        client.prefer(new);
        for k in &acked {
            let v = client.get(format!("k{k}")).await.unwrap();
            assert_eq!(v.as_deref(), Some(format!("v{k}").as_bytes()), "k{k}");
        }

        // The killed node comes back from its files and catches up.
        c.start(old);
        let target = client.status(new).await.unwrap().commit_index;
        let start = Instant::now();
        loop {
            if let Ok(s) = client.status(old).await {
                // Pre-vote keeps the restarted node, which times out before it hears from
                // anyone, from forcing an election: it rejoins under the same leader.
                if s.applied_index >= target && s.leader.is_some() {
                    assert_eq!(
                        s.leader,
                        Some(new),
                        "the restarted node follows the new leader"
                    );
                    assert_eq!(s.term, st.term, "and did not disturb its term");
                    break;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node {old} did not catch up:\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn quic_processes_survive_a_leader_sigkill() {
    kill_leader_and_recover("quic");
}

#[test]
fn tcp_processes_survive_a_leader_sigkill() {
    kill_leader_and_recover("tcp");
}

#[test]
fn cli_client_puts_and_gets() {
    let c = Cluster::new("quic");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["client", "--config"])
            .arg(&c.config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "client {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            c.logs()
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&["put", "greeting", "hello"]).trim(), "ok");
    assert_eq!(run(&["get", "greeting"]).trim(), "hello");
    assert_eq!(run(&["get", "nothing"]).trim(), "(none)");
    let status = run(&["status"]);
    assert_eq!(status.matches("Leader").count(), 1, "{status}");
}

#[test]
fn a_second_node_process_on_a_data_directory_refuses_to_start() {
    let c = Cluster::new("quic");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        leader(&c).await;
        assert_eq!(write_keys(&c, 0..8).await.len(), 8);
    });
    // The same cluster with other ports for node 1: same data directory (`data/node-1`).
    let original = std::fs::read_to_string(&c.config).unwrap();
    let mut other = String::new();
    let mut in_node_1 = false;
    for line in original.lines() {
        if line.starts_with("id = ") {
            in_node_1 = line == "id = 1";
        }
        if in_node_1 && line.starts_with("raft_addr") {
            other.push_str(&format!("raft_addr = \"127.0.0.1:{}\"\n", free_port()));
        } else if in_node_1 && line.starts_with("client_addr") {
            other.push_str(&format!("client_addr = \"127.0.0.1:{}\"\n", free_port()));
        } else {
            other.push_str(line);
            other.push('\n');
        }
    }
    assert_ne!(other, original);
    let other_config = c.dir.path().join("other.toml");
    std::fs::write(&other_config, other).unwrap();
    let mut second = Command::new(BIN)
        .args(["node", "--config"])
        .arg(&other_config)
        .args(["--id", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            panic!("the second node 1 kept running on node 1's directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the second node 1 must fail: {stderr}");
    let data = c.dir.path().join("data").join("node-1");
    assert!(
        stderr.contains(&data.display().to_string()) && stderr.contains("LOCK"),
        "the error names the directory and the lock: {stderr}"
    );
    // The real node 1 is unaffected and the cluster keeps committing.
    rt.block_on(async { assert_eq!(write_keys(&c, 8..16).await.len(), 8) });
}
