//! The driver's persistence path against scripted peers: nothing that promises what is on
//! disk (a vote, an acknowledgement, a leader's commit) leaves before the store made it
//! durable, with group commit and without; and a store error stops the node cleanly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use raftbench::kv::Command;
use raftbench::raft::{
    AppendEntries, AppendKind, Config, DurableSink, Entry, EntryKind, HardState, Index, LogStore,
    MemStore, Membership, Message, MessageBody, NodeId, RequestVote, RequestVoteResponse,
    StoreError, Term,
};
use raftbench::server::{AppendOrder, ClientError, Server, ServerParts};
use raftbench::shutdown::ShutdownController;
use raftbench::storage::{FileStore, SyncPolicy};
use raftbench::transport::{Inbound, MemMode, MemNetwork, StatsSnapshot, Transport};
use tempfile::TempDir;

mod support;
use support::next_message;

/// What happened, in the order it happened, across the driver and the syncer thread.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    HardState(HardState),
    /// An append up to `last`; `ticket` is None when it was durable on return.
    Append {
        last: Index,
        ticket: Option<u64>,
    },
    /// The syncer reported every write up to this ticket durable.
    Durable(u64),
    Send(Message),
}

type Log = Arc<Mutex<Vec<Op>>>;

fn push(log: &Log, op: Op) {
    log.lock().unwrap().push(op);
}

/// A store that records its writes (and its syncer's reports) in `log`.
struct Recording<S> {
    inner: S,
    log: Log,
    /// Fail every append (to show a store error stops the node).
    fail_appends: bool,
}

impl<S: LogStore> LogStore for Recording<S> {
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        self.append_deferred(entries).map(|_| ())
    }
    fn append_deferred(&mut self, entries: &[Entry]) -> Result<Option<u64>, StoreError> {
        if self.fail_appends {
            return Err(StoreError::Io(std::io::Error::other("injected: disk full")));
        }
        let ticket = self.inner.append_deferred(entries)?;
        if let Some(last) = entries.last() {
            push(
                &self.log,
                Op::Append {
                    last: last.index,
                    ticket,
                },
            );
        }
        Ok(ticket)
    }
    fn start_background_sync(&mut self, sink: DurableSink) -> bool {
        let log = self.log.clone();
        self.inner.start_background_sync(Box::new(move |r| {
            if let Ok(t) = &r {
                push(&log, Op::Durable(*t));
            }
            sink(r)
        }))
    }
    fn save_hard_state(&mut self, hs: HardState) -> Result<(), StoreError> {
        self.inner.save_hard_state(hs)?;
        push(&self.log, Op::HardState(hs));
        Ok(())
    }
    fn compact(&mut self, upto: Index) -> Result<(), StoreError> {
        self.inner.compact(upto)
    }
    fn hard_state(&self) -> HardState {
        self.inner.hard_state()
    }
    fn snapshot_point(&self) -> (Index, Term) {
        self.inner.snapshot_point()
    }
    fn last_index(&self) -> Index {
        self.inner.last_index()
    }
    fn entries(&self, lo: Index, hi: Index) -> Result<Vec<Entry>, StoreError> {
        self.inner.entries(lo, hi)
    }
}

/// A transport that records every message the node sends in `log`.
struct RecordingTransport<T> {
    inner: T,
    log: Log,
}

impl<T: Transport> Transport for RecordingTransport<T> {
    fn local_id(&self) -> NodeId {
        self.inner.local_id()
    }
    fn send(&self, msg: Message) {
        push(&self.log, Op::Send(msg.clone()));
        self.inner.send(msg)
    }
    fn watch_connected(&self, peer: NodeId) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.inner.watch_connected(peer)
    }
    fn stats(&self) -> StatsSnapshot {
        self.inner.stats()
    }
}

fn entry(index: Index, term: Term) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Bytes::from(vec![7u8; 64]),
    }
}

/// Whether the write of entries up to `index` is durable at position `at` of `log`.
fn durable_at(log: &[Op], at: usize, index: Index) -> bool {
    let mut need: Option<Option<u64>> = None;
    let mut durable = 0;
    for op in &log[..at] {
        match op {
            Op::Append { last, ticket } if *last >= index && need.is_none() => need = Some(*ticket),
            Op::Durable(t) => durable = durable.max(*t),
            _ => {}
        }
    }
    match need {
        None => false,
        Some(None) => true,
        Some(Some(t)) => durable >= t,
    }
}

