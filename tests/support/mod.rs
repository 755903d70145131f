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

/// How long a test waits for something that should happen at once before it gives up.
pub const GUARD: std::time::Duration = std::time::Duration::from_secs(20);

/// Awaits `f`, failing the test with `what` if it takes longer than [`GUARD`].
pub async fn guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting: {what}"))
}

/// Waits until the other side closes `s` (EOF or reset).
pub async fn closed_by_peer(s: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    loop {
        match guard("connection close", s.read(&mut buf)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// The next message in `inbox` that `what` accepts (others are skipped), within 10 s.
pub async fn next_message(
    inbox: &mut raftbench::transport::Inbound,
    what: impl Fn(&raftbench::raft::Message) -> bool,
) -> raftbench::raft::Message {
    let wait = async {
        loop {
            let (_, m) = inbox.recv().await.expect("the network is up");
            if what(&m) {
                return m;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), wait)
        .await
        .expect("the expected message arrives within 10 s")
}

/// A port free for both UDP (QUIC) and TCP right now.
pub fn free_port() -> u16 {
    use std::net::{TcpListener, UdpSocket};
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP in 100 tries");
}
