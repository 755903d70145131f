//! The HTTP endpoint: `GET /metrics` answers the registry in Prometheus text exposition
//! (hyper's HTTP/1 server on tokio).
//!
//! A scraper is a peer like any other: connections are capped, a request's headers must
//! arrive within a few seconds, and a connection lives at most [`CONNECTION_LIFETIME`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::raft::NodeId;
use crate::shutdown::Shutdown;

/// Scrape connections served at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 32;
/// Longest a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one connection is kept, keep-alive included.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Largest request head buffered (a scrape's is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("node {node}: cannot serve metrics on metrics_addr {addr}: {source}")]
pub struct MetricsBindError {
    /// The node whose `metrics_addr` it is.
    pub node: NodeId,
    /// The address.
    pub addr: SocketAddr,
    /// The bind error (typically: address in use).
    pub source: std::io::Error,
}

/// A bound metrics socket, bound before the node starts so that a taken port fails the
/// start-up at once.
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    /// Binds node `node`'s `metrics_addr`.
    pub async fn bind(node: NodeId, addr: SocketAddr) -> Result<MetricsListener, MetricsBindError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsBindError { node, addr, source })?;
        Ok(MetricsListener { listener })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Serves `registry` on `listener` until `shutdown`.
pub async fn serve(listener: MetricsListener, registry: Arc<Registry>, mut shutdown: Shutdown) {
    let listener = listener.listener;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.recv() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let r = answer(&registry, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_REQUEST_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(slot);
        });
    }
}

fn answer(registry: &Registry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let plain = |status, text: &'static str| {
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(text.as_bytes())))
            .expect("a static response is valid")
    };
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    let body = super::encode_text(registry);
    Response::builder()
        .status(StatusCode::OK)
        .header(
            hyper::header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
        .body(Full::new(Bytes::from(body)))
        .expect("a text response is valid")
}
