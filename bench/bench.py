#!/usr/bin/env python3
"""elbd against HAProxy and NGINX, on this box, in one run.

One NGINX origin (1 worker) serves the bodies, and `udp-load echo` answers datagrams. In turn,
elbd, HAProxy (nbthread 1) and NGINX as a proxy (1 worker) forward to it with equivalent
features (X-Forwarded-For/-Proto/-Port, keep-alive to the origin, no access logs); "direct"
hits the origin itself. The proxy is pinned to CPU 1, the load generator and the origin to
CPU 0. Rounds alternate the order of the proxies. See bench/README.md for the method and what
each column means.
"""

import argparse
import datetime
import json
import math
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_LOAD, CPU_PROXY = "0", "1"
# Threads (NGINX: workers) of each proxy; bench/multicore.py runs them with 2.
THREADS = 1
ORIGIN = "127.200.0.10"
ORIGIN_H1, ORIGIN_H2, ORIGIN_TLS = 9001, 9002, 9443
# Each proxy: (HTTP/1.1 address, h2c prior-knowledge address, TLS address with ALPN h2 and
# http/1.1, TCP (L4) address forwarding to the origin's HTTP/1.1 port). elbd's TCP listener
# is an NLB's, whose node takes the next address down in the zone.
ADDRS = {
    "direct": (f"{ORIGIN}:{ORIGIN_H1}", f"{ORIGIN}:{ORIGIN_H2}", f"{ORIGIN}:{ORIGIN_TLS}",
               f"{ORIGIN}:{ORIGIN_H1}"),
    "elbd": ("127.200.255.254:8080", "127.200.255.254:8080", "127.200.255.254:8443",
             "127.200.255.253:9000"),
    "haproxy": ("127.202.0.1:8080", "127.202.0.1:8081", "127.202.0.1:8443", "127.202.0.1:9000"),
    "nginx": ("127.203.0.1:8080", "127.203.0.1:8081", "127.203.0.1:8443", "127.203.0.1:9000"),
}
# UDP: the origin's echo server, and each UDP proxy's listener (elbd's on its NLB node).
# HAProxy 2.6 does not proxy UDP.
ORIGIN_UDP = 9053
UDP_ADDRS = {
    "direct": f"{ORIGIN}:{ORIGIN_UDP}",
    "elbd": "127.200.255.253:9053",
    "nginx": "127.203.0.1:9053",
}
UDP_LOAD = ROOT / "target/udp-load/release/udp-load"  # built by bench/run
# L4 TLS: each proxy's TLS-terminating L4 listener (elbd's an NLB TLS listener, on its node),
# forwarding plaintext to the origin's HTTP/1.1 port; "direct" is the origin's own TLS port.
TLS_L4_ADDRS = {
    "direct": f"{ORIGIN}:{ORIGIN_TLS}",
    "elbd": "127.200.255.253:9443",
    "haproxy": "127.202.0.1:9443",
    "nginx": "127.203.0.1:9443",
}
SCENARIOS = {
    "keepalive": "HTTP/1.1 keep-alive, 17-byte body",
    "body16k": "HTTP/1.1 keep-alive, 16 KB body",
    "newconn": "HTTP/1.1, a new connection per request",
    "h2c": "h2c, 10 streams per connection (h2load -m 10)",
    "tls": "HTTPS keep-alive (TLS 1.3, ECDSA P-256), 17-byte body",
    "tls_h2": "HTTP/2 over TLS, 10 streams per connection (h2load -m 10)",
    "tls_full": "a full TLS 1.3 handshake per request (wrk, Connection: close)",
    "tls_resumed": "a resumed TLS 1.3 session per request (openssl s_time -reuse, 1 connection at a time)",
    "tcp_conn": "L4 TCP, a new connection per small exchange (wrk Connection: close through the TCP proxy)",
    "tcp_stream": "L4 TCP, long-lived streams (wrk keep-alive, 1 MiB bodies, 8 connections; CPU per GB)",
    "tls_l4_conn": "L4 TLS, a full TLS handshake per small exchange: wrk over https with Connection: "
                   "close through the TLS-terminating L4 proxy to the origin's plain HTTP/1.1 port",
    "udp_dgram": "L4 UDP, small datagrams echoed through the UDP proxy, 64 client sockets",
}
TLS_SCENARIOS = [s for s in SCENARIOS if s.startswith("tls")]  # tls_l4_conn included
TCP_SCENARIOS = [s for s in SCENARIOS if s.startswith("tcp")]
UDP_SCENARIOS = [s for s in SCENARIOS if s.startswith("udp")]
STREAM_BODY = 1 << 20
UDP_SOCKETS, UDP_SIZE = 64, 64
CONNECTIONS = 32
IDLE_CONNECTIONS = 1000
# The open loop: samples per proxy and rate, at these fractions of the knee (the slowest
# keep-alive throughput, direct's included: past it, the load CPU is the queue).
OPEN_SAMPLES = 8
OPEN_RATES = {"half": 0.5, "80%": 0.8}
# Client connections of the open loop: enough that oha's pool is not the queue (at half the
# knee, rate × latency keeps 20–30 connections busy, and with 32 a small latency difference
# became queueing in the load generator), as an ALB serves many clients.
OPEN_CONNECTIONS = 128
# A sample during which the hypervisor kept a CPU of this VM from running for more than this
# share of it (steal time) measured the host, not the proxies: it is left out of the tail.
DISTURBED_STEAL = 0.01


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def wait_for(addr, timeout=10.0):
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens at {addr}")


