//! One server driven against scripted peers: the test plays nodes 2 and 3 by hand over
//! the in-memory transport, so leadership can be taken away at a chosen instant.

use std::time::Duration;

use raftbench::kv::Command;
use raftbench::raft::{
    AppendEntries, AppendKind, Config, MemStore, Membership, Message, MessageBody, NodeId,
    RequestVoteResponse,
};
use raftbench::server::{ClientError, Server, ServerParts};
use raftbench::shutdown::ShutdownController;
use raftbench::transport::{MemMode, MemNetwork, Transport};

mod support;
use support::next_message;

#[tokio::test]
async fn losing_leadership_fails_requests_in_flight_and_then_redirects() {
    let net = MemNetwork::new(MemMode::Encode);
    let (t1, inbox1) = net.join(1, 1024);
    let (peer2, mut inbox2) = net.join(2, 1024);
    let (_peer3, _inbox3) = net.join(3, 1024);
    let cfg = Config {
        // Generous, so that the vote script usually answers within one timeout; the loop
        // below copes when it does not.
        election_timeout: Duration::from_millis(200),
        heartbeat_interval: Duration::from_millis(20),
        check_quorum: false,
        // The script answers a real vote request; a pre-vote round would only add a step.
        pre_vote: false,
        ..Config::default()
    };
    let (server, handle) = Server::new(ServerParts {
        members: Membership::new(1, vec![1, 2, 3]),
        raft: cfg,
        seed: 7,
        epoch: std::time::Instant::now(),
        store: MemStore::new(),
        transport: std::sync::Arc::new(t1),
        inbox: inbox1,
        observer: None,
    })
    .unwrap();
    let ctl = ShutdownController::new();
    let task = tokio::spawn(server.run(ctl.subscribe()));

    // Node 1 times out and asks for votes; node 2 grants them: a majority of three. On a
    // busy machine the grant may reach node 1 after its next timeout, when it already
    // asks again in a later term, so every request is answered until node 1 leads (its
    // first AppendEntries carries the no-op of its term).
    let mut votes = 0;
    let term = loop {
        let m = next_message(&mut inbox2, |m| {
            matches!(m.body, MessageBody::RequestVote(_)) || m.is_append()
        })
        .await;
        if m.is_append() {
            break m.term;
        }
        votes += 1;
        assert!(
            votes < 1000,
            "node 1 keeps asking for votes but never leads"
        );
        peer2.send(Message {
            from: 2,
            to: 1,
            term: m.term,
            body: MessageBody::RequestVoteResponse(RequestVoteResponse {
                granted: true,
                pre_vote: false,
            }),
        });
    };

    // A client request is proposed; nobody acknowledges it.
    let put = Command::Put {
        key: "k".into(),
        value: "v".into(),
    };
    let h = handle.clone();
    let pending = tokio::spawn(async move { h.submit(&put).await });
    let carried = next_message(&mut inbox2, |m| match &m.body {
        MessageBody::AppendEntries(ae) => ae.entries.iter().any(|e| e.data.len() > 5),
        _ => false,
    })
    .await;
    let MessageBody::AppendEntries(ae) = &carried.body else {
        unreachable!()
    };
    let prev = (ae.prev_log_index, ae.prev_log_term);

    // Node 2 leads a later term: node 1 must step down and tell the client.
    peer2.send(Message {
        from: 2,
        to: 1,
        term: term + 1,
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: prev.0,
            prev_log_term: prev.1,
            entries: Vec::new(),
            leader_commit: 0,
            compact_floor: 0,
            kind: AppendKind::Heartbeat,
        }),
    });
    let r = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the request is answered")
        .unwrap();
    assert_eq!(
        r,
        Err(ClientError::LeadershipLost),
        "in-flight request fails, retryably"
    );

    // A new request is redirected to the leader node 1 now knows.
    let r = handle.submit(&Command::Get { key: "k".into() }).await;
    assert_eq!(
        r,
        Err(ClientError::NotLeader {
            leader: Some(2 as NodeId)
        })
    );

    ctl.shutdown().await;
    let kv = task.await.unwrap();
    assert!(
        kv.is_empty(),
        "nothing was committed, so nothing was applied"
    );
}
