#!/usr/bin/env python3
"""elbd on etcd: how fast a change reaches every node process, and what one API process holding
a large state costs.

Usage (after `cargo build --release -p elbd`; boto3 from the test venv):
    target/tmp/venv/bin/python bench/etcd_scale.py                  # both parts
    target/tmp/venv/bin/python bench/etcd_scale.py --only convergence --zones 2,20 --changes 200
    target/tmp/venv/bin/python bench/etcd_scale.py --only scale

Convergence: etcd, one API process and one node process per zone (--threads 1 each), an ALB
across every zone whose listener answers a fixed response. Each change is a ModifyListener
that sets a new body; the time is from the API's answer until every node process answers
with it (each node is polled over a kept-alive connection; the poll's own round is the
resolution, about 0.2 ms per node). Goal: p99 < 100 ms.

Scale: etcd and one API process with [settings.quotas] raised, whose config file declares
1,000 load balancers, 5,000 target groups and 100,000 targets (one staged commit at start).
DescribeTargetHealth on random groups (goal p99 < 50 ms), a RegisterTargets at that size, the
API process's RSS and etcd's database size.

Everything listens on loopback: etcd on 127.0.0.1, the API on 127.0.0.1, zones on
127.150.0.0/16 upward.
"""

import argparse
import http.client
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import CPU_LOAD, CPU_PROXY, ROOT, Proc, wait_for  # noqa: E402

ELBD = str(ROOT / "target/release/elbd")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_etcd(work):
    client, peer = free_port(), free_port()
    url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    etcd = Proc("etcd", ["etcd", "--data-dir", str(work / "etcd"), "--name", "bench",
                         "--listen-client-urls", url, "--advertise-client-urls", url,
                         "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                         "--initial-cluster", f"bench={peer_url}", "--quota-backend-bytes", str(8 << 30)],
                CPU_LOAD, work / "etcd.log")
    wait_for(f"127.0.0.1:{client}")
    return etcd, f"127.0.0.1:{client}"


def elbd(work, name, store, args, config):
    return Proc(name, [ELBD, "serve", "--config", str(config), "--data-dir", str(work / f"data-{name}"),
                       "--store", f"etcd://{store}", "--threads", "1", *args],
                CPU_PROXY, work / f"{name}.log")


def client(api):
    return boto3.client("elbv2", endpoint_url=f"http://{api}", region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench",
                        config=Config(retries={"max_attempts": 1}))


def ec2(api):
    return boto3.client("ec2", endpoint_url=f"http://{api}", region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def zone_name(i):
    return "us-east-1" + chr(ord("a") + i)


def settings(zones, quotas=""):
    lines = ["[settings]"]
    for i in range(zones):
        lines.append(f'[[settings.zone]]\nname = "{zone_name(i)}"\ncidr = "127.{150 + i}.0.0/16"')
    return "\n".join(lines) + "\n" + quotas


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def convergence(zones, changes):
    work = Path(tempfile.mkdtemp(prefix="elbd-etcd-converge-"))
    procs = []
    try:
        etcd, store = start_etcd(work)
        procs.append(etcd)
        config = work / "elbd.toml"
        config.write_text(settings(zones))
        api = f"127.0.0.1:{free_port()}"
        procs.append(elbd(work, "api", store, ["--role", "api", "--api-listen", api], config))
        wait_for(api)
        for i in range(zones):
            procs.append(elbd(work, f"node-{i}", store, ["--role", "node", "--zone", zone_name(i)], config))
        elb = client(api)
        subnets = [s["SubnetId"] for s in ec2(api).describe_subnets()["Subnets"]]
        lb = elb.create_load_balancer(Name="converge", Subnets=subnets, Scheme="internal")
        lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]

        def fixed(body):
            return [{"Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": "200", "ContentType": "text/plain", "MessageBody": body}}]

        listener = elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=8080,
                                       DefaultActions=fixed("v-start"))["Listeners"][0]["ListenerArn"]
        nodes = [f"127.{150 + i}.255.254" for i in range(zones)]
        for node in nodes:
            wait_for(f"{node}:8080", timeout=60)
        connections = {node: http.client.HTTPConnection(node, 8080, timeout=5) for node in nodes}

        def answer(node):
            conn = connections[node]
            try:
                conn.request("GET", "/")
                return conn.getresponse().read().decode()
            except (OSError, http.client.HTTPException):
                conn.close()
                return None

        times = []
        for i in range(changes):
            body = f"v{i}"
            elb.modify_listener(ListenerArn=listener, DefaultActions=fixed(body))
            start = time.monotonic()
            waiting = set(nodes)
            while waiting:
                waiting = {n for n in waiting if answer(n) != body}
                if time.monotonic() - start > 10:
                    raise SystemExit(f"change {i} did not reach {sorted(waiting)} within 10 s")
            times.append((time.monotonic() - start) * 1000)
        print(f"convergence, {zones} zones (a node process each), {changes} changes: "
              f"p50 {statistics.median(times):.1f} ms, p99 {percentile(times, 99):.1f} ms, "
              f"max {max(times):.1f} ms (goal p99 < 100 ms)")
        return {"zones": zones, "changes": changes, "p50_ms": statistics.median(times),
                "p99_ms": percentile(times, 99), "max_ms": max(times)}
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)