def wait_for_udp(addr, timeout=10.0):
    """Until a datagram to `addr` comes back: the echo, through the proxy when it is one."""
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.connect((host, int(port)))
        while time.time() < deadline:
            try:
                s.send(b"ready?")
                s.recv(64)
                return
            except OSError:  # no answer yet, or refused while nothing listens
                time.sleep(0.05)
    raise SystemExit(f"no UDP echo through {addr}")


def runs(name, scenario):
    """Whether the proxy takes part in the scenario: HAProxy has no UDP proxying."""
    return scenario not in UDP_SCENARIOS or name != "haproxy"


# === processes ===


class Proc:
    """A server pinned to a CPU; CPU time and memory are read from /proc for its whole tree."""

    def __init__(self, name, argv, cpu, log):
        self.name = name
        self.popen = subprocess.Popen(
            ["taskset", "-c", cpu, *argv],
            stdout=subprocess.DEVNULL,
            stderr=open(log, "w"),
            start_new_session=True,
        )

    def pids(self):
        pids, todo = [], [self.popen.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                children = []
            todo.extend(int(c) for c in children)
        return pids

    def cpu_ns(self):
        total = 0
        for pid in self.pids():
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    total += int((task / "schedstat").read_text().split()[0])
                except OSError:
                    pass
        return total

    def sleeps(self):
        """Per thread id, the times it went to sleep (voluntary context switches): each one a
        wake-up to come, which on a VM that halts idle CPUs is the host's to schedule."""
        counts = {}
        for pid in self.pids():
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    status = (task / "status").read_text()
                except OSError:
                    continue
                counts[task.name] = int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
        return counts

    def rss_kb(self):
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def stop(self):
        try:
            os.killpg(self.popen.pid, 15)
            self.popen.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.popen.pid, 9)


def nginx_conf(work, body, stream="", workers=1):
    load = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;" if stream else ""
    return f"""
{load}
worker_processes {workers};
daemon off;
master_process on;
pid {work}/nginx-{body}.pid;
error_log {work}/nginx-{body}.error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp; fastcgi_temp_path {work}/tmp;
  uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
  {body}
}}
{stream}
"""


def origin_conf(work):
    return nginx_conf(work, "origin").replace(
        "  origin\n",
        f"""
  server {{ listen {ORIGIN}:{ORIGIN_H1} reuseport; root {work}/www; }}
  server {{ listen {ORIGIN}:{ORIGIN_H2} http2; root {work}/www; }}
  server {{ listen {ORIGIN}:{ORIGIN_TLS} ssl http2; root {work}/www; {nginx_tls(work)} }}
""",
    )


def nginx_tls(work, cache="tls"):
    # The stream context needs a cache zone of its own: NGINX refuses one name in http and stream.
    return (f"ssl_certificate {work}/cert.pem; ssl_certificate_key {work}/key.pem; "
            f"ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:{cache}:10m; ssl_session_tickets on;")


def nginx_proxy_conf(work):
    h1, h2, tls, tcp = ADDRS["nginx"]
    location = """
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Port $server_port;
    }"""
    # UDP: a session per client address and port, ended after 120 s idle (elbd's and AWS's
    # UDP flows); no proxy_responses, which would end it at each reply, making a new upstream
    # socket per datagram. It leaves from the client's address, as elbd's UDP flows do (AWS
    # keeps the client IP for UDP groups): on loopback this needs no `transparent`.
    # L4 TLS: `listen ... ssl` terminates TLS in the stream module (ssl_preread stays off) and
    # relays plaintext to the origin's HTTP/1.1 port, from the proxy's own address like TCP.
    stream = f"""stream {{
  upstream origin_tcp {{ server {ORIGIN}:{ORIGIN_H1}; }}
  server {{ listen {tcp}; proxy_pass origin_tcp; proxy_bind {tcp.rsplit(":", 1)[0]}; }}
  server {{ listen {TLS_L4_ADDRS["nginx"]} ssl; {nginx_tls(work, "tls_l4")}
           proxy_pass origin_tcp; proxy_bind {tcp.rsplit(":", 1)[0]}; }}
  server {{ listen {UDP_ADDRS["nginx"]} udp; proxy_pass {ORIGIN}:{ORIGIN_UDP}; proxy_timeout 120s;
           proxy_bind $remote_addr; }}
}}"""
    return nginx_conf(work, "proxy", stream, THREADS).replace(
        "  proxy\n",
        f"""
  upstream origin {{ server {ORIGIN}:{ORIGIN_H1}; keepalive 64; }}
  server {{ listen {h1}; {location} }}
  server {{ listen {h2} http2; {location} }}
  server {{ listen {tls} ssl http2; {nginx_tls(work)} {location} }}
""",
    )