/// Checks that every vote and acknowledgement in `log` follows the state it promises.
fn check_promises(log: &[Op]) -> (usize, usize) {
    let (mut votes, mut acks) = (0, 0);
    for (i, op) in log.iter().enumerate() {
        let Op::Send(m) = op else { continue };
        match &m.body {
            MessageBody::RequestVoteResponse(r) if r.granted && !r.pre_vote => {
                votes += 1;
                let saved = log[..i].iter().any(|o| {
                    *o == Op::HardState(HardState {
                        term: m.term,
                        voted_for: Some(m.to),
                    })
                });
                assert!(
                    saved,
                    "vote for {} in term {} sent before it was saved: {log:?}",
                    m.to, m.term
                );
            }
            MessageBody::RequestVote(rv) if !rv.pre_vote => {
                let saved = log[..i].iter().any(|o| {
                    *o == Op::HardState(HardState {
                        term: m.term,
                        voted_for: Some(m.from),
                    })
                });
                assert!(
                    saved,
                    "vote request of term {} sent before the own vote was saved",
                    m.term
                );
            }
            MessageBody::AppendEntriesResponse(r) if r.reject.is_none() && r.match_index > 0 => {
                acks += 1;
                assert!(
                    durable_at(log, i, r.match_index),
                    "acknowledgement of {} sent before it was durable (op {i}): {log:?}",
                    r.match_index
                );
            }
            _ => {}
        }
    }
    (votes, acks)
}

fn config(election_ms: u64) -> Config {
    Config {
        election_timeout: Duration::from_millis(election_ms),
        heartbeat_interval: Duration::from_millis(election_ms / 5),
        check_quorum: false,
        pre_vote: false,
        ..Config::default()
    }
}

struct Rig<S: LogStore + Send + 'static> {
    log: Log,
    task: tokio::task::JoinHandle<raftbench::kv::KvStore>,
    ctl: ShutdownController,
    handle: raftbench::server::ServerHandle,
    peer2: raftbench::transport::MemTransport,
    inbox2: Inbound,
    _peer3: (raftbench::transport::MemTransport, Inbound),
    _store: std::marker::PhantomData<S>,
}

fn start<S: LogStore + Send + 'static>(
    store: S,
    voters: Vec<NodeId>,
    cfg: Config,
    order: AppendOrder,
    fail_appends: bool,
) -> Rig<S> {
    let net = MemNetwork::new(MemMode::Encode);
    let (t1, inbox1) = net.join(1, 1024);
    let (peer2, inbox2) = net.join(2, 1024);
    let peer3 = net.join(3, 1024);
    let log: Log = Arc::default();
    let (server, handle) = Server::new(ServerParts {
        members: Membership::new(1, voters),
        raft: cfg,
        seed: 7,
        epoch: std::time::Instant::now(),
        store: Recording {
            inner: store,
            log: log.clone(),
            fail_appends,
        },
        transport: Arc::new(RecordingTransport {
            inner: t1,
            log: log.clone(),
        }),
        inbox: inbox1,
        observer: None,
    })
    .unwrap();
    let server = server.with_append_order(order);
    let ctl = ShutdownController::new();
    let task = tokio::spawn(server.run(ctl.subscribe()));
    Rig {
        log,
        task,
        ctl,
        handle,
        peer2,
        inbox2,
        _peer3: peer3,
        _store: std::marker::PhantomData,
    }
}

/// As a follower: votes and acknowledgements leave only after the store made them durable.
async fn follower_persists_before_it_answers<S: LogStore + Send + 'static>(store: S) {
    // A long election timeout: node 1 stays a follower and only answers.
    let mut rig = start(
        store,
        vec![1, 2, 3],
        config(60_000),
        AppendOrder::SendFirst,
        false,
    );
    rig.peer2.send(Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::RequestVote(RequestVote {
            last_log_index: 0,
            last_log_term: 0,
            pre_vote: false,
        }),
    });
    let vote = next_message(&mut rig.inbox2, |m| {
        matches!(m.body, MessageBody::RequestVoteResponse(_))
    })
    .await;
    assert!(matches!(
        vote.body,
        MessageBody::RequestVoteResponse(RequestVoteResponse { granted: true, .. })
    ));
    // A burst of appends, several in flight at once, as a pipelining leader sends them.
    const N: Index = 40;
    for i in 1..=N {
        rig.peer2.send(Message {
            from: 2,
            to: 1,
            term: 1,
            body: MessageBody::AppendEntries(AppendEntries {
                prev_log_index: i - 1,
                prev_log_term: if i == 1 { 0 } else { 1 },
                entries: vec![entry(i, 1)],
                leader_commit: 0,
                compact_floor: 0,
                kind: AppendKind::Entries,
            }),
        });
    }
    next_message(&mut rig.inbox2, |m| match &m.body {
        MessageBody::AppendEntriesResponse(r) => r.match_index == N,
        _ => false,
    })
    .await;
    rig.ctl.shutdown().await;
    rig.task.await.unwrap();
    let log = rig.log.lock().unwrap().clone();
    let (votes, acks) = check_promises(&log);
    assert_eq!(votes, 1, "the vote was checked");
    assert!(acks >= 1, "acknowledgements were checked");
}

