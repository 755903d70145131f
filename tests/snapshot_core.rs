//! The core's snapshot rules through the public API: a leader sends a follower behind its
//! log a snapshot in bounded chunks and resumes after it; a follower refuses a deposed
//! leader's chunk, asks again from where it is, keeps nothing of a transfer from an earlier
//! term, and does not install what it already holds.

mod support;

use bytes::Bytes;
use raftbench::raft::{
    Config, Entry, HardState, InstallSnapshot, InstallSnapshotResponse, LogStore, MemStore,
    Membership, Message, MessageBody, NodeId, ProgressState, RaftNode, Role, SnapshotMeta, Term,
    Time,
};
use support::{entry, ms};

const CHUNK: usize = 16;

fn cfg() -> Config {
    Config {
        snapshot_entries: 5,
        snapshot_chunk_bytes: CHUNK,
        max_inflight_msgs: 2,
        pre_vote: false,
        ..Config::default()
    }
}

/// A node and what it persisted and applied, driven as `Ready` documents.
struct Driven {
    node: RaftNode,
    store: MemStore,
    /// The state machine: the applied payloads, or a restored snapshot's bytes first.
    state: Vec<u8>,
    installed: Vec<Bytes>,
}

impl Driven {
    fn new(id: NodeId) -> Driven {
        let node =
            RaftNode::new(Membership::new(id, vec![1, 2, 3]), cfg(), id, Time::ZERO).unwrap();
        Driven {
            node,
            store: MemStore::new(),
            state: Vec::new(),
            installed: Vec::new(),
        }
    }

    /// Carries out every Ready; returns the messages sent.
    fn drain(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        for _ in 0..1_000 {
            if !self.node.has_ready() {
                return out;
            }
            let rd = self.node.ready();
            out.extend(rd.messages);
            if let Some(hs) = rd.hard_state {
                self.store.save_hard_state(hs).unwrap();
            }
            if let Some(s) = &rd.snapshot {
                self.store.save_snapshot(s).unwrap();
                self.state = s.data.to_vec();
                self.installed.push(s.data.clone());
            }
            if let Some(last) = rd.entries.last() {
                self.store.append(&rd.entries).unwrap();
                self.node.persisted(last.index, last.term);
            }
            out.extend(rd.persisted_messages);
            for e in &rd.committed {
                self.state.extend_from_slice(&e.index.to_be_bytes());
            }
            if let Some(e) = rd.committed.last() {
                self.node.applied(e.index);
            }
            if let Some(i) = self.node.snapshot_due() {
                let snap = self
                    .node
                    .snapshot_taken(i, Bytes::from(self.state.clone()))
                    .unwrap();
                self.store.save_snapshot(&snap).unwrap();
            }
        }
        panic!("the node kept producing Readies");
    }
}

/// Delivers messages among `nodes` in order (those addressed elsewhere are dropped) until
/// quiet.
fn exchange(nodes: &mut [&mut Driven], msgs: Vec<Message>, now: Time) -> Vec<Message> {
    let mut msgs: std::collections::VecDeque<Message> = msgs.into();
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        let Some(m) = msgs.pop_front() else {
            return seen;
        };
        seen.push(m.clone());
        if let Some(d) = nodes.iter_mut().find(|d| d.node.id() == m.to) {
            d.node.step(m, now).unwrap();
            msgs.extend(d.drain());
        }
    }
    panic!("messages never stopped");
}

fn elect_1(n1: &mut Driven, n2: &mut Driven) -> Time {
    let now = n1.node.next_deadline();
    n1.node.tick(now);
    let msgs = n1.drain();
    exchange(&mut [n1, n2], msgs, now);
    assert_eq!(n1.node.role(), Role::Leader);
    now
}

#[test]
fn a_follower_behind_the_leaders_log_gets_the_snapshot_in_bounded_chunks_and_resumes_after_it() {
    let (mut n1, mut n2) = (Driven::new(1), Driven::new(2));
    let now = elect_1(&mut n1, &mut n2);
    for i in 0..23u8 {
        n1.node.propose(Bytes::from(vec![i; 3]), now).unwrap();
        let msgs = n1.drain();
        exchange(&mut [&mut n1, &mut n2], msgs, now);
    }
    let snap = n1.node.snapshot().expect("the leader snapshotted").clone();
    assert!(snap.meta.index >= 20, "snapshot at {}", snap.meta.index);
    assert_eq!(
        n1.node.log().snapshot_index(),
        snap.meta.index,
        "the log starts after it"
    );
    assert!(
        snap.data.len() > 4 * CHUNK,
        "the snapshot takes several chunks"
    );

    // Node 3 joins with an empty log: the leader's probe finds it behind the snapshot.
    let mut n3 = Driven::new(3);
    let now = now + std::time::Duration::from_millis(60);
    n1.node.tick(now);
    let msgs = n1.drain();
    let seen = exchange(&mut [&mut n1, &mut n2, &mut n3], msgs, now);
    let chunks: Vec<&InstallSnapshot> = seen
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::InstallSnapshot(is) => Some(is),
            _ => None,
        })
        .collect();
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    assert!(
        chunks.iter().all(|c| c.data.len() <= CHUNK),
        "a chunk exceeds the bound"
    );
    assert!(chunks.last().unwrap().done);
    assert_eq!(
        n3.installed,
        vec![snap.data.clone()],
        "node 3 restored the leader's snapshot"
    );
    assert_eq!(n3.store.snapshot().unwrap(), Some(snap.clone()));
    assert_eq!(
        n3.node.log().last_index(),
        n1.node.log().last_index(),
        "and caught up after it"
    );
    let pr = n1.node.progress(3).unwrap();
    assert_eq!(pr.state, ProgressState::Replicate);
    assert_eq!(pr.match_index, n1.node.log().last_index());

    // Replication continues to everyone.
    n1.node.propose(Bytes::from_static(b"after"), now).unwrap();
    let msgs = n1.drain();
    exchange(&mut [&mut n1, &mut n2, &mut n3], msgs, now);
    assert_eq!(n3.node.log().last_index(), n1.node.log().last_index());
}

