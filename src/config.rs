//! Configuration files: the cluster file that `raftbench node` and `raftbench client`
//! read. The core's knobs are [`crate::raft::Config`] itself, in files as in scenarios.
//!
//! Unknown keys are refused, and every error names the file and the key at fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::netem::{Endpoint, LinkOverride, LinkSettings, NetemError, NetworkConfig};
use crate::raft::{Config, Membership, NodeId};
use crate::transport::{QuicSettings, TransportKind, TransportSettings};

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type, missing key).
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and the line.
        source: Box<toml::de::Error>,
    },
    /// A value is impossible (or two values contradict each other).
    #[error("{path}: `{key}` {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key at fault, as written in the file.
        key: String,
        /// Why it cannot work.
        reason: String,
    },
}

/// One member in a cluster file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddr {
    /// The node's id (1, 2, ...).
    pub id: NodeId,
    /// Where peers reach it (QUIC: UDP; TCP transport: TCP).
    pub raft_addr: SocketAddr,
    /// Where clients reach it (UDP for QUIC; TCP with `client_transport = "tcp_insecure"`).
    pub client_addr: SocketAddr,
    /// Where it serves Prometheus metrics over HTTP at `/metrics` (TCP); none if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<SocketAddr>,
}

/// How a node persists its log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// Files under `data_dir`, synced as `sync` says before a vote or acknowledgement
    /// leaves (default).
    #[default]
    File,
    /// Files under `data_dir`, left to the OS page cache: survives a process crash, not a
    /// power loss (the same as `file` with `sync = "none"`).
    FileNoSync,
    /// Memory only: a restarted node comes back empty and cannot rejoin safely.
    Memory,
}

/// A cluster of `raftbench node` processes, as `bench-configs/cluster-3.toml` describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Transport between nodes: `quic` (default) or `tcp`.
    #[serde(default = "default_transport")]
    pub transport: TransportKind,
    /// Directory with the certificates `raftbench certs` wrote (relative to this file).
    #[serde(default = "default_certs")]
    pub certs: PathBuf,
    /// Directory under which node N keeps `node-N/` (relative to this file).
    #[serde(default = "default_data")]
    pub data_dir: PathBuf,
    /// How nodes persist.
    #[serde(default)]
    pub storage: StorageKind,
    /// With `storage = "file"`: `fsync` (default), `fdatasync` or `none` (not durable).
    #[serde(default)]
    pub sync: crate::storage::SyncPolicy,
    /// With `storage = "file"`: sync appends in groups on a syncer thread (default true);
    /// false syncs every append inline, holding the node's loop, for comparison.
    #[serde(default = "default_group_commit")]
    pub group_commit: bool,
    /// When a leader sends entries it has not made durable yet: `send_first` (default) or
    /// `persist_first`.
    #[serde(default)]
    pub append_order: crate::server::AppendOrder,
    /// The core's knobs (the same type and names as a scenario's `raft` table).
    #[serde(default)]
    pub raft: Config,
    /// QUIC parameters.
    #[serde(default)]
    pub quic: QuicSettings,
    /// Transport queue and frame limits.
    #[serde(default)]
    pub transport_settings: TransportSettings,
    /// The members.
    pub nodes: Vec<NodeAddr>,
    /// Link emulation on every link between nodes (`[network]`; default: none).
    #[serde(default)]
    pub network: LinkSettings,
    /// Link emulation per directed link (`[[links]]`, overriding `network`).
    #[serde(default)]
    pub links: Vec<LinkOverride>,
    /// How clients reach the nodes: `quic` (mutual TLS, default) or `tcp_insecure`.
    #[serde(default)]
    pub client_transport: crate::remote::ClientTransport,
    /// What one node lets its clients make it hold (`[client_limits]`).
    #[serde(default)]
    pub client_limits: crate::remote::ClientLimits,
    #[serde(skip)]
    base: PathBuf,
    #[serde(skip)]
    path: PathBuf,
}

fn default_group_commit() -> bool {
    true
}
fn default_transport() -> TransportKind {
    TransportKind::Quic
}
fn default_certs() -> PathBuf {
    PathBuf::from("certs")
}
fn default_data() -> PathBuf {
    PathBuf::from("data")
}

