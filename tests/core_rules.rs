//! Table-driven tests of the core's rules, one Figure 2 rule at a time, through the public API.

mod support;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use raftbench::raft::{
    next_after_reject, AppendEntries, AppendEntriesResponse, AppendKind, CommitMode, Config, Entry,
    EntryKind, HardState, Index, LogStore, MemStore, Membership, Message, MessageBody, NodeId,
    ProgressState, RaftLog, RaftNode, Ready, RejectHint, ReplicationTrigger, RequestVote, Role,
    StepError, Term, Time,
};
use support::{entry, ms};

/// A node of a 3-node cluster rebuilt from a store holding `terms` (the term of each entry
/// from index 1) and hard state `term`.
fn node_with_log(id: NodeId, terms: &[Term], term: Term) -> RaftNode {
    node_with_log_cfg(id, Config::default(), terms, term)
}

fn node_with_log_cfg(id: NodeId, cfg: Config, terms: &[Term], term: Term) -> RaftNode {
    let mut store = MemStore::new();
    let entries: Vec<Entry> = terms
        .iter()
        .enumerate()
        .map(|(i, &t)| entry(i as Index + 1, t))
        .collect();
    store.append(&entries).unwrap();
    store
        .save_hard_state(HardState {
            term,
            voted_for: None,
        })
        .unwrap();
    RaftNode::restore(
        Membership::new(id, vec![1, 2, 3]),
        cfg,
        7,
        Time::ZERO,
        &store,
    )
    .unwrap()
}

fn all_messages(rd: &Ready) -> Vec<Message> {
    rd.messages
        .iter()
        .chain(rd.persisted_messages.iter())
        .cloned()
        .collect()
}

fn append(
    from: NodeId,
    to: NodeId,
    term: Term,
    prev: (Index, Term),
    entries: Vec<Entry>,
    commit: Index,
) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: prev.0,
            prev_log_term: prev.1,
            entries,
            leader_commit: commit,
            compact_floor: 0,
            kind: AppendKind::Entries,
        }),
    }
}

fn the_append_response(rd: &Ready) -> (Term, AppendEntriesResponse) {
    let msgs = all_messages(rd);
    assert_eq!(msgs.len(), 1, "expected one response, got {msgs:?}");
    match &msgs[0].body {
        MessageBody::AppendEntriesResponse(r) => (msgs[0].term, r.clone()),
        other => panic!("expected an AppendEntriesResponse, got {other:?}"),
    }
}

fn log_terms(node: &RaftNode) -> Vec<Term> {
    let log = node.log();
    (log.first_index()..=log.last_index())
        .map(|i| log.term(i).unwrap())
        .collect()
}

#[test]
fn vote_rules() {
    // Voter: log terms [1, 1, 2] (last term 2, last index 3), current term 2.
    struct Case {
        name: &'static str,
        term: Term,
        last: (Index, Term),
        voted_before: Option<NodeId>,
        granted: bool,
    }
    let cases = [
        Case {
            name: "lower term",
            term: 1,
            last: (9, 9),
            voted_before: None,
            granted: false,
        },
        Case {
            name: "same term, fresh, up to date",
            term: 2,
            last: (3, 2),
            voted_before: None,
            granted: true,
        },
        Case {
            name: "same term, voted for another",
            term: 2,
            last: (3, 2),
            voted_before: Some(3),
            granted: false,
        },
        Case {
            name: "same term, voted for this one",
            term: 2,
            last: (3, 2),
            voted_before: Some(2),
            granted: true,
        },
        Case {
            name: "higher term resets the vote",
            term: 3,
            last: (3, 2),
            voted_before: Some(3),
            granted: true,
        },
        Case {
            name: "last term older",
            term: 3,
            last: (10, 1),
            voted_before: None,
            granted: false,
        },
        Case {
            name: "same last term, shorter log",
            term: 3,
            last: (2, 2),
            voted_before: None,
            granted: false,
        },
        Case {
            name: "same last term, longer log",
            term: 3,
            last: (4, 2),
            voted_before: None,
            granted: true,
        },
        Case {
            name: "newer last term, shorter log",
            term: 3,
            last: (1, 3),
            voted_before: None,
            granted: true,
        },
    ];
    for c in cases {
        let mut store = MemStore::new();
        store
            .append(&[entry(1, 1), entry(2, 1), entry(3, 2)])
            .unwrap();
        store
            .save_hard_state(HardState {
                term: 2,
                voted_for: c.voted_before,
            })
            .unwrap();
        let mut node = RaftNode::restore(
            Membership::new(1, vec![1, 2, 3]),
            Config::default(),
            1,
            Time::ZERO,
            &store,
        )
        .unwrap();
        node.step(
            Message {
                from: 2,
                to: 1,
                term: c.term,
                body: MessageBody::RequestVote(RequestVote {
                    last_log_index: c.last.0,
                    last_log_term: c.last.1,
                    pre_vote: false,
                }),
            },
            ms(1),
        )
        .unwrap();
        let rd = node.ready();
        let msgs = all_messages(&rd);
        let granted = match &msgs[..] {
            [Message {
                body: MessageBody::RequestVoteResponse(r),
                term,
                ..
            }] => {
                assert_eq!(
                    *term,
                    c.term.max(2),
                    "{}: the answer carries the voter's term",
                    c.name
                );
                r.granted
            }
            other => panic!("{}: expected one vote response, got {other:?}", c.name),
        };
        assert_eq!(granted, c.granted, "{}", c.name);
        assert!(
            rd.persisted_messages.len() == 1,
            "{}: a vote answer must wait for the hard state to persist",
            c.name
        );
        if granted {
            assert_eq!(node.hard_state().voted_for, Some(2), "{}", c.name);
            assert!(
                rd.hard_state.is_some() || c.voted_before == Some(2),
                "{}: a new vote must be persisted",
                c.name
            );
        }
    }
}

