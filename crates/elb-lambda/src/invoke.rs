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

/// Why an invocation gave no answer to map: each is one of ALB's `Lambda*` error reasons, and
/// each is a 502 to the client, as ALB answers a failed invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the Lambda endpoint could not be reached: {0}")]
    Connection(String),
    #[error("Lambda throttled the invocation")]
    Throttled,
    #[error("Lambda has no such function")]
    NotFound,
    #[error("Lambda refused elbd's credentials")]
    AccessDenied,
    #[error("Lambda refused the invocation as malformed")]
    BadRequest,
    #[error("Lambda failed the invocation (status {0})")]
    Service(u16),
    #[error("the function failed: {0}")]
    Unhandled(String),
    #[error("the function's response is over 1 MB")]
    ResponseTooLarge,
    #[error("{0}")]
    InvalidResponse(#[from] crate::event::InvalidResponse),
}

/// Whose a failed invocation is, as ALB's metrics count it: `LambdaUserError` (the function
/// or its configuration) or `LambdaInternalError` (Lambda, or the way to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    User,
    Internal,
}

impl Failure {
    pub fn blame(&self) -> Blame {
        match self {
            Self::Connection(_) | Self::Service(_) => Blame::Internal,
            _ => Blame::User,
        }
    }

    /// The access log's `error_reason`, as ALB writes it (an endpoint elbd cannot reach is,
    /// from the load balancer's side, Lambda failing internally).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connection(_) => "LambdaServiceException",
            Self::Throttled => "LambdaThrottling",
            Self::NotFound => "LambdaResourceNotFound",
            Self::AccessDenied => "LambdaAccessDenied",
            Self::BadRequest => "LambdaBadRequest",
            Self::Service(_) => "LambdaServiceException",
            Self::Unhandled(_) => "LambdaUnhandled",
            Self::ResponseTooLarge => "LambdaResponseTooLarge",
            Self::InvalidResponse(_) => "LambdaInvalidResponse",
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
            && uri.authority().is_some()
            && uri.query().is_none();
        if !plain {
            return Err(format!(
                "lambda_endpoint '{endpoint}' must be an http:// or https:// URL without a query"
            ));
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
        let connector = builder.https_or_http().enable_http1().build();
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
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Failure::Connection(e.to_string()))?;
        let status = response.status();
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
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
        match status.as_u16() {
            200 => match function_error {
                Some(kind) => Err(Failure::Unhandled(kind)),
                None => Ok(body),
            },
            404 => Err(Failure::NotFound),
            429 => Err(Failure::Throttled),
            401 | 403 => Err(Failure::AccessDenied),
            400 | 413 => Err(Failure::BadRequest),
            other => Err(Failure::Service(other)),
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
}
