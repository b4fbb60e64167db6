//! The responses of redirect and fixed-response actions, which the load balancer makes
//! itself.

use bytes::Bytes;
use elb_model::{FixedResponse, Redirect};
use http::{HeaderValue, Response, StatusCode, header};

use super::rescue::{Body, ProxyError, error_page, own_response};

/// The parts of the request a redirect may reuse.
pub(super) struct Original<'a> {
    /// `http` or `https`, as the listener's protocol.
    pub(super) protocol: &'a str,
    /// Without its port.
    pub(super) host: &'a str,
    /// The listener's port.
    pub(super) port: u16,
    pub(super) path: &'a str,
    pub(super) query: &'a str,
}

/// Where a redirect sends the client. Each component not changed keeps the request's; the
/// placeholders are `#{protocol}`, `#{host}`, `#{port}`, `#{path}` (without its leading `/`)
/// and `#{query}`, each allowed where AWS allows it.
pub(super) fn location(r: &Redirect, o: &Original<'_>) -> String {
    let original_port = o.port.to_string();
    let original_path = o.path.strip_prefix('/').unwrap_or(o.path);
    let protocol = if r.protocol == "#{protocol}" {
        o.protocol.to_owned()
    } else {
        r.protocol.to_lowercase()
    };
    let host = r.host.replace("#{host}", o.host);
    let port = r.port.replace("#{port}", &original_port);
    let path = r
        .path
        .replace("#{host}", o.host)
        .replace("#{port}", &original_port)
        .replace("#{path}", original_path);
    let query = r
        .query
        .replace("#{protocol}", o.protocol)
        .replace("#{host}", o.host)
        .replace("#{port}", &original_port)
        .replace("#{path}", original_path)
        .replace("#{query}", o.query);
    let default_port = matches!(
        (protocol.as_str(), port.as_str()),
        ("http", "80") | ("https", "443")
    );
    let mut url = format!("{protocol}://{host}");
    if !default_port {
        url.push(':');
        url.push_str(&port);
    }
    url.push_str(&path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    url
}

pub(super) fn redirect(r: &Redirect, o: &Original<'_>) -> Result<Response<Body>, ProxyError> {
    let location = HeaderValue::try_from(location(r, o))
        .map_err(|_| ProxyError::BadRequest("redirect location"))?;
    let status = StatusCode::from_u16(r.status_code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    let mut response = error_page(status);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

pub(super) fn fixed(f: &FixedResponse) -> Response<Body> {
    let status = StatusCode::from_u16(f.status_code).unwrap_or(StatusCode::OK);
    let body = Bytes::from(f.body.clone().unwrap_or_default());
    let content_type = f
        .content_type
        .as_deref()
        .unwrap_or("text/plain; charset=utf-8");
    own_response(
        status,
        body,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(protocol: &str, port: &str, host: &str, path: &str, query: &str) -> Redirect {
        Redirect {
            protocol: protocol.into(),
            port: port.into(),
            host: host.into(),
            path: path.into(),
            query: query.into(),
            status_code: 301,
        }
    }

    const REQUEST: Original<'static> = Original {
        protocol: "http",
        host: "example.com",
        port: 8080,
        path: "/a/b",
        query: "x=1",
    };

    #[test]
    fn placeholders_and_default_ports() {
        let https = redirect("HTTPS", "443", "#{host}", "/#{path}", "#{query}");
        assert_eq!(location(&https, &REQUEST), "https://example.com/a/b?x=1");
        let moved = redirect(
            "#{protocol}",
            "#{port}",
            "new.example.com",
            "/v2/#{path}",
            "",
        );
        assert_eq!(
            location(&moved, &REQUEST),
            "http://new.example.com:8080/v2/a/b"
        );
        let mixed = redirect(
            "HTTP",
            "80",
            "#{host}",
            "/#{host}/#{port}",
            "from=#{path}&#{query}",
        );
        assert_eq!(
            location(&mixed, &REQUEST),
            "http://example.com/example.com/8080?from=a/b&x=1"
        );
    }
}
