//! The harness's load port over the pipelined client (`RemotePort`), against in-process
//! nodes whose client ports are real QUIC listeners on loopback: every request is answered
//! under its own id, traces move onto the harness's clock by the node's offset, and an
//! unreachable cluster answers errors rather than hanging.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftbench::harness::load::Intended;
use raftbench::harness::remote_port::{ClockMap, RemotePort};
use raftbench::harness::reply_recorder::ReplyRecorder;
use raftbench::harness::target::LoadPort;
use raftbench::harness::window::Window;
use raftbench::kv::{Command, Output};
use raftbench::raft::{Config, MemStore, Membership, NodeId, Role};
use raftbench::remote::{ClientLimits, ClientListener, Connector, PipelineOptions};
use raftbench::server::{Answer, ClientError, Refused, ReplyTo, Request, Server, ServerParts};
use raftbench::shutdown::ShutdownController;
use raftbench::tls::{self, ClientIdentity};
use raftbench::transport::{MemMode, MemNetwork};
use tokio::sync::mpsc;

mod support;
use support::{free_port, GUARD};

/// Three in-process nodes sharing one clock origin, with QUIC client ports.
struct Nodes {
    rt: tokio::runtime::Runtime,
    epoch: Instant,
    addrs: HashMap<NodeId, SocketAddr>,
    client: Arc<ClientIdentity>,
    ctls: Vec<ShutdownController>,
    handles: Vec<raftbench::server::ServerHandle>,
}

impl Nodes {
    fn start() -> Nodes {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let epoch = Instant::now();
        let ids: Vec<NodeId> = vec![1, 2, 3];
        let (identities, client) = tls::generate_cluster_with_client(&ids).unwrap();
        let (addrs, ctls, handles) = rt.block_on(async {
            let net = MemNetwork::new(MemMode::Move);
            let (mut addrs, mut ctls, mut handles) = (HashMap::new(), Vec::new(), Vec::new());
            for (i, &id) in ids.iter().enumerate() {
                let (t, inbox) = net.join(id, 1024);
                let (server, handle) = Server::new(ServerParts {
                    members: Membership::new(id, ids.clone()),
                    raft: Config {
                        election_timeout: Duration::from_millis(150),
                        heartbeat_interval: Duration::from_millis(20),
                        ..Config::default()
                    },
                    seed: id,
                    epoch,
                    store: MemStore::new(),
                    transport: Arc::new(t),
                    inbox,
                    observer: None,
                })
                .unwrap();
                let ctl = ShutdownController::new();
                tokio::spawn(server.run(ctl.subscribe()));
                let listener = ClientListener::bind_quic(
                    "127.0.0.1:0".parse().unwrap(),
                    handle.clone(),
                    &identities[i],
                    ClientLimits::default(),
                )
                .unwrap();
                addrs.insert(id, listener.local_addr().unwrap());
                tokio::spawn(listener.run(ctl.subscribe()));
                ctls.push(ctl);
                handles.push(handle);
            }
            (addrs, ctls, handles)
        });
        let nodes = Nodes {
            rt,
            epoch,
            addrs,
            client: Arc::new(client),
            ctls,
            handles,
        };
        nodes.leader();
        nodes
    }

