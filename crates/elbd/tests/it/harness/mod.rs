//! Starting elbd, backends and clients for the tests.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

mod aws;
mod lab;

pub(crate) use aws::Aws;
pub(crate) use lab::{Lab, Scratch};

/// An etcd server (Debian's etcd-server) on a lab's address, killed when dropped.
pub(crate) struct Etcd {
    child: Child,
    /// `HOST:PORT` of its clients' URL.
    pub(crate) endpoint: SocketAddr,
}

/// TLS for an etcd server: the CA its clients must present certificates of, and its own
/// certificate and key (PEM files).
pub(crate) struct EtcdTls<'a> {
    pub(crate) ca: &'a Path,
    pub(crate) cert: &'a Path,
    pub(crate) key: &'a Path,
}

impl Etcd {
    pub(crate) fn start(dir: &Path, ip: Ipv4Addr) -> Self {
        Self::start_with(dir, ip, None)
    }

    /// With `tls`: clients connect over TLS and must present a certificate the CA signed.
    pub(crate) fn start_with(dir: &Path, ip: Ipv4Addr, tls: Option<EtcdTls<'_>>) -> Self {
        let endpoint = SocketAddr::from((ip, 2379));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let peer = format!("http://{ip}:2380");
        let log = std::fs::File::create(dir.with_extension("log")).unwrap();
        let mut command = Command::new("etcd");
        command
            .arg("--data-dir")
            .arg(dir)
            .args(["--name", "lab"])
            .args(["--listen-client-urls", &format!("{scheme}://{endpoint}")])
            .args(["--advertise-client-urls", &format!("{scheme}://{endpoint}")])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("lab={peer}")]);
        if let Some(tls) = tls {
            command
                .arg("--trusted-ca-file")
                .arg(tls.ca)
                .arg("--cert-file")
                .arg(tls.cert)
                .arg("--key-file")
                .arg(tls.key)
                .arg("--client-cert-auth");
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd (Debian's etcd-server) is installed");
        let etcd = Self { child, endpoint };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(endpoint).is_err() {
            assert!(
                Instant::now() < deadline,
                "etcd did not start on {endpoint}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        etcd
    }
}

impl Etcd {
    /// Sends the server `signal` (`STOP` hangs it: requests go unanswered; `CONT` resumes).
    pub(crate) fn signal(&self, signal: &str) {
        send_signal(&self.child, signal);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `elbd serve`, killed when dropped.
pub(crate) struct Elbd {
    child: Child,
    pub(crate) log: PathBuf,
    /// The flags beyond --config and --data-dir, for restarts.
    extra: Vec<String>,
}

impl Elbd {
    /// Starts elbd on `config` with the lab's data dir and waits until every address of
    /// `ready` accepts connections.
    pub(crate) fn start(lab: &Lab, config: &Path, extra: &[&str], ready: &[SocketAddr]) -> Self {
        Self::start_as(lab, None, config, extra, ready)
    }

    /// Starts one of several elbd processes of a lab (`--role`s apart): its data dir and
    /// log are `data-NAME` and `elbd-NAME.log`.
    pub(crate) fn start_part(
        lab: &Lab,
        name: &str,
        config: &Path,
        extra: &[&str],
        ready: &[SocketAddr],
    ) -> Self {
        Self::start_as(lab, Some(name), config, extra, ready)
    }

    /// Starts a second elbd on the lab's data dir while the first runs (it takes over), with
    /// its log in `elbd-next.log`.
    pub(crate) fn take_over(lab: &Lab, config: &Path, extra: &[&str]) -> Self {
        let log = lab.dir.join("elbd-next.log");
        let mut extra: Vec<String> = extra.iter().map(ToString::to_string).collect();
        extra.extend([
            "--data-dir".into(),
            lab.dir.join("data").display().to_string(),
        ]);
        let child = Self::spawn(lab, config, &extra, &log);
        Self { child, log, extra }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to exit; its status, if it did.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn start_as(
        lab: &Lab,
        name: Option<&str>,
        config: &Path,
        extra: &[&str],
        ready: &[SocketAddr],
    ) -> Self {
        let (log, data) = match name {
            Some(name) => (
                lab.dir.join(format!("elbd-{name}.log")),
                lab.dir.join(format!("data-{name}")),
            ),
            None => (lab.dir.join("elbd.log"), lab.dir.join("data")),
        };
        let mut extra: Vec<String> = extra.iter().map(ToString::to_string).collect();
        extra.extend(["--data-dir".into(), data.display().to_string()]);
        let child = Self::spawn(lab, config, &extra, &log);
        let mut elbd = Self { child, log, extra };
        for addr in ready {
            elbd.wait_until(&format!("{addr} accepts"), || {
                TcpStream::connect(addr).is_ok()
            });
        }
        elbd
    }

    fn spawn(lab: &Lab, config: &Path, extra: &[impl AsRef<std::ffi::OsStr>], log: &Path) -> Child {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_elbd"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(lab.store_flags())
            .args(extra)
            .env("RUST_LOG", lab.log_filter)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap()
    }

    /// Runs elbd on `config` expecting it to refuse to start; returns what it printed.
    pub(crate) fn refuse(lab: &Lab, config: &Path) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_elbd"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(lab.dir.join("data"))
            .args(lab.store_flags())
            .output()
            .unwrap();
        assert!(!out.status.success(), "elbd started with a broken config");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub(crate) fn signal(&self, name: &str) {
        send_signal(&self.child, name);
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then start again with the same data dir.
    pub(crate) fn kill_and_restart(&mut self, lab: &Lab, config: &Path, ready: &[SocketAddr]) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::fs::rename(&self.log, lab.dir.join("elbd.before-kill.log")).unwrap();
        self.child = Self::spawn(lab, config, &self.extra, &self.log);
        for addr in ready {
            self.wait_until(&format!("{addr} accepts again"), || {
                TcpStream::connect(addr).is_ok()
            });
        }
    }

    /// Waits until the health checks have found `n` (node, target) pairs healthy.
    pub(crate) fn wait_healthy(&mut self, n: usize) {
        let log = self.log.clone();
        self.wait_until(&format!("{n} healthy checks"), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .filter(|l| l.contains("target health") && l.contains("state=healthy"))
                .count()
                >= n
        });
        // The checker publishes a burst of changes 20 ms after the last one, and the data plane
        // applies it right after: leave it ample time.
        std::thread::sleep(Duration::from_millis(300));
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `done` every 20 ms for up to 10 s; returns how long it took.
    pub(crate) fn wait_until(&mut self, what: &str, mut done: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        while !done() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "elbd exited ({status}) waiting for {what}:\n{}",
                    self.logs()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }
}

impl Drop for Elbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP backend in the test process that answers with its own address after `delay`, and
/// keeps the headers of the requests it served (health checks aside), with their request
/// target under the made-up name `x-test-request-target`. `…/login` also sets the cookie
/// `session`.
pub(crate) struct Backend {
    pub(crate) hits: Arc<Mutex<Vec<HeaderMap>>>,
    /// The status `/health` answers with (200 at first).
    pub(crate) health: Arc<AtomicU16>,
    /// Set: the backend behaves as a dead host, closing every connection without an answer.
    down: Arc<AtomicBool>,
    /// Its accept loop, stopped (and its port freed) when the backend is dropped.
    accept: tokio::task::AbortHandle,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Backend {
    pub(crate) async fn start(addr: SocketAddr, delay: Duration) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let health = Arc::new(AtomicU16::new(200));
        let down = Arc::new(AtomicBool::new(false));
        let (seen, status, dead) = (hits.clone(), health.clone(), down.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if dead.load(Ordering::Relaxed) {
                    continue;
                }
                let (seen, status, dead) = (seen.clone(), status.clone(), dead.clone());
                let service = service_fn(move |req: Request<Incoming>| {
                    let (seen, status, dead) = (seen.clone(), status.clone(), dead.clone());
                    async move {
                        if dead.load(Ordering::Relaxed) {
                            return Err(std::io::Error::other("down"));
                        }
                        let mut response = Response::new(Full::new(Bytes::from(addr.to_string())));
                        if req.uri().path().ends_with("/login") {
                            let cookie =
                                hyper::header::HeaderValue::from_static("session=1; Path=/");
                            response
                                .headers_mut()
                                .insert(hyper::header::SET_COOKIE, cookie);
                        }
                        if req.uri().path() == "/health" {
                            let code = status.load(Ordering::Relaxed);
                            *response.status_mut() = StatusCode::from_u16(code).unwrap();
                            return Ok(response);
                        }
                        tokio::time::sleep(delay).await;
                        let probe = req
                            .headers()
                            .get("user-agent")
                            .is_some_and(|ua| ua == "ELB-HealthChecker/2.0");
                        if !probe {
                            let mut headers = req.headers().clone();
                            let target = req.uri().path_and_query().map_or("", |t| t.as_str());
                            headers.insert(
                                "x-test-request-target",
                                target.parse().expect("a request target is a header value"),
                            );
                            seen.lock().unwrap().push(headers);
                        }
                        Ok(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let accept = accept.abort_handle();
        Self {
            hits,
            health,
            down,
            accept,
        }
    }

    /// From now on the backend is dead to new requests and connections.
    pub(crate) fn kill(&self) {
        self.down.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_health(&self, status: u16) {
        self.health.store(status, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

/// A backend in its own process, killed when dropped: python's http.server (which can be
/// SIGSTOPped), or any server command.
pub(crate) struct ProcessBackend(Child);

impl ProcessBackend {
    pub(crate) fn start(addr: SocketAddr) -> Self {
        let mut command = Command::new("python3");
        command.args([
            "-m",
            "http.server",
            "--bind",
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ]);
        Self::spawn(command, addr)
    }

    /// Runs `command` (output discarded) and waits until `addr` accepts connections.
    pub(crate) fn spawn(mut command: Command, addr: SocketAddr) -> Self {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} runs: {e}"));
        wait_listening(addr, &format!("{command:?}"));
        Self(child)
    }

    pub(crate) fn signal(&self, name: &str) {
        send_signal(&self.0, name);
    }
}

/// Waits (10 s at most) until `addr` accepts connections, as `what` should make it.
pub(crate) fn wait_listening(addr: SocketAddr, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kill -SIGNAL` to a child process (which must still run).
fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {}", child.id());
}

impl Drop for ProcessBackend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

pub(crate) fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub(crate) async fn get(client: &Client<HttpConnector, Empty<Bytes>>, addr: SocketAddr) -> Reply {
    let uri = format!("http://{addr}/");
    let response = client
        .get(uri.parse().unwrap())
        .await
        .unwrap_or_else(|e| panic!("GET {uri}: {e:?}"));
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// What curl got: the status, the body and the response head as text.
pub(crate) struct CurlReply {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) headers: String,
}

impl CurlReply {
    /// The first value of header `name` (lowercase), trimmed; empty when absent.
    pub(crate) fn header(&self, name: &str) -> String {
        self.headers
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    }
}

/// curl `url` with `args` (5 s at most).
pub(crate) fn curl(url: &str, args: &[&str]) -> CurlReply {
    let out = Command::new("curl")
        .args(["-s", "-D", "/dev/stderr", "-w", "\n%{http_code}"])
        .args(["--max-time", "5"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    CurlReply {
        status: status.parse().unwrap(),
        body: body.to_owned(),
        headers: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sends `n` GETs to `addr`, asserts each is a 200, and counts the answers by body.
pub(crate) async fn spread(addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let client = client();
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let reply = get(&client, addr).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        *counts.entry(reply.body).or_default() += 1;
    }
    counts
}

/// The IPv4 addresses listening on TCP `port` inside `127.<octet>.0.0/16`, from /proc.
pub(crate) fn listening(octet: u8, port: u16) -> Vec<SocketAddrV4> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (addr, state) = (fields.get(1)?, fields.get(3)?);
            if *state != "0A" {
                return None;
            }
            let (ip, p) = addr.split_once(':')?;
            let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.swap_bytes());
            let p = u16::from_str_radix(p, 16).ok()?;
            (p == port && ip.octets()[1] == octet).then_some(SocketAddrV4::new(ip, p))
        })
        .collect()
}

/// The Python venv with the aws cli, boto3, grpcio and moto's S3 server: `.ci/run` makes it; a test run without it
/// makes it once (about 20 s).
pub(crate) fn venv() -> &'static Path {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("venv");
        let holds = |check: &str| {
            Command::new(venv.join("bin/python"))
                .args(["-c", check])
                .status()
                .is_ok_and(|s| s.success())
        };
        let pinned = "import botocore, grpc, moto; assert botocore.__version__ == '1.44.18'";
        if !venv.join("bin/aws").exists() || !holds(pinned) {
            let ok = Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(venv.join("bin/pip"))
                    // The versions .ci/run pins (the model table test needs botocore's).
                    .args(["install", "-q", "awscli==1.46.3", "boto3==1.44.18"])
                    .args(["botocore==1.44.18", "grpcio", "moto[server]==5.2.6"])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                ok,
                "could not make {} with awscli, boto3, grpcio and moto",
                venv.display()
            );
        }
        venv
    })
}

/// One request of a constant-rate loop: when it was sent (since the loop began), its status
/// (0 when the connection failed) and its body.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) at: Duration,
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// Sends GETs to `addr` at `rate` per second for `duration`, each on its own task so that a
/// slow answer does not slow the loop.
pub(crate) async fn constant_rate(addr: SocketAddr, rate: u32, duration: Duration) -> Vec<Sent> {
    let client = client();
    let start = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut tasks = Vec::new();
    while start.elapsed() < duration {
        ticks.tick().await;
        let client = client.clone();
        let at = start.elapsed();
        tasks.push(tokio::spawn(async move {
            let uri = format!("http://{addr}/").parse().unwrap();
            match client.get(uri).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    Sent {
                        at,
                        status,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    }
                }
                Err(_) => Sent {
                    at,
                    status: 0,
                    body: String::new(),
                },
            }
        }));
    }
    let mut sent = Vec::new();
    for task in tasks {
        sent.push(task.await.unwrap());
    }
    sent
}

/// What `dig` gets for `name` from elbd's DNS at `server`: the status, and the A records as
/// (TTL, address).
pub(crate) fn dig(server: SocketAddr, name: &str) -> (String, Vec<(u32, Ipv4Addr)>) {
    let out = Command::new("dig")
        .args(["+noall", "+comments", "+answer", "+tries=1", "+time=2"])
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), name, "A"])
        .output()
        .expect("dig runs (Debian package dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("no answer")
        .to_owned();
    let mut records: Vec<(u32, Ipv4Addr)> = text
        .lines()
        .filter(|l| {
            !l.starts_with(';') && l.contains("\tA\t") || l.split_whitespace().nth(3) == Some("A")
        })
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            Some((fields.get(1)?.parse().ok()?, fields.get(4)?.parse().ok()?))
        })
        .collect();
    records.sort();
    (status, records)
}
