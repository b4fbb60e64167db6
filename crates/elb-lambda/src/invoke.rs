//! The Lambda Invoke API (`POST /2015-03-31/functions/NAME/invocations`) at a configured
//! endpoint: AWS itself, LocalStack, or a runtime of one's own. Requests are signed (SigV4,
//! service `lambda`, the function's region) when credentials are given.

use bytes::Bytes;
use elb_model::FunctionArn;
use elb_wire::sigv4;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::event::MAX_BODY;

/// How long a connection to the endpoint may take, as a target's.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why an invocation gave no answer to map: each is one of ALB's `Lambda*` error reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the Lambda endpoint could not be reached: {0}")]
    Connection(String),
    #[error("connecting to the Lambda endpoint timed out")]
    ConnectTimeout,
    #[error("the function did not answer within the load balancer's idle timeout")]
    Timeout,
    #[error("the function failed: {0}")]
    Unhandled(String),
    #[error("the function's response is over 1 MB")]
    ResponseTooLarge,
    #[error("{0}")]
    InvalidResponse(#[from] crate::event::InvalidResponse),
    /// Lambda refused the invocation: ALB's code for Lambda's error type.
    #[error("Lambda refused the invocation: {code} (status {status})")]
    Refused { code: &'static str, status: u16 },
}

/// Whose a failed invocation is, as ALB's metrics count it: `LambdaUserError` (the function
/// or its configuration) or `LambdaInternalError` (Lambda, or the way to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    User,
    Internal,
}

/// Lambda's error types (`x-amzn-errortype`) and ALB's codes for them, with whose they are.
const REFUSALS: &[(&str, &str, Blame)] = &[
    (
        "ResourceNotFoundException",
        "LambdaResourceNotFound",
        Blame::User,
    ),
    ("TooManyRequestsException", "LambdaThrottling", Blame::User),
    ("AccessDeniedException", "LambdaAccessDenied", Blame::User),
    (
        "InvalidRequestContentException",
        "LambdaBadRequest",
        Blame::User,
    ),
    (
        "InvalidParameterValueException",
        "LambdaBadRequest",
        Blame::User,
    ),
    (
        "RequestTooLargeException",
        "LambdaRequestTooLarge",
        Blame::User,
    ),
    (
        "ServiceException",
        "LambdaServiceException",
        Blame::Internal,
    ),
    (
        "EC2AccessDeniedException",
        "LambdaEC2AccessDeniedException",
        Blame::User,
    ),
    (
        "EC2ThrottledException",
        "LambdaEC2ThrottledException",
        Blame::User,
    ),
    (
        "EC2UnexpectedException",
        "LambdaEC2UnexpectedException",
        Blame::User,
    ),
    (
        "ENILimitReachedException",
        "LambdaENILimitReachedException",
        Blame::User,
    ),
    (
        "InvalidRuntimeException",
        "LambdaInvalidRuntimeException",
        Blame::User,
    ),
    (
        "InvalidSecurityGroupIDException",
        "LambdaInvalidSecurityGroupIDException",
        Blame::User,
    ),
    (
        "InvalidSubnetIDException",
        "LambdaInvalidSubnetIDException",
        Blame::User,
    ),
    (
        "InvalidZipFileException",
        "LambdaInvalidZipFileException",
        Blame::User,
    ),
    (
        "KMSAccessDeniedException",
        "LambdaKMSAccessDeniedException",
        Blame::User,
    ),
    (
        "KMSDisabledException",
        "LambdaKMSDisabledException",
        Blame::User,
    ),
    (
        "KMSInvalidStateException",
        "LambdaKMSInvalidStateException",
        Blame::User,
    ),
    (
        "KMSNotFoundException",
        "LambdaKMSNotFoundException",
        Blame::User,
    ),
    (
        "SubnetIPAddressLimitReachedException",
        "LambdaSubnetIPAddressLimitReachedException",
        Blame::User,
    ),
];

