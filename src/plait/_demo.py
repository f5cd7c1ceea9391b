"""``plait demo``: a short, offline tour of what plait is for, with timings.

Three scenarios, each run serially and then with plait: two functions started together on two
threads; downloads from a slow local HTTP server (threads shine while waiting); and pure-Python
number crunching (threads cannot help under the GIL; processes can). It ends by writing the
timeline of plait's runs (``plait.trace``) and saying where.
"""

from __future__ import annotations

import http.server
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from ._api import map as plait_map
from ._api import run
from ._trace import _check_path, trace

FILES = 40
SERVER_DELAY = 0.05  # seconds the server waits before answering each request
FILE_SIZE = 20_000
CPU_TASKS = 24
CPU_LOOP = 600_000


def say(line: str) -> None:
    sys.stdout.write(line + "\n")  # one write: lines from two threads never mix
    sys.stdout.flush()


def print_numbers(delay: float) -> None:
    for number in range(1, 6):
        say(f"    {number}")
        time.sleep(delay)


def print_letters(delay: float) -> None:
    for letter in "abcde":
        say(f"             {letter}")
        time.sleep(delay)


class SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(SERVER_DELAY)
        body = self.path.encode().ljust(FILE_SIZE, b".")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the demo's output readable


@contextmanager
def slow_server() -> Iterator[str]:
    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 128  # the default (5) drops concurrent connections: 1 s retries
        daemon_threads = True

    server = Server(("127.0.0.1", 0), SlowHandler)
    thread = threading.Thread(target=server.serve_forever, name="demo-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def download(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as response:
        return len(response.read())


def crunch(seed: int) -> int:
    """About 60 ms of pure-Python arithmetic: it holds the GIL the whole time."""
    total = seed
    for i in range(CPU_LOOP):
        total = (total * 31 + i) % 1_000_003
    return total


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def two_functions() -> list[tuple[str, float]]:
    print("\n(a) Two functions, started together on two threads and joined")
    print("  serially:")

    def one_then_the_other() -> None:
        print_numbers(0.04)
        print_letters(0.04)

    serial, _ = timed(one_then_the_other)
    print("  with plait.run (two threads, both joined when it returns):")
    numbers, letters = partial(print_numbers, 0.04), partial(print_letters, 0.04)
    together, _ = timed(lambda: run(numbers, letters))
    print("  both functions have finished")
    return [("serial", serial), ("plait, 2 threads", together)]


def downloads() -> list[tuple[str, float]]:
    print(f"\n(b) I/O-bound: download {FILES} files from a local server that waits")
    print(f"    {SERVER_DELAY * 1000:.0f} ms before each answer")
    with slow_server() as base:
        urls = [f"{base}/file-{i}" for i in range(FILES)]
        serial, sizes = timed(lambda: [download(u) for u in urls])
        threaded, sizes2 = timed(
            lambda: list(plait_map(download, urls, backend="thread", workers=20))
        )
        chosen = plait_map(download, urls)  # backend="auto", the default
        automatic, sizes3 = timed(lambda: list(chosen))
    assert sizes == sizes2 == sizes3 == [FILE_SIZE] * FILES, "the downloads differ"
    print(f"    {FILES} files, {FILES * FILE_SIZE // 1000} kB each way: results identical")
    print(f"    backend='auto' chose {chosen.plan}")
    return [("serial", serial), ("plait, 20 threads", threaded), ("plait, auto", automatic)]


def number_crunching() -> list[tuple[str, float]]:
    print(f"\n(c) CPU-bound: {CPU_TASKS} tasks of pure-Python arithmetic")
    seeds = list(range(CPU_TASKS))
    serial, expected = timed(lambda: [crunch(s) for s in seeds])
    threads, by_threads = timed(lambda: list(plait_map(crunch, seeds, backend="thread", workers=2)))
    processes, by_processes = timed(
        lambda: list(plait_map(crunch, seeds, backend="process", workers=2))
    )
    chosen = plait_map(crunch, seeds)  # backend="auto", the default
    automatic, by_auto = timed(lambda: list(chosen))
    assert expected == by_threads == by_processes == by_auto, "the results differ"
    free_threaded = not getattr(sys, "_is_gil_enabled", lambda: True)()
    gil = "free-threaded Python: no GIL" if free_threaded else "threads share one GIL"
    print(f"    results identical; {gil}; processes each have their own interpreter")
    print(f"    backend='auto' chose {chosen.plan}")
    return [
        ("serial", serial),
        ("plait, 2 threads", threads),
        ("plait, 2 processes", processes),
        ("plait, auto", automatic),
    ]


def main() -> int:
    """The tour, and what becomes of it when its output cannot be written: a closed standard
    output (``>&-``), a full disk or a timeline file it cannot write (found before the tour)
    is said on stderr (exit 1, as ``ls`` does); a reader that went away (``| head``) ends it
    quietly (exit 141, as a shell reports SIGPIPE)."""
    if sys.stdout is None:
        _complain("there is no standard output to write the tour to (it was closed)")
        return 1
    # Checked before the tour, which is not run for a timeline that cannot be written (a
    # folder of that name, or on a shared /tmp a file that another user left there).
    try:
        timeline = Path(tempfile.gettempdir()) / "plait-demo.html"
    except OSError as error:  # (no temporary folder at all)
        _complain(f"there is no folder to write its timeline to: {error}")
        return 1
    try:
        _check_path(timeline, "plait demo")
    except ValueError:
        _complain(_unwritable(timeline))
        return 1
    try:
        return _tour(timeline)
    except BrokenPipeError:
        from ._command import reader_gone

        return reader_gone()
    except OSError as error:
        _complain(f"its output could not be written: {error}")
        return 1


def _unwritable(timeline: Path) -> str:
    why = "it is a folder" if timeline.is_dir() else "this program cannot write there"
    return (
        f"its timeline cannot be written to {timeline}: {why}; set TMPDIR to a folder it "
        "can write to"
    )


def _complain(message: str) -> None:
    if sys.stderr is not None:
        print(f"plait demo: {message}", file=sys.stderr)


def _tour(timeline: Path) -> int:
    started = time.perf_counter()
    print("plait demo: the same work, serially and with plait")
    with trace() as runs:  # what plait's workers did, for the timeline at the end
        sections = [
            ("(a) two functions", two_functions()),
            ("(b) downloads", downloads()),
            ("(c) arithmetic", number_crunching()),
        ]
    print(f"\n{'scenario':<20} {'how':<20} {'time':>9} {'speed-up':>9}")
    print("-" * 61)
    for title, rows in sections:
        baseline = rows[0][1]
        for how, seconds in rows:
            print(f"{title:<20} {how:<20} {seconds:>8.2f}s {baseline / seconds:>8.1f}x")
            title = ""
    print(f"\ndemo finished in {time.perf_counter() - started:.1f}s")
    try:
        runs.write(timeline)
    except ValueError:  # (it became a folder, or unwritable, during the tour)
        _complain(_unwritable(timeline))
        return 1
    print(f"timeline of plait's runs: {timeline} (open it in any browser)")
    return 0