#[test]
fn consistency_check_and_truncation() {
    // Follower log terms [1, 1, 2, 2] at term 2; leader 2 of term 3.
    struct Case {
        name: &'static str,
        prev: (Index, Term),
        entries: Vec<Entry>,
        success: bool,
        hint: Option<RejectHint>,
        log_after: Vec<Term>,
        persist_from: Option<Index>,
    }
    let cases = vec![
        Case {
            name: "conflict at 3: truncate 3.. and append",
            prev: (2, 1),
            entries: vec![entry(3, 3)],
            success: true,
            hint: None,
            log_after: vec![1, 1, 3],
            persist_from: Some(3),
        },
        Case {
            name: "matching entries are not truncated (stale, reordered AppendEntries)",
            prev: (1, 1),
            entries: vec![entry(2, 1)],
            success: true,
            hint: None,
            log_after: vec![1, 1, 2, 2],
            persist_from: None,
        },
        Case {
            name: "append after the last entry",
            prev: (4, 2),
            entries: vec![entry(5, 3), entry(6, 3)],
            success: true,
            hint: None,
            log_after: vec![1, 1, 2, 2, 3, 3],
            persist_from: Some(5),
        },
        Case {
            name: "prev past the end: hint the log length",
            prev: (6, 3),
            entries: vec![entry(7, 3)],
            success: false,
            hint: Some(RejectHint {
                conflict_term: None,
                conflict_index: 0,
                last_index: 4,
            }),
            log_after: vec![1, 1, 2, 2],
            persist_from: None,
        },
        Case {
            name: "prev term mismatch: hint the conflicting term and its first index",
            prev: (4, 3),
            entries: vec![entry(5, 3)],
            success: false,
            hint: Some(RejectHint {
                conflict_term: Some(2),
                conflict_index: 3,
                last_index: 4,
            }),
            log_after: vec![1, 1, 2, 2],
            persist_from: None,
        },
        Case {
            name: "partial overlap: keep matching prefix, replace conflicting rest",
            prev: (2, 1),
            entries: vec![entry(3, 2), entry(4, 3), entry(5, 3)],
            success: true,
            hint: None,
            log_after: vec![1, 1, 2, 3, 3],
            persist_from: Some(4),
        },
    ];
    for c in cases {
        let mut node = node_with_log(1, &[1, 1, 2, 2], 2);
        let n = c.entries.len() as Index;
        node.step(append(2, 1, 3, c.prev, c.entries, 0), ms(1))
            .unwrap();
        assert_eq!(node.role(), Role::Follower, "{}", c.name);
        assert_eq!(node.leader(), Some(2), "{}", c.name);
        let rd = node.ready();
        let (term, r) = the_append_response(&rd);
        assert_eq!(term, 3, "{}", c.name);
        assert_eq!(r.reject.is_none(), c.success, "{}", c.name);
        assert_eq!(r.reject, c.hint, "{}", c.name);
        if c.success {
            assert_eq!(r.match_index, c.prev.0 + n, "{}", c.name);
        }
        assert_eq!(log_terms(&node), c.log_after, "{}", c.name);
        assert_eq!(
            rd.entries.first().map(|e| e.index),
            c.persist_from,
            "{}",
            c.name
        );
    }
}

#[test]
fn follower_commit_is_min_of_leader_commit_and_last_new_entry() {
    let cases = [
        // (entries sent after prev 2, leader commit, expected follower commit)
        (0, 10, 2),
        (1, 10, 3),
        (2, 3, 3),
        (2, 1, 1),
    ];
    for (n, leader_commit, want) in cases {
        let mut node = node_with_log(1, &[1, 1, 1, 1, 1, 1], 1);
        let entries = (3..3 + n).map(|i| entry(i, 1)).collect();
        node.step(append(2, 1, 1, (2, 1), entries, leader_commit), ms(1))
            .unwrap();
        assert_eq!(
            node.commit_index(),
            want,
            "n={n} leader_commit={leader_commit}: entries beyond the last new one may not match the leader"
        );
    }
}

#[test]
fn fast_backup_hint_table() {
    // Leader log terms: 1 1 1 4 4 5 5 6 6 6 (the Raft paper's Figure 7 leader).
    let terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let log = RaftLog::new(
        0,
        0,
        terms
            .iter()
            .enumerate()
            .map(|(i, &t)| entry(i as Index + 1, t))
            .collect(),
    );
    let cases = [
        (
            "follower log too short",
            RejectHint {
                conflict_term: None,
                conflict_index: 0,
                last_index: 5,
            },
            6,
        ),
        (
            "leader has the conflicting term: resume after its last entry of it",
            RejectHint {
                conflict_term: Some(4),
                conflict_index: 4,
                last_index: 11,
            },
            6,
        ),
        (
            "leader lacks the conflicting term: resume at the follower's first entry of it",
            RejectHint {
                conflict_term: Some(2),
                conflict_index: 4,
                last_index: 11,
            },
            4,
        ),
        (
            "leader lacks term 3 (Figure 7 follower f)",
            RejectHint {
                conflict_term: Some(3),
                conflict_index: 7,
                last_index: 11,
            },
            7,
        ),
    ];
    for (name, hint, want) in cases {
        assert_eq!(next_after_reject(&log, hint), want, "{name}");
    }
}

/// A tiny cluster with instant delivery, enough to count messages and round trips.
struct Cluster {
    nodes: Vec<RaftNode>,
    stores: Vec<MemStore>,
    queue: VecDeque<Message>,
    now: Time,
    delivered: Vec<Message>,
    drop_to: Vec<NodeId>,
    /// Directed links (from, to) that lose every message.
    cut: Vec<(NodeId, NodeId)>,
    /// Every empty AppendEntries a leader sent, as it left: its kind, the commit index it
    /// carried, the receiver's match index and the leader's own commit index right then.
    empty_appends: Vec<EmptyAppend>,
}

