//! ALB's mapping between HTTP and a function's JSON: a request becomes the event a function
//! gets, the function's answer becomes the response. Pure.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

/// The most a request body (and a function's answer) may hold, as ALB allows: 1 MB.
pub const MAX_BODY: usize = 1024 * 1024;

/// A request as the load balancer forwards it, its headers already rewritten (X-Forwarded-*,
/// X-Amzn-Trace-Id).
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// As sent: ALB passes query strings undecoded.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The event for `request` to a function of `target_group_arn`'s group. With
/// `lambda.multi_value_headers.enabled`, headers and query parameters carry every value;
/// without, the last one.
pub fn event(target_group_arn: &str, request: &Request<'_>, multi_value: bool) -> Vec<u8> {
    let mut event = Map::new();
    event.insert(
        "requestContext".into(),
        json!({ "elb": { "targetGroupArn": target_group_arn } }),
    );
    event.insert("httpMethod".into(), request.method.into());
    event.insert("path".into(), request.path.into());
    let pairs = request
        .query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")));
    let headers = request.headers.iter().map(|(name, value)| {
        (
            name.as_str(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        )
    });
    if multi_value {
        event.insert(
            "multiValueQueryStringParameters".into(),
            all_values(pairs.map(|(k, v)| (k, v.to_owned()))),
        );
        event.insert("multiValueHeaders".into(), all_values(headers));
    } else {
        event.insert(
            "queryStringParameters".into(),
            last_values(pairs.map(|(k, v)| (k, v.to_owned()))),
        );
        event.insert("headers".into(), last_values(headers));
    }
    let text = request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(is_text);
    let (body, base64) = match std::str::from_utf8(request.body) {
        Ok(body) if text || body.is_empty() => (body.to_owned(), false),
        _ => (STANDARD.encode(request.body), true),
    };
    event.insert("body".into(), body.into());
    event.insert("isBase64Encoded".into(), base64.into());
    serde_json::to_vec(&Value::Object(event)).expect("a JSON value serializes")
}

/// Content types whose bodies go to the function as they are: text/*, JSON, JavaScript and
/// XML. Every other body is base64-encoded.
fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/json" | "application/javascript" | "application/xml"
        )
}

fn last_values<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> Value {
    let mut map = Map::new();
    for (key, value) in pairs {
        map.insert(key.to_owned(), value.into());
    }
    Value::Object(map)
}

fn all_values<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> Value {
    let mut map = Map::new();
    for (key, value) in pairs {
        let values = map
            .entry(key.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = values {
            values.push(value.into());
        }
    }
    Value::Object(map)
}

/// What a function answered, as the client gets it.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    /// The reason phrase of `statusDescription` ("201 Created": "Created"), when it starts
    /// with the status code as AWS asks.
    pub reason: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a function's answer is not a response (`LambdaInvalidResponse`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the function's response {0}")]
pub struct InvalidResponse(pub &'static str);

/// The response a function's `payload` stands for. With multi-value headers on, its headers
/// are read from `multiValueHeaders`, else from `headers`, as ALB reads them. Hop-by-hop
/// headers and Content-Length are dropped: the load balancer frames the body itself.
pub fn response(payload: &[u8], multi_value: bool) -> Result<Response, InvalidResponse> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|_| InvalidResponse("is not JSON"))?;
    let Value::Object(answer) = value else {
        return Err(InvalidResponse("is not a JSON object"));
    };
    let status = answer
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        // Interim (1xx) answers cannot end an exchange.
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(InvalidResponse("has no statusCode from 200 to 599"))?;
    let reason = answer
        .get("statusDescription")
        .and_then(Value::as_str)
        .and_then(|d| d.strip_prefix(status.as_str())?.strip_prefix(' '))
        .filter(|phrase| !phrase.is_empty())
        .map(str::to_owned);
    let mut headers = HeaderMap::new();
    let field = if multi_value {
        "multiValueHeaders"
    } else {
        "headers"
    };
    match answer.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, values) in map {
                let name = HeaderName::try_from(name.as_str())
                    .map_err(|_| InvalidResponse("names an invalid header"))?;
                let values: Vec<&Value> = match values {
                    Value::Array(all) if multi_value => all.iter().collect(),
                    one if !multi_value => vec![one],
                    _ => return Err(InvalidResponse("has a header of the wrong shape")),
                };
                for value in values {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return Err(InvalidResponse("has a header value that is not text")),
                    };
                    let value = HeaderValue::try_from(text)
                        .map_err(|_| InvalidResponse("has an invalid header value"))?;
                    headers.append(&name, value);
                }
            }
        }
        Some(_) => return Err(InvalidResponse("has headers that are not an object")),
    }
    for hop in HOP_BY_HOP {
        headers.remove(hop);
    }
    let base64 = match answer.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(InvalidResponse(
                "has an isBase64Encoded that is not a boolean",
            ));
        }
    };
    let body = match answer.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if base64 => STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|_| InvalidResponse("has a body that is not base64"))?,
        Some(Value::String(text)) => Bytes::from(text.clone()),
        Some(_) => return Err(InvalidResponse("has a body that is not a string")),
    };
    Ok(Response {
        status,
        reason,
        headers,
        body,
    })
}

