//! Several hosts on one machine: `raftbench netns up|down|status` makes three node hosts
//! and one load host out of Linux network namespaces, joined by veth pairs to a bridge,
//! and writes a cluster file (and its certificates) that places one node on each.
//!
//! Layout for prefix `P` (default `rb`):
//!
//! - `P-sw`: a namespace holding only the bridge `br0`, so that nothing is added to the
//!   machine's own namespace; each host's veth peer `v-<host>` is a port of `br0`.
//! - `P-n1`, `P-n2`, `P-n3`: node hosts, `eth0` at 10.213.0.1, .2, .3 (/24).
//! - `P-load`: the load host, `eth0` at 10.213.0.100.
//!
//! The namespaces can reach each other and nothing else: no address of theirs is routed
//! from the machine, and they have no default route. Every step is done with `ip` and is
//! idempotent: `up` skips what exists, `down` deletes what exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::raft::NodeId;

/// Node hosts `up` makes.
pub const NODE_HOSTS: NodeId = 3;

/// The subnet the namespaces share (private, RFC 1918).
pub const SUBNET: &str = "10.213.0.0/24";

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The prefix would make unusable or ambiguous names.
    #[error("prefix {0:?}: use 1 to 12 characters among a-z, 0-9 and '-', starting with a letter")]
    BadPrefix(String),
    /// `ip` could not be run at all.
    #[error("cannot run `ip` (package iproute2): {0}")]
    NoIp(std::io::Error),
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}{hint}")]
    Ip {
        /// Its arguments.
        args: String,
        /// What it printed.
        stderr: String,
        /// What to do about it, when known.
        hint: &'static str,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificates could not be issued.
    #[error(transparent)]
    Certs(#[from] crate::tls::TlsError),
    /// The calling thread could not enter a namespace.
    #[error("cannot enter network namespace {netns}: {source}")]
    Enter {
        /// The namespace.
        netns: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Moves the calling thread (only it: a network namespace is per thread) into network
/// namespace `netns`, as `ip netns exec` does for a process. Sockets it makes afterwards
/// live in that namespace, whichever thread later uses them.
pub fn enter(netns: &str) -> Result<(), NetnsError> {
    use std::os::fd::AsRawFd;
    let err = |source| NetnsError::Enter {
        netns: netns.to_string(),
        source,
    };
    let f = std::fs::File::open(Path::new("/var/run/netns").join(netns)).map_err(err)?;
    // SAFETY: setns(2) on a namespace file we hold open; CLONE_NEWNET changes only this
    // thread's network namespace, which a multithreaded process may do.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// One host of the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Its namespace.
    pub netns: String,
    /// Short tag (`n1`, `load`), also naming its veth port on the bridge.
    pub tag: String,
    /// Its address on the bridge.
    pub addr: std::net::Ipv4Addr,
    /// The node it runs, if a node host.
    pub node: Option<NodeId>,
}

/// The namespaces of one prefix.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The prefix every namespace name starts with.
    pub prefix: String,
    /// The namespace holding the bridge.
    pub switch: String,
    /// The node hosts, then the load host.
    pub hosts: Vec<Host>,
}

impl Layout {
    /// The layout for `prefix`.
    pub fn new(prefix: &str) -> Result<Layout, NetnsError> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 12
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(NetnsError::BadPrefix(prefix.to_string()));
        }
        let mut hosts: Vec<Host> = (1..=NODE_HOSTS)
            .map(|id| Host {
                netns: format!("{prefix}-n{id}"),
                tag: format!("n{id}"),
                addr: std::net::Ipv4Addr::new(10, 213, 0, id as u8),
                node: Some(id),
            })
            .collect();
        hosts.push(Host {
            netns: format!("{prefix}-load"),
            tag: "load".into(),
            addr: std::net::Ipv4Addr::new(10, 213, 0, 100),
            node: None,
        });
        Ok(Layout {
            prefix: prefix.to_string(),
            switch: format!("{prefix}-sw"),
            hosts,
        })
    }

    /// Every namespace name, hosts first.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.hosts.iter().map(|h| h.netns.clone()).collect();
        v.push(self.switch.clone());
        v
    }

    /// The load host.
    pub fn load_host(&self) -> &Host {
        self.hosts.last().expect("the layout has a load host")
    }

    /// The cluster file for the node hosts: QUIC between nodes, certificates in `certs/`,
    /// data under `data/`, the same ports on every host.
    pub fn cluster_file(&self) -> String {
        let mut s = format!(
            "# Written by `raftbench netns up --prefix {p}`: one node per namespace\n\
             # {p}-n1..{p}-n3, load from {p}-load.\n\
             transport = \"quic\"\ncerts = \"certs\"\ndata_dir = \"data\"\nstorage = \"file\"\n\
             \n[raft]\nheartbeat_ms = 50\nelection_timeout_ms = 500\n",
            p = self.prefix
        );
        for h in &self.hosts {
            if let Some(id) = h.node {
                s.push_str(&format!(
                    "\n[[nodes]]\nid = {id}\nraft_addr = \"{a}:7101\"\nclient_addr = \"{a}:7201\"\nmetrics_addr = \"{a}:7301\"\n",
                    a = h.addr
                ));
            }
        }
        s
    }
}

/// The directory `up` writes into when none is given.
pub fn default_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("raftbench-netns-{prefix}"))
}

