//! Cluster certificates and mutual TLS (in progress).
