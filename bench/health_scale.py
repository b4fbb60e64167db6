#!/usr/bin/env python3
"""What health checks cost elbd: one node checking 10,000 targets (10 target groups of 1,000,
AWS's quota per group) every 5 s. Prints elbd's CPU use as a share of one core.

Usage: python3 bench/health_scale.py [--seconds 30]   (after cargo build --release -p elbd)

The targets are 10,000 loopback addresses in 127.200.0.0/16 on port 9100, all answered by one
NGINX listening on port 9100 of every local address. Cross-zone is off and every target is in
us-east-1a, so only that zone's node probes them: 2,000 probes a second.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import CPU_PROXY, CPU_LOAD, Proc, ROOT, wait_for  # noqa: E402

GROUPS, PER_GROUP, INTERVAL = 10, 1000, 5


def config():
    lines = [
        "[settings]",
        '[[settings.zone]]\nname = "us-east-1a"\ncidr = "127.200.0.0/16"',
        '[[settings.zone]]\nname = "us-east-1b"\ncidr = "127.201.0.0/16"',
        '[[load_balancer]]\nname = "scale"\navailability_zones = ["us-east-1a", "us-east-1b"]',
    ]
    for g in range(GROUPS):
        lines.append(f'[[load_balancer.listener]]\nprotocol = "HTTP"\nport = {8100 + g}\n'
                     f'default_action = {{ forward = "tg{g}" }}')
    for g in range(GROUPS):
        targets = ", ".join(f'"127.200.{10 + g * 4 + i // 250}.{1 + i % 250}:9100"' for i in range(PER_GROUP))
        lines.append(
            f'[[target_group]]\nname = "tg{g}"\nprotocol = "HTTP"\nport = 9100\ntargets = [{targets}]\n'
            f'health_check = {{ interval_seconds = {INTERVAL}, timeout_seconds = 2 }}\n'
            f'attributes = {{ "load_balancing.cross_zone.enabled" = "false" }}')
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="elbd-health-scale-"))
    work.chmod(0o755)
    (work / "www").mkdir()
    (work / "www/index.html").write_text("ok")
    (work / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err warn;
events {{ worker_connections 8192; }}
http {{ access_log off; server {{ listen 9100 reuseport; root {work}/www; }} }}
""")
    (work / "elbd.toml").write_text(config())
    nginx = Proc("nginx", ["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)], CPU_LOAD, work / "n.log")
    os.environ["RUST_LOG"] = "warn"
    elbd = Proc("elbd", [str(ROOT / "target/release/elbd"), "serve", "--config", str(work / "elbd.toml"),
                         "--data-dir", str(work / "data")], CPU_PROXY, work / "elbd.log")
    try:
        wait_for("127.200.255.254:8100", timeout=60)
        time.sleep(2 * INTERVAL)  # every target probed at least once; steady state
        cpu0, t0 = elbd.cpu_ns(), time.monotonic()
        time.sleep(args.seconds)
        cpu, wall = elbd.cpu_ns() - cpu0, time.monotonic() - t0
        share = cpu / 1e9 / wall
        probes = GROUPS * PER_GROUP / INTERVAL
        print(f"health checks: {GROUPS * PER_GROUP} targets every {INTERVAL} s ({probes:.0f} probes/s) "
              f"cost elbd {share * 100:.1f}% of one core ({cpu / 1e3 / (probes * wall):.1f} µs per probe) "
              f"over {wall:.0f} s")
    finally:
        elbd.stop()
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
