//! `--demo-targets`: a tiny HTTP backend at each IP target the config file declares, so that
//! the quick start shows requests spread over zones with one command.

use std::net::SocketAddr;

use bytes::Bytes;
use elb_model::{Origin, State, TargetId};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// Starts a backend at every IP target of a file-declared target group where nothing listens.
pub(crate) fn start(state: &State) {
    let targets = state
        .regions
        .values()
        .flat_map(|region| region.target_groups.values())
        .filter(|tg| tg.origin == Origin::ConfigFile)
        .flat_map(|tg| tg.targets.iter());
    for target in targets {
        let TargetId::Ip(ip) = target.id else {
            continue;
        };
        let addr = SocketAddr::new(ip, target.port);
        let greeting = Bytes::from(format!("target {addr} in {}\n", target.availability_zone));
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => {
                info!(%addr, zone = %target.availability_zone, "demo target up");
                tokio::spawn(serve(listener, greeting));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                info!(%addr, "something already listens at this target; no demo target");
            }
            Err(e) => warn!(%addr, error = %e, "cannot start a demo target here"),
        }
    }
}

async fn serve(listener: std::net::TcpListener, greeting: Bytes) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
    {
        Ok(listener) => listener,
        Err(e) => return warn!(error = %e, "demo target cannot listen"),
    };
    while let Ok((stream, _)) = listener.accept().await {
        let greeting = greeting.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<Incoming>| {
                let body = Full::new(greeting.clone());
                async move { Ok::<_, std::convert::Infallible>(Response::new(body)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!(error = %e, "demo target connection ended with an error");
            }
        });
    }
}
