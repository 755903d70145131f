//! A client of a cluster of node processes: finds the leader, follows redirects, retries.
//! One request at a time; [`super::Pipeline`] keeps many in flight.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connector::{Connector, Link};
use super::{
    decode_recording, encode_arm, encode_clock_request, encode_request, encode_status_request,
    encode_take, try_decode, ArmSpec, ClientFrame, ClockSample, Recording, RecordingError,
    RemoteReplyError, WireError, CHUNK_BYTES, MAX_RECORDING_BYTES,
};
use crate::kv::{Command, Output};
use crate::raft::{NodeId, Time};
use crate::redirect::{Failure, Redirects};
use crate::server::NodeStatus;

/// Why a remote call failed for good.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No node answered usefully before the deadline; the last failure is attached.
    #[error("no answer from the cluster within {0:?}: {1}")]
    Timeout(Duration, String),
    /// The node refused the command itself.
    #[error("bad command: {0}")]
    BadCommand(String),
    /// The node refused a clock, arm or take request (not a node process, nothing armed,
    /// an unusable window).
    #[error("node {0} refused: {1}")]
    Refused(NodeId, String),
    /// The node's recording could not be received or read.
    #[error("recording from node {0}: {1}")]
    Recording(NodeId, RecordingError),
    /// The node answered with a frame that does not answer the request.
    #[error("node {0} answered out of protocol: {1}")]
    Protocol(NodeId, String),
}

/// Most clock samples one call takes.
const MAX_CLOCK_SAMPLES: usize = 10_000;
/// How long taking a recording may last in all (it may be hundreds of MB).
const TAKE_LIMIT: Duration = Duration::from_secs(120);
/// How long any other exchange may last.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(5);

enum Answer {
    Reply(Result<Output, RemoteReplyError>),
    Status(NodeStatus),
    /// t1, t2, t3 as the node echoed and stamped them, and t4 as the client saw it arrive.
    Clock(ClockSample),
    Armed,
    Refused(String),
    Recording(Vec<u8>),
}

impl Answer {
    fn kind(&self) -> &'static str {
        match self {
            Answer::Reply(_) => "a reply",
            Answer::Status(_) => "a status",
            Answer::Clock(_) => "a clock answer",
            Answer::Armed => "an armed answer",
            Answer::Refused(_) => "a refusal",
            Answer::Recording(_) => "a recording",
        }
    }
}

/// A frame's kind, for errors.
fn frame_kind(f: &ClientFrame) -> &'static str {
    match f {
        ClientFrame::Request(..) => "request",
        ClientFrame::Reply(..) => "reply",
        ClientFrame::StatusRequest(..) => "status request",
        ClientFrame::Status(..) => "status",
        ClientFrame::ClockRequest(..) => "clock request",
        ClientFrame::Clock(..) => "clock answer",
        ClientFrame::Arm(..) => "arm request",
        ClientFrame::Armed(..) => "armed answer",
        ClientFrame::Take(..) => "take request",
        ClientFrame::RecordingChunk(..) => "recording chunk",
        ClientFrame::Error(..) => "error",
    }
}

/// The id a frame carries.
fn frame_id(f: &ClientFrame) -> u64 {
    match f {
        ClientFrame::Request(id, _)
        | ClientFrame::Reply(id, ..)
        | ClientFrame::StatusRequest(id)
        | ClientFrame::Status(id, _)
        | ClientFrame::ClockRequest(id, _)
        | ClientFrame::Clock(id, ..)
        | ClientFrame::Arm(id, _)
        | ClientFrame::Armed(id)
        | ClientFrame::Take(id)
        | ClientFrame::RecordingChunk(id, ..)
        | ClientFrame::Error(id, _) => *id,
    }
}

/// Gathers a recording's chunks in order, within [`MAX_RECORDING_BYTES`].
#[derive(Default)]
struct Chunks {
    buf: Vec<u8>,
    total: Option<u64>,
}

impl Chunks {
    /// Adds one chunk; the whole recording once it is complete.
    fn add(&mut self, total: u64, offset: u64, data: &[u8]) -> Result<Option<Vec<u8>>, String> {
        if total > MAX_RECORDING_BYTES as u64 {
            return Err(RecordingError::TooLarge(total).to_string());
        }
        if *self.total.get_or_insert(total) != total {
            return Err("recording chunks disagree on the total length".into());
        }
        if offset != self.buf.len() as u64
            || data.len() > CHUNK_BYTES
            || offset + data.len() as u64 > total
            || data.is_empty()
        {
            return Err(format!(
                "recording chunk at {offset} of {} bytes does not follow the {} received of {total}",
                data.len(),
                self.buf.len()
            ));
        }
        if self.buf.is_empty() {
            self.buf.reserve(total.min(64 << 20) as usize);
        }
        self.buf.extend_from_slice(data);
        Ok((self.buf.len() as u64 == total).then(|| std::mem::take(&mut self.buf)))
    }
}

