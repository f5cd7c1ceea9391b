"""Download 40 pages from a slow local server with plait.map, and compare with a plain loop.

The server answers each request after 50 ms, like a remote site would: the time goes into
waiting, so 20 threads fetch about 20 pages in the time one loop fetches one.
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.request

import plait

DELAY = 0.05  # seconds the server takes per request


class SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(DELAY)
        body = f"page {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the output quiet


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 64  # the default backlog (5) drops connections that arrive together


def fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return len(response.read())


if __name__ == "__main__":
    server = Server(("127.0.0.1", 0), SlowHandler)  # port 0: any free port
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    try:
        urls = [f"http://127.0.0.1:{server.server_port}/page/{i}" for i in range(40)]

        start = time.monotonic()
        sizes = list(plait.map(fetch, urls, workers=20))  # results in the order of `urls`
        concurrent = time.monotonic() - start

        # One at a time would take 40 x 50 ms: time the first 8 and scale, to stay quick.
        start = time.monotonic()
        serial_sizes = [fetch(url) for url in urls[:8]]
        serial = (time.monotonic() - start) * len(urls) / 8
    finally:
        server.shutdown()
        serving.join()
        server.server_close()

    assert sizes[:8] == serial_sizes
    print(f"downloaded {len(sizes)} pages, {sum(sizes)} bytes")
    print(f"plait.map, 20 threads: {concurrent:.2f} s; one at a time: about {serial:.2f} s")
    print(f"{serial / concurrent:.1f}x faster")