#[derive(Clone, Copy, Debug)]
struct EmptyAppend {
    to: NodeId,
    kind: AppendKind,
    carried: Index,
    match_index: Index,
    leader_commit: Index,
}

impl Cluster {
    fn new(cfgs: Vec<(Membership, Config)>) -> Cluster {
        let n = cfgs.len();
        Cluster {
            nodes: cfgs
                .into_iter()
                .enumerate()
                .map(|(i, (m, c))| RaftNode::new(m, c, i as u64, Time::ZERO).unwrap())
                .collect(),
            stores: vec![MemStore::new(); n],
            queue: VecDeque::new(),
            now: Time::ZERO,
            delivered: Vec::new(),
            drop_to: Vec::new(),
            cut: Vec::new(),
            empty_appends: Vec::new(),
        }
    }

    fn with(n: u64, f: impl Fn(&mut Config)) -> Cluster {
        let voters: Vec<NodeId> = (1..=n).collect();
        Cluster::new(
            voters
                .iter()
                .map(|&id| {
                    let mut c = Config::default();
                    f(&mut c);
                    (Membership::new(id, voters.clone()), c)
                })
                .collect(),
        )
    }

    fn node(&mut self, id: NodeId) -> &mut RaftNode {
        &mut self.nodes[id as usize - 1]
    }

    fn drain(&mut self, i: usize) {
        while self.nodes[i].has_ready() {
            let rd = self.nodes[i].ready();
            self.record_empty_appends(i, &rd);
            self.queue.extend(rd.messages);
            if let Some(hs) = rd.hard_state {
                self.stores[i].save_hard_state(hs).unwrap();
            }
            if let Some(last) = rd.entries.last() {
                self.stores[i].append(&rd.entries).unwrap();
                self.nodes[i].persisted(last.index, last.term);
            }
            self.queue.extend(rd.persisted_messages);
            if let Some(last) = rd.committed.last() {
                self.nodes[i].applied(last.index);
            }
            if let Some(upto) = rd.compact_to {
                self.stores[i].compact(upto).unwrap();
            }
        }
    }

    fn record_empty_appends(&mut self, i: usize, rd: &Ready) {
        let node = &self.nodes[i];
        for m in rd.messages.iter().chain(&rd.persisted_messages) {
            let MessageBody::AppendEntries(ae) = &m.body else {
                continue;
            };
            if !ae.entries.is_empty() {
                continue;
            }
            let pr = node
                .progress(m.to)
                .expect("only a leader sends AppendEntries");
            self.empty_appends.push(EmptyAppend {
                to: m.to,
                kind: ae.kind,
                carried: ae.leader_commit,
                match_index: pr.match_index,
                leader_commit: node.commit_index(),
            });
        }
    }

    /// Delivers everything until no node has anything more to say.
    fn settle(&mut self) {
        loop {
            for i in 0..self.nodes.len() {
                self.drain(i);
            }
            let Some(m) = self.queue.pop_front() else {
                return;
            };
            if self.drop_to.contains(&m.to) || self.cut.contains(&(m.from, m.to)) {
                continue;
            }
            self.delivered.push(m.clone());
            let to = m.to as usize - 1;
            self.nodes[to].step(m, self.now).unwrap();
        }
    }

    /// Advances time to `t`, firing each node's timers that fall due on the way.
    fn advance_to(&mut self, t: Time) {
        loop {
            let next = self.nodes.iter().map(|n| n.next_deadline()).min().unwrap();
            if next > t {
                break;
            }
            self.now = self.now.max(next);
            for i in 0..self.nodes.len() {
                if self.nodes[i].next_deadline() <= self.now {
                    let now = self.now;
                    self.nodes[i].tick(now);
                }
            }
            self.settle();
        }
        self.now = t;
        self.settle();
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|n| n.role() == Role::Leader)
            .map(|n| n.id())
    }

    fn elect(&mut self) -> NodeId {
        // Node 1 times out first because it is ticked early; the others follow it.
        let t = self.now + Duration::from_secs(5);
        let now = self.now + self.nodes[0].config().election_timeout * 2;
        self.now = now;
        self.node(1).tick(now);
        self.settle();
        let _ = t;
        self.leader().expect("a leader after one election")
    }

    fn count(&self, kind: AppendKind) -> usize {
        self.delivered
            .iter()
            .filter(|m| matches!(&m.body, MessageBody::AppendEntries(ae) if ae.kind == kind))
            .count()
    }
}

#[test]
fn figure_8_old_term_entries_commit_only_through_a_current_term_entry() {
    // S1 holds an entry of term 2 at index 2 that it never committed; it is elected in term 4
    // (straight to a real election: pre-votes are tested on their own).
    let cfg = Config {
        pre_vote: false,
        ..Config::default()
    };
    let mut leader = node_with_log_cfg(1, cfg, &[1, 2], 3);
    leader.tick(ms(2_000));
    assert_eq!(leader.role(), Role::Candidate);
    let term = leader.term();
    assert_eq!(term, 4);
    let _ = leader.ready();
    for from in [2, 3] {
        leader
            .step(
                Message {
                    from,
                    to: 1,
                    term,
                    body: MessageBody::RequestVoteResponse(raftbench::raft::RequestVoteResponse {
                        granted: true,
                        pre_vote: false,
                    }),
                },
                ms(2_001),
            )
            .unwrap();
    }
    assert_eq!(leader.role(), Role::Leader);
    let rd = leader.ready();
    let noop = rd
        .entries
        .last()
        .expect("a new leader appends a no-op")
        .clone();
    assert_eq!((noop.index, noop.term, noop.kind), (3, 4, EntryKind::Noop));
    leader.persisted(3, 4);

    // Follower 2 acknowledges index 2 (an entry of term 2): a majority holds it, yet
    // counting replicas may not commit an entry of an earlier term.
    let ack = |match_index| Message {
        from: 2,
        to: 1,
        term,
        body: MessageBody::AppendEntriesResponse(AppendEntriesResponse {
            prev_log_index: 1,
            match_index,
            reject: None,
        }),
    };
    leader.step(ack(2), ms(2_002)).unwrap();
    assert_eq!(
        leader.commit_index(),
        0,
        "index 2 (term 2) must not commit by counting replicas"
    );
    leader.step(ack(3), ms(2_003)).unwrap();
    assert_eq!(
        leader.commit_index(),
        3,
        "the no-op of term 4 commits, and index 2 with it"
    );
}

