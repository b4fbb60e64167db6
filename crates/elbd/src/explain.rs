//! `elbd explain`: asks a running elbd (`POST /elbd/explain` on its API address) how a
//! listener would route a request now, and prints the answer; and that endpoint. The answer
//! comes from the routing table in use (`elb_dataplane::l7::explain`): nothing is sent and no
//! round-robin cursor moves. With API credentials configured, requests are SigV4-signed like
//! API calls (the CLI signs with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use elb_api::Credentials;
use elb_dataplane::l7::explain::{ExplainError, Explainer, Question};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const PATH: &str = "/elbd/explain";

/// What the CLI asks: a request as `elbd explain`'s arguments describe it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Asked {
    listener_arn: String,
    /// A node address of the listener; its first node when absent.
    node: Option<IpAddr>,
    /// The client's address; the asker's own when absent.
    source: Option<IpAddr>,
    method: String,
    /// Path and query.
    path: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

pub(crate) struct Endpoint {
    pub(crate) explainer: Explainer,
    pub(crate) credentials: Credentials,
}

pub(crate) fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new().route(PATH, post(answer)).with_state(endpoint)
}

async fn answer(
    State(endpoint): State<Arc<Endpoint>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refuse = |status: StatusCode, code: &str, message: String| {
        reply(status, &json!({ "code": code, "message": message }))
    };
    if !endpoint.credentials.0.is_empty() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let Err(e) = endpoint
            .credentials
            .authenticate_at("POST", PATH, &headers, &body, now)
        {
            return refuse(StatusCode::FORBIDDEN, &e.code, e.message);
        }
    }
    let asked: Asked = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "ValidationError", e.to_string()),
    };
    let mut request_headers = HeaderMap::new();
    for (name, value) in &asked.headers {
        let parsed = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        );
        let (Ok(name), Ok(value)) = parsed else {
            let message = format!("'{name}: {value}' is not a valid header");
            return refuse(StatusCode::BAD_REQUEST, "ValidationError", message);
        };
        request_headers.append(name, value);
    }
    let question = Question {
        method: asked.method,
        target: asked.path,
        headers: request_headers,
        source: asked.source.unwrap_or(peer.ip()),
    };
    match endpoint
        .explainer
        .explain(&asked.listener_arn, asked.node, &question)
    {
        Ok(explanation) => reply(StatusCode::OK, &explanation),
        Err(e @ ExplainError::ListenerNotFound(_)) => {
            refuse(StatusCode::NOT_FOUND, "ListenerNotFound", e.to_string())
        }
        Err(e) => refuse(StatusCode::BAD_REQUEST, "ValidationError", e.to_string()),
    }
}

fn reply(status: StatusCode, body: &impl Serialize) -> Response {
    let body = serde_json::to_string(body).unwrap_or_default();
    (status, [("content-type", "application/json")], body).into_response()
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// The running elbd's API address, e.g. http://127.0.0.1:4566.
    #[arg(long, value_name = "URL")]
    api_url: String,
    #[arg(long, value_name = "ARN")]
    listener_arn: String,
    /// The node address to ask about; default: the listener's first node.
    #[arg(long, value_name = "ADDR")]
    node: Option<IpAddr>,
    /// The client's address, for source-ip conditions; default: this machine's, as elbd
    /// sees it.
    #[arg(long, value_name = "IP")]
    source: Option<IpAddr>,
    /// A request header, `Name: value` (repeatable; Host sets the host).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// `text` (default) or `json` (the endpoint's answer, as documented in the README).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    output: String,
    /// GET, POST, …
    method: String,
    /// The path and query, e.g. /api/v1?x=1.
    path: String,
}

/// Asks and prints.
pub(crate) fn run(args: ExplainArgs) -> anyhow::Result<()> {
    let headers = args
        .headers
        .iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("-H '{h}': expected 'Name: value'"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let asked = Asked {
        listener_arn: args.listener_arn,
        node: args.node,
        source: args.source,
        method: args.method,
        path: args.path,
        headers,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, answer) = runtime.block_on(ask(&args.api_url, &asked))?;
    if !status.is_success() {
        bail!(
            "{} ({}): {}",
            answer["code"].as_str().unwrap_or("error"),
            status.as_u16(),
            answer["message"].as_str().unwrap_or_default()
        );
    }
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", text(&answer));
    }
    Ok(())
}

