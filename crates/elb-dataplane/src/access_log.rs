//! ALB access logs: one entry per request in AWS's format, written by the request path into
//! its node's [`AccessLog`] and taken from there by the control path, which spools and
//! delivers them (`elb-logs`). A request gathers what its entry needs (`Facts`) only when
//! its load balancer logs; otherwise it allocates nothing for logs (a TLS connection keeps
//! what it negotiated, once, in its `Session`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use elb_logs::log_time;

use crate::l7::outcome::{Action, Outcome};

/// Entries waiting for the control path beyond this are dropped (and counted): a stalled
/// spool must not grow the data plane's memory without bound.
const MAX_WAITING: usize = 64 << 20;

/// One node's entries of one load balancer, since the control path last took them.
pub struct AccessLog {
    /// `app/NAME/ID`, as entries name the load balancer.
    elb: String,
    entries: Mutex<Vec<u8>>,
    dropped: AtomicU64,
}

impl AccessLog {
    pub(crate) fn new(elb: String) -> Self {
        Self {
            elb,
            entries: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// The entries written since the last take, a line each. The log keeps a buffer as
    /// large, so that a steady load does not grow one anew every time.
    pub fn take(&self) -> Vec<u8> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let room = Vec::with_capacity(entries.len());
        std::mem::replace(&mut *entries, room)
    }

    /// Entries dropped because too many were waiting, since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// Adds the entry of a request that ended now. The line is made before the lock is
    /// taken, in a buffer each thread keeps.
    pub(crate) fn write(&self, session: &Session, outcome: &Outcome, facts: &Facts) {
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            write_entry(line, &self.elb, session, outcome, facts, SystemTime::now());
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.len() + line.len() > MAX_WAITING {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                entries.extend_from_slice(line);
            }
        });
    }
}

/// The logs the current routing table writes to, by load balancer ARN and node address:
/// where the control path takes entries from.
#[derive(Default)]
pub struct AccessLogs(Mutex<Vec<(String, IpAddr, Arc<AccessLog>)>>);

impl AccessLogs {
    pub(crate) fn replace(&self, logs: Vec<(String, IpAddr, Arc<AccessLog>)>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = logs;
    }

    pub fn current(&self) -> Vec<(String, IpAddr, Arc<AccessLog>)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What a client connection tells each of its entries.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) peer: SocketAddr,
    pub(crate) tls: Option<Arc<Tls>>,
    /// `conn_trace_id`: `TID_` and this in hex.
    pub(crate) id: u128,
}

/// What a client's TLS connection negotiated.
#[derive(Debug)]
pub(crate) struct Tls {
    /// OpenSSL's name of the suite, as ELB logs it.
    pub(crate) cipher: &'static str,
    /// `TLSv1.2` or `TLSv1.3`.
    pub(crate) protocol: &'static str,
    /// The server name the client asked for.
    pub(crate) domain: Option<String>,
}

impl Session {
    pub(crate) fn plain(peer: SocketAddr) -> Self {
        Self {
            peer,
            tls: None,
            id: fastrand::u128(..),
        }
    }

    pub(crate) fn tls(peer: SocketAddr, connection: &rustls::ServerConnection) -> Self {
        let protocol = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            _ => "TLSv1.2",
        };
        let cipher = connection
            .negotiated_cipher_suite()
            .and_then(|s| elb_tls::policy::openssl_name(s.suite()))
            .unwrap_or("-");
        let tls = Tls {
            cipher,
            protocol,
            domain: connection.server_name().map(str::to_owned),
        };
        Self {
            tls: Some(Arc::new(tls)),
            ..Self::plain(peer)
        }
    }
}

/// What a request's entry needs beyond its outcome, gathered as it is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    /// When its head was read (`request_creation_time`).
    pub(crate) received: SystemTime,
    pub(crate) started: Instant,
    /// From `started` to the request leaving for its target.
    pub(crate) dispatched: Option<Duration>,
    /// `http`, `https`, `h2`, `grpcs`, `ws` or `wss`.
    pub(crate) kind: &'static str,
    /// `METHOD SCHEME://HOST:PORT/PATH?QUERY HTTP/VERSION`.
    pub(crate) request: String,
    pub(crate) user_agent: Option<String>,
    /// The `X-Amzn-Trace-Id` sent to the target.
    pub(crate) trace_id: Option<String>,
    pub(crate) target_group: Option<String>,
    /// Where a redirect sent the client.
    pub(crate) redirect_url: Option<String>,
    /// Desync mitigation's class and reason, for requests it did not find compliant.
    pub(crate) classification: Option<(&'static str, &'static str)>,
}