/// Reads a TOML file into `T`, with errors that name the file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigFileError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

impl ClusterFile {
    /// Reads and checks a cluster file.
    pub fn load(path: &Path) -> Result<ClusterFile, ConfigFileError> {
        let mut f: ClusterFile = read_toml(path)?;
        f.path = path.to_owned();
        f.base = path.parent().map(Path::to_owned).unwrap_or_default();
        f.validate()?;
        f.validate_client()?;
        Ok(f)
    }

    fn validate_client(&self) -> Result<(), ConfigFileError> {
        self.client_limits
            .validate()
            .map_err(|(key, reason)| self.invalid(format!("client_limits.{key}"), reason))
    }

    fn invalid(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigFileError {
        ConfigFileError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigFileError> {
        if self.nodes.is_empty() {
            return Err(self.invalid("nodes", "must list at least one node"));
        }
        if self.transport == TransportKind::Mem {
            return Err(self.invalid(
                "transport",
                "`mem` only works inside one process; use quic or tcp",
            ));
        }
        let mut ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(self.invalid("nodes.id", format!("ids must be unique, got {ids:?}")));
        }
        if ids.contains(&0) {
            return Err(self.invalid("nodes.id", "0 is not a valid node id"));
        }
        self.check_distinct_addrs()?;
        self.raft
            .validate()
            .map_err(|e| self.invalid(format!("raft.{}", e.field), e.reason))?;
        let net = NetworkConfig {
            network: self.network.clone(),
            links: self.links.clone(),
        };
        net.validate().map_err(|e| match e {
            NetemError::Invalid { key, reason } => self.invalid(key, reason),
        })?;
        for (i, l) in self.links.iter().enumerate() {
            for (end, which) in [(l.from, "from"), (l.to, "to")] {
                if let Endpoint::Node(n) = end {
                    if !ids.contains(&n) {
                        return Err(self.invalid(
                            format!("links[{i}].{which}"),
                            format!("names node {n}, which is not in `nodes`"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Refuses two sockets of the same protocol on one address: the second node to bind
    /// it would fail at start-up, or (QUIC's UDP beside TCP) peers would reach the wrong
    /// node and only see handshake warnings at run time.
    fn check_distinct_addrs(&self) -> Result<(), ConfigFileError> {
        // Peers use UDP over QUIC and TCP over TCP; clients and metrics always TCP.
        let raft_is_tcp = self.transport != TransportKind::Quic;
        let mut seen: Vec<(SocketAddr, bool, &'static str, NodeId)> = Vec::new();
        for n in &self.nodes {
            let mine = [
                (Some(n.raft_addr), raft_is_tcp, "raft_addr"),
                (Some(n.client_addr), true, "client_addr"),
                (n.metrics_addr, true, "metrics_addr"),
            ];
            for (addr, tcp, key) in mine {
                let Some(addr) = addr else { continue };
                if let Some(&(_, _, other_key, other)) =
                    seen.iter().find(|(a, t, _, _)| *a == addr && *t == tcp)
                {
                    let whose = if other == n.id {
                        format!("node {other}'s `{other_key}` and its `{key}`")
                    } else {
                        format!("node {other} (`{other_key}`) and node {} (`{key}`)", n.id)
                    };
                    return Err(self.invalid(
                        format!("nodes.{key}"),
                        format!(
                            "{addr} is given to both {whose}: every socket needs its own address"
                        ),
                    ));
                }
                seen.push((addr, tcp, key, n.id));
            }
        }
        Ok(())
    }

    /// Things the file allows that an operator should hear about at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.storage == StorageKind::Memory {
            w.push(format!(
                "{}: storage = \"memory\": nothing survives a restart; a restarted node comes \
                 back with an empty log and cannot rejoin safely",
                self.path.display()
            ));
        }
        w
    }

    /// The link emulation the file asks for; None when it emulates nothing (then no
    /// emulator is put in the path).
    pub fn network_config(&self) -> Option<NetworkConfig> {
        let net = NetworkConfig {
            network: self.network.clone(),
            links: self.links.clone(),
        };
        net.is_active().then_some(net)
    }

    /// Every member's id, ascending.
    pub fn ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        ids
    }

    /// The member with `id`.
    pub fn node(&self, id: NodeId) -> Option<&NodeAddr> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Member `id`'s place in the cluster and the core's knobs.
    ///
    /// Node processes discard their log prefix only through snapshots
    /// (`raft.snapshot_entries` above 0): without a snapshot, a restarted node rebuilds its
    /// key-value store by re-applying the whole log, which must therefore still be there,
    /// so `raft.compact_threshold` is ignored.
    pub fn core_config(&self, id: NodeId) -> Result<(Membership, Config), ConfigFileError> {
        if self.node(id).is_none() {
            return Err(self.invalid(
                "--id",
                format!("{id} is not among the nodes {:?}", self.ids()),
            ));
        }
        let mut cfg = self.raft.clone();
        if cfg.snapshot_entries == 0 {
            cfg.compact_threshold = 0;
        }
        Ok((Membership::new(id, self.ids()), cfg))
    }

    /// The certificate directory, resolved against the file's directory.
    pub fn certs_dir(&self) -> PathBuf {
        self.base.join(&self.certs)
    }

    /// Node `id`'s data directory, resolved against the file's directory.
    pub fn node_data_dir(&self, id: NodeId) -> PathBuf {
        self.base.join(&self.data_dir).join(format!("node-{id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<ClusterFile, ConfigFileError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        ClusterFile::load(&p)
    }

    const NODES: &str = r#"
[[nodes]]
id = 1
raft_addr = "127.0.0.1:7101"
client_addr = "127.0.0.1:7201"
"#;

    #[test]
    fn unknown_key_is_named() {
        let err = load_str(&format!("[raft]\nheartbeat = 5\n{NODES}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("heartbeat"), "{err}");
        assert!(err.contains("c.toml"), "{err}");
    }

    #[test]
    fn network_emulation_in_a_cluster_file() {
        let f = load_str(NODES).unwrap();
        assert!(f.network_config().is_none(), "no emulation unless asked");
        let f = load_str(&format!(
            "[network]\ndelay_ms = 2.5\n[[links]]\nfrom = 1\nto = \"client\"\njitter_ms = 0.5\n{NODES}"
        ))
        .unwrap();
        let net = f.network_config().expect("emulation asked for");
        assert_eq!(
            net.settings_for(1.into(), crate::netem::Endpoint::Client)
                .jitter_ms,
            0.5
        );
        let err = load_str(&format!("[[links]]\nfrom = 1\nto = 2\nloss = 3.0\n{NODES}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`links[0].loss` must be in [0,1]"), "{err}");
        assert!(err.contains("c.toml"), "{err}");
        let err = load_str(&format!(
            "[[links]]\nfrom = 1\nto = 2\ndelay_ms = 1.0\n{NODES}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`links[0].to` names node 2"), "{err}");
        let err = load_str(&format!("[network]\ndelay_msec = 1\n{NODES}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("delay_msec"), "{err}");
    }

    #[test]
    fn impossible_value_is_named() {
        let err = load_str(&format!(
            "[raft]\nheartbeat_ms = 900\nelection_timeout_ms = 500\n{NODES}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("raft.heartbeat_ms"), "{err}");
        let err = load_str(&format!("[raft]\nmax_inflight_msgs = 0\n{NODES}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("raft.max_inflight_msgs"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = load_str(&format!("[raft]\nheartbeat_ms = \"fast\"\n{NODES}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("heartbeat_ms"), "{err}");
    }

    fn two_nodes(a: &str, b: &str) -> String {
        format!("[[nodes]]\nid = 1\n{a}\n[[nodes]]\nid = 2\n{b}\n")
    }

    #[test]
    fn a_shared_address_is_refused_naming_both_nodes() {
        let err = load_str(&two_nodes(
            "raft_addr = \"127.0.0.1:7101\"\nclient_addr = \"127.0.0.1:7201\"",
            "raft_addr = \"127.0.0.1:7101\"\nclient_addr = \"127.0.0.1:7202\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("c.toml"), "{err}");
        assert!(err.contains("`nodes.raft_addr` 127.0.0.1:7101"), "{err}");
        assert!(err.contains("node 1") && err.contains("node 2"), "{err}");
        let err = load_str(&two_nodes(
            "raft_addr = \"127.0.0.1:7101\"\nclient_addr = \"127.0.0.1:7201\"",
            "raft_addr = \"127.0.0.1:7102\"\nclient_addr = \"127.0.0.1:7201\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`nodes.client_addr` 127.0.0.1:7201"), "{err}");
        assert!(err.contains("node 1") && err.contains("node 2"), "{err}");
        // A client port reused as another node's metrics port: both are TCP.
        let err = load_str(&two_nodes(
            "raft_addr = \"127.0.0.1:7101\"\nclient_addr = \"127.0.0.1:7201\"\nmetrics_addr = \"127.0.0.1:7301\"",
            "raft_addr = \"127.0.0.1:7102\"\nclient_addr = \"127.0.0.1:7202\"\nmetrics_addr = \"127.0.0.1:7201\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`nodes.metrics_addr` 127.0.0.1:7201"), "{err}");
        assert!(err.contains("node 1 (`client_addr`)"), "{err}");
        assert!(err.contains("node 2 (`metrics_addr`)"), "{err}");
        let err = load_str(&two_nodes(
            "raft_addr = \"127.0.0.1:7101\"\nclient_addr = \"127.0.0.1:7201\"\nmetrics_addr = \"127.0.0.1:7301\"",
            "raft_addr = \"127.0.0.1:7102\"\nclient_addr = \"127.0.0.1:7202\"\nmetrics_addr = \"127.0.0.1:7301\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`nodes.metrics_addr` 127.0.0.1:7301"), "{err}");
    }

    #[test]
    fn raft_and_client_may_share_a_port_only_over_quic() {
        // QUIC peers use UDP, clients TCP: the same address and port do not collide.
        let one =
            "[[nodes]]\nid = 1\nraft_addr = \"127.0.0.1:7101\"\nclient_addr = \"127.0.0.1:7101\"\n";
        let f = load_str(one).unwrap();
        assert!(f.node(1).unwrap().metrics_addr.is_none());
        let err = load_str(&format!("transport = \"tcp\"\n{one}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("node 1's `raft_addr` and its `client_addr`"),
            "{err}"
        );
    }

    #[test]
    fn memory_storage_warns_that_nothing_survives_a_restart() {
        assert!(load_str(NODES).unwrap().warnings().is_empty());
        let w = load_str(&format!("storage = \"memory\"\n{NODES}"))
            .unwrap()
            .warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("nothing survives a restart"), "{w:?}");
        assert!(w[0].contains("c.toml"), "{w:?}");
    }

    #[test]
    fn client_transport_and_limits() {
        let f = load_str(NODES).unwrap();
        assert_eq!(f.client_transport, crate::remote::ClientTransport::Quic);
        assert_eq!(f.client_limits, crate::remote::ClientLimits::default());
        let f = load_str(&format!(
            "client_transport = \"tcp_insecure\"\n[client_limits]\nread_timeout_ms = 50\n{NODES}"
        ))
        .unwrap();
        assert_eq!(
            f.client_transport,
            crate::remote::ClientTransport::TcpInsecure
        );
        assert_eq!(f.client_limits.read_timeout_ms, 50);
        let err = load_str(&format!("[client_limits]\nmax_connections = 0\n{NODES}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`client_limits.max_connections`"), "{err}");
        assert!(err.contains("c.toml"), "{err}");
        let err = load_str(&format!("client_transport = \"tcp\"\n{NODES}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_transport"), "{err}");
    }

    #[test]
    fn the_shipped_cluster_file_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-configs/cluster-3.toml");
        let f = ClusterFile::load(&p).unwrap();
        assert_eq!(f.ids(), vec![1, 2, 3]);
        assert_eq!(f.core_config(2).unwrap().0.voters, vec![1, 2, 3]);
        // The file spells out the client limits' defaults; they must stay the defaults.
        assert_eq!(f.client_limits, crate::remote::ClientLimits::default());
        assert_eq!(f.client_transport, crate::remote::ClientTransport::Quic);
        assert!(f.core_config(4).is_err());
        let metrics: Vec<_> = f.nodes.iter().map(|n| n.metrics_addr).collect();
        assert_eq!(
            metrics,
            ["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"]
                .map(|a| Some(a.parse().unwrap()))
        );
    }
}
