//! The driver's persistence path: hard state, log appends, `persisted`, the messages that
//! wait for the disk, and compaction.
//!
//! With a store that syncs in the background (group commit, [`LogStore::start_background_sync`]),
//! an append returns once its records are in the page cache, with a ticket; the syncer
//! reports tickets as their syncs return, through a watch the driver's loop selects on.
//! Until its ticket is reported, a Ready's `persisted_messages` (votes, acknowledgements)
//! wait here and the core is not told `persisted`, so the leader counts itself in a
//! majority only once its own sync returned (Raft thesis 10.2.1). The hard state is saved
//! inline before anything that follows it leaves: it changes only in elections.
//! A synchronous store ([`MemStore`](crate::raft::MemStore)) takes the same path with
//! every append durable at once, so nothing ever waits.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Server;
use crate::raft::{Entry, HardState, Index, LogStore, Message, StoreError, Term};

/// When a leader sends the AppendEntries of entries it has not yet made durable itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppendOrder {
    /// Send at once and sync in parallel; the leader counts itself toward a commit only
    /// once its sync returns (Raft thesis 10.2.1). The default.
    #[default]
    SendFirst,
    /// Send only once the leader's own sync covering the entries returned: the disk and
    /// the network in series, the textbook order, for comparison.
    PersistFirst,
}

/// What the syncer last reported, as the driver reads it.
#[derive(Clone, Debug, Default)]
struct Reported {
    /// Every write up to this ticket is durable.
    ticket: u64,
    /// The first sync failure, as text (the store's error is not `Clone`).
    error: Option<Arc<str>>,
}

/// Messages and a `persisted` call waiting for a sync.
struct Waiting {
    ticket: u64,
    persisted: Option<(Index, Term)>,
    messages: Vec<Message>,
}

/// The persistence path's state in a [`Server`].
pub(super) struct PersistPath {
    /// Whether the store syncs in the background (otherwise `waiting` stays empty).
    deferred: bool,
    reports: watch::Receiver<Reported>,
    waiting: VecDeque<Waiting>,
    /// Highest index known durable, for compaction (committed entries are never replaced,
    /// so a stale report cannot mislead it for the indices compaction asks about).
    durable_index: Index,
    /// A compaction the core asked for that waits for its entries to be durable here.
    compact_pending: Option<Index>,
    order: AppendOrder,
    /// Acknowledgements and votes dropped because the entries they promised were replaced
    /// before their sync returned.
    dropped: u64,
}

impl PersistPath {
    /// Starts `store`'s background syncer if it has one.
    pub(super) fn new<S: LogStore>(store: &mut S, durable_index: Index) -> PersistPath {
        let (tx, reports) = watch::channel(Reported::default());
        let deferred = store.start_background_sync(Box::new(move |r| {
            tx.send_modify(|rep| match r {
                Ok(t) => rep.ticket = rep.ticket.max(t),
                Err(e) => rep.error = Some(e.to_string().into()),
            })
        }));
        PersistPath {
            deferred,
            reports,
            waiting: VecDeque::new(),
            durable_index,
            compact_pending: None,
            order: AppendOrder::default(),
            dropped: 0,
        }
    }

    /// Whether the store syncs in the background.
    pub(super) fn deferred(&self) -> bool {
        self.deferred
    }

    /// Resolves when the syncer reports (never, for a synchronous store).
    pub(super) async fn report(&mut self) {
        if !self.deferred || self.reports.changed().await.is_err() {
            // The syncer is gone: its last value (read by `on_durable`) says why.
            std::future::pending::<()>().await;
        }
    }
}

