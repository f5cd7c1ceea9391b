"""Does the work release the GIL? Two batches run together, and their threads are watched.

Each thread, while the two batches overlap, computes, waits for a core (the machine is busy),
or sleeps. Work that holds the GIL keeps one of them asleep, waiting for it, all the while they
overlap, even a thread that cannot begin its batch before the other ends: one core's worth
between them. Work that releases it keeps both computing: two cores' worth. Time a thread
waited for a core says neither: it is left out, so a busy machine, or a virtual machine whose
host is slow to run an idle core again, does not make the one look like the other.

A round: the two threads read their clocks as they come to the start, and wait for each other
there; the overlap begins when the later one came. The first to end reads its own clocks and
the other's: the overlap ends there. (Clocks are read while holding the GIL: see ``_cpu_wait``.)

The first to come waits for the other spinning, not asleep. A thread woken from sleep by
another is queued on the core of the thread that woke it (Linux expects them to share data),
and there it waits, while the other computes, for as long as a scheduler tick: milliseconds
in which it neither computes nor tries for the GIL, and the round learns nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .._cpu_wait import Clocks, Thread, read_clocks, this_thread, waited_between

THREADS = 2
SPIN_SECONDS = 0.01  # the first to come spins this long for the other, then sleeps
COME_WITHIN = 1.0  # a round starts without a thread that has not come by then
# A round counts only if both threads had a core at least this share of the time they
# overlapped: a machine that lends two threads one core between them leaves too little to
# tell sleeping from waiting apart.
HAD_CORES_AT_LEAST = 0.5


class Round:
    """Two batches started together, and what their threads did while they overlapped."""

    def __init__(self) -> None:
        self._all_came = threading.Event()
        self._lock = threading.Lock()
        self._arrived: dict[int, tuple[Thread, Clocks]] = {}  # by the task's key
        self._end: dict[int, Clocks | None] | None = None  # each thread's clocks at the end

    def start(self, key: int, start: Callable[[], bool]) -> Callable[[], bool]:
        """``start`` for the batch ``key``: run once the other batch is about to start too (or
        a second has passed: the input ended, or the map stopped, before there was another)."""

        def started() -> bool:
            thread = this_thread()
            self._came(key, thread)
            if len(self._arrived) >= THREADS:
                self._all_came.set()
            spin_until = time.perf_counter() + SPIN_SECONDS
            while not self._all_came.is_set():
                if time.perf_counter() >= spin_until:
                    self._all_came.wait(COME_WITHIN)  # (so late: the round says little)
                    break
                self._came(key, thread)  # (its clocks the last moment before the other came)
                time.sleep(0)  # (lets go of the GIL: the other may need it to come)
            return start()

        return started

    def _came(self, key: int, thread: Thread) -> None:
        clocks = read_clocks()
        assert clocks is not None  # (this thread's own can always be read)
        with self._lock:
            if not self._all_came.is_set():
                self._arrived[key] = (thread, clocks)

    def has(self, key: int) -> bool:
        return key in self._arrived

    def ended(self, key: int) -> None:
        """In the batch's thread, as soon as the batch ``key`` ended."""
        if self._end is not None:
            return  # (the other ended first: the overlap is over)
        own = read_clocks()
        others = {k: read_clocks(thread) for k, (thread, _) in self._arrived.items() if k != key}
        with self._lock:
            if self._end is None:
                self._end = {key: own, **others}

    def measured(self) -> tuple[float, float]:
        """The seconds both threads had a core while they overlapped, and how long one or the
        other slept meanwhile; (0, 0) if nothing could be measured, or too little."""
        end = self._end
        if end is None or len(self._arrived) < THREADS or any(c is None for c in end.values()):
            return 0.0, 0.0
        began = max(clocks.wall for _, clocks in self._arrived.values())
        ended = min(c.wall for c in end.values() if c is not None)
        overlap = ended - began
        if overlap <= 0:  # (one came to the start a second late: nothing ran together)
            return 0.0, 0.0
        slept = waited = 0.0
        for key, (_, start) in self._arrived.items():
            stop = end[key]
            assert stop is not None
            cpu = stop.cpu - start.cpu
            wait = waited_between(start, stop, wall=overlap)
            waited += wait
            slept += max(0.0, overlap - cpu - wait)
        informative = overlap - waited
        if informative < HAD_CORES_AT_LEAST * overlap:  # (a core between them, for a while)
            return 0.0, 0.0
        return informative, slept


def parallel(informative: float, slept: float, *, enough: float) -> float | None:
    """The cores' worth two threads computed at once: 2 less the share of the time both had a
    core that one of them slept (None: they had one together for less than ``enough``)."""
    if informative < enough:
        return None
    return THREADS - min(1.0, slept / informative)