/// Headers a function's answer does not set for the client's connection.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::try_from(*value).unwrap(),
            );
        }
        map
    }

    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_request_becomes_albs_event_with_last_or_all_values() {
        let h = headers(&[
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        let request = Request {
            method: "POST",
            path: "/lambda/x%20y",
            query: Some("k=v1&k=v2&flag&e=%41"),
            headers: &h,
            body: br#"{"n":1}"#,
        };
        let single = parsed(&event("arn:tg", &request, false));
        assert_eq!(single["requestContext"]["elb"]["targetGroupArn"], "arn:tg");
        assert_eq!(single["httpMethod"], "POST");
        assert_eq!(single["path"], "/lambda/x%20y");
        assert_eq!(
            single["queryStringParameters"],
            json!({"k": "v2", "flag": "", "e": "%41"})
        );
        assert_eq!(single["headers"]["cookie"], "b=2");
        assert_eq!(single["body"], r#"{"n":1}"#);
        assert_eq!(single["isBase64Encoded"], false);
        assert!(single.get("multiValueHeaders").is_none());
        let multi = parsed(&event("arn:tg", &request, true));
        assert_eq!(
            multi["multiValueQueryStringParameters"]["k"],
            json!(["v1", "v2"])
        );
        assert_eq!(multi["multiValueHeaders"]["cookie"], json!(["a=1", "b=2"]));
        assert!(multi.get("headers").is_none());
    }

    #[test]
    fn bodies_other_than_text_json_javascript_and_xml_are_base64() {
        let binary = headers(&[("content-type", "application/octet-stream")]);
        let text = headers(&[("content-type", "Text/Plain")]);
        let none = HeaderMap::new();
        let request = |headers, body| Request {
            method: "PUT",
            path: "/",
            query: None,
            headers,
            body,
        };
        let e = parsed(&event("a", &request(&binary, b"\x00\x01"), false));
        assert_eq!(
            (e["body"].as_str(), e["isBase64Encoded"].as_bool()),
            (Some("AAE="), Some(true))
        );
        let e = parsed(&event("a", &request(&text, b"hi"), false));
        assert_eq!(
            (e["body"].as_str(), e["isBase64Encoded"].as_bool()),
            (Some("hi"), Some(false))
        );
        let e = parsed(&event("a", &request(&none, b"hi"), false));
        assert_eq!(e["isBase64Encoded"], true);
        let e = parsed(&event("a", &request(&none, b""), false));
        assert_eq!(
            (e["body"].as_str(), e["isBase64Encoded"].as_bool()),
            (Some(""), Some(false))
        );
        // Text that is not UTF-8 cannot be a JSON string.
        let e = parsed(&event("a", &request(&text, b"\xff"), false));
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["queryStringParameters"], json!({}));
    }

    #[test]
    fn an_answer_becomes_a_response() {
        let answer = br#"{"statusCode": 201, "statusDescription": "201 Created",
            "headers": {"X-One": "1", "Set-Cookie": "a=1", "Connection": "close", "Content-Length": "9"},
            "body": "aGVsbG8=", "isBase64Encoded": true}"#;
        let r = response(answer, false).unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.reason.as_deref(), Some("Created"));
        assert_eq!(r.headers["x-one"], "1");
        assert!(!r.headers.contains_key("connection") && !r.headers.contains_key("content-length"));
        assert_eq!(&r.body[..], b"hello");
        let multi = br#"{"statusCode": 200, "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": "x"}"#;
        let r = response(multi, true).unwrap();
        let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(&r.body[..], b"x");
        // Without multi-value headers, multiValueHeaders is not read, as on ALB.
        assert!(response(multi, false).unwrap().headers.is_empty());
        // A description that does not start with the code names no reason phrase.
        let bare = response(
            br#"{"statusCode": 204, "statusDescription": "200 OK"}"#,
            false,
        );
        let bare = bare.unwrap();
        assert!(bare.body.is_empty() && bare.reason.is_none());
    }

    #[test]
    fn malformed_answers_are_refused() {
        for bad in [
            &b"not json"[..],
            b"[1]",
            br#"{"body": "x"}"#,
            br#"{"statusCode": "200"}"#,
            br#"{"statusCode": 700}"#,
            br#"{"statusCode": 101}"#,
            br#"{"statusCode": 200, "headers": "x"}"#,
            br#"{"statusCode": 200, "headers": {"a b": "1"}}"#,
            br#"{"statusCode": 200, "headers": {"x": "a\nb"}}"#,
            br#"{"statusCode": 200, "body": "!!", "isBase64Encoded": true}"#,
            br#"{"statusCode": 200, "body": 5}"#,
        ] {
            assert!(
                response(bad, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            response(
                br#"{"statusCode": 200, "multiValueHeaders": {"x": "1"}}"#,
                true
            )
            .is_err()
        );
    }
}
