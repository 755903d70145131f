//! How a client reaches a node's client port: QUIC with mutual TLS, or plain TCP when a
//! cluster file says `client_transport = "tcp_insecure"`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::raft::NodeId;
use crate::tls::{self, ClientIdentity};

/// How clients reach the nodes' client ports (`client_transport` in a cluster file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientTransport {
    /// QUIC with mutual TLS: clients present a client certificate of the cluster CA (default).
    #[default]
    Quic,
    /// Plain TCP, no authentication, no encryption: anyone who reaches the port can read and
    /// change everything. Only for comparison on a trusted network.
    TcpInsecure,
}

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The client certificate could not be loaded or used.
    #[error("client certificate: {0}")]
    Tls(#[from] tls::TlsError),
    /// rustls refused the config for QUIC.
    #[error("QUIC client config: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The local UDP socket could not be bound.
    #[error("binding a UDP socket for QUIC: {0}")]
    Bind(std::io::Error),
    /// The client certificate file is missing.
    #[error(
        "client certificate {path} is missing: run `raftbench certs --out {dir} --nodes N` (or \
         `raftbench certs --out {dir} --add-client NAME`) and copy it to this host"
    )]
    MissingCertificate {
        /// The missing file.
        path: PathBuf,
        /// The certificate directory.
        dir: PathBuf,
    },
}

/// A boxed reading half of a connection.
pub(crate) type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
/// A boxed writing half of a connection.
pub(crate) type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// One open connection to a node's client port.
pub(crate) struct Link {
    pub(crate) rd: BoxRead,
    pub(crate) wr: BoxWrite,
    /// The QUIC connection, closed explicitly when the link is dropped.
    pub(crate) quic: Option<quinn::Connection>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(c) = &self.quic {
            c.close(0u32.into(), b"client done");
        }
    }
}

/// Opens connections to nodes' client ports. Cheap to clone (one UDP socket is shared).
#[derive(Clone)]
pub struct Connector {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    TcpInsecure,
    Quic {
        endpoint: quinn::Endpoint,
        config: quinn::ClientConfig,
    },
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::TcpInsecure => f.write_str("Connector(tcp_insecure)"),
            Inner::Quic { .. } => f.write_str("Connector(quic)"),
        }
    }
}

/// How long a client waits for a connection (TCP connect or QUIC handshake and stream).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Connector {
    /// Plain TCP, unauthenticated (see [`ClientTransport::TcpInsecure`]).
    pub fn tcp_insecure() -> Connector {
        Connector {
            inner: Inner::TcpInsecure,
        }
    }

    /// QUIC with mutual TLS as `identity`, from a UDP socket on `bind` (port 0: any).
    /// Must be called within a tokio runtime.
    pub fn quic(identity: &ClientIdentity, bind: SocketAddr) -> Result<Connector, ConnectError> {
        let crypto = QuicClientConfig::try_from(tls::client_identity_config(identity)?)?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut tc = quinn::TransportConfig::default();
        // A node that dies without closing (SIGKILL, a lost host) is noticed only by the
        // idle timeout: UDP gives no reset. Measured on node processes under 2,000/s: with
        // 2 s, clients of a SIGKILLed leader saw no commit for 2.0 s although a new leader
        // was elected after 1.0 s. 500 ms (with keep-alives every 100 ms) lets a pipeline
        // resend to the new leader about as soon as it is elected.
        tc.keep_alive_interval(Some(Duration::from_millis(100)))
            .max_idle_timeout(Duration::from_millis(500).try_into().ok())
            .max_concurrent_uni_streams(0u32.into())
            .max_concurrent_bidi_streams(0u32.into());
        config.transport_config(Arc::new(tc));
        let endpoint = quinn::Endpoint::client(bind).map_err(ConnectError::Bind)?;
        Ok(Connector {
            inner: Inner::Quic { endpoint, config },
        })
    }

    /// QUIC as the client certificate `name` of `dir` (empty: `client.pem`), from a socket
    /// of the same address family as `peer`.
    pub fn quic_from_dir(
        dir: &std::path::Path,
        name: &str,
        peer: SocketAddr,
    ) -> Result<Connector, ConnectError> {
        let identity = tls::load_client_identity(dir, name).map_err(|e| match e {
            tls::TlsError::Missing { path } => ConnectError::MissingCertificate {
                path,
                dir: dir.to_owned(),
            },
            e => e.into(),
        })?;
        let bind: SocketAddr = if peer.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        Connector::quic(&identity, bind)
    }

    /// The connector a cluster file asks for: QUIC as client certificate `name` (empty:
    /// `client.pem`) of its certificate directory, or plain TCP if it says `tcp_insecure`.
    pub fn for_cluster(
        file: &crate::config::ClusterFile,
        name: &str,
    ) -> Result<Connector, ConnectError> {
        match file.client_transport {
            ClientTransport::TcpInsecure => Ok(Connector::tcp_insecure()),
            ClientTransport::Quic => {
                let peer = file
                    .nodes
                    .first()
                    .map(|n| n.client_addr)
                    .unwrap_or_else(|| (std::net::Ipv4Addr::LOCALHOST, 0).into());
                Connector::quic_from_dir(&file.certs_dir(), name, peer)
            }
        }
    }

    /// Which transport this connector speaks.
    pub fn transport(&self) -> ClientTransport {
        match self.inner {
            Inner::TcpInsecure => ClientTransport::TcpInsecure,
            Inner::Quic { .. } => ClientTransport::Quic,
        }
    }

    /// Opens a connection to node `node` at `addr`; over QUIC the node must prove it is
    /// `node` (its certificate names it).
    pub(crate) async fn connect(&self, node: NodeId, addr: SocketAddr) -> Result<Link, String> {
        let fut = async {
            match &self.inner {
                Inner::TcpInsecure => {
                    let s = TcpStream::connect(addr)
                        .await
                        .map_err(|e| format!("connect to {addr}: {e}"))?;
                    let _ = s.set_nodelay(true);
                    let (rd, wr) = s.into_split();
                    Ok(Link {
                        rd: Box::pin(rd),
                        wr: Box::pin(wr),
                        quic: None,
                    })
                }
                Inner::Quic { endpoint, config } => {
                    let conn = endpoint
                        .connect_with(config.clone(), addr, &tls::server_name(node))
                        .map_err(|e| format!("connect to {addr}: {e}"))?
                        .await
                        .map_err(|e| format!("handshake with node {node} at {addr}: {e}"))?;
                    let (wr, rd) = conn
                        .open_bi()
                        .await
                        .map_err(|e| format!("stream to node {node} at {addr}: {e}"))?;
                    Ok(Link {
                        rd: Box::pin(rd),
                        wr: Box::pin(wr),
                        quic: Some(conn),
                    })
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| format!("connect to node {node} at {addr} timed out"))?
    }

    /// Waits (at most 1 s) until the QUIC connections this connector opened told their
    /// nodes they are closed, so that a short-lived process leaves nothing for the nodes
    /// to time out.
    pub async fn close(&self) {
        if let Inner::Quic { endpoint, .. } = &self.inner {
            endpoint.close(0u32.into(), b"client done");
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        }
    }
}
