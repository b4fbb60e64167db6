//! ALB access and connection logs (one entry per request, and one per client connection)
//! and NLB TLS access logs (one per TLS connection), in AWS's formats, written by the request path into its node's [`NodeLog`] of that kind and
//! taken from there by the control path, which spools and delivers them (`elb-logs`). A
//! request gathers what its entry needs (`Facts`) only when its load balancer logs;
//! otherwise it allocates nothing for logs (a TLS connection keeps what it negotiated, once,
//! in its `Session`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use elb_logs::{LogKind, log_time};

use crate::l7::headers::{push_client, push_decimal};

use crate::l7::outcome::{Action, Outcome};

/// Entries waiting for the control path beyond this are dropped (and counted): a stalled
/// spool must not grow the data plane's memory without bound.
const MAX_WAITING: usize = 64 << 20;

/// One node's entries of one kind (access or connection) of one load balancer, since the
/// control path last took them.
pub struct NodeLog {
    /// `app/NAME/ID`, as entries name the load balancer.
    elb: String,
    entries: Mutex<Vec<u8>>,
    dropped: AtomicU64,
}

impl NodeLog {
    pub(crate) fn new(elb: String) -> Self {
        Self {
            elb,
            entries: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// The entries written since the last take, a line each, exchanged for `spare` (emptied
    /// here): handing back the buffer of the take before spares the request path a new one,
    /// and its page faults, every time.
    pub fn take(&self, mut spare: Vec<u8>) -> Vec<u8> {
        spare.clear();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *entries, spare)
    }

    /// Entries dropped because too many were waiting, since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// Adds the access log entry of a request that ended now.
    pub(crate) fn request(&self, session: &Session, outcome: &Outcome, facts: &Facts) {
        self.add(|line| write_entry(line, &self.elb, session, outcome, facts, SystemTime::now()));
    }

    /// Adds the connection log entry of a connection accepted on `port` (its handshake
    /// done, for HTTPS listeners).
    pub(crate) fn connection(&self, session: &Session, port: u16, handshake: &Handshake) {
        let now = SystemTime::now();
        self.add(|line| write_connection_entry(line, session, port, handshake, now));
    }

    /// Adds the access log entry of a network load balancer's TLS connection that ended now.
    pub(crate) fn tls_flow(&self, flow: &TlsFlow<'_>) {
        let now = SystemTime::now();
        self.add(|line| write_tls_flow_entry(line, &self.elb, flow, now));
    }

    /// Adds the line `write` makes. It is made before the lock is taken, in a buffer each
    /// thread keeps.
    fn add(&self, write: impl FnOnce(&mut Vec<u8>)) {
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            write(line);
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.len() + line.len() > MAX_WAITING {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                entries.extend_from_slice(line);
            }
        });
    }
}

/// The logs the current routing table writes to, by load balancer ARN, node address and
/// kind: where the control path takes entries from.
#[derive(Default)]
pub struct NodeLogs(Mutex<Vec<(LogStream, Arc<NodeLog>)>>);

/// (load balancer ARN, node address, kind).
pub type LogStream = (String, IpAddr, LogKind);

impl NodeLogs {
    pub(crate) fn replace(&self, logs: Vec<(LogStream, Arc<NodeLog>)>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = logs;
    }

    pub fn current(&self) -> Vec<(LogStream, Arc<NodeLog>)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What a network load balancer's TLS connection tells its access log entry.
pub(crate) struct TlsFlow<'a> {
    /// The listener's id (the last part of its ARN).
    pub(crate) listener: &'a str,
    pub(crate) client: SocketAddr,
    /// The listener's address and port.
    pub(crate) destination: SocketAddr,
    /// When the client connected.
    pub(crate) created: SystemTime,
    pub(crate) connection_time: Duration,
    pub(crate) handshake_time: Duration,
    /// Plaintext from and to the client.
    pub(crate) received: u64,
    pub(crate) sent: u64,
    pub(crate) tls: &'a Tls,
    /// ALPN with the client and with the target.
    pub(crate) alpn_front: Option<&'a [u8]>,
    pub(crate) alpn_back: Option<&'a [u8]>,
}