#[tokio::test]
async fn a_follower_with_group_commit_persists_before_it_votes_or_acknowledges() {
    let root = TempDir::new().unwrap();
    let store = FileStore::open(&root.path().join("node-1"), SyncPolicy::Fdatasync).unwrap();
    follower_persists_before_it_answers(store).await;
}

#[tokio::test]
async fn a_follower_on_a_memory_store_persists_before_it_votes_or_acknowledges() {
    follower_persists_before_it_answers(MemStore::new()).await;
}

/// As a leader: asks for votes only after saving its own, counts itself toward a commit
/// only once its sync returned, and under `PersistFirst` sends entries only once durable.
async fn leader_commits_only_durable_entries(order: AppendOrder) -> Vec<Op> {
    let root = TempDir::new().unwrap();
    let store = FileStore::open(&root.path().join("node-1"), SyncPolicy::Fdatasync).unwrap();
    let mut rig = start(store, vec![1, 2, 3], config(50), order, false);
    let rv = next_message(&mut rig.inbox2, |m| {
        matches!(m.body, MessageBody::RequestVote(_))
    })
    .await;
    rig.peer2.send(Message {
        from: 2,
        to: 1,
        term: rv.term,
        body: MessageBody::RequestVoteResponse(RequestVoteResponse {
            granted: true,
            pre_vote: false,
        }),
    });
    // Node 2 acknowledges every AppendEntries at once; node 3 stays silent, so a commit
    // needs the leader's own durable copy.
    let (peer2, mut inbox2) = (rig.peer2, rig.inbox2);
    let acker = tokio::spawn(async move {
        while let Some((_, m)) = inbox2.recv().await {
            if let MessageBody::AppendEntries(ae) = &m.body {
                peer2.send(Message {
                    from: 2,
                    to: 1,
                    term: m.term,
                    body: MessageBody::AppendEntriesResponse(
                        raftbench::raft::AppendEntriesResponse {
                            prev_log_index: ae.prev_log_index,
                            match_index: ae.prev_log_index + ae.entries.len() as Index,
                            reject: None,
                        },
                    ),
                });
            }
        }
    });
    let mut answered = 0;
    for i in 0..20 {
        let put = Command::Put {
            key: format!("k{i}").into(),
            value: "v".into(),
        };
        let r = tokio::time::timeout(Duration::from_secs(10), rig.handle.submit(&put))
            .await
            .expect("answered within 10 s");
        if r.is_ok() {
            answered += 1;
            let st = rig.handle.status();
            let log = rig.log.lock().unwrap().clone();
            assert!(
                durable_at(&log, log.len(), st.commit_index),
                "commit index {} acknowledged before the leader's own sync",
                st.commit_index
            );
        }
    }
    assert!(answered > 0, "the leader committed");
    rig.ctl.shutdown().await;
    rig.task.await.unwrap();
    acker.abort();
    let log = rig.log.lock().unwrap().clone();
    check_promises(&log);
    log
}

#[tokio::test]
async fn a_leader_sending_first_commits_only_durable_entries() {
    leader_commits_only_durable_entries(AppendOrder::SendFirst).await;
}

#[tokio::test]
async fn a_leader_persisting_first_sends_entries_only_once_durable() {
    let log = leader_commits_only_durable_entries(AppendOrder::PersistFirst).await;
    let mut checked = 0;
    for (i, op) in log.iter().enumerate() {
        if let Op::Send(Message {
            body: MessageBody::AppendEntries(ae),
            ..
        }) = op
        {
            if let Some(last) = ae.entries.last() {
                checked += 1;
                assert!(
                    durable_at(&log, i, last.index),
                    "entry {} sent before the leader's sync returned",
                    last.index
                );
            }
        }
    }
    assert!(checked > 0, "entries were sent");
}

#[tokio::test]
async fn a_store_error_stops_the_node_cleanly() {
    // A single voter elects itself and appends its no-op at once: the append fails.
    let cfg = Config {
        election_timeout: Duration::from_millis(20),
        heartbeat_interval: Duration::from_millis(5),
        ..Config::default()
    };
    let rig = start(MemStore::new(), vec![1], cfg, AppendOrder::SendFirst, true);
    let kv = tokio::time::timeout(Duration::from_secs(10), rig.task)
        .await
        .expect("the node stops by itself within 10 s")
        .expect("the node's task ends without a panic");
    assert!(kv.is_empty());
    let r = rig.handle.submit(&Command::Get { key: "k".into() }).await;
    assert!(
        matches!(r, Err(ClientError::ShuttingDown)),
        "a stopped node refuses requests: {r:?}"
    );
    assert!(
        !rig.log
            .lock()
            .unwrap()
            .iter()
            .any(|o| matches!(o, Op::Append { .. })),
        "nothing was appended"
    );
}