impl Failure {
    /// Lambda's refusal with `status` and error type `kind` (`x-amzn-errortype`, whose part
    /// before a `:` names it); a type ALB has no code for is sorted by status.
    fn refused(status: u16, kind: Option<&str>) -> Self {
        let kind = kind.map(|k| k.split(':').next().unwrap_or(k));
        let known = REFUSALS.iter().find(|(name, _, _)| Some(*name) == kind);
        let code = match (known, status) {
            (Some((_, code, _)), _) => code,
            (None, 401 | 403) => "LambdaAccessDenied",
            (None, 404) => "LambdaResourceNotFound",
            (None, 429) => "LambdaThrottling",
            (None, 400..=499) => "LambdaBadRequest",
            (None, _) => "LambdaServiceException",
        };
        Self::Refused { code, status }
    }

    /// The status the client gets: 504 when no answer came in time, else 502.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::ConnectTimeout | Self::Timeout => http::StatusCode::GATEWAY_TIMEOUT,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }

    /// A function slower than the load balancer waits is the function's; Lambda, or the way
    /// to it, failing is Lambda's.
    pub fn blame(&self) -> Blame {
        match self {
            Self::Connection(_) | Self::ConnectTimeout => Blame::Internal,
            Self::Refused { code, .. } => REFUSALS
                .iter()
                .find(|(_, known, _)| known == code)
                .map_or(Blame::Internal, |(_, _, blame)| *blame),
            _ => Blame::User,
        }
    }

    /// The access log's `error_reason`, as ALB writes it. An endpoint elbd cannot connect to
    /// is, from the load balancer's side, Lambda failing; a function that has not answered
    /// within the idle timeout is logged as a timeout reaching Lambda, the one timeout ALB
    /// names.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connection(_) => "LambdaServiceException",
            Self::ConnectTimeout | Self::Timeout => "LambdaConnectionTimeout",
            Self::Unhandled(_) => "LambdaUnhandled",
            Self::ResponseTooLarge => "LambdaResponseTooLarge",
            Self::InvalidResponse(_) => "LambdaInvalidResponse",
            Self::Refused { code, .. } => code,
        }
    }
}

