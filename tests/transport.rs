//! Behaviour of the QUIC, TCP and memory transports on 127.0.0.1.
//!
//! No assertion depends on timing. Waits are bounded by [`GUARD`] only so that a bug
//! fails the test instead of hanging it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use raftbench::codec;
use raftbench::raft::message::{AppendEntries, AppendKind, Message, MessageBody};
use raftbench::raft::types::{Entry, EntryKind, NodeId};
use raftbench::tls::{self, NodeIdentity};
use raftbench::transport::{
    wait_connected, Inbound, MemMode, MemNetwork, QuicSettings, QuicTransport, StreamMode,
    TcpTransport, Transport, TransportSettings,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod support;
use support::{closed_by_peer, guard};

/// Upper bound on any wait; reaching it means the behaviour under test is broken.
const PER_PAIR: u64 = 1_000;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn settings() -> TransportSettings {
    TransportSettings {
        handshake_timeout_ms: 2_000,
        ..TransportSettings::default()
    }
}

/// An AppendEntries from `from` to `to` whose `prev_log_index` is the sequence number.
fn msg(from: NodeId, to: NodeId, seq: u64) -> Message {
    Message {
        from,
        to,
        term: 1,
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: seq,
            prev_log_term: 1,
            entries: vec![Entry {
                term: 1,
                index: seq + 1,
                kind: EntryKind::Normal,
                data: Bytes::from(seq.to_be_bytes().repeat(8)),
            }],
            leader_commit: 0,
            compact_floor: 0,
            kind: AppendKind::Entries,
        }),
    }
}

fn seq_of(m: &Message) -> u64 {
    match &m.body {
        MessageBody::AppendEntries(ae) => {
            assert_eq!(
                ae.entries[0].data,
                Bytes::from(ae.prev_log_index.to_be_bytes().repeat(8))
            );
            ae.prev_log_index
        }
        other => panic!("unexpected body {other:?}"),
    }
}

type Node = (Box<dyn Transport>, Inbound);

async fn wait_all_connected(nodes: &[Node]) {
    for (t, _) in nodes {
        for (p, _) in nodes {
            let peer = p.local_id();
            if peer != t.local_id() {
                guard("connection", wait_connected(t.as_ref(), peer)).await;
            }
        }
    }
}

/// Every node sends `PER_PAIR` messages to every other node, then an end marker
/// (sequence number `PER_PAIR`); every node reads until each sender's marker and checks
/// that it received every message exactly once, in order per sender if `ordered`.
///
/// Reading up to the marker rather than counting to `PER_PAIR` is what lets a duplicate
/// show: it is read as one message too many instead of being left in the queue.
async fn exchange(nodes: &mut [Node], ordered: bool) {
    wait_all_connected(nodes).await;
    let ids: Vec<NodeId> = nodes.iter().map(|(t, _)| t.local_id()).collect();
    for seq in 0..=PER_PAIR {
        for (t, _) in nodes.iter() {
            for &to in &ids {
                if to != t.local_id() {
                    t.send(msg(t.local_id(), to, seq));
                }
            }
        }
    }
    for (t, inbound) in nodes.iter_mut() {
        let me = t.local_id();
        let mut got: HashMap<NodeId, Vec<u64>> = HashMap::new();
        let mut markers = 0;
        let mut received = 0;
        let expected = PER_PAIR * (ids.len() as u64 - 1);
        // Bounded: every message beyond the expected ones fails the check below anyway.
        // Unordered delivery may bring a marker early, hence the count as well.
        for _ in 0..2 * expected {
            if markers == ids.len() - 1 && received >= expected {
                break;
            }
            let (from, m) = guard("messages", inbound.recv())
                .await
                .expect("inbound open");
            assert_eq!(from, m.from);
            assert_eq!(m.to, me);
            match seq_of(&m) {
                PER_PAIR => markers += 1,
                seq => {
                    received += 1;
                    got.entry(from).or_default().push(seq);
                }
            }
        }
        assert_eq!(markers, ids.len() - 1, "every sender's end marker arrived");
        for &from in ids.iter().filter(|&&i| i != me) {
            let mut seqs = got.remove(&from).unwrap_or_default();
            if !ordered {
                seqs.sort_unstable();
            }
            assert_eq!(
                seqs,
                (0..PER_PAIR).collect::<Vec<_>>(),
                "{from} -> {me}: each message once{}",
                if ordered { ", in order" } else { "" }
            );
        }
        assert!(inbound.try_recv().is_err(), "nothing after the markers");
    }
    for (t, _) in nodes.iter() {
        assert_eq!(t.stats().messages_dropped, 0);
    }
}