impl<S: LogStore + Send + 'static> Server<S> {
    /// Sets when a leader sends entries it has not made durable yet (default: send first).
    pub fn with_append_order(mut self, order: AppendOrder) -> Self {
        self.persist.order = order;
        self
    }

    /// Makes the driver poll for input for up to `window` before it parks its thread
    /// (zero, the default: park at once), while it leads, or in every role with
    /// `followers`. A parked thread takes tens of microseconds to wake on these VMs, and a
    /// sparse commit crosses four wake-ups; polling trades CPU for some of them. Only for
    /// nodes that have a core to themselves or nearly so: on a crowded machine the polling
    /// takes the core that the next hop needed (measured in the README's busy-poll table).
    pub fn with_busy_poll(mut self, window: std::time::Duration, followers: bool) -> Self {
        self.busy_poll = window;
        self.busy_poll_followers = followers;
        self
    }

    /// Makes every applied entry take `cost` longer (a slow state machine), for experiments
    /// on when followers apply (the lecture's L6).
    pub fn with_apply_cost(mut self, cost: std::time::Duration) -> Self {
        self.apply_cost = cost;
        self
    }

    /// Whether appends are synced in the background (group commit) rather than inline.
    pub fn group_commit(&self) -> bool {
        self.persist.deferred()
    }

    /// Does the persistence half of a Ready: sends what may leave before the disk, saves
    /// the hard state, appends, and sends (or queues behind the covering sync) the rest.
    pub(super) fn persist_ready(
        &mut self,
        messages: Vec<Message>,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
        persisted_messages: Vec<Message>,
    ) -> Result<(), StoreError> {
        let send_first = self.persist.order == AppendOrder::SendFirst;
        let mut later = Vec::new();
        if send_first {
            self.send_all(messages);
        } else {
            later = messages;
        }
        if let Some(hs) = hard_state {
            self.store.save_hard_state(hs)?;
        }
        let mut ticket = None;
        if let Some(last) = entries.last() {
            if entries[0].index <= self.store.last_index() && !self.persist.waiting.is_empty() {
                // Replacing entries whose sync has not returned: the acknowledgements
                // waiting for it promise entries that will not be on disk when it does.
                // Dropping them is safe (the leader retries); sending them is not.
                for w in &mut self.persist.waiting {
                    self.persist.dropped += w.messages.len() as u64;
                    w.messages.clear();
                }
            }
            let (index, term) = (last.index, last.term);
            match self.store.append_owned(entries)? {
                None => {
                    self.persist.durable_index = index;
                    self.raft.persisted(index, term);
                }
                Some(t) => {
                    ticket = Some((t, (index, term)));
                }
            }
        }
        later.extend(persisted_messages);
        // A message waits for every write before it, not only its own Ready's.
        let wait_for = ticket
            .map(|(t, _)| t)
            .or_else(|| self.persist.waiting.back().map(|w| w.ticket));
        match wait_for {
            None => self.send_all(later),
            Some(t) => self.persist.waiting.push_back(Waiting {
                ticket: t,
                persisted: ticket.map(|(_, p)| p),
                messages: later,
            }),
        }
        Ok(())
    }

    /// Takes the syncer's latest report: tells the core what is durable and sends what
    /// waited for it. An error when a background sync failed.
    pub(super) fn on_durable(&mut self) -> Result<(), StoreError> {
        let rep = self.persist.reports.borrow_and_update().clone();
        if let Some(e) = rep.error {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "background log sync failed: {e}"
            ))));
        }
        while self
            .persist
            .waiting
            .front()
            .is_some_and(|w| w.ticket <= rep.ticket)
        {
            let w = self.persist.waiting.pop_front().expect("front exists");
            if let Some((index, term)) = w.persisted {
                self.persist.durable_index = index;
                self.raft.persisted(index, term);
            }
            self.send_all(w.messages);
        }
        if let Some(upto) = self.persist.compact_pending.take() {
            self.compact_when_durable(upto)?;
        }
        Ok(())
    }

    /// Discards the store's prefix up to `upto` once those entries are durable here.
    pub(super) fn compact_when_durable(&mut self, upto: Index) -> Result<(), StoreError> {
        if upto <= self.persist.durable_index {
            self.store.compact(upto)
        } else {
            let p = self.persist.compact_pending.get_or_insert(upto);
            *p = (*p).max(upto);
            Ok(())
        }
    }

    /// Acknowledgements and votes dropped because their entries were replaced before
    /// their sync returned.
    pub fn dropped_before_sync(&self) -> u64 {
        self.persist.dropped
    }

    fn send_all(&self, messages: Vec<Message>) {
        for m in messages {
            self.transport.send(m);
        }
    }
}