    fn leader(&self) -> NodeId {
        let until = Instant::now() + GUARD;
        loop {
            if let Some(h) = self
                .handles
                .iter()
                .find(|h| h.status().role == Role::Leader)
            {
                return h.node();
            }
            assert!(Instant::now() < until, "no leader");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn port(&self, opts: PipelineOptions, offsets: Arc<ClockMap>) -> RemotePort {
        let client = self.client.clone();
        RemotePort::start(
            self.addrs.clone(),
            Box::new(move || Connector::quic(&client, "127.0.0.1:0".parse().unwrap())),
            opts,
            offsets,
        )
        .unwrap()
    }

    fn shutdown(self) {
        let Nodes { rt, ctls, .. } = self;
        rt.block_on(async {
            for ctl in ctls {
                let _ = tokio::time::timeout(GUARD, ctl.shutdown()).await;
            }
        });
    }
}

fn put(i: u64) -> Bytes {
    Command::encode_put(format!("k{i}").as_bytes(), b"value")
}

/// Takes `n` answers from `rx`, waiting at most [`GUARD`] in all.
fn answers(rx: &mut mpsc::UnboundedReceiver<Answer>, n: usize) -> Vec<(Answer, Instant)> {
    let until = Instant::now() + GUARD;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match rx.try_recv() {
            Ok(a) => got.push((a, Instant::now())),
            Err(_) => {
                assert!(
                    Instant::now() < until,
                    "{} of {n} answers after {GUARD:?}",
                    got.len()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    got
}

#[test]
fn every_request_is_answered_under_its_id_with_its_phases_on_the_harness_clock() {
    let nodes = Nodes::start();
    let leader = nodes.leader();
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    // The nodes' clock origin is the harness's: every offset is 0.
    let offsets = Arc::new(ClockMap::with(HashMap::from([(1, 0), (2, 0), (3, 0)])));
    let port = LoadPort::Remote(nodes.port(
        PipelineOptions {
            prefer: Some(follower),
            ..PipelineOptions::default()
        },
        offsets.clone(),
    ));
    let window = Window {
        epoch: nodes.epoch,
        start: Duration::ZERO,
        end: Duration::from_secs(3600),
    };
    let intended = Arc::new(Intended::new(1 << 12));
    let mut rec = ReplyRecorder::new(window, intended.clone(), Duration::from_secs(1));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let n = 1_000u64;
    for i in 0..n {
        let id = 5_000 + i;
        intended.set(id, nodes.epoch.elapsed().as_nanos() as u64);
        port.offer(Request {
            id,
            command: put(i),
            reply: ReplyTo::Channel(tx.clone()),
        })
        .unwrap_or_else(|_| panic!("request {i} refused"));
    }
    let mut ids = HashSet::new();
    for (a, got) in answers(&mut rx, n as usize) {
        assert_eq!(a.reply, Ok(Output::Done), "{a:?}");
        assert!(a.trace.is_some(), "a committed put carries its trace");
        assert!(ids.insert(a.id), "id {} answered twice", a.id);
        rec.record(&a, got);
    }
    assert_eq!(ids, (5_000..5_000 + n).collect::<HashSet<_>>());
    rec.finish();
    assert_eq!((rec.answered, rec.ok, rec.errors), (n, n, 0));
    assert_eq!(rec.phase_samples_missing, 0, "every phase attributed");
    assert_eq!(rec.latency.total.len(), n);
    for h in &rec.phases {
        assert_eq!(h.total.len(), n);
    }

    // An offset moves the trace: a node 1000 s behind the harness.
    let shift = 1_000_000_000_000i64;
    offsets.set_all(HashMap::from([(1, shift), (2, shift), (3, shift)]));
    for i in 0..10 {
        port.offer(Request {
            id: i,
            command: put(i),
            reply: ReplyTo::Channel(tx.clone()),
        })
        .unwrap_or_else(|_| panic!("request {i} refused"));
    }
    for (a, got) in answers(&mut rx, 10) {
        let t = a.trace.expect("trace");
        let on_node = t.accepted.as_nanos() - shift as u64;
        assert!(
            t.accepted.as_nanos() >= shift as u64
                && on_node <= got.duration_since(nodes.epoch).as_nanos() as u64,
            "{t:?}"
        );
    }

    // A node with no offset yet: no trace, so its phases count as missing.
    offsets.set_all(HashMap::new());
    for i in 0..10 {
        port.blocking_send(Request {
            id: 5_000 + i,
            command: put(i),
            reply: ReplyTo::Channel(tx.clone()),
        })
        .unwrap_or_else(|_| panic!("request {i} refused"));
    }
    let mut rec = ReplyRecorder::new(window, intended, Duration::from_secs(1));
    for (a, got) in answers(&mut rx, 10) {
        assert_eq!(a.reply, Ok(Output::Done));
        assert_eq!(a.trace, None);
        rec.record(&a, got);
    }
    assert_eq!((rec.ok, rec.phase_samples_missing), (10, 10));
    let LoadPort::Remote(p) = &port else {
        unreachable!()
    };
    let stats = p.stats();
    assert_eq!(
        (stats.answered, stats.ok, stats.untraced),
        (n + 20, n + 20, 10)
    );
    assert_eq!(stats.last_node, Some(leader));
    drop(port);
    nodes.shutdown();
}

/// A port to a cluster where nothing listens (plain TCP: refused at once).
fn unreachable_port(max: usize, deadline: Duration) -> RemotePort {
    let addrs: HashMap<NodeId, SocketAddr> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port()).parse().unwrap()))
        .collect();
    RemotePort::start(
        addrs,
        Box::new(|| Ok(Connector::tcp_insecure())),
        PipelineOptions {
            max_outstanding: max,
            deadline,
            prefer: None,
        },
        Arc::new(ClockMap::new()),
    )
    .unwrap()
}

#[test]
fn an_unreachable_cluster_answers_errors_and_a_full_port_refuses() {
    let port = unreachable_port(4, Duration::from_millis(500));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let req = |id| Request {
        id,
        command: put(id),
        reply: ReplyTo::Channel(tx.clone()),
    };
    for id in 0..4 {
        port.offer(req(id))
            .unwrap_or_else(|_| panic!("{id} refused"));
    }
    assert!(port.overloaded(), "4 of 4 outstanding");
    match port.offer(req(4)) {
        Err(Refused::Full(r)) => assert_eq!(r.id, 4, "the request is handed back"),
        other => panic!("expected Full, got {:?}", other.map_err(|_| "refused")),
    }
    let mut ids = HashSet::new();
    for (a, _) in answers(&mut rx, 4) {
        // Outcome unknown, never a silent hang.
        assert_eq!(a.reply, Err(ClientError::LeadershipLost), "{a:?}");
        ids.insert(a.id);
    }
    assert_eq!(ids, (0..4).collect());
    let stats = port.stats();
    assert_eq!(stats.unreachable, 4);
    assert!(stats.last_unreachable.is_some());
    assert!(!port.overloaded());
}

#[test]
fn a_stopped_port_answers_what_waits_and_refuses_the_rest() {
    let port = unreachable_port(100, Duration::from_secs(60));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let req = |id| Request {
        id,
        command: put(id),
        reply: ReplyTo::Channel(tx.clone()),
    };
    for id in 0..3 {
        port.offer(req(id))
            .unwrap_or_else(|_| panic!("{id} refused"));
    }
    let clone = port.clone();
    port.stop();
    for (a, _) in answers(&mut rx, 3) {
        assert_eq!(a.reply, Err(ClientError::ShuttingDown));
    }
    assert!(matches!(clone.offer(req(9)), Err(Refused::Closed(_))));
    assert!(clone.blocking_send(req(10)).is_err());
}