/// What [`Facts::new`] reads from a request's head.
pub(crate) struct LoggedHead<'a> {
    pub(crate) method: &'a str,
    /// The Host, without its port.
    pub(crate) host: &'a str,
    /// The listener's scheme and port.
    pub(crate) scheme: &'static str,
    pub(crate) port: u16,
    /// The request target as sent (origin form).
    pub(crate) target: &'a str,
    pub(crate) version: http::Version,
    pub(crate) user_agent: Option<&'a str>,
    /// An upgrade to WebSocket, or a gRPC request.
    pub(crate) websocket: bool,
    pub(crate) grpc: bool,
}

impl Facts {
    pub(crate) fn new(head: &LoggedHead<'_>, tls: bool) -> Self {
        let kind = match (head.websocket, head.grpc, head.version, tls) {
            (true, _, _, false) => "ws",
            (true, _, _, true) => "wss",
            (false, true, _, _) => "grpcs",
            (false, false, http::Version::HTTP_2, _) => "h2",
            (false, false, _, false) => "http",
            (false, false, _, true) => "https",
        };
        let version = match head.version {
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        };
        let mut request = String::with_capacity(64);
        let _ = write!(
            request,
            "{} {}://{}:{}{} {version}",
            head.method, head.scheme, head.host, head.port, head.target
        );
        Self {
            received: SystemTime::now(),
            started: Instant::now(),
            dispatched: None,
            kind,
            request,
            user_agent: head.user_agent.map(str::to_owned),
            trace_id: None,
            target_group: None,
            redirect_url: None,
            classification: None,
        }
    }
}

/// Writes the entry of a request that ended at `now`: AWS's fields in AWS's order, up to
/// `conn_trace_id`, and a newline. `chosen_cert_arn` is always `-`: elbd does not keep
/// which certificate a handshake chose. `response_processing_time` is 0 for requests a
/// target answered: elbd passes the target's head on as it reads it.
pub(crate) fn write_entry(
    out: &mut Vec<u8>,
    elb: &str,
    session: &Session,
    outcome: &Outcome,
    facts: &Facts,
    now: SystemTime,
) {
    let answered = outcome.target_status.is_some();
    let seconds = |d: Option<Duration>| match d {
        Some(d) => format!("{:.3}", d.as_secs_f64()),
        None => "-1".to_owned(),
    };
    let target = outcome.target.map(|t| t.to_string());
    let target_status = outcome.target_status.map(|s| s.to_string());
    let tls = session.tls.as_deref();
    let (rule, action) = match outcome.action {
        Action::Forward => (outcome.rule.unwrap_or(0).to_string(), "forward"),
        Action::Redirect => (outcome.rule.unwrap_or(0).to_string(), "redirect"),
        Action::FixedResponse => (outcome.rule.unwrap_or(0).to_string(), "fixed-response"),
        Action::Refused => ("-".to_owned(), "-"),
    };
    let dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let _ = write!(
        out,
        "{kind} {time} {elb} {client} {target} {request_time} {target_time} {response_time} \
         {elb_status} {target_status} {received} {sent} ",
        kind = facts.kind,
        time = log_time(now, 6),
        client = session.peer,
        target = dash(target.as_deref()),
        // A request whose target could not be reached was never dispatched.
        request_time = seconds(
            facts
                .dispatched
                .filter(|_| !outcome.target_connection_error)
        ),
        target_time = seconds(outcome.target_time.filter(|_| answered)),
        response_time = seconds(answered.then_some(Duration::ZERO)),
        elb_status = outcome.elb_status,
        target_status = dash(target_status.as_deref()),
        received = outcome.received_bytes,
        sent = outcome.sent_bytes,
    );
    quoted(out, &facts.request);
    quoted(out, facts.user_agent.as_deref().unwrap_or("-"));
    let _ = write!(
        out,
        "{} {} {} ",
        tls.map_or("-", |t| t.cipher),
        tls.map_or("-", |t| t.protocol),
        facts.target_group.as_deref().unwrap_or("-"),
    );
    quoted(out, facts.trace_id.as_deref().unwrap_or("-"));
    quoted(out, tls.and_then(|t| t.domain.as_deref()).unwrap_or("-"));
    quoted(out, "-");
    let _ = write!(out, "{rule} {} ", log_time(facts.received, 3));
    quoted(out, action);
    quoted(out, facts.redirect_url.as_deref().unwrap_or("-"));
    quoted(out, "-");
    quoted(out, target.as_deref().unwrap_or("-"));
    quoted(out, target_status.as_deref().unwrap_or("-"));
    let (class, reason) = facts.classification.unwrap_or(("-", "-"));
    quoted(out, class);
    quoted(out, reason);
    let _ = writeln!(out, "TID_{:032x}", session.id);
}

