//! The client listener's figures in `/metrics`: connections, refusals, closes by reason,
//! requests and the bytes it holds for its clients (see [`crate::remote::ListenerStats`]).

use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::{counter, family, gauge};
use crate::remote::ListenerMonitor;

/// Reads a client listener's counters at scrape time.
pub struct ListenerCollector(ListenerMonitor);

impl ListenerCollector {
    /// A collector of `monitor`'s listener.
    pub fn new(monitor: ListenerMonitor) -> ListenerCollector {
        ListenerCollector(monitor)
    }
}

impl std::fmt::Debug for ListenerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerCollector")
    }
}

impl Collector for ListenerCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = self.0.stats();
        let l = self.0.limits();
        counter(
            &mut e,
            "raftbench_client_connections_accepted",
            "Client connections served (handshake done)",
            s.accepted.load(Relaxed),
        )?;
        counter(
            &mut e,
            "raftbench_client_connections_refused",
            "Client connections refused at the connection cap (client_limits.max_connections)",
            s.refused.load(Relaxed),
        )?;
        counter(
            &mut e,
            "raftbench_client_handshakes_failed",
            "Client QUIC handshakes that failed (no, foreign or wrong-role certificate, timeout)",
            s.handshake_failed.load(Relaxed),
        )?;
        family(
            &mut e,
            "raftbench_client_connections_closed",
            "Client connections the node closed, by reason (bad_frame: malformed or oversized; timeout: read or write timeout)",
            MetricType::Counter,
            "reason",
            &[
                ("bad_frame".into(), s.closed_bad_frame.load(Relaxed)),
                ("timeout".into(), s.closed_timeout.load(Relaxed)),
            ],
        )?;
        counter(
            &mut e,
            "raftbench_client_requests",
            "Client frames read (requests, status, clock and recording requests; valid or not)",
            s.requests.load(Relaxed),
        )?;
        counter(
            &mut e,
            "raftbench_client_bad_commands",
            "Client requests refused before proposing because they are not a command",
            s.bad_commands.load(Relaxed),
        )?;
        gauge(
            &mut e,
            "raftbench_client_connections_open",
            "Client connections open now",
            s.open.load(Relaxed) as u64,
        )?;
        gauge(
            &mut e,
            "raftbench_client_max_inflight",
            "Most requests one client connection had read and not yet answered",
            s.max_inflight.load(Relaxed) as u64,
        )?;
        gauge(
            &mut e,
            "raftbench_client_buffered_bytes",
            "Bytes read from clients and not yet answered, now",
            self.0.buffered_bytes() as u64,
        )?;
        gauge(
            &mut e,
            "raftbench_client_max_buffered_bytes",
            "Limit on those bytes (client_limits.max_buffered_bytes)",
            l.max_buffered_bytes as u64,
        )?;
        gauge(
            &mut e,
            "raftbench_client_max_connections",
            "Limit on client connections open at once (client_limits.max_connections)",
            l.max_connections as u64,
        )?;
        Ok(())
    }
}
