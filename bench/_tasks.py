"""The work the benchmark cases map: module-level functions that every peer can pickle.

Case processes put `bench/` first on `sys.path` (it is the script's directory), so worker
processes, forked or spawned, import these as the top-level module `_tasks`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

IO_LATENCY = 0.01
"""Seconds each I/O task sleeps."""


def double(x: int) -> int:
    """The tiny task: about 30 ns of work, so any per-item overhead shows."""
    return x * 2


def sleep_io(x: int) -> int:
    """The I/O task: waits `IO_LATENCY` seconds without holding the GIL."""
    time.sleep(IO_LATENCY)
    return x


def request(port: int) -> tuple[float, float]:
    """One GET to the local server on ``port`` (``slot_server.py``), over the keep-alive
    connection this worker keeps in ``plait.worker_state()``: when it began and ended."""
    import http.client

    import plait

    state = plait.worker_state()
    connection = state.get("connection")
    if connection is None:
        connection = state["connection"] = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request("GET", "/")
    connection.getresponse().read()
    return started, time.perf_counter()


def spin(loops: int) -> int:
    """The CPU task: pure Python arithmetic, `loops` iterations (calibrated to ~5 ms)."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def payload_len(blob: bytes) -> int:
    """The payload task: the work is in shipping `blob` to the worker, not in this body."""
    return len(blob)


def calibrate_spin(target_seconds: float) -> int:
    """The loop count for which `spin` takes about `target_seconds` in this interpreter."""
    loops = 10_000
    while True:
        start = time.perf_counter()
        spin(loops)
        elapsed = time.perf_counter() - start
        if elapsed > 0.05:
            break
        loops *= 2
    best = min(_timed_spin(loops) for _ in range(3))
    return max(1, round(loops * target_seconds / best))


def _timed_spin(loops: int) -> float:
    start = time.perf_counter()
    spin(loops)
    return time.perf_counter() - start


class CountingSource:
    """An endless input (0, 1, 2, ...) that counts how many items were read from it.

    `limit` ends it early: the finite slice given to peers that read their whole input up front,
    or a safety cap so that a reader that never stops cannot exhaust the machine.
    """

    def __init__(self, limit: int) -> None:
        self.read = 0
        self.limit = limit

    def __iter__(self) -> Iterator[int]:
        while self.read < self.limit:
            self.read += 1
            yield self.read - 1
