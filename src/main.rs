//! The `raftbench` command line: the main job, and the tools around a cluster.

use std::io::IsTerminal;
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
    /// Runs a scenario file and writes results/runs/<name>/ (no command: bench-configs/default.toml).
    Run {
        /// The scenario file.
        config: PathBuf,
        /// Results directory (default: results/runs/<scenario name>/, which git ignores).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write into results/<scenario name>/, replacing the published reference results.
        #[arg(long, conflicts_with = "out")]
        publish: bool,
        /// Overrides a key of the scenario's base for every point, by the dotted path a
        /// sweep uses (`--set workload.rate=500 --set raft.heartbeat_ms=10`); a series'
        /// own `set` and sweeps still take precedence. Repeatable.
        #[arg(long = "set", value_name = "KNOB=VALUE")]
        set: Vec<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Redraws plots and report.md of a results directory from its summary.json.
    Report {
        /// A results directory, e.g. results/default.
        dir: PathBuf,
    },
    /// Measures the raw and transport round trips (the physical floor) and prints them.
    Baseline {
        /// Round trips per floor.
        #[arg(long, default_value_t = 5000)]
        samples: usize,
        /// `per_node` (a runtime per endpoint thread) or `shared`.
        #[arg(long, default_value = "per_node")]
        threading: String,
        /// Ping at this many per second with Poisson spacing, as a point at that rate
        /// offers requests, instead of back to back (the rate-matched floor).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Runs the simulated-cluster demo: commits and latency in virtual time, no I/O.
    Demo(DemoArgs),
    /// Runs the deterministic simulation with invariant checks over many seeds.
    Sim(SimArgs),
    /// Writes a cluster CA, one certificate per node and a client certificate (client.pem),
    /// or with --add-client another client certificate from the existing CA.
    Certs {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of nodes (ids 1..=N).
        #[arg(long, required_unless_present = "add_client")]
        nodes: Option<usize>,
        /// Sign one more client certificate, client-NAME.pem, with the CA already in --out
        /// (for a load generator on another host).
        #[arg(long, value_name = "NAME", conflicts_with_all = ["nodes", "force"])]
        add_client: Option<String>,
        /// Replace an existing CA and keys (running nodes would then refuse each other).
        #[arg(long)]
        force: bool,
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
    /// Several hosts on this machine: network namespaces for three nodes and a load
    /// host, joined by a bridge (needs root).
    Netns {
        #[command(subcommand)]
        op: NetnsOp,
    },
    /// Serves raw echoes for the floor of node processes (the harness starts it; prints
    /// `listening ADDR`, then echoes until killed).
    #[command(hide = true)]
    Echo {
        /// `quic` or `tcp`.
        #[arg(long, default_value = "quic")]
        transport: String,
        /// Address to listen on (port 0: any free port).
        #[arg(long)]
        bind: std::net::SocketAddr,
        /// Certificate directory of a 2-node cluster (this side is node 2).
        #[arg(long)]
        certs: PathBuf,
        /// Bytes per ping.
        #[arg(long, default_value_t = raftbench::harness::baseline::DEFAULT_PAYLOAD_BYTES)]
        payload: usize,
    },
    /// Offers an open-loop load to a cluster of node processes from this process and writes
    /// its counts and histograms (several such processes merge into one result).
    Load(raftbench::harness::load_process::LoadArgs),
    /// Talks to a cluster of node processes.
    Client {
        /// The cluster file.
        #[arg(long)]
        config: PathBuf,
        /// Ask this node first (default: the lowest id); redirects are followed.
        #[arg(long)]
        node: Option<NodeId>,
        /// The client certificate to present: client-NAME.pem of the cluster's certificate
        /// directory (default: client.pem).
        #[arg(long, value_name = "NAME", default_value = "")]
        cert: String,
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
enum NetnsOp {
    /// Creates the namespaces, links and addresses that are missing; writes DIR/cluster.toml
    /// and its certificates.
    Up {
        /// Namespace names start with this (PREFIX-n1..n3, PREFIX-load, PREFIX-sw).
        #[arg(long, default_value = "rb")]
        prefix: String,
        /// Where the cluster file, certificates and node data go
        /// (default: $TMPDIR/raftbench-netns-PREFIX).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Deletes the namespaces that exist (their links and bridge go with them).
    Down {
        /// The prefix given to `up`.
        #[arg(long, default_value = "rb")]
        prefix: String,
        /// Send SIGTERM to processes still running inside first.
        #[arg(long)]
        kill: bool,
    },
    /// Shows which namespaces exist, their addresses and how many processes run inside.
    Status {
        /// The prefix given to `up`.
        #[arg(long, default_value = "rb")]
        prefix: String,
    },
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
        // Colour codes only for a person watching; a log file gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command.unwrap_or_else(|| Cmd::Run {
        config: default_scenario(),
        out: None,
        publish: false,
        set: Vec::new(),
        quiet: false,
    }) {
        Cmd::Run {
            config,
            out,
            publish,
            set,
            quiet,
        } => run(&config, out, publish, &set, quiet),
        Cmd::Report { dir } => {
            let summary = raftbench::harness::output::read_run(&dir)?;
            raftbench::harness::output::write_csv(&dir.join("summary.csv"), &summary)?;
            let plots = raftbench::harness::plots::write_plots(&dir, &summary, &[])?;
            raftbench::harness::report::write_report(&dir, &summary, &plots)?;
            println!("{}", raftbench::harness::report::table(&summary));
            println!("report: {}", dir.join("report.md").display());
            Ok(())
        }
        Cmd::Baseline {
            samples,
            threading,
            rate,
        } => {
            let threading: raftbench::cluster::Threading =
                serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                    serde::de::value::Error,
                >::new(&threading))
                .map_err(|e| anyhow::anyhow!("--threading: {e}"))?;
            let pace = rate.map(|rate| raftbench::harness::baseline::Pace {
                rate,
                arrival: raftbench::harness::scenario::Arrival::Poisson,
                seed: 1,
            });
            let floors = raftbench::harness::baseline::measure_all(
                threading,
                &raftbench::transport::QuicSettings::default(),
                samples,
                pace,
            );
            println!(
                "{:<10} {:>10} {:>10} {:>10} {:>10}",
                "floor", "p50 us", "p99 us", "p99.9 us", "max us"
            );
            for (b, _) in floors {
                println!(
                    "{:<10} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                    b.transport, b.rtt.p50, b.rtt.p99, b.rtt.p999, b.rtt.max
                );
            }
            Ok(())
        }
        Cmd::Demo(a) => demo(a),
        Cmd::Sim(a) => sim(a),
        Cmd::Certs {
            out,
            add_client: Some(name),
            ..
        } => {
            let path = raftbench::tls::issue_client(&out, &name).with_context(|| {
                format!("issuing client certificate {name:?} in {}", out.display())
            })?;
            println!(
                "wrote client certificate {} and its key; copy them with {} to the client's host",
                path.display(),
                raftbench::tls::ca_cert_path(&out).display()
            );
            Ok(())
        }
        Cmd::Certs {
            out, nodes, force, ..
        } => {
            let nodes = nodes.expect("clap requires --nodes without --add-client");
            if nodes == 0 {
                bail!("--nodes must be at least 1");
            }
            let existing = raftbench::tls::existing_cluster_files(&out, nodes);
            if !existing.is_empty() && !force {
                let names: Vec<String> = existing.iter().map(|p| p.display().to_string()).collect();
                bail!(
                    "{} already holds a cluster's certificates ({}); a new CA would make \
                     nodes running with the old ones refuse each other. Pass --force to \
                     replace them",
                    out.display(),
                    names.join(", ")
                );
            }
            raftbench::tls::write_cluster(&out, nodes)
                .with_context(|| format!("writing certificates to {}", out.display()))?;
            println!(
                "wrote a cluster CA, {nodes} node certificates and a client certificate \
                 (client.pem) to {}",
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
        Cmd::Netns { op } => netns(op),
        Cmd::Echo {
            transport,
            bind,
            certs,
            payload,
        } => {
            let kind = match transport.as_str() {
                "quic" => raftbench::transport::TransportKind::Quic,
                "tcp" => raftbench::transport::TransportKind::Tcp,
                other => bail!("--transport {other}: expected quic or tcp"),
            };
            raftbench::harness::baseline::serve_echo(
                kind,
                bind,
                &certs,
                payload,
                &raftbench::transport::QuicSettings::default(),
                |addr| {
                    use std::io::Write;
                    println!("listening {addr}");
                    let _ = std::io::stdout().flush();
                },
            )?;
            Ok(())
        }
        Cmd::Load(args) => {
            let part = raftbench::harness::load_process::run_load(&args)?;
            println!("{}  (part: {})", part.one_line(), args.out.display());
            Ok(())
        }
        Cmd::Client {
            config,
            node,
            cert,
            op,
        } => {
            let file = ClusterFile::load(&config)?;
            if let Some(n) = node.filter(|&n| file.node(n).is_none()) {
                bail!(
                    "--node {n} is not a member of {}: its nodes are {:?}",
                    config.display(),
                    file.ids()
                );
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut client = RemoteClient::for_cluster(&file, &cert)?;
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
                        println!("node  role       term  leader  commit  applied  last     cpu_s    rss_mb");
                        for id in file.ids() {
                            match client.status(id).await {
                                Ok(s) => println!(
                                    "{:<5} {:<10} {:<5} {:<7} {:<7} {:<8} {:<8} {:<8.2} {:.1}",
                                    id,
                                    format!("{:?}", s.role),
                                    s.term,
                                    s.leader.map_or("-".to_string(), |l| l.to_string()),
                                    s.commit_index,
                                    s.applied_index,
                                    s.last_index,
                                    s.cpu_ns as f64 / 1e9,
                                    s.rss_bytes as f64 / (1 << 20) as f64,
                                ),
                                Err(e) => println!("{id:<5} unreachable: {e}"),
                            }
                        }
                    }
                }
                client.close().await;
                Ok(())
            })
        }
    }
}

fn netns(op: NetnsOp) -> Result<()> {
    use raftbench::netns;
    match op {
        NetnsOp::Up { prefix, dir } => {
            let layout = netns::Layout::new(&prefix)?;
            netns::up(&layout)?;
            let dir = dir.unwrap_or_else(|| netns::default_dir(&prefix));
            let config = netns::write_cluster(&layout, &dir)?;
            let bin = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "raftbench".into());
            println!("namespaces up on {}:", netns::SUBNET);
            for h in &layout.hosts {
                println!("  {:<14} {}", h.netns, h.addr);
            }
            println!("cluster file: {}", config.display());
            println!("start each node (one terminal each):");
            for h in &layout.hosts {
                if let Some(id) = h.node {
                    println!(
                        "  ip netns exec {} {bin} node --config {} --id {id}",
                        h.netns,
                        config.display()
                    );
                }
            }
            println!("load from the load host:");
            println!(
                "  ip netns exec {} {bin} client --config {} put greeting hello",
                layout.load_host().netns,
                config.display()
            );
            println!("tear down: {bin} netns down --prefix {prefix}");
            Ok(())
        }
        NetnsOp::Down { prefix, kill } => {
            let layout = netns::Layout::new(&prefix)?;
            let left = netns::down(&layout, kill)?;
            for (ns, pid) in &left {
                eprintln!(
                    "warning: process {pid} still runs in {ns}, which lives on until it exits \
                     (use --kill to stop such processes)"
                );
            }
            println!("namespaces with prefix {prefix} are down");
            Ok(())
        }
        NetnsOp::Status { prefix } => {
            let layout = netns::Layout::new(&prefix)?;
            let states = netns::status(&layout)?;
            for s in &states {
                match (&s.exists, &s.eth0) {
                    (false, _) => println!("{:<14} absent", s.netns),
                    (true, eth0) => println!(
                        "{:<14} present  eth0: {:<28} processes: {}",
                        s.netns,
                        eth0.as_deref().unwrap_or("-"),
                        s.pids
                    ),
                }
            }
            let up = states.iter().filter(|s| s.exists).count();
            println!(
                "{}",
                match up {
                    0 => "down",
                    n if n == states.len() => "up",
                    _ =>
                        "partial: run `netns up` again to complete it or `netns down` to remove it",
                }
            );
            Ok(())
        }
    }
}

