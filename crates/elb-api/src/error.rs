//! The one place where control-plane failures become AWS error responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use elb_model::ModelError;
use elb_store::{StoreError, UpdateError};

use crate::Service;
use crate::xml::Xml;

/// An AWS error: its code, HTTP status, and message. `Sender` faults are the client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationError", message)
    }

    pub fn missing(name: &str) -> Self {
        Self::new(
            400,
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    /// EC2's answer to `DryRun=true` when the request would have succeeded.
    pub fn dry_run() -> Self {
        Self::new(
            412,
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        )
    }

    /// A request elbd cannot even read: bad encoding, bad list numbering, too large.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(400, "MalformedQueryString", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalFailure", message)
    }

    fn fault(&self) -> &'static str {
        if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        }
    }

    /// The code in `service`'s words. EC2 has no `ValidationError`: a value out of its range
    /// or set is `InvalidParameterValue`; elbv2 and IAM have no `UnknownParameter`: a
    /// parameter they do not know is a `ValidationError`.
    fn code_for(&self, service: Service) -> &str {
        match (service, self.code.as_str()) {
            (Service::Ec2 | Service::CloudWatch { .. }, "ValidationError") => {
                "InvalidParameterValue"
            }
            (Service::Elbv2 | Service::Iam, "UnknownParameter") => "ValidationError",
            (_, code) => code,
        }
    }

    /// The error document of `service`'s protocol.
    pub fn render(&self, service: Service, request_id: &str) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        if service == (Service::CloudWatch { json: true }) {
            // JSON 1.0 in query-compatible mode: the Query protocol's code rides in a header.
            let code = self.code_for(service);
            let body = serde_json::json!({"__type": code, "message": self.message});
            let query_error = format!("{code};{}", self.fault());
            return (
                status,
                [
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amzn-requestid", request_id),
                    ("x-amzn-query-error", query_error.as_str()),
                ],
                body.to_string(),
            )
                .into_response();
        }
        if service == Service::Acm {
            let body = serde_json::json!({"__type": self.code, "message": self.message});
            return (
                status,
                [
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amzn-requestid", request_id),
                    ("x-amzn-errortype", self.code.as_str()),
                ],
                body.to_string(),
            )
                .into_response();
        }
        let mut x = Xml::new();
        match service {
            Service::Ec2 => {
                x.node("Response", |x| {
                    x.node("Errors", |x| {
                        x.node("Error", |x| {
                            x.leaf("Code", self.code_for(service))
                                .leaf("Message", &self.message);
                        });
                    });
                    x.leaf("RequestID", request_id);
                });
            }
            Service::Elbv2 | Service::Iam | Service::Acm | Service::CloudWatch { .. } => {
                let namespace = match service {
                    Service::Iam => crate::iam::NAMESPACE,
                    Service::CloudWatch { .. } => crate::cloudwatch::NAMESPACE,
                    _ => crate::elbv2::NAMESPACE,
                };
                x.open_ns("ErrorResponse", namespace);
                x.node("Error", |x| {
                    x.leaf("Type", self.fault())
                        .leaf("Code", self.code_for(service))
                        .leaf("Message", &self.message);
                });
                x.leaf("RequestId", request_id);
                x.close("ErrorResponse");
            }
        }
        (
            status,
            [
                ("content-type", "text/xml"),
                ("x-amzn-requestid", request_id),
            ],
            x.into_string(),
        )
            .into_response()
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        Self::new(400, e.code.as_str(), e.message)
    }
}

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::Model(e) => e.into(),
            // Retryable, as AWS's 503s are (SDKs retry them): a store unreachable, busy (its
            // file locked by another process) or full. The client is not told where the store
            // is; the log is.
            UpdateError::Store(e) if e.is_transient() => {
                tracing::warn!(error = %e, "a change could not be committed");
                Self::new(
                    503,
                    "ServiceUnavailable",
                    "the store did not take the change in time; retry",
                )
            }
            UpdateError::Store(e @ StoreError::TooLarge { .. }) => Self::validation(e.to_string()),
            UpdateError::Store(e) => Self::internal(format!("the store failed: {e}")),
        }
    }
}
