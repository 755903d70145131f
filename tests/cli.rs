//! The `raftbench` binary as an operator meets it: `certs` keeps an existing cluster,
//! a node started before `certs` says what to do, `client` refuses a non-member, and a
//! node logs plain text to a file and stops cleanly on SIGTERM.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use raftbench::remote::RemoteClient;

mod support;
use support::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_raftbench");
/// Upper bound on any wait; reaching it means the behaviour under test is broken.
const GUARD: Duration = Duration::from_secs(30);

fn raftbench(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes a cluster file of nodes `ids` into `dir`; returns its path and the client addresses.
fn cluster_file(
    dir: &Path,
    transport: &str,
    storage: &str,
    ids: &[u64],
) -> (PathBuf, HashMap<u64, SocketAddr>) {
    // Clusters without certificates (tcp between nodes) take clients in plain TCP too.
    let client_transport = if transport == "tcp" {
        "tcp_insecure"
    } else {
        "quic"
    };
    let mut toml = format!(
        "transport = \"{transport}\"\nclient_transport = \"{client_transport}\"\nstorage = \"{storage}\"\n[raft]\nheartbeat_ms = 50\nelection_timeout_ms = 300\n"
    );
    let mut clients = HashMap::new();
    for &id in ids {
        let raft: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let client: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        clients.insert(id, client);
        toml.push_str(&format!(
            "[[nodes]]\nid = {id}\nraft_addr = \"{raft}\"\nclient_addr = \"{client}\"\n"
        ));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, toml).unwrap();
    (path, clients)
}

#[test]
fn certs_refuses_to_replace_an_existing_cluster_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_s = out.to_str().unwrap();
    let first = raftbench(&["certs", "--out", out_s, "--nodes", "3"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let ca = std::fs::read(out.join("ca.pem")).unwrap();
    let key1 = std::fs::read(out.join("node-1.key")).unwrap();

    let again = raftbench(&["certs", "--out", out_s, "--nodes", "3"]);
    assert!(!again.status.success(), "a second `certs` must refuse");
    let err = stderr(&again);
    for f in ["ca.pem", "ca.key", "node-1.pem", "node-3.key"] {
        assert!(err.contains(f), "the refusal names {f}: {err}");
    }
    assert!(err.contains("--force"), "and says how to insist: {err}");
    assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), ca, "CA kept");
    assert_eq!(
        std::fs::read(out.join("node-1.key")).unwrap(),
        key1,
        "key kept"
    );

    let forced = raftbench(&["certs", "--out", out_s, "--nodes", "3", "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(out.join("ca.pem")).unwrap(), ca, "new CA");
    assert_ne!(
        std::fs::read(out.join("node-1.key")).unwrap(),
        key1,
        "new key"
    );
}

#[test]
fn node_started_before_certs_names_the_missing_file_and_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = cluster_file(dir.path(), "quic", "memory", &[1, 2, 3]);
    let out = raftbench(&["node", "--config", config.to_str().unwrap(), "--id", "2"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let certs = dir.path().join("certs");
    assert!(
        err.contains(&certs.join("ca.pem").display().to_string()),
        "names the missing file: {err}"
    );
    assert!(err.contains("is missing"), "{err}");
    assert!(
        err.contains(&format!(
            "raftbench certs --out {} --nodes 3",
            certs.display()
        )),
        "says how to make it: {err}"
    );
    assert!(!err.contains("bad PEM"), "{err}");
}

#[test]
fn client_refuses_a_node_that_is_not_a_member() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = cluster_file(dir.path(), "tcp", "memory", &[1, 2, 3]);
    let out = raftbench(&[
        "client",
        "--config",
        config.to_str().unwrap(),
        "--node",
        "9",
        "status",
    ]);
    assert!(!out.status.success(), "--node 9 is not a member");
    let err = stderr(&out);
    assert!(err.contains("--node 9"), "{err}");
    assert!(err.contains("[1, 2, 3]"), "names the members: {err}");
    assert!(out.stdout.is_empty(), "nothing was asked of any node");
}

/// A node process whose stderr goes to a file.
struct NodeProc {
    child: Child,
    log: PathBuf,
}

impl NodeProc {
    fn start(config: &Path, id: u64, log: PathBuf) -> NodeProc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["node", "--config"])
            .arg(config)
            .args(["--id", &id.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        NodeProc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, what: &str) {
        let start = Instant::now();
        while !self.log().contains(what) {
            assert!(
                start.elapsed() < GUARD,
                "no {what:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    fn terminate(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: plain kill(2) on a child this test spawned and has not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < GUARD,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn node_log_written_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = cluster_file(dir.path(), "tcp", "memory", &[1]);
    let mut node = NodeProc::start(&config, 1, dir.path().join("node-1.log"));
    node.wait_for_log("node running");
    node.terminate();
    let log = node.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(
        log.contains("tcp_insecure") && log.contains("NOT authenticated"),
        "plain-TCP clients are labelled insecure: {log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape in a log file:\n{log:?}"
    );
}

#[test]
fn sigterm_stops_a_node_cleanly_and_it_restarts_from_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let (config, clients) = cluster_file(dir.path(), "quic", "file", &[1]);
    let certs = raftbench(&[
        "certs",
        "--out",
        dir.path().join("certs").to_str().unwrap(),
        "--nodes",
        "1",
    ]);
    assert!(certs.status.success(), "{}", stderr(&certs));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connector = rt.block_on(async {
        raftbench::remote::Connector::quic_from_dir(
            &dir.path().join("certs"),
            "",
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap()
    });
    let mut client = RemoteClient::with_connector(clients.clone(), connector);
    client.deadline = GUARD;

    let mut node = NodeProc::start(&config, 1, dir.path().join("node-1.log"));
    rt.block_on(client.put("k", "v1")).unwrap();
    let status = node.terminate();
    assert!(
        status.success(),
        "SIGTERM is a clean exit (code 0), not a death by signal: {status:?}\n{}",
        node.log()
    );
    let log = node.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        std::net::UdpSocket::bind(clients[&1]).is_ok(),
        "the client port is closed"
    );

    // What was acknowledged before the stop is there after a restart from the same files.
    let _node = NodeProc::start(&config, 1, dir.path().join("node-1-again.log"));
    let v = rt.block_on(client.get("k")).unwrap();
    assert_eq!(v.as_deref(), Some(&b"v1"[..]));
}

#[test]
fn certs_add_client_signs_with_the_existing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_s = out.to_str().unwrap();
    let none = raftbench(&["certs", "--out", out_s, "--add-client", "load-1"]);
    assert!(!none.status.success(), "no CA to sign with yet");
    let err = stderr(&none);
    assert!(
        err.contains("ca.pem is missing") && err.contains("ca.key"),
        "{err}"
    );
    let first = raftbench(&["certs", "--out", out_s, "--nodes", "1"]);
    assert!(first.status.success(), "{}", stderr(&first));
    for f in ["client.pem", "client.key"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let ca = std::fs::read(out.join("ca.pem")).unwrap();
    let added = raftbench(&["certs", "--out", out_s, "--add-client", "load-1"]);
    assert!(added.status.success(), "{}", stderr(&added));
    assert!(out.join("client-load-1.pem").exists() && out.join("client-load-1.key").exists());
    assert_eq!(
        std::fs::read(out.join("ca.pem")).unwrap(),
        ca,
        "the CA is kept"
    );
    let bad = raftbench(&["certs", "--out", out_s, "--add-client", "Load One"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("a-z, 0-9"), "{}", stderr(&bad));
    let id = raftbench::tls::load_client_identity(&out, "load-1").unwrap();
    assert_eq!(
        raftbench::tls::cert_role(&id.cert_chain).unwrap(),
        raftbench::tls::CertRole::Client("load-1".into())
    );
}