/// Invokes functions at one endpoint; cheap to share (its connections are pooled).
pub struct Invoker {
    endpoint: Uri,
    /// (access key id, secret access key).
    credentials: Option<(String, String)>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker")
            .field("endpoint", &self.endpoint)
            .field("signed", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl Invoker {
    /// An invoker of the Lambda API at `endpoint` (`http://` or `https://`, the machine's
    /// roots trusted), signing with `credentials` when given.
    pub fn new(endpoint: &str, credentials: Option<(String, String)>) -> Result<Self, String> {
        let uri: Uri = endpoint
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("lambda_endpoint '{endpoint}' is not a URL: {e}"))?;
        let plain = matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
            && uri.query().is_none();
        if !plain {
            return Err(format!(
                "lambda_endpoint must be an http:// or https:// URL without credentials or a \
                 query, not '{}'",
                uri.authority()
                    .map_or(endpoint, |_| uri.scheme_str().unwrap_or("?"))
            ));
        }
        // They go into a header as they are.
        if let Some((id, secret)) = &credentials
            && !(id.bytes().chain(secret.bytes())).all(|b| b.is_ascii_graphic())
        {
            return Err("the Lambda credentials must be visible ASCII".to_owned());
        }
        // The machine's roots only where they are used: an http:// endpoint needs none.
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if uri.scheme_str() == Some("https") {
            builder
                .with_native_roots()
                .map_err(|e| format!("the machine's TLS roots could not be read: {e}"))?
        } else {
            builder.with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        Ok(Self {
            endpoint: uri,
            credentials,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Invokes `function` with `payload` (RequestResponse) and gives back what it returned.
    /// The caller bounds the wait (the load balancer's idle timeout).
    pub async fn invoke(&self, function: &FunctionArn, payload: Vec<u8>) -> Result<Bytes, Failure> {
        let request = self.request(function, payload, time::OffsetDateTime::now_utc());
        let response = self.client.request(request).await.map_err(unreached)?;
        let text = |name| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        // Lambda's refusals say what they are in a header; their bodies are not read.
        if response.status() != http::StatusCode::OK {
            let kind = text("x-amzn-errortype");
            return Err(Failure::refused(
                response.status().as_u16(),
                kind.as_deref(),
            ));
        }
        let function_error = text("x-amz-function-error");
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Failure::ResponseTooLarge
                } else {
                    Failure::Connection(e.to_string())
                }
            })?
            .to_bytes();
        match function_error {
            Some(kind) => Err(Failure::Unhandled(kind)),
            None => Ok(body),
        }
    }

    /// The Invoke request for `function`, signed at `now` when credentials are given.
    fn request(
        &self,
        function: &FunctionArn,
        payload: Vec<u8>,
        now: time::OffsetDateTime,
    ) -> Request<Full<Bytes>> {
        let base = self.endpoint.path().trim_end_matches('/');
        let path = format!("{base}/2015-03-31/functions/{}/invocations", function.name);
        let query = function
            .qualifier
            .as_deref()
            .map(|q| format!("Qualifier={}", encode(q)))
            .unwrap_or_default();
        let target = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };
        let authority = self.endpoint.authority().expect("checked in new").as_str();
        let uri = Uri::builder()
            .scheme(self.endpoint.scheme_str().expect("checked in new"))
            .authority(authority)
            .path_and_query(target)
            .build()
            .expect("a name and qualifier of checked characters make a URI");
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("host", authority)
            .header("content-type", "application/json")
            .header("x-amz-invocation-type", "RequestResponse");
        if let Some((access_key, secret)) = &self.credentials {
            let amz_date = amz_date(now);
            let scope = sigv4::Scope {
                date: &amz_date[..8],
                region: &function.region,
                service: "lambda",
            };
            let signed = [
                ("content-type", "application/json"),
                ("host", authority),
                ("x-amz-date", amz_date.as_str()),
                ("x-amz-invocation-type", "RequestResponse"),
            ];
            let request = sigv4::Request {
                method: "POST",
                path: &path,
                query: &query,
                headers: &signed,
                body: &payload,
            };
            let signature = sigv4::signature(secret, scope, &amz_date, &request);
            let names: Vec<&str> = signed.iter().map(|(name, _)| *name).collect();
            builder = builder.header("x-amz-date", &amz_date).header(
                "authorization",
                sigv4::authorization(access_key, scope, &names, &signature),
            );
        }
        builder
            .body(Full::new(Bytes::from(payload)))
            .expect("the headers elbd makes are valid")
    }
}

/// Why the endpoint gave no answer: its connect timed out, or something else failed.
fn unreached(e: hyper_util::client::legacy::Error) -> Failure {
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
            && e.is_connect()
        {
            return Failure::ConnectTimeout;
        }
        source = cause.source();
    }
    Failure::Connection(e.to_string())
}

