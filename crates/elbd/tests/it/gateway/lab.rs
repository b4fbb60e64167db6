//! A gateway in the path of real traffic (shared/reference/netlab.md §3): a client and a
//! destination whose routes go through an edge namespace, where elbd runs the Gateway Load
//! Balancer endpoint as a TUN interface and the gateway's node on 10.N.255.254 (the top of
//! its subnet); two appliances (examples/geneve-appliance.py) in their own namespaces. Each
//! test has its own N, so the labs run side by side.
//!
//! ```text
//! client 10.N.1.10 ── e0 [edge: elbd, gwlbe-…, 10.N.255.254] e1 ── dest 10.N.2.10 (HTTP, UDP echo)
//!                               e2 │            │ e3
//!                   appliance 1 10.N.3.10    appliance 2 10.N.4.10  (GENEVE on 6081)
//! ```
//!
//! The edge steers what arrives from the client and the destination into the endpoint, as a
//! VPC route table would (`ip rule iif e0/e1 lookup 100`, table 100: default dev gwlbe-…);
//! what comes back from the appliances leaves the interface by the main table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Scratch, venv};
use crate::netns::{Namespaces, scratch};

const API: &str = "127.0.0.1:4566";
/// The destination's UDP echo port, and the port the client's long-lived UDP flow comes from.
const ECHO_PORT: u16 = 7001;
const PINGER_PORT: u16 = 40_000;

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// One packet an appliance logged: when, which appliance (0 or 1), AWS's options, the inner
/// flow.
struct Seen {
    at: f64,
    appliance: usize,
    options: BTreeMap<String, String>,
    protocol: u64,
    source: String,
    destination: String,
}

/// The lab, elbd in its edge with the gateway, its appliances, endpoint service and endpoint
/// made through the aws cli, and the edge's routes into the endpoint.
struct Gateway {
    lab: Namespaces,
    /// The lab's second octet: its addresses are 10.N.x.y.
    net: u8,
    /// After `lab`, so its programs have stopped before their files go.
    dir: Scratch,
    elbd_log: PathBuf,
    tg_arn: String,
    endpoint_id: String,
    /// How many times each appliance was started, to name its logs.
    starts: [usize; 2],
    /// How elbd is started in the edge.
    elbd_args: Vec<String>,
}

impl Gateway {
    fn ip(&self, host: &str) -> String {
        let n = self.net;
        match host {
            "client" => format!("10.{n}.1.10"),
            "dest" => format!("10.{n}.2.10"),
            "ap1" => format!("10.{n}.3.10"),
            "ap2" => format!("10.{n}.4.10"),
            _ => format!("10.{n}.255.254"),
        }
    }

