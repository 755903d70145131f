//! What node processes tell the harness over the client protocol: status v3 (counters,
//! clock origin, CPU, RSS), a clock exchange whose bound holds the true offset, and a
//! recording armed and taken from every node, replayed into exact follower lags; plus the
//! client listener's figures in `/metrics`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use raftbench::harness::node_recorder::NodeRecorder;
use raftbench::raft::{Config, MemStore, Membership, NodeId, Role, Time};
use raftbench::remote::{
    self, instant_to_monotonic_ns, monotonic_now_ns, ArmSpec, ClientFrame, ClientListener,
    ClockOffset, Connector, EventRecord, Recording, RemoteClient, RemoteError,
};
use raftbench::server::{Server, ServerParts};
use raftbench::shutdown::ShutdownController;
use raftbench::transport::{MemMode, MemNetwork};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::{free_port, guard};

const BIN: &str = env!("CARGO_BIN_EXE_raftbench");

struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
    children: Vec<Child>,
    client_addrs: HashMap<NodeId, SocketAddr>,
    metrics_addrs: HashMap<NodeId, SocketAddr>,
}

impl Cluster {
    /// Three QUIC node processes on loopback, with metrics.
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new(BIN)
            .args(["certs", "--out"])
            .arg(dir.path().join("certs"))
            .args(["--nodes", "3"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "raftbench certs failed");
        let mut toml = "transport = \"quic\"\nstorage = \"file\"\n[raft]\nheartbeat_ms = 50\n\
                        election_timeout_ms = 1500\ncompact_threshold = 0\n"
            .to_string();
        let (mut client_addrs, mut metrics_addrs) = (HashMap::new(), HashMap::new());
        for id in 1..=3u64 {
            let client: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            client_addrs.insert(id, client);
            metrics_addrs.insert(id, metrics);
            toml.push_str(&format!(
                "[[nodes]]\nid = {id}\nraft_addr = \"127.0.0.1:{}\"\nclient_addr = \"{client}\"\n\
                 metrics_addr = \"{metrics}\"\n",
                free_port()
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
                    .env("RUST_LOG", "info")
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
            metrics_addrs,
        }
    }

    fn client(&self) -> RemoteClient {
        let connector = Connector::quic_from_dir(
            &self.dir.path().join("certs"),
            "",
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let mut c = RemoteClient::with_connector(self.client_addrs.clone(), connector);
        c.deadline = Duration::from_secs(20);
        c
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
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn leader(c: &Cluster, client: &mut RemoteClient) -> NodeId {
    let start = Instant::now();
    loop {
        for id in 1..=3 {
            if let Ok(s) = client.status(id).await {
                if s.role == Role::Leader {
                    return id;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no leader:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most 20 s) until every node has applied `index`.
async fn all_applied(c: &Cluster, client: &mut RemoteClient, index: u64) {
    let start = Instant::now();
    for id in 1..=3 {
        loop {
            if client
                .status(id)
                .await
                .map(|s| s.applied_index)
                .unwrap_or(0)
                >= index
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node {id} did not apply {index}:\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn write(client: &mut RemoteClient, range: std::ops::Range<u64>) {
    for k in range {
        client.put(format!("k{k}"), format!("v{k}")).await.unwrap();
    }
}

/// The events' ranges, in order, join up from `from` to `to` with no gap or overlap.
fn covers(events: &[EventRecord], from: u64, to: u64) -> Result<(), String> {
    let mut at = from;
    for e in events.iter().filter(|e| e.to > e.from) {
        if e.from != at {
            return Err(format!("gap or overlap at {at}: {e:?}"));
        }
        at = e.to;
    }
    if at != to {
        return Err(format!("events end at {at}, not {to}"));
    }
    Ok(())
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

#[test]
fn node_processes_report_status_clocks_and_recordings() {
    let c = Cluster::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = c.client();
        let lead = leader(&c, &mut client).await;
        client.prefer(lead);
        write(&mut client, 0..20).await;
        let warm = client.status(lead).await.unwrap().commit_index;
        all_applied(&c, &mut client, warm).await;

        // Status v3: every node's clock origin, CPU and memory; the leader's counters.
        let mut origin = HashMap::new();
        for id in 1..=3 {
            let s = client.status(id).await.unwrap();
            assert!(
                s.clock_origin_ns > 0 && s.clock_origin_ns < monotonic_now_ns(),
                "{s:?}"
            );
            assert!(s.cpu_ns > 0 && s.rss_bytes > 1 << 20, "{s:?}");
            assert!(s.transport_bytes_sent > 0, "{s:?}");
            if id == lead {
                assert!(s.stats.appends > 0 && s.stats.entries_sent >= warm, "{s:?}");
            }
            origin.insert(id, s.clock_origin_ns);
        }

        // The clock exchange's bound holds the true offset (both clocks are CLOCK_MONOTONIC
        // here, so the true offset is known from the origins).
        let base = Instant::now();
        let base_mono = instant_to_monotonic_ns(base);
        let mut offsets = HashMap::new();
        for id in 1..=3 {
            let samples = client.clock_samples(id, 16, base).await.unwrap();
            assert_eq!(samples.len(), 16);
            let est = ClockOffset::estimate(&samples).unwrap();
            let truth = origin[&id] as i64 - base_mono as i64;
            assert!(
                est.contains(truth),
                "node {id}: {est:?} vs true offset {truth}"
            );
            eprintln!(
                "node {id}: offset estimate off by {} ns, bound ±{} ns",
                est.offset_ns - truth,
                est.error_ns
            );
            offsets.insert(id, truth);
        }

        // Nothing armed yet: a take is refused, by name.
        match client.take_recording(lead).await {
            Err(RemoteError::Refused(n, why)) => {
                assert_eq!(n, lead);
                assert!(why.contains("armed"), "{why}");
            }
            other => panic!("a take with nothing armed: {other:?}"),
        }

        // Arm every node over one window (the same CLOCK_MONOTONIC instant on each node's
        // clock), write N keys, let everyone apply them, take.
        const N: u64 = 200;
        let now = monotonic_now_ns();
        let span = Duration::from_secs(120);
        for id in 1..=3 {
            let start = Time::from_nanos(now - origin[&id]);
            client
                .arm_recording(id, start, start + span, Duration::from_secs(1))
                .await
                .unwrap();
        }
        client.prefer(lead);
        write(&mut client, 100..100 + N).await;
        all_applied(&c, &mut client, warm + N).await;
        let mut recs: Vec<(Recording, i64)> = Vec::new();
        for id in 1..=3 {
            let r = client.take_recording(id).await.unwrap();
            assert_eq!(r.node, id);
            assert_eq!(r.events_dropped, 0);
            eprintln!(
                "node {id}: {} commit and {} apply events, {} batch samples",
                r.commits.len(),
                r.applies.len(),
                r.batch_size.total.len()
            );
            covers(&r.commits, warm, warm + N)
                .unwrap_or_else(|e| panic!("node {id} commits: {e}\n{:?}", r.commits));
            covers(&r.applies, warm, warm + N)
                .unwrap_or_else(|e| panic!("node {id} applies: {e}\n{:?}", r.applies));
            assert_eq!(r.led(), id == lead, "node {id}");
            if id == lead {
                assert!(!r.batch_size.total.is_empty() && !r.queue_depth.total.is_empty());
            } else {
                assert!(r.batch_size.total.is_empty(), "a follower sends no entries");
            }
            recs.push((r, offsets[&id]));
        }
        let harness = NodeRecorder::new(3, Duration::from_secs(1));
        let start = Time::from_nanos(now - base_mono);
        harness.set_window(start, start + span);
        harness.replay(&recs);
        let h = harness.take();
        for (id, commit, apply) in &h.followers {
            let want = if *id == lead { 0 } else { N };
            assert_eq!(commit.total.len(), want, "node {id} commit lags");
            assert_eq!(apply.total.len(), want, "node {id} apply lags");
        }
        assert!(!h.batch_size.total.is_empty());
        assert!(
            h.batch_size.total.len() >= N / 64,
            "{}",
            h.batch_size.total.len()
        );

        // A cap of 10 events keeps 10 and counts the rest.
        let now = monotonic_now_ns();
        let start = Time::from_nanos(now - origin[&lead]);
        client
            .arm_recording_spec(
                lead,
                ArmSpec {
                    start,
                    end: start + span,
                    interval: Duration::from_secs(1),
                    max_records: 10,
                },
            )
            .await
            .unwrap();
        client.prefer(lead);
        write(&mut client, 1_000..1_050).await;
        let r = client.take_recording(lead).await.unwrap();
        assert_eq!(r.commits.len() + r.applies.len(), 10);
        assert!(r.events_dropped > 0, "{r:?}");

        // The client listener's figures are in /metrics.
        let text = http_get(c.metrics_addrs[&lead], "/metrics");
        assert!(
            sample(&text, "raftbench_client_requests_total") > N as f64,
            "{text}"
        );
        assert!(sample(&text, "raftbench_client_connections_accepted_total") >= 1.0);
        assert!(sample(&text, "raftbench_client_connections_open") >= 1.0);
        assert!(text.contains("raftbench_client_connections_closed_total{reason=\"timeout\"}"));
        assert!(sample(&text, "raftbench_client_max_connections") == 256.0);
        client.close().await;
    });

    // `raftbench client status` prints CPU and memory.
    let out = Command::new(BIN)
        .args(["client", "--config"])
        .arg(&c.config)
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    assert!(head.contains("cpu_s") && head.contains("rss_mb"), "{head}");
    for l in lines {
        let rss: f64 = l.split_whitespace().last().unwrap().parse().unwrap();
        assert!(rss > 1.0, "{l}");
    }
}

/// A listener without a probe (an in-process node) refuses clock and recording requests
/// with an error frame and goes on serving the connection.
#[tokio::test]
async fn a_listener_without_a_probe_refuses_clock_and_recording_requests() {
    let net = MemNetwork::new(MemMode::Move);
    let (t, inbox) = net.join(1, 1024);
    let (server, handle) = Server::new(ServerParts {
        members: Membership::new(1, vec![1]),
        raft: Config {
            election_timeout: Duration::from_millis(50),
            heartbeat_interval: Duration::from_millis(10),
            ..Config::default()
        },
        seed: 1,
        epoch: Instant::now(),
        store: MemStore::new(),
        transport: std::sync::Arc::new(t),
        inbox,
        observer: None,
    })
    .unwrap();
    let ctl = ShutdownController::new();
    tokio::spawn(server.run(ctl.subscribe()));
    let listener = ClientListener::bind("127.0.0.1:0".parse().unwrap(), handle)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(listener.run(ctl.subscribe()));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    remote::encode_clock_request(1, 5, &mut out);
    remote::encode_take(2, &mut out);
    remote::encode_status_request(3, &mut out);
    s.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    while got.len() < 3 {
        while let Some(f) = remote::try_decode(&mut buf).unwrap() {
            got.push(f);
        }
        if got.len() < 3 {
            let n = guard("frames", s.read_buf(&mut buf)).await.unwrap();
            assert!(n > 0, "closed after {got:?}");
        }
    }
    got.sort_by_key(|f| match f {
        ClientFrame::Error(id, _) | ClientFrame::Status(id, _) => *id,
        other => panic!("unexpected {other:?}"),
    });
    assert!(matches!(&got[0], ClientFrame::Error(1, why) if why.contains("not a node process")));
    assert!(matches!(&got[1], ClientFrame::Error(2, _)));
    // In process the server still names its clock origin; process figures stay 0.
    match &got[2] {
        ClientFrame::Status(3, st) => {
            assert!(st.clock_origin_ns > 0);
            assert_eq!((st.cpu_ns, st.rss_bytes), (0, 0));
        }
        other => panic!("{other:?}"),
    }
    ctl.shutdown().await;
}