struct Conn {
    link: Link,
    buf: BytesMut,
}

/// A client that knows every node's client address.
pub struct RemoteClient {
    nodes: Vec<(NodeId, SocketAddr)>,
    current: usize,
    connector: Connector,
    conn: Option<Conn>,
    next_id: u64,
    /// How long one call keeps trying (default 10 s).
    pub deadline: Duration,
}

impl RemoteClient {
    /// A client of the nodes at `addrs` (id to client address) in plain TCP, insecure
    /// (for nodes whose cluster file says `client_transport = "tcp_insecure"`).
    pub fn new(addrs: HashMap<NodeId, SocketAddr>) -> RemoteClient {
        RemoteClient::with_connector(addrs, Connector::tcp_insecure())
    }

    /// A client of the nodes at `addrs` that connects through `connector` (QUIC with a
    /// client certificate: [`Connector::quic`]).
    pub fn with_connector(
        addrs: HashMap<NodeId, SocketAddr>,
        connector: Connector,
    ) -> RemoteClient {
        let mut nodes: Vec<_> = addrs.into_iter().collect();
        nodes.sort_unstable();
        RemoteClient {
            nodes,
            connector,
            current: 0,
            conn: None,
            next_id: 1,
            deadline: Duration::from_secs(10),
        }
    }

    /// A client of the cluster `file` describes, connecting as it says (see
    /// [`Connector::for_cluster`]). Must be called within a tokio runtime.
    pub fn for_cluster(
        file: &crate::config::ClusterFile,
        client_name: &str,
    ) -> Result<RemoteClient, super::ConnectError> {
        let addrs = file.nodes.iter().map(|n| (n.id, n.client_addr)).collect();
        Ok(RemoteClient::with_connector(
            addrs,
            Connector::for_cluster(file, client_name)?,
        ))
    }

    /// Only talk to node `id` first (for example, to read from a chosen node).
    pub fn prefer(&mut self, id: NodeId) {
        if let Some(i) = self.nodes.iter().position(|(n, _)| *n == id) {
            if i != self.current {
                self.current = i;
                self.conn = None;
            }
        }
    }

    /// Closes the connection and lets the node know (over QUIC, waits at most 1 s).
    pub async fn close(mut self) {
        self.conn = None;
        self.connector.close().await;
    }

    /// The node the client is talking to.
    pub fn current(&self) -> NodeId {
        self.nodes[self.current].0
    }

