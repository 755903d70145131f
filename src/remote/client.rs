//! A client of a cluster of node processes: finds the leader, follows redirects, retries.
//! One request at a time; [`super::Pipeline`] keeps many in flight.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connector::{Connector, Link};
use super::{
    encode_request, encode_status_request, try_decode, ClientFrame, RemoteReplyError, WireError,
};
use crate::kv::{Command, Output};
use crate::raft::NodeId;
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
}

enum Answer {
    Reply(Result<Output, RemoteReplyError>),
    Status(NodeStatus),
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
            .exchange(out, rid)
            .await
            .map_err(|e| RemoteError::Timeout(Duration::from_secs(5), e))?;
        match r {
            Answer::Status(st) => Ok(st),
            Answer::Reply(_) => Err(RemoteError::Timeout(
                Duration::ZERO,
                "answered a status request with a reply".into(),
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
        match self.exchange(out, id).await? {
            Answer::Reply(r) => Ok(r),
            Answer::Status(_) => Err("answered a request with a status".into()),
        }
    }

    /// Sends one frame and waits for the answer with id `id`. A cached connection that
    /// turns out closed (a node closes idle ones) is replaced once before this fails.
    async fn exchange(&mut self, out: BytesMut, id: u64) -> Result<Answer, String> {
        let reused = self.conn.is_some();
        match self.exchange_once(&out, id).await {
            Err(e) if reused && self.conn.is_none() => {
                tracing::debug!(error = %e, "cached client connection failed; reconnecting");
                self.exchange_once(&out, id).await
            }
            r => r,
        }
    }

    async fn exchange_once(&mut self, out: &[u8], id: u64) -> Result<Answer, String> {
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
                    Some(ClientFrame::Reply(rid, r, _)) if rid == id => {
                        return Ok(Answer::Reply(r))
                    }
                    Some(ClientFrame::Status(rid, st)) if rid == id => {
                        return Ok(Answer::Status(st))
                    }
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
        match tokio::time::timeout(Duration::from_secs(5), res).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err("no reply within 5 s".into())
            }
        }
    }
}
