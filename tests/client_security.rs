//! The client protocol over QUIC with mutual TLS, the pipelined client, and what a node
//! does about hostile clients: refused certificates, slow readers, connection and byte
//! caps, read timeouts, bad frames and bytes that are not commands. Loopback only.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use quinn::crypto::rustls::QuicClientConfig;
use raftbench::kv::{Command, Output};
use raftbench::raft::{Config, MemStore, Membership, NodeId, Role};
use raftbench::remote::{
    self, ClientFrame, ClientLimits, ClientListener, Connector, ListenerMonitor, Pipeline,
    PipelineOptions, RemoteClient, RemoteReplyError,
};
use raftbench::server::{Server, ServerHandle, ServerParts};
use raftbench::shutdown::ShutdownController;
use raftbench::tls::{self, ClientIdentity, NodeIdentity};
use raftbench::transport::{MemMode, MemNetwork};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::{closed_by_peer, guard, GUARD};

/// A cluster of in-process servers (peers over memory) whose client ports are real.
struct Nodes {
    handles: HashMap<NodeId, ServerHandle>,
    addrs: HashMap<NodeId, SocketAddr>,
    monitors: HashMap<NodeId, ListenerMonitor>,
    client: ClientIdentity,
    nodes: Vec<NodeIdentity>,
    ctls: HashMap<NodeId, ShutdownController>,
}

impl Nodes {
    /// `n` nodes; QUIC client ports unless `tcp`.
    async fn start(n: u64, limits: ClientLimits, tcp: bool) -> Nodes {
        let ids: Vec<NodeId> = (1..=n).collect();
        let (nodes, client) = tls::generate_cluster_with_client(&ids).unwrap();
        let net = MemNetwork::new(MemMode::Move);
        let mut ctls = HashMap::new();
        let mut handles = HashMap::new();
        let mut addrs = HashMap::new();
        let mut monitors = HashMap::new();
        for (i, &id) in ids.iter().enumerate() {
            let (t, inbox) = net.join(id, 1024);
            let cfg = Config {
                election_timeout: Duration::from_millis(150),
                heartbeat_interval: Duration::from_millis(20),
                ..Config::default()
            };
            let (server, handle) = Server::new(ServerParts {
                members: Membership::new(id, ids.clone()),
                raft: cfg,
                seed: id,
                epoch: Instant::now(),
                store: MemStore::new(),
                transport: Arc::new(t),
                inbox,
                observer: None,
            })
            .unwrap();
            let ctl = ShutdownController::new();
            tokio::spawn(server.run(ctl.subscribe()));
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let listener = if tcp {
                ClientListener::bind_tcp_insecure(any, handle.clone(), limits.clone())
                    .await
                    .unwrap()
            } else {
                ClientListener::bind_quic(any, handle.clone(), &nodes[i], limits.clone()).unwrap()
            };
            addrs.insert(id, listener.local_addr().unwrap());
            monitors.insert(id, listener.monitor());
            tokio::spawn(listener.run(ctl.subscribe()));
            handles.insert(id, handle);
            ctls.insert(id, ctl);
        }
        let c = Nodes {
            handles,
            addrs,
            monitors,
            client,
            nodes,
            ctls,
        };
        c.leader().await;
        c
    }

    /// Stops node `id` (server and client port) and forgets it.
    async fn stop(&mut self, id: NodeId) {
        let ctl = self.ctls.remove(&id).expect("running");
        guard("node stop", ctl.shutdown()).await;
        self.handles.remove(&id);
    }

    async fn shutdown(self) {
        for (_, ctl) in self.ctls {
            guard("shutdown", ctl.shutdown()).await;
        }
    }

