#!/usr/bin/env python3
"""A Gateway Load Balancer node's cost per packet, against the floor of the same path.

In network namespaces it makes (and removes): a client and a destination whose traffic an edge
steers into an interface, and an appliance that echoes UDP 6081 (`udp-load echo`). In turn:

- elbd: the interface is a GWLB endpoint; elbd encapsulates each packet in GENEVE with AWS's
  options, keyed to its flow, and checks what the appliance returns before writing it back;
- floor: `gwlb-floor` carries each packet over UDP to the same appliance and writes back what
  returns, unchanged: the same system calls with nothing else.

`udp-load run` in the client keeps one 64-byte datagram in flight on each of 64 sockets to
`udp-load echo` in the destination; each round trip crosses the gateway twice (the request and
the reply), each crossing a TUN read, a UDP send, a UDP receive and a TUN write. elbd (one
runtime thread) and the floor (two threads) run on CPU 1, everything else on CPU 0. The CPU a
process used (utime + stime) over the packets it carried is its CPU per packet. Rounds
alternate the two; medians are reported, and the last line is

    RATIO gwlb_cpu_per_packet elbd/floor=<x> gwlb_user_cpu_per_packet elbd/floor=<u>
          gwlb_pps elbd/floor=<y>

Needs root (ip netns), bench/run's tools (built by bench/gwlb) and the aws cli (the tests'
venv in target/tmp/venv, made by .ci/run or a test run).
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELBD = ROOT / "target/release/elbd"
UDP_LOAD = ROOT / "target/udp-load/release/udp-load"
FLOOR = ROOT / "target/gwlb-floor/release/gwlb-floor"
AWS = ROOT / "target/tmp/venv/bin/aws"
NET = "10.96"
PREFIX = f"gwb{os.getpid() % 100000}-"
HOSTS = ["client", "edge", "dest", "appl"]
NODE, FLOOR_ADDR = f"{NET}.255.254", f"{NET}.255.253"
API = "127.0.0.1:4566"
SOCKETS, SIZE = 64, 64


def sh(*args, check=True):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", AWS_MAX_ATTEMPTS="1")
    return subprocess.run(args, check=check, capture_output=True, text=True, env=env).stdout


def ns(host):
    return PREFIX + host


def in_ns(host, *args, check=True):
    return sh("ip", "netns", "exec", ns(host), *args, check=check)


def spawn(host, *args, cpu, log):
    return subprocess.Popen(["ip", "netns", "exec", ns(host), "taskset", "-c", cpu, *args],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def build_lab():
    sh("ip", "route", "replace", "unreachable", f"{NET}.0.0/16")
    for host in HOSTS:
        sh("ip", "netns", "add", ns(host))
        sh("ip", "-n", ns(host), "link", "set", "lo", "up")
    links = [("client", "c0", 1, "e0"), ("dest", "d0", 2, "e1"), ("appl", "a0", 3, "e2")]
    for host, inside, x, edge in links:
        sh("ip", "link", "add", inside, "netns", ns(host), "type", "veth", "peer", "name", edge,
           "netns", ns("edge"))
        sh("ip", "-n", ns(host), "addr", "add", f"{NET}.{x}.10/24", "dev", inside)
        sh("ip", "-n", ns("edge"), "addr", "add", f"{NET}.{x}.1/24", "dev", edge)
        for h, i in [(host, inside), ("edge", edge)]:
            sh("ip", "-n", ns(h), "link", "set", i, "mtu", "9000", "up")
        sh("ip", "-n", ns(host), "route", "add", "default", "via", f"{NET}.{x}.1")
    in_ns("edge", "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
          "net.ipv4.conf.default.rp_filter=0")
    for address in (NODE, FLOOR_ADDR):
        sh("ip", "-n", ns("edge"), "addr", "add", f"{address}/32", "dev", "lo")
    for rule in ("e0", "e1"):
        sh("ip", "-n", ns("edge"), "rule", "add", "iif", rule, "lookup", "100")


def teardown(procs):
    for p in procs:
        p.kill()
        p.wait()
    for host in HOSTS:
        sh("ip", "netns", "del", ns(host), check=False)
    sh("ip", "route", "del", "unreachable", f"{NET}.0.0/16", check=False)


def aws(*args):
    out = in_ns("edge", str(AWS), "--endpoint-url", f"http://{API}", "--output", "json", *args)
    return json.loads(out) if out.strip() else None


def gateway():
    """The gateway, its appliance, listener, endpoint service and endpoint: its interface."""
    subnet = aws("ec2", "describe-subnets")["Subnets"][0]
    lb = aws("elbv2", "create-load-balancer", "--name", "bench", "--type", "gateway",
             "--subnets", subnet["SubnetId"])["LoadBalancers"][0]["LoadBalancerArn"]
    tg = aws("elbv2", "create-target-group", "--name", "bench", "--protocol", "GENEVE", "--port",
             "6081", "--vpc-id", subnet["VpcId"], "--target-type", "ip",
             "--health-check-port", "8080")["TargetGroups"][0]["TargetGroupArn"]
    aws("elbv2", "register-targets", "--target-group-arn", tg, "--targets", f"Id={NET}.3.10")
    aws("elbv2", "create-listener", "--load-balancer-arn", lb, "--default-actions",
        f"Type=forward,TargetGroupArn={tg}")
    service = aws("ec2", "create-vpc-endpoint-service-configuration",
                  "--gateway-load-balancer-arns", lb, "--no-acceptance-required")
    endpoint = aws("ec2", "create-vpc-endpoint", "--vpc-endpoint-type", "GatewayLoadBalancer",
                   "--vpc-id", subnet["VpcId"], "--service-name",
                   service["ServiceConfiguration"]["ServiceName"], "--subnet-ids",
                   subnet["SubnetId"])["VpcEndpoint"]["VpcEndpointId"]
    deadline = time.time() + 20
    while aws("ec2", "describe-vpc-endpoints", "--vpc-endpoint-ids",
              endpoint)["VpcEndpoints"][0]["State"] != "available":
        if time.time() > deadline:
            sys.exit("the endpoint did not become available")
        time.sleep(0.25)
    return f"gwlbe-{endpoint[-9:]}"


def cpu_seconds(pid):
    """(utime + stime, utime) of `pid` and its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[11]) / tick