/// A field in double quotes and a space: quotes and backslashes inside are escaped with a
/// backslash and control bytes written as `\xHH`, so that a shell-style split keeps it whole.
fn quoted(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    for &b in value.as_bytes() {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0..0x20 | 0x7f => {
                let _ = write!(out, "\\x{b:02x}");
            }
            _ => out.push(b),
        }
    }
    out.extend_from_slice(b"\" ");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        let head = LoggedHead {
            method: "GET",
            host: "www.example.com",
            scheme: "http",
            port: 80,
            target: "/a?b=1",
            version: http::Version::HTTP_11,
            user_agent: Some("curl/7.46.0 \"quoted\""),
            websocket: false,
            grpc: false,
        };
        let mut facts = Facts::new(&head, false);
        facts.received = SystemTime::UNIX_EPOCH + Duration::from_micros(1_530_570_168_364_123);
        facts
    }

    fn session() -> Session {
        Session {
            peer: "192.168.131.39:2817".parse().unwrap(),
            tls: None,
            id: 0xabc,
        }
    }

    fn fields(line: &[u8]) -> Vec<String> {
        // A shell-style split: quoted fields stay whole, backslash escapes inside them.
        let line = std::str::from_utf8(line).unwrap().trim_end_matches('\n');
        let (mut fields, mut field, mut quoted, mut escaped) =
            (Vec::new(), String::new(), false, false);
        for c in line.chars() {
            match c {
                _ if escaped => {
                    field.push(c);
                    escaped = false;
                }
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                ' ' if !quoted => fields.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        fields.push(field);
        fields
    }

    #[test]
    fn a_forwarded_request_has_aws_s_fields() {
        let mut facts = facts();
        facts.dispatched = Some(Duration::from_micros(300));
        facts.trace_id = Some("Root=1-58337262-36d228ad5d99923122bbe354".into());
        facts.target_group = Some("arn:aws:elasticloadbalancing:tg".into());
        let mut outcome = Outcome::refused();
        outcome.action = Action::Forward;
        outcome.elb_status = 200;
        outcome.target = Some("10.0.0.1:80".parse().unwrap());
        outcome.target_status = Some(200);
        outcome.target_time = Some(Duration::from_millis(1));
        outcome.received_bytes = 34;
        outcome.sent_bytes = 366;
        let now = SystemTime::UNIX_EPOCH + Duration::from_micros(1_530_570_180_186_641);
        let mut line = Vec::new();
        write_entry(&mut line, "app/lb/50dc", &session(), &outcome, &facts, now);
        let fields = fields(&line);
        assert_eq!(fields.len(), 30, "{fields:?}");
        assert_eq!(
            fields[..12],
            [
                "http",
                "2018-07-02T22:23:00.186641Z",
                "app/lb/50dc",
                "192.168.131.39:2817",
                "10.0.0.1:80",
                "0.000",
                "0.001",
                "0.000",
                "200",
                "200",
                "34",
                "366"
            ]
        );
        assert_eq!(fields[12], "GET http://www.example.com:80/a?b=1 HTTP/1.1");
        assert_eq!(fields[13], "curl/7.46.0 \"quoted\"");
        assert_eq!(
            fields[14..17],
            ["-", "-", "arn:aws:elasticloadbalancing:tg"]
        );
        assert_eq!(fields[17], "Root=1-58337262-36d228ad5d99923122bbe354");
        assert_eq!(
            fields[20..],
            [
                "0",
                "2018-07-02T22:22:48.364000Z",
                "forward",
                "-",
                "-",
                "10.0.0.1:80",
                "200",
                "-",
                "-",
                "TID_00000000000000000000000000000abc"
            ]
        );
    }

    #[test]
    fn a_fixed_response_has_no_target_and_no_times() {
        let mut outcome = Outcome::refused();
        outcome.action = Action::FixedResponse;
        outcome.rule = Some(7);
        outcome.elb_status = 404;
        let mut line = Vec::new();
        let now = SystemTime::now();
        write_entry(&mut line, "app/lb/1", &session(), &outcome, &facts(), now);
        let fields = fields(&line);
        assert_eq!(fields[4..10], ["-", "-1", "-1", "-1", "404", "-"]);
        assert_eq!(fields[16], "-");
        assert_eq!(fields[20], "7");
        assert_eq!(fields[22], "fixed-response");
        assert_eq!(fields[25..27], ["-", "-"]);
    }

    #[test]
    fn control_bytes_are_escaped() {
        let mut out = Vec::new();
        quoted(&mut out, "a\tb\\c");
        assert_eq!(out, b"\"a\\x09b\\\\c\" ");
    }
}
