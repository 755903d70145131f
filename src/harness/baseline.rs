//! The physical floor a run states its commit latency against (README, "How it measures"):
//! ping-pong round trips between two endpoints of the kind the cluster uses, arranged on
//! threads the way the cluster arranges its nodes, measured by the same binary in the
//! same run, so that latencies can be reported as ratios on a shared, noisy machine.
//!
//! Two depths of floor ([`FloorLevel`]):
//!
//! - [`FloorLevel::Raw`]: the bare network round trip. QUIC is plain quinn with the
//!   cluster's mutual TLS and transport parameters, one bidirectional stream, a
//!   `payload_bytes` message echoed back; TCP is a `TcpStream` with `TCP_NODELAY`. For
//!   memory, a pair of tokio channels: what is left is the cost of waking the other side.
//! - [`FloorLevel::Transport`]: through our own [`Transport`]s: an AppendEntries with one
//!   `payload_bytes` entry from node 1, answered by an AppendEntriesResponse from a task
//!   on node 2. This adds the codec, the writer task and the channels: the floor that Raft
//!   messages actually see.
//!
//! The two endpoints run as the nodes of a [`crate::cluster::LocalCluster`] do
//! ([`Threading`]): each on its own thread with a current-thread runtime, so a round trip
//! crosses threads as a Raft round trip does, or both on one multi-thread runtime. The
//! timing loop runs on endpoint 1's runtime, like a leader's driver.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use quinn::Endpoint;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::histograms::SIGFIGS;
use super::load::Schedule;
use super::scenario::{Arrival, LoadMode, PointConfig};
use super::summary::Floor;
use super::summary::{Baseline, Percentiles};
use crate::cluster::Threading;
use crate::raft::message::{
    AppendEntries, AppendEntriesResponse, AppendKind, Message, MessageBody,
};
use crate::raft::types::{Entry, EntryKind, NodeId};
use crate::tls::{self, NodeIdentity, TlsError};
use crate::transport::{
    self, wait_connected, BindSpec, Inbound, MemMode, MemNetwork, QuicSettings, Transport,
    TransportError, TransportKind, TransportSettings,
};

/// Payload of a ping unless told otherwise: the size of a typical small write.
pub const DEFAULT_PAYLOAD_BYTES: usize = 64;
/// Warm-up of each floor in [`measure_all`]: connections, caches and congestion windows settle.
pub const DEFAULT_WARMUP: Duration = Duration::from_millis(250);
/// Round trips a run records per floor unless told otherwise.
pub const DEFAULT_SAMPLES: usize = 10_000;

/// The floors a run records, in the order [`measure_all`] measures them.
pub const ALL_FLOORS: [(TransportKind, FloorLevel); 5] = [
    (TransportKind::Quic, FloorLevel::Raw),
    (TransportKind::Tcp, FloorLevel::Raw),
    (TransportKind::Quic, FloorLevel::Transport),
    (TransportKind::Tcp, FloorLevel::Transport),
    (TransportKind::Mem, FloorLevel::Transport),
];

/// Largest round trip the histogram holds (60 s); a longer one is recorded as 60 s.
const MAX_RTT_NS: u64 = 60_000_000_000;
/// Allowance for binding, TLS and connecting before the first ping.
const SETUP_ALLOWANCE: Duration = Duration::from_secs(30);
/// Allowance per round trip, about 100 times a slow loopback round trip: reaching the
/// guard means a lost message or a dead peer, not a slow machine.
const PER_SAMPLE_ALLOWANCE: Duration = Duration::from_millis(10);

/// How much of the stack a floor includes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FloorLevel {
    /// The bare connection (quinn stream, TCP socket, channel): the physical floor.
    #[default]
    Raw,
    /// Our [`Transport`] carrying Raft messages: codec, writer task and channels included.
    Transport,
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BaselineSpec {
    /// Which kind of endpoint.
    pub transport: TransportKind,
    /// Bare connection or our transport.
    pub level: FloorLevel,
    /// How the two endpoints are spread over threads.
    pub threading: Threading,
    /// Bytes per ping: the whole message (raw) or the one entry's data (transport).
    pub payload_bytes: usize,
    /// How long to ping before recording.
    pub warmup: Duration,
    /// Round trips recorded after the warm-up.
    pub samples: usize,
    /// QUIC parameters, as the cluster uses them (raw and transport QUIC).
    pub quic: QuicSettings,
    /// Pings at a point's arrival process and rate instead of back to back, so that the
    /// endpoints are as idle between pings as the cluster is between requests (None: back
    /// to back, both threads warm).
    pub pace: Option<Pace>,
}