/// SigV4's URI encoding of a query value: everything but unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `YYYYMMDDTHHMMSSZ`.
fn amz_date(now: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_the_function_and_qualifier_and_are_signed_for_its_region() {
        let signed = Invoker::new(
            "http://127.0.0.1:9001/base/",
            Some(("AKID".into(), "secret".into())),
        )
        .unwrap();
        let function =
            FunctionArn::parse("arn:aws:lambda:eu-west-1:123456789012:function:hello:$LATEST")
                .unwrap();
        let now = time::OffsetDateTime::from_unix_timestamp(1_796_552_430).unwrap();
        let request = signed.request(&function, b"{}".to_vec(), now);
        assert_eq!(
            request.uri().to_string(),
            "http://127.0.0.1:9001/base/2015-03-31/functions/hello/invocations?Qualifier=%24LATEST"
        );
        // The signature botocore's SigV4Auth computes for the same request.
        assert_eq!(
            request.headers()["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKID/20261206/eu-west-1/lambda/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type, \
             Signature=125c2b00aac4035d395a1ba996cc5b1f6e35cc37c4c0bf8ed00b1082fba22c9b"
        );
        assert_eq!(request.headers()["x-amz-date"], "20261206T102030Z");
        let unsigned = Invoker::new("https://lambda.example", None).unwrap();
        let plain = FunctionArn::parse("arn:aws:lambda:us-east-1:123456789012:function:f").unwrap();
        let request = unsigned.request(&plain, Vec::new(), now);
        assert_eq!(
            request.uri().to_string(),
            "https://lambda.example/2015-03-31/functions/f/invocations"
        );
        assert!(!request.headers().contains_key("authorization"));
        assert!(Invoker::new("ftp://x", None).is_err());
        assert!(Invoker::new("http://x/?a=b", None).is_err());
    }

    /// Invokes a function at a one-shot endpoint that answers with `head` and `body`.
    async fn answered(head: &str, body: &'static str) -> Result<Bytes, Failure> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let response = format!("{head}\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 64 * 1024];
            let _ = stream.read(&mut request).await;
            stream.write_all(response.as_bytes()).await.unwrap();
        });
        let invoker = Invoker::new(&format!("http://{addr}"), None).unwrap();
        let function = FunctionArn::parse("arn:aws:lambda:us-east-1:123456789012:function:f");
        invoker.invoke(&function.unwrap(), b"{}".to_vec()).await
    }

    #[tokio::test]
    async fn lambdas_answers_are_sorted_into_albs_codes_and_blame() {
        let ok = answered("HTTP/1.1 200 OK", r#"{"statusCode": 200}"#).await;
        assert_eq!(&ok.unwrap()[..], br#"{"statusCode": 200}"#);
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nx-amz-function-error: Unhandled",
                "LambdaUnhandled",
                Blame::User,
            ),
            (
                "HTTP/1.1 404 Not Found\r\nx-amzn-errortype: ResourceNotFoundException:http://internal.amazon.com/",
                "LambdaResourceNotFound",
                Blame::User,
            ),
            (
                "HTTP/1.1 429 Too Many Requests\r\nx-amzn-errortype: TooManyRequestsException",
                "LambdaThrottling",
                Blame::User,
            ),
            (
                "HTTP/1.1 502 Bad Gateway\r\nx-amzn-errortype: EC2ThrottledException",
                "LambdaEC2ThrottledException",
                Blame::User,
            ),
            (
                "HTTP/1.1 500 Internal Server Error\r\nx-amzn-errortype: ServiceException",
                "LambdaServiceException",
                Blame::Internal,
            ),
            (
                "HTTP/1.1 503 Service Unavailable",
                "LambdaServiceException",
                Blame::Internal,
            ),
            ("HTTP/1.1 403 Forbidden", "LambdaAccessDenied", Blame::User),
            ("HTTP/1.1 409 Conflict", "LambdaBadRequest", Blame::User),
        ];
        for (head, code, blame) in cases {
            let failure = answered(head, r#"{"message": "no"}"#).await.unwrap_err();
            assert_eq!((failure.code(), failure.blame()), (code, blame), "{head}");
            assert_eq!(failure.status(), http::StatusCode::BAD_GATEWAY);
        }
        // Nothing listens on a port just let go of.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let invoker = Invoker::new(&format!("http://{addr}"), None).unwrap();
        let function = FunctionArn::parse("arn:aws:lambda:us-east-1:123456789012:function:f");
        let failure = invoker
            .invoke(&function.unwrap(), Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(failure, Failure::Connection(_)), "{failure:?}");
        assert_eq!(failure.blame(), Blame::Internal);
        assert!(Invoker::new("http://user:pass@127.0.0.1:1", None).is_err());
        assert!(Invoker::new("http://127.0.0.1:1", Some(("a\nb".into(), "s".into()))).is_err());
    }
}
