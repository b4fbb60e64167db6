//! Dual-stack load balancers, end to end: elbd in a network namespace of the test's own, where
//! `fd00:ec2::/32` (the range Amazon-provided IPv6 blocks come from) is routed to the loopback,
//! so that the nodes' IPv6 addresses are this namespace's. A boto3 script inside it builds a
//! VPC with IPv6, a dual-stack ALB and NLB, and checks their answers, their AAAA records and
//! traffic over IPv6 (dualstack.py). While the lab exists the root namespace has an
//! `unreachable` route for the range, so no packet of the test can leave the machine.

use crate::harness::venv;
use crate::netns::{GREETER, Namespaces, scratch};

/// Answers every GET with the X-Forwarded-For it got and the peer it saw; argv: address, port.
const ECHO: &str = "import http.server, socket, sys\n\
    class H(http.server.BaseHTTPRequestHandler):\n\
    \x20   def do_GET(self):\n\
    \x20       xff = self.headers.get('X-Forwarded-For') or ''\n\
    \x20       body = f'{xff} {self.client_address[0]}'.encode()\n\
    \x20       self.send_response(200)\n\
    \x20       self.send_header('Content-Length', str(len(body)))\n\
    \x20       self.end_headers()\n\
    \x20       self.wfile.write(body)\n\
    \x20   def log_message(self, *args):\n\
    \x20       pass\n\
    class S(http.server.ThreadingHTTPServer):\n\
    \x20   address_family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
    S((sys.argv[1], int(sys.argv[2])), H).serve_forever()\n";

/// Answers each datagram with the address it came from; argv: IPv6 address, port.
const UDP_ECHO: &str = "import socket, sys\n\
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
    s.bind((sys.argv[1], int(sys.argv[2])))\n\
    while True:\n\
    \x20   data, peer = s.recvfrom(2048)\n\
    \x20   s.sendto(peer[0].encode(), peer)\n";

/// The targets: (program, address, port), an IPv4 and an IPv6 one of each, and a UDP one.
const TARGETS: [(&str, &str, &str); 5] = [
    (ECHO, "127.80.1.10", "9001"),
    (GREETER, "127.80.1.10", "9002"),
    (ECHO, "fd00:ec2:0:1::20", "9003"),
    (GREETER, "fd00:ec2:0:1::20", "9004"),
    (UDP_ECHO, "fd00:ec2:0:1::20", "9005"),
];

#[test]
fn dual_stack_load_balancers_answer_over_ipv6_with_aaaa_records() {
    let (dir, _config) = scratch("dualstack", "");
    let mut lab = Namespaces::new("ds", "fd00:ec2::/32");
    lab.host("lb");
    lab.ip(
        "lb",
        &["-6", "route", "add", "local", "fd00:ec2::/32", "dev", "lo"],
    );
    // The IPv6 targets' address is the host's; the nodes' are routed here (above), and nodes
    // connect to targets from them, which takes binding to an address routed, not assigned.
    lab.ip(
        "lb",
        &[
            "-6",
            "addr",
            "add",
            "fd00:ec2:0:1::20/128",
            "dev",
            "lo",
            "nodad",
        ],
    );
    assert!(
        lab.exec("lb", &["sysctl", "-q", "-w", "net.ipv6.ip_nonlocal_bind=1"])
            .0
    );
    for (i, (program, address, port)) in TARGETS.iter().enumerate() {
        let log = dir.join(format!("target-{i}.log"));
        lab.spawn("lb", &["python3", "-c", program, address, port], &log);
    }
    let data = dir.join("data");
    let elbd_log = dir.join("elbd.log");
    lab.spawn(
        "lb",
        &[
            env!("CARGO_BIN_EXE_elbd"),
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--api-listen",
            "127.0.0.1:4566",
            "--dns-listen",
            "127.0.0.1:5353",
        ],
        &elbd_log,
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/dualstack.py");
    let python = venv().join("bin/python");
    let api = "http://127.0.0.1:4566";
    // The API is up once a read is answered.
    let started = std::time::Instant::now();
    while !lab.exec("lb", &["curl", "-s", "-o", "/dev/null", api]).0 {
        assert!(
            started.elapsed().as_secs() < 30,
            "elbd did not start:\n{}",
            std::fs::read_to_string(&elbd_log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (ok, out) = lab.exec("lb", &[python.to_str().unwrap(), script, api, "5353"]);
    assert!(
        ok,
        "dualstack.py: {out}\nelbd's log:\n{}",
        std::fs::read_to_string(&elbd_log).unwrap_or_default()
    );
}
