//! The node side of the client protocol (`ClientListener`) over real loopback sockets:
//! a bad frame ends only the connection that sent it, and pipelined requests are each
//! answered under their own id.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use raftbench::kv::{Command, Output};
use raftbench::raft::{Config, MemStore, Membership, Role};
use raftbench::remote::{self, ClientFrame, ClientListener};
use raftbench::server::{Server, ServerParts};
use raftbench::shutdown::ShutdownController;
use raftbench::transport::{MemMode, MemNetwork};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::{closed_by_peer, guard};

/// A one-node cluster (it elects itself) behind a client listener; returns its address.
async fn single_node() -> (std::net::SocketAddr, ShutdownController) {
    let net = MemNetwork::new(MemMode::Move);
    let (t, inbox) = net.join(1, 1024);
    let cfg = Config {
        election_timeout: Duration::from_millis(50),
        heartbeat_interval: Duration::from_millis(10),
        ..Config::default()
    };
    let (server, handle) = Server::new(ServerParts {
        members: Membership::new(1, vec![1]),
        raft: cfg,
        seed: 1,
        epoch: std::time::Instant::now(),
        store: MemStore::new(),
        transport: std::sync::Arc::new(t),
        inbox,
        observer: None,
    })
    .unwrap();
    let ctl = ShutdownController::new();
    tokio::spawn(server.run(ctl.subscribe()));
    let mut st = handle.watch_status();
    guard("leadership", st.wait_for(|s| s.role == Role::Leader))
        .await
        .unwrap();
    let listener = ClientListener::bind("127.0.0.1:0".parse().unwrap(), handle)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(listener.run(ctl.subscribe()));
    (addr, ctl)
}

fn put(k: &str, v: &str) -> Bytes {
    Command::Put {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
    }
    .encode()
}

fn get(k: &str) -> Bytes {
    Command::Get {
        key: Bytes::copy_from_slice(k.as_bytes()),
    }
    .encode()
}

/// Reads frames until `n` have arrived; panics if the connection ends first.
async fn read_frames(s: &mut TcpStream, buf: &mut BytesMut, n: usize) -> Vec<ClientFrame> {
    let mut out = Vec::new();
    while out.len() < n {
        while let Some(f) = remote::try_decode(buf).unwrap() {
            out.push(f);
        }
        if out.len() >= n {
            break;
        }
        let read = guard("frames", s.read_buf(buf)).await.unwrap();
        assert!(
            read > 0,
            "connection closed after {} of {n} frames",
            out.len()
        );
    }
    assert_eq!(out.len(), n, "no more frames than requests");
    out
}

/// One request on `s`, answered under its id.
async fn round_trip(s: &mut TcpStream, id: u64, cmd: Bytes, want: Output) {
    let mut out = BytesMut::new();
    remote::encode_request(id, &cmd, &mut out);
    s.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let got = read_frames(s, &mut buf, 1).await;
    assert_eq!(got.len(), 1);
    assert!(
        matches!(&got[0], ClientFrame::Reply(i, Ok(o), Some(_)) if *i == id && *o == want),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_closes_only_its_own_connection() {
    let (addr, ctl) = single_node().await;
    let mut good = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut good, 1, put("a", "1"), Output::Done).await;

    let mut bad: Vec<(&str, BytesMut)> = Vec::new();
    let mut b = BytesMut::new();
    b.put_u32(u32::MAX); // oversized length prefix
    bad.push(("oversized", b));
    let mut b = BytesMut::new();
    b.put_u32(2);
    b.put_slice(&[remote::VERSION, 1]); // shorter than any header
    bad.push(("truncated", b));
    let mut b = BytesMut::new();
    remote::encode_request(5, &put("x", "y"), &mut b);
    b[4] = remote::VERSION + 1;
    bad.push(("wrong version", b));
    let mut b = BytesMut::new();
    remote::encode_reply(5, &Ok(Output::Done), &mut b); // a node's frame, from a client
    bad.push(("wrong type: reply", b));
    let mut b = BytesMut::new();
    remote::encode_status(5, &Default::default(), &mut b);
    bad.push(("wrong type: status", b));
    let mut b = BytesMut::new();
    remote::encode_request(5, &put("x", "y"), &mut b);
    b[5] = 99;
    bad.push(("unknown type", b));

    for (i, (what, frame)) in bad.into_iter().enumerate() {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&frame).await.unwrap();
        closed_by_peer(&mut s).await;
        // The well-behaved connection opened before it still works.
        let i = i as u64;
        round_trip(
            &mut good,
            10 + i,
            put(&format!("after-{i}"), what),
            Output::Done,
        )
        .await;
    }
    round_trip(
        &mut good,
        99,
        get("after-0"),
        Output::Value(Some(Bytes::from_static(b"oversized"))),
    )
    .await;
    // Nothing a bad connection sent was applied.
    round_trip(&mut good, 100, get("x"), Output::Value(None)).await;
    ctl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_under_their_own_ids() {
    let (addr, ctl) = single_node().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let n = 64u64;
    // Ids that are neither sequential nor ascending, all written before any reply is read.
    let id = |i: u64| (i * 7919) % 1009 + 1_000_000;
    let mut out = BytesMut::new();
    for i in 0..n {
        remote::encode_request(id(i), &put(&format!("k{i}"), &format!("v{i}")), &mut out);
    }
    remote::encode_status_request(42, &mut out);
    s.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let mut answered: HashMap<u64, ClientFrame> = HashMap::new();
    for f in read_frames(&mut s, &mut buf, n as usize + 1).await {
        let fid = match &f {
            ClientFrame::Reply(fid, ..) | ClientFrame::Status(fid, _) => *fid,
            other => panic!("a node sent {other:?}"),
        };
        assert!(answered.insert(fid, f).is_none(), "id {fid} answered twice");
    }
    for i in 0..n {
        assert!(
            matches!(&answered[&id(i)], ClientFrame::Reply(fid, Ok(Output::Done), Some(_)) if *fid == id(i)),
            "{:?}",
            answered[&id(i)]
        );
    }
    assert!(matches!(&answered[&42], ClientFrame::Status(42, st) if st.id == 1));

    // Pipelined reads: each id gets the value of its own key.
    let mut out = BytesMut::new();
    for i in (0..n).rev() {
        remote::encode_request(id(i), &get(&format!("k{i}")), &mut out);
    }
    s.write_all(&out).await.unwrap();
    let mut answered = HashMap::new();
    for f in read_frames(&mut s, &mut buf, n as usize).await {
        let ClientFrame::Reply(fid, r, _) = f else {
            panic!("not a reply: {f:?}")
        };
        assert!(answered.insert(fid, r).is_none(), "id {fid} answered twice");
    }
    for i in 0..n {
        assert_eq!(
            answered[&id(i)],
            Ok(Output::Value(Some(Bytes::from(format!("v{i}"))))),
            "request id {} (key k{i})",
            id(i)
        );
    }
    ctl.shutdown().await;
}