fn chunk(from: NodeId, term: Term, offset: u64, data: &'static [u8], done: bool) -> Message {
    Message {
        from,
        to: 2,
        term,
        body: MessageBody::InstallSnapshot(InstallSnapshot {
            meta: SnapshotMeta {
                index: 10,
                term: 2,
                voters: vec![1, 2, 3],
            },
            offset,
            data: Bytes::from_static(data),
            done,
        }),
    }
}

/// The one snapshot response in `msgs`, with its term.
fn response(msgs: &[Message]) -> (Term, InstallSnapshotResponse) {
    let rs: Vec<_> = msgs
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::InstallSnapshotResponse(r) => Some((m.term, r.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(rs.len(), 1, "{msgs:?}");
    rs[0].clone()
}

fn follower_at_term(term: Term, log: &[Entry]) -> Driven {
    let mut store = MemStore::new();
    store.append(log).unwrap();
    store
        .save_hard_state(HardState {
            term,
            voted_for: None,
        })
        .unwrap();
    let node = RaftNode::restore(
        Membership::new(2, vec![1, 2, 3]),
        cfg(),
        2,
        Time::ZERO,
        &store,
    )
    .unwrap();
    Driven {
        node,
        store,
        state: Vec::new(),
        installed: Vec::new(),
    }
}

#[test]
fn a_deposed_leaders_chunk_is_answered_with_the_newer_term() {
    let mut f = follower_at_term(5, &[entry(1, 1)]);
    f.node.step(chunk(1, 3, 0, b"abc", true), ms(1)).unwrap();
    let (term, r) = response(&f.drain());
    assert_eq!((term, r.match_index), (5, None));
    assert!(f.installed.is_empty());
    assert_eq!(f.node.incoming_snapshot_bytes(), None);
}

#[test]
fn a_follower_asks_for_what_it_needs_ignores_duplicates_and_merges_chunks_ahead() {
    let mut f = follower_at_term(2, &[entry(1, 1)]);
    let mut step = |m: Message| {
        f.node.step(m, ms(1)).unwrap();
        let msgs = f.drain();
        response(&msgs).1
    };
    // A chunk of a transfer it does not hold (it restarted): start from zero.
    assert_eq!(step(chunk(1, 2, 4, b"efgh", false)).next_offset, 0);
    assert_eq!(step(chunk(1, 2, 0, b"abcd", false)).next_offset, 4);
    assert_eq!(
        step(chunk(1, 2, 0, b"abcd", false)).next_offset,
        4,
        "duplicate"
    );
    // Ahead of a gap: kept aside, the answer still asks for offset 4.
    assert_eq!(step(chunk(1, 2, 8, b"ij", true)).next_offset, 4);
    let done = step(chunk(1, 2, 4, b"efgh", false));
    assert_eq!((done.next_offset, done.match_index), (10, Some(10)));
    assert_eq!(f.installed, vec![Bytes::from_static(b"abcdefghij")]);
    assert_eq!(f.node.commit_index(), 10);
    assert_eq!(f.node.applied_index(), 10);
    assert_eq!(
        (f.node.log().snapshot_index(), f.node.log().last_index()),
        (10, 10)
    );
}

#[test]
fn a_transfer_from_an_earlier_term_is_dropped_when_a_new_leader_appears() {
    let mut f = follower_at_term(2, &[entry(1, 1)]);
    f.node.step(chunk(1, 2, 0, b"abcd", false), ms(1)).unwrap();
    f.drain();
    assert_eq!(f.node.incoming_snapshot_bytes(), Some(4));
    // Leader 3 of term 3 continues "the same" snapshot: its bytes need not be the same.
    f.node.step(chunk(3, 3, 4, b"efgh", false), ms(2)).unwrap();
    let (term, r) = response(&f.drain());
    assert_eq!(
        (term, r.next_offset),
        (3, 0),
        "start over with the new leader"
    );
    assert_eq!(f.node.incoming_snapshot_bytes(), None);
    assert_eq!(f.node.leader(), Some(3));
}

#[test]
fn a_snapshot_of_what_the_follower_holds_is_not_installed() {
    // The follower holds (10, term 2): its log already matches the snapshot's point.
    let log: Vec<Entry> = (1..=12).map(|i| entry(i, 2)).collect();
    let mut f = follower_at_term(2, &log);
    f.node.step(chunk(1, 2, 0, b"abcd", false), ms(1)).unwrap();
    let (_, r) = response(&f.drain());
    assert_eq!(r.match_index, Some(10), "answered from the log at once");
    assert!(f.installed.is_empty(), "nothing restored");
    assert_eq!(f.node.commit_index(), 10);
    assert_eq!(f.node.log().last_index(), 12, "the entries after it stay");
}
