//! The one place where data-plane failures become HTTP responses: each error knows who is at
//! fault (client, target or the load balancer) and which status AWS answers with, and the
//! pages are AWS's own (`Server: awselb/2.0`, nginx-style HTML, CRLF line ends).

use bytes::Bytes;
use elb_lambda::Blame;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::ext::ReasonPhrase;
use tracing::debug;

use super::exchange::TargetBody;
use super::headers::push_header;
use crate::auth::AuthFailure;
use crate::auth::jwt::TokenFailure;
use crate::pool::{BoxError, SendError};

/// What the listener answers with: a target's body, or one of ours.
pub type Body = Either<TargetBody, Full<Bytes>>;

/// Who caused a failure; it decides `HTTPCode_ELB_*` versus `HTTPCode_Target_*` counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Client,
    Target,
    Elb,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the listener was removed while the connection was open")]
    ListenerGone,
    #[error("the target group has no registered targets")]
    NoTargets,
    #[error("no registered target is in reach of this node (cross-zone is off)")]
    NoReachableTargets,
    #[error("connecting to the target failed: {0}")]
    TargetConnect(#[source] BoxError),
    #[error("connecting to the target timed out")]
    TargetConnectTimeout,
    #[error("the target did not answer within the idle timeout")]
    TargetTimeout,
    #[error("the target failed the request: {0}")]
    Target(#[source] BoxError),
    #[error("the request cannot be forwarded: {0}")]
    BadRequest(&'static str),
    #[error("TRACE is not allowed")]
    Trace,
    #[error("X-Forwarded-For holds more than 30 addresses")]
    TooManyForwardedFor,
    #[error("the request's protocol does not suit the target group's protocol version")]
    IncompatibleProtocol,
    #[error("the request target is longer than 16 KB")]
    UriTooLong,
    #[error("a transfer coding other than chunked")]
    UnsupportedTransferCoding,
    #[error("desync mitigation refused the request ({0})")]
    Desync(&'static str),
    #[error("the client did not send its whole request within the header or idle timeout")]
    RequestTimeout,
    #[error("the client opened with HTTP/2's preface, and HTTP/2 is off (routing.http2.enabled)")]
    Http2Off,
    #[error("the node holds as many client connections as it may")]
    ConnectionLimit,
    #[error("a rule's transform made a {0} that cannot be sent")]
    Transform(&'static str),
    #[error("the Lambda target failed: {0}")]
    Lambda(#[source] elb_lambda::Failure),
    #[error("the request body is over the 1 MB a Lambda function takes")]
    LambdaRequestTooLarge,
    #[error("authentication failed: {0}")]
    Auth(#[source] AuthFailure),
}

impl ProxyError {
    /// Sorts a client error from hyper into connect failures, connect timeouts and the rest.
    pub(crate) fn from_target(e: hyper_util::client::legacy::Error) -> Self {
        if !e.is_connect() {
            return Self::Target(e.into());
        }
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return Self::TargetConnectTimeout;
            }
            source = cause.source();
        }
        Self::TargetConnect(e.into())
    }

    /// The failure of a request sent through a node's own pool.
    pub(crate) fn from_pool(e: SendError) -> Self {
        match e {
            SendError::Connect(e) => Self::TargetConnect(e),
            SendError::ConnectTimeout => Self::TargetConnectTimeout,
            SendError::Request(e) => Self::Target(e),
            SendError::ClientBody(e) => {
                debug!(error = %e, "the request body broke off");
                Self::BadRequest("the request body broke off")
            }
            SendError::TargetTimeout => Self::TargetTimeout,
            SendError::ClientTimeout => Self::RequestTimeout,
        }
    }

    /// The error's name, as the outcome record gives it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ListenerGone => "ListenerGone",
            Self::NoTargets => "NoTargets",
            Self::NoReachableTargets => "NoReachableTargets",
            Self::TargetConnect(_) => "TargetConnectionError",
            Self::TargetConnectTimeout => "TargetConnectionTimeout",
            Self::TargetTimeout => "TargetTimeout",
            Self::Target(_) => "TargetResponseError",
            Self::BadRequest(_) => "BadRequest",
            Self::Trace => "Trace",
            Self::TooManyForwardedFor => "TooManyForwardedFor",
            Self::IncompatibleProtocol => "IncompatibleProtocol",
            Self::UriTooLong => "UriTooLong",
            Self::UnsupportedTransferCoding => "UnsupportedTransferCoding",
            Self::Desync(_) => "Desync",
            Self::RequestTimeout => "RequestTimeout",
            Self::Http2Off => "HttpVersionNotSupported",
            Self::ConnectionLimit => "ConnectionLimit",
            Self::Transform(_) => "TransformFailed",
            Self::Lambda(failure) => failure.code(),
            Self::LambdaRequestTooLarge => "LambdaRequestTooLarge",
            Self::Auth(failure) => failure.code(),
        }
    }

    /// Whether the target was not reached or did not answer (what anomaly detection counts
    /// against it, besides its 5XX answers).
    pub fn blames_target(&self) -> bool {
        matches!(
            self,
            Self::TargetConnect(_)
                | Self::TargetConnectTimeout
                | Self::TargetTimeout
                | Self::Target(_)
        )
    }

    /// For a Lambda target's failure, which of ALB's two Lambda error metrics counts it.
    pub fn lambda_blame(&self) -> Option<Blame> {
        match self {
            Self::Lambda(failure) => Some(failure.blame()),
            Self::LambdaRequestTooLarge => Some(Blame::User),
            _ => None,
        }
    }

    pub fn fault(&self) -> Fault {
        match self {
            Self::BadRequest(_)
            | Self::Trace
            | Self::TooManyForwardedFor
            | Self::IncompatibleProtocol
            | Self::UriTooLong
            | Self::UnsupportedTransferCoding
            | Self::Desync(_)
            | Self::RequestTimeout
            | Self::Http2Off
            | Self::LambdaRequestTooLarge => Fault::Client,
            Self::Auth(failure) if failure.status() == StatusCode::INTERNAL_SERVER_ERROR => {
                Fault::Elb
            }
            Self::Auth(_) => Fault::Client,
            Self::TargetConnect(_)
            | Self::TargetConnectTimeout
            | Self::TargetTimeout
            | Self::Target(_)
            | Self::Lambda(_) => Fault::Target,
            Self::ListenerGone
            | Self::NoTargets
            | Self::NoReachableTargets
            | Self::ConnectionLimit
            | Self::Transform(_) => Fault::Elb,
        }
    }

    /// The status AWS answers with (aws-elb-features.md §6.4).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Desync(_) => StatusCode::BAD_REQUEST,
            Self::Trace => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyForwardedFor => {
                StatusCode::from_u16(463).expect("463 is a valid status code")
            }
            Self::IncompatibleProtocol => {
                StatusCode::from_u16(464).expect("464 is a valid status code")
            }
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Http2Off => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Self::ListenerGone
            | Self::NoTargets
            | Self::NoReachableTargets
            | Self::ConnectionLimit => StatusCode::SERVICE_UNAVAILABLE,
            Self::TargetConnect(_) | Self::Target(_) => StatusCode::BAD_GATEWAY,
            Self::TargetConnectTimeout | Self::TargetTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Lambda(failure) => failure.status(),
            Self::LambdaRequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            // As ALB answers a transform that matched and failed.
            Self::Transform(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Auth(failure) => failure.status(),
        }
    }
}

/// The response for `error`.
pub fn respond(error: &ProxyError) -> Response<Body> {
    debug!(%error, fault = ?error.fault(), "answering with an error page");
    let mut response = error_page(error.status());
    // A refused bearer token says so, as RFC 6750 has it.
    if let ProxyError::Auth(AuthFailure::Token(failure)) = error {
        let challenge = match failure {
            TokenFailure::Missing => "Bearer",
            TokenFailure::Several => "Bearer error=\"invalid_request\"",
            _ => "Bearer error=\"invalid_token\"",
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    if matches!(
        error,
        ProxyError::ListenerGone
            | ProxyError::Desync(_)
            | ProxyError::RequestTimeout
            | ProxyError::Http2Off
            | ProxyError::ConnectionLimit
    ) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// An nginx-style page, as AWS's own responses have, with CRLF line ends.
macro_rules! page {
    ($title:literal) => {
        concat!(
            "<html>\r\n<head><title>",
            $title,
            "</title></head>\r\n<body>\r\n<center><h1>",
            $title,
            "</h1></center>\r\n</body>\r\n</html>\r\n"
        )
    };
}

/// The reason phrase and the body AWS sends for `status`.
fn page(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        301 => ("Moved Permanently", page!("301 Moved Permanently")),
        302 => ("Found", page!("302 Found")),
        400 => ("Bad Request", page!("400 Bad Request")),
        401 => ("Unauthorized", page!("401 Authorization Required")),
        405 => ("Not Allowed", page!("405 Not Allowed")),
        408 => ("Request Time-out", page!("408 Request Time-out")),
        413 => (
            "Request Entity Too Large",
            page!("413 Request Entity Too Large"),
        ),
        414 => ("Request-URI Too Large", page!("414 Request-URI Too Large")),
        463 => ("", page!("463")),
        464 => ("", page!("464")),
        561 => ("", page!("561")),
        501 => ("Not Implemented", page!("501 Not Implemented")),
        502 => ("Bad Gateway", page!("502 Bad Gateway")),
        503 => (
            "Service Temporarily Unavailable",
            page!("503 Service Temporarily Unavailable"),
        ),
        504 => ("Gateway Time-out", page!("504 Gateway Time-out")),
        505 => (
            "HTTP Version Not Supported",
            page!("505 HTTP Version Not Supported"),
        ),
        _ => ("Internal Server Error", page!("500 Internal Server Error")),
    }
}

/// An error page of the load balancer itself.
pub fn error_page(status: StatusCode) -> Response<Body> {
    let (reason, body) = page(status);
    let mut response = own_response(
        status,
        Bytes::from_static(body.as_bytes()),
        HeaderValue::from_static("text/html"),
    );
    response
        .extensions_mut()
        .insert(ReasonPhrase::from_static(reason.as_bytes()));
    response
}

/// `error`'s page as the HTTP/1.1 bytes of a response that ends its connection, for a
/// connection that has no listener's response settings at hand (or no request yet).
pub(crate) fn closing_page(error: &ProxyError) -> Vec<u8> {
    let (parts, _) = respond(error).into_parts();
    let mut out = Vec::with_capacity(512);
    write_http1(&mut out, &parts, page(error.status()).1.as_bytes(), false);
    out
}

/// A response of the load balancer's own as HTTP/1.1 bytes: its head (a `Date`, its
/// `Content-Length`, and `Connection: close` unless `keep`) and `body`.
pub(crate) fn write_http1(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: &[u8],
    keep: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    let reason = parts.extensions.get::<ReasonPhrase>();
    let canonical = parts.status.canonical_reason().unwrap_or_default();
    out.extend_from_slice(reason.map_or(canonical.as_bytes(), |r| r.as_bytes()));
    out.extend_from_slice(b"\r\n");
    for (name, value) in parts
        .headers
        .iter()
        .filter(|(n, _)| *n != header::CONNECTION)
    {
        push_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    push_header(out, b"date", date.as_bytes());
    push_header(out, b"content-length", body.len().to_string().as_bytes());
    if !keep {
        push_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// The `Server` of the load balancer's own responses.
pub(crate) const SERVER: &str = "awselb/2.0";

/// A response of the load balancer itself: `Server: awselb/2.0`, as AWS's.
pub(super) fn own_response(
    status: StatusCode,
    body: Bytes,
    content_type: HeaderValue,
) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static(SERVER));
    headers.insert(header::CONTENT_TYPE, content_type);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_have_aws_lengths() {
        // Captured ALB pages: Content-Length 162 for 503 and 122 for 502.
        assert_eq!(page(StatusCode::SERVICE_UNAVAILABLE).1.len(), 162);
        assert_eq!(page(StatusCode::BAD_GATEWAY).1.len(), 122);
    }

    #[test]
    fn errors_map_to_aws_statuses_and_faults() {
        assert_eq!(
            ProxyError::NoTargets.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(ProxyError::NoTargets.fault(), Fault::Elb);
        assert_eq!(
            ProxyError::TargetTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(ProxyError::TargetTimeout.fault(), Fault::Target);
    }
}