#[test]
fn a_leader_alone_is_no_majority_of_three() {
    let mut c = Cluster::with(3, |_| {});
    let l = c.elect();
    c.drop_to = vec![2, 3];
    let (idx, _) = c
        .node(l)
        .propose(Bytes::from_static(b"x"), ms(5_000))
        .unwrap();
    c.settle();
    assert!(
        c.node(l).commit_index() < idx,
        "one persisted copy of three is no majority"
    );
    c.drop_to = vec![3];
    c.advance_to(ms(5_100));
    assert!(
        c.node(l).commit_index() >= idx,
        "leader plus one follower is a majority of three"
    );
    assert_eq!(
        c.node(3).commit_index(),
        0,
        "the cut-off follower knows nothing"
    );
}

#[test]
fn leader_counts_itself_only_once_it_persisted_the_entry() {
    let mut c = Cluster::with(3, |_| {});
    let l = c.elect();
    c.settle();
    let mut followers = (1..=3).filter(|&id| id != l);
    let (a, b) = (followers.next().unwrap(), followers.next().unwrap());
    let now = c.now;
    let (idx, term) = c.node(l).propose(Bytes::from_static(b"x"), now).unwrap();
    // The leader's Ready, carried out by hand: its messages leave, its write does not finish.
    let rd = c.node(l).ready();
    assert_eq!(
        rd.entries.last().map(|e| (e.index, e.term)),
        Some((idx, term))
    );
    c.queue.extend(rd.messages);
    assert!(
        rd.persisted_messages.is_empty(),
        "{:?}",
        rd.persisted_messages
    );
    // Follower a stores and acknowledges the entry; b hears nothing.
    c.drop_to = vec![b];
    c.settle();
    assert!(
        c.node(l).progress(a).unwrap().match_index >= idx,
        "follower {a} acknowledged the entry"
    );
    assert!(
        c.node(l).commit_index() < idx,
        "one follower's copy is no majority of three while the leader's write is pending"
    );
    c.node(l).persisted(idx, term);
    assert_eq!(
        c.node(l).commit_index(),
        idx,
        "the leader's own copy, once persisted, completes the majority"
    );
}

#[test]
fn heartbeats_and_commit_notices_never_carry_a_commit_beyond_the_followers_match() {
    for mode in [CommitMode::Eager, CommitMode::Piggyback] {
        let mut c = Cluster::with(3, |cfg| {
            cfg.commit_mode = mode;
            cfg.max_batch_entries = 1;
            cfg.max_inflight_msgs = 2;
        });
        let l = c.elect();
        c.settle();
        let lagging = (1..=3).find(|&id| id != l).unwrap();
        // The lagging follower misses five entries that commit without it.
        c.drop_to = vec![lagging];
        for _ in 0..5 {
            let now = c.now;
            c.node(l).propose(Bytes::from_static(b"x"), now).unwrap();
            c.settle();
        }
        let hb = c.node(l).config().heartbeat_interval;
        let t = c.now + hb * 3;
        c.advance_to(t);
        assert!(
            c.node(l).commit_index() >= 6,
            "noop and five entries commit"
        );
        // It comes back and catches up, one entry per message.
        c.drop_to.clear();
        let t = c.now + hb * 10;
        c.advance_to(t);
        assert_eq!(c.node(lagging).commit_index(), c.node(l).commit_index());

        let to_lagging: Vec<&EmptyAppend> =
            c.empty_appends.iter().filter(|e| e.to == lagging).collect();
        for e in &c.empty_appends {
            assert!(
                e.carried <= e.match_index,
                "{mode:?}: an empty append carried commit {} to a follower that matched {}: {e:?}",
                e.carried,
                e.match_index
            );
        }
        assert!(
            to_lagging
                .iter()
                .any(|e| e.kind == AppendKind::Heartbeat && e.match_index < e.leader_commit),
            "{mode:?}: no heartbeat went to the follower while it lagged the commit index: \
             the clamp was never exercised"
        );
        if mode == CommitMode::Eager {
            assert!(
                to_lagging
                    .iter()
                    .any(|e| e.kind == AppendKind::CommitNotice && e.carried > 0),
                "eager mode sent the returning follower no commit notice"
            );
        }
    }
}

#[test]
fn check_quorum_makes_a_leader_that_hears_no_majority_step_down() {
    // (check_quorum, followers the leader stops hearing from, whether it stays leader)
    for (check_quorum, deaf_count, stays) in [(true, 2, false), (true, 1, true), (false, 2, true)] {
        let mut c = Cluster::with(3, |cfg| cfg.check_quorum = check_quorum);
        let l = c.elect();
        c.settle();
        let term = c.node(l).term();
        // The leader keeps sending, but hears nothing from the first `deaf_count` followers.
        let deaf: Vec<NodeId> = (1..=3).filter(|&id| id != l).take(deaf_count).collect();
        c.cut = deaf.iter().map(|&f| (f, l)).collect();
        let et = c.node(l).config().election_timeout;
        let t = c.now + et * 2;
        c.advance_to(t);
        let case = format!("check_quorum {check_quorum}, deaf to {deaf:?}");
        if stays {
            assert_eq!(c.node(l).role(), Role::Leader, "{case}");
        } else {
            assert_eq!(
                c.node(l).role(),
                Role::Follower,
                "{case}: it must step down"
            );
            assert_eq!(c.node(l).leader(), None, "{case}");
            assert_eq!(
                c.node(l).term(),
                term,
                "{case}: stepping down raises no term"
            );
        }
    }
}

