//! The node side of the client protocol: accept connections, forward requests to the
//! server, write the answers back in whatever order they complete.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{encode_reply, encode_status, try_decode, ClientFrame};
use crate::server::{ReplyTo, Request, ServerHandle};
use crate::shutdown::Shutdown;

/// Accepts client connections for one node.
pub struct ClientListener {
    listener: TcpListener,
    server: ServerHandle,
}

impl ClientListener {
    /// Binds `addr` for clients of `server`.
    pub async fn bind(addr: SocketAddr, server: ServerHandle) -> std::io::Result<ClientListener> {
        Ok(ClientListener {
            listener: TcpListener::bind(addr).await?,
            server,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until shutdown; each connection runs as its own task.
    pub async fn run(self, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                r = self.listener.accept() => match r {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let server = self.server.clone();
                        let s = shutdown.resubscribe();
                        tokio::spawn(async move {
                            if let Err(e) = serve(stream, server, s).await {
                                tracing::info!(%peer, error = %e, "client connection closed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        }
    }
}

async fn serve(
    stream: TcpStream,
    server: ServerHandle,
    mut shutdown: Shutdown,
) -> Result<(), ConnError> {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<crate::server::Answer>();
    let (status_tx, mut status_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(async move {
        let mut out = BytesMut::new();
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(a) => encode_reply(a.id, &a.reply, &mut out),
                    None => return,
                },
                Some((id, st)) = status_rx.recv() => encode_status(id, &st, &mut out),
            }
            // Gather whatever else is ready into the same write.
            while let Ok(a) = rx.try_recv() {
                encode_reply(a.id, &a.reply, &mut out);
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    });
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let result = loop {
        let n = tokio::select! {
            _ = shutdown.recv() => break Ok(()),
            n = rd.read_buf(&mut buf) => n?,
        };
        if n == 0 {
            break Ok(());
        }
        loop {
            match try_decode(&mut buf) {
                Ok(Some(ClientFrame::Request(id, command))) => {
                    let req = Request {
                        id,
                        command,
                        reply: ReplyTo::Channel(tx.clone()),
                    };
                    if server.send(req).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(Some(ClientFrame::StatusRequest(id))) => {
                    let _ = status_tx.send((id, server.status()));
                }
                Ok(Some(ClientFrame::Reply(..))) | Ok(Some(ClientFrame::Status(..))) => {
                    return Err(ConnError::Wire(super::WireError::Unknown(2)));
                }
                Ok(None) => break,
                Err(e) => return Err(e.into()),
            }
        }
    };
    drop(tx);
    drop(status_tx);
    let _ = writer.await;
    result
}

/// What ends one client connection (logged, never fatal to the node).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The client sent a bad frame.
    #[error(transparent)]
    Wire(#[from] super::WireError),
}