def haproxy_conf(work):
    h1, h2, tls, tcp = ADDRS["haproxy"]
    return f"""
global
  nbthread {THREADS}
  maxconn 8000
defaults
  mode http
  timeout connect 10s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend h1
  bind {h1}
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Port %[dst_port]
  default_backend origin
frontend h2c
  bind {h2} proto h2
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Port %[dst_port]
  default_backend origin
frontend tls
  bind {tls} ssl crt {work}/combined.pem alpn h2,http/1.1
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Port %[dst_port]
  default_backend origin
backend origin
  server s1 {ORIGIN}:{ORIGIN_H1}
listen tcp
  mode tcp
  bind {tcp}
  server s1 {ORIGIN}:{ORIGIN_H1} source {tcp.rsplit(":", 1)[0]}
listen tls_l4
  mode tcp
  bind {TLS_L4_ADDRS["haproxy"]} ssl crt {work}/combined.pem
  server s1 {ORIGIN}:{ORIGIN_H1} source {tcp.rsplit(":", 1)[0]}
"""


def served_as(name):
    """The addresses a proxy serves on: elbd's variants (an earlier build, access logs on)
    take elbd's."""
    return "elbd" if name in ("elbd-base", "elbd-logs") else name


def elbd_conf(work, udp, tls_l4=False, access_logs=False):
    # UDP only when its scenario runs: a --baseline build may predate UDP listeners. A UDP
    # group is checked over TCP: on the origin's HTTP port, as the echo has no TCP side.
    # Likewise the NLB TLS listener: the HTTPS listener's certificate and policy, no ALPN (the
    # default AlpnPolicy None; wrk offers none), forwarding to the TCP group.
    udp_listener = udp_group = tls_listener = logs = ""
    if access_logs:
        # Spooled under the data dir; the interval (AWS's five minutes) outlasts a run.
        logs = ('attributes = { "access_logs.s3.enabled" = "true", '
                '"access_logs.s3.bucket" = "bench-logs" }\n')
    if tls_l4:
        tls_listener = f"""
[[load_balancer.listener]]
protocol = "TLS"
port = {TLS_L4_ADDRS["elbd"].rsplit(":", 1)[1]}
ssl_policy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
certificates = ["bench"]
default_action = {{ forward = "origin-tcp" }}
"""
    if udp:
        udp_listener = """
[[load_balancer.listener]]
protocol = "UDP"
port = 9053
default_action = { forward = "origin-udp" }
"""
        udp_group = f"""
[[target_group]]
name = "origin-udp"
protocol = "UDP"
port = {ORIGIN_UDP}
health_check = {{ port = {ORIGIN_H1} }}
targets = ["{ORIGIN}:{ORIGIN_UDP}"]
"""
    return f"""
[settings]
[[settings.zone]]
name = "us-east-1a"
cidr = "127.200.0.0/16"
[[settings.zone]]
name = "us-east-1b"
cidr = "127.201.0.0/16"

[[load_balancer]]
name = "bench"
availability_zones = ["us-east-1a", "us-east-1b"]
{logs}
[[load_balancer.listener]]
protocol = "HTTP"
port = 8080
default_action = {{ forward = "origin" }}

[[load_balancer.listener]]
protocol = "HTTPS"
port = 8443
ssl_policy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
certificates = ["bench"]
default_action = {{ forward = "origin" }}

[[certificate]]
name = "bench"
certificate = "{work}/cert.pem"
private_key = "{work}/key.pem"

[[target_group]]
name = "origin"
protocol = "HTTP"
port = {ORIGIN_H1}
targets = ["{ORIGIN}:{ORIGIN_H1}"]

[[load_balancer]]
name = "bench-tcp"
type = "network"
scheme = "internal"
availability_zones = ["us-east-1a"]

[[load_balancer.listener]]
protocol = "TCP"
port = 9000
default_action = {{ forward = "origin-tcp" }}
{tls_listener}{udp_listener}
[[target_group]]
name = "origin-tcp"
protocol = "TCP"
port = {ORIGIN_H1}
targets = ["{ORIGIN}:{ORIGIN_H1}"]
{udp_group}"""


def start_proxy(name, work, baseline=None, udp=False, tls_l4=False):
    log = work / f"{name}.log"
    if name in ("elbd", "elbd-base", "elbd-logs"):
        conf = work / "elbd.toml"
        conf.write_text(elbd_conf(work, udp, tls_l4, access_logs=name == "elbd-logs"))
        data = work / "elbd-data"
        shutil.rmtree(data, ignore_errors=True)
        (data / "s3/bench-logs").mkdir(parents=True)
        binary = baseline if name == "elbd-base" else ROOT / "target/release/elbd"
        # One thread, as HAProxy's nbthread 1 and NGINX's single worker (THREADS).
        argv = [str(binary), "serve", "--config", str(conf), "--data-dir", str(data),
                "--threads", str(THREADS)]
        os.environ["RUST_LOG"] = "warn"
    elif name == "haproxy":
        conf = work / "haproxy.cfg"
        conf.write_text(haproxy_conf(work))
        argv = ["haproxy", "-db", "-f", str(conf)]
    elif name == "nginx":
        conf = work / "nginx-proxy.conf"
        conf.write_text(nginx_proxy_conf(work))
        argv = ["nginx", "-c", str(conf), "-p", str(work)]
    else:
        return None
    proc = Proc(name, argv, CPU_PROXY, log)
    try:
        for addr in ADDRS[served_as(name)]:
            wait_for(addr)
        if tls_l4 and name != "direct":
            wait_for(TLS_L4_ADDRS[served_as(name)])
        if udp and runs(name, "udp_dgram"):
            wait_for_udp(UDP_ADDRS[served_as(name)])
    except BaseException:
        # A proxy left running would hold the addresses, and the next run measure it.
        proc.stop()
        raise
    return proc


