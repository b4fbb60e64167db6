"""An HTTP/1.1 target whose behaviour a file sets, for the fault matrix.

Usage: python fault_target.py HOST PORT MODE_FILE. Each request is answered by the mode the
file holds when it arrives: `ok` (200, the connection kept), `close` (200, then the
connection closed without saying so), `reset` (the connection reset, no answer).
"""

import socket
import socketserver
import struct
import sys

host, port, mode_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def mode():
    try:
        with open(mode_file) as f:
            return f.read().strip() or "ok"
    except OSError:
        return "ok"


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(buf) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]
            now = mode()
            if now == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            if now == "close":
                conn.close()
                return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


Server((host, port), Handler).serve_forever()
