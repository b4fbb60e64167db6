#!/usr/bin/env python3
"""A minimal Gateway Load Balancer appliance: it takes GENEVE on UDP 6081, reads AWS's
options and the inner packet's flow, and returns each packet unchanged to the node that sent
it, unless a drop rule matches. It answers health checks on a TCP port (80, the GENEVE group's
default check).

    python3 examples/geneve-appliance.py [--address 0.0.0.0] [--health-port 80]
                                         [--drop-port PORT] [--log FILE]

Each packet is logged as one JSON line: when (seconds since the epoch), the sender, AWS's options (1: endpoint id, 2:
attachment id, 3: flow cookie, in hex), the inner flow and whether it was returned. Packets
without AWS's three options are dropped (the GWLB always sends them), as AWS's own sample
appliance does. Standard library only.
"""

import argparse
import json
import socket
import struct
import sys
import threading
import time

AWS_CLASS = 0x0108


def options_of(datagram):
    """AWS's options (type -> hex) and where the inner packet starts, or None."""
    if len(datagram) < 8 or datagram[0] >> 6 != 0:
        return None
    end = 8 + (datagram[0] & 0x3F) * 4
    at, found = 8, {}
    while at + 4 <= end:
        cls, kind, length = struct.unpack("!HBB", datagram[at:at + 4])
        data = datagram[at + 4:at + 4 + (length & 0x1F) * 4]
        if cls == AWS_CLASS:
            found[kind] = data.hex()
        at += 4 + (length & 0x1F) * 4
    if at != end or not {1, 2, 3} <= found.keys():
        return None
    return found, end


def flow_of(inner):
    """(protocol, source, source port, destination, destination port) of an IP packet."""
    if inner and inner[0] >> 4 == 4 and len(inner) >= 20:
        header = (inner[0] & 0x0F) * 4
        protocol = inner[9]
        source, destination = socket.inet_ntoa(inner[12:16]), socket.inet_ntoa(inner[16:20])
        transport = inner[header:]
    elif inner and inner[0] >> 4 == 6 and len(inner) >= 40:
        protocol = inner[6]
        source = socket.inet_ntop(socket.AF_INET6, inner[8:24])
        destination = socket.inet_ntop(socket.AF_INET6, inner[24:40])
        transport = inner[40:]
    else:
        return None
    ports = struct.unpack("!HH", transport[:4]) if protocol in (6, 17) and len(transport) >= 4 else (0, 0)
    return protocol, source, ports[0], destination, ports[1]


def health(address, port):
    """Accepts and closes connections: what a TCP health check needs."""
    server = socket.create_server((address, port))
    while True:
        connection, _ = server.accept()
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--health-port", type=int, default=80)
    parser.add_argument("--drop-port", type=int, help="drop flows with this source or destination port")
    parser.add_argument("--log", help="append one JSON line per packet here (default: stdout)")
    args = parser.parse_args()
    log = open(args.log, "a", buffering=1) if args.log else sys.stdout
    threading.Thread(target=health, args=(args.address, args.health_port), daemon=True).start()
    geneve = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    geneve.bind((args.address, 6081))
    while True:
        datagram, sender = geneve.recvfrom(65535)
        parsed = options_of(datagram)
        flow = parsed and flow_of(datagram[parsed[1]:])
        if not flow:
            print(json.dumps({"time": time.time(), "from": sender[0],
                              "dropped": "not GENEVE with AWS's options"}), file=log)
            continue
        protocol, source, source_port, destination, destination_port = flow
        returned = args.drop_port not in (source_port, destination_port)
        print(json.dumps({
            "time": time.time(), "from": sender[0], "options": parsed[0], "protocol": protocol,
            "source": f"{source}:{source_port}", "destination": f"{destination}:{destination_port}",
            "returned": returned,
        }), file=log)
        if returned:
            geneve.sendto(datagram, sender)


if __name__ == "__main__":
    main()
