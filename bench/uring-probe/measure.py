#!/usr/bin/env python3
"""Issue 23's io_uring experiment: CPU per TCP connection, user and system time apart.

bench.py's origin and load through elbd's NLB TCP listener, HAProxy `mode tcp`, and the two
bare relays of uring-probe (the same relay on io_uring and on tokio's epoll): `tcp_conn` (wrk,
a new connection per small exchange; µs per connection) or `tcp_keepalive` (wrk keep-alive,
32 connections, small bodies; µs per request, where the relay's system calls are most of the
cost). Rounds alternate the order; each measurement follows a 1 s warm-up. User and system
time come from /proc/PID/stat (whole process). Run by bench/uring-probe/run.
"""

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench  # noqa: E402

PROBE = bench.ROOT / "target/uring-probe/release/uring-probe"
# Each bare relay listens on an address of its own and connects from it, as the others do.
PROBES = {"uring": "127.204.0.1", "uring-multishot": "127.206.0.1", "epoll": "127.205.0.1"}
TICK = os.sysconf("SC_CLK_TCK")  # the unit of /proc/PID/stat's times


def start(name, work, baseline):
    if name not in PROBES:
        return bench.start_proxy(name, work, baseline)
    ip = PROBES[name]
    argv = [str(PROBE), name, f"{ip}:9000", f"{bench.ORIGIN}:{bench.ORIGIN_H1}", ip]
    proc = bench.Proc(name, argv, bench.CPU_PROXY, work / f"{name}.log")
    try:
        bench.wait_for(f"{ip}:9000")
    except BaseException:
        proc.stop()
        raise
    return proc


def stop(name, proc):
    """Stops a relay; for the probes, also waits until their port is closed: an io_uring
    relay's listening socket outlives its process until the kernel has torn the ring down,
    and the next probe's readiness check (and load) must not reach it."""
    proc.stop()
    if name not in PROBES:
        return
    for _ in range(100):
        try:
            socket.create_connection((PROBES[name], 9000), timeout=0.2).close()
        except ConnectionRefusedError:
            return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name}'s port is still open 10 s after it stopped")


def user_system(proc):
    """The process tree's user and system time, in seconds."""
    user = system = 0
    for pid in proc.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a child that has just exited
            continue
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / TICK, system / TICK


def load(name, scenario, seconds):
    """Exchanges made, their rate and errors."""
    if scenario == "tcp_conn":
        return bench.closed_loop(name, scenario, seconds)
    target = f"http://{bench.ADDRS[bench.served_as(name)][3]}/small"
    out = bench.sh("taskset", "-c", bench.CPU_LOAD, "wrk", "-t1", "-c", str(bench.CONNECTIONS),
                   "-d", f"{seconds}s", target)
    requests = int(next(l for l in out.splitlines() if "requests in" in l).split()[0])
    errors = "Non-2xx" in out or "Socket errors" in out
    return requests, requests / seconds, int(errors)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--only", default="elbd,haproxy,uring,uring-multishot,epoll")
    parser.add_argument("--baseline", help="an earlier elbd binary, run as elbd-base (add it to --only)")
    parser.add_argument("--scenario", choices=["tcp_conn", "tcp_keepalive"], default="tcp_conn")
    args = parser.parse_args()
    names = args.only.split(",")
    known = {"elbd", "haproxy", *PROBES} | ({"elbd-base"} if args.baseline else set())
    if unknown := set(names) - known:
        raise SystemExit(f"unknown relays: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    args.rounds = max(1, args.rounds)
    for name, ip in PROBES.items():
        bench.ADDRS[name] = (None, None, None, f"{ip}:9000")
    work = bench.prepare()
    origin = bench.start_origin(work)
    samples = {name: [] for name in names}
    try:
        for round_no, order in bench.rotations(names, args.rounds):
            for name in order:
                proc = start(name, work, args.baseline)
                try:
                    load(name, args.scenario, 1)
                    (u0, s0) = user_system(proc)
                    exchanges, rate, errors = load(name, args.scenario, args.seconds)
                    (u1, s1) = user_system(proc)
                finally:
                    stop(name, proc)
                per = 1e6 / max(exchanges, 1)
                sample = ((u1 - u0) * per, (s1 - s0) * per)
                samples[name].append(sample)
                print(f"round {round_no + 1} {name}: {rate:.0f}/s, {errors} errors, "
                      f"user {sample[0]:.1f} + system {sample[1]:.1f} µs per exchange",
                      file=sys.stderr)
    finally:
        origin.stop()
    print(f"{args.scenario}, {args.rounds} rounds of {args.seconds} s")
    print("| relay | user µs per exchange (median, range) | system | total |")
    print("|---|---|---|---|")
    totals = {name: statistics.median(u + s for u, s in samples[name]) for name in names}
    for name in names:
        user = [u for u, _ in samples[name]]
        system = [s for _, s in samples[name]]
        total = [u + s for u, s in samples[name]]
        print(f"| {name} | " + " | ".join(bench.median_range(v) for v in (user, system, total)) + " |")
    pairs = [("elbd", "elbd-base"), ("uring", "epoll"), ("uring-multishot", "epoll"), ("uring", "haproxy"),
             ("uring-multishot", "haproxy"), ("elbd", "haproxy"), ("epoll", "haproxy")]
    print(" ".join(f"{a}/{b}={totals[a] / totals[b]:.2f}" for a, b in pairs
                   if a in totals and b in totals))


if __name__ == "__main__":
    main()
