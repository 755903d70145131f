//! Binary codec for Raft messages (in progress).