LBS, GROUPS, PER_GROUP = 1000, 5000, 20


def scale_config():
    quotas = ("[settings.quotas]\nload_balancers_per_region = 1000\ntarget_groups_per_region = 5000\n")
    lines = [settings(2, quotas)]
    for i in range(LBS):
        lines.append(f'[[load_balancer]]\nname = "lb{i}"\nscheme = "internal"\n'
                     f'availability_zones = ["us-east-1a", "us-east-1b"]')
    for g in range(GROUPS):
        targets = ", ".join(f'"127.150.{g // 250}.{(g % 250) + 1}:{9000 + t}"' for t in range(PER_GROUP))
        lines.append(f'[[target_group]]\nname = "tg{g}"\nprotocol = "HTTP"\nport = 9000\ntargets = [{targets}]')
    return "\n".join(lines) + "\n"


def scale(samples):
    work = Path(tempfile.mkdtemp(prefix="elbd-etcd-scale-"))
    procs = []
    try:
        etcd, store = start_etcd(work)
        procs.append(etcd)
        config = work / "elbd.toml"
        config.write_text(scale_config())
        api = f"127.0.0.1:{free_port()}"
        started = time.monotonic()
        server = elbd(work, "api", store, ["--role", "api", "--api-listen", api], config)
        procs.append(server)
        wait_for(api, timeout=600)
        start_s = time.monotonic() - started
        elb = client(api)
        arns = []
        marker = None
        while True:
            page = elb.describe_target_groups(**({"Marker": marker} if marker else {}), PageSize=400)
            arns += [g["TargetGroupArn"] for g in page["TargetGroups"]]
            marker = page.get("NextMarker")
            if not marker:
                break
        assert len(arns) == GROUPS, len(arns)
        times = []
        for _ in range(samples):
            arn = random.choice(arns)
            t0 = time.monotonic()
            health = elb.describe_target_health(TargetGroupArn=arn)
            times.append((time.monotonic() - t0) * 1000)
            assert len(health["TargetHealthDescriptions"]) == PER_GROUP
        writes = []
        for i in range(10):
            t0 = time.monotonic()
            elb.register_targets(TargetGroupArn=arns[i], Targets=[{"Id": "127.151.0.1", "Port": 7000 + i}])
            writes.append((time.monotonic() - t0) * 1000)
        rss_mb = server.rss_kb() / 1024
        status = subprocess.run(["etcdctl", "--endpoints", store, "endpoint", "status", "-w", "json"],
                                capture_output=True, text=True, check=True)
        db_mb = json.loads(status.stdout)[0]["Status"]["dbSize"] / 2**20
        print(f"scale: {LBS} load balancers, {GROUPS} target groups, {GROUPS * PER_GROUP} targets "
              f"(started in {start_s:.1f} s): DescribeTargetHealth p50 {statistics.median(times):.1f} ms, "
              f"p99 {percentile(times, 99):.1f} ms over {samples} (goal p99 < 50 ms); "
              f"RegisterTargets p50 {statistics.median(writes):.0f} ms; "
              f"API RSS {rss_mb:.0f} MiB; etcd db {db_mb:.0f} MiB")
        return {"start_s": start_s, "describe_health_p50_ms": statistics.median(times),
                "describe_health_p99_ms": percentile(times, 99), "register_p50_ms": statistics.median(writes),
                "api_rss_mb": rss_mb, "etcd_db_mb": db_mb}
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["convergence", "scale"])
    parser.add_argument("--zones", default="2,20", help="zone counts for convergence (default 2,20)")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--samples", type=int, default=500, help="DescribeTargetHealth calls (scale)")
    args = parser.parse_args()
    results = {}
    if args.only in (None, "convergence"):
        results["convergence"] = [convergence(int(z), args.changes) for z in args.zones.split(",")]
    if args.only in (None, "scale"):
        results["scale"] = scale(args.samples)
    out = ROOT / "bench/results" / f"etcd-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
