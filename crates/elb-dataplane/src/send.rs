//! Sends that let a FIN share the last bytes' segment.
//!
//! A proxy that writes a connection's last bytes and then shuts its write side sends them and
//! the FIN in two segments, each acknowledged: written with MSG_MORE, the bytes wait in the
//! kernel for what follows, and the shutdown's FIN leaves with them, as HAProxy's do. The
//! kernel holds them until a shutdown, a close, a send without MSG_MORE or TCP_NODELAY pushes
//! them: whoever sends with `more` must follow with one of those, without waiting on the peer.

use std::io;

use rustix::net::SendFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Sends what `socket` takes of `bytes` now, with MSG_MORE when `more`; never raises SIGPIPE.
/// WouldBlock clears the socket's write readiness, so the next wait for it registers.
pub(crate) fn try_send(socket: &TcpStream, bytes: &[u8], more: bool) -> io::Result<usize> {
    let flags = if more {
        SendFlags::MORE | SendFlags::NOSIGNAL
    } else {
        SendFlags::NOSIGNAL
    };
    socket.try_io(Interest::WRITABLE, || {
        rustix::net::send(socket, bytes, flags).map_err(io::Error::from)
    })
}

/// Writes all of `bytes` as a connection's last, with MSG_MORE: the caller shuts the write
/// side next.
pub(crate) async fn send_last(socket: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        match try_send(socket, &bytes[sent..], true) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn the_last_bytes_leave_with_the_shutdown_whatever_their_size() {
        // Larger than a socket buffer takes at once, so that the send waits for room too.
        for size in [5, 4 << 20] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (sender, accepted) = tokio::join!(
                TcpStream::connect(listener.local_addr().unwrap()),
                listener.accept()
            );
            let (mut sender, mut peer) = (sender.unwrap(), accepted.unwrap().0);
            let bytes: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let reading = tokio::spawn(async move {
                let mut seen = Vec::new();
                peer.read_to_end(&mut seen).await.map(|_| seen)
            });
            send_last(&sender, &bytes).await.unwrap();
            sender.shutdown().await.unwrap();
            let seen = tokio::time::timeout(Duration::from_secs(10), reading)
                .await
                .expect("the held bytes went out with the FIN")
                .unwrap()
                .unwrap();
            assert_eq!(seen, bytes);
        }
    }
}
