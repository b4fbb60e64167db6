//! What the general path sets on every request it forwards, its values written once as bytes:
//! Host, X-Forwarded-For (when the client is appended), -Proto, -Port and X-Amzn-Trace-Id.
//! The exchange writes them as header lines after the client's own, as the relay does, and
//! skips the client's lines of those names: no header value is made and no map entry is
//! touched. hyper's clients and Lambda find them in the request's map, the values sharing
//! one buffer.

use std::net::SocketAddr;
use std::ops::Range;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::headers::{
    X_AMZN_TRACE_ID, X_FORWARDED_FOR, X_FORWARDED_PORT, X_FORWARDED_PROTO, push_client,
    push_decimal, push_header, target_host, write_trace_id,
};
use super::rescue::ProxyError;
use crate::table::{HttpSettings, XffMode};

/// The request as its listener saw it: what the dressing says of it.
pub(super) struct Arrival {
    pub peer: SocketAddr,
    pub scheme: &'static str,
    pub port: u16,
}

/// Nothing is set until it is written or inserted.
#[must_use]
pub(super) struct Dressing {
    /// The values, back to back.
    values: Vec<u8>,
    host: Range<usize>,
    /// None when the mode keeps the client's own header or removes it.
    forwarded_for: Option<Range<usize>>,
    /// The mode removes the client's X-Forwarded-For and sets none.
    removes_forwarded_for: bool,
    proto: Range<usize>,
    port: Range<usize>,
    trace: Range<usize>,
}

impl Dressing {
    /// The values for a request with these headers (before any of them is set), asking for
    /// `host`; `trace` is the epoch second and the random part of a new trace id.
    pub(super) fn new(
        headers: &HeaderMap,
        host: &str,
        http: &HttpSettings,
        arrival: &Arrival,
        trace: (u64, u128),
    ) -> Result<Self, ProxyError> {
        let mut values = Vec::with_capacity(host.len() + 128);
        let (name, appended_port) = target_host(host, arrival.port, http.preserve_host);
        if !name.bytes().all(valid_value_byte) {
            return Err(ProxyError::BadRequest("invalid Host header"));
        }
        let host_at = field(&mut values, |out| {
            out.extend_from_slice(name.as_bytes());
            if let Some(port) = appended_port {
                out.push(b':');
                push_decimal(out, port);
            }
        });
        let forwarded_for_at = match http.xff {
            XffMode::Append => {
                let start = values.len();
                for previous in headers.get_all(&X_FORWARDED_FOR) {
                    let previous = previous
                        .to_str()
                        .map_err(|_| ProxyError::BadRequest("invalid X-Forwarded-For header"))?;
                    values.extend_from_slice(previous.as_bytes());
                    values.extend_from_slice(b", ");
                }
                push_client(&mut values, arrival.peer, http.xff_client_port);
                Some(start..values.len())
            }
            XffMode::Preserve | XffMode::Remove => None,
        };
        let proto_at = field(&mut values, |out| {
            out.extend_from_slice(arrival.scheme.as_bytes());
        });
        let port_at = field(&mut values, |out| push_decimal(out, arrival.port));
        let previous = headers.get(&X_AMZN_TRACE_ID).and_then(|v| v.to_str().ok());
        let (epoch_secs, random) = trace;
        let trace_at = field(&mut values, |out| {
            write_trace_id(out, previous, epoch_secs, random);
        });
        Ok(Self {
            values,
            host: host_at,
            forwarded_for: forwarded_for_at,
            removes_forwarded_for: http.xff == XffMode::Remove,
            proto: proto_at,
            port: port_at,
            trace: trace_at,
        })
    }

    pub(super) fn trace_id(&self) -> &[u8] {
        &self.values[self.trace.clone()]
    }

    /// Whether the client's own header of this name goes: one is set here instead, or
    /// (X-Forwarded-For in the remove mode) none.
    pub(super) fn replaces(&self, name: &HeaderName) -> bool {
        self.fields().any(|(set, _)| set == name)
            || (self.removes_forwarded_for && name == X_FORWARDED_FOR)
    }

    /// The header lines, after the client's own.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        for (name, range) in self.fields() {
            push_header(out, name.as_str().as_bytes(), &self.values[range]);
        }
    }

    /// Sets the headers in `headers`, in place of the client's.
    pub(super) fn insert_into(self, headers: &mut HeaderMap) -> Result<(), ProxyError> {
        if self.removes_forwarded_for {
            headers.remove(&X_FORWARDED_FOR);
        }
        let fields = self.fields();
        let values = Bytes::from(self.values);
        for (name, range) in fields {
            let value = HeaderValue::from_maybe_shared(values.slice(range))
                .map_err(|_| ProxyError::BadRequest("invalid header value"))?;
            headers.insert(name, value);
        }
        Ok(())
    }

    /// Each header set here and where its value is, in the order they are written.
    fn fields(&self) -> impl Iterator<Item = (&'static HeaderName, Range<usize>)> + use<> {
        let forwarded_for = self.forwarded_for.clone().map(|r| (&X_FORWARDED_FOR, r));
        [
            Some((&HOST, self.host.clone())),
            forwarded_for,
            Some((&X_FORWARDED_PROTO, self.proto.clone())),
            Some((&X_FORWARDED_PORT, self.port.clone())),
            Some((&X_AMZN_TRACE_ID, self.trace.clone())),
        ]
        .into_iter()
        .flatten()
    }
}

static HOST: HeaderName = header::HOST;