    /// Stores `value` under `key`.
    pub async fn put(
        &mut self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<(), RemoteError> {
        self.call(&Command::Put {
            key: key.into(),
            value: value.into(),
        })
        .await
        .map(|_| ())
    }

    /// Reads the value under `key` through the log.
    pub async fn get(&mut self, key: impl Into<Bytes>) -> Result<Option<Bytes>, RemoteError> {
        match self.call(&Command::Get { key: key.into() }).await? {
            Output::Value(v) => Ok(v),
            Output::Done => Ok(None),
        }
    }

    /// Runs `cmd`, following redirects and retrying through leader changes until the deadline.
    pub async fn call(&mut self, cmd: &Command) -> Result<Output, RemoteError> {
        let payload = cmd.encode();
        let mut redirects =
            Redirects::new(self.nodes.iter().map(|(n, _)| *n).collect(), self.deadline);
        redirects.prefer(self.current());
        loop {
            let (failure, why) = match self.try_once(&payload).await {
                Ok(Ok(out)) => return Ok(out),
                Ok(Err(RemoteReplyError::BadCommand(why))) => {
                    return Err(RemoteError::BadCommand(why))
                }
                Ok(Err(RemoteReplyError::NotLeader(l))) => {
                    (Failure::NotLeader(l), format!("not the leader; try {l:?}"))
                }
                Ok(Err(e)) => (Failure::Unavailable, e.to_string()),
                Err(e) => (Failure::Unavailable, e),
            };
            let wait = redirects.failed(failure);
            self.prefer(redirects.current());
            match wait {
                None => return Err(RemoteError::Timeout(self.deadline, why)),
                Some(w) if !w.is_zero() => tokio::time::sleep(w).await,
                Some(_) => {}
            }
        }
    }

    /// Asks node `id` for its status (no redirects: the answer is that node's own view).
    pub async fn status(&mut self, id: NodeId) -> Result<NodeStatus, RemoteError> {
        self.prefer(id);
        let rid = self.next_id;
        self.next_id += 1;
        let mut out = BytesMut::new();
        encode_status_request(rid, &mut out);
        let r = self
            .exchange(out, rid, &mut simple_answer, EXCHANGE_LIMIT)
            .await
            .map_err(|e| RemoteError::Timeout(EXCHANGE_LIMIT, e))?;
        match r {
            Answer::Status(st) => Ok(st),
            a => Err(RemoteError::Timeout(
                Duration::ZERO,
                format!("answered a status request with {}", a.kind()),
            )),
        }
    }

    /// Takes `n` (at most 10,000) four-timestamp clock samples from node `id`, one after
    /// another (see [`super::ClockOffset::estimate`]); the client's stamps are ns since
    /// `epoch`.
    pub async fn clock_samples(
        &mut self,
        id: NodeId,
        n: usize,
        epoch: Instant,
    ) -> Result<Vec<ClockSample>, RemoteError> {
        self.prefer(id);
        let mut samples = Vec::with_capacity(n.min(MAX_CLOCK_SAMPLES));
        for _ in 0..n.min(MAX_CLOCK_SAMPLES) {
            let rid = self.next_id;
            self.next_id += 1;
            let mut out = BytesMut::new();
            encode_clock_request(rid, epoch.elapsed().as_nanos() as u64, &mut out);
            let mut on_frame = |f: ClientFrame| -> Result<Option<Answer>, String> {
                let t4 = epoch.elapsed().as_nanos() as u64;
                Ok(match f {
                    ClientFrame::Clock(_, t1, t2, t3) => {
                        Some(Answer::Clock(ClockSample { t1, t2, t3, t4 }))
                    }
                    f => simple_answer(f)?,
                })
            };
            match self
                .exchange(out, rid, &mut on_frame, EXCHANGE_LIMIT)
                .await
                .map_err(|e| RemoteError::Timeout(EXCHANGE_LIMIT, e))?
            {
                Answer::Clock(s) => samples.push(s),
                Answer::Refused(why) => return Err(RemoteError::Refused(id, why)),
                a => {
                    return Err(RemoteError::Protocol(
                        id,
                        format!("{} to a clock request", a.kind()),
                    ))
                }
            }
        }
        Ok(samples)
    }

    /// Arms a recording on node `id` over `[start, end)` of the node's clock, with
    /// histogram intervals `interval` long, within the node's own cap on events.
    pub async fn arm_recording(
        &mut self,
        id: NodeId,
        start: Time,
        end: Time,
        interval: Duration,
    ) -> Result<(), RemoteError> {
        self.arm_recording_spec(
            id,
            ArmSpec {
                start,
                end,
                interval,
                max_records: 0,
            },
        )
        .await
    }

    /// Arms a recording on node `id` as `spec` says (`max_records` lowers the node's cap).
    pub async fn arm_recording_spec(
        &mut self,
        id: NodeId,
        spec: ArmSpec,
    ) -> Result<(), RemoteError> {
        self.prefer(id);
        let rid = self.next_id;
        self.next_id += 1;
        let mut out = BytesMut::new();
        encode_arm(rid, &spec, &mut out);
        match self
            .exchange(out, rid, &mut simple_answer, EXCHANGE_LIMIT)
            .await
            .map_err(|e| RemoteError::Timeout(EXCHANGE_LIMIT, e))?
        {
            Answer::Armed => Ok(()),
            Answer::Refused(why) => Err(RemoteError::Refused(id, why)),
            a => Err(RemoteError::Protocol(
                id,
                format!("{} to an arm request", a.kind()),
            )),
        }
    }

    /// Takes node `id`'s armed recording, which ends it. Over a fresh connection and
    /// without a retry: a second take would find nothing armed.
    pub async fn take_recording(&mut self, id: NodeId) -> Result<Recording, RemoteError> {
        self.prefer(id);
        self.conn = None;
        let rid = self.next_id;
        self.next_id += 1;
        let mut out = BytesMut::new();
        encode_take(rid, &mut out);
        let mut chunks = Chunks::default();
        let mut on_frame = |f: ClientFrame| -> Result<Option<Answer>, String> {
            match f {
                ClientFrame::RecordingChunk(_, total, offset, data) => {
                    Ok(chunks.add(total, offset, &data)?.map(Answer::Recording))
                }
                f => simple_answer(f),
            }
        };
        let r = self
            .exchange_once(&out, rid, &mut on_frame, TAKE_LIMIT)
            .await;
        match r.map_err(|e| match e.strip_prefix(RECORDING_PREFIX) {
            Some(why) => RemoteError::Protocol(id, why.to_string()),
            None => RemoteError::Timeout(TAKE_LIMIT, e),
        })? {
            Answer::Recording(bytes) => {
                decode_recording(&bytes).map_err(|e| RemoteError::Recording(id, e))
            }
            Answer::Refused(why) => Err(RemoteError::Refused(id, why)),
            a => Err(RemoteError::Protocol(
                id,
                format!("{} to a take request", a.kind()),
            )),
        }
    }

    async fn try_once(
        &mut self,
        payload: &[u8],
    ) -> Result<Result<Output, RemoteReplyError>, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut out = BytesMut::new();
        encode_request(id, payload, &mut out);
        match self
            .exchange(out, id, &mut simple_answer, EXCHANGE_LIMIT)
            .await?
        {
            Answer::Reply(r) => Ok(r),
            a => Err(format!("answered a request with {}", a.kind())),
        }
    }