# === load ===


def url(name, scenario):
    name = served_as(name)
    path = {"body16k": "/16k", "tcp_stream": "/1m"}.get(scenario, "/small")
    if scenario == "tls_l4_conn":
        return f"https://{TLS_L4_ADDRS[name]}{path}"
    if scenario in TLS_SCENARIOS:
        return f"https://{ADDRS[name][2]}{path}"
    if scenario in TCP_SCENARIOS:
        return f"http://{ADDRS[name][3]}{path}"
    index = 1 if scenario == "h2c" else 0
    return f"http://{ADDRS[name][index]}{path}"


def closed_loop(name, scenario, seconds):
    """Requests and their rate from wrk (h2load for h2c), pinned to the load CPU; for UDP,
    datagrams echoed and lost (udp-load)."""
    if scenario in UDP_SCENARIOS:
        addr = UDP_ADDRS[served_as(name)]
        out = json.loads(sh("taskset", "-c", CPU_LOAD, str(UDP_LOAD), "run", "--target", addr,
                            "--sockets", str(UDP_SOCKETS), "--seconds", str(seconds),
                            "--size", str(UDP_SIZE)))
        return out["datagrams"], out["rate"], out["lost"]
    target = url(name, scenario)
    if scenario == "tls_resumed":
        addr = ADDRS[served_as(name)][2]
        out = sh("taskset", "-c", CPU_LOAD, "openssl", "s_time", "-connect", addr, "-www", "/small",
                 "-reuse", "-time", str(seconds))
        done = next(l for l in out.splitlines() if "connections in" in l and "real" in l)
        count = int(done.split()[0])
        return count, count / seconds, 0
    if scenario in ("h2c", "tls_h2"):
        out = sh("taskset", "-c", CPU_LOAD, "h2load", "-c", str(CONNECTIONS), "-m", "10",
                 "-D", str(seconds), "-t", "1", target)
        done = next(line for line in out.splitlines() if line.startswith("requests:"))
        ok = int(done.split()[7])
        return ok, ok / seconds, int(done.split()[-2]) if "errored" in done else 0
    closing = ("newconn", "tls_full", "tcp_conn", "tls_l4_conn")
    extra = ["-H", "Connection: close"] if scenario in closing else []
    connections = 8 if scenario == "tcp_stream" else CONNECTIONS
    out = sh("taskset", "-c", CPU_LOAD, "wrk", "-t1", "-c", str(connections), "-d", f"{seconds}s",
             *extra, target)
    requests = int(next(l for l in out.splitlines() if "requests in" in l).split()[0])
    errors = sum(int(w) for l in out.splitlines() if "Non-2xx" in l for w in l.split()[-1:])
    return requests, requests / seconds, errors


def steal_ms():
    """For the load CPU and the proxy's, the ms the hypervisor has kept it from running
    (/proc/stat's steal)."""
    hz = os.sysconf("SC_CLK_TCK")
    wanted = {f"cpu{CPU_LOAD}", f"cpu{CPU_PROXY}"}
    return [int(line.split()[8]) * 1000 / hz for line in Path("/proc/stat").read_text().splitlines()
            if line.split()[0] in wanted]


def sleeps_between(before, after):
    """Sleeps of the threads alive at the end since `before` (0 for threads started since);
    a thread that ended in between takes its count with it."""
    return sum(max(count - before.get(tid, 0), 0) for tid, count in after.items())


def open_loop(name, rate, seconds, proc=None):
    """p50/p99/p99.9 in ms at a fixed rate, corrected for coordinated omission (oha); the
    host's steal time over the sample, and the proxy's sleeps per request."""
    oha = shutil.which("oha") or str(Path.home() / ".cargo/bin/oha")
    stolen, slept, started = steal_ms(), proc.sleeps() if proc else {}, time.monotonic()
    out = sh("taskset", "-c", CPU_LOAD, oha, "-z", f"{seconds}s", "-q", str(rate), "-c", str(OPEN_CONNECTIONS),
             "--latency-correction", "--no-tui", "--output-format", "json", url(name, "keepalive"))
    report = json.loads(out)
    pct = report["latencyPercentiles"]
    sample = {k: pct[k] * 1000 for k in ("p50", "p99", "p99.9")}
    # A sample that fell short of the rate measured the load generator as much as the proxy.
    summary = report["summary"]
    sample["short"] = summary["requestsPerSec"] < 0.95 * rate or summary["successRate"] < 1
    sample["steal_ms"] = max(b - a for a, b in zip(stolen, steal_ms()))
    # Over the whole window the steal was read across, oha's start and exit included.
    sample["disturbed"] = sample["steal_ms"] > DISTURBED_STEAL * (time.monotonic() - started) * 1000
    if proc:
        requests = summary["requestsPerSec"] * summary["total"]
        sample["sleeps_per_req"] = sleeps_between(slept, proc.sleeps()) / max(requests, 1)
    return sample


