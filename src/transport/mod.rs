//! Transports that carry Raft messages between nodes (in progress).