/// `bench-configs/default.toml` in the working directory, else in the source tree.
fn default_scenario() -> PathBuf {
    let local = PathBuf::from("bench-configs/default.toml");
    if local.exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-configs/default.toml")
}

fn run(
    config: &std::path::Path,
    out: Option<PathBuf>,
    publish: bool,
    set: &[String],
    quiet: bool,
) -> Result<()> {
    use raftbench::harness::{report, run, scenario::Scenario};
    let overrides = set
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => anyhow::bail!("--set {kv}: expected KNOB=VALUE, e.g. --set workload.rate=500"),
        })
        .collect::<Result<Vec<_>>>()?;
    let sc = Scenario::load_with(config, &overrides)?;
    // A plain run never replaces the published references: it writes under results/runs/.
    let out_dir = match (out, publish) {
        (Some(dir), _) => dir,
        (None, true) => PathBuf::from("results").join(&sc.file.name),
        (None, false) => PathBuf::from("results/runs").join(&sc.file.name),
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build measures the compiler, not Raft; use --release");
    }
    eprintln!(
        "running {} ({} points) from {} into {}",
        sc.file.name,
        sc.points.len(),
        config.display(),
        out_dir.display()
    );
    let summary = run::run_scenario(
        &sc,
        &run::RunOptions {
            out_dir: out_dir.clone(),
            progress: !quiet,
        },
    )?;
    println!("{}", report::table(&summary));
    println!(
        "results: {}  (report: {})",
        out_dir.display(),
        out_dir.join("report.md").display()
    );
    Ok(())
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
    let r = raftbench::sim::demo(a.seconds, a.rate, a.seed)?;
    println!(
        "simulated 3-node cluster, {} virtual s at {} proposals/s (seed {}):",
        a.seconds, a.rate, a.seed
    );
    println!("  commits              {}", r.commits);
    println!(
        "  commits per second   {:.0} (virtual time)",
        r.commits_per_sec_virtual
    );
    println!(
        "  commit latency       p50 {:?}  p99 {:?} (virtual time)",
        r.commit_latency_p50, r.commit_latency_p99
    );
    println!("  messages per commit  {:.2}", r.messages_per_commit);
    println!("  AppendEntries/commit {:.2}", r.appends_per_commit);
    Ok(())
}

fn sim(a: SimArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    for seed in a.start..a.start + a.seeds {
        if let Err(e) = raftbench::sim::run_seed(seed) {
            eprintln!("seed {seed}: {e}");
            eprintln!("  replay: {}", raftbench::sim::replay_command(seed));
            failed.push(seed);
        }
    }
    println!(
        "{} seeds ({}..{}) in {:.1} s: {} passed, {} failed",
        a.seeds,
        a.start,
        a.start + a.seeds,
        started.elapsed().as_secs_f64(),
        a.seeds as usize - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("violations at seeds {failed:?}");
    }
    Ok(())
}
