//! TLS on a TCP flow: a TLS listener terminates the client's TLS with the listener's
//! certificates and ALPN policy, and a TLS target group re-encrypts to the target, offering
//! the protocol the client negotiated and, as ELB, not verifying the target's certificate.
//!
//! Plain flows keep the readiness relay of the parent module; a flow with TLS on either side
//! moves plaintext through the TLS streams with a buffer per direction.

use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use super::{Broken, Shared};
use crate::spare;

/// A client gets this long to complete its TLS handshake, as on HTTPS listeners.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One side of a flow: plain TCP, or TLS over it.
pub(super) enum Stream {
    Plain(TcpStream),
    /// The client's side of a TLS listener.
    Server(Box<server::TlsStream<TcpStream>>),
    /// The target's side of a TLS target group.
    Client(Box<client::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP connection underneath, to reset.
    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Server(tls) => tls.get_ref().0,
            Self::Client(tls) => tls.get_ref().0,
        }
    }

    /// Whether mutual TLS's identity `filters` admit the client's (verified) certificate:
    /// always without filters.
    pub(super) fn admitted(&self, filters: &[elb_model::IdentityFilter]) -> bool {
        if filters.is_empty() {
            return true;
        }
        let leaf = match self {
            Self::Server(tls) => tls.get_ref().1.peer_certificates().and_then(|c| c.first()),
            _ => None,
        };
        leaf.is_some_and(|leaf| {
            elb_model::trust_store::admits(filters, &elb_tls::mtls::identity(leaf))
        })
    }

    /// The protocol ALPN settled on with the client, if any.
    pub(super) fn alpn(&self) -> Option<&[u8]> {
        match self {
            Self::Server(tls) => tls.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }

    /// The protocol ALPN settled on with the target, if any.
    pub(super) fn target_alpn(&self) -> Option<&[u8]> {
        match self {
            Self::Client(tls) => tls.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }
}

/// The client's TLS handshake under `config`; an error when it fails or takes too long.
pub(super) async fn accept(
    config: &Arc<rustls::ServerConfig>,
    client: TcpStream,
) -> io::Result<Stream> {
    let acceptor = TlsAcceptor::from(config.clone());
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(client)).await {
        Ok(stream) => Ok(Stream::Server(Box::new(stream?))),
        Err(_) => Err(ErrorKind::TimedOut.into()),
    }
}

/// The TLS handshake with the target at `addr` over `target`, offering `alpn`.
pub(super) async fn connect(
    target: TcpStream,
    addr: SocketAddr,
    alpn: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Stream> {
    let name = ServerName::IpAddress(addr.ip().into());
    let handshake = connector(alpn).connect(name, target);
    match tokio::time::timeout(timeout, handshake).await {
        Ok(stream) => Ok(Stream::Client(Box::new(stream?))),
        Err(_) => Err(ErrorKind::TimedOut.into()),
    }
}

/// A connector offering `alpn`: none, or one of the protocols a TLS listener negotiates
/// (see `compile::nlb::alpn_offer`); any other offers none.
fn connector(alpn: Option<&[u8]>) -> &'static TlsConnector {
    static CONNECTORS: [OnceLock<TlsConnector>; 4] = [const { OnceLock::new() }; 4];
    const OFFERS: [&[&[u8]]; 4] = [&[], &[b"h2"], &[b"http/1.1"], &[b"http/1.0"]];
    let index = match alpn {
        Some(b"h2") => 1,
        Some(b"http/1.1") => 2,
        Some(b"http/1.0") => 3,
        _ => 0,
    };
    CONNECTORS[index]
        .get_or_init(|| TlsConnector::from(elb_tls::client::target_config(OFFERS[index])))
}

/// Copies plaintext from `from` to `to` until `from` ends, then shuts `to`'s write side: a
/// TLS side gets close_notify then FIN even when its peer's direction ended first, as a
/// strict peer takes a stream without close_notify for a truncated one. Holds a spare
/// buffer only while a read has bytes.
pub(super) async fn copy<R, W>(
    from: &mut R,
    to: &mut W,
    shared: &Shared<'_>,
    moved: &AtomicU64,
) -> Result<(), Broken>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let buf = match read(from).await {
            Ok(buf) => buf,
            // A peer that closes without close_notify has still closed: most do.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Vec::new(),
            Err(_) => return Err(Broken::Reading),
        };
        if buf.is_empty() {
            spare::give(buf);
            let first = shared.first_to_end();
            let shut = to.shutdown().await;
            // Only the first end's shutdown matters to the flow: the second may find the
            // socket already closed by its peer.
            if first {
                shut.map_err(|_| Broken::Writing)?;
            }
            return Ok(());
        }
        let written = async {
            to.write_all(&buf).await?;
            to.flush().await
        };
        let written = written.await;
        if written.is_ok() {
            shared.moved(buf.len());
            moved.fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        spare::give(buf);
        written.map_err(|_| Broken::Writing)?;
    }
}

/// The next bytes `from` has (none at the end of its stream), in a spare buffer taken for
/// the read and given back when the read must wait.
async fn read<R: AsyncRead + Unpin>(from: &mut R) -> io::Result<Vec<u8>> {
    let mut held: Option<Vec<u8>> = None;
    poll_fn(|cx| {
        let buf = held.get_or_insert_with(spare::take);
        let polled = pin!(from.read_buf(buf)).poll(cx);
        if polled.is_pending() {
            spare::give(held.take().expect("taken above"));
        }
        polled
    })
    .await?;
    Ok(held.take().unwrap_or_default())
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Server(s) => Pin::new(s).poll_read(cx, buf),
            Self::Client(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Server(s) => Pin::new(s).poll_write(cx, buf),
            Self::Client(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Server(s) => Pin::new(s).poll_flush(cx),
            Self::Client(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Server(s) => Pin::new(s).poll_shutdown(cx),
            Self::Client(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
