//! Deterministic simulation of a cluster (in progress).