#[test]
fn only_a_granted_vote_or_the_leader_defers_a_followers_election() {
    // Node 1 holds [1, 2, 2] in term 2. Its election timer runs to `deadline`.
    let vote = |term: Term, last: (Index, Term)| Message {
        from: 3,
        to: 1,
        term,
        body: MessageBody::RequestVote(RequestVote {
            last_log_index: last.0,
            last_log_term: last.1,
            pre_vote: false,
        }),
    };
    let granted = |rd: &Ready| {
        all_messages(rd).iter().any(
            |m| matches!(&m.body, MessageBody::RequestVoteResponse(r) if r.granted && !r.pre_vote),
        )
    };
    // Just before the timer fires, a candidate with a stale log raises the term. The vote is
    // refused and the timer keeps running: a stale candidate whose own timer runs faster must
    // not keep the nodes that could win from standing.
    let mut n = node_with_log(1, &[1, 2, 2], 2);
    let deadline = n.next_deadline();
    let just_before = Time::from_nanos(deadline.as_nanos() - 1_000_000);
    n.step(vote(5, (1, 1)), just_before).unwrap();
    assert_eq!(n.term(), 5);
    assert!(!granted(&n.ready()), "a stale log gets no vote");
    assert_eq!(
        n.next_deadline(),
        deadline,
        "a refused vote must not defer the election"
    );
    n.tick(deadline);
    let asks = all_messages(&n.ready())
        .iter()
        .filter(|m| matches!(m.body, MessageBody::RequestVote(_)))
        .count();
    assert_eq!(asks, 2, "its own (pre-)election starts on time");

    // A granted vote defers it.
    let mut n = node_with_log(1, &[1, 2, 2], 2);
    let deadline = n.next_deadline();
    let just_before = Time::from_nanos(deadline.as_nanos() - 1_000_000);
    n.step(vote(5, (3, 2)), just_before).unwrap();
    assert!(granted(&n.ready()));
    assert!(
        n.next_deadline() > deadline,
        "a granted vote defers the election"
    );

    // So does the leader of a later term.
    let mut n = node_with_log(1, &[1, 2, 2], 2);
    let deadline = n.next_deadline();
    let just_before = Time::from_nanos(deadline.as_nanos() - 1_000_000);
    n.step(append(2, 1, 5, (3, 2), vec![], 0), just_before)
        .unwrap();
    assert_eq!(n.leader(), Some(2));
    assert!(
        n.next_deadline() > deadline,
        "the leader's message defers the election"
    );
}

#[test]
fn pipelining_window_bounds_appends_in_flight() {
    for window in [1usize, 4, 32] {
        let mut c = Cluster::with(3, |cfg| {
            cfg.max_inflight_msgs = window;
            cfg.max_batch_entries = 1;
        });
        let l = c.elect();
        c.advance_to(c.now + Duration::from_millis(10));
        for f in [1, 2, 3] {
            if f != l {
                assert_eq!(
                    c.node(l).progress(f).unwrap().state,
                    ProgressState::Replicate
                );
            }
        }
        let now = c.now;
        for i in 0..100u8 {
            c.node(l).propose(Bytes::from(vec![i]), now).unwrap();
        }
        let rd = c.node(l).ready();
        let to_2 = rd
            .messages
            .iter()
            .filter(|m| m.to == if l == 2 { 3 } else { 2 })
            .count();
        assert_eq!(
            to_2, window,
            "window {window}: one AppendEntries per window slot, then wait"
        );
        for m in &rd.messages {
            if let MessageBody::AppendEntries(ae) = &m.body {
                assert_eq!(ae.entries.len(), 1, "batch limit 1");
            }
        }
        c.queue.extend(rd.messages);
        c.settle();
        let last = c.node(l).log().last_index();
        assert_eq!(
            c.node(l).commit_index(),
            last,
            "window {window}: everything commits"
        );
        // Followers learn the last commit from the next heartbeat.
        c.advance_to(c.now + Duration::from_millis(60));
        for id in 1..=3 {
            assert_eq!(
                c.node(id).commit_index(),
                last,
                "window {window}: every node learns it"
            );
        }
    }
}

#[test]
fn batching_limits_bound_entries_and_bytes() {
    // (max entries, max bytes, payload size, expected entries per full batch)
    let cases = [
        (16, 1 << 20, 8, 16),
        (1024, 1000, 100, 8), // 8 x (100 + 21) = 968 fits, a ninth would pass 1000
        (1024, 10, 100, 1),   // one entry always fits, however large
        (1, 1 << 20, 8, 1),
    ];
    for (max_entries, max_bytes, payload, want) in cases {
        let mut c = Cluster::with(3, |cfg| {
            cfg.max_batch_entries = max_entries;
            cfg.max_batch_bytes = max_bytes;
            cfg.max_inflight_msgs = 1;
        });
        let l = c.elect();
        c.advance_to(c.now + Duration::from_millis(10));
        let now = c.now;
        for _ in 0..100 {
            c.node(l)
                .propose(Bytes::from(vec![7u8; payload]), now)
                .unwrap();
        }
        let rd = c.node(l).ready();
        let sizes: Vec<usize> = rd
            .messages
            .iter()
            .filter_map(|m| match &m.body {
                MessageBody::AppendEntries(ae) => Some(ae.entries.len()),
                _ => None,
            })
            .collect();
        assert_eq!(
            sizes,
            vec![want, want],
            "limits ({max_entries}, {max_bytes}) payload {payload}"
        );
    }
}