def idle_memory(proc, name, index=0):
    """KB of proxy RSS per idle keep-alive client connection, over IDLE_CONNECTIONS of them,
    to the proxy's HTTP address (index 0) or its TCP one (3: each an idle flow to the origin)."""
    name = served_as(name)
    host, port = ADDRS[name][index].rsplit(":", 1)
    before = proc.rss_kb()
    socks = []
    request = f"GET /small HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    # One request at a time, so that the proxy needs one target connection, not a thousand.
    for _ in range(IDLE_CONNECTIONS):
        s = socket.create_connection((host, int(port)))
        s.sendall(request)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        socks.append(s)
    time.sleep(0.5)
    after = proc.rss_kb()
    for s in socks:
        s.close()
    return (after - before) / IDLE_CONNECTIONS


# === the run ===


def measure(args, work):
    proxies = (["direct", "elbd", "haproxy", "nginx"] + (["elbd-base"] if args.baseline else [])
               + (["elbd-logs"] if args.access_logs else []))
    samples = {p: {s: [] for s in args.scenarios if runs(p, s)} for p in proxies}
    extras = {p: {} for p in proxies}
    udp = any(s in UDP_SCENARIOS for s in args.scenarios)
    tls_l4 = "tls_l4_conn" in args.scenarios
    for round_no, order in rotations(proxies, args.rounds):
        for name in order:
            if round_no == 0 and name != "direct" and any(s in TCP_SCENARIOS for s in args.scenarios):
                # A process of its own: after the idle connections below are closed, the memory
                # they freed would be reused for the flows and hide their cost (elbd read 0.0).
                proc = start_proxy(name, work, args.baseline, udp, tls_l4)
                try:
                    extras[name]["idle_kb_per_flow"] = idle_memory(proc, name, 3)
                finally:
                    proc.stop()
            proc = start_proxy(name, work, args.baseline, udp, tls_l4)
            try:
                if proc and round_no == 0:
                    # On a fresh process: after load, allocators reuse freed memory and hide the cost.
                    extras[name]["idle_kb_per_conn"] = idle_memory(proc, name)
                for scenario in samples[name]:
                    closed_loop(name, scenario, 1)  # warm-up: pools, caches, page-ins
                    cpu0 = proc.cpu_ns() if proc else 0
                    requests, rps, errors = closed_loop(name, scenario, args.seconds)
                    cpu = (proc.cpu_ns() - cpu0) if proc else 0
                    cpu_us = cpu / 1000 / max(requests, 1)
                    sample = {"rps": rps, "cpu_us": cpu_us, "errors": errors}
                    if scenario == "tcp_stream":
                        # CPU ms per GB of bodies moved (the heads are noise beside 1 MiB).
                        sample["cpu_ms_per_gb"] = cpu / 1e6 / max(requests * STREAM_BODY / 1e9, 1e-9)
                    samples[name][scenario].append(sample)
                    print(f"  {name} {scenario}: {rps:.0f} req/s, {cpu_us:.1f} µs/req, {errors} errors",
                          file=sys.stderr)
            finally:
                if proc:
                    proc.stop()
            print(f"round {round_no + 1}/{args.rounds}: {name} done", file=sys.stderr)
    knee = min(statistics.median(r["rps"] for r in samples[p]["keepalive"])
               for p in ("direct", "elbd", "haproxy", "nginx"))
    rates = {label: int(knee * share) for label, share in OPEN_RATES.items()}
    tail = open_loop_samples(args, work, ["direct", "elbd", "haproxy", "nginx"], rates)
    return samples, extras, rates, tail


def open_loop_samples(args, work, proxies, rates):
    """The tail: `--open-samples` open-loop runs per proxy at each rate, every proxy running
    at once (idle ones cost nothing; elbd-base and elbd-logs would take elbd's addresses) and
    the order rotating each sample, so that the VM's slow moments fall on every proxy alike.
    Sample i of each proxy is paired with direct's."""
    tail = {p: {label: [] for label in rates} for p in proxies}
    running = {}
    # Seeded: every run shuffles alike, and no proxy always follows the same one.
    shuffle = random.Random(23)
    try:
        for name in proxies:
            running[name] = start_proxy(name, work, args.baseline)
            closed_loop(name, "keepalive", 1)  # warm-up, as the rounds have
        for i in range(args.open_samples):
            order = proxies[:]
            shuffle.shuffle(order)
            for name in order:
                for label, rate in rates.items():
                    sample = open_loop(name, rate, args.open_seconds, running[name])
                    tail[name][label].append(sample)
            print(f"open loop: sample {i + 1}/{args.open_samples} done", file=sys.stderr)
    finally:
        for proc in running.values():
            if proc:
                proc.stop()
    return tail


def rotations(items, rounds):
    """(round number, the items in that round's order): rotated each round, so that none
    always runs first (each still follows the same one, bar the first)."""
    for round_no in range(rounds):
        k = round_no % len(items)
        yield round_no, items[k:] + items[:k]


