//! The `raftbench` command line: the main job, and the tools around a cluster.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use raftbench::config::ClusterFile;
use raftbench::raft::NodeId;
use raftbench::remote::RemoteClient;

/// Raft log replication over QUIC, and a harness that measures it.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the simulated-cluster demo (the default when no command is given).
    Demo(DemoArgs),
    /// Runs the deterministic simulation with invariant checks over many seeds.
    Sim(SimArgs),
    /// Writes a cluster CA and one certificate per node.
    Certs {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of nodes (ids 1..=N).
        #[arg(long)]
        nodes: usize,
    },
    /// Runs one node of a cluster file as this process.
    Node {
        /// The cluster file (see bench-configs/cluster-3.toml).
        #[arg(long)]
        config: PathBuf,
        /// This node's id.
        #[arg(long)]
        id: NodeId,
    },
    /// Talks to a cluster of node processes.
    Client {
        /// The cluster file.
        #[arg(long)]
        config: PathBuf,
        /// Ask this node first (default: the lowest id); redirects are followed.
        #[arg(long)]
        node: Option<NodeId>,
        #[command(subcommand)]
        op: ClientOp,
    },
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Virtual seconds to simulate.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Proposals per virtual second.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct SimArgs {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
}

#[derive(Subcommand)]
enum ClientOp {
    /// Stores VALUE under KEY.
    Put { key: String, value: String },
    /// Prints the value under KEY (read through the log).
    Get { key: String },
    /// Prints every node's role, term, leader, commit and applied index.
    Status,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Cmd::Demo(DemoArgs {
        seconds: 10.0,
        rate: 2000.0,
        seed: 1,
    })) {
        Cmd::Demo(a) => demo(a),
        Cmd::Sim(a) => sim(a),
        Cmd::Certs { out, nodes } => {
            if nodes == 0 {
                bail!("--nodes must be at least 1");
            }
            raftbench::tls::write_cluster(&out, nodes)
                .with_context(|| format!("writing certificates to {}", out.display()))?;
            println!(
                "wrote a cluster CA and {nodes} node certificates to {}",
                out.display()
            );
            Ok(())
        }
        Cmd::Node { config, id } => {
            let file = ClusterFile::load(&config)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(raftbench::process::run_node(&file, id, stop_signal()))?;
            Ok(())
        }
        Cmd::Client { config, node, op } => {
            let file = ClusterFile::load(&config)?;
            let addrs: HashMap<NodeId, _> =
                file.nodes.iter().map(|n| (n.id, n.client_addr)).collect();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut client = RemoteClient::new(addrs);
                if let Some(n) = node {
                    client.prefer(n);
                }
                match op {
                    ClientOp::Put { key, value } => {
                        client.put(key, value).await?;
                        println!("ok");
                    }
                    ClientOp::Get { key } => match client.get(key).await? {
                        Some(v) => println!("{}", String::from_utf8_lossy(&v)),
                        None => println!("(none)"),
                    },
                    ClientOp::Status => {
                        println!("node  role       term  leader  commit  applied  last");
                        for id in file.ids() {
                            match client.status(id).await {
                                Ok(s) => println!(
                                    "{:<5} {:<10} {:<5} {:<7} {:<7} {:<8} {}",
                                    id,
                                    format!("{:?}", s.role),
                                    s.term,
                                    s.leader.map_or("-".to_string(), |l| l.to_string()),
                                    s.commit_index,
                                    s.applied_index,
                                    s.last_index
                                ),
                                Err(e) => println!("{id:<5} unreachable: {e}"),
                            }
                        }
                    }
                }
                Ok(())
            })
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn demo(a: DemoArgs) -> Result<()> {
    let _ = a;
    bail!("the simulated demo is being wired in")
}

fn sim(a: SimArgs) -> Result<()> {
    let _ = a;
    bail!("the simulation runner is being wired in")
}
