"""A fixed-rate load by name, from the network lab's client: each request resolves the load
balancer's name afresh (the lab's DNS; nothing here caches), takes one of its addresses at
random as clients do, and sends GET / on a new connection (3 s timeout). It prints one JSON
line per request: when it started (wall clock), the address, and "ok" or what went wrong.

    zone_load.py NAME RATE SECONDS
"""

import http.client
import json
import random
import socket
import sys
import threading
import time

name, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
printing = threading.Lock()


def request(started):
    address, outcome = None, "ok"
    try:
        found = socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)
        address = random.choice(sorted({f[4][0] for f in found}))
        connection = http.client.HTTPConnection(address, 80, timeout=3)
        connection.request("GET", "/", headers={"Host": name})
        status = connection.getresponse().status
        connection.close()
        if status != 200:
            outcome = f"status {status}"
    except Exception as error:  # every failure is counted, whatever it is
        outcome = type(error).__name__
    with printing:
        line = {"at": started, "address": address, "outcome": outcome}
        print(json.dumps(line), flush=True)


threads = []
begin = time.time()
for i in range(int(rate * seconds)):
    delay = begin + i / rate - time.time()
    if delay > 0:
        time.sleep(delay)
    thread = threading.Thread(target=request, args=(time.time(),))
    thread.start()
    threads.append(thread)
for thread in threads:
    thread.join()