def inner_pid(proc):
    """The process `ip netns exec … taskset …` became (both exec, so the pid is the same)."""
    return proc.pid


def measure(device, pid, seconds):
    """Steers the client's and destination's traffic into `device`, runs the load; returns
    (packets through the gateway per second, CPU µs per packet)."""
    sh("ip", "-n", ns("edge"), "route", "replace", "default", "dev", device, "table", "100")
    in_ns("client", str(UDP_LOAD), "run", "--target", f"{NET}.2.10:9053", "--sockets", "8",
          "--seconds", "1", "--size", str(SIZE), "--bind", f"{NET}.1.10")  # warm-up
    (before, user_before) = cpu_seconds(pid)
    out = in_ns("client", "taskset", "-c", "0", str(UDP_LOAD), "run", "--target",
                f"{NET}.2.10:9053", "--sockets", str(SOCKETS), "--seconds", str(seconds),
                "--size", str(SIZE), "--bind", f"{NET}.1.10")
    (after, user_after) = cpu_seconds(pid)
    result = json.loads(out)
    packets = 2 * result["datagrams"]
    if packets == 0:
        sys.exit(f"nothing passed {device}: {out}")
    return (packets / result["seconds"], (after - before) / packets * 1e6,
            (user_after - user_before) / packets * 1e6, result["lost"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s (default 5 of 10 s)")
    args = parser.parse_args()
    rounds, seconds = (2, 3) if args.quick else (5, 10)
    for tool in (ELBD, UDP_LOAD, FLOOR, AWS):
        if not tool.exists():
            sys.exit(f"{tool} is missing: run bench/gwlb (and the tests once for the aws cli)")
    work = Path(f"/tmp/elbd-bench-gwlb-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    (work / "elbd.toml").write_text(
        f'[settings]\n[[settings.zone]]\nname = "us-east-1a"\ncidr = "{NET}.0.0/16"\n')
    procs = []
    try:
        build_lab()
        procs.append(spawn("appl", str(UDP_LOAD), "echo", f"{NET}.3.10:6081", cpu="0",
                           log=work / "appl.log"))
        procs.append(spawn("dest", str(UDP_LOAD), "echo", f"{NET}.2.10:9053", cpu="0",
                           log=work / "dest.log"))
        # The appliance's health endpoint (the group's check), so that elbd routes by health,
        # not by failing open.
        procs.append(spawn("appl", "python3", "-m", "http.server", "8080", "--bind",
                           f"{NET}.3.10", cpu="0", log=work / "health.log"))
        elbd = spawn("edge", str(ELBD), "serve", "--config", str(work / "elbd.toml"),
                     "--data-dir", str(work / "data"), "--api-listen", API, "--threads", "1",
                     cpu="1", log=work / "elbd.log")
        procs.append(elbd)
        floor = spawn("edge", str(FLOOR), "gwlbe-floor", f"{FLOOR_ADDR}:6081", f"{NET}.3.10:6081",
                      cpu="1", log=work / "floor.log")
        procs.append(floor)
        deadline = time.time() + 20
        while True:
            try:
                aws("ec2", "describe-vpcs")
                break
            except subprocess.CalledProcessError:
                if time.time() > deadline:
                    sys.exit("elbd's API did not come up")
                time.sleep(0.25)
        device = gateway()
        samples = {"elbd": [], "floor": []}
        for r in range(rounds):
            order = [("elbd", device, elbd), ("floor", "gwlbe-floor", floor)]
            for name, dev, proc in order if r % 2 == 0 else order[::-1]:
                samples[name].append(measure(dev, inner_pid(proc), seconds))
    finally:
        teardown(procs)
    rows = {}
    print(f"| path | packets/s | CPU µs/packet | of which user | lost | ({rounds} rounds of "
          f"{seconds} s, medians) |")
    print("|---|---|---|---|---|---|")
    for name, runs in samples.items():
        pps = statistics.median(s[0] for s in runs)
        cpu = statistics.median(s[1] for s in runs)
        user = statistics.median(s[2] for s in runs)
        lost = sum(s[3] for s in runs)
        rows[name] = {"pps": pps, "cpu_us": cpu, "user_us": user, "lost": lost, "samples": runs}
        print(f"| {name} | {pps:,.0f} | {cpu:.2f} | {user:.2f} | {lost} | |")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = ROOT / "bench/results" / f"gwlb-{stamp}.json"
    out.write_text(json.dumps({"rounds": rounds, "seconds": seconds, "rows": rows}, indent=1))
    ratio = {key: rows["elbd"][key] / rows["floor"][key] for key in ("cpu_us", "user_us", "pps")}
    print(f"\nRATIO gwlb_cpu_per_packet elbd/floor={ratio['cpu_us']:.2f} "
          f"gwlb_user_cpu_per_packet elbd/floor={ratio['user_us']:.2f} "
          f"gwlb_pps elbd/floor={ratio['pps']:.2f}")


if __name__ == "__main__":
    main()
