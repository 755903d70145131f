//! raftbench: a Raft log-replication engine and a harness that measures it.
//!
//! - [`raft`]: the consensus core, sans-IO and deterministic.
//! - [`remote`]: the client protocol over TCP, its listener and a redirect-following client.
//! - [`config`]: configuration files (Raft knobs, the cluster file).
//! - [`server`]: a node at run time (tokio driver around the core, KV store, clients).
//! - [`shutdown`]: graceful shutdown with a broadcast and a drop guard.
//! - [`cluster`]: an in-process cluster over any transport, and a client for it.
//! - [`process`]: one node as its own OS process.
//! - [`redirect`]: the one leader-finding and retry policy of every client.
//! - [`sim`]: a simulated cluster with virtual time and invariant checkers.
//! - [`storage`]: durable log stores (a log file with torn-tail recovery).
//! - [`harness`]: the benchmark harness (scenarios, load, recorders, results).
//! - [`kv`]: the key-value state machine (Put and Get through the log).
//! - [`netem`]: link emulation (delay, jitter, loss, bandwidth) below QUIC and in the other transports.
//! - [`codec`]: the binary wire format.
//! - [`tls`]: the cluster CA and mutual TLS.
//! - [`transport`]: QUIC, TCP and in-memory transports.

pub mod cluster;
pub mod codec;
pub mod config;
pub mod harness;
pub mod kv;
pub mod metrics;
pub mod netem;
pub mod netns;
pub mod process;
pub mod raft;
pub mod redirect;
pub mod remote;
pub mod server;
pub mod shutdown;
pub mod sim;
pub mod storage;
pub mod tls;
pub mod transport;