    /// Builds the lab `tag` on 10.`net`/16 and the gateway through the endpoint.
    fn start(tag: &'static str, net: u8, range: &'static str) -> Self {
        let config = format!(
            "[settings]\n[[settings.zone]]\nname = \"us-east-1a\"\ncidr = \"10.{net}.0.0/16\"\n"
        );
        let (dir, config) = scratch(tag, &config);
        let mut lab = Namespaces::new(tag, range);
        for host in ["client", "edge", "dest", "ap1", "ap2"] {
            lab.host(host);
        }
        let a = |x: u8, y: u8| format!("10.{net}.{x}.{y}/24");
        let links = [
            (("client", "c0", a(1, 10)), ("edge", "e0", a(1, 1))),
            (("dest", "d0", a(2, 10)), ("edge", "e1", a(2, 1))),
            (("ap1", "a0", a(3, 10)), ("edge", "e2", a(3, 1))),
            (("ap2", "a0", a(4, 10)), ("edge", "e3", a(4, 1))),
        ];
        for ((h1, i1, a1), (h2, i2, a2)) in &links {
            lab.link((h1, i1, a1), (h2, i2, a2));
            // Jumbo frames: the endpoint takes 8,500-byte packets, and GENEVE adds 68 bytes.
            lab.ip(h1, &["link", "set", i1, "mtu", "9000"]);
            lab.ip(h2, &["link", "set", i2, "mtu", "9000"]);
        }
        for (host, x) in [("client", 1), ("dest", 2), ("ap1", 3), ("ap2", 4)] {
            lab.ip(
                host,
                &["route", "add", "default", "via", &format!("10.{net}.{x}.1")],
            );
        }
        let sysctl = [
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ];
        assert!(lab.exec("edge", &sysctl).0, "sysctl in the edge namespace");
        let mut gateway = Self {
            lab,
            net,
            elbd_log: dir.join("elbd.log"),
            dir,
            tg_arn: String::new(),
            endpoint_id: String::new(),
            starts: [0, 0],
            elbd_args: Vec::new(),
        };
        // The gateway node's address: the operator's to give, never elbd's.
        let node = format!("{}/32", gateway.ip("edge"));
        gateway.lab.ip("edge", &["addr", "add", &node, "dev", "lo"]);
        for appliance in 0..2 {
            gateway.start_appliance(appliance);
        }
        let dest = gateway.ip("dest");
        let site = ["python3", "-m", "http.server", "80", "--bind", &dest];
        gateway
            .lab
            .spawn("dest", &site, &gateway.dir.join("dest.log"));
        let echo = format!(
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('{dest}', {ECHO_PORT}))\nwhile True:\n    d, a = s.recvfrom(2048)\n    s.sendto(d, a)\n"
        );
        let log = gateway.dir.join("echo.log");
        gateway.lab.spawn("dest", &["python3", "-c", &echo], &log);
        let tcp_echo = format!(
            "import socket, threading\ns = socket.create_server(('{dest}', {ECHO_PORT}))\n\
             def serve(c):\n    while d := c.recv(64):\n        c.sendall(d)\n\
             while True:\n    c, _ = s.accept()\n    threading.Thread(target=serve, args=(c,), daemon=True).start()\n"
        );
        let log = gateway.dir.join("tcp-echo.log");
        gateway
            .lab
            .spawn("dest", &["python3", "-c", &tcp_echo], &log);
        let data = gateway.dir.join("data");
        gateway.elbd_args = [
            env!("CARGO_BIN_EXE_elbd"),
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--api-listen",
            API,
            "--drain-seconds",
            "2",
        ]
        .map(str::to_owned)
        .to_vec();
        let log = gateway.elbd_log.clone();
        gateway.spawn_elbd(&log);
        gateway.wait("elbd's API", Duration::from_secs(20), |g| {
            g.aws(&["ec2", "describe-vpcs"]).is_ok()
        });
        gateway.build();
        gateway
    }

    /// Starts elbd in the edge (a second one takes over from the first), logging to `log`.
    fn spawn_elbd(&mut self, log: &Path) {
        let args: Vec<&str> = self.elbd_args.iter().map(String::as_str).collect();
        self.lab.spawn("edge", &args, log);
    }

    /// How many elbd processes run in the edge.
    fn elbd_processes(&self) -> usize {
        let pids = crate::netns::run(&["ip", "netns", "pids", &self.lab.ns("edge")]);
        pids.split_whitespace()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "elbd")
            })
            .count()
    }

    /// The gateway, a GENEVE group of the two appliances (checked every 5 s, healthy after
    /// 2), its listener, an endpoint service and an endpoint; then the edge's routes.
    fn build(&mut self) {
        let subnet = self.ok(&["ec2", "describe-subnets"])["Subnets"][0].clone();
        let (subnet_id, vpc) = (text(&subnet["SubnetId"]), text(&subnet["VpcId"]));
        let lb = self.ok(&[
            "elbv2",
            "create-load-balancer",
            "--name",
            "inspect",
            "--type",
            "gateway",
            "--subnets",
            &subnet_id,
        ]);
        let lb_arn = text(&lb["LoadBalancers"][0]["LoadBalancerArn"]);
        let tg = self.ok(&[
            "elbv2",
            "create-target-group",
            "--name",
            "appliances",
            "--protocol",
            "GENEVE",
            "--port",
            "6081",
            "--vpc-id",
            &vpc,
            "--target-type",
            "ip",
            "--health-check-interval-seconds",
            "5",
            "--healthy-threshold-count",
            "2",
        ]);
        self.tg_arn = text(&tg["TargetGroups"][0]["TargetGroupArn"]);
        let targets = [
            format!("Id={}", self.ip("ap1")),
            format!("Id={}", self.ip("ap2")),
        ];
        let tg_arn = self.tg_arn.clone();
        self.ok(&[
            "elbv2",
            "register-targets",
            "--target-group-arn",
            &tg_arn,
            "--targets",
            &targets[0],
            &targets[1],
        ]);
        self.ok(&[
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={tg_arn}"),
        ]);
        let service = self.ok(&[
            "ec2",
            "create-vpc-endpoint-service-configuration",
            "--gateway-load-balancer-arns",
            &lb_arn,
            "--no-acceptance-required",
        ]);
        let service_name = text(&service["ServiceConfiguration"]["ServiceName"]);
        let endpoint = self.ok(&[
            "ec2",
            "create-vpc-endpoint",
            "--vpc-endpoint-type",
            "GatewayLoadBalancer",
            "--vpc-id",
            &vpc,
            "--service-name",
            &service_name,
            "--subnet-ids",
            &subnet_id,
        ]);
        self.endpoint_id = text(&endpoint["VpcEndpoint"]["VpcEndpointId"]);
        self.wait("the endpoint available", Duration::from_secs(20), |g| {
            let id = g.endpoint_id.clone();
            let described = g.ok(&["ec2", "describe-vpc-endpoints", "--vpc-endpoint-ids", &id]);
            described["VpcEndpoints"][0]["State"] == "available"
        });
        let interface = format!("gwlbe-{}", &self.endpoint_id[self.endpoint_id.len() - 9..]);
        let edge = |args: &[&str]| self.lab.ip("edge", args);
        edge(&["route", "add", "default", "dev", &interface, "table", "100"]);
        for from in ["e0", "e1"] {
            edge(&["rule", "add", "iif", from, "lookup", "100"]);
        }
        self.wait_health(&[true, true]);
    }

    fn start_appliance(&mut self, appliance: usize) {
        let host = ["ap1", "ap2"][appliance];
        self.starts[appliance] += 1;
        let log = self
            .dir
            .join(format!("{host}-{}.jsonl", self.starts[appliance]));
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/geneve-appliance.py"
        );
        let args = ["python3", script, "--log", log.to_str().unwrap()];
        let err = self.dir.join(format!("{host}.err"));
        self.lab.spawn(host, &args, &err);
    }

    /// Kills appliance `appliance`'s process, and waits until it is gone: it returns nothing
    /// and fails its checks.
    fn kill_appliance(&self, appliance: usize) {
        let ns = self.lab.ns(["ap1", "ap2"][appliance]);
        let pids = || self.lab.exec("edge", &["ip", "netns", "pids", &ns]).1;
        for pid in pids().split_whitespace() {
            let _ = Command::new("kill").arg(pid).status();
        }
        self.wait("the appliance gone", Duration::from_secs(5), |_| {
            pids().trim().is_empty()
        });
    }

    /// The aws cli in the edge namespace, against elbd's API there.
    fn aws(&self, args: &[&str]) -> Result<Value, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.lab.ns("edge")])
            .arg(venv().join("bin/aws"))
            .args([
                "--endpoint-url",
                &format!("http://{API}"),
                "--output",
                "json",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    }

    fn ok(&self, args: &[&str]) -> Value {
        self.aws(args)
            .unwrap_or_else(|e| panic!("aws {args:?}: {e}"))
    }

    /// Waits (at most `limit`) until `done`, failing with elbd's log; returns how long.
    fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> Duration {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; elbd said:\n{}",
                std::fs::read_to_string(&self.elbd_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        start.elapsed()
    }

    /// Waits until the appliances' health is `healthy` (by appliance); returns how long.
    fn wait_health(&self, healthy: &[bool; 2]) -> Duration {
        let what = format!("appliance health {healthy:?}");
        self.wait(&what, Duration::from_secs(30), |g| {
            let health = g.ok(&[
                "elbv2",
                "describe-target-health",
                "--target-group-arn",
                &g.tg_arn,
            ]);
            let states: BTreeMap<String, bool> = health["TargetHealthDescriptions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let id = text(&d["Target"]["Id"]);
                    (id, d["TargetHealth"]["State"] == "healthy")
                })
                .collect();
            [g.ip("ap1"), g.ip("ap2")]
                .iter()
                .zip(healthy)
                .all(|(ip, wanted)| states.get(ip) == Some(wanted))
        })
    }

    fn set_group_attributes(&self, attributes: &[(&str, &str)]) {
        let mut args = vec![
            "elbv2".to_owned(),
            "modify-target-group-attributes".to_owned(),
            "--target-group-arn".to_owned(),
            self.tg_arn.clone(),
            "--attributes".to_owned(),
        ];
        args.extend(attributes.iter().map(|(k, v)| format!("Key={k},Value={v}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args);
        // The data plane takes the change from the next snapshot, within milliseconds; a
        // second leaves room for a loaded machine.
        std::thread::sleep(Duration::from_secs(1));
    }

    /// The flow cookies (option 3) of the packets since `since` from or to `client_end`.
    fn cookies_of(&self, client_end: &str, since: f64) -> BTreeSet<String> {
        self.seen()
            .iter()
            .filter(|p| p.at >= since)
            .filter(|p| p.source.starts_with(client_end) || p.destination.starts_with(client_end))
            .map(|p| p.options["3"].clone())
            .collect()
    }

    /// Packets the edge has sent towards appliance `appliance` (0 or 1) so far.
    fn sent_towards(&self, appliance: usize) -> u64 {
        let link = ["e2", "e3"][appliance];
        let counter = format!("/sys/class/net/{link}/statistics/tx_packets");
        let (_, out) = self.lab.exec("edge", &["cat", &counter]);
        out.trim().parse().unwrap()
    }

    /// One curl from the client to the destination: its status code.
    fn curl(&self) -> String {
        let url = format!("http://{}/", self.ip("dest"));
        let args = [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            &url,
        ];
        self.lab.exec("client", &args).1
    }

    /// Every packet the appliances logged.
    fn seen(&self) -> Vec<Seen> {
        let mut all = Vec::new();
        for (appliance, host) in ["ap1", "ap2"].iter().enumerate() {
            for start in 1..=self.starts[appliance] {
                let log = self.dir.join(format!("{host}-{start}.jsonl"));
                let log = std::fs::read_to_string(log).unwrap_or_default();
                for line in log.lines() {
                    let v: Value = serde_json::from_str(line).unwrap();
                    assert!(v.get("dropped").is_none(), "{host}: {line}");
                    let options = v["options"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), text(v)))
                        .collect();
                    all.push(Seen {
                        at: v["time"].as_f64().unwrap(),
                        appliance,
                        options,
                        protocol: v["protocol"].as_u64().unwrap(),
                        source: text(&v["source"]),
                        destination: text(&v["destination"]),
                    });
                }
            }
        }
        all
    }

    /// The appliances that saw, since `since` (seconds since the epoch), the packets of a
    /// flow or host, by its client end (`10.N.1.10:40000`, or `10.N.1.10:` for the host).
    fn appliances_of(&self, client_end: &str, since: f64) -> BTreeSet<usize> {
        self.seen()
            .iter()
            .filter(|p| p.at >= since)
            .filter(|p| p.source.starts_with(client_end) || p.destination.starts_with(client_end))
            .map(|p| p.appliance)
            .collect()
    }

    /// The sum of `/metrics` samples named `name`.
    fn metric(&self, name: &str) -> f64 {
        let metrics = format!("http://{API}/metrics");
        let (_, page) = self.lab.exec("edge", &["curl", "-sf", &metrics]);
        page.lines()
            .filter(|l| l.split('{').next() == Some(name))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// A UDP flow from the client's port 40000 to the destination's echo, one datagram every
    /// 100 ms; each echo heard is a line in the returned log (seconds since the epoch).
    fn start_pinger(&mut self) -> PathBuf {
        let log = self.dir.join("pinger.log");
        let script = format!(
            "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('{}', {PINGER_PORT}))\ns.settimeout(0.1)\nlog = open('{}', 'a', buffering=1)\n\
             while True:\n    s.sendto(b'ping', ('{}', {ECHO_PORT}))\n    try:\n        s.recv(64)\n        \
             print(time.time(), file=log)\n        time.sleep(0.1)\n    except socket.timeout:\n        pass\n",
            self.ip("client"),
            log.display(),
            self.ip("dest"),
        );
        let err = self.dir.join("pinger.err");
        self.lab.spawn("client", &["python3", "-c", &script], &err);
        log
    }
}

impl Gateway {
    /// One TCP connection from the client to the destination's echo, kept open, a line every
    /// 100 ms; each echo heard is a line in the returned log (seconds since the epoch). The
    /// script ends if the connection does.
    fn start_tcp_pinger(&mut self) -> PathBuf {
        let log = self.dir.join("tcp-pinger.log");
        let script = format!(
            "import socket, time\nc = socket.create_connection(('{}', {ECHO_PORT}), timeout=0.5)\n\
             log = open('{}', 'a', buffering=1)\n\
             while True:\n    c.sendall(b'ping')\n    try:\n        c.recv(64)\n        \
             print(time.time(), file=log)\n        time.sleep(0.1)\n    except socket.timeout:\n        pass\n",
            self.ip("dest"),
            log.display(),
        );
        let err = self.dir.join("tcp-pinger.err");
        self.lab.spawn("client", &["python3", "-c", &script], &err);
        log
    }
}

/// The echoes `log` heard from `since` on, and the longest gap between two of them.
fn echoes_since(log: &Path, since: f64) -> (usize, f64) {
    let echoes: Vec<f64> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .filter(|at| *at >= since)
        .collect();
    let gap = echoes.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    (echoes.len(), gap)
}

/// When the pinger last heard an echo (seconds since the epoch), or 0.
fn last_echo(log: &Path) -> f64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// With the aws cli: a gateway, a GENEVE group of two appliances, its listener, an endpoint
/// service and an endpoint, whose interface the test's routes send the client's and the
/// destination's traffic into. Twenty curls from the client reach the destination; both
/// appliances see flows; every packet carries AWS's three options, option 1 the endpoint id;
/// each TCP connection, both directions, is seen by one appliance only; the node counts the
/// flows and the returns it refuses; a new elbd taking over keeps the interface, the route
/// into it and a running flow.
#[test]
fn traffic_routed_through_an_endpoint_passes_the_appliances_flow_by_flow() {
    let mut gateway = Gateway::start("gwa", 98, "10.98.0.0/16");
    for i in 0..20 {
        assert_eq!(gateway.curl(), "200", "request {i} through the gateway");
    }

    // The largest packet an endpoint takes, 8,500 bytes, passes whole (don't-fragment set).
    let dest = gateway.ip("dest");
    let ping = [
        "ping", "-c", "2", "-W", "3", "-M", "do", "-s", "8472", &dest,
    ];
    let (pinged, out) = gateway.lab.exec("client", &ping);
    assert!(pinged, "an 8,500-byte packet through the gateway: {out}");

    let packets = gateway.seen();
    // Option 1 is the endpoint id's value: its 16 hex digits after `vpce-0`.
    let id_value = &gateway.endpoint_id["vpce-0".len()..];
    for p in &packets {
        let kinds: Vec<&str> = p.options.keys().map(String::as_str).collect();
        assert_eq!(
            kinds,
            ["1", "2", "3"],
            "AWS's three options on every packet"
        );
        assert_eq!(p.options["1"], id_value);
    }
    let web: Vec<&Seen> = packets
        .iter()
        .filter(|p| {
            p.protocol == 6 && (p.source.ends_with(":80") || p.destination.ends_with(":80"))
        })
        .collect();
    // Each connection by its ends in a fixed order: the appliances and directions seen.
    let mut connections: BTreeMap<(String, String), (BTreeSet<usize>, BTreeSet<bool>)> =
        BTreeMap::new();
    for p in &web {
        let outbound = p.destination.ends_with(":80");
        let ends = if outbound {
            (p.source.clone(), p.destination.clone())
        } else {
            (p.destination.clone(), p.source.clone())
        };
        let entry = connections.entry(ends).or_default();
        entry.0.insert(p.appliance);
        entry.1.insert(outbound);
    }
    assert_eq!(connections.len(), 20, "{:?}", connections.keys());
    for (ends, (appliances, directions)) in &connections {
        assert_eq!(appliances.len(), 1, "{ends:?} seen by {appliances:?}");
        assert_eq!(directions.len(), 2, "{ends:?}: both directions");
    }
    let used: BTreeSet<usize> = web.iter().map(|p| p.appliance).collect();
    assert_eq!(used.len(), 2, "both appliances see flows");

    // What the node counts (AWS/GatewayELB): the flows, the bytes, and returns it refused: one
    // that is no GENEVE, one whose flow cookie is not the flow's.
    assert!(gateway.metric("aws_gatewayelb_new_flow_count_total") >= 20.0);
    assert!(gateway.metric("aws_gatewayelb_processed_bytes_total") > 0.0);
    let sample = &packets[0].options;
    let (node, client, dest) = (gateway.ip("edge"), gateway.ip("client"), gateway.ip("dest"));
    let inner = |ip: &str| ip.replace('.', ", ");
    let forge = format!(
        "import socket, struct\n\
         def opt(t, data): return struct.pack('!HBB', 0x108, t, len(data) // 4) + data\n\
         opts = opt(1, bytes.fromhex('{}')) + opt(2, bytes.fromhex('{}')) + opt(3, bytes(4))\n\
         inner = bytes([0x45, 0, 0, 40] + [0] * 5 + [6, 0, 0, {}, {}]) + struct.pack('!HH', 1, 80) + bytes(16)\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(b'hello', ('{node}', 6081))\n\
         s.sendto(struct.pack('!BBHI', len(opts) // 4, 0, 0x0800, 0) + opts + inner, ('{node}', 6081))\n",
        sample["1"],
        sample["2"],
        inner(&client),
        inner(&dest),
    );
    let malformed = "elbd_gateway_malformed_packet_count_total";
    let mismatched = "elbd_gateway_mismatched_packet_count_total";
    let before = (gateway.metric(malformed), gateway.metric(mismatched));
    assert!(gateway.lab.exec("ap1", &["python3", "-c", &forge]).0);
    gateway.wait("the forged returns counted", Duration::from_secs(5), |g| {
        (g.metric(malformed), g.metric(mismatched)) == (before.0 + 1.0, before.1 + 1.0)
    });

    // A new elbd takes over in the edge. It attaches a queue of its own to the endpoint's
    // interface before the old one lets go of its queue, so the interface, and the route the
    // operator made into it, stay; and it adopts the TCP connections already open, which
    // send no SYN to it. A UDP flow and a TCP connection go on through the appliances, and
    // new connections pass. (Before, the interface went with the old process, and with it the
    // route: traffic then went around the gateway.)
    let pings = gateway.start_pinger();
    let tcp_pings = gateway.start_tcp_pinger();
    gateway.wait("the pingers' echoes", Duration::from_secs(10), |_| {
        last_echo(&pings) > 0.0 && last_echo(&tcp_pings) > 0.0
    });
    let handed_at = now();
    let next_log = gateway.dir.join("elbd-next.log");
    gateway.spawn_elbd(&next_log);
    gateway.wait("the new elbd serving", Duration::from_secs(20), |_| {
        std::fs::read_to_string(&next_log).is_ok_and(|l| l.contains("this one serves"))
    });
    gateway.wait("the old elbd gone", Duration::from_secs(15), |g| {
        g.elbd_processes() == 1
    });
    let gone_at = now();
    gateway.wait(
        "echoes after the old elbd left",
        Duration::from_secs(5),
        |_| last_echo(&pings) > gone_at + 1.0 && last_echo(&tcp_pings) > gone_at + 1.0,
    );
    let (udp, udp_gap) = echoes_since(&pings, handed_at - 1.0);
    let (tcp, tcp_gap) = echoes_since(&tcp_pings, handed_at - 1.0);
    eprintln!(
        "gateway hand-over: UDP {udp} echoes, the longest gap {udp_gap:.2} s; TCP {tcp} echoes, \
         the longest gap {tcp_gap:.2} s; the old elbd gone {:.1} s after",
        gone_at - handed_at
    );
    // Each pinger sends every 0.1 s after an echo; a lost echo shows as a gap of 0.2 s or
    // more (UDP waits 0.1 s for one, TCP retransmits).
    assert!(udp_gap < 0.2, "the UDP flow lost an echo ({udp_gap:.2} s)");
    assert!(tcp_gap < 1.0, "the TCP connection stalled ({tcp_gap:.2} s)");
    let interface = format!(
        "gwlbe-{}",
        &gateway.endpoint_id[gateway.endpoint_id.len() - 9..]
    );
    let (_, routes) = gateway
        .lab
        .exec("edge", &["ip", "route", "show", "table", "100"]);
    assert!(
        routes.contains(&interface),
        "the route into the endpoint: {routes}"
    );
    // Not around the gateway: the echoes after the old elbd left passed an appliance.
    let pinger_end = format!("{}:{PINGER_PORT}", gateway.ip("client"));
    assert!(
        !gateway.appliances_of(&pinger_end, gone_at).is_empty(),
        "the UDP flow no longer passes the appliances"
    );
    let dest_end = format!("{}:{ECHO_PORT}", gateway.ip("dest"));
    let tcp_through = gateway.seen().into_iter().any(|p| {
        p.at >= gone_at && p.protocol == 6 && (p.source == dest_end || p.destination == dest_end)
    });
    assert!(
        tcp_through,
        "the TCP connection no longer passes the appliances"
    );
    assert_eq!(
        gateway.curl(),
        "200",
        "a new connection after the hand-over"
    );
}

/// Stickiness and failover: with 3-tuple stickiness, every connection between the client and
/// the destination goes to one appliance, and with 2-tuple UDP joins them; an appliance that
/// dies is found unhealthy within interval × threshold, new flows go to the other, and its
/// existing flow stays with it under `no_rebalance` (the echoes stop) and moves under
/// `rebalance` (they resume).
#[test]
fn stickiness_keeps_hosts_together_and_failover_moves_flows_as_asked() {
    let mut gateway = Gateway::start("gwb", 99, "10.99.0.0/16");
    let client = gateway.ip("client");
    let host = format!("{client}:");
    gateway.set_group_attributes(&[
        ("stickiness.enabled", "true"),
        ("stickiness.type", "source_ip_dest_ip_proto"),
    ]);
    for _ in 0..10 {
        assert_eq!(gateway.curl(), "200");
    }
    let three_tuple = gateway.appliances_of(&host, 0.0);
    assert_eq!(
        three_tuple.len(),
        1,
        "3-tuple: one appliance for the two hosts"
    );
    // One key, so one flow cookie, for every connection between the two hosts.
    assert_eq!(gateway.cookies_of(&host, 0.0).len(), 1, "3-tuple: one flow");
    gateway.set_group_attributes(&[("stickiness.type", "source_ip_dest_ip")]);
    let from = now();
    let pings = gateway.start_pinger();
    gateway.wait("echoes", Duration::from_secs(10), |_| {
        last_echo(&pings) > 0.0
    });
    for _ in 0..5 {
        assert_eq!(gateway.curl(), "200");
    }
    let two_tuple = gateway.appliances_of(&host, from);
    assert_eq!(two_tuple.len(), 1, "2-tuple: TCP and UDP on one appliance");
    assert_eq!(
        gateway.cookies_of(&host, from).len(),
        1,
        "2-tuple: one flow"
    );

    // Back to the 5-tuple: the pinger's flow is keyed anew from its next datagram on, on one
    // appliance, which then dies.
    gateway.set_group_attributes(&[("stickiness.enabled", "false")]);
    let pinger_end = format!("{client}:{PINGER_PORT}");
    let rekeyed = now();
    gateway.wait("the pinger's flow seen", Duration::from_secs(5), |g| {
        !g.appliances_of(&pinger_end, rekeyed).is_empty()
    });
    let carrying = gateway.appliances_of(&pinger_end, rekeyed);
    assert_eq!(
        carrying.len(),
        1,
        "one appliance carries the flow: {carrying:?}"
    );
    let victim = *carrying.first().unwrap();
    let survivor = 1 - victim;
    let killed = Instant::now();
    gateway.kill_appliance(victim);
    let unhealthy = "aws_gatewayelb_un_healthy_host_count";
    gateway.wait("the appliance unhealthy", Duration::from_secs(30), |g| {
        g.metric(unhealthy) >= 1.0
    });
    let detected = killed.elapsed();
    // Checked every 5 s, unhealthy after 2 failures: 10 s, and a check's timeout.
    assert!(
        detected <= Duration::from_secs(16),
        "unhealthy after {detected:?}"
    );
    let mut healthy = [true, true];
    healthy[victim] = false;
    gateway.wait_health(&healthy);

    // no_rebalance (the default): the flow still goes to the dead appliance, which answers
    // nothing; new flows go to the healthy one.
    let (heard, sent) = (last_echo(&pings), gateway.sent_towards(victim));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(last_echo(&pings), heard, "no echo: the flow stayed");
    assert!(
        gateway.sent_towards(victim) >= sent + 10,
        "still sent to the dead appliance"
    );
    for _ in 0..5 {
        assert_eq!(
            gateway.curl(),
            "200",
            "new flows go to the healthy appliance"
        );
    }
    let stuck = gateway.appliances_of(&pinger_end, rekeyed);
    assert!(
        !stuck.contains(&survivor),
        "no_rebalance kept the flow: {stuck:?}"
    );

    gateway.set_group_attributes(&[
        ("target_failover.on_deregistration", "rebalance"),
        ("target_failover.on_unhealthy", "rebalance"),
    ]);
    let switched = now();
    gateway.wait("the flow rebalanced", Duration::from_secs(10), |_| {
        last_echo(&pings) > switched
    });
    assert!(
        gateway
            .appliances_of(&pinger_end, switched)
            .contains(&survivor)
    );
}