#[test]
fn adaptive_batching_grows_while_the_window_is_full() {
    let mut c = Cluster::with(3, |cfg| cfg.max_inflight_msgs = 1);
    let l = c.elect();
    c.advance_to(c.now + Duration::from_millis(10));
    let now = c.now;
    c.node(l).propose(Bytes::from_static(b"a"), now).unwrap();
    let first = c.node(l).ready();
    for m in &first.messages {
        if let MessageBody::AppendEntries(ae) = &m.body {
            assert_eq!(
                ae.entries.len(),
                1,
                "an idle leader sends a single entry at once"
            );
        }
    }
    // While that one is unacknowledged, more proposals pile up in the log...
    for _ in 0..50 {
        c.node(l).propose(Bytes::from_static(b"b"), now).unwrap();
    }
    assert!(
        c.node(l).ready().messages.is_empty(),
        "a full window holds them back"
    );
    c.queue.extend(first.messages);
    c.settle();
    // ...and leave together when the acknowledgement opens the window.
    let batch = c
        .delivered
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntries(ae) if !ae.entries.is_empty() => Some(ae.entries.len()),
            _ => None,
        })
        .max();
    assert_eq!(batch, Some(50));
}

#[test]
fn linger_holds_proposals_until_due() {
    let mut c = Cluster::with(3, |cfg| cfg.linger = Duration::from_millis(2));
    let l = c.elect();
    c.advance_to(c.now + Duration::from_millis(10));
    let t0 = c.now;
    for _ in 0..5 {
        c.node(l).propose(Bytes::from_static(b"x"), t0).unwrap();
    }
    assert_eq!(c.node(l).pending_proposals(), 5);
    assert!(c.node(l).next_deadline() <= t0 + Duration::from_millis(2));
    c.settle();
    assert_eq!(c.node(l).pending_proposals(), 5, "still lingering");
    c.advance_to(t0 + Duration::from_millis(2));
    assert_eq!(c.node(l).pending_proposals(), 0);
    let last = c.node(l).log().last_index();
    assert_eq!(c.node(l).commit_index(), last);
}

/// Runs a sparse load (one proposal every 30 ms with a 50 ms heartbeat) and returns
/// (heartbeats, commit notices, all AppendEntries, commit index of each follower right after
/// each proposal settles, leader commit).
fn sparse_run(mode: CommitMode) -> (usize, usize, usize, Vec<bool>) {
    let mut c = Cluster::with(3, |cfg| cfg.commit_mode = mode);
    let l = c.elect();
    c.advance_to(c.now + Duration::from_millis(100));
    c.delivered.clear();
    let mut learned_at_once = Vec::new();
    for i in 0..20u8 {
        let now = c.now;
        let (idx, _) = c.node(l).propose(Bytes::from(vec![i]), now).unwrap();
        c.settle();
        assert!(c.node(l).commit_index() >= idx);
        let followers_know = (1..=3)
            .filter(|&f| f != l)
            .all(|f| c.nodes[f as usize - 1].commit_index() >= idx);
        learned_at_once.push(followers_know);
        c.advance_to(now + Duration::from_millis(30));
    }
    let all = c.delivered.iter().filter(|m| m.is_append()).count();
    (
        c.count(AppendKind::Heartbeat),
        c.count(AppendKind::CommitNotice),
        all,
        learned_at_once,
    )
}

#[test]
fn commit_modes_piggyback_sends_no_notice_eager_does() {
    let (hb_p, notices_p, all_p, learned_p) = sparse_run(CommitMode::Piggyback);
    let (_hb_e, notices_e, all_e, learned_e) = sparse_run(CommitMode::Eager);
    assert_eq!(notices_p, 0, "piggyback never sends a commit notice");
    assert!(hb_p > 0, "piggyback relies on heartbeats at sparse load");
    assert_eq!(
        notices_e,
        2 * 20,
        "eager: one notice per follower per commit advance"
    );
    assert_eq!(
        all_e,
        all_p + notices_e,
        "eager costs exactly its notices on top of piggyback"
    );
    assert!(
        learned_e.iter().all(|&k| k),
        "eager: followers learn every commit at once"
    );
    assert!(
        learned_p.iter().all(|&k| !k),
        "piggyback at sparse load: followers learn later"
    );
}

#[test]
fn on_tick_trigger_sends_entries_only_with_the_heartbeat() {
    let mut c = Cluster::with(3, |cfg| cfg.trigger = ReplicationTrigger::OnTick);
    let l = c.elect();
    c.advance_to(c.now + Duration::from_millis(200));
    let now = c.now;
    let (idx, _) = c.node(l).propose(Bytes::from_static(b"x"), now).unwrap();
    c.settle();
    assert!(
        c.node(l).commit_index() < idx,
        "nothing leaves before the tick"
    );
    c.advance_to(now + Duration::from_millis(51));
    assert!(
        c.node(l).commit_index() >= idx,
        "the heartbeat tick carries the entry"
    );
}

#[test]
fn append_resets_heartbeat_is_a_choice() {
    for (resets, want_heartbeats) in [(false, true), (true, false)] {
        let mut c = Cluster::with(3, |cfg| {
            cfg.append_resets_heartbeat = resets;
            cfg.heartbeat_interval = Duration::from_millis(50);
        });
        let l = c.elect();
        c.advance_to(c.now + Duration::from_millis(100));
        c.delivered.clear();
        // A proposal every 10 ms keeps every follower busy with appends.
        for _ in 0..30 {
            let now = c.now;
            c.node(l).propose(Bytes::from_static(b"x"), now).unwrap();
            c.advance_to(now + Duration::from_millis(10));
        }
        assert_eq!(
            c.count(AppendKind::Heartbeat) > 0,
            want_heartbeats,
            "append_resets_heartbeat = {resets}"
        );
    }
}

