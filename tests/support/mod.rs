//! Helpers shared by the integration tests (`mod support;` in each test file).
//!
//! Each test file is its own crate and uses only some of these, hence the `dead_code`
//! allowance: an unused helper in one crate is used by another.
#![allow(dead_code)]

use bytes::Bytes;
use raftbench::raft::{Entry, EntryKind, Index, Term, Time};

/// A normal entry whose 8-byte payload is `id` big-endian: the payload id the simulator's
/// checker reads back ([`raftbench::sim::checker::payload_id`]).
pub fn entry_with_id(index: Index, term: Term, id: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Bytes::copy_from_slice(&id.to_be_bytes()),
    }
}

/// A normal entry at (`index`, `term`) with an 8-byte payload naming its index.
pub fn entry(index: Index, term: Term) -> Entry {
    entry_with_id(index, term, index)
}

/// `n` milliseconds after virtual time zero.
pub fn ms(n: u64) -> Time {
    Time::from_nanos(n * 1_000_000)
}

/// The unsigned integer in environment variable `name`, if set; panics naming the
/// variable when it is not a number.
pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not an unsigned integer")),
    )
}
