"""A local HTTP server that serves ``SLOTS`` requests at a time, each for ``SECONDS``; more in
flight only queue for a slot, as at a real server with a fixed pool of workers.

    python bench/slot_server.py SLOTS SECONDS

It prints its port on the first line, serves until its standard input closes, then exits. A
line ``slots N`` on its standard input makes it serve N at a time from then on (a server that
lost half its workers, say); it answers ``ok`` on its standard output.
Keep-alive (HTTP/1.1) and no Nagle delay, so a client's own costs stay small beside the
server's. Used by bench/bench_auto.py and by the tests of backend="auto".
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Gate:
    """At most ``slots`` holders at a time; ``slots`` may change while requests wait."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.busy = 0
        self.cond = threading.Condition()

    def resize(self, slots: int) -> None:
        with self.cond:
            self.slots = slots
            self.cond.notify_all()

    def __enter__(self) -> None:
        with self.cond:
            while self.busy >= self.slots:
                self.cond.wait()
            self.busy += 1

    def __exit__(self, *exc: object) -> None:
        with self.cond:
            self.busy -= 1
            self.cond.notify()


def serve(slots: int, seconds: float) -> None:
    gate = Gate(slots)

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
    for line in sys.stdin:
        command, _, value = line.partition(" ")
        if command == "slots":
            gate.resize(int(value))
            print("ok", flush=True)
    server.shutdown()


def start(slots: int, seconds: float) -> tuple[subprocess.Popen[str], int]:
    """This server in a process of its own, and its port. ``stop(server)`` ends it."""
    server = subprocess.Popen(
        [sys.executable, __file__, str(slots), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline())


def resize(server: subprocess.Popen[str], slots: int) -> None:
    """From now on, serve ``slots`` requests at a time."""
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.write(f"slots {slots}\n")
    server.stdin.flush()
    assert server.stdout.readline() == "ok\n"


def stop(server: subprocess.Popen[str]) -> None:
    server.communicate(timeout=30)  # (its stdin closes: it exits)


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]))