/// A ping schedule: the arrival process, rate and seed of the point a floor judges. One
/// ping is in flight at a time: a slot that comes due while a ping is out waits for it, so
/// at rates above one per round trip the pings run back to back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// Pings per second.
    pub rate: f64,
    /// Their spacing.
    pub arrival: Arrival,
    /// The schedule's seed.
    pub seed: u64,
}

impl BaselineSpec {
    /// A spec with the default payload, warm-up, sample count and QUIC settings.
    pub fn new(transport: TransportKind, level: FloorLevel, threading: Threading) -> Self {
        BaselineSpec {
            transport,
            level,
            threading,
            payload_bytes: DEFAULT_PAYLOAD_BYTES,
            warmup: DEFAULT_WARMUP,
            samples: DEFAULT_SAMPLES,
            quic: QuicSettings::default(),
            pace: None,
        }
    }

    /// The name the result carries in [`Baseline::transport`], e.g. `quic-raw` or `tcp`.
    pub fn label(&self) -> String {
        label(self.transport, self.level)
    }

    /// Upper bound on the whole measurement; only a broken peer reaches it.
    fn guard(&self) -> Duration {
        let paced = self.pace.map_or(Duration::ZERO, |p| {
            Duration::from_secs_f64(2.0 * self.samples as f64 / p.rate.max(1e-3))
        });
        SETUP_ALLOWANCE
            + self.warmup
            + paced
            + PER_SAMPLE_ALLOWANCE * self.samples.min(u32::MAX as usize) as u32
    }
}

/// The label of a floor: `quic`, `tcp` or `mem`, with `-raw` for [`FloorLevel::Raw`].
pub fn label(transport: TransportKind, level: FloorLevel) -> String {
    let name = match transport {
        TransportKind::Quic => "quic",
        TransportKind::Tcp => "tcp",
        TransportKind::Mem => "mem",
    };
    match level {
        FloorLevel::Raw => format!("{name}-raw"),
        FloorLevel::Transport => name.to_owned(),
    }
}

