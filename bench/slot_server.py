"""A local HTTP server that serves ``SLOTS`` requests at a time, each for ``SECONDS``; more in
flight only queue for a slot, as at a real server with a fixed pool of workers.

    python bench/slot_server.py SLOTS SECONDS

It prints its port on the first line, serves until its standard input closes, then exits.
Keep-alive (HTTP/1.1) and no Nagle delay, so a client's own costs stay small beside the
server's. Used by bench/bench_auto.py and by the tests of backend="auto".
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(slots: int, seconds: float) -> None:
    gate = threading.BoundedSemaphore(slots)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            with gate:
                time.sleep(seconds)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024  # a burst of connections waits; none is refused
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]))