#[test]
fn fast_backup_repairs_a_divergent_follower_in_few_round_trips() {
    // Leader 1 (term 7) holds terms 1 1 1 4 4 5 5 6 6 6; follower 2 holds 1 1 1 2 2 2 3 3 3 3 3.
    let mut c = Cluster::with(3, |_| {});
    let leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let follower_terms = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3];
    for (id, terms) in [
        (1, &leader_terms[..]),
        (2, &follower_terms[..]),
        (3, &leader_terms[..]),
    ] {
        c.nodes[id - 1] = node_with_log(id as NodeId, terms, 6);
        let entries: Vec<Entry> = (1..=terms.len() as Index)
            .map(|i| c.nodes[id - 1].log().get(i).unwrap().clone())
            .collect();
        c.stores[id - 1].append(&entries).unwrap();
    }
    c.now = ms(10_000);
    c.node(1).tick(ms(10_000));
    c.settle();
    assert_eq!(c.leader(), Some(1));
    assert_eq!(log_terms(c.node(2))[..10], leader_terms);
    let rejections = c
        .delivered
        .iter()
        .filter(|m| {
            m.from == 2
                && matches!(&m.body, MessageBody::AppendEntriesResponse(r) if r.reject.is_some())
        })
        .count();
    // Probe at 11 (past the end), then term 3 (unknown to the leader), then term 2.
    assert!(
        rejections <= 3,
        "fast backup skips a term per round trip, got {rejections} rejections"
    );
    assert_eq!(c.node(2).commit_index(), c.node(1).commit_index());
}

#[test]
fn malformed_and_misaddressed_messages_are_refused_without_harm() {
    let mut node = node_with_log(1, &[1, 1], 1);
    let before = log_terms(&node);
    let gap = append(2, 1, 2, (2, 1), vec![entry(4, 2)], 0);
    assert!(matches!(
        node.step(gap, ms(1)),
        Err(StepError::Malformed { from: 2, .. })
    ));
    let future = append(2, 1, 2, (2, 1), vec![entry(3, 9)], 0);
    assert!(matches!(
        node.step(future, ms(1)),
        Err(StepError::Malformed { .. })
    ));
    let stranger = append(9, 1, 2, (2, 1), vec![], 0);
    assert_eq!(node.step(stranger, ms(1)), Err(StepError::UnknownPeer(9)));
    let elsewhere = append(2, 3, 2, (2, 1), vec![], 0);
    assert_eq!(
        node.step(elsewhere, ms(1)),
        Err(StepError::WrongRecipient { to: 3, me: 1 })
    );
    assert_eq!(log_terms(&node), before);
    assert_eq!(node.term(), 1, "a refused message changes nothing");
    assert!(!node.has_ready());
}

#[test]
fn compaction_discards_only_what_every_node_holds_and_applied() {
    let mut c = Cluster::with(3, |cfg| cfg.compact_threshold = 10);
    let l = c.elect();
    c.advance_to(c.now + Duration::from_millis(10));
    for i in 0..100u8 {
        let now = c.now;
        c.node(l).propose(Bytes::from(vec![i]), now).unwrap();
        c.settle();
    }
    // Carry the leader's floor to the followers.
    c.advance_to(c.now + Duration::from_millis(200));
    for id in 1..=3 {
        let n = c.node(id);
        assert!(
            n.log().snapshot_index() >= 80,
            "node {id} keeps its log bounded"
        );
        assert!(n.log().snapshot_index() <= n.applied_index());
        assert_eq!(
            c.stores[id as usize - 1].snapshot_point().0,
            c.nodes[id as usize - 1].log().snapshot_index()
        );
    }
    // A follower that was cut off must not make anyone discard what it lacks.
    c.drop_to = vec![3];
    let held = c.node(3).log().last_index();
    for i in 0..50u8 {
        let now = c.now;
        c.node(l).propose(Bytes::from(vec![i]), now).unwrap();
        c.settle();
    }
    assert!(
        c.node(l).log().snapshot_index() <= held,
        "the leader keeps what follower 3 lacks"
    );
    c.drop_to.clear();
    c.advance_to(c.now + Duration::from_millis(200));
    assert_eq!(
        c.node(3).commit_index(),
        c.node(l).commit_index(),
        "follower 3 catches up from the log"
    );
}

#[test]
fn restart_keeps_term_vote_and_log() {
    let mut c = Cluster::with(3, |_| {});
    let l = c.elect();
    for i in 0..10u8 {
        let now = c.now;
        c.node(l).propose(Bytes::from(vec![i]), now).unwrap();
        c.settle();
    }
    let f = if l == 1 { 2 } else { 1 };
    let before = (c.node(f).hard_state(), c.node(f).log().last_index());
    let store = c.stores[f as usize - 1].clone();
    let cfg = c.node(f).config().clone();
    let members = c.node(f).membership().clone();
    let restored = RaftNode::restore(members, cfg, 99, c.now, &store).unwrap();
    assert_eq!((restored.hard_state(), restored.log().last_index()), before);
    assert_eq!(
        restored.commit_index(),
        0,
        "commit is volatile: relearned from the leader"
    );
    assert_eq!(restored.role(), Role::Follower);
}

#[test]
fn config_errors_name_the_field() {
    let mut c = Config::default();
    c.heartbeat_interval = c.election_timeout;
    assert_eq!(c.validate().unwrap_err().field, "heartbeat_ms");
    let c = Config {
        max_inflight_msgs: 0,
        ..Config::default()
    };
    assert_eq!(c.validate().unwrap_err().field, "max_inflight_msgs");
    let m = Membership::new(4, vec![1, 2, 3]);
    assert_eq!(m.validate().unwrap_err().field, "id");
    let m = Membership::new(1, vec![1, 2, 2]);
    assert_eq!(m.validate().unwrap_err().field, "voters");
    let m = Membership::new(1, vec![]);
    assert!(RaftNode::new(m, Config::default(), 0, Time::ZERO).is_err());
}