/// Writes one value with `write` and says where it is.
fn field(values: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> Range<usize> {
    let start = values.len();
    write(values);
    start..values.len()
}

/// What a header value may hold (as `HeaderValue` checks it): no control byte but tab.
fn valid_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::l7::desync;

    pub(in crate::l7) fn settings(
        xff: XffMode,
        xff_client_port: bool,
        preserve_host: bool,
    ) -> HttpSettings {
        HttpSettings {
            idle_timeout: Duration::from_secs(60),
            client_keep_alive: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(60),
            xff,
            xff_client_port,
            preserve_host,
            http2: true,
            drop_invalid_headers: false,
            desync: desync::Mode::Defensive,
        }
    }

    pub(in crate::l7) fn arrival(port: u16) -> Arrival {
        Arrival {
            peer: "127.0.9.9:4567".parse().unwrap(),
            scheme: "http",
            port,
        }
    }

    /// The lines the exchange writes, checked against what hyper's clients get in the map.
    fn dressed(headers: &HeaderMap, host: &str, http: &HttpSettings, port: u16) -> String {
        let new = || Dressing::new(headers, host, http, &arrival(port), (0x5f5e_1000, 1));
        let mut lines = Vec::new();
        new().unwrap().write(&mut lines);
        let lines = String::from_utf8(lines).unwrap();
        let mut map = headers.clone();
        new().unwrap().insert_into(&mut map).unwrap();
        for line in lines.lines() {
            let (name, value) = line.split_once(": ").unwrap();
            let in_map: Vec<_> = map.get_all(name).iter().collect();
            assert_eq!(in_map, [value]);
        }
        lines
    }

    fn host(h: &str, port: u16, preserve: bool) -> String {
        let http = settings(XffMode::Append, false, preserve);
        let lines = dressed(&HeaderMap::new(), h, &http, port);
        let line = lines.lines().next().unwrap();
        line.strip_prefix("host: ").unwrap().to_owned()
    }

    #[test]
    fn host_is_rewritten_as_aws_does() {
        assert_eq!(host("example.com", 8080, false), "example.com:8080");
        assert_eq!(host("example.com:8080", 8080, false), "example.com:8080");
        assert_eq!(host("example.com:81", 80, false), "example.com");
        assert_eq!(host("[::1]:443", 443, false), "[::1]");
        assert_eq!(host("[::1]", 8080, false), "[::1]:8080");
        assert_eq!(host("example.com:81", 80, true), "example.com:81");
        let http = settings(XffMode::Append, false, true);
        let refused = Dressing::new(&HeaderMap::new(), "a\r\nb", &http, &arrival(80), (0, 0));
        assert!(matches!(refused, Err(ProxyError::BadRequest(_))));
        // The exchange writes what `new` let through: it must be what a HeaderValue takes.
        for b in 0..=u8::MAX {
            assert_eq!(
                valid_value_byte(b),
                HeaderValue::from_bytes(&[b]).is_ok(),
                "{b}"
            );
        }
    }

    #[test]
    fn x_forwarded_for_modes() {
        let run = |xff, port, existing: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in existing {
                headers.append(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
            }
            let lines = dressed(&headers, "h", &settings(xff, port, false), 8080);
            assert!(lines.contains("x-forwarded-proto: http\r\nx-forwarded-port: 8080\r\n"));
            let dressing = Dressing::new(
                &headers,
                "h",
                &settings(xff, port, false),
                &arrival(8080),
                (0, 0),
            );
            assert_eq!(
                dressing.unwrap().replaces(&X_FORWARDED_FOR),
                xff != XffMode::Preserve
            );
            lines
                .lines()
                .find_map(|l| l.strip_prefix("x-forwarded-for: "))
                .map(str::to_owned)
        };
        assert_eq!(
            run(XffMode::Append, false, &[]).as_deref(),
            Some("127.0.9.9")
        );
        assert_eq!(
            run(XffMode::Append, true, &["10.0.0.1", "10.0.0.2"]).as_deref(),
            Some("10.0.0.1, 10.0.0.2, 127.0.9.9:4567")
        );
        // Kept as the client sent it, or removed by the caller: not written here.
        assert_eq!(run(XffMode::Preserve, false, &["1.2.3.4"]), None);
        assert_eq!(run(XffMode::Remove, false, &["1.2.3.4"]), None);
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        let http = settings(XffMode::Remove, false, false);
        let dressing = Dressing::new(&headers, "h", &http, &arrival(80), (0, 0)).unwrap();
        dressing.insert_into(&mut headers).unwrap();
        assert!(!headers.contains_key(&X_FORWARDED_FOR));
    }

    #[test]
    fn the_trace_id_is_written_once_for_both_roads() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_AMZN_TRACE_ID, HeaderValue::from_static("Root=1-1-2"));
        let http = settings(XffMode::Append, false, false);
        let dressing = Dressing::new(&headers, "h", &http, &arrival(80), (0x5f5e_1000, 1)).unwrap();
        let id = b"Self=1-5f5e1000-000000000000000000000001;Root=1-1-2";
        assert_eq!(dressing.trace_id(), id);
        assert!(dressing.replaces(&X_AMZN_TRACE_ID) && dressing.replaces(&HOST));
        assert!(!dressing.replaces(&header::COOKIE));
        dressing.insert_into(&mut headers).unwrap();
        assert_eq!(headers[&X_AMZN_TRACE_ID].as_bytes(), id);
    }
}