/// Runs `ip ARGS`; its stdout.
fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(NetnsError::NoIp)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let hint = if stderr.contains("Operation not permitted") || stderr.contains("Permission denied")
    {
        " (creating network namespaces needs root or CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    } else {
        ""
    };
    Err(NetnsError::Ip {
        args: args.join(" "),
        stderr,
        hint,
    })
}

/// Whether `ip ARGS` succeeds (an existence check).
fn ip_ok(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The namespaces `ip netns list` shows.
fn existing() -> Result<Vec<String>, NetnsError> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Creates whatever of `layout` is missing and brings it up.
pub fn up(layout: &Layout) -> Result<(), NetnsError> {
    let have = existing()?;
    for ns in layout.namespaces() {
        if !have.contains(&ns) {
            ip(&["netns", "add", &ns])?;
        }
    }
    let sw = layout.switch.as_str();
    if !ip_ok(&["-n", sw, "link", "show", "br0"]) {
        ip(&["-n", sw, "link", "add", "br0", "type", "bridge"])?;
    }
    ip(&["-n", sw, "link", "set", "br0", "up"])?;
    ip(&["-n", sw, "link", "set", "lo", "up"])?;
    for h in &layout.hosts {
        let port = format!("v-{}", h.tag);
        if !ip_ok(&["-n", sw, "link", "show", &port]) {
            // Both ends made at once, each in its namespace: no name ever appears in the
            // machine's own namespace.
            ip(&[
                "-n", sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &h.netns,
            ])?;
        }
        ip(&["-n", sw, "link", "set", &port, "master", "br0", "up"])?;
        let cidr = format!("{}/24", h.addr);
        ip(&["-n", &h.netns, "addr", "replace", &cidr, "dev", "eth0"])?;
        ip(&["-n", &h.netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &h.netns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// Writes `dir/cluster.toml` for `layout` and issues its certificates into `dir/certs`
/// (kept if already there: nodes running with them would refuse new ones). Returns the
/// cluster file's path.
pub fn write_cluster(layout: &Layout, dir: &Path) -> Result<PathBuf, NetnsError> {
    std::fs::create_dir_all(dir).map_err(|source| NetnsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join("cluster.toml");
    std::fs::write(&path, layout.cluster_file()).map_err(|source| NetnsError::Write {
        path: path.clone(),
        source,
    })?;
    let certs = dir.join("certs");
    let n = NODE_HOSTS as usize;
    if crate::tls::existing_cluster_files(&certs, n).len() < 2 + 2 * n {
        crate::tls::write_cluster(&certs, n)?;
    }
    Ok(path)
}

/// Processes still running in `ns` (`ip netns pids`).
pub fn pids(ns: &str) -> Vec<u32> {
    ip(&["netns", "pids", ns])
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Deletes whatever of `layout` exists. With `kill`, processes still running inside are
/// sent SIGTERM first; without it, a namespace with processes is deleted by name only
/// (it lives on until they exit), and their pids are returned.
pub fn down(layout: &Layout, kill: bool) -> Result<Vec<(String, u32)>, NetnsError> {
    let have = existing()?;
    let mut left = Vec::new();
    for ns in layout.namespaces() {
        if !have.contains(&ns) {
            continue;
        }
        for pid in pids(&ns) {
            if kill {
                // SAFETY: kill(2) with a pid that `ip` just listed; at worst it has exited.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            } else {
                left.push((ns.clone(), pid));
            }
        }
        // Deleting a host's namespace destroys its veth pair; the switch's, the bridge.
        ip(&["netns", "del", &ns])?;
    }
    Ok(left)
}

/// One namespace's state, as `status` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsState {
    /// The namespace.
    pub netns: String,
    /// Whether it exists.
    pub exists: bool,
    /// `eth0`'s state and addresses (`ip -br addr`), if it has one.
    pub eth0: Option<String>,
    /// Processes inside.
    pub pids: usize,
}

/// The state of every namespace of `layout`.
pub fn status(layout: &Layout) -> Result<Vec<NsState>, NetnsError> {
    let have = existing()?;
    Ok(layout
        .namespaces()
        .into_iter()
        .map(|ns| {
            let exists = have.contains(&ns);
            let eth0 = exists
                .then(|| ip(&["-n", &ns, "-br", "addr", "show", "dev", "eth0"]).ok())
                .flatten()
                .map(|s| s.split_whitespace().skip(1).collect::<Vec<_>>().join(" "));
            let pids = if exists { pids(&ns).len() } else { 0 };
            NsState {
                netns: ns,
                exists,
                eth0,
                pids,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        let l = Layout::new("rb").unwrap();
        assert_eq!(
            l.namespaces(),
            ["rb-n1", "rb-n2", "rb-n3", "rb-load", "rb-sw"]
        );
        assert_eq!(l.load_host().addr.to_string(), "10.213.0.100");
        for bad in ["", "Rb", "1rb", "rb_x", "averyveryverylongprefix", "a b"] {
            assert!(Layout::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_cluster_file_places_one_node_per_host() {
        let l = Layout::new("rb").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cluster.toml");
        std::fs::write(&p, l.cluster_file()).unwrap();
        let f = crate::config::ClusterFile::load(&p).unwrap();
        assert_eq!(f.ids(), vec![1, 2, 3]);
        for (h, n) in l.hosts.iter().zip(&f.nodes) {
            assert_eq!(n.raft_addr.ip().to_string(), h.addr.to_string());
            assert_eq!(n.client_addr.ip(), n.raft_addr.ip());
            assert_eq!(n.metrics_addr.map(|a| a.ip()), Some(n.raft_addr.ip()));
        }
    }
}