/// Writes an NLB TLS connection's access log entry: AWS's fields in AWS's order, `type`
/// (`tls`) to `tls_connection_creation_time`, and a newline; times to the second without a
/// zone, durations in milliseconds. `incoming_tls_alert`, `chosen_cert_arn`,
/// `chosen_cert_serial` and `alpn_client_preference_list` are `-`: elbd does not keep them
/// from the handshake.
pub(crate) fn write_tls_flow_entry(
    out: &mut Vec<u8>,
    elb: &str,
    flow: &TlsFlow<'_>,
    now: SystemTime,
) {
    let field = |out: &mut Vec<u8>, text: &[u8]| {
        out.extend_from_slice(text);
        out.push(b' ');
    };
    let second = |at| log_time(at, 6)[..19].to_owned();
    field(out, b"tls 2.0");
    field(out, second(now).as_bytes());
    field(out, elb.as_bytes());
    field(out, flow.listener.as_bytes());
    push_addr(out, Some(flow.client));
    push_addr(out, Some(flow.destination));
    push_number(out, flow.connection_time.as_millis() as u64);
    push_number(out, flow.handshake_time.as_millis() as u64);
    push_number(out, flow.received);
    push_number(out, flow.sent);
    field(out, b"- - -");
    field(out, flow.tls.cipher.as_bytes());
    let version: &[u8] = match flow.tls.protocol {
        "TLSv1.3" => b"tlsv13",
        _ => b"tlsv12",
    };
    field(out, version);
    field(out, flow.tls.key_exchange.as_bytes());
    field(out, flow.tls.domain.as_deref().unwrap_or("-").as_bytes());
    field(out, flow.alpn_front.unwrap_or(b"-"));
    field(out, flow.alpn_back.unwrap_or(b"-"));
    field(out, b"-");
    out.extend_from_slice(second(flow.created).as_bytes());
    out.push(b'\n');
}

/// How a client connection's TLS handshake went, for its connection log entry.
#[derive(Debug, Default)]
pub(crate) struct Handshake {
    pub(crate) latency: Option<Duration>,
    /// The client certificate's subject, validity and serial number (mutual TLS).
    pub(crate) client_cert: Option<[String; 3]>,
    /// `Success`, or `Failed:` and why; `None` for cleartext connections.
    pub(crate) status: Option<String>,
}

impl Handshake {
    /// A failed handshake's status, in ALB's codes where a client certificate was refused.
    pub(crate) fn failed(error: &std::io::Error) -> String {
        use rustls::CertificateError as Cert;
        let tls = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        let code = match tls {
            Some(rustls::Error::NoCertificatesPresented) => "ClientCertRejected",
            Some(rustls::Error::InvalidCertificate(cert)) => match cert {
                Cert::Expired | Cert::ExpiredContext { .. } => "ClientCertExpired",
                Cert::NotValidYet | Cert::NotValidYetContext { .. } => "ClientCertNotYetValid",
                Cert::Revoked => "ClientCertCrlHit",
                Cert::UnknownIssuer | Cert::BadSignature => "ClientCertUntrusted",
                Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => {
                    "ClientCertPurposeInvalid"
                }
                _ => "ClientCertInvalid",
            },
            _ => "UnmappedConnectionError",
        };
        format!("Failed:{code}")
    }
}