/// Why a floor could not be measured.
#[derive(Debug, Error)]
pub enum BaselineError {
    /// The spec cannot be measured.
    #[error("invalid baseline spec: {0}")]
    Spec(&'static str),
    /// Certificates could not be made or used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// One of our transports could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The TLS config cannot drive QUIC.
    #[error("TLS config unusable for QUIC: {0}")]
    QuicCrypto(#[from] NoInitialCipherSuite),
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// quinn refused to start a connection.
    #[error("QUIC connect: {0}")]
    QuicConnect(#[from] quinn::ConnectError),
    /// The QUIC connection failed or was lost.
    #[error("QUIC connection: {0}")]
    QuicConnection(#[from] quinn::ConnectionError),
    /// Writing a ping failed.
    #[error("QUIC write: {0}")]
    QuicWrite(#[from] quinn::WriteError),
    /// Reading an echo failed.
    #[error("QUIC read: {0}")]
    QuicRead(#[from] quinn::ReadExactError),
    /// The echoing endpoint stopped (or never started) before the measurement ended.
    #[error("the echoing endpoint went away before the measurement ended")]
    PeerGone,
    /// The measurement did not finish within its guard: a message was lost or a peer hung.
    #[error("no result within {0:?}")]
    Timeout(Duration),
    /// An endpoint's thread or runtime could not be started, or it panicked.
    #[error("endpoint runtime: {0}")]
    Runtime(String),
}

/// Measures the floor `spec` describes; returns its summary and the histogram of round
/// trips in nanoseconds (3 significant digits, exactly `spec.samples` values).
///
/// Blocks the calling thread: call it outside any tokio runtime (or from `spawn_blocking`).
pub fn measure(spec: &BaselineSpec) -> Result<(Baseline, Histogram<u64>), BaselineError> {
    if spec.samples == 0 {
        return Err(BaselineError::Spec("samples must be at least 1"));
    }
    if spec.payload_bytes == 0 {
        // A zero-byte read completes at once: there would be no round trip to time.
        return Err(BaselineError::Spec("payload_bytes must be at least 1"));
    }
    let stop = CancellationToken::new();
    let h = match (spec.level, spec.transport) {
        (FloorLevel::Raw, TransportKind::Quic) => {
            let (_, ids) = tls::generate_cluster(&[1, 2])?;
            let [id1, id2]: [NodeIdentity; 2] = ids
                .try_into()
                .map_err(|_| BaselineError::Runtime("expected two identities".into()))?;
            let (addr_tx, addr_rx) = oneshot::channel();
            let two = until_stopped(stop.clone(), quic_raw_echo(id2, spec.clone(), addr_tx));
            let s = spec.clone();
            let one = guarded(spec.guard(), async move {
                let mut p = QuicRawPing::connect(id1, &s, addr_rx).await?;
                let h = time_loop(&mut p, &s).await;
                p.conn.close(0u32.into(), b"done");
                h
            });
            run_pair(spec.threading, one, two, &stop)?
        }
        (FloorLevel::Raw, TransportKind::Tcp) => {
            let (addr_tx, addr_rx) = oneshot::channel();
            let two = until_stopped(stop.clone(), tcp_raw_echo(spec.payload_bytes, addr_tx));
            let s = spec.clone();
            let one = guarded(spec.guard(), async move {
                let mut p = TcpRawPing::connect(s.payload_bytes, addr_rx).await?;
                time_loop(&mut p, &s).await
            });
            run_pair(spec.threading, one, two, &stop)?
        }
        (FloorLevel::Raw, TransportKind::Mem) => {
            // Capacity 1: at most one ping is ever in flight.
            let (ping_tx, mut ping_rx) = mpsc::channel::<Bytes>(1);
            let (pong_tx, pong_rx) = mpsc::channel::<Bytes>(1);
            let two = until_stopped(stop.clone(), async move {
                while let Some(b) = ping_rx.recv().await {
                    if pong_tx.send(b).await.is_err() {
                        break;
                    }
                }
                Ok(())
            });
            let mut p = MemRawPing {
                tx: ping_tx,
                rx: pong_rx,
                payload: Bytes::from(vec![0xab; spec.payload_bytes]),
            };
            let s = spec.clone();
            let one = guarded(spec.guard(), async move { time_loop(&mut p, &s).await });
            run_pair(spec.threading, one, two, &stop)?
        }
        (FloorLevel::Transport, kind) => {
            let (id1, id2) = match kind {
                TransportKind::Quic => {
                    let mut ids = tls::generate_cluster(&[1, 2])?.1.into_iter();
                    (ids.next(), ids.next())
                }
                _ => (None, None),
            };
            let mem = (kind == TransportKind::Mem).then(|| MemNetwork::new(MemMode::Move));
            let (a1_tx, a1_rx) = oneshot::channel();
            let (a2_tx, a2_rx) = oneshot::channel();
            let node2 = NodeSetup {
                kind,
                id: 2,
                peer: 1,
                identity: id2,
                mem: mem.clone(),
                quic: spec.quic.clone(),
                addr_tx: a2_tx,
                peer_addr_rx: a1_rx,
            };
            let node1 = NodeSetup {
                kind,
                id: 1,
                peer: 2,
                identity: id1,
                mem,
                quic: spec.quic.clone(),
                addr_tx: a1_tx,
                peer_addr_rx: a2_rx,
            };
            let two = until_stopped(stop.clone(), async move {
                let (t, mut inbox) = node2.start().await?;
                // Answer at once, as a follower's driver answers an AppendEntries.
                while let Some((_, m)) = inbox.recv().await {
                    t.send(answer(&m));
                }
                Ok(())
            });
            let s = spec.clone();
            let one = guarded(spec.guard(), async move {
                let (t, inbox) = node1.start().await?;
                let mut p = TransportPing {
                    msg: append(s.payload_bytes),
                    t,
                    inbox,
                };
                time_loop(&mut p, &s).await
            });
            run_pair(spec.threading, one, two, &stop)?
        }
    };
    let baseline = Baseline {
        transport: spec.label(),
        threading: match spec.threading {
            Threading::PerNode => "per_node",
            Threading::Shared => "shared",
        }
        .to_string(),
        payload_bytes: spec.payload_bytes,
        rtt: Percentiles::of_nanos(&h),
    };
    Ok((baseline, h))
}

/// How long a rate-matched floor pings at most (plus warm-up).
const RATE_MATCHED_SECONDS: f64 = 3.0;
/// Most round trips a rate-matched floor records.
const RATE_MATCHED_SAMPLES: usize = 2_000;

/// What makes two points' floors the same measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct FloorKey {
    /// `in_process`, `processes` or `namespaces`: where the two endpoints run.
    arrangement: String,
    transport: TransportKind,
    threading: Threading,
    pace: Option<Pace>,
    payload_bytes: usize,
}

impl FloorKey {
    /// The floor `c` is judged against: its transport's raw round trip, with its threading,
    /// at its arrival process and rate (back to back for a closed loop).
    pub fn of(c: &PointConfig) -> FloorKey {
        let w = &c.workload;
        FloorKey {
            arrangement: match (c.cluster.target, &c.cluster.netns) {
                (_, Some(_)) => "namespaces".into(),
                (t, None) => t.name().into(),
            },
            transport: c.cluster.transport,
            threading: c.cluster.threading,
            pace: (w.mode == LoadMode::OpenLoop).then_some(Pace {
                rate: w.rate,
                arrival: w.arrival,
                seed: c.seed,
            }),
            payload_bytes: DEFAULT_PAYLOAD_BYTES,
        }
    }
}

/// Measures the floor of point `c` ([`FloorKey::of`]): up to [`RATE_MATCHED_SAMPLES`] round
/// trips or [`RATE_MATCHED_SECONDS`] of them, whichever comes first. None (logged) if it
/// could not be measured.
pub fn rate_matched(c: &PointConfig) -> Option<Floor> {
    let (key, spec) = rate_matched_spec(c, FloorKey::of(c).threading);
    match measure(&spec) {
        Ok((b, _)) => Some(floor_of(
            &key,
            b.transport,
            b.threading,
            b.payload_bytes,
            b.rtt,
        )),
        Err(e) => {
            tracing::warn!(floor = %spec.label(), error = %e, "rate-matched floor not measured");
            None
        }
    }
}

/// The spec of point `c`'s rate-matched floor with its endpoints on `threading`: up to
/// [`RATE_MATCHED_SAMPLES`] round trips or [`RATE_MATCHED_SECONDS`] of them.
fn rate_matched_spec(c: &PointConfig, threading: Threading) -> (FloorKey, BaselineSpec) {
    let key = FloorKey::of(c);
    let samples = match key.pace {
        Some(p) => ((p.rate * RATE_MATCHED_SECONDS) as usize).clamp(100, RATE_MATCHED_SAMPLES),
        None => RATE_MATCHED_SAMPLES,
    };
    let spec = BaselineSpec {
        samples,
        quic: c.cluster.quic.clone(),
        pace: key.pace,
        payload_bytes: key.payload_bytes,
        ..BaselineSpec::new(key.transport, FloorLevel::Raw, threading)
    };
    (key, spec)
}

/// The floor a point carries: what was measured, at the pace of `key`.
fn floor_of(
    key: &FloorKey,
    transport: String,
    threading: String,
    payload_bytes: usize,
    rtt: Percentiles,
) -> Floor {
    Floor {
        transport,
        threading,
        rate: key.pace.map_or(0.0, |p| p.rate),
        arrival: key.pace.map_or(String::new(), |p| {
            match p.arrival {
                Arrival::Constant => "constant",
                Arrival::Poisson => "poisson",
            }
            .to_string()
        }),
        payload_bytes,
        rtt,
    }
}

/// Measures every floor of [`ALL_FLOORS`] with `samples` round trips each, the default
/// payload and warm-up: what a run records. A floor that fails is logged and left out.
///
/// Blocks the calling thread: call it outside any tokio runtime.
pub fn measure_all(
    threading: Threading,
    quic: &QuicSettings,
    samples: usize,
    pace: Option<Pace>,
) -> Vec<(Baseline, Histogram<u64>)> {
    ALL_FLOORS
        .iter()
        .filter_map(|&(transport, level)| {
            let spec = BaselineSpec {
                samples,
                quic: quic.clone(),
                pace,
                ..BaselineSpec::new(transport, level, threading)
            };
            match measure(&spec) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(floor = %spec.label(), error = %e, "baseline not measured");
                    None
                }
            }
        })
        .collect()
}

/// One round trip, repeated by [`time_loop`].
trait Pinger {
    /// Sends a ping and waits for its answer.
    async fn ping(&mut self) -> Result<(), BaselineError>;
}

/// Pings for the spec's warm-up, then records `samples` round trips in nanoseconds, back
/// to back or at the spec's [`Pace`].
async fn time_loop<P: Pinger>(
    p: &mut P,
    spec: &BaselineSpec,
) -> Result<Histogram<u64>, BaselineError> {
    // Fixed bounds, so recording never allocates inside the timed loop.
    let mut h = Histogram::new_with_bounds(1, MAX_RTT_NS, SIGFIGS)
        .expect("1..60 s at 3 significant digits is a valid histogram");
    let warm_until = Instant::now() + spec.warmup;
    let mut slots = spec
        .pace
        .map(|pc| (Instant::now(), Schedule::new(pc.rate, pc.arrival, pc.seed)));
    loop {
        let now = Instant::now();
        if now >= warm_until {
            break;
        }
        if let Some((t0, s)) = slots.as_mut() {
            let slot = *t0 + s.next().expect("a schedule never ends");
            if slot >= warm_until {
                break;
            }
            tokio::time::sleep_until(slot.into()).await;
        }
        p.ping().await?;
    }
    for _ in 0..spec.samples {
        if let Some((t0, s)) = slots.as_mut() {
            // tokio's timer has millisecond resolution: slots drift by up to 1 ms, which
            // only matters for how idle the endpoints are, not for what is timed.
            let slot = *t0 + s.next().expect("a schedule never ends");
            tokio::time::sleep_until(slot.into()).await;
        }
        let t0 = Instant::now();
        p.ping().await?;
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Clamped into the histogram's range so that every round trip counts.
        h.saturating_record(ns.max(1));
    }
    Ok(h)
}

/// Runs the echoing side `two` until `stop` fires; it returns Ok when its peer goes
/// away, so an error from it is a setup failure.
async fn until_stopped(
    stop: CancellationToken,
    two: impl Future<Output = Result<(), BaselineError>>,
) -> Result<(), BaselineError> {
    tokio::select! {
        _ = stop.cancelled() => Ok(()),
        r = two => r,
    }
}

/// Fails `one` with [`BaselineError::Timeout`] after `guard`.
async fn guarded(
    guard: Duration,
    one: impl Future<Output = Result<Histogram<u64>, BaselineError>>,
) -> Result<Histogram<u64>, BaselineError> {
    tokio::time::timeout(guard, one)
        .await
        .unwrap_or(Err(BaselineError::Timeout(guard)))
}

/// Runs the timing side `one` and the echoing side `two` in the `threading` arrangement;
/// stops `two` when `one` is done.
fn run_pair(
    threading: Threading,
    one: impl Future<Output = Result<Histogram<u64>, BaselineError>> + Send + 'static,
    two: impl Future<Output = Result<(), BaselineError>> + Send + 'static,
    stop: &CancellationToken,
) -> Result<Histogram<u64>, BaselineError> {
    let (r1, r2) = match threading {
        Threading::PerNode => {
            let t2 = spawn_endpoint("raftbench-floor-2", two)?;
            let r1 = match spawn_endpoint("raftbench-floor-1", one) {
                Ok(t1) => join(t1),
                Err(e) => Err(e),
            };
            stop.cancel();
            (r1, join(t2))
        }
        Threading::Shared => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("raftbench-floor")
                .build()?;
            let h2 = rt.spawn(two);
            // Spawned rather than block_on'd, so that the loop runs on a worker, as a
            // node's driver does, not on the calling thread.
            let h1 = rt.spawn(one);
            let r1 = rt.block_on(h1).map_err(panicked).and_then(|r| r);
            stop.cancel();
            let r2 = rt.block_on(h2).map_err(panicked).and_then(|r| r);
            rt.shutdown_timeout(Duration::from_secs(1));
            (r1, r2)
        }
    };
    match (r1, r2) {
        // The echoing side fails only while setting up, which is what made `one` fail.
        (Err(_), Err(e2)) => Err(e2),
        (r1, _) => r1,
    }
}

fn panicked(e: tokio::task::JoinError) -> BaselineError {
    BaselineError::Runtime(format!("endpoint task failed: {e}"))
}

/// Runs `fut` on a new thread with its own current-thread runtime, as a node of a
/// [`Threading::PerNode`] cluster runs.
fn spawn_endpoint<T: Send + 'static>(
    name: &str,
    fut: impl Future<Output = Result<T, BaselineError>> + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T, BaselineError>>, BaselineError> {
    Ok(std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(fut)
        })?)
}