#[test]
fn pre_vote_rules() {
    // Voter: log terms [1, 1, 2] at term 2. (heard from a leader just now?, candidate's
    // message term, candidate's last (index, term), granted)
    let cases = [
        ("no leader, up to date, next term", false, 3, (3, 2), true),
        ("no leader, candidate behind", false, 3, (2, 2), false),
        ("no leader, term not ahead", false, 2, (9, 9), false),
        (
            "a live leader: refuse, however good the log",
            true,
            3,
            (9, 9),
            false,
        ),
    ];
    for (name, leader_alive, term, last, want) in cases {
        let mut node = node_with_log(1, &[1, 1, 2], 2);
        if leader_alive {
            node.step(append(2, 1, 2, (3, 2), vec![], 0), ms(1))
                .unwrap();
            let _ = node.ready();
        }
        node.step(
            Message {
                from: 3,
                to: 1,
                term,
                body: MessageBody::RequestVote(RequestVote {
                    last_log_index: last.0,
                    last_log_term: last.1,
                    pre_vote: true,
                }),
            },
            ms(2),
        )
        .unwrap();
        let rd = node.ready();
        assert!(
            rd.hard_state.is_none(),
            "{name}: a pre-vote changes nothing to persist"
        );
        assert_eq!(
            node.term(),
            2,
            "{name}: a pre-vote never raises the voter's term"
        );
        assert_eq!(node.hard_state().voted_for, None, "{name}");
        match &all_messages(&rd)[..] {
            [Message {
                body: MessageBody::RequestVoteResponse(r),
                term: t,
                ..
            }] => {
                assert!(r.pre_vote, "{name}");
                assert_eq!(r.granted, want, "{name}");
                assert_eq!(*t, if want { term } else { 2 }, "{name}");
            }
            other => panic!("{name}: expected one answer, got {other:?}"),
        }
    }
}

#[test]
fn a_pre_candidate_raises_its_term_only_after_a_majority_of_pre_votes() {
    let mut node = node_with_log(1, &[1], 1);
    node.tick(ms(5_000));
    assert_eq!(
        node.term(),
        1,
        "timing out starts a pre-vote, not an election"
    );
    assert_eq!(node.role(), Role::Follower);
    let rd = node.ready();
    assert!(rd.hard_state.is_none());
    let asked: Vec<_> = rd
        .messages
        .iter()
        .filter(|m| matches!(&m.body, MessageBody::RequestVote(rv) if rv.pre_vote && m.term == 2))
        .map(|m| m.to)
        .collect();
    assert_eq!(asked, vec![2, 3]);
    node.step(
        Message {
            from: 2,
            to: 1,
            term: 2,
            body: MessageBody::RequestVoteResponse(raftbench::raft::RequestVoteResponse {
                granted: true,
                pre_vote: true,
            }),
        },
        ms(5_001),
    )
    .unwrap();
    assert_eq!(
        node.role(),
        Role::Candidate,
        "two of three pre-votes start the election"
    );
    assert_eq!(node.term(), 2);
    assert_eq!(node.hard_state().voted_for, Some(1));
}

#[test]
fn pre_vote_keeps_a_cut_off_node_from_unseating_a_live_leader() {
    for pre_vote in [true, false] {
        let mut c = Cluster::with(3, |cfg| cfg.pre_vote = pre_vote);
        let l = c.elect();
        let term = c.node(l).term();
        let cut = if l == 3 { 2 } else { 3 };
        // The node hears nothing for ten election timeouts, then the link heals.
        c.drop_to = vec![cut];
        c.advance_to(c.now + Duration::from_secs(10));
        c.drop_to.clear();
        c.advance_to(c.now + Duration::from_secs(2));
        if pre_vote {
            assert_eq!(
                c.node(cut).term(),
                term,
                "its pre-votes were refused: term unchanged"
            );
            assert_eq!(c.leader(), Some(l), "the leader was never disturbed");
            assert_eq!(c.node(l).term(), term);
        } else {
            assert!(
                c.node(cut).term() > term + 5,
                "without pre-vote its term climbs"
            );
            assert!(
                c.node(l).term() > term,
                "and its return forces a new term on everyone"
            );
        }
    }
}

#[test]
fn the_leader_refuses_proposals_past_its_uncommitted_limits() {
    use raftbench::raft::ProposeError;
    // (entry limit, byte limit, linger, payload, accepted before the first refusal)
    let cases = [
        (10usize, 32 << 20, 0u64, 8usize, 10usize),
        (10, 32 << 20, 5, 8, 10), // proposals held by the linger count too
        (1000, 3 * (21 + 100), 0, 100, 3),
        (1000, 10, 0, 100, 1), // one proposal always goes when nothing is uncommitted
    ];
    for (entries, bytes, linger_ms, payload, want) in cases {
        let mut c = Cluster::with(3, |cfg| {
            cfg.max_uncommitted_entries = entries;
            cfg.max_uncommitted_bytes = bytes;
            cfg.linger = Duration::from_millis(linger_ms);
        });
        let l = c.elect();
        c.advance_to(c.now + Duration::from_millis(10));
        assert_eq!(c.node(l).uncommitted(), (0, 0), "the no-op has committed");
        let now = c.now;
        let data = Bytes::from(vec![7u8; payload]);
        let mut accepted = 0;
        let refusal = loop {
            match c.node(l).propose(data.clone(), now) {
                Ok(_) => accepted += 1,
                Err(e) => break e,
            }
            assert!(accepted <= 2000, "case {entries}/{bytes}: no refusal");
        };
        assert_eq!(accepted, want, "case {entries}/{bytes}/{linger_ms}");
        assert!(
            matches!(refusal, ProposeError::Overloaded { entries: e, .. } if e == want as u64),
            "{refusal:?}"
        );
        let last = c.node(l).log().last_index() + c.node(l).pending_proposals() as Index;
        // Once they commit, the leader takes proposals again.
        c.advance_to(c.now + Duration::from_millis(linger_ms + 10));
        assert_eq!(c.node(l).commit_index(), last);
        assert_eq!(c.node(l).uncommitted(), (0, 0));
        let now = c.now;
        assert!(c.node(l).propose(data.clone(), now).is_ok());
    }
}
