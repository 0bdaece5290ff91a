//! The listener: edgecap's own accept loop in place of `axum::serve`, so every connection is
//! bounded before the API sees it.
//!
//! - At most [`Config::max_connections`] connections are open at once (HTTP, and agent
//!   WebSockets after their upgrade: the count goes with the socket); at the cap the loop
//!   stops accepting and the kernel's backlog holds the rest.
//! - With TLS ([`Config::tls`]), each connection is wrapped in `tokio-rustls`; at most
//!   [`Config::max_handshakes`] handshakes run at once and each, wait included, must end
//!   within [`Config::handshake_timeout`].
//! - HTTP/1.1 by hyper with a header read timeout ([`Config::header_read_timeout`]), and
//!   upgrades (the agents' WebSocket) kept working.
//! - Every request carries `axum::extract::ConnectInfo<SocketAddr>` (the peer) and a
//!   [`Link`] (the peer, and whether the link is TLS).
//! - Shutdown: stop accepting, ask every HTTP connection to finish its request and close,
//!   wait for them (bounded by [`DRAIN`]). Upgraded agent WebSockets are the hub's to close
//!   (`Hub::close`, `Hub::sessions_ended`), as under `axum::serve`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::Config;

/// How long shutdown waits for open connections to finish.
pub const DRAIN: Duration = Duration::from_secs(10);
/// Pause after an accept error that is not about one connection (e.g. out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);
/// At most one "connection limit reached" warning per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What a handler knows about the link its request came over (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The peer's address.
    pub peer: SocketAddr,
    /// True when the connection is TLS.
    pub tls: bool,
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains the connections.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = config.tls.clone().map(TlsAcceptor::from);
    let max = config.max_connections.clamp(1, u32::MAX as usize);
    let connections = Arc::new(Semaphore::new(max));
    let handshakes = Arc::new(Semaphore::new(config.max_handshakes.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every HTTP connection task holds a sender; all dropped: all ended (or upgraded).
    let (alive, mut ended) = tokio::sync::mpsc::channel::<()>(1);
    let limits = Limits {
        handshake_timeout: config.handshake_timeout,
        header_read_timeout: config.header_read_timeout,
    };
    let mut warned: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = match connections.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    tracing::warn!(
                        max,
                        "connection limit reached; new connections wait in the backlog"
                    );
                    warned = Some(Instant::now());
                }
                tokio::select! {
                    p = connections.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    if !per_connection(&e) {
                        tracing::error!(error = %e, "accept failed");
                        tokio::select! {
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn {
            peer,
            router: router.clone(),
            limits,
            stop: stop_rx.clone(),
            permit,
            alive: alive.clone(),
        };
        match &acceptor {
            None => {
                tokio::spawn(conn.plain(tcp));
            }
            Some(acceptor) => {
                tokio::spawn(conn.tls(tcp, acceptor.clone(), handshakes.clone()));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive);
    if tokio::time::timeout(DRAIN, ended.recv()).await.is_err() {
        tracing::warn!("HTTP connections still open after {DRAIN:?}; leaving them");
    }
}

/// Resolves once the server stops (the guard `wait_for` returns is not kept: it is not Send).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accept errors that concern one connection only (the next accept may well work).
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    handshake_timeout: Duration,
    header_read_timeout: Duration,
}

/// One accepted connection and what it needs.
struct Conn {
    peer: SocketAddr,
    router: axum::Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    /// One of `max_connections`, held by the socket itself (see [`Counted`]).
    permit: OwnedSemaphorePermit,
    /// Dropped when this task ends: shutdown waits for every one.
    alive: tokio::sync::mpsc::Sender<()>,
}

impl Conn {
    async fn plain(self, tcp: TcpStream) {
        let (io, rest, _alive) = self.split(tcp);
        rest.http(io, false).await;
    }

    async fn tls(mut self, tcp: TcpStream, acceptor: TlsAcceptor, handshakes: Arc<Semaphore>) {
        let peer = self.peer;
        let handshake = async {
            let _slot = handshakes.acquire().await;
            acceptor.accept(tcp).await
        };
        let stream = tokio::select! {
            r = tokio::time::timeout(self.limits.handshake_timeout, handshake) => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake not done in time; closed");
                    return;
                }
            },
            () = stopped(&mut self.stop) => return,
        };
        let (io, rest, _alive) = self.split(stream);
        rest.http(io, true).await;
    }

    /// The socket with the connection's permit attached, the rest, and the task's token.
    fn split<I>(self, io: I) -> (Counted<I>, Http, tokio::sync::mpsc::Sender<()>) {
        (
            Counted {
                io,
                _permit: self.permit,
            },
            Http {
                peer: self.peer,
                router: self.router,
                limits: self.limits,
                stop: self.stop,
            },
            self.alive,
        )
    }
}

/// Serving HTTP/1.1 on a connection.
struct Http {
    peer: SocketAddr,
    router: axum::Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
}

impl Http {
    async fn http<I>(mut self, io: Counted<I>, tls: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let link = Link { peer, tls };
        let router = self.router;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(link);
            // A Router is always ready; its error type is Infallible.
            router.clone().call(req)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            () = stopped(&mut self.stop) => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(DRAIN, conn).await;
            }
        }
    }
}

/// A socket that holds one of the connection permits for as long as it lives, also after
/// hyper hands it to a WebSocket on upgrade.
struct Counted<I> {
    io: I,
    _permit: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
