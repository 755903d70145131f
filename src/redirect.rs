//! The one policy by which every client of a cluster finds the leader: follow a redirect
//! to a known leader at once; after any other failure try the next member, waiting a
//! backoff that doubles from [`BACKOFF_MIN`] to [`BACKOFF_MAX`]; give up at a deadline.
//! The in-process client ([`crate::cluster::ClusterClient`]) and the network client
//! ([`crate::remote::RemoteClient`]) both follow it, so that they behave alike.

use std::time::{Duration, Instant};

use crate::raft::NodeId;

/// First wait after a failure that names no leader.
pub const BACKOFF_MIN: Duration = Duration::from_millis(2);
/// Longest wait between two tries: well under an election timeout, so a client notices a
/// new leader soon after it is elected.
pub const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Why one try failed, as the policy needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The member does not lead; it named the leader it knows of, if any.
    NotLeader(Option<NodeId>),
    /// The member could not answer (leadership lost, shutting down, unreachable).
    Unavailable,
}

/// Which member to try, and how long to wait before the next try.
#[derive(Clone, Debug)]
pub struct Redirects {
    members: Vec<NodeId>,
    current: usize,
    backoff: Duration,
    started: Instant,
    /// How long one call keeps retrying before it gives up.
    pub deadline: Duration,
}

impl Redirects {
    /// A policy over `members` (tried in the order given), giving up after `deadline`.
    pub fn new(members: Vec<NodeId>, deadline: Duration) -> Redirects {
        assert!(!members.is_empty(), "a cluster has members");
        Redirects {
            members,
            current: 0,
            backoff: BACKOFF_MIN,
            started: Instant::now(),
            deadline,
        }
    }

    /// The member to try now.
    pub fn current(&self) -> NodeId {
        self.members[self.current]
    }

    /// Tries `id` next if it is a member; says whether the member to try changed.
    pub fn prefer(&mut self, id: NodeId) -> bool {
        match self.members.iter().position(|&m| m == id) {
            Some(i) if i != self.current => {
                self.current = i;
                true
            }
            _ => false,
        }
    }

    /// Starts a call: its deadline counts from now.
    pub fn start(&mut self) {
        self.started = Instant::now();
        self.backoff = BACKOFF_MIN;
    }

    /// A try failed: picks the member to try next and returns how long to wait first, or
    /// None when the call's deadline has passed.
    pub fn failed(&mut self, f: Failure) -> Option<Duration> {
        let wait = match f {
            Failure::NotLeader(Some(l)) if self.prefer(l) => Duration::ZERO,
            _ => {
                self.current = (self.current + 1) % self.members.len();
                let w = self.backoff;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                w
            }
        };
        (self.started.elapsed() <= self.deadline).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_to_a_known_leader_is_followed_at_once() {
        let mut r = Redirects::new(vec![1, 2, 3], Duration::from_secs(60));
        assert_eq!(r.failed(Failure::NotLeader(Some(3))), Some(Duration::ZERO));
        assert_eq!(r.current(), 3);
    }

    #[test]
    fn other_failures_rotate_with_a_doubling_backoff() {
        let mut r = Redirects::new(vec![1, 2, 3], Duration::from_secs(60));
        let waits: Vec<_> = (0..9)
            .map(|_| r.failed(Failure::Unavailable).unwrap().as_millis())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 200, 200]);
        assert_eq!(
            r.current(),
            1,
            "nine failures went round three members three times"
        );
        // A redirect to the member already tried, or to a stranger, counts as a failure.
        assert_eq!(r.failed(Failure::NotLeader(Some(9))), Some(BACKOFF_MAX));
        assert_eq!(r.current(), 2);
        r.start();
        assert_eq!(r.failed(Failure::NotLeader(None)), Some(BACKOFF_MIN));
    }

    #[test]
    fn past_the_deadline_it_gives_up() {
        let mut r = Redirects::new(vec![1, 2], Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(r.failed(Failure::Unavailable), None);
    }
}