async fn tcp_cluster(ids: &[NodeId]) -> Vec<Node> {
    let mut bound = Vec::new();
    for &id in ids {
        bound.push(TcpTransport::bind(id, local(), settings()).await.unwrap());
    }
    let addrs: HashMap<NodeId, SocketAddr> = ids
        .iter()
        .zip(&bound)
        .map(|(&id, b)| (id, b.local_addr()))
        .collect();
    bound
        .into_iter()
        .map(|b| {
            let (t, i) = b.start(addrs.clone());
            (Box::new(t) as Box<dyn Transport>, i)
        })
        .collect()
}

fn quic_cluster(identities: &[NodeIdentity], quic: &QuicSettings) -> Vec<Node> {
    let bound: Vec<_> = identities
        .iter()
        .map(|id| QuicTransport::bind(id, local(), quic, settings()).unwrap())
        .collect();
    let addrs: HashMap<NodeId, SocketAddr> = identities
        .iter()
        .zip(&bound)
        .map(|(id, b)| (id.id, b.local_addr()))
        .collect();
    bound
        .into_iter()
        .map(|b| {
            let (t, i) = b.start(addrs.clone());
            (Box::new(t) as Box<dyn Transport>, i)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_three_nodes_exchange_in_order() {
    init_tracing();
    let mut nodes = tcp_cluster(&[1, 2, 3]).await;
    exchange(&mut nodes, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_three_nodes_exchange_in_order() {
    init_tracing();
    let (_, ids) = tls::generate_cluster(&[1, 2, 3]).unwrap();
    let mut nodes = quic_cluster(&ids, &QuicSettings::default());
    exchange(&mut nodes, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_with_identities_written_to_disk() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    tls::write_cluster(dir.path(), 2).unwrap();
    let ids: Vec<NodeIdentity> = (1..=2)
        .map(|id| tls::load_identity(dir.path(), id).unwrap())
        .collect();
    let mut nodes = quic_cluster(&ids, &QuicSettings::default());
    exchange(&mut nodes, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_stream_per_batch_delivers_everything() {
    init_tracing();
    let (_, ids) = tls::generate_cluster(&[1, 2, 3]).unwrap();
    let quic = QuicSettings {
        stream_mode: StreamMode::PerBatch,
        ..QuicSettings::default()
    };
    let mut nodes = quic_cluster(&ids, &quic);
    exchange(&mut nodes, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mem_three_nodes_exchange_in_order() {
    for mode in [MemMode::Move, MemMode::Encode] {
        let net = MemNetwork::new(mode);
        let mut nodes: Vec<Node> = (1..=3)
            .map(|id| {
                let (t, i) = net.join(id, 10_000);
                (Box::new(t) as Box<dyn Transport>, i)
            })
            .collect();
        exchange(&mut nodes, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mem_drops_for_absent_nodes_and_restarted_nodes_rejoin() {
    let net = MemNetwork::new(MemMode::Move);
    let (a, _ai) = net.join(1, 16);
    let (b, bi) = net.join(2, 16);
    a.send(msg(1, 3, 0));
    assert_eq!(a.stats().messages_dropped, 1);
    drop((b, bi));
    a.send(msg(1, 2, 0));
    assert_eq!(a.stats().messages_dropped, 2);
    let (_b, mut bi) = net.join(2, 16);
    a.send(msg(1, 2, 7));
    let (from, m) = bi.recv().await.unwrap();
    assert_eq!((from, seq_of(&m)), (1, 7));
}

/// Keeps node 1 and node 2 talking; returns once `n` more messages made it 1 -> 2.
async fn still_talking(a: &dyn Transport, b_in: &mut Inbound, n: u64) {
    for seq in 0..n {
        a.send(msg(a.local_id(), 2, 10_000 + seq));
    }
    for seq in 0..n {
        let (_, m) = guard("healthy peer", b_in.recv()).await.unwrap();
        assert_eq!(seq_of(&m), 10_000 + seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_bad_peers_lose_only_their_own_connection() {
    init_tracing();
    // Node 3 is a known peer that is really this test speaking raw bytes.
    let b1 = TcpTransport::bind(1, local(), settings()).await.unwrap();
    let b2 = TcpTransport::bind(2, local(), settings()).await.unwrap();
    let a2 = b2.local_addr();
    let nowhere = std::net::TcpListener::bind(local())
        .unwrap()
        .local_addr()
        .unwrap();
    let peers: HashMap<NodeId, SocketAddr> = [(1, b1.local_addr()), (2, a2), (3, nowhere)]
        .into_iter()
        .collect();
    let (t1, _i1) = b1.start(peers.clone());
    let (t2, mut i2) = b2.start(peers);
    guard("connection", wait_connected(&t1, 2)).await;
    still_talking(&t1, &mut i2, 10).await;

    // Garbage instead of a Hello: refused.
    let mut s = TcpStream::connect(a2).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    closed_by_peer(&mut s).await;

    // A Hello from a node that is not a peer: refused.
    let mut s = TcpStream::connect(a2).await.unwrap();
    let mut hello = BytesMut::new();
    codec::encode_hello(9, &mut hello);
    s.write_all(&hello).await.unwrap();
    closed_by_peer(&mut s).await;
    still_talking(&t1, &mut i2, 10).await;

    // A proper Hello, then a length prefix far beyond the maximum: closed.
    let mut s = TcpStream::connect(a2).await.unwrap();
    let mut out = BytesMut::new();
    codec::encode_hello(3, &mut out);
    out.put_u32(u32::MAX);
    s.write_all(&out).await.unwrap();
    closed_by_peer(&mut s).await;
    still_talking(&t1, &mut i2, 10).await;

    // A proper Hello, then a frame claiming to come from node 1: closed.
    let mut s = TcpStream::connect(a2).await.unwrap();
    let mut out = BytesMut::new();
    codec::encode_hello(3, &mut out);
    codec::encode(&msg(1, 2, 99), &mut out);
    s.write_all(&out).await.unwrap();
    closed_by_peer(&mut s).await;

    still_talking(&t1, &mut i2, 100).await;
    let st = t2.stats();
    assert!(st.connections_rejected >= 2, "{st:?}");
    assert!(st.connections_closed_on_error >= 2, "{st:?}");
    // Nothing the bad peers sent reached the consumer.
    assert!(i2.try_recv().is_err());
}

/// Nodes 1 and 2 over QUIC, connected and talking, with node 3 a known peer at an address
/// nobody answers from, for the test to play.
struct QuicPair {
    t1: QuicTransport,
    _i1: Inbound,
    t2: QuicTransport,
    i2: Inbound,
    a2: SocketAddr,
    _nowhere: std::net::UdpSocket,
}

async fn quic_pair_with_peer_3(ids: &[NodeIdentity]) -> QuicPair {
    let quic = QuicSettings::default();
    let b1 = QuicTransport::bind(&ids[0], local(), &quic, settings()).unwrap();
    let b2 = QuicTransport::bind(&ids[1], local(), &quic, settings()).unwrap();
    let a2 = b2.local_addr();
    let nowhere = std::net::UdpSocket::bind(local()).unwrap();
    let peers: HashMap<NodeId, SocketAddr> = [
        (1, b1.local_addr()),
        (2, a2),
        (3, nowhere.local_addr().unwrap()),
    ]
    .into_iter()
    .collect();
    let (t1, i1) = b1.start(peers.clone());
    let (t2, mut i2) = b2.start(peers);
    guard("connection", wait_connected(&t1, 2)).await;
    still_talking(&t1, &mut i2, 10).await;
    QuicPair {
        t1,
        _i1: i1,
        t2,
        i2,
        a2,
        _nowhere: nowhere,
    }
}

/// A raw quinn client endpoint speaking as `id`.
fn raw_quic_client(id: &NodeIdentity) -> quinn::Endpoint {
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls::client_config(id).unwrap()).unwrap();
    let mut ep = quinn::Endpoint::client(local()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    ep
}

/// Connects a raw client to node `to` at `addr` and returns why the connection closed.
async fn close_reason(
    ep: &quinn::Endpoint,
    addr: SocketAddr,
    to: NodeId,
) -> quinn::ConnectionError {
    match guard("connect", ep.connect(addr, &tls::server_name(to)).unwrap()).await {
        // TLS 1.3: the client may finish its handshake before the server refuses it.
        Ok(conn) => guard("close", conn.closed()).await,
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_bad_frames_close_only_that_connection() {
    init_tracing();
    // Node 3 is a known peer played by this test; node 9 has a cluster certificate
    // but is not a peer of anyone.
    let (_, ids) = tls::generate_cluster(&[1, 2, 3, 9]).unwrap();
    let QuicPair {
        t1, t2, mut i2, a2, ..
    } = quic_pair_with_peer_3(&ids).await;

    // Valid certificate, but not a peer: closed with UNKNOWN_PEER.
    let ep9 = raw_quic_client(&ids[3]);
    let reason = close_reason(&ep9, a2, 2).await;
    assert!(
        matches!(&reason, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == 3u32.into()),
        "{reason:?}"
    );

    // Node 3: proper Hello, then an oversized length prefix.
    let ep3 = raw_quic_client(&ids[2]);
    let conn = ep3
        .connect(a2, &tls::server_name(2))
        .unwrap()
        .await
        .unwrap();
    let mut send = conn.open_uni().await.unwrap();
    let mut out = BytesMut::new();
    codec::encode_hello(3, &mut out);
    send.write_all(&out).await.unwrap();
    let mut recv = guard("hello", conn.accept_uni()).await.unwrap();
    let mut hello = vec![0u8; 14];
    recv.read_exact(&mut hello).await.unwrap();
    assert_eq!(
        codec::decode_frame(Bytes::from(hello)).unwrap(),
        codec::Frame::Hello(2)
    );
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let reason = guard("close", conn.closed()).await;
    assert!(
        matches!(&reason, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == 1u32.into()),
        "{reason:?}"
    );

    // Node 3 again: garbage instead of a Hello.
    let conn = ep3
        .connect(a2, &tls::server_name(2))
        .unwrap()
        .await
        .unwrap();
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8])
        .await
        .unwrap();
    let reason = guard("close", conn.closed()).await;
    assert!(
        matches!(reason, quinn::ConnectionError::ApplicationClosed(_)),
        "{reason:?}"
    );

    still_talking(&t1, &mut i2, 100).await;
    let st = t2.stats();
    assert!(st.connections_rejected >= 2, "{st:?}");
    assert!(st.connections_closed_on_error >= 1, "{st:?}");
    assert!(i2.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_hello_naming_another_node_than_the_certificate_is_refused() {
    init_tracing();
    // Node 3 is a known peer played by this test. It presents its own certificate but
    // says Hello as node 1: were the Hello believed, node 2 would replace its real
    // connection to node 1 with this one.
    let (_, ids) = tls::generate_cluster(&[1, 2, 3]).unwrap();
    let QuicPair {
        t1, t2, mut i2, a2, ..
    } = quic_pair_with_peer_3(&ids).await;
    let before = t2.stats();

    let ep3 = raw_quic_client(&ids[2]);
    let conn = ep3
        .connect(a2, &tls::server_name(2))
        .unwrap()
        .await
        .unwrap();
    let mut send = conn.open_uni().await.unwrap();
    let mut out = BytesMut::new();
    codec::encode_hello(1, &mut out);
    // A frame as node 1 too, which must not reach node 2's consumer.
    codec::encode(&msg(1, 2, 77), &mut out);
    send.write_all(&out).await.unwrap();
    let reason = guard("close", conn.closed()).await;
    assert!(
        matches!(&reason, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == 1u32.into()),
        "closed as a protocol error: {reason:?}"
    );

    guard("rejection counted", async {
        while t2.stats().connections_rejected == before.connections_rejected {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    still_talking(&t1, &mut i2, 100).await;
    let after = t2.stats();
    assert_eq!(
        after.connections_rejected,
        before.connections_rejected + 1,
        "{after:?}"
    );
    assert_eq!(
        after.connections_established, before.connections_established,
        "the impostor's connection was never registered: {after:?}"
    );
    assert!(i2.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_dialer_refuses_a_server_whose_certificate_names_another_node() {
    init_tracing();
    // Node 1's cluster file says node 2 is at an address where node 3 (a cluster member
    // with a valid certificate, which would accept node 1) really listens.
    let (_, ids) = tls::generate_cluster(&[1, 2, 3]).unwrap();
    let quic = QuicSettings::default();
    let b1 = QuicTransport::bind(&ids[0], local(), &quic, settings()).unwrap();
    let b3 = QuicTransport::bind(&ids[2], local(), &quic, settings()).unwrap();
    let a1 = b1.local_addr();
    let a3 = b3.local_addr();
    let (t1, mut i1) = b1.start(HashMap::from([(1, a1), (2, a3)]));
    let (t3, mut i3) = b3.start(HashMap::from([(1, a1), (3, a3)]));
    // Node 1 (the lower id) dials; node 3 sees each attempt fail its handshake.
    guard("a refused dial", async {
        while t3.stats().connections_rejected == 0 {
            t1.send(msg(1, 2, 0));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(!*t1.watch_connected(2).unwrap().borrow());
    assert!(!*t3.watch_connected(1).unwrap().borrow());
    assert_eq!(t1.stats().connections_established, 0);
    assert_eq!(t3.stats().connections_established, 0);
    assert!(
        t1.stats().messages_dropped > 0,
        "nothing was sent to node 3"
    );
    assert!(i3.try_recv().is_err());
    assert!(i1.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_certificate_from_another_ca_is_refused() {
    init_tracing();
    let (_, ids) = tls::generate_cluster(&[1, 2]).unwrap();
    let (_, foreign) = tls::generate_cluster(&[1, 2]).unwrap();
    // Impostors: certificates for the right node ids from another CA, trusting the real
    // CA so that only the other side's check can refuse them.
    let impostor = |i: usize| NodeIdentity {
        ca_cert: ids[i].ca_cert.clone(),
        ..foreign[i].clone()
    };
    let quic = QuicSettings::default();

    // Impostor node 1 dials real node 2: node 2 refuses the client certificate.
    let b1 = QuicTransport::bind(&impostor(0), local(), &quic, settings()).unwrap();
    let b2 = QuicTransport::bind(&ids[1], local(), &quic, settings()).unwrap();
    let peers: HashMap<NodeId, SocketAddr> = [(1, b1.local_addr()), (2, b2.local_addr())]
        .into_iter()
        .collect();
    let (t1, _i1) = b1.start(peers.clone());
    let (t2, mut i2) = b2.start(peers);
    guard("rejection", async {
        while t2.stats().connections_rejected == 0 {
            t1.send(msg(1, 2, 0));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(t2.stats().connections_established, 0);
    assert!(!*t1.watch_connected(2).unwrap().borrow());
    assert!(i2.try_recv().is_err());
    drop((t1, t2));

    // Real node 1 dials impostor node 2: node 1 refuses the server certificate, which
    // the impostor sees as a failed handshake.
    let b1 = QuicTransport::bind(&ids[0], local(), &quic, settings()).unwrap();
    let b2 = QuicTransport::bind(&impostor(1), local(), &quic, settings()).unwrap();
    let peers: HashMap<NodeId, SocketAddr> = [(1, b1.local_addr()), (2, b2.local_addr())]
        .into_iter()
        .collect();
    let (t1, mut i1) = b1.start(peers.clone());
    let (t2, _i2) = b2.start(peers);
    guard("rejection", async {
        while t2.stats().connections_rejected == 0 {
            t2.send(msg(2, 1, 0));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(t1.stats().connections_established, 0);
    assert!(!*t1.watch_connected(2).unwrap().borrow());
    assert!(i1.try_recv().is_err());

    // And a raw client with a foreign certificate: the server's TLS closes the
    // connection (a transport-level close, not one from our application code).
    let b3 = QuicTransport::bind(&ids[1], local(), &quic, settings()).unwrap();
    let a3 = b3.local_addr();
    let (t3, mut i3) = b3.start(HashMap::from([(1, local())]));
    let ep = raw_quic_client(&impostor(0));
    let reason = close_reason(&ep, a3, 2).await;
    assert!(
        matches!(reason, quinn::ConnectionError::ConnectionClosed(_)),
        "{reason:?}"
    );
    guard("rejection", async {
        while t3.stats().connections_rejected == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(t3.stats().connections_established, 0);
    assert!(i3.try_recv().is_err());
}

/// Waits until `survivor` has noticed that its connection to `peer` is gone, so that
/// what it sends next goes to the restarted peer rather than into the dead connection.
async fn survivor_notices(survivor: &dyn Transport, peer: NodeId) {
    let mut up = survivor.watch_connected(peer).unwrap();
    guard("disconnect noticed", up.wait_for(|up| !*up))
        .await
        .unwrap();
}

async fn restart_tcp(id: NodeId, addr: SocketAddr, peers: &HashMap<NodeId, SocketAddr>) -> Node {
    let b = guard("rebind", async {
        loop {
            match TcpTransport::bind(id, addr, settings()).await {
                Ok(b) => return b,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    let (t, i) = b.start(peers.clone());
    (Box::new(t), i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_reconnects_after_restart() {
    init_tracing();
    let b1 = TcpTransport::bind(1, local(), settings()).await.unwrap();
    let b2 = TcpTransport::bind(2, local(), settings()).await.unwrap();
    let peers: HashMap<NodeId, SocketAddr> = [(1, b1.local_addr()), (2, b2.local_addr())]
        .into_iter()
        .collect();
    let (t1, i1) = b1.start(peers.clone());
    let (t2, i2) = b2.start(peers.clone());
    let mut nodes: Vec<Node> = vec![(Box::new(t1), i1), (Box::new(t2), i2)];
    exchange(&mut nodes, true).await;

    // Restart the accepting side (2), then the dialing side (1).
    for (idx, id) in [(1usize, 2), (0, 1)] {
        let (t, _) = nodes.remove(idx);
        drop(t);
        survivor_notices(nodes[0].0.as_ref(), id).await;
        let node = restart_tcp(id, peers[&id], &peers).await;
        nodes.insert(idx, node);
        exchange(&mut nodes, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_reconnects_after_restart() {
    init_tracing();
    let (_, ids) = tls::generate_cluster(&[1, 2]).unwrap();
    // A dropped endpoint keeps its port until its connections have drained (3 PTO).
    // Dials refused while the peer was down never sampled the RTT, so their PTO
    // derives from the initial RTT: a LAN-sized one keeps the rebinding short.
    let quic = QuicSettings {
        initial_rtt_us: 10_000,
        ..QuicSettings::default()
    };
    let b1 = QuicTransport::bind(&ids[0], local(), &quic, settings()).unwrap();
    let b2 = QuicTransport::bind(&ids[1], local(), &quic, settings()).unwrap();
    let peers: HashMap<NodeId, SocketAddr> = [(1, b1.local_addr()), (2, b2.local_addr())]
        .into_iter()
        .collect();
    let (t1, i1) = b1.start(peers.clone());
    let (t2, i2) = b2.start(peers.clone());
    let mut dyn_nodes: Vec<Node> = vec![(Box::new(t1), i1), (Box::new(t2), i2)];
    exchange(&mut dyn_nodes, true).await;

    // Restart the accepting side (2), then the dialing side (1), on the same address.
    for (idx, id) in [(1usize, 2), (0, 1)] {
        let (t, _) = dyn_nodes.remove(idx);
        drop(t);
        survivor_notices(dyn_nodes[0].0.as_ref(), id).await;
        let ident = &ids[idx];
        let b = guard("rebind", async {
            loop {
                match QuicTransport::bind(ident, peers[&id], &quic, settings()) {
                    Ok(b) => return b,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await;
        let (t, i) = b.start(peers.clone());
        dyn_nodes.insert(idx, (Box::new(t), i));
        exchange(&mut dyn_nodes, true).await;
    }
}