async fn ask(api_url: &str, asked: &Asked) -> anyhow::Result<(StatusCode, Value)> {
    let url: hyper::Uri = format!("{}{PATH}", api_url.trim_end_matches('/'))
        .parse()
        .with_context(|| format!("--api-url {api_url}"))?;
    let authority = url
        .authority()
        .with_context(|| format!("--api-url {api_url}: no host"))?
        .to_string();
    let body = serde_json::to_vec(asked)?;
    let mut request = hyper::Request::post(url.clone())
        .header("host", &authority)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.clone())))?;
    let key = (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    );
    if let (Ok(id), Ok(secret)) = key {
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".to_owned());
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        elb_api::sign(
            (&id, &secret),
            (&region, "elasticloadbalancing"),
            ("POST", PATH),
            request.headers_mut(),
            &body,
            now,
        )
        .map_err(|e| anyhow::anyhow!("signing: {}", e.message))?;
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = client
        .request(request)
        .await
        .with_context(|| format!("asking {url}"))?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let answer = serde_json::from_slice(&bytes)
        .with_context(|| format!("{url} answered {status} without JSON"))?;
    Ok((status, answer))
}

/// The answer as plain text.
fn text(answer: &Value) -> String {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "listener {}\nnode {}",
        s(&answer["listener_arn"]),
        s(&answer["node"])
    );
    if answer["admitted"] == false {
        let _ = writeln!(
            out,
            "not admitted: the load balancer's security groups refuse the source's connection"
        );
        return out;
    }
    if let Some(why) = answer["refused"].as_str() {
        let _ = writeln!(out, "refused before any rule: {why}");
        return out;
    }
    if answer["callback"] == true {
        let _ = writeln!(
            out,
            "the identity provider's callback: the load balancer finishes a login with it, \
             and no rule applies"
        );
        return out;
    }
    for rule in answer["rules"].as_array().into_iter().flatten() {
        let verdict = if rule["matched"] == true {
            "matches"
        } else {
            "does not match"
        };
        let _ = writeln!(out, "rule {}: {verdict}", rule["priority"]);
        for condition in rule["conditions"].as_array().into_iter().flatten() {
            let verdict = if condition["matched"] == true {
                "yes"
            } else {
                "no"
            };
            let _ = writeln!(
                out,
                "  {} {verdict} (the request has {})",
                s(&condition["condition"]),
                s(&condition["saw"])
            );
        }
    }
    let rule = match answer["matched_rule"].as_u64() {
        Some(priority) => format!("rule {priority}"),
        None => "the default rule".to_owned(),
    };
    let action = &answer["action"];
    if let Some(guard) = answer["guard"].as_str() {
        let _ = writeln!(out, "first, {guard}");
    }
    let _ = writeln!(out, "decided by {rule}: {}", s(&action["type"]));
    match action["type"].as_str() {
        Some("redirect") => {
            let _ = writeln!(out, "  {} to {}", action["status"], s(&action["location"]));
        }
        Some("fixed-response") => {
            let _ = writeln!(out, "  answered {}", action["status"]);
        }
        _ => {
            if let Some(seconds) = action["group_stickiness_seconds"].as_u64() {
                let _ = writeln!(out, "  target group stickiness: {seconds} s");
            }
            if let Some(group) = action["sticky_group"].as_str() {
                let _ = writeln!(
                    out,
                    "  its AWSALBTG cookie names {group}: that group takes it"
                );
            }
            if action["no_weight"] == true {
                let _ = writeln!(out, "  every group weighs 0: answered 503");
            }
            for group in action["groups"].as_array().into_iter().flatten() {
                group_text(&mut out, group);
            }
        }
    }
    out
}

fn group_text(out: &mut String, group: &Value) {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let list = |v: &Value| {
        let items: Vec<String> = v.as_array().into_iter().flatten().map(s).collect();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let _ = writeln!(
        out,
        "  target group {} (weight {}, {:.0}% of requests): {}, stickiness {}",
        s(&group["target_group_arn"]),
        group["weight"],
        group["share_percent"].as_f64().unwrap_or(0.0),
        s(&group["algorithm"]),
        s(&group["stickiness"])
    );
    let fail_open = if group["fail_open"] == true {
        " (fail-open: too few are healthy, every target in reach takes traffic)"
    } else {
        ""
    };
    let _ = writeln!(out, "    eligible: {}{fail_open}", list(&group["eligible"]));
    for passed in group["passed_over"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "    passed over: {} in {}: {}",
            s(&passed["target"]),
            s(&passed["zone"]),
            s(&passed["why"])
        );
    }
    match group["pick"].as_str() {
        Some(pick) => {
            let _ = writeln!(out, "    would pick {pick}: {}", s(&group["why"]));
        }
        None => {
            let _ = writeln!(out, "    {}", s(&group["why"]));
        }
    }
}