    async fn leader(&self) -> NodeId {
        let start = Instant::now();
        loop {
            for (id, h) in &self.handles {
                if h.status().role == Role::Leader {
                    return *id;
                }
            }
            assert!(start.elapsed() < GUARD, "no leader");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn connector(&self) -> Connector {
        Connector::quic(&self.client, "127.0.0.1:0".parse().unwrap()).unwrap()
    }

    fn client(&self) -> RemoteClient {
        let mut c = RemoteClient::with_connector(self.addrs.clone(), self.connector());
        c.deadline = GUARD;
        c
    }
}

/// The node's status once it has applied `index` (status is published after answers leave).
async fn applied(h: &ServerHandle, index: u64) -> raftbench::server::NodeStatus {
    let mut w = h.watch_status();
    let st = guard("applied", w.wait_for(|s| s.applied_index >= index))
        .await
        .unwrap()
        .clone();
    st
}

fn put(k: &str, v: impl Into<Bytes>) -> Bytes {
    Command::Put {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: v.into(),
    }
    .encode()
}

fn get(k: &str) -> Bytes {
    Command::Get {
        key: Bytes::copy_from_slice(k.as_bytes()),
    }
    .encode()
}

/// A raw QUIC connection to node `node` at `addr` with `crypto`, and its stream.
async fn raw_quic(
    crypto: rustls::ClientConfig,
    node: NodeId,
    addr: SocketAddr,
) -> Result<
    (
        quinn::Endpoint,
        quinn::Connection,
        quinn::SendStream,
        quinn::RecvStream,
    ),
    String,
> {
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let cfg = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(crypto).unwrap()));
    ep.set_default_client_config(cfg);
    let conn = guard(
        "handshake",
        ep.connect(addr, &tls::server_name(node)).unwrap(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let (s, r) = guard("stream", conn.open_bi())
        .await
        .map_err(|e| e.to_string())?;
    Ok((ep, conn, s, r))
}

/// One request over a raw QUIC stream; Ok(answer) or Err(why the connection failed).
async fn raw_request(
    crypto: rustls::ClientConfig,
    node: NodeId,
    addr: SocketAddr,
) -> Result<ClientFrame, String> {
    let (_ep, conn, mut s, mut r) = raw_quic(crypto, node, addr).await?;
    let mut out = BytesMut::new();
    remote::encode_request(1, &put("intruder", "x"), &mut out);
    let failed = |e: String, conn: quinn::Connection| async move {
        // Why the connection ended, as the node said it.
        format!("{e}; {}", guard("close", conn.closed()).await)
    };
    if let Err(e) = s.write_all(&out).await {
        return Err(failed(e.to_string(), conn).await);
    }
    let mut buf = BytesMut::new();
    loop {
        if let Some(f) = remote::try_decode(&mut buf).unwrap() {
            return Ok(f);
        }
        match guard("answer or close", r.read_buf(&mut buf)).await {
            Ok(0) => return Err(failed("closed".into(), conn).await),
            Ok(_) => {}
            Err(e) => return Err(failed(e.to_string(), conn).await),
        }
    }
}

fn client_crypto(
    cert_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    ca: &rustls::pki_types::CertificateDer<'static>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(cert_chain, key)
    .unwrap();
    cfg.alpn_protocols = vec![tls::CLIENT_ALPN.to_vec()];
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_cluster_client_certificate_are_refused_at_the_handshake() {
    let c = Nodes::start(1, ClientLimits::default(), false).await;
    let addr = c.addrs[&1];
    let ca = &c.client.ca_cert;

    // The cluster's client certificate is served.
    let ok = raw_request(
        client_crypto(c.client.cert_chain.clone(), c.client.key.clone_key(), ca),
        1,
        addr,
    )
    .await
    .unwrap();
    assert!(
        matches!(ok, ClientFrame::Reply(1, Ok(Output::Done), Some(_))),
        "{ok:?}"
    );

    // No certificate at all.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut none = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    none.alpn_protocols = vec![tls::CLIENT_ALPN.to_vec()];
    // Another cluster's client certificate (this cluster's CA trusted, to reach the node).
    let (_, foreign) = tls::generate_cluster_with_client(&[1]).unwrap();
    let foreign_cfg = client_crypto(foreign.cert_chain.clone(), foreign.key.clone_key(), ca);
    // This cluster's node certificate: a node is not a client.
    let node = &c.nodes[0];
    let node_cfg = client_crypto(node.cert_chain.clone(), node.key.clone_key(), ca);

    for (what, cfg) in [
        ("no certificate", none),
        ("foreign CA", foreign_cfg),
        ("node certificate", node_cfg),
    ] {
        let r = raw_request(cfg, 1, addr).await;
        let err = r.expect_err(&format!("{what}: must not be answered"));
        assert!(
            err.to_lowercase().contains("tls")
                || err.contains("crypto")
                || err.contains("certificate"),
            "{what}: refused by TLS, got {err}"
        );
    }
    let st = c.monitors[&1].stats();
    assert_eq!(
        st.handshake_failed
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(st.accepted.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Nothing an intruder sent was applied: only the served put is in the log.
    let mut client = c.client();
    assert_eq!(
        client.get("intruder").await.unwrap().as_deref(),
        Some(&b"x"[..])
    );
    let last = applied(&c.handles[&1], 3).await.last_index;
    assert_eq!(last, 3, "no-op, the served put, this get: {last}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_refused_at_a_nodes_peer_port() {
    // The peer port's verifier wants node certificates: a client's is refused there.
    let (nodes, client) = tls::generate_cluster_with_client(&[1]).unwrap();
    let server = tls::server_config(&nodes[0]).unwrap();
    let ep = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(
            quinn::crypto::rustls::QuicServerConfig::try_from(server).unwrap(),
        )),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let inc = ep.accept().await.unwrap();
        let r = inc.accept().unwrap().await;
        r.is_ok()
    });
    let mut cfg = client_crypto(
        client.cert_chain.clone(),
        client.key.clone_key(),
        &client.ca_cert,
    );
    cfg.alpn_protocols = vec![tls::ALPN.to_vec()];
    let r = raw_quic(cfg, 1, addr).await;
    let accepted = guard("peer accept", accept).await.unwrap();
    assert!(!accepted, "the peer port accepted a client certificate");
    if let Ok((_ep, conn, _, _)) = r {
        // The client may finish its side first; the node then closes the connection.
        let why = guard("close", conn.closed()).await;
        assert!(
            why.to_string().to_lowercase().contains("certificate")
                || why.to_string().contains("crypto"),
            "{why}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_over_quic_follow_redirects_and_carry_traces() {
    let c = Nodes::start(3, ClientLimits::default(), false).await;
    let leader = c.leader().await;
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    let (submit, mut answers) = Pipeline::start(
        c.addrs.clone(),
        c.connector(),
        PipelineOptions {
            prefer: Some(follower),
            ..PipelineOptions::default()
        },
    );
    let n = 2_000u64;
    let mut ids = HashSet::new();
    for i in 0..n {
        let id = submit
            .submit(put(&format!("k{i}"), format!("v{i}")))
            .unwrap();
        assert!(ids.insert(id), "ids are unique");
    }
    let mut redirected = 0;
    let mut got = HashSet::new();
    for _ in 0..n {
        let a = guard("answer", answers.recv()).await.unwrap();
        assert_eq!(a.reply, Ok(Output::Done), "{a:?}");
        assert_eq!(a.node, leader, "the leader answered");
        let t = a.trace.expect("a committed put carries its trace");
        assert!(
            t.index > 0
                && t.accepted <= t.sent
                && t.sent <= t.committed
                && t.committed <= t.applied,
            "{t:?}"
        );
        assert!(a.answered >= a.scheduled);
        redirected += (a.redirects > 0) as u32;
        assert!(got.insert(a.id), "answered once");
    }
    assert_eq!(got, ids);
    assert!(
        redirected >= 1,
        "the first requests went to follower {follower} and were redirected"
    );
    assert_eq!(submit.outstanding(), 0);
    // Read back through the log, out of order on one connection.
    for i in (0..n).step_by(97) {
        submit.submit(get(&format!("k{i}"))).unwrap();
    }
    let mut values = HashSet::new();
    for _ in (0..n).step_by(97) {
        let a = guard("answer", answers.recv()).await.unwrap();
        let Ok(Output::Value(Some(v))) = a.reply else {
            panic!("{a:?}")
        };
        values.insert(v);
    }
    for i in (0..n).step_by(97) {
        assert!(values.contains(&Bytes::from(format!("v{i}"))), "v{i}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_answers_every_request_once_through_a_leader_failure() {
    let mut c = Nodes::start(3, ClientLimits::default(), false).await;
    let old = c.leader().await;
    let (submit, mut answers) = Pipeline::start(
        c.addrs.clone(),
        c.connector(),
        PipelineOptions {
            deadline: GUARD,
            ..PipelineOptions::default()
        },
    );
    let mut before = HashSet::new();
    for i in 0..500 {
        before.insert(submit.submit(put(&format!("b{i}"), "v")).unwrap());
    }
    // Some of these are answered, some are in flight when the leader stops.
    let first = guard("an answer", answers.recv()).await.unwrap();
    assert_eq!(first.reply, Ok(Output::Done));
    c.stop(old).await;
    let mut after = HashSet::new();
    for i in 0..500 {
        after.insert(submit.submit(put(&format!("a{i}"), "v")).unwrap());
    }
    let new = c.leader().await;
    assert_ne!(new, old);
    let mut seen = HashSet::from([first.id]);
    let mut resent = 0;
    for _ in 1..1000 {
        let a = guard("answer", answers.recv()).await.unwrap();
        assert!(seen.insert(a.id), "id {} answered twice", a.id);
        resent += (a.resent > 0) as u32;
        if after.contains(&a.id) {
            // Never reached the stopped leader's log: resent until the new leader took it.
            assert_eq!(a.reply, Ok(Output::Done), "{a:?}");
            assert_eq!(a.node, new);
        } else {
            assert!(
                matches!(
                    a.reply,
                    Ok(Output::Done)
                        | Err(RemoteReplyError::LeadershipLost)
                        | Err(RemoteReplyError::ShuttingDown)
                ),
                "{a:?}"
            );
        }
    }
    assert_eq!(seen.len(), 1000, "every request answered");
    assert!(resent > 0, "requests on the lost connection were resent");
    assert_eq!(submit.outstanding(), 0);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_a_command_are_refused_before_proposing() {
    let c = Nodes::start(1, ClientLimits::default(), false).await;
    let mut client = c.client();
    client.put("k", "v").await.unwrap();
    let before = applied(&c.handles[&1], 2).await;
    assert_eq!(before.last_index, 2, "no-op and the put");
    let (submit, mut answers) =
        Pipeline::start(c.addrs.clone(), c.connector(), PipelineOptions::default());
    let bad: [&[u8]; 4] = [
        b"",
        b"\x09garbage",
        b"\x01\x00\x00\x00\x09ab",
        b"\x02\xff\xff\xff\xff",
    ];
    for b in bad {
        submit.submit(Bytes::copy_from_slice(b)).unwrap();
    }
    for _ in 0..bad.len() {
        let a = guard("answer", answers.recv()).await.unwrap();
        assert!(
            matches!(a.reply, Err(RemoteReplyError::BadCommand(_))),
            "{a:?}"
        );
        assert!(a.trace.is_none(), "never in the log, so no trace");
    }
    let after = client.status(1).await.unwrap();
    assert_eq!(
        after.last_index, before.last_index,
        "nothing reached the log"
    );
    let st = c.monitors[&1].stats();
    assert_eq!(
        st.bad_commands.load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_bounded_and_others_are_still_served() {
    let limit = 64;
    let limits = ClientLimits {
        max_inflight_per_connection: limit,
        window_bytes: 256 * 1024,
        ..ClientLimits::default()
    };
    let c = Nodes::start(1, limits, false).await;
    let mut client = c.client();
    // Large answers, so that unread ones would add up quickly.
    client.put("big", vec![7u8; 64 * 1024]).await.unwrap();
    let cfg = tls::client_identity_config(&c.client).unwrap();
    let (_ep, _conn, mut s, _unread) = raw_quic(cfg, 1, c.addrs[&1]).await.unwrap();
    let n = 100_000u64;
    let writer = tokio::spawn(async move {
        let mut out = BytesMut::new();
        for i in 0..n {
            remote::encode_request(i, &get("big"), &mut out);
            if out.len() > 64 * 1024 {
                if s.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
        }
        let _ = s.write_all(&out).await;
    });
    let mon = c.monitors[&1].clone();
    let start = Instant::now();
    while mon
        .stats()
        .max_inflight
        .load(std::sync::atomic::Ordering::Relaxed)
        < limit
    {
        assert!(
            start.elapsed() < GUARD,
            "the reader never filled its in-flight bound"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another client is served meanwhile.
    client.put("other", "served").await.unwrap();
    assert_eq!(
        client.get("other").await.unwrap().as_deref(),
        Some(&b"served"[..])
    );
    let st = mon.stats();
    assert_eq!(
        st.max_inflight.load(std::sync::atomic::Ordering::Relaxed),
        limit,
        "never more in flight than the bound"
    );
    let read = st.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        read < n / 10,
        "the node stopped reading the slow connection: {read} of {n} requests read"
    );
    assert!(!writer.is_finished(), "flow control holds the client back");
    assert!(mon.buffered_bytes() <= mon.limits().max_buffered_bytes);
    writer.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_closed_by_the_read_timeout() {
    let limits = ClientLimits {
        read_timeout_ms: 200,
        ..ClientLimits::default()
    };
    let c = Nodes::start(1, limits, true).await;
    let addr = c.addrs[&1];
    // Sends nothing.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    closed_by_peer(&mut idle).await;
    // Sends a frame one byte at a time, too slowly to ever finish it.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let mut frame = BytesMut::new();
    remote::encode_request(1, &put("slow", vec![1u8; 1000]), &mut frame);
    let mut closed = false;
    for b in frame.iter() {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        let mut one = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(50), slow.read(&mut one)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(
        closed,
        "a 1-byte-per-50-ms sender was not closed in {} bytes",
        frame.len()
    );
    let st = c.monitors[&1].stats();
    assert_eq!(
        st.closed_timeout.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    // A client that sends whole requests is served.
    let mut good = TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    remote::encode_request(5, &put("k", "v"), &mut out);
    good.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        if let Some(f) = remote::try_decode(&mut buf).unwrap() {
            assert!(
                matches!(f, ClientFrame::Reply(5, Ok(Output::Done), _)),
                "{f:?}"
            );
            break;
        }
        assert!(guard("answer", good.read_buf(&mut buf)).await.unwrap() > 0);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_buffered_bytes_are_capped() {
    let limits = ClientLimits {
        max_connections: 4,
        max_buffered_bytes: remote::MAX_FRAME + 4,
        read_timeout_ms: 1_000,
        ..ClientLimits::default()
    };
    let c = Nodes::start(1, limits.clone(), true).await;
    let addr = c.addrs[&1];
    let mon = c.monitors[&1].clone();
    // Three connections each start a largest frame and send 2 MiB of it: 6 MiB wanted,
    // 4 MiB allowed across all of them.
    let mut hogs = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        hogs.push(tokio::spawn(async move {
            let mut b = BytesMut::new();
            b.put_u32(remote::MAX_FRAME as u32);
            b.put_slice(&vec![0u8; 2 << 20]);
            let _ = s.write_all(&b).await;
            s
        }));
    }
    let start = Instant::now();
    let mut most = 0;
    while most < remote::MAX_FRAME - 512 * 1024 {
        let b = mon.buffered_bytes();
        assert!(b <= limits.max_buffered_bytes, "{b} bytes buffered");
        most = most.max(b);
        assert!(
            start.elapsed() < GUARD,
            "the hogs never filled the budget: {most}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A fourth connection fits, a fifth is refused at once.
    let _fourth = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    while mon.stats().open.load(std::sync::atomic::Ordering::Relaxed) < 4 {
        assert!(start.elapsed() < GUARD);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    closed_by_peer(&mut fifth).await;
    assert_eq!(
        mon.stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The hogs never complete a frame: the read timeout closes them, and their bytes return.
    let start = Instant::now();
    while mon.stats().open.load(std::sync::atomic::Ordering::Relaxed) > 0
        || mon.buffered_bytes() > 0
    {
        assert!(mon.buffered_bytes() <= limits.max_buffered_bytes);
        assert!(
            start.elapsed() < GUARD,
            "connections still open: {:?}",
            mon.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        mon.stats()
            .closed_timeout
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
    for h in hogs {
        h.abort();
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_over_quic_closes_only_its_connection() {
    let c = Nodes::start(1, ClientLimits::default(), false).await;
    let mut client = c.client();
    client.put("a", "1").await.unwrap();
    let mut oversized = BytesMut::new();
    oversized.put_u32(u32::MAX);
    let mut wrong_version = BytesMut::new();
    remote::encode_request(5, &put("x", "y"), &mut wrong_version);
    wrong_version[4] = remote::VERSION + 1;
    for frame in [oversized, wrong_version] {
        let cfg = tls::client_identity_config(&c.client).unwrap();
        let (_ep, conn, mut s, mut r) = raw_quic(cfg, 1, c.addrs[&1]).await.unwrap();
        s.write_all(&frame).await.unwrap();
        let mut buf = Vec::new();
        let _ = guard("close", r.read_to_end(1 << 20))
            .await
            .map(|b| buf = b);
        assert!(buf.is_empty(), "no answer to a bad frame");
        let why = guard("close", conn.closed()).await;
        assert!(
            matches!(why, quinn::ConnectionError::ApplicationClosed(_)),
            "{why}"
        );
        // The well-behaved client is still served on its own connection.
        client.put("after", "ok").await.unwrap();
    }
    assert_eq!(client.get("x").await.unwrap(), None);
    let st = c.monitors[&1].stats();
    assert_eq!(
        st.closed_bad_frame
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    c.shutdown().await;
}

/// Not a test of behaviour: how many requests per second one pipelined client process
/// gets answered by a one-node cluster (memory store) over QUIC. Run with
/// `cargo test --test client_security -- --ignored --nocapture pipeline_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn pipeline_throughput() {
    let secs: u64 = support::env_u64("PIPELINE_SECS").unwrap_or(3);
    let rate: u64 = support::env_u64("PIPELINE_RATE").unwrap_or(0);
    let c = Nodes::start(1, ClientLimits::default(), false).await;
    let (submit, mut answers) =
        Pipeline::start(c.addrs.clone(), c.connector(), PipelineOptions::default());
    let cmd = put("k", "v");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    let s2 = submit.clone();
    let gen = tokio::spawn(async move {
        let start = Instant::now();
        let mut sent = 0u64;
        let mut full = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            // Open loop at `rate`/s when given, else as fast as the outstanding bound allows.
            let due = if rate > 0 {
                (start.elapsed().as_secs_f64() * rate as f64) as u64
            } else {
                sent + 256
            };
            while sent < due {
                match s2.submit_at(
                    cmd.clone(),
                    start + Duration::from_secs_f64(sent as f64 / rate.max(1) as f64),
                ) {
                    Ok(_) => sent += 1,
                    Err(_) => {
                        full += 1;
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        d.store(true, std::sync::atomic::Ordering::Relaxed);
        (sent, full)
    });
    let start = Instant::now();
    let mut last = start;
    let mut n = 0u64;
    let mut ok = 0u64;
    let mut lat = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    while !(done.load(std::sync::atomic::Ordering::Relaxed) && submit.outstanding() == 0) {
        match tokio::time::timeout(Duration::from_millis(200), answers.recv()).await {
            Err(_) if !done.load(std::sync::atomic::Ordering::Relaxed) => continue,
            Ok(Some(a)) => {
                n += 1;
                last = a.answered;
                ok += a.reply.is_ok() as u64;
                if rate > 0 {
                    let _ = lat.record(a.latency().as_micros() as u64);
                }
            }
            _ => break,
        }
    }
    // Until the last answer (the loop may wait a little longer to learn there is none).
    let el = last.duration_since(start).as_secs_f64();
    let (sent, full) = gen.await.unwrap();
    println!(
        "pipeline: {n} answers ({ok} ok) of {sent} sent in {el:.2} s = {:.0}/s; submit refused (full) {full} times",
        n as f64 / el
    );
    if rate > 0 {
        println!(
            "latency from schedule: p50 {} us, p99 {} us, max {} us",
            lat.value_at_quantile(0.5),
            lat.value_at_quantile(0.99),
            lat.max()
        );
    }
    assert_eq!(n, sent);
    c.shutdown().await;
}