    /// Sends one frame and waits for the answer with id `id`. A cached connection that
    /// turns out closed (a node closes idle ones) is replaced once before this fails.
    async fn exchange(
        &mut self,
        out: BytesMut,
        id: u64,
        on_frame: &mut OnFrame<'_>,
        limit: Duration,
    ) -> Result<Answer, String> {
        let reused = self.conn.is_some();
        match self.exchange_once(&out, id, on_frame, limit).await {
            Err(e) if reused && self.conn.is_none() => {
                tracing::debug!(error = %e, "cached client connection failed; reconnecting");
                self.exchange_once(&out, id, on_frame, limit).await
            }
            r => r,
        }
    }

    /// Sends one frame and hands every frame with id `id` to `on_frame` until it has the
    /// answer, all within `limit`.
    async fn exchange_once(
        &mut self,
        out: &[u8],
        id: u64,
        on_frame: &mut OnFrame<'_>,
        limit: Duration,
    ) -> Result<Answer, String> {
        if self.conn.is_none() {
            let (node, addr) = self.nodes[self.current];
            let link = self.connector.connect(node, addr).await?;
            self.conn = Some(Conn {
                link,
                buf: BytesMut::with_capacity(4096),
            });
        }
        let conn = self.conn.as_mut().expect("connected above");
        let res = async {
            conn.link
                .wr
                .write_all(out)
                .await
                .map_err(|e| e.to_string())?;
            conn.link.wr.flush().await.map_err(|e| e.to_string())?;
            loop {
                match try_decode(&mut conn.buf).map_err(|e: WireError| e.to_string())? {
                    Some(f) if frame_id(&f) == id => match on_frame(f) {
                        Ok(Some(a)) => return Ok(a),
                        Ok(None) => continue,
                        Err(e) => return Err(format!("{RECORDING_PREFIX}{e}")),
                    },
                    Some(_) => continue, // an answer to an abandoned earlier request
                    None => {}
                }
                let n = conn
                    .link
                    .rd
                    .read_buf(&mut conn.buf)
                    .await
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed".to_string());
                }
            }
        };
        match tokio::time::timeout(limit, res).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(format!("no complete answer within {limit:?}"))
            }
        }
    }
}

/// What turns the frames answering one request into its answer (None: more to come).
type OnFrame<'a> = dyn FnMut(ClientFrame) -> Result<Option<Answer>, String> + Send + 'a;

/// Marks an error that an answer's frames themselves caused (not the connection).
const RECORDING_PREFIX: &str = "bad answer: ";

/// The answer one frame makes by itself.
fn simple_answer(f: ClientFrame) -> Result<Option<Answer>, String> {
    Ok(Some(match f {
        ClientFrame::Reply(_, r, _) => Answer::Reply(r),
        ClientFrame::Status(_, st) => Answer::Status(st),
        ClientFrame::Armed(_) => Answer::Armed,
        ClientFrame::Error(_, why) => Answer::Refused(why),
        f => return Err(format!("unexpected frame {}", frame_kind(&f))),
    }))
}
