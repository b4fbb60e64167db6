#!/usr/bin/env python3
"""CPU per request with two threads (issue 23): elbd `--threads 2` against HAProxy `nbthread 2`
and NGINX with 2 workers, each beside its one-thread self, at one fixed rate.

On a 2-core box with the load generator and the origin on one of the cores, a closed loop
cannot say how a proxy scales; a fixed rate they all sustain can say what a second thread
costs per request (cross-thread wake-ups, work stealing, locks). bench.py's origin, proxies and
addresses; the proxies may run on both CPUs (the one-thread runs too, so that both see the
same machine), oha keeps HTTP/1.1 keep-alive requests at the rate (32 connections,
--latency-correction) on CPU 0 beside the origin. Rounds alternate the order of the six runs.
Prints CPU µs per request (median, range) and p99, and a RATIO line.
"""

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

PROXIES = ["elbd", "haproxy", "nginx"]


def fixed_rate(name, rate, seconds):
    """Requests answered 2xx and their p99 in ms, at `rate` for `seconds`."""
    oha = shutil.which("oha") or str(Path.home() / ".cargo/bin/oha")
    out = bench.sh("taskset", "-c", bench.CPU_LOAD, oha, "-z", f"{seconds}s", "-q", str(rate),
                   "-c", str(bench.CONNECTIONS), "--latency-correction", "--no-tui",
                   "--output-format", "json", bench.url(name, "keepalive"))
    report = json.loads(out)
    codes = report["statusCodeDistribution"]
    answered = sum(n for code, n in codes.items() if code.startswith("2"))
    if not answered:
        raise SystemExit(f"{name}: no request answered at {rate} req/s")
    return answered, report["latencyPercentiles"]["p99"] * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=20000, help="requests per second (20000)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    args.rounds = max(1, args.rounds)
    bench.CPU_PROXY = "0,1"
    work = bench.prepare()
    origin = bench.start_origin(work)
    runs = [(name, threads) for threads in (1, 2) for name in PROXIES]
    samples = {run: [] for run in runs}
    try:
        for round_no, order in bench.rotations(runs, args.rounds):
            for name, threads in order:
                bench.THREADS = threads
                proc = bench.start_proxy(name, work)
                try:
                    bench.closed_loop(name, "keepalive", 1)  # warm-up
                    cpu0 = proc.cpu_ns()
                    answered, p99 = fixed_rate(name, args.rate, args.seconds)
                    cpu_us = (proc.cpu_ns() - cpu0) / 1000 / max(answered, 1)
                finally:
                    proc.stop()
                short = answered < 0.95 * args.rate * args.seconds
                samples[(name, threads)].append((cpu_us, p99, short))
                print(f"round {round_no + 1} {name} x{threads}: {answered / args.seconds:.0f} "
                      f"req/s{' (short of the rate)' if short else ''}, {cpu_us:.1f} µs/req, "
                      f"p99 {p99:.2f} ms", file=sys.stderr)
    finally:
        origin.stop()
    print(f"HTTP/1.1 keep-alive at {args.rate} req/s, {args.rounds} rounds of {args.seconds} s")
    print("| proxy | threads | CPU µs/req (median, range) | p99 ms (median) | runs short of the rate |")
    print("|---|---:|---|---:|---:|")
    cpu = {run: statistics.median(c for c, _, _ in samples[run]) for run in runs}
    for run in runs:
        p99 = statistics.median(p for _, p, _ in samples[run])
        short = sum(s for _, _, s in samples[run])
        cells = [bench.median_range([c for c, _, _ in samples[run]]), f"{p99:.2f}", str(short)]
        print(f"| {run[0]} | {run[1]} | " + " | ".join(cells) + " |")
    ratios = [f"multicore_cpu elbd/haproxy={cpu[('elbd', 2)] / cpu[('haproxy', 2)]:.2f}",
              f"multicore_cpu elbd/nginx={cpu[('elbd', 2)] / cpu[('nginx', 2)]:.2f}"]
    ratios += [f"second_thread {name}={cpu[(name, 2)] / cpu[(name, 1)]:.2f}" for name in PROXIES]
    print("RATIO " + " ".join(ratios))


if __name__ == "__main__":
    main()
