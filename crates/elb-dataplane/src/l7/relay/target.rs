//! The relay's target side: a request sent on a connection from the target's pool, and the
//! response read back, its head written for the client and its body passed on.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::client::{Client, ClientStream};
use super::{Failure, Taken, head, room};
use crate::l7::framing::{Framing, Remaining};
use crate::l7::limits::MAX_RESPONSE_HEAD;
use crate::l7::rescue::ProxyError;
use crate::pool::TargetPool;

/// A request on its way to a target: `out` (its head and the body bytes read with it), the
/// `rest` of its body still to come from the client.
pub(super) struct Outgoing<'a> {
    pub(super) out: &'a [u8],
    pub(super) rest: u64,
    pub(super) idempotent: bool,
}

/// Sends the request on an idle connection to the target or a new one, and reads the first
/// bytes of the response into `response`. A kept-alive connection the target closed meanwhile
/// is given up for another when the request was not taken (the write failed), or when it was
/// and may be sent again (an idempotent method), as long as the whole request is at hand.
pub(super) async fn send<S: ClientStream>(
    pool: &TargetPool,
    request: Outgoing<'_>,
    client: &mut Client<S>,
    response: &mut Vec<u8>,
    idle: Duration,
) -> Result<TcpStream, Failure> {
    let Outgoing {
        out,
        rest,
        idempotent,
    } = request;
    // Until the body is passed on, a failure leaves part of it unread on the client's side.
    let unread = |e| {
        if rest > 0 {
            Failure::Midway(e)
        } else {
            Failure::Proxy(e)
        }
    };
    loop {
        let (mut target, reused) = match pool.take() {
            Some(target) => (target, true),
            None => {
                let fresh = pool.dial().await;
                (fresh.map_err(|e| unread(ProxyError::from_pool(e)))?, false)
            }
        };
        let retry = reused && rest == 0;
        match timeout(idle, target.write_all(out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) if retry => continue,
            Ok(Err(e)) => return Err(unread(ProxyError::Target(e.into()))),
            Err(_) => return Err(unread(ProxyError::TargetTimeout)),
        }
        if rest > 0 {
            client
                .copy_body(&mut target, rest)
                .await
                .map_err(|e| match e {
                    Failure::Proxy(e) => Failure::Midway(e),
                    other => other,
                })?;
        }
        room(response);
        match timeout(idle, target.read_buf(response)).await {
            Err(_) => return Err(Failure::Proxy(ProxyError::TargetTimeout)),
            Ok(Ok(n)) if n > 0 => return Ok(target),
            _ if retry && idempotent => continue,
            Ok(Ok(_)) => return Err(target_closed()),
            Ok(Err(e)) => return Err(Failure::Proxy(ProxyError::Target(e.into()))),
        }
    }
}

fn target_closed() -> Failure {
    let closed = io::Error::from(io::ErrorKind::UnexpectedEof);
    Failure::Proxy(ProxyError::Target(closed.into()))
}

/// A response head, read and written for the client.
struct Answer {
    status: u16,
    head_len: usize,
    framing: Framing,
    reusable: bool,
}

enum Head {
    Final(Answer),
    /// A 1xx response before the final one: forwarded, then the next head.
    Interim(usize),
    Partial,
}

/// Reads the response head at the start of `response` and writes it for the client into
/// `out`.
fn take_response(
    response: &[u8],
    taken: &Taken<'_>,
    out: &mut Vec<u8>,
) -> Result<Head, ProxyError> {
    let mut storage = [const { MaybeUninit::uninit() }; head::MAX_RESPONSE_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let bad = |why: &'static str| ProxyError::Target(why.into());
    let parser = httparse::ParserConfig::default();
    let head_len = match parser.parse_response_with_uninit_headers(&mut res, response, &mut storage)
    {
        Ok(httparse::Status::Complete(n)) if n <= MAX_RESPONSE_HEAD => n,
        Ok(httparse::Status::Partial) if response.len() < MAX_RESPONSE_HEAD => {
            return Ok(Head::Partial);
        }
        Ok(_) => return Err(bad("response head too large")),
        Err(_) => return Err(bad("malformed response head")),
    };
    let facts = head::inspect_response(&res, taken.head_method).map_err(bad)?;
    if facts.status == 101 {
        return Err(bad("101 to a request that asked for no upgrade"));
    }
    out.clear();
    head::write_response(out, &res, &facts, facts.closes_client(taken.close));
    if facts.status < 200 {
        return Ok(Head::Interim(head_len));
    }
    Ok(Head::Final(Answer {
        status: facts.status,
        head_len,
        framing: facts.framing,
        reusable: facts.reusable,
    }))
}

/// Passes the target's response to the client, and the target's connection back to `pool`
/// when it can take another request: whether the client's connection goes on. The target's
/// status is noted in `status` as soon as its head is read.
pub(super) async fn respond<S: ClientStream>(
    mut target: TcpStream,
    pool: &TargetPool,
    (out, response): (&mut Vec<u8>, &mut Vec<u8>),
    (taken, status): (&Taken<'_>, &mut Option<u16>),
    client: &mut Client<S>,
    idle: Duration,
) -> Result<bool, Failure> {
    let answer = loop {
        match take_response(response, taken, out).map_err(Failure::Proxy)? {
            Head::Final(answer) => break answer,
            Head::Interim(len) => {
                client.write(out).await?;
                response.drain(..len);
                if !response.is_empty() {
                    continue;
                }
            }
            Head::Partial => {}
        }
        read_target(&mut target, response, idle).await?;
    };
    *status = Some(answer.status);
    let mut body = Remaining::new(answer.framing);
    let (end, extra) = body
        .advance(&response[answer.head_len..])
        .map_err(|_| Failure::Proxy(ProxyError::Target("malformed chunked body".into())))?;
    out.extend_from_slice(&response[answer.head_len..answer.head_len + end]);
    // The connection's last response: its end goes with the shutdown's FIN.
    let ends = |body: &Remaining| body.done && taken.close;
    client.write_response(out, ends(&body)).await?;
    let mut reusable = answer.reusable && !extra;
    while !body.done {
        response.clear();
        match read_target(&mut target, response, idle).await {
            Ok(()) => {}
            // The end of a close-delimited body.
            Err(_) if answer.framing == Framing::Close => break,
            Err(_) => return Err(Failure::TargetBroke),
        }
        let (end, extra) = body.advance(response).map_err(|_| Failure::TargetBroke)?;
        reusable &= !extra;
        client.write_response(&response[..end], ends(&body)).await?;
    }
    if reusable {
        pool.put(target);
    }
    Ok(!taken.close && answer.framing != Framing::Close)
}

/// Reads more of the response; an error when the target closes first.
async fn read_target(
    target: &mut TcpStream,
    response: &mut Vec<u8>,
    idle: Duration,
) -> Result<(), Failure> {
    room(response);
    match timeout(idle, target.read_buf(response)).await {
        Err(_) => Err(Failure::Proxy(ProxyError::TargetTimeout)),
        Ok(Ok(0)) => Err(target_closed()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Failure::Proxy(ProxyError::Target(e.into()))),
    }
}