/// Writes the connection log entry of a connection to listener `port`: AWS's fields in
/// AWS's order, `timestamp` to `tls_keyexchange`, and a newline.
pub(crate) fn write_connection_entry(
    out: &mut Vec<u8>,
    session: &Session,
    port: u16,
    handshake: &Handshake,
    now: SystemTime,
) {
    let field = |out: &mut Vec<u8>, text: &str| {
        out.extend_from_slice(text.as_bytes());
        out.push(b' ');
    };
    push_time(out, now, false);
    push_client(out, session.peer, false);
    out.push(b' ');
    push_number(out, u64::from(session.peer.port()));
    push_number(out, u64::from(port));
    let tls = session.tls.as_deref();
    field(out, tls.map_or("-", |t| t.protocol));
    field(out, tls.map_or("-", |t| t.cipher));
    match handshake.latency {
        Some(latency) => push_seconds(out, Some(latency)),
        None => field(out, "-"),
    }
    let [subject, validity, serial] = handshake
        .client_cert
        .as_ref()
        .map_or(["-", "-", "-"], |[a, b, c]| {
            [a.as_str(), b.as_str(), c.as_str()]
        });
    quoted(out, subject);
    field(out, validity);
    field(out, serial);
    field(out, handshake.status.as_deref().unwrap_or("-"));
    push_trace_id(out, session.id);
    out.push(b' ');
    out.extend_from_slice(tls.map_or("-", |t| t.key_exchange).as_bytes());
    out.push(b'\n');
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
    /// The key exchange group, as connection logs name it (`x25519`, `secp256r1`, …).
    pub(crate) key_exchange: &'static str,
}

impl Session {
    pub(crate) fn plain(peer: SocketAddr) -> Self {
        Self {
            peer,
            tls: None,
            id: fastrand::u128(..),
        }
    }

