//! Three node hosts and a load host in network namespaces (`raftbench netns up`): three
//! `raftbench node` processes run inside, the load host writes and reads a few hundred
//! keys with `raftbench client`, and everything is torn down even when the test fails.
//!
//! Skipped, with a message saying why, where namespaces cannot be created (not root, no
//! `ip`, no CAP_SYS_ADMIN).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_raftbench");
/// Keys written, then read back, from the load host.
const KEYS: usize = 200;

/// Why this machine cannot run the test, if it cannot.
fn cannot_run() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: creating network namespaces needs root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("`ip` (iproute2) is not installed".into()),
    }
    None
}

fn raftbench(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Owns the namespaces and the node processes: dropping it (test passed or panicked)
/// kills the nodes and deletes the namespaces.
struct Hosts {
    prefix: String,
    dir: tempfile::TempDir,
    nodes: Vec<Child>,
}

impl Hosts {
    fn config(&self) -> PathBuf {
        self.dir.path().join("cluster.toml")
    }

    fn node_log(&self, id: u64) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{id}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        (1..=3)
            .map(|id| format!("--- node {id} ---\n{}", self.node_log(id)))
            .collect()
    }

    fn start_node(&mut self, id: u64) {
        let log = std::fs::File::create(self.dir.path().join(format!("node-{id}.log"))).unwrap();
        // `ip netns exec` execs the node in place: the child's pid is the node's.
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("{}-n{id}", self.prefix), BIN])
            .args(["node", "--config"])
            .arg(self.config())
            .args(["--id", &id.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes.push(child);
    }

    /// Runs `sh -c script` on the load host, for at most `limit`.
    fn on_load_host(&self, script: &str, limit: Duration) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &format!("{}-load", self.prefix)])
            .args(["sh", "-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "load host script ran longer than {limit:?}:\n{}\n{}",
                    text(&out),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for c in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
        let out = raftbench(&["netns", "down", "--kill", "--prefix", &self.prefix]);
        if !out.status.success() {
            eprintln!("netns down failed: {}", text(&out));
        }
    }
}

/// `sh` words for `raftbench client --config FILE`.
fn client_cmd(config: &Path) -> String {
    format!("'{BIN}' client --config '{}'", config.display())
}

#[test]
fn three_node_hosts_and_a_load_host_in_namespaces() {
    if let Some(why) = cannot_run() {
        println!("SKIPPED three_node_hosts_and_a_load_host_in_namespaces: {why}");
        return;
    }
    // Unique per run, so that a leftover of another run (or a user's `rb`) is not touched.
    let prefix = format!("rbt{}", std::process::id() % 1_000_000);
    let mut hosts = Hosts {
        prefix: prefix.clone(),
        dir: tempfile::tempdir().unwrap(),
        nodes: Vec::new(),
    };
    let dir = hosts.dir.path().to_str().unwrap().to_string();
    let up = raftbench(&["netns", "up", "--prefix", &prefix, "--dir", &dir]);
    if !up.status.success() {
        let t = text(&up);
        if t.contains("Operation not permitted") || t.contains("Permission denied") {
            println!("SKIPPED three_node_hosts_and_a_load_host_in_namespaces: {t}");
            return;
        }
        panic!("netns up failed: {t}");
    }
    // Idempotent: a second `up` finds everything in place.
    let again = raftbench(&["netns", "up", "--prefix", &prefix, "--dir", &dir]);
    assert!(again.status.success(), "{}", text(&again));
    let status = text(&raftbench(&["netns", "status", "--prefix", &prefix]));
    assert!(status.trim_end().ends_with("up"), "{status}");
    for id in 1..=3u8 {
        assert!(status.contains(&format!("10.213.0.{id}/24")), "{status}");
    }

    for id in 1..=3 {
        hosts.start_node(id);
    }
    let client = client_cmd(&hosts.config());
    // A leader within 30 s: `client status` from the load host names one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = hosts.on_load_host(&format!("{client} status"), Duration::from_secs(60));
        if text(&out).contains("Leader") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no leader in 30 s:\n{}\n{}",
            text(&out),
            hosts.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let puts = hosts.on_load_host(
        &format!(
            "i=0; while [ $i -lt {KEYS} ]; do {client} put k$i v$i >/dev/null || exit 1; i=$((i+1)); done"
        ),
        Duration::from_secs(300),
    );
    assert!(
        puts.status.success(),
        "puts failed: {}\n{}",
        text(&puts),
        hosts.logs()
    );
    let gets = hosts.on_load_host(
        &format!("i=0; while [ $i -lt {KEYS} ]; do {client} get k$i || exit 1; i=$((i+1)); done"),
        Duration::from_secs(300),
    );
    assert!(
        gets.status.success(),
        "gets failed: {}\n{}",
        text(&gets),
        hosts.logs()
    );
    let got: Vec<String> = String::from_utf8_lossy(&gets.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let want: Vec<String> = (0..KEYS).map(|i| format!("v{i}")).collect();
    assert_eq!(got, want);
    // The nodes talked over the bridge, not loopback: each logged its namespace address.
    for id in 1..=3 {
        let log = hosts.node_log(id);
        assert!(log.contains(&format!("raft=10.213.0.{id}:7101")), "{log}");
    }
    drop(hosts);
    let status = text(&raftbench(&["netns", "status", "--prefix", &prefix]));
    assert!(status.trim_end().ends_with("down"), "{status}");
}