def median_range(values):
    """'median (min–max)', to one decimal."""
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def quartiles(values):
    """(first quartile, median, third quartile); Nones when there are no values."""
    if not values:
        return None, None, None
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def summarise_tail(tail):
    """Per proxy and rate, over the samples the host did not disturb: the median of each
    percentile, p99's quartiles, and the added p99 (the proxy's minus direct's in the same
    sample, both undisturbed), median and quartiles. `p99_ms` keeps every sample's p99 in
    order, None where disturbed, for pairing."""
    out = {}
    for name, by_rate in tail.items():
        out[name] = {}
        for label, runs in by_rate.items():
            direct = tail["direct"][label]
            clean = [r for r in runs if not r["disturbed"]]
            added = [r["p99"] - d["p99"] for r, d in zip(runs, direct)
                     if not (r["disturbed"] or d["disturbed"])]
            sleeps = [r["sleeps_per_req"] for r in clean if "sleeps_per_req" in r]
            percentiles = ("p50", "p99", "p99.9")
            out[name][label] = {
                "median_ms": {k: median_or_none([r[k] for r in clean]) for k in percentiles},
                "p99_quartiles_ms": quartiles([r["p99"] for r in clean]),
                "added_p99_quartiles_ms": quartiles(added),
                "samples": len(runs),
                "disturbed_samples": len(runs) - len(clean),
                "short_samples": sum(r["short"] for r in clean),
                "sleeps_per_req": median_or_none(sleeps),
                "p99_ms": [None if r["disturbed"] else r["p99"] for r in runs],
            }
    return out


def median_or_none(values):
    return statistics.median(values) if values else None


def sign_test(a, b):
    """Two-sided exact sign test over paired samples: the chance of a split this lopsided
    between a < b and a > b if neither were lower. Ties are dropped."""
    below = sum(x < y for x, y in zip(a, b))
    above = sum(x > y for x, y in zip(a, b))
    n, k = below + above, max(below, above)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def ranked(a, b):
    """Which of two proxies has the lower p99, sample by sample (each sample ran both in the
    same minute; pairs with a disturbed sample left out), or None when a sign test cannot
    tell at 5 %."""
    pairs = [(x, y) for x, y in zip(a["p99_ms"], b["p99_ms"]) if x is not None and y is not None]
    mine, theirs = [x for x, _ in pairs], [y for _, y in pairs]
    if sign_test(mine, theirs) >= 0.05:
        return None
    below = sum(x < y for x, y in pairs)
    above = sum(x > y for x, y in pairs)
    return "first" if below > above else "second"


def summarise(samples, extras):
    rows = {}
    for name, by_scenario in samples.items():
        row = {}
        for scenario, runs in by_scenario.items():
            rps = [r["rps"] for r in runs]
            cpu = [r["cpu_us"] for r in runs]
            row[scenario] = {
                "rps": statistics.median(rps),
                "rps_spread": (max(rps) - min(rps)) / max(statistics.median(rps), 1),
                "cpu_us": statistics.median(cpu),
                "errors": sum(r["errors"] for r in runs),
            }
            if "cpu_ms_per_gb" in runs[0]:
                row[scenario]["cpu_ms_per_gb"] = statistics.median(r["cpu_ms_per_gb"] for r in runs)
        row.update(extras[name])
        rows[name] = row
    direct = rows["direct"]
    for name, row in rows.items():
        for scenario in samples[name]:
            row[scenario]["ratio_to_direct"] = row[scenario]["rps"] / max(direct[scenario]["rps"], 1)
    return rows