    /// The connection's session once its TLS handshake is done: the same trace id.
    pub(crate) fn with_tls(self, connection: &rustls::ServerConnection) -> Self {
        let protocol = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            _ => "TLSv1.2",
        };
        let cipher = connection
            .negotiated_cipher_suite()
            .and_then(|s| elb_tls::policy::openssl_name(s.suite()))
            .unwrap_or("-");
        let key_exchange = match connection.negotiated_key_exchange_group().map(|g| g.name()) {
            Some(rustls::NamedGroup::X25519) => "x25519",
            Some(rustls::NamedGroup::secp256r1) => "secp256r1",
            Some(rustls::NamedGroup::secp384r1) => "secp384r1",
            Some(rustls::NamedGroup::secp521r1) => "secp521r1",
            _ => "-",
        };
        let tls = Tls {
            cipher,
            protocol,
            domain: connection.server_name().map(str::to_owned),
            key_exchange,
        };
        Self {
            tls: Some(Arc::new(tls)),
            ..self
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
    pub(crate) target_group: Option<Arc<str>>,
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
        let mut request = Vec::with_capacity(64);
        for part in [head.method, " ", head.scheme, "://", head.host, ":"] {
            request.extend_from_slice(part.as_bytes());
        }
        push_number(&mut request, u64::from(head.port));
        request.pop();
        for part in [head.target, " ", version] {
            request.extend_from_slice(part.as_bytes());
        }
        // Made of `str`s and digits only.
        let request = String::from_utf8(request).unwrap_or_default();
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
/// target answered: elbd passes the target's head on as it reads it. Written byte by byte,
/// not through `format!`: this runs once per request.
pub(crate) fn write_entry(
    out: &mut Vec<u8>,
    elb: &str,
    session: &Session,
    outcome: &Outcome,
    facts: &Facts,
    now: SystemTime,
) {
    let answered = outcome.target_status.is_some();
    let tls = session.tls.as_deref();
    let field = |out: &mut Vec<u8>, text: &str| {
        out.extend_from_slice(text.as_bytes());
        out.push(b' ');
    };
    field(out, facts.kind);
    push_time(out, now, false);
    field(out, elb);
    push_addr(out, Some(session.peer));
    push_addr(out, outcome.target);
    // A request whose target could not be reached was never dispatched.
    let dispatched = facts
        .dispatched
        .filter(|_| !outcome.target_connection_error);
    push_seconds(out, dispatched);
    push_seconds(out, outcome.target_time.filter(|_| answered));
    push_seconds(out, answered.then_some(Duration::ZERO));
    push_number(out, u64::from(outcome.elb_status));
    match outcome.target_status {
        Some(status) => push_number(out, u64::from(status)),
        None => field(out, "-"),
    }
    push_number(out, outcome.received_bytes);
    push_number(out, outcome.sent_bytes);
    quoted(out, &facts.request);
    quoted(out, facts.user_agent.as_deref().unwrap_or("-"));
    field(out, tls.map_or("-", |t| t.cipher));
    field(out, tls.map_or("-", |t| t.protocol));
    field(out, facts.target_group.as_deref().unwrap_or("-"));
    quoted(out, facts.trace_id.as_deref().unwrap_or("-"));
    quoted(out, tls.and_then(|t| t.domain.as_deref()).unwrap_or("-"));
    quoted(out, "-");
    let action = match (outcome.authenticated, outcome.action) {
        (_, Action::Refused) => "-",
        (_, Action::Authenticate) => "authenticate",
        (false, Action::Forward) => "forward",
        (false, Action::Redirect) => "redirect",
        (false, Action::FixedResponse) => "fixed-response",
        (true, Action::Forward) => "authenticate,forward",
        (true, Action::Redirect) => "authenticate,redirect",
        (true, Action::FixedResponse) => "authenticate,fixed-response",
    };
    match outcome.action {
        Action::Refused => field(out, "-"),
        _ => push_number(out, u64::from(outcome.rule.unwrap_or(0))),
    }
    push_time(out, facts.received, true);
    quoted(out, action);
    quoted(out, facts.redirect_url.as_deref().unwrap_or("-"));
    // error_reason: ALB writes it for Lambda, authentication (and WAF) failures only.
    let error_reason = outcome
        .error
        .filter(|e| e.starts_with("Lambda") || e.starts_with("Auth"));
    quoted(out, error_reason.unwrap_or("-"));
    out.push(b'"');
    push_addr(out, outcome.target);
    out.pop();
    out.extend_from_slice(b"\" \"");
    match outcome.target_status {
        Some(status) => push_number(out, u64::from(status)),
        None => field(out, "-"),
    }
    out.pop();
    out.extend_from_slice(b"\" ");
    let (class, reason) = facts.classification.unwrap_or(("-", "-"));
    quoted(out, class);
    quoted(out, reason);
    push_trace_id(out, session.id);
    out.push(b'\n');
}

/// `conn_trace_id`: `TID_` and 32 hex digits, the same in both logs for one connection.
fn push_trace_id(out: &mut Vec<u8>, id: u128) {
    out.extend_from_slice(b"TID_");
    for byte in id.to_be_bytes() {
        out.extend_from_slice(&hex_byte(byte));
    }
}

fn hex_byte(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]
}

/// `n` and a space.
fn push_number(out: &mut Vec<u8>, n: u64) {
    push_decimal(out, n);
    out.push(b' ');
}

/// `n` in `width` digits, zero-padded.
fn push_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    let mut n = n;
    for at in (start..start + width).rev() {
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Seconds with three decimals and a space; `-1` for none.
fn push_seconds(out: &mut Vec<u8>, d: Option<Duration>) {
    let Some(d) = d else {
        out.extend_from_slice(b"-1 ");
        return;
    };
    let millis = (d.as_micros() + 500) / 1000;
    let whole = u64::try_from(millis / 1000).unwrap_or(u64::MAX);
    push_number(out, whole);
    out.pop();
    out.push(b'.');
    push_padded(out, (millis % 1000) as u32, 3);
    out.push(b' ');
}

/// `ip:port` and a space; `-` for none.
fn push_addr(out: &mut Vec<u8>, addr: Option<SocketAddr>) {
    match addr {
        Some(addr) => {
            push_client(out, addr, true);
            out.push(b' ');
        }
        None => out.extend_from_slice(b"- "),
    }
}

/// [`elb_logs::log_time`] and a space, the date and time of the second kept per thread
/// (requests end many to a second); `millis`: `request_creation_time`'s precision.
fn push_time(out: &mut Vec<u8>, at: SystemTime, millis: bool) {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let second = since.as_secs();
    let mut cached = SECOND.get();
    if cached.0 != second {
        let text = log_time(at, 6);
        cached = (second, [0; 19]);
        cached.1.copy_from_slice(&text.as_bytes()[..19]);
        SECOND.set(cached);
    }
    out.extend_from_slice(&cached.1);
    out.push(b'.');
    let micros = since.subsec_micros();
    push_padded(out, if millis { micros / 1000 * 1000 } else { micros }, 6);
    out.extend_from_slice(b"Z ");
}

/// A field in double quotes and a space: quotes and backslashes inside are escaped with a
/// backslash and control bytes written as `\xHH`, so that a shell-style split keeps it whole.
fn quoted(out: &mut Vec<u8>, value: &str) {
    let escaped = |b: &u8| matches!(b, b'"' | b'\\' | 0..0x20 | 0x7f);
    out.push(b'"');
    if !value.as_bytes().iter().any(escaped) {
        out.extend_from_slice(value.as_bytes());
    } else {
        for &b in value.as_bytes() {
            match b {
                b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                0..0x20 | 0x7f => {
                    out.extend_from_slice(b"\\x");
                    out.extend_from_slice(&hex_byte(b));
                }
                _ => out.push(b),
            }
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
    fn times_and_durations_are_written_by_hand_as_format_would() {
        let at = |micros| SystemTime::UNIX_EPOCH + Duration::from_micros(micros);
        // The second's text is kept per thread: a new second must not reuse the last one's.
        for micros in [
            1_530_570_180_186_641,
            1_530_570_181_000_009,
            1_530_570_181_999_999,
        ] {
            let mut mine = Vec::new();
            push_time(&mut mine, at(micros), false);
            assert_eq!(
                mine,
                format!("{} ", elb_logs::log_time(at(micros), 6)).into_bytes()
            );
        }
        let mut millis = Vec::new();
        push_time(&mut millis, at(1_530_570_181_999_999), true);
        assert_eq!(millis, b"2018-07-02T22:23:01.999000Z ");
        let mut out = Vec::new();
        for d in [
            Duration::from_micros(499),
            Duration::from_micros(1_500),
            Duration::from_secs(61),
        ] {
            push_seconds(&mut out, Some(d));
        }
        push_seconds(&mut out, None);
        push_addr(&mut out, Some("[::1]:80".parse().unwrap()));
        assert_eq!(out, b"0.000 0.002 61.000 -1 [::1]:80 ");
    }

    #[test]
    fn a_connection_entry_has_aws_s_fields() {
        let tls = Tls {
            cipher: "ECDHE-RSA-AES128-GCM-SHA256",
            protocol: "TLSv1.2",
            domain: None,
            key_exchange: "secp256r1",
        };
        let secured = Session {
            tls: Some(Arc::new(tls)),
            ..session()
        };
        let handshake = Handshake {
            latency: Some(Duration::from_micros(4_036_000)),
            client_cert: Some([
                "CN=client,O=endEntity".into(),
                "NotBefore=2023-09-21T22:43:21Z;NotAfter=2026-06-17T22:43:21Z".into(),
                "FEF257372D5C14D4".into(),
            ]),
            status: Some("Success".into()),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_micros(1_696_439_115_514_108);
        let mut line = Vec::new();
        write_connection_entry(&mut line, &secured, 443, &handshake, now);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "2023-10-04T17:05:15.514108Z 192.168.131.39 2817 443 TLSv1.2 \
             ECDHE-RSA-AES128-GCM-SHA256 4.036 \"CN=client,O=endEntity\" \
             NotBefore=2023-09-21T22:43:21Z;NotAfter=2026-06-17T22:43:21Z FEF257372D5C14D4 \
             Success TID_00000000000000000000000000000abc secp256r1\n"
        );
        let mut plain = Vec::new();
        write_connection_entry(&mut plain, &session(), 80, &Handshake::default(), now);
        let plain = String::from_utf8(plain).unwrap();
        assert!(
            plain.ends_with(" 2817 80 - - - \"-\" - - - TID_00000000000000000000000000000abc -\n"),
            "{plain}"
        );
    }

    #[test]
    fn control_bytes_are_escaped() {
        let mut out = Vec::new();
        quoted(&mut out, "a\tb\\c");
        assert_eq!(out, b"\"a\\x09b\\\\c\" ");
    }
}
