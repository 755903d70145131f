//! raftbench: a Raft log-replication engine and a harness that measures it.
//!
//! - [`raft`]: the consensus core, sans-IO and deterministic.
//! - [`sim`]: a simulated cluster with virtual time and invariant checkers.
//! - [`codec`]: the binary wire format.
//! - [`tls`]: the cluster CA and mutual TLS.
//! - [`transport`]: QUIC, TCP and in-memory transports.

pub mod codec;
pub mod raft;
pub mod sim;
pub mod tls;
pub mod transport;