fn join<T>(t: std::thread::JoinHandle<Result<T, BaselineError>>) -> Result<T, BaselineError> {
    t.join()
        .unwrap_or_else(|_| Err(BaselineError::Runtime("endpoint thread panicked".into())))
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Where a pinger binds to reach `peer`: loopback for a loopback peer, else any address
/// (a socket bound to 127.0.0.1 cannot reach another host's, or namespace's, address).
fn client_bind(peer: SocketAddr) -> SocketAddr {
    if peer.ip().is_loopback() {
        loopback()
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    }
}

/// The echoing side of a raw floor in another process (`raftbench echo`), for the floor
/// of node processes: the round trip crosses processes (and, with namespaces, veth pairs
/// and a bridge) as the nodes' messages do.
#[derive(Clone, Debug)]
pub struct EchoPeer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The certificate directory it loaded node 2's identity from; the pinger is node 1.
    pub certs: std::path::PathBuf,
    /// The network namespace the pinger must enter to reach it.
    pub netns: Option<String>,
    /// How the floor is labelled in `threading`: `processes` or `namespaces`.
    pub arrangement: String,
}

/// Serves raw echoes of `payload`-byte pings on `bind` (QUIC as node 2 of the cluster in
/// `certs`, or plain TCP) until the process is killed; calls `ready` with the address it
/// listens on. Each connection is echoed by a task of its own.
pub fn serve_echo(
    transport: TransportKind,
    bind: SocketAddr,
    certs: &std::path::Path,
    payload: usize,
    quic: &QuicSettings,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), BaselineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match transport {
            TransportKind::Quic => {
                let identity = tls::load_identity(certs, 2)?;
                let crypto = QuicServerConfig::try_from(tls::server_config(&identity)?)?;
                let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
                server.transport_config(raw_quic_config(quic)?);
                let endpoint = Endpoint::server(server, bind)?;
                ready(endpoint.local_addr()?);
                while let Some(incoming) = endpoint.accept().await {
                    tokio::spawn(async move {
                        let Ok(conn) = incoming.await else { return };
                        let Ok((mut send, mut recv)) = conn.accept_bi().await else {
                            return;
                        };
                        let mut buf = vec![0u8; payload];
                        while recv.read_exact(&mut buf).await.is_ok() {
                            if send.write_all(&buf).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                Ok(())
            }
            TransportKind::Tcp => {
                let listener = TcpListener::bind(bind).await?;
                ready(listener.local_addr()?);
                loop {
                    let (mut stream, _) = listener.accept().await?;
                    stream.set_nodelay(true)?;
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; payload];
                        while stream.read_exact(&mut buf).await.is_ok() {
                            if stream.write_all(&buf).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
            TransportKind::Mem => Err(BaselineError::Spec(
                "the memory transport has no echo process",
            )),
        }
    })
}

/// As [`rate_matched`], against an echo in another process: the floor of node processes.
pub fn rate_matched_to(c: &PointConfig, peer: &EchoPeer) -> Option<Floor> {
    let (key, spec) = rate_matched_spec(c, Threading::PerNode);
    let run = {
        let (spec, peer) = (spec.clone(), peer.clone());
        move || -> Result<Histogram<u64>, BaselineError> {
            if let Some(ns) = &peer.netns {
                crate::netns::enter(ns).map_err(|e| BaselineError::Runtime(e.to_string()))?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(guarded(spec.guard(), async {
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(peer.addr);
                match spec.transport {
                    TransportKind::Quic => {
                        let id1 = tls::load_identity(&peer.certs, 1)?;
                        let mut p = QuicRawPing::connect(id1, &spec, rx).await?;
                        let h = time_loop(&mut p, &spec).await;
                        p.conn.close(0u32.into(), b"done");
                        h
                    }
                    _ => {
                        let mut p = TcpRawPing::connect(spec.payload_bytes, rx).await?;
                        time_loop(&mut p, &spec).await
                    }
                }
            }))
        }
    };
    // A thread of its own, like the timing endpoint in process (and so that entering a
    // namespace changes no other thread).
    let result = std::thread::Builder::new()
        .name("raftbench-floor-1".into())
        .spawn(run)
        .map_err(BaselineError::from)
        .and_then(join);
    match result {
        Ok(h) => Some(floor_of(
            &key,
            spec.label(),
            peer.arrangement.clone(),
            spec.payload_bytes,
            Percentiles::of_nanos(&h),
        )),
        Err(e) => {
            tracing::warn!(floor = %spec.label(), peer = %peer.addr, error = %e, "rate-matched floor not measured");
            None
        }
    }
}

/// The cluster's QUIC transport parameters, plus the one bidirectional stream the
/// ping-pong needs (the Raft transport refuses bidirectional streams).
fn raw_quic_config(quic: &QuicSettings) -> Result<Arc<quinn::TransportConfig>, BaselineError> {
    let mut tc = quic.transport_config()?;
    tc.max_concurrent_bidi_streams(1u32.into());
    Ok(Arc::new(tc))
}

/// Raw QUIC, echoing side: accepts one connection and echoes its one stream.
async fn quic_raw_echo(
    identity: NodeIdentity,
    spec: BaselineSpec,
    addr_tx: oneshot::Sender<SocketAddr>,
) -> Result<(), BaselineError> {
    let crypto = QuicServerConfig::try_from(tls::server_config(&identity)?)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(raw_quic_config(&spec.quic)?);
    let endpoint = Endpoint::server(server, loopback())?;
    let _ = addr_tx.send(endpoint.local_addr()?);
    let Some(incoming) = endpoint.accept().await else {
        return Ok(());
    };
    let conn = incoming.await?;
    let Ok((mut send, mut recv)) = conn.accept_bi().await else {
        return Ok(()); // the pinger went away before its first ping
    };
    let mut buf = vec![0u8; spec.payload_bytes];
    // Ends when the pinger closes the connection.
    while recv.read_exact(&mut buf).await.is_ok() {
        if send.write_all(&buf).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Raw QUIC, timing side: one connection, one bidirectional stream.
struct QuicRawPing {
    // Kept so the endpoint's socket lives as long as the connection.
    _endpoint: Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    out: Vec<u8>,
    back: Vec<u8>,
}

impl QuicRawPing {
    async fn connect(
        identity: NodeIdentity,
        spec: &BaselineSpec,
        addr_rx: oneshot::Receiver<SocketAddr>,
    ) -> Result<Self, BaselineError> {
        let addr = addr_rx.await.map_err(|_| BaselineError::PeerGone)?;
        let crypto = QuicClientConfig::try_from(tls::client_config(&identity)?)?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(raw_quic_config(&spec.quic)?);
        let endpoint = Endpoint::client(client_bind(addr))?;
        let conn = endpoint
            .connect_with(client, addr, &tls::server_name(2))?
            .await?;
        let (send, recv) = conn.open_bi().await?;
        Ok(QuicRawPing {
            _endpoint: endpoint,
            conn,
            send,
            recv,
            out: vec![0xab; spec.payload_bytes],
            back: vec![0; spec.payload_bytes],
        })
    }
}

impl Pinger for QuicRawPing {
    async fn ping(&mut self) -> Result<(), BaselineError> {
        self.send.write_all(&self.out).await?;
        self.recv.read_exact(&mut self.back).await?;
        Ok(())
    }
}

/// Raw TCP, echoing side: accepts one connection and echoes it.
async fn tcp_raw_echo(
    payload: usize,
    addr_tx: oneshot::Sender<SocketAddr>,
) -> Result<(), BaselineError> {
    let listener = TcpListener::bind(loopback()).await?;
    let _ = addr_tx.send(listener.local_addr()?);
    let (mut stream, _) = listener.accept().await?;
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; payload];
    // Ends when the pinger closes the connection.
    while stream.read_exact(&mut buf).await.is_ok() {
        if stream.write_all(&buf).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Raw TCP, timing side.
struct TcpRawPing {
    stream: TcpStream,
    out: Vec<u8>,
    back: Vec<u8>,
}

impl TcpRawPing {
    async fn connect(
        payload: usize,
        addr_rx: oneshot::Receiver<SocketAddr>,
    ) -> Result<Self, BaselineError> {
        let addr = addr_rx.await.map_err(|_| BaselineError::PeerGone)?;
        let stream = TcpStream::connect(addr).await?;
        // As the TCP transport does: without it Nagle holds back the small pings.
        stream.set_nodelay(true)?;
        Ok(TcpRawPing {
            stream,
            out: vec![0xab; payload],
            back: vec![0; payload],
        })
    }
}

impl Pinger for TcpRawPing {
    async fn ping(&mut self) -> Result<(), BaselineError> {
        self.stream.write_all(&self.out).await?;
        self.stream.read_exact(&mut self.back).await?;
        Ok(())
    }
}

/// Raw memory, timing side: a buffer handed to the other endpoint and back.
struct MemRawPing {
    tx: mpsc::Sender<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    payload: Bytes,
}

impl Pinger for MemRawPing {
    async fn ping(&mut self) -> Result<(), BaselineError> {
        self.tx
            .send(self.payload.clone())
            .await
            .map_err(|_| BaselineError::PeerGone)?;
        self.rx.recv().await.ok_or(BaselineError::PeerGone)?;
        Ok(())
    }
}

/// One node of a transport-level floor, before it starts.
struct NodeSetup {
    kind: TransportKind,
    id: NodeId,
    peer: NodeId,
    identity: Option<NodeIdentity>,
    mem: Option<MemNetwork>,
    quic: QuicSettings,
    addr_tx: oneshot::Sender<SocketAddr>,
    peer_addr_rx: oneshot::Receiver<SocketAddr>,
}

impl NodeSetup {
    /// Binds, swaps addresses with the peer, starts and waits for the connection, as
    /// [`crate::cluster::LocalCluster`] starts its nodes.
    async fn start(self) -> Result<(Arc<dyn Transport>, Inbound), BaselineError> {
        let bound = transport::bind(BindSpec {
            kind: self.kind,
            id: self.id,
            addr: loopback(),
            identity: self.identity.as_ref(),
            quic: &self.quic,
            settings: TransportSettings::default(),
            emulator: None,
            mem: self.mem.as_ref(),
        })
        .await?;
        // A memory node has no address, but the swap still tells each side that the other
        // has joined: a message to a node that has not joined yet is dropped.
        let _ = self.addr_tx.send(bound.local_addr());
        let peer = self
            .peer_addr_rx
            .await
            .map_err(|_| BaselineError::PeerGone)?;
        let (transport, inbox) = bound.start(HashMap::from([(self.peer, peer)]));
        if !wait_connected(transport.as_ref(), self.peer).await {
            return Err(BaselineError::Runtime(format!(
                "node {} does not know peer {}",
                self.id, self.peer
            )));
        }
        Ok((transport, inbox))
    }
}

/// Transport level, timing side: an AppendEntries out, its response back.
struct TransportPing {
    t: Arc<dyn Transport>,
    inbox: Inbound,
    msg: Message,
}

impl Pinger for TransportPing {
    async fn ping(&mut self) -> Result<(), BaselineError> {
        // The clone is part of the cost: a leader builds a message per AppendEntries.
        self.t.send(self.msg.clone());
        self.inbox.recv().await.ok_or(BaselineError::PeerGone)?;
        Ok(())
    }
}

/// An AppendEntries from node 1 to node 2 with one entry of `payload` bytes.
fn append(payload: usize) -> Message {
    append_batch(1, payload)
}

/// An AppendEntries from node 1 to node 2 carrying `entries` entries of `payload` bytes:
/// the message the floors and the transport benchmark send.
pub fn append_batch(entries: usize, payload: usize) -> Message {
    let data = Bytes::from(vec![0xab; payload]);
    Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: 1_000,
            prev_log_term: 1,
            entries: (0..entries as u64)
                .map(|i| Entry {
                    term: 1,
                    index: 1_001 + i,
                    kind: EntryKind::Normal,
                    data: data.clone(),
                })
                .collect(),
            leader_commit: 1_000,
            compact_floor: 0,
            kind: AppendKind::Entries,
        }),
    }
}

/// The success response a follower sends to `m`.
pub fn answer(m: &Message) -> Message {
    let (prev, n) = match &m.body {
        MessageBody::AppendEntries(ae) => (ae.prev_log_index, ae.entries.len() as u64),
        _ => (0, 0),
    };
    Message {
        from: m.to,
        to: m.from,
        term: m.term,
        body: MessageBody::AppendEntriesResponse(AppendEntriesResponse {
            prev_log_index: prev,
            match_index: prev + n,
            reject: None,
        }),
    }
}
