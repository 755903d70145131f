//! Real node processes on loopback: kill the leader with SIGKILL while writes are in
//! flight, read back every acknowledged key, restart the killed node from its files and
//! watch it catch up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftbench::raft::{NodeId, Role};
use raftbench::remote::{Connector, RemoteClient};

mod support;
use support::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_raftbench");

/// One three-process cluster at a time: three tests at once would put nine node
/// processes (and their clients) on a 2-core machine, where a heartbeat can wait longer
/// than an election timeout. Poisoning is ignored: a failed test must not fail the next.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
    children: HashMap<NodeId, Child>,
    client_addrs: HashMap<NodeId, SocketAddr>,
}

impl Cluster {
    fn new(transport: &str) -> Cluster {
        Cluster::with_raft(transport, "compact_threshold = 0\n")
    }

    /// A cluster whose `[raft]` table also holds `raft` (one `key = value` per line).
    fn with_raft(transport: &str, raft: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(BIN)
            .args(["certs", "--out"])
            .arg(dir.path().join("certs"))
            .args(["--nodes", "3"])
            .status()
            .unwrap();
        assert!(status.success(), "raftbench certs failed");
        let mut toml = format!(
            "transport = \"{transport}\"\nstorage = \"file\"\n[raft]\nheartbeat_ms = 50\nelection_timeout_ms = 1500\n{raft}"
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

    /// A QUIC connector with the cluster's client certificate (call within a runtime).
    fn connector(&self) -> Connector {
        Connector::quic_from_dir(
            &self.dir.path().join("certs"),
            "",
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap()
    }

    fn client(&self) -> RemoteClient {
        RemoteClient::with_connector(self.client_addrs.clone(), self.connector())
    }

    fn log(&self, id: NodeId) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{id}.log"))).unwrap_or_default()
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

/// What a batch of writes came to: the keys acknowledged, and the puts that failed
/// (key, error) after the client's own retries.
#[derive(Default)]
struct Writes {
    acked: Vec<usize>,
    failed: Vec<(usize, String)>,
}

/// Puts `k{i}` = `v{i}` for every `i` in `range` from 8 concurrent clients; `progress`
/// counts acknowledgements as they come.
async fn write_keys(
    addrs: HashMap<NodeId, SocketAddr>,
    connector: Connector,
    range: std::ops::Range<usize>,
    progress: Arc<AtomicUsize>,
) -> Writes {
    let mut tasks = Vec::new();
    let writers = 8;
    for w in 0..writers {
        let mut client = RemoteClient::with_connector(addrs.clone(), connector.clone());
        client.deadline = Duration::from_secs(20);
        let keys: Vec<usize> = range.clone().skip(w).step_by(writers).collect();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Writes::default();
            for k in keys {
                match client.put(format!("k{k}"), format!("v{k}")).await {
                    Ok(()) => {
                        out.acked.push(k);
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => out.failed.push((k, e.to_string())),
                }
            }
            out
        }));
    }
    let mut all = Writes::default();
    for t in tasks {
        let w = t.await.unwrap();
        all.acked.extend(w.acked);
        all.failed.extend(w.failed);
    }
    all
}

/// The node's last log index as it read it from its files at its latest start (from the
/// "log store opened" line of its log).
fn last_index_from_files(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("log store opened"))?;
    let rest = &line[line.find("last_index=")? + "last_index=".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
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
    let _one = one_cluster_at_a_time();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut c = Cluster::new(transport);
    rt.block_on(async {
        let none = Arc::new(AtomicUsize::new(0));
        let first = write_keys(c.client_addrs.clone(), c.connector(), 0..1000, none).await;
        assert!(
            first.failed.is_empty(),
            "a healthy cluster acknowledges every write; failed: {:?}\n{}",
            &first.failed[..first.failed.len().min(5)],
            c.logs()
        );
        let old = leader(&c).await;
        let before = c.client().status(old).await.unwrap();
        assert!(
            before.commit_index > 1000,
            "1,000 acknowledged puts are 1,000 committed entries: {before:?}"
        );

        // Writes are in flight when the leader dies: clients retry through the change.
        let progress = Arc::new(AtomicUsize::new(0));
        let second = tokio::spawn(write_keys(
            c.client_addrs.clone(),
            c.connector(),
            1000..2000,
            progress.clone(),
        ));
        let start = Instant::now();
        while progress.load(Ordering::Relaxed) < 100 {
            assert!(start.elapsed() < Duration::from_secs(20), "no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // What the leader holds now, all of it on disk, must come back from its files.
        let on_disk = c.client().status(old).await.unwrap().last_index;
        c.kill(old);

        let new = leader(&c).await;
        assert_ne!(new, old, "a surviving node leads");
        let mut client = c.client();
        let st = client.status(new).await.unwrap();
        assert!(st.term > before.term, "the new leader has a later term");

        let second = second.await.unwrap();
        assert!(
            second.failed.is_empty(),
            "every write in flight through the failover is acknowledged; failed: {:?}\n{}",
            &second.failed[..second.failed.len().min(5)],
            c.logs()
        );
        let mut acked = first.acked;
        acked.extend(second.acked);

        // Every acknowledged key reads back, through the log, from the new leader.
        client.prefer(new);
        for k in &acked {
            let v = client.get(format!("k{k}")).await.unwrap();
            assert_eq!(v.as_deref(), Some(format!("v{k}").as_bytes()), "k{k}");
        }

        // The killed node comes back from its files (they hold its log up to where it
        // was killed) and catches up.
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
        let log = c.log(old);
        let from_files = last_index_from_files(&log)
            .unwrap_or_else(|| panic!("no \"log store opened\" line:\n{log}"));
        assert!(
            from_files >= on_disk,
            "node {old} reopened its files with {from_files} entries, but held {on_disk} when killed"
        );
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
    let _one = one_cluster_at_a_time();
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
        let w = write_keys(c.client_addrs.clone(), c.connector(), 0..8, Arc::default()).await;
        assert_eq!((w.acked.len(), w.failed.len()), (8, 0), "{:?}", w.failed);
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
    rt.block_on(async {
        let w = write_keys(c.client_addrs.clone(), c.connector(), 8..16, Arc::default()).await;
        assert_eq!((w.acked.len(), w.failed.len()), (8, 0), "{:?}", w.failed);
    });
}

/// Waits until node `id` has applied `target` under a leader.
async fn caught_up(c: &Cluster, id: NodeId, target: u64) {
    let mut client = c.client();
    let start = Instant::now();
    loop {
        if let Ok(s) = client.status(id).await {
            if s.applied_index >= target && s.leader.is_some() {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "node {id} did not catch up to {target}:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn node_processes_snapshot_and_a_follower_down_past_several_snapshots_catches_up() {
    let _one = one_cluster_at_a_time();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut c = Cluster::with_raft(
        "quic",
        "snapshot_entries = 100\nsnapshot_chunk_bytes = 4096\n",
    );
    rt.block_on(async {
        let none = Arc::new(AtomicUsize::new(0));
        let first = write_keys(c.client_addrs.clone(), c.connector(), 0..300, none.clone()).await;
        assert!(first.failed.is_empty(), "{:?}\n{}", first.failed, c.logs());
        let lead = leader(&c).await;
        let follower = (1..=3).find(|&i| i != lead).unwrap();
        c.kill(follower);
        // Seven snapshot intervals past what the stopped follower holds.
        let second = write_keys(
            c.client_addrs.clone(),
            c.connector(),
            300..1000,
            none.clone(),
        )
        .await;
        assert!(
            second.failed.is_empty(),
            "{:?}\n{}",
            second.failed,
            c.logs()
        );
        let root = c.dir.path().join("data");
        let data = |id: NodeId| root.join(format!("node-{id}"));
        assert!(
            data(lead).join(raftbench::storage::SNAPSHOT_FILE).exists(),
            "the leader saved no snapshot"
        );
        c.start(follower);
        let target = c.client().status(lead).await.unwrap().commit_index;
        caught_up(&c, follower, target).await;
        assert!(
            data(follower)
                .join(raftbench::storage::SNAPSHOT_FILE)
                .exists(),
            "the follower caught up without a snapshot"
        );
        // Restarted again, it rebuilds its state from its snapshot and the log after it.
        c.kill(follower);
        c.start(follower);
        caught_up(&c, follower, target).await;
        let mut client = c.client();
        client.prefer(lead);
        for k in (0..1000).step_by(37) {
            let v = client.get(format!("k{k}")).await.unwrap();
            assert_eq!(v.as_deref(), Some(format!("v{k}").as_bytes()), "k{k}");
        }
        // The leader keeps well under the 1,000 entries in its log file.
        let log_len = std::fs::metadata(data(lead).join("raft.log"))
            .unwrap()
            .len();
        assert!(
            log_len < 500 * 40,
            "the leader's log file holds {log_len} bytes"
        );
    });
}