def table(rows, rates, tail):
    out = []
    for scenario, title in SCENARIOS.items():
        if scenario not in rows["direct"]:
            continue
        per_gb, udp = scenario == "tcp_stream", scenario in UDP_SCENARIOS
        loop = "HAProxy 2.6 has no UDP proxying" if udp else f"{CONNECTIONS} connections"
        out.append(f"\n**{title}** (closed loop, {loop})\n")
        per_s, unit, errors = ("datagrams/s", "datagram", "lost") if udp else ("req/s", "req", "errors")
        if scenario == "tls_l4_conn":  # one request, and one full handshake, per connection
            per_s, unit = "conn/s", "conn"
        out.append(f"| | {per_s} | ratio to direct | spread | CPU µs/{unit} | {errors} |"
                   + (" CPU ms/GB |" if per_gb else ""))
        out.append("|---|---:|---:|---:|---:|---:|" + ("---:|" if per_gb else ""))
        for name, row in rows.items():
            if scenario not in row:
                continue
            s = row[scenario]
            cpu = "-" if name == "direct" else f"{s['cpu_us']:.1f}"
            line = (f"| {name} | {s['rps']:.0f} | {s['ratio_to_direct']:.2f} | "
                    f"{s['rps_spread'] * 100:.0f}% | {cpu} | {s['errors']} |")
            if per_gb:
                line += " - |" if name == "direct" else f" {s['cpu_ms_per_gb']:.0f} |"
            out.append(line)
    for label, rate in rates.items():
        samples = tail["direct"][label]["samples"]
        share = "half the knee" if label == "half" else f"{label} of the knee"
        out.append(f"\n**Open-loop latency at {rate} req/s, {share}** (keep-alive, oha "
                   f"--latency-correction, {OPEN_CONNECTIONS} connections; medians and interquartile ranges of {samples} "
                   f"samples, proxies alternating, those the host disturbed left out)\n")
        out.append("| | p50 ms | p99 ms | p99 IQR ms | p99.9 ms | added p99 ms | added p99 IQR ms "
                   "| sleeps per request | samples short of the rate | samples the host disturbed |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, by_rate in tail.items():
            t = by_rate[label]
            lat = t["median_ms"]
            q1, _, q3 = t["p99_quartiles_ms"]
            a1, added, a3 = t["added_p99_quartiles_ms"]
            out.append(f"| {name} | {num(lat['p50'], 3)} | {num(lat['p99'], 3)} | "
                       f"{span(q1, q3)} | {num(lat['p99.9'], 3)} | {num(added, 3)} | "
                       f"{span(a1, a3)} | {num(t['sleeps_per_req'])} | "
                       f"{t['short_samples']} | {t['disturbed_samples']} |")
        winner = ranked(tail["elbd"][label], tail["haproxy"][label])
        if winner:
            better = "elbd" if winner == "first" else "HAProxy"
            out.append(f"\np99: {better} is lower (sign test over the paired samples, p < 0.05).")
        else:
            out.append("\np99: too close or too noisy to rank elbd and HAProxy (sign test over "
                       "the paired samples, p ≥ 0.05).")
    out.append("\n**Memory per idle connection** (KB of RSS, over 1,000)\n")
    out.append("| | KB per idle conn | KB per idle TCP flow |")
    out.append("|---|---:|---:|")
    for name, row in rows.items():
        if name == "direct":
            continue
        flow = "-" if "idle_kb_per_flow" not in row else f"{row['idle_kb_per_flow']:.1f}"
        out.append(f"| {name} | {row.get('idle_kb_per_conn', 0):.1f} | {flow} |")
    return "\n".join(out)


def num(value, digits=2):
    """A figure of the tail table, or "-" where every sample was disturbed."""
    return "-" if value is None else f"{value:.{digits}f}"


def span(low, high):
    """An interquartile range of the tail table, or "-"."""
    return "-" if low is None else f"{low:.2f}–{high:.2f}"


def ratio_line(rows, tail):
    """Every goal at a glance, each `KEY elbd/haproxy=X` (UDP over NGINX, named so), for
    the scenarios that ran."""
    elbd, haproxy = rows["elbd"], rows["haproxy"]
    parts = []

    def ratio(key, mine, theirs, against="haproxy"):
        parts.append(f"{key} elbd/{against}={mine / max(theirs, 1e-9):.2f}")

    ratio("cpu_per_request", elbd["keepalive"]["cpu_us"], haproxy["keepalive"]["cpu_us"])
    ratio("throughput", elbd["keepalive"]["rps"], haproxy["keepalive"]["rps"])
    half = tail["elbd"]["half"]["added_p99_quartiles_ms"][1], tail["haproxy"]["half"]["added_p99_quartiles_ms"][1]
    if None in half:
        parts.append("p99_added elbd/haproxy=-")  # no undisturbed pair of samples
    else:
        # An added p99 at or under direct's is as good as it gets: counted as 10 µs.
        ratio("p99_added", max(half[0], 0.01), max(half[1], 0.01))
    parts.append(f"p99_ranked={'yes' if ranked(tail['elbd']['half'], tail['haproxy']['half']) else 'no'}")
    for key, scenario in [("body16k_cpu", "body16k"), ("h2c_cpu", "h2c"), ("h2tls_cpu", "tls_h2"),
                          ("tls_handshake_cpu", "tls_full"), ("tcp_conn_cpu", "tcp_conn"),
                          ("tls_l4_handshake_cpu", "tls_l4_conn")]:
        if scenario in elbd:
            ratio(key, elbd[scenario]["cpu_us"], haproxy[scenario]["cpu_us"])
    if "idle_kb_per_conn" in elbd:
        ratio("idle_kb", elbd["idle_kb_per_conn"], haproxy["idle_kb_per_conn"])
    if "tcp_stream" in elbd:
        ratio("tcp_gb_cpu", elbd["tcp_stream"]["cpu_ms_per_gb"], haproxy["tcp_stream"]["cpu_ms_per_gb"])
    if "udp_dgram" in elbd:  # HAProxy has no UDP proxying: against NGINX
        ratio("udp_dgram_cpu", elbd["udp_dgram"]["cpu_us"], rows["nginx"]["udp_dgram"]["cpu_us"], "nginx")
    if "elbd-logs" in rows:
        logs = rows["elbd-logs"]["keepalive"]
        parts.append(f"access_logs_keepalive_cpu elbd-logs/elbd={logs['cpu_us'] / elbd['keepalive']['cpu_us']:.3f}")
    if "elbd-base" in rows:
        base = rows["elbd-base"]["keepalive"]
        parts.append(f"keepalive_cpu elbd/elbd-base={elbd['keepalive']['cpu_us'] / base['cpu_us']:.3f}")
    return "RATIO " + " ".join(parts)


def prepare():
    """A work directory with the origin's bodies and the TLS certificate every server uses."""
    work = Path(tempfile.mkdtemp(prefix="elbd-bench-"))
    work.chmod(0o755)  # NGINX workers run as nobody and must read the bodies
    (work / "tmp").mkdir()
    (work / "www").mkdir()
    (work / "www/small").write_text("hello from origin")
    (work / "www/16k").write_bytes(b"x" * 16384)
    (work / "www/1m").write_bytes(b"x" * STREAM_BODY)
    # One ECDSA P-256 certificate for every TLS server; HAProxy wants it and its key in one file.
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-days", "2", "-subj", "/CN=bench.test", "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"))
    (work / "combined.pem").write_text((work / "cert.pem").read_text() + (work / "key.pem").read_text())
    return work


def start_origin(work):
    """The NGINX origin, on the load CPU, once it listens."""
    conf = work / "origin.conf"
    conf.write_text(origin_conf(work))
    origin = Proc("origin", ["nginx", "-c", str(conf), "-p", str(work)], CPU_LOAD, work / "origin.log")
    try:
        wait_for(f"{ORIGIN}:{ORIGIN_H1}")
    except BaseException:
        origin.stop()
        raise
    return origin


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds of 3 s runs and 2 s open-loop samples (about 5 minutes)")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, or 2 with --quick)")
    parser.add_argument("--seconds", type=int, help="seconds per run (default 10, or 3 with --quick)")
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction,
                        help="run the TLS scenarios (default: in the full run, not with --quick)")
    parser.add_argument("--baseline", help="another elbd binary (an earlier build) to run beside "
                        "this one as elbd-base, for an A/B of a change")
    parser.add_argument("--access-logs", action=argparse.BooleanOptionalAction,
                        help="also run elbd with ALB access logs on, as elbd-logs (default: in the "
                        "full run, not with --quick)")
    parser.add_argument("--only", help="comma-separated scenarios to run (keepalive is always run: "
                        "the open-loop rate comes from it)")
    parser.add_argument("--open-samples", type=int, default=OPEN_SAMPLES,
                        help=f"open-loop samples per proxy and rate (default {OPEN_SAMPLES})")
    parser.add_argument("--open-seconds", type=int,
                        help="seconds per open-loop sample (default 5, or 2 with --quick)")
    args = parser.parse_args()
    tls = args.tls if args.tls is not None else not args.quick
    if args.access_logs is None:
        args.access_logs = not args.quick
    args.scenarios = [s for s in SCENARIOS if tls or s not in TLS_SCENARIOS]
    if args.only:
        wanted = {"keepalive", *args.only.split(",")}
        unknown = wanted - SCENARIOS.keys()
        if unknown:
            raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
        args.scenarios = [s for s in SCENARIOS if s in wanted]
    args.rounds = max(1, args.rounds or (2 if args.quick else 5))
    args.seconds = args.seconds or (3 if args.quick else 10)
    args.open_seconds = args.open_seconds or (2 if args.quick else 5)
    if args.open_samples < 1:
        raise SystemExit("--open-samples must be at least 1")

    work = prepare()
    origin = start_origin(work)
    echo = None
    try:
        if any(s in UDP_SCENARIOS for s in args.scenarios):
            echo = Proc("echo", [str(UDP_LOAD), "echo", UDP_ADDRS["direct"]], CPU_LOAD,
                        work / "echo.log")
            wait_for_udp(UDP_ADDRS["direct"])
        samples, extras, rates, tail = measure(args, work)
    finally:
        for server in (origin, echo):
            if server:
                server.stop()
    rows = summarise(samples, extras)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}"
    versions = {
        "haproxy": sh("haproxy", "-v").splitlines()[0],
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "elbd": sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD").strip(),
    }
    tail_samples = tail
    tail = summarise_tail(tail_samples)
    report = table(rows, rates, tail)
    print(report)
    results = ROOT / "bench/results"
    results.mkdir(exist_ok=True)
    record = {"date": when, "machine": machine, "versions": versions, "rounds": args.rounds,
              "seconds": args.seconds, "open_loop_rates": rates, "open_seconds": args.open_seconds,
              "rows": rows, "tail": tail, "tail_samples": tail_samples}
    (results / f"{when}.json").write_text(json.dumps(record, indent=2))
    # The document holds full runs of every scenario: a run of some (--only) leaves it be.
    if not args.quick and args.scenarios == list(SCENARIOS):
        doc = ROOT / "docs/benchmarks.md"
        head = doc.read_text().split("<!-- results -->")[0] if doc.exists() else "# Benchmarks\n\n"
        doc.write_text(f"{head}<!-- results -->\n\n{when}, {machine}; {versions['haproxy']}; "
                       f"{versions['nginx']}; elbd {versions['elbd']}; {args.rounds} rounds of "
                       f"{args.seconds} s, {args.open_samples} open-loop samples of "
                       f"{args.open_seconds} s; spread = (max − min) / median over rounds.\n"
                       f"{report}\n")
    print(ratio_line(rows, tail))


if __name__ == "__main__":
    main()
