//! A leader that cannot commit takes no more than its uncommitted limit: senders that
//! claim room ([`ServerHandle::claim_room`]) are held back before they send, and requests
//! from senders that do not are refused by the leader itself, each answered at once.

use std::time::Duration;

use bytes::Bytes;
use raftbench::cluster::{ClusterSpec, LocalCluster};
use raftbench::kv::Command;
use raftbench::raft::Role;
use raftbench::server::{Answer, ClientError, ReplyTo, Request, ServerHandle};
use raftbench::transport::TransportKind;

/// Upper bound on any wait; reaching it means the behaviour under test is broken.
const GUARD: Duration = Duration::from_secs(20);

const LIMIT: usize = 4;

fn put(i: u64, answers: &tokio::sync::mpsc::UnboundedSender<Answer>) -> Request {
    Request {
        id: i,
        command: Command::Put {
            key: Bytes::from(format!("k{i}")),
            value: Bytes::from_static(b"v"),
        }
        .encode(),
        reply: ReplyTo::Channel(answers.clone()),
    }
}

/// A 3-node cluster led by node 1 whose followers are then killed: the leader stays (no
/// quorum check) and can commit nothing more.
fn leader_alone() -> (LocalCluster, tokio::runtime::Runtime, ServerHandle) {
    let mut spec = ClusterSpec::new(3, TransportKind::Mem);
    spec.raft.max_uncommitted_entries = LIMIT;
    // The leader must keep leading alone: no stepping down for lack of a quorum.
    spec.raft.check_quorum = false;
    spec.raft.election_timeout = Duration::from_secs(1);
    spec.raft.heartbeat_interval = Duration::from_millis(20);
    spec.preferred_leader = Some(1);
    spec.restartable = true;
    let mut cluster = LocalCluster::start(spec).expect("cluster starts");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let leader = cluster.handles()[0].clone();
    rt.block_on(async {
        let mut st = leader.watch_status();
        tokio::time::timeout(GUARD, st.wait_for(|s| s.role == Role::Leader))
            .await
            .expect("node 1 leads")
            .unwrap();
        // One round after leading, the leader has published its room.
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    cluster.kill(2).unwrap();
    cluster.kill(3).unwrap();
    (cluster, rt, leader)
}

#[test]
fn a_leader_without_its_followers_takes_its_limit_and_refuses_the_rest() {
    let (cluster, rt, leader) = leader_alone();

    // 50 requests offered straight to the leader's queue, with no claim: the leader
    // appends LIMIT of them (they never commit) and answers every other one at once.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let offered = 50u64;
    for i in 0..offered {
        leader.offer(put(i, &tx)).expect("the queue has room");
    }
    let refused = rt.block_on(async {
        let mut refused = 0u64;
        while refused < offered - LIMIT as u64 {
            let a = tokio::time::timeout(GUARD, rx.recv())
                .await
                .expect("refusals come at once")
                .expect("channel open");
            assert_eq!(a.reply, Err(ClientError::Overloaded), "request {}", a.id);
            refused += 1;
        }
        // A heartbeat round later the leader has published that it has no room.
        tokio::time::sleep(Duration::from_millis(100)).await;
        refused
    });
    assert_eq!(refused, offered - LIMIT as u64);
    assert!(rx.try_recv().is_err(), "the accepted ones are not answered");
    assert_eq!(
        leader.status().last_index - leader.status().commit_index,
        LIMIT as u64
    );
    assert!(
        !leader.claim_room(),
        "a sender that claims room is held back while the leader is full"
    );
    drop(cluster);
}

#[test]
fn senders_that_claim_room_never_push_a_leader_past_its_limit() {
    let (cluster, rt, leader) = leader_alone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut sent = 0u64;
    let mut held_back = 0u64;
    let mut st = leader.watch_status();
    // Bounded: 200 attempts over about 1 s. Each request sent is waited for in the
    // leader's log (its status is published after its room), so that claims and the
    // leader's rounds do not race; between attempts the leader runs heartbeat rounds
    // and republishes its room.
    for i in 0..200u64 {
        if leader.claim_room() {
            let last = leader.status().last_index;
            leader.offer(put(i, &tx)).expect("the queue has room");
            sent += 1;
            rt.block_on(async {
                tokio::time::timeout(GUARD, st.wait_for(|s| s.last_index > last))
                    .await
                    .expect("the leader appends what it took")
                    .unwrap();
            });
        } else {
            held_back += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut refused_by_leader = 0;
    while let Ok(a) = rx.try_recv() {
        assert_eq!(a.reply, Err(ClientError::Overloaded), "request {}", a.id);
        refused_by_leader += 1;
    }
    eprintln!("sent {sent}, held back {held_back}, refused by the leader {refused_by_leader}");
    assert_eq!(sent, LIMIT as u64, "claims let through exactly the limit");
    assert_eq!(
        refused_by_leader, 0,
        "nothing the claims let through was refused"
    );
    assert_eq!(held_back, 200 - LIMIT as u64);
    drop(cluster);
}
